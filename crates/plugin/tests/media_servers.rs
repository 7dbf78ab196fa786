//! Two media servers on one LSU, through the C interface: each is a process of its own with
//! its own host identity (`VAST_OST_HOSTNAME`, forked from this test as bptm forks), sharing
//! nothing but the storage: one NFS directory, or one simulated S3 bucket.
//!
//! - An image written on A is listed, read, copied and deleted on B.
//! - A and B write different images of one backup at the same time.
//! - A is killed mid-write: B sees the image pending and busy, cleanup from B leaves A's
//!   leftovers alone until A has been silent for `writer_silence_secs`, then removes them, and
//!   B finishes the image after a checkpoint restart.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;
use vast_ost_engine::{Credentials, Engine, Secret};
use vast_ost_host::abi::*;
use vast_ost_host::{get_str, image_def, lsu, Plugin};
use vast_sim::{Sim, SimConfig};

const SEG: u64 = 256 << 10;
/// How long a silent writer on another host stays alive to cleanup (`writer_silence_secs`).
const SILENCE: u64 = 3;

struct World {
    dir: tempfile::TempDir,
    _sim: Sim,
    config: PathBuf,
    plugin: Plugin,
    /// Every stored key under the S3 LSU.
    bucket_root: PathBuf,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let mount = dir.path().join("mnt");
        std::fs::create_dir_all(mount.join("lsu1")).unwrap();
        let mut cfg = SimConfig::new(dir.path().join("sim"));
        cfg.tls = false;
        let sim = Sim::start(cfg).unwrap();
        let uid = sim.create_user("nbu").unwrap();
        let (ak, sk) = sim.create_access_key(uid).unwrap();
        sim.create_bucket("bkt1", "nbu", "/buckets/bkt1").unwrap();
        let config = dir.path().join("vast-ost.toml");
        std::fs::write(
            &config,
            format!(
                "[log]\nlevel = \"debug\"\n\n[[server]]\nname = \"{SERVER}\"\nwriter_silence_secs = {SILENCE}\n\
                 [server.nfs]\nmount = \"{}\"\n\n[[server]]\nname = \"VastData:s3\"\nwriter_silence_secs = {SILENCE}\n\
                 [server.s3]\nendpoints = {:?}\naccess_key = \"{ak}\"\nsecret_key = \"{sk}\"\npart_size = 5242880\n",
                mount.display(),
                sim.s3_endpoints()
            ),
        )
        .unwrap();
        // This test process plays media server B (its children set their own names).
        std::env::set_var("VAST_OST_HOSTNAME", "media-b");
        let plugin = load_plugin(&config, &dir.path().join("vast-ost.log"));
        let bucket_root = sim.root().join("buckets/bkt1");
        World { dir, _sim: sim, config, plugin, bucket_root }
    })
}

/// A media server: a forked process with host name `host`, running `f` on an open server.
fn media_server(
    host: &'static str,
    server: &'static str,
    f: impl FnOnce(&Plugin, stsp_server_handle_t) + 'static,
) -> i32 {
    let p = &world().plugin;
    fork_child(move || {
        std::env::set_var("VAST_OST_HOSTNAME", host);
        let s = p.open_server(server, "u", "p").unwrap();
        f(p, s);
        let _ = p.close_server(s);
        0
    })
}

fn done(pid: i32, who: &str) {
    let st = wait_child(pid, Duration::from_secs(120)).unwrap_or_else(|| panic!("{who} hung"));
    assert!(exited_ok(st), "{who} failed (status {st:#x}; see the plug-in log)");
}

fn write(p: &Plugin, h: stsp_image_handle_t, seed: u64, from: u64, to: u64) {
    let mut buf = vec![0u8; SEG as usize];
    let mut off = from;
    while off < to {
        let n = SEG.min(to - off) as usize;
        pattern(seed, off, &mut buf[..n]);
        p.write(h, &buf[..n], off).unwrap();
        off += n as u64;
    }
}

