//! The S3 backend against a real Ceph radosgw: the image conformance suite, plus what only S3
//! has (multipart pipeline, read-ahead, server-side copy, open uploads, endpoint failover).
//!
//! Needs `VAST_OST_TEST_S3=http://127.0.0.1:7480` (what `scripts/ceph-rgw start` prints) and
//! the test user's keys in `VAST_OST_TEST_S3_ACCESS_KEY` / `VAST_OST_TEST_S3_SECRET_KEY`
//! (default `testkey` / `testsecret`, as the script creates them). Without the endpoint every
//! test says it was skipped and passes. The small-part runs need radosgw's
//! `rgw_multipart_min_part_size` at 64 KiB, as the script sets it.
//!
//! Tests take one lock: they share one radosgw, and the memory checks read the process's
//! peak RSS.

mod conformance;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rusty_s3::Method;
use vast_ost_engine::filter::LsuFilter;
use vast_ost_engine::image::{self, ImageReader, ImageWriter};
use vast_ost_engine::manifest::ImageDef;
use vast_ost_engine::retry::RetryPolicy;
use vast_ost_engine::store::s3::client::Req;
use vast_ost_engine::store::s3::{ChecksumMode, S3Settings, S3Store};
use vast_ost_engine::store::PieceStore;
use vast_ost_engine::ErrorKind;

const MIB: usize = 1 << 20;

static LOCK: Mutex<()> = Mutex::new(());

struct Env {
    endpoint: String,
    ak: String,
    sk: String,
}

fn env() -> Option<Env> {
    let endpoint = std::env::var("VAST_OST_TEST_S3").ok().filter(|s| !s.is_empty())?;
    Some(Env {
        endpoint,
        ak: std::env::var("VAST_OST_TEST_S3_ACCESS_KEY").unwrap_or_else(|_| "testkey".into()),
        sk: std::env::var("VAST_OST_TEST_S3_SECRET_KEY").unwrap_or_else(|_| "testsecret".into()),
    })
}

/// The lock and the environment, or `None` (after saying so) when no radosgw is configured.
fn setup(test: &str) -> Option<(MutexGuard<'static, ()>, Env)> {
    let Some(e) = env() else {
        // Past the harness's capture, so that the skip shows in CI logs.
        let _ = writeln!(
            std::io::stderr(),
            "{test}: skipped (set VAST_OST_TEST_S3 to a radosgw endpoint, see scripts/ceph-rgw)"
        );
        return None;
    };
    Some((LOCK.lock().unwrap_or_else(|p| p.into_inner()), e))
}

fn settings(e: &Env) -> S3Settings {
    let mut s = S3Settings::new(vec![e.endpoint.clone()], &e.ak, &e.sk);
    s.part_size = 5 * MIB as u64;
    s.copy_part_size = 5 * MIB as u64;
    s
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_millis(10),
        cap: Duration::from_millis(100),
        deadline: Duration::from_secs(20),
        max_attempts: 4,
    }
}

fn store(s: &S3Settings) -> Arc<S3Store> {
    Arc::new(S3Store::with_retry(s, LsuFilter::default(), fast_retry()).unwrap())
}

