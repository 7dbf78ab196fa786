//! `vast-ost bench`, second part: what shared pieces and copies inside the storage save, on the
//! image the first part backed up. A synthetic full that includes 95 % of it and writes 5 %
//! new, against writing it whole (bytes stored and time); a reference copy; an extent copy
//! through a target server against a streamed copy; and the CPU of checking every block's
//! CRC32C on restore, against the restore's CPU. Every image made here is read back and
//! compared before its figure is printed, and deleted after.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::fmt::human;
use crate::pattern::Pattern;
use crate::session::{self, Session};

const BLOCK: usize = 256 << 10;
/// The synthetic full: one segment in this many is new data.
const SEGMENTS: u64 = 20;

/// What the first part measured, to compare with.
pub struct Baseline<'a> {
    pub lsu: &'a str,
    /// The complete image backed up, its size and data.
    pub image: &'a str,
    pub size: u64,
    pub pattern: &'a Pattern,
    /// Time of writing it whole, and the restore's CPU.
    pub backup: Duration,
    pub restore_cpu: Duration,
    /// Bytes stored under an image (its pieces and records).
    pub stored: &'a dyn Fn(&str) -> Result<u64>,
    pub cpu: fn() -> Duration,
}

pub fn run(s: &Session, b: &Baseline) -> Result<()> {
    synthetic_full(s, b)?;
    reference_copy(s, b)?;
    extent_copy(s, b)?;
    crc_cost(b);
    Ok(())
}

/// Segment `i` of the synthetic full: `(offset, length, new data)`.
fn segments(size: u64) -> impl Iterator<Item = (u64, u64, bool)> {
    let seg = size.div_ceil(SEGMENTS).next_multiple_of(BLOCK as u64);
    (0..SEGMENTS)
        .map(move |i| (i * seg, seg.min(size.saturating_sub(i * seg)), i % SEGMENTS == 7))
        .filter(|s| s.1 > 0)
}

fn synthetic_full(s: &Session, b: &Baseline) -> Result<()> {
    let name = "bench_2_C1_F1";
    let def = session::def(name, "2", "bench")?;
    let src = session::def(b.image, "", "")?;
    let fresh = Pattern::for_name(name);
    let mut buf = vec![0u8; BLOCK];
    let t = Instant::now();
    let img = s.create(b.lsu, &def)?;
    let mut new_bytes = 0;
    for (off, len, new) in segments(b.size) {
        if new {
            let mut o = off;
            while o < off + len {
                let n = BLOCK.min((off + len - o) as usize);
                fresh.fill(o, &mut buf[..n]);
                img.write(&buf[..n], o)?;
                o += n as u64;
            }
            new_bytes += len;
        } else {
            let h = img.handle();
            s.p()
                .include(h, &src, off, len, off)
                .with_context(|| format!("including {len} bytes at {off}"))?;
        }
    }
    img.close(true)?;
    let took = t.elapsed();
    let stored = (b.stored)(name)?;
    verify(s, b.lsu, name, b.size, |off, out| {
        match segments(b.size).find(|(o, l, _)| off >= *o && off < o + l) {
            Some((_, _, true)) => fresh.fill(off, out),
            _ => b.pattern.fill(off, out),
        }
    })?;
    println!(
        "synthetic    full of {} with {} new: stored {} ({:.1} % of its bytes) in {:.2} s; written whole: {:.2} s (x{:.1})",
        human(b.size),
        human(new_bytes),
        human(stored),
        100.0 * stored as f64 / b.size as f64,
        took.as_secs_f64(),
        b.backup.as_secs_f64(),
        b.backup.as_secs_f64() / took.as_secs_f64().max(1e-9)
    );
    delete(s, b.lsu, name)
}

fn reference_copy(s: &Session, b: &Baseline) -> Result<()> {
    let name = "bench_3_C1_F1";
    let l = s.lsu(b.lsu)?;
    let (to, from) = (session::def(name, "", "")?, session::def(b.image, "", "")?);
    let t = Instant::now();
    s.p().copy_image(&l, &to, &l, &from).context("copying the bench image inside its LSU")?;
    let took = t.elapsed();
    let stored = (b.stored)(name)?;
    verify(s, b.lsu, name, b.size, |off, out| b.pattern.fill(off, out))?;
    println!(
        "ref. copy    of {} in {:.3} s, stored {} of its own",
        human(b.size),
        took.as_secs_f64(),
        human(stored)
    );
    delete(s, b.lsu, name)
}

