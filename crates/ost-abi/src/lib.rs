//! The OST plug-in interface as this project defines it: C types, constants and status codes,
//! nothing else.
//!
//! The real OpenStorage SDK header (`stspi.h`) is proprietary. Everything here is built from the
//! public facts in `shared/reference/ost-api-public-facts.md`; where those facts stop, the project
//! chose a definition and marks it **[project]**. Every such choice lives in this one crate, so
//! the real header can replace it in one place (bindgen output in place of this file).
//!
//! The C header `include/stspi_vastdata.h` is generated from this crate and the plug-in's
//! exports by cbindgen, and a test fails when the checked-in copy is stale.
#![allow(non_camel_case_types)]
#![no_std]

use core::ffi::{c_char, c_int};

pub type sts_int32_t = i32;
pub type sts_uint32_t = u32;
pub type sts_uint64_t = u64;

/// Version of this interface definition. The host passes the version it was compiled
/// against to `stspi_init`; any other value is refused (`STS_EVERSION`). **[project]**
pub const STSPI_VASTDATA_API_VERSION: sts_uint32_t = 1;

/// Unit of write lengths: NetBackup writes `n * STS_BLOCK_SIZE` bytes (value not public).
/// The plug-in accepts any non-zero length. **[project]**
pub const STS_BLOCK_SIZE: sts_uint32_t = 512;

// ---------------------------------------------------------------------------------------------
// String sizes (all include the terminating NUL). **[project]**
// ---------------------------------------------------------------------------------------------
pub const STS_MAX_STSNAME: usize = 256;
pub const STS_MAX_LSUNAME: usize = 256;
pub const STS_MAX_IMAGENAME: usize = 256;
pub const STS_MAX_DATE: usize = 32;
pub const STS_MAX_POLICY: usize = 256;
pub const STS_MAX_CLIENT: usize = 256;
pub const STS_MAX_USER: usize = 256;
pub const STS_MAX_PASSWORD: usize = 1024;
pub const STS_MAX_DESCRIPTION: usize = 256;
pub const STS_MAX_PLUGIN_STRING: usize = 64;
/// An LSU label (`stspi_label_lsu`, `lsu_label`). **[project]**
pub const STS_MAX_LSU_LABEL: usize = 256;
/// Largest image metadata blob (`stspi_write_image_meta`). **[project]**
pub const STS_MAX_IMAGE_META: sts_uint64_t = 1 << 20;

// ---------------------------------------------------------------------------------------------
// Status codes: 2060000 + n. Public values are marked [P]; [R] were seen in forums only;
// the rest are [project] choices, placed from 2060100 up to stay clear of the SDK's own range.
// ---------------------------------------------------------------------------------------------
pub const STS_ERR_BASE: c_int = 2060000;
/// Success.
pub const STS_EOK: c_int = 0;
/// [R] "one or more invalid arguments": a null pointer, a bad name, a bad offset or length.
pub const STS_EINVAL: c_int = 2060001;
/// [P] "object is busy, cannot be closed": close_server with handles still open.
pub const STS_EBUSY: c_int = 2060005;
/// [P] "no more entries": the end of an LSU or image list.
pub const STS_ENO_MORE_ENTRIES: c_int = 2060013;
/// [P] "system call failed": an I/O error on the storage (maps to job status 84/87).
pub const STS_ESYSCALL: c_int = 2060017;
/// [R] "file not found": no such image or LSU.
pub const STS_ENOENT: c_int = 2060018;
/// [R] "error occurred on network socket".
pub const STS_ENET: c_int = 2060019;
/// [P] "access not allowed".
pub const STS_EACCESS: c_int = 2060037;
/// [P] value ("WORM invalid min"; symbol [project]): a retention lock shorter than the LSU's
/// minimum.
pub const STS_EWORM_MIN: c_int = 2060064;
/// [P] value ("invalid maximum"; symbol [project]): a retention lock longer than the LSU's
/// maximum.
pub const STS_EWORM_MAX: c_int = 2060065;
/// [P] value (a WORM-locked image whose delete was refused; symbol [project]).
pub const STS_EWORM_LOCKED: c_int = 2060069;
/// [P] generic plug-in failure (`STS_EPLUGIN`); also what a caught panic returns.
pub const STS_EPLUGIN: c_int = 2060046;
/// [project] the storage-server name is not this plug-in's (no `VastData:` prefix).
pub const STS_ECLAIM: c_int = 2060100;
/// [project] a handle that is null, closed, forged or of the wrong type.
pub const STS_EHANDLE: c_int = 2060101;
/// [project] the plug-in configuration is missing or wrong (see the plug-in log).
pub const STS_ECONFIG: c_int = 2060102;
/// [project] `stspi_init` was not called, or `stspi_terminate` already ended the plug-in.
pub const STS_ENOTINIT: c_int = 2060103;
/// [project] the host's interface version is not supported.
pub const STS_EVERSION: c_int = 2060104;
/// [project] the image already exists.
pub const STS_EEXIST: c_int = 2060105;
/// [project] no space left on the LSU (file system full or quota reached).
pub const STS_ENOSPC: c_int = 2060106;
/// [project] the operation is not allowed in the image's state or handle mode (writing a
/// read-opened image, appending to a complete one, reading a write-opened one).
pub const STS_ESTATE: c_int = 2060107;
/// [project] stored data or metadata failed its integrity check.
pub const STS_ECORRUPT: c_int = 2060108;
/// [project] wrong credentials.
pub const STS_EAUTH: c_int = 2060109;
/// [project] the storage server cannot be reached.
pub const STS_ECONNECT: c_int = 2060110;
/// [project] TLS failed (the certificate did not verify).
pub const STS_ETLS: c_int = 2060111;
/// [project] the operation is not supported by this server or LSU.
pub const STS_ENOTSUP: c_int = 2060112;
/// [project] a string does not fit its buffer.
pub const STS_E2BIG: c_int = 2060113;
/// [project] symbol named by the A.I.R. slides ([S]), value chosen: the asynchronous
/// operation is still running (`stspi_async_wait` timed out); NetBackup retries it.
pub const STS_EAGAIN: c_int = 2060114;
/// [project] the asynchronous operation was cancelled (`stspi_async_cancel`).
pub const STS_ECANCELED: c_int = 2060115;

