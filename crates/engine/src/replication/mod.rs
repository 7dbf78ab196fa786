//! A.I.R. (Auto Image Replication) between VAST clusters.
//!
//! - A `[[replication]]` entry of the config pairs a source LSU with an LSU of another
//!   configured server ([`crate::config::ReplicationConfig`]; [`rep_info`], the flags).
//! - `stspi_async_copy_image` of an image set starts a job ([`run`]): its record lives on the
//!   source storage ([`job`]), the copy runs on a small fixed pool of threads of this process
//!   ([`pool`]), one image at a time ([`copy`]) through the verified, streamed copy of the image layer
//!   ([`crate::image::replicate`]: the target stays pending until it is read back and
//!   compared). A copier that dies leaves the record saying how far it got; the next
//!   `async_wait` or `async_copy_image` of the set in any process of a media server resumes
//!   it from the first image not committed.
//! - When the whole set is committed on the target, one `STS_EVT_IMG_REP` event is appended to
//!   the target LSU's journal on the target storage ([`events`]), exactly once per job.

mod copy;
pub mod events;
pub mod job;
mod pool;
mod run;

pub use events::{Channel, Event, EventImage};
pub use pool::pause_all;
pub use run::{cancel, start, wait};

use crate::config::Config;
use crate::error::{Error, Result};
use ost_abi as abi;

/// Threads per process that copy images (each with one 4 MiB buffer and its target writer).
pub const WORKERS: usize = 2;

/// An operation id: `<source server>/<source LSU>/<job id>` (no part holds a `/`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OpId {
    pub server: String,
    pub lsu: String,
    pub job: String,
}

impl OpId {
    pub fn parse(s: &str) -> Result<OpId> {
        let mut it = s.split('/');
        match (it.next(), it.next(), it.next(), it.next()) {
            (Some(server), Some(lsu), Some(job), None)
                if !server.is_empty()
                    && !lsu.is_empty()
                    && job.len() == 16
                    && job.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                Ok(OpId { server: server.into(), lsu: lsu.into(), job: job.into() })
            }
            _ => Err(Error::invalid(format!("'{s}' is not an operation id of this plug-in"))),
        }
    }
}

impl std::fmt::Display for OpId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.server, self.lsu, self.job)
    }
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    #[default]
    Running,
    Done,
    Failed,
    Cancelled,
}

/// What `stspi_async_wait` reports.
#[derive(Debug, Clone, Default)]
pub struct Status {
    pub phase: Phase,
    /// With `Failed`: the failure's status code and message.
    pub error: Option<(i32, String)>,
    pub images_done: u32,
    pub images_total: u32,
    pub bytes_done: u64,
    pub bytes_total: u64,
    /// With `Done`: the event's sequence number.
    pub seq: u64,
}

impl Status {
    pub fn of(j: &job::Job) -> Status {
        let (phase, error, seq) = match &j.state {
            job::State::Done { seq } => (Phase::Done, None, *seq),
            job::State::Failed { status, message } => (Phase::Failed, Some((*status, message.clone())), 0),
            job::State::Cancelled => (Phase::Cancelled, None, 0),
            _ => (Phase::Running, None, 0),
        };
        Status {
            phase,
            error,
            images_done: j.copied as u32,
            images_total: j.images.len() as u32,
            bytes_done: j.bytes_copied(),
            bytes_total: j.bytes_total(),
            seq,
        }
    }
}

/// The replication partners of an LSU, and its `STS_LSUF_REP_*` flags.
#[derive(Debug, Clone, Default)]
pub struct RepInfo {
    pub flags: u64,
    /// `(server, LSU)` this LSU's images are replicated to.
    pub targets: Vec<(String, String)>,
    /// `(server, LSU)` whose images are replicated to this one.
    pub sources: Vec<(String, String)>,
}

/// What the config says about `lsu` of `server` (full name).
pub fn rep_info(cfg: &Config, server: &str, lsu: &str) -> RepInfo {
    let targets: Vec<_> = cfg
        .replication_targets(server, lsu)
        .into_iter()
        .map(|r| (r.target(), r.target_lsu.clone()))
        .collect();
    let sources: Vec<_> = cfg
        .replication_sources(server, lsu)
        .into_iter()
        .map(|r| (r.source(), r.source_lsu.clone()))
        .collect();
    let mut flags = 0;
    if !targets.is_empty() {
        flags |= abi::STS_LSUF_REP_SOURCE | abi::STS_LSUF_REP_ENABLED;
    }
    if !sources.is_empty() {
        flags |= abi::STS_LSUF_REP_TARGET | abi::STS_LSUF_REP_ENABLED;
    }
    RepInfo { flags, targets, sources }
}

/// `STS_SRV_STORED_EV` for a server some `[[replication]]` replicates to: its target LSUs keep
/// event journals.
pub fn server_flags(cfg: &Config, server: &str) -> u64 {
    if cfg.replications.iter().any(|r| r.target().eq_ignore_ascii_case(server)) {
        abi::STS_SRV_STORED_EV
    } else {
        0
    }
}

/// A job's id: a hash of where the set goes and what it is, so asking again for the same
/// copy finds the same job (and its progress) instead of starting another.
pub(crate) fn job_id(target: &str, target_lsu: &str, images: &[crate::manifest::ImageDef]) -> String {
    // FNV-1a, 64 bits: stable across builds and platforms.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |s: &str| {
        for b in s.bytes().chain([0]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    eat(&target.to_ascii_lowercase());
    eat(target_lsu);
    for d in images {
        eat(&d.basename);
        eat(&d.date);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opids_round_trip_and_foreign_ones_are_refused() {
        let op = OpId { server: "VastData:c1".into(), lsu: "lsu1".into(), job: "0123456789abcdef".into() };
        assert_eq!(OpId::parse(&op.to_string()).unwrap(), op);
        for bad in
            ["", "a/b", "a/b/c", "a/b/0123456789abcdeg", "a/b/0123456789abcdef/x", "/b/0123456789abcdef"]
        {
            assert!(OpId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn job_ids_name_the_set_and_its_target() {
        let d = |n: &str| crate::manifest::ImageDef {
            basename: n.into(),
            date: "1".into(),
            ..Default::default()
        };
        let a = job_id("VastData:c2", "l", &[d("x_HDR"), d("x_IM")]);
        assert_eq!(a, job_id("vastdata:C2", "l", &[d("x_HDR"), d("x_IM")]));
        assert_ne!(a, job_id("VastData:c2", "m", &[d("x_HDR"), d("x_IM")]));
        assert_ne!(a, job_id("VastData:c2", "l", &[d("x_HDR")]));
    }
}
