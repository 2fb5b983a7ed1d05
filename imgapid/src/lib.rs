//! imgapid: an IMGAPI- and DSAPI-compatible image (dataset) server.
//!
//! [`server`] accepts connections, `routes` answers them from the
//! `catalog`, which keeps an in-memory index over durable [`store`]s.
//! Manifests and the image filter engine come from the small shared
//! `rvmadm-manifest` crate, so the server never builds the CLI crate.

pub mod config;
pub mod server;
pub mod store;

mod auth;
mod body;
mod catalog;
mod conn;
mod error;
mod html;
mod metrics;
mod routes;

#[doc(hidden)]
pub use routes::fuzzing;
