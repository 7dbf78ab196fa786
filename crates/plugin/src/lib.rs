//! `libstspiVastDataMT.so`: the C interface NetBackup loads. Each export checks its arguments,
//! resolves handles, converts C types and calls the engine inside one panic boundary
//! ([`boundary::run`], through the `ffi!` macro). No storage logic lives here.
//!
//! Threading: every function may be called from any thread. Different handles are used in
//! parallel; calls on one image handle are serialized. Return values are `STS_EOK` (0) or an
//! `STS_E*` status (2060000 + n); every failure writes one line to the plug-in log.
//!
//! # Safety
//!
//! Every export is an `unsafe extern "C" fn`, and this is the contract its caller keeps (the
//! C host's side of `include/stspi_vastdata.h`), for the duration of the call:
//!
//! - a pointer argument is NULL (an error, or "absent" where the export's documentation says
//!   it may be NULL) or points to a properly aligned value of its type: readable for `const`
//!   pointers, readable and writable for the others;
//! - a `char *` argument is NULL or a NUL-terminated string;
//! - a buffer is NULL or valid for `len` bytes (read for writes, written for reads);
//! - what one pointer argument points to does not overlap what another points to;
//! - nothing else (another thread of the host) writes what the call reads, or touches what
//!   the call writes, until it returns.
//!
//! Handles are not pointers: they are looked up, never dereferenced, so any value is safe.
//! Every pointer is read through the helpers of `convert`, each an `unsafe fn` stating what it
//! needs; the exports call them in small `unsafe` blocks under this contract. (The per-export
//! documentation, which cbindgen copies into the header, does not repeat it.)
#![allow(clippy::missing_safety_doc, non_snake_case)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod air;
mod boundary;
mod convert;
#[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
mod exe;
mod fork;
mod handles;
mod optimized;
mod worm;

use std::ffi::{c_char, c_int, c_void};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use boundary::ffi;
use convert::*;
use handles::{lock, Object};
use ost_abi::*;
use tracing::{info, warn};
use vast_ost_engine::{Engine, Error, ErrorKind, Result, Server};

/// The initialised engine and how many `stspi_init` calls it answers.
static ENGINE: RwLock<Option<(Arc<Engine>, usize)>> = RwLock::new(None);

pub(crate) fn engine() -> Result<Arc<Engine>> {
    let guard = ENGINE.read().unwrap_or_else(|p| p.into_inner());
    match guard.as_ref() {
        Some((e, _)) => Ok(e.clone()),
        None => Err(Error::new(ErrorKind::NotInitialized, "stspi_init has not been called")),
    }
}

/// The config file: `$VAST_OST_CONFIG`, else `vast-ost.toml` beside this library (in
/// `/usr/openv/lib/ost-plugins/` once installed). The CLI finds it the same way.
fn config_path() -> PathBuf {
    // SAFETY: Dl_info holds raw pointers and integers: all-zero is a valid value.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    let here = stspi_init as *const c_void;
    // SAFETY: `here` is an address inside this library and `info` a live local to fill.
    let found = unsafe { libc::dladdr(here, &mut info) } != 0;
    let dir = if found && !info.dli_fname.is_null() {
        // SAFETY: dladdr succeeded, so `dli_fname` is the NUL-terminated path of the loaded
        // library, valid while it stays loaded (it is: this code runs from it).
        let name = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) };
        let lib = PathBuf::from(name.to_string_lossy().into_owned());
        lib.parent().map(|d| d.to_path_buf())
    } else {
        None
    };
    vast_ost_engine::config::config_path(dir.as_deref())
}

fn fill_plugin_info(info: &mut sts_plugin_info_t) -> Result<()> {
    put_str(&mut info.pi_name, "libstspiVastDataMT", "plug-in name", true)?;
    put_str(&mut info.pi_prefix, vast_ost_engine::names::PREFIX, "prefix", true)?;
    use vast_ost_engine::version;
    put_str(&mut info.pi_label, version::LABEL, "label", false)?;
    let mut v = version::VERSION.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    info.pi_build_version = v.next().unwrap_or(0);
    info.pi_build_version_minor = v.next().unwrap_or(0);
    info.pi_operating_version = STSPI_VASTDATA_API_VERSION;
    put_str(&mut info.pi_vendor_version, version::VENDOR_VERSION, "vendor version", false)
}

/// The server handle inside an `sts_lsu_t`, and the LSU name.
///
/// # Safety
/// As [`arg_ref`]: `lsu` is NULL or points to an `sts_lsu_t` valid for reads during the call.
unsafe fn lsu_arg(
    lsu: *const sts_lsu_t,
    what: &str,
    ctx: &mut boundary::Ctx,
) -> Result<(Arc<Server>, String)> {
    // SAFETY: forwarded to the caller.
    let l = unsafe { arg_ref(lsu, what) }?;
    let server = handles::server(l.sl_server_handle as usize)?;
    let name = array_str(&l.sl_lsu_name.sln_name, &format!("{what} name"))?;
    ctx.set(server.name(), &name, "");
    Ok((server, name))
}

