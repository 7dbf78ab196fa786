//! What an S3 server really does with conditional writes and CRC32C checksums, found out by
//! trying them on keys of the plug-in's own (`.vast-ost/probe/…`, which no image listing
//! shows) and removing them again. A server may answer `200 OK` to a header it ignores, so
//! every feature is tried both ways: a request that must be refused, and one that must pass.

use std::fmt;

use rusty_s3::Method;

use super::client::{Client, Failure, Req};
use super::{api, checksum, Shared};
use crate::error::{ErrorKind, Result};
use crate::layout;
use crate::util;

/// What a server does with one feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Enforced: the request that had to be refused was refused, the other passed.
    Honoured,
    /// Accepted and not enforced: the request that had to be refused passed.
    Ignored,
    /// Refused outright (501, 400), or unusable (If-Match: ETags that are not MD5s).
    Refused,
}

impl fmt::Display for Support {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Support::Honoured => "honoured",
            Support::Ignored => "ignored",
            Support::Refused => "not supported",
        })
    }
}

/// What a bucket's server does with the features the store relies on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// `If-None-Match: *` on PutObject.
    pub if_none_match: Support,
    /// `If-Match: <MD5 ETag>` on PutObject.
    pub if_match: Support,
    /// `x-amz-checksum-crc32c` on PutObject.
    pub crc32c: Support,
}

impl fmt::Display for Features {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "If-None-Match {}, If-Match {}, CRC32C {}", self.if_none_match, self.if_match, self.crc32c)
    }
}

/// One PUT, retried only for transient failures: a refusal is the answer being probed for.
fn put(
    c: &Client,
    o: api::Obj<'_>,
    body: &[u8],
    headers: &[(&'static str, String)],
    cond: Option<(&'static str, String)>,
) -> Result<()> {
    let what = format!("probe PUT {}/{}", o.bucket, o.key);
    c.run(|_| {
        let mut r = Req::new(Method::Put, o.bucket, Some(o.key)).body(body);
        r.headers.extend(headers.iter().cloned());
        r.conditions.extend(cond.clone());
        match c.send(o.ep, &r, &what) {
            Ok(_) => Ok(()),
            Err(f) => Err(Failure { retry: f.retry && f.err.kind() != ErrorKind::Corrupt, ..f }),
        }
    })
}

/// How a conditional PUT that must be refused was answered.
fn judge(r: Result<()>) -> Result<Support> {
    match r {
        Ok(()) => Ok(Support::Ignored),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(Support::Honoured),
        Err(e) if matches!(e.http_status(), Some(400 | 501)) => Ok(Support::Refused),
        Err(e) => Err(e),
    }
}

fn etag_of(body: &[u8]) -> String {
    let hex: String = checksum::md5(body).iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// Probe `bucket`. The probe's keys are removed whatever the outcome.
pub(crate) fn probe(sh: &Shared, bucket: &str) -> Result<Features> {
    let base = format!("{}{}", layout::probe_prefix(), util::random_id());
    let (cond_key, crc_key) = (format!("{base}/condition"), format!("{base}/checksum"));
    let res = run(sh, bucket, &cond_key, &crc_key);
    for key in [&cond_key, &crc_key] {
        if let Err(e) = api::delete_object(&sh.client, bucket, key) {
            tracing::warn!("S3 probe: could not remove {bucket}/{key}: {e}");
        }
    }
    res
}

fn run(sh: &Shared, bucket: &str, cond_key: &str, crc_key: &str) -> Result<Features> {
    let c = &sh.client;
    let o = api::Obj { ep: c.pick(), bucket, key: cond_key };
    let inm = || Some(("if-none-match", "*".to_string()));
    // If-None-Match: a new key must be created, an existing one refused.
    let if_none_match = match put(c, o, b"1", &[], inm()) {
        Ok(()) => judge(put(c, o, b"2", &[], inm()))?,
        Err(e) if matches!(e.http_status(), Some(400 | 501)) => {
            put(c, o, b"1", &[], None)?;
            Support::Refused
        }
        Err(e) => return Err(e),
    };
    // If-Match: a wrong ETag must be refused, the MD5 of what is stored must pass.
    let stored = api::get_small(c, o.ep, bucket, cond_key, 16)?.unwrap_or_default();
    let if_match = match judge(put(c, o, b"3", &[], Some(("if-match", etag_of(b"not what is stored")))))? {
        Support::Honoured => match put(c, o, b"4", &[], Some(("if-match", etag_of(&stored)))) {
            Ok(()) => Support::Honoured,
            // Refused although it matches: this server's ETags are not MD5s.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Support::Refused,
            Err(e) if matches!(e.http_status(), Some(400 | 501)) => Support::Refused,
            Err(e) => return Err(e),
        },
        other => other,
    };
    // CRC32C: a wrong checksum must be refused, the right one must pass.
    let body = b"vast-ost checksum probe";
    let wrong = checksum::headers(super::ChecksumMode::Crc32c, b"something else");
    let right = checksum::headers(super::ChecksumMode::Crc32c, body);
    let crc = api::Obj { key: crc_key, ..o };
    let crc32c = match put(c, crc, body, &wrong, None) {
        Ok(()) => Support::Ignored,
        Err(e) if matches!(e.http_status(), Some(400 | 501)) => match put(c, crc, body, &right, None) {
            Ok(()) => Support::Honoured,
            Err(e) if matches!(e.http_status(), Some(400 | 501)) => Support::Refused,
            Err(e) => return Err(e),
        },
        Err(e) => return Err(e),
    };
    Ok(Features { if_none_match, if_match, crc32c })
}
