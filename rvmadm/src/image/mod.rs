//! Images (datasets): manifests, sources, import, build, publish.
pub mod manifest;
