//! The S3 object and bucket operations the store uses, one function each: the request, the
//! answer's XML as typed structs, and what a lost answer or a retry means for each. Multipart
//! uploads are in [`super::multipart`]. No image logic here.

use jiff::fmt::rfc2822::DateTimeParser;
use jiff::Timestamp;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use rusty_s3::Method;

use super::client::{embedded_error, Client, Failure, Req};
use super::xml;
use crate::error::{Error, ErrorKind, Result};

/// List answers (1000 keys of at most 1 KiB each, and XML around them).
pub const MAX_LIST_BODY: u64 = 8 << 20;

/// A ListObjectsV2 result: (key, size) of each object, and the common prefixes.
pub type Listing = (Vec<(String, u64)>, Vec<String>);

/// One object, and the endpoint its requests start on.
#[derive(Debug, Clone, Copy)]
pub struct Obj<'a> {
    pub ep: usize,
    pub bucket: &'a str,
    pub key: &'a str,
}

/// An error answered for a missing key (not a missing bucket: that one is real).
fn missing_key(e: &Error) -> bool {
    e.kind() == ErrorKind::NotFound && e.code() != "NoSuchBucket"
}

/// ListBuckets: the names of the buckets this user sees.
pub fn list_buckets(c: &Client) -> Result<Vec<String>> {
    let what = "ListBuckets";
    let doc =
        c.call(c.pick(), what, || Req::service(Method::Get), |mut r| Ok(r.text(what, MAX_LIST_BODY)?))?;
    let l: xml::ListAllMyBucketsResult = xml::parse(what, &doc)?;
    Ok(l.buckets.list.into_iter().map(|b| b.name).collect())
}

/// HeadBucket: `NotFound` when the bucket does not exist.
pub fn head_bucket(c: &Client, bucket: &str) -> Result<()> {
    let what = format!("HeadBucket {bucket}");
    c.call(c.pick(), &what, || Req::new(Method::Head, bucket, None), |_| Ok(()))
}

/// DeleteBucket (it must be empty). A bucket already gone is fine.
pub fn delete_bucket(c: &Client, bucket: &str) -> Result<()> {
    let what = format!("DeleteBucket {bucket}");
    match c.call(c.pick(), &what, || Req::new(Method::Delete, bucket, None), |_| Ok(())) {
        Err(e) if e.code() == "NoSuchBucket" => Ok(()),
        r => r,
    }
}

/// CreateBucket. A bucket this user already owns is fine.
pub fn create_bucket(c: &Client, bucket: &str) -> Result<()> {
    let what = format!("CreateBucket {bucket}");
    match c.call(c.pick(), &what, || Req::new(Method::Put, bucket, None), |_| Ok(())) {
        Err(e) if e.code() == "BucketAlreadyOwnedByYou" => Ok(()),
        r => r,
    }
}