// ------------------------------------------------------------------------------------------
// Plug-in lifecycle
// ------------------------------------------------------------------------------------------

/// Initialise the plug-in. Call once per process before anything else; further calls are
/// counted and need as many `stspi_terminate` calls.
///
/// `api_version` is the `STSPI_VASTDATA_API_VERSION` the host was compiled with; `info`, if
/// not NULL, receives the plug-in information.
///
/// Reads the configuration (`$VAST_OST_CONFIG`, else `vast-ost.toml` beside the library) and
/// opens the plug-in log. A missing config file is not an error here (no server can be
/// opened until one exists); a config that does not parse returns `STS_ECONFIG`.
///
/// Returns `STS_EOK`, `STS_EVERSION`, `STS_ECONFIG`.
#[no_mangle]
pub unsafe extern "C" fn stspi_init(api_version: sts_uint32_t, info: *mut sts_plugin_info_t) -> c_int {
    ffi!("stspi_init", |_ctx| {
        if api_version != STSPI_VASTDATA_API_VERSION {
            return Err(Error::new(
                ErrorKind::Version,
                format!(
                    "host speaks interface version {api_version}, this plug-in {STSPI_VASTDATA_API_VERSION}"
                ),
            ));
        }
        // SAFETY: `info` is NULL or valid for writes (caller contract, crate docs).
        if let Some(out) = unsafe { opt_out(info) } {
            fill_plugin_info(out)?;
        }
        let mut guard = ENGINE.write().unwrap_or_else(|p| p.into_inner());
        match guard.as_mut() {
            Some((_, n)) => *n += 1,
            None => {
                boundary::install_panic_hook();
                fork::install();
                *guard = Some((Arc::new(Engine::new(&config_path())?), 1));
            }
        }
        Ok(())
    })
}

/// End the plug-in: undo one `stspi_init`. The last one closes every handle still open
/// (images open for writing are closed incomplete, so a restart can continue them).
///
/// Returns `STS_EOK`, `STS_ENOTINIT`.
#[no_mangle]
pub unsafe extern "C" fn stspi_terminate() -> c_int {
    ffi!("stspi_terminate", |_ctx| {
        let mut guard = ENGINE.write().unwrap_or_else(|p| p.into_inner());
        match guard.as_mut() {
            None => return Err(Error::new(ErrorKind::NotInitialized, "stspi_terminate without stspi_init")),
            Some((_, n)) if *n > 1 => *n -= 1,
            Some(_) => {
                *guard = None;
                drop(guard);
                // No replication thread may run the plug-in's code once the host may unload
                // it: each stops at its next step, resumable by any process.
                let running = vast_ost_engine::replication::pause_all(std::time::Duration::from_secs(60));
                if running > 0 {
                    warn!("terminate: {running} replication job(s) did not stop within 60 s");
                }
                let n = handles::clear();
                if n > 0 {
                    warn!("terminate closed {n} handle(s) the host left open");
                }
                info!("plug-in terminated");
            }
        }
        Ok(())
    })
}

/// Fill `info` with what `bpstsinfo -pi` shows: name, prefix `VastData:`, label, versions.
/// Works before `stspi_init`.
///
/// Returns `STS_EOK`, `STS_EINVAL` (NULL `info`).
#[no_mangle]
pub unsafe extern "C" fn stspi_get_plugin_info(info: *mut sts_plugin_info_t) -> c_int {
    ffi!("stspi_get_plugin_info", |_ctx| {
        // SAFETY: `info` is NULL or valid for writes (caller contract, crate docs).
        let out = unsafe { arg_out(info, "info") }?;
        fill_plugin_info(out)
    })
}

/// Does `server_name` belong to this plug-in? Names of the form `VastData:<cluster>` do.
///
/// Returns `STS_EOK` (ours), `STS_ECLAIM` (not ours), `STS_EINVAL` (NULL, or an empty or
/// malformed cluster part), `STS_ENOTINIT`.
#[no_mangle]
pub unsafe extern "C" fn stspi_claim(server_name: *const c_char) -> c_int {
    ffi!("stspi_claim", |ctx| {
        // SAFETY: `server_name` is NULL or a NUL-terminated string (caller contract, crate docs).
        let name = unsafe { arg_str(server_name, "server name") }?;
        ctx.server = name.to_string();
        engine()?.claim(name)
    })
}

// ------------------------------------------------------------------------------------------
// Storage servers
// ------------------------------------------------------------------------------------------