// ---------------------------------------------------------------------------------------------
// Flags.
// ---------------------------------------------------------------------------------------------
/// `stspi_close_image`: the image is finished and can never be written again. [S]
pub const STS_CLOSEF_IH_COMPLETE: c_int = 1;
/// `stspi_close_image`: keep the image incomplete, for checkpoint restart. [S]
pub const STS_CLOSEF_IH_INCOMPLETE: c_int = 0;

/// `stspi_open_image` modes. **[project]**
pub const STS_O_READ: c_int = 1;
/// Reopen an incomplete image to continue writing it (checkpoint restart).
pub const STS_O_APPEND: c_int = 2;

/// Image state flags in `sts_image_info_t.imo_flags`. Names [S], bit values [project].
pub const STS_II_IMAGE_PENDING: sts_uint32_t = 0x01;
pub const STS_II_IMAGE_CREATED: sts_uint32_t = 0x02;
pub const STS_II_BUSY_WRITE: sts_uint32_t = 0x04;
pub const STS_II_BUSY_READ: sts_uint32_t = 0x08;
pub const STS_II_FILES_PENDING: sts_uint32_t = 0x10;
pub const STS_II_FILES_CREATED: sts_uint32_t = 0x20;

/// Server flags in `sts_server_info_t.srv_flags`. **[project]** bit values.
pub const STS_SRV_DISK: sts_uint64_t = 0x01;
pub const STS_SRV_CRED: sts_uint64_t = 0x02;
/// Server-side image copy (`stspi_copy_image`) is available.
pub const STS_SRV_COPY_IMAGE: sts_uint64_t = 0x04;
/// Writes may come at any offset (non-sequential).
pub const STS_SRV_WRITE_RANDOM: sts_uint64_t = 0x08;
/// Images carry a metadata blob (`stspi_write_image_meta`).
pub const STS_SRV_IMAGE_META: sts_uint64_t = 0x10;
/// Optimized synthetics: `stspi_include_in_image` places ranges of earlier images without
/// copying them (NetBackup's `OptimizedImage`).
pub const STS_SRV_OPTIMIZED_IMAGE: sts_uint64_t = 0x20;
/// Extent-based optimized duplication: `stspi_open_target_server` and `stspi_copy_extent`.
pub const STS_SRV_COPY_EXTENT: sts_uint64_t = 0x40;
/// [S] name, [project] bit: the server keeps an event journal (A.I.R. events of images
/// replicated to it: `stspi_open_evchannel`).
pub const STS_SRV_STORED_EV: sts_uint64_t = 0x80;
/// The server has an NFS data path.
pub const STS_SRV_NFS: sts_uint64_t = 0x100;
/// The server has an S3 data path.
pub const STS_SRV_S3: sts_uint64_t = 0x200;

