//! IMGAPI v2 image manifests. The types live in the small `rvmadm-manifest`
//! crate, shared with `imgapid` so the server does not build this crate's
//! dependencies; this module keeps `crate::image::manifest` the one path the
//! rest of rvmadm imports them from.

pub use rvmadm_manifest::*;
