//! `snapshots/`: taken at once (`state: SUCCEED`), nothing is copied; paths are stored with a
//! trailing slash as VAST does; an indestructible snapshot cannot be deleted (see
//! `collection`).

use super::collection::{default_tenant, patch_generic};
use crate::vms::request::Rq;
use crate::vms::response::{field_err, Out};
use crate::vms::schema::{required_str, take, valid_vast_path, K};
use crate::vms::state::{Obj, State};
use crate::Shared;
use serde_json::{json, Map, Value};

const SNAPSHOT_SPEC: &[(&str, K)] = &[
    ("name", K::Str),
    ("path", K::Str),
    ("tenant_id", K::Int),
    ("expiration_time", K::Str),
    ("indestructible", K::Bool),
    ("locked", K::Bool),
];

pub fn create(sh: &Shared, st: &mut State, rq: &Rq, b: &Map<String, Value>) -> Result<Obj, Out> {
    let mut o = take(b, SNAPSHOT_SPEC)?;
    let name = required_str(b, "name")?;
    let path = required_str(b, "path")?;
    let trimmed = if path == "/" { "/" } else { path.trim_end_matches('/') };
    if !valid_vast_path(trimmed) {
        return Err(field_err("path", "Invalid path"));
    }
    if !sh.store.resolve(trimmed).is_some_and(|p| p.is_dir()) {
        return Err(field_err("path", format!("Path {path} does not exist")));
    }
    if st.colls["snapshots"].find("name", &json!(name)).is_some() {
        return Err(field_err("name", "snapshot with this name already exists."));
    }
    default_tenant(rq, &mut o, st)?;
    // VAST stores snapshot paths with a trailing slash (CSI and TF send it that way).
    o.insert("path".into(), json!(if trimmed == "/" { "/".to_string() } else { format!("{trimmed}/") }));
    o.insert("state".into(), json!("SUCCEED"));
    o.entry("indestructible").or_insert(json!(false));
    o.entry("locked").or_insert(json!(false));
    o.entry("expiration_time").or_insert(Value::Null);
    Ok(o)
}

pub fn patch(st: &State, cur: &Obj, b: &Map<String, Value>) -> Result<Obj, Out> {
    patch_generic(st, "snapshots", cur, b, SNAPSHOT_SPEC, &["path", "tenant_id"])
}
