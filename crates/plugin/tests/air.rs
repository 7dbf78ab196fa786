//! A.I.R. through the C interface between two simulated VAST clusters: `VastData:src` (its
//! bucket `nbu-src` replicates to) `VastData:dst` (bucket `nbu-dst`, reached through a
//! throttling proxy so copies take long enough to be killed or cancelled mid-way). A backup
//! set replicated byte for byte with exactly one `STS_EVT_IMG_REP` event; the copying process
//! killed mid-copy and the copy resumed by another process (no partial image listed complete,
//! still one event); events consumed from other processes with their numbers continuing; a
//! cancelled copy leaving nothing on the target; the flags and bad input.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use vast_ost_engine::filter::LsuFilter;
use vast_ost_engine::store::s3::{S3Settings, S3Store};
use vast_ost_engine::store::PieceStore;
use vast_ost_host::abi::*;
use vast_ost_host::{get_str, image_def, lsu, set_str, zeroed, Plugin, Status};
use vast_sim::proxy::Proxy;
use vast_sim::SimConfig;

const SRC: &str = "VastData:src";
const DST: &str = "VastData:dst";
const MIB: u64 = 1 << 20;
/// The target's S3 traffic is throttled to this, so a copy of a few MiB takes seconds.
const RATE: u64 = 6 * MIB;

struct World {
    dir: tempfile::TempDir,
    a: Cluster,
    b: Cluster,
    plugin: Plugin,
    /// Between the plug-in and the target's S3 endpoint.
    _proxy: Proxy,
    /// A plain S3 client of the target bucket's owner: what is really on the target storage.
    direct: S3Store,
    /// The same on the source: where the job records are.
    direct_src: S3Store,
}

fn world() -> &'static World {
    static W: std::sync::OnceLock<World> = std::sync::OnceLock::new();
    W.get_or_init(make_world)
}

fn make_world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let start = |name: &str| {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        Cluster::start(&d, SimConfig::new(d.join("cluster")))
    };
    let (a, b) = (start("a"), start("b"));
    let (ak_a, sk_a) = a.s3_user("nbu-a", 50001);
    a.bucket("nbu-src", "/nbu/src", "nbu-a");
    a.bucket("nbu-plain", "/nbu/plain", "nbu-a");
    let (ak_b, sk_b) = b.s3_user("nbu-b", 50002);
    b.bucket("nbu-dst", "/nbu/dst", "nbu-b");
    let proxy = Proxy::start(b.sim.s3_endpoints()[0].trim_start_matches("http://"));
    proxy.throttle(RATE);
    let a_port = a.sim.s3_endpoints()[0].rsplit(':').next().unwrap().to_string();
    let config = format!(
        "[log]\nlevel = \"debug\"\n\n\
         [[server]]\nname = \"{SRC}\"\nlsu_prefix = \"nbu-\"\n[server.vms]\naddress = \"{}\"\nca_file = \"{}\"\n\
         [server.s3]\nvip_port = {a_port}\naccess_key = \"{ak_a}\"\nsecret_key = \"{sk_a}\"\n\n\
         [[server]]\nname = \"{DST}\"\nlsu_prefix = \"nbu-\"\n[server.vms]\naddress = \"{}\"\nca_file = \"{}\"\n\
         [server.s3]\nendpoints = [\"{}\"]\naccess_key = \"{ak_b}\"\nsecret_key = \"{sk_b}\"\npart_size = 5242880\n\n\
         [[replication]]\nsource_server = \"{SRC}\"\nsource_lsu = \"nbu-src\"\ntarget_server = \"{DST}\"\n\
         target_lsu = \"nbu-dst\"\ntarget_user = \"{}\"\ntarget_password = \"{}\"\n",
        a.sim.vms_url(),
        a.ca.display(),
        b.sim.vms_url(),
        b.ca.display(),
        proxy.url(),
        b.sim.admin_user(),
        b.sim.admin_password(),
    );
    let cfg_path = dir.path().join("vast-ost.toml");
    std::fs::write(&cfg_path, config).unwrap();
    let plugin = load_plugin(&cfg_path, &dir.path().join("vast-ost.log"));
    let direct =
        S3Store::new(&S3Settings::new(b.sim.s3_endpoints(), &ak_b, &sk_b), LsuFilter::default()).unwrap();
    let direct_src =
        S3Store::new(&S3Settings::new(a.sim.s3_endpoints(), &ak_a, &sk_a), LsuFilter::default()).unwrap();
    World { dir, a, b, plugin, _proxy: proxy, direct, direct_src }
}

