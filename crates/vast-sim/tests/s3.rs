//! S3 data-plane tests (reference §10, §12.6) through independent signers: rusty-s3 for
//! presigned SigV4, and a small header-form signer that is first checked against the AWS
//! documented example. Keys come from VMS `users/{id}/access_keys/`.

mod common;

use common::*;
use rusty_s3::actions::{CreateMultipartUpload, ListObjectsV2, ObjectIdentifier};
use rusty_s3::S3Action;
use serde_json::json;

/// A user, its key, and a bucket view `/buckets/<bucket>` it owns, all made through VMS.
fn setup(env: &Env, bucket: &str, user: &str) -> S3 {
    let (_, ak, sk) = env.s3_user(user);
    env.bucket_view(bucket, user);
    S3::new(&env.sim.s3_endpoints()[0], bucket, &ak, &sk)
}

fn md5_hex(b: &[u8]) -> String {
    use md5::{Digest, Md5};
    hex::encode(Md5::digest(b))
}

/// §10: put, get, head, range, delete; the `Server: vast a.b.c.d` header; S3 XML errors.
#[test]
fn s10_put_get_range_head_delete() {
    let env = start();
    let s3 = setup(&env, "bkt1", "u1");
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let r = s3.put("dir/obj.bin", &data);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.headers["etag"], format!("\"{}\"", md5_hex(&data)).as_str());
    let server = r.headers["server"].to_str().unwrap();
    assert!(
        server.starts_with("vast ")
            && server[5..].split('.').count() == 4
            && server[5..].split('.').all(|p| p.parse::<u32>().is_ok()),
        "{server}"
    );
    assert_eq!(s3.get("dir/obj.bin"), (200, data.clone()));

    let url = s3.bucket.get_object(Some(&s3.creds), "dir/obj.bin").sign(TTL);
    let (st, h, body) = s3.send_bytes("GET", &url, &[("range", "bytes=10-19")], vec![]);
    assert_eq!(st, 206);
    assert_eq!(body, &data[10..20]);
    assert_eq!(h["content-range"], "bytes 10-19/100000");
    let (st, _, body) = s3.send_bytes("GET", &url, &[("range", "bytes=-5")], vec![]);
    assert_eq!((st, body.as_slice()), (206, &data[99_995..]));
    let bad = s3.send("GET", &url, &[("range", "bytes=100000-")], vec![]);
    assert_eq!(bad.status, 416);
    assert!(bad.text.contains("<Code>InvalidRange</Code>"), "{}", bad.text);

    let head = s3.bucket.head_object(Some(&s3.creds), "dir/obj.bin").sign(TTL);
    let h = s3.send("HEAD", &head, &[], vec![]);
    assert_eq!(h.status, 200);
    assert_eq!(h.headers["content-length"], "100000");

    let missing = s3.get("dir/nope").0;
    assert_eq!(missing, 404);
    let m = s3.send("GET", &s3.bucket.get_object(Some(&s3.creds), "dir/nope").sign(TTL), &[], vec![]);
    assert!(m.text.contains("<Code>NoSuchKey</Code>"));
    assert_eq!(s3.delete("dir/obj.bin").status, 204);
    assert_eq!(s3.get("dir/obj.bin").0, 404);
    assert_eq!(s3.delete("dir/obj.bin").status, 204, "DeleteObject is idempotent");

    let other = S3::new(&env.sim.s3_endpoints()[1], "nobucket", s3.creds.key(), s3.creds.secret());
    let nb = other.send("GET", &other.bucket.get_object(Some(&other.creds), "k").sign(TTL), &[], vec![]);
    assert_eq!(nb.status, 404);
    assert!(nb.text.contains("<Code>NoSuchBucket</Code>"));
}

/// §12.6: ListObjectsV2 with prefix, delimiter, max-keys and continuation tokens.
#[test]
fn s12_list_objects_v2_pagination() {
    let env = start();
    let s3 = setup(&env, "list", "lister");
    let keys = ["a/1", "a/2", "a/3", "a/sub/x", "a/sub/y", "b/1", "top", "a.b"];
    for k in keys {
        assert_eq!(s3.put(k, k.as_bytes()).status, 200);
    }
    // Flat listing, two keys per page, following NextContinuationToken.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut a = s3.bucket.list_objects_v2(Some(&s3.creds));
        a.with_max_keys(2);
        if let Some(t) = &token {
            a.with_continuation_token(t.clone());
        }
        let r = s3.send("GET", &a.sign(TTL), &[], vec![]);
        assert_eq!(r.status, 200, "{}", r.text);
        let p = ListObjectsV2::parse_response(&r.text).unwrap();
        seen.extend(p.contents.iter().map(|c| c.key.clone()));
        pages += 1;
        match p.next_continuation_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    let mut sorted: Vec<String> = keys.iter().map(|s| s.to_string()).collect();
    sorted.sort();
    assert_eq!(seen, sorted, "UTF-8 order ('a.b' before 'a/...')");
    assert_eq!(pages, 4);

    // Delimiter + prefix: common prefixes, paged.
    let mut a = s3.bucket.list_objects_v2(Some(&s3.creds));
    a.with_prefix("a/");
    a.with_delimiter("/");
    a.with_max_keys(3);
    let p = ListObjectsV2::parse_response(&s3.send("GET", &a.sign(TTL), &[], vec![]).text).unwrap();
    assert_eq!(p.contents.iter().map(|c| c.key.as_str()).collect::<Vec<_>>(), ["a/1", "a/2", "a/3"]);
    assert!(p.common_prefixes.is_empty());
    let t = p.next_continuation_token.expect("truncated");
    let mut a = s3.bucket.list_objects_v2(Some(&s3.creds));
    a.with_prefix("a/");
    a.with_delimiter("/");
    a.with_continuation_token(t);
    let p = ListObjectsV2::parse_response(&s3.send("GET", &a.sign(TTL), &[], vec![]).text).unwrap();
    assert!(p.contents.is_empty());
    assert_eq!(p.common_prefixes.iter().map(|c| c.prefix.as_str()).collect::<Vec<_>>(), ["a/sub/"]);
    assert!(p.next_continuation_token.is_none());
    // Sizes and ETags come back too.
    let a = s3.bucket.list_objects_v2(Some(&s3.creds));
    let p = ListObjectsV2::parse_response(&s3.send("GET", &a.sign(TTL), &[], vec![]).text).unwrap();
    let top = p.contents.iter().find(|c| c.key == "top").unwrap();
    assert_eq!(top.size, Some(3));
    assert_eq!(top.etag.as_deref().map(|e| e.trim_matches('"')), Some(md5_hex(b"top").as_str()));
}

