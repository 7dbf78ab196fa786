//! The plug-in's TOML configuration: where it is, what it says, and errors that name the file,
//! the line and what was expected.
//!
//! ```toml
//! [log]
//! path = "/usr/openv/logs/vast-ost/vast-ost.log"
//! level = "info"                 # error | warn | info | debug | trace
//!
//! [[server]]
//! name = "VastData:cluster1"     # or just "cluster1"
//! [server.nfs]
//! mount = "/mnt/vast/nbu"        # a mounted VAST view; each LSU is a directory under it
//! lsus = ["lsu1", "lsu2"]        # optional: default is every directory under `mount`
//! direct_io = "auto"             # auto | always | never
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::names;

/// Environment variable naming the config file.
pub const CONFIG_ENV: &str = "VAST_OST_CONFIG";
/// File name looked for beside the plug-in when the variable is unset.
pub const CONFIG_FILE: &str = "vast-ost.toml";
/// Default plug-in log.
pub const DEFAULT_LOG: &str = "/usr/openv/logs/vast-ost/vast-ost.log";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default, rename = "server")]
    pub servers: Vec<ServerConfig>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub path: Option<PathBuf>,
    #[serde(default)]
    pub level: LogLevel,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// `VastData:<cluster>` or `<cluster>`.
    pub name: String,
    pub nfs: Option<NfsConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NfsConfig {
    pub mount: PathBuf,
    pub lsus: Option<Vec<String>>,
    #[serde(default)]
    pub direct_io: DirectIo,
    /// Smallest write sent with O_DIRECT (when aligned). Default 1 MiB.
    #[serde(default = "default_direct_io_min")]
    pub direct_io_min: u64,
}

fn default_direct_io_min() -> u64 {
    1 << 20
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DirectIo {
    /// O_DIRECT for large aligned writes when the file system takes it.
    #[default]
    Auto,
    Always,
    Never,
}

impl ServerConfig {
    /// The cluster part of the name, without `VastData:`.
    pub fn cluster(&self) -> &str {
        self.name.strip_prefix(names::PREFIX).unwrap_or(&self.name)
    }
}

impl Config {
    /// Parse config text; `origin` (the file path) is named in every error.
    pub fn parse(text: &str, origin: &Path) -> Result<Config> {
        let cfg: Config = toml::from_str(text).map_err(|e| {
            let (line, col) = e
                .span()
                .map(|s| line_col(text, s.start))
                .unwrap_or((0, 0));
            Error::config(format!(
                "{}:{line}:{col}: {}",
                origin.display(),
                e.message().trim_end()
            ))
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
            let Some(nfs) = &s.nfs else {
                return bad(format!("[[server]] '{cluster}' has no data path: add [server.nfs]"));
            };
            if !nfs.mount.is_absolute() {
                return bad(format!(
                    "[server.nfs] mount of '{cluster}' must be an absolute path, got '{}'",
                    nfs.mount.display()
                ));
            }
            for lsu in nfs.lsus.iter().flatten() {
                if let Err(e) = names::validate("LSU", lsu) {
                    return bad(format!("[server.nfs] lsus of '{cluster}': {e}"));
                }
            }
        }
        Ok(())
    }

    /// The `[[server]]` entry for a cluster name (case-insensitive, as host names are).
    pub fn server(&self, cluster: &str) -> Option<&ServerConfig> {
        self.servers
            .iter()
            .find(|s| s.cluster().eq_ignore_ascii_case(cluster))
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
            "[log]\nlevel = \"debug\"\n[[server]]\nname = \"VastData:c1\"\n[server.nfs]\nmount = \"/mnt/v\"\nlsus = [\"a\"]\n",
        )
        .unwrap();
        assert_eq!(c.log.level, LogLevel::Debug);
        assert_eq!(c.server("C1").unwrap().nfs.as_ref().unwrap().direct_io, DirectIo::Auto);
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
        let e = parse("x = [").unwrap_err();
        assert!(e.message().starts_with("/etc/x.toml:1:"), "{e}");
    }
}
