//! The NetBackup workload of one chaos process, as a table of operations ([`OPS`]): each row a
//! name, a weight and what it does through the real `.so`. A worker draws its operations from
//! its seed; what it reported that the checker needs (closes, deletes, locks, wrong bytes) goes
//! to its [`Recorder`]. A new operation (A.I.R.) is one more row.
//!
//! Calls fail under the faults; a failure is recorded where the checker needs it and
//! otherwise ignored (NetBackup retries the job). Only wrong bytes and hung calls are
//! violations seen here.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use vast_ost_host::abi::*;
use vast_ost_host::{get_str, image_def, lsu, Plugin, Status};

use super::content::{Content, Run};
use super::record::{self, Event, Recorder};
use super::rng::Rng;

/// The LSUs every iteration provisions: a plain bucket, a locking (WORM) bucket, an NFS view.
pub const LSUS: [&str; 3] = ["nbu-s3", "nbu-worm", "nbu-nfs"];
pub const WORM_LSU: &str = "nbu-worm";
/// A.I.R.: `nbu-nfs` replicates to this LSU of the second cluster (server [`DR_SERVER`]).
pub const AIR_LSU: &str = "nbu-nfs";
pub const DR_SERVER: &str = "VastData:chaos-dr";
pub const DR_LSU: &str = "nbu-dr";
/// Image dates as NetBackup writes them (the backup time).
const DATE: &str = "1700000000";
/// The longest one call may take before the process is judged hung. Every fault lasts a few
/// seconds; the retry policy gives up on a request after 60 s.
pub const CALL_LIMIT: Duration = Duration::from_secs(90);

/// One operation of the workload table.
pub struct OpDef {
    pub name: &'static str,
    pub weight: u32,
    pub run: fn(&mut Worker) -> Result<()>,
}

/// The workload: what NetBackup does to a disk pool. Weights are relative.
pub const OPS: &[OpDef] = &[
    OpDef { name: "backup-set", weight: 6, run: backup_set },
    OpDef { name: "checkpoint-restart", weight: 3, run: checkpoint_restart },
    OpDef { name: "restore", weight: 4, run: restore },
    OpDef { name: "poll", weight: 2, run: poll },
    OpDef { name: "copy-image", weight: 2, run: copy_image },
    OpDef { name: "copy-extent", weight: 2, run: copy_extent },
    OpDef { name: "synthetic", weight: 2, run: synthetic },
    OpDef { name: "expire", weight: 2, run: expire },
    OpDef { name: "expire-concurrent", weight: 1, run: expire_concurrent },
    OpDef { name: "expire-others", weight: 1, run: expire_others },
    OpDef { name: "lock", weight: 2, run: lock },
    OpDef { name: "air-copy", weight: 2, run: air_copy },
];

/// What a worker process is given on its command line.
pub struct WorkerArgs {
    pub dir: PathBuf,
    pub worker: usize,
    pub workers: usize,
    pub seed: u64,
    pub ops: usize,
    pub server: String,
    pub user: String,
    pub password: String,
}

/// An image this worker completed (and has not expired).
#[derive(Clone)]
struct Known {
    lsu: String,
    name: String,
    content: Content,
}

pub struct Worker {
    p: Plugin,
    /// The server handle, as a number so threads may carry it.
    server: usize,
    rec: Arc<Recorder>,
    rng: Rng,
    args: WorkerArgs,
    complete: Vec<Known>,
    /// Images closed incomplete at a checkpoint, to be resumed.
    pending: Vec<(Known, u64)>,
    next: u64,
}

/// The call in flight and since when, for the watchdog.
static CURRENT: Mutex<Option<(&'static str, Instant)>> = Mutex::new(None);

/// Marks a plug-in call as in flight until dropped.
struct Watch;
fn watch(call: &'static str) -> Watch {
    *CURRENT.lock().unwrap_or_else(|p| p.into_inner()) = Some((call, Instant::now()));
    Watch
}
impl Drop for Watch {
    fn drop(&mut self) {
        *CURRENT.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// A hung call is recorded and the process aborted (the parent reports it).
fn start_watchdog(rec: Arc<Recorder>) {
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(250));
        let cur = *CURRENT.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((call, since)) = cur {
            if since.elapsed() > CALL_LIMIT {
                rec.log(&Event::Violation {
                    what: format!("{call} did not return within {} s (hung)", CALL_LIMIT.as_secs()),
                });
                std::process::abort();
            }
        }
    });
}

