//! IMGAPI v2 image manifests as serde types, and their validation.
//!
//! The types follow the JSON that SmartOS `imgadm`, the Triton IMGAPI and the
//! npm `imgmanifest` library exchange, field for field. Fields this module does
//! not model are kept in [`Manifest::extra`] so that a manifest read from one
//! server and written to another loses nothing. Parsing only checks shapes;
//! [`Manifest::validate`] is the gate that refuses hostile or malformed values
//! (names that could become paths, absurd sizes, unknown compressions) before a
//! manifest reaches disk, a URL or a command line.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;
use uuid::Uuid;

/// Largest image file IMGAPI accepts (20 GiB).
pub const MAX_FILE_SIZE: u64 = 20 * 1024 * 1024 * 1024;
/// Longest accepted `name` (IMGAPI documents 512).
pub const MAX_NAME_LEN: usize = 512;
/// Longest accepted `version` (IMGAPI documents 128).
pub const MAX_VERSION_LEN: usize = 128;
/// The owner IMGAPI uses when a server has no user database.
pub const NIL_OWNER: Uuid = Uuid::nil();

/// Compression of an image file as served (`files[0].compression`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// The file is the raw `zfs send` stream.
    None,
    /// gzip (`.gz`), the most widely understood choice.
    Gzip,
    /// bzip2 (`.bz2`).
    Bzip2,
    /// xz (`.xz`); the old FreeBSD datasets were published this way.
    Xz,
    /// Zstandard (`.zst`); not one of the compressions SmartOS `imgadm` writes.
    Zstd,
}

impl Compression {
    /// The wire spelling, e.g. `"gzip"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Bzip2 => "bzip2",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
        }
    }

    /// Parses the wire spelling; `None` for anything else.
    pub fn parse(s: &str) -> Option<Compression> {
        Some(match s {
            "none" => Compression::None,
            "gzip" => Compression::Gzip,
            "bzip2" => Compression::Bzip2,
            "xz" => Compression::Xz,
            "zstd" => Compression::Zstd,
            _ => return None,
        })
    }

    /// File name suffix used for DSAPI `files[].path`. The v1→v2 upgrade in
    /// imgmanifest derives compression from this suffix and only knows `.gz`
    /// and `.bz2`, so the others are named truthfully but will read as "none".
    pub fn file_suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => ".gz",
            Compression::Bzip2 => ".bz2",
            Compression::Xz => ".xz",
            Compression::Zstd => ".zst",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `type` of an image. There is no "jail" value: FreeBSD jails use
/// `zone-dataset`, which every IMGAPI client accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ImageType {
    /// `zone-dataset`: a file system for an OS container (SmartOS zones,
    /// FreeBSD jails, Linux containers here).
    #[serde(rename = "zone-dataset")]
    ZoneDataset,
    /// `lx-dataset`: a Linux userland for an lx-branded container.
    #[serde(rename = "lx-dataset")]
    LxDataset,
    /// `zvol`: a block-device image for a hardware VM (bhyve, KVM).
    #[serde(rename = "zvol")]
    Zvol,
    /// `docker`: a Docker layer, as Triton stores them.
    #[serde(rename = "docker")]
    Docker,
    /// `lxd`: an LXD image; IMGAPI knows the value, older clients may not.
    #[serde(rename = "lxd")]
    Lxd,
    /// `other`: anything else; clients treat it as opaque.
    #[serde(rename = "other")]
    Other,
}

impl ImageType {
    /// The wire spelling, e.g. `"zone-dataset"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageType::ZoneDataset => "zone-dataset",
            ImageType::LxDataset => "lx-dataset",
            ImageType::Zvol => "zvol",
            ImageType::Docker => "docker",
            ImageType::Lxd => "lxd",
            ImageType::Other => "other",
        }
    }
}

/// `os` of an image; FreeBSD jails use `bsd`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageOs {
    /// `smartos`: a SmartOS (illumos) zone userland.
    Smartos,
    /// `linux`: a Linux userland or guest.
    Linux,
    /// `windows`: a Windows guest (zvol images only in practice).
    Windows,
    /// `bsd`: a BSD userland; what FreeBSD jail images declare.
    Bsd,
    /// `illumos`: an illumos distribution other than SmartOS.
    Illumos,
    /// `other`: an OS the list above does not name.
    Other,
}

