//! The cluster-level objects: the API root (links to every resource), `health/`, and the
//! read-mostly `clusters/`, `versions/` and `vms/` (whose token lifetimes and API-token limit
//! can be changed).

use crate::util::parse_duration_string;
use crate::vms::request::Rq;
use crate::vms::response::{field_err, ok, Out, Res};
use crate::vms::schema::{take, K};
use crate::vms::state::{Obj, State};
use serde_json::{json, Map, Value};
use std::time::Duration;

/// `GET /api/`: a link to each resource, like DRF's browsable root.
pub fn api_root(rq: &Rq) -> Res {
    let mut o = Map::new();
    for c in [
        "clusters",
        "versions",
        "vms",
        "health",
        "views",
        "viewpolicies",
        "quotas",
        "users",
        "s3keys",
        "locals3keys",
        "vippools",
        "vips",
        "tenants",
        "snapshots",
        "capacity",
        "folders",
        "apitokens",
        "monitors",
    ] {
        o.insert(c.into(), json!(format!("{}{c}/", rq.prefix)));
    }
    ok(Value::Object(o))
}

pub fn health() -> Res {
    ok(json!({
        "status": "ok", "db": {"status": "ok", "info": "vast-sim"}, "cache": {"status": "ok", "info": "vast-sim"}
    }))
}

const VMS_SPEC: &[(&str, K)] = &[
    ("access_token_lifetime", K::Any),
    ("refresh_token_lifetime", K::Any),
    ("max_api_tokens_per_user", K::Int),
];

pub fn patch_vms(st: &mut State, b: &Map<String, Value>) -> Result<Obj, Out> {
    let upd = take(b, VMS_SPEC)?;
    let dur = |f: &str| -> Result<Option<Duration>, Out> {
        match upd.get(f) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_u64().map(Duration::from_secs)),
            Some(Value::String(s)) => parse_duration_string(s)
                .map(Some)
                .ok_or_else(|| field_err(f, "Invalid duration, expected [DD [HH:[MM:]]]ss")),
            Some(_) => Err(field_err(f, "Invalid duration")),
        }
    };
    let (a, r) = (dur("access_token_lifetime")?, dur("refresh_token_lifetime")?);
    if let Some(a) = a {
        st.auth.access_lifetime = a;
    }
    if let Some(r) = r {
        st.auth.refresh_lifetime = r;
    }
    if let Some(n) = upd.get("max_api_tokens_per_user").and_then(Value::as_u64) {
        st.auth.max_tokens_per_user = n as usize;
    }
    // Lifetimes and limits are rendered from the auth state; nothing to store.
    Ok(Obj::new())
}
