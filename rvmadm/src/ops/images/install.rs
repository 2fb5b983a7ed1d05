//! `imgadm install -m <manifest> -f <file> [-P pool]`: install an image
//! from local files, as an import does from a source (the same checks of
//! the manifest, the file's size and SHA-1, and the received snapshot), for
//! hosts that cannot reach an image server. A manifest without
//! `published_at` gets the current time, as in SmartOS.

use crate::image::error::{Code, ImgError, Result};
use crate::image::import::{install_file, ImportReport};
use crate::ops::Ctx;
use serde_json::Value;
use std::path::Path;

/// Installs the image `manifest_path` describes from `file` on `pool`
/// (default: the configured one).
pub fn install(
    ctx: &Ctx,
    manifest_path: &Path,
    file: &Path,
    pool: Option<&str>,
    report: &mut dyn ImportReport,
) -> Result<()> {
    let pool = pool.unwrap_or(&ctx.config.pool);
    if !crate::zfs::valid_name(pool) || pool.contains(['/', '@']) {
        return Err(ImgError::usage(format!("invalid pool name \"{pool}\"")));
    }
    if !manifest_path.exists() {
        return Err(ImgError::usage(format!(
            "manifest path does not exist: \"{}\"",
            manifest_path.display()
        )));
    }
    if !file.exists() {
        return Err(ImgError::usage(format!(
            "file path does not exist: \"{}\"",
            file.display()
        )));
    }
    let invalid =
        |e: String| ImgError::new(Code::InvalidManifest, format!("manifest is invalid: {e}"));
    let text = std::fs::read(manifest_path)
        .map_err(|e| ImgError::fs(&format!("cannot read {}", manifest_path.display()), e))?;
    let mut manifest: Value = serde_json::from_slice(&text).map_err(|e| invalid(e.to_string()))?;
    let Some(m) = manifest.as_object_mut() else {
        return Err(invalid("not a JSON object".into()));
    };
    if !m.contains_key("published_at") {
        let now = crate::store::iso_time(std::time::SystemTime::now());
        m.insert("published_at".into(), Value::from(now));
    }
    install_file(
        &ctx.config,
        &ctx.store,
        &ctx.zfs(),
        manifest,
        file,
        pool,
        report,
    )
}
