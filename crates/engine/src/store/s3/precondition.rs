//! Manifest commits on S3, never over another writer's: an exclusive create and a
//! compare-and-swap replace (and a delete no commit can undo). Per bucket, the conditional
//! headers the server is seen to honour ([`probe`]) are used — `If-None-Match: *` to create,
//! `If-Match` on the ETag of the manifest read (for a single PUT, the MD5 of its body) to
//! replace — and the claim protocol ([`claim`]) for what it does not honour.

use std::collections::HashMap;
use std::sync::Mutex;

use tracing::{info, warn};

use super::probe::{self, Features, Support};
use super::settings::{ChecksumMode, CreateMode};
use super::{api, checksum, claim, Shared};
use crate::error::{Error, ErrorKind, Result};
use crate::layout::{self, MANIFEST, MAX_MANIFEST};

/// What the store knows of each bucket's conditional writes.
pub struct Preconditions {
    mode: CreateMode,
    /// Per bucket, from the probe (or learnt from a refusal since).
    features: Mutex<HashMap<String, Features>>,
    /// One probe at a time.
    probing: Mutex<()>,
}

/// How a bucket's manifests are committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Plan {
    conditional_create: bool,
    conditional_replace: bool,
}

impl Preconditions {
    pub fn new(mode: CreateMode) -> Preconditions {
        Preconditions { mode, features: Mutex::new(HashMap::new()), probing: Mutex::new(()) }
    }

    /// What `bucket`'s server does, probed on first use (not with `create_mode = "conditional"`
    /// or `"claim"`, which need no probe: `None` then).
    pub fn features(&self, sh: &Shared, bucket: &str) -> Result<Option<Features>> {
        if self.mode != CreateMode::Auto {
            return Ok(None);
        }
        if let Some(f) = self.known(bucket) {
            return Ok(Some(f));
        }
        let _one = self.probing.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = self.known(bucket) {
            return Ok(Some(f));
        }
        let f = probe::probe(sh, bucket).map_err(|e| e.context(format!("probing S3 bucket {bucket}")))?;
        let plan = plan_for(&f);
        let how = match (plan.conditional_create, plan.conditional_replace) {
            (true, true) => "manifests are created and replaced with conditional PUTs",
            (true, false) => {
                "manifests are created with If-None-Match and replaced under the claim protocol's lease"
            }
            (false, true) => "manifests are created with the claim protocol and replaced with If-Match",
            (false, false) => "manifests are created and replaced with the claim protocol",
        };
        if plan.conditional_create && plan.conditional_replace && f.crc32c == Support::Honoured {
            info!("S3 bucket {bucket}: {f}; {how}");
        } else {
            warn!("S3 bucket {bucket}: {f}; {how} (docs/commit-protocol.md)");
        }
        if f.crc32c == Support::Refused && sh.checksums.mode() == ChecksumMode::Crc32c {
            sh.checksums.disable(&format!("bucket {bucket} refuses x-amz-checksum-crc32c"));
        }
        self.features.lock().unwrap_or_else(|p| p.into_inner()).insert(bucket.to_string(), f);
        Ok(Some(f))
    }

    /// What is known of `bucket` without asking.
    pub fn known(&self, bucket: &str) -> Option<Features> {
        self.features.lock().unwrap_or_else(|p| p.into_inner()).get(bucket).copied()
    }

    fn plan(&self, sh: &Shared, bucket: &str) -> Result<Plan> {
        Ok(match self.mode {
            CreateMode::Claim => Plan { conditional_create: false, conditional_replace: false },
            CreateMode::Conditional => self
                .known(bucket)
                .map_or(Plan { conditional_create: true, conditional_replace: true }, |f| plan_for(&f)),
            CreateMode::Auto => plan_for(&self.features(sh, bucket)?.expect("probed in auto mode")),
        })
    }

    /// The server refused a conditional header it was taken to honour: that bucket moves to
    /// the claim protocol for it.
    fn learn(&self, bucket: &str, update: impl FnOnce(&mut Features)) {
        let mut all = self.features.lock().unwrap_or_else(|p| p.into_inner());
        let f = all.entry(bucket.to_string()).or_insert(Features {
            if_none_match: Support::Honoured,
            if_match: Support::Honoured,
            crc32c: Support::Honoured,
        });
        update(f);
    }

