//! Faults through the C interface (issue 5, items 3 and 4): the built `.so` against the VAST
//! simulator, with a fault-injecting TCP proxy (`common/proxy.rs`) between the plug-in and the
//! S3 data plane (or VMS) and the simulator's own knobs. Each test writes down the outcome it
//! expects and asserts it; after each, `World::after` checks that no multipart upload is left
//! open on the scenario's images or on any completed image, and that no byte of any image
//! completed so far (by any test) changed on storage. `docs/interface.md` ("Faults and bad
//! input") lists every scenario with its outcome and test.
//!
//! Tests that turn the simulator's global knobs (503s, VIPs, tokens) or measure the process's
//! memory hold `World::exclusive`; the others (each on its own proxy) run side by side.
//!
//! Small images (a few MiB), 1 MiB parts (`allow_small_parts`, the simulator's minimum part
//! lowered to 64 KiB) and short per-request timeouts keep the run short. The retry policy
//! itself (8 attempts, 60 s deadline, 100 ms..5 s backoff) is not configurable, which bounds
//! how fast a permanent failure can be reported (see
//! `permanent_failures_fail_clearly_in_bounded_time`).

mod common;
#[path = "common/proxy.rs"]
mod proxy;

use std::collections::BTreeMap;
use std::hash::Hasher;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use common::*;
use proxy::{Dir, Proxy};
use serde_json::json;
use vast_ost_engine::filter::LsuFilter;
use vast_ost_engine::store::s3::{S3Settings, S3Store};
use vast_ost_host::abi::*;
use vast_ost_host::{get_str, image_def, lsu, Plugin, Status};
use vast_sim::{FaultConfig, Plane, Sim, SimConfig};

const MIB: u64 = 1 << 20;
const BLOCK: usize = 256 << 10;
/// `[server.s3]` of every S3 server here.
const PART: u64 = MIB;
const WORKERS: u64 = 4;
const READ_AHEAD: u64 = 4;
/// Hard limit of the `nbu-full` bucket.
const FULL_QUOTA: u64 = 3 * MIB;
/// Size of the tmpfs standing for a full NFS file system.
const TINY_FS: &str = "4m";

/// Buckets and NFS views: LSU name → view path below the simulator's root.
const VIEWS: [(&str, &str); 3] = [("nbu-bkt", "nbu/bkt"), ("nbu-full", "nbu/full"), ("nbu-nfs", "nbu/nfs")];

/// An image some test completed: it must stay listed complete, byte for byte, to the end.
struct Done {
    lsu: &'static str,
    name: String,
    seed: u64,
    size: u64,
    print: u64,
}

struct Proxies {
    reset: Proxy,
    stall: Proxy,
    answers: Proxy,
    permanent: Proxy,
    restart: Proxy,
    down: Proxy,
    slow: Proxy,
    vms: Proxy,
}

struct World {
    /// Removed at process exit (statics are never dropped), unless VAST_OST_KEEP_TEST_DIR is set.
    dir: PathBuf,
    sim: Sim,
    log: PathBuf,
    plugin: Plugin,
    px: Proxies,
    /// An S3 client of the test's own (not the plug-in's), to list open multipart uploads.
    s3: S3Store,
    done: Mutex<Vec<Done>>,
    excl: RwLock<()>,
}

/// The test directory (simulator data, config, log, the tmpfs mount point) goes when the
/// process exits; `VAST_OST_KEEP_TEST_DIR=1` keeps it for a look at the log.
fn remove_at_exit(dir: &Path) {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    extern "C" fn cleanup() {
        if let Some(d) = DIR.get() {
            if std::env::var_os("VAST_OST_KEEP_TEST_DIR").is_some() {
                eprintln!("[faults] test directory kept: {}", d.display());
                return;
            }
            let _ = std::process::Command::new("umount").arg("-l").arg(d.join("tiny")).output();
            let _ = std::fs::remove_dir_all(d);
        }
    }
    if DIR.set(dir.to_path_buf()).is_ok() {
        unsafe { libc::atexit(cleanup) };
    }
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        remove_at_exit(&dir);
        let mut cfg = SimConfig::new(dir.join("cluster"));
        cfg.min_part_size = 64 << 10;
        let sim = Sim::start(cfg).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, sim.ca_pem().unwrap()).unwrap();
        let vms = admin(&sim, &ca);
        vms.post("views/", &json!({"name": "nbu-nfs", "path": "/nbu/nfs", "policy_id": 1, "protocols": ["NFS"], "create_dir": true}))
            .unwrap();
        let owner = vms.post("users/", &json!({"name": "nbu-s3", "uid": 50001})).unwrap();
        for (bucket, path) in [("nbu-bkt", "/nbu/bkt"), ("nbu-full", "/nbu/full")] {
            vms.post(
                "views/",
                &json!({"name": bucket, "path": path, "policy_id": 2, "protocols": ["S3"], "bucket": bucket,
                        "bucket_owner": "nbu-s3", "create_dir": true}),
            )
            .unwrap();
        }
        vms.post("quotas/", &json!({"name": "nbu-full", "path": "/nbu/full", "hard_limit": FULL_QUOTA}))
            .unwrap();
        let key = vms.post(&format!("users/{}/access_keys/", owner["id"]), &json!({})).unwrap();
        let (ak, sk) =
            (key["access_key"].as_str().unwrap().to_string(), key["secret_key"].as_str().unwrap().to_string());

        let vips = sim.s3_endpoints();
        let px = Proxies {
            reset: Proxy::start(&vips[0]),
            stall: Proxy::start(&vips[0]),
            answers: Proxy::start(&vips[0]),
            permanent: Proxy::start(&vips[0]),
            restart: Proxy::start(&vips[0]),
            down: Proxy::start(&vips[0]),
            slow: Proxy::start(&vips[0]),
            vms: Proxy::start(sim.vms_url().trim_start_matches("https://")),
        };
        let (vms_url, root, ca) = (sim.vms_url(), sim.root().display().to_string(), ca.display().to_string());
        let list = |v: &[String]| v.iter().map(|e| format!("\"{e}\"")).collect::<Vec<_>>().join(", ");
        let server = |name: &str, vms_addr: &str, vms_timeout: u64, endpoints: &[String], timeout: u64| {
            format!(
                "[[server]]\nname = \"VastData:{name}\"\nlsu_prefix = \"nbu-\"\ncapacity_ttl_secs = 1\n\
                 [server.vms]\naddress = \"{vms_addr}\"\nca_file = \"{ca}\"\ntimeout_secs = {vms_timeout}\n\
                 [server.nfs]\nmount = \"{root}\"\n\
                 [server.s3]\nendpoints = [{}]\naccess_key = \"{ak}\"\nsecret_key = \"{sk}\"\n\
                 part_size = {PART}\nallow_small_parts = true\nupload_workers = {WORKERS}\nread_ahead = {READ_AHEAD}\n\
                 timeout_secs = {timeout}\n\n",
                list(endpoints)
            )
        };
        let tiny = dir.join("tiny");
        std::fs::create_dir_all(&tiny).unwrap();
        let config = [
            "[log]\nlevel = \"debug\"\n\n".to_string(),
            // Straight to the three VIPs: the reference server, and the one under sim knobs.
            server("direct", vms_url, 10, &vips, 10),
            server("reset", vms_url, 10, &[px.reset.url()], 10),
            // Short per-request timeouts: a stalled request gives up after 1 s and is retried.
            server("stall", vms_url, 10, &[px.stall.url()], 1),
            server("answers", vms_url, 10, &[px.answers.url()], 1),
            server("permanent", vms_url, 10, &[px.permanent.url()], 1),
            server("restart", vms_url, 10, &[px.restart.url()], 5),
            server("down", vms_url, 10, &[px.down.url()], 5),
            server("slow", vms_url, 10, &[px.slow.url()], 30),
            // VMS through a proxy (TLS passes through: the certificate names 127.0.0.1).
            server("vmsproxy", &format!("https://{}", px.vms.addr()), 1, &vips, 10),
            // NFS only, on a small tmpfs mounted by the disk-full test: every directory is an LSU.
            format!("[[server]]\nname = \"VastData:tiny\"\n[server.nfs]\nmount = \"{}\"\n", tiny.display()),
        ]
        .concat();
        let cfg_path = dir.join("vast-ost.toml");
        std::fs::write(&cfg_path, config).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&cfg_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let log = dir.join("vast-ost.log");
        std::env::set_var("VAST_OST_CONFIG", &cfg_path);
        std::env::set_var("VAST_OST_LOG", &log);
        let plugin = Plugin::load(&plugin_path()).unwrap();
        plugin.init().unwrap();
        let s3 = S3Store::new(&S3Settings::new(vips.clone(), &ak, &sk), LsuFilter::default()).unwrap();
        World { dir, sim, log, plugin, px, s3, done: Mutex::new(Vec::new()), excl: RwLock::new(()) }
    })
}

