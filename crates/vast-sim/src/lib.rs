//! vast-sim: a faithful simulator of a VAST Data cluster for tests and demos, built from
//! `shared/reference/vast-rest-api.md`.
//!
//! - the VMS management REST API over HTTPS (own CA) or HTTP: [`vms`]
//! - authentication (Basic, Api-Token, JWT): [`auth`]
//! - an S3 data plane on every VIP with SigV4: [`s3`]
//! - one namespace shared by S3 and "NFS" (plain files under the data root): [`store`]
//! - fault injection (latency, 503 storms, dropped connections, VIPs down): [`faults`]
//! - a fault-injecting TCP proxy to put in front of any listener (resets, stalls): [`proxy`]
//!
//! [`Sim::start`] binds every listener and runs them on its own tokio runtime, so callers need
//! no async code; dropping the [`Sim`] (or [`Sim::stop`]) shuts everything down.
//!
//! ```no_run
//! let sim = vast_sim::Sim::start(vast_sim::SimConfig::new("/tmp/vast-sim")).unwrap();
//! println!("VMS at {} (admin/{}), S3 at {:?}", sim.vms_url(), sim.admin_password(), sim.s3_endpoints());
//! ```

mod auth;
mod faults;
mod percent;
pub mod proxy;
mod s3;
mod server;
mod store;
mod tls;
mod util;
mod vms;
mod worm;

pub use faults::{FaultConfig, Plane};
pub use util::Rng;

use anyhow::{anyhow, Context, Result};
use serde_json::json;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vms::state::{Seed, Settings, State};

/// A user created at start-up (no VMS login; an S3 identity).
#[derive(Debug, Clone)]
pub struct SeedUser {
    pub name: String,
    /// Also issue one S3 access key (see [`Sim::seeded_keys`]).
    pub access_key: bool,
}

/// A view created at start-up; with `bucket` set it is an S3 bucket (protocols S3 + NFS).
#[derive(Debug, Clone)]
pub struct SeedView {
    pub path: String,
    pub bucket: Option<String>,
    pub bucket_owner: Option<String>,
}

/// A directory quota created at start-up.
#[derive(Debug, Clone)]
pub struct SeedQuota {
    pub name: String,
    pub path: String,
    pub hard_limit: u64,
}

/// Extra objects for a fresh cluster, on top of the fixed seed (cluster, tenant, policies,
/// admin, VIP pool).
#[derive(Debug, Clone, Default)]
pub struct SeedData {
    pub users: Vec<SeedUser>,
    pub views: Vec<SeedView>,
    pub quotas: Vec<SeedQuota>,
}

/// How to start a simulator. Build with [`SimConfig::new`] and adjust the public fields.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Data root: view path `/a/b` is the directory `<root>/a/b`. Created if missing.
    pub root: PathBuf,
    /// Number of S3 VIPs (127.0.0.2, 127.0.0.3, …). Default 3.
    pub vips: usize,
    /// Serve VMS over HTTPS with the simulator's own CA. Default true.
    pub tls: bool,
    /// Names the VMS server certificate is issued for. Default `localhost`, `127.0.0.1`;
    /// others make a "wrong host" certificate.
    pub tls_names: Vec<String>,
    /// Issue the VMS server certificate already expired. Default false.
    pub tls_expired: bool,
    /// VMS refuses TLS clients without a client certificate of the simulator's CA
    /// ([`Sim::client_cert_pem`]). Default false: a client certificate is optional, and a
    /// request without an Authorization header on a connection that presented one is
    /// authenticated as the user it was issued to.
    pub require_client_cert: bool,
    /// VMS port on 127.0.0.1; 0 = ephemeral (default).
    pub vms_port: u16,
    /// S3 port on every VIP; 0 = one ephemeral port shared by all VIPs when possible.
    pub s3_port: u16,
    pub access_token_lifetime: Duration,
    pub refresh_token_lifetime: Duration,
    /// Seeds ids, guids, keys, tokens and the fault RNG.
    pub seed: u64,
    pub cluster_name: String,
    /// Total logical capacity reported by `clusters/`. Default 10 TiB.
    pub total_capacity: u64,
    /// Minimum size of every multipart part but the last. Default 5 MiB.
    pub min_part_size: u64,
    pub admin_user: String,
    pub admin_password: String,
    pub max_api_tokens_per_user: usize,
    /// Whether `folders/delete_folder/` (the trash API) is enabled. Default true.
    pub trash_enabled: bool,
    /// The S3 plane answers as if `If-None-Match` and `If-Match` were absent (as some S3
    /// servers do: `200 OK`, condition ignored). Default false.
    pub ignore_preconditions: bool,
    /// The S3 plane answers `200 OK` to PutObjectRetention and keeps no lock (as a server
    /// without Object Lock that ignores the subresource might). Default false.
    pub ignore_object_lock: bool,
    pub faults: FaultConfig,
    pub seed_data: SeedData,
}

