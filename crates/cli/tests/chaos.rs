//! A short seeded chaos run in the suite (`vast-ost chaos`; scripts/chaos for the long one):
//! iterations of random NetBackup workloads through the real `.so` under random faults, each
//! checked; a broken promise fails the test with the iteration's seed and replay command.
//! About two minutes on two cores; `VAST_OST_CHAOS_ITERATIONS` changes the count.

use std::path::PathBuf;
use std::process::Command;

fn plugin() -> PathBuf {
    let so = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/libstspiVastDataMT.so");
    assert!(so.exists(), "build the plug-in first: cargo build -p vast-ost-plugin");
    so
}

#[test]
fn a_short_seeded_chaos_run_is_clean() {
    let iterations = std::env::var("VAST_OST_CHAOS_ITERATIONS").unwrap_or_else(|_| "30".into());
    let out = Command::new(env!("CARGO_BIN_EXE_vast-ost"))
        .arg("--plugin")
        .arg(plugin())
        .args(["chaos", "--iterations", &iterations, "--seed", "1414", "--jobs", "2"])
        .env_remove("VAST_OST_CHAOS_PLANT")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "chaos run failed:\n{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("all clean"), "{text}");
    let ok = text.lines().filter(|l| l.starts_with("iteration ") && l.contains(": ok")).count();
    assert_eq!(ok.to_string(), iterations, "{text}");
}
