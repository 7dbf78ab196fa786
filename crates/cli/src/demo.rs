//! `vast-ost demo`: the plug-in's whole job with no setup by hand. A VAST simulator started
//! in this process (VMS REST over TLS, its views standing for the NFS mount), two LSUs
//! provisioned on it through VMS as an admin would, a config naming only the VMS address and
//! the mount, then one NetBackup-style backup (header, two data fragments, TIR
//! and image metadata images) written, listed, restored and checked byte for byte, copied,
//! checked again and deleted, all through the C interface. The data comes from a seekable
//! generator, so memory stays at a few blocks whatever `--size` is, and the peak RSS printed
//! at the end shows it.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use indicatif::ProgressBar;
use vast_ost_host::abi::*;
use vast_ost_host::get_str;

use crate::commands::{image_table, read_all, server_flags};
use crate::config_file::{ConfigFile, Log, Nfs, Server, Vms, S3};
use crate::fmt::{human, mib_s, rate};
use crate::pattern::Pattern;
use crate::progress;
use crate::session::{self, image_state, Loaded, Session, CONFIG_ENV, LOG_ENV};

const SERVER: &str = "VastData:demo";
const LSUS: [&str; 2] = ["lsu1", "lsu2"];
/// S3 LSUs on the simulated cluster: buckets owned by one user.
const BUCKETS: [&str; 2] = ["bkt1", "bkt2"];
const POLICY: &str = "demo-policy";
/// NetBackup's usual write size.
const BLOCK: usize = 256 << 10;
/// The small images of a backup, with lengths that end mid-block on purpose.
const HEADER: u64 = 1_536;
const TIR: u64 = 300_007;
const IMAGE_META: u64 = 65_011;

pub struct Options {
    pub size: u64,
    pub keep: bool,
    pub dir: Option<PathBuf>,
    /// Plain directories as LSUs, no simulator (the NFS path alone).
    pub nfs_only: bool,
}

/// One image of the backup: name, length, and the stream it holds.
struct Planned {
    name: String,
    len: u64,
    pattern: Pattern,
}

pub fn run(plugin: &Path, o: &Options) -> Result<()> {
    let base = o.dir.clone().unwrap_or_else(std::env::temp_dir);
    fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix("vast-ost-demo-")
        .tempdir_in(&base)
        .with_context(|| format!("creating a work directory in {}", base.display()))?;
    let res = demo(plugin, o, tmp.path());
    match (&res, o.keep) {
        (Ok(()), false) => {
            let shown = tmp.path().display().to_string();
            tmp.close().with_context(|| format!("removing work directory {shown}"))?;
            println!("work dir     {shown} removed");
        }
        (Ok(()), true) => println!("work dir     {} kept (--keep)", tmp.keep().display()),
        // The plug-in log and the images are the evidence: keep them.
        (Err(_), _) => {
            eprintln!("vast-ost demo: work directory kept for inspection: {}", tmp.keep().display())
        }
    }
    res
}

/// Peak resident set size of this process (VmHWM), in bytes.
fn peak_rss() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn rss_text(v: Option<u64>) -> String {
    v.map(human).unwrap_or_else(|| "n/a".into())
}

fn plan(size: u64, backup_id: &str) -> Vec<Planned> {
    let small = HEADER + TIR + IMAGE_META;
    let bulk = size.saturating_sub(small);
    // Fragment 1 ends on a block boundary, as NetBackup's fragments do; fragment 2 takes the
    // rest, so its end is whatever --size makes it.
    let f1 = bulk / 2 / BLOCK as u64 * BLOCK as u64;
    [("_C1_HDR", HEADER), ("_C1_F1", f1), ("_C1_F2", bulk - f1), ("_C1_TIR", TIR), ("_C1_IM", IMAGE_META)]
        .into_iter()
        .map(|(suffix, len)| {
            let name = format!("{backup_id}{suffix}");
            Planned { pattern: Pattern::for_name(&name), name, len }
        })
        .collect()
}

