//! `imgadm build`: an image from a directory tree or a tarball, no VM needed.
//!
//! Creates a temporary dataset `<pool>/<uuid>-build`, fills its `root/`
//! directory (`cp -a` for a tree; the `tar` crate for `.tar`, `.tar.gz`,
//! `.tar.bz2`, `.tar.xz`/`.txz`, `.tar.zst`, compression sniffed from the
//! content) — the given tree becomes the zone's `/`, laid out as SmartOS
//! images are (`<zonepath>/root`) — snapshots it `@final`,
//! sends and compresses it into `<outdir>/<name>-<version>.zfs.<ext>` and writes
//! the manifest `<outdir>/<name>-<version>.json` next to it. The temporary
//! dataset is destroyed whether the build worked or not.

use super::compress;
use super::error::{Code, ImgError, Result};
use super::manifest::{self, Compression, Manifest};
use super::pack;
use crate::config::Config;
use crate::driver::zone_root;
use crate::exec::{Argv, CommandRunner};
use crate::zfs::Zfs;
use serde_json::{Map, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// Fields that are always strings even when they look like JSON (`version=1.0`).
const STRING_FIELDS: &[&str] = &[
    "uuid",
    "name",
    "version",
    "description",
    "os",
    "type",
    "homepage",
    "eula",
    "origin",
    "owner",
    "published_at",
];

/// Parses `field=value` arguments; values are JSON when they parse as JSON
/// (`public=false`, `tags={"a":1}`), strings otherwise, as imgadm does.
pub fn parse_fields(args: &[String]) -> Result<Map<String, Value>> {
    let mut m = Map::new();
    for a in args {
        let (k, v) = a
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| {
                ImgError::usage(format!(
                    "invalid field argument \"{a}\" (must be field=value)"
                ))
            })?;
        let value = if STRING_FIELDS.contains(&k) {
            Value::from(v)
        } else {
            serde_json::from_str(v).unwrap_or_else(|_| Value::from(v))
        };
        m.insert(k.to_string(), value);
    }
    Ok(m)
}

/// Validates a manifest built locally and returns its typed form.
pub fn checked_manifest(m: &Map<String, Value>) -> Result<Manifest> {
    let parsed: Manifest = serde_json::from_value(Value::Object(m.clone()))
        .map_err(|e| ImgError::new(Code::InvalidManifest, format!("invalid manifest: {e}")))?;
    parsed
        .validate()
        .map_err(|e| ImgError::new(Code::InvalidManifest, e.to_string()))?;
    Ok(parsed)
}

/// Options of `imgadm build`.
#[derive(Debug, Clone)]
pub struct BuildOpts {
    /// A directory tree or a tarball.
    pub source: PathBuf,
    /// `name=… version=… os=… type=… description=…` and any other manifest field.
    pub fields: Vec<String>,
    /// Where the image file and its manifest are written; created if
    /// missing.
    pub outdir: PathBuf,
    /// How the `zfs send` stream in the image file is compressed.
    pub compression: Compression,
    /// The pool that holds the temporary build dataset; `None` means the
    /// configured pool.
    pub pool: Option<String>,
}

/// What a build (or a create) produced.
#[derive(Debug, Clone)]
pub struct Built {
    /// The new image's freshly generated uuid.
    pub uuid: Uuid,
    /// The manifest's `name`.
    pub name: String,
    /// The manifest's `version`.
    pub version: String,
    /// The manifest as written, `files` entry (size, sha1, compression)
    /// included.
    pub manifest: Value,
    /// `<outdir>/<name>-<version>.json`.
    pub manifest_path: PathBuf,
    /// `<outdir>/<name>-<version>.zfs[.gz|.bz2|.xz|.zst]`: the compressed
    /// `zfs send` stream.
    pub file_path: PathBuf,
}

/// Base manifest for a new image: generated uuid, now as published_at.
pub fn base_manifest(fields: &Map<String, Value>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("v".into(), Value::from(2));
    m.insert("uuid".into(), Value::from(Uuid::new_v4().to_string()));
    m.insert("owner".into(), Value::from(manifest::NIL_OWNER.to_string()));
    m.insert("public".into(), Value::Bool(true));
    m.insert("disabled".into(), Value::Bool(false));
    m.insert(
        "published_at".into(),
        Value::from(manifest::now_published_at()),
    );
    for (k, v) in fields {
        m.insert(k.clone(), v.clone());
    }
    m
}

