//! `vast-ost bench`: the plug-in beside the tools an admin would otherwise use, on the same
//! server, the same bytes, in the same run. Each scenario is a row; each contender of a row
//! (the plug-in, as `vast-ost` subcommands through the `.so`, and every peer found) runs as
//! its own processes, interleaved with the others (A B C A B C …), and the report gives each
//! one's median MiB/s (min–max), CPU-seconds per GiB, peak RSS and the plug-in's ratio to the
//! best peer of the row. No peer figure is ever typed in: a peer that is not installed is
//! reported as missing (scripts/bench-peers installs them all).
//!
//! Rooms: [`config`] (the bench's server, with the user's tuning), [`measure`] (processes,
//! timed, CPU and RSS from `wait4`), [`tools`] (finding the peers and their command lines),
//! [`report`] (rows, Markdown, JSON), [`plot`] (the PNG), [`worker`] (`read-random`, the
//! restore-with-seek pattern), [`inproc`] and [`synth`] (the in-process synthetics part).

mod config;
mod inproc;
mod measure;
mod plot;
mod report;
mod synth;
mod tools;
pub mod worker;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::fmt::human;
use measure::Cmd;
use report::{Axis, EntryResult, Machine, PlotPoint, RowResult};
use tools::{Fio, S3Peers, Tools};

const BLOCK: &str = "256KiB";
const RANDOM_BLOCK: u64 = 64 << 10;
/// The seed of the random-read offsets (the boto3 peer computes the same ones).
const SEED: &str = "7";

pub struct Bench {
    /// `http://host:port` of an S3 server; without it the NFS path on `dir`.
    pub s3: Option<String>,
    pub access_key: String,
    pub secret_key: String,
    /// Image sizes, one scenario set each.
    pub sizes: Vec<u64>,
    /// Parallel streams (1 is the single-image row).
    pub streams: Vec<usize>,
    /// Interleaved runs of each contender.
    pub runs: usize,
    /// Random 64 KiB reads per random-read run.
    pub random_reads: u64,
    /// The user's vast-ost.toml, whose tuning the bench's server takes.
    pub tuning: Option<PathBuf>,
    /// Where the report goes (Markdown, JSON, PNG).
    pub out: PathBuf,
    /// Where scripts/bench-peers put boto3 and the AWS CLI.
    pub venv: PathBuf,
    /// The directory the NFS path and the data files live in [default: a temporary one in
    /// /var/tmp, on disk rather than tmpfs].
    pub dir: Option<PathBuf>,
    /// Also run the in-process synthetics part.
    pub synthetics: bool,
    /// The storage server's processes on this machine, whose CPU per run is reported.
    pub server_pids: Vec<i32>,
}

/// What every row needs: where things are and how to run the plug-in's side.
struct Ctx<'a> {
    b: &'a Bench,
    exe: PathBuf,
    plugin: PathBuf,
    config: PathBuf,
    log: PathBuf,
    work: PathBuf,
    /// The plug-in's LSU (a bucket, or a directory of the NFS mount) and a second one.
    lsu: String,
    lsu2: String,
    /// NFS: the mount the LSUs are directories of.
    mount: Option<PathBuf>,
    tools: Tools,
    peers: Option<S3Peers>,
    /// S3: the bucket the peers use (apart from the plug-in's, whose listing it would join).
    peer_bucket: String,
    /// S3: the server, to delete the peers' objects as soon as their row is done.
    store: Option<std::sync::Arc<vast_ost_engine::store::s3::S3Store>>,
    cold: bool,
}

/// One contender of a row: the processes of one run, and what to do untimed before each.
struct Contender {
    who: String,
    subject: bool,
    cmds: Vec<Cmd>,
    before: Vec<Cmd>,
}

