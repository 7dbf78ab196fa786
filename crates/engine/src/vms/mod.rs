//! The VAST management (VMS) REST client: requests with authentication ([`auth`]), retries,
//! list pagination, and typed reads of the records the plug-in uses ([`types`]).

mod auth;
mod settings;
pub mod types;

pub use settings::{AuthScheme, VmsSettings, CERT_PREFIX, TOKEN_PREFIX};

use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tracing::{debug, info, warn};

use self::auth::Auth;
use self::types::{ErrorBody, Tokens};
use crate::credentials::{Credentials, Secret};
use crate::error::{Error, ErrorKind, Remote, Result};
use crate::http;
use crate::retry::RetryPolicy;

/// Most pages one list may take.
const MAX_PAGES: usize = 10_000;

pub struct Vms {
    http: http::Http,
    /// `https://host:port`
    origin: String,
    version: String,
    tenant: Option<String>,
    auth: Auth,
    retry: RetryPolicy,
}

/// An answer with any HTTP status.
struct Reply {
    status: u16,
    body: String,
}

impl Reply {
    fn error(&self) -> ErrorBody {
        ErrorBody::parse(&self.body)
    }
    /// The server's words for a failure: its `detail`, else the start of the body.
    fn detail(&self) -> String {
        self.error().detail.unwrap_or_else(|| self.body.chars().take(300).collect())
    }
    fn code(&self) -> String {
        self.error().code.unwrap_or_default()
    }
    /// An RBAC refusal: the user is known but not allowed.
    fn permission_denied(&self) -> bool {
        self.code() == "permission_denied"
    }
    /// The access token is missing, expired or invalid (simplejwt's `token_not_valid`, which
    /// VMS sends with 403; some versions answer 401).
    fn token_expired(&self) -> bool {
        self.status == 401 || (self.status == 403 && self.code() == "token_not_valid")
    }
}

/// Characters a query value keeps as they are (RFC 3986 unreserved, and `/` for paths).
const QUERY_KEEP: &AsciiSet =
    &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/');

/// Percent-encode a query value.
pub fn query_value(v: &str) -> String {
    utf8_percent_encode(v, QUERY_KEEP).to_string()
}

impl Vms {
    pub fn connect(s: &VmsSettings, creds: &Credentials) -> Result<Vms> {
        if s.tls.insecure {
            warn!(vms = %s.address, "TLS verification of VMS is switched off (insecure = true)");
        }
        let origin = s.origin();
        let auth = Auth::new(s.auth, creds)?;
        let identity = auth.client_cert().map(http::tls::client_cert).transpose()?;
        let vms = Vms {
            http: http::Http::with_identity(&s.tls, Duration::from_secs(s.timeout_secs.max(1)), identity)?,
            origin,
            version: s.api_version.trim_matches('/').to_string(),
            tenant: s.tenant.clone(),
            auth,
            retry: RetryPolicy::default(),
        };
        if vms.auth.is_jwt() {
            vms.renew(0).map_err(|e| vms.tls_refusal(e))?;
        }
        Ok(vms)
    }

    /// A TLS 1.3 server refuses a client certificate (or its absence) after the handshake, in
    /// an alert the client reads only on its next read: a request written in two pieces (the
    /// login's POST) meets a broken pipe first. A bodiless GET reads the alert: when it fails
    /// with a TLS error, that is the reason, else `e` stands.
    fn tls_refusal(&self, e: Error) -> Error {
        if !matches!(e.kind(), ErrorKind::Network) || !self.origin.starts_with("https://") {
            return e;
        }
        match self.exchange("GET", &format!("{}/api/", self.origin), None, None) {
            Err(tls) if tls.kind() == ErrorKind::Tls => tls,
            _ => e,
        }
    }

    /// Use `policy` for idempotent requests (`[server.retry]`).
    pub fn with_retry(mut self, policy: RetryPolicy) -> Vms {
        self.retry = policy;
        self
    }

