//! Writing a piece: the caller's bytes are copied once into a part buffer; full parts go to a
//! pool of `upload_workers` threads that upload them as parts of one multipart upload while
//! the caller goes on. A piece that fits in one part is a single PUT at `finish`.
//!
//! Memory is bounded: at most `workers + 2` part buffers exist per writer (one filling, one
//! waiting, one per worker); `append` blocks when all are busy. Buffers go back to a free list
//! and are reused. An upload error stops the pipeline and surfaces on the next `append` or at
//! `finish`; an abort, a failure or a drop without `finish` aborts the multipart upload.
//!
//! Part sizes: `part_size` for the first 5000 parts, then doubling every 1000 parts (capped at
//! 5 GiB), so a piece can reach ~62 × 5000 × `part_size` (about 1 TiB at 16 MiB) within S3's
//! 10,000 parts; the memory bound grows with the part size for such pieces only.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use base64::Engine as _;
use rusty_s3::Method;
use tracing::{debug, warn};

use super::client::{embedded_error, escape, unescape, xml_all, xml_first, Client, Failure, Req};
use super::{ChecksumMode, Shared, MAX_PART, MAX_PARTS};
use crate::error::{Error, ErrorKind, Result};
use crate::store::PieceWriter;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Length of part `n` (1-based) for a base part size.
pub(crate) fn part_len(base: u64, n: u32) -> u64 {
    // Parts 5001..=6000 are twice the base, 6001..=7000 four times, and so on.
    let doublings = if n <= 5000 { 0 } else { ((n - 4001) / 1000).min(30) };
    base.saturating_mul(1 << doublings).min(MAX_PART).max(base)
}

/// The headers that carry `data`'s checksum in `mode`.
pub(crate) fn checksum_headers(mode: ChecksumMode, data: &[u8]) -> Vec<(&'static str, String)> {
    match mode {
        ChecksumMode::Crc32c => {
            vec![("x-amz-checksum-crc32c", B64.encode(crc32c::crc32c(data).to_be_bytes()))]
        }
        ChecksumMode::Md5 => vec![("content-md5", B64.encode(super::md5_digest(data)))],
        ChecksumMode::None => Vec::new(),
    }
}

