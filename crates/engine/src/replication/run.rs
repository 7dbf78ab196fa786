//! Starting, running, waiting for and cancelling replication jobs. The source server is one
//! the caller opened (with NetBackup's credentials); the target is opened from the
//! `[[replication]]` entry (its own credentials), by whichever process runs the job.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use super::job::{self, Job, Runner, State};
use super::pool::{self, Local};
use super::{job_id, OpId, Phase, Status};
use crate::config::ReplicationConfig;
use crate::credentials::{Credentials, Secret};
use crate::error::{Error, ErrorKind, Result};
use crate::image;
use crate::manifest::{ImageDef, State as ImageState};
use crate::names;
use crate::server::{Engine, Server};

/// How long a cancel waits for the copier of this process to stop and clean up.
const CANCEL_WAIT: Duration = Duration::from_secs(300);

/// Start replicating `images` (a backup's HDR, F1..Fn, TIR, IM) of `lsu` on `source` to the
/// configured target (`to_server`/`to_lsu` choose among several; `None`: the only one).
/// Returns the operation id at once; the copy runs in the background. Asking again for the
/// same set returns the same id: a running copy goes on, a failed or cancelled one starts
/// again (from the first image not on the target), a finished one stays finished.
pub fn start(
    engine: &Arc<Engine>,
    source: &Arc<Server>,
    lsu: &str,
    images: &[ImageDef],
    to: (Option<&str>, Option<&str>),
) -> Result<OpId> {
    if images.is_empty() {
        return Err(Error::invalid("async_copy_image: the image set is empty"));
    }
    let cfg = engine.config()?;
    let pairs = cfg.replication_targets(source.name(), lsu);
    let chosen: Vec<&ReplicationConfig> = pairs
        .into_iter()
        .filter(|r| to.0.is_none_or(|t| r.target().eq_ignore_ascii_case(&full(t))))
        .filter(|r| to.1.is_none_or(|l| r.target_lsu == l))
        .collect();
    let pair = match chosen.as_slice() {
        [one] => *one,
        [] => {
            return Err(Error::new(
                ErrorKind::NotSupported,
                format!("LSU '{lsu}' of '{}' has no [[replication]] to that target", source.name()),
            ))
        }
        _ => return Err(Error::invalid(format!("LSU '{lsu}' replicates to several targets: name one"))),
    };
    let store = source.store_of(lsu)?;
    let (mut defs, mut sizes) = (Vec::new(), Vec::new());
    for d in images {
        names::validate("image", &d.basename)?;
        if defs.iter().any(|x: &ImageDef| x.basename == d.basename) {
            return Err(Error::invalid(format!("image '{}' is twice in the set", d.basename)));
        }
        let m = image::load(store.as_ref(), lsu, d)?;
        if m.state != ImageState::Complete {
            return Err(Error::state(format!("image '{}' in LSU '{lsu}' is not complete", d.basename)));
        }
        defs.push(m.def.clone());
        sizes.push(m.size);
    }
    let id = job_id(&pair.target(), &pair.target_lsu, &defs);
    let op = OpId { server: source.name().to_string(), lsu: lsu.to_string(), job: id.clone() };
    let j = Job::new(&id, (source.name(), lsu), (&pair.target(), &pair.target_lsu), defs, sizes);
    match job::create(store.as_ref(), lsu, &j) {
        Ok(()) => {
            info!(server = %source.name(), lsu, "replication {op} of {} image(s) to {}/{} started", images.len(), pair.target(), pair.target_lsu)
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            let (old, _) = job::load(store.as_ref(), lsu, &id)?.ok_or_else(|| e.clone())?;
            if old.images.iter().map(|d| &d.basename).ne(j.images.iter().map(|d| &d.basename)) {
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    format!("replication job {id} holds another image set"),
                ));
            }
        }
        Err(e) => return Err(e),
    }
    schedule(engine, source, &op, true)?;
    Ok(op)
}

/// `VastData:<cluster>` for a name with or without the prefix.
fn full(name: &str) -> String {
    let c = name.strip_prefix(names::PREFIX).unwrap_or(name);
    format!("{}{c}", names::PREFIX)
}