impl World {
    /// Tests that only use their own proxy run side by side.
    fn shared(&self) -> RwLockReadGuard<'_, ()> {
        self.excl.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Tests that turn the simulator's global knobs, or measure memory, run alone.
    fn exclusive(&self) -> RwLockWriteGuard<'_, ()> {
        self.excl.write().unwrap_or_else(|p| p.into_inner())
    }

    fn open(&self, server: &str) -> stsp_server_handle_t {
        self.plugin
            .open_server(&format!("VastData:{server}"), self.sim.admin_user(), self.sim.admin_password())
            .unwrap_or_else(|e| panic!("open_server {server}: {e}"))
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Where an image's objects/files live in the simulator's namespace.
    fn image_dir(&self, lsu: &str, name: &str) -> PathBuf {
        let view = VIEWS.iter().find(|(l, _)| *l == lsu).unwrap_or_else(|| panic!("no view for {lsu}")).1;
        self.sim.root().join(view).join(name)
    }

    /// Record a completed (and verified) image.
    fn completed(&self, lsu: &'static str, name: &str, seed: u64, size: u64) {
        let print = fingerprint(&self.image_dir(lsu, name));
        self.done.lock().unwrap_or_else(|p| p.into_inner()).push(Done {
            lsu,
            name: name.into(),
            seed,
            size,
            print,
        });
    }

    fn open_uploads(&self, bucket: &str, prefix: &str) -> Vec<(String, String)> {
        self.s3.list_uploads(bucket, prefix).unwrap()
    }

    /// The checks after every scenario: nothing of the scenario's images (`prefix`) left in an
    /// open multipart upload, none on any completed image, and every completed image still
    /// listed complete with the same bytes on storage (a fingerprint of its files, taken when
    /// it was verified through the plug-in).
    fn after(&self, prefix: &str) {
        for bucket in ["nbu-bkt", "nbu-full"] {
            let open = self.open_uploads(bucket, prefix);
            assert!(open.is_empty(), "{prefix}: multipart uploads left open in {bucket}: {open:?}");
        }
        let done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        let p = &self.plugin;
        let s = self.open("direct");
        let mut by_lsu: BTreeMap<&str, Vec<&Done>> = BTreeMap::new();
        for d in done.iter() {
            by_lsu.entry(d.lsu).or_default().push(d);
        }
        for (l, images) in by_lsu {
            let listed = p.images(&lsu(s, l), "").unwrap();
            if l != "nbu-nfs" {
                let open: Vec<_> = self
                    .open_uploads(l, "")
                    .into_iter()
                    .filter(|(k, _)| images.iter().any(|d| k.starts_with(&format!("{}/", d.name))))
                    .collect();
                assert!(open.is_empty(), "uploads open on completed images: {open:?}");
            }
            for d in images {
                let i = listed
                    .iter()
                    .find(|i| get_str(&i.imo_def.img_basename) == d.name)
                    .unwrap_or_else(|| panic!("completed image {}/{} is no longer listed", l, d.name));
                assert_eq!(i.imo_flags, STS_II_IMAGE_CREATED, "{l}/{}: flags changed", d.name);
                assert_eq!(i.imo_size, d.size, "{l}/{}: size changed", d.name);
                assert_eq!(
                    fingerprint(&self.image_dir(l, &d.name)),
                    d.print,
                    "{l}/{}: bytes changed",
                    d.name
                );
            }
        }
        p.close_server(s).unwrap();
    }
}