pub fn record_path(dir: &std::path::Path, worker: usize) -> PathBuf {
    dir.join(format!("record-{worker}.jsonl"))
}

/// Load the plug-in, open the server, run the worker's operations, record `Done`.
pub fn run(args: WorkerArgs, plugin: &std::path::Path) -> Result<()> {
    let rec = Arc::new(Recorder::create(&record_path(&args.dir, args.worker))?);
    start_watchdog(rec.clone());
    let p = Plugin::load(plugin).map_err(anyhow::Error::msg)?;
    {
        let _w = watch("stspi_init");
        p.init().context("stspi_init")?;
    }
    let server = loop {
        // Opening the server talks to VMS, which a fault may hold up: retry as bptm would.
        let _w = watch("stspi_open_server");
        match p.open_server(&args.server, &args.user, &args.password) {
            Ok(h) => break h as usize,
            Err(e) => {
                eprintln!("chaos worker {}: open_server: {e}; retrying", args.worker);
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    };
    let rng = Rng::new(Rng::derive(args.seed, 100 + args.worker as u64));
    let mut w = Worker { p, server, rec, rng, args, complete: Vec::new(), pending: Vec::new(), next: 0 };
    let weights: Vec<u32> = OPS.iter().map(|o| o.weight).collect();
    for _ in 0..w.args.ops {
        let op = &OPS[w.rng.weighted(&weights)];
        if let Err(e) = (op.run)(&mut w) {
            eprintln!("chaos worker {}: {}: {e:#}", w.args.worker, op.name);
        }
    }
    {
        let _w = watch("stspi_close_server");
        let _ = w.p.close_server(w.handle());
    }
    w.rec.log(&Event::Done);
    Ok(())
}

fn rc(r: &Result<(), Status>) -> i32 {
    match r {
        Ok(()) => STS_EOK,
        Err(s) => s.0,
    }
}

impl Worker {
    fn handle(&self) -> stsp_server_handle_t {
        self.server as stsp_server_handle_t
    }

    fn lsu(&self, name: &str) -> sts_lsu_t {
        lsu(self.handle(), name)
    }

    /// A fresh NetBackup-style image name of this worker: `w<k>b<n>_<date>_C1_<part>`.
    fn backup_id(&mut self) -> String {
        self.next += 1;
        format!("w{}b{}_{DATE}", self.args.worker, self.next)
    }

    fn pick_complete(&mut self, on: Option<&str>) -> Option<Known> {
        let c: Vec<&Known> = self.complete.iter().filter(|k| on.is_none_or(|l| k.lsu == l)).collect();
        (!c.is_empty()).then(|| (*self.rng.pick(&c)).clone())
    }

    /// A write size NetBackup might use, odd ones included.
    fn write_size(&mut self) -> usize {
        *self.rng.pick(&[4096, 65_536, 100_003, 262_144, 1 << 20])
    }

    /// Write stream `name` over `[from, to)` of the image open in `h`; false on a failure.
    fn write_range(&mut self, h: stsp_image_handle_t, name: &str, from: u64, to: u64) -> bool {
        let bs = self.write_size();
        let mut buf = vec![0u8; bs];
        let pat = crate::pattern::Pattern::for_name(name);
        let mut off = from;
        while off < to {
            let n = (bs as u64).min(to - off) as usize;
            pat.fill(off, &mut buf[..n]);
            let _w = watch("stspi_write_image");
            if self.p.write(h, &buf[..n], off).is_err() {
                return false;
            }
            off += n as u64;
        }
        true
    }

    /// Record the intent, close complete, record the outcome; the image is known complete on
    /// success.
    fn close_complete(&mut self, h: stsp_image_handle_t, k: Known) -> bool {
        self.rec.log(&Event::Closing {
            lsu: k.lsu.clone(),
            image: k.name.clone(),
            runs: k.content.runs.clone(),
        });
        let r = {
            let _w = watch("stspi_close_image");
            self.p.close_image(h, STS_CLOSEF_IH_COMPLETE)
        };
        self.rec.log(&Event::Closed { lsu: k.lsu.clone(), image: k.name.clone(), rc: rc(&r) });
        let ok = r.is_ok();
        if ok {
            self.complete.push(k);
        }
        ok
    }

    /// One image of a backup set: create, write `size` bytes, close complete. With a
    /// checkpoint, write part, flush, close incomplete, and leave it for a restart.
    fn backup_image(&mut self, l: &str, name: String, size: u64, checkpoint: bool) {
        let def = image_def(&name, DATE, "chaos");
        let h = {
            let _w = watch("stspi_create_image");
            match self.p.create_image(&self.lsu(l), &def) {
                Ok(h) => h,
                Err(_) => return,
            }
        };
        let whole = Run { off: 0, len: size, stream: name.clone(), src: 0 };
        let mut content = Content::default();
        if size > 0 {
            content.put(whole);
        }
        let k = Known { lsu: l.to_string(), name: name.clone(), content };
        if checkpoint && size > 1 {
            let at = self.rng.range(1, size - 1);
            let ok = self.write_range(h, &name, 0, at) && {
                let _w = watch("stspi_flush");
                self.p.flush(h).is_ok()
            };
            let _w = watch("stspi_close_image");
            if self.p.close_image(h, STS_CLOSEF_IH_INCOMPLETE).is_ok() && ok {
                self.pending.push((k, at));
            }
            return;
        }
        // After a failed write the close COMPLETE is still made (and recorded): it must fail.
        self.write_range(h, &name, 0, size);
        self.close_complete(h, k);
    }
}

/// A backup set: HDR, F1..Fn, TIR, IM, of random sizes, one fragment perhaps checkpointed.
fn backup_set(w: &mut Worker) -> Result<()> {
    let l = w.rng.pick(&LSUS).to_string();
    let id = w.backup_id();
    let frags = w.rng.range(1, 3);
    let mut parts: Vec<(String, u64)> = vec![(format!("{id}_C1_HDR"), w.rng.range(1, 64 << 10))];
    for f in 1..=frags {
        let size = if w.rng.chance(0.2) { w.rng.range(1, 4096) } else { w.rng.range(64 << 10, 3 << 20) };
        parts.push((format!("{id}_C1_F{f}"), size));
    }
    parts.push((format!("{id}_C1_TIR"), w.rng.range(1, 128 << 10)));
    parts.push((format!("{id}_C1_IM"), w.rng.range(1, 32 << 10)));
    for (name, size) in parts {
        let checkpoint = name.contains("_F") && w.rng.chance(0.25);
        w.backup_image(&l, name, size, checkpoint);
    }
    Ok(())
}

/// Resume a checkpointed image where its committed size says, and close it complete.
fn checkpoint_restart(w: &mut Worker) -> Result<()> {
    if w.pending.is_empty() {
        return backup_set(w);
    }
    let i = w.rng.range(0, w.pending.len() as u64 - 1) as usize;
    let (k, _) = w.pending.swap_remove(i);
    let l = w.lsu(&k.lsu);
    let def = image_def(&k.name, DATE, "chaos");
    let h = {
        let _w = watch("stspi_open_image");
        w.p.open_image(&l, &def, STS_O_APPEND)?
    };
    let at = {
        let _w = watch("stspi_get_image_prop");
        w.p.image_prop(h).map(|i| i.imo_size)
    };
    let size = k.content.size();
    match at {
        Ok(at) if at <= size => {
            w.write_range(h, &k.name, at, size);
            w.close_complete(h, k);
        }
        _ => {
            let _w = watch("stspi_close_image");
            let _ = w.p.close_image(h, STS_CLOSEF_IH_INCOMPLETE);
        }
    }
    Ok(())
}

/// Read ranges at random offsets (and sometimes the whole image) and compare.
fn restore(w: &mut Worker) -> Result<()> {
    let Some(k) = w.pick_complete(None) else { return Ok(()) };
    let h = {
        let _w = watch("stspi_open_image");
        w.p.open_image(&w.lsu(&k.lsu), &image_def(&k.name, "", ""), STS_O_READ)?
    };
    let size = k.content.size();
    let reads: Vec<(u64, u64)> = if w.rng.chance(0.3) {
        vec![(0, size)]
    } else {
        (0..w.rng.range(1, 4))
            .map(|_| {
                let off = w.rng.range(0, size);
                (off, w.rng.range(1, 1 << 20).min(size - off + 1))
            })
            .collect()
    };
    for (off, len) in reads {
        if let Some(problem) = read_compare(&w.p, h, &k.content, off, len, false) {
            w.rec.log(&Event::Violation { what: format!("restore of {}/{}: {problem}", k.lsu, k.name) });
            break;
        }
    }
    let _w = watch("stspi_close_image");
    let _ = w.p.close_image(h, 0);
    Ok(())
}

/// Read `[off, off + len)` of the image open in `h` and compare it with `content`: a
/// description of what was wrong, or None. A failed read is a problem only when `strict` (no
/// faults); under faults it is no wrong byte.
pub fn read_compare(
    p: &Plugin,
    h: stsp_image_handle_t,
    content: &Content,
    off: u64,
    len: u64,
    strict: bool,
) -> Option<String> {
    let size = content.size();
    let mut got = vec![0u8; len.min(1 << 20) as usize];
    let mut want = vec![0u8; got.len()];
    let (mut pos, end) = (off, off + len);
    while pos < end {
        let n = (end - pos).min(got.len() as u64) as usize;
        let r = {
            let _w = watch("stspi_read_image");
            p.read(h, &mut got[..n], pos)
        };
        let got_n = match r {
            Ok(n) => n,
            Err(e) if strict => return Some(format!("read of {n} bytes at {pos} failed: {e}")),
            Err(_) => return None,
        };
        let expect = size.saturating_sub(pos).min(n as u64) as usize;
        if got_n != expect {
            return Some(format!(
                "read of {n} bytes at {pos} returned {got_n}, expected {expect} (size {size})"
            ));
        }
        if got_n == 0 {
            break;
        }
        content.fill(pos, &mut want[..got_n]);
        if got[..got_n] != want[..got_n] {
            let first = got[..got_n].iter().zip(&want[..got_n]).position(|(a, b)| a != b).unwrap_or(0);
            return Some(format!("WRONG BYTES from offset {}", pos + first as u64));
        }
        pos += got_n as u64;
    }
    None
}

/// Server and LSU properties and a listing, as bpstsinfo and the disk-pool monitor poll them.
fn poll(w: &mut Worker) -> Result<()> {
    {
        let _w = watch("stspi_get_server_prop");
        let _ = w.p.server_prop(w.handle());
    }
    {
        let _w = watch("stspi_get_server_prop_byname");
        let _ = w.p.server_prop_byname(&w.args.server);
    }
    for l in LSUS {
        let _w = watch("stspi_get_lsu_prop_byname");
        let _ = w.p.lsu_prop(&w.lsu(l));
    }
    let l = w.rng.pick(&LSUS).to_string();
    let _w = watch("stspi_list_image");
    let _ = w.p.images(&w.lsu(&l), "");
    Ok(())
}

/// `stspi_copy_image` of a complete image to a random LSU.
fn copy_image(w: &mut Worker) -> Result<()> {
    let Some(src) = w.pick_complete(None) else { return Ok(()) };
    let to_lsu = w.rng.pick(&LSUS).to_string();
    let name = format!("{}_C2_F1", w.backup_id());
    let k = Known { lsu: to_lsu.clone(), name: name.clone(), content: src.content.clone() };
    w.rec.log(&Event::Closing { lsu: to_lsu.clone(), image: name.clone(), runs: k.content.runs.clone() });
    let r = {
        let _w = watch("stspi_copy_image");
        w.p.copy_image(
            &w.lsu(&to_lsu),
            &image_def(&name, DATE, "chaos"),
            &w.lsu(&src.lsu),
            &image_def(&src.name, "", ""),
        )
    };
    w.rec.log(&Event::Closed { lsu: to_lsu, image: name, rc: rc(&r) });
    if r.is_ok() {
        w.complete.push(k);
    }
    Ok(())
}

/// Extent-based optimized duplication: open the target server, create the copy, copy the
/// source in extents of random sizes, close it complete.
fn copy_extent(w: &mut Worker) -> Result<()> {
    let Some(src) = w.pick_complete(None) else { return Ok(()) };
    let size = src.content.size();
    let t = {
        let _w = watch("stspi_open_target_server");
        w.p.open_target_server(w.handle(), &w.args.server, &w.args.user, &w.args.password)?
    };
    let to_lsu = w.rng.pick(&LSUS).to_string();
    let name = format!("{}_C2_F1", w.backup_id());
    let res = (|| -> Result<()> {
        let dst = {
            let _w = watch("stspi_create_image");
            w.p.create_image(&lsu(t, &to_lsu), &image_def(&name, DATE, "chaos"))?
        };
        let from = {
            let _w = watch("stspi_open_image");
            w.p.open_image(&w.lsu(&src.lsu), &image_def(&src.name, "", ""), STS_O_READ)
        };
        let Ok(from) = from else {
            let _w = watch("stspi_close_image");
            let _ = w.p.close_image(dst, STS_CLOSEF_IH_INCOMPLETE);
            return Ok(());
        };
        let chunk = w.rng.range(4096, 2 << 20);
        let mut off = 0;
        let mut ok = true;
        while off < size && ok {
            let n = chunk.min(size - off);
            let _w = watch("stspi_copy_extent");
            ok = w.p.copy_extent(dst, from, off, n, off).is_ok();
            off += n;
        }
        {
            let _w = watch("stspi_close_image");
            let _ = w.p.close_image(from, 0);
        }
        let k = Known { lsu: to_lsu.clone(), name: name.clone(), content: src.content.clone() };
        finish(w, dst, k, ok);
        Ok(())
    })();
    let _w = watch("stspi_close_target_server");
    let _ = w.p.close_target_server(t);
    res
}

/// An optimized synthetic full: segments of a complete image of the same LSU included, a few
/// written anew, closed complete.
fn synthetic(w: &mut Worker) -> Result<()> {
    let Some(src) = w.pick_complete(None) else { return Ok(()) };
    let src_size = src.content.size();
    if src_size < 2 {
        return Ok(());
    }
    let name = format!("{}_C1_F1", w.backup_id());
    let h = {
        let _w = watch("stspi_create_image");
        w.p.create_image(&w.lsu(&src.lsu), &image_def(&name, DATE, "chaos"))?
    };
    let mut content = Content::default();
    let mut off = 0;
    let target = w.rng.range(1, src_size + (1 << 20));
    let src_def = image_def(&src.name, "", "");
    let mut ok = true;
    while off < target && ok {
        let len = w.rng.range(1, 512 << 10).min(target - off);
        if w.rng.chance(0.7) {
            let len = len.min(src_size);
            let from = w.rng.range(0, src_size - len);
            for r in src.content.slice(from, len, off) {
                content.put(r);
            }
            let _w = watch("stspi_include_in_image");
            ok = w.p.include(h, &src_def, from, len, off).is_ok();
            off += len;
        } else {
            content.put(Run { off, len, stream: name.clone(), src: off });
            ok = w.write_range(h, &name, off, off + len);
            off += len;
        }
    }
    let k = Known { lsu: src.lsu.clone(), name, content };
    finish(w, h, k, ok);
    Ok(())
}

/// The end of a job that placed other images' bytes: after a refused include or extent copy
/// the job fails, as bptm's would (a refusal leaves the writer usable by design, so closing
/// complete would be the host's mistake); else close complete.
fn finish(w: &mut Worker, h: stsp_image_handle_t, k: Known, ok: bool) {
    if ok {
        w.close_complete(h, k);
    } else {
        let _w = watch("stspi_close_image");
        let _ = w.p.close_image(h, STS_CLOSEF_IH_INCOMPLETE);
    }
}

/// Delete (expire) one image, recording intent and outcome.
fn delete(p: &Plugin, rec: &Recorder, server: usize, l: &str, name: &str) -> i32 {
    rec.log(&Event::Deleting { lsu: l.to_string(), image: name.to_string() });
    let r = {
        let _w = watch("stspi_delete_image");
        p.delete_image(&lsu(server as stsp_server_handle_t, l), &image_def(name, "", ""))
    };
    let code = rc(&r);
    rec.log(&Event::Deleted { lsu: l.to_string(), image: name.to_string(), rc: code });
    code
}

fn take_complete(w: &mut Worker) -> Option<Known> {
    if w.complete.is_empty() {
        return None;
    }
    let i = w.rng.range(0, w.complete.len() as u64 - 1) as usize;
    Some(w.complete.swap_remove(i))
}

/// Expire one of this worker's images (locked ones must be refused).
fn expire(w: &mut Worker) -> Result<()> {
    if let Some(k) = take_complete(w) {
        let code = delete(&w.p, &w.rec, w.server, &k.lsu, &k.name);
        if code != STS_EOK {
            w.complete.push(k);
        }
    }
    Ok(())
}

/// Two threads of this process expire the same image at once.
fn expire_concurrent(w: &mut Worker) -> Result<()> {
    let Some(k) = take_complete(w) else { return Ok(()) };
    let (p, rec, server) = (&w.p, &*w.rec, w.server);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| delete(p, rec, server, &k.lsu, &k.name));
        }
    });
    Ok(())
}

