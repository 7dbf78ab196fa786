//! One S3 request, signed and sent: rusty-s3 presigns (SigV4 in the query string, payload
//! `UNSIGNED-PAYLOAD`, every header we send signed), [`super::wire`] carries it to an `http`
//! endpoint (kept-alive connections, bodies read straight into the caller's buffer) and the
//! engine's ureq agent to an `https` one, and this file owns what rusty-s3 leaves to its user: retries, status and error-body
//! handling (the server's answer is kept in the error), body-size limits. Which VIP a request
//! goes to is [`super::endpoints`]' job. One job (one request, start to end), long for its
//! error mapping.
//!
//! Every action goes through [`rusty_s3::signing::sign`], the primitive rusty-s3's own actions
//! use, so actions rusty-s3 does not have (ListBuckets, ListMultipartUploads, CopyObject,
//! UploadPartCopy, DeleteObjects without its `full` feature) are signed the same way as the
//! ones it has.

use std::cell::Cell;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rusty_s3::{Bucket, Method, UrlStyle};
use tracing::warn;
use ureq::http::HeaderMap;
use url::Url;

use super::endpoints::Endpoints;
use super::wire::{self, Wire};
use super::xml::{self, ErrorDoc};
use crate::error::{Error, ErrorKind, Remote, Result};
use crate::http::{transport_error, TlsSettings};
use crate::retry::RetryPolicy;

/// Presigned URLs are made right before each attempt: they only need to outlive the request.
const SIGN_EXPIRY_SECS: u64 = 3600;
/// Error bodies are small XML documents; anything bigger is cut.
const MAX_ERROR_BODY: u64 = 64 << 10;

pub struct Client {
    /// Rebuilt in a forked child (see `http::Http`).
    http: crate::http::Http,
    /// Plain-TCP connections to `http` endpoints.
    wire: Wire,
    endpoints: Endpoints,
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
    /// Conditions (`if-none-match`, `if-match`), sent unsigned: SigV4 does not require it, the
    /// payload is unsigned anyway, and a test proxy can then take them away to act as a server
    /// that ignores them.
    pub conditions: Vec<(&'static str, String)>,
    pub body: &'a [u8],
    /// A limit for this request shorter than the client's.
    pub timeout: Option<Duration>,
}

impl<'a> Req<'a> {
    pub fn new(method: Method, bucket: &'a str, key: Option<&'a str>) -> Req<'a> {
        Req { bucket: Some(bucket), key, ..Req::service(method) }
    }
    /// A request to the service itself (ListBuckets).
    pub fn service(method: Method) -> Req<'a> {
        Req {
            method,
            bucket: None,
            key: None,
            query: Vec::new(),
            headers: Vec::new(),
            conditions: Vec::new(),
            body: &[],
            timeout: None,
        }
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

/// A response body: read from the socket as asked for ([`wire`]), or through ureq (https).
pub enum Body {
    Wire(Box<wire::Response>),
    Ureq(ureq::Body),
}

impl Body {
    fn reader(&mut self) -> Box<dyn Read + '_> {
        match self {
            Body::Wire(r) => Box::new(r),
            Body::Ureq(b) => Box::new(b.as_reader()),
        }
    }
}

/// A request sent whose answer is not read yet ([`Client::start`], [`Client::finish`]).
pub struct Pending {
    ep: usize,
    what: String,
    head: bool,
    sent: Result<Sent, ureq::Error>,
}

enum Sent {
    Wire(wire::Sent),
    /// ureq sends and reads the answer's head in one call.
    Ureq(ureq::http::Response<ureq::Body>),
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
        let mut r = self.body.reader().take(limit + 1);
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
        let mut r = self.body.reader();
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

