//! Host-side file operations inside a tenant's root, done with raw `*at`
//! syscalls so no symlink planted by the tenant is ever followed.
//!
//! The tenant owns everything below its root and keeps it across reboots, so
//! a host-side `mkdir`, mount point or file write that resolved
//! `/zones/<uuid>/root/etc/resolv.conf` by path could be redirected onto the
//! host by a symlink. Here every component is opened relative to its parent
//! with `O_NOFOLLOW`, and files are written to a temporary name then renamed
//! (rename replaces a symlink itself, it never writes through it).

use std::ffi::CString;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::driver::zone_root::{self, ZoneLayoutError};

/// The file operations a plan may ask for; a trait so runner tests can record
/// them instead of touching disk.
pub trait HostFs: Send + Sync {
    /// Makes sure `root/rel` is a real directory (creating missing ones, mode
    /// 0755), refusing symlinks anywhere below `root`.
    fn ensure_dir(&self, root: &Path, rel: &str) -> io::Result<()>;
    /// Checks that `root/rel` is a real directory reached without symlinks
    /// (before unmounting it: umount(8) resolves the path on the host).
    fn check_dir(&self, root: &Path, rel: &str) -> io::Result<()>;
    /// Replaces `root/rel` with `contents`, refusing symlinked directories.
    fn write_file(&self, root: &Path, rel: &str, contents: &[u8], mode: u32) -> io::Result<()>;
    /// The shared zone layout check (`driver::zone_root::check`).
    fn check_zone_root(&self, zonepath: &Path) -> Result<(), ZoneLayoutError>;
    /// The text of `root/rel`, read without following a symlink below
    /// `root`; `None` when it does not exist. The default (test doubles
    /// that keep no files) finds nothing.
    fn read_file(&self, root: &Path, rel: &str) -> io::Result<Option<String>> {
        let _ = (root, rel);
        Ok(None)
    }
}

/// The real implementation.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

fn cstr(s: &[u8]) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))
}

/// Splits a relative path into plain components, refusing `..`, `.`, empty
/// components and absolute paths so the walk cannot leave `root`.
fn components(rel: &str) -> io::Result<Vec<&str>> {
    let parts: Vec<&str> = rel.split('/').collect();
    if rel.is_empty()
        || parts
            .iter()
            .any(|p| p.is_empty() || *p == "." || *p == "..")
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{rel:?} is not a plain relative path"),
        ));
    }
    Ok(parts)
}

fn open_root(root: &Path) -> io::Result<OwnedFd> {
    let c = cstr(root.as_os_str().as_bytes())?;
    // SAFETY: `c` is a valid NUL-terminated string; the result is checked.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens directory `name` below `dir` without following a symlink; with
/// `create`, makes it first when missing.
fn open_dir_at(dir: &OwnedFd, name: &str, create: bool) -> io::Result<OwnedFd> {
    let c = cstr(name.as_bytes())?;
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    for attempt in 0..2 {
        // SAFETY: valid descriptor and NUL-terminated name; result checked.
        let fd = unsafe { libc::openat(dir.as_raw_fd(), c.as_ptr(), flags) };
        if fd >= 0 {
            // SAFETY: fresh descriptor we own.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::ENOENT) if create && attempt == 0 => {
                // SAFETY: as above. EEXIST means a racing creator won; retry the open.
                let rc = unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), 0o755) };
                if rc < 0 {
                    let e = io::Error::last_os_error();
                    if e.raw_os_error() != Some(libc::EEXIST) {
                        return Err(e);
                    }
                }
            }
            Some(libc::ELOOP) | Some(libc::ENOTDIR) | Some(libc::EMLINK) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{name:?} is a symlink or not a directory; refusing to follow it"),
                ))
            }
            _ => return Err(err),
        }
    }
    Err(io::Error::other(format!("cannot open directory {name:?}")))
}

/// The directory holding `root/rel`, walked without following symlinks,
/// and the last component of `rel`.
fn open_parent<'a>(root: &Path, rel: &'a str) -> io::Result<(OwnedFd, &'a str)> {
    let parts = components(rel)?;
    let (last, dirs) = parts
        .split_last()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty path"))?;
    let mut dir = open_root(root)?;
    for part in dirs {
        dir = open_dir_at(&dir, part, false)?;
    }
    Ok((dir, last))
}

