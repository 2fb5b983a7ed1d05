//! The one place that spawns processes.
//!
//! Every external command (zfs, zpool, runc, ip, jail, jexec …) goes through a
//! [`CommandRunner`] as an argv vector — never a shell string — so user data can
//! never be interpreted by a shell, and tests can swap in a recording runner.
//! A command runs in one of four forms: collected ([`CommandRunner::output`]),
//! streamed through a pipe the caller reads or writes ([`CommandRunner::stream`],
//! for `zfs send`/`receive`), interactive on the caller's terminal
//! ([`CommandRunner::interactive`], for consoles), or detached with its output
//! piped to a log keeper ([`CommandRunner::run_logged`], for the OCI runtime). In
//! every form a failure is mapped once, by [`Output::check`], into an
//! [`ExecError`] carrying the full argv and the command's stderr.

use std::fmt;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;

/// How much of a streamed or logged command's stderr is kept for its error.
const STDERR_KEEP: u64 = 64 << 10;

/// One command line: program plus arguments, each a separate element.
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Argv(pub Vec<String>);

impl Argv {
    /// Builds an argv from anything that yields string-like items.
    pub fn new<I, S>(items: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Argv(items.into_iter().map(Into::into).collect())
    }

    /// The program: the first element, or "" for an empty argv.
    pub fn program(&self) -> &str {
        self.0.first().map(String::as_str).unwrap_or("")
    }

    /// Everything after the program, each element one argument.
    pub fn args(&self) -> &[String] {
        self.0.get(1..).unwrap_or(&[])
    }

    /// A `Command` for this argv; private, so nothing outside this module spawns.
    fn command(&self) -> Command {
        let mut cmd = Command::new(self.program());
        cmd.args(self.args());
        cmd
    }
}

impl fmt::Debug for Argv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// Shows the argv the way a person would type it, quoting elements that need it.
/// Only used for messages and logs; never fed back to a shell.
impl fmt::Display for Argv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for item in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            let plain = !item.is_empty()
                && item
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
            if plain {
                f.write_str(item)?;
            } else {
                write!(f, "'{}'", item.replace('\'', r"'\''"))?;
            }
        }
        Ok(())
    }
}

/// What a finished command produced. For a streamed command `stdout` is
/// empty: the caller read it through the pipe.
#[derive(Debug, Clone, Default)]
pub struct Output {
    /// The exit code; 128 + N when the command died of signal N.
    pub status: i32,
    /// Everything the command wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything the command wrote to stderr (streams keep the first 64 KiB).
    pub stderr: Vec<u8>,
}

impl Output {
    /// True when the command exited 0.
    pub fn success(&self) -> bool {
        self.status == 0
    }
    /// Stdout as text, invalid UTF-8 replaced, untrimmed (parsers need every line).
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    /// Stderr as text, invalid UTF-8 replaced and trimmed, for messages.
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).trim().to_string()
    }

    /// The one mapping of an exit status to a result: non-zero becomes
    /// [`ExecError::Failed`] with `argv` and the trimmed stderr.
    pub fn check(self, argv: &Argv) -> Result<Output, ExecError> {
        if self.success() {
            Ok(self)
        } else {
            Err(ExecError::Failed {
                argv: argv.clone(),
                status: self.status,
                stderr: self.stderr_str(),
            })
        }
    }
}

/// Why a command did not do its job; every variant names the argv.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The command could not be started, or (rarely: `waitpid` retries
    /// EINTR) not waited for.
    #[error("cannot run `{argv}`: {source}")]
    Spawn {
        /// The command that could not be run.
        argv: Argv,
        /// The OS error from fork/exec or wait.
        #[source]
        source: io::Error,
    },
    /// The command ran and exited non-zero.
    #[error("`{argv}` failed (exit {status}): {stderr}")]
    Failed {
        /// The command that failed.
        argv: Argv,
        /// Its exit code (128 + N for signal N).
        status: i32,
        /// Its trimmed stderr, usually the reason in the tool's own words.
        stderr: String,
    },
}

impl ExecError {
    /// The stderr of a command that ran and failed, empty otherwise.
    pub fn stderr(&self) -> &str {
        match self {
            ExecError::Failed { stderr, .. } => stderr,
            ExecError::Spawn { .. } => "",
        }
    }
}

