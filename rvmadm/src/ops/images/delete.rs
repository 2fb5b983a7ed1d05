//! `imgadm delete <uuid>`: remove an installed image and its record.
//!
//! Refused while any dataset (a VM or a child image) is cloned from it. The
//! UUID is strict: a glob or prefix is an error, never a way to match every
//! image. Runs under the global lock, so no `vmadm create` can clone the
//! image while it goes.

use crate::image::error::{parse_uuid, Code, ImgError, Result};
use crate::image::records::{self, find_installed};
use crate::ops::Ctx;
use uuid::Uuid;

/// Deletes image `uuid_arg` from `pool` (default: the configured one) and
/// returns its uuid.
pub fn delete(ctx: &Ctx, uuid_arg: &str, pool: Option<&str>) -> Result<Uuid> {
    let uuid = parse_uuid(uuid_arg)?;
    let pool = pool.unwrap_or(&ctx.config.pool);
    let _global = ctx.store.lock_global()?;
    let zfs = ctx.zfs();
    let img = find_installed(&ctx.config, &ctx.store, &zfs, pool, &uuid)?
        .ok_or_else(|| ImgError::not_installed(&uuid, pool))?;
    if let Some(first) = img.clones.first() {
        let more = match img.clones.len() {
            1 => String::new(),
            n => format!(" and {} others...", n - 1),
        };
        return Err(ImgError::new(
            Code::ImageHasDependentClones,
            format!("image \"{uuid}\" has dependent clones: {first}{more}"),
        ));
    }
    zfs.destroy(&img.dataset, true)?;
    records::remove_record(&ctx.config, pool, &uuid)?;
    Ok(uuid)
}