/// A hash of every file (name and content) below `dir`, in name order.
fn fingerprint(dir: &Path) -> u64 {
    let mut files = Vec::new();
    walk(dir, &mut files);
    files.sort();
    assert!(!files.is_empty(), "nothing stored under {}", dir.display());
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for f in files {
        h.write(f.to_string_lossy().as_bytes());
        h.write(&std::fs::read(&f).unwrap());
    }
    h.finish()
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Where a job failed: the call, the image offset, the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fail {
    call: &'static str,
    off: u64,
    status: Status,
}

/// Write `size` bytes of pattern `seed` in 256 KiB blocks and close complete; `pause` runs
/// once after the first `pause_at` bytes (to inject a fault mid-backup). After a failed write
/// the image is still closed COMPLETE, which must fail.
fn backup_with(
    p: &Plugin,
    l: &sts_lsu_t,
    name: &str,
    seed: u64,
    size: u64,
    pause_at: u64,
    mut pause: impl FnMut(),
) -> Result<(), Fail> {
    let h = p.create_image(l, &image_def(name, "1700000000", "faults")).map_err(|status| Fail {
        call: "create_image",
        off: 0,
        status,
    })?;
    let mut buf = vec![0u8; BLOCK];
    let mut off = 0;
    let mut paused = false;
    while off < size {
        if !paused && off >= pause_at {
            pause();
            paused = true;
        }
        let n = BLOCK.min((size - off) as usize);
        pattern(seed, off, &mut buf[..n]);
        if let Err(status) = p.write(h, &buf[..n], off) {
            // A host that closes COMPLETE anyway must not get a complete image with a hole.
            let close = p.close_image(h, STS_CLOSEF_IH_COMPLETE);
            assert!(close.is_err(), "{name}: close COMPLETE after a failed write ({status}) succeeded");
            return Err(Fail { call: "write_image", off, status });
        }
        off += n as u64;
    }
    p.close_image(h, STS_CLOSEF_IH_COMPLETE).map_err(|status| Fail { call: "close_image", off, status })
}

fn backup(p: &Plugin, l: &sts_lsu_t, name: &str, seed: u64, size: u64) -> Result<(), Fail> {
    backup_with(p, l, name, seed, size, u64::MAX, || {})
}

/// Read the whole image in 256 KiB reads, comparing with the pattern (wrong bytes panic);
/// `pause` runs once after `pause_at` bytes.
fn restore_with(
    p: &Plugin,
    l: &sts_lsu_t,
    name: &str,
    seed: u64,
    size: u64,
    pause_at: u64,
    mut pause: impl FnMut(),
) -> Result<(), Fail> {
    let h = p.open_image(l, &image_def(name, "", ""), STS_O_READ).map_err(|status| Fail {
        call: "open_image",
        off: 0,
        status,
    })?;
    let (mut got, mut want) = (vec![0u8; BLOCK], vec![0u8; BLOCK]);
    let mut off = 0;
    let mut paused = false;
    let res = loop {
        if !paused && off >= pause_at {
            pause();
            paused = true;
        }
        match p.read(h, &mut got, off) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                pattern(seed, off, &mut want[..n]);
                assert!(got[..n] == want[..n], "{name}: WRONG BYTES in [{off}, {})", off + n as u64);
                off += n as u64;
            }
            Err(status) => break Err(Fail { call: "read_image", off, status }),
        }
    };
    p.close_image(h, 0).unwrap();
    res?;
    assert_eq!(off, size, "{name}: restored size");
    Ok(())
}

fn restore(p: &Plugin, l: &sts_lsu_t, name: &str, seed: u64, size: u64) -> Result<(), Fail> {
    restore_with(p, l, name, seed, size, u64::MAX, || {})
}

/// The image's listing entry, if listed.
fn listed(p: &Plugin, l: &sts_lsu_t, name: &str) -> Option<sts_image_info_t> {
    p.images(l, name).unwrap().into_iter().find(|i| get_str(&i.imo_def.img_basename) == name)
}

fn assert_not_complete(p: &Plugin, l: &sts_lsu_t, name: &str) {
    if let Some(i) = listed(p, l, name) {
        assert_eq!(i.imo_flags & STS_II_IMAGE_CREATED, 0, "{name} is listed complete");
        assert_ne!(i.imo_flags & STS_II_IMAGE_PENDING, 0, "{name}: flags {:#x}", i.imo_flags);
    }
}

fn timed(what: &str, t: Instant) {
    eprintln!("[faults] {what}: {:.1} s", t.elapsed().as_secs_f64());
}

/// Connection reset mid-part. Expected: the proxy resets the upload connection in the middle
/// of a part's body (twice); each broken PUT is a transport error that the S3 client retries
/// on a fresh connection, so the backup completes and restores byte for byte. The same on the
/// way back: resets in the middle of ranged GETs are retried and the restore is identical.
#[test]
fn reset_mid_part_is_retried() {
    let w = world();
    let _g = w.shared();
    let t = Instant::now();
    let p = &w.plugin;
    let s = w.open("reset");
    let l = lsu(s, "nbu-bkt");
    let (name, size) = ("reset_1_C1_F1", 5 * MIB + 12345);
    w.px.reset.reset_after(Dir::Up, 3 * MIB / 2, 2);
    backup(p, &l, name, 11, size).unwrap();
    assert_eq!(w.px.reset.stats().resets, 2, "both resets happened during the upload");
    w.px.reset.reset_after(Dir::Down, 3 * MIB / 2, 2);
    restore(p, &l, name, 11, size).unwrap();
    assert_eq!(w.px.reset.stats().resets, 4, "both resets happened during the restore");
    w.px.reset.clear();
    restore(p, &l, name, 11, size).unwrap();
    w.completed("nbu-bkt", name, 11, size);
    p.close_server(s).unwrap();
    w.after("reset_");
    timed("reset mid-part", t);
}

