//! Usage figures: `capacity/` (a directory tree's usage, VAST's capacity view) and
//! `monitors/ad_hoc_query/` (cluster capacity metrics as a one-row time series).

use crate::util::{iso8601, unix_now};
use crate::vms::render::cluster_capacity;
use crate::vms::request::Rq;
use crate::vms::response::{detail, field_err, ok, Res};
use crate::vms::schema::str_of;
use crate::vms::state::{Obj, State};
use crate::Shared;
use serde_json::{json, Value};

/// `capacity/?path=`: usage of a directory and of each child, and its quota's hard limit.
pub fn capacity(sh: &Shared, st: &State, rq: &Rq) -> Res {
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

/// `monitors/ad_hoc_query/`: the current value of cluster metrics (only `object_type=cluster`).
pub fn ad_hoc_query(sh: &Shared, st: &State, rq: &Rq) -> Res {
    let ot = rq.q("object_type").ok_or_else(|| field_err("object_type", "This field is required."))?;
    if ot != "cluster" {
        return Err(detail(400, format!("object_type {ot} is not simulated (only cluster)")));
    }
    // prop_list entries contain commas themselves ("Capacity,logical_space"): repeats only.
    let props: Vec<String> =
        rq.query.iter().filter(|(k, _)| k == "prop_list").map(|(_, v)| v.clone()).collect();
    let mut cl = Obj::new();
    cluster_capacity(st, &sh.store, &mut cl);
    let mut row = vec![json!(iso8601(unix_now())), json!(1)];
    for p in &props {
        let f = p.split_once(',').map(|(_, f)| f).unwrap_or(p);
        row.push(cl.get(f).cloned().unwrap_or(Value::Null));
    }
    let mut pl = vec![json!("timestamp"), json!("object_id")];
    pl.extend(props.iter().map(|p| json!(p)));
    ok(json!({"prop_list": pl, "data": [row], "object_ids": [1]}))
}
