//! What `stspi_get_server_prop_byname` answers. NetBackup polls servers by name without
//! credentials (bpstsinfo, nbrmms), so VMS cannot be asked then. The answer has to describe the
//! same server an open handle does, so it is made of:
//!
//! - the flags, from the config: which data paths (`[server.nfs]`, `[server.s3]`) the server
//!   has is what an open server reports, so they are right even before the first open;
//! - the version, GUID and interfaces, from a cache file the last successful `open_server` on
//!   this media server wrote (`<cache_dir>/<cluster>.json`, default
//!   `/usr/openv/var/vast-ost/`). Only a cache: deleted, the next open writes it again, and
//!   until then the version says the server was not opened here yet and the interfaces are
//!   the configured endpoints.
//!
//! The cache directory is created only when its parent exists (on a media server
//! `/usr/openv/var` does), so a machine without NetBackup never gets a `/usr/openv` tree.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tracing::debug;

use super::ServerInfo;
use crate::config::ServerConfig;
use ost_abi as abi;

/// The flags of a server with these data paths: the same by name and open.
pub(super) fn flags(nfs: bool, s3: bool) -> u64 {
    abi::STS_SRV_DISK
        | abi::STS_SRV_CRED
        | abi::STS_SRV_COPY_IMAGE
        | abi::STS_SRV_WRITE_RANDOM
        | abi::STS_SRV_IMAGE_META
        // Both data paths share pieces (includes, reference copies) and copy pieces inside
        // the storage.
        | abi::STS_SRV_OPTIMIZED_IMAGE
        | abi::STS_SRV_COPY_EXTENT
        | if nfs { abi::STS_SRV_NFS } else { 0 }
        | if s3 { abi::STS_SRV_S3 } else { 0 }
}

/// What the cache file holds: what an open server told NetBackup that needs VMS to know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Cached {
    version: String,
    guid: String,
    interfaces: String,
}

fn cache_file(dir: &Path, name: &str) -> PathBuf {
    let cluster = crate::names::parse_server_name(name).unwrap_or(name);
    dir.join(format!("{}.json", cluster.to_ascii_lowercase()))
}

/// Remember what an open server reported, for polling by name. Best effort: a failure is
/// logged at debug level and changes nothing else.
pub(super) fn remember(dir: &Path, info: &ServerInfo) {
    let cached = Cached {
        version: info.version.clone(),
        guid: info.guid.clone(),
        interfaces: info.interfaces.clone(),
    };
    if let Err(e) = write(dir, &cache_file(dir, &info.name), &cached) {
        debug!(server = %info.name, "server description not cached in {}: {e}", dir.display());
    }
}

fn write(dir: &Path, file: &Path, cached: &Cached) -> std::io::Result<()> {
    if !dir.is_dir() {
        // Only the last component: the parent (/usr/openv/var) is NetBackup's.
        std::fs::create_dir(dir)?;
    }
    let tmp = file.with_extension(format!("json.{}.{}", std::process::id(), crate::util::random_id()));
    std::fs::write(&tmp, serde_json::to_vec_pretty(cached).unwrap_or_default())?;
    std::fs::rename(&tmp, file).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

fn recall(dir: &Path, name: &str) -> Option<Cached> {
    let text = std::fs::read(cache_file(dir, name)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// The by-name answer for server `name` configured as `sc`.
pub(super) fn by_name(dir: &Path, name: &str, sc: &ServerConfig) -> ServerInfo {
    let (nfs, s3) = (sc.nfs.is_some(), sc.s3.is_some());
    let cached = recall(dir, name).unwrap_or_else(|| {
        let paths: Vec<&str> = [(nfs, "NFS"), (s3, "S3")].iter().filter(|p| p.0).map(|p| p.1).collect();
        let endpoints = match &sc.s3 {
            Some(s) if !s.endpoints.is_empty() => s.endpoints.clone(),
            _ => sc.endpoints.clone().unwrap_or_default(),
        };
        Cached {
            version: format!(
                "vast-ost {} ({}; not opened on this media server yet)",
                crate::version::VERSION,
                paths.join(", ")
            ),
            guid: String::new(),
            interfaces: endpoints.join(","),
        }
    });
    ServerInfo {
        name: name.to_string(),
        flags: flags(nfs, s3),
        max_connect: 0,
        connections: 0,
        version: cached.version,
        guid: cached.guid,
        interfaces: cached.interfaces,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(text: &str) -> ServerConfig {
        let cfg = crate::config::Config::parse(text, Path::new("t.toml")).unwrap();
        cfg.servers[0].clone()
    }

    #[test]
    fn remembered_description_comes_back_and_deleting_it_loses_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("vast-ost");
        let sc = server(
            "[[server]]\nname = \"c1\"\n[server.nfs]\nmount = \"/m\"\n[server.s3]\nendpoints = [\"http://10.0.0.1\"]\n",
        );
        let fresh = by_name(&cache, "VastData:c1", &sc);
        assert_eq!(fresh.flags, flags(true, true));
        assert!(fresh.version.contains("NFS, S3; not opened"), "{}", fresh.version);
        assert_eq!(fresh.interfaces, "http://10.0.0.1");
        let open = ServerInfo {
            name: "VastData:C1".into(),
            flags: flags(true, true),
            version: "VAST 5.3.1.0.1 (cluster c1)".into(),
            guid: "g".into(),
            interfaces: "10.0.0.1,10.0.0.2".into(),
            ..Default::default()
        };
        remember(&cache, &open);
        let polled = by_name(&cache, "VastData:c1", &sc);
        assert_eq!((polled.version.as_str(), polled.guid.as_str()), ("VAST 5.3.1.0.1 (cluster c1)", "g"));
        assert_eq!((polled.interfaces.as_str(), polled.flags), ("10.0.0.1,10.0.0.2", open.flags));
        std::fs::remove_dir_all(&cache).unwrap();
        assert_eq!(by_name(&cache, "VastData:c1", &sc).version, fresh.version);
    }

    #[test]
    fn cache_directory_needs_its_parent() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("no-such-parent/vast-ost");
        remember(&cache, &ServerInfo { name: "VastData:c1".into(), ..Default::default() });
        assert!(!cache.exists(), "the cache created a parent directory");
    }
}