/// Open storage server `server_name` (`VastData:<cluster>`) with the credentials given to
/// `tpconfig`. `session` (who is calling, for the log) and `interface` may be NULL. On success
/// `*handle` is the server handle.
///
/// Returns `STS_EOK`, `STS_EINVAL`, `STS_ECLAIM`, `STS_ECONFIG` (no `[[server]]` for the
/// name), `STS_ECONNECT` (storage not reachable), `STS_EAUTH`, `STS_ENOTINIT`.
#[no_mangle]
pub unsafe extern "C" fn stspi_open_server(
    session: *const sts_session_def_t,
    server_name: *const c_char,
    cred: *const sts_cred_t,
    interface: *const c_char,
    handle: *mut stsp_server_handle_t,
) -> c_int {
    ffi!("stspi_open_server", |ctx| {
        // SAFETY: `server_name` is NULL or a NUL-terminated string (caller contract, crate docs).
        let name = unsafe { arg_str(server_name, "server name") }?;
        ctx.server = name.to_string();
        // SAFETY: `handle` is NULL or valid for writes (caller contract, crate docs).
        let out = unsafe { arg_out(handle, "handle") }?;
        // SAFETY: `cred` is NULL or valid for reads (caller contract, crate docs).
        let creds = credentials(unsafe { arg_ref(cred, "credentials") }?)?;
        // SAFETY: `session` is NULL or valid for reads (caller contract, crate docs).
        if let Some(s) = unsafe { opt_ref(session) } {
            let id = array_str(&s.sd_id, "session id")?;
            info!(server = name, session = %id, "open_server");
        }
        // Only checked: a string that is not UTF-8 is STS_EINVAL.
        // SAFETY: `interface` is NULL or a NUL-terminated string (caller contract, crate docs).
        unsafe { opt_str(interface, "interface") }?;
        let server = engine()?.open_server(name, &creds)?;
        *out = handles::insert(Object::Server(server, handles::Role::Opened)) as stsp_server_handle_t;
        Ok(())
    })
}

/// Close a server handle. Refused with `STS_EBUSY` while images or lists opened through it
/// are still open (the handle stays valid). A handle from `stspi_open_target_server` is
/// `STS_EHANDLE` here (it stays open; `stspi_close_target_server` closes it).
///
/// Returns `STS_EOK`, `STS_EBUSY`, `STS_EHANDLE`.
#[no_mangle]
pub unsafe extern "C" fn stspi_close_server(handle: stsp_server_handle_t) -> c_int {
    ffi!("stspi_close_server", |ctx| {
        let s = handles::take_server_if(handle as usize, handles::Role::Opened, |s| {
            ctx.server = s.name().to_string();
            s.check_closable()
        })?;
        info!(server = %s.name(), "storage server closed");
        Ok(())
    })
}

fn fill_server_info(out: &mut sts_server_info_t, i: &vast_ost_engine::ServerInfo) -> Result<()> {
    put_str(&mut out.srv_server, &i.name, "server name", true)?;
    // A replication target keeps event journals (A.I.R.), as the config says.
    out.srv_flags = i.flags | vast_ost_engine::replication::server_flags(&*engine()?.config()?, &i.name);
    out.srv_maxconnect = i.max_connect;
    out.srv_nconnect = i.connections;
    put_str(&mut out.srv_version, &i.version, "server version", false)?;
    put_str(&mut out.srv_guid, &i.guid, "server guid", false)?;
    put_str(&mut out.srv_interfaces, &i.interfaces, "server interfaces", false)
}

/// Fill `info` with the open server's properties (flags `STS_SRV_*`, version, interfaces).
///
/// Returns `STS_EOK`, `STS_EINVAL`, `STS_EHANDLE`.
#[no_mangle]
pub unsafe extern "C" fn stspi_get_server_prop(
    handle: stsp_server_handle_t,
    info: *mut sts_server_info_t,
) -> c_int {
    ffi!("stspi_get_server_prop", |ctx| {
        // SAFETY: `info` is NULL or valid for writes (caller contract, crate docs).
        let out = unsafe { arg_out(info, "info") }?;
        let s = handles::server(handle as usize)?;
        ctx.server = s.name().to_string();
        fill_server_info(out, &s.info())
    })
}

/// Server properties by name, without an open handle (storage polling). `session` may be NULL.
///
/// Returns `STS_EOK`, `STS_EINVAL`, `STS_ECLAIM`, `STS_ECONFIG`, `STS_ECONNECT`, `STS_ENOTINIT`.
#[no_mangle]
pub unsafe extern "C" fn stspi_get_server_prop_byname(
    session: *const sts_session_def_t,
    server_name: *const c_char,
    info: *mut sts_server_info_t,
) -> c_int {
    let _ = session;
    ffi!("stspi_get_server_prop_byname", |ctx| {
        // SAFETY: `server_name` is NULL or a NUL-terminated string (caller contract, crate docs).
        let name = unsafe { arg_str(server_name, "server name") }?;
        ctx.server = name.to_string();
        // SAFETY: `info` is NULL or valid for writes (caller contract, crate docs).
        let out = unsafe { arg_out(info, "info") }?;
        fill_server_info(out, &engine()?.server_info_byname(name)?)
    })
}

