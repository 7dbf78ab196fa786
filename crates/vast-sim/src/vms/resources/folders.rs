//! `folders/`: directory operations on the namespace: `create_folder`, `delete_folder` (the
//! trash API: the directory leaves the namespace at once and is removed in the background)
//! and `stat_path`.

use crate::util::{iso8601, unix_now};
use crate::vms::request::Rq;
use crate::vms::response::{detail, field_err, ok, Out, Res};
use crate::vms::schema::{required_str, valid_vast_path};
use crate::vms::state::State;
use crate::Shared;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

pub fn create(sh: &Shared, rq: &Rq) -> Res {
    let b = rq.body_obj()?;
    let path = required_str(&b, "path")?;
    if !valid_vast_path(&path) || path == "/" {
        return Err(field_err("path", "Invalid path"));
    }
    let p = sh.store.resolve(&path).ok_or_else(|| field_err("path", "Invalid path"))?;
    if p.exists() {
        return Err(detail(400, format!("path {path} already exists")));
    }
    std::fs::create_dir_all(&p).map_err(|e| detail(400, format!("failed to create {path}: {e}")))?;
    ok(json!({}))
}

pub fn delete(sh: &Shared, st: &State, rq: &Rq) -> Res {
    let b = rq.body_obj()?;
    let path = required_str(&b, "path")?;
    if !st.settings.trash_enabled {
        return Err(detail(400, "trash folder disabled"));
    }
    let p = sh.store.resolve(&path).filter(|_| valid_vast_path(&path) && path != "/");
    let Some(p) = p.filter(|p| p.is_dir()) else {
        return Err(detail(400, format!("no such directory: {path}")));
    };
    // Like the trash API: the directory leaves the namespace at once, space is freed later.
    let dest = sh.store.trash_dir().join(format!(
        "{}-{}",
        unix_now().as_nanos(),
        p.file_name().and_then(|n| n.to_str()).unwrap_or("x")
    ));
    std::fs::rename(&p, &dest).map_err(|e| detail(400, format!("failed to delete {path}: {e}")))?;
    std::thread::spawn(move || {
        let _ = std::fs::remove_dir_all(dest);
    });
    ok(json!({}))
}

pub fn stat_path(sh: &Shared, rq: &Rq) -> Res {
    let b = rq.body_obj()?;
    let path = required_str(&b, "path")?;
    if b.get("tenant_id").is_none() {
        return Err(field_err("tenant_id", "This field is required."));
    }
    let p = sh.store.resolve(&path).ok_or_else(|| field_err("path", "Invalid path"))?;
    stat_json(&p).map(|v| Out(200, Some(v))).ok_or_else(|| detail(400, format!("no such directory: {path}")))
}

/// Size/ownership facts of a path for `folders/stat_path/`.
pub fn stat_json(p: &Path) -> Option<Value> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::symlink_metadata(p).ok()?;
    let children = if md.is_dir() { std::fs::read_dir(p).map(|r| r.count()).unwrap_or(0) } else { 0 };
    let t = |s: i64| iso8601(Duration::from_secs(s.max(0) as u64));
    Some(json!({
        "owning_user": md.uid().to_string(), "owning_uid": md.uid(),
        "owning_group": md.gid().to_string(), "owning_gid": md.gid(),
        "is_directory": md.is_dir(), "children": children, "size": md.len(),
        "mode": format!("{:o}", md.mode() & 0o7777),
        "atime": t(md.atime()), "mtime": t(md.mtime()), "ctime": t(md.ctime()),
    }))
}
