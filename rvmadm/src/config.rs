//! `vmadm.toml`: the one configuration file.
//!
//! Every path the code touches comes from here, so tests run against a
//! temporary root. Looked up in `$VMADM_CONFIG`, else `/usr/local/etc/vmadm.toml`
//! on FreeBSD and `/etc/vmadm.toml` elsewhere; a missing default file means
//! built-in defaults, a missing explicit file is an error.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why the configuration file could not be loaded or saved; each variant
/// names the file so the message says which one to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists (or was named explicitly) but could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The configuration file that was read.
        path: PathBuf,
        /// The I/O error from reading it.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key, or holds a value
    /// [`Config::parse`] refuses (bad pool name, bad nic_tag or bridge).
    /// Also used when the configuration cannot be serialised on save.
    #[error("invalid config {path}: {message}")]
    Parse {
        /// The configuration file concerned.
        path: PathBuf,
        /// What is wrong, from the TOML parser or the value checks.
        message: String,
    },
    /// The new contents could not be written atomically.
    #[error("cannot write config {path}: {source}")]
    Write {
        /// The configuration file being replaced.
        path: PathBuf,
        /// The I/O error from the atomic write.
        #[source]
        source: std::io::Error,
    },
}

/// An image source (`imgadm sources`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// The server's http(s) base URL; a `dsapi` one ends in `/datasets`.
    pub url: String,
    /// `imgapi` (default) or `dsapi`.
    #[serde(rename = "type", default = "default_source_type")]
    pub kind: String,
}

/// A host directory VMs may bind-mount through `filesystems`
/// (`[[filesystem_sources]]` in vmadm.toml).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesystemSource {
    /// The directory; a `filesystems` source must be it or lie below it
    /// once symlinks are resolved.
    pub path: PathBuf,
    /// Whether a `filesystems` entry below it may ask for `rw`; without,
    /// every mount from it is read-only.
    #[serde(default)]
    pub rw: bool,
}

fn default_source_type() -> String {
    "imgapi".into()
}

/// The parsed `vmadm.toml`. Every field has a built-in default (see the
/// `Default` impl), so an empty file is a valid configuration; unknown keys
/// are refused rather than silently ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The zpool holding images and VM datasets (SmartOS: `zones`).
    pub pool: String,
    /// VM records (`vms/<uuid>.json`) and lock files.
    pub state_dir: PathBuf,
    /// Installed image manifests (`<pool>-<uuid>.json`).
    pub image_dir: PathBuf,
    /// Volatile runtime state (network namespaces bookkeeping, OCI bundles).
    pub run_dir: PathBuf,
    /// Which driver runs jails: `auto` (by host OS), `linux`, `freebsd`, `none`.
    pub driver: String,
    /// OCI runtime binary on Linux (`runc`, `crun`, or a path).
    pub runtime: String,
    /// `--root` directory handed to the OCI runtime.
    pub runtime_root: PathBuf,
    /// nic_tag → bridge name.
    pub networks: BTreeMap<String, String>,
    /// Create a missing bridge named in `networks` instead of failing.
    pub create_bridges: bool,
    /// devfs ruleset number for jails on FreeBSD: vmadm's own ruleset from
    /// dist/freebsd/devfs.rules (`vmadm_jail=10`), which must be loaded;
    /// 0 (no ruleset) is refused.
    pub devfs_ruleset: u32,
    /// Image sources queried in order.
    pub sources: Vec<Source>,
    /// This host's UUID (`server_uuid` in `get`); unset means none is shown.
    pub server_uuid: Option<String>,
    /// The host directories `filesystems` entries may mount from. Empty
    /// (the default) refuses every `filesystems` entry.
    pub filesystem_sources: Vec<FilesystemSource>,
    /// Largest image `imgadm import` receives, in MiB: the cap on a
    /// manifest's `image_size` and the size assumed when it has none. The
    /// dataset being received gets a quota of this size plus a quarter and
    /// 32 MiB for metadata, and its decompressed stream may be at most 8×
    /// that quota (streams carry data uncompressed; a compressing pool
    /// stores it smaller), so a compression bomb stops there.
    pub max_image_size: u64,
    /// Most a VM `vmadm receive` takes may bring, in MiB, whatever the
    /// bundle says: the VM's `quota` when smaller, else this (a quota of 0,
    /// or one larger, comes from the untrusted bundle). The container the
    /// streams land in gets that bound plus a quarter and 32 MiB as its
    /// quota, and the streams may be at most 8× the bound.
    pub max_receive_size: u64,
}

impl Default for Config {
    fn default() -> Self {
        let freebsd = cfg!(target_os = "freebsd");
        let state: PathBuf = if freebsd {
            "/var/db/vmadm".into()
        } else {
            "/var/lib/vmadm".into()
        };
        Config {
            pool: "zones".into(),
            image_dir: state.join("images"),
            state_dir: state,
            run_dir: "/run/vmadm".into(),
            driver: "auto".into(),
            runtime: "runc".into(),
            runtime_root: "/run/vmadm/runc".into(),
            networks: BTreeMap::new(),
            create_bridges: false,
            devfs_ruleset: 10,
            sources: Vec::new(),
            server_uuid: None,
            filesystem_sources: Vec::new(),
            max_image_size: 32 << 10,
            max_receive_size: 64 << 10,
        }
    }
}

impl Config {
    /// The default location for this OS.
    pub fn default_path() -> PathBuf {
        if cfg!(target_os = "freebsd") {
            "/usr/local/etc/vmadm.toml".into()
        } else {
            "/etc/vmadm.toml".into()
        }
    }

