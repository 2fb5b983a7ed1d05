//! `imgadm get <uuid>`: one installed image (manifest, zpool, source,
//! clones); not installed is `ImageNotInstalled` (exit 3).

use crate::image::error::{parse_uuid, ImgError, Result};
use crate::image::records::{find_installed, Installed};
use crate::ops::Ctx;

/// The image `uuid_arg` on `pool` (default: the configured one).
pub fn get(ctx: &Ctx, uuid_arg: &str, pool: Option<&str>) -> Result<Installed> {
    let uuid = parse_uuid(uuid_arg)?;
    let pool = pool.unwrap_or(&ctx.config.pool);
    find_installed(&ctx.config, &ctx.store, &ctx.zfs(), pool, &uuid)?
        .ok_or_else(|| ImgError::not_installed(&uuid, pool))
}