/// Start the simulator and provision the demo's LSUs on it through VMS, as an admin would.
fn start_cluster(root: &Path, size: u64) -> Result<(vast_sim::Sim, PathBuf, (String, String))> {
    let sim = vast_sim::Sim::start(vast_sim::SimConfig::new(root.join("cluster")))
        .context("starting the VAST simulator")?;
    let ca = root.join("vms-ca.pem");
    fs::write(&ca, sim.ca_pem().unwrap_or_default()).with_context(|| format!("writing {}", ca.display()))?;
    println!(
        "cluster      VAST simulator: VMS {} (TLS, CA {}), S3 VIPs {}",
        sim.vms_url(),
        ca.display(),
        sim.s3_endpoints().join(" ")
    );
    // NFS views then S3 buckets (one owner, one key). The first of each gets a quota, so its
    // capacity is the quota's; the second shows the cluster's free space.
    let mut keys = None;
    let lsus = LSUS.iter().map(|l| (*l, false)).chain(BUCKETS.iter().map(|b| (*b, true)));
    for (name, s3) in lsus {
        let first = name == LSUS[0] || name == BUCKETS[0];
        let mut p = crate::provision::Provision::on_sim(sim.vms_url(), &ca, name, s3, keys.is_none());
        p.quota = first.then_some(size.saturating_mul(3).max(1 << 30));
        let k = crate::provision::run(&p, sim.admin_user(), sim.admin_password())
            .map_err(|e| e.context(format!("provisioning LSU {name}")))?;
        keys = keys.or(k);
    }
    let keys = keys.context("provisioning gave no S3 key")?;
    Ok((sim, ca, keys))
}

/// The config of `--nfs-only`: the NFS "mount" with its LSUs as plain directories.
fn nfs_only_config(mount: &Path) -> ConfigFile {
    let server = Server {
        name: SERVER.to_string(),
        nfs: Some(Nfs { mount: mount.to_path_buf(), direct_io: Some("auto") }),
        ..Server::default()
    };
    ConfigFile { log: Some(Log { level: "info" }), servers: vec![server] }
}

/// The config naming the simulated cluster: its VMS (and CA), the NFS path to its views, the
/// port of its S3 VIPs (found through VMS) and the S3 key provisioned for the buckets.
fn cluster_config(vms: &str, ca: &Path, root: &Path, s3_port: u16, (ak, sk): (String, String)) -> ConfigFile {
    let server = Server {
        name: SERVER.to_string(),
        vms: Some(Vms { address: vms.to_string(), ca_file: Some(ca.to_path_buf()) }),
        nfs: Some(Nfs { mount: root.to_path_buf(), direct_io: Some("auto") }),
        s3: Some(S3 { vip_port: Some(s3_port), access_key: ak, secret_key: sk, ..S3::default() }),
        ..Server::default()
    };
    ConfigFile { log: Some(Log { level: "info" }), servers: vec![server] }
}

fn demo(plugin: &Path, o: &Options, root: &Path) -> Result<()> {
    let config = root.join("vast-ost.toml");
    let log = root.join("vast-ost.log");
    // The simulated cluster, when there is one, runs for as long as the demo.
    let (cluster, file, user, password) = if o.nfs_only {
        let mount = root.join("mnt");
        for l in LSUS {
            fs::create_dir_all(mount.join(l))
                .with_context(|| format!("creating LSU directory {}", mount.join(l).display()))?;
        }
        (None, nfs_only_config(&mount), "demo".to_string(), String::new())
    } else {
        let (sim, ca, keys) = start_cluster(root, o.size)?;
        let s3_port = sim
            .s3_endpoints()
            .first()
            .and_then(|e| e.rsplit(':').next()?.parse().ok())
            .context("the simulator has no S3 VIP")?;
        let file = cluster_config(sim.vms_url(), &ca, sim.root(), s3_port, keys);
        let (u, p) = (sim.admin_user().to_string(), sim.admin_password().to_string());
        (Some(sim), file, u, p)
    };
    let by =
        if o.nfs_only { "Written by `vast-ost demo --nfs-only`." } else { "Written by `vast-ost demo`." };
    file.write(&config, Some(by))?;
    // Read by stspi_init, so set before the plug-in is loaded.
    std::env::set_var(CONFIG_ENV, &config);
    std::env::set_var(LOG_ENV, &log);
    std::env::set_var(vast_ost_engine::config::CACHE_ENV, root.join("cache"));
    let res = cycle(plugin, o, root, &config, &log, &user, &password);
    drop(cluster);
    res
}

