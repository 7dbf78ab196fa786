//! Request bodies: uploads streamed to a temp file while hashing, small XML documents read
//! whole, the integrity checks a client asked for (`x-amz-content-sha256`, `Content-MD5`,
//! `x-amz-checksum-crc32c`), Content-Length, and `x-amz-meta-*` headers.

use super::error::{internal, S3Err};
use super::hdr;
use super::sigv4;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use http::HeaderMap;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use md5::{Digest, Md5};
use sha2::Sha256;
use std::path::Path;

const MAX_META: usize = 2048;

/// A request whose body a handler may take (`body_mut().take()`). Whatever is left unread
/// when an error is answered gets drained first: closing a socket with unread upload data makes
/// the kernel reset the connection, and the client would see a reset instead of the S3 error.
pub type SReq = http::Request<Option<Incoming>>;

pub fn take_body(req: &mut SReq) -> Result<Incoming, S3Err> {
    req.body_mut().take().ok_or_else(|| internal("request body already consumed"))
}

/// Integrity checks a client asked for.
#[derive(Default, Clone)]
pub struct Checks {
    sha256: Option<[u8; 32]>,
    md5: Option<[u8; 16]>,
    crc32c: Option<u32>,
}

impl Checks {
    pub fn from(h: &HeaderMap, sig: &sigv4::SigRequest) -> Result<Checks, S3Err> {
        let mut c = Checks::default();
        if sigv4::is_sha256_hex(&sig.payload_hash) {
            let mut a = [0u8; 32];
            hex::decode_to_slice(&sig.payload_hash, &mut a)
                .map_err(|_| S3Err::new(400, "InvalidArgument", "bad x-amz-content-sha256"))?;
            c.sha256 = Some(a);
        }
        if let Some(v) = h.get("content-md5") {
            let d = v.to_str().ok().and_then(|s| B64.decode(s.trim()).ok()).filter(|d| d.len() == 16);
            let d = d.ok_or_else(|| {
                S3Err::new(400, "InvalidDigest", "The Content-MD5 you specified was invalid.")
            })?;
            c.md5 = Some(d.try_into().unwrap_or([0; 16]));
        }
        if let Some(v) = h.get("x-amz-checksum-crc32c") {
            let d = v.to_str().ok().and_then(|s| B64.decode(s.trim()).ok()).filter(|d| d.len() == 4);
            let d = d.ok_or_else(|| {
                S3Err::new(400, "InvalidRequest", "Value for x-amz-checksum-crc32c header is invalid.")
            })?;
            c.crc32c = Some(u32::from_be_bytes([d[0], d[1], d[2], d[3]]));
        }
        Ok(c)
    }
}

pub struct Received {
    pub size: u64,
    pub md5: [u8; 16],
}

struct Hashers {
    md5: Md5,
    sha: Option<Sha256>,
    crc: Option<u32>,
}

impl Hashers {
    fn new(c: &Checks) -> Self {
        Hashers { md5: Md5::new(), sha: c.sha256.map(|_| Sha256::new()), crc: c.crc32c.map(|_| 0) }
    }
    fn update(&mut self, b: &[u8]) {
        self.md5.update(b);
        if let Some(s) = &mut self.sha {
            sha2::Digest::update(s, b);
        }
        if let Some(c) = &mut self.crc {
            *c = crc32c::crc32c_append(*c, b);
        }
    }
    fn finish(self, c: &Checks) -> Result<[u8; 16], S3Err> {
        let md5: [u8; 16] = self.md5.finalize().into();
        if let (Some(s), Some(want)) = (self.sha, c.sha256) {
            let got: [u8; 32] = s.finalize().into();
            if got != want {
                return Err(S3Err::new(
                    400,
                    "XAmzContentSHA256Mismatch",
                    "The provided 'x-amz-content-sha256' header does not match what was computed.",
                ));
            }
        }
        if let Some(want) = c.md5 {
            if want != md5 {
                return Err(S3Err::new(
                    400,
                    "BadDigest",
                    "The Content-MD5 you specified did not match what we received.",
                ));
            }
        }
        if let (Some(got), Some(want)) = (self.crc, c.crc32c) {
            if got != want {
                return Err(S3Err::new(
                    400,
                    "BadDigest",
                    "The CRC32C you specified did not match the calculated checksum.",
                ));
            }
        }
        Ok(md5)
    }
}

