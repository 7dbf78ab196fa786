//! The faults a chaos iteration injects while its workers run, chosen and timed by the
//! iteration's seed: 503 storms, connection resets, slow links, VMS token expiry, data VIPs
//! down and up, clock jumps (retention), and kill -9 of a worker process. Each one applied is
//! logged, so a failing iteration shows its schedule.

use std::time::Duration;

use vast_sim::{FaultConfig, Sim};

use super::Rng;

/// One fault, as applied.
#[derive(Debug, Clone)]
pub enum Fault {
    Storm { rate: f64 },
    Resets { rate: f64 },
    Slow { ms: u64 },
    Calm,
    ExpireTokens,
    VipDown(usize),
    VipsUp,
    Clock(i64),
    Kill(usize),
}

/// The next fault and how long to wait before it.
pub fn next(rng: &mut Rng, vips: usize, workers: usize, killed: bool) -> (Duration, Fault) {
    let wait = Duration::from_millis(10 + rng.below(120));
    let f = match rng.below(20) {
        0..=3 => Fault::Storm { rate: 0.05 + rng.below(25) as f64 / 100.0 },
        4..=6 => Fault::Resets { rate: 0.02 + rng.below(8) as f64 / 100.0 },
        7 => Fault::Slow { ms: 20 + rng.below(200) },
        8..=10 => Fault::Calm,
        11..=12 => Fault::ExpireTokens,
        13..=14 => Fault::VipDown(rng.below(vips as u64) as usize),
        15..=16 => Fault::VipsUp,
        17 => Fault::Clock(60 + rng.below(3600) as i64),
        _ if !killed && workers > 1 => Fault::Kill(rng.below(workers as u64) as usize),
        _ => Fault::Calm,
    };
    (wait, f)
}

/// Apply `f` to the simulator (a kill is the driver's to carry out).
pub fn apply(sim: &Sim, f: &Fault, seed: u64) {
    let knobs = |error_rate: f64, drop_rate: f64, latency_ms: u64| FaultConfig {
        error_rate,
        drop_rate,
        latency_ms,
        seed,
        ..FaultConfig::default()
    };
    match f {
        Fault::Storm { rate } => sim.set_faults(knobs(*rate, 0.0, 0)),
        Fault::Resets { rate } => sim.set_faults(knobs(0.0, *rate, 0)),
        Fault::Slow { ms } => sim.set_faults(knobs(0.0, 0.0, *ms)),
        Fault::Calm => sim.set_faults(FaultConfig { seed, ..FaultConfig::default() }),
        Fault::ExpireTokens => sim.expire_access_tokens(),
        // One VIP stays up: with every VIP down nothing can work, which tests nothing.
        Fault::VipDown(i) if *i > 0 => {
            let _ = sim.vip_down(*i);
        }
        Fault::VipDown(_) => {}
        Fault::VipsUp => all_up(sim),
        Fault::Clock(secs) => sim.advance_clock(*secs),
        Fault::Kill(_) => {}
    }
}

pub fn all_up(sim: &Sim) {
    for i in 0..sim.s3_endpoints().len() {
        let _ = sim.vip_up(i);
    }
}
