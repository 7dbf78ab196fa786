//! The generic resource handler: list, get, create, update and delete on the collections of
//! [`State`], with the per-resource rules (schemas, defaults, checks) in the sibling modules,
//! plus the helpers those rules share.

use super::{cluster, quotas, snapshots, tenants, users, viewpolicies, views, vippools};
use crate::vms::list::{self, project};
use crate::vms::render::render;
use crate::vms::request::{parse_id, Rq};
use crate::vms::response::{
    created, detail, field_err, method_not_allowed, no_content, not_found, ok, Out, Res,
};
use crate::vms::schema::{immutable, str_of, take, u64_of, K};
use crate::vms::state::{self, Obj, State};
use crate::Shared;
use serde_json::{json, Map, Value};

/// `GET` (list or one), `POST`, `PATCH`/`PUT` and `DELETE` on `<coll>/[<id>/]`.
pub fn handle(sh: &Shared, st: &mut State, rq: &Rq, coll: &str, id: Option<&str>) -> Res {
    use http::Method as M;
    let coll: &'static str =
        state::COLLECTIONS.iter().find(|c| **c == coll).copied().ok_or_else(not_found)?;
    // vtasks: every modelled operation is synchronous, so the list stays empty (ids 404).
    let readonly = matches!(coll, "clusters" | "versions" | "vtasks");
    match (id, &rq.method) {
        (None, &M::GET) => {
            let items: Vec<Value> =
                st.colls[coll].items.values().map(|o| render(st, &sh.store, coll, o, &rq.prefix)).collect();
            list::respond(items, rq)
        }
        (Some(id), &M::GET) => {
            let id = parse_id(id)?;
            let o = st.get(coll, id).ok_or_else(not_found)?;
            let v = render(st, &sh.store, coll, o, &rq.prefix);
            if let Some(t) = rq.tenant {
                if v.get("tenant_id").is_some_and(|x| x != &json!(t)) {
                    return Err(not_found());
                }
            }
            ok(project(v, &rq.fields()))
        }
        (None, &M::POST) if !readonly && coll != "vms" => {
            let b = rq.body_obj()?;
            let o = match coll {
                "views" => views::create(sh, st, rq, &b)?,
                "viewpolicies" => viewpolicies::create(st, rq, &b)?,
                "quotas" => quotas::create(sh, st, rq, &b)?,
                "users" => users::create(st, rq, &b)?,
                "vippools" => vippools::create(st, rq, &b)?,
                "tenants" => tenants::create(st, &b)?,
                "snapshots" => snapshots::create(sh, st, rq, &b)?,
                _ => return Err(method_not_allowed(&rq.method)),
            };
            let id = st.add(coll, Value::Object(o));
            let o = st.get(coll, id).ok_or_else(not_found)?;
            created(render(st, &sh.store, coll, o, &rq.prefix))
        }
        (Some(id), &M::PATCH | &M::PUT) if !readonly => {
            let id = parse_id(id)?;
            let cur = st.get(coll, id).ok_or_else(not_found)?.clone();
            let b = rq.body_obj()?;
            let upd = match coll {
                "views" => views::patch(st, &cur, &b)?,
                "viewpolicies" => viewpolicies::patch(st, &cur, &b)?,
                "quotas" => quotas::patch(&cur, &b)?,
                "users" => users::patch(st, &cur, &b)?,
                "vippools" => vippools::patch(st, &cur, &b)?,
                "tenants" => tenants::patch(st, &cur, &b)?,
                "snapshots" => snapshots::patch(st, &cur, &b)?,
                "vms" => cluster::patch_vms(st, &b)?,
                _ => return Err(method_not_allowed(&rq.method)),
            };
            let entry = st.coll(coll).items.get_mut(&id).ok_or_else(not_found)?;
            for (k, v) in upd {
                entry.insert(k, v);
            }
            let o = st.get(coll, id).ok_or_else(not_found)?;
            ok(render(st, &sh.store, coll, o, &rq.prefix))
        }
        (Some(id), &M::DELETE) if !readonly && coll != "vms" => {
            let id = parse_id(id)?;
            let cur = st.get(coll, id).ok_or_else(not_found)?.clone();
            check_delete(st, coll, id, &cur)?;
            st.coll(coll).items.remove(&id);
            if coll == "users" {
                st.keys.retain(|k| k.user_id != id);
            }
            no_content()
        }
        _ => Err(method_not_allowed(&rq.method)),
    }
}

/// What VMS refuses to delete.
fn check_delete(st: &State, coll: &str, id: u64, cur: &Obj) -> Result<(), Out> {
    match coll {
        "viewpolicies" => {
            let used = st.colls["views"].items.values().any(|v| u64_of(v, "policy_id") == Some(id));
            if used {
                return Err(detail(400, "View policy is in use by one or more views"));
            }
        }
        "tenants" if id == 1 => return Err(detail(400, "The default tenant cannot be deleted")),
        "snapshots" if cur.get("indestructible") == Some(&json!(true)) => {
            return Err(detail(400, "Snapshot is indestructible"))
        }
        _ => {}
    }
    Ok(())
}

/// Sets `tenant_id` of a new object: the one given, else the `X-Tenant-Name` one, else the
/// default tenant; it must exist.
pub fn default_tenant(rq: &Rq, o: &mut Obj, st: &State) -> Result<u64, Out> {
    let t = match o.get("tenant_id") {
        Some(Value::Number(n)) => n.as_u64().ok_or_else(|| field_err("tenant_id", "Invalid tenant"))?,
        _ => rq.tenant.unwrap_or(1),
    };
    if st.get("tenants", t).is_none() {
        return Err(field_err("tenant_id", format!("Invalid pk \"{t}\" - object does not exist.")));
    }
    o.insert("tenant_id".into(), json!(t));
    Ok(t)
}

/// The directory a new view or quota names must exist, or be created with `create_dir`.
pub fn ensure_dir(sh: &Shared, path: &str, create: bool, field: &str) -> Result<(), Out> {
    let p = sh.store.resolve(path).ok_or_else(|| field_err(field, "Invalid path"))?;
    if create {
        std::fs::create_dir_all(&p)
            .map_err(|e| detail(400, format!("Failed to create directory {path}: {e}")))?;
    } else if !p.is_dir() {
        return Err(field_err(field, format!("Path {path} does not exist; set create_dir to create it")));
    }
    Ok(())
}

/// The PATCH of resources without special rules: immutable fields, typed fields, and a name
/// unique within the tenant.
pub fn patch_generic(
    st: &State,
    coll: &str,
    cur: &Obj,
    b: &Map<String, Value>,
    spec: &[(&str, K)],
    imm: &[&str],
) -> Result<Obj, Out> {
    immutable(cur, b, imm)?;
    let upd = take(b, spec)?;
    if let Some(Value::String(n)) = upd.get("name") {
        let dup = st.colls[coll].items.values().any(|o| {
            o.get("id") != cur.get("id")
                && str_of(o, "name") == Some(n)
                && o.get("tenant_id") == cur.get("tenant_id")
        });
        if dup {
            return Err(field_err("name", format!("{coll} with this name already exists.")));
        }
    }
    Ok(upd)
}
