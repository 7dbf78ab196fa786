//! What a chaos worker reports, one JSON line per event in its own append-only file: what it
//! is about to do, then what the plug-in answered. A worker killed with -9 leaves its last
//! intent without an answer, which the checker treats as "either way".

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "ev", rename_all = "snake_case")]
pub enum Event {
    /// About to write `image` (`size` bytes of its name's pattern) into `lsu`.
    Begin {
        lsu: String,
        image: String,
        size: u64,
    },
    /// `close(complete)` (or a copy) returned `STS_EOK`: the image must stay exactly so until
    /// deleted. `from`: its first bytes are another image's (a synthetic full, or a copy of one).
    Complete {
        lsu: String,
        image: String,
        size: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<(String, u64)>,
        /// The image whose name's pattern the rest holds (a copy's source), if not its own.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pattern: Option<String>,
    },
    /// Writing or closing failed: the image must never be listed complete.
    Failed {
        lsu: String,
        image: String,
        why: String,
    },
    /// About to delete / deleted with `STS_EOK`.
    Deleting {
        lsu: String,
        image: String,
    },
    Deleted {
        lsu: String,
        image: String,
    },
    /// `set_image_retention` returned `STS_EOK`: no delete may succeed before `until`.
    Locked {
        lsu: String,
        image: String,
        until: u64,
    },
    /// `async_wait` reported the A.I.R. copy `opid` of these images done: each must be
    /// complete on the target with the source's bytes, and the set's event there once.
    Replicated {
        opid: String,
        images: Vec<String>,
    },
    /// A read returned `STS_EOK` with bytes that are not the image's: always a failure.
    BadRead {
        lsu: String,
        image: String,
        offset: u64,
    },
}

/// The append-only record of one worker.
pub struct Recorder {
    file: std::fs::File,
}

impl Recorder {
    pub fn create(path: &Path) -> Result<Recorder> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(Recorder { file })
    }

    /// One line, written at once (a kill -9 after this call loses nothing of it).
    pub fn put(&mut self, e: &Event) -> Result<()> {
        let mut line = serde_json::to_string(e)?;
        line.push('\n');
        self.file.write_all(line.as_bytes()).context("writing the chaos record")
    }
}

/// Every event of a record file, in order (a torn last line from a kill is dropped).
pub fn read(path: &Path) -> Result<Vec<Event>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
}
