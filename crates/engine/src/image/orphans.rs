//! What crashed writers leave in an LSU (pieces no manifest names, image directories without a
//! manifest, pending images whose writer is gone, references to shared pieces nobody holds any
//! more), found and removed for `vast-ost cleanup`.

use tracing::warn;

use super::shared::{self, Refs};
use super::{delete, load, Liveness};
use crate::error::{ErrorKind, Result};
use crate::layout;
use crate::manifest::{ImageDef, Manifest, State};
use crate::store::PieceStore;
use crate::util;

/// What a cleanup removed, and what the storage holds under a retention lock: on a WORM LSU a
/// lock set on an image that a delete removed meanwhile (pieces are locked before the
/// manifest), or a lock a crash interrupted, leaves locked keys no image names. Nobody can
/// remove them before the lock ends; a cleanup after that does.
#[derive(Debug, Default)]
pub struct Removed {
    /// Keys, records and pending images removed.
    pub items: usize,
    /// Keys left because the storage holds a lock on them: (key, until, seconds since the epoch).
    pub held: Vec<(String, u64)>,
}

/// What a writer that died left behind in one LSU.
#[derive(Debug, Default)]
pub struct Orphans {
    /// Stored under an image name with no manifest (a crash before the first commit, or during
    /// a delete): never an image, safe to remove.
    pub without_manifest: Vec<(String, Vec<String>)>,
    /// Keys of committed images that their manifest does not name (pieces of a writer that
    /// died between writing and committing them, temp files).
    pub unreferenced: Vec<(String, Vec<String>)>,
    /// Pending images whose writer is gone (dead on this host, or silent for longer than the
    /// threshold on another): checkpoints NetBackup may still resume, removed only on request.
    pub stale_pending: Vec<(String, String)>,
    /// Manifest generation of each image above when it was scanned.
    pub generations: std::collections::HashMap<String, u64>,
    /// Reference records of shared pieces that need repair.
    pub stale_refs: Vec<StaleRefs>,
    /// Keys no image names that the storage holds under a running retention lock (see
    /// [`Removed`]), with the lock's end: set aside by [`set_aside_held`], not removable yet.
    pub held: Vec<(String, u64)>,
    /// The scan's thresholds, for the checks repeated at removal.
    pub older_than: std::time::Duration,
    pub liveness: Liveness,
}

/// A shared piece's reference record that says more than is true: referrers that no longer
/// name the piece (a writer that died between registering and committing, a delete that died
/// half way), an owner gone without saying so, or a removal a crash interrupted.
#[derive(Debug, Clone)]
pub struct StaleRefs {
    pub piece: String,
    pub referrers: Vec<String>,
    pub owner_gone: bool,
    pub reclaiming: bool,
}

impl Orphans {
    pub fn is_empty(&self) -> bool {
        self.without_manifest.is_empty()
            && self.unreferenced.is_empty()
            && self.stale_pending.is_empty()
            && self.stale_refs.is_empty()
    }
}

/// Whether `referrer`'s manifest names `piece` (or its writer, alive, may yet commit it).
fn holds(
    store: &dyn PieceStore,
    lsu: &str,
    referrer: &str,
    piece: &str,
    older_than: std::time::Duration,
    liveness: Liveness,
) -> Result<bool> {
    let def = ImageDef { basename: referrer.to_string(), ..Default::default() };
    match load(store, lsu, &def) {
        Ok(m) => Ok(m.pieces.iter().any(|p| !p.owned && p.key == piece)
            || (m.state == State::Pending && !writer_gone(&m, older_than, liveness.silence))),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        // Unreadable: it may hold it.
        Err(_) => Ok(true),
    }
}

/// Check the reference record of `piece`.
fn check_refs(
    store: &dyn PieceStore,
    lsu: &str,
    piece: &str,
    r: &Refs,
    older_than: std::time::Duration,
    liveness: Liveness,
) -> Result<Option<StaleRefs>> {
    let mut stale = StaleRefs {
        piece: piece.to_string(),
        referrers: Vec::new(),
        owner_gone: false,
        reclaiming: r.reclaiming,
    };
    for referrer in &r.referrers {
        if !holds(store, lsu, referrer, piece, older_than, liveness)? {
            stale.referrers.push(referrer.clone());
        }
    }
    if r.owner_alive {
        let owner = ImageDef { basename: layout::owner_of(piece).to_string(), ..Default::default() };
        stale.owner_gone = match load(store, lsu, &owner) {
            Ok(m) => !m.pieces.iter().any(|p| p.owned && p.key == piece),
            Err(e) => e.kind() == ErrorKind::NotFound,
        };
    }
    Ok((stale.reclaiming || stale.owner_gone || !stale.referrers.is_empty()).then_some(stale))
}

