//! Multipart uploads, including UploadPartCopy (reference §10). Parts are staged in
//! `<root>/.vast-sim/uploads/<upload id>/`, outside every bucket, and only
//! CompleteMultipartUpload puts the assembled object into the namespace (temp file, rename).
//! The minimum part size (5 MiB, all parts but the last) is configurable for tests.
//!
//! One job, the lifecycle of an upload: create, parts, complete, abort, and the two lists.

use super::body::{content_length, receive, small_body, take_body, user_meta, Checks, SReq};
use super::commit::{commit, WriteCond};
use super::context::{blocking, Ctx};
use super::copy::copy_source;
use super::error::{internal, S3Err};
use super::sigv4::SigRequest;
use super::{hdr, now_iso, quoted_md5, xml};
use crate::percent::{self, KEY_PATH};
use crate::server::{empty, Resp};
use crate::store::ObjMeta;
use md5::{Digest, Md5};
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering;

const MAX_PART: u64 = 5 << 30;

#[derive(Debug, Clone)]
pub struct Part {
    pub etag: String,
    /// `x-amz-checksum-crc32c` the part was uploaded with (base64), if any.
    pub crc32c: Option<String>,
    pub md5: [u8; 16],
    pub size: u64,
    pub modified: String,
}

#[derive(Debug, Clone)]
pub struct Upload {
    pub id: String,
    pub bucket: String,
    pub key: String,
    pub dir: PathBuf,
    pub initiated: String,
    pub initiator: String,
    pub content_type: Option<String>,
    pub user_meta: Vec<(String, String)>,
    /// `x-amz-checksum-algorithm` of CreateMultipartUpload (only CRC32C is supported).
    pub checksum_crc32c: bool,
    pub parts: BTreeMap<u32, Part>,
}

fn no_such_upload(id: &str) -> S3Err {
    S3Err::new(404, "NoSuchUpload", "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.").with("UploadId", id)
}

fn get_upload(ctx: &Ctx, bucket: &str, key: &str, id: &str) -> Result<Upload, S3Err> {
    let ups = ctx.sh.uploads.lock().unwrap_or_else(|e| e.into_inner());
    ups.get(id).filter(|u| u.bucket == bucket && u.key == key).cloned().ok_or_else(|| no_such_upload(id))
}

pub fn create(ctx: &Ctx, bucket: &str, key: &str, h: &http::HeaderMap) -> Result<Resp, S3Err> {
    let b = ctx.bucket(bucket)?;
    ctx.object_path(&b, key)?;
    let meta = user_meta(h)?;
    let checksum_crc32c = match hdr(h, "x-amz-checksum-algorithm") {
        None => false,
        Some(a) if a.eq_ignore_ascii_case("CRC32C") => true,
        Some(a) => {
            return Err(S3Err::new(
                501,
                "NotImplemented",
                format!("checksum algorithm {a} is not supported by vast-sim (CRC32C is)"),
            ))
        }
    };
    let id = {
        let mut st = ctx.sh.state.lock().unwrap_or_else(|e| e.into_inner());
        st.rng.hex(32)
    };
    let dir = ctx.sh.store.uploads_dir().join(&id);
    std::fs::create_dir_all(&dir).map_err(internal)?;
    let up = Upload {
        id: id.clone(),
        bucket: bucket.into(),
        key: key.into(),
        dir,
        initiated: now_iso(),
        initiator: ctx.caller.name.clone(),
        content_type: hdr(h, "content-type").map(String::from),
        user_meta: meta,
        checksum_crc32c,
        parts: BTreeMap::new(),
    };
    ctx.sh.uploads.lock().unwrap_or_else(|e| e.into_inner()).insert(id.clone(), up);
    xml::response(&xml::InitiateMultipartUploadResult {
        xmlns: xml::Xmlns,
        bucket: bucket.into(),
        key: key.into(),
        upload_id: id,
    })
}

fn part_number(n: &str) -> Result<u32, S3Err> {
    match n.parse::<u32>() {
        Ok(n) if (1..=10_000).contains(&n) => Ok(n),
        _ => Err(S3Err::new(
            400,
            "InvalidArgument",
            "Part number must be an integer between 1 and 10000, inclusive",
        )),
    }
}

fn record_part(ctx: &Ctx, id: &str, n: u32, part: Part) -> Result<(), S3Err> {
    let mut ups = ctx.sh.uploads.lock().unwrap_or_else(|e| e.into_inner());
    let up = ups.get_mut(id).ok_or_else(|| no_such_upload(id))?;
    up.parts.insert(n, part);
    Ok(())
}

