//! The A.I.R. exports (Auto Image Replication): replication properties of an LSU, the
//! asynchronous copy of an image set to the configured target server with its wait and cancel,
//! and the event channel through which the target's media servers learn of replicated sets.
//! The public facts name the calls ([S]); their signatures are the project's ([project]).

use std::ffi::{c_char, c_int};
use std::sync::Arc;
use std::time::Duration;

use ost_abi::*;
use tracing::info;
use vast_ost_engine::replication::{self, Channel, OpId, Phase, Status};
use vast_ost_engine::{Error, ErrorKind, Result, Server};

use crate::boundary::{ffi, Ctx};
use crate::convert::*;
use crate::handles::{self, lock, Object};
use crate::{engine, lsu_arg};

/// The operation id argument, and the open server of this process it names.
///
/// # Safety
/// `opid` is NULL or points to an `sts_opid_t` valid for reads during the call.
unsafe fn opid_arg(opid: *const sts_opid_t, ctx: &mut Ctx) -> Result<(OpId, Arc<Server>)> {
    // SAFETY: forwarded to the caller.
    let o = unsafe { arg_ref(opid, "operation id") }?;
    let op = OpId::parse(&array_str(&o.op_id, "operation id")?)?;
    ctx.set(&op.server, &op.lsu, "");
    let server = handles::server_named(&op.server).ok_or_else(|| {
        Error::new(
            ErrorKind::State,
            format!(
                "operation {op}: open its source server '{}' in this process first (stspi_open_server)",
                op.server
            ),
        )
    })?;
    Ok((op, server))
}

fn put_status(out: Option<&mut sts_async_status_t>, st: &Status) {
    let Some(out) = out else { return };
    out.as_state = match st.phase {
        Phase::Running => STS_ASYNC_RUNNING,
        Phase::Done => STS_ASYNC_DONE,
        Phase::Failed => STS_ASYNC_FAILED,
        Phase::Cancelled => STS_ASYNC_CANCELLED,
    };
    out.as_status = st.error.as_ref().map_or(STS_EOK, |(code, _)| *code);
    out.as_images_done = st.images_done;
    out.as_images_total = st.images_total;
    out.as_bytes_done = st.bytes_done;
    out.as_bytes_total = st.bytes_total;
    out.as_event_seqno = st.seq;
}

/// The status a wait or cancel returns for `st`.
fn outcome(op: &OpId, st: &Status) -> Result<()> {
    match (st.phase, &st.error) {
        (Phase::Done, _) => Ok(()),
        (Phase::Running, _) => Err(Error::new(
            ErrorKind::Again,
            format!("replication {op} is still running ({} of {} images)", st.images_done, st.images_total),
        )),
        (Phase::Cancelled, _) => {
            Err(Error::new(ErrorKind::Cancelled, format!("replication {op} was cancelled")))
        }
        (Phase::Failed, Some((code, msg))) => Err(Error::new(ErrorKind::Recorded(*code), msg.clone())),
        (Phase::Failed, None) => Err(Error::new(ErrorKind::Internal, format!("replication {op} failed"))),
    }
}

fn put_rep(dst: &mut [sts_lsu_rep_t; STS_MAX_REP], src: &[(String, String)], what: &str) -> Result<u32> {
    if src.len() > STS_MAX_REP {
        return Err(Error::new(
            ErrorKind::TooLong,
            format!("{} replication {what}, at most {STS_MAX_REP} fit", src.len()),
        ));
    }
    for (d, (server, lsu)) in dst.iter_mut().zip(src) {
        put_str(&mut d.lr_server, server, "replication server", true)?;
        put_str(&mut d.lr_lsu.sln_name, lsu, "replication LSU", true)?;
    }
    Ok(src.len() as u32)
}

