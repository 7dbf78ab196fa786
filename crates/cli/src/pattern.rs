//! A deterministic, seekable byte stream for the demo: any range of it can be regenerated
//! from its offset alone, so data is written and later checked without ever being held in
//! memory.
//!
//! Word `i` of the stream is SplitMix64 of `seed + (i + 1) * GOLDEN`: the SplitMix64 sequence
//! itself, but computable at any index. It is incompressible and fast (a few multiplies per
//! 8 bytes), so the figures measure the plug-in, not the generator.

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

#[derive(Clone, Copy, Debug)]
pub struct Pattern {
    seed: u64,
}

#[inline]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Pattern {
    /// The stream of an image, keyed by a name (FNV-1a) so each image's content differs and a
    /// mix-up between two images is caught.
    pub fn for_name(name: &str) -> Pattern {
        let seed = name
            .bytes()
            .fold(0xCBF2_9CE4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3));
        Pattern { seed }
    }

    #[inline]
    fn word(&self, i: u64) -> [u8; 8] {
        mix(self.seed.wrapping_add(i.wrapping_add(1).wrapping_mul(GOLDEN))).to_le_bytes()
    }

    /// Fill `buf` with the stream's bytes at `offset..offset + buf.len()`.
    pub fn fill(&self, offset: u64, buf: &mut [u8]) {
        let mut i = offset / 8;
        let skip = (offset % 8) as usize;
        let mut rest = buf;
        if skip != 0 {
            // Unaligned start: the tail of one word.
            let w = self.word(i);
            let n = (8 - skip).min(rest.len());
            rest[..n].copy_from_slice(&w[skip..skip + n]);
            rest = &mut rest[n..];
            i += 1;
        }
        let mut chunks = rest.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.word(i));
            i += 1;
        }
        let tail = chunks.into_remainder();
        if !tail.is_empty() {
            let n = tail.len();
            tail.copy_from_slice(&self.word(i)[..n]);
        }
    }

    /// Compare `data` with the stream at `offset`, using `scratch` (same length or longer) for
    /// the expected bytes. Returns the offset in the stream of the first differing byte.
    pub fn check(&self, offset: u64, data: &[u8], scratch: &mut [u8]) -> Option<u64> {
        let want = &mut scratch[..data.len()];
        self.fill(offset, want);
        first_difference(data, want).map(|i| offset + i as u64)
    }
}

/// Index of the first byte where `a` and `b` differ, comparing their common length (slice
/// equality is a memcmp; only a mismatch pays for the byte-wise search).
pub fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    let n = a.len().min(b.len());
    if a[..n] == b[..n] {
        return None;
    }
    a.iter().zip(b).position(|(x, y)| x != y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_range_matches_the_whole_stream() {
        let p = Pattern::for_name("client_1_C1_F1");
        let mut whole = vec![0u8; 1000];
        p.fill(0, &mut whole);
        for (off, len) in [(0, 1000), (3, 5), (7, 1), (8, 16), (13, 987), (999, 1), (5, 2)] {
            let mut part = vec![0u8; len];
            p.fill(off as u64, &mut part);
            assert_eq!(part, whole[off..off + len], "offset {off} length {len}");
        }
    }

    #[test]
    fn names_give_different_streams_and_check_finds_the_offset() {
        let (a, b) = (Pattern::for_name("x_C1_F1"), Pattern::for_name("x_C1_F2"));
        let (mut x, mut y) = (vec![0u8; 64], vec![0u8; 64]);
        a.fill(0, &mut x);
        b.fill(0, &mut y);
        assert_ne!(x, y);
        let mut scratch = vec![0u8; 64];
        a.fill(100, &mut x);
        assert_eq!(a.check(100, &x, &mut scratch), None);
        x[17] ^= 1;
        assert_eq!(a.check(100, &x, &mut scratch), Some(117));
    }
}
