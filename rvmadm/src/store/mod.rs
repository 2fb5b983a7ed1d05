//! VM records on disk: atomic writes, locks, and the record store.

mod atomic;
mod index;
mod lock;
mod pools;
mod records;

pub use atomic::atomic_write;
pub use index::{IndexStats, LoadedValues, Tuning, RACY, RECHECK};
pub use lock::{exclusive, LockGuard};
pub use pools::usable_mountpoint;
pub use records::{decode, iso_time, LoadedRecord, Record, Store, StoreError, RECORD_VERSION};
