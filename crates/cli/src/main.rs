//! `vast-ost`: drive the VAST Data OST plug-in (`libstspiVastDataMT.so`) from the command
//! line, through its C interface only, the way NetBackup's processes do: `bpstsinfo`-like
//! queries, backup/restore/verify/copy/delete of images, and a self-contained demo.

mod bench;
mod chaos;
mod cleanup;
mod commands;
mod config_file;
mod demo;
mod doctor;
mod fmt;
mod pattern;
mod progress;
mod provision;
mod session;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use vast_ost_host::Plugin;

use crate::commands::BackupArgs;
use crate::session::{Loaded, Session, CONFIG_ENV};

#[derive(Parser)]
#[command(
    name = "vast-ost",
    version = vast_ost_engine::version::VERSION_BUILD,
    about = "Drive the VAST Data OpenStorage plug-in (libstspiVastDataMT.so) through its C interface",
    long_about = "Drive the VAST Data OpenStorage plug-in (libstspiVastDataMT.so) through its C interface, \
as NetBackup's bptm and bpstsinfo do: show plug-in, server, LSU and image properties, back up, restore, \
verify, copy and delete images, or run `demo` for the whole job with no setup.\n\n\
The plug-in reads its configuration from --config / $VAST_OST_CONFIG (default: vast-ost.toml beside the \
plug-in) and logs to $VAST_OST_LOG (default: /usr/openv/logs/vast-ost/vast-ost.log). Details of any \
failure are in that log.",
    after_help = "Examples:\n  \
vast-ost demo --size 4GiB\n  \
vast-ost --config vast-ost.toml --server VastData:cluster1 lsu-info\n  \
tar c /etc | vast-ost --server VastData:cluster1 backup lsu1 client1_1700000000_C1_F1 -"
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args)]
struct Global {
    /// The plug-in to load [default: libstspiVastDataMT.so beside vast-ost (or one level up),
    /// else /usr/openv/lib/ost-plugins/libstspiVastDataMT.so]
    #[arg(long, global = true, value_name = "PATH")]
    plugin: Option<PathBuf>,

    /// Plug-in configuration file (TOML); sets VAST_OST_CONFIG for the plug-in [default:
    /// vast-ost.toml beside the plug-in]
    #[arg(long, global = true, value_name = "PATH", env = CONFIG_ENV)]
    config: Option<PathBuf>,

    /// Storage server, as configured in NetBackup: VastData:<cluster>
    #[arg(long, global = true, value_name = "NAME", env = "VAST_OST_SERVER")]
    server: Option<String>,

    /// User name handed to the plug-in, as `tpconfig -sts_user_id` stores it
    #[arg(
        long,
        global = true,
        value_name = "USER",
        env = "VAST_OST_USER",
        default_value = "",
        hide_default_value = true
    )]
    user: String,

    /// Password handed to the plug-in, as `tpconfig -password` stores it (never printed)
    #[arg(
        long,
        global = true,
        value_name = "PASSWORD",
        env = "VAST_OST_PASSWORD",
        hide_env_values = true,
        default_value = "",
        hide_default_value = true
    )]
    password: String,
}

/// Read/write size: at least one byte, at most 64 MiB (one buffer of it is held).
#[derive(Args, Clone, Copy)]
struct Block {
    /// Size of each write or read sent to the plug-in (NetBackup uses 256 KiB)
    #[arg(long, value_name = "SIZE", default_value = "256KiB", value_parser = parse_block)]
    block_size: usize,
}

fn parse_block(s: &str) -> Result<usize, String> {
    let n = fmt::parse_size(s)?;
    if n == 0 || n > 64 << 20 {
        return Err(format!("block size must be between 1 byte and 64MiB, got {s}"));
    }
    Ok(n as usize)
}

#[derive(Subcommand)]
enum Cmd {
    /// Plug-in information, like `bpstsinfo -pi` (needs no configuration)
    PluginInfo,

    /// Check an installation and a storage server end to end, like `nbdevconfig -teststs`
    ///
    /// In order: the plug-in loads (and its version), the config (syntax, the server, file
    /// permissions), name resolution, the NFS mount, TLS to VMS (the certificate problem and
    /// its fix), the VMS login with the credential form given (--user/--password as tpconfig
    /// stores them: a password, token:<api-token> or cert:<pem>), the LSUs NetBackup would see
    /// and their capacity, every data VIP, what the S3 server honours (conditional writes,
    /// CRC32C), and a 1 MiB write/read/delete probe on every LSU. One line per item with the
    /// fix under each failure; exit status 1 when any check failed.
    Doctor {
        /// Storage server: VastData:<cluster> [default: --server / $VAST_OST_SERVER]
        #[arg(value_name = "SERVER")]
        name: Option<String>,
        /// Also require this LSU to be visible (a disk pool's volume); repeatable
        #[arg(long, value_name = "LSU")]
        lsu: Vec<String>,
        /// Print the checklist as JSON (for scripts)
        #[arg(long)]
        json: bool,
    },

