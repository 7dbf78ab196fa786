//! The VMS management REST API (reference §1–§7, §12 items 1–5): routing of `/api/`,
//! `/api/vN/` and `/api/latest/` onto one set of handlers, authentication, lists, and the
//! resources the plug-in needs. Also the simulator's own admin endpoint `/_sim/faults`.

pub mod list;
pub mod state;

use crate::auth::parse_expiry;
use crate::faults::{FaultConfig, Plane, Verdict};
use crate::server::{empty, full, Dropped, Req, Resp};
use crate::util::{iso8601, parse_duration_string, parse_query, unix_now};
use crate::Shared;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use list::{filter, project, ListQuery};
use serde_json::{json, Map, Value};
use state::{has_protocol, render, stat_json, Obj, State};
use std::sync::Arc;
use std::time::Duration;

/// Highest `vN` accepted (5.5 is v7 at most); anything above is 404 like an unknown route.
const MAX_API_VERSION: u32 = 7;

/// A response before it becomes HTTP: status and optional JSON body.
pub struct Out(u16, Option<Value>);

type Res = Result<Out, Out>;

fn ok(v: Value) -> Res {
    Ok(Out(200, Some(v)))
}
fn created(v: Value) -> Res {
    Ok(Out(201, Some(v)))
}
fn no_content() -> Res {
    Ok(Out(204, None))
}
fn err(code: u16, v: Value) -> Out {
    Out(code, Some(v))
}
fn detail(code: u16, msg: impl Into<String>) -> Out {
    err(code, json!({"detail": msg.into()}))
}
fn not_found() -> Out {
    detail(404, "Not found.")
}
fn field_err(field: &str, msg: impl Into<String>) -> Out {
    err(400, json!({ field: [msg.into()] }))
}
fn method_not_allowed(m: &http::Method) -> Out {
    detail(405, format!("Method \"{m}\" not allowed."))
}

fn to_http(o: Out) -> Resp {
    let mut b = http::Response::builder().status(o.0);
    let body = match o.1 {
        Some(v) => {
            b = b.header("content-type", "application/json");
            full(serde_json::to_vec(&v).unwrap_or_default())
        }
        None => empty(),
    };
    b.body(body).unwrap_or_else(|_| http::Response::new(crate::server::empty()))
}

/// Everything a handler needs to know about one request.
struct Rq {
    method: http::Method,
    segs: Vec<String>,
    query: Vec<(String, String)>,
    body: Option<Value>,
    /// `https://host:port/api/v5/` (or `/api/` when unversioned): the self-link prefix.
    prefix: String,
    /// Same without the version, for `next`/`previous` of unversioned calls too.
    user: String,
    tenant: Option<u64>,
}

impl Rq {
    fn body_obj(&self) -> Result<Map<String, Value>, Out> {
        match &self.body {
            None => Ok(Map::new()),
            Some(Value::Object(o)) => Ok(o.clone()),
            Some(other) => Err(err(
                400,
                json!({"non_field_errors": [format!("Invalid data. Expected a dictionary, but got {}.", type_name(other))]}),
            )),
        }
    }
    fn q(&self, k: &str) -> Option<&str> {
        self.query.iter().rev().find(|(a, _)| a == k).map(|(_, v)| v.as_str())
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Array(_) => "list",
        Value::String(_) => "str",
        Value::Number(_) => "int",
        Value::Bool(_) => "bool",
        Value::Null => "NoneType",
        Value::Object(_) => "dict",
    }
}

pub async fn handle(sh: Arc<Shared>, req: Req, scheme: &'static str) -> Result<Resp, Dropped> {
    let path = req.uri().path().to_string();
    if path.trim_end_matches('/') == "/_sim/faults" {
        return Ok(to_http(admin(&sh, req).await));
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

async fn read_body(req: Req) -> Result<(http::request::Parts, Bytes), Out> {
    let (parts, body) = req.into_parts();
    let bytes = Limited::new(body, 16 << 20)
        .collect()
        .await
        .map_err(|_| detail(400, "could not read the request body"))?
        .to_bytes();
    Ok((parts, bytes))
}

fn parse_json(bytes: &Bytes) -> Result<Option<Value>, Out> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(None);
    }
    serde_json::from_slice(bytes).map(Some).map_err(|e| detail(400, format!("JSON parse error - {e}")))
}

