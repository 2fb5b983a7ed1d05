//! `imgadm update [-n] [UUID...]`: refresh installed images' manifests from
//! the configured sources.
//!
//! For each image (all installed ones, or those named) the sources are asked
//! for its manifest, in order; a changed manifest replaces the one in the
//! image's record, which then names the source it came from. The dataset's
//! data is never downloaded again. The one ZFS change is SmartOS's: an image
//! without an `@final` snapshot gets its original snapshot (found by the
//! manifest's `files[0].dataset_guid`) renamed to `@final`.
//!
//! An image no source has is skipped with SmartOS's warning. A source that
//! fails to answer, or answers with a manifest that does not pass import's
//! checks, fails that image clearly and leaves its record alone; the other
//! images are still updated (SmartOS stops at the first failure) and the
//! failures are reported together at the end.

use crate::image::error::{parse_uuid, Code, ImgError, Result};
use crate::image::http::Client;
use crate::image::import::check_remote;
use crate::image::records::{self, installed_images, Installed, Record};
use crate::image::sources;
use crate::ops::Ctx;
use serde_json::{Map, Value};

/// What `update` was asked for.
#[derive(Debug, Clone, Default)]
pub struct UpdateOptions {
    /// The images to update (all installed ones when empty).
    pub uuids: Vec<String>,
    /// `-n`: report what would change, change nothing.
    pub dry_run: bool,
}

/// The names of the manifest fields that differ between `have` and `new`,
/// in imgadm's order: the new manifest's fields first, then fields only
/// `have` has, then `requirements.<key>` differences.
pub fn diff_fields(have: &Map<String, Value>, new: &Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in new {
        if k == "requirements" {
            // imgadm compares requirements key by key below.
            if !have.contains_key(k) {
                out.push(k.clone());
            }
        } else if have.get(k) != Some(v) {
            out.push(k.clone());
        }
    }
    for k in have.keys() {
        if !new.contains_key(k) {
            out.push(k.clone());
        }
    }
    let reqs = |m: &Map<String, Value>| m.get("requirements").and_then(Value::as_object).cloned();
    if let (Some(h), Some(n)) = (reqs(have), reqs(new)) {
        for (k, v) in &n {
            if h.get(k) != Some(v) {
                out.push(format!("requirements.{k}"));
            }
        }
        for k in h.keys() {
            if !n.contains_key(k) {
                out.push(format!("requirements.{k}"));
            }
        }
    }
    out
}

/// Updates the images `opts` names on the configured pool. Progress lines
/// (SmartOS's texts: `Updated 2 manifest fields for image …`, the
/// not-found warning, a snapshot rename) go to `say` as they happen.
pub fn update(ctx: &Ctx, opts: &UpdateOptions, say: &mut dyn FnMut(String)) -> Result<()> {
    let pool = ctx.config.pool.clone();
    let zfs = ctx.zfs();
    let wanted = opts
        .uuids
        .iter()
        .map(|u| parse_uuid(u))
        .collect::<Result<Vec<_>>>()?;
    let installed = installed_images(&ctx.config, &ctx.store, &zfs, &pool)?;
    let images: Vec<&Installed> = if wanted.is_empty() {
        installed.iter().collect()
    } else {
        let missing: Vec<String> = wanted
            .iter()
            .filter(|u| !installed.iter().any(|i| i.uuid == **u))
            .map(|u| u.to_string())
            .collect();
        if !missing.is_empty() {
            return Err(ImgError::usage(format!(
                "no installed image with the given UUID(s): {}",
                missing.join(", ")
            )));
        }
        wanted
            .iter()
            .filter_map(|u| installed.iter().find(|i| i.uuid == *u))
            .collect()
    };
    if images.is_empty() {
        return Ok(());
    }
    if ctx.config.sources.is_empty() {
        return Err(sources::no_sources());
    }
    let client = Client::new();
    let mut failed = Vec::new();
    for img in images {
        if let Err(e) = update_one(ctx, &client, img, opts.dry_run, say) {
            failed.push(e);
        }
    }
    match failed.len() {
        0 => Ok(()),
        1 => Err(failed.remove(0)),
        n => {
            let mut lines = vec![format!("multiple ({n}) errors")];
            lines.extend(
                failed
                    .iter()
                    .map(|e| format!("    error ({}): {}", e.code, e.message)),
            );
            Err(ImgError::new(Code::MultiError, lines.join("\n")))
        }
    }
}

