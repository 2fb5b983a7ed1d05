//! Runtime state from the OS: is a jail's init alive, what is its pid, when
//! did it start.
//!
//! A successful start writes a tiny boot record (`<pid> <starttime>`) in the
//! jail's run directory. A query reads those records and `/proc/<pid>/stat`
//! for all jails in one pass inside this process: no runtime invocation, no
//! process per jail. The start time guards against pid reuse, and a zombie
//! init (the host's pid 1 may reap late) counts as stopped.

use super::names::JailDir;
use crate::driver::RuntimeState;
use std::collections::HashMap;
use std::io;
use std::path::Path;
use uuid::Uuid;

/// The fields of `/proc/<pid>/stat` the driver needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub state: char,
    /// Clock ticks since host boot.
    pub starttime: u64,
}

/// Parses a `/proc/<pid>/stat` line. The command name may hold spaces and
/// parentheses, so fields are counted from the last `)`.
pub fn parse_stat(line: &str) -> Option<ProcStat> {
    let rest = &line[line.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); starttime is field 22.
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        starttime: fields.get(19)?.parse().ok()?,
    })
}

pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// True while `pid` is the process that started at `start` and not a zombie.
pub fn alive(pid: u32, start: u64) -> bool {
    matches!(proc_stat(pid), Some(s) if s.starttime == start && !matches!(s.state, 'Z' | 'X' | 'x'))
}

