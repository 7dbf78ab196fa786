//! The VMS object model: collections of JSON objects (views, quotas, users, ...), S3 access
//! keys, the auth state, and the seed a fresh cluster starts with. Stored objects hold only
//! what a client wrote plus ids/guids/timestamps; everything derived (self `url`, capacities,
//! names of related objects) is added by `render` at read time, so it always reflects the
//! bytes actually on disk.

use crate::auth::{AuthState, Manager};
use crate::store::Store;
use crate::util::{duration_string, iso8601, unix_now, Rng, ALNUM, UPPER_ALNUM};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

pub const SW_VERSION: &str = "5.3.1.0.1";
pub const BUILD: &str = "release-5.3.1-sim";

pub type Obj = Map<String, Value>;

#[derive(Default)]
pub struct Coll {
    pub next_id: u64,
    pub items: BTreeMap<u64, Obj>,
}

impl Coll {
    pub fn insert(&mut self, mut o: Obj) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        o.insert("id".into(), json!(id));
        self.items.insert(id, o);
        id
    }
    pub fn find(&self, field: &str, val: &Value) -> Option<(u64, &Obj)> {
        self.items.iter().find(|(_, o)| o.get(field) == Some(val)).map(|(k, v)| (*k, v))
    }
}

#[derive(Debug, Clone)]
pub struct AccessKey {
    pub id: u64,
    pub user_id: u64,
    pub access_key: String,
    pub secret_key: String,
    pub enabled: bool,
    pub created: Duration,
    pub tenant_id: u64,
}

pub struct Settings {
    pub cluster_name: String,
    pub total_capacity: u64,
    pub trash_enabled: bool,
    pub mgmt_vip: String,
    pub ssl_port: u16,
}

pub struct State {
    pub rng: Rng,
    pub auth: AuthState,
    pub colls: BTreeMap<&'static str, Coll>,
    pub keys: Vec<AccessKey>,
    next_key_id: u64,
    pub settings: Settings,
}

/// Resources stored as generic collections.
pub const COLLECTIONS: &[&str] = &[
    "clusters",
    "versions",
    "vms",
    "views",
    "viewpolicies",
    "quotas",
    "users",
    "vippools",
    "tenants",
    "snapshots",
    "vtasks",
];

pub struct Seed<'a> {
    pub seed: u64,
    pub settings: Settings,
    pub admin_user: &'a str,
    pub admin_password: &'a str,
    pub access_lifetime: Duration,
    pub refresh_lifetime: Duration,
    pub max_tokens: usize,
    pub vip_ips: &'a [String],
}

