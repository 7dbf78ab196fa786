//! `vast-sim`: runs the simulator until Ctrl-C, printing where to reach it.

use clap::Parser;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "vast-sim", about = "A simulated VAST Data cluster: VMS REST API + S3 on loopback VIPs")]
struct Args {
    /// Data root (view path /x is <root>/x); the CA certificate is written to <root>/ca.pem.
    #[arg(long, default_value = "./vast-sim-data")]
    root: PathBuf,
    /// Number of S3 VIPs (127.0.0.2, 127.0.0.3, ...).
    #[arg(long, default_value_t = 3)]
    vips: usize,
    /// Serve VMS over plain HTTP.
    #[arg(long)]
    no_tls: bool,
    /// VMS port on 127.0.0.1 (0 = ephemeral).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// S3 port on every VIP (0 = ephemeral).
    #[arg(long, default_value_t = 0)]
    s3_port: u16,
    /// Minimum multipart part size in bytes (all parts but the last).
    #[arg(long, default_value_t = 5 << 20)]
    min_part_size: u64,
    /// Seed for ids, keys and fault injection.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Answer S3 writes as if If-None-Match and If-Match were absent (as some S3 servers do).
    #[arg(long)]
    ignore_preconditions: bool,
    /// Answer PutObjectRetention with 200 OK and keep no lock (a server without Object Lock).
    #[arg(long)]
    ignore_object_lock: bool,
    /// Refuse VMS clients without a client certificate of the simulator's CA (the admin's is
    /// written to <root>/client.pem).
    #[arg(long)]
    require_client_cert: bool,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let mut cfg = vast_sim::SimConfig::new(&a.root);
    cfg.vips = a.vips;
    cfg.tls = !a.no_tls;
    cfg.vms_port = a.port;
    cfg.s3_port = a.s3_port;
    cfg.min_part_size = a.min_part_size;
    cfg.seed = a.seed;
    cfg.ignore_preconditions = a.ignore_preconditions;
    cfg.ignore_object_lock = a.ignore_object_lock;
    cfg.require_client_cert = a.require_client_cert;
    let sim = vast_sim::Sim::start(cfg)?;
    println!("VMS:        {}", sim.vms_url());
    println!("admin:      {} / {}", sim.admin_user(), sim.admin_password());
    if let Some(pem) = sim.ca_pem() {
        let p = sim.root().join("ca.pem");
        std::fs::write(&p, pem)?;
        println!("CA:         {}", p.display());
        let c = sim.root().join("client.pem");
        std::fs::write(&c, sim.client_cert_pem(sim.admin_user())?)?;
        println!("client:     {} (the admin's certificate and key: cert:{})", c.display(), c.display());
    }
    for (i, e) in sim.s3_endpoints().iter().enumerate() {
        println!("S3 VIP {i}:   {e}");
    }
    println!("data root:  {}", sim.root().display());
    println!("faults:     POST {}/_sim/faults {{\"error_rate\":0.1,\"seed\":7}}", sim.vms_url());
    println!("S3 keys:    POST {}/api/latest/users/<id>/access_keys/ (Basic admin)", sim.vms_url());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(tokio::signal::ctrl_c())?;
    println!("stopping");
    sim.stop();
    Ok(())
}