pub async fn upload_part(
    ctx: &Ctx,
    bucket: &str,
    key: &str,
    id: &str,
    n: &str,
    req: &mut SReq,
    sig: &SigRequest,
) -> Result<Resp, S3Err> {
    ctx.bucket(bucket)?;
    let n = part_number(n)?;
    let up = get_upload(ctx, bucket, key, id)?;
    let final_path = up.dir.join(format!("part-{n:05}"));
    let h = req.headers().clone();
    if h.contains_key("x-amz-copy-source") {
        return upload_part_copy(ctx, &up, n, final_path, &h).await;
    }
    let len = content_length(&h)?;
    if len > MAX_PART {
        return Err(S3Err::new(
            400,
            "EntityTooLarge",
            "Your proposed upload exceeds the maximum allowed object size.",
        ));
    }
    let checks = Checks::from(&h, sig)?;
    let staged: u64 = up.parts.iter().filter(|(k, _)| **k != n).map(|(_, p)| p.size).sum();
    let b = ctx.bucket(bucket)?;
    let dest = ctx.object_path(&b, key)?;
    ctx.quota_check(&dest, staged + len, None).await?;
    let tmp = up.dir.join(format!(
        "part-{n:05}.{}.tmp",
        ctx.sh.store.tmp_path().file_name().and_then(|f| f.to_str()).unwrap_or("t")
    ));
    let r = receive(take_body(req)?, &tmp, len, &checks).await?;
    let (t, f) = (tmp.clone(), final_path.clone());
    blocking(move || std::fs::rename(&t, &f)).await?.map_err(|_| no_such_upload(id))?;
    let etag = quoted_md5(&r.md5);
    let crc32c = hdr(&h, "x-amz-checksum-crc32c").map(|c| c.trim().to_string());
    record_part(
        ctx,
        id,
        n,
        Part { etag: etag.clone(), crc32c, md5: r.md5, size: r.size, modified: now_iso() },
    )?;
    let mut rb = http::Response::builder().status(200).header("etag", etag);
    if let Some(c) = hdr(&h, "x-amz-checksum-crc32c") {
        rb = rb.header("x-amz-checksum-crc32c", c);
    }
    rb.body(empty()).map_err(internal)
}

/// UploadPartCopy: a byte range of an existing object becomes a part, server side.
async fn upload_part_copy(
    ctx: &Ctx,
    up: &Upload,
    n: u32,
    final_path: PathBuf,
    h: &http::HeaderMap,
) -> Result<Resp, S3Err> {
    let src = copy_source(ctx, h)?;
    let size = std::fs::metadata(&src).map_err(internal)?.len();
    let (start, len) = match hdr(h, "x-amz-copy-source-range") {
        None => (0, size),
        Some(r) => {
            let bad = || {
                S3Err::new(416, "InvalidRange", "The requested range is not satisfiable")
                    .with("RangeRequested", r)
                    .with("ActualObjectSize", size.to_string())
            };
            let spec = r.trim().strip_prefix("bytes=").ok_or_else(|| S3Err::new(400, "InvalidArgument", "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy"))?;
            let (a, b) = spec.split_once('-').ok_or_else(bad)?;
            let (a, b): (u64, u64) =
                (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?);
            if a > b || b >= size {
                return Err(bad());
            }
            (a, b - a + 1)
        }
    };
    if len > MAX_PART {
        return Err(S3Err::new(400, "EntityTooLarge", "Part exceeds the maximum allowed size."));
    }
    let tmp = up.dir.join(format!(
        "part-{n:05}.{}.tmp",
        ctx.sh.store.tmp_path().file_name().and_then(|f| f.to_str()).unwrap_or("t")
    ));
    let (t, f) = (tmp.clone(), final_path);
    let (md5, crc) = blocking(move || -> std::io::Result<([u8; 16], u32)> {
        let r = (|| {
            let mut s = std::fs::File::open(&src)?;
            s.seek(SeekFrom::Start(start))?;
            let mut out = std::fs::File::create(&t)?;
            let mut h = Md5::new();
            let mut crc = 0u32;
            let mut left = len;
            let mut buf = vec![0u8; 1 << 20];
            while left > 0 {
                let k = s.read(&mut buf[..left.min(1 << 20) as usize])?;
                if k == 0 {
                    return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "source shrank"));
                }
                h.update(&buf[..k]);
                crc = crc32c::crc32c_append(crc, &buf[..k]);
                out.write_all(&buf[..k])?;
                left -= k as u64;
            }
            std::fs::rename(&t, &f)?;
            Ok((h.finalize().into(), crc))
        })();
        if r.is_err() {
            let _ = std::fs::remove_file(&t);
        }
        r
    })
    .await?
    .map_err(internal)?;
    let etag = quoted_md5(&md5);
    let modified = now_iso();
    use base64::Engine;
    let crc_b64 = base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes());
    let crc32c = up.checksum_crc32c.then(|| crc_b64.clone());
    record_part(
        ctx,
        &up.id,
        n,
        Part { etag: etag.clone(), crc32c: crc32c.clone(), md5, size: len, modified: modified.clone() },
    )?;
    xml::response(&xml::CopyPartResult {
        xmlns: xml::Xmlns,
        last_modified: modified,
        etag,
        checksum_crc32c: crc32c,
    })
}

