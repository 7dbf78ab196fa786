//! The shared file namespace: VAST's "element store" stands in as a local directory tree.
//! A view path `/a/b` is the directory `<root>/a/b`; an S3 object `k` of a bucket whose view
//! path is `/a/b` is the file `<root>/a/b/k`. So whatever is written through S3 is visible as a
//! file ("NFS") and the other way round.
//!
//! The simulator's own bookkeeping lives in `<root>/.vast-sim/` (temp files, multipart parts,
//! trash): outside every bucket listing and excluded from capacity figures. Objects are
//! written to a temp file there and renamed into place, so a half-written object is never
//! visible. S3 metadata (ETag, content type, `x-amz-meta-*`) is kept in memory, keyed by
//! path, and trusted only while the file's size and mtime are unchanged; a file written or
//! replaced over "NFS" gets an MD5 ETag computed on first use.
//!
//! Quotas are enforced on S3 writes only: plain file writes under the root ("NFS") cannot be
//! made to fail with `EDQUOT` by a user-space simulator, so they only show up in `quotas/`.

use md5::{Digest, Md5};
use std::collections::HashMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

/// Name of the simulator's private directory directly under the data root.
pub const SYS_DIR: &str = ".vast-sim";

#[derive(Debug, Clone, Default)]
pub struct ObjMeta {
    pub etag: String,
    pub content_type: Option<String>,
    pub user_meta: Vec<(String, String)>,
    pub(crate) size: u64,
    pub(crate) mtime: Option<SystemTime>,
}

pub struct Store {
    root: PathBuf,
    sys: PathBuf,
    meta: Mutex<HashMap<PathBuf, ObjMeta>>,
    seq: AtomicU64,
}

impl Store {
    pub fn new(root: &Path) -> io::Result<Store> {
        fs::create_dir_all(root)?;
        let root = root.canonicalize()?;
        let sys = root.join(SYS_DIR);
        for d in ["tmp", "uploads", "trash"] {
            fs::create_dir_all(sys.join(d))?;
        }
        Ok(Store { root, sys, meta: Mutex::new(HashMap::new()), seq: AtomicU64::new(0) })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Maps a VAST absolute path (`/a/b`) to the local directory. Rejects relative paths,
    /// `.`/`..` components and the simulator's private directory.
    pub fn resolve(&self, vpath: &str) -> Option<PathBuf> {
        let rel = vpath.strip_prefix('/')?;
        let mut p = self.root.clone();
        for (i, seg) in rel.split('/').enumerate() {
            if seg.is_empty() {
                // Only a trailing slash or the root itself yields empty segments we accept.
                continue;
            }
            if seg == "." || seg == ".." || seg.contains('\0') || (i == 0 && seg == SYS_DIR) {
                return None;
            }
            p.push(seg);
        }
        Some(p)
    }

    /// Maps an object key under a bucket directory to its file, or None when the key cannot
    /// be a file name (empty segments, `.`/`..`, NUL, the private directory).
    pub fn object_path(&self, bucket_dir: &Path, key: &str) -> Option<PathBuf> {
        if key.is_empty() || key.len() > 1024 || key.matches('/').count() > 200 {
            return None;
        }
        let mut p = bucket_dir.to_path_buf();
        for seg in key.split('/') {
            if seg.is_empty() || seg == "." || seg == ".." || seg.contains('\0') || seg.len() > 255 {
                return None;
            }
            p.push(seg);
        }
        if p.starts_with(&self.sys) {
            return None;
        }
        Some(p)
    }

    /// A fresh path in the private temp directory (same file system, so rename is atomic).
    pub fn tmp_path(&self) -> PathBuf {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        self.sys.join("tmp").join(format!("{}-{n}", std::process::id()))
    }

    pub fn uploads_dir(&self) -> PathBuf {
        self.sys.join("uploads")
    }

    pub fn trash_dir(&self) -> PathBuf {
        self.sys.join("trash")
    }

    pub fn is_private(&self, p: &Path) -> bool {
        p.starts_with(&self.sys)
    }

    /// Bytes and inodes (files + directories) under `dir`, not following symlinks and
    /// skipping the private directory. A missing path counts as zero.
    pub fn usage(&self, dir: &Path) -> (u64, u64) {
        let mut bytes = 0u64;
        let mut inodes = 0u64;
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            let Ok(md) = fs::symlink_metadata(&d) else { continue };
            if md.is_file() {
                bytes += md.len();
                inodes += 1;
                continue;
            }
            if !md.is_dir() {
                continue;
            }
            inodes += 1;
            let Ok(rd) = fs::read_dir(&d) else { continue };
            for e in rd.flatten() {
                let p = e.path();
                if p == self.sys {
                    continue;
                }
                match e.file_type() {
                    Ok(t) if t.is_dir() => stack.push(p),
                    Ok(t) if t.is_file() => {
                        inodes += 1;
                        bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
                    }
                    _ => {}
                }
            }
        }
        (bytes, inodes)
    }

