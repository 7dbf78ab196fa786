//! `vast-ost bench`: throughput and CPU cost of the plug-in's data paths, through the C
//! interface in NetBackup's 256 KiB blocks, printed beside the peers measured on these machines
//! (`shared/reference/performance-notes.md`) with the ratio to each. CPU per byte is the
//! currency (the storage shares the cores), so CPU-seconds per GiB are printed too, with the
//! data generator's own cost measured apart and taken out.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::config_file::{self, ConfigFile, Server, S3};
use crate::fmt::human;
use crate::pattern::Pattern;
use crate::session::{self, Loaded, Session, CONFIG_ENV, LOG_ENV};

const BLOCK: usize = 256 << 10;
const SERVER: &str = "VastData:bench";

pub struct Bench {
    pub size: u64,
    /// `http://host:port` of an S3 server (radosgw); else the NFS path on a temp directory.
    pub s3: Option<String>,
    pub access_key: String,
    pub secret_key: String,
    pub part_size: u64,
    pub workers: usize,
}

/// Peers on radosgw: MiB/s up and down, and upload CPU-seconds per GiB (performance-notes.md:
/// 2-core machine, 4 GiB; 7, 8 and 30 CPU-s per 4 GiB).
const S3_PEERS: &[(&str, f64, f64, f64)] = &[
    ("boto3 s3transfer, 8 threads", 278.0, 378.0, 1.75),
    ("aws-cli 1.46", 274.0, 334.0, 2.0),
    ("rclone 1.60", 140.0, 514.0, 7.5),
];
/// Ceilings on the same machines: local disk write with fsync at 256 KiB, cold read at 256 KiB.
/// (A restore right after the backup reads from the page cache, so it can pass the cold ceiling.)
const NFS_PEERS: &[(&str, f64, f64, f64)] =
    &[("local disk ceiling (fsync / cold read, 256 KiB)", 970.0, 1310.0, f64::NAN)];

/// User + system CPU time of this process (the plug-in runs in it), from /proc.
fn cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // The state is field 3 of the line, so utime and stime (fields 14 and 15) are 11 and 12.
    let field = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    let ticks = field(11) + field(12);
    Duration::from_millis(ticks * 10)
}

/// The bench's server on an S3 endpoint: one bucket as its only LSU, the key, part size and
/// upload workers asked for.
fn s3_server(b: &Bench, endpoint: &str, bucket: &str) -> Server {
    Server {
        name: SERVER.to_string(),
        lsus: Some(vec![bucket.to_string()]),
        s3: Some(S3 {
            endpoints: Some(vec![endpoint.to_string()]),
            access_key: b.access_key.clone(),
            secret_key: b.secret_key.clone(),
            part_size: Some(b.part_size),
            upload_workers: Some(b.workers),
            ..S3::default()
        }),
        ..Server::default()
    }
}

