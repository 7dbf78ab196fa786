//! The commands other than `demo`: `bpstsinfo`-like queries and data movers (backup, restore,
//! verify, copy, delete), each a thin sequence of plug-in calls with readable output.

use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use indicatif::ProgressBar;
use vast_ost_host::abi::*;
use vast_ost_host::{get_str, Plugin};

use crate::fmt::{flag_names, human, human_exact, image_date, rate, utc, Table};
use crate::pattern::first_difference;
use crate::progress;
use crate::session::{self, image_state, Image, Session, IMAGE_FLAGS};

const SERVER_FLAGS: &[(u64, &str)] = &[
    (STS_SRV_DISK, "DISK"),
    (STS_SRV_CRED, "CRED"),
    (STS_SRV_COPY_IMAGE, "COPY_IMAGE"),
    (STS_SRV_WRITE_RANDOM, "WRITE_RANDOM"),
    (STS_SRV_IMAGE_META, "IMAGE_META"),
    (STS_SRV_OPTIMIZED_IMAGE, "OPTIMIZED_IMAGE"),
    (STS_SRV_COPY_EXTENT, "COPY_EXTENT"),
    (STS_SRV_NFS, "NFS"),
    (STS_SRV_S3, "S3"),
];

const LSU_FLAGS: &[(u64, &str)] = &[
    (STS_LSUF_DISK, "DISK"),
    (STS_LSUF_OPTIMIZED_IMAGE, "OPTIMIZED_IMAGE"),
    (STS_LSUF_COPY_EXTENT, "COPY_EXTENT"),
    (STS_LSUF_WORM, "WORM"),
    (STS_LSUF_NFS, "NFS"),
    (STS_LSUF_S3, "S3"),
];

pub fn server_flags(f: u64) -> String {
    flag_names(f, SERVER_FLAGS)
}

/// `bpstsinfo -pi`. Needs no `stspi_init` (the contract says so), hence no config either.
pub fn plugin_info(path: &Path) -> Result<()> {
    let p = Plugin::load(path)
        .map_err(|e| anyhow::anyhow!("{e}; build it with `cargo build`, or pass --plugin PATH"))?;
    let i = p.plugin_info().context("reading plug-in information (stspi_get_plugin_info)")?;
    println!("Plugin Path: {}", path.display());
    println!("Plugin Name: {}", get_str(&i.pi_name));
    println!("Prefix: {}", get_str(&i.pi_prefix));
    println!("Label: {}", get_str(&i.pi_label));
    println!("Build Version: {}", i.pi_build_version);
    println!("Build Version Minor: {}", i.pi_build_version_minor);
    println!("Operating Version: {}", i.pi_operating_version);
    println!("Vendor Version: {}", get_str(&i.pi_vendor_version));
    Ok(())
}

/// `bpstsinfo -si`.
pub fn server_info(s: &Session) -> Result<()> {
    let i = s
        .p()
        .server_prop(s.handle)
        .with_context(|| format!("reading properties of server '{}'", s.server))?;
    println!("Server Name: {}", get_str(&i.srv_server));
    println!("Flags: {}", server_flags(i.srv_flags));
    println!("Version: {}", get_str(&i.srv_version));
    println!("GUID: {}", or_none(get_str(&i.srv_guid)));
    println!("Interfaces: {}", or_none(get_str(&i.srv_interfaces)));
    let max = if i.srv_maxconnect == 0 { "0 (no limit)".to_string() } else { i.srv_maxconnect.to_string() };
    println!("Max Connections: {max}");
    println!("Open Connections: {}", i.srv_nconnect);
    Ok(())
}

fn or_none(s: String) -> String {
    if s.is_empty() {
        "(none)".into()
    } else {
        s
    }
}

