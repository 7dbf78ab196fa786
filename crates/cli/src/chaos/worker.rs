//! One chaos worker process (`vast-ost chaos-worker`, hidden): a random NetBackup workload
//! through the real `.so` — backups of random sizes and write sizes (some abandoned pending),
//! random-offset restores checked byte for byte, copies between LSUs, synthetic fulls that
//! include part of an earlier image, expiries, WORM locks and deletes of locked images, A.I.R.
//! copies of image sets to the target cluster —
//! recording every intent and every answer ([`super::record`]). Faults come from outside
//! (the driver); failures of calls are expected, wrong bytes or broken promises are not.

use std::path::Path;

use anyhow::Result;

use super::record::{Event, Recorder};
use super::Rng;
use crate::pattern::Pattern;
use crate::session::{self, Session};

/// What one worker does.
pub struct Plan<'a> {
    pub id: u32,
    pub seed: u64,
    pub ops: u32,
    pub record: &'a Path,
    /// Plain LSUs (NFS, S3) and the WORM one.
    pub lsus: &'a [String],
    pub worm: &'a str,
}

const DATE: &str = "1700000000";

/// An image this worker knows complete: where, its size, and what its bytes are.
#[derive(Clone)]
struct Known {
    lsu: String,
    name: String,
    size: u64,
    from: Option<(String, u64)>,
    /// Whose name's pattern its bytes after `from` are: its own, or its copy source's.
    pattern: String,
    locked: bool,
}

/// The bytes an image holds at `off`: its `from` image's pattern below the included length,
/// the pattern of `pattern` (the name it was written under) after.
pub fn expected(pattern: &str, from: Option<&(String, u64)>, off: u64, buf: &mut [u8]) {
    let own = Pattern::for_name(pattern);
    match from {
        Some((src, len)) if off < *len => {
            let n = ((*len - off) as usize).min(buf.len());
            Pattern::for_name(src).fill(off, &mut buf[..n]);
            own.fill(off + n as u64, &mut buf[n..]);
        }
        _ => own.fill(off, buf),
    }
}

