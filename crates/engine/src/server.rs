//! The plug-in's model: the engine (config and log), open storage servers, LSUs, open images
//! and list cursors. The C layer maps its handles onto these types and nothing more.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tracing::{debug, info, warn};

use crate::config::{Config, ServerConfig};
use crate::control::{Cluster, Control, ViewLsu};
use crate::error::{Error, ErrorKind, Result};
use crate::image::{self, ImageReader, ImageWriter};
use crate::manifest::{ImageDef, Manifest, State};
use crate::names;
use crate::store::nfs::NfsStore;
use crate::store::s3::S3Store;
use crate::store::{Kind, PieceStore};
use crate::vms::Vms;
use ost_abi as abi;

/// A password that never reaches a log or a `Debug` print.
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// What NetBackup hands over from `tpconfig`.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    pub user: String,
    pub password: Secret,
}

#[derive(Debug, Clone, Default)]
pub struct ServerInfo {
    pub name: String,
    pub flags: u64,
    pub max_connect: u32,
    pub connections: u32,
    pub version: String,
    pub guid: String,
    pub interfaces: String,
}

#[derive(Debug, Clone, Default)]
pub struct LsuInfo {
    pub server: String,
    pub name: String,
    pub description: String,
    pub flags: u64,
    pub capacity: u64,
    pub used: u64,
    pub images: u64,
    pub max_transfer: u64,
    pub block_size: u32,
}

#[derive(Debug, Clone, Default)]
pub struct ImageInfo {
    pub def: ImageDef,
    pub server: String,
    pub lsu: String,
    pub size: u64,
    pub flags: u32,
    pub meta_size: u64,
    pub created: u64,
    pub updated: u64,
}

/// Preferred write size reported to NetBackup.
const MAX_TRANSFER: u64 = 1 << 20;

/// The loaded plug-in: where the config lives and what it said last.
pub struct Engine {
    config_path: PathBuf,
    /// The config and the file's mtime when it was read: reloaded when the file changes, so
    /// an admin's edit reaches long-lived processes at their next open_server.
    config: Mutex<(Option<SystemTime>, Arc<Config>)>,
}

impl Engine {
    /// Load the config (a missing file is an empty config; a broken one is an error) and point
    /// the log where it says.
    pub fn new(config_path: &Path) -> Result<Engine> {
        let (mtime, cfg) = read_config(config_path).inspect_err(|_| {
            // The error must reach a log: the default one, as the config could not say another.
            init_log(&Config::default());
        })?;
        init_log(&cfg);
        if let Some(w) = cfg.secrets_exposed(config_path) {
            warn!("{w}");
        }
        info!(config = %config_path.display(), servers = cfg.servers.len(), "plug-in initialised, version {}", env!("CARGO_PKG_VERSION"));
        Ok(Engine { config_path: config_path.to_path_buf(), config: Mutex::new((mtime, Arc::new(cfg))) })
    }

    pub fn config(&self) -> Result<Arc<Config>> {
        let mtime = std::fs::metadata(&self.config_path).and_then(|m| m.modified()).ok();
        let mut cur = self.config.lock().unwrap_or_else(|p| p.into_inner());
        if mtime != cur.0 {
            let (mtime, cfg) = read_config(&self.config_path)?;
            init_log(&cfg);
            info!(config = %self.config_path.display(), "configuration reloaded");
            if let Some(w) = cfg.secrets_exposed(&self.config_path) {
                warn!("{w}");
            }
            *cur = (mtime, Arc::new(cfg));
        }
        Ok(cur.1.clone())
    }

    /// Is this storage-server name ours?
    pub fn claim(&self, name: &str) -> Result<()> {
        names::parse_server_name(name).map(|_| ())
    }

    fn server_config(&self, name: &str) -> Result<(Arc<Config>, ServerConfig)> {
        let cluster = names::parse_server_name(name)?;
        let cfg = self.config()?;
        let sc = cfg.server(cluster).cloned().ok_or_else(|| {
            Error::config(format!(
                "no [[server]] with name '{cluster}' in {}: add one that says where its data goes",
                self.config_path.display()
            ))
        })?;
        Ok((cfg, sc))
    }

