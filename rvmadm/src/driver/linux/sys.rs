//! The driver's few raw system calls: signalling a jail's init and the clock
//! tick rate for turning /proc start times into timestamps.
//!
//! Kept here so the rest of the driver stays free of `unsafe` and libc.

use crate::driver::{Os, Signal};
use std::io;

/// Sends `signal` (as Linux numbers it) to `pid`. `ESRCH` (already gone) is
/// reported as `Ok(false)`.
pub fn kill(pid: u32, signal: Signal) -> io::Result<bool> {
    let signal = signal
        .number_on(Os::Linux)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    send(pid, signal)
}

/// kill(2) with a raw number; 0 only checks that `pid` exists.
fn send(pid: u32, signal: libc::c_int) -> io::Result<bool> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_of_missing_pid_is_false() {
        // pid_max is at most 4194304; this one cannot exist.
        assert!(!send(4_194_305, 0).unwrap_or(true));
        assert!(send(std::process::id(), 0).unwrap());
        assert!(send(0, 0).is_err());
        assert!(kill(0, Signal::Term).is_err());
    }
}