fn open(p: &Plugin, w: &World, server: &str) -> stsp_server_handle_t {
    let c = if server == SRC { &w.a } else { &w.b };
    p.open_server(server, c.sim.admin_user(), c.sim.admin_password()).unwrap()
}

/// One image of a backup set: its part name, size and pattern seed.
struct Part {
    def: sts_image_def_t,
    size: u64,
    seed: u64,
}

/// A backup set `<id>_C1_{HDR,F1,TIR,IM}` written complete to `nbu-src`; F1 is `f1` bytes.
fn backup_set(w: &World, s: stsp_server_handle_t, id: &str, f1: u64) -> Vec<Part> {
    let l = lsu(s, "nbu-src");
    let mut buf = vec![0u8; 1 << 20];
    [("HDR", 64 << 10), ("F1", f1), ("TIR", 300 << 10), ("IM", 200 << 10)]
        .iter()
        .enumerate()
        .map(|(n, (part, size))| {
            let def = image_def(&format!("{id}_C1_{part}"), "1700000000", "air-policy");
            let seed = 1000 + n as u64;
            write_pattern(&w.plugin, &l, &def, seed, *size, &mut buf);
            Part { def, size: *size, seed }
        })
        .collect()
}

fn defs(set: &[Part]) -> Vec<sts_image_def_t> {
    set.iter().map(|p| p.def).collect()
}

/// Wait for `op` in steps of a second until it is no longer running (at most 3 minutes).
fn wait_done(p: &Plugin, op: &sts_opid_t) -> (Result<(), Status>, sts_async_status_t) {
    let t0 = Instant::now();
    loop {
        let (rc, st) = p.async_wait(op, 1000);
        if rc != Err(Status(STS_EAGAIN)) || t0.elapsed() > Duration::from_secs(180) {
            return (rc, st);
        }
    }
}

/// Every image of the set is complete on the target with the source's bytes.
fn verify_on_target(w: &World, set: &[Part]) {
    let p = &w.plugin;
    let d = open(p, w, DST);
    let l = lsu(d, "nbu-dst");
    let (mut buf, mut want) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    for part in set {
        let info = p.image_prop_byname(&l, &part.def).unwrap();
        assert_eq!(info.imo_flags & STS_II_IMAGE_CREATED, STS_II_IMAGE_CREATED, "complete on the target");
        assert_eq!(info.imo_size, part.size);
        assert_eq!(read_verify(p, &l, &part.def, part.seed, &mut buf, &mut want), part.size);
    }
    p.close_server(d).unwrap();
}

/// The events of the target journal from `start` on, with their payloads.
fn events_from(p: &Plugin, w: &World, start: u64) -> Vec<(sts_event_t, Vec<sts_image_info_t>)> {
    let d = open(p, w, DST);
    let ch = p.open_evchannel(&lsu(d, "nbu-dst"), start).unwrap();
    let mut out = Vec::new();
    loop {
        match p.get_event(ch) {
            Ok(e) => {
                let payload = p.event_payload(ch, e.ev_seqno).unwrap();
                out.push((e, payload));
            }
            Err(Status(STS_ENO_MORE_ENTRIES)) => break,
            Err(e) => panic!("get_event: {e}"),
        }
    }
    p.close_evchannel(ch).unwrap();
    p.close_server(d).unwrap();
    out
}

/// The events of operation `op`.
fn events_of(p: &Plugin, w: &World, op: &sts_opid_t) -> Vec<(sts_event_t, Vec<sts_image_info_t>)> {
    let id = get_str(&op.op_id);
    events_from(p, w, 0).into_iter().filter(|(e, _)| get_str(&e.ev_opid.op_id) == id).collect()
}

/// What the target storage holds under the set's image names (objects, open uploads).
fn left_on_target(w: &World, set: &[Part]) -> Vec<String> {
    set.iter()
        .flat_map(|p| w.direct.list_image_keys("nbu-dst", &get_str(&p.def.img_basename)).unwrap())
        .map(|(k, _)| k)
        .collect()
}

