//! The control path: what the plug-in learns from VMS. Cluster identity and version, which
//! views are LSUs (and where their data lives), their capacity, and the VIPs that carry data.
//! Answers are cached for `capacity_ttl_secs`, so NetBackup's polling every few seconds does
//! not turn into a request storm on VMS.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;
use tracing::debug;

use crate::config::LsuFilter;
use crate::error::{Error, ErrorKind, Result};
use crate::names;
use crate::store::{Kind, Space};
use crate::vms::{q, Vms};

/// Most addresses taken from one VIP pool's ranges.
const MAX_VIPS: usize = 1024;

#[derive(Debug, Clone, Default)]
pub struct Cluster {
    pub name: String,
    pub guid: String,
    pub version: String,
    /// Logical bytes: the capacity of LSUs without a quota.
    pub logical_space: u64,
    pub logical_space_in_use: u64,
    pub s3_enabled: bool,
}

/// A view that is an LSU.
#[derive(Debug, Clone)]
pub struct ViewLsu {
    pub name: String,
    pub kind: Kind,
    /// The view's path on the cluster, e.g. `/nbu/lsu1`.
    pub path: String,
    pub bucket: Option<String>,
}

pub struct Control {
    vms: Vms,
    filter: LsuFilter,
    ttl: Duration,
    views: Mutex<Option<(Instant, Vec<ViewLsu>)>>,
    space: Mutex<HashMap<String, (Instant, Space)>>,
    cluster: Mutex<Option<(Instant, Cluster)>>,
}