/// Which standard stream of a streamed command the caller holds; the other
/// one is `/dev/null`, and stderr is always collected for the error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pipe {
    /// The caller reads what the command writes (`zfs send`).
    Stdout,
    /// The caller writes what the command reads (`zfs receive`).
    Stdin,
}

/// The caller's end of a streamed command's stdin.
pub type PipeIn<'a> = Box<dyn Write + Send + 'a>;
/// The caller's end of a streamed command's stdout.
pub type PipeOut<'a> = Box<dyn Read + Send + 'a>;
/// Waits for a streamed command once its pipes are closed.
type Waiter<'a> = Box<dyn FnOnce() -> Result<Output, ExecError> + Send + 'a>;

/// A running command the caller streams through: [`Read`] takes its stdout,
/// [`Write`] feeds its stdin (whichever [`Pipe`] it was started with).
///
/// Closing the caller's end is how a stream is ended, on success and on
/// failure alike: [`StreamChild::wait`] and [`StreamChild::finish`] close
/// both pipes before waiting, so the command sees end-of-file or EPIPE and
/// exits by itself; dropping a child does the same. Nothing ever kills it —
/// killing a zfs client in the middle of an ioctl is what wedges zfs-fuse.
pub struct StreamChild<'a> {
    argv: Argv,
    stdin: Option<PipeIn<'a>>,
    stdout: Option<PipeOut<'a>>,
    waiter: Option<Waiter<'a>>,
}

impl<'a> StreamChild<'a> {
    /// Assembles a stream from its parts; for [`CommandRunner`] implementations.
    /// `waiter` runs after both pipes are closed and returns the exit status
    /// and stderr.
    pub fn new(
        argv: Argv,
        stdin: Option<PipeIn<'a>>,
        stdout: Option<PipeOut<'a>>,
        waiter: impl FnOnce() -> Result<Output, ExecError> + Send + 'a,
    ) -> Self {
        StreamChild {
            argv,
            stdin,
            stdout,
            waiter: Some(Box::new(waiter)),
        }
    }

    /// The command this child runs.
    pub fn argv(&self) -> &Argv {
        &self.argv
    }

    /// Closes the command's stdin: it sees end-of-file.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Closes both pipes, waits, and returns the exit status and stderr;
    /// a non-zero exit is not an error here (see [`StreamChild::finish`]).
    pub fn wait(mut self) -> Result<Output, ExecError> {
        self.end().unwrap_or_else(|| Ok(Output::default()))
    }

    /// Closes both pipes, waits, and fails with argv and stderr on a
    /// non-zero exit.
    pub fn finish(self) -> Result<(), ExecError> {
        let argv = self.argv.clone();
        self.wait()?.check(&argv).map(|_| ())
    }

    fn end(&mut self) -> Option<Result<Output, ExecError>> {
        self.stdin = None;
        self.stdout = None;
        self.waiter.take().map(|wait| wait())
    }

    fn not_piped(&self, which: &str) -> io::Error {
        io::Error::new(
            io::ErrorKind::BrokenPipe,
            format!("the {which} of `{}` is not an open pipe", self.argv),
        )
    }
}

impl Read for StreamChild<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.stdout.as_mut() {
            Some(pipe) => pipe.read(buf),
            None => Err(self.not_piped("stdout")),
        }
    }
}

impl Write for StreamChild<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.stdin.as_mut() {
            Some(pipe) => pipe.write(buf),
            None => Err(self.not_piped("stdin")),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self.stdin.as_mut() {
            Some(pipe) => pipe.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for StreamChild<'_> {
    /// A child left behind by an early return is still reaped.
    fn drop(&mut self) {
        if let Some(Err(e)) = self.end() {
            tracing::debug!(error = %e, "streamed command dropped");
        }
    }
}

/// Runs argv vectors. The system implementation spawns real processes; tests
/// use [`RecordingRunner`].
///
/// Only [`CommandRunner::output`] must be implemented. The other forms run
/// the command on the host as [`SystemRunner`] does, whatever `output` does:
/// none of them can be emulated through `output` (a detached start would hand
/// its capture pipes to the container, a console needs the terminal). A
/// runner that fakes or rewrites commands overrides them too, as
/// [`RecordingRunner`] does.
pub trait CommandRunner: Send + Sync {
    /// Runs the command with optional stdin bytes and collects its output.
    /// A non-zero exit is *not* an error here; see [`CommandRunner::run`].
    fn output(&self, argv: &Argv, stdin: Option<&[u8]>) -> Result<Output, ExecError>;

