//! How the plug-in proves who it is to VMS (reference §2): JWT by default (login, refresh, a
//! fresh login when refresh fails), an API token when NetBackup's password is
//! `token:<api-token>`, a client certificate (mutual TLS, no Authorization header) when it is
//! `cert:<path to a PEM file>`, or HTTP Basic when configured. One JWT renewal at a time across
//! threads, without holding a lock over the network, and a renewal a parent had in flight at
//! `fork` is ignored in the child.

use std::path::PathBuf;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use base64::Engine as _;

use super::settings::{AuthScheme, CERT_PREFIX, TOKEN_PREFIX};
use super::types::Tokens;
use crate::credentials::{Credentials, Secret};
use crate::error::{Error, ErrorKind, Result};

/// How long a thread waits for another thread's renewal before trying itself.
const RENEW_WAIT: Duration = Duration::from_secs(60);

pub enum Scheme {
    Jwt {
        user: String,
        password: Secret,
    },
    Basic(Secret),
    ApiToken(Secret),
    /// The TLS layer proves who we are (the PEM file with the client certificate and key);
    /// requests carry no Authorization header. **[project]**: VAST's own behaviour with client
    /// certificates is unconfirmed (`docs/admin-guide.md`).
    ClientCert(PathBuf),
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

pub struct Auth {
    pub scheme: Scheme,
    jwt: Mutex<Jwt>,
    /// Signalled when a renewal ends.
    renewed: Condvar,
}

impl Auth {
    pub fn new(scheme: AuthScheme, creds: &Credentials) -> Result<Auth> {
        let password = creds.password.expose();
        let scheme = if let Some(t) = password.strip_prefix(TOKEN_PREFIX) {
            Scheme::ApiToken(Secret::new(t))
        } else if let Some(path) = password.strip_prefix(CERT_PREFIX) {
            Scheme::ClientCert(PathBuf::from(path))
        } else {
            match scheme {
                AuthScheme::Jwt => Scheme::Jwt { user: creds.user.clone(), password: creds.password.clone() },
                AuthScheme::Basic => Scheme::Basic(Secret::new(
                    base64::engine::general_purpose::STANDARD.encode(format!("{}:{password}", creds.user)),
                )),
            }
        };
        if creds.user.is_empty() && !matches!(scheme, Scheme::ApiToken(_) | Scheme::ClientCert(_)) {
            return Err(Error::new(ErrorKind::Auth, "no user name given (tpconfig -sts_user_id)"));
        }
        Ok(Auth { scheme, jwt: Mutex::new(Jwt::default()), renewed: Condvar::new() })
    }

    pub fn is_jwt(&self) -> bool {
        matches!(self.scheme, Scheme::Jwt { .. })
    }

    /// The PEM file of `cert:` credentials.
    pub fn client_cert(&self) -> Option<&std::path::Path> {
        match &self.scheme {
            Scheme::ClientCert(p) => Some(p),
            _ => None,
        }
    }

    /// The Authorization header now, and the token generation it belongs to.
    pub fn header(&self) -> (Option<String>, u64) {
        match &self.scheme {
            Scheme::Basic(b) => (Some(format!("Basic {}", b.expose())), 0),
            Scheme::ApiToken(t) => (Some(format!("Api-Token {}", t.expose())), 0),
            Scheme::ClientCert(_) => (None, 0),
            Scheme::Jwt { .. } => {
                let j = self.jwt.lock().unwrap_or_else(|p| p.into_inner());
                (j.access.as_ref().map(|a| format!("Bearer {a}")), j.generation)
            }
        }
    }

    /// Get a new access token with `fetch(user, password, refresh token)` unless another
    /// thread already did since generation `seen`.
    pub fn renew(
        &self,
        seen: u64,
        fetch: impl FnOnce(&str, &Secret, Option<String>) -> Result<Tokens>,
    ) -> Result<()> {
        let Scheme::Jwt { user, password } = &self.scheme else { return Ok(()) };
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
        let res = fetch(user, password, refresh);
        let mut j = lock();
        j.renewing = None;
        if let Ok(t) = &res {
            j.access = Some(t.access.clone());
            if let Some(r) = &t.refresh {
                j.refresh = Some(r.clone());
            }
            j.generation += 1;
        }
        drop(j);
        self.renewed.notify_all();
        res.map(drop)
    }
}