impl ImageOs {
    /// The wire spelling, e.g. `"bsd"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageOs::Smartos => "smartos",
            ImageOs::Linux => "linux",
            ImageOs::Windows => "windows",
            ImageOs::Bsd => "bsd",
            ImageOs::Illumos => "illumos",
            ImageOs::Other => "other",
        }
    }
}

/// `state` as IMGAPI computes it from the activated/disabled flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageState {
    /// Activated and not disabled: listed and served to everyone allowed.
    Active,
    /// Created but not yet activated (its file may still be uploading).
    Unactivated,
    /// Activated, then disabled by its owner: kept but hidden from default lists.
    Disabled,
    /// A placeholder while an image is built from a VM (Triton only).
    Creating,
    /// A placeholder whose build from a VM failed (Triton only).
    Failed,
}

impl ImageState {
    /// The wire spelling, e.g. `"active"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageState::Active => "active",
            ImageState::Unactivated => "unactivated",
            ImageState::Disabled => "disabled",
            ImageState::Creating => "creating",
            ImageState::Failed => "failed",
        }
    }
}

/// One entry of `files`: the compressed `zfs send` stream as served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageFile {
    /// Hex SHA-1 of the file as served (compressed).
    pub sha1: String,
    /// Size in bytes of the file as served.
    pub size: u64,
    /// How the `zfs send` stream was compressed before it was served.
    pub compression: Compression,
    /// ZFS guid of the `@final` snapshot (decimal), for incremental streams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_guid: Option<String>,
    /// Fields we do not model (e.g. `stor`, `md5`), kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn default_v() -> u32 {
    2
}

fn default_true() -> bool {
    true
}

/// An IMGAPI v2 image manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Manifest format version; always 2 for this type.
    #[serde(default = "default_v")]
    pub v: u32,
    /// The image's identity; never nil. Servers and clients name files and
    /// datasets after it, never after `name`.
    pub uuid: Uuid,
    /// Owning account; the nil UUID when the server has no users.
    #[serde(default)]
    pub owner: Uuid,
    /// Human name, at most [`MAX_NAME_LEN`] bytes of `[A-Za-z0-9._/ -]`; not
    /// unique, and never used to build a path.
    pub name: String,
    /// Version string, at most [`MAX_VERSION_LEN`] bytes of `[A-Za-z0-9._/+-]`;
    /// `name` plus `version` is what a human picks an image by.
    pub version: String,
    /// Free text shown in listings; at most 16 KiB, no control characters
    /// except newlines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// An `http(s)` URL with more about the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub homepage: Option<String>,
    /// An `http(s)` URL of the licence a user accepts by using the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eula: Option<String>,
    /// Computed by servers; absent in `imgadm create` output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ImageState>,
    /// Set by the owner to hide an activated image without deleting it;
    /// `false` when absent.
    #[serde(default)]
    pub disabled: bool,
    /// Whether anyone may list and fetch the image; `false` limits it to the
    /// owner and the accounts in `acl`. `true` when absent.
    #[serde(default = "default_true")]
    pub public: bool,
    /// ISO-8601 UTC, e.g. `2012-05-02T15:14:45.805Z`; set on activation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_at: Option<String>,
    /// What kind of dataset the image holds (the JSON key is `type`).
    #[serde(rename = "type")]
    pub image_type: ImageType,
    /// The operating system inside the image.
    pub os: ImageOs,
    /// Origin image of an incremental image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Uuid>,
    /// The image's file; empty until one is uploaded, at most one entry.
    #[serde(default)]
    pub files: Vec<ImageFile>,
    /// Accounts besides the owner that may see a non-public image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl: Option<Vec<Uuid>>,
    /// `networks`, `brand`, `ssh_key`, `min_ram`, `min_platform`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirements: Option<Map<String, Value>>,
    /// e.g. `[{"name": "root"}]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<Value>>,
    /// Free-form `key: string|number|bool` tags (filterable as `tag.KEY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Map<String, Value>>,
    /// True when the server holds an icon for this image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon: Option<bool>,
    /// Everything else (billing_tags, traits, generate_passwords, zvol fields,
    /// channels, urn, …), kept so manifests round-trip unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One rejected field, in the shape IMGAPI's `ValidationFailed` error lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The offending field as a dotted path, e.g. `files.0.sha1` or `tags.role`.
    pub field: String,
    /// `Invalid` or `Missing`, as IMGAPI names them.
    pub code: String,
    /// What the value must look like, for the publisher to read.
    pub message: String,
}

