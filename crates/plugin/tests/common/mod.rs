//! Shared fixture for the Rust host-harness tests: a temp "NFS mount" with LSUs, a config, a
//! log, and the built plug-in loaded by dlopen, as a NetBackup process would load it; the
//! simulated cluster of the simulator tests ([`Cluster`]), and forked children ([`fork_child`]).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use vast_ost_host::Plugin;

pub const SERVER: &str = "VastData:harness";
pub const LSUS: [&str; 2] = ["lsu1", "lsu2"];

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub plugin: Plugin,
}

impl Fixture {
    pub fn mount(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }
    pub fn log(&self) -> PathBuf {
        self.dir.path().join("vast-ost.log")
    }
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("vast-ost.toml")
    }
}

/// The built plug-in: `target/<profile>/libstspiVastDataMT.so` (tests run from `deps/`).
pub fn plugin_path() -> PathBuf {
    let p = Plugin::default_path();
    assert!(p.exists(), "{} is missing: run `cargo build` first", p.display());
    p
}

pub fn write_config(path: &Path, mount: &Path, extra: &str) {
    std::fs::write(
        path,
        format!(
            "[log]\nlevel = \"debug\"\n\n[[server]]\nname = \"{SERVER}\"\n[server.nfs]\nmount = \"{}\"\n{extra}",
            mount.display()
        ),
    )
    .unwrap();
}

/// Point the plug-in at `config` and `log`, load it and initialise it.
pub fn load_plugin(config: &Path, log: &Path) -> Plugin {
    std::env::set_var("VAST_OST_CONFIG", config);
    std::env::set_var("VAST_OST_LOG", log);
    std::env::set_var("VAST_OST_CACHE_DIR", log.with_file_name("cache"));
    let plugin = Plugin::load(&plugin_path()).unwrap();
    plugin.init().unwrap();
    plugin
}

/// One plug-in per test process (dlopen returns the same library to every caller, as in a
/// NetBackup process): initialised once, shared by every test thread.
pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let mount = dir.path().join("mnt");
        for l in LSUS {
            std::fs::create_dir_all(mount.join(l)).unwrap();
        }
        let config = dir.path().join("vast-ost.toml");
        write_config(&config, &mount, "");
        let plugin = load_plugin(&config, &dir.path().join("vast-ost.log"));
        Fixture { dir, plugin }
    })
}

/// Deterministic bytes at image offset `off`, the same whatever the block split; fast enough
/// for GiBs (one multiply per 8 bytes).
pub fn pattern(seed: u64, off: u64, buf: &mut [u8]) {
    let mut i = 0;
    while i < buf.len() {
        let pos = off + i as u64;
        let word = (pos / 8).wrapping_add(seed).wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes();
        let start = (pos % 8) as usize;
        let n = (8 - start).min(buf.len() - i);
        buf[i..i + n].copy_from_slice(&word[start..start + n]);
        i += n;
    }
}

/// Peak resident memory of this process, from /proc (kB).
pub fn vm_hwm_kb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Page-aligned scratch of two blocks, as NetBackup's shared-memory buffers are aligned.
pub struct Aligned {
    raw: Vec<u8>,
    skip: usize,
    block: usize,
}

impl Aligned {
    pub fn new(block: usize) -> Aligned {
        let raw = vec![0u8; 2 * block + 4096];
        let skip = raw.as_ptr().align_offset(4096);
        Aligned { raw, skip, block }
    }
    /// The data buffer and a second one for expected bytes.
    pub fn pair(&mut self) -> (&mut [u8], &mut [u8]) {
        self.raw[self.skip..self.skip + 2 * self.block].split_at_mut(self.block)
    }
}

/// Create `def` on `l` and write `size` bytes of pattern `seed` in `buf`-sized blocks, then
/// close complete.
pub fn write_pattern(
    p: &vast_ost_host::Plugin,
    l: &vast_ost_host::abi::sts_lsu_t,
    def: &vast_ost_host::abi::sts_image_def_t,
    seed: u64,
    size: u64,
    buf: &mut [u8],
) {
    let h = p.create_image(l, def).unwrap();
    let mut off = 0;
    while off < size {
        let n = buf.len().min((size - off) as usize);
        pattern(seed, off, &mut buf[..n]);
        p.write(h, &buf[..n], off).unwrap();
        off += n as u64;
    }
    p.close_image(h, vast_ost_host::abi::STS_CLOSEF_IH_COMPLETE).unwrap();
}

/// Read `def` sequentially into `buf`-sized reads and compare with pattern `seed`; returns the
/// bytes read.
pub fn read_verify(
    p: &vast_ost_host::Plugin,
    l: &vast_ost_host::abi::sts_lsu_t,
    def: &vast_ost_host::abi::sts_image_def_t,
    seed: u64,
    buf: &mut [u8],
    want: &mut [u8],
) -> u64 {
    let h = p.open_image(l, def, vast_ost_host::abi::STS_O_READ).unwrap();
    let mut off = 0;
    loop {
        let n = p.read(h, buf, off).unwrap();
        if n == 0 {
            break;
        }
        pattern(seed, off, &mut want[..n]);
        assert!(buf[..n] == want[..n], "bytes differ in [{off}, {})", off + n as u64);
        off += n as u64;
    }
    p.close_image(h, 0).unwrap();
    off
}

