//! One S3 request, signed and sent: rusty-s3 presigns (SigV4 in the query string, payload
//! `UNSIGNED-PAYLOAD`, every header we send signed), the engine's one ureq agent carries it,
//! and this file owns what rusty-s3 leaves to its user: endpoint choice, retries, status and
//! error-body handling, body-size limits.
//!
//! Every action goes through [`rusty_s3::signing::sign`], the primitive rusty-s3's own actions
//! use, so actions rusty-s3 does not have (ListBuckets, ListMultipartUploads, CopyObject,
//! UploadPartCopy, DeleteObjects without its `full` feature) are signed the same way as the
//! ones it has.

use std::cell::Cell;
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rusty_s3::{Bucket, Method, UrlStyle};
use tracing::{info, warn};
use ureq::http::HeaderMap;
use ureq::Body;
use url::Url;

use crate::error::{Error, ErrorKind, Result};
use crate::http::{transport_error, TlsSettings};
use crate::retry::RetryPolicy;

/// Presigned URLs are made right before each attempt: they only need to outlive the request.
const SIGN_EXPIRY_SECS: u64 = 3600;
/// Error bodies are small XML documents; anything bigger is cut.
const MAX_ERROR_BODY: u64 = 64 << 10;
/// A failed endpoint is skipped by new requests for this long, then probed.
const ENDPOINT_PENALTY: Duration = Duration::from_secs(15);
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

struct Endpoint {
    url: Url,
    /// Milliseconds since `Client::epoch` until which the endpoint is skipped.
    bad_until: AtomicU64,
    /// Failed, and not yet seen answering again: re-admitted only after a probe connects.
    down: AtomicBool,
}

pub struct Client {
    /// Rebuilt in a forked child (see `http::Http`).
    http: crate::http::Http,
    endpoints: Vec<Endpoint>,
    next: AtomicUsize,
    epoch: Instant,
    region: String,
    access_key: String,
    secret_key: String,
    pub(crate) retry: RetryPolicy,
}

/// A request, before signing. `bucket: None` is the service (ListBuckets).
pub struct Req<'a> {
    pub method: Method,
    pub bucket: Option<&'a str>,
    pub key: Option<&'a str>,
    /// Query parameters, raw (signing percent-encodes them).
    pub query: Vec<(&'static str, String)>,
    /// Header names in lowercase; all of them are signed.
    pub headers: Vec<(&'static str, String)>,
    pub body: &'a [u8],
}

impl<'a> Req<'a> {
    pub fn new(method: Method, bucket: &'a str, key: Option<&'a str>) -> Req<'a> {
        Req { method, bucket: Some(bucket), key, query: Vec::new(), headers: Vec::new(), body: &[] }
    }
    pub fn query(mut self, k: &'static str, v: impl Into<String>) -> Self {
        self.query.push((k, v.into()));
        self
    }
    pub fn header(mut self, k: &'static str, v: impl Into<String>) -> Self {
        self.headers.push((k, v.into()));
        self
    }
    pub fn body(mut self, b: &'a [u8]) -> Self {
        self.body = b;
        self
    }
}

/// A response with a 2xx status.
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Body,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The whole body as text, at most `limit` bytes (more is an error, not a cut).
    pub fn text(&mut self, what: &str, limit: u64) -> Result<String> {
        let bytes = self.bytes(what, limit)?;
        String::from_utf8(bytes)
            .map_err(|_| Error::new(ErrorKind::Io, format!("{what}: response is not UTF-8")))
    }

    pub fn bytes(&mut self, what: &str, limit: u64) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut r = self.body.as_reader().take(limit + 1);
        r.read_to_end(&mut out).map_err(|e| body_error(what, e))?;
        if out.len() as u64 > limit {
            return Err(Error::new(
                ErrorKind::TooLong,
                format!("{what}: response body is over {limit} bytes"),
            ));
        }
        Ok(out)
    }

    /// Read exactly `buf.len()` bytes of body into `buf` (no intermediate buffer); stop early
    /// with an error when `cancel` is set.
    pub fn read_into(&mut self, what: &str, buf: &mut [u8], cancel: Option<&AtomicBool>) -> Result<()> {
        let mut r = self.body.as_reader();
        let mut done = 0;
        while done < buf.len() {
            if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                return Err(Error::new(ErrorKind::State, format!("{what}: cancelled")));
            }
            match r.read(&mut buf[done..]) {
                Ok(0) => {
                    return Err(Error::new(
                        ErrorKind::Network,
                        format!("{what}: body ended after {done} of {} bytes", buf.len()),
                    ))
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(body_error(what, e)),
            }
        }
        Ok(())
    }
}

