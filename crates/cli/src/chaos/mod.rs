//! `vast-ost chaos`: NetBackup workloads under random faults, checked like Jepsen.
//!
//! Each iteration starts the embedded VAST simulator (an S3 bucket with a quota, a locking
//! WORM bucket, an NFS view on its own small file system when one can be mounted; half of the
//! iterations with the S3 plane ignoring `If-None-Match`/`If-Match`), puts a fault proxy in
//! front of every VIP and VMS, and runs several worker processes (`chaos-worker`: the real
//! `.so` by dlopen, two media-server host names) through the workload of [`workload`] while
//! [`faults`] injects the schedule drawn from the same seed. Afterwards, with every fault
//! cleared, a verify process lists and restores, `vast-ost cleanup --remove` runs on each LSU,
//! and [`checker`] applies its rules to the records ([`record`]) and the storage.
//!
//! A failing iteration prints its seed and the one command that replays it.

mod checker;
mod content;
mod faults;
mod record;
mod rng;
mod workload;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::json;
use vast_ost_engine::filter::LsuFilter;
use vast_ost_engine::store::s3::{S3Settings, S3Store};
use vast_ost_engine::vms::{Vms, VmsSettings};
use vast_ost_engine::{Credentials, Secret};
use vast_sim::proxy::Proxy;
use vast_sim::{Sim, SimConfig};

use self::record::Event;
use self::rng::Rng;
pub use self::workload::WorkerArgs;

/// Worker processes and operations per worker of an iteration, unless told otherwise.
pub const DEFAULT_WORKERS: usize = 3;
pub const DEFAULT_OPS: usize = 24;
/// The storage server every iteration configures.
const SERVER: &str = "VastData:chaos";
/// Media-server host names of the workers, in turn: two hosts, one with two processes.
const HOSTS: [&str; 3] = ["media-a", "media-b", "media-a"];
/// Each media-server host name once.
fn media_hosts() -> Vec<&'static str> {
    let mut h = HOSTS.to_vec();
    h.sort();
    h.dedup();
    h
}

/// Past this, a worker is killed and reported hung.
const WORKER_DEADLINE: Duration = Duration::from_secs(300);
/// Faults are drawn over this much of the workload.
const HORIZON: Duration = Duration::from_millis(2500);
/// `writer_silence_secs` (its minimum): writers heartbeat every second.
const SILENCE: u64 = 3;
/// The environment variable the engine reads a planted bug from (builds with the
/// `chaos-plant` feature only).
pub const PLANT_ENV: &str = "VAST_OST_CHAOS_PLANT";

pub struct Options {
    pub iterations: u64,
    pub seed: Option<u64>,
    /// Run only this iteration of the run (a replay).
    pub only: Option<u64>,
    pub workers: usize,
    pub ops: usize,
    pub plant: Option<String>,
    /// Keep every iteration's directory (a failing one is always kept).
    pub keep: bool,
    /// Iterations run side by side.
    pub jobs: usize,
}