fn cycle(
    plugin: &Path,
    o: &Options,
    root: &Path,
    config: &Path,
    log: &Path,
    user: &str,
    password: &str,
) -> Result<()> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let date = now.to_string();
    let backup_id = format!("demo-client_{now}");
    let images = plan(o.size, &backup_id);
    let total: u64 = images.iter().map(|i| i.len).sum();
    println!("vast-ost demo: {} through the OST C interface of {}", human(total), plugin.display());
    println!("work dir     {}", root.display());
    println!("config       {}", config.display());
    println!("plug-in log  {}", log.display());

    let loaded = Loaded::new(plugin)?;
    let pi = loaded.plugin.plugin_info().context("reading plug-in information")?;
    println!(
        "plug-in      {} ({}), vendor version {}, operating version {}",
        get_str(&pi.pi_name),
        get_str(&pi.pi_label),
        get_str(&pi.pi_vendor_version),
        pi.pi_operating_version
    );
    let s = Session::open(loaded, SERVER, user, password)?;
    let si = s.p().server_prop(s.handle).context("reading server properties")?;
    println!("server       {SERVER}: {}, flags {}", get_str(&si.srv_version), server_flags(si.srv_flags));
    let lsus = s.p().lsu_names(s.handle).context("listing LSUs")?;
    println!("LSUs         {}", lsus.join(", "));
    check_lsus(&lsus)?;
    let rss_init = peak_rss();

    let mut passes = vec![(LSUS[0], LSUS[1])];
    if lsus.iter().any(|l| l == BUCKETS[0]) {
        passes.push((BUCKETS[0], BUCKETS[1]));
    }
    let mut stats = Vec::new();
    for (i, (src, dst)) in passes.iter().enumerate() {
        // One backup ID per pass, as two clients' jobs would be.
        let backup_id = format!("{backup_id}{}", if i == 0 { "" } else { "-s3" });
        let images = plan(o.size, &backup_id);
        stats.push(pass(&s, src, dst, &backup_id, &date, &images)?);
    }
    drop(s);
    print_summary(&passes, &stats, rss_init);
    println!("demo OK");
    Ok(())
}

/// The memory and summary lines, from every pass's figures.
fn print_summary(passes: &[(&str, &str)], stats: &[PassStats], rss_init: Option<u64>) {
    let moved: u64 = stats.iter().map(|p| p.moved).sum();
    let rates = |f: fn(&PassStats) -> f64| {
        stats.iter().map(|p| format!("{:.1}", f(p))).collect::<Vec<_>>().join(" / ")
    };
    let (backup_rate, restore_rate) = (rates(|p| p.backup_rate), rates(|p| p.restore_rate));
    let per_pass: Vec<String> = passes
        .iter()
        .zip(stats)
        .map(|((src, _), p)| {
            format!(
                "{} after the {src} backup, {} after its restore",
                rss_text(p.rss_backup),
                rss_text(p.rss_restore)
            )
        })
        .collect();
    println!(
        "memory       peak RSS (VmHWM, the simulator runs in this process): {} after init, {}; {} at the end; {} through the plug-in in {} blocks",
        rss_text(rss_init),
        per_pass.join(", "),
        rss_text(peak_rss()),
        human(moved),
        human(BLOCK as u64)
    );
    println!(
        "summary      backup {backup_rate} MiB/s, restore {restore_rate} MiB/s ({}), peak RSS {}",
        passes.iter().map(|(a, _)| *a).collect::<Vec<_>>().join(" / "),
        rss_text(peak_rss())
    );
}