/// Run job `op` here unless it is finished or a live process runs it. `restart`: a failed or
/// cancelled job runs again too.
fn schedule(engine: &Arc<Engine>, source: &Arc<Server>, op: &OpId, restart: bool) -> Result<()> {
    let key = op.to_string();
    if pool::running(&key).is_some() {
        return Ok(());
    }
    let store = source.store_of(&op.lsu)?;
    let (j, _) = job::load(store.as_ref(), &op.lsu, &op.job)?.ok_or_else(|| not_found(op))?;
    let runnable = match j.state {
        State::Done { .. } => false,
        State::Failed { .. } | State::Cancelled => restart,
        State::Running | State::Publishing { .. } | State::Cancelling => {
            j.runner_gone(source.liveness().silence)
        }
    };
    if !runnable {
        return Ok(());
    }
    let mut st = Status::of(&j);
    st.phase = Phase::Running;
    let Some(local) = pool::register(&key, st) else { return Ok(()) };
    let (engine, source, op) = (engine.clone(), source.clone(), op.clone());
    pool::submit(Box::new(move || {
        let st = match run(&engine, &source, &op, &local) {
            Ok(st) => st,
            Err(e) if e.kind() == ErrorKind::Again => {
                // Another process claimed it first, or took it over: its record tells how it
                // goes.
                warn!(server = %source.name(), lsu = %op.lsu, "replication {op}: {e}");
                pool::forget(&key);
                return;
            }
            Err(e) => {
                error!(server = %source.name(), lsu = %op.lsu, "replication {op} failed: {e}");
                let status = e.kind().status();
                let failed = State::Failed { status, message: e.message().to_string() };
                let recorded = source.store_of(&op.lsu).and_then(|s| {
                    job::update(s.as_ref(), &op.lsu, &op.job, |j| {
                        j.state = failed.clone();
                        j.runner = None;
                        Ok(true)
                    })
                });
                match recorded {
                    Ok(j) => Status::of(&j),
                    Err(_) => Status {
                        phase: Phase::Failed,
                        error: Some((status, e.message().to_string())),
                        ..local.status()
                    },
                }
            }
        };
        local.set(st);
    }));
    Ok(())
}

fn not_found(op: &OpId) -> Error {
    Error::not_found(format!("no replication {op} (its job record is not in LSU '{}')", op.lsu))
}

/// The status of `op`, waiting up to `timeout` for it to end. A job whose copier died is
/// resumed here.
pub fn wait(engine: &Arc<Engine>, source: &Arc<Server>, op: &OpId, timeout: Duration) -> Result<Status> {
    let deadline = Instant::now() + timeout;
    let key = op.to_string();
    loop {
        // While this process runs the job its status is the freshest; once the job ended
        // (here or anywhere) the record is what counts.
        if let Some(local) = pool::running(&key) {
            let st = local.wait_until(deadline);
            if !local.detached() && (st.phase != Phase::Running || Instant::now() >= deadline) {
                return Ok(st);
            }
        }
        let store = source.store_of(&op.lsu)?;
        let (j, _) = job::load(store.as_ref(), &op.lsu, &op.job)?.ok_or_else(|| not_found(op))?;
        let st = Status::of(&j);
        if st.phase == Phase::Running
            && j.runner_gone(source.liveness().silence)
            && pool::running(&key).is_none()
        {
            warn!(server = %source.name(), lsu = %op.lsu, "replication {op}: its copier is gone; resuming it here at image {} of {}", j.copied + 1, j.images.len());
            schedule(engine, source, op, false)?;
            if pool::running(&key).is_some() {
                continue;
            }
        }
        let now = Instant::now();
        if st.phase != Phase::Running || now >= deadline {
            return Ok(st);
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(200)));
    }
}

/// Stop `op` and delete what it created on the target. A copy this process runs is stopped
/// and cleaned up before this returns; one another live process runs is asked to stop
/// (`Again`: it stops at its next image or heartbeat); one nobody runs is cleaned up here.
pub fn cancel(engine: &Arc<Engine>, source: &Arc<Server>, op: &OpId) -> Result<Status> {
    let key = op.to_string();
    if let Some(local) = pool::running(&key) {
        local.cancel.store(true, std::sync::atomic::Ordering::Release);
        let st = local.wait_until(Instant::now() + CANCEL_WAIT);
        return match st.phase {
            Phase::Running => {
                Err(Error::new(ErrorKind::Again, format!("replication {op} is still stopping")))
            }
            Phase::Done => Err(Error::state(format!(
                "replication {op} finished before it could stop: its images are on the target"
            ))),
            _ => Ok(st),
        };
    }
    let store = source.store_of(&op.lsu)?;
    let (j, _) = job::load(store.as_ref(), &op.lsu, &op.job)?.ok_or_else(|| not_found(op))?;
    match j.state {
        State::Done { .. } | State::Publishing { .. } => {
            return Err(Error::state(format!(
                "replication {op} has finished: its images are on the target (expire them there instead)"
            )))
        }
        State::Cancelled => return Ok(Status::of(&j)),
        _ if !j.runner_gone(source.liveness().silence) => {
            let who = j.runner.as_ref().map(|r| format!("{}:{}", r.host, r.pid)).unwrap_or_default();
            job::update(store.as_ref(), &op.lsu, &op.job, |j| {
                j.state = State::Cancelling;
                Ok(true)
            })?;
            return Err(Error::new(
                ErrorKind::Again,
                format!("replication {op}: cancel requested; its copier {who} stops at its next image"),
            ));
        }
        _ => {}
    }
    let session = crate::util::random_id();
    job::update(store.as_ref(), &op.lsu, &op.job, claim(&session, source.liveness().silence))?;
    let target = open_target(engine, &j)?;
    clean_target(&target, &j)?;
    mark_cancelled(source, op)
}

