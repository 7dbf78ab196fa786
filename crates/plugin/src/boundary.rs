//! The one panic boundary every export goes through, and the one place failures are logged.

use std::cell::RefCell;
use std::ffi::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};

use ost_abi::{STS_EOK, STS_EPLUGIN};
use tracing::{debug, error};
use vast_ost_engine::{ErrorKind, Result};

/// What a call was working on, filled in as handles are resolved, so the log line of a
/// failure names the server, LSU and image an admin can match to a NetBackup job.
#[derive(Default)]
pub struct Ctx {
    pub server: String,
    pub lsu: String,
    pub image: String,
}

impl Ctx {
    /// `server=… lsu=… image=…`, leaving out what the call did not get to.
    fn describe(&self) -> String {
        let mut out = String::new();
        for (k, v) in [("server", &self.server), ("lsu", &self.lsu), ("image", &self.image)] {
            if !v.is_empty() {
                out.push_str(&format!(" {k}={v}"));
            }
        }
        out
    }

    pub fn set(&mut self, server: &str, lsu: &str, image: &str) {
        self.server = server.to_string();
        self.lsu = lsu.to_string();
        self.image = image.to_string();
    }
}

thread_local! {
    static IN_PANIC_OP: RefCell<&'static str> = const { RefCell::new("") };
}

/// Run `f` for export `op`: `Ok` is STS_EOK, an error is logged once and its status returned,
/// a panic is caught, logged and returned as STS_EPLUGIN. Nothing unwinds into the host.
pub fn run(op: &'static str, f: impl FnOnce(&mut Ctx) -> Result<()>) -> c_int {
    let mut ctx = Ctx::default();
    match catch_unwind(AssertUnwindSafe(|| {
        IN_PANIC_OP.with(|o| *o.borrow_mut() = op);
        f(&mut ctx)
    })) {
        Ok(Ok(())) => STS_EOK,
        Ok(Err(e)) => {
            let status = e.status();
            match e.kind() {
                // Expected answers, not failures.
                ErrorKind::NoMoreEntries | ErrorKind::NotClaimed => {
                    debug!("{op}{} status={status}: {e}", ctx.describe())
                }
                _ => error!("{op}{} status={status}: {e}", ctx.describe()),
            }
            status
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            error!("{op}{} status={STS_EPLUGIN}: internal error (panic): {what}", ctx.describe());
            STS_EPLUGIN
        }
    }
}

/// Panics are reported by [`run`] in the plug-in log; the default hook would print to the
/// host's stderr. The hook belongs to the plug-in's own copy of std, not the host's.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let op = IN_PANIC_OP.with(|o| *o.borrow());
        let at = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        error!(op, "panic at {at}");
    }));
}

/// Every export is written as `ffi! { "name", |ctx| { body } }`. The body is safe code: what
/// reads a host pointer goes through a `convert` helper in an `unsafe` block of its own, with
/// its `SAFETY` note, so the compiler reviews everything else.
macro_rules! ffi {
    ($op:literal, |$ctx:ident| $body:block) => {
        $crate::boundary::run($op, |$ctx: &mut $crate::boundary::Ctx| -> vast_ost_engine::Result<()> {
            $body
        })
    };
}
pub(crate) use ffi;
