//! The S3 data plane served on every VIP (reference §10, §12 item 6): path-style requests,
//! SigV4 with the access keys issued through VMS, buckets = views with `S3` in `protocols`,
//! objects = files under the view path. Errors are S3-standard XML and every response
//! carries `Server: vast 5.3.1.0`.
//!
//! - [`router`] — faults, authentication, choice of operation
//! - [`context`] — caller, bucket access, quotas; [`error`] — S3 errors
//! - [`body`] — request bodies and integrity checks
//! - [`commit`] — how a new object enters the namespace
//! - [`buckets`], [`listing`], [`objects`], [`copy`], [`multipart`] — the operations
//! - [`retention`] — S3 Object Lock on WORM-enabled views
//! - [`sigv4`] — signature verification; [`xml`] — the XML documents

mod body;
mod buckets;
mod commit;
mod context;
mod copy;
mod error;
mod listing;
mod multipart;
mod objects;
mod retention;
mod router;
mod sigv4;
mod xml;

pub use multipart::Upload;
pub use router::handle;

use crate::server::{empty, Resp};
use crate::util::{iso8601_millis, unix_now};
use http::HeaderMap;
use std::time::{Duration, UNIX_EPOCH};

// Small helpers every operation uses.

/// A header as text (None when absent or not visible ASCII).
fn hdr<'a>(h: &'a HeaderMap, n: &str) -> Option<&'a str> {
    h.get(n).and_then(|v| v.to_str().ok())
}

fn ok_empty(status: u16) -> Resp {
    http::Response::builder().status(status).body(empty()).unwrap_or_else(|_| http::Response::new(empty()))
}

/// An ETag: the hex MD5 in double quotes.
pub fn quoted_md5(m: &[u8]) -> String {
    format!("\"{}\"", hex::encode(m))
}

/// A file's modification time since the epoch (zero when unknown).
fn mtime(md: &std::fs::Metadata) -> Duration {
    md.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).unwrap_or_default()
}

pub fn now_iso() -> String {
    iso8601_millis(unix_now())
}
