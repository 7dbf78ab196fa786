//! vast-ost engine: everything the plug-in does, in safe Rust.
//!
//! Rooms:
//! - [`error`]: the one error type and its mapping to OST status codes.
//! - [`names`]: checks on server, LSU and image names before they touch storage.
//! - [`config`], [`log`]: the TOML configuration and the plug-in log.
//! - [`manifest`]: the versioned image record (extent map over immutable pieces).
//! - [`store`]: data-path backends behind the [`store::PieceStore`] trait (NFS now).
//! - [`http`], [`retry`]: the one HTTP stack (rustls) and retry policy for remote calls.
//! - [`vms`], [`control`]: the VAST management API client, and what the plug-in reads from it
//!   (cluster, views as LSUs, capacity, VIPs).
//! - [`image`]: images over any store: writers, readers, list, copy, delete.
//! - [`server`]: the model the C layer drives: engine, servers, LSUs, open images, cursors.
#![forbid(unsafe_code)]

pub mod config;
pub mod control;
pub mod error;
pub mod http;
pub mod image;
pub mod log;
pub mod manifest;
pub mod names;
pub mod retry;
pub mod server;
pub mod store;
pub mod util;
pub mod vms;

pub use error::{Error, ErrorKind, Result};
pub use manifest::ImageDef;
pub use server::{Credentials, Cursor, Engine, ImageInfo, LsuInfo, OpenImage, Secret, Server, ServerInfo};
