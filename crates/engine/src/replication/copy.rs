//! Copying a job's images to the target, one at a time through the verified copy, and
//! appending the set's event once when all are committed. Runs on a worker thread for the
//! process that claimed the job ([`super::run`]).

use std::time::Instant;

use tracing::{info, warn};

use super::events::{self, Event, EventImage};
use super::job::{self, Job, State};
use super::pool::Local;
use super::run::still_mine;
use super::{OpId, Phase, Status};
use crate::error::{Error, ErrorKind, Result};
use crate::image;
use crate::manifest::{ImageDef, State as ImageState};
use crate::server::Server;

/// Copy the images not yet on the target, then publish the set's event once.
pub(super) fn copy_set(
    source: &Server,
    target: &Server,
    op: &OpId,
    mut j: Job,
    session: &str,
    local: &Local,
) -> Result<Status> {
    let sstore = source.store_of(&op.lsu)?;
    let tstore = target.store_of(&j.target_lsu)?;
    let tlsu = j.target_lsu.clone();
    let heartbeat = source.liveness().heartbeat;
    let mut beat = Instant::now();
    while j.copied < j.images.len() {
        still_mine(&j, session, local)?;
        let i = j.copied;
        let def = j.images[i].clone();
        let on_target = match image::load(tstore.as_ref(), &tlsu, &def) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        match on_target {
            // Committed (after its verification) by a copier that died before recording it.
            Some(m) if m.state == ImageState::Complete && m.size == j.sizes[i] => {}
            Some(m) if m.state == ImageState::Complete => {
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    format!(
                        "another image '{}' ({} bytes) is already in target LSU '{tlsu}'",
                        def.basename, m.size
                    ),
                ))
            }
            other => {
                if other.is_some() {
                    // The pending remains of a copier that died mid-image: start the image over.
                    warn!(server = %target.name(), lsu = %tlsu, image = %def.basename, "replication {op}: removing the partial copy a dead copier left");
                    image::delete(tstore.as_ref(), &tlsu, &def)?;
                }
                let base = j.bytes_copied();
                image::replicate((&sstore, &op.lsu, &def), (&tstore, &tlsu), &mut |n| {
                    local.progress(base + n);
                    if local.cancelled() {
                        return Err(Error::new(ErrorKind::Cancelled, format!("replication {op} cancelled")));
                    }
                    if local.paused() {
                        return Err(Error::new(
                            ErrorKind::Again,
                            format!("replication {op} paused: terminating"),
                        ));
                    }
                    if beat.elapsed() >= heartbeat {
                        beat = Instant::now();
                        let now = job::update(sstore.as_ref(), &op.lsu, &op.job, |_| Ok(true))?;
                        still_mine(&now, session, local)?;
                    }
                    Ok(())
                })?;
            }
        }
        j = job::update(sstore.as_ref(), &op.lsu, &op.job, |j| {
            still_mine(j, session, local)?;
            j.copied = i + 1;
            Ok(true)
        })?;
        target.changed(&tlsu);
        local.set(Status { phase: Phase::Running, ..Status::of(&j) });
        info!(server = %source.name(), lsu = %op.lsu, image = %def.basename, "replication {op}: image {} of {} committed on {}/{tlsu}", i + 1, j.images.len(), target.name());
    }
    // The event, exactly once: numbers above `after` are searched for this job's event before
    // another is appended (a copier may have died between appending and recording it).
    let after = match j.state {
        State::Publishing { after } => after,
        _ => {
            let a = events::last_seq(tstore.as_ref(), &tlsu)?;
            j = job::update(sstore.as_ref(), &op.lsu, &op.job, |j| {
                still_mine(j, session, local)?;
                j.state = State::Publishing { after: a };
                Ok(true)
            })?;
            a
        }
    };
    let key = op.to_string();
    let seq = match events::find(tstore.as_ref(), &tlsu, after, &key)? {
        Some(seq) => seq,
        None => {
            let ev = Event::img_rep(
                &key,
                (target.name(), &tlsu),
                (source.name(), &op.lsu),
                payload(target, &tlsu, &j.images)?,
            );
            events::append(tstore.as_ref(), &tlsu, ev)?
        }
    };
    let j = job::update(sstore.as_ref(), &op.lsu, &op.job, |j| {
        j.state = State::Done { seq };
        j.runner = None;
        Ok(true)
    })?;
    info!(server = %source.name(), lsu = %op.lsu, "replication {op} done: {} image(s) on {}/{tlsu}, event {seq}", j.images.len(), target.name());
    Ok(Status::of(&j))
}

/// The event's payload: the image infos of the set's `IM` image(s) (all images when the set
/// has none), as the target stores them.
fn payload(target: &Server, lsu: &str, images: &[ImageDef]) -> Result<Vec<EventImage>> {
    let im: Vec<&ImageDef> = images.iter().filter(|d| d.basename.ends_with("_IM")).collect();
    let chosen = if im.is_empty() { images.iter().collect() } else { im };
    chosen.into_iter().map(|d| Ok(EventImage::from_info(&target.image_info(lsu, d)?))).collect()
}
