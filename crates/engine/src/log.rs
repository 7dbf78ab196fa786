//! The plug-in log: one file, shared by every NetBackup process that loads the plug-in
//! (bptm, bpdm, bpstsinfo), so each line carries the time, the pid and the level. Nothing is
//! ever written to stdout or stderr: those belong to the host.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock};

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::prelude::*;
use tracing_subscriber::reload;

use serde::Deserialize;

/// How much the plug-in logs (`[log] level`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

/// Where log lines go when the configured file cannot be opened.
pub const FALLBACK_LOG: &str = "/tmp/vast-ost.log";

struct LogState {
    /// Read-locked only to clone the Arc: lines are written outside any lock (one `write` on
    /// an O_APPEND file), so a thread writing at the moment of `fork` cannot leave the child
    /// unable to log.
    file: RwLock<Option<Arc<(PathBuf, File)>>>,
    level: reload::Handle<LevelFilter, tracing_subscriber::Registry>,
}

static STATE: OnceLock<LogState> = OnceLock::new();

/// Point the log at `path` with `level`. The first call installs the subscriber; later calls
/// (a config reload, a second `stspi_init`) only move the file and change the level.
pub fn init(path: &Path, level: LogLevel) {
    let state = STATE.get_or_init(|| {
        let (filter, handle) = reload::Layer::new(to_filter(level));
        let fmt = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_target(false)
            .with_timer(TimePid)
            .with_writer(|| LogWriter);
        let _ =
            tracing::subscriber::set_global_default(tracing_subscriber::registry().with(filter).with(fmt));
        LogState { file: RwLock::new(None), level: handle }
    });
    let _ = state.level.modify(|f| *f = to_filter(level));
    if current_path().as_deref() == Some(path) {
        return;
    }
    let opened = open(path)
        .map(|f| (path.to_path_buf(), f))
        .or_else(|| open(Path::new(FALLBACK_LOG)).map(|f| (PathBuf::from(FALLBACK_LOG), f)));
    *state.file.write().unwrap_or_else(|p| p.into_inner()) = opened.map(Arc::new);
    banner::moved();
}

fn current() -> Option<Arc<(PathBuf, File)>> {
    STATE.get().and_then(|s| s.file.read().unwrap_or_else(|p| p.into_inner()).clone())
}

fn open(path: &Path) -> Option<File> {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    use std::os::unix::fs::OpenOptionsExt;
    // Not through a symlink (the fallback is in /tmp), and not readable by everyone.
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .ok()
}

/// The file the log is written to now, if any.
pub fn current_path() -> Option<PathBuf> {
    current().map(|f| f.0.clone())
}

fn to_filter(level: LogLevel) -> LevelFilter {
    match level {
        LogLevel::Error => LevelFilter::ERROR,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Trace => LevelFilter::TRACE,
    }
}

/// Timestamp plus pid: several processes share the file, and a child keeps writing after fork.
struct TimePid;

impl FormatTime for TimePid {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        tracing_subscriber::fmt::time::SystemTime.format_time(w)?;
        write!(w, " pid={}", crate::util::pid())
    }
}

/// Each event is formatted whole and handed over in one `write`, so lines from several
/// threads and processes (O_APPEND) never interleave.
struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(f) = current() {
            banner::before_first_line(&f.1);
            let _ = (&f.1).write_all(&one_line(buf));
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One event is one line: a caller's string with a newline or carriage return in it (an image
/// name, a session id) must not start a line of its own that could pass for a log entry.
fn one_line(buf: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let body = buf.strip_suffix(b"\n").unwrap_or(buf);
    if !body.iter().any(|&b| b == b'\n' || b == b'\r') {
        return std::borrow::Cow::Borrowed(buf);
    }
    let mut out = Vec::with_capacity(buf.len() + 8);
    for &b in body {
        match b {
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
    out.push(b'\n');
    std::borrow::Cow::Owned(out)
}

/// The first line each process writes to a log file names the build (a forked child's too):
/// `<time> pid=<pid>  INFO vast-ost 0.1.0 (git …, …) in <program>`, whatever the level.
mod banner {
    use std::io::Write;
    use std::sync::atomic::{AtomicU32, Ordering};

    use tracing_subscriber::fmt::format::Writer;
    use tracing_subscriber::fmt::time::FormatTime;

    /// The process that wrote the banner to the current file (0: nobody yet).
    static WRITTEN_BY: AtomicU32 = AtomicU32::new(0);

    /// The log now goes to another file: it gets a banner too.
    pub(super) fn moved() {
        WRITTEN_BY.store(0, Ordering::Relaxed);
    }

    pub(super) fn before_first_line(mut file: &std::fs::File) {
        let pid = rustix::process::getpid().as_raw_nonzero().get() as u32;
        if WRITTEN_BY.swap(pid, Ordering::Relaxed) == pid {
            return;
        }
        let mut time = String::new();
        let _ = tracing_subscriber::fmt::time::SystemTime.format_time(&mut Writer::new(&mut time));
        let exe = std::env::current_exe().ok();
        let program =
            exe.as_ref().and_then(|e| e.file_name()).map(|n| n.to_string_lossy()).unwrap_or_default();
        let line = format!("{time} pid={pid}  INFO {} in {program}\n", crate::version::describe());
        let _ = file.write_all(line.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn embedded_newlines_are_escaped() {
        assert_eq!(&*super::one_line(b"a b\n"), b"a b\n");
        assert_eq!(&*super::one_line(b"a\nforged\r\n"), b"a\\nforged\\r\n");
    }
}