/// HeadObject: `Some(size)`, or `None` when there is no such object.
pub fn head_size(c: &Client, ep: usize, bucket: &str, key: &str) -> Result<Option<u64>> {
    let what = format!("HeadObject {bucket}/{key}");
    let r = c.call(
        ep,
        &what,
        || Req::new(Method::Head, bucket, Some(key)),
        |r| {
            r.header("content-length")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| Failure::from(Error::new(ErrorKind::Io, format!("{what}: no Content-Length"))))
        },
    );
    match r {
        Ok(n) => Ok(Some(n)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// GetObject of a small object (at most `limit` bytes, or a `TooLong` error): `None` if it is
/// absent.
pub fn get_small(c: &Client, ep: usize, bucket: &str, key: &str, limit: u64) -> Result<Option<Vec<u8>>> {
    let what = format!("GetObject {bucket}/{key}");
    let r =
        c.call(ep, &what, || Req::new(Method::Get, bucket, Some(key)), |mut r| Ok(r.bytes(&what, limit)?));
    match r {
        Ok(b) => Ok(Some(b)),
        Err(e) if missing_key(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// PutObject of `data` with `headers` (checksums) and `conditions` (`if-none-match`,
/// `if-match`), retried as the policy says.
/// `on_retry_refusal` decides what a refusal of a retried attempt means (an earlier attempt
/// whose answer was lost may have landed): `Ok(())` when that attempt is known to have landed.
pub fn put_object(
    c: &Client,
    o: Obj<'_>,
    what: &str,
    data: &[u8],
    headers: &[(&'static str, String)],
    conditions: &[(&'static str, String)],
    on_retry_refusal: impl Fn(&Failure) -> bool,
) -> Result<()> {
    let Obj { ep, bucket, key } = o;
    c.run(|attempt| {
        let mut r = Req::new(Method::Put, bucket, Some(key)).body(data);
        r.headers.extend(headers.iter().cloned());
        r.conditions.extend(conditions.iter().cloned());
        match c.send(ep, &r, what) {
            Ok(_) => Ok(()),
            Err(f) if attempt > 1 && on_retry_refusal(&f) => Ok(()),
            Err(f) => Err(f),
        }
    })
}

/// DeleteObject. A key already gone is fine; a missing bucket is not.
pub fn delete_object(c: &Client, bucket: &str, key: &str) -> Result<()> {
    let what = format!("DeleteObject {bucket}/{key}");
    match c.call(c.pick(), &what, || Req::new(Method::Delete, bucket, Some(key)), |_| Ok(())) {
        Err(e) if missing_key(&e) => Ok(()),
        r => r,
    }
}

/// DeleteObjects in batches of 1000 (quiet: only failures come back). A key that is already
/// gone is not a failure; keys the server failed to delete for a passing reason (a per-key
/// `InternalError` or `SlowDown`) are sent again as the retry policy allows.
pub fn delete_objects(c: &Client, bucket: &str, keys: &[String]) -> Result<()> {
    use base64::Engine as _;
    let ep = c.pick();
    for batch in keys.chunks(1000) {
        let mut left: Vec<&String> = batch.iter().collect();
        c.run(|_| {
            let what = format!("DeleteObjects {bucket} ({} keys from {})", left.len(), left[0]);
            let body = xml::body(
                "Delete",
                &xml::Delete {
                    quiet: true,
                    objects: left.iter().map(|k| xml::DeleteKey { key: k }).collect(),
                },
            );
            // AWS requires an integrity header on DeleteObjects; MD5 of a few KiB is nothing.
            let md5 = base64::engine::general_purpose::STANDARD.encode(super::checksum::md5(body.as_bytes()));
            let r = Req::new(Method::Post, bucket, None)
                .query("delete", "")
                .header("content-md5", md5)
                .header("content-type", "application/xml")
                .body(body.as_bytes());
            let doc = c.send(ep, &r, &what)?.text(&what, MAX_LIST_BODY)?;
            let result: xml::DeleteResult = xml::parse(&what, &doc)?;
            let failed: Vec<_> = result.errors.into_iter().filter(|e| e.code != "NoSuchKey").collect();
            if failed.is_empty() {
                return Ok(());
            }
            let kind = if failed.iter().any(|f| f.code == "AccessDenied") {
                ErrorKind::Access
            } else {
                ErrorKind::Io
            };
            let passing = failed
                .iter()
                .all(|f| matches!(f.code.as_str(), "InternalError" | "SlowDown" | "ServiceUnavailable"));
            let list: Vec<String> =
                failed.iter().map(|f| format!("{}: {} {}", f.key, f.code, f.message)).collect();
            let err = Error::new(kind, format!("{what}: {} not deleted: {}", failed.len(), list.join("; ")));
            left.retain(|k| failed.iter().any(|f| &f.key == *k));
            Err(Failure { err, retry: passing && !left.is_empty() })
        })?;
    }
    Ok(())
}

/// ListObjectsV2 of `prefix`, every page: keys (and sizes), and common prefixes when a
/// delimiter is given.
pub fn list_objects(c: &Client, bucket: &str, prefix: &str, delimiter: Option<&str>) -> Result<Listing> {
    let (mut keys, mut prefixes) = (Vec::new(), Vec::new());
    list_pages(c, bucket, prefix, delimiter, |page, _| {
        keys.extend(page.contents.into_iter().map(|o| (o.key, o.size)));
        prefixes.extend(page.common_prefixes.into_iter().map(|p| p.prefix));
    })?;
    Ok((keys, prefixes))
}

/// An object in a listing, with when it was last written (server time).
#[derive(Debug, Clone)]
pub struct Listed {
    pub key: String,
    pub modified: Option<Timestamp>,
}

/// ListObjectsV2 of `prefix`, every page, with each object's modification time, and the
/// server's clock when it answered the last page (its `Date` header): ages measured on the
/// server's clock alone, whatever this host's clock says.
pub fn list_timed(c: &Client, bucket: &str, prefix: &str) -> Result<(Vec<Listed>, Option<Timestamp>)> {
    let (mut out, mut now) = (Vec::new(), None);
    list_pages(c, bucket, prefix, None, |page, date| {
        now = date;
        out.extend(
            page.contents
                .into_iter()
                .map(|o| Listed { key: o.key, modified: o.last_modified.and_then(|t| t.parse().ok()) }),
        );
    })?;
    Ok((out, now))
}

/// Every page of a ListObjectsV2, handed to `on_page` with the answer's `Date`.
fn list_pages(
    c: &Client,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    mut on_page: impl FnMut(xml::ListBucketResult, Option<Timestamp>),
) -> Result<()> {
    let ep = c.pick();
    let what = format!("ListObjectsV2 {bucket}/{prefix}");
    let mut token: Option<String> = None;
    loop {
        let req = || {
            let mut r = Req::new(Method::Get, bucket, None).query("list-type", "2").query("prefix", prefix);
            if let Some(d) = delimiter {
                r = r.query("delimiter", d);
            }
            if let Some(t) = &token {
                r = r.query("continuation-token", t.clone());
            }
            r
        };
        let (doc, date) = c.call(ep, &what, req, |mut r| {
            let date = r.header("date").and_then(|d| DateTimeParser::new().parse_timestamp(d.trim()).ok());
            Ok((r.text(&what, MAX_LIST_BODY)?, date))
        })?;
        let mut page: xml::ListBucketResult = xml::parse(&what, &doc)?;
        let next = page.next_continuation_token.take().filter(|t| !t.is_empty());
        let truncated = page.is_truncated;
        on_page(page, date);
        match next {
            Some(t) if truncated => token = Some(t),
            _ if truncated => {
                return Err(Error::new(
                    ErrorKind::Io,
                    format!("{what}: truncated answer without a continuation token"),
                ))
            }
            _ => return Ok(()),
        }
    }
}

/// PutObjectRetention: lock `key` in `mode` (`COMPLIANCE`, `GOVERNANCE`) until `until`.
pub fn put_retention(c: &Client, bucket: &str, key: &str, mode: &str, until: Timestamp) -> Result<()> {
    use base64::Engine as _;
    let what = format!("PutObjectRetention {bucket}/{key} until {until}");
    let body = xml::body(
        "Retention",
        &xml::Retention {
            mode: mode.to_string(),
            retain_until_date: until.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        },
    );
    // AWS requires an integrity header here too.
    let md5 = base64::engine::general_purpose::STANDARD.encode(super::checksum::md5(body.as_bytes()));
    c.call(
        c.pick(),
        &what,
        || {
            Req::new(Method::Put, bucket, Some(key))
                .query("retention", "")
                .header("content-md5", md5.clone())
                .header("content-type", "application/xml")
                .body(body.as_bytes())
        },
        |_| Ok(()),
    )
}

/// GetObjectRetention: when the lock on `key` ends (`None` if it has none), and the server's
/// clock (its `Date`), which decides whether the lock still holds.
pub fn get_retention(c: &Client, bucket: &str, key: &str) -> Result<(Option<Timestamp>, Option<Timestamp>)> {
    let what = format!("GetObjectRetention {bucket}/{key}");
    let r = c.call(
        c.pick(),
        &what,
        || Req::new(Method::Get, bucket, Some(key)).query("retention", ""),
        |mut r| {
            let date = r.header("date").and_then(|d| DateTimeParser::new().parse_timestamp(d.trim()).ok());
            Ok((r.text(&what, 1 << 20)?, date))
        },
    );
    match r {
        Ok((doc, date)) => {
            let ret: xml::Retention = xml::parse(&what, &doc)?;
            let t = ret.retain_until_date.parse::<Timestamp>().map_err(|e| {
                Error::new(ErrorKind::Io, format!("{what}: RetainUntilDate '{}': {e}", ret.retain_until_date))
            })?;
            Ok((Some(t), date))
        }
        // No lock (NoSuchObjectLockConfiguration), or no object.
        Err(e) if matches!(e.http_status(), Some(404)) => Ok((None, None)),
        Err(e) => Err(e),
    }
}

/// Characters of a key that `x-amz-copy-source` keeps as they are (RFC 3986 unreserved, and
/// the `/` between key segments).
const COPY_SOURCE_KEEP: &AsciiSet =
    &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/');

/// `x-amz-copy-source`: `/bucket/key`, the key URL-encoded (slashes kept).
pub fn copy_source(bucket: &str, key: &str) -> String {
    format!("/{bucket}/{}", utf8_percent_encode(key, COPY_SOURCE_KEEP))
}

/// CopyObject of a whole object inside the storage.
pub fn copy_object(
    c: &Client,
    from_bucket: &str,
    from_key: &str,
    to_bucket: &str,
    to_key: &str,
) -> Result<()> {
    let what = format!("CopyObject {from_bucket}/{from_key} to {to_bucket}/{to_key}");
    let src = copy_source(from_bucket, from_key);
    c.call(
        c.pick(),
        &what,
        || Req::new(Method::Put, to_bucket, Some(to_key)).header("x-amz-copy-source", src.clone()),
        |mut r| {
            let doc = r.text(&what, MAX_LIST_BODY)?;
            match embedded_error(&what, &doc) {
                Some(f) => Err(f),
                None => Ok(()),
            }
        },
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn copy_source_encoding() {
        assert_eq!(super::copy_source("b", "img_C1/ab-01.piece"), "/b/img_C1/ab-01.piece");
        assert_eq!(super::copy_source("b", "a b+c"), "/b/a%20b%2Bc");
    }
}
