//! The S3 data path: an LSU is a bucket (on VAST, a view with S3 and a bucket name).
//!
//! ```text
//! <bucket>/<image>/manifest     the commit record: created with If-None-Match: *, replaced by one PUT
//! <bucket>/<image>/<piece>      immutable data: one PUT, or one multipart upload
//! ```
//!
//! Requests are path-style, SigV4-presigned by rusty-s3 with `UNSIGNED-PAYLOAD` (no SHA-256
//! over the data, on either side) and carried by the engine's one ureq agent ([`client`]).
//! Integrity comes from a cheap per-request checksum ([`ChecksumMode`]) and, end to end, from
//! the CRC32C of each piece that the image layer checks on every full read.
//!
//! Durability order is the one of the NFS store: a piece's PUT or CompleteMultipartUpload has
//! returned before a manifest names it, and a manifest PUT is atomic (readers see the old or
//! the new object, never a mix).
//!
//! Capacity: S3 has no capacity call, and summing object sizes means listing the whole bucket,
//! while [`PieceStore::lsu_space`] runs on every image open as the existence check. So it is a
//! HeadBucket, and the space reported is [`S3Settings::nominal_capacity`] with `used` 0; with
//! VMS the control path reports the view's quota instead.
//!
//! Server notes (tests: `tests/s3_radosgw.rs`, `tests/s3_vast_sim.rs`):
//! - radosgw 16.2.15 honours `If-None-Match: *` on PUT (412 PreconditionFailed; one winner
//!   out of 8 racing creators), checks `Content-MD5` (400 BadDigest), and accepts and
//!   *ignores* `x-amz-checksum-crc32c` (a wrong value is stored without complaint), the
//!   `x-amz-checksum-algorithm` of CreateMultipartUpload and the `<ChecksumCRC32C>` elements of
//!   CompleteMultipartUpload. It answers 411 to bodiless PUT/POSTs without `Content-Length: 0`
//!   (UploadPartCopy, CompleteMultipartUpload): every PUT/POST here sends one. Its
//!   CompleteMultipartUpload result has an empty `<ETag>` (HEAD gives the `-N` one). It takes
//!   x-amz-* headers that are not signed; AWS does not, so all headers sent are signed. Its
//!   smallest part is `rgw_multipart_min_part_size` (5 MiB; `scripts/ceph-rgw` sets 64 KiB).
//! - A server that refuses the CRC32C headers (400/501 naming them) makes the store go on
//!   without per-request checksums, with one warning ([`ChecksumMode`]).
//! - Multipart uploads left by a writer that died stay open until the image is deleted
//!   (`delete_image` aborts them); a bucket lifecycle rule `AbortIncompleteMultipartUpload`
//!   bounds them otherwise.

pub mod client;
mod reader;
mod writer;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use rusty_s3::Method;
use serde::Deserialize;
use tracing::{debug, warn};

use self::client::{escape, unescape, xml_all, xml_first, Client, Failure, Req};
use super::{Kind, PieceReader, PieceStore, PieceWriter, Space};
use crate::config::LsuFilter;
use crate::error::{Error, ErrorKind, Result};
use crate::http::TlsSettings;
use crate::names;
use crate::retry::RetryPolicy;

const MANIFEST: &str = "manifest";
const MIB: u64 = 1 << 20;
/// S3's smallest part (all but the last), and the largest.
pub const MIN_PART: u64 = 5 * MIB;
pub const MAX_PART: u64 = 5 << 30;
/// S3's limit of parts per upload.
pub const MAX_PARTS: u32 = 10_000;
/// List answers (1000 keys of at most 1 KiB each, and XML around them).
const MAX_LIST_BODY: u64 = 8 << 20;
/// How long a bucket found by HeadBucket is taken to exist without asking again.
const BUCKET_TTL: Duration = Duration::from_secs(10);

/// How each data request proves its bytes arrived intact.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChecksumMode {
    /// `x-amz-checksum-crc32c` on every PUT and part (hardware CRC32C: nearly free). Servers
    /// that know it (AWS, Ceph 19+) reject corrupted bodies; radosgw 16 accepts and ignores it.
    #[default]
    Crc32c,
    /// `Content-MD5`: checked by every S3 server, radosgw 16 included; costs an MD5 pass.
    Md5,
    /// Nothing per request; the image layer's CRC32C still catches corruption on read.
    None,
}

/// How `create_manifest` makes sure it does not replace another writer's manifest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CreateMode {
    /// `PUT` with `If-None-Match: *`: atomic (AWS since 2024, radosgw, MinIO). A server that
    /// answers 501 to it makes the store fall back to `head-then-put` by itself.
    #[default]
    IfNoneMatch,
    /// `HEAD`, then `PUT` if there was nothing: two writers creating the same image within
    /// one round trip can both succeed, and the later manifest wins; the loser finds out at its
    /// next commit (its generation no longer matches) with a State error.
    HeadThenPut,
}

