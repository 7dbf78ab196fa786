//! The data-path addresses (VAST's VIPs) a client spreads its streams over: round-robin per
//! stream, a failed one skipped for a while and re-admitted only after a TCP probe reaches it.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tracing::{info, warn};
use url::Url;

use crate::error::{Error, Result};

/// A failed endpoint is skipped by new requests for this long, then probed.
const ENDPOINT_PENALTY: Duration = Duration::from_secs(15);
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

struct Endpoint {
    url: Url,
    /// Milliseconds since `Endpoints::epoch` until which the endpoint is skipped.
    bad_until: AtomicU64,
    /// Failed, and not yet seen answering again: re-admitted only after a probe connects.
    down: AtomicBool,
}

pub struct Endpoints {
    endpoints: Vec<Endpoint>,
    next: AtomicUsize,
    epoch: Instant,
}

impl Endpoints {
    /// Check and take `endpoints` (`http(s)://host[:port]`, nothing else).
    pub fn new(endpoints: &[String]) -> Result<Endpoints> {
        if endpoints.is_empty() {
            return Err(Error::config(
                "S3: no endpoint configured (endpoints = [\"http://host:port\", ...])",
            ));
        }
        let mut eps = Vec::new();
        for e in endpoints {
            let url: Url = e.parse().map_err(|err| Error::config(format!("S3 endpoint '{e}': {err}")))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(Error::config(format!("S3 endpoint '{e}' must be http(s)://host[:port]")));
            }
            if url.query().is_some() || !url.username().is_empty() || url.password().is_some() {
                return Err(Error::config(format!(
                    "S3 endpoint '{e}' must not carry a query or credentials (use access_key/secret_key)"
                )));
            }
            eps.push(Endpoint { url, bad_until: AtomicU64::new(0), down: AtomicBool::new(false) });
        }
        Ok(Endpoints { endpoints: eps, next: AtomicUsize::new(0), epoch: Instant::now() })
    }

    pub fn any_https(&self) -> bool {
        self.endpoints.iter().any(|e| e.url.scheme() == "https")
    }

    pub fn url(&self, i: usize) -> &Url {
        &self.endpoints[i % self.endpoints.len()].url
    }

    /// The endpoint a new stream (one piece) starts on: round-robin over the endpoints.
    pub fn pick(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed) % self.endpoints.len()
    }

    pub fn endpoint(&self, i: usize) -> &str {
        self.url(i).as_str()
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// `preferred`, unless it failed recently: then the next one that did not. An endpoint
    /// whose penalty ran out comes back only when a probe reaches it.
    pub fn usable(&self, preferred: usize) -> usize {
        let n = self.endpoints.len();
        for i in (0..n).map(|d| (preferred + d) % n) {
            let ep = &self.endpoints[i];
            if ep.bad_until.load(Ordering::Relaxed) > self.now_ms() {
                continue;
            }
            if !ep.down.load(Ordering::Relaxed) || self.probe(i) {
                return i;
            }
        }
        preferred % n
    }

    /// A TCP connect to a down endpoint: re-admits it if it answers, else extends its penalty.
    fn probe(&self, i: usize) -> bool {
        let ep = &self.endpoints[i];
        let addr = ep.url.socket_addrs(|| None).ok().and_then(|a| a.into_iter().next());
        let ok = addr.is_some_and(|a| std::net::TcpStream::connect_timeout(&a, PROBE_TIMEOUT).is_ok());
        if ok {
            ep.down.store(false, Ordering::Relaxed);
            info!("S3 endpoint {} answers again: back in use", ep.url);
        } else {
            self.penalize(i);
        }
        ok
    }

    pub fn penalize(&self, i: usize) {
        let ep = &self.endpoints[i];
        if self.endpoints.len() > 1 && !ep.down.swap(true, Ordering::Relaxed) {
            warn!("S3 endpoint {} failed; its streams move to the others until a probe reaches it", ep.url);
        }
        ep.down.store(true, Ordering::Relaxed);
        let until = self.now_ms() + ENDPOINT_PENALTY.as_millis() as u64;
        ep.bad_until.store(until, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A failed endpoint stays out until a probe reaches it, then comes back.
    #[test]
    fn down_endpoint_is_readmitted_after_a_probe() {
        let live = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let eps = [live.local_addr().unwrap(), other.local_addr().unwrap()].map(|a| format!("http://{a}"));
        let c = Endpoints::new(&eps).unwrap();
        c.penalize(0);
        assert_eq!(c.usable(0), 1, "skipped while penalized");
        c.endpoints[0].bad_until.store(0, Ordering::Relaxed);
        assert_eq!(c.usable(0), 0, "the probe connects: back in use");
        assert!(!c.endpoints[0].down.load(Ordering::Relaxed));
        drop(live);
        c.penalize(0);
        c.endpoints[0].bad_until.store(0, Ordering::Relaxed);
        assert_eq!(c.usable(0), 1, "the probe fails: the streams stay on the other endpoint");
        assert!(
            c.endpoints[0].down.load(Ordering::Relaxed)
                && c.endpoints[0].bad_until.load(Ordering::Relaxed) > 0
        );
    }
}
