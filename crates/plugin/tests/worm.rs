//! WORM through the C interface against the VAST simulator: LSUs on locking views carry
//! `STS_LSUF_WORM` with their retention bounds and others do not; a locked image is refused
//! deletion by the storage itself, through the plug-in (`STS_EWORM_LOCKED`, the log naming the
//! unlock time) and directly over S3 (403), and is deleted once the simulator's clock passes the
//! lock; locks outside the view's bounds are refused with `STS_EWORM_MIN` / `STS_EWORM_MAX`;
//! a bucket whose server answers PutObjectRetention but keeps no lock is found out by the
//! probe: not WORM, and a lock request is `STS_ENOTSUP`.

mod common;

use std::path::PathBuf;

use common::*;
use serde_json::json;
use vast_ost_engine::filter::LsuFilter;
use vast_ost_engine::store::s3::{S3Settings, S3Store};
use vast_ost_engine::store::PieceStore;
use vast_ost_engine::util::now_secs;
use vast_ost_host::abi::*;
use vast_ost_host::{image_def, lsu, Plugin, Status};
use vast_sim::SimConfig;

const HOUR: u64 = 3600;
const SIZE: u64 = 3 << 20;

struct World {
    _dir: tempfile::TempDir,
    c: Cluster,
    /// A cluster whose S3 plane does not hold Object Lock retention.
    nolock: Cluster,
    plugin: Plugin,
    log: PathBuf,
    /// A plain S3 client of the bucket owner: what someone bypassing the plug-in would use.
    direct: S3Store,
}

/// A cluster with a COMPLIANCE bucket (1 h .. 1 y), a plain bucket, and an NFS view with file
/// retention, and a second cluster whose locks do not hold; the plug-in configured for all of them. One for the whole file (the plug-in is
/// one per process); only one test moves the clock, and no other test needs a lock to hold.
fn world() -> &'static World {
    static W: std::sync::OnceLock<World> = std::sync::OnceLock::new();
    W.get_or_init(make_world)
}

/// A view with a bucket owned by `owner`, with `extra` view fields.
fn bucket(c: &Cluster, name: &str, owner: &str, extra: serde_json::Value) {
    let mut v = json!({"name": name, "path": format!("/nbu/{name}"), "policy_id": 2, "protocols": ["S3"],
                       "bucket": name, "bucket_owner": owner, "create_dir": true});
    v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    c.vms.post("views/", &v).unwrap();
}

fn compliance() -> serde_json::Value {
    json!({"s3_versioning": true, "locking": true, "s3_locks_retention_mode": "COMPLIANCE",
           "min_retention_period": "1h", "max_retention_period": "1y"})
}

/// The plug-in's `[[server]]` for `c`, with S3 user `ak`/`sk`.
fn server_block(name: &str, c: &Cluster, ak: &str, sk: &str) -> String {
    let s3_port = c.sim.s3_endpoints()[0].rsplit(':').next().unwrap().to_string();
    format!(
        "[[server]]\nname = \"{name}\"\nlsu_prefix = \"nbu-\"\n\
         [server.vms]\naddress = \"{}\"\nca_file = \"{}\"\n[server.nfs]\nmount = \"{}\"\n\
         [server.s3]\nvip_port = {s3_port}\naccess_key = \"{ak}\"\nsecret_key = \"{sk}\"\n\n",
        c.sim.vms_url(),
        c.ca.display(),
        c.sim.root().display()
    )
}

fn make_world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let c = Cluster::start(dir.path(), SimConfig::new(dir.path().join("cluster")));
    let (ak, sk) = c.s3_user("nbu-s3", 50001);
    bucket(&c, "nbu-worm", "nbu-s3", compliance());
    bucket(&c, "nbu-plain", "nbu-s3", json!({}));
    c.vms
        .post(
            "views/",
            &json!({"name": "nbu-nfsworm", "path": "/nbu/nfsworm", "policy_id": 1, "protocols": ["NFS"],
                    "create_dir": true, "files_retention_mode": "GOVERNANCE"}),
        )
        .unwrap();
    // A second cluster whose S3 plane answers PutObjectRetention and keeps no lock.
    let nolock_dir = dir.path().join("nolock");
    std::fs::create_dir(&nolock_dir).unwrap();
    let mut cfg = SimConfig::new(nolock_dir.join("cluster"));
    cfg.ignore_object_lock = true;
    let nolock = Cluster::start(&nolock_dir, cfg);
    let (nak, nsk) = nolock.s3_user("nbu-s3", 50001);
    bucket(&nolock, "nbu-worm", "nbu-s3", compliance());
    let config = format!(
        "[log]\nlevel = \"debug\"\n\n{}{}",
        server_block("VastData:sim", &c, &ak, &sk),
        server_block("VastData:nolock", &nolock, &nak, &nsk)
    );
    let cfg_path = dir.path().join("vast-ost.toml");
    std::fs::write(&cfg_path, config).unwrap();
    let log = dir.path().join("vast-ost.log");
    let plugin = load_plugin(&cfg_path, &log);
    let direct =
        S3Store::new(&S3Settings::new(c.sim.s3_endpoints(), &ak, &sk), LsuFilter::default()).unwrap();
    World { _dir: dir, c, nolock, plugin, log, direct }
}

