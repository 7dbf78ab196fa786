//! Writing a piece: the caller's bytes are copied once into a part buffer (their CRC32C, which
//! the image layer computed for its block table, combined into the part's: no second pass);
//! full parts go to a pool of `upload_workers` threads that upload them as parts of one multipart upload while
//! the caller goes on. A piece that fits in one part is a single PUT at `finish`.
//!
//! Memory is bounded: at most `workers + 2` part buffers exist per writer (one filling, one
//! waiting, one per worker); `append` blocks when all are busy. Buffers go back to a free list
//! and are reused. An upload error stops the pipeline and surfaces on the next `append` or at
//! `finish`; an abort, a failure or a drop without `finish` aborts the multipart upload.
//!
//! Every part is `part_size` bytes (the last may be shorter): the image layer starts a new
//! piece before a piece needs more parts than [`super::PARTS_PER_PIECE`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use tracing::{debug, warn};

use super::api;
use super::multipart::{self, Part};
use super::settings::{ChecksumMode, MAX_PARTS};
use super::{checksum, Shared};
use crate::error::{Error, ErrorKind, Result};
use crate::store::PieceWriter;

/// A full part on its way to a worker.
struct Job {
    n: u32,
    buf: Vec<u8>,
    /// CRC32C of `buf`.
    crc: u32,
}

/// What the writer and its workers share.
struct Pipe {
    pool: Mutex<Pool>,
    cond: Condvar,
    error: Mutex<Option<Error>>,
    parts: Mutex<Vec<Part>>,
    cancel: AtomicBool,
}

struct Pool {
    free: Vec<Vec<u8>>,
    /// Buffers alive (free, filling, queued or uploading).
    alive: usize,
    max: usize,
}

