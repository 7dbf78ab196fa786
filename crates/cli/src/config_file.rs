//! The plug-in configuration files the CLI writes (`demo`, `bench`, and the CLI's own tests,
//! which include this file), serialized with serde from structs that mirror the keys of
//! `vast-ost.toml` they use. The plug-in reads them with `vast_ost_engine::config::Config`; the
//! tests here and in `demo.rs` and `bench.rs` parse what is written with `Config::parse`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

/// A whole `vast-ost.toml`.
#[derive(Debug, Default, Serialize)]
pub struct ConfigFile {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<Log>,
    #[serde(rename = "server")]
    pub servers: Vec<Server>,
}

/// `[log]`.
#[derive(Debug, Serialize)]
pub struct Log {
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub level: &'static str,
}

/// One `[[server]]`.
#[derive(Debug, Default, Serialize)]
pub struct Server {
    /// `VastData:<cluster>`.
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lsus: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vms: Option<Vms>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nfs: Option<Nfs>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3>,
    /// Silence after which another host's writer is judged gone (chaos: short).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub writer_silence_secs: Option<u64>,
}

/// `[server.vms]`.
#[derive(Debug, Serialize)]
pub struct Vms {
    pub address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

/// `[server.nfs]`.
#[derive(Debug, Serialize)]
pub struct Nfs {
    pub mount: PathBuf,
    /// `auto`, `always` or `never`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direct_io: Option<&'static str>,
}

/// `[server.s3]`.
#[derive(Debug, Default, Serialize)]
pub struct S3 {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vip_port: Option<u16>,
    pub access_key: String,
    pub secret_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part_size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload_workers: Option<usize>,
}

impl ConfigFile {
    /// The file's text: `comment` as a `#` line, if any, then the TOML.
    pub fn to_toml(&self, comment: Option<&str>) -> Result<String> {
        let body = toml::to_string(self).context("writing the plug-in configuration as TOML")?;
        Ok(match comment {
            Some(c) => format!("# {c}\n{body}"),
            None => body,
        })
    }

    pub fn write(&self, path: &Path, comment: Option<&str>) -> Result<()> {
        std::fs::write(path, self.to_toml(comment)?).with_context(|| format!("writing {}", path.display()))
    }
}

/// A server with only an NFS path: `mount`, every directory below it an LSU.
pub fn nfs_server(name: &str, mount: &Path) -> Server {
    Server {
        name: name.to_string(),
        nfs: Some(Nfs { mount: mount.to_path_buf(), direct_io: None }),
        ..Server::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vast_ost_engine::config::Config;

    /// Text that TOML must escape: quotes, a backslash, a newline, non-ASCII.
    const AWKWARD: &str = "/tmp/a \"quoted\" dir\\with\nnewline and é";

    #[test]
    fn written_config_parses_with_the_same_values() {
        let file = ConfigFile {
            log: Some(Log { level: "debug" }),
            servers: vec![
                Server {
                    vms: Some(Vms {
                        address: "https://vms:443".into(),
                        ca_file: Some(PathBuf::from(AWKWARD)),
                    }),
                    s3: Some(S3 {
                        endpoints: Some(vec!["http://a:80".into(), "http://b:80".into()]),
                        vip_port: Some(8080),
                        access_key: "AK".into(),
                        secret_key: AWKWARD.into(),
                        part_size: Some(8 << 20),
                        upload_workers: Some(3),
                    }),
                    lsus: Some(vec!["bkt".into()]),
                    ..nfs_server("VastData:one", Path::new(AWKWARD))
                },
                nfs_server("VastData:two", Path::new("/mnt/two")),
            ],
        };
        let text = file.to_toml(Some("Written by a test.")).unwrap();
        assert!(text.starts_with("# Written by a test.\n"), "{text}");
        // The plug-in takes it (its config refuses unknown keys, so every name is right) ...
        Config::parse(&text, Path::new("test.toml")).unwrap_or_else(|e| panic!("{e}\n{text}"));
        // ... and every value reads back as it was given, escapes and all.
        let v: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(v["log"]["level"].as_str(), Some("debug"));
        let servers = v["server"].as_array().unwrap();
        assert_eq!(servers.len(), 2, "{text}");
        let one = &servers[0];
        assert_eq!(one["name"].as_str(), Some("VastData:one"));
        assert_eq!(one["lsus"].as_array().unwrap()[0].as_str(), Some("bkt"));
        assert_eq!(one["nfs"]["mount"].as_str(), Some(AWKWARD));
        assert!(one["nfs"].get("direct_io").is_none(), "None is left out: {text}");
        assert_eq!(one["vms"]["address"].as_str(), Some("https://vms:443"));
        assert_eq!(one["vms"]["ca_file"].as_str(), Some(AWKWARD));
        let s3 = &one["s3"];
        let endpoints: Vec<_> =
            s3["endpoints"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
        assert_eq!(endpoints, ["http://a:80", "http://b:80"]);
        assert_eq!(s3["vip_port"].as_integer(), Some(8080));
        assert_eq!(s3["part_size"].as_integer(), Some(8 << 20));
        assert_eq!(s3["upload_workers"].as_integer(), Some(3));
        assert_eq!(s3["access_key"].as_str(), Some("AK"));
        assert_eq!(s3["secret_key"].as_str(), Some(AWKWARD));
        let two = &servers[1];
        assert_eq!(
            (two["name"].as_str(), two["nfs"]["mount"].as_str()),
            (Some("VastData:two"), Some("/mnt/two"))
        );
        assert!(two.get("vms").is_none() && two.get("s3").is_none() && two.get("lsus").is_none(), "{text}");
    }
}