/// The server stalls for 2.5 s in the middle of a backup (while parts are in flight) and of a
/// restore, with a 1 s per-request timeout (`[server.s3] timeout_secs = 1`). Expected: the
/// stalled requests time out, are retried with backoff, and succeed once the stall ends; the
/// job completes well within the retry deadline, bytes identical. (A stall on the
/// CreateMultipartUpload itself: `stall_on_create_multipart_upload_leaves_no_orphan`.)
#[test]
fn transient_stall_is_retried() {
    let w = world();
    let _g = w.shared();
    let t = Instant::now();
    let p = &w.plugin;
    let s = w.open("stall");
    let l = lsu(s, "nbu-bkt");
    let (name, size) = ("stall_1_C1_F1", 4 * MIB + 777);
    let stall = || w.px.stall.stall_for(Duration::from_millis(2500));
    // At 2.25 MiB the piece's multipart upload exists (created when part 1 was handed over,
    // at the write after the first MiB): the stall holds part uploads, not the create.
    backup_with(p, &l, name, 12, size, 2 * MIB + BLOCK as u64, stall).unwrap();
    restore_with(p, &l, name, 12, size, MIB, stall).unwrap();
    assert!(t.elapsed() < Duration::from_secs(40), "took {:?}", t.elapsed());
    w.completed("nbu-bkt", name, 12, size);
    p.close_server(s).unwrap();
    w.after("stall_");
    timed("transient stall", t);
}

/// The server takes a piece's CreateMultipartUpload (the write after the first part is full)
/// but answers it only after 2.5 s, past the 1 s request timeout. Expected: the backup
/// completes (the create is retried) and no multipart upload is left open: an upload whose
/// create answer was lost is found and aborted (the create is a POST, not idempotent).
#[test]
fn stall_on_create_multipart_upload_leaves_no_orphan() {
    let w = world();
    let _g = w.shared();
    let t = Instant::now();
    let p = &w.plugin;
    let s = w.open("answers");
    let l = lsu(s, "nbu-bkt");
    let (name, size) = ("stallcreate_1_C1_F1", 3 * MIB);
    let stall = || w.px.answers.stall_answers_for(Duration::from_millis(2500));
    backup_with(p, &l, name, 24, size, PART, stall).unwrap();
    restore(p, &l, name, 24, size).unwrap();
    let orphans = w.open_uploads("nbu-bkt", name);
    // Clean up before asserting, so a failure here does not spill into other tests' checks:
    // deleting the image aborts its open uploads.
    p.delete_image(&l, &image_def(name, "", "")).unwrap();
    p.close_server(s).unwrap();
    assert!(orphans.is_empty(), "multipart uploads left open on the completed image: {orphans:?}");
    w.after("stallcreate_");
    timed("stall on create", t);
}

/// The S3 server stalls for good during a restore (1 s request timeout). Expected: the read
/// fails with STS_ENET once the retries run out, with a log line naming the timeout; the
/// handle closes, and the image is untouched (it restores once the server answers again).
fn s3_stall_for_good(w: &World) {
    let p = &w.plugin;
    let s = w.open("permanent");
    let l = lsu(s, "nbu-bkt");
    // Larger than the read-ahead window (4 ranges of 1 MiB), so the restore needs the
    // server after the stall begins.
    let (name, size) = ("permanent_1_C1_F1", 6 * MIB);
    backup(p, &l, name, 13, size).unwrap();
    let t0 = Instant::now();
    let got = restore_with(p, &l, name, 13, size, MIB, || w.px.permanent.stall());
    let took = t0.elapsed();
    w.px.permanent.unstall();
    eprintln!("[faults] S3 stalls for good: {got:?} after {took:?}");
    let f = got.expect_err("a restore through a server that never answers must fail");
    assert_eq!(f.status, Status(STS_ENET), "{f:?}");
    assert!(took < BOUNDED, "gave up only after {took:?}");
    let line = w
        .log_text()
        .lines()
        .rev()
        .find(|l| l.contains("stspi_read_image") && l.contains(name))
        .map(str::to_string)
        .expect("a log line for the failed read");
    assert!(line.contains("timeout"), "{line}");
    restore(p, &l, name, 13, size).unwrap();
    w.completed("nbu-bkt", name, 13, size);
    p.close_server(s).unwrap();
}

/// The S3 server goes down for good in the middle of a restore (open connections dropped,
/// new ones refused). Expected: STS_ECONNECT (or STS_ENET for a broken transfer) once the
/// retries run out; never a hang or wrong bytes; the restore works once it is back.
fn s3_down_for_good(w: &World) {
    let p = &w.plugin;
    let s = w.open("down");
    let l = lsu(s, "nbu-bkt");
    let (name, size) = ("down_1_C1_F1", 6 * MIB);
    backup(p, &l, name, 25, size).unwrap();
    let px = &w.px.down;
    let t0 = Instant::now();
    let got = restore_with(p, &l, name, 25, size, MIB, || {
        px.refuse(true);
        px.drop_all();
    });
    let took = t0.elapsed();
    px.refuse(false);
    eprintln!("[faults] S3 down for good: {got:?} after {took:?}");
    let f = got.expect_err("a restore from a server that stays down must fail");
    assert!(matches!(f.status, Status(STS_ECONNECT | STS_ENET)), "{f:?}");
    assert!(took < BOUNDED, "{took:?}");
    restore(p, &l, name, 25, size).unwrap();
    w.completed("nbu-bkt", name, 25, size);
    p.close_server(s).unwrap();
}

/// VMS stalls for good (through a proxy, 1 s request timeout) while NetBackup polls.
/// Expected: the poll fails with STS_ENET (or STS_ECONNECT) once the retries run out instead
/// of hanging, and works again when VMS answers.
fn vms_stall_for_good(w: &World) {
    let p = &w.plugin;
    let s = w.open("vmsproxy");
    p.lsu_prop(&lsu(s, "nbu-nfs")).unwrap();
    w.px.vms.stall();
    std::thread::sleep(Duration::from_millis(1100)); // capacity_ttl_secs = 1: no cached answer
    let t0 = Instant::now();
    let got = p.lsu_prop(&lsu(s, "nbu-bkt")).map(drop);
    let took = t0.elapsed();
    w.px.vms.unstall();
    eprintln!("[faults] VMS stalls for good: lsu_prop -> {got:?} after {took:?}");
    assert!(matches!(got, Err(Status(STS_ENET | STS_ECONNECT))), "{got:?}");
    assert!(took < BOUNDED, "{took:?}");
    p.lsu_prop(&lsu(s, "nbu-bkt")).unwrap();
    p.close_server(s).unwrap();
}

