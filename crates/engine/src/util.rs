//! Small shared helpers: ids, clocks, host identity.

use std::time::{SystemTime, UNIX_EPOCH};

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
