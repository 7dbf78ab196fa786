//! An image open for reading: each read walks the extent map and reads the pieces it names
//! (holes read as zeros). Every block a read touches is checked against the piece's block
//! table before its bytes are handed out ([`super::blocks`]); a piece written without a table
//! (manifest version 1) is checked as a whole when a read has walked it from its start to its
//! end.

use std::sync::Arc;

use super::blocks;
use super::load;
use crate::error::{Error, Result};
use crate::manifest::{find_extent, ImageDef, Manifest, Piece};
use crate::store::{PieceReader, PieceStore};

/// Piece readers an image reader keeps open at once.
const MAX_OPEN_READERS: usize = 4;

/// The last block read whole to serve part of it, kept for the next read of the same block.
struct CachedBlock {
    piece: usize,
    block: u64,
    data: Vec<u8>,
}

/// Per-piece progress of the CRC check done while a reader walks a piece from its start.
#[derive(Clone, Copy, Default)]
struct Verify {
    next: u64,
    crc: u32,
}

/// An image open for reading.
pub struct ImageReader {
    store: Arc<dyn PieceStore>,
    lsu: String,
    manifest: Manifest,
    readers: Vec<Option<Box<dyn PieceReader>>>,
    /// Block tables of the pieces with an open reader (loaded with it).
    tables: Vec<Option<Arc<Vec<u32>>>>,
    verify: Vec<Verify>,
    cached: Option<CachedBlock>,
}

impl ImageReader {
    pub fn open(store: Arc<dyn PieceStore>, lsu: &str, def: &ImageDef) -> Result<ImageReader> {
        let m = load(store.as_ref(), lsu, def)?;
        Ok(Self::from_manifest(store, lsu, m))
    }

