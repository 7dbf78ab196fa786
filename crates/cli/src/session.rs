//! The plug-in as the CLI holds it: loaded and initialised ([`Loaded`]), a storage server open
//! on it ([`Session`]), and image handles that are always closed ([`Image`]). Everything goes
//! through `vast-ost-host`, i.e. the C interface, exactly as NetBackup would drive it.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use vast_ost_host::abi::*;
use vast_ost_host::{get_str, image_def, Plugin, Status};

/// Environment variables the plug-in reads at `stspi_init`.
pub use vast_ost_engine::config::{CONFIG_ENV, LOG_ENV};
use vast_ost_engine::log::FALLBACK_LOG;

/// A loaded and initialised plug-in; dropping it terminates the plug-in.
pub struct Loaded {
    pub plugin: Plugin,
}

impl Loaded {
    /// `dlopen` the plug-in and `stspi_init` it. The config and log variables must be set
    /// before this: the plug-in reads them here.
    pub fn new(path: &Path) -> Result<Loaded> {
        let plugin = Plugin::load(path).map_err(|e| {
            anyhow!("{e}; build it with `cargo build`, or pass --plugin /path/to/{}", vast_ost_host::LIBRARY)
        })?;
        plugin.init().context("initialising the plug-in (stspi_init)")?;
        Ok(Loaded { plugin })
    }
}

impl Drop for Loaded {
    fn drop(&mut self) {
        let _ = self.plugin.terminate();
    }
}

/// An open storage server; dropping it closes the server (then the plug-in).
pub struct Session {
    pub server: String,
    pub handle: stsp_server_handle_t,
    pub loaded: Loaded,
}

impl Session {
    /// Claim and open `server` with the `tpconfig` credentials, as bptm does.
    pub fn open(loaded: Loaded, server: &str, user: &str, password: &str) -> Result<Session> {
        let p = &loaded.plugin;
        p.claim(server).with_context(|| {
            format!(
                "claiming storage server '{server}' (names this plug-in serves look like VastData:<cluster>)"
            )
        })?;
        let handle = p
            .open_server(server, user, password)
            .with_context(|| format!("opening storage server '{server}'"))?;
        Ok(Session { server: server.to_string(), handle, loaded })
    }

    pub fn p(&self) -> &Plugin {
        &self.loaded.plugin
    }

    /// The `sts_lsu_t` for `name`, refusing names that would be cut short in the C struct.
    pub fn lsu(&self, name: &str) -> Result<sts_lsu_t> {
        fits("LSU name", name, STS_MAX_LSUNAME)?;
        Ok(vast_ost_host::lsu(self.handle, name))
    }

    /// Properties of an image, with what was asked in the error.
    pub fn image_info(&self, lsu: &str, image: &str) -> Result<sts_image_info_t> {
        let l = self.lsu(lsu)?;
        let def = def(image, "", "")?;
        self.p()
            .image_prop_byname(&l, &def)
            .with_context(|| format!("reading properties of image '{image}' in LSU '{lsu}'"))
    }

    /// Create an image and open it for writing.
    pub fn create(&self, lsu: &str, def: &sts_image_def_t) -> Result<Image<'_>> {
        let l = self.lsu(lsu)?;
        let name = get_str(&def.img_basename);
        let h = self
            .p()
            .create_image(&l, def)
            .with_context(|| format!("creating image '{name}' in LSU '{lsu}'"))?;
        Ok(Image { s: self, h: Some(h), name, lsu: lsu.to_string() })
    }

    /// Open a complete image for reading.
    pub fn open_read(&self, lsu: &str, image: &str) -> Result<Image<'_>> {
        let l = self.lsu(lsu)?;
        let def = def(image, "", "")?;
        let h = self
            .p()
            .open_image(&l, &def, STS_O_READ)
            .with_context(|| format!("opening image '{image}' in LSU '{lsu}' for reading"))?;
        Ok(Image { s: self, h: Some(h), name: image.to_string(), lsu: lsu.to_string() })
    }

    /// Images of an LSU whose names start with `prefix`.
    pub fn images(&self, lsu: &str, prefix: &str) -> Result<Vec<sts_image_info_t>> {
        fits("image prefix", prefix, STS_MAX_IMAGENAME)?;
        let l = self.lsu(lsu)?;
        self.p().images(&l, prefix).with_context(|| format!("listing images of LSU '{lsu}'"))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Every Image borrows the session, so none is open here and the close cannot be
        // refused as busy.
        let _ = self.loaded.plugin.close_server(self.handle);
    }
}

/// An open image handle. Dropped without [`Image::close`] (an error path), it is closed
/// incomplete: a write handle keeps what is committed for a restart, never half-complete.
pub struct Image<'a> {
    s: &'a Session,
    h: Option<stsp_image_handle_t>,
    pub name: String,
    pub lsu: String,
}