// ------------------------------------------------------------------------------------------
// LSUs
// ------------------------------------------------------------------------------------------

/// Start listing the server's LSUs. `filter`, if not NULL, keeps names starting with its
/// `sln_name`. The list is a snapshot taken now.
///
/// Returns `STS_EOK`, `STS_EINVAL`, `STS_EHANDLE`, `STS_ESYSCALL`.
#[no_mangle]
pub unsafe extern "C" fn stspi_open_lsu_list(
    handle: stsp_server_handle_t,
    filter: *const sts_lsu_name_t,
    list: *mut stsp_lsu_list_handle_t,
) -> c_int {
    ffi!("stspi_open_lsu_list", |ctx| {
        // SAFETY: `list` is NULL or valid for writes (caller contract, crate docs).
        let out = unsafe { arg_out(list, "list") }?;
        // SAFETY: `filter` is NULL or valid for reads (caller contract, crate docs).
        let prefix = match unsafe { opt_ref(filter) } {
            Some(f) => array_str(&f.sln_name, "LSU filter")?,
            None => String::new(),
        };
        let s = handles::server(handle as usize)?;
        ctx.server = s.name().to_string();
        let cursor = s.lsu_list(&prefix)?;
        *out = handles::insert(Object::LsuList(Arc::new(std::sync::Mutex::new(cursor)))) as _;
        Ok(())
    })
}

/// Next LSU name of the list into `*name`.
///
/// Returns `STS_EOK`, `STS_ENO_MORE_ENTRIES` at the end, `STS_EINVAL`, `STS_EHANDLE`.
#[no_mangle]
pub unsafe extern "C" fn stspi_list_lsu(list: stsp_lsu_list_handle_t, name: *mut sts_lsu_name_t) -> c_int {
    ffi!("stspi_list_lsu", |_ctx| {
        // SAFETY: `name` is NULL or valid for writes (caller contract, crate docs).
        let out = unsafe { arg_out(name, "name") }?;
        let l = handles::lsu_list(list as usize)?;
        let next = lock(&l).next_item();
        match next {
            Some(n) => put_str(&mut out.sln_name, &n, "LSU name", true),
            None => Err(Error::new(ErrorKind::NoMoreEntries, "end of LSU list")),
        }
    })
}

/// Close an LSU list.
///
/// Returns `STS_EOK`, `STS_EHANDLE`.
#[no_mangle]
pub unsafe extern "C" fn stspi_close_lsu_list(list: stsp_lsu_list_handle_t) -> c_int {
    ffi!("stspi_close_lsu_list", |_ctx| { handles::take_lsu_list(list as usize).map(drop) })
}

/// Fill `info` with the LSU's properties: capacity and used bytes, image count, flags.
///
/// Returns `STS_EOK`, `STS_EINVAL`, `STS_EHANDLE`, `STS_ENOENT` (no such LSU), `STS_ESYSCALL`.
#[no_mangle]
pub unsafe extern "C" fn stspi_get_lsu_prop_byname(
    lsu: *const sts_lsu_t,
    info: *mut sts_lsu_info_t,
) -> c_int {
    ffi!("stspi_get_lsu_prop_byname", |ctx| {
        // SAFETY: `info` is NULL or valid for writes (caller contract, crate docs).
        let out = unsafe { arg_out(info, "info") }?;
        // SAFETY: `lsu` is NULL or an `sts_lsu_t` valid for reads (caller contract, crate docs).
        let (s, name) = unsafe { lsu_arg(lsu, "LSU", ctx) }?;
        let i = s.lsu_info(&name)?;
        put_str(&mut out.lsu_server, &i.server, "server name", true)?;
        put_str(&mut out.lsu_name.sln_name, &i.name, "LSU name", true)?;
        put_str(&mut out.lsu_description, &i.description, "LSU description", false)?;
        out.lsu_flags =
            i.flags | vast_ost_engine::replication::rep_info(&*engine()?.config()?, s.name(), &name).flags;
        out.lsu_capacity = i.capacity;
        out.lsu_capacity_phys = i.capacity;
        out.lsu_used = i.used;
        out.lsu_used_phys = i.used;
        out.lsu_images = i.images;
        out.lsu_max_transfer = i.max_transfer;
        out.lsu_block_size = i.block_size;
        out.lsu_worm_min = i.worm_min;
        out.lsu_worm_max = if i.worm_max == u64::MAX { 0 } else { i.worm_max };
        put_str(&mut out.lsu_label, &i.label, "LSU label", false)
    })
}

