//! What every S3 handler works with: the authenticated caller, the bucket resolved to its view
//! (with the access check), object paths, the quota check of writes, and a way to run blocking
//! file-system work.

use super::error::{access_denied, bad_key, internal, no_such_bucket, S3Err};
use crate::Shared;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The authenticated caller.
pub struct Caller {
    pub user_id: u64,
    pub name: String,
    pub superuser: bool,
}

impl Caller {
    /// The secret of an enabled access key, and the user it belongs to.
    pub fn of_key(sh: &Shared, access_key: &str) -> Result<(String, Caller), S3Err> {
        let st = sh.state.lock().unwrap_or_else(|e| e.into_inner());
        let k = st.keys.iter().find(|k| k.access_key == access_key && k.enabled).ok_or_else(|| {
            S3Err::new(
                403,
                "InvalidAccessKeyId",
                "The AWS Access Key Id you provided does not exist in our records.",
            )
            .with("AWSAccessKeyId", access_key)
        })?;
        let u = st.get("users", k.user_id).ok_or_else(access_denied)?;
        let caller = Caller {
            user_id: k.user_id,
            name: u.get("name").and_then(|n| n.as_str()).unwrap_or("").to_string(),
            superuser: u.get("s3_superuser").and_then(|v| v.as_bool()).unwrap_or(false),
        };
        Ok((k.secret_key.clone(), caller))
    }
}

/// A bucket resolved to its view.
#[derive(Clone)]
pub struct Bucket {
    pub dir: PathBuf,
    pub owner: String,
    /// S3 Object Lock, when the view has `locking`.
    pub worm: Option<BucketWorm>,
}

/// A locking bucket's retention settings (from its view).
#[derive(Clone)]
pub struct BucketWorm {
    pub mode: crate::worm::Mode,
    /// `default_retention_period`, in seconds.
    pub default_secs: Option<u64>,
}

pub struct Ctx {
    pub sh: Arc<Shared>,
    pub caller: Caller,
    pub host: String,
}

impl Ctx {
    pub fn bucket(&self, name: &str) -> Result<Bucket, S3Err> {
        let st = self.sh.state.lock().unwrap_or_else(|e| e.into_inner());
        let (_, v) = st.bucket(name).ok_or_else(|| no_such_bucket(name))?;
        let owner = v.get("bucket_owner").and_then(|o| o.as_str()).unwrap_or("").to_string();
        // Bucket owner has full access; s3_superuser sees everything. Other users would need
        // bucket or identity policies, which the simulator does not model.
        if owner != self.caller.name && !self.caller.superuser {
            return Err(access_denied());
        }
        let vpath = v.get("path").and_then(|p| p.as_str()).unwrap_or("/");
        let dir = self.sh.store.resolve(vpath).ok_or_else(|| internal("bad view path"))?;
        let worm = (v.get("locking").and_then(|l| l.as_bool()) == Some(true)).then(|| BucketWorm {
            mode: v
                .get("s3_locks_retention_mode")
                .and_then(|m| m.as_str())
                .and_then(crate::worm::Mode::parse)
                .unwrap_or(crate::worm::Mode::Compliance),
            default_secs: v
                .get("default_retention_period")
                .and_then(|d| d.as_str())
                .and_then(crate::util::duration_secs),
        });
        Ok(Bucket { dir, owner, worm })
    }

    pub fn object_path(&self, b: &Bucket, key: &str) -> Result<PathBuf, S3Err> {
        self.sh.store.object_path(&b.dir, key).ok_or_else(|| bad_key(key))
    }

    /// Refuses a write that would take any quota above its hard limit. `add` bytes land at
    /// `dest` (replacing what is there); `moved_from` is a file that leaves the namespace in
    /// the same operation (rename).
    pub async fn quota_check(&self, dest: &Path, add: u64, moved_from: Option<&Path>) -> Result<(), S3Err> {
        let quotas: Vec<(PathBuf, u64, String)> = {
            let st = self.sh.state.lock().unwrap_or_else(|e| e.into_inner());
            st.colls["quotas"]
                .items
                .values()
                .filter_map(|q| {
                    let hard = q.get("hard_limit")?.as_u64()?;
                    let p = q.get("path")?.as_str()?;
                    Some((self.sh.store.resolve(p)?, hard, p.to_string()))
                })
                .filter(|(dir, _, _)| dest.starts_with(dir))
                .collect()
        };
        if quotas.is_empty() {
            return Ok(());
        }
        let (sh, dest, moved) = (self.sh.clone(), dest.to_path_buf(), moved_from.map(Path::to_path_buf));
        blocking(move || {
            let existing =
                std::fs::metadata(&dest).map(|m| if m.is_file() { m.len() } else { 0 }).unwrap_or(0);
            let moved_len =
                moved.as_ref().and_then(|m| std::fs::metadata(m).ok()).map(|m| m.len()).unwrap_or(0);
            for (dir, hard, vpath) in quotas {
                let (used, _) = sh.store.usage(&dir);
                let leaving = if moved.as_ref().is_some_and(|m| m.starts_with(&dir)) { moved_len } else { 0 };
                let after = used.saturating_sub(existing).saturating_sub(leaving).saturating_add(add);
                if after > hard {
                    return Err(S3Err::new(
                        403,
                        "QuotaExceeded",
                        format!("The quota on {vpath} would be exceeded: {after} bytes > hard_limit {hard}"),
                    ));
                }
            }
            Ok(())
        })
        .await?
    }
}

/// Runs blocking file-system work off the async workers.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, S3Err> {
    tokio::task::spawn_blocking(f).await.map_err(internal)
}
