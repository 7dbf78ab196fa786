//! Fork safety. NetBackup's bptm forks children that go on using the plug-in. A lock held by
//! another thread at the moment of `fork` would stay locked forever in the child, so the locks
//! every call takes (the engine slot and the handle table) are taken by the forking thread
//! before `fork` and released after it, in the parent and in the child (`pthread_atfork`, as
//! glibc does for malloc). std's futex locks are used on purpose: unlocking one in the child
//! only clears its word, where a lock that hands ownership to a waiter (parking_lot) would give
//! it to a parent thread that does not exist in the child. HTTP connections are not shared
//! with a child either: the engine's HTTP agent rebuilds itself in a new process.

use std::cell::RefCell;
use std::sync::{Once, RwLockWriteGuard};

type EngineGuard = RwLockWriteGuard<'static, Option<(std::sync::Arc<vast_ost_engine::Engine>, usize)>>;

thread_local! {
    static ENGINE_HELD: RefCell<Option<EngineGuard>> = const { RefCell::new(None) };
}

extern "C" fn prepare() {
    let g = crate::ENGINE.write().unwrap_or_else(|p| p.into_inner());
    ENGINE_HELD.with(|h| *h.borrow_mut() = Some(g));
    crate::handles::lock_for_fork();
}

extern "C" fn after() {
    crate::handles::unlock_after_fork();
    ENGINE_HELD.with(|h| h.borrow_mut().take());
}

/// In the child: its own pid first (the engine caches it, and the handle table, the HTTP
/// agent and the S3 connection pool judge by it what belongs to this process).
extern "C" fn after_child() {
    vast_ost_engine::util::refresh_pid();
    after();
}

pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: registering plain functions that touch only the plug-in's own locks.
        let rc = unsafe { libc::pthread_atfork(Some(prepare), Some(after), Some(after_child)) };
        if rc != 0 {
            tracing::warn!("pthread_atfork failed ({rc}): using the plug-in in a forked child may hang");
        }
    });
}