fn u64_of(v: &Value, key: &str) -> u64 {
    match v.get(key) {
        Some(Value::Number(n)) => n.as_u64().or_else(|| n.as_f64().map(|f| f.max(0.0) as u64)).unwrap_or(0),
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

impl Control {
    pub fn new(vms: Vms, filter: LsuFilter, ttl: Duration) -> Control {
        Control {
            vms,
            filter,
            ttl,
            views: Mutex::new(None),
            space: Mutex::new(HashMap::new()),
            cluster: Mutex::new(None),
        }
    }

    fn fresh(&self, at: Instant) -> bool {
        at.elapsed() < self.ttl
    }

    /// The cluster (`clusters/`), with the release from `versions/?status=success` when the
    /// cluster record has none.
    pub fn cluster(&self) -> Result<Cluster> {
        if let Some((at, c)) = self.cluster.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            if self.fresh(*at) {
                return Ok(c.clone());
            }
        }
        let clusters = self.vms.list("clusters/")?;
        let c = clusters
            .first()
            .ok_or_else(|| Error::new(ErrorKind::NotFound, "VMS lists no cluster (clusters/ is empty)"))?;
        let mut version = str_of(c, "sw_version").to_string();
        if let Ok(vs) = self.vms.list("versions/?status=success") {
            if let Some(v) = vs.first().map(|v| str_of(v, "sys_version")).filter(|s| !s.is_empty()) {
                version = v.to_string();
            }
        }
        let cluster = Cluster {
            name: str_of(c, "name").to_string(),
            guid: str_of(c, "guid").to_string(),
            version,
            logical_space: u64_of(c, "logical_space"),
            logical_space_in_use: u64_of(c, "logical_space_in_use"),
            s3_enabled: c.get("enable_s3").and_then(Value::as_bool).unwrap_or(true),
        };
        *self.cluster.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), cluster.clone()));
        Ok(cluster)
    }

    /// Views that are LSUs: S3 views (buckets) and NFS views whose name passes the filter.
    /// A view with both protocols is an S3 LSU when it has a bucket.
    pub fn lsus(&self) -> Result<Vec<ViewLsu>> {
        if let Some((at, v)) = self.views.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            if self.fresh(*at) {
                return Ok(v.clone());
            }
        }
        let mut out = Vec::new();
        for v in self.vms.list("views/")? {
            let name = str_of(&v, "name");
            let path = str_of(&v, "path");
            let protocols: Vec<&str> = v
                .get("protocols")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let bucket = Some(str_of(&v, "bucket")).filter(|b| !b.is_empty());
            let kind = if protocols.contains(&"S3") && bucket.is_some() {
                Kind::S3
            } else if protocols.iter().any(|p| *p == "NFS" || *p == "NFS4") {
                Kind::Nfs
            } else {
                continue;
            };
            let lsu = if kind == Kind::S3 { bucket.unwrap_or(name) } else { name };
            if !self.filter.matches(lsu) || !path.starts_with('/') {
                continue;
            }
            if let Err(e) = names::validate("LSU", lsu) {
                debug!("view at {path} is not usable as an LSU: {e}");
                continue;
            }
            out.push(ViewLsu {
                name: lsu.to_string(),
                kind,
                path: path.to_string(),
                bucket: bucket.map(str::to_string),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out.dedup_by(|a, b| a.name == b.name);
        *self.views.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), out.clone()));
        Ok(out)
    }

    pub fn lsu(&self, name: &str) -> Result<ViewLsu> {
        self.lsus()?.into_iter().find(|l| l.name == name).ok_or_else(|| {
            Error::not_found(format!("LSU '{name}' is not a view of this cluster (or not selected)"))
        })
    }

    /// Capacity from the quota on the view's path (`hard_limit`, `used_capacity`), else the
    /// cluster's logical space.
    pub fn space(&self, lsu: &ViewLsu) -> Result<Space> {
        if let Some((at, s)) = self.space.lock().unwrap_or_else(|p| p.into_inner()).get(&lsu.name) {
            if self.fresh(*at) {
                return Ok(*s);
            }
        }
        let quotas = self.vms.list(&format!("quotas/?path={}", q(&lsu.path)))?;
        let quota =
            quotas.iter().find(|x| str_of(x, "path").trim_end_matches('/') == lsu.path.trim_end_matches('/'));
        let space = match quota.filter(|x| u64_of(x, "hard_limit") > 0) {
            Some(x) => Space { capacity: u64_of(x, "hard_limit"), used: u64_of(x, "used_capacity") },
            None => {
                let c = self.cluster()?;
                Space { capacity: c.logical_space, used: c.logical_space_in_use.min(c.logical_space) }
            }
        };
        self.space
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(lsu.name.clone(), (Instant::now(), space));
        Ok(space)
    }

    /// Forget cached capacity (after writes and deletes the next poll sees fresh numbers).
    pub fn invalidate_space(&self, lsu: &str) {
        self.space.lock().unwrap_or_else(|p| p.into_inner()).remove(lsu);
    }

    /// Data-path addresses: the VIPs of `pool` (by name), else of every enabled PROTOCOLS pool.
    pub fn vips(&self, pool: Option<&str>) -> Result<Vec<String>> {
        let path = match pool {
            Some(p) => format!("vippools/?name={}", q(p)),
            None => "vippools/".to_string(),
        };
        let mut out = Vec::new();
        for p in self.vms.list(&path)? {
            let enabled = p.get("enabled").and_then(Value::as_bool).unwrap_or(true);
            let role = str_of(&p, "role");
            if pool.is_none() && (!enabled || !(role.is_empty() || role == "PROTOCOLS")) {
                continue;
            }
            for r in p.get("ip_ranges").and_then(Value::as_array).into_iter().flatten() {
                let ends: Vec<&str> = r.as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                if let [a, b] = ends[..] {
                    expand(a, b, &mut out);
                }
            }
        }
        out.dedup();
        Ok(out)
    }
}

/// Every IPv4 address from `a` to `b` (VAST pools are IPv4 ranges), up to MAX_VIPS.
fn expand(a: &str, b: &str, out: &mut Vec<String>) {
    let (Ok(a), Ok(b)) = (a.parse::<Ipv4Addr>(), b.parse::<Ipv4Addr>()) else {
        // Not IPv4 (IPv6 or a name): keep the start as given.
        out.push(a.to_string());
        return;
    };
    let (a, b) = (u32::from(a), u32::from(b));
    for ip in a..=b.max(a) {
        if out.len() >= MAX_VIPS {
            break;
        }
        out.push(Ipv4Addr::from(ip).to_string());
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ranges_expand() {
        let mut v = Vec::new();
        super::expand("10.0.0.254", "10.0.1.1", &mut v);
        assert_eq!(v, ["10.0.0.254", "10.0.0.255", "10.0.1.0", "10.0.1.1"]);
        let mut v = Vec::new();
        super::expand("10.0.0.5", "10.0.0.1", &mut v);
        assert_eq!(v, ["10.0.0.5"]);
    }
}
