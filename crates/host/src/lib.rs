//! The host side of the OST interface: loads `libstspiVastDataMT.so` with `dlopen` and calls
//! it through the C ABI, as NetBackup's processes (bptm, bpdm, bpstsinfo) do. The CLI and the
//! Rust harness tests use it; nothing here knows how the plug-in works inside.
//!
//! [`Plugin::raw`] gives the bare function pointers, for tests that must pass what a careless
//! host would (NULLs, closed handles).

// Handles are opaque tokens the plug-in looks up, never pointers this crate dereferences.
#![allow(clippy::not_unsafe_ptr_arg_deref)]
#![warn(clippy::undocumented_unsafe_blocks)]

use std::ffi::{c_char, c_int, c_void, CString};
use std::fmt;
use std::path::{Path, PathBuf};

use abi::*;
use libloading::Library;
pub use ost_abi as abi;

/// The plug-in's file name.
pub const LIBRARY: &str = "libstspiVastDataMT.so";

/// A non-zero status from the plug-in.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Status(pub c_int);

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.0, status_text(self.0))
    }
}
impl fmt::Debug for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
impl std::error::Error for Status {}

pub type Res<T> = Result<T, Status>;

fn check(rc: c_int) -> Res<()> {
    if rc == STS_EOK {
        Ok(())
    } else {
        Err(Status(rc))
    }
}

macro_rules! exports {
    ($($name:ident: fn($($arg:ty),*);)*) => {
        /// Every export of the plug-in, resolved at load.
        #[allow(non_snake_case)]
        pub struct Fns {
            $(pub $name: unsafe extern "C" fn($($arg),*) -> c_int,)*
        }
        /// The names the plug-in must export, and nothing else.
        pub const EXPORTS: &[&str] = &[$(stringify!($name)),*];
        impl Fns {
            fn load(lib: &Library) -> Result<Fns, String> {
                Ok(Fns { $($name:
                    // SAFETY: the type given here is the export's signature in
                    // include/stspi_vastdata.h (the `header` test keeps that header and the
                    // plug-in's sources in step), and the pointer is only used while `lib`,
                    // kept beside it in `Plugin`, stays loaded.
                    unsafe {
                        *lib.get(concat!(stringify!($name), "\0").as_bytes())
                            .map_err(|e| format!("symbol {}: {e}", stringify!($name)))?
                    },
                )* })
            }
        }
    };
}

