//! Typed ZFS operations over the `zfs`/`zpool` commands.
//!
//! Works with FreeBSD ZFS, OpenZFS on Linux and zfs-fuse. zfs-fuse has no
//! `-p` (parsable numbers) flag and often answers "dataset is busy" to the
//! first destroy of a freshly used mounted dataset (that destroy unmounts
//! it, the next one succeeds), so this module never uses `-p` and retries a
//! busy destroy: at once, then after unmounting with a growing pause.
//!
//! Speed matters here (see docs/performance.md): every `zfs` process costs
//! milliseconds, so operations learn what they can from their own result
//! instead of asking first — [`Zfs::clone_snapshot`] tells a missing origin,
//! a missing pool and a taken name apart by the clone's own stderr.
//!
//! Every dataset and snapshot name passes [`valid_name`] before it reaches
//! an argv, the streamed `send` and `receive` included.

pub mod stream_header;

use crate::exec::{Argv, CommandRunner, ExecError, Pipe, StreamChild};
use std::os::fd::BorrowedFd;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

/// Why a ZFS operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ZfsError {
    /// The `zfs`/`zpool` command failed; carries argv and stderr.
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// The named dataset or snapshot is not there.
    #[error("dataset {0} does not exist")]
    NotFound(String),
    /// A dataset to be made already exists (its name).
    #[error("dataset {0} already exists")]
    AlreadyExists(String),
    /// The pool a dataset was to be made in does not exist (its name).
    #[error("zpool {0} does not exist")]
    NoSuchPool(String),
    /// A name failed [`valid_name`]; nothing was run.
    #[error("invalid ZFS name {0:?}")]
    BadName(String),
    /// A command's output did not have the expected shape.
    #[error("unexpected output from `{argv}`: {line:?}")]
    Parse {
        /// The command whose output was read.
        argv: Argv,
        /// The line that could not be parsed.
        line: String,
    },
}

/// Checks a dataset or snapshot name: components of `[A-Za-z0-9_.:-]`, joined by
/// `/`, at most one `@`. Keeps option-looking and path-escaping names out of argv.
pub fn valid_name(name: &str) -> bool {
    if name.is_empty() || name.len() > 255 || name.starts_with('-') {
        return false;
    }
    let (fs, snap) = match name.split_once('@') {
        Some((fs, snap)) => (fs, Some(snap)),
        None => (name, None),
    };
    let ok_component = |c: &str| {
        !c.is_empty()
            && c != "."
            && c != ".."
            && c.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "_.:-".contains(ch))
    };
    fs.split('/').all(ok_component) && snap.is_none_or(ok_component)
}

/// The parts after `@` of the lines of a `zfs list -o name` of snapshots
/// that belong to `dataset` itself (`-r -d 1` also lists none deeper, but
/// the name is checked rather than trusted).
fn snapshot_names_of(out: &str, dataset: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.split_once('@'))
        .filter(|(fs, _)| *fs == dataset)
        .map(|(_, s)| s.to_string())
        .collect()
}

fn checked(name: &str) -> Result<&str, ZfsError> {
    if valid_name(name) {
        Ok(name)
    } else {
        Err(ZfsError::BadName(name.to_string()))
    }
}

/// How often a "busy" destroy or rename is tried in all (see
/// `Zfs::run_unbusy`).
const BUSY_TRIES: u32 = 12;

/// How many of those come at once, before any unmount or pause: zfs-fuse
/// answers "busy" to the first destroy of every freshly mounted dataset and
/// now and then to the next one or two as well (its unmount finishes in the
/// daemon after the command returns); a bare retry loop is what the floor
/// does, so vmadm does the same before bringing in heavier means.
const BUSY_AT_ONCE: u32 = 3;

/// A row of `zfs list` with the columns this crate uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetInfo {
    /// Full dataset name, `<pool>/<path>`.
    pub name: String,
    /// The snapshot this dataset was cloned from (`None` for `-`).
    pub origin: Option<String>,
    /// Where it is mounted (`None` for `none`/`legacy`/`-`).
    pub mountpoint: Option<PathBuf>,
    /// The quota as zfs prints it (`2G`), `None` when unset.
    pub quota: Option<String>,
}

/// ZFS commands bound to one runner.
pub struct Zfs<'r> {
    runner: &'r dyn CommandRunner,
    /// What this host's `zfs receive` accepts, asked once (see
    /// [`Zfs::receive`]).
    receive_flags: OnceLock<ReceiveFlags>,
    /// A lock every plain command is started holding (see
    /// [`Zfs::holding`]).
    hold: Option<BorrowedFd<'r>>,
}

