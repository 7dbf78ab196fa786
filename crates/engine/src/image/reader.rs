//! An image open for reading: each read walks the extent map, reads the pieces it names
//! (holes read as zeros) and checks a piece's CRC32C when a read has walked it from its start
//! to its end.

use std::sync::Arc;

use super::load;
use crate::error::{Error, Result};
use crate::manifest::{find_extent, ImageDef, Manifest};
use crate::store::{PieceReader, PieceStore};

/// Piece readers an image reader keeps open at once.
const MAX_OPEN_READERS: usize = 4;

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
    verify: Vec<Verify>,
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
            verify: vec![Verify::default(); n],
        }
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
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

    fn read_piece(&mut self, idx: usize, buf: &mut [u8], off: u64) -> Result<()> {
        let piece = &self.manifest.pieces[idx];
        if self.readers[idx].is_none() {
            // Each open reader holds a file descriptor (NFS) or read-ahead buffers (S3): keep
            // a few, not one per piece of a long image.
            if self.readers.iter().filter(|r| r.is_some()).count() >= MAX_OPEN_READERS {
                self.readers.iter_mut().for_each(|r| *r = None);
            }
            self.readers[idx] = Some(self.store.open_piece(&self.lsu, &piece.key)?);
        }
        let got = self.readers[idx].as_ref().expect("opened above").read_at(buf, off)?;
        if got != buf.len() {
            return Err(Error::corrupt(format!(
                "piece {} is shorter than its manifest says ({} bytes at {off} missing)",
                piece.key,
                buf.len() - got
            )));
        }
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