fn open(w: &World) -> stsp_server_handle_t {
    w.plugin.open_server("VastData:sim", w.c.sim.admin_user(), w.c.sim.admin_password()).unwrap()
}

fn backup(w: &World, l: &sts_lsu_t, name: &str) -> sts_image_def_t {
    let def = image_def(name, "1700000000", "worm");
    write_pattern(&w.plugin, l, &def, 7, SIZE, &mut vec![0u8; 256 << 10]);
    def
}

fn restore(w: &World, l: &sts_lsu_t, def: &sts_image_def_t) {
    let n = read_verify(&w.plugin, l, def, 7, &mut vec![0u8; 1 << 20], &mut vec![0u8; 1 << 20]);
    assert_eq!(n, SIZE);
}

fn log_text(w: &World) -> String {
    std::fs::read_to_string(&w.log).unwrap_or_default()
}

#[test]
fn worm_is_advertised_only_where_the_view_locks() {
    let w = world();
    let s = open(w);
    let worm = w.plugin.lsu_prop(&lsu(s, "nbu-worm")).unwrap();
    assert_ne!(worm.lsu_flags & STS_LSUF_WORM, 0, "a locking bucket is WORM");
    assert_eq!((worm.lsu_worm_min, worm.lsu_worm_max), (HOUR, 365 * 24 * HOUR));
    let nfs = w.plugin.lsu_prop(&lsu(s, "nbu-nfsworm")).unwrap();
    assert_ne!(nfs.lsu_flags & STS_LSUF_WORM, 0, "an NFS view with file retention is WORM");
    assert_eq!((nfs.lsu_worm_min, nfs.lsu_worm_max), (0, 0), "no bounds: none reported");
    let plain_l = lsu(s, "nbu-plain");
    let plain = w.plugin.lsu_prop(&plain_l).unwrap();
    assert_eq!(plain.lsu_flags & STS_LSUF_WORM, 0, "a plain bucket is not WORM");

    let def = backup(w, &plain_l, "plain_1_C1_F1");
    assert_eq!(w.plugin.set_image_retention(&plain_l, &def, now_secs() + 2 * HOUR), Err(Status(STS_ENOTSUP)));
    w.plugin.delete_image(&plain_l, &def).unwrap();
    w.plugin.close_server(s).unwrap();
}

#[test]
fn the_storage_refuses_deleting_a_locked_image_until_the_lock_runs_out() {
    let w = world();
    let s = open(w);
    let l = lsu(s, "nbu-worm");
    let def = backup(w, &l, "client_1700000000_C1_F1");
    let until = now_secs() + 2 * HOUR;
    w.plugin.set_image_retention(&l, &def, until).unwrap();
    assert_eq!(w.plugin.image_prop_byname(&l, &def).unwrap().imo_worm_until, until);
    // Asking again for an earlier time leaves the lock as it is.
    w.plugin.set_image_retention(&l, &def, until - HOUR / 2).unwrap();
    assert_eq!(w.plugin.image_prop_byname(&l, &def).unwrap().imo_worm_until, until);

    // Through the plug-in: refused, with the unlock time in the log, and nothing lost.
    assert_eq!(w.plugin.delete_image(&l, &def), Err(Status(STS_EWORM_LOCKED)));
    assert!(log_text(w).contains(&format!("is WORM-locked until {until}")), "the log names the unlock time");
    restore(w, &l, &def);

    // Around the plug-in, straight to S3: the storage refuses deletes and overwrites.
    let image = "client_1700000000_C1_F1";
    let (objects, _) = w.direct.list_objects("nbu-worm", &format!("{image}/"), None).unwrap();
    assert!(objects.len() >= 2, "a manifest and at least one piece: {objects:?}");
    for (key, _) in &objects {
        let e = w.direct.remove_keys("nbu-worm", image, std::slice::from_ref(key)).unwrap_err();
        assert_eq!(e.http_status(), None, "DeleteObjects answers per key: {e}");
        assert!(e.message().contains("AccessDenied"), "{key}: {e}");
    }
    let e = w.direct.delete_record("nbu-worm", image, "manifest").unwrap_err();
    assert_eq!(e.http_status(), Some(403), "{e}");
    restore(w, &l, &def);

    // Once the storage's clock passes the lock, the delete goes through.
    w.c.sim.advance_clock((2 * HOUR + 60) as i64);
    w.plugin.delete_image(&l, &def).unwrap();
    assert!(w.plugin.images(&l, "").unwrap().is_empty());
    let (left, _) = w.direct.list_objects("nbu-worm", &format!("{image}/"), None).unwrap();
    assert!(left.is_empty(), "nothing of the image is left: {left:?}");
    w.plugin.close_server(s).unwrap();
}

