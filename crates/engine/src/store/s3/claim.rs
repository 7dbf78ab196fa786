//! Exclusive create and compare-and-swap on S3 servers that ignore conditional writes, built
//! only on what every S3 server gives: strongly consistent PUT, GET, LIST and DELETE of
//! distinct keys. `docs/commit-protocol.md` has the argument; in short:
//!
//! - **Create**: a creator PUTs a claim of its own (`<image>/.<record>.claim.<id>`, a key nobody
//!   else writes), then LISTs the claims. It wins only if its claim is the only one, and keeps it;
//!   otherwise it removes its claim and backs off. Two creators cannot both see only their own
//!   claim: the later PUT of the two comes before its LIST, which then sees the other claim (a
//!   winner never removes its claim). Both may lose a round; they retry after a random pause.
//! - **Replace and delete**: the same with a lease (`<image>/.<record>.lock.<id>`): a committer that
//!   sees no other live lease reads the manifest, compares it with what it expects and writes
//!   the new one, all within half the lease; a lease older than [`LEASE`] by the server's clock
//!   belongs to a process that died and is ignored.

use std::time::{Duration, Instant};

use rusty_s3::Method;
use tracing::debug;

use super::api::{self, Listed, Obj};
use super::client::Req;
use super::Shared;
use crate::error::{Error, ErrorKind, Result};
use crate::layout;
use crate::util;

/// A lease older than this (server clock) is a dead holder's.
pub const LEASE: Duration = Duration::from_secs(60);
/// What a holder may spend of its lease before its last write: the rest is margin.
const CRITICAL: Duration = Duration::from_secs(30);
/// The longest the write under a lease may take (one attempt, no retries).
const WRITE_LIMIT: Duration = Duration::from_secs(15);
/// A creator's claim older than this with no manifest is a dead creator's.
const CLAIM_STALE: Duration = Duration::from_secs(600);
/// How long a creator or committer waits for others before it gives up.
const WAIT: Duration = Duration::from_secs(90);

/// A key no other writer uses, ordered by time for whoever reads a listing.
fn unique_id() -> String {
    let ns =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    format!("{ns:020}-{}", util::random_id())
}

/// Empty marker objects: claims and leases.
fn put_marker(sh: &Shared, bucket: &str, key: &str) -> Result<()> {
    let c = &sh.client;
    api::put_object(
        c,
        Obj { ep: c.pick(), bucket, key },
        &format!("PUT {bucket}/{key}"),
        b"",
        &[],
        &[],
        |_| false,
    )
}

/// A random pause that grows with the round, so contenders fall out of step.
fn backoff(round: u32) {
    let mut b = [0u8; 2];
    let _ = getrandom::fill(&mut b);
    let cap = (20u64 << round.min(5)).min(1000);
    std::thread::sleep(Duration::from_millis(10 + u64::from(u16::from_le_bytes(b)) % cap));
}

/// Age of a listed object on the server's clock (`None` when the server gave no times).
fn age(l: &Listed, now: Option<jiff::Timestamp>) -> Option<Duration> {
    let (m, now) = (l.modified?, now?);
    Some(Duration::try_from(now.duration_since(m)).unwrap_or_default())
}

/// Create record `name` of `image` with `write`, unless it exists or another creator wins.
pub fn create(
    sh: &Shared,
    bucket: &str,
    (image, name): (&str, &str),
    write: impl Fn() -> Result<()>,
    exists: impl Fn() -> Error,
) -> Result<()> {
    let c = &sh.client;
    let key = layout::record_key(image, name);
    let manifest_exists = || api::head_size(c, c.pick(), bucket, &key).map(|s| s.is_some());
    if manifest_exists()? {
        return Err(exists());
    }
    let prefix = layout::claim_prefix(image, name);
    let start = Instant::now();
    let mut round = 0;
    loop {
        let mine = format!("{prefix}{}", unique_id());
        put_marker(sh, bucket, &mine)?;
        let (claims, now) = api::list_timed(c, bucket, &prefix)?;
        let others: Vec<&Listed> = claims.iter().filter(|l| l.key != mine).collect();
        if others.is_empty() {
            // Won: the claim stays for as long as the image does.
            if manifest_exists()? {
                let _ = api::delete_object(c, bucket, &mine);
                return Err(exists());
            }
            return write().inspect_err(|_| {
                let _ = api::delete_object(c, bucket, &mine);
            });
        }
        api::delete_object(c, bucket, &mine)?;
        if manifest_exists()? {
            return Err(exists());
        }
        if others.iter().all(|l| age(l, now).is_some_and(|a| a > CLAIM_STALE)) {
            return Err(exists().context(format!(
                "a writer that died left its claim ({}); `vast-ost cleanup` removes it",
                others[0].key
            )));
        }
        if start.elapsed() > WAIT {
            return Err(exists().context(format!("another writer is creating it ({})", others[0].key)));
        }
        debug!("{bucket}/{image}: {} other claim(s), round {round}: backing off", others.len());
        backoff(round);
        round += 1;
    }
}

