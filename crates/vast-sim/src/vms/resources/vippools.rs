//! `vippools/` (ranges of protocol VIPs) and `vips/`, the addresses they expand to (computed
//! from the pools, read-only).

use super::collection::{default_tenant, patch_generic};
use crate::vms::list::{self, project};
use crate::vms::request::{parse_id, Rq};
use crate::vms::response::{field_err, not_found, Out, Res};
use crate::vms::schema::{take, u64_of, K};
use crate::vms::state::{Obj, State};
use serde_json::{json, Map, Value};

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

pub fn create(st: &mut State, rq: &Rq, b: &Map<String, Value>) -> Result<Obj, Out> {
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

pub fn patch(st: &State, cur: &Obj, b: &Map<String, Value>) -> Result<Obj, Out> {
    if let Some(r) = b.get("ip_ranges") {
        check_ranges(r)?;
    }
    patch_generic(st, "vippools", cur, b, VIPPOOL_SPEC, &[])
}

pub fn list_vips(st: &State, rq: &Rq) -> Res {
    list::respond(st.vips(), rq)
}

pub fn get_vip(st: &State, rq: &Rq, id: &str) -> Res {
    let id = parse_id(id)?;
    st.vips()
        .into_iter()
        .find(|v| v["id"] == json!(id))
        .map(|v| Out(200, Some(project(v, &rq.fields()))))
        .ok_or_else(not_found)
}