    /// Storage-server properties, like `bpstsinfo -si`
    ServerInfo,

    /// LSU properties, like `bpstsinfo -li`: capacity, used space, image count, flags
    LsuInfo {
        /// Only this LSU [default: every LSU of the server]
        lsu: Option<String>,
    },

    /// List the images of an LSU (complete and pending)
    ImageList {
        lsu: String,
        /// Only images whose name starts with this
        #[arg(long, value_name = "P", default_value = "")]
        prefix: String,
    },

    /// Properties of one image
    ImageInfo { lsu: String, image: String },

    /// Write a file (or stdin) into a new image, then close it complete
    ///
    /// On any error the image is closed incomplete (kept pending, as after a failed job) and
    /// the exit status is 1.
    Backup {
        lsu: String,
        image: String,
        /// Input file, or - for stdin [default: -]
        #[arg(value_name = "FILE|-")]
        file: Option<PathBuf>,
        #[command(flatten)]
        block: Block,
        /// Image date (backup time as NetBackup writes it) [default: now, in seconds since
        /// the epoch]
        #[arg(long)]
        date: Option<String>,
        /// Policy name stored with the image
        #[arg(long, default_value = "vast-ost")]
        policy: String,
    },

    /// Read an image into a file (or stdout)
    ///
    /// A file is written beside its final name and renamed into place only when complete.
    Restore {
        lsu: String,
        image: String,
        /// Output file, or - for stdout [default: -]
        #[arg(value_name = "FILE|-")]
        file: Option<PathBuf>,
        #[command(flatten)]
        block: Block,
    },

    /// Read a whole image (the plug-in checks its stored CRC32Cs) and optionally compare it
    ///
    /// Prints OK with the size and CRC32C, or the offset of the first difference (exit
    /// status 1).
    Verify {
        lsu: String,
        image: String,
        /// Compare with this file byte for byte
        #[arg(long, value_name = "FILE")]
        against: Option<PathBuf>,
        #[command(flatten)]
        block: Block,
    },

    /// Copy a complete image inside the storage (stspi_copy_image)
    Copy { from_lsu: String, from_image: String, to_lsu: String, to_image: String },

    /// Delete an image
    Delete {
        lsu: String,
        image: String,
        /// Succeed when the image does not exist (as NetBackup expiry does)
        #[arg(long)]
        force: bool,
    },

    /// The plug-in beside the tools an admin would otherwise use, measured in the same run
    ///
    /// Against an S3 server (--s3, e.g. the radosgw of `scripts/ceph-rgw start`: boto3
    /// s3transfer, the AWS CLI, rclone) or, without it, the NFS path on a local directory (dd,
    /// fio buffered and direct, iodepth 1 and 8). Every contender runs as its own processes,
    /// interleaved, on the same bytes; each row prints MiB/s (median, min-max), CPU-seconds per
    /// GiB, peak RSS and the plug-in's ratio to the best peer, and the whole report goes to
    /// --out as Markdown, JSON and a PNG plot. The tuning of --config (part size, workers,
    /// read-ahead, direct I/O, ...) is what the plug-in runs with. Buckets and files made for
    /// the run are removed. scripts/bench-peers installs the peers.
    Bench {
        /// Image sizes, comma-separated (one set of rows each)
        #[arg(long, value_name = "SIZE,...", default_value = "1GiB", value_delimiter = ',', value_parser = fmt::parse_size)]
        sizes: Vec<u64>,
        /// Parallel streams for the streams rows (at the first size), comma-separated
        #[arg(long, value_name = "N,...", default_value = "4", value_delimiter = ',')]
        streams: Vec<usize>,
        /// Interleaved runs of each contender (the report gives the median and min-max)
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Random 64 KiB reads per random-read run
        #[arg(long, default_value_t = 2000)]
        random_reads: u64,
        /// S3 endpoint (http://host:port); buckets are created for the run and removed
        #[arg(long, value_name = "URL")]
        s3: Option<String>,
        #[arg(long, default_value = "testkey")]
        access_key: String,
        #[arg(long, default_value = "testsecret", hide_default_value = true)]
        secret_key: String,
        /// Where the report goes (bench.md, bench.json, bench.png)
        #[arg(long, value_name = "DIR", default_value = "bench-results")]
        out: PathBuf,
        /// The venv scripts/bench-peers made (boto3, AWS CLI)
        #[arg(long, value_name = "DIR", default_value = "target/bench-peers")]
        venv: PathBuf,
        /// Directory for the NFS path and the data files [default: a new one in /var/tmp]
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Skip the in-process synthetics part
        #[arg(long)]
        no_synthetics: bool,
        /// Processes of the storage server on this machine (e.g. `pgrep -d, 'radosgw|ceph-osd'`),
        /// whose CPU during each run is reported per GiB beside the contender's: on a shared box
        /// the server's CPU bounds what any client can reach
        #[arg(long, value_name = "PID,...", value_delimiter = ',')]
        server_pids: Vec<i32>,
    },

