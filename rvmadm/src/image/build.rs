//! `imgadm build`: an image from a directory tree or a tarball, no VM needed.
//!
//! Creates a temporary dataset `<pool>/<uuid>-build`, fills its `root/`
//! directory (`cp -a` for a tree; the `tar` crate for `.tar`, `.tar.gz`,
//! `.tar.bz2`, `.tar.xz`/`.txz`, `.tar.zst`, compression sniffed from the
//! content) — the given tree becomes the zone's `/`, laid out as SmartOS
//! images are (`<zonepath>/root`); a tree that is already laid out that
//! way (its `root/` holds the guest's tree, its top none) is taken as the
//! dataset's top as it is ([`Layout`]) — snapshots it `@final`,
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

/// Names whose presence marks a directory as holding a file system tree
/// (`/etc`, `/bin` …; `bin` may be a symlink into `usr`, so any type
/// counts). The top of a zone dataset holds none of them.
const TREE_MARKERS: [&str; 5] = ["etc", "bin", "sbin", "usr", "lib"];

/// How many markers make `root/` a guest's tree rather than a `/root` home
/// that happens to hold a `bin` of scripts.
const INNER_TREE_MARKERS: usize = 2;

/// How `imgadm build` places the source in the image's dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// Tell from the source itself ([`detect_layout`]); a source that
    /// could be read either way is refused.
    #[default]
    Auto,
    /// The source is the guest's `/`: it goes under `root/`.
    Tree,
    /// The source is already a zone dataset's top (SmartOS layout: `root/`
    /// holds the guest's `/`): it is taken as it is.
    Zone,
}

impl Layout {
    /// Parses `auto`, `tree` or `zone`.
    pub fn parse(s: &str) -> Option<Layout> {
        match s {
            "auto" => Some(Layout::Auto),
            "tree" => Some(Layout::Tree),
            "zone" => Some(Layout::Zone),
            _ => None,
        }
    }
}

/// Which markers `dir` holds, without following links.
fn markers_in(dir: &Path) -> Vec<&'static str> {
    TREE_MARKERS
        .into_iter()
        .filter(|m| std::fs::symlink_metadata(dir.join(m)).is_ok())
        .collect()
}

