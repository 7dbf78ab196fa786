//! One retry policy for every remote call (VMS and S3): exponential backoff with
//! decorrelated jitter (each sleep is random between the base and three times the previous
//! one, capped), within a total deadline per operation. Only what is safe to repeat is
//! retried; the caller says which errors those are.

use std::time::{Duration, Instant};

use crate::error::Result;

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub base: Duration,
    pub cap: Duration,
    /// Total time an operation may take, retries included.
    pub deadline: Duration,
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(5),
            deadline: Duration::from_secs(60),
            max_attempts: 8,
        }
    }
}

/// `[server.retry]` in the config; any field left out keeps its default.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySettings {
    /// First backoff, milliseconds.
    pub base_ms: u64,
    /// Longest backoff, milliseconds.
    pub cap_ms: u64,
    /// Total time one operation may take, retries included, seconds.
    pub deadline_secs: u64,
    pub max_attempts: u32,
}

impl Default for RetrySettings {
    fn default() -> Self {
        let p = RetryPolicy::default();
        RetrySettings {
            base_ms: p.base.as_millis() as u64,
            cap_ms: p.cap.as_millis() as u64,
            deadline_secs: p.deadline.as_secs(),
            max_attempts: p.max_attempts,
        }
    }
}

impl From<RetrySettings> for RetryPolicy {
    fn from(s: RetrySettings) -> Self {
        RetryPolicy {
            base: Duration::from_millis(s.base_ms.max(1)),
            cap: Duration::from_millis(s.cap_ms.max(s.base_ms).max(1)),
            deadline: Duration::from_secs(s.deadline_secs),
            max_attempts: s.max_attempts.max(1),
        }
    }
}

impl RetryPolicy {
    /// Run `op` until it succeeds, fails with an error `retryable` rejects, or the attempts
    /// or the deadline run out (then the last error is returned).
    pub fn run<T>(
        &self,
        mut op: impl FnMut(u32) -> Result<T>,
        retryable: impl Fn(&crate::error::Error) -> bool,
    ) -> Result<T> {
        let start = Instant::now();
        let mut sleep = self.base;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match op(attempt) {
                Ok(v) => return Ok(v),
                Err(e) => {
                    if !retryable(&e) || attempt >= self.max_attempts {
                        return Err(e);
                    }
                    sleep = self.next_sleep(sleep);
                    if start.elapsed() + sleep > self.deadline {
                        return Err(
                            e.context(format!("gave up after {attempt} attempts in {:?}", start.elapsed()))
                        );
                    }
                    tracing::debug!("attempt {attempt} failed ({e}); retrying in {sleep:?}");
                    std::thread::sleep(sleep);
                }
            }
        }
    }

    /// Decorrelated jitter: uniform in [base, 3 * previous], capped.
    fn next_sleep(&self, prev: Duration) -> Duration {
        let lo = self.base.as_micros() as u64;
        let hi = (prev.as_micros() as u64).saturating_mul(3).max(lo + 1);
        let mut b = [0u8; 8];
        let r = getrandom::fill(&mut b).map(|()| u64::from_le_bytes(b)).unwrap_or(hi / 2);
        Duration::from_micros(lo + r % (hi - lo)).min(self.cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Error, ErrorKind};

    fn fast() -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_millis(1),
            cap: Duration::from_millis(4),
            deadline: Duration::from_secs(5),
            max_attempts: 5,
        }
    }

    #[test]
    fn retries_what_is_retryable_then_gives_up() {
        let mut calls = 0;
        let r: Result<()> = fast().run(
            |_| {
                calls += 1;
                Err(Error::new(ErrorKind::Network, "reset"))
            },
            |_| true,
        );
        assert!(r.is_err());
        assert_eq!(calls, 5);
        let mut calls = 0;
        let r: Result<()> = fast().run(
            |_| {
                calls += 1;
                Err(Error::invalid("400"))
            },
            |e| e.kind() == ErrorKind::Network,
        );
        assert!(r.is_err());
        assert_eq!(calls, 1, "a non-retryable error is returned at once");
        let r =
            fast().run(|n| if n < 3 { Err(Error::new(ErrorKind::Network, "x")) } else { Ok(n) }, |_| true);
        assert_eq!(r.unwrap(), 3);
    }

    #[test]
    fn sleeps_stay_within_base_and_cap() {
        let p = fast();
        let mut s = p.base;
        for _ in 0..100 {
            s = p.next_sleep(s);
            assert!(s >= p.base && s <= p.cap, "{s:?}");
        }
    }
}