/// §12.6: DeleteObjects (POST ?delete with Content-MD5).
#[test]
fn s12_delete_objects() {
    let env = start();
    let s3 = setup(&env, "delb", "deleter");
    for k in ["x/1", "x/2", "x/3"] {
        s3.put(k, b"z");
    }
    let objs = [
        ObjectIdentifier::new("x/1".into()),
        ObjectIdentifier::new("x/3".into()),
        ObjectIdentifier::new("x/none".into()),
    ];
    let a = s3.bucket.delete_objects(Some(&s3.creds), objs.iter());
    let url = a.sign(TTL);
    let (body, md5) = a.body_with_md5();
    let r = s3.send("POST", &url, &[("content-md5", &md5)], body.into_bytes());
    assert_eq!(r.status, 200, "{}", r.text);
    let d = rusty_s3::actions::DeleteObjectsResponse::parse(&r.text).unwrap();
    assert_eq!(d.deleted.len(), 3);
    assert!(d.errors.is_empty());
    assert_eq!(s3.get("x/1").0, 404);
    assert_eq!(s3.get("x/2").0, 200);
    // A wrong Content-MD5 is refused.
    let a = s3.bucket.delete_objects(Some(&s3.creds), objs.iter());
    let url = a.sign(TTL);
    let (body, _) = a.body_with_md5();
    let r = s3.send("POST", &url, &[("content-md5", "AAAAAAAAAAAAAAAAAAAAAA==")], body.into_bytes());
    assert_eq!(r.status, 400);
    assert!(r.text.contains("BadDigest"), "{}", r.text);
}

