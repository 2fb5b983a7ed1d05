//! VM records on disk: atomic writes, locks, and the record store.

mod atomic;
mod lock;
mod records;

pub use atomic::atomic_write;
pub use lock::{exclusive, LockGuard};
pub use records::{decode, iso_time, LoadedRecord, Record, Store, StoreError, RECORD_VERSION};
