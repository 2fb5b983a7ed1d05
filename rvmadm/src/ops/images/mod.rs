//! The image verbs — `imgadm …`, which `vmadm images …` is too — one file
//! per verb beside the VM verbs: they run in the same [`Ctx`](super::Ctx),
//! take the same store locks (the global one for import and delete, a VM's
//! own for create) and ask the same driver. They return data; the binaries
//! render it. Their one error type is [`ImgError`](crate::image::ImgError),
//! whose code is part of imgadm's interface.

pub mod ancestry;
pub mod avail;
pub mod build;
pub mod create;
pub mod delete;
pub mod get;
pub mod import;
pub mod install;
pub mod list;
pub mod open;
pub mod publish;
pub mod show;
pub mod sources;
pub mod update;
pub mod vacuum;

pub use list::Listed;
pub use open::open;
