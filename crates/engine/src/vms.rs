//! The VAST management (VMS) REST client: authentication, requests, list pagination, and the
//! few resources the plug-in reads (clusters, versions, views, quotas, VIP pools).
//!
//! Auth, as VAST's own tools do it (reference §2): JWT by default (`POST /api/token/`, refresh
//! via `/api/token/refresh/`, a fresh login when refresh fails or the server answers 401, or
//! 403 "Token is invalid or expired"; one refresh at a time across threads), an API token when
//! NetBackup's password is `token:<api-token>`, or HTTP Basic when configured.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::{debug, info, warn};

use crate::error::{Error, ErrorKind, Result};
use crate::http::{self, TlsSettings};
use crate::retry::RetryPolicy;
use crate::server::Credentials;

/// `[server.vms]` in the config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmsSettings {
    /// `host`, `host:port` or `https://host:port`.
    pub address: String,
    /// The `<version>` segment: `latest` (default), `v1`, `v5`, …
    #[serde(default = "default_version")]
    pub api_version: String,
    /// Sent as `X-Tenant-Name` on every request.
    pub tenant: Option<String>,
    #[serde(default)]
    pub auth: AuthScheme,
    #[serde(flatten)]
    pub tls: TlsSettings,
    /// Per-request timeout, seconds.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