/// Record that `op` is cancelled and its images are gone from the target.
fn mark_cancelled(source: &Server, op: &OpId) -> Result<Status> {
    let store = source.store_of(&op.lsu)?;
    let j = job::update(store.as_ref(), &op.lsu, &op.job, |j| {
        j.state = State::Cancelled;
        j.copied = 0;
        j.runner = None;
        Ok(true)
    })?;
    info!(server = %source.name(), lsu = %op.lsu, "replication {op} cancelled; its images are gone from the target");
    Ok(Status::of(&j))
}

/// Take the job for this process (session `session`), unless a live process runs it (`Again`).
fn claim(session: &str, silence: Duration) -> impl FnMut(&mut Job) -> Result<bool> + '_ {
    move |j| {
        if !j.runner_gone(silence) && j.runner.as_ref().is_some_and(|r| r.session != session) {
            let r = j.runner.as_ref().expect("checked");
            return Err(Error::new(
                ErrorKind::Again,
                format!("replication {} runs in {}:{}", j.id, r.host, r.pid),
            ));
        }
        match j.state {
            State::Done { .. } => return Ok(false),
            State::Cancelled => {
                j.copied = 0;
                j.state = State::Running;
            }
            State::Failed { .. } => j.state = State::Running,
            _ => {}
        }
        j.runner = Some(Runner::me(session));
        Ok(true)
    }
}

/// Fail unless this session still runs the job, and stop when a cancel was asked for.
pub(super) fn still_mine(j: &Job, session: &str, local: &Local) -> Result<()> {
    if j.runner.as_ref().is_none_or(|r| r.session != session) {
        // `Again`, not a failure: the record is the other process's now, and must not be
        // marked failed from here.
        return Err(Error::new(
            ErrorKind::Again,
            format!("replication {} was taken over by another process", j.id),
        ));
    }
    if local.paused() {
        return Err(Error::new(
            ErrorKind::Again,
            format!("replication {} paused: the plug-in is terminating", j.id),
        ));
    }
    if local.cancelled() || j.state == State::Cancelling {
        return Err(Error::new(ErrorKind::Cancelled, format!("replication {} cancelled", j.id)));
    }
    Ok(())
}

fn open_target(engine: &Arc<Engine>, j: &Job) -> Result<Arc<Server>> {
    let cfg = engine.config()?;
    let r = cfg
        .replication_targets(&j.source_server, &j.source_lsu)
        .into_iter()
        .find(|r| r.target().eq_ignore_ascii_case(&j.target_server) && r.target_lsu == j.target_lsu)
        .ok_or_else(|| {
            Error::config(format!(
                "replication {} goes to {}/{}, which no [[replication]] of the config names any more",
                j.id, j.target_server, j.target_lsu
            ))
        })?;
    let creds = Credentials { user: r.target_user.clone(), password: Secret::new(r.target_password.clone()) };
    engine.open_server(&r.target(), &creds)
}

/// Delete every image of the set from the target, pending or not (what a cancel leaves).
fn clean_target(target: &Server, j: &Job) -> Result<()> {
    let store = target.store_of(&j.target_lsu)?;
    for d in &j.images {
        image::delete(store.as_ref(), &j.target_lsu, d)?;
    }
    target.changed(&j.target_lsu);
    Ok(())
}

/// Run job `op` to its end here.
fn run(engine: &Arc<Engine>, source: &Arc<Server>, op: &OpId, local: &Local) -> Result<Status> {
    let store = source.store_of(&op.lsu)?;
    let liveness = source.liveness();
    if local.paused() {
        return Err(Error::new(
            ErrorKind::Again,
            format!("replication {op} not started: the plug-in is terminating"),
        ));
    }
    let session = crate::util::random_id();
    let j = job::update(store.as_ref(), &op.lsu, &op.job, claim(&session, liveness.silence))?;
    if matches!(j.state, State::Done { .. }) {
        return Ok(Status::of(&j));
    }
    let mut st = Status::of(&j);
    st.phase = Phase::Running;
    local.set(st);
    let target = open_target(engine, &j)?;
    match super::copy::copy_set(source, &target, op, j, &session, local) {
        Err(e) if e.kind() == ErrorKind::Again && local.paused() => {
            // Resumable by anyone at once: no runner recorded (the image in flight is gone).
            job::update(store.as_ref(), &op.lsu, &op.job, |j| {
                let mine = j.runner.as_ref().is_some_and(|r| r.session == session);
                if mine {
                    j.runner = None;
                }
                Ok(mine)
            })?;
            Err(e)
        }
        Err(e) if e.kind() == ErrorKind::Cancelled => {
            clean_target(
                &target,
                &job::load(store.as_ref(), &op.lsu, &op.job)?.ok_or_else(|| not_found(op))?.0,
            )?;
            mark_cancelled(source, op)
        }
        other => other,
    }
}
