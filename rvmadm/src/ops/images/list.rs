//! `imgadm list`: the images installed on a pool that pass the filters,
//! each as a table row and as the `{manifest, zpool, source, clones,
//! cloneNames}` object of `-j`. Sorting and columns are the renderer's.

use crate::image::error::Result;
use crate::image::records::installed_images;
use crate::image::table::{self, Filter};
use crate::ops::Ctx;
use serde_json::{Map, Value};

/// One image as `list` and `avail` show it.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    /// The manifest plus computed fields, for columns, filters and sorting.
    pub row: Map<String, Value>,
    /// The object `-j` prints for it.
    pub info: Value,
}

/// Installed images on `pool` (default: the configured one) matching every
/// `field=value` / `field=~substr` filter, in pool order. A malformed filter
/// is a usage error, found before any ZFS query.
pub fn list(ctx: &Ctx, filters: &[String], pool: Option<&str>) -> Result<Vec<Listed>> {
    let filters: Vec<Filter> = table::parse_filters(filters)?;
    let pool = pool.unwrap_or(&ctx.config.pool);
    let images = installed_images(&ctx.config, &ctx.store, &ctx.zfs(), pool)?;
    let mut out = Vec::new();
    for img in &images {
        let row = table::make_row(
            &img.manifest(),
            img.source(),
            Some(pool),
            Some(img.clones.len()),
        );
        if filters.iter().all(|f| f.matches(&row)) {
            out.push(Listed {
                row,
                info: img.info_json(),
            });
        }
    }
    Ok(out)
}