/// §10, §12.6: multipart upload with UploadPartCopy, ListParts, part-size and ETag checks,
/// abort.
#[test]
fn s10_multipart_with_upload_part_copy_and_abort() {
    let env = start_with(|c| c.min_part_size = 1024);
    let s3 = setup(&env, "mpu", "mpuser");
    let src: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 256) as u8).collect();
    assert_eq!(s3.put("source", &src).status, 200);

    let create = |key: &str| -> String {
        let r =
            s3.send("POST", &s3.bucket.create_multipart_upload(Some(&s3.creds), key).sign(TTL), &[], vec![]);
        assert_eq!(r.status, 200, "{}", r.text);
        CreateMultipartUpload::parse_response(&r.text).unwrap().upload_id().to_string()
    };
    let id = create("big/object");
    let part1: Vec<u8> = vec![1u8; 3000];
    let up = s3.bucket.upload_part(Some(&s3.creds), "big/object", 1, &id);
    let r1 = s3.send("PUT", &up.sign(TTL), &[], part1.clone());
    assert_eq!(r1.status, 200, "{}", r1.text);
    let e1 = r1.headers["etag"].to_str().unwrap().to_string();
    assert_eq!(e1, format!("\"{}\"", md5_hex(&part1)));

    // Part 2: server-side copy of bytes 100..=2099 of `source`.
    let mut upc = s3.bucket.upload_part(Some(&s3.creds), "big/object", 2, &id);
    upc.headers_mut().insert("x-amz-copy-source", "mpu/source");
    upc.headers_mut().insert("x-amz-copy-source-range", "bytes=100-2099");
    let r2 = s3.send(
        "PUT",
        &upc.sign(TTL),
        &[("x-amz-copy-source", "mpu/source"), ("x-amz-copy-source-range", "bytes=100-2099")],
        vec![],
    );
    assert_eq!(r2.status, 200, "{}", r2.text);
    assert!(r2.text.contains("<CopyPartResult"), "{}", r2.text);
    let e2 = format!("\"{}\"", md5_hex(&src[100..2100]));
    assert!(r2.text.contains(&e2.replace('"', "&quot;")) || r2.text.contains(&e2), "{}", r2.text);

    // Part 3: whole-object copy (last part may be small, here it is not).
    let mut upc3 = s3.bucket.upload_part(Some(&s3.creds), "big/object", 3, &id);
    upc3.headers_mut().insert("x-amz-copy-source", "/mpu/source");
    let r3 = s3.send("PUT", &upc3.sign(TTL), &[("x-amz-copy-source", "/mpu/source")], vec![]);
    assert_eq!(r3.status, 200, "{}", r3.text);
    let e3 = format!("\"{}\"", md5_hex(&src));

    // Out-of-range copy is refused.
    let mut bad = s3.bucket.upload_part(Some(&s3.creds), "big/object", 4, &id);
    bad.headers_mut().insert("x-amz-copy-source", "mpu/source");
    bad.headers_mut().insert("x-amz-copy-source-range", "bytes=0-10000");
    let rb = s3.send(
        "PUT",
        &bad.sign(TTL),
        &[("x-amz-copy-source", "mpu/source"), ("x-amz-copy-source-range", "bytes=0-10000")],
        vec![],
    );
    assert_eq!(rb.status, 416, "{}", rb.text);

    // ListParts.
    let lp = s3.send("GET", &s3.bucket.list_parts(Some(&s3.creds), "big/object", &id).sign(TTL), &[], vec![]);
    assert_eq!(lp.status, 200);
    let parts = rusty_s3::actions::ListParts::parse_response(&lp.text).unwrap();
    assert_eq!(parts.parts.len(), 3);

    // A wrong ETag is InvalidPart; the upload survives it.
    let wrong = [e1.as_str(), "\"00000000000000000000000000000000\"", e3.as_str()];
    let c = s3.bucket.complete_multipart_upload(Some(&s3.creds), "big/object", &id, wrong.iter().copied());
    let rc = s3.send("POST", &c.sign(TTL), &[], c.body().into_bytes());
    assert_eq!(rc.status, 400);
    assert!(rc.text.contains("InvalidPart"), "{}", rc.text);

    let etags = [e1.as_str(), e2.as_str(), e3.as_str()];
    let c = s3.bucket.complete_multipart_upload(Some(&s3.creds), "big/object", &id, etags.iter().copied());
    let rc = s3.send("POST", &c.sign(TTL), &[], c.body().into_bytes());
    assert_eq!(rc.status, 200, "{}", rc.text);
    let done = rusty_s3::actions::CompleteMultipartUploadResponse::parse(&rc.text);
    assert!(done.is_ok(), "{}", rc.text);
    assert!(done.unwrap().etag().ends_with("-3\""));
    let mut want = part1.clone();
    want.extend_from_slice(&src[100..2100]);
    want.extend_from_slice(&src);
    assert_eq!(s3.get("big/object"), (200, want.clone()));
    assert_eq!(std::fs::read(env.sim.root().join("buckets/mpu/big/object")).unwrap(), want);
    // Staged parts never appear in the bucket.
    let l = ListObjectsV2::parse_response(
        &s3.send("GET", &s3.bucket.list_objects_v2(Some(&s3.creds)).sign(TTL), &[], vec![]).text,
    )
    .unwrap();
    assert_eq!(l.contents.len(), 2);

    // EntityTooSmall: a non-last part under the minimum.
    let id2 = create("small");
    let mut tags = Vec::new();
    for n in 1..=2u16 {
        let r = s3.send(
            "PUT",
            &s3.bucket.upload_part(Some(&s3.creds), "small", n, &id2).sign(TTL),
            &[],
            vec![n as u8; 100],
        );
        tags.push(r.headers["etag"].to_str().unwrap().to_string());
    }
    let c =
        s3.bucket.complete_multipart_upload(Some(&s3.creds), "small", &id2, tags.iter().map(String::as_str));
    let rc = s3.send("POST", &c.sign(TTL), &[], c.body().into_bytes());
    assert_eq!(rc.status, 400);
    assert!(rc.text.contains("EntityTooSmall"), "{}", rc.text);

    // ListMultipartUploads shows it; abort removes it; then NoSuchUpload.
    let ab = s3.bucket.abort_multipart_upload(Some(&s3.creds), "small", &id2);
    assert_eq!(s3.send("DELETE", &ab.sign(TTL), &[], vec![]).status, 204);
    let again =
        s3.send("PUT", &s3.bucket.upload_part(Some(&s3.creds), "small", 3, &id2).sign(TTL), &[], vec![1; 10]);
    assert_eq!(again.status, 404);
    assert!(again.text.contains("NoSuchUpload"));
    assert_eq!(std::fs::read_dir(env.sim.root().join(".vast-sim/uploads")).unwrap().count(), 0);
}

/// §12.6, §10: S3 and "NFS" share one namespace: an S3 object is a file under the view path
/// and a file written there is an S3 object.
#[test]
fn s12_s3_and_nfs_share_the_namespace() {
    let env = start();
    let s3 = setup(&env, "shared", "sharer");
    assert_eq!(s3.put("img/piece-1", b"from s3").status, 200);
    let file = env.sim.root().join("buckets/shared/img/piece-1");
    assert_eq!(std::fs::read(&file).unwrap(), b"from s3");
    std::fs::write(env.sim.root().join("buckets/shared/img/manifest"), b"from nfs").unwrap();
    assert_eq!(s3.get("img/manifest"), (200, b"from nfs".to_vec()));
    let l = ListObjectsV2::parse_response(
        &s3.send("GET", &s3.bucket.list_objects_v2(Some(&s3.creds)).sign(TTL), &[], vec![]).text,
    )
    .unwrap();
    let manifest = l.contents.iter().find(|c| c.key == "img/manifest").unwrap();
    assert_eq!(manifest.etag.as_deref().map(|e| e.trim_matches('"')), Some(md5_hex(b"from nfs").as_str()));
    // A file replaced behind S3's back gets a fresh ETag.
    std::fs::write(&file, b"rewritten by nfs").unwrap();
    let h = s3.send("HEAD", &s3.bucket.head_object(Some(&s3.creds), "img/piece-1").sign(TTL), &[], vec![]);
    assert_eq!(h.headers["etag"], format!("\"{}\"", md5_hex(b"rewritten by nfs")).as_str());
    // Keys that cannot be file names are refused rather than mangled.
    assert_eq!(s3.put("a//b", b"x").status, 400);
}

