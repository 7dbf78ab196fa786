//! Pieces shared between images (manifest version 3). An optimized synthetic full or a
//! reference copy names pieces another image of the LSU owns (`owned: false`) instead of
//! copying them. Each shared piece has a reference record beside it in its owner image,
//! `<owner>/<piece>.refs`: which images reference it, whether its owner still lists it, and
//! whether it is being removed. Every change to a record is an exclusive create or a
//! compare-and-swap (the store's record operations), so media servers that include and expire
//! at once agree; `docs/shared-pieces.md` has the invariants and each crash point.
//!
//! - A referrer registers itself in the record **before** its manifest names the piece, then
//!   checks the piece is still there.
//! - An owner's delete first removes its manifest, then claims each owned piece's record for
//!   removal with an exclusive create: if that succeeds nobody referenced the piece and it goes;
//!   if a record exists the owner only marks itself gone, and the piece stays.
//! - The last change that leaves a record with no referrer and no owner marks it `reclaiming`
//!   (nobody may register any more) and removes the piece, then the record.

use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use crate::error::{Error, ErrorKind, Result};
use crate::layout;
use crate::manifest::{seal, unseal, Manifest, Piece};
use crate::store::PieceStore;

const FORMAT: &str = "vast-ost-refs";
/// Rounds of compare-and-swap before contention is an error.
const ROUNDS: u32 = 200;

/// The reference record of one piece.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refs {
    pub format: String,
    pub version: u32,
    /// The owner image still lists the piece as its own.
    pub owner_alive: bool,
    /// Being removed: no reference may be added.
    pub reclaiming: bool,
    /// Images that reference the piece, sorted.
    pub referrers: Vec<String>,
}

impl Refs {
    fn new(owner_alive: bool, reclaiming: bool, referrers: Vec<String>) -> Refs {
        Refs { format: FORMAT.into(), version: 1, owner_alive, reclaiming, referrers }
    }

    pub fn decode(bytes: &[u8]) -> Result<Refs> {
        let r: Refs = unseal(bytes, "reference record")?;
        if r.format != FORMAT || r.version != 1 {
            return Err(Error::corrupt(format!("reference record is {} version {}", r.format, r.version)));
        }
        Ok(r)
    }

    /// Whether nobody holds the piece any more.
    fn unheld(&self) -> bool {
        self.referrers.is_empty() && !self.owner_alive
    }
}

/// Where a piece's record is: its owner image and the record's name there.
fn record_of(piece_key: &str) -> (&str, String) {
    (layout::owner_of(piece_key), layout::refs_record(piece_key))
}

/// The record's key (what an owner's sweep must keep while the piece is kept).
pub fn record_key(piece_key: &str) -> String {
    let (owner, name) = record_of(piece_key);
    layout::record_key(owner, &name)
}

/// Change the record of `piece_key` with `f` until the compare-and-swap lands. `f` gets the
/// current record (`None` when there is none) and returns the record to store (`None`: leave
/// it as it is). Returns the record as stored after the change, if any.
fn update(
    store: &dyn PieceStore,
    lsu: &str,
    piece_key: &str,
    mut f: impl FnMut(Option<&Refs>) -> Result<Option<Refs>>,
) -> Result<Option<Refs>> {
    let (owner, name) = record_of(piece_key);
    for round in 0..ROUNDS {
        let raw = store.read_record(lsu, owner, &name)?;
        let cur = raw.as_deref().map(Refs::decode).transpose()?;
        let Some(next) = f(cur.as_ref())? else { return Ok(cur) };
        let res = match &raw {
            None => store.create_record(lsu, owner, &name, &seal(&next)),
            Some(raw) => store.replace_record(lsu, owner, &name, &seal(&next), raw),
        };
        match res {
            Ok(()) => return Ok(Some(next)),
            // Changed by another writer; or, on NFS, the owner's directory went with its last
            // deleter between our read and our write: read again.
            Err(e)
                if matches!(e.kind(), ErrorKind::AlreadyExists | ErrorKind::State | ErrorKind::NotFound) =>
            {
                debug!("{lsu}/{owner}/{name}: changed by another writer (round {round}), again");
                std::thread::sleep(std::time::Duration::from_millis(1 + u64::from(round.min(50))));
            }
            Err(e) => return Err(e),
        }
    }
    Err(Error::new(
        ErrorKind::Busy,
        format!("{lsu}/{owner}/{name}: too much contention on the reference record"),
    ))
}

