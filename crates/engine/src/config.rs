//! The plug-in's TOML configuration: where it is, what it says, and errors that name the file,
//! the line and what was expected.
//!
//! ```toml
//! cache_dir = "/usr/openv/var/vast-ost"  # what polling by name is told (only a cache)
//! [log]
//! path = "/usr/openv/logs/vast-ost/vast-ost.log"
//! level = "info"                 # error | warn | info | debug | trace
//!
//! [[server]]
//! name = "VastData:cluster1"     # or just "cluster1"
//! lsus = ["lsu1", "lsu2"]        # optional: only these LSUs
//! lsu_prefix = "nbu-"            # optional: only LSUs whose name starts so
//! capacity_ttl_secs = 10         # how long LSU lists and capacity are cached
//! [server.retry]                 # optional: retries of VMS and S3 requests
//! deadline_secs = 60             # also base_ms, cap_ms, max_attempts
//! [server.vms]                   # optional: the VAST management API (see vms.rs)
//! address = "vms.example.com"
//! ca_file = "/etc/vast/ca.pem"
//! [server.nfs]
//! mount = "/mnt/vast"            # where VAST is mounted on this media server
//! view_root = "/"                # the VAST path mounted there (with [server.vms])
//! direct_io = "auto"             # auto | always | never
//! ```
//!
//! Without `[server.vms]`, every directory under the NFS mount is an LSU. With it, the LSUs
//! are the cluster's views (NFS views at `mount` + their path below `view_root`).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::filter::LsuFilter;
use crate::log::LogLevel;
use crate::names;
use crate::retry::RetrySettings;
use crate::store::nfs::NfsSettings;
use crate::store::s3::S3Settings;
use crate::vms::VmsSettings;

/// Environment variable naming the config file.
pub const CONFIG_ENV: &str = "VAST_OST_CONFIG";
/// File name looked for beside the plug-in when the variable is unset.
pub const CONFIG_FILE: &str = "vast-ost.toml";
/// Environment variable naming the plug-in log (overrides `[log] path`).
pub const LOG_ENV: &str = "VAST_OST_LOG";
/// Default plug-in log.
pub const DEFAULT_LOG: &str = "/usr/openv/logs/vast-ost/vast-ost.log";
/// Where the plug-in is installed (the config is looked for here when the plug-in's own
/// directory is unknown).
pub const INSTALL_DIR: &str = "/usr/openv/lib/ost-plugins";
/// Default `cache_dir`: what polling by name is told about servers opened here.
pub const DEFAULT_CACHE_DIR: &str = "/usr/openv/var/vast-ost";
/// Environment variable naming the cache directory (overrides `cache_dir`).
pub const CACHE_ENV: &str = "VAST_OST_CACHE_DIR";

/// An environment variable's value, with an empty value taken as unset.
fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var).filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// The config file the plug-in reads: `$VAST_OST_CONFIG` when set and not empty, else
/// `vast-ost.toml` in `plugin_dir` (the directory of the loaded plug-in), else in
/// [`INSTALL_DIR`]. The plug-in and the CLI both use this, so they agree.
pub fn config_path(plugin_dir: Option<&Path>) -> PathBuf {
    env_path(CONFIG_ENV).unwrap_or_else(|| plugin_dir.unwrap_or(Path::new(INSTALL_DIR)).join(CONFIG_FILE))
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the descriptions of servers opened on this media server are cached for polling
    /// by name (default [`DEFAULT_CACHE_DIR`]; only a cache).
    pub cache_dir: Option<PathBuf>,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default, rename = "server")]
    pub servers: Vec<ServerConfig>,
    /// A.I.R.: LSUs whose images `stspi_async_copy_image` replicates to another server's LSU.
    #[serde(default, rename = "replication")]
    pub replications: Vec<ReplicationConfig>,
}

/// One A.I.R. pairing: images of `source_lsu` on `source_server` go to `target_lsu` on
/// `target_server` (another `[[server]]` of this file). The target is opened with
/// `target_user` and `target_password` (the forms `tpconfig -password` takes: a password,
/// `token:…`, `cert:/path`): NetBackup passes no credentials for the target to
/// `stspi_async_copy_image`, and a copy resumed by another process after a crash must reopen it
/// on its own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicationConfig {
    pub source_server: String,
    pub source_lsu: String,
    pub target_server: String,
    pub target_lsu: String,
    #[serde(default)]
    pub target_user: String,
    #[serde(default)]
    pub target_password: String,
}

