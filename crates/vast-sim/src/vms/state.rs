//! The VMS object model: collections of JSON objects (views, quotas, users, ...), S3 access
//! keys, the auth state, and the seed a fresh cluster starts with. Stored objects hold only
//! what a client wrote plus ids/guids/timestamps; everything derived is added by
//! [`render`](super::render::render) at read time.

use crate::auth::{AuthState, Manager};
use crate::util::{iso8601, unix_now, Rng, ALNUM, UPPER_ALNUM};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
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
