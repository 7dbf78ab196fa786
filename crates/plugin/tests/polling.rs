//! What NetBackup's polling sees without credentials: `stspi_get_server_prop_byname` describes
//! the same server an open handle does (flags from the config, version, GUID and interfaces
//! from the cache the last open wrote), for a VMS-backed server with NFS views and S3 buckets;
//! and which names are refused (spaces among them).

mod common;

use std::sync::OnceLock;

use common::*;
use vast_ost_host::abi::*;
use vast_ost_host::{get_str, image_def, lsu, Plugin, Status};
use vast_sim::SimConfig;

const SERVER: &str = "VastData:sim";

struct World {
    dir: tempfile::TempDir,
    cluster: Cluster,
    plugin: Plugin,
    /// Held by each test: every open rewrites the cache the by-name test watches.
    serial: std::sync::Mutex<()>,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let cluster = Cluster::start(dir.path(), SimConfig::new(dir.path().join("cluster")));
        cluster.nfs_view("nbu-lsu1", "/nbu/lsu1");
        let (ak, sk) = cluster.s3_user("nbu-s3", 50001);
        cluster.bucket("nbu-bkt", "/nbu/bkt", "nbu-s3");
        let s3_port = cluster.sim.s3_endpoints()[0].rsplit(':').next().unwrap().to_string();
        let config = dir.path().join("vast-ost.toml");
        std::fs::write(
            &config,
            format!(
                "[[server]]\nname = \"{SERVER}\"\nlsu_prefix = \"nbu-\"\n[server.vms]\naddress = \"{}\"\n\
                 ca_file = \"{}\"\n[server.nfs]\nmount = \"{}\"\n[server.s3]\nvip_port = {s3_port}\n\
                 access_key = \"{ak}\"\nsecret_key = \"{sk}\"\n",
                cluster.sim.vms_url(),
                cluster.ca.display(),
                cluster.sim.root().display()
            ),
        )
        .unwrap();
        let plugin = load_plugin(&config, &dir.path().join("vast-ost.log"));
        World { dir, cluster, plugin, serial: Default::default() }
    })
}

fn open(w: &World) -> stsp_server_handle_t {
    w.plugin.open_server(SERVER, w.cluster.sim.admin_user(), w.cluster.sim.admin_password()).unwrap()
}

#[test]
fn by_name_describes_the_open_server() {
    let w = world();
    let _one_at_a_time = w.serial.lock().unwrap_or_else(|e| e.into_inner());
    let p = &w.plugin;
    let cache = w.dir.path().join("cache");
    let _ = std::fs::remove_dir_all(&cache);
    let both = STS_SRV_DISK
        | STS_SRV_CRED
        | STS_SRV_COPY_IMAGE
        | STS_SRV_WRITE_RANDOM
        | STS_SRV_IMAGE_META
        | STS_SRV_OPTIMIZED_IMAGE
        | STS_SRV_COPY_EXTENT
        | STS_SRV_NFS
        | STS_SRV_S3;

    // Never opened on this media server: the flags already match, the version says so.
    let fresh = p.server_prop_byname(SERVER).unwrap();
    assert_eq!(fresh.srv_flags, both, "flags by name before any open: {:#x}", fresh.srv_flags);
    assert!(get_str(&fresh.srv_version).contains("not opened"), "{}", get_str(&fresh.srv_version));

    let s = open(w);
    let opened = p.server_prop(s).unwrap();
    p.close_server(s).unwrap();
    assert_eq!(opened.srv_flags, both, "{:#x}", opened.srv_flags);
    assert!(get_str(&opened.srv_version).starts_with("VAST 5.3"), "{}", get_str(&opened.srv_version));

    let polled = p.server_prop_byname(SERVER).unwrap();
    assert_eq!(polled.srv_flags, opened.srv_flags);
    assert_eq!(get_str(&polled.srv_server), get_str(&opened.srv_server));
    assert_eq!(get_str(&polled.srv_version), get_str(&opened.srv_version));
    assert_eq!(get_str(&polled.srv_guid), get_str(&opened.srv_guid));
    assert_eq!(get_str(&polled.srv_interfaces), get_str(&opened.srv_interfaces));
    assert!(!get_str(&polled.srv_guid).is_empty() && get_str(&polled.srv_interfaces).contains(','));

    // Only a cache: gone, polling still works and the flags stay right.
    std::fs::remove_dir_all(&cache).unwrap();
    let again = p.server_prop_byname(SERVER).unwrap();
    assert_eq!(again.srv_flags, both);
    assert_eq!(get_str(&again.srv_version), get_str(&fresh.srv_version));
}

/// Names are 1–240 bytes of printable ASCII other than space, `/` and `\`: NetBackup's own
/// names never hold a space, and a name is one file name and one S3 key segment as it is.
#[test]
fn names_with_spaces_are_refused() {
    let w = world();
    let _one_at_a_time = w.serial.lock().unwrap_or_else(|e| e.into_inner());
    let p = &w.plugin;
    let s = open(w);
    for l in ["nbu-lsu1", "nbu-bkt"] {
        let def = image_def("client one_1700000000_C1_F1", "1700000000", "p");
        assert_eq!(p.create_image(&lsu(s, l), &def).err(), Some(Status(STS_EINVAL)), "{l}");
        assert_eq!(p.image_prop_byname(&lsu(s, l), &def).err(), Some(Status(STS_EINVAL)), "{l}");
    }
    assert_eq!(p.lsu_prop(&lsu(s, "nbu lsu1")).err(), Some(Status(STS_EINVAL)));
    p.close_server(s).unwrap();
}
