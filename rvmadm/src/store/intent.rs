//! The intent slot: `<state_dir>/intent`, one fixed-size block naming the
//! create or delete that holds (or last held) the global lock, so that the
//! next holder can finish or undo it after a `kill -9` or a power loss.
//!
//! Why a slot and not a marker in the record: making a new record file
//! durable costs an fsync of the file and one of the directory, and a create
//! that marked its record incomplete needed that twice, all four on its
//! critical path. The slot is written in place over blocks that already
//! exist, at the same size, so its `fdatasync` has no metadata to commit
//! (docs/performance.md has the figures). Only global-lock holders write
//! it, so one slot is enough.
//!
//! What each entry promises (`ops::create::recover` acts on them):
//! - `create-pending <uuid> <dataset> <origin> <token> <boot>`: written
//!   durably before the clone, which stamps the token on the dataset it
//!   makes (the user property `rvmadm:create`); `<boot>` is the kernel's
//!   boot id then (`-` where the host has none). Whoever finds it while
//!   `<uuid>.json` is missing undoes the create (destroys the dataset only
//!   when it carries that token, removes the hidden record); with the
//!   record in place (its rename, synced, is the create's commit) there is
//!   nothing to do. Found after a reboot, it is trusted less: the
//!   unsynced `create-committed` that followed it may have been lost, so
//!   a missing record may be a finished VM's removed by hand, and the
//!   dataset is only destroyed when the hidden record shows the create
//!   never got to its commit.
//! - `create-committed <uuid>`: written, unsynced, once the create is
//!   done; asks for nothing (so a record removed later by other means never
//!   makes the dataset look like an unfinished create's).
//! - `delete <uuid> <dataset> <signature>`: written before the destroy,
//!   without waiting for the disk (delete never synced the removal of the
//!   record either; see `ops::delete`). Whoever finds the record still there
//!   finishes the delete when it is the very file the delete saw (inode,
//!   size, mtime, ctime), or when the record was rewritten since but its
//!   dataset is gone (a record without its dataset is no VM); a rewritten
//!   record whose dataset is still there stays, reported.
//! - `reprovision <uuid> <dataset> <aside> <old image> <new image>`:
//!   written durably by `vmadm reprovision` before it moves the VM's
//!   dataset aside, and cleared (durably) once it has finished or rolled
//!   back. Whoever finds it finishes the swap when the record names the new
//!   image, else rolls it back, so no `<aside>` outlives it.
//! - `reprovision-committed <uuid> <aside>`: written durably once the
//!   record names the new image; whoever finds it destroys `<aside>` (the
//!   old dataset) if it is still there. It settles a reprovision to the
//!   image the VM already had, which the record cannot tell.
//! - `receive <container> <token>`: written durably by `vmadm receive`
//!   before it writes its record marked incomplete or makes its container
//!   `<pool>/<uuid>-receiving`, which carries the token (the user property
//!   `rvmadm:receive`). The next create, delete or receive then scans the
//!   records for that marker (they skip the scan otherwise) and destroys
//!   the container when it still carries the token: the receive held the
//!   global lock, and so do its `zfs` processes, so it is dead by then. A
//!   bare `receive` (an older release's) asks for the scan only.
//!
//! A create or delete entry is never cleared on success (a clear could
//! reach the disk before the rename or unlink it follows); each is
//! harmless once its operation is done, and the next create or delete
//! overwrites it. Each line carries a checksum, so a torn or foreign block
//! reads as empty.

use super::records::{io_err, Store, StoreError};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use uuid::Uuid;

/// Size of the slot file; an entry is one line well below it.
const SLOT: usize = 512;
const MAGIC: &str = "rvmadm-intent-1";

/// What identifies one version of a record file (a rename makes a new inode,
/// an edit in place moves ctime).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordSig {
    ino: u64,
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
}

impl RecordSig {
    fn of(m: &std::fs::Metadata) -> RecordSig {
        let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
        RecordSig {
            ino: m.ino(),
            size: m.size(),
            mtime_ns: ns(m.mtime(), m.mtime_nsec()),
            ctime_ns: ns(m.ctime(), m.ctime_nsec()),
        }
    }
}

/// What a `vmadm receive` receives into: its container and the token the
/// container carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receiving {
    /// `<pool>/<uuid>-receiving`.
    pub container: String,
    /// Random, 16 hex digits, stamped on the container when it is made: a
    /// dataset of that name without it is not this receive's.
    pub token: String,
}

fn valid_token(t: &str) -> bool {
    t.len() == 16 && t.bytes().all(|b| b.is_ascii_hexdigit())
}

