//! The checker: from the records of what the plug-in reported (every worker's file) and what
//! a fault-free verify pass saw (listings, whole restores), the rules an iteration must keep:
//!
//! - an image reported complete (close or copy returned `STS_EOK`) and never expired is
//!   listed complete, at its size, and restores byte-identical;
//! - an image whose close failed is not listed complete; one whose outcome is unknown (its
//!   process was killed, its expiry failed) is either absent or byte-identical;
//! - nothing is listed complete that no close reported or attempted;
//! - an image deleted with `STS_EOK` is gone, and none under a retention lock still running
//!   was deleted or lost;
//! - no process saw wrong bytes, hung, or crashed (the parent adds those);
//! - after `vast-ost cleanup --remove` (see [`storage_rules`]), every complete image is still
//!   there, and no piece, object or multipart upload is left that no image references.

use std::collections::{BTreeMap, BTreeSet};

use vast_ost_host::abi::{STS_EOK, STS_II_IMAGE_CREATED};

use super::content::Content;
use super::record::Event;

/// What the records say about one image.
#[derive(Debug, Default)]
struct Facts {
    /// The content a close or copy promised (the last one attempted).
    content: Option<Content>,
    closes_attempted: usize,
    close_ok: bool,
    close_failed: bool,
    delete_attempted: bool,
    delete_ok: bool,
    /// Lock times the plug-in accepted.
    locked_until: Vec<u64>,
}

type Key = (String, String);

fn facts(records: &[Vec<Event>]) -> BTreeMap<Key, Facts> {
    let mut m: BTreeMap<Key, Facts> = BTreeMap::new();
    for rec in records {
        for e in rec {
            match e {
                Event::Closing { lsu, image, runs } => {
                    let f = m.entry((lsu.clone(), image.clone())).or_default();
                    f.content = Some(Content { runs: runs.clone() });
                    f.closes_attempted += 1;
                }
                Event::Closed { lsu, image, rc } => {
                    let f = m.entry((lsu.clone(), image.clone())).or_default();
                    if *rc == STS_EOK {
                        f.close_ok = true;
                    } else {
                        f.close_failed = true;
                    }
                }
                Event::Deleting { lsu, image } => {
                    m.entry((lsu.clone(), image.clone())).or_default().delete_attempted = true
                }
                Event::Deleted { lsu, image, rc } if *rc == STS_EOK => {
                    m.entry((lsu.clone(), image.clone())).or_default().delete_ok = true
                }
                Event::Locked { lsu, image, until, rc } if *rc == STS_EOK => {
                    m.entry((lsu.clone(), image.clone())).or_default().locked_until.push(*until)
                }
                _ => {}
            }
        }
    }
    m
}

/// The images whose content is known, for the verify pass to restore.
pub fn to_restore(records: &[Vec<Event>]) -> Vec<(String, String, Content)> {
    facts(records).into_iter().filter_map(|((l, i), f)| f.content.map(|c| (l, i, c))).collect()
}

/// What the verify pass saw: listing entries (flags, size) and restore problems.
pub struct Seen {
    pub listed: BTreeMap<Key, (u32, u64)>,
    pub restored: BTreeMap<Key, Option<String>>,
}

pub fn seen(verify: &[Event]) -> Seen {
    let mut s = Seen { listed: BTreeMap::new(), restored: BTreeMap::new() };
    for e in verify {
        match e {
            Event::Listed { lsu, image, flags, size } => {
                s.listed.insert((lsu.clone(), image.clone()), (*flags, *size));
            }
            Event::Restored { lsu, image, problem } => {
                s.restored.insert((lsu.clone(), image.clone()), problem.clone());
            }
            _ => {}
        }
    }
    s
}

impl Seen {
    pub fn complete(&self, k: &Key) -> bool {
        self.listed.get(k).is_some_and(|(flags, _)| flags & STS_II_IMAGE_CREATED != 0)
    }
}