/// `bpstsinfo -li`: one LSU, or every LSU of the server.
pub fn lsu_info(s: &Session, lsu: Option<&str>) -> Result<()> {
    let names = match lsu {
        Some(l) => vec![l.to_string()],
        None => {
            s.p().lsu_names(s.handle).with_context(|| format!("listing the LSUs of server '{}'", s.server))?
        }
    };
    if names.is_empty() {
        println!("Server '{}' has no LSUs (on NFS, each LSU is a directory under the mount).", s.server);
    }
    for (n, name) in names.iter().enumerate() {
        let l = s.lsu(name)?;
        let i = s.p().lsu_prop(&l).with_context(|| format!("reading properties of LSU '{name}'"))?;
        if n > 0 {
            println!();
        }
        println!("LSU: {}", get_str(&i.lsu_name.sln_name));
        println!("  Server: {}", get_str(&i.lsu_server));
        println!("  Description: {}", or_none(get_str(&i.lsu_description)));
        println!("  Label: {}", or_none(get_str(&i.lsu_label)));
        println!("  Flags: {}", flag_names(i.lsu_flags, LSU_FLAGS));
        println!("  Capacity: {}", human_exact(i.lsu_capacity));
        println!("  Capacity (physical): {}", human_exact(i.lsu_capacity_phys));
        println!("  Used: {}", human_exact(i.lsu_used));
        println!("  Used (physical): {}", human_exact(i.lsu_used_phys));
        println!("  Available: {}", human_exact(i.lsu_capacity.saturating_sub(i.lsu_used)));
        println!("  Images: {}", i.lsu_images);
        println!("  Max Transfer: {}", human_exact(i.lsu_max_transfer));
        println!("  Block Size: {}", i.lsu_block_size);
        if i.lsu_flags & STS_LSUF_WORM != 0 {
            let max = if i.lsu_worm_max == 0 { "none".to_string() } else { format!("{} s", i.lsu_worm_max) };
            println!("  WORM Retention: min {} s, max {max}", i.lsu_worm_min);
        }
    }
    Ok(())
}

/// A table of the images of an LSU.
pub fn image_list(s: &Session, lsu: &str, prefix: &str) -> Result<()> {
    let images = s.images(lsu, prefix)?;
    print!("{}", image_table(&images));
    let filter = if prefix.is_empty() { String::new() } else { format!(" starting with '{prefix}'") };
    println!("{} image(s) in LSU '{lsu}'{filter}", images.len());
    Ok(())
}

pub fn image_table(images: &[sts_image_info_t]) -> String {
    let mut t = Table::new(&[
        ("NAME", false),
        ("DATE", false),
        ("POLICY", false),
        ("SIZE", true),
        ("BYTES", true),
        ("STATE", false),
    ]);
    for i in images {
        t.row(vec![
            get_str(&i.imo_def.img_basename),
            get_str(&i.imo_def.img_date),
            get_str(&i.imo_def.img_policy),
            human(i.imo_size),
            i.imo_size.to_string(),
            image_state(i.imo_flags),
        ]);
    }
    t.render()
}

pub fn image_info(s: &Session, lsu: &str, image: &str) -> Result<()> {
    let i = s.image_info(lsu, image)?;
    let d = &i.imo_def;
    println!("Image: {}", get_str(&d.img_basename));
    println!("  Server: {}", get_str(&i.imo_server));
    println!("  LSU: {}", get_str(&i.imo_lsu.sln_name));
    println!("  Date: {}", image_date(&get_str(&d.img_date)));
    println!("  Policy: {}", or_none(get_str(&d.img_policy)));
    println!("  Client: {}", or_none(get_str(&d.img_client)));
    println!("  Copy Number: {}", d.img_copy_number);
    println!("  Master Server: {}", or_none(get_str(&d.img_master_server)));
    println!("  Size: {}", human_exact(i.imo_size));
    println!("  State: {}", image_state(i.imo_flags));
    println!("  Flags: {}", flag_names(u64::from(i.imo_flags), IMAGE_FLAGS));
    println!("  Metadata: {}", human_exact(i.imo_meta_size));
    println!("  Created: {} ({})", utc(i.imo_create_time), i.imo_create_time);
    println!("  Updated: {} ({})", utc(i.imo_update_time), i.imo_update_time);
    if i.imo_worm_until != 0 {
        let state =
            if i.imo_worm_until > vast_ost_engine::util::now_secs() { "locked" } else { "lock ran out" };
        println!("  WORM Lock: {state} until {} ({})", utc(i.imo_worm_until), i.imo_worm_until);
    }
    Ok(())
}

