//! Shared test helpers: start a simulator in a temp dir and talk to it with ureq (VMS, over
//! TLS verified against the simulator's CA) and rusty-s3 (S3, an independent SigV4 signer).
#![allow(dead_code)]

use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use vast_sim::{Sim, SimConfig};

pub use ureq::http;

pub struct Env {
    pub sim: Sim,
    pub dir: tempfile::TempDir,
    pub agent: ureq::Agent,
}

pub fn agent(ca_pem: Option<&str>) -> ureq::Agent {
    let mut tls = ureq::tls::TlsConfig::builder();
    if let Some(pem) = ca_pem {
        let cert = ureq::tls::Certificate::from_pem(pem.as_bytes()).unwrap().to_owned();
        tls = tls.root_certs(ureq::tls::RootCerts::Specific(Arc::new(vec![cert])));
    }
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .tls_config(tls.build())
        .build()
        .into()
}

pub fn start_with(f: impl FnOnce(&mut SimConfig)) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = SimConfig::new(dir.path().join("root"));
    f(&mut cfg);
    let sim = Sim::start(cfg).unwrap();
    let agent = agent(sim.ca_pem());
    Env { sim, dir, agent }
}

pub fn start() -> Env {
    start_with(|_| {})
}

pub fn basic(user: &str, pass: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}")))
}

pub struct Reply {
    pub status: u16,
    pub text: String,
    pub headers: http::HeaderMap,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }
}

impl Env {
    pub fn admin_auth(&self) -> String {
        basic(self.sim.admin_user(), self.sim.admin_password())
    }

    /// A raw VMS call: `path` is appended to the VMS URL (e.g. `/api/v5/views/`).
    pub fn raw(&self, method: &str, path: &str, auth: Option<&str>, body: Option<&Value>) -> Reply {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{}", self.sim.vms_url(), path)
        };
        let mut b = http::Request::builder().method(method).uri(url).header("accept", "application/json");
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        let bytes = match body {
            Some(v) => {
                b = b.header("content-type", "application/json");
                serde_json::to_vec(v).unwrap()
            }
            None => Vec::new(),
        };
        let resp = self.agent.run(b.body(bytes).unwrap()).unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.into_body().read_to_string().unwrap_or_default();
        Reply { status, text, headers }
    }

    /// Admin call with Basic auth on `/api/latest/<path>`.
    pub fn api(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        self.raw(method, &format!("/api/latest/{path}"), Some(&self.admin_auth()), body.as_ref())
    }

    /// Creates user `name` and returns (user id, access key, secret key) via the REST API.
    pub fn s3_user(&self, name: &str) -> (u64, String, String) {
        let r = self.api("POST", "users/", Some(json!({"name": name, "uid": 5000 + name.len() as u64})));
        assert_eq!(r.status, 201, "{}", r.text);
        let id = r.json()["id"].as_u64().unwrap();
        let k = self.api("POST", &format!("users/{id}/access_keys/"), Some(json!({})));
        assert_eq!(k.status, 200, "{}", k.text);
        let k = k.json();
        (id, k["access_key"].as_str().unwrap().into(), k["secret_key"].as_str().unwrap().into())
    }

    /// Creates an S3 bucket view at `/buckets/<bucket>` owned by `owner` via the REST API.
    pub fn bucket_view(&self, bucket: &str, owner: &str) -> Value {
        let r = self.api(
            "POST",
            "views/",
            Some(json!({
                "path": format!("/buckets/{bucket}"), "policy_id": 2, "protocols": ["S3", "NFS"],
                "bucket": bucket, "bucket_owner": owner, "create_dir": true,
            })),
        );
        assert_eq!(r.status, 201, "{}", r.text);
        r.json()
    }
}

/// An S3 client: rusty-s3 signs (presigned SigV4), ureq sends.
pub struct S3 {
    pub bucket: rusty_s3::Bucket,
    pub creds: rusty_s3::Credentials,
    pub agent: ureq::Agent,
}

pub const TTL: Duration = Duration::from_secs(300);

impl S3 {
    pub fn new(endpoint: &str, bucket: &str, ak: &str, sk: &str) -> S3 {
        let bucket = rusty_s3::Bucket::new(
            endpoint.parse().unwrap(),
            rusty_s3::UrlStyle::Path,
            bucket.to_string(),
            "us-east-1",
        )
        .unwrap();
        S3 { bucket, creds: rusty_s3::Credentials::new(ak, sk), agent: agent(None) }
    }

    pub fn send(&self, method: &str, url: &url::Url, headers: &[(&str, &str)], body: Vec<u8>) -> Reply {
        let mut b = http::Request::builder().method(method).uri(url.as_str());
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let resp = self.agent.run(b.body(body).unwrap()).unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = String::from_utf8_lossy(&resp.into_body().read_to_vec().unwrap_or_default()).into_owned();
        Reply { status, text, headers }
    }

    pub fn send_bytes(
        &self,
        method: &str,
        url: &url::Url,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (u16, http::HeaderMap, Vec<u8>) {
        let mut b = http::Request::builder().method(method).uri(url.as_str());
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let resp = self.agent.run(b.body(body).unwrap()).unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (status, headers, resp.into_body().with_config().limit(1 << 30).read_to_vec().unwrap_or_default())
    }

    pub fn put(&self, key: &str, data: &[u8]) -> Reply {
        use rusty_s3::S3Action;
        let url = self.bucket.put_object(Some(&self.creds), key).sign(TTL);
        self.send("PUT", &url, &[], data.to_vec())
    }

    pub fn get(&self, key: &str) -> (u16, Vec<u8>) {
        use rusty_s3::S3Action;
        let url = self.bucket.get_object(Some(&self.creds), key).sign(TTL);
        let (s, _, b) = self.send_bytes("GET", &url, &[], Vec::new());
        (s, b)
    }

    pub fn delete(&self, key: &str) -> Reply {
        use rusty_s3::S3Action;
        let url = self.bucket.delete_object(Some(&self.creds), key).sign(TTL);
        self.send("DELETE", &url, &[], Vec::new())
    }
}
