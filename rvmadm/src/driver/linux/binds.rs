//! The host sources of a jail's bind mounts (`filesystems` entries and the
//! delegated dataset), opened and staged by vmadm before the runtime runs so
//! that the runtime mounts exactly what vmadm checked.
//!
//! runc (1.1.5, as Debian 12 ships it) takes a bind mount's source as a path:
//! its container init `stat`s it and hands it to mount(2), both of which
//! follow every symlink on it. A `filesystems` source that someone with
//! write access to its parent swaps for a link after vmadm's allowlist check
//! would put the link's target into the jail. So each checked source is
//! opened here with `openat2(RESOLVE_NO_SYMLINKS)` (a link anywhere on the
//! path fails the start) and bind-mounted from that descriptor
//! (`/proc/self/fd/<n>`) onto an entry of the jail's run directory,
//! `<run_dir>/linux/<uuid>/binds/<i>` (`data` for the delegated dataset),
//! whose every component only root can change. The runtime is given that
//! entry. Handing it `/proc/<vmadm>/fd/<n>` directly does not work: the
//! runtime's init mounts from its own, new mount namespace, and mount(2)
//! refuses (EINVAL) a bind source whose mount belongs to another namespace;
//! the staged entry is copied into the new namespace with the rest.
//!
//! The entries are detached and removed as soon as the runtime has returned
//! (the jail keeps its own copies of the mounts); a start that dies before
//! leaves them to the teardown, which detaches them before it removes the
//! run directory, and never deletes recursively through one.
//!
//! The delegated dataset's directory `<zonepath>/data` is pinned the same
//! way: opened without following a link at the zonepath or at `data`, and
//! required to be a file system of its own (the dataset mounted there), so
//! the jail never writes into a plain directory of its root dataset instead.

use super::bundle::BindSources;
use super::names::JailDir;
use crate::driver::zone_root::{self, ZoneLayoutError};
use crate::spec::VmSpec;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Why a bind mount's source could not be staged.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The checked source could not be opened without following a link (a
    /// link appeared on its path since the check, or it is gone).
    #[error("filesystems: source {} cannot be opened without following a symbolic link (was it replaced since it was checked?): {source}", path.display())]
    Open {
        /// The resolved source that was checked.
        path: PathBuf,
        /// The open error (`ELOOP` for a link).
        source: io::Error,
    },
    /// The source is neither a directory nor a regular file.
    #[error("filesystems: source {} is neither a directory nor a regular file", path.display())]
    Kind {
        /// The resolved source.
        path: PathBuf,
    },
    /// The staging entry could not be made or mounted.
    #[error("cannot stage {} at {} for the runtime: {source}", path.display(), entry.display())]
    Stage {
        /// The source being staged.
        path: PathBuf,
        /// The entry in the run directory.
        entry: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// `<zonepath>/data` is a link or not a directory.
    #[error("delegated dataset {dataset}: {source}")]
    Layout {
        /// `<zfs_filesystem>/data`.
        dataset: String,
        /// What is wrong with `<zonepath>/data`.
        source: ZoneLayoutError,
    },
    /// `<zonepath>/data` does not exist.
    #[error("delegated dataset {dataset}: {} does not exist; is the dataset there and mounted (`zfs mount {dataset}`)?", zonepath.join("data").display())]
    DataMissing {
        /// `<zfs_filesystem>/data`.
        dataset: String,
        /// The VM's zonepath.
        zonepath: PathBuf,
    },
    /// `<zonepath>/data` is a directory of the zonepath's own dataset: the
    /// delegated dataset is not mounted there.
    #[error("delegated dataset {dataset} is not mounted at {}; mount it (`zfs mount {dataset}`) and start again", zonepath.join("data").display())]
    DataNotMounted {
        /// `<zfs_filesystem>/data`.
        dataset: String,
        /// The VM's zonepath.
        zonepath: PathBuf,
    },
    /// `zfs_filesystem` does not make an absolute path of plain names.
    #[error("delegated dataset: zfs_filesystem {0:?} does not name a path inside the jail")]
    Target(String),
}