    /// Store record `name` of `image`, which must not exist yet (`AlreadyExists` if it does).
    pub fn create(
        &self,
        sh: &Shared,
        bucket: &str,
        (image, name): (&str, &str),
        bytes: &[u8],
        lsu: &str,
    ) -> Result<()> {
        let key = &layout::record_key(image, name);
        let exists = || {
            let what =
                if name == MANIFEST { format!("image '{image}'") } else { format!("record {image}/{name}") };
            Error::new(ErrorKind::AlreadyExists, format!("{what} already exists in LSU '{lsu}'"))
        };
        if self.plan(sh, bucket)?.conditional_create {
            match put_manifest(sh, bucket, key, bytes, Some(("if-none-match", "*".to_string()))) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => return Err(exists()),
                Err(e) if e.kind() == ErrorKind::NotSupported => {
                    warn!("S3 bucket {bucket}: If-None-Match refused ({e}); creating with the claim protocol from now on");
                    self.learn(bucket, |f| f.if_none_match = Support::Refused);
                }
                Err(e) => return Err(e),
            }
        }
        claim::create(sh, bucket, (image, name), || put_manifest(sh, bucket, key, bytes, None), exists)
    }

    /// Replace record `name` of `image` with `bytes` only if it is still `expected`.
    pub fn replace(
        &self,
        sh: &Shared,
        bucket: &str,
        (image, name): (&str, &str),
        bytes: &[u8],
        expected: &[u8],
    ) -> Result<()> {
        let key = &layout::record_key(image, name);
        let changed = || {
            Error::state(format!(
                "{image}/{name} was changed or deleted by another writer since this one read it"
            ))
        };
        if self.plan(sh, bucket)?.conditional_replace {
            match put_manifest(sh, bucket, key, bytes, Some(("if-match", etag_of(expected)))) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    let c = &sh.client;
                    match api::get_small(c, c.pick(), bucket, key, MAX_MANIFEST as u64)?.as_deref() {
                        // Our own attempt landed with its answer lost.
                        Some(b) if b == bytes => return Ok(()),
                        // Unchanged, yet refused: this server's ETags are not MD5s.
                        Some(b) if b == expected => {
                            warn!("S3 bucket {bucket}: If-Match on an unchanged manifest refused; replacing under the claim protocol's lease from now on");
                            self.learn(bucket, |f| f.if_match = Support::Refused);
                        }
                        _ => return Err(changed()),
                    }
                }
                Err(e) if e.kind() == ErrorKind::NotSupported => {
                    warn!("S3 bucket {bucket}: If-Match refused ({e}); replacing under the claim protocol's lease from now on");
                    self.learn(bucket, |f| f.if_match = Support::Refused);
                }
                Err(e) => return Err(e),
            }
        }
        claim::with_lease(sh, bucket, (image, name), |deadline| {
            let c = &sh.client;
            let now = api::get_small(c, c.pick(), bucket, key, MAX_MANIFEST as u64)?;
            match now.as_deref() {
                Some(b) if b == expected => {}
                // Our own earlier attempt landed with its answer lost.
                Some(b) if b == bytes => return Ok(()),
                _ => return Err(changed()),
            }
            sh.checksums.with(|mode| {
                claim::write_under_lease(sh, bucket, key, bytes, &checksum::headers(mode, bytes), deadline)
            })
        })
    }

    /// Remove record `name` of `image`, so that no commit in flight can bring it back.
    pub fn delete(&self, sh: &Shared, bucket: &str, (image, name): (&str, &str)) -> Result<()> {
        let key = &layout::record_key(image, name);
        if self.plan(sh, bucket)?.conditional_replace {
            // A commit racing this delete carries If-Match: with no record it fails.
            return api::delete_object(&sh.client, bucket, key);
        }
        claim::with_lease(sh, bucket, (image, name), |deadline| {
            claim::delete_under_lease(sh, bucket, key, deadline)
        })
    }
}

fn plan_for(f: &Features) -> Plan {
    Plan {
        conditional_create: f.if_none_match == Support::Honoured,
        conditional_replace: f.if_match == Support::Honoured,
    }
}

/// The ETag a single PUT of `body` gets: its MD5, quoted.
fn etag_of(body: &[u8]) -> String {
    let hex: String = checksum::md5(body).iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
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
    let headers = checksum::headers(mode, bytes);
    let conditions: Vec<_> = cond.into_iter().collect();
    let ep = c.pick();
    // A retried exclusive create refused as existing: our own earlier attempt may have landed
    // with its answer lost, and then the stored manifest is exactly ours.
    api::put_object(c, api::Obj { ep, bucket, key }, &what, bytes, &headers, &conditions, |f| {
        exclusive
            && f.err.kind() == ErrorKind::AlreadyExists
            && matches!(api::get_small(c, ep, bucket, key, MAX_MANIFEST as u64), Ok(Some(b)) if b == bytes)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_follow_what_is_honoured() {
        use Support::*;
        let f = |a, b| Features { if_none_match: a, if_match: b, crc32c: Honoured };
        assert_eq!(
            plan_for(&f(Honoured, Honoured)),
            Plan { conditional_create: true, conditional_replace: true }
        );
        // radosgw 16: If-None-Match honoured, If-Match ignored.
        assert_eq!(
            plan_for(&f(Honoured, Ignored)),
            Plan { conditional_create: true, conditional_replace: false }
        );
        assert_eq!(
            plan_for(&f(Ignored, Refused)),
            Plan { conditional_create: false, conditional_replace: false }
        );
        assert_eq!(etag_of(b""), "\"d41d8cd98f00b204e9800998ecf8427e\"");
    }
}
