//! Which store holds an LSU: with VMS the cluster's views decide (NFS views at the mount plus
//! their path below `view_root`, S3 views by bucket); without, the configured data paths.

use std::collections::BTreeMap;
use std::sync::Arc;

use tracing::debug;

use super::{Cursor, Server};
use crate::control::ViewLsu;
use crate::error::{Error, ErrorKind, Result};
use crate::names;
use crate::store::{Kind, PieceStore};

impl Server {
    /// With VMS, make the stores serve exactly the cluster's views: NFS views at the mount plus
    /// their path below view_root, S3 views by bucket.
    fn sync_views(&self) -> Result<Vec<ViewLsu>> {
        let Some(c) = &self.control else { return Ok(Vec::new()) };
        let views = c.lsus()?;
        if let Some(nfs) = &self.nfs {
            let root = nfs.view_root.trim_end_matches('/');
            let mut map = BTreeMap::new();
            for v in views.iter().filter(|v| v.kind == Kind::Nfs) {
                match v.path.strip_prefix(root).filter(|r| r.is_empty() || r.starts_with('/')) {
                    Some(rel) => {
                        map.insert(v.name.clone(), nfs.mount.join(rel.trim_start_matches('/')));
                    }
                    None => {
                        debug!(server = %self.name, "view {} at {} is outside view_root {}: not reachable here", v.name, v.path, nfs.view_root)
                    }
                }
            }
            nfs.store.set_views(map);
        }
        if let Some(s3) = &self.s3 {
            let map = views
                .iter()
                .filter(|v| v.kind == Kind::S3)
                .map(|v| (v.name.clone(), v.bucket.clone().unwrap_or_else(|| v.name.clone())))
                .collect();
            s3.store.set_buckets(map);
        }
        Ok(views)
    }

    fn nfs_store(&self, lsu: &str) -> Result<&Arc<dyn PieceStore>> {
        self.nfs.as_ref().map(|n| &n.dyn_store).ok_or_else(|| {
            Error::new(
                ErrorKind::NotSupported,
                format!("LSU '{lsu}' is an NFS view, and this server has no [server.nfs]"),
            )
        })
    }

    fn s3_store_for(&self, lsu: &str) -> Result<&Arc<dyn PieceStore>> {
        self.s3.as_ref().map(|s| &s.dyn_store).ok_or_else(|| {
            Error::new(
                ErrorKind::NotSupported,
                format!("LSU '{lsu}' is an S3 bucket, and this server has no [server.s3]"),
            )
        })
    }

    /// The store holding `lsu` (checked to exist), for the layers above the server (A.I.R.).
    pub fn store_of(&self, lsu: &str) -> Result<Arc<dyn PieceStore>> {
        self.store_for(lsu).cloned()
    }

    /// The store holding `lsu`, after checking the LSU exists.
    pub(super) fn store_for(&self, lsu: &str) -> Result<&Arc<dyn PieceStore>> {
        names::validate("LSU", lsu)?;
        let store = if self.control.is_some() {
            match self.sync_views()?.into_iter().find(|v| v.name == lsu) {
                Some(v) if v.kind == Kind::S3 => self.s3_store_for(lsu)?,
                Some(_) => self.nfs_store(lsu)?,
                None => {
                    return Err(Error::not_found(format!(
                        "LSU '{lsu}' is not a view of this cluster (or not selected)"
                    )))
                }
            }
        } else {
            match (&self.nfs, &self.s3) {
                (Some(n), None) => &n.dyn_store,
                (None, Some(s)) => &s.dyn_store,
                // Both without VMS: a directory under the mount wins, else a bucket.
                (Some(n), Some(s)) => {
                    if n.dyn_store.lsu_space(lsu).is_ok() {
                        &n.dyn_store
                    } else {
                        &s.dyn_store
                    }
                }
                (None, None) => {
                    return Err(Error::config(format!("server '{}' has no data path", self.name)))
                }
            }
        };
        store.lsu_space(lsu)?;
        Ok(store)
    }

    /// LSUs whose names start with `prefix`.
    pub fn lsu_list(self: &Arc<Self>, prefix: &str) -> Result<Cursor<String>> {
        let names: Vec<String> = match &self.control {
            Some(_) => self.sync_views()?.into_iter().map(|v| v.name).collect(),
            None => {
                let mut all = Vec::new();
                for store in self.nfs.iter().map(|n| &n.dyn_store).chain(self.s3.iter().map(|s| &s.dyn_store))
                {
                    all.extend(store.list_lsus()?);
                }
                all.sort();
                all.dedup();
                all
            }
        };
        let names = names.into_iter().filter(|n| n.starts_with(prefix)).collect();
        Ok(Cursor { items: names, _guard: self.guard() })
    }
}