impl Image<'_> {
    pub(crate) fn handle(&self) -> stsp_image_handle_t {
        self.h.expect("image handle used after close")
    }

    fn what(&self) -> String {
        format!("image '{}' in LSU '{}'", self.name, self.lsu)
    }

    /// Write all of `buf` at `off`.
    pub fn write(&self, buf: &[u8], off: u64) -> Result<()> {
        let n = self
            .s
            .p()
            .write(self.handle(), buf, off)
            .with_context(|| format!("writing {} bytes at offset {off} of {}", buf.len(), self.what()))?;
        if n != buf.len() as u64 {
            bail!(
                "writing {} bytes at offset {off} of {}: the plug-in reported {n} bytes written (contract: all or an error)",
                buf.len(),
                self.what()
            );
        }
        Ok(())
    }

    /// Read up to `buf.len()` bytes at `off`; 0 at the end.
    pub fn read(&self, buf: &mut [u8], off: u64) -> Result<usize> {
        let len = buf.len();
        let n = self
            .s
            .p()
            .read(self.handle(), buf, off)
            .with_context(|| format!("reading {len} bytes at offset {off} of {}", self.what()))?;
        if n > len {
            bail!(
                "reading at offset {off} of {}: the plug-in reported {n} bytes read into a {len}-byte buffer",
                self.what()
            );
        }
        Ok(n)
    }

    pub fn info(&self) -> Result<sts_image_info_t> {
        self.s
            .p()
            .image_prop(self.handle())
            .with_context(|| format!("reading properties of open {}", self.what()))
    }

    /// Close: `complete` finishes a written image (durable, listed as created).
    pub fn close(mut self, complete: bool) -> Result<()> {
        let h = self.h.take().expect("image closed twice");
        let flags = if complete { STS_CLOSEF_IH_COMPLETE } else { STS_CLOSEF_IH_INCOMPLETE };
        let how = if complete { "complete" } else { "incomplete" };
        self.s.p().close_image(h, flags).with_context(|| format!("closing {} {how}", self.what()))
    }
}

impl Drop for Image<'_> {
    fn drop(&mut self) {
        if let Some(h) = self.h.take() {
            let _ = self.s.p().close_image(h, STS_CLOSEF_IH_INCOMPLETE);
        }
    }
}

/// An image definition, refusing strings the C struct would cut short.
pub fn def(basename: &str, date: &str, policy: &str) -> Result<sts_image_def_t> {
    fits("image name", basename, STS_MAX_IMAGENAME)?;
    fits("image date", date, STS_MAX_DATE)?;
    fits("policy name", policy, STS_MAX_POLICY)?;
    Ok(image_def(basename, date, policy))
}

/// `vast-ost-host` truncates strings to fit the C arrays: refuse instead, so the plug-in never
/// acts on a name nobody typed.
fn fits(what: &str, s: &str, size: usize) -> Result<()> {
    if s.len() >= size {
        bail!("{what} is {} bytes; the OST interface allows at most {}", s.len(), size - 1);
    }
    Ok(())
}

/// The config file the plug-in will read, found as it finds it.
pub fn config_path(plugin: &Path) -> PathBuf {
    vast_ost_engine::config::config_path(plugin.parent())
}

/// Where the plug-in writes its log, worked out as it does (`$VAST_OST_LOG`, else `[log] path`
/// of the config, else the NetBackup default), and `/tmp/vast-ost.log` when that is not
/// writable. A hint for error messages, so best effort: a config that does not parse counts
/// as empty.
pub fn log_path(plugin: &Path) -> String {
    let cfg = vast_ost_engine::config::Config::load(&config_path(plugin)).unwrap_or_default();
    let path = cfg.log_path();
    let writable = std::fs::OpenOptions::new().append(true).open(&path).is_ok();
    if writable || !Path::new(FALLBACK_LOG).exists() {
        path.display().to_string()
    } else {
        format!("{} (or {FALLBACK_LOG} if that cannot be written)", path.display())
    }
}

/// The plug-in status somewhere in an error's causes, if any.
pub fn status_of(e: &anyhow::Error) -> Option<Status> {
    e.chain().find_map(|c| c.downcast_ref::<Status>().copied())
}

/// Names for the `STS_II_*` bits.
pub const IMAGE_FLAGS: &[(u64, &str)] = &[
    (STS_II_IMAGE_PENDING as u64, "PENDING"),
    (STS_II_IMAGE_CREATED as u64, "CREATED"),
    (STS_II_BUSY_WRITE as u64, "BUSY_WRITE"),
    (STS_II_BUSY_READ as u64, "BUSY_READ"),
    (STS_II_FILES_PENDING as u64, "FILES_PENDING"),
    (STS_II_FILES_CREATED as u64, "FILES_CREATED"),
];

/// One word for an image's state, as `image-list` shows it.
pub fn image_state(flags: u32) -> String {
    let mut s = if flags & STS_II_IMAGE_CREATED != 0 {
        "complete".to_string()
    } else if flags & STS_II_IMAGE_PENDING != 0 {
        "pending".to_string()
    } else {
        format!("unknown(0x{flags:x})")
    };
    if flags & STS_II_BUSY_WRITE != 0 {
        s.push_str(",writing");
    }
    if flags & STS_II_BUSY_READ != 0 {
        s.push_str(",reading");
    }
    s
}
