//! Optimized synthetics and extent-based duplication through the C interface (the built `.so`
//! by dlopen), on every backend: NFS, the simulator's S3 (with its conditional writes honoured
//! and ignored), and radosgw when `VAST_OST_TEST_S3` names one.
//!
//! - An Accelerator replay: a full, a synthetic full that includes 95 % of it and writes 5 %,
//!   restored byte-identical; the full expires; the synthetic restores again; everything
//!   expires and the LSU holds nothing.
//! - Two processes (forked, as bptm forks) including and expiring over shared pieces for a
//!   bounded time; every complete image byte-identical at the end, nothing left after.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;
use vast_ost_engine::filter::LsuFilter;
use vast_ost_engine::store::s3::{S3Settings, S3Store};
use vast_ost_host::abi::*;
use vast_ost_host::{image_def, lsu, Plugin};
use vast_sim::{Sim, SimConfig};

const SEG: u64 = 256 << 10;
const DATE: &str = "1700000000";

/// Every stored key (NFS: file path) under an LSU.
type Lister = Box<dyn Fn(&str) -> Vec<String> + Send + Sync>;

/// One storage server of the config and how to see what its LSUs hold.
struct Backend {
    server: &'static str,
    keys: Lister,
}

struct World {
    _dir: tempfile::TempDir,
    _sims: Vec<Sim>,
    plugin: Plugin,
    backends: Vec<Backend>,
    log: PathBuf,
}

fn s3_keys(endpoint: &str, ak: &str, sk: &str) -> Lister {
    let st =
        S3Store::new(&S3Settings::new(vec![endpoint.to_string()], ak, sk), LsuFilter::default()).unwrap();
    Box::new(move |b: &str| {
        let (objs, _) = st.list_objects(b, "", None).unwrap();
        objs.into_iter().map(|(k, _)| k).filter(|k| !k.starts_with(".vast-ost/")).collect()
    })
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let mount = dir.path().join("mnt");
        for l in LSUS {
            std::fs::create_dir_all(mount.join(l)).unwrap();
        }
        let mut config = format!(
            "[log]\nlevel = \"debug\"\n\n[[server]]\nname = \"{SERVER}\"\n[server.nfs]\nmount = \"{}\"\n\n",
            mount.display()
        );
        let nfs_mount = mount.clone();
        let mut backends = vec![Backend {
            server: SERVER,
            keys: Box::new(move |l: &str| {
                files_below(&nfs_mount.join(l)).iter().map(|p| p.display().to_string()).collect()
            }),
        }];
        let mut sims = Vec::new();
        for (server, ignore) in [("VastData:sims3", false), ("VastData:sims3-ignoring", true)] {
            let mut cfg = SimConfig::new(dir.path().join(format!("sim-{ignore}")));
            cfg.tls = false;
            cfg.ignore_preconditions = ignore;
            let sim = Sim::start(cfg).unwrap();
            let uid = sim.create_user("nbu").unwrap();
            let (ak, sk) = sim.create_access_key(uid).unwrap();
            for b in LSUS {
                sim.create_bucket(b, "nbu", &format!("/buckets/{b}")).unwrap();
            }
            let eps = sim.s3_endpoints();
            config.push_str(&format!(
                "[[server]]\nname = \"{server}\"\n[server.s3]\nendpoints = {eps:?}\naccess_key = \"{ak}\"\n\
                 secret_key = \"{sk}\"\npart_size = 5242880\n\n"
            ));
            backends.push(Backend { server, keys: s3_keys(&eps[0], &ak, &sk) });
            sims.push(sim);
        }
        if let Ok(ep) = std::env::var("VAST_OST_TEST_S3") {
            let ak = std::env::var("VAST_OST_TEST_S3_ACCESS_KEY").unwrap_or_else(|_| "testkey".into());
            let sk = std::env::var("VAST_OST_TEST_S3_SECRET_KEY").unwrap_or_else(|_| "testsecret".into());
            let admin = S3Store::new(&S3Settings::new(vec![ep.clone()], &ak, &sk), LsuFilter::default()).unwrap();
            let prefix = format!("syn-{}", std::process::id());
            for l in LSUS {
                admin.create_bucket(&format!("{prefix}-{l}")).unwrap();
            }
            config.push_str(&format!(
                "[[server]]\nname = \"VastData:rgw\"\nlsu_prefix = \"{prefix}-\"\n[server.s3]\nendpoints = [\"{ep}\"]\n\
                 access_key = \"{ak}\"\nsecret_key = \"{sk}\"\npart_size = 5242880\n\n"
            ));
            backends.push(Backend { server: "VastData:rgw", keys: s3_keys(&ep, &ak, &sk) });
        } else {
            eprintln!("synthetics: radosgw skipped (set VAST_OST_TEST_S3, see scripts/ceph-rgw)");
        }
        let cfg = dir.path().join("vast-ost.toml");
        std::fs::write(&cfg, config).unwrap();
        let log = dir.path().join("vast-ost.log");
        let plugin = load_plugin(&cfg, &log);
        World { _dir: dir, _sims: sims, plugin, backends, log }
    })
}

