//! Advisory file locks: one global lock (create, delete, receive) and one per
//! VM (every other change). Locks are held by an open file and released when
//! the guard drops — also when the process dies, so a `kill -9` never leaves
//! a stale lock behind.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

/// Holds a lock until dropped.
#[derive(Debug)]
pub struct LockGuard {
    _file: File,
}

/// The lock's open file. A child process given this descriptor holds the
/// lock as well, until it exits (see `CommandRunner::stream_holding`).
impl AsFd for LockGuard {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self._file.as_fd()
    }
}

/// Takes an exclusive lock on `path`, creating the file if needed; waits
/// for another holder to finish.
pub fn exclusive(path: &Path) -> io::Result<LockGuard> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    file.lock()?;
    Ok(LockGuard { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn second_holder_waits_for_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.lock");
        let g = exclusive(&p).unwrap();
        let (tx, rx) = mpsc::channel();
        let p2 = p.clone();
        let t = std::thread::spawn(move || {
            let _g = exclusive(&p2).unwrap();
            tx.send(()).unwrap();
        });
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
        drop(g);
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
        t.join().unwrap();
    }
}
