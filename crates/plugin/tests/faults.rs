//! Faults through the C interface (issue 5, items 3 and 4): the built `.so` against the VAST
//! simulator, with a fault-injecting TCP proxy (`vast_sim::proxy`) between the plug-in and the
//! S3 data plane (or VMS) and the simulator's own knobs. Each test writes down the outcome it
//! expects and asserts it; after each, `World::after` checks that no multipart upload is left
//! open on the scenario's images or on any completed image, and that no byte of any image
//! completed so far (by any test) changed on storage. `docs/interface.md` ("Faults and bad
//! input") lists every scenario with its outcome and test.
//!
//! Every test is a [`scenario`]: it takes the world's lock, is timed, and ends with those
//! checks; its steps go through a [`Server`] (back up, restore, list, delete an [`Img`]).
//! Tests that turn the simulator's global knobs (503s, VIPs, tokens) or measure the process's
//! memory are `exclusive`; the others (each on its own proxy) run side by side.
//!
//! Small images (a few MiB), 1 MiB parts (`allow_small_parts`, the simulator's minimum part
//! lowered to 64 KiB) and short per-request timeouts keep the run short. The retry policy is
//! left at its defaults (8 attempts, 60 s deadline, 100 ms..5 s backoff), which bounds how fast
//! a permanent failure is reported (see `permanent_failures_fail_clearly_in_bounded_time`).

mod common;

use std::collections::BTreeMap;
use std::hash::Hasher;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use common::*;
use vast_ost_engine::filter::LsuFilter;
use vast_ost_engine::store::s3::{S3Settings, S3Store};
use vast_ost_host::abi::*;
use vast_ost_host::{get_str, image_def, lsu, Plugin, Status};
use vast_sim::proxy::{Dir, Proxy};
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

/// An image of a scenario: its LSU, its name, and the pattern seed and size it is written with.
#[derive(Debug, Clone)]
struct Img {
    lsu: &'static str,
    name: String,
    seed: u64,
    size: u64,
}

fn img(lsu: &'static str, name: &str, seed: u64, size: u64) -> Img {
    Img { lsu, name: name.to_string(), seed, size }
}

impl Img {
    /// The definition that names it for open, delete and listing (any date).
    fn def(&self) -> sts_image_def_t {
        image_def(&self.name, "", "")
    }
}

/// An image some test completed: it must stay listed complete, byte for byte, to the end.
struct Done {
    img: Img,
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
        // SAFETY: registers a plain function that reads only a static set before it.
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
        let c = Cluster::start(&dir, cfg);
        c.nfs_view("nbu-nfs", "/nbu/nfs");
        let (ak, sk) = c.s3_user("nbu-s3", 50001);
        for (bucket, path) in [("nbu-bkt", "/nbu/bkt"), ("nbu-full", "/nbu/full")] {
            c.bucket(bucket, path, "nbu-s3");
        }
        c.quota("nbu-full", "/nbu/full", FULL_QUOTA);
        let sim = c.sim;

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
        let (vms_url, root, ca) = (sim.vms_url(), sim.root().display().to_string(), c.ca.display().to_string());
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
        let plugin = load_plugin(&cfg_path, &log);
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

    fn try_open(&self, server: &str) -> Result<Server<'_>, Status> {
        let name = format!("VastData:{server}");
        let h = self.plugin.open_server(&name, self.sim.admin_user(), self.sim.admin_password())?;
        Ok(Server { w: self, h: h as usize })
    }

    fn open(&self, server: &str) -> Server<'_> {
        self.try_open(server).unwrap_or_else(|e| panic!("open_server {server}: {e}"))
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
    fn completed(&self, i: &Img) {
        let print = fingerprint(&self.image_dir(i.lsu, &i.name));
        self.done.lock().unwrap_or_else(|p| p.into_inner()).push(Done { img: i.clone(), print });
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
        let s = self.open("direct");
        let mut by_lsu: BTreeMap<&str, Vec<&Done>> = BTreeMap::new();
        for d in done.iter() {
            by_lsu.entry(d.img.lsu).or_default().push(d);
        }
        for (l, images) in by_lsu {
            let listed = self.plugin.images(&s.lsu(l), "").unwrap();
            if l != "nbu-nfs" {
                let open: Vec<_> = self
                    .open_uploads(l, "")
                    .into_iter()
                    .filter(|(k, _)| images.iter().any(|d| k.starts_with(&format!("{}/", d.img.name))))
                    .collect();
                assert!(open.is_empty(), "uploads open on completed images: {open:?}");
            }
            for d in images {
                let Img { name, size, .. } = &d.img;
                let i = listed
                    .iter()
                    .find(|i| get_str(&i.imo_def.img_basename) == *name)
                    .unwrap_or_else(|| panic!("completed image {l}/{name} is no longer listed"));
                assert_eq!(i.imo_flags, STS_II_IMAGE_CREATED, "{l}/{name}: flags changed");
                assert_eq!(i.imo_size, *size, "{l}/{name}: size changed");
                assert_eq!(fingerprint(&self.image_dir(l, name)), d.print, "{l}/{name}: bytes changed");
            }
        }
        s.close();
    }
}

