//! Object operations: PutObject, GetObject / HeadObject (conditional and range requests),
//! DeleteObject and DeleteObjects.

use super::body::{content_length, receive, small_body, take_body, user_meta, Checks, SReq};
use super::commit::{commit, etag_matches, WriteCond};
use super::context::{blocking, Ctx};
use super::error::{internal, no_such_key, S3Err};
use super::{hdr, mtime, ok_empty, quoted_md5, retention, sigv4, xml};
use crate::server::{channel_body, empty, Resp};
use crate::store::ObjMeta;
use crate::util::http_date;
use bytes::Bytes;
use http::HeaderMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

pub async fn put_object(
    ctx: &Ctx,
    bucket: &str,
    key: &str,
    req: &mut SReq,
    sig: &sigv4::SigRequest,
) -> Result<Resp, S3Err> {
    let b = ctx.bucket(bucket)?;
    let dest = ctx.object_path(&b, key)?;
    let h = req.headers().clone();
    let len = content_length(&h)?;
    if len > 5 << 40 {
        return Err(S3Err::new(
            400,
            "EntityTooLarge",
            "Your proposed upload exceeds the maximum allowed object size.",
        ));
    }
    let checks = Checks::from(&h, sig)?;
    let meta = user_meta(&h)?;
    let cond = WriteCond::of(ctx, &h)?;
    ctx.quota_check(&dest, len, None).await?;
    let tmp = ctx.sh.store.tmp_path();
    let r = receive(take_body(req)?, &tmp, len, &checks).await?;
    let etag = quoted_md5(&r.md5);
    let m = ObjMeta {
        etag: etag.clone(),
        content_type: hdr(&h, "content-type").map(String::from),
        user_meta: meta,
        ..Default::default()
    };
    commit(ctx, &tmp, &dest, r.size, None, m, &cond).await?;
    retention::apply_default(ctx, &b, &dest);
    let mut rb = http::Response::builder().status(200).header("etag", etag);
    if let Some(c) = hdr(&h, "x-amz-checksum-crc32c") {
        rb = rb.header("x-amz-checksum-crc32c", c);
    }
    Ok(rb.body(empty()).unwrap_or_else(|_| http::Response::new(empty())))
}

/// Parses `bytes=a-b`, `bytes=a-`, `bytes=-n`. `Ok(None)` = ignore the header (full body).
fn parse_range(h: &str, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = h.trim().strip_prefix("bytes=") else { return Ok(None) };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.split_once('-') else { return Ok(None) };
    let (a, b) = (a.trim(), b.trim());
    let r = if a.is_empty() {
        let Ok(n) = b.parse::<u64>() else { return Ok(None) };
        if n == 0 || size == 0 {
            return Err(());
        }
        (size.saturating_sub(n), size - 1)
    } else {
        let Ok(s) = a.parse::<u64>() else { return Ok(None) };
        let e = if b.is_empty() {
            size.saturating_sub(1)
        } else {
            match b.parse::<u64>() {
                Ok(e) if e >= s => e.min(size.saturating_sub(1)),
                _ => return Ok(None),
            }
        };
        if s >= size {
            return Err(());
        }
        (s, e)
    };
    Ok(Some(r))
}

