//! What NetBackup hands over from `tpconfig` (user and password), and the secret type that
//! keeps passwords and S3 secret keys out of logs and `Debug` prints.

use std::fmt;

use serde::Deserialize;

/// A password or secret key that never reaches a log or a `Debug` print.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// What NetBackup hands over from `tpconfig -sts_user_id … -password …`.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    pub user: String,
    pub password: Secret,
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_do_not_print() {
        let c = super::Credentials { user: "u".into(), password: super::Secret::new("hush-hush") };
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hush-hush") && dbg.contains("<redacted>"), "{dbg}");
    }
}