/// One entry of the slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    /// A create from its first step on (see the module text for when it is
    /// finished).
    CreatePending {
        /// The new VM.
        uuid: Uuid,
        /// The dataset the clone makes.
        dataset: String,
        /// The snapshot it is cloned from.
        origin: String,
        /// Random, 16 hex digits, stamped on the clone: a dataset without
        /// it was not made by this create (the name may have been taken by
        /// a stranger the clone refused to replace).
        token: String,
        /// The kernel's boot id when the entry was written ([`boot_id`]);
        /// `None` where the host has none, or in an entry of an earlier
        /// release.
        boot: Option<String>,
    },
    /// A create that is done.
    CreateCommitted {
        /// The new VM.
        uuid: Uuid,
    },
    /// A `vmadm receive` started: its record carries the incomplete
    /// marker until the stream is in, so the next create sweeps such
    /// records (a create otherwise skips that scan), and its container is
    /// left to remove should it die. `None`: an entry of an older release,
    /// which named no container.
    Receive(Option<Receiving>),
    /// A delete from just before its destroy.
    Delete {
        /// The VM going away.
        uuid: Uuid,
        /// Its dataset.
        dataset: String,
        /// Its record file as the delete saw it.
        sig: RecordSig,
    },
    /// A reprovision from just before it moves the VM's dataset aside,
    /// until it has finished or rolled back.
    Reprovision {
        /// The VM.
        uuid: Uuid,
        /// Its dataset (the new clone's name).
        dataset: String,
        /// Where the old dataset waits meanwhile.
        aside: String,
        /// The image the record named before (`None`: none).
        old_image: Option<Uuid>,
        /// The image the record names once the swap is done.
        new_image: Uuid,
    },
    /// A reprovision whose record names the new image: only its old
    /// dataset may be left to destroy.
    ReprovisionCommitted {
        /// The VM.
        uuid: Uuid,
        /// Where its old dataset waits.
        aside: String,
    },
}

/// This boot of the kernel: Linux's `/proc/sys/kernel/random/boot_id`
/// (one small read); `None` on hosts without it (FreeBSD), where a reboot
/// cannot be told and entries are trusted as before.
pub fn boot_id() -> Option<String> {
    #[cfg(test)]
    if let Some(b) = TEST_BOOT_ID.with(|b| b.borrow().clone()) {
        return b;
    }
    // open, one read, close: the file is 37 bytes.
    use std::io::Read;
    let mut buf = [0u8; 64];
    let n = File::open("/proc/sys/kernel/random/boot_id")
        .and_then(|mut f| f.read(&mut buf))
        .ok()?;
    let id = std::str::from_utf8(&buf[..n]).ok()?.trim();
    valid_boot(id).then(|| id.to_string())
}

#[cfg(test)]
thread_local! {
    /// The boot id [`boot_id`] answers in this test thread, when set.
    pub(crate) static TEST_BOOT_ID: std::cell::RefCell<Option<Option<String>>> =
        const { std::cell::RefCell::new(None) };
}

fn valid_boot(b: &str) -> bool {
    (1..=64).contains(&b.len()) && b.bytes().all(|c| c.is_ascii_hexdigit() || c == b'-')
}

