//! The S3 data plane served on every VIP (reference §10, §12 item 6): path-style requests,
//! SigV4 with the access keys issued through VMS, buckets = views with `S3` in `protocols`,
//! objects = files under the view path. Errors are S3-standard XML and every response
//! carries `Server: vast 5.3.1.0`.

pub mod multipart;
pub mod sigv4;
pub mod xml;

use crate::faults::{Plane, Verdict};
use crate::server::{channel_body, empty, full, Dropped, Req, Resp};
use crate::store::{self, ObjMeta};
use crate::util::{http_date, iso8601_millis, parse_query, percent_decode, unix_now, xml_escape};
use crate::Shared;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, Method};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use md5::{Digest, Md5};
use sha2::Sha256;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

pub const SERVER: &str = "vast 5.3.1.0";
const MAX_META: usize = 2048;

/// An S3 error response.
#[derive(Debug, Clone)]
pub struct S3Err {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub extra: Vec<(&'static str, String)>,
}

impl S3Err {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> S3Err {
        S3Err { status, code: code.into(), message: message.into(), extra: Vec::new() }
    }
    fn with(mut self, tag: &'static str, v: impl Into<String>) -> S3Err {
        self.extra.push((tag, v.into()));
        self
    }
    fn into_resp(self, head: bool, resource: &str, rid: &str) -> Resp {
        let mut b = http::Response::builder().status(self.status);
        if head {
            // HEAD responses have no body; clients read the status alone.
            return b.body(empty()).unwrap_or_else(|_| http::Response::new(empty()));
        }
        let mut s = String::from(xml::HEADER);
        s.push_str("<Error>");
        xml::el(&mut s, "Code", &self.code);
        xml::el(&mut s, "Message", &self.message);
        for (t, v) in &self.extra {
            xml::el(&mut s, t, v);
        }
        xml::el(&mut s, "Resource", resource);
        xml::el(&mut s, "RequestId", rid);
        s.push_str("</Error>");
        b = b.header("content-type", "application/xml");
        b.body(full(s)).unwrap_or_else(|_| http::Response::new(empty()))
    }
}

fn no_such_bucket(b: &str) -> S3Err {
    S3Err::new(404, "NoSuchBucket", "The specified bucket does not exist").with("BucketName", b)
}
fn no_such_key(k: &str) -> S3Err {
    S3Err::new(404, "NoSuchKey", "The specified key does not exist.").with("Key", k)
}
fn access_denied() -> S3Err {
    S3Err::new(403, "AccessDenied", "Access Denied")
}
fn internal(e: impl std::fmt::Display) -> S3Err {
    S3Err::new(500, "InternalError", format!("We encountered an internal error. Please try again. ({e})"))
}
fn bad_key(k: &str) -> S3Err {
    S3Err::new(400, "InvalidArgument", format!("Object key {k:?} is not supported: keys must be 1..1024 bytes, at most 200 '/', with no empty, '.' or '..' segments (leading, trailing or double slashes need s3_special_chars_support)"))
}

pub fn xml_resp(status: u16, body: String) -> Resp {
    http::Response::builder()
        .status(status)
        .header("content-type", "application/xml")
        .body(full(body))
        .unwrap_or_else(|_| http::Response::new(empty()))
}

/// The authenticated caller.
pub struct Caller {
    pub user_id: u64,
    pub name: String,
    pub superuser: bool,
}

/// A bucket resolved to its view.
#[derive(Clone)]
pub struct Bucket {
    pub dir: PathBuf,
    pub owner: String,
}

pub struct Ctx {
    pub sh: Arc<Shared>,
    pub caller: Caller,
    pub host: String,
}

impl Ctx {
    pub fn bucket(&self, name: &str) -> Result<Bucket, S3Err> {
        let st = self.sh.state.lock().unwrap_or_else(|e| e.into_inner());
        let (_, v) = st.bucket(name).ok_or_else(|| no_such_bucket(name))?;
        let owner = v.get("bucket_owner").and_then(|o| o.as_str()).unwrap_or("").to_string();
        // Bucket owner has full access; s3_superuser sees everything. Other users would need
        // bucket or identity policies, which the simulator does not model.
        if owner != self.caller.name && !self.caller.superuser {
            return Err(access_denied());
        }
        let vpath = v.get("path").and_then(|p| p.as_str()).unwrap_or("/");
        let dir = self.sh.store.resolve(vpath).ok_or_else(|| internal("bad view path"))?;
        Ok(Bucket { dir, owner })
    }

    pub fn object_path(&self, b: &Bucket, key: &str) -> Result<PathBuf, S3Err> {
        self.sh.store.object_path(&b.dir, key).ok_or_else(|| bad_key(key))
    }