exports! {
    stspi_init: fn(sts_uint32_t, *mut sts_plugin_info_t);
    stspi_terminate: fn();
    stspi_claim: fn(*const c_char);
    stspi_get_plugin_info: fn(*mut sts_plugin_info_t);
    stspi_open_server: fn(*const sts_session_def_t, *const c_char, *const sts_cred_t, *const c_char, *mut stsp_server_handle_t);
    stspi_close_server: fn(stsp_server_handle_t);
    stspi_get_server_prop: fn(stsp_server_handle_t, *mut sts_server_info_t);
    stspi_get_server_prop_byname: fn(*const sts_session_def_t, *const c_char, *mut sts_server_info_t);
    stspi_open_lsu_list: fn(stsp_server_handle_t, *const sts_lsu_name_t, *mut stsp_lsu_list_handle_t);
    stspi_list_lsu: fn(stsp_lsu_list_handle_t, *mut sts_lsu_name_t);
    stspi_close_lsu_list: fn(stsp_lsu_list_handle_t);
    stspi_get_lsu_prop_byname: fn(*const sts_lsu_t, *mut sts_lsu_info_t);
    stspi_create_image: fn(*const sts_lsu_t, *const sts_image_def_t, c_int, *mut stsp_image_handle_t);
    stspi_open_image: fn(*const sts_lsu_t, *const sts_image_def_t, c_int, *mut stsp_image_handle_t);
    stspi_write_image: fn(stsp_image_handle_t, *const sts_stat_t, *const c_void, sts_uint64_t, sts_uint64_t, *mut sts_uint64_t);
    stspi_flush: fn(stsp_image_handle_t);
    stspi_read_image: fn(stsp_image_handle_t, *mut c_void, sts_uint64_t, sts_uint64_t, *mut sts_uint64_t);
    stspi_close_image: fn(stsp_image_handle_t, c_int);
    stspi_delete_image: fn(*const sts_lsu_t, *const sts_image_def_t);
    stspi_get_image_prop: fn(stsp_image_handle_t, *mut sts_image_info_t);
    stspi_get_image_prop_byname: fn(*const sts_lsu_t, *const sts_image_def_t, *mut sts_image_info_t);
    stspi_open_image_list: fn(*const sts_lsu_t, *const sts_image_def_t, *mut stsp_image_list_handle_t);
    stspi_list_image: fn(stsp_image_list_handle_t, *mut sts_image_info_t);
    stspi_close_image_list: fn(stsp_image_list_handle_t);
    stspi_write_image_meta: fn(stsp_image_handle_t, *const c_void, sts_uint64_t, sts_uint64_t, *mut sts_uint64_t);
    stspi_read_image_meta: fn(stsp_image_handle_t, *mut c_void, sts_uint64_t, sts_uint64_t, *mut sts_uint64_t);
    stspi_copy_image: fn(*const sts_lsu_t, *const sts_image_def_t, *const sts_lsu_t, *const sts_image_def_t, c_int);
    stspi_include_in_image: fn(stsp_image_handle_t, *const sts_image_def_t, sts_uint64_t, sts_uint64_t, sts_uint64_t);
    stspi_open_target_server: fn(stsp_server_handle_t, *const c_char, *const sts_cred_t, *mut stsp_server_handle_t);
    stspi_close_target_server: fn(stsp_server_handle_t);
    stspi_copy_extent: fn(stsp_image_handle_t, stsp_image_handle_t, sts_uint64_t, sts_uint64_t, sts_uint64_t);
    stspi_set_image_retention: fn(*const sts_lsu_t, *const sts_image_def_t, sts_uint64_t);
    stspi_label_lsu: fn(*const sts_lsu_t, *const c_char);
    stspi_get_lsu_rep_prop: fn(*const sts_lsu_t, *mut sts_lsu_rep_info_t);
    stspi_async_copy_image: fn(*const sts_lsu_t, *const sts_image_def_t, sts_uint32_t, *const c_char, *const sts_lsu_name_t, sts_uint32_t, *mut sts_opid_t);
    stspi_async_wait: fn(*const sts_opid_t, sts_uint32_t, *mut sts_async_status_t);
    stspi_async_cancel: fn(*const sts_opid_t);
    stspi_open_evchannel: fn(*const sts_lsu_t, sts_uint64_t, *mut stsp_evchannel_handle_t);
    stspi_get_event: fn(stsp_evchannel_handle_t, *mut sts_event_t);
    stspi_get_event_payload: fn(stsp_evchannel_handle_t, sts_uint64_t, *mut sts_image_info_t, sts_uint32_t, *mut sts_uint32_t);
    stspi_close_evchannel: fn(stsp_evchannel_handle_t);
}

/// A loaded plug-in.
pub struct Plugin {
    f: Fns,
    path: PathBuf,
    _lib: Library,
}

// `Plugin` is `Send + Sync` by its fields (function pointers, a `libloading::Library`): no
// `unsafe impl` is needed. That its entry points may be called from any thread is the
// plug-in's contract (include/stspi_vastdata.h); this only checks the compiler agrees.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Plugin>();
};

/// Copy `s` into a fixed C string array (truncating: tests pass overlong names on purpose
/// through [`Plugin::raw`] instead).
pub fn set_str(dst: &mut [c_char], s: &str) {
    let n = s.len().min(dst.len() - 1);
    for (d, b) in dst.iter_mut().zip(&s.as_bytes()[..n]) {
        *d = *b as c_char;
    }
    dst[n..].fill(0);
}

