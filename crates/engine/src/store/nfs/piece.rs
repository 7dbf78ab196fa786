//! One piece on a shared file system: written with `pwrite` (staged O_DIRECT written behind
//! the caller, [`super::staged`], when the file system takes it), made durable with
//! `fdatasync`, read with `pread` and read-ahead while sequential, and copied inside the
//! storage (reflink, else `copy_file_range`, else a copy loop).

use std::fs::{self, File, OpenOptions};
use std::io::ErrorKind as IoKind;
use std::num::NonZeroU64;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustix::fs::{Advice, OFlags};

use tracing::info;

use super::settings::DirectIo;
use super::staged::{Staged, WriteStats, ALIGN};
use crate::error::{Error, Result};
use crate::store::{PieceReader, PieceWriter};

/// Writes in flight on the O_DIRECT path (fio reaches the disk's rate at iodepth 8 of
/// 256 KiB; a few 1 MiB writes are the same depth in bytes).
const WRITE_BEHIND: usize = 4;

/// Create the piece file at `path` for writing: with `direct_io` other than `never`, appends
/// are staged into aligned buffers of `direct_chunk` bytes and written with O_DIRECT behind
/// the caller ([`staged`]); otherwise each append is one buffered `pwrite`.
pub fn create(path: PathBuf, direct_io: DirectIo, direct_chunk: usize) -> Result<NfsPieceWriter> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| Error::io(format!("creating piece {}", path.display()), e))?;
    let file = Arc::new(file);
    let chunk = direct_chunk.max(ALIGN).next_multiple_of(ALIGN);
    let staged = match direct_io {
        DirectIo::Never => None,
        mode => match OpenOptions::new().write(true).custom_flags(OFlags::DIRECT.bits() as i32).open(&path) {
            Ok(d) => match Staged::new(d, file.clone(), chunk, WRITE_BEHIND, mode == DirectIo::Auto) {
                Ok(staged) => Some(staged),
                Err(e) => {
                    let _ = fs::remove_file(&path);
                    return Err(Error::io(
                        format!("starting the write threads of piece {}", path.display()),
                        e,
                    ));
                }
            },
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
    Ok(NfsPieceWriter { path, file, staged, pos: 0, stats: WriteStats::default() })
}

/// Bytes a sequential reader has asked of the storage ahead of where it reads, and the step
/// by which that window moves (so several reads are in flight, as with `fio --iodepth=8`,
/// while the caller checks and hands over what came in).
const READ_AHEAD: u64 = 16 << 20;
const READ_AHEAD_STEP: u64 = 4 << 20;

/// Open the piece file at `path` for reading.
pub fn open(path: PathBuf) -> Result<NfsPieceReader> {
    let file = File::open(&path).map_err(|e| Error::io(format!("opening piece {}", path.display()), e))?;
    // A larger kernel read-ahead window for the whole file; only a hint.
    let _ = rustix::fs::fadvise(&file, 0, None, Advice::Sequential);
    Ok(NfsPieceReader { path, file, ahead: Mutex::new(Ahead::default()) })
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
    file: Arc<File>,
    /// The O_DIRECT write-behind, unless the piece is written buffered.
    staged: Option<Staged>,
    /// Bytes appended (the buffered path's next offset).
    pos: u64,
    stats: WriteStats,
}

impl NfsPieceWriter {
    /// Write what is staged, make the piece durable, and say how its bytes went.
    pub fn finish_counted(mut self) -> Result<WriteStats> {
        if let Some(st) = self.staged.take() {
            // The staged rest goes through the page cache: its length need not be aligned.
            let written = st.finish().and_then(|(rest, off, mut stats)| {
                self.file.write_all_at(rest.data(), off)?;
                stats.buffered += rest.data().len() as u64;
                Ok(stats)
            });
            self.stats = written.map_err(|e| self.io_error("writing", e))?;
        }
        self.file.sync_data().map_err(|e| self.io_error("fdatasync", e))?;
        info!(
            piece = %self.path.display(),
            direct_bytes = self.stats.direct,
            buffered_bytes = self.stats.buffered,
            "piece written"
        );
        Ok(self.stats)
    }

    fn io_error(&self, what: &str, e: std::io::Error) -> Error {
        Error::io(format!("{what} {}", self.path.display()), e)
    }
}

impl PieceWriter for NfsPieceWriter {
    fn append(&mut self, buf: &[u8]) -> Result<()> {
        let res = match &mut self.staged {
            Some(st) => st.append(buf),
            None => self.file.write_all_at(buf, self.pos).map(|()| self.stats.buffered += buf.len() as u64),
        };
        res.map_err(|e| Error::io(format!("writing {} at {}", self.path.display(), self.pos), e))?;
        self.pos += buf.len() as u64;
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<()> {
        self.finish_counted().map(drop)
    }

    fn abort(self: Box<Self>) {
        let NfsPieceWriter { path, staged, .. } = *self;
        // The writers stop before the file goes.
        drop(staged);
        let _ = fs::remove_file(&path);
    }
}

pub struct NfsPieceReader {
    path: PathBuf,
    file: File,
    ahead: Mutex<Ahead>,
}

/// Where a sequential reader is, and up to where the storage was asked to read ahead.
#[derive(Default)]
struct Ahead {
    next: u64,
    until: u64,
    /// Read-ahead requests made (for the tests).
    asked: u64,
}

impl NfsPieceReader {
    /// Reads that follow the previous one ask the storage for the next window
    /// (`POSIX_FADV_WILLNEED` starts those reads and returns); a seek asks for nothing.
    fn read_ahead(&self, off: u64, len: usize) {
        let mut a = self.ahead.lock().unwrap_or_else(|p| p.into_inner());
        let end = off + len as u64;
        let sequential = off == a.next;
        a.next = end;
        if !sequential {
            a.until = end;
            return;
        }
        if a.until < end + READ_AHEAD - READ_AHEAD_STEP {
            let from = a.until.max(end);
            let to = end + READ_AHEAD;
            let _ = rustix::fs::fadvise(&self.file, from, NonZeroU64::new(to - from), Advice::WillNeed);
            a.until = to;
            a.asked += 1;
        }
    }
}

impl PieceReader for NfsPieceReader {
    fn read_at(&self, buf: &mut [u8], off: u64) -> Result<usize> {
        self.read_ahead(off, buf.len());
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether files in `dir` can be opened with O_DIRECT (tmpfs cannot).
    fn takes_direct(dir: &Path) -> bool {
        let p = dir.join("probe");
        let ok = OpenOptions::new()
            .write(true)
            .create(true)
            .custom_flags(OFlags::DIRECT.bits() as i32)
            .open(&p)
            .is_ok();
        let _ = fs::remove_file(p);
        ok
    }

    /// A directory on disk where there is one (/tmp may be tmpfs, which refuses O_DIRECT).
    fn disk_dir() -> tempfile::TempDir {
        tempfile::tempdir_in("/var/tmp").or_else(|_| tempfile::tempdir()).unwrap()
    }

    /// NetBackup's pattern: 256 KiB appends from a buffer that is not 4 KiB aligned, and a
    /// tail that is no multiple of a block.
    fn write_piece(path: PathBuf, mode: DirectIo) -> (Result<WriteStats>, Vec<u8>) {
        let data: Vec<u8> = (0..(10 << 20) + 1235).map(|i: u32| (i % 251) as u8).collect();
        let bytes = &data[1..];
        let mut w = match create(path, mode, 1 << 20) {
            Ok(w) => w,
            Err(e) => return (Err(e), bytes.to_vec()),
        };
        for c in bytes.chunks(256 << 10) {
            w.append(c).unwrap();
        }
        (w.finish_counted(), bytes.to_vec())
    }

    #[test]
    fn direct_io_decides_the_path_the_bytes_take() {
        let dir = disk_dir();
        let direct_ok = takes_direct(dir.path());
        for mode in [DirectIo::Auto, DirectIo::Always, DirectIo::Never] {
            let path = dir.path().join(format!("{mode:?}.piece"));
            let (stats, bytes) = write_piece(path.clone(), mode);
            if mode == DirectIo::Always && !direct_ok {
                assert!(stats.is_err() && !path.exists(), "always on a file system without O_DIRECT");
                continue;
            }
            let stats = stats.unwrap();
            assert_eq!(fs::read(&path).unwrap(), bytes, "{mode:?}: the file holds what was appended");
            assert_eq!(stats.direct + stats.buffered, bytes.len() as u64, "{mode:?}: {stats:?}");
            if mode == DirectIo::Never || !direct_ok {
                assert_eq!(stats.direct, 0, "{mode:?}: {stats:?}");
            } else {
                // Every whole MiB went around the page cache; only the tail did not.
                assert_eq!(stats.direct, 10 << 20, "{mode:?}: {stats:?}");
            }
        }
    }

    #[test]
    fn a_failed_write_behind_surfaces_at_the_next_append_or_at_finish() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p");
        fs::write(&path, b"").unwrap();
        // A descriptor that cannot write: every write fails (EBADF), behind the caller.
        let ro = File::open(&path).unwrap();
        let buffered = Arc::new(File::open(&path).unwrap());
        let mut st = Staged::new(ro, buffered, ALIGN, 2, true).unwrap();
        let block = vec![7u8; ALIGN];
        let mut failed_at = None;
        for i in 0..64 {
            if let Err(e) = st.append(&block) {
                failed_at = Some((i, e.to_string()));
                break;
            }
        }
        // With two writes in flight the caller runs at most three buffers ahead of an error.
        let (i, msg) = failed_at.expect("an append returns the failed write");
        assert!(i <= 4 && msg.contains("Bad file descriptor"), "{i}: {msg}");
        assert!(st.append(&block).is_err(), "and every append after it");
        assert!(st.finish().is_err(), "and finish");
    }

    #[test]
    fn o_direct_writes_refused_go_buffered_under_auto_only() {
        let dir = disk_dir();
        if !takes_direct(dir.path()) {
            return; // nothing to refuse: covered by the test above
        }
        for fallback in [true, false] {
            let path = dir.path().join(format!("p{fallback}"));
            let buffered = Arc::new(File::create(&path).unwrap());
            let direct = OpenOptions::new()
                .write(true)
                .custom_flags(OFlags::DIRECT.bits() as i32)
                .open(&path)
                .unwrap();
            // Buffers of 1000 bytes: O_DIRECT refuses that length with EINVAL.
            let mut st = Staged::new(direct, buffered.clone(), 1000, 2, fallback).unwrap();
            let res = (0..5).try_for_each(|_| st.append(&[1u8; 1000])).and_then(|()| st.finish());
            match res {
                Ok((rest, off, stats)) => {
                    assert!(fallback, "a refused O_DIRECT write is an error under always");
                    assert_eq!((rest.data().len(), off, stats.direct, stats.buffered), (0, 5000, 0, 5000));
                    assert_eq!(fs::read(&path).unwrap(), vec![1u8; 5000]);
                }
                Err(e) => assert!(!fallback && e.raw_os_error() == Some(22), "{fallback}: {e}"), // EINVAL
            }
        }
    }

    #[test]
    fn sequential_reads_ask_for_what_follows_and_seeks_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p");
        fs::write(&path, vec![3u8; 8 << 20]).unwrap();
        let r = open(path).unwrap();
        let mut buf = vec![0u8; 256 << 10];
        for k in [5u64, 1, 17, 9] {
            r.read_at(&mut buf, k * (256 << 10)).unwrap();
        }
        assert_eq!(r.ahead.lock().unwrap().asked, 0, "random reads");
        for k in 0..32u64 {
            assert_eq!(r.read_at(&mut buf, k * (256 << 10)).unwrap(), buf.len());
        }
        let asked = r.ahead.lock().unwrap().asked;
        // The first read is a seek (after 9); then a window at once and one per 4 MiB step.
        assert!((2..=4).contains(&asked), "{asked}");
    }
}