/// A start's staged bind sources. Released (entries detached and removed)
/// by [`Staged::release`] once the runtime has returned, or when dropped.
#[derive(Debug)]
pub struct Staged {
    /// The staging directory; `None` once released.
    dir: Option<PathBuf>,
    /// What the bundle names as sources (and the delegated dataset's target).
    pub sources: BindSources,
}

impl Staged {
    /// Detaches and removes the staging entries; the jail keeps its mounts.
    pub fn release(mut self) -> Result<(), String> {
        self.dir.take().map_or(Ok(()), |d| unstage(&d))
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            if let Err(e) = unstage(&dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "removing staged bind sources");
            }
        }
    }
}

/// Detaches whatever is mounted on the entries of the staging directory
/// `dir` and removes them and it, never recursively: an entry still mounted
/// fails its removal instead of having the host directory behind it
/// emptied. Nothing to do when `dir` does not exist.
pub fn unstage(dir: &Path) -> Result<(), String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("listing {}: {e}", dir.display())),
    };
    let mut errors = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if let Err(e) = super::sys::detach_mount(&path) {
            errors.push(format!("detaching {}: {e}", path.display()));
            continue;
        }
        let removed = match entry.file_type() {
            Ok(t) if t.is_dir() => std::fs::remove_dir(&path),
            _ => std::fs::remove_file(&path),
        };
        if let Err(e) = removed {
            errors.push(format!("removing {}: {e}", path.display()));
        }
    }
    if errors.is_empty() {
        std::fs::remove_dir(dir).map_err(|e| format!("removing {}: {e}", dir.display()))
    } else {
        Err(errors.join("; "))
    }
}

/// The in-jail path of the delegated dataset: `/<zfs_filesystem>/data`,
/// where SmartOS mounts it inside the zone (`/zones/<uuid>/data` for the
/// default pool).
pub fn data_target(vm: &VmSpec) -> Result<String, BindError> {
    let ds = vm.zfs_filesystem.as_str();
    let plain = !ds.is_empty()
        && ds
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\0'));
    if !plain {
        return Err(BindError::Target(ds.to_string()));
    }
    Ok(format!("/{ds}/data"))
}

/// Mounts the object `fd` refers to on a new entry `name` of `dir` (a
/// directory or an empty file, as the source is) and returns the entry.
fn stage_one(dir: &Path, name: &str, fd: &OwnedFd, path: &Path) -> Result<String, BindError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let entry = dir.join(name);
    let err = |source| BindError::Stage {
        path: path.to_path_buf(),
        entry: entry.clone(),
        source,
    };
    let is_dir = std::fs::File::from(fd.try_clone().map_err(err)?)
        .metadata()
        .map_err(err)?
        .is_dir();
    if is_dir {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&entry)
            .map_err(err)?;
    } else {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&entry)
            .map_err(err)?;
    }
    super::sys::bind_fd(fd.as_fd(), &entry).map_err(err)?;
    Ok(entry.to_string_lossy().into_owned())
}

