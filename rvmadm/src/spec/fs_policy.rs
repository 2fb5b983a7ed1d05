//! Which host directories a VM's `filesystems` may bind-mount, and how.
//!
//! Mounting host directories into a jail is an operator feature: a source
//! is accepted only below a `[[filesystem_sources]]` entry of vmadm.toml
//! (none by default, so every entry is refused), after resolving symlinks,
//! so a path through a link is judged by where it really leads. Some host
//! paths are refused whatever the allowlist says, because a jail holding
//! them (or a directory above them) could read or forge host state: the
//! kernel's `/proc`, `/sys`, `/dev`, `/run`, the pool's mountpoint (every
//! other VM's root) and vmadm's own state and run directories. Mounts are
//! read-only unless the entry asks for `rw` and its allowlist entry has
//! `rw = true`. ops checks at validate, create and update, before anything
//! is made; the Linux driver checks again at every start and mounts the
//! resolved path.

use crate::config::{Config, FilesystemSource};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// Host paths no VM may mount, nor any directory above them.
const ALWAYS_REFUSED: [&str; 4] = ["/proc", "/sys", "/dev", "/run"];

/// Why a `filesystems` source was refused. Each message names the entry's
/// source and what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FsRefused {
    /// The allowlist is empty.
    #[error("filesystems: source {given} refused: no host directory may be mounted into a VM until it is listed under [[filesystem_sources]] in vmadm.toml")]
    NoAllowlist {
        /// The entry's source as given.
        given: String,
    },
    /// The source does not exist or cannot be resolved.
    #[error("filesystems: source {given} cannot be resolved: {reason}")]
    Unresolvable {
        /// The entry's source as given.
        given: String,
        /// The error from resolving it.
        reason: String,
    },
    /// The resolved source is at, above or below a path no VM may mount.
    #[error("filesystems: source {given} (resolved: {}) overlaps {}, which is never mounted into a VM", resolved.display(), host.display())]
    Reserved {
        /// The entry's source as given.
        given: String,
        /// Where it leads once symlinks are resolved.
        resolved: PathBuf,
        /// The reserved host path it overlaps.
        host: PathBuf,
    },
    /// The resolved source lies under no allowlist entry.
    #[error("filesystems: source {given} (resolved: {}) is not below any [[filesystem_sources]] entry in vmadm.toml", resolved.display())]
    NotAllowed {
        /// The entry's source as given.
        given: String,
        /// Where it leads once symlinks are resolved.
        resolved: PathBuf,
    },
    /// The entry asks for `rw` but its allowlist entry is read-only.
    #[error("filesystems: source {given} asks for rw, but its [[filesystem_sources]] entry {} in vmadm.toml has no rw = true", entry.display())]
    ReadOnly {
        /// The entry's source as given.
        given: String,
        /// The allowlist entry the source lies under.
        entry: PathBuf,
    },
}

/// One `filesystems` entry as far as the policy cares: its source and
/// whether it asks to be writable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsRequest {
    /// The host path as given.
    pub source: String,
    /// True when `options` holds `rw` (and not `ro`).
    pub rw: bool,
}

impl FsRequest {
    /// Reads the requests out of `filesystems` objects (a payload's or a
    /// record's). Entries without a source are left to validation.
    pub fn from_objects<'a>(objs: impl IntoIterator<Item = &'a Map<String, Value>>) -> Vec<Self> {
        objs.into_iter()
            .filter_map(|o| {
                let source = o.get("source")?.as_str()?.to_string();
                let opts: Vec<&str> = o
                    .get("options")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                Some(FsRequest {
                    source,
                    rw: wants_rw(&opts),
                })
            })
            .collect()
    }
}

/// True when mount options ask for a writable mount: `rw` present and
/// `ro` absent.
pub fn wants_rw<S: AsRef<str>>(options: &[S]) -> bool {
    options.iter().any(|o| o.as_ref() == "rw") && !options.iter().any(|o| o.as_ref() == "ro")
}

/// The allowlist and the reserved paths of one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsPolicy {
    allow: Vec<FilesystemSource>,
    reserved: Vec<PathBuf>,
}