/// `[server.s3]`-style settings of the S3 data path.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Settings {
    /// `http(s)://host:port` of each data-path address; streams spread across them
    /// round-robin per piece, and a failed one is skipped for a while. Empty in the config:
    /// the cluster's data VIPs (from VMS) with `vip_scheme` and `vip_port`.
    #[serde(default)]
    pub endpoints: Vec<String>,
    /// How to reach a VIP when the endpoints come from VMS.
    #[serde(default = "default_vip_scheme")]
    pub vip_scheme: String,
    pub vip_port: Option<u16>,
    /// Signed into every request; VAST does not check it.
    #[serde(default = "default_region")]
    pub region: String,
    /// Empty in the config: the credentials NetBackup hands over (tpconfig) are the S3 keys,
    /// for servers without `[server.vms]`.
    #[serde(default)]
    pub access_key: String,
    #[serde(default)]
    pub secret_key: String,
    /// Bytes per multipart part (and per read-ahead range). At least 5 MiB unless
    /// `allow_small_parts` (test servers configured with a smaller minimum).
    #[serde(default = "default_part_size")]
    pub part_size: u64,
    #[serde(default)]
    pub allow_small_parts: bool,
    /// Parts of one piece uploaded in parallel.
    #[serde(default = "default_workers")]
    pub upload_workers: usize,
    /// Ranges of `part_size` in flight while a piece is read sequentially (0: none).
    #[serde(default = "default_read_ahead")]
    pub read_ahead: usize,
    #[serde(default)]
    pub tls: TlsSettings,
    #[serde(default)]
    pub checksum: ChecksumMode,
    #[serde(default)]
    pub create_mode: CreateMode,
    /// Pieces up to this size are copied with one CopyObject, larger ones with UploadPartCopy
    /// of ranges this big, in parallel (at most 5 GiB).
    #[serde(default = "default_copy_part_size")]
    pub copy_part_size: u64,
    /// Capacity reported for a bucket when nothing better is known (S3 has no capacity call).
    #[serde(default = "default_nominal_capacity")]
    pub nominal_capacity: u64,
    /// Limit for one request, body included.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

fn default_region() -> String {
    "us-east-1".into()
}
fn default_vip_scheme() -> String {
    "http".into()
}
fn default_part_size() -> u64 {
    16 * MIB
}
fn default_workers() -> usize {
    4
}
fn default_read_ahead() -> usize {
    4
}
fn default_copy_part_size() -> u64 {
    1 << 30
}
fn default_nominal_capacity() -> u64 {
    1 << 50
}
fn default_timeout() -> u64 {
    120
}

impl S3Settings {
    /// Settings with defaults for everything but the endpoints and keys.
    pub fn new(endpoints: Vec<String>, access_key: &str, secret_key: &str) -> S3Settings {
        S3Settings {
            endpoints,
            vip_scheme: default_vip_scheme(),
            vip_port: None,
            region: default_region(),
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            part_size: default_part_size(),
            allow_small_parts: false,
            upload_workers: default_workers(),
            read_ahead: default_read_ahead(),
            tls: TlsSettings::default(),
            checksum: ChecksumMode::default(),
            create_mode: CreateMode::default(),
            copy_part_size: default_copy_part_size(),
            nominal_capacity: default_nominal_capacity(),
            timeout_secs: default_timeout(),
        }
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::config(format!("S3 settings: {m}")));
        if self.endpoints.is_empty() {
            return bad("endpoints is empty".into());
        }
        if self.access_key.is_empty() || self.secret_key.is_empty() {
            return bad("access_key and secret_key are required".into());
        }
        let min = if self.allow_small_parts { 64 << 10 } else { MIN_PART };
        if self.part_size < min || self.part_size > MAX_PART {
            return bad(format!(
                "part_size {} is outside {min}..={MAX_PART} (S3 parts are 5 MiB to 5 GiB; allow_small_parts = true \
                 permits 64 KiB for test servers configured so)",
                self.part_size
            ));
        }
        if self.part_size > usize::MAX as u64 / 2 {
            return bad("part_size does not fit in memory".into());
        }
        if self.upload_workers == 0 || self.upload_workers > 64 {
            return bad(format!("upload_workers {} is outside 1..=64", self.upload_workers));
        }
        if self.read_ahead > 64 {
            return bad(format!("read_ahead {} is over 64", self.read_ahead));
        }
        if self.copy_part_size < min || self.copy_part_size > MAX_PART {
            return bad(format!("copy_part_size {} is outside {min}..={MAX_PART}", self.copy_part_size));
        }
        if self.timeout_secs == 0 {
            return bad("timeout_secs must be positive".into());
        }
        Ok(())
    }
}

/// By hand: the secret key is never printed.
impl fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoints", &self.endpoints)
            .field("region", &self.region)
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("part_size", &self.part_size)
            .field("allow_small_parts", &self.allow_small_parts)
            .field("upload_workers", &self.upload_workers)
            .field("read_ahead", &self.read_ahead)
            .field("tls", &self.tls)
            .field("checksum", &self.checksum)
            .field("create_mode", &self.create_mode)
            .field("copy_part_size", &self.copy_part_size)
            .field("nominal_capacity", &self.nominal_capacity)
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

