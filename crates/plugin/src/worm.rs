//! The WORM export: NetBackup setting or extending an image's retention lock ("Setting OST
//! Worm locks on images"). The SDK's function is not public; the signature is the project's
//! ([project]), in the style of the rest of the interface.

use std::ffi::c_int;

use ost_abi::*;
use tracing::info;

use crate::boundary::ffi;
use crate::convert::*;
use crate::lsu_arg;

/// Lock the complete image `img` of `lsu` until `until` (seconds since the epoch), or extend
/// its lock; a lock is never shortened (an earlier `until` than the current lock leaves it as
/// it is). The storage enforces the lock (S3 Object Lock on every object of the image, VAST
/// file retention on NFS) in the view's retention mode: until then it refuses to delete or
/// change the image, whoever asks. Only on LSUs with `STS_LSUF_WORM`.
///
/// Returns `STS_EOK`, `STS_EINVAL`, `STS_EHANDLE`, `STS_ENOENT` (no such LSU or image),
/// `STS_ESTATE` (image not complete), `STS_ENOTSUP` (the LSU is not WORM),
/// `STS_EWORM_MIN` (`until` is less than the LSU's `lsu_worm_min` from now, or not in the
/// future), `STS_EWORM_MAX` (more than `lsu_worm_max` from now), `STS_EACCESS` (the storage
/// refused the lock, for one because it would shorten a compliance lock), `STS_ESYSCALL`.
#[no_mangle]
pub unsafe extern "C" fn stspi_set_image_retention(
    lsu: *const sts_lsu_t,
    img: *const sts_image_def_t,
    until: sts_uint64_t,
) -> c_int {
    ffi!("stspi_set_image_retention", |ctx| {
        // SAFETY: `lsu` is NULL or an `sts_lsu_t` valid for reads (caller contract, crate docs).
        let (s, lsu) = unsafe { lsu_arg(lsu, "LSU", ctx) }?;
        // SAFETY: `img` is NULL or valid for reads (caller contract, crate docs).
        let def = image_def(unsafe { arg_ref(img, "image definition") }?)?;
        ctx.image = def.basename.clone();
        s.set_image_retention(&lsu, &def, until)?;
        info!(server = %s.name(), lsu = %lsu, image = %ctx.image, until, "image retention lock set");
        Ok(())
    })
}