    /// Loads from `$VMADM_CONFIG` or the default path.
    pub fn load() -> Result<(Config, PathBuf), ConfigError> {
        match std::env::var_os("VMADM_CONFIG") {
            Some(p) if !p.is_empty() => {
                let path = PathBuf::from(p);
                Ok((Self::load_from(&path)?, path))
            }
            _ => {
                let path = Self::default_path();
                if path.exists() {
                    Ok((Self::load_from(&path)?, path))
                } else {
                    Ok((Config::default(), path))
                }
            }
        }
    }

    /// Loads and checks the file at `path`; unlike [`Config::load`], a
    /// missing file is an error ([`ConfigError::Read`]).
    pub fn load_from(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.into(),
            message,
        })
    }

    /// Parses TOML text and checks its values: the pool must be a bare pool
    /// name, every `networks` key a valid nic_tag and every bridge 1–15
    /// characters of `[A-Za-z0-9_.-]`. The error is a message without the
    /// file name, which the caller adds.
    pub fn parse(text: &str) -> Result<Config, String> {
        let cfg: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        cfg.check()?;
        Ok(cfg)
    }

    fn check(&self) -> Result<(), String> {
        if !crate::zfs::valid_name(&self.pool) || self.pool.contains(['/', '@']) {
            return Err(format!("pool {:?} is not a valid pool name", self.pool));
        }
        for src in &self.filesystem_sources {
            if !src.path.is_absolute() {
                return Err(format!(
                    "filesystem_sources: {} is not an absolute path",
                    src.path.display()
                ));
            }
        }
        if self.max_image_size == 0 {
            return Err("max_image_size must be at least 1 (MiB)".into());
        }
        if self.max_receive_size == 0 {
            return Err("max_receive_size must be at least 1 (MiB)".into());
        }
        for (tag, bridge) in &self.networks {
            if !crate::spec::valid_nic_tag(tag) {
                return Err(format!("networks: invalid nic_tag {tag:?}"));
            }
            if bridge.is_empty()
                || bridge.len() > 15
                || !bridge
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            {
                return Err(format!(
                    "networks: bridge name {bridge:?} for {tag:?} must be 1-15 of [A-Za-z0-9_.-]"
                ));
            }
        }
        Ok(())
    }

    /// Writes the config atomically (used by `imgadm sources -a/-d`).
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        let text = toml::to_string_pretty(self).map_err(|e| ConfigError::Parse {
            path: path.into(),
            message: e.to_string(),
        })?;
        crate::store::atomic_write(path, text.as_bytes()).map_err(|source| ConfigError::Write {
            path: path.into(),
            source,
        })
    }

    /// Directory of VM records.
    pub fn vm_dir(&self) -> PathBuf {
        self.state_dir.join("vms")
    }

    /// The ZFS dataset of a VM.
    pub fn vm_dataset(&self, uuid: &uuid::Uuid) -> String {
        format!("{}/{}", self.pool, uuid)
    }

    /// The ZFS dataset of an installed image.
    pub fn image_dataset(&self, uuid: &uuid::Uuid) -> String {
        format!("{}/{}", self.pool, uuid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checked while fuzzing (fuzz/config_vmadm): deep nesting is an
    /// error from the TOML parser, not a stack overflow.
    #[test]
    fn deep_nesting_is_an_error() {
        for text in [
            format!("pool = {}{}", "[".repeat(50_000), "]".repeat(50_000)),
            format!("x = {}1{}", "{a=".repeat(20_000), "}".repeat(20_000)),
        ] {
            assert!(Config::parse(&text).is_err());
        }
    }

    #[test]
    fn parses_full_file() {
        let cfg = Config::parse(
            r#"
            pool = "tank"
            state_dir = "/tmp/x"
            image_dir = "/tmp/x/img"
            runtime = "crun"
            [networks]
            admin = "vmbr0"
            [[sources]]
            url = "http://127.0.0.1:8080"
            [[filesystem_sources]]
            path = "/srv/shared"
            [[filesystem_sources]]
            path = "/srv/scratch"
            rw = true
            "#,
        )
        .unwrap();
        assert_eq!(cfg.pool, "tank");
        assert_eq!(cfg.networks["admin"], "vmbr0");
        assert_eq!(cfg.sources[0].kind, "imgapi");
        assert_eq!(cfg.run_dir, PathBuf::from("/run/vmadm"));
        assert!(!cfg.filesystem_sources[0].rw && cfg.filesystem_sources[1].rw);
        assert!(Config::default().filesystem_sources.is_empty());
    }

    #[test]
    fn rejects_bad_values() {
        assert!(Config::parse("pool = \"a/b\"").is_err());
        assert!(Config::parse("pool = \"-x\"").is_err());
        assert!(Config::parse("bogus = 1").is_err());
        assert!(Config::parse("max_image_size = 0").is_err());
        assert_eq!(
            Config::parse("max_image_size = 64").unwrap().max_image_size,
            64
        );
        assert_eq!(Config::default().max_image_size, 32768);
        assert!(Config::parse("max_receive_size = 0").is_err());
        assert_eq!(
            Config::parse("max_receive_size = 5")
                .unwrap()
                .max_receive_size,
            5
        );
        assert_eq!(Config::default().max_receive_size, 65536);
        assert!(Config::parse("[networks]\nadmin = \"a-very-long-bridge-name\"").is_err());
        assert!(Config::parse("[networks]\n\"a b\" = \"br0\"").is_err());
        assert!(Config::parse("[[filesystem_sources]]\npath = \"srv\"").is_err());
    }
}