/// `imgadm build <tree|tarball> name=… version=… os=… [type=…]`. A build
/// dataset that cannot be removed afterwards is reported to `warn`.
pub fn build(
    cfg: &Config,
    runner: &dyn CommandRunner,
    opts: &BuildOpts,
    warn: &mut dyn FnMut(String),
) -> Result<Built> {
    let fields = parse_fields(&opts.fields)?;
    for required in ["name", "version", "os"] {
        if !fields.contains_key(required) {
            return Err(ImgError::usage(format!(
                "missing {required}=… (build needs name, version and os)"
            )));
        }
    }
    let mut m = base_manifest(&fields);
    if !m.contains_key("type") {
        let t = if m.get("os").and_then(Value::as_str) == Some("linux") {
            "lx-dataset"
        } else {
            "zone-dataset"
        };
        m.insert("type".into(), Value::from(t));
    }
    let parsed = checked_manifest(&m)?;
    if !opts.source.exists() {
        return Err(ImgError::new(
            Code::InvalidArgument,
            format!("{} does not exist", opts.source.display()),
        ));
    }
    std::fs::create_dir_all(&opts.outdir)
        .map_err(|e| ImgError::fs(&format!("cannot create {}", opts.outdir.display()), e))?;
    let pool = opts.pool.clone().unwrap_or_else(|| cfg.pool.clone());
    let zfs = Zfs::new(runner);
    let ds = format!("{pool}/{}-build", parsed.uuid);
    let prefix = pack::file_prefix(&parsed.name, &parsed.version);
    let file_path = opts.outdir.join(format!(
        "{prefix}{}",
        compress::image_file_suffix(opts.compression)
    ));
    let manifest_path = opts.outdir.join(format!("{prefix}.json"));

    zfs.destroy(&ds, true)?;
    zfs.create(&ds, &[])?;
    let result = (|| {
        let mp = zfs.mountpoint(&ds)?;
        // The SmartOS zone layout: the tree is the zone's root, kept in
        // root/ of the dataset; the top belongs to the host's tooling.
        let root = zone_root::zone_root(&mp);
        make_root_dir(&root)?;
        fill(runner, &opts.source, &root)?;
        // A tarball can hold entries for `.` itself; the result must still
        // be what every driver accepts.
        zone_root::check(&mp).map_err(|e| ImgError::new(Code::InvalidArgument, e.to_string()))?;
        let snap = format!("{ds}@final");
        zfs.snapshot(&snap)?;
        pack::send_to_file(&zfs, &snap, None, opts.compression, &file_path)
    })();
    if let Err(e) = zfs.destroy(&ds, true) {
        warn(format!("could not remove build dataset {ds}: {e}"));
    }
    let file = result?;
    write_manifest(m, &file, &parsed, manifest_path, file_path)
}

/// Records `file` in the manifest and writes the manifest beside the image
/// file (atomically, world-readable: manifests are meant to be shared). On
/// a failed manifest write the image file is removed too.
pub fn write_manifest(
    mut m: Map<String, Value>,
    file: &impl serde::Serialize,
    parsed: &Manifest,
    manifest_path: PathBuf,
    file_path: PathBuf,
) -> Result<Built> {
    m.insert(
        "files".into(),
        Value::Array(vec![serde_json::to_value(file).unwrap_or(Value::Null)]),
    );
    let text = serde_json::to_vec_pretty(&Value::Object(m.clone()))
        .map_err(|e| ImgError::new(Code::InternalError, e.to_string()))?;
    if let Err(e) = crate::store::atomic_write(&manifest_path, &text) {
        let _ = std::fs::remove_file(&file_path);
        return Err(ImgError::fs(
            &format!("cannot write {}", manifest_path.display()),
            e,
        ));
    }
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&manifest_path, std::fs::Permissions::from_mode(0o644));
    }
    Ok(Built {
        uuid: parsed.uuid,
        name: parsed.name.clone(),
        version: parsed.version.clone(),
        manifest: Value::Object(m),
        manifest_path,
        file_path,
    })
}

/// Makes the fresh dataset's `root/`, mode 0755 owned by root as a zone
/// root is (a tree copied in with `cp -a` brings its own mode along).
fn make_root_dir(root: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .mode(0o755)
        .create(root)
        .map_err(|e| ImgError::fs(&format!("cannot create {}", root.display()), e))
}

/// Copies a tree (`cp -a`, keeping owners, modes, links) or unpacks a tarball.
fn fill(runner: &dyn CommandRunner, source: &Path, dest: &Path) -> Result<()> {
    if source.is_dir() {
        let mut from = source.as_os_str().to_os_string();
        from.push("/.");
        let argv = Argv::new([
            "cp".to_string(),
            "-a".to_string(),
            "--".to_string(),
            from.to_string_lossy().into_owned(),
            dest.to_string_lossy().into_owned(),
        ]);
        runner.run(&argv)?;
        return Ok(());
    }
    let f = std::fs::File::open(source)
        .map_err(|e| ImgError::fs(&format!("cannot open {}", source.display()), e))?;
    let mut reader = BufReader::with_capacity(1 << 20, f);
    let head = reader
        .fill_buf()
        .map_err(|e| ImgError::fs(&format!("cannot read {}", source.display()), e))?;
    let compression = compress::sniff(head);
    let dec = compress::decoder(compression, reader)
        .map_err(|e| ImgError::new(Code::UncompressionError, e.to_string()))?;
    let mut archive = tar::Archive::new(dec);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(true);
    archive.unpack(dest).map_err(|e| {
        ImgError::new(
            Code::UncompressionError,
            format!("cannot unpack {} ({compression}): {e}", source.display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_parse_like_imgadm() {
        let m = parse_fields(&[
            "name=base".into(),
            "version=1.0".into(),
            "public=false".into(),
            "tags={\"a\":1}".into(),
            "x=plain text".into(),
        ])
        .unwrap();
        assert_eq!(m["version"], "1.0");
        assert_eq!(m["public"], false);
        assert_eq!(m["tags"]["a"], 1);
        assert_eq!(m["x"], "plain text");
        assert!(parse_fields(&["novalue".into()]).is_err());
        assert!(parse_fields(&["=x".into()]).is_err());
    }

    #[test]
    fn local_manifests_are_validated() {
        let mut m = base_manifest(
            &parse_fields(&[
                "name=b".into(),
                "version=1".into(),
                "os=linux".into(),
                "type=lx-dataset".into(),
            ])
            .unwrap(),
        );
        assert!(checked_manifest(&m).is_ok());
        m.insert("name".into(), Value::from("bad$(name)"));
        assert_eq!(
            checked_manifest(&m).unwrap_err().code,
            Code::InvalidManifest
        );
        m.insert("name".into(), Value::from("b"));
        m.insert("os".into(), Value::from("plan9"));
        assert!(checked_manifest(&m).is_err());
    }
}
