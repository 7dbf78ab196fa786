//! An image open through the C interface: a writer or a reader, the server it belongs to (and
//! the count of that server's open children), and list cursors.

use std::collections::VecDeque;

use tracing::{info, warn};

use super::info::image_info;
use super::{ChildGuard, ImageInfo};
use crate::error::{Error, ErrorKind, Result};
use crate::image::{CopyMode, ImageReader, ImageWriter};
use crate::manifest::ImageDef;

/// A list snapshot taken when it was opened, handed out one entry at a time.
pub struct Cursor<T> {
    pub(super) items: VecDeque<T>,
    pub(super) _guard: ChildGuard,
}

impl<T> Cursor<T> {
    pub fn next_item(&mut self) -> Option<T> {
        self.items.pop_front()
    }
}

pub(super) enum Mode {
    Write(Box<ImageWriter>),
    Read(Box<ImageReader>),
}

/// An image open through the C interface.
pub struct OpenImage {
    pub(super) lsu: String,
    /// `None` once closed.
    pub(super) mode: Option<Mode>,
    /// The server it was opened on (and the count of its open children).
    pub(super) guard: ChildGuard,
}

impl OpenImage {
    pub fn server(&self) -> &str {
        &self.guard.0.name
    }
    pub fn lsu(&self) -> &str {
        &self.lsu
    }
    pub fn name(&self) -> &str {
        match &self.mode {
            Some(Mode::Write(w)) => &w.manifest().def.basename,
            Some(Mode::Read(r)) => &r.manifest().def.basename,
            None => "",
        }
    }

    fn writer(&mut self, op: &str) -> Result<&mut ImageWriter> {
        match self.mode.as_mut() {
            Some(Mode::Write(w)) => Ok(w),
            Some(Mode::Read(_)) => Err(Error::state(format!("cannot {op}: the image is open for reading"))),
            None => Err(Error::new(ErrorKind::BadHandle, "image handle is closed")),
        }
    }

    fn reader(&mut self, op: &str) -> Result<&mut ImageReader> {
        match self.mode.as_mut() {
            Some(Mode::Read(r)) => Ok(r),
            Some(Mode::Write(_)) => Err(Error::state(format!("cannot {op}: the image is open for writing"))),
            None => Err(Error::new(ErrorKind::BadHandle, "image handle is closed")),
        }
    }

    pub fn write(&mut self, buf: &[u8], off: u64) -> Result<()> {
        self.writer("write")?.write_at(buf, off)
    }

    pub fn read(&mut self, buf: &mut [u8], off: u64) -> Result<usize> {
        self.reader("read")?.read_at(buf, off)
    }

    pub fn flush(&mut self) -> Result<()> {
        self.writer("flush")?.flush()
    }

    /// Place bytes `src_off..src_off + len` of complete image `src` of the same LSU at
    /// `dst_off` of this image without copying them (optimized synthetics).
    pub fn include(&mut self, src: &ImageDef, src_off: u64, len: u64, dst_off: u64) -> Result<()> {
        self.writer("include")?.include(src, src_off, len, dst_off)
    }

    /// Copy bytes `src_off..src_off + len` of the image open for reading in `src` to `dst_off`
    /// of this image (optimized duplication's extent copy; see `ImageWriter::copy_extent`).
    pub fn copy_extent(&mut self, src: &mut OpenImage, src_off: u64, len: u64, dst_off: u64) -> Result<()> {
        let mode = if self.guard.0.reference_copies { CopyMode::Reference } else { CopyMode::Physical };
        let r = src.reader("copy extents from")?;
        self.writer("copy extents to")?.copy_extent(r, src_off, len, dst_off, mode)
    }

    pub fn write_meta(&mut self, buf: &[u8], off: u64) -> Result<()> {
        self.writer("write metadata")?.write_meta(buf, off)
    }

    pub fn read_meta(&mut self, buf: &mut [u8], off: u64) -> Result<usize> {
        let m = match self.mode.as_ref() {
            Some(Mode::Write(w)) => w.manifest(),
            Some(Mode::Read(r)) => r.manifest(),
            None => return Err(Error::new(ErrorKind::BadHandle, "image handle is closed")),
        };
        let data = &m.meta.data;
        if buf.is_empty() {
            return Err(Error::invalid("zero-length metadata read"));
        }
        if off > data.len() as u64 {
            return Err(Error::invalid(format!(
                "metadata read at {off} is past its end ({} bytes)",
                data.len()
            )));
        }
        let n = buf.len().min(data.len() - off as usize);
        buf[..n].copy_from_slice(&data[off as usize..off as usize + n]);
        Ok(n)
    }

    pub fn info(&self) -> Result<ImageInfo> {
        match self.mode.as_ref() {
            Some(Mode::Write(w)) => Ok(image_info(self.server(), &self.lsu, w.manifest(), false)),
            Some(Mode::Read(r)) => Ok(image_info(self.server(), &self.lsu, r.manifest(), true)),
            None => Err(Error::new(ErrorKind::BadHandle, "image handle is closed")),
        }
    }

    /// Close. `complete` matters only for a write handle. Returns the image's size.
    pub fn close(&mut self, complete: bool) -> Result<u64> {
        match self.mode.take() {
            Some(Mode::Write(w)) => {
                let res = w.close(complete);
                self.guard.0.changed(&self.lsu);
                let m = res?;
                let state = if complete { "complete" } else { "incomplete (kept for restart)" };
                info!(server = %self.server(), lsu = %self.lsu, image = %m.def.basename, "image closed {state}, {} bytes in {} piece(s)", m.size, m.pieces.len());
                Ok(m.size)
            }
            Some(Mode::Read(r)) => Ok(r.manifest().size),
            None => Err(Error::new(ErrorKind::BadHandle, "image handle is closed")),
        }
    }
}

impl Drop for OpenImage {
    /// A write handle dropped without close (terminate, a host that forgot) keeps what is
    /// durable for checkpoint restart rather than losing it.
    fn drop(&mut self) {
        if let Some(Mode::Write(_)) = &self.mode {
            warn!(server = %self.server(), lsu = %self.lsu, image = %self.name(), "image still open for writing at shutdown: closing it incomplete");
            if let Err(e) = self.close(false) {
                warn!(server = %self.server(), lsu = %self.lsu, "closing incomplete failed: {e}");
            }
        }
    }
}