/// A VMS client logged in as the simulator's admin, trusting its CA: what an admin uses to
/// provision views, quotas and keys before a test.
pub fn admin(sim: &vast_sim::Sim, ca: &Path) -> vast_ost_engine::vms::Vms {
    use vast_ost_engine::vms::{AuthScheme, Vms, VmsSettings};
    use vast_ost_engine::{Credentials, Secret};
    let s = VmsSettings {
        address: sim.vms_url().to_string(),
        api_version: "latest".into(),
        tenant: None,
        auth: AuthScheme::Jwt,
        tls: vast_ost_engine::http::TlsSettings { ca_file: Some(ca.to_path_buf()), insecure: false },
        timeout_secs: 10,
    };
    let c = Credentials { user: sim.admin_user().into(), password: Secret::new(sim.admin_password()) };
    Vms::connect(&s, &c).unwrap()
}

/// A simulated VAST cluster with its CA certificate in `<dir>/ca.pem` and an admin's VMS
/// client, to provision views, buckets, quotas and keys as an admin would before a test.
pub struct Cluster {
    pub sim: vast_sim::Sim,
    pub ca: PathBuf,
    pub vms: vast_ost_engine::vms::Vms,
}

impl Cluster {
    pub fn start(dir: &Path, cfg: vast_sim::SimConfig) -> Cluster {
        let sim = vast_sim::Sim::start(cfg).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, sim.ca_pem().unwrap()).unwrap();
        let vms = admin(&sim, &ca);
        Cluster { sim, ca, vms }
    }

    /// An NFS view (policy 1).
    pub fn nfs_view(&self, name: &str, path: &str) {
        let view = serde_json::json!({"name": name, "path": path, "policy_id": 1, "protocols": ["NFS"],
                                      "create_dir": true});
        self.vms.post("views/", &view).unwrap();
    }

    /// A user who can own buckets, and an S3 access key of theirs: `(access key, secret key)`.
    pub fn s3_user(&self, name: &str, uid: u64) -> (String, String) {
        let user = self.vms.post("users/", &serde_json::json!({"name": name, "uid": uid})).unwrap();
        let key =
            self.vms.post(&format!("users/{}/access_keys/", user["id"]), &serde_json::json!({})).unwrap();
        let field = |k: &str| key[k].as_str().unwrap().to_string();
        (field("access_key"), field("secret_key"))
    }

    /// An S3 bucket view (policy 2) owned by `owner`.
    pub fn bucket(&self, name: &str, path: &str, owner: &str) {
        let view = serde_json::json!({"name": name, "path": path, "policy_id": 2, "protocols": ["S3"],
                                      "bucket": name, "bucket_owner": owner, "create_dir": true});
        self.vms.post("views/", &view).unwrap();
    }

    /// A quota with a hard limit on `path`.
    pub fn quota(&self, name: &str, path: &str, hard_limit: u64) {
        let quota = serde_json::json!({"name": name, "path": path, "hard_limit": hard_limit});
        self.vms.post("quotas/", &quota).unwrap();
    }
}

/// Every file below `dir` (none if it does not exist).
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_below(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Fork; the child runs `child` and exits with the code it returns (101 if it panics), never
/// returning into the test harness. Returns the child's pid.
pub fn fork_child(child: impl FnOnce() -> i32) -> libc::pid_t {
    // SAFETY: fork has no memory-safety precondition. The child of this multi-threaded process
    // goes on to use the plug-in, which is what these tests exercise (the plug-in's atfork
    // handlers); it leaves with `_exit`, so no test-harness state is used after the fork.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(101);
        // SAFETY: ends the child at once, without running the parent's atexit handlers.
        unsafe { libc::_exit(code) };
    }
    pid
}

/// The child's wait status if it has ended (reaped), else `None`.
pub fn try_wait(pid: libc::pid_t) -> Option<libc::c_int> {
    let mut st = 0;
    // SAFETY: `st` is a live local for the status.
    let r = unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) };
    (r == pid).then_some(st)
}

/// Kill the child with SIGKILL and reap it; its wait status.
pub fn kill_child(pid: libc::pid_t) -> libc::c_int {
    let mut st = 0;
    // SAFETY: `pid` is a child of this process not reaped yet; `st` is a live local.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, &mut st, 0);
    }
    st
}

/// Wait for the child to end, polling; past `timeout` kill it and return `None`.
pub fn wait_child(pid: libc::pid_t, timeout: std::time::Duration) -> Option<libc::c_int> {
    let start = std::time::Instant::now();
    loop {
        if let Some(st) = try_wait(pid) {
            return Some(st);
        }
        if start.elapsed() > timeout {
            kill_child(pid);
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Whether a wait status is a normal exit with code 0.
pub fn exited_ok(st: libc::c_int) -> bool {
    libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0
}