pub fn run(plugin: &Path, b: &Bench) -> Result<()> {
    if b.size < BLOCK as u64 {
        bail!("--size must be at least {}", human(BLOCK as u64));
    }
    let dir =
        tempfile::Builder::new().prefix("vast-ost-bench-").tempdir().context("creating a work directory")?;
    // How many bytes the storage holds under an image: the figure shared pieces save.
    type Stored = Box<dyn Fn(&str) -> Result<u64>>;
    let (server, lsu, peers, stored): (_, String, _, Stored) = match &b.s3 {
        Some(ep) => {
            let bucket = format!("vost-bench-{}", std::process::id());
            let settings =
                vast_ost_engine::store::s3::S3Settings::new(vec![ep.clone()], &b.access_key, &b.secret_key);
            let store = vast_ost_engine::store::s3::S3Store::new(&settings, Default::default())?;
            store.create_bucket(&bucket).with_context(|| format!("creating bucket {bucket} at {ep}"))?;
            let bk = bucket.clone();
            let stored: Stored = Box::new(move |image: &str| {
                let (objects, _) = store.list_objects(&bk, &format!("{image}/"), None)?;
                Ok(objects.iter().map(|(_, n)| n).sum())
            });
            (s3_server(b, ep, &bucket), bucket, S3_PEERS, stored)
        }
        None => {
            let mount = dir.path().join("mnt");
            std::fs::create_dir_all(mount.join("lsu1"))?;
            let root = mount.join("lsu1");
            let stored: Stored = Box::new(move |image: &str| Ok(dir_bytes(&root.join(image))));
            (config_file::nfs_server(SERVER, &mount), "lsu1".into(), NFS_PEERS, stored)
        }
    };
    let cfg_path = dir.path().join("vast-ost.toml");
    ConfigFile { log: None, servers: vec![server] }.write(&cfg_path, None)?;
    std::env::set_var(CONFIG_ENV, &cfg_path);
    std::env::set_var(LOG_ENV, dir.path().join("vast-ost.log"));
    let s = Session::open(Loaded::new(plugin)?, SERVER, &b.access_key, &b.secret_key)?;
    let target =
        b.s3.as_deref()
            .map_or("NFS path (local file system)".to_string(), |e| format!("S3 {e}, bucket {lsu}"));
    println!("bench        {} through {} in {} blocks", human(b.size), target, human(BLOCK as u64));

    let pattern = Pattern::for_name("bench_1_C1_F1");
    let mut buf = vec![0u8; BLOCK];
    // What generating the data costs alone, to take it out of the backup's CPU.
    let (t, c) = (Instant::now(), cpu());
    let mut off = 0;
    while off < b.size {
        let n = BLOCK.min((b.size - off) as usize);
        pattern.fill(off, &mut buf[..n]);
        std::hint::black_box(&buf);
        off += n as u64;
    }
    let gen_cpu = cpu().saturating_sub(c);
    let gen_wall = t.elapsed();

    let def = session::def("bench_1_C1_F1", "1", "bench")?;
    let (t, c) = (Instant::now(), cpu());
    let img = s.create(&lsu, &def)?;
    let mut off = 0;
    while off < b.size {
        let n = BLOCK.min((b.size - off) as usize);
        pattern.fill(off, &mut buf[..n]);
        img.write(&buf[..n], off)?;
        off += n as u64;
    }
    img.close(true)?;
    let up = (t.elapsed().saturating_sub(gen_wall), cpu().saturating_sub(c).saturating_sub(gen_cpu));

    let (t, c) = (Instant::now(), cpu());
    let img = s.open_read(&lsu, "bench_1_C1_F1")?;
    let mut off = 0;
    loop {
        let n = img.read(&mut buf, off)?;
        if n == 0 {
            break;
        }
        off += n as u64;
    }
    img.close(false)?;
    if off != b.size {
        bail!("restored {off} bytes of {}", b.size);
    }
    let down = (t.elapsed(), cpu().saturating_sub(c));

    let gib = b.size as f64 / (1u64 << 30) as f64;
    let mib = b.size as f64 / (1u64 << 20) as f64;
    let rate = |d: Duration| mib / d.as_secs_f64().max(1e-9);
    let (up_rate, down_rate) = (rate(up.0), rate(down.0));
    println!(
        "backup       {up_rate:>8.1} MiB/s   plug-in CPU {:.2} s/GiB (data generation, {:.2} s/GiB, taken out)",
        up.1.as_secs_f64() / gib,
        gen_cpu.as_secs_f64() / gib
    );
    println!("restore      {down_rate:>8.1} MiB/s   plug-in CPU {:.2} s/GiB", down.1.as_secs_f64() / gib);
    let up_cpu = up.1.as_secs_f64() / gib;
    println!("peers on these machines (performance-notes.md): up / down MiB/s, upload CPU s/GiB; this run's ratios");
    for (name, pu, pd, pc) in peers {
        let cpu = if pc.is_nan() { String::new() } else { format!("{pc:>5.2}   CPU x{:.2}", up_cpu / pc) };
        println!(
            "  {name:<50} {pu:>5.0} / {pd:>5.0}  {cpu:<16} speed x{:.2} / x{:.2}",
            up_rate / pu,
            down_rate / pd
        );
    }
    crate::bench_synth::run(
        &s,
        &crate::bench_synth::Baseline {
            lsu: &lsu,
            image: "bench_1_C1_F1",
            size: b.size,
            pattern: &pattern,
            backup: up.0,
            restore_cpu: down.1,
            stored: &stored,
            cpu,
        },
    )?;
    s.p().delete_image(&s.lsu(&lsu)?, &def).context("deleting the bench image")?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use vast_ost_engine::config::Config;

    #[test]
    fn bench_configs_parse() {
        let b = Bench {
            size: 1 << 20,
            s3: Some("http://127.0.0.1:7480".into()),
            access_key: "AK".into(),
            secret_key: "a \"secret\"".into(),
            part_size: 8 << 20,
            workers: 4,
        };
        for server in [
            s3_server(&b, "http://127.0.0.1:7480", "vost-bench-1"),
            config_file::nfs_server(SERVER, Path::new("/tmp/b/mnt")),
        ] {
            let text = ConfigFile { log: None, servers: vec![server] }.to_toml(None).unwrap();
            Config::parse(&text, Path::new("vast-ost.toml")).unwrap_or_else(|e| panic!("{e}\n{text}"));
            let v: toml::Table = toml::from_str(&text).unwrap();
            assert_eq!(v["server"][0]["name"].as_str(), Some(SERVER), "{text}");
        }
        let text =
            ConfigFile { log: None, servers: vec![s3_server(&b, "http://127.0.0.1:7480", "vost-bench-1")] }
                .to_toml(None)
                .unwrap();
        let v: toml::Table = toml::from_str(&text).unwrap();
        let s3 = &v["server"][0]["s3"];
        assert_eq!(v["server"][0]["lsus"][0].as_str(), Some("vost-bench-1"));
        assert_eq!(s3["endpoints"][0].as_str(), Some("http://127.0.0.1:7480"));
        assert_eq!(s3["secret_key"].as_str(), Some("a \"secret\""));
        assert_eq!(
            (s3["part_size"].as_integer(), s3["upload_workers"].as_integer()),
            (Some(8 << 20), Some(4))
        );
    }
}
