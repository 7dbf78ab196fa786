//! `vast-ost doctor <storage server>`: what `nbdevconfig -teststs` would tell, and which setting
//! to change. The checks run in the order a connection needs them, each later one skipped when
//! one it depends on failed:
//!
//! 1. the plug-in loads (dlopen, as NetBackup does), and its version and build;
//! 2. the config: syntax, a `[[server]]` for the name, the file's permissions;
//! 3. name resolution of the VMS address and the configured S3 endpoints; the NFS mount;
//! 4. TLS to VMS (and https S3 endpoints): the certificate problem in words, with its fix;
//! 5. VMS authentication with the credential form given (password, `token:`, `cert:`);
//! 6. the LSUs the plug-in shows NetBackup, the ones the config names, and their capacity;
//! 7. every data VIP (S3 endpoint) answers on its port;
//! 8. what each bucket's server does with conditional writes and CRC32C;
//! 9. a 1 MiB write, read-back and delete through the plug-in on every LSU.
//!
//! One line per item (`[ OK ]`, `[WARN]`, `[FAIL]`, `[SKIP]`), a `fix:` line under each
//! failure and warning; `--json` prints the same as one JSON document. Exit status 1 when any
//! check failed. The credentials are the ones NetBackup stores with `tpconfig` (pass them as
//! `--user`/`--password` or `VAST_OST_USER`/`VAST_OST_PASSWORD`): tpconfig's store is
//! NetBackup's and not readable here.

mod checks;
mod storage;

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

/// What `doctor` was asked.
pub struct Doctor<'a> {
    pub plugin: &'a Path,
    pub config: PathBuf,
    pub server: &'a str,
    pub user: &'a str,
    pub password: &'a str,
    /// LSUs to check beside those the config names (`lsus`): the ones of a disk pool.
    pub lsus: &'a [String],
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Ok,
    Warn,
    Fail,
    Skip,
}

/// One line of the checklist.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Which check: plugin, config, dns, nfs, tls, auth, lsu, vip, s3, probe.
    pub check: &'static str,
    /// What was checked, for the reader ("TLS to VMS 10.0.0.1:443").
    pub item: String,
    pub state: State,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// The checklist so far.
#[derive(Default)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    fn push(
        &mut self,
        check: &'static str,
        item: impl Into<String>,
        state: State,
        detail: String,
        fix: Option<String>,
    ) {
        self.checks.push(Check { check, item: item.into(), state, detail, fix });
    }
    pub fn ok(&mut self, check: &'static str, item: impl Into<String>, detail: impl Into<String>) {
        self.push(check, item, State::Ok, detail.into(), None);
    }
    pub fn warn(
        &mut self,
        check: &'static str,
        item: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.push(check, item, State::Warn, detail.into(), Some(fix.into()));
    }
    pub fn fail(
        &mut self,
        check: &'static str,
        item: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.push(check, item, State::Fail, detail.into(), Some(fix.into()));
    }
    pub fn skip(&mut self, check: &'static str, item: impl Into<String>, why: impl Into<String>) {
        self.push(check, item, State::Skip, why.into(), None);
    }

    pub fn failures(&self) -> usize {
        self.checks.iter().filter(|c| c.state == State::Fail).count()
    }

    fn warnings(&self) -> usize {
        self.checks.iter().filter(|c| c.state == State::Warn).count()
    }

    /// The checklist as text.
    pub fn render(&self, server: &str) -> String {
        let mut out = format!("vast-ost doctor {server}\n");
        let width = self.checks.iter().map(|c| c.item.len()).max().unwrap_or(0);
        for c in &self.checks {
            let tag = match c.state {
                State::Ok => "[ OK ]",
                State::Warn => "[WARN]",
                State::Fail => "[FAIL]",
                State::Skip => "[SKIP]",
            };
            out.push_str(&format!("{tag} {:width$}  {}\n", c.item, c.detail));
            if let Some(fix) = &c.fix {
                out.push_str(&format!("       fix: {fix}\n"));
            }
        }
        let (f, w) = (self.failures(), self.warnings());
        out.push_str(&match f {
            0 => format!("all checks passed ({w} warning(s))\n"),
            _ => {
                format!("{f} check(s) failed, {w} warning(s): fix the first failure, then run doctor again\n")
            }
        });
        out
    }

    pub fn to_json(&self, server: &str) -> Result<String> {
        let doc = serde_json::json!({ "server": server, "ok": self.failures() == 0, "checks": self.checks });
        Ok(serde_json::to_string_pretty(&doc)?)
    }
}

/// A check failed (the checklist says which): exit status 1, no further message.
#[derive(Debug)]
pub struct Failed;

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a doctor check failed")
    }
}

impl std::error::Error for Failed {}

/// Run every check; prints the checklist (or JSON). Ok(true) when nothing failed.
pub fn run(d: &Doctor) -> Result<bool> {
    let mut r = Report::default();
    checks::all(d, &mut r);
    if d.json {
        println!("{}", r.to_json(d.server)?);
    } else {
        print!("{}", r.render(d.server));
    }
    Ok(r.failures() == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_carry_their_fix_in_text_and_json() {
        let mut r = Report::default();
        r.ok("plugin", "plug-in", "loads");
        r.fail("tls", "TLS to VMS h:443", "unknown CA", "set ca_file");
        r.skip("auth", "VMS login", "TLS failed");
        let text = r.render("VastData:x");
        assert!(text.contains("[FAIL] TLS to VMS h:443  unknown CA\n       fix: set ca_file\n"), "{text}");
        assert!(text.contains("[ OK ] plug-in"), "{text}");
        assert!(
            text.ends_with("1 check(s) failed, 0 warning(s): fix the first failure, then run doctor again\n")
        );
        let j: serde_json::Value = serde_json::from_str(&r.to_json("VastData:x").unwrap()).unwrap();
        assert_eq!(j["ok"], false);
        assert_eq!(j["checks"][1]["state"], "fail");
        assert_eq!(j["checks"][1]["fix"], "set ca_file");
        assert!(j["checks"][0].get("fix").is_none());
    }
}
