//! VM records on disk: atomic writes, locks, and the record store.

mod atomic;
mod lock;
mod pools;
mod records;

pub use atomic::atomic_write;
pub use lock::{exclusive, LockGuard};
pub use pools::usable_mountpoint;
pub use records::{decode, iso_time, LoadedRecord, Record, Store, StoreError, RECORD_VERSION};