impl ReplicationConfig {
    /// `VastData:<cluster>` of the source and target.
    pub fn source(&self) -> String {
        full_name(&self.source_server)
    }
    pub fn target(&self) -> String {
        full_name(&self.target_server)
    }
}

/// `VastData:<cluster>` for a configured name with or without the prefix.
fn full_name(name: &str) -> String {
    let cluster = name.strip_prefix(names::PREFIX).unwrap_or(name);
    format!("{}{cluster}", names::PREFIX)
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub path: Option<PathBuf>,
    #[serde(default)]
    pub level: LogLevel,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// `VastData:<cluster>` or `<cluster>`.
    pub name: String,
    pub lsus: Option<Vec<String>>,
    pub lsu_prefix: Option<String>,
    #[serde(default = "default_capacity_ttl")]
    pub capacity_ttl_secs: u64,
    /// A writer on another media server is judged gone after this long without a commit
    /// (writers recommit every third of it); orphan cleanup waits at least this long.
    #[serde(default = "default_writer_silence")]
    pub writer_silence_secs: u64,
    /// Copies of an image inside one LSU (copy_image, copy_extent) reference its pieces and
    /// move no data; `false` gives every copy pieces of its own (copied inside the storage).
    #[serde(default = "default_true")]
    pub reference_copies: bool,
    pub vms: Option<VmsSettings>,
    pub nfs: Option<NfsSettings>,
    pub s3: Option<S3Settings>,
    /// Backoff and deadline of retried requests (VMS and S3).
    #[serde(default)]
    pub retry: RetrySettings,
    /// Data-path addresses (S3 endpoints); default: the VIPs of `vip_pool` from VMS.
    pub endpoints: Option<Vec<String>>,
    /// VIP pool whose addresses carry data (default: every enabled PROTOCOLS pool).
    pub vip_pool: Option<String>,
}

fn default_capacity_ttl() -> u64 {
    10
}

fn default_true() -> bool {
    true
}

fn default_writer_silence() -> u64 {
    900
}

impl ServerConfig {
    /// The cluster part of the name, without `VastData:`.
    pub fn cluster(&self) -> &str {
        self.name.strip_prefix(names::PREFIX).unwrap_or(&self.name)
    }

    pub fn filter(&self) -> LsuFilter {
        LsuFilter { names: self.lsus.clone(), prefix: self.lsu_prefix.clone() }
    }
}

