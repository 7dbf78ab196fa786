//! Images over any [`PieceStore`]: create, write, checkpoint, append, read, list, copy, delete.
//!
//! A writer appends NetBackup's offset-addressed writes to the current piece while they are
//! sequential and starts a new piece when they are not, so pieces stay write-once (as S3
//! objects must be) and the extent map records where each byte lives. Each piece's CRC32C is
//! computed on the way in. Commits (create, flush, close) write the whole manifest at once and
//! only after the pieces it names are durable.

use std::sync::Arc;

use tracing::warn;

use crate::error::{Error, ErrorKind, Result};
use crate::manifest::{find_extent, insert_extent, Extent, ImageDef, Manifest, Piece, State, Writer};
use crate::names;
use crate::store::{PieceReader, PieceStore, PieceWriter};
use crate::util;

/// Read and decode an image's manifest. `NotFound` when there is none, or when `def.date` is
/// set and differs from the stored date.
pub fn load(store: &dyn PieceStore, lsu: &str, def: &ImageDef) -> Result<Manifest> {
    names::validate("image", &def.basename)?;
    let bytes = store
        .read_manifest(lsu, &def.basename)?
        .ok_or_else(|| Error::not_found(format!("image '{}' not found in LSU '{lsu}'", def.basename)))?;
    let m = Manifest::decode(&bytes)
        .map_err(|e| e.context(format!("image '{}' in LSU '{lsu}'", def.basename)))?;
    if m.def.basename != def.basename {
        return Err(Error::corrupt(format!(
            "manifest of image '{}' names image '{}'",
            def.basename, m.def.basename
        )));
    }
    if !def.date.is_empty() && def.date != m.def.date {
        return Err(Error::not_found(format!(
            "image '{}' in LSU '{lsu}' has date '{}', not '{}'",
            def.basename, m.def.date, def.date
        )));
    }
    Ok(m)
}

/// Every image in the LSU whose name starts with `prefix`. Images without a manifest (a create
/// in progress, or a writer that died before its first commit) are not images yet; a corrupt
/// manifest is logged and skipped so one bad image does not hide the others.
pub fn list(store: &dyn PieceStore, lsu: &str, prefix: &str) -> Result<Vec<Manifest>> {
    let mut out = Vec::new();
    for name in store.list_images(lsu, prefix)? {
        let def = ImageDef { basename: name, ..Default::default() };
        match load(store, lsu, &def) {
            Ok(m) => out.push(m),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => warn!(lsu, image = %def.basename, "skipping image in listing: {e}"),
        }
    }
    Ok(out)
}