impl State {
    pub fn new(s: Seed<'_>) -> State {
        let mut rng = Rng::new(s.seed);
        let auth = AuthState::new(&mut rng, s.access_lifetime, s.refresh_lifetime, s.max_tokens);
        let mut st = State {
            rng,
            auth,
            colls: COLLECTIONS.iter().map(|c| (*c, Coll::default())).collect(),
            keys: Vec::new(),
            next_key_id: 0,
            settings: s.settings,
        };
        st.auth.managers.push(Manager {
            id: 1,
            name: s.admin_user.to_string(),
            password: s.admin_password.to_string(),
        });
        let name = st.settings.cluster_name.clone();
        let mgmt = st.settings.mgmt_vip.clone();
        let cluster_guid = st.rng.uuid();
        st.add(
            "clusters",
            json!({
                "guid": cluster_guid, "name": name, "state": "ONLINE", "sw_version": SW_VERSION,
                "build": BUILD, "mgmt_vip": mgmt, "leader_state": "UP", "enable_s3": true,
                "s3_enable_v2_authentication": false, "s3_block_v2_authentication": true,
                "psnt": "vast-sim-psnt", "uptime": "0:00:00",
            }),
        );
        st.add(
            "versions",
            json!({
                "name": SW_VERSION, "sys_version": SW_VERSION, "os_version": "5.3.1-sim",
                "build": BUILD, "status": "success", "cluster": name,
            }),
        );
        st.add(
            "vms",
            json!({
                "name": "vms", "sw_version": SW_VERSION, "build": BUILD, "mgmt_vip": mgmt,
                "ssl_port": st.settings.ssl_port, "min_tls_version": "1.2", "capacity_base_10": true,
            }),
        );
        st.add(
            "tenants",
            json!({
                "name": "default", "client_ip_ranges": [], "vippool_names": ["protocols"],
                "vippool_ids": [1], "is_default": true,
            }),
        );
        st.add(
            "viewpolicies",
            json!({
                "name": "default", "flavor": "NFS", "access_flavor": "ALL", "tenant_id": 1,
                "nfs_read_write": ["*"], "nfs_read_only": [], "nfs_no_squash": ["*"],
                "nfs_root_squash": [], "nfs_all_squash": [], "read_write": ["*"], "read_only": [],
                "s3_read_write": [], "s3_read_only": [], "vip_pools": [], "is_s3_default_policy": false,
                "s3_special_chars_support": false,
            }),
        );
        st.add(
            "viewpolicies",
            json!({
                "name": "s3_default_policy", "flavor": "S3_NATIVE", "access_flavor": "ALL",
                "tenant_id": 1, "nfs_read_write": ["*"], "nfs_read_only": [], "nfs_no_squash": [],
                "nfs_root_squash": ["*"], "nfs_all_squash": [], "read_write": ["*"], "read_only": [],
                "s3_read_write": ["*"], "s3_read_only": [], "vip_pools": [],
                "is_s3_default_policy": true, "s3_special_chars_support": false,
            }),
        );
        st.add(
            "users",
            json!({
                "name": s.admin_user, "uid": 1000, "leading_gid": 1000, "gids": [], "groups": [],
                "allow_create_bucket": true, "allow_delete_bucket": true, "s3_superuser": false,
                "s3_policies_ids": [], "local_provider_id": 1, "local": true, "sid": null,
                "tenant_id": 1,
            }),
        );
        let (first, last) = match (s.vip_ips.first(), s.vip_ips.last()) {
            (Some(f), Some(l)) => (f.clone(), l.clone()),
            _ => ("127.0.0.2".to_string(), "127.0.0.2".to_string()),
        };
        let cnodes: Vec<u64> = (1..=s.vip_ips.len().max(1) as u64).collect();
        st.add(
            "vippools",
            json!({
                "name": "protocols", "ip_ranges": [[first, last]], "subnet_cidr": 8, "gw_ip": "",
                "vlan": 0, "role": "PROTOCOLS", "enabled": true, "state": "ACTIVE",
                "cnode_ids": cnodes, "active_cnode_ids": cnodes, "active_interfaces": cnodes.len(),
                "port_membership": "ALL", "domain_name": "protocols", "tenant_id": 1, "enable_l3": false,
            }),
        );
        st
    }

    /// Inserts a seeded object with guid and creation time.
    pub fn add(&mut self, coll: &'static str, v: Value) -> u64 {
        let mut o = match v {
            Value::Object(o) => o,
            _ => Obj::new(),
        };
        let guid = self.rng.uuid();
        o.entry("guid").or_insert(json!(guid));
        o.entry("created").or_insert(json!(iso8601(unix_now())));
        self.coll(coll).insert(o)
    }

    pub fn coll(&mut self, name: &'static str) -> &mut Coll {
        self.colls.entry(name).or_default()
    }

    pub fn get(&self, coll: &str, id: u64) -> Option<&Obj> {
        self.colls.get(coll)?.items.get(&id)
    }

    pub fn new_access_key(&mut self, user_id: u64, tenant_id: u64) -> AccessKey {
        self.next_key_id += 1;
        let k = AccessKey {
            id: self.next_key_id,
            user_id,
            access_key: self.rng.string(UPPER_ALNUM, 20),
            secret_key: self.rng.string(ALNUM, 40),
            enabled: true,
            created: unix_now(),
            tenant_id,
        };
        self.keys.push(k.clone());
        k
    }

    pub fn tenant_name(&self, id: Option<u64>) -> Value {
        id.and_then(|id| self.get("tenants", id)).and_then(|t| t.get("name").cloned()).unwrap_or(Value::Null)
    }

    pub fn user_by_name(&self, name: &str) -> Option<(u64, &Obj)> {
        self.colls.get("users")?.find("name", &json!(name))
    }

    /// Views that are S3 buckets, by bucket name.
    pub fn bucket(&self, bucket: &str) -> Option<(u64, &Obj)> {
        let (id, v) = self.colls.get("views")?.find("bucket", &json!(bucket))?;
        has_protocol(v, "S3").then_some((id, v))
    }