/// HeadObject: `Some(size)`, or `None` when there is no such object.
pub(crate) fn head_size(c: &Client, ep: usize, bucket: &str, key: &str) -> Result<Option<u64>> {
    let what = format!("HeadObject {bucket}/{key}");
    let r = c.call(
        ep,
        &what,
        || Req::new(Method::Head, bucket, Some(key)),
        |r| {
            r.header("content-length")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| Failure::from(Error::new(ErrorKind::Io, format!("{what}: no Content-Length"))))
        },
    );
    match r {
        Ok(n) => Ok(Some(n)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// GetObject of a small object (at most `limit` bytes, or an error): `None` if it is absent.
pub(crate) fn get_small(
    c: &Client,
    ep: usize,
    bucket: &str,
    key: &str,
    limit: u64,
) -> Result<Option<Vec<u8>>> {
    let what = format!("GetObject {bucket}/{key}");
    let r =
        c.call(ep, &what, || Req::new(Method::Get, bucket, Some(key)), |mut r| Ok(r.bytes(&what, limit)?));
    match r {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == ErrorKind::NotFound && !e.message().contains("NoSuchBucket") => Ok(None),
        Err(e) => Err(e),
    }
}

pub(crate) fn create_upload(
    c: &Client,
    ep: usize,
    bucket: &str,
    key: &str,
    mode: ChecksumMode,
) -> Result<String> {
    let what = format!("CreateMultipartUpload {bucket}/{key}");
    let attempts = std::cell::Cell::new(0u32);
    let id = c.call(
        ep,
        &what,
        || {
            attempts.set(attempts.get() + 1);
            let r = Req::new(Method::Post, bucket, Some(key)).query("uploads", "");
            // Parts then carry x-amz-checksum-crc32c, and the completion lists them.
            if mode == ChecksumMode::Crc32c {
                r.header("x-amz-checksum-algorithm", "CRC32C")
            } else {
                r
            }
        },
        |mut r| {
            let doc = r.text(&what, 1 << 20)?;
            xml_first(&doc, "UploadId").map(unescape).filter(|u| !u.is_empty()).ok_or_else(|| {
                Failure::from(Error::new(ErrorKind::Io, format!("{what}: no UploadId in the answer")))
            })
        },
    )?;
    // A create is not idempotent: an attempt whose answer was lost may still have opened an
    // upload. The piece key is this writer's alone, so every other upload on it is such a stray.
    if attempts.get() > 1 {
        abort_others(c, ep, bucket, key, &id);
    }
    Ok(id)
}

/// Abort every open upload on `key` except `keep` (best effort: a stray left here is still
/// aborted when its image is deleted).
fn abort_others(c: &Client, ep: usize, bucket: &str, key: &str, keep: &str) {
    let what = format!("ListMultipartUploads {bucket}/{key}");
    let doc = c.call(
        ep,
        &what,
        || Req::new(Method::Get, bucket, None).query("uploads", "").query("prefix", key),
        |mut r| Ok(r.text(&what, 1 << 20)?),
    );
    let Ok(doc) = doc else { return };
    for u in xml_all(&doc, "Upload") {
        let k = xml_first(u, "Key").map(unescape).unwrap_or_default();
        let id = xml_first(u, "UploadId").map(unescape).unwrap_or_default();
        if k == key && id != keep && !id.is_empty() {
            debug!("aborting upload {id} of {bucket}/{key} left by a retried create");
            abort_upload(c, ep, bucket, key, &id);
        }
    }
}

pub(crate) struct Part {
    pub n: u32,
    pub etag: String,
    /// The part's CRC32C (base64), when it was sent with one.
    pub crc: Option<String>,
}

/// CompleteMultipartUpload. A 200 answer may still carry an error (checked), and a retry after
/// a lost answer finds the upload gone: then the object of the expected size is success.
pub(crate) fn complete_upload(
    c: &Client,
    ep: usize,
    bucket: &str,
    key: &str,
    upload: &str,
    parts: &[Part],
    size: u64,
) -> Result<()> {
    let what = format!("CompleteMultipartUpload {bucket}/{key} ({} parts)", parts.len());
    let mut body = String::with_capacity(80 * parts.len() + 64);
    body.push_str("<CompleteMultipartUpload>");
    for p in parts {
        body.push_str(&format!("<Part><PartNumber>{}</PartNumber><ETag>{}</ETag>", p.n, escape(&p.etag)));
        if let Some(crc) = &p.crc {
            body.push_str(&format!("<ChecksumCRC32C>{crc}</ChecksumCRC32C>"));
        }
        body.push_str("</Part>");
    }
    body.push_str("</CompleteMultipartUpload>");
    c.run(|attempt| {
        let r = Req::new(Method::Post, bucket, Some(key))
            .query("uploadId", upload)
            .header("content-type", "application/xml")
            .body(body.as_bytes());
        match c.send(ep, &r, &what) {
            Ok(mut resp) => {
                let doc = resp.text(&what, 1 << 20)?;
                match embedded_error(&what, &doc) {
                    Some(f) => Err(f),
                    None => Ok(()),
                }
            }
            Err(f) if attempt > 1 && f.err.kind() == ErrorKind::NotFound => {
                match head_size(c, ep, bucket, key) {
                    Ok(Some(n)) if n == size => Ok(()),
                    _ => Err(f),
                }
            }
            Err(f) => Err(f),
        }
    })
}

/// AbortMultipartUpload, logged rather than returned: it runs on paths that already fail.
pub(crate) fn abort_upload(c: &Client, ep: usize, bucket: &str, key: &str, upload: &str) {
    let what = format!("AbortMultipartUpload {bucket}/{key} {upload}");
    let r = c.call(
        ep,
        &what,
        || Req::new(Method::Delete, bucket, Some(key)).query("uploadId", upload),
        |_| Ok(()),
    );
    match r {
        Ok(()) => debug!("{what}: done"),
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => warn!("{what} failed, the upload stays open until the image is deleted: {e}"),
    }
}

/// A full part on its way to a worker.
struct Job {
    n: u32,
    buf: Vec<u8>,
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
            part_no: 1,
            total: 0,
            upload: None,
            mode: ChecksumMode::None,
            done: false,
        }
    }

    fn cur_len(&self) -> usize {
        part_len(self.sh.part_size, self.part_no) as usize
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
        let job = Job { n: self.part_no, buf };
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
            self.sh.with_checksum(|mode| Ok((create_upload(c, ep, bucket, key, mode)?, mode)))?;
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
                        abort_upload(c, self.ep, &self.bucket, &self.key, &id);
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
            return self.sh.with_checksum(|mode| {
                let check = checksum_headers(mode, &data);
                c.call(
                    self.ep,
                    &what,
                    || {
                        let mut r = Req::new(Method::Put, &self.bucket, Some(&self.key)).body(&data);
                        r.headers.extend(check.iter().cloned());
                        r
                    },
                    |_| Ok(()),
                )
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
        complete_upload(&self.sh.client, self.ep, &self.bucket, &self.key, &up.id, &parts, self.total)?;
        debug!("{}/{}: {} bytes in {} parts", self.bucket, self.key, self.total, parts.len());
        self.upload = None;
        Ok(())
    }

    /// Cancel and abort whatever is open.
    fn abandon(&mut self) {
        self.pipe.cancel.store(true, Ordering::Relaxed);
        self.join();
        if let Some(up) = self.upload.take() {
            abort_upload(&self.sh.client, self.ep, &self.bucket, &self.key, &up.id);
        }
    }
}

impl PieceWriter for S3PieceWriter {
    fn append(&mut self, mut buf: &[u8]) -> Result<()> {
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
            }
            let len = self.cur_len();
            let cur = self.cur.as_mut().expect("a part buffer");
            let n = (len - cur.len()).min(buf.len());
            cur.extend_from_slice(&buf[..n]);
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
                    self.upload_part(job.n, &job.buf)
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

    fn upload_part(&self, n: u32, data: &[u8]) -> Result<Part> {
        let c = &self.sh.client;
        let what = format!("UploadPart {}/{} part {n} ({} bytes)", self.bucket, self.key, data.len());
        let check = checksum_headers(self.mode, data);
        let crc = match self.mode {
            ChecksumMode::Crc32c => check.first().map(|h| h.1.clone()),
            _ => None,
        };
        let etag = c.call(
            self.ep,
            &what,
            || {
                let mut r = Req::new(Method::Put, &self.bucket, Some(&self.key))
                    .query("partNumber", n.to_string())
                    .query("uploadId", self.upload.clone())
                    .body(data);
                r.headers.extend(check.iter().cloned());
                r
            },
            |r| {
                r.header("etag").map(str::to_string).ok_or_else(|| {
                    Failure::from(Error::new(ErrorKind::Io, format!("{what}: no ETag in the answer")))
                })
            },
        )?;
        Ok(Part { n, etag, crc })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_sizes_reach_a_tebibyte_within_the_part_limit() {
        let base = 16 << 20;
        assert_eq!(part_len(base, 1), base);
        assert_eq!(part_len(base, 5000), base);
        assert_eq!(part_len(base, 5001), 2 * base);
        assert_eq!(part_len(base, 6000), 2 * base);
        assert_eq!(part_len(base, 6001), 4 * base);
        assert_eq!(part_len(base, 10_000), 32 * base);
        let total: u64 = (1..=MAX_PARTS).map(|n| part_len(base, n)).sum();
        assert!(total > 1 << 40, "{total}");
        assert!((1..=MAX_PARTS).all(|n| part_len(MAX_PART, n) == MAX_PART));
    }

    #[test]
    fn checksum_header_values() {
        // CRC32C("123456789") = e3069283, as S3 wants it: big-endian, base64.
        let h = checksum_headers(ChecksumMode::Crc32c, b"123456789");
        assert_eq!(h, vec![("x-amz-checksum-crc32c", "4waSgw==".to_string())]);
        let h = checksum_headers(ChecksumMode::Md5, b"");
        assert_eq!(h, vec![("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg==".to_string())]);
        assert!(checksum_headers(ChecksumMode::None, b"x").is_empty());
    }
}