fn update_one(
    ctx: &Ctx,
    client: &Client,
    img: &Installed,
    dry_run: bool,
    say: &mut dyn FnMut(String),
) -> Result<()> {
    let uuid = img.uuid;
    let Some(remote) = sources::find(client, &ctx.config.sources, &uuid)? else {
        say(format!(
            "warning: Could not find image {uuid} in image sources (skipping)"
        ));
        return Ok(());
    };
    let checked = check_remote(remote, &uuid)?;
    let from = checked.remote.source.url.clone();
    let new = checked.remote.manifest.clone();
    let have = img.record.as_ref().map(|r| &r.manifest);
    let has_name = have.and_then(|m| m.get("name")).is_some();
    let msg = if !has_name {
        Some(format!(
            "Added manifest info for image {uuid} from \"{from}\""
        ))
    } else {
        let empty = Map::new();
        let have = have.and_then(Value::as_object).unwrap_or(&empty);
        let new = new.as_object().unwrap_or(&empty);
        let diffs = diff_fields(have, new);
        (!diffs.is_empty()).then(|| {
            format!(
                "Updated {} manifest field{} for image {uuid} from \"{from}\": {}",
                diffs.len(),
                if diffs.len() == 1 { "" } else { "s" },
                diffs.join(", ")
            )
        })
    };
    if let Some(msg) = msg {
        if !dry_run {
            records::save_record(
                &ctx.config,
                &uuid,
                &Record {
                    manifest: new,
                    zpool: img.zpool.clone(),
                    source: Some(from),
                },
            )?;
        }
        say(msg);
    }
    ensure_final(ctx, img, &checked.manifest, dry_run, say)
}

/// SmartOS's repair for images installed before `@final` existed: rename
/// the snapshot whose guid the manifest names.
fn ensure_final(
    ctx: &Ctx,
    img: &Installed,
    manifest: &crate::image::manifest::Manifest,
    dry_run: bool,
    say: &mut dyn FnMut(String),
) -> Result<()> {
    let zfs = ctx.zfs();
    let snapshots: Vec<String> = zfs
        .snapshots(&img.dataset)?
        .into_iter()
        .map(|s| format!("{}@{s}", img.dataset))
        .collect();
    let final_snap = format!("{}@final", img.dataset);
    if snapshots.contains(&final_snap) {
        return Ok(());
    }
    let missing = |extra: String| {
        ImgError::new(
            Code::ImageMissingOriginalSnapshot,
            format!(
                "image \"{}\" is missing its original snapshot{extra}",
                img.uuid
            ),
        )
    };
    if snapshots.is_empty() {
        return Err(missing(String::new()));
    }
    let Some(guid) = manifest.files.first().and_then(|f| f.dataset_guid.clone()) else {
        say(format!(
            "imgadm: warn: cannot determine original snapshot for image \"{}\" (source info has no \"dataset_guid\")",
            img.uuid
        ));
        return Ok(());
    };
    for snap in &snapshots {
        if zfs.guid(snap)?.as_deref() == Some(guid.as_str()) {
            if !dry_run {
                zfs.rename(snap, &final_snap)?;
            }
            say(format!(
                "Renamed image {} original snapshot from {snap} to {final_snap}",
                img.uuid
            ));
            return Ok(());
        }
    }
    Err(missing(format!(" (expected a snapshot with guid {guid})")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn fields_are_named_in_imgadms_order() {
        let have = obj(json!({
            "name": "a", "version": "1", "tags": {"x": 1}, "gone": true,
            "requirements": {"min_ram": 1, "old": 2}
        }));
        let new = obj(json!({
            "name": "a", "version": "2", "tags": {"x": 2}, "description": "d",
            "requirements": {"min_ram": 2, "new": 3}
        }));
        assert_eq!(
            diff_fields(&have, &new),
            [
                "version",
                "tags",
                "description",
                "gone",
                "requirements.min_ram",
                "requirements.new",
                "requirements.old"
            ]
        );
        assert!(diff_fields(&have, &have).is_empty());
    }

    #[test]
    fn requirements_appearing_counts_once() {
        let have = obj(json!({"name": "a"}));
        let new = obj(json!({"name": "a", "requirements": {"min_ram": 1}}));
        assert_eq!(diff_fields(&have, &new), ["requirements"]);
    }
}
