//! The SmartOS zone layout every driver boots: `<zonepath>/root` is the
//! jail's `/`, `<zonepath>/data` (when present) is the delegated dataset's
//! mount point.
//!
//! Both directories come from an image, and an image is untrusted: it can
//! ship `root -> /` or `data -> /etc`, and a host-side mount or write that
//! follows such a link lands on the host. So the check opens each name with
//! `O_NOFOLLOW | O_DIRECTORY` relative to an already-opened zonepath: a
//! symlink fails with `ELOOP`, anything that is not a directory with
//! `ENOTDIR`, and no path component is resolved twice.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The name of the zone's root directory inside the zonepath.
pub const ROOT_DIR: &str = "root";

/// The name of the delegated dataset's directory inside the zonepath.
pub const DATA_DIR: &str = "data";

/// What is wrong with a zonepath's layout.
#[derive(Debug, thiserror::Error)]
pub enum ZoneLayoutError {
    /// The dataset has no `root/` directory: an image laid out the pre-0.3
    /// way (tree at the top) or not a zone image at all.
    #[error(
        "{zonepath}: the dataset has no root/ directory; a zone image keeps its \
         file system tree under root/ (as SmartOS does). Rebuild the image with \
         `imgadm build`, or convert it by moving its tree into root/ (see docs/imgadm.md){}",
        if *.unmounted { UNMOUNTED_HINT } else { "" }
    )]
    MissingRoot {
        /// The zonepath checked.
        zonepath: PathBuf,
        /// Nothing is mounted at the zonepath as this process sees it: the
        /// dataset may well have `root/`, in a mount this process cannot see.
        unmounted: bool,
    },
    /// The dataset's top holds a file system tree (`etc`, `bin`, `sbin`
    /// beside `root`): an image laid out by an earlier rvmadm, whose `root`
    /// is the tree's home directory of root, not a zone root.
    #[error(
        "{zonepath}: the dataset holds a file system tree at its top ({entry}/ beside \
         root/), as images made by rvmadm before 0.3 did; a zone image keeps its tree \
         under root/ (as SmartOS does). Rebuild the image with `imgadm build`, or \
         convert it by moving its tree into root/ (see docs/imgadm.md)"
    )]
    TreeAtTop {
        /// The zonepath checked.
        zonepath: PathBuf,
        /// The first tree entry found at the top.
        entry: &'static str,
    },
    /// `root` or `data` is a symbolic link.
    #[error(
        "{zonepath}/{name} is a symbolic link; refusing to use it (it must be a real directory)"
    )]
    Symlink {
        /// The zonepath checked.
        zonepath: PathBuf,
        /// `root` or `data`.
        name: &'static str,
    },
    /// `root` or `data` exists but is not a directory.
    #[error("{zonepath}/{name} is not a directory")]
    NotDirectory {
        /// The zonepath checked.
        zonepath: PathBuf,
        /// `root` or `data`.
        name: &'static str,
    },
    /// The zonepath itself cannot be opened as a directory (or is a link).
    #[error("cannot open zonepath {zonepath}: {source}")]
    Zonepath {
        /// The zonepath checked.
        zonepath: PathBuf,
        /// The open error.
        source: io::Error,
    },
    /// Another error while opening `root` or `data`.
    #[error("cannot open {zonepath}/{name}: {source}")]
    Open {
        /// The zonepath checked.
        zonepath: PathBuf,
        /// `root` or `data`.
        name: &'static str,
        /// The open error.
        source: io::Error,
    },
}

/// Said with [`ZoneLayoutError::MissingRoot`] when the zonepath is no mount
/// point: zfs-fuse mounts datasets from its daemon, so a process in a mount
/// namespace those mounts do not reach (`ip netns exec` makes one) sees the
/// bare mountpoint directory.
const UNMOUNTED_HINT: &str = ". Nothing is mounted at the zonepath as this process sees it: \
     if the dataset is mounted elsewhere (zfs-fuse mounts from its own daemon), run vmadm in \
     the host's mount namespace (`nsenter --net=…` rather than `ip netns exec`)";

/// The zone's root directory on the host: `<zonepath>/root`.
pub fn zone_root(zonepath: &Path) -> PathBuf {
    zonepath.join(ROOT_DIR)
}

