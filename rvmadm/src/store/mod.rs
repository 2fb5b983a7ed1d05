//! VM records on disk. See the submodules.
mod atomic;
pub use atomic::atomic_write;