impl SimConfig {
    pub fn new(root: impl Into<PathBuf>) -> SimConfig {
        SimConfig {
            root: root.into(),
            vips: 3,
            tls: true,
            tls_names: vec!["localhost".into(), "127.0.0.1".into()],
            tls_expired: false,
            require_client_cert: false,
            vms_port: 0,
            s3_port: 0,
            access_token_lifetime: Duration::from_secs(300),
            refresh_token_lifetime: Duration::from_secs(3600),
            seed: 1,
            cluster_name: "vast-sim".into(),
            total_capacity: 10 << 40,
            min_part_size: 5 << 20,
            admin_user: "admin".into(),
            admin_password: "123456".into(),
            max_api_tokens_per_user: 5,
            trash_enabled: true,
            ignore_preconditions: false,
            ignore_object_lock: false,
            faults: FaultConfig::default(),
            seed_data: SeedData::default(),
        }
    }
}

struct VipSlot {
    addr: SocketAddr,
    listener: Option<server::Listener>,
}

/// State shared by every listener task.
pub(crate) struct Shared {
    pub state: Mutex<State>,
    pub store: store::Store,
    pub faults: faults::Faults,
    pub uploads: Mutex<HashMap<String, s3::Upload>>,
    pub min_part_size: AtomicU64,
    /// See [`SimConfig::ignore_preconditions`].
    pub ignore_preconditions: std::sync::atomic::AtomicBool,
    /// See [`SimConfig::ignore_object_lock`].
    pub ignore_object_lock: std::sync::atomic::AtomicBool,
    /// Serialises quota check + rename of S3 writes.
    pub commit_lock: tokio::sync::Mutex<()>,
    /// Retention locks and the simulator's clock.
    pub worm: worm::Worm,
    /// `127.0.0.1:port`, for self links when a request has no Host header.
    pub vms_host: String,
    pub vip_count: usize,
    vips: Mutex<Vec<VipSlot>>,
    rt: tokio::runtime::Handle,
}

pub(crate) fn vips_down(sh: &Shared) -> Vec<usize> {
    let v = sh.vips.lock().unwrap_or_else(|e| e.into_inner());
    v.iter().enumerate().filter(|(_, s)| s.listener.is_none()).map(|(i, _)| i).collect()
}

fn s3_handler(sh: &Arc<Shared>) -> server::Handler {
    let sh = Arc::downgrade(sh);
    Arc::new(move |req| {
        let sh = sh.upgrade();
        Box::pin(async move {
            match sh {
                Some(sh) => s3::handle(sh, req).await,
                None => Err(server::Dropped),
            }
        })
    })
}

/// Takes VIP `idx` down (its listener and every open connection close; new connections are
/// refused) or brings it back up on the same address and port.
pub(crate) fn set_vip(sh: &Arc<Shared>, idx: usize, up: bool) -> Result<()> {
    let mut v = sh.vips.lock().unwrap_or_else(|e| e.into_inner());
    let slot = v.get_mut(idx).ok_or_else(|| anyhow!("no VIP with index {idx}"))?;
    if !up {
        if let Some(l) = slot.listener.take() {
            l.stop();
        }
        return Ok(());
    }
    if slot.listener.is_none() {
        // std sets SO_REUSEADDR on Unix, so the port is free again despite TIME_WAIT. The
        // listener a moment ago taken down closes on its own task: until it has, the address
        // is still in use (found by `vast-ost chaos`, a VIP down and up within milliseconds).
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        let l = loop {
            match TcpListener::bind(slot.addr) {
                Err(e)
                    if e.kind() == std::io::ErrorKind::AddrInUse && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(10))
                }
                r => break r.with_context(|| format!("rebinding VIP {}", slot.addr))?,
            }
        };
        let _g = sh.rt.enter();
        slot.listener = Some(server::spawn(l, None, s3_handler(sh))?);
    }
    Ok(())
}