    /// Refuses a write that would take any quota above its hard limit. `add` bytes land at
    /// `dest` (replacing what is there); `moved_from` is a file that leaves the namespace in
    /// the same operation (rename).
    pub async fn quota_check(&self, dest: &Path, add: u64, moved_from: Option<&Path>) -> Result<(), S3Err> {
        let quotas: Vec<(PathBuf, u64, String)> = {
            let st = self.sh.state.lock().unwrap_or_else(|e| e.into_inner());
            st.colls["quotas"]
                .items
                .values()
                .filter_map(|q| {
                    let hard = q.get("hard_limit")?.as_u64()?;
                    let p = q.get("path")?.as_str()?;
                    Some((self.sh.store.resolve(p)?, hard, p.to_string()))
                })
                .filter(|(dir, _, _)| dest.starts_with(dir))
                .collect()
        };
        if quotas.is_empty() {
            return Ok(());
        }
        let (sh, dest, moved) = (self.sh.clone(), dest.to_path_buf(), moved_from.map(Path::to_path_buf));
        blocking(move || {
            let existing =
                std::fs::metadata(&dest).map(|m| if m.is_file() { m.len() } else { 0 }).unwrap_or(0);
            let moved_len =
                moved.as_ref().and_then(|m| std::fs::metadata(m).ok()).map(|m| m.len()).unwrap_or(0);
            for (dir, hard, vpath) in quotas {
                let (used, _) = sh.store.usage(&dir);
                let leaving = if moved.as_ref().is_some_and(|m| m.starts_with(&dir)) { moved_len } else { 0 };
                let after = used.saturating_sub(existing).saturating_sub(leaving).saturating_add(add);
                if after > hard {
                    return Err(S3Err::new(
                        403,
                        "QuotaExceeded",
                        format!("The quota on {vpath} would be exceeded: {after} bytes > hard_limit {hard}"),
                    ));
                }
            }
            Ok(())
        })
        .await?
    }
}

/// Runs blocking file-system work off the async workers.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, S3Err> {
    tokio::task::spawn_blocking(f).await.map_err(internal)
}

pub async fn handle(sh: Arc<Shared>, req: Req) -> Result<Resp, Dropped> {
    let rid = {
        let mut st = sh.state.lock().unwrap_or_else(|e| e.into_inner());
        st.rng.string(crate::util::UPPER_ALNUM, 16)
    };
    let (latency, verdict) = sh.faults.decide(Plane::S3);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let head = req.method() == Method::HEAD;
    let resource = req.uri().path().to_string();
    let mut resp = match verdict {
        Verdict::Drop => return Err(Dropped),
        Verdict::Error => {
            S3Err::new(503, "SlowDown", "Please reduce your request rate.").into_resp(head, &resource, &rid)
        }
        Verdict::Pass => match dispatch(sh, req).await {
            Ok(r) => r,
            Err(e) => e.into_resp(head, &resource, &rid),
        },
    };
    let h = resp.headers_mut();
    h.insert("server", http::HeaderValue::from_static(SERVER));
    if let Ok(v) = http::HeaderValue::from_str(&rid) {
        h.insert("x-amz-request-id", v);
    }
    Ok(resp)
}

fn hdr<'a>(h: &'a HeaderMap, n: &str) -> Option<&'a str> {
    h.get(n).and_then(|v| v.to_str().ok())
}

/// A request whose body a handler may take (`body_mut().take()`). Whatever is left unread
/// when an error is answered gets drained first: closing a socket with unread upload data makes
/// the kernel reset the connection, and the client would see a reset instead of the S3 error.
pub type SReq = http::Request<Option<Incoming>>;

async fn dispatch(sh: Arc<Shared>, req: Req) -> Result<Resp, S3Err> {
    let mut req = req.map(Some);
    let r = route(sh, &mut req).await;
    if r.is_err() {
        if let Some(b) = req.body_mut().take() {
            drain(b).await;
        }
    }
    r
}

/// Reads and discards a request body (bounded in size and time).
async fn drain(mut body: Incoming) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut n = 0u64;
    while let Ok(Some(Ok(f))) = tokio::time::timeout_at(deadline, body.frame()).await {
        n += f.data_ref().map(|d| d.len() as u64).unwrap_or(0);
        if n > 6 << 30 {
            break;
        }
    }
}

pub fn take_body(req: &mut SReq) -> Result<Incoming, S3Err> {
    req.body_mut().take().ok_or_else(|| internal("request body already consumed"))
}

