//! Checked conversions between the C types of `ost-abi` and the engine's types. Every pointer
//! is null-checked and every fixed-size string must be NUL-terminated inside its array and
//! valid UTF-8, or the call fails with STS_EINVAL.
//!
//! The `unsafe fn`s here are the only places the plug-in reads through a host pointer. Each
//! states what its pointer must satisfy; the exports pass their arguments on under the caller
//! contract in the crate documentation, and the lifetimes they return are unbounded: an export
//! must not keep what they give past its own return.

use std::ffi::{c_char, c_void, CStr};

use ost_abi as abi;
use vast_ost_engine::{Credentials, Error, ErrorKind, ImageDef, ImageInfo, Result, Secret};

/// A C string argument.
///
/// # Safety
/// `p` is null or points to a NUL-terminated string that stays valid and unchanged for `'a`.
pub unsafe fn arg_str<'a>(p: *const c_char, what: &str) -> Result<&'a str> {
    // SAFETY: forwarded to the caller.
    unsafe { opt_str(p, what) }?.ok_or_else(|| Error::invalid(format!("{what} is NULL")))
}

/// An optional C string argument: `None` for NULL.
///
/// # Safety
/// As [`arg_str`].
pub unsafe fn opt_str<'a>(p: *const c_char, what: &str) -> Result<Option<&'a str>> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: `p` is not null, so by the caller's promise a NUL-terminated string valid for 'a.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str().map(Some).map_err(|_| Error::invalid(format!("{what} is not valid UTF-8")))
}
/// A string held in a fixed-size array.
pub fn array_str(a: &[c_char], what: &str) -> Result<String> {
    let bytes: &[u8] = cast_bytes(a);
    let end = bytes.iter().position(|&b| b == 0).ok_or_else(|| {
        Error::invalid(format!("{what} is not NUL-terminated within its {} bytes", a.len()))
    })?;
    std::str::from_utf8(&bytes[..end])
        .map(str::to_string)
        .map_err(|_| Error::invalid(format!("{what} is not valid UTF-8")))
}

fn cast_bytes(a: &[c_char]) -> &[u8] {
    // SAFETY: c_char is i8 or u8, of the size and alignment of u8 and valid for every bit
    // pattern; the new slice covers the same memory with the same lifetime.
    unsafe { std::slice::from_raw_parts(a.as_ptr().cast::<u8>(), a.len()) }
}

/// Copy `s` into a fixed-size array, NUL-terminated. Too long is an error for names
/// (`exact`), a truncation at a character boundary for descriptive text.
pub fn put_str(dst: &mut [c_char], s: &str, what: &str, exact: bool) -> Result<()> {
    let mut n = s.len();
    if n >= dst.len() {
        if exact {
            return Err(Error::new(
                ErrorKind::TooLong,
                format!("{what} ({n} bytes) does not fit {} bytes", dst.len()),
            ));
        }
        n = dst.len() - 1;
        while !s.is_char_boundary(n) {
            n -= 1;
        }
    }
    for (d, b) in dst.iter_mut().zip(s.as_bytes()[..n].iter()) {
        *d = *b as c_char;
    }
    dst[n..].fill(0);
    Ok(())
}

/// A required pointer argument.
///
/// # Safety
/// As [`opt_ref`].
pub unsafe fn arg_ref<'a, T>(p: *const T, what: &str) -> Result<&'a T> {
    // SAFETY: forwarded to the caller.
    unsafe { opt_ref(p) }.ok_or_else(|| Error::invalid(format!("{what} is NULL")))
}

/// An optional pointer argument (a filter, a session): `None` for NULL.
///
/// # Safety
/// `p` is null, or aligned and points to an initialised `T` that stays valid and is not
/// written by anyone for `'a`.
pub unsafe fn opt_ref<'a, T>(p: *const T) -> Option<&'a T> {
    // SAFETY: forwarded to the caller.
    unsafe { p.as_ref() }
}

/// A required out-pointer.
///
/// # Safety
/// As [`opt_out`].
pub unsafe fn arg_out<'a, T>(p: *mut T, what: &str) -> Result<&'a mut T> {
    // SAFETY: forwarded to the caller.
    unsafe { opt_out(p) }.ok_or_else(|| Error::invalid(format!("{what} is NULL")))
}

