//! The handle table. Handles given to the host are tokens (a sequence number and a type tag),
//! never pointers: a closed, forged or wrong-type handle is looked up, not dereferenced, and
//! yields STS_EHANDLE.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use vast_ost_engine::replication::Channel;
use vast_ost_engine::{Cursor, Error, ErrorKind, ImageInfo, OpenImage, Result, Server};

pub type Shared<T> = Arc<Mutex<T>>;

pub enum Object {
    Server(Arc<Server>, Role),
    LsuList(Shared<Cursor<String>>),
    Image(Shared<OpenImage>),
    ImageList(Shared<Cursor<ImageInfo>>),
    EvChannel(Shared<Channel>),
}

impl Object {
    fn tag(&self) -> usize {
        match self {
            Object::Server(..) => 1,
            Object::LsuList(_) => 2,
            Object::Image(_) => 3,
            Object::ImageList(_) => 4,
            Object::EvChannel(_) => 5,
        }
    }
}

/// How a server handle was opened, so each close takes only its own kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `stspi_open_server`, closed by `stspi_close_server`.
    Opened,
    /// `stspi_open_target_server`, closed by `stspi_close_target_server`.
    Target,
}

impl Role {
    fn opener(self) -> &'static str {
        match self {
            Role::Opened => "stspi_open_server",
            Role::Target => "stspi_open_target_server",
        }
    }

    fn closer(self) -> &'static str {
        match self {
            Role::Opened => "stspi_close_server",
            Role::Target => "stspi_close_target_server",
        }
    }
}

const TAG_BITS: u32 = 3;

/// Each object with the pid of the process that opened it (see `clear` and `image`).
type Entries = HashMap<usize, (u32, Object)>;

struct Table {
    map: Mutex<Entries>,
    next: AtomicUsize,
}

fn table() -> &'static Table {
    static T: OnceLock<Table> = OnceLock::new();
    T.get_or_init(|| {
        // Start somewhere unpredictable so a handle from another process or a stale copy is
        // unlikely to name a live object.
        let seed = vast_ost_engine::util::pid() as usize ^ (&T as *const _ as usize >> 4);
        Table { map: Mutex::new(HashMap::new()), next: AtomicUsize::new((seed & 0xffff) + 1) }
    })
}

fn map() -> MutexGuard<'static, Entries> {
    table().map.lock().unwrap_or_else(|p| p.into_inner())
}

thread_local! {
    /// The table lock held across `fork` by the forking thread (see `fork.rs`).
    static HELD: RefCell<Option<MutexGuard<'static, Entries>>> = const { RefCell::new(None) };
}

/// Take the table lock before `fork`, so no other thread holds it at the moment of the fork.
pub fn lock_for_fork() {
    let g = map();
    HELD.with(|h| *h.borrow_mut() = Some(g));
}

/// Release it after `fork`, in the parent and in the child (the same thread continues in both).
pub fn unlock_after_fork() {
    HELD.with(|h| h.borrow_mut().take());
}

pub fn insert(obj: Object) -> usize {
    let seq = table().next.fetch_add(1, Ordering::Relaxed);
    let h = (seq << TAG_BITS) | obj.tag();
    map().insert(h, (vast_ost_engine::util::pid(), obj));
    h
}

fn bad(h: usize, what: &str) -> Error {
    if h == 0 {
        Error::new(ErrorKind::BadHandle, format!("{what} handle is NULL"))
    } else {
        Error::new(
            ErrorKind::BadHandle,
            format!("{what} handle {h:#x} is not open (closed, forged or of another type)"),
        )
    }
}

/// Whether a handle opened by `owner` may be used by this process. Servers and lists may (a
/// forked child can go on with them); images may not: their writers' upload threads and their
/// files' positions belong to the process that opened them.
fn usable_here(owner: u32, is_image: bool, h: usize) -> Result<()> {
    let me = vast_ost_engine::util::pid();
    if is_image && owner != me {
        return Err(Error::new(
            ErrorKind::BadHandle,
            format!("image handle {h:#x} was opened by process {owner}: a forked child must open the image itself"),
        ));
    }
    Ok(())
}

macro_rules! accessor {
    ($get:ident, $take:ident, $variant:ident, $ty:ty, $what:literal, $image:literal) => {
        pub fn $get(h: usize) -> Result<$ty> {
            match map().get(&h) {
                Some((pid, Object::$variant(o))) => {
                    usable_here(*pid, $image, h)?;
                    Ok(o.clone())
                }
                _ => Err(bad(h, $what)),
            }
        }
        pub fn $take(h: usize) -> Result<$ty> {
            let mut m = map();
            match m.get(&h) {
                Some((pid, Object::$variant(_))) => {
                    usable_here(*pid, $image, h)?;
                    match m.remove(&h) {
                        Some((_, Object::$variant(o))) => Ok(o),
                        _ => unreachable!("checked under the same lock"),
                    }
                }
                _ => Err(bad(h, $what)),
            }
        }
    };
}

pub fn server(h: usize) -> Result<Arc<Server>> {
    match map().get(&h) {
        Some((_, Object::Server(o, _))) => Ok(o.clone()),
        _ => Err(bad(h, "server")),
    }
}

/// Remove a server handle opened as `role`, only if `check` passes (close_server refuses while
/// children live). A handle of the other role stays open and is STS_EHANDLE here.
pub fn take_server_if(
    h: usize,
    role: Role,
    check: impl FnOnce(&Server) -> Result<()>,
) -> Result<Arc<Server>> {
    let mut m = map();
    match m.get(&h) {
        Some((_, Object::Server(s, r))) if *r == role => check(s)?,
        Some((_, Object::Server(_, r))) => {
            return Err(Error::new(
                ErrorKind::BadHandle,
                format!("server handle {h:#x} was opened by {}: close it with {}", r.opener(), r.closer()),
            ))
        }
        _ => return Err(bad(h, "server")),
    }
    match m.remove(&h) {
        Some((_, Object::Server(s, _))) => Ok(s),
        _ => Err(bad(h, "server")),
    }
}

accessor!(lsu_list, take_lsu_list, LsuList, Shared<Cursor<String>>, "LSU list", false);
accessor!(image, take_image, Image, Shared<OpenImage>, "image", true);
accessor!(image_list, take_image_list, ImageList, Shared<Cursor<ImageInfo>>, "image list", false);
accessor!(evchannel, take_evchannel, EvChannel, Shared<Channel>, "event channel", false);

/// An open server handle of this process named `name` (A.I.R. calls that carry no handle find
/// the source server NetBackup opened through it).
pub fn server_named(name: &str) -> Option<Arc<Server>> {
    map().values().find_map(|(_, o)| match o {
        Object::Server(s, _) if s.name().eq_ignore_ascii_case(name) => Some(s.clone()),
        _ => None,
    })
}

/// Drop every handle (terminate). Images open for writing close incomplete as they drop.
pub fn clear() -> usize {
    let me = vast_ost_engine::util::pid();
    let all: Vec<_> = map().drain().collect();
    let n = all.len();
    // A forked child that terminates must not close its parent's images (that would commit or
    // abort the parent's uploads from here): what another process opened is forgotten, not
    // dropped.
    let (mine, foreign): (Vec<_>, Vec<_>) = all.into_iter().partition(|(_, (pid, _))| *pid == me);
    std::mem::forget(foreign);
    // Children (images, lists) before servers, outside the table lock.
    let (servers, children): (Vec<_>, Vec<_>) =
        mine.into_iter().partition(|(_, (_, o))| matches!(o, Object::Server(..)));
    drop(children);
    drop(servers);
    n
}

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
