//! `vmadm kill [-s SIGNAL|-SIGNAL]`: a signal to the jail's init.

use super::context::Ctx;
use super::error::{OpsError, OpsResult};
use uuid::Uuid;

const SIGNALS: &[(&str, i32)] = &[
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("CHLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("PWR", 30),
    ("SYS", 31),
];

/// Parses `9`, `KILL` or `SIGKILL` into (canonical name, number).
pub fn parse_signal(s: &str) -> OpsResult<(String, i32)> {
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Ok(n) = name.parse::<i32>() {
        if let Some((nm, _)) = SIGNALS.iter().find(|(_, num)| *num == n) {
            return Ok((format!("SIG{nm}"), n));
        }
    } else if let Some((nm, n)) = SIGNALS.iter().find(|(nm, _)| *nm == name) {
        return Ok((format!("SIG{nm}"), *n));
    }
    Err(OpsError::Failed(format!("Unknown signal \"{s}\"")))
}

pub fn kill(ctx: &Ctx, uuid: &Uuid, signal: i32) -> OpsResult<()> {
    let rec = ctx.record(uuid)?;
    let spec = ctx.spec(&rec)?;
    if !ctx.is_running(uuid)? {
        return Err(OpsError::Failed(format!(
            "Cannot find running init PID for VM {uuid}"
        )));
    }
    ctx.driver.kill(&spec, signal)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("9").unwrap(), ("SIGKILL".into(), 9));
        assert_eq!(parse_signal("hup").unwrap(), ("SIGHUP".into(), 1));
        assert_eq!(parse_signal("SIGTERM").unwrap(), ("SIGTERM".into(), 15));
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("99").is_err());
    }
}