/// A ListObjectsV2 result: (key, size) of each object, and the common prefixes.
pub type Listing = (Vec<(String, u64)>, Vec<String>);

/// What pieces share: the client and the data-path settings.
pub(crate) struct Shared {
    pub client: Client,
    pub part_size: u64,
    pub workers: usize,
    pub read_ahead: usize,
    /// The checksum mode in force: the configured one, or `None` after the server refused
    /// CRC32C headers.
    checksum: std::sync::atomic::AtomicU8,
}

impl Shared {
    pub fn checksum(&self) -> ChecksumMode {
        match self.checksum.load(Ordering::Relaxed) {
            0 => ChecksumMode::Crc32c,
            1 => ChecksumMode::Md5,
            _ => ChecksumMode::None,
        }
    }

    /// Run `op` (a request that carries a checksum) in the mode in force. A server that
    /// refuses the CRC32C headers (400 or 501 naming them, or 501) makes the store go on
    /// without them, logged once, and `op` runs again.
    pub fn with_checksum<T>(&self, op: impl Fn(ChecksumMode) -> Result<T>) -> Result<T> {
        let mode = self.checksum();
        match op(mode) {
            Err(e) if mode == ChecksumMode::Crc32c && refuses_checksum(&e) => {
                if self.checksum.swap(2, Ordering::Relaxed) == 0 {
                    warn!(
                        "S3 server refuses x-amz-checksum-crc32c ({e}); sending data without a per-request \
                         checksum from now on (set checksum = \"md5\" for Content-MD5 checks)"
                    );
                }
                op(ChecksumMode::None)
            }
            r => r,
        }
    }
}

/// Parts per piece: the image layer starts a new piece before a multipart upload needs more
/// (S3 allows 10,000), so parts keep `part_size` and memory its bound.
const PARTS_PER_PIECE: u64 = 5000;

fn refuses_checksum(e: &Error) -> bool {
    let m = e.message();
    let lower = m.to_ascii_lowercase();
    // Only an answer that names the checksum: a 501 for something else (If-None-Match, say)
    // must not switch integrity checks off for the whole store.
    (m.contains("HTTP 400") || m.contains("HTTP 501")) && lower.contains("checksum")
}

pub struct S3Store {
    sh: Arc<Shared>,
    filter: LsuFilter,
    /// `None`: every bucket that ListBuckets returns and the filter accepts is an LSU, named
    /// as the bucket. `Some`: exactly these LSUs, each on its bucket (VAST views through VMS).
    buckets: RwLock<Option<BTreeMap<String, String>>>,
    create_mode: CreateMode,
    /// Set when the server answered 501 to `If-None-Match`.
    no_conditional_put: std::sync::atomic::AtomicBool,
    /// Manifests are replaced with `If-Match` until the server shows it cannot take it.
    if_match: std::sync::atomic::AtomicBool,
    copy_part_size: u64,
    nominal_capacity: u64,
    /// Buckets seen to exist, and when.
    seen: Mutex<HashMap<String, Instant>>,
}

impl S3Store {
    pub fn new(settings: &S3Settings, filter: LsuFilter) -> Result<S3Store> {
        Self::with_retry(settings, filter, RetryPolicy::default())
    }

    pub fn with_retry(settings: &S3Settings, filter: LsuFilter, retry: RetryPolicy) -> Result<S3Store> {
        settings.validate()?;
        let client = Client::new(
            &settings.endpoints,
            &settings.region,
            &settings.access_key,
            &settings.secret_key,
            &settings.tls,
            Duration::from_secs(settings.timeout_secs),
            retry,
        )?;
        Ok(S3Store {
            sh: Arc::new(Shared {
                client,
                part_size: settings.part_size,
                workers: settings.upload_workers,
                read_ahead: settings.read_ahead,
                checksum: std::sync::atomic::AtomicU8::new(match settings.checksum {
                    ChecksumMode::Crc32c => 0,
                    ChecksumMode::Md5 => 1,
                    ChecksumMode::None => 2,
                }),
            }),
            filter,
            buckets: RwLock::new(None),
            create_mode: settings.create_mode,
            no_conditional_put: Default::default(),
            if_match: std::sync::atomic::AtomicBool::new(true),
            copy_part_size: settings.copy_part_size,
            nominal_capacity: settings.nominal_capacity,
            seen: Mutex::new(HashMap::new()),
        })
    }

    /// Serve exactly these LSUs (LSU name to bucket name).
    pub fn set_buckets(&self, map: BTreeMap<String, String>) {
        *self.buckets.write().unwrap_or_else(|p| p.into_inner()) = Some(map);
    }

    /// The raw client, for tools and tests that need requests the store does not make.
    pub fn client(&self) -> &Client {
        &self.sh.client
    }