fn backup(p: &Plugin, l: &sts_lsu_t, name: &str, seed: u64, size: u64) {
    let h = p.create_image(l, &image_def(name, "1700000000", "p")).unwrap();
    write(p, h, seed, 0, size);
    p.close_image(h, STS_CLOSEF_IH_COMPLETE).unwrap();
}

fn restore_equals(p: &Plugin, l: &sts_lsu_t, name: &str, seed: u64, size: u64) -> bool {
    let h = p.open_image(l, &image_def(name, "", ""), STS_O_READ).unwrap();
    let (mut got, mut want) = (vec![0u8; SEG as usize], vec![0u8; SEG as usize]);
    let mut off = 0;
    let mut same = p.image_prop(h).unwrap().imo_size == size;
    while same && off < size {
        let n = p.read(h, &mut got, off).unwrap();
        pattern(seed, off, &mut want[..n]);
        same = n > 0 && got[..n] == want[..n];
        off += n as u64;
    }
    p.close_image(h, STS_CLOSEF_IH_COMPLETE).unwrap();
    same
}

/// Orphans of `lsu` as `vast-ost cleanup` on media server `host` sees them (the engine directly,
/// as the CLI does).
fn cleanup(server: &str, lsu_name: &str, remove: bool) -> (usize, Vec<String>) {
    let e = Engine::new(&world().config).unwrap();
    let s = e.open_server(server, &Credentials { user: "u".into(), password: Secret::new("p") }).unwrap();
    let o = s.find_orphans(lsu_name, Duration::ZERO).unwrap();
    let strays: Vec<String> = o.unreferenced.iter().flat_map(|(_, k)| k.clone()).collect();
    let n = if remove { s.remove_orphans(lsu_name, &o, false).unwrap().items } else { 0 };
    (n, strays)
}