/// A lock that raced a delete (pieces are locked before the manifest, so a delete in between
/// removes the manifest and is refused on the locked pieces; found by the chaos run, seed
/// 20261207 iteration 56) leaves locked pieces no image names. Cleanup sets them aside as
/// held until the lock ends instead of failing on them.
#[test]
fn cleanup_sets_aside_orphans_the_storage_holds_locked() {
    use std::time::Duration;
    use vast_ost_engine::store::RetentionMode;
    let w = world();
    let s = open(w);
    let l = lsu(s, "nbu-worm");
    let image = "raced_1700000000_C1_F1";
    let def = backup(w, &l, image);
    let (objects, _) = w.direct.list_objects("nbu-worm", &format!("{image}/"), None).unwrap();
    let pieces: Vec<String> =
        objects.into_iter().map(|(k, _)| k).filter(|k| !k.ends_with("/manifest")).collect();
    assert!(!pieces.is_empty());
    // Far beyond the clock the other test moves: the lock holds through this test.
    let until = now_secs() + 30 * 24 * HOUR;
    w.direct.set_retention("nbu-worm", &pieces, until, RetentionMode::Compliance).unwrap();
    // The delete removes the manifest (not locked) and is refused on the pieces.
    assert_eq!(w.plugin.delete_image(&l, &def), Err(Status(STS_EWORM_LOCKED)));
    assert_eq!(w.plugin.image_prop_byname(&l, &def).map(drop), Err(Status(STS_ENOENT)), "the image is gone");

    // The scan alone finds the pieces' removals the lock stopped (their records say the
    // delete began reclaiming them), and finishing them sets the pieces aside (the storage
    // refuses) rather than failing the whole cleanup.
    let raw = vast_ost_engine::image::find_orphans(&w.direct, "nbu-worm", Duration::ZERO, Default::default())
        .unwrap();
    let mut found: Vec<String> =
        raw.stale_refs.iter().filter(|st| st.reclaiming).map(|st| st.piece.clone()).collect();
    found.sort();
    assert_eq!(found, pieces, "{raw:?}");
    let r = vast_ost_engine::image::remove_orphans(&w.direct, "nbu-worm", &raw, false).unwrap();
    assert_eq!(r.items, 0);
    let mut held: Vec<String> = r
        .held
        .iter()
        .map(|(k, u)| {
            assert!(*u >= until);
            k.clone()
        })
        .collect();
    held.sort();
    assert_eq!(held, pieces);

    // The server's scan (what `vast-ost cleanup` runs) knows the LSU is WORM and sets them
    // aside already: nothing to remove, the held keys named with the lock's end.
    let config = w._dir.path().join("vast-ost.toml");
    let e = vast_ost_engine::Engine::new(&config).unwrap();
    let creds = vast_ost_engine::Credentials {
        user: w.c.sim.admin_user().into(),
        password: vast_ost_engine::Secret::new(w.c.sim.admin_password()),
    };
    let srv = e.open_server("VastData:sim", &creds).unwrap();
    let o = srv.find_orphans("nbu-worm", Duration::ZERO).unwrap();
    assert!(o.is_empty(), "{o:?}");
    let mut set_aside: Vec<String> = o.held.iter().map(|(k, _)| k.clone()).collect();
    set_aside.sort();
    assert_eq!(set_aside, pieces);
    assert_eq!(srv.remove_orphans("nbu-worm", &o, false).unwrap().items, 0);
    let (left, _) = w.direct.list_objects("nbu-worm", &format!("{image}/"), None).unwrap();
    let left: Vec<String> = left.into_iter().map(|(k, _)| k).collect();
    assert!(pieces.iter().all(|p| left.contains(p)), "the storage still holds them: {left:?}");
    w.plugin.close_server(s).unwrap();
}

