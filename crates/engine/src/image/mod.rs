//! Images over any [`PieceStore`]: load, list, delete and copy here; writing
//! ([`writer`]: create, write, checkpoint, append, commit), reading ([`reader`]) and the scan
//! for what crashed writers left ([`orphans`]) in their own rooms.

mod blocks;
mod compose;
mod orphans;
mod reader;
pub mod retention;
pub mod shared;
mod writer;

pub use orphans::{find_orphans, remove_orphans, set_aside_held, Orphans, Removed};
pub use reader::ImageReader;
pub use writer::{ImageWriter, Liveness};

use std::sync::Arc;

use tracing::warn;

use crate::error::{Error, ErrorKind, Result};
use crate::layout::MANIFEST;
use crate::manifest::{ImageDef, Manifest, State};
use crate::names;
use crate::store::PieceStore;

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

/// Delete an image and everything stored for it but the pieces other images still reference
/// (they stay until the last reference goes: [`shared`]). Deleting what is not there succeeds.
pub fn delete(store: &dyn PieceStore, lsu: &str, def: &ImageDef) -> Result<()> {
    let image = &def.basename;
    let m = match load(store, lsu, def) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == ErrorKind::Corrupt => {
            warn!(lsu, image = %image, "deleting image with a corrupt manifest: {e}");
            None
        }
        Err(e) if e.kind() == ErrorKind::NotFound && !def.date.is_empty() => {
            // A date mismatch means another image of that name: the one asked for is not
            // there (deleted, as far as the caller is concerned) and the other one stays.
            if store.read_manifest(lsu, image)?.is_some() {
                warn!(lsu, image = %image, "delete of date '{}' leaves the stored image of another date alone: {e}", def.date);
                return Ok(());
            }
            None
        }
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    // The image vanishes first, in a way no commit in flight can undo.
    store.delete_record(lsu, image, MANIFEST)?;
    let keep = match &m {
        Some(m) => shared::release_pieces(store, lsu, m)?,
        None => shared::release_unknown(store, lsu, image)?,
    };
    let keep = if crate::plant::active("delete-referenced") { Vec::new() } else { keep };
    store.remove_image(lsu, image, &keep)
}

/// How a copy inside one LSU is made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CopyMode {
    /// The copy references the source's pieces: no data moves (what Data Domain's fastcopy
    /// does for optimized duplication inside one system).
    #[default]
    Reference,
    /// The copy gets pieces of its own, copied inside the storage (reflink, server-side copy).
    Physical,
}

/// Copy a complete image to `to_def` in `to_lsu`, inside the storage when source and target
/// share a store, else streamed through bounded buffers.
pub fn copy(
    (from_store, from_lsu, from_def): (&Arc<dyn PieceStore>, &str, &ImageDef),
    (to_store, to_lsu, to_def): (&Arc<dyn PieceStore>, &str, &ImageDef),
    mode: CopyMode,
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
    let res = if Arc::ptr_eq(from_store, to_store) && from_lsu == to_lsu && mode == CopyMode::Reference {
        w.reference_all(&src)
    } else if Arc::ptr_eq(from_store, to_store) {
        w.adopt_copies(from_lsu, &src)
    } else {
        stream_copy(ImageReader::from_manifest(from_store.clone(), from_lsu, src), &mut w, &mut |_| Ok(()))
            .map(drop)
    };
    match res.and_then(|()| w.close(true)) {
        Ok(m) => Ok(m),
        Err(e) => {
            let _ = delete(to_store.as_ref(), to_lsu, to_def);
            Err(e.context(format!("copying to image '{}' in LSU '{to_lsu}'", to_def.basename)))
        }
    }
}

/// Bytes a streamed copy moves per step (its one buffer).
const COPY_CHUNK: usize = 4 << 20;

/// Stream every byte of `r` into `w` through one bounded buffer, calling `progress` with the
/// bytes copied so far after each step (an error from it stops the copy). Returns the
/// CRC32C of the image's bytes.
fn stream_copy(mut r: ImageReader, w: &mut ImageWriter, progress: Progress) -> Result<u32> {
    let mut buf = vec![0u8; COPY_CHUNK];
    let (mut off, mut crc) = (0, 0);
    let size = r.manifest().size;
    while off < size {
        let n = r.read_at(&mut buf, off)?;
        if n == 0 {
            return Err(Error::corrupt(format!("image ends at {off} of its {size} bytes")));
        }
        w.write_at(&buf[..n], off)?;
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        off += n as u64;
        progress(off)?;
    }
    w.set_meta(r.manifest().meta.data.clone());
    Ok(crc)
}

/// Called by a streamed copy with the bytes copied so far; an error stops the copy (cancel).
pub type Progress<'a> = &'a mut dyn FnMut(u64) -> Result<()>;

/// Copy a complete image to another store (A.I.R.: another cluster), streamed through one
/// bounded buffer, and commit the target only once it is verified: after the last byte the
/// target is flushed (still pending), read back from the storage (block checksums checked on
/// the way) and its CRC32C and metadata compared with the source's. Until then it is listed
/// pending; on any failure, or when `progress` stops the copy, the target is deleted.
pub fn replicate(
    (from_store, from_lsu, from_def): (&Arc<dyn PieceStore>, &str, &ImageDef),
    (to_store, to_lsu): (&Arc<dyn PieceStore>, &str),
    progress: Progress,
) -> Result<Manifest> {
    let src = load(from_store.as_ref(), from_lsu, from_def)?;
    if src.state != State::Complete {
        return Err(Error::state(format!(
            "image '{}' in LSU '{from_lsu}' is not complete and cannot be replicated",
            from_def.basename
        )));
    }
    let meta = src.meta.data.clone();
    let mut w = ImageWriter::create(to_store.clone(), to_lsu, src.def.clone())?;
    let reader = ImageReader::from_manifest(from_store.clone(), from_lsu, src);
    let res = stream_copy(reader, &mut w, progress).and_then(|crc| {
        w.flush()?;
        verify_copy(to_store, to_lsu, w.manifest().clone(), crc, &meta)
    });
    match res.and_then(|()| w.close(true)) {
        Ok(m) => Ok(m),
        Err(e) => {
            let _ = delete(to_store.as_ref(), to_lsu, from_def);
            Err(e.context(format!("replicating image '{}' to LSU '{to_lsu}'", from_def.basename)))
        }
    }
}

/// Read a written (pending) image back from the storage and compare its CRC32C and metadata.
fn verify_copy(store: &Arc<dyn PieceStore>, lsu: &str, m: Manifest, crc: u32, meta: &[u8]) -> Result<()> {
    let name = m.def.basename.clone();
    let size = m.size;
    let same_meta = m.meta.data == meta;
    let mut r = ImageReader::from_manifest(store.clone(), lsu, m);
    let mut buf = vec![0u8; COPY_CHUNK];
    let (mut off, mut got) = (0, 0);
    while off < size {
        let n = r.read_at(&mut buf, off)?;
        if n == 0 {
            break;
        }
        got = crc32c::crc32c_append(got, &buf[..n]);
        off += n as u64;
    }
    if off != size || got != crc || !same_meta {
        return Err(Error::corrupt(format!(
            "the copy of image '{name}' read back differs from its source ({off} of {size} bytes, \
             CRC32C {got:08x} against {crc:08x}, metadata {})",
            if same_meta { "equal" } else { "different" }
        )));
    }
    Ok(())
}
