//! The NFS data path: an LSU is a directory on a mounted VAST view.
//!
//! ```text
//! <mount>/<lsu>/<image>/manifest           the commit record (atomic rename)
//! <mount>/<lsu>/<image>/.manifest.<id>.tmp  a commit in progress
//! <mount>/<lsu>/<image>/<piece>.piece       immutable data, written with pwrite
//! ```
//!
//! Durability order: pieces are fdatasync'ed before a manifest names them; a manifest is
//! written to a temp file, fsync'ed, renamed (or hard-linked, for an exclusive create) into
//! place, and the directory is fsync'ed.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind as IoKind, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use rustix::fs::OFlags;

use super::{Kind, PieceReader, PieceStore, PieceWriter, Space};
use crate::config::{DirectIo, LsuFilter, NfsConfig};
use crate::error::{Error, ErrorKind, Result};
use crate::names;

const MANIFEST: &str = "manifest";
/// O_DIRECT needs buffer address, offset and length aligned to the device's logical block;
/// 4 KiB covers every device and NFS.
const DIRECT_ALIGN: usize = 4096;

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
    pub fn new(cfg: &NfsConfig, filter: LsuFilter) -> NfsStore {
        NfsStore {
            mount: cfg.mount.clone(),
            filter,
            views: RwLock::new(None),
            direct_io: cfg.direct_io,
            direct_io_min: cfg.direct_io_min.max(DIRECT_ALIGN as u64) as usize,
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
        names::validate("image", image)?;
        Ok(self.lsu_dir(lsu)?.join(image))
    }

    /// Pieces are `<image>/<piece>`: both parts must be valid names.
    fn piece_path(&self, lsu: &str, key: &str) -> Result<PathBuf> {
        let (image, piece) = key
            .split_once('/')
            .ok_or_else(|| Error::corrupt(format!("piece key '{key}' has no image part")))?;
        names::validate("piece", piece).map_err(|e| Error::corrupt(e.message().to_string()))?;
        Ok(self.image_dir(lsu, image)?.join(piece))
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

    fn read_manifest(&self, lsu: &str, image: &str) -> Result<Option<Vec<u8>>> {
        let path = self.image_dir(lsu, image)?.join(MANIFEST);
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
        if len > crate::manifest::MAX_MANIFEST as u64 {
            return Err(Error::corrupt(format!(
                "{} is {len} bytes, over the manifest limit",
                path.display()
            )));
        }
        let mut buf = Vec::with_capacity(len as usize);
        f.read_to_end(&mut buf).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        Ok(Some(buf))
    }

    fn create_manifest(&self, lsu: &str, image: &str, bytes: &[u8]) -> Result<()> {
        let dir = self.image_dir(lsu, image)?;
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == IoKind::AlreadyExists => {}
            Err(e) => return Err(Error::io(format!("creating image directory {}", dir.display()), e)),
        }
        let tmp = write_temp(&dir, bytes)?;
        // link(2) fails if the target exists: an exclusive create that works over NFS too.
        let linked = fs::hard_link(&tmp, dir.join(MANIFEST));
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == IoKind::AlreadyExists => {
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    format!("image '{image}' already exists in LSU '{lsu}'"),
                ))
            }
            Err(e) => return Err(Error::io(format!("committing manifest in {}", dir.display()), e)),
        }
        sync_dir(&dir)?;
        sync_dir(dir.parent().unwrap_or(&dir))
    }

    fn replace_manifest(&self, lsu: &str, image: &str, bytes: &[u8], expected: &[u8]) -> Result<()> {
        let dir = self.image_dir(lsu, image)?;
        let tmp = write_temp(&dir, bytes)?;
        let res = with_manifest_lock(&dir, || {
            let current = match fs::read(dir.join(MANIFEST)) {
                Ok(b) => Some(b),
                Err(e) if e.kind() == IoKind::NotFound => None,
                Err(e) => return Err(Error::io(format!("reading manifest in {}", dir.display()), e)),
            };
            if current.as_deref() != Some(expected) {
                return Err(Error::state(format!(
                    "image '{image}' was changed or deleted by another writer since this one read it"
                )));
            }
            fs::rename(&tmp, dir.join(MANIFEST))
                .map_err(|e| Error::io(format!("committing manifest in {}", dir.display()), e))
        });
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res?;
        sync_dir(&dir)
    }

    fn delete_image(&self, lsu: &str, image: &str, pieces: &[String]) -> Result<()> {
        let dir = self.image_dir(lsu, image)?;
        // Under the manifest lock, so a commit in flight cannot bring the manifest back.
        let removed = if dir.is_dir() {
            with_manifest_lock(&dir, || match fs::remove_file(dir.join(MANIFEST)) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == IoKind::NotFound => Ok(false),
                Err(e) => Err(Error::io(format!("removing manifest in {}", dir.display()), e)),
            })?
        } else {
            false
        };
        if removed {
            sync_dir(&dir)?;
        }
        for key in pieces {
            let path = self.piece_path(lsu, key)?;
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == IoKind::NotFound => {}
                Err(e) => return Err(Error::io(format!("removing piece {}", path.display()), e)),
            }
        }
        // Whatever else is left (pieces of a writer that died before committing them).
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == IoKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(format!("removing image directory {}", dir.display()), e)),
        }
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

    fn create_piece(&self, lsu: &str, key: &str) -> Result<Box<dyn PieceWriter>> {
        let path = self.piece_path(lsu, key)?;
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::io(format!("creating piece {}", path.display()), e))?;
        let direct = match self.direct_io {
            DirectIo::Never => None,
            mode => {
                match OpenOptions::new().write(true).custom_flags(OFlags::DIRECT.bits() as i32).open(&path) {
                    Ok(f) => Some(f),
                    Err(e) if mode == DirectIo::Always => {
                        let _ = fs::remove_file(&path);
                        return Err(Error::io(
                            format!("opening {} with O_DIRECT (direct_io = \"always\")", path.display()),
                            e,
                        ));
                    }
                    // The file system does not take O_DIRECT (tmpfs, some FUSE): buffered it is.
                    Err(_) => None,
                }
            }
        };
        Ok(Box::new(NfsPieceWriter { path, file, direct, direct_min: self.direct_io_min, pos: 0 }))
    }

    fn open_piece(&self, lsu: &str, key: &str) -> Result<Box<dyn PieceReader>> {
        let path = self.piece_path(lsu, key)?;
        let file =
            File::open(&path).map_err(|e| Error::io(format!("opening piece {}", path.display()), e))?;
        Ok(Box::new(NfsPieceReader { path, file }))
    }

    fn copy_piece(&self, from_lsu: &str, from_key: &str, to_lsu: &str, to_key: &str) -> Result<()> {
        let src_path = self.piece_path(from_lsu, from_key)?;
        let dst_path = self.piece_path(to_lsu, to_key)?;
        let src =
            File::open(&src_path).map_err(|e| Error::io(format!("opening {}", src_path.display()), e))?;
        let dst = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&dst_path)
            .map_err(|e| Error::io(format!("creating {}", dst_path.display()), e))?;
        let res = clone_or_copy(&src, &dst).and_then(|()| dst.sync_data());
        res.map_err(|e| {
            let _ = fs::remove_file(&dst_path);
            Error::io(format!("copying {} to {}", src_path.display(), dst_path.display()), e)
        })
    }
}

