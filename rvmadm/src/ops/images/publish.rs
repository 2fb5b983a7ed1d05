//! `imgadm publish -m manifest -f file <url>`: upload an image to an IMGAPI
//! server and activate it. Nothing local changes, so no lock; the protocol
//! is `image::publish`.

use crate::image::error::Result;
use crate::image::publish::{self as pipeline, Published};
use std::path::Path;

/// Publishes; a failed roll-back after a failed upload goes to `warn`.
pub fn publish(
    manifest: &Path,
    file: &Path,
    url: &str,
    warn: &mut dyn FnMut(String),
) -> Result<Published> {
    pipeline::publish(manifest, file, url, warn)
}
