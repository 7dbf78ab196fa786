//! The Rust host harness: drives the built `.so` through its C interface (dlopen, as
//! NetBackup's bptm/bpdm/bpstsinfo do) with NetBackup's call sequences.

mod common;

use common::*;
use vast_ost_host::abi::*;
use vast_ost_host::{get_str, image_def, lsu, Plugin, Status};

const BLOCK: usize = 256 * 1024;

fn open(p: &Plugin) -> stsp_server_handle_t {
    p.open_server(SERVER, "nbuadmin", "harness-secret-Pa55").unwrap()
}

/// Write `size` bytes of pattern `seed` in NetBackup-sized blocks, then close complete.
fn backup_image(p: &Plugin, l: &sts_lsu_t, name: &str, seed: u64, size: u64) {
    let h = p.create_image(l, &image_def(name, "1638486030", "harness-policy")).unwrap();
    let mut buf = vec![0u8; BLOCK];
    let mut off = 0;
    while off < size {
        let n = BLOCK.min((size - off) as usize);
        pattern(seed, off, &mut buf[..n]);
        assert_eq!(p.write(h, &buf[..n], off).unwrap(), n as u64);
        off += n as u64;
    }
    p.close_image(h, STS_CLOSEF_IH_COMPLETE).unwrap();
}

/// Read the whole image sequentially with `chunk`-sized reads and compare with the pattern.
fn verify_image(p: &Plugin, l: &sts_lsu_t, name: &str, seed: u64, size: u64, chunk: usize) {
    let h = p.open_image(l, &image_def(name, "", ""), STS_O_READ).unwrap();
    let (mut got, mut want) = (vec![0u8; chunk], vec![0u8; chunk]);
    let mut off = 0;
    loop {
        let n = p.read(h, &mut got, off).unwrap();
        if n == 0 {
            break;
        }
        pattern(seed, off, &mut want[..n]);
        assert!(got[..n] == want[..n], "{name}: bytes differ in [{off}, {})", off + n as u64);
        off += n as u64;
    }
    assert_eq!(off, size, "{name}: restored size");
    p.close_image(h, STS_CLOSEF_IH_COMPLETE).unwrap();
}

#[test]
fn discovery() {
    let f = fixture();
    let p = &f.plugin;
    let info = p.plugin_info().unwrap();
    assert_eq!(get_str(&info.pi_prefix), "VastData:");
    assert_eq!(get_str(&info.pi_name), "libstspiVastDataMT");
    assert_eq!(info.pi_operating_version, STSPI_VASTDATA_API_VERSION);
    p.claim(SERVER).unwrap();
    assert_eq!(p.claim("PureDisk:nbmed1"), Err(Status(STS_ECLAIM)));
    let s = open(p);
    let si = p.server_prop(s).unwrap();
    assert_eq!(get_str(&si.srv_server), SERVER);
    assert_ne!(si.srv_flags & STS_SRV_NFS, 0);
    assert_ne!(si.srv_flags & STS_SRV_COPY_IMAGE, 0);
    assert_eq!(get_str(&p.server_prop_byname(SERVER).unwrap().srv_server), SERVER);
    assert_eq!(p.lsu_names(s).unwrap(), LSUS.to_vec());
    for name in LSUS {
        let li = p.lsu_prop(&lsu(s, name)).unwrap();
        assert_eq!(get_str(&li.lsu_name.sln_name), name);
        assert!(li.lsu_capacity > 0 && li.lsu_used <= li.lsu_capacity);
        assert_ne!(li.lsu_flags & STS_LSUF_NFS, 0);
    }
    assert_eq!(p.lsu_prop(&lsu(s, "nope")).err(), Some(Status(STS_ENOENT)));
    p.close_server(s).unwrap();
}

