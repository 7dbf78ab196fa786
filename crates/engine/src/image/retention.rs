//! Retention locks on images (WORM). The storage enforces them, not the plug-in: an image is
//! locked by locking every piece it reads from (its own and those it references) and then its
//! manifest, through the store's own means (S3 Object Lock, VAST file retention). The manifest
//! goes last, so whenever the manifest is locked, so is everything it names, and a delete, which
//! removes the manifest first, is refused by the storage before anything is gone.

use tracing::info;

use crate::error::{Error, ErrorKind, Result};
use crate::layout;
use crate::manifest::{ImageDef, Manifest, State};
use crate::store::{PieceStore, RetentionLock, RetentionMode};

use super::load;

/// Lock the complete image `def` until `until` (seconds since the epoch) in `mode`. A lock
/// already later than `until` stays as it is (locks are only ever extended).
pub fn lock(
    store: &dyn PieceStore,
    lsu: &str,
    def: &ImageDef,
    until: u64,
    mode: RetentionMode,
) -> Result<Manifest> {
    let m = load(store, lsu, def)?;
    if m.state != State::Complete {
        return Err(Error::state(format!(
            "image '{}' in LSU '{lsu}' is not complete: only a complete image can be locked",
            def.basename
        )));
    }
    // The manifest is locked last, so its lock is the image's: one as late stays as it is (a
    // store may refuse to move a lock earlier).
    if lock_of(store, lsu, &def.basename)?.is_some_and(|l| l.until >= until) {
        return Ok(m);
    }
    let pieces: Vec<String> = m.pieces.iter().map(|p| p.key.clone()).collect();
    store.set_retention(lsu, &pieces, until, mode)?;
    store.set_retention(lsu, &[layout::manifest_key(&def.basename)], until, mode)?;
    // Read back: the lock NetBackup is told of is the one the storage holds.
    match lock_of(store, lsu, &def.basename)? {
        Some(l) if l.until >= until => {}
        held => {
            return Err(Error::new(
                ErrorKind::NotSupported,
                format!(
                    "image '{}' in LSU '{lsu}': the storage accepted a lock until {until} but holds {}",
                    def.basename,
                    held.map_or("none".to_string(), |l| format!("one until {}", l.until))
                ),
            ))
        }
    }
    info!(lsu, image = %def.basename, until, mode = mode.as_str(), pieces = pieces.len(), "image locked");
    Ok(m)
}

/// The lock on an image: its manifest's.
pub fn lock_of(store: &dyn PieceStore, lsu: &str, image: &str) -> Result<Option<RetentionLock>> {
    store.retention(lsu, &layout::manifest_key(image))
}

/// The error for a delete or change the storage refused because `image` is locked.
pub fn locked_error(lsu: &str, image: &str, lock: Option<RetentionLock>) -> Error {
    let until = match lock {
        Some(l) => format!(
            "until {} ({})",
            l.until,
            jiff::Timestamp::from_second(l.until as i64).map(|t| t.to_string()).unwrap_or_default()
        ),
        None => "(the storage did not say until when)".to_string(),
    };
    Error::new(ErrorKind::WormLocked, format!("image '{image}' in LSU '{lsu}' is WORM-locked {until}"))
}
