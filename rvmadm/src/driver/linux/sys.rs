//! The driver's few raw system calls: signalling a jail's init, the clock
//! tick rate for turning /proc start times into timestamps, looking a path
//! up inside a jail's root the way the jail itself would, opening a bind
//! mount's source without following links and staging it by descriptor,
//! and the page size and memlock limit the jail's limits are converted with.
//!
//! Kept here so the rest of the driver stays free of `unsafe` and libc.

use crate::driver::{Os, Signal};
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Sends `signal` (as Linux numbers it) to `pid`. `ESRCH` (already gone) is
/// reported as `Ok(false)`.
pub fn kill(pid: u32, signal: Signal) -> io::Result<bool> {
    let signal = signal
        .number_on(Os::Linux)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    send(pid, signal)
}

/// kill(2) with a raw number; 0 only checks that `pid` exists.
fn send(pid: u32, signal: libc::c_int) -> io::Result<bool> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pid out of range"))?;
    if pid <= 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "refusing pid <= 0",
        ));
    }
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    let rc = unsafe { libc::kill(pid, signal) };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ESRCH) {
        Ok(false)
    } else {
        Err(err)
    }
}

/// Clock ticks per second (`_SC_CLK_TCK`), the unit of /proc start times.
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf reads a constant; no pointers involved.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// True when `path` names something inside the directory `root`, resolved
/// as if `root` were `/`: absolute symlinks and `..` stay inside it
/// (`openat2` with `RESOLVE_IN_ROOT`), so a jail's `/bin -> /usr/bin` is
/// looked up in the jail and never on the host. `root` itself must be a
/// real directory (opened without following a link). A kernel without
/// `openat2` (before 5.6) answers `Ok(false)`.
pub fn exists_in_root(root: &Path, path: &str) -> io::Result<bool> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let c_root = CString::new(root.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))?;
    let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: `c_root` is a valid NUL-terminated string that outlives the call.
    let fd = unsafe { libc::open(c_root.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by open and is owned by nobody else.
    let dir = unsafe { OwnedFd::from_raw_fd(fd) };
    let c_path = CString::new(path.trim_start_matches('/'))
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))?;
    // SAFETY: open_how is plain integers; zero is "no flags" for each.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_PATH | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: the descriptor is open, `c_path` is NUL-terminated and `how`
    // is a live open_how whose size is passed alongside it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            c_path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if rc >= 0 {
        // SAFETY: openat2 returned a new descriptor that nobody else owns.
        drop(unsafe { OwnedFd::from_raw_fd(rc as libc::c_int) });
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP | libc::ENOSYS) => Ok(false),
        _ => Err(err),
    }
}

/// Opens the absolute `path` as an `O_PATH` descriptor without following
/// a symlink anywhere on it, its last component included (`openat2` with
/// `RESOLVE_NO_SYMLINKS`): a link on the way fails with `ELOOP`, so the
/// descriptor is of the object found under exactly these names. A kernel
/// without `openat2` (before 5.6) fails with `ENOSYS`.
pub fn open_path_no_symlinks(path: &Path) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::{FromRawFd, OwnedFd};
    if !path.is_absolute() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not an absolute path",
        ));
    }
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))?;
    // SAFETY: open_how is plain integers; zero is "no flags" for each.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_PATH | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: `c_path` is NUL-terminated and outlives the call, `how` is a
    // live open_how whose size is passed alongside it; AT_FDCWD is ignored
    // for an absolute path.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            libc::AT_FDCWD,
            c_path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat2 returned a new descriptor that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(rc as libc::c_int) })
}

/// Bind-mounts (recursively) the object `fd` refers to onto `target`, in
/// this process's mount namespace: mount(2) reaches it through
/// `/proc/self/fd/<n>`, a magic link to the open file itself, so no name on
/// the way to the source is looked up again.
pub fn bind_fd(fd: std::os::fd::BorrowedFd<'_>, target: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let src = CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))?;
    let dst = CString::new(target.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))?;
    // SAFETY: both strings are NUL-terminated and outlive the call; a bind
    // mount takes no file system type nor data.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            dst.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND | libc::MS_REC,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Detaches whatever is mounted on `path` (`MNT_DETACH`, not following a
/// link at `path`). `Ok(false)` when nothing is mounted there or `path` is
/// gone.
pub fn detach_mount(path: &Path) -> io::Result<bool> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))?;
    // SAFETY: `c` is NUL-terminated and outlives the call.
    let rc = unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH | libc::UMOUNT_NOFOLLOW) };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EINVAL | libc::ENOENT) => Ok(false),
        _ => Err(err),
    }
}

/// The memory page size (`_SC_PAGESIZE`), the unit of `kernel.shmall`.
pub fn page_size() -> u64 {
    // SAFETY: sysconf reads a constant; no pointers involved.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as u64
    } else {
        4096
    }
}

/// This process's hard `RLIMIT_MEMLOCK` in bytes; `None` when unlimited or
/// unreadable. Without CAP_SYS_RESOURCE the runtime cannot give a jail
/// more than this.
pub fn memlock_hard() -> Option<u64> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own and pass by pointer.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut r) };
    (rc == 0 && r.rlim_max != libc::RLIM_INFINITY).then_some(r.rlim_max)
}

/// True when the kernel has IPv6 (not booted with `ipv6.disable=1`): one
/// stat of its sysctl directory.
pub fn has_ipv6() -> bool {
    std::path::Path::new("/proc/sys/net/ipv6").exists()
}

