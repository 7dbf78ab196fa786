//! Retention locks on a WORM-enabled VAST view over NFS. VAST documents WORM-enabled views for
//! NFSv3 with files locked one by one ("Locking a File Manually"); the plug-in locks a file the
//! way WORM filers take it over NFS (NetApp SnapLock, HPE StoreAll, Veritas Access): the
//! retention time goes into the file's atime, then every write bit is cleared, which commits
//! it. The storage then refuses to change or remove the file until that time. That VAST follows
//! this convention is an assumption to check on a real cluster (docs/worm.md).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use rustix::fs::{utimensat, AtFlags, Timespec, Timestamps, CWD};

use crate::error::{Error, Result};
use crate::store::RetentionLock;

/// Commit `path` to WORM until `until` (seconds since the epoch): atime first, then read-only.
/// On a file already locked, a later time extends the lock.
pub fn lock(path: &Path, until: u64) -> Result<()> {
    let md = std::fs::metadata(path).map_err(|e| Error::io(format!("stat {}", path.display()), e))?;
    if current(&md).is_some_and(|t| t >= until) {
        return Ok(());
    }
    let times = Timestamps {
        last_access: Timespec { tv_sec: until as i64, tv_nsec: 0 },
        // Keep the modification time as it is.
        last_modification: Timespec { tv_sec: 0, tv_nsec: rustix::fs::UTIME_OMIT },
    };
    utimensat(CWD, path, &times, AtFlags::empty()).map_err(|e| {
        Error::io(format!("setting the retention time (atime) of {}", path.display()), e.into())
    })?;
    let mode = md.permissions().mode();
    if mode & 0o222 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & !0o222))
            .map_err(|e| Error::io(format!("committing {} to WORM (chmod -w)", path.display()), e))?;
    }
    Ok(())
}

/// The retention time of a committed file: its atime, when no write bit is set.
pub fn current(md: &std::fs::Metadata) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    (md.permissions().mode() & 0o222 == 0).then(|| md.atime().max(0) as u64)
}

/// The lock on a committed file, judged by this host's clock (the filer's decides).
pub fn lock_of(md: &std::fs::Metadata) -> Option<RetentionLock> {
    current(md).map(|until| RetentionLock { until, active: until > crate::util::now_secs() })
}
