//! Reading a piece with ranged GETs, with no thread and no buffer of its own.
//!
//! While reads are sequential, `read_ahead` GETs of `read_range` bytes each are outstanding on
//! their own kept-alive connections ([`super::wire`]): the server streams every range at once
//! and the bytes wait in the kernel's socket buffers (and the server's) until NetBackup asks
//! for them, when they are read from the socket straight into its buffer. A range read to its
//! end gives its connection back and the next range is asked for on it. A read elsewhere (a
//! restore with seeks) drops the window (its connections are closed, not drained) and is served
//! by one GET of just the bytes asked; a window opens again after two sequential reads.
//!
//! A range that fails (a reset connection, a 5xx) is asked for again from the byte the reader
//! had reached, under the retry policy: bytes already handed out are never read twice.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use rusty_s3::Method;

use super::client::{Failure, Pending, Req, Resp};
use super::Shared;
use crate::error::{Error, ErrorKind, Result};
use crate::store::PieceReader;

pub struct S3PieceReader {
    sh: Arc<Shared>,
    bucket: String,
    key: String,
    ep: usize,
    size: u64,
    st: Mutex<State>,
}

/// Bytes `pos..end` of the piece, asked for (`sent`) or being read (`body`); neither: to ask.
struct Range {
    pos: u64,
    end: u64,
    sent: Option<Pending>,
    body: Option<Resp>,
}

struct State {
    /// Where the next sequential read starts.
    next: u64,
    /// Sequential reads in a row (a fresh reader counts as having read up to 0).
    seq: u32,
    /// Consecutive ranges, the one being read first.
    window: VecDeque<Range>,
}

impl S3PieceReader {
    pub(crate) fn open(sh: Arc<Shared>, bucket: String, key: String) -> Result<S3PieceReader> {
        let ep = sh.client.pick();
        let size = super::api::head_size(&sh.client, ep, &bucket, &key)?
            .ok_or_else(|| Error::not_found(format!("piece {bucket}/{key} does not exist")))?;
        Ok(S3PieceReader {
            sh,
            bucket,
            key,
            ep,
            size,
            st: Mutex::new(State { next: 0, seq: 1, window: VecDeque::new() }),
        })
    }

    fn what(&self, pos: u64, end: u64) -> String {
        format!("GetObject {}/{} bytes {pos}-{}", self.bucket, self.key, end - 1)
    }

    /// A range to read, its GET sent now (a failure to send is retried when it is read).
    fn range(&self, pos: u64, end: u64) -> Range {
        let mut r = Range { pos, end, sent: None, body: None };
        r.sent = self.send(pos, end).ok();
        r
    }

    fn send(&self, pos: u64, end: u64) -> Result<Pending, Failure> {
        let req = Req::new(Method::Get, &self.bucket, Some(&self.key))
            .header("range", format!("bytes={pos}-{}", end - 1));
        self.sh.client.start(self.ep, &req, &self.what(pos, end))
    }

    /// The answer to a range request, checked: a 206 (or a 200 for a range from 0) of at
    /// least the bytes asked.
    fn answer(&self, p: Pending, pos: u64, end: u64) -> Result<Resp, Failure> {
        let r = self.sh.client.finish(p)?;
        let what = self.what(pos, end);
        if r.status != 206 && !(r.status == 200 && pos == 0) {
            return Err(Failure::from(Error::new(
                ErrorKind::Io,
                format!("{what}: HTTP {} to a range request", r.status),
            )));
        }
        if let Some(n) = r.header("content-length").and_then(|v| v.trim().parse::<u64>().ok()) {
            if n < end - pos {
                // The object is shorter than when the piece was opened.
                return Err(Failure {
                    err: Error::corrupt(format!("{what}: only {n} bytes returned")),
                    retry: false,
                });
            }
        }
        Ok(r)
    }

    /// Fill `buf` with the next bytes of `r`. A failure asks again for the rest of the range
    /// from the byte reached, as the retry policy says.
    fn fill(&self, r: &mut Range, buf: &mut [u8]) -> Result<()> {
        let mut done = 0;
        let res = self.sh.client.run(|_| {
            if r.sent.is_none() && r.body.is_none() {
                r.sent = Some(self.send(r.pos, r.end)?);
            }
            if let Some(p) = r.sent.take() {
                r.body = Some(self.answer(p, r.pos, r.end)?);
            }
            let body = r.body.as_mut().expect("answered above");
            while done < buf.len() {
                let res = body.read_some(|| self.what(r.pos, r.end), &mut buf[done..]);
                let n = match res {
                    Ok(0) => Err(Error::new(
                        ErrorKind::Network,
                        format!("{}: body ended early", self.what(r.pos, r.end)),
                    )),
                    r => r,
                };
                match n {
                    Ok(n) => {
                        done += n;
                        r.pos += n as u64;
                    }
                    Err(e) => {
                        r.body = None;
                        return Err(Failure::from(e));
                    }
                }
            }
            if r.pos == r.end {
                body.finish();
            }
            Ok(())
        });
        if res.is_err() {
            r.sent = None;
            r.body = None;
        }
        res
    }

    /// Ask for ranges after the window's last until `read_ahead` are outstanding.
    fn top_up(&self, st: &mut State, from: u64) {
        let mut at = st.window.back().map_or(from, |r| r.end);
        let len = self.sh.read_range.max(1);
        while st.window.len() < self.sh.read_ahead && at < self.size {
            let end = (at + len).min(self.size);
            st.window.push_back(self.range(at, end));
            at = end;
        }
    }
}

impl PieceReader for S3PieceReader {
    fn read_at(&self, buf: &mut [u8], off: u64) -> Result<usize> {
        if off >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let n = buf.len().min((self.size - off) as usize);
        let mut st = self.st.lock().unwrap_or_else(|p| p.into_inner());
        if off == st.next {
            st.seq = st.seq.saturating_add(1);
        } else {
            // A seek: what was asked ahead is not wanted (closing beats draining 16 MiB).
            st.seq = 0;
            st.window.clear();
        }
        st.next = off + n as u64;
        if self.sh.read_ahead == 0 || st.seq < 2 {
            let mut r = Range { pos: off, end: off + n as u64, sent: None, body: None };
            return self.fill(&mut r, &mut buf[..n]).map(|()| n);
        }
        let mut done = 0usize;
        while done < n {
            let pos = off + done as u64;
            self.top_up(&mut st, pos);
            let r = st.window.front_mut().expect("topped up");
            debug_assert_eq!(r.pos, pos, "the window starts where sequential reads are");
            let take = ((r.end - r.pos) as usize).min(n - done);
            if let Err(e) = self.fill(r, &mut buf[done..done + take]) {
                // Reading again starts over from here.
                st.window.clear();
                st.seq = 0;
                st.next = u64::MAX;
                return Err(e);
            }
            done += take;
            if r.pos == r.end {
                // Its connection is back in the pool: the next range goes out on it.
                st.window.pop_front();
                self.top_up(&mut st, pos + take as u64);
            }
        }
        Ok(n)
    }
}
