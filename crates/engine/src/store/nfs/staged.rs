//! Staged O_DIRECT write-behind for an NFS piece. NetBackup writes 256 KiB at a time from
//! buffers of any alignment, which O_DIRECT refuses; so appends are copied into 4 KiB-aligned
//! buffers of `chunk` bytes, and each full buffer is written with O_DIRECT by one of a few
//! threads that live as long as the piece: several writes are in flight while the caller
//! fills the next buffer (the disk sees what `fio --direct=1 --iodepth=N` gives it). A failed
//! write is kept and returned by the next append or by [`Staged::finish`]. What is left at the
//! end (the part of the last buffer) is handed back for a buffered write, since its length
//! need not be aligned.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tracing::warn;

/// O_DIRECT needs buffer address, offset and length aligned to the device's logical block;
/// 4 KiB covers every device and NFS.
pub const ALIGN: usize = 4096;

/// A buffer whose bytes start at a 4 KiB boundary: a Vec with room to slide its start (the
/// heap block does not move with the Vec, so the alignment holds).
pub struct Aligned {
    vec: Vec<u8>,
    start: usize,
    cap: usize,
    len: usize,
}

impl Aligned {
    fn new(cap: usize) -> Aligned {
        let vec = vec![0u8; cap + ALIGN];
        let start = vec.as_ptr().align_offset(ALIGN);
        Aligned { vec, start, cap, len: 0 }
    }

    /// Copy as much of `buf` as fits; returns how much.
    fn fill(&mut self, buf: &[u8]) -> usize {
        let n = buf.len().min(self.cap - self.len);
        let at = self.start + self.len;
        self.vec[at..at + n].copy_from_slice(&buf[..n]);
        self.len += n;
        n
    }

    pub fn data(&self) -> &[u8] {
        &self.vec[self.start..self.start + self.len]
    }

    fn is_full(&self) -> bool {
        self.len == self.cap
    }
}

/// One full buffer to write at `off`.
struct Job {
    buf: Aligned,
    off: u64,
}

/// A written buffer coming back: how it went, and whether it went around the page cache.
struct Done {
    buf: Aligned,
    off: u64,
    res: io::Result<()>,
    direct: bool,
}

/// Bytes that went to the file with O_DIRECT and through the page cache.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriteStats {
    pub direct: u64,
    pub buffered: u64,
}

/// A write that failed (io::Error is not Clone; this is what is needed of it again).
struct Failed {
    errno: Option<i32>,
    kind: io::ErrorKind,
    msg: String,
}

pub struct Staged {
    jobs: Option<SyncSender<Job>>,
    done: Receiver<Done>,
    workers: Vec<JoinHandle<()>>,
    cur: Aligned,
    /// File offset of `cur`'s first byte.
    cur_off: u64,
    free: Vec<Aligned>,
    /// Buffers made so far (at most `depth` + 1: one filling, `depth` in flight).
    made: usize,
    in_flight: usize,
    depth: usize,
    chunk: usize,
    /// The first failed write, returned from then on.
    failed: Option<Failed>,
    stats: WriteStats,
}

