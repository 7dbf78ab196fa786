//! S3 errors: the status, code and message of each failure, the extra elements some codes
//! carry (`BucketName`, `Key`, …), and their XML form.

use super::xml;
use crate::server::{empty, full, Resp};

/// An S3 error response.
#[derive(Debug, Clone)]
pub struct S3Err {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub extra: Vec<(&'static str, String)>,
}

impl S3Err {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> S3Err {
        S3Err { status, code: code.into(), message: message.into(), extra: Vec::new() }
    }
    pub fn with(mut self, tag: &'static str, v: impl Into<String>) -> S3Err {
        self.extra.push((tag, v.into()));
        self
    }
    pub fn into_resp(self, head: bool, resource: &str, rid: &str) -> Resp {
        let mut b = http::Response::builder().status(self.status);
        if head {
            // HEAD responses have no body; clients read the status alone.
            return b.body(empty()).unwrap_or_else(|_| http::Response::new(empty()));
        }
        let doc = xml::Error {
            code: &self.code,
            message: &self.message,
            extra: &self.extra,
            resource,
            request_id: rid,
        };
        // Serializing these plain strings cannot fail; an empty body would still carry the status.
        let s = xml::to_string(&doc).unwrap_or_default();
        b = b.header("content-type", "application/xml");
        b.body(full(s)).unwrap_or_else(|_| http::Response::new(empty()))
    }
}

pub fn no_such_bucket(b: &str) -> S3Err {
    S3Err::new(404, "NoSuchBucket", "The specified bucket does not exist").with("BucketName", b)
}
pub fn no_such_key(k: &str) -> S3Err {
    S3Err::new(404, "NoSuchKey", "The specified key does not exist.").with("Key", k)
}
pub fn access_denied() -> S3Err {
    S3Err::new(403, "AccessDenied", "Access Denied")
}
pub fn internal(e: impl std::fmt::Display) -> S3Err {
    S3Err::new(500, "InternalError", format!("We encountered an internal error. Please try again. ({e})"))
}
pub fn bad_key(k: &str) -> S3Err {
    S3Err::new(400, "InvalidArgument", format!("Object key {k:?} is not supported: keys must be 1..1024 bytes, at most 200 '/', with no empty, '.' or '..' segments (leading, trailing or double slashes need s3_special_chars_support)"))
}

pub fn precondition_failed() -> S3Err {
    S3Err::new(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold")
        .with("Condition", "If-None-Match/If-Match")
}

/// A failed rename into the namespace: the key collides with a file or directory.
pub fn conflict(e: std::io::Error) -> S3Err {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::AlreadyExists | K::NotADirectory | K::IsADirectory => {
            S3Err::new(409, "InvalidRequest", "The key conflicts with an existing file or directory in the view (a key cannot be both an object and a prefix of another object)")
        }
        K::DirectoryNotEmpty => {
            S3Err::new(409, "InvalidRequest", "The key conflicts with an existing file or directory in the view")
        }
        _ => internal(e),
    }
}