/// LSU flags in `sts_lsu_info_t.lsu_flags`. **[project]**
pub const STS_LSUF_DISK: sts_uint64_t = 0x01;
/// Images of this LSU can include ranges of its other images (optimized synthetics).
pub const STS_LSUF_OPTIMIZED_IMAGE: sts_uint64_t = 0x02;
/// Extents of this LSU's images can be copied without passing through the media server.
pub const STS_LSUF_COPY_EXTENT: sts_uint64_t = 0x04;
/// [project] the storage enforces retention locks on the LSU's images (a WORM-enabled VAST
/// view): `stspi_set_image_retention` works, within `lsu_worm_min`..`lsu_worm_max`.
pub const STS_LSUF_WORM: sts_uint64_t = 0x08;
/// [S] names, [project] bits: the LSU replicates its images to another server's LSU
/// (`stspi_async_copy_image`), receives replicated images, and replication is configured.
pub const STS_LSUF_REP_SOURCE: sts_uint64_t = 0x10;
pub const STS_LSUF_REP_TARGET: sts_uint64_t = 0x20;
pub const STS_LSUF_REP_ENABLED: sts_uint64_t = 0x40;
pub const STS_LSUF_NFS: sts_uint64_t = 0x100;
pub const STS_LSUF_S3: sts_uint64_t = 0x200;

/// Credential types in `sts_cred_t.cr_type`. **[project]**
pub const STS_CRED_CLEAR: sts_uint32_t = 1;

// ---------------------------------------------------------------------------------------------
// Handles. They are opaque tokens issued by the plug-in and looked up in its handle table;
// they are never dereferenced, so a closed, forged or wrong-type handle is an error
// (STS_EHANDLE), never undefined behaviour.
// ---------------------------------------------------------------------------------------------
/// An open storage server.
pub struct stsp_server {
    _private: [u8; 0],
}
/// An open LSU list.
pub struct stsp_lsu_list {
    _private: [u8; 0],
}
/// An open image (read or write).
pub struct stsp_image {
    _private: [u8; 0],
}
/// An open image list.
pub struct stsp_image_list {
    _private: [u8; 0],
}
/// An open event channel (A.I.R.).
pub struct stsp_evchannel {
    _private: [u8; 0],
}
pub type stsp_evchannel_handle_t = *mut stsp_evchannel;
pub type stsp_server_handle_t = *mut stsp_server;
pub type stsp_lsu_list_handle_t = *mut stsp_lsu_list;
pub type stsp_image_handle_t = *mut stsp_image;
pub type stsp_image_list_handle_t = *mut stsp_image_list;

// ---------------------------------------------------------------------------------------------
// Structures. Field names follow the public evidence where there is some; layouts are
// [project]. All strings are NUL-terminated within their arrays.
// ---------------------------------------------------------------------------------------------

/// What `bpstsinfo -pi` shows.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct sts_plugin_info_t {
    pub pi_name: [c_char; STS_MAX_PLUGIN_STRING],
    /// Storage-server prefix routed to this plug-in: `VastData:`.
    pub pi_prefix: [c_char; STS_MAX_PLUGIN_STRING],
    pub pi_label: [c_char; STS_MAX_DESCRIPTION],
    pub pi_build_version: sts_uint32_t,
    pub pi_build_version_minor: sts_uint32_t,
    /// The interface version implemented (`STSPI_VASTDATA_API_VERSION`).
    pub pi_operating_version: sts_uint32_t,
    pub pi_vendor_version: [c_char; STS_MAX_PLUGIN_STRING],
}

/// Who is calling (process and job), for the plug-in log. Optional everywhere.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct sts_session_def_t {
    pub sd_id: [c_char; STS_MAX_PLUGIN_STRING],
}

