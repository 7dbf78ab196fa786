//! `vast-ost bench`, last part, in this process: a baseline image backed up and restored
//! through the plug-in, then what shared pieces and copies inside the storage save on it
//! ([`super::synth`]). Nothing here is compared with a peer: the figures are the plug-in's
//! against itself (a synthetic full against writing the image whole, and so on).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::fmt::human;
use crate::pattern::Pattern;
use crate::session::{self, Loaded, Session, CONFIG_ENV, LOG_ENV};

const BLOCK: usize = 256 << 10;

/// How many bytes the storage holds under an image: the figure shared pieces save.
pub type Stored = Box<dyn Fn(&str) -> Result<u64>>;

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

/// The in-process part, on `lsu` of the bench's server (`config`, `log`), `size` bytes.
pub fn run(
    plugin: &Path,
    config: &Path,
    log: &Path,
    creds: (&str, &str),
    lsu: &str,
    size: u64,
    stored: &Stored,
) -> Result<()> {
    if size < BLOCK as u64 {
        bail!("the image must be at least {}", human(BLOCK as u64));
    }
    std::env::set_var(CONFIG_ENV, config);
    std::env::set_var(LOG_ENV, log);
    let s = Session::open(Loaded::new(plugin)?, super::config::SERVER, creds.0, creds.1)?;
    let b_size = size;
    println!(
        "in-process  {} in {} blocks: synthetics and copies inside the storage",
        human(size),
        human(BLOCK as u64)
    );

    let pattern = Pattern::for_name("bench_1_C1_F1");
    let mut buf = vec![0u8; BLOCK];
    // What generating the data costs alone, to take it out of the backup's CPU.
    let (t, c) = (Instant::now(), cpu());
    let mut off = 0;
    while off < b_size {
        let n = BLOCK.min((b_size - off) as usize);
        pattern.fill(off, &mut buf[..n]);
        std::hint::black_box(&buf);
        off += n as u64;
    }
    let gen_cpu = cpu().saturating_sub(c);
    let gen_wall = t.elapsed();

    let def = session::def("bench_1_C1_F1", "1", "bench")?;
    let (t, c) = (Instant::now(), cpu());
    let img = s.create(lsu, &def)?;
    let mut off = 0;
    while off < b_size {
        let n = BLOCK.min((b_size - off) as usize);
        pattern.fill(off, &mut buf[..n]);
        img.write(&buf[..n], off)?;
        off += n as u64;
    }
    img.close(true)?;
    let up = (t.elapsed().saturating_sub(gen_wall), cpu().saturating_sub(c).saturating_sub(gen_cpu));

    let (t, c) = (Instant::now(), cpu());
    let img = s.open_read(lsu, "bench_1_C1_F1")?;
    let mut off = 0;
    loop {
        let n = img.read(&mut buf, off)?;
        if n == 0 {
            break;
        }
        off += n as u64;
    }
    img.close(false)?;
    if off != b_size {
        bail!("restored {off} bytes of {}", b_size);
    }
    let down = (t.elapsed(), cpu().saturating_sub(c));

    let gib = b_size as f64 / (1u64 << 30) as f64;
    let mib = b_size as f64 / (1u64 << 20) as f64;
    let rate = |d: Duration| mib / d.as_secs_f64().max(1e-9);
    let (up_rate, down_rate) = (rate(up.0), rate(down.0));
    println!(
        "backup       {up_rate:>8.1} MiB/s   plug-in CPU {:.2} s/GiB (data generation, {:.2} s/GiB, taken out)",
        up.1.as_secs_f64() / gib,
        gen_cpu.as_secs_f64() / gib
    );
    println!("restore      {down_rate:>8.1} MiB/s   plug-in CPU {:.2} s/GiB", down.1.as_secs_f64() / gib);
    super::synth::run(
        &s,
        &super::synth::Baseline {
            lsu,
            image: "bench_1_C1_F1",
            size: b_size,
            pattern: &pattern,
            backup: up.0,
            restore_cpu: down.1,
            stored: stored.as_ref(),
            cpu,
        },
    )?;
    s.p().delete_image(&s.lsu(lsu)?, &def).context("deleting the bench image")?;
    Ok(())
}
