//! `tenants/`: names unique cluster-wide; the default tenant (id 1) cannot be deleted (see
//! `collection`). Requests choose a tenant with the `X-Tenant-Name` header.

use super::collection::patch_generic;
use crate::vms::response::{field_err, Out};
use crate::vms::schema::{required_str, take, K};
use crate::vms::state::{Obj, State};
use serde_json::{json, Map, Value};

const TENANT_SPEC: &[(&str, K)] = &[
    ("name", K::Str),
    ("client_ip_ranges", K::Any),
    ("vippool_ids", K::IntList),
    ("vippool_names", K::StrList),
];

/// The id of the tenant called `name` (for `X-Tenant-Name`).
pub fn by_name(st: &State, name: &str) -> Option<u64> {
    st.colls
        .get("tenants")?
        .items
        .iter()
        .find(|(_, t)| t.get("name") == Some(&json!(name)))
        .map(|(id, _)| *id)
}

pub fn create(st: &mut State, b: &Map<String, Value>) -> Result<Obj, Out> {
    let mut o = take(b, TENANT_SPEC)?;
    let name = required_str(b, "name")?;
    if by_name(st, &name).is_some() {
        return Err(field_err("name", "tenant with this name already exists."));
    }
    o.entry("client_ip_ranges").or_insert(json!([]));
    o.entry("vippool_names").or_insert(json!([]));
    Ok(o)
}

pub fn patch(st: &State, cur: &Obj, b: &Map<String, Value>) -> Result<Obj, Out> {
    patch_generic(st, "tenants", cur, b, TENANT_SPEC, &[])
}