/// §10: CopyObject, and VAST's `x-amz-copy-disposition: replace` atomic rename.
#[test]
fn s10_copy_and_rename() {
    let env = start();
    let s3 = setup(&env, "cpb", "copier");
    s3.put("tmp/img.part", b"payload");
    let mut c = s3.bucket.put_object(Some(&s3.creds), "copy/img");
    c.headers_mut().insert("x-amz-copy-source", "cpb/tmp/img.part");
    let r = s3.send("PUT", &c.sign(TTL), &[("x-amz-copy-source", "cpb/tmp/img.part")], vec![]);
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains("<CopyObjectResult"));
    assert_eq!(s3.get("copy/img"), (200, b"payload".to_vec()));
    assert_eq!(s3.get("tmp/img.part").0, 200);

    let hdrs = [("x-amz-copy-source", "/cpb/tmp/img.part"), ("x-amz-copy-disposition", "replace")];
    let mut m = s3.bucket.put_object(Some(&s3.creds), "final/img");
    for (k, v) in hdrs {
        m.headers_mut().insert(k, v);
    }
    let r = s3.send("PUT", &m.sign(TTL), &hdrs, vec![]);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(s3.get("final/img"), (200, b"payload".to_vec()));
    assert_eq!(s3.get("tmp/img.part").0, 404, "rename moved the source");

    // With REPLACE metadata the rename is refused.
    s3.put("tmp/two", b"2");
    let hdrs = [
        ("x-amz-copy-source", "cpb/tmp/two"),
        ("x-amz-copy-disposition", "replace"),
        ("x-amz-metadata-directive", "REPLACE"),
    ];
    let mut m = s3.bucket.put_object(Some(&s3.creds), "final/two");
    for (k, v) in hdrs {
        m.headers_mut().insert(k, v);
    }
    assert_eq!(s3.send("PUT", &m.sign(TTL), &hdrs, vec![]).status, 400);
}

/// §10: signatures — a tampered signature, a wrong secret, an unknown or disabled key,
/// anonymous requests, and another user's bucket.
#[test]
fn s10_signature_and_access_checks() {
    let env = start();
    let s3 = setup(&env, "sig", "signer");
    s3.put("k", b"v");
    let url = s3.bucket.get_object(Some(&s3.creds), "k").sign(TTL);
    let mut tampered = url.clone();
    let q: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "X-Amz-Signature" {
                let mut s = v.to_string();
                let last = s.pop().unwrap();
                s.push(if last == '0' { '1' } else { '0' });
                s
            } else {
                v.to_string()
            };
            (k.to_string(), v)
        })
        .collect();
    tampered.query_pairs_mut().clear().extend_pairs(q);
    let r = s3.send("GET", &tampered, &[], vec![]);
    assert_eq!(r.status, 403);
    assert!(r.text.contains("<Code>SignatureDoesNotMatch</Code>"), "{}", r.text);
    // Signed for one key, sent for another.
    let mut moved = url.clone();
    moved.set_path("/sig/other");
    assert_eq!(s3.send("GET", &moved, &[], vec![]).status, 403);

    let wrong = S3::new(&env.sim.s3_endpoints()[0], "sig", s3.creds.key(), "not-the-secret");
    assert!(wrong
        .send("GET", &wrong.bucket.get_object(Some(&wrong.creds), "k").sign(TTL), &[], vec![])
        .text
        .contains("SignatureDoesNotMatch"));
    let unknown = S3::new(&env.sim.s3_endpoints()[0], "sig", "AKNOTAKEY", "x");
    let r = unknown.send("GET", &unknown.bucket.get_object(Some(&unknown.creds), "k").sign(TTL), &[], vec![]);
    assert_eq!(r.status, 403);
    assert!(r.text.contains("InvalidAccessKeyId"));
    let anon = s3.send("GET", &s3.bucket.get_object(None, "k").sign(TTL), &[], vec![]);
    assert_eq!(anon.status, 403);
    assert!(anon.text.contains("AccessDenied"));

    // A second user cannot read the first user's bucket.
    let (_, ak2, sk2) = env.s3_user("intruder");
    let other = S3::new(&env.sim.s3_endpoints()[2], "sig", &ak2, &sk2);
    let r = other.send("GET", &other.bucket.get_object(Some(&other.creds), "k").sign(TTL), &[], vec![]);
    assert_eq!(r.status, 403);
    assert!(r.text.contains("AccessDenied"));

    // Disabling the key through VMS locks S3 out; re-enabling lets it back in.
    let uid = env.api("GET", "users/?name=signer", None).json()[0]["id"].as_u64().unwrap();
    let p = env.api(
        "PATCH",
        &format!("users/{uid}/access_keys/"),
        Some(json!({"access_key": s3.creds.key(), "enabled": false})),
    );
    assert_eq!(p.status, 204);
    assert_eq!(s3.get("k").0, 403);
    env.api(
        "PATCH",
        &format!("users/{uid}/access_keys/"),
        Some(json!({"access_key": s3.creds.key(), "enabled": true})),
    );
    assert_eq!(s3.get("k").0, 200);
}

