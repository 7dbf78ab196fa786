//! Small shared helpers: ids, clocks, host identity.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static PID: AtomicU32 = AtomicU32::new(0);

/// This process's id, asked of the kernel once (glibc no longer caches `getpid`, and the data
/// path asks per call and per request). The plug-in's fork handler calls [`refresh_pid`] in a
/// child, so a child never takes its parent's id for its own.
pub fn pid() -> u32 {
    match PID.load(Ordering::Relaxed) {
        0 => refresh_pid(),
        p => p,
    }
}

/// Ask the kernel again (in a forked child, before anything else runs in it).
pub fn refresh_pid() -> u32 {
    let p = std::process::id();
    PID.store(p, Ordering::Relaxed);
    p
}

/// 16 hex digits of OS randomness: temp-file and piece names, writer sessions.
pub fn random_id() -> String {
    let mut b = [0u8; 8];
    // getrandom only fails where there is no OS randomness at all; the time and pid keep the
    // id unique enough for a temp name even then.
    if getrandom::fill(&mut b).is_err() {
        let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() as u64;
        b = (t ^ u64::from(std::process::id()).rotate_left(32)).to_le_bytes();
    }
    format!("{:016x}", u64::from_le_bytes(b))
}

/// Seconds since the epoch.
pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// Environment variable that overrides the host name recorded for writers (tests that play
/// several media servers on one machine; hosts that share a name).
pub const HOSTNAME_ENV: &str = "VAST_OST_HOSTNAME";

/// This media server's name, as recorded in the manifests of images it writes.
pub fn hostname() -> String {
    match std::env::var(HOSTNAME_ENV) {
        Ok(h) if !h.is_empty() => h,
        _ => rustix::system::uname().nodename().to_string_lossy().into_owned(),
    }
}

/// Is process `pid` of this host alive? (Signal 0 checks without sending anything.)
pub fn process_alive(pid: u32) -> bool {
    let Some(p) = rustix::process::Pid::from_raw(pid as i32) else { return false };
    match rustix::process::test_kill_process(p) {
        Ok(()) => true,
        // EPERM: it exists, it is just not ours.
        Err(e) => e == rustix::io::Errno::PERM,
    }
}

/// CRC32C of `A` followed by `B` from the CRC32C of each and the length of `B`, in a few
/// hundred nanoseconds whatever the length (zlib's `crc32_combine` as of 1.2.12: powers of
/// x² precomputed). The `crc32c` crate's combine squares 32×32 matrices on every call, some
/// 10 µs: per 256 KiB write that was a tenth of a CPU-second per GiB.
pub fn crc32c_combine(crc1: u32, crc2: u32, len2: usize) -> u32 {
    if crc1 == 0 {
        return crc2; // nothing to shift (the CRC of no bytes)
    }
    multmodp(x8nmodp(len2 as u64), crc1) ^ crc2
}

/// The CRC32C polynomial, reflected.
const POLY: u32 = 0x82F6_3B78;

/// a(x) · b(x) mod p(x), bit-reflected (x⁰ is the top bit).
const fn multmodp(a: u32, mut b: u32) -> u32 {
    let mut m = 1u32 << 31;
    let mut p = 0u32;
    loop {
        if a & m != 0 {
            p ^= b;
            if a & (m - 1) == 0 {
                break;
            }
        }
        m >>= 1;
        b = if b & 1 != 0 { (b >> 1) ^ POLY } else { b >> 1 };
    }
    p
}

/// x^(2^k) mod p(x) for k in 0..32.
const X2N: [u32; 32] = {
    let mut t = [0u32; 32];
    let mut p = 1u32 << 30; // x¹
    let mut k = 0;
    while k < 32 {
        t[k] = p;
        p = multmodp(p, p);
        k += 1;
    }
    t
};

/// x^(8n) mod p(x): the operator that appends `n` zero bytes.
fn x8nmodp(mut n: u64) -> u32 {
    let mut p = 1u32 << 31; // x⁰
    let mut k = 3;
    while n != 0 {
        if n & 1 != 0 {
            p = multmodp(X2N[k & 31], p);
        }
        n >>= 1;
        k += 1;
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combine_matches_the_crc_of_the_concatenation() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 131 % 251) as u8).collect();
        for k in [0, 1, 7, 4096, 262_144, 299_999, 300_000] {
            let (a, b) = data.split_at(k);
            let (ca, cb) = (crc32c::crc32c(a), crc32c::crc32c(b));
            assert_eq!(crc32c_combine(ca, cb, b.len()), crc32c::crc32c(&data), "split at {k}");
            assert_eq!(crc32c_combine(ca, cb, b.len()), crc32c::crc32c_combine(ca, cb, b.len()));
        }
    }
}
