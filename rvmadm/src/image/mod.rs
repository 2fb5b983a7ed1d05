//! Images (datasets): the domain parts behind the image verbs.
//!
//! One file per concern: `manifest` (IMGAPI v2 types), `records` (installed
//! images and their db records), `sources` + `http` (remote lookups),
//! `import` (the verified streaming pipeline), `failover` (moving on to the
//! next source when one fails mid-import), `build` (image from a tree or
//! tarball), `create` (image from a VM's dataset), `pack` (snapshot →
//! compressed file), `publish` (the IMGAPI upload protocol), `table` (rows,
//! filters, sorting and the text table), `compress`, `interrupt`, `error`.
//! The verbs themselves (locks, the VM store, the driver) are in
//! `ops::images`; the `imgadm` command line is in `src/bin`.
pub mod build;
pub(crate) mod compress;
pub mod create;
pub mod error;
pub(crate) mod failover;
pub(crate) mod http;
pub mod import;
pub mod interrupt;
pub mod manifest;
pub(crate) mod pack;
pub mod publish;
pub mod records;
// Public (hidden) for the fuzz targets in fuzz/, which feed it what a
// source may answer.
#[doc(hidden)]
pub mod sources;
pub mod table;

pub use error::{Code, ImgError};
