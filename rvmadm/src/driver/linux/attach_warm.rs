//! Pays the kernel's cgroup-attach grace period while a boot does other work.
//!
//! The runtime puts a jail's first process into its cgroups by writing the
//! pid to `cgroup.procs`. The kernel serialises every such move with one
//! host-wide percpu rwsem, and the write side of that lock, taken when no
//! other move happened lately, first waits for a whole RCU grace period:
//! 7–8 ms on our 2-vCPU build hosts, sometimes 15–20 ms, a quarter of a
//! whole start. A move made while another is under way, or within a grace
//! period after the last one, does not wait again (the lock stays in its
//! writer-friendly state; this is what the `favordynmods` cgroup mount
//! option does for good).
//!
//! So from the moment a boot begins until the runtime has returned (and for
//! the first second of a `vmadm exec` or console, whose `runc exec` makes
//! the same move), a thread of vmadm keeps that state alive: every few ms it moves vmadm into
//! the very cgroup it is in (a move to the same place changes nothing in
//! the cgroup tree). The first of those moves waits out the grace period
//! while vmadm checks the layout, makes the network or waits for the clone,
//! and while the runtime's Go process starts; the runtime's own move then
//! finds the lock warm. Where no cgroup file can be opened (a test's fake
//! cgroup root, a host without cgroups) nothing is started; a failed write
//! ends the thread. It changes no state anyone sees, so nothing needs undoing.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Time between two moves: well under one grace period, so the lock never
/// falls back to its idle state between them.
const PERIOD: Duration = Duration::from_millis(3);

/// How long a boot's warmer may run: its guard is dropped when the runtime
/// returns; this bounds one whose guard is kept (a prepared start that
/// never came).
pub(super) const FOR_BOOT: Duration = Duration::from_secs(5);

/// How long an exec's warmer runs: `runc exec` moves its process into the
/// jail's cgroups within its first tens of ms, and the command it runs
/// (a console session) may last for hours, so the thread stops by itself.
pub(super) const FOR_EXEC: Duration = Duration::from_secs(1);

/// While alive, a thread keeps the cgroup attach lock warm; dropping it
/// stops the thread (at its next wake-up, without waiting for it).
#[derive(Debug)]
pub(super) struct AttachWarmer {
    stop: Arc<AtomicBool>,
}

impl AttachWarmer {
    /// Starts warming with the `cgroup.procs` file of the cgroup this
    /// process is in, under `cgroup_root`, for at most `lifetime`; None when
    /// there is none to write.
    pub(super) fn start(cgroup_root: &Path, lifetime: Duration) -> Option<AttachWarmer> {
        let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        let file = own_procs_files(cgroup_root, &own)
            .into_iter()
            .find_map(|p| std::fs::OpenOptions::new().write(true).open(p).ok())?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let pid = std::process::id().to_string();
        std::thread::Builder::new()
            .name("attach-warm".into())
            .spawn(move || keep_warm(&file, pid.as_bytes(), &flag, lifetime))
            .ok()?;
        Some(AttachWarmer { stop })
    }
}

impl Drop for AttachWarmer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn keep_warm(procs: &File, pid: &[u8], stop: &AtomicBool, lifetime: Duration) {
    let until = Instant::now() + lifetime;
    while !stop.load(Ordering::Relaxed) && Instant::now() < until {
        if procs.write_at(pid, 0).is_err() {
            return;
        }
        std::thread::sleep(PERIOD);
    }
}

