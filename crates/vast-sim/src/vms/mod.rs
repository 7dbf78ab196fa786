//! The VMS management REST API (reference §1–§7, §12 items 1–5) and the simulator's own admin
//! endpoint `/_sim/faults`.
//!
//! - [`router`] — version segments, trailing slashes, tenant header, authentication, dispatch
//! - [`request`] / [`response`] — one request as handlers see it; status + JSON answers
//! - [`schema`] — typed writable fields per resource, immutable fields
//! - [`list`] — DRF filters, projection and pagination
//! - [`state`] / [`render`] — the stored object model; derived fields added at read time
//! - [`resources`] — one module per resource (or small group)
//! - [`admin`] — `/_sim/faults`

mod admin;
mod list;
mod render;
mod request;
mod resources;
mod response;
mod router;
mod schema;
pub mod state;

pub use resources::views::valid_bucket_name;
pub use router::handle;