pub async fn get_object(
    ctx: &Ctx,
    bucket: &str,
    key: &str,
    h: &HeaderMap,
    head: bool,
) -> Result<Resp, S3Err> {
    let b = ctx.bucket(bucket)?;
    let path = ctx.object_path(&b, key)?;
    // Open first: a concurrent replace (rename) then cannot change what this response sends.
    let file = std::fs::File::open(&path).map_err(|_| no_such_key(key))?;
    let md = file.metadata().map_err(internal)?;
    if !md.is_file() {
        return Err(no_such_key(key));
    }
    let (sh, p, md2) = (ctx.sh.clone(), path.clone(), md.clone());
    let meta = blocking(move || sh.store.meta(&p, &md2)).await?;
    if let Some(im) = hdr(h, "if-match") {
        if !etag_matches(im, &meta.etag) {
            return Err(S3Err::new(
                412,
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold",
            ));
        }
    }
    if let Some(inm) = hdr(h, "if-none-match") {
        if etag_matches(inm, &meta.etag) {
            return Ok(http::Response::builder()
                .status(304)
                .header("etag", &meta.etag)
                .body(empty())
                .unwrap_or_else(|_| http::Response::new(empty())));
        }
    }
    let size = md.len();
    let range = match hdr(h, "range") {
        Some(r) => parse_range(r, size).map_err(|_| {
            S3Err::new(416, "InvalidRange", "The requested range is not satisfiable")
                .with("RangeRequested", r)
                .with("ActualObjectSize", size.to_string())
        })?,
        None => None,
    };
    let (start, len, status) = match range {
        Some((s, e)) => (s, e - s + 1, 206),
        None => (0, size, 200),
    };
    let mut rb = http::Response::builder()
        .status(status)
        .header("content-length", len)
        .header("etag", &meta.etag)
        .header("last-modified", http_date(mtime(&md)))
        .header("accept-ranges", "bytes")
        .header("content-type", meta.content_type.as_deref().unwrap_or("application/octet-stream"));
    if let Some((s, e)) = range {
        rb = rb.header("content-range", format!("bytes {s}-{e}/{size}"));
    }
    for (k, v) in &meta.user_meta {
        rb = rb.header(format!("x-amz-meta-{k}"), v);
    }
    if head {
        return rb.body(empty()).map_err(internal);
    }
    let (tx, body) = channel_body(len);
    tokio::task::spawn_blocking(move || {
        let mut file = file;
        if file.seek(SeekFrom::Start(start)).is_err() {
            return;
        }
        let mut left = len;
        while left > 0 {
            let mut buf = vec![0u8; left.min(1 << 20) as usize];
            match file.read(&mut buf) {
                Ok(0) => {
                    let _ = tx.blocking_send(Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "object shrank",
                    )));
                    return;
                }
                Ok(n) => {
                    buf.truncate(n);
                    left -= n as u64;
                    if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    rb.body(body).map_err(internal)
}

pub async fn delete_object(ctx: &Ctx, bucket: &str, key: &str) -> Result<Resp, S3Err> {
    let b = ctx.bucket(bucket)?;
    let path = ctx.object_path(&b, key)?;
    remove_file(ctx, &path).await?;
    Ok(ok_empty(204))
}

/// Deletes the file at an object path; a missing key or a directory is not an error (S3
/// DeleteObject is idempotent).
async fn remove_file(ctx: &Ctx, path: &Path) -> Result<(), S3Err> {
    retention::check_unlocked(ctx, path)?;
    let p = path.to_path_buf();
    let r = blocking(move || match std::fs::symlink_metadata(&p) {
        Ok(md) if md.is_file() => match std::fs::remove_file(&p) {
            // Another delete of the same key got there first: it is gone all the same.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            r => r,
        },
        _ => Ok(()),
    })
    .await?;
    r.map_err(internal)?;
    ctx.sh.store.forget(path);
    ctx.sh.worm.forget(path);
    Ok(())
}

pub async fn delete_objects(
    ctx: &Ctx,
    bucket: &str,
    req: &mut SReq,
    sig: &sigv4::SigRequest,
) -> Result<Resp, S3Err> {
    let b = ctx.bucket(bucket)?;
    let doc = xml::Delete::parse(&small_body(req, sig).await?)?;
    if doc.objects.is_empty() || doc.objects.len() > 1000 {
        return Err(xml::malformed());
    }
    let quiet = doc.is_quiet();
    let mut results = Vec::new();
    for o in doc.objects {
        let r = match ctx.object_path(&b, &o.key) {
            Ok(p) => remove_file(ctx, &p).await,
            Err(e) => Err(e),
        };
        match r {
            Ok(()) if !quiet => results.push(xml::DeleteOutcome::Deleted { key: o.key }),
            Ok(()) => {}
            Err(e) => {
                results.push(xml::DeleteOutcome::Error { key: o.key, code: e.code, message: e.message })
            }
        }
    }
    xml::response(&xml::DeleteResult { xmlns: xml::Xmlns, results })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Ok(Some((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=50-500", 100), Ok(Some((50, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Err(()));
        assert_eq!(parse_range("bytes=5-1", 100), Ok(None));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(parse_range("items=0-1", 100), Ok(None));
    }
}