impl Ctx<'_> {
    /// `vast-ost ARGS` against the bench's server, through the plug-in.
    fn vost(&self, args: &[&str]) -> Cmd {
        Cmd::new(&self.exe)
            .arg("--plugin")
            .arg(&self.plugin)
            .arg("--config")
            .arg(&self.config)
            .args([
                "--server",
                config::SERVER,
                "--user",
                &self.b.access_key,
                "--password",
                &self.b.secret_key,
            ])
            .args(args.iter().copied())
            .env("VAST_OST_LOG", &self.log)
    }

    fn vost_delete(&self, lsu: &str, image: &str) -> Cmd {
        self.vost(&["delete", lsu, image, "--force"])
    }

    fn path(&self, name: &str) -> PathBuf {
        self.work.join(name)
    }

    fn subject(&self, cmds: Vec<Cmd>, before: Vec<Cmd>) -> Contender {
        Contender { who: "vast-ost".into(), subject: true, cmds, before }
    }

    /// The plug-in backing up `data` into each of `images` at once (each deleted before).
    fn backups(&self, images: &[&str], data: &str) -> Contender {
        self.subject(
            images
                .iter()
                .map(|m| self.vost(&["backup", &self.lsu, m, data, "--block-size", BLOCK]))
                .collect(),
            images.iter().map(|m| self.vost_delete(&self.lsu, m)).collect(),
        )
    }

    /// The plug-in backing up `data` as `n` images at once (the streams rows).
    fn stream_backups(&self, n: usize, data: &str) -> Contender {
        let names: Vec<String> = (0..n).map(|k| format!("st{k}_1_C1_F1")).collect();
        self.backups(&names.iter().map(String::as_str).collect::<Vec<_>>(), data)
    }

    /// The plug-in reading `random_reads` blocks of 64 KiB of image `src` at random offsets.
    fn random_reads(&self, src: &str) -> Contender {
        let count = self.b.random_reads.to_string();
        self.subject(
            vec![self.vost(&[
                "read-random",
                &self.lsu,
                src,
                &count,
                "--block-size",
                "64KiB",
                "--seed",
                SEED,
            ])],
            vec![],
        )
    }

    /// The plug-in copying image `src` to the second LSU (the copy deleted before).
    fn copy(&self, src: &str) -> Contender {
        let to = "cp_1_C1_F1";
        self.subject(
            vec![self.vost(&["copy", &self.lsu, src, &self.lsu2, to])],
            vec![self.vost_delete(&self.lsu2, to)],
        )
    }

    /// The `i`th data file, of `size` incompressible bytes, on the work directory's disk.
    fn data(&self, i: usize, size: u64) -> Result<PathBuf> {
        let data = self.path(&format!("data-{i}"));
        worker::make_data(&data, size, 11 + i as u64)?;
        Ok(data)
    }

    /// Remove a size's source image, its peer object (S3) and its data file.
    fn drop_source(&self, src: &str, data: &Path) {
        let _ = measure::run_quiet(&self.vost_delete(&self.lsu, src));
        self.drop_peer_objects(&[src.to_string()]);
        let _ = std::fs::remove_file(data);
    }

    /// Remove the peers' objects `keys` (S3) once their row is done.
    fn drop_peer_objects(&self, keys: &[String]) {
        if let Some(st) = &self.store {
            if let Err(e) =
                vast_ost_engine::store::s3::api::delete_objects(st.client(), &self.peer_bucket, keys)
            {
                println!("could not remove {keys:?} from {}: {e:#}", self.peer_bucket);
            }
        }
    }

    fn random_title(&self, size: u64) -> String {
        format!("{} random 64 KiB reads of {}", self.b.random_reads, human(size))
    }
}