impl Pipe {
    fn failed(&self) -> Option<Error> {
        self.error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn fail(&self, e: Error) {
        self.error.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
        self.cancel.store(true, Ordering::Relaxed);
        self.cond.notify_all();
    }

    /// A buffer with room for `cap` bytes: a free one, a new one while under the limit, or
    /// wait for a worker to give one back.
    fn take(&self, cap: usize) -> Result<Vec<u8>> {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(e) = self.failed() {
                return Err(e);
            }
            if let Some(mut b) = pool.free.pop() {
                b.clear();
                if b.capacity() < cap {
                    b = Vec::with_capacity(cap); // parts grew: the old buffer goes
                }
                return Ok(b);
            }
            if pool.alive < pool.max {
                pool.alive += 1;
                return Ok(Vec::with_capacity(cap));
            }
            pool = self.cond.wait(pool).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn give(&self, buf: Vec<u8>) {
        self.pool.lock().unwrap_or_else(|p| p.into_inner()).free.push(buf);
        self.cond.notify_all();
    }
}

struct Upload {
    id: String,
    tx: Option<Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

pub struct S3PieceWriter {
    sh: Arc<Shared>,
    bucket: String,
    key: String,
    ep: usize,
    pipe: Arc<Pipe>,
    /// The part being filled (`None` before the first byte and after a submit).
    cur: Option<Vec<u8>>,
    /// CRC32C of the bytes in `cur`.
    cur_crc: u32,
    /// Number of the part being filled.
    part_no: u32,
    total: u64,
    upload: Option<Upload>,
    /// Checksum mode of the multipart upload.
    mode: ChecksumMode,
    done: bool,
}

impl S3PieceWriter {
    pub(crate) fn new(sh: Arc<Shared>, bucket: String, key: String) -> S3PieceWriter {
        let ep = sh.client.pick();
        let max = sh.workers + 2;
        S3PieceWriter {
            sh,
            bucket,
            key,
            ep,
            pipe: Arc::new(Pipe {
                pool: Mutex::new(Pool { free: Vec::new(), alive: 0, max }),
                cond: Condvar::new(),
                error: Mutex::new(None),
                parts: Mutex::new(Vec::new()),
                cancel: AtomicBool::new(false),
            }),
            cur: None,
            cur_crc: 0,
            part_no: 1,
            total: 0,
            upload: None,
            mode: ChecksumMode::None,
            done: false,
        }
    }

    fn cur_len(&self) -> usize {
        self.sh.part_size as usize
    }

    /// Hand the full current part to the workers, starting the multipart upload first.
    fn submit(&mut self) -> Result<()> {
        if self.part_no > MAX_PARTS {
            return Err(Error::new(
                ErrorKind::TooLong,
                format!("piece {}/{} passes S3's {MAX_PARTS} parts", self.bucket, self.key),
            ));
        }
        if self.upload.is_none() {
            self.start_upload()?;
        }
        let buf = self.cur.take().expect("a part to submit");
        let up = self.upload.as_ref().expect("upload started above");
        let job = Job { n: self.part_no, buf, crc: self.cur_crc };
        if let Some(tx) = &up.tx {
            if let Err(e) = tx.send(job) {
                self.pipe.give(e.0.buf);
                return Err(self
                    .pipe
                    .failed()
                    .unwrap_or_else(|| Error::internal("S3 upload workers are gone")));
            }
        }
        self.part_no += 1;
        Ok(())
    }

    fn start_upload(&mut self) -> Result<()> {
        let c = &self.sh.client;
        let (ep, bucket, key) = (self.ep, &self.bucket, &self.key);
        // The mode the upload was created with is the one of all its parts.
        let (id, mode) =
            self.sh.checksums.with(|mode| Ok((multipart::create_upload(c, ep, bucket, key, mode)?, mode)))?;
        self.mode = mode;
        debug!("multipart upload {id} of {}/{} started", self.bucket, self.key);
        let (tx, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut workers = Vec::new();
        for i in 0..self.sh.workers {
            let ctx = WorkerCtx {
                sh: self.sh.clone(),
                pipe: self.pipe.clone(),
                rx: rx.clone(),
                bucket: self.bucket.clone(),
                key: self.key.clone(),
                upload: id.clone(),
                ep: self.ep.wrapping_add(i),
                mode,
            };
            let spawned = std::thread::Builder::new().name("vast-ost-s3-up".into()).spawn(move || ctx.run());
            match spawned {
                Ok(h) => workers.push(h),
                Err(e) => {
                    // Keep the workers there are; none at all is a failure.
                    if workers.is_empty() {
                        multipart::abort_upload(c, self.ep, &self.bucket, &self.key, &id);
                        return Err(Error::io("starting S3 upload threads", e));
                    }
                    warn!("started {i} of {} S3 upload threads: {e}", self.sh.workers);
                    break;
                }
            }
        }
        self.upload = Some(Upload { id, tx: Some(tx), workers });
        Ok(())
    }

    /// Stop the workers: close the queue, wait for the parts in flight.
    fn join(&mut self) {
        if let Some(up) = self.upload.as_mut() {
            up.tx = None;
            for h in up.workers.drain(..) {
                let _ = h.join();
            }
        }
    }

    fn finish_inner(&mut self) -> Result<()> {
        if let Some(e) = self.pipe.failed() {
            return Err(e);
        }
        if self.upload.is_none() {
            // One part or less: one PUT.
            let data = self.cur.take().unwrap_or_default();
            let c = &self.sh.client;
            let what = format!("PutObject {}/{} ({} bytes)", self.bucket, self.key, data.len());
            let crc = self.cur_crc;
            return self.sh.checksums.with(|mode| {
                let headers = checksum::headers_known(mode, &data, Some(crc));
                let o = api::Obj { ep: self.ep, bucket: &self.bucket, key: &self.key };
                api::put_object(c, o, &what, &data, &headers, &[], |_| false)
            });
        }
        if self.cur.as_ref().is_some_and(|b| !b.is_empty()) {
            self.submit()?;
        }
        self.join();
        if let Some(e) = self.pipe.failed() {
            return Err(e);
        }
        let mut parts = std::mem::take(&mut *self.pipe.parts.lock().unwrap_or_else(|p| p.into_inner()));
        parts.sort_by_key(|p| p.n);
        let expect = self.part_no - 1;
        if parts.len() as u32 != expect || parts.iter().enumerate().any(|(i, p)| p.n != i as u32 + 1) {
            return Err(Error::internal(format!(
                "{} of {expect} parts of {}/{} uploaded",
                parts.len(),
                self.bucket,
                self.key
            )));
        }
        let up = self.upload.as_ref().expect("multipart upload");
        multipart::complete_upload(
            &self.sh.client,
            self.ep,
            &self.bucket,
            &self.key,
            &up.id,
            &parts,
            self.total,
        )?;
        debug!("{}/{}: {} bytes in {} parts", self.bucket, self.key, self.total, parts.len());
        self.upload = None;
        Ok(())
    }

    /// Cancel and abort whatever is open.
    fn abandon(&mut self) {
        self.pipe.cancel.store(true, Ordering::Relaxed);
        self.join();
        if let Some(up) = self.upload.take() {
            multipart::abort_upload(&self.sh.client, self.ep, &self.bucket, &self.key, &up.id);
        }
    }
}

impl PieceWriter for S3PieceWriter {
    fn append(&mut self, buf: &[u8]) -> Result<()> {
        // Bytes that come without their CRC32C (the block table): computed here, if needed.
        let crc = match self.sh.checksums.mode() {
            ChecksumMode::Crc32c => crc32c::crc32c(buf),
            _ => 0,
        };
        self.append_crc(buf, crc)
    }

    fn append_crc(&mut self, mut buf: &[u8], mut crc: u32) -> Result<()> {
        if let Some(e) = self.pipe.failed() {
            return Err(e.context(format!("uploading {}/{}", self.bucket, self.key)));
        }
        while !buf.is_empty() {
            let len = self.cur_len();
            // A full part is sent only when more bytes come: a piece of exactly one part is
            // then still a single PUT.
            if self.cur.as_ref().is_some_and(|b| b.len() >= len) {
                self.submit()?;
            }
            if self.cur.is_none() {
                let len = self.cur_len();
                self.cur = Some(self.pipe.take(len)?);
                self.cur_crc = 0;
            }
            let len = self.cur_len();
            let cur = self.cur.as_mut().expect("a part buffer");
            let n = (len - cur.len()).min(buf.len());
            let (head, rest) = if n == buf.len() { (crc, 0) } else { checksum::split_crc(buf, crc, n) };
            cur.extend_from_slice(&buf[..n]);
            self.cur_crc = crate::util::crc32c_combine(self.cur_crc, head, n);
            crc = rest;
            buf = &buf[n..];
            self.total += n as u64;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        let res = self.finish_inner();
        self.done = true;
        if res.is_err() {
            self.abandon();
        }
        res.map_err(|e| e.context(format!("writing piece {}/{}", self.bucket, self.key)))
    }

    fn abort(mut self: Box<Self>) {
        self.done = true;
        self.abandon();
    }
}

impl Drop for S3PieceWriter {
    fn drop(&mut self) {
        if !self.done {
            self.abandon();
        }
    }
}

struct WorkerCtx {
    sh: Arc<Shared>,
    pipe: Arc<Pipe>,
    rx: Arc<Mutex<Receiver<Job>>>,
    bucket: String,
    key: String,
    upload: String,
    ep: usize,
    mode: ChecksumMode,
}

impl WorkerCtx {
    fn run(self) {
        loop {
            let job = match self.rx.lock().unwrap_or_else(|p| p.into_inner()).recv() {
                Ok(j) => j,
                Err(_) => return,
            };
            if !self.pipe.cancel.load(Ordering::Relaxed) {
                // A panic must not take the buffer with it: the writer would wait for it forever.
                let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    self.upload_part(job.n, &job.buf, job.crc)
                }))
                .unwrap_or_else(|_| Err(Error::internal(format!("S3 upload of part {} panicked", job.n))));
                match res {
                    Ok(p) => self.pipe.parts.lock().unwrap_or_else(|p| p.into_inner()).push(p),
                    Err(e) => self.pipe.fail(e),
                }
            }
            self.pipe.give(job.buf);
        }
    }

    fn upload_part(&self, n: u32, data: &[u8], crc: u32) -> Result<Part> {
        let headers = checksum::headers_known(self.mode, data, Some(crc));
        let crc = match self.mode {
            ChecksumMode::Crc32c => headers.first().map(|h| h.1.clone()),
            _ => None,
        };
        let o = api::Obj { ep: self.ep, bucket: &self.bucket, key: &self.key };
        let etag = multipart::upload_part(&self.sh.client, o, &self.upload, n, data, &headers)?;
        Ok(Part { n, etag, crc })
    }
}
