//! `imgadm create <vm-uuid>`: an image from a stopped VM's dataset.
//!
//! Snapshots `<pool>/<vm-uuid>`, sends it (with `-i`, incrementally from the
//! origin image's `@final`, so the new image only carries the VM's changes and
//! names that image as its `origin`), compresses, and writes
//! `<name>-<version>.json` + `<name>-<version>.zfs.<ext>`. The temporary
//! snapshot is removed afterwards; the VM is left as it was.
//!
//! Which VM, and whether it may be imaged at all (it exists, it is not
//! running), is settled by the verb (`ops::images::create`) under the VM's
//! lock, from the VM store and the driver; this module gets the facts.

use super::build::{base_manifest, checked_manifest, parse_fields, write_manifest, Built};
use super::compress;
use super::error::{Code, ImgError, Result};
use super::manifest::Compression;
use super::pack;
use super::records;
use crate::config::Config;
use crate::zfs::Zfs;
use serde_json::{Map, Value};
use std::path::PathBuf;
use uuid::Uuid;

/// Fields an incremental image takes over from its origin (as imgadm does).
const INHERITED: &[&str] = &[
    "type",
    "os",
    "requirements",
    "users",
    "billing_tags",
    "traits",
    "generate_passwords",
    "inherited_directories",
    "nic_driver",
    "disk_driver",
    "cpu_type",
    "image_size",
];

/// Options of `imgadm create` (the VM is given apart, as a [`SourceVm`]).
#[derive(Debug, Clone)]
pub struct CreateOpts {
    /// Where the image file and its manifest are written; created if
    /// missing.
    pub outdir: PathBuf,
    /// `-i`: send only the changes since the VM's origin image, which
    /// becomes the new image's `origin` (it must be installed).
    pub incremental: bool,
    /// How the `zfs send` stream in the image file is compressed.
    pub compression: Compression,
    /// `-m`: a JSON file with manifest fields.
    pub manifest: Option<PathBuf>,
    /// `key=value` manifest fields from the command line; they win over
    /// the `-m` file and the fields inherited from the origin image.
    pub fields: Vec<String>,
}

/// What an image is made from: a VM, as its record describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceVm {
    /// The VM's uuid, which is also its dataset's name in `zpool`.
    pub uuid: Uuid,
    /// The pool holding its dataset (`zpool` of the record).
    pub zpool: String,
    /// Its brand; an `lx*` brand makes the image require `brand: lx`.
    pub brand: Option<String>,
}

/// The image uuid a dataset was cloned from (`<pool>/<uuid>@…`), if any.
fn origin_image(zfs: &Zfs, dataset: &str, pool: &str) -> Result<Option<Uuid>> {
    let origin = zfs.get(dataset, "origin")?;
    let Some((fs, _)) = origin.split_once('@') else {
        return Ok(None);
    };
    Ok(fs
        .strip_prefix(pool)
        .and_then(|r| r.strip_prefix('/'))
        .and_then(|u| Uuid::parse_str(u).ok()))
}

/// Makes the image of a stopped VM. Problems with the temporary snapshot's
/// removal go to `warn`; the image is made all the same.
pub fn create(
    cfg: &Config,
    zfs: &Zfs,
    vm: &SourceVm,
    opts: &CreateOpts,
    warn: &mut dyn FnMut(String),
) -> Result<Built> {
    let vm_uuid = vm.uuid;
    let pool = vm.zpool.clone();
    let dataset = format!("{pool}/{vm_uuid}");
    if !zfs.exists(&dataset)? {
        return Err(ImgError::new(
            Code::VmNotFound,
            format!("dataset {dataset} of VM {vm_uuid} does not exist"),
        ));
    }
    let origin = origin_image(zfs, &dataset, &pool)?;
    let origin_manifest = origin
        .and_then(|o| records::load_record(cfg, &pool, &o))
        .map(|r| r.manifest)
        .and_then(|m| m.as_object().cloned());

    let mut fields = Map::new();
    if let Some(path) = &opts.manifest {
        let bytes = std::fs::read(path)
            .map_err(|e| ImgError::fs(&format!("cannot read {}", path.display()), e))?;
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| {
            ImgError::new(Code::InvalidManifest, format!("{}: {e}", path.display()))
        })?;
        fields.extend(v.as_object().cloned().ok_or_else(|| {
            ImgError::new(Code::InvalidManifest, "-m file must hold a JSON object")
        })?);
    }
    fields.extend(parse_fields(&opts.fields)?);
    for required in ["name", "version"] {
        if !fields.contains_key(required) {
            return Err(ImgError::usage(format!(
                "missing {required}=… (create needs name and version)"
            )));
        }
    }
    let mut m = base_manifest(&Map::new());
    if let Some(om) = &origin_manifest {
        // Without -i the new image still describes the same OS.
        let keys: &[&str] = if opts.incremental {
            INHERITED
        } else {
            &["type", "os", "requirements", "users"]
        };
        for k in keys {
            if let Some(v) = om.get(*k) {
                m.insert((*k).to_string(), v.clone());
            }
        }
    }
    if vm.brand.as_deref().is_some_and(|b| b.starts_with("lx")) {
        let req = m
            .entry("requirements")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(r) = req {
            r.insert("brand".into(), Value::from("lx"));
        }
    }
    for (k, v) in fields {
        m.insert(k, v);
    }
    let from = if opts.incremental {
        let o = origin.ok_or_else(|| ImgError::vm_has_no_origin(vm_uuid))?;
        let snap = format!("{pool}/{o}@final");
        if !zfs.exists(&snap)? {
            return Err(ImgError::new(
                Code::OriginNotInstalled,
                format!("origin image {o} has no {snap}"),
            ));
        }
        m.insert("origin".into(), Value::from(o.to_string()));
        Some(snap)
    } else {
        m.remove("origin");
        None
    };
    for required in ["os", "type"] {
        if !m.contains_key(required) {
            return Err(ImgError::usage(format!(
                "missing {required}=… (the VM's origin image does not tell)"
            )));
        }
    }
    let parsed = checked_manifest(&m)?;
    std::fs::create_dir_all(&opts.outdir)
        .map_err(|e| ImgError::fs(&format!("cannot create {}", opts.outdir.display()), e))?;
    let prefix = pack::file_prefix(&parsed.name, &parsed.version);
    let file_path = opts.outdir.join(format!(
        "{prefix}{}",
        compress::image_file_suffix(opts.compression)
    ));
    let manifest_path = opts.outdir.join(format!("{prefix}.json"));

    let snap = format!("{dataset}@imgadm-create-{}", parsed.uuid);
    zfs.snapshot(&snap)?;
    let sent = pack::send_to_file(zfs, &snap, from.as_deref(), opts.compression, &file_path);
    if let Err(e) = zfs.destroy(&snap, false) {
        warn(format!("could not remove snapshot {snap}: {e}"));
    }
    let file = sent?;
    write_manifest(m, &file, &parsed, manifest_path, file_path)
}
