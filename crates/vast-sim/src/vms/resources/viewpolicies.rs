//! `viewpolicies/`: who may reach a view over which protocol. Names are unique per tenant, and
//! a policy still used by a view cannot be deleted (see `collection`).

use super::collection::{default_tenant, patch_generic};
use crate::vms::request::Rq;
use crate::vms::response::{field_err, Out};
use crate::vms::schema::{required_str, str_of, take, u64_of, K};
use crate::vms::state::{Obj, State};
use serde_json::{json, Map, Value};

const POLICY_SPEC: &[(&str, K)] = &[
    ("name", K::Str),
    ("flavor", K::Str),
    ("access_flavor", K::Str),
    ("nfs_read_write", K::StrList),
    ("nfs_read_only", K::StrList),
    ("nfs_no_squash", K::StrList),
    ("nfs_root_squash", K::StrList),
    ("nfs_all_squash", K::StrList),
    ("read_write", K::StrList),
    ("read_only", K::StrList),
    ("s3_read_write", K::StrList),
    ("s3_read_only", K::StrList),
    ("vip_pools", K::IntList),
    ("tenant_id", K::Int),
    ("is_s3_default_policy", K::Bool),
    ("s3_special_chars_support", K::Bool),
    ("auth_source", K::Str),
    ("use_auth_provider", K::Bool),
    ("atime_frequency", K::Str),
];

pub fn create(st: &mut State, rq: &Rq, b: &Map<String, Value>) -> Result<Obj, Out> {
    let mut o = take(b, POLICY_SPEC)?;
    let name = required_str(b, "name")?;
    let t = default_tenant(rq, &mut o, st)?;
    let dup = st.colls["viewpolicies"]
        .items
        .values()
        .any(|p| str_of(p, "name") == Some(&name) && u64_of(p, "tenant_id") == Some(t));
    if dup {
        return Err(field_err("name", "view policy with this name already exists."));
    }
    o.entry("flavor").or_insert(json!("NFS"));
    for f in [
        "nfs_read_write",
        "nfs_read_only",
        "nfs_no_squash",
        "nfs_root_squash",
        "nfs_all_squash",
        "read_write",
        "read_only",
        "s3_read_write",
        "s3_read_only",
        "vip_pools",
    ] {
        o.entry(f).or_insert(json!([]));
    }
    o.entry("is_s3_default_policy").or_insert(json!(false));
    Ok(o)
}

pub fn patch(st: &State, cur: &Obj, b: &Map<String, Value>) -> Result<Obj, Out> {
    patch_generic(st, "viewpolicies", cur, b, POLICY_SPEC, &["tenant_id"])
}