/// Remove a piece nobody holds, then its record (both may be gone already).
fn reclaim(store: &dyn PieceStore, lsu: &str, piece_key: &str) -> Result<()> {
    let (owner, name) = record_of(piece_key);
    store.remove_keys(lsu, owner, &[piece_key.to_string()])?;
    store.delete_record(lsu, owner, &name)?;
    // The owner's place goes with its last piece (a directory on NFS; nothing on S3).
    store.remove_keys(lsu, owner, &[])?;
    debug!("{lsu}/{piece_key}: removed (no image holds it)");
    Ok(())
}

/// Does `owner`'s manifest list `piece_key` as its own?
fn owner_lists(store: &dyn PieceStore, lsu: &str, piece_key: &str) -> Result<bool> {
    let owner = layout::owner_of(piece_key);
    Ok(match store.read_manifest(lsu, owner)? {
        Some(raw) => match Manifest::decode(&raw) {
            Ok(m) => m.pieces.iter().any(|p| p.owned && p.key == piece_key),
            Err(_) => false,
        },
        None => false,
    })
}

/// Register `referrer` as holding `piece` before its manifest names the piece. `NotFound` when
/// the piece is gone or going.
pub fn add_ref(store: &dyn PieceStore, lsu: &str, piece: &Piece, referrer: &str) -> Result<()> {
    let gone = || {
        Error::not_found(format!(
            "piece {} is being removed with its image: it cannot be referenced",
            piece.key
        ))
    };
    update(store, lsu, &piece.key, |cur| match cur {
        Some(r) if r.reclaiming => Err(gone()),
        Some(r) if r.referrers.iter().any(|x| x == referrer) => Ok(None),
        Some(r) => {
            let mut r = r.clone();
            r.referrers.push(referrer.to_string());
            r.referrers.sort();
            Ok(Some(r))
        }
        None => Ok(Some(Refs::new(true, false, vec![referrer.to_string()]))),
    })?;
    // The owner may have been deleted, and the piece removed, between our read of its
    // manifest and the record: if the owner no longer lists it, it must still be there.
    if owner_lists(store, lsu, &piece.key)? {
        return Ok(());
    }
    let exists = match store.open_piece(lsu, &piece.key) {
        Ok(_) => true,
        Err(e) if e.kind() == ErrorKind::NotFound => false,
        Err(e) => return Err(e),
    };
    if exists {
        // Held by our reference now; the owner is gone, so the record says so.
        update(store, lsu, &piece.key, |cur| match cur {
            Some(r) if r.owner_alive => Ok(Some(Refs { owner_alive: false, ..r.clone() })),
            _ => Ok(None),
        })?;
        return Ok(());
    }
    // Gone: take our registration back, and the record with it if nobody else holds it.
    let after = update(store, lsu, &piece.key, |cur| match cur {
        Some(r) => {
            let mut r = r.clone();
            r.referrers.retain(|x| x != referrer);
            r.owner_alive = false;
            r.reclaiming |= r.referrers.is_empty();
            Ok(Some(r))
        }
        None => Ok(None),
    })?;
    if after.is_some_and(|r| r.reclaiming) {
        reclaim(store, lsu, &piece.key)?;
    }
    Err(gone())
}

