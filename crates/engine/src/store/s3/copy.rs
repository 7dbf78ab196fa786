//! Copying a piece inside the storage: one CopyObject up to `copy_part_size`, else a multipart
//! upload whose parts are UploadPartCopy ranges of the source, `upload_workers` at a time. The
//! bytes never pass through this process.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::settings::{ChecksumMode, MAX_PARTS};
use super::{api, multipart, Shared};
use crate::error::{Error, Result};

const MIB: u64 = 1 << 20;

/// Copy the object `from_bucket/from_key` of `size` bytes to `to_bucket/to_key`.
pub fn copy_piece(
    sh: &Shared,
    copy_part_size: u64,
    (from_bucket, from_key): (&str, &str),
    (to_bucket, to_key): (&str, &str),
    size: u64,
) -> Result<()> {
    if size <= copy_part_size {
        return api::copy_object(&sh.client, from_bucket, from_key, to_bucket, to_key);
    }
    let c = &sh.client;
    let ep = c.pick();
    let mut range = copy_part_size;
    // Stay within 10,000 parts for very large pieces.
    let min_range = size.div_ceil(MAX_PARTS as u64);
    if range < min_range {
        range = min_range.div_ceil(MIB) * MIB;
    }
    let nparts = size.div_ceil(range) as u32;
    let upload = multipart::create_upload(c, ep, to_bucket, to_key, ChecksumMode::None)?;
    let src = api::copy_source(from_bucket, from_key);
    let next = AtomicUsize::new(1);
    let results: Mutex<Vec<multipart::Part>> = Mutex::new(Vec::new());
    let failed: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..sh.workers.min(nparts as usize) {
            s.spawn(|| loop {
                if failed.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
                    return;
                }
                let n = next.fetch_add(1, Ordering::Relaxed) as u32;
                if n > nparts {
                    return;
                }
                let first = (n as u64 - 1) * range;
                let last = (first + range).min(size) - 1;
                let to = api::Obj { ep: ep.wrapping_add(n as usize), bucket: to_bucket, key: to_key };
                let res = multipart::upload_part_copy(c, to, &upload, n, &src, (first, last));
                match res {
                    Ok(etag) => results.lock().unwrap_or_else(|p| p.into_inner()).push(multipart::Part {
                        n,
                        etag,
                        crc: None,
                    }),
                    Err(e) => {
                        failed.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
                        return;
                    }
                }
            });
        }
    });
    let res = match failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => {
            let mut parts = results.into_inner().unwrap_or_else(|p| p.into_inner());
            parts.sort_by_key(|p| p.n);
            multipart::complete_upload(c, ep, to_bucket, to_key, &upload, &parts, size)
        }
    };
    if res.is_err() {
        multipart::abort_upload(c, ep, to_bucket, to_key, &upload);
    }
    res
}
