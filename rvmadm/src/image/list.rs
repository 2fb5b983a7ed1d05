//! `imgadm list`, `get` and `delete`: installed images on a pool.
//!
//! Delete refuses while any dataset (a VM or a child image) is cloned from the
//! image, and takes a strict UUID: a glob or prefix is an error, never a way
//! to match every image.

use super::error::{parse_uuid, Code, ImgError, Result};
use super::records::{self, find_installed, installed_images};
use super::table::{self, Filter};
use crate::config::Config;
use crate::exec::CommandRunner;
use crate::zfs::Zfs;
use serde_json::Value;
use std::io::Write;

/// Output options shared by `list` and `avail`.
#[derive(Debug, Clone, Default)]
pub struct ListOpts {
    pub json: bool,
    pub no_header: bool,
    pub columns: Option<String>,
    pub sort: Option<String>,
    pub filters: Vec<String>,
    pub pool: Option<String>,
}

fn write_out(out: &mut dyn Write, text: &str) -> Result<()> {
    out.write_all(text.as_bytes())
        .map_err(|e| ImgError::fs("cannot write output", e))
}

/// `imgadm list`.
pub fn list(
    cfg: &Config,
    runner: &dyn CommandRunner,
    opts: &ListOpts,
    out: &mut dyn Write,
) -> Result<()> {
    let filters: Vec<Filter> = table::parse_filters(&opts.filters)?;
    let pool = opts.pool.as_deref().unwrap_or(&cfg.pool);
    let zfs = Zfs::new(runner);
    let images = installed_images(cfg, &zfs, pool)?;
    let mut rows = Vec::new();
    let mut infos = Vec::new();
    for img in &images {
        let row = table::make_row(
            &img.manifest(),
            img.source(),
            Some(pool),
            Some(img.clones.len()),
        );
        if filters.iter().all(|f| f.matches(&row)) {
            infos.push((row.clone(), img.info_json()));
            rows.push(row);
        }
    }
    let sort = opts.sort.as_deref().unwrap_or(table::DEFAULT_SORT);
    if opts.json {
        // Sort the info objects in the same order as the rows would be.
        let mut keyed: Vec<_> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mut r = r.clone();
                r.insert("\u{0}index".into(), Value::from(i));
                r
            })
            .collect();
        table::sort_rows(&mut keyed, sort);
        let arr: Vec<Value> = keyed
            .iter()
            .filter_map(|r| r.get("\u{0}index").and_then(Value::as_u64))
            .filter_map(|i| infos.get(i as usize).map(|(_, info)| info.clone()))
            .collect();
        return write_out(
            out,
            &format!(
                "{}\n",
                serde_json::to_string_pretty(&arr).unwrap_or_default()
            ),
        );
    }
    table::sort_rows(&mut rows, sort);
    let cols = opts.columns.as_deref().unwrap_or(table::DEFAULT_COLUMNS);
    write_out(out, &table::render(&rows, cols, !opts.no_header))
}

/// `imgadm get <uuid>`: `{manifest, zpool, source, clones, cloneNames}`.
pub fn get(
    cfg: &Config,
    runner: &dyn CommandRunner,
    uuid_arg: &str,
    pool: Option<&str>,
    out: &mut dyn Write,
) -> Result<()> {
    let uuid = parse_uuid(uuid_arg)?;
    let pool = pool.unwrap_or(&cfg.pool);
    let zfs = Zfs::new(runner);
    let img = find_installed(cfg, &zfs, pool, &uuid)?
        .ok_or_else(|| ImgError::not_installed(&uuid, pool))?;
    write_out(
        out,
        &format!(
            "{}\n",
            serde_json::to_string_pretty(&img.info_json()).unwrap_or_default()
        ),
    )
}

/// `imgadm delete <uuid>`.
pub fn delete(
    cfg: &Config,
    runner: &dyn CommandRunner,
    uuid_arg: &str,
    pool: Option<&str>,
    out: &mut dyn Write,
) -> Result<()> {
    let uuid = parse_uuid(uuid_arg)?;
    let pool = pool.unwrap_or(&cfg.pool);
    let zfs = Zfs::new(runner);
    let img = find_installed(cfg, &zfs, pool, &uuid)?
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
    records::remove_record(cfg, pool, &uuid)?;
    write_out(out, &format!("Deleted image {uuid}\n"))
}
