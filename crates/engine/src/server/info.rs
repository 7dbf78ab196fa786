//! What NetBackup is told about servers, LSUs and images: the info records, the `STS_SRV_*`,
//! `STS_LSUF_*` and `STS_II_*` flags, and the per-LSU caches that keep polling cheap.

use std::sync::Arc;

use super::Server;
use crate::error::Result;
use crate::manifest::{ImageDef, Manifest, State};
use crate::store::{Kind, PieceStore};
use ost_abi as abi;

#[derive(Debug, Clone, Default)]
pub struct ServerInfo {
    pub name: String,
    pub flags: u64,
    pub max_connect: u32,
    pub connections: u32,
    pub version: String,
    pub guid: String,
    pub interfaces: String,
}

#[derive(Debug, Clone, Default)]
pub struct LsuInfo {
    pub server: String,
    pub name: String,
    pub description: String,
    pub flags: u64,
    pub capacity: u64,
    pub used: u64,
    pub images: u64,
    pub max_transfer: u64,
    pub block_size: u32,
    /// Shortest and longest retention lock, seconds (WORM LSUs; `u64::MAX`: no maximum).
    pub worm_min: u64,
    pub worm_max: u64,
    /// What `stspi_label_lsu` set (empty: none).
    pub label: String,
}

#[derive(Debug, Clone, Default)]
pub struct ImageInfo {
    pub def: ImageDef,
    pub server: String,
    pub lsu: String,
    pub size: u64,
    pub flags: u32,
    pub meta_size: u64,
    pub created: u64,
    pub updated: u64,
    /// End of the image's retention lock (0: none known).
    pub worm_until: u64,
}

/// Preferred write size reported to NetBackup.
const MAX_TRANSFER: u64 = 1 << 20;

impl Server {
    pub fn info(&self) -> ServerInfo {
        let version = match &self.cluster {
            Some(c) => {
                format!("VAST {} (cluster {}), vast-ost {}", c.version, c.name, env!("CARGO_PKG_VERSION"))
            }
            None => format!("vast-ost {} ({})", env!("CARGO_PKG_VERSION"), self.describe()),
        };
        ServerInfo {
            name: self.name.clone(),
            flags: super::described::flags(self.nfs.is_some(), self.s3.is_some()),
            max_connect: 0,
            connections: self.open_children() as u32,
            version,
            guid: self.cluster.as_ref().map(|c| c.guid.clone()).unwrap_or_default(),
            interfaces: self.endpoints.join(","),
        }
    }

    pub fn lsu_info(&self, lsu: &str) -> Result<LsuInfo> {
        let store = self.store_for(lsu)?;
        let (space, description, worm) = match &self.control {
            Some(c) => {
                let v = c.lsu(lsu)?;
                let mut d = format!("VAST view {} ({})", v.path, store.describe(lsu));
                let worm = self.held(lsu, v.worm)?;
                if v.worm.is_some() && worm.is_none() {
                    d.push_str("; WORM view, but the storage does not hold retention locks (see the log)");
                }
                if let Some(w) = &worm {
                    d.push_str(&format!(
                        "; WORM {} retention {}..{}",
                        w.mode.as_str(),
                        w.min_secs,
                        if w.max_secs == u64::MAX { "unlimited".to_string() } else { w.max_secs.to_string() }
                    ));
                }
                (c.space(&v)?, d, worm)
            }
            None => (store.lsu_space(lsu)?, store.describe(lsu), None),
        };
        let images = self.image_count(store, lsu)?;
        let flags = abi::STS_LSUF_DISK
            | abi::STS_LSUF_OPTIMIZED_IMAGE
            | abi::STS_LSUF_COPY_EXTENT
            | match store.kind() {
                Kind::Nfs => abi::STS_LSUF_NFS,
                Kind::S3 => abi::STS_LSUF_S3,
            }
            | if worm.is_some() { abi::STS_LSUF_WORM } else { 0 };
        Ok(LsuInfo {
            server: self.name.clone(),
            name: lsu.to_string(),
            description,
            flags,
            capacity: space.capacity,
            used: space.used,
            images,
            max_transfer: MAX_TRANSFER,
            block_size: abi::STS_BLOCK_SIZE,
            worm_min: worm.map_or(0, |w| w.min_secs),
            worm_max: worm.map_or(0, |w| w.max_secs),
            // A label that cannot be read must not take the LSU down in NetBackup's polling.
            label: self.lsu_label(lsu).unwrap_or_else(|e| {
                tracing::warn!(server = %self.name, lsu, "LSU label not readable: {e}");
                String::new()
            }),
        })
    }

    /// Forget cached capacity and image count of `lsu`: they just changed.
    pub fn changed(&self, lsu: &str) {
        if let Some(c) = &self.control {
            c.invalidate_space(lsu);
        }
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).remove(lsu);
    }

    fn image_count(&self, store: &Arc<dyn PieceStore>, lsu: &str) -> Result<u64> {
        if let Some((at, n)) = self.counts.lock().unwrap_or_else(|p| p.into_inner()).get(lsu) {
            if at.elapsed() < self.ttl {
                return Ok(*n);
            }
        }
        let n = store.list_images(lsu, "")?.len() as u64;
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(lsu.to_string(), (std::time::Instant::now(), n));
        Ok(n)
    }
}

pub(super) fn image_info(server: &str, lsu: &str, m: &Manifest, reading: bool) -> ImageInfo {
    let mut flags = match m.state {
        State::Pending => abi::STS_II_IMAGE_PENDING,
        State::Complete => abi::STS_II_IMAGE_CREATED,
    };
    if m.writer.is_some() {
        flags |= abi::STS_II_BUSY_WRITE;
    }
    if reading {
        flags |= abi::STS_II_BUSY_READ;
    }
    ImageInfo {
        def: m.def.clone(),
        server: server.to_string(),
        lsu: lsu.to_string(),
        size: m.size,
        flags,
        meta_size: m.meta.data.len() as u64,
        created: m.created,
        updated: m.updated,
        worm_until: 0,
    }
}