/// A hash of every file (name and content) below `dir`, in name order.
fn fingerprint(dir: &Path) -> u64 {
    let mut files = files_below(dir);
    files.sort();
    assert!(!files.is_empty(), "nothing stored under {}", dir.display());
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for f in files {
        h.write(f.to_string_lossy().as_bytes());
        h.write(&std::fs::read(&f).unwrap());
    }
    h.finish()
}

/// A scenario's frame, the same for every test: hold the world's lock for the whole scenario
/// (shared; `exclusive` for the simulator's global knobs and memory measurements), time it,
/// and afterwards run [`World::after`] on each image prefix it used.
struct Scenario {
    what: &'static str,
    prefixes: Vec<&'static str>,
    exclusive: bool,
}

/// A scenario named `what` (for its timing line) whose images start with `prefix`.
fn scenario(what: &'static str, prefix: &'static str) -> Scenario {
    Scenario { what, prefixes: vec![prefix], exclusive: false }
}

impl Scenario {
    fn exclusive(self) -> Scenario {
        Scenario { exclusive: true, ..self }
    }

    /// Images starting with `prefix` are the scenario's too.
    fn and_prefix(mut self, prefix: &'static str) -> Scenario {
        self.prefixes.push(prefix);
        self
    }

    fn run(self, steps: impl FnOnce(&'static World)) {
        let w = world();
        let (_shared, _exclusive);
        if self.exclusive {
            _exclusive = w.exclusive();
        } else {
            _shared = w.shared();
        }
        let t = Instant::now();
        steps(w);
        for prefix in &self.prefixes {
            w.after(prefix);
        }
        eprintln!("[faults] {}: {:.1} s", self.what, t.elapsed().as_secs_f64());
    }

    /// [`Scenario::run`] with `server` open for the steps, closed after them.
    fn run_on(self, server: &'static str, steps: impl FnOnce(&Server)) {
        self.run(|w| {
            let s = w.open(server);
            steps(&s);
            s.close();
        })
    }
}

/// Where a job failed: the call, the image offset, the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fail {
    call: &'static str,
    off: u64,
    status: Status,
}

/// A storage server open on the world's plug-in. The handle is kept as a number, so a
/// `&Server` goes to a scenario's threads (every export may be called from any thread).
struct Server<'w> {
    w: &'w World,
    h: usize,
}

