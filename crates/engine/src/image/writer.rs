//! An image open for writing. NetBackup's offset-addressed writes are appended to the current
//! piece while they are sequential; a jump (or the store's piece length limit) starts a new
//! piece, so pieces stay write-once (as S3 objects must be) and the extent map records where
//! each byte lives. Each piece's CRC32C is computed on the way in. Commits (create, flush,
//! close, heartbeat) write the whole manifest at once, only after the pieces it names are
//! durable, and only over the manifest this writer last committed (compare-and-swap).

use std::sync::Arc;

use tracing::warn;

use super::blocks::TableBuilder;
use super::load;
use crate::error::{Error, Result};
use crate::layout;
use crate::manifest::{insert_extent, Extent, ImageDef, Manifest, Piece, State, Writer, BLOCK_SIZE};
use crate::names;
use crate::store::{PieceStore, PieceWriter};
use crate::util;

struct OpenPiece {
    writer: Box<dyn PieceWriter>,
    key: String,
    index: u32,
    /// Image offset of the piece's first byte.
    start: u64,
    len: u64,
    /// The block table and the piece's CRC32C, built as the bytes go by.
    table: TableBuilder,
}

/// An image open for writing (created, or reopened for append).
pub struct ImageWriter {
    pub(super) store: Arc<dyn PieceStore>,
    pub(super) lsu: String,
    /// What is on storage now: what a failed writer falls back to.
    pub(super) committed: Manifest,
    pub(super) working: Manifest,
    pub(super) session: String,
    pub(super) piece_seq: u32,
    current: Option<OpenPiece>,
    /// The first write error; the handle refuses writes after it.
    pub(super) failed: Option<Error>,
    /// The manifest of the last commit sent, in case its answer was lost.
    pub(super) last_attempt: Option<Manifest>,
    pub(super) liveness: Liveness,
    /// Pieces of other LSUs copied into this image by extent copies, by source key.
    pub(super) copied: std::collections::HashMap<String, u32>,
}

/// How a writer shows other media servers it is alive: it recommits every `heartbeat` (see
/// [`ImageWriter::heartbeat`]), and a writer on another host is judged gone only after
/// `silence` without a commit, several missed heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    pub heartbeat: std::time::Duration,
    pub silence: std::time::Duration,
}

impl Liveness {
    /// A silence window, with a heartbeat a third of it.
    pub fn with_silence(silence: std::time::Duration) -> Liveness {
        Liveness { heartbeat: silence / 3, silence }
    }
}

impl Default for Liveness {
    fn default() -> Self {
        Liveness::with_silence(std::time::Duration::from_secs(900))
    }
}

impl ImageWriter {
    /// Create a new image: its first manifest (pending, busy) claims the name on storage.
    pub fn create(store: Arc<dyn PieceStore>, lsu: &str, def: ImageDef) -> Result<ImageWriter> {
        names::validate("image", &def.basename)?;
        let session = util::random_id();
        let mut m = Manifest::new(def, util::now_secs());
        m.writer = Some(writer_id(&session));
        m.generation = 1;
        store.create_manifest(lsu, &m.def.basename, &m.encode())?;
        Ok(Self::with(store, lsu, m, session))
    }

    /// Reopen a pending image to continue it (checkpoint restart).
    pub fn append(store: Arc<dyn PieceStore>, lsu: &str, def: &ImageDef) -> Result<ImageWriter> {
        let mut m = load(store.as_ref(), lsu, def)?;
        if m.state == State::Complete {
            return Err(Error::state(format!(
                "image '{}' in LSU '{lsu}' is complete and cannot be written again",
                def.basename
            )));
        }
        if let Some(prev) = &m.writer {
            warn!(lsu, image = %def.basename, "taking over image left open by {}:{} (session {})", prev.host, prev.pid, prev.session);
        }
        let session = util::random_id();
        m.writer = Some(writer_id(&session));
        let mut w = Self::with(store, lsu, m, session);
        w.commit()?;
        Ok(w)
    }