    /// Every regular file under `bucket_dir` whose key starts with `prefix`, sorted by key
    /// (UTF-8 byte order, as S3 lists). Non-UTF-8 names cannot be keys and are skipped.
    pub fn list_keys(&self, bucket_dir: &Path, prefix: &str) -> Vec<(String, fs::Metadata)> {
        // Start at the deepest directory the prefix names, to avoid walking the whole bucket.
        let dir_part = match prefix.rfind('/') {
            Some(i) => &prefix[..i],
            None => "",
        };
        let start = if dir_part.is_empty() {
            Some(bucket_dir.to_path_buf())
        } else {
            self.object_path(bucket_dir, dir_part)
        };
        let mut out = Vec::new();
        let Some(start) = start else { return out };
        let base_key = if dir_part.is_empty() { String::new() } else { format!("{dir_part}/") };
        let mut stack = vec![(start, base_key)];
        while let Some((d, kp)) = stack.pop() {
            let Ok(rd) = fs::read_dir(&d) else { continue };
            for e in rd.flatten() {
                let p = e.path();
                if p == self.sys {
                    continue;
                }
                let Some(name) = e.file_name().to_str().map(str::to_owned) else { continue };
                let key = format!("{kp}{name}");
                match e.file_type() {
                    Ok(t) if t.is_dir() => {
                        let dk = format!("{key}/");
                        // Descend only where keys can still match the prefix.
                        if dk.starts_with(prefix) || prefix.starts_with(&dk) {
                            stack.push((p, dk));
                        }
                    }
                    Ok(t) if t.is_file() && key.starts_with(prefix) => {
                        if let Ok(md) = e.metadata() {
                            out.push((key, md));
                        }
                    }
                    _ => {}
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    fn meta_lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, ObjMeta>> {
        self.meta.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records S3 metadata for a file just committed at `path`.
    pub fn put_meta(&self, path: &Path, mut m: ObjMeta) {
        if let Ok(md) = fs::metadata(path) {
            m.size = md.len();
            m.mtime = md.modified().ok();
            self.meta_lock().insert(path.to_path_buf(), m);
        }
    }

    pub fn forget(&self, path: &Path) {
        self.meta_lock().remove(path);
    }

    /// Moves recorded metadata along with a rename.
    pub fn rename_meta(&self, from: &Path, to: &Path) {
        let mut g = self.meta_lock();
        if let Some(m) = g.remove(from) {
            g.insert(to.to_path_buf(), m);
        }
    }

    /// Metadata of the file at `path`; when it was changed behind S3's back (or never went
    /// through S3) the ETag is the MD5 of its content, computed now and remembered.
    pub fn meta(&self, path: &Path, md: &fs::Metadata) -> ObjMeta {
        let mtime = md.modified().ok();
        if let Some(m) = self.meta_lock().get(path) {
            if m.size == md.len() && m.mtime == mtime {
                return m.clone();
            }
        }
        let etag = md5_file(path).map(|h| format!("\"{}\"", hex::encode(h))).unwrap_or_default();
        let m = ObjMeta { etag, size: md.len(), mtime, ..Default::default() };
        self.meta_lock().insert(path.to_path_buf(), m.clone());
        m
    }
}

pub fn md5_file(path: &Path) -> io::Result<[u8; 16]> {
    let mut f = fs::File::open(path)?;
    let mut h = Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().into())
}

/// Creates the parent directories of `dest` and renames `tmp` onto it. Fails (leaving `tmp`
/// for the caller to remove) when a path component is a file or `dest` is a directory.
pub fn commit(tmp: &Path, dest: &Path) -> io::Result<()> {
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent)?;
    }
    if dest.is_dir() {
        return Err(io::Error::new(io::ErrorKind::AlreadyExists, "a directory exists at that key"));
    }
    fs::rename(tmp, dest)
}
