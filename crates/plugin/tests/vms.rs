//! The control path through the C interface against the VAST simulator: a server configured
//! with only a VMS address and NetBackup-style credentials discovers its LSUs (views), reports
//! capacity that moves as images are written and deleted, survives token expiry mid-job, and
//! maps each way of failing to connect to its own status.

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use common::*;
use serde_json::json;
use vast_ost_host::abi::*;
use vast_ost_host::{get_str, image_def, lsu, Plugin, Status};
use vast_sim::{Sim, SimConfig};

const QUOTA: u64 = 64 << 20;

struct World {
    dir: tempfile::TempDir,
    sim: Sim,
    log: std::path::PathBuf,
    plugin: Plugin,
    api_token: String,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let c = Cluster::start(dir.path(), SimConfig::new(dir.path().join("cluster")));
        // What an admin provisions before nbdevconfig -previewdv.
        for (name, path) in [("nbu-lsu1", "/nbu/lsu1"), ("nbu-lsu2", "/nbu/lsu2"), ("other", "/other")] {
            c.nfs_view(name, path);
        }
        c.quota("nbu-lsu1", "/nbu/lsu1", QUOTA);
        // An S3 LSU: the bucket owner and their key, the bucket view, a quota on it.
        let (ak, sk) = c.s3_user("nbu-s3", 50001);
        for (bucket, path) in [("nbu-bkt", "/nbu/bkt"), ("nbu-bkt2", "/nbu/bkt2")] {
            c.bucket(bucket, path, "nbu-s3");
        }
        c.quota("nbu-bkt", "/nbu/bkt", QUOTA);
        let s3_port = c.sim.s3_endpoints()[0].rsplit(':').next().unwrap().to_string();
        let token = c.vms.post("apitokens/", &json!({"name": "netbackup"})).unwrap();
        let api_token = token["token"].as_str().unwrap().to_string();

        let sim = c.sim;
        let vms_url = sim.vms_url();
        let root = sim.root().display().to_string();
        let ca = c.ca.display();
        let server = |name: &str, vms_extra: &str| {
            format!(
                "[[server]]\nname = \"VastData:{name}\"\nlsu_prefix = \"nbu-\"\ncapacity_ttl_secs = 60\n\
                 [server.vms]\naddress = \"{vms_url}\"\n{vms_extra}\n[server.nfs]\nmount = \"{root}\"\n\
                 [server.s3]\nvip_port = {s3_port}\naccess_key = \"{ak}\"\nsecret_key = \"{sk}\"\npart_size = 5242880\n\n"
            )
        };
        let config = [
            "[log]\nlevel = \"debug\"\n\n".to_string(),
            server("sim", &format!("ca_file = \"{ca}\"")),
            server("sim-basic", &format!("ca_file = \"{ca}\"\nauth = \"basic\"")),
            server("sim-insecure", "insecure = true"),
            server("sim-untrusted", ""),
            server("sim-down", "").replace(vms_url, "https://127.0.0.1:1"),
        ]
        .concat();
        let cfg_path = dir.path().join("vast-ost.toml");
        std::fs::write(&cfg_path, config).unwrap();
        let log = dir.path().join("vast-ost.log");
        let plugin = load_plugin(&cfg_path, &log);
        World { dir, sim, log, plugin, api_token }
    })
}

/// Write `size` bytes of pattern 5 in 256 KiB blocks and close complete.
fn backup(p: &Plugin, l: &sts_lsu_t, name: &str, size: u64) {
    write_pattern(p, l, &image_def(name, "1", "vms"), 5, size, &mut vec![0u8; 256 << 10]);
}

/// Read the image back in 1 MiB reads: pattern 5 and `size` bytes.
fn verify(p: &Plugin, l: &sts_lsu_t, name: &str, size: u64) {
    let (mut got, mut want) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let n = read_verify(p, l, &image_def(name, "", ""), 5, &mut got, &mut want);
    assert_eq!(n, size, "{name}: restored size");
}

