//! TLS beyond the server check of `TlsSettings`: the client identity of `cert:` credentials
//! (mutual TLS: a PEM file holding the client certificate, its chain and its private key), and
//! what a failed handshake means for an admin: the certificate problem (expired, issued for
//! another host, signed by an unknown CA, a client certificate wanted or refused) and its fix.

use std::path::Path;

use rustls::{AlertDescription, CertificateError};
/// A client identity (certificate chain and key) for [`super::Http::with_identity`].
pub use ureq::tls::ClientCert;
use ureq::tls::{Certificate, PemItem, PrivateKey};

use crate::error::{Error, ErrorKind, Result};

/// The client identity in the PEM file at `path`: every certificate in it (the client's first,
/// then its chain) and the one private key. A file that cannot be used is `STS_EAUTH`: it is
/// what tpconfig was given as the password.
pub fn client_cert(path: &Path) -> Result<ClientCert> {
    let bad = |why: String| {
        Error::new(
            ErrorKind::Auth,
            format!(
                "client certificate {} (tpconfig -password 'cert:{}'): {why}",
                path.display(),
                path.display()
            ),
        )
    };
    let pem = std::fs::read(path).map_err(|e| bad(format!("cannot be read: {e}")))?;
    let (mut certs, mut keys): (Vec<Certificate<'static>>, Vec<PrivateKey<'static>>) = (vec![], vec![]);
    for item in ureq::tls::parse_pem(&pem) {
        match item.map_err(|e| bad(format!("is not valid PEM: {e}")))? {
            PemItem::Certificate(c) => certs.push(c),
            PemItem::PrivateKey(k) => keys.push(k),
            _ => {}
        }
    }
    if certs.is_empty() {
        return Err(bad("holds no certificate (-----BEGIN CERTIFICATE-----)".into()));
    }
    match keys.len() {
        0 => Err(bad(
            "holds no private key (-----BEGIN PRIVATE KEY-----): put the key in the same file".into()
        )),
        1 => Ok(ClientCert::new_with_certs(&certs, keys.remove(0))),
        n => Err(bad(format!("holds {n} private keys; keep only the certificate's"))),
    }
}

/// Why [`try_get`] got no answer: the transport error and, when TLS failed, the problem in
/// words.
#[derive(Debug)]
pub struct Unanswered {
    pub error: Error,
    pub problem: Option<Problem>,
}

/// One bodiless GET of `url`: its HTTP status when the server answered at all (so TLS works),
/// else why not, the TLS problem told for config section `section`.
pub fn try_get(http: &super::Http, url: &str, section: &str) -> std::result::Result<u16, Box<Unanswered>> {
    match http.agent().get(url).call() {
        Ok(r) => Ok(r.status().as_u16()),
        Err(e) => {
            let problem = rustls_error(&e).map(|r| explain(r, section));
            Err(Box::new(Unanswered { error: super::transport_error(&format!("GET {url}"), e), problem }))
        }
    }
}

/// The rustls error behind a transport failure, if the failure was TLS.
pub fn rustls_error(e: &ureq::Error) -> Option<&rustls::Error> {
    match e {
        ureq::Error::Rustls(r) => Some(r),
        ureq::Error::Io(io) => io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()),
        _ => None,
    }
}

/// A TLS failure told for an admin: what is wrong, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub problem: String,
    pub fix: String,
}

