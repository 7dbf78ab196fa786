//! A multi-GiB image written in 256 KiB blocks and restored byte for byte through the C
//! interface, with the process's peak memory checked to stay flat (its own test binary, so
//! other tests' buffers do not blur the figure). Size: `VAST_OST_BIG_IMAGE_MIB` (default 2048).

mod common;

use common::*;
use vast_ost_host::{image_def, lsu};

const BLOCK: usize = 256 * 1024;

#[test]
fn multi_gib_image_restores_byte_identical_with_flat_memory() {
    let mib: u64 = std::env::var("VAST_OST_BIG_IMAGE_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(2048);
    let size = mib << 20;
    let p = &fixture().plugin;
    let s = p.open_server(SERVER, "u", "p").unwrap();
    let l = lsu(s, "lsu1");
    let def = image_def("big_1638486040_C1_F1", "1638486040", "big");
    // NetBackup's buffers are page-aligned shared memory: mimic that.
    let mut scratch = Aligned::new(BLOCK);
    let (buf, want) = scratch.pair();
    let before = vm_hwm_kb();

    write_pattern(p, &l, &def, 40, size, buf);
    assert_eq!(p.image_prop_byname(&l, &def).unwrap().imo_size, size);

    assert_eq!(read_verify(p, &l, &def, 40, buf, want), size);
    let grown_mib = (vm_hwm_kb() - before) / 1024;
    eprintln!("{mib} MiB image: peak RSS grew by {grown_mib} MiB");
    assert!(grown_mib < 32, "peak RSS grew by {grown_mib} MiB moving {mib} MiB");
    p.delete_image(&l, &def).unwrap();
    p.close_server(s).unwrap();
}