/// Replication properties of `lsu`: the server/LSU pairs its images are replicated to
/// (`[[replication]]` entries with it as source), those replicating to it, and the
/// `STS_LSUF_REP_*` flags (also in `stspi_get_lsu_prop_byname`'s `lsu_flags`).
///
/// Returns `STS_EOK`, `STS_EINVAL`, `STS_EHANDLE`, `STS_ENOENT` (no such LSU), `STS_E2BIG`
/// (more than `STS_MAX_REP` partners), `STS_ECONFIG`.
#[no_mangle]
pub unsafe extern "C" fn stspi_get_lsu_rep_prop(
    lsu: *const sts_lsu_t,
    info: *mut sts_lsu_rep_info_t,
) -> c_int {
    ffi!("stspi_get_lsu_rep_prop", |ctx| {
        // SAFETY: `info` is NULL or valid for writes (caller contract, crate docs).
        let out = unsafe { arg_out(info, "info") }?;
        // SAFETY: `lsu` is NULL or an `sts_lsu_t` valid for reads (caller contract, crate docs).
        let (s, name) = unsafe { lsu_arg(lsu, "LSU", ctx) }?;
        s.store_of(&name)?;
        let r = replication::rep_info(&*engine()?.config()?, s.name(), &name);
        out.lri_flags = r.flags;
        out.lri_ntargets = put_rep(&mut out.lri_targets, &r.targets, "targets")?;
        out.lri_nsources = put_rep(&mut out.lri_sources, &r.sources, "sources")?;
        Ok(())
    })
}

/// Replicate the image set `images[0..nimages]` (a backup's HDR, F1..Fn, TIR, IM: complete
/// images of `from_lsu`) to the target of the LSU's `[[replication]]` entry, in the
/// background; `*opid` receives the operation id at once. `to_server` and `to_lsu` may be NULL
/// (the only configured target) or name one of several. `flags` must be 0.
///
/// The target's images stay pending until each is copied, read back and verified, and the
/// set's `STS_EVT_IMG_REP` event is appended to the target LSU's journal once all are
/// committed. Asking again for the same set and target returns the same id (a failed or
/// cancelled copy starts again, a finished one stays finished). The copy's record is on the
/// source storage: if the copying process dies, `stspi_async_wait` (or this call) in any
/// process that opened the source server resumes it at the first image not committed.
///
/// Returns `STS_EOK`, `STS_EINVAL` (NULL, empty set, an image twice, unknown flags, several
/// targets and none named), `STS_EHANDLE`, `STS_ENOENT` (no such LSU or image), `STS_ESTATE`
/// (an image is not complete), `STS_ENOTSUP` (no `[[replication]]` for the LSU and target),
/// `STS_EEXIST` (the id names another set), `STS_ESYSCALL`.
#[no_mangle]
pub unsafe extern "C" fn stspi_async_copy_image(
    from_lsu: *const sts_lsu_t,
    images: *const sts_image_def_t,
    nimages: sts_uint32_t,
    to_server: *const c_char,
    to_lsu: *const sts_lsu_name_t,
    flags: sts_uint32_t,
    opid: *mut sts_opid_t,
) -> c_int {
    ffi!("stspi_async_copy_image", |ctx| {
        if flags != 0 {
            return Err(Error::invalid(format!("async copy flags {flags:#x} are unknown")));
        }
        // SAFETY: `opid` is NULL or valid for writes (caller contract, crate docs).
        let out = unsafe { arg_out(opid, "operation id") }?;
        // SAFETY: `from_lsu` is NULL or an `sts_lsu_t` valid for reads (caller contract, crate docs).
        let (s, lsu) = unsafe { lsu_arg(from_lsu, "source LSU", ctx) }?;
        if images.is_null() || nimages == 0 {
            return Err(Error::invalid("async_copy_image: no images (NULL or a count of 0)"));
        }
        // SAFETY: `images` is not NULL and points to `nimages` image definitions valid for reads
        // (caller contract, crate docs: a buffer is valid for its length).
        let defs = unsafe { std::slice::from_raw_parts(images, nimages as usize) };
        let defs = defs.iter().map(image_def).collect::<Result<Vec<_>>>()?;
        ctx.image = defs[0].basename.clone();
        // SAFETY: `to_server` is NULL or a NUL-terminated string (caller contract, crate docs).
        let to_server = unsafe { opt_str(to_server, "target server") }?;
        // SAFETY: `to_lsu` is NULL or valid for reads (caller contract, crate docs).
        let to_lsu = match unsafe { opt_ref(to_lsu) } {
            Some(l) => Some(array_str(&l.sln_name, "target LSU")?),
            None => None,
        };
        let op = replication::start(&engine()?, &s, &lsu, &defs, (to_server, to_lsu.as_deref()))?;
        put_str(&mut out.op_id, &op.to_string(), "operation id", true)
    })
}

