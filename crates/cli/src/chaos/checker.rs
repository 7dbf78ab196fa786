//! After an iteration, the chaos checker holds the storage to what the plug-in reported,
//! through a fresh session on the same `.so` (faults cleared):
//! - every image whose `close(complete)` returned `STS_EOK` and that no delete removed is
//!   listed complete with its size and restores byte-identical;
//! - no image whose write or close failed (or that was abandoned) is listed complete;
//! - no image deleted with `STS_EOK` is listed;
//! - no WORM-locked image was deleted, and each is still there;
//! - no read ever returned wrong bytes;
//! - after orphan cleanup, nothing is left that no image references (pieces, records, open
//!   multipart uploads).
//!
//! An image whose worker was killed between intent and answer (or whose delete failed) may be
//! either way, but never half: listed complete means whole.

use std::collections::BTreeMap;

use anyhow::Result;
use vast_ost_host::abi::STS_II_IMAGE_CREATED;

use super::record::Event;
use super::worker::expected;
use crate::session::Session;

/// What the records say of one image.
#[derive(Debug, Default, Clone)]
struct Fate {
    size: u64,
    complete: bool,
    failed: bool,
    /// A delete was asked for: without its `STS_EOK` (an error, or the worker killed), the
    /// image may be there or gone, but if there, it must be whole.
    deleting: bool,
    deleted: bool,
    locked: bool,
    /// Included from another image (synthetic full): its name and length.
    from: Option<(String, u64)>,
    /// Whose name's pattern the rest is (a copy's source), when not its own.
    pattern: Option<String>,
}

/// The fate of every image, from every worker's events (names are unique per worker).
fn fates(events: &[Vec<Event>]) -> (BTreeMap<(String, String), Fate>, Vec<String>) {
    let mut m: BTreeMap<(String, String), Fate> = BTreeMap::new();
    let mut bad = Vec::new();
    for ev in events.iter().flatten() {
        match ev {
            Event::Begin { lsu, image, size } => {
                m.entry((lsu.clone(), image.clone())).or_default().size = *size
            }
            Event::Complete { lsu, image, size, from, pattern } => {
                let f = m.entry((lsu.clone(), image.clone())).or_default();
                (f.complete, f.size, f.from, f.pattern) = (true, *size, from.clone(), pattern.clone());
            }
            Event::Failed { lsu, image, .. } => {
                m.entry((lsu.clone(), image.clone())).or_default().failed = true
            }
            Event::Deleting { lsu, image } => {
                m.entry((lsu.clone(), image.clone())).or_default().deleting = true
            }
            Event::Deleted { lsu, image } => {
                let f = m.entry((lsu.clone(), image.clone())).or_default();
                if f.locked {
                    bad.push(format!("WORM-locked image {lsu}/{image} was deleted with STS_EOK"));
                }
                f.deleted = true;
            }
            Event::Locked { lsu, image, .. } => {
                m.entry((lsu.clone(), image.clone())).or_default().locked = true
            }
            Event::Replicated { .. } => {}
            Event::BadRead { lsu, image, offset } => {
                bad.push(format!("a read of {lsu}/{image} at {offset} returned STS_EOK with wrong bytes"))
            }
        }
    }
    (m, bad)
}