/// The rules over the records and the verify pass; `clock` is the simulator's clock now
/// (locks running past it were in force all along). One line per violation.
pub fn image_rules(records: &[Vec<Event>], verify: &[Event], clock: u64) -> Vec<String> {
    let mut out = Vec::new();
    for rec in records.iter().chain([&verify.to_vec()]) {
        for e in rec {
            if let Event::Violation { what } = e {
                out.push(what.clone());
            }
        }
    }
    let s = seen(verify);
    let m = facts(records);
    for ((l, i), f) in &m {
        let k = (l.clone(), i.clone());
        let name = format!("{l}/{i}");
        let complete = s.complete(&k);
        let restore_problem = s.restored.get(&k).cloned().flatten();
        let locked = f.locked_until.iter().any(|&u| u > clock + 60);
        if locked && f.delete_ok {
            out.push(format!("{name}: deleted (STS_EOK) while WORM-locked until {:?}", f.locked_until));
        } else if locked && !complete {
            out.push(format!("{name}: WORM-locked until {:?} but not listed complete", f.locked_until));
        }
        if f.delete_ok {
            if s.listed.contains_key(&k) {
                out.push(format!("{name}: deleted (STS_EOK) but still listed"));
            }
            continue;
        }
        if f.close_ok && !f.delete_attempted {
            match s.listed.get(&k) {
                None => out.push(format!("{name}: reported complete but not listed (LOST)")),
                Some((flags, _)) if flags & STS_II_IMAGE_CREATED == 0 => {
                    out.push(format!("{name}: reported complete but listed with flags {flags:#x}"))
                }
                Some(_) => {}
            }
        }
        if !f.close_ok && f.close_failed && f.closes_attempted <= 1 && complete {
            out.push(format!("{name}: its close failed but it is listed complete"));
        }
        if complete {
            if let Some(p) = restore_problem {
                out.push(format!("{name}: listed complete but does not restore: {p}"));
            }
        }
    }
    for (k, (flags, _)) in s.listed.iter().filter(|(k, _)| k.0 != super::workload::DR_LSU) {
        if flags & STS_II_IMAGE_CREATED != 0 && m.get(k).is_none_or(|f| f.closes_attempted == 0) {
            out.push(format!("{}/{}: listed complete but nothing ever closed it complete", k.0, k.1));
        }
    }
    out
}

/// A.I.R.: every copy reported done has its images complete on the target, restoring the
/// source's bytes (the verify pass restored them), and exactly one event on the target; no
/// operation has two events.
pub fn air_rules(records: &[Vec<Event>], verify: &[Event], target_lsu: &str) -> Vec<String> {
    let s = seen(verify);
    let mut events: BTreeMap<&str, usize> = BTreeMap::new();
    for e in verify {
        if let Event::AirEvents { opid, count } = e {
            events.insert(opid, *count);
        }
    }
    let mut out: Vec<String> = events
        .iter()
        .filter(|(_, &n)| n > 1)
        .map(|(opid, n)| format!("A.I.R. operation {opid} has {n} events on the target"))
        .collect();
    for e in records.iter().flatten() {
        let Event::Replicated { opid, images, .. } = e else { continue };
        if !events.contains_key(opid.as_str()) {
            out.push(format!("A.I.R. copy {opid} reported done has no event on the target"));
        }
        for i in images {
            let k = (target_lsu.to_string(), i.clone());
            if !s.complete(&k) {
                out.push(format!(
                    "A.I.R. copy {opid}: {target_lsu}/{i} is not listed complete on the target"
                ));
            } else if let Some(Some(p)) = s.restored.get(&k) {
                out.push(format!(
                    "A.I.R. copy {opid}: {target_lsu}/{i} does not restore the source's bytes: {p}"
                ));
            }
        }
    }
    out
}

/// What the verify pass must restore on the target: each replicated image, with its source's
/// content.
pub fn replicated(records: &[Vec<Event>], target_lsu: &str) -> Vec<(String, String, Content)> {
    let m = facts(records);
    let mut out = Vec::new();
    for e in records.iter().flatten() {
        let Event::Replicated { lsu, images, .. } = e else { continue };
        for i in images {
            if let Some(c) = m.get(&(lsu.clone(), i.clone())).and_then(|f| f.content.clone()) {
                out.push((target_lsu.to_string(), i.clone(), c));
            }
        }
    }
    out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    out.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
    out
}