/// What "bounded" means for a failure that retrying cannot fix: the retry policy's 60 s
/// deadline plus one request timeout, with some room for a loaded machine.
const BOUNDED: Duration = Duration::from_secs(65);

/// Failures that do not go away: the S3 server stalls for good, the S3 server goes down for
/// good, VMS stalls for good (each described above). Each must end in a clear status within
/// the retry deadline. With the retry policy's fixed 8 attempts and 100 ms..5 s backoff (not
/// configurable), each takes 5 to 25 s here, so the three run side by side.
#[test]
fn permanent_failures_fail_clearly_in_bounded_time() {
    let w = world();
    let _g = w.shared();
    let t = Instant::now();
    std::thread::scope(|sc| {
        let jobs = [
            sc.spawn(|| s3_stall_for_good(w)),
            sc.spawn(|| s3_down_for_good(w)),
            sc.spawn(|| vms_stall_for_good(w)),
        ];
        for j in jobs {
            if let Err(e) = j.join() {
                std::panic::resume_unwind(e);
            }
        }
    });
    w.after("permanent_");
    w.after("down_");
    timed("permanent failures", t);
}

/// A 503 storm: 30% of all requests (S3 SlowDown and VMS 503) fail while a backup, a restore
/// and NetBackup's polling run. Expected: every 503 is retried with backoff; the job
/// completes, bytes identical, polling never fails.
#[test]
fn storm_of_503s_is_absorbed() {
    let w = world();
    let _g = w.exclusive();
    let t = Instant::now();
    let p = &w.plugin;
    let s = w.open("direct");
    let (l, nfs) = (lsu(s, "nbu-bkt"), lsu(s, "nbu-nfs"));
    let before = w.log_text().matches("SlowDown").count();
    w.sim.set_faults(FaultConfig { error_rate: 0.3, plane: Plane::All, seed: 503, ..Default::default() });
    let (name, size) = ("storm_1_C1_F1", 4 * MIB + 4321);
    let res = std::thread::scope(|sc| {
        let sv = s as usize;
        let job = sc.spawn(move || {
            let l = lsu(sv as stsp_server_handle_t, "nbu-bkt");
            backup(p, &l, name, 14, size).and_then(|()| restore(p, &l, name, 14, size))
        });
        while !job.is_finished() {
            p.lsu_prop(&l).unwrap();
            p.lsu_prop(&nfs).unwrap();
            p.server_prop(s).unwrap();
            p.images(&l, "storm_").unwrap();
            std::thread::sleep(Duration::from_millis(100));
        }
        job.join().unwrap()
    });
    w.sim.clear_faults().unwrap();
    res.unwrap();
    let slowdowns = w.log_text().matches("SlowDown").count() - before;
    assert!(slowdowns > 0, "no SlowDown was retried: the storm did not reach the plug-in");
    eprintln!("[faults] 503 storm: {slowdowns} SlowDown answers retried");
    w.completed("nbu-bkt", name, 14, size);
    p.close_server(s).unwrap();
    w.after("storm_");
    timed("503 storm", t);
}

/// The VMS access token expires in the middle of an S3 backup (twice), with capacity polls
/// in between. Expected: the control path renews the token (refresh, or login again) and the
/// data path (S3 keys, not tokens) does not notice; the backup completes, bytes identical.
#[test]
fn token_expiry_during_s3_backup() {
    let w = world();
    let _g = w.exclusive();
    let t = Instant::now();
    let p = &w.plugin;
    let s = w.open("direct");
    let l = lsu(s, "nbu-bkt");
    let (name, size) = ("token_1_C1_F1", 3 * MIB);
    let expire = || {
        w.sim.expire_access_tokens();
        std::thread::sleep(Duration::from_millis(1100)); // past capacity_ttl_secs
        p.lsu_prop(&l).unwrap();
        p.server_prop(s).unwrap();
        p.lsu_names(s).unwrap();
    };
    let renewals = || w.log_text().matches("token expired or invalid").count();
    let before = renewals();
    backup_with(p, &l, name, 15, size, MIB, expire).unwrap();
    expire();
    restore(p, &l, name, 15, size).unwrap();
    assert!(renewals() >= before + 2, "the expired token was not seen and renewed twice");
    w.completed("nbu-bkt", name, 15, size);
    p.close_server(s).unwrap();
    w.after("token_");
    timed("token expiry", t);
}

/// A VIP dies in the middle of three parallel S3 backups spread over three VIPs. Expected:
/// requests on the dead VIP fail (connection closed or refused), the endpoint is skipped
/// ("S3 endpoint ... failed; skipping it") and the streams carry on over the other two; every
/// backup completes and restores byte for byte while the VIP is still down.
#[test]
fn vip_dies_mid_backup() {
    let w = world();
    let _g = w.exclusive();
    let t = Instant::now();
    let p = &w.plugin;
    let s = w.open("direct");
    let l = lsu(s, "nbu-bkt");
    let dead = w.sim.s3_endpoints()[1].clone();
    let size = 4 * MIB + 100;
    let names: Vec<String> = (0..3).map(|i| format!("vip{i}_1_C1_F1")).collect();
    let barrier = std::sync::Barrier::new(names.len());
    std::thread::scope(|sc| {
        let jobs: Vec<_> = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let (barrier, sv) = (&barrier, s as usize);
                sc.spawn(move || {
                    let l = lsu(sv as stsp_server_handle_t, "nbu-bkt");
                    backup_with(p, &l, name, 20 + i as u64, size, 2 * MIB, || {
                        if barrier.wait().is_leader() {
                            w.sim.vip_down(1).unwrap();
                        }
                        barrier.wait();
                    })
                })
            })
            .collect();
        for j in jobs {
            j.join().unwrap().unwrap();
        }
    });
    for (i, name) in names.iter().enumerate() {
        restore(p, &l, name, 20 + i as u64, size).unwrap();
    }
    w.sim.vip_up(1).unwrap();
    let log = w.log_text();
    assert!(log.contains(&format!("S3 endpoint {dead}/ failed")), "no failover logged for {dead}");
    for (i, name) in names.iter().enumerate() {
        w.completed("nbu-bkt", name, 20 + i as u64, size);
    }
    p.close_server(s).unwrap();
    w.after("vip");
    timed("VIP dies", t);
}

