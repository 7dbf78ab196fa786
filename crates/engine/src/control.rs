//! The control path: what the plug-in learns from VMS. Cluster identity and version, which
//! views are LSUs (and where their data lives), their capacity, and the VIPs that carry data.
//! Answers are cached for `capacity_ttl_secs`, so NetBackup's polling every few seconds does
//! not turn into a request storm on VMS.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::debug;

use crate::error::{Error, ErrorKind, Result};
use crate::filter::LsuFilter;
use crate::names;
use crate::store::{Kind, RetentionMode, Space, WormPolicy};
use crate::vms::types::{
    duration_secs, ClusterRecord, QuotaRecord, VersionRecord, ViewRecord, VipPoolRecord,
};
use crate::vms::{query_value, Vms};

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
    /// Set when the storage enforces retention locks on the view: S3 Object Lock (`locking`)
    /// for a bucket, file retention (`files_retention_mode`) for NFS.
    pub worm: Option<WormPolicy>,
}

pub struct Control {
    vms: Vms,
    filter: LsuFilter,
    ttl: Duration,
    views: Mutex<Option<(Instant, Vec<ViewLsu>)>>,
    space: Mutex<HashMap<String, (Instant, Space)>>,
    cluster: Mutex<Option<(Instant, Cluster)>>,
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
        let c =
            self.vms.list_as::<ClusterRecord>("clusters/")?.into_iter().next().ok_or_else(|| {
                Error::new(ErrorKind::NotFound, "VMS lists no cluster (clusters/ is empty)")
            })?;
        let mut version = c.sw_version;
        if let Ok(vs) = self.vms.list_as::<VersionRecord>("versions/?status=success") {
            if let Some(v) = vs.into_iter().next().map(|v| v.sys_version).filter(|s| !s.is_empty()) {
                version = v;
            }
        }
        let cluster = Cluster {
            name: c.name,
            guid: c.guid,
            version,
            logical_space: c.logical_space,
            logical_space_in_use: c.logical_space_in_use,
            s3_enabled: c.enable_s3.unwrap_or(true),
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
        for v in self.vms.list_as::<ViewRecord>("views/")? {
            let (name, path) = (v.name.as_str(), v.path.as_str());
            let has = |p: &str| v.protocols.iter().any(|x| x == p);
            let bucket = Some(v.bucket.as_str()).filter(|b| !b.is_empty());
            let kind = if has("S3") && bucket.is_some() {
                Kind::S3
            } else if has("NFS") || has("NFS4") {
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
                worm: worm_policy(&v, kind),
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
        let quotas = self.vms.list_as::<QuotaRecord>(&format!("quotas/?path={}", query_value(&lsu.path)))?;
        let quota = quotas.iter().find(|x| x.path.trim_end_matches('/') == lsu.path.trim_end_matches('/'));
        let space = match quota.filter(|x| x.hard_limit > 0) {
            Some(x) => Space { capacity: x.hard_limit, used: x.used_capacity },
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
            Some(p) => format!("vippools/?name={}", query_value(p)),
            None => "vippools/".to_string(),
        };
        let mut out = Vec::new();
        for p in self.vms.list_as::<VipPoolRecord>(&path)? {
            let enabled = p.enabled.unwrap_or(true);
            if pool.is_none() && (!enabled || !(p.role.is_empty() || p.role == "PROTOCOLS")) {
                continue;
            }
            for r in &p.ip_ranges {
                if let [a, b] = &r[..] {
                    expand(a, b, &mut out);
                }
            }
        }
        out.dedup();
        Ok(out)
    }
}

/// The retention a view enforces. A bucket locks objects when `locking` is on, in
/// `s3_locks_retention_mode` (COMPLIANCE when the view does not say); an NFS view locks files
/// when `files_retention_mode` is GOVERNANCE or COMPLIANCE. No minimum is 0 s, no maximum is
/// `u64::MAX`.
fn worm_policy(v: &ViewRecord, kind: Kind) -> Option<WormPolicy> {
    let mode = match kind {
        Kind::S3 if v.locking == Some(true) => match v.s3_locks_retention_mode.as_str() {
            "GOVERNANCE" => RetentionMode::Governance,
            _ => RetentionMode::Compliance,
        },
        Kind::Nfs => match v.files_retention_mode.as_str() {
            "GOVERNANCE" => RetentionMode::Governance,
            "COMPLIANCE" => RetentionMode::Compliance,
            _ => return None,
        },
        _ => return None,
    };
    let min_secs = duration_secs(&v.min_retention_period).unwrap_or(0);
    // No maximum, or a maximum of 0 (VAST's "none"): any lock above the minimum.
    let max_secs = duration_secs(&v.max_retention_period).filter(|&m| m > 0).unwrap_or(u64::MAX);
    Some(WormPolicy { mode, min_secs, max_secs })
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

    #[test]
    fn a_maximum_retention_of_zero_is_no_maximum() {
        let view = |max: &str| -> crate::vms::types::ViewRecord {
            serde_json::from_value(serde_json::json!({
                "name": "v", "path": "/v", "protocols": ["S3"], "bucket": "b", "locking": true,
                "s3_locks_retention_mode": "GOVERNANCE", "files_retention_mode": null,
                "min_retention_period": "1h", "max_retention_period": max,
            }))
            .unwrap()
        };
        let p = |max: &str| super::worm_policy(&view(max), crate::store::Kind::S3).unwrap();
        assert_eq!((p("0").min_secs, p("0").max_secs), (3600, u64::MAX));
        assert_eq!(p("").max_secs, u64::MAX);
        assert_eq!(p("2d").max_secs, 2 * 86_400);
    }
}