/// Names that belong to a file system tree and never to the top of a zone
/// dataset (which holds `root/`, `data`, `config/`, `cores/` …). Finding one
/// there means the tree is at the top, where earlier rvmadm versions put it.
const TREE_MARKERS: [&str; 4] = ["etc", "sbin", "bin", "usr"];

/// Checks that `<zonepath>/root` is a real directory, and that
/// `<zonepath>/data` is one too when it exists (it is optional: only VMs
/// with `delegate_dataset` have it, and the delegated dataset's creation
/// makes it). Call it before any mount into or write below the zonepath.
pub fn check(zonepath: &Path) -> Result<(), ZoneLayoutError> {
    let dir = open_zonepath(zonepath)?;
    check_entry(&dir, zonepath, ROOT_DIR, true)?;
    check_entry(&dir, zonepath, DATA_DIR, false)?;
    Ok(())
}

/// Refuses a dataset whose top holds a file system tree (`etc`, `sbin`,
/// `bin` or `usr` there): the layout of images made by earlier rvmadm, in
/// which `root` is the tree's `/root` home and not a zone root, so
/// [`check`] alone would take it. For hosts whose zone datasets keep
/// nothing of the guest at the top (Linux); a FreeBSD image keeps the
/// outer jail's toolset there, so that driver does not call it.
pub fn check_no_tree_at_top(zonepath: &Path) -> Result<(), ZoneLayoutError> {
    let dir = open_zonepath(zonepath)?;
    if let Some(entry) = TREE_MARKERS.into_iter().find(|name| exists_at(&dir, name)) {
        return Err(ZoneLayoutError::TreeAtTop {
            zonepath: zonepath.to_path_buf(),
            entry,
        });
    }
    Ok(())
}

/// `<zonepath>/data`, opened as [`check`] opens it (neither the zonepath
/// nor `data` may be a symlink), so that a bind mount can be made of the
/// descriptor rather than of a path someone could swap. `None` when there is
/// no `data`. The flag is true when `data` is the top of a file system of
/// its own (the delegated dataset mounted there) and false when it is just
/// a directory of the zonepath's dataset.
pub fn open_data(zonepath: &Path) -> Result<Option<(std::fs::File, bool)>, ZoneLayoutError> {
    use std::os::unix::fs::MetadataExt;
    let dir = open_zonepath(zonepath)?;
    let data = match open_dir(Some(&dir), Path::new(DATA_DIR)) {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        // The same refusals and messages as the layout check.
        Err(_) => {
            check_entry(&dir, zonepath, DATA_DIR, true)?;
            return Err(ZoneLayoutError::Open {
                zonepath: zonepath.to_path_buf(),
                name: DATA_DIR,
                source: io::Error::other("changed while being opened"),
            });
        }
    };
    let open_err = |source| ZoneLayoutError::Open {
        zonepath: zonepath.to_path_buf(),
        name: DATA_DIR,
        source,
    };
    let top = dir.metadata().map_err(open_err)?.dev();
    let own = data.metadata().map_err(open_err)?.dev();
    Ok(Some((data, own != top)))
}

/// [`check`] and [`check_no_tree_at_top`] in one pass, for the Linux
/// driver (which asks both at every create and start): the zonepath is
/// opened once and its entries read in one listing, whose entry types
/// answer for `root`, `data` and the tree markers. Over zfs-fuse each
/// lookup is a round trip to the daemon, and the listing replaces about
/// ten of them. An entry whose type the listing does not give is checked
/// by opening it, as [`check`] does.
pub fn check_without_tree_at_top(zonepath: &Path) -> Result<(), ZoneLayoutError> {
    let dir = open_zonepath(zonepath)?;
    let mut root = None;
    let mut data = None;
    let mut marker = None;
    list_entry_types(&dir, |name, kind| match name {
        b"root" => root = Some(kind),
        b"data" => data = Some(kind),
        _ => {
            if marker.is_none() {
                marker = TREE_MARKERS.into_iter().find(|m| m.as_bytes() == name);
            }
        }
    })
    .map_err(|source| ZoneLayoutError::Zonepath {
        zonepath: zonepath.to_path_buf(),
        source,
    })?;
    let judge = |seen: Option<u8>, name: &'static str, required: bool| {
        let zonepath = zonepath.to_path_buf();
        match seen {
            None if required => Err(ZoneLayoutError::MissingRoot {
                unmounted: !is_mount_point(&dir),
                zonepath,
            }),
            None => Ok(()),
            Some(libc::DT_DIR) => Ok(()),
            Some(libc::DT_LNK) => Err(ZoneLayoutError::Symlink { zonepath, name }),
            Some(libc::DT_UNKNOWN) => check_entry(&dir, &zonepath, name, required),
            Some(_) => Err(ZoneLayoutError::NotDirectory { zonepath, name }),
        }
    };
    judge(root, ROOT_DIR, true)?;
    judge(data, DATA_DIR, false)?;
    if let Some(entry) = marker {
        return Err(ZoneLayoutError::TreeAtTop {
            zonepath: zonepath.to_path_buf(),
            entry,
        });
    }
    Ok(())
}