/// The LSU names of a backend (radosgw's buckets carry the run's prefix).
fn lsus(p: &Plugin, s: stsp_server_handle_t) -> Vec<String> {
    let mut names = p.lsu_names(s).unwrap();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    names
}

fn write_full(p: &Plugin, l: &sts_lsu_t, name: &str, seed: u64, size: u64) {
    let h = p.create_image(l, &image_def(name, DATE, "p")).unwrap();
    let mut buf = vec![0u8; SEG as usize];
    let mut off = 0;
    while off < size {
        let n = SEG.min(size - off) as usize;
        pattern(seed, off, &mut buf[..n]);
        p.write(h, &buf[..n], off).unwrap();
        off += n as u64;
    }
    p.close_image(h, STS_CLOSEF_IH_COMPLETE).unwrap();
}

fn read_all(p: &Plugin, l: &sts_lsu_t, name: &str) -> Vec<u8> {
    let h = p.open_image(l, &image_def(name, "", ""), STS_O_READ).unwrap();
    let size = p.image_prop(h).unwrap().imo_size;
    let mut out = vec![0u8; size as usize];
    let mut off = 0;
    while off < size {
        let end = (off + SEG).min(size);
        let n = p.read(h, &mut out[off as usize..end as usize], off).unwrap();
        assert!(n > 0);
        off += n as u64;
    }
    p.close_image(h, STS_CLOSEF_IH_COMPLETE).unwrap();
    out
}

/// Segment `k` of a synthetic: new data one time in twenty, else a range of the full.
fn synthetic(p: &Plugin, l: &sts_lsu_t, name: &str, full: &str, full_seed: u64, size: u64) -> Vec<u8> {
    let h = p.create_image(l, &image_def(name, DATE, "p")).unwrap();
    let mut want = vec![0u8; size as usize];
    for k in 0..size / SEG {
        let dst = k * SEG;
        let out = &mut want[dst as usize..(dst + SEG) as usize];
        if k % 20 == 7 {
            pattern(900 + k, dst, out);
            p.write(h, out, dst).unwrap();
        } else {
            let src = (dst + 100_000) % (size - SEG);
            pattern(full_seed, src, out);
            p.include(h, &image_def(full, "", ""), src, SEG, dst).unwrap();
        }
    }
    p.close_image(h, STS_CLOSEF_IH_COMPLETE).unwrap();
    want
}

