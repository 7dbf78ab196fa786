//! `users/`: local users, the S3 identities (a bucket's owner, the holder of access keys),
//! and `users/{id}/tenant_data/`, their per-tenant S3 permissions. Deleting a user deletes its
//! keys (see `collection`); the keys themselves are in `s3keys`.

use super::collection::default_tenant;
use crate::vms::render::render;
use crate::vms::request::{parse_id, Rq};
use crate::vms::response::{field_err, not_found, ok, Out, Res};
use crate::vms::schema::{required_str, take, u64_of, K};
use crate::vms::state::{Obj, State};
use crate::Shared;
use serde_json::{json, Map, Value};

const USER_SPEC: &[(&str, K)] = &[
    ("name", K::Str),
    ("uid", K::Int),
    ("leading_gid", K::Int),
    ("gids", K::IntList),
    ("password", K::Str),
    ("allow_create_bucket", K::Bool),
    ("allow_delete_bucket", K::Bool),
    ("s3_superuser", K::Bool),
    ("s3_policies_ids", K::IntList),
    ("local_provider_id", K::Int),
    ("tenant_id", K::Int),
];

pub fn create(st: &mut State, rq: &Rq, b: &Map<String, Value>) -> Result<Obj, Out> {
    let mut o = take(b, USER_SPEC)?;
    let name = required_str(b, "name")?;
    if st.user_by_name(&name).is_some() {
        return Err(field_err("name", "user with this name already exists."));
    }
    default_tenant(rq, &mut o, st)?;
    let uid = match u64_of(&o, "uid") {
        Some(u) => u,
        None => 1000 + st.colls["users"].next_id + 1,
    };
    o.insert("uid".into(), json!(uid));
    o.entry("leading_gid").or_insert(json!(uid));
    for (k, v) in [
        ("gids", json!([])),
        ("groups", json!([])),
        ("allow_create_bucket", json!(false)),
        ("allow_delete_bucket", json!(false)),
        ("s3_superuser", json!(false)),
        ("s3_policies_ids", json!([])),
        ("local_provider_id", json!(1)),
        ("local", json!(true)),
        ("sid", Value::Null),
    ] {
        o.entry(k).or_insert(v);
    }
    Ok(o)
}

pub fn patch(st: &State, cur: &Obj, b: &Map<String, Value>) -> Result<Obj, Out> {
    let upd = take(b, USER_SPEC)?;
    if let Some(Value::String(n)) = upd.get("name") {
        if st.user_by_name(n).is_some_and(|(id, _)| Some(id) != u64_of(cur, "id")) {
            return Err(field_err("name", "user with this name already exists."));
        }
    }
    Ok(upd)
}

/// `users/{id}/tenant_data/`: the user's per-tenant S3 permissions (one tenant here).
pub fn tenant_data(sh: &Shared, st: &mut State, rq: &Rq, id: &str) -> Res {
    const FIELDS: &[(&str, K)] = &[
        ("allow_create_bucket", K::Bool),
        ("allow_delete_bucket", K::Bool),
        ("s3_superuser", K::Bool),
        ("s3_policies_ids", K::IntList),
    ];
    let uid = parse_id(id)?;
    st.get("users", uid).ok_or_else(not_found)?;
    if rq.method == http::Method::PATCH {
        let upd = take(&rq.body_obj()?, FIELDS)?;
        if let Some(u) = st.coll("users").items.get_mut(&uid) {
            u.extend(upd);
        }
    }
    let u = st.get("users", uid).ok_or_else(not_found)?;
    let full = render(st, &sh.store, "users", u, &rq.prefix);
    let mut o = Map::new();
    o.insert("tenant_id".into(), full.get("tenant_id").cloned().unwrap_or(json!(1)));
    o.insert("tenant_name".into(), full.get("tenant_name").cloned().unwrap_or(Value::Null));
    for (f, _) in FIELDS {
        o.insert((*f).into(), full.get(*f).cloned().unwrap_or(Value::Null));
    }
    ok(Value::Object(o))
}
