//! The S3 backend against the project's VAST simulator (`vast-sim`, in process): the image
//! conformance suite over three VIPs, with small parts, under injected 503s and dropped
//! connections, and with a VIP going down. Needs nothing outside this process, so it runs
//! everywhere (radosgw runs are in `s3_radosgw.rs`).

mod conformance;

use std::sync::Arc;
use std::time::Duration;

use rusty_s3::Method;
use vast_ost_engine::filter::LsuFilter;
use vast_ost_engine::image::{self, ImageReader, ImageWriter};
use vast_ost_engine::manifest::ImageDef;
use vast_ost_engine::retry::RetryPolicy;
use vast_ost_engine::store::s3::client::Req;
use vast_ost_engine::store::s3::{ChecksumMode, CreateMode, S3Settings, S3Store};
use vast_ost_engine::store::PieceStore;
use vast_sim::{FaultConfig, Plane, Sim, SimConfig};

struct SimEnv {
    sim: Sim,
    _dir: tempfile::TempDir,
    ak: String,
    sk: String,
}

fn start(min_part: u64) -> SimEnv {
    start_with(min_part, false)
}

fn start_with(min_part: u64, ignore_preconditions: bool) -> SimEnv {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = SimConfig::new(dir.path().join("root"));
    cfg.tls = false;
    cfg.min_part_size = min_part;
    cfg.ignore_preconditions = ignore_preconditions;
    let sim = Sim::start(cfg).unwrap();
    let uid = sim.create_user("nbu").unwrap();
    let (ak, sk) = sim.create_access_key(uid).unwrap();
    for b in ["lsu1", "lsu2"] {
        sim.create_bucket(b, "nbu", &format!("/buckets/{b}")).unwrap();
    }
    SimEnv { sim, _dir: dir, ak, sk }
}

fn settings(e: &SimEnv) -> S3Settings {
    let mut s = S3Settings::new(e.sim.s3_endpoints(), &e.ak, &e.sk);
    s.part_size = 5 << 20;
    s.copy_part_size = 5 << 20;
    s
}

fn retry() -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_millis(5),
        cap: Duration::from_millis(50),
        deadline: Duration::from_secs(30),
        max_attempts: 12,
    }
}

struct Target {
    store: Arc<S3Store>,
}

impl Target {
    fn raw(&self, m: Method, lsu: &str, key: &str, body: &[u8]) -> Vec<u8> {
        let c = self.store.client();
        c.call(
            0,
            "test request",
            || Req::new(m, lsu, Some(key)).body(body),
            |mut r| Ok(r.bytes("test request", 64 << 20)?),
        )
        .unwrap()
    }
}

impl conformance::Target for Target {
    fn store(&self) -> Arc<dyn PieceStore> {
        self.store.clone()
    }
    fn lsus(&self) -> (String, String) {
        ("lsu1".into(), "lsu2".into())
    }
    fn flip_bit(&self, lsu: &str, key: &str, at: u64) {
        let mut b = self.raw(Method::Get, lsu, key, &[]);
        b[at as usize] ^= 1;
        self.raw(Method::Put, lsu, key, &b);
    }
    fn put_raw_manifest(&self, lsu: &str, image: &str, bytes: &[u8]) {
        self.raw(Method::Put, lsu, &format!("{image}/manifest"), bytes);
    }
}

fn run(s: &S3Settings) -> Arc<S3Store> {
    let store = Arc::new(S3Store::with_retry(s, LsuFilter::default(), retry()).unwrap());
    conformance::run_all(&Target { store: store.clone() });
    for b in ["lsu1", "lsu2"] {
        let (objs, _) = store.list_objects(b, "", None).unwrap();
        assert!(objs.is_empty(), "objects left in {b}: {objs:?}");
        assert!(store.list_uploads(b, "").unwrap().is_empty(), "uploads left open in {b}");
    }
    store
}

#[test]
fn conformance_vast_sim() {
    let e = start(5 << 20);
    let st = run(&settings(&e));
    assert_eq!(st.list_lsus().unwrap(), vec!["lsu1", "lsu2"]);
}

#[test]
fn conformance_vast_sim_small_parts() {
    let e = start(64 << 10);
    let mut s = settings(&e);
    s.allow_small_parts = true;
    s.part_size = 128 << 10;
    s.copy_part_size = 128 << 10;
    s.checksum = ChecksumMode::Md5;
    s.read_ahead = 3;
    // The claim protocol on a server that would honour the conditional headers.
    s.create_mode = CreateMode::Claim;
    run(&s);
}

