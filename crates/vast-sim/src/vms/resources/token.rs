//! `token/` and `token/refresh/`: simplejwt's login (a manager's name and password for an
//! access/refresh pair) and rotation of the refresh token. The only endpoints that need no
//! credentials, so the router calls them before authenticating.

use crate::vms::response::{detail, err, field_err, method_not_allowed, ok, Res};
use crate::vms::state::State;
use serde_json::{json, Map, Value};

pub fn obtain(st: &mut State, method: &http::Method, body: Option<Value>) -> Res {
    if method != http::Method::POST {
        return Err(method_not_allowed(method));
    }
    let b = body.unwrap_or(json!({}));
    let (u, p) = (b.get("username").and_then(Value::as_str), b.get("password").and_then(Value::as_str));
    let mut e = Map::new();
    if u.is_none() {
        e.insert("username".into(), json!(["This field is required."]));
    }
    if p.is_none() {
        e.insert("password".into(), json!(["This field is required."]));
    }
    if !e.is_empty() {
        return Err(err(400, Value::Object(e)));
    }
    let m = st
        .auth
        .check_password(u.unwrap_or(""), p.unwrap_or(""))
        .cloned()
        .ok_or_else(|| detail(401, "No active account found with the given credentials"))?;
    let State { auth, rng, .. } = st;
    ok(auth.issue_pair(rng, &m))
}

pub fn refresh(st: &mut State, method: &http::Method, body: Option<Value>) -> Res {
    if method != http::Method::POST {
        return Err(method_not_allowed(method));
    }
    let r = body.as_ref().and_then(|b| b.get("refresh")).and_then(Value::as_str);
    let Some(r) = r else { return Err(field_err("refresh", "This field is required.")) };
    let State { auth, rng, .. } = st;
    match auth.refresh(rng, r) {
        Some(pair) => ok(pair),
        None => Err(err(401, json!({"detail": "Token is invalid or expired", "code": "token_not_valid"}))),
    }
}