fn default_version() -> String {
    "latest".into()
}
fn default_timeout() -> u64 {
    30
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthScheme {
    #[default]
    Jwt,
    Basic,
}

/// The password prefix that selects API-token auth.
pub const TOKEN_PREFIX: &str = "token:";

enum Auth {
    Jwt { user: String, password: String },
    Basic(String),
    ApiToken(String),
}

#[derive(Default)]
struct Jwt {
    access: Option<String>,
    refresh: Option<String>,
    /// Bumped on every new access token: a thread that saw an old one knows another thread
    /// has already renewed it.
    generation: u64,
    /// The pid of the process renewing the token right now.
    renewing: Option<u32>,
}

/// How long a thread waits for another thread's renewal before trying itself.
const RENEW_WAIT: Duration = Duration::from_secs(60);

pub struct Vms {
    http: http::Http,
    /// `https://host:port`
    origin: String,
    version: String,
    tenant: Option<String>,
    auth: Auth,
    jwt: Mutex<Jwt>,
    /// Signalled when a renewal ends.
    renewed: Condvar,
    retry: RetryPolicy,
}

/// A response that is not a success, with the server's `detail` when it gave one.
struct Reply {
    status: u16,
    body: String,
}

impl Reply {
    fn detail(&self) -> String {
        serde_json::from_str::<Value>(&self.body)
            .ok()
            .and_then(|v| match v {
                Value::Object(ref o) => o.get("detail").and_then(Value::as_str).map(str::to_string),
                Value::String(s) => Some(s),
                _ => None,
            })
            .unwrap_or_else(|| self.body.chars().take(300).collect())
    }
    fn token_expired(&self) -> bool {
        self.status == 401 || (self.status == 403 && self.body.contains("Token is invalid or expired"))
    }
}

impl Vms {
    pub fn connect(s: &VmsSettings, creds: &Credentials) -> Result<Vms> {
        if s.tls.insecure {
            warn!(vms = %s.address, "TLS verification of VMS is switched off (insecure = true)");
        }
        let origin = if s.address.contains("://") {
            s.address.trim_end_matches('/').to_string()
        } else {
            format!("https://{}", s.address.trim_end_matches('/'))
        };
        let password = creds.password.expose();
        let auth = if let Some(t) = password.strip_prefix(TOKEN_PREFIX) {
            Auth::ApiToken(t.to_string())
        } else {
            match s.auth {
                AuthScheme::Jwt => Auth::Jwt { user: creds.user.clone(), password: password.to_string() },
                AuthScheme::Basic => Auth::Basic(
                    base64::engine::general_purpose::STANDARD.encode(format!("{}:{password}", creds.user)),
                ),
            }
        };
        if creds.user.is_empty() && !matches!(auth, Auth::ApiToken(_)) {
            return Err(Error::new(ErrorKind::Auth, "no user name given (tpconfig -sts_user_id)"));
        }
        let vms = Vms {
            http: http::Http::new(&s.tls, Duration::from_secs(s.timeout_secs.max(1)))?,
            origin,
            version: s.api_version.trim_matches('/').to_string(),
            tenant: s.tenant.clone(),
            auth,
            jwt: Mutex::new(Jwt::default()),
            renewed: Condvar::new(),
            retry: RetryPolicy::default(),
        };
        if matches!(vms.auth, Auth::Jwt { .. }) {
            vms.renew(0)?;
        }
        Ok(vms)
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

    /// Use `policy` for idempotent requests (`[server.retry]`).
    pub fn with_retry(mut self, policy: RetryPolicy) -> Vms {
        self.retry = policy;
        self
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

    /// The Authorization header now, and the token generation it belongs to.
    fn auth_header(&self) -> (Option<String>, u64) {
        match &self.auth {
            Auth::Basic(b) => (Some(format!("Basic {b}")), 0),
            Auth::ApiToken(t) => (Some(format!("Api-Token {t}")), 0),
            Auth::Jwt { .. } => {
                let j = self.jwt.lock().unwrap_or_else(|p| p.into_inner());
                (j.access.as_ref().map(|a| format!("Bearer {a}")), j.generation)
            }
        }
    }

    /// Get a new access token unless another thread already did since `seen`. Refresh first,
    /// log in again if that fails. The lock makes it one renewal at a time.
    fn renew(&self, seen: u64) -> Result<()> {
        let Auth::Jwt { user, password } = &self.auth else { return Ok(()) };
        let me = std::process::id();
        let lock = || self.jwt.lock().unwrap_or_else(|p| p.into_inner());
        let mut j = lock();
        // One renewal at a time, without holding the lock over the network: the others wait
        // for it. A renewal marked by another pid was in flight in a parent at fork: ignored.
        loop {
            if j.generation != seen {
                return Ok(());
            }
            match j.renewing {
                Some(pid) if pid == me => {
                    j = self.renewed.wait_timeout(j, RENEW_WAIT).unwrap_or_else(|p| p.into_inner()).0;
                }
                _ => break,
            }
        }
        j.renewing = Some(me);
        let refresh = j.refresh.clone();
        drop(j);
        let res = self.fetch_tokens(user, password, refresh);
        let mut j = lock();
        j.renewing = None;
        if let Ok((access, refresh)) = &res {
            j.access = Some(access.clone());
            if let Some(r) = refresh {
                j.refresh = Some(r.clone());
            }
            j.generation += 1;
        }
        drop(j);
        self.renewed.notify_all();
        res.map(drop)
    }

    /// New tokens: refresh when there is a refresh token, else (or when refused) log in.
    fn fetch_tokens(
        &self,
        user: &str,
        password: &str,
        refresh: Option<String>,
    ) -> Result<(String, Option<String>)> {
        let tokens = |body: &str| -> Option<(String, Option<String>)> {
            let t: Value = serde_json::from_str(body).ok()?;
            let access = t.get("access")?.as_str()?.to_string();
            Some((access, t.get("refresh").and_then(Value::as_str).map(str::to_string)))
        };
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
        let r =
            self.exchange("POST", &url, None, Some(&json!({ "username": user, "password": password })))?;
        match r.status {
            200 | 201 => {}
            401 | 403 => {
                return Err(Error::new(
                    ErrorKind::Auth,
                    format!(
                        "VMS {} refused user '{user}': {} (check the credentials given to tpconfig)",
                        self.origin,
                        r.detail()
                    ),
                ))
            }
            s => return Err(status_error(&format!("VMS login at {url}"), s, &r)),
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
                let (auth, generation) = self.auth_header();
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
                    _ if r.token_expired()
                        && matches!(self.auth, Auth::Jwt { .. })
                        && !r.body.contains("permission_denied") =>
                    {
                        debug!("{what}: token expired or invalid ({}), renewing", r.status);
                        self.renew(generation)?;
                    }
                    s => return Err(status_error(&what, s, &r)),
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
            if pages > 10_000 {
                return Err(Error::new(
                    ErrorKind::Network,
                    format!("VMS list {path}: more than 10000 pages"),
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
}

fn status_error(what: &str, status: u16, r: &Reply) -> Error {
    let kind = match status {
        401 => ErrorKind::Auth,
        403 if r.body.contains("permission_denied") => ErrorKind::Access,
        403 => ErrorKind::Auth,
        404 => ErrorKind::NotFound,
        409 => ErrorKind::AlreadyExists,
        400..=499 => ErrorKind::InvalidArgument,
        _ => ErrorKind::Network,
    };
    Error::new(kind, format!("{what}: HTTP {status}: {}", r.detail()))
}

/// Percent-encode a query value.
pub fn q(v: &str) -> String {
    let mut out = String::new();
    for b in v.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
