//! The image manifest: the one record that makes an image exist.
//!
//! An image is an extent map over immutable stored pieces (files on NFS, objects on S3). The
//! manifest holds the image definition, its state, the pieces with their lengths and CRC32C,
//! the extents that place piece bytes at image offsets, and the metadata blob. Writing the
//! manifest in one atomic step (rename on NFS, one PUT on S3) is the commit: data is durable
//! before the manifest that names it is written.
//!
//! Format: JSON, then a newline, then `crc32c=<8 hex digits>` over the JSON bytes, so a torn or
//! corrupted manifest is detected rather than half-parsed. Versions (every one stays readable):
//! - 1: pieces carry the CRC32C of their whole data, checked when a read walks a piece from
//!   its start to its end.
//! - 2: a piece may also carry a block table ([`Piece::block_size`]): the CRC32C of every
//!   block of its data, stored after the data in the piece itself (big-endian `u32`s) and
//!   checked on every read before the bytes are handed out; the manifest holds the table's
//!   own CRC32C. Pieces without a table (written by version 1) read as before.
//! - 3: a piece may belong to another image of the LSU (`owned: false`, its key in that
//!   image): optimized synthetics and reference copies share pieces instead of copying them.
//!   Such a piece is kept while any image references it (`crate::image` shared pieces).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::layout::MAX_MANIFEST;

pub const FORMAT: &str = "vast-ost-image";
/// The version written.
pub const VERSION: u32 = 3;
/// The oldest version still read.
pub const OLDEST: u32 = 1;
/// Bytes of data each block-table entry covers (version 2).
pub const BLOCK_SIZE: u32 = 256 << 10;

/// NetBackup's image definition, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageDef {
    pub basename: String,
    #[serde(default)]
    pub date: String,
    #[serde(default)]
    pub policy: String,
    #[serde(default)]
    pub client: String,
    #[serde(default)]
    pub copy_number: u32,
    #[serde(default)]
    pub flags: u32,
    #[serde(default)]
    pub master_server: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Created or closed incomplete: may be reopened for append (checkpoint restart).
    Pending,
    /// Closed complete: read-only forever.
    Complete,
}

/// Who holds an image open for writing (cleared on close).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Writer {
    pub host: String,
    pub pid: u32,
    pub session: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Piece {
    /// Where the piece is stored, relative to the LSU (file path or object key).
    pub key: String,
    pub len: u64,
    pub crc32c: u32,
    /// This image's own piece, stored under its name; `false`: a piece of another image of
    /// the LSU that this one references (version 3).
    pub owned: bool,
    /// Bytes per entry of the piece's block table; 0 when the piece has none (version 1).
    #[serde(default)]
    pub block_size: u32,
    /// CRC32C of the block table's bytes (with `block_size`).
    #[serde(default)]
    pub table_crc32c: u32,
}

impl Piece {
    /// Blocks in the piece's block table (0 without one).
    pub fn blocks(&self) -> u64 {
        match self.block_size {
            0 => 0,
            b => self.len.div_ceil(b as u64),
        }
    }

    /// Bytes of the block table stored after the data.
    pub fn table_len(&self) -> u64 {
        self.blocks() * 4
    }
}

/// `len` bytes of the image at `off` are bytes `piece_off..` of `pieces[piece]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extent {
    pub off: u64,
    pub len: u64,
    pub piece: u32,
    pub piece_off: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    #[serde(with = "b64")]
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub def: ImageDef,
    pub state: State,
    /// Logical size: the highest byte written + 1.
    pub size: u64,
    /// Seconds since the epoch.
    pub created: u64,
    pub updated: u64,
    /// Bumped on every commit.
    pub generation: u64,
    pub writer: Option<Writer>,
    pub pieces: Vec<Piece>,
    /// Sorted by `off`, non-overlapping: later writes have already replaced what they cover.
    pub extents: Vec<Extent>,
    #[serde(default)]
    pub meta: Meta,
}