fn peer(who: &str, cmds: Vec<Cmd>, before: Vec<Cmd>) -> Contender {
    Contender { who: who.into(), subject: false, cmds, before }
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// Drop the page cache so reads come from the storage, not memory (needs root); whether it
/// could is said in the report.
fn drop_caches() -> bool {
    rustix::fs::sync();
    std::fs::write("/proc/sys/vm/drop_caches", "1").is_ok()
}

/// Run a row: every contender `runs` times, interleaved; print it as it ends.
fn row(
    ctx: &Ctx,
    group: &str,
    title: String,
    bytes: u64,
    plot: Option<PlotPoint>,
    cs: Vec<Contender>,
) -> RowResult {
    let mut entries: Vec<EntryResult> = cs
        .iter()
        .map(|c| EntryResult {
            who: c.who.clone(),
            subject: c.subject,
            command: c.cmds.iter().map(Cmd::show).collect::<Vec<_>>().join(" & "),
            samples: Vec::new(),
            failures: Vec::new(),
        })
        .collect();
    for _ in 0..ctx.b.runs {
        for (c, e) in cs.iter().zip(entries.iter_mut()) {
            // A contender that failed twice without one good run is broken and not tried
            // again; one that failed once (a peer that hung once) goes on.
            if e.failures.len() >= 2 && e.samples.is_empty() {
                continue;
            }
            let prepared = c.before.iter().try_for_each(measure::run_quiet);
            if ctx.cold {
                drop_caches();
            }
            let server_before = measure::cpu_of(&ctx.b.server_pids);
            match prepared.and_then(|()| measure::run(&c.cmds)) {
                Ok(mut sample) => {
                    sample.server_cpu =
                        server_before.zip(measure::cpu_of(&ctx.b.server_pids)).map(|(a, b)| b - a);
                    e.samples.push(sample);
                }
                Err(err) => {
                    println!("  {}: a run failed: {err:#}", c.who);
                    e.failures.push(format!("{err:#}"));
                }
            }
        }
    }
    // What the row wrote goes now, not at the end of the run: at 4 GiB and more, every row's
    // images kept until then would not fit on the disk (or radosgw's) with the next row's.
    for c in &cs {
        c.before.iter().for_each(|b| drop(measure::run_quiet(b)));
    }
    let r = RowResult { group: group.into(), title, bytes, plot, entries };
    print!("{}", r.print());
    r
}

pub fn run(plugin: &Path, b: &Bench) -> Result<()> {
    if b.sizes.is_empty() || b.sizes.iter().any(|&n| n < 1 << 20) {
        bail!("--sizes: each image at least 1MiB");
    }
    if b.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let base = b.dir.clone().unwrap_or_else(|| PathBuf::from("/var/tmp"));
    std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
    let work =
        tempfile::Builder::new().prefix("vast-ost-bench-").tempdir_in(&base).context("a work directory")?;
    std::fs::create_dir_all(&b.out).with_context(|| format!("creating {}", b.out.display()))?;
    let tools = Tools::find(&b.venv);
    for m in &tools.missing {
        println!("peer missing: {m}");
    }
    let exe = std::env::current_exe().context("finding the vast-ost binary")?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let run_id = format!("{:x}", std::process::id() ^ now as u32);
    let mut machine = Machine::probe();
    machine.tools = tools.versions.clone();
    machine.runs = b.runs;

    // The storage: two buckets (plug-in, peers) or an NFS mount with two LSUs.
    let (server, lsu, lsu2, mount, store) = match &b.s3 {
        Some(ep) => {
            let settings =
                vast_ost_engine::store::s3::S3Settings::new(vec![ep.clone()], &b.access_key, &b.secret_key);
            let store =
                std::sync::Arc::new(vast_ost_engine::store::s3::S3Store::new(&settings, Default::default())?);
            let names = [
                format!("vost-bench-{run_id}"),
                format!("vost-bench-{run_id}-2"),
                format!("vost-bench-{run_id}-peers"),
            ];
            for n in &names {
                store.create_bucket(n).with_context(|| format!("creating bucket {n} at {ep}"))?;
            }
            machine.s3_server = Some(ep.clone());
            let srv = config::server(Some((ep, &b.access_key, &b.secret_key, &names[..2])), None);
            (srv, names[0].clone(), names[1].clone(), None, Some((store, names)))
        }
        None => {
            let mount = work.path().join("mnt");
            for l in ["lsu1", "lsu2"] {
                std::fs::create_dir_all(mount.join(l))?;
            }
            machine.nfs_dir = Some(format!("{} (local file system standing for the NFS mount)", s(&mount)));
            (config::server(None, Some(&mount)), "lsu1".into(), "lsu2".into(), Some(mount), None)
        }
    };
    let config_path = work.path().join("vast-ost.toml");
    std::fs::write(&config_path, config::text(server, b.tuning.as_deref())?)?;
    let peers = match &b.s3 {
        Some(ep) => Some(S3Peers::new(&tools, ep, &b.access_key, &b.secret_key, work.path())?),
        None => None,
    };
    let cold = b.s3.is_none() && drop_caches();
    let ctx = Ctx {
        b,
        exe,
        plugin: plugin.to_path_buf(),
        config: config_path.clone(),
        log: work.path().join("vast-ost.log"),
        work: work.path().to_path_buf(),
        lsu,
        lsu2,
        mount,
        tools,
        peers,
        peer_bucket: store.as_ref().map(|(_, n)| n[2].clone()).unwrap_or_default(),
        store: store.as_ref().map(|(st, _)| st.clone()),
        cold: false,
    };
    println!(
        "bench: {} through {}, {} runs each, interleaved; work in {}",
        b.sizes.iter().map(|&n| human(n)).collect::<Vec<_>>().join(", "),
        b.s3.as_deref().map_or("the NFS path".to_string(), |e| format!("S3 {e}")),
        b.runs,
        ctx.work.display()
    );

    let result = match &b.s3 {
        Some(_) => s3_rows(&ctx),
        None => nfs_rows(&ctx, cold),
    };
    // The in-process part, on the first size, before anything is removed.
    let synth = match (&result, b.synthetics) {
        (Ok(_), true) => {
            let stored: inproc::Stored = match &store {
                Some((st, names)) => {
                    let (st, bucket) = (st.clone(), names[0].clone());
                    Box::new(move |image: &str| {
                        let (objects, _) = st.list_objects(&bucket, &format!("{image}/"), None)?;
                        Ok(objects.iter().map(|(_, n)| n).sum())
                    })
                }
                None => {
                    let root = ctx.mount.clone().unwrap_or_default().join(&ctx.lsu);
                    Box::new(move |image: &str| Ok(dir_bytes(&root.join(image))))
                }
            };
            let creds = (b.access_key.as_str(), b.secret_key.as_str());
            inproc::run(plugin, &config_path, &ctx.log, creds, &ctx.lsu, b.sizes[0], &stored)
        }
        _ => Ok(()),
    };
    // Whatever happened: remove what the bench made on the server.
    if let Some((st, names)) = &store {
        for n in names {
            if let Err(e) = st.remove_bucket(n) {
                println!("could not remove bucket {n}: {e:#}");
            }
        }
    }
    let rows = result?;
    synth?;
    machine.command = std::env::args().collect::<Vec<_>>().join(" ");
    if cold {
        machine.nfs_dir =
            machine.nfs_dir.map(|d| format!("{d}; page cache dropped before every restore run"));
    }
    let png = b.out.join("bench.png");
    let plotted = match plot::draw(&rows, &png) {
        Ok(true) => Some("bench.png"),
        Ok(false) => None,
        Err(e) => {
            println!("no plot: {e:#}");
            None
        }
    };
    std::fs::write(b.out.join("bench.md"), report::markdown(&rows, &machine, plotted))?;
    std::fs::write(b.out.join("bench.json"), report::json(&rows, &machine))?;
    println!("report: {}", b.out.join("bench.md").display());
    Ok(())
}

/// Bytes of the files below `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn size_point(series: &str, size: u64) -> Option<PlotPoint> {
    Some(PlotPoint { series: series.into(), axis: Axis::Size, x: size as f64 / (1u64 << 30) as f64 })
}