/// Expire an image another worker (another media server, perhaps) reported complete, while
/// that worker may be reading, copying or expiring it.
fn expire_others(w: &mut Worker) -> Result<()> {
    if w.args.workers < 2 {
        return Ok(());
    }
    let mut other = w.rng.range(0, w.args.workers as u64 - 2) as usize;
    if other >= w.args.worker {
        other += 1;
    }
    let done: Vec<(String, String)> = record::read(&record_path(&w.args.dir, other))?
        .into_iter()
        .filter_map(|e| match e {
            Event::Closed { lsu, image, rc: STS_EOK } => Some((lsu, image)),
            _ => None,
        })
        .collect();
    if done.is_empty() {
        return Ok(());
    }
    let (l, name) = w.rng.pick(&done).clone();
    delete(&w.p, &w.rec, w.server, &l, &name);
    Ok(())
}

/// Lock an image of the WORM LSU for one to four hours (the simulator's clock jumps may run
/// it out), then try to expire it at once (which must be refused).
fn lock(w: &mut Worker) -> Result<()> {
    let Some(k) = w.pick_complete(Some(WORM_LSU)) else {
        // Nothing on the WORM LSU yet: back up something there.
        let id = w.backup_id();
        let size = w.rng.range(1, 1 << 20);
        w.backup_image(WORM_LSU, format!("{id}_C1_F1"), size, false);
        return Ok(());
    };
    let until = vast_ost_engine::util::now_secs() + w.rng.range(3700, 4 * 3600);
    let r = {
        let _w = watch("stspi_set_image_retention");
        w.p.set_image_retention(&w.lsu(&k.lsu), &image_def(&k.name, "", ""), until)
    };
    w.rec.log(&Event::Locked { lsu: k.lsu.clone(), image: k.name.clone(), until, rc: rc(&r) });
    if r.is_ok() && w.rng.chance(0.5) {
        delete(&w.p, &w.rec, w.server, &k.lsu, &k.name);
    }
    Ok(())
}