/// A manifest that failed [`Manifest::validate`]; lists every bad field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid manifest: {}", summary(.errors))]
pub struct ValidationError {
    /// Every rejected field, in the order `validate` checks them; never empty.
    pub errors: Vec<FieldError>,
}

fn summary(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Does `s` match the IMGAPI `name` pattern `[A-Za-z0-9._/ -]+`?
pub fn is_valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'/' | b' ' | b'-'))
}

/// Does `s` match the IMGAPI `version` pattern `[A-Za-z0-9._/+-]+`?
pub fn is_valid_version(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_VERSION_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'/' | b'+' | b'-'))
}

/// Is `s` a 40-digit hex SHA-1?
pub fn is_valid_sha1(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Does `s` have the `YYYY-MM-DDTHH:MM:SS(.fff)?Z` form imgmanifest accepts,
/// and name a real instant?
pub fn is_valid_published_at(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 20 || b[b.len() - 1] != b'Z' {
        return false;
    }
    let shape = b"dddd-dd-ddTdd:dd:dd";
    for (i, want) in shape.iter().enumerate() {
        let ok = match want {
            b'd' => b[i].is_ascii_digit(),
            c => b[i] == *c,
        };
        if !ok {
            return false;
        }
    }
    let rest = &b[19..b.len() - 1];
    if !rest.is_empty() {
        // Optional fraction: a dot and 1..=9 digits.
        if rest[0] != b'.' || rest.len() < 2 || rest.len() > 10 {
            return false;
        }
        if !rest[1..].iter().all(u8::is_ascii_digit) {
            return false;
        }
    }
    chrono::DateTime::parse_from_rfc3339(s).is_ok()
}

/// The current time in the form IMGAPI writes `published_at` (milliseconds, Z).
pub fn now_published_at() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

impl Manifest {
    /// Parses JSON into a manifest (shape only; call [`Manifest::validate`]).
    pub fn from_json(bytes: &[u8]) -> Result<Manifest, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Checks every field a hostile or broken client could abuse. Returns all
    /// problems at once so a publisher can fix them in one go.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let mut errors = Vec::new();
        let mut bad = |field: &str, code: &str, message: String| {
            errors.push(FieldError {
                field: field.to_string(),
                code: code.to_string(),
                message,
            })
        };
        if self.v != 2 {
            bad("v", "Invalid", format!("must be 2, not {}", self.v));
        }
        if self.uuid.is_nil() {
            bad("uuid", "Invalid", "must not be the nil UUID".into());
        }
        if self.name.is_empty() {
            bad("name", "Missing", "is required".into());
        } else if !is_valid_name(&self.name) {
            bad(
                "name",
                "Invalid",
                format!("must match [A-Za-z0-9._/ -]+ and be at most {MAX_NAME_LEN} characters"),
            );
        }
        if self.version.is_empty() {
            bad("version", "Missing", "is required".into());
        } else if !is_valid_version(&self.version) {
            bad(
                "version",
                "Invalid",
                format!("must match [A-Za-z0-9._/+-]+ and be at most {MAX_VERSION_LEN} characters"),
            );
        }
        if let Some(d) = &self.description {
            if d.len() > 1024 * 16 || d.chars().any(|c| c.is_control() && c != '\n') {
                bad(
                    "description",
                    "Invalid",
                    "must be at most 16 KiB without control characters".into(),
                );
            }
        }
        for (field, url) in [("homepage", &self.homepage), ("eula", &self.eula)] {
            if let Some(u) = url {
                let ok = (u.starts_with("http://") || u.starts_with("https://"))
                    && u.len() <= 2048
                    && !u.chars().any(|c| c.is_control() || c.is_whitespace());
                if !ok {
                    bad(field, "Invalid", "must be an http(s) URL".into());
                }
            }
        }
        if let Some(p) = &self.published_at {
            if !is_valid_published_at(p) {
                bad(
                    "published_at",
                    "Invalid",
                    "must look like 2012-05-02T15:14:45.805Z".into(),
                );
            }
        }
        if self.files.len() > 1 {
            bad("files", "Invalid", "must have at most one entry".into());
        }
        for f in &self.files {
            if f.size == 0 || f.size > MAX_FILE_SIZE {
                bad(
                    "files.0.size",
                    "Invalid",
                    format!("must be between 1 and {MAX_FILE_SIZE} bytes"),
                );
            }
            if !is_valid_sha1(&f.sha1) {
                bad(
                    "files.0.sha1",
                    "Invalid",
                    "must be 40 hexadecimal digits".into(),
                );
            }
            if let Some(g) = &f.dataset_guid {
                if g.is_empty() || g.len() > 40 || !g.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    bad(
                        "files.0.dataset_guid",
                        "Invalid",
                        "must be a ZFS guid".into(),
                    );
                }
            }
        }
        if let Some(tags) = &self.tags {
            for (k, v) in tags {
                let key_ok = !k.is_empty()
                    && k.len() <= 128
                    && !k.chars().any(|c| c.is_control() || c == '=');
                let val_ok = matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_));
                if !key_ok || !val_ok {
                    bad(
                        &format!("tags.{k}"),
                        "Invalid",
                        "tags are key: string|number|bool".into(),
                    );
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ValidationError { errors })
        }
    }

    /// The computed state IMGAPI would report for the given activation flag.
    pub fn computed_state(activated: bool, disabled: bool) -> ImageState {
        match (activated, disabled) {
            (false, _) => ImageState::Unactivated,
            (true, true) => ImageState::Disabled,
            (true, false) => ImageState::Active,
        }
    }
}