/// §10: Content-MD5 and x-amz-checksum-crc32c are checked when sent.
#[test]
fn s10_integrity_headers() {
    use base64::Engine;
    let env = start();
    let s3 = setup(&env, "sums", "summer");
    let data = b"integrity matters".to_vec();
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let good_md5 = b64(&md5::Md5::digest(&data));
    use md5::Digest;
    let put = |hdrs: &[(&str, &str)]| {
        let mut a = s3.bucket.put_object(Some(&s3.creds), "obj");
        for (k, v) in hdrs {
            a.headers_mut().insert(k.to_string(), v.to_string());
        }
        s3.send("PUT", &a.sign(TTL), hdrs, data.clone())
    };
    assert_eq!(put(&[("content-md5", &good_md5)]).status, 200);
    let bad = put(&[("content-md5", &b64(&[0u8; 16]))]);
    assert_eq!(bad.status, 400);
    assert!(bad.text.contains("BadDigest"));
    let crc = b64(&crc32c::crc32c(&data).to_be_bytes());
    let ok = put(&[("x-amz-checksum-crc32c", &crc)]);
    assert_eq!(ok.status, 200);
    assert_eq!(ok.headers["x-amz-checksum-crc32c"], crc.as_str());
    let bad = put(&[("x-amz-checksum-crc32c", &b64(&[1, 2, 3, 4]))]);
    assert_eq!(bad.status, 400);
    assert!(bad.text.contains("BadDigest"), "{}", bad.text);
    // The failed puts left the good object in place.
    assert_eq!(s3.get("obj"), (200, data.clone()));
}

/// §12.5: quotas refuse S3 writes past hard_limit; `used_capacity` follows S3 writes.
#[test]
fn s12_quota_follows_and_limits_s3_writes() {
    let env = start();
    let s3 = setup(&env, "quota", "quser");
    let q = env.api(
        "POST",
        "quotas/",
        Some(json!({"name": "qb", "path": "/buckets/quota", "hard_limit": 10_000})),
    );
    assert_eq!(q.status, 201, "{}", q.text);
    let qid = q.json()["id"].as_u64().unwrap();
    assert_eq!(s3.put("a", &[0u8; 6000]).status, 200);
    assert_eq!(env.api("GET", &format!("quotas/{qid}/"), None).json()["used_capacity"], 6000);
    let over = s3.put("b", &[0u8; 5000]);
    assert_eq!(over.status, 403);
    assert!(over.text.contains("<Code>QuotaExceeded</Code>"), "{}", over.text);
    // A large refused upload still gets its answer (the body is drained, not reset).
    let big = s3.put("c", &vec![0u8; 24 << 20]);
    assert_eq!(big.status, 403);
    assert!(big.text.contains("QuotaExceeded"));
    let nob = S3::new(&env.sim.s3_endpoints()[0], "nosuchbucket", s3.creds.key(), s3.creds.secret());
    assert_eq!(nob.put("k", &vec![0u8; 24 << 20]).status, 404);
    assert_eq!(s3.get("b").0, 404);
    // Replacing an object counts only the difference.
    assert_eq!(s3.put("a", &[0u8; 9000]).status, 200);
    assert_eq!(env.api("GET", &format!("quotas/{qid}/"), None).json()["used_capacity"], 9000);
    assert_eq!(env.api("GET", "views/?bucket=quota", None).json()[0]["logical_capacity"], 9000);
    assert_eq!(s3.delete("a").status, 204);
    assert_eq!(env.api("GET", &format!("quotas/{qid}/"), None).json()["used_capacity"], 0);
}

// ---------------------------------------------------------------------------------------
// Header-form SigV4 (what aws-sdk and most clients send).

mod header_sig {
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};

    fn hmac(k: &[u8], d: &[u8]) -> Vec<u8> {
        let mut m = Hmac::<Sha256>::new_from_slice(k).unwrap();
        m.update(d);
        m.finalize().into_bytes().to_vec()
    }

    /// Signs with the Authorization header; `headers` must be lowercase and include host.
    #[allow(clippy::too_many_arguments)]
    pub fn sign(
        method: &str,
        path: &str,
        query: &str,
        headers: &mut Vec<(String, String)>,
        payload_hash: &str,
        ak: &str,
        sk: &str,
        amz_date: &str,
    ) {
        headers.push(("x-amz-content-sha256".into(), payload_hash.into()));
        headers.push(("x-amz-date".into(), amz_date.into()));
        headers.sort();
        let signed: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
        let canon_headers: String = headers.iter().map(|(k, v)| format!("{k}:{}\n", v.trim())).collect();
        let creq =
            format!("{method}\n{path}\n{query}\n{canon_headers}\n{}\n{payload_hash}", signed.join(";"));
        let date = &amz_date[..8];
        let scope = format!("{date}/us-east-1/s3/aws4_request");
        let sts = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex::encode(Sha256::digest(creq.as_bytes()))
        );
        let k = hmac(format!("AWS4{sk}").as_bytes(), date.as_bytes());
        let k = hmac(&hmac(&hmac(&k, b"us-east-1"), b"s3"), b"aws4_request");
        let sig = hex::encode(hmac(&k, sts.as_bytes()));
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={ak}/{scope},SignedHeaders={},Signature={sig}",
            signed.join(";")
        );
        headers.push(("authorization".into(), auth));
    }
}

fn amz_now() -> String {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    // civil_from_days, as in the simulator (a test-local copy keeps the signer independent).
    let z = t.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    let s = t.rem_euclid(86_400);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", s / 3600, s / 60 % 60, s % 60)
}

