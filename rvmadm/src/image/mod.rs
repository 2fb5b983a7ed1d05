//! Images (datasets): manifests, sources, import, build, publish.