/// `None` or `-` means stdin/stdout.
fn is_std(p: &Option<PathBuf>) -> bool {
    !matches!(p.as_deref(), Some(p) if p != Path::new("-"))
}

/// Fill `buf` from `r` until it is full or the input ends: NetBackup writes whole blocks, and
/// a pipe hands over whatever it has.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

pub struct BackupArgs<'a> {
    pub lsu: &'a str,
    pub image: &'a str,
    pub input: Option<PathBuf>,
    pub block: usize,
    pub date: String,
    pub policy: &'a str,
}

/// Write a file or stdin into a new image, block by block, and close it complete. On any
/// error the image is closed incomplete (kept pending, as after a failed NetBackup job).
pub fn backup(s: &Session, a: &BackupArgs) -> Result<()> {
    let (mut input, src, len): (Box<dyn Read>, String, Option<u64>) = if is_std(&a.input) {
        if io::stdin().is_terminal() {
            bail!("no input FILE given and stdin is a terminal: give a FILE or pipe the data in");
        }
        (Box::new(io::stdin().lock()), "stdin".into(), None)
    } else {
        let path = a.input.as_deref().unwrap_or(Path::new("-"));
        let f = File::open(path).with_context(|| format!("opening input {}", path.display()))?;
        if f.metadata().is_ok_and(|m| m.is_dir()) {
            bail!("input {} is a directory", path.display());
        }
        let len = f.metadata().ok().filter(|m| m.is_file()).map(|m| m.len());
        (Box::new(f), path.display().to_string(), len)
    };
    let def = session::def(a.image, &a.date, a.policy)?;
    let start = Instant::now();
    let img = s.create(a.lsu, &def)?;
    let pb = progress::bytes(len, format!("backup {}", a.image));
    let mut buf = vec![0u8; a.block];
    let mut off = 0u64;
    let res = (|| -> Result<()> {
        loop {
            let n =
                read_full(&mut input, &mut buf).with_context(|| format!("reading {src} at offset {off}"))?;
            if n == 0 {
                return Ok(());
            }
            img.write(&buf[..n], off)?;
            off += n as u64;
            pb.inc(n as u64);
            if n < buf.len() {
                return Ok(());
            }
        }
    })();
    pb.finish_and_clear();
    if let Err(e) = res {
        // After a failed write the plug-in may return that failure again from the close; the
        // image stays pending at its last commit either way.
        let msg = match img.close(false) {
            Ok(()) => format!("backup of image '{}' failed; it was closed incomplete (pending)", a.image),
            Err(c) => format!(
                "backup of image '{}' failed; it was closed incomplete (pending), the close returning {}",
                a.image,
                crate::session::status_of(&c).map_or_else(|| format!("{c:#}"), |s| s.to_string())
            ),
        };
        return Err(e.context(msg));
    }
    img.close(true)?;
    let took = start.elapsed();
    // The plug-in's own account must match what was sent.
    let info = s.image_info(a.lsu, a.image)?;
    if info.imo_size != off || info.imo_flags & STS_II_IMAGE_CREATED == 0 {
        bail!(
            "contract mismatch: image '{}' was written with {off} bytes and closed complete, but the plug-in reports {} bytes, state {}",
            a.image,
            info.imo_size,
            image_state(info.imo_flags)
        );
    }
    println!(
        "backed up {} from {src} to image '{}' in LSU '{}': {}",
        human_exact(off),
        a.image,
        a.lsu,
        rate(off, took)
    );
    Ok(())
}