/// Figures of one backup-list-restore-copy-delete pass.
struct PassStats {
    backup_rate: f64,
    restore_rate: f64,
    rss_backup: Option<u64>,
    rss_restore: Option<u64>,
    moved: u64,
}

/// One backup ID into `src`: written, listed, restored and checked, one image copied to `dst`
/// and checked, everything deleted. Each step is a function of its own; what the plug-in
/// answers is judged by the `check_*` functions, which only compare.
fn pass(
    s: &Session,
    src: &str,
    dst: &str,
    backup_id: &str,
    date: &str,
    images: &[Planned],
) -> Result<PassStats> {
    let total: u64 = images.iter().map(|i| i.len).sum();
    let mut bufs = Buffers::new();

    println!("backup       {backup_id} -> LSU {src}, {} writes", human(BLOCK as u64));
    let backup_t = backup(s, src, date, images, &mut bufs)?;
    print_rate("backup", total, backup_t);
    let rss_backup = peak_rss();

    // What the plug-in lists must be exactly what was written.
    let listed = s.images(src, backup_id)?;
    print_listing(src, backup_id, &listed);
    check_listing(&listed, images, date)?;
    let li = s.p().lsu_prop(&s.lsu(src)?).context("reading LSU properties")?;
    println!(
        "capacity     LSU {src}: {} used of {} ({})",
        human(li.lsu_used),
        human(li.lsu_capacity),
        get_str(&li.lsu_description)
    );
    check_image_count(src, li.lsu_images, images.len())?;

    println!("restore      read back through the plug-in, compared byte for byte with the regenerated data");
    let restore_t = restore(s, src, images, &mut bufs)?;
    print_rate("restore", total, restore_t);
    let rss_restore = peak_rss();

    // Copy the biggest fragment to the other LSU inside the storage, and check the copy.
    let big = images.iter().max_by_key(|i| i.len).expect("plan has images");
    let (copy_took, copied) = copy(s, src, dst, big, &mut bufs)?;
    check_copy(big, &copied, date)?;
    println!(
        "copy         {} {src} -> {dst} (stspi_copy_image): {} in {:.3} s; read back and verified OK",
        big.name,
        human(big.len),
        copy_took.as_secs_f64()
    );

    // Delete everything and check that nothing is left.
    let deleted = delete(s, images.iter().map(|i| (src, i.name.as_str())).chain([(dst, big.name.as_str())]))?;
    for lsu in [src, dst] {
        let left = s.images(lsu, "")?;
        let count = s.p().lsu_prop(&s.lsu(lsu)?).context("reading LSU properties")?.lsu_images;
        check_empty(lsu, left.len(), count)?;
    }
    println!("delete       {deleted} images deleted; LSUs {src} and {dst} list no images");
    Ok(PassStats {
        backup_rate: mib_s(total, backup_t.wall),
        restore_rate: mib_s(total, restore_t.wall),
        rss_backup,
        rss_restore,
        // Written once, read back once, plus the copy read back.
        moved: total * 2 + big.len,
    })
}

/// The block buffers of a pass: data, and scratch for the expected bytes.
struct Buffers {
    buf: Vec<u8>,
    scratch: Vec<u8>,
}

impl Buffers {
    fn new() -> Buffers {
        Buffers { buf: vec![0u8; BLOCK], scratch: vec![0u8; BLOCK] }
    }
}

/// How long a step took, and how much of it was spent inside plug-in calls.
#[derive(Clone, Copy, Default)]
struct Timing {
    wall: Duration,
    in_plugin: Duration,
}

/// Progress and timing of a step that moves bytes image by image: a progress bar on a
/// terminal, one line per image, and the step's [`Timing`].
struct Meter {
    pb: ProgressBar,
    t: Timing,
}

impl Meter {
    fn new(total: u64, what: &str) -> Meter {
        Meter { pb: progress::bytes(Some(total), what), t: Timing::default() }
    }

