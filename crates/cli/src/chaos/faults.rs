//! The fault schedule of an iteration: drawn from its seed as a list of (moment, fault), then
//! applied by one thread while the workload runs, each fault undone when its time is up (so
//! faults overlap and combine). Every fault kind is a row of [`KINDS`]; its parameters are
//! drawn with the schedule, so a seed replays the same faults at the same moments.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use vast_sim::proxy::{Dir, Proxy};
use vast_sim::{FaultConfig, Plane, Sim};

use super::rng::Rng;

/// What the faults act on.
pub struct Targets<'a> {
    pub sim: &'a Sim,
    /// One proxy in front of each S3 VIP (the plug-in's endpoints).
    pub s3: &'a [Proxy],
    /// The proxy in front of VMS.
    pub vms: &'a Proxy,
    pub admin: &'a vast_ost_engine::vms::Vms,
    /// The id of the quota on the `nbu-s3` bucket.
    pub quota: u64,
    /// The NFS view's own small file system (a tmpfs), when one could be mounted.
    pub nfs_fs: Option<PathBuf>,
    /// Kill worker `k` with SIGKILL.
    pub kill: &'a (dyn Fn(usize) + Sync),
}

/// One fault with its drawn parameters.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Reset the connection carrying byte `after` (then every `after` bytes, `times` times).
    Reset {
        vip: usize,
        dir_up: bool,
        after: u64,
        times: u64,
    },
    /// Hold every byte through one VIP's proxy.
    Stall {
        vip: usize,
        ms: u64,
    },
    /// Hold only the answers: requests take effect, their answers come late or never.
    LostAnswers {
        vip: usize,
        ms: u64,
    },
    /// A storm of 503s (S3 SlowDown) and dropped connections on a plane.
    Storm {
        plane: Plane,
        error_rate: f64,
        drop_rate: f64,
        ms: u64,
        seed: u64,
    },
    /// Every VMS access token issued so far becomes invalid.
    TokenExpiry,
    /// VMS answers late (its proxy holds every byte).
    VmsStall {
        ms: u64,
    },
    VipDown {
        vip: usize,
        ms: u64,
    },
    /// Every VIP and VMS drop their connections and refuse new ones for a while.
    Restart {
        ms: u64,
    },
    /// The `nbu-s3` bucket's quota is full.
    QuotaFull {
        ms: u64,
    },
    /// The NFS view's file system is full.
    NfsFull {
        ms: u64,
    },
    /// `kill -9` of a worker process.
    Kill {
        worker: usize,
    },
    /// The simulator's clock (which ends retention locks) jumps ahead.
    ClockJump {
        secs: u64,
    },
}

type Draw = fn(&mut Rng, &Shape) -> Fault;

/// One row of the fault table.
pub struct KindDef {
    pub name: &'static str,
    pub weight: u32,
    pub draw: Draw,
}

/// What the schedule is drawn for.
pub struct Shape {
    pub vips: usize,
    pub workers: usize,
}