async fn route(sh: Arc<Shared>, req: &mut SReq) -> Result<Resp, S3Err> {
    let invalid_uri = || S3Err::new(400, "InvalidURI", "Couldn't parse the specified URI.");
    let raw_path = req.uri().path().to_string();
    let raw_query = req.uri().query().unwrap_or("").to_string();
    let query = parse_query(&raw_query, false).ok_or_else(invalid_uri)?;
    let path = percent_decode(&raw_path, false).ok_or_else(invalid_uri)?;
    let p = path.strip_prefix('/').ok_or_else(invalid_uri)?;
    let (bucket, key) = match p.split_once('/') {
        Some((b, k)) => (b.to_string(), k.to_string()),
        None => (p.to_string(), String::new()),
    };

    // Authenticate: SigV4 only, with keys issued through VMS.
    let sig = sigv4::parse(req.headers(), &query)?.ok_or_else(access_denied)?;
    let (secret, caller) = {
        let st = sh.state.lock().unwrap_or_else(|e| e.into_inner());
        let k = st.keys.iter().find(|k| k.access_key == sig.access_key && k.enabled).ok_or_else(|| {
            S3Err::new(
                403,
                "InvalidAccessKeyId",
                "The AWS Access Key Id you provided does not exist in our records.",
            )
            .with("AWSAccessKeyId", sig.access_key.clone())
        })?;
        let u = st.get("users", k.user_id).ok_or_else(access_denied)?;
        let caller = Caller {
            user_id: k.user_id,
            name: u.get("name").and_then(|n| n.as_str()).unwrap_or("").to_string(),
            superuser: u.get("s3_superuser").and_then(|v| v.as_bool()).unwrap_or(false),
        };
        (k.secret_key.clone(), caller)
    };
    sig.verify(&secret, req.method().as_str(), &raw_path, &raw_query, req.headers())?;

    let host = hdr(req.headers(), "host").unwrap_or("localhost").to_string();
    let ctx = Ctx { sh, caller, host };
    let has = |k: &str| query.iter().any(|(a, _)| a == k);
    // Sub-resources decide the operation; presigned-URL auth parameters do not.
    let plain = query.iter().all(|(k, _)| k.starts_with("X-Amz-") || k.starts_with("x-amz-"));
    let qv = |k: &str| query.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
    let m = req.method().clone();

    if bucket.is_empty() {
        return match m {
            Method::GET => list_buckets(&ctx),
            _ => Err(S3Err::new(
                405,
                "MethodNotAllowed",
                "The specified method is not allowed against this resource.",
            )),
        };
    }
    if key.is_empty() {
        return match m {
            Method::HEAD => ctx.bucket(&bucket).map(|_| ok_empty(200)),
            Method::GET if has("uploads") => multipart::list_uploads(&ctx, &bucket, &query),
            Method::GET if has("location") => {
                ctx.bucket(&bucket)?;
                Ok(xml_resp(
                    200,
                    format!("{}<LocationConstraint xmlns=\"{}\"></LocationConstraint>", xml::HEADER, xml::NS),
                ))
            }
            Method::GET if has("versioning") => {
                ctx.bucket(&bucket)?;
                Ok(xml_resp(200, format!("{}<VersioningConfiguration xmlns=\"{}\"/>", xml::HEADER, xml::NS)))
            }
            Method::GET => list_objects(&ctx, &bucket, &query).await,
            Method::POST if has("delete") => delete_objects(&ctx, &bucket, req, &sig).await,
            Method::PUT if plain => create_bucket(&ctx, &bucket),
            Method::DELETE if plain => delete_bucket(&ctx, &bucket).await,
            _ => Err(S3Err::new(
                501,
                "NotImplemented",
                "A header or query you provided implies functionality that is not implemented.",
            )),
        };
    }
    let upload_id = qv("uploadId");
    match (m, upload_id) {
        (Method::POST, None) if has("uploads") => multipart::create(&ctx, &bucket, &key, req.headers()),
        (Method::POST, Some(id)) => multipart::complete(&ctx, &bucket, &key, &id, req, &sig).await,
        (Method::PUT, Some(id)) => {
            let n = qv("partNumber")
                .ok_or_else(|| S3Err::new(400, "InvalidArgument", "partNumber is required"))?;
            multipart::upload_part(&ctx, &bucket, &key, &id, &n, req, &sig).await
        }
        (Method::GET, Some(id)) => multipart::list_parts(&ctx, &bucket, &key, &id, &query),
        (Method::DELETE, Some(id)) => multipart::abort(&ctx, &bucket, &key, &id).await,
        (Method::PUT, None) if req.headers().contains_key("x-amz-copy-source") => {
            copy_object(&ctx, &bucket, &key, req.headers()).await
        }
        (Method::PUT, None) => put_object(&ctx, &bucket, &key, req, &sig).await,
        (Method::GET, None) => get_object(&ctx, &bucket, &key, req.headers(), false).await,
        (Method::HEAD, None) => get_object(&ctx, &bucket, &key, req.headers(), true).await,
        (Method::DELETE, None) => delete_object(&ctx, &bucket, &key).await,
        _ => Err(S3Err::new(
            405,
            "MethodNotAllowed",
            "The specified method is not allowed against this resource.",
        )),
    }
}

fn ok_empty(status: u16) -> Resp {
    http::Response::builder().status(status).body(empty()).unwrap_or_else(|_| http::Response::new(empty()))
}

// ---------------------------------------------------------------------------------------
// Request bodies

/// Integrity checks a client asked for.
#[derive(Default, Clone)]
pub struct Checks {
    sha256: Option<[u8; 32]>,
    md5: Option<[u8; 16]>,
    crc32c: Option<u32>,
}

