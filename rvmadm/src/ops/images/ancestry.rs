//! `imgadm ancestry <uuid>`: an installed image and its origins, child
//! first, as far as the origin chain goes. Every image on the way must be
//! installed (an incremental image cannot be used without them), so a
//! missing one is `ImageNotInstalled` for that origin, as in SmartOS.

use crate::image::error::{parse_uuid, Code, ImgError, Result};
use crate::image::records::{installed_images, Installed};
use crate::ops::Ctx;
use serde_json::Value;

/// Origin chains longer than this are refused as broken records (SmartOS
/// refuses to create images deeper than this).
const MAX_DEPTH: usize = 100;

/// The chain from image `uuid_arg` on `pool` (default: the configured one)
/// to its root.
pub fn ancestry(ctx: &Ctx, uuid_arg: &str, pool: Option<&str>) -> Result<Vec<Installed>> {
    let mut next = Some(parse_uuid(uuid_arg)?);
    let pool = pool.unwrap_or(&ctx.config.pool);
    let mut images = installed_images(&ctx.config, &ctx.store, &ctx.zfs(), pool)?;
    let mut chain: Vec<Installed> = Vec::new();
    while let Some(uuid) = next {
        if chain.len() >= MAX_DEPTH || chain.iter().any(|i| i.uuid == uuid) {
            return Err(ImgError::new(
                Code::InvalidManifest,
                format!(
                    "the origin chain of image \"{uuid_arg}\" loops or is deeper than {MAX_DEPTH}"
                ),
            ));
        }
        let at = images
            .iter()
            .position(|i| i.uuid == uuid)
            .ok_or_else(|| ImgError::not_installed(&uuid, pool))?;
        let img = images.swap_remove(at);
        next = img
            .manifest()
            .get("origin")
            .and_then(Value::as_str)
            .map(parse_uuid)
            .transpose()?;
        chain.push(img);
    }
    Ok(chain)
}
