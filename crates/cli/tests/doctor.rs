//! `vast-ost doctor` against the simulator: all green on a good setup, and for each broken
//! setup exactly one failing line, the right one, with its fix: a bad password, a CA that did
//! not sign VMS's certificate, an expired certificate, a certificate for another host, an LSU
//! the config names that does not exist, a data VIP that does not answer; and `cert:`
//! credentials against a cluster that requires client certificates.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;
use vast_sim::{SeedData, SeedQuota, SeedUser, SeedView, Sim, SimConfig};

const SERVER: &str = "VastData:sim";

/// The plug-in beside the binary (`cargo build` puts both in target/<profile>/).
fn plugin() -> PathBuf {
    let so = Path::new(env!("CARGO_BIN_EXE_vast-ost")).with_file_name("libstspiVastDataMT.so");
    assert!(so.exists(), "{} is missing: run cargo build first", so.display());
    so
}

/// A simulated cluster with an NFS view (with a quota), an S3 bucket and a WORM bucket, and its
/// CA's file.
struct Cluster {
    sim: Sim,
    ca: PathBuf,
    /// The S3 key of the bucket's owner.
    keys: (String, String),
}

fn cluster(dir: &Path, name: &str, adjust: impl FnOnce(&mut SimConfig)) -> Cluster {
    let mut cfg = SimConfig::new(dir.join(name));
    cfg.seed_data = SeedData {
        users: vec![SeedUser { name: "nbu-s3".into(), access_key: true }],
        views: vec![SeedView {
            path: "/nbu/bkt".into(),
            bucket: Some("nbu-bkt".into()),
            bucket_owner: Some("nbu-s3".into()),
        }],
        quotas: vec![SeedQuota { name: "lsu1".into(), path: "/nbu/lsu1".into(), hard_limit: 1 << 30 }],
    };
    adjust(&mut cfg);
    let sim = Sim::start(cfg).unwrap();
    let ca = dir.join(format!("{name}-ca.pem"));
    std::fs::write(&ca, sim.ca_pem().unwrap()).unwrap();
    let (_, ak, sk) = sim.seeded_keys()[0].clone();
    // An NFS view named as an LSU, made as an admin would (seeded views are named by path).
    // The admin's client certificate, and no certificate check: works on every set-up here,
    // the expired, wrong-host and client-certificate ones included.
    let pem = dir.join(format!("{name}-admin.pem"));
    std::fs::write(&pem, sim.client_cert_pem("admin").unwrap()).unwrap();
    let cert = format!("cert:{}", pem.display());
    let creds =
        vast_ost_engine::Credentials { user: String::new(), password: vast_ost_engine::Secret::new(cert) };
    let mut vms = vast_ost_engine::vms::VmsSettings::new(sim.vms_url(), Default::default());
    vms.tls.insecure = true;
    let admin = vast_ost_engine::vms::Vms::connect(&vms, &creds).unwrap();
    let view = serde_json::json!({"name": "nbu-lsu1", "path": "/nbu/lsu1", "policy_id": 1,
                                  "protocols": ["NFS"], "create_dir": true});
    admin.post("views/", &view).unwrap();
    // A WORM bucket (S3 Object Lock, COMPLIANCE, 1 h .. 1 y), owned by the same S3 user.
    let worm = serde_json::json!({"name": "nbu-worm", "path": "/nbu/worm", "policy_id": 2, "protocols": ["S3"],
                                  "bucket": "nbu-worm", "bucket_owner": "nbu-s3", "create_dir": true,
                                  "s3_versioning": true, "locking": true, "s3_locks_retention_mode": "COMPLIANCE",
                                  "min_retention_period": "1h", "max_retention_period": "1y"});
    admin.post("views/", &worm).unwrap();
    Cluster { sim, ca, keys: (ak, sk) }
}

/// A config for `c` (mode 0600), with `extra` lines in `[[server]]` and `ca` as the CA file.
fn config(dir: &Path, file: &str, c: &Cluster, ca: &Path, extra: &str) -> PathBuf {
    let port = c.sim.s3_endpoints()[0].rsplit(':').next().unwrap().to_string();
    let text = format!(
        "[[server]]\nname = \"{SERVER}\"\n{extra}\n[server.vms]\naddress = \"{}\"\nca_file = \"{}\"\n\
         [server.nfs]\nmount = \"{}\"\n[server.s3]\nvip_port = {port}\naccess_key = \"{}\"\nsecret_key = \"{}\"\n",
        c.sim.vms_url(),
        ca.display(),
        c.sim.root().display(),
        c.keys.0,
        c.keys.1
    );
    let path = dir.join(file);
    std::fs::write(&path, text).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// `vast-ost doctor --json` with `config` and the credentials: exit code and the checks.
fn doctor(config: &Path, user: &str, password: &str, args: &[&str]) -> (i32, Vec<Value>) {
    let dir = config.parent().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vast-ost"))
        .arg("--plugin")
        .arg(plugin())
        .arg("--config")
        .arg(config)
        .args(["--user", user, "--password", password, "doctor", SERVER, "--json"])
        .args(args)
        .env("VAST_OST_LOG", dir.join("vast-ost.log"))
        .env("VAST_OST_CACHE_DIR", dir.join("cache"))
        .env_remove("VAST_OST_SERVER")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let doc: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!("doctor --json printed no JSON ({e}):\n{text}\n{}", String::from_utf8_lossy(&out.stderr))
    });
    assert_eq!(doc["ok"], out.status.success(), "{doc:#}");
    (out.status.code().unwrap_or(-1), doc["checks"].as_array().unwrap().clone())
}

