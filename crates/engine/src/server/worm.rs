//! WORM on an open server: which LSUs the storage locks (from their VAST views), setting an
//! image's lock within the view's minimum and maximum, and turning the storage's refusal of a
//! delete into `WormLocked` with the unlock time.

use tracing::warn;

use super::Server;
use crate::error::{Error, ErrorKind, Result};
use crate::image::{self, retention};
use crate::manifest::ImageDef;
use crate::store::{RetentionLock, WormPolicy};
use crate::util::now_secs;

impl Server {
    /// The LSU's WORM policy: `None` unless VMS says its view locks (S3 Object Lock, file
    /// retention) and the storage is seen to hold locks (see [`Self::held`]).
    pub fn worm(&self, lsu: &str) -> Result<Option<WormPolicy>> {
        match &self.control {
            Some(_) => self.held(lsu, self.view_worm(lsu)?),
            None => Ok(None),
        }
    }

    /// What the LSU's VAST view promises (VMS), whether or not the storage holds it.
    pub fn view_worm(&self, lsu: &str) -> Result<Option<WormPolicy>> {
        match &self.control {
            Some(c) => Ok(c.lsu(lsu)?.worm),
            None => Ok(None),
        }
    }

    /// Whether the storage holds retention locks for `lsu` as `policy` asks: `NotSupported`
    /// saying what it did instead (for `vast-ost doctor`).
    pub fn verify_worm(&self, lsu: &str, policy: &WormPolicy) -> Result<()> {
        self.store_for(lsu)?.verify_retention(lsu, policy)
    }

    /// `policy` when the storage really holds retention locks for `lsu` (probed once per
    /// bucket and process, `PieceStore::verify_retention`); `None` when it does not (logged
    /// once by the probe): such an LSU is not advertised WORM, and its images cannot be locked.
    pub(super) fn held(&self, lsu: &str, policy: Option<WormPolicy>) -> Result<Option<WormPolicy>> {
        let Some(p) = policy else { return Ok(None) };
        match self.store_for(lsu)?.verify_retention(lsu, &p) {
            Ok(()) => Ok(Some(p)),
            Err(e) if e.kind() == ErrorKind::NotSupported => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Lock image `def` until `until` (seconds since the epoch), or extend its lock. The time
    /// must lie between the view's minimum and maximum retention from now.
    pub fn set_image_retention(&self, lsu: &str, def: &ImageDef, until: u64) -> Result<()> {
        let store = self.store_for(lsu)?;
        let Some(policy) = self.view_worm(lsu)? else {
            return Err(Error::new(
                ErrorKind::NotSupported,
                format!("LSU '{lsu}' is not on a WORM-enabled view: its storage cannot lock images"),
            ));
        };
        // Before any object of the image is locked: a server that would not hold the lock (or
        // would take the request for a write) is found out on a probe object.
        store.verify_retention(lsu, &policy)?;
        let now = now_secs();
        let secs = until.saturating_sub(now);
        if until <= now || secs < policy.min_secs {
            return Err(Error::new(
                ErrorKind::WormMin,
                format!(
                    "lock of image '{}' until {until} is {secs} s from now, below LSU '{lsu}''s minimum retention of {} s",
                    def.basename, policy.min_secs
                ),
            ));
        }
        if secs > policy.max_secs {
            return Err(Error::new(
                ErrorKind::WormMax,
                format!(
                    "lock of image '{}' until {until} is {secs} s from now, above LSU '{lsu}''s maximum retention of {} s",
                    def.basename, policy.max_secs
                ),
            ));
        }
        image::retention::lock(store.as_ref(), lsu, def, until, policy.mode)?;
        Ok(())
    }

    /// The storage's lock on an image of a WORM LSU (`None` elsewhere).
    pub fn image_retention(&self, lsu: &str, image: &str) -> Result<Option<RetentionLock>> {
        if self.worm(lsu)?.is_none() {
            return Ok(None);
        }
        retention::lock_of(self.store_for(lsu)?.as_ref(), lsu, image)
    }

    /// Before a delete on a WORM LSU: refuse it when the image is locked. The storage refuses
    /// too, but not always visibly (on a versioned bucket a plain DELETE succeeds by adding a
    /// delete marker, hiding a locked image), and on NFS that the filer refuses the unlink is
    /// assumed, not probed (docs/worm.md): one lookup of the manifest's lock settles it.
    pub(super) fn check_deletable(&self, lsu: &str, def: &ImageDef) -> Result<()> {
        let store = self.store_for(lsu)?;
        if self.worm(lsu)?.is_none() {
            return Ok(());
        }
        match retention::lock_of(store.as_ref(), lsu, &def.basename)? {
            Some(l) if l.active => Err(retention::locked_error(lsu, &def.basename, Some(l))),
            _ => Ok(()),
        }
    }

    /// A delete the storage refused on a WORM LSU is the image's lock.
    pub(super) fn delete_refused(&self, lsu: &str, def: &ImageDef, e: Error) -> Error {
        if e.kind() != ErrorKind::Access || !matches!(self.worm(lsu), Ok(Some(_))) {
            return e;
        }
        let lock = self.image_retention(lsu, &def.basename).ok().flatten();
        warn!(server = %self.name, lsu, image = %def.basename, "the storage refused the delete: {e}");
        retention::locked_error(lsu, &def.basename, lock)
    }
}