    /// A plug-in call, counted as time in the plug-in.
    fn call<T>(&mut self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let start = Instant::now();
        let r = f();
        self.t.in_plugin += start.elapsed();
        r
    }

    /// An image done in `took`; `verdict` goes before the time (`"OK  "` after a check).
    fn image_done(&mut self, im: &Planned, took: Duration, verdict: &str) {
        self.t.wall += took;
        self.pb.suspend(|| {
            println!("  {:<40} {:>12}  {verdict}{:.3} s", im.name, human(im.len), took.as_secs_f64())
        });
    }

    fn finish(self) -> Timing {
        self.pb.finish_and_clear();
        self.t
    }
}

/// The rate line of a step.
fn print_rate(step: &str, total: u64, t: Timing) {
    println!(
        "  {step:<10} {} in {} (plug-in calls alone: {:.1} MiB/s)",
        human(total),
        rate(total, t.wall),
        mib_s(total, t.in_plugin)
    );
}

/// Backup: every image created, written in 256 KiB blocks, closed complete.
fn backup(s: &Session, lsu: &str, date: &str, images: &[Planned], b: &mut Buffers) -> Result<Timing> {
    let mut m = Meter::new(images.iter().map(|i| i.len).sum(), "backup");
    for im in images {
        let start = Instant::now();
        let img = s.create(lsu, &session::def(&im.name, date, POLICY)?)?;
        let mut off = 0u64;
        while off < im.len {
            let n = BLOCK.min((im.len - off) as usize);
            im.pattern.fill(off, &mut b.buf[..n]);
            m.call(|| img.write(&b.buf[..n], off))?;
            off += n as u64;
            m.pb.inc(n as u64);
        }
        m.call(|| img.close(true))?;
        m.image_done(im, start.elapsed(), "");
    }
    Ok(m.finish())
}

/// Restore: every image read back through the plug-in and verified against its stream.
fn restore(s: &Session, lsu: &str, images: &[Planned], b: &mut Buffers) -> Result<Timing> {
    let mut m = Meter::new(images.iter().map(|i| i.len).sum(), "restore + verify");
    for im in images {
        let start = Instant::now();
        m.t.in_plugin += read_and_verify(s, lsu, im, b, &m.pb)?;
        m.image_done(im, start.elapsed(), "OK  ");
    }
    Ok(m.finish())
}

/// Copy `im` from `src` to `dst` inside the storage (stspi_copy_image), then read the copy
/// back and verify it. Returns how long the copy took and the copy's properties.
fn copy(
    s: &Session,
    src: &str,
    dst: &str,
    im: &Planned,
    b: &mut Buffers,
) -> Result<(Duration, sts_image_info_t)> {
    let start = Instant::now();
    let src_info = s.image_info(src, &im.name)?;
    s.p()
        .copy_image(&s.lsu(dst)?, &src_info.imo_def, &s.lsu(src)?, &src_info.imo_def)
        .with_context(|| format!("copying image '{}' from LSU '{src}' to LSU '{dst}'", im.name))?;
    let took = start.elapsed();
    let pb = progress::bytes(Some(im.len), "verify copy");
    read_and_verify(s, dst, im, b, &pb)?;
    pb.finish_and_clear();
    Ok((took, s.image_info(dst, &im.name)?))
}

/// Delete each `(lsu, image)`; how many were deleted.
fn delete<'a>(s: &Session, images: impl Iterator<Item = (&'a str, &'a str)>) -> Result<usize> {
    let mut deleted = 0;
    for (lsu, name) in images {
        s.p()
            .delete_image(&s.lsu(lsu)?, &session::def(name, "", "")?)
            .with_context(|| format!("deleting image '{name}' in LSU '{lsu}'"))?;
        deleted += 1;
    }
    Ok(deleted)
}

