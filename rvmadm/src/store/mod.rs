//! VM records on disk: atomic writes, locks, the record store, and the
//! intent slot that makes create and delete recoverable.

mod atomic;
mod index;
mod intent;
mod lock;
mod pools;
mod records;

pub use atomic::atomic_write;
pub use index::{IndexStats, LoadedValues, Tuning, RACY, RECHECK};
#[cfg(test)]
pub(crate) use intent::TEST_BOOT_ID;
pub use intent::{boot_id, Intent, IntentSlot, Receiving, RecordSig};
pub use lock::{exclusive, LockGuard};
pub use pools::usable_mountpoint;
pub use records::{decode, iso_time, LoadedRecord, Record, Store, StoreError, RECORD_VERSION};