/// §10: the Authorization-header form with a real payload hash (verified against the body)
/// and with UNSIGNED-PAYLOAD. The test's signer is first checked against the AWS example.
#[test]
fn s10_header_form_sigv4() {
    use sha2::{Digest, Sha256};
    // The signer reproduces AWS's documented "GET Object" signature.
    let mut h = vec![
        ("host".to_string(), "examplebucket.s3.amazonaws.com".to_string()),
        ("range".to_string(), "bytes=0-9".to_string()),
    ];
    header_sig::sign(
        "GET",
        "/test.txt",
        "",
        &mut h,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "20130524T000000Z",
    );
    assert!(h
        .last()
        .unwrap()
        .1
        .ends_with("Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"));

    let env = start();
    let (_, ak, sk) = env.s3_user("hdr");
    env.bucket_view("hdrb", "hdr");
    let ep = env.sim.s3_endpoints()[1].clone();
    let host = ep.trim_start_matches("http://").to_string();
    let agent = agent(None);
    let send = |method: &str, pq: &str, body: &[u8], hash: &str, tamper_body: bool| -> Reply {
        // `pq` is path[?query]; the query is canonicalised as `k=` pairs (enough here).
        let (path, query) = pq.split_once('?').unwrap_or((pq, ""));
        let mut canon: Vec<String> = query
            .split('&')
            .filter(|q| !q.is_empty())
            .map(|q| if q.contains('=') { q.to_string() } else { format!("{q}=") })
            .collect();
        canon.sort();
        let mut h = vec![("host".to_string(), host.clone())];
        header_sig::sign(method, path, &canon.join("&"), &mut h, hash, &ak, &sk, &amz_now());
        let mut b = http::Request::builder().method(method).uri(format!("{ep}{pq}"));
        for (k, v) in &h {
            if k != "host" {
                b = b.header(k.as_str(), v.as_str());
            }
        }
        let mut body = body.to_vec();
        if tamper_body {
            body[0] ^= 1;
        }
        let r = agent.run(b.body(body).unwrap()).unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        Reply { status, headers, text: r.into_body().read_to_string().unwrap_or_default() }
    };
    let data = b"signed payload".to_vec();
    let hash = hex::encode(Sha256::digest(&data));
    let r = send("PUT", "/hdrb/a%20key", &data, &hash, false);
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(env.sim.root().join("buckets/hdrb/a key").is_file());
    // `..` cannot climb out of the bucket (URL libraries normalise it away, so raw here).
    let r = send("PUT", "/hdrb/../escape", &data, &hash, false);
    assert_eq!(r.status, 400, "{}", r.text);
    let r = send("PUT", "/hdrb/x", &data, &hash, true);
    assert_eq!(r.status, 400);
    assert!(r.text.contains("XAmzContentSHA256Mismatch"), "{}", r.text);
    let r = send("PUT", "/hdrb/u", &data, "UNSIGNED-PAYLOAD", false);
    assert_eq!(r.status, 200, "{}", r.text);
    let r = send("GET", "/hdrb/u", b"", "UNSIGNED-PAYLOAD", false);
    assert_eq!((r.status, r.text.as_str()), (200, "signed payload"));
    let r = send("GET", "/", b"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", false);
    assert_eq!(r.status, 200);
    assert!(r.text.contains("<Name>hdrb</Name>"), "ListBuckets: {}", r.text);
    // ListObjects (v1) with a delimiter.
    let r = send("GET", "/hdrb?delimiter=%2F&prefix=", b"", "UNSIGNED-PAYLOAD", false);
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains("<Key>a key</Key>") && r.text.contains("<Key>u</Key>"), "{}", r.text);
    // ListMultipartUploads (rusty-s3 has no action for it).
    let r = send("POST", "/hdrb/mp/obj?uploads", b"", "UNSIGNED-PAYLOAD", false);
    assert_eq!(r.status, 200, "{}", r.text);
    let r = send("GET", "/hdrb?uploads", b"", "UNSIGNED-PAYLOAD", false);
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains("<Key>mp/obj</Key>"), "{}", r.text);
    let r = send("GET", "/hdrb?uploads&prefix=zzz", b"", "UNSIGNED-PAYLOAD", false);
    assert!(!r.text.contains("<Upload>"), "{}", r.text);
}

/// §10: CreateBucket over S3 (needs `allow_create_bucket`) makes a view; DeleteBucket needs
/// an empty bucket and `allow_delete_bucket`.
#[test]
fn s10_create_and_delete_bucket_over_s3() {
    let env = start();
    let (_, ak, sk) = env.s3_user("maker");
    let s3 = S3::new(&env.sim.s3_endpoints()[0], "made-by-s3", &ak, &sk);
    let uid = env.api("GET", "users/?name=maker", None).json()[0]["id"].as_u64().unwrap();
    let r = s3.send("PUT", &s3.bucket.create_bucket(&s3.creds).sign(TTL), &[], vec![]);
    assert_eq!(r.status, 403, "allow_create_bucket is off by default: {}", r.text);
    env.api(
        "PATCH",
        &format!("users/{uid}/"),
        Some(json!({"allow_create_bucket": true, "allow_delete_bucket": true})),
    );
    let r = s3.send("PUT", &s3.bucket.create_bucket(&s3.creds).sign(TTL), &[], vec![]);
    assert_eq!(r.status, 200, "{}", r.text);
    let v = env.api("GET", "views/?bucket=made-by-s3", None).json();
    assert_eq!(v[0]["bucket_owner"], "maker");
    assert_eq!(v[0]["policy"], "s3_default_policy");
    let head = s3.send("HEAD", &s3.bucket.head_bucket(Some(&s3.creds)).sign(TTL), &[], vec![]);
    assert_eq!(head.status, 200);
    s3.put("k", b"v");
    let r = s3.send("DELETE", &s3.bucket.delete_bucket(&s3.creds).sign(TTL), &[], vec![]);
    assert_eq!(r.status, 409);
    assert!(r.text.contains("BucketNotEmpty"));
    s3.delete("k");
    let r = s3.send("DELETE", &s3.bucket.delete_bucket(&s3.creds).sign(TTL), &[], vec![]);
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(env.api("GET", "views/?bucket=made-by-s3", None).json().as_array().unwrap().is_empty());
    let head = s3.send("HEAD", &s3.bucket.head_bucket(Some(&s3.creds)).sign(TTL), &[], vec![]);
    assert_eq!(head.status, 404);
}