/// Tells how the tree at `dir` (the source, copied or unpacked) is laid
/// out; `shown` is the source as the user named it, for messages.
///
/// - no `root/` directory at the top: a plain tree ([`Layout::Tree`]);
/// - `root/` holding a tree (at least two of `etc`, `bin`, `sbin`, `usr`,
///   `lib`) and no tree at the top: the SmartOS layout ([`Layout::Zone`]);
/// - a tree at the top and a `root/` without one: a plain tree whose
///   `root/` is the `/root` home ([`Layout::Tree`]);
/// - a tree at both places, or at neither beside a `root/`: refused, with
///   the two readings spelled out and `--layout` to choose one.
pub fn detect_layout(dir: &Path, shown: &Path) -> Result<Layout> {
    let root = dir.join(zone_root::ROOT_DIR);
    let root_is_dir = std::fs::symlink_metadata(&root).is_ok_and(|m| m.is_dir());
    if !root_is_dir {
        return Ok(Layout::Tree);
    }
    let top = markers_in(dir);
    let inner = markers_in(&root);
    let inner_tree = inner.len() >= INNER_TREE_MARKERS;
    let shown = shown.display();
    let why = match (top.is_empty(), inner_tree) {
        (true, true) => return Ok(Layout::Zone),
        (false, false) => return Ok(Layout::Tree),
        (false, true) => format!(
            "it has a file system tree both at its top ({}) and in root/ ({})",
            top.join(", "),
            inner
                .iter()
                .map(|m| format!("root/{m}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        (true, false) => {
            "it has a root/ directory but no file system tree (etc, bin, sbin, usr, lib) \
             at its top or in root/"
                .to_string()
        }
    };
    Err(ImgError::new(
        Code::InvalidArgument,
        format!(
            "cannot tell how {shown} is laid out: {why}. Say --layout zone if root/ is the \
             guest's / (the SmartOS zone layout: the source is taken as the image's top as it \
             is), or --layout tree if the whole source is the guest's / (it goes under root/, \
             and its root/ is the guest's /root)"
        ),
    ))
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
    /// Whether the source is the guest's `/` or already a zone dataset's top.
    pub layout: Layout,
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
        // The source lands in a staging directory of the dataset first:
        // how it is laid out can only be told from its content (a
        // tarball's included), and a rename within the dataset is free.
        let stage = mp.join(format!(".imgadm-build-{}", parsed.uuid));
        make_root_dir(&stage)?;
        fill(runner, &opts.source, &stage)?;
        let layout = match opts.layout {
            Layout::Auto => detect_layout(&stage, &opts.source)?,
            chosen => chosen,
        };
        place(&stage, &mp, layout)?;
        // A tarball can hold entries for `.` itself, and a zone-layout
        // source brings its own root/: the result must still be what
        // every driver accepts.
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

/// Moves the staged source into place: as `root/` for a plain tree (the
/// SmartOS zone layout: the tree is the zone's root, the top belongs to
/// the host's tooling), or entry by entry onto the dataset's top for a
/// source already in that layout.
fn place(stage: &Path, mp: &Path, layout: Layout) -> Result<()> {
    let rename = |from: &Path, to: &Path| {
        std::fs::rename(from, to).map_err(|e| {
            ImgError::fs(
                &format!("cannot move {} to {}", from.display(), to.display()),
                e,
            )
        })
    };
    if layout != Layout::Zone {
        return rename(stage, &zone_root::zone_root(mp));
    }
    let entries = std::fs::read_dir(stage)
        .map_err(|e| ImgError::fs(&format!("cannot read {}", stage.display()), e))?;
    for entry in entries {
        let entry =
            entry.map_err(|e| ImgError::fs(&format!("cannot read {}", stage.display()), e))?;
        rename(&entry.path(), &mp.join(entry.file_name()))?;
    }
    std::fs::remove_dir(stage)
        .map_err(|e| ImgError::fs(&format!("cannot remove {}", stage.display()), e))
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

    fn tree(dirs: &[&str]) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        for d in dirs {
            std::fs::create_dir_all(t.path().join(d)).unwrap();
        }
        t
    }

    #[test]
    fn layouts_are_told_from_the_tree() {
        let plain = tree(&["etc", "usr/bin", "root", "tmp"]);
        assert_eq!(
            detect_layout(plain.path(), plain.path()).unwrap(),
            Layout::Tree
        );
        // /root holding a bin of scripts is still a home.
        let home_bin = tree(&["etc", "sbin", "root/bin"]);
        assert_eq!(
            detect_layout(home_bin.path(), home_bin.path()).unwrap(),
            Layout::Tree
        );
        let no_root = tree(&["data", "app"]);
        assert_eq!(
            detect_layout(no_root.path(), no_root.path()).unwrap(),
            Layout::Tree
        );
        let zone = tree(&["root/etc", "root/bin", "root/root"]);
        assert_eq!(
            detect_layout(zone.path(), zone.path()).unwrap(),
            Layout::Zone
        );
        // A merged-/usr guest: bin is a link into usr.
        let merged = tree(&["root/etc", "root/usr/bin", "cores"]);
        std::os::unix::fs::symlink("usr/bin", merged.path().join("root/bin")).unwrap();
        assert_eq!(
            detect_layout(merged.path(), merged.path()).unwrap(),
            Layout::Zone
        );
        // A root/ that is a link is never taken for a zone root.
        let linked = tree(&["elsewhere/etc", "elsewhere/bin"]);
        std::os::unix::fs::symlink("elsewhere", linked.path().join("root")).unwrap();
        assert_eq!(
            detect_layout(linked.path(), linked.path()).unwrap(),
            Layout::Tree
        );
    }

    #[test]
    fn ambiguous_layouts_are_refused_with_both_readings() {
        let both = tree(&["etc", "root/etc", "root/usr"]);
        let e = detect_layout(both.path(), Path::new("/src/both")).unwrap_err();
        assert_eq!(e.code, Code::InvalidArgument);
        assert!(
            e.message.contains("cannot tell how /src/both is laid out")
                && e.message
                    .contains("at its top (etc) and in root/ (root/etc, root/usr)")
                && e.message.contains("--layout zone")
                && e.message.contains("--layout tree"),
            "{}",
            e.message
        );
        let neither = tree(&["root/app", "srv"]);
        let e = detect_layout(neither.path(), neither.path()).unwrap_err();
        assert!(e.message.contains("no file system tree"), "{}", e.message);
        assert_eq!(Layout::parse("zone"), Some(Layout::Zone));
        assert_eq!(Layout::parse("Zone"), None);
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
