//! The one blocking HTTP stack (ureq, TLS by rustls with the ring provider) shared by the VMS
//! client and the S3 data path. No async runtime and no OpenSSL inside NetBackup's processes.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;
use ureq::tls::{Certificate, ClientCert, RootCerts, TlsConfig};

use crate::error::{Error, ErrorKind, Result};

pub mod tls;

/// How to check the server's certificate.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM file of the CA that signed the server's certificate (VMS certificates are usually
    /// self-signed). Without it, the Mozilla roots are used.
    pub ca_file: Option<PathBuf>,
    /// Skip verification entirely. Logged as a warning on every connect.
    #[serde(default)]
    pub insecure: bool,
}

/// An agent that is never shared across `fork`: NetBackup's bptm forks children, and a child
/// writing on the parent's pooled connections would interleave bytes on the same sockets. The
/// first use in a new process builds a fresh agent (and so fresh connections).
pub struct Http {
    config: ureq::config::Config,
    current: Mutex<(u32, ureq::Agent)>,
}

impl Http {
    pub fn new(tls: &TlsSettings, timeout: Duration) -> Result<Http> {
        Http::with_identity(tls, timeout, None)
    }

    /// As [`Http::new`], presenting `client` to servers that ask for a client certificate
    /// (mutual TLS: `cert:` credentials, [`tls::client_cert`]).
    pub fn with_identity(tls: &TlsSettings, timeout: Duration, client: Option<ClientCert>) -> Result<Http> {
        let config = config(tls, timeout, client)?;
        let agent = config.new_agent();
        Ok(Http { config, current: Mutex::new((crate::util::pid(), agent)) })
    }

    pub fn agent(&self) -> ureq::Agent {
        let pid = crate::util::pid();
        let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if cur.0 != pid {
            *cur = (pid, self.config.new_agent());
        }
        cur.1.clone()
    }
}

fn config(tls: &TlsSettings, timeout: Duration, client: Option<ClientCert>) -> Result<ureq::config::Config> {
    let mut t = TlsConfig::builder().client_cert(client);
    if let Some(ca) = &tls.ca_file {
        let pem =
            std::fs::read(ca).map_err(|e| Error::config(format!("TLS CA file {}: {e}", ca.display())))?;
        let certs: Vec<Certificate<'static>> = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        if certs.is_empty() {
            return Err(Error::config(format!("TLS CA file {} holds no PEM certificate", ca.display())));
        }
        t = t.root_certs(RootCerts::new_with_certs(&certs));
    }
    if tls.insecure {
        t = t.disable_verification(true);
    }
    Ok(ureq::Agent::config_builder()
        .tls_config(t.build())
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_global(Some(timeout))
        .max_idle_connections_per_host(16)
        // Several streams × parts in flight × VIPs: keep their connections, not ureq's 10.
        .max_idle_connections(256)
        .user_agent(concat!("vast-ost/", env!("CARGO_PKG_VERSION")))
        .build())
}

/// What a transport failure means for the admin: no route (Connect), a certificate that does
/// not verify (Tls), or a broken exchange (Network, worth a retry).
pub fn transport_error(what: &str, e: ureq::Error) -> Error {
    let kind = match &e {
        ureq::Error::HostNotFound | ureq::Error::ConnectionFailed | ureq::Error::BadUri(_) => {
            ErrorKind::Connect
        }
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => ErrorKind::Connect,
        // rustls reports a failed handshake as a rustls::Error inside the socket's io::Error.
        ureq::Error::Io(io) if io.get_ref().is_some_and(|e| e.downcast_ref::<rustls::Error>().is_some()) => {
            ErrorKind::Tls
        }
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::Pem(_) | ureq::Error::TlsRequired => {
            ErrorKind::Tls
        }
        _ => ErrorKind::Network,
    };
    let hint = match kind {
        ErrorKind::Tls => match tls::rustls_error(&e) {
            // The certificate problem in words, and its fix (http/tls.rs).
            Some(r) => {
                let section = if what.starts_with("VMS") { "[server.vms]" } else { "[server.s3.tls]" };
                let p = tls::explain(r, section);
                format!(": {}; {}", p.problem, p.fix)
            }
            None => " (check [server.vms] ca_file, or set insecure = true to skip verification)".into(),
        },
        ErrorKind::Connect => " (is the address right and the service up?)".into(),
        _ => String::new(),
    };
    Error::new(kind, format!("{what}: {e}{hint}"))
}

/// Errors worth another attempt for an idempotent request.
pub fn retryable(e: &Error) -> bool {
    matches!(e.kind(), ErrorKind::Network | ErrorKind::Connect)
}