    /// The bucket of `lsu` (not checked for existence).
    pub fn bucket(&self, lsu: &str) -> Result<String> {
        names::validate("LSU", lsu)?;
        match self.buckets.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
            Some(map) => map
                .get(lsu)
                .cloned()
                .ok_or_else(|| Error::not_found(format!("LSU '{lsu}' is not an S3 bucket of this server"))),
            None if !self.filter.matches(lsu) => {
                Err(Error::not_found(format!("LSU '{lsu}' is not selected by this server's lsus/lsu_prefix")))
            }
            None => Ok(lsu.to_string()),
        }
    }

    fn image_key(&self, image: &str, name: &str) -> Result<String> {
        names::validate("image", image)?;
        Ok(format!("{image}/{name}"))
    }

    /// Pieces are `<image>/<piece>`: both parts must be valid names.
    fn piece_key<'k>(&self, key: &'k str) -> Result<&'k str> {
        let (image, piece) = key
            .split_once('/')
            .ok_or_else(|| Error::corrupt(format!("piece key '{key}' has no image part")))?;
        names::validate("image", image).map_err(|e| Error::corrupt(e.message().to_string()))?;
        names::validate("piece", piece).map_err(|e| Error::corrupt(e.message().to_string()))?;
        if piece == MANIFEST {
            return Err(Error::corrupt(format!("piece key '{key}' names the manifest")));
        }
        Ok(key)
    }

    fn head_bucket(&self, lsu: &str, bucket: &str) -> Result<()> {
        {
            let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if seen.get(bucket).is_some_and(|t| t.elapsed() < BUCKET_TTL) {
                return Ok(());
            }
        }
        let c = &self.sh.client;
        let what = format!("HeadBucket {bucket}");
        c.call(c.pick(), &what, || Req::new(Method::Head, bucket, None), |_| Ok(())).map_err(|e| match e
            .kind()
        {
            ErrorKind::NotFound => Error::not_found(format!("LSU '{lsu}': bucket '{bucket}' does not exist")),
            _ => e,
        })?;
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).insert(bucket.to_string(), Instant::now());
        Ok(())
    }

    /// ListObjectsV2 of `prefix`, every page: keys (and sizes), and common prefixes when a
    /// delimiter is given.
    pub fn list_objects(&self, bucket: &str, prefix: &str, delimiter: Option<&str>) -> Result<Listing> {
        let c = &self.sh.client;
        let ep = c.pick();
        let what = format!("ListObjectsV2 {bucket}/{prefix}");
        let (mut keys, mut prefixes) = (Vec::new(), Vec::new());
        let mut token: Option<String> = None;
        loop {
            let req = || {
                let mut r =
                    Req::new(Method::Get, bucket, None).query("list-type", "2").query("prefix", prefix);
                if let Some(d) = delimiter {
                    r = r.query("delimiter", d);
                }
                if let Some(t) = &token {
                    r = r.query("continuation-token", t.clone());
                }
                r
            };
            let doc = c.call(ep, &what, req, |mut r| Ok(r.text(&what, MAX_LIST_BODY)?))?;
            for o in xml_all(&doc, "Contents") {
                let key = xml_first(o, "Key").map(unescape).unwrap_or_default();
                let size = xml_first(o, "Size").and_then(|s| s.trim().parse().ok()).unwrap_or(0);
                keys.push((key, size));
            }
            for p in xml_all(&doc, "CommonPrefixes") {
                if let Some(p) = xml_first(p, "Prefix") {
                    prefixes.push(unescape(p));
                }
            }
            let truncated = xml_first(&doc, "IsTruncated").is_some_and(|t| t.trim() == "true");
            match xml_first(&doc, "NextContinuationToken").map(unescape) {
                Some(t) if truncated && !t.is_empty() => token = Some(t),
                _ if truncated => {
                    return Err(Error::new(
                        ErrorKind::Io,
                        format!("{what}: truncated answer without a continuation token"),
                    ))
                }
                _ => break,
            }
        }
        Ok((keys, prefixes))
    }

    /// Multipart uploads in progress under `prefix`: (key, upload id).
    pub fn list_uploads(&self, bucket: &str, prefix: &str) -> Result<Vec<(String, String)>> {
        let c = &self.sh.client;
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
            for u in xml_all(&doc, "Upload") {
                let key = xml_first(u, "Key").map(unescape).unwrap_or_default();
                let id = xml_first(u, "UploadId").map(unescape).unwrap_or_default();
                out.push((key, id));
            }
            let truncated = xml_first(&doc, "IsTruncated").is_some_and(|t| t.trim() == "true");
            if !truncated {
                break;
            }
            let k = xml_first(&doc, "NextKeyMarker").map(unescape).unwrap_or_default();
            let u = xml_first(&doc, "NextUploadIdMarker").map(unescape).unwrap_or_default();
            if k.is_empty() || marker.as_ref() == Some(&(k.clone(), u.clone())) {
                return Err(Error::new(
                    ErrorKind::Io,
                    format!("{what}: truncated answer without a next marker"),
                ));
            }
            marker = Some((k, u));
        }
        Ok(out)
    }

    /// DeleteObjects in batches of 1000 (quiet: only failures come back). A key that is
    /// already gone is not a failure.
    fn delete_objects(&self, bucket: &str, keys: &[String]) -> Result<()> {
        let c = &self.sh.client;
        let ep = c.pick();
        for batch in keys.chunks(1000) {
            let what = format!("DeleteObjects {bucket} ({} keys from {})", batch.len(), batch[0]);
            let mut body = String::from("<Delete><Quiet>true</Quiet>");
            for k in batch {
                body.push_str("<Object><Key>");
                body.push_str(&escape(k));
                body.push_str("</Key></Object>");
            }
            body.push_str("</Delete>");
            // AWS requires an integrity header on DeleteObjects; MD5 of a few KiB is nothing.
            let md5 = base64::engine::general_purpose::STANDARD.encode(md5_digest(body.as_bytes()));
            let doc = c.call(
                ep,
                &what,
                || {
                    Req::new(Method::Post, bucket, None)
                        .query("delete", "")
                        .header("content-md5", md5.clone())
                        .header("content-type", "application/xml")
                        .body(body.as_bytes())
                },
                |mut r| Ok(r.text(&what, MAX_LIST_BODY)?),
            )?;
            let failed: Vec<String> = xml_all(&doc, "Error")
                .filter(|e| xml_first(e, "Code") != Some("NoSuchKey"))
                .map(|e| {
                    format!(
                        "{}: {} {}",
                        xml_first(e, "Key").map(unescape).unwrap_or_default(),
                        xml_first(e, "Code").unwrap_or_default(),
                        xml_first(e, "Message").map(unescape).unwrap_or_default()
                    )
                })
                .collect();
            if !failed.is_empty() {
                let kind = if failed.iter().any(|f| f.contains("AccessDenied")) {
                    ErrorKind::Access
                } else {
                    ErrorKind::Io
                };
                return Err(Error::new(
                    kind,
                    format!("{what}: {} not deleted: {}", failed.len(), failed.join("; ")),
                ));
            }
        }
        Ok(())
    }

    fn delete_object(&self, bucket: &str, key: &str) -> Result<()> {
        let c = &self.sh.client;
        let what = format!("DeleteObject {bucket}/{key}");
        match c.call(c.pick(), &what, || Req::new(Method::Delete, bucket, Some(key)), |_| Ok(())) {
            Err(e) if e.kind() == ErrorKind::NotFound && !e.message().contains("NoSuchBucket") => Ok(()),
            r => r,
        }
    }

    /// CreateBucket (for an S3-only setup, where there is no VMS to provision with). A bucket
    /// this user already owns is fine.
    pub fn create_bucket(&self, bucket: &str) -> Result<()> {
        let c = &self.sh.client;
        let what = format!("CreateBucket {bucket}");
        match c.call(c.pick(), &what, || Req::new(Method::Put, bucket, None), |_| Ok(())) {
            Err(e) if e.message().contains("BucketAlreadyOwnedByYou") => Ok(()),
            r => r,
        }
    }

    /// HeadObject: the size, `None` if there is no such object.
    pub fn object_size(&self, bucket: &str, key: &str) -> Result<Option<u64>> {
        writer::head_size(&self.sh.client, self.sh.client.pick(), bucket, key)
    }

    /// PUT a manifest, with a condition header when given (`if-none-match: *` to create,
    /// `if-match: <etag>` to replace).
    fn put_manifest(
        &self,
        bucket: &str,
        key: &str,
        bytes: &[u8],
        cond: Option<(&'static str, String)>,
    ) -> Result<()> {
        self.sh.with_checksum(|mode| self.put_manifest_as(bucket, key, bytes, cond.clone(), mode))
    }

    fn put_manifest_as(
        &self,
        bucket: &str,
        key: &str,
        bytes: &[u8],
        cond: Option<(&'static str, String)>,
        mode: ChecksumMode,
    ) -> Result<()> {
        let exclusive = cond.as_ref().is_some_and(|(h, _)| *h == "if-none-match");
        let c = &self.sh.client;
        let what = format!("PUT manifest {bucket}/{key}");
        let check = writer::checksum_headers(mode, bytes);
        let ep = c.pick();
        c.run(|attempt| {
            let mut r = Req::new(Method::Put, bucket, Some(key)).body(bytes);
            r.headers.extend(check.iter().cloned());
            if let Some((h, v)) = &cond {
                r = r.header(h, v.clone());
            }
            match c.send(ep, &r, &what) {
                Ok(_) => Ok(()),
                // Our own earlier attempt may have landed with its answer lost: then the stored
                // manifest is exactly ours.
                Err(f) if exclusive && attempt > 1 && f.err.kind() == ErrorKind::AlreadyExists => {
                    match writer::get_small(c, ep, bucket, key, crate::manifest::MAX_MANIFEST as u64) {
                        Ok(Some(b)) if b == bytes => Ok(()),
                        _ => Err(f),
                    }
                }
                Err(f) => Err(f),
            }
        })
    }

    fn copy_object(&self, from_bucket: &str, from_key: &str, to_bucket: &str, to_key: &str) -> Result<()> {
        let c = &self.sh.client;
        let what = format!("CopyObject {from_bucket}/{from_key} to {to_bucket}/{to_key}");
        let src = copy_source(from_bucket, from_key);
        c.call(
            c.pick(),
            &what,
            || Req::new(Method::Put, to_bucket, Some(to_key)).header("x-amz-copy-source", src.clone()),
            |mut r| {
                let doc = r.text(&what, MAX_LIST_BODY)?;
                match client::embedded_error(&what, &doc) {
                    Some(f) => Err(f),
                    None => Ok(()),
                }
            },
        )
    }

    /// UploadPartCopy of `size` bytes in ranges of `copy_part_size`, `workers` at a time.
    fn copy_multipart(
        &self,
        from_bucket: &str,
        from_key: &str,
        to_bucket: &str,
        to_key: &str,
        size: u64,
    ) -> Result<()> {
        let c = &self.sh.client;
        let ep = c.pick();
        let mut range = self.copy_part_size;
        // Stay within 10,000 parts for very large pieces.
        let min_range = size.div_ceil(MAX_PARTS as u64);
        if range < min_range {
            range = min_range.div_ceil(MIB) * MIB;
        }
        let nparts = size.div_ceil(range) as u32;
        let upload = writer::create_upload(c, ep, to_bucket, to_key, ChecksumMode::None)?;
        let src = copy_source(from_bucket, from_key);
        let next = AtomicUsize::new(1);
        let results: Mutex<Vec<(u32, String)>> = Mutex::new(Vec::new());
        let failed: Mutex<Option<Error>> = Mutex::new(None);
        std::thread::scope(|s| {
            for _ in 0..self.sh.workers.min(nparts as usize) {
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
                    let what = format!("UploadPartCopy {to_bucket}/{to_key} part {n} (bytes {first}-{last} of {from_bucket}/{from_key})");
                    let res = c.call(
                        ep.wrapping_add(n as usize),
                        &what,
                        || {
                            Req::new(Method::Put, to_bucket, Some(to_key))
                                .query("partNumber", n.to_string())
                                .query("uploadId", upload.clone())
                                .header("x-amz-copy-source", src.clone())
                                .header("x-amz-copy-source-range", format!("bytes={first}-{last}"))
                        },
                        |mut r| {
                            let doc = r.text(&what, MAX_LIST_BODY)?;
                            if let Some(f) = client::embedded_error(&what, &doc) {
                                return Err(f);
                            }
                            xml_first(&doc, "ETag")
                                .map(unescape)
                                .filter(|e| !e.is_empty())
                                .ok_or_else(|| Failure::from(Error::new(ErrorKind::Io, format!("{what}: no ETag in the answer"))))
                        },
                    );
                    match res {
                        Ok(etag) => results.lock().unwrap_or_else(|p| p.into_inner()).push((n, etag)),
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
                let mut parts: Vec<_> = results
                    .into_inner()
                    .unwrap_or_else(|p| p.into_inner())
                    .into_iter()
                    .map(|(n, etag)| writer::Part { n, etag, crc: None })
                    .collect();
                parts.sort_by_key(|p| p.n);
                writer::complete_upload(c, ep, to_bucket, to_key, &upload, &parts, size)
            }
        };
        if res.is_err() {
            writer::abort_upload(c, ep, to_bucket, to_key, &upload);
        }
        res
    }
}

/// `x-amz-copy-source`: `/bucket/key`, the key URL-encoded (slashes kept).
fn copy_source(bucket: &str, key: &str) -> String {
    let mut s = format!("/{bucket}/");
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => s.push(b as char),
            _ => s.push_str(&format!("%{b:02X}")),
        }
    }
    s
}

pub(crate) fn md5_digest(data: &[u8]) -> [u8; 16] {
    use md5::Digest;
    md5::Md5::digest(data).into()
}

impl PieceStore for S3Store {
    fn kind(&self) -> Kind {
        Kind::S3
    }

    fn describe(&self, lsu: &str) -> String {
        let ep = self.sh.client.endpoint(0).trim_end_matches('/').to_string();
        match self.bucket(lsu) {
            Ok(b) => format!("S3 bucket {b} at {ep}"),
            Err(_) => format!("S3 {ep}"),
        }
    }

    fn list_lsus(&self) -> Result<Vec<String>> {
        if let Some(map) = self.buckets.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
            return Ok(map.keys().cloned().collect());
        }
        let c = &self.sh.client;
        let what = "ListBuckets";
        let doc = c.call(
            c.pick(),
            what,
            || Req {
                method: Method::Get,
                bucket: None,
                key: None,
                query: Vec::new(),
                headers: Vec::new(),
                body: &[],
            },
            |mut r| Ok(r.text(what, MAX_LIST_BODY)?),
        )?;
        let mut out: Vec<String> = xml_all(&doc, "Bucket")
            .filter_map(|b| xml_first(b, "Name").map(unescape))
            .filter(|n| names::validate("LSU", n).is_ok() && self.filter.matches(n))
            .collect();
        out.sort();
        Ok(out)
    }

    fn lsu_space(&self, lsu: &str) -> Result<Space> {
        let bucket = self.bucket(lsu)?;
        self.head_bucket(lsu, &bucket)?;
        Ok(Space { capacity: self.nominal_capacity, used: 0 })
    }

    fn list_images(&self, lsu: &str, prefix: &str) -> Result<Vec<String>> {
        let bucket = self.bucket(lsu)?;
        let (_, prefixes) = self.list_objects(&bucket, prefix, Some("/"))?;
        let mut out: Vec<String> = prefixes
            .into_iter()
            .filter_map(|p| p.strip_suffix('/').map(str::to_string))
            .filter(|n| n.starts_with(prefix) && names::validate("image", n).is_ok())
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn read_manifest(&self, lsu: &str, image: &str) -> Result<Option<Vec<u8>>> {
        let bucket = self.bucket(lsu)?;
        let key = self.image_key(image, MANIFEST)?;
        let c = &self.sh.client;
        writer::get_small(c, c.pick(), &bucket, &key, crate::manifest::MAX_MANIFEST as u64).map_err(|e| {
            if e.kind() == ErrorKind::TooLong {
                Error::corrupt(format!("manifest {bucket}/{key} is over the manifest limit ({e})"))
            } else {
                e
            }
        })
    }

    fn create_manifest(&self, lsu: &str, image: &str, bytes: &[u8]) -> Result<()> {
        let bucket = self.bucket(lsu)?;
        let key = self.image_key(image, MANIFEST)?;
        let exists =
            || Error::new(ErrorKind::AlreadyExists, format!("image '{image}' already exists in LSU '{lsu}'"));
        let conditional =
            self.create_mode == CreateMode::IfNoneMatch && !self.no_conditional_put.load(Ordering::Relaxed);
        if conditional {
            match self.put_manifest(&bucket, &key, bytes, Some(("if-none-match", "*".to_string()))) {
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
        if self.object_size(&bucket, &key)?.is_some() {
            return Err(exists());
        }
        self.put_manifest(&bucket, &key, bytes, None)
    }

    fn replace_manifest(&self, lsu: &str, image: &str, bytes: &[u8], expected: &[u8]) -> Result<()> {
        let bucket = self.bucket(lsu)?;
        let key = self.image_key(image, MANIFEST)?;
        if self.if_match.load(Ordering::Relaxed) {
            // A single PUT's ETag is the MD5 of its body: the replace lands only on `expected`.
            use md5::Digest;
            let etag: String = md5::Md5::digest(expected).iter().map(|b| format!("{b:02x}")).collect();
            match self.put_manifest(&bucket, &key, bytes, Some(("if-match", format!("\"{etag}\"")))) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    let c = &self.sh.client;
                    let now =
                        writer::get_small(c, c.pick(), &bucket, &key, crate::manifest::MAX_MANIFEST as u64)?;
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
        self.put_manifest(&bucket, &key, bytes, None)
    }

    fn delete_image(&self, lsu: &str, image: &str, pieces: &[String]) -> Result<()> {
        let bucket = self.bucket(lsu)?;
        let manifest = self.image_key(image, MANIFEST)?;
        // The image vanishes first.
        self.delete_object(&bucket, &manifest)?;
        let prefix = format!("{image}/");
        // Uploads of writers that died or are still going: nothing may stay open.
        let c = &self.sh.client;
        for (key, id) in self.list_uploads(&bucket, &prefix)? {
            if key.starts_with(&prefix) {
                debug!("aborting multipart upload {id} of {bucket}/{key}");
                writer::abort_upload(c, c.pick(), &bucket, &key, &id);
            }
        }
        let (objects, _) = self.list_objects(&bucket, &prefix, None)?;
        let mut keys: Vec<String> =
            objects.into_iter().map(|(k, _)| k).filter(|k| k.starts_with(&prefix)).collect();
        for p in pieces {
            let k = self.piece_key(p)?;
            if !keys.iter().any(|x| x == k) {
                keys.push(k.to_string());
            }
        }
        if !keys.is_empty() {
            self.delete_objects(&bucket, &keys)?;
        }
        Ok(())
    }

    fn max_piece_len(&self) -> u64 {
        // Past this many parts the part size would have to grow, and memory with it.
        self.sh.part_size.saturating_mul(PARTS_PER_PIECE)
    }

    fn list_image_keys(&self, lsu: &str, image: &str) -> Result<Vec<(String, Option<std::time::Duration>)>> {
        let bucket = self.bucket(lsu)?;
        let prefix = format!("{image}/");
        let (objects, _) = self.list_objects(&bucket, &prefix, None)?;
        let mut out: Vec<(String, Option<std::time::Duration>)> =
            objects.into_iter().map(|(k, _)| (k, None)).filter(|(k, _)| k.starts_with(&prefix)).collect();
        for (key, _) in self.list_uploads(&bucket, &prefix)? {
            if key.starts_with(&prefix) && !out.iter().any(|(k, _)| *k == key) {
                out.push((key, None));
            }
        }
        out.sort();
        Ok(out)
    }

    fn remove_keys(&self, lsu: &str, image: &str, keys: &[String]) -> Result<()> {
        let bucket = self.bucket(lsu)?;
        let prefix = format!("{image}/");
        if let Some(k) = keys.iter().find(|k| !k.starts_with(&prefix)) {
            return Err(Error::invalid(format!("key '{k}' is not an object of image '{image}'")));
        }
        let c = &self.sh.client;
        for (key, id) in self.list_uploads(&bucket, &prefix)? {
            if keys.contains(&key) {
                debug!("aborting multipart upload {id} of {bucket}/{key}");
                writer::abort_upload(c, c.pick(), &bucket, &key, &id);
            }
        }
        if !keys.is_empty() {
            self.delete_objects(&bucket, keys)?;
        }
        Ok(())
    }

    fn create_piece(&self, lsu: &str, key: &str) -> Result<Box<dyn PieceWriter>> {
        let bucket = self.bucket(lsu)?;
        let key = self.piece_key(key)?;
        Ok(Box::new(writer::S3PieceWriter::new(self.sh.clone(), bucket, key.to_string())))
    }

    fn open_piece(&self, lsu: &str, key: &str) -> Result<Box<dyn PieceReader>> {
        let bucket = self.bucket(lsu)?;
        let key = self.piece_key(key)?;
        Ok(Box::new(reader::S3PieceReader::open(self.sh.clone(), bucket, key.to_string())?))
    }

    fn copy_piece(&self, from_lsu: &str, from_key: &str, to_lsu: &str, to_key: &str) -> Result<()> {
        let (fb, tb) = (self.bucket(from_lsu)?, self.bucket(to_lsu)?);
        let (fk, tk) = (self.piece_key(from_key)?, self.piece_key(to_key)?);
        let size = self
            .object_size(&fb, fk)?
            .ok_or_else(|| Error::not_found(format!("piece {fb}/{fk} to copy does not exist")))?;
        if size <= self.copy_part_size {
            self.copy_object(&fb, fk, &tb, tk)
        } else {
            self.copy_multipart(&fb, fk, &tb, tk, size)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> std::result::Result<S3Settings, toml::de::Error> {
        toml::from_str(s)
    }

    #[test]
    fn settings_defaults_and_checks() {
        let s =
            parse("endpoints = [\"http://10.0.0.1:80\"]\naccess_key = \"AK\"\nsecret_key = \"hush-hush\"\n")
                .unwrap();
        assert_eq!((s.part_size, s.upload_workers, s.read_ahead), (16 << 20, 4, 4));
        assert_eq!(
            (s.region.as_str(), s.checksum, s.create_mode),
            ("us-east-1", ChecksumMode::Crc32c, CreateMode::IfNoneMatch)
        );
        s.validate().unwrap();
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("hush-hush") && dbg.contains("<redacted>"), "{dbg}");
        assert!(parse("endpoints = []\naccess_key = \"a\"\nsecret_key = \"b\"\nbogus = 1\n").is_err());
        let mut small = s.clone();
        small.part_size = 1 << 20;
        assert_eq!(small.validate().unwrap_err().kind(), ErrorKind::Config);
        small.allow_small_parts = true;
        small.validate().unwrap();
        let s = parse("endpoints = [\"https://a\"]\naccess_key = \"a\"\nsecret_key = \"b\"\nchecksum = \"md5\"\ncreate_mode = \"head-then-put\"\n[tls]\ninsecure = true\n").unwrap();
        assert_eq!(
            (s.checksum, s.create_mode, s.tls.insecure),
            (ChecksumMode::Md5, CreateMode::HeadThenPut, true)
        );
        let mut s2 = s.clone();
        s2.endpoints = vec!["ftp://x".into()];
        assert!(S3Store::new(&s2, LsuFilter::default()).is_err());
        s2.endpoints = vec!["http://user:pw@x".into()];
        assert!(S3Store::new(&s2, LsuFilter::default()).is_err());
    }

    #[test]
    fn copy_source_encoding() {
        assert_eq!(copy_source("b", "img_C1/ab-01.piece"), "/b/img_C1/ab-01.piece");
        assert_eq!(copy_source("b", "a b+c"), "/b/a%20b%2Bc");
    }

    #[test]
    fn buckets_map_and_filter() {
        let s = S3Settings::new(vec!["http://127.0.0.1:1".into()], "a", "b");
        let st = S3Store::new(&s, LsuFilter { names: None, prefix: Some("nb-".into()) }).unwrap();
        assert_eq!(st.bucket("nb-1").unwrap(), "nb-1");
        assert_eq!(st.bucket("other").unwrap_err().kind(), ErrorKind::NotFound);
        st.set_buckets(BTreeMap::from([("lsu1".to_string(), "bucket-one".to_string())]));
        assert_eq!(st.bucket("lsu1").unwrap(), "bucket-one");
        assert_eq!(st.bucket("nb-1").unwrap_err().kind(), ErrorKind::NotFound);
        assert_eq!(st.list_lsus().unwrap(), vec!["lsu1"]);
        assert!(st.piece_key("img/p1.piece").is_ok());
        assert!(st.piece_key("img/manifest").is_err());
        assert!(st.piece_key("nopiece").is_err());
        assert!(st.piece_key("img/../x").is_err());
    }
}