/// Malformed requests get HTTP errors, never a dropped connection, and the simulator keeps
/// serving afterwards.
#[test]
fn malformed_requests_get_http_errors() {
    let env = start();
    let s3 = setup(&env, "robust", "robust-user");
    let ep = env.sim.s3_endpoints()[0].clone();
    let a = agent(None);
    let raw_s3 = |method: &str, pq: &str, headers: &[(&str, &str)], body: &[u8]| -> u16 {
        let mut b = http::Request::builder().method(method).uri(format!("{ep}{pq}"));
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        a.run(b.body(body.to_vec()).unwrap()).expect("an HTTP answer").status().as_u16()
    };
    assert_eq!(raw_s3("GET", "/robust/k", &[("authorization", "AWS4-HMAC-SHA256 garbage")], b""), 400);
    assert_eq!(
        raw_s3(
            "GET",
            "/robust/k",
            &[("authorization", "AWS4-HMAC-SHA256 Credential=a/b,SignedHeaders=host,Signature=00")],
            b""
        ),
        400
    );
    assert_eq!(raw_s3("GET", "/robust/k", &[("authorization", "AWS AKID:sig")], b""), 403);
    assert_eq!(raw_s3("GET", "/robust/%zz", &[], b""), 400);
    assert_eq!(raw_s3("GET", "/robust/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=x", &[], b""), 400);
    assert_eq!(raw_s3("GET", "/robust/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F2020%2Fr%2Fs3%2Faws4_request&X-Amz-Date=nonsense&X-Amz-Expires=10&X-Amz-SignedHeaders=host&X-Amz-Signature=00", &[], b""), 403);
    // Signed but nonsensical bodies and parameters.
    let mut c =
        s3.bucket.complete_multipart_upload(Some(&s3.creds), "k", "nosuchupload", std::iter::empty::<&str>());
    c.query_mut().insert("x", "y");
    assert_eq!(s3.send("POST", &c.sign(TTL), &[], b"<not xml".to_vec()).status, 404);
    let id = {
        let r =
            s3.send("POST", &s3.bucket.create_multipart_upload(Some(&s3.creds), "k").sign(TTL), &[], vec![]);
        rusty_s3::actions::CreateMultipartUpload::parse_response(&r.text).unwrap().upload_id().to_string()
    };
    let c = s3.bucket.complete_multipart_upload(Some(&s3.creds), "k", &id, std::iter::empty::<&str>());
    assert_eq!(s3.send("POST", &c.sign(TTL), &[], b"<not xml".to_vec()).status, 400);
    let c = s3.bucket.complete_multipart_upload(Some(&s3.creds), "k", &id, std::iter::empty::<&str>());
    assert_eq!(
        s3.send(
            "POST",
            &c.sign(TTL),
            &[],
            "<CompleteMultipartUpload><Part><PartNumber>x</PartNumber></Part></CompleteMultipartUpload>"
                .into()
        )
        .status,
        400
    );
    let up = s3.bucket.upload_part(Some(&s3.creds), "k", 0, &id);
    assert_eq!(s3.send("PUT", &up.sign(TTL), &[], b"x".to_vec()).status, 400);
    let mut l = s3.bucket.list_objects_v2(Some(&s3.creds));
    l.with_continuation_token("!!!not-base64");
    assert_eq!(s3.send("GET", &l.sign(TTL), &[], vec![]).status, 400);
    let mut l = s3.bucket.list_objects_v2(Some(&s3.creds));
    l.query_mut().insert("max-keys", "many");
    assert_eq!(s3.send("GET", &l.sign(TTL), &[], vec![]).status, 400);
    let url = s3.bucket.get_object(Some(&s3.creds), "k").sign(TTL);
    assert_eq!(
        s3.send("GET", &url, &[("range", "bytes=zz")], vec![]).status,
        404,
        "no such key; range ignored"
    );
    let mut cp = s3.bucket.put_object(Some(&s3.creds), "dst");
    cp.headers_mut().insert("x-amz-copy-source", "nobucketonly");
    assert_eq!(s3.send("PUT", &cp.sign(TTL), &[("x-amz-copy-source", "nobucketonly")], vec![]).status, 400);

    // VMS: bad JSON, wrong types, odd paths and headers.
    let auth = env.admin_auth();
    for (m, p, body) in [
        ("POST", "/api/views/", Some(json!([1, 2]))),
        ("POST", "/api/views/", Some(json!({"path": 5, "policy_id": "x"}))),
        ("PATCH", "/api/views/abc/", Some(json!({}))),
        ("GET", "/api/views/?page=0&page_size=1", None),
        ("GET", "/api/views/?id__regex=.*", None),
        ("POST", "/api/vippools/", Some(json!({"ip_ranges": "10.0.0.1", "subnet_cidr": 24}))),
        ("POST", "/api/users/1/access_keys/", Some(json!("str"))),
        ("PATCH", "/api/users/1/access_keys/", Some(json!({"access_key": "nope", "enabled": "maybe"}))),
        ("POST", "/api/folders/stat_path/", Some(json!({"path": "/../etc", "tenant_id": 1}))),
        ("GET", "/api/capacity/?path=/nonexistent", None),
        ("POST", "/api/token/", Some(json!({"username": 1}))),
        ("POST", "/api/token/refresh/", Some(json!({"refresh": "a.b.c"}))),
    ] {
        let r = env.raw(m, p, Some(&auth), body.as_ref());
        assert!((400..500).contains(&r.status), "{m} {p}: {} {}", r.status, r.text);
    }
    let r = env
        .agent
        .run(
            http::Request::builder()
                .method("POST")
                .uri(format!("{}/api/views/", env.sim.vms_url()))
                .header("authorization", &auth)
                .body(b"{not json".to_vec())
                .unwrap(),
        )
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    for h in ["Basic !!!", "Basic YWRtaW4=", "Bearer a.b", "Api-Token", "Weird scheme"] {
        assert_eq!(env.raw("GET", "/api/views/", Some(h), None).status, 403, "{h}");
    }
    // Still healthy.
    assert_eq!(s3.put("ok", b"fine").status, 200);
    assert_eq!(env.api("GET", "health/", None).status, 200);
}

