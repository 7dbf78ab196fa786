//! `vast-ost chaos`: NetBackup workloads under random faults, checked like Jepsen. Each
//! iteration starts a simulated cluster (an NFS view, an S3 bucket and a WORM bucket; every
//! other iteration with the S3 plane ignoring conditional writes) and an A.I.R. target
//! cluster (the NFS view replicates to it), runs several worker
//! processes through the real `.so` (two media servers: host names and caches apart) while
//! injecting faults ([`faults`]), then holds the storage to what the plug-in reported
//! ([`checker`]) and cleans up orphans, which must leave nothing unreferenced. Everything
//! random comes from the iteration's seed; a failure prints the one command that replays it.
//!
//! Rooms: [`worker`] (the workload, in its own process), [`record`] (what workers report),
//! [`faults`], [`checker`].

mod checker;
mod faults;
mod record;
pub mod worker;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::config_file::{ConfigFile, Log, Nfs, Server, Vms, S3};
use crate::session::{Loaded, Session};

const SERVER: &str = "VastData:chaos";
const LSUS: [&str; 2] = ["chaos-nfs", "chaos-s3"];
const WORM: &str = "chaos-worm";
/// The A.I.R. target: another simulated cluster, whose LSU receives `LSUS[0]`'s copies.
const DR: &str = "VastData:chaos-dr";
const DR_LSU: &str = "chaos-dr";
/// A worker that has not finished by then is hung.
const DEADLINE: Duration = Duration::from_secs(300);

/// splitmix64: small, seedable, the same everywhere.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

pub struct Chaos {
    pub iterations: u64,
    /// The run's seed (each iteration's is derived from it); random when not given.
    pub seed: Option<u64>,
    /// Run only this iteration seed (what a failure prints).
    pub replay: Option<u64>,
    pub workers: u32,
    pub ops: u32,
    /// Keep each iteration's directory (simulator data, records, plug-in log).
    pub keep: bool,
    /// A deliberate bug to switch on in the workers (`crate::plant` of the engine).
    pub plant: Option<String>,
}

/// The seed of iteration `i` of a run seeded `seed`.
fn iteration_seed(seed: u64, i: u64) -> u64 {
    Rng::new(seed ^ i.wrapping_mul(0x2545_f491_4f6c_dd1d)).next()
}

pub fn run(plugin: &Path, c: &Chaos) -> Result<()> {
    let seeds: Vec<u64> = match c.replay {
        Some(s) => vec![s],
        None => {
            let seed = c.seed.unwrap_or_else(|| {
                let t =
                    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                Rng::new(t.as_nanos() as u64 ^ std::process::id() as u64).next()
            });
            println!("chaos: {} iterations, seed {seed}", c.iterations);
            (0..c.iterations).map(|i| iteration_seed(seed, i)).collect()
        }
    };
    let start = Instant::now();
    for (i, s) in seeds.iter().enumerate() {
        let t = Instant::now();
        let tmp = tempfile::Builder::new().prefix("vast-ost-chaos-").tempdir()?;
        let r = iteration(plugin, tmp.path(), *s, c);
        if c.keep {
            println!("  kept {}", tmp.keep().display());
        }
        match r {
            Ok(summary) => {
                println!("iteration {i} (seed {s}): ok in {:.1} s: {summary}", t.elapsed().as_secs_f64())
            }
            Err(e) => {
                println!("iteration {i} (seed {s}): FAILED: {e:#}");
                println!(
                    "replay: vast-ost --plugin {} chaos --replay {s} --workers {} --ops {} --keep{}",
                    plugin.display(),
                    c.workers,
                    c.ops,
                    c.plant.as_ref().map_or(String::new(), |p| format!(" --plant {p}"))
                );
                bail!("chaos iteration {i} failed (seed {s})");
            }
        }
    }
    println!("chaos: {} iterations clean in {:.0} s", seeds.len(), start.elapsed().as_secs_f64());
    Ok(())
}