pub const KINDS: &[KindDef] = &[
    KindDef {
        name: "reset",
        weight: 4,
        draw: |r, s| Fault::Reset {
            vip: r.range(0, s.vips as u64 - 1) as usize,
            dir_up: r.chance(0.5),
            after: r.range(16 << 10, 3 << 20),
            times: r.range(1, 3),
        },
    },
    KindDef {
        name: "stall",
        weight: 3,
        draw: |r, s| Fault::Stall { vip: r.range(0, s.vips as u64 - 1) as usize, ms: r.range(200, 3500) },
    },
    KindDef {
        name: "lost-answers",
        weight: 3,
        draw: |r, s| Fault::LostAnswers {
            vip: r.range(0, s.vips as u64 - 1) as usize,
            ms: r.range(500, 3500),
        },
    },
    KindDef {
        name: "storm",
        weight: 3,
        draw: |r, _| Fault::Storm {
            plane: *r.pick(&[Plane::S3, Plane::Vms, Plane::All]),
            error_rate: r.range(10, 60) as f64 / 100.0,
            drop_rate: if r.chance(0.3) { r.range(5, 20) as f64 / 100.0 } else { 0.0 },
            ms: r.range(300, 2500),
            seed: r.next_u64(),
        },
    },
    KindDef { name: "token-expiry", weight: 2, draw: |_, _| Fault::TokenExpiry },
    KindDef { name: "vms-stall", weight: 1, draw: |r, _| Fault::VmsStall { ms: r.range(300, 3000) } },
    KindDef {
        name: "vip-down",
        weight: 2,
        draw: |r, s| Fault::VipDown { vip: r.range(0, s.vips as u64 - 1) as usize, ms: r.range(300, 4000) },
    },
    KindDef { name: "restart", weight: 2, draw: |r, _| Fault::Restart { ms: r.range(200, 1500) } },
    KindDef { name: "quota-full", weight: 2, draw: |r, _| Fault::QuotaFull { ms: r.range(300, 3000) } },
    KindDef { name: "nfs-full", weight: 2, draw: |r, _| Fault::NfsFull { ms: r.range(300, 3000) } },
    KindDef {
        name: "kill",
        weight: 3,
        draw: |r, s| Fault::Kill { worker: r.range(0, s.workers as u64 - 1) as usize },
    },
    KindDef { name: "clock-jump", weight: 2, draw: |r, _| Fault::ClockJump { secs: r.range(600, 3 * 3600) } },
];

/// The faults of one iteration, at their moments from the workload's start.
pub fn schedule(seed: u64, shape: &Shape, horizon: Duration) -> Vec<Planned> {
    let mut r = Rng::new(seed);
    let weights: Vec<u32> = KINDS.iter().map(|k| k.weight).collect();
    let n = r.range(0, 7);
    let mut out: Vec<Planned> = (0..n)
        .map(|_| {
            let at = Duration::from_millis(r.range(0, horizon.as_millis() as u64));
            let kind = &KINDS[r.weighted(&weights)];
            Planned { at, kind: kind.name, fault: (kind.draw)(&mut r, shape) }
        })
        .collect();
    out.sort_by_key(|p| p.at);
    out
}

/// A fault of the schedule: when (from the workload's start), its kind's name, and itself.
#[derive(Debug, Clone)]
pub struct Planned {
    pub at: Duration,
    pub kind: &'static str,
    pub fault: Fault,
}

impl Fault {
    /// How long it lasts before [`Fault::undo`] (None: a one-off).
    fn lasts(&self) -> Option<Duration> {
        let ms = match self {
            Fault::Stall { ms, .. } | Fault::LostAnswers { ms, .. } | Fault::VmsStall { ms } => *ms,
            Fault::Storm { ms, .. } | Fault::VipDown { ms, .. } | Fault::Restart { ms } => *ms,
            Fault::QuotaFull { ms } | Fault::NfsFull { ms } => *ms,
            // Undone at once: the plan itself says how many resets.
            Fault::Reset { .. } => 3000,
            Fault::TokenExpiry | Fault::Kill { .. } | Fault::ClockJump { .. } => return None,
        };
        Some(Duration::from_millis(ms))
    }

    fn apply(&self, t: &Targets) {
        match *self {
            Fault::Reset { vip, dir_up, after, times } => {
                t.s3[vip].reset_after(if dir_up { Dir::Up } else { Dir::Down }, after, times)
            }
            Fault::Stall { vip, ms } => t.s3[vip].stall_for(Duration::from_millis(ms)),
            Fault::LostAnswers { vip, ms } => t.s3[vip].stall_answers_for(Duration::from_millis(ms)),
            Fault::Storm { plane, error_rate, drop_rate, seed, .. } => {
                t.sim.set_faults(FaultConfig { error_rate, drop_rate, plane, seed, ..Default::default() })
            }
            Fault::TokenExpiry => t.sim.expire_access_tokens(),
            Fault::VmsStall { ms } => t.vms.stall_for(Duration::from_millis(ms)),
            Fault::VipDown { vip, .. } => {
                let _ = t.sim.vip_down(vip);
            }
            Fault::Restart { .. } => {
                for p in t.s3.iter().chain([t.vms]) {
                    p.refuse(true);
                    p.drop_all();
                }
            }
            Fault::QuotaFull { .. } => set_quota(t, 1),
            Fault::NfsFull { .. } => {
                if let Some(fs) = &t.nfs_fs {
                    fill(&fs.join(FILLER));
                }
            }
            Fault::Kill { worker } => (t.kill)(worker),
            Fault::ClockJump { secs } => t.sim.advance_clock(secs as i64),
        }
    }

