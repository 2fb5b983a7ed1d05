//! HTTP routes of the IMGAPI and DSAPI, split by resource the way
//! firecracker splits its API requests: `dispatch` reads the method and path
//! into one `Route` and is the one place routes run; each resource's file
//! parses its own parameters and answers (`images`, `actions`, `files`,
//! `uploads`, `dsapi`, `service`), on top of shared request reading
//! (`request`, `query`) and response building (`respond`).

mod actions;
mod dispatch;
mod dsapi;
mod files;
#[doc(hidden)]
pub mod fuzzing;
mod images;
mod query;
mod request;
mod respond;
mod service;
mod uploads;

pub use dispatch::{handle, App};
