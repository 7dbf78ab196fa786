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
use vast_ost_host::abi::*;
use vast_ost_host::get_str;

use crate::commands::{image_table, read_all, server_flags};
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

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
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
        let p = crate::provision::Provision {
            vms: sim.vms_url().to_string(),
            ca_file: Some(ca.clone()),
            insecure: false,
            api_version: "latest".into(),
            name: name.to_string(),
            s3,
            path: Some(format!("/nbu/{name}")),
            quota: first.then_some(size.saturating_mul(3).max(1 << 30)),
            policy: None,
            owner: s3.then(|| "nbu-s3".to_string()),
            access_key: s3 && keys.is_none(),
        };
        let k = crate::provision::run(&p, sim.admin_user(), sim.admin_password())
            .map_err(|e| e.context(format!("provisioning LSU {name}")))?;
        keys = keys.or(k);
    }
    let keys = keys.context("provisioning gave no S3 key")?;
    Ok((sim, ca, keys))
}

fn demo(plugin: &Path, o: &Options, root: &Path) -> Result<()> {
    let config = root.join("vast-ost.toml");
    let log = root.join("vast-ost.log");
    // The simulated cluster, when there is one, runs for as long as the demo.
    let (cluster, text, user, password) = if o.nfs_only {
        // The NFS "mount" with its LSUs as plain directories.
        let mount = root.join("mnt");
        for l in LSUS {
            fs::create_dir_all(mount.join(l))
                .with_context(|| format!("creating LSU directory {}", mount.join(l).display()))?;
        }
        let text = format!(
            "# Written by `vast-ost demo --nfs-only`.\n[log]\nlevel = \"info\"\n\n[[server]]\nname = {}\n[server.nfs]\nmount = {}\ndirect_io = \"auto\"\n",
            toml_str(SERVER),
            toml_str(&mount.display().to_string())
        );
        (None, text, "demo".to_string(), String::new())
    } else {
        let (sim, ca, (ak, sk)) = start_cluster(root, o.size)?;
        let s3_port = sim.s3_endpoints().first().and_then(|e| e.rsplit(':').next().map(str::to_string));
        let text = format!(
            "# Written by `vast-ost demo`.\n[log]\nlevel = \"info\"\n\n[[server]]\nname = {}\n\
             [server.vms]\naddress = {}\nca_file = {}\n[server.nfs]\nmount = {}\ndirect_io = \"auto\"\n\
             [server.s3]\nvip_port = {}\naccess_key = {}\nsecret_key = {}\n",
            toml_str(SERVER),
            toml_str(sim.vms_url()),
            toml_str(&ca.display().to_string()),
            toml_str(&sim.root().display().to_string()),
            s3_port.context("the simulator has no S3 VIP")?,
            toml_str(&ak),
            toml_str(&sk)
        );
        let (u, p) = (sim.admin_user().to_string(), sim.admin_password().to_string());
        (Some(sim), text, u, p)
    };
    fs::write(&config, text).with_context(|| format!("writing {}", config.display()))?;
    // Read by stspi_init, so set before the plug-in is loaded.
    std::env::set_var(CONFIG_ENV, &config);
    std::env::set_var(LOG_ENV, &log);
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
    for l in LSUS {
        if !lsus.iter().any(|x| x == l) {
            bail!("contract mismatch: LSU '{l}' was provisioned, but the plug-in lists only {lsus:?}");
        }
    }
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

    let moved: u64 = stats.iter().map(|p| p.moved).sum();
    let rates = |f: fn(&PassStats) -> f64| {
        stats.iter().map(|p| format!("{:.1}", f(p))).collect::<Vec<_>>().join(" / ")
    };
    let (backup_rate, restore_rate) = (rates(|p| p.backup_rate), rates(|p| p.restore_rate));
    let per_pass: Vec<String> = passes
        .iter()
        .zip(&stats)
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
    println!("demo OK");
    Ok(())
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
/// and checked, everything deleted.
fn pass(
    s: &Session,
    src: &str,
    dst: &str,
    backup_id: &str,
    date: &str,
    images: &[Planned],
) -> Result<PassStats> {
    let total: u64 = images.iter().map(|i| i.len).sum();
    let mut buf = vec![0u8; BLOCK];
    let mut scratch = vec![0u8; BLOCK];

    // Backup: every image created, written in 256 KiB blocks, closed complete.
    println!("backup       {backup_id} -> LSU {src}, {} writes", human(BLOCK as u64));
    let pb = progress::bytes(Some(total), "backup");
    let (mut wall, mut in_plugin) = (Duration::ZERO, Duration::ZERO);
    for im in images {
        let start = Instant::now();
        let img = s.create(src, &session::def(&im.name, &date, POLICY)?)?;
        let mut off = 0u64;
        while off < im.len {
            let n = BLOCK.min((im.len - off) as usize);
            im.pattern.fill(off, &mut buf[..n]);
            let t = Instant::now();
            img.write(&buf[..n], off)?;
            in_plugin += t.elapsed();
            off += n as u64;
            pb.inc(n as u64);
        }
        let t = Instant::now();
        img.close(true)?;
        in_plugin += t.elapsed();
        let took = start.elapsed();
        wall += took;
        pb.suspend(|| println!("  {:<40} {:>12}  {:.3} s", im.name, human(im.len), took.as_secs_f64()));
    }
    pb.finish_and_clear();
    let backup_rate = mib_s(total, wall);
    println!(
        "  backup     {} in {} (plug-in calls alone: {:.1} MiB/s)",
        human(total),
        rate(total, wall),
        mib_s(total, in_plugin)
    );
    let rss_backup = peak_rss();

    // What the plug-in lists must be exactly what was written.
    let listed = s.images(src, &backup_id)?;
    println!("images in LSU {src} (stspi_open_image_list, prefix {backup_id}):");
    for line in image_table(&listed).lines() {
        println!("  {line}");
    }
    check_listing(&listed, &images, &date)?;
    let li = s.p().lsu_prop(&s.lsu(src)?).context("reading LSU properties")?;
    println!(
        "capacity     LSU {src}: {} used of {} ({})",
        human(li.lsu_used),
        human(li.lsu_capacity),
        get_str(&li.lsu_description)
    );
    let count = li.lsu_images;
    if count != images.len() as u64 {
        bail!(
            "contract mismatch: LSU '{src}' holds {} images, but stspi_get_lsu_prop_byname reports {count}",
            images.len()
        );
    }

    // Restore: read every image back through the plug-in and compare it with the stream.
    println!("restore      read back through the plug-in, compared byte for byte with the regenerated data");
    let pb = progress::bytes(Some(total), "restore + verify");
    let (mut wall, mut in_plugin) = (Duration::ZERO, Duration::ZERO);
    for im in images {
        let start = Instant::now();
        in_plugin += check_image(&s, src, &im.name, im, &mut buf, &mut scratch, &pb)?;
        let took = start.elapsed();
        wall += took;
        pb.suspend(|| println!("  {:<40} {:>12}  OK  {:.3} s", im.name, human(im.len), took.as_secs_f64()));
    }
    pb.finish_and_clear();
    let restore_rate = mib_s(total, wall);
    println!(
        "  restore    {} in {} (plug-in calls alone: {:.1} MiB/s)",
        human(total),
        rate(total, wall),
        mib_s(total, in_plugin)
    );
    let rss_restore = peak_rss();

    // Copy the biggest fragment to the other LSU inside the storage, and check the copy.
    let big = images.iter().max_by_key(|i| i.len).expect("plan has images");
    let start = Instant::now();
    let src_info = s.image_info(src, &big.name)?;
    s.p()
        .copy_image(&s.lsu(dst)?, &src_info.imo_def, &s.lsu(src)?, &src_info.imo_def)
        .with_context(|| format!("copying image '{}' from LSU '{src}' to LSU '{dst}'", big.name))?;
    let copy_took = start.elapsed();
    let pb = progress::bytes(Some(big.len), "verify copy");
    check_image(&s, dst, &big.name, big, &mut buf, &mut scratch, &pb)?;
    pb.finish_and_clear();
    let copied = s.image_info(dst, &big.name)?;
    if get_str(&copied.imo_def.img_date) != date || get_str(&copied.imo_def.img_policy) != POLICY {
        bail!(
            "contract mismatch: the copy of '{}' has date '{}' and policy '{}', the source '{date}' and '{POLICY}'",
            big.name,
            get_str(&copied.imo_def.img_date),
            get_str(&copied.imo_def.img_policy)
        );
    }
    println!(
        "copy         {} {src} -> {dst} (stspi_copy_image): {} in {:.3} s; read back and verified OK",
        big.name,
        human(big.len),
        copy_took.as_secs_f64()
    );

    // Delete everything and check that nothing is left.
    let mut deleted = 0;
    for (lsu, name) in images.iter().map(|i| (src, &i.name)).chain([(dst, &big.name)]) {
        s.p()
            .delete_image(&s.lsu(lsu)?, &session::def(name, "", "")?)
            .with_context(|| format!("deleting image '{name}' in LSU '{lsu}'"))?;
        deleted += 1;
    }
    for lsu in [src, dst] {
        let left = s.images(lsu, "")?;
        let count = s.p().lsu_prop(&s.lsu(lsu)?).context("reading LSU properties")?.lsu_images;
        if !left.is_empty() || count != 0 {
            bail!(
                "contract mismatch: after deleting every image, LSU '{lsu}' lists {} image(s) and reports {count}",
                left.len()
            );
        }
    }
    println!("delete       {deleted} images deleted; LSUs {src} and {dst} list no images");
    // Written once, read back once, plus the copy read back.
    let moved = total * 2 + big.len;
    Ok(PassStats { backup_rate, restore_rate, rss_backup, rss_restore, moved })
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

/// Read image `name` of `lsu` whole and compare it with `im`'s stream. Returns the time spent
/// in the plug-in's read calls.
fn check_image(
    s: &Session,
    lsu: &str,
    name: &str,
    im: &Planned,
    buf: &mut [u8],
    scratch: &mut [u8],
    pb: &indicatif::ProgressBar,
) -> Result<Duration> {
    let img = s.open_read(lsu, name)?;
    let size = img.info()?.imo_size;
    if size != im.len {
        bail!("MISMATCH: image '{name}' in LSU '{lsu}' has size {size}, {} bytes were written", im.len);
    }
    let t = read_all(&img, size, buf, pb, |off, data| match im.pattern.check(off, data, scratch) {
        None => Ok(()),
        Some(at) => {
            bail!("MISMATCH: image '{name}' in LSU '{lsu}' differs from the data written at byte offset {at}")
        }
    })?;
    img.close(false)?;
    Ok(t)
}
