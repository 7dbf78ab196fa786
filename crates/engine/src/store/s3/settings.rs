//! `[server.s3]`: the S3 data path's settings, their defaults and their checks, and S3's
//! own size limits.

use serde::Deserialize;

use crate::credentials::Secret;
use crate::error::{Error, Result};
use crate::http::TlsSettings;

const MIB: u64 = 1 << 20;
/// S3's smallest part (all but the last), and the largest.
pub const MIN_PART: u64 = 5 * MIB;
pub const MAX_PART: u64 = 5 << 30;
/// S3's limit of parts per upload.
pub const MAX_PARTS: u32 = 10_000;
/// Smallest part accepted with `allow_small_parts` (test servers configured so).
const MIN_TEST_PART: u64 = 64 << 10;

/// How each data request proves its bytes arrived intact.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChecksumMode {
    /// `x-amz-checksum-crc32c` on every PUT and part (hardware CRC32C: nearly free). Servers
    /// that know it (AWS, Ceph 19+) reject corrupted bodies; radosgw 16 accepts and ignores it.
    #[default]
    Crc32c,
    /// `Content-MD5`: checked by every S3 server, radosgw 16 included; costs an MD5 pass.
    Md5,
    /// Nothing per request; the image layer's CRC32C still catches corruption on read.
    None,
}

/// How manifests are created and replaced so that no writer replaces another's (`create_mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CreateMode {
    /// Probe each bucket once (`If-None-Match`, `If-Match`, CRC32C) and use the conditional
    /// headers the server is seen to honour, the claim protocol for what it does not.
    #[default]
    Auto,
    /// Trust the server's conditional headers without probing (for buckets where the probe
    /// cannot write). A 501 still moves that bucket to the claim protocol.
    #[serde(alias = "if-none-match")]
    Conditional,
    /// The claim protocol always, whatever the server honours.
    #[serde(alias = "head-then-put")]
    Claim,
}

/// `[server.s3]`-style settings of the S3 data path.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Settings {
    /// `http(s)://host:port` of each data-path address; streams spread across them
    /// round-robin per piece, and a failed one is skipped for a while. Empty in the config:
    /// the cluster's data VIPs (from VMS) with `vip_scheme` and `vip_port`.
    #[serde(default)]
    pub endpoints: Vec<String>,
    /// How to reach a VIP when the endpoints come from VMS.
    #[serde(default = "default_vip_scheme")]
    pub vip_scheme: String,
    pub vip_port: Option<u16>,
    /// Signed into every request; VAST does not check it.
    #[serde(default = "default_region")]
    pub region: String,
    /// Empty in the config: the credentials NetBackup hands over (tpconfig) are the S3 keys,
    /// for servers without `[server.vms]`.
    #[serde(default)]
    pub access_key: String,
    #[serde(default)]
    pub secret_key: Secret,
    /// Bytes per multipart part (and per read-ahead range). At least 5 MiB unless
    /// `allow_small_parts` (test servers configured with a smaller minimum).
    #[serde(default = "default_part_size")]
    pub part_size: u64,
    #[serde(default)]
    pub allow_small_parts: bool,
    /// Parts of one piece uploaded in parallel.
    #[serde(default = "default_workers")]
    pub upload_workers: usize,
    /// Ranges in flight while a piece is read sequentially (0: none).
    #[serde(default = "default_read_ahead")]
    pub read_ahead: usize,
    /// Bytes per read-ahead range [default: `part_size`].
    pub read_range: Option<u64>,
    #[serde(default)]
    pub tls: TlsSettings,
    #[serde(default)]
    pub checksum: ChecksumMode,
    #[serde(default)]
    pub create_mode: CreateMode,
    /// Pieces up to this size are copied with one CopyObject, larger ones with UploadPartCopy
    /// of ranges this big, `workers` at a time (at most 5 GiB).
    #[serde(default = "default_copy_part_size")]
    pub copy_part_size: u64,
    /// Capacity reported for a bucket when nothing better is known (S3 has no capacity call).
    #[serde(default = "default_nominal_capacity")]
    pub nominal_capacity: u64,
    /// Limit for one request, body included.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

impl S3Settings {
    /// The endpoint URL of each data VIP: `vip_scheme://<ip>[:vip_port]`.
    pub fn vip_endpoints(&self, vips: &[String]) -> Vec<String> {
        let port = self.vip_port.map(|p| format!(":{p}")).unwrap_or_default();
        vips.iter().map(|ip| format!("{}://{ip}{port}", self.vip_scheme)).collect()
    }
}

