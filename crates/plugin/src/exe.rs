//! `libstspiVastDataMT.so -version`: the shared object is also a program, as `libc.so.6` is.
//!
//! Two pieces make it one (x86_64 Linux only): an `.interp` section naming the dynamic loader,
//! which the linkers turn into a `PT_INTERP` header, and an ELF entry point (`-e` in
//! `build.rs`) that is a hidden symbol, so the dynamic symbol table still holds only the
//! `stspi_*` exports and `dlopen` never sees it. Run as a program, the kernel starts the loader,
//! the loader maps the `.so` and its libraries and jumps to [`entry`] with the process stack:
//! no `main`, no Rust runtime set-up (libc itself is initialised by the loader). So the code
//! here reads its arguments from the stack (x86_64 SysV ABI: `argc`, then the `argv` pointers),
//! writes with `write(2)` and leaves with `_exit(2)`.

use std::ffi::{c_char, CStr};

use ost_abi::sts_plugin_info_t;
use vast_ost_engine::version;

use crate::convert::array_str;

/// The dynamic loader the kernel starts when the `.so` is run (`PT_INTERP`). Read by the
/// `-version` output, which also keeps the linker from discarding the section.
#[used]
#[cfg_attr(not(test), link_section = ".interp")]
static INTERP: [u8; 28] = *b"/lib64/ld-linux-x86-64.so.2\0";

// The entry point: clear the frame pointer (the outermost frame), pass the stack pointer (it
// points at argc) and call `entry` on a 16-byte aligned stack. `.hidden`: global for the
// linker's `-e`, absent from the dynamic symbol table.
#[cfg(not(test))]
std::arch::global_asm!(
    ".globl vast_ost_so_entry",
    ".hidden vast_ost_so_entry",
    ".type vast_ost_so_entry, @function",
    "vast_ost_so_entry:",
    "xor ebp, ebp",
    "mov rdi, rsp",
    "and rsp, -16",
    "call {entry}",
    "ud2",
    entry = sym entry,
);

/// What the program prints for `args` (its arguments after the program name), and its exit
/// status.
fn answer(program: &str, args: &[&str]) -> (String, i32) {
    match args {
        [] | ["-version" | "--version" | "-v"] => (version_text(), 0),
        ["-help" | "--help" | "-h"] => (help(program), 0),
        _ => (format!("{program}: unknown option {:?}\n{}", args[0], help(program)), 2),
    }
}

fn help(program: &str) -> String {
    format!(
        "{program}: the VAST Data OpenStorage (OST) plug-in for NetBackup, a shared library that\n\
         NetBackup's media-server processes (bptm, bpdm, bpstsinfo, nbrmms) load from\n\
         /usr/openv/lib/ost-plugins/ to serve storage servers named VastData:<cluster>.\n\
         It is not run by hand except to say which build it is.\n\n\
         usage: {program} -version   plug-in name, version and build (git commit, date, target, glibc)\n       \
         {program} -help      this text\n\n\
         Configuration: /usr/openv/lib/ost-plugins/vast-ost.toml (or $VAST_OST_CONFIG).\n\
         Checks: vast-ost doctor VastData:<cluster>.\n"
    )
}

/// The `-version` text: the build line, then what `stspi_get_plugin_info` reports, with the
/// labels `vast-ost plugin-info` (and `bpstsinfo -pi`) use.
fn version_text() -> String {
    // SAFETY: sts_plugin_info_t is plain data (integers and char arrays): all-zero is valid.
    let mut info: sts_plugin_info_t = unsafe { std::mem::zeroed() };
    if let Err(e) = crate::fill_plugin_info(&mut info) {
        return format!("{}\nplug-in information unavailable: {e}\n", version::describe());
    }
    let s = |a: &[c_char]| array_str(a, "field").unwrap_or_default();
    let loader = CStr::from_bytes_until_nul(&INTERP).map(|c| c.to_string_lossy()).unwrap_or_default();
    format!(
        "{}\nPlugin Name: {}\nPrefix: {}\nLabel: {}\nBuild Version: {}\nBuild Version Minor: {}\n\
         Operating Version: {}\nVendor Version: {}\nBuild: {}\nLoader: {loader}\n",
        version::describe(),
        s(&info.pi_name),
        s(&info.pi_prefix),
        s(&info.pi_label),
        info.pi_build_version,
        info.pi_build_version_minor,
        info.pi_operating_version,
        s(&info.pi_vendor_version),
        version::BUILD,
    )
}

#[cfg(not(test))]
/// Write all of `bytes` to `fd`; errors end the attempt (nothing else to tell them to).
fn write_all(fd: i32, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a live slice, valid for reads of its length.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        if n <= 0 {
            return;
        }
        bytes = &bytes[n as usize..];
    }
}

#[cfg(not(test))]
/// Called by `vast_ost_so_entry` with the initial stack pointer.
///
/// # Safety
/// `sp` is the process's initial stack pointer as the kernel left it: `argc`, then `argc`
/// pointers to NUL-terminated strings.
unsafe extern "C" fn entry(sp: *const usize) -> ! {
    // SAFETY: per the function's contract, `sp` points at argc and the argv array follows.
    let argc = unsafe { *sp };
    let argv = sp.wrapping_add(1).cast::<*const c_char>();
    let arg = |i: usize| {
        // SAFETY: i < argc, so argv[i] is a pointer to a NUL-terminated string (contract).
        let p = unsafe { *argv.add(i) };
        // SAFETY: as above; the strings live as long as the process.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    };
    let all: Vec<String> = (0..argc).map(arg).collect();
    // The file name, not the path it was run by: the usage lines stay readable.
    let program = all.first().and_then(|p| p.rsplit('/').next()).unwrap_or("libstspiVastDataMT.so");
    let args: Vec<&str> = all.iter().skip(1).map(String::as_str).collect();
    let (text, code) = answer(program, &args);
    write_all(if code == 0 { 1 } else { 2 }, text.as_bytes());
    // SAFETY: ends the process; nothing of it is used afterwards.
    unsafe { libc::_exit(code) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        let (v, code) = answer("x.so", &["-version"]);
        assert_eq!(code, 0);
        assert!(v.starts_with(&version::describe()) && v.contains("Plugin Name: libstspiVastDataMT"), "{v}");
        assert!(v.contains("Loader: /lib64/ld-linux-x86-64.so.2"), "{v}");
        assert_eq!(answer("x.so", &[]).0, v);
        let (h, code) = answer("x.so", &["-help"]);
        assert!(code == 0 && h.contains("OpenStorage") && h.contains("-version"), "{h}");
        let (e, code) = answer("x.so", &["-bogus"]);
        assert!(code == 2 && e.contains("unknown option \"-bogus\""), "{e}");
    }
}