/// Reflink when the file system shares blocks (no data moves at all), else copy_file_range
/// (server-side copy on NFS 4.2), else a plain copy loop.
fn clone_or_copy(src: &File, dst: &File) -> std::io::Result<()> {
    if rustix::fs::ioctl_ficlone(dst, src).is_ok() {
        return Ok(());
    }
    let len = src.metadata()?.len();
    let mut done = 0u64;
    while done < len {
        let (mut so, mut doff) = (done, done);
        match rustix::fs::copy_file_range(
            src,
            Some(&mut so),
            dst,
            Some(&mut doff),
            (len - done).min(1 << 30) as usize,
        ) {
            Ok(0) => break,
            Ok(n) => done += n as u64,
            Err(_) if done == 0 => return copy_loop(src, dst, len),
            Err(e) => return Err(e.into()),
        }
    }
    if done != len {
        return Err(std::io::Error::new(IoKind::UnexpectedEof, format!("copied {done} of {len} bytes")));
    }
    Ok(())
}

fn copy_loop(src: &File, dst: &File, len: u64) -> std::io::Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0u64;
    while off < len {
        let n = src.read_at(&mut buf, off)?;
        if n == 0 {
            return Err(std::io::Error::new(IoKind::UnexpectedEof, "source shrank while copying"));
        }
        dst.write_all_at(&buf[..n], off)?;
        off += n as u64;
    }
    Ok(())
}

