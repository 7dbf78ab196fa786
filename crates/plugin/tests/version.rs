//! Which build is installed, told three ways that agree: `libstspiVastDataMT.so -version` (the
//! shared object run as a program), `stspi_get_plugin_info`, and the first line each process
//! writes to the plug-in log (a forked child's too).

mod common;

use std::process::Command;

use common::*;
use vast_ost_engine::version;
use vast_ost_host::{get_str, Plugin};

fn run_so(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(plugin_path()).args(args).output().expect("running the .so as a program");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

#[test]
fn the_shared_object_runs_and_says_its_version() {
    let (code, out, err) = run_so(&["-version"]);
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    assert_eq!(out.lines().next(), Some(version::describe().as_str()), "{out}");
    // The same fields as bpstsinfo -pi / vast-ost plugin-info, from the same library by dlopen.
    let p = Plugin::load(&plugin_path()).unwrap();
    let i = p.plugin_info().unwrap();
    for line in [
        format!("Plugin Name: {}", get_str(&i.pi_name)),
        format!("Prefix: {}", get_str(&i.pi_prefix)),
        format!("Label: {}", get_str(&i.pi_label)),
        format!("Build Version: {}", i.pi_build_version),
        format!("Build Version Minor: {}", i.pi_build_version_minor),
        format!("Operating Version: {}", i.pi_operating_version),
        format!("Vendor Version: {}", get_str(&i.pi_vendor_version)),
        format!("Build: {}", version::BUILD),
    ] {
        assert!(out.lines().any(|l| l == line), "-version lacks {line:?}:\n{out}");
    }
    assert!(get_str(&i.pi_label).ends_with(version::BUILD));
    assert_eq!(get_str(&i.pi_vendor_version), version::VENDOR_VERSION);
    // Loaded by dlopen, the library still works: init and a claim.
    p.init().unwrap();
    p.claim("VastData:x").unwrap();
    p.terminate().unwrap();
}

#[test]
fn help_says_what_it_is_and_bad_options_fail() {
    let (code, out, _) = run_so(&["-help"]);
    assert_eq!(code, 0);
    assert!(out.contains("OpenStorage") && out.contains("NetBackup") && out.contains("-version"), "{out}");
    let (code, out, err) = run_so(&["-frobnicate"]);
    assert_eq!((code, out.as_str()), (2, ""));
    assert!(err.contains("unknown option \"-frobnicate\""), "{err}");
}

/// The first line of every process in the log (and of a forked child, whose pid differs) names
/// the version and build, whatever the configured level.
#[test]
fn first_log_line_of_each_process_names_the_build() {
    let dir = tempfile::tempdir().unwrap();
    let (config, log, mount) = (dir.path().join("c.toml"), dir.path().join("v.log"), dir.path().join("m"));
    std::fs::create_dir_all(&mount).unwrap();
    write_config(&config, &mount, "");
    let text = std::fs::read_to_string(&config).unwrap().replace("level = \"debug\"", "level = \"error\"");
    std::fs::write(&config, text).unwrap();
    let p = load_plugin(&config, &log);
    p.open_server("VastData:nowhere", "", "").unwrap_err();
    let child = fork_child(|| i32::from(p.open_server("VastData:nowhere", "", "").is_ok()));
    assert!(wait_child(child, std::time::Duration::from_secs(30)).is_some_and(exited_ok));
    p.terminate().unwrap();

    let log = std::fs::read_to_string(&log).unwrap();
    let banner = format!("INFO {} in ", version::describe());
    for pid in [std::process::id(), child as u32] {
        let first = log.lines().find(|l| l.contains(&format!(" pid={pid} "))).unwrap_or_else(|| {
            panic!("no line of pid {pid} in the log:\n{log}");
        });
        assert!(first.contains(&banner), "first line of pid {pid} is not the banner: {first}\n{log}");
    }
    assert_eq!(log.matches(&banner).count(), 2, "one banner per process:\n{log}");
    assert!(!log.contains("plug-in initialised"), "level error hides info lines but the banner:\n{log}");
}
