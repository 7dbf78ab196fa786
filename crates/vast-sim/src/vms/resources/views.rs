//! `views/`: a path exported over NFS, SMB and/or S3. An S3 view is a bucket: it needs a
//! valid, unique bucket name and an existing owner. `path` and `tenant_id` are fixed at
//! creation, and S3 versioning and locking cannot be turned off again.

use super::collection::{default_tenant, ensure_dir};
use crate::vms::request::Rq;
use crate::vms::response::{field_err, Out};
use crate::vms::schema::{immutable, required_str, str_of, take, u64_of, valid_vast_path, K};
use crate::vms::state::{has_protocol, Obj, State};
use crate::Shared;
use serde_json::{json, Map, Value};

const VIEW_SPEC: &[(&str, K)] = &[
    ("path", K::Str),
    ("policy_id", K::Int),
    ("protocols", K::StrList),
    ("bucket", K::Str),
    ("bucket_owner", K::Str),
    ("bucket_owner_type", K::Str),
    ("alias", K::Str),
    ("name", K::Str),
    ("share", K::Str),
    ("tenant_id", K::Int),
    ("qos_policy_id", K::Int),
    ("s3_versioning", K::Bool),
    ("locking", K::Bool),
    ("s3_locks_retention_mode", K::Str),
    ("default_retention_period", K::Str),
    ("files_retention_mode", K::Str),
    ("min_retention_period", K::Str),
    ("max_retention_period", K::Str),
    ("owner", K::Str),
    ("owning_group", K::Str),
    ("allow_s3_anonymous_access", K::Bool),
    ("bucket_creators", K::StrList),
    ("select_for_live_monitoring", K::Bool),
    ("nfs_interop_flags", K::Str),
    ("is_indestructible_object_enabled", K::Bool),
    ("create_dir", K::Bool),
    ("create_dir_mode", K::Any),
];

const PROTOCOLS: &[&str] = &["NFS", "NFS4", "SMB", "S3", "ENDPOINT", "DATABASE", "KAFKA", "BLOCK"];

/// S3 bucket naming rules (3–63 chars, lowercase letters, digits, `-` and `.`).
pub fn valid_bucket_name(b: &str) -> bool {
    (3..=63).contains(&b.len())
        && b.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
        && b.as_bytes()[0].is_ascii_alphanumeric()
        && b.as_bytes()[b.len() - 1].is_ascii_alphanumeric()
        && !b.contains("..")
        && b.parse::<std::net::Ipv4Addr>().is_err()
}

/// Checks protocols, policy and the bucket rules of a (possibly merged) view object.
fn check_view(st: &State, v: &Obj, self_id: Option<u64>) -> Result<(), Out> {
    if let Some(protos) = v.get("protocols").and_then(Value::as_array) {
        for p in protos {
            let p = p.as_str().unwrap_or("");
            if !PROTOCOLS.contains(&p) {
                return Err(field_err("protocols", format!("\"{p}\" is not a valid choice.")));
            }
        }
    }
    let pid = u64_of(v, "policy_id").ok_or_else(|| field_err("policy_id", "This field is required."))?;
    if st.get("viewpolicies", pid).is_none() {
        return Err(field_err("policy_id", format!("Invalid pk \"{pid}\" - object does not exist.")));
    }
    let bucket = str_of(v, "bucket").filter(|b| !b.is_empty());
    if has_protocol(v, "S3") {
        let Some(b) = bucket else {
            return Err(field_err("bucket", "Bucket name is required for S3 views"));
        };
        if !valid_bucket_name(b) {
            return Err(field_err("bucket", format!("Invalid bucket name: {b}")));
        }
        let owner = str_of(v, "bucket_owner").filter(|o| !o.is_empty());
        let Some(owner) = owner else {
            return Err(field_err("bucket_owner", "Bucket owner is required for S3 views"));
        };
        if st.user_by_name(owner).is_none() {
            return Err(field_err("bucket_owner", format!("User {owner} does not exist")));
        }
    }
    if let Some(b) = bucket {
        let dup = st.colls["views"]
            .items
            .iter()
            .any(|(id, o)| Some(*id) != self_id && str_of(o, "bucket") == Some(b));
        if dup {
            return Err(field_err("bucket", format!("Bucket {b} already exists")));
        }
    }
    Ok(())
}

pub fn create(sh: &Shared, st: &mut State, rq: &Rq, b: &Map<String, Value>) -> Result<Obj, Out> {
    let mut o = take(b, VIEW_SPEC)?;
    let path = required_str(b, "path")?;
    if !valid_vast_path(&path) {
        return Err(field_err("path", "Path must start with '/' and must not end with '/'"));
    }
    if b.get("policy_id").is_none() {
        return Err(field_err("policy_id", "This field is required."));
    }
    let tenant = default_tenant(rq, &mut o, st)?;
    o.entry("protocols").or_insert(json!(["NFS"]));
    check_view(st, &o, None)?;
    let dup = st.colls["views"]
        .items
        .values()
        .any(|v| str_of(v, "path") == Some(&path) && u64_of(v, "tenant_id") == Some(tenant));
    if dup {
        return Err(field_err("path", format!("View with path {path} already exists in this tenant")));
    }
    let create = o.remove("create_dir").and_then(|v| v.as_bool()).unwrap_or(false);
    o.remove("create_dir_mode");
    ensure_dir(sh, &path, create, "path")?;
    o.entry("name").or_insert(json!(path.clone()));
    for (k, v) in [
        ("alias", json!("")),
        ("bucket", json!("")),
        ("bucket_owner", json!("")),
        ("share", json!("")),
        ("s3_versioning", json!(false)),
        ("locking", json!(false)),
        ("files_retention_mode", json!("NONE")),
    ] {
        if o.get(k).is_none_or(Value::is_null) {
            o.insert(k.into(), v);
        }
    }
    if has_protocol(&o, "S3") {
        o.entry("bucket_owner_type").or_insert(json!("USER"));
    }
    Ok(o)
}

pub fn patch(st: &State, cur: &Obj, b: &Map<String, Value>) -> Result<Obj, Out> {
    immutable(cur, b, &["path", "tenant_id"])?;
    let mut upd = take(b, VIEW_SPEC)?;
    upd.remove("create_dir");
    upd.remove("create_dir_mode");
    if cur.get("s3_versioning") == Some(&json!(true)) && upd.get("s3_versioning") == Some(&json!(false)) {
        return Err(field_err("s3_versioning", "S3 versioning cannot be disabled"));
    }
    if cur.get("locking") == Some(&json!(true)) && upd.get("locking") == Some(&json!(false)) {
        return Err(field_err("locking", "Locking cannot be disabled"));
    }
    let mut merged = cur.clone();
    for (k, v) in &upd {
        merged.insert(k.clone(), v.clone());
    }
    check_view(st, &merged, u64_of(cur, "id"))?;
    Ok(upd)
}