fn body_error(what: &str, e: std::io::Error) -> Error {
    // ureq reports transport problems while reading a body as io errors (timeouts, resets).
    Error::new(ErrorKind::Network, format!("{what}: reading response: {e}"))
}

/// A failed attempt: the error and whether trying again may help.
pub struct Failure {
    pub err: Error,
    pub retry: bool,
}

impl From<Error> for Failure {
    /// Errors made locally (parsing a 2xx body, ...) are retried only when they are
    /// transport errors.
    fn from(err: Error) -> Self {
        let retry = matches!(err.kind(), ErrorKind::Network | ErrorKind::Connect);
        Failure { err, retry }
    }
}

impl Client {
    pub fn new(
        endpoints: &[String],
        region: &str,
        access_key: &str,
        secret_key: &str,
        tls: &TlsSettings,
        timeout: Duration,
        retry: RetryPolicy,
    ) -> Result<Client> {
        if endpoints.is_empty() {
            return Err(Error::config(
                "S3: no endpoint configured (endpoints = [\"http://host:port\", ...])",
            ));
        }
        let mut eps = Vec::new();
        for e in endpoints {
            let url: Url = e.parse().map_err(|err| Error::config(format!("S3 endpoint '{e}': {err}")))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(Error::config(format!("S3 endpoint '{e}' must be http(s)://host[:port]")));
            }
            if url.query().is_some() || !url.username().is_empty() || url.password().is_some() {
                return Err(Error::config(format!(
                    "S3 endpoint '{e}' must not carry a query or credentials (use access_key/secret_key)"
                )));
            }
            eps.push(Endpoint { url, bad_until: AtomicU64::new(0), down: AtomicBool::new(false) });
        }
        if tls.insecure && eps.iter().any(|e| e.url.scheme() == "https") {
            warn!("S3: TLS certificate verification is disabled (insecure = true)");
        }
        Ok(Client {
            http: crate::http::Http::new(tls, timeout)?,
            endpoints: eps,
            next: AtomicUsize::new(0),
            epoch: Instant::now(),
            region: region.to_string(),
            access_key: access_key.to_string(),
            secret_key: secret_key.to_string(),
            retry,
        })
    }

    /// The endpoint a new stream (one piece) starts on: round-robin over the endpoints.
    pub fn pick(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed) % self.endpoints.len()
    }

    pub fn endpoint(&self, i: usize) -> &str {
        self.endpoints[i % self.endpoints.len()].url.as_str()
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// `preferred`, unless it failed recently: then the next one that did not. An endpoint
    /// whose penalty ran out comes back only when a probe reaches it.
    fn usable(&self, preferred: usize) -> usize {
        let n = self.endpoints.len();
        for i in (0..n).map(|d| (preferred + d) % n) {
            let ep = &self.endpoints[i];
            if ep.bad_until.load(Ordering::Relaxed) > self.now_ms() {
                continue;
            }
            if !ep.down.load(Ordering::Relaxed) || self.probe(i) {
                return i;
            }
        }
        preferred % n
    }

    /// A TCP connect to a down endpoint: re-admits it if it answers, else extends its penalty.
    fn probe(&self, i: usize) -> bool {
        let ep = &self.endpoints[i];
        let addr = ep.url.socket_addrs(|| None).ok().and_then(|a| a.into_iter().next());
        let ok = addr.is_some_and(|a| std::net::TcpStream::connect_timeout(&a, PROBE_TIMEOUT).is_ok());
        if ok {
            ep.down.store(false, Ordering::Relaxed);
            info!("S3 endpoint {} answers again: back in use", ep.url);
        } else {
            self.penalize(i);
        }
        ok
    }

    fn penalize(&self, i: usize) {
        let ep = &self.endpoints[i];
        if self.endpoints.len() > 1 && !ep.down.swap(true, Ordering::Relaxed) {
            warn!("S3 endpoint {} failed; its streams move to the others until a probe reaches it", ep.url);
        }
        ep.down.store(true, Ordering::Relaxed);
        let until = self.now_ms() + ENDPOINT_PENALTY.as_millis() as u64;
        ep.bad_until.store(until, Ordering::Relaxed);
    }

    fn url(&self, ep: usize, req: &Req<'_>) -> Result<Url> {
        let base = self.endpoints[ep].url.clone();
        let Some(bucket) = req.bucket else { return Ok(base) };
        let b = Bucket::new(base, UrlStyle::Path, bucket.to_string(), self.region.clone())
            .map_err(|e| Error::invalid(format!("S3 bucket '{bucket}': {e}")))?;
        Ok(match req.key {
            Some(k) => b.object_url(k),
            None => b.base_url().clone(),
        })
    }

    /// One attempt: sign, send, and turn a non-2xx answer into a [`Failure`].
    pub fn send(&self, preferred: usize, req: &Req<'_>, what: &str) -> Result<Resp, Failure> {
        let ep = self.usable(preferred);
        let url = self.url(ep, req)?;
        let mut query: Vec<(&str, &str)> = req.query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        query.sort_unstable();
        let mut headers: Vec<(&str, &str)> = req.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        headers.sort_unstable();
        let signed = rusty_s3::signing::sign(
            &jiff::Timestamp::now(),
            req.method,
            url,
            &self.access_key,
            &self.secret_key,
            None,
            &self.region,
            SIGN_EXPIRY_SECS,
            query.iter().copied(),
            headers.iter().copied(),
        );
        let uri = signed.as_str();
        let res = match req.method {
            Method::Get | Method::Head | Method::Delete => {
                let mut b = match req.method {
                    Method::Get => self.http.agent().get(uri),
                    Method::Head => self.http.agent().head(uri),
                    _ => self.http.agent().delete(uri),
                };
                for (k, v) in &headers {
                    b = b.header(*k, *v);
                }
                b.call()
            }
            Method::Put | Method::Post => {
                let mut b = if req.method == Method::Put {
                    self.http.agent().put(uri)
                } else {
                    self.http.agent().post(uri)
                };
                for (k, v) in &headers {
                    b = b.header(*k, *v);
                }
                // A slice body always gets its Content-Length, 0 included (radosgw answers
                // 411 to UploadPartCopy and CompleteMultipartUpload without one).
                b.send(req.body)
            }
        };
        let resp = match res {
            Ok(r) => r,
            Err(e) => {
                let err = transport_error(&format!("{what} ({})", self.endpoints[ep].url), e);
                let retry = matches!(err.kind(), ErrorKind::Network | ErrorKind::Connect);
                if retry {
                    self.penalize(ep);
                }
                return Err(Failure { err, retry });
            }
        };
        let status = resp.status().as_u16();
        let (parts, mut body) = resp.into_parts();
        if (200..300).contains(&status) {
            return Ok(Resp { status, headers: parts.headers, body });
        }
        let mut text = String::new();
        if req.method != Method::Head {
            let _ = body.as_reader().take(MAX_ERROR_BODY).read_to_string(&mut text);
        }
        let code = xml_first(&text, "Code").map(unescape).unwrap_or_default();
        let msg = xml_first(&text, "Message").map(unescape).unwrap_or_default();
        Err(status_failure(what, status, &code, &msg, &parts.headers))
    }

    /// Run `attempt` under the retry policy: it sends the request (see [`Client::send`]) and
    /// reads what it needs of the answer. Failures that say so are tried again.
    pub fn run<T>(&self, mut attempt: impl FnMut(u32) -> Result<T, Failure>) -> Result<T> {
        let retry = Cell::new(false);
        self.retry.run(
            |n| {
                attempt(n).map_err(|f| {
                    retry.set(f.retry);
                    f.err
                })
            },
            |_| retry.get(),
        )
    }

    /// The usual case: send `req` (rebuilt per attempt), and hand a 2xx answer to `read`.
    pub fn call<'r, T>(
        &self,
        ep: usize,
        what: &str,
        req: impl Fn() -> Req<'r>,
        mut read: impl FnMut(Resp) -> Result<T, Failure>,
    ) -> Result<T> {
        self.run(|_| {
            let r = req();
            let resp = self.send(ep, &r, what)?;
            read(resp)
        })
    }
}

