//! Image operations on an open server: create, open, list, delete, copy, orphan cleanup. Each
//! finds the LSU's store, calls the image layer, and keeps the LSU caches honest.

use std::sync::Arc;
use std::time::Duration;

use tracing::info;

use super::info::image_info;
use super::open_image::Mode;
use super::{Cursor, ImageInfo, OpenImage, Server};
use crate::error::Result;
use crate::image::{self, ImageReader, ImageWriter};
use crate::manifest::ImageDef;
use crate::names;

impl Server {
    pub fn create_image(self: &Arc<Self>, lsu: &str, def: ImageDef) -> Result<OpenImage> {
        let store = self.store_for(lsu)?.clone();
        let mut w = ImageWriter::create(store, lsu, def)?;
        w.set_liveness(self.liveness);
        Ok(self.opened(lsu, Mode::Write(Box::new(w))))
    }

    /// `append` reopens a pending image for writing; otherwise the image is opened to read.
    pub fn open_image(self: &Arc<Self>, lsu: &str, def: &ImageDef, append: bool) -> Result<OpenImage> {
        let store = self.store_for(lsu)?.clone();
        let mode = if append {
            let mut w = ImageWriter::append(store, lsu, def)?;
            w.set_liveness(self.liveness);
            Mode::Write(Box::new(w))
        } else {
            Mode::Read(Box::new(ImageReader::open(store, lsu, def)?))
        };
        Ok(self.opened(lsu, mode))
    }

    fn opened(self: &Arc<Self>, lsu: &str, mode: Mode) -> OpenImage {
        OpenImage { lsu: lsu.to_string(), mode: Some(mode), guard: self.guard() }
    }

    pub fn image_info(&self, lsu: &str, def: &ImageDef) -> Result<ImageInfo> {
        let m = image::load(self.store_for(lsu)?.as_ref(), lsu, def)?;
        let mut info = image_info(&self.name, lsu, &m, false);
        info.worm_until = self.image_retention(lsu, &def.basename)?.map_or(0, |l| l.until);
        Ok(info)
    }

    pub fn image_list(self: &Arc<Self>, lsu: &str, prefix: &str) -> Result<Cursor<ImageInfo>> {
        let items = image::list(self.store_for(lsu)?.as_ref(), lsu, prefix)?
            .iter()
            .map(|m| image_info(&self.name, lsu, m, false))
            .collect();
        Ok(Cursor { items, _guard: self.guard() })
    }

    pub fn delete_image(&self, lsu: &str, def: &ImageDef) -> Result<()> {
        self.check_deletable(lsu, def)?;
        image::delete(self.store_for(lsu)?.as_ref(), lsu, def)
            .map_err(|e| self.delete_refused(lsu, def, e))?;
        self.changed(lsu);
        info!(server = %self.name, lsu, image = %def.basename, "image deleted");
        Ok(())
    }

    /// What crashed writers left in `lsu` (see [`image::find_orphans`]).
    /// What crashed writers left in `lsu`; on a WORM LSU, keys under a running retention lock
    /// are set aside as held (nothing can remove them before the lock ends).
    pub fn find_orphans(&self, lsu: &str, older_than: Duration) -> Result<image::Orphans> {
        let store = self.store_for(lsu)?;
        let mut o = image::find_orphans(store.as_ref(), lsu, older_than, self.liveness)?;
        if self.worm(lsu)?.is_some() {
            image::set_aside_held(store.as_ref(), lsu, &mut o);
        }
        Ok(o)
    }

    pub fn remove_orphans(
        &self,
        lsu: &str,
        orphans: &image::Orphans,
        pending: bool,
    ) -> Result<image::Removed> {
        let r = image::remove_orphans(self.store_for(lsu)?.as_ref(), lsu, orphans, pending)?;
        self.changed(lsu);
        info!(server = %self.name, lsu, held = r.held.len(), "orphan cleanup removed {} item(s)", r.items);
        Ok(r)
    }

    pub fn copy_image(
        &self,
        from_lsu: &str,
        from: &ImageDef,
        to: &Server,
        to_lsu: &str,
        to_def: &ImageDef,
    ) -> Result<ImageInfo> {
        let from_store = self.store_for(from_lsu)?;
        let to_store = to.store_for(to_lsu)?;
        names::validate("image", &to_def.basename)?;
        let mode = if self.reference_copies { image::CopyMode::Reference } else { image::CopyMode::Physical };
        let m = image::copy((from_store, from_lsu, from), (to_store, to_lsu, to_def), mode)?;
        to.changed(to_lsu);
        info!(server = %self.name, lsu = from_lsu, image = %from.basename, "image copied to {}/{}/{} ({} bytes)", to.name, to_lsu, to_def.basename, m.size);
        Ok(image_info(&to.name, to_lsu, &m, false))
    }
}
