//! Data-path backends behind one trait.
//!
//! A [`PieceStore`] is deliberately dumb: it stores LSUs, immutable pieces written once from
//! start to end, and one manifest per image with an atomic create and replace. Everything that
//! makes an image (extent maps, state, checksums, checkpoint restart) lives above it in
//! [`crate::image`], so every backend behaves the same and passes the same conformance suite.
//! Each backend is a folder with its own settings: [`nfs`] (a directory per LSU on a mounted
//! VAST view) and [`s3`] (a bucket per LSU).

pub mod nfs;
pub mod s3;

use crate::error::Result;
use crate::layout::MANIFEST;

/// Capacity of an LSU, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Space {
    pub capacity: u64,
    pub used: u64,
}

/// How the storage holds a retention lock: S3 Object Lock's modes, VAST's file retention modes.
/// Under `Compliance` nobody can shorten or remove a lock; under `Governance` a privileged
/// administrator of the storage can (the plug-in never does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetentionMode {
    Governance,
    Compliance,
}

impl RetentionMode {
    /// The S3 spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RetentionMode::Governance => "GOVERNANCE",
            RetentionMode::Compliance => "COMPLIANCE",
        }
    }
}

/// A retention lock as the storage holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionLock {
    /// When it ends, seconds since the epoch.
    pub until: u64,
    /// It holds now, by the storage's clock where the storage tells it (S3's `Date`).
    pub active: bool,
}

/// An LSU whose storage enforces retention locks (a WORM-enabled VAST view): the mode, and the
/// shortest and longest lock the view allows, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WormPolicy {
    pub mode: RetentionMode,
    pub min_secs: u64,
    pub max_secs: u64,
}

/// What kind of data path a backend is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Nfs,
    S3,
}

pub trait PieceStore: Send + Sync {
    fn kind(&self) -> Kind;
    /// Human-readable location, for logs and LSU descriptions.
    fn describe(&self, lsu: &str) -> String;

    fn list_lsus(&self) -> Result<Vec<String>>;
    /// `NotFound` if the LSU does not exist.
    fn lsu_space(&self, lsu: &str) -> Result<Space>;

    /// Names of images that have a manifest, or had one (the caller reads them), starting
    /// with `prefix`.
    fn list_images(&self, lsu: &str, prefix: &str) -> Result<Vec<String>>;
    /// The stored bytes of record `name` of `image`; `Ok(None)` if there is none. An image's
    /// manifest is its record [`MANIFEST`]; a shared piece has a reference record
    /// ([`crate::layout::refs_record`]).
    fn read_record(&self, lsu: &str, image: &str, name: &str) -> Result<Option<Vec<u8>>>;
    /// Store a record that must not exist yet; `AlreadyExists` if it does.
    fn create_record(&self, lsu: &str, image: &str, name: &str, bytes: &[u8]) -> Result<()>;
    /// Replace a record atomically and durably, only if the stored one is still exactly
    /// `expected` (compare-and-swap: a takeover writer or a delete in between makes it a
    /// `State` error, never a lost update). Readers see the old or the new one.
    fn replace_record(&self, lsu: &str, image: &str, name: &str, bytes: &[u8], expected: &[u8])
        -> Result<()>;
    /// Remove a record so that no replace in flight can bring it back. Succeeds if it is
    /// not there.
    fn delete_record(&self, lsu: &str, image: &str, name: &str) -> Result<()>;
    /// Remove everything stored under `image` (pieces, records, temp files, open uploads)
    /// but the keys in `keep` (pieces other images still reference, and their records).
    /// Succeeds if nothing is there.
    fn remove_image(&self, lsu: &str, image: &str, keep: &[String]) -> Result<()>;