/// One backup ID as NetBackup's bptm writes it, restored, listed and expired.
#[test]
fn backup_restore_list_expire() {
    let p = &fixture().plugin;
    let s = open(p);
    let l = lsu(s, "lsu1");
    let id = "client1_1638486030";
    let parts: Vec<(String, u64)> = vec![
        (format!("{id}_C1_HDR"), 1536),
        (format!("{id}_C1_F1"), 4 * BLOCK as u64),
        (format!("{id}_C1_F2"), 3 * BLOCK as u64 + 512),
        (format!("{id}_C1_F3"), 100 * 1024),
        (format!("{id}_C1_TIR"), 2048),
        (format!("{id}_C1_IM"), 4096),
    ];
    for (i, (name, size)) in parts.iter().enumerate() {
        backup_image(p, &l, name, i as u64, *size);
    }
    let im = p.open_image(&l, &image_def(&parts[5].0, "", ""), STS_O_READ).unwrap();
    let pi = p.image_prop(im).unwrap();
    assert_eq!(
        pi.imo_flags & (STS_II_IMAGE_CREATED | STS_II_BUSY_READ),
        STS_II_IMAGE_CREATED | STS_II_BUSY_READ
    );
    p.close_image(im, 0).unwrap();

    let listed = p.images(&l, id).unwrap();
    assert_eq!(listed.len(), parts.len());
    for (name, size) in &parts {
        let i = listed.iter().find(|i| get_str(&i.imo_def.img_basename) == *name).expect(name);
        assert_eq!(i.imo_size, *size);
        assert_eq!(i.imo_flags, STS_II_IMAGE_CREATED);
        assert_eq!(get_str(&i.imo_def.img_policy), "harness-policy");
        assert_eq!(get_str(&i.imo_def.img_date), "1638486030");
    }
    for (i, (name, size)) in parts.iter().enumerate() {
        verify_image(p, &l, name, i as u64, *size, BLOCK);
        verify_image(p, &l, name, i as u64, *size, 65_536 + 17);
    }
    // Random-offset reads (accelerator verification, partial restores).
    let (name, size) = &parts[2];
    let h = p.open_image(&l, &image_def(name, "", ""), STS_O_READ).unwrap();
    let mut x = 12345u64;
    for _ in 0..200 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let off = (x >> 20) % size;
        let len = 1 + ((x >> 5) % 300_000) as usize;
        let mut got = vec![0u8; len];
        let n = p.read(h, &mut got, off).unwrap();
        assert_eq!(n as u64, len.min((size - off) as usize) as u64);
        let mut want = vec![0u8; n];
        pattern(2, off, &mut want);
        assert!(got[..n] == want[..], "random read at {off} len {len}");
    }
    p.close_image(h, 0).unwrap();
    // Expiry: every image of the copy, twice.
    for (name, _) in &parts {
        p.delete_image(&l, &image_def(name, "1638486030", "")).unwrap();
        assert_eq!(p.image_prop_byname(&l, &image_def(name, "", "")).err(), Some(Status(STS_ENOENT)));
        p.delete_image(&l, &image_def(name, "", "")).unwrap();
    }
    assert!(p.images(&l, id).unwrap().is_empty());
    p.close_server(s).unwrap();
}

#[test]
fn checkpoint_restart_and_metadata() {
    let p = &fixture().plugin;
    let s = open(p);
    let l = lsu(s, "lsu2");
    let name = "ckpt_1638486031_C1_F1";
    let def = image_def(name, "1638486031", "pol");
    let h = p.create_image(&l, &def).unwrap();
    let mut buf = vec![0u8; BLOCK];
    for i in 0..6u64 {
        pattern(7, i * BLOCK as u64, &mut buf);
        p.write(h, &buf, i * BLOCK as u64).unwrap();
    }
    p.write_meta(h, b"catalog-bits", 0).unwrap();
    p.close_image(h, STS_CLOSEF_IH_INCOMPLETE).unwrap();
    let i = p.image_prop_byname(&l, &def).unwrap();
    assert_eq!((i.imo_flags, i.imo_size, i.imo_meta_size), (STS_II_IMAGE_PENDING, 6 * BLOCK as u64, 12));
    assert!(p.images(&l, "ckpt_").unwrap().iter().all(|i| i.imo_flags & STS_II_IMAGE_CREATED == 0));
    // The job restarts from its checkpoint and carries on.
    let h = p.open_image(&l, &def, STS_O_APPEND).unwrap();
    assert_eq!(p.image_prop(h).unwrap().imo_flags, STS_II_IMAGE_PENDING | STS_II_BUSY_WRITE);
    for i in 5..10u64 {
        pattern(7, i * BLOCK as u64, &mut buf);
        p.write(h, &buf, i * BLOCK as u64).unwrap();
    }
    p.flush(h).unwrap();
    p.close_image(h, STS_CLOSEF_IH_COMPLETE).unwrap();
    verify_image(p, &l, name, 7, 10 * BLOCK as u64, BLOCK);
    assert_eq!(p.open_image(&l, &def, STS_O_APPEND).err(), Some(Status(STS_ESTATE)));
    let h = p.open_image(&l, &def, STS_O_READ).unwrap();
    let mut meta = [0u8; 64];
    assert_eq!(p.read_meta(h, &mut meta, 0).unwrap(), 12);
    assert_eq!(&meta[..12], b"catalog-bits");
    p.close_image(h, 0).unwrap();
    p.delete_image(&l, &def).unwrap();
    p.close_server(s).unwrap();
}