/// Run the iterations; an error when any failed.
pub fn run(plugin: &Path, o: &Options) -> Result<()> {
    let seed = o.seed.unwrap_or_else(|| {
        let mut b = [0u8; 8];
        std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b)).ok();
        u64::from_le_bytes(b) % 1_000_000_000
    });
    let plugin = std::path::absolute(plugin)?;
    if !plugin.exists() {
        bail!("{} is missing: build it first (cargo build -p vast-ost-plugin)", plugin.display());
    }
    let range = match o.only {
        Some(i) => i..i + 1,
        None => 0..o.iterations,
    };
    println!(
        "chaos: seed {seed}, iterations {}..{}, {} workers x {} ops, plug-in {}{}",
        range.start,
        range.end,
        o.workers,
        o.ops,
        plugin.display(),
        o.plant.as_ref().map(|p| format!(", PLANTED BUG {p}")).unwrap_or_default()
    );
    let start = Instant::now();
    // Iterations are independent: `jobs` threads take the next one until one fails.
    let next = std::sync::atomic::AtomicU64::new(range.start);
    let failed = AtomicBool::new(false);
    let out = Mutex::new(());
    std::thread::scope(|sc| {
        for _ in 0..o.jobs.max(1) {
            sc.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= range.end || failed.load(Ordering::SeqCst) {
                    return;
                }
                let t = Instant::now();
                let mut it = Iteration::new(seed, i, o);
                let res = it.run(&plugin);
                let _g = out.lock().unwrap_or_else(|p| p.into_inner());
                let secs = t.elapsed().as_secs_f64();
                match res {
                    Ok(v) if v.is_empty() => {
                        println!("iteration {i}: ok ({secs:.1} s){}", it.summary);
                        if !o.keep {
                            it.remove();
                        }
                    }
                    res => {
                        failed.store(true, Ordering::SeqCst);
                        let lines =
                            res.unwrap_or_else(|e| vec![format!("the iteration could not run: {e:#}")]);
                        println!("iteration {i}: FAILED ({secs:.1} s){}", it.summary);
                        for l in lines.iter().take(20) {
                            println!("  - {l}");
                        }
                        if lines.len() > 20 {
                            println!("  - ... and {} more", lines.len() - 20);
                        }
                        println!(
                            "  seed {seed}, iteration {i} (iteration seed {}); files kept in {}",
                            it.seed,
                            it.dir.display()
                        );
                        println!("  replay: {}", replay_command(seed, i, o));
                    }
                }
                let _ = std::io::stdout().flush();
            });
        }
    });
    let failed = failed.load(Ordering::SeqCst);
    let ran = if failed { "stopped at the first failure" } else { "all clean" };
    println!("chaos: seed {seed}: {ran}; {:.0} s in all", start.elapsed().as_secs_f64());
    if failed {
        bail!("chaos: an iteration failed (seed {seed})");
    }
    Ok(())
}

fn replay_command(seed: u64, i: u64, o: &Options) -> String {
    let plant = o.plant.as_ref().map(|p| format!(" --plant {p}")).unwrap_or_default();
    let defaults = o.workers == DEFAULT_WORKERS && o.ops == DEFAULT_OPS;
    let script =
        if defaults { format!("scripts/chaos{plant} --replay {i} {seed}  # or: ") } else { String::new() };
    format!("{script}vast-ost chaos --seed {seed} --only {i} --workers {} --ops {}{plant}", o.workers, o.ops)
}

/// One iteration: its seed, directory and choices.
struct Iteration<'a> {
    o: &'a Options,
    seed: u64,
    dir: PathBuf,
    ignore_preconditions: bool,
    summary: String,
}

/// A child process with its role.
struct Worker {
    k: usize,
    child: Child,
}