/// Bit of CAP_SYS_RESOURCE in the capability masks of `/proc/<pid>/status`.
const CAP_SYS_RESOURCE: u32 = 24;

/// The effective capability set of this process (its low 64 bits), from
/// one `capget` system call; `None` when the kernel refuses it.
fn effective_caps() -> Option<u64> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    // _LINUX_CAPABILITY_VERSION_3: two 32-bit words per set.
    let mut header = Header {
        version: 0x2008_0522,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget fills `data` (two elements, as version 3 requires)
    // and may rewrite `header`; both are ours and outlive the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut header as *mut Header,
            data.as_mut_ptr(),
        )
    };
    (rc == 0).then(|| u64::from(data[0].effective) | (u64::from(data[1].effective) << 32))
}

/// The most `RLIMIT_MEMLOCK` (bytes) the runtime can give a jail: `None`
/// when there is no bound, because vmadm's own hard limit is unlimited
/// or because vmadm holds CAP_SYS_RESOURCE, which the runtime inherits and
/// may raise a hard limit with (as SmartOS enforces `max_locked_memory`
/// whatever it is). Without that capability, vmadm's hard limit. Asked at
/// every create: two system calls, no file read.
pub fn memlock_ceiling() -> Option<u64> {
    let hard = memlock_hard()?;
    memlock_ceiling_of(effective_caps(), Some(hard))
}

fn memlock_ceiling_of(caps: Option<u64>, hard: Option<u64>) -> Option<u64> {
    let has = caps.is_some_and(|c| c & (1 << CAP_SYS_RESOURCE) != 0);
    hard.filter(|_| !has)
}

/// Closes every descriptor above stderr that this process inherited. A
/// long-lived helper (the console log keeper) must not keep open what its
/// starter's parent happened to pass down, such as a lock file descriptor
/// held by `flock(1)`: the lock would last as long as the jail.
pub fn close_inherited_fds() {
    let fds: Vec<libc::c_int> = std::fs::read_dir("/proc/self/fd")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2)
        .collect();
    for fd in fds {
        // SAFETY: close(2) on a plain integer; nothing in this process
        // uses these descriptors (the directory listing's own one is
        // already closed, which makes its close a harmless EBADF).
        unsafe {
            libc::close(fd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_and_memlock() {
        assert!(page_size().is_power_of_two());
        // Whatever the host says, it is never zero when limited.
        assert_ne!(memlock_hard(), Some(0));
    }

    #[test]
    fn only_a_vmadm_without_sys_resource_bounds_memlock() {
        let with = Some(0x0000_01ff_ffff_ffff);
        let without = Some(0x0000_01ff_feff_ffff);
        assert_eq!(memlock_ceiling_of(with, Some(8 << 20)), None);
        assert_eq!(memlock_ceiling_of(without, Some(8 << 20)), Some(8 << 20));
        assert_eq!(memlock_ceiling_of(without, None), None);
        // Unknown: no capability is assumed.
        assert_eq!(memlock_ceiling_of(None, Some(64 << 10)), Some(64 << 10));
    }

    #[test]
    fn capget_agrees_with_proc_status() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let listed = status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok());
        assert!(listed.is_some());
        assert_eq!(effective_caps(), listed);
    }

    #[test]
    fn lookups_in_a_root_never_leave_it() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::fs::write(root.join("usr/bin/tool"), b"").unwrap();
        std::os::unix::fs::symlink("/usr/bin", root.join("bin")).unwrap();
        // An absolute link is resolved inside the root ...
        assert!(exists_in_root(&root, "/bin/tool").unwrap());
        // ... so a host file it would name elsewhere is not found,
        std::fs::write(t.path().join("outside"), b"").unwrap();
        std::os::unix::fs::symlink("../outside", root.join("escape")).unwrap();
        assert!(!exists_in_root(&root, "/escape").unwrap());
        assert!(!exists_in_root(&root, "/../outside").unwrap());
        assert!(!exists_in_root(&root, "/bin/none").unwrap());
        // and a root that is itself a link is refused.
        std::os::unix::fs::symlink(&root, t.path().join("link")).unwrap();
        assert!(exists_in_root(&t.path().join("link"), "/bin/tool").is_err());
    }

    #[test]
    fn opening_without_links_refuses_a_link_anywhere_on_the_path() {
        let t = tempfile::tempdir().unwrap();
        let real = std::fs::canonicalize(t.path()).unwrap();
        std::fs::create_dir_all(real.join("a/b")).unwrap();
        let fd = open_path_no_symlinks(&real.join("a/b")).unwrap();
        let f = std::fs::File::from(fd);
        assert!(f.metadata().unwrap().is_dir());
        std::os::unix::fs::symlink(real.join("a"), real.join("via")).unwrap();
        std::os::unix::fs::symlink(real.join("a/b"), real.join("last")).unwrap();
        for p in ["via/b", "last"] {
            let e = open_path_no_symlinks(&real.join(p)).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{p}");
        }
        assert!(open_path_no_symlinks(Path::new("relative")).is_err());
    }

    #[test]
    fn kill_of_missing_pid_is_false() {
        // pid_max is at most 4194304; this one cannot exist.
        assert!(!send(4_194_305, 0).unwrap_or(true));
        assert!(send(std::process::id(), 0).unwrap());
        assert!(send(0, 0).is_err());
        assert!(kill(0, Signal::Term).is_err());
    }
}
