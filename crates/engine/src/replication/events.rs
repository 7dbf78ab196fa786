//! The event journal of a target LSU, on the target storage: one record per event under
//! `.vast-ost-events/`, named by its zero-padded sequence number. An event is appended by
//! creating the next number's record exclusively (the stores' atomic create), so two media
//! servers never get the same number and the numbers are gapless from 1; a consumer that
//! restarts goes on from the number it had, and every media server reads the same journal.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::layout::EVENTS;
use crate::manifest::ImageDef;
use crate::server::{ChildGuard, ImageInfo, Server};
use crate::store::PieceStore;
use crate::util;

const FORMAT: &str = "vast-ost-event";
const PREFIX: &str = "event.";

/// `STS_EVT_IMG_REP`: an image set was replicated here.
pub const IMG_REP: &str = "img_rep";

/// One image of an event's payload, as `sts_image_info_t` carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventImage {
    pub def: ImageDef,
    pub size: u64,
    pub flags: u32,
    pub meta_size: u64,
    pub created: u64,
    pub updated: u64,
}

impl EventImage {
    pub fn from_info(i: &ImageInfo) -> EventImage {
        EventImage {
            def: i.def.clone(),
            size: i.size,
            flags: i.flags,
            meta_size: i.meta_size,
            created: i.created,
            updated: i.updated,
        }
    }

    /// As an image info of `lsu` on `server` (where the event says the images are).
    pub fn to_info(&self, server: &str, lsu: &str) -> ImageInfo {
        ImageInfo {
            def: self.def.clone(),
            server: server.into(),
            lsu: lsu.into(),
            size: self.size,
            flags: self.flags,
            meta_size: self.meta_size,
            created: self.created,
            updated: self.updated,
            worm_until: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub format: String,
    pub seq: u64,
    pub kind: String,
    pub time: u64,
    /// The copy that replicated the set: what makes the append idempotent.
    pub opid: String,
    pub server: String,
    pub lsu: String,
    pub source_server: String,
    pub source_lsu: String,
    pub images: Vec<EventImage>,
}

impl Event {
    pub fn img_rep(
        opid: &str,
        (server, lsu): (&str, &str),
        source: (&str, &str),
        images: Vec<EventImage>,
    ) -> Event {
        Event {
            format: FORMAT.into(),
            seq: 0,
            kind: IMG_REP.into(),
            time: util::now_secs(),
            opid: opid.into(),
            server: server.into(),
            lsu: lsu.into(),
            source_server: source.0.into(),
            source_lsu: source.1.into(),
            images,
        }
    }
}

fn record(seq: u64) -> String {
    format!("{PREFIX}{seq:020}")
}

/// The highest sequence number in the journal (0: empty).
pub fn last_seq(store: &dyn PieceStore, lsu: &str) -> Result<u64> {
    let keys = store.list_image_keys(lsu, EVENTS)?;
    Ok(keys
        .iter()
        .filter_map(|(k, _)| k.rsplit('/').next()?.strip_prefix(PREFIX)?.parse::<u64>().ok())
        .max()
        .unwrap_or(0))
}

/// Event `seq`, if the journal has it.
pub fn read(store: &dyn PieceStore, lsu: &str, seq: u64) -> Result<Option<Event>> {
    let Some(bytes) = store.read_record(lsu, EVENTS, &record(seq))? else { return Ok(None) };
    let e: Event = serde_json::from_slice(&bytes)
        .map_err(|e| Error::corrupt(format!("event {seq} of LSU '{lsu}' does not parse: {e}")))?;
    if e.format != FORMAT || e.seq != seq {
        return Err(Error::corrupt(format!("event record {seq} of LSU '{lsu}' holds another record")));
    }
    Ok(Some(e))
}

/// Append `ev` under the next free sequence number; returns the number.
pub fn append(store: &dyn PieceStore, lsu: &str, mut ev: Event) -> Result<u64> {
    let mut seq = last_seq(store, lsu)? + 1;
    loop {
        ev.seq = seq;
        let bytes = serde_json::to_vec(&ev).map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))?;
        match store.create_record(lsu, EVENTS, &record(seq), &bytes) {
            Ok(()) => return Ok(seq),
            // Another media server appended this number first: take the next one.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => seq += 1,
            Err(e) => return Err(e.context(format!("appending event {seq} to LSU '{lsu}'"))),
        }
    }
}

/// The number of the event of copy `opid` after `after`, if one was appended (a copier that
/// died between appending and recording it).
pub fn find(store: &dyn PieceStore, lsu: &str, after: u64, opid: &str) -> Result<Option<u64>> {
    let mut seq = after + 1;
    while let Some(e) = read(store, lsu, seq)? {
        if e.opid == opid {
            return Ok(Some(seq));
        }
        seq += 1;
    }
    Ok(None)
}

/// An open event channel: the journal of one LSU read from a sequence number on.
pub struct Channel {
    store: Arc<dyn PieceStore>,
    lsu: String,
    next: u64,
    _guard: ChildGuard,
}

impl Channel {
    /// Events of `lsu` from `start` on (0 and 1 both mean the first).
    pub fn open(server: &Arc<Server>, lsu: &str, start: u64) -> Result<Channel> {
        let store = server.store_of(lsu)?;
        Ok(Channel { store, lsu: lsu.to_string(), next: start.max(1), _guard: server.guard() })
    }

    /// The next event; `NoMoreEntries` when the journal has no more yet (a later call returns
    /// what was appended since).
    pub fn next_event(&mut self) -> Result<Event> {
        match read(self.store.as_ref(), &self.lsu, self.next)? {
            Some(e) => {
                self.next += 1;
                Ok(e)
            }
            None => Err(Error::new(
                ErrorKind::NoMoreEntries,
                format!("no event {} in LSU '{}' yet", self.next, self.lsu),
            )),
        }
    }

    /// Event `seq` (its payload).
    pub fn event(&self, seq: u64) -> Result<Event> {
        read(self.store.as_ref(), &self.lsu, seq)?
            .ok_or_else(|| Error::not_found(format!("LSU '{}' has no event {seq}", self.lsu)))
    }

    pub fn lsu(&self) -> &str {
        &self.lsu
    }
}