fn replay(b: &Backend) {
    let w = world();
    let p = &w.plugin;
    let s = p.open_server(b.server, "u", "p").unwrap();
    let names = lsus(p, s);
    let (l1, l2) = (lsu(s, &names[0]), lsu(s, &names[1]));
    let flags = p.server_prop(s).unwrap().srv_flags;
    assert!(flags & STS_SRV_OPTIMIZED_IMAGE != 0 && flags & STS_SRV_COPY_EXTENT != 0, "{flags:#x}");
    let size = 40 * SEG;
    write_full(p, &l1, "acc_C1_F1", 7, size);
    let want = synthetic(p, &l1, "acc_C2_F1", "acc_C1_F1", 7, size);
    assert_eq!(read_all(p, &l1, "acc_C2_F1"), want, "{}: the synthetic restores", b.server);
    // Extent-based duplication of the full to the other LSU, 256 KiB at a time.
    let t = p.open_target_server(s, b.server, "", "").unwrap();
    let dst = p.create_image(&lsu(t, &names[1]), &image_def("acc_C3_F1", DATE, "p")).unwrap();
    let src = p.open_image(&l1, &image_def("acc_C1_F1", "", ""), STS_O_READ).unwrap();
    for k in 0..size / SEG {
        p.copy_extent(dst, src, k * SEG, SEG, k * SEG).unwrap();
    }
    p.close_image(src, STS_CLOSEF_IH_COMPLETE).unwrap();
    p.close_image(dst, STS_CLOSEF_IH_COMPLETE).unwrap();
    // Each close takes only its own kind of handle; the refused one stays open.
    assert_eq!(p.close_server(t), Err(vast_ost_host::Status(STS_EHANDLE)), "close_server of a target");
    assert_eq!(
        p.close_target_server(s),
        Err(vast_ost_host::Status(STS_EHANDLE)),
        "close_target_server of a server"
    );
    p.close_target_server(t).unwrap();
    assert_eq!(p.close_target_server(t), Err(vast_ost_host::Status(STS_EHANDLE)), "a second close");
    let mut full = vec![0u8; size as usize];
    pattern(7, 0, &mut full);
    assert_eq!(read_all(p, &l2, "acc_C3_F1"), full, "{}: the extent copy", b.server);
    // The full expires first.
    p.delete_image(&l1, &image_def("acc_C1_F1", "", "")).unwrap();
    assert_eq!(read_all(p, &l1, "acc_C2_F1"), want, "{}: the synthetic after its full expired", b.server);
    assert_eq!(read_all(p, &l2, "acc_C3_F1"), full, "{}: the copy after the full expired", b.server);
    for (l, n) in [(&l1, "acc_C2_F1"), (&l2, "acc_C3_F1")] {
        p.delete_image(l, &image_def(n, "", "")).unwrap();
    }
    for n in &names {
        assert_eq!((b.keys)(n), Vec::<String>::new(), "{}: LSU {n} still holds keys", b.server);
    }
    p.close_server(s).unwrap();
}

#[test]
fn accelerator_replay_nfs() {
    replay(&world().backends[0]);
}

#[test]
fn accelerator_replay_simulated_s3() {
    replay(&world().backends[1]);
}

#[test]
fn accelerator_replay_s3_ignoring_preconditions() {
    replay(&world().backends[2]);
    // The plug-in found out, and said so once per bucket and process, naming the protocol.
    let log = std::fs::read_to_string(world().log.as_path()).unwrap();
    for b in LSUS {
        let said: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(&format!("S3 bucket {b}: If-None-Match ignored, If-Match ignored")))
            .collect();
        assert_eq!(said.len(), 1, "bucket {b}: {said:?}");
        assert!(said[0].contains("WARN") && said[0].contains("claim protocol"), "{}", said[0]);
    }
}

#[test]
fn accelerator_replay_radosgw() {
    match world().backends.get(3) {
        Some(b) => replay(b),
        None => eprintln!("accelerator_replay_radosgw: skipped (no VAST_OST_TEST_S3)"),
    }
}

/// What a synthetic child wrote: one line per complete synthetic, `name full-name full-seed`.
fn journal(dir: &Path, who: &str) -> PathBuf {
    dir.join(format!("{who}.journal"))
}