/// An extent-based optimized duplication (target server, 256 KiB extents) against reading and
/// writing the same bytes through the plug-in.
fn extent_copy(s: &Session, b: &Baseline) -> Result<()> {
    let p = s.p();
    let (extent, streamed) = ("bench_4_C1_F1", "bench_5_C1_F1");
    let target = p.open_target_server(s.handle, &s.server, "", "").context("opening the target server")?;
    let tl = vast_ost_host::lsu(target, b.lsu);
    let t = Instant::now();
    let from = s.open_read(b.lsu, b.image)?;
    let to = p.create_image(&tl, &session::def(extent, "4", "bench")?).context("creating the extent copy")?;
    let mut off = 0;
    while off < b.size {
        let n = (BLOCK as u64).min(b.size - off);
        p.copy_extent(to, from.handle(), off, n, off)
            .with_context(|| format!("copying the extent at {off}"))?;
        off += n;
    }
    p.close_image(to, vast_ost_host::abi::STS_CLOSEF_IH_COMPLETE).context("closing the extent copy")?;
    from.close(false)?;
    let extent_took = t.elapsed();
    p.close_target_server(target).context("closing the target server")?;

    let mut buf = vec![0u8; BLOCK];
    let t = Instant::now();
    let from = s.open_read(b.lsu, b.image)?;
    let to = s.create(b.lsu, &session::def(streamed, "5", "bench")?)?;
    let mut off = 0;
    loop {
        let n = from.read(&mut buf, off)?;
        if n == 0 {
            break;
        }
        to.write(&buf[..n], off)?;
        off += n as u64;
    }
    to.close(true)?;
    from.close(false)?;
    let streamed_took = t.elapsed();
    for name in [extent, streamed] {
        verify(s, b.lsu, name, b.size, |off, out| b.pattern.fill(off, out))?;
    }
    println!(
        "extent copy  of {} in {:.2} s; streamed through the plug-in: {:.2} s (x{:.1})",
        human(b.size),
        extent_took.as_secs_f64(),
        streamed_took.as_secs_f64(),
        streamed_took.as_secs_f64() / extent_took.as_secs_f64().max(1e-9)
    );
    delete(s, b.lsu, extent)?;
    delete(s, b.lsu, streamed)
}

/// What checking every block's CRC32C costs: the same CRC over the image's bytes, in the
/// plug-in's 256 KiB blocks, against the restore's CPU.
fn crc_cost(b: &Baseline) {
    let mut buf = vec![0u8; BLOCK];
    let mut gen = Duration::ZERO;
    let mut crc = Duration::ZERO;
    let mut off = 0;
    let mut sum = 0u32;
    while off < b.size {
        let n = BLOCK.min((b.size - off) as usize);
        let c = (b.cpu)();
        b.pattern.fill(off, &mut buf[..n]);
        let c2 = (b.cpu)();
        sum ^= crc32c::crc32c(&buf[..n]);
        gen += c2.saturating_sub(c);
        crc += (b.cpu)().saturating_sub(c2);
        off += n as u64;
    }
    std::hint::black_box(sum);
    let gib = b.size as f64 / (1u64 << 30) as f64;
    // /proc's CPU times tick every 10 ms: a share of less than a tick says nothing.
    let share = if b.restore_cpu.as_millis() >= 50 {
        format!("{:.1} %", 100.0 * crc.as_secs_f64() / b.restore_cpu.as_secs_f64())
    } else {
        "too short to say what share".to_string()
    };
    println!(
        "block CRC    {:.3} CPU-s/GiB checked on restore: {share} of the restore's CPU ({:.2} s/GiB)",
        crc.as_secs_f64() / gib,
        b.restore_cpu.as_secs_f64() / gib
    );
}

/// Read image `name` whole and compare it with what `expect` fills in.
fn verify(s: &Session, lsu: &str, name: &str, size: u64, expect: impl Fn(u64, &mut [u8])) -> Result<()> {
    let img = s.open_read(lsu, name)?;
    let (mut buf, mut want) = (vec![0u8; BLOCK], vec![0u8; BLOCK]);
    let mut off = 0;
    while off < size {
        let n = img.read(&mut buf, off)?;
        if n == 0 {
            bail!("image '{name}' ends at {off} of {size} bytes");
        }
        expect(off, &mut want[..n]);
        if buf[..n] != want[..n] {
            bail!("image '{name}' differs from what was written at offset {off}");
        }
        off += n as u64;
    }
    img.close(false)
}

fn delete(s: &Session, lsu: &str, name: &str) -> Result<()> {
    s.p()
        .delete_image(&s.lsu(lsu)?, &session::def(name, "", "")?)
        .with_context(|| format!("deleting '{name}'"))
}