/// Delete an image and everything stored for it. Deleting what is not there succeeds.
pub fn delete(store: &dyn PieceStore, lsu: &str, def: &ImageDef) -> Result<()> {
    let pieces = match load(store, lsu, def) {
        Ok(m) => m.pieces.into_iter().filter(|p| p.owned).map(|p| p.key).collect(),
        Err(e) if e.kind() == ErrorKind::Corrupt => {
            warn!(lsu, image = %def.basename, "deleting image with a corrupt manifest: {e}");
            Vec::new()
        }
        Err(e) if e.kind() == ErrorKind::NotFound && !def.date.is_empty() => {
            // A date mismatch means another image of that name: the one asked for is not
            // there (deleted, as far as the caller is concerned) and the other one stays.
            if store.read_manifest(lsu, &def.basename)?.is_some() {
                warn!(lsu, image = %def.basename, "delete of date '{}' leaves the stored image of another date alone: {e}", def.date);
                return Ok(());
            }
            Vec::new()
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    store.delete_image(lsu, &def.basename, &pieces)
}

/// Copy a complete image to `to_def` in `to_lsu`, inside the storage when source and target
/// share a store, else streamed through bounded buffers.
pub fn copy(
    from_store: &Arc<dyn PieceStore>,
    from_lsu: &str,
    from_def: &ImageDef,
    to_store: &Arc<dyn PieceStore>,
    to_lsu: &str,
    to_def: &ImageDef,
) -> Result<Manifest> {
    let src = load(from_store.as_ref(), from_lsu, from_def)?;
    if src.state != State::Complete {
        return Err(Error::state(format!(
            "image '{}' in LSU '{from_lsu}' is not complete and cannot be copied",
            from_def.basename
        )));
    }
    let mut def = to_def.clone();
    if def.date.is_empty() {
        def.date = src.def.date.clone();
    }
    let mut w = ImageWriter::create(to_store.clone(), to_lsu, def)?;
    let res = if Arc::ptr_eq(from_store, to_store) {
        w.adopt_copies(from_lsu, &src)
    } else {
        stream_copy(ImageReader::from_manifest(from_store.clone(), from_lsu, src), &mut w)
    };
    match res.and_then(|()| w.close(true)) {
        Ok(m) => Ok(m),
        Err(e) => {
            let _ = delete(to_store.as_ref(), to_lsu, to_def);
            Err(e.context(format!("copying to image '{}' in LSU '{to_lsu}'", to_def.basename)))
        }
    }
}

fn stream_copy(mut r: ImageReader, w: &mut ImageWriter) -> Result<()> {
    let mut buf = vec![0u8; 4 << 20];
    let mut off = 0;
    let size = r.manifest().size;
    while off < size {
        let n = r.read_at(&mut buf, off)?;
        w.write_at(&buf[..n], off)?;
        off += n as u64;
    }
    w.set_meta(r.manifest().meta.data.clone());
    Ok(())
}

struct OpenPiece {
    writer: Box<dyn PieceWriter>,
    key: String,
    index: u32,
    /// Image offset of the piece's first byte.
    start: u64,
    len: u64,
    crc: u32,
}

/// An image open for writing (created, or reopened for append).
pub struct ImageWriter {
    store: Arc<dyn PieceStore>,
    lsu: String,
    /// What is on storage now: what a failed writer falls back to.
    committed: Manifest,
    working: Manifest,
    session: String,
    piece_seq: u32,
    current: Option<OpenPiece>,
    /// The first write error; the handle refuses writes after it.
    failed: Option<Error>,
    /// The manifest of the last commit sent, in case its answer was lost.
    last_attempt: Option<Manifest>,
}

/// How often a writer recommits to show it is alive (see [`ImageWriter::heartbeat`]).
const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(300);
/// A writer on another host is judged gone only after this much silence, whatever the
/// cleanup's `older_than`: several missed heartbeats.
const REMOTE_SILENCE: std::time::Duration = std::time::Duration::from_secs(3 * 300);

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
        }
    }

    pub fn manifest(&self) -> &Manifest {
        &self.working
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
            let name = format!("{}-{:05}.piece", self.session, self.piece_seq);
            let key = format!("{}/{name}", self.working.def.basename);
            let writer = self.store.create_piece(&self.lsu, &key)?;
            let index = self.working.pieces.len() as u32;
            self.current = Some(OpenPiece { writer, key, index, start: off, len: 0, crc: 0 });
        }
        let p = self.current.as_mut().expect("piece was just opened");
        p.writer.append(buf)?;
        p.crc = crc32c::crc32c_append(p.crc, buf);
        insert_extent(
            &mut self.working.extents,
            Extent { off, len: buf.len() as u64, piece: p.index, piece_off: p.len },
        );
        p.len += buf.len() as u64;
        Ok(())
    }

    /// Make the current piece durable and record it (the next write starts a new piece).
    fn finish_piece(&mut self) -> Result<()> {
        if let Some(p) = self.current.take() {
            p.writer.finish()?;
            debug_assert_eq!(p.index as usize, self.working.pieces.len());
            self.working.pieces.push(Piece { key: p.key, len: p.len, crc32c: p.crc, owned: true });
        }
        Ok(())
    }

    /// Copy the pieces of `src` (same store) and take over its extent map and metadata.
    fn adopt_copies(&mut self, from_lsu: &str, src: &Manifest) -> Result<()> {
        for piece in &src.pieces {
            let file = piece.key.rsplit('/').next().unwrap_or(&piece.key);
            let key = format!("{}/{file}", self.working.def.basename);
            self.store.copy_piece(from_lsu, &piece.key, &self.lsu, &key)?;
            self.working.pieces.push(Piece { key, owned: true, ..piece.clone() });
        }
        self.working.extents = src.extents.clone();
        self.working.size = src.size;
        self.working.meta = src.meta.clone();
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

    fn set_meta(&mut self, data: Vec<u8>) {
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
    /// last committed state with a fresh time every HEARTBEAT.
    fn heartbeat(&mut self) -> Result<()> {
        if util::now_secs().saturating_sub(self.committed.updated) < HEARTBEAT.as_secs() {
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
        self.store.replace_manifest(&self.lsu, name, &self.working.encode(), &raw)?;
        self.committed = self.working.clone();
        Ok(())
    }
}

fn writer_id(session: &str) -> Writer {
    Writer { host: util::hostname(), pid: std::process::id(), session: session.to_string() }
}

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

    fn from_manifest(store: Arc<dyn PieceStore>, lsu: &str, m: Manifest) -> ImageReader {
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

/// What a writer that died left behind in one LSU.
#[derive(Debug, Default)]
pub struct Orphans {
    /// Stored under an image name with no manifest (a crash before the first commit, or during
    /// a delete): never an image, safe to remove.
    pub without_manifest: Vec<(String, Vec<String>)>,
    /// Keys of committed images that their manifest does not name (pieces of a writer that
    /// died between writing and committing them, temp files).
    pub unreferenced: Vec<(String, Vec<String>)>,
    /// Pending images whose writer is gone (dead on this host, or silent for longer than the
    /// threshold on another): checkpoints NetBackup may still resume, removed only on request.
    pub stale_pending: Vec<(String, String)>,
    /// Manifest generation of each image above when it was scanned.
    pub generations: std::collections::HashMap<String, u64>,
}

impl Orphans {
    pub fn is_empty(&self) -> bool {
        self.without_manifest.is_empty() && self.unreferenced.is_empty() && self.stale_pending.is_empty()
    }
}

/// Is the writer recorded in a manifest gone? On this host the pid tells; elsewhere only
/// silence longer than `older_than` since the last commit does.
fn writer_gone(m: &Manifest, older_than: std::time::Duration) -> bool {
    let Some(w) = &m.writer else { return true };
    if w.host == util::hostname() {
        return !util::process_alive(w.pid);
    }
    util::now_secs().saturating_sub(m.updated) > older_than.max(REMOTE_SILENCE).as_secs()
}

/// Scan one LSU for what crashed writers left. Images held by a live writer are skipped, and
/// so is anything younger than `older_than` (a create in progress looks like an orphan for a
/// moment; a writer on another host is only known gone by its silence).
pub fn find_orphans(store: &dyn PieceStore, lsu: &str, older_than: std::time::Duration) -> Result<Orphans> {
    let mut out = Orphans::default();
    for name in store.list_images(lsu, "")? {
        let keys = store.list_image_keys(lsu, &name)?;
        if keys.is_empty() {
            continue;
        }
        let def = ImageDef { basename: name.clone(), ..Default::default() };
        let m = match load(store, lsu, &def) {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                if keys.iter().all(|(_, age)| age.is_some_and(|a| a < older_than)) {
                    continue;
                }
                out.without_manifest.push((name, keys.into_iter().map(|(k, _)| k).collect()));
                continue;
            }
            // A corrupt manifest is an image NetBackup knows: reported, not touched.
            Err(e) => {
                warn!(lsu, image = %name, "orphan scan skips an unreadable image: {e}");
                continue;
            }
        };
        out.generations.insert(name.clone(), m.generation);
        let gone = writer_gone(&m, older_than);
        if m.state == State::Pending && m.writer.is_some() && gone {
            let w = m.writer.as_ref().map(|w| format!("{}:{}", w.host, w.pid)).unwrap_or_default();
            out.stale_pending.push((name.clone(), w));
        }
        if !gone {
            continue;
        }
        let manifest_key = format!("{name}/manifest");
        let stray: Vec<String> = keys
            .into_iter()
            .filter(|(k, age)| {
                *k != manifest_key
                    && !m.pieces.iter().any(|p| p.key == *k)
                    && !age.is_some_and(|a| a < older_than)
            })
            .map(|(k, _)| k)
            .collect();
        if !stray.is_empty() {
            out.unreferenced.push((name, stray));
        }
    }
    Ok(out)
}

/// Remove what [`find_orphans`] found; stale pending images only with `pending`. Returns how
/// many keys and images went.
pub fn remove_orphans(store: &dyn PieceStore, lsu: &str, o: &Orphans, pending: bool) -> Result<usize> {
    let mut n = 0;
    for (image, keys) in &o.without_manifest {
        // A create since the scan makes it an image: leave it.
        if store.read_manifest(lsu, image)?.is_some() {
            continue;
        }
        store.remove_keys(lsu, image, keys)?;
        n += keys.len();
    }
    for (image, keys) in &o.unreferenced {
        // A commit since the scan may name these keys now, or show the writer alive.
        let def = ImageDef { basename: image.clone(), ..Default::default() };
        let Ok(m) = load(store, lsu, &def) else { continue };
        if o.generations.get(image) != Some(&m.generation) {
            continue;
        }
        store.remove_keys(lsu, image, keys)?;
        n += keys.len();
    }
    if pending {
        for (image, _) in &o.stale_pending {
            let def = ImageDef { basename: image.clone(), ..Default::default() };
            if load(store, lsu, &def).is_ok_and(|m| o.generations.get(image) == Some(&m.generation)) {
                delete(store, lsu, &def)?;
                n += 1;
            }
        }
    }
    Ok(n)
}