/// Read a fixed C string array.
pub fn get_str(src: &[c_char]) -> String {
    let bytes: Vec<u8> = src.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// C structs for which all-zero bytes are a valid value, so [`zeroed`] may make them.
///
/// # Safety
/// Implement it only for types whose every field is an integer, an array of integers or
/// `c_char`, a raw pointer, or another `Zeroable` type: no references, `NonNull`, function
/// pointers, enums or `bool`s, for which zero is not a valid value.
pub unsafe trait Zeroable: Copy {}

macro_rules! zeroable {
    ($($t:ty),* $(,)?) => {
        // SAFETY: the `#[repr(C)]` structs of `ost-abi` hold only integers, `c_char` arrays,
        // raw pointers (server handles) and each other: all-zero is valid for every field.
        $(unsafe impl Zeroable for $t {})*
    };
}
zeroable!(
    sts_plugin_info_t,
    sts_session_def_t,
    sts_cred_t,
    sts_server_info_t,
    sts_lsu_name_t,
    sts_lsu_t,
    sts_lsu_info_t,
    sts_image_def_t,
    sts_image_info_t,
    sts_stat_t,
    sts_lsu_rep_t,
    sts_lsu_rep_info_t,
    sts_opid_t,
    sts_async_status_t,
    sts_event_t,
);

/// A zeroed C struct, as a C host would `memset` one before filling it.
///
/// ```
/// let def: vast_ost_host::abi::sts_image_def_t = vast_ost_host::zeroed();
/// assert_eq!(def.img_copy_number, 0);
/// ```
///
/// Types for which zero is not a valid value are refused at compile time:
///
/// ```compile_fail,E0277
/// let r: &u8 = vast_ost_host::zeroed();
/// ```
pub fn zeroed<T: Zeroable>() -> T {
    // SAFETY: `T: Zeroable` promises that all-zero bytes are a valid `T`.
    unsafe { std::mem::zeroed() }
}

/// An `sts_lsu_t` for `name` on an open server.
pub fn lsu(server: stsp_server_handle_t, name: &str) -> sts_lsu_t {
    let mut l: sts_lsu_t = zeroed();
    l.sl_server_handle = server;
    set_str(&mut l.sl_lsu_name.sln_name, name);
    l
}

/// An image definition as NetBackup builds one.
pub fn image_def(basename: &str, date: &str, policy: &str) -> sts_image_def_t {
    let mut d: sts_image_def_t = zeroed();
    set_str(&mut d.img_basename, basename);
    set_str(&mut d.img_date, date);
    set_str(&mut d.img_policy, policy);
    d.img_copy_number = 1;
    d
}

fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', "")).expect("NULs removed")
}

// The `unsafe` calls below are sound because of what they pass, which is all the C interface
// asks of a caller: pointers made from references and live locals (valid for the call),
// buffers with their own lengths, `CString`s that outlive the call, NULL only where the
// interface allows it, and handles, which the plug-in looks up and never dereferences.
impl Plugin {
    /// `dlopen` the plug-in and resolve every export.
    pub fn load(path: &Path) -> Result<Plugin, String> {
        // SAFETY: loading runs the library's initialisers; this is the plug-in, which has no
        // initialisers beyond Rust's own (and any library the host names is trusted code).
        let lib = unsafe { Library::new(path) }.map_err(|e| format!("loading {}: {e}", path.display()))?;
        let f = Fns::load(&lib)?;
        Ok(Plugin { f, path: path.to_path_buf(), _lib: lib })
    }