/// Is the writer recorded in a manifest gone? On this host the pid tells; elsewhere only
/// silence longer than `older_than` since the last commit does.
fn writer_gone(m: &Manifest, older_than: std::time::Duration, silence: std::time::Duration) -> bool {
    let Some(w) = &m.writer else { return true };
    if w.host == util::hostname() {
        return !util::process_alive(w.pid);
    }
    util::now_secs().saturating_sub(m.updated) > older_than.max(silence).as_secs()
}

/// Scan one LSU for what crashed writers left. Images held by a live writer are skipped, and
/// so is anything younger than `older_than` (a create in progress looks like an orphan for a
/// moment; a writer on another host is only known gone by its silence).
pub fn find_orphans(
    store: &dyn PieceStore,
    lsu: &str,
    older_than: std::time::Duration,
    liveness: Liveness,
) -> Result<Orphans> {
    let mut out = Orphans { older_than, liveness, ..Orphans::default() };
    for name in store.list_images(lsu, "")? {
        let mut keys = store.list_image_keys(lsu, &name)?;
        // Shared pieces and their records are for the reference repair below, not for the
        // scan of what a writer left.
        let records: Vec<String> =
            keys.iter().filter(|(k, _)| layout::is_refs_record(k)).map(|(k, _)| k.clone()).collect();
        for rec in &records {
            let piece = rec.trim_end_matches(".refs");
            if let Some(r) = shared::read(store, lsu, piece)? {
                if let Some(stale) = check_refs(store, lsu, piece, &r, older_than, liveness)? {
                    out.stale_refs.push(stale);
                }
            }
        }
        keys.retain(|(k, _)| !records.iter().any(|r| r == k || r.trim_end_matches(".refs") == k));
        if keys.is_empty() {
            continue;
        }
        let def = ImageDef { basename: name.clone(), ..Default::default() };
        let m = match load(store, lsu, &def) {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                if keys.iter().all(|(_, age)| age.is_some_and(|a| a < older_than)) {
                    continue;
                }
                out.without_manifest.push((name, keys.into_iter().map(|(k, _)| k).collect()));
                continue;
            }
            // A corrupt manifest is an image NetBackup knows: reported, not touched.
            Err(e) => {
                warn!(lsu, image = %name, "orphan scan skips an unreadable image: {e}");
                continue;
            }
        };
        out.generations.insert(name.clone(), m.generation);
        let gone = writer_gone(&m, older_than, liveness.silence);
        if m.state == State::Pending && m.writer.is_some() && gone {
            let w = m.writer.as_ref().map(|w| format!("{}:{}", w.host, w.pid)).unwrap_or_default();
            out.stale_pending.push((name.clone(), w));
        }
        if !gone {
            continue;
        }
        let manifest_key = layout::manifest_key(&name);
        // The claim protocol's winner keeps its claim as long as the record it created exists
        // (docs/commit-protocol.md): a claim of the manifest, or of a reference record still
        // there, is part of the image, not something a writer left.
        let claim_of_existing = |k: &str| {
            k.starts_with(&layout::claim_prefix(&name, layout::MANIFEST))
                || records.iter().any(|r| {
                    let record = r.strip_prefix(&format!("{name}/")).unwrap_or(r);
                    k.starts_with(&layout::claim_prefix(&name, record))
                })
        };
        let stray: Vec<String> = keys
            .into_iter()
            .filter(|(k, age)| {
                *k != manifest_key
                    && !m.pieces.iter().any(|p| p.key == *k)
                    && !claim_of_existing(k)
                    && !age.is_some_and(|a| a < older_than)
            })
            .map(|(k, _)| k)
            .collect();
        if !stray.is_empty() {
            out.unreferenced.push((name, stray));
        }
    }
    Ok(out)
}

/// Remove what [`find_orphans`] found; stale pending images only with `pending`. Returns how
/// many keys and images went.
pub fn remove_orphans(store: &dyn PieceStore, lsu: &str, o: &Orphans, pending: bool) -> Result<Removed> {
    let mut n = 0;
    let mut held = Vec::new();
    for (image, keys) in &o.without_manifest {
        // A create since the scan makes it an image: leave it.
        if store.read_manifest(lsu, image)?.is_some() {
            continue;
        }
        n += remove_or_hold(store, lsu, image, keys, &mut held)?;
    }
    for (image, keys) in &o.unreferenced {
        // A commit since the scan may name these keys now, or show the writer alive.
        let def = ImageDef { basename: image.clone(), ..Default::default() };
        let Ok(m) = load(store, lsu, &def) else { continue };
        if o.generations.get(image) != Some(&m.generation) {
            continue;
        }
        n += remove_or_hold(store, lsu, image, keys, &mut held)?;
    }
    for st in &o.stale_refs {
        n += repair_refs(store, lsu, st, (o.older_than, o.liveness), &mut held)?;
    }
    if pending {
        for (image, _) in &o.stale_pending {
            let def = ImageDef { basename: image.clone(), ..Default::default() };
            if load(store, lsu, &def).is_ok_and(|m| o.generations.get(image) == Some(&m.generation)) {
                delete(store, lsu, &def)?;
                n += 1;
            }
        }
    }
    Ok(Removed { items: n, held })
}

