//! The plug-in's model, what the C layer drives: the [`Engine`] (config and log), open
//! storage [`Server`]s, LSUs, [`OpenImage`]s and list [`Cursor`]s. Rooms: [`engine`] (config
//! reload, opening servers), [`connect`] (reaching data paths and VMS), [`described`] (what
//! polling by name is told, from the config and a cache of the last open), [`routing`] (which
//! store holds an LSU), [`info`] (what NetBackup is told, flags, caches), [`inspect`] (what
//! `vast-ost doctor` asks beyond the OST calls), [`ops`] (image operations), [`open_image`]
//! (open images and cursors), [`worm`] (retention locks), [`label`] (LSU labels).

mod connect;
mod described;
mod engine;
mod info;
mod inspect;
mod label;
mod open_image;
mod ops;
mod routing;
mod worm;

pub use engine::Engine;
pub use info::{ImageInfo, LsuInfo, ServerInfo};
pub use label::{check_label, MAX_LABEL};
pub use open_image::{Cursor, OpenImage};

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::control::{Cluster, Control};
use crate::error::{Error, ErrorKind, Result};
use crate::store::nfs::NfsStore;
use crate::store::s3::S3Store;
use crate::store::PieceStore;

/// An open storage server.
pub struct Server {
    name: String,
    nfs: Option<Nfs>,
    s3: Option<S3>,
    control: Option<Control>,
    cluster: Option<Cluster>,
    endpoints: Vec<String>,
    /// Image counts per LSU with when they were taken: NetBackup polls LSU properties every
    /// few seconds, and counting lists every image.
    counts: Mutex<std::collections::HashMap<String, (Instant, u64)>>,
    ttl: Duration,
    /// How writers show they are alive, and when one on another host is judged gone.
    liveness: crate::image::Liveness,
    /// Copies inside one LSU reference the source's pieces (`reference_copies`).
    reference_copies: bool,
    /// Images and lists open on this server: close_server is refused while any are.
    open: AtomicUsize,
}

/// The NFS data path: the store, and where VAST is mounted on this media server.
struct Nfs {
    store: Arc<NfsStore>,
    /// The same store as the trait object images are written through.
    dyn_store: Arc<dyn PieceStore>,
    mount: PathBuf,
    view_root: String,
}

struct S3 {
    store: Arc<S3Store>,
    dyn_store: Arc<dyn PieceStore>,
    /// The endpoint URLs requests go to (configured, or the data VIPs).
    endpoints: Vec<String>,
}

impl Server {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The data paths, for the log.
    pub(super) fn describe(&self) -> String {
        let nfs = self.nfs.as_ref().map(|n| n.dyn_store.describe(""));
        let s3 = self.s3.as_ref().map(|s| s.dyn_store.describe(""));
        nfs.into_iter().chain(s3).collect::<Vec<_>>().join(", ")
    }

    /// How writers on this server show they are alive (`writer_silence_secs`).
    pub fn liveness(&self) -> crate::image::Liveness {
        self.liveness
    }

    /// Images and lists still open.
    pub fn open_children(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Refuse to close while anything is open on the server.
    pub fn check_closable(&self) -> Result<()> {
        match self.open_children() {
            0 => Ok(()),
            n => Err(Error::new(
                ErrorKind::Busy,
                format!("{n} image or list handle(s) still open on server '{}'", self.name),
            )),
        }
    }

    /// Count a child (an image, a list, an event channel) open on this server until the guard
    /// drops: close_server is refused meanwhile.
    pub fn guard(self: &Arc<Self>) -> ChildGuard {
        self.open.fetch_add(1, Ordering::AcqRel);
        ChildGuard(self.clone())
    }
}

/// Counts an open child of a server for as long as it lives.
pub struct ChildGuard(Arc<Server>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}