/// `p` with symlinks resolved when it exists, else as given.
fn resolved_or_given(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

impl FsPolicy {
    /// The policy of `config`, with `pool_mountpoint` (where the pool's
    /// datasets, every VM's root among them, are mounted) reserved too.
    pub fn new(config: &Config, pool_mountpoint: Option<&Path>) -> FsPolicy {
        let mut reserved: Vec<PathBuf> = ALWAYS_REFUSED.iter().map(PathBuf::from).collect();
        reserved.extend([
            config.run_dir.clone(),
            config.state_dir.clone(),
            config.image_dir.clone(),
            config.runtime_root.clone(),
        ]);
        reserved.extend(pool_mountpoint.map(Path::to_path_buf));
        // Both spellings: the configured one and where it really is.
        let mut all: Vec<PathBuf> = Vec::new();
        for p in reserved.into_iter().filter(|p| p.is_absolute()) {
            let r = resolved_or_given(&p);
            if r != p {
                all.push(r);
            }
            all.push(p);
        }
        FsPolicy {
            allow: config.filesystem_sources.clone(),
            reserved: all,
        }
    }

    /// Checks one entry; the answer is the resolved source, which is what
    /// gets mounted.
    pub fn check(&self, req: &FsRequest) -> Result<PathBuf, FsRefused> {
        if self.allow.is_empty() {
            return Err(FsRefused::NoAllowlist {
                given: req.source.clone(),
            });
        }
        let overlap = |p: &Path| {
            self.reserved
                .iter()
                .find(|h| p.starts_with(h) || h.starts_with(p))
                .cloned()
        };
        // As given first: /proc/<pid>/root and friends may not even resolve.
        let given = Path::new(&req.source);
        if let Some(host) = overlap(given) {
            return Err(FsRefused::Reserved {
                given: req.source.clone(),
                resolved: given.to_path_buf(),
                host,
            });
        }
        let resolved = std::fs::canonicalize(&req.source).map_err(|e| FsRefused::Unresolvable {
            given: req.source.clone(),
            reason: e.to_string(),
        })?;
        if let Some(host) = overlap(&resolved) {
            return Err(FsRefused::Reserved {
                given: req.source.clone(),
                resolved,
                host,
            });
        }
        // The most specific entry decides whether rw is allowed.
        let entry = self
            .allow
            .iter()
            .filter_map(|e| {
                let path = resolved_or_given(&e.path);
                resolved.starts_with(&path).then_some((path, e.rw))
            })
            .max_by_key(|(path, _)| path.components().count());
        match entry {
            None => Err(FsRefused::NotAllowed {
                given: req.source.clone(),
                resolved,
            }),
            Some((path, false)) if req.rw => Err(FsRefused::ReadOnly {
                given: req.source.clone(),
                entry: path,
            }),
            Some(_) => Ok(resolved),
        }
    }

    /// Checks every entry; the first refusal wins.
    pub fn check_all(&self, reqs: &[FsRequest]) -> Result<Vec<PathBuf>, FsRefused> {
        reqs.iter().map(|r| self.check(r)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FilesystemSource;

    fn req(source: &Path, rw: bool) -> FsRequest {
        FsRequest {
            source: source.display().to_string(),
            rw,
        }
    }

    fn lab() -> (tempfile::TempDir, FsPolicy) {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        for d in ["ro/sub", "rw/sub", "other", "state", "run", "pool"] {
            std::fs::create_dir_all(t.join(d)).unwrap();
        }
        let cfg = Config {
            state_dir: t.join("state"),
            run_dir: t.join("run"),
            filesystem_sources: vec![
                FilesystemSource {
                    path: t.join("ro"),
                    rw: false,
                },
                FilesystemSource {
                    path: t.join("rw"),
                    rw: true,
                },
                // An operator mistake: the allowlist cannot open these.
                FilesystemSource {
                    path: "/".into(),
                    rw: true,
                },
            ],
            ..Config::default()
        };
        let policy = FsPolicy::new(&cfg, Some(&t.join("pool")));
        (tmp, policy)
    }

    #[test]
    fn empty_allowlist_refuses_and_names_the_setting() {
        let p = FsPolicy::new(&Config::default(), None);
        let e = p.check(&req(Path::new("/srv"), false)).unwrap_err();
        assert!(e.to_string().contains("filesystem_sources"), "{e}");
    }

    #[test]
    fn reserved_paths_are_refused_whatever_the_allowlist_says() {
        let (tmp, p) = lab();
        let t = tmp.path();
        for bad in [
            PathBuf::from("/proc/1/root"),
            PathBuf::from("/run"),
            PathBuf::from("/dev"),
            PathBuf::from("/"),
            t.join("state"),
            t.join("run"),
            t.join("pool"),
            // A directory above a reserved one would expose it too.
            t.to_path_buf(),
        ] {
            assert!(
                matches!(p.check(&req(&bad, false)), Err(FsRefused::Reserved { .. })),
                "{}",
                bad.display()
            );
        }
        // A symlink is judged by where it leads.
        std::os::unix::fs::symlink("/run", t.join("ro/sub/link")).unwrap();
        let e = p.check(&req(&t.join("ro/sub/link"), false)).unwrap_err();
        assert!(matches!(e, FsRefused::Reserved { .. }), "{e}");
        let e = p
            .check(&req(Path::new("/nonexistent/x"), false))
            .unwrap_err();
        assert!(matches!(e, FsRefused::Unresolvable { .. }), "{e}");
    }

    #[test]
    fn allowlist_and_rw() {
        let (tmp, p) = lab();
        let t = tmp.path();
        let canon = |x: &str| std::fs::canonicalize(t.join(x)).unwrap();
        assert_eq!(
            p.check(&req(&t.join("ro/sub"), false)).unwrap(),
            canon("ro/sub")
        );
        assert!(matches!(
            p.check(&req(&t.join("ro/sub"), true)),
            Err(FsRefused::ReadOnly { .. })
        ));
        assert_eq!(
            p.check(&req(&t.join("rw/sub"), true)).unwrap(),
            canon("rw/sub")
        );
        let strict = FsPolicy::new(
            &Config {
                filesystem_sources: vec![FilesystemSource {
                    path: t.join("ro"),
                    rw: false,
                }],
                ..Config::default()
            },
            None,
        );
        assert!(matches!(
            strict.check(&req(&t.join("other"), false)),
            Err(FsRefused::NotAllowed { .. })
        ));
        // Through a symlink out of the allowed tree: not allowed.
        std::os::unix::fs::symlink(t.join("other"), t.join("ro/out")).unwrap();
        assert!(matches!(
            strict.check(&req(&t.join("ro/out"), false)),
            Err(FsRefused::NotAllowed { .. })
        ));
    }

    #[test]
    fn requests_from_objects() {
        let objs: Vec<Map<String, Value>> = serde_json::from_value(serde_json::json!([
            {"source": "/a", "target": "/a"},
            {"source": "/b", "target": "/b", "options": ["rw"]},
            {"source": "/c", "target": "/c", "options": ["rw", "ro"]},
            {"target": "/d"}
        ]))
        .unwrap();
        let r = FsRequest::from_objects(&objs);
        assert_eq!(
            r.iter()
                .map(|r| (r.source.as_str(), r.rw))
                .collect::<Vec<_>>(),
            [("/a", false), ("/b", true), ("/c", false)]
        );
    }
}