/// On a WORM LSU: move the orphan keys the storage holds under a running retention lock out of
/// `o` into `o.held` (one lock lookup per orphan key; orphans are few).
pub fn set_aside_held(store: &dyn PieceStore, lsu: &str, o: &mut Orphans) {
    for list in [&mut o.without_manifest, &mut o.unreferenced] {
        for (_, keys) in list.iter_mut() {
            let mut free = Vec::new();
            for k in keys.drain(..) {
                match held_until(store, lsu, &k) {
                    Some(until) => o.held.push((k, until)),
                    None => free.push(k),
                }
            }
            *keys = free;
        }
        list.retain(|(_, keys)| !keys.is_empty());
    }
    // A piece whose removal a delete began (its record says so) and the lock stopped.
    let mut pending = Vec::new();
    for st in std::mem::take(&mut o.stale_refs) {
        let removal_only = st.referrers.is_empty() && (st.owner_gone || st.reclaiming);
        match removal_only.then(|| held_until(store, lsu, &st.piece)).flatten() {
            Some(until) => o.held.push((st.piece, until)),
            None => pending.push(st),
        }
    }
    o.stale_refs = pending;
}

/// When the storage holds `key` under a running retention lock: the lock's end. A key whose
/// lock cannot be read (not a piece on NFS, say) counts as not held: removing it tells.
fn held_until(store: &dyn PieceStore, lsu: &str, key: &str) -> Option<u64> {
    match store.retention(lsu, key) {
        Ok(Some(l)) if l.active => Some(l.until),
        _ => None,
    }
}

/// Remove `keys` of `image`; when the storage refuses (a retention lock), the keys it holds
/// under a running lock are set aside in `held` and the rest removed. Returns how many went.
fn remove_or_hold(
    store: &dyn PieceStore,
    lsu: &str,
    image: &str,
    keys: &[String],
    held: &mut Vec<(String, u64)>,
) -> Result<usize> {
    let refused = match store.remove_keys(lsu, image, keys) {
        Ok(()) => return Ok(keys.len()),
        Err(e) if e.kind() == ErrorKind::Access => e,
        Err(e) => return Err(e),
    };
    let mut rest = Vec::new();
    for k in keys {
        match held_until(store, lsu, k) {
            Some(until) => {
                warn!(lsu, key = %k, until, "orphan held by a retention lock: a cleanup after it ends removes it");
                held.push((k.clone(), until));
            }
            None => rest.push(k.clone()),
        }
    }
    if rest.len() == keys.len() {
        // Refused, but not for a lock this store can see: that is the error.
        return Err(refused);
    }
    if !rest.is_empty() {
        store.remove_keys(lsu, image, &rest)?;
    }
    Ok(rest.len())
}

/// Drop the stale referrers of a record, mark a gone owner, and remove the piece if nobody
/// holds it then (or finish a removal a crash interrupted). Returns 1 if the record changed.
fn repair_refs(
    store: &dyn PieceStore,
    lsu: &str,
    st: &StaleRefs,
    (older_than, liveness): (std::time::Duration, Liveness),
    held: &mut Vec<(String, u64)>,
) -> Result<usize> {
    let mut changed = 0;
    for referrer in &st.referrers {
        // A commit since the scan may name the piece now.
        if holds(store, lsu, referrer, &st.piece, older_than, liveness)? {
            continue;
        }
        shared::remove_ref(store, lsu, &st.piece, referrer)?;
        changed = 1;
    }
    if st.owner_gone || st.reclaiming {
        // Same as the owner's delete would have done. A piece under a running lock stays, its
        // record saying it is being reclaimed: a cleanup after the lock ends finishes it.
        match shared::release_owned(store, lsu, &st.piece) {
            Ok(_) => changed = 1,
            Err(e) if e.kind() == ErrorKind::Access => match held_until(store, lsu, &st.piece) {
                Some(until) => held.push((st.piece.clone(), until)),
                None => return Err(e),
            },
            Err(e) => return Err(e),
        }
    }
    Ok(changed)
}
