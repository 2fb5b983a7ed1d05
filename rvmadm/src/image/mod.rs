//! Images (datasets): manifests, sources, import, build, publish.
//!
//! One file per concern: `manifest` (IMGAPI v2 types), `records` (installed
//! images and their db records), `sources` + `http` (remote lookups),
//! `import` (the verified streaming pipeline), `list` (list/get/delete),
//! `avail` (avail/show), `build` (image from a tree or tarball), `create`
//! (image from a VM), `pack` (snapshot → compressed file), `publish`,
//! `table` (filters and formatting), `compress`, `interrupt`, `error`, and
//! `cli` (the `imgadm` command line, also used by `vmadm images`).
pub mod avail;
pub mod build;
pub mod cli;
pub mod compress;
pub mod create;
pub mod error;
pub mod http;
pub mod import;
pub mod interrupt;
pub mod list;
pub mod manifest;
pub mod pack;
pub mod publish;
pub mod records;
pub mod sources;
pub mod table;

pub use error::{Code, ImgError};
