//! Deliberate bugs, for `vast-ost chaos --plant` to show that its checker catches what it is
//! meant to catch. They exist only in builds with the `chaos-plant` feature (`scripts/chaos
//! --plant` builds such a plug-in apart, in target/chaos-plant); in every other build
//! [`active`] is `false` and nothing can switch a bug on.
//!
//! - `skip-durability`: a piece is committed without its durability step (the S3 upload is
//!   never completed, the NFS file never synced).
//! - `delete-referenced`: an expiry removes pieces other images still reference.

/// Whether the planted bug `name` is switched on (`VAST_OST_CHAOS_PLANT=<name>`).
#[cfg(feature = "chaos-plant")]
pub fn active(name: &str) -> bool {
    std::env::var("VAST_OST_CHAOS_PLANT").is_ok_and(|v| v == name)
}

/// Whether the planted bug `name` is switched on: never, in this build.
#[cfg(not(feature = "chaos-plant"))]
pub fn active(_name: &str) -> bool {
    false
}
