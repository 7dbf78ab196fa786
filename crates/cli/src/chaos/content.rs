//! What an image must hold, without holding it: a list of runs, each a range of a named
//! deterministic stream ([`Pattern::for_name`]). A backup writes its own stream; a synthetic
//! full and an extent copy take runs of their sources; a copy takes all of them. The checker
//! regenerates the expected bytes from the runs.

use serde::{Deserialize, Serialize};

use crate::pattern::Pattern;

/// `len` bytes at image offset `off`, equal to stream `stream` from offset `src`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub off: u64,
    pub len: u64,
    pub stream: String,
    pub src: u64,
}

/// An image's expected bytes: runs in offset order, not overlapping.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Content {
    pub runs: Vec<Run>,
}

impl Content {
    /// One past the last byte.
    pub fn size(&self) -> u64 {
        self.runs.iter().map(|r| r.off + r.len).max().unwrap_or(0)
    }

    /// Place `run`, replacing whatever it overlaps (a rewrite after a checkpoint restart).
    pub fn put(&mut self, run: Run) {
        let (start, end) = (run.off, run.off + run.len);
        let mut out = Vec::with_capacity(self.runs.len() + 2);
        for r in self.runs.drain(..) {
            let (rs, re) = (r.off, r.off + r.len);
            if re <= start || rs >= end {
                out.push(r);
                continue;
            }
            if rs < start {
                out.push(Run { len: start - rs, ..r.clone() });
            }
            if re > end {
                out.push(Run { off: end, len: re - end, src: r.src + (end - rs), ..r });
            }
        }
        out.push(run);
        out.sort_by_key(|r| r.off);
        self.runs = out;
    }

    /// The runs of `[from, from + len)`, placed at `to` (an include or extent copy).
    pub fn slice(&self, from: u64, len: u64, to: u64) -> Vec<Run> {
        let end = from + len;
        self.runs
            .iter()
            .filter(|r| r.off < end && r.off + r.len > from)
            .map(|r| {
                let s = r.off.max(from);
                let e = (r.off + r.len).min(end);
                Run { off: to + (s - from), len: e - s, stream: r.stream.clone(), src: r.src + (s - r.off) }
            })
            .collect()
    }

    /// The expected bytes at `off..off + buf.len()` (zeros where no run is: never, for images
    /// written from offset 0 without holes).
    pub fn fill(&self, off: u64, buf: &mut [u8]) {
        buf.fill(0);
        let end = off + buf.len() as u64;
        for r in self.runs.iter().filter(|r| r.off < end && r.off + r.len > off) {
            let s = r.off.max(off);
            let e = (r.off + r.len).min(end);
            let dst = &mut buf[(s - off) as usize..(e - off) as usize];
            Pattern::for_name(&r.stream).fill(r.src + (s - r.off), dst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(off: u64, len: u64, stream: &str, src: u64) -> Run {
        Run { off, len, stream: stream.into(), src }
    }

    #[test]
    fn put_splits_what_it_overlaps_and_slices_follow_the_sources() {
        let mut c = Content::default();
        c.put(run(0, 100, "a", 0));
        c.put(run(40, 20, "b", 0));
        assert_eq!(c.runs, vec![run(0, 40, "a", 0), run(40, 20, "b", 0), run(60, 40, "a", 60)]);
        assert_eq!(c.size(), 100);
        assert_eq!(
            c.slice(30, 40, 1000),
            vec![run(1000, 10, "a", 30), run(1010, 20, "b", 0), run(1030, 10, "a", 60)]
        );
        let (mut got, mut want) = (vec![0u8; 100], vec![0u8; 40]);
        c.fill(0, &mut got);
        Pattern::for_name("a").fill(0, &mut want);
        assert_eq!(got[..40], want[..]);
        Pattern::for_name("a").fill(60, &mut want);
        assert_eq!(got[60..], want[..]);
    }
}