/// Host boot time (seconds since the epoch) from `/proc/stat`.
pub fn boot_time() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// ISO-8601 UTC with milliseconds for a process start time.
pub fn timestamp(btime: u64, starttime: u64, ticks: u64) -> Option<String> {
    let ticks = ticks.max(1);
    let ms = btime.checked_mul(1000)? + starttime.checked_mul(1000)? / ticks;
    let t = chrono::DateTime::from_timestamp_millis(i64::try_from(ms).ok()?)?;
    Some(t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

/// The file a process runs, as (device, inode): `/proc/<pid>/exe` followed
/// to the file itself, so the answer holds whatever mount namespace or
/// root the process sees its binary under.
fn exe_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Waits until no process running the `runtime` binary has `needle` as one
/// of its arguments (bounded by `timeout`); true when none is left. One
/// scan of /proc per round. Processes running anything else are never
/// waited for, whatever their argv says: a tenant can name another jail's
/// bundle in its own argv, but cannot run the host's runtime binary.
pub fn wait_no_runtime_with_arg(
    runtime: Option<&Path>,
    needle: &str,
    timeout: std::time::Duration,
) -> bool {
    let Some(want) = runtime.and_then(exe_id) else {
        // No runtime binary: no runtime process can be running.
        return true;
    };
    let deadline = std::time::Instant::now() + timeout;
    let me = std::process::id().to_string();
    loop {
        let found = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| {
                let n = e.file_name();
                let n = n.to_string_lossy();
                n.bytes().all(|b| b.is_ascii_digit()) && n != me.as_str()
            })
            .any(|e| {
                std::fs::read(e.path().join("cmdline"))
                    .map(|c| c.split(|b| *b == 0).any(|a| a == needle.as_bytes()))
                    .unwrap_or(false)
                    && exe_id(&e.path().join("exe")) == Some(want)
            });
        if !found {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The record a successful start leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootRecord {
    pub pid: u32,
    pub start: u64,
}

impl BootRecord {
    pub fn parse(text: &str) -> Option<BootRecord> {
        let mut it = text.split_whitespace();
        Some(BootRecord {
            pid: it.next()?.parse().ok()?,
            start: it.next()?.parse().ok()?,
        })
    }

    pub fn read(dir: &JailDir) -> Option<BootRecord> {
        Self::parse(&std::fs::read_to_string(dir.boot_record()).ok()?)
    }

    /// Written to a temporary name and renamed, so a reader never sees half.
    pub fn write(&self, dir: &JailDir) -> io::Result<()> {
        let tmp = dir.dir.join(".boot.tmp");
        std::fs::write(&tmp, format!("{} {}\n", self.pid, self.start))?;
        std::fs::rename(tmp, dir.boot_record())
    }

    pub fn alive(&self) -> bool {
        alive(self.pid, self.start)
    }
}

/// The running jail's init, if it is alive.
pub fn running(dir: &JailDir) -> Option<BootRecord> {
    BootRecord::read(dir).filter(BootRecord::alive)
}

/// States of all `uuids` in one pass. Jails without a live init are absent.
pub fn states(run_dir: &Path, uuids: &[Uuid]) -> HashMap<Uuid, RuntimeState> {
    let mut out = HashMap::new();
    let base = run_dir.join("linux");
    if !base.is_dir() {
        return out;
    }
    let btime = boot_time();
    let ticks = super::sys::clock_ticks();
    // For many VMs (a big `list`) one directory listing says which jails
    // have a run directory at all, instead of a failed open per stopped
    // VM (docs/performance.md). Few VMs: the opens are cheaper.
    let present: Option<std::collections::HashSet<std::ffi::OsString>> = (uuids.len() > 32)
        .then(|| std::fs::read_dir(&base).ok())
        .flatten()
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect());
    for uuid in uuids {
        if let Some(p) = &present {
            if !p.contains(std::ffi::OsStr::new(&uuid.to_string())) {
                continue;
            }
        }
        let dir = JailDir::new(run_dir, uuid);
        let Some(rec) = running(&dir) else { continue };
        out.insert(
            *uuid,
            RuntimeState {
                running: true,
                pid: Some(rec.pid),
                boot_timestamp: btime.and_then(|b| timestamp(b, rec.start, ticks)),
                zoneid: None,
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_odd_command_names() {
        let line = "4242 (my (odd) cmd) S 1 4242 4242 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 123456 1000 10";
        let s = parse_stat(line).unwrap();
        assert_eq!(s.state, 'S');
        assert_eq!(s.starttime, 123456);
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn own_process_is_alive_and_wrong_start_is_not() {
        let me = std::process::id();
        let s = proc_stat(me).unwrap();
        assert!(alive(me, s.starttime));
        assert!(!alive(me, s.starttime + 1));
    }

    #[test]
    fn waits_only_for_the_runtime_binary_with_the_argument() {
        let mut child = std::process::Command::new("sleep")
            .arg("7.25")
            .spawn()
            .unwrap();
        let short = std::time::Duration::from_millis(50);
        // Until the child has exec'd, its cmdline is still ours: wait for it.
        let cmdline = format!("/proc/{}/cmdline", child.id());
        for _ in 0..200 {
            if std::fs::read(&cmdline).is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == b"7.25")) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let sleep = std::fs::canonicalize(format!("/proc/{}/exe", child.id())).unwrap();
        assert!(!wait_no_runtime_with_arg(Some(&sleep), "7.25", short));
        // Another binary naming the same argument does not count.
        let sh = super::super::runtime::locate("sh").unwrap();
        assert!(wait_no_runtime_with_arg(Some(&sh), "7.25", short));
        assert!(wait_no_runtime_with_arg(None, "7.25", short));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(wait_no_runtime_with_arg(
            Some(&sleep),
            "7.25",
            std::time::Duration::from_secs(2)
        ));
        assert!(wait_no_runtime_with_arg(
            Some(&sleep),
            "no-such-arg-xyz",
            short
        ));
    }

    #[test]
    fn timestamps_are_iso_utc_millis() {
        assert_eq!(
            timestamp(1_700_000_000, 250, 100).unwrap(),
            "2023-11-14T22:13:22.500Z"
        );
    }

    #[test]
    fn boot_record_roundtrip_and_states() {
        let tmp = tempfile::tempdir().unwrap();
        let me = std::process::id();
        let start = proc_stat(me).unwrap().starttime;
        let live = Uuid::new_v4();
        let dead = Uuid::new_v4();
        for (u, rec) in [
            (live, BootRecord { pid: me, start }),
            (
                dead,
                BootRecord {
                    pid: me,
                    start: start + 7,
                },
            ),
        ] {
            let d = JailDir::new(tmp.path(), &u);
            std::fs::create_dir_all(&d.dir).unwrap();
            rec.write(&d).unwrap();
            assert_eq!(BootRecord::read(&d), Some(rec));
        }
        let st = states(tmp.path(), &[live, dead, Uuid::new_v4()]);
        assert_eq!(st.len(), 1);
        assert_eq!(st[&live].pid, Some(me));
        assert!(st[&live].boot_timestamp.as_deref().unwrap().ends_with('Z'));
    }
}