/// After cleanup: every image listed complete before is still listed complete.
pub fn cleanup_kept(before: &Seen, after: &Seen) -> Vec<String> {
    before
        .listed
        .keys()
        .filter(|k| before.complete(k) && !after.complete(k))
        .map(|k| format!("{}/{}: complete before cleanup, not after", k.0, k.1))
        .collect()
}

/// What is stored in one LSU after cleanup against what its listed images reference: every
/// key (S3 object, NFS path relative to the LSU) must be a listed image's manifest, a piece a
/// listed image's manifest names (in its own directory or, shared, in another's), a shared
/// piece's reference record, a claim of a record that exists (the claim protocol keeps the
/// winner's), a lease of a listed image (leases are removed by the next holder), or a key the
/// storage holds under a running retention lock (`held`, looked up by the caller: a lock set
/// on an image a delete removed meanwhile leaves locked pieces nobody can remove before the
/// lock ends) or such a piece's reference record; and no multipart upload may be open. `referenced`: the piece keys the listed
/// images' manifests name.
pub fn storage_rules(
    lsu: &str,
    keys: &[String],
    uploads: &[(String, String)],
    after: &Seen,
    (referenced, held): (&BTreeSet<String>, &BTreeSet<String>),
) -> Vec<String> {
    let listed: BTreeSet<&str> =
        after.listed.keys().filter(|(l, _)| l == lsu).map(|(_, i)| i.as_str()).collect();
    let stored: BTreeSet<&str> = keys.iter().map(String::as_str).collect();
    let mut strays: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for k in keys {
        let (image, rest) = k.split_once('/').unwrap_or((k, ""));
        let claimed = rest
            .strip_prefix('.')
            .and_then(|r| r.split_once(".claim."))
            .is_some_and(|(record, _)| stored.contains(format!("{image}/{record}").as_str()));
        let ok = image.starts_with('.')
            || (rest == "manifest" && listed.contains(image))
            || referenced.contains(k)
            // A held piece keeps its record (saying it is being reclaimed) until it goes.
            || k.strip_suffix(".refs").is_some_and(|p| referenced.contains(p) || held.contains(p))
            || claimed
            || held.contains(k)
            || (listed.contains(image) && rest.starts_with('.') && rest.contains(".lock."));
        if !ok {
            strays.entry(image).or_default().push(rest);
        }
    }
    let mut out: Vec<String> = strays
        .into_iter()
        .map(|(image, rest)| {
            format!("{lsu}: left after cleanup, referenced by no listed image: {image}/{rest:?}")
        })
        .collect();
    for (key, id) in uploads {
        out.push(format!("{lsu}: multipart upload {id} of {key} left open after cleanup"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::content::Run;

    #[test]
    fn locked_leftovers_and_their_records_are_no_strays() {
        let seen = Seen { listed: BTreeMap::new(), restored: BTreeMap::new() };
        let keys: Vec<String> = ["i/p.piece", "i/p.piece.refs", "i/q.piece", "i/q.piece.refs"]
            .iter()
            .map(|k| k.to_string())
            .collect();
        let held: BTreeSet<String> = ["i/p.piece".to_string()].into();
        let out = storage_rules("l", &keys, &[], &seen, (&BTreeSet::new(), &held));
        assert_eq!(
            out,
            ["l: left after cleanup, referenced by no listed image: i/[\"q.piece\", \"q.piece.refs\"]"]
        );
        let out = storage_rules("l", &keys, &[], &seen, (&BTreeSet::new(), &BTreeSet::new()));
        assert_eq!(out.len(), 1);
        assert!(out[0].contains("p.piece") && out[0].contains("q.piece"), "{out:?}");
    }

    fn closing(i: &str) -> Event {
        Event::Closing {
            lsu: "l".into(),
            image: i.into(),
            runs: vec![Run { off: 0, len: 10, stream: i.into(), src: 0 }],
        }
    }
    fn closed(i: &str, rc: i32) -> Event {
        Event::Closed { lsu: "l".into(), image: i.into(), rc }
    }
    fn listed(i: &str, flags: u32) -> Event {
        Event::Listed { lsu: "l".into(), image: i.into(), flags, size: 10 }
    }
    fn restored(i: &str, problem: Option<&str>) -> Event {
        Event::Restored { lsu: "l".into(), image: i.into(), problem: problem.map(String::from) }
    }

    #[test]
    fn each_rule_catches_its_violation() {
        let rec = vec![vec![
            closing("ok"),
            closed("ok", 0),
            closing("lost"),
            closed("lost", 0),
            closing("failed"),
            closed("failed", 2060106),
            closing("bad"),
            closed("bad", 0),
            Event::Locked { lsu: "l".into(), image: "ok".into(), until: 5000, rc: 0 },
            Event::Deleting { lsu: "l".into(), image: "gone".into() },
            Event::Deleted { lsu: "l".into(), image: "gone".into(), rc: 0 },
        ]];
        let verify = vec![
            listed("ok", STS_II_IMAGE_CREATED),
            listed("failed", STS_II_IMAGE_CREATED),
            listed("bad", STS_II_IMAGE_CREATED),
            listed("gone", 1),
            listed("stray", STS_II_IMAGE_CREATED),
            restored("ok", None),
            restored("bad", Some("WRONG BYTES from offset 3")),
        ];
        let v = image_rules(&rec, &verify, 1000);
        let has = |s: &str| v.iter().any(|l| l.contains(s));
        assert!(has("l/lost: reported complete but not listed"), "{v:?}");
        assert!(has("l/failed: its close failed"), "{v:?}");
        assert!(has("l/bad: listed complete but does not restore"), "{v:?}");
        assert!(has("l/gone: deleted (STS_EOK) but still listed"), "{v:?}");
        assert!(has("l/stray: listed complete but nothing ever closed"), "{v:?}");
        assert!(!has("l/ok"), "{v:?}");
        assert_eq!(v.len(), 5, "{v:?}");
        // The lock on `ok` is in force at clock 1000: deleting it is a violation.
        let mut rec2 = rec.clone();
        rec2[0].push(Event::Deleted { lsu: "l".into(), image: "ok".into(), rc: 0 });
        let v = image_rules(&rec2, &verify, 1000);
        assert!(v.iter().any(|l| l.contains("l/ok: deleted (STS_EOK) while WORM-locked")), "{v:?}");
        // Once the clock has passed it, the delete was fine (but the image must be gone).
        let v = image_rules(&rec2, &verify, 9000);
        assert!(v.iter().any(|l| l.contains("l/ok: deleted (STS_EOK) but still listed")), "{v:?}");
    }

    #[test]
    fn air_rules_hold_copies_to_the_target_and_its_events() {
        let rep = |opid: &str, i: &str| Event::Replicated {
            lsu: "l".into(),
            opid: opid.into(),
            images: vec![i.into()],
        };
        let rec = vec![vec![closing("a"), closed("a", 0), rep("op1", "a"), rep("op2", "a"), rep("op3", "a")]];
        let dr = |e: Event| match e {
            Event::Listed { image, flags, size, .. } => {
                Event::Listed { lsu: "dr".into(), image, flags, size }
            }
            other => other,
        };
        let verify = vec![
            dr(listed("a", STS_II_IMAGE_CREATED)),
            Event::Restored { lsu: "dr".into(), image: "a".into(), problem: None },
            Event::AirEvents { opid: "op1".into(), count: 1 },
            Event::AirEvents { opid: "op2".into(), count: 2 },
        ];
        let v = air_rules(&rec, &verify, "dr");
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(v[0].contains("op2 has 2 events"), "{v:?}");
        assert!(v[1].contains("op3 reported done has no event"), "{v:?}");
        let bad = vec![Event::AirEvents { opid: "op1".into(), count: 1 }];
        let v = air_rules(&rec[..1].iter().map(|r| r[..3].to_vec()).collect::<Vec<_>>(), &bad, "dr");
        assert!(v.iter().any(|l| l.contains("dr/a is not listed complete on the target")), "{v:?}");
        assert_eq!(replicated(&rec, "dr").len(), 1, "one image to restore on the target");
    }
}