async fn route(sh: &Arc<Shared>, req: Req, scheme: &'static str) -> Res {
    let (parts, bytes) = read_body(req).await?;
    let path = parts.uri.path();
    let Some(rest) = path.strip_prefix("/api").filter(|r| r.is_empty() || r.starts_with('/')) else {
        return Err(not_found());
    };
    let mut segs: Vec<String> = rest.split('/').filter(|s| !s.is_empty()).map(String::from).collect();
    // Optional version segment: vN or latest.
    let mut ver = String::new();
    if let Some(first) = segs.first() {
        let is_v = first == "latest"
            || first
                .strip_prefix('v')
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|n| (1..=MAX_API_VERSION).contains(&n));
        let looks_v =
            first.strip_prefix('v').is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if is_v {
            ver = format!("{first}/");
            segs.remove(0);
        } else if looks_v {
            return Err(not_found());
        }
    }
    let query = parse_query(parts.uri.query().unwrap_or(""), true)
        .ok_or_else(|| detail(400, "malformed query string"))?;
    let body = parse_json(&bytes)?;
    let host = parts
        .headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .map(String::from)
        .unwrap_or_else(|| sh.vms_host.clone());
    let prefix = format!("{scheme}://{host}/api/{ver}");
    let method = parts.method.clone();
    let header = |n: &str| parts.headers.get(n).and_then(|h| h.to_str().ok()).map(String::from);

    let seg_refs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let mut st = sh.state.lock().unwrap_or_else(|e| e.into_inner());
    let tenant = match header("x-tenant-name") {
        Some(t) => {
            Some(tenant_by_name(&st, &t).ok_or_else(|| detail(400, format!("Tenant {t} does not exist")))?)
        }
        None => None,
    };
    // Token endpoints are the only ones that need no credentials.
    match seg_refs.as_slice() {
        ["token"] => {
            if method != http::Method::POST {
                return Err(method_not_allowed(&method));
            }
            let b = body.unwrap_or(json!({}));
            let (u, p) =
                (b.get("username").and_then(Value::as_str), b.get("password").and_then(Value::as_str));
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
            let State { auth, rng, .. } = &mut *st;
            return ok(auth.issue_pair(rng, &m));
        }
        ["token", "refresh"] => {
            if method != http::Method::POST {
                return Err(method_not_allowed(&method));
            }
            let r = body.as_ref().and_then(|b| b.get("refresh")).and_then(Value::as_str);
            let Some(r) = r else { return Err(field_err("refresh", "This field is required.")) };
            let State { auth, rng, .. } = &mut *st;
            return auth.refresh(rng, r).map(|v| Out(200, Some(v))).ok_or_else(|| {
                err(401, json!({"detail": "Token is invalid or expired", "code": "token_not_valid"}))
            });
        }
        _ => {}
    }
    let user = st.auth.authenticate(header("authorization").as_deref()).map_err(|e| err(403, e.body()))?;
    let rq = Rq { method, segs: segs.clone(), query, body, prefix, user, tenant };
    dispatch(sh, &mut st, &rq)
}

fn tenant_by_name(st: &State, name: &str) -> Option<u64> {
    st.colls
        .get("tenants")?
        .items
        .iter()
        .find(|(_, t)| t.get("name") == Some(&json!(name)))
        .map(|(id, _)| *id)
}