/// Every broken promise found, in words (empty: the iteration passed). `target`: the A.I.R.
/// target's session and LSU.
pub fn check(s: &Session, target: (&Session, &str), events: &[Vec<Event>]) -> Result<Vec<String>> {
    let (m, mut bad) = fates(events);
    bad.extend(replicated(target, &m, events)?);
    let mut listed: BTreeMap<(String, String), (u64, bool)> = BTreeMap::new();
    for lsu in m.keys().map(|(l, _)| l.clone()).collect::<std::collections::BTreeSet<_>>() {
        for info in s.images(&lsu, "")? {
            let name = vast_ost_host::get_str(&info.imo_def.img_basename);
            listed.insert((lsu.clone(), name), (info.imo_size, info.imo_flags & STS_II_IMAGE_CREATED != 0));
        }
    }
    for ((lsu, image), f) in &m {
        let shown = listed.get(&(lsu.clone(), image.clone()));
        let is_complete = shown.is_some_and(|(_, c)| *c);
        if f.deleted {
            if shown.is_some() {
                bad.push(format!("{lsu}/{image} was deleted with STS_EOK but is still listed"));
            }
            continue;
        }
        if f.locked && shown.is_none() {
            bad.push(format!("WORM-locked image {lsu}/{image} is gone"));
            continue;
        }
        if f.complete {
            match shown {
                Some((size, true)) if *size == f.size => {
                    if let Some(why) = verify(s, lsu, image, f)? {
                        bad.push(why);
                    }
                }
                Some((size, c)) => bad.push(format!(
                    "{lsu}/{image} closed complete with {} bytes is listed {} with {size}",
                    f.size,
                    if *c { "complete" } else { "pending" }
                )),
                None if f.deleting => {}
                None => bad.push(format!("{lsu}/{image} closed complete is not listed")),
            }
        } else if f.failed && is_complete {
            bad.push(format!("{lsu}/{image}: its write or close failed, yet it is listed complete"));
        }
    }
    Ok(bad)
}

/// Every A.I.R. copy reported done: its images complete on the target with the source's
/// bytes, and its event in the target's journal exactly once (no copy's event twice).
fn replicated(
    (t, tlsu): (&Session, &str),
    m: &BTreeMap<(String, String), Fate>,
    events: &[Vec<Event>],
) -> Result<Vec<String>> {
    let mut bad = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let ch = t.p().open_evchannel(&t.lsu(tlsu)?, 0)?;
    loop {
        match t.p().get_event(ch) {
            Ok(e) => *seen.entry(vast_ost_host::get_str(&e.ev_opid.op_id)).or_default() += 1,
            Err(vast_ost_host::Status(vast_ost_host::abi::STS_ENO_MORE_ENTRIES)) => break,
            Err(e) => return Err(e.into()),
        }
    }
    t.p().close_evchannel(ch)?;
    for (opid, n) in &seen {
        if *n > 1 {
            bad.push(format!("A.I.R. copy {opid} has {n} events on the target"));
        }
    }
    for ev in events.iter().flatten() {
        let Event::Replicated { opid, images } = ev else { continue };
        if !seen.contains_key(opid) {
            bad.push(format!("A.I.R. copy {opid} reported done has no event on the target"));
        }
        for image in images {
            let Some(f) = m.values().zip(m.keys()).find(|(_, (_, i))| i == image).map(|(f, _)| f) else {
                continue;
            };
            if let Some(why) = verify(t, tlsu, image, f)? {
                bad.push(format!("replicated by {opid}: {why}"));
            }
        }
    }
    Ok(bad)
}

/// Read the whole image and compare; `Some(why)` on a difference or a failed read (faults
/// are cleared by now: an image reported complete must restore).
fn verify(s: &Session, lsu: &str, image: &str, f: &Fate) -> Result<Option<String>> {
    Ok(match compare(s, lsu, image, f) {
        Ok(why) => why,
        Err(e) => Some(format!("{lsu}/{image} closed complete does not restore: {e:#}")),
    })
}

fn compare(s: &Session, lsu: &str, image: &str, f: &Fate) -> Result<Option<String>> {
    let img = s.open_read(lsu, image)?;
    let (mut got, mut want) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let mut off = 0;
    while off < f.size {
        let n = img.read(&mut got, off)?;
        if n == 0 {
            return Ok(Some(format!("{lsu}/{image}: restore ends at {off} of {}", f.size)));
        }
        expected(f.pattern.as_deref().unwrap_or(image), f.from.as_ref(), off, &mut want[..n]);
        if let Some(i) = crate::pattern::first_difference(&got[..n], &want[..n]) {
            return Ok(Some(format!("{lsu}/{image}: restore differs at byte {}", off + i as u64)));
        }
        off += n as u64;
    }
    img.close(false)?;
    Ok(None)
}