/// The request's Content-Length (S3 requires one for uploads; aws-chunked is not supported).
pub fn content_length(h: &HeaderMap) -> Result<u64, S3Err> {
    hdr(h, "content-length")
        .ok_or_else(|| {
            S3Err::new(411, "MissingContentLength", "You must provide the Content-Length HTTP header.")
        })?
        .trim()
        .parse()
        .map_err(|_| S3Err::new(400, "InvalidArgument", "Content-Length is not a number"))
}

/// Streams a request body into `tmp`, hashing as it goes. On any failure `tmp` is removed.
pub async fn receive(body: Incoming, tmp: &Path, expect: u64, checks: &Checks) -> Result<Received, S3Err> {
    let r = receive_inner(body, tmp, expect, checks).await;
    if r.is_err() {
        let _ = tokio::fs::remove_file(tmp).await;
    }
    r
}

async fn receive_inner(
    mut body: Incoming,
    tmp: &Path,
    expect: u64,
    checks: &Checks,
) -> Result<Received, S3Err> {
    // Plain std writes inside block_in_place: tokio::fs would copy every chunk to the
    // blocking pool and back, halving upload throughput.
    let mut f = std::fs::File::create(tmp).map_err(internal)?;
    let mut h = Hashers::new(checks);
    let mut size = 0u64;
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| {
            S3Err::new(
                400,
                "IncompleteBody",
                "You did not provide the number of bytes specified by the Content-Length HTTP header.",
            )
        })?;
        if let Ok(data) = frame.into_data() {
            size += data.len() as u64;
            if size > expect {
                return Err(S3Err::new(
                    400,
                    "IncompleteBody",
                    "The request body is longer than Content-Length.",
                ));
            }
            h.update(&data);
            buf.extend_from_slice(&data);
            if buf.len() >= 1 << 20 {
                tokio::task::block_in_place(|| std::io::Write::write_all(&mut f, &buf)).map_err(internal)?;
                buf.clear();
            }
        }
    }
    if size != expect {
        return Err(S3Err::new(
            400,
            "IncompleteBody",
            "You did not provide the number of bytes specified by the Content-Length HTTP header.",
        ));
    }
    tokio::task::block_in_place(|| std::io::Write::write_all(&mut f, &buf)).map_err(internal)?;
    let md5 = h.finish(checks)?;
    Ok(Received { size, md5 })
}

/// Reads a small (XML) request body fully, enforcing the same checks.
pub async fn small_body(req: &mut SReq, sig: &sigv4::SigRequest) -> Result<String, S3Err> {
    let checks = Checks::from(req.headers(), sig)?;
    let body = http_body_util::Limited::new(take_body(req)?, 4 << 20)
        .collect()
        .await
        .map_err(|_| S3Err::new(400, "MalformedXML", "The request body could not be read or is too large"))?
        .to_bytes();
    let mut h = Hashers::new(&checks);
    h.update(&body);
    h.finish(&checks)?;
    String::from_utf8(body.to_vec())
        .map_err(|_| S3Err::new(400, "MalformedXML", "The XML you provided was not well-formed"))
}

pub fn user_meta(h: &HeaderMap) -> Result<Vec<(String, String)>, S3Err> {
    let mut v = Vec::new();
    let mut total = 0;
    for (k, val) in h {
        if let Some(n) = k.as_str().strip_prefix("x-amz-meta-") {
            let val = val
                .to_str()
                .map_err(|_| S3Err::new(400, "InvalidArgument", "metadata values must be ASCII"))?;
            total += n.len() + val.len();
            v.push((n.to_string(), val.to_string()));
        }
    }
    if total > MAX_META {
        return Err(S3Err::new(
            400,
            "MetadataTooLarge",
            "Your metadata headers exceed the maximum allowed metadata size.",
        )
        .with("MaxSizeAllowed", MAX_META.to_string()));
    }
    v.sort();
    Ok(v)
}