#[test]
fn copy_image_between_lsus() {
    let p = &fixture().plugin;
    let s = open(p);
    let (a, b) = (lsu(s, "lsu1"), lsu(s, "lsu2"));
    let src = "dup_1638486032_C1_F1";
    backup_image(p, &a, src, 21, 5 * BLOCK as u64 + 3);
    p.copy_image(&b, &image_def("dup_1638486032_C2_F1", "", ""), &a, &image_def(src, "", "")).unwrap();
    verify_image(p, &b, "dup_1638486032_C2_F1", 21, 5 * BLOCK as u64 + 3, BLOCK);
    let copied = p.image_prop_byname(&b, &image_def("dup_1638486032_C2_F1", "", "")).unwrap();
    assert_eq!(get_str(&copied.imo_def.img_date), "1638486030", "the copy keeps the source's date");
    assert_eq!(
        p.copy_image(&b, &image_def("dup_1638486032_C2_F1", "", ""), &a, &image_def(src, "", "")),
        Err(Status(STS_EEXIST))
    );
    for (l, n) in [(&a, src), (&b, "dup_1638486032_C2_F1")] {
        p.delete_image(l, &image_def(n, "", "")).unwrap();
    }
    p.close_server(s).unwrap();
}

/// Several jobs at once in one process (bptm runs many streams), with polling beside them.
#[test]
fn concurrent_images_and_polling() {
    let p = &fixture().plugin;
    let s = open(p) as usize;
    let size = 24 * BLOCK as u64 + 999;
    std::thread::scope(|sc| {
        for t in 0..6u64 {
            sc.spawn(move || {
                let l = lsu(s as stsp_server_handle_t, LSUS[t as usize % 2]);
                let name = format!("mt{t}_1638486033_C1_F1");
                backup_image(p, &l, &name, 100 + t, size);
                verify_image(p, &l, &name, 100 + t, size, BLOCK);
                p.delete_image(&l, &image_def(&name, "", "")).unwrap();
            });
        }
        sc.spawn(move || {
            let s = s as stsp_server_handle_t;
            for _ in 0..50 {
                p.server_prop(s).unwrap();
                p.lsu_prop(&lsu(s, "lsu1")).unwrap();
                p.images(&lsu(s, "lsu2"), "mt").unwrap();
            }
        });
    });
    p.close_server(s as stsp_server_handle_t).unwrap();
}

#[test]
fn close_server_busy_until_children_close() {
    let p = &fixture().plugin;
    let s = open(p);
    let l = lsu(s, "lsu1");
    let def = image_def("busy_1638486034_C1_HDR", "", "");
    let h = p.create_image(&l, &def).unwrap();
    assert_eq!(p.close_server(s), Err(Status(STS_EBUSY)));
    p.server_prop(s).expect("a refused close leaves the handle valid");
    p.close_image(h, STS_CLOSEF_IH_COMPLETE).unwrap();
    p.delete_image(&l, &def).unwrap();
    p.close_server(s).unwrap();
    assert_eq!(p.close_server(s), Err(Status(STS_EHANDLE)), "double close");
    assert_eq!(p.server_prop(s).err(), Some(Status(STS_EHANDLE)), "closed handle");
}

/// A failure's log line names the call, server, LSU, image and status; no secret is logged.
#[test]
fn log_lines_name_the_job_and_hide_secrets() {
    let f = fixture();
    let p = &f.plugin;
    let s = open(p);
    let l = lsu(s, "lsu2");
    let def = image_def("logged_1638486035_C1_F1", "", "");
    assert_eq!(p.open_image(&l, &def, STS_O_READ).err(), Some(Status(STS_ENOENT)));
    p.close_server(s).unwrap();
    let log = std::fs::read_to_string(f.log()).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("stspi_open_image") && l.contains("logged_1638486035_C1_F1"))
        .unwrap_or_else(|| panic!("no log line for the failed open in:\n{log}"));
    for want in ["ERROR", "server=VastData:harness", "lsu=lsu2", "status=2060018", "pid="] {
        assert!(line.contains(want), "{want:?} missing from {line:?}");
    }
    assert!(!log.contains("harness-secret-Pa55"), "the password reached the log");
}