impl Server<'_> {
    fn handle(&self) -> stsp_server_handle_t {
        self.h as stsp_server_handle_t
    }

    fn lsu(&self, name: &str) -> sts_lsu_t {
        lsu(self.handle(), name)
    }

    fn close(self) {
        self.w.plugin.close_server(self.handle()).unwrap();
    }

    /// Write the image (its pattern, in 256 KiB blocks) and close complete; `pause` runs once
    /// after the first `pause_at` bytes (to inject a fault mid-backup). After a failed write
    /// the image is still closed COMPLETE, which must fail.
    fn backup_with(&self, i: &Img, pause_at: u64, mut pause: impl FnMut()) -> Result<(), Fail> {
        let (p, l) = (&self.w.plugin, self.lsu(i.lsu));
        let h = p.create_image(&l, &image_def(&i.name, "1700000000", "faults")).map_err(|status| Fail {
            call: "create_image",
            off: 0,
            status,
        })?;
        let mut buf = vec![0u8; BLOCK];
        let mut off = 0;
        let mut paused = false;
        while off < i.size {
            if !paused && off >= pause_at {
                pause();
                paused = true;
            }
            let n = BLOCK.min((i.size - off) as usize);
            pattern(i.seed, off, &mut buf[..n]);
            if let Err(status) = p.write(h, &buf[..n], off) {
                // A host that closes COMPLETE anyway must not get a complete image with a hole.
                let close = p.close_image(h, STS_CLOSEF_IH_COMPLETE);
                assert!(
                    close.is_err(),
                    "{}: close COMPLETE after a failed write ({status}) succeeded",
                    i.name
                );
                return Err(Fail { call: "write_image", off, status });
            }
            off += n as u64;
        }
        p.close_image(h, STS_CLOSEF_IH_COMPLETE).map_err(|status| Fail { call: "close_image", off, status })
    }

    fn backup(&self, i: &Img) -> Result<(), Fail> {
        self.backup_with(i, u64::MAX, || {})
    }

    /// Read the whole image in 256 KiB reads, comparing with its pattern (wrong bytes panic),
    /// and check its size; `pause` runs once after `pause_at` bytes.
    fn restore_with(&self, i: &Img, pause_at: u64, mut pause: impl FnMut()) -> Result<(), Fail> {
        let (p, l) = (&self.w.plugin, self.lsu(i.lsu));
        let h = p.open_image(&l, &i.def(), STS_O_READ).map_err(|status| Fail {
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
                    pattern(i.seed, off, &mut want[..n]);
                    assert!(got[..n] == want[..n], "{}: WRONG BYTES in [{off}, {})", i.name, off + n as u64);
                    off += n as u64;
                }
                Err(status) => break Err(Fail { call: "read_image", off, status }),
            }
        };
        p.close_image(h, 0).unwrap();
        res?;
        assert_eq!(off, i.size, "{}: restored size", i.name);
        Ok(())
    }

    fn restore(&self, i: &Img) -> Result<(), Fail> {
        self.restore_with(i, u64::MAX, || {})
    }

    /// Back up and restore, both without a fault.
    fn round_trip(&self, i: &Img) {
        self.backup(i).unwrap();
        self.restore(i).unwrap();
    }

    /// The image's listing entry, if listed.
    fn listed(&self, i: &Img) -> Option<sts_image_info_t> {
        let all = self.w.plugin.images(&self.lsu(i.lsu), &i.name).unwrap();
        all.into_iter().find(|e| get_str(&e.imo_def.img_basename) == i.name)
    }

    fn assert_not_complete(&self, i: &Img) {
        if let Some(e) = self.listed(i) {
            assert_eq!(e.imo_flags & STS_II_IMAGE_CREATED, 0, "{} is listed complete", i.name);
            assert_ne!(e.imo_flags & STS_II_IMAGE_PENDING, 0, "{}: flags {:#x}", i.name, e.imo_flags);
        }
    }

    fn delete(&self, i: &Img) {
        self.w.plugin.delete_image(&self.lsu(i.lsu), &i.def()).unwrap();
    }

    /// Record the image as completed and verified: [`World::after`] checks it from now on.
    fn completed(&self, i: &Img) {
        self.w.completed(i);
    }
}

/// Connection reset mid-part. Expected: the proxy resets the upload connection in the middle
/// of a part's body (twice); each broken PUT is a transport error that the S3 client retries
/// on a fresh connection, so the backup completes and restores byte for byte. The same on the
/// way back: resets in the middle of ranged GETs are retried and the restore is identical.
#[test]
fn reset_mid_part_is_retried() {
    scenario("reset mid-part", "reset_").run_on("reset", |s| {
        let px = &s.w.px.reset;
        let i = img("nbu-bkt", "reset_1_C1_F1", 11, 5 * MIB + 12345);
        px.reset_after(Dir::Up, 3 * MIB / 2, 2);
        s.backup(&i).unwrap();
        assert_eq!(px.stats().resets, 2, "both resets happened during the upload");
        px.reset_after(Dir::Down, 3 * MIB / 2, 2);
        s.restore(&i).unwrap();
        assert_eq!(px.stats().resets, 4, "both resets happened during the restore");
        px.clear();
        s.restore(&i).unwrap();
        s.completed(&i);
    });
}

