//! `imgadm import <uuid>`: install an image and its missing origins from the
//! sources, under the global lock (an import creates datasets the way
//! `vmadm create` does, and `vmadm create` must never clone a half-imported
//! image). The pipeline itself is `image::import`; it reports through the
//! caller's [`ImportReport`].

use crate::config::Source;
use crate::image::error::{parse_uuid, ImgError, Result};
use crate::image::import::{self as pipeline, ImportReport};
use crate::ops::Ctx;

/// Imports `uuid_arg` into `pool` (default: the configured one) from
/// `sources` (`-S`: IMGAPI URLs used instead of the configured sources).
pub fn import(
    ctx: &Ctx,
    uuid_arg: &str,
    pool: Option<&str>,
    sources: &[String],
    report: &mut dyn ImportReport,
) -> Result<()> {
    let uuid = parse_uuid(uuid_arg)?;
    let pool = pool.unwrap_or(&ctx.config.pool);
    if !crate::zfs::valid_name(pool) || pool.contains(['/', '@']) {
        return Err(ImgError::usage(format!("invalid pool name \"{pool}\"")));
    }
    let given: Vec<Source> = sources
        .iter()
        .map(|url| Source {
            url: url.clone(),
            kind: "imgapi".into(),
        })
        .collect();
    let sources_list = if given.is_empty() {
        &ctx.config.sources
    } else {
        &given
    };
    let _global = ctx.store.lock_global()?;
    pipeline::import(
        &ctx.config,
        &ctx.store,
        &ctx.zfs(),
        uuid,
        pool,
        sources_list,
        report,
    )
}
