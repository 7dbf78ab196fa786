//! The plug-in in a process that forks (NetBackup's bptm forks children): a child uses the
//! plug-in while a parent thread keeps it busy, and must neither hang nor corrupt anything.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use vast_ost_host::abi::*;
use vast_ost_host::{image_def, lsu};

const BLOCK: usize = 64 * 1024;

fn backup_and_verify(name: &str, seed: u64) -> bool {
    let p = &fixture().plugin;
    let Ok(s) = p.open_server(SERVER, "u", "p") else { return false };
    let l = lsu(s, "lsu2");
    let def = image_def(name, "1", "fork");
    let mut buf = vec![0u8; BLOCK];
    let Ok(h) = p.create_image(&l, &def) else { return false };
    for i in 0..16u64 {
        pattern(seed, i * BLOCK as u64, &mut buf);
        if p.write(h, &buf, i * BLOCK as u64).is_err() {
            return false;
        }
    }
    if p.close_image(h, STS_CLOSEF_IH_COMPLETE).is_err() {
        return false;
    }
    let Ok(h) = p.open_image(&l, &def, STS_O_READ) else { return false };
    let mut want = vec![0u8; BLOCK];
    for i in 0..16u64 {
        pattern(seed, i * BLOCK as u64, &mut want);
        if p.read(h, &mut buf, i * BLOCK as u64) != Ok(BLOCK) || buf != want {
            return false;
        }
    }
    p.close_image(h, 0).is_ok() && p.delete_image(&l, &def).is_ok() && p.close_server(s).is_ok()
}

#[test]
fn child_uses_plugin_after_fork_while_parent_is_busy() {
    let f = fixture();
    let stop = AtomicBool::new(false);
    std::thread::scope(|sc| {
        // A parent thread hammering the handle table and the log while we fork.
        sc.spawn(|| {
            let p = &f.plugin;
            let s = p.open_server(SERVER, "u", "p").unwrap();
            let l = lsu(s, "lsu1");
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let def = image_def(&format!("busy{n}_1_C1_F1"), "", "");
                let h = p.create_image(&l, &def).unwrap();
                p.write(h, &[7u8; 4096], 0).unwrap();
                let _ = p.read(h, &mut [0u8; 1], 0); // a failing call: one log line
                p.close_image(h, STS_CLOSEF_IH_COMPLETE).unwrap();
                p.delete_image(&l, &def).unwrap();
                n += 1;
            }
            p.close_server(s).unwrap();
        });
        for round in 0..300 {
            // Exit code 0 when the child's backup verified.
            let pid = fork_child(|| i32::from(!backup_and_verify(&format!("child{round}_1_C1_F1"), round)));
            let Some(st) = wait_child(pid, Duration::from_secs(20)) else {
                stop.store(true, Ordering::Relaxed);
                panic!("child {round} hung (a lock inherited from the parent?)");
            };
            if !exited_ok(st) {
                stop.store(true, Ordering::Relaxed);
                panic!("child {round} failed: status {st:#x}");
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    // The parent is still fine too.
    assert!(backup_and_verify("parent_1_C1_F1", 99));
}

/// A child may not write through its parent's image handle, and a child that terminates the
/// plug-in does not close (commit or abort) the images its parent has open.
#[test]
fn child_leaves_parents_images_alone() {
    let p = &fixture().plugin;
    let s = p.open_server(SERVER, "u", "p").unwrap();
    let l = lsu(s, "lsu1");
    let def = image_def("parent_2_C1_F1", "1", "fork");
    let h = p.create_image(&l, &def).unwrap();
    let mut buf = vec![0u8; BLOCK];
    pattern(3, 0, &mut buf);
    p.write(h, &buf, 0).unwrap();
    let pid = fork_child(|| {
        let refused = p.write(h, &buf, BLOCK as u64) == Err(vast_ost_host::Status(STS_EHANDLE));
        // Terminate until the plug-in is really down in the child (it inherited the count).
        while p.terminate().is_ok() {}
        i32::from(!refused)
    });
    let st = wait_child(pid, Duration::from_secs(60)).expect("the child hung");
    assert!(exited_ok(st), "the child could use the parent's image handle");
    // The parent's image is still open and intact.
    pattern(3, BLOCK as u64, &mut buf);
    p.write(h, &buf, BLOCK as u64).unwrap();
    p.close_image(h, STS_CLOSEF_IH_COMPLETE).unwrap();
    let r = p.open_image(&l, &def, STS_O_READ).unwrap();
    let mut back = vec![0u8; 2 * BLOCK];
    assert_eq!(p.read(r, &mut back, 0).unwrap(), 2 * BLOCK);
    let mut want = vec![0u8; 2 * BLOCK];
    pattern(3, 0, &mut want);
    assert!(back == want);
    p.close_image(r, 0).unwrap();
    p.delete_image(&l, &def).unwrap();
    p.close_server(s).unwrap();
}