/// Progress and result of operation `opid`, waiting up to `timeout_ms` milliseconds for it to
/// end (0: just look). `status`, if not NULL, receives the state, images and bytes copied, and
/// once done the event's sequence number. The source server of the operation must be open in
/// this process; if the process copying it died, the copy is resumed here.
///
/// Returns `STS_EOK` (done: every image committed on the target, the event appended),
/// `STS_EAGAIN` (still running: wait again), `STS_ECANCELED`, the status the copy failed with,
/// `STS_EINVAL` (NULL or not an id of this plug-in), `STS_ESTATE` (its source server is not
/// open here), `STS_ENOENT` (no such operation).
#[no_mangle]
pub unsafe extern "C" fn stspi_async_wait(
    opid: *const sts_opid_t,
    timeout_ms: sts_uint32_t,
    status: *mut sts_async_status_t,
) -> c_int {
    ffi!("stspi_async_wait", |ctx| {
        // SAFETY: `opid` is NULL or valid for reads (caller contract, crate docs).
        let (op, s) = unsafe { opid_arg(opid, ctx) }?;
        let st = replication::wait(&engine()?, &s, &op, Duration::from_millis(timeout_ms.into()))?;
        // SAFETY: `status` is NULL or valid for writes (caller contract, crate docs).
        put_status(unsafe { opt_out(status) }, &st);
        outcome(&op, &st)
    })
}

/// Cancel operation `opid`: stop the copy and delete every image of the set from the target
/// (pending or committed), so nothing of it is left there. A copy this process runs has
/// stopped and been cleaned up when this returns; one that another live process runs is asked
/// to stop (`STS_EAGAIN`: it stops at its next image; `stspi_async_wait` then reports
/// `STS_ECANCELED`).
///
/// Returns `STS_EOK`, `STS_EAGAIN`, `STS_ESTATE` (already finished, or the source server is not
/// open here), `STS_EINVAL`, `STS_ENOENT`, `STS_ESYSCALL`.
#[no_mangle]
pub unsafe extern "C" fn stspi_async_cancel(opid: *const sts_opid_t) -> c_int {
    ffi!("stspi_async_cancel", |ctx| {
        // SAFETY: `opid` is NULL or valid for reads (caller contract, crate docs).
        let (op, s) = unsafe { opid_arg(opid, ctx) }?;
        let st = replication::cancel(&engine()?, &s, &op)?;
        info!(server = %op.server, lsu = %op.lsu, "replication {op} cancelled");
        match st.phase {
            Phase::Cancelled => Ok(()),
            _ => outcome(&op, &st),
        }
    })
}

/// Open the event journal of `lsu` (a replication target) from sequence number `start_seqno`
/// (0 or 1: from the first event). Sequence numbers are kept on the target storage: the same
/// for every media server, and a consumer that restarts goes on from the number it had.
///
/// Returns `STS_EOK`, `STS_EINVAL`, `STS_EHANDLE`, `STS_ENOENT` (no such LSU).
#[no_mangle]
pub unsafe extern "C" fn stspi_open_evchannel(
    lsu: *const sts_lsu_t,
    start_seqno: sts_uint64_t,
    evc: *mut stsp_evchannel_handle_t,
) -> c_int {
    ffi!("stspi_open_evchannel", |ctx| {
        // SAFETY: `evc` is NULL or valid for writes (caller contract, crate docs).
        let out = unsafe { arg_out(evc, "event channel") }?;
        // SAFETY: `lsu` is NULL or an `sts_lsu_t` valid for reads (caller contract, crate docs).
        let (s, name) = unsafe { lsu_arg(lsu, "LSU", ctx) }?;
        let ch = Channel::open(&s, &name, start_seqno)?;
        *out = handles::insert(Object::EvChannel(Arc::new(std::sync::Mutex::new(ch)))) as _;
        Ok(())
    })
}