fn date(t: rustls::pki_types::UnixTime) -> String {
    jiff::Timestamp::from_second(t.as_secs() as i64)
        .map(|ts| ts.strftime("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|_| format!("{} s after 1970", t.as_secs()))
}

/// A name as webpki presents it (`DnsName("vms.example.com")`, `IpAddress(10.0.0.1)`), bare.
fn bare_name(n: &str) -> &str {
    match (n.find('"'), n.rfind('"')) {
        (Some(a), Some(b)) if b > a => &n[a + 1..b],
        _ => match (n.find('('), n.rfind(')')) {
            (Some(a), Some(b)) if b > a => &n[a + 1..b],
            _ => n,
        },
    }
}

/// What `e` means when talking to the server of config section `section` (`[server.vms]`,
/// `[server.s3.tls]`).
pub fn explain(e: &rustls::Error, section: &str) -> Problem {
    let p = |problem: String, fix: String| Problem { problem, fix };
    let insecure = format!("(insecure = true in {section} skips the check, and is logged as a warning)");
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => p(
                "the server's certificate is signed by a CA this media server does not trust (unknown CA)"
                    .into(),
                format!(
                    "set ca_file in {section} to the PEM of the CA that signed it (for a self-signed \
                     certificate, the certificate itself) {insecure}"
                ),
            ),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                let when = match c {
                    CertificateError::ExpiredContext { not_after, .. } => format!(" on {}", date(*not_after)),
                    _ => String::new(),
                };
                p(
                    format!("the server's certificate expired{when}"),
                    format!(
                        "renew the certificate on the cluster (and ca_file if its CA changed) {insecure}"
                    ),
                )
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => p(
                "the server's certificate is not valid yet".into(),
                "check the clock of this media server (and of the cluster): NTP".into(),
            ),
            CertificateError::NotValidForName => p(
                "the server's certificate is issued for another host name (wrong host)".into(),
                format!("set address in {section} to a name the certificate lists"),
            ),
            CertificateError::NotValidForNameContext { expected, presented } => {
                let names = presented.iter().map(|n| bare_name(n)).collect::<Vec<_>>().join(", ");
                p(
                    format!(
                        "the server's certificate is for {names} but was reached as {} (wrong host)",
                        expected.to_str()
                    ),
                    format!("set address in {section} to one of {names}"),
                )
            }
            other => p(
                format!("the server's certificate did not verify: {other}"),
                format!("check the certificate on the cluster and ca_file in {section} {insecure}"),
            ),
        },
        rustls::Error::AlertReceived(AlertDescription::CertificateRequired) => p(
            "the server requires a client certificate and none was sent".into(),
            "give the client certificate as the password: tpconfig -password 'cert:/path/to/client.pem' \
             (certificate and key in one PEM file)"
                .into(),
        ),
        rustls::Error::AlertReceived(
            a @ (AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateRevoked
            | AlertDescription::AccessDenied
            // A client certificate whose signature does not check against the CA it names.
            | AlertDescription::DecryptError),
        ) => p(
            format!("the server refused the client certificate ({a:?})"),
            "use a client certificate issued by a CA the cluster trusts, not expired, for a VMS user".into(),
        ),
        other => p(
            format!("the TLS handshake failed: {other}"),
            format!("check that the address in {section} is the TLS port of the server {insecure}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_certificate_problem_has_its_words_and_fix() {
        let vms = "[server.vms]";
        let e = |c: CertificateError| explain(&rustls::Error::InvalidCertificate(c), vms);
        let unknown = e(CertificateError::UnknownIssuer);
        assert!(unknown.problem.contains("unknown CA") && unknown.fix.contains("ca_file in [server.vms]"));
        let expired = e(CertificateError::ExpiredContext {
            time: rustls::pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(
                1_800_000_000,
            )),
            not_after: rustls::pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(
                1_700_000_000,
            )),
        });
        assert!(expired.problem.contains("expired on 2023-11-14 22:13 UTC"), "{expired:?}");
        assert!(expired.fix.contains("renew"));
        let host = e(CertificateError::NotValidForNameContext {
            expected: rustls::pki_types::ServerName::try_from("10.1.1.1").unwrap().to_owned(),
            presented: vec!["DnsName(\"vms.example.com\")".into()],
        });
        assert!(host.problem.contains("for vms.example.com but was reached as 10.1.1.1"), "{host:?}");
        assert!(host.fix.contains("address in [server.vms]"));
        let wanted = explain(&rustls::Error::AlertReceived(AlertDescription::CertificateRequired), vms);
        assert!(wanted.fix.contains("cert:/path/to/client.pem"));
    }

    #[test]
    fn client_identity_needs_a_certificate_and_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("client.pem");
        let err = |text: &str| {
            std::fs::write(&path, text).unwrap();
            let Err(e) = client_cert(&path) else { panic!("{text:?} accepted") };
            assert_eq!(e.kind(), ErrorKind::Auth);
            e.message().to_string()
        };
        assert!(err("").contains("holds no certificate"));
        let cert = "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n";
        assert!(err(cert).contains("holds no private key"));
        assert!(client_cert(&dir.path().join("missing.pem"))
            .err()
            .unwrap()
            .message()
            .contains("cannot be read"));
    }
}
