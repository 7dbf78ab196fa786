//! The handle table. Handles given to the host are tokens (a sequence number and a type tag),
//! never pointers: a closed, forged or wrong-type handle is looked up, not dereferenced, and
//! yields STS_EHANDLE.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use vast_ost_engine::{Cursor, Error, ErrorKind, ImageInfo, OpenImage, Result, Server};

pub type Shared<T> = Arc<Mutex<T>>;

pub enum Object {
    Server(Arc<Server>),
    LsuList(Shared<Cursor<String>>),
    Image(Shared<OpenImage>),
    ImageList(Shared<Cursor<ImageInfo>>),
}

impl Object {
    fn tag(&self) -> usize {
        match self {
            Object::Server(_) => 1,
            Object::LsuList(_) => 2,
            Object::Image(_) => 3,
            Object::ImageList(_) => 4,
        }
    }
}

const TAG_BITS: u32 = 3;

struct Table {
    map: Mutex<HashMap<usize, Object>>,
    next: AtomicUsize,
}

fn table() -> &'static Table {
    static T: OnceLock<Table> = OnceLock::new();
    T.get_or_init(|| {
        // Start somewhere unpredictable so a handle from another process or a stale copy is
        // unlikely to name a live object.
        let seed = std::process::id() as usize ^ (&T as *const _ as usize >> 4);
        Table { map: Mutex::new(HashMap::new()), next: AtomicUsize::new((seed & 0xffff) + 1) }
    })
}

fn map() -> MutexGuard<'static, HashMap<usize, Object>> {
    table().map.lock().unwrap_or_else(|p| p.into_inner())
}

thread_local! {
    /// The table lock held across `fork` by the forking thread (see `fork.rs`).
    static HELD: RefCell<Option<MutexGuard<'static, HashMap<usize, Object>>>> = const { RefCell::new(None) };
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
    map().insert(h, obj);
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

macro_rules! accessor {
    ($get:ident, $take:ident, $variant:ident, $ty:ty, $what:literal) => {
        pub fn $get(h: usize) -> Result<$ty> {
            match map().get(&h) {
                Some(Object::$variant(o)) => Ok(o.clone()),
                _ => Err(bad(h, $what)),
            }
        }
        pub fn $take(h: usize) -> Result<$ty> {
            let mut m = map();
            match m.get(&h) {
                Some(Object::$variant(_)) => match m.remove(&h) {
                    Some(Object::$variant(o)) => Ok(o),
                    _ => unreachable!("checked under the same lock"),
                },
                _ => Err(bad(h, $what)),
            }
        }
    };
}

pub fn server(h: usize) -> Result<Arc<Server>> {
    match map().get(&h) {
        Some(Object::Server(o)) => Ok(o.clone()),
        _ => Err(bad(h, "server")),
    }
}

/// Remove a server handle only if `check` passes (close_server refuses while children live).
pub fn take_server_if(h: usize, check: impl FnOnce(&Server) -> Result<()>) -> Result<Arc<Server>> {
    let mut m = map();
    match m.get(&h) {
        Some(Object::Server(s)) => check(s)?,
        _ => return Err(bad(h, "server")),
    }
    take_server_locked(&mut m, h)
}

fn take_server_locked(m: &mut HashMap<usize, Object>, h: usize) -> Result<Arc<Server>> {
    match m.remove(&h) {
        Some(Object::Server(s)) => Ok(s),
        _ => Err(bad(h, "server")),
    }
}
accessor!(lsu_list, take_lsu_list, LsuList, Shared<Cursor<String>>, "LSU list");
accessor!(image, take_image, Image, Shared<OpenImage>, "image");
accessor!(image_list, take_image_list, ImageList, Shared<Cursor<ImageInfo>>, "image list");

/// Drop every handle (terminate). Images open for writing close incomplete as they drop.
pub fn clear() -> usize {
    let all: Vec<_> = map().drain().collect();
    let n = all.len();
    // Children (images, lists) before servers, outside the table lock.
    let (servers, children): (Vec<_>, Vec<_>) =
        all.into_iter().partition(|(_, o)| matches!(o, Object::Server(_)));
    drop(children);
    drop(servers);
    n
}

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