/// The server stalls for 2.5 s in the middle of a backup (while parts are in flight) and of a
/// restore, with a 1 s per-request timeout (`[server.s3] timeout_secs = 1`). Expected: the
/// stalled requests time out, are retried with backoff, and succeed once the stall ends; the
/// job completes well within the retry deadline, bytes identical. (A stall on the
/// CreateMultipartUpload itself: `stall_on_create_multipart_upload_leaves_no_orphan`.)
#[test]
fn transient_stall_is_retried() {
    scenario("transient stall", "stall_").run_on("stall", |s| {
        let t = Instant::now();
        let i = img("nbu-bkt", "stall_1_C1_F1", 12, 4 * MIB + 777);
        let stall = || s.w.px.stall.stall_for(Duration::from_millis(2500));
        // At 2.25 MiB the piece's multipart upload exists (created when part 1 was handed over,
        // at the write after the first MiB): the stall holds part uploads, not the create.
        s.backup_with(&i, 2 * MIB + BLOCK as u64, stall).unwrap();
        s.restore_with(&i, MIB, stall).unwrap();
        assert!(t.elapsed() < Duration::from_secs(40), "took {:?}", t.elapsed());
        s.completed(&i);
    });
}

/// The server takes a piece's CreateMultipartUpload (the write after the first part is full)
/// but answers it only after 2.5 s, past the 1 s request timeout. Expected: the backup
/// completes (the create is retried) and no multipart upload is left open: an upload whose
/// create answer was lost is found and aborted (the create is a POST, not idempotent).
#[test]
fn stall_on_create_multipart_upload_leaves_no_orphan() {
    scenario("stall on create", "stallcreate_").run_on("answers", |s| {
        let i = img("nbu-bkt", "stallcreate_1_C1_F1", 24, 3 * MIB);
        let stall = || s.w.px.answers.stall_answers_for(Duration::from_millis(2500));
        s.backup_with(&i, PART, stall).unwrap();
        s.restore(&i).unwrap();
        let orphans = s.w.open_uploads("nbu-bkt", &i.name);
        // Clean up before asserting, so a failure here does not spill into other tests' checks:
        // deleting the image aborts its open uploads.
        s.delete(&i);
        assert!(orphans.is_empty(), "multipart uploads left open on the completed image: {orphans:?}");
    });
}

/// The S3 server stalls for good during a restore (1 s request timeout). Expected: the read
/// fails with STS_ENET once the retries run out, with a log line naming the timeout; the
/// handle closes, and the image is untouched (it restores once the server answers again).
fn s3_stall_for_good(w: &World) {
    let s = w.open("permanent");
    // Larger than the read-ahead window (4 ranges of 1 MiB), so the restore needs the
    // server after the stall begins.
    let i = img("nbu-bkt", "permanent_1_C1_F1", 13, 6 * MIB);
    s.backup(&i).unwrap();
    let t0 = Instant::now();
    let got = s.restore_with(&i, MIB, || w.px.permanent.stall());
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
        .find(|l| l.contains("stspi_read_image") && l.contains(&i.name))
        .map(str::to_string)
        .expect("a log line for the failed read");
    assert!(line.contains("timeout"), "{line}");
    s.restore(&i).unwrap();
    s.completed(&i);
    s.close();
}

/// The S3 server goes down for good in the middle of a restore (open connections dropped,
/// new ones refused). Expected: STS_ECONNECT (or STS_ENET for a broken transfer) once the
/// retries run out; never a hang or wrong bytes; the restore works once it is back.
fn s3_down_for_good(w: &World) {
    let s = w.open("down");
    let i = img("nbu-bkt", "down_1_C1_F1", 25, 6 * MIB);
    s.backup(&i).unwrap();
    let px = &w.px.down;
    let t0 = Instant::now();
    let got = s.restore_with(&i, MIB, || {
        px.refuse(true);
        px.drop_all();
    });
    let took = t0.elapsed();
    px.refuse(false);
    eprintln!("[faults] S3 down for good: {got:?} after {took:?}");
    let f = got.expect_err("a restore from a server that stays down must fail");
    assert!(matches!(f.status, Status(STS_ECONNECT | STS_ENET)), "{f:?}");
    assert!(took < BOUNDED, "{took:?}");
    s.restore(&i).unwrap();
    s.completed(&i);
    s.close();
}