/// A.I.R.: replicate a set of this worker's complete images of the replicated LSU to the
/// target cluster, and wait for it (a minute at most: one left running is its job record's).
fn air_copy(w: &mut Worker) -> Result<()> {
    let n = w.rng.range(1, 3) as usize;
    let set: Vec<Known> = w.complete.iter().filter(|k| k.lsu == AIR_LSU).take(n).cloned().collect();
    if set.is_empty() {
        return Ok(());
    }
    let defs: Vec<sts_image_def_t> = set.iter().map(|k| image_def(&k.name, "", "")).collect();
    let op = {
        let _w = watch("stspi_async_copy_image");
        w.p.async_copy_image(&w.lsu(AIR_LSU), &defs)?
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = {
            let _w = watch("stspi_async_wait");
            w.p.async_wait(&op, 1000).0
        };
        match r {
            Ok(()) => {
                let opid = get_str(&op.op_id);
                let images = set.into_iter().map(|k| k.name).collect();
                w.rec.log(&Event::Replicated { lsu: AIR_LSU.into(), opid, images });
                return Ok(());
            }
            Err(Status(STS_EAGAIN)) if Instant::now() < deadline => {}
            Err(_) => return Ok(()),
        }
    }
}

/// The servers the verify pass reads: the source cluster's and the A.I.R. target's.
pub struct Servers {
    pub source: stsp_server_handle_t,
    pub target: stsp_server_handle_t,
}

