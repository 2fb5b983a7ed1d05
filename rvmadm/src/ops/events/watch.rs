//! What wakes `vmadm events` on Linux: inotify on the record and lock
//! directories, and one pidfd per running jail's init.
//!
//! - A record written (renamed into place), removed or written in place
//!   names its VM: `vms/<uuid>.json`.
//! - A VM lock file closed names a VM some verb has just finished changing
//!   (start and stop may leave the record as it was: only the runtime
//!   changed).
//! - A pidfd turns readable when its process has exited (zombie or reaped),
//!   whoever killed it: this is how an init killed from outside, or dying on
//!   its own, is seen. pidfds are the kernel's own exit notification for any
//!   process, not only children; the runtimes' own channels (`runc events`,
//!   a shim) would mean one process or socket per jail and a runtime-specific
//!   protocol, and FreeBSD jails have none.
//!
//! A queue overflow or a removed watch asks for a full rescan. The syscalls
//! and their `unsafe` stay in this file.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::Duration;
use uuid::Uuid;

/// What a wait found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Wake {
    /// Something about this VM may have changed.
    Vm(Uuid),
    /// Events were lost (queue overflow, a watched directory went): compare
    /// everything.
    All,
}

/// The armed watches of one listener.
pub(super) struct Watch {
    inotify: OwnedFd,
    vms_wd: i32,
    locks_wd: i32,
    /// The init each running VM is watched through: (pid, pidfd).
    inits: HashMap<Uuid, (u32, OwnedFd)>,
}

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn add_watch(fd: RawFd, dir: &Path, mask: u32) -> io::Result<i32> {
    use std::os::unix::ffi::OsStrExt;
    std::fs::create_dir_all(dir)?;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `fd` is an open inotify descriptor and `c` a NUL-terminated
    // path that outlives the call.
    cvt(unsafe { libc::inotify_add_watch(fd, c.as_ptr(), mask) })
}

/// The uuid a file name of the record or lock directory is about.
fn uuid_of(name: &[u8], suffix: &str) -> Option<Uuid> {
    let name = std::str::from_utf8(name).ok()?;
    Uuid::parse_str(name.strip_suffix(suffix)?).ok()
}

