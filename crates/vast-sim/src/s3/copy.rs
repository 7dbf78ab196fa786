//! Server-side copies: CopyObject, including VAST's `x-amz-copy-disposition: replace` atomic
//! rename, and the `x-amz-copy-source` header it shares with UploadPartCopy.

use super::body::user_meta;
use super::commit::{commit, WriteCond};
use super::context::{blocking, Ctx};
use super::error::{conflict, internal, no_such_key, S3Err};
use super::{hdr, mtime, xml};
use crate::percent;
use crate::server::Resp;
use crate::store::{self, ObjMeta};
use crate::util::iso8601_millis;
use http::HeaderMap;
use std::path::PathBuf;

/// Parses `x-amz-copy-source` (`bucket/key` or `/bucket/key`, URL-encoded, optional
/// `?versionId=`, ignored: there are no versions) into the source file, after checking read
/// access to its bucket.
pub fn copy_source(ctx: &Ctx, h: &HeaderMap) -> Result<PathBuf, S3Err> {
    let bad = || {
        S3Err::new(
            400,
            "InvalidArgument",
            "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
        )
    };
    let raw = hdr(h, "x-amz-copy-source").unwrap_or("");
    let raw = raw.split_once('?').map_or(raw, |(path, _version)| path);
    let dec = percent::decode(raw, false).ok_or_else(bad)?;
    let dec = dec.strip_prefix('/').unwrap_or(&dec);
    let (sb, sk) = dec.split_once('/').filter(|(b, k)| !b.is_empty() && !k.is_empty()).ok_or_else(bad)?;
    let p = ctx.object_path(&ctx.bucket(sb)?, sk)?;
    if !std::fs::metadata(&p).map(|m| m.is_file()).unwrap_or(false) {
        return Err(no_such_key(sk));
    }
    Ok(p)
}

pub async fn copy_object(ctx: &Ctx, bucket: &str, key: &str, h: &HeaderMap) -> Result<Resp, S3Err> {
    let b = ctx.bucket(bucket)?;
    let dest = ctx.object_path(&b, key)?;
    let src = copy_source(ctx, h)?;
    let directive = hdr(h, "x-amz-metadata-directive").unwrap_or("COPY").to_ascii_uppercase();
    if directive != "COPY" && directive != "REPLACE" {
        return Err(S3Err::new(400, "InvalidArgument", "Unknown metadata directive."));
    }
    let rename = match hdr(h, "x-amz-copy-disposition") {
        None => false,
        Some(v) if v.eq_ignore_ascii_case("replace") => true,
        Some(_) => {
            return Err(S3Err::new(
                400,
                "InvalidArgument",
                "x-amz-copy-disposition only supports \"replace\"",
            ))
        }
    };
    let src_md = std::fs::metadata(&src).map_err(internal)?;
    let (sh, s2, md2) = (ctx.sh.clone(), src.clone(), src_md.clone());
    let src_meta = blocking(move || sh.store.meta(&s2, &md2)).await?;
    let new_meta = if directive == "REPLACE" {
        ObjMeta {
            etag: src_meta.etag.clone(),
            content_type: hdr(h, "content-type").map(String::from),
            user_meta: user_meta(h)?,
            ..Default::default()
        }
    } else {
        src_meta.clone()
    };
    if rename {
        // VAST's atomic rename (reference §10, KB4): no metadata replacement, no ACL headers.
        let acl = h.keys().any(|k| k.as_str() == "x-amz-acl" || k.as_str().starts_with("x-amz-grant-"));
        if directive == "REPLACE" || acl {
            return Err(S3Err::new(400, "InvalidArgument", "x-amz-copy-disposition: replace cannot be combined with x-amz-metadata-directive: REPLACE or ACL headers"));
        }
        if src != dest {
            let _g = ctx.sh.commit_lock.lock().await;
            super::retention::check_unlocked(ctx, &src)?;
            super::retention::check_unlocked(ctx, &dest)?;
            ctx.quota_check(&dest, src_md.len(), Some(&src)).await?;
            let (s, d) = (src.clone(), dest.clone());
            blocking(move || store::commit(&s, &d)).await?.map_err(conflict)?;
            ctx.sh.store.rename_meta(&src, &dest);
        }
    } else {
        if src == dest && directive == "COPY" {
            return Err(S3Err::new(400, "InvalidRequest", "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."));
        }
        let tmp = ctx.sh.store.tmp_path();
        let (s, t) = (src.clone(), tmp.clone());
        blocking(move || std::fs::copy(&s, &t)).await?.map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            internal(e)
        })?;
        commit(ctx, &tmp, &dest, src_md.len(), None, new_meta, &WriteCond::of(ctx, h)?).await?;
    }
    super::retention::apply_default(ctx, &b, &dest);
    let md = std::fs::metadata(&dest).map_err(internal)?;
    let (sh, d2, md2) = (ctx.sh.clone(), dest.clone(), md.clone());
    let m = blocking(move || sh.store.meta(&d2, &md2)).await?;
    xml::response(&xml::CopyObjectResult {
        xmlns: xml::Xmlns,
        last_modified: iso8601_millis(mtime(&md)),
        etag: m.etag,
    })
}
