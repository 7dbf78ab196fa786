//! `vast-ost cleanup`: find and remove what writers that died left in an LSU (pieces no
//! manifest names, images without a manifest, pending images whose writer is gone). Not an OST
//! call, so it uses the engine directly, with the plug-in's own config and the same
//! credentials.

use std::path::Path;
use std::time::Duration;

use crate::fmt::utc;
use anyhow::{bail, Context, Result};
use vast_ost_engine::Engine;
use vast_ost_engine::{Credentials, Secret};

pub struct Cleanup<'a> {
    pub config: &'a Path,
    pub server: &'a str,
    pub user: &'a str,
    pub password: &'a str,
    pub lsu: &'a str,
    pub older_than: Duration,
    pub remove: bool,
    pub pending: bool,
}

/// Keys the storage holds under a running retention lock (WORM): not removable before `until`.
fn print_held(held: &[(String, u64)]) {
    for (key, until) in held {
        println!(
            "held by a retention lock until {} ({until}): {key}; a cleanup after then removes it",
            utc(*until)
        );
    }
}

/// `90s`, `30m`, `1h`, `2d`, or plain seconds.
pub fn parse_age(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| format!("'{s}' is not an age like 90s, 30m, 1h or 2d"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("'{s}': the unit must be s, m, h or d")),
    };
    Ok(Duration::from_secs(n.saturating_mul(mult)))
}

pub fn run(c: &Cleanup) -> Result<()> {
    let engine = Engine::new(c.config).with_context(|| format!("loading {}", c.config.display()))?;
    let creds = Credentials { user: c.user.to_string(), password: Secret::new(c.password) };
    let server = engine.open_server(c.server, &creds).with_context(|| format!("opening {}", c.server))?;
    let o = server.find_orphans(c.lsu, c.older_than).with_context(|| format!("scanning LSU {}", c.lsu))?;
    for (image, keys) in &o.without_manifest {
        println!("no manifest   {image}: {} item(s) left by an interrupted create or delete", keys.len());
    }
    for (image, keys) in &o.unreferenced {
        println!("unreferenced  {image}: {}", keys.join(" "));
    }
    for (image, writer) in &o.stale_pending {
        let what = if c.pending {
            "will be deleted"
        } else {
            "kept (NetBackup may resume it; --pending deletes it)"
        };
        println!("stale pending {image}: writer {writer} is gone; {what}");
    }
    print_held(&o.held);
    if o.is_empty() {
        println!("LSU {}: no orphans older than {:?}", c.lsu, c.older_than);
        return Ok(());
    }
    if !c.remove {
        println!("dry run: nothing removed (pass --remove)");
        return Ok(());
    }
    let r = server.remove_orphans(c.lsu, &o, c.pending).context("removing orphans")?;
    if r.items == 0 && r.held.is_empty() && !o.stale_pending.is_empty() && !c.pending {
        bail!("only stale pending images were found; pass --pending to delete them");
    }
    print_held(&r.held);
    println!("removed {} item(s)", r.items);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        assert_eq!(parse_age("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_age("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_age("2d").unwrap(), Duration::from_secs(172_800));
        assert!(parse_age("1w").is_err() && parse_age("h").is_err() && parse_age("").is_err());
    }
}
