//! The one place that spawns processes.
//!
//! Every external command (zfs, zpool, runc, ip, jail, jexec …) goes through a
//! [`CommandRunner`] as an argv vector — never a shell string — so user data can
//! never be interpreted by a shell, and tests can swap in a recording runner.
//! Failures carry the full argv and the command's stderr.

use std::ffi::OsString;
use std::fmt;
use std::io::Write;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;

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

    pub fn program(&self) -> &str {
        self.0.first().map(String::as_str).unwrap_or("")
    }

    pub fn args(&self) -> &[String] {
        self.0.get(1..).unwrap_or(&[])
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

/// What a finished command produced.
#[derive(Debug, Clone, Default)]
pub struct Output {
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == 0
    }
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).trim().to_string()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("cannot run `{argv}`: {source}")]
    Spawn {
        argv: Argv,
        #[source]
        source: std::io::Error,
    },
    #[error("`{argv}` failed (exit {status}): {stderr}")]
    Failed {
        argv: Argv,
        status: i32,
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

/// Runs argv vectors. The system implementation spawns real processes; tests
/// use [`RecordingRunner`].
pub trait CommandRunner: Send + Sync {
    /// Runs the command with optional stdin bytes and collects its output.
    /// A non-zero exit is *not* an error here; see [`CommandRunner::run`].
    fn output(&self, argv: &Argv, stdin: Option<&[u8]>) -> Result<Output, ExecError>;

    /// Runs the command and fails (with argv and stderr) on non-zero exit.
    fn run(&self, argv: &Argv) -> Result<Output, ExecError> {
        let out = self.output(argv, None)?;
        if out.success() {
            Ok(out)
        } else {
            Err(ExecError::Failed {
                argv: argv.clone(),
                status: out.status,
                stderr: out.stderr_str(),
            })
        }
    }

    /// Runs the command and returns its stdout as text.
    fn run_stdout(&self, argv: &Argv) -> Result<String, ExecError> {
        Ok(self.run(argv)?.stdout_str())
    }
}

/// Spawns real processes.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemRunner;

fn status_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

impl CommandRunner for SystemRunner {
    fn output(&self, argv: &Argv, stdin: Option<&[u8]>) -> Result<Output, ExecError> {
        tracing::debug!(argv = %argv, "exec");
        let spawn_err = |source| ExecError::Spawn {
            argv: argv.clone(),
            source,
        };
        let mut cmd = Command::new(argv.program());
        cmd.args(argv.args())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        let mut child = cmd.spawn().map_err(spawn_err)?;
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
}

/// Builds an [`std::process::Command`] from an argv for the few callers that
/// must stream (zfs send/receive, console, exec). Still argv only.
pub fn command(argv: &Argv) -> Command {
    tracing::debug!(argv = %argv, "spawn");
    let mut cmd = Command::new(argv.program());
    cmd.args(argv.args().iter().map(OsString::from));
    cmd
}

/// Reads a streaming child's stderr (first 64 KiB) on a thread, so a
/// chatty child never blocks on a full pipe; join for the text.
pub fn drain_stderr(child: &mut std::process::Child) -> std::thread::JoinHandle<String> {
    use std::io::Read;
    let mut pipe = child.stderr.take();
    std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(p) = pipe.as_mut() {
            let _ = p.take(64 << 10).read_to_string(&mut s);
        }
        s
    })
}

/// Waits for a streaming child and turns a failure into an [`ExecError`].
pub fn wait_checked(argv: &Argv, child: std::process::Child) -> Result<Output, ExecError> {
    let out = child
        .wait_with_output()
        .map_err(|source| ExecError::Spawn {
            argv: argv.clone(),
            source,
        })?;
    let result = Output {
        status: status_code(out.status),
        stdout: out.stdout,
        stderr: out.stderr,
    };
    if result.success() {
        Ok(result)
    } else {
        Err(ExecError::Failed {
            argv: argv.clone(),
            status: result.status,
            stderr: result.stderr_str(),
        })
    }
}

/// A runner for tests: records every argv and answers from a script of
/// canned outputs (matched by argv prefix), defaulting to success.
#[derive(Default)]
pub struct RecordingRunner {
    calls: Mutex<Vec<Argv>>,
    answers: Mutex<Vec<(Vec<String>, Output)>>,
}

impl RecordingRunner {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every command whose argv starts with `prefix` gets `out`.
    pub fn answer(&self, prefix: &[&str], out: Output) {
        if let Ok(mut answers) = self.answers.lock() {
            answers.push((prefix.iter().map(|s| s.to_string()).collect(), out));
        }
    }

    /// Makes every command starting with `prefix` fail with `stderr`.
    pub fn fail(&self, prefix: &[&str], stderr: &str) {
        self.answer(
            prefix,
            Output {
                status: 1,
                stdout: Vec::new(),
                stderr: stderr.as_bytes().to_vec(),
            },
        );
    }

    pub fn calls(&self) -> Vec<Argv> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

impl CommandRunner for RecordingRunner {
    fn output(&self, argv: &Argv, _stdin: Option<&[u8]>) -> Result<Output, ExecError> {
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(argv.clone());
        }
        let answers = self.answers.lock().map(|a| a.clone()).unwrap_or_default();
        Ok(answers
            .iter()
            .rev()
            .find(|(prefix, _)| argv.0.starts_with(prefix))
            .map(|(_, out)| out.clone())
            .unwrap_or_default())
    }
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

    #[test]
    fn recording_runner_matches_longest_registered_prefix_last() {
        let r = RecordingRunner::new();
        r.fail(&["zfs", "destroy"], "dataset is busy");
        assert!(r.run(&Argv::new(["zfs", "list"])).is_ok());
        let err = r.run(&Argv::new(["zfs", "destroy", "p/x"])).unwrap_err();
        assert_eq!(err.stderr(), "dataset is busy");
        assert_eq!(r.calls().len(), 2);
    }
}
