//! The C host harness: `tests/c/*.c` compiled against the checked-in headers, run against the
//! built `libstspiVastDataMT.so` the way NetBackup's processes use it (dlopen, dlsym, the
//! stspi_* calls of discovery, backup, checkpoint restart, restore, listing, duplication,
//! expiry, and a table of bad inputs). See the comment at the top of `tests/c/harness.c`.
//!
//! The plug-in is found beside the test binary's directory (`target/debug/`, test binaries
//! live in `target/debug/deps/`): run `cargo build` first.
//!
//! The harness is compiled and run once; the tests below each judge one aspect of that run.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const LIBRARY: &str = "libstspiVastDataMT.so";
const SERVER: &str = "VastData:testcluster";
/// The harness takes well under a second on a 2-core machine; this only stops a hang.
const TIMEOUT: Duration = Duration::from_secs(180);

fn repo_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// `<target dir>/debug/libstspiVastDataMT.so`, from this binary's place in `<target>/debug/deps/`.
fn plugin_path() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir =
        exe.parent().and_then(Path::parent).expect("test binary is in <target>/<profile>/deps/");
    let so = profile_dir.join(LIBRARY);
    assert!(so.is_file(), "{} is missing: run `cargo build` first", so.display());
    warn_if_stale(&so);
    so
}

/// `cargo test` does not rebuild the cdylib: say so when a source is newer than the library.
fn warn_if_stale(so: &Path) {
    fn newest(dir: &Path, acc: &mut Option<(std::time::SystemTime, PathBuf)>) {
        for e in fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                newest(&p, acc);
            } else if let Ok(t) = e.metadata().and_then(|m| m.modified()) {
                if !matches!(acc, Some((a, _)) if *a >= t) {
                    *acc = Some((t, p));
                }
            }
        }
    }
    let Ok(built) = fs::metadata(so).and_then(|m| m.modified()) else {
        return;
    };
    let mut acc = None;
    for dir in ["crates/plugin/src", "crates/engine/src", "crates/ost-abi/src"] {
        newest(&repo_root().join(dir), &mut acc);
    }
    if let Some((t, p)) = acc {
        if t > built {
            eprintln!(
                "warning: {} is newer than {}: the harness tests the old build (run `cargo build`)",
                p.display(),
                so.display()
            );
        }
    }
}

/// The exports of the plug-in: the header's `int stspi_*(` prototypes.
const N_EXPORTS: usize = 41;

/// The `N_EXPORTS` `int stspi_*(` prototypes of the checked-in header.
fn header_functions() -> Vec<String> {
    let header = repo_root().join("include/stspi_vastdata.h");
    let text = fs::read_to_string(&header).unwrap_or_else(|e| panic!("{}: {e}", header.display()));
    let names: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("int "))
        .filter_map(|l| l.split('(').next())
        .map(str::trim)
        .filter(|n| n.starts_with("stspi_"))
        .map(str::to_string)
        .collect();
    assert_eq!(
        names.len(),
        N_EXPORTS,
        "expected {N_EXPORTS} stspi_* prototypes in {}: {names:?}",
        header.display()
    );
    names
}

struct Run {
    success: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
    log: String,
}

impl Run {
    fn failures(&self) -> String {
        self.stdout.lines().filter(|l| l.starts_with("FAIL")).collect::<Vec<_>>().join("\n")
    }
    fn summary(&self) -> &str {
        self.stdout.lines().rev().find(|l| l.contains(" passed, ")).unwrap_or("(no summary line)")
    }
}

/// Compile the harness, set up a config with two LSUs, run it once, keep what it said.
fn harness_run() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| {
        let so = plugin_path();
        let tmp = tempfile::Builder::new().prefix("vast-ost-c-harness.").tempdir().expect("temp dir");
        let work = tmp.path();
        let mount = work.join("mnt");
        for lsu in ["lsu1", "lsu2"] {
            fs::create_dir_all(mount.join(lsu)).unwrap();
        }
        let config = work.join("vast-ost.toml");
        let log = work.join("vast-ost.log");
        fs::write(
            &config,
            format!(
                "[log]\nlevel = \"debug\"\n\n[[server]]\nname = \"{SERVER}\"\n[server.nfs]\nmount = \"{}\"\ndirect_io = \"auto\"\n",
                mount.display()
            ),
        )
        .unwrap();

        // Compile every C file of tests/c.
        let src_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c");
        let mut sources: Vec<PathBuf> = fs::read_dir(&src_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "c"))
            .collect();
        sources.sort();
        assert!(!sources.is_empty(), "no C files in {}", src_dir.display());
        let exe = work.join("harness");
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let out = Command::new(&cc)
            .args(["-std=c99", "-O2", "-g", "-Wall", "-Wextra", "-Werror"])
            .arg("-I")
            .arg(repo_root().join("include"))
            .args(&sources)
            .arg("-o")
            .arg(&exe)
            .args(["-ldl", "-pthread"])
            .output()
            .unwrap_or_else(|e| panic!("running the C compiler `{cc}`: {e}"));
        assert!(
            out.status.success(),
            "compiling the C harness failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );

        // Run it, with a deadline: a hang in the plug-in must fail the test, not stall it.
        let started = Instant::now();
        let mut child = Command::new(&exe)
            .arg(&so)
            .arg(work)
            .arg(SERVER)
            .env("VAST_OST_CONFIG", &config)
            .env("VAST_OST_LOG", &log)
            .current_dir(work)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running the harness");
        let stdout_pipe = child.stdout.take().unwrap();
        let stderr_pipe = child.stderr.take().unwrap();
        let read_out = std::thread::spawn(move || std::io::read_to_string(stdout_pipe).unwrap_or_default());
        let read_err = std::thread::spawn(move || std::io::read_to_string(stderr_pipe).unwrap_or_default());
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if started.elapsed() > TIMEOUT {
                let _ = child.kill();
                let s = child.wait().unwrap();
                eprintln!("the C harness did not finish within {TIMEOUT:?}: killed");
                break s;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let run = Run {
            success: status.success(),
            code: status.code(),
            stdout: read_out.join().unwrap(),
            stderr: read_err.join().unwrap(),
            log: fs::read_to_string(&log).unwrap_or_default(),
        };
        // Shown with `cargo test -- --nocapture`.
        println!("{}", run.stdout);
        eprintln!("C harness: {} ({:.2?})", run.summary(), started.elapsed());
        run
    })
}