/// What an S3 error answer means, and whether it is worth another attempt.
pub fn status_failure(what: &str, status: u16, code: &str, msg: &str, headers: &HeaderMap) -> Failure {
    use ErrorKind::*;
    let (kind, retry) = match (status, code) {
        (_, "SlowDown") | (429, _) | (503, _) => (Busy, true),
        (400, "RequestTimeout") | (400, "IncompleteBody") => (Network, true),
        // The bytes changed on the way: send them again.
        (400, "BadDigest") | (400, "XAmzContentChecksumMismatch") | (400, "InvalidDigest") => (Corrupt, true),
        (400, "EntityTooSmall") => (Config, false),
        (401, _) => (Auth, false),
        (403, "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "RequestTimeTooSkewed" | "ExpiredToken") => {
            (Auth, false)
        }
        (403, "QuotaExceeded") | (507, _) | (_, "QuotaExceeded") => (NoSpace, false),
        (403, _) => (Access, false),
        (404, _) => (NotFound, false),
        (409, _) => (Busy, false),
        (412, _) => (AlreadyExists, false),
        (416, _) => (InvalidArgument, false),
        (501, _) => (NotSupported, false),
        (500..=599, _) => (Io, true),
        _ => (Io, false),
    };
    let server = headers
        .get("server")
        .and_then(|v| v.to_str().ok())
        .map(|s| format!(", server {s}"))
        .unwrap_or_default();
    let detail = match (code.is_empty(), msg.is_empty()) {
        (true, _) => String::new(),
        (false, true) => format!(" {code}"),
        (false, false) => format!(" {code}: {msg}"),
    };
    let hint = match kind {
        Auth => " (check access_key/secret_key and the clock)",
        Config if code == "EntityTooSmall" => " (part_size is below the server's minimum part size)",
        _ => "",
    };
    Failure { err: Error::new(kind, format!("{what}: HTTP {status}{detail}{server}{hint}")), retry }
}

