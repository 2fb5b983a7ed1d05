//! The test double of [`CommandRunner`]: records every command in every form
//! (collected, streamed, interactive, logged) with the bytes fed to its
//! stdin, and answers from canned outputs, so plans and verbs can be checked
//! without a host. It never spawns anything.

use super::{Argv, CommandRunner, ExecError, Output, Pipe, PipeIn, PipeOut, StreamChild};
use std::io::{self, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The stdin of one recorded command: filled up front or streamed into
/// later through the writer handed out, read back by [`RecordingRunner::records`].
#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl SharedBuf {
    fn bytes(&self) -> Vec<u8> {
        self.0.lock().map(|b| b.clone()).unwrap_or_default()
    }
}

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| io::Error::other("stdin buffer poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// How a recorded command was run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// Collected output (`output`, `run`, `run_stdout`).
    Output,
    /// Streamed through the given pipe (`stream`).
    Stream(Pipe),
    /// With the caller's terminal (`interactive`).
    Interactive,
    /// Detached with output to a log file (`run_logged`).
    Logged,
}

/// One command as [`RecordingRunner`] saw it, with every byte written to its
/// stdin (given up front or streamed).
#[derive(Debug, Clone)]
pub struct Call {
    /// The command line.
    pub argv: Argv,
    /// Which runner form ran it.
    pub kind: CallKind,
    /// Every byte the caller gave the command on stdin.
    pub stdin: Vec<u8>,
}

/// A runner for tests: records every argv, in every form, and answers from a
/// script of canned outputs (matched by argv prefix), defaulting to success.
/// A streamed command's canned stdout is what the caller reads from it; an
/// interactive one answers the canned status.
#[derive(Default)]
pub struct RecordingRunner {
    calls: Mutex<Vec<(Argv, CallKind, SharedBuf)>>,
    answers: Mutex<Vec<(Vec<String>, Output)>>,
    held: Mutex<Vec<String>>,
}

impl RecordingRunner {
    /// A runner with no calls yet that answers every command with success.
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

    /// The argv of every command, in the order they were started.
    pub fn calls(&self) -> Vec<Argv> {
        self.records().into_iter().map(|c| c.argv).collect()
    }

    /// Every command started holding the caller's lock
    /// ([`CommandRunner::stream_holding`]), as its display string.
    pub fn held(&self) -> Vec<String> {
        self.held.lock().map(|h| h.clone()).unwrap_or_default()
    }

