//! S3 Object Lock on buckets of WORM-enabled views: PutObjectRetention, GetObjectRetention,
//! the view's default retention on new objects, and the refusal of deletes and overwrites of
//! locked objects (the locks themselves: [`crate::worm`]).

use super::body::{small_body, SReq};
use super::context::{Bucket, Ctx};
use super::error::{no_such_key, S3Err};
use super::{ok_empty, sigv4, xml};
use crate::server::Resp;
use crate::worm::{Lock, Mode, Refusal};
use std::path::Path;

/// What AWS answers for a change of a locked object.
pub fn locked() -> S3Err {
    S3Err::new(403, "AccessDenied", "Access Denied because object protected by object lock.")
}

fn no_lock_configuration() -> S3Err {
    S3Err::new(400, "InvalidRequest", "Bucket is missing Object Lock Configuration")
}

/// Refuse to delete or replace `path` while it is locked.
pub fn check_unlocked(ctx: &Ctx, path: &Path) -> Result<(), S3Err> {
    match ctx.sh.worm.active(path) {
        Some(_) => Err(locked()),
        None => Ok(()),
    }
}

/// A new object in a bucket whose view has a `default_retention_period` is locked for it.
pub fn apply_default(ctx: &Ctx, b: &Bucket, path: &Path) {
    if ignored(ctx) {
        return;
    }
    if let Some(w) = &b.worm {
        if let Some(secs) = w.default_secs {
            let _ = ctx.sh.worm.set(path, Lock { until: ctx.sh.worm.now() + secs, mode: w.mode });
        }
    }
}

/// [`crate::SimConfig::ignore_object_lock`]: retention requests answered and not kept.
fn ignored(ctx: &Ctx) -> bool {
    ctx.sh.ignore_object_lock.load(std::sync::atomic::Ordering::Relaxed)
}

pub async fn put_retention(
    ctx: &Ctx,
    bucket: &str,
    key: &str,
    req: &mut SReq,
    sig: &sigv4::SigRequest,
) -> Result<Resp, S3Err> {
    let b = ctx.bucket(bucket)?;
    let doc = xml::Retention::parse(&small_body(req, sig).await?)?;
    if b.worm.is_none() {
        return Err(no_lock_configuration());
    }
    let path = ctx.object_path(&b, key)?;
    if !path.is_file() {
        return Err(no_such_key(key));
    }
    let mode = Mode::parse(doc.mode.trim()).ok_or_else(xml::malformed)?;
    let until = doc
        .retain_until_date
        .trim()
        .parse::<jiff::Timestamp>()
        .map_err(|_| S3Err::new(400, "InvalidArgument", "The retain until date is not a valid timestamp"))?
        .as_second();
    if until <= ctx.sh.worm.now() as i64 {
        return Err(S3Err::new(400, "InvalidArgument", "The retain until date must be in the future!"));
    }
    if ignored(ctx) {
        return Ok(ok_empty(200));
    }
    match ctx.sh.worm.set(&path, Lock { until: until as u64, mode }) {
        Ok(()) => Ok(ok_empty(200)),
        Err(Refusal::Shorten | Refusal::Weaken) => Err(locked()),
    }
}

pub fn get_retention(ctx: &Ctx, bucket: &str, key: &str) -> Result<Resp, S3Err> {
    let b = ctx.bucket(bucket)?;
    if b.worm.is_none() {
        return Err(no_lock_configuration());
    }
    let path = ctx.object_path(&b, key)?;
    if !path.is_file() {
        return Err(no_such_key(key));
    }
    let lock = ctx.sh.worm.lock_of(&path).ok_or_else(|| {
        S3Err::new(
            404,
            "NoSuchObjectLockConfiguration",
            "The specified object does not have a ObjectLock configuration",
        )
    })?;
    let until = jiff::Timestamp::from_second(lock.until as i64).map_err(super::error::internal)?;
    xml::response(&xml::Retention {
        mode: lock.mode.as_str().to_string(),
        retain_until_date: until.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
    })
}