    fn undo(&self, t: &Targets) {
        match *self {
            Fault::Reset { vip, .. } => t.s3[vip].reset_after(Dir::Up, 1, 0),
            Fault::Storm { .. } => t.sim.set_faults(FaultConfig::default()),
            Fault::VipDown { vip, .. } => {
                let _ = t.sim.vip_up(vip);
            }
            Fault::Restart { .. } => {
                for p in t.s3.iter().chain([t.vms]) {
                    p.refuse(false);
                }
            }
            Fault::QuotaFull { .. } => set_quota(t, UNLIMITED),
            Fault::NfsFull { .. } => {
                if let Some(fs) = &t.nfs_fs {
                    let _ = std::fs::remove_file(fs.join(FILLER));
                }
            }
            Fault::Stall { .. } | Fault::LostAnswers { .. } | Fault::VmsStall { .. } => {}
            Fault::TokenExpiry | Fault::Kill { .. } | Fault::ClockJump { .. } => {}
        }
    }
}

/// The quota on `nbu-s3` when not full.
pub const UNLIMITED: u64 = 1 << 40;
/// The file that fills the NFS file system (a dot name: never an image).
const FILLER: &str = ".chaos-filler";

fn set_quota(t: &Targets, limit: u64) {
    if let Err(e) = t.admin.patch(&format!("quotas/{}/", t.quota), &json!({ "hard_limit": limit })) {
        eprintln!("chaos: setting the quota: {e}");
    }
}

/// Take every free byte of the file system holding `path`.
fn fill(path: &std::path::Path) {
    use std::os::fd::AsRawFd;
    let Ok(f) = std::fs::File::create(path) else { return };
    // SAFETY: a live descriptor; statvfs fills the zeroed struct.
    let free = unsafe {
        let mut s: libc::statvfs = std::mem::zeroed();
        if libc::fstatvfs(f.as_raw_fd(), &mut s) != 0 {
            return;
        }
        s.f_bavail as u64 * s.f_frsize as u64
    };
    // SAFETY: a live descriptor and a length.
    unsafe { libc::posix_fallocate(f.as_raw_fd(), 0, free as libc::off_t) };
}

/// What the fault thread did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Applied {
    /// Faults applied before the workload ended.
    pub faults: usize,
    /// Seconds the simulator's clock was moved.
    pub clock_jumped: u64,
}

/// Apply `plan` from `start` until it is done or `stop` is set; then undo whatever is still in
/// force.
pub fn run(plan: &[Planned], t: &Targets, start: Instant, stop: &AtomicBool) -> Applied {
    // (when, apply?, index)
    let mut events: Vec<(Duration, bool, usize)> = Vec::new();
    for (i, p) in plan.iter().enumerate() {
        events.push((p.at, true, i));
        if let Some(d) = p.fault.lasts() {
            events.push((p.at + d, false, i));
        }
    }
    events.sort_by_key(|e| (e.0, !e.1));
    let mut active = vec![false; plan.len()];
    let mut done = Applied::default();
    for (when, apply, i) in events {
        while start.elapsed() < when {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10).min(when.saturating_sub(start.elapsed())));
        }
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let f = &plan[i].fault;
        if apply {
            f.apply(t);
            done.faults += 1;
            active[i] = f.lasts().is_some();
            if let Fault::ClockJump { secs } = f {
                done.clock_jumped += secs;
            }
        } else if active[i] {
            f.undo(t);
            active[i] = false;
        }
    }
    for (i, on) in active.iter().enumerate() {
        if *on {
            plan[i].fault.undo(t);
        }
    }
    done
}