impl Manifest {
    pub fn new(def: ImageDef, now: u64) -> Manifest {
        Manifest {
            format: FORMAT.into(),
            version: VERSION,
            def,
            state: State::Pending,
            size: 0,
            created: now,
            updated: now,
            generation: 0,
            writer: None,
            pieces: Vec::new(),
            extents: Vec::new(),
            meta: Meta::default(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        seal(self)
    }

    /// Decode and check a stored manifest. Every way it can be wrong is `Corrupt`.
    pub fn decode(bytes: &[u8]) -> Result<Manifest> {
        let m: Manifest = unseal(bytes, "manifest")?;
        m.check()?;
        Ok(m)
    }

    /// Structural checks, so a well-checksummed but inconsistent manifest cannot make a
    /// reader index out of bounds.
    fn check(&self) -> Result<()> {
        let bad = |why: String| Err(Error::corrupt(format!("manifest: {why}")));
        if self.format != FORMAT {
            return bad(format!("format is '{}', expected '{FORMAT}'", self.format));
        }
        if !(OLDEST..=VERSION).contains(&self.version) {
            return bad(format!(
                "version {} is not supported (this plug-in reads {OLDEST} to {VERSION})",
                self.version
            ));
        }
        if let Some(p) = self.pieces.iter().find(|p| self.version < 2 && p.block_size != 0) {
            return bad(format!("piece {} has a block table in a version {} manifest", p.key, self.version));
        }
        if let Some(p) = self.pieces.iter().find(|p| p.block_size != 0 && p.block_size % 512 != 0) {
            return bad(format!("piece {} has block size {}", p.key, p.block_size));
        }
        let own = format!("{}/", self.def.basename);
        if let Some(p) = self.pieces.iter().find(|p| p.owned && !p.key.starts_with(&own)) {
            // Deleting this image deletes its owned pieces: they must be its own.
            return bad(format!("owned piece {} is outside image '{}'", p.key, self.def.basename));
        }
        if let Some(p) =
            self.pieces.iter().find(|p| !p.owned && (self.version < 3 || p.key.starts_with(&own)))
        {
            return bad(format!(
                "piece {} is marked shared, but it is inside the image itself or the manifest is version {} \
                 (shared pieces came with version 3)",
                p.key, self.version
            ));
        }
        if let Some(p) = self.pieces.iter().find(|p| crate::layout::split_piece_key(&p.key).is_err()) {
            return bad(format!("piece key '{}' is not a piece key", p.key));
        }
        let mut end = 0u64;
        for e in &self.extents {
            let Some(p) = self.pieces.get(e.piece as usize) else {
                return bad(format!("extent at {} names piece {} of {}", e.off, e.piece, self.pieces.len()));
            };
            let (Some(e_end), Some(p_end)) = (e.off.checked_add(e.len), e.piece_off.checked_add(e.len))
            else {
                return bad(format!("extent at {} overflows", e.off));
            };
            if e.len == 0 || e.off < end || p_end > p.len || e_end > self.size {
                return bad(format!("extent at {} (len {}) is out of order or out of range", e.off, e.len));
            }
            end = e_end;
        }
        if self.meta.data.len() as u64 > ost_abi::STS_MAX_IMAGE_META {
            return bad("metadata blob over the limit".into());
        }
        Ok(())
    }
}

/// A stored record: its JSON, then a newline, then `crc32c=<8 lowercase hex digits>` over the
/// JSON bytes, so a torn or corrupted record is detected rather than half-parsed.
pub fn seal<T: Serialize>(record: &T) -> Vec<u8> {
    let mut out = serde_json::to_vec(record).expect("records serialize");
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(format!("\ncrc32c={crc:08x}\n").as_bytes());
    out
}

/// Check and parse a record [`seal`] made; `what` names it in errors (all `Corrupt`).
pub fn unseal<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &str) -> Result<T> {
    if bytes.len() > MAX_MANIFEST {
        return Err(Error::corrupt(format!("{what} is {} bytes, over the limit", bytes.len())));
    }
    let body_end = bytes
        .strip_suffix(b"\n")
        .and_then(|b| b.iter().rposition(|&c| c == b'\n'))
        .ok_or_else(|| Error::corrupt(format!("{what} has no checksum line")))?;
    let (body, trailer) = bytes.split_at(body_end);
    let want = std::str::from_utf8(&trailer[1..trailer.len() - 1])
        .ok()
        .and_then(|t| t.strip_prefix("crc32c="))
        .filter(|h| h.len() == 8 && h.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')))
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .ok_or_else(|| Error::corrupt(format!("{what} checksum line is malformed")))?;
    let got = crc32c::crc32c(body);
    if got != want {
        return Err(Error::corrupt(format!(
            "{what} checksum mismatch (stored {want:08x}, computed {got:08x})"
        )));
    }
    serde_json::from_slice(body).map_err(|e| Error::corrupt(format!("{what} does not parse: {e}")))
}

/// Place `new` in a sorted, non-overlapping extent list, replacing what it covers.
pub fn insert_extent(extents: &mut Vec<Extent>, new: Extent) {
    let new_end = new.off + new.len;
    // Fast path: appending right after the last extent of the same piece (sequential writes).
    if let Some(last) = extents.last_mut() {
        if last.off + last.len == new.off
            && last.piece == new.piece
            && last.piece_off + last.len == new.piece_off
        {
            last.len += new.len;
            return;
        }
        if last.off + last.len <= new.off {
            extents.push(new);
            return;
        }
    }
    let mut out = Vec::with_capacity(extents.len() + 2);
    for e in extents.drain(..) {
        let e_end = e.off + e.len;
        if e_end <= new.off || e.off >= new_end {
            out.push(e);
            continue;
        }
        if e.off < new.off {
            out.push(Extent { len: new.off - e.off, ..e });
        }
        if e_end > new_end {
            let cut = new_end - e.off;
            out.push(Extent {
                off: new_end,
                len: e_end - new_end,
                piece: e.piece,
                piece_off: e.piece_off + cut,
            });
        }
    }
    let pos = out.partition_point(|e| e.off < new.off);
    out.insert(pos, new);
    *extents = out;
}

/// Make `off..off + len` a hole: remove what extents cover there, splitting those that cross
/// its ends.
pub fn punch_extents(extents: &mut Vec<Extent>, off: u64, len: u64) {
    let end = off + len;
    let mut out = Vec::with_capacity(extents.len() + 1);
    for e in extents.drain(..) {
        let e_end = e.off + e.len;
        if e_end <= off || e.off >= end {
            out.push(e);
            continue;
        }
        if e.off < off {
            out.push(Extent { len: off - e.off, ..e });
        }
        if e_end > end {
            out.push(Extent {
                off: end,
                len: e_end - end,
                piece: e.piece,
                piece_off: e.piece_off + (end - e.off),
            });
        }
    }
    *extents = out;
}

/// Index of the first extent that ends after `off`.
pub fn find_extent(extents: &[Extent], off: u64) -> usize {
    extents.partition_point(|e| e.off + e.len <= off)
}

mod b64 {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD.decode(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(off: u64, len: u64, piece: u32, piece_off: u64) -> Extent {
        Extent { off, len, piece, piece_off }
    }

    #[test]
    fn extents_merge_split_and_replace() {
        let mut v = Vec::new();
        insert_extent(&mut v, ext(0, 10, 0, 0));
        insert_extent(&mut v, ext(10, 10, 0, 10));
        assert_eq!(v, vec![ext(0, 20, 0, 0)]);
        insert_extent(&mut v, ext(5, 5, 1, 0));
        assert_eq!(v, vec![ext(0, 5, 0, 0), ext(5, 5, 1, 0), ext(10, 10, 0, 10)]);
        insert_extent(&mut v, ext(0, 30, 2, 0));
        assert_eq!(v, vec![ext(0, 30, 2, 0)]);
        insert_extent(&mut v, ext(40, 5, 3, 0));
        assert_eq!(find_extent(&v, 29), 0);
        assert_eq!(find_extent(&v, 30), 1);
        assert_eq!(find_extent(&v, 45), 2);
    }

    #[test]
    fn holes_are_punched() {
        let mut v = vec![ext(0, 10, 0, 0), ext(10, 10, 1, 0), ext(30, 5, 2, 0)];
        punch_extents(&mut v, 5, 10);
        assert_eq!(v, vec![ext(0, 5, 0, 0), ext(15, 5, 1, 5), ext(30, 5, 2, 0)]);
        punch_extents(&mut v, 0, 100);
        assert!(v.is_empty());
        let mut v = vec![ext(0, 10, 0, 0)];
        punch_extents(&mut v, 3, 2);
        assert_eq!(v, vec![ext(0, 3, 0, 0), ext(5, 5, 0, 5)]);
    }

    #[test]
    fn roundtrip_and_corruption() {
        let mut m = Manifest::new(ImageDef { basename: "c_1_C1_F1".into(), ..Default::default() }, 7);
        m.pieces.push(Piece {
            key: "c_1_C1_F1/p".into(),
            len: 10,
            crc32c: 1,
            owned: true,
            block_size: BLOCK_SIZE,
            table_crc32c: 7,
        });
        m.extents.push(ext(0, 10, 0, 0));
        m.size = 10;
        m.meta.data = vec![1, 2, 3];
        let bytes = m.encode();
        assert_eq!(Manifest::decode(&bytes).unwrap(), m);
        for i in [0, bytes.len() / 2, bytes.len() - 3] {
            let mut b = bytes.clone();
            b[i] ^= 0x20;
            assert!(Manifest::decode(&b).is_err(), "flip at {i} not caught");
        }
        assert!(Manifest::decode(&bytes[..bytes.len() - 5]).is_err());
        assert!(Manifest::decode(b"").is_err());
        let mut bad = m.clone();
        bad.extents[0].len = 11;
        assert!(Manifest::decode(&bad.encode()).is_err());
    }

    /// A manifest exactly as version 1 of the plug-in wrote it still decodes.
    #[test]
    fn version_1_stays_readable() {
        let body = r#"{"format":"vast-ost-image","version":1,"def":{"basename":"c_1_C1_F1","date":"1","policy":"p","client":"c","copy_number":1,"flags":0,"master_server":""},"state":"complete","size":10,"created":5,"updated":6,"generation":3,"writer":null,"pieces":[{"key":"c_1_C1_F1/a-00001.piece","len":10,"crc32c":12345,"owned":true}],"extents":[{"off":0,"len":10,"piece":0,"piece_off":0}],"meta":{"data":"AQID"}}"#;
        let mut bytes = body.as_bytes().to_vec();
        bytes.extend_from_slice(format!("\ncrc32c={:08x}\n", crc32c::crc32c(body.as_bytes())).as_bytes());
        let m = Manifest::decode(&bytes).unwrap();
        assert_eq!((m.version, m.state, m.size), (1, State::Complete, 10));
        assert_eq!((m.pieces[0].block_size, m.pieces[0].blocks()), (0, 0), "no block table");
        assert_eq!(m.meta.data, [1, 2, 3]);
        // A block table in a version 1 manifest, or a version from the future, is refused.
        let mut bad = m.clone();
        bad.pieces[0].block_size = BLOCK_SIZE;
        assert!(Manifest::decode(&bad.encode()).is_err());
        let mut future = m;
        future.version = VERSION + 1;
        assert!(Manifest::decode(&future.encode()).is_err());
    }
}