impl Staged {
    /// Write-behind to `direct` (the piece opened with O_DIRECT) in buffers of `chunk` bytes
    /// (a multiple of [`ALIGN`]), `depth` writes in flight. With `fallback`, a file system
    /// that takes the O_DIRECT open but refuses the writes (EINVAL) gets them through
    /// `buffered` instead. Fails only when a thread cannot be started (the ones started stop
    /// as the queue is dropped).
    pub fn new(
        direct: File,
        buffered: Arc<File>,
        chunk: usize,
        depth: usize,
        fallback: bool,
    ) -> io::Result<Staged> {
        let depth = depth.max(1);
        let (jobs, rx) = sync_channel::<Job>(depth);
        let (done_tx, done) = channel();
        let rx = Arc::new(Mutex::new(rx));
        let direct = Arc::new(direct);
        let refused = Arc::new(AtomicBool::new(false));
        let workers = (0..depth)
            .map(|_| {
                let (rx, done_tx, direct, buffered, refused) =
                    (rx.clone(), done_tx.clone(), direct.clone(), buffered.clone(), refused.clone());
                std::thread::Builder::new()
                    .name("vast-ost-nfs-write".into())
                    .spawn(move || worker(&rx, &done_tx, &direct, &buffered, &refused, fallback))
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Staged {
            jobs: Some(jobs),
            done,
            workers,
            cur: Aligned::new(chunk),
            cur_off: 0,
            free: Vec::new(),
            made: 1,
            in_flight: 0,
            depth,
            chunk,
            failed: None,
            stats: WriteStats::default(),
        })
    }

    /// Stage `buf`; full buffers go to the writers. An earlier write's error is returned here.
    pub fn append(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while let Ok(d) = self.done.try_recv() {
            self.take(d);
        }
        self.check()?;
        while !buf.is_empty() {
            let n = self.cur.fill(buf);
            buf = &buf[n..];
            if self.cur.is_full() {
                self.submit()?;
            }
        }
        Ok(())
    }

    /// Wait for every write in flight and stop the writers; returns the staged rest, its
    /// offset and how the bytes before it went, or the first write's error.
    pub fn finish(mut self) -> io::Result<(Aligned, u64, WriteStats)> {
        self.drain();
        self.stop();
        self.check()?;
        let rest = std::mem::replace(&mut self.cur, Aligned::new(0));
        Ok((rest, self.cur_off, self.stats))
    }

    fn submit(&mut self) -> io::Result<()> {
        let next = match self.free.pop() {
            Some(b) => b,
            None if self.made <= self.depth => {
                self.made += 1;
                Aligned::new(self.chunk)
            }
            None => {
                // Every buffer is in flight: wait for one (this is the back-pressure).
                let d = self.done.recv().map_err(|_| io::Error::other("NFS write threads are gone"))?;
                self.take(d);
                self.check()?;
                self.free.pop().expect("a buffer came back")
            }
        };
        let full = std::mem::replace(&mut self.cur, next);
        let off = self.cur_off;
        self.cur_off += full.len as u64;
        let jobs = self.jobs.as_ref().expect("writers run until finish");
        jobs.send(Job { buf: full, off }).map_err(|_| io::Error::other("NFS write threads are gone"))?;
        self.in_flight += 1;
        Ok(())
    }

    fn take(&mut self, mut d: Done) {
        self.in_flight -= 1;
        match d.res {
            Ok(()) if d.direct => self.stats.direct += d.buf.len as u64,
            Ok(()) => self.stats.buffered += d.buf.len as u64,
            Err(e) => {
                if self.failed.is_none() {
                    warn!(offset = d.off, error = %e, "a write behind the caller failed: the next append or the close reports it");
                    self.failed =
                        Some(Failed { errno: e.raw_os_error(), kind: e.kind(), msg: e.to_string() });
                }
            }
        }
        d.buf.len = 0;
        self.free.push(d.buf);
    }

    fn check(&self) -> io::Result<()> {
        match &self.failed {
            // The errno itself, so ENOSPC is still told as no space.
            Some(f) => Err(match f.errno {
                Some(code) => io::Error::from_raw_os_error(code),
                None => io::Error::new(f.kind, f.msg.clone()),
            }),
            None => Ok(()),
        }
    }

    fn drain(&mut self) {
        while self.in_flight > 0 {
            match self.done.recv() {
                Ok(d) => self.take(d),
                Err(_) => break,
            }
        }
    }

    fn stop(&mut self) {
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl Drop for Staged {
    /// An aborted piece: the writers finish what they hold, then stop.
    fn drop(&mut self) {
        self.stop();
    }
}

fn worker(
    rx: &Mutex<Receiver<Job>>,
    done: &Sender<Done>,
    direct: &File,
    buffered: &File,
    refused: &AtomicBool,
    fallback: bool,
) {
    loop {
        let job = match rx.lock().unwrap_or_else(|p| p.into_inner()).recv() {
            Ok(j) => j,
            Err(_) => return,
        };
        let data = job.buf.data();
        let mut went_direct = !refused.load(Ordering::Relaxed);
        let mut res = if went_direct { direct.write_all_at(data, job.off) } else { Err(einval()) };
        if fallback && res.as_ref().is_err_and(is_einval) {
            // This file system takes the O_DIRECT open but not the writes: page cache it is.
            refused.store(true, Ordering::Relaxed);
            went_direct = false;
            res = buffered.write_all_at(data, job.off);
        }
        if done.send(Done { buf: job.buf, off: job.off, res, direct: went_direct }).is_err() {
            return;
        }
    }
}

fn einval() -> io::Error {
    io::Error::from_raw_os_error(rustix::io::Errno::INVAL.raw_os_error())
}

fn is_einval(e: &io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error())
}