/// Calls `each` with the name and `d_type` of every entry of `dir` (but
/// `.` and `..`), read from a duplicate of its descriptor.
fn list_entry_types(dir: &std::fs::File, mut each: impl FnMut(&[u8], u8)) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: dup of a descriptor `dir` keeps open; the duplicate is owned
    // by the stream fdopendir makes, and closedir below closes both.
    let fd = unsafe { libc::fcntl(dir.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh directory descriptor nobody else owns.
    let stream = unsafe { libc::fdopendir(fd) };
    if stream.is_null() {
        let e = io::Error::last_os_error();
        // SAFETY: fdopendir failed, so `fd` is still ours to close.
        unsafe { libc::close(fd) };
        return Err(e);
    }
    let result = loop {
        // errno tells the end of the listing from an error.
        // SAFETY: writing this thread's errno.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: `stream` is a live stream from fdopendir.
        let ent = unsafe { libc::readdir64(stream) };
        if ent.is_null() {
            let e = io::Error::last_os_error();
            break if e.raw_os_error().unwrap_or(0) == 0 {
                Ok(())
            } else {
                Err(e)
            };
        }
        // SAFETY: readdir64 returned a valid entry whose d_name is a
        // NUL-terminated string, valid until the next call on `stream`.
        let (name, kind) = unsafe {
            (
                std::ffi::CStr::from_ptr((*ent).d_name.as_ptr()).to_bytes(),
                (*ent).d_type,
            )
        };
        if name != b"." && name != b".." {
            each(name, kind);
        }
    };
    // SAFETY: `stream` came from fdopendir and is closed once.
    unsafe { libc::closedir(stream) };
    result
}

fn open_zonepath(zonepath: &Path) -> Result<std::fs::File, ZoneLayoutError> {
    open_dir(None, zonepath).map_err(|source| ZoneLayoutError::Zonepath {
        zonepath: zonepath.to_path_buf(),
        source,
    })
}

/// True when `name` exists in `dir`, of any type (a symlink is not followed).
fn exists_at(dir: &std::fs::File, name: &str) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(c) = CString::new(name) else {
        return false;
    };
    // SAFETY: `c` is NUL-terminated and outlives the call; `dir` keeps its
    // descriptor open; `st` is plain data the kernel fills in.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let rc = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            c.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    rc == 0
}

/// True when `dir` is the top of a mount (its device differs from its
/// parent's); only asked once `root/` is found missing.
fn is_mount_point(dir: &std::fs::File) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(own) = dir.metadata() else {
        return true;
    };
    let Ok(parent) = open_dir(Some(dir), Path::new("..")).and_then(|p| p.metadata()) else {
        return true;
    };
    own.dev() != parent.dev()
}

fn check_entry(
    dir: &std::fs::File,
    zonepath: &Path,
    name: &'static str,
    required: bool,
) -> Result<(), ZoneLayoutError> {
    match open_dir(Some(dir), Path::new(name)) {
        Ok(_) => Ok(()),
        Err(e) => {
            let zonepath = zonepath.to_path_buf();
            match e.raw_os_error() {
                Some(libc::ENOENT) if !required => Ok(()),
                Some(libc::ENOENT) => Err(ZoneLayoutError::MissingRoot {
                    unmounted: !is_mount_point(dir),
                    zonepath,
                }),
                Some(libc::ELOOP) => Err(ZoneLayoutError::Symlink { zonepath, name }),
                Some(libc::ENOTDIR) => {
                    // O_NOFOLLOW on a symlink gives ELOOP on Linux and FreeBSD,
                    // but a dangling link may report ENOTDIR on some systems:
                    // tell the two apart with lstat.
                    match std::fs::symlink_metadata(zonepath.join(name)) {
                        Ok(m) if m.file_type().is_symlink() => {
                            Err(ZoneLayoutError::Symlink { zonepath, name })
                        }
                        _ => Err(ZoneLayoutError::NotDirectory { zonepath, name }),
                    }
                }
                _ => Err(ZoneLayoutError::Open {
                    zonepath,
                    name,
                    source: e,
                }),
            }
        }
    }
}