fn dispatch(sh: &Shared, st: &mut State, rq: &Rq) -> Res {
    use http::Method as M;
    let segs: Vec<&str> = rq.segs.iter().map(String::as_str).collect();
    let m = &rq.method;
    match (segs.as_slice(), m) {
        ([], &M::GET) => {
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
        (["health"], &M::GET) => ok(json!({
            "status": "ok", "db": {"status": "ok", "info": "vast-sim"}, "cache": {"status": "ok", "info": "vast-sim"}
        })),
        (["capacity"], &M::GET) => capacity(sh, st, rq),
        (["monitors", "ad_hoc_query"], &M::GET) => ad_hoc(sh, st, rq),
        (["vips"], &M::GET) => list_values(st.vips(), rq),
        (["vips", id], &M::GET) => {
            let id = parse_id(id)?;
            st.vips()
                .into_iter()
                .find(|v| v["id"] == json!(id))
                .map(|v| Out(200, Some(project(v, &fields(rq)))))
                .ok_or_else(not_found)
        }
        (["locals3keys"], &M::GET) => {
            let items = st
                .keys
                .iter()
                .map(|k| {
                    let uname = st
                        .get("users", k.user_id)
                        .and_then(|u| u.get("name").cloned())
                        .unwrap_or(Value::Null);
                    json!({
                        "id": k.id, "access_key": k.access_key, "enabled": k.enabled,
                        "creation_time": iso8601(k.created), "user_id": k.user_id, "tenant_id": k.tenant_id,
                        "user": {"id": k.user_id, "name": uname},
                        "tenant": {"id": k.tenant_id, "name": st.tenant_name(Some(k.tenant_id))},
                    })
                })
                .collect();
            list_values(items, rq)
        }
        (["s3keys"], _) | (["s3keys", _], _) => s3keys(st, rq, &segs),
        (["users", id, "access_keys"], _) => access_keys(st, rq, id),
        (["users", id, "tenant_data"], &M::GET | &M::PATCH) => tenant_data(sh, st, rq, id),
        (["apitokens"], &M::GET) => {
            let now = unix_now();
            let archived = rq.q("archived").map(|a| a.eq_ignore_ascii_case("true"));
            let items = st
                .auth
                .tokens
                .iter()
                .filter(|t| archived.is_none_or(|a| a != t.active(now)))
                .map(|t| t.to_json())
                .collect();
            list_values(items, rq)
        }
        (["apitokens"], &M::POST) => create_api_token(st, rq),
        (["apitokens", id, "revoke"], &M::PATCH) => {
            let now = unix_now();
            let t = st.auth.tokens.iter_mut().find(|t| t.id == *id).ok_or_else(not_found)?;
            t.revoked = true;
            t.revocation_time.get_or_insert(now);
            ok(t.to_json())
        }
        (["folders", "create_folder"], &M::POST) => create_folder(sh, rq),
        (["folders", "delete_folder"], &M::DELETE) => delete_folder(sh, st, rq),
        (["folders", "stat_path"], &M::POST) => {
            let b = rq.body_obj()?;
            let path = required_str(&b, "path")?;
            if b.get("tenant_id").is_none() {
                return Err(field_err("tenant_id", "This field is required."));
            }
            let p = sh.store.resolve(&path).ok_or_else(|| field_err("path", "Invalid path"))?;
            stat_json(&p)
                .map(|v| Out(200, Some(v)))
                .ok_or_else(|| detail(400, format!("no such directory: {path}")))
        }
        ([c], _) | ([c, _], _) if state::COLLECTIONS.contains(c) => {
            collection(sh, st, rq, c, segs.get(1).copied())
        }
        _ if segs.len() <= 3 && known_prefix(&segs) => Err(method_not_allowed(m)),
        _ => Err(not_found()),
    }
}

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

fn fields(rq: &Rq) -> Option<Vec<String>> {
    ListQuery::parse(&rq.query).ok().and_then(|q| q.fields)
}

fn parse_id(s: &str) -> Result<u64, Out> {
    s.parse().map_err(|_| not_found())
}

/// Filters, paginates and projects an already rendered list (reference §3, §4).
fn list_values(items: Vec<Value>, rq: &Rq) -> Res {
    let lq = ListQuery::parse(&rq.query).map_err(|e| detail(400, e))?;
    let mut items = items;
    if let Some(t) = rq.tenant {
        items.retain(|o| o.get("tenant_id").is_none_or(|v| v == &json!(t)));
    }
    let items = filter(items, &lq).map_err(|e| detail(400, e))?;
    let paged = lq.page_size.is_some() || lq.page.is_some();
    if !paged {
        return ok(Value::Array(items.into_iter().map(|v| project(v, &lq.fields)).collect()));
    }
    // `page` alone turns on the envelope with DRF's usual default page size.
    let size = lq.page_size.unwrap_or(50);
    let page = lq.page.unwrap_or(1);
    let count = items.len();
    let pages = count.div_ceil(size).max(1);
    if page > pages {
        return Err(detail(404, "Invalid page."));
    }
    let link = |p: usize| {
        let mut q: Vec<(String, String)> = rq.query.iter().filter(|(k, _)| k != "page").cloned().collect();
        q.push(("page".into(), p.to_string()));
        let qs: Vec<String> = q
            .iter()
            .map(|(k, v)| {
                format!("{}={}", crate::util::aws_uri_encode(k, false), crate::util::aws_uri_encode(v, false))
            })
            .collect();
        json!(format!("{}{}/?{}", rq.prefix, rq.segs.join("/"), qs.join("&")))
    };
    let results: Vec<Value> =
        items.into_iter().skip((page - 1) * size).take(size).map(|v| project(v, &lq.fields)).collect();
    ok(json!({
        "count": count,
        "next": if page < pages { link(page + 1) } else { Value::Null },
        "previous": if page > 1 { link(page - 1) } else { Value::Null },
        "results": results,
    }))
}

// ---------------------------------------------------------------------------------------
// Field validation

#[derive(Clone, Copy)]
enum K {
    Str,
    Int,
    Bool,
    StrList,
    IntList,
    Any,
}

fn coerce(kind: K, v: &Value) -> Result<Value, &'static str> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    match kind {
        K::Any => Ok(v.clone()),
        K::Str => match v {
            Value::String(_) => Ok(v.clone()),
            Value::Number(n) => Ok(json!(n.to_string())),
            _ => Err("Not a valid string."),
        },
        K::Int => match v {
            Value::Number(n) if n.is_u64() || n.is_i64() => Ok(v.clone()),
            Value::String(s) => {
                s.trim().parse::<i64>().map(|n| json!(n)).map_err(|_| "A valid integer is required.")
            }
            _ => Err("A valid integer is required."),
        },
        K::Bool => match v {
            Value::Bool(_) => Ok(v.clone()),
            Value::String(s) if matches!(s.to_lowercase().as_str(), "true" | "1") => Ok(json!(true)),
            Value::String(s) if matches!(s.to_lowercase().as_str(), "false" | "0") => Ok(json!(false)),
            Value::Number(n) if n.as_u64() == Some(1) => Ok(json!(true)),
            Value::Number(n) if n.as_u64() == Some(0) => Ok(json!(false)),
            _ => Err("Must be a valid boolean."),
        },
        K::StrList => match v {
            Value::Array(a) if a.iter().all(Value::is_string) => Ok(v.clone()),
            Value::Array(_) => Err("Not a valid string."),
            _ => Err("Expected a list of items."),
        },
        K::IntList => match v {
            Value::Array(a) if a.iter().all(|x| x.is_u64() || x.is_i64()) => Ok(v.clone()),
            Value::Array(_) => Err("A valid integer is required."),
            _ => Err("Expected a list of items."),
        },
    }
}

/// Takes the known fields of `spec` out of a request body, type-checked. Unknown fields are
/// ignored, as DRF serializers do.
fn take(b: &Map<String, Value>, spec: &[(&str, K)]) -> Result<Obj, Out> {
    let mut out = Obj::new();
    let mut errs = Map::new();
    for (f, k) in spec {
        if let Some(v) = b.get(*f) {
            match coerce(*k, v) {
                Ok(v) => {
                    out.insert((*f).into(), v);
                }
                Err(m) => {
                    errs.insert((*f).into(), json!([m]));
                }
            }
        }
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(err(400, Value::Object(errs)))
    }
}

fn required_str(b: &Map<String, Value>, f: &str) -> Result<String, Out> {
    match b.get(f) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::String(_)) => Err(field_err(f, "This field may not be blank.")),
        Some(Value::Null) => Err(field_err(f, "This field may not be null.")),
        Some(_) => Err(field_err(f, "Not a valid string.")),
        None => Err(field_err(f, "This field is required.")),
    }
}