fn checksum(s: &str) -> u64 {
    // FNV-1a: catches a torn or stray block, which is all it is for.
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Intent {
    fn line(&self) -> String {
        let body = match self {
            Intent::CreatePending {
                uuid,
                dataset,
                origin,
                token,
                boot,
            } => format!(
                "create-pending {uuid} {dataset} {origin} {token} {}",
                boot.as_deref().unwrap_or("-")
            ),
            Intent::CreateCommitted { uuid } => format!("create-committed {uuid}"),
            Intent::Receive(None) => "receive".to_string(),
            Intent::Receive(Some(r)) => format!("receive {} {}", r.container, r.token),
            Intent::Delete { uuid, dataset, sig } => format!(
                "delete {uuid} {dataset} {} {} {} {}",
                sig.ino, sig.size, sig.mtime_ns, sig.ctime_ns
            ),
            Intent::Reprovision {
                uuid,
                dataset,
                aside,
                old_image,
                new_image,
            } => format!(
                "reprovision {uuid} {dataset} {aside} {} {new_image}",
                old_image.map_or("-".to_string(), |u| u.to_string())
            ),
            Intent::ReprovisionCommitted { uuid, aside } => {
                format!("reprovision-committed {uuid} {aside}")
            }
        };
        let body = format!("{MAGIC} {body}");
        format!("{body} {:016x}\n", checksum(&body))
    }

    fn parse(block: &[u8]) -> Option<Intent> {
        let end = block.iter().position(|&b| b == b'\n')?;
        let line = std::str::from_utf8(&block[..end]).ok()?;
        let (body, sum) = line.rsplit_once(' ')?;
        if u64::from_str_radix(sum, 16).ok()? != checksum(body) {
            return None;
        }
        let mut w = body.split(' ');
        if w.next()? != MAGIC {
            return None;
        }
        let kind = w.next()?;
        let name = |s: Option<&str>| s.filter(|n| crate::zfs::valid_name(n)).map(str::to_string);
        if kind == "receive" {
            let Some(container) = w.next() else {
                return Some(Intent::Receive(None));
            };
            // Only ever a receive's container: the entry leads to a
            // recursive destroy.
            let receiving = Receiving {
                container: name(Some(container).filter(|c| c.ends_with("-receiving")))?,
                token: w.next().filter(|t| valid_token(t))?.to_string(),
            };
            return w
                .next()
                .is_none()
                .then_some(Intent::Receive(Some(receiving)));
        }
        let uuid = Uuid::parse_str(w.next()?).ok()?;
        let intent = match kind {
            "create-pending" => Intent::CreatePending {
                uuid,
                dataset: name(w.next())?,
                origin: name(w.next())?,
                token: w.next().filter(|t| valid_token(t))?.to_string(),
                // Absent in an earlier release's entry: unknown, as "-".
                boot: match w.next() {
                    None | Some("-") => None,
                    Some(b) if valid_boot(b) => Some(b.to_string()),
                    Some(_) => return None,
                },
            },
            "reprovision" => Intent::Reprovision {
                uuid,
                dataset: name(w.next())?,
                aside: name(w.next())?,
                old_image: match w.next()? {
                    "-" => None,
                    u => Some(Uuid::parse_str(u).ok()?),
                },
                new_image: Uuid::parse_str(w.next()?).ok()?,
            },
            "reprovision-committed" => Intent::ReprovisionCommitted {
                uuid,
                aside: name(w.next())?,
            },
            "create-committed" => Intent::CreateCommitted { uuid },
            "delete" => {
                let dataset = name(w.next())?;
                let mut n = || w.next()?.parse::<i64>().ok();
                let (ino, size, mtime_ns, ctime_ns) = (n()?, n()?, n()?, n()?);
                Intent::Delete {
                    uuid,
                    dataset,
                    sig: RecordSig {
                        ino: u64::try_from(ino).ok()?,
                        size: u64::try_from(size).ok()?,
                        mtime_ns,
                        ctime_ns,
                    },
                }
            }
            _ => return None,
        };
        w.next().is_none().then_some(intent)
    }
}

/// The open slot file. Take it only while holding the global lock.
#[derive(Debug)]
pub struct IntentSlot {
    file: File,
    path: PathBuf,
    made: bool,
    /// The global lock, held as long as the slot (see
    /// [`IntentSlot::hold_lock`]).
    lock: Option<std::os::fd::OwnedFd>,
}

impl IntentSlot {
    /// Keeps a descriptor of `global` (the global lock this slot is used
    /// under) with the slot, for the repairs and deletes that hand it to
    /// their `zfs` processes ([`IntentSlot::lock_fd`]).
    pub fn hold_lock(&mut self, global: &super::LockGuard) -> std::io::Result<()> {
        use std::os::fd::AsFd;
        self.lock = Some(global.as_fd().try_clone_to_owned()?);
        Ok(())
    }

    /// The global lock's descriptor, when [`IntentSlot::hold_lock`] kept one.
    pub fn lock_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        self.lock.as_ref().map(|l| l.as_fd())
    }

    /// True when opening the slot made it: the first create or delete on
    /// this host since it was set up (or since an older release ran).
    pub fn was_made(&self) -> bool {
        self.made
    }

    /// The current entry; `None` for an empty, torn or unreadable slot.
    pub fn read(&self) -> Option<Intent> {
        let mut block = [0u8; SLOT];
        let n = self.file.read_at(&mut block, 0).ok()?;
        Intent::parse(&block[..n])
    }

    /// Replaces the entry and waits until it is on disk.
    pub fn write(&self, intent: &Intent) -> Result<(), StoreError> {
        self.put(intent.line().as_bytes(), true)
    }

    /// Replaces the entry without waiting for the disk: it outlives the
    /// process (a `kill -9`), not necessarily a power loss.
    pub fn write_unsynced(&self, intent: &Intent) -> Result<(), StoreError> {
        self.put(intent.line().as_bytes(), false)
    }

    /// Empties the slot, durably (after an undo, so the undo is not redone
    /// by every later holder).
    pub fn clear(&self) -> Result<(), StoreError> {
        self.put(b"", true)
    }

    fn put(&self, line: &[u8], sync: bool) -> Result<(), StoreError> {
        // A cut line would read back as empty (its checksum fails): refuse
        // it rather than lose the entry (only pool names of well over 100
        // characters come near).
        if line.len() > SLOT {
            return Err(StoreError::Corrupt {
                path: self.path.clone(),
                reason: format!(
                    "intent entry of {} bytes does not fit the {SLOT}-byte slot (pool name too long?)",
                    line.len()
                ),
            });
        }
        let mut block = [0u8; SLOT];
        block[..line.len()].copy_from_slice(line);
        // Same offset, same length: the file's blocks and size never change
        // after it is made, so fdatasync writes one data block.
        self.file
            .write_all_at(&block, 0)
            .and_then(|()| if sync { self.file.sync_data() } else { Ok(()) })
            .map_err(io_err(&self.path))
    }
}