/// Opens `path` as a directory without following a final symlink, relative
/// to `base` when given.
fn open_dir(base: Option<&std::fs::File>, path: &Path) -> io::Result<std::fs::File> {
    use std::os::fd::{AsRawFd, FromRawFd};
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))?;
    let at = base.map_or(libc::AT_FDCWD, |f| f.as_raw_fd());
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call,
    // and `at` is either AT_FDCWD or a descriptor `base` keeps open.
    let fd = unsafe { libc::openat(at, c.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by openat and is owned by nobody else.
    Ok(unsafe { std::fs::File::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_zonepath_with_root_and_no_data_passes() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("root")).unwrap();
        check(t.path()).unwrap();
        assert_eq!(zone_root(t.path()), t.path().join("root"));
    }

    #[test]
    fn a_missing_root_names_the_layout_and_the_fix() {
        let t = tempfile::tempdir().unwrap();
        let e = check(t.path()).unwrap_err();
        assert!(matches!(e, ZoneLayoutError::MissingRoot { .. }));
        let msg = e.to_string();
        assert!(msg.contains("root/"), "{msg}");
        assert!(msg.contains("imgadm build"), "{msg}");
    }

    /// The one-pass check gives, for every layout, the answer of the two
    /// checks it replaces, in their order.
    #[test]
    fn the_one_pass_check_answers_as_the_two_checks_do() {
        type Setup = fn(&Path);
        let layouts: [(&str, Setup); 10] = [
            ("root only", |z| {
                std::fs::create_dir(z.join("root")).unwrap()
            }),
            ("root and data", |z| {
                std::fs::create_dir(z.join("root")).unwrap();
                std::fs::create_dir(z.join("data")).unwrap();
            }),
            ("no root", |_| {}),
            ("root a symlink", |z| {
                std::fs::create_dir(z.join("real")).unwrap();
                std::os::unix::fs::symlink("real", z.join("root")).unwrap();
            }),
            ("data a symlink", |z| {
                std::fs::create_dir(z.join("root")).unwrap();
                std::os::unix::fs::symlink("/etc", z.join("data")).unwrap();
            }),
            ("root dangling", |z| {
                std::os::unix::fs::symlink("/nonexistent", z.join("root")).unwrap()
            }),
            ("root a file", |z| {
                std::fs::write(z.join("root"), "x").unwrap()
            }),
            ("data a file", |z| {
                std::fs::create_dir(z.join("root")).unwrap();
                std::fs::write(z.join("data"), "x").unwrap();
            }),
            ("tree at top", |z| {
                for d in ["root", "etc", "usr"] {
                    std::fs::create_dir(z.join(d)).unwrap();
                }
            }),
            ("tree and a root symlink", |z| {
                std::fs::create_dir(z.join("bin")).unwrap();
                std::os::unix::fs::symlink("/", z.join("root")).unwrap();
            }),
        ];
        for (what, setup) in layouts {
            let t = tempfile::tempdir().unwrap();
            setup(t.path());
            let two = check(t.path()).and_then(|()| check_no_tree_at_top(t.path()));
            let one = check_without_tree_at_top(t.path());
            assert_eq!(
                one.as_ref().map_err(ToString::to_string),
                two.as_ref().map_err(ToString::to_string),
                "{what}"
            );
        }
    }

    #[test]
    fn a_missing_root_on_a_bare_mountpoint_directory_says_nothing_is_mounted() {
        // A temporary directory is no mount point: the hint is given.
        let t = tempfile::tempdir().unwrap();
        let msg = check(t.path()).unwrap_err().to_string();
        assert!(msg.contains("Nothing is mounted at the zonepath"), "{msg}");
        // A real mount point (/proc is one) is told apart.
        let proc_dir = open_zonepath(Path::new("/proc")).unwrap();
        assert!(is_mount_point(&proc_dir));
        assert!(!is_mount_point(&open_zonepath(t.path()).unwrap()));
    }

    #[test]
    fn root_as_a_symlink_is_refused_even_when_it_points_at_a_directory() {
        let t = tempfile::tempdir().unwrap();
        symlink("/", t.path().join("root")).unwrap();
        let e = check(t.path()).unwrap_err();
        assert!(
            matches!(e, ZoneLayoutError::Symlink { name: "root", .. }),
            "{e}"
        );
    }

    #[test]
    fn data_as_a_symlink_is_refused() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("root")).unwrap();
        symlink("/etc", t.path().join("data")).unwrap();
        let e = check(t.path()).unwrap_err();
        assert!(
            matches!(e, ZoneLayoutError::Symlink { name: "data", .. }),
            "{e}"
        );
    }

    #[test]
    fn a_dangling_symlink_is_refused_too() {
        let t = tempfile::tempdir().unwrap();
        symlink("/nonexistent-target", t.path().join("root")).unwrap();
        let e = check(t.path()).unwrap_err();
        assert!(matches!(e, ZoneLayoutError::Symlink { .. }), "{e}");
    }

    #[test]
    fn root_as_a_file_is_not_a_directory() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("root"), b"x").unwrap();
        let e = check(t.path()).unwrap_err();
        assert!(matches!(e, ZoneLayoutError::NotDirectory { .. }), "{e}");
    }

    #[test]
    fn a_tree_at_the_top_is_refused_even_with_a_root_home_directory() {
        let t = tempfile::tempdir().unwrap();
        // The layout of images made by earlier rvmadm: /root is root's home.
        for d in ["root", "etc", "bin"] {
            std::fs::create_dir(t.path().join(d)).unwrap();
        }
        // check() alone takes it: root/ is a real directory ...
        check(t.path()).unwrap();
        let e = check_no_tree_at_top(t.path()).unwrap_err();
        assert!(
            matches!(e, ZoneLayoutError::TreeAtTop { entry: "etc", .. }),
            "{e}"
        );
        let msg = e.to_string();
        assert!(
            msg.contains("imgadm build") && msg.contains("root/"),
            "{msg}"
        );
        // A dangling link named like a tree entry counts as well.
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("root")).unwrap();
        symlink("/nonexistent", t.path().join("sbin")).unwrap();
        assert!(matches!(
            check_no_tree_at_top(t.path()).unwrap_err(),
            ZoneLayoutError::TreeAtTop { entry: "sbin", .. }
        ));
        // The host tooling's own entries beside root/ are fine.
        let t = tempfile::tempdir().unwrap();
        for d in ["root", "config", "cores", "data"] {
            std::fs::create_dir(t.path().join(d)).unwrap();
        }
        check_no_tree_at_top(t.path()).unwrap();
    }

    #[test]
    fn data_is_opened_without_following_links_and_said_not_mounted() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("root")).unwrap();
        assert!(open_data(t.path()).unwrap().is_none());
        std::fs::create_dir(t.path().join("data")).unwrap();
        std::fs::write(t.path().join("data/f"), b"x").unwrap();
        let (f, mounted) = open_data(t.path()).unwrap().unwrap();
        // A plain directory of the same file system: not a mounted dataset.
        assert!(!mounted);
        assert!(f.metadata().unwrap().is_dir());
        // A link planted as data is refused, whatever it points at.
        std::fs::remove_dir_all(t.path().join("data")).unwrap();
        symlink("/proc", t.path().join("data")).unwrap();
        let e = open_data(t.path()).unwrap_err();
        assert!(
            matches!(e, ZoneLayoutError::Symlink { name: "data", .. }),
            "{e}"
        );
        std::fs::remove_file(t.path().join("data")).unwrap();
        std::fs::write(t.path().join("data"), b"x").unwrap();
        assert!(matches!(
            open_data(t.path()).unwrap_err(),
            ZoneLayoutError::NotDirectory { .. }
        ));
    }

    #[test]
    fn a_zonepath_that_is_a_symlink_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let real = t.path().join("real");
        std::fs::create_dir_all(real.join("root")).unwrap();
        let link = t.path().join("zp");
        symlink(&real, &link).unwrap();
        let e = check(&link).unwrap_err();
        assert!(matches!(e, ZoneLayoutError::Zonepath { .. }), "{e}");
    }
}
