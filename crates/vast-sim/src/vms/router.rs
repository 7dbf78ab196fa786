//! Routing of the VMS listener: `/_sim/faults` to the admin endpoint, fault injection, then
//! `/api/`, `/api/vN/` and `/api/latest/` (with or without a trailing slash) onto one set of
//! handlers; the `X-Tenant-Name` header; the token endpoints, which need no credentials; and
//! authentication of everything else before the dispatch table.

use super::request::{parse_json, read_body, Rq};
use super::resources::{
    apitokens, capacity, cluster, collection, folders, s3keys, tenants, token, users, vippools,
};
use super::response::{detail, err, method_not_allowed, not_found, to_http, Out, Res};
use super::state::{self, State};
use crate::faults::{Plane, Verdict};
use crate::percent::parse_query;
use crate::server::{Dropped, Req, Resp};
use crate::Shared;
use std::sync::Arc;

/// Highest `vN` accepted (5.5 is v7 at most); anything above is 404 like an unknown route.
const MAX_API_VERSION: u32 = 7;

pub async fn handle(sh: Arc<Shared>, req: Req, scheme: &'static str) -> Result<Resp, Dropped> {
    if req.uri().path().trim_end_matches('/') == "/_sim/faults" {
        return Ok(to_http(super::admin::handle(&sh, req).await));
    }
    let (latency, verdict) = sh.faults.decide(Plane::Vms);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match verdict {
        Verdict::Drop => return Err(Dropped),
        Verdict::Error => {
            return Ok(to_http(detail(503, "Service temporarily unavailable (vast-sim fault injection)")))
        }
        Verdict::Pass => {}
    }
    Ok(to_http(route(&sh, req, scheme).await.unwrap_or_else(|e| e)))
}

/// Splits off the optional version segment (`vN` or `latest`); returns it with its slash.
/// A `vN` beyond [`MAX_API_VERSION`] is an unknown route.
fn version(segs: &mut Vec<String>) -> Result<String, Out> {
    let Some(first) = segs.first() else { return Ok(String::new()) };
    let known = first == "latest"
        || first
            .strip_prefix('v')
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| (1..=MAX_API_VERSION).contains(&n));
    let looks_versioned =
        first.strip_prefix('v').is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    if known {
        let v = format!("{first}/");
        segs.remove(0);
        Ok(v)
    } else if looks_versioned {
        Err(not_found())
    } else {
        Ok(String::new())
    }
}

async fn route(sh: &Arc<Shared>, req: Req, scheme: &'static str) -> Res {
    let (parts, bytes) = read_body(req).await?;
    let path = parts.uri.path();
    let Some(rest) = path.strip_prefix("/api").filter(|r| r.is_empty() || r.starts_with('/')) else {
        return Err(not_found());
    };
    let mut segs: Vec<String> = rest.split('/').filter(|s| !s.is_empty()).map(String::from).collect();
    let ver = version(&mut segs)?;
    let query = parse_query(parts.uri.query().unwrap_or(""), true)
        .ok_or_else(|| detail(400, "malformed query string"))?;
    let body = parse_json(&bytes)?;
    let header = |n: &str| parts.headers.get(n).and_then(|h| h.to_str().ok()).map(String::from);
    let host = header("host").unwrap_or_else(|| sh.vms_host.clone());
    let prefix = format!("{scheme}://{host}/api/{ver}");
    let method = parts.method.clone();

    let mut st = sh.state.lock().unwrap_or_else(|e| e.into_inner());
    let tenant = match header("x-tenant-name") {
        Some(t) => {
            Some(tenants::by_name(&st, &t).ok_or_else(|| detail(400, format!("Tenant {t} does not exist")))?)
        }
        None => None,
    };
    // The token endpoints are the only ones that need no credentials.
    match segs.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["token"] => return token::obtain(&mut st, &method, body),
        ["token", "refresh"] => return token::refresh(&mut st, &method, body),
        _ => {}
    }
    // Without an Authorization header, a client certificate the simulator issued stands for
    // its user (cert: credentials); with one, the header decides.
    let peer = parts.extensions.get::<crate::server::PeerCert>();
    let user = match (header("authorization"), peer) {
        (None, Some(cert)) => st.auth.authenticate_cert(&cert.0),
        (h, _) => st.auth.authenticate(h.as_deref()),
    }
    .map_err(|e| err(403, e.body()))?;
    let rq = Rq { method, segs, query, body, prefix, user, tenant };
    dispatch(sh, &mut st, &rq)
}

fn dispatch(sh: &Shared, st: &mut State, rq: &Rq) -> Res {
    use http::Method as M;
    let segs: Vec<&str> = rq.segs.iter().map(String::as_str).collect();
    match (segs.as_slice(), &rq.method) {
        ([], &M::GET) => cluster::api_root(rq),
        (["health"], &M::GET) => cluster::health(),
        (["capacity"], &M::GET) => capacity::capacity(sh, st, rq),
        (["monitors", "ad_hoc_query"], &M::GET) => capacity::ad_hoc_query(sh, st, rq),
        (["vips"], &M::GET) => vippools::list_vips(st, rq),
        (["vips", id], &M::GET) => vippools::get_vip(st, rq, id),
        (["locals3keys"], &M::GET) => s3keys::list_local(st, rq),
        (["s3keys"], _) | (["s3keys", _], _) => s3keys::own_keys(st, rq, &segs),
        (["users", id, "access_keys"], _) => s3keys::access_keys(st, rq, id),
        (["users", id, "tenant_data"], &M::GET | &M::PATCH) => users::tenant_data(sh, st, rq, id),
        (["apitokens"], &M::GET) => apitokens::list(st, rq),
        (["apitokens"], &M::POST) => apitokens::create(st, rq),
        (["apitokens", id, "revoke"], &M::PATCH) => apitokens::revoke(st, id),
        (["folders", "create_folder"], &M::POST) => folders::create(sh, rq),
        (["folders", "delete_folder"], &M::DELETE) => folders::delete(sh, st, rq),
        (["folders", "stat_path"], &M::POST) => folders::stat_path(sh, rq),
        ([c], _) | ([c, _], _) if state::COLLECTIONS.contains(c) => {
            collection::handle(sh, st, rq, c, segs.get(1).copied())
        }
        _ if segs.len() <= 3 && known_prefix(&segs) => Err(method_not_allowed(&rq.method)),
        _ => Err(not_found()),
    }
}

/// Routes that exist with other methods or sub-paths: a miss under them is 405, not 404.
fn known_prefix(segs: &[&str]) -> bool {
    matches!(
        segs.first(),
        Some(
            &("health"
                | "capacity"
                | "vips"
                | "locals3keys"
                | "apitokens"
                | "folders"
                | "users"
                | "monitors")
        )
    )
}