/// The server restarts in the middle of a restore: every open connection is dropped and new
/// ones are refused for 400 ms (shorter than the shortest retry schedule, 7 sleeps of at
/// least 100 ms, so the outcome does not depend on jitter). Expected: the broken and refused
/// GETs are retried and the restore completes byte for byte. (A server that stays down:
/// `permanent_failures_fail_clearly_in_bounded_time`.)
#[test]
fn server_restart_mid_restore() {
    let w = world();
    let _g = w.shared();
    let t = Instant::now();
    let p = &w.plugin;
    let s = w.open("restart");
    let l = lsu(s, "nbu-bkt");
    let (name, size) = ("restart_1_C1_F1", 6 * MIB);
    backup(p, &l, name, 16, size).unwrap();
    let px = &w.px.restart;
    let before = px.stats().accepted;
    restore_with(p, &l, name, 16, size, MIB, || {
        px.refuse(true);
        px.drop_all();
        std::thread::sleep(Duration::from_millis(400));
        px.refuse(false);
    })
    .unwrap();
    assert!(px.stats().accepted > before, "the restore went on over new connections");
    w.completed("nbu-bkt", name, 16, size);
    p.close_server(s).unwrap();
    w.after("restart_");
    timed("server restart", t);
}

/// The bucket's quota (3 MiB) fills up during a 6 MiB backup. Expected: the part that would
/// pass the hard limit gets 403 QuotaExceeded, and the plug-in returns STS_ENOSPC (from a
/// write or the close), with a log line saying so; the image is not listed complete (pending,
/// with what was committed, or absent); its multipart upload is aborted. After deleting it,
/// a backup that fits succeeds.
#[test]
fn quota_full_is_enospc() {
    let w = world();
    let _g = w.shared();
    let t = Instant::now();
    let p = &w.plugin;
    let s = w.open("direct");
    let l = lsu(s, "nbu-full");
    let name = "quota_1_C1_F1";
    let f = backup(p, &l, name, 17, 2 * FULL_QUOTA).expect_err("a backup twice the quota must fail");
    eprintln!("[faults] quota full: {f:?}");
    assert_eq!(f.status, Status(STS_ENOSPC), "{f:?}");
    assert_not_complete(p, &l, name);
    let log = w.log_text();
    let line =
        log.lines().rev().find(|l| l.contains(name) && l.contains("status=2060106")).expect("log line");
    assert!(line.contains("QuotaExceeded"), "{line}");
    assert!(w.open_uploads("nbu-full", "quota_").is_empty(), "the failed upload was not aborted");
    p.delete_image(&l, &image_def(name, "", "")).unwrap();
    assert!(listed(p, &l, name).is_none());
    backup(p, &l, "quota_2_C1_F1", 18, MIB).unwrap();
    restore(p, &l, "quota_2_C1_F1", 18, MIB).unwrap();
    w.completed("nbu-full", "quota_2_C1_F1", 18, MIB);
    p.close_server(s).unwrap();
    w.after("quota_");
    timed("quota full", t);
}

/// Unmounts (lazily) when the test ends, however it ends.
struct Unmount(PathBuf);
impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The local file system behind the NFS path fills up: a 4 MiB tmpfs as the mount of an
/// NFS-only server, and an 8 MiB backup. Expected: STS_ENOSPC from a write, flush or close
/// (with a log line), the image not listed complete, and once it is deleted the space is back
/// and a backup that fits succeeds.
#[test]
fn nfs_disk_full_is_enospc() {
    let w = world();
    let _g = w.shared();
    let t = Instant::now();
    let tiny = w.dir.join("tiny");
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={TINY_FS}"), "tmpfs"])
        .arg(&tiny)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipped: cannot mount a tmpfs at {} (needs root and mount rights)", tiny.display());
        return;
    }
    let _u = Unmount(tiny.clone());
    std::fs::create_dir(tiny.join("lsu")).unwrap();
    let p = &w.plugin;
    let s = w.open("tiny");
    let l = lsu(s, "lsu");
    let name = "diskfull_1_C1_F1";
    let f = backup(p, &l, name, 19, 8 * MIB).expect_err("8 MiB cannot fit in 4 MiB");
    eprintln!("[faults] NFS disk full: {f:?}");
    assert_eq!(f.status, Status(STS_ENOSPC), "{f:?}");
    assert_not_complete(p, &l, name);
    let log = w.log_text();
    assert!(log.lines().any(|l| l.contains(name) && l.contains("status=2060106")), "no ENOSPC log line");
    p.delete_image(&l, &image_def(name, "", "")).unwrap();
    assert!(listed(p, &l, name).is_none());
    backup(p, &l, "diskfull_2_C1_F1", 20, MIB).unwrap();
    restore(p, &l, "diskfull_2_C1_F1", 20, MIB).unwrap();
    p.close_server(s).unwrap();
    w.after("diskfull_");
    timed("NFS disk full", t);
}

