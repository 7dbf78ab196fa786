//! Fault knobs (reference §12.4 "fault injection for 503, 5xx, timeouts and slow responses"):
//! a 503 storm (S3 `SlowDown`, VMS 503), dropped connections, a VIP going down and up, added
//! latency, and seeded determinism. Set through the `Sim` API and through `POST /_sim/faults`.

mod common;

use common::*;
use rusty_s3::S3Action;
use serde_json::json;
use std::time::{Duration, Instant};
use vast_sim::{FaultConfig, Plane};

fn setup(env: &Env) -> S3 {
    let (_, ak, sk) = env.s3_user("fuser");
    env.bucket_view("faulty", "fuser");
    S3::new(&env.sim.s3_endpoints()[0], "faulty", &ak, &sk)
}

#[test]
fn s12_503_storm_on_s3_and_vms() {
    let env = start();
    let s3 = setup(&env);
    env.sim.set_faults(FaultConfig { fail_next: 3, plane: Plane::S3, ..Default::default() });
    for _ in 0..3 {
        let r = s3.put("k", b"v");
        assert_eq!(r.status, 503);
        assert!(r.text.contains("<Code>SlowDown</Code>"), "{}", r.text);
        assert_eq!(r.headers["server"], "vast 5.3.1.0");
    }
    assert_eq!(s3.put("k", b"v").status, 200, "the storm is over");
    // VMS is untouched by an S3-only storm; then a VMS storm through the admin endpoint.
    assert_eq!(env.api("GET", "clusters/", None).status, 200);
    let r = env.raw("POST", "/_sim/faults", None, Some(&json!({"error_rate": 1.0, "plane": "vms"})));
    assert_eq!(r.status, 200, "{}", r.text);
    let e = env.api("GET", "clusters/", None);
    assert_eq!(e.status, 503);
    assert!(e.json()["detail"].is_string());
    assert_eq!(s3.get("k").0, 200);
    // The admin endpoint itself is never faulted, so faults can always be cleared.
    assert_eq!(env.raw("POST", "/_sim/faults", None, Some(&json!({"reset": true}))).status, 200);
    assert_eq!(env.api("GET", "clusters/", None).status, 200);
    assert_eq!(env.raw("POST", "/_sim/faults", None, Some(&json!({"bogus": 1}))).status, 400);
}

#[test]
fn s12_seeded_error_rate_is_deterministic() {
    let run = || -> Vec<u16> {
        let env = start_with(|c| {
            c.faults = FaultConfig { error_rate: 0.5, seed: 99, plane: Plane::S3, ..Default::default() }
        });
        let s3 = setup(&env);
        (0..24).map(|i| s3.put(&format!("k{i}"), b"x").status).collect()
    };
    let a = run();
    assert_eq!(a, run(), "same seed, same requests, same faults");
    assert!(a.contains(&503) && a.contains(&200), "{a:?}");
}

#[test]
fn s12_dropped_connection_and_latency() {
    let env = start();
    let s3 = setup(&env);
    s3.put("k", b"v");
    env.sim.set_faults(FaultConfig { drop_next: 1, ..Default::default() });
    let url = s3.bucket.get_object(Some(&s3.creds), "k").sign(TTL);
    let req = http::Request::builder().uri(url.as_str()).body(Vec::new()).unwrap();
    let r = s3.agent.run(req);
    assert!(r.is_err(), "connection closed without a response: {:?}", r.map(|r| r.status()));
    assert_eq!(s3.get("k").0, 200);
    // VMS drops too.
    env.sim.set_faults(FaultConfig { drop_next: 1, plane: Plane::Vms, ..Default::default() });
    let req = http::Request::builder()
        .uri(format!("{}/api/clusters/", env.sim.vms_url()))
        .header("authorization", env.admin_auth())
        .body(Vec::new())
        .unwrap();
    assert!(env.agent.run(req).is_err());
    // Latency.
    env.sim.set_faults(FaultConfig { latency_ms: 300, plane: Plane::S3, ..Default::default() });
    let t = Instant::now();
    assert_eq!(s3.get("k").0, 200);
    assert!(t.elapsed() >= Duration::from_millis(300));
    env.sim.clear_faults().unwrap();
}

#[test]
fn s12_vip_down_and_up() {
    let env = start();
    let s3 = setup(&env);
    s3.put("k", b"v");
    let eps = env.sim.s3_endpoints();
    let on = |i: usize| S3::new(&eps[i], "faulty", s3.creds.key(), s3.creds.secret());
    env.sim.vip_down(1).unwrap();
    let down = on(1);
    let req = http::Request::builder()
        .uri(down.bucket.get_object(Some(&down.creds), "k").sign(TTL).as_str())
        .body(Vec::new())
        .unwrap();
    assert!(down.agent.run(req).is_err(), "VIP 1 refuses connections");
    assert_eq!(on(0).get("k").0, 200);
    assert_eq!(on(2).get("k").0, 200);
    env.sim.vip_up(1).unwrap();
    assert_eq!(on(1).get("k").0, 200, "same address and port after coming back");
    // The same through the admin endpoint.
    let r = env.raw("POST", "/_sim/faults", None, Some(&json!({"vips_down": [2]})));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["vips_down"], json!([2]));
    let d2 = on(2);
    let req = http::Request::builder()
        .uri(d2.bucket.get_object(Some(&d2.creds), "k").sign(TTL).as_str())
        .body(Vec::new())
        .unwrap();
    assert!(d2.agent.run(req).is_err());
    assert_eq!(env.raw("POST", "/_sim/faults", None, Some(&json!({"vips_up": [2]}))).status, 200);
    assert_eq!(on(2).get("k").0, 200);
    assert_eq!(env.raw("POST", "/_sim/faults", None, Some(&json!({"vips_down": [9]}))).status, 400);
}