fn stream_point(series: &str, n: usize) -> Option<PlotPoint> {
    Some(PlotPoint { series: series.into(), axis: Axis::Streams, x: n as f64 })
}

/// The S3 rows: backup, restore to a sink and to a file, streams, random reads, copy.
fn s3_rows(ctx: &Ctx) -> Result<Vec<RowResult>> {
    let p = ctx.peers.as_ref().context("S3 peers")?;
    let (lsu, pb) = (ctx.lsu.as_str(), ctx.peer_bucket.as_str());
    let mut rows = Vec::new();
    for (i, &size) in ctx.b.sizes.iter().enumerate() {
        let (h, data) = (human(size), ctx.data(i, size)?);
        let d = s(&data);
        let src = format!("src-{i}");
        // The image and the object every read row reads, written untimed.
        measure::run_quiet(&ctx.vost(&["backup", lsu, &src, &d, "--block-size", BLOCK]))?;
        if let Some(c) = p.boto3(&["upload", &d, pb, &src]) {
            measure::run_quiet(&c)?;
        }
        let mut cs = vec![ctx.backups(&["up_1_C1_F1"], &d)];
        cs.extend(
            p.boto3(&["upload", &d, pb, "up-boto3"]).map(|c| peer("boto3 s3transfer", vec![c], vec![])),
        );
        cs.extend(
            p.aws(&["cp", &d, &format!("s3://{pb}/up-aws")]).map(|c| peer("aws s3 cp", vec![c], vec![])),
        );
        cs.extend(
            p.rclone(&["copyto", &d, &format!("bench:{pb}/up-rclone")])
                .map(|c| peer("rclone copyto", vec![c], vec![])),
        );
        rows.push(row(ctx, "S3", format!("backup {h}"), size, size_point("backup", size), cs));
        ctx.drop_peer_objects(&["up-boto3".into(), "up-aws".into(), "up-rclone".into()]);

        let mut cs =
            vec![ctx.subject(vec![ctx.vost(&["restore", lsu, &src, "-", "--block-size", BLOCK])], vec![])];
        cs.extend(p.boto3(&["download", pb, &src, "-"]).map(|c| peer("boto3 s3transfer", vec![c], vec![])));
        cs.extend(
            p.aws(&["cp", &format!("s3://{pb}/{src}"), "-"]).map(|c| peer("aws s3 cp", vec![c], vec![])),
        );
        cs.extend(
            p.rclone(&["cat", &format!("bench:{pb}/{src}")]).map(|c| peer("rclone cat", vec![c], vec![])),
        );
        rows.push(row(
            ctx,
            "S3",
            format!("restore {h} to a sink"),
            size,
            size_point("restore to a sink", size),
            cs,
        ));

        let out = |who: &str| s(&ctx.path(&format!("out-{who}")));
        let mut cs =
            vec![ctx.subject(
                vec![ctx.vost(&["restore", lsu, &src, &out("vost"), "--block-size", BLOCK])],
                vec![],
            )];
        cs.extend(
            p.boto3(&["download", pb, &src, &out("boto3")])
                .map(|c| peer("boto3 s3transfer", vec![c], vec![])),
        );
        cs.extend(
            p.aws(&["cp", &format!("s3://{pb}/{src}"), &out("aws")])
                .map(|c| peer("aws s3 cp", vec![c], vec![])),
        );
        cs.extend(
            p.rclone(&["copyto", &format!("bench:{pb}/{src}"), &out("rclone")])
                .map(|c| peer("rclone copyto", vec![c], vec![])),
        );
        rows.push(row(ctx, "S3", format!("restore {h} to a file"), size, None, cs));
        for w in ["vost", "boto3", "aws", "rclone"] {
            let _ = std::fs::remove_file(out(w));
        }
        if i > 0 {
            ctx.drop_source(&src, &data);
            continue;
        }
        // Streams, random reads and copies at the first size.
        for &n in ctx.b.streams.iter().filter(|&&n| n > 1) {
            let mut cs = vec![ctx.stream_backups(n, &d)];
            let boto: Option<Vec<Cmd>> =
                (0..n).map(|k| p.boto3(&["upload", &d, pb, &format!("st{k}")])).collect();
            cs.extend(boto.map(|c| peer("boto3 s3transfer", c, vec![])));
            rows.push(row(
                ctx,
                "S3",
                format!("{n} backups of {h} at once"),
                size * n as u64,
                stream_point("backup", n),
                cs,
            ));
            ctx.drop_peer_objects(&(0..n).map(|k| format!("st{k}")).collect::<Vec<_>>());
        }
        let mut cs = vec![ctx.random_reads(&src)];
        let (sz, count) = (size.to_string(), ctx.b.random_reads.to_string());
        cs.extend(
            p.boto3(&["random", pb, &src, &sz, &count, &RANDOM_BLOCK.to_string(), SEED])
                .map(|c| peer("boto3 ranged GETs", vec![c], vec![])),
        );
        rows.push(row(ctx, "S3", ctx.random_title(size), ctx.b.random_reads * RANDOM_BLOCK, None, cs));

        let mut cs = vec![ctx.copy(&src)];
        cs.push(Contender {
            who: "vast-ost restore | backup".into(),
            subject: false,
            cmds: vec![Cmd::shell(&format!(
                "{} | {}",
                shell_line(&ctx.vost(&["restore", lsu, &src, "-", "--block-size", BLOCK])),
                shell_line(&ctx.vost(&["backup", &ctx.lsu2, "rb_1_C1_F1", "-", "--block-size", BLOCK]))
            ))],
            before: vec![ctx.vost_delete(&ctx.lsu2, "rb_1_C1_F1")],
        });
        cs.extend(
            p.boto3(&["copy", pb, &src, pb, "copy-boto3"])
                .map(|c| peer("boto3 managed copy", vec![c], vec![])),
        );
        rows.push(row(ctx, "S3", format!("copy {h} to another bucket"), size, None, cs));
        ctx.drop_peer_objects(&["copy-boto3".into()]);
        ctx.drop_source(&src, &data);
    }
    Ok(rows)
}