    /// [`CommandRunner::output`], with `hold` (a lock's descriptor) open in
    /// the child too, as [`CommandRunner::stream_holding`] passes it: a lock
    /// taken with `flock` then stays held until the child is done, should
    /// this process die first. A runner that starts no real process may
    /// ignore `hold`; this default does.
    fn output_holding(
        &self,
        argv: &Argv,
        stdin: Option<&[u8]>,
        hold: BorrowedFd<'_>,
    ) -> Result<Output, ExecError> {
        let _ = hold;
        self.output(argv, stdin)
    }

    /// Runs the command and fails (with argv and stderr) on non-zero exit.
    fn run(&self, argv: &Argv) -> Result<Output, ExecError> {
        self.output(argv, None)?.check(argv)
    }

    /// Runs the command and returns its stdout as text.
    fn run_stdout(&self, argv: &Argv) -> Result<String, ExecError> {
        Ok(self.run(argv)?.stdout_str())
    }

    /// Starts the command with one pipe the caller streams through, for
    /// data too large to hold in memory. See [`StreamChild`].
    fn stream(&self, argv: &Argv, pipe: Pipe) -> Result<StreamChild<'_>, ExecError> {
        SystemRunner.stream(argv, pipe)
    }

    /// [`CommandRunner::stream`] with `hold` (a lock's descriptor) left open
    /// in the child. A lock taken with `flock` belongs to the open file, so
    /// the child then holds it too: should this process die while the child
    /// runs, the next holder waits until the child is done instead of
    /// finding its work half landed. A runner that starts no real process
    /// may ignore `hold`; this default does.
    fn stream_holding(
        &self,
        argv: &Argv,
        pipe: Pipe,
        hold: BorrowedFd<'_>,
    ) -> Result<StreamChild<'_>, ExecError> {
        let _ = hold;
        self.stream(argv, pipe)
    }

    /// Runs the command on the caller's stdin, stdout and stderr (a console,
    /// `vmadm exec`) and returns its exit code; non-zero is not an error.
    fn interactive(&self, argv: &Argv) -> Result<i32, ExecError> {
        SystemRunner.interactive(argv)
    }

    /// Runs a command whose descendants outlive it (a detached container
    /// start) with stdin from /dev/null and stdout and stderr into a pipe
    /// read by `keeper`, a second command started once the first returns,
    /// detached (its own process group, no terminal, stdout and stderr to
    /// /dev/null), which writes what it reads to `log` and ends when every
    /// writer is gone: the descendants keep the pipe, so the keeper outlives
    /// vmadm and decides how much of the output the log keeps. On failure the keeper is given
    /// a moment to finish and the error's stderr is what the log gained.
    fn run_logged(&self, argv: &Argv, keeper: &Argv, log: &Path) -> Result<(), ExecError> {
        SystemRunner.run_logged(argv, keeper, log)
    }
}

/// Spawns real processes.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemRunner;

fn status_code(status: ExitStatus) -> i32 {
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// Reads a child's stderr on a thread, so a chatty child never blocks on a
/// full pipe: keeps the first [`STDERR_KEEP`] bytes and drains the rest.
fn drain_stderr(child: &mut Child) -> JoinHandle<Vec<u8>> {
    let pipe = child.stderr.take();
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        if let Some(mut p) = pipe {
            let _ = (&mut p).take(STDERR_KEEP).read_to_end(&mut kept);
            let _ = io::copy(&mut p, &mut io::sink());
        }
        kept
    })
}

impl CommandRunner for SystemRunner {
    fn output(&self, argv: &Argv, stdin: Option<&[u8]>) -> Result<Output, ExecError> {
        collect_output(argv, stdin, None)
    }