/// The next event of the channel into `*event`. At the end, `STS_ENO_MORE_ENTRIES`; the channel
/// stays open, and a later call returns events appended since.
///
/// Returns `STS_EOK`, `STS_ENO_MORE_ENTRIES`, `STS_EINVAL`, `STS_EHANDLE`, `STS_ECORRUPT`,
/// `STS_ESYSCALL`.
#[no_mangle]
pub unsafe extern "C" fn stspi_get_event(evc: stsp_evchannel_handle_t, event: *mut sts_event_t) -> c_int {
    ffi!("stspi_get_event", |_ctx| {
        // SAFETY: `event` is NULL or valid for writes (caller contract, crate docs).
        let out = unsafe { arg_out(event, "event") }?;
        let ch = handles::evchannel(evc as usize)?;
        let e = lock(&ch).next_event()?;
        out.ev_seqno = e.seq;
        out.ev_type = STS_EVT_IMG_REP;
        out.ev_flags = 0;
        out.ev_time = e.time;
        put_str(&mut out.ev_server, &e.server, "event server", true)?;
        put_str(&mut out.ev_lsu.sln_name, &e.lsu, "event LSU", true)?;
        put_str(&mut out.ev_source_server, &e.source_server, "event source server", true)?;
        put_str(&mut out.ev_source_lsu.sln_name, &e.source_lsu, "event source LSU", true)?;
        put_str(&mut out.ev_opid.op_id, &e.opid, "event operation id", true)?;
        out.ev_payload_count = e.images.len() as u32;
        Ok(())
    })
}

/// The payload of event `seqno` of the channel: its `sts_image_info_t` records (for
/// `STS_EVT_IMG_REP` the replicated set's `IM` image(s), as stored on the target) into
/// `infos[0..max]`; `*count` receives how many the event has. `infos` NULL with `max` 0 asks
/// for the count only.
///
/// Returns `STS_EOK`, `STS_E2BIG` (`max` is less than the count; `*count` is set, nothing else
/// written), `STS_EINVAL`, `STS_EHANDLE`, `STS_ENOENT` (no such event), `STS_ESYSCALL`.
#[no_mangle]
pub unsafe extern "C" fn stspi_get_event_payload(
    evc: stsp_evchannel_handle_t,
    seqno: sts_uint64_t,
    infos: *mut sts_image_info_t,
    max: sts_uint32_t,
    count: *mut sts_uint32_t,
) -> c_int {
    ffi!("stspi_get_event_payload", |_ctx| {
        // SAFETY: `count` is NULL or valid for writes (caller contract, crate docs).
        let n_out = unsafe { arg_out(count, "count") }?;
        let ch = handles::evchannel(evc as usize)?;
        let e = lock(&ch).event(seqno)?;
        *n_out = e.images.len() as u32;
        if infos.is_null() && max == 0 {
            // A query of the count alone.
            return Ok(());
        }
        if e.images.len() > max as usize {
            return Err(Error::new(
                ErrorKind::TooLong,
                format!("event {seqno} holds {} image infos, room for {max}", e.images.len()),
            ));
        }
        if e.images.is_empty() {
            return Ok(());
        }
        if infos.is_null() {
            return Err(Error::invalid("payload buffer is NULL"));
        }
        // SAFETY: `infos` is not NULL and valid for writes of `max` records (caller contract,
        // crate docs: a buffer is valid for its length); only the first `len <= max` are used.
        let out = unsafe { std::slice::from_raw_parts_mut(infos, e.images.len()) };
        for (o, i) in out.iter_mut().zip(&e.images) {
            put_image_info(o, &i.to_info(&e.server, &e.lsu))?;
        }
        Ok(())
    })
}

/// Close an event channel.
///
/// Returns `STS_EOK`, `STS_EHANDLE`.
#[no_mangle]
pub unsafe extern "C" fn stspi_close_evchannel(evc: stsp_evchannel_handle_t) -> c_int {
    ffi!("stspi_close_evchannel", |ctx| {
        let ch = handles::take_evchannel(evc as usize)?;
        ctx.lsu = lock(&ch).lsu().to_string();
        Ok(())
    })
}