/// Options of `zfs receive` that not every ZFS has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiveFlags {
    /// `-u`: leave the received file system unmounted (OpenZFS, FreeBSD,
    /// and zfs-fuse although its usage text does not list it).
    pub unmounted: bool,
    /// `-x prop`: never take `prop` from the stream (OpenZFS, FreeBSD;
    /// not zfs-fuse).
    pub exclude: bool,
}

/// Properties a stream must never set, excluded with `-x` where the ZFS
/// knows it: where and whether the dataset mounts, and what its files may do.
const RECEIVE_EXCLUDED: [&str; 7] = [
    "mountpoint",
    "canmount",
    "setuid",
    "devices",
    "exec",
    "sharenfs",
    "sharesmb",
];

impl<'r> Zfs<'r> {
    /// ZFS operations run through `runner`.
    pub fn new(runner: &'r dyn CommandRunner) -> Self {
        Zfs {
            runner,
            receive_flags: OnceLock::new(),
            hold: None,
        }
    }

    /// The same commands, each started holding `hold` (a lock's
    /// descriptor, see `CommandRunner::output_holding`) when given: a
    /// `zfs destroy` of a vmadm killed meanwhile keeps the lock until it
    /// ends, so the next holder's repair never races it.
    pub fn holding(mut self, hold: Option<BorrowedFd<'r>>) -> Self {
        self.hold = hold;
        self
    }

    /// Runs `argv` to its end, holding the lock when one was given.
    fn output(&self, argv: &Argv) -> Result<crate::exec::Output, ExecError> {
        match self.hold {
            Some(h) => self.runner.output_holding(argv, None, h),
            None => self.runner.output(argv, None),
        }
    }