/// Binds the VIP listeners: 127.0.0.2.. on one shared port, or, where those addresses cannot
/// be bound, 127.0.0.1 with one port each.
fn bind_vips(n: usize, port: u16) -> Result<Vec<TcpListener>> {
    let try_spread = || -> std::io::Result<Vec<TcpListener>> {
        let mut out: Vec<TcpListener> = Vec::new();
        let mut p = port;
        for i in 0..n {
            let ip = Ipv4Addr::new(127, 0, 0, 2 + i as u8);
            let l = TcpListener::bind((ip, p))?;
            if i == 0 {
                p = l.local_addr()?.port();
            }
            out.push(l);
        }
        Ok(out)
    };
    if n <= 250 {
        if let Ok(v) = try_spread() {
            return Ok(v);
        }
    }
    (0..n)
        .map(|i| {
            let p = if port == 0 { 0 } else { port + i as u16 };
            TcpListener::bind((Ipv4Addr::LOCALHOST, p)).context("binding a VIP on 127.0.0.1")
        })
        .collect()
}

/// A running simulator. Dropping it stops every listener.
pub struct Sim {
    rt: Option<tokio::runtime::Runtime>,
    shared: Arc<Shared>,
    vms: Option<server::Listener>,
    vms_url: String,
    ca_pem: Option<String>,
    ca: Option<tls::Ca>,
    admin: (String, String),
    seeded_keys: Vec<(String, String, String)>,
}