    pub(super) fn from_manifest(store: Arc<dyn PieceStore>, lsu: &str, m: Manifest) -> ImageReader {
        let n = m.pieces.len();
        ImageReader {
            store,
            lsu: lsu.to_string(),
            manifest: m,
            readers: (0..n).map(|_| None).collect(),
            tables: vec![None; n],
            verify: vec![Verify::default(); n],
            cached: None,
        }
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn store(&self) -> &Arc<dyn PieceStore> {
        &self.store
    }

    pub fn lsu(&self) -> &str {
        &self.lsu
    }

    /// Read at `off`; returns the bytes read, fewer than asked only at the end of the image.
    /// Bytes never written read as zeros.
    pub fn read_at(&mut self, buf: &mut [u8], off: u64) -> Result<usize> {
        let size = self.manifest.size;
        if buf.is_empty() {
            return Err(Error::invalid("zero-length read"));
        }
        if off > size {
            return Err(Error::invalid(format!(
                "read at offset {off} is past the end of the image ({size} bytes)"
            )));
        }
        let n = buf.len().min((size - off) as usize);
        let mut done = 0usize;
        let mut i = find_extent(&self.manifest.extents, off);
        while done < n {
            let pos = off + done as u64;
            let ext = self.manifest.extents.get(i).copied();
            match ext {
                Some(e) if e.off <= pos => {
                    let delta = pos - e.off;
                    let take = ((e.len - delta) as usize).min(n - done);
                    let poff = e.piece_off + delta;
                    self.read_piece(e.piece as usize, &mut buf[done..done + take], poff)?;
                    done += take;
                    i += 1;
                }
                // A hole: up to the next extent, or to the end.
                _ => {
                    let until = ext.map_or(n, |e| ((e.off - pos) as usize).min(n - done) + done);
                    buf[done..until].fill(0);
                    done = until;
                }
            }
        }
        Ok(n)
    }

    /// Open the reader of piece `idx` (and load its block table) if it is not open.
    fn piece_reader(&mut self, idx: usize) -> Result<()> {
        if self.readers[idx].is_none() {
            // Each open reader holds a file descriptor (NFS) or read-ahead buffers (S3), and its
            // table: keep a few, not one per piece of a long image.
            if self.readers.iter().filter(|r| r.is_some()).count() >= MAX_OPEN_READERS {
                self.readers.iter_mut().for_each(|r| *r = None);
                self.tables.iter_mut().for_each(|t| *t = None);
            }
            let piece = &self.manifest.pieces[idx];
            let r = self.store.open_piece(&self.lsu, &piece.key).map_err(|e| match e.kind() {
                // A piece this image shares must outlive every image that references it.
                crate::error::ErrorKind::NotFound if !piece.owned => Error::corrupt(format!(
                    "piece {} that image '{}' shares is gone ({e})",
                    piece.key, self.manifest.def.basename
                )),
                _ => e,
            })?;
            if piece.block_size != 0 {
                let mut bytes = vec![0u8; piece.table_len() as usize];
                read_exact(r.as_ref(), piece, &mut bytes, piece.len)?;
                self.tables[idx] = Some(Arc::new(blocks::decode_table(piece, &bytes)?));
            }
            self.readers[idx] = Some(r);
        }
        Ok(())
    }

    fn read_piece(&mut self, idx: usize, buf: &mut [u8], off: u64) -> Result<()> {
        if self.manifest.pieces[idx].block_size == 0 {
            return self.read_piece_v1(idx, buf, off);
        }
        self.piece_reader(idx)?;
        let piece = &self.manifest.pieces[idx];
        let table = self.tables[idx].clone().expect("loaded with the reader");
        let reader = self.readers[idx].as_deref().expect("opened above");
        let bs = piece.block_size as u64;
        let mut done = 0usize;
        while done < buf.len() {
            let pos = off + done as u64;
            let b = pos / bs;
            let start = b * bs;
            let end = (start + bs).min(piece.len);
            let left = (buf.len() - done) as u64;
            if pos == start && left >= end - start {
                // Whole blocks straight into the caller's buffer, checked there.
                let last = (pos + left).min(piece.len);
                let upto = if last == piece.len { last } else { last / bs * bs };
                let n = (upto - pos) as usize;
                let dst = &mut buf[done..done + n];
                read_exact(reader, piece, dst, pos)?;
                for (i, chunk) in dst.chunks(bs as usize).enumerate() {
                    blocks::check_block(piece, &table, b + i as u64, chunk)?;
                }
                done += n;
            } else {
                // Part of a block: read it whole, check it, keep it for the next read.
                let hit = self.cached.as_ref().is_some_and(|c| c.piece == idx && c.block == b);
                if !hit {
                    let mut data = self.cached.take().map(|c| c.data).unwrap_or_default();
                    data.resize((end - start) as usize, 0);
                    read_exact(reader, piece, &mut data, start)?;
                    blocks::check_block(piece, &table, b, &data)?;
                    self.cached = Some(CachedBlock { piece: idx, block: b, data });
                }
                let data = &self.cached.as_ref().expect("cached above").data;
                let from = (pos - start) as usize;
                let n = (data.len() - from).min(buf.len() - done);
                buf[done..done + n].copy_from_slice(&data[from..from + n]);
                done += n;
            }
        }
        Ok(())
    }

    /// A piece without a block table: its CRC32C is checked when reads walk it from its start
    /// to its end.
    fn read_piece_v1(&mut self, idx: usize, buf: &mut [u8], off: u64) -> Result<()> {
        self.piece_reader(idx)?;
        let piece = &self.manifest.pieces[idx];
        read_exact(self.readers[idx].as_deref().expect("opened above"), piece, buf, off)?;
        let v = &mut self.verify[idx];
        if v.next == off {
            v.crc = crc32c::crc32c_append(v.crc, buf);
            v.next += buf.len() as u64;
            if v.next == piece.len {
                if v.crc != piece.crc32c {
                    return Err(Error::corrupt(format!(
                        "piece {} fails its checksum (stored {:08x}, read {:08x})",
                        piece.key, piece.crc32c, v.crc
                    )));
                }
                // Read to its end: a sequential restore will not come back to it.
                self.readers[idx] = None;
            }
        }
        Ok(())
    }
}

/// Fill `buf` from `off` of the piece, or fail as corrupt when the piece is shorter.
fn read_exact(r: &dyn PieceReader, piece: &Piece, buf: &mut [u8], off: u64) -> Result<()> {
    let got = r.read_at(buf, off)?;
    if got != buf.len() {
        return Err(Error::corrupt(format!(
            "piece {} is shorter than its manifest says ({} bytes at {off} missing)",
            piece.key,
            buf.len() - got
        )));
    }
    Ok(())
}