/// The `cgroup.procs` files of the cgroups named in `proc_self_cgroup` (the
/// text of `/proc/self/cgroup`), below `root`, best first: hierarchies
/// without controllers (named v1 ones such as systemd's, then cgroup2 in a
/// hybrid layout), then the others, so that the move touches as little as
/// possible.
fn own_procs_files(root: &Path, proc_self_cgroup: &str) -> Vec<PathBuf> {
    let unified = root.join("cgroup.controllers").exists();
    let mut ranked: Vec<(u8, PathBuf)> = Vec::new();
    for line in proc_self_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        // The kernel writes these paths; still, never leave the root.
        if path.split('/').any(|c| c == "..") {
            continue;
        }
        let (rank, mount) = if controllers.is_empty() {
            (
                1,
                if unified {
                    root.to_path_buf()
                } else {
                    root.join("unified")
                },
            )
        } else if let Some(name) = controllers.strip_prefix("name=") {
            (0, root.join(name))
        } else {
            let first = controllers.split(',').next().unwrap_or(controllers);
            (2, root.join(first))
        };
        ranked.push((
            rank,
            mount
                .join(path.trim_start_matches('/'))
                .join("cgroup.procs"),
        ));
    }
    ranked.sort_by_key(|(rank, _)| *rank);
    ranked.into_iter().map(|(_, p)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "9:name=systemd:/user.slice\n8:pids:/\n4:memory:/a/b\n\
                          3:cpu,cpuacct:/\n0::/user.slice\n";

    #[test]
    fn named_hierarchies_come_first_then_cgroup2_then_controllers() {
        let files = own_procs_files(Path::new("/cg"), HYBRID);
        let want: Vec<PathBuf> = [
            "/cg/systemd/user.slice/cgroup.procs",
            "/cg/unified/user.slice/cgroup.procs",
            "/cg/pids/cgroup.procs",
            "/cg/memory/a/b/cgroup.procs",
            "/cg/cpu/cgroup.procs",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(files, want);
    }

    #[test]
    fn a_unified_host_writes_at_the_root_of_its_mount() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("cgroup.controllers"), "cpu memory\n").unwrap();
        let files = own_procs_files(tmp.path(), "0::/system.slice/x.service\n");
        assert_eq!(
            files,
            vec![tmp.path().join("system.slice/x.service/cgroup.procs")]
        );
    }

    #[test]
    fn paths_that_climb_and_garbled_lines_are_skipped() {
        let files = own_procs_files(
            Path::new("/cg"),
            "garbage\n4:memory:/../../etc\n8:pids:/ok\n",
        );
        assert_eq!(files, vec![PathBuf::from("/cg/pids/ok/cgroup.procs")]);
    }

    #[test]
    fn nothing_starts_where_no_procs_file_exists() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(AttachWarmer::start(tmp.path(), FOR_BOOT).is_none());
        // Nothing was created either: the files are opened, never made.
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    }

    /// On the real host (root, as CI runs): the warmer starts, and moving
    /// this process to where it is leaves it where it was.
    #[test]
    fn warming_on_this_host_moves_nothing() {
        let before = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let warm = AttachWarmer::start(Path::new("/sys/fs/cgroup"), FOR_BOOT);
        if warm.is_none() {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "no writable cgroup.procs of our own under /sys/fs/cgroup (CI runs as root)"
            );
            eprintln!("SKIPPED: no writable cgroup.procs here");
            return;
        }
        std::thread::sleep(Duration::from_millis(30));
        drop(warm);
        assert_eq!(
            std::fs::read_to_string("/proc/self/cgroup").unwrap(),
            before
        );
    }

    /// A stand-in `cgroup.procs`: its path and a write handle.
    fn fake_procs(tmp: &tempfile::TempDir) -> (PathBuf, File) {
        let procs = tmp.path().join("procs");
        std::fs::write(&procs, "").unwrap();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&procs)
            .unwrap();
        (procs, file)
    }

    #[test]
    fn the_thread_writes_until_stopped() {
        let tmp = tempfile::tempdir().unwrap();
        let (procs, file) = fake_procs(&tmp);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let t = std::thread::spawn(move || keep_warm(&file, b"4242", &flag, FOR_BOOT));
        std::thread::sleep(Duration::from_millis(20));
        stop.store(true, Ordering::Relaxed);
        t.join().unwrap();
        assert_eq!(std::fs::read_to_string(&procs).unwrap(), "4242");
    }

    #[test]
    fn the_thread_stops_by_itself_at_the_end_of_its_lifetime() {
        let tmp = tempfile::tempdir().unwrap();
        let (procs, file) = fake_procs(&tmp);
        let never = AtomicBool::new(false);
        // Returns although nobody stops it.
        keep_warm(&file, b"7", &never, Duration::from_millis(10));
        assert_eq!(std::fs::read_to_string(&procs).unwrap(), "7");
    }
}
