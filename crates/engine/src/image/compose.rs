//! Placing other images' bytes into an image being written: includes (optimized synthetics),
//! extent copies (optimized duplication), and whole-image reference or physical copies. Within
//! one LSU the new image references the source's pieces ([`super::shared`]); across LSUs of one
//! store it gets copies of them made inside the storage; across stores the bytes are streamed.

use std::sync::Arc;

use super::{load, shared, CopyMode, ImageReader, ImageWriter};
use crate::error::{Error, Result};
use crate::layout;
use crate::manifest::{find_extent, insert_extent, punch_extents, Extent, ImageDef, Manifest, Piece, State};

impl ImageWriter {
    /// Place bytes `src_off..src_off + len` of the complete image `src` (same LSU) at
    /// `dst_off` of this image without copying them: extents naming `src`'s pieces, which
    /// this image then references (manifest version 3). Holes of `src` in the range are holes
    /// here too. Bytes at or after the range are written into a new piece.
    pub fn include(&mut self, src: &ImageDef, src_off: u64, len: u64, dst_off: u64) -> Result<()> {
        let m = load(self.store.as_ref(), &self.lsu, src)?;
        self.include_manifest(&m, src_off, len, dst_off)
    }

    /// [`ImageWriter::include`] of an image already loaded from this LSU.
    fn include_manifest(&mut self, src: &Manifest, src_off: u64, len: u64, dst_off: u64) -> Result<()> {
        if let Some(e) = &self.failed {
            return Err(e.clone().context("an earlier write to this image failed"));
        }
        let name = &self.working.def.basename.clone();
        let (src_end, dst_end) = self.check_range(src, src_off, len, dst_off)?;
        self.finish_piece().inspect_err(|e| self.failed = Some(e.clone()))?;
        let plan = plan_range(src, src_off, src_end, dst_off);
        // Register the references before any manifest names them; take them back on failure.
        let mut registered: Vec<&str> = Vec::new();
        for (piece, _) in &plan {
            let known = self.working.pieces.iter().any(|q| q.key == piece.key)
                || registered.contains(&piece.key.as_str());
            if known {
                continue;
            }
            if let Err(e) = shared::add_ref(self.store.as_ref(), &self.lsu, piece, name) {
                for key in registered {
                    let _ = shared::remove_ref(self.store.as_ref(), &self.lsu, key, name);
                }
                return Err(e.context(format!("including image '{}'", src.def.basename)));
            }
            registered.push(&piece.key);
        }
        punch_extents(&mut self.working.extents, dst_off, len);
        for (piece, mut ext) in plan {
            let idx = match self.working.pieces.iter().position(|q| q.key == piece.key) {
                Some(idx) => idx,
                None => {
                    self.working.pieces.push(Piece { owned: false, ..piece.clone() });
                    self.working.pieces.len() - 1
                }
            };
            ext.piece = idx as u32;
            insert_extent(&mut self.working.extents, ext);
        }
        self.working.size = self.working.size.max(dst_end);
        Ok(())
    }

    /// Checks of a range of complete image `src` to place at `dst_off`: the ends of the range
    /// in `src` and here.
    fn check_range(&self, src: &Manifest, src_off: u64, len: u64, dst_off: u64) -> Result<(u64, u64)> {
        let name = &self.working.def.basename;
        if src.state != State::Complete {
            return Err(Error::state(format!(
                "image '{}' is not complete: only complete images can be included or copied from",
                src.def.basename
            )));
        }
        if src.def.basename == *name && src.created == self.working.created {
            return Err(Error::invalid(format!("image '{name}' cannot include itself")));
        }
        let src_end = src_off.checked_add(len).filter(|&e| len > 0 && e <= src.size).ok_or_else(|| {
            Error::invalid(format!(
                "range of {len} bytes at {src_off} of image '{}' is empty or past its end ({} bytes)",
                src.def.basename, src.size
            ))
        })?;
        let dst_end = dst_off
            .checked_add(len)
            .filter(|&e| e <= i64::MAX as u64)
            .ok_or_else(|| Error::invalid(format!("range of {len} bytes at offset {dst_off} overflows")))?;
        Ok((src_end, dst_end))
    }