    pub fn open_server(&self, name: &str, creds: &Credentials) -> Result<Arc<Server>> {
        let (_cfg, sc) = self.server_config(name)?;
        let server = Server::connect(name, &sc, Some(creds))?;
        info!(server = name, user = %creds.user, "storage server opened ({})", server.describe());
        Ok(Arc::new(server))
    }

    /// Server properties without an open handle (what polling asks for). Without credentials
    /// VMS cannot be asked: the answer comes from the config and the data path's reachability.
    pub fn server_info_byname(&self, name: &str) -> Result<ServerInfo> {
        let (_cfg, sc) = self.server_config(name)?;
        Ok(Server::connect(name, &sc, None)?.info())
    }
}

fn read_config(path: &Path) -> Result<(Option<SystemTime>, Config)> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((None, Config::default())),
        Err(e) => Err(Error::config(format!("config {}: {e}", path.display()))),
        Ok(m) => Ok((m.modified().ok(), Config::load(path)?)),
    }
}

fn init_log(cfg: &Config) {
    crate::log::init(&cfg.log_path(), cfg.log.level);
}

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
    counts: Mutex<std::collections::HashMap<String, (std::time::Instant, u64)>>,
    ttl: Duration,
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
}

impl Server {
    /// Reach the data paths and, with `[server.vms]` and credentials, log in to VMS and read
    /// the cluster and its data VIPs.
    fn connect(name: &str, sc: &ServerConfig, creds: Option<&Credentials>) -> Result<Server> {
        let nfs = match &sc.nfs {
            Some(cfg) => {
                match std::fs::metadata(&cfg.mount) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        return Err(Error::new(
                            ErrorKind::Connect,
                            format!(
                                "NFS mount {} of server '{name}' is not a directory",
                                cfg.mount.display()
                            ),
                        ))
                    }
                    Err(e) => {
                        return Err(Error::new(
                            ErrorKind::Connect,
                            format!(
                                "NFS mount {} of server '{name}' is not reachable: {e}",
                                cfg.mount.display()
                            ),
                        ))
                    }
                }
                let store = Arc::new(NfsStore::new(cfg, sc.filter()));
                Some(Nfs {
                    dyn_store: store.clone(),
                    store,
                    mount: cfg.mount.clone(),
                    view_root: cfg.view_root.clone(),
                })
            }
            None => None,
        };
        let (mut control, mut cluster, mut endpoints) =
            (None, None, sc.endpoints.clone().unwrap_or_default());
        if let (Some(v), Some(creds)) = (&sc.vms, creds) {
            let vms = Vms::connect(v, creds)?.with_retry(sc.retry.into());
            let c = Control::new(vms, sc.filter(), Duration::from_secs(sc.capacity_ttl_secs));
            let cl = c.cluster()?;
            info!(
                server = name,
                "VMS {}: cluster '{}' guid {} version {}", v.address, cl.name, cl.guid, cl.version
            );
            if sc.endpoints.is_none() {
                match c.vips(sc.vip_pool.as_deref()) {
                    Ok(v) => endpoints = v,
                    Err(e) => warn!(server = name, "cannot read VIP pools, data endpoints unknown: {e}"),
                }
            }
            cluster = Some(cl);
            control = Some(c);
        }
        let s3 = match (&sc.s3, creds) {
            (Some(cfg), Some(creds)) => Some(Self::s3_store(name, sc, cfg, creds, &endpoints)?),
            _ => None,
        };
        Ok(Server {
            name: name.to_string(),
            nfs,
            s3,
            control,
            cluster,
            endpoints,
            counts: Mutex::new(Default::default()),
            ttl: Duration::from_secs(sc.capacity_ttl_secs),
            open: AtomicUsize::new(0),
        })
    }

    /// The S3 store: endpoints from the config, else the data VIPs; keys from the config, else
    /// (no VMS) the credentials NetBackup handed over.
    fn s3_store(
        name: &str,
        sc: &ServerConfig,
        cfg: &crate::store::s3::S3Settings,
        creds: &Credentials,
        vips: &[String],
    ) -> Result<S3> {
        let mut cfg = cfg.clone();
        if cfg.endpoints.is_empty() {
            let port = cfg.vip_port.map(|p| format!(":{p}")).unwrap_or_default();
            cfg.endpoints = vips.iter().map(|ip| format!("{}://{ip}{port}", cfg.vip_scheme)).collect();
            if cfg.endpoints.is_empty() {
                return Err(Error::config(format!(
                    "server '{name}': [server.s3] has no endpoints and VMS reported no data VIPs"
                )));
            }
        }
        if cfg.access_key.is_empty() {
            cfg.access_key = creds.user.clone();
            cfg.secret_key = creds.password.expose().to_string();
        }
        let store = Arc::new(S3Store::with_retry(&cfg, sc.filter(), sc.retry.into())?);
        info!(server = name, "S3 data path over {}", cfg.endpoints.join(" "));
        Ok(S3 { dyn_store: store.clone(), store })
    }

    /// With VMS, make the stores serve exactly the cluster's views: NFS views at the mount plus
    /// their path below view_root, S3 views by bucket.
    fn sync_views(&self) -> Result<Vec<ViewLsu>> {
        let Some(c) = &self.control else { return Ok(Vec::new()) };
        let views = c.lsus()?;
        if let Some(nfs) = &self.nfs {
            let root = nfs.view_root.trim_end_matches('/');
            let mut map = BTreeMap::new();
            for v in views.iter().filter(|v| v.kind == Kind::Nfs) {
                match v.path.strip_prefix(root).filter(|r| r.is_empty() || r.starts_with('/')) {
                    Some(rel) => {
                        map.insert(v.name.clone(), nfs.mount.join(rel.trim_start_matches('/')));
                    }
                    None => {
                        debug!(server = %self.name, "view {} at {} is outside view_root {}: not reachable here", v.name, v.path, nfs.view_root)
                    }
                }
            }
            nfs.store.set_views(map);
        }
        if let Some(s3) = &self.s3 {
            let map = views
                .iter()
                .filter(|v| v.kind == Kind::S3)
                .map(|v| (v.name.clone(), v.bucket.clone().unwrap_or_else(|| v.name.clone())))
                .collect();
            s3.store.set_buckets(map);
        }
        Ok(views)
    }

    fn nfs_store(&self, lsu: &str) -> Result<&Arc<dyn PieceStore>> {
        self.nfs.as_ref().map(|n| &n.dyn_store).ok_or_else(|| {
            Error::new(
                ErrorKind::NotSupported,
                format!("LSU '{lsu}' is an NFS view, and this server has no [server.nfs]"),
            )
        })
    }

    fn s3_store_for(&self, lsu: &str) -> Result<&Arc<dyn PieceStore>> {
        self.s3.as_ref().map(|s| &s.dyn_store).ok_or_else(|| {
            Error::new(
                ErrorKind::NotSupported,
                format!("LSU '{lsu}' is an S3 bucket, and this server has no [server.s3]"),
            )
        })
    }

    /// The store holding `lsu`, after checking the LSU exists.
    fn store_for(&self, lsu: &str) -> Result<&Arc<dyn PieceStore>> {
        names::validate("LSU", lsu)?;
        let store = if self.control.is_some() {
            match self.sync_views()?.into_iter().find(|v| v.name == lsu) {
                Some(v) if v.kind == Kind::S3 => self.s3_store_for(lsu)?,
                Some(_) => self.nfs_store(lsu)?,
                None => {
                    return Err(Error::not_found(format!(
                        "LSU '{lsu}' is not a view of this cluster (or not selected)"
                    )))
                }
            }
        } else {
            match (&self.nfs, &self.s3) {
                (Some(n), None) => &n.dyn_store,
                (None, Some(s)) => &s.dyn_store,
                // Both without VMS: a directory under the mount wins, else a bucket.
                (Some(n), Some(s)) => {
                    if n.dyn_store.lsu_space(lsu).is_ok() {
                        &n.dyn_store
                    } else {
                        &s.dyn_store
                    }
                }
                (None, None) => {
                    return Err(Error::config(format!("server '{}' has no data path", self.name)))
                }
            }
        };
        store.lsu_space(lsu)?;
        Ok(store)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The data paths, for the log.
    fn describe(&self) -> String {
        let nfs = self.nfs.as_ref().map(|n| n.dyn_store.describe(""));
        let s3 = self.s3.as_ref().map(|s| s.dyn_store.describe(""));
        nfs.into_iter().chain(s3).collect::<Vec<_>>().join(", ")
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

    pub fn info(&self) -> ServerInfo {
        let version = match &self.cluster {
            Some(c) => {
                format!("VAST {} (cluster {}), vast-ost {}", c.version, c.name, env!("CARGO_PKG_VERSION"))
            }
            None => format!("vast-ost {} ({})", env!("CARGO_PKG_VERSION"), self.describe()),
        };
        ServerInfo {
            name: self.name.clone(),
            flags: abi::STS_SRV_DISK
                | abi::STS_SRV_CRED
                | abi::STS_SRV_COPY_IMAGE
                | abi::STS_SRV_WRITE_RANDOM
                | abi::STS_SRV_IMAGE_META
                | if self.nfs.is_some() { abi::STS_SRV_NFS } else { 0 }
                | if self.s3.is_some() { abi::STS_SRV_S3 } else { 0 },
            max_connect: 0,
            connections: self.open_children() as u32,
            version,
            guid: self.cluster.as_ref().map(|c| c.guid.clone()).unwrap_or_default(),
            interfaces: self.endpoints.join(","),
        }
    }

    fn guard(self: &Arc<Self>) -> ChildGuard {
        self.open.fetch_add(1, Ordering::AcqRel);
        ChildGuard(self.clone())
    }

    /// LSUs whose names start with `prefix`.
    pub fn lsu_list(self: &Arc<Self>, prefix: &str) -> Result<Cursor<String>> {
        let names: Vec<String> = match &self.control {
            Some(_) => self.sync_views()?.into_iter().map(|v| v.name).collect(),
            None => {
                let mut all = Vec::new();
                for store in self.nfs.iter().map(|n| &n.dyn_store).chain(self.s3.iter().map(|s| &s.dyn_store))
                {
                    all.extend(store.list_lsus()?);
                }
                all.sort();
                all.dedup();
                all
            }
        };
        let names = names.into_iter().filter(|n| n.starts_with(prefix)).collect();
        Ok(Cursor { items: names, _guard: self.guard() })
    }

    pub fn lsu_info(&self, lsu: &str) -> Result<LsuInfo> {
        let store = self.store_for(lsu)?;
        let (space, description) = match &self.control {
            Some(c) => {
                let v = c.lsu(lsu)?;
                (c.space(&v)?, format!("VAST view {} ({})", v.path, store.describe(lsu)))
            }
            None => (store.lsu_space(lsu)?, store.describe(lsu)),
        };
        let images = self.image_count(store, lsu)?;
        let flags = abi::STS_LSUF_DISK
            | match store.kind() {
                Kind::Nfs => abi::STS_LSUF_NFS,
                Kind::S3 => abi::STS_LSUF_S3,
            };
        Ok(LsuInfo {
            server: self.name.clone(),
            name: lsu.to_string(),
            description,
            flags,
            capacity: space.capacity,
            used: space.used,
            images,
            max_transfer: MAX_TRANSFER,
            block_size: abi::STS_BLOCK_SIZE,
        })
    }

    /// Forget cached capacity and image count of `lsu`: they just changed.
    fn changed(&self, lsu: &str) {
        if let Some(c) = &self.control {
            c.invalidate_space(lsu);
        }
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).remove(lsu);
    }

    fn image_count(&self, store: &Arc<dyn PieceStore>, lsu: &str) -> Result<u64> {
        if let Some((at, n)) = self.counts.lock().unwrap_or_else(|p| p.into_inner()).get(lsu) {
            if at.elapsed() < self.ttl {
                return Ok(*n);
            }
        }
        let n = store.list_images(lsu, "")?.len() as u64;
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(lsu.to_string(), (std::time::Instant::now(), n));
        Ok(n)
    }

    pub fn create_image(self: &Arc<Self>, lsu: &str, def: ImageDef) -> Result<OpenImage> {
        let store = self.store_for(lsu)?.clone();
        let w = ImageWriter::create(store, lsu, def)?;
        Ok(self.opened(lsu, Mode::Write(w)))
    }

    /// `append` reopens a pending image for writing; otherwise the image is opened to read.
    pub fn open_image(self: &Arc<Self>, lsu: &str, def: &ImageDef, append: bool) -> Result<OpenImage> {
        let store = self.store_for(lsu)?.clone();
        let mode = if append {
            Mode::Write(ImageWriter::append(store, lsu, def)?)
        } else {
            Mode::Read(ImageReader::open(store, lsu, def)?)
        };
        Ok(self.opened(lsu, mode))
    }

    fn opened(self: &Arc<Self>, lsu: &str, mode: Mode) -> OpenImage {
        OpenImage { lsu: lsu.to_string(), mode: Some(mode), guard: self.guard() }
    }

    pub fn image_info(&self, lsu: &str, def: &ImageDef) -> Result<ImageInfo> {
        let m = image::load(self.store_for(lsu)?.as_ref(), lsu, def)?;
        Ok(image_info(&self.name, lsu, &m, false))
    }

    pub fn image_list(self: &Arc<Self>, lsu: &str, prefix: &str) -> Result<Cursor<ImageInfo>> {
        let items = image::list(self.store_for(lsu)?.as_ref(), lsu, prefix)?
            .iter()
            .map(|m| image_info(&self.name, lsu, m, false))
            .collect();
        Ok(Cursor { items, _guard: self.guard() })
    }

    pub fn delete_image(&self, lsu: &str, def: &ImageDef) -> Result<()> {
        image::delete(self.store_for(lsu)?.as_ref(), lsu, def)?;
        self.changed(lsu);
        info!(server = %self.name, lsu, image = %def.basename, "image deleted");
        Ok(())
    }

    /// What crashed writers left in `lsu` (see [`image::find_orphans`]).
    pub fn find_orphans(&self, lsu: &str, older_than: Duration) -> Result<image::Orphans> {
        image::find_orphans(self.store_for(lsu)?.as_ref(), lsu, older_than)
    }

    pub fn remove_orphans(&self, lsu: &str, orphans: &image::Orphans, pending: bool) -> Result<usize> {
        let n = image::remove_orphans(self.store_for(lsu)?.as_ref(), lsu, orphans, pending)?;
        self.changed(lsu);
        info!(server = %self.name, lsu, "orphan cleanup removed {n} item(s)");
        Ok(n)
    }

    pub fn copy_image(
        &self,
        from_lsu: &str,
        from: &ImageDef,
        to: &Server,
        to_lsu: &str,
        to_def: &ImageDef,
    ) -> Result<ImageInfo> {
        let from_store = self.store_for(from_lsu)?;
        let to_store = to.store_for(to_lsu)?;
        names::validate("image", &to_def.basename)?;
        let m = image::copy(from_store, from_lsu, from, to_store, to_lsu, to_def)?;
        to.changed(to_lsu);
        info!(server = %self.name, lsu = from_lsu, image = %from.basename, "image copied to {}/{}/{} ({} bytes)", to.name, to_lsu, to_def.basename, m.size);
        Ok(image_info(&to.name, to_lsu, &m, false))
    }
}

