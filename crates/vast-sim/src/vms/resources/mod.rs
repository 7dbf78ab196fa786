//! The VMS resources, one module each (or a small related group). Stored collections go
//! through [`collection`], which calls each resource's `create` / `patch` rules; the other
//! endpoints are called straight from the router's dispatch table.

pub mod apitokens;
pub mod capacity;
pub mod cluster;
pub mod collection;
pub mod folders;
pub mod quotas;
pub mod s3keys;
pub mod snapshots;
pub mod tenants;
pub mod token;
pub mod users;
pub mod viewpolicies;
pub mod views;
pub mod vippools;