    fn output_holding(
        &self,
        argv: &Argv,
        stdin: Option<&[u8]>,
        hold: BorrowedFd<'_>,
    ) -> Result<Output, ExecError> {
        collect_output(argv, stdin, Some(hold))
    }

    /// The child gets its own process group: a terminal Ctrl-C reaches only
    /// us, and we end the stream by closing our pipe, never by a signal.
    fn stream(&self, argv: &Argv, pipe: Pipe) -> Result<StreamChild<'_>, ExecError> {
        spawn_stream(argv, pipe, None)
    }

    fn stream_holding(
        &self,
        argv: &Argv,
        pipe: Pipe,
        hold: BorrowedFd<'_>,
    ) -> Result<StreamChild<'_>, ExecError> {
        spawn_stream(argv, pipe, Some(hold))
    }

    fn interactive(&self, argv: &Argv) -> Result<i32, ExecError> {
        tracing::debug!(argv = %argv, "interactive");
        let status = argv.command().status().map_err(|source| ExecError::Spawn {
            argv: argv.clone(),
            source,
        })?;
        Ok(status_code(status))
    }

    fn run_logged(&self, argv: &Argv, keeper: &Argv, log: &Path) -> Result<(), ExecError> {
        tracing::debug!(argv = %argv, keeper = %keeper, log = %log.display(), "exec, output to a log keeper");
        let spawn_err = |source| ExecError::Spawn {
            argv: argv.clone(),
            source,
        };
        let offset = std::fs::metadata(log).map(|m| m.len()).unwrap_or(0);
        let (reader, writer) = io::pipe().map_err(spawn_err)?;
        let err_writer = writer.try_clone().map_err(spawn_err)?;
        // The command first, the keeper after: the keeper's own start-up is
        // then not on the command's path, and the pipe's buffer holds what
        // is written meanwhile (a writer that fills it just waits).
        let status = argv
            .command()
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(err_writer)
            .status()
            .map_err(spawn_err)?;
        let mut keeper_child = keeper
            .command()
            .process_group(0)
            .stdin(reader)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| ExecError::Spawn {
                argv: keeper.clone(),
                source,
            })?;
        let mut out = Output {
            status: status_code(status),
            ..Output::default()
        };
        if !out.success() {
            // The failed command's descendants are gone, so the keeper sees
            // end-of-file soon; wait (bounded) until it has written all.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while matches!(keeper_child.try_wait(), Ok(None))
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            // The command's own message is the part of the log it just wrote.
            if let Ok(mut f) = std::fs::File::open(log) {
                if f.seek(SeekFrom::Start(offset)).is_ok() {
                    let _ = f.take(4096).read_to_end(&mut out.stderr);
                }
            }
        }
        // On success the keeper stays, reading for the container; dropping
        // its handle neither waits for nor kills it.
        out.check(argv).map(|_| ())
    }
}

mod recording;
pub use recording::{Call, CallKind, RecordingRunner};

/// [`SystemRunner`]'s stream: see [`CommandRunner::stream_holding`] for
/// `hold`.
/// Runs `argv` to its end and collects its output; `hold`, when given, is
/// open in the child too.
fn collect_output(
    argv: &Argv,
    stdin: Option<&[u8]>,
    hold: Option<BorrowedFd<'_>>,
) -> Result<Output, ExecError> {
    tracing::debug!(argv = %argv, "exec");
    let spawn_err = |source| ExecError::Spawn {
        argv: argv.clone(),
        source,
    };
    let mut cmd = argv.command();
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = spawn_handing(&mut cmd, hold).map_err(spawn_err)?;
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A child that exits early closes the pipe; its status tells the story.
        let _ = pipe.write_all(data);
    }
    let out = child.wait_with_output().map_err(spawn_err)?;
    let result = Output {
        status: status_code(out.status),
        stdout: out.stdout,
        stderr: out.stderr,
    };
    tracing::debug!(argv = %argv, status = result.status, "exec done");
    Ok(result)
}