pub async fn complete(
    ctx: &Ctx,
    bucket: &str,
    key: &str,
    id: &str,
    req: &mut SReq,
    sig: &SigRequest,
) -> Result<Resp, S3Err> {
    let b = ctx.bucket(bucket)?;
    let dest = ctx.object_path(&b, key)?;
    let up = get_upload(ctx, bucket, key, id)?;
    let cond = WriteCond::of(ctx, req.headers())?;
    let doc = xml::CompleteMultipartUpload::parse(&small_body(req, sig).await?)?;
    let mut chosen: Vec<(u32, Part)> = Vec::new();
    for p in &doc.parts {
        let (n, etag) = (p.number, p.etag.trim());
        if chosen.last().is_some_and(|(last, _)| *last >= n) {
            return Err(S3Err::new(400, "InvalidPartOrder", "The list of parts was not in ascending order. The parts list must be specified in order of the part number."));
        }
        let part = up.parts.get(&n).filter(|part| part.etag.trim_matches('"') == etag.trim_matches('"'));
        let part = part.ok_or_else(|| {
            S3Err::new(400, "InvalidPart", "One or more of the specified parts could not be found. The part might not have been uploaded, or the specified entity tag might not have matched the part's entity tag.")
                .with("PartNumber", n.to_string())
                .with("ETag", etag)
        })?;
        // A part checksum listed in the completion must be the one the part was sent with.
        let listed_crc = p.checksum_crc32c.as_deref().map(str::trim);
        if let (Some(l), Some(stored)) = (listed_crc, &part.crc32c) {
            if l != stored.as_str() {
                return Err(S3Err::new(
                    400,
                    "InvalidPart",
                    "The ChecksumCRC32C of a part does not match the uploaded part.",
                )
                .with("PartNumber", n.to_string()));
            }
        }
        if up.checksum_crc32c && listed_crc.is_none() {
            return Err(S3Err::new(400, "InvalidRequest", format!("The upload was created using a CRC32C checksum. The complete request must include the checksum for each part. It was missing for part {n} in the request.")));
        }
        chosen.push((n, part.clone()));
    }
    if chosen.is_empty() {
        return Err(S3Err::new(400, "MalformedXML", "You must specify at least one part"));
    }
    let min = ctx.sh.min_part_size.load(Ordering::Relaxed);
    for (n, p) in &chosen[..chosen.len() - 1] {
        if p.size < min {
            return Err(S3Err::new(
                400,
                "EntityTooSmall",
                "Your proposed upload is smaller than the minimum allowed object size.",
            )
            .with("ProposedSize", p.size.to_string())
            .with("MinSizeAllowed", min.to_string())
            .with("PartNumber", n.to_string()));
        }
    }
    let total: u64 = chosen.iter().map(|(_, p)| p.size).sum();
    let tmp = ctx.sh.store.tmp_path();
    let files: Vec<PathBuf> = chosen.iter().map(|(n, _)| up.dir.join(format!("part-{n:05}"))).collect();
    let t = tmp.clone();
    blocking(move || -> std::io::Result<()> {
        let r = (|| {
            let mut out = std::fs::File::create(&t)?;
            for f in files {
                // std::io::copy between files uses copy_file_range on Linux.
                std::io::copy(&mut std::fs::File::open(f)?, &mut out)?;
            }
            out.flush()
        })();
        if r.is_err() {
            let _ = std::fs::remove_file(&t);
        }
        r
    })
    .await?
    .map_err(internal)?;
    let mut h = Md5::new();
    for (_, p) in &chosen {
        h.update(p.md5);
    }
    let etag = format!("\"{}-{}\"", hex::encode(h.finalize()), chosen.len());
    let m = ObjMeta {
        etag: etag.clone(),
        content_type: up.content_type.clone(),
        user_meta: up.user_meta.clone(),
        ..Default::default()
    };
    commit(ctx, &tmp, &dest, total, None, m, &cond).await?;
    super::retention::apply_default(ctx, &b, &dest);
    ctx.sh.uploads.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    let dir = up.dir.clone();
    let _ = blocking(move || std::fs::remove_dir_all(dir)).await;
    xml::response(&xml::CompleteMultipartUploadResult {
        xmlns: xml::Xmlns,
        location: format!("http://{}/{}/{}", ctx.host, bucket, percent::encode(key, KEY_PATH)),
        bucket: bucket.into(),
        key: key.into(),
        etag,
    })
}