    pub fn vips(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let Some(pools) = self.colls.get("vippools") else { return out };
        let cluster = self.settings.cluster_name.clone();
        for (pid, p) in &pools.items {
            let name = p.get("name").cloned().unwrap_or(Value::Null);
            let ranges = p.get("ip_ranges").and_then(Value::as_array).cloned().unwrap_or_default();
            let mut k = 0u64;
            for r in ranges {
                let (Some(a), Some(b)) = (
                    r.get(0).and_then(Value::as_str).and_then(|s| s.parse::<std::net::Ipv4Addr>().ok()),
                    r.get(1).and_then(Value::as_str).and_then(|s| s.parse::<std::net::Ipv4Addr>().ok()),
                ) else {
                    continue;
                };
                let (a, b) = (u32::from(a), u32::from(b));
                for ip in a..=b.min(a.saturating_add(4095)) {
                    k += 1;
                    let ip = std::net::Ipv4Addr::from(ip).to_string();
                    let id = out.len() as u64 + 1;
                    let guid = Rng::new(pid * 1_000_003 + k).uuid();
                    out.push(json!({
                        "id": id, "guid": guid, "ip": ip, "title": ip, "vippool": name,
                        "vippool_id": pid, "cnode": format!("cnode-{k}"), "cnode_id": k,
                        "hostname": format!("{cluster}-cnode-{k}"), "cluster": cluster,
                        "cluster_id": 1, "vip_type": "PROTOCOLS",
                    }));
                }
            }
        }
        out
    }
}

pub fn has_protocol(v: &Obj, p: &str) -> bool {
    v.get("protocols").and_then(Value::as_array).is_some_and(|a| a.iter().any(|x| x == p))
}

fn tb(b: u64) -> f64 {
    (b as f64 / 1e12 * 1e6).round() / 1e6
}

/// Logical bytes stored under a VAST path (0 when it does not exist).
pub fn bytes_under(store: &Store, path: &str) -> (u64, u64) {
    match store.resolve(path) {
        Some(p) => store.usage(&p),
        None => (0, 0),
    }
}

pub struct QuotaUse {
    pub used: u64,
    pub inodes: u64,
}

pub fn render(st: &State, store: &Store, coll: &str, o: &Obj, prefix: &str) -> Value {
    let mut o = o.clone();
    let id = o.get("id").and_then(Value::as_u64).unwrap_or(0);
    o.insert("url".into(), json!(format!("{prefix}{coll}/{id}/")));
    if !o.contains_key("title") {
        if let Some(n) = o.get("name").cloned() {
            o.insert("title".into(), n);
        }
    }
    let tenant_id = o.get("tenant_id").and_then(Value::as_u64);
    if tenant_id.is_some() {
        o.insert("tenant_name".into(), st.tenant_name(tenant_id));
    }
    match coll {
        "clusters" => cluster_capacity(st, store, &mut o),
        "vms" => {
            o.insert("access_token_lifetime".into(), json!(duration_string(st.auth.access_lifetime)));
            o.insert("refresh_token_lifetime".into(), json!(duration_string(st.auth.refresh_lifetime)));
            o.insert("max_api_tokens_per_user".into(), json!(st.auth.max_tokens_per_user));
        }
        "views" => {
            let path = o.get("path").and_then(Value::as_str).unwrap_or("/").to_string();
            let (bytes, _) = bytes_under(store, &path);
            o.insert("logical_capacity".into(), json!(bytes));
            o.insert("physical_capacity".into(), json!(bytes));
            let pid = o.get("policy_id").and_then(Value::as_u64);
            let pname = pid.and_then(|p| st.get("viewpolicies", p)).and_then(|p| p.get("name").cloned());
            o.insert("policy".into(), pname.unwrap_or(Value::Null));
            o.insert("cluster".into(), json!(st.settings.cluster_name));
            o.insert("cluster_id".into(), json!(1));
        }
        "quotas" => {
            let path = o.get("path").and_then(Value::as_str).unwrap_or("/").to_string();
            let (used, inodes) = bytes_under(store, &path);
            quota_fields(&mut o, QuotaUse { used, inodes });
            o.insert("cluster".into(), json!(st.settings.cluster_name));
        }
        "users" => {
            let keys: Vec<Value> = st
                .keys
                .iter()
                .filter(|k| k.user_id == id)
                .map(|k| json!({"key": k.access_key, "status": if k.enabled {"enabled"} else {"disabled"}}))
                .collect();
            o.insert("access_keys".into(), Value::Array(keys));
            o.remove("password");
        }
        "vippools" => {
            o.insert("cluster".into(), json!(st.settings.cluster_name));
        }
        _ => {}
    }
    Value::Object(o)
}