/// Two processes for a bounded time over one LSU: one writes fulls and expires all but the
/// last two; the other builds synthetics from the newest full, checks each, and expires all
/// but its last two. At the end every complete image reads right and, once all are expired,
/// nothing is left.
fn include_and_expire(b: &Backend, run: &str) {
    let w = world();
    let p = &w.plugin;
    let work = tempfile::tempdir().unwrap();
    let latest = work.path().join("latest");
    let size = 8 * SEG;
    let deadline = Instant::now() + Duration::from_secs(4);
    let server = b.server;
    let fulls = fork_child(|| {
        let s = p.open_server(server, "u", "p").unwrap();
        let l = lsu(s, &lsus(p, s)[0]);
        let mut i = 0u64;
        while Instant::now() < deadline {
            write_full(p, &l, &format!("{run}f_C1_F{i:04}"), 1000 + i, size);
            std::fs::write(&latest, i.to_string()).unwrap();
            if i >= 2 {
                p.delete_image(&l, &image_def(&format!("{run}f_C1_F{:04}", i - 2), "", "")).unwrap();
            }
            i += 1;
        }
        p.close_server(s).unwrap();
        0
    });
    let journal_path = journal(work.path(), run);
    let synthetics = fork_child(|| {
        let s = p.open_server(server, "u", "p").unwrap();
        let l = lsu(s, &lsus(p, s)[0]);
        let mut j = 0u64;
        let mut kept: Vec<String> = Vec::new();
        while Instant::now() < deadline {
            let Some(base) = std::fs::read_to_string(&latest).ok().and_then(|t| t.parse::<u64>().ok()) else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            let name = format!("{run}s_C1_F{j:04}");
            let full = format!("{run}f_C1_F{base:04}");
            let h = p.create_image(&l, &image_def(&name, DATE, "p")).unwrap();
            match p.include(h, &image_def(&full, "", ""), 0, size, 0) {
                Ok(()) => {
                    p.close_image(h, STS_CLOSEF_IH_COMPLETE).unwrap();
                    let mut want = vec![0u8; size as usize];
                    pattern(1000 + base, 0, &mut want);
                    assert!(read_all(p, &l, &name) == want, "{name} from {full} right after it was written");
                    let line = format!("{name} {full} {}\n", 1000 + base);
                    std::fs::write(
                        &journal_path,
                        kept.iter().map(|k| k.as_str()).chain([line.as_str()]).collect::<String>(),
                    )
                    .unwrap();
                    kept.push(line);
                }
                // The full expired under our feet: said so, and nothing breaks.
                Err(e) => {
                    assert_eq!(e.0, STS_ENOENT, "include from {full}");
                    p.close_image(h, STS_CLOSEF_IH_INCOMPLETE).unwrap();
                    p.delete_image(&l, &image_def(&name, "", "")).unwrap();
                }
            }
            if kept.len() > 2 {
                let old = kept.remove(0);
                p.delete_image(&l, &image_def(old.split(' ').next().unwrap(), "", "")).unwrap();
                std::fs::write(&journal_path, kept.concat()).unwrap();
            }
            j += 1;
        }
        p.close_server(s).unwrap();
        0
    });
    for (who, pid) in [("fulls", fulls), ("synthetics", synthetics)] {
        let st = wait_child(pid, Duration::from_secs(120)).unwrap_or_else(|| panic!("{who} child hung"));
        assert!(exited_ok(st), "{who} child failed (status {st:#x}; see the plug-in log)");
    }
    let s = p.open_server(server, "u", "p").unwrap();
    let lsu_name = lsus(p, s)[0].clone();
    let l = lsu(s, &lsu_name);
    let left = std::fs::read_to_string(&journal_path).unwrap_or_default();
    assert!(!left.is_empty(), "{server}: the synthetics child made no synthetic");
    for line in left.lines() {
        let mut f = line.split(' ');
        let (name, _full, seed) =
            (f.next().unwrap(), f.next().unwrap(), f.next().unwrap().parse::<u64>().unwrap());
        let mut want = vec![0u8; size as usize];
        pattern(seed, 0, &mut want);
        assert!(read_all(p, &l, name) == want, "{server}: {name} at the end");
    }
    for info in p.images(&l, run).unwrap() {
        p.delete_image(&l, &info.imo_def).unwrap();
    }
    let keys: Vec<String> = (b.keys)(&lsu_name).into_iter().filter(|k| k.contains(run)).collect();
    assert_eq!(keys, Vec::<String>::new(), "{server}: left after the last expiry");
    p.close_server(s).unwrap();
}

#[test]
fn two_processes_include_and_expire_nfs() {
    include_and_expire(&world().backends[0], "ccn");
}

#[test]
fn two_processes_include_and_expire_simulated_s3() {
    include_and_expire(&world().backends[1], "ccs");
}