    /// The `next` link of a page as a URL on our own origin: credentials go nowhere else (a
    /// proxy-built `http://` link, or another host, would get them otherwise).
    fn same_origin(&self, next: &str) -> Result<String> {
        let Some((_, rest)) = next.split_once("://") else {
            return Ok(format!("{}{}", self.origin, next));
        };
        let (host, path) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p));
        let ours = self.origin.split_once("://").map_or(self.origin.as_str(), |(_, h)| h);
        if !host.eq_ignore_ascii_case(ours) {
            return Err(Error::new(
                ErrorKind::Network,
                format!("VMS pagination points at another host ({host}, not {ours}): not followed"),
            ));
        }
        Ok(format!("{}/{path}", self.origin))
    }

    fn url(&self, path: &str) -> String {
        let (p, q) = path.split_once('?').map_or((path, ""), |(p, q)| (p, q));
        let p = p.trim_matches('/');
        let sep = if q.is_empty() { "" } else { "?" };
        format!("{}/api/{}/{p}/{sep}{q}", self.origin, self.version)
    }

    /// One HTTP exchange: transport errors are errors, any HTTP status is a `Reply`.
    fn exchange(&self, method: &str, url: &str, auth: Option<&str>, body: Option<&Value>) -> Result<Reply> {
        let mut req =
            ureq::http::Request::builder().method(method).uri(url).header("Accept", "application/json");
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        if let Some(t) = &self.tenant {
            req = req.header("X-Tenant-Name", t);
        }
        let what = format!("VMS {method} {url}");
        let res = match body {
            Some(b) => {
                let req = req
                    .header("Content-Type", "application/json")
                    .body(b.to_string())
                    .map_err(|e| Error::internal(format!("{what}: {e}")))?;
                self.http.agent().run(req)
            }
            None => {
                let req = req.body(()).map_err(|e| Error::internal(format!("{what}: {e}")))?;
                self.http.agent().run(req)
            }
        };
        let mut resp = res.map_err(|e| http::transport_error(&what, e))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .map_err(|e| http::transport_error(&what, e))?;
        Ok(Reply { status, body })
    }

    /// Get a new access token unless another thread already did since `seen`.
    fn renew(&self, seen: u64) -> Result<()> {
        self.auth.renew(seen, |user, password, refresh| self.fetch_tokens(user, password, refresh))
    }

    /// New tokens: refresh when there is a refresh token, else (or when refused) log in.
    fn fetch_tokens(&self, user: &str, password: &Secret, refresh: Option<String>) -> Result<Tokens> {
        let tokens = |body: &str| serde_json::from_str::<Tokens>(body).ok();
        if let Some(refresh) = refresh {
            let url = format!("{}/api/token/refresh/", self.origin);
            match self.exchange("POST", &url, None, Some(&json!({ "refresh": refresh }))) {
                Ok(r) if r.status == 200 => {
                    if let Some(t) = tokens(&r.body) {
                        debug!("VMS access token refreshed");
                        return Ok(t);
                    }
                }
                Ok(r) => debug!("VMS token refresh refused ({}), logging in again", r.status),
                Err(e) => debug!("VMS token refresh failed ({e}), logging in again"),
            }
        }
        let url = format!("{}/api/token/", self.origin);
        let r = self.exchange(
            "POST",
            &url,
            None,
            Some(&json!({ "username": user, "password": password.expose() })),
        )?;
        match r.status {
            200 | 201 => {}
            401 | 403 => {
                return Err(status_error(
                    &format!(
                        "VMS {} refused user '{user}': {} (check the credentials given to tpconfig)",
                        self.origin,
                        r.detail()
                    ),
                    ErrorKind::Auth,
                    &r,
                ))
            }
            _ => return Err(reply_error(&format!("VMS login at {url}"), &r)),
        }
        let t = tokens(&r.body)
            .ok_or_else(|| Error::new(ErrorKind::Network, "VMS login answer has no access token"))?;
        info!(vms = %self.origin, user = %user, "logged in to VMS");
        Ok(t)
    }

    /// A request with auth handling (renew on expiry, up to 3 times) and, for idempotent
    /// methods, retries of transport failures and 5xx answers.
    pub fn request(&self, method: &str, path_or_url: &str, body: Option<&Value>) -> Result<Value> {
        let url =
            if path_or_url.starts_with("http") { path_or_url.to_string() } else { self.url(path_or_url) };
        let idempotent = matches!(method, "GET" | "PUT" | "DELETE" | "HEAD");
        let what = format!("VMS {method} {url}");
        let attempt = |_: u32| -> Result<Value> {
            for _ in 0..3 {
                let (auth, generation) = self.auth.header();
                let r = self.exchange(method, &url, auth.as_deref(), body)?;
                match r.status {
                    200..=299 => {
                        return if r.body.trim().is_empty() {
                            Ok(Value::Null)
                        } else {
                            serde_json::from_str(&r.body).map_err(|e| {
                                Error::new(ErrorKind::Network, format!("{what}: answer does not parse: {e}"))
                            })
                        };
                    }
                    _ if r.token_expired() && self.auth.is_jwt() && !r.permission_denied() => {
                        debug!("{what}: token expired or invalid ({}), renewing", r.status);
                        self.renew(generation)?;
                    }
                    _ => return Err(reply_error(&what, &r)),
                }
            }
            Err(Error::new(
                ErrorKind::Auth,
                format!("{what}: still refused after renewing the token 3 times"),
            ))
        };
        if idempotent {
            self.retry.run(attempt, http::retryable)
        } else {
            attempt(1)
        }
    }

    pub fn get(&self, path: &str) -> Result<Value> {
        self.request("GET", path, None)
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Value> {
        self.request("POST", path, Some(body))
    }

    pub fn patch(&self, path: &str, body: &Value) -> Result<Value> {
        self.request("PATCH", path, Some(body))
    }

    /// Every item of a list resource: a bare array, a paginated envelope (following `next`),
    /// or a single object.
    pub fn list(&self, path: &str) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        let mut next = Some(path.to_string());
        let mut pages = 0;
        while let Some(p) = next.take() {
            pages += 1;
            if pages > MAX_PAGES {
                return Err(Error::new(
                    ErrorKind::Network,
                    format!("VMS list {path}: more than {MAX_PAGES} pages"),
                ));
            }
            match self.get(&p)? {
                Value::Array(items) => out.extend(items),
                Value::Object(mut o) if o.contains_key("results") => {
                    if let Some(Value::Array(items)) = o.remove("results") {
                        out.extend(items);
                    }
                    next = match o.get("next").and_then(Value::as_str) {
                        Some(n) => Some(self.same_origin(n)?),
                        None => None,
                    };
                }
                Value::Null => {}
                v => out.push(v),
            }
        }
        Ok(out)
    }

    /// Every item of a list resource, as `T` (see [`types`]).
    pub fn list_as<T: DeserializeOwned>(&self, path: &str) -> Result<Vec<T>> {
        self.list(path)?
            .into_iter()
            .map(|v| {
                serde_json::from_value(v).map_err(|e| {
                    Error::new(ErrorKind::Network, format!("VMS {path}: an item does not parse: {e}"))
                })
            })
            .collect()
    }
}

