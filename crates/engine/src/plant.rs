//! Bugs planted on purpose, to show that the chaos run (`vast-ost chaos --plant`, issue 14)
//! catches them. Only a build with the `chaos-plant` cargo feature reads `VAST_OST_CHAOS_PLANT`;
//! in every other build [`planted`] is a constant `false`, so no environment variable can
//! break a release plug-in.
//!
//! - `skip-durability`: a piece is committed without its durability step (the S3 upload is
//!   never completed, the NFS file never synced).
//! - `delete-referenced`: an expiry removes pieces other images still reference.

/// Whether bug `name` is planted in this process.
#[cfg(feature = "chaos-plant")]
pub fn planted(name: &str) -> bool {
    static PLANT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    PLANT.get_or_init(|| std::env::var("VAST_OST_CHAOS_PLANT").ok()).as_deref() == Some(name)
}

/// Whether bug `name` is planted in this process: never, in a build without `chaos-plant`.
#[cfg(not(feature = "chaos-plant"))]
#[inline(always)]
pub fn planted(_name: &str) -> bool {
    false
}
