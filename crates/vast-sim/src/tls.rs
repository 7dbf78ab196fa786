//! TLS for the VMS listener. Real VMS presents a self-signed certificate; the simulator makes
//! its own small CA (so clients can test the "custom CA PEM" mode, not only "insecure") and a
//! server certificate for `localhost`/`127.0.0.1` signed by it. rcgen and rustls both use the
//! `ring` provider: no aws-lc, no OpenSSL.
//!
//! For the plug-in's tests of broken setups the server certificate can be issued for other
//! names (a wrong host) or already expired, and for `cert:` credentials the listener asks for
//! client certificates issued by the same CA ([`Ca::client_pem`]): optionally, or required.

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::sync::Arc;
use tokio_rustls::rustls::{
    self,
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
    server::WebPkiClientVerifier,
    RootCertStore,
};

/// How the VMS listener's TLS is set up.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    /// Names the server certificate is issued for.
    pub names: Vec<String>,
    /// Issue the server certificate already expired.
    pub expired: bool,
    /// Refuse clients without a certificate of the simulator's CA (otherwise one is optional).
    pub require_client_cert: bool,
}

/// The simulator's CA: it signed the server certificate and signs client certificates.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    /// A client certificate for `user` (CN, clientAuth) and its key, in one PEM text; and the
    /// certificate's DER, which identifies the user on the connections that present it.
    pub fn client_pem(&self, user: &str) -> Result<(String, Vec<u8>)> {
        let key = KeyPair::generate().context("client key")?;
        let mut params = CertificateParams::new(Vec::<String>::new()).context("client params")?;
        params.distinguished_name.push(DnType::CommonName, user);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer).context("client certificate")?;
        Ok((format!("{}{}", cert.pem(), key.serialize_pem()), cert.der().to_vec()))
    }
}

pub struct TlsMaterial {
    pub ca_pem: String,
    pub ca: Ca,
    pub server_config: Arc<rustls::ServerConfig>,
}

pub fn make(o: &TlsOptions) -> Result<TlsMaterial> {
    let ca_key = KeyPair::generate().context("CA key")?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).context("CA params")?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "vast-sim CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key).context("CA certificate")?;
    let issuer = Issuer::new(ca_params, ca_key);

    let srv_key = KeyPair::generate().context("server key")?;
    let mut srv_params = CertificateParams::new(o.names.clone()).context("server params")?;
    srv_params.distinguished_name.push(DnType::CommonName, "vast-sim VMS");
    if o.expired {
        srv_params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        srv_params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let srv_cert = srv_params.signed_by(&srv_key, &issuer).context("server certificate")?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(ca_cert.der().clone()).context("CA as client root")?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    let verifier = if o.require_client_cert { verifier } else { verifier.allow_unauthenticated() };
    let chain: Vec<CertificateDer<'static>> = vec![srv_cert.der().clone(), ca_cert.der().clone()];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(srv_key.serialize_der()));
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_client_cert_verifier(verifier.build().context("client certificate verifier")?)
        .with_single_cert(chain, key)
        .context("TLS server config")?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsMaterial { ca_pem: ca_cert.pem(), ca: Ca { issuer }, server_config: Arc::new(cfg) })
}