/// Set the label of `lsu` to `label` (printable text without control characters, at most
/// `STS_MAX_LSU_LABEL - 1` bytes; empty removes it). The label is stored in the LSU itself,
/// so every media server's `stspi_get_lsu_prop_byname` reports it in `lsu_label`.
///
/// Returns `STS_EOK`, `STS_EINVAL` (NULL, not UTF-8, a control character), `STS_E2BIG`,
/// `STS_EHANDLE`, `STS_ENOENT` (no such LSU), `STS_EBUSY` (other media servers keep
/// relabelling it), `STS_EACCESS`, `STS_ESYSCALL`.
#[no_mangle]
pub unsafe extern "C" fn stspi_label_lsu(lsu: *const sts_lsu_t, label: *const c_char) -> c_int {
    ffi!("stspi_label_lsu", |ctx| {
        // SAFETY: `lsu` is NULL or an `sts_lsu_t` valid for reads (caller contract, crate docs).
        let (s, name) = unsafe { lsu_arg(lsu, "LSU", ctx) }?;
        // SAFETY: `label` is NULL or a NUL-terminated string (caller contract, crate docs).
        let label = unsafe { arg_str(label, "label") }?;
        s.set_lsu_label(&name, label)?;
        info!(server = %s.name(), lsu = %name, label, "LSU labelled");
        Ok(())
    })
}

// ------------------------------------------------------------------------------------------
// Images
// ------------------------------------------------------------------------------------------

/// Create image `img` on `lsu` and open it for writing. `pending` is NetBackup's hint that
/// another image follows (accepted, unused). The image is listed as pending and busy until
/// closed.
///
/// Returns `STS_EOK`, `STS_EINVAL` (bad name or pointer), `STS_E2BIG`, `STS_EEXIST`,
/// `STS_ENOENT` (no such LSU), `STS_EHANDLE`, `STS_ENOSPC`, `STS_ESYSCALL`.
#[no_mangle]
pub unsafe extern "C" fn stspi_create_image(
    lsu: *const sts_lsu_t,
    img: *const sts_image_def_t,
    pending: c_int,
    image: *mut stsp_image_handle_t,
) -> c_int {
    let _ = pending;
    ffi!("stspi_create_image", |ctx| {
        // SAFETY: `image` is NULL or valid for writes (caller contract, crate docs).
        let out = unsafe { arg_out(image, "image") }?;
        // SAFETY: `lsu` is NULL or an `sts_lsu_t` valid for reads (caller contract, crate docs).
        let (s, lsu) = unsafe { lsu_arg(lsu, "LSU", ctx) }?;
        // SAFETY: `img` is NULL or valid for reads (caller contract, crate docs).
        let def = image_def(unsafe { arg_ref(img, "image definition") }?)?;
        ctx.image = def.basename.clone();
        let open = s.create_image(&lsu, def)?;
        info!(server = %s.name(), lsu = %lsu, image = %ctx.image, "image created");
        *out = handles::insert(Object::Image(Arc::new(std::sync::Mutex::new(open)))) as _;
        Ok(())
    })
}

/// Open an existing image: `mode` `STS_O_READ` to read it, `STS_O_APPEND` to continue writing a
/// pending image (checkpoint restart; writes continue at the offsets the host gives).
///
/// Returns `STS_EOK`, `STS_EINVAL`, `STS_ENOENT`, `STS_ESTATE` (append to a complete image),
/// `STS_ECORRUPT` (the stored manifest fails its checks), `STS_EHANDLE`, `STS_ESYSCALL`.
#[no_mangle]
pub unsafe extern "C" fn stspi_open_image(
    lsu: *const sts_lsu_t,
    img: *const sts_image_def_t,
    mode: c_int,
    image: *mut stsp_image_handle_t,
) -> c_int {
    ffi!("stspi_open_image", |ctx| {
        // SAFETY: `image` is NULL or valid for writes (caller contract, crate docs).
        let out = unsafe { arg_out(image, "image") }?;
        // SAFETY: `lsu` is NULL or an `sts_lsu_t` valid for reads (caller contract, crate docs).
        let (s, lsu) = unsafe { lsu_arg(lsu, "LSU", ctx) }?;
        // SAFETY: `img` is NULL or valid for reads (caller contract, crate docs).
        let def = image_def(unsafe { arg_ref(img, "image definition") }?)?;
        ctx.image = def.basename.clone();
        let append = match mode {
            STS_O_READ => false,
            STS_O_APPEND => true,
            m => return Err(Error::invalid(format!("open mode {m} is neither STS_O_READ nor STS_O_APPEND"))),
        };
        let open = s.open_image(&lsu, &def, append)?;
        *out = handles::insert(Object::Image(Arc::new(std::sync::Mutex::new(open)))) as _;
        Ok(())
    })
}

/// Run `f` on an open image, naming it in the log context.
pub(crate) fn with_image<T>(
    image: stsp_image_handle_t,
    ctx: &mut boundary::Ctx,
    f: impl FnOnce(&mut vast_ost_engine::OpenImage) -> Result<T>,
) -> Result<T> {
    let img = handles::image(image as usize)?;
    let mut g = lock(&img);
    // Named for the log only when it fails: write and read are the hot path.
    f(&mut g).inspect_err(|_| ctx.set(g.server(), g.lsu(), g.name()))
}