/// `s` with every character outside `[A-Za-z0-9._+-]` replaced by `_`: safe
/// as part of a file name (image names may hold `/` and spaces).
pub fn file_name_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn sample() -> Value {
        json!({
            "v": 2,
            "uuid": "01b2c898-945f-11e1-a523-af1afbe22822",
            "owner": "00000000-0000-0000-0000-000000000000",
            "name": "freebsd-base",
            "version": "14.1.0",
            "description": "FreeBSD base jail",
            "state": "active",
            "disabled": false,
            "public": true,
            "published_at": "2024-05-02T15:14:45.805Z",
            "type": "zone-dataset",
            "os": "bsd",
            "files": [{
                "sha1": "97f20b32c2016782257176fb58a35e5044f05840",
                "size": 46008,
                "compression": "gzip",
                "dataset_guid": "13405626227013366218",
                "stor": "local"
            }],
            "requirements": {"networks": [{"name": "net0", "description": "public"}]},
            "users": [{"name": "root"}],
            "tags": {"role": "os", "smartdc_service": true},
            "generate_passwords": true,
            "billing_tags": ["a"]
        })
    }

    pub(crate) fn parse(v: &Value) -> Manifest {
        serde_json::from_value(v.clone()).expect("parse")
    }

    #[test]
    fn round_trips_unknown_fields() {
        let v = sample();
        let m = parse(&v);
        assert!(m.validate().is_ok());
        assert_eq!(m.extra.get("billing_tags"), Some(&json!(["a"])));
        assert_eq!(m.files[0].extra.get("stor"), Some(&json!("local")));
        let back = serde_json::to_value(&m).expect("ser");
        assert_eq!(back, v);
    }

    #[test]
    fn minimal_manifest_gets_defaults() {
        let m: Manifest = serde_json::from_value(json!({
            "uuid": "01b2c898-945f-11e1-a523-af1afbe22822",
            "name": "x", "version": "1", "type": "zone-dataset", "os": "bsd"
        }))
        .expect("parse");
        assert_eq!(m.v, 2);
        assert!(m.public);
        assert!(!m.disabled);
        assert_eq!(m.owner, NIL_OWNER);
        assert!(m.files.is_empty());
        assert!(m.validate().is_ok());
        let out = serde_json::to_value(&m).expect("ser");
        assert!(out.get("state").is_none(), "no nulls for absent optionals");
    }

    #[test]
    fn rejects_hostile_names_and_versions() {
        for name in ["../../etc", "a\u{0}b", "x;rm -rf", "", "a\nb", "é"] {
            let mut v = sample();
            v["name"] = json!(name);
            let m = parse(&v);
            if name == "../../etc" {
                // Dots and slashes are legal in IMGAPI names; the server must
                // never build paths from names, only from UUIDs.
                assert!(m.validate().is_ok());
            } else {
                assert!(m.validate().is_err(), "name {name:?}");
            }
        }
        let mut v = sample();
        v["name"] = json!("a".repeat(513));
        assert!(parse(&v).validate().is_err());
        v["name"] = json!("a".repeat(512));
        assert!(parse(&v).validate().is_ok());
        for version in ["1 0", "1;2", "", &"1".repeat(129)] {
            let mut v = sample();
            v["version"] = json!(version);
            assert!(parse(&v).validate().is_err(), "version {version:?}");
        }
        let mut v = sample();
        v["version"] = json!("1.0+build/2_a-b");
        assert!(parse(&v).validate().is_ok());
    }

    #[test]
    fn rejects_bad_uuid_type_os_compression_at_parse() {
        for (field, val) in [
            ("uuid", json!("not-a-uuid")),
            ("type", json!("jail")),
            ("os", json!("freebsd")),
            ("origin", json!("../x")),
        ] {
            let mut v = sample();
            v[field] = val;
            assert!(serde_json::from_value::<Manifest>(v).is_err(), "{field}");
        }
        let mut v = sample();
        v["files"][0]["compression"] = json!("lz4");
        assert!(serde_json::from_value::<Manifest>(v).is_err());
        let mut v = sample();
        v["files"][0]["size"] = json!(-1);
        assert!(serde_json::from_value::<Manifest>(v).is_err());
    }

    #[test]
    fn rejects_bad_files() {
        let mut v = sample();
        v["files"][0]["size"] = json!(0);
        assert!(parse(&v).validate().is_err());
        v["files"][0]["size"] = json!(MAX_FILE_SIZE + 1);
        assert!(parse(&v).validate().is_err());
        v["files"][0]["size"] = json!(MAX_FILE_SIZE);
        assert!(parse(&v).validate().is_ok());
        v["files"][0]["sha1"] = json!("abc");
        assert!(parse(&v).validate().is_err());
        v["files"][0]["sha1"] = json!("zz".repeat(20));
        assert!(parse(&v).validate().is_err());
        let mut v = sample();
        let f = v["files"][0].clone();
        v["files"] = json!([f.clone(), f]);
        let err = parse(&v).validate().expect_err("two files");
        assert_eq!(err.errors[0].field, "files");
        let mut v = sample();
        v["uuid"] = json!("00000000-0000-0000-0000-000000000000");
        assert!(parse(&v).validate().is_err());
    }

    #[test]
    fn published_at_format() {
        for ok in [
            "2012-05-02T15:14:45.805Z",
            "2012-05-02T15:14:45Z",
            "2012-05-02T15:14:45.1Z",
        ] {
            assert!(is_valid_published_at(ok), "{ok}");
        }
        for bad in [
            "2012-05-02",
            "2012-05-02T15:14Z",
            "2012-05-02T15:14:45+01:00",
            "2012-13-02T15:14:45Z",
            "2012-05-02T15:14:45.Z",
            "2012-05-02 15:14:45Z",
            "x012-05-02T15:14:45Z",
        ] {
            assert!(!is_valid_published_at(bad), "{bad}");
        }
        assert!(is_valid_published_at(&now_published_at()));
    }

    #[test]
    fn compression_and_enum_spellings() {
        for c in ["none", "gzip", "bzip2", "xz", "zstd"] {
            let parsed = Compression::parse(c).expect(c);
            assert_eq!(parsed.as_str(), c);
            assert_eq!(serde_json::to_value(parsed).expect("ser"), json!(c));
        }
        assert_eq!(Compression::parse("lzma"), None);
        assert_eq!(
            serde_json::to_value(ImageType::ZoneDataset).expect("ser"),
            json!("zone-dataset")
        );
        assert_eq!(ImageOs::Bsd.as_str(), "bsd");
        assert_eq!(Manifest::computed_state(true, true), ImageState::Disabled);
        assert_eq!(
            Manifest::computed_state(false, false),
            ImageState::Unactivated
        );
    }
}
