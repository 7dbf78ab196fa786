//! The plug-in configuration a bench runs with: its own server (`VastData:bench`: the bench's
//! buckets or directories as LSUs, its endpoint and keys), with every tuning key of the user's
//! `--config` carried over (part size, workers, read-ahead, checksum, direct I/O, retries,
//! reference copies, ...), so settings are compared with the bench. Where the bench runs is
//! the bench's; how the plug-in moves data is the user's file.

use std::path::Path;

use anyhow::{Context, Result};

use crate::config_file::{self, ConfigFile, Server, S3};

pub const SERVER: &str = "VastData:bench";

/// Keys that say where data goes: the bench sets them, the user's file does not.
const PLACE: &[&str] = &["name", "lsus", "lsu_prefix", "vms", "vip_pool", "endpoints"];
const S3_PLACE: &[&str] = &["endpoints", "access_key", "secret_key", "vip_scheme", "vip_port", "tls"];
const NFS_PLACE: &[&str] = &["mount", "view_root"];

/// The bench's server: S3 at `endpoint` with `buckets` as LSUs, or the NFS path at `mount`.
pub fn server(s3: Option<(&str, &str, &str, &[String])>, mount: Option<&Path>) -> Server {
    match (s3, mount) {
        (Some((endpoint, ak, sk, buckets)), _) => Server {
            name: SERVER.to_string(),
            lsus: Some(buckets.to_vec()),
            s3: Some(S3 {
                endpoints: Some(vec![endpoint.to_string()]),
                access_key: ak.to_string(),
                secret_key: sk.to_string(),
                ..S3::default()
            }),
            ..Server::default()
        },
        (None, Some(m)) => config_file::nfs_server(SERVER, m),
        (None, None) => unreachable!("a bench server is S3 or NFS"),
    }
}

/// The text of the bench's configuration: `server`, with the tuning of the first `[[server]]`
/// of `user` (a vast-ost.toml) laid over it.
pub fn text(server: Server, user: Option<&Path>) -> Result<String> {
    let base = ConfigFile { log: Some(config_file::Log { level: "info" }), servers: vec![server] }
        .to_toml(Some("Written by vast-ost bench."))?;
    let Some(user) = user else { return Ok(base) };
    let utext = std::fs::read_to_string(user).with_context(|| format!("reading {}", user.display()))?;
    let u: toml::Table = toml::from_str(&utext).with_context(|| format!("parsing {}", user.display()))?;
    let mut b: toml::Table = toml::from_str(&base)?;
    let Some(us) =
        u.get("server").and_then(|s| s.as_array()).and_then(|a| a.first()).and_then(|s| s.as_table())
    else {
        return Ok(base);
    };
    let bs = b["server"]
        .as_array_mut()
        .and_then(|a| a.first_mut())
        .and_then(|s| s.as_table_mut())
        .expect("one server");
    for (k, v) in us {
        match (k.as_str(), v.as_table()) {
            (k, _) if PLACE.contains(&k) => {}
            ("s3" | "nfs", Some(t)) => {
                let place = if k == "s3" { S3_PLACE } else { NFS_PLACE };
                // Only into the data path the bench runs.
                if let Some(dst) = bs.get_mut(k).and_then(|d| d.as_table_mut()) {
                    for (k2, v2) in t {
                        if !place.contains(&k2.as_str()) {
                            dst.insert(k2.clone(), v2.clone());
                        }
                    }
                }
            }
            _ => {
                bs.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(format!(
        "# Written by vast-ost bench, with the tuning of {}.\n{}",
        user.display(),
        toml::to_string(&b)?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vast_ost_engine::config::Config;

    #[test]
    fn the_users_tuning_is_kept_and_the_place_is_the_benchs() {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("vast-ost.toml");
        std::fs::write(
            &user,
            "[[server]]\nname = \"VastData:prod\"\nlsu_prefix = \"nbu-\"\nreference_copies = false\n\
             [server.retry]\nmax_attempts = 3\n\
             [server.s3]\nendpoints = [\"http://10.0.0.1\"]\naccess_key = \"PROD\"\nsecret_key = \"prod\"\n\
             part_size = 33554432\nread_ahead = 8\nupload_workers = 6\n\
             [server.nfs]\nmount = \"/mnt/prod\"\ndirect_io = \"always\"\n",
        )
        .unwrap();
        let buckets = vec!["vost-bench-1-a".to_string()];
        let s3 =
            text(server(Some(("http://127.0.0.1:7480", "AK", "SK", &buckets)), None), Some(&user)).unwrap();
        Config::parse(&s3, Path::new("bench.toml")).unwrap_or_else(|e| panic!("{e}\n{s3}"));
        let v: toml::Table = toml::from_str(&s3).unwrap();
        let srv = &v["server"][0];
        assert_eq!(srv["name"].as_str(), Some(SERVER));
        assert_eq!(srv["lsus"][0].as_str(), Some("vost-bench-1-a"));
        assert!(srv.get("lsu_prefix").is_none(), "{s3}");
        assert_eq!(srv["reference_copies"].as_bool(), Some(false));
        assert_eq!(srv["retry"]["max_attempts"].as_integer(), Some(3));
        assert_eq!(srv["s3"]["endpoints"][0].as_str(), Some("http://127.0.0.1:7480"));
        assert_eq!(srv["s3"]["access_key"].as_str(), Some("AK"));
        assert_eq!(srv["s3"]["part_size"].as_integer(), Some(32 << 20));
        assert_eq!(srv["s3"]["read_ahead"].as_integer(), Some(8));
        assert!(srv.get("nfs").is_none(), "the NFS path is not the one benched: {s3}");
        let nfs = text(server(None, Some(Path::new("/tmp/b/mnt"))), Some(&user)).unwrap();
        Config::parse(&nfs, Path::new("bench.toml")).unwrap_or_else(|e| panic!("{e}\n{nfs}"));
        let v: toml::Table = toml::from_str(&nfs).unwrap();
        assert_eq!(v["server"][0]["nfs"]["mount"].as_str(), Some("/tmp/b/mnt"));
        assert_eq!(v["server"][0]["nfs"]["direct_io"].as_str(), Some("always"));
        // No --config: the bench's own file.
        let own = text(server(None, Some(Path::new("/tmp/b/mnt"))), None).unwrap();
        Config::parse(&own, Path::new("bench.toml")).unwrap();
    }
}
