//! Typed signals for `vmadm kill`: parsed once from a name or a number, then
//! resolved per OS by the driver that sends them.
//!
//! Signal numbers differ between the OSes rvmadm drives (SIGUSR1 is 10 on
//! Linux and 30 on FreeBSD; Linux's 10 is SIGBUS on FreeBSD), so a number
//! never travels past parsing: a number a user types means what it means on
//! the host vmadm runs on, and each driver turns the [`Signal`] into what its
//! OS understands (a name for FreeBSD's kill(1), the Linux number for
//! kill(2)). The numbers below follow Linux's `asm/signal.h` and FreeBSD's
//! `sys/sys/signal.h`; a unit test checks the host's column against libc.

use std::fmt;

/// An operating system whose signal numbering a driver uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Os {
    /// Linux numbering (`asm/signal.h`), which the Linux driver's kill(2) uses.
    Linux,
    /// FreeBSD numbering (`sys/sys/signal.h`); the FreeBSD driver sends names.
    FreeBsd,
}

impl Os {
    /// The OS this binary runs on; numbers typed by users are read in its
    /// numbering.
    pub const HOST: Os = if cfg!(target_os = "freebsd") {
        Os::FreeBsd
    } else {
        Os::Linux
    };
}

impl fmt::Display for Os {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Os::Linux => "Linux",
            Os::FreeBsd => "FreeBSD",
        })
    }
}

/// A signal vmadm can send to a jail's init.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    /// SIGHUP: the controlling terminal hung up; many daemons reload their configuration on it.
    Hup,
    /// SIGINT: interrupt from the keyboard (Ctrl-C).
    Int,
    /// SIGQUIT: quit from the keyboard, with a core dump.
    Quit,
    /// SIGILL: illegal instruction.
    Ill,
    /// SIGTRAP: trace or breakpoint trap.
    Trap,
    /// SIGABRT: abort(3), with a core dump.
    Abrt,
    /// SIGBUS: bus error (bad memory access); 7 on Linux, 10 on FreeBSD.
    Bus,
    /// SIGFPE: arithmetic fault.
    Fpe,
    /// SIGKILL: ends the process; cannot be caught or ignored.
    Kill,
    /// SIGUSR1: meaning chosen by the program; 10 on Linux, 30 on FreeBSD.
    Usr1,
    /// SIGSEGV: invalid memory reference.
    Segv,
    /// SIGUSR2: meaning chosen by the program; 12 on Linux, 31 on FreeBSD.
    Usr2,
    /// SIGPIPE: write to a pipe nobody reads.
    Pipe,
    /// SIGALRM: timer from alarm(2) expired.
    Alrm,
    /// SIGTERM: the polite request to terminate.
    Term,
    /// SIGCHLD: a child stopped or exited.
    Chld,
    /// SIGCONT: continue a stopped process.
    Cont,
    /// SIGSTOP: stops the process; cannot be caught or ignored.
    Stop,
    /// SIGTSTP: stop from the keyboard (Ctrl-Z).
    Tstp,
    /// SIGTTIN: a background process read from its terminal.
    Ttin,
    /// SIGTTOU: a background process wrote to its terminal.
    Ttou,
    /// SIGURG: urgent data on a socket.
    Urg,
    /// SIGXCPU: CPU time limit exceeded.
    Xcpu,
    /// SIGXFSZ: file size limit exceeded.
    Xfsz,
    /// SIGVTALRM: virtual timer expired.
    Vtalrm,
    /// SIGPROF: profiling timer expired.
    Prof,
    /// SIGWINCH: the terminal window changed size.
    Winch,
    /// SIGIO: I/O is possible on a descriptor.
    Io,
    /// SIGPWR: power failure; Linux only, refused for FreeBSD jails.
    Pwr,
    /// SIGSYS: bad system call (also what a seccomp filter may send).
    Sys,
}

impl Signal {
    /// Every signal vmadm knows, in Linux order.
    pub const ALL: [Signal; 30] = [
        Signal::Hup,
        Signal::Int,
        Signal::Quit,
        Signal::Ill,
        Signal::Trap,
        Signal::Abrt,
        Signal::Bus,
        Signal::Fpe,
        Signal::Kill,
        Signal::Usr1,
        Signal::Segv,
        Signal::Usr2,
        Signal::Pipe,
        Signal::Alrm,
        Signal::Term,
        Signal::Chld,
        Signal::Cont,
        Signal::Stop,
        Signal::Tstp,
        Signal::Ttin,
        Signal::Ttou,
        Signal::Urg,
        Signal::Xcpu,
        Signal::Xfsz,
        Signal::Vtalrm,
        Signal::Prof,
        Signal::Winch,
        Signal::Io,
        Signal::Pwr,
        Signal::Sys,
    ];

