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