    /// Copy bytes `src_off..src_off + len` of the complete image `src` (read through
    /// `src_reader`, on `src_lsu` of `src_store`) to `dst_off` of this image (optimized
    /// duplication's extent copy): a reference when both are in one LSU and `mode` allows,
    /// the source pieces the range touches copied inside the storage (once each) when both
    /// are on one store, else the bytes streamed through this process.
    pub fn copy_extent(
        &mut self,
        src_reader: &mut ImageReader,
        src_off: u64,
        len: u64,
        dst_off: u64,
        mode: CopyMode,
    ) -> Result<()> {
        if let Some(e) = &self.failed {
            return Err(e.clone().context("an earlier write to this image failed"));
        }
        let same_store = Arc::ptr_eq(src_reader.store(), &self.store);
        let src = src_reader.manifest().clone();
        if same_store && src_reader.lsu() == self.lsu && mode == CopyMode::Reference {
            return self.include_manifest(&src, src_off, len, dst_off);
        }
        let (src_end, dst_end) = self.check_range(&src, src_off, len, dst_off)?;
        if !same_store {
            let mut buf = vec![0u8; (len as usize).min(4 << 20)];
            let mut done = 0u64;
            while done < len {
                let n = (len - done).min(buf.len() as u64) as usize;
                let got = src_reader.read_at(&mut buf[..n], src_off + done)?;
                self.write_at(&buf[..got], dst_off + done)?;
                done += got as u64;
            }
            return Ok(());
        }
        self.finish_piece().inspect_err(|e| self.failed = Some(e.clone()))?;
        let plan = plan_range(&src, src_off, src_end, dst_off);
        let mut placed = Vec::with_capacity(plan.len());
        for (piece, mut ext) in plan {
            let idx = match self.copied.get(&piece.key) {
                Some(&idx) => idx,
                None => {
                    self.piece_seq += 1;
                    let key = layout::piece_key(&self.working.def.basename, &self.session, self.piece_seq);
                    self.store.copy_piece(src_reader.lsu(), &piece.key, &self.lsu, &key)?;
                    self.working.pieces.push(Piece { key, owned: true, ..piece.clone() });
                    let idx = (self.working.pieces.len() - 1) as u32;
                    self.copied.insert(piece.key.clone(), idx);
                    idx
                }
            };
            ext.piece = idx;
            placed.push(ext);
        }
        punch_extents(&mut self.working.extents, dst_off, len);
        for ext in placed {
            insert_extent(&mut self.working.extents, ext);
        }
        self.working.size = self.working.size.max(dst_end);
        Ok(())
    }

    /// Reference every piece of `src` (same LSU) and take over its extent map and metadata: a
    /// copy that moves no data.
    pub(super) fn reference_all(&mut self, src: &Manifest) -> Result<()> {
        if src.size > 0 {
            self.include_manifest(src, 0, src.size, 0)?;
        }
        self.working.meta = src.meta.clone();
        Ok(())
    }

    /// Copy the pieces of `src` (same store) and take over its extent map and metadata.
    pub(super) fn adopt_copies(&mut self, from_lsu: &str, src: &Manifest) -> Result<()> {
        for piece in &src.pieces {
            let key = layout::piece_key_named(&self.working.def.basename, layout::piece_file(&piece.key));
            self.store.copy_piece(from_lsu, &piece.key, &self.lsu, &key)?;
            self.working.pieces.push(Piece { key, owned: true, ..piece.clone() });
        }
        self.working.extents = src.extents.clone();
        self.working.size = src.size;
        self.working.meta = src.meta.clone();
        Ok(())
    }
}

/// What bytes `src_off..src_end` of `src` are made of: each extent's piece, and where its bytes
/// go when the range is placed at `dst_off` (piece index left 0 for the caller to set).
fn plan_range(src: &Manifest, src_off: u64, src_end: u64, dst_off: u64) -> Vec<(&Piece, Extent)> {
    let mut plan = Vec::new();
    let mut i = find_extent(&src.extents, src_off);
    while let Some(e) = src.extents.get(i).filter(|e| e.off < src_end) {
        let from = e.off.max(src_off);
        let to = (e.off + e.len).min(src_end);
        let ext = Extent {
            off: dst_off + (from - src_off),
            len: to - from,
            piece: 0,
            piece_off: e.piece_off + (from - e.off),
        };
        plan.push((&src.pieces[e.piece as usize], ext));
        i += 1;
    }
    plan
}
