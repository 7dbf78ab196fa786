//! Shared fixture for the Rust host-harness tests: a temp "NFS mount" with LSUs, a config, a
//! log, and the built plug-in loaded by dlopen, as a NetBackup process would load it.
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
        std::env::set_var("VAST_OST_CONFIG", &config);
        std::env::set_var("VAST_OST_LOG", dir.path().join("vast-ost.log"));
        let plugin = Plugin::load(&plugin_path()).unwrap();
        plugin.init().unwrap();
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
