//! vast-ost engine: everything the plug-in does, in safe Rust.
//!
//! Modules, from the bottom up (each uses only those above it; `tests/layering.rs` fails if a
//! cycle comes back). `docs/architecture.md` has the whole map.
//! - [`error`]: the one error type (with the remote server's answer) and its one mapping to
//!   OST status codes; [`names`]: checks on names before they touch storage; [`util`];
//!   [`version`]: which build this is.
//! - [`credentials`], [`filter`], [`layout`], [`retry`], [`http`], [`log`]: leaves — what
//!   tpconfig hands over, which LSUs a server offers, where an image's records live, the retry
//!   policy, the one HTTP stack (rustls), the plug-in log.
//! - [`manifest`]: the versioned image record (extent map over immutable pieces).
//! - [`store`]: data-path backends behind [`store::PieceStore`], each a folder owning its
//!   settings: [`store::nfs`], [`store::s3`].
//! - [`vms`]: the VAST management API client and its typed records.
//! - [`control`]: what the plug-in reads from VMS (cluster, views as LSUs, capacity, VIPs).
//! - [`image`]: images over any store: writers, readers, list, copy, delete, orphans.
//! - [`config`]: the TOML configuration, aggregating each room's settings.
//! - [`server`]: the model the C layer drives: engine, servers, LSUs, open images, cursors.
//! - [`replication`]: A.I.R.: background image-set copies to another cluster with their job
//!   records on the source storage, and the event journal on the target storage.
#![forbid(unsafe_code)]

pub mod config;
pub mod control;
pub mod credentials;
pub mod error;
pub mod filter;
pub mod http;
pub mod image;
pub mod layout;
pub mod log;
pub mod manifest;
pub mod names;
pub mod plant;
pub mod replication;
pub mod retry;
pub mod server;
pub mod store;
pub mod util;
pub mod version;
pub mod vms;

pub use credentials::{Credentials, Secret};
pub use error::{Error, ErrorKind, Result};
pub use manifest::ImageDef;
pub use server::{Cursor, Engine, ImageInfo, LsuInfo, OpenImage, Server, ServerInfo};