/// VMS stalls for good (through a proxy, 1 s request timeout) while NetBackup polls.
/// Expected: the poll fails with STS_ENET (or STS_ECONNECT) once the retries run out instead
/// of hanging, and works again when VMS answers.
fn vms_stall_for_good(w: &World) {
    let p = &w.plugin;
    let s = w.open("vmsproxy");
    p.lsu_prop(&s.lsu("nbu-nfs")).unwrap();
    w.px.vms.stall();
    std::thread::sleep(Duration::from_millis(1100)); // capacity_ttl_secs = 1: no cached answer
    let t0 = Instant::now();
    let got = p.lsu_prop(&s.lsu("nbu-bkt")).map(drop);
    let took = t0.elapsed();
    w.px.vms.unstall();
    eprintln!("[faults] VMS stalls for good: lsu_prop -> {got:?} after {took:?}");
    assert!(matches!(got, Err(Status(STS_ENET | STS_ECONNECT))), "{got:?}");
    assert!(took < BOUNDED, "{took:?}");
    p.lsu_prop(&s.lsu("nbu-bkt")).unwrap();
    s.close();
}

/// What "bounded" means for a failure that retrying cannot fix: the retry policy's 60 s
/// deadline plus one request timeout, with some room for a loaded machine.
const BOUNDED: Duration = Duration::from_secs(65);

/// Failures that do not go away: the S3 server stalls for good, the S3 server goes down for
/// good, VMS stalls for good (each described above). Each must end in a clear status within
/// the retry deadline. With the retry policy's default 8 attempts and 100 ms..5 s backoff,
/// each takes 5 to 25 s here, so the three run side by side.
#[test]
fn permanent_failures_fail_clearly_in_bounded_time() {
    scenario("permanent failures", "permanent_").and_prefix("down_").run(|w| {
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
    });
}