pub fn run(s: &Session, p: &Plan) -> Result<()> {
    let mut rec = Recorder::create(p.record)?;
    let mut rng = Rng::new(p.seed);
    let mut known: Vec<Known> = Vec::new();
    for k in 0..p.ops {
        let name = format!("w{}x{k}_{DATE}_C1_F1", p.id);
        let roll = rng.below(100);
        let pick = |rng: &mut Rng, known: &[Known], want: &dyn Fn(&Known) -> bool| -> Option<usize> {
            let idx: Vec<usize> = (0..known.len()).filter(|&i| want(&known[i])).collect();
            (!idx.is_empty()).then(|| idx[rng.below(idx.len() as u64) as usize])
        };
        match roll {
            0..=39 => {
                let lsu = if rng.below(5) == 0 {
                    p.worm.to_string()
                } else {
                    p.lsus[rng.below(p.lsus.len() as u64) as usize].clone()
                };
                let size = match rng.below(4) {
                    0 => rng.below(64 << 10),
                    _ => rng.below(3 << 20),
                };
                if let Some(kn) = backup(s, &mut rec, &mut rng, &lsu, &name, size, None)? {
                    known.push(kn);
                }
            }
            40..=59 => {
                if let Some(i) = pick(&mut rng, &known, &|_| true) {
                    restore(s, &mut rec, &mut rng, &known[i])?;
                }
            }
            60..=67 => {
                if let Some(i) = pick(&mut rng, &known, &|k| !k.locked) {
                    let src = known[i].clone();
                    let to = p.lsus.iter().find(|l| **l != src.lsu).unwrap_or(&p.lsus[0]).clone();
                    rec.put(&Event::Begin { lsu: to.clone(), image: name.clone(), size: src.size })?;
                    let ok = s.lsu(&to).and_then(|tl| {
                        let fl = s.lsu(&src.lsu)?;
                        let (td, fd) =
                            (session::def(&name, DATE, "chaos")?, session::def(&src.name, "", "")?);
                        Ok(s.p().copy_image(&tl, &td, &fl, &fd)?)
                    });
                    match ok {
                        Ok(()) => {
                            rec.put(&Event::Complete {
                                lsu: to.clone(),
                                image: name.clone(),
                                size: src.size,
                                from: src.from.clone(),
                                pattern: Some(src.pattern.clone()),
                            })?;
                            // A copy holds the source's bytes: its expectation is the source's.
                            known.push(Known { lsu: to, name: name.clone(), ..src });
                        }
                        Err(e) => {
                            rec.put(&Event::Failed { lsu: to, image: name.clone(), why: format!("{e:#}") })?
                        }
                    }
                }
            }
            68..=75 => {
                // A synthetic full: part of an earlier image included, the rest new.
                if let Some(i) = pick(&mut rng, &known, &|k| k.size > 0 && k.from.is_none()) {
                    let src = known[i].clone();
                    let len = 1 + rng.below(src.size);
                    let size = len + rng.below(1 << 20);
                    if let Some(kn) = backup(
                        s,
                        &mut rec,
                        &mut rng,
                        &src.lsu,
                        &name,
                        size,
                        Some((src.name.clone(), src.pattern.clone(), len)),
                    )? {
                        known.push(kn);
                    }
                }
            }
            76..=85 => {
                if let Some(i) = pick(&mut rng, &known, &|_| true) {
                    let k = known[i].clone();
                    rec.put(&Event::Deleting { lsu: k.lsu.clone(), image: k.name.clone() })?;
                    let r = s
                        .lsu(&k.lsu)
                        .and_then(|l| Ok(s.p().delete_image(&l, &session::def(&k.name, "", "")?)?));
                    if r.is_ok() {
                        rec.put(&Event::Deleted { lsu: k.lsu.clone(), image: k.name.clone() })?;
                        known.remove(i);
                    }
                }
            }
            86..=91 => {
                // A.I.R.: a set of this worker's complete images of the replicated LSU.
                let set: Vec<String> = known
                    .iter()
                    .filter(|k| k.lsu == p.lsus[0])
                    .take(1 + rng.below(3) as usize)
                    .map(|k| k.name.clone())
                    .collect();
                if !set.is_empty() {
                    replicate(s, &mut rec, &p.lsus[0], &set)?;
                }
            }
            _ => {
                if let Some(i) = pick(&mut rng, &known, &|k| k.lsu == p.worm) {
                    let k = &known[i];
                    // Two days: longer than any clock jump of the driver.
                    let until = vast_ost_engine::util::now_secs() + 2 * 86_400;
                    let r = s.lsu(&k.lsu).and_then(|l| {
                        Ok(s.p().set_image_retention(&l, &session::def(&k.name, "", "")?, until)?)
                    });
                    if r.is_ok() {
                        rec.put(&Event::Locked { lsu: k.lsu.clone(), image: k.name.clone(), until })?;
                        known[i].locked = true;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Write `size` bytes into a new image (`include`: its first bytes included without copying
/// from another image, named, with the pattern its bytes are), in writes of a random size;
/// one backup in six is abandoned pending.
fn backup(
    s: &Session,
    rec: &mut Recorder,
    rng: &mut Rng,
    lsu: &str,
    name: &str,
    size: u64,
    include: Option<(String, String, u64)>,
) -> Result<Option<Known>> {
    // What the checker compares with: the included bytes by their pattern.
    let from = include.as_ref().map(|(_, pattern, len)| (pattern.clone(), *len));
    rec.put(&Event::Begin { lsu: lsu.into(), image: name.into(), size })?;
    let block = [64 << 10, 256 << 10, 1 << 20][rng.below(3) as usize];
    let abandon = rng.below(6) == 0;
    let r = (|| -> Result<()> {
        let img = s.create(lsu, &session::def(name, DATE, "chaos")?)?;
        let mut off = 0;
        if let Some((src, _, len)) = &include {
            s.p().include(img.handle(), &session::def(src, "", "")?, 0, *len, 0)?;
            off = *len;
        }
        let mut buf = vec![0u8; block];
        while off < size {
            let n = (block as u64).min(size - off) as usize;
            expected(name, from.as_ref(), off, &mut buf[..n]);
            img.write(&buf[..n], off)?;
            off += n as u64;
        }
        img.close(!abandon)
    })();
    match (r, abandon) {
        (Ok(()), false) => {
            rec.put(&Event::Complete {
                lsu: lsu.into(),
                image: name.into(),
                size,
                from: from.clone(),
                pattern: None,
            })?;
            Ok(Some(Known {
                lsu: lsu.into(),
                name: name.into(),
                size,
                from,
                pattern: name.into(),
                locked: false,
            }))
        }
        (Ok(()), true) => {
            rec.put(&Event::Failed { lsu: lsu.into(), image: name.into(), why: "abandoned pending".into() })?;
            Ok(None)
        }
        (Err(e), _) => {
            rec.put(&Event::Failed { lsu: lsu.into(), image: name.into(), why: format!("{e:#}") })?;
            Ok(None)
        }
    }
}

/// Replicate `set` (A.I.R.) and wait for it: a copy reported done is recorded with its opid.
/// A copy that fails is fine (faults); one that is still running after a minute is left to
/// its job record (another process, or cleanup, finds it).
fn replicate(s: &Session, rec: &mut Recorder, lsu: &str, set: &[String]) -> Result<()> {
    let Ok(l) = s.lsu(lsu) else { return Ok(()) };
    let defs: Vec<_> = set.iter().map(|n| session::def(n, "", "")).collect::<Result<_>>()?;
    let Ok(op) = s.p().async_copy_image(&l, &defs) else { return Ok(()) };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match s.p().async_wait(&op, 1000).0 {
            Ok(()) => {
                let opid = vast_ost_host::get_str(&op.op_id);
                return rec.put(&Event::Replicated { opid, images: set.to_vec() });
            }
            Err(vast_ost_host::Status(vast_ost_host::abi::STS_EAGAIN))
                if std::time::Instant::now() < deadline => {}
            Err(_) => return Ok(()),
        }
    }
}

/// Reads at random offsets and lengths; a read that succeeds must return the image's bytes.
fn restore(s: &Session, rec: &mut Recorder, rng: &mut Rng, k: &Known) -> Result<()> {
    let Ok(img) = s.open_read(&k.lsu, &k.name) else { return Ok(()) };
    for _ in 0..4 {
        let off = rng.below(k.size.max(1));
        let len = 1 + rng.below(256 << 10) as usize;
        let (mut got, mut want) = (vec![0u8; len], vec![0u8; len]);
        let Ok(n) = img.read(&mut got, off) else { break };
        expected(&k.pattern, k.from.as_ref(), off, &mut want[..n]);
        if got[..n] != want[..n] || (n < len && off + (n as u64) < k.size) {
            rec.put(&Event::BadRead { lsu: k.lsu.clone(), image: k.name.clone(), offset: off })?;
        }
    }
    let _ = img.close(false);
    Ok(())
}