impl HostFs for RealFs {
    fn read_file(&self, root: &Path, rel: &str) -> io::Result<Option<String>> {
        let (dir, last) = open_parent(root, rel)?;
        let name = cstr(last.as_bytes())?;
        // SAFETY: valid descriptor and NUL-terminated name; result checked.
        let fd = unsafe {
            libc::openat(
                dir.as_raw_fd(),
                name.as_ptr(),
                libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENOENT) => Ok(None),
                _ => Err(e),
            };
        }
        // SAFETY: fresh descriptor we own.
        let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        let mut text = String::new();
        io::Read::read_to_string(&mut file, &mut text)?;
        Ok(Some(text))
    }

    fn check_zone_root(&self, zonepath: &Path) -> Result<(), ZoneLayoutError> {
        zone_root::check(zonepath)
    }

    fn ensure_dir(&self, root: &Path, rel: &str) -> io::Result<()> {
        let mut dir = open_root(root)?;
        for part in components(rel)? {
            dir = open_dir_at(&dir, part, true)?;
        }
        Ok(())
    }

    fn check_dir(&self, root: &Path, rel: &str) -> io::Result<()> {
        let mut dir = open_root(root)?;
        for part in components(rel)? {
            dir = open_dir_at(&dir, part, false)?;
        }
        Ok(())
    }

    fn write_file(&self, root: &Path, rel: &str, contents: &[u8], mode: u32) -> io::Result<()> {
        let (dir, last) = open_parent(root, rel)?;
        let tmp_name = format!(".{last}.vmadm-{}", std::process::id());
        let tmp = cstr(tmp_name.as_bytes())?;
        let target = cstr(last.as_bytes())?;
        // SAFETY: valid descriptor and names; O_EXCL|O_NOFOLLOW never reuse
        // or follow an existing entry.
        let fd = unsafe {
            libc::openat(
                dir.as_raw_fd(),
                tmp.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o600 as libc::c_uint,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fresh descriptor we own.
        let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        let written = (|| {
            file.write_all(contents)?;
            // SAFETY: valid descriptor; the mode is set explicitly so the
            // process umask does not decide what the tenant sees.
            if unsafe { libc::fchmod(file.as_raw_fd(), mode as libc::mode_t) } < 0 {
                return Err(io::Error::last_os_error());
            }
            file.sync_all()?;
            // SAFETY: both names are relative to the same held directory.
            if unsafe {
                libc::renameat(
                    dir.as_raw_fd(),
                    tmp.as_ptr(),
                    dir.as_raw_fd(),
                    target.as_ptr(),
                )
            } < 0
            {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        })();
        if written.is_err() {
            // SAFETY: removes only our own temporary name.
            unsafe { libc::unlinkat(dir.as_raw_fd(), tmp.as_ptr(), 0) };
        }
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_replaces_files() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("etc")).unwrap();
        RealFs
            .write_file(
                t.path(),
                "etc/resolv.conf",
                b"nameserver 192.0.2.53\n",
                0o644,
            )
            .unwrap();
        RealFs
            .write_file(t.path(), "etc/resolv.conf", b"x\n", 0o644)
            .unwrap();
        assert_eq!(
            std::fs::read(t.path().join("etc/resolv.conf")).unwrap(),
            b"x\n"
        );
    }

    #[test]
    fn replaces_a_symlink_instead_of_writing_through_it() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        std::fs::write(&victim, b"host data").unwrap();
        std::fs::create_dir(t.path().join("etc")).unwrap();
        std::os::unix::fs::symlink(&victim, t.path().join("etc/resolv.conf")).unwrap();
        RealFs
            .write_file(t.path(), "etc/resolv.conf", b"tenant\n", 0o644)
            .unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"host data");
        assert!(!t
            .path()
            .join("etc/resolv.conf")
            .symlink_metadata()
            .unwrap()
            .file_type()
            .is_symlink());
    }

    #[test]
    fn refuses_symlinked_directories() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), t.path().join("etc")).unwrap();
        assert!(RealFs
            .write_file(t.path(), "etc/resolv.conf", b"x", 0o644)
            .is_err());
        std::os::unix::fs::symlink(outside.path(), t.path().join("proc")).unwrap();
        assert!(RealFs.ensure_dir(t.path(), "proc").is_err());
        assert!(RealFs.check_dir(t.path(), "proc").is_err());
        assert!(RealFs.check_dir(t.path(), "missing").is_err());
        assert!(RealFs.ensure_dir(t.path(), "dev/shm").is_ok());
        assert!(t.path().join("dev/shm").is_dir());
        assert!(RealFs.check_dir(t.path(), "dev/shm").is_ok());
        assert!(RealFs.ensure_dir(t.path(), "../x").is_err());
        assert!(std::fs::read_dir(outside.path()).unwrap().next().is_none());
    }

    #[test]
    fn reads_files_without_following_symlinks() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("secret");
        std::fs::write(&secret, b"host data").unwrap();
        RealFs
            .write_file(t.path(), "vmadm-pf.conf", b"# port x\n", 0o600)
            .unwrap();
        assert_eq!(
            RealFs
                .read_file(t.path(), "vmadm-pf.conf")
                .unwrap()
                .as_deref(),
            Some("# port x\n")
        );
        assert_eq!(RealFs.read_file(t.path(), "missing").unwrap(), None);
        std::os::unix::fs::symlink(&secret, t.path().join("link")).unwrap();
        assert!(RealFs.read_file(t.path(), "link").is_err());
        std::os::unix::fs::symlink(outside.path(), t.path().join("dir")).unwrap();
        assert!(RealFs.read_file(t.path(), "dir/secret").is_err());
    }
}
