//! Multipart uploads: create (and abort what a lost create left), upload a part, copy a range
//! of another object as a part, complete, abort, list. Each says what a lost answer or a
//! retry means for it.

use std::cell::Cell;

use rusty_s3::Method;
use tracing::{debug, warn};

use super::api::{Obj, MAX_LIST_BODY};
use super::client::{embedded_error, Client, Failure, Req};
use super::settings::ChecksumMode;
use super::xml;
use crate::error::{Error, ErrorKind, Result};

/// Multipart uploads in progress under `prefix`: (key, upload id).
pub fn list_uploads(c: &Client, bucket: &str, prefix: &str) -> Result<Vec<(String, String)>> {
    let ep = c.pick();
    let what = format!("ListMultipartUploads {bucket}/{prefix}");
    let mut out = Vec::new();
    let mut marker: Option<(String, String)> = None;
    loop {
        let req = || {
            let mut r = Req::new(Method::Get, bucket, None).query("uploads", "").query("prefix", prefix);
            if let Some((k, u)) = &marker {
                r = r.query("key-marker", k.clone()).query("upload-id-marker", u.clone());
            }
            r
        };
        let doc = c.call(ep, &what, req, |mut r| Ok(r.text(&what, MAX_LIST_BODY)?))?;
        let page: xml::ListMultipartUploadsResult = xml::parse(&what, &doc)?;
        out.extend(page.uploads.into_iter().map(|u| (u.key, u.upload_id)));
        if !page.is_truncated {
            break;
        }
        let next = (page.next_key_marker.unwrap_or_default(), page.next_upload_id_marker.unwrap_or_default());
        if next.0.is_empty() || marker.as_ref() == Some(&next) {
            return Err(Error::new(ErrorKind::Io, format!("{what}: truncated answer without a next marker")));
        }
        marker = Some(next);
    }
    Ok(out)
}

/// CreateMultipartUpload; parts then carry `mode`'s checksum. A retried create aborts the
/// uploads its lost attempts may have opened on `key` (which only the caller writes).
pub fn create_upload(c: &Client, ep: usize, bucket: &str, key: &str, mode: ChecksumMode) -> Result<String> {
    let what = format!("CreateMultipartUpload {bucket}/{key}");
    let attempts = Cell::new(0u32);
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
            let res: xml::InitiateMultipartUploadResult = xml::parse(&what, &doc)?;
            Some(res.upload_id).filter(|u| !u.is_empty()).ok_or_else(|| {
                Failure::from(Error::new(ErrorKind::Io, format!("{what}: no UploadId in the answer")))
            })
        },
    )?;
    // A create is not idempotent: an attempt whose answer was lost may still have opened an
    // upload. The piece key is this writer's alone, so every other upload on it is such a stray.
    if attempts.get() > 1 {
        abort_others(c, bucket, key, &id);
    }
    Ok(id)
}

/// Abort every open upload on `key` except `keep` (best effort: a stray left here is still
/// aborted when its image is deleted).
fn abort_others(c: &Client, bucket: &str, key: &str, keep: &str) {
    let Ok(uploads) = list_uploads(c, bucket, key) else { return };
    for (k, id) in uploads {
        if k == key && id != keep && !id.is_empty() {
            debug!("aborting upload {id} of {bucket}/{key} left by a retried create");
            abort_upload(c, c.pick(), bucket, key, &id);
        }
    }
}

/// UploadPart: the part's ETag.
pub fn upload_part(
    c: &Client,
    o: Obj<'_>,
    upload: &str,
    n: u32,
    data: &[u8],
    headers: &[(&'static str, String)],
) -> Result<String> {
    let Obj { ep, bucket, key } = o;
    let what = format!("UploadPart {bucket}/{key} part {n} ({} bytes)", data.len());
    c.call(
        ep,
        &what,
        || {
            let mut r = Req::new(Method::Put, bucket, Some(key))
                .query("partNumber", n.to_string())
                .query("uploadId", upload)
                .body(data);
            r.headers.extend(headers.iter().cloned());
            r
        },
        |r| {
            r.header("etag").map(str::to_string).ok_or_else(|| {
                Failure::from(Error::new(ErrorKind::Io, format!("{what}: no ETag in the answer")))
            })
        },
    )
}

/// One part of a multipart upload, as CompleteMultipartUpload lists it.
pub struct Part {
    pub n: u32,
    pub etag: String,
    /// The part's CRC32C (base64), when it was sent with one.
    pub crc: Option<String>,
}

/// CompleteMultipartUpload. A 200 answer may still carry an error (checked), and a retry after
/// a lost answer finds the upload gone: then the object of the expected size is success.
pub fn complete_upload(
    c: &Client,
    ep: usize,
    bucket: &str,
    key: &str,
    upload: &str,
    parts: &[Part],
    size: u64,
) -> Result<()> {
    let what = format!("CompleteMultipartUpload {bucket}/{key} ({} parts)", parts.len());
    let body = xml::body(
        "CompleteMultipartUpload",
        &xml::CompleteMultipartUpload {
            parts: parts
                .iter()
                .map(|p| xml::CompletedPart { number: p.n, etag: &p.etag, crc32c: p.crc.as_deref() })
                .collect(),
        },
    );
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
                match super::api::head_size(c, ep, bucket, key) {
                    Ok(Some(n)) if n == size => Ok(()),
                    _ => Err(f),
                }
            }
            Err(f) => Err(f),
        }
    })
}

/// AbortMultipartUpload, logged rather than returned: it runs on paths that already fail.
pub fn abort_upload(c: &Client, ep: usize, bucket: &str, key: &str, upload: &str) {
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

/// UploadPartCopy of bytes `first..=last` of `src` (a [`copy_source`]) as part `n` of upload
/// `upload` of `to`: its ETag.
pub fn upload_part_copy(
    c: &Client,
    to: Obj<'_>,
    upload: &str,
    n: u32,
    src: &str,
    (first, last): (u64, u64),
) -> Result<String> {
    let Obj { ep, bucket: to_bucket, key: to_key } = to;
    let what = format!("UploadPartCopy {to_bucket}/{to_key} part {n} (bytes {first}-{last} of {src})");
    c.call(
        ep,
        &what,
        || {
            Req::new(Method::Put, to_bucket, Some(to_key))
                .query("partNumber", n.to_string())
                .query("uploadId", upload)
                .header("x-amz-copy-source", src)
                .header("x-amz-copy-source-range", format!("bytes={first}-{last}"))
        },
        |mut r| {
            let doc = r.text(&what, MAX_LIST_BODY)?;
            if let Some(f) = embedded_error(&what, &doc) {
                return Err(f);
            }
            let res: xml::CopyResult = xml::parse(&what, &doc)?;
            Some(res.etag).filter(|e| !e.is_empty()).ok_or_else(|| {
                Failure::from(Error::new(ErrorKind::Io, format!("{what}: no ETag in the answer")))
            })
        },
    )
}
