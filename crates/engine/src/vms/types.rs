//! The VMS records the plug-in reads, as typed structs. Unknown fields are ignored, so newer
//! VAST versions still parse; missing ones take their defaults. Numbers are taken whether VMS
//! sends them as integers, floats or strings.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A count of bytes however VMS spells it (`123`, `123.0`, `"123"`); anything else is 0.
fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().map(|f| f.max(0.0) as u64)).unwrap_or(0),
        Value::String(s) => s.trim().parse().unwrap_or(0),
        _ => 0,
    })
}

/// A string that may be `null`.
fn nullable_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

/// `clusters/`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ClusterRecord {
    #[serde(deserialize_with = "nullable_string")]
    pub name: String,
    #[serde(deserialize_with = "nullable_string")]
    pub guid: String,
    #[serde(deserialize_with = "nullable_string")]
    pub sw_version: String,
    #[serde(deserialize_with = "lenient_u64")]
    pub logical_space: u64,
    #[serde(deserialize_with = "lenient_u64")]
    pub logical_space_in_use: u64,
    pub enable_s3: Option<bool>,
}

/// `versions/`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct VersionRecord {
    #[serde(deserialize_with = "nullable_string")]
    pub sys_version: String,
}

/// `views/`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ViewRecord {
    #[serde(deserialize_with = "nullable_string")]
    pub name: String,
    #[serde(deserialize_with = "nullable_string")]
    pub path: String,
    pub protocols: Vec<String>,
    #[serde(deserialize_with = "nullable_string")]
    pub bucket: String,
    /// S3 Object Lock on the bucket (with `s3_versioning`).
    pub locking: Option<bool>,
    /// `GOVERNANCE` | `COMPLIANCE`.
    #[serde(deserialize_with = "nullable_string")]
    pub s3_locks_retention_mode: String,
    /// `NONE` | `GOVERNANCE` | `COMPLIANCE`: retention of files (NFS).
    #[serde(deserialize_with = "nullable_string")]
    pub files_retention_mode: String,
    /// VAST durations (`2d`, `1y`, …).
    #[serde(deserialize_with = "nullable_string")]
    pub min_retention_period: String,
    #[serde(deserialize_with = "nullable_string")]
    pub max_retention_period: String,
}

/// A VAST duration (`30s`, `15m`, `12h`, `2d`, `1w`, `6M`, `1y`: m is minutes, M months of 30
/// days, y years of 365 days), in seconds; a bare number is seconds. `None` if it does not parse.
pub fn duration_secs(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n: u64 = s[..split].parse().ok()?;
    let unit = match &s[split..] {
        "" | "s" | "S" => 1,
        "m" => 60,
        "h" | "H" => 3600,
        "d" | "D" => 86_400,
        "w" | "W" => 7 * 86_400,
        "M" => 30 * 86_400,
        "y" | "Y" => 365 * 86_400,
        _ => return None,
    };
    n.checked_mul(unit)
}

/// `quotas/`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct QuotaRecord {
    #[serde(deserialize_with = "nullable_string")]
    pub path: String,
    #[serde(deserialize_with = "lenient_u64")]
    pub hard_limit: u64,
    #[serde(deserialize_with = "lenient_u64")]
    pub used_capacity: u64,
}

/// `vippools/`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct VipPoolRecord {
    #[serde(deserialize_with = "nullable_string")]
    pub name: String,
    pub enabled: Option<bool>,
    #[serde(deserialize_with = "nullable_string")]
    pub role: String,
    /// `[[start, end], …]`.
    pub ip_ranges: Vec<Vec<String>>,
}

/// `POST /api/token/` and `/api/token/refresh/`.
#[derive(Debug, Clone, Deserialize)]
pub struct Tokens {
    pub access: String,
    pub refresh: Option<String>,
}

/// An error answer: `{"detail": …, "code": …}` (DRF, simplejwt), or a bare JSON string.
#[derive(Debug, Clone, Default)]
pub struct ErrorBody {
    pub detail: Option<String>,
    pub code: Option<String>,
}

impl ErrorBody {
    pub fn parse(body: &str) -> ErrorBody {
        #[derive(Deserialize)]
        struct Obj {
            detail: Option<Value>,
            code: Option<String>,
        }
        match serde_json::from_str::<Value>(body) {
            Ok(Value::String(s)) => ErrorBody { detail: Some(s), code: None },
            Ok(v @ Value::Object(_)) => match serde_json::from_value::<Obj>(v) {
                Ok(o) => ErrorBody {
                    detail: o.detail.map(|d| match d {
                        Value::String(s) => s,
                        other => other.to_string(),
                    }),
                    code: o.code,
                },
                Err(_) => ErrorBody::default(),
            },
            _ => ErrorBody::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_parse_leniently() {
        let c: ClusterRecord = serde_json::from_str(
            r#"{"name":"c1","guid":"g","sw_version":null,"logical_space":"1000","logical_space_in_use":12.0,"new_field":[1]}"#,
        )
        .unwrap();
        assert_eq!(
            (c.name.as_str(), c.sw_version.as_str(), c.logical_space, c.logical_space_in_use),
            ("c1", "", 1000, 12)
        );
        let v: ViewRecord =
            serde_json::from_str(r#"{"path":"/a","protocols":["NFS","S3"],"bucket":null}"#).unwrap();
        assert_eq!((v.path.as_str(), v.protocols.len(), v.bucket.as_str()), ("/a", 2, ""));
        let p: VipPoolRecord =
            serde_json::from_str(r#"{"name":"p","ip_ranges":[["10.0.0.1","10.0.0.2"]],"role":"PROTOCOLS"}"#)
                .unwrap();
        assert_eq!(p.ip_ranges[0][1], "10.0.0.2");
    }

    #[test]
    fn durations() {
        assert_eq!(duration_secs("2d"), Some(172_800));
        assert_eq!(duration_secs("1y"), Some(31_536_000));
        assert_eq!(duration_secs("15m"), Some(900));
        assert_eq!(duration_secs("6M"), Some(6 * 30 * 86_400));
        assert_eq!(duration_secs("90"), Some(90));
        assert_eq!(duration_secs("1x"), None);
        assert_eq!(duration_secs(""), None);
    }

    #[test]
    fn error_bodies() {
        let e =
            ErrorBody::parse(r#"{"detail":"Given token not valid","code":"token_not_valid","messages":[]}"#);
        assert_eq!(
            (e.detail.as_deref(), e.code.as_deref()),
            (Some("Given token not valid"), Some("token_not_valid"))
        );
        let e = ErrorBody::parse(r#""limit reached""#);
        assert_eq!(e.detail.as_deref(), Some("limit reached"));
        let e = ErrorBody::parse(r#"{"path":["required"]}"#);
        assert!(e.detail.is_none() && e.code.is_none());
        assert!(ErrorBody::parse("<html>").detail.is_none());
    }
}