/// `referrer` no longer references `piece_key`; the piece goes if nobody holds it now.
pub fn remove_ref(store: &dyn PieceStore, lsu: &str, piece_key: &str, referrer: &str) -> Result<()> {
    let after = update(store, lsu, piece_key, |cur| match cur {
        Some(r) if r.reclaiming => Ok(None),
        Some(r) if r.referrers.iter().any(|x| x == referrer) => {
            let mut r = r.clone();
            r.referrers.retain(|x| x != referrer);
            r.reclaiming = r.unheld();
            Ok(Some(r))
        }
        _ => Ok(None),
    })?;
    if after.is_some_and(|r| r.reclaiming) {
        reclaim(store, lsu, piece_key)?;
    }
    Ok(())
}

/// The owner of `piece_key` is being deleted (its manifest is gone): the piece goes unless
/// another image references it. Returns whether it is kept.
pub fn release_owned(store: &dyn PieceStore, lsu: &str, piece_key: &str) -> Result<bool> {
    let after = update(store, lsu, piece_key, |cur| match cur {
        // Nobody ever referenced it: claim the record for removal (an exclusive create, so a
        // referrer registering at this moment either sees it and backs off, or wins and keeps
        // the piece).
        None => Ok(Some(Refs::new(false, true, Vec::new()))),
        Some(r) if r.reclaiming => Ok(Some(r.clone())),
        Some(r) => {
            let mut r = r.clone();
            r.owner_alive = false;
            r.reclaiming = r.referrers.is_empty();
            Ok(Some(r))
        }
    })?;
    match after {
        Some(r) if r.reclaiming => reclaim(store, lsu, piece_key).map(|()| false),
        Some(_) => Ok(true),
        None => Ok(false),
    }
}

/// Let go of every piece of a deleted image `m` (its manifest already removed): its own pieces
/// go unless referenced, its references are taken back. Returns the keys under the image
/// that must stay (kept pieces and their records).
pub fn release_pieces(store: &dyn PieceStore, lsu: &str, m: &Manifest) -> Result<Vec<String>> {
    let mut keep = Vec::new();
    for p in &m.pieces {
        if p.owned {
            if release_owned(store, lsu, &p.key)? {
                keep.push(p.key.clone());
                keep.push(record_key(&p.key));
            }
        } else if let Err(e) = remove_ref(store, lsu, &p.key, &m.def.basename) {
            // The piece stays held by a registration nobody owns: cleanup finds and drops it.
            warn!(lsu, image = %m.def.basename, "reference to {} not taken back: {e}", p.key);
            return Err(e);
        }
    }
    Ok(keep)
}

/// Let go of the pieces of an image whose manifest is gone or unreadable: every piece under
/// it that has a record is released as above. Returns what must stay.
pub fn release_unknown(store: &dyn PieceStore, lsu: &str, image: &str) -> Result<Vec<String>> {
    let mut keep = Vec::new();
    for (key, _) in store.list_image_keys(lsu, image)? {
        let Some(piece_key) = key.strip_suffix(".refs") else { continue };
        if layout::split_piece_key(piece_key).is_err() {
            continue;
        }
        if release_owned(store, lsu, piece_key)? {
            keep.push(piece_key.to_string());
            keep.push(key);
        }
    }
    Ok(keep)
}

/// What the record of `piece_key` says now (`None` without one).
pub fn read(store: &dyn PieceStore, lsu: &str, piece_key: &str) -> Result<Option<Refs>> {
    let (owner, name) = record_of(piece_key);
    store.read_record(lsu, owner, &name)?.as_deref().map(Refs::decode).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_are_checked() {
        let r = Refs::new(true, false, vec!["a".into(), "b".into()]);
        assert_eq!(Refs::decode(&seal(&r)).unwrap(), r);
        let mut bad = seal(&r);
        bad[5] ^= 1;
        assert_eq!(Refs::decode(&bad).unwrap_err().kind(), ErrorKind::Corrupt);
        assert!(!r.unheld());
        assert!(Refs::new(false, false, vec![]).unheld());
        assert_eq!(record_key("img/s-00001.piece"), "img/s-00001.piece.refs");
    }
}
