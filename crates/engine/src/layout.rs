//! Where an image's records live inside its LSU, the same on every backend: one key for the
//! manifest, one key per piece, all under the image's name. This file is the only place that
//! knows the layout.
//!
//! ```text
//! <image>/manifest          the commit record
//! <image>/<piece>           immutable data pieces (`<writer session>-<n>.piece`)
//! <image>/.claim.<id>       S3 without conditional writes: a creator's claim on the name
//! <image>/.lock.<id>        S3 without conditional writes: a committer's lease on the manifest
//! .vast-ost/                the plug-in's own keys in an LSU (never an image name: names
//!                           do not start with '.'), e.g. the S3 feature probe
//! ```

use crate::error::{Error, Result};
use crate::names;

/// The manifest's name inside its image.
pub const MANIFEST: &str = "manifest";

/// Largest manifest accepted when reading one (a corrupt length cannot make us allocate more).
pub const MAX_MANIFEST: usize = 64 << 20;

/// Where the plug-in keeps its own records in an LSU.
pub const RESERVED_PREFIX: &str = ".vast-ost/";

/// The prefix of the keys the S3 feature probe writes (and removes) in a bucket.
pub fn probe_prefix() -> String {
    format!("{RESERVED_PREFIX}probe/")
}

/// The prefix of every creator's claim on `image`.
pub fn claim_prefix(image: &str) -> String {
    format!("{image}/.claim.")
}

/// The prefix of every committer's lease on `image`'s manifest.
pub fn lock_prefix(image: &str) -> String {
    format!("{image}/.lock.")
}

/// The key of an image's manifest.
pub fn manifest_key(image: &str) -> String {
    format!("{image}/{MANIFEST}")
}

/// The key of piece `n` written by writer session `session` of `image`.
pub fn piece_key(image: &str, session: &str, n: u32) -> String {
    format!("{image}/{session}-{n:05}.piece")
}

/// The key under `image` of a piece file named `file` (a copy keeps the source's file name).
pub fn piece_key_named(image: &str, file: &str) -> String {
    format!("{image}/{file}")
}

/// The prefix every key of `image` starts with.
pub fn image_prefix(image: &str) -> String {
    format!("{image}/")
}

/// Split a piece key into its image and file name, both checked as names, and the file not
/// the manifest. A key that fails is corrupt (it came from a stored manifest).
pub fn split_piece_key(key: &str) -> Result<(&str, &str)> {
    let (image, piece) =
        key.split_once('/').ok_or_else(|| Error::corrupt(format!("piece key '{key}' has no image part")))?;
    names::validate("image", image).map_err(|e| Error::corrupt(e.message().to_string()))?;
    names::validate("piece", piece).map_err(|e| Error::corrupt(e.message().to_string()))?;
    if piece == MANIFEST {
        return Err(Error::corrupt(format!("piece key '{key}' names the manifest")));
    }
    Ok((image, piece))
}

/// The file name part of a piece key.
pub fn piece_file(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        assert_eq!(manifest_key("img"), "img/manifest");
        let k = piece_key("img", "00ab", 7);
        assert_eq!(k, "img/00ab-00007.piece");
        assert_eq!(split_piece_key(&k).unwrap(), ("img", "00ab-00007.piece"));
        assert_eq!(piece_file(&k), "00ab-00007.piece");
        assert_eq!(piece_key_named("copy", piece_file(&k)), "copy/00ab-00007.piece");
        for bad in ["img/manifest", "nopiece", "img/../x", "../x/p", "img/.hidden"] {
            assert!(split_piece_key(bad).is_err(), "{bad}");
        }
    }
}