/// The lock file that makes read-compare-rename of a manifest one step across media servers
/// (O_EXCL create is atomic over NFS v3/v4 too).
const LOCK: &str = ".manifest.lock";
/// A lock older than this was left by a process that died holding it.
const STALE_LOCK: std::time::Duration = std::time::Duration::from_secs(30);

fn with_manifest_lock<T>(dir: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let lock = dir.join(LOCK);
    let start = std::time::Instant::now();
    loop {
        match OpenOptions::new().write(true).create_new(true).open(&lock) {
            Ok(_) => break,
            Err(e) if e.kind() == IoKind::AlreadyExists => {
                let age =
                    fs::metadata(&lock).ok().and_then(|m| m.modified().ok()).and_then(|t| t.elapsed().ok());
                if age.is_some_and(|a| a > STALE_LOCK) {
                    let _ = fs::remove_file(&lock);
                    continue;
                }
                if start.elapsed() > STALE_LOCK + std::time::Duration::from_secs(5) {
                    return Err(Error::new(
                        ErrorKind::Busy,
                        format!("{} is held for too long", lock.display()),
                    ));
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(e) => return Err(Error::io(format!("locking {}", lock.display()), e)),
        }
    }
    let res = f();
    let _ = fs::remove_file(&lock);
    res
}

fn write_temp(dir: &Path, bytes: &[u8]) -> Result<PathBuf> {
    let tmp = dir.join(format!(".{MANIFEST}.{}.tmp", crate::util::random_id()));
    let res = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    res.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io(format!("writing manifest {}", tmp.display()), e)
    })?;
    Ok(tmp)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("fsync directory {}", dir.display()), e))
}

struct NfsPieceWriter {
    path: PathBuf,
    file: File,
    /// The same file opened with O_DIRECT, for large aligned writes (bypasses the page cache:
    /// one copy less, and a multi-GiB backup does not evict the media server's cache).
    direct: Option<File>,
    direct_min: usize,
    pos: u64,
}

impl PieceWriter for NfsPieceWriter {
    fn append(&mut self, buf: &[u8]) -> Result<()> {
        let aligned = buf.len() >= self.direct_min
            && buf.len() % DIRECT_ALIGN == 0
            && buf.as_ptr() as usize % DIRECT_ALIGN == 0
            && self.pos % DIRECT_ALIGN as u64 == 0;
        if aligned {
            if let Some(d) = &self.direct {
                match d.write_all_at(buf, self.pos) {
                    Ok(()) => {
                        self.pos += buf.len() as u64;
                        return Ok(());
                    }
                    // This file system refuses O_DIRECT after all: stay buffered for the piece.
                    Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                        self.direct = None
                    }
                    Err(e) => {
                        return Err(Error::io(format!("writing {} at {}", self.path.display(), self.pos), e))
                    }
                }
            }
        }
        self.file
            .write_all_at(buf, self.pos)
            .map_err(|e| Error::io(format!("writing {} at {}", self.path.display(), self.pos), e))?;
        self.pos += buf.len() as u64;
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<()> {
        self.file.sync_data().map_err(|e| Error::io(format!("fdatasync {}", self.path.display()), e))
    }

    fn abort(self: Box<Self>) {
        let _ = fs::remove_file(&self.path);
    }
}

struct NfsPieceReader {
    path: PathBuf,
    file: File,
}

impl PieceReader for NfsPieceReader {
    fn read_at(&self, buf: &mut [u8], off: u64) -> Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            match self.file.read_at(&mut buf[done..], off + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == IoKind::Interrupted => {}
                Err(e) => {
                    return Err(Error::io(
                        format!("reading {} at {}", self.path.display(), off + done as u64),
                        e,
                    ))
                }
            }
        }
        Ok(done)
    }
}