/// Credentials as `tpconfig -sts_user_id … -password …` stored them.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct sts_cred_t {
    pub cr_type: sts_uint32_t,
    pub cr_user: [c_char; STS_MAX_USER],
    pub cr_password: [c_char; STS_MAX_PASSWORD],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct sts_server_info_t {
    pub srv_server: [c_char; STS_MAX_STSNAME],
    /// `STS_SRV_*` flags.
    pub srv_flags: sts_uint64_t,
    pub srv_maxconnect: sts_uint32_t,
    pub srv_nconnect: sts_uint32_t,
    /// Storage software and version, e.g. `VAST 5.3.0` or `NFS`.
    pub srv_version: [c_char; STS_MAX_DESCRIPTION],
    /// Cluster identity when known (VMS guid), else empty.
    pub srv_guid: [c_char; STS_MAX_PLUGIN_STRING],
    /// Supported interfaces (data-path endpoints), comma separated.
    pub srv_interfaces: [c_char; STS_MAX_DESCRIPTION],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct sts_lsu_name_t {
    pub sln_name: [c_char; STS_MAX_LSUNAME],
}

/// An LSU on an open server: the argument of every image call.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct sts_lsu_t {
    pub sl_server_handle: stsp_server_handle_t,
    pub sl_lsu_name: sts_lsu_name_t,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct sts_lsu_info_t {
    pub lsu_server: [c_char; STS_MAX_STSNAME],
    pub lsu_name: sts_lsu_name_t,
    pub lsu_description: [c_char; STS_MAX_DESCRIPTION],
    /// `STS_LSUF_*` flags.
    pub lsu_flags: sts_uint64_t,
    pub lsu_capacity: sts_uint64_t,
    pub lsu_capacity_phys: sts_uint64_t,
    pub lsu_used: sts_uint64_t,
    pub lsu_used_phys: sts_uint64_t,
    /// Images (complete or pending) stored on the LSU.
    pub lsu_images: sts_uint64_t,
    /// Preferred write size in bytes.
    pub lsu_max_transfer: sts_uint64_t,
    pub lsu_block_size: sts_uint32_t,
    /// [project] With `STS_LSUF_WORM`: the shortest retention lock the LSU takes, in seconds.
    pub lsu_worm_min: sts_uint64_t,
    /// [project] With `STS_LSUF_WORM`: the longest retention lock, in seconds; 0: no maximum.
    pub lsu_worm_max: sts_uint64_t,
    /// [project] The label `stspi_label_lsu` set, stored in the LSU; empty: none.
    pub lsu_label: [c_char; STS_MAX_LSU_LABEL],
}

/// Identifies an image. `img_basename` is the key; a non-empty `img_date` must match too.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct sts_image_def_t {
    /// NetBackup's name, e.g. `client1_1638486030_C1_F2`.
    pub img_basename: [c_char; STS_MAX_IMAGENAME],
    /// Backup time (ctime) as NetBackup formats it, e.g. `1638486030`.
    pub img_date: [c_char; STS_MAX_DATE],
    pub img_policy: [c_char; STS_MAX_POLICY],
    pub img_client: [c_char; STS_MAX_CLIENT],
    pub img_copy_number: sts_uint32_t,
    pub img_flags: sts_uint32_t,
    /// Origin master server (A.I.R.).
    pub img_master_server: [c_char; STS_MAX_STSNAME],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct sts_image_info_t {
    pub imo_def: sts_image_def_t,
    pub imo_server: [c_char; STS_MAX_STSNAME],
    pub imo_lsu: sts_lsu_name_t,
    /// Logical size in bytes (highest byte written + 1).
    pub imo_size: sts_uint64_t,
    /// `STS_II_*` flags.
    pub imo_flags: sts_uint32_t,
    /// Bytes of metadata written with `stspi_write_image_meta`.
    pub imo_meta_size: sts_uint64_t,
    /// Creation and last-commit times, seconds since the epoch.
    pub imo_create_time: sts_uint64_t,
    pub imo_update_time: sts_uint64_t,
    /// [project] When the image's retention lock ends (seconds since the epoch), on a WORM
    /// LSU, by `stspi_get_image_prop_byname` only; 0: not locked (or not asked: listings and
    /// open images leave it 0).
    pub imo_worm_until: sts_uint64_t,
}

/// The "stat structure" passed with each write (content description; not public).
/// Accepted and ignored; may be NULL. **[project]**
#[repr(C)]
#[derive(Clone, Copy)]
pub struct sts_stat_t {
    pub st_flags: sts_uint32_t,
}

// ---------------------------------------------------------------------------------------------
// A.I.R. (Auto Image Replication). Names from the public slides ([S]); layouts [project].
// ---------------------------------------------------------------------------------------------

/// Most replication partners an LSU reports in each direction. **[project]**
pub const STS_MAX_REP: usize = 8;
/// An operation id (`<source server>/<source LSU>/<job id>`). **[project]**
pub const STS_MAX_OPID: usize = 512;

/// One side of a replication: a storage server and its LSU.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct sts_lsu_rep_t {
    pub lr_server: [c_char; STS_MAX_STSNAME],
    pub lr_lsu: sts_lsu_name_t,
}