    /// Read some body bytes into `buf` (0: the body has ended): straight from the socket on
    /// `http`. A failure is a transport error, worth asking again.
    pub fn read_some(&mut self, what: impl FnOnce() -> String, buf: &mut [u8]) -> Result<usize> {
        let mut r = self.body.reader();
        loop {
            match r.read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(body_error(&what(), e)),
            }
        }
    }

    /// Read what is left of a body whose expected bytes are all in (at most `MAX_ERROR_BODY`):
    /// ureq returns a connection to its pool only once it has seen the body's end.
    pub fn finish(&mut self) {
        if let Body::Ureq(b) = &mut self.body {
            let _ = std::io::copy(&mut b.as_reader().take(MAX_ERROR_BODY), &mut std::io::sink());
        }
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
        let endpoints = Endpoints::new(endpoints)?;
        if tls.insecure && endpoints.any_https() {
            warn!("S3: TLS certificate verification is disabled (insecure = true)");
        }
        Ok(Client {
            http: crate::http::Http::new(tls, timeout)?,
            wire: Wire::new(timeout),
            endpoints,
            region: region.to_string(),
            access_key: access_key.to_string(),
            secret_key: secret_key.to_string(),
            retry,
        })
    }

    /// The endpoint a new stream (one piece) starts on: round-robin over the endpoints.
    pub fn pick(&self) -> usize {
        self.endpoints.pick()
    }

    pub fn endpoint(&self, i: usize) -> &str {
        self.endpoints.endpoint(i)
    }

    fn url(&self, ep: usize, req: &Req<'_>) -> Result<Url> {
        let base = self.endpoints.url(ep).clone();
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
        let p = self.start(preferred, req, what)?;
        self.finish(p)
    }

    /// Sign and send `req`; its answer is read by [`Client::finish`]. On an `http` endpoint
    /// the request is only written, so several can be outstanding on their connections.
    pub fn start(&self, preferred: usize, req: &Req<'_>, what: &str) -> Result<Pending, Failure> {
        let ep = self.endpoints.usable(preferred);
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
        let what = what.to_string();
        let head = req.method == Method::Head;
        let all = || headers.iter().copied().chain(req.conditions.iter().map(|(k, v)| (*k, v.as_str())));
        if signed.scheme() == "http" {
            let host = signed.host_str().unwrap_or_default();
            let port = signed.port_or_known_default().unwrap_or(80);
            let addr = format!("{host}:{port}");
            let host = match signed.port() {
                Some(p) => format!("{host}:{p}"),
                None => host.to_string(),
            };
            let target = match signed.query() {
                Some(q) => format!("{}?{q}", signed.path()),
                None => signed.path().to_string(),
            };
            let hs: Vec<(&str, &str)> = all().collect();
            let wreq = wire::Request {
                method: req.method.to_str(),
                addr: &addr,
                host: &host,
                target: &target,
                headers: &hs,
                // A slice body always gets its Content-Length, 0 included (radosgw answers
                // 411 to UploadPartCopy and CompleteMultipartUpload without one).
                body: matches!(req.method, Method::Put | Method::Post).then_some(req.body),
                timeout: req.timeout.unwrap_or(Duration::MAX),
            };
            return match self.wire.send(&wreq) {
                Ok(sent) => Ok(Pending { ep, what, head, sent: Ok(Sent::Wire(sent)) }),
                Err(e) => Err(self.transport_failure(ep, &what, ureq::Error::Io(e))),
            };
        }
        let uri = signed.as_str();
        let res = match req.method {
            Method::Get | Method::Head | Method::Delete => {
                let mut b = match req.method {
                    Method::Get => self.http.agent().get(uri),
                    Method::Head => self.http.agent().head(uri),
                    _ => self.http.agent().delete(uri),
                };
                for (k, v) in all() {
                    b = b.header(k, v);
                }
                if let Some(t) = req.timeout {
                    b = b.config().timeout_global(Some(t)).build();
                }
                b.call()
            }
            Method::Put | Method::Post => {
                let mut b = if req.method == Method::Put {
                    self.http.agent().put(uri)
                } else {
                    self.http.agent().post(uri)
                };
                for (k, v) in all() {
                    b = b.header(k, v);
                }
                if let Some(t) = req.timeout {
                    b = b.config().timeout_global(Some(t)).build();
                }
                b.send(req.body)
            }
        };
        Ok(Pending { ep, what, head, sent: res.map(Sent::Ureq) })
    }

    fn transport_failure(&self, ep: usize, what: &str, e: ureq::Error) -> Failure {
        let err = transport_error(&format!("{what} ({})", self.endpoints.url(ep)), e);
        let retry = matches!(err.kind(), ErrorKind::Network | ErrorKind::Connect);
        if retry {
            self.endpoints.penalize(ep);
        }
        Failure { err, retry }
    }

    /// Read the answer to a request [`Client::start`] sent: a 2xx answer with its body still
    /// to read, or the failure it means.
    pub fn finish(&self, p: Pending) -> Result<Resp, Failure> {
        let Pending { ep, what, head, sent } = p;
        let (status, headers, mut body) = match sent {
            Ok(Sent::Wire(w)) => match w.response(&self.wire) {
                Ok(r) => (r.status, r.headers.clone(), Body::Wire(Box::new(r))),
                Err(e) => return Err(self.transport_failure(ep, &what, ureq::Error::Io(e))),
            },
            Ok(Sent::Ureq(r)) => {
                let (parts, body) = r.into_parts();
                (parts.status.as_u16(), parts.headers, Body::Ureq(body))
            }
            Err(e) => return Err(self.transport_failure(ep, &what, e)),
        };
        if (200..300).contains(&status) {
            return Ok(Resp { status, headers, body });
        }
        let mut text = String::new();
        if !head {
            let _ = body.reader().take(MAX_ERROR_BODY).read_to_string(&mut text);
        }
        // A body that is not S3 XML (a proxy's HTML page) still fails by its status.
        let doc: ErrorDoc = quick_xml::de::from_str(&text).unwrap_or_default();
        Err(status_failure(&what, status, doc, &headers))
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
pub fn status_failure(what: &str, status: u16, doc: ErrorDoc, headers: &HeaderMap) -> Failure {
    use ErrorKind::*;
    let code = doc.code.as_str();
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
    let detail = match (code.is_empty(), doc.message.is_empty()) {
        (true, _) => String::new(),
        (false, true) => format!(" {code}"),
        (false, false) => format!(" {code}: {}", doc.message),
    };
    let hint = match kind {
        Auth => " (check access_key/secret_key and the clock)",
        Config if code == "EntityTooSmall" => " (part_size is below the server's minimum part size)",
        _ => "",
    };
    let msg = format!("{what}: HTTP {status}{detail}{server}{hint}");
    let remote = Remote { status, code: doc.code, argument: doc.argument_name.or(doc.header) };
    Failure { err: Error::remote(kind, msg, remote), retry }
}

/// A 200 answer can still carry an error (CompleteMultipartUpload, CopyObject, UploadPartCopy
/// report failures found after the status line went out this way).
pub fn embedded_error(what: &str, body: &str) -> Option<Failure> {
    if xml::root(body).as_deref() != Some("Error") {
        return None;
    }
    let doc: ErrorDoc = quick_xml::de::from_str(body).unwrap_or_default();
    // "InternalError" and "SlowDown" this way are as transient as their 5xx forms.
    let status = match doc.code.as_str() {
        "InternalError" => 500,
        "SlowDown" | "ServiceUnavailable" => 503,
        "NoSuchUpload" | "NoSuchKey" | "NoSuchBucket" => 404,
        _ => 400,
    };
    let mut f = status_failure(&format!("{what} (error in a 200 answer)"), status, doc, &HeaderMap::new());
    if status == 400 {
        f.retry = false;
    }
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_in_200_answers() {
        assert!(embedded_error("x", "<?xml version=\"1.0\"?>\n<CompleteMultipartUploadResult/>").is_none());
        let f = embedded_error("x", "<?xml version=\"1.0\"?>\n\n  <Error><Code>InternalError</Code></Error>")
            .unwrap();
        assert!(f.retry);
        let f = embedded_error("x", "<Error><Code>InvalidPart</Code><Message>m</Message></Error>").unwrap();
        assert!(!f.retry);
        assert_eq!(f.err.code(), "InvalidPart");
        assert!(f.err.message().ends_with("HTTP 400 InvalidPart: m"), "{}", f.err);
    }

    #[test]
    fn status_mapping() {
        let h = HeaderMap::new();
        let k = |s, c: &str| {
            let f = status_failure("w", s, ErrorDoc { code: c.into(), ..Default::default() }, &h);
            assert_eq!((f.err.http_status(), f.err.code()), (Some(s), c), "the answer is kept");
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
