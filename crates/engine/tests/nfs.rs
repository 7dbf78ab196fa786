//! The NFS backend against the image conformance suite, on a local directory standing in
//! for a mounted VAST view.

mod conformance;

use std::path::PathBuf;
use std::sync::Arc;

use vast_ost_engine::config::{DirectIo, NfsConfig};
use vast_ost_engine::store::nfs::NfsStore;
use vast_ost_engine::store::PieceStore;

struct Nfs {
    dir: tempfile::TempDir,
    store: Arc<dyn PieceStore>,
}

impl Nfs {
    fn new(direct_io: DirectIo) -> Nfs {
        let dir = tempfile::tempdir().unwrap();
        for l in ["lsu1", "lsu2"] {
            std::fs::create_dir(dir.path().join(l)).unwrap();
        }
        let cfg =
            NfsConfig { mount: dir.path().into(), view_root: "/".into(), direct_io, direct_io_min: 4096 };
        Nfs { store: Arc::new(NfsStore::new(&cfg, Default::default())), dir }
    }
    fn path(&self, lsu: &str, rel: &str) -> PathBuf {
        self.dir.path().join(lsu).join(rel)
    }
}

impl conformance::Target for Nfs {
    fn store(&self) -> Arc<dyn PieceStore> {
        self.store.clone()
    }
    fn lsus(&self) -> (String, String) {
        ("lsu1".into(), "lsu2".into())
    }
    fn corrupt_piece(&self, lsu: &str, key: &str) {
        let p = self.path(lsu, key);
        let mut b = std::fs::read(&p).unwrap();
        let mid = b.len() / 2;
        b[mid] ^= 1;
        std::fs::write(&p, b).unwrap();
    }
    fn put_raw_manifest(&self, lsu: &str, image: &str, bytes: &[u8]) {
        std::fs::write(self.path(lsu, &format!("{image}/manifest")), bytes).unwrap();
    }
}

#[test]
fn nfs_conformance_buffered() {
    conformance::run_all(&Nfs::new(DirectIo::Never));
}

#[test]
fn nfs_conformance_direct_io() {
    conformance::run_all(&Nfs::new(DirectIo::Auto));
}

#[test]
fn lsu_listing_and_space() {
    let t = Nfs::new(DirectIo::Never);
    std::fs::write(t.dir.path().join("not-a-dir"), b"x").unwrap();
    std::fs::create_dir(t.dir.path().join(".hidden")).unwrap();
    assert_eq!(t.store.list_lsus().unwrap(), vec!["lsu1", "lsu2"]);
    let sp = t.store.lsu_space("lsu1").unwrap();
    assert!(sp.capacity > 0 && sp.used <= sp.capacity);
    assert_eq!(t.store.lsu_space("nope").unwrap_err().kind(), vast_ost_engine::ErrorKind::NotFound);
    assert!(t.store.lsu_space("..").is_err());
    assert!(t.store.lsu_space("a/b").is_err());
}

/// Page-aligned buffers take the O_DIRECT path; the bytes must come back the same.
#[test]
fn direct_io_writes_read_back() {
    use vast_ost_engine::image::{ImageReader, ImageWriter};
    use vast_ost_engine::manifest::ImageDef;
    let t = Nfs::new(DirectIo::Always);
    let mut raw = vec![0u8; (4 << 20) + 4096];
    let skip = raw.as_ptr().align_offset(4096);
    let buf = &mut raw[skip..skip + (4 << 20)];
    conformance::pattern(99, 0, buf);
    let def = ImageDef { basename: "direct_C1_F1".into(), ..Default::default() };
    let mut w = ImageWriter::create(t.store.clone(), "lsu1", def.clone()).unwrap();
    w.write_at(&buf[..1 << 20], 0).unwrap();
    w.write_at(&buf[1 << 20..], 1 << 20).unwrap();
    w.write_at(&buf[..100], 4 << 20).unwrap(); // an unaligned tail goes through the page cache
    w.close(true).unwrap();
    let mut r = ImageReader::open(t.store.clone(), "lsu1", &def).unwrap();
    let mut back = vec![0u8; (4 << 20) + 100];
    assert_eq!(r.read_at(&mut back, 0).unwrap(), back.len());
    assert_eq!(&back[..4 << 20], &buf[..]);
    assert_eq!(&back[4 << 20..], &buf[..100]);
}

/// The configuration example an admin copies from the README is valid.
#[test]
fn readme_config_example_parses() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let block = readme
        .split("```toml")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .find(|b| b.contains("[[server]]"))
        .expect("README has a TOML config example");
    let text: String = block.lines().map(|l| format!("{}\n", l.trim_start())).collect();
    let cfg = vast_ost_engine::config::Config::parse(&text, std::path::Path::new("README.md"))
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    let s = &cfg.servers[0];
    assert!(s.vms.is_some() && s.nfs.is_some() && s.s3.is_some());
}
