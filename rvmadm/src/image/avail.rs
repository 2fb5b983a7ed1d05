//! `imgadm avail` and `imgadm show`: what the sources offer.
//!
//! `avail` merges all sources (the first source listing a uuid wins) and keeps
//! going when one source fails, warning on stderr, as imgadm does.

use super::error::{parse_uuid, Code, ImgError, Result};
use super::http::Client;
use super::list::ListOpts;
use super::sources;
use super::table;
use crate::config::Config;
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::Write;

/// `imgadm avail`.
pub fn avail(cfg: &Config, opts: &ListOpts, out: &mut dyn Write) -> Result<()> {
    let filters = table::parse_filters(&opts.filters)?;
    if cfg.sources.is_empty() {
        return Err(sources::no_sources());
    }
    let client = Client::new();
    let mut seen = BTreeSet::new();
    let mut rows = Vec::new();
    let mut infos = Vec::new();
    let mut failures = 0;
    for src in &cfg.sources {
        let list = match sources::list(&client, src) {
            Ok(l) => l,
            Err(e) => {
                failures += 1;
                eprintln!("imgadm avail: warning: source {}: {}", src.url, e.message);
                continue;
            }
        };
        for m in list {
            let Some(uuid) = m.get("uuid").and_then(Value::as_str).map(str::to_string) else {
                continue;
            };
            if !seen.insert(uuid) {
                continue;
            }
            let row = table::make_row(&m, Some(&src.url), None, None);
            if filters.iter().all(|f| f.matches(&row)) {
                infos.push(serde_json::json!({"manifest": m, "source": src.url}));
                rows.push(row);
            }
        }
    }
    if failures == cfg.sources.len() {
        return Err(ImgError::new(
            Code::SourcePing,
            "no image source could be reached",
        ));
    }
    let w = |out: &mut dyn Write, t: String| {
        out.write_all(t.as_bytes())
            .map_err(|e| ImgError::fs("cannot write output", e))
    };
    if opts.json {
        return w(
            out,
            format!(
                "{}\n",
                serde_json::to_string_pretty(&infos).unwrap_or_default()
            ),
        );
    }
    table::sort_rows(
        &mut rows,
        opts.sort.as_deref().unwrap_or(table::DEFAULT_SORT),
    );
    let cols = opts.columns.as_deref().unwrap_or(table::DEFAULT_COLUMNS);
    w(out, table::render(&rows, cols, !opts.no_header))
}

/// `imgadm show <uuid>`: the manifest from the first source that has it.
pub fn show(cfg: &Config, uuid_arg: &str, out: &mut dyn Write) -> Result<()> {
    let uuid = parse_uuid(uuid_arg)?;
    let client = Client::new();
    let remote = sources::find(&client, &cfg.sources, &uuid)?.ok_or_else(|| {
        ImgError::new(
            Code::ImageNotFound,
            format!("image {uuid} was not found in any source"),
        )
    })?;
    writeln!(
        out,
        "{}",
        serde_json::to_string_pretty(&remote.manifest).unwrap_or_default()
    )
    .map_err(|e| ImgError::fs("cannot write output", e))
}