/// Read image `im.name` of `lsu` whole and verify it against `im`'s stream. Returns the time
/// spent in the plug-in's read calls.
fn read_and_verify(
    s: &Session,
    lsu: &str,
    im: &Planned,
    b: &mut Buffers,
    pb: &ProgressBar,
) -> Result<Duration> {
    let img = s.open_read(lsu, &im.name)?;
    let size = img.info()?.imo_size;
    check_size(lsu, im, size)?;
    let scratch = &mut b.scratch;
    let t = read_all(&img, size, &mut b.buf, pb, |off, data| check_bytes(lsu, im, off, data, scratch))?;
    img.close(false)?;
    Ok(t)
}

fn print_listing(lsu: &str, backup_id: &str, listed: &[sts_image_info_t]) {
    println!("images in LSU {lsu} (stspi_open_image_list, prefix {backup_id}):");
    for line in image_table(listed).lines() {
        println!("  {line}");
    }
}

// ------------------------------------------------------------------------------------------
// The contract checks: what the plug-in answered against what was done.
// ------------------------------------------------------------------------------------------

/// Every LSU provisioned is listed.
fn check_lsus(listed: &[String]) -> Result<()> {
    for l in LSUS {
        if !listed.iter().any(|x| x == l) {
            bail!("contract mismatch: LSU '{l}' was provisioned, but the plug-in lists only {listed:?}");
        }
    }
    Ok(())
}

/// Every planned image listed once, complete, with its size, date and policy.
fn check_listing(listed: &[sts_image_info_t], images: &[Planned], date: &str) -> Result<()> {
    if listed.len() != images.len() {
        bail!("contract mismatch: {} images written, {} listed", images.len(), listed.len());
    }
    for im in images {
        let Some(i) = listed.iter().find(|i| get_str(&i.imo_def.img_basename) == im.name) else {
            bail!("contract mismatch: image '{}' was written and closed complete but is not listed", im.name);
        };
        let (d, p) = (get_str(&i.imo_def.img_date), get_str(&i.imo_def.img_policy));
        let complete = i.imo_flags & STS_II_IMAGE_CREATED != 0
            && i.imo_flags & (STS_II_IMAGE_PENDING | STS_II_BUSY_WRITE) == 0;
        if i.imo_size != im.len || !complete || d != date || p != POLICY {
            bail!(
                "contract mismatch: image '{}' listed with size {}, state {}, date '{d}', policy '{p}'; written: size {}, complete, date '{date}', policy '{POLICY}'",
                im.name,
                i.imo_size,
                image_state(i.imo_flags),
                im.len
            );
        }
    }
    Ok(())
}

/// The LSU's image count is the number of images written to it.
fn check_image_count(lsu: &str, reported: u64, written: usize) -> Result<()> {
    if reported != written as u64 {
        bail!(
            "contract mismatch: LSU '{lsu}' holds {written} images, but stspi_get_lsu_prop_byname reports {reported}"
        );
    }
    Ok(())
}

/// An image read back has the size written.
fn check_size(lsu: &str, im: &Planned, size: u64) -> Result<()> {
    if size != im.len {
        bail!("MISMATCH: image '{}' in LSU '{lsu}' has size {size}, {} bytes were written", im.name, im.len);
    }
    Ok(())
}

/// Bytes read at `off` are the stream's.
fn check_bytes(lsu: &str, im: &Planned, off: u64, data: &[u8], scratch: &mut [u8]) -> Result<()> {
    match im.pattern.check(off, data, scratch) {
        None => Ok(()),
        Some(at) => bail!(
            "MISMATCH: image '{}' in LSU '{lsu}' differs from the data written at byte offset {at}",
            im.name
        ),
    }
}

/// A copy keeps the source's date and policy.
fn check_copy(im: &Planned, copied: &sts_image_info_t, date: &str) -> Result<()> {
    let (d, p) = (get_str(&copied.imo_def.img_date), get_str(&copied.imo_def.img_policy));
    if d != date || p != POLICY {
        bail!(
            "contract mismatch: the copy of '{}' has date '{d}' and policy '{p}', the source '{date}' and '{POLICY}'",
            im.name
        );
    }
    Ok(())
}

