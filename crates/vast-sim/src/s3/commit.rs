//! How a new object enters the namespace: conditional-write checks, the quota check and the
//! rename from the temp file, all under the commit lock, then its S3 metadata.

use super::context::{blocking, Ctx};
use super::error::{conflict, precondition_failed, S3Err};
use super::hdr;
use crate::store::{self, ObjMeta};
use http::HeaderMap;
use std::path::Path;

/// Conditional-write headers of a PUT / CompleteMultipartUpload (`If-None-Match: *` creates
/// only when the key is free, `If-Match: <etag>` replaces only that version). AWS semantics;
/// whether VAST 5.3 honours them is not stated in the reference.
#[derive(Default)]
pub struct WriteCond {
    none_match: bool,
    if_match: Option<String>,
}

impl WriteCond {
    /// The conditions of a request, or none when the simulator plays a server that ignores
    /// them ([`crate::SimConfig::ignore_preconditions`]).
    pub fn of(ctx: &Ctx, h: &HeaderMap) -> Result<WriteCond, S3Err> {
        if ctx.sh.ignore_preconditions.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(WriteCond::default());
        }
        Self::from(h)
    }

    fn from(h: &HeaderMap) -> Result<WriteCond, S3Err> {
        let none_match = match hdr(h, "if-none-match").map(str::trim) {
            None => false,
            Some("*") => true,
            Some(_) => {
                return Err(S3Err::new(501, "NotImplemented", "If-None-Match on writes only supports \"*\""))
            }
        };
        Ok(WriteCond { none_match, if_match: hdr(h, "if-match").map(|s| s.trim().to_string()) })
    }
}

/// Quota check and rename under the commit lock, then record S3 metadata.
pub async fn commit(
    ctx: &Ctx,
    tmp: &Path,
    dest: &Path,
    size: u64,
    moved_from: Option<&Path>,
    m: ObjMeta,
    cond: &WriteCond,
) -> Result<(), S3Err> {
    let _g = ctx.sh.commit_lock.lock().await;
    if let Err(e) = super::retention::check_unlocked(ctx, dest) {
        let _ = std::fs::remove_file(tmp);
        return Err(e);
    }
    if cond.none_match || cond.if_match.is_some() {
        let existing = std::fs::metadata(dest).ok().filter(|m| m.is_file());
        let verdict = match (&existing, &cond.if_match) {
            (Some(_), _) if cond.none_match => Err(precondition_failed()),
            (None, Some(_)) => Err(S3Err::new(404, "NoSuchKey", "The specified key does not exist.")),
            (Some(md), Some(want)) => {
                let (sh, d, md) = (ctx.sh.clone(), dest.to_path_buf(), md.clone());
                let etag = blocking(move || sh.store.meta(&d, &md).etag).await?;
                if etag_matches(want, &etag) {
                    Ok(())
                } else {
                    Err(precondition_failed())
                }
            }
            _ => Ok(()),
        };
        if let Err(e) = verdict {
            let _ = std::fs::remove_file(tmp);
            return Err(e);
        }
    }
    if let Err(e) = ctx.quota_check(dest, size, moved_from).await {
        let _ = std::fs::remove_file(tmp);
        return Err(e);
    }
    let (t, d) = (tmp.to_path_buf(), dest.to_path_buf());
    let r = blocking(move || store::commit(&t, &d)).await?;
    if let Err(e) = r {
        let _ = std::fs::remove_file(tmp);
        return Err(conflict(e));
    }
    ctx.sh.store.put_meta(dest, m);
    Ok(())
}

pub fn etag_matches(list: &str, etag: &str) -> bool {
    list.split(',').map(str::trim).any(|t| t == "*" || t.trim_matches('"') == etag.trim_matches('"'))
}