/// Large objects stream through temp files (no whole-object buffering). Ignored by default:
/// `cargo test -p vast-sim --test s3 -- --ignored --nocapture` prints the throughput.
#[test]
#[ignore]
fn large_object_throughput() {
    let env = start();
    let s3 = setup(&env, "large", "large-user");
    let data: Vec<u8> = (0..(256u32 << 20)).map(|i| (i >> 12) as u8).collect();
    let t = std::time::Instant::now();
    assert_eq!(s3.put("big", &data).status, 200);
    let put = t.elapsed();
    let t = std::time::Instant::now();
    let (st, got) = s3.get("big");
    let get = t.elapsed();
    assert_eq!(st, 200);
    assert!(got == data);
    let mib = data.len() as f64 / (1 << 20) as f64;
    println!("PUT {:.0} MiB/s, GET {:.0} MiB/s", mib / put.as_secs_f64(), mib / get.as_secs_f64());
}

/// Conditional writes (`If-None-Match: *`, `If-Match`) and CRC32C multipart checksums: AWS
/// semantics, used by the plug-in for exclusive manifests (not stated for VAST in the
/// reference; see the crate README).
#[test]
fn conditional_writes_and_multipart_crc32c() {
    use base64::Engine;
    let env = start_with(|c| c.min_part_size = 16);
    let s3 = setup(&env, "cond", "conduser");
    let put = |key: &str, body: &[u8], hdrs: &[(&str, &str)]| {
        let mut a = s3.bucket.put_object(Some(&s3.creds), key);
        for (k, v) in hdrs {
            a.headers_mut().insert(k.to_string(), v.to_string());
        }
        s3.send("PUT", &a.sign(TTL), hdrs, body.to_vec())
    };
    assert_eq!(put("m", b"one", &[("if-none-match", "*")]).status, 200);
    let again = put("m", b"two", &[("if-none-match", "*")]);
    assert_eq!(again.status, 412, "{}", again.text);
    assert_eq!(s3.get("m").1, b"one");
    let etag = format!("\"{}\"", md5_hex(b"one"));
    assert_eq!(put("m", b"three", &[("if-match", &etag)]).status, 200);
    assert_eq!(put("m", b"four", &[("if-match", &etag)]).status, 412);
    assert_eq!(put("absent", b"x", &[("if-match", &etag)]).status, 404);
    // The knob that plays a server ignoring both: 200 OK, and the write happens.
    env.sim.set_ignore_preconditions(true);
    assert_eq!(put("m", b"five", &[("if-none-match", "*")]).status, 200);
    assert_eq!(put("m", b"six", &[("if-match", &etag)]).status, 200);
    assert_eq!(s3.get("m").1, b"six");
    env.sim.set_ignore_preconditions(false);
    assert_eq!(put("m", b"seven", &[("if-none-match", "*")]).status, 412);

    // Multipart with x-amz-checksum-algorithm: CRC32C.
    let b64 = |c: u32| base64::engine::general_purpose::STANDARD.encode(c.to_be_bytes());
    let mut c = s3.bucket.create_multipart_upload(Some(&s3.creds), "mp");
    c.headers_mut().insert("x-amz-checksum-algorithm", "CRC32C");
    let r = s3.send("POST", &c.sign(TTL), &[("x-amz-checksum-algorithm", "CRC32C")], vec![]);
    let id =
        rusty_s3::actions::CreateMultipartUpload::parse_response(&r.text).unwrap().upload_id().to_string();
    let parts: [&[u8]; 2] = [&[5u8; 32], b"tail"];
    let mut xml = String::from("<CompleteMultipartUpload>");
    for (i, p) in parts.iter().enumerate() {
        let crc = b64(crc32c::crc32c(p));
        let mut u = s3.bucket.upload_part(Some(&s3.creds), "mp", i as u16 + 1, &id);
        u.headers_mut().insert("x-amz-checksum-crc32c", crc.clone());
        let r = s3.send("PUT", &u.sign(TTL), &[("x-amz-checksum-crc32c", &crc)], p.to_vec());
        assert_eq!(r.status, 200, "{}", r.text);
        let e = r.headers["etag"].to_str().unwrap();
        xml.push_str(&format!(
            "<Part><PartNumber>{}</PartNumber><ETag>{e}</ETag><ChecksumCRC32C>{crc}</ChecksumCRC32C></Part>",
            i + 1
        ));
    }
    xml.push_str("</CompleteMultipartUpload>");
    let complete = |body: String| {
        let c = s3.bucket.complete_multipart_upload(Some(&s3.creds), "mp", &id, std::iter::empty::<&str>());
        s3.send("POST", &c.sign(TTL), &[], body.into_bytes())
    };
    let wrong = xml.replacen("<ChecksumCRC32C>", "<ChecksumCRC32C>AAAA", 1);
    assert_eq!(complete(wrong).status, 400);
    let missing =
        xml.replace(&format!("<ChecksumCRC32C>{}</ChecksumCRC32C>", b64(crc32c::crc32c(b"tail"))), "");
    assert_eq!(complete(missing).status, 400);
    let r = complete(xml);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(s3.get("mp").1.len(), 36);
}