#[test]
fn flags_and_partners_are_advertised_where_replication_is_configured() {
    let w = world();
    let p = &w.plugin;
    let s = open(p, w, SRC);
    let d = open(p, w, DST);
    let src = p.lsu_rep_prop(&lsu(s, "nbu-src")).unwrap();
    assert_eq!(src.lri_flags, STS_LSUF_REP_SOURCE | STS_LSUF_REP_ENABLED);
    assert_eq!((src.lri_ntargets, src.lri_nsources), (1, 0));
    assert_eq!(get_str(&src.lri_targets[0].lr_server), DST);
    assert_eq!(get_str(&src.lri_targets[0].lr_lsu.sln_name), "nbu-dst");
    let dst = p.lsu_rep_prop(&lsu(d, "nbu-dst")).unwrap();
    assert_eq!(dst.lri_flags, STS_LSUF_REP_TARGET | STS_LSUF_REP_ENABLED);
    assert_eq!((dst.lri_ntargets, dst.lri_nsources), (0, 1));
    assert_eq!(get_str(&dst.lri_sources[0].lr_server), SRC);
    let plain = p.lsu_rep_prop(&lsu(s, "nbu-plain")).unwrap();
    assert_eq!((plain.lri_flags, plain.lri_ntargets, plain.lri_nsources), (0, 0, 0));
    let rep = STS_LSUF_REP_SOURCE | STS_LSUF_REP_TARGET | STS_LSUF_REP_ENABLED;
    assert_eq!(
        p.lsu_prop(&lsu(s, "nbu-src")).unwrap().lsu_flags & rep,
        STS_LSUF_REP_SOURCE | STS_LSUF_REP_ENABLED
    );
    assert_eq!(
        p.lsu_prop(&lsu(d, "nbu-dst")).unwrap().lsu_flags & rep,
        STS_LSUF_REP_TARGET | STS_LSUF_REP_ENABLED
    );
    assert_eq!(p.lsu_prop(&lsu(s, "nbu-plain")).unwrap().lsu_flags & rep, 0);
    assert_eq!(
        p.server_prop(d).unwrap().srv_flags & STS_SRV_STORED_EV,
        STS_SRV_STORED_EV,
        "the target keeps events"
    );
    assert_eq!(p.server_prop(s).unwrap().srv_flags & STS_SRV_STORED_EV, 0, "the source keeps none");
    assert_eq!(p.server_prop_byname(DST).unwrap().srv_flags & STS_SRV_STORED_EV, STS_SRV_STORED_EV);
    // An S3 LSU's label is an object in its bucket.
    p.label_lsu(&lsu(d, "nbu-dst"), "DR copies").unwrap();
    assert_eq!(get_str(&p.lsu_prop(&lsu(d, "nbu-dst")).unwrap().lsu_label), "DR copies");
    assert_eq!(
        w.direct.read_record("nbu-dst", ".vast-ost", "label").unwrap().as_deref(),
        Some(&b"DR copies"[..])
    );
    p.close_server(s).unwrap();
    p.close_server(d).unwrap();
}

#[test]
fn a_backup_set_is_replicated_byte_for_byte_with_one_event() {
    let w = world();
    let p = &w.plugin;
    let s = open(p, w, SRC);
    let set = backup_set(w, s, "full_1700000001", 3 * MIB);
    let op = p.async_copy_image(&lsu(s, "nbu-src"), &defs(&set)).unwrap();
    let (rc, st) = wait_done(p, &op);
    assert_eq!(rc, Ok(()), "replication done");
    assert_eq!((st.as_state, st.as_status), (STS_ASYNC_DONE, STS_EOK));
    assert_eq!((st.as_images_done, st.as_images_total), (4, 4));
    let total: u64 = set.iter().map(|p| p.size).sum();
    assert_eq!((st.as_bytes_done, st.as_bytes_total), (total, total));
    assert!(st.as_event_seqno > 0);
    verify_on_target(w, &set);

    let evs = events_of(p, w, &op);
    assert_eq!(evs.len(), 1, "one event for the set");
    let (e, payload) = &evs[0];
    assert_eq!((e.ev_type, e.ev_seqno), (STS_EVT_IMG_REP, st.as_event_seqno));
    assert_eq!(
        (get_str(&e.ev_server), get_str(&e.ev_lsu.sln_name)),
        (DST.to_string(), "nbu-dst".to_string())
    );
    assert_eq!(
        (get_str(&e.ev_source_server), get_str(&e.ev_source_lsu.sln_name)),
        (SRC.into(), "nbu-src".into())
    );
    assert_eq!(payload.len(), 1, "the payload is the IM image's info");
    assert_eq!(get_str(&payload[0].imo_def.img_basename), "full_1700000001_C1_IM");
    assert_eq!(get_str(&payload[0].imo_def.img_policy), "air-policy");
    assert_eq!(payload[0].imo_size, set[3].size);
    assert_eq!(payload[0].imo_flags & STS_II_IMAGE_CREATED, STS_II_IMAGE_CREATED);

    // Asking again for the same set: the same operation, finished; no second copy or event.
    let again = p.async_copy_image(&lsu(s, "nbu-src"), &defs(&set)).unwrap();
    assert_eq!(get_str(&again.op_id), get_str(&op.op_id));
    assert_eq!(p.async_wait(&again, 0).0, Ok(()));
    assert_eq!(events_of(p, w, &op).len(), 1);
    assert_eq!(p.async_cancel(&op), Err(Status(STS_ESTATE)), "a finished copy is not cancelled");
    p.close_server(s).unwrap();
}