impl Sim {
    /// Binds every listener and returns once they accept connections.
    pub fn start(cfg: SimConfig) -> Result<Sim> {
        let store =
            store::Store::new(&cfg.root).with_context(|| format!("data root {}", cfg.root.display()))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("vast-sim")
            .enable_all()
            .build()
            .context("tokio runtime")?;
        let vms_l = TcpListener::bind((Ipv4Addr::LOCALHOST, cfg.vms_port)).context("binding the VMS port")?;
        let vms_addr = vms_l.local_addr()?;
        let vip_ls = bind_vips(cfg.vips, cfg.s3_port)?;
        let vip_addrs: Vec<SocketAddr> =
            vip_ls.iter().map(|l| l.local_addr()).collect::<std::io::Result<_>>()?;
        let mut vip_ips: Vec<String> = vip_addrs.iter().map(|a| a.ip().to_string()).collect();
        vip_ips.dedup();
        let tls = if cfg.tls {
            Some(tls::make(&tls::TlsOptions {
                names: cfg.tls_names.clone(),
                expired: cfg.tls_expired,
                require_client_cert: cfg.require_client_cert,
            })?)
        } else {
            None
        };
        let scheme = if cfg.tls { "https" } else { "http" };
        let vms_host = format!("127.0.0.1:{}", vms_addr.port());

        let mut state = State::new(Seed {
            seed: cfg.seed,
            settings: Settings {
                cluster_name: cfg.cluster_name.clone(),
                total_capacity: cfg.total_capacity,
                trash_enabled: cfg.trash_enabled,
                mgmt_vip: "127.0.0.1".into(),
                ssl_port: vms_addr.port(),
            },
            admin_user: &cfg.admin_user,
            admin_password: &cfg.admin_password,
            access_lifetime: cfg.access_token_lifetime,
            refresh_lifetime: cfg.refresh_token_lifetime,
            max_tokens: cfg.max_api_tokens_per_user,
            vip_ips: &vip_ips,
        });
        let seeded_keys = seed(&mut state, &store, &cfg.seed_data)?;

        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            store,
            faults: faults::Faults::new(cfg.faults.clone()),
            uploads: Mutex::new(HashMap::new()),
            min_part_size: AtomicU64::new(cfg.min_part_size),
            ignore_preconditions: std::sync::atomic::AtomicBool::new(cfg.ignore_preconditions),
            ignore_object_lock: std::sync::atomic::AtomicBool::new(cfg.ignore_object_lock),
            commit_lock: tokio::sync::Mutex::new(()),
            worm: worm::Worm::default(),
            vms_host,
            vip_count: vip_addrs.len(),
            vips: Mutex::new(Vec::new()),
            rt: rt.handle().clone(),
        });

        let _g = rt.enter();
        let weak = Arc::downgrade(&shared);
        let vms_handler: server::Handler = Arc::new(move |req| {
            let sh = weak.upgrade();
            Box::pin(async move {
                match sh {
                    Some(sh) => vms::handle(sh, req, scheme).await,
                    None => Err(server::Dropped),
                }
            })
        });
        let acceptor = tls.as_ref().map(|t| tokio_rustls::TlsAcceptor::from(t.server_config.clone()));
        let vms = server::spawn(vms_l, acceptor, vms_handler)?;
        {
            let mut slots = shared.vips.lock().unwrap_or_else(|e| e.into_inner());
            for l in vip_ls {
                let addr = l.local_addr()?;
                slots.push(VipSlot { addr, listener: Some(server::spawn(l, None, s3_handler(&shared))?) });
            }
        }
        drop(_g);
        Ok(Sim {
            rt: Some(rt),
            shared,
            vms: Some(vms),
            vms_url: format!("{scheme}://127.0.0.1:{}", vms_addr.port()),
            ca_pem: tls.as_ref().map(|t| t.ca_pem.clone()),
            ca: tls.map(|t| t.ca),
            admin: (cfg.admin_user, cfg.admin_password),
            seeded_keys,
        })
    }

    /// `https://127.0.0.1:PORT` (or `http://` without TLS), no trailing slash.
    pub fn vms_url(&self) -> &str {
        &self.vms_url
    }

    /// The CA certificate (PEM) that signed the VMS server certificate; None without TLS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// A client certificate and its key (one PEM text) for VMS user `user`, issued by the
    /// simulator's CA: a connection presenting it is authenticated as `user` when its
    /// requests carry no Authorization header. Errors without TLS or for an unknown user.
    pub fn client_cert_pem(&self, user: &str) -> Result<String> {
        let ca = self.ca.as_ref().ok_or_else(|| anyhow!("VMS is served without TLS"))?;
        let mut st = self.lock();
        if !st.auth.managers.iter().any(|m| m.name == user) {
            return Err(anyhow!("no VMS user {user}"));
        }
        let (pem, der) = ca.client_pem(user)?;
        st.auth.client_certs.insert(der, user.to_string());
        Ok(pem)
    }

    /// One `http://127.0.0.N:PORT` per VIP, in VIP index order (including VIPs now down).
    pub fn s3_endpoints(&self) -> Vec<String> {
        let v = self.shared.vips.lock().unwrap_or_else(|e| e.into_inner());
        v.iter().map(|s| format!("http://{}", s.addr)).collect()
    }

    /// The data root (canonical path): view path `/x` is `root().join("x")`.
    pub fn root(&self) -> &Path {
        self.shared.store.root()
    }

    pub fn admin_user(&self) -> &str {
        &self.admin.0
    }

    pub fn admin_password(&self) -> &str {
        &self.admin.1
    }

    /// `(user, access_key, secret_key)` for each `SeedUser` with `access_key: true`.
    pub fn seeded_keys(&self) -> &[(String, String, String)] {
        &self.seeded_keys
    }

    pub fn faults(&self) -> FaultConfig {
        self.shared.faults.get()
    }

    /// Replaces the fault knobs (a changed seed re-seeds the RNG).
    pub fn set_faults(&self, cfg: FaultConfig) {
        self.shared.faults.set(cfg);
    }

    /// Clears every fault and re-seeds the fault RNG; VIPs are brought back up.
    pub fn clear_faults(&self) -> Result<()> {
        self.shared.faults.set(FaultConfig::default());
        self.shared.faults.reseed();
        for i in 0..self.shared.vip_count {
            set_vip(&self.shared, i, true)?;
        }
        Ok(())
    }

    pub fn vip_down(&self, idx: usize) -> Result<()> {
        set_vip(&self.shared, idx, false)
    }

    pub fn vip_up(&self, idx: usize) -> Result<()> {
        set_vip(&self.shared, idx, true)
    }

    /// Makes every JWT access token issued so far invalid (refresh tokens stay valid).
    pub fn expire_access_tokens(&self) {
        self.lock().auth.expire_access_tokens();
    }

    /// Lifetimes of tokens issued from now on.
    pub fn set_token_lifetimes(&self, access: Duration, refresh: Duration) {
        let mut st = self.lock();
        st.auth.access_lifetime = access;
        st.auth.refresh_lifetime = refresh;
    }

    pub fn set_trash_enabled(&self, on: bool) {
        self.lock().settings.trash_enabled = on;
    }

    pub fn set_min_part_size(&self, bytes: u64) {
        self.shared.min_part_size.store(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    /// Make the S3 plane ignore `If-None-Match` and `If-Match` (answer as if they were absent).
    /// Move the simulator's clock (which decides when retention locks run out) by `secs`.
    pub fn advance_clock(&self, secs: i64) {
        self.shared.worm.advance(secs);
    }

    pub fn set_ignore_preconditions(&self, on: bool) {
        self.shared.ignore_preconditions.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Make the S3 plane accept PutObjectRetention and keep no lock.
    pub fn set_ignore_object_lock(&self, on: bool) {
        self.shared.ignore_object_lock.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Creates a local user (like `POST users/`) and returns its id.
    pub fn create_user(&self, name: &str) -> Result<u64> {
        let mut st = self.lock();
        add_user(&mut st, name)
    }

    /// Issues an S3 key pair for a user (like `POST users/{id}/access_keys/`).
    pub fn create_access_key(&self, user_id: u64) -> Result<(String, String)> {
        let mut st = self.lock();
        if st.get("users", user_id).is_none() {
            return Err(anyhow!("no user with id {user_id}"));
        }
        let k = st.new_access_key(user_id, 1);
        Ok((k.access_key, k.secret_key))
    }

    /// Creates an S3 bucket view (protocols S3 + NFS, `s3_default_policy`) at `path`,
    /// creating the directory; returns the view id.
    pub fn create_bucket(&self, bucket: &str, owner: &str, path: &str) -> Result<u64> {
        let mut st = self.lock();
        add_view(
            &mut st,
            &self.shared.store,
            &SeedView { path: path.into(), bucket: Some(bucket.into()), bucket_owner: Some(owner.into()) },
        )
    }

    /// Stops every listener and the runtime. Also done on drop.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(v) = self.vms.take() {
            v.stop();
        }
        self.shared.vips.lock().unwrap_or_else(|e| e.into_inner()).clear();
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn add_user(st: &mut State, name: &str) -> Result<u64> {
    if st.user_by_name(name).is_some() {
        return Err(anyhow!("user {name} exists"));
    }
    let uid = 1000 + st.colls["users"].next_id + 1;
    Ok(st.add(
        "users",
        json!({
            "name": name, "uid": uid, "leading_gid": uid, "gids": [], "groups": [],
            "allow_create_bucket": true, "allow_delete_bucket": true, "s3_superuser": false,
            "s3_policies_ids": [], "local_provider_id": 1, "local": true, "sid": null, "tenant_id": 1,
        }),
    ))
}

fn add_view(st: &mut State, store: &store::Store, v: &SeedView) -> Result<u64> {
    let dir = store.resolve(&v.path).ok_or_else(|| anyhow!("invalid view path {}", v.path))?;
    if let Some(b) = &v.bucket {
        if !vms::valid_bucket_name(b) || st.bucket(b).is_some() {
            return Err(anyhow!("bucket {b} is invalid or exists"));
        }
        let owner = v.bucket_owner.as_deref().unwrap_or("");
        if st.user_by_name(owner).is_none() {
            return Err(anyhow!("bucket owner {owner} does not exist"));
        }
    }
    std::fs::create_dir_all(&dir)?;
    let s3 = v.bucket.is_some();
    let policy = if s3 { 2 } else { 1 };
    Ok(st.add("views", json!({
        "path": v.path, "name": v.bucket.clone().unwrap_or_else(|| v.path.clone()),
        "bucket": v.bucket.clone().unwrap_or_default(), "bucket_owner": v.bucket_owner.clone().unwrap_or_default(),
        "bucket_owner_type": if s3 { json!("USER") } else { json!(null) },
        "protocols": if s3 { json!(["S3", "NFS"]) } else { json!(["NFS"]) },
        "policy_id": policy, "tenant_id": 1, "alias": "", "share": "", "s3_versioning": false,
        "locking": false, "files_retention_mode": "NONE",
    })))
}

fn seed(st: &mut State, store: &store::Store, d: &SeedData) -> Result<Vec<(String, String, String)>> {
    let mut keys = Vec::new();
    for u in &d.users {
        let id = add_user(st, &u.name)?;
        if u.access_key {
            let k = st.new_access_key(id, 1);
            keys.push((u.name.clone(), k.access_key, k.secret_key));
        }
    }
    for v in &d.views {
        add_view(st, store, v)?;
    }
    for q in &d.quotas {
        let dir = store.resolve(&q.path).ok_or_else(|| anyhow!("invalid quota path {}", q.path))?;
        std::fs::create_dir_all(dir)?;
        st.add(
            "quotas",
            json!({
                "name": q.name, "path": q.path, "hard_limit": q.hard_limit, "tenant_id": 1,
                "is_user_quota": false, "is_physical_quota": false,
            }),
        );
    }
    Ok(keys)
}