/// The writing process is killed (`kill -9`) mid-backup: a forked child writes an S3 and an
/// NFS image, commits a checkpoint (flush), goes on writing, and is killed. Expected: neither
/// image is ever listed complete: each is pending (the checkpoint) or absent. The S3 image's
/// multipart upload stays open (an orphan for the cleanup command; deleting the image aborts
/// it, checked here).
#[test]
fn killed_writer_leaves_nothing_complete() {
    let w = world();
    let _g = w.shared();
    let t = Instant::now();
    let p = &w.plugin;
    let ready = w.dir.join("child-ready");
    let images = [("nbu-bkt", "killed_1_C1_F1"), ("nbu-nfs", "killed_2_C1_F1")];
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // The child: bptm writing two streams. Never returns.
        let run = || -> Option<()> {
            let s = p.open_server("VastData:direct", w.sim.admin_user(), w.sim.admin_password()).ok()?;
            let mut buf = vec![0u8; BLOCK];
            let mut hs = Vec::new();
            for (l, name) in images {
                hs.push(p.create_image(&lsu(s, l), &image_def(name, "1700000000", "faults")).ok()?);
            }
            let mut off = 0;
            loop {
                for &h in &hs {
                    pattern(21, off, &mut buf);
                    p.write(h, &buf, off).ok()?;
                }
                off += BLOCK as u64;
                if off == 2 * MIB {
                    for &h in &hs {
                        p.flush(h).ok()?;
                    }
                }
                if off == 3 * MIB + BLOCK as u64 {
                    std::fs::write(&ready, b"1").ok()?; // mid-part of the second piece
                }
                if off >= 3 * MIB + BLOCK as u64 {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        };
        let _ = run();
        unsafe { libc::_exit(1) };
    }
    let start = Instant::now();
    while !ready.exists() {
        let mut st = 0;
        if unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) } == pid {
            panic!("the child writer failed before the kill point: status {st:#x}");
        }
        if start.elapsed() > Duration::from_secs(30) {
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("the child writer did not reach the kill point");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(100));
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let mut st = 0;
    unsafe { libc::waitpid(pid, &mut st, 0) };
    assert!(libc::WIFSIGNALED(st) && libc::WTERMSIG(st) == libc::SIGKILL, "status {st:#x}");

    let s = w.open("direct");
    for (l, name) in images {
        let l = lsu(s, l);
        assert_not_complete(p, &l, name);
        let i = listed(p, &l, name).expect("the checkpoint made the image pending");
        eprintln!("[faults] killed writer: {name} listed with flags {:#x}, size {}", i.imo_flags, i.imo_size);
        assert_eq!(i.imo_size, 2 * MIB, "{name}: the checkpointed size");
        // A read of the pending image: what the checkpoint committed, byte for byte.
        restore(p, &l, name, 21, 2 * MIB).unwrap();
    }
    let orphans = w.open_uploads("nbu-bkt", "killed_");
    eprintln!("[faults] killed writer: {} multipart upload(s) left open (orphans)", orphans.len());
    for (l, name) in images {
        p.delete_image(&lsu(s, l), &image_def(name, "", "")).unwrap();
        assert!(listed(p, &lsu(s, l), name).is_none());
    }
    p.close_server(s).unwrap();
    w.after("killed_");
    timed("killed writer", t);
}

/// An image is deleted while a restore reads it (S3 with read-ahead, and NFS). Expected: each
/// read either returns the right bytes or fails with a clear status (STS_ENOENT: the objects
/// are gone); never wrong bytes, a crash or a hang. On NFS, files already open stay readable.
#[test]
fn image_deleted_while_read() {
    let w = world();
    let _g = w.shared();
    let t = Instant::now();
    let p = &w.plugin;
    let s = w.open("direct");
    for (l, name) in [("nbu-bkt", "deleted_1_C1_F1"), ("nbu-nfs", "deleted_2_C1_F1")] {
        let l = lsu(s, l);
        let size = 6 * MIB;
        backup(p, &l, name, 22, size).unwrap();
        let got = restore_with(p, &l, name, 22, size, MIB, || {
            p.delete_image(&l, &image_def(name, "", "")).unwrap();
        });
        eprintln!("[faults] deleted while read: {name}: {got:?}");
        if let Err(f) = got {
            assert!(matches!(f.status, Status(STS_ENOENT)), "{name}: {f:?}");
        }
        assert!(listed(p, &l, name).is_none());
        assert_eq!(p.open_image(&l, &image_def(name, "", ""), STS_O_READ).err(), Some(Status(STS_ENOENT)));
    }
    p.close_server(s).unwrap();
    w.after("deleted_");
    timed("deleted while read", t);
}

/// A slow link: everything to and from S3 throttled to 3 MiB/s. Expected: the backup and the
/// restore take at least as long as the bytes need on that link, and neither fails.
#[test]
fn slow_link_slows_but_does_not_fail() {
    let w = world();
    let _g = w.shared();
    let t = Instant::now();
    let p = &w.plugin;
    let s = w.open("slow");
    let l = lsu(s, "nbu-bkt");
    let (name, size) = ("slow_1_C1_F1", 4 * MIB);
    let rate = 3 * MIB;
    w.px.slow.throttle(rate);
    let t0 = Instant::now();
    backup(p, &l, name, 23, size).unwrap();
    restore(p, &l, name, 23, size).unwrap();
    let took = t0.elapsed();
    w.px.slow.throttle(0);
    let min = Duration::from_secs_f64((2 * size) as f64 / rate as f64 * 0.8);
    eprintln!("[faults] slow link: 2 x {} MiB at {} MiB/s in {took:?}", size >> 20, rate >> 20);
    assert!(took >= min, "{took:?} < {min:?}: the link was not slow");
    w.completed("nbu-bkt", name, 23, size);
    p.close_server(s).unwrap();
    w.after("slow_");
    timed("slow link", t);
}

/// Reset the process's peak RSS (VmHWM) to its current RSS (Linux >= 4.0).
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn vm_rss_kb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

const CONC_STREAMS: u64 = 16;
const CONC_SIZE: u64 = 6 * MIB + 999;
const CONC_POLLERS: u64 = 4;
const CONC_REREADERS: u64 = 2;

fn conc_job(i: u64) -> (&'static str, String, u64) {
    (if i.is_multiple_of(2) { "nbu-bkt" } else { "nbu-nfs" }, format!("conc{i:02}_1_C1_F1"), 100 + i)
}

/// The memory bound of the concurrency test, in bytes (see the test).
fn conc_bound() -> u64 {
    let s3_streams = CONC_STREAMS / 2 + CONC_REREADERS;
    let threads = CONC_STREAMS + CONC_POLLERS + CONC_REREADERS;
    s3_streams * PART * (WORKERS + 3) + threads * 2 * BLOCK as u64 + 16 * MIB
}