impl<'a> Iteration<'a> {
    fn new(run_seed: u64, i: u64, o: &'a Options) -> Iteration<'a> {
        let seed = Rng::derive(run_seed, i);
        let dir = std::env::temp_dir().join(format!("vast-ost-chaos-{run_seed}-{i}"));
        let ignore_preconditions = Rng::new(Rng::derive(seed, 1)).chance(0.5);
        Iteration { o, seed, dir, ignore_preconditions, summary: String::new() }
    }

    fn remove(&self) {
        unmount(&self.dir.join("cluster/nbu/nfs"));
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    fn run(&mut self, plugin: &Path) -> Result<Vec<String>> {
        self.remove();
        std::fs::create_dir_all(&self.dir)?;
        let d = &self.dir;
        // The NFS view on its own tmpfs, so "disk full" is a real ENOSPC (needs mount rights).
        let nfs_dir = d.join("cluster/nbu/nfs");
        std::fs::create_dir_all(&nfs_dir)?;
        let nfs_fs = mount_tmpfs(&nfs_dir).then(|| nfs_dir.clone());

        let mut cfg = SimConfig::new(d.join("cluster"));
        cfg.min_part_size = 64 << 10;
        cfg.seed = self.seed;
        cfg.ignore_preconditions = self.ignore_preconditions;
        let sim = Sim::start(cfg).context("starting the simulator")?;
        let ca = d.join("ca.pem");
        std::fs::write(&ca, sim.ca_pem().unwrap_or_default())?;
        let admin = admin(&sim, &ca)?;
        let (ak, sk, quota) = provision(&admin)?;

        let s3: Vec<Proxy> = sim.s3_endpoints().iter().map(|e| Proxy::start(e)).collect();
        let vms_px = Proxy::start(sim.vms_url().trim_start_matches("https://"));
        // The A.I.R. target: a second cluster with an NFS view, paired with `nbu-nfs`.
        let dr = Sim::start(SimConfig::new(d.join("dr"))).context("starting the A.I.R. target")?;
        let dr_ca = d.join("dr-ca.pem");
        std::fs::write(&dr_ca, dr.ca_pem().unwrap_or_default())?;
        self::admin(&dr, &dr_ca)?.post(
            "views/",
            &json!({"name": workload::DR_LSU, "path": "/nbu/dr", "policy_id": 1, "protocols": ["NFS"],
                    "create_dir": true}),
        )?;
        let config = d.join("vast-ost.toml");
        write_config(&config, (&sim, &ca), (&dr, &dr_ca), &vms_px, &s3, (&ak, &sk))?;

        let shape = faults::Shape { vips: s3.len(), workers: self.o.workers };
        let plan = faults::schedule(Rng::derive(self.seed, 2), &shape, HORIZON);
        let names: Vec<String> =
            plan.iter().map(|p| format!("{:>5} ms {:?}", p.at.as_millis(), p.fault)).collect();
        std::fs::write(d.join("faults.txt"), names.join("\n"))?;

        let start = Instant::now();
        let workers: Vec<Worker> = (0..self.o.workers)
            .map(|k| self.spawn_worker(plugin, &config, &sim, k))
            .collect::<Result<_>>()?;
        let pids: Vec<i32> = workers.iter().map(|w| w.child.id() as i32).collect();
        let killed = Mutex::new(vec![false; workers.len()]);
        let kill = |k: usize| {
            if let Some(&pid) = pids.get(k) {
                killed.lock().unwrap_or_else(|p| p.into_inner())[k] = true;
                // SAFETY: signals a child of ours (not yet reaped: it is reaped only below).
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        };
        let targets = faults::Targets {
            sim: &sim,
            s3: &s3,
            vms: &vms_px,
            admin: &admin,
            quota,
            nfs_fs: nfs_fs.clone(),
            kill: &kill,
        };
        let stop = AtomicBool::new(false);
        let mut problems = Vec::new();
        let applied = std::thread::scope(|sc| {
            let f = sc.spawn(|| faults::run(&plan, &targets, start, &stop));
            problems = self.wait_workers(workers, &killed);
            stop.store(true, Ordering::SeqCst);
            f.join().unwrap_or_default()
        });
        // Every fault cleared for the checks.
        sim.clear_faults()?;
        for p in s3.iter().chain([&vms_px]) {
            p.clear();
        }
        let _ = admin.patch(&format!("quotas/{quota}/"), &json!({ "hard_limit": faults::UNLIMITED }));
        if let Some(fs) = &nfs_fs {
            let _ = std::fs::remove_file(fs.join(".chaos-filler"));
        }
        let clock = vast_ost_engine::util::now_secs() + applied.clock_jumped;

        // The checks.
        let records: Vec<Vec<Event>> =
            (0..self.o.workers).map(|k| record::read(&workload::record_path(d, k))).collect::<Result<_>>()?;
        let ops: usize = records.iter().map(|r| r.len()).sum();
        let kills = killed.lock().unwrap_or_else(|p| p.into_inner()).iter().filter(|&&k| k).count();
        let kinds: Vec<&str> = plan.iter().map(|p| p.kind).collect();
        let air = records.iter().flatten().filter(|e| matches!(e, Event::Replicated { .. })).count();
        let summary =
            format!(
            "; faults [{}] ({} applied), {} kill(s), {} record lines, {air} A.I.R. copies, preconditions {}",
            kinds.join(" "),
            applied.faults,
            kills,
            ops,
            if self.ignore_preconditions { "IGNORED" } else { "honoured" }
        ) + if nfs_fs.is_none() { "; NFS disk full skipped (no tmpfs: needs mount rights)" } else { "" };
        let mut expect = checker::to_restore(&records);
        expect.extend(checker::replicated(&records, workload::DR_LSU));
        std::fs::write(d.join("expect.json"), serde_json::to_vec(&expect)?)?;
        let before = self.verify(plugin, &config, &sim, "verify-1", true)?;
        problems.extend(checker::image_rules(&records, &before, clock));
        problems.extend(checker::air_rules(&records, &before, workload::DR_LSU));
        // Cleanup as each media server: a dead writer of its own host is known gone by its pid
        // (another host's only after `writer_silence_secs` without a commit).
        for host in media_hosts() {
            for (server, l) in all_lsus() {
                problems.extend(self.cleanup(plugin, &config, &sim, (server, l), Some(host)));
            }
        }
        let after = self.verify(plugin, &config, &sim, "verify-2", false)?;
        let (b, a) = (checker::seen(&before), checker::seen(&after));
        problems.extend(checker::cleanup_kept(&b, &a));
        problems.extend(storage((&sim, &dr), &ak, &sk, &a)?);
        for (server, l) in all_lsus() {
            problems.extend(self.cleanup(plugin, &config, &sim, (server, l), None));
        }
        drop(sim);
        drop(dr);
        self.summary = summary;
        Ok(problems)
    }

    fn spawn_worker(&self, plugin: &Path, config: &Path, sim: &Sim, k: usize) -> Result<Worker> {
        let host = HOSTS[k % HOSTS.len()];
        let mut c = self.worker_command(plugin, config, host);
        c.args(["--worker", &k.to_string(), "--workers", &self.o.workers.to_string()])
            .args(["--seed", &self.seed.to_string(), "--ops", &self.o.ops.to_string()])
            .args(["--user", sim.admin_user(), "--password", sim.admin_password()]);
        let out = std::fs::File::create(self.dir.join(format!("worker-{k}.out")))?;
        c.stdout(out.try_clone()?).stderr(out);
        Ok(Worker { k, child: c.spawn().context("starting a chaos worker")? })
    }

    fn worker_command(&self, plugin: &Path, config: &Path, host: &str) -> Command {
        let mut c = Command::new(std::env::current_exe().unwrap_or_else(|_| "vast-ost".into()));
        c.arg("--plugin").arg(plugin).arg("chaos-worker").arg("--dir").arg(&self.dir);
        c.env("VAST_OST_CONFIG", config)
            .env("VAST_OST_LOG", self.dir.join("vast-ost.log"))
            .env("VAST_OST_CACHE_DIR", self.dir.join(format!("cache-{host}")))
            .env("VAST_OST_HOSTNAME", host)
            .env("VAST_OST_SERVER", SERVER)
            .stdin(Stdio::null());
        match &self.o.plant {
            Some(p) => c.env(PLANT_ENV, p),
            None => c.env_remove(PLANT_ENV),
        };
        c
    }

    /// Wait for every worker (killing any past the deadline); what went wrong with them.
    fn wait_workers(&self, mut ws: Vec<Worker>, killed: &Mutex<Vec<bool>>) -> Vec<String> {
        let start = Instant::now();
        let mut out = Vec::new();
        while !ws.is_empty() {
            let mut i = 0;
            while i < ws.len() {
                match ws[i].child.try_wait() {
                    Ok(Some(st)) => {
                        let w = ws.swap_remove(i);
                        let was_killed = killed.lock().unwrap_or_else(|p| p.into_inner())[w.k];
                        if !st.success() && !was_killed {
                            out.push(format!(
                                "worker {} ({}) crashed: {st} (see {}/worker-{}.out)",
                                w.k,
                                HOSTS[w.k % HOSTS.len()],
                                self.dir.display(),
                                w.k
                            ));
                        }
                    }
                    Ok(None) if start.elapsed() > WORKER_DEADLINE => {
                        let mut w = ws.swap_remove(i);
                        let _ = w.child.kill();
                        let _ = w.child.wait();
                        out.push(format!(
                            "worker {} hung: killed after {} s",
                            w.k,
                            WORKER_DEADLINE.as_secs()
                        ));
                    }
                    _ => i += 1,
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        out
    }

    /// The verify pass in a process of its own (no faults): listings, and with `restore` a
    /// whole restore of every image whose content is known.
    fn verify(
        &self,
        plugin: &Path,
        config: &Path,
        sim: &Sim,
        name: &str,
        restore: bool,
    ) -> Result<Vec<Event>> {
        let mut c = self.worker_command(plugin, config, "chaos-checker");
        c.args(["--verify", name, "--user", sim.admin_user(), "--password", sim.admin_password()]);
        if restore {
            c.arg("--expect").arg(self.dir.join("expect.json"));
        }
        let out = c.output().context("running the verify pass")?;
        let events = record::read(&self.dir.join(format!("{name}.jsonl")))?;
        if !out.status.success() || !events.contains(&Event::Done) {
            bail!(
                "the verify pass failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")
            );
        }
        Ok(events)
    }

    /// `vast-ost cleanup LSU --older-than 0s --remove --pending` on media server `host`, or
    /// without `host` the dry run after them; problems: a failed run, or anything the dry run
    /// still finds.
    fn cleanup(
        &self,
        plugin: &Path,
        config: &Path,
        sim: &Sim,
        (server, lsu): (&str, &str),
        host: Option<&str>,
    ) -> Vec<String> {
        let remove = host.is_some();
        let mut c = Command::new(std::env::current_exe().unwrap_or_else(|_| "vast-ost".into()));
        c.arg("--plugin").arg(plugin).arg("--config").arg(config).args(["--server", server]);
        c.args(["--user", sim.admin_user(), "--password", sim.admin_password()]);
        c.args(["cleanup", lsu, "--older-than", "0s"]);
        if remove {
            c.args(["--remove", "--pending"]);
        }
        c.env("VAST_OST_LOG", self.dir.join("vast-ost.log"))
            .env("VAST_OST_HOSTNAME", host.unwrap_or("chaos-checker"));
        let out = match c.output() {
            Ok(o) => o,
            Err(e) => return vec![format!("cleanup {lsu}: {e}")],
        };
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("cleanup.out"))
            .and_then(|mut f| writeln!(f, "$ cleanup {lsu} remove={remove}\n{text}"));
        if !out.status.success() {
            return vec![format!(
                "cleanup {lsu} (remove={remove}) failed: {}",
                text.trim().replace('\n', " | ")
            )];
        }
        if !remove && !text.contains("no orphans") {
            return vec![format!(
                "after cleanup --remove, {lsu} still has orphans: {}",
                text.trim().replace('\n', " | ")
            )];
        }
        Vec::new()
    }
}

/// What is stored in each LSU after cleanup, against what the listed images reference (read
/// from their manifests here, not through the plug-in's cleanup).
fn storage((sim, dr): (&Sim, &Sim), ak: &str, sk: &str, a: &checker::Seen) -> Result<Vec<String>> {
    use vast_ost_engine::manifest::Manifest;
    use vast_ost_engine::store::PieceStore;
    let s3 = S3Store::new(&S3Settings::new(sim.s3_endpoints(), ak, sk), LsuFilter::default())?;
    let nfs_dir = |l: &str| match l {
        "nbu-nfs" => Some(sim.root().join("nbu/nfs")),
        workload::DR_LSU => Some(dr.root().join("nbu/dr")),
        _ => None,
    };
    let mut out = Vec::new();
    for (_, l) in all_lsus() {
        let mut referenced = std::collections::BTreeSet::new();
        for (_, image) in a.listed.keys().filter(|(x, _)| x == l) {
            let raw = match nfs_dir(l) {
                Some(dir) => std::fs::read(dir.join(image).join("manifest")).ok(),
                None => s3.read_manifest(l, image)?,
            };
            let Some(raw) = raw else { continue };
            let m = Manifest::decode(&raw).map_err(|e| anyhow!("{l}/{image}: {e}"))?;
            referenced.extend(m.pieces.into_iter().map(|p| p.key));
        }
        let (keys, uploads) = match nfs_dir(l) {
            Some(dir) => (files_below(&dir, &dir), Vec::new()),
            None => {
                let (objects, _) = s3.list_objects(l, "", None)?;
                (objects.into_iter().map(|(k, _)| k).collect(), s3.list_uploads(l, "")?)
            }
        };
        // On the WORM bucket, the keys of no listed image that the storage holds under a
        // running lock (asked of the storage here, not taken from the plug-in's cleanup).
        let mut held = std::collections::BTreeSet::new();
        if l == workload::WORM_LSU {
            for k in &keys {
                let image = k.split_once('/').map_or(k.as_str(), |(i, _)| i);
                if !a.listed.contains_key(&(l.to_string(), image.to_string()))
                    && s3.retention(l, k)?.is_some_and(|r| r.active)
                {
                    held.insert(k.clone());
                }
            }
        }
        out.extend(checker::storage_rules(l, &keys, &uploads, a, (&referenced, &held)));
    }
    Ok(out)
}

/// Every LSU of the iteration with its server: the source cluster's and the A.I.R. target's.
fn all_lsus() -> Vec<(&'static str, &'static str)> {
    let mut v: Vec<_> = workload::LSUS.iter().map(|l| (SERVER, *l)).collect();
    v.push((workload::DR_SERVER, workload::DR_LSU));
    v
}

/// Every file below `dir`, as paths relative to `root`.
fn files_below(dir: &Path, root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_below(&p, root));
        } else if let Ok(rel) = p.strip_prefix(root) {
            out.push(rel.to_string_lossy().into_owned());
        }
    }
    out
}

fn admin(sim: &Sim, ca: &Path) -> Result<Vms> {
    let tls = vast_ost_engine::http::TlsSettings { ca_file: Some(ca.to_path_buf()), insecure: false };
    let c = Credentials { user: sim.admin_user().into(), password: Secret::new(sim.admin_password()) };
    Ok(Vms::connect(&VmsSettings::new(sim.vms_url(), tls), &c)?)
}

/// The LSUs: `nbu-s3` (a bucket with a quota), `nbu-worm` (a COMPLIANCE locking bucket,
/// 1 h .. 1 y) and `nbu-nfs` (an NFS view); the bucket owner's S3 key and the quota's id.
fn provision(vms: &Vms) -> Result<(String, String, u64)> {
    vms.post(
        "views/",
        &json!({"name": "nbu-nfs", "path": "/nbu/nfs", "policy_id": 1, "protocols": ["NFS"],
                               "create_dir": true}),
    )?;
    let user = vms.post("users/", &json!({"name": "nbu-s3", "uid": 50001}))?;
    let key = vms.post(&format!("users/{}/access_keys/", user["id"]), &json!({}))?;
    let field = |k: &str| key[k].as_str().map(String::from).ok_or_else(|| anyhow!("no {k} in {key}"));
    let (ak, sk) = (field("access_key")?, field("secret_key")?);
    vms.post(
        "views/",
        &json!({"name": "nbu-s3", "path": "/nbu/s3", "policy_id": 2, "protocols": ["S3"],
                               "bucket": "nbu-s3", "bucket_owner": "nbu-s3", "create_dir": true}),
    )?;
    vms.post("views/", &json!({"name": "nbu-worm", "path": "/nbu/worm", "policy_id": 2, "protocols": ["S3"],
                               "bucket": "nbu-worm", "bucket_owner": "nbu-s3", "create_dir": true,
                               "s3_versioning": true, "locking": true, "s3_locks_retention_mode": "COMPLIANCE",
                               "min_retention_period": "1h", "max_retention_period": "1y"}))?;
    let q =
        vms.post("quotas/", &json!({"name": "nbu-s3", "path": "/nbu/s3", "hard_limit": faults::UNLIMITED}))?;
    let quota = q["id"].as_u64().ok_or_else(|| anyhow!("no quota id in {q}"))?;
    Ok((ak, sk, quota))
}

/// The plug-in's config: the source cluster through the fault proxies (VMS and every VIP),
/// the A.I.R. target cluster directly, and their pairing.
fn write_config(
    path: &Path,
    (sim, ca): (&Sim, &Path),
    (dr, dr_ca): (&Sim, &Path),
    vms: &Proxy,
    s3: &[Proxy],
    (ak, sk): (&str, &str),
) -> Result<()> {
    let endpoints: Vec<String> = s3.iter().map(|p| format!("\"{}\"", p.url())).collect();
    let text = format!(
        "[log]\nlevel = \"debug\"\n\n[[server]]\nname = \"{SERVER}\"\nlsu_prefix = \"nbu-\"\ncapacity_ttl_secs = 1\n\
         writer_silence_secs = {SILENCE}\n\
         [server.vms]\naddress = \"https://{}\"\nca_file = \"{}\"\ntimeout_secs = 3\n\
         [server.nfs]\nmount = \"{}\"\n\
         [server.s3]\nendpoints = [{}]\naccess_key = \"{ak}\"\nsecret_key = \"{sk}\"\n\
         part_size = 1048576\nallow_small_parts = true\nupload_workers = 2\nread_ahead = 2\ntimeout_secs = 2\n\n\
         [[server]]\nname = \"{}\"\nlsu_prefix = \"nbu-\"\nwriter_silence_secs = {SILENCE}\n\
         [server.vms]\naddress = \"{}\"\nca_file = \"{}\"\n[server.nfs]\nmount = \"{}\"\n\n\
         [[replication]]\nsource_server = \"{SERVER}\"\nsource_lsu = \"{}\"\ntarget_server = \"{}\"\n\
         target_lsu = \"{}\"\ntarget_user = \"{}\"\ntarget_password = \"{}\"\n",
        vms.addr(),
        ca.display(),
        sim.root().display(),
        endpoints.join(", "),
        workload::DR_SERVER,
        dr.vms_url(),
        dr_ca.display(),
        dr.root().display(),
        workload::AIR_LSU,
        workload::DR_SERVER,
        workload::DR_LSU,
        dr.admin_user(),
        dr.admin_password(),
    );
    std::fs::write(path, text)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

/// Mount a 256 MiB tmpfs at `dir`; false where that is not allowed (then no "NFS disk full").
fn mount_tmpfs(dir: &Path) -> bool {
    Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256m", "tmpfs"])
        .arg(dir)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn unmount(dir: &Path) {
    let _ = Command::new("umount").arg("-l").arg(dir).stderr(Stdio::null()).status();
}

/// `vast-ost chaos-worker`: one process of an iteration (or its verify pass).
pub fn worker(plugin: &Path, args: WorkerArgs, verify: Option<(String, Option<PathBuf>)>) -> Result<()> {
    let Some((name, expect)) = verify else {
        return workload::run(args, plugin);
    };
    let rec = record::Recorder::create(&args.dir.join(format!("{name}.jsonl")))?;
    let expect: Vec<(String, String, content::Content)> = match expect {
        Some(p) => serde_json::from_slice(&std::fs::read(&p)?)?,
        None => Vec::new(),
    };
    let p = vast_ost_host::Plugin::load(plugin).map_err(anyhow::Error::msg)?;
    p.init().context("stspi_init")?;
    let source = p.open_server(&args.server, &args.user, &args.password).context("open_server")?;
    let target =
        p.open_server(workload::DR_SERVER, &args.user, &args.password).context("open_server (target)")?;
    workload::verify(&p, &workload::Servers { source, target }, &rec, &expect);
    let _ = p.close_server(source);
    let _ = p.close_server(target);
    rec.log(&Event::Done);
    Ok(())
}