#[test]
fn discovers_views_and_cluster() {
    let w = world();
    let p = &w.plugin;
    let s = p.open_server("VastData:sim", w.sim.admin_user(), w.sim.admin_password()).unwrap();
    assert_eq!(
        p.lsu_names(s).unwrap(),
        ["nbu-bkt", "nbu-bkt2", "nbu-lsu1", "nbu-lsu2"],
        "NFS views and S3 buckets selected by lsu_prefix"
    );
    let si = p.server_prop(s).unwrap();
    assert_eq!(si.srv_flags & (STS_SRV_NFS | STS_SRV_S3), STS_SRV_NFS | STS_SRV_S3);
    let bi = p.lsu_prop(&lsu(s, "nbu-bkt")).unwrap();
    assert_ne!(bi.lsu_flags & STS_LSUF_S3, 0);
    assert_eq!(bi.lsu_capacity, QUOTA, "a bucket's capacity is its view's quota");
    let si = p.server_prop(s).unwrap();
    assert!(get_str(&si.srv_version).contains("VAST 5.3"), "{}", get_str(&si.srv_version));
    assert!(!get_str(&si.srv_guid).is_empty());
    let ifs = get_str(&si.srv_interfaces);
    assert!(ifs.split(',').count() >= 3, "data VIPs from vippools/: {ifs}");
    let li = p.lsu_prop(&lsu(s, "nbu-lsu2")).unwrap();
    assert!(li.lsu_capacity >= 1 << 40, "no quota: the cluster's logical space");
    assert!(get_str(&li.lsu_description).contains("/nbu/lsu2"));
    assert_eq!(p.lsu_prop(&lsu(s, "other")).err(), Some(Status(STS_ENOENT)), "not selected");
    p.close_server(s).unwrap();
}

#[test]
fn capacity_follows_bytes_written_and_deleted() {
    let w = world();
    let p = &w.plugin;
    let s = p.open_server("VastData:sim", w.sim.admin_user(), w.sim.admin_password()).unwrap();
    let l = lsu(s, "nbu-lsu1");
    let before = p.lsu_prop(&l).unwrap();
    assert_eq!(before.lsu_capacity, QUOTA, "the quota's hard limit");
    backup(p, &l, "cap_1_C1_F1", 8 << 20);
    let after = p.lsu_prop(&l).unwrap();
    assert!(after.lsu_used >= before.lsu_used + (8 << 20), "used {} -> {}", before.lsu_used, after.lsu_used);
    assert_eq!(after.lsu_images, before.lsu_images + 1);
    p.delete_image(&l, &image_def("cap_1_C1_F1", "", "")).unwrap();
    let gone = p.lsu_prop(&l).unwrap();
    assert!(gone.lsu_used < after.lsu_used && gone.lsu_used <= before.lsu_used + 4096);
    p.close_server(s).unwrap();
}

#[test]
fn survives_token_expiry_mid_job() {
    let w = world();
    let p = &w.plugin;
    let s = p.open_server("VastData:sim", w.sim.admin_user(), w.sim.admin_password()).unwrap();
    let l = lsu(s, "nbu-lsu2");
    let h = p.create_image(&l, &image_def("tok_1_C1_F1", "1", "vms")).unwrap();
    p.write(h, &[1u8; 65536], 0).unwrap();
    w.sim.expire_access_tokens();
    // bpstsinfo polls in the middle of the job: VMS says 403 "Token is invalid or expired".
    p.lsu_prop(&lsu(s, "nbu-lsu1")).unwrap();
    p.server_prop(s).unwrap();
    p.write(h, &[2u8; 65536], 65536).unwrap();
    p.close_image(h, STS_CLOSEF_IH_COMPLETE).unwrap();
    w.sim.expire_access_tokens();
    p.delete_image(&l, &image_def("tok_1_C1_F1", "", "")).unwrap();
    let info = p.lsu_prop(&l).unwrap();
    assert!(info.lsu_capacity > 0);
    p.close_server(s).unwrap();
    let log = std::fs::read_to_string(&w.log).unwrap();
    assert!(!log.contains(w.sim.admin_password()) || w.sim.admin_password().len() < 8);
}

#[test]
fn short_token_lifetimes_refresh_under_load() {
    let w = world();
    let p = &w.plugin;
    let s = p.open_server("VastData:sim", w.sim.admin_user(), w.sim.admin_password()).unwrap();
    // Short enough to expire several times during the test, long enough for the other tests
    // running beside it to finish a login-and-request sequence on a loaded machine.
    w.sim.set_token_lifetimes(Duration::from_secs(1), Duration::from_secs(60));
    std::thread::scope(|sc| {
        for _ in 0..4 {
            let s = s as usize;
            sc.spawn(move || {
                for _ in 0..8 {
                    // get_lsu_prop_byname after a delete is a fresh VMS call each time.
                    p.lsu_prop(&lsu(s as stsp_server_handle_t, "nbu-lsu2")).unwrap();
                    std::thread::sleep(Duration::from_millis(350));
                }
            });
        }
    });
    w.sim.set_token_lifetimes(Duration::from_secs(300), Duration::from_secs(3600));
    p.close_server(s).unwrap();
}

#[test]
fn api_token_and_basic_auth() {
    let w = world();
    let p = &w.plugin;
    let s = p.open_server("VastData:sim", "", &format!("token:{}", w.api_token)).unwrap();
    assert_eq!(p.lsu_names(s).unwrap().len(), 4);
    p.close_server(s).unwrap();
    let s = p.open_server("VastData:sim-basic", w.sim.admin_user(), w.sim.admin_password()).unwrap();
    assert_eq!(p.lsu_names(s).unwrap().len(), 4);
    p.close_server(s).unwrap();
    assert_eq!(p.open_server("VastData:sim", "", "token:not-a-token").err(), Some(Status(STS_EAUTH)));
}

