//! Which build this is: the version, the git commit and its date, the target and the oldest
//! glibc it loads on (`build.rs`; `scripts/dist` sets them for release builds). One wording
//! for the plug-in log's first line, `stspi_get_plugin_info`, `vast-ost plugin-info` and
//! `libstspiVastDataMT.so -version`, so they agree.

/// The package version (`Cargo.toml`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The commit built (12 hex digits), or "unknown".
pub const GIT: &str = env!("VAST_OST_BUILD_GIT");
/// The commit's date (YYYY-MM-DD), or "unknown".
pub const DATE: &str = env!("VAST_OST_BUILD_DATE");
/// The Rust target triple.
pub const TARGET: &str = env!("VAST_OST_BUILD_TARGET");
/// The oldest glibc the binaries load on: "2.17" for `scripts/dist` builds, the build host's
/// version for others.
pub const GLIBC: &str = env!("VAST_OST_BUILD_GLIBC");

/// The build line as a literal, for `concat!`.
macro_rules! build_line {
    () => {
        concat!(
            "git ",
            env!("VAST_OST_BUILD_GIT"),
            ", ",
            env!("VAST_OST_BUILD_DATE"),
            ", ",
            env!("VAST_OST_BUILD_TARGET"),
            ", glibc ",
            env!("VAST_OST_BUILD_GLIBC")
        )
    };
}

/// `git <hash>, <date>, <target>, glibc <floor>`.
pub const BUILD: &str = build_line!();

/// `0.1.0 (git <hash>, <date>, <target>, glibc <floor>)`: `vast-ost --version`.
pub const VERSION_BUILD: &str = concat!(env!("CARGO_PKG_VERSION"), " (", build_line!(), ")");

/// The vendor version NetBackup shows (`bpstsinfo -pi`, 63 bytes at most): `0.1.0 (git <hash>)`.
pub const VENDOR_VERSION: &str =
    concat!(env!("CARGO_PKG_VERSION"), " (git ", env!("VAST_OST_BUILD_GIT"), ")");

/// The plug-in's label: what it is, and its whole build line.
pub const LABEL: &str = concat!("VAST Data OpenStorage plug-in (S3 and NFS); build ", build_line!());

/// `vast-ost 0.1.0 (git …, date, target, glibc …)`: the log's first line names this.
pub fn describe() -> String {
    format!("vast-ost {VERSION_BUILD}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_fit_their_fields_and_agree() {
        assert!(VENDOR_VERSION.len() < ost_abi::STS_MAX_PLUGIN_STRING, "{VENDOR_VERSION}");
        assert!(LABEL.len() < ost_abi::STS_MAX_DESCRIPTION, "{LABEL}");
        assert!(LABEL.ends_with(BUILD) && describe().contains(BUILD), "{LABEL} / {BUILD}");
        assert_eq!(describe(), format!("vast-ost {VERSION} ({BUILD})"));
        assert!(VENDOR_VERSION.starts_with(VERSION) && VENDOR_VERSION.contains(GIT));
        assert!(!TARGET.is_empty() && !GLIBC.is_empty() && !DATE.is_empty());
    }
}
