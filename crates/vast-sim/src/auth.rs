//! VMS authentication (reference §2): HTTP Basic against the VMS managers, `Api-Token <token>`
//! tokens from `apitokens/`, and simplejwt-style HS256 JWTs from `/api/token/` with rotating
//! refresh tokens. "Force-expire all access tokens" bumps a generation number carried in every
//! access token, so it takes effect immediately and deterministically.

use crate::util::{iso8601, unix_now, Rng, ALNUM};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::HashSet;
use std::time::Duration;

type HmacSha256 = Hmac<Sha256>;

/// A VMS manager: the accounts that may call the management API.
#[derive(Debug, Clone)]
pub struct Manager {
    pub id: u64,
    pub name: String,
    pub password: String,
}

#[derive(Debug, Clone)]
pub struct ApiToken {
    pub id: String,
    pub token: String,
    pub name: String,
    pub owner: String,
    pub created: Duration,
    pub expiry: Duration,
    pub last_used: Option<Duration>,
    pub revoked: bool,
    pub revocation_time: Option<Duration>,
}

impl ApiToken {
    pub fn active(&self, now: Duration) -> bool {
        !self.revoked && now < self.expiry
    }
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "owner": self.owner,
            "created": iso8601(self.created),
            "expiry_date": iso8601(self.expiry),
            "last_used": self.last_used.map(iso8601),
            "revoked": self.revoked,
            "revocation_time": self.revocation_time.map(iso8601),
        })
    }
}

/// Why an `Authorization` header was refused. Each maps to the body VMS would send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    Missing,
    BadBasic,
    BadApiToken,
    BadJwt,
}

impl AuthError {
    /// Every authentication failure is a 403 on VMS (CSI relies on this for JWT: it starts
    /// with `Bearer #` and waits for the 403). DRF answers 403 rather than 401 when its first
    /// authenticator sends no `WWW-Authenticate`, so Basic and Api-Token failures get 403 too.
    pub fn body(self) -> Value {
        match self {
            AuthError::Missing => json!({"detail": "Authentication credentials were not provided."}),
            AuthError::BadBasic => json!({"detail": "Invalid username/password."}),
            AuthError::BadApiToken => json!({"detail": "Invalid token."}),
            AuthError::BadJwt => jwt_invalid_body("AccessToken", "access"),
        }
    }
}

/// The exact simplejwt body for a bad or expired token.
pub fn jwt_invalid_body(class: &str, ty: &str) -> Value {
    json!({
        "detail": "Given token not valid for any token type",
        "code": "token_not_valid",
        "messages": [{"token_class": class, "token_type": ty, "message": "Token is invalid or expired"}]
    })
}

pub struct AuthState {
    pub managers: Vec<Manager>,
    pub tokens: Vec<ApiToken>,
    /// Client certificates the simulator issued (DER), and the manager each stands for.
    pub client_certs: std::collections::HashMap<Vec<u8>, String>,
    secret: [u8; 32],
    /// Access tokens minted before the current generation are refused.
    generation: u64,
    /// Refresh tokens already rotated (simplejwt BLACKLIST_AFTER_ROTATION).
    used_refresh: HashSet<String>,
    pub access_lifetime: Duration,
    pub refresh_lifetime: Duration,
    pub max_tokens_per_user: usize,
}

impl AuthState {
    pub fn new(rng: &mut Rng, access: Duration, refresh: Duration, max_tokens: usize) -> Self {
        let mut secret = [0u8; 32];
        for c in secret.chunks_mut(8) {
            c.copy_from_slice(&rng.next_u64().to_le_bytes());
        }
        AuthState {
            managers: Vec::new(),
            tokens: Vec::new(),
            client_certs: Default::default(),
            secret,
            generation: 0,
            used_refresh: HashSet::new(),
            access_lifetime: access,
            refresh_lifetime: refresh,
            max_tokens_per_user: max_tokens,
        }
    }

    pub fn check_password(&self, user: &str, pass: &str) -> Option<&Manager> {
        self.managers.iter().find(|m| m.name == user && m.password == pass)
    }

    pub fn expire_access_tokens(&mut self) {
        self.generation += 1;
    }

    /// Resolves the client certificate of a request without an `Authorization` header: the
    /// manager it was issued to (`Sim::client_cert_pem`). An assumption of the simulator: how
    /// VMS maps client certificates to users is not documented.
    pub fn authenticate_cert(&self, der: &[u8]) -> Result<String, AuthError> {
        let user = self.client_certs.get(der).ok_or(AuthError::Missing)?;
        self.managers.iter().find(|m| &m.name == user).map(|m| m.name.clone()).ok_or(AuthError::Missing)
    }

