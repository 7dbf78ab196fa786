//! Rendering of stored VMS objects: stored objects hold only what a client wrote plus
//! ids/guids/timestamps, and everything derived (self `url`, capacities, names of related
//! objects) is added here at read time, so it always reflects the bytes actually on disk.

use super::state::{Obj, State};
use crate::store::Store;
use crate::util::duration_string;
use serde_json::{json, Value};

fn tb(b: u64) -> f64 {
    (b as f64 / 1e12 * 1e6).round() / 1e6
}

/// Logical bytes stored under a VAST path (0 when it does not exist).
fn bytes_under(store: &Store, path: &str) -> (u64, u64) {
    match store.resolve(path) {
        Some(p) => store.usage(&p),
        None => (0, 0),
    }
}

/// An object as VMS returns it: the stored fields plus the self `url`, `title`, the tenant's
/// name, and per-resource derived fields computed now (capacities, policy name, keys, …).
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
            quota_fields(&mut o, used, inodes);
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

/// Usage, percentages and `state` of a quota that has `used` bytes in `inodes` inodes.
fn quota_fields(o: &mut Obj, used: u64, inodes: u64) {
    let hard = o.get("hard_limit").and_then(Value::as_u64);
    let soft = o.get("soft_limit").and_then(Value::as_u64);
    let hard_i = o.get("hard_limit_inodes").and_then(Value::as_u64);
    let state = if hard.is_some_and(|h| used > h) || hard_i.is_some_and(|h| inodes > h) {
        "HARD_EXCEEDED"
    } else if soft.is_some_and(|s| used > s) {
        "SOFT_EXCEEDED"
    } else {
        "OK"
    };
    let pct = |lim: Option<u64>, v: u64| match lim {
        Some(l) if l > 0 => json!(((v as f64 / l as f64) * 10_000.0).round() / 100.0),
        _ => json!(0),
    };
    o.insert("used_capacity".into(), json!(used));
    o.insert("used_effective_capacity".into(), json!(used));
    o.insert("used_inodes".into(), json!(inodes));
    o.insert("used_capacity_tb".into(), json!(tb(used)));
    o.insert("used_effective_capacity_tb".into(), json!(tb(used)));
    o.insert("percent_capacity".into(), pct(hard, used));
    o.insert("percent_inodes".into(), pct(hard_i, inodes));
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
