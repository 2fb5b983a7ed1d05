//! What `imgadm` (in the `rvmadm` crate) and the `imgapid` server share: the
//! IMGAPI v2 manifest types and their validation (`manifest`), the legacy
//! DSAPI form of a manifest (`dsapi`), and the one image filter engine
//! ([`filter`]). It depends only on serde, uuid and chrono, so the server
//! never builds the command line's dependencies.

mod dsapi;
pub mod filter;
mod manifest;

pub use manifest::{
    file_name_safe, is_valid_name, is_valid_published_at, is_valid_sha1, is_valid_version,
    now_published_at, Compression, FieldError, ImageFile, ImageOs, ImageState, ImageType, Manifest,
    ValidationError, MAX_FILE_SIZE, MAX_NAME_LEN, MAX_VERSION_LEN, NIL_OWNER,
};
