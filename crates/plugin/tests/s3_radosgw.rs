//! A multi-GiB image through the C interface to a real S3 server (Ceph radosgw), written in
//! NetBackup's 256 KiB blocks and restored byte for byte, with peak memory checked against the
//! pipeline's bound. An S3-only server: the keys are the credentials tpconfig hands over.
//! Needs `VAST_OST_TEST_S3` (scripts/test starts radosgw when installed); size from
//! `VAST_OST_BIG_IMAGE_MIB` (default 2048).

mod common;

use common::*;
use vast_ost_engine::filter::LsuFilter;
use vast_ost_engine::store::s3::{S3Settings, S3Store};
use vast_ost_host::{image_def, lsu};

const BLOCK: usize = 256 * 1024;
const PART: u64 = 16 << 20;
const WORKERS: u64 = 4;

#[test]
fn multi_gib_image_to_radosgw_through_the_c_interface() {
    let Ok(endpoint) = std::env::var("VAST_OST_TEST_S3") else {
        eprintln!("skipped: VAST_OST_TEST_S3 is not set (no radosgw)");
        return;
    };
    let ak = std::env::var("VAST_OST_TEST_S3_ACCESS_KEY").unwrap_or_else(|_| "testkey".into());
    let sk = std::env::var("VAST_OST_TEST_S3_SECRET_KEY").unwrap_or_else(|_| "testsecret".into());
    let mib: u64 = std::env::var("VAST_OST_BIG_IMAGE_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(2048);
    let size = mib << 20;
    let bucket = format!("vost-big-{}", std::process::id());
    let admin =
        S3Store::new(&S3Settings::new(vec![endpoint.clone()], &ak, &sk), LsuFilter::default()).unwrap();
    admin.create_bucket(&bucket).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vast-ost.toml");
    std::fs::write(
        &config,
        format!(
            "[[server]]\nname = \"VastData:rgw\"\nlsus = [\"{bucket}\"]\n[server.s3]\nendpoints = [\"{endpoint}\"]\n\
             part_size = {PART}\nupload_workers = {WORKERS}\n"
        ),
    )
    .unwrap();
    let p = load_plugin(&config, &dir.path().join("vast-ost.log"));
    let s = p.open_server("VastData:rgw", &ak, &sk).unwrap();
    assert_eq!(p.lsu_names(s).unwrap(), [bucket.as_str()]);
    let l = lsu(s, &bucket);
    let def = image_def("rgw_1_C1_F1", "1", "big");
    let mut scratch = Aligned::new(BLOCK);
    let (buf, want) = scratch.pair();
    let before = vm_hwm_kb();

    let t = std::time::Instant::now();
    write_pattern(&p, &l, &def, 77, size, buf);
    let up = t.elapsed();

    let t = std::time::Instant::now();
    assert_eq!(read_verify(&p, &l, &def, 77, buf, want), size);
    let down = t.elapsed();
    let grown = (vm_hwm_kb() - before) << 10;
    // Parts in flight plus the one being filled and one finishing; read-ahead stays within it.
    let bound = PART * (WORKERS + 3);
    eprintln!(
        "{mib} MiB via radosgw: up {:.0} MiB/s, down {:.0} MiB/s, peak RSS +{} MiB (bound {} MiB)",
        mib as f64 / up.as_secs_f64(),
        mib as f64 / down.as_secs_f64(),
        grown >> 20,
        bound >> 20
    );
    assert!(grown < bound, "peak RSS grew by {} MiB, over the {} MiB bound", grown >> 20, bound >> 20);
    p.delete_image(&l, &def).unwrap();
    assert!(p.images(&l, "").unwrap().is_empty());
    p.close_server(s).unwrap();
    // The server is the developer's own radosgw, run after run: leave no bucket behind.
    admin.remove_bucket(&bucket).unwrap();
}