/// The body of the concurrency test, run in a forked child: `(peak RSS growth in bytes,
/// polls)`, or what went wrong.
fn conc_body(w: &World, earlier: &[(&'static str, String, u64, u64)]) -> Result<(u64, u64), String> {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
    let p = &w.plugin;
    let s = p
        .open_server("VastData:direct", w.sim.admin_user(), w.sim.admin_password())
        .map_err(|e| e.to_string())?;
    let sv = s as usize;
    if !reset_peak_rss() {
        return Err("cannot reset the peak RSS (/proc/self/clear_refs)".into());
    }
    let base_kb = vm_rss_kb();
    let (done, polls) = (AtomicBool::new(false), AtomicU64::new(0));
    let errors: Mutex<Vec<String>> = Mutex::new(Vec::new());
    std::thread::scope(|sc| {
        let mut workers = Vec::new();
        for i in 0..CONC_STREAMS {
            let errors = &errors;
            workers.push(sc.spawn(move || {
                let (ln, name, seed) = conc_job(i);
                let l = lsu(sv as stsp_server_handle_t, ln);
                let r = backup(p, &l, &name, seed, CONC_SIZE)
                    .and_then(|()| restore(p, &l, &name, seed, CONC_SIZE));
                if let Err(f) = r {
                    errors.lock().unwrap().push(format!("{name}: {f:?}"));
                }
            }));
        }
        for k in 0..CONC_POLLERS {
            let (done, polls, errors) = (&done, &polls, &errors);
            sc.spawn(move || {
                let s = sv as stsp_server_handle_t;
                let (bkt, nfs) = (lsu(s, "nbu-bkt"), lsu(s, "nbu-nfs"));
                while !done.load(Relaxed) {
                    let r = match k {
                        0 => p.server_prop(s).map(drop),
                        1 => p.lsu_prop(&bkt).map(drop),
                        2 => p.lsu_prop(&nfs).map(drop),
                        _ => p
                            .images(&bkt, "conc")
                            .and_then(|_| p.images(&nfs, ""))
                            .and_then(|_| p.lsu_names(s))
                            .map(drop),
                    };
                    if let Err(e) = r {
                        errors.lock().unwrap().push(format!("poller {k}: {e}"));
                    }
                    polls.fetch_add(1, Relaxed);
                    std::thread::sleep(Duration::from_millis(20));
                }
            });
        }
        for half in 0..CONC_REREADERS {
            let (done, errors) = (&done, &errors);
            sc.spawn(move || {
                let s = sv as stsp_server_handle_t;
                while !done.load(Relaxed) {
                    for (ln, name, seed, size) in earlier.iter().skip(half as usize).step_by(2) {
                        if let Err(f) = restore(p, &lsu(s, ln), name, *seed, *size) {
                            errors.lock().unwrap().push(format!("re-read {name}: {f:?}"));
                        }
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            });
        }
        for j in workers {
            let _ = j.join();
        }
        done.store(true, Relaxed);
    });
    let grown = vm_hwm_kb().saturating_sub(base_kb) << 10;
    p.close_server(s).map_err(|e| e.to_string())?;
    let errors = errors.into_inner().unwrap();
    if !errors.is_empty() {
        return Err(errors.join("; "));
    }
    Ok((grown, polls.load(Relaxed)))
}

/// Item 4: 16 images (8 S3 + 8 NFS, 6 MiB each) written and then read back at once by 16
/// threads, while 4 more threads poll server and LSU properties and list images, and 2
/// re-read images completed by earlier tests. Expected: every image byte-identical and listed
/// complete with its size, no poll fails, and peak RSS grows by less than
///
/// ```text
///   S3 streams × part_size × (upload_workers + 3)   (the S3 pipeline's bound per stream:
///                                                    8 writers + the 2 re-readers)
/// + threads × 2 × 256 KiB                           (this test's own block buffers)
/// + 16 MiB                                          (thread stacks, TLS and HTTP state,
///                                                    allocator slack)
/// ```
///
/// The streams run in a forked child, as in a bptm process of their own: the simulator
/// serving them stays in this process, so its buffers are not counted.
#[test]
fn sixteen_streams_at_once_with_polling() {
    let w = world();
    let _g = w.exclusive();
    let t = Instant::now();
    let p = &w.plugin;
    let earlier: Vec<(&'static str, String, u64, u64)> = w
        .done
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|d| (d.lsu, d.name.clone(), d.seed, d.size))
        .collect();
    let result = w.dir.join("conc-result");
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| conc_body(w, &earlier)));
        let line = match r {
            Ok(Ok((grown, polls))) => format!("ok {grown} {polls}"),
            Ok(Err(e)) => format!("error {e}"),
            Err(_) => "error panicked".to_string(),
        };
        let _ = std::fs::write(&result, line);
        unsafe { libc::_exit(0) };
    }
    let start = Instant::now();
    let mut st = 0;
    while unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) } != pid {
        if start.elapsed() > Duration::from_secs(120) {
            unsafe { libc::kill(pid, libc::SIGKILL) };
            unsafe { libc::waitpid(pid, &mut st, 0) };
            panic!("the 16 streams did not finish in 120 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = std::fs::read_to_string(&result).unwrap_or_else(|_| format!("no result, status {st:#x}"));
    let mut it = out.split_whitespace();
    assert_eq!(it.next(), Some("ok"), "{out}");
    let (grown, polls): (u64, u64) =
        (it.next().unwrap().parse().unwrap(), it.next().unwrap().parse().unwrap());
    let bound = conc_bound();
    eprintln!(
        "[faults] 16 streams: {polls} polls, peak RSS +{} MiB (bound {} MiB)",
        grown >> 20,
        bound >> 20
    );
    assert!(grown < bound, "peak RSS grew by {} MiB, over the {} MiB bound", grown >> 20, bound >> 20);
    assert!(polls > 0);
    let s = w.open("direct");
    for i in 0..CONC_STREAMS {
        let (ln, name, seed) = conc_job(i);
        let i = listed(p, &lsu(s, ln), &name).unwrap_or_else(|| panic!("{name} not listed"));
        assert_eq!((i.imo_flags, i.imo_size), (STS_II_IMAGE_CREATED, CONC_SIZE), "{name}");
        w.completed(ln, &name, seed, CONC_SIZE);
    }
    p.close_server(s).unwrap();
    w.after("conc");
    timed("16 streams", t);
}