impl Checks {
    pub fn from(h: &HeaderMap, sig: &sigv4::SigRequest) -> Result<Checks, S3Err> {
        let mut c = Checks::default();
        if sigv4::is_sha256_hex(&sig.payload_hash) {
            let mut a = [0u8; 32];
            hex::decode_to_slice(&sig.payload_hash, &mut a)
                .map_err(|_| S3Err::new(400, "InvalidArgument", "bad x-amz-content-sha256"))?;
            c.sha256 = Some(a);
        }
        if let Some(v) = h.get("content-md5") {
            let d = v.to_str().ok().and_then(|s| B64.decode(s.trim()).ok()).filter(|d| d.len() == 16);
            let d = d.ok_or_else(|| {
                S3Err::new(400, "InvalidDigest", "The Content-MD5 you specified was invalid.")
            })?;
            c.md5 = Some(d.try_into().unwrap_or([0; 16]));
        }
        if let Some(v) = h.get("x-amz-checksum-crc32c") {
            let d = v.to_str().ok().and_then(|s| B64.decode(s.trim()).ok()).filter(|d| d.len() == 4);
            let d = d.ok_or_else(|| {
                S3Err::new(400, "InvalidRequest", "Value for x-amz-checksum-crc32c header is invalid.")
            })?;
            c.crc32c = Some(u32::from_be_bytes([d[0], d[1], d[2], d[3]]));
        }
        Ok(c)
    }
}

pub struct Received {
    pub size: u64,
    pub md5: [u8; 16],
}

struct Hashers {
    md5: Md5,
    sha: Option<Sha256>,
    crc: Option<u32>,
}

impl Hashers {
    fn new(c: &Checks) -> Self {
        Hashers { md5: Md5::new(), sha: c.sha256.map(|_| Sha256::new()), crc: c.crc32c.map(|_| 0) }
    }
    fn update(&mut self, b: &[u8]) {
        self.md5.update(b);
        if let Some(s) = &mut self.sha {
            sha2::Digest::update(s, b);
        }
        if let Some(c) = &mut self.crc {
            *c = crc32c::crc32c_append(*c, b);
        }
    }
    fn finish(self, c: &Checks) -> Result<[u8; 16], S3Err> {
        let md5: [u8; 16] = self.md5.finalize().into();
        if let (Some(s), Some(want)) = (self.sha, c.sha256) {
            let got: [u8; 32] = s.finalize().into();
            if got != want {
                return Err(S3Err::new(
                    400,
                    "XAmzContentSHA256Mismatch",
                    "The provided 'x-amz-content-sha256' header does not match what was computed.",
                ));
            }
        }
        if let Some(want) = c.md5 {
            if want != md5 {
                return Err(S3Err::new(
                    400,
                    "BadDigest",
                    "The Content-MD5 you specified did not match what we received.",
                ));
            }
        }
        if let (Some(got), Some(want)) = (self.crc, c.crc32c) {
            if got != want {
                return Err(S3Err::new(
                    400,
                    "BadDigest",
                    "The CRC32C you specified did not match the calculated checksum.",
                ));
            }
        }
        Ok(md5)
    }
}

/// The request's Content-Length (S3 requires one for uploads; aws-chunked is not supported).
pub fn content_length(h: &HeaderMap) -> Result<u64, S3Err> {
    hdr(h, "content-length")
        .ok_or_else(|| {
            S3Err::new(411, "MissingContentLength", "You must provide the Content-Length HTTP header.")
        })?
        .trim()
        .parse()
        .map_err(|_| S3Err::new(400, "InvalidArgument", "Content-Length is not a number"))
}

/// Streams a request body into `tmp`, hashing as it goes. On any failure `tmp` is removed.
pub async fn receive(body: Incoming, tmp: &Path, expect: u64, checks: &Checks) -> Result<Received, S3Err> {
    let r = receive_inner(body, tmp, expect, checks).await;
    if r.is_err() {
        let _ = tokio::fs::remove_file(tmp).await;
    }
    r
}

async fn receive_inner(
    mut body: Incoming,
    tmp: &Path,
    expect: u64,
    checks: &Checks,
) -> Result<Received, S3Err> {
    // Plain std writes inside block_in_place: tokio::fs would copy every chunk to the
    // blocking pool and back, halving upload throughput.
    let mut f = std::fs::File::create(tmp).map_err(internal)?;
    let mut h = Hashers::new(checks);
    let mut size = 0u64;
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| {
            S3Err::new(
                400,
                "IncompleteBody",
                "You did not provide the number of bytes specified by the Content-Length HTTP header.",
            )
        })?;
        if let Ok(data) = frame.into_data() {
            size += data.len() as u64;
            if size > expect {
                return Err(S3Err::new(
                    400,
                    "IncompleteBody",
                    "The request body is longer than Content-Length.",
                ));
            }
            h.update(&data);
            buf.extend_from_slice(&data);
            if buf.len() >= 1 << 20 {
                tokio::task::block_in_place(|| std::io::Write::write_all(&mut f, &buf)).map_err(internal)?;
                buf.clear();
            }
        }
    }
    if size != expect {
        return Err(S3Err::new(
            400,
            "IncompleteBody",
            "You did not provide the number of bytes specified by the Content-Length HTTP header.",
        ));
    }
    tokio::task::block_in_place(|| std::io::Write::write_all(&mut f, &buf)).map_err(internal)?;
    let md5 = h.finish(checks)?;
    Ok(Received { size, md5 })
}

