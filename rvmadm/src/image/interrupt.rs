//! Ctrl-C handling for long image operations.
//!
//! SIGINT/SIGTERM only set a flag; the streaming loops poll it between chunks
//! and then unwind through their normal cleanup (kill `zfs receive`, destroy
//! the partial dataset, remove temp files), so an interrupted import leaves
//! nothing behind. The handler is installed without `SA_RESTART` so a blocked
//! read returns early.

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_sig: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Routes SIGINT and SIGTERM to the flag (idempotent).
pub fn install() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe;
    // the sigaction struct is fully initialised before use.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        sa.sa_flags = 0;
        libc::sigaction(libc::SIGINT, &sa, std::ptr::null_mut());
        libc::sigaction(libc::SIGTERM, &sa, std::ptr::null_mut());
    }
}

/// True once SIGINT or SIGTERM arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}
