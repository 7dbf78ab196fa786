//! A broken config file through the C interface: `stspi_init` refuses it with STS_ECONFIG and a
//! log line naming the file, the line and what was expected; once fixed, init succeeds.

mod common;

use common::*;
use vast_ost_host::abi::*;
use vast_ost_host::{Plugin, Status};

#[test]
fn broken_config_is_econfig_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("vast-ost.toml");
    let log = dir.path().join("vast-ost.log");
    std::fs::write(&cfg, "[log]\nlevel = \"loud\"\n").unwrap();
    std::env::set_var("VAST_OST_CONFIG", &cfg);
    std::env::set_var("VAST_OST_LOG", &log);
    let p = Plugin::load(&plugin_path()).unwrap();
    assert_eq!(p.init().err(), Some(Status(STS_ECONFIG)));
    assert_eq!(p.claim(SERVER).err(), Some(Status(STS_ENOTINIT)), "nothing works without init");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let line =
        text.lines().find(|l| l.contains("stspi_init")).unwrap_or_else(|| panic!("no log line:\n{text}"));
    assert!(line.contains(&format!("{}:2:", cfg.display())) && line.contains("status=2060102"), "{line}");

    // A mistake deeper in: a server without a data path.
    std::fs::write(&cfg, "[[server]]\nname = \"VastData:x\"\n").unwrap();
    assert_eq!(p.init().err(), Some(Status(STS_ECONFIG)));
    assert!(std::fs::read_to_string(&log).unwrap().contains("has no data path"));

    let mount = dir.path().join("mnt");
    std::fs::create_dir_all(mount.join("lsu1")).unwrap();
    write_config(&cfg, &mount, "");
    p.init().unwrap();
    let s = p.open_server(SERVER, "u", "p").unwrap();
    p.close_server(s).unwrap();
    p.terminate().unwrap();
}
