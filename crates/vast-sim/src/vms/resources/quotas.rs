//! `quotas/`: directory quotas. Usage is rendered from the bytes on disk; the limits are
//! enforced on S3 writes (see `s3::context`). One quota per path per tenant.

use super::collection::{default_tenant, ensure_dir};
use crate::vms::request::Rq;
use crate::vms::response::{field_err, Out};
use crate::vms::schema::{immutable, required_str, str_of, take, u64_of, valid_vast_path, K};
use crate::vms::state::{Obj, State};
use crate::Shared;
use serde_json::{json, Map, Value};

const QUOTA_SPEC: &[(&str, K)] = &[
    ("name", K::Str),
    ("path", K::Str),
    ("hard_limit", K::Int),
    ("soft_limit", K::Int),
    ("hard_limit_inodes", K::Int),
    ("soft_limit_inodes", K::Int),
    ("grace_period", K::Str),
    ("create_dir", K::Bool),
    ("create_dir_mode", K::Any),
    ("is_physical_quota", K::Bool),
    ("tenant_id", K::Int),
    ("is_user_quota", K::Bool),
    ("enable_alarms", K::Bool),
];

fn check_limits(o: &Obj) -> Result<(), Out> {
    if let (Some(s), Some(h)) = (u64_of(o, "soft_limit"), u64_of(o, "hard_limit")) {
        if s > h {
            return Err(field_err("soft_limit", "Soft limit must not exceed hard limit"));
        }
    }
    for f in ["hard_limit", "soft_limit", "hard_limit_inodes", "soft_limit_inodes"] {
        if o.get(f).and_then(Value::as_i64).is_some_and(|n| n < 0) {
            return Err(field_err(f, "Ensure this value is greater than or equal to 0."));
        }
    }
    Ok(())
}

pub fn create(sh: &Shared, st: &mut State, rq: &Rq, b: &Map<String, Value>) -> Result<Obj, Out> {
    let mut o = take(b, QUOTA_SPEC)?;
    required_str(b, "name")?;
    let path = required_str(b, "path")?;
    if !valid_vast_path(&path) {
        return Err(field_err("path", "Path must start with '/' and must not end with '/'"));
    }
    let t = default_tenant(rq, &mut o, st)?;
    check_limits(&o)?;
    let dup = st.colls["quotas"]
        .items
        .values()
        .any(|q| str_of(q, "path") == Some(&path) && u64_of(q, "tenant_id") == Some(t));
    if dup {
        return Err(field_err("path", format!("A quota already exists on {path}")));
    }
    let create = o.remove("create_dir").and_then(|v| v.as_bool()).unwrap_or(false);
    o.remove("create_dir_mode");
    ensure_dir(sh, &path, create, "path")?;
    o.entry("is_user_quota").or_insert(json!(false));
    o.entry("is_physical_quota").or_insert(json!(false));
    Ok(o)
}

pub fn patch(cur: &Obj, b: &Map<String, Value>) -> Result<Obj, Out> {
    immutable(cur, b, &["path", "tenant_id", "is_physical_quota"])?;
    let mut upd = take(b, QUOTA_SPEC)?;
    upd.remove("create_dir");
    upd.remove("create_dir_mode");
    let mut merged = cur.clone();
    merged.extend(upd.clone());
    check_limits(&merged)?;
    Ok(upd)
}