pub async fn abort(ctx: &Ctx, bucket: &str, key: &str, id: &str) -> Result<Resp, S3Err> {
    ctx.bucket(bucket)?;
    let up = get_upload(ctx, bucket, key, id)?;
    ctx.sh.uploads.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    let _ = blocking(move || std::fs::remove_dir_all(up.dir)).await;
    http::Response::builder().status(204).body(empty()).map_err(internal)
}

fn qnum(q: &[(String, String)], k: &str, default: usize) -> Result<usize, S3Err> {
    match q.iter().find(|(a, _)| a == k) {
        None => Ok(default),
        Some((_, v)) => {
            v.parse().map_err(|_| S3Err::new(400, "InvalidArgument", format!("{k} must be an integer")))
        }
    }
}

pub fn list_parts(
    ctx: &Ctx,
    bucket: &str,
    key: &str,
    id: &str,
    q: &[(String, String)],
) -> Result<Resp, S3Err> {
    ctx.bucket(bucket)?;
    let up = get_upload(ctx, bucket, key, id)?;
    let max = qnum(q, "max-parts", 1000)?.min(1000);
    let marker = qnum(q, "part-number-marker", 0)? as u32;
    let parts: Vec<(&u32, &Part)> = up.parts.range(marker + 1..).collect();
    let truncated = parts.len() > max;
    let page = &parts[..parts.len().min(max)];
    xml::response(&xml::ListPartsResult {
        xmlns: xml::Xmlns,
        bucket: bucket.into(),
        key: key.into(),
        upload_id: id.into(),
        initiator: xml::Owner::user(&up.initiator),
        owner: xml::Owner::user(&up.initiator),
        storage_class: "STANDARD",
        part_number_marker: marker,
        next_part_number_marker: page.last().map(|(n, _)| **n),
        max_parts: max,
        is_truncated: truncated,
        parts: page
            .iter()
            .map(|(n, p)| xml::PartEntry {
                part_number: **n,
                last_modified: p.modified.clone(),
                etag: p.etag.clone(),
                size: p.size,
            })
            .collect(),
    })
}

pub fn list_uploads(ctx: &Ctx, bucket: &str, q: &[(String, String)]) -> Result<Resp, S3Err> {
    ctx.bucket(bucket)?;
    let qv = |k: &str| q.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone()).unwrap_or_default();
    let (prefix, key_marker, id_marker) = (qv("prefix"), qv("key-marker"), qv("upload-id-marker"));
    let max = qnum(q, "max-uploads", 1000)?.min(1000);
    let mut ups: Vec<Upload> = ctx
        .sh
        .uploads
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .filter(|u| u.bucket == bucket && u.key.starts_with(&prefix))
        .cloned()
        .collect();
    ups.sort_by(|a, b| (&a.key, &a.initiated, &a.id).cmp(&(&b.key, &b.initiated, &b.id)));
    let ups: Vec<Upload> = ups
        .into_iter()
        .filter(|u| {
            key_marker.is_empty()
                || u.key > key_marker
                || (u.key == key_marker && !id_marker.is_empty() && u.id > id_marker)
        })
        .collect();
    let truncated = ups.len() > max;
    let page = &ups[..ups.len().min(max)];
    let next = page.last().filter(|_| truncated);
    xml::response(&xml::ListMultipartUploadsResult {
        xmlns: xml::Xmlns,
        bucket: bucket.into(),
        next_key_marker: next.map(|l| l.key.clone()),
        next_upload_id_marker: next.map(|l| l.id.clone()),
        key_marker,
        upload_id_marker: id_marker,
        prefix,
        max_uploads: max,
        is_truncated: truncated,
        uploads: page
            .iter()
            .map(|u| xml::UploadEntry {
                key: u.key.clone(),
                upload_id: u.id.clone(),
                initiator: xml::Owner::user(&u.initiator),
                owner: xml::Owner::user(&u.initiator),
                storage_class: "STANDARD",
                initiated: u.initiated.clone(),
            })
            .collect(),
    })
}