    fn with(store: Arc<dyn PieceStore>, lsu: &str, m: Manifest, session: String) -> ImageWriter {
        ImageWriter {
            store,
            lsu: lsu.to_string(),
            committed: m.clone(),
            working: m,
            session,
            piece_seq: 0,
            current: None,
            failed: None,
            last_attempt: None,
            liveness: Liveness::default(),
            copied: Default::default(),
        }
    }

    pub fn manifest(&self) -> &Manifest {
        &self.working
    }

    pub fn store(&self) -> &Arc<dyn PieceStore> {
        &self.store
    }

    /// Recommit at `liveness.heartbeat` intervals (the server's `writer_silence_secs`).
    pub fn set_liveness(&mut self, liveness: Liveness) {
        self.liveness = liveness;
    }

    /// Write `buf` at image offset `off`.
    pub fn write_at(&mut self, buf: &[u8], off: u64) -> Result<()> {
        if let Some(e) = &self.failed {
            return Err(e.clone().context("an earlier write to this image failed"));
        }
        if buf.is_empty() {
            return Err(Error::invalid("zero-length write"));
        }
        let end = off.checked_add(buf.len() as u64).filter(|&e| e <= i64::MAX as u64).ok_or_else(|| {
            Error::invalid(format!("write of {} bytes at offset {off} overflows", buf.len()))
        })?;
        let res = self.write_inner(buf, off);
        if let Err(e) = &res {
            self.failed = Some(e.clone());
            return res;
        }
        self.working.size = self.working.size.max(end);
        Ok(())
    }

    fn write_inner(&mut self, buf: &[u8], off: u64) -> Result<()> {
        let max = self.store.max_piece_len();
        if self
            .current
            .as_ref()
            .is_some_and(|p| p.start + p.len != off || p.len.saturating_add(buf.len() as u64) > max)
        {
            self.finish_piece()?;
        }
        self.heartbeat()?;
        if self.current.is_none() {
            self.piece_seq += 1;
            let key = layout::piece_key(&self.working.def.basename, &self.session, self.piece_seq);
            let writer = self.store.create_piece(&self.lsu, &key)?;
            let index = self.working.pieces.len() as u32;
            let table = TableBuilder::new(BLOCK_SIZE);
            self.current = Some(OpenPiece { writer, key, index, start: off, len: 0, table });
        }
        let p = self.current.as_mut().expect("piece was just opened");
        let crc = p.table.update(buf);
        p.writer.append_crc(buf, crc)?;
        insert_extent(
            &mut self.working.extents,
            Extent { off, len: buf.len() as u64, piece: p.index, piece_off: p.len },
        );
        p.len += buf.len() as u64;
        Ok(())
    }

    /// Store the block table after the current piece's data, make the piece durable and
    /// record it (the next write starts a new piece).
    pub(super) fn finish_piece(&mut self) -> Result<()> {
        if let Some(mut p) = self.current.take() {
            let (crc32c, table, table_crc32c) = p.table.finish();
            let res = p.writer.append(&table);
            if let Err(e) = res {
                p.writer.abort();
                return Err(e);
            }
            // The piece is made durable before any manifest names it (a chaos plant skips
            // it, to show the checker catches a commit of data that is not there).
            if !crate::plant::active("skip-durability") {
                p.writer.finish()?;
            }
            debug_assert_eq!(p.index as usize, self.working.pieces.len());
            self.working.pieces.push(Piece {
                key: p.key,
                len: p.len,
                crc32c,
                owned: true,
                block_size: BLOCK_SIZE,
                table_crc32c,
            });
        }
        Ok(())
    }

