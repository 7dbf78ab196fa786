//! `apitokens/`: long-lived `Api-Token` credentials of VMS managers: listed (optionally only
//! active or archived ones), created with an expiry of at most 90 days and a per-user limit,
//! and revoked. This endpoint answers errors as bare JSON strings (reference §2, §5).

use crate::auth::parse_expiry;
use crate::util::unix_now;
use crate::vms::list;
use crate::vms::request::Rq;
use crate::vms::response::{created, err, not_found, ok, Res};
use crate::vms::state::State;
use serde_json::{json, Map, Value};
use std::time::Duration;

pub fn list(st: &State, rq: &Rq) -> Res {
    let now = unix_now();
    let archived = rq.q("archived").map(|a| a.eq_ignore_ascii_case("true"));
    let items = st
        .auth
        .tokens
        .iter()
        .filter(|t| archived.is_none_or(|a| a != t.active(now)))
        .map(|t| t.to_json())
        .collect();
    list::respond(items, rq)
}

pub fn create(st: &mut State, rq: &Rq) -> Res {
    // Errors of this endpoint are bare JSON strings (reference §2, §5).
    let b = match &rq.body {
        None => Map::new(),
        Some(Value::Object(o)) => o.clone(),
        Some(_) => return Err(err(400, json!("Invalid request body"))),
    };
    let owner = match b.get("owner") {
        None | Some(Value::Null) => rq.user.clone(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(err(400, json!("owner must be a user name"))),
    };
    if !st.auth.managers.iter().any(|m| m.name == owner) {
        return Err(err(400, json!(format!("Manager {owner} does not exist"))));
    }
    let max_life = Duration::from_secs(90 * 86_400);
    let life = match b.get("expiry_date") {
        None | Some(Value::Null) => max_life,
        Some(Value::String(s)) => match parse_expiry(s) {
            Some(d) if d <= max_life && !d.is_zero() => d,
            Some(_) => return Err(err(400, json!("expiry_date exceeds the password expiration period"))),
            None => {
                return Err(err(
                    400,
                    json!(format!("Invalid expiry_date {s}: expected <int><Y|M|w|d|h|m|s>")),
                ))
            }
        },
        Some(_) => return Err(err(400, json!("expiry_date must be a string"))),
    };
    let name = b.get("name").and_then(Value::as_str).unwrap_or("").to_string();
    let now = unix_now();
    let active = st.auth.tokens.iter().filter(|t| t.owner == owner && t.active(now)).count();
    if active >= st.auth.max_tokens_per_user {
        return Err(err(
            503,
            json!(format!(
                "Maximum number of API tokens per user ({}) reached for {owner}",
                st.auth.max_tokens_per_user
            )),
        ));
    }
    let State { auth, rng, .. } = st;
    let t = auth.new_token(rng, &owner, &name, life);
    created(json!({"id": t.id, "token": t.token}))
}

pub fn revoke(st: &mut State, id: &str) -> Res {
    let now = unix_now();
    let t = st.auth.tokens.iter_mut().find(|t| t.id == id).ok_or_else(not_found)?;
    t.revoked = true;
    t.revocation_time.get_or_insert(now);
    ok(t.to_json())
}
