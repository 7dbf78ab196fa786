//! Reading a piece with ranged GETs. While reads are sequential (each starts where the last
//! ended), `read_ahead` ranges of `part_size` are fetched ahead by background threads, so the
//! pipe stays full while NetBackup consumes; a read elsewhere drops the window and is served
//! by one ranged GET straight into the caller's buffer. Memory: at most `read_ahead` ranges
//! per reader (plus the ones still in flight when a random read dropped a window).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use rusty_s3::Method;

use super::client::{Failure, Req};
use super::Shared;
use crate::error::{Error, ErrorKind, Result};
use crate::store::PieceReader;

pub struct S3PieceReader {
    sh: Arc<Shared>,
    src: Arc<Source>,
    size: u64,
    chunk: u64,
    st: Mutex<State>,
}

/// What a fetch needs to know, shared with the read-ahead threads.
struct Source {
    bucket: String,
    key: String,
    ep: usize,
}

struct State {
    /// Where the next sequential read starts.
    next: u64,
    /// Ranges in flight or fetched, consecutive, the one being read first.
    window: VecDeque<Chunk>,
    /// Buffers of ranges already consumed.
    free: Vec<Vec<u8>>,
}

struct Chunk {
    idx: u64,
    slot: Arc<Slot>,
}

#[derive(Default)]
struct Slot {
    res: Mutex<Option<Result<Vec<u8>>>>,
    cond: Condvar,
    /// Set when the range is no longer wanted: its GET stops reading.
    cancel: AtomicBool,
}

impl State {
    /// Drop the window; transfers still running stop at their next read from the socket.
    fn clear(&mut self) {
        for c in self.window.drain(..) {
            c.slot.cancel.store(true, Ordering::Relaxed);
        }
    }
}

impl S3PieceReader {
    pub(crate) fn open(sh: Arc<Shared>, bucket: String, key: String) -> Result<S3PieceReader> {
        let ep = sh.client.pick();
        let size = super::api::head_size(&sh.client, ep, &bucket, &key)?
            .ok_or_else(|| Error::not_found(format!("piece {bucket}/{key} does not exist")))?;
        let chunk = sh.part_size.max(1);
        Ok(S3PieceReader {
            src: Arc::new(Source { bucket, key, ep }),
            sh,
            size,
            chunk,
            st: Mutex::new(State { next: 0, window: VecDeque::new(), free: Vec::new() }),
        })
    }

    fn spawn_fetch(&self, st: &mut State, idx: u64) {
        let start = idx * self.chunk;
        let len = self.chunk.min(self.size - start) as usize;
        let slot = Arc::new(Slot::default());
        let buf = st.free.pop().unwrap_or_default();
        let (sh, src, s2) = (self.sh.clone(), self.src.clone(), slot.clone());
        let job = move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                fetch(&sh, &src, start, len, buf, &s2.cancel)
            }))
            .unwrap_or_else(|_| {
                Err(Error::internal(format!("S3 read-ahead of {}/{} panicked", src.bucket, src.key)))
            });
            *s2.res.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
            s2.cond.notify_all();
        };
        if let Err(e) = std::thread::Builder::new().name("vast-ost-s3-rd".into()).spawn(job) {
            *slot.res.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(Err(Error::io("starting an S3 read-ahead thread", e)));
        }
        st.window.push_back(Chunk { idx, slot });
    }
}

/// GET `len` bytes at `start` into `buf` (reused: resized, not cleared).
fn fetch(
    sh: &Shared,
    src: &Source,
    start: u64,
    len: usize,
    mut buf: Vec<u8>,
    cancel: &AtomicBool,
) -> Result<Vec<u8>> {
    if buf.len() < len {
        buf.resize(len, 0);
    } else {
        buf.truncate(len);
    }
    get_range(sh, src, start, &mut buf, Some(cancel))?;
    Ok(buf)
}

/// One ranged GET filling `buf` exactly, retried as the policy says.
fn get_range(
    sh: &Shared,
    src: &Source,
    start: u64,
    buf: &mut [u8],
    cancel: Option<&AtomicBool>,
) -> Result<()> {
    let c = &sh.client;
    let end = start + buf.len() as u64 - 1;
    let what = format!("GetObject {}/{} bytes {start}-{end}", src.bucket, src.key);
    c.call(
        src.ep,
        &what,
        || Req::new(Method::Get, &src.bucket, Some(&src.key)).header("range", format!("bytes={start}-{end}")),
        |mut r| {
            // 200 is the whole object: right only when that is what was asked.
            if r.status != 206 && !(r.status == 200 && start == 0) {
                return Err(Failure::from(Error::new(
                    ErrorKind::Io,
                    format!("{what}: HTTP {} to a range request", r.status),
                )));
            }
            if let Some(n) = r.header("content-length").and_then(|v| v.trim().parse::<u64>().ok()) {
                if n < buf.len() as u64 {
                    // The object is shorter than when the piece was opened.
                    return Err(Failure {
                        err: Error::corrupt(format!("{what}: only {n} bytes returned")),
                        retry: false,
                    });
                }
            }
            r.read_into(&what, buf, cancel)?;
            Ok(())
        },
    )
}

impl PieceReader for S3PieceReader {
    fn read_at(&self, buf: &mut [u8], off: u64) -> Result<usize> {
        if off >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let n = buf.len().min((self.size - off) as usize);
        let mut st = self.st.lock().unwrap_or_else(|p| p.into_inner());
        let idx0 = off / self.chunk;
        let in_window = st.window.front().is_some_and(|c| c.idx <= idx0)
            && st.window.back().is_some_and(|c| idx0 <= c.idx);
        if self.sh.read_ahead == 0 || (off != st.next && !in_window) {
            // Random access: drop the window (its threads finish on their own) and read here.
            st.clear();
            get_range(&self.sh, &self.src, off, &mut buf[..n], None)?;
            st.next = off + n as u64;
            return Ok(n);
        }
        let last_idx = (self.size - 1) / self.chunk;
        let mut done = 0usize;
        while done < n {
            let pos = off + done as u64;
            let idx = pos / self.chunk;
            // Ranges behind us give their buffers back.
            while st.window.front().is_some_and(|c| c.idx < idx) {
                let c = st.window.pop_front().expect("front exists");
                let done = c.slot.res.lock().unwrap_or_else(|p| p.into_inner()).take();
                if let Some(Ok(b)) = done {
                    st.free.push(b);
                }
            }
            if st.window.front().is_some_and(|c| c.idx != idx) {
                st.clear();
            }
            let mut want = st.window.back().map_or(idx, |c| c.idx + 1);
            while st.window.len() < self.sh.read_ahead && want <= last_idx {
                self.spawn_fetch(&mut st, want);
                want += 1;
            }
            let slot = st.window.front().expect("window holds the current range").slot.clone();
            let mut res = slot.res.lock().unwrap_or_else(|p| p.into_inner());
            while res.is_none() {
                res = slot.cond.wait(res).unwrap_or_else(|p| p.into_inner());
            }
            match res.as_ref().expect("filled") {
                Ok(data) => {
                    let at = (pos - idx * self.chunk) as usize;
                    let take = (data.len() - at).min(n - done);
                    buf[done..done + take].copy_from_slice(&data[at..at + take]);
                    done += take;
                }
                Err(e) => {
                    let e = e.clone();
                    drop(res);
                    // Dropped, so that reading again fetches again.
                    st.window.pop_front();
                    return Err(e);
                }
            }
        }
        st.next = off + n as u64;
        Ok(n)
    }
}

impl Drop for S3PieceReader {
    fn drop(&mut self) {
        self.st.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}