    /// Read blocks of an image at pseudo-random offsets (NetBackup's restore-with-seek
    /// pattern; the bench's random-read rows)
    #[command(hide = true)]
    ReadRandom {
        lsu: String,
        image: String,
        /// How many reads
        count: u64,
        #[command(flatten)]
        block: Block,
        /// Seed of the offsets (the same as the boto3 peer's for the same seed)
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },

    /// Find (and with --remove, remove) what writers that died left in an LSU
    ///
    /// Pieces no manifest names, images without a manifest (an interrupted create or delete),
    /// and pending images whose writer is gone (dead on this host, or silent for longer than
    /// --older-than on another). Uses the plug-in's config and credentials, not the OST
    /// interface (cleanup is not an OST call). A dry run unless --remove.
    Cleanup {
        lsu: String,
        /// Leave alone anything younger than this (a create in progress, another host's writer)
        #[arg(long, value_name = "AGE", default_value = "1h", value_parser = cleanup::parse_age)]
        older_than: std::time::Duration,
        /// Remove what was found
        #[arg(long)]
        remove: bool,
        /// Also delete stale pending images (checkpoints NetBackup could otherwise resume)
        #[arg(long)]
        pending: bool,
    },

    /// Create an LSU on VAST (view, quota; for S3 the bucket owner and a key), talking to VMS
    ///
    /// What an admin does before `nbdevconfig -previewdv`. Uses --user/--password as the VMS
    /// credentials. Looks before it creates, so running it again changes nothing (except
    /// the quota, which is set to --quota).
    Provision(provision::Provision),

    /// The whole job with no setup: back up, list, restore, verify, copy, delete; throughput, RSS
    ///
    /// Creates a temporary NFS "mount" with two LSUs, backs up one NetBackup-style backup ID
    /// (HDR, F1, F2, TIR, IM images) from generated data in 256 KiB writes, lists it, reads
    /// every image back and compares it byte for byte, copies one image to the other LSU and
    /// checks it, deletes everything, and prints throughput and peak RSS. Exit status 1 on any
    /// mismatch.
    ///
    /// Ignores --config and --server: the demo writes its own configuration (server
    /// VastData:demo) and points VAST_OST_CONFIG and VAST_OST_LOG at its work directory.
    Demo {
        /// Total data of the backup: the HDR, TIR and IM images take 358 KiB of it, the F1 and
        /// F2 fragments the rest (suffixes: KiB, MiB, GiB, TiB; K, M, G, T)
        #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = fmt::parse_size)]
        size: u64,
        /// Keep the work directory (config, log, empty LSUs) instead of removing it
        #[arg(long)]
        keep: bool,
        /// Create the work directory under DIR [default: the system temp directory]
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// No simulated cluster: plain directories stand for the NFS mount's LSUs
        #[arg(long)]
        nfs_only: bool,
    },

    /// NetBackup workloads under random faults, checked like Jepsen (issue 14)
    ///
    /// Each iteration starts the simulator (S3 buckets, a WORM bucket, an NFS view; half the
    /// iterations with the S3 plane ignoring If-None-Match/If-Match), runs worker processes
    /// through the plug-in (backup sets, checkpoint restarts, restores at random offsets,
    /// polling, copies, extent copies, synthetic fulls, expiries, WORM locks) while injecting
    /// the faults drawn from the same seed (connection resets and stalls, lost answers, 503
    /// storms, token expiry, VIPs down, a restart, quota full, NFS disk full, kill -9, clock
    /// jumps), then checks what the plug-in reported against what is stored, runs cleanup
    /// --remove on each LSU and checks nothing is left unreferenced. Stops at the first failing
    /// iteration and prints the command that replays it.
    Chaos {
        /// Number of iterations
        #[arg(long, default_value_t = 1000)]
        iterations: u64,
        /// Seed of the run [default: a random one, printed]
        #[arg(long)]
        seed: Option<u64>,
        /// Run only iteration N of the run (a replay)
        #[arg(long, value_name = "N")]
        only: Option<u64>,
        /// Worker processes per iteration (host names alternate media-a, media-b)
        #[arg(long, default_value_t = chaos::DEFAULT_WORKERS)]
        workers: usize,
        /// Operations per worker per iteration
        #[arg(long, default_value_t = chaos::DEFAULT_OPS)]
        ops: usize,
        /// A deliberately planted bug, to show the checker catches it (needs a plug-in built
        /// with the `chaos-plant` feature; scripts/chaos --plant builds one)
        #[arg(long, value_name = "BUG")]
        plant: Option<String>,
        /// Keep every iteration's directory (a failing one is always kept)
        #[arg(long)]
        keep: bool,
        /// Iterations run side by side (each has its own simulator and workers)
        #[arg(long, default_value_t = 1)]
        jobs: usize,
    },

