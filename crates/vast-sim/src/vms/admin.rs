//! The simulator's own admin endpoint, `/_sim/faults` on the VMS listener (no auth): shows and
//! changes the fault knobs, VIP state, token lifetimes and a few runtime settings, so tests in
//! other processes (the CLI, the plug-in under a host) can drive faults over HTTP.

use super::request::{parse_json, read_body};
use super::response::{detail, method_not_allowed, Out};
use crate::faults::FaultConfig;
use crate::server::Req;
use crate::Shared;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// `GET /_sim/faults` shows the knobs; `POST` merges the given ones. Besides the
/// `FaultConfig` fields it takes `vips_down` / `vips_up` (VIP indexes), `expire_tokens`,
/// `access_token_lifetime_secs`, `refresh_token_lifetime_secs`, `trash_enabled`,
/// `min_part_size`, `ignore_preconditions`, `ignore_object_lock`, `reset`.
pub async fn handle(sh: &Arc<Shared>, req: Req) -> Out {
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
        if let Err(e) = apply(sh, v) {
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

fn apply(sh: &Arc<Shared>, mut v: Map<String, Value>) -> Result<(), String> {
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
    let ignore = v
        .remove("ignore_preconditions")
        .map(|x| x.as_bool().ok_or("ignore_preconditions: bool"))
        .transpose()?;
    let ignore_lock =
        v.remove("ignore_object_lock").map(|x| x.as_bool().ok_or("ignore_object_lock: bool")).transpose()?;
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
    if let Some(i) = ignore {
        sh.ignore_preconditions.store(i, std::sync::atomic::Ordering::Relaxed);
    }
    if let Some(i) = ignore_lock {
        sh.ignore_object_lock.store(i, std::sync::atomic::Ordering::Relaxed);
    }
    for i in down {
        crate::set_vip(sh, i, false).map_err(|e| e.to_string())?;
    }
    for i in up {
        crate::set_vip(sh, i, true).map_err(|e| e.to_string())?;
    }
    Ok(())
}
