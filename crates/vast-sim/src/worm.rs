//! Retention locks (WORM), held and enforced by the simulator the way a WORM-enabled VAST view
//! does: S3 Object Lock on buckets whose view has `locking` (PutObjectRetention,
//! GetObjectRetention, `default_retention_period`), and refusal of every delete or overwrite of
//! a locked object. A COMPLIANCE lock is never shortened; a GOVERNANCE one is not shortened
//! either (the simulator has no bypass permission). Time is the simulator's clock: real time
//! plus an offset tests advance ([`crate::Sim::advance_clock`]), so a lock can run out in a
//! test. Locks are kept in memory by path (the shared namespace), so a lock set through S3
//! also holds for anything that goes through the simulator. Files locked over NFS are not
//! enforced (a user-space simulator cannot refuse a local unlink): a known gap, docs/worm.md.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Governance,
    Compliance,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "GOVERNANCE" => Some(Mode::Governance),
            "COMPLIANCE" => Some(Mode::Compliance),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Governance => "GOVERNANCE",
            Mode::Compliance => "COMPLIANCE",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lock {
    /// Seconds since the epoch, by the simulator's clock.
    pub until: u64,
    pub mode: Mode,
}

/// Why a lock was not changed.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The new time is earlier than the lock's.
    Shorten,
    /// A COMPLIANCE lock cannot become GOVERNANCE.
    Weaken,
}

#[derive(Default)]
pub struct Worm {
    offset: AtomicI64,
    locks: Mutex<HashMap<PathBuf, Lock>>,
}

impl Worm {
    /// The simulator's clock, seconds since the epoch.
    pub fn now(&self) -> u64 {
        let real = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
        (real + self.offset.load(Ordering::Relaxed)).max(0) as u64
    }

    pub fn advance(&self, secs: i64) {
        self.offset.fetch_add(secs, Ordering::Relaxed);
    }

    fn locks(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Lock>> {
        self.locks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The lock on `path`, run out or not.
    pub fn lock_of(&self, path: &Path) -> Option<Lock> {
        self.locks().get(path).copied()
    }

    /// The lock on `path` while it holds.
    pub fn active(&self, path: &Path) -> Option<Lock> {
        self.lock_of(path).filter(|l| l.until > self.now())
    }

    /// Set or extend the lock on `path`.
    pub fn set(&self, path: &Path, lock: Lock) -> Result<(), Refusal> {
        let now = self.now();
        let mut g = self.locks();
        if let Some(old) = g.get(path).filter(|l| l.until > now) {
            if lock.until < old.until {
                return Err(Refusal::Shorten);
            }
            if old.mode == Mode::Compliance && lock.mode == Mode::Governance {
                return Err(Refusal::Weaken);
            }
        }
        g.insert(path.to_path_buf(), lock);
        Ok(())
    }

    /// Forget the lock of a path that is gone (after its lock ran out).
    pub fn forget(&self, path: &Path) {
        self.locks().remove(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_extend_never_shorten_and_run_out_with_the_clock() {
        let w = Worm::default();
        let p = Path::new("/x");
        let now = w.now();
        assert_eq!(w.set(p, Lock { until: now + 100, mode: Mode::Compliance }), Ok(()));
        assert_eq!(w.set(p, Lock { until: now + 50, mode: Mode::Compliance }), Err(Refusal::Shorten));
        assert_eq!(w.set(p, Lock { until: now + 200, mode: Mode::Governance }), Err(Refusal::Weaken));
        assert_eq!(w.set(p, Lock { until: now + 200, mode: Mode::Compliance }), Ok(()));
        assert!(w.active(p).is_some());
        w.advance(201);
        assert!(w.active(p).is_none());
        // A lock that ran out binds nothing: a shorter, weaker one may follow.
        assert_eq!(w.set(p, Lock { until: w.now() + 10, mode: Mode::Governance }), Ok(()));
    }
}