/// The NFS rows: backup against dd and fio, cold restore, streams, random reads, copy.
fn nfs_rows(ctx: &Ctx, cold: bool) -> Result<Vec<RowResult>> {
    let mount = ctx.mount.as_ref().context("NFS mount")?;
    let lsu = ctx.lsu.as_str();
    let bs = "256k";
    let mut rows = Vec::new();
    for (i, &size) in ctx.b.sizes.iter().enumerate() {
        let (h, data) = (human(size), ctx.data(i, size)?);
        let d = s(&data);
        let mut cs = vec![ctx.backups(&["up_1_C1_F1"], &d)];
        let peer_file = mount.join("peer.out");
        if let Some(dd) = &ctx.tools.dd {
            let c = Cmd::new(dd).args([
                format!("if={d}"),
                format!("of={}", s(&peer_file)),
                "bs=256K".into(),
                "conv=fsync".into(),
                "status=none".into(),
            ]);
            cs.push(peer("dd bs=256K conv=fsync", vec![c], vec![]));
        }
        if let Some(fio) = &ctx.tools.fio {
            for (direct, depth) in [(false, 1), (true, 1), (true, 8)] {
                let f = Fio {
                    fio,
                    file: &peer_file,
                    rw: "write",
                    bs,
                    direct,
                    iodepth: depth,
                    size,
                    numjobs: 1,
                    ios: None,
                };
                let who = format!("fio {} iodepth {depth}", if direct { "direct" } else { "buffered" });
                cs.push(peer(&who, vec![f.cmd()], vec![]));
            }
        }
        rows.push(row(ctx, "NFS path", format!("backup {h}"), size, size_point("backup", size), cs));
        let _ = std::fs::remove_file(&peer_file);

        // Cold restores: the image and a peer file of the same bytes.
        let rctx = Ctx { cold, ..ctx.clone_shallow() };
        let src = format!("src-{i}");
        measure::run_quiet(&ctx.vost(&["backup", lsu, &src, &d, "--block-size", BLOCK]))?;
        let mut cs =
            vec![ctx.subject(vec![ctx.vost(&["restore", lsu, &src, "-", "--block-size", BLOCK])], vec![])];
        if let Some(dd) = &ctx.tools.dd {
            let c = Cmd::new(dd).args([
                format!("if={d}"),
                "of=/dev/null".into(),
                "bs=256K".into(),
                "status=none".into(),
            ]);
            cs.push(peer("dd bs=256K", vec![c], vec![]));
        }
        if let Some(fio) = &ctx.tools.fio {
            for depth in [1, 8] {
                let f = Fio {
                    fio,
                    file: &data,
                    rw: "read",
                    bs,
                    direct: true,
                    iodepth: depth,
                    size,
                    numjobs: 1,
                    ios: None,
                };
                cs.push(peer(&format!("fio direct iodepth {depth}"), vec![f.cmd()], vec![]));
            }
        }
        let title =
            format!("restore {h}{}", if cold { " (cold)" } else { " (page cache not dropped: not root)" });
        rows.push(row(&rctx, "NFS path", title, size, size_point("restore", size), cs));
        if i > 0 {
            ctx.drop_source(&src, &data);
            continue;
        }
        for &n in ctx.b.streams.iter().filter(|&&n| n > 1) {
            let mut cs = vec![ctx.stream_backups(n, &d)];
            if let Some(dd) = &ctx.tools.dd {
                let c: Vec<Cmd> = (0..n)
                    .map(|k| {
                        Cmd::new(dd).args([
                            format!("if={d}"),
                            format!("of={}", s(&mount.join(format!("peer{k}.out")))),
                            "bs=256K".into(),
                            "conv=fsync".into(),
                            "status=none".into(),
                        ])
                    })
                    .collect();
                cs.push(peer("dd bs=256K conv=fsync", c, vec![]));
            }
            rows.push(row(
                ctx,
                "NFS path",
                format!("{n} backups of {h} at once"),
                size * n as u64,
                stream_point("backup", n),
                cs,
            ));
            (0..n).for_each(|k| drop(std::fs::remove_file(mount.join(format!("peer{k}.out")))));
        }
        let mut cs = vec![ctx.random_reads(&src)];
        if let Some(fio) = &ctx.tools.fio {
            let f = Fio {
                fio,
                file: &data,
                rw: "randread",
                bs: "64k",
                direct: true,
                iodepth: 1,
                size,
                numjobs: 1,
                ios: Some(ctx.b.random_reads),
            };
            cs.push(peer("fio randread direct iodepth 1", vec![f.cmd()], vec![]));
        }
        rows.push(row(
            &rctx,
            "NFS path",
            ctx.random_title(size),
            ctx.b.random_reads * RANDOM_BLOCK,
            None,
            cs,
        ));

        let mut cs = vec![ctx.copy(&src)];
        if let Some(cp) = &ctx.tools.cp {
            let c = Cmd::new(cp).arg("--reflink=auto").arg(&data).arg(mount.join("peer.copy"));
            cs.push(peer("cp --reflink=auto", vec![c], vec![]));
        }
        rows.push(row(ctx, "NFS path", format!("copy {h} to another LSU"), size, None, cs));
        let _ = std::fs::remove_file(mount.join("peer.copy"));
        ctx.drop_source(&src, &data);
    }
    Ok(rows)
}

impl Ctx<'_> {
    /// The same context (for rows that differ only in whether caches are dropped).
    fn clone_shallow(&self) -> Ctx<'_> {
        Ctx {
            b: self.b,
            exe: self.exe.clone(),
            plugin: self.plugin.clone(),
            config: self.config.clone(),
            log: self.log.clone(),
            work: self.work.clone(),
            lsu: self.lsu.clone(),
            lsu2: self.lsu2.clone(),
            mount: self.mount.clone(),
            tools: self.tools.clone(),
            peers: None,
            peer_bucket: self.peer_bucket.clone(),
            store: self.store.clone(),
            cold: self.cold,
        }
    }
}

/// A command as one shell word list (for pipelines), each word quoted.
fn shell_line(c: &Cmd) -> String {
    let q = |w: &OsString| format!("'{}'", w.to_string_lossy().replace('\'', "'\\''"));
    let mut line: Vec<String> = c.env.iter().map(|(k, v)| format!("{k}={}", q(v))).collect();
    line.push(q(&c.program.clone().into_os_string()));
    line.extend(c.args.iter().map(q));
    line.join(" ")
}