const VIEW_SPEC: &[(&str, K)] = &[
    ("path", K::Str),
    ("policy_id", K::Int),
    ("protocols", K::StrList),
    ("bucket", K::Str),
    ("bucket_owner", K::Str),
    ("bucket_owner_type", K::Str),
    ("alias", K::Str),
    ("name", K::Str),
    ("share", K::Str),
    ("tenant_id", K::Int),
    ("qos_policy_id", K::Int),
    ("s3_versioning", K::Bool),
    ("locking", K::Bool),
    ("s3_locks_retention_mode", K::Str),
    ("default_retention_period", K::Str),
    ("files_retention_mode", K::Str),
    ("min_retention_period", K::Str),
    ("max_retention_period", K::Str),
    ("owner", K::Str),
    ("owning_group", K::Str),
    ("allow_s3_anonymous_access", K::Bool),
    ("bucket_creators", K::StrList),
    ("select_for_live_monitoring", K::Bool),
    ("nfs_interop_flags", K::Str),
    ("is_indestructible_object_enabled", K::Bool),
    ("create_dir", K::Bool),
    ("create_dir_mode", K::Any),
];
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
const QUOTA_SPEC: &[(&str, K)] = &[
    ("name", K::Str),
    ("path", K::Str),
    ("hard_limit", K::Int),
    ("soft_limit", K::Int),
    ("hard_limit_inodes", K::Int),
    ("soft_limit_inodes", K::Int),
    ("grace_period", K::Str),
    ("create_dir", K::Bool),
    ("create_dir_mode", K::Any),
    ("is_physical_quota", K::Bool),
    ("tenant_id", K::Int),
    ("is_user_quota", K::Bool),
    ("enable_alarms", K::Bool),
];
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
const VIPPOOL_SPEC: &[(&str, K)] = &[
    ("name", K::Str),
    ("ip_ranges", K::Any),
    ("subnet_cidr", K::Int),
    ("gw_ip", K::Str),
    ("vlan", K::Int),
    ("role", K::Str),
    ("domain_name", K::Str),
    ("tenant_id", K::Int),
    ("cnode_ids", K::IntList),
    ("enabled", K::Bool),
    ("port_membership", K::Str),
    ("enable_l3", K::Bool),
];
const TENANT_SPEC: &[(&str, K)] = &[
    ("name", K::Str),
    ("client_ip_ranges", K::Any),
    ("vippool_ids", K::IntList),
    ("vippool_names", K::StrList),
];
const SNAPSHOT_SPEC: &[(&str, K)] = &[
    ("name", K::Str),
    ("path", K::Str),
    ("tenant_id", K::Int),
    ("expiration_time", K::Str),
    ("indestructible", K::Bool),
    ("locked", K::Bool),
];
const VMS_SPEC: &[(&str, K)] = &[
    ("access_token_lifetime", K::Any),
    ("refresh_token_lifetime", K::Any),
    ("max_api_tokens_per_user", K::Int),
];

const PROTOCOLS: &[&str] = &["NFS", "NFS4", "SMB", "S3", "ENDPOINT", "DATABASE", "KAFKA", "BLOCK"];

/// VAST view paths: absolute, no trailing slash (except `/` itself), no empty or dot parts.
fn valid_vast_path(p: &str) -> bool {
    p == "/"
        || (p.starts_with('/')
            && !p.ends_with('/')
            && p[1..].split('/').all(|s| !s.is_empty() && s != "." && s != ".."))
}

/// S3 bucket naming rules (3–63 chars, lowercase letters, digits, `-` and `.`).
pub fn valid_bucket_name_pub(b: &str) -> bool {
    valid_bucket_name(b)
}

fn valid_bucket_name(b: &str) -> bool {
    (3..=63).contains(&b.len())
        && b.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
        && b.as_bytes()[0].is_ascii_alphanumeric()
        && b.as_bytes()[b.len() - 1].is_ascii_alphanumeric()
        && !b.contains("..")
        && b.parse::<std::net::Ipv4Addr>().is_err()
}

fn u64_of(o: &Obj, f: &str) -> Option<u64> {
    o.get(f).and_then(Value::as_u64)
}
fn str_of<'a>(o: &'a Obj, f: &str) -> Option<&'a str> {
    o.get(f).and_then(Value::as_str)
}

// ---------------------------------------------------------------------------------------
// Generic collections