    /// The runner these operations use.
    pub fn runner(&self) -> &'r dyn CommandRunner {
        self.runner
    }

    fn zfs(&self, args: &[&str]) -> Result<String, ZfsError> {
        let argv = Argv::new(std::iter::once("zfs").chain(args.iter().copied()));
        Ok(self.runner.run_stdout(&argv)?)
    }

    /// True when the dataset or snapshot exists.
    pub fn exists(&self, name: &str) -> Result<bool, ZfsError> {
        let name = checked(name)?;
        let argv = Argv::new(["zfs", "list", "-H", "-o", "name", "-t", "all", name]);
        let out = self.output(&argv)?;
        if out.success() {
            return Ok(true);
        }
        let err = out.stderr_str();
        if err.contains("does not exist") || err.contains("no such") {
            Ok(false)
        } else {
            Err(ExecError::Failed {
                argv,
                status: out.status,
                stderr: err,
            }
            .into())
        }
    }

    /// True when the pool exists.
    pub fn pool_exists(&self, pool: &str) -> Result<bool, ZfsError> {
        let pool = checked(pool)?;
        let argv = Argv::new(["zpool", "list", "-H", "-o", "name", pool]);
        Ok(self.output(&argv)?.success())
    }

    /// Lists filesystems (not snapshots) directly below `parent` (depth 1).
    pub fn children(&self, parent: &str) -> Result<Vec<DatasetInfo>, ZfsError> {
        let parent = checked(parent)?;
        let argv = Argv::new([
            "zfs",
            "list",
            "-H",
            "-r",
            "-d",
            "1",
            "-t",
            "filesystem",
            "-o",
            "name,origin,mountpoint,quota",
            parent,
        ]);
        let out = self.runner.run_stdout(&argv)?;
        let mut rows = Vec::new();
        for line in out.lines().filter(|l| !l.is_empty()) {
            let cols: Vec<&str> = line.split('\t').collect();
            if cols.len() != 4 {
                return Err(ZfsError::Parse {
                    argv,
                    line: line.to_string(),
                });
            }
            if cols[0] == parent {
                continue;
            }
            let opt = |s: &str| (s != "-" && s != "none" && !s.is_empty()).then(|| s.to_string());
            rows.push(DatasetInfo {
                name: cols[0].to_string(),
                origin: opt(cols[1]),
                mountpoint: opt(cols[2]).map(PathBuf::from),
                quota: opt(cols[3]),
            });
        }
        Ok(rows)
    }

    /// `zfs list -H -r -d 1 -t snapshot [-s <sort>] -o <fields> <dataset>`:
    /// the snapshots of one (checked) dataset, one line each.
    fn list_snapshots(
        &self,
        dataset: &str,
        sort: Option<&str>,
        fields: &str,
    ) -> Result<String, ZfsError> {
        let mut args = vec!["list", "-H", "-r", "-d", "1", "-t", "snapshot"];
        if let Some(key) = sort {
            args.extend(["-s", key]);
        }
        args.extend(["-o", fields, dataset]);
        self.zfs(&args)
    }

    /// Names of the snapshots of one dataset (just the part after `@`).
    pub fn snapshots(&self, dataset: &str) -> Result<Vec<String>, ZfsError> {
        let dataset = checked(dataset)?;
        let out = self.list_snapshots(dataset, None, "name")?;
        Ok(snapshot_names_of(&out, dataset))
    }

    /// Names (after `@`) of the snapshots of one dataset, oldest first
    /// (by `createtxg`): the order a chain of incremental streams needs.
    pub fn snapshots_oldest_first(&self, dataset: &str) -> Result<Vec<String>, ZfsError> {
        let dataset = checked(dataset)?;
        let out = self.list_snapshots(dataset, Some("createtxg"), "name")?;
        Ok(snapshot_names_of(&out, dataset))
    }

    /// Reads one property value (`-` when unset).
    pub fn get(&self, dataset: &str, prop: &str) -> Result<String, ZfsError> {
        let dataset = checked(dataset)?;
        let argv = Argv::new(["zfs", "get", "-H", "-o", "value", prop, dataset]);
        let out = self.output(&argv)?;
        if !out.success() {
            let err = out.stderr_str();
            if err.contains("does not exist") {
                return Err(ZfsError::NotFound(dataset.to_string()));
            }
            return Err(ExecError::Failed {
                argv,
                status: out.status,
                stderr: err,
            }
            .into());
        }
        Ok(out.stdout_str().trim().to_string())
    }

    /// Where the dataset is mounted.
    pub fn mountpoint(&self, dataset: &str) -> Result<PathBuf, ZfsError> {
        Ok(PathBuf::from(self.get(dataset, "mountpoint")?))
    }

    /// `zfs set prop=value dataset`; `prop` comes from code, never from input.
    pub fn set(&self, dataset: &str, prop: &str, value: &str) -> Result<(), ZfsError> {
        let dataset = checked(dataset)?;
        self.zfs(&["set", &format!("{prop}={value}"), dataset])?;
        Ok(())
    }

    /// `zfs create` with `-o prop=value` for each of `props`.
    pub fn create(&self, dataset: &str, props: &[(&str, &str)]) -> Result<(), ZfsError> {
        let dataset = checked(dataset)?;
        let mut args: Vec<String> = vec!["create".into()];
        for (k, v) in props {
            args.push("-o".into());
            args.push(format!("{k}={v}"));
        }
        args.push(dataset.into());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.zfs(&refs)?;
        Ok(())
    }

    /// `zfs snapshot dataset@name`.
    pub fn snapshot(&self, snapshot: &str) -> Result<(), ZfsError> {
        self.zfs(&["snapshot", checked(snapshot)?])?;
        Ok(())
    }

    /// Snapshots a dataset and all its descendants atomically (`-r`), as a
    /// replication stream needs.
    pub fn snapshot_recursive(&self, snapshot: &str) -> Result<(), ZfsError> {
        self.zfs(&["snapshot", "-r", checked(snapshot)?])?;
        Ok(())
    }

    /// Clones `snapshot` into `target`, setting properties at creation so a
    /// quota is never missing on a visible clone. One process: a failure is
    /// classified from its stderr — [`ZfsError::AlreadyExists`] for a taken
    /// `target`, [`ZfsError::NoSuchPool`] when zfs names the pool missing,
    /// [`ZfsError::NotFound`] (the snapshot) when the origin cannot be
    /// opened (a missing pool in the origin's name reads the same; callers
    /// that must tell those apart ask [`Zfs::pool_exists`] on that path).
    pub fn clone_snapshot<V: AsRef<str>>(
        &self,
        snapshot: &str,
        target: &str,
        props: &[(&str, V)],
    ) -> Result<(), ZfsError> {
        self.clone_snapshot_while(snapshot, target, props, None, || ())
            .0
    }

    /// [`Zfs::clone_snapshot`], running `meanwhile` on this thread while the
    /// `zfs` process works (it spends most of its time waiting for the
    /// daemon), and returning both results. `create` writes and syncs the
    /// new VM's record there. The process is started first, so `meanwhile`
    /// never delays it; it is waited for whatever `meanwhile` returns.
    /// With `hold` (the caller's lock), the `zfs` process holds that lock
    /// too: should the caller be killed meanwhile, the next holder waits
    /// for the clone to land or fail instead of racing it.
    pub fn clone_snapshot_while<V: AsRef<str>, T>(
        &self,
        snapshot: &str,
        target: &str,
        props: &[(&str, V)],
        hold: Option<std::os::fd::BorrowedFd<'_>>,
        meanwhile: impl FnOnce() -> T,
    ) -> (Result<(), ZfsError>, T) {
        let argv = match clone_argv(snapshot, target, props) {
            Ok(argv) => argv,
            Err(e) => return (Err(e), meanwhile()),
        };
        // Streamed with nothing to stream: only so that it runs while we do.
        let started = match hold {
            Some(fd) => self.runner.stream_holding(&argv, Pipe::Stdout, fd),
            None => self.runner.stream(&argv, Pipe::Stdout),
        };
        let child = match started {
            Ok(child) => child,
            Err(e) => return (Err(e.into()), meanwhile()),
        };
        let done = meanwhile();
        let out = match child.wait() {
            Ok(out) => out,
            Err(e) => return (Err(e.into()), done),
        };
        if out.success() {
            return (Ok(()), done);
        }
        let err = out.stderr_str();
        (
            Err(classify_clone_error(
                snapshot, target, argv, out.status, err,
            )),
            done,
        )
    }

    /// `zfs rename`; both names are checked.
    pub fn rename(&self, from: &str, to: &str) -> Result<(), ZfsError> {
        self.zfs(&["rename", checked(from)?, checked(to)?])?;
        Ok(())
    }

    /// [`Zfs::rename`] by a `zfs` process that also holds the caller's lock
    /// `hold` (see [`Zfs::clone_snapshot_while`]): a caller killed meanwhile
    /// leaves the lock held until the rename has landed or failed.
    pub fn rename_holding(
        &self,
        from: &str,
        to: &str,
        hold: std::os::fd::BorrowedFd<'_>,
    ) -> Result<(), ZfsError> {
        let argv = Argv::new(["zfs", "rename", checked(from)?, checked(to)?]);
        let child = self.runner.stream_holding(&argv, Pipe::Stdout, hold)?;
        child.wait()?.check(&argv)?;
        Ok(())
    }

    /// `zfs rollback -r`: back to `snapshot`, destroying newer snapshots.
    pub fn rollback(&self, snapshot: &str) -> Result<(), ZfsError> {
        self.zfs(&["rollback", "-r", checked(snapshot)?])?;
        Ok(())
    }

    /// Destroys a dataset or snapshot (with `-r` for its snapshots). Missing is
    /// fine. A "busy" answer (zfs-fuse, or a lingering process) is retried after
    /// an unmount, a few times with a short pause.
    pub fn destroy(&self, name: &str, recursive: bool) -> Result<(), ZfsError> {
        let name = checked(name)?;
        let mut argv = vec!["zfs", "destroy"];
        if recursive {
            argv.push("-r");
        }
        argv.push(name);
        let argv = Argv::new(argv);
        let unmount = (!name.contains('@')).then_some(name);
        self.run_unbusy(&argv, unmount, &|err| {
            err.contains("does not exist") || err.contains("could not find")
        })
        .map(|_| ())
    }

    /// Runs `argv`; while zfs answers "busy" (zfs-fuse does for the first
    /// destroy or rename of a mounted dataset: that call unmounts it, and
    /// one of the next succeeds once the daemon is done) retries — the
    /// first [`BUSY_AT_ONCE`] times at once, without a pause or another
    /// process, so the common case costs one or two extra `zfs` calls and
    /// no sleep; after that it force-unmounts `unmount` and waits 5 ms,
    /// 10 ms, 20 ms … (about 1.3 s over the remaining tries) for a
    /// lingering user to go. A failure whose stderr satisfies `done` counts
    /// as success. Returns whether it had to unmount.
    fn run_unbusy(
        &self,
        argv: &Argv,
        unmount: Option<&str>,
        done: &dyn Fn(&str) -> bool,
    ) -> Result<bool, ZfsError> {
        let mut unmounted = false;
        let mut last = None;
        for attempt in 0..BUSY_TRIES {
            if attempt > BUSY_AT_ONCE {
                std::thread::sleep(Duration::from_millis(5 << (attempt - BUSY_AT_ONCE - 1)));
            }
            let out = self.output(argv)?;
            if out.success() {
                return Ok(unmounted);
            }
            let err = out.stderr_str();
            if done(&err) {
                return Ok(unmounted);
            }
            let failed = ExecError::Failed {
                argv: argv.clone(),
                status: out.status,
                stderr: err,
            };
            if !failed.stderr().contains("busy") {
                return Err(failed.into());
            }
            if attempt >= BUSY_AT_ONCE {
                if let Some(ds) = unmount {
                    let _ = self
                        .runner
                        .output(&Argv::new(["zfs", "unmount", "-f", ds]), None);
                    unmounted = true;
                }
            }
            last = Some(failed);
        }
        Err(last
            .map(ZfsError::from)
            .unwrap_or_else(|| ZfsError::NotFound(argv.to_string())))
    }

    /// Datasets cloned from any snapshot of `dataset` (for "image in use").
    pub fn dependent_clones(&self, dataset: &str) -> Result<Vec<String>, ZfsError> {
        let dataset = checked(dataset)?;
        let out = self.list_snapshots(dataset, None, "name,clones")?;
        Ok(out
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .flat_map(|(_, clones)| clones.split(',').map(str::to_string))
            .filter(|c| !c.is_empty() && c != "-")
            .collect())
    }
}

