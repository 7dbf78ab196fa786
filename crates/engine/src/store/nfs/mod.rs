//! The NFS data path: an LSU is a directory on a mounted VAST view.
//!
//! ```text
//! <mount>/<lsu>/<image>/manifest           the commit record (atomic rename)
//! <mount>/<lsu>/<image>/.manifest.<id>.tmp  a commit in progress
//! <mount>/<lsu>/<image>/.manifest.lock      held while a commit or delete swaps the manifest
//! <mount>/<lsu>/<image>/<piece>.piece       immutable data, written with pwrite
//! ```
//!
//! Durability order: pieces are fdatasync'ed before a manifest names them; a manifest is
//! written to a temp file, fsync'ed, renamed (or hard-linked, for an exclusive create) into
//! place, and the directory is fsync'ed ([`commit`]). Piece I/O is in [`piece`], the O_DIRECT
//! write-behind in [`staged`].

mod commit;
mod piece;
mod retention;
mod settings;
mod staged;

pub use settings::{DirectIo, NfsSettings};

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{ErrorKind as IoKind, Read};
use std::path::PathBuf;
use std::sync::RwLock;

use self::commit::{read_current, sync_dir, with_lock, write_temp};
use super::{Kind, PieceReader, PieceStore, PieceWriter, RetentionLock, RetentionMode, Space};
use crate::error::{Error, ErrorKind, Result};
use crate::filter::LsuFilter;
use crate::layout::{self, MANIFEST};
use crate::names;

/// Longest piece written: a longer write sequence continues in a new piece.
const MAX_PIECE: u64 = 64 << 30;

pub struct NfsStore {
    mount: PathBuf,
    filter: LsuFilter,
    /// `None`: every directory under `mount` that the filter accepts is an LSU. `Some`: the
    /// LSUs are exactly these directories (VAST views found through VMS).
    views: RwLock<Option<BTreeMap<String, PathBuf>>>,
    direct_io: DirectIo,
    direct_io_min: usize,
}

impl NfsStore {
    pub fn new(cfg: &NfsSettings, filter: LsuFilter) -> NfsStore {
        NfsStore {
            mount: cfg.mount.clone(),
            filter,
            views: RwLock::new(None),
            direct_io: cfg.direct_io,
            direct_io_min: usize::try_from(cfg.direct_io_min).unwrap_or(usize::MAX),
        }
    }

    /// Serve exactly these LSUs, each at its own directory.
    pub fn set_views(&self, views: BTreeMap<String, PathBuf>) {
        *self.views.write().unwrap_or_else(|p| p.into_inner()) = Some(views);
    }

    fn lsu_dir(&self, lsu: &str) -> Result<PathBuf> {
        names::validate("LSU", lsu)?;
        let views = self.views.read().unwrap_or_else(|p| p.into_inner());
        let dir = match views.as_ref() {
            Some(map) => map
                .get(lsu)
                .cloned()
                .ok_or_else(|| Error::not_found(format!("LSU '{lsu}' is not an NFS view of this server")))?,
            None if !self.filter.matches(lsu) => {
                return Err(Error::not_found(format!(
                    "LSU '{lsu}' is not selected by this server's lsus/lsu_prefix"
                )))
            }
            None => self.mount.join(lsu),
        };
        drop(views);
        match fs::metadata(&dir) {
            Ok(m) if m.is_dir() => Ok(dir),
            Ok(_) => Err(Error::not_found(format!("LSU '{lsu}': {} is not a directory", dir.display()))),
            Err(e) => Err(Error::io(format!("LSU '{lsu}' at {}", dir.display()), e)),
        }
    }

    fn image_dir(&self, lsu: &str, image: &str) -> Result<PathBuf> {
        layout::validate_owner(image)?;
        Ok(self.lsu_dir(lsu)?.join(image))
    }

    /// Where record `name` of `image` is.
    fn record_path(&self, lsu: &str, image: &str, name: &str) -> Result<PathBuf> {
        names::validate("record", name)?;
        Ok(self.image_dir(lsu, image)?.join(name))
    }

    /// Where the piece at `key` (`<image>/<piece>`, both valid names) is.
    fn piece_path(&self, lsu: &str, key: &str) -> Result<PathBuf> {
        let (image, piece) = layout::split_piece_key(key)?;
        Ok(self.image_dir(lsu, image)?.join(piece))
    }
}

/// Remove an image directory and whatever is left in it (pieces of a writer that died before
/// committing them). A concurrent deleter may remove entries first, or briefly create its lock
/// file in it: a few more tries, then what is there is an error.
fn remove_image_dir(dir: &std::path::Path) -> Result<()> {
    let mut tries = 0;
    loop {
        match fs::remove_dir_all(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == IoKind::NotFound => return Ok(()),
            Err(_) if tries < 20 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(e) => return Err(Error::io(format!("removing image directory {}", dir.display()), e)),
        }
    }
}

