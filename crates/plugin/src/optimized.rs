//! The exports of optimized synthetics and extent-based optimized duplication: placing ranges
//! of earlier images into an image being written without copying them, and copying extents to
//! a target server. Signatures are the project's ([project]: the SDK's are not public), in the
//! style of the rest of the interface.

use std::ffi::{c_char, c_int};

use ost_abi::*;
use tracing::info;
use vast_ost_engine::{Error, ErrorKind};

use crate::boundary::ffi;
use crate::convert::*;
use crate::handles::{self, lock, Object};
use crate::{engine, with_image};

/// Place `length` bytes at `src_offset` of the complete image `src_img` at `dst_offset` of
/// `image` (open for writing, on the same LSU), without copying them: the new image references
/// the source's data (NetBackup's optimized synthetics, `bp_sts_write_and_include_image`).
/// Reads of the range return exactly the source's bytes, also after the source is deleted;
/// holes of the source are holes here. Writes after the range go on as usual.
///
/// Returns `STS_EOK`, `STS_EINVAL` (NULL, zero length, range past the source's end or
/// overflowing), `STS_EHANDLE`, `STS_ESTATE` (source not complete, or `image` open for
/// reading), `STS_ENOENT` (no such source image in this LSU, or it is being deleted),
/// `STS_ESYSCALL`.
#[no_mangle]
pub unsafe extern "C" fn stspi_include_in_image(
    image: stsp_image_handle_t,
    src_img: *const sts_image_def_t,
    src_offset: sts_uint64_t,
    length: sts_uint64_t,
    dst_offset: sts_uint64_t,
) -> c_int {
    ffi!("stspi_include_in_image", |ctx| {
        // SAFETY: `src_img` is NULL or valid for reads (caller contract, crate docs).
        let src = image_def(unsafe { arg_ref(src_img, "source image definition") }?)?;
        with_image(image, ctx, |i| i.include(&src, src_offset, length, dst_offset))
    })
}

/// Open `target_name` as the target of an optimized duplication from the open server
/// `server`. The same name as `server` (compared without regard to case) gives a second
/// handle on that server (`cred` may then be NULL); another name is opened with `cred` like
/// `stspi_open_server`. Images created on the target's LSUs receive extents with
/// `stspi_copy_extent`.
///
/// Returns `STS_EOK`, `STS_EINVAL`, `STS_EHANDLE`, and what `stspi_open_server` returns.
#[no_mangle]
pub unsafe extern "C" fn stspi_open_target_server(
    server: stsp_server_handle_t,
    target_name: *const c_char,
    cred: *const sts_cred_t,
    target: *mut stsp_server_handle_t,
) -> c_int {
    ffi!("stspi_open_target_server", |ctx| {
        // SAFETY: `target` is NULL or valid for writes (caller contract, crate docs).
        let out = unsafe { arg_out(target, "target") }?;
        // SAFETY: `target_name` is NULL or a NUL-terminated string (caller contract, crate docs).
        let name = unsafe { arg_str(target_name, "target server name") }?;
        let source = handles::server(server as usize)?;
        ctx.server = source.name().to_string();
        let t = if source.name().eq_ignore_ascii_case(name) {
            source
        } else {
            // SAFETY: `cred` is NULL or valid for reads (caller contract, crate docs).
            let creds = credentials(unsafe { arg_ref(cred, "credentials") }?)?;
            engine()?.open_server(name, &creds)?
        };
        info!(server = %ctx.server, "target server {} opened for optimized duplication", t.name());
        *out = handles::insert(Object::Server(t, handles::Role::Target)) as stsp_server_handle_t;
        Ok(())
    })
}

/// Close a target server handle. Images created through it stay open until closed. A handle
/// from `stspi_open_server` is `STS_EHANDLE` here (it stays open; `stspi_close_server` closes
/// it).
///
/// Returns `STS_EOK`, `STS_EHANDLE`.
#[no_mangle]
pub unsafe extern "C" fn stspi_close_target_server(target: stsp_server_handle_t) -> c_int {
    ffi!("stspi_close_target_server", |ctx| {
        let s = handles::take_server_if(target as usize, handles::Role::Target, |_| Ok(()))?;
        ctx.server = s.name().to_string();
        Ok(())
    })
}

/// Copy `length` bytes at `from_offset` of the image open for reading in `from_image` (a
/// complete image) to `to_offset` of the image open for writing in `to_image`, in
/// NetBackup's 256 KB units or larger. Within one LSU the target references the source's data
/// (no copy; `[[server]] reference_copies = false` makes it a physical copy); between LSUs of
/// one storage server each source piece the extents touch is copied once inside the storage;
/// between storage servers the bytes are streamed through the plug-in.
///
/// Returns `STS_EOK`, `STS_EINVAL` (NULL, zero length, range past the source's end, the same
/// handle twice), `STS_EHANDLE`, `STS_ESTATE` (source not complete, or a handle open the other
/// way), `STS_ENOENT`, `STS_ENOSPC`, `STS_ESYSCALL`.
#[no_mangle]
pub unsafe extern "C" fn stspi_copy_extent(
    to_image: stsp_image_handle_t,
    from_image: stsp_image_handle_t,
    from_offset: sts_uint64_t,
    length: sts_uint64_t,
    to_offset: sts_uint64_t,
) -> c_int {
    ffi!("stspi_copy_extent", |ctx| {
        // Both handles resolved first: a bad handle is STS_EHANDLE even when given twice.
        let to = handles::image(to_image as usize)?;
        let from = handles::image(from_image as usize)?;
        if to_image == from_image {
            return Err(Error::invalid("copy_extent: source and target are the same image handle"));
        }
        // Both locked, always in the order of their handles: two copies between the same pair
        // in opposite directions cannot deadlock.
        let (mut t, mut f) = if (to_image as usize) < (from_image as usize) {
            let t = lock(&to);
            (t, lock(&from))
        } else {
            let f = lock(&from);
            (lock(&to), f)
        };
        ctx.set(t.server(), t.lsu(), t.name());
        t.copy_extent(&mut f, from_offset, length, to_offset).map_err(|e| match e.kind() {
            ErrorKind::BadHandle => e,
            _ => e.context(format!("copying from image '{}' in LSU '{}'", f.name(), f.lsu())),
        })
    })
}