impl Config {
    /// Parse config text; `origin` (the file path) is named in every error.
    pub fn parse(text: &str, origin: &Path) -> Result<Config> {
        let cfg: Config = toml::from_str(text).map_err(|e| {
            let (line, col) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
            Error::config(format!("{}:{line}:{col}: {}", origin.display(), e.message().trim_end()))
        })?;
        cfg.validate(origin)?;
        Ok(cfg)
    }

    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading config {}", path.display()), e))
            .map_err(|e| Error::config(e.message().to_string()))?;
        Config::parse(&text, path)
    }

    /// A warning when the file at `path` holds an S3 secret key and group or others can read it.
    pub fn secrets_exposed(&self, path: &Path) -> Option<String> {
        use std::os::unix::fs::PermissionsExt;
        let s3_secret =
            self.servers.iter().any(|s| s.s3.as_ref().is_some_and(|s3| !s3.secret_key.is_empty()));
        if !s3_secret && self.replications.iter().all(|r| r.target_password.is_empty()) {
            return None;
        }
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        (mode & 0o077 != 0).then(|| {
            format!(
                "config {} holds an S3 secret key or a replication target password but group or others can read it (mode {mode:o}): chmod 600 it",
                path.display()
            )
        })
    }

    fn validate(&self, origin: &Path) -> Result<()> {
        let bad = |what: String| Err(Error::config(format!("{}: {what}", origin.display())));
        let mut seen = std::collections::HashSet::new();
        for s in &self.servers {
            let cluster = s.cluster();
            if let Err(e) = names::parse_server_name(&format!("{}{cluster}", names::PREFIX)) {
                return bad(format!("[[server]] name '{}': {e}", s.name));
            }
            if !seen.insert(cluster.to_ascii_lowercase()) {
                return bad(format!("[[server]] '{cluster}' appears twice"));
            }
            if s.writer_silence_secs < 3 {
                return bad(format!("[[server]] writer_silence_secs of '{cluster}' must be at least 3"));
            }
            if s.nfs.is_none() && s.s3.is_none() {
                return bad(format!(
                    "[[server]] '{cluster}' has no data path: add [server.nfs] or [server.s3]"
                ));
            }
            if let Some(s3) = &s.s3 {
                if s3.endpoints.is_empty() && s.vms.is_none() {
                    return bad(format!(
                        "[server.s3] of '{cluster}' has no endpoints, and without [server.vms] there are no VIPs to use"
                    ));
                }
                if s3.access_key.is_empty() != s3.secret_key.is_empty() {
                    return bad(format!(
                        "[server.s3] of '{cluster}' needs both access_key and secret_key, or neither"
                    ));
                }
                if s3.access_key.is_empty() && s.vms.is_some() {
                    return bad(format!(
                        "[server.s3] of '{cluster}' needs access_key and secret_key (the tpconfig credentials are for \
                         VMS; `vast-ost provision --s3 --access-key` creates a key)"
                    ));
                }
            }
            for lsu in s.lsus.iter().flatten() {
                if let Err(e) = names::validate("LSU", lsu) {
                    return bad(format!("[[server]] lsus of '{cluster}': {e}"));
                }
            }
            if let Some(v) = &s.vms {
                if v.address.trim().is_empty() {
                    return bad(format!("[server.vms] address of '{cluster}' is empty"));
                }
            }
            let Some(nfs) = &s.nfs else { continue };
            if !nfs.mount.is_absolute() {
                return bad(format!(
                    "[server.nfs] mount of '{cluster}' must be an absolute path, got '{}'",
                    nfs.mount.display()
                ));
            }
            if !(4096..=64 << 20).contains(&nfs.direct_io_min) || nfs.direct_io_min % 4096 != 0 {
                return bad(format!(
                    "[server.nfs] direct_io_min of '{cluster}' must be a multiple of 4096 from 4096 to 67108864, got {}",
                    nfs.direct_io_min
                ));
            }
            if !nfs.view_root.starts_with('/') {
                return bad(format!(
                    "[server.nfs] view_root of '{cluster}' must start with '/', got '{}'",
                    nfs.view_root
                ));
            }
        }
        let mut pairs = std::collections::HashSet::new();
        for r in &self.replications {
            let what =
                format!("[[replication]] {}/{} -> {}/{}", r.source(), r.source_lsu, r.target(), r.target_lsu);
            for (side, name) in [("source_server", &r.source_server), ("target_server", &r.target_server)] {
                let cluster = name.strip_prefix(names::PREFIX).unwrap_or(name);
                if self.server(cluster).is_none() {
                    return bad(format!("{what}: {side} '{name}' is not a [[server]] of this file"));
                }
            }
            for lsu in [&r.source_lsu, &r.target_lsu] {
                if let Err(e) = names::validate("LSU", lsu) {
                    return bad(format!("{what}: {e}"));
                }
            }
            if r.source().eq_ignore_ascii_case(&r.target()) && r.source_lsu == r.target_lsu {
                return bad(format!("{what}: an LSU cannot replicate to itself"));
            }
            if !pairs.insert((
                r.source().to_ascii_lowercase(),
                r.source_lsu.clone(),
                r.target().to_ascii_lowercase(),
                r.target_lsu.clone(),
            )) {
                return bad(format!("{what} appears twice"));
            }
        }
        Ok(())
    }

    /// The plug-in log: `$VAST_OST_LOG` when set and not empty, else `[log] path`, else
    /// [`DEFAULT_LOG`] (the log falls back to `/tmp/vast-ost.log` when that cannot be opened).
    pub fn log_path(&self) -> PathBuf {
        env_path(LOG_ENV).or_else(|| self.log.path.clone()).unwrap_or_else(|| PathBuf::from(DEFAULT_LOG))
    }

    /// `$VAST_OST_CACHE_DIR` when set and not empty, else `cache_dir`, else
    /// [`DEFAULT_CACHE_DIR`].
    pub fn cache_dir(&self) -> PathBuf {
        env_path(CACHE_ENV)
            .or_else(|| self.cache_dir.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CACHE_DIR))
    }

    /// The `[[replication]]` entries whose source is `lsu` of server `server` (full name).
    pub fn replication_targets(&self, server: &str, lsu: &str) -> Vec<&ReplicationConfig> {
        self.replications
            .iter()
            .filter(|r| r.source().eq_ignore_ascii_case(server) && r.source_lsu == lsu)
            .collect()
    }

    /// The `[[replication]]` entries whose target is `lsu` of server `server` (full name).
    pub fn replication_sources(&self, server: &str, lsu: &str) -> Vec<&ReplicationConfig> {
        self.replications
            .iter()
            .filter(|r| r.target().eq_ignore_ascii_case(server) && r.target_lsu == lsu)
            .collect()
    }

    /// The `[[server]]` entry for a cluster name (case-insensitive, as host names are).
    pub fn server(&self, cluster: &str) -> Option<&ServerConfig> {
        self.servers.iter().find(|s| s.cluster().eq_ignore_ascii_case(cluster))
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Result<Config> {
        Config::parse(t, Path::new("/etc/x.toml"))
    }

    #[test]
    fn good_config() {
        let c = parse(
            "[log]\nlevel = \"debug\"\n[[server]]\nname = \"VastData:c1\"\nlsus = [\"a\"]\n[server.nfs]\nmount = \"/mnt/v\"\n",
        )
        .unwrap();
        assert_eq!(c.log.level, LogLevel::Debug);
        assert_eq!(c.servers[0].retry.max_attempts, 8, "defaults without [server.retry]");
        let r = parse(
            "[[server]]\nname = \"c1\"\n[server.nfs]\nmount = \"/m\"\n[server.retry]\ndeadline_secs = 5\n",
        )
        .unwrap();
        let p: crate::retry::RetryPolicy = r.servers[0].retry.into();
        assert_eq!((p.deadline.as_secs(), p.max_attempts), (5, 8));
        assert!(parse(
            "[[server]]\nname = \"c1\"\n[server.nfs]\nmount = \"/m\"\n[server.retry]\nbogus = 1\n"
        )
        .is_err());
        assert_eq!(
            c.server("C1").unwrap().nfs.as_ref().unwrap().direct_io,
            crate::store::nfs::DirectIo::Auto
        );
    }

    #[test]
    fn replication_pairs_name_configured_servers() {
        let servers = "[[server]]\nname = \"c1\"\n[server.nfs]\nmount = \"/m\"\n[[server]]\nname = \"VastData:c2\"\n[server.nfs]\nmount = \"/n\"\n";
        let pair = |t: &str, tl: &str| {
            format!("{servers}[[replication]]\nsource_server = \"VastData:c1\"\nsource_lsu = \"a\"\ntarget_server = \"{t}\"\ntarget_lsu = \"{tl}\"\ntarget_password = \"p\"\n")
        };
        let c = parse(&pair("c2", "b")).unwrap();
        assert_eq!(c.replication_targets("VastData:C1", "a")[0].target(), "VastData:c2");
        assert_eq!(c.replication_sources("VastData:c2", "b").len(), 1);
        assert!(c.replication_sources("VastData:c2", "a").is_empty());
        assert!(parse(&pair("c3", "b")).unwrap_err().message().contains("is not a [[server]]"));
        assert!(parse(&pair("c1", "a")).unwrap_err().message().contains("itself"));
        assert!(parse(&pair("c2", "../x")).is_err());
        let twice = format!("{}{}", pair("c2", "b"), pair("c2", "b").trim_start_matches(servers));
        assert!(parse(&twice).unwrap_err().message().contains("twice"));
    }

    #[test]
    fn secrets_in_a_readable_file_are_flagged() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let text = "[[server]]\nname = \"c1\"\n[server.s3]\nendpoints = [\"http://h\"]\naccess_key = \"a\"\nsecret_key = \"s\"\n";
        std::fs::write(&path, text).unwrap();
        let cfg = Config::load(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(cfg.secrets_exposed(&path).unwrap().ends_with("chmod 600 it"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(cfg.secrets_exposed(&path).is_none());
    }

    #[test]
    fn errors_name_file_line_and_expectation() {
        let e = parse("[log]\nlevel = \"loud\"\n").unwrap_err();
        assert!(e.message().starts_with("/etc/x.toml:2:"), "{e}");
        assert!(e.message().contains("unknown variant"), "{e}");
        let e = parse("[[server]]\nname = \"c1\"\nbogus = 1\n").unwrap_err();
        assert!(e.message().starts_with("/etc/x.toml:3:"), "{e}");
        let e = parse("[[server]]\nname = \"c1\"\n[server.nfs]\nmount = \"rel\"\n").unwrap_err();
        assert!(e.message().contains("absolute"), "{e}");
        let e = parse("[[server]]\nname = \"c1\"\n").unwrap_err();
        assert!(e.message().contains("no data path"), "{e}");
        let e = parse("[[server]]\nname = \"c1\"\n[server.s3]\naccess_key = \"k\"\n").unwrap_err();
        assert!(e.message().contains("no endpoints"), "{e}");
        let e = parse("x = [").unwrap_err();
        assert!(e.message().starts_with("/etc/x.toml:1:"), "{e}");
    }
}
