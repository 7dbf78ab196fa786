//! A big image written through the C interface in 256 KiB blocks and restored byte for byte,
//! with the process's peak memory checked to stay flat (its own test binary, so other tests'
//! buffers do not blur the figure).
//!
//! The image is stored as several pieces, as a NetBackup fragment with checkpoints and
//! out-of-order writes is: the plug-in starts a new piece at every `stspi_flush` and at every
//! write that does not continue the previous one (on NFS a piece has no length limit, so
//! nothing else would cut one). It is written in [`PIECES`] segments, out of order and with
//! checkpoints, whose boundaries fall inside 256 KiB blocks; the test checks that the LSU holds
//! exactly that many piece files adding up to the image, and reads the image back in 256 KiB
//! reads that straddle every boundary.
//!
//! Size: 64 MiB (and a bit) by default, so it runs with the other tests. Set
//! `VAST_OST_BIG_IMAGE_GIB=2` for the 2 GiB run through the C interface (any number of GiB),
//! or `VAST_OST_BIG_IMAGE_MIB` for a size in MiB.

mod common;

use common::*;
use vast_ost_host::abi::STS_CLOSEF_IH_COMPLETE;
use vast_ost_host::{image_def, lsu};

const BLOCK: usize = 256 * 1024;
const MIB: u64 = 1 << 20;
/// Segments the image is written in, each one piece.
const PIECES: u64 = 6;
/// The order they are written in: 3 after 1, 2 after 3 and 4 after 2 are out of sequence,
/// each starting a new piece ...
const ORDER: [u64; PIECES as usize] = [0, 1, 3, 2, 4, 5];
/// ... and the segments after which the writer checkpoints (`stspi_flush`), so that 1 and 5,
/// which continue 0 and 4, start pieces too.
const FLUSH_AFTER: [u64; 2] = [0, 4];

fn size() -> u64 {
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    match (env("VAST_OST_BIG_IMAGE_GIB"), env("VAST_OST_BIG_IMAGE_MIB")) {
        (Some(gib), _) => gib << 30,
        (None, Some(mib)) => mib << 20,
        // Not a multiple of the block size, so neither are the segment boundaries.
        (None, None) => 64 * MIB + 12345,
    }
}

#[test]
fn big_image_in_pieces_restores_byte_identical_with_flat_memory() {
    let size = size();
    assert!(size >= PIECES * BLOCK as u64, "the image must have room for {PIECES} pieces");
    let f = fixture();
    let p = &f.plugin;
    let s = p.open_server(SERVER, "u", "p").unwrap();
    let l = lsu(s, "lsu1");
    let name = "big_1638486040_C1_F1";
    let def = image_def(name, "1638486040", "big");
    // NetBackup's buffers are page-aligned shared memory: mimic that.
    let mut scratch = Aligned::new(BLOCK);
    let (buf, want) = scratch.pair();
    let before = vm_hwm_kb();

    let bound = |k: u64| k * size / PIECES;
    let h = p.create_image(&l, &def).unwrap();
    for k in ORDER {
        let (mut off, end) = (bound(k), bound(k + 1));
        while off < end {
            let n = BLOCK.min((end - off) as usize);
            pattern(40, off, &mut buf[..n]);
            assert_eq!(p.write(h, &buf[..n], off).unwrap(), n as u64);
            off += n as u64;
        }
        if FLUSH_AFTER.contains(&k) {
            p.flush(h).unwrap();
        }
    }
    p.close_image(h, STS_CLOSEF_IH_COMPLETE).unwrap();
    assert_eq!(p.image_prop_byname(&l, &def).unwrap().imo_size, size);

    let pieces: Vec<u64> = files_below(&f.mount().join("lsu1").join(name))
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "piece"))
        .map(|f| f.metadata().unwrap().len())
        .collect();
    assert_eq!(pieces.len() as u64, PIECES, "piece files: {pieces:?}");
    // Each piece is its segment's bytes, then its block table: a CRC32C (4 bytes) per 256 KiB.
    let tables: u64 = (0..PIECES).map(|k| (bound(k + 1) - bound(k)).div_ceil(256 << 10) * 4).sum();
    assert_eq!(pieces.iter().sum::<u64>(), size + tables, "piece files: {pieces:?}");

    assert_eq!(read_verify(p, &l, &def, 40, buf, want), size);
    let grown_mib = (vm_hwm_kb() - before) / 1024;
    eprintln!("{} MiB image in {PIECES} pieces: peak RSS grew by {grown_mib} MiB", size >> 20);
    assert!(grown_mib < 32, "peak RSS grew by {grown_mib} MiB moving {} MiB", size >> 20);
    p.delete_image(&l, &def).unwrap();
    p.close_server(s).unwrap();
}