fn two_media_servers(server: &'static str, lsu_name: &'static str, stored: &Path) {
    // One scenario at a time: they share this process's host identity (media-b's).
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE.lock().unwrap_or_else(|p| p.into_inner());
    let w = world();
    let p = &w.plugin;
    let ready = w.dir.path().join(format!("{lsu_name}.ready"));
    let l = |s| lsu(s, lsu_name);

    // Written on A; listed, read, copied and deleted on B.
    done(
        media_server("media-a", server, move |p, s| backup(p, &l(s), "ms_C1_F1", 1, 3 * SEG + 1000)),
        "A's backup",
    );
    done(
        media_server("media-b", server, move |p, s| {
            let listed = p.images(&l(s), "ms_").unwrap();
            assert_eq!(listed.len(), 1);
            assert_eq!(get_str(&listed[0].imo_def.img_basename), "ms_C1_F1");
            assert!(listed[0].imo_flags & STS_II_IMAGE_CREATED != 0);
            assert!(restore_equals(p, &l(s), "ms_C1_F1", 1, 3 * SEG + 1000));
            p.copy_image(&l(s), &image_def("ms_C2_F1", "", ""), &l(s), &image_def("ms_C1_F1", "", ""))
                .unwrap();
            assert!(restore_equals(p, &l(s), "ms_C2_F1", 1, 3 * SEG + 1000));
            for n in ["ms_C1_F1", "ms_C2_F1"] {
                p.delete_image(&l(s), &image_def(n, "", "")).unwrap();
            }
        }),
        "B's list, restore, copy and delete",
    );

    // One backup, its images written by both at once.
    let a = media_server("media-a", server, move |p, s| {
        for (n, seed) in [("bk_C1_HDR", 10), ("bk_C1_F1", 11)] {
            backup(p, &l(s), n, seed, 6 * SEG);
        }
    });
    let b = media_server("media-b", server, move |p, s| {
        for (n, seed) in [("bk_C1_F2", 12), ("bk_C1_TIR", 13)] {
            backup(p, &l(s), n, seed, 6 * SEG);
        }
    });
    done(a, "A's half of the backup");
    done(b, "B's half of the backup");
    let s = p.open_server(server, "u", "p").unwrap();
    for (n, seed) in [("bk_C1_HDR", 10), ("bk_C1_F1", 11), ("bk_C1_F2", 12), ("bk_C1_TIR", 13)] {
        assert!(restore_equals(p, &l(s), n, seed, 6 * SEG), "{n}");
        p.delete_image(&l(s), &image_def(n, "", "")).unwrap();
    }

    // A dies mid-write after a checkpoint, with more written since (and on S3 a multipart
    // upload open: more than one 5 MiB part).
    let size = 40 * SEG;
    let ck = 8 * SEG;
    let flag = ready.clone();
    let a = media_server("media-a", server, move |p, s| {
        let h = p.create_image(&l(s), &image_def("kill_C1_F1", "1700000000", "p")).unwrap();
        write(p, h, 20, 0, ck);
        p.flush(h).unwrap();
        write(p, h, 20, ck, ck + 24 * SEG);
        std::fs::write(&flag, "").unwrap();
        std::thread::sleep(Duration::from_secs(600));
    });
    let start = Instant::now();
    while !ready.exists() {
        assert!(start.elapsed() < Duration::from_secs(60), "A never got going");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
    kill_child(a);
    let killed = Instant::now();
    let info = p.image_prop_byname(&l(s), &image_def("kill_C1_F1", "", "")).unwrap();
    assert_eq!(
        info.imo_flags & (STS_II_IMAGE_PENDING | STS_II_BUSY_WRITE),
        STS_II_IMAGE_PENDING | STS_II_BUSY_WRITE
    );
    assert_eq!(info.imo_size, ck, "B sees what A committed at its checkpoint");
    // Cleanup from B soon after (long enough that a scan ignoring the silence window would take
    // A for gone): A is on another host and not silent for long enough yet.
    std::thread::sleep(Duration::from_millis(1500).saturating_sub(killed.elapsed()));
    let (n, strays) = cleanup(server, lsu_name, true);
    assert_eq!(n, 0, "cleanup removed a live-looking remote writer's keys: {strays:?}");
    assert!(stored.exists() && !files_below(&stored.join("kill_C1_F1")).is_empty());
    // After the silence window: A's leftovers (the piece it wrote after the checkpoint) go.
    std::thread::sleep(Duration::from_secs(SILENCE + 1).saturating_sub(killed.elapsed()));
    let (n, strays) = cleanup(server, lsu_name, true);
    assert!(n >= 1 && !strays.is_empty(), "cleanup after A's silence removed nothing");
    assert_eq!(
        p.image_prop_byname(&l(s), &image_def("kill_C1_F1", "", "")).unwrap().imo_size,
        ck,
        "the checkpoint stays"
    );
    // B restarts the job from the checkpoint and finishes it.
    done(
        media_server("media-b", server, move |p, s| {
            let h = p.open_image(&l(s), &image_def("kill_C1_F1", "", ""), STS_O_APPEND).unwrap();
            write(p, h, 20, ck, size);
            p.close_image(h, STS_CLOSEF_IH_COMPLETE).unwrap();
        }),
        "B's checkpoint restart",
    );
    assert!(restore_equals(p, &l(s), "kill_C1_F1", 20, size), "the restarted image restores whole");
    p.delete_image(&l(s), &image_def("kill_C1_F1", "", "")).unwrap();
    assert!(files_below(&stored.join("kill_C1_F1")).is_empty(), "nothing of it is left");
    p.close_server(s).unwrap();
}

#[test]
fn two_media_servers_on_nfs() {
    let stored = world().dir.path().join("mnt/lsu1");
    two_media_servers(SERVER, "lsu1", &stored);
}

#[test]
fn two_media_servers_on_s3() {
    let stored = world().bucket_root.clone();
    two_media_servers("VastData:s3", "bkt1", &stored);
}
