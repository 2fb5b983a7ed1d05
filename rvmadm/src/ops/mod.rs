//! One module per verb, plus the shared context, errors, views and the
//! list/lookup query language; the image verbs are under [`images`]. The
//! binaries call only into here.

pub mod autoboot;
pub mod bundle;
pub mod console;
pub mod context;
pub mod create;
pub mod delete;
pub mod error;
pub mod events;
pub mod get;
pub mod images;
pub mod kill;
mod lifecycle;
pub mod list;
pub mod query;
pub mod reboot;
pub mod receive;
pub mod reprovision;
pub mod send;
pub mod snapshot;
pub mod start;
pub mod stop;
#[cfg(test)]
mod testing;
pub mod update;
pub mod validate;
pub mod view;

pub use context::Ctx;
pub use error::{parse_uuid, OpsError, OpsResult};