fn collection(sh: &Shared, st: &mut State, rq: &Rq, coll: &str, id: Option<&str>) -> Res {
    use http::Method as M;
    let coll: &'static str =
        state::COLLECTIONS.iter().find(|c| **c == coll).copied().ok_or_else(not_found)?;
    // vtasks: every modelled operation is synchronous, so the list stays empty (ids 404).
    let readonly = matches!(coll, "clusters" | "versions" | "vtasks");
    match (id, &rq.method) {
        (None, &M::GET) => {
            let items: Vec<Value> =
                st.colls[coll].items.values().map(|o| render(st, &sh.store, coll, o, &rq.prefix)).collect();
            list_values(items, rq)
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
            ok(project(v, &fields(rq)))
        }
        (None, &M::POST) if !readonly && coll != "vms" => {
            let b = rq.body_obj()?;
            let o = match coll {
                "views" => new_view(sh, st, rq, &b)?,
                "viewpolicies" => new_policy(st, rq, &b)?,
                "quotas" => new_quota(sh, st, rq, &b)?,
                "users" => new_user(st, rq, &b)?,
                "vippools" => new_vippool(st, rq, &b)?,
                "tenants" => new_tenant(st, &b)?,
                "snapshots" => new_snapshot(sh, st, rq, &b)?,
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
                "views" => patch_view(sh, st, &cur, &b)?,
                "viewpolicies" => patch_generic(st, coll, &cur, &b, POLICY_SPEC, &["tenant_id"])?,
                "quotas" => patch_quota(&cur, &b)?,
                "users" => patch_user(st, &cur, &b)?,
                "vippools" => patch_vippool(st, &cur, &b)?,
                "tenants" => patch_generic(st, coll, &cur, &b, TENANT_SPEC, &[])?,
                "snapshots" => patch_generic(st, coll, &cur, &b, SNAPSHOT_SPEC, &["path", "tenant_id"])?,
                "vms" => patch_vms(st, &b)?,
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

fn default_tenant(rq: &Rq, o: &mut Obj, st: &State) -> Result<u64, Out> {
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

fn ensure_dir(sh: &Shared, path: &str, create: bool, field: &str) -> Result<(), Out> {
    let p = sh.store.resolve(path).ok_or_else(|| field_err(field, "Invalid path"))?;
    if create {
        std::fs::create_dir_all(&p)
            .map_err(|e| detail(400, format!("Failed to create directory {path}: {e}")))?;
    } else if !p.is_dir() {
        return Err(field_err(field, format!("Path {path} does not exist; set create_dir to create it")));
    }
    Ok(())
}

/// Checks the S3 rules of a (possibly merged) view object.
fn check_view(st: &State, v: &Obj, self_id: Option<u64>) -> Result<(), Out> {
    if let Some(protos) = v.get("protocols").and_then(Value::as_array) {
        for p in protos {
            let p = p.as_str().unwrap_or("");
            if !PROTOCOLS.contains(&p) {
                return Err(field_err("protocols", format!("\"{p}\" is not a valid choice.")));
            }
        }
    }
    let pid = u64_of(v, "policy_id").ok_or_else(|| field_err("policy_id", "This field is required."))?;
    if st.get("viewpolicies", pid).is_none() {
        return Err(field_err("policy_id", format!("Invalid pk \"{pid}\" - object does not exist.")));
    }
    let bucket = str_of(v, "bucket").filter(|b| !b.is_empty());
    if has_protocol(v, "S3") {
        let Some(b) = bucket else {
            return Err(field_err("bucket", "Bucket name is required for S3 views"));
        };
        if !valid_bucket_name(b) {
            return Err(field_err("bucket", format!("Invalid bucket name: {b}")));
        }
        let owner = str_of(v, "bucket_owner").filter(|o| !o.is_empty());
        let Some(owner) = owner else {
            return Err(field_err("bucket_owner", "Bucket owner is required for S3 views"));
        };
        if st.user_by_name(owner).is_none() {
            return Err(field_err("bucket_owner", format!("User {owner} does not exist")));
        }
    }
    if let Some(b) = bucket {
        let dup = st.colls["views"]
            .items
            .iter()
            .any(|(id, o)| Some(*id) != self_id && str_of(o, "bucket") == Some(b));
        if dup {
            return Err(field_err("bucket", format!("Bucket {b} already exists")));
        }
    }
    Ok(())
}

fn new_view(sh: &Shared, st: &mut State, rq: &Rq, b: &Map<String, Value>) -> Result<Obj, Out> {
    let mut o = take(b, VIEW_SPEC)?;
    let path = required_str(b, "path")?;
    if !valid_vast_path(&path) {
        return Err(field_err("path", "Path must start with '/' and must not end with '/'"));
    }
    if b.get("policy_id").is_none() {
        return Err(field_err("policy_id", "This field is required."));
    }
    let tenant = default_tenant(rq, &mut o, st)?;
    o.entry("protocols").or_insert(json!(["NFS"]));
    check_view(st, &o, None)?;
    let dup = st.colls["views"]
        .items
        .values()
        .any(|v| str_of(v, "path") == Some(&path) && u64_of(v, "tenant_id") == Some(tenant));
    if dup {
        return Err(field_err("path", format!("View with path {path} already exists in this tenant")));
    }
    let create = o.remove("create_dir").and_then(|v| v.as_bool()).unwrap_or(false);
    o.remove("create_dir_mode");
    ensure_dir(sh, &path, create, "path")?;
    o.entry("name").or_insert(json!(path.clone()));
    for (k, v) in [
        ("alias", json!("")),
        ("bucket", json!("")),
        ("bucket_owner", json!("")),
        ("share", json!("")),
        ("s3_versioning", json!(false)),
        ("locking", json!(false)),
        ("files_retention_mode", json!("NONE")),
    ] {
        if o.get(k).is_none_or(Value::is_null) {
            o.insert(k.into(), v);
        }
    }
    if has_protocol(&o, "S3") {
        o.entry("bucket_owner_type").or_insert(json!("USER"));
    }
    Ok(o)
}

fn immutable(cur: &Obj, b: &Map<String, Value>, fields: &[&str]) -> Result<(), Out> {
    for f in fields {
        if let Some(v) = b.get(*f) {
            let same = cur.get(*f) == Some(v)
                || (v.as_str().is_some()
                    && cur.get(*f).and_then(Value::as_u64).map(|n| n.to_string()).as_deref() == v.as_str());
            if !same {
                return Err(field_err(f, "This field cannot be changed after creation."));
            }
        }
    }
    Ok(())
}

fn patch_view(_sh: &Shared, st: &State, cur: &Obj, b: &Map<String, Value>) -> Result<Obj, Out> {
    immutable(cur, b, &["path", "tenant_id"])?;
    let mut upd = take(b, VIEW_SPEC)?;
    upd.remove("create_dir");
    upd.remove("create_dir_mode");
    if cur.get("s3_versioning") == Some(&json!(true)) && upd.get("s3_versioning") == Some(&json!(false)) {
        return Err(field_err("s3_versioning", "S3 versioning cannot be disabled"));
    }
    if cur.get("locking") == Some(&json!(true)) && upd.get("locking") == Some(&json!(false)) {
        return Err(field_err("locking", "Locking cannot be disabled"));
    }
    let mut merged = cur.clone();
    for (k, v) in &upd {
        merged.insert(k.clone(), v.clone());
    }
    check_view(st, &merged, u64_of(cur, "id"))?;
    Ok(upd)
}

fn patch_generic(
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

fn new_policy(st: &mut State, rq: &Rq, b: &Map<String, Value>) -> Result<Obj, Out> {
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

fn check_limits(o: &Obj) -> Result<(), Out> {
    if let (Some(s), Some(h)) = (u64_of(o, "soft_limit"), u64_of(o, "hard_limit")) {
        if s > h {
            return Err(field_err("soft_limit", "Soft limit must not exceed hard limit"));
        }
    }
    for f in ["hard_limit", "soft_limit", "hard_limit_inodes", "soft_limit_inodes"] {
        if o.get(f).and_then(Value::as_i64).is_some_and(|n| n < 0) {
            return Err(field_err(f, "Ensure this value is greater than or equal to 0."));
        }
    }
    Ok(())
}

fn new_quota(sh: &Shared, st: &mut State, rq: &Rq, b: &Map<String, Value>) -> Result<Obj, Out> {
    let mut o = take(b, QUOTA_SPEC)?;
    required_str(b, "name")?;
    let path = required_str(b, "path")?;
    if !valid_vast_path(&path) {
        return Err(field_err("path", "Path must start with '/' and must not end with '/'"));
    }
    let t = default_tenant(rq, &mut o, st)?;
    check_limits(&o)?;
    let dup = st.colls["quotas"]
        .items
        .values()
        .any(|q| str_of(q, "path") == Some(&path) && u64_of(q, "tenant_id") == Some(t));
    if dup {
        return Err(field_err("path", format!("A quota already exists on {path}")));
    }
    let create = o.remove("create_dir").and_then(|v| v.as_bool()).unwrap_or(false);
    o.remove("create_dir_mode");
    ensure_dir(sh, &path, create, "path")?;
    o.entry("is_user_quota").or_insert(json!(false));
    o.entry("is_physical_quota").or_insert(json!(false));
    Ok(o)
}

fn patch_quota(cur: &Obj, b: &Map<String, Value>) -> Result<Obj, Out> {
    immutable(cur, b, &["path", "tenant_id", "is_physical_quota"])?;
    let mut upd = take(b, QUOTA_SPEC)?;
    upd.remove("create_dir");
    upd.remove("create_dir_mode");
    let mut merged = cur.clone();
    merged.extend(upd.clone());
    check_limits(&merged)?;
    Ok(upd)
}

fn new_user(st: &mut State, rq: &Rq, b: &Map<String, Value>) -> Result<Obj, Out> {
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

fn patch_user(st: &State, cur: &Obj, b: &Map<String, Value>) -> Result<Obj, Out> {
    let upd = take(b, USER_SPEC)?;
    if let Some(Value::String(n)) = upd.get("name") {
        if st.user_by_name(n).is_some_and(|(id, _)| Some(id) != u64_of(cur, "id")) {
            return Err(field_err("name", "user with this name already exists."));
        }
    }
    Ok(upd)
}

fn check_ranges(v: &Value) -> Result<(), Out> {
    let bad = || field_err("ip_ranges", "ip_ranges must be a list of [start_ip, end_ip] pairs");
    let arr = v.as_array().filter(|a| !a.is_empty()).ok_or_else(bad)?;
    for r in arr {
        let pair = r.as_array().filter(|p| p.len() == 2).ok_or_else(bad)?;
        let a: std::net::Ipv4Addr = pair[0].as_str().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        let b: std::net::Ipv4Addr = pair[1].as_str().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        if u32::from(a) > u32::from(b) {
            return Err(field_err("ip_ranges", "start ip must not be greater than end ip"));
        }
    }
    Ok(())
}

fn new_vippool(st: &mut State, rq: &Rq, b: &Map<String, Value>) -> Result<Obj, Out> {
    let mut o = take(b, VIPPOOL_SPEC)?;
    let ranges = b.get("ip_ranges").ok_or_else(|| field_err("ip_ranges", "This field is required."))?;
    check_ranges(ranges)?;
    let cidr =
        u64_of(&o, "subnet_cidr").ok_or_else(|| field_err("subnet_cidr", "This field is required."))?;
    if !(1..=32).contains(&cidr) {
        return Err(field_err("subnet_cidr", "Ensure this value is between 1 and 32."));
    }
    default_tenant(rq, &mut o, st)?;
    let n = st.colls["vippools"].next_id + 1;
    let name =
        o.get("name").and_then(Value::as_str).map(String::from).unwrap_or_else(|| format!("vippool-{n}"));
    if st.colls["vippools"].find("name", &json!(name)).is_some() {
        return Err(field_err("name", "vip pool with this name already exists."));
    }
    o.insert("name".into(), json!(name));
    for (k, v) in [
        ("role", json!("PROTOCOLS")),
        ("enabled", json!(true)),
        ("state", json!("ACTIVE")),
        ("cnode_ids", json!([])),
        ("active_cnode_ids", json!([])),
        ("gw_ip", json!("")),
        ("vlan", json!(0)),
        ("domain_name", json!("")),
        ("port_membership", json!("ALL")),
        ("enable_l3", json!(false)),
    ] {
        o.entry(k).or_insert(v);
    }
    Ok(o)
}

fn patch_vippool(st: &State, cur: &Obj, b: &Map<String, Value>) -> Result<Obj, Out> {
    if let Some(r) = b.get("ip_ranges") {
        check_ranges(r)?;
    }
    patch_generic(st, "vippools", cur, b, VIPPOOL_SPEC, &[])
}

fn new_tenant(st: &mut State, b: &Map<String, Value>) -> Result<Obj, Out> {
    let mut o = take(b, TENANT_SPEC)?;
    let name = required_str(b, "name")?;
    if tenant_by_name(st, &name).is_some() {
        return Err(field_err("name", "tenant with this name already exists."));
    }
    o.entry("client_ip_ranges").or_insert(json!([]));
    o.entry("vippool_names").or_insert(json!([]));
    Ok(o)
}

fn new_snapshot(sh: &Shared, st: &mut State, rq: &Rq, b: &Map<String, Value>) -> Result<Obj, Out> {
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

fn patch_vms(st: &mut State, b: &Map<String, Value>) -> Result<Obj, Out> {
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

// ---------------------------------------------------------------------------------------
// Keys and tokens

fn access_keys(st: &mut State, rq: &Rq, id: &str) -> Res {
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

/// `users/{id}/tenant_data/`: the user's per-tenant S3 permissions (one tenant here).
fn tenant_data(sh: &Shared, st: &mut State, rq: &Rq, id: &str) -> Res {
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

/// `s3keys/` acts on the calling user: the VMS manager's namesake in `users/`.
fn s3keys(st: &mut State, rq: &Rq, segs: &[&str]) -> Res {
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

fn create_api_token(st: &mut State, rq: &Rq) -> Res {
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

// ---------------------------------------------------------------------------------------
// Folders, capacity, monitors

fn create_folder(sh: &Shared, rq: &Rq) -> Res {
    let b = rq.body_obj()?;
    let path = required_str(&b, "path")?;
    if !valid_vast_path(&path) || path == "/" {
        return Err(field_err("path", "Invalid path"));
    }
    let p = sh.store.resolve(&path).ok_or_else(|| field_err("path", "Invalid path"))?;
    if p.exists() {
        return Err(detail(400, format!("path {path} already exists")));
    }
    std::fs::create_dir_all(&p).map_err(|e| detail(400, format!("failed to create {path}: {e}")))?;
    ok(json!({}))
}

fn delete_folder(sh: &Shared, st: &State, rq: &Rq) -> Res {
    let b = rq.body_obj()?;
    let path = required_str(&b, "path")?;
    if !st.settings.trash_enabled {
        return Err(detail(400, "trash folder disabled"));
    }
    let p = sh.store.resolve(&path).filter(|_| valid_vast_path(&path) && path != "/");
    let Some(p) = p.filter(|p| p.is_dir()) else {
        return Err(detail(400, format!("no such directory: {path}")));
    };
    // Like the trash API: the directory leaves the namespace at once, space is freed later.
    let dest = sh.store.trash_dir().join(format!(
        "{}-{}",
        unix_now().as_nanos(),
        p.file_name().and_then(|n| n.to_str()).unwrap_or("x")
    ));
    std::fs::rename(&p, &dest).map_err(|e| detail(400, format!("failed to delete {path}: {e}")))?;
    std::thread::spawn(move || {
        let _ = std::fs::remove_dir_all(dest);
    });
    ok(json!({}))
}

fn capacity(sh: &Shared, st: &State, rq: &Rq) -> Res {
    let path = rq.q("path").unwrap_or("/").to_string();
    let p = sh
        .store
        .resolve(&path)
        .filter(|p| p.is_dir())
        .ok_or_else(|| detail(400, format!("no such directory: {path}")))?;
    let (root, _) = sh.store.usage(&p);
    let mut details = Vec::new();
    if let Ok(rd) = std::fs::read_dir(&p) {
        let mut names: Vec<_> = rd.flatten().filter(|e| !sh.store.is_private(&e.path())).collect();
        names.sort_by_key(|e| e.file_name());
        for e in names {
            let (b, _) = sh.store.usage(&e.path());
            let child = format!("{}/{}", path.trim_end_matches('/'), e.file_name().to_string_lossy());
            let pct = if root > 0 { (b as f64 / root as f64 * 10_000.0).round() / 100.0 } else { 0.0 };
            details.push(json!([child, {"data": [b, b, b], "parent": path, "percent": pct}]));
        }
    }
    let hard = st.colls["quotas"]
        .items
        .values()
        .find(|q| str_of(q, "path") == Some(&path))
        .and_then(|q| q.get("hard_limit").cloned());
    ok(json!({
        "keys": ["usable", "unique", "logical"],
        "root_data": [root, root, root],
        "details": details,
        "capacity_rules": {"hard_limit": hard.unwrap_or(Value::Null)},
        "time": iso8601(unix_now()),
    }))
}

fn ad_hoc(sh: &Shared, st: &State, rq: &Rq) -> Res {
    let ot = rq.q("object_type").ok_or_else(|| field_err("object_type", "This field is required."))?;
    if ot != "cluster" {
        return Err(detail(400, format!("object_type {ot} is not simulated (only cluster)")));
    }
    // prop_list entries contain commas themselves ("Capacity,logical_space"): repeats only.
    let props: Vec<String> =
        rq.query.iter().filter(|(k, _)| k == "prop_list").map(|(_, v)| v.clone()).collect();
    let mut cl = Obj::new();
    state::cluster_capacity(st, &sh.store, &mut cl);
    let mut row = vec![json!(iso8601(unix_now())), json!(1)];
    for p in &props {
        let f = p.split_once(',').map(|(_, f)| f).unwrap_or(p);
        row.push(cl.get(f).cloned().unwrap_or(Value::Null));
    }
    let mut pl = vec![json!("timestamp"), json!("object_id")];
    pl.extend(props.iter().map(|p| json!(p)));
    ok(json!({"prop_list": pl, "data": [row], "object_ids": [1]}))
}

// ---------------------------------------------------------------------------------------
// /_sim/faults

/// `GET /_sim/faults` shows the knobs; `POST` merges the given ones. Besides the
/// `FaultConfig` fields it takes `vips_down` / `vips_up` (VIP indexes), `expire_tokens`,
/// `access_token_lifetime_secs`, `refresh_token_lifetime_secs`, `trash_enabled`,
/// `min_part_size`, `reset`.
async fn admin(sh: &Arc<Shared>, req: Req) -> Out {
    let method = req.method().clone();
    let (_, bytes) = match read_body(req).await {
        Ok(x) => x,
        Err(e) => return e,
    };
    if method == http::Method::POST {
        let v = match parse_json(&bytes) {
            Ok(Some(Value::Object(o))) => o,
            Ok(_) => return detail(400, "expected a JSON object"),
            Err(e) => return e,
        };
        if let Err(e) = apply_admin(sh, v) {
            return detail(400, e);
        }
    } else if method != http::Method::GET {
        return method_not_allowed(&method);
    }
    let (a, r) = {
        let st = sh.state.lock().unwrap_or_else(|e| e.into_inner());
        (st.auth.access_lifetime.as_secs(), st.auth.refresh_lifetime.as_secs())
    };
    let mut o = serde_json::to_value(sh.faults.get()).unwrap_or(json!({}));
    o["vips_down"] = json!(crate::vips_down(sh));
    o["access_token_lifetime_secs"] = json!(a);
    o["refresh_token_lifetime_secs"] = json!(r);
    Out(200, Some(o))
}

fn apply_admin(sh: &Arc<Shared>, mut v: Map<String, Value>) -> Result<(), String> {
    let idxs = |v: Option<Value>| -> Result<Vec<usize>, String> {
        match v {
            None => Ok(vec![]),
            Some(x) => serde_json::from_value(x).map_err(|e| format!("VIP index list: {e}")),
        }
    };
    let down = idxs(v.remove("vips_down"))?;
    let up = idxs(v.remove("vips_up"))?;
    let expire = v.remove("expire_tokens").and_then(|x| x.as_bool()).unwrap_or(false);
    let reset = v.remove("reset").and_then(|x| x.as_bool()).unwrap_or(false);
    let a = v
        .remove("access_token_lifetime_secs")
        .map(|x| x.as_u64().ok_or("access_token_lifetime_secs: integer"))
        .transpose()?;
    let r = v
        .remove("refresh_token_lifetime_secs")
        .map(|x| x.as_u64().ok_or("refresh_token_lifetime_secs: integer"))
        .transpose()?;
    let trash = v.remove("trash_enabled").map(|x| x.as_bool().ok_or("trash_enabled: bool")).transpose()?;
    let mps = v.remove("min_part_size").map(|x| x.as_u64().ok_or("min_part_size: integer")).transpose()?;
    let mut cur = serde_json::to_value(if reset { FaultConfig::default() } else { sh.faults.get() })
        .map_err(|e| e.to_string())?;
    if let Value::Object(c) = &mut cur {
        for (k, val) in v {
            if !c.contains_key(&k) {
                return Err(format!("unknown fault knob: {k}"));
            }
            c.insert(k, val);
        }
    }
    let cfg: FaultConfig = serde_json::from_value(cur).map_err(|e| format!("bad fault config: {e}"))?;
    if !(0.0..=1.0).contains(&cfg.error_rate) || !(0.0..=1.0).contains(&cfg.drop_rate) {
        return Err("rates must be between 0 and 1".into());
    }
    for i in down.iter().chain(up.iter()) {
        if *i >= sh.vip_count {
            return Err(format!("no VIP with index {i}"));
        }
    }
    sh.faults.set(cfg);
    if reset {
        sh.faults.reseed();
    }
    {
        let mut st = sh.state.lock().unwrap_or_else(|e| e.into_inner());
        if expire {
            st.auth.expire_access_tokens();
        }
        if let Some(a) = a {
            st.auth.access_lifetime = Duration::from_secs(a);
        }
        if let Some(r) = r {
            st.auth.refresh_lifetime = Duration::from_secs(r);
        }
        if let Some(t) = trash {
            st.settings.trash_enabled = t;
        }
    }
    if let Some(m) = mps {
        sh.min_part_size.store(m, std::sync::atomic::Ordering::Relaxed);
    }
    for i in down {
        crate::set_vip(sh, i, false).map_err(|e| e.to_string())?;
    }
    for i in up {
        crate::set_vip(sh, i, true).map_err(|e| e.to_string())?;
    }
    Ok(())
}