fn field<'a>(c: &'a Value, k: &str) -> &'a str {
    c[k].as_str().unwrap_or("")
}

/// Doctor fails (exit status 1) with exactly one failing check: its item, detail and fix, and
/// all the checks.
fn fails(config: &Path, user: &str, password: &str, args: &[&str]) -> ((String, String, String), Vec<Value>) {
    let (code, checks) = doctor(config, user, password, args);
    assert_eq!(code, 1, "{checks:#?}");
    (one_failure(&checks), checks)
}

/// The one failing check: its item, detail and fix.
fn one_failure(checks: &[Value]) -> (String, String, String) {
    let failed: Vec<&Value> = checks.iter().filter(|c| c["state"] == "fail").collect();
    assert_eq!(failed.len(), 1, "expected exactly one failing check: {failed:#?}");
    let f = failed[0];
    (field(f, "item").into(), field(f, "detail").into(), field(f, "fix").into())
}

struct Shared {
    dir: tempfile::TempDir,
    good: Cluster,
}

fn shared() -> &'static Shared {
    static S: OnceLock<Shared> = OnceLock::new();
    S.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let good = cluster(dir.path(), "good", |_| {});
        Shared { dir, good }
    })
}

#[test]
fn a_good_setup_is_all_green() {
    let s = shared();
    let cfg = config(s.dir.path(), "good.toml", &s.good, &s.good.ca, "lsu_prefix = \"nbu-\"");
    let (code, checks) = doctor(&cfg, "admin", "123456", &[]);
    assert_eq!(code, 0, "{checks:#?}");
    for c in &checks {
        // The plug-in may warn when it was built at another commit than this binary.
        assert!(c["state"] == "ok" || (c["check"] == "plugin" && c["state"] == "warn"), "{c:#}");
    }
    let items: Vec<&str> = checks.iter().map(|c| field(c, "item")).collect();
    for want in [
        "plug-in",
        "config",
        "VMS login",
        "LSU nbu-lsu1",
        "LSU nbu-bkt",
        "S3 features nbu-bkt",
        "WORM nbu-worm",
        "probe nbu-lsu1",
        "probe nbu-bkt",
    ] {
        assert!(items.contains(&want), "no {want:?} line: {items:?}");
    }
    let by_check = |k: &str| checks.iter().filter(|c| c["check"] == k).count();
    assert_eq!(by_check("vip"), 3, "one line per data VIP: {items:?}");
    assert!(by_check("tls") == 1 && by_check("dns") == 1 && by_check("nfs") == 1, "{items:?}");
    // The text form: the same checks, a summary, exit status 0.
    let out = Command::new(env!("CARGO_BIN_EXE_vast-ost"))
        .args(["--plugin", plugin().to_str().unwrap(), "--config", cfg.to_str().unwrap()])
        .args(["--user", "admin", "--password", "123456", "doctor", SERVER])
        .env("VAST_OST_LOG", s.dir.path().join("vast-ost.log"))
        .env("VAST_OST_CACHE_DIR", s.dir.path().join("cache"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("[ OK ] probe nbu-bkt") && text.contains("all checks passed"),
        "{text}"
    );
}

#[test]
fn a_bad_password_fails_the_login_line() {
    let s = shared();
    let cfg = config(s.dir.path(), "password.toml", &s.good, &s.good.ca, "");
    let ((item, detail, fix), checks) = fails(&cfg, "admin", "not-the-password", &[]);
    assert_eq!(item, "VMS login");
    assert!(detail.contains("refused user 'admin'"), "{detail}");
    assert!(fix.contains("tpconfig -update") && fix.contains("-sts_user_id admin"), "{fix}");
    assert!(!detail.contains("not-the-password") && !fix.contains("not-the-password"));
    assert!(checks.iter().filter(|c| c["check"] == "probe").all(|c| c["state"] == "skip"));
}

#[test]
fn a_wrong_ca_fails_the_tls_line() {
    let s = shared();
    let other = cluster(s.dir.path(), "other", |_| {});
    let cfg = config(s.dir.path(), "ca.toml", &s.good, &other.ca, "");
    let ((item, detail, fix), _) = fails(&cfg, "admin", "123456", &[]);
    assert!(item.starts_with("TLS to VMS 127.0.0.1:"), "{item}");
    assert!(detail.contains("unknown CA"), "{detail}");
    assert!(fix.contains("ca_file in [server.vms]"), "{fix}");
}

#[test]
fn an_unknown_lsu_fails_its_line() {
    let s = shared();
    let cfg = config(s.dir.path(), "lsu.toml", &s.good, &s.good.ca, "lsus = [\"nbu-lsu1\", \"nbu-nope\"]");
    let ((item, detail, fix), checks) = fails(&cfg, "admin", "123456", &[]);
    assert_eq!(item, "LSU nbu-nope");
    assert!(detail.contains("not visible"), "{detail}");
    assert!(fix.contains("vast-ost provision nbu-nope"), "{fix}");
    // The LSU that exists is still checked and probed.
    assert!(checks.iter().any(|c| c["item"] == "probe nbu-lsu1" && c["state"] == "ok"));
    // --lsu names a disk pool's volume the same way.
    let cfg = config(s.dir.path(), "lsu2.toml", &s.good, &s.good.ca, "");
    assert_eq!(fails(&cfg, "admin", "123456", &["--lsu", "nbu-gone"]).0 .0, "LSU nbu-gone");
}

#[test]
fn an_unreachable_vip_fails_its_line() {
    let s = shared();
    let c = cluster(s.dir.path(), "vips", |_| {});
    let down = c.sim.s3_endpoints()[1].clone();
    c.sim.vip_down(1).unwrap();
    let cfg = config(s.dir.path(), "vip.toml", &c, &c.ca, "");
    let ((item, detail, fix), checks) = fails(&cfg, "admin", "123456", &[]);
    assert_eq!(item, format!("data VIP {down}"));
    assert!(detail.contains("refused"), "{detail}");
    assert!(fix.contains("VIP pool"), "{fix}");
    // The other VIPs carry the data: the probes pass.
    assert!(checks.iter().filter(|c| c["check"] == "probe").all(|c| c["state"] == "ok"));
}

#[test]
fn a_worm_bucket_whose_locks_do_not_hold_fails_its_line() {
    let s = shared();
    let c = cluster(s.dir.path(), "nolock", |c| c.ignore_object_lock = true);
    let cfg = config(s.dir.path(), "nolock.toml", &c, &c.ca, "");
    let ((item, detail, fix), checks) = fails(&cfg, "admin", "123456", &[]);
    assert_eq!(item, "WORM nbu-worm");
    assert!(detail.contains("no lock is held"), "{detail}");
    assert!(fix.contains("Object Lock"), "{fix}");
    assert!(checks.iter().filter(|c| c["check"] == "probe").all(|c| c["state"] == "ok"));
}

#[test]
fn expired_and_wrong_host_certificates_are_told_apart() {
    let s = shared();
    let expired = cluster(s.dir.path(), "expired", |c| c.tls_expired = true);
    let cfg = config(s.dir.path(), "expired.toml", &expired, &expired.ca, "");
    let ((_, detail, fix), _) = fails(&cfg, "admin", "123456", &[]);
    assert!(detail.contains("expired on 2021-01-01"), "{detail}");
    assert!(fix.contains("renew"), "{fix}");

    let elsewhere = cluster(s.dir.path(), "elsewhere", |c| c.tls_names = vec!["vms.example.invalid".into()]);
    let cfg = config(s.dir.path(), "host.toml", &elsewhere, &elsewhere.ca, "");
    let ((_, detail, fix), _) = fails(&cfg, "admin", "123456", &[]);
    assert!(detail.contains("is for vms.example.invalid") && detail.contains("wrong host"), "{detail}");
    assert!(fix.contains("address in [server.vms]"), "{fix}");
}

#[test]
fn client_certificates_where_vms_requires_them() {
    let s = shared();
    let c = cluster(s.dir.path(), "mtls", |c| c.require_client_cert = true);
    let pem = s.dir.path().join("mtls-admin.pem");
    std::fs::write(&pem, c.sim.client_cert_pem("admin").unwrap()).unwrap();
    let cfg = config(s.dir.path(), "mtls.toml", &c, &c.ca, "");
    let (code, checks) = doctor(&cfg, "", &format!("cert:{}", pem.display()), &[]);
    assert_eq!(code, 0, "{checks:#?}");
    let login = checks.iter().find(|c| c["item"] == "VMS login").unwrap();
    assert!(field(login, "detail").starts_with("client certificate"), "{login}");
    // A password where the cluster wants a certificate: the TLS line says what to give.
    let ((item, _, fix), _) = fails(&cfg, "admin", "123456", &[]);
    assert!(item.starts_with("TLS to VMS"), "{item}");
    assert!(fix.contains("cert:"), "{fix}");
}
