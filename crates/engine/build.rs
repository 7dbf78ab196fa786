// Build identity for `version.rs`: the git commit and its date, the target, and the oldest glibc
// the binaries need. `scripts/dist` sets every VAST_OST_BUILD_* variable; other builds ask git
// (and say "unknown" without it) and name the build host's glibc, which is their floor.
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}

/// `VAST_OST_BUILD_<name>` if set and not empty, else `fallback()`, else "unknown".
fn value(name: &str, fallback: impl FnOnce() -> Option<String>) -> String {
    let var = format!("VAST_OST_BUILD_{name}");
    println!("cargo:rerun-if-env-changed={var}");
    let v = std::env::var(&var).ok().filter(|v| !v.is_empty()).or_else(fallback);
    let v = v.unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env={var}={v}");
    v
}

fn main() {
    // A new commit changes the hash: rerun when HEAD or the branch it names moves.
    // (Only files that exist: cargo reruns a script whose listed file is missing every time.)
    let branch = git(&["symbolic-ref", "-q", "HEAD"]);
    for path in ["HEAD", "packed-refs"].into_iter().map(String::from).chain(branch) {
        if let Some(p) = git(&["rev-parse", "--git-path", &path]) {
            if std::path::Path::new(&p).exists() {
                println!("cargo:rerun-if-changed={p}");
            }
        }
    }
    value("GIT", || git(&["rev-parse", "--short=12", "HEAD"]));
    // The commit's date, not the clock's: the same commit builds the same bytes.
    value("DATE", || git(&["log", "-1", "--format=%cd", "--date=short"]));
    value("TARGET", || std::env::var("TARGET").ok());
    value("GLIBC", || {
        let out = Command::new("ldd").arg("--version").output().ok()?;
        let first = String::from_utf8(out.stdout).ok()?.lines().next()?.to_string();
        first.rsplit(' ').next().map(|v| format!("{v} (build host)"))
    });
}
