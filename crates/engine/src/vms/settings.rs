//! `[server.vms]`: where the VAST management API is, how to trust it and how to log in.

use serde::Deserialize;

use crate::http::TlsSettings;

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

impl VmsSettings {
    /// `https://host:port` (a bare host or host:port is HTTPS, as VMS always is).
    pub fn origin(&self) -> String {
        let address = self.address.trim().trim_end_matches('/');
        match address.split_once("://") {
            Some(_) => address.to_string(),
            None => format!("https://{address}"),
        }
    }

    /// Settings with defaults for everything but the address and TLS.
    pub fn new(address: impl Into<String>, tls: TlsSettings) -> VmsSettings {
        VmsSettings {
            address: address.into(),
            api_version: default_version(),
            tenant: None,
            auth: AuthScheme::default(),
            tls,
            timeout_secs: default_timeout(),
        }
    }
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
/// The password prefix that selects client-certificate auth (mutual TLS): `cert:<PEM file>`.
pub const CERT_PREFIX: &str = "cert:";