    /// Name without `SIG`, Linux number, FreeBSD number (`None`: no such
    /// signal there).
    fn facts(self) -> (&'static str, i32, Option<i32>) {
        match self {
            Signal::Hup => ("HUP", 1, Some(1)),
            Signal::Int => ("INT", 2, Some(2)),
            Signal::Quit => ("QUIT", 3, Some(3)),
            Signal::Ill => ("ILL", 4, Some(4)),
            Signal::Trap => ("TRAP", 5, Some(5)),
            Signal::Abrt => ("ABRT", 6, Some(6)),
            Signal::Bus => ("BUS", 7, Some(10)),
            Signal::Fpe => ("FPE", 8, Some(8)),
            Signal::Kill => ("KILL", 9, Some(9)),
            Signal::Usr1 => ("USR1", 10, Some(30)),
            Signal::Segv => ("SEGV", 11, Some(11)),
            Signal::Usr2 => ("USR2", 12, Some(31)),
            Signal::Pipe => ("PIPE", 13, Some(13)),
            Signal::Alrm => ("ALRM", 14, Some(14)),
            Signal::Term => ("TERM", 15, Some(15)),
            Signal::Chld => ("CHLD", 17, Some(20)),
            Signal::Cont => ("CONT", 18, Some(19)),
            Signal::Stop => ("STOP", 19, Some(17)),
            Signal::Tstp => ("TSTP", 20, Some(18)),
            Signal::Ttin => ("TTIN", 21, Some(21)),
            Signal::Ttou => ("TTOU", 22, Some(22)),
            Signal::Urg => ("URG", 23, Some(16)),
            Signal::Xcpu => ("XCPU", 24, Some(24)),
            Signal::Xfsz => ("XFSZ", 25, Some(25)),
            Signal::Vtalrm => ("VTALRM", 26, Some(26)),
            Signal::Prof => ("PROF", 27, Some(27)),
            Signal::Winch => ("WINCH", 28, Some(28)),
            Signal::Io => ("IO", 29, Some(23)),
            Signal::Pwr => ("PWR", 30, None),
            Signal::Sys => ("SYS", 31, Some(12)),
        }
    }
}

/// Why a signal could not be parsed or sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignalError {
    /// The text is neither a known signal name (with or without `SIG`, any
    /// case) nor a number the host OS gives a signal we know.
    #[error(
        "Unknown signal \"{0}\" (give a name such as TERM, HUP, USR1 or KILL, \
         with or without SIG, or its number)"
    )]
    Unknown(String),
    /// The signal is valid but the OS the jail runs on has no such signal
    /// (SIGPWR on FreeBSD).
    #[error("signal {signal} does not exist on {os}")]
    NotOn {
        /// The signal asked for.
        signal: Signal,
        /// The OS that lacks it.
        os: Os,
    },
}

impl Signal {
    /// The name without `SIG` (`USR1`), as kill(1) takes it on every OS.
    pub fn name(self) -> &'static str {
        self.facts().0
    }

    /// The number of this signal on `os`, if `os` has it.
    pub fn number(self, os: Os) -> Option<i32> {
        let (_, linux, freebsd) = self.facts();
        match os {
            Os::Linux => Some(linux),
            Os::FreeBsd => freebsd,
        }
    }

    /// The number on `os`, or an error naming the signal and the OS.
    pub fn number_on(self, os: Os) -> Result<i32, SignalError> {
        self.number(os)
            .ok_or(SignalError::NotOn { signal: self, os })
    }

    /// Parses `KILL`, `sigkill`, `SIGKILL` or a number in the host's
    /// numbering.
    pub fn parse(s: &str) -> Result<Signal, SignalError> {
        Signal::parse_on(s, Os::HOST)
    }

    /// [`Signal::parse`] with numbers read in `os`'s numbering.
    pub fn parse_on(s: &str, os: Os) -> Result<Signal, SignalError> {
        let upper = s.trim().to_ascii_uppercase();
        let name = upper.strip_prefix("SIG").unwrap_or(&upper);
        let found = match name.parse::<i32>() {
            Ok(n) => Signal::ALL.into_iter().find(|g| g.number(os) == Some(n)),
            Err(_) => Signal::ALL.into_iter().find(|g| g.name() == name),
        };
        found.ok_or_else(|| SignalError::Unknown(s.to_string()))
    }
}