/// Inner text of the first `<tag>` element (not unescaped); `<tag/>` is "".
pub fn xml_first<'a>(doc: &'a str, tag: &str) -> Option<&'a str> {
    xml_all(doc, tag).next()
}

/// Inner text of every `<tag>` element, in order (same-name elements must not nest, which
/// holds for every S3 response read here).
pub fn xml_all<'a, 't>(doc: &'a str, tag: &'t str) -> impl Iterator<Item = &'a str> + 't
where
    'a: 't,
{
    let mut rest = doc;
    std::iter::from_fn(move || loop {
        let i = rest.find('<')?;
        rest = &rest[i + 1..];
        let Some(after) = rest.strip_prefix(tag) else { continue };
        let c = after.chars().next()?;
        if c == '/' && after[1..].starts_with('>') {
            rest = &after[2..];
            return Some("");
        }
        if c != '>' && !c.is_whitespace() {
            continue; // a longer tag name with the same start
        }
        let gt = after.find('>')?;
        if after[..gt].ends_with('/') {
            rest = &after[gt + 1..];
            return Some("");
        }
        let body = &after[gt + 1..];
        let close = format!("</{tag}>");
        let end = body.find(&close)?;
        rest = &body[end + close.len()..];
        return Some(&body[..end]);
    })
}