/// Poll until `f` holds (at most a minute).
fn until(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < Duration::from_secs(60), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn opid_from(s: &str) -> sts_opid_t {
    let mut op: sts_opid_t = zeroed();
    set_str(&mut op.op_id, s);
    op
}

#[test]
fn a_killed_copier_is_resumed_by_another_process_and_the_event_appears_once() {
    let w = world();
    let p = &w.plugin;
    let s = open(p, w, SRC);
    let set = backup_set(w, s, "kill_1700000002", 12 * MIB);
    let opfile: PathBuf = w.dir.path().join("kill.opid");
    let set_defs = defs(&set);
    // The copier: starts the copy and waits on it, until killed.
    let copier = fork_child(|| {
        let p = &world().plugin;
        let s = open(p, world(), SRC);
        let op = p.async_copy_image(&lsu(s, "nbu-src"), &set_defs).unwrap();
        std::fs::write(&opfile, get_str(&op.op_id)).unwrap();
        loop {
            let _ = p.async_wait(&op, 1000);
        }
    });
    until("the copier's operation id", || std::fs::read_to_string(&opfile).is_ok_and(|s| !s.is_empty()));
    let op = opid_from(&std::fs::read_to_string(&opfile).unwrap());
    // Kill it once HDR is committed on the target and F1 is being written (pending).
    let d = open(p, w, DST);
    let dl = lsu(d, "nbu-dst");
    until("F1 pending on the target", || {
        p.image_prop_byname(&dl, &set[1].def).is_ok_and(|i| i.imo_flags & STS_II_IMAGE_PENDING != 0)
    });
    let st = kill_child(copier);
    assert!(libc::WIFSIGNALED(st), "the copier was killed");
    let f1 = p.image_prop_byname(&dl, &set[1].def).unwrap();
    assert_eq!(f1.imo_flags & STS_II_IMAGE_CREATED, 0, "a partial copy is never listed complete");
    assert!(
        p.images(&dl, "kill_1700000002")
            .unwrap()
            .iter()
            .all(|i| i.imo_flags & STS_II_IMAGE_CREATED == 0
                || get_str(&i.imo_def.img_basename).ends_with("_HDR")),
        "only what was fully copied is complete"
    );
    assert!(events_of(p, w, &op).is_empty(), "no event before the set is complete");

    // Another process resumes it by waiting on it.
    let resumer = fork_child(|| {
        let p = &world().plugin;
        let _s = open(p, world(), SRC);
        let op = opid_from(&std::fs::read_to_string(world().dir.path().join("kill.opid")).unwrap());
        match wait_done(p, &op) {
            (Ok(()), st) if st.as_state == STS_ASYNC_DONE && st.as_images_done == 4 => 0,
            (rc, st) => {
                eprintln!("resumed copy ended with {rc:?}, state {}", st.as_state);
                1
            }
        }
    });
    let st = wait_child(resumer, Duration::from_secs(240)).expect("the resumer ended");
    assert!(exited_ok(st), "the resumer finished the copy");
    verify_on_target(w, &set);
    assert_eq!(events_of(p, w, &op).len(), 1, "exactly one event for the resumed set");
    assert_eq!(p.async_wait(&op, 0).0, Ok(()), "done, as seen from this process too");
    p.close_server(d).unwrap();
    p.close_server(s).unwrap();
}

/// A copier that died after appending its set's event but before recording it: the process
/// that resumes the job finds the event and appends no other.
#[test]
fn a_copier_dead_after_appending_its_event_does_not_append_another() {
    use vast_ost_engine::replication::job::{self, Runner, State};
    let w = world();
    let p = &w.plugin;
    let s = open(p, w, SRC);
    let set = backup_set(w, s, "late_1700000006", MIB);
    let op = p.async_copy_image(&lsu(s, "nbu-src"), &defs(&set)).unwrap();
    let (rc, st) = wait_done(p, &op);
    assert_eq!(rc, Ok(()));
    // Put the record back as the dead copier left it: publishing, its event already appended.
    let dead = fork_child(|| 0);
    wait_child(dead, Duration::from_secs(10)).unwrap();
    let id = get_str(&op.op_id).rsplit('/').next().unwrap().to_string();
    job::update(&w.direct_src, "nbu-src", &id, |j| {
        j.state = State::Publishing { after: st.as_event_seqno - 1 };
        j.runner = Some(Runner {
            host: vast_ost_engine::util::hostname(),
            pid: dead as u32,
            session: "dead".into(),
        });
        Ok(true)
    })
    .unwrap();
    let seq = st.as_event_seqno;
    std::fs::write(w.dir.path().join("late.opid"), get_str(&op.op_id)).unwrap();
    let resumer = fork_child(move || {
        let p = &world().plugin;
        let _s = open(p, world(), SRC);
        let op = opid_from(&std::fs::read_to_string(world().dir.path().join("late.opid")).unwrap());
        match wait_done(p, &op) {
            (Ok(()), st) if st.as_event_seqno == seq => 0,
            (rc, st) => {
                eprintln!("resumed publish ended with {rc:?}, event {}", st.as_event_seqno);
                1
            }
        }
    });
    let st = wait_child(resumer, Duration::from_secs(120)).expect("the resumer ended");
    assert!(exited_ok(st), "the resumed job found its event");
    assert_eq!(events_of(p, w, &op).len(), 1, "still exactly one event");
    p.close_server(s).unwrap();
}

#[test]
fn events_are_consumed_from_other_processes_and_their_numbers_continue() {
    let w = world();
    let p = &w.plugin;
    let s = open(p, w, SRC);
    let x = backup_set(w, s, "evx_1700000003", MIB);
    let op_x = p.async_copy_image(&lsu(s, "nbu-src"), &defs(&x)).unwrap();
    let (rc, st_x) = wait_done(p, &op_x);
    assert_eq!(rc, Ok(()));
    // A consumer process reads the journal from the start and records where it got to.
    let seen = w.dir.path().join("events.seen");
    let consumer = fork_child(|| {
        let evs = events_from(&world().plugin, world(), 0);
        let seqs: Vec<String> = evs.iter().map(|(e, _)| e.ev_seqno.to_string()).collect();
        std::fs::write(world().dir.path().join("events.seen"), seqs.join(",")).unwrap();
        0
    });
    assert!(exited_ok(wait_child(consumer, Duration::from_secs(60)).unwrap()));
    let seqs: Vec<u64> =
        std::fs::read_to_string(&seen).unwrap().split(',').map(|n| n.parse().unwrap()).collect();
    assert!(seqs.contains(&st_x.as_event_seqno), "the consumer saw X's event");
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1) && seqs[0] == 1, "gapless from 1: {seqs:?}");
    let last = *seqs.last().unwrap();

    // A channel left open at the end sees what is appended later.
    let d = open(p, w, DST);
    let ch = p.open_evchannel(&lsu(d, "nbu-dst"), last + 1).unwrap();
    let y = backup_set(w, s, "evy_1700000003", MIB);
    let op_y = p.async_copy_image(&lsu(s, "nbu-src"), &defs(&y)).unwrap();
    let (rc, st_y) = wait_done(p, &op_y);
    assert_eq!(rc, Ok(()));
    assert!(st_y.as_event_seqno > last, "numbers continue: {} after {last}", st_y.as_event_seqno);
    let mut got = Vec::new();
    while let Ok(e) = p.get_event(ch) {
        got.push(e.ev_seqno);
    }
    assert!(got.contains(&st_y.as_event_seqno) && got.iter().all(|&n| n > last), "{got:?}");
    p.close_evchannel(ch).unwrap();

    // The restarted consumer (another process) goes on from where it was.
    let consumer = fork_child(move || {
        let evs = events_from(&world().plugin, world(), last + 1);
        let ok = evs.iter().all(|(e, _)| e.ev_seqno > last)
            && evs.iter().any(|(e, payload)| {
                e.ev_seqno == st_y.as_event_seqno
                    && get_str(&payload[0].imo_def.img_basename) == "evy_1700000003_C1_IM"
            });
        if ok {
            0
        } else {
            1
        }
    });
    assert!(exited_ok(wait_child(consumer, Duration::from_secs(60)).unwrap()));
    p.close_server(d).unwrap();
    p.close_server(s).unwrap();
}

