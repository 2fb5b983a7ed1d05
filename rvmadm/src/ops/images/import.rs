//! `imgadm import <uuid>`: install an image and its missing origins from the
//! sources. The pipeline itself is `image::import`; it locks each image it
//! installs (not the global lock: a long download must not hold up
//! `vmadm create`, and a half-received image is never cloned because it only
//! gets its name after verification). It reports through the caller's
//! [`ImportReport`].

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
