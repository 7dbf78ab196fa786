//! `cert:` credentials: `tpconfig -password 'cert:/path/to/client.pem'` (the client certificate
//! and its key in one PEM file) authenticates to VMS with mutual TLS, against a simulator that
//! requires client certificates of its CA. Each way it can go wrong has its status and a log
//! line that says what to do.

mod common;

use common::*;
use vast_ost_host::abi::*;
use vast_ost_host::Status;
use vast_sim::{Sim, SimConfig};

#[test]
fn client_certificate_authenticates_and_each_failure_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = SimConfig::new(dir.path().join("cluster"));
    cfg.require_client_cert = true;
    let sim = Sim::start(cfg).unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, sim.ca_pem().unwrap()).unwrap();
    std::fs::create_dir_all(sim.root().join("nbu/lsu1")).unwrap();
    let pem = |name: &str, text: String| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        format!("cert:{}", p.display())
    };
    let admin = pem("admin.pem", sim.client_cert_pem(sim.admin_user()).unwrap());
    // A certificate of another cluster's CA: well formed, not trusted here.
    let other = Sim::start(SimConfig::new(dir.path().join("other"))).unwrap();
    let foreign = pem("foreign.pem", other.client_cert_pem(other.admin_user()).unwrap());
    let keyless = pem("keyless.pem", sim.ca_pem().unwrap().to_string());

    let config = dir.path().join("vast-ost.toml");
    std::fs::write(
        &config,
        format!(
            "[[server]]\nname = \"VastData:mtls\"\n[server.vms]\naddress = \"{}\"\nca_file = \"{}\"\n\
             [server.nfs]\nmount = \"{}\"\nview_root = \"/\"\n",
            sim.vms_url(),
            ca.display(),
            sim.root().display()
        ),
    )
    .unwrap();
    let log = dir.path().join("vast-ost.log");
    let p = load_plugin(&config, &log);

    // The admin's certificate: the views are listed (the user name is not needed).
    let s = p.open_server("VastData:mtls", "", &admin).unwrap();
    p.close_server(s).unwrap();
    let s = p.open_server("VastData:mtls", "nbu-backup", &admin).unwrap();
    p.close_server(s).unwrap();

    let cases = [
        // A password where a certificate is required: the server says so at the handshake.
        (sim.admin_user(), sim.admin_password().to_string(), STS_ETLS, "cert:/path/to/client.pem"),
        ("", foreign, STS_ETLS, "refused the client certificate"),
        ("", keyless, STS_EAUTH, "holds no private key"),
        ("", "cert:/nonexistent/client.pem".to_string(), STS_EAUTH, "cannot be read"),
    ];
    for (user, password, status, hint) in cases {
        let got = p.open_server("VastData:mtls", user, &password).err();
        let text = std::fs::read_to_string(&log).unwrap();
        let line = text.lines().rev().find(|l| l.contains("stspi_open_server")).unwrap();
        assert_eq!(got, Some(Status(status)), "{password}: {line}");
        assert!(line.contains(hint) && line.contains(&format!("status={status}")), "{password}: {line}");
    }
    // No part of a private key reaches the log.
    let text = std::fs::read_to_string(&log).unwrap();
    let key = std::fs::read_to_string(admin.strip_prefix("cert:").unwrap()).unwrap();
    let key = key.split("PRIVATE KEY-----").nth(1).unwrap().lines().nth(1).unwrap();
    assert!(key.len() > 40 && !text.contains(key), "a key reached the log:\n{text}");
    p.terminate().unwrap();
}