pub fn quota_fields(o: &mut Obj, u: QuotaUse) {
    let hard = o.get("hard_limit").and_then(Value::as_u64);
    let soft = o.get("soft_limit").and_then(Value::as_u64);
    let hard_i = o.get("hard_limit_inodes").and_then(Value::as_u64);
    let state = if hard.is_some_and(|h| u.used > h) || hard_i.is_some_and(|h| u.inodes > h) {
        "HARD_EXCEEDED"
    } else if soft.is_some_and(|s| u.used > s) {
        "SOFT_EXCEEDED"
    } else {
        "OK"
    };
    let pct = |lim: Option<u64>, v: u64| match lim {
        Some(l) if l > 0 => json!(((v as f64 / l as f64) * 10_000.0).round() / 100.0),
        _ => json!(0),
    };
    o.insert("used_capacity".into(), json!(u.used));
    o.insert("used_effective_capacity".into(), json!(u.used));
    o.insert("used_inodes".into(), json!(u.inodes));
    o.insert("used_capacity_tb".into(), json!(tb(u.used)));
    o.insert("used_effective_capacity_tb".into(), json!(tb(u.used)));
    o.insert("percent_capacity".into(), pct(hard, u.used));
    o.insert("percent_inodes".into(), pct(hard_i, u.inodes));
    o.insert("state".into(), json!(state));
    if let Some(h) = hard {
        o.insert("hard_limit_tb".into(), json!(tb(h)));
    }
    if let Some(s) = soft {
        o.insert("soft_limit_tb".into(), json!(tb(s)));
    }
}

/// Cluster capacity (reference §7). The simulator has no data reduction, so logical,
/// physical and usable figures coincide and `drr` is 1.0.
pub fn cluster_capacity(st: &State, store: &Store, o: &mut Obj) {
    let total = st.settings.total_capacity;
    let (used, _) = store.usage(store.root());
    let used = used.min(total);
    let free = total - used;
    let (mut q_alloc, mut q_used) = (0u64, 0u64);
    if let Some(qs) = st.colls.get("quotas") {
        for q in qs.items.values() {
            q_alloc += q.get("hard_limit").and_then(Value::as_u64).unwrap_or(0);
            let path = q.get("path").and_then(Value::as_str).unwrap_or("/");
            q_used += bytes_under(store, path).0;
        }
    }
    let fields: [(&str, u64); 16] = [
        ("logical_space", total),
        ("logical_space_in_use", used),
        ("free_logical_space", free),
        ("physical_space", total),
        ("physical_space_in_use", used),
        ("free_physical_space", free),
        ("physical_space_wo_overhead", total),
        ("physical_space_in_use_wo_overhead", used),
        ("free_physical_space_wo_overhead", free),
        ("usable_capacity_bytes", total),
        ("free_usable_capacity", free),
        ("auxiliary_space_in_use", 0),
        ("logical_auxiliary_space_in_use", 0),
        ("quotas_allocated_capacity", q_alloc),
        ("quotas_used_capacity", q_used),
        ("usable_capacity", total),
    ];
    for (k, v) in fields {
        o.insert(k.into(), json!(v));
        o.insert(format!("{k}_tb"), json!(tb(v)));
    }
    o.insert("drr".into(), json!(1.0));
    o.insert("drr_text".into(), json!("1.0:1"));
}

/// Size/ownership facts of a path for `folders/stat_path/`.
pub fn stat_json(p: &Path) -> Option<Value> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::symlink_metadata(p).ok()?;
    let children = if md.is_dir() { std::fs::read_dir(p).map(|r| r.count()).unwrap_or(0) } else { 0 };
    let t = |s: i64| iso8601(Duration::from_secs(s.max(0) as u64));
    Some(json!({
        "owning_user": md.uid().to_string(), "owning_uid": md.uid(),
        "owning_group": md.gid().to_string(), "owning_gid": md.gid(),
        "is_directory": md.is_dir(), "children": children, "size": md.len(),
        "mode": format!("{:o}", md.mode() & 0o7777),
        "atime": t(md.atime()), "mtime": t(md.mtime()), "ctime": t(md.ctime()),
    }))
}