    /// The stored manifest bytes; `Ok(None)` if the image has none.
    fn read_manifest(&self, lsu: &str, image: &str) -> Result<Option<Vec<u8>>> {
        self.read_record(lsu, image, MANIFEST)
    }
    /// Store the first manifest of an image; `AlreadyExists` if it has one.
    fn create_manifest(&self, lsu: &str, image: &str, bytes: &[u8]) -> Result<()> {
        self.create_record(lsu, image, MANIFEST, bytes)
    }
    /// Replace the manifest, compare-and-swap (see [`PieceStore::replace_record`]).
    fn replace_manifest(&self, lsu: &str, image: &str, bytes: &[u8], expected: &[u8]) -> Result<()> {
        self.replace_record(lsu, image, MANIFEST, bytes, expected)
    }

    /// Every key stored under `image` (manifest, pieces, temp files, and on S3 the keys of
    /// open multipart uploads), with its age where the store knows it cheaply. For the orphan
    /// scan: what no manifest names is left over from a writer that died.
    fn list_image_keys(&self, lsu: &str, image: &str) -> Result<Vec<(String, Option<std::time::Duration>)>>;
    /// Remove these keys of `image` (objects, files, open uploads). Missing ones are fine.
    fn remove_keys(&self, lsu: &str, image: &str, keys: &[String]) -> Result<()>;

    /// Lock `keys` against deletion and overwrite until `until` (seconds since the epoch), by
    /// the storage's own means (S3 Object Lock; VAST file retention on NFS), in `mode`. A lock
    /// is only ever extended. `NotSupported` where the store cannot.
    fn set_retention(&self, lsu: &str, keys: &[String], until: u64, mode: RetentionMode) -> Result<()> {
        let _ = (lsu, keys, until, mode);
        Err(crate::error::Error::new(
            crate::error::ErrorKind::NotSupported,
            "retention locks are not supported here",
        ))
    }

    /// Whether the storage really holds retention locks for `lsu` in `policy` (tried on a probe
    /// object where it can be, not taken on the storage's word): `NotSupported` saying what it
    /// did instead when it does not.
    fn verify_retention(&self, lsu: &str, policy: &WormPolicy) -> Result<()> {
        let _ = (lsu, policy);
        Ok(())
    }

    /// The storage's retention lock on `key`, if it has one (it may have run out already).
    fn retention(&self, lsu: &str, key: &str) -> Result<Option<RetentionLock>> {
        let _ = (lsu, key);
        Ok(None)
    }

    /// Longest piece this store writes with bounded memory: the image layer starts a new
    /// piece before a piece grows past it.
    fn max_piece_len(&self) -> u64 {
        u64::MAX
    }

    /// A new piece of `image`, stored at `key`.
    fn create_piece(&self, lsu: &str, key: &str) -> Result<Box<dyn PieceWriter>>;
    fn open_piece(&self, lsu: &str, key: &str) -> Result<Box<dyn PieceReader>>;
    /// Copy a piece inside the storage (reflink, copy_file_range, server-side copy), never
    /// through this process when the storage can avoid it.
    fn copy_piece(&self, from_lsu: &str, from_key: &str, to_lsu: &str, to_key: &str) -> Result<()>;
}

/// Writes one piece from start to end.
pub trait PieceWriter: Send {
    /// Append `buf`. May return before the bytes are durable; an error from an earlier
    /// append may surface here.
    fn append(&mut self, buf: &[u8]) -> Result<()>;
    /// Append `buf`, whose CRC32C the caller has computed already (the image layer does, for
    /// the block table): a store that sends a per-request checksum uses it instead of a second
    /// pass over the bytes.
    fn append_crc(&mut self, buf: &[u8], crc32c: u32) -> Result<()> {
        let _ = crc32c;
        self.append(buf)
    }
    /// Make what was appended durable.
    fn finish(self: Box<Self>) -> Result<()>;
    /// Throw the piece away (nothing may leak on the storage).
    fn abort(self: Box<Self>);
}

pub trait PieceReader: Send + Sync {
    /// Read at `off` into `buf`; returns the bytes read (short only at the piece's end).
    fn read_at(&self, buf: &mut [u8], off: u64) -> Result<usize>;
}
