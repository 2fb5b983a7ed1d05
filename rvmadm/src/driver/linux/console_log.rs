//! The console log keeper: the process that holds the read end of a jail's
//! console pipe and keeps only the newest output.
//!
//! A jail's init writes its stdout and stderr into a pipe, never into a file
//! directly, so a tenant cannot fill the host's run directory. The reader is
//! `vmadm` itself, started by the driver at every boot under a hidden first
//! argument ([`KEEPER_ARG`]) and detached from the caller, so it outlives the
//! `vmadm start` that made it and ends by itself when the last process of
//! the jail closes the pipe. It appends to `console.log` (mode 0600) until
//! the file would pass half of [`LOG_CAP`], then renames it to
//! `console.log.1`, replacing the older half, and starts afresh: the newest
//! output is always kept, at least half the cap of it and never more than
//! the whole cap on disk. A write error (disk full) drops that chunk but
//! the pipe is still drained, so the jail never blocks on its console. The
//! keeper closes every descriptor it inherited beyond stdio first, so it
//! holds nothing of its starter's (a `flock(1)` lock, say) for the jail's
//! lifetime.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// What both files of a console log hold at most together: 4 MiB.
pub const LOG_CAP: u64 = 4 << 20;

/// The first argument that makes `vmadm` run as a console log keeper:
/// `vmadm __console-log <log>`.
pub const KEEPER_ARG: &str = "__console-log";

/// The older half of a log.
pub fn rotated(log: &Path) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

fn open(log: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(log)
}

/// Copies `input` into `log` until end-of-file, keeping at most `cap`
/// bytes over `log` and its rotated half.
pub fn keep(mut input: impl Read, log: &Path, cap: u64) -> io::Result<()> {
    let half = (cap / 2).max(1);
    let mut file = open(log)?;
    let mut size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let mut chunk = &buf[..n];
        while !chunk.is_empty() {
            if size >= half {
                std::fs::rename(log, rotated(log))?;
                file = open(log)?;
                size = 0;
            }
            let room = usize::try_from(half - size).unwrap_or(usize::MAX);
            let (now, rest) = chunk.split_at(chunk.len().min(room));
            // A failed write loses this chunk, not the jail's console.
            if file.write_all(now).is_ok() {
                size += now.len() as u64;
            } else {
                size = half;
            }
            chunk = rest;
        }
    }
}

/// The keeper's entry point (`args` follow [`KEEPER_ARG`]): reads stdin
/// into the log named by the one argument; returns the exit code.
pub fn keeper_main(args: &[String]) -> i32 {
    let [log] = args else {
        return 2;
    };
    super::sys::close_inherited_fds();
    match keep(io::stdin().lock(), Path::new(log), LOG_CAP) {
        Ok(()) => 0,
        Err(_) => {
            // Keep draining so the jail's writes never block; its output is
            // lost, which is all a keeper without a log can do.
            let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keeps_the_newest_output_within_the_cap() {
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("console.log");
        // 10 000 numbered lines, 1 000 bytes of cap.
        let text: String = (0..10_000).map(|i| format!("line {i:05}\n")).collect();
        keep(text.as_bytes(), &log, 1000).unwrap();
        let new = std::fs::read_to_string(&log).unwrap();
        let old = std::fs::read_to_string(rotated(&log)).unwrap();
        assert!(new.len() + old.len() <= 1000);
        assert!(old.len() == 500 && !new.is_empty());
        let kept = old + &new;
        assert!(text.ends_with(&kept), "the kept bytes are the last ones");
        assert!(kept.ends_with("line 09999\n"));
        let mode = std::fs::metadata(&log).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn short_output_is_kept_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("console.log");
        keep(&b"booted\n"[..], &log, LOG_CAP).unwrap();
        keep(&b"again\n"[..], &log, LOG_CAP).unwrap();
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "booted\nagain\n");
        assert!(!rotated(&log).exists());
        assert_eq!(keeper_main(&[]), 2);
    }
}
