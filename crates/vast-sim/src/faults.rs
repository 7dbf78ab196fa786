//! Fault injection shared by the VMS and S3 listeners: added latency, a 503 storm (VMS `503`,
//! S3 `SlowDown`), connections closed without a response, plus deterministic "next N requests"
//! counters. Every random decision comes from one seeded RNG so a test that issues the same
//! requests in the same order sees the same faults.

use crate::util::Rng;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::time::Duration;

/// Which listeners a fault setting applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Plane {
    #[default]
    All,
    Vms,
    S3,
}

/// Runtime fault knobs. `Default` is "no faults".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultConfig {
    /// Extra delay before every matching request is handled.
    pub latency_ms: u64,
    /// Probability (0..=1) that a request is answered 503 (`SlowDown` XML on S3).
    pub error_rate: f64,
    /// Probability (0..=1) that the connection is closed without any response.
    pub drop_rate: f64,
    /// The next N matching requests get a 503, whatever the rates say.
    pub fail_next: u64,
    /// The next N matching requests have their connection dropped.
    pub drop_next: u64,
    /// Which plane the knobs above apply to.
    pub plane: Plane,
    /// Seed of the fault RNG; changing it re-seeds.
    pub seed: u64,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            latency_ms: 0,
            error_rate: 0.0,
            drop_rate: 0.0,
            fail_next: 0,
            drop_next: 0,
            plane: Plane::All,
            seed: 1,
        }
    }
}

/// What the listener must do with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Error,
    Drop,
}

pub struct Faults {
    inner: Mutex<(FaultConfig, Rng)>,
}

impl Faults {
    pub fn new(cfg: FaultConfig) -> Self {
        let rng = Rng::new(cfg.seed);
        Faults { inner: Mutex::new((cfg, rng)) }
    }

    pub fn get(&self) -> FaultConfig {
        self.lock().0.clone()
    }

    pub fn set(&self, cfg: FaultConfig) {
        let mut g = self.lock();
        if cfg.seed != g.0.seed {
            g.1 = Rng::new(cfg.seed);
        }
        g.0 = cfg;
    }

    /// Re-seeds the RNG even if the seed is unchanged (to replay a sequence).
    pub fn reseed(&self) {
        let mut g = self.lock();
        g.1 = Rng::new(g.0.seed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (FaultConfig, Rng)> {
        // A panic while holding this lock cannot leave the config inconsistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Decides the fate of one request on `plane` and returns the latency to add first.
    pub fn decide(&self, plane: Plane) -> (Duration, Verdict) {
        let mut g = self.lock();
        let (cfg, rng) = &mut *g;
        if cfg.plane != Plane::All && cfg.plane != plane {
            return (Duration::ZERO, Verdict::Pass);
        }
        let latency = Duration::from_millis(cfg.latency_ms);
        if cfg.drop_next > 0 {
            cfg.drop_next -= 1;
            return (latency, Verdict::Drop);
        }
        if cfg.fail_next > 0 {
            cfg.fail_next -= 1;
            return (latency, Verdict::Error);
        }
        // Always draw both numbers so the sequence does not depend on which knob is set.
        let (d, e) = (rng.next_f64(), rng.next_f64());
        let v = if d < cfg.drop_rate {
            Verdict::Drop
        } else if e < cfg.error_rate {
            Verdict::Error
        } else {
            Verdict::Pass
        };
        (latency, v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_sequences_repeat() {
        let cfg = FaultConfig { error_rate: 0.5, seed: 42, ..Default::default() };
        let f = Faults::new(cfg.clone());
        let a: Vec<_> = (0..50).map(|_| f.decide(Plane::S3).1).collect();
        f.reseed();
        let b: Vec<_> = (0..50).map(|_| f.decide(Plane::S3).1).collect();
        assert_eq!(a, b);
        assert!(a.contains(&Verdict::Error) && a.contains(&Verdict::Pass));
        f.set(FaultConfig { plane: Plane::Vms, fail_next: 1, ..cfg });
        assert_eq!(f.decide(Plane::S3).1, Verdict::Pass);
        assert_eq!(f.decide(Plane::Vms).1, Verdict::Error);
    }
}
