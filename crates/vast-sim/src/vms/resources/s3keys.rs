//! S3 access keys, the credentials the S3 data plane checks: a user's keys under
//! `users/{id}/access_keys/`, the calling manager's own under `s3keys/`, and all of them
//! under `locals3keys/`.

use crate::util::iso8601;
use crate::vms::list;
use crate::vms::request::{parse_id, Rq};
use crate::vms::response::{created, detail, field_err, method_not_allowed, no_content, not_found, ok, Res};
use crate::vms::schema::{coerce, required_str, u64_of, K};
use crate::vms::state::State;
use serde_json::{json, Value};

/// `users/{id}/access_keys/`: issue (POST), enable/disable (PATCH) or delete a user's key.
pub fn access_keys(st: &mut State, rq: &Rq, id: &str) -> Res {
    use http::Method as M;
    let uid = parse_id(id)?;
    let user = st.get("users", uid).ok_or_else(not_found)?.clone();
    let b = rq.body_obj()?;
    match rq.method {
        M::POST => {
            let t = b.get("tenant_id").and_then(Value::as_u64).or(u64_of(&user, "tenant_id")).unwrap_or(1);
            let k = st.new_access_key(uid, t);
            // 200, not 201 (reference §5: an exception to the create rule).
            ok(json!({"access_key": k.access_key, "secret_key": k.secret_key}))
        }
        M::PATCH => {
            let ak = required_str(&b, "access_key")?;
            let en = match b.get("enabled") {
                Some(v) => coerce(K::Bool, v).map_err(|m| field_err("enabled", m))?,
                None => return Err(field_err("enabled", "This field is required.")),
            };
            let k =
                st.keys.iter_mut().find(|k| k.user_id == uid && k.access_key == ak).ok_or_else(not_found)?;
            k.enabled = en.as_bool().unwrap_or(false);
            no_content()
        }
        M::DELETE => {
            let ak = required_str(&b, "access_key")?;
            let before = st.keys.len();
            st.keys.retain(|k| !(k.user_id == uid && k.access_key == ak));
            if st.keys.len() == before {
                return Err(not_found());
            }
            no_content()
        }
        _ => Err(method_not_allowed(&rq.method)),
    }
}

/// `s3keys/` acts on the calling user: the VMS manager's namesake in `users/`.
pub fn own_keys(st: &mut State, rq: &Rq, segs: &[&str]) -> Res {
    use http::Method as M;
    let (uid, _) = st
        .user_by_name(&rq.user)
        .ok_or_else(|| detail(400, format!("User {} has no local user record for S3 keys", rq.user)))?;
    match (segs, &rq.method) {
        ([_], &M::GET) => {
            let keys: Vec<Value> = st
                .keys
                .iter()
                .filter(|k| k.user_id == uid)
                .map(|k| {
                    json!({
                        "access_key": k.access_key, "enabled": k.enabled, "creation_time": iso8601(k.created)
                    })
                })
                .collect();
            let first = keys.first().cloned().unwrap_or(json!({}));
            let mut o = first.as_object().cloned().unwrap_or_default();
            o.insert("access_keys".into(), Value::Array(keys));
            ok(Value::Object(o))
        }
        ([_], &M::POST) => {
            let k = st.new_access_key(uid, rq.tenant.unwrap_or(1));
            created(json!({"access_key": k.access_key, "secret_key": k.secret_key}))
        }
        ([_, ak], &M::DELETE) => {
            let before = st.keys.len();
            st.keys.retain(|k| !(k.user_id == uid && k.access_key == *ak));
            if st.keys.len() == before {
                return Err(not_found());
            }
            no_content()
        }
        _ => Err(method_not_allowed(&rq.method)),
    }
}

/// `locals3keys/`: every key of every local user, with its user and tenant.
pub fn list_local(st: &State, rq: &Rq) -> Res {
    let items = st
        .keys
        .iter()
        .map(|k| {
            let uname =
                st.get("users", k.user_id).and_then(|u| u.get("name").cloned()).unwrap_or(Value::Null);
            json!({
                "id": k.id, "access_key": k.access_key, "enabled": k.enabled,
                "creation_time": iso8601(k.created), "user_id": k.user_id, "tenant_id": k.tenant_id,
                "user": {"id": k.user_id, "name": uname},
                "tenant": {"id": k.tenant_id, "name": st.tenant_name(Some(k.tenant_id))},
            })
        })
        .collect();
    list::respond(items, rq)
}
