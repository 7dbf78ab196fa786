//! Running what is measured: one or several processes started together, timed from the first
//! start to the last exit, each one's user + system CPU and peak RSS taken from `wait4` (the
//! kernel's account, children it waited for included), so the plug-in (inside the `vast-ost`
//! process) and every peer are counted the same way.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Seek};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

/// A run of one contender that takes longer is killed and reported failed (a hung peer must
/// not hang the bench).
const RUN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(600);

/// One process to run.
#[derive(Clone, Debug)]
pub struct Cmd {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub env: Vec<(String, OsString)>,
}

impl Cmd {
    pub fn new(program: impl Into<PathBuf>) -> Cmd {
        Cmd { program: program.into(), args: Vec::new(), env: Vec::new() }
    }

    pub fn arg(mut self, a: impl Into<OsString>) -> Cmd {
        self.args.push(a.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, a: I) -> Cmd {
        self.args.extend(a.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, k: &str, v: impl Into<OsString>) -> Cmd {
        self.env.push((k.to_string(), v.into()));
        self
    }

    /// `sh -c SCRIPT` (pipelines: the shell waits for every stage, so their CPU is counted).
    pub fn shell(script: &str) -> Cmd {
        Cmd::new("/bin/sh").arg("-c").arg(script)
    }

    /// The command line, for error messages and the report.
    pub fn show(&self) -> String {
        let mut s = self.program.display().to_string();
        for a in &self.args {
            s.push(' ');
            s.push_str(&a.to_string_lossy());
        }
        s
    }

    fn spawn(&self) -> Result<(Child, File)> {
        let err = tempfile::tempfile().context("creating a temporary file for stderr")?;
        let mut c = Command::new(&self.program);
        c.args(&self.args).stdin(Stdio::null()).stderr(err.try_clone()?);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        // What is read goes nowhere: a sink for every contender alike.
        c.stdout(Stdio::null());
        let child = c.spawn().with_context(|| format!("starting {}", self.show()))?;
        // stderr is read back only when the process fails.
        Ok((child, err))
    }
}

/// What one run of a job cost.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Sample {
    /// Seconds from the first start to the last exit.
    pub wall: f64,
    /// User + system CPU-seconds of every process (and the children each waited for).
    pub cpu: f64,
    /// Largest peak resident set of the processes, KiB.
    pub rss_kib: u64,
    /// CPU-seconds the storage server's processes (`--server-pids`) spent meanwhile.
    pub server_cpu: Option<f64>,
}

/// Run `cmds` at once and wait for all; any failure is an error with that process's stderr.
pub fn run(cmds: &[Cmd]) -> Result<Sample> {
    let start = Instant::now();
    let mut children = Vec::new();
    for c in cmds {
        children.push((c, c.spawn()?));
    }
    // A contender that hangs is killed at the deadline and its run reported failed.
    let pids: Vec<i32> = children.iter().map(|(_, (c, _))| c.id() as i32).collect();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watchdog = {
        let done = done.clone();
        std::thread::spawn(move || {
            let until = Instant::now() + RUN_DEADLINE;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if Instant::now() > until {
                    for p in &pids {
                        // SAFETY: plain kill(2) of our own children, not yet reaped.
                        unsafe { libc::kill(*p, libc::SIGKILL) };
                    }
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        })
    };
    let mut s = Sample::default();
    let mut failed = None;
    for (cmd, (child, mut err)) in children {
        let (status, usage) = wait4(child.id() as i32)?;
        let took = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        s.cpu += took(usage.ru_utime) + took(usage.ru_stime);
        s.rss_kib = s.rss_kib.max(usage.ru_maxrss as u64);
        if status != 0 && failed.is_none() {
            let mut text = String::new();
            let _ = err.rewind().and_then(|()| err.read_to_string(&mut text));
            let tail: Vec<&str> = text.lines().rev().take(5).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            failed = Some(format!("{} exited with status {status}: {}", cmd.show(), tail.join(" | ")));
        }
    }
    s.wall = start.elapsed().as_secs_f64();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = watchdog.join();
    if s.wall > RUN_DEADLINE.as_secs_f64() {
        bail!(
            "killed after {} s: {}",
            RUN_DEADLINE.as_secs(),
            cmds.iter().map(Cmd::show).collect::<Vec<_>>().join(" & ")
        );
    }
    if let Some(f) = failed {
        bail!(f);
    }
    Ok(s)
}

/// Run one command, untimed (setup and teardown steps).
pub fn run_quiet(cmd: &Cmd) -> Result<()> {
    run(std::slice::from_ref(cmd)).map(drop)
}

/// Wait for `pid` and take its exit status and resource usage.
fn wait4(pid: i32) -> Result<(i32, libc::rusage)> {
    // SAFETY: a zeroed rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let mut status = 0;
    loop {
        // SAFETY: pid is our child; status and usage point to live locals.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e).context("waiting for a measured process");
        }
    }
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 128 + libc::WTERMSIG(status) };
    Ok((code, usage))
}

/// User + system CPU-seconds that the processes `pids` (every thread) have spent so far, from
/// `/proc/PID/stat`; None without pids or when one is gone (a run across a server restart
/// has no server figure).
pub fn cpu_of(pids: &[i32]) -> Option<f64> {
    if pids.is_empty() {
        return None;
    }
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    pids.iter().try_fold(0.0, |sum, pid| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command name (which may hold spaces, so after its closing
        // parenthesis): state is the 1st, utime the 12th, stime the 13th.
        let rest = &stat[stat.rfind(')')? + 1..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
        Some(sum + ticks as f64 / tick)
    })
}

/// Median, lowest and highest of `v` (not empty).
pub fn stats(v: &[f64]) -> (f64, f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    let med = if n % 2 == 1 { s[n / 2] } else { (s[n / 2 - 1] + s[n / 2]) / 2.0 };
    (med, s[0], s[n - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_cpu_of_the_process_and_what_it_waited_for() {
        // A shell that burns CPU in a child it waits for.
        let s = run(&[Cmd::shell("i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done")]).unwrap();
        assert!(s.cpu > 0.01 && s.wall >= s.cpu * 0.5, "{s:?}");
        assert!(s.rss_kib > 0);
        let e = run(&[Cmd::shell("echo oops >&2; exit 3")]).unwrap_err().to_string();
        assert!(e.contains("status 3") && e.contains("oops"), "{e}");
        assert_eq!(stats(&[3.0, 1.0, 2.0]), (2.0, 1.0, 3.0));
        assert_eq!(stats(&[4.0, 1.0]).0, 2.5);
    }

    #[test]
    fn server_cpu_is_read_from_proc() {
        assert_eq!(cpu_of(&[]), None);
        assert_eq!(cpu_of(&[i32::MAX]), None, "a process that is gone has no figure");
        // A child that burns CPU: its account grows while it runs.
        let mut child = Command::new("/bin/sh").arg("-c").arg("while :; do :; done").spawn().unwrap();
        let pid = child.id() as i32;
        let first = cpu_of(&[pid]).unwrap();
        let start = Instant::now();
        while cpu_of(&[pid]).unwrap() < first + 0.05 && start.elapsed().as_secs() < 20 {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let later = cpu_of(&[pid]).unwrap();
        let with_us = cpu_of(&[pid, std::process::id() as i32]).unwrap();
        let _ = child.kill();
        let _ = child.wait();
        assert!(later >= first + 0.05, "{first} -> {later}");
        assert!(with_us >= later, "the processes' figures add up");
    }
}