/// Buckets made for one test, emptied and removed when it ends.
struct Buckets {
    admin: Arc<S3Store>,
    names: Vec<String>,
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

impl Buckets {
    fn new(e: &Env, n: usize) -> Buckets {
        let admin = store(&settings(e));
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u32;
        let run = format!("{:08x}", std::process::id() ^ nanos);
        let mut names = Vec::new();
        for i in 0..n {
            let name = format!("vost-{run}-{}-{i}", SEQ.fetch_add(1, Ordering::Relaxed));
            raw(&admin, Method::Put, &name, None, &[], &[]).expect("CreateBucket");
            names.push(name);
        }
        Buckets { admin, names }
    }
}

impl Drop for Buckets {
    fn drop(&mut self) {
        for b in &self.names {
            if let Ok(ups) = self.admin.list_uploads(b, "") {
                for (k, id) in ups {
                    let _ = raw(&self.admin, Method::Delete, b, Some(&k), &[("uploadId", id)], &[]);
                }
            }
            if let Ok((objs, _)) = self.admin.list_objects(b, "", None) {
                for (k, _) in objs {
                    let _ = raw(&self.admin, Method::Delete, b, Some(&k), &[], &[]);
                }
            }
            let _ = raw(&self.admin, Method::Delete, b, None, &[], &[]);
        }
    }
}

/// One request as the store would send it; the 2xx body and the headers asked for.
fn raw(
    s: &S3Store,
    method: Method,
    bucket: &str,
    key: Option<&str>,
    query: &[(&'static str, String)],
    body: &[u8],
) -> vast_ost_engine::Result<(Vec<u8>, Option<String>)> {
    let c = s.client();
    c.call(
        0,
        "test request",
        || {
            let mut r = Req::new(method, bucket, key).body(body);
            r.query.extend(query.iter().cloned());
            r
        },
        |mut r| {
            let etag = r.header("etag").map(str::to_string);
            Ok((r.bytes("test request", 256 << 20)?, etag))
        },
    )
}

fn etag(s: &S3Store, bucket: &str, key: &str) -> String {
    raw(s, Method::Head, bucket, Some(key), &[], &[]).unwrap().1.unwrap_or_default()
}

/// Deterministic, incompressible bytes of offset `off` of stream `seed`, fast to make.
fn gen(seed: u64, off: u64, buf: &mut [u8]) {
    let mut pos = off;
    let mut i = 0;
    while i < buf.len() {
        let mut z = (pos / 8).wrapping_add(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        let w = (z ^ (z >> 31)).to_le_bytes();
        let start = (pos % 8) as usize;
        let take = (8 - start).min(buf.len() - i);
        buf[i..i + take].copy_from_slice(&w[start..start + take]);
        i += take;
        pos += take as u64;
    }
}

fn write_piece(s: &S3Store, lsu: &str, key: &str, seed: u64, len: usize, block: usize) {
    let mut w = s.create_piece(lsu, key).unwrap();
    let mut buf = vec![0u8; block];
    let mut off = 0;
    while off < len {
        let n = block.min(len - off);
        gen(seed, off as u64, &mut buf[..n]);
        w.append(&buf[..n]).unwrap();
        off += n;
    }
    w.finish().unwrap();
}

fn check_range(seed: u64, off: u64, got: &[u8]) {
    let mut want = vec![0u8; got.len()];
    gen(seed, off, &mut want);
    if want != got {
        let i = want.iter().zip(got).position(|(a, b)| a != b).unwrap();
        panic!("byte {} differs (read of {} bytes at {off})", off + i as u64, got.len());
    }
}

fn status_kb(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Reset the peak RSS to the current RSS (Linux `clear_refs` 5), and return the RSS.
fn reset_peak() -> u64 {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    status_kb("VmRSS:")
}

/// CPU seconds (user + system) of this process so far.
fn cpu_secs() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}

// ---------------------------------------------------------------------------------------------
// Conformance

struct S3Target {
    store: Arc<S3Store>,
    b: Buckets,
}

impl conformance::Target for S3Target {
    fn store(&self) -> Arc<dyn PieceStore> {
        self.store.clone()
    }
    fn lsus(&self) -> (String, String) {
        (self.b.names[0].clone(), self.b.names[1].clone())
    }
    fn flip_bit(&self, lsu: &str, key: &str, at: u64) {
        let (mut bytes, _) = raw(&self.store, Method::Get, lsu, Some(key), &[], &[]).unwrap();
        bytes[at as usize] ^= 1;
        raw(&self.store, Method::Put, lsu, Some(key), &[], &bytes).unwrap();
    }
    fn put_raw_manifest(&self, lsu: &str, image: &str, bytes: &[u8]) {
        raw(&self.store, Method::Put, lsu, Some(&format!("{image}/manifest")), &[], bytes).unwrap();
    }
}

fn no_leftovers(t: &S3Target) {
    for b in &t.b.names {
        let (objs, _) = t.store.list_objects(b, "", None).unwrap();
        assert!(objs.is_empty(), "objects left in {b}: {objs:?}");
        let ups = t.store.list_uploads(b, "").unwrap();
        assert!(ups.is_empty(), "uploads left open in {b}: {ups:?}");
    }
}

#[test]
fn conformance_radosgw() {
    let Some((_g, e)) = setup("conformance_radosgw") else { return };
    let t = S3Target { store: store(&settings(&e)), b: Buckets::new(&e, 2) };
    conformance::run_all(&t);
    no_leftovers(&t);
}

/// radosgw behind a proxy that takes If-None-Match and If-Match out of every request, as a
/// server that ignores them: the probe sees both ignored, and the claim and lease protocols
/// keep creates exclusive and replaces compare-and-swap (the whole suite, racing creators
/// included).
#[test]
fn conformance_radosgw_ignoring_preconditions() {
    use vast_ost_engine::store::s3::probe::Support;
    let Some((_g, e)) = setup("conformance_radosgw_ignoring_preconditions") else { return };
    let proxy = Proxy::start(&e.endpoint);
    proxy.strip_conditions.store(true, Ordering::Relaxed);
    let mut s = settings(&e);
    s.endpoints = vec![proxy.addr.clone()];
    let t = S3Target { store: store(&s), b: Buckets::new(&e, 2) };
    let f = t.store.features(&t.b.names[0]).unwrap().unwrap();
    assert_eq!((f.if_none_match, f.if_match), (Support::Ignored, Support::Ignored), "{f}");
    conformance::run(&t, &[conformance::COMMIT, conformance::SHARED]);
    no_leftovers(&t);
}

/// Every piece multipart (256 KiB parts), every copy UploadPartCopy, Content-MD5 checks, and
/// the claim protocol for every create and replace.
#[test]
fn conformance_radosgw_small_parts_md5() {
    let Some((_g, e)) = setup("conformance_radosgw_small_parts_md5") else { return };
    let mut s = settings(&e);
    s.create_mode = vast_ost_engine::store::s3::CreateMode::Claim;
    s.allow_small_parts = true;
    s.part_size = 256 << 10;
    s.copy_part_size = 256 << 10;
    s.upload_workers = 3;
    s.read_ahead = 2;
    s.checksum = ChecksumMode::Md5;
    let t = S3Target { store: store(&s), b: Buckets::new(&e, 2) };
    conformance::run(&t, &[conformance::DATA, conformance::COMMIT]);
    no_leftovers(&t);
}

#[test]
fn conformance_radosgw_no_checksum_no_read_ahead() {
    let Some((_g, e)) = setup("conformance_radosgw_no_checksum_no_read_ahead") else { return };
    let mut s = settings(&e);
    s.allow_small_parts = true;
    s.part_size = 1 << 20;
    s.read_ahead = 0;
    s.checksum = ChecksumMode::None;
    let t = S3Target { store: store(&s), b: Buckets::new(&e, 2) };
    conformance::run(&t, &[conformance::DATA]);
    no_leftovers(&t);
}

// ---------------------------------------------------------------------------------------------
// Write pipeline

/// 210 MiB in 5 MiB parts, 4 workers: 42 parts, and the process grows by no more than the
/// pipeline's bound (6 part buffers) plus slack.
#[test]
fn multipart_large_piece_parallel_bounded_memory() {
    let Some((_g, e)) = setup("multipart_large_piece_parallel_bounded_memory") else { return };
    let b = Buckets::new(&e, 1);
    let s = settings(&e);
    let st = store(&s);
    let lsu = &b.names[0];
    let len = 210 * MIB + 12_345;
    let rss0 = reset_peak();
    let t0 = Instant::now();
    write_piece(&st, lsu, "big_C1_F1/p-00001.piece", 21, len, 256 << 10);
    let secs = t0.elapsed().as_secs_f64();
    let growth_mib = (status_kb("VmHWM:").saturating_sub(rss0)) as f64 / 1024.0;
    let bound_mib = (s.part_size as usize * (s.upload_workers + 2) / MIB) as f64;
    eprintln!(
        "multipart: {} MiB in {secs:.2} s ({:.0} MiB/s), peak RSS growth {growth_mib:.1} MiB (bound {bound_mib} MiB)",
        len / MIB,
        len as f64 / MIB as f64 / secs
    );
    assert!(growth_mib < bound_mib + 16.0, "peak RSS grew {growth_mib:.1} MiB, bound {bound_mib} MiB");
    let tag = etag(&st, lsu, "big_C1_F1/p-00001.piece");
    assert!(tag.trim_matches('"').ends_with("-43"), "a 43-part multipart object, ETag {tag}");
    // Read it back whole, sequentially (read-ahead), checking every byte.
    let r = st.open_piece(lsu, "big_C1_F1/p-00001.piece").unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0u64;
    let rss1 = reset_peak();
    let t0 = Instant::now();
    loop {
        let n = r.read_at(&mut buf, off).unwrap();
        if n == 0 {
            break;
        }
        check_range(21, off, &buf[..n]);
        off += n as u64;
    }
    let secs = t0.elapsed().as_secs_f64();
    let growth_mib = (status_kb("VmHWM:").saturating_sub(rss1)) as f64 / 1024.0;
    eprintln!("read-ahead: {:.0} MiB/s, peak RSS growth {growth_mib:.1} MiB", off as f64 / MIB as f64 / secs);
    assert_eq!(off, len as u64);
    assert!(growth_mib < (s.part_size as usize * (s.read_ahead + 1) / MIB) as f64 + 16.0);
    assert!(st.list_uploads(lsu, "").unwrap().is_empty());
}

#[test]
fn checksum_modes_accepted() {
    let Some((_g, e)) = setup("checksum_modes_accepted") else { return };
    let b = Buckets::new(&e, 1);
    for (i, mode) in [ChecksumMode::Crc32c, ChecksumMode::Md5, ChecksumMode::None].into_iter().enumerate() {
        let mut s = settings(&e);
        s.checksum = mode;
        let st = store(&s);
        for (len, name) in [(12 * MIB + 1, "multi"), (1000, "single")] {
            let key = format!("ck_C1_F1/{name}-{i}.piece");
            write_piece(&st, &b.names[0], &key, i as u64, len, 300_000);
            let r = st.open_piece(&b.names[0], &key).unwrap();
            let mut back = vec![0u8; len];
            assert_eq!(r.read_at(&mut back, 0).unwrap(), len);
            check_range(i as u64, 0, &back);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Read path

#[test]
fn read_ahead_sequential_and_random_reads() {
    let Some((_g, e)) = setup("read_ahead_sequential_and_random_reads") else { return };
    let b = Buckets::new(&e, 1);
    let lsu = &b.names[0];
    let s = settings(&e);
    let st = store(&s);
    let len = 37 * MIB + 123;
    let key = "ra_C1_F1/p-1.piece";
    write_piece(&st, lsu, key, 5, len, 1 << 20);
    for ra in [4, 1, 0] {
        let mut s = settings(&e);
        s.read_ahead = ra;
        let st = store(&s);
        let r = st.open_piece(lsu, key).unwrap();
        // Sequential, in sizes that straddle the 5 MiB ranges.
        let mut buf = vec![0u8; MIB + 7];
        let mut off = 0u64;
        while off < len as u64 {
            let n = r.read_at(&mut buf, off).unwrap();
            assert!(n > 0);
            check_range(5, off, &buf[..n]);
            off += n as u64;
        }
        assert_eq!(r.read_at(&mut buf, off).unwrap(), 0, "end of piece");
        // Random reads, some inside the window, some far off, some at the very end.
        let mut x = 0x1234_5678_u64 + ra as u64;
        for _ in 0..60 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let off = x % len as u64;
            let want = 1 + (x >> 40) as usize % (3 * MIB);
            let mut b = vec![0u8; want];
            let n = r.read_at(&mut b, off).unwrap();
            assert_eq!(n, want.min(len - off as usize));
            check_range(5, off, &b[..n]);
        }
        let mut tail = vec![0u8; 1000];
        assert_eq!(r.read_at(&mut tail, len as u64 - 10).unwrap(), 10);
        check_range(5, len as u64 - 10, &tail[..10]);
        // Sequential again from the middle.
        let mut off = 17 * MIB as u64 + 3;
        for _ in 0..12 {
            let n = r.read_at(&mut buf, off).unwrap();
            check_range(5, off, &buf[..n]);
            off += n as u64;
        }
    }
    assert_eq!(st.open_piece(lsu, "ra_C1_F1/none.piece").err().unwrap().kind(), ErrorKind::NotFound);
}

// ---------------------------------------------------------------------------------------------
// Copy

#[test]
fn copy_piece_server_side_across_buckets() {
    let Some((_g, e)) = setup("copy_piece_server_side_across_buckets") else { return };
    let b = Buckets::new(&e, 2);
    let (a, z) = (&b.names[0], &b.names[1]);
    let s = settings(&e);
    let st = store(&s);
    let len = 23 * MIB + 5;
    write_piece(&st, a, "cp_C1_F1/p-1.piece", 9, len, 1 << 20);
    write_piece(&st, a, "cp_C1_F1/p-2.piece", 10, 4000, 4000);
    let rss0 = reset_peak();
    st.copy_piece(a, "cp_C1_F1/p-1.piece", z, "cp_C2_F1/p-1.piece").unwrap();
    st.copy_piece(a, "cp_C1_F1/p-2.piece", z, "cp_C2_F1/p-2.piece").unwrap();
    let growth_mib = (status_kb("VmHWM:").saturating_sub(rss0)) as f64 / 1024.0;
    assert!(growth_mib < 8.0, "a server-side copy moved data through the process ({growth_mib:.1} MiB)");
    let tag = etag(&st, z, "cp_C2_F1/p-1.piece");
    assert!(tag.trim_matches('"').ends_with("-5"), "UploadPartCopy of 5 ranges, ETag {tag}");
    for (key, seed, n) in [("cp_C2_F1/p-1.piece", 9, len), ("cp_C2_F1/p-2.piece", 10, 4000)] {
        let r = st.open_piece(z, key).unwrap();
        let mut back = vec![0u8; n];
        assert_eq!(r.read_at(&mut back, 0).unwrap(), n);
        check_range(seed, 0, &back);
    }
    let err = st.copy_piece(a, "cp_C1_F1/none.piece", z, "cp_C2_F1/p-3.piece").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(st.list_uploads(z, "").unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Delete

#[test]
fn delete_leaves_no_object_and_no_open_upload() {
    let Some((_g, e)) = setup("delete_leaves_no_object_and_no_open_upload") else { return };
    let b = Buckets::new(&e, 1);
    let lsu = &b.names[0];
    let st = store(&settings(&e));
    let def = ImageDef { basename: "gone_C1_F1".into(), date: "1".into(), ..Default::default() };
    let s: Arc<dyn PieceStore> = st.clone();
    let mut w = ImageWriter::create(s.clone(), lsu, def.clone()).unwrap();
    let mut buf = vec![0u8; 3 * MIB];
    gen(1, 0, &mut buf);
    w.write_at(&buf, 0).unwrap();
    w.write_at(&buf[..1000], 0).unwrap(); // a second piece
    w.close(true).unwrap();
    // A writer that died mid-upload (its process gone: nothing aborted it), and a stray object.
    let key = "gone_C1_F1/dead-00001.piece";
    let (doc, _) = raw(&st, Method::Post, lsu, Some(key), &[("uploads", String::new())], &[]).unwrap();
    let doc = String::from_utf8(doc).unwrap();
    let id = doc.split("<UploadId>").nth(1).unwrap().split("</UploadId>").next().unwrap().to_string();
    raw(&st, Method::Put, lsu, Some(key), &[("partNumber", "1".into()), ("uploadId", id)], &buf).unwrap();
    raw(&st, Method::Put, lsu, Some("gone_C1_F1/junk"), &[], b"x").unwrap();
    // Another image whose name starts the same stays.
    raw(&st, Method::Put, lsu, Some("gone_C1_F1x/keep"), &[], b"x").unwrap();
    assert_eq!(st.list_uploads(lsu, "gone_C1_F1/").unwrap().len(), 1);
    image::delete(s.as_ref(), lsu, &def).unwrap();
    image::delete(s.as_ref(), lsu, &def).unwrap();
    let (objs, _) = st.list_objects(lsu, "gone_C1_F1/", None).unwrap();
    assert!(objs.is_empty(), "{objs:?}");
    assert!(st.list_uploads(lsu, "").unwrap().is_empty());
    assert_eq!(st.list_images(lsu, "gone").unwrap(), vec!["gone_C1_F1x"]);
    // The store's own deletes with nothing there.
    st.delete_record(lsu, "gone_C1_F1", "manifest").unwrap();
    st.remove_image(lsu, "gone_C1_F1", &["gone_C1_F1/a.piece".into()]).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Failures, through a proxy that breaks chosen requests

struct Rule {
    /// All found in the request line (`PUT /b/k?X-Amz-...&partNumber=3&uploadId=... HTTP/1.1`).
    needles: Vec<String>,
    times: usize,
    status: &'static str,
    code: &'static str,
    msg: &'static str,
}

struct Proxy {
    addr: String,
    rules: Arc<Mutex<Vec<Rule>>>,
    hits: Arc<AtomicUsize>,
    /// Take `If-None-Match` and `If-Match` out of every request: the server then answers as
    /// one that ignores them does.
    strip_conditions: Arc<AtomicBool>,
}

impl Proxy {
    fn start(upstream: &str) -> Proxy {
        let up = upstream.trim_start_matches("http://").trim_end_matches('/').to_string();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = format!("http://{}", l.local_addr().unwrap());
        let rules: Arc<Mutex<Vec<Rule>>> = Arc::default();
        let hits = Arc::new(AtomicUsize::new(0));
        let strip_conditions = Arc::new(AtomicBool::new(false));
        let (r2, h2, s2) = (rules.clone(), hits.clone(), strip_conditions.clone());
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(c) = c else { return };
                let (up, rules, hits, strip) = (up.clone(), r2.clone(), h2.clone(), s2.clone());
                std::thread::spawn(move || {
                    let _ = serve(c, &up, &rules, &hits, &strip);
                });
            }
        });
        Proxy { addr, rules, hits, strip_conditions }
    }

    fn fail(&self, needles: &[&str], times: usize, status: &'static str, code: &'static str) {
        let needles = needles.iter().map(|n| n.to_string()).collect();
        self.rules.lock().unwrap().push(Rule { needles, times, status, code, msg: "injected" });
    }
}

/// Forward requests of one connection; answer the ones a rule picks with its error and close.
fn serve(
    client: TcpStream,
    upstream: &str,
    rules: &Mutex<Vec<Rule>>,
    hits: &AtomicUsize,
    strip_conditions: &AtomicBool,
) -> std::io::Result<()> {
    let server = TcpStream::connect(upstream)?;
    let (mut s_read, mut c_write) = (server.try_clone()?, client.try_clone()?);
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut s_read, &mut c_write);
        let _ = c_write.shutdown(std::net::Shutdown::Both);
    });
    let mut server = server;
    let mut rd = BufReader::new(client.try_clone()?);
    let mut client = client;
    loop {
        let mut head = Vec::new();
        loop {
            let mut line = String::new();
            if rd.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let end = line == "\r\n";
            head.push(line);
            if end {
                break;
            }
        }
        let len: usize = head
            .iter()
            .find_map(|l| {
                l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0))
            })
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        rd.read_exact(&mut body)?;
        let hit = {
            let mut rules = rules.lock().unwrap();
            match rules
                .iter_mut()
                .find(|r| r.times > 0 && r.needles.iter().all(|n| head[0].contains(n.as_str())))
            {
                Some(r) => {
                    r.times -= 1;
                    Some((r.status, r.code, r.msg))
                }
                None => None,
            }
        };
        if let Some((status, code, msg)) = hit {
            hits.fetch_add(1, Ordering::Relaxed);
            let body =
                format!("<?xml version=\"1.0\"?><Error><Code>{code}</Code><Message>{msg}</Message></Error>");
            write!(
                client,
                "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )?;
            client.flush()?;
            let _ = client.shutdown(std::net::Shutdown::Both);
            let _ = server.shutdown(std::net::Shutdown::Both);
            return Ok(());
        }
        if strip_conditions.load(Ordering::Relaxed) {
            head.retain(|l| {
                let l = l.to_ascii_lowercase();
                !l.starts_with("if-none-match:") && !l.starts_with("if-match:")
            });
        }
        server.write_all(head.concat().as_bytes())?;
        server.write_all(&body)?;
    }
}

#[test]
fn upload_errors_retry_or_abort_the_upload() {
    let Some((_g, e)) = setup("upload_errors_retry_or_abort_the_upload") else { return };
    let b = Buckets::new(&e, 1);
    let lsu = &b.names[0];
    let direct = store(&settings(&e));
    let proxy = Proxy::start(&e.endpoint);
    let mut s = settings(&e);
    s.endpoints = vec![proxy.addr.clone()];
    let st = store(&s);

    // A 503 SlowDown and a 500 on parts are retried: the piece lands whole.
    proxy.fail(&["partNumber=2&"], 1, "503 Service Unavailable", "SlowDown");
    proxy.fail(&["partNumber=3&"], 2, "500 Internal Server Error", "InternalError");
    write_piece(&st, lsu, "f_C1_F1/retried.piece", 3, 16 * MIB, 1 << 20);
    assert_eq!(proxy.hits.load(Ordering::Relaxed), 3);
    let r = direct.open_piece(lsu, "f_C1_F1/retried.piece").unwrap();
    let mut back = vec![0u8; 16 * MIB];
    assert_eq!(r.read_at(&mut back, 0).unwrap(), 16 * MIB);
    check_range(3, 0, &back);

    // A 4xx on part 2 is not retried: the error comes back (on append or finish) and the
    // multipart upload is aborted.
    proxy.fail(&["partNumber=2&"], 1, "400 Bad Request", "InvalidArgument");
    let mut w = st.create_piece(lsu, "f_C1_F1/failed.piece").unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut err = None;
    for i in 0..30u64 {
        gen(4, i << 20, &mut buf);
        if let Err(e) = w.append(&buf) {
            err = Some(e);
            break;
        }
    }
    let err = match err {
        Some(e) => {
            w.abort();
            e
        }
        None => w.finish().unwrap_err(),
    };
    assert!(err.message().contains("InvalidArgument"), "{err}");
    assert!(direct.list_uploads(lsu, "f_C1_F1/").unwrap().is_empty(), "the failed upload was aborted");
    assert_eq!(direct.object_size(lsu, "f_C1_F1/failed.piece").unwrap(), None);

    // Abort and drop without finish abort too.
    for drop_it in [false, true] {
        let mut w = st.create_piece(lsu, "f_C1_F1/dropped.piece").unwrap();
        for i in 0..12u64 {
            gen(5, i << 20, &mut buf);
            w.append(&buf).unwrap();
        }
        assert_eq!(direct.list_uploads(lsu, "f_C1_F1/").unwrap().len(), 1, "an upload is open");
        if drop_it {
            drop(w);
        } else {
            w.abort();
        }
        assert!(direct.list_uploads(lsu, "f_C1_F1/").unwrap().is_empty());
    }

    // A failure to complete, reported inside a 200 answer, is an error too.
    let mut w = st.create_piece(lsu, "f_C1_F1/c.piece").unwrap();
    for i in 0..11u64 {
        gen(6, i << 20, &mut buf);
        w.append(&buf).unwrap();
    }
    proxy.fail(&["POST ", "uploadId="], 1, "200 OK", "InvalidPart");
    let err = w.finish().unwrap_err();
    assert!(err.message().contains("InvalidPart"), "{err}");
    assert!(direct.list_uploads(lsu, "f_C1_F1/").unwrap().is_empty());
}

/// A server that refuses `x-amz-checksum-*` headers: the store goes on without them.
#[test]
fn refused_crc32c_headers_fall_back_to_none() {
    let Some((_g, e)) = setup("refused_crc32c_headers_fall_back_to_none") else { return };
    let b = Buckets::new(&e, 1);
    let lsu = &b.names[0];
    let proxy = Proxy::start(&e.endpoint);
    proxy.rules.lock().unwrap().push(Rule {
        // Signed header names are in the query string of a presigned request.
        needles: vec!["x-amz-checksum".into()],
        times: 1000,
        status: "400 Bad Request",
        code: "InvalidRequest",
        msg: "Value for x-amz-checksum-crc32c header is invalid.",
    });
    let mut s = settings(&e);
    s.endpoints = vec![proxy.addr.clone()];
    let st = store(&s);
    write_piece(&st, lsu, "ck_C1_F1/multi.piece", 1, 12 * MIB + 3, 1 << 20);
    write_piece(&st, lsu, "ck_C1_F1/single.piece", 2, 1000, 1000);
    assert_eq!(proxy.hits.load(Ordering::Relaxed), 1, "refused once, then no more CRC32C headers");
    // The bucket's probe (on the first commit) sends a wrong and a right checksum, both
    // refused, and finds CRC32C not supported.
    st.create_manifest(lsu, "ck_C1_F1", b"m").unwrap();
    assert_eq!(proxy.hits.load(Ordering::Relaxed), 3);
    assert_eq!(
        st.features(lsu).unwrap().unwrap().crc32c,
        vast_ost_engine::store::s3::probe::Support::Refused
    );
    let r = st.open_piece(lsu, "ck_C1_F1/multi.piece").unwrap();
    let mut back = vec![0u8; 12 * MIB + 3];
    assert_eq!(r.read_at(&mut back, 0).unwrap(), back.len());
    check_range(1, 0, &back);
}

/// What radosgw 16 does with the features the store relies on, as the probe finds it: it
/// enforces If-None-Match, answers 412 to every If-Match on PutObject (even the right one), and
/// takes x-amz-checksum-crc32c without checking it.
#[test]
fn probe_finds_what_radosgw_honours() {
    use vast_ost_engine::store::s3::probe::Support::*;
    let Some((_g, e)) = setup("probe_finds_what_radosgw_honours") else { return };
    let b = Buckets::new(&e, 1);
    let st = store(&settings(&e));
    let f = st.features(&b.names[0]).unwrap().expect("auto mode probes");
    eprintln!("radosgw: {f}");
    // If-Match is refused even with the MD5 of what is stored: unusable, so manifests are
    // replaced under the claim protocol's lease there.
    assert_eq!((f.if_none_match, f.if_match), (Honoured, Refused), "{f}");
    assert!(matches!(f.crc32c, Ignored | Honoured), "{f}");
    let (objs, _) = st.list_objects(&b.names[0], "", None).unwrap();
    assert!(objs.is_empty(), "the probe removes its keys: {objs:?}");
}

#[test]
fn failed_endpoint_is_skipped() {
    let Some((_g, e)) = setup("failed_endpoint_is_skipped") else { return };
    let b = Buckets::new(&e, 1);
    let lsu = &b.names[0];
    // Nothing listens on port 1.
    let mut s = settings(&e);
    s.endpoints = vec!["http://127.0.0.1:1".into(), e.endpoint.clone()];
    let st = store(&s);
    let t0 = Instant::now();
    for i in 0..4 {
        write_piece(&st, lsu, &format!("ep_C1_F1/p-{i}.piece"), i, 6 * MIB, 1 << 20);
        st.create_manifest(lsu, &format!("ep_C1_F{i}"), b"m").unwrap();
        let r = st.open_piece(lsu, &format!("ep_C1_F1/p-{i}.piece")).unwrap();
        let mut back = vec![0u8; 6 * MIB];
        assert_eq!(r.read_at(&mut back, 0).unwrap(), 6 * MIB);
        check_range(i, 0, &back);
    }
    assert!(t0.elapsed() < Duration::from_secs(30), "failover took {:?}", t0.elapsed());
}

// ---------------------------------------------------------------------------------------------
// Manifests and LSUs

#[test]
fn create_manifest_is_exclusive_under_a_race() {
    let Some((_g, e)) = setup("create_manifest_is_exclusive_under_a_race") else { return };
    let b = Buckets::new(&e, 1);
    let lsu = b.names[0].clone();
    let st = store(&settings(&e));
    for round in 0..3 {
        let image = format!("race_C1_F{round}");
        let results: Vec<_> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|i| {
                    let (st, lsu, image) = (&st, &lsu, &image);
                    s.spawn(move || st.create_manifest(lsu, image, format!("writer {i}").as_bytes()))
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let won = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(won, 1, "{results:?}");
        assert!(results
            .iter()
            .all(|r| r.as_ref().is_ok() || r.as_ref().unwrap_err().kind() == ErrorKind::AlreadyExists));
        let stored = st.read_manifest(&lsu, &image).unwrap().unwrap();
        let winner = results.iter().position(|r| r.is_ok()).unwrap();
        assert_eq!(stored, format!("writer {winner}").as_bytes());
    }
    // radosgw 16 ignores If-Match on PUT, so only the unconditional outcome is checked here.
    let old = st.read_manifest(&lsu, "race_C1_F0").unwrap().unwrap();
    st.replace_manifest(&lsu, "race_C1_F0", b"new", &old).unwrap();
    assert_eq!(st.read_manifest(&lsu, "race_C1_F0").unwrap().unwrap(), b"new");
    assert_eq!(st.read_manifest(&lsu, "race_C1_none").unwrap(), None);
}

#[test]
fn lsus_are_buckets() {
    let Some((_g, e)) = setup("lsus_are_buckets") else { return };
    let b = Buckets::new(&e, 2);
    let prefix = b.names[0].rsplit_once('-').unwrap().0.rsplit_once('-').unwrap().0.to_string();
    let filter = LsuFilter { names: None, prefix: Some(prefix.clone()) };
    let st = S3Store::with_retry(&settings(&e), filter, fast_retry()).unwrap();
    let mut want = b.names.clone();
    want.sort();
    assert_eq!(st.list_lsus().unwrap(), want);
    let sp = st.lsu_space(&b.names[0]).unwrap();
    assert!(sp.capacity > 0 && sp.used == 0);
    assert_eq!(st.lsu_space(&format!("{prefix}-nope")).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(st.lsu_space("other-bucket").unwrap_err().kind(), ErrorKind::NotFound);
    // A fixed map, as VMS gives it: LSU names that are not the bucket names.
    st.set_buckets(BTreeMap::from([("alpha".to_string(), b.names[1].clone())]));
    assert_eq!(st.list_lsus().unwrap(), vec!["alpha"]);
    st.create_manifest("alpha", "img_C1_F1", b"m").unwrap();
    assert_eq!(st.list_images("alpha", "").unwrap(), vec!["img_C1_F1"]);
    assert_eq!(st.list_images("alpha", "img_C1_F1").unwrap(), vec!["img_C1_F1"]);
    assert!(st.list_images("alpha", "img_C1_F2").unwrap().is_empty());
    assert!(st.describe("alpha").contains(&b.names[1]));
    st.delete_record("alpha", "img_C1_F1", "manifest").unwrap();
    st.remove_image("alpha", "img_C1_F1", &[]).unwrap();
    assert_eq!(st.lsu_space(&b.names[0]).unwrap_err().kind(), ErrorKind::NotFound, "not in the map");
    // Many images: listing follows continuation tokens (1000 per page).
    let st = store(&settings(&e));
    let lsu = &b.names[0];
    std::thread::scope(|s| {
        for t in 0..8 {
            let st = &st;
            s.spawn(move || {
                for i in (t..1010).step_by(8) {
                    st.create_manifest(lsu, &format!("many_{i:04}"), b"m").unwrap();
                }
            });
        }
    });
    let names = st.list_images(lsu, "many_").unwrap();
    assert_eq!(names.len(), 1010);
    assert_eq!(names[1009], "many_1009");
}

// ---------------------------------------------------------------------------------------------
// Multi-GiB, by hand: VAST_OST_TEST_S3_BIG_GIB=2 cargo test ... -- --ignored big_image

#[test]
#[ignore]
fn big_image_roundtrip() {
    let Some((_g, e)) = setup("big_image_roundtrip") else { return };
    let gib: u64 = std::env::var("VAST_OST_TEST_S3_BIG_GIB").ok().and_then(|v| v.parse().ok()).unwrap_or(2);
    let b = Buckets::new(&e, 1);
    let lsu = &b.names[0];
    let s = S3Settings::new(vec![e.endpoint.clone()], &e.ak, &e.sk); // all defaults: 16 MiB parts
    let st: Arc<dyn PieceStore> = store(&s);
    let def = ImageDef { basename: "big_C1_F1".into(), date: "1".into(), ..Default::default() };
    let size = gib << 30;
    let block = 256 << 10;
    let mut buf = vec![0u8; block];
    let rss0 = reset_peak();
    let (t0, c0) = (Instant::now(), cpu_secs());
    let mut w = ImageWriter::create(st.clone(), lsu, def.clone()).unwrap();
    let mut off = 0;
    while off < size {
        gen(77, off, &mut buf);
        w.write_at(&buf, off).unwrap();
        off += block as u64;
    }
    w.close(true).unwrap();
    let (up, cpu_up) = (t0.elapsed().as_secs_f64(), cpu_secs() - c0);
    let peak_up = status_kb("VmHWM:").saturating_sub(rss0) / 1024;
    let rss1 = reset_peak();
    let (t0, c0) = (Instant::now(), cpu_secs());
    let mut r = ImageReader::open(st.clone(), lsu, &def).unwrap();
    let mut off = 0;
    while off < size {
        let n = r.read_at(&mut buf, off).unwrap();
        check_range(77, off, &buf[..n]);
        off += n as u64;
    }
    let (down, cpu_down) = (t0.elapsed().as_secs_f64(), cpu_secs() - c0);
    let peak_down = status_kb("VmHWM:").saturating_sub(rss1) / 1024;
    let mib = size as f64 / MIB as f64;
    eprintln!(
        "big image {gib} GiB: up {:.0} MiB/s ({cpu_up:.1} CPU-s incl. data generation), down {:.0} MiB/s \
         ({cpu_down:.1} CPU-s incl. verification); peak RSS growth up {peak_up} MiB, down {peak_down} MiB; RSS {} MiB",
        mib / up,
        mib / down,
        status_kb("VmRSS:") / 1024
    );
    let bound = (s.part_size as usize * (s.upload_workers + 2) / MIB) as u64;
    assert!(peak_up < bound + 32, "upload peak {peak_up} MiB over the bound {bound} MiB");
    assert!(peak_down < (s.part_size as usize * (s.read_ahead + 1) / MIB) as u64 + 32);
    image::delete(st.as_ref(), lsu, &def).unwrap();
}

/// Every object version of `bucket` (key, version id): to remove a bucket whose objects were
/// locked once their locks have run out.
fn versions(s: &S3Store, bucket: &str) -> Vec<(String, String)> {
    let (body, _) = raw(s, Method::Get, bucket, None, &[("versions", String::new())], &[]).unwrap();
    let doc = String::from_utf8(body).unwrap();
    let field = |part: &str, tag: &str| {
        let open = format!("<{tag}>");
        part.split_once(&open)
            .and_then(|(_, rest)| rest.split_once(&format!("</{tag}>")))
            .map(|(v, _)| v.to_string())
    };
    doc.split("<Version>")
        .skip(1)
        .chain(doc.split("<DeleteMarker>").skip(1))
        .filter_map(|part| Some((field(part, "Key")?, field(part, "VersionId")?)))
        .collect()
}

/// S3 Object Lock on a real server: the probe finds radosgw holding retention on a bucket
/// made with Object Lock, and not on a plain one; a lock set through the store reads back
/// from GetObjectRetention (radosgw's nine-digit fractions included); radosgw answers a plain
/// DELETE of a locked object with a delete marker (why the plug-in reads the lock before any
/// delete) and the locked version survives it.
#[test]
fn object_lock_probe_and_locks_on_radosgw() {
    use vast_ost_engine::store::{RetentionMode, WormPolicy};
    let Some((_g, e)) = setup("object_lock_probe_and_locks_on_radosgw") else { return };
    let plain = Buckets::new(&e, 1);
    let s = store(&settings(&e));
    let locked = format!("{}-lock", plain.names[0]);
    s.client()
        .call(
            0,
            "CreateBucket with Object Lock",
            || Req::new(Method::Put, &locked, None).header("x-amz-bucket-object-lock-enabled", "true"),
            |_| Ok(()),
        )
        .expect("radosgw creates a bucket with Object Lock");
    let policy = WormPolicy { mode: RetentionMode::Governance, min_secs: 2, max_secs: 3600 };

    s.verify_retention(&locked, &policy).expect("radosgw holds Object Lock retention");
    let err = s.verify_retention(&plain.names[0], &policy).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotSupported, "a bucket without Object Lock: {err}");

    raw(&s, Method::Put, &locked, Some("img/piece"), &[], b"locked bytes").unwrap();
    let until = vast_ost_engine::util::now_secs() + 2;
    s.set_retention(&locked, &["img/piece".to_string()], until, RetentionMode::Governance).unwrap();
    let lock = s.retention(&locked, "img/piece").unwrap().expect("the lock reads back");
    assert!(lock.active && lock.until >= until, "{lock:?} for {until}");
    raw(&s, Method::Delete, &locked, Some("img/piece"), &[], &[]).expect("a delete marker, not a refusal");
    let kept = versions(&s, &locked);
    assert!(
        kept.iter().filter(|(k, _)| k == "img/piece").count() >= 2,
        "the locked version is kept: {kept:?}"
    );

    // Once the locks have run out, every version goes, and the bucket with them.
    std::thread::sleep(Duration::from_secs(4));
    for (k, v) in versions(&s, &locked) {
        raw(&s, Method::Delete, &locked, Some(&k), &[("versionId", v.clone())], &[])
            .unwrap_or_else(|err| panic!("deleting {k} version {v}: {err}"));
    }
    raw(&s, Method::Delete, &locked, None, &[], &[]).expect("the lock bucket is removed");
}
