//! `imgadm avail`: the images the sources offer, merged (the first source
//! listing a uuid wins) and filtered. A source that fails is reported to
//! `warn` and skipped, as imgadm does; only when every source fails is it
//! an error.

use super::list::Listed;
use crate::image::error::{Code, ImgError, Result};
use crate::image::http::Client;
use crate::image::sources;
use crate::image::table;
use crate::ops::Ctx;
use serde_json::Value;
use std::collections::BTreeSet;

/// Every image of the configured sources matching the filters, in source
/// order; each `info` is `{manifest, source}`.
pub fn avail(ctx: &Ctx, filters: &[String], warn: &mut dyn FnMut(String)) -> Result<Vec<Listed>> {
    let filters = table::parse_filters(filters)?;
    let cfg = &ctx.config;
    if cfg.sources.is_empty() {
        return Err(sources::no_sources());
    }
    let client = Client::new();
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    let mut failures = 0;
    for src in &cfg.sources {
        let list = match sources::list(&client, src) {
            Ok(l) => l,
            Err(e) => {
                failures += 1;
                warn(format!("source {}: {}", src.url, e.message));
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
                out.push(Listed {
                    row,
                    info: serde_json::json!({"manifest": m, "source": src.url}),
                });
            }
        }
    }
    if failures == cfg.sources.len() {
        return Err(ImgError::new(
            Code::SourcePing,
            "no image source could be reached",
        ));
    }
    Ok(out)
}