/// Image and bundle operations: streaming send/receive, pool-wide
/// listings that work without the `clones` property (zfs-fuse lacks it).
impl<'r> Zfs<'r> {
    /// `name → origin` of every filesystem and volume below `root`
    /// (recursive). The clone relation is derived from `origin` because
    /// zfs-fuse has no `clones` property.
    pub fn origins(&self, root: &str) -> Result<Vec<(String, Option<String>)>, ZfsError> {
        self.name_origin(root, "filesystem,volume")
    }

    /// `zfs list -r -t <types> -o name,origin <root>` as pairs, `-` read as
    /// no origin.
    fn name_origin(
        &self,
        root: &str,
        types: &str,
    ) -> Result<Vec<(String, Option<String>)>, ZfsError> {
        let root = checked(root)?;
        let out = self.zfs(&["list", "-H", "-r", "-t", types, "-o", "name,origin", root])?;
        Ok(out
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(name, origin)| {
                let origin = (origin != "-" && !origin.is_empty()).then(|| origin.to_string());
                (name.to_string(), origin)
            })
            .collect())
    }

    /// Full names (`fs@snap`) of every snapshot below `root` (recursive).
    pub fn all_snapshots(&self, root: &str) -> Result<Vec<String>, ZfsError> {
        let root = checked(root)?;
        let out = self.zfs(&["list", "-H", "-r", "-t", "snapshot", "-o", "name", root])?;
        Ok(out
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect())
    }

    /// Datasets anywhere in `pool` cloned from a snapshot of `dataset`,
    /// computed from `origin` (works on zfs-fuse, unlike `clones`).
    pub fn clones_from_origins(&self, pool: &str, dataset: &str) -> Result<Vec<String>, ZfsError> {
        let prefix = format!("{}@", checked(dataset)?);
        Ok(self
            .origins(pool)?
            .into_iter()
            .filter(|(_, o)| o.as_deref().is_some_and(|o| o.starts_with(&prefix)))
            .map(|(n, _)| n)
            .collect())
    }

    /// The decimal guid of a snapshot, when this ZFS prints it as a plain
    /// number (zfs-fuse abbreviates it like a size, which is useless).
    pub fn guid(&self, snapshot: &str) -> Result<Option<String>, ZfsError> {
        let v = self.get(snapshot, "guid")?;
        Ok((!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())).then_some(v))
    }

    /// Renames a filesystem, coping with zfs-fuse's "dataset is busy" for a
    /// freshly received (mounted) dataset: unmount, retry, mount again.
    pub fn rename_unbusy(&self, from: &str, to: &str) -> Result<(), ZfsError> {
        let argv = Argv::new(["zfs", "rename", checked(from)?, checked(to)?]);
        if self.run_unbusy(&argv, Some(from), &|_| false)? {
            // Best effort: an unmounted image still clones fine.
            let _ = self.output(&Argv::new(["zfs", "mount", to]));
        }
        Ok(())
    }

    /// Starts `zfs receive <target>` — unmounted (`-u`) and with the
    /// dangerous properties excluded (`-x`) where this ZFS has those flags;
    /// the caller writes the stream into it and ends it with
    /// [`StreamChild::finish`]. The caller must have checked the stream's
    /// first record ([`stream_header::check`]): on zfs-fuse, which has no
    /// `-x`, that check is what keeps properties out.
    pub fn receive(&self, target: &str) -> Result<StreamChild<'r>, ZfsError> {
        let target = checked(target)?;
        let argv = receive_argv(target, self.receive_flags())?;
        Ok(self.runner.stream(&argv, Pipe::Stdin)?)
    }

    /// [`Zfs::receive`] by a `zfs` process that also holds the caller's
    /// lock `hold` (see [`Zfs::rename_holding`]): a caller killed
    /// mid-stream leaves the lock held until `zfs receive` has ended, so
    /// the next holder never removes a dataset it is still writing.
    pub fn receive_holding(
        &self,
        target: &str,
        hold: std::os::fd::BorrowedFd<'_>,
    ) -> Result<StreamChild<'r>, ZfsError> {
        let target = checked(target)?;
        let argv = receive_argv(target, self.receive_flags())?;
        Ok(self.runner.stream_holding(&argv, Pipe::Stdin, hold)?)
    }

    /// Which optional `zfs receive` flags this ZFS takes, asked once per
    /// [`Zfs`]: `zfs receive -u -x mountpoint` without a target fails
    /// either way, naming the first option it does not know.
    pub fn receive_flags(&self) -> ReceiveFlags {
        *self.receive_flags.get_or_init(|| {
            let argv = Argv::new(["zfs", "receive", "-u", "-x", "mountpoint"]);
            let err = match self.output(&argv) {
                Ok(out) => out.stderr_str(),
                // No answer at all: assume the plain command only.
                Err(_) => "invalid option 'u'".into(),
            };
            let unknown = |flag: char| err.contains(&format!("invalid option '{flag}'"));
            let unmounted = !unknown('u');
            ReceiveFlags {
                unmounted,
                exclude: unmounted && !unknown('x'),
            }
        })
    }

    /// `zfs mount <dataset>`; already mounted is fine.
    pub fn mount(&self, dataset: &str) -> Result<(), ZfsError> {
        let argv = Argv::new(["zfs", "mount", checked(dataset)?]);
        let out = self.output(&argv)?;
        let err = out.stderr_str();
        if out.success() || err.contains("already mounted") {
            return Ok(());
        }
        Err(ExecError::Failed {
            argv,
            status: out.status,
            stderr: err,
        }
        .into())
    }

    /// `name → origin` of `root` and everything below it, snapshots
    /// included, in one listing (what a receive made).
    pub fn tree(&self, root: &str) -> Result<Vec<(String, Option<String>)>, ZfsError> {
        self.name_origin(root, "all")
    }

    /// Properties of `dataset` set on it rather than inherited or default:
    /// `(property, value, source)` for sources `local` and `received`. A
    /// freshly received image or VM dataset must have none.
    pub fn own_properties(&self, dataset: &str) -> Result<Vec<(String, String, String)>, ZfsError> {
        let dataset = checked(dataset)?;
        let out = self.zfs(&[
            "get",
            "-H",
            "-o",
            "property,value,source",
            "-s",
            "local,received",
            "all",
            dataset,
        ])?;
        Ok(out
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                let mut cols = l.splitn(3, '\t').map(str::to_string);
                let mut next = || cols.next().unwrap_or_default();
                (next(), next(), next())
            })
            .collect())
    }

    /// Starts `zfs send` of `snapshot` in the given form; the caller reads
    /// the stream from it and ends it with [`StreamChild::finish`].
    pub fn send(&self, snapshot: &str, form: SendForm<'_>) -> Result<StreamChild<'r>, ZfsError> {
        Ok(self
            .runner
            .stream(&send_argv(snapshot, form)?, Pipe::Stdout)?)
    }
}