/// A 503 storm: 30% of all requests (S3 SlowDown and VMS 503) fail while a backup, a restore
/// and NetBackup's polling run. Expected: every 503 is retried with backoff; the job
/// completes, bytes identical, polling never fails.
#[test]
fn storm_of_503s_is_absorbed() {
    scenario("503 storm", "storm_").exclusive().run_on("direct", |s| {
        let (w, p) = (s.w, &s.w.plugin);
        let (l, nfs) = (s.lsu("nbu-bkt"), s.lsu("nbu-nfs"));
        let before = w.log_text().matches("SlowDown").count();
        w.sim.set_faults(FaultConfig { error_rate: 0.3, plane: Plane::All, seed: 503, ..Default::default() });
        let i = img("nbu-bkt", "storm_1_C1_F1", 14, 4 * MIB + 4321);
        let res = std::thread::scope(|sc| {
            let job = sc.spawn(|| s.backup(&i).and_then(|()| s.restore(&i)));
            while !job.is_finished() {
                p.lsu_prop(&l).unwrap();
                p.lsu_prop(&nfs).unwrap();
                p.server_prop(s.handle()).unwrap();
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
        s.completed(&i);
    });
}

/// The VMS access token expires in the middle of an S3 backup (twice), with capacity polls
/// in between. Expected: the control path renews the token (refresh, or login again) and the
/// data path (S3 keys, not tokens) does not notice; the backup completes, bytes identical.
#[test]
fn token_expiry_during_s3_backup() {
    scenario("token expiry", "token_").exclusive().run_on("direct", |s| {
        let (w, p) = (s.w, &s.w.plugin);
        let l = s.lsu("nbu-bkt");
        let i = img("nbu-bkt", "token_1_C1_F1", 15, 3 * MIB);
        let expire = || {
            w.sim.expire_access_tokens();
            std::thread::sleep(Duration::from_millis(1100)); // past capacity_ttl_secs
            p.lsu_prop(&l).unwrap();
            p.server_prop(s.handle()).unwrap();
            p.lsu_names(s.handle()).unwrap();
        };
        let renewals = || w.log_text().matches("token expired or invalid").count();
        let before = renewals();
        s.backup_with(&i, MIB, expire).unwrap();
        expire();
        s.restore(&i).unwrap();
        assert!(renewals() >= before + 2, "the expired token was not seen and renewed twice");
        s.completed(&i);
    });
}

/// A VIP dies in the middle of three parallel S3 backups spread over three VIPs. Expected:
/// requests on the dead VIP fail (connection closed or refused), the endpoint is skipped
/// ("S3 endpoint ... failed; skipping it") and the streams carry on over the other two; every
/// backup completes and restores byte for byte while the VIP is still down.
#[test]
fn vip_dies_mid_backup() {
    scenario("VIP dies", "vip").exclusive().run_on("direct", |s| {
        let w = s.w;
        let dead = w.sim.s3_endpoints()[1].clone();
        let images: Vec<Img> =
            (0..3).map(|n| img("nbu-bkt", &format!("vip{n}_1_C1_F1"), 20 + n, 4 * MIB + 100)).collect();
        let barrier = std::sync::Barrier::new(images.len());
        std::thread::scope(|sc| {
            let jobs: Vec<_> = images
                .iter()
                .map(|i| {
                    let barrier = &barrier;
                    sc.spawn(move || {
                        s.backup_with(i, 2 * MIB, || {
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
        for i in &images {
            s.restore(i).unwrap();
        }
        w.sim.vip_up(1).unwrap();
        let log = w.log_text();
        assert!(log.contains(&format!("S3 endpoint {dead}/ failed")), "no failover logged for {dead}");
        for i in &images {
            s.completed(i);
        }
    });
}

/// The server restarts in the middle of a restore: every open connection is dropped and new
/// ones are refused for 400 ms (shorter than the shortest retry schedule, 7 sleeps of at
/// least 100 ms, so the outcome does not depend on jitter). Expected: the broken and refused
/// GETs are retried and the restore completes byte for byte. (A server that stays down:
/// `permanent_failures_fail_clearly_in_bounded_time`.)
#[test]
fn server_restart_mid_restore() {
    scenario("server restart", "restart_").run_on("restart", |s| {
        let i = img("nbu-bkt", "restart_1_C1_F1", 16, 6 * MIB);
        s.backup(&i).unwrap();
        let px = &s.w.px.restart;
        let before = px.stats().accepted;
        s.restore_with(&i, MIB, || {
            px.refuse(true);
            px.drop_all();
            std::thread::sleep(Duration::from_millis(400));
            px.refuse(false);
        })
        .unwrap();
        assert!(px.stats().accepted > before, "the restore went on over new connections");
        s.completed(&i);
    });
}

/// The bucket's quota (3 MiB) fills up during a 6 MiB backup. Expected: the part that would
/// pass the hard limit gets 403 QuotaExceeded, and the plug-in returns STS_ENOSPC (from a
/// write or the close), with a log line saying so; the image is not listed complete (pending,
/// with what was committed, or absent); its multipart upload is aborted. After deleting it,
/// a backup that fits succeeds.
#[test]
fn quota_full_is_enospc() {
    scenario("quota full", "quota_").run_on("direct", |s| {
        let w = s.w;
        let i = img("nbu-full", "quota_1_C1_F1", 17, 2 * FULL_QUOTA);
        let f = s.backup(&i).expect_err("a backup twice the quota must fail");
        eprintln!("[faults] quota full: {f:?}");
        assert_eq!(f.status, Status(STS_ENOSPC), "{f:?}");
        s.assert_not_complete(&i);
        let log = w.log_text();
        let line = log
            .lines()
            .rev()
            .find(|l| l.contains(&i.name) && l.contains("status=2060106"))
            .expect("log line");
        assert!(line.contains("QuotaExceeded"), "{line}");
        assert!(w.open_uploads("nbu-full", "quota_").is_empty(), "the failed upload was not aborted");
        s.delete(&i);
        assert!(s.listed(&i).is_none());
        let fits = img("nbu-full", "quota_2_C1_F1", 18, MIB);
        s.round_trip(&fits);
        s.completed(&fits);
    });
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
    scenario("NFS disk full", "diskfull_").run(|w| {
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
        let s = w.open("tiny");
        let i = img("lsu", "diskfull_1_C1_F1", 19, 8 * MIB);
        let f = s.backup(&i).expect_err("8 MiB cannot fit in 4 MiB");
        eprintln!("[faults] NFS disk full: {f:?}");
        assert_eq!(f.status, Status(STS_ENOSPC), "{f:?}");
        s.assert_not_complete(&i);
        let log = w.log_text();
        assert!(
            log.lines().any(|l| l.contains(&i.name) && l.contains("status=2060106")),
            "no ENOSPC log line"
        );
        s.delete(&i);
        assert!(s.listed(&i).is_none());
        s.round_trip(&img("lsu", "diskfull_2_C1_F1", 20, MIB));
        s.close();
    });
}

/// The writing process is killed (`kill -9`) mid-backup: a forked child writes an S3 and an
/// NFS image, commits a checkpoint (flush), goes on writing, and is killed. Expected: neither
/// image is ever listed complete: each is pending (the checkpoint) or absent. The S3 image's
/// multipart upload stays open (an orphan for the cleanup command; deleting the image aborts
/// it, checked here).
#[test]
fn killed_writer_leaves_nothing_complete() {
    scenario("killed writer", "killed_").run(|w| {
        let p = &w.plugin;
        let ready = w.dir.join("child-ready");
        // What the checkpoint commits: the first 2 MiB of pattern 21.
        let images =
            [img("nbu-bkt", "killed_1_C1_F1", 21, 2 * MIB), img("nbu-nfs", "killed_2_C1_F1", 21, 2 * MIB)];
        let pid = fork_child(|| {
            // The child: bptm writing two streams until it is killed.
            let run = || -> Option<()> {
                let s = w.try_open("direct").ok()?;
                let mut buf = vec![0u8; BLOCK];
                let mut hs = Vec::new();
                for i in &images {
                    hs.push(p.create_image(&s.lsu(i.lsu), &image_def(&i.name, "1700000000", "faults")).ok()?);
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
            1
        });
        let start = Instant::now();
        while !ready.exists() {
            if let Some(st) = try_wait(pid) {
                panic!("the child writer failed before the kill point: status {st:#x}");
            }
            if start.elapsed() > Duration::from_secs(30) {
                kill_child(pid);
                panic!("the child writer did not reach the kill point");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(100));
        let st = kill_child(pid);
        assert!(libc::WIFSIGNALED(st) && libc::WTERMSIG(st) == libc::SIGKILL, "status {st:#x}");

        let s = w.open("direct");
        for i in &images {
            s.assert_not_complete(i);
            let e = s.listed(i).expect("the checkpoint made the image pending");
            eprintln!(
                "[faults] killed writer: {} listed with flags {:#x}, size {}",
                i.name, e.imo_flags, e.imo_size
            );
            assert_eq!(e.imo_size, i.size, "{}: the checkpointed size", i.name);
            // A read of the pending image: what the checkpoint committed, byte for byte.
            s.restore(i).unwrap();
        }
        let orphans = w.open_uploads("nbu-bkt", "killed_");
        eprintln!("[faults] killed writer: {} multipart upload(s) left open (orphans)", orphans.len());
        for i in &images {
            s.delete(i);
            assert!(s.listed(i).is_none());
        }
        s.close();
    });
}

/// An image is deleted while a restore reads it (S3 with read-ahead, and NFS). Expected: each
/// read either returns the right bytes or fails with a clear status (STS_ENOENT: the objects
/// are gone); never wrong bytes, a crash or a hang. On NFS, files already open stay readable.
#[test]
fn image_deleted_while_read() {
    scenario("deleted while read", "deleted_").run_on("direct", |s| {
        for i in
            [img("nbu-bkt", "deleted_1_C1_F1", 22, 6 * MIB), img("nbu-nfs", "deleted_2_C1_F1", 22, 6 * MIB)]
        {
            s.backup(&i).unwrap();
            let got = s.restore_with(&i, MIB, || s.delete(&i));
            eprintln!("[faults] deleted while read: {}: {got:?}", i.name);
            if let Err(f) = got {
                assert!(matches!(f.status, Status(STS_ENOENT)), "{}: {f:?}", i.name);
            }
            assert!(s.listed(&i).is_none());
            let reopen = s.w.plugin.open_image(&s.lsu(i.lsu), &i.def(), STS_O_READ);
            assert_eq!(reopen.err(), Some(Status(STS_ENOENT)));
        }
    });
}

/// A slow link: everything to and from S3 throttled to 3 MiB/s. Expected: the backup and the
/// restore take at least as long as the bytes need on that link, and neither fails.
#[test]
fn slow_link_slows_but_does_not_fail() {
    scenario("slow link", "slow_").run_on("slow", |s| {
        let px = &s.w.px.slow;
        let i = img("nbu-bkt", "slow_1_C1_F1", 23, 4 * MIB);
        let rate = 3 * MIB;
        px.throttle(rate);
        let t0 = Instant::now();
        s.round_trip(&i);
        let took = t0.elapsed();
        px.throttle(0);
        let min = Duration::from_secs_f64((2 * i.size) as f64 / rate as f64 * 0.8);
        eprintln!("[faults] slow link: 2 x {} MiB at {} MiB/s in {took:?}", i.size >> 20, rate >> 20);
        assert!(took >= min, "{took:?} < {min:?}: the link was not slow");
        s.completed(&i);
    });
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

fn conc_job(n: u64) -> Img {
    let lsu = if n.is_multiple_of(2) { "nbu-bkt" } else { "nbu-nfs" };
    img(lsu, &format!("conc{n:02}_1_C1_F1"), 100 + n, CONC_SIZE)
}

/// The memory bound of the concurrency test, in bytes (see the test).
fn conc_bound() -> u64 {
    let s3_streams = CONC_STREAMS / 2 + CONC_REREADERS;
    let threads = CONC_STREAMS + CONC_POLLERS + CONC_REREADERS;
    s3_streams * PART * (WORKERS + 3) + threads * 2 * BLOCK as u64 + 16 * MIB
}

/// The body of the concurrency test, run in a forked child: `(peak RSS growth in bytes,
/// polls)`, or what went wrong.
fn conc_body(w: &World, earlier: &[Img]) -> Result<(u64, u64), String> {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
    let p = &w.plugin;
    let s = w.try_open("direct").map_err(|e| e.to_string())?;
    if !reset_peak_rss() {
        return Err("cannot reset the peak RSS (/proc/self/clear_refs)".into());
    }
    let base_kb = vm_rss_kb();
    let (done, polls) = (AtomicBool::new(false), AtomicU64::new(0));
    let errors: Mutex<Vec<String>> = Mutex::new(Vec::new());
    std::thread::scope(|sc| {
        let (s, errors) = (&s, &errors);
        let mut workers = Vec::new();
        for n in 0..CONC_STREAMS {
            workers.push(sc.spawn(move || {
                let job = conc_job(n);
                if let Err(f) = s.backup(&job).and_then(|()| s.restore(&job)) {
                    errors.lock().unwrap().push(format!("{}: {f:?}", job.name));
                }
            }));
        }
        for k in 0..CONC_POLLERS {
            let (done, polls) = (&done, &polls);
            sc.spawn(move || {
                let (bkt, nfs) = (s.lsu("nbu-bkt"), s.lsu("nbu-nfs"));
                while !done.load(Relaxed) {
                    let r = match k {
                        0 => p.server_prop(s.handle()).map(drop),
                        1 => p.lsu_prop(&bkt).map(drop),
                        2 => p.lsu_prop(&nfs).map(drop),
                        _ => p
                            .images(&bkt, "conc")
                            .and_then(|_| p.images(&nfs, ""))
                            .and_then(|_| p.lsu_names(s.handle()))
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
            let done = &done;
            sc.spawn(move || {
                while !done.load(Relaxed) {
                    for i in earlier.iter().skip(half as usize).step_by(2) {
                        if let Err(f) = s.restore(i) {
                            errors.lock().unwrap().push(format!("re-read {}: {f:?}", i.name));
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
    p.close_server(s.handle()).map_err(|e| e.to_string())?;
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
    scenario("16 streams", "conc").exclusive().run(|w| {
        let earlier: Vec<Img> =
            w.done.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|d| d.img.clone()).collect();
        let result = w.dir.join("conc-result");
        let pid = fork_child(|| {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| conc_body(w, &earlier)));
            let line = match r {
                Ok(Ok((grown, polls))) => format!("ok {grown} {polls}"),
                Ok(Err(e)) => format!("error {e}"),
                Err(_) => "error panicked".to_string(),
            };
            let _ = std::fs::write(&result, line);
            0
        });
        let Some(st) = wait_child(pid, Duration::from_secs(120)) else {
            panic!("the 16 streams did not finish in 120 s");
        };
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
        for n in 0..CONC_STREAMS {
            let job = conc_job(n);
            let e = s.listed(&job).unwrap_or_else(|| panic!("{} not listed", job.name));
            assert_eq!((e.imo_flags, e.imo_size), (STS_II_IMAGE_CREATED, CONC_SIZE), "{}", job.name);
            s.completed(&job);
        }
        s.close();
    });
}
