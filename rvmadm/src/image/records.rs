//! Installed images: `<pool>/<uuid>` datasets and their manifest records.
//!
//! ZFS is the truth about what is installed; the record
//! `<image_dir>/<pool>-<uuid>.json` (`{"manifest", "zpool", "source"}`, the
//! SmartOS imgadm db layout) only adds the manifest. A dataset without a record
//! is still listed (with just its uuid); a record without a dataset is ignored.
//! VM datasets share the `<pool>/<uuid>` shape, so they are told apart by their
//! VM record (asked from the VM [`Store`]) and by being a clone of an image
//! without an `@final` of their own.

use super::error::{Code, ImgError, Result};
use crate::config::Config;
use crate::store::Store;
use crate::zfs::Zfs;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use uuid::Uuid;

/// One image's db record, exactly as SmartOS stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The image's IMGAPI manifest, kept as received (unknown fields too).
    pub manifest: Value,
    /// The pool the image is installed on.
    pub zpool: String,
    /// URL of the source it was imported from; absent for images that did
    /// not come from a source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Where the record of `uuid` on `pool` lives.
pub fn record_path(cfg: &Config, pool: &str, uuid: &Uuid) -> PathBuf {
    cfg.image_dir.join(format!("{pool}-{uuid}.json"))
}

/// Writes a record atomically.
pub fn save_record(cfg: &Config, uuid: &Uuid, rec: &Record) -> Result<()> {
    let path = record_path(cfg, &rec.zpool, uuid);
    let text = serde_json::to_vec_pretty(rec)
        .map_err(|e| ImgError::new(Code::InternalError, e.to_string()))?;
    crate::store::atomic_write(&path, &text)
        .map_err(|e| ImgError::fs(&format!("cannot write {}", path.display()), e))
}

/// Reads a record; a missing or unreadable one is `None` (the dataset still
/// counts as installed, as in SmartOS).
pub fn load_record(cfg: &Config, pool: &str, uuid: &Uuid) -> Option<Record> {
    let path = record_path(cfg, pool, uuid);
    let bytes = std::fs::read(&path).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable image record");
            None
        }
    }
}

/// Removes a record; a missing one is fine.
pub fn remove_record(cfg: &Config, pool: &str, uuid: &Uuid) -> Result<()> {
    let path = record_path(cfg, pool, uuid);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ImgError::fs(
            &format!("cannot remove {}", path.display()),
            e,
        )),
    }
}

/// One installed image as `list`/`get` show it.
#[derive(Debug, Clone, PartialEq)]
pub struct Installed {
    /// The image's uuid (its dataset's last name component).
    pub uuid: Uuid,
    /// The pool it is on.
    pub zpool: String,
    /// `<zpool>/<uuid>`.
    pub dataset: String,
    /// Its db record; `None` when missing or unreadable.
    pub record: Option<Record>,
    /// Datasets cloned from any snapshot of this image (VMs, child images).
    pub clones: Vec<String>,
}

impl Installed {
    /// The manifest, or `{"uuid": …}` when the record is missing.
    pub fn manifest(&self) -> Value {
        match &self.record {
            Some(r) => r.manifest.clone(),
            None => serde_json::json!({ "uuid": self.uuid.to_string() }),
        }
    }

    /// The URL of the source it was imported from, when its record says.
    pub fn source(&self) -> Option<&str> {
        self.record.as_ref().and_then(|r| r.source.as_deref())
    }

    /// `<name>@<version>` for messages (empty parts when unknown).
    pub fn label(&self) -> String {
        label_of(&self.manifest())
    }

    /// The `{manifest, zpool, source, clones, cloneNames}` object of `get`
    /// and `list -j`.
    pub fn info_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        m.insert("manifest".into(), self.manifest());
        m.insert("zpool".into(), Value::from(self.zpool.clone()));
        if let Some(s) = self.source() {
            m.insert("source".into(), Value::from(s));
        }
        m.insert("clones".into(), Value::from(self.clones.len()));
        m.insert("cloneNames".into(), Value::from(self.clones.clone()));
        Value::Object(m)
    }
}

/// `<name>@<version>` of a manifest JSON.
pub fn label_of(manifest: &Value) -> String {
    let s = |k: &str| {
        manifest
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    format!("{}@{}", s("name"), s("version"))
}

/// Every image installed on `pool`; `vms` tells VM datasets apart.
pub fn installed_images(
    cfg: &Config,
    vms: &Store,
    zfs: &Zfs,
    pool: &str,
) -> Result<Vec<Installed>> {
    let origins = zfs.origins(pool)?;
    let snapshots: BTreeSet<String> = zfs.all_snapshots(pool)?.into_iter().collect();
    let mut clones: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, origin) in &origins {
        if let Some((fs, _)) = origin.as_deref().and_then(|o| o.split_once('@')) {
            clones.entry(fs.to_string()).or_default().push(name.clone());
        }
    }
    let mut out = Vec::new();
    for (name, origin) in &origins {
        let Some(rest) = name.strip_prefix(pool).and_then(|r| r.strip_prefix('/')) else {
            continue;
        };
        if rest.contains('/') {
            continue;
        }
        let Ok(uuid) = Uuid::parse_str(rest) else {
            continue;
        };
        if rest != uuid.hyphenated().to_string() {
            continue;
        }
        let has_final = snapshots.contains(&format!("{name}@final"));
        if vms.exists(&uuid) {
            continue;
        }
        if origin.as_deref().is_some_and(|o| o.ends_with("@final")) && !has_final {
            continue;
        }
        out.push(Installed {
            uuid,
            zpool: pool.to_string(),
            dataset: name.clone(),
            record: load_record(cfg, pool, &uuid),
            clones: clones.get(name).cloned().unwrap_or_default(),
        });
    }
    Ok(out)
}

/// One installed image, or `None`.
pub fn find_installed(
    cfg: &Config,
    vms: &Store,
    zfs: &Zfs,
    pool: &str,
    uuid: &Uuid,
) -> Result<Option<Installed>> {
    let ds = format!("{pool}/{uuid}");
    if !zfs.exists(&ds)? {
        return Ok(None);
    }
    Ok(installed_images(cfg, vms, zfs, pool)?
        .into_iter()
        .find(|i| i.uuid == *uuid))
}
