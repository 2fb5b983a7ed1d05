//! The one integration-test binary: runs the real `vmadm`/`imgadm` binaries
//! against a temporary root and a real zfs-fuse pool on a file.
//!
//! Each area has its own module; `harness` builds the environment.

// Test code: a failed unwrap/expect is a test failure with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod antispoof;
mod core;
mod crash;
mod fidelity;
mod golden;
mod harness;
mod hostile;
mod imgadm;
mod imgserver;
mod layout;
mod linux;
mod linux_isolation;
mod model;
mod send;