    /// Where the plug-in is when nobody says: beside this executable (`target/<profile>/`),
    /// one level up (test binaries live in `deps/`), else the NetBackup install location.
    pub fn default_path() -> PathBuf {
        if let Ok(exe) = std::env::current_exe() {
            for dir in exe.ancestors().skip(1).take(2) {
                let p = dir.join(LIBRARY);
                if p.exists() {
                    return p;
                }
            }
        }
        PathBuf::from("/usr/openv/lib/ost-plugins").join(LIBRARY)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn raw(&self) -> &Fns {
        &self.f
    }

    pub fn init(&self) -> Res<sts_plugin_info_t> {
        let mut info = zeroed();
        // SAFETY: `info` is a live local the plug-in may fill.
        check(unsafe { (self.f.stspi_init)(STSPI_VASTDATA_API_VERSION, &mut info) })?;
        Ok(info)
    }

    pub fn terminate(&self) -> Res<()> {
        // SAFETY: no arguments.
        check(unsafe { (self.f.stspi_terminate)() })
    }

    pub fn plugin_info(&self) -> Res<sts_plugin_info_t> {
        let mut info = zeroed();
        // SAFETY: `info` is a live local the plug-in may fill.
        check(unsafe { (self.f.stspi_get_plugin_info)(&mut info) })?;
        Ok(info)
    }

    pub fn claim(&self, server: &str) -> Res<()> {
        // SAFETY: the `CString` lives until the call returns.
        check(unsafe { (self.f.stspi_claim)(cstring(server).as_ptr()) })
    }

    pub fn open_server(&self, server: &str, user: &str, password: &str) -> Res<stsp_server_handle_t> {
        let mut cred: sts_cred_t = zeroed();
        cred.cr_type = STS_CRED_CLEAR;
        set_str(&mut cred.cr_user, user);
        set_str(&mut cred.cr_password, password);
        let mut session: sts_session_def_t = zeroed();
        set_str(&mut session.sd_id, &format!("vast-ost-host pid {}", std::process::id()));
        let mut h = std::ptr::null_mut();
        // SAFETY: `session`, `cred`, the `CString` and `h` live until the call returns; `interface` may be NULL.
        check(unsafe {
            (self.f.stspi_open_server)(&session, cstring(server).as_ptr(), &cred, std::ptr::null(), &mut h)
        })?;
        Ok(h)
    }

    pub fn close_server(&self, h: stsp_server_handle_t) -> Res<()> {
        // SAFETY: a handle is a token the plug-in looks up, never dereferenced.
        check(unsafe { (self.f.stspi_close_server)(h) })
    }

    pub fn server_prop(&self, h: stsp_server_handle_t) -> Res<sts_server_info_t> {
        let mut info = zeroed();
        // SAFETY: `info` is a live local; `h` is a token.
        check(unsafe { (self.f.stspi_get_server_prop)(h, &mut info) })?;
        Ok(info)
    }

    pub fn server_prop_byname(&self, server: &str) -> Res<sts_server_info_t> {
        let mut info = zeroed();
        // SAFETY: `session` may be NULL; the `CString` and `info` live until the call returns.
        check(unsafe {
            (self.f.stspi_get_server_prop_byname)(std::ptr::null(), cstring(server).as_ptr(), &mut info)
        })?;
        Ok(info)
    }

    /// Every LSU name (open, iterate to "no more entries", close).
    pub fn lsu_names(&self, h: stsp_server_handle_t) -> Res<Vec<String>> {
        let mut list = std::ptr::null_mut();
        // SAFETY: the filter may be NULL; `list` is a live local.
        check(unsafe { (self.f.stspi_open_lsu_list)(h, std::ptr::null(), &mut list) })?;
        let mut out = Vec::new();
        let res = loop {
            let mut name: sts_lsu_name_t = zeroed();
            // SAFETY: `name` is a live local; `list` is a token.
            match unsafe { (self.f.stspi_list_lsu)(list, &mut name) } {
                STS_EOK => out.push(get_str(&name.sln_name)),
                STS_ENO_MORE_ENTRIES => break Ok(out),
                rc => break Err(Status(rc)),
            }
        };
        // SAFETY: `list` is a token.
        check(unsafe { (self.f.stspi_close_lsu_list)(list) })?;
        res
    }

    pub fn lsu_prop(&self, lsu: &sts_lsu_t) -> Res<sts_lsu_info_t> {
        let mut info = zeroed();
        // SAFETY: `lsu` is a reference; `info` is a live local.
        check(unsafe { (self.f.stspi_get_lsu_prop_byname)(lsu, &mut info) })?;
        Ok(info)
    }

    pub fn create_image(&self, lsu: &sts_lsu_t, def: &sts_image_def_t) -> Res<stsp_image_handle_t> {
        let mut h = std::ptr::null_mut();
        // SAFETY: `lsu` and `def` are references; `h` is a live local.
        check(unsafe { (self.f.stspi_create_image)(lsu, def, 0, &mut h) })?;
        Ok(h)
    }

    pub fn open_image(
        &self,
        lsu: &sts_lsu_t,
        def: &sts_image_def_t,
        mode: c_int,
    ) -> Res<stsp_image_handle_t> {
        let mut h = std::ptr::null_mut();
        // SAFETY: `lsu` and `def` are references; `h` is a live local.
        check(unsafe { (self.f.stspi_open_image)(lsu, def, mode, &mut h) })?;
        Ok(h)
    }

    pub fn write(&self, h: stsp_image_handle_t, buf: &[u8], off: u64) -> Res<u64> {
        let mut n = 0;
        // SAFETY: `stat` may be NULL; `buf` is valid for reads of `buf.len()` bytes; `n` is a live local.
        check(unsafe {
            (self.f.stspi_write_image)(
                h,
                std::ptr::null(),
                buf.as_ptr().cast(),
                buf.len() as u64,
                off,
                &mut n,
            )
        })?;
        Ok(n)
    }

    pub fn flush(&self, h: stsp_image_handle_t) -> Res<()> {
        // SAFETY: `h` is a token.
        check(unsafe { (self.f.stspi_flush)(h) })
    }

    pub fn read(&self, h: stsp_image_handle_t, buf: &mut [u8], off: u64) -> Res<usize> {
        let mut n = 0;
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes; `n` is a live local.
        check(unsafe {
            (self.f.stspi_read_image)(h, buf.as_mut_ptr().cast(), buf.len() as u64, off, &mut n)
        })?;
        Ok(n as usize)
    }

    pub fn close_image(&self, h: stsp_image_handle_t, flags: c_int) -> Res<()> {
        // SAFETY: `h` is a token.
        check(unsafe { (self.f.stspi_close_image)(h, flags) })
    }

    pub fn delete_image(&self, lsu: &sts_lsu_t, def: &sts_image_def_t) -> Res<()> {
        // SAFETY: `lsu` and `def` are references.
        check(unsafe { (self.f.stspi_delete_image)(lsu, def) })
    }

    /// Lock image `def` until `until` (seconds since the epoch), or extend its lock.
    pub fn set_image_retention(&self, lsu: &sts_lsu_t, def: &sts_image_def_t, until: u64) -> Res<()> {
        // SAFETY: `lsu` and `def` are references.
        check(unsafe { (self.f.stspi_set_image_retention)(lsu, def, until) })
    }

    /// Label LSU `lsu` (empty: remove the label).
    pub fn label_lsu(&self, lsu: &sts_lsu_t, label: &str) -> Res<()> {
        // SAFETY: `lsu` is a reference; the `CString` lives until the call returns.
        check(unsafe { (self.f.stspi_label_lsu)(lsu, cstring(label).as_ptr()) })
    }

    /// Replication partners and flags of an LSU (A.I.R.).
    pub fn lsu_rep_prop(&self, lsu: &sts_lsu_t) -> Res<sts_lsu_rep_info_t> {
        let mut info = zeroed();
        // SAFETY: `lsu` is a reference, `info` a live local.
        check(unsafe { (self.f.stspi_get_lsu_rep_prop)(lsu, &mut info) })?;
        Ok(info)
    }

    /// Start replicating `images` of `lsu` to its configured target; the operation id.
    pub fn async_copy_image(&self, lsu: &sts_lsu_t, images: &[sts_image_def_t]) -> Res<sts_opid_t> {
        let mut op = zeroed();
        // SAFETY: `images` is a slice of its length; NULL target server and LSU are allowed.
        check(unsafe {
            (self.f.stspi_async_copy_image)(
                lsu,
                images.as_ptr(),
                images.len() as u32,
                std::ptr::null(),
                std::ptr::null(),
                0,
                &mut op,
            )
        })?;
        Ok(op)
    }

    /// Wait up to `timeout_ms` for operation `op`: its status, and the call's result.
    pub fn async_wait(&self, op: &sts_opid_t, timeout_ms: u32) -> (Res<()>, sts_async_status_t) {
        let mut st = zeroed();
        // SAFETY: `op` is a reference, `st` a live local.
        let rc = check(unsafe { (self.f.stspi_async_wait)(op, timeout_ms, &mut st) });
        (rc, st)
    }

    pub fn async_cancel(&self, op: &sts_opid_t) -> Res<()> {
        // SAFETY: `op` is a reference.
        check(unsafe { (self.f.stspi_async_cancel)(op) })
    }

    pub fn open_evchannel(&self, lsu: &sts_lsu_t, start: u64) -> Res<stsp_evchannel_handle_t> {
        let mut h = std::ptr::null_mut();
        // SAFETY: `lsu` is a reference, `h` a live local.
        check(unsafe { (self.f.stspi_open_evchannel)(lsu, start, &mut h) })?;
        Ok(h)
    }

    pub fn get_event(&self, h: stsp_evchannel_handle_t) -> Res<sts_event_t> {
        let mut e = zeroed();
        // SAFETY: `h` is a token, `e` a live local.
        check(unsafe { (self.f.stspi_get_event)(h, &mut e) })?;
        Ok(e)
    }

    /// The payload (image infos) of event `seq`.
    pub fn event_payload(&self, h: stsp_evchannel_handle_t, seq: u64) -> Res<Vec<sts_image_info_t>> {
        let mut n = 0u32;
        // SAFETY: NULL with a count of 0 asks for the count; `n` is a live local.
        check(unsafe { (self.f.stspi_get_event_payload)(h, seq, std::ptr::null_mut(), 0, &mut n) })?;
        let mut v: Vec<sts_image_info_t> = (0..n).map(|_| zeroed()).collect();
        // SAFETY: `v` holds `n` records, `n` is a live local.
        check(unsafe { (self.f.stspi_get_event_payload)(h, seq, v.as_mut_ptr(), v.len() as u32, &mut n) })?;
        Ok(v)
    }

    pub fn close_evchannel(&self, h: stsp_evchannel_handle_t) -> Res<()> {
        // SAFETY: `h` is a token.
        check(unsafe { (self.f.stspi_close_evchannel)(h) })
    }

    pub fn image_prop(&self, h: stsp_image_handle_t) -> Res<sts_image_info_t> {
        let mut info = zeroed();
        // SAFETY: `info` is a live local; `h` is a token.
        check(unsafe { (self.f.stspi_get_image_prop)(h, &mut info) })?;
        Ok(info)
    }

    pub fn image_prop_byname(&self, lsu: &sts_lsu_t, def: &sts_image_def_t) -> Res<sts_image_info_t> {
        let mut info = zeroed();
        // SAFETY: `lsu` and `def` are references; `info` is a live local.
        check(unsafe { (self.f.stspi_get_image_prop_byname)(lsu, def, &mut info) })?;
        Ok(info)
    }

    /// Every image of the LSU whose basename starts with `prefix`.
    pub fn images(&self, lsu: &sts_lsu_t, prefix: &str) -> Res<Vec<sts_image_info_t>> {
        let filter = image_def(prefix, "", "");
        let mut list = std::ptr::null_mut();
        // SAFETY: `lsu` is a reference; `filter` and `list` are live locals.
        check(unsafe { (self.f.stspi_open_image_list)(lsu, &filter, &mut list) })?;
        let mut out = Vec::new();
        let res = loop {
            let mut info = zeroed();
            // SAFETY: `info` is a live local; `list` is a token.
            match unsafe { (self.f.stspi_list_image)(list, &mut info) } {
                STS_EOK => out.push(info),
                STS_ENO_MORE_ENTRIES => break Ok(out),
                rc => break Err(Status(rc)),
            }
        };
        // SAFETY: `list` is a token.
        check(unsafe { (self.f.stspi_close_image_list)(list) })?;
        res
    }

    pub fn write_meta(&self, h: stsp_image_handle_t, buf: &[u8], off: u64) -> Res<u64> {
        let mut n = 0;
        // SAFETY: `buf` is valid for reads of `buf.len()` bytes; `n` is a live local.
        check(unsafe {
            (self.f.stspi_write_image_meta)(h, buf.as_ptr().cast(), buf.len() as u64, off, &mut n)
        })?;
        Ok(n)
    }

    pub fn read_meta(&self, h: stsp_image_handle_t, buf: &mut [u8], off: u64) -> Res<usize> {
        let mut n = 0;
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes; `n` is a live local.
        check(unsafe {
            (self.f.stspi_read_image_meta)(h, buf.as_mut_ptr().cast(), buf.len() as u64, off, &mut n)
        })?;
        Ok(n as usize)
    }

    pub fn copy_image(
        &self,
        to: &sts_lsu_t,
        to_def: &sts_image_def_t,
        from: &sts_lsu_t,
        from_def: &sts_image_def_t,
    ) -> Res<()> {
        // SAFETY: all four are references.
        check(unsafe { (self.f.stspi_copy_image)(to, to_def, from, from_def, 0) })
    }

    /// Place `len` bytes at `src_off` of complete image `src` (same LSU) at `dst_off` of the
    /// image open for writing in `h`, without copying them (optimized synthetics).
    pub fn include(
        &self,
        h: stsp_image_handle_t,
        src: &sts_image_def_t,
        src_off: u64,
        len: u64,
        dst_off: u64,
    ) -> Res<()> {
        // SAFETY: `src` is a reference; a handle is a token the plug-in looks up.
        check(unsafe { (self.f.stspi_include_in_image)(h, src, src_off, len, dst_off) })
    }

    /// Open `target` as the target of an optimized duplication from `server`.
    pub fn open_target_server(
        &self,
        server: stsp_server_handle_t,
        target: &str,
        user: &str,
        password: &str,
    ) -> Res<stsp_server_handle_t> {
        let mut cred: sts_cred_t = zeroed();
        cred.cr_type = STS_CRED_CLEAR;
        set_str(&mut cred.cr_user, user);
        set_str(&mut cred.cr_password, password);
        let mut h = std::ptr::null_mut();
        // SAFETY: `cred`, the `CString` and `h` live until the call returns.
        check(unsafe { (self.f.stspi_open_target_server)(server, cstring(target).as_ptr(), &cred, &mut h) })?;
        Ok(h)
    }

    pub fn close_target_server(&self, h: stsp_server_handle_t) -> Res<()> {
        // SAFETY: a handle is a token the plug-in looks up, never dereferenced.
        check(unsafe { (self.f.stspi_close_target_server)(h) })
    }

    /// Copy `len` bytes at `from_off` of the image open for reading in `from` to `to_off` of the
    /// image open for writing in `to` (extent-based optimized duplication).
    pub fn copy_extent(
        &self,
        to: stsp_image_handle_t,
        from: stsp_image_handle_t,
        from_off: u64,
        len: u64,
        to_off: u64,
    ) -> Res<()> {
        // SAFETY: handles are tokens the plug-in looks up, never dereferenced.
        check(unsafe { (self.f.stspi_copy_extent)(to, from, from_off, len, to_off) })
    }
}