/// A server that answers 200 to If-None-Match and If-Match and ignores them: the probe finds
/// out, and the claim and lease protocols keep creates exclusive and replaces compare-and-swap
/// (the whole suite, racing creators included).
#[test]
fn conformance_vast_sim_ignoring_preconditions() {
    use vast_ost_engine::store::s3::probe::Support;
    let e = start_with(5 << 20, true);
    let s = settings(&e);
    let st = S3Store::with_retry(&s, LsuFilter::default(), retry()).unwrap();
    let f = st.features("lsu1").unwrap().expect("auto mode probes");
    assert_eq!(
        (f.if_none_match, f.if_match, f.crc32c),
        (Support::Ignored, Support::Ignored, Support::Honoured),
        "{f}"
    );
    assert!(
        st.describe("lsu1").ends_with("If-None-Match ignored, If-Match ignored, CRC32C honoured"),
        "{}",
        st.describe("lsu1")
    );
    run(&s);
}

/// On an S3 server that ignores conditional writes, images are created through claims and the
/// winner's claim stays with its image (docs/commit-protocol.md): the orphan scan must not call
/// it unreferenced (it did, so `vast-ost cleanup` listed every image of such a bucket and
/// removed their claims; found by the chaos run). A dead writer's claim on an image with no
/// manifest is still found.
#[test]
fn the_claim_of_a_created_image_is_no_orphan() {
    use vast_ost_engine::image::Liveness;
    let e = start_with(5 << 20, true);
    let s3 = Arc::new(S3Store::with_retry(&settings(&e), LsuFilter::default(), retry()).unwrap());
    let st: Arc<dyn PieceStore> = s3.clone();
    let def = ImageDef { basename: "claimed_C1_F1".into(), ..Default::default() };
    let mut w = ImageWriter::create(st.clone(), "lsu1", def.clone()).unwrap();
    w.write_at(&[1u8; 4096], 0).unwrap();
    w.close(true).unwrap();
    let keys = st.list_image_keys("lsu1", "claimed_C1_F1").unwrap();
    assert!(keys.iter().any(|(k, _)| k.contains(".manifest.claim.")), "created through a claim: {keys:?}");
    let o = image::find_orphans(st.as_ref(), "lsu1", Duration::ZERO, Liveness::default()).unwrap();
    assert!(o.is_empty(), "{o:?}");
    // A claim left by a creator that died before its manifest: an orphan.
    let t = Target { store: s3 };
    t.raw(Method::Put, "lsu1", "dead_C1_F1/.manifest.claim.00000000000000000001-dead", b"");
    let o = image::find_orphans(st.as_ref(), "lsu1", Duration::ZERO, Liveness::default()).unwrap();
    assert_eq!(o.without_manifest.len(), 1, "{o:?}");
}

/// One request in ten answered 503 SlowDown, one in twenty-five dropped without an answer:
/// the retries (and the checks that make a retried create or complete safe) carry it.
#[test]
fn conformance_vast_sim_under_faults() {
    let e = start(64 << 10);
    e.sim.set_faults(FaultConfig {
        error_rate: 0.10,
        drop_rate: 0.04,
        plane: Plane::S3,
        seed: std::env::var("VAST_OST_TEST_FAULT_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(42),
        ..FaultConfig::default()
    });
    let mut s = settings(&e);
    s.allow_small_parts = true;
    s.part_size = 256 << 10;
    s.copy_part_size = 256 << 10;
    run(&s);
}

/// A VIP goes down between and during streams: new requests go to the others.
#[test]
fn vip_down_streams_go_on() {
    let e = start(5 << 20);
    let st: Arc<dyn PieceStore> =
        Arc::new(S3Store::with_retry(&settings(&e), LsuFilter::default(), retry()).unwrap());
    let def =
        |i: usize| ImageDef { basename: format!("vip_C1_F{i}"), date: "1".into(), ..Default::default() };
    let mut buf = vec![0u8; 1 << 20];
    for i in 0..6 {
        let mut w = ImageWriter::create(st.clone(), "lsu1", def(i)).unwrap();
        for j in 0..12u64 {
            if i == 2 && j == 3 {
                e.sim.vip_down(1).unwrap();
            }
            conformance::pattern(i as u64, j << 20, &mut buf);
            w.write_at(&buf, j << 20).unwrap();
        }
        w.close(true).unwrap();
    }
    e.sim.vip_down(0).unwrap();
    for i in 0..6 {
        let mut r = ImageReader::open(st.clone(), "lsu1", &def(i)).unwrap();
        for j in 0..12u64 {
            assert_eq!(r.read_at(&mut buf, j << 20).unwrap(), 1 << 20);
            let mut want = vec![0u8; 1 << 20];
            conformance::pattern(i as u64, j << 20, &mut want);
            assert!(buf == want, "image {i} MiB {j} differs");
        }
    }
    e.sim.vip_up(0).unwrap();
    e.sim.vip_up(1).unwrap();
    for i in 0..6 {
        image::delete(st.as_ref(), "lsu1", &def(i)).unwrap();
    }
}
