//! Bucket operations: ListBuckets, CreateBucket (a view with `s3_default_policy`, as VAST makes
//! for buckets created over S3), DeleteBucket, and the fixed GetBucketLocation and
//! GetBucketVersioning answers.

use super::context::{blocking, Ctx};
use super::error::{access_denied, internal, S3Err};
use super::{ok_empty, xml};
use crate::server::{empty, Resp};

pub fn list_buckets(ctx: &Ctx) -> Result<Resp, S3Err> {
    let st = ctx.sh.state.lock().unwrap_or_else(|e| e.into_inner());
    let mut buckets: Vec<(String, String)> = st.colls["views"]
        .items
        .values()
        .filter(|v| crate::vms::state::has_protocol(v, "S3"))
        .filter(|v| {
            ctx.caller.superuser || v.get("bucket_owner").and_then(|o| o.as_str()) == Some(&ctx.caller.name)
        })
        .map(|v| {
            let name = v.get("bucket").and_then(|b| b.as_str()).unwrap_or("").to_string();
            let created = v.get("created").and_then(|c| c.as_str()).unwrap_or("").to_string();
            (name, created)
        })
        .collect();
    buckets.sort();
    let buckets = buckets
        .into_iter()
        .map(|(name, created)| {
            // DRF renders microseconds; S3 clients expect milliseconds.
            let creation_date = if created.len() >= 23 { format!("{}Z", &created[..23]) } else { created };
            xml::BucketEntry { name, creation_date }
        })
        .collect();
    xml::response(&xml::ListAllMyBucketsResult {
        xmlns: xml::Xmlns,
        owner: xml::Owner { id: ctx.caller.user_id.to_string(), display_name: ctx.caller.name.clone() },
        buckets: xml::Buckets { buckets },
    })
}

/// S3 CreateBucket: allowed for users with `allow_create_bucket`; creates the view
/// `/<bucket>` with `s3_default_policy`, as VAST does for buckets made over S3.
pub fn create_bucket(ctx: &Ctx, bucket: &str) -> Result<Resp, S3Err> {
    let mut st = ctx.sh.state.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, v)) = st.bucket(bucket) {
        let mine = v.get("bucket_owner").and_then(|o| o.as_str()) == Some(&ctx.caller.name);
        return Err(if mine {
            S3Err::new(
                409,
                "BucketAlreadyOwnedByYou",
                "Your previous request to create the named bucket succeeded and you already own it.",
            )
        } else {
            S3Err::new(409, "BucketAlreadyExists", "The requested bucket name is not available.")
        });
    }
    let allowed = st
        .get("users", ctx.caller.user_id)
        .and_then(|u| u.get("allow_create_bucket"))
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    if !allowed && !ctx.caller.superuser {
        return Err(access_denied());
    }
    if !crate::vms::valid_bucket_name(bucket) {
        return Err(S3Err::new(400, "InvalidBucketName", "The specified bucket is not valid.")
            .with("BucketName", bucket));
    }
    let path = format!("/{bucket}");
    let taken =
        st.colls["views"].items.values().any(|v| v.get("path").and_then(|p| p.as_str()) == Some(&path));
    if taken {
        return Err(S3Err::new(409, "BucketAlreadyExists", "A view already uses the path of this bucket."));
    }
    let dir = ctx.sh.store.resolve(&path).ok_or_else(|| internal("path"))?;
    std::fs::create_dir_all(&dir).map_err(internal)?;
    let policy = st.colls["viewpolicies"]
        .find("name", &serde_json::json!("s3_default_policy"))
        .map(|(id, _)| id)
        .unwrap_or(1);
    st.add("views", serde_json::json!({
        "path": path, "name": bucket, "bucket": bucket, "bucket_owner": ctx.caller.name,
        "bucket_owner_type": "USER", "protocols": ["S3"], "policy_id": policy, "tenant_id": 1,
        "alias": "", "share": "", "s3_versioning": false, "locking": false, "files_retention_mode": "NONE",
    }));
    Ok(http::Response::builder()
        .status(200)
        .header("location", format!("/{bucket}"))
        .body(empty())
        .unwrap_or_else(|_| http::Response::new(empty())))
}

pub async fn delete_bucket(ctx: &Ctx, bucket: &str) -> Result<Resp, S3Err> {
    let b = ctx.bucket(bucket)?;
    {
        let st = ctx.sh.state.lock().unwrap_or_else(|e| e.into_inner());
        let allowed = st
            .get("users", ctx.caller.user_id)
            .and_then(|u| u.get("allow_delete_bucket"))
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        if !allowed && !ctx.caller.superuser {
            return Err(access_denied());
        }
    }
    let (sh, dir) = (ctx.sh.clone(), b.dir.clone());
    let empty_bucket = blocking(move || sh.store.list_keys(&dir, "").is_empty()).await?;
    if !empty_bucket {
        return Err(S3Err::new(409, "BucketNotEmpty", "The bucket you tried to delete is not empty")
            .with("BucketName", bucket));
    }
    let mut st = ctx.sh.state.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((id, _)) = st.bucket(bucket) {
        st.coll("views").items.remove(&id);
    }
    Ok(ok_empty(204))
}

/// GetBucketLocation: the simulator has one region, reported as the empty (default) one.
pub fn location(ctx: &Ctx, bucket: &str) -> Result<Resp, S3Err> {
    ctx.bucket(bucket)?;
    xml::response(&xml::LocationConstraint { xmlns: xml::Xmlns })
}

/// GetBucketVersioning: versioning is never enabled over S3 here (an empty configuration).
pub fn versioning(ctx: &Ctx, bucket: &str) -> Result<Resp, S3Err> {
    ctx.bucket(bucket)?;
    xml::response(&xml::VersioningConfiguration { xmlns: xml::Xmlns })
}