/// What a `zfs send` stream holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendForm<'a> {
    /// The snapshot alone, as a full stream (an image file).
    Full,
    /// Only the changes since `from`, an earlier snapshot of the same
    /// dataset (an incremental image on top of its origin).
    Incremental {
        /// The earlier snapshot, `dataset@name`.
        from: &'a str,
    },
    /// `-R`: the snapshot with its descendants and properties (a VM bundle).
    Replicate,
}

/// What a failed `zfs clone snapshot target` means, from its stderr (the
/// wording of FreeBSD ZFS, OpenZFS and zfs-fuse alike: "cannot create
/// 'p/x': dataset already exists", "cannot create 'p/x': no such pool 'p'",
/// "cannot open 'p/img@final': dataset does not exist").
/// `zfs clone -o k=v … snapshot target`, both names checked.
fn clone_argv<V: AsRef<str>>(
    snapshot: &str,
    target: &str,
    props: &[(&str, V)],
) -> Result<Argv, ZfsError> {
    let mut args: Vec<String> = vec!["zfs".into(), "clone".into()];
    for (k, v) in props {
        args.push("-o".into());
        args.push(format!("{k}={}", v.as_ref()));
    }
    args.push(checked(snapshot)?.to_string());
    args.push(checked(target)?.to_string());
    Ok(Argv::new(args))
}