#[test]
fn a_cancelled_copy_leaves_nothing_on_the_target() {
    let w = world();
    let p = &w.plugin;
    let s = open(p, w, SRC);
    let set = backup_set(w, s, "cancel_1700000004", 12 * MIB);
    let op = p.async_copy_image(&lsu(s, "nbu-src"), &defs(&set)).unwrap();
    until("F1 being copied", || {
        let (_, st) = p.async_wait(&op, 0);
        st.as_images_done >= 1 && st.as_bytes_done > set[0].size
    });
    assert!(!left_on_target(w, &set).is_empty(), "the copy had started on the target");
    p.async_cancel(&op).unwrap();
    let (rc, st) = p.async_wait(&op, 0);
    assert_eq!((rc, st.as_state), (Err(Status(STS_ECANCELED)), STS_ASYNC_CANCELLED));
    assert_eq!(left_on_target(w, &set), Vec::<String>::new(), "no image, piece or upload left");
    let d = open(p, w, DST);
    assert!(p.images(&lsu(d, "nbu-dst"), "cancel_1700000004").unwrap().is_empty());
    assert!(events_of(p, w, &op).is_empty(), "no event for a cancelled copy");
    assert_eq!(p.async_cancel(&op), Ok(()), "cancelling again changes nothing");
    p.close_server(d).unwrap();
    p.close_server(s).unwrap();
}

