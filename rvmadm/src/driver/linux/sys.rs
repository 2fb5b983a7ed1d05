//! The driver's few raw system calls: signalling a jail's init and the clock
//! tick rate for turning /proc start times into timestamps.
//!
//! Kept here so the rest of the driver stays free of `unsafe` and libc.

use std::io;

/// Sends `signal` to `pid`. `ESRCH` (already gone) is reported as `Ok(false)`.
pub fn kill(pid: u32, signal: i32) -> io::Result<bool> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pid out of range"))?;
    if pid <= 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "refusing pid <= 0",
        ));
    }
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    let rc = unsafe { libc::kill(pid, signal) };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ESRCH) {
        Ok(false)
    } else {
        Err(err)
    }
}

/// Clock ticks per second (`_SC_CLK_TCK`), the unit of /proc start times.
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf reads a constant; no pointers involved.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// Parses a signal name (`TERM`, `SIGKILL`, `9`) into its number.
pub fn signal_number(name: &str) -> Option<i32> {
    let n = name.trim();
    if let Ok(v) = n.parse::<i32>() {
        return (1..=64).contains(&v).then_some(v);
    }
    let n = n.to_ascii_uppercase();
    let n = n.strip_prefix("SIG").unwrap_or(&n);
    Some(match n {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "TERM" => libc::SIGTERM,
        "ALRM" => libc::SIGALRM,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "PWR" => libc::SIGPWR,
        "WINCH" => libc::SIGWINCH,
        _ => return None,
    })
}

pub const SIGTERM: i32 = libc::SIGTERM;
pub const SIGKILL: i32 = libc::SIGKILL;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse() {
        assert_eq!(signal_number("TERM"), Some(15));
        assert_eq!(signal_number("sigkill"), Some(9));
        assert_eq!(signal_number("9"), Some(9));
        assert_eq!(signal_number("bogus"), None);
        assert_eq!(signal_number("0"), None);
    }

    #[test]
    fn kill_of_missing_pid_is_false() {
        // pid_max is at most 4194304; this one cannot exist.
        assert!(!kill(4_194_305, 0).unwrap_or(true));
        assert!(kill(std::process::id(), 0).unwrap());
        assert!(kill(0, 0).is_err());
    }
}