/// Reads a small (XML) request body fully, enforcing the same checks.
pub async fn small_body(req: &mut SReq, sig: &sigv4::SigRequest) -> Result<String, S3Err> {
    let checks = Checks::from(req.headers(), sig)?;
    let body = http_body_util::Limited::new(take_body(req)?, 4 << 20)
        .collect()
        .await
        .map_err(|_| S3Err::new(400, "MalformedXML", "The request body could not be read or is too large"))?
        .to_bytes();
    let mut h = Hashers::new(&checks);
    h.update(&body);
    h.finish(&checks)?;
    String::from_utf8(body.to_vec())
        .map_err(|_| S3Err::new(400, "MalformedXML", "The XML you provided was not well-formed"))
}

fn user_meta(h: &HeaderMap) -> Result<Vec<(String, String)>, S3Err> {
    let mut v = Vec::new();
    let mut total = 0;
    for (k, val) in h {
        if let Some(n) = k.as_str().strip_prefix("x-amz-meta-") {
            let val = val
                .to_str()
                .map_err(|_| S3Err::new(400, "InvalidArgument", "metadata values must be ASCII"))?;
            total += n.len() + val.len();
            v.push((n.to_string(), val.to_string()));
        }
    }
    if total > MAX_META {
        return Err(S3Err::new(
            400,
            "MetadataTooLarge",
            "Your metadata headers exceed the maximum allowed metadata size.",
        )
        .with("MaxSizeAllowed", MAX_META.to_string()));
    }
    v.sort();
    Ok(v)
}

pub fn quoted_md5(m: &[u8]) -> String {
    format!("\"{}\"", hex::encode(m))
}

fn mtime(md: &std::fs::Metadata) -> Duration {
    md.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// Buckets

fn list_buckets(ctx: &Ctx) -> Result<Resp, S3Err> {
    let st = ctx.sh.state.lock().unwrap_or_else(|e| e.into_inner());
    let mut s = format!("{}<ListAllMyBucketsResult xmlns=\"{}\"><Owner>", xml::HEADER, xml::NS);
    xml::el(&mut s, "ID", &ctx.caller.user_id.to_string());
    xml::el(&mut s, "DisplayName", &ctx.caller.name);
    s.push_str("</Owner><Buckets>");
    let mut buckets: Vec<(String, String)> = st.colls["views"]
        .items
        .values()
        .filter(|v| crate::vms::state::has_protocol(v, "S3"))
        .filter(|v| {
            ctx.caller.superuser || v.get("bucket_owner").and_then(|o| o.as_str()) == Some(&ctx.caller.name)
        })
        .map(|v| {
            let name = v.get("bucket").and_then(|b| b.as_str()).unwrap_or("").to_string();
            let created = v.get("created").and_then(|c| c.as_str()).unwrap_or("").to_string();
            (name, created)
        })
        .collect();
    buckets.sort();
    for (name, created) in buckets {
        s.push_str("<Bucket>");
        xml::el(&mut s, "Name", &name);
        // DRF renders microseconds; S3 clients expect milliseconds.
        let c = if created.len() >= 23 { format!("{}Z", &created[..23]) } else { created };
        xml::el(&mut s, "CreationDate", &c);
        s.push_str("</Bucket>");
    }
    s.push_str("</Buckets></ListAllMyBucketsResult>");
    Ok(xml_resp(200, s))
}

/// S3 CreateBucket: allowed for users with `allow_create_bucket`; creates the view
/// `/<bucket>` with `s3_default_policy`, as VAST does for buckets made over S3.
fn create_bucket(ctx: &Ctx, bucket: &str) -> Result<Resp, S3Err> {
    let mut st = ctx.sh.state.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, v)) = st.bucket(bucket) {
        let mine = v.get("bucket_owner").and_then(|o| o.as_str()) == Some(&ctx.caller.name);
        return Err(if mine {
            S3Err::new(
                409,
                "BucketAlreadyOwnedByYou",
                "Your previous request to create the named bucket succeeded and you already own it.",
            )
        } else {
            S3Err::new(409, "BucketAlreadyExists", "The requested bucket name is not available.")
        });
    }
    let allowed = st
        .get("users", ctx.caller.user_id)
        .and_then(|u| u.get("allow_create_bucket"))
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    if !allowed && !ctx.caller.superuser {
        return Err(access_denied());
    }
    if !crate::vms::valid_bucket_name(bucket) {
        return Err(S3Err::new(400, "InvalidBucketName", "The specified bucket is not valid.")
            .with("BucketName", bucket));
    }
    let path = format!("/{bucket}");
    let taken =
        st.colls["views"].items.values().any(|v| v.get("path").and_then(|p| p.as_str()) == Some(&path));
    if taken {
        return Err(S3Err::new(409, "BucketAlreadyExists", "A view already uses the path of this bucket."));
    }
    let dir = ctx.sh.store.resolve(&path).ok_or_else(|| internal("path"))?;
    std::fs::create_dir_all(&dir).map_err(internal)?;
    let policy = st.colls["viewpolicies"]
        .find("name", &serde_json::json!("s3_default_policy"))
        .map(|(id, _)| id)
        .unwrap_or(1);
    st.add("views", serde_json::json!({
        "path": path, "name": bucket, "bucket": bucket, "bucket_owner": ctx.caller.name,
        "bucket_owner_type": "USER", "protocols": ["S3"], "policy_id": policy, "tenant_id": 1,
        "alias": "", "share": "", "s3_versioning": false, "locking": false, "files_retention_mode": "NONE",
    }));
    Ok(http::Response::builder()
        .status(200)
        .header("location", format!("/{bucket}"))
        .body(empty())
        .unwrap_or_else(|_| http::Response::new(empty())))
}

