//! The record of one replication job, on the source storage (`.vast-ost-air/job.<id>`): the
//! image set, how far the copy got, its state and who runs it. Every change is a
//! compare-and-swap on the record, so a copier, a resumer in another process and a cancel
//! never lose each other's updates, and whoever reads it after a crash knows where to go on.

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::layout::AIR_JOBS;
use crate::manifest::ImageDef;
use crate::store::PieceStore;
use crate::util;

const FORMAT: &str = "vast-ost-air-job";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum State {
    /// Copying images `copied..` of the set.
    Running,
    /// Every image is committed on the target; the event is being appended (journal numbers
    /// above `after` are searched for it before appending another).
    Publishing {
        after: u64,
    },
    Done {
        seq: u64,
    },
    Failed {
        status: i32,
        message: String,
    },
    /// Asked to stop by another process: its runner deletes what it created and stops.
    Cancelling,
    Cancelled,
}

/// Who runs the job (a process of a media server).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Runner {
    pub host: String,
    pub pid: u32,
    pub session: String,
}

impl Runner {
    pub fn me(session: &str) -> Runner {
        Runner { host: util::hostname(), pid: std::process::id(), session: session.into() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub format: String,
    pub id: String,
    pub source_server: String,
    pub source_lsu: String,
    pub target_server: String,
    pub target_lsu: String,
    pub images: Vec<ImageDef>,
    /// Source sizes, for progress.
    pub sizes: Vec<u64>,
    /// `images[..copied]` are committed (verified) on the target.
    pub copied: usize,
    pub state: State,
    pub runner: Option<Runner>,
    /// Last change (the runner's heartbeat), seconds since the epoch.
    pub updated: u64,
    pub created: u64,
}

impl Job {
    pub fn new(
        id: &str,
        source: (&str, &str),
        target: (&str, &str),
        images: Vec<ImageDef>,
        sizes: Vec<u64>,
    ) -> Job {
        let now = util::now_secs();
        Job {
            format: FORMAT.into(),
            id: id.into(),
            source_server: source.0.into(),
            source_lsu: source.1.into(),
            target_server: target.0.into(),
            target_lsu: target.1.into(),
            images,
            sizes,
            copied: 0,
            state: State::Running,
            runner: None,
            updated: now,
            created: now,
        }
    }

    pub fn bytes_total(&self) -> u64 {
        self.sizes.iter().sum()
    }

    pub fn bytes_copied(&self) -> u64 {
        self.sizes[..self.copied.min(self.sizes.len())].iter().sum()
    }

    /// Is the recorded runner gone? On this host its pid tells (this process's own pid counts
    /// as gone: the job is not in its registry, or the caller would not ask); on another only
    /// silence longer than `silence` since the record last changed.
    pub fn runner_gone(&self, silence: std::time::Duration) -> bool {
        let Some(r) = &self.runner else { return true };
        if r.host == util::hostname() {
            return r.pid == std::process::id() || !util::process_alive(r.pid);
        }
        util::now_secs().saturating_sub(self.updated) > silence.as_secs()
    }
}

fn record(id: &str) -> String {
    format!("job.{id}")
}

fn encode(j: &Job) -> Result<Vec<u8>> {
    serde_json::to_vec(j).map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))
}

/// The job and its stored bytes (for the next compare-and-swap), if there is one.
pub fn load(store: &dyn PieceStore, lsu: &str, id: &str) -> Result<Option<(Job, Vec<u8>)>> {
    let Some(raw) = store.read_record(lsu, AIR_JOBS, &record(id))? else { return Ok(None) };
    let j: Job = serde_json::from_slice(&raw)
        .map_err(|e| Error::corrupt(format!("replication job {id} in LSU '{lsu}' does not parse: {e}")))?;
    if j.format != FORMAT || j.id != id {
        return Err(Error::corrupt(format!(
            "replication job record {id} in LSU '{lsu}' holds another record"
        )));
    }
    Ok(Some((j, raw)))
}

/// Store a new job; `AlreadyExists` if its record is there.
pub fn create(store: &dyn PieceStore, lsu: &str, j: &Job) -> Result<()> {
    store.create_record(lsu, AIR_JOBS, &record(&j.id), &encode(j)?)
}

/// Apply `f` to the stored job and store the result, compare-and-swap, rereading when someone
/// else changed it in between. `f` returns `false` to leave the record as it is.
pub fn update(
    store: &dyn PieceStore,
    lsu: &str,
    id: &str,
    mut f: impl FnMut(&mut Job) -> Result<bool>,
) -> Result<Job> {
    for _ in 0..16 {
        let (mut j, raw) = load(store, lsu, id)?
            .ok_or_else(|| Error::not_found(format!("no replication job {id} in LSU '{lsu}'")))?;
        if !f(&mut j)? {
            return Ok(j);
        }
        j.updated = util::now_secs();
        match store.replace_record(lsu, AIR_JOBS, &record(id), &encode(&j)?, &raw) {
            Ok(()) => return Ok(j),
            Err(e) if e.kind() == ErrorKind::State => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::new(ErrorKind::Busy, format!("replication job {id} in LSU '{lsu}' keeps changing: try again")))
}