/// XML text to a string: the five entities and numeric character references.
pub fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(semi) = rest.find(';') else { break };
        let ent = &rest[1..semi];
        let ch = match ent {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ if ent.starts_with("#x") => u32::from_str_radix(&ent[2..], 16).ok().and_then(char::from_u32),
            _ if ent.starts_with('#') => ent[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match ch {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Text for an XML element body.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// A 200 answer can still carry an error (CompleteMultipartUpload, CopyObject, UploadPartCopy
/// report failures found after the status line went out this way).
pub fn embedded_error(what: &str, body: &str) -> Option<Failure> {
    let start = body.trim_start_matches(|c: char| c.is_whitespace());
    let start = match start.strip_prefix("<?xml") {
        Some(r) => r.split_once("?>").map_or("", |(_, r)| r).trim_start(),
        None => start,
    };
    if !start.starts_with("<Error>") && !start.starts_with("<Error ") {
        return None;
    }
    let code = xml_first(body, "Code").map(unescape).unwrap_or_default();
    let msg = xml_first(body, "Message").map(unescape).unwrap_or_default();
    // "InternalError" and "SlowDown" this way are as transient as their 5xx forms.
    let status = match code.as_str() {
        "InternalError" => 500,
        "SlowDown" | "ServiceUnavailable" => 503,
        "NoSuchUpload" | "NoSuchKey" | "NoSuchBucket" => 404,
        _ => 400,
    };
    let mut f =
        status_failure(&format!("{what} (error in a 200 answer)"), status, &code, &msg, &HeaderMap::new());
    if status == 400 {
        f.retry = false;
    }
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A failed endpoint stays out until a probe reaches it, then comes back.
    #[test]
    fn down_endpoint_is_readmitted_after_a_probe() {
        let live = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let eps = [live.local_addr().unwrap(), other.local_addr().unwrap()].map(|a| format!("http://{a}"));
        let c = Client::new(
            &eps,
            "us-east-1",
            "k",
            "s",
            &TlsSettings::default(),
            Duration::from_secs(5),
            RetryPolicy::default(),
        )
        .unwrap();
        c.penalize(0);
        assert_eq!(c.usable(0), 1, "skipped while penalized");
        c.endpoints[0].bad_until.store(0, Ordering::Relaxed);
        assert_eq!(c.usable(0), 0, "the probe connects: back in use");
        assert!(!c.endpoints[0].down.load(Ordering::Relaxed));
        drop(live);
        c.penalize(0);
        c.endpoints[0].bad_until.store(0, Ordering::Relaxed);
        assert_eq!(c.usable(0), 1, "the probe fails: the streams stay on the other endpoint");
        assert!(
            c.endpoints[0].down.load(Ordering::Relaxed)
                && c.endpoints[0].bad_until.load(Ordering::Relaxed) > 0
        );
    }

    #[test]
    fn xml_extraction() {
        let doc = r#"<?xml version="1.0"?><ListBucketResult><Prefix>a</Prefix><KeyCount>2</KeyCount>
            <Contents><Key>a/b&amp;c</Key><Size>3</Size></Contents><Contents><Key>x</Key></Contents>
            <CommonPrefixes><Prefix>img/</Prefix></CommonPrefixes><Delimiter/><IsTruncated>false</IsTruncated></ListBucketResult>"#;
        let keys: Vec<_> = xml_all(doc, "Contents").map(|c| unescape(xml_first(c, "Key").unwrap())).collect();
        assert_eq!(keys, vec!["a/b&c", "x"]);
        assert_eq!(xml_first(doc, "Key"), Some("a/b&amp;c"), "KeyCount is not Key");
        assert_eq!(xml_first(doc, "Delimiter"), Some(""));
        assert_eq!(xml_first(doc, "IsTruncated"), Some("false"));
        assert_eq!(xml_first(doc, "Nope"), None);
        let cp: Vec<_> = xml_all(doc, "CommonPrefixes").filter_map(|c| xml_first(c, "Prefix")).collect();
        assert_eq!(cp, vec!["img/"]);
        assert_eq!(unescape("&quot;e&#116;ag&#x21;&quot; &bogus; &"), "\"etag!\" &bogus; &");
        assert_eq!(escape("<a&'\">"), "&lt;a&amp;&apos;&quot;&gt;");
    }

    #[test]
    fn errors_in_200_answers() {
        assert!(embedded_error("x", "<?xml version=\"1.0\"?>\n<CompleteMultipartUploadResult/>").is_none());
        let f = embedded_error("x", "<?xml version=\"1.0\"?>\n\n  <Error><Code>InternalError</Code></Error>")
            .unwrap();
        assert!(f.retry);
        let f = embedded_error("x", "<Error><Code>InvalidPart</Code><Message>m</Message></Error>").unwrap();
        assert!(!f.retry);
        assert!(f.err.message().contains("InvalidPart: m"), "{}", f.err);
    }

    #[test]
    fn status_mapping() {
        let h = HeaderMap::new();
        let k = |s, c| {
            let f = status_failure("w", s, c, "", &h);
            (f.err.kind(), f.retry)
        };
        assert_eq!(k(503, "SlowDown"), (ErrorKind::Busy, true));
        assert_eq!(k(500, "InternalError"), (ErrorKind::Io, true));
        assert_eq!(k(404, "NoSuchKey"), (ErrorKind::NotFound, false));
        assert_eq!(k(403, "AccessDenied"), (ErrorKind::Access, false));
        assert_eq!(k(403, "SignatureDoesNotMatch"), (ErrorKind::Auth, false));
        assert_eq!(k(403, "QuotaExceeded"), (ErrorKind::NoSpace, false));
        assert_eq!(k(412, "PreconditionFailed"), (ErrorKind::AlreadyExists, false));
        assert_eq!(k(400, "InvalidArgument"), (ErrorKind::Io, false));
        assert_eq!(k(400, "RequestTimeout"), (ErrorKind::Network, true));
    }
}