    pub fn write_meta(&mut self, buf: &[u8], off: u64) -> Result<()> {
        let end = off
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= ost_abi::STS_MAX_IMAGE_META)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "metadata write of {} bytes at {off} passes the {} byte limit",
                    buf.len(),
                    ost_abi::STS_MAX_IMAGE_META
                ))
            })?;
        if buf.is_empty() {
            return Err(Error::invalid("zero-length metadata write"));
        }
        let data = &mut self.working.meta.data;
        if data.len() < end as usize {
            data.resize(end as usize, 0);
        }
        data[off as usize..end as usize].copy_from_slice(buf);
        Ok(())
    }

    pub(super) fn set_meta(&mut self, data: Vec<u8>) {
        self.working.meta.data = data;
    }

    /// Make everything written so far durable and committed (still pending).
    pub fn flush(&mut self) -> Result<()> {
        if let Some(e) = &self.failed {
            return Err(e.clone().context("an earlier write to this image failed"));
        }
        self.finish_piece().inspect_err(|e| self.failed = Some(e.clone()))?;
        self.commit()
    }

    /// Close: `complete` makes the image read-only and listable as created; otherwise it stays
    /// pending for checkpoint restart with everything durable so far. After a write failure the
    /// image keeps its last committed state and the failure is returned.
    pub fn close(mut self, complete: bool) -> Result<Manifest> {
        if let Some(e) = self.failed.take() {
            if let Some(p) = self.current.take() {
                p.writer.abort();
            }
            self.working = self.committed.clone();
            self.working.state = State::Pending;
            self.working.writer = None;
            let _ = self.commit();
            return Err(e.context("image kept as last committed (pending) after a write failure"));
        }
        if let Err(e) = self.finish_piece() {
            self.failed = Some(e);
            return self.close(complete);
        }
        self.working.writer = None;
        if complete {
            self.working.state = State::Complete;
        }
        self.commit()?;
        Ok(self.working)
    }

    /// A long write between commits still shows the writer alive to other media servers
    /// (the orphan scan judges a remote writer by the age of its last commit): recommit the
    /// last committed state with a fresh time every `liveness.heartbeat`.
    fn heartbeat(&mut self) -> Result<()> {
        if util::now_secs().saturating_sub(self.committed.updated) < self.liveness.heartbeat.as_secs() {
            return Ok(());
        }
        let working = std::mem::replace(&mut self.working, self.committed.clone());
        let res = self.commit();
        let beat = std::mem::replace(&mut self.working, working);
        res?;
        self.working.generation = beat.generation;
        self.working.updated = beat.updated;
        Ok(())
    }

    /// Write the working manifest, unless another writer has committed since we last did.
    fn commit(&mut self) -> Result<()> {
        let name = &self.working.def.basename;
        let raw = self.store.read_manifest(&self.lsu, name)?.ok_or_else(|| {
            Error::state(format!("image '{name}' in LSU '{}' was deleted while open for writing", self.lsu))
        })?;
        let on_disk = Manifest::decode(&raw).map_err(|e| e.context(format!("image '{name}'")))?;
        // Our own last attempt may have landed with its answer lost: then it is committed.
        if self.last_attempt.as_ref() == Some(&on_disk) {
            self.committed = on_disk.clone();
        }
        if on_disk.generation != self.committed.generation {
            let who = on_disk.writer.map(|w| format!("{}:{}", w.host, w.pid)).unwrap_or_default();
            return Err(Error::state(format!(
                "image '{name}' was changed by another writer ({who}) since this one opened it"
            )));
        }
        self.working.generation = self.committed.generation + 1;
        self.working.updated = util::now_secs();
        self.last_attempt = Some(self.working.clone());
        // Compare-and-swap on what was just read: nobody's commit or delete is lost in between.
        if let Err(e) = self.store.replace_manifest(&self.lsu, name, &self.working.encode(), &raw) {
            // An attempt may have taken effect with its answer lost, and the retry then been
            // refused for a reason of its own (the quota filled meanwhile, or the condition no
            // longer held because of that very write): what is stored decides, or the caller
            // would be told "failed" of an image that is committed (complete, after a close).
            if !self.last_attempt_landed() {
                return Err(e);
            }
            warn!(lsu = %self.lsu, image = %name, "commit reported failed but it is stored (an answer was lost): {e}");
        }
        self.committed = self.working.clone();
        Ok(())
    }

    /// Whether the stored manifest is the one this writer last sent.
    fn last_attempt_landed(&self) -> bool {
        let name = &self.working.def.basename;
        match self.store.read_manifest(&self.lsu, name) {
            Ok(Some(raw)) => Manifest::decode(&raw).is_ok_and(|m| self.last_attempt.as_ref() == Some(&m)),
            _ => false,
        }
    }
}

fn writer_id(session: &str) -> Writer {
    Writer { host: util::hostname(), pid: std::process::id(), session: session.to_string() }
}
