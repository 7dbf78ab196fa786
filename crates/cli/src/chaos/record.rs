//! The chaos run's own record of what the plug-in reported: one append-only file of JSON lines
//! per process. A line is written (one `write`, straight to the kernel) before a call whose
//! outcome matters and another after it, so a process killed in between leaves "outcome
//! unknown", never a lie. The parent reads every file after the iteration.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::content::Run;

/// One thing a process did or saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "ev", rename_all = "snake_case")]
pub enum Event {
    /// About to close `image` complete; it must then hold these runs.
    Closing {
        lsu: String,
        image: String,
        runs: Vec<Run>,
    },
    /// `stspi_close_image(COMPLETE)` returned `rc`.
    Closed {
        lsu: String,
        image: String,
        rc: i32,
    },
    Deleting {
        lsu: String,
        image: String,
    },
    Deleted {
        lsu: String,
        image: String,
        rc: i32,
    },
    /// `stspi_set_image_retention(until)` returned `rc`.
    Locked {
        lsu: String,
        image: String,
        until: u64,
        rc: i32,
    },
    /// An A.I.R. copy (`stspi_async_copy_image` of `images` of `lsu`) reported done.
    Replicated {
        lsu: String,
        opid: String,
        images: Vec<String>,
    },
    /// The verify pass: how many events of operation `opid` the target's channel holds.
    AirEvents {
        opid: String,
        count: usize,
    },
    /// Something no fault excuses (wrong bytes, a hung call), seen by the process itself.
    Violation {
        what: String,
    },
    /// The verify pass: an image as listed.
    Listed {
        lsu: String,
        image: String,
        flags: u32,
        size: u64,
    },
    /// The verify pass: a whole restore, and what was wrong with it if anything.
    Restored {
        lsu: String,
        image: String,
        problem: Option<String>,
    },
    /// The process ran its workload to the end.
    Done,
}

/// An append-only record file, shared by the threads of one process.
pub struct Recorder {
    file: Mutex<File>,
}

impl Recorder {
    pub fn create(path: &Path) -> Result<Recorder> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(Recorder { file: Mutex::new(file) })
    }

    pub fn log(&self, e: &Event) {
        let mut line = serde_json::to_vec(e).expect("events serialise");
        line.push(b'\n');
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        // One write of the whole line: a kill can only cut it at the end (dropped on read).
        if let Err(err) = f.write_all(&line) {
            eprintln!("chaos: record write failed: {err}");
        }
    }
}

/// Every complete line of a record file (a missing file: none; a torn last line is dropped).
pub fn read(path: &Path) -> Result<Vec<Event>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
}
