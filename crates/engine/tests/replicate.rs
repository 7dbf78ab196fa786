//! The verified copy A.I.R. uses between clusters (`image::replicate`), on two NFS stores
//! standing for two clusters: a good copy is committed byte for byte with its metadata; a copy
//! the target storage damages is caught by the read-back before its commit and leaves nothing;
//! a copy its progress callback stops (a cancel) leaves nothing either.

use std::sync::Arc;

use vast_ost_engine::error::{Error, ErrorKind, Result};
use vast_ost_engine::image::{self, ImageReader, ImageWriter};
use vast_ost_engine::manifest::{ImageDef, State};
use vast_ost_engine::store::nfs::{DirectIo, NfsSettings, NfsStore};
use vast_ost_engine::store::{Kind, PieceReader, PieceStore, PieceWriter, Space};

fn nfs(dir: &tempfile::TempDir) -> Arc<dyn PieceStore> {
    std::fs::create_dir_all(dir.path().join("lsu")).unwrap();
    let cfg = NfsSettings {
        mount: dir.path().into(),
        view_root: "/".into(),
        direct_io: DirectIo::Never,
        direct_io_min: 4096,
    };
    Arc::new(NfsStore::new(&cfg, Default::default()))
}

fn bytes(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect()
}

/// A complete 5 MiB image with metadata in `store`.
fn source(store: &Arc<dyn PieceStore>) -> ImageDef {
    let def = ImageDef { basename: "c_1_C1_F1".into(), date: "1".into(), ..Default::default() };
    let mut w = ImageWriter::create(store.clone(), "lsu", def.clone()).unwrap();
    w.write_at(&bytes(5 << 20), 0).unwrap();
    w.write_meta(b"image metadata", 0).unwrap();
    w.close(true).unwrap();
    def
}

fn read_all(store: &Arc<dyn PieceStore>, def: &ImageDef) -> Vec<u8> {
    let mut r = ImageReader::open(store.clone(), "lsu", def).unwrap();
    let mut out = vec![0u8; r.manifest().size as usize];
    let mut off = 0;
    while off < out.len() {
        off += r.read_at(&mut out[off..], off as u64).unwrap();
    }
    out
}

fn nothing_left(store: &Arc<dyn PieceStore>, def: &ImageDef) {
    assert_eq!(image::load(store.as_ref(), "lsu", def).unwrap_err().kind(), ErrorKind::NotFound);
    assert!(store.list_image_keys("lsu", &def.basename).unwrap().is_empty(), "no piece or record left");
}

#[test]
fn a_verified_copy_is_committed_byte_for_byte() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (src, dst) = (nfs(&a), nfs(&b));
    let def = source(&src);
    let mut seen = 0;
    let m = image::replicate((&src, "lsu", &def), (&dst, "lsu"), &mut |n| {
        seen = n;
        Ok(())
    })
    .unwrap();
    assert_eq!((m.state, m.size, seen), (State::Complete, 5 << 20, 5 << 20));
    assert_eq!(read_all(&dst, &def), bytes(5 << 20));
    assert_eq!(image::load(dst.as_ref(), "lsu", &def).unwrap().meta.data, b"image metadata");
}

#[test]
fn a_copy_the_target_damages_is_never_committed() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let src = nfs(&a);
    let dst: Arc<dyn PieceStore> = Arc::new(Damaging(nfs(&b)));
    let def = source(&src);
    let e = image::replicate((&src, "lsu", &def), (&dst, "lsu"), &mut |_| Ok(())).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    nothing_left(&dst, &def);
}

#[test]
fn a_stopped_copy_leaves_nothing() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (src, dst) = (nfs(&a), nfs(&b));
    let def = source(&src);
    let e = image::replicate((&src, "lsu", &def), (&dst, "lsu"), &mut |n| {
        if n >= 4 << 20 {
            Err(Error::new(ErrorKind::Cancelled, "stop"))
        } else {
            Ok(())
        }
    })
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Cancelled);
    nothing_left(&dst, &def);
}

/// A store that flips one bit of every piece it writes, after the writer has checksummed the
/// bytes: what a faulty target would do.
struct Damaging(Arc<dyn PieceStore>);

struct DamagingWriter(Box<dyn PieceWriter>, bool);

impl PieceWriter for DamagingWriter {
    fn append(&mut self, buf: &[u8]) -> Result<()> {
        if self.1 || buf.is_empty() {
            return self.0.append(buf);
        }
        self.1 = true;
        let mut b = buf.to_vec();
        b[0] ^= 1;
        self.0.append(&b)
    }
    fn finish(self: Box<Self>) -> Result<()> {
        self.0.finish()
    }
    fn abort(self: Box<Self>) {
        self.0.abort()
    }
}

impl PieceStore for Damaging {
    fn kind(&self) -> Kind {
        self.0.kind()
    }
    fn describe(&self, lsu: &str) -> String {
        self.0.describe(lsu)
    }
    fn list_lsus(&self) -> Result<Vec<String>> {
        self.0.list_lsus()
    }
    fn lsu_space(&self, lsu: &str) -> Result<Space> {
        self.0.lsu_space(lsu)
    }
    fn list_images(&self, lsu: &str, prefix: &str) -> Result<Vec<String>> {
        self.0.list_images(lsu, prefix)
    }
    fn read_record(&self, lsu: &str, image: &str, name: &str) -> Result<Option<Vec<u8>>> {
        self.0.read_record(lsu, image, name)
    }
    fn create_record(&self, lsu: &str, image: &str, name: &str, bytes: &[u8]) -> Result<()> {
        self.0.create_record(lsu, image, name, bytes)
    }
    fn replace_record(
        &self,
        lsu: &str,
        image: &str,
        name: &str,
        bytes: &[u8],
        expected: &[u8],
    ) -> Result<()> {
        self.0.replace_record(lsu, image, name, bytes, expected)
    }
    fn delete_record(&self, lsu: &str, image: &str, name: &str) -> Result<()> {
        self.0.delete_record(lsu, image, name)
    }
    fn remove_image(&self, lsu: &str, image: &str, keep: &[String]) -> Result<()> {
        self.0.remove_image(lsu, image, keep)
    }
    fn list_image_keys(&self, lsu: &str, image: &str) -> Result<Vec<(String, Option<std::time::Duration>)>> {
        self.0.list_image_keys(lsu, image)
    }
    fn remove_keys(&self, lsu: &str, image: &str, keys: &[String]) -> Result<()> {
        self.0.remove_keys(lsu, image, keys)
    }
    fn create_piece(&self, lsu: &str, key: &str) -> Result<Box<dyn PieceWriter>> {
        Ok(Box::new(DamagingWriter(self.0.create_piece(lsu, key)?, false)))
    }
    fn open_piece(&self, lsu: &str, key: &str) -> Result<Box<dyn PieceReader>> {
        self.0.open_piece(lsu, key)
    }
    fn copy_piece(&self, from_lsu: &str, from_key: &str, to_lsu: &str, to_key: &str) -> Result<()> {
        self.0.copy_piece(from_lsu, from_key, to_lsu, to_key)
    }
}