#[test]
fn c_harness_passes() {
    let run = harness_run();
    assert!(
        run.success,
        "the C harness exited with {:?}: {}\n{}\n--- stderr:\n{}\n--- plug-in log (tail):\n{}",
        run.code,
        run.summary(),
        run.failures(),
        run.stderr,
        tail(&run.log, 40)
    );
    let summary = run.summary();
    assert!(summary.ends_with(" passed, 0 failed"), "summary line: {summary}");
    let passed: u32 = summary.split(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(passed >= 500, "only {passed} checks ran: {summary}");
}

/// A refused call is logged with the export's name and the status it returned, so an admin
/// can match a NetBackup job error to a cause.
#[test]
fn plugin_log_names_a_failing_bad_input_call() {
    let run = harness_run();
    let line = run.log.lines().find(|l| {
        l.contains("stspi_create_image") && l.contains("2060105") && l.contains("badinput_complete")
    });
    assert!(
        line.is_some(),
        "no log line for the bad-input row `create_image: image exists` (stspi_create_image, \
         STS_EEXIST 2060105, badinput_complete); log tail:\n{}",
        tail(&run.log, 40)
    );
    for (op, status) in
        [("stspi_open_image", "2060107"), ("stspi_close_server", "2060005"), ("stspi_read_image", "2060101")]
    {
        assert!(
            run.log.lines().any(|l| l.contains(op) && l.contains(status)),
            "no log line with {op} and status {status}"
        );
    }
}

/// The header promises one log line per failure, and every line starts with the time and the
/// pid (several processes share the file). Strings a caller passes (image names, server names,
/// session ids) must not be able to break a line or forge another.
#[test]
fn plugin_log_lines_are_whole() {
    let run = harness_run();
    assert!(!run.log.is_empty(), "the plug-in log is empty");
    let bad: Vec<&str> = run
        .log
        .lines()
        .filter(|l| !l.is_empty())
        .filter(|l| !(looks_like_timestamp(l) && l.contains(" pid=")))
        .collect();
    assert!(
        bad.is_empty(),
        "{} log line(s) do not start with a timestamp and pid (a caller's string split a line):\n{}",
        bad.len(),
        bad.iter().take(10).map(|l| format!("  {l:?}")).collect::<Vec<_>>().join("\n")
    );
}

/// stdout and stderr belong to the host: the plug-in writes only to its log.
#[test]
fn plugin_writes_nothing_to_the_host_streams() {
    let run = harness_run();
    assert!(run.stderr.is_empty(), "stderr of the host is not empty:\n{}", run.stderr);
    let foreign: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| {
            !(l.is_empty()
                || l.starts_with("PASS  ")
                || l.starts_with("FAIL  ")
                || l.starts_with("== ")
                || l.starts_with("      ")
                || l.starts_with('(')
                || l.contains(" passed, "))
        })
        .collect();
    assert!(
        foreign.is_empty(),
        "lines on the host's stdout that the harness did not print:\n{}",
        foreign.join("\n")
    );
}

/// `2026-01-31T12:34:56...`
fn looks_like_timestamp(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 20
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// NetBackup's processes carry their own libraries: the plug-in must export the `N_EXPORTS` functions
/// of its header and nothing else (no Rust std, no bundled C library symbols).
#[test]
fn exports_exactly_the_header_functions() {
    let so = plugin_path();
    let out = match Command::new("nm").args(["-D", "--defined-only"]).arg(&so).output() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("skipping the export check: `nm` not available ({e})");
            return;
        }
    };
    assert!(out.status.success(), "nm failed: {}", String::from_utf8_lossy(&out.stderr));
    let mut exported: Vec<String> = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut f = line.split_whitespace().rev();
        let (Some(name), Some(kind)) = (f.next(), f.next()) else {
            continue;
        };
        // Newer binutils print `name@@VERSION`; the version node itself is an absolute symbol.
        let name = name.split('@').next().unwrap_or(name);
        if kind == "A" && name.bytes().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_') {
            continue;
        }
        exported.push(name.to_string());
    }
    exported.sort();
    exported.dedup();
    let mut want = header_functions();
    want.sort();
    let extra: Vec<_> = exported.iter().filter(|n| !want.contains(n)).collect();
    let missing: Vec<_> = want.iter().filter(|n| !exported.contains(n)).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "{} exports other symbols than the header's {N_EXPORTS} functions:\n  extra: {extra:?}\n  missing: {missing:?}",
        so.display()
    );
}