impl PieceStore for NfsStore {
    fn kind(&self) -> Kind {
        Kind::Nfs
    }

    fn describe(&self, lsu: &str) -> String {
        match self.lsu_dir(lsu) {
            Ok(d) => format!("NFS {}", d.display()),
            Err(_) => format!("NFS {}", self.mount.display()),
        }
    }

    fn list_lsus(&self) -> Result<Vec<String>> {
        if let Some(map) = self.views.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
            return Ok(map.keys().cloned().collect());
        }
        let rd = fs::read_dir(&self.mount)
            .map_err(|e| Error::io(format!("listing LSUs in NFS mount {}", self.mount.display()), e))?;
        let mut out = Vec::new();
        for ent in rd {
            let ent = ent.map_err(|e| Error::io(format!("listing {}", self.mount.display()), e))?;
            let Ok(name) = ent.file_name().into_string() else { continue };
            if names::validate("LSU", &name).is_ok()
                && self.filter.matches(&name)
                && ent.file_type().is_ok_and(|t| t.is_dir())
            {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }

    fn lsu_space(&self, lsu: &str) -> Result<Space> {
        let dir = self.lsu_dir(lsu)?;
        let st = rustix::fs::statvfs(&dir)
            .map_err(|e| Error::io(format!("statvfs {}", dir.display()), e.into()))?;
        let capacity = st.f_blocks.saturating_mul(st.f_frsize);
        let used = st.f_blocks.saturating_sub(st.f_bfree).saturating_mul(st.f_frsize);
        Ok(Space { capacity, used })
    }

    fn list_images(&self, lsu: &str, prefix: &str) -> Result<Vec<String>> {
        let dir = self.lsu_dir(lsu)?;
        let rd =
            fs::read_dir(&dir).map_err(|e| Error::io(format!("listing images in {}", dir.display()), e))?;
        let mut out = Vec::new();
        for ent in rd {
            let ent = ent.map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
            let Ok(name) = ent.file_name().into_string() else { continue };
            if name.starts_with(prefix) && names::validate("image", &name).is_ok() {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }

    fn read_record(&self, lsu: &str, image: &str, name: &str) -> Result<Option<Vec<u8>>> {
        let path = self.record_path(lsu, image, name)?;
        let mut f = match File::open(&path) {
            Ok(f) => f,
            Err(e)
                if e.kind() == IoKind::NotFound
                    || e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error()) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(Error::io(format!("opening {}", path.display()), e)),
        };
        let len = f.metadata().map_err(|e| Error::io(format!("stat {}", path.display()), e))?.len();
        if len > layout::MAX_MANIFEST as u64 {
            return Err(Error::corrupt(format!("{} is {len} bytes, over the record limit", path.display())));
        }
        let mut buf = Vec::with_capacity(len as usize);
        f.read_to_end(&mut buf).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        Ok(Some(buf))
    }

    fn create_record(&self, lsu: &str, image: &str, name: &str, bytes: &[u8]) -> Result<()> {
        let path = self.record_path(lsu, image, name)?;
        let dir = path.parent().expect("a record is inside its image").to_path_buf();
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == IoKind::AlreadyExists => {}
            Err(e) => return Err(Error::io(format!("creating image directory {}", dir.display()), e)),
        }
        let tmp = write_temp(&dir, name, bytes)?;
        // link(2) fails if the target exists: an exclusive create that works over NFS too.
        let linked = fs::hard_link(&tmp, &path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == IoKind::AlreadyExists => {
                let what = if name == MANIFEST {
                    format!("image '{image}'")
                } else {
                    format!("record {image}/{name}")
                };
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    format!("{what} already exists in LSU '{lsu}'"),
                ));
            }
            Err(e) => return Err(Error::io(format!("committing {}", path.display()), e)),
        }
        sync_dir(&dir)?;
        sync_dir(dir.parent().unwrap_or(&dir))
    }

    fn replace_record(
        &self,
        lsu: &str,
        image: &str,
        name: &str,
        bytes: &[u8],
        expected: &[u8],
    ) -> Result<()> {
        let path = self.record_path(lsu, image, name)?;
        let dir = path.parent().expect("a record is inside its image").to_path_buf();
        let tmp = write_temp(&dir, name, bytes)?;
        let res = with_lock(&dir, name, || {
            if read_current(&dir, name)?.as_deref() != Some(expected) {
                return Err(Error::state(format!(
                    "{image}/{name} was changed or deleted by another writer since this one read it"
                )));
            }
            fs::rename(&tmp, &path).map_err(|e| Error::io(format!("committing {}", path.display()), e))
        });
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res?;
        sync_dir(&dir)
    }

    fn delete_record(&self, lsu: &str, image: &str, name: &str) -> Result<()> {
        let path = self.record_path(lsu, image, name)?;
        let dir = path.parent().expect("a record is inside its image").to_path_buf();
        // Under the record's lock, so a commit in flight cannot bring it back. Other deleters
        // may be at it too (expiry can run twice, on several media servers): whatever they
        // removed first is gone, which is what was asked.
        let removed = with_lock(&dir, name, || match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == IoKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(format!("removing {}", path.display()), e)),
        });
        let removed = match removed {
            Err(e) if e.kind() == ErrorKind::NotFound => false,
            r => r?,
        };
        if removed {
            match sync_dir(&dir) {
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                r => r?,
            }
        }
        Ok(())
    }

    fn remove_image(&self, lsu: &str, image: &str, keep: &[String]) -> Result<()> {
        let dir = self.image_dir(lsu, image)?;
        if keep.is_empty() {
            return remove_image_dir(&dir);
        }
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == IoKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(format!("listing {}", dir.display()), e)),
        };
        for ent in rd {
            let ent = ent.map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
            let key = layout::record_key(image, &ent.file_name().to_string_lossy());
            if keep.contains(&key) {
                continue;
            }
            match fs::remove_file(ent.path()) {
                Ok(()) => {}
                Err(e) if e.kind() == IoKind::NotFound => {}
                Err(e) => return Err(Error::io(format!("removing {}", ent.path().display()), e)),
            }
        }
        Ok(())
    }

    fn list_image_keys(&self, lsu: &str, image: &str) -> Result<Vec<(String, Option<std::time::Duration>)>> {
        let dir = self.image_dir(lsu, image)?;
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == IoKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(format!("listing {}", dir.display()), e)),
        };
        let mut out = Vec::new();
        for ent in rd {
            let ent = ent.map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
            let age = ent.metadata().ok().and_then(|m| m.modified().ok()).and_then(|t| t.elapsed().ok());
            out.push((format!("{image}/{}", ent.file_name().to_string_lossy()), age));
        }
        out.sort();
        Ok(out)
    }

    fn remove_keys(&self, lsu: &str, image: &str, keys: &[String]) -> Result<()> {
        let dir = self.image_dir(lsu, image)?;
        for key in keys {
            let name = key
                .strip_prefix(image)
                .and_then(|k| k.strip_prefix('/'))
                .filter(|n| !n.is_empty() && !n.contains('/') && *n != "." && *n != "..")
                .ok_or_else(|| Error::invalid(format!("key '{key}' is not a file of image '{image}'")))?;
            match fs::remove_file(dir.join(name)) {
                Ok(()) => {}
                Err(e) if e.kind() == IoKind::NotFound => {}
                Err(e) => return Err(Error::io(format!("removing {}", dir.join(name).display()), e)),
            }
        }
        // An image directory left empty goes too.
        let _ = fs::remove_dir(&dir);
        Ok(())
    }

    fn set_retention(&self, lsu: &str, keys: &[String], until: u64, _mode: RetentionMode) -> Result<()> {
        // The view's files_retention_mode decides governance or compliance on VAST.
        for key in keys {
            let path = if let Some(image) = key.strip_suffix(&format!("/{MANIFEST}")) {
                self.record_path(lsu, image, MANIFEST)?
            } else {
                self.piece_path(lsu, key)?
            };
            retention::lock(&path, until)?;
        }
        Ok(())
    }

    fn retention(&self, lsu: &str, key: &str) -> Result<Option<RetentionLock>> {
        let path = match key.strip_suffix(&format!("/{MANIFEST}")) {
            Some(image) => self.record_path(lsu, image, MANIFEST)?,
            None => self.piece_path(lsu, key)?,
        };
        match fs::metadata(&path) {
            Ok(md) => Ok(retention::lock_of(&md)),
            Err(e) if e.kind() == IoKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("stat {}", path.display()), e)),
        }
    }

    fn max_piece_len(&self) -> u64 {
        // Bounds a piece's block table (1 MiB at 64 GiB), which readers load whole.
        MAX_PIECE
    }

    fn create_piece(&self, lsu: &str, key: &str) -> Result<Box<dyn PieceWriter>> {
        let path = self.piece_path(lsu, key)?;
        Ok(Box::new(piece::create(path, self.direct_io, self.direct_io_min)?))
    }

    fn open_piece(&self, lsu: &str, key: &str) -> Result<Box<dyn PieceReader>> {
        Ok(Box::new(piece::open(self.piece_path(lsu, key)?)?))
    }

    fn copy_piece(&self, from_lsu: &str, from_key: &str, to_lsu: &str, to_key: &str) -> Result<()> {
        piece::copy(&self.piece_path(from_lsu, from_key)?, &self.piece_path(to_lsu, to_key)?)
    }
}