/// Spawns `command`; `hold`, when given, is open in the child too. It goes
/// as a duplicate without close-on-exec, made for this spawn and closed in
/// this process right after it: unlike clearing the flag in the child (a
/// `pre_exec` hook), this lets the standard library use posix_spawn
/// instead of a full fork. Another thread spawning in that instant inherits
/// the duplicate too, and holds the lock until it exits; vmadm spawns
/// nothing else meanwhile.
fn spawn_handing(
    command: &mut std::process::Command,
    hold: Option<BorrowedFd<'_>>,
) -> io::Result<Child> {
    let handed = hold.map(inheritable_dup).transpose()?;
    let spawned = command.spawn();
    drop(handed);
    spawned
}

/// A duplicate of `fd` that stays open across exec (see `spawn_handing`).
fn inheritable_dup(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD returns a new descriptor (without close-on-exec)
    // that nobody else owns; it is wrapped at once.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD, 3) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `new` was just returned by fcntl and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

fn spawn_stream<'a>(
    argv: &Argv,
    pipe: Pipe,
    hold: Option<BorrowedFd<'_>>,
) -> Result<StreamChild<'a>, ExecError> {
    tracing::debug!(argv = %argv, ?pipe, "stream");
    let piped_if = |wanted: bool| {
        if wanted {
            Stdio::piped()
        } else {
            Stdio::null()
        }
    };
    let mut command = argv.command();
    command
        .process_group(0)
        .stdin(piped_if(pipe == Pipe::Stdin))
        .stdout(piped_if(pipe == Pipe::Stdout))
        .stderr(Stdio::piped());
    let mut child = spawn_handing(&mut command, hold).map_err(|source| ExecError::Spawn {
        argv: argv.clone(),
        source,
    })?;
    let stderr = drain_stderr(&mut child);
    let stdin = child.stdin.take().map(|p| Box::new(p) as PipeIn);
    let stdout = child.stdout.take().map(|p| Box::new(p) as PipeOut);
    let argv_at_end = argv.clone();
    Ok(StreamChild::new(argv.clone(), stdin, stdout, move || {
        let status = child.wait().map_err(|source| ExecError::Spawn {
            argv: argv_at_end.clone(),
            source,
        })?;
        let out = Output {
            status: status_code(status),
            stdout: Vec::new(),
            stderr: stderr.join().unwrap_or_default(),
        };
        tracing::debug!(argv = %argv_at_end, status = out.status, "stream done");
        Ok(out)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_only_what_needs_it() {
        let argv = Argv::new(["zfs", "set", "quota=10G", "a b", "it's", ""]);
        assert_eq!(argv.to_string(), r#"zfs set quota=10G 'a b' 'it'\''s' ''"#);
    }

    #[test]
    fn system_runner_reports_argv_and_stderr_on_failure() {
        let argv = Argv::new(["sh", "-c", "echo boom >&2; exit 3"]);
        let err = SystemRunner.run(&argv).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("exit 3"), "{text}");
        assert!(text.contains("boom"), "{text}");
        assert!(text.contains("sh -c"), "{text}");
    }

    #[test]
    fn system_runner_passes_stdin_and_collects_stdout() {
        let out = SystemRunner
            .output(&Argv::new(["cat"]), Some(b"hello"))
            .unwrap();
        assert_eq!(out.stdout, b"hello");
        assert!(out.success());
    }

    /// Some bytes that are not text, long enough to need many pipe buffers.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[test]
    fn streams_are_byte_identical_both_ways() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("data");
        let data = pattern(3 << 20);
        let runner = SystemRunner;

        let mut into = runner
            .stream(
                &Argv::new(["sh", "-c", "cat > \"$0\"", &file.to_string_lossy()]),
                Pipe::Stdin,
            )
            .unwrap();
        into.write_all(&data).unwrap();
        into.finish().unwrap();
        assert!(std::fs::read(&file).unwrap() == data);

        let mut from = runner
            .stream(&Argv::new(["cat", &file.to_string_lossy()]), Pipe::Stdout)
            .unwrap();
        let mut back = Vec::new();
        from.read_to_end(&mut back).unwrap();
        let out = from.wait().unwrap();
        assert!(out.success() && out.stderr.is_empty());
        assert!(back == data);
    }

    #[test]
    fn a_failed_stream_reports_argv_status_and_stderr_once() {
        let runner = SystemRunner;
        let argv = Argv::new(["sh", "-c", "echo half; echo broken stream >&2; exit 5"]);
        let mut child = runner.stream(&argv, Pipe::Stdout).unwrap();
        let mut got = String::new();
        child.read_to_string(&mut got).unwrap();
        assert_eq!(got, "half\n");
        let err = child.finish().unwrap_err();
        match &err {
            ExecError::Failed {
                argv: a,
                status,
                stderr,
            } => {
                assert_eq!(a, &argv);
                assert_eq!(*status, 5);
                assert_eq!(stderr, "broken stream");
            }
            other => panic!("{other:?}"),
        }
        let missing = runner.stream(&Argv::new(["/nonexistent/zfs"]), Pipe::Stdin);
        assert!(matches!(missing, Err(ExecError::Spawn { .. })));
    }

    #[test]
    fn the_unpiped_end_is_refused_not_hung() {
        let runner = SystemRunner;
        let mut child = runner.stream(&Argv::new(["cat"]), Pipe::Stdin).unwrap();
        assert_eq!(
            child.read(&mut [0u8; 8]).unwrap_err().kind(),
            io::ErrorKind::BrokenPipe
        );
        child.close_stdin();
        assert_eq!(
            child.write(b"late").unwrap_err().kind(),
            io::ErrorKind::BrokenPipe
        );
        child.finish().unwrap();
    }

    #[test]
    fn closing_our_end_stops_a_sender_without_a_signal() {
        // A writer that would never end on its own; dropping the stream
        // closes the pipe, `yes` dies of EPIPE and is reaped.
        let runner = SystemRunner;
        let mut child = runner.stream(&Argv::new(["yes"]), Pipe::Stdout).unwrap();
        let mut first = [0u8; 4];
        child.read_exact(&mut first).unwrap();
        assert_eq!(&first, b"y\ny\n");
        let out = child.wait().unwrap();
        assert!(!out.success());
        drop(runner.stream(&Argv::new(["yes"]), Pipe::Stdout).unwrap());
    }

    #[test]
    fn chatty_stderr_is_drained_and_kept_bounded() {
        let runner = SystemRunner;
        let argv = Argv::new([
            "sh",
            "-c",
            "head -c 300000 /dev/zero | tr '\\0' x >&2; echo done",
        ]);
        let mut child = runner.stream(&argv, Pipe::Stdout).unwrap();
        let mut got = String::new();
        child.read_to_string(&mut got).unwrap();
        let out = child.wait().unwrap();
        assert_eq!(got, "done\n");
        assert!(out.success());
        assert_eq!(out.stderr.len() as u64, STDERR_KEEP);
    }

    #[test]
    fn streamed_commands_get_their_own_process_group() {
        let runner = SystemRunner;
        // Field 5 of /proc/<pid>/stat is the process group.
        let argv = Argv::new(["sh", "-c", "echo $$ $(cut -d' ' -f5 /proc/$$/stat)"]);
        let mut child = runner.stream(&argv, Pipe::Stdout).unwrap();
        let mut got = String::new();
        child.read_to_string(&mut got).unwrap();
        child.finish().unwrap();
        let ids: Vec<&str> = got.split_whitespace().collect();
        assert_eq!(ids.len(), 2, "{got}");
        assert_eq!(ids[0], ids[1], "the shell leads its own group");
    }

    #[test]
    fn a_streamed_child_given_a_lock_holds_it_until_it_exits() {
        use std::os::fd::AsFd;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("global.lock");
        let other = || {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .unwrap()
        };
        let argv = Argv::new(["sleep", "0.5"]);
        // Given the lock: the parent letting go (as a killed vmadm does)
        // leaves it held by the child until the child is done.
        let guard = crate::store::exclusive(&path).unwrap();
        let child = SystemRunner
            .stream_holding(&argv, Pipe::Stdout, guard.as_fd())
            .unwrap();
        drop(guard);
        let probe = other();
        assert!(matches!(
            probe.try_lock(),
            Err(std::fs::TryLockError::WouldBlock)
        ));
        assert!(child.wait().unwrap().success());
        lock_soon(&probe);
        drop(probe);
        // Not given it: the lock goes with the parent's guard.
        let guard = crate::store::exclusive(&path).unwrap();
        let child = SystemRunner.stream(&argv, Pipe::Stdout).unwrap();
        drop(guard);
        lock_soon(&other());
        assert!(child.wait().unwrap().success());
    }

    #[test]
    fn a_collected_child_given_a_lock_has_it_open_and_others_do_not() {
        use std::os::fd::AsFd;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("global.lock");
        let guard = crate::store::exclusive(&path).unwrap();
        let argv = Argv::new([
            "sh",
            "-c",
            "for f in /proc/$$/fd/*; do readlink \"$f\"; done",
        ]);
        let open_in_child = |out: Output| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| l == path.to_string_lossy())
        };
        let given = SystemRunner
            .output_holding(&argv, None, guard.as_fd())
            .unwrap();
        assert!(open_in_child(given));
        let plain = SystemRunner.output(&argv, None).unwrap();
        assert!(!open_in_child(plain));
    }

    /// Takes `file`'s lock, waiting a little while it is held: a process
    /// another test thread forks in the meantime holds a copy of every
    /// descriptor (ours included) until its exec closes them.
    fn lock_soon(file: &std::fs::File) {
        for _ in 0..500 {
            match file.try_lock() {
                Ok(()) => return,
                Err(std::fs::TryLockError::WouldBlock) => {
                    std::thread::sleep(std::time::Duration::from_millis(10))
                }
                Err(e) => panic!("{e:?}"),
            }
        }
        panic!("the lock stayed held");
    }

    #[test]
    fn interactive_returns_the_exit_code() {
        let runner = SystemRunner;
        assert_eq!(
            runner
                .interactive(&Argv::new(["sh", "-c", "exit 7"]))
                .unwrap(),
            7
        );
        assert_eq!(runner.interactive(&Argv::new(["true"])).unwrap(), 0);
        assert!(matches!(
            runner.interactive(&Argv::new(["/nonexistent/jexec"])),
            Err(ExecError::Spawn { .. })
        ));
    }

    #[test]
    fn logged_failure_carries_argv_and_only_the_new_output() {
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("log");
        std::fs::write(&log, "old line\n").unwrap();
        let keeper = Argv::new(["sh", "-c", &format!("cat >> {}", log.display())]);
        let argv = Argv::new(["sh", "-c", "echo nope >&2; exit 4"]);
        let e = SystemRunner
            .run_logged(&argv, &keeper, &log)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("nope") && e.contains("exit 4") && !e.contains("old line"),
            "{e}"
        );
        SystemRunner
            .run_logged(&Argv::new(["sh", "-c", "echo fine"]), &keeper, &log)
            .unwrap();
        // On success nobody waits for the keeper: poll for its write.
        let mut text = String::new();
        for _ in 0..500 {
            text = std::fs::read_to_string(&log).unwrap();
            if text.ends_with("fine\n") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(text, "old line\nnope\nfine\n");
    }

    /// A runner that only rewrites `output`, like the Linux end-to-end
    /// tests' namespace runner.
    struct OutputOnly(std::sync::atomic::AtomicUsize);

    impl CommandRunner for OutputOnly {
        fn output(&self, argv: &Argv, stdin: Option<&[u8]>) -> Result<Output, ExecError> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            SystemRunner.output(argv, stdin)
        }
    }

    #[test]
    fn other_forms_default_to_the_host_not_to_output() {
        let tmp = tempfile::tempdir().unwrap();
        let r = OutputOnly(Default::default());
        assert_eq!(
            r.interactive(&Argv::new(["sh", "-c", "exit 7"])).unwrap(),
            7
        );
        // A detached child must not inherit capture pipes: this would hang
        // if the default went through `output`.
        let log = tmp.path().join("log");
        r.run_logged(
            &Argv::new(["sh", "-c", "sleep 5 & echo started"]),
            &Argv::new(["sh", "-c", &format!("cat >> {}", log.display())]),
            &log,
        )
        .unwrap();
        let mut child = r.stream(&Argv::new(["echo", "hi"]), Pipe::Stdout).unwrap();
        let mut got = String::new();
        child.read_to_string(&mut got).unwrap();
        child.finish().unwrap();
        assert_eq!(got, "hi\n");
        assert_eq!(r.0.load(std::sync::atomic::Ordering::SeqCst), 0);
    }
}