async fn delete_bucket(ctx: &Ctx, bucket: &str) -> Result<Resp, S3Err> {
    let b = ctx.bucket(bucket)?;
    {
        let st = ctx.sh.state.lock().unwrap_or_else(|e| e.into_inner());
        let allowed = st
            .get("users", ctx.caller.user_id)
            .and_then(|u| u.get("allow_delete_bucket"))
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        if !allowed && !ctx.caller.superuser {
            return Err(access_denied());
        }
    }
    let (sh, dir) = (ctx.sh.clone(), b.dir.clone());
    let empty_bucket = blocking(move || sh.store.list_keys(&dir, "").is_empty()).await?;
    if !empty_bucket {
        return Err(S3Err::new(409, "BucketNotEmpty", "The bucket you tried to delete is not empty")
            .with("BucketName", bucket));
    }
    let mut st = ctx.sh.state.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((id, _)) = st.bucket(bucket) {
        st.coll("views").items.remove(&id);
    }
    Ok(ok_empty(204))
}

// ---------------------------------------------------------------------------------------
// Listing

enum Entry {
    Key(String, std::fs::Metadata),
    Prefix(String),
}

fn parse_max(q: &[(String, String)], name: &str) -> Result<usize, S3Err> {
    match q.iter().find(|(k, _)| k == name) {
        None => Ok(1000),
        Some((_, v)) => v.parse::<usize>().map(|n| n.min(1000)).map_err(|_| {
            S3Err::new(
                400,
                "InvalidArgument",
                format!("Provided {name} not an integer or within integer range"),
            )
        }),
    }
}