/// Write `len` bytes from `buf` at image offset `offset`. `stat` may be NULL (ignored).
/// Writes may be buffered: an error can surface on a later write, on `stspi_flush` or on
/// close. `*written` is `len` on success and 0 on failure. After a failed write the handle
/// refuses further writes; close it (the image keeps its last committed state).
///
/// Returns `STS_EOK`, `STS_EINVAL` (NULL, zero length, offset overflow), `STS_ESTATE` (image
/// opened for reading), `STS_EHANDLE`, `STS_ENOSPC`, `STS_ESYSCALL`.
#[no_mangle]
pub unsafe extern "C" fn stspi_write_image(
    image: stsp_image_handle_t,
    stat: *const sts_stat_t,
    buf: *const c_void,
    len: sts_uint64_t,
    offset: sts_uint64_t,
    written: *mut sts_uint64_t,
) -> c_int {
    let _ = stat;
    ffi!("stspi_write_image", |ctx| {
        // SAFETY: `written` is NULL or valid for writes (caller contract, crate docs).
        let out = unsafe { arg_out(written, "written") }?;
        *out = 0;
        // SAFETY: `buf` is NULL or valid for reads of `len` bytes (caller contract, crate docs).
        let data = unsafe { arg_buf(buf, len, "write") }?;
        with_image(image, ctx, |i| i.write(data, offset))?;
        *out = len;
        Ok(())
    })
}

/// Make everything written so far durable and committed: after a crash the image is still
/// pending with all of it.
///
/// Returns `STS_EOK`, `STS_ESTATE`, `STS_EHANDLE`, `STS_ENOSPC`, `STS_ESYSCALL`.
#[no_mangle]
pub unsafe extern "C" fn stspi_flush(image: stsp_image_handle_t) -> c_int {
    ffi!("stspi_flush", |ctx| { with_image(image, ctx, |i| i.flush()) })
}

/// Read up to `len` bytes at `offset` into `buf`; `*nread` is the count, less than `len` only
/// at the end of the image, 0 at the end exactly. Reads that walk a piece from its start
/// check its CRC32C when they reach its end.
///
/// Returns `STS_EOK`, `STS_EINVAL` (NULL, zero length, offset past the end), `STS_ESTATE`
/// (image opened for writing), `STS_ECORRUPT`, `STS_EHANDLE`, `STS_ESYSCALL`.
#[no_mangle]
pub unsafe extern "C" fn stspi_read_image(
    image: stsp_image_handle_t,
    buf: *mut c_void,
    len: sts_uint64_t,
    offset: sts_uint64_t,
    nread: *mut sts_uint64_t,
) -> c_int {
    ffi!("stspi_read_image", |ctx| {
        // SAFETY: `nread` is NULL or valid for writes (caller contract, crate docs).
        let out = unsafe { arg_out(nread, "nread") }?;
        *out = 0;
        // SAFETY: `buf` is NULL or valid for writes of `len` bytes (caller contract, crate docs).
        let data = unsafe { arg_buf_mut(buf, len, "read") }?;
        *out = with_image(image, ctx, |i| i.read(data, offset))? as u64;
        Ok(())
    })
}

/// Close an image handle. For a write handle, `flags` `STS_CLOSEF_IH_COMPLETE` finishes the
/// image (durable, then listed as created, never writable again); `STS_CLOSEF_IH_INCOMPLETE`
/// keeps it pending for checkpoint restart. Once the flags are valid the handle is released
/// even when the close fails; a failed complete-close leaves the image pending, never
/// half-complete. Unknown flags change nothing: `STS_EINVAL` and the handle stays open.
///
/// Returns `STS_EOK`, `STS_EINVAL` (unknown flags), `STS_EHANDLE`, `STS_ESTATE` (another writer
/// took the image over since this handle opened it: its commit stands), `STS_ENOSPC`,
/// `STS_ESYSCALL`.
#[no_mangle]
pub unsafe extern "C" fn stspi_close_image(image: stsp_image_handle_t, flags: c_int) -> c_int {
    ffi!("stspi_close_image", |ctx| {
        if flags != STS_CLOSEF_IH_COMPLETE && flags != STS_CLOSEF_IH_INCOMPLETE {
            return Err(Error::invalid(format!("close flags {flags:#x} are unknown")));
        }
        let img = handles::take_image(image as usize)?;
        let mut g = lock(&img);
        ctx.set(g.server(), g.lsu(), g.name());
        g.close(flags == STS_CLOSEF_IH_COMPLETE).map(drop)
    })
}