/// The size of an image opened for reading, with a warning when it is not complete: the plug-in
/// lets a pending image be read (its last committed state), which may not be what was meant.
fn readable_size(img: &Image) -> Result<u64> {
    let info = img.info()?;
    if info.imo_flags & STS_II_IMAGE_CREATED == 0 {
        eprintln!(
            "vast-ost: warning: image '{}' in LSU '{}' is {}, not complete: reading its last committed {} bytes",
            img.name,
            img.lsu,
            image_state(info.imo_flags & !STS_II_BUSY_READ),
            info.imo_size
        );
    }
    Ok(info.imo_size)
}

/// Read a whole open image of `size` bytes in `buf`-sized reads, handing each piece to `sink`
/// with its offset, then check that the plug-in reports the end where its size says. Returns
/// the time spent inside the plug-in's read calls.
pub fn read_all(
    img: &Image,
    size: u64,
    buf: &mut [u8],
    pb: &ProgressBar,
    mut sink: impl FnMut(u64, &[u8]) -> Result<()>,
) -> Result<Duration> {
    let mut off = 0u64;
    let mut in_plugin = Duration::ZERO;
    while off < size {
        let want = buf.len().min((size - off) as usize);
        let t = Instant::now();
        let n = img.read(&mut buf[..want], off)?;
        in_plugin += t.elapsed();
        if n == 0 {
            bail!(
                "contract mismatch: reading image '{}' returned 0 bytes at offset {off}, but its size is {size}",
                img.name
            );
        }
        sink(off, &buf[..n])?;
        off += n as u64;
        pb.inc(n as u64);
    }
    let n = img
        .read(&mut buf[..1], size)
        .with_context(|| format!("reading at the end of image '{}'", img.name))?;
    if n != 0 {
        bail!(
            "contract mismatch: image '{}' has size {size}, but a read at that offset returned {n} byte(s)",
            img.name
        );
    }
    Ok(in_plugin)
}

/// Read an image to a file (written beside it, renamed into place only when complete) or to
/// stdout.
pub fn restore(s: &Session, lsu: &str, image: &str, output: Option<PathBuf>, block: usize) -> Result<()> {
    let to_stdout = is_std(&output);
    if to_stdout && io::stdout().is_terminal() {
        bail!("no output FILE given and stdout is a terminal: give a FILE or redirect stdout");
    }
    let img = s.open_read(lsu, image)?;
    let size = readable_size(&img)?;
    let start = Instant::now();
    let (mut out, tmp, dst): (Box<dyn Write>, Option<tempfile::NamedTempFile>, String) = if to_stdout {
        (Box::new(io::stdout().lock()), None, "stdout".into())
    } else {
        let path = output.as_deref().unwrap_or(Path::new("-"));
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        // 0666 less the umask, as any new file: not tempfile's private 0600.
        let tmp = tempfile::Builder::new()
            .prefix(".vast-ost-restore-")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .tempfile_in(dir)
            .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
        let f = tmp.reopen().with_context(|| format!("opening {}", tmp.path().display()))?;
        (Box::new(f), Some(tmp), path.display().to_string())
    };
    let pb = progress::bytes(Some(size), format!("restore {image}"));
    let mut buf = vec![0u8; block];
    let res = read_all(&img, size, &mut buf, &pb, |off, data| {
        out.write_all(data).with_context(|| format!("writing {dst} at offset {off}"))
    });
    pb.finish_and_clear();
    res?;
    out.flush().with_context(|| format!("writing {dst}"))?;
    drop(out);
    img.close(false)?;
    if let (Some(tmp), Some(path)) = (tmp, output.as_deref()) {
        tmp.as_file().sync_all().with_context(|| format!("syncing {dst}"))?;
        tmp.persist(path).with_context(|| format!("renaming the restored data to {dst}"))?;
    }
    let msg = format!(
        "restored {} from image '{image}' in LSU '{lsu}' to {dst}: {}",
        human_exact(size),
        rate(size, start.elapsed())
    );
    if to_stdout {
        eprintln!("{msg}");
    } else {
        println!("{msg}");
    }
    Ok(())
}