    /// Every command with how it was run and what it was fed.
    pub fn records(&self) -> Vec<Call> {
        self.calls
            .lock()
            .map(|calls| {
                calls
                    .iter()
                    .map(|(argv, kind, stdin)| Call {
                        argv: argv.clone(),
                        kind: *kind,
                        stdin: stdin.bytes(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Records the call and returns its canned answer plus its stdin buffer.
    fn record(&self, argv: &Argv, kind: CallKind, stdin: &[u8]) -> (Output, SharedBuf) {
        let mut buf = SharedBuf::default();
        let _ = buf.write_all(stdin);
        if let Ok(mut calls) = self.calls.lock() {
            calls.push((argv.clone(), kind, buf.clone()));
        }
        let answers = self.answers.lock().map(|a| a.clone()).unwrap_or_default();
        let out = answers
            .iter()
            .rev()
            .find(|(prefix, _)| argv.0.starts_with(prefix))
            .map(|(_, out)| out.clone())
            .unwrap_or_default();
        (out, buf)
    }
}

impl CommandRunner for RecordingRunner {
    fn output(&self, argv: &Argv, stdin: Option<&[u8]>) -> Result<Output, ExecError> {
        Ok(self
            .record(argv, CallKind::Output, stdin.unwrap_or_default())
            .0)
    }

    fn stream(&self, argv: &Argv, pipe: Pipe) -> Result<StreamChild<'_>, ExecError> {
        let (mut out, buf) = self.record(argv, CallKind::Stream(pipe), &[]);
        let stdout = std::mem::take(&mut out.stdout);
        let (stdin, stdout): (Option<PipeIn>, Option<PipeOut>) = match pipe {
            Pipe::Stdin => (Some(Box::new(buf)), None),
            Pipe::Stdout => (None, Some(Box::new(io::Cursor::new(stdout)))),
        };
        Ok(StreamChild::new(argv.clone(), stdin, stdout, move || {
            Ok(out)
        }))
    }

    fn output_holding(
        &self,
        argv: &Argv,
        stdin: Option<&[u8]>,
        _hold: std::os::fd::BorrowedFd<'_>,
    ) -> Result<Output, ExecError> {
        if let Ok(mut held) = self.held.lock() {
            held.push(argv.to_string());
        }
        self.output(argv, stdin)
    }

    fn stream_holding(
        &self,
        argv: &Argv,
        pipe: Pipe,
        _hold: std::os::fd::BorrowedFd<'_>,
    ) -> Result<StreamChild<'_>, ExecError> {
        if let Ok(mut held) = self.held.lock() {
            held.push(argv.to_string());
        }
        self.stream(argv, pipe)
    }

    fn interactive(&self, argv: &Argv) -> Result<i32, ExecError> {
        Ok(self.record(argv, CallKind::Interactive, &[]).0.status)
    }

    fn run_logged(&self, argv: &Argv, _keeper: &Argv, _log: &Path) -> Result<(), ExecError> {
        let (out, _) = self.record(argv, CallKind::Logged, &[]);
        out.check(argv).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn recording_runner_matches_longest_registered_prefix_last() {
        let r = RecordingRunner::new();
        r.fail(&["zfs", "destroy"], "dataset is busy");
        assert!(r.run(&Argv::new(["zfs", "list"])).is_ok());
        let err = r.run(&Argv::new(["zfs", "destroy", "p/x"])).unwrap_err();
        assert_eq!(err.stderr(), "dataset is busy");
        assert_eq!(r.calls().len(), 2);
    }

    #[test]
    fn recording_runner_records_every_form_with_its_stdin() {
        let r = RecordingRunner::new();
        r.answer(
            &["zfs", "send"],
            Output {
                stdout: b"stream bytes".to_vec(),
                ..Output::default()
            },
        );
        r.answer(
            &["jexec"],
            Output {
                status: 3,
                ..Output::default()
            },
        );
        r.fail(&["runc"], "no cgroup");

        r.output(&Argv::new(["ip", "-batch", "-"]), Some(b"link add x"))
            .unwrap();
        let mut send = r
            .stream(&Argv::new(["zfs", "send", "p/a@s"]), Pipe::Stdout)
            .unwrap();
        let mut got = Vec::new();
        send.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"stream bytes");
        send.finish().unwrap();
        let mut recv = r
            .stream(&Argv::new(["zfs", "receive", "p/b"]), Pipe::Stdin)
            .unwrap();
        recv.write_all(b"into ").unwrap();
        recv.write_all(b"zfs").unwrap();
        recv.finish().unwrap();
        assert_eq!(r.interactive(&Argv::new(["jexec", "t", "sh"])).unwrap(), 3);
        let err = r
            .run_logged(
                &Argv::new(["runc", "run"]),
                &Argv::new(["keeper"]),
                Path::new("/nonexistent"),
            )
            .unwrap_err();
        assert_eq!(err.stderr(), "no cgroup");

        let calls = r.records();
        let kinds: Vec<CallKind> = calls.iter().map(|c| c.kind).collect();
        assert_eq!(
            kinds,
            [
                CallKind::Output,
                CallKind::Stream(Pipe::Stdout),
                CallKind::Stream(Pipe::Stdin),
                CallKind::Interactive,
                CallKind::Logged
            ]
        );
        assert_eq!(calls[0].stdin, b"link add x");
        assert_eq!(calls[2].stdin, b"into zfs");
        assert_eq!(calls[2].argv.to_string(), "zfs receive p/b");
        assert_eq!(r.calls().len(), 5);
    }

    #[test]
    fn recording_runner_fails_a_stream_at_its_end() {
        let r = RecordingRunner::new();
        r.fail(&["zfs", "receive"], "cannot receive: invalid stream");
        let mut recv = r
            .stream(&Argv::new(["zfs", "receive", "p/b"]), Pipe::Stdin)
            .unwrap();
        recv.write_all(b"junk").unwrap();
        let err = recv.finish().unwrap_err();
        assert!(matches!(err, ExecError::Failed { status: 1, .. }));
        assert_eq!(err.stderr(), "cannot receive: invalid stream");
        assert_eq!(r.records()[0].stdin, b"junk");
    }
}