/// An optional out-pointer: `None` for NULL.
///
/// # Safety
/// `p` is null, or aligned and points to a `T` (initialised: the `ost-abi` structs are plain
/// data, any bytes will do) that nothing else reads or writes for `'a`.
pub unsafe fn opt_out<'a, T>(p: *mut T) -> Option<&'a mut T> {
    // SAFETY: forwarded to the caller.
    unsafe { p.as_mut() }
}

fn check_len(len: u64, what: &str) -> Result<usize> {
    if len == 0 {
        return Err(Error::invalid(format!("{what}: zero length")));
    }
    usize::try_from(len)
        .ok()
        .filter(|&l| l <= isize::MAX as usize)
        .ok_or_else(|| Error::invalid(format!("{what}: length {len} is too large")))
}

/// A caller's input buffer.
///
/// # Safety
/// `p` is null, or valid for reads of `len` initialised bytes that nobody writes for `'a`.
pub unsafe fn arg_buf<'a>(p: *const c_void, len: u64, what: &str) -> Result<&'a [u8]> {
    let len = check_len(len, what)?;
    if p.is_null() {
        return Err(Error::invalid(format!("{what}: buffer is NULL")));
    }
    // SAFETY: not null, readable for `len` bytes (the caller's promise); `check_len` kept
    // `len` within `isize::MAX`; `u8` has no alignment or validity requirement.
    Ok(unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) })
}

/// A caller's output buffer.
///
/// # Safety
/// `p` is null, or valid for reads and writes of `len` bytes that nothing else reads or
/// writes for `'a`. (The plug-in never reads them before writing, but a `&mut [u8]` needs the
/// bytes initialised: a C buffer from `malloc` counts as such here, as it does in C.)
pub unsafe fn arg_buf_mut<'a>(p: *mut c_void, len: u64, what: &str) -> Result<&'a mut [u8]> {
    let len = check_len(len, what)?;
    if p.is_null() {
        return Err(Error::invalid(format!("{what}: buffer is NULL")));
    }
    // SAFETY: not null, writable for `len` bytes and not aliased (the caller's promise);
    // `check_len` kept `len` within `isize::MAX`; `u8` has no alignment requirement.
    Ok(unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), len) })
}

/// What `tpconfig` stored, as the engine takes it.
pub fn credentials(c: &abi::sts_cred_t) -> Result<Credentials> {
    Ok(Credentials {
        user: array_str(&c.cr_user, "credential user")?,
        password: Secret::new(array_str(&c.cr_password, "credential password")?),
    })
}

pub fn image_def(d: &abi::sts_image_def_t) -> Result<ImageDef> {
    Ok(ImageDef {
        basename: array_str(&d.img_basename, "image basename")?,
        date: array_str(&d.img_date, "image date")?,
        policy: array_str(&d.img_policy, "image policy")?,
        client: array_str(&d.img_client, "image client")?,
        copy_number: d.img_copy_number,
        flags: d.img_flags,
        master_server: array_str(&d.img_master_server, "image master server")?,
    })
}

pub fn put_image_def(dst: &mut abi::sts_image_def_t, d: &ImageDef) -> Result<()> {
    put_str(&mut dst.img_basename, &d.basename, "image basename", true)?;
    put_str(&mut dst.img_date, &d.date, "image date", true)?;
    put_str(&mut dst.img_policy, &d.policy, "image policy", true)?;
    put_str(&mut dst.img_client, &d.client, "image client", true)?;
    put_str(&mut dst.img_master_server, &d.master_server, "image master server", true)?;
    dst.img_copy_number = d.copy_number;
    dst.img_flags = d.flags;
    Ok(())
}

pub fn put_image_info(dst: &mut abi::sts_image_info_t, i: &ImageInfo) -> Result<()> {
    put_image_def(&mut dst.imo_def, &i.def)?;
    put_str(&mut dst.imo_server, &i.server, "server name", true)?;
    put_str(&mut dst.imo_lsu.sln_name, &i.lsu, "LSU name", true)?;
    dst.imo_size = i.size;
    dst.imo_flags = i.flags;
    dst.imo_meta_size = i.meta_size;
    dst.imo_create_time = i.created;
    dst.imo_update_time = i.updated;
    dst.imo_worm_until = i.worm_until;
    Ok(())
}