/// After every image is deleted, none is listed or counted.
fn check_empty(lsu: &str, listed: usize, reported: u64) -> Result<()> {
    if listed != 0 || reported != 0 {
        bail!(
            "contract mismatch: after deleting every image, LSU '{lsu}' lists {listed} image(s) and reports {reported}"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vast_ost_engine::config::Config;

    fn parse(file: &ConfigFile) -> toml::Table {
        let text = file.to_toml(Some("Written by a test.")).unwrap();
        Config::parse(&text, Path::new("vast-ost.toml")).unwrap_or_else(|e| panic!("{e}\n{text}"));
        toml::from_str(&text).unwrap()
    }

    /// The listing entry of a planned image as the plug-in reports a complete one.
    fn listed(im: &Planned, date: &str) -> sts_image_info_t {
        let mut i: sts_image_info_t = vast_ost_host::zeroed();
        i.imo_def = vast_ost_host::image_def(&im.name, date, POLICY);
        i.imo_size = im.len;
        i.imo_flags = STS_II_IMAGE_CREATED;
        i
    }

    #[test]
    fn listing_check_finds_each_mismatch() {
        let images = plan(8 << 20, "c_1");
        let good: Vec<_> = images.iter().map(|im| listed(im, "1")).collect();
        check_listing(&good, &images, "1").unwrap();
        let bad = |what: &str, change: &dyn Fn(&mut Vec<sts_image_info_t>)| {
            let mut l = good.clone();
            change(&mut l);
            let e = check_listing(&l, &images, "1").expect_err(what).to_string();
            assert!(e.starts_with("contract mismatch"), "{what}: {e}");
        };
        bad("one missing", &|l| l.truncate(l.len() - 1));
        bad("pending", &|l| l[1].imo_flags = STS_II_IMAGE_PENDING);
        bad("still writing", &|l| l[1].imo_flags |= STS_II_BUSY_WRITE);
        bad("short", &|l| l[2].imo_size -= 1);
        bad("other date", &|l| l[0].imo_def = vast_ost_host::image_def(&images[0].name, "2", POLICY));
        bad("other name", &|l| l[0].imo_def = vast_ost_host::image_def("x", "1", POLICY));
        check_image_count("lsu1", 5, 5).unwrap();
        check_image_count("lsu1", 4, 5).unwrap_err();
        check_empty("lsu1", 0, 0).unwrap();
        check_empty("lsu1", 0, 1).unwrap_err();
        check_empty("lsu1", 1, 0).unwrap_err();
    }

    #[test]
    fn demo_configs_parse() {
        let v = parse(&nfs_only_config(Path::new("/tmp/demo \"x\"/mnt")));
        let server = &v["server"].as_array().unwrap()[0];
        assert_eq!(server["name"].as_str(), Some(SERVER));
        assert_eq!(server["nfs"]["mount"].as_str(), Some("/tmp/demo \"x\"/mnt"));
        assert_eq!(server["nfs"]["direct_io"].as_str(), Some("auto"));
        assert_eq!(v["log"]["level"].as_str(), Some("info"));

        let keys = ("AKIA".to_string(), "se\\cret\"".to_string());
        let v = parse(&cluster_config(
            "https://127.0.0.1:4443",
            Path::new("/w/ca.pem"),
            Path::new("/w/c"),
            9000,
            keys,
        ));
        let server = &v["server"].as_array().unwrap()[0];
        assert_eq!(server["vms"]["address"].as_str(), Some("https://127.0.0.1:4443"));
        assert_eq!(server["vms"]["ca_file"].as_str(), Some("/w/ca.pem"));
        assert_eq!(server["nfs"]["mount"].as_str(), Some("/w/c"));
        assert_eq!(server["s3"]["vip_port"].as_integer(), Some(9000));
        assert_eq!(server["s3"]["secret_key"].as_str(), Some("se\\cret\""));
    }
}