/// What `stspi_get_lsu_rep_prop` reports: where the LSU's images are replicated to, and which
/// LSUs replicate to it.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct sts_lsu_rep_info_t {
    /// `STS_LSUF_REP_*` flags.
    pub lri_flags: sts_uint64_t,
    pub lri_ntargets: sts_uint32_t,
    pub lri_targets: [sts_lsu_rep_t; STS_MAX_REP],
    pub lri_nsources: sts_uint32_t,
    pub lri_sources: [sts_lsu_rep_t; STS_MAX_REP],
}

/// An asynchronous operation's id, as `stspi_async_copy_image` returns it.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct sts_opid_t {
    pub op_id: [c_char; STS_MAX_OPID],
}

/// `sts_async_status_t.as_state`.
pub const STS_ASYNC_RUNNING: sts_uint32_t = 1;
pub const STS_ASYNC_DONE: sts_uint32_t = 2;
pub const STS_ASYNC_FAILED: sts_uint32_t = 3;
pub const STS_ASYNC_CANCELLED: sts_uint32_t = 4;

/// Progress and result of an asynchronous copy (`stspi_async_wait`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct sts_async_status_t {
    /// `STS_ASYNC_*`.
    pub as_state: sts_uint32_t,
    /// `STS_EOK` while running or done; the failure's status when failed.
    pub as_status: c_int,
    /// Images of the set committed on the target, of all.
    pub as_images_done: sts_uint32_t,
    pub as_images_total: sts_uint32_t,
    pub as_bytes_done: sts_uint64_t,
    pub as_bytes_total: sts_uint64_t,
    /// Once done: the sequence number of the set's `STS_EVT_IMG_REP` event on the target.
    pub as_event_seqno: sts_uint64_t,
}

/// [S] event type: an image set was replicated to this server; the payload holds the
/// `sts_image_info_t` of its `IM` image(s).
pub const STS_EVT_IMG_REP: sts_uint32_t = 1;

/// One event of a target LSU's journal (`stspi_get_event`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct sts_event_t {
    /// Sequence number in the LSU's journal: from 1, gapless, shared by every media server.
    pub ev_seqno: sts_uint64_t,
    /// `STS_EVT_*`.
    pub ev_type: sts_uint32_t,
    pub ev_flags: sts_uint32_t,
    /// When it was appended, seconds since the epoch.
    pub ev_time: sts_uint64_t,
    /// Where the images are now (the target).
    pub ev_server: [c_char; STS_MAX_STSNAME],
    pub ev_lsu: sts_lsu_name_t,
    /// Where they came from.
    pub ev_source_server: [c_char; STS_MAX_STSNAME],
    pub ev_source_lsu: sts_lsu_name_t,
    /// The copy that replicated them.
    pub ev_opid: sts_opid_t,
    /// `sts_image_info_t` records in the payload (`stspi_get_event_payload`).
    pub ev_payload_count: sts_uint32_t,
}

/// Text NetBackup would print for a status, for logs and tools.
pub fn status_text(code: c_int) -> &'static str {
    match code {
        STS_EOK => "success",
        STS_EINVAL => "one or more invalid arguments",
        STS_EBUSY => "object is busy, cannot be closed",
        STS_ENO_MORE_ENTRIES => "no more entries",
        STS_ESYSCALL => "system call failed",
        STS_ENOENT => "file not found",
        STS_ENET => "error occurred on network socket",
        STS_EACCESS => "access not allowed",
        STS_EWORM_MIN => "WORM invalid min",
        STS_EWORM_MAX => "invalid maximum",
        STS_EWORM_LOCKED => "image is WORM locked",
        STS_EPLUGIN => "plug-in error",
        STS_ECLAIM => "storage server not claimed by this plug-in",
        STS_EHANDLE => "invalid handle",
        STS_ECONFIG => "plug-in configuration error",
        STS_ENOTINIT => "plug-in not initialised",
        STS_EVERSION => "unsupported interface version",
        STS_EEXIST => "image already exists",
        STS_ENOSPC => "no space left on storage",
        STS_ESTATE => "operation not allowed in this image state",
        STS_ECORRUPT => "stored data failed integrity check",
        STS_EAUTH => "authentication failed",
        STS_ECONNECT => "cannot connect to storage server",
        STS_ETLS => "TLS certificate verification failed",
        STS_ENOTSUP => "operation not supported",
        STS_E2BIG => "string too long",
        STS_EAGAIN => "operation still in progress, try again",
        STS_ECANCELED => "operation cancelled",
        _ => "unknown status",
    }
}
