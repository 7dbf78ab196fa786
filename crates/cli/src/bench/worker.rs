//! What the bench asks the `vast-ost` binary to do that no other command does:
//! `read-random`, NetBackup's restore-with-seek pattern (reads of one size at random offsets
//! of an image, through the plug-in), at offsets the boto3 peer computes the same way.

use anyhow::{bail, Result};

use crate::session::Session;

/// The offsets of `read-random` (and of the boto3 peer's `random`): a 64-bit LCG from `seed`,
/// `count` multiples of `block` below `size`.
pub fn offsets(size: u64, count: u64, block: u64, seed: u64) -> impl Iterator<Item = u64> {
    let blocks = (size / block).max(1);
    let mut x = seed;
    (0..count).map(move |_| {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((x >> 11) % blocks) * block
    })
}

/// Read `count` blocks of `block` bytes at the offsets above.
pub fn read_random(s: &Session, lsu: &str, image: &str, count: u64, block: usize, seed: u64) -> Result<()> {
    let size = s.image_info(lsu, image)?.imo_size;
    if size < block as u64 {
        bail!("image '{image}' ({size} bytes) is smaller than one read");
    }
    let img = s.open_read(lsu, image)?;
    let mut buf = vec![0u8; block];
    for off in offsets(size, count, block as u64, seed) {
        let n = img.read(&mut buf, off)?;
        if n != block {
            bail!("read of {block} bytes at {off} returned {n}");
        }
    }
    img.close(false)?;
    Ok(())
}

/// Write `size` bytes of incompressible data to `path` (xorshift; fast enough not to matter).
pub fn make_data(path: &std::path::Path, size: u64, seed: u64) -> Result<()> {
    use std::io::Write;
    let mut f = std::io::BufWriter::with_capacity(4 << 20, std::fs::File::create(path)?);
    let mut x = seed | 1;
    let mut buf = vec![0u8; 4 << 20];
    let mut left = size;
    while left > 0 {
        for w in buf.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes());
        }
        let n = (left as usize).min(buf.len());
        f.write_all(&buf[..n])?;
        left -= n as u64;
    }
    f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_match_the_boto3_peer() {
        // The same LCG as peer_boto3.py's offsets(): values checked with Python.
        let v: Vec<u64> = offsets(1 << 30, 3, 65536, 7).collect();
        assert_eq!(
            v[0], 801046528,
            "python3: ((7*6364136223846793005+1442695040888963407)%2**64>>11)%16384*65536"
        );
        assert!(v.iter().all(|o| o % 65536 == 0 && *o < 1 << 30));
    }
}