    /// Resolves an `Authorization` header value to a manager name.
    pub fn authenticate(&mut self, header: Option<&str>) -> Result<String, AuthError> {
        let h = header.map(str::trim).filter(|h| !h.is_empty()).ok_or(AuthError::Missing)?;
        let (scheme, cred) = h.split_once(' ').unwrap_or((h, ""));
        let cred = cred.trim();
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => {
                let raw = STANDARD.decode(cred).map_err(|_| AuthError::BadBasic)?;
                let s = String::from_utf8(raw).map_err(|_| AuthError::BadBasic)?;
                let (u, p) = s.split_once(':').ok_or(AuthError::BadBasic)?;
                self.check_password(u, p).map(|m| m.name.clone()).ok_or(AuthError::BadBasic)
            }
            "api-token" => {
                let now = unix_now();
                let t = self
                    .tokens
                    .iter_mut()
                    .find(|t| t.token == cred && t.active(now))
                    .ok_or(AuthError::BadApiToken)?;
                t.last_used = Some(now);
                Ok(t.owner.clone())
            }
            "bearer" => {
                let claims = self.verify(cred, "access").ok_or(AuthError::BadJwt)?;
                let user = claims.get("username").and_then(Value::as_str).ok_or(AuthError::BadJwt)?;
                if self.managers.iter().any(|m| m.name == user) {
                    Ok(user.to_string())
                } else {
                    Err(AuthError::BadJwt)
                }
            }
            _ => Err(AuthError::Missing),
        }
    }

    fn sign(&self, claims: &Value) -> String {
        let head = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(claims.to_string());
        let input = format!("{head}.{body}");
        let mut mac = HmacSha256::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }

    /// Verifies signature, type, expiry, generation (access) and rotation (refresh).
    fn verify(&self, token: &str, ty: &str) -> Option<Value> {
        let mut it = token.split('.');
        let (h, b, s) = (it.next()?, it.next()?, it.next()?);
        if it.next().is_some() {
            return None;
        }
        let mut mac = HmacSha256::new_from_slice(&self.secret).ok()?;
        mac.update(format!("{h}.{b}").as_bytes());
        mac.verify_slice(&URL_SAFE_NO_PAD.decode(s).ok()?).ok()?;
        let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(b).ok()?).ok()?;
        if claims.get("token_type")?.as_str()? != ty {
            return None;
        }
        if claims.get("exp")?.as_f64()? <= unix_now().as_secs_f64() {
            return None;
        }
        if ty == "access" && claims.get("gen")?.as_u64()? < self.generation {
            return None;
        }
        if ty == "refresh" && self.used_refresh.contains(claims.get("jti")?.as_str()?) {
            return None;
        }
        Some(claims)
    }

    pub fn issue_pair(&self, rng: &mut Rng, m: &Manager) -> Value {
        let now = unix_now().as_secs_f64();
        let mk = |rng: &mut Rng, ty: &str, life: Duration| {
            self.sign(&json!({
                "token_type": ty,
                "exp": (now + life.as_secs_f64()).floor() as u64,
                "iat": now.floor() as u64,
                "jti": rng.hex(32),
                "user_id": m.id,
                "username": m.name,
                "gen": self.generation,
            }))
        };
        let access = mk(rng, "access", self.access_lifetime);
        let refresh = mk(rng, "refresh", self.refresh_lifetime);
        json!({"access": access, "refresh": refresh})
    }

    /// Rotates a refresh token: the old one is spent, a new pair is returned.
    pub fn refresh(&mut self, rng: &mut Rng, token: &str) -> Option<Value> {
        let claims = self.verify(token, "refresh")?;
        let user = claims.get("username")?.as_str()?.to_string();
        let m = self.managers.iter().find(|m| m.name == user)?.clone();
        self.used_refresh.insert(claims.get("jti")?.as_str()?.to_string());
        Some(self.issue_pair(rng, &m))
    }

    pub fn new_token(&mut self, rng: &mut Rng, owner: &str, name: &str, life: Duration) -> ApiToken {
        let now = unix_now();
        let t = ApiToken {
            id: rng.string(ALNUM, 8),
            token: format!("{}.{}", rng.string(ALNUM, 8), rng.string(ALNUM, 32)),
            name: name.to_string(),
            owner: owner.to_string(),
            created: now,
            expiry: now + life,
            last_used: None,
            revoked: false,
            revocation_time: None,
        };
        self.tokens.push(t.clone());
        t
    }
}

/// Parses an Api-Token `expiry_date`: an integer and a unit (Y=365d, M=30d, w/W, d/D, h/H,
/// m=minutes, s/S).
pub fn parse_expiry(s: &str) -> Option<Duration> {
    let s = s.trim();
    let unit = s.chars().last()?;
    let n: u64 = s[..s.len() - unit.len_utf8()].trim().parse().ok()?;
    let secs = match unit {
        'Y' => 365 * 86_400,
        'M' => 30 * 86_400,
        'w' | 'W' => 7 * 86_400,
        'd' | 'D' => 86_400,
        'h' | 'H' => 3600,
        'm' => 60,
        's' | 'S' => 1,
        _ => return None,
    };
    n.checked_mul(secs).map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> (AuthState, Rng) {
        let mut rng = Rng::new(7);
        let mut a = AuthState::new(&mut rng, Duration::from_secs(60), Duration::from_secs(600), 2);
        a.managers.push(Manager { id: 1, name: "admin".into(), password: "123456".into() });
        (a, rng)
    }

    #[test]
    fn jwt_rotation_and_generation() {
        let (mut a, mut rng) = state();
        let m = a.managers[0].clone();
        let pair = a.issue_pair(&mut rng, &m);
        let access = pair["access"].as_str().unwrap().to_string();
        let refresh = pair["refresh"].as_str().unwrap().to_string();
        assert_eq!(a.authenticate(Some(&format!("Bearer {access}"))).unwrap(), "admin");
        assert_eq!(a.authenticate(Some(&format!("Bearer {refresh}"))), Err(AuthError::BadJwt));
        assert!(a.refresh(&mut rng, &refresh).is_some());
        assert!(a.refresh(&mut rng, &refresh).is_none(), "refresh tokens rotate");
        a.expire_access_tokens();
        assert_eq!(a.authenticate(Some(&format!("Bearer {access}"))), Err(AuthError::BadJwt));
        assert_eq!(a.authenticate(Some("Bearer #")), Err(AuthError::BadJwt));
    }

    #[test]
    fn expiry_units() {
        assert_eq!(parse_expiry("2d"), Some(Duration::from_secs(172_800)));
        assert_eq!(parse_expiry("1Y"), Some(Duration::from_secs(365 * 86_400)));
        assert_eq!(parse_expiry("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_expiry("x"), None);
        assert_eq!(parse_expiry("5q"), None);
    }
}