/// Run `f` holding the lease on `image`'s manifest. `f` gets the moment by which its last
/// write must have been sent.
pub fn with_lease<T>(
    sh: &Shared,
    bucket: &str,
    (image, name): (&str, &str),
    f: impl FnOnce(Instant) -> Result<T>,
) -> Result<T> {
    let c = &sh.client;
    let prefix = layout::lock_prefix(image, name);
    let start = Instant::now();
    let mut round = 0;
    loop {
        let mine = format!("{prefix}{}", unique_id());
        let t0 = Instant::now();
        put_marker(sh, bucket, &mine)?;
        let (leases, now) = api::list_timed(c, bucket, &prefix)?;
        let (dead, live): (Vec<&Listed>, Vec<&Listed>) =
            leases.iter().filter(|l| l.key != mine).partition(|l| age(l, now).is_some_and(|a| a > LEASE));
        if live.is_empty() {
            for l in dead {
                debug!("{bucket}/{}: removing a lease older than {LEASE:?}", l.key);
                let _ = api::delete_object(c, bucket, &l.key);
            }
            let res = f(t0 + CRITICAL);
            if let Err(e) = api::delete_object(c, bucket, &mine) {
                debug!("{bucket}/{mine}: lease not removed ({e}); it runs out in {LEASE:?}");
            }
            return res;
        }
        api::delete_object(c, bucket, &mine)?;
        if start.elapsed() > LEASE + WAIT {
            return Err(Error::new(
                ErrorKind::Busy,
                format!("{image}/{name}: another media server holds it ({})", live[0].key),
            ));
        }
        backoff(round);
        round += 1;
    }
}

/// Write `bytes` to `key` in one attempt that ends before `deadline` plus [`WRITE_LIMIT`]: a
/// write under a lease is never retried past it (a retry could land after the lease ran out).
pub fn write_under_lease(
    sh: &Shared,
    bucket: &str,
    key: &str,
    bytes: &[u8],
    headers: &[(&'static str, String)],
    deadline: Instant,
) -> Result<()> {
    if Instant::now() > deadline {
        return Err(Error::new(
            ErrorKind::Busy,
            format!("{bucket}/{key}: the commit took too long under its lease"),
        ));
    }
    let c = &sh.client;
    let mut r = Req::new(Method::Put, bucket, Some(key)).body(bytes);
    r.headers.extend(headers.iter().cloned());
    r.timeout = Some(WRITE_LIMIT);
    c.send(c.pick(), &r, &format!("PUT manifest {bucket}/{key} (under lease)")).map(drop).map_err(|f| f.err)
}

/// Delete `key` under the lease deadline, one attempt.
pub fn delete_under_lease(sh: &Shared, bucket: &str, key: &str, deadline: Instant) -> Result<()> {
    if Instant::now() > deadline {
        return Err(Error::new(
            ErrorKind::Busy,
            format!("{bucket}/{key}: the delete took too long under its lease"),
        ));
    }
    let c = &sh.client;
    let mut r = Req::new(Method::Delete, bucket, Some(key));
    r.timeout = Some(WRITE_LIMIT);
    match c.send(c.pick(), &r, &format!("DeleteObject {bucket}/{key} (under lease)")) {
        Ok(_) => Ok(()),
        Err(f) if f.err.kind() == ErrorKind::NotFound && f.err.code() != "NoSuchBucket" => Ok(()),
        Err(f) => Err(f.err),
    }
}