/// Read the whole image (the plug-in checks each piece's stored CRC32C on such reads), report
/// its CRC32C, and optionally compare it with a file.
pub fn verify(s: &Session, lsu: &str, image: &str, against: Option<&Path>, block: usize) -> Result<()> {
    let img = s.open_read(lsu, image)?;
    let size = readable_size(&img)?;
    let mut file = match against {
        Some(p) => Some(File::open(p).with_context(|| format!("opening {}", p.display()))?),
        None => None,
    };
    let start = Instant::now();
    let pb = progress::bytes(Some(size), format!("verify {image}"));
    let mut buf = vec![0u8; block];
    let mut theirs = vec![0u8; block];
    let mut crc = 0u32;
    // First difference with the file, and the file's length when it ended early.
    let mut diff: Option<u64> = None;
    let res = read_all(&img, size, &mut buf, &pb, |off, data| {
        crc = crc32c::crc32c_append(crc, data);
        if let (Some(f), None) = (file.as_mut(), diff) {
            let n = read_full(f, &mut theirs[..data.len()]).context("reading the file to compare")?;
            if let Some(i) = first_difference(data, &theirs[..n]) {
                diff = Some(off + i as u64);
            } else if n < data.len() {
                diff = Some(off + n as u64);
            }
        }
        Ok(())
    });
    pb.finish_and_clear();
    res?;
    img.close(false)?;
    let took = start.elapsed();
    if let (Some(f), Some(p)) = (file.as_mut(), against) {
        // Equal so far: the file must end where the image does.
        if diff.is_none() && read_full(f, &mut theirs[..1]).context("reading the file to compare")? != 0 {
            diff = Some(size);
        }
        if let Some(at) = diff {
            let flen = std::fs::metadata(p).map(|m| m.len().to_string()).unwrap_or_else(|_| "?".into());
            bail!(
                "MISMATCH: image '{image}' in LSU '{lsu}' differs from {} at byte offset {at} (image {size} bytes, file {flen} bytes)",
                p.display()
            );
        }
    }
    let vs = against.map(|p| format!(", identical to {}", p.display())).unwrap_or_default();
    println!(
        "OK image '{image}' in LSU '{lsu}': {}, crc32c 0x{crc:08x}{vs} ({})",
        human_exact(size),
        rate(size, took)
    );
    Ok(())
}

/// Copy inside the storage (`stspi_copy_image`). The target gets the source's definition
/// (date, policy, client) under its new name, as a NetBackup duplication would.
pub fn copy(s: &Session, from_lsu: &str, from_image: &str, to_lsu: &str, to_image: &str) -> Result<()> {
    let src = s.image_info(from_lsu, from_image)?;
    let mut to_def = src.imo_def;
    let named = session::def(to_image, "", "")?;
    to_def.img_basename = named.img_basename;
    let (from, to) = (s.lsu(from_lsu)?, s.lsu(to_lsu)?);
    let start = Instant::now();
    s.p().copy_image(&to, &to_def, &from, &src.imo_def).with_context(|| {
        format!("copying image '{from_image}' in LSU '{from_lsu}' to image '{to_image}' in LSU '{to_lsu}'")
    })?;
    let took = start.elapsed();
    println!(
        "copied image '{from_image}' in LSU '{from_lsu}' to image '{to_image}' in LSU '{to_lsu}': {} in {:.3} s",
        human_exact(src.imo_size),
        took.as_secs_f64()
    );
    Ok(())
}

/// Delete an image. The plug-in treats a missing image as deleted (expiry may run twice); a
/// person typing a name wants to hear about a typo, so that is checked first unless `force`.
pub fn delete(s: &Session, lsu: &str, image: &str, force: bool) -> Result<()> {
    if !force {
        s.image_info(lsu, image)?;
    }
    let l = s.lsu(lsu)?;
    let def = session::def(image, "", "")?;
    s.p().delete_image(&l, &def).with_context(|| format!("deleting image '{image}' in LSU '{lsu}'"))?;
    println!("deleted image '{image}' from LSU '{lsu}'");
    Ok(())
}