fn classify_clone_error(
    snapshot: &str,
    target: &str,
    argv: Argv,
    status: i32,
    stderr: String,
) -> ZfsError {
    let pool = |name: &str| name.split(['/', '@']).next().unwrap_or(name).to_string();
    if stderr.contains("already exists") {
        ZfsError::AlreadyExists(target.to_string())
    } else if stderr.contains("no such pool") {
        ZfsError::NoSuchPool(pool(target))
    } else if stderr.contains("does not exist") && stderr.contains(snapshot) {
        ZfsError::NotFound(snapshot.to_string())
    } else {
        ExecError::Failed {
            argv,
            status,
            stderr,
        }
        .into()
    }
}

fn receive_argv(target: &str, flags: ReceiveFlags) -> Result<Argv, ZfsError> {
    let mut argv = vec!["zfs", "receive"];
    if flags.unmounted {
        argv.push("-u");
    }
    if flags.exclude {
        for prop in RECEIVE_EXCLUDED {
            argv.extend(["-x", prop]);
        }
    }
    argv.push(checked(target)?);
    Ok(Argv::new(argv))
}

fn send_argv(snapshot: &str, form: SendForm<'_>) -> Result<Argv, ZfsError> {
    let mut argv = vec!["zfs", "send"];
    match form {
        SendForm::Full => {}
        SendForm::Incremental { from } => argv.extend(["-i", checked(from)?]),
        SendForm::Replicate => argv.push("-R"),
    }
    argv.push(checked(snapshot)?);
    Ok(Argv::new(argv))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::{CallKind, Output, RecordingRunner};
    use std::io::{Read, Write};

    #[test]
    fn names_are_validated() {
        assert!(valid_name("zones/abc-1@final"));
        assert!(valid_name("pool"));
        for bad in [
            "", "-o", "a//b", "a/../b", "a b", "a;b", "a@b@c", "a\nb", "p/$(x)", "a/",
        ] {
            assert!(!valid_name(bad), "{bad:?} accepted");
        }
    }

    #[test]
    fn destroy_tolerates_missing_and_retries_busy() {
        let r = RecordingRunner::new();
        r.fail(
            &["zfs", "destroy"],
            "cannot destroy 'p/x': dataset does not exist",
        );
        Zfs::new(&r).destroy("p/x", false).unwrap();

        let r = RecordingRunner::new();
        r.fail(&["zfs", "destroy"], "cannot unmount: dataset is busy");
        assert!(Zfs::new(&r).destroy("p/y", true).is_err());
        let calls: Vec<String> = r.calls().iter().map(|a| a.to_string()).collect();
        let destroys = calls.iter().filter(|c| c.contains("destroy")).count();
        assert_eq!(destroys, BUSY_TRIES as usize);
        // The first "busy" answers are retried at once, with no unmount in
        // between (zfs-fuse's first destroy has already unmounted); only
        // after BUSY_AT_ONCE retries comes `zfs unmount -f`.
        let at_once = BUSY_AT_ONCE as usize + 1;
        assert!(calls[..at_once].iter().all(|c| c == "zfs destroy -r p/y"));
        assert_eq!(calls[at_once], "zfs unmount -f p/y");
    }

    #[test]
    fn a_destroy_that_succeeds_is_one_process() {
        let r = RecordingRunner::new();
        Zfs::new(&r).destroy("p/vm", true).unwrap();
        assert_eq!(r.calls().len(), 1);
        let r = RecordingRunner::new();
        r.fail(
            &["zfs", "destroy"],
            "cannot destroy 'p/vm': permission denied",
        );
        let err = Zfs::new(&r).destroy("p/vm", true).unwrap_err();
        assert!(err.to_string().contains("permission denied"), "{err}");
        assert_eq!(r.calls().len(), 1, "only \"busy\" is retried");
    }

    #[test]
    fn a_failed_clone_says_why_from_its_stderr() {
        let cases = [
            (
                "cannot create 'p/vm': dataset already exists",
                "dataset p/vm already exists",
            ),
            (
                "cannot create 'p/vm': no such pool 'p'",
                "zpool p does not exist",
            ),
            (
                "cannot open 'p/img@final': dataset does not exist",
                "dataset p/img@final does not exist",
            ),
            ("cannot create 'p/vm': out of space", "out of space"),
        ];
        for (stderr, want) in cases {
            let r = RecordingRunner::new();
            r.fail(&["zfs", "clone"], stderr);
            let err = Zfs::new(&r)
                .clone_snapshot::<&str>("p/img@final", "p/vm", &[])
                .unwrap_err();
            assert!(err.to_string().contains(want), "{stderr}: {err}");
            assert_eq!(r.calls().len(), 1);
        }
    }

    #[test]
    fn clone_sets_props_at_creation() {
        let r = RecordingRunner::new();
        Zfs::new(&r)
            .clone_snapshot("p/img@final", "p/vm", &[("quota", "10G")])
            .unwrap();
        assert_eq!(
            r.calls()[0].0,
            vec!["zfs", "clone", "-o", "quota=10G", "p/img@final", "p/vm"]
        );
    }

    #[test]
    fn bad_names_never_reach_the_runner() {
        let r = RecordingRunner::new();
        assert!(matches!(
            Zfs::new(&r).set("-R", "quota", "1G"),
            Err(ZfsError::BadName(_))
        ));
        assert!(r.calls().is_empty());
    }

    #[test]
    fn send_forms_build_checked_argv_and_stream_stdout() {
        let r = RecordingRunner::new();
        r.answer(
            &["zfs", "send"],
            Output {
                stdout: b"zfs stream".to_vec(),
                ..Output::default()
            },
        );
        let zfs = Zfs::new(&r);
        let mut child = zfs.send("p/vm@sending", SendForm::Replicate).unwrap();
        let mut got = Vec::new();
        child.read_to_end(&mut got).unwrap();
        child.finish().unwrap();
        assert_eq!(got, b"zfs stream");
        zfs.send("p/img@final", SendForm::Full)
            .unwrap()
            .finish()
            .unwrap();
        zfs.send("p/img@final", SendForm::Incremental { from: "p/img@a" })
            .unwrap()
            .finish()
            .unwrap();
        let calls = r.records();
        let argvs: Vec<String> = calls.iter().map(|c| c.argv.to_string()).collect();
        assert_eq!(
            argvs,
            [
                "zfs send -R p/vm@sending",
                "zfs send p/img@final",
                "zfs send -i p/img@a p/img@final"
            ]
        );
        assert!(calls
            .iter()
            .all(|c| c.kind == CallKind::Stream(Pipe::Stdout)));
    }

    #[test]
    fn receive_streams_into_stdin_and_fails_with_stderr() {
        let r = RecordingRunner::new();
        let zfs = Zfs::new(&r);
        // zfs-fuse: -u is known, -x is not.
        r.answer(
            &["zfs", "receive", "-u", "-x"],
            Output {
                status: 2,
                stderr: b"invalid option 'x'\nusage: ...".to_vec(),
                ..Output::default()
            },
        );
        let mut child = zfs.receive("p/new-partial").unwrap();
        child.write_all(b"bytes").unwrap();
        child.finish().unwrap();
        let records = r.records();
        assert_eq!(records[0].argv.to_string(), "zfs receive -u -x mountpoint");
        let call = &records[1];
        assert_eq!(call.argv.to_string(), "zfs receive -u p/new-partial");
        assert_eq!(call.kind, CallKind::Stream(Pipe::Stdin));
        assert_eq!(call.stdin, b"bytes");

        r.fail(&["zfs", "receive"], "cannot receive: invalid stream");
        let err = zfs.receive("p/other").unwrap().finish().unwrap_err();
        assert_eq!(err.stderr(), "cannot receive: invalid stream");
    }

    #[test]
    fn stream_names_are_checked_before_anything_runs() {
        let r = RecordingRunner::new();
        let zfs = Zfs::new(&r);
        assert!(matches!(zfs.receive("-d"), Err(ZfsError::BadName(_))));
        assert!(matches!(
            zfs.send("p/x@s", SendForm::Incremental { from: "-R" }),
            Err(ZfsError::BadName(_))
        ));
        assert!(matches!(
            zfs.send("p/x@s;rm", SendForm::Full),
            Err(ZfsError::BadName(_))
        ));
        assert!(matches!(
            zfs.snapshot_recursive("-r"),
            Err(ZfsError::BadName(_))
        ));
        assert!(r.calls().is_empty());
        zfs.snapshot_recursive("p/vm@sending").unwrap();
        assert_eq!(r.calls()[0].to_string(), "zfs snapshot -r p/vm@sending");
    }
}