#[test]
fn locks_outside_the_views_bounds_are_refused() {
    let w = world();
    let s = open(w);
    let l = lsu(s, "nbu-worm");
    let def = backup(w, &l, "bounds_1_C1_F1");
    let now = now_secs();
    assert_eq!(w.plugin.set_image_retention(&l, &def, now + 60), Err(Status(STS_EWORM_MIN)));
    assert_eq!(w.plugin.set_image_retention(&l, &def, now - 60), Err(Status(STS_EWORM_MIN)));
    assert_eq!(w.plugin.set_image_retention(&l, &def, now + 2 * 365 * 24 * HOUR), Err(Status(STS_EWORM_MAX)));
    let missing = image_def("missing_1_C1_F1", "", "");
    assert_eq!(w.plugin.set_image_retention(&l, &missing, now + 2 * HOUR), Err(Status(STS_ENOENT)));
    let pending = image_def("pending_1_C1_F1", "1", "worm");
    let h = w.plugin.create_image(&l, &pending).unwrap();
    assert_eq!(w.plugin.set_image_retention(&l, &pending, now + 2 * HOUR), Err(Status(STS_ESTATE)));
    w.plugin.close_image(h, 0).unwrap();
    // None of the refusals locked anything: both images go.
    assert_eq!(w.plugin.image_prop_byname(&l, &def).unwrap().imo_worm_until, 0);
    w.plugin.delete_image(&l, &def).unwrap();
    w.plugin.delete_image(&l, &pending).unwrap();
    w.plugin.close_server(s).unwrap();
}

#[test]
fn nfs_locks_are_the_files_retention_time_and_read_only() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let w = world();
    let s = open(w);
    let l = lsu(s, "nbu-nfsworm");
    let def = backup(w, &l, "nfs_1_C1_F1");
    let until = now_secs() + 2 * HOUR;
    w.plugin.set_image_retention(&l, &def, until).unwrap();
    assert_eq!(w.plugin.image_prop_byname(&l, &def).unwrap().imo_worm_until, until);
    let files = files_below(&w.c.sim.root().join("nbu/nfsworm/nfs_1_C1_F1"));
    let locked: Vec<_> = files
        .iter()
        .filter(|f| {
            let md = std::fs::metadata(f).unwrap();
            md.permissions().mode() & 0o222 == 0 && md.atime() as u64 == until
        })
        .collect();
    assert!(locked.len() >= 2, "manifest and pieces carry the lock: {files:?}");
    // The plug-in does not count on the filer refusing the unlink: it refuses first.
    assert_eq!(w.plugin.delete_image(&l, &def), Err(Status(STS_EWORM_LOCKED)));
    assert_eq!(files_below(&w.c.sim.root().join("nbu/nfsworm/nfs_1_C1_F1")), files, "nothing removed");
    restore(w, &l, &def);
    w.plugin.close_server(s).unwrap();
}

#[test]
fn a_server_that_does_not_hold_locks_is_not_worm_and_locks_nothing() {
    let w = world();
    let s = w
        .plugin
        .open_server("VastData:nolock", w.nolock.sim.admin_user(), w.nolock.sim.admin_password())
        .unwrap();
    let l = lsu(s, "nbu-worm");
    // The view says it locks; the probe finds the storage does not hold locks: not advertised.
    let info = w.plugin.lsu_prop(&l).unwrap();
    assert_eq!(info.lsu_flags & STS_LSUF_WORM, 0, "a bucket whose locks do not hold is not WORM");
    let def = backup(w, &l, "nolock_1_C1_F1");
    assert_eq!(w.plugin.set_image_retention(&l, &def, now_secs() + 2 * HOUR), Err(Status(STS_ENOTSUP)));
    let log = log_text(w);
    assert!(log.contains("S3 bucket nbu-worm does not hold Object Lock retention"), "{log}");
    assert_eq!(w.plugin.image_prop_byname(&l, &def).unwrap().imo_worm_until, 0);
    // Nothing was claimed: the image restores and deletes as any other.
    restore(w, &l, &def);
    w.plugin.delete_image(&l, &def).unwrap();
    w.plugin.close_server(s).unwrap();
}