async fn list_objects(ctx: &Ctx, bucket: &str, q: &[(String, String)]) -> Result<Resp, S3Err> {
    let b = ctx.bucket(bucket)?;
    let qv = |k: &str| q.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
    let v2 = qv("list-type").as_deref() == Some("2");
    let prefix = qv("prefix").unwrap_or_default();
    let delim = qv("delimiter").unwrap_or_default();
    let max = parse_max(q, "max-keys")?;
    let url_enc = match qv("encoding-type").as_deref() {
        None => false,
        Some("url") => true,
        Some(_) => {
            return Err(S3Err::new(400, "InvalidArgument", "Invalid Encoding Method specified in Request"))
        }
    };
    // The resume point: a key (everything <= it was listed) or a common prefix (everything
    // under it was listed). V2 tokens are opaque base64 of "K:key" / "P:prefix".
    let mut after: Option<(bool, String)> = None;
    if v2 {
        if let Some(t) = qv("continuation-token") {
            let raw = B64.decode(t.as_bytes()).ok().and_then(|d| String::from_utf8(d).ok());
            let raw = raw.ok_or_else(|| {
                S3Err::new(400, "InvalidArgument", "The continuation token provided is incorrect")
            })?;
            let bad = || S3Err::new(400, "InvalidArgument", "The continuation token provided is incorrect");
            after = Some(match (raw.strip_prefix("P:"), raw.strip_prefix("K:")) {
                (Some(p), _) => (true, p.to_string()),
                (_, Some(k)) => (false, k.to_string()),
                _ => return Err(bad()),
            });
        } else if let Some(sa) = qv("start-after") {
            after = Some((false, sa));
        }
    } else if let Some(m) = qv("marker") {
        after = Some((!delim.is_empty() && m.ends_with(&delim), m));
    }

    let (sh, dir, pfx) = (ctx.sh.clone(), b.dir.clone(), prefix.clone());
    let keys = blocking(move || sh.store.list_keys(&dir, &pfx)).await?;
    let mut entries: Vec<Entry> = Vec::new();
    let mut truncated = false;
    let mut last_prefix: Option<String> = None;
    for (key, md) in keys {
        if let Some((is_p, a)) = &after {
            if key.as_str() <= a.as_str() || (*is_p && key.starts_with(a.as_str())) {
                continue;
            }
        }
        let entry = if delim.is_empty() {
            Entry::Key(key, md)
        } else {
            match key[prefix.len()..].find(&delim) {
                Some(i) => {
                    let cp = key[..prefix.len() + i + delim.len()].to_string();
                    if last_prefix.as_deref() == Some(&cp) {
                        continue;
                    }
                    last_prefix = Some(cp.clone());
                    Entry::Prefix(cp)
                }
                None => Entry::Key(key, md),
            }
        };
        if entries.len() == max {
            truncated = true;
            break;
        }
        entries.push(entry);
    }

    // ETags (MD5 of files written outside S3 is computed here, once).
    let (sh, paths): (_, Vec<(PathBuf, std::fs::Metadata)>) = (
        ctx.sh.clone(),
        entries
            .iter()
            .filter_map(|e| match e {
                Entry::Key(k, md) => Some((b.dir.join(k), md.clone())),
                Entry::Prefix(_) => None,
            })
            .collect(),
    );
    let metas: Vec<ObjMeta> =
        blocking(move || paths.iter().map(|(p, md)| sh.store.meta(p, md)).collect()).await?;

    let enc = |s: &str| if url_enc { crate::util::aws_uri_encode(s, true) } else { s.to_string() };
    let mut s = format!("{}<ListBucketResult xmlns=\"{}\">", xml::HEADER, xml::NS);
    xml::el(&mut s, "Name", bucket);
    xml::el(&mut s, "Prefix", &enc(&prefix));
    if !delim.is_empty() {
        xml::el(&mut s, "Delimiter", &enc(&delim));
    }
    xml::el(&mut s, "MaxKeys", &max.to_string());
    if url_enc {
        xml::el(&mut s, "EncodingType", "url");
    }
    xml::el(&mut s, "IsTruncated", if truncated { "true" } else { "false" });
    let last = entries.last().map(|e| match e {
        Entry::Key(k, _) => format!("K:{k}"),
        Entry::Prefix(p) => format!("P:{p}"),
    });
    if v2 {
        xml::el(&mut s, "KeyCount", &entries.len().to_string());
        if let Some(t) = qv("continuation-token") {
            xml::el(&mut s, "ContinuationToken", &t);
        }
        if let Some(sa) = qv("start-after") {
            xml::el(&mut s, "StartAfter", &enc(&sa));
        }
        if truncated {
            if let Some(l) = &last {
                xml::el(&mut s, "NextContinuationToken", &B64.encode(l));
            }
        }
    } else {
        xml::el(&mut s, "Marker", &enc(&qv("marker").unwrap_or_default()));
        if truncated && !delim.is_empty() {
            if let Some(l) = &last {
                xml::el(&mut s, "NextMarker", &enc(&l[2..]));
            }
        }
    }
    let fetch_owner = !v2 || qv("fetch-owner").as_deref() == Some("true");
    let mut mi = metas.iter();
    for e in &entries {
        match e {
            Entry::Key(k, md) => {
                let m = mi.next().cloned().unwrap_or_default();
                s.push_str("<Contents>");
                xml::el(&mut s, "Key", &enc(k));
                xml::el(&mut s, "LastModified", &iso8601_millis(mtime(md)));
                xml::el(&mut s, "ETag", &m.etag);
                xml::el(&mut s, "Size", &md.len().to_string());
                if fetch_owner {
                    s.push_str("<Owner>");
                    xml::el(&mut s, "ID", &b.owner);
                    xml::el(&mut s, "DisplayName", &b.owner);
                    s.push_str("</Owner>");
                }
                xml::el(&mut s, "StorageClass", "STANDARD");
                s.push_str("</Contents>");
            }
            Entry::Prefix(p) => {
                s.push_str("<CommonPrefixes>");
                xml::el(&mut s, "Prefix", &enc(p));
                s.push_str("</CommonPrefixes>");
            }
        }
    }
    s.push_str("</ListBucketResult>");
    Ok(xml_resp(200, s))
}

// ---------------------------------------------------------------------------------------
// Objects

async fn put_object(
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
    let cond = WriteCond::from(&h)?;
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
    let mut rb = http::Response::builder().status(200).header("etag", etag);
    if let Some(c) = hdr(&h, "x-amz-checksum-crc32c") {
        rb = rb.header("x-amz-checksum-crc32c", c);
    }
    Ok(rb.body(empty()).unwrap_or_else(|_| http::Response::new(empty())))
}

/// Conditional-write headers of a PUT / CompleteMultipartUpload (`If-None-Match: *` creates
/// only when the key is free, `If-Match: <etag>` replaces only that version). AWS semantics;
/// whether VAST 5.3 honours them is not stated in the reference.
#[derive(Default)]
pub struct WriteCond {
    none_match: bool,
    if_match: Option<String>,
}