/// Opens every source of `vm`'s bind mounts and stages it in `jail`'s run
/// directory: `resolved` holds the checked source of each `filesystems`
/// entry (in order); the delegated dataset is added when the VM has one.
pub fn stage(vm: &VmSpec, jail: &JailDir, resolved: &[PathBuf]) -> Result<Staged, BindError> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = jail.binds();
    // What a dead start staged goes first (the teardown normally did it).
    unstage(&dir).map_err(|e| BindError::Stage {
        path: dir.clone(),
        entry: dir.clone(),
        source: io::Error::other(e),
    })?;
    let mut staged = Staged {
        dir: Some(dir.clone()),
        sources: BindSources::default(),
    };
    if resolved.is_empty() && !vm.delegate_dataset {
        return Ok(staged);
    }
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|source| BindError::Stage {
            path: dir.clone(),
            entry: dir.clone(),
            source,
        })?;
    for (i, path) in resolved.iter().enumerate() {
        let open_err = |source| BindError::Open {
            path: path.clone(),
            source,
        };
        let fd = super::sys::open_path_no_symlinks(path).map_err(open_err)?;
        let kind = std::fs::File::from(fd.try_clone().map_err(open_err)?)
            .metadata()
            .map_err(open_err)?
            .file_type();
        if !(kind.is_dir() || kind.is_file()) {
            return Err(BindError::Kind { path: path.clone() });
        }
        let source = stage_one(&dir, &i.to_string(), &fd, path)?;
        staged.sources.filesystems.push(source);
    }
    if vm.delegate_dataset {
        let dataset = format!("{}/data", vm.zfs_filesystem);
        let target = data_target(vm)?;
        let (data, own_fs) = zone_root::open_data(&vm.zonepath)
            .map_err(|source| BindError::Layout {
                dataset: dataset.clone(),
                source,
            })?
            .ok_or_else(|| BindError::DataMissing {
                dataset: dataset.clone(),
                zonepath: vm.zonepath.clone(),
            })?;
        if !own_fs {
            return Err(BindError::DataNotMounted {
                dataset,
                zonepath: vm.zonepath.clone(),
            });
        }
        let fd = OwnedFd::from(data);
        let source = stage_one(&dir, "data", &fd, &vm.zonepath.join("data"))?;
        staged.sources.data = Some((source, target));
    }
    Ok(staged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vm(zonepath: &Path, extra: serde_json::Value) -> VmSpec {
        let mut obj = json!({
            "uuid": "6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60",
            "brand": "jail",
            "image_uuid": "11111111-2222-4333-8444-555555555555",
            "zpool": "zones",
            "zonepath": zonepath.to_string_lossy(),
        });
        if let (Some(o), Some(e)) = (obj.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                o.insert(k.clone(), v.clone());
            }
        }
        VmSpec::from_object(obj.as_object().unwrap()).unwrap()
    }

    /// Staging mounts: root only (as the jail tests).
    fn root() -> bool {
        // SAFETY: geteuid has no arguments and cannot fail.
        let ok = unsafe { libc::geteuid() } == 0;
        if !ok {
            eprintln!("SKIPPED: staging bind sources needs root");
        }
        ok
    }

    struct Rig {
        _t: tempfile::TempDir,
        base: PathBuf,
        jail: JailDir,
    }

    fn rig() -> Rig {
        let t = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(t.path()).unwrap();
        let jail = JailDir::new(&base.join("run"), &uuid::Uuid::nil());
        std::fs::create_dir_all(&jail.dir).unwrap();
        Rig { _t: t, base, jail }
    }

    #[test]
    fn a_staged_source_stays_the_checked_directory_after_a_swap() {
        if !root() {
            return;
        }
        let r = rig();
        let src = r.base.join("shared");
        let secret = r.base.join("secret");
        for d in [&src, &secret] {
            std::fs::create_dir(d).unwrap();
        }
        std::fs::write(src.join("marker"), "checked\n").unwrap();
        std::fs::write(secret.join("key"), "host secret\n").unwrap();
        let file = r.base.join("file");
        std::fs::write(&file, "a file\n").unwrap();
        let v = vm(&r.base.join("zone"), json!({}));
        let staged = stage(&v, &r.jail, &[src.clone(), file.clone()]).unwrap();
        let given = staged.sources.filesystems.clone();
        assert_eq!(
            given,
            [
                r.jail.binds().join("0").to_string_lossy(),
                r.jail.binds().join("1").to_string_lossy()
            ]
        );
        // The swap the runtime's mount would have followed.
        std::fs::rename(&src, r.base.join("moved")).unwrap();
        std::os::unix::fs::symlink(&secret, &src).unwrap();
        let p = Path::new(&given[0]);
        assert_eq!(
            std::fs::read_to_string(p.join("marker")).unwrap(),
            "checked\n"
        );
        assert!(!p.join("key").exists());
        assert_eq!(std::fs::read_to_string(&given[1]).unwrap(), "a file\n");
        // Released: the entries are gone, the sources untouched.
        staged.release().unwrap();
        assert!(!r.jail.binds().exists());
        assert!(r.base.join("moved/marker").exists());
        assert!(file.exists());
        // Once swapped, the next start refuses the link.
        let e = stage(&v, &r.jail, std::slice::from_ref(&src)).unwrap_err();
        assert!(matches!(e, BindError::Open { .. }), "{e}");
        assert!(e.to_string().contains("symbolic link"), "{e}");
    }

    #[test]
    fn a_dead_starts_staging_is_detached_not_emptied() {
        if !root() {
            return;
        }
        let r = rig();
        let src = r.base.join("shared");
        std::fs::create_dir(&src).unwrap();
        std::fs::write(src.join("keep"), "x").unwrap();
        let v = vm(&r.base.join("zone"), json!({}));
        // As if vmadm died right after staging.
        let mut dead = stage(&v, &r.jail, std::slice::from_ref(&src)).unwrap();
        dead.dir = None;
        assert!(r.jail.binds().join("0/keep").exists());
        unstage(&r.jail.binds()).unwrap();
        assert!(!r.jail.binds().exists());
        assert!(
            src.join("keep").exists(),
            "the host directory keeps its files"
        );
        // Nothing staged: nothing to do.
        unstage(&r.jail.binds()).unwrap();
    }

    #[test]
    fn sources_must_be_directories_or_files() {
        let r = rig();
        let v = vm(Path::new("/nonexistent"), json!({}));
        let e = stage(&v, &r.jail, &[PathBuf::from("/dev/null")]).unwrap_err();
        assert!(matches!(e, BindError::Kind { .. }), "{e}");
        let e = stage(&v, &r.jail, &[PathBuf::from("/nonexistent/x")]).unwrap_err();
        assert!(matches!(e, BindError::Open { .. }), "{e}");
    }

    #[test]
    fn the_delegated_dataset_must_be_mounted_at_data() {
        let r = rig();
        let zp = r.base.join("zone");
        std::fs::create_dir_all(zp.join("root")).unwrap();
        let v = vm(&zp, json!({"delegate_dataset": true}));
        assert!(matches!(
            stage(&v, &r.jail, &[]).unwrap_err(),
            BindError::DataMissing { .. }
        ));
        // A directory of the zone's own file system is not the dataset.
        std::fs::create_dir(zp.join("data")).unwrap();
        let e = stage(&v, &r.jail, &[]).unwrap_err();
        assert!(matches!(e, BindError::DataNotMounted { .. }), "{e}");
        assert!(
            e.to_string()
                .contains("zfs mount zones/6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60/data"),
            "{e}"
        );
        std::fs::remove_dir(zp.join("data")).unwrap();
        std::os::unix::fs::symlink("/etc", zp.join("data")).unwrap();
        assert!(matches!(
            stage(&v, &r.jail, &[]).unwrap_err(),
            BindError::Layout {
                source: ZoneLayoutError::Symlink { .. },
                ..
            }
        ));
        // Without delegate_dataset and filesystems nothing is made.
        let plain = vm(&zp, json!({}));
        let s = stage(&plain, &r.jail, &[]).unwrap();
        assert_eq!(s.sources, BindSources::default());
        assert!(!r.jail.binds().exists());
    }

    #[test]
    fn the_in_jail_path_is_smartos_default() {
        let v = vm(Path::new("/zones/x"), json!({}));
        assert_eq!(
            data_target(&v).unwrap(),
            "/zones/6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60/data"
        );
        for bad in ["", "zones/../etc", "zones//x", "/zones/x"] {
            let mut v = v.clone();
            v.zfs_filesystem = bad.to_string();
            assert!(data_target(&v).is_err(), "{bad:?}");
        }
    }
}
