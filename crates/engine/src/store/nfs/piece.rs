//! One piece on a shared file system: written with `pwrite` (O_DIRECT for large aligned
//! writes when the file system takes it), made durable with `fdatasync`, read with `pread`,
//! and copied inside the storage (reflink, else `copy_file_range`, else a copy loop).

use std::fs::{self, File, OpenOptions};
use std::io::ErrorKind as IoKind;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::OFlags;

use super::settings::DirectIo;
use crate::error::{Error, Result};
use crate::store::{PieceReader, PieceWriter};

/// O_DIRECT needs buffer address, offset and length aligned to the device's logical block;
/// 4 KiB covers every device and NFS.
const DIRECT_ALIGN: usize = 4096;

/// Create the piece file at `path` for writing.
pub fn create(path: PathBuf, direct_io: DirectIo, direct_min: usize) -> Result<NfsPieceWriter> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| Error::io(format!("creating piece {}", path.display()), e))?;
    let direct = match direct_io {
        DirectIo::Never => None,
        mode => match OpenOptions::new().write(true).custom_flags(OFlags::DIRECT.bits() as i32).open(&path) {
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
        },
    };
    Ok(NfsPieceWriter { path, file, direct, direct_min: direct_min.max(DIRECT_ALIGN), pos: 0 })
}

/// Open the piece file at `path` for reading.
pub fn open(path: PathBuf) -> Result<NfsPieceReader> {
    let file = File::open(&path).map_err(|e| Error::io(format!("opening piece {}", path.display()), e))?;
    Ok(NfsPieceReader { path, file })
}

/// Copy the piece at `src_path` to a new file at `dst_path`, inside the storage where it can,
/// and make the copy durable. Nothing is left at `dst_path` on failure.
pub fn copy(src_path: &Path, dst_path: &Path) -> Result<()> {
    let src = File::open(src_path).map_err(|e| Error::io(format!("opening {}", src_path.display()), e))?;
    let dst = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dst_path)
        .map_err(|e| Error::io(format!("creating {}", dst_path.display()), e))?;
    let res = clone_or_copy(&src, &dst).and_then(|()| dst.sync_data());
    res.map_err(|e| {
        let _ = fs::remove_file(dst_path);
        Error::io(format!("copying {} to {}", src_path.display(), dst_path.display()), e)
    })
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

pub struct NfsPieceWriter {
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
            && buf.len().is_multiple_of(DIRECT_ALIGN)
            && (buf.as_ptr() as usize).is_multiple_of(DIRECT_ALIGN)
            && self.pos.is_multiple_of(DIRECT_ALIGN as u64);
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

pub struct NfsPieceReader {
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