/// Start the cluster and provision its LSUs; the plug-in's config for it.
fn cluster(
    dir: &Path,
    seed: u64,
    ignore_preconditions: bool,
) -> Result<(Cluster, PathBuf, (String, String))> {
    let mut cfg = vast_sim::SimConfig::new(dir.join("cluster"));
    cfg.seed = seed;
    cfg.ignore_preconditions = ignore_preconditions;
    // Small parts, so multipart uploads (and their faults) happen at chaos sizes.
    cfg.min_part_size = 64 << 10;
    let sim = vast_sim::Sim::start(cfg).context("starting the simulator")?;
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, sim.ca_pem().unwrap_or_default())?;
    let mut keys = None;
    for (name, s3, worm) in [(LSUS[0], false, false), (LSUS[1], true, false), (WORM, true, true)] {
        let mut p = crate::provision::Provision::on_sim(sim.vms_url(), &ca, name, s3, keys.is_none());
        p.quiet = true;
        if worm {
            p.worm = Some(crate::provision::WormMode::Compliance);
            (p.min_retention, p.max_retention) = (Some("1h".into()), Some("30d".into()));
        }
        let k = crate::provision::run(&p, sim.admin_user(), sim.admin_password())
            .map_err(|e| e.context(format!("provisioning LSU {name}")))?;
        keys = keys.or(k);
    }
    let (ak, sk) = keys.context("provisioning gave no S3 key")?;
    let port: u16 = sim.s3_endpoints()[0].rsplit(':').next().unwrap_or_default().parse()?;
    let server = Server {
        name: SERVER.to_string(),
        vms: Some(Vms { address: sim.vms_url().to_string(), ca_file: Some(ca) }),
        nfs: Some(Nfs { mount: sim.root().to_path_buf(), direct_io: Some("auto") }),
        s3: Some(S3 {
            vip_port: Some(port),
            access_key: ak.clone(),
            secret_key: sk.clone(),
            ..S3::default()
        }),
        // The other media server's writers are judged gone after this, for the final cleanup.
        writer_silence_secs: Some(3),
        ..Server::default()
    };
    // The A.I.R. target cluster, and the pairing (the target's credentials in the config).
    let dr = vast_sim::Sim::start(vast_sim::SimConfig::new(dir.join("dr"))).context("starting the target")?;
    let dr_ca = dir.join("dr-ca.pem");
    std::fs::write(&dr_ca, dr.ca_pem().unwrap_or_default())?;
    let mut p = crate::provision::Provision::on_sim(dr.vms_url(), &dr_ca, DR_LSU, false, false);
    p.quiet = true;
    crate::provision::run(&p, dr.admin_user(), dr.admin_password())?;
    let dr_server = Server {
        name: DR.to_string(),
        vms: Some(Vms { address: dr.vms_url().to_string(), ca_file: Some(dr_ca) }),
        nfs: Some(Nfs { mount: dr.root().to_path_buf(), direct_io: Some("auto") }),
        writer_silence_secs: Some(3),
        ..Server::default()
    };
    let q = |v: &str| toml::Value::String(v.to_string()).to_string();
    let pairing = format!(
        "\n[[replication]]\nsource_server = {}\nsource_lsu = {}\ntarget_server = {}\ntarget_lsu = {}\n\
         target_user = {}\ntarget_password = {}\n",
        q(SERVER),
        q(LSUS[0]),
        q(DR),
        q(DR_LSU),
        q(dr.admin_user()),
        q(dr.admin_password())
    );
    let config = dir.join("vast-ost.toml");
    let text =
        ConfigFile { log: Some(Log { level: "info" }), servers: vec![server, dr_server] }.to_toml(None)?;
    std::fs::write(&config, text + &pairing)?;
    Ok((Cluster { sim, dr }, config, (ak, sk)))
}

/// The source cluster and the A.I.R. target.
struct Cluster {
    sim: vast_sim::Sim,
    dr: vast_sim::Sim,
}