impl Servers {
    fn of(&self, l: &str) -> stsp_server_handle_t {
        if l == DR_LSU {
            self.target
        } else {
            self.source
        }
    }
}

/// The verify pass (no faults): list every LSU (the target's too), count the events on the
/// target per operation, then restore each image of `expect` whole.
pub fn verify(p: &Plugin, servers: &Servers, rec: &Recorder, expect: &[(String, String, Content)]) {
    match p.open_evchannel(&lsu(servers.target, DR_LSU), 0) {
        Ok(ch) => {
            let mut seen: std::collections::BTreeMap<String, usize> = Default::default();
            loop {
                let _w = watch("stspi_get_event");
                match p.get_event(ch) {
                    Ok(e) => *seen.entry(get_str(&e.ev_opid.op_id)).or_default() += 1,
                    Err(Status(STS_ENO_MORE_ENTRIES)) => break,
                    Err(e) => {
                        rec.log(&Event::Violation { what: format!("reading the target's events: {e}") });
                        break;
                    }
                }
            }
            let _ = p.close_evchannel(ch);
            for (opid, count) in seen {
                rec.log(&Event::AirEvents { opid, count });
            }
        }
        Err(e) => rec.log(&Event::Violation { what: format!("opening the target's event channel: {e}") }),
    }
    for l in LSUS.into_iter().chain([DR_LSU]) {
        let server = servers.of(l);
        let _w = watch("stspi_list_image");
        match p.images(&lsu(server, l), "") {
            Ok(list) => {
                for i in list {
                    rec.log(&Event::Listed {
                        lsu: l.to_string(),
                        image: get_str(&i.imo_def.img_basename),
                        flags: i.imo_flags,
                        size: i.imo_size,
                    });
                }
            }
            Err(e) => rec.log(&Event::Violation { what: format!("listing {l} without faults: {e}") }),
        }
    }
    for (l, name, content) in expect {
        let problem = {
            let _w = watch("stspi_open_image");
            p.open_image(&lsu(servers.of(l), l), &image_def(name, "", ""), STS_O_READ)
        }
        .map_err(|e| format!("open_image: {e}"))
        .and_then(|h| {
            let size = content.size();
            let r = match p.image_prop(h) {
                Ok(i) if i.imo_size != size => Err(format!("size {} instead of {size}", i.imo_size)),
                Ok(_) => match read_compare(p, h, content, 0, size, true) {
                    Some(pr) => Err(pr),
                    None => Ok(()),
                },
                Err(e) => Err(format!("get_image_prop: {e}")),
            };
            let _ = p.close_image(h, 0);
            r
        })
        .err();
        rec.log(&Event::Restored { lsu: l.clone(), image: name.clone(), problem });
    }
}