/// `SIGUSR1`: the form vmadm's messages use.
impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIG{}", self.name())
    }
}

impl std::str::FromStr for Signal {
    type Err = SignalError;
    fn from_str(s: &str) -> Result<Signal, SignalError> {
        Signal::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_are_unique() {
        let all = Signal::ALL;
        for (i, g) in all.iter().enumerate() {
            let before = &all[..i];
            assert!(!before.contains(g), "{g} twice");
            assert!(!before.iter().any(|o| o.name() == g.name()), "{g}");
            for os in [Os::Linux, Os::FreeBsd] {
                if let Some(n) = g.number(os) {
                    assert!((1..=31).contains(&n), "{g} on {os}: {n}");
                    assert!(
                        !before.iter().any(|o| o.number(os) == Some(n)),
                        "{g} on {os}"
                    );
                }
            }
        }
    }

    #[test]
    fn names_and_numbers_parse() {
        let p = |s: &str| Signal::parse_on(s, Os::Linux).unwrap();
        assert_eq!(p("9"), Signal::Kill);
        assert_eq!(p("hup"), Signal::Hup);
        assert_eq!(p("SIGTERM"), Signal::Term);
        assert_eq!(p("sigusr1"), Signal::Usr1);
        assert_eq!(p("10"), Signal::Usr1);
        assert_eq!(Signal::parse_on("10", Os::FreeBsd).unwrap(), Signal::Bus);
        assert_eq!(Signal::parse_on("30", Os::FreeBsd).unwrap(), Signal::Usr1);
        assert_eq!(Signal::parse_on("30", Os::Linux).unwrap(), Signal::Pwr);
        for bad in ["NOPE", "99", "0", "", "SIG", "-9", "16"] {
            let e = Signal::parse_on(bad, Os::Linux).unwrap_err().to_string();
            assert!(e.starts_with(&format!("Unknown signal \"{bad}\"")), "{e}");
        }
        assert!(Signal::parse_on("32", Os::FreeBsd).is_err());
    }

    #[test]
    fn resolves_per_os() {
        assert_eq!(Signal::Usr1.number(Os::Linux), Some(10));
        assert_eq!(Signal::Usr1.number(Os::FreeBsd), Some(30));
        assert_eq!(Signal::Hup.number(Os::FreeBsd), Some(1));
        let e = Signal::Pwr.number_on(Os::FreeBsd).unwrap_err();
        assert_eq!(e.to_string(), "signal SIGPWR does not exist on FreeBSD");
        assert_eq!(Signal::Usr1.to_string(), "SIGUSR1");
        assert_eq!("KILL".parse::<Signal>().unwrap(), Signal::Kill);
    }

    /// The host's column agrees with its C library.
    #[cfg(target_os = "linux")]
    #[test]
    fn linux_numbers_match_libc() {
        use Signal::*;
        let libc_of = |s: Signal| match s {
            Hup => libc::SIGHUP,
            Int => libc::SIGINT,
            Quit => libc::SIGQUIT,
            Ill => libc::SIGILL,
            Trap => libc::SIGTRAP,
            Abrt => libc::SIGABRT,
            Bus => libc::SIGBUS,
            Fpe => libc::SIGFPE,
            Kill => libc::SIGKILL,
            Usr1 => libc::SIGUSR1,
            Segv => libc::SIGSEGV,
            Usr2 => libc::SIGUSR2,
            Pipe => libc::SIGPIPE,
            Alrm => libc::SIGALRM,
            Term => libc::SIGTERM,
            Chld => libc::SIGCHLD,
            Cont => libc::SIGCONT,
            Stop => libc::SIGSTOP,
            Tstp => libc::SIGTSTP,
            Ttin => libc::SIGTTIN,
            Ttou => libc::SIGTTOU,
            Urg => libc::SIGURG,
            Xcpu => libc::SIGXCPU,
            Xfsz => libc::SIGXFSZ,
            Vtalrm => libc::SIGVTALRM,
            Prof => libc::SIGPROF,
            Winch => libc::SIGWINCH,
            Io => libc::SIGIO,
            Pwr => libc::SIGPWR,
            Sys => libc::SIGSYS,
        };
        for g in Signal::ALL {
            assert_eq!(g.number(Os::Linux), Some(libc_of(g)), "{g}");
        }
    }
}