impl WriteCond {
    pub fn from(h: &HeaderMap) -> Result<WriteCond, S3Err> {
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

fn precondition_failed() -> S3Err {
    S3Err::new(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold")
        .with("Condition", "If-None-Match/If-Match")
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

fn conflict(e: std::io::Error) -> S3Err {
    match e.kind() {
        std::io::ErrorKind::AlreadyExists | std::io::ErrorKind::NotADirectory | std::io::ErrorKind::IsADirectory => {
            S3Err::new(409, "InvalidRequest", "The key conflicts with an existing file or directory in the view (a key cannot be both an object and a prefix of another object)")
        }
        _ => {
            if e.raw_os_error() == Some(20) || e.raw_os_error() == Some(21) || e.raw_os_error() == Some(39) {
                S3Err::new(409, "InvalidRequest", "The key conflicts with an existing file or directory in the view")
            } else {
                internal(e)
            }
        }
    }
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

fn etag_matches(list: &str, etag: &str) -> bool {
    list.split(',').map(str::trim).any(|t| t == "*" || t.trim_matches('"') == etag.trim_matches('"'))
}

async fn get_object(ctx: &Ctx, bucket: &str, key: &str, h: &HeaderMap, head: bool) -> Result<Resp, S3Err> {
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

async fn delete_object(ctx: &Ctx, bucket: &str, key: &str) -> Result<Resp, S3Err> {
    let b = ctx.bucket(bucket)?;
    let path = ctx.object_path(&b, key)?;
    remove_file(ctx, &path).await?;
    Ok(ok_empty(204))
}

/// Deletes the file at an object path; a missing key or a directory is not an error (S3
/// DeleteObject is idempotent).
async fn remove_file(ctx: &Ctx, path: &Path) -> Result<(), S3Err> {
    let p = path.to_path_buf();
    let r = blocking(move || match std::fs::symlink_metadata(&p) {
        Ok(md) if md.is_file() => std::fs::remove_file(&p),
        _ => Ok(()),
    })
    .await?;
    r.map_err(internal)?;
    ctx.sh.store.forget(path);
    Ok(())
}

async fn delete_objects(
    ctx: &Ctx,
    bucket: &str,
    req: &mut SReq,
    sig: &sigv4::SigRequest,
) -> Result<Resp, S3Err> {
    let b = ctx.bucket(bucket)?;
    let doc = small_body(req, sig).await?;
    let malformed = || {
        S3Err::new(
            400,
            "MalformedXML",
            "The XML you provided was not well-formed or did not validate against our published schema",
        )
    };
    if xml::children(&doc, "Delete").is_empty() {
        return Err(malformed());
    }
    let quiet = xml::text(&doc, "Quiet").is_some_and(|q| q == "true");
    let objs = xml::children(&doc, "Object");
    if objs.is_empty() || objs.len() > 1000 {
        return Err(malformed());
    }
    let mut s = format!("{}<DeleteResult xmlns=\"{}\">", xml::HEADER, xml::NS);
    for o in objs {
        let key = xml::text(o, "Key").ok_or_else(malformed)?;
        let r = match ctx.object_path(&b, &key) {
            Ok(p) => remove_file(ctx, &p).await,
            Err(e) => Err(e),
        };
        match r {
            Ok(()) if !quiet => {
                s.push_str("<Deleted>");
                xml::el(&mut s, "Key", &key);
                s.push_str("</Deleted>");
            }
            Ok(()) => {}
            Err(e) => {
                s.push_str("<Error>");
                xml::el(&mut s, "Key", &key);
                xml::el(&mut s, "Code", &e.code);
                xml::el(&mut s, "Message", &e.message);
                s.push_str("</Error>");
            }
        }
    }
    s.push_str("</DeleteResult>");
    Ok(xml_resp(200, s))
}

/// Parses `x-amz-copy-source` (`bucket/key` or `/bucket/key`, URL-encoded, optional
/// `?versionId=`) into the source file, after checking read access to its bucket.
pub fn copy_source(ctx: &Ctx, h: &HeaderMap) -> Result<(Bucket, String, PathBuf), S3Err> {
    let raw = hdr(h, "x-amz-copy-source").unwrap_or("");
    let raw = raw
        .split_once('?')
        .map(|(a, v)| {
            let _ = v;
            a
        })
        .unwrap_or(raw);
    let dec = percent_decode(raw, false).ok_or_else(|| {
        S3Err::new(
            400,
            "InvalidArgument",
            "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
        )
    })?;
    let dec = dec.strip_prefix('/').unwrap_or(&dec);
    let (sb, sk) = dec.split_once('/').filter(|(b, k)| !b.is_empty() && !k.is_empty()).ok_or_else(|| {
        S3Err::new(
            400,
            "InvalidArgument",
            "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
        )
    })?;
    let b = ctx.bucket(sb)?;
    let p = ctx.object_path(&b, sk)?;
    if !std::fs::metadata(&p).map(|m| m.is_file()).unwrap_or(false) {
        return Err(no_such_key(sk));
    }
    Ok((b, sk.to_string(), p))
}

async fn copy_object(ctx: &Ctx, bucket: &str, key: &str, h: &HeaderMap) -> Result<Resp, S3Err> {
    let b = ctx.bucket(bucket)?;
    let dest = ctx.object_path(&b, key)?;
    let (_, _, src) = copy_source(ctx, h)?;
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
        commit(ctx, &tmp, &dest, src_md.len(), None, new_meta, &WriteCond::from(h)?).await?;
    }
    let md = std::fs::metadata(&dest).map_err(internal)?;
    let (sh, d2, md2) = (ctx.sh.clone(), dest.clone(), md.clone());
    let m = blocking(move || sh.store.meta(&d2, &md2)).await?;
    let mut s = format!("{}<CopyObjectResult xmlns=\"{}\">", xml::HEADER, xml::NS);
    xml::el(&mut s, "LastModified", &iso8601_millis(mtime(&md)));
    xml::el(&mut s, "ETag", &m.etag);
    s.push_str("</CopyObjectResult>");
    Ok(xml_resp(200, s))
}

pub fn now_iso() -> String {
    iso8601_millis(unix_now())
}

pub fn esc(s: &str) -> String {
    xml_escape(s)
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