/// Delete image `img` from `lsu` with everything stored for it. Deleting an image that does
/// not exist succeeds (expiry may run twice). A non-empty `img_date` must match: an image of
/// that name with another date is another image, and is left alone (still `STS_EOK`).
///
/// On a WORM LSU the storage refuses to delete a locked image: `STS_EWORM_LOCKED`, the log
/// line naming when the lock ends; nothing of the image is gone.
///
/// Returns `STS_EOK`, `STS_EINVAL`, `STS_EHANDLE`, `STS_ENOENT` (no such LSU),
/// `STS_EWORM_LOCKED`, `STS_ESYSCALL`.
#[no_mangle]
pub unsafe extern "C" fn stspi_delete_image(lsu: *const sts_lsu_t, img: *const sts_image_def_t) -> c_int {
    ffi!("stspi_delete_image", |ctx| {
        // SAFETY: `lsu` is NULL or an `sts_lsu_t` valid for reads (caller contract, crate docs).
        let (s, lsu) = unsafe { lsu_arg(lsu, "LSU", ctx) }?;
        // SAFETY: `img` is NULL or valid for reads (caller contract, crate docs).
        let def = image_def(unsafe { arg_ref(img, "image definition") }?)?;
        ctx.image = def.basename.clone();
        s.delete_image(&lsu, &def)
    })
}

/// Properties of an open image (size so far, `STS_II_*` flags).
///
/// Returns `STS_EOK`, `STS_EINVAL`, `STS_EHANDLE`.
#[no_mangle]
pub unsafe extern "C" fn stspi_get_image_prop(
    image: stsp_image_handle_t,
    info: *mut sts_image_info_t,
) -> c_int {
    ffi!("stspi_get_image_prop", |ctx| {
        // SAFETY: `info` is NULL or valid for writes (caller contract, crate docs).
        let out = unsafe { arg_out(info, "info") }?;
        let i = with_image(image, ctx, |i| i.info())?;
        put_image_info(out, &i)
    })
}

/// Properties of image `img` on `lsu`.
///
/// Returns `STS_EOK`, `STS_EINVAL`, `STS_EHANDLE`, `STS_ENOENT`, `STS_ECORRUPT`, `STS_ESYSCALL`.
#[no_mangle]
pub unsafe extern "C" fn stspi_get_image_prop_byname(
    lsu: *const sts_lsu_t,
    img: *const sts_image_def_t,
    info: *mut sts_image_info_t,
) -> c_int {
    ffi!("stspi_get_image_prop_byname", |ctx| {
        // SAFETY: `info` is NULL or valid for writes (caller contract, crate docs).
        let out = unsafe { arg_out(info, "info") }?;
        // SAFETY: `lsu` is NULL or an `sts_lsu_t` valid for reads (caller contract, crate docs).
        let (s, lsu) = unsafe { lsu_arg(lsu, "LSU", ctx) }?;
        // SAFETY: `img` is NULL or valid for reads (caller contract, crate docs).
        let def = image_def(unsafe { arg_ref(img, "image definition") }?)?;
        ctx.image = def.basename.clone();
        put_image_info(out, &s.image_info(&lsu, &def)?)
    })
}

/// Start listing the images of `lsu`, complete and pending. `filter`, if not NULL, keeps
/// images whose basename starts with its `img_basename` (other fields ignored). The list is a
/// snapshot taken now.
///
/// Returns `STS_EOK`, `STS_EINVAL`, `STS_EHANDLE`, `STS_ENOENT` (no such LSU), `STS_ESYSCALL`.
#[no_mangle]
pub unsafe extern "C" fn stspi_open_image_list(
    lsu: *const sts_lsu_t,
    filter: *const sts_image_def_t,
    list: *mut stsp_image_list_handle_t,
) -> c_int {
    ffi!("stspi_open_image_list", |ctx| {
        // SAFETY: `list` is NULL or valid for writes (caller contract, crate docs).
        let out = unsafe { arg_out(list, "list") }?;
        // SAFETY: `lsu` is NULL or an `sts_lsu_t` valid for reads (caller contract, crate docs).
        let (s, lsu) = unsafe { lsu_arg(lsu, "LSU", ctx) }?;
        // SAFETY: `filter` is NULL or valid for reads (caller contract, crate docs).
        let prefix = match unsafe { opt_ref(filter) } {
            Some(f) => array_str(&f.img_basename, "image filter")?,
            None => String::new(),
        };
        let cursor = s.image_list(&lsu, &prefix)?;
        *out = handles::insert(Object::ImageList(Arc::new(std::sync::Mutex::new(cursor)))) as _;
        Ok(())
    })
}

/// Next image of the list into `*info`.
///
/// Returns `STS_EOK`, `STS_ENO_MORE_ENTRIES` at the end, `STS_EINVAL`, `STS_EHANDLE`.
#[no_mangle]
pub unsafe extern "C" fn stspi_list_image(
    list: stsp_image_list_handle_t,
    info: *mut sts_image_info_t,
) -> c_int {
    ffi!("stspi_list_image", |_ctx| {
        // SAFETY: `info` is NULL or valid for writes (caller contract, crate docs).
        let out = unsafe { arg_out(info, "info") }?;
        let l = handles::image_list(list as usize)?;
        let next = lock(&l).next_item();
        match next {
            Some(i) => put_image_info(out, &i),
            None => Err(Error::new(ErrorKind::NoMoreEntries, "end of image list")),
        }
    })
}

