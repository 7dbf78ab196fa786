//! The S3 data path: an LSU is a bucket (on VAST, a view with S3 and a bucket name).
//!
//! ```text
//! <bucket>/<image>/manifest     the commit record: created with If-None-Match: *, replaced by one PUT
//! <bucket>/<image>/<piece>      immutable data: one PUT, or one multipart upload
//! ```
//!
//! Requests are path-style, SigV4-presigned by rusty-s3 with `UNSIGNED-PAYLOAD` (no SHA-256
//! over the data, on either side) and carried by the engine's one ureq agent ([`client`]).
//! Integrity comes from a cheap per-request checksum ([`ChecksumMode`]) and, end to end, from
//! the CRC32C of each piece that the image layer checks on every full read.
//!
//! Rooms, one job each:
//! - [`settings`]: `[server.s3]` and S3's limits.
//! - [`endpoints`]: which VIP a request goes to; failed ones skipped, probed back in.
//! - [`client`]: one signed request with retries; errors keep the server's status and code.
//! - [`wire`]: HTTP/1.1 on kept-alive plain TCP connections, bodies straight into buffers.
//! - [`xml`]: the XML documents, as typed structs.
//! - [`api`], [`multipart`]: the S3 operations the store uses, one function each.
//! - [`checksum`]: per-request checksums and the fallback when a server refuses them.
//! - [`probe`]: what a bucket's server really does with conditional writes and CRC32C.
//! - [`lock_probe`]: whether it really holds Object Lock retention (WORM LSUs).
//! - [`precondition`]: manifest create, replace and delete, with the conditional headers the
//!   server honours, else the claim protocol ([`claim`], `docs/commit-protocol.md`).
//! - [`copy`]: server-side piece copy.
//! - [`writer`], [`reader`]: one piece's multipart upload pipeline and ranged read-ahead.
//! - [`store`]: the [`S3Store`] that puts these together behind [`crate::store::PieceStore`].
//!
//! Durability order is the one of the NFS store: a piece's PUT or CompleteMultipartUpload has
//! returned before a manifest names it, and a manifest PUT is atomic (readers see the old or
//! the new object, never a mix).
//!
//! Capacity: S3 has no capacity call, and summing object sizes means listing the whole bucket,
//! while [`PieceStore::lsu_space`] runs on every image open as the existence check. So it is a
//! HeadBucket, and the space reported is `nominal_capacity` with `used` 0; with
//! VMS the control path reports the view's quota instead.
//!
//! Server notes (tests: `tests/s3_radosgw.rs`, `tests/s3_vast_sim.rs`):
//! - radosgw 16.2.15 honours `If-None-Match: *` on PUT (412 PreconditionFailed; one winner
//!   out of 8 racing creators), checks `Content-MD5` (400 BadDigest), and accepts and
//!   *ignores* `x-amz-checksum-crc32c` (a wrong value is stored without complaint), the
//!   `x-amz-checksum-algorithm` of CreateMultipartUpload and the `<ChecksumCRC32C>` elements of
//!   CompleteMultipartUpload. It answers 411 to bodiless PUT/POSTs without `Content-Length: 0`
//!   (UploadPartCopy, CompleteMultipartUpload): every PUT/POST here sends one. Its
//!   CompleteMultipartUpload result has an empty `<ETag>` (HEAD gives the `-N` one). It takes
//!   x-amz-* headers that are not signed; AWS does not, so all headers sent are signed. Its
//!   smallest part is `rgw_multipart_min_part_size` (5 MiB; `scripts/ceph-rgw` sets 64 KiB).
//! - A server that refuses the CRC32C headers (400/501 naming them) makes the store go on
//!   without per-request checksums, with one warning ([`ChecksumMode`]).
//! - Multipart uploads left by a writer that died stay open until the image is deleted
//!   (`delete_image` aborts them); a bucket lifecycle rule `AbortIncompleteMultipartUpload`
//!   bounds them otherwise.

pub mod api;
mod checksum;
mod claim;
pub mod client;
mod copy;
mod endpoints;
pub(crate) mod lock_probe;
pub mod multipart;
mod precondition;
pub mod probe;
mod reader;
mod settings;
mod store;
mod wire;
mod writer;
mod xml;

pub use settings::{ChecksumMode, CreateMode, S3Settings, MAX_PART, MAX_PARTS, MIN_PART};
pub use store::S3Store;

/// Parts per piece: the image layer starts a new piece before a multipart upload needs more
/// (S3 allows 10,000), so parts keep `part_size` and memory its bound.
const PARTS_PER_PIECE: u64 = 5000;

/// What a store's pieces share: the client and the data-path settings.
pub(crate) struct Shared {
    pub client: client::Client,
    pub part_size: u64,
    pub workers: usize,
    pub read_ahead: usize,
    /// Bytes per read-ahead range.
    pub read_range: u64,
    /// The checksum mode in force.
    pub checksums: checksum::Checksums,
}