fn default_region() -> String {
    "us-east-1".into()
}
fn default_vip_scheme() -> String {
    "http".into()
}
fn default_part_size() -> u64 {
    16 * MIB
}
fn default_workers() -> usize {
    4
}
fn default_read_ahead() -> usize {
    4
}
/// 64 MiB: a 1 GiB piece is 16 UploadPartCopy ranges, `workers` at a time. Measured on
/// radosgw 16 (1 GiB piece): one CopyObject 5.9 s, 256 MiB ranges 3.8 s, 64 MiB ranges 3.6 s
/// (boto3's managed copy, 8 MiB ranges ten at a time: 4.1 s); the server copies a range at a
/// time per request, so the copy is as parallel as its ranges.
fn default_copy_part_size() -> u64 {
    64 * MIB
}
fn default_nominal_capacity() -> u64 {
    1 << 50
}
fn default_timeout() -> u64 {
    120
}

impl S3Settings {
    /// Settings with defaults for everything but the endpoints and keys.
    pub fn new(endpoints: Vec<String>, access_key: &str, secret_key: &str) -> S3Settings {
        S3Settings {
            endpoints,
            vip_scheme: default_vip_scheme(),
            vip_port: None,
            region: default_region(),
            access_key: access_key.into(),
            secret_key: Secret::new(secret_key),
            part_size: default_part_size(),
            allow_small_parts: false,
            upload_workers: default_workers(),
            read_ahead: default_read_ahead(),
            read_range: None,
            tls: TlsSettings::default(),
            checksum: ChecksumMode::default(),
            create_mode: CreateMode::default(),
            copy_part_size: default_copy_part_size(),
            nominal_capacity: default_nominal_capacity(),
            timeout_secs: default_timeout(),
        }
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::config(format!("S3 settings: {m}")));
        if self.endpoints.is_empty() {
            return bad("endpoints is empty".into());
        }
        if self.access_key.is_empty() || self.secret_key.is_empty() {
            return bad("access_key and secret_key are required".into());
        }
        let min = if self.allow_small_parts { MIN_TEST_PART } else { MIN_PART };
        if self.part_size < min || self.part_size > MAX_PART {
            return bad(format!(
                "part_size {} is outside {min}..={MAX_PART} (S3 parts are 5 MiB to 5 GiB; allow_small_parts = true \
                 permits 64 KiB for test servers configured so)",
                self.part_size
            ));
        }
        if self.part_size > usize::MAX as u64 / 2 {
            return bad("part_size does not fit in memory".into());
        }
        if self.upload_workers == 0 || self.upload_workers > 64 {
            return bad(format!("upload_workers {} is outside 1..=64", self.upload_workers));
        }
        if self.read_ahead > 64 {
            return bad(format!("read_ahead {} is over 64", self.read_ahead));
        }
        if let Some(r) = self.read_range.filter(|&r| !(64 << 10..=MAX_PART).contains(&r)) {
            return bad(format!("read_range {r} is outside 65536..={MAX_PART}"));
        }
        if self.copy_part_size < min || self.copy_part_size > MAX_PART {
            return bad(format!("copy_part_size {} is outside {min}..={MAX_PART}", self.copy_part_size));
        }
        if self.timeout_secs == 0 {
            return bad("timeout_secs must be positive".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn parse(s: &str) -> std::result::Result<S3Settings, toml::de::Error> {
        toml::from_str(s)
    }

    #[test]
    fn settings_defaults_and_checks() {
        let s =
            parse("endpoints = [\"http://10.0.0.1:80\"]\naccess_key = \"AK\"\nsecret_key = \"hush-hush\"\n")
                .unwrap();
        assert_eq!((s.part_size, s.upload_workers, s.read_ahead), (16 << 20, 4, 4));
        assert_eq!(
            (s.region.as_str(), s.checksum, s.create_mode),
            ("us-east-1", ChecksumMode::Crc32c, CreateMode::Auto)
        );
        s.validate().unwrap();
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("hush-hush") && dbg.contains("<redacted>"), "{dbg}");
        assert!(parse("endpoints = []\naccess_key = \"a\"\nsecret_key = \"b\"\nbogus = 1\n").is_err());
        let mut small = s.clone();
        small.part_size = 1 << 20;
        assert_eq!(small.validate().unwrap_err().kind(), ErrorKind::Config);
        small.allow_small_parts = true;
        small.validate().unwrap();
        let s = parse("endpoints = [\"https://a\"]\naccess_key = \"a\"\nsecret_key = \"b\"\nchecksum = \"md5\"\ncreate_mode = \"head-then-put\"\n[tls]\ninsecure = true\n").unwrap();
        assert_eq!((s.checksum, s.create_mode, s.tls.insecure), (ChecksumMode::Md5, CreateMode::Claim, true));
    }
}