/// Close an image list.
///
/// Returns `STS_EOK`, `STS_EHANDLE`.
#[no_mangle]
pub unsafe extern "C" fn stspi_close_image_list(list: stsp_image_list_handle_t) -> c_int {
    ffi!("stspi_close_image_list", |_ctx| { handles::take_image_list(list as usize).map(drop) })
}

/// Write `len` bytes of the image's metadata blob at `offset` (at most `STS_MAX_IMAGE_META`
/// bytes in all). Stored with the image at its next commit (flush or close).
///
/// Returns `STS_EOK`, `STS_EINVAL`, `STS_ESTATE` (image opened for reading), `STS_EHANDLE`.
#[no_mangle]
pub unsafe extern "C" fn stspi_write_image_meta(
    image: stsp_image_handle_t,
    buf: *const c_void,
    len: sts_uint64_t,
    offset: sts_uint64_t,
    written: *mut sts_uint64_t,
) -> c_int {
    ffi!("stspi_write_image_meta", |ctx| {
        // SAFETY: `written` is NULL or valid for writes (caller contract, crate docs).
        let out = unsafe { arg_out(written, "written") }?;
        *out = 0;
        // SAFETY: `buf` is NULL or valid for reads of `len` bytes (caller contract, crate docs).
        let data = unsafe { arg_buf(buf, len, "metadata write") }?;
        with_image(image, ctx, |i| i.write_meta(data, offset))?;
        *out = len;
        Ok(())
    })
}

/// Read up to `len` bytes of the image's metadata blob at `offset`; `*nread` is the count
/// (0 at its end).
///
/// Returns `STS_EOK`, `STS_EINVAL` (NULL, zero length, offset past the end), `STS_EHANDLE`.
#[no_mangle]
pub unsafe extern "C" fn stspi_read_image_meta(
    image: stsp_image_handle_t,
    buf: *mut c_void,
    len: sts_uint64_t,
    offset: sts_uint64_t,
    nread: *mut sts_uint64_t,
) -> c_int {
    ffi!("stspi_read_image_meta", |ctx| {
        // SAFETY: `nread` is NULL or valid for writes (caller contract, crate docs).
        let out = unsafe { arg_out(nread, "nread") }?;
        *out = 0;
        // SAFETY: `buf` is NULL or valid for writes of `len` bytes (caller contract, crate docs).
        let data = unsafe { arg_buf_mut(buf, len, "metadata read") }?;
        *out = with_image(image, ctx, |i| i.read_meta(data, offset))? as u64;
        Ok(())
    })
}

/// Copy complete image `from_img` on `from_lsu` to a new image `to_img` on `to_lsu`, inside the
/// storage (reflink or copy_file_range on NFS): the data does not pass through this process
/// when both LSUs are on the same server. An empty `to_img->img_date` takes the source's.
/// `flags` must be 0. On failure nothing of the target is left.
///
/// Returns `STS_EOK`, `STS_EINVAL`, `STS_EHANDLE`, `STS_ENOENT`, `STS_EEXIST`, `STS_ESTATE`
/// (source not complete), `STS_ENOSPC`, `STS_ESYSCALL`.
#[no_mangle]
pub unsafe extern "C" fn stspi_copy_image(
    to_lsu: *const sts_lsu_t,
    to_img: *const sts_image_def_t,
    from_lsu: *const sts_lsu_t,
    from_img: *const sts_image_def_t,
    flags: c_int,
) -> c_int {
    ffi!("stspi_copy_image", |ctx| {
        if flags != 0 {
            return Err(Error::invalid(format!("copy flags {flags:#x} are unknown")));
        }
        // SAFETY: `to_lsu` is NULL or an `sts_lsu_t` valid for reads (caller contract, crate docs).
        let (to_s, to_name) = unsafe { lsu_arg(to_lsu, "target LSU", ctx) }?;
        // SAFETY: `from_lsu` is NULL or an `sts_lsu_t` valid for reads (caller contract, crate docs).
        let (from_s, from_name) = unsafe { lsu_arg(from_lsu, "source LSU", ctx) }?;
        // SAFETY: `from_img` is NULL or valid for reads (caller contract, crate docs).
        let from_def = image_def(unsafe { arg_ref(from_img, "source image definition") }?)?;
        // SAFETY: `to_img` is NULL or valid for reads (caller contract, crate docs).
        let to_def = image_def(unsafe { arg_ref(to_img, "target image definition") }?)?;
        ctx.image = from_def.basename.clone();
        from_s.copy_image(&from_name, &from_def, &to_s, &to_name, &to_def).map(drop)
    })
}