/// A cancel from another process than the copier's: `STS_EAGAIN` at once, the copier stops at
/// its next image and deletes what it made; waits then report the cancel.
#[test]
fn a_cancel_from_another_process_stops_the_copier_there() {
    let w = world();
    let p = &w.plugin;
    let s = open(p, w, SRC);
    let set = backup_set(w, s, "xcancel_1700000007", 12 * MIB);
    let opfile: PathBuf = w.dir.path().join("xcancel.opid");
    let set_defs = defs(&set);
    let copier = fork_child(|| {
        let p = &world().plugin;
        let s = open(p, world(), SRC);
        let op = p.async_copy_image(&lsu(s, "nbu-src"), &set_defs).unwrap();
        std::fs::write(&opfile, get_str(&op.op_id)).unwrap();
        match wait_done(p, &op) {
            (Err(Status(STS_ECANCELED)), st) if st.as_state == STS_ASYNC_CANCELLED => 0,
            (rc, st) => {
                eprintln!("the copier's copy ended with {rc:?}, state {}", st.as_state);
                1
            }
        }
    });
    until("the copier's operation id", || std::fs::read_to_string(&opfile).is_ok_and(|s| !s.is_empty()));
    let op = opid_from(&std::fs::read_to_string(&opfile).unwrap());
    let d = open(p, w, DST);
    until("F1 being copied", || p.image_prop_byname(&lsu(d, "nbu-dst"), &set[1].def).is_ok());
    assert_eq!(p.async_cancel(&op), Err(Status(STS_EAGAIN)), "asked of the copier's process");
    let st = wait_child(copier, Duration::from_secs(120)).expect("the copier ended");
    assert!(exited_ok(st), "the copier saw its copy cancelled");
    assert_eq!(p.async_wait(&op, 0).0, Err(Status(STS_ECANCELED)));
    assert_eq!(left_on_target(w, &set), Vec::<String>::new(), "nothing of the set on the target");
    assert!(events_of(p, w, &op).is_empty());
    p.close_server(d).unwrap();
    p.close_server(s).unwrap();
}