impl Watch {
    /// Arms the watches on `vms` and `locks` (made if missing). Nothing that
    /// happens there after this returns is missed.
    pub(super) fn new(vms: &Path, locks: &Path) -> io::Result<Watch> {
        // SAFETY: plain syscall; the result is checked before use.
        let fd = cvt(unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) })?;
        // SAFETY: `fd` was just returned by inotify_init1 and is ours alone.
        let inotify = unsafe { OwnedFd::from_raw_fd(fd) };
        let vms_wd = add_watch(
            fd,
            vms,
            libc::IN_MOVED_TO | libc::IN_MOVED_FROM | libc::IN_DELETE | libc::IN_CLOSE_WRITE,
        )?;
        let locks_wd = add_watch(fd, locks, libc::IN_CLOSE_WRITE)?;
        Ok(Watch {
            inotify,
            vms_wd,
            locks_wd,
            inits: HashMap::new(),
        })
    }

    /// The pid whose exit is watched for `uuid`, if any.
    pub(super) fn tracked(&self, uuid: &Uuid) -> Option<u32> {
        self.inits.get(uuid).map(|(pid, _)| *pid)
    }

    /// Watches `pid` as the init of `uuid` (replacing an older one).
    /// `Ok(false)`: the process is already gone.
    pub(super) fn track(&mut self, uuid: Uuid, pid: u32) -> io::Result<bool> {
        let Ok(raw) = libc::pid_t::try_from(pid) else {
            return Ok(false);
        };
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
        let rc = unsafe { libc::syscall(libc::SYS_pidfd_open, raw, 0) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ESRCH) {
                self.inits.remove(&uuid);
                return Ok(false);
            }
            return Err(e);
        }
        let fd = RawFd::try_from(rc).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        // SAFETY: the kernel just returned this descriptor to us.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        self.inits.insert(uuid, (pid, owned));
        Ok(true)
    }

    /// Stops watching `uuid`'s init.
    pub(super) fn untrack(&mut self, uuid: &Uuid) {
        self.inits.remove(uuid);
    }

    /// Waits up to `timeout` for something to happen; empty on timeout or
    /// a signal. VMs come in the order their events were queued, each once.
    pub(super) fn wait(&mut self, timeout: Duration) -> io::Result<Vec<Wake>> {
        let order: Vec<Uuid> = self.inits.keys().copied().collect();
        let mut fds: Vec<libc::pollfd> = std::iter::once(self.inotify.as_raw_fd())
            .chain(
                order
                    .iter()
                    .filter_map(|u| self.inits.get(u))
                    .map(|(_, fd)| fd.as_raw_fd()),
            )
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        let n = fds.len() as libc::nfds_t;
        // SAFETY: `fds` is a live array of `n` pollfd structs.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), n, ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(Vec::new())
            } else {
                Err(e)
            };
        }
        let mut wakes = Vec::new();
        if fds[0].revents != 0 {
            self.drain_inotify(&mut wakes)?;
        }
        for (pfd, uuid) in fds[1..].iter().zip(&order) {
            if pfd.revents != 0 {
                // Readable for good once the process is gone.
                self.inits.remove(uuid);
                wakes.push(Wake::Vm(*uuid));
            }
        }
        let mut seen = std::collections::HashSet::new();
        wakes.retain(|w| seen.insert(*w));
        Ok(wakes)
    }

    fn drain_inotify(&mut self, wakes: &mut Vec<Wake>) -> io::Result<()> {
        let header = std::mem::size_of::<libc::inotify_event>();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            // SAFETY: reads at most `buf.len()` bytes into `buf`.
            let n =
                unsafe { libc::read(self.inotify.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                let e = io::Error::last_os_error();
                return match e.kind() {
                    io::ErrorKind::WouldBlock => Ok(()),
                    io::ErrorKind::Interrupted => continue,
                    _ => Err(e),
                };
            }
            let n = n as usize;
            if n == 0 {
                return Ok(());
            }
            let mut at = 0;
            while at + header <= n {
                // SAFETY: the kernel wrote a whole inotify_event header at
                // `at` (checked against `n`); it may be unaligned in `buf`.
                let ev: libc::inotify_event =
                    unsafe { std::ptr::read_unaligned(buf.as_ptr().add(at).cast()) };
                let name_start = at + header;
                let name_end = (name_start + ev.len as usize).min(n);
                let raw = &buf[name_start..name_end];
                let name = &raw[..raw.iter().position(|b| *b == 0).unwrap_or(raw.len())];
                at = name_end;
                if ev.mask & (libc::IN_Q_OVERFLOW | libc::IN_IGNORED) != 0 {
                    wakes.push(Wake::All);
                } else if ev.wd == self.vms_wd {
                    if let Some(u) = uuid_of(name, ".json") {
                        wakes.push(Wake::Vm(u));
                    }
                } else if ev.wd == self.locks_wd {
                    if let Some(u) = uuid_of(name, ".lock") {
                        wakes.push(Wake::Vm(u));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_renames_lock_closes_and_exits_wake_their_vm() {
        let dir = tempfile::tempdir().unwrap();
        let (vms, locks) = (dir.path().join("vms"), dir.path().join("locks"));
        let mut w = Watch::new(&vms, &locks).unwrap();
        let a = Uuid::new_v4();
        let b = Uuid::new_v4();
        std::fs::write(vms.join(".tmp"), "{}").unwrap();
        std::fs::rename(vms.join(".tmp"), vms.join(format!("{a}.json"))).unwrap();
        std::fs::write(locks.join(format!("{b}.lock")), "").unwrap();
        std::fs::write(locks.join("global.lock"), "").unwrap();
        std::fs::remove_file(vms.join(format!("{a}.json"))).unwrap();
        let wakes = w.wait(Duration::from_secs(5)).unwrap();
        assert_eq!(wakes, [Wake::Vm(a), Wake::Vm(b)]);

        let mut child = std::process::Command::new("sleep")
            .arg("1000")
            .spawn()
            .unwrap();
        assert!(w.track(a, child.id()).unwrap());
        assert_eq!(w.tracked(&a), Some(child.id()));
        assert!(w.wait(Duration::from_millis(1)).unwrap().is_empty());
        child.kill().unwrap();
        // Not reaped yet: a zombie already counts as exited.
        assert_eq!(w.wait(Duration::from_secs(5)).unwrap(), [Wake::Vm(a)]);
        assert_eq!(w.tracked(&a), None);
        child.wait().unwrap();
    }
}