fn image_info(server: &str, lsu: &str, m: &Manifest, reading: bool) -> ImageInfo {
    let mut flags = match m.state {
        State::Pending => abi::STS_II_IMAGE_PENDING,
        State::Complete => abi::STS_II_IMAGE_CREATED,
    };
    if m.writer.is_some() {
        flags |= abi::STS_II_BUSY_WRITE;
    }
    if reading {
        flags |= abi::STS_II_BUSY_READ;
    }
    ImageInfo {
        def: m.def.clone(),
        server: server.to_string(),
        lsu: lsu.to_string(),
        size: m.size,
        flags,
        meta_size: m.meta.data.len() as u64,
        created: m.created,
        updated: m.updated,
    }
}

/// Counts an open child of a server for as long as it lives.
struct ChildGuard(Arc<Server>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A list snapshot taken when it was opened, handed out one entry at a time.
pub struct Cursor<T> {
    items: VecDeque<T>,
    _guard: ChildGuard,
}

impl<T> Cursor<T> {
    pub fn next_item(&mut self) -> Option<T> {
        self.items.pop_front()
    }
}

enum Mode {
    Write(ImageWriter),
    Read(ImageReader),
}

/// An image open through the C interface.
pub struct OpenImage {
    lsu: String,
    /// `None` once closed.
    mode: Option<Mode>,
    /// The server it was opened on (and the count of its open children).
    guard: ChildGuard,
}

impl OpenImage {
    pub fn server(&self) -> &str {
        &self.guard.0.name
    }
    pub fn lsu(&self) -> &str {
        &self.lsu
    }
    pub fn name(&self) -> &str {
        match &self.mode {
            Some(Mode::Write(w)) => &w.manifest().def.basename,
            Some(Mode::Read(r)) => &r.manifest().def.basename,
            None => "",
        }
    }

    fn writer(&mut self, op: &str) -> Result<&mut ImageWriter> {
        match self.mode.as_mut() {
            Some(Mode::Write(w)) => Ok(w),
            Some(Mode::Read(_)) => Err(Error::state(format!("cannot {op}: the image is open for reading"))),
            None => Err(Error::new(ErrorKind::BadHandle, "image handle is closed")),
        }
    }

    fn reader(&mut self, op: &str) -> Result<&mut ImageReader> {
        match self.mode.as_mut() {
            Some(Mode::Read(r)) => Ok(r),
            Some(Mode::Write(_)) => Err(Error::state(format!("cannot {op}: the image is open for writing"))),
            None => Err(Error::new(ErrorKind::BadHandle, "image handle is closed")),
        }
    }

    pub fn write(&mut self, buf: &[u8], off: u64) -> Result<()> {
        self.writer("write")?.write_at(buf, off)
    }

    pub fn read(&mut self, buf: &mut [u8], off: u64) -> Result<usize> {
        self.reader("read")?.read_at(buf, off)
    }

    pub fn flush(&mut self) -> Result<()> {
        self.writer("flush")?.flush()
    }

    pub fn write_meta(&mut self, buf: &[u8], off: u64) -> Result<()> {
        self.writer("write metadata")?.write_meta(buf, off)
    }

    pub fn read_meta(&mut self, buf: &mut [u8], off: u64) -> Result<usize> {
        let m = match self.mode.as_ref() {
            Some(Mode::Write(w)) => w.manifest(),
            Some(Mode::Read(r)) => r.manifest(),
            None => return Err(Error::new(ErrorKind::BadHandle, "image handle is closed")),
        };
        let data = &m.meta.data;
        if buf.is_empty() {
            return Err(Error::invalid("zero-length metadata read"));
        }
        if off > data.len() as u64 {
            return Err(Error::invalid(format!(
                "metadata read at {off} is past its end ({} bytes)",
                data.len()
            )));
        }
        let n = buf.len().min(data.len() - off as usize);
        buf[..n].copy_from_slice(&data[off as usize..off as usize + n]);
        Ok(n)
    }

    pub fn info(&self) -> Result<ImageInfo> {
        match self.mode.as_ref() {
            Some(Mode::Write(w)) => Ok(image_info(self.server(), &self.lsu, w.manifest(), false)),
            Some(Mode::Read(r)) => Ok(image_info(self.server(), &self.lsu, r.manifest(), true)),
            None => Err(Error::new(ErrorKind::BadHandle, "image handle is closed")),
        }
    }

    /// Close. `complete` matters only for a write handle. Returns the image's size.
    pub fn close(&mut self, complete: bool) -> Result<u64> {
        match self.mode.take() {
            Some(Mode::Write(w)) => {
                let res = w.close(complete);
                self.guard.0.changed(&self.lsu);
                let m = res?;
                let state = if complete { "complete" } else { "incomplete (kept for restart)" };
                info!(server = %self.server(), lsu = %self.lsu, image = %m.def.basename, "image closed {state}, {} bytes in {} piece(s)", m.size, m.pieces.len());
                Ok(m.size)
            }
            Some(Mode::Read(r)) => Ok(r.manifest().size),
            None => Err(Error::new(ErrorKind::BadHandle, "image handle is closed")),
        }
    }
}

impl Drop for OpenImage {
    /// A write handle dropped without close (terminate, a host that forgot) keeps what is
    /// durable for checkpoint restart rather than losing it.
    fn drop(&mut self) {
        if let Some(Mode::Write(_)) = &self.mode {
            warn!(server = %self.server(), lsu = %self.lsu, image = %self.name(), "image still open for writing at shutdown: closing it incomplete");
            if let Err(e) = self.close(false) {
                warn!(server = %self.server(), lsu = %self.lsu, "closing incomplete failed: {e}");
            }
        }
    }
}