    /// One process of a chaos iteration (started by `vast-ost chaos`)
    #[command(hide = true)]
    ChaosWorker {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 0)]
        worker: usize,
        #[arg(long, default_value_t = 1)]
        workers: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, default_value_t = 0)]
        ops: usize,
        /// The verify pass: its record's name
        #[arg(long)]
        verify: Option<String>,
        /// The images the verify pass restores
        #[arg(long)]
        expect: Option<PathBuf>,
    },

    /// Run the VAST simulator (VMS REST over TLS + S3 on loopback VIPs) until Ctrl-C
    Sim {
        /// Data root: view path /a/b is <root>/a/b
        #[arg(long, value_name = "DIR")]
        root: PathBuf,
        /// Number of S3 VIP listeners (127.0.0.2, 127.0.0.3, ...)
        #[arg(long, default_value_t = 3)]
        vips: usize,
        /// Serve VMS over plain HTTP
        #[arg(long)]
        no_tls: bool,
        /// VMS port [default: any free port]
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Refuse VMS clients without a client certificate (cert: credentials; the admin's is
        /// written to <root>/client.pem)
        #[arg(long)]
        require_client_cert: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let plugin = cli.global.plugin.clone().unwrap_or_else(Plugin::default_path);
    match run(cli, &plugin) {
        Ok(()) => ExitCode::SUCCESS,
        // The checklist already said what failed.
        Err(e) if e.is::<doctor::Failed>() => ExitCode::FAILURE,
        Err(e) => {
            // One line: what was being done, the cause, the plug-in's status and its log.
            let mut msg = format!("vast-ost: error: {e:#}").replace('\n', " ");
            if let Some(status) = session::status_of(&e) {
                if status.0 == vast_ost_host::abi::STS_ECONFIG {
                    let config = session::config_path(&plugin);
                    let missing = if config.exists() { "" } else { ", which does not exist" };
                    msg.push_str(&format!(" [config: {}{missing}]", config.display()));
                }
                msg.push_str(&format!(" [details in the plug-in log: {}]", session::log_path(&plugin)));
            }
            eprintln!("{msg}");
            ExitCode::FAILURE
        }
    }
}

/// `vast-ost sim`: a simulated cluster for trying the plug-in without one.
fn sim(root: PathBuf, vips: usize, tls: bool, port: u16, require_client_cert: bool) -> Result<()> {
    let mut cfg = vast_sim::SimConfig::new(&root);
    cfg.vips = vips;
    cfg.tls = tls;
    cfg.vms_port = port;
    cfg.require_client_cert = require_client_cert;
    let sim = vast_sim::Sim::start(cfg).context("starting the VAST simulator")?;
    println!("VMS          {}", sim.vms_url());
    println!("admin        {} / {}", sim.admin_user(), sim.admin_password());
    if let Some(pem) = sim.ca_pem() {
        let ca = root.join("ca.pem");
        std::fs::write(&ca, pem).with_context(|| format!("writing {}", ca.display()))?;
        println!("CA           {}", ca.display());
        let client = root.join("client.pem");
        let pem = sim.client_cert_pem(sim.admin_user()).context("issuing the admin's client certificate")?;
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        // It holds a private key: 0600.
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&client)
            .and_then(|mut f| f.write_all(pem.as_bytes()))
            .with_context(|| format!("writing {}", client.display()))?;
        println!("client cert  {} (the admin's: --password cert:{})", client.display(), client.display());
    }
    println!("S3 VIPs      {}", sim.s3_endpoints().join(" "));
    println!("data root    {}", sim.root().display());
    println!("running until Ctrl-C");
    loop {
        std::thread::park();
    }
}