/// A failed answer as an error of `kind`, keeping the status and the server's code.
fn status_error(msg: &str, kind: ErrorKind, r: &Reply) -> Error {
    Error::remote(kind, msg, Remote { status: r.status, code: r.code(), argument: None })
}

/// What a failed answer means.
fn reply_error(what: &str, r: &Reply) -> Error {
    let kind = match r.status {
        401 => ErrorKind::Auth,
        403 if r.permission_denied() => ErrorKind::Access,
        403 => ErrorKind::Auth,
        404 => ErrorKind::NotFound,
        409 => ErrorKind::AlreadyExists,
        400..=499 => ErrorKind::InvalidArgument,
        _ => ErrorKind::Network,
    };
    status_error(&format!("{what}: HTTP {}: {}", r.status, r.detail()), kind, r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, body: &str) -> Reply {
        Reply { status, body: body.into() }
    }

    #[test]
    fn answers_are_judged_by_status_and_code() {
        let jwt = r#"{"detail":"Given token not valid for any token type","code":"token_not_valid","messages":[{"message":"Token is invalid or expired"}]}"#;
        assert!(reply(403, jwt).token_expired());
        assert!(reply(401, "{}").token_expired());
        assert!(!reply(403, r#"{"detail":"You do not have permission","code":"permission_denied"}"#)
            .token_expired());
        let denied = reply(403, r#"{"detail":"You do not have permission","code":"permission_denied"}"#);
        assert!(denied.permission_denied());
        let e = reply_error("w", &denied);
        assert_eq!(
            (e.kind(), e.http_status(), e.code()),
            (ErrorKind::Access, Some(403), "permission_denied")
        );
        assert_eq!(reply_error("w", &reply(403, jwt)).kind(), ErrorKind::Auth);
        assert_eq!(reply_error("w", &reply(404, r#"{"detail":"Not found."}"#)).kind(), ErrorKind::NotFound);
        assert_eq!(reply_error("w", &reply(503, r#""busy""#)).kind(), ErrorKind::Network);
        assert!(reply_error("w", &reply(400, r#"{"path":["bad"]}"#))
            .message()
            .ends_with(r#"{"path":["bad"]}"#));
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(query_value("/nbu/lsu 1&x"), "/nbu/lsu%201%26x");
    }
}
