//! The threads that run replication jobs, and what this process knows of the jobs it runs.
//! A fixed pool of [`super::WORKERS`] threads, started at the first job; a forked child (whose
//! copy of the threads does not exist) starts its own.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tracing::error;

use super::{Phase, Status, WORKERS};

type Task = Box<dyn FnOnce() + Send>;

static POOL: Mutex<Option<(u32, Sender<Task>)>> = Mutex::new(None);

/// Run `task` on the pool.
pub fn submit(task: Task) {
    let mut g = POOL.lock().unwrap_or_else(|p| p.into_inner());
    let me = std::process::id();
    if g.as_ref().map(|(pid, _)| *pid) != Some(me) {
        let (tx, rx) = channel::<Task>();
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..WORKERS {
            let rx = rx.clone();
            let spawned =
                std::thread::Builder::new().name(format!("vast-ost-air-{n}")).spawn(move || worker(&rx));
            if let Err(e) = spawned {
                error!("cannot start replication worker {n}: {e}");
            }
        }
        *g = Some((me, tx));
    }
    if let Some((_, tx)) = g.as_ref() {
        let _ = tx.send(task);
    }
}

fn worker(rx: &Mutex<Receiver<Task>>) {
    loop {
        let task = match rx.lock().unwrap_or_else(|p| p.into_inner()).recv() {
            Ok(t) => t,
            Err(_) => return,
        };
        // A panic in one job must not take the worker (and every later job) with it.
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(task)).is_err() {
            error!("a replication job panicked");
        }
    }
}

/// Bumped by [`pause_all`]: jobs registered under an earlier value stop at their next step.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// A job this process runs: its status as it goes, and the cancel request.
pub struct Local {
    pub cancel: AtomicBool,
    /// The [`GENERATION`] it was registered under.
    generation: u64,
    /// Another process runs the job after all: waiters go to its record.
    detached: AtomicBool,
    status: Mutex<Status>,
    cv: Condvar,
}

impl Local {
    pub fn set(&self, st: Status) {
        *self.status.lock().unwrap_or_else(|p| p.into_inner()) = st;
        self.cv.notify_all();
    }

    pub fn progress(&self, bytes: u64) {
        self.status.lock().unwrap_or_else(|p| p.into_inner()).bytes_done = bytes;
    }

    pub fn status(&self) -> Status {
        self.status.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The plug-in is terminating: stop at the next step and leave the job resumable.
    pub fn paused(&self) -> bool {
        GENERATION.load(Ordering::Acquire) != self.generation
    }

    pub fn detached(&self) -> bool {
        self.detached.load(Ordering::Acquire)
    }

    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Acquire)
    }

    /// The status once the job is no longer running here, or at `deadline`.
    pub fn wait_until(&self, deadline: Instant) -> Status {
        let mut g = self.status.lock().unwrap_or_else(|p| p.into_inner());
        while g.phase == Phase::Running && !self.detached.load(Ordering::Acquire) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            g = self.cv.wait_timeout(g, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
        }
        g.clone()
    }
}

type Registry = HashMap<String, Arc<Local>>;

static JOBS: Mutex<Option<(u32, Registry)>> = Mutex::new(None);

fn with_jobs<T>(f: impl FnOnce(&mut Registry) -> T) -> T {
    let mut g = JOBS.lock().unwrap_or_else(|p| p.into_inner());
    let me = std::process::id();
    if g.as_ref().map(|(pid, _)| *pid) != Some(me) {
        // A forked child runs none of its parent's jobs.
        *g = Some((me, HashMap::new()));
    }
    f(&mut g.as_mut().expect("set above").1)
}

/// The job `opid` if this process runs it now.
pub fn running(opid: &str) -> Option<Arc<Local>> {
    with_jobs(|m| m.get(opid).filter(|l| l.status().phase == Phase::Running).cloned())
}

/// Register `opid` to run here, unless it already does; `None` then.
pub fn register(opid: &str, st: Status) -> Option<Arc<Local>> {
    with_jobs(|m| {
        if m.get(opid).is_some_and(|l| l.status().phase == Phase::Running) {
            return None;
        }
        let l = Arc::new(Local {
            cancel: AtomicBool::new(false),
            generation: GENERATION.load(Ordering::Acquire),
            detached: AtomicBool::new(false),
            status: Mutex::new(st),
            cv: Condvar::new(),
        });
        m.insert(opid.to_string(), l.clone());
        Some(l)
    })
}

/// Forget `opid` here (another process runs it), waking its waiters.
pub fn forget(opid: &str) {
    if let Some(l) = with_jobs(|m| m.remove(opid)) {
        l.detached.store(true, Ordering::Release);
        let _g = l.status.lock().unwrap_or_else(|p| p.into_inner());
        l.cv.notify_all();
    }
}

/// Stop every job of this process at its next step (the last `stspi_terminate`: no thread
/// may run the plug-in's code once NetBackup may unload it), each leaving its record
/// resumable by any process; wait up to `timeout` for them. Returns how many still run.
pub fn pause_all(timeout: Duration) -> usize {
    GENERATION.fetch_add(1, Ordering::AcqRel);
    let deadline = Instant::now() + timeout;
    loop {
        let n = with_jobs(|m| m.values().filter(|l| l.status().phase == Phase::Running).count());
        if n == 0 || Instant::now() >= deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
