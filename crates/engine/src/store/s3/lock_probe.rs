//! Whether a bucket's server really holds S3 Object Lock retention, found out on a probe object
//! before any object of an image is locked. A server may answer `200 OK` to PutObjectRetention
//! and keep nothing, or take `PUT ?retention` for a PutObject and replace the object's bytes
//! with the request's XML: so the probe object's bytes and its lock are read back after the
//! lock is set.
//!
//! One probe object per bucket (`.vast-ost/probe/retention`, which no image listing shows),
//! locked for the view's shortest retention: while its lock holds, a probe only reads it back,
//! so short-lived NetBackup processes do not leave a locked object each.

use std::collections::HashMap;
use std::sync::Mutex;

use tracing::{info, warn};

use super::{api, Shared};
use crate::error::{Error, ErrorKind, Result};
use crate::layout;
use crate::store::WormPolicy;
use crate::util::now_secs;

const PROBE_BODY: &[u8] = b"vast-ost object lock probe";
/// The probe's lock when the view sets no minimum.
const DEFAULT_PROBE_SECS: u64 = 3600;

/// What the store knows of each bucket's Object Lock: `Err` holds why it does not work.
#[derive(Default)]
pub(crate) struct LockProbes {
    known: Mutex<HashMap<String, std::result::Result<(), String>>>,
    /// One probe at a time.
    probing: Mutex<()>,
}

impl LockProbes {
    /// `Ok` when `bucket`'s server holds retention locks in `policy`'s mode, `NotSupported`
    /// (with what it did instead) when it does not; probed on first use, then remembered.
    /// Other failures (the server unreachable) are returned and not remembered.
    pub(crate) fn verify(&self, sh: &Shared, bucket: &str, policy: &WormPolicy) -> Result<()> {
        let known = |s: &Self| s.known.lock().unwrap_or_else(|p| p.into_inner()).get(bucket).cloned();
        let answer =
            |r: std::result::Result<(), String>| r.map_err(|why| Error::new(ErrorKind::NotSupported, why));
        if let Some(r) = known(self) {
            return answer(r);
        }
        let _one = self.probing.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = known(self) {
            return answer(r);
        }
        let r = match probe(sh, bucket, policy) {
            Ok(()) => {
                info!("S3 bucket {bucket}: Object Lock retention honoured ({} mode)", policy.mode.as_str());
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::NotSupported => {
                let why = format!(
                    "S3 bucket {bucket} does not hold Object Lock retention: {}; its images cannot be locked",
                    e.message()
                );
                warn!("{why}");
                Err(why)
            }
            Err(e) => return Err(e.context(format!("probing Object Lock on S3 bucket {bucket}"))),
        };
        self.known.lock().unwrap_or_else(|p| p.into_inner()).insert(bucket.to_string(), r.clone());
        answer(r)
    }
}

fn not_supported(what: String) -> Error {
    Error::new(ErrorKind::NotSupported, what)
}

fn probe(sh: &Shared, bucket: &str, policy: &WormPolicy) -> Result<()> {
    let c = &sh.client;
    let key = format!("{}retention", layout::probe_prefix());
    let ep = c.pick();
    let body_intact = || -> Result<()> {
        match api::get_small(c, ep, bucket, &key, 4096)? {
            Some(b) if b == PROBE_BODY => Ok(()),
            Some(_) => Err(not_supported(format!(
                "PutObjectRetention on {key} replaced the object's bytes (taken for a PutObject)"
            ))),
            None => Err(not_supported(format!("{key} is gone after PutObjectRetention"))),
        }
    };
    // A bucket without Object Lock configuration answers GetObjectRetention 400 (AWS:
    // InvalidRequest): that is the answer, not a failure to retry.
    let retention = |what: &str| match api::get_retention(c, bucket, &key) {
        Err(e) if e.http_status() == Some(400) => {
            Err(not_supported(format!("GetObjectRetention on {key} {what} was refused: {e}")))
        }
        r => r,
    };
    // A lock from an earlier probe that still holds: read back, nothing new is locked.
    if let (Some(until), date) = retention("before the probe")? {
        if until.as_second().max(0) as u64 > server_now(date) {
            return body_intact();
        }
    }
    let secs = match policy.min_secs {
        0 => DEFAULT_PROBE_SECS.min(if policy.max_secs > 0 { policy.max_secs } else { u64::MAX }),
        s => s,
    };
    // From the server's clock (a listing's `Date`): a lock must end in its future.
    let (_, date) = api::list_timed(c, bucket, &key)?;
    let until = server_now(date) + secs.max(1);
    let o = api::Obj { ep, bucket, key: &key };
    match api::put_object(
        c,
        o,
        &format!("PutObject {bucket}/{key} (lock probe)"),
        PROBE_BODY,
        &[],
        &[],
        |_| false,
    ) {
        Ok(()) => {}
        // Another process's probe locked it meanwhile: its lock is read back below.
        Err(e) if e.http_status() == Some(403) => {}
        Err(e) => return Err(e),
    }
    let ts =
        jiff::Timestamp::from_second(until as i64).map_err(|e| Error::invalid(format!("{until}: {e}")))?;
    match api::put_retention(c, bucket, &key, policy.mode.as_str(), ts) {
        Ok(()) => {}
        Err(e) if e.http_status() == Some(403) => {}
        Err(e) if matches!(e.http_status(), Some(400 | 405 | 501)) => {
            return Err(not_supported(format!("PutObjectRetention on {key} was refused: {e}")))
        }
        Err(e) => return Err(e),
    }
    body_intact()?;
    match retention("after PutObjectRetention")? {
        (Some(t), date) if t.as_second().max(0) as u64 > server_now(date) => Ok(()),
        (Some(t), _) => Err(not_supported(format!("{key} holds a lock until {t}, not the {ts} asked for"))),
        (None, _) => {
            Err(not_supported(format!("PutObjectRetention on {key} answered OK but no lock is held")))
        }
    }
}

/// The server's clock where it told it (its `Date`), else ours.
fn server_now(date: Option<jiff::Timestamp>) -> u64 {
    date.map(|d| d.as_second().max(0) as u64).unwrap_or_else(now_secs)
}