#[test]
fn each_failure_to_connect_has_its_status_and_log_line() {
    let w = world();
    let p = &w.plugin;
    let cases = [
        ("VastData:sim", "admin", "wrong-password", STS_EAUTH, "refused user 'admin'"),
        ("VastData:sim-basic", "admin", "wrong-password", STS_EAUTH, "HTTP 403"),
        ("VastData:sim-down", "admin", "123456", STS_ECONNECT, "is the address right"),
        ("VastData:sim-untrusted", "admin", "123456", STS_ETLS, "ca_file"),
        ("VastData:nosuchcluster", "admin", "123456", STS_ECONFIG, "no [[server]] with name 'nosuchcluster'"),
    ];
    for (server, user, password, status, hint) in cases {
        let got = p.open_server(server, user, password).err();
        let log = std::fs::read_to_string(&w.log).unwrap();
        let line = log
            .lines()
            .rev()
            .find(|l| l.contains("stspi_open_server") && l.contains(server))
            .unwrap_or_else(|| panic!("no log line for {server}"));
        assert_eq!(got, Some(Status(status)), "{server} with {password}: {line}");
        assert!(line.contains(hint) && line.contains(&format!("status={status}")), "{line}");
        assert!(!line.contains("wrong-password"), "a password reached the log: {line}");
    }
    // The explicit opt-out works (and is logged as a warning).
    let s = p.open_server("VastData:sim-insecure", "admin", "123456").unwrap();
    p.close_server(s).unwrap();
    assert!(std::fs::read_to_string(&w.log).unwrap().contains("TLS verification of VMS is switched off"));
}

/// The S3 data path end to end: a backup into a bucket in multipart parts spread over the VIPs,
/// restore, capacity from the bucket's quota, server-side copy to another bucket, a copy to an
/// NFS view (streamed: different stores), and expiry.
#[test]
fn s3_bucket_backup_restore_copy_expire() {
    let w = world();
    let p = &w.plugin;
    let s = p.open_server("VastData:sim", w.sim.admin_user(), w.sim.admin_password()).unwrap();
    let (b1, b2, nfs) = (lsu(s, "nbu-bkt"), lsu(s, "nbu-bkt2"), lsu(s, "nbu-lsu2"));
    let size = 12 * (1 << 20) + 12345;
    let before = p.lsu_prop(&b1).unwrap().lsu_used;
    backup(p, &b1, "s3_1_C1_F1", size);
    verify(p, &b1, "s3_1_C1_F1", size);
    let after = p.lsu_prop(&b1).unwrap();
    assert!(after.lsu_used >= before + size, "quota usage follows the bucket's bytes");
    // The object is a file under the view path: S3 and NFS share one namespace.
    assert!(w.sim.root().join("nbu/bkt/s3_1_C1_F1/manifest").exists());
    p.copy_image(&b2, &image_def("s3_1_C2_F1", "", ""), &b1, &image_def("s3_1_C1_F1", "", "")).unwrap();
    verify(p, &b2, "s3_1_C2_F1", size);
    p.copy_image(&nfs, &image_def("s3_1_C3_F1", "", ""), &b1, &image_def("s3_1_C1_F1", "", "")).unwrap();
    verify(p, &nfs, "s3_1_C3_F1", size);
    let listed = p.images(&b1, "s3_1_").unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].imo_size, size);
    for (l, n) in [(&b1, "s3_1_C1_F1"), (&b2, "s3_1_C2_F1"), (&nfs, "s3_1_C3_F1")] {
        p.delete_image(l, &image_def(n, "", "")).unwrap();
        p.delete_image(l, &image_def(n, "", "")).unwrap();
        assert!(p.images(l, "s3_1_").unwrap().is_empty());
    }
    // Neither the S3 secret key nor the VMS password reached the log.
    let log = std::fs::read_to_string(&w.log).unwrap();
    let cfg = std::fs::read_to_string(w.dir.path().join("vast-ost.toml")).unwrap();
    let secret = cfg.lines().find_map(|l| l.strip_prefix("secret_key = \"")).unwrap().trim_end_matches('"');
    assert!(secret.len() >= 16 && !log.contains(secret), "the S3 secret key reached the log");
    assert!(!log.contains(&format!("\"{}\"", w.sim.admin_password())), "the VMS password reached the log");
    // No object is left (an empty directory may stay, as S3 prefixes are implicit).
    let left = files_below(&w.sim.root().join("nbu/bkt/s3_1_C1_F1"));
    assert!(left.is_empty(), "left behind: {left:?}");
    p.close_server(s).unwrap();
}
