//! The loaded plug-in: where the config is, what it says (re-read when the file changes, so an
//! admin's edit reaches long-lived processes), the log it points at, and opening servers.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tracing::{info, warn};

use super::{Server, ServerInfo};
use crate::config::{Config, ServerConfig};
use crate::credentials::Credentials;
use crate::error::{Error, Result};
use crate::names;

/// The loaded plug-in: where the config lives and what it said last.
pub struct Engine {
    config_path: PathBuf,
    /// The config and the file's mtime when it was read: reloaded when the file changes, so
    /// an admin's edit reaches long-lived processes at their next open_server.
    config: Mutex<(Option<SystemTime>, Arc<Config>)>,
}

impl Engine {
    /// Load the config (a missing file is an empty config; a broken one is an error) and point
    /// the log where it says.
    pub fn new(config_path: &Path) -> Result<Engine> {
        let (mtime, cfg) = read_config(config_path).inspect_err(|_| {
            // The error must reach a log: the default one, as the config could not say another.
            init_log(&Config::default());
        })?;
        init_log(&cfg);
        if let Some(w) = cfg.secrets_exposed(config_path) {
            warn!("{w}");
        }
        info!(config = %config_path.display(), servers = cfg.servers.len(), "plug-in initialised, {}", crate::version::describe());
        Ok(Engine { config_path: config_path.to_path_buf(), config: Mutex::new((mtime, Arc::new(cfg))) })
    }

    pub fn config(&self) -> Result<Arc<Config>> {
        let mtime = std::fs::metadata(&self.config_path).and_then(|m| m.modified()).ok();
        let mut cur = self.config.lock().unwrap_or_else(|p| p.into_inner());
        if mtime != cur.0 {
            let (mtime, cfg) = read_config(&self.config_path)?;
            init_log(&cfg);
            info!(config = %self.config_path.display(), "configuration reloaded");
            if let Some(w) = cfg.secrets_exposed(&self.config_path) {
                warn!("{w}");
            }
            *cur = (mtime, Arc::new(cfg));
        }
        Ok(cur.1.clone())
    }

    /// Is this storage-server name ours?
    pub fn claim(&self, name: &str) -> Result<()> {
        names::parse_server_name(name).map(|_| ())
    }

    fn server_config(&self, name: &str) -> Result<(Arc<Config>, ServerConfig)> {
        let cluster = names::parse_server_name(name)?;
        let cfg = self.config()?;
        let sc = cfg.server(cluster).cloned().ok_or_else(|| {
            Error::config(format!(
                "no [[server]] with name '{cluster}' in {}: add one that says where its data goes",
                self.config_path.display()
            ))
        })?;
        Ok((cfg, sc))
    }

    pub fn open_server(&self, name: &str, creds: &Credentials) -> Result<Arc<Server>> {
        let (cfg, sc) = self.server_config(name)?;
        let server = Server::connect(name, &sc, Some(creds))?;
        info!(server = name, user = %creds.user, "storage server opened ({})", server.describe());
        super::described::remember(&cfg.cache_dir(), &server.info());
        Ok(Arc::new(server))
    }

    /// Server properties without an open handle (what polling asks for). NetBackup passes no
    /// credentials, so VMS cannot be asked: the flags come from the config, the version, GUID
    /// and interfaces from what the last open on this media server cached (`described`). The
    /// NFS mount is checked as an open would.
    pub fn server_info_byname(&self, name: &str) -> Result<ServerInfo> {
        let (cfg, sc) = self.server_config(name)?;
        Server::connect(name, &sc, None)?;
        Ok(super::described::by_name(&cfg.cache_dir(), name, &sc))
    }
}

fn read_config(path: &Path) -> Result<(Option<SystemTime>, Config)> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((None, Config::default())),
        Err(e) => Err(Error::config(format!("config {}: {e}", path.display()))),
        Ok(m) => Ok((m.modified().ok(), Config::load(path)?)),
    }
}

fn init_log(cfg: &Config) {
    crate::log::init(&cfg.log_path(), cfg.log.level);
}