impl Store {
    /// Opens the intent slot, making it (full size, durably, once per host)
    /// when it is missing or short. Callers hold the global lock.
    pub fn intent_slot(&self) -> Result<IntentSlot, StoreError> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.intent.clone();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io_err(&path))?;
        let len = file.metadata().map_err(io_err(&path))?.len();
        let made = len < SLOT as u64;
        if made {
            let mut block = [0u8; SLOT];
            let keep = usize::try_from(len).unwrap_or(0);
            file.read_exact_at(&mut block[..keep], 0)
                .map_err(io_err(&path))?;
            file.write_all_at(&block, 0)
                .and_then(|()| file.sync_all())
                .map_err(io_err(&path))?;
            super::atomic::sync_dir(&path).map_err(io_err(&path))?;
        }
        Ok(IntentSlot {
            file,
            path,
            made,
            lock: None,
        })
    }

    /// The signature of `uuid`'s record file as it is now (`None`: no file).
    pub fn record_sig(&self, uuid: &Uuid) -> Result<Option<RecordSig>, StoreError> {
        let path = self.path(uuid);
        match std::fs::symlink_metadata(&path) {
            Ok(m) => Ok(Some(RecordSig::of(&m))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Intent> {
        let uuid = Uuid::new_v4();
        vec![
            Intent::CreatePending {
                uuid,
                dataset: format!("zones/{uuid}"),
                origin: "zones/img@final".into(),
                token: "0123456789abcdef".into(),
                boot: Some("0b6c3c1e-4a5e-4d4e-9a57-3a0f1b2c3d4e".into()),
            },
            Intent::CreatePending {
                uuid,
                dataset: format!("zones/{uuid}"),
                origin: "zones/img@final".into(),
                token: "0123456789abcdef".into(),
                boot: None,
            },
            Intent::CreateCommitted { uuid },
            Intent::Reprovision {
                uuid,
                dataset: format!("zones/{uuid}"),
                aside: format!("zones/{uuid}-reprovision-old"),
                old_image: Some(Uuid::new_v4()),
                new_image: Uuid::new_v4(),
            },
            Intent::Reprovision {
                uuid,
                dataset: format!("zones/{uuid}"),
                aside: format!("zones/{uuid}-reprovision-old"),
                old_image: None,
                new_image: Uuid::new_v4(),
            },
            Intent::ReprovisionCommitted {
                uuid,
                aside: format!("zones/{uuid}-reprovision-old"),
            },
            Intent::Receive(None),
            Intent::Receive(Some(Receiving {
                container: format!("zones/{uuid}-receiving"),
                token: "fedcba9876543210".into(),
            })),
            Intent::Delete {
                uuid,
                dataset: format!("zones/{uuid}"),
                sig: RecordSig {
                    ino: 12,
                    size: 1200,
                    mtime_ns: 1_700_000_000_123_456_789,
                    ctime_ns: -5,
                },
            },
        ]
    }

    #[test]
    fn entries_round_trip_and_overwrite_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let slot = store.intent_slot().unwrap();
        assert!(slot.was_made());
        assert!(!store.intent_slot().unwrap().was_made());
        assert_eq!(slot.read(), None);
        for i in sample() {
            slot.write(&i).unwrap();
            // A fresh open (the next process) reads the same entry.
            assert_eq!(store.intent_slot().unwrap().read(), Some(i));
            assert_eq!(
                std::fs::metadata(dir.path().join("intent")).unwrap().len(),
                SLOT as u64
            );
        }
        slot.clear().unwrap();
        assert_eq!(store.intent_slot().unwrap().read(), None);
    }

    #[test]
    fn torn_foreign_or_short_slots_read_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let path = dir.path().join("intent");
        let line = sample()[0].line();
        // A line whose tail is from an older entry (a torn write).
        let mut torn = line.clone().into_bytes();
        torn[30] ^= 1;
        // Bad names never come back out, even with a right checksum.
        let body = format!(
            "{MAGIC} create-pending {} zones/../x zones/i@final",
            Uuid::nil()
        );
        let lying = format!("{body} {:016x}\n", checksum(&body));
        // Nor a pending create without a well-formed token.
        let signed = |body: String| format!("{body} {:016x}\n", checksum(&body)).into_bytes();
        let untokened = signed(format!(
            "{MAGIC} create-pending {} zones/x zones/i@final",
            Uuid::nil()
        ));
        let bad_token = signed(format!(
            "{MAGIC} create-pending {} zones/x zones/i@final 0123-not-hex-89",
            Uuid::nil()
        ));
        // A receive naming a bad container, or without a well-formed token.
        let receive_bad_name = signed(format!("{MAGIC} receive zones/../x 0123456789abcdef"));
        let receive_untokened = signed(format!("{MAGIC} receive zones/x-receiving"));
        let receive_bad_token =
            signed(format!("{MAGIC} receive zones/x-receiving 0123-not-hex-89"));
        let receive_not_a_container = signed(format!("{MAGIC} receive zones 0123456789abcdef"));
        let receive_extra = signed(format!(
            "{MAGIC} receive zones/x-receiving 0123456789abcdef more"
        ));
        for bytes in [
            torn,
            lying.into_bytes(),
            untokened,
            bad_token,
            receive_bad_name,
            receive_untokened,
            receive_bad_token,
            receive_not_a_container,
            receive_extra,
            b"garbage".to_vec(),
            line.as_bytes()[..20].to_vec(),
            Vec::new(),
        ] {
            std::fs::create_dir_all(dir.path()).unwrap();
            std::fs::write(&path, &bytes).unwrap();
            let slot = store.intent_slot().unwrap();
            assert_eq!(slot.read(), None, "{:?}", String::from_utf8_lossy(&bytes));
            // Opening grew it to full size, keeping what was there.
            assert_eq!(std::fs::metadata(&path).unwrap().len(), SLOT as u64);
            assert_eq!(std::fs::read(&path).unwrap()[..bytes.len()], bytes[..]);
        }
    }

    #[test]
    fn a_record_signature_changes_with_every_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let u = Uuid::new_v4();
        assert_eq!(store.record_sig(&u).unwrap(), None);
        let vm = crate::spec::VmRecord::from_map(
            serde_json::json!({"uuid": u.to_string()})
                .as_object()
                .unwrap()
                .clone(),
        );
        store.save(&u, &vm).unwrap();
        let a = store.record_sig(&u).unwrap().unwrap();
        assert_eq!(store.record_sig(&u).unwrap(), Some(a));
        store.save(&u, &vm).unwrap();
        assert_ne!(store.record_sig(&u).unwrap(), Some(a));
    }

    #[test]
    fn an_earlier_release_pending_entry_reads_with_an_unknown_boot() {
        let uuid = Uuid::new_v4();
        let body =
            format!("{MAGIC} create-pending {uuid} zones/{uuid} zones/i@final 0123456789abcdef");
        let line = format!("{body} {:016x}\n", checksum(&body));
        assert_eq!(
            Intent::parse(line.as_bytes()),
            Some(Intent::CreatePending {
                uuid,
                dataset: format!("zones/{uuid}"),
                origin: "zones/i@final".into(),
                token: "0123456789abcdef".into(),
                boot: None,
            })
        );
    }

    #[test]
    fn an_entry_too_long_for_the_slot_is_refused_not_cut() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let slot = store.intent_slot().unwrap();
        let uuid = Uuid::new_v4();
        let pool = "p".repeat(200);
        let long = Intent::CreatePending {
            uuid,
            dataset: format!("{pool}/{uuid}"),
            origin: format!("{pool}/{uuid}@final"),
            token: "0123456789abcdef".into(),
            boot: None,
        };
        let kept = sample()[0].clone();
        slot.write(&kept).unwrap();
        assert!(slot.write(&long).is_err());
        // What was there stays readable.
        assert_eq!(slot.read(), Some(kept));
    }

    #[test]
    fn the_boot_id_is_this_kernel_s_and_stable() {
        let a = boot_id();
        if std::path::Path::new("/proc/sys/kernel/random/boot_id").exists() {
            let a = a.unwrap();
            assert_eq!(a.len(), 36, "{a}");
            assert_eq!(boot_id(), Some(a));
        }
    }
}
