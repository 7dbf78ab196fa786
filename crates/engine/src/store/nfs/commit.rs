//! How a record (an image's manifest, a shared piece's reference record) is committed on a
//! shared file system: written to a temp file and fsync'ed, then linked (exclusive create) or
//! renamed (replace) into place under a lock file that makes read-compare-rename one step
//! across media servers, then the directory is fsync'ed.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind as IoKind, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};

/// The lock file of record `name` (`.manifest.lock` for the manifest) that makes
/// read-compare-rename one step across media servers (O_EXCL create is atomic over NFS v3/v4
/// too).
pub fn lock_name(name: &str) -> String {
    format!(".{name}.lock")
}
/// A lock older than this was left by a process that died holding it.
const STALE_LOCK: Duration = Duration::from_secs(30);

/// Run `f` holding the lock of record `name` in image directory `dir`.
pub fn with_lock<T>(dir: &Path, name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let lock = dir.join(lock_name(name));
    let start = Instant::now();
    loop {
        match OpenOptions::new().write(true).create_new(true).open(&lock) {
            Ok(_) => break,
            Err(e) if e.kind() == IoKind::AlreadyExists => {
                let age =
                    fs::metadata(&lock).ok().and_then(|m| m.modified().ok()).and_then(|t| t.elapsed().ok());
                if age.is_some_and(|a| a > STALE_LOCK) {
                    let _ = fs::remove_file(&lock);
                    continue;
                }
                if start.elapsed() > STALE_LOCK + Duration::from_secs(5) {
                    return Err(Error::new(
                        ErrorKind::Busy,
                        format!("{} is held for too long", lock.display()),
                    ));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(Error::io(format!("locking {}", lock.display()), e)),
        }
    }
    let res = f();
    let _ = fs::remove_file(&lock);
    res
}

/// Write `bytes` to a new temp file for record `name` in `dir` and make it durable.
pub fn write_temp(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf> {
    let tmp = dir.join(format!(".{name}.{}.tmp", crate::util::random_id()));
    let res = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    res.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io(format!("writing {}", tmp.display()), e)
    })?;
    Ok(tmp)
}

pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("fsync directory {}", dir.display()), e))
}

/// Record `name` in `dir`, `None` when there is none.
pub fn read_current(dir: &Path, name: &str) -> Result<Option<Vec<u8>>> {
    match fs::read(dir.join(name)) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == IoKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("reading {name} in {}", dir.display()), e)),
    }
}
