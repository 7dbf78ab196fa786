//! Where an image's records live inside its LSU, the same on every backend: one key for the
//! manifest, one key per piece, all under the image's name. This file is the only place that
//! knows the layout.
//!
//! ```text
//! <image>/manifest          the commit record
//! <image>/<piece>           immutable data pieces (`<writer session>-<n>.piece`)
//! <image>/<piece>.refs      the reference record of a piece other images share
//! <image>/.<record>.claim.<id>  S3 without conditional writes: a creator's claim on a record
//! <image>/.<record>.lock.<id>   S3 without conditional writes: a committer's lease on a record
//! .vast-ost/                the plug-in's own keys in an LSU (never an image name: names
//!                           do not start with '.'), e.g. the S3 feature probe, the LSU label
//! .vast-ost-air/job.<id>    A.I.R.: a replication job of this (source) LSU
//! .vast-ost-events/event.<seq>  A.I.R.: the event journal of this (target) LSU
//! ```
//!
//! The three reserved directories are record owners like images (`read_record` and the rest
//! take them where an image name goes), so every store keeps its atomic create and
//! compare-and-swap for them; NetBackup's names never reach them (see [`validate_owner`]).

use crate::error::{Error, Result};
use crate::names;

/// The manifest's name inside its image.
pub const MANIFEST: &str = "manifest";

/// Largest manifest accepted when reading one (a corrupt length cannot make us allocate more).
pub const MAX_MANIFEST: usize = 64 << 20;

/// Where the plug-in keeps its own records in an LSU.
pub const RESERVED_PREFIX: &str = ".vast-ost/";

/// The owner of the plug-in's own small records in an LSU (the label).
pub const OWN: &str = ".vast-ost";
/// The owner of the A.I.R. job records of a source LSU.
pub const AIR_JOBS: &str = ".vast-ost-air";
/// The owner of the A.I.R. event journal of a target LSU.
pub const EVENTS: &str = ".vast-ost-events";

/// The LSU label's record (in [`OWN`]).
pub const LABEL: &str = "label";

/// Check the owner of a record: an image name, or one of the reserved owners. Stores call this
/// where they place records; the image layer checks NetBackup's names with
/// [`names::validate`] first, so no caller's name can reach a reserved owner.
pub fn validate_owner(owner: &str) -> Result<()> {
    if [OWN, AIR_JOBS, EVENTS].contains(&owner) {
        return Ok(());
    }
    names::validate("image", owner)
}

/// The prefix of the keys the S3 feature probes write: the conditional-write probe removes its
/// keys; the Object Lock probe keeps one locked object (`retention`) while its lock holds.
pub fn probe_prefix() -> String {
    format!("{RESERVED_PREFIX}probe/")
}

/// The key of record `name` of `image` (the manifest is the record [`MANIFEST`]).
pub fn record_key(image: &str, name: &str) -> String {
    format!("{image}/{name}")
}

/// The name of the reference record of the piece at `piece_key`, in its owner image.
pub fn refs_record(piece_key: &str) -> String {
    format!("{}.refs", piece_file(piece_key))
}

/// Whether `key` is a reference record.
pub fn is_refs_record(key: &str) -> bool {
    key.ends_with(".refs")
}

/// The image that owns the piece at `piece_key` (the first part of its key).
pub fn owner_of(piece_key: &str) -> &str {
    piece_key.split_once('/').map_or(piece_key, |(image, _)| image)
}

/// The prefix of every creator's claim on record `name` of `image`.
pub fn claim_prefix(image: &str, name: &str) -> String {
    format!("{image}/.{name}.claim.")
}

/// The prefix of every committer's lease on record `name` of `image`.
pub fn lock_prefix(image: &str, name: &str) -> String {
    format!("{image}/.{name}.lock.")
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
        assert_eq!(refs_record(&k), "00ab-00007.piece.refs");
        assert!(is_refs_record(&record_key("img", &refs_record(&k))));
        assert_eq!(owner_of(&k), "img");
        for bad in ["img/manifest", "nopiece", "img/../x", "../x/p", "img/.hidden"] {
            assert!(split_piece_key(bad).is_err(), "{bad}");
        }
    }
}