fn run(cli: Cli, plugin: &std::path::Path) -> Result<()> {
    let g = cli.global;
    if let Some(c) = &g.config {
        // The plug-in reads this at stspi_init; an absolute path means the same file whatever
        // its working directory.
        std::env::set_var(CONFIG_ENV, std::path::absolute(c).unwrap_or_else(|_| c.clone()));
    }
    let server = || {
        g.server
            .as_deref()
            .filter(|s| !s.is_empty())
            .context("no storage server given: pass --server VastData:<cluster> or set VAST_OST_SERVER")
    };
    let open = || -> Result<Session> { Session::open(Loaded::new(plugin)?, server()?, &g.user, &g.password) };
    match cli.cmd {
        Cmd::PluginInfo => commands::plugin_info(plugin),
        Cmd::Doctor { name, lsu, json } => {
            let server = match &name {
                Some(n) => n.as_str(),
                None => server()?,
            };
            let d = doctor::Doctor {
                plugin,
                config: session::config_path(plugin),
                server,
                user: &g.user,
                password: &g.password,
                lsus: &lsu,
                json,
            };
            if doctor::run(&d)? {
                Ok(())
            } else {
                Err(doctor::Failed.into())
            }
        }
        Cmd::ServerInfo => commands::server_info(&open()?),
        Cmd::LsuInfo { lsu } => commands::lsu_info(&open()?, lsu.as_deref()),
        Cmd::ImageList { lsu, prefix } => commands::image_list(&open()?, &lsu, &prefix),
        Cmd::ImageInfo { lsu, image } => commands::image_info(&open()?, &lsu, &image),
        Cmd::Backup { lsu, image, file, block, date, policy } => {
            let date = date.unwrap_or_else(|| {
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
                now.map(|d| d.as_secs()).unwrap_or(0).to_string()
            });
            let args = BackupArgs {
                lsu: &lsu,
                image: &image,
                input: file,
                block: block.block_size,
                date,
                policy: &policy,
            };
            commands::backup(&open()?, &args)
        }
        Cmd::Restore { lsu, image, file, block } => {
            commands::restore(&open()?, &lsu, &image, file, block.block_size)
        }
        Cmd::Verify { lsu, image, against, block } => {
            commands::verify(&open()?, &lsu, &image, against.as_deref(), block.block_size)
        }
        Cmd::Copy { from_lsu, from_image, to_lsu, to_image } => {
            commands::copy(&open()?, &from_lsu, &from_image, &to_lsu, &to_image)
        }
        Cmd::Delete { lsu, image, force } => commands::delete(&open()?, &lsu, &image, force),
        Cmd::Provision(p) => provision::run(&p, &g.user, &g.password).map(drop),
        Cmd::Bench {
            sizes,
            streams,
            runs,
            random_reads,
            s3,
            access_key,
            secret_key,
            out,
            venv,
            dir,
            no_synthetics,
            server_pids,
        } => {
            let b = bench::Bench {
                s3,
                access_key,
                secret_key,
                sizes,
                streams,
                runs,
                random_reads,
                tuning: g.config.clone(),
                out,
                venv,
                dir,
                synthetics: !no_synthetics,
                server_pids,
            };
            bench::run(plugin, &b)
        }
        Cmd::ReadRandom { lsu, image, count, block, seed } => {
            bench::worker::read_random(&open()?, &lsu, &image, count, block.block_size, seed)
        }
        Cmd::Cleanup { lsu, older_than, remove, pending } => {
            let server = server()?;
            cleanup::run(&cleanup::Cleanup {
                config: &session::config_path(plugin),
                server,
                user: &g.user,
                password: &g.password,
                lsu: &lsu,
                older_than,
                remove,
                pending,
            })
        }
        Cmd::Demo { size, keep, dir, nfs_only } => {
            demo::run(plugin, &demo::Options { size, keep, dir, nfs_only })
        }
        Cmd::Chaos { iterations, seed, only, workers, ops, plant, keep, jobs } => {
            chaos::run(plugin, &chaos::Options { iterations, seed, only, workers, ops, plant, keep, jobs })
        }
        Cmd::ChaosWorker { dir, worker, workers, seed, ops, verify, expect } => {
            let args = chaos::WorkerArgs {
                dir,
                worker,
                workers,
                seed,
                ops,
                server: server()?.to_string(),
                user: g.user.clone(),
                password: g.password.clone(),
            };
            chaos::worker(plugin, args, verify.map(|v| (v, expect)))
        }
        Cmd::Sim { root, vips, no_tls, port, require_client_cert } => {
            sim(root, vips, !no_tls, port, require_client_cert)
        }
    }
}