/// The last `stspi_terminate` of a process stops its copies at their next step (no plug-in
/// thread runs once the host may unload it), each left resumable at once: no runner recorded.
/// Another process then finishes it.
#[test]
fn terminate_pauses_copies_and_another_process_finishes_them() {
    use vast_ost_engine::replication::job::{self, State};
    let w = world();
    let p = &w.plugin;
    let s = open(p, w, SRC);
    let set = backup_set(w, s, "pause_1700000008", 12 * MIB);
    let opfile: PathBuf = w.dir.path().join("pause.opid");
    let set_defs = defs(&set);
    let hdr = set[0].size;
    let child = fork_child(|| {
        let p = &world().plugin;
        let s = open(p, world(), SRC);
        let op = p.async_copy_image(&lsu(s, "nbu-src"), &set_defs).unwrap();
        std::fs::write(&opfile, get_str(&op.op_id)).unwrap();
        until("F1 being copied", || p.async_wait(&op, 0).1.as_bytes_done > hdr);
        p.close_server(s).unwrap();
        p.terminate().unwrap();
        let id = get_str(&op.op_id).rsplit('/').next().unwrap().to_string();
        let (j, _) = job::load(&world().direct_src, "nbu-src", &id).unwrap().unwrap();
        if j.runner.is_none() && j.state == State::Running && j.copied < 4 {
            0
        } else {
            eprintln!("after terminate the job is {:?}, runner {:?}, {} copied", j.state, j.runner, j.copied);
            1
        }
    });
    let st = wait_child(child, Duration::from_secs(120)).expect("the child ended");
    assert!(exited_ok(st), "terminate stopped the copy and left it resumable");
    let op = opid_from(&std::fs::read_to_string(&opfile).unwrap());
    let (rc, st) = wait_done(p, &op);
    assert_eq!((rc, st.as_images_done), (Ok(()), 4), "resumed and finished here");
    verify_on_target(w, &set);
    assert_eq!(events_of(p, w, &op).len(), 1);
    p.close_server(s).unwrap();
}

#[test]
fn bad_requests_are_refused() {
    let w = world();
    let p = &w.plugin;
    let s = open(p, w, SRC);
    let set = backup_set(w, s, "bad_1700000005", 64 << 10);
    // No [[replication]] for the LSU.
    let plain = lsu(s, "nbu-plain");
    write_pattern(p, &plain, &set[0].def, 1, 4096, &mut vec![0u8; 4096]);
    assert_eq!(p.async_copy_image(&plain, &defs(&set)[..1]).err(), Some(Status(STS_ENOTSUP)));
    // An image not complete.
    let pending = image_def("bad_1700000005_C1_F9", "1700000000", "air-policy");
    let h = p.create_image(&lsu(s, "nbu-src"), &pending).unwrap();
    assert_eq!(p.async_copy_image(&lsu(s, "nbu-src"), &[pending]).err(), Some(Status(STS_ESTATE)));
    p.close_image(h, STS_CLOSEF_IH_INCOMPLETE).unwrap();
    // A missing image, an empty set, an image twice.
    let missing = image_def("bad_1700000005_C1_F8", "", "");
    assert_eq!(p.async_copy_image(&lsu(s, "nbu-src"), &[missing]).err(), Some(Status(STS_ENOENT)));
    assert_eq!(p.async_copy_image(&lsu(s, "nbu-src"), &[]).err(), Some(Status(STS_EINVAL)));
    assert_eq!(
        p.async_copy_image(&lsu(s, "nbu-src"), &[set[0].def, set[0].def]).err(),
        Some(Status(STS_EINVAL))
    );
    // Operation ids that are not ours, or whose source server is not open here.
    assert_eq!(p.async_wait(&opid_from("nonsense"), 0).0, Err(Status(STS_EINVAL)));
    assert_eq!(p.async_cancel(&opid_from("VastData:nope/nbu-src/0123456789abcdef")), Err(Status(STS_ESTATE)));
    assert_eq!(
        p.async_wait(&opid_from(&format!("{SRC}/nbu-src/0123456789abcdef")), 0).0,
        Err(Status(STS_ENOENT))
    );
    // Event channels.
    assert_eq!(p.open_evchannel(&lsu(s, "nbu-nosuch"), 0).err(), Some(Status(STS_ENOENT)));
    let ch = p.open_evchannel(&lsu(s, "nbu-src"), 0).unwrap();
    assert_eq!(p.get_event(ch).err(), Some(Status(STS_ENO_MORE_ENTRIES)), "a source LSU has no events");
    assert_eq!(p.event_payload(ch, 1).err(), Some(Status(STS_ENOENT)));
    assert_eq!(p.close_server(s), Err(Status(STS_EBUSY)), "an open channel keeps its server busy");
    p.close_evchannel(ch).unwrap();
    assert_eq!(p.close_evchannel(ch), Err(Status(STS_EHANDLE)));
    p.close_server(s).unwrap();
}
