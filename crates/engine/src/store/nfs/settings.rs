//! `[server.nfs]`: where VAST is mounted on this media server and how pieces are written.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NfsSettings {
    pub mount: PathBuf,
    /// The VAST path mounted at `mount` (with `[server.vms]`: view paths are found below it).
    #[serde(default = "default_view_root")]
    pub view_root: String,
    #[serde(default)]
    pub direct_io: DirectIo,
    /// Size of each O_DIRECT write: appends are staged into aligned buffers of this size.
    /// Default 1 MiB (the key's name is from when it was a threshold on the caller's writes).
    #[serde(default = "default_direct_io_min")]
    pub direct_io_min: u64,
}

fn default_view_root() -> String {
    "/".into()
}

fn default_direct_io_min() -> u64 {
    1 << 20
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DirectIo {
    /// O_DIRECT (staged, written behind) when the file system takes it, else buffered.
    #[default]
    Auto,
    /// O_DIRECT or a failed write.
    Always,
    /// Every append one buffered `pwrite`.
    Never,
}
