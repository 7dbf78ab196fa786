//! Routing of the S3 listener: fault injection, request ids and the `Server` header; path-style
//! bucket/key split; SigV4 authentication; the choice of operation from method, key and
//! sub-resources; and draining what a failed request left unread.

use super::body::SReq;
use super::context::{Caller, Ctx};
use super::error::{access_denied, S3Err};
use super::{buckets, copy, listing, multipart, objects, retention, sigv4};
use super::{hdr, ok_empty};
use crate::faults::{Plane, Verdict};
use crate::percent::{self, parse_query};
use crate::server::{Dropped, Req, Resp};
use crate::Shared;
use http::Method;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::sync::Arc;
use std::time::Duration;

pub const SERVER: &str = "vast 5.3.1.0";

pub async fn handle(sh: Arc<Shared>, req: Req) -> Result<Resp, Dropped> {
    let rid = {
        let mut st = sh.state.lock().unwrap_or_else(|e| e.into_inner());
        st.rng.string(crate::util::UPPER_ALNUM, 16)
    };
    let sh_now = sh.worm.now();
    let (latency, verdict) = sh.faults.decide(Plane::S3);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let head = req.method() == Method::HEAD;
    let resource = req.uri().path().to_string();
    let mut resp = match verdict {
        Verdict::Drop => return Err(Dropped),
        Verdict::Error => {
            S3Err::new(503, "SlowDown", "Please reduce your request rate.").into_resp(head, &resource, &rid)
        }
        Verdict::Pass => match dispatch(sh, req).await {
            Ok(r) => r,
            Err(e) => e.into_resp(head, &resource, &rid),
        },
    };
    let h = resp.headers_mut();
    h.insert("server", http::HeaderValue::from_static(SERVER));
    // The simulator's clock, which decides when retention locks run out.
    if let Ok(v) = http::HeaderValue::from_str(&crate::util::http_date(Duration::from_secs(sh_now))) {
        h.insert("date", v);
    }
    if let Ok(v) = http::HeaderValue::from_str(&rid) {
        h.insert("x-amz-request-id", v);
    }
    Ok(resp)
}

async fn dispatch(sh: Arc<Shared>, req: Req) -> Result<Resp, S3Err> {
    let mut req = req.map(Some);
    let r = route(sh, &mut req).await;
    if r.is_err() {
        if let Some(b) = req.body_mut().take() {
            drain(b).await;
        }
    }
    r
}

/// Reads and discards a request body (bounded in size and time).
async fn drain(mut body: Incoming) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut n = 0u64;
    while let Ok(Some(Ok(f))) = tokio::time::timeout_at(deadline, body.frame()).await {
        n += f.data_ref().map(|d| d.len() as u64).unwrap_or(0);
        if n > 6 << 30 {
            break;
        }
    }
}

async fn route(sh: Arc<Shared>, req: &mut SReq) -> Result<Resp, S3Err> {
    let invalid_uri = || S3Err::new(400, "InvalidURI", "Couldn't parse the specified URI.");
    let raw_path = req.uri().path().to_string();
    let raw_query = req.uri().query().unwrap_or("").to_string();
    let query = parse_query(&raw_query, false).ok_or_else(invalid_uri)?;
    let path = percent::decode(&raw_path, false).ok_or_else(invalid_uri)?;
    let p = path.strip_prefix('/').ok_or_else(invalid_uri)?;
    let (bucket, key) = match p.split_once('/') {
        Some((b, k)) => (b.to_string(), k.to_string()),
        None => (p.to_string(), String::new()),
    };

    // Authenticate: SigV4 only, with keys issued through VMS.
    let sig = sigv4::parse(req.headers(), &query)?.ok_or_else(access_denied)?;
    let (secret, caller) = Caller::of_key(&sh, &sig.access_key)?;
    sig.verify(&secret, req.method().as_str(), &raw_path, &raw_query, req.headers())?;

    let host = hdr(req.headers(), "host").unwrap_or("localhost").to_string();
    let ctx = Ctx { sh, caller, host };
    let has = |k: &str| query.iter().any(|(a, _)| a == k);
    // Sub-resources decide the operation; presigned-URL auth parameters do not.
    let plain = query.iter().all(|(k, _)| k.starts_with("X-Amz-") || k.starts_with("x-amz-"));
    let qv = |k: &str| query.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
    let m = req.method().clone();

    if bucket.is_empty() {
        return match m {
            Method::GET => buckets::list_buckets(&ctx),
            _ => Err(S3Err::new(
                405,
                "MethodNotAllowed",
                "The specified method is not allowed against this resource.",
            )),
        };
    }
    if key.is_empty() {
        return match m {
            Method::HEAD => ctx.bucket(&bucket).map(|_| ok_empty(200)),
            Method::GET if has("uploads") => multipart::list_uploads(&ctx, &bucket, &query),
            Method::GET if has("location") => buckets::location(&ctx, &bucket),
            Method::GET if has("versioning") => buckets::versioning(&ctx, &bucket),
            Method::GET => listing::list_objects(&ctx, &bucket, &query).await,
            Method::POST if has("delete") => objects::delete_objects(&ctx, &bucket, req, &sig).await,
            Method::PUT if plain => buckets::create_bucket(&ctx, &bucket),
            Method::DELETE if plain => buckets::delete_bucket(&ctx, &bucket).await,
            _ => Err(S3Err::new(
                501,
                "NotImplemented",
                "A header or query you provided implies functionality that is not implemented.",
            )),
        };
    }
    let upload_id = qv("uploadId");
    match (m, upload_id) {
        (Method::POST, None) if has("uploads") => multipart::create(&ctx, &bucket, &key, req.headers()),
        (Method::POST, Some(id)) => multipart::complete(&ctx, &bucket, &key, &id, req, &sig).await,
        (Method::PUT, Some(id)) => {
            let n = qv("partNumber")
                .ok_or_else(|| S3Err::new(400, "InvalidArgument", "partNumber is required"))?;
            multipart::upload_part(&ctx, &bucket, &key, &id, &n, req, &sig).await
        }
        (Method::GET, Some(id)) => multipart::list_parts(&ctx, &bucket, &key, &id, &query),
        (Method::DELETE, Some(id)) => multipart::abort(&ctx, &bucket, &key, &id).await,
        (Method::PUT, None) if has("retention") => {
            retention::put_retention(&ctx, &bucket, &key, req, &sig).await
        }
        (Method::GET, None) if has("retention") => retention::get_retention(&ctx, &bucket, &key),
        (Method::PUT, None) if req.headers().contains_key("x-amz-copy-source") => {
            copy::copy_object(&ctx, &bucket, &key, req.headers()).await
        }
        (Method::PUT, None) => objects::put_object(&ctx, &bucket, &key, req, &sig).await,
        (Method::GET, None) => objects::get_object(&ctx, &bucket, &key, req.headers(), false).await,
        (Method::HEAD, None) => objects::get_object(&ctx, &bucket, &key, req.headers(), true).await,
        (Method::DELETE, None) => objects::delete_object(&ctx, &bucket, &key).await,
        _ => Err(S3Err::new(
            405,
            "MethodNotAllowed",
            "The specified method is not allowed against this resource.",
        )),
    }
}