fn iteration(plugin: &Path, dir: &Path, seed: u64, c: &Chaos) -> Result<String> {
    let mut rng = Rng::new(seed);
    let ignore = rng.below(2) == 1;
    let (cl, config, _keys) = cluster(dir, seed, ignore)?;
    let sim = &cl.sim;
    // NetBackup's credentials for the server are the VMS login (the S3 key is in the config).
    let (ak, sk) = (sim.admin_user().to_string(), sim.admin_password().to_string());
    let log = dir.join("vast-ost.log");
    let exe = std::env::current_exe()?;
    let spawn = |w: u32, wseed: u64| -> Result<Child> {
        Command::new(&exe)
            .arg("--plugin")
            .arg(plugin)
            .arg("--config")
            .arg(&config)
            .args(["--server", SERVER, "--user", &ak, "--password", &sk, "chaos-worker"])
            .args(["--id", &w.to_string(), "--seed", &wseed.to_string(), "--ops", &c.ops.to_string()])
            .arg("--record")
            .arg(dir.join(format!("record-{w}.jsonl")))
            .args(["--lsus", &LSUS.join(","), "--worm", WORM])
            // Two media servers: host names and caches apart.
            .env("VAST_OST_HOSTNAME", format!("media{}", w % 2))
            .env("VAST_OST_CACHE_DIR", dir.join(format!("cache{}", w % 2)))
            .env("VAST_OST_LOG", &log)
            .env("VAST_OST_CHAOS_PLANT", c.plant.as_deref().unwrap_or(""))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting a chaos worker")
    };
    let mut workers: Vec<(Child, bool)> = Vec::new();
    for w in 0..c.workers {
        workers.push((spawn(w, rng.next())?, false));
    }
    // Faults until every worker is done.
    let started = Instant::now();
    let mut applied = Vec::new();
    let mut killed = false;
    let fault_seed = rng.next();
    while workers.iter_mut().any(|(ch, _)| matches!(ch.try_wait(), Ok(None))) {
        if started.elapsed() > DEADLINE {
            for (ch, _) in &mut workers {
                let _ = ch.kill();
            }
            bail!("a worker hung: not done after {:?}; {}", DEADLINE, recent(&applied));
        }
        let (wait, f) = faults::next(&mut rng, sim.s3_endpoints().len(), workers.len(), killed);
        std::thread::sleep(wait);
        if let faults::Fault::Kill(i) = f {
            if matches!(workers[i].0.try_wait(), Ok(None)) {
                let _ = workers[i].0.kill();
                workers[i].1 = true;
                killed = true;
            }
        } else {
            faults::apply(sim, &f, fault_seed);
        }
        applied.push(f);
    }
    sim.clear_faults()?;
    faults::all_up(sim);
    for (w, (ch, by_us)) in workers.iter_mut().enumerate() {
        let status = ch.wait()?;
        if !status.success() && !*by_us {
            let mut err = String::new();
            if let Some(mut e) = ch.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            bail!("worker {w} ended with {status}: {}; {}", err.trim(), recent(&applied));
        }
    }
    let events: Vec<Vec<record::Event>> = (0..c.workers)
        .map(|w| record::read(&dir.join(format!("record-{w}.jsonl"))))
        .collect::<Result<_>>()?;

    // Check through a fresh session on the same plug-in, then clean up and check again.
    std::env::set_var(crate::session::CONFIG_ENV, &config);
    std::env::set_var(crate::session::LOG_ENV, &log);
    let bad = {
        let s = Session::open(Loaded::new(plugin)?, SERVER, &ak, &sk)?;
        let t = Session::open(Loaded::new(plugin)?, DR, cl.dr.admin_user(), cl.dr.admin_password())?;
        checker::check(&s, (&t, DR_LSU), &events)?
    };
    if !bad.is_empty() {
        bail!("{} broken promise(s):\n  {}\n{}", bad.len(), bad.join("\n  "), recent(&applied));
    }
    // Writers of the other media server are judged gone after their silence window.
    std::thread::sleep(Duration::from_secs(4));
    let mut left = leftovers(&config, SERVER, (&ak, &sk), &[LSUS[0], LSUS[1], WORM])?;
    left.extend(leftovers(&config, DR, (cl.dr.admin_user(), cl.dr.admin_password()), &[DR_LSU])?);
    if !left.is_empty() {
        bail!("after orphan cleanup, left behind: {}", left.join("; "));
    }
    let n: usize = events.iter().map(Vec::len).sum();
    let air = events.iter().flatten().filter(|e| matches!(e, record::Event::Replicated { .. })).count();
    let summary = format!(
        "{n} events ({air} A.I.R. copies), {} faults{}{}",
        applied.len(),
        if killed { ", a worker killed" } else { "" },
        if ignore { ", S3 ignoring preconditions" } else { "" }
    );
    drop(cl);
    Ok(summary)
}

/// The last faults applied (the replay has them all).
fn recent(applied: &[faults::Fault]) -> String {
    let tail = &applied[applied.len().saturating_sub(12)..];
    format!("{} faults, the last: {tail:?}", applied.len())
}

/// Remove orphans on every LSU (stale pending images too: every writer is gone), then what
/// is still unreferenced, and open uploads: each as a line.
fn leftovers(
    config: &Path,
    name: &str,
    (user, password): (&str, &str),
    lsus: &[&str],
) -> Result<Vec<String>> {
    let engine = vast_ost_engine::Engine::new(config)?;
    let creds = vast_ost_engine::Credentials {
        user: user.to_string(),
        password: vast_ost_engine::Secret::new(password),
    };
    let server = engine.open_server(name, &creds)?;
    let mut left = Vec::new();
    for lsu in lsus {
        let o = server.find_orphans(lsu, Duration::ZERO)?;
        if !o.is_empty() {
            // Pieces WORM-locked by their image's lock are not orphans; a failure here is.
            server.remove_orphans(lsu, &o, true).with_context(|| format!("removing orphans of {lsu}"))?;
        }
        let again = server.find_orphans(lsu, Duration::ZERO)?;
        if !again.is_empty() {
            left.push(format!("{lsu}: {again:?}"));
        }
    }
    Ok(left)
}
