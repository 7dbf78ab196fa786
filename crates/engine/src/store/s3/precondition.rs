//! Manifest commits on S3: an exclusive create (`If-None-Match: *`) and a compare-and-swap
//! replace (`If-Match` on the ETag of the manifest read, which for a single PUT is the MD5 of
//! its body), with what each server is seen to support remembered per store.

use std::sync::atomic::{AtomicBool, Ordering};

use tracing::warn;

use super::settings::{ChecksumMode, CreateMode};
use super::{api, checksum, Shared};
use crate::error::{Error, ErrorKind, Result};
use crate::layout::MAX_MANIFEST;

/// What the store knows of the server's conditional writes.
pub struct Preconditions {
    create_mode: CreateMode,
    /// Set when the server answered 501 to `If-None-Match`.
    no_conditional_put: AtomicBool,
    /// Manifests are replaced with `If-Match` until the server shows it cannot take it.
    if_match: AtomicBool,
}

impl Preconditions {
    pub fn new(create_mode: CreateMode) -> Preconditions {
        Preconditions {
            create_mode,
            no_conditional_put: AtomicBool::new(false),
            if_match: AtomicBool::new(true),
        }
    }

    /// Store the first manifest of `image` at `key`; `AlreadyExists` if it has one.
    pub fn create(
        &self,
        sh: &Shared,
        bucket: &str,
        key: &str,
        bytes: &[u8],
        image: &str,
        lsu: &str,
    ) -> Result<()> {
        let exists =
            || Error::new(ErrorKind::AlreadyExists, format!("image '{image}' already exists in LSU '{lsu}'"));
        let conditional =
            self.create_mode == CreateMode::IfNoneMatch && !self.no_conditional_put.load(Ordering::Relaxed);
        if conditional {
            match put_manifest(sh, bucket, key, bytes, Some(("if-none-match", "*".to_string()))) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => return Err(exists()),
                Err(e) if e.kind() == ErrorKind::NotSupported => {
                    warn!("S3 server does not take If-None-Match on PUT ({e}); creating images with HEAD then PUT");
                    self.no_conditional_put.store(true, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
        // HEAD then PUT: see CreateMode::HeadThenPut for the race this leaves.
        if api::head_size(&sh.client, sh.client.pick(), bucket, key)?.is_some() {
            return Err(exists());
        }
        put_manifest(sh, bucket, key, bytes, None)
    }

    /// Replace the manifest at `key` with `bytes` only if it is still `expected`.
    pub fn replace(
        &self,
        sh: &Shared,
        bucket: &str,
        key: &str,
        bytes: &[u8],
        expected: &[u8],
        image: &str,
    ) -> Result<()> {
        if self.if_match.load(Ordering::Relaxed) {
            // A single PUT's ETag is the MD5 of its body: the replace lands only on `expected`.
            let etag: String = checksum::md5(expected).iter().map(|b| format!("{b:02x}")).collect();
            match put_manifest(sh, bucket, key, bytes, Some(("if-match", format!("\"{etag}\"")))) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    let c = &sh.client;
                    let now = api::get_small(c, c.pick(), bucket, key, MAX_MANIFEST as u64)?;
                    match now.as_deref() {
                        // Our own attempt landed with its answer lost.
                        Some(b) if b == bytes => return Ok(()),
                        // Unchanged, yet refused: this server's ETags are not MD5s.
                        Some(b) if b == expected => {
                            warn!("S3 {bucket}: If-Match on an unchanged manifest refused: replacing unconditionally");
                            self.if_match.store(false, Ordering::Relaxed);
                        }
                        _ => {
                            return Err(Error::state(format!(
                            "image '{image}' was changed or deleted by another writer since this one read it"
                        )))
                        }
                    }
                }
                Err(e) if e.kind() == ErrorKind::NotSupported => {
                    warn!("S3 {bucket}: If-Match not supported: replacing manifests unconditionally");
                    self.if_match.store(false, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
        put_manifest(sh, bucket, key, bytes, None)
    }
}

/// PUT a manifest, with a condition header when given (`if-none-match: *` to create,
/// `if-match: <etag>` to replace).
fn put_manifest(
    sh: &Shared,
    bucket: &str,
    key: &str,
    bytes: &[u8],
    cond: Option<(&'static str, String)>,
) -> Result<()> {
    sh.checksums.with(|mode| put_manifest_as(sh, bucket, key, bytes, cond.clone(), mode))
}

fn put_manifest_as(
    sh: &Shared,
    bucket: &str,
    key: &str,
    bytes: &[u8],
    cond: Option<(&'static str, String)>,
    mode: ChecksumMode,
) -> Result<()> {
    let exclusive = cond.as_ref().is_some_and(|(h, _)| *h == "if-none-match");
    let c = &sh.client;
    let what = format!("PUT manifest {bucket}/{key}");
    let mut headers = checksum::headers(mode, bytes);
    headers.extend(cond);
    let ep = c.pick();
    // A retried exclusive create refused as existing: our own earlier attempt may have landed
    // with its answer lost, and then the stored manifest is exactly ours.
    api::put_object(c, api::Obj { ep, bucket, key }, &what, bytes, &headers, |f| {
        exclusive
            && f.err.kind() == ErrorKind::AlreadyExists
            && matches!(api::get_small(c, ep, bucket, key, MAX_MANIFEST as u64), Ok(Some(b)) if b == bytes)
    })
}
