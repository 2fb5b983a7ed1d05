//! The list index: one derived file that lets `list` read a few fields of
//! thousands of VMs without opening thousands of record files.
//!
//! `<state_dir>/cache/list.index` holds, per record file, the file's
//! signature — inode, size, mtime and ctime, the last of which no user can
//! set back — and a projection of the record to the keys the index was
//! built for, one tab-separated column per key (compact JSON never holds a
//! raw tab), so a reader parses only the columns its query reads. It is
//! derived data, never an authority:
//!
//! - Every read lists the records directory and stats each record file; an
//!   entry is used only when its signature matches the file as it is now.
//!   Any other file is read, and the index rewritten if that changed it.
//!   A record that was added, removed, replaced (atomic writes make a new
//!   inode) or edited in place (ctime moves) is therefore never served
//!   from the index.
//! - A signature is taken with `fstat` on the very descriptor the record is
//!   read from, so the projection stored next to it is that file's content.
//! - "Racily clean" files — changed so recently (within [`RACY`] of the
//!   read) that a later change could leave mtime, ctime and size as they
//!   are on a filesystem with coarse timestamps — are not indexed; they are
//!   read again until they are old enough.
//! - The file is replaced by rename (temp file beside it), so a reader sees
//!   an old index or a new one; a writer killed with -9 leaves at most a
//!   temp file. Concurrent readers that rebuild each write a complete index
//!   that is right for what they saw, and the last rename wins; either way
//!   every entry is checked again before use. No fsync: after a crash the
//!   index may be old or cut short, and a file that does not parse to its
//!   `end` line (with the entry count) is ignored and rebuilt.
//!
//! The writers (`save`, `remove`) never touch the index, so creating and
//! changing VMs costs nothing extra.

use super::records::{decode, io_err, LoadedRecord, Record, Store, StoreError};
use crate::spec::VmRecord;
use serde_json::{Map, Value};
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use uuid::Uuid;

/// A file changed less than this long before a read is not indexed: it is
/// well above the timestamp granularity of every filesystem in use
/// (jiffies on ext4 and tmpfs, 1 s on some, 2 s on FAT).
pub const RACY: Duration = Duration::from_secs(2);

const MAGIC: &str = "rvmadm list index 3";
const FILE: &str = "list.index";

/// What identifies one version of a record file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sig {
    ino: u64,
    size: u64,
    mtime: i64,
    ctime: i64,
}

impl Sig {
    fn of(m: &std::fs::Metadata) -> Sig {
        let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
        Sig {
            ino: m.ino(),
            size: m.size(),
            mtime: ns(m.mtime(), m.mtime_nsec()),
            ctime: ns(m.ctime(), m.ctime_nsec()),
        }
    }

    /// Changed too recently before `now` (ns since the epoch) to be trusted.
    fn racy(&self, now: i64, racy: Duration) -> bool {
        let margin = i64::try_from(racy.as_nanos()).unwrap_or(i64::MAX);
        self.mtime.max(self.ctime).saturating_add(margin) > now
    }
}

/// How a summaries read went: for tests and the performance notes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IndexStats {
    /// Records served from the index.
    pub reused: usize,
    /// Record files opened and parsed.
    pub read: usize,
    /// Whether the index file was (re)written.
    pub rewritten: bool,
}

/// One parsed entry of the index: signature and the value columns (the
/// rest of the line after the signature).
struct Entry<'a> {
    sig: Sig,
    cols: &'a str,
}

/// Parses the index text into its entries, sorted by uuid; `None` when it
/// is not a complete index built for exactly `fields`. Each entry line is
/// `uuid ino size mtime ctime length columns` (tab-separated), where
/// `length` is the byte length of the columns: the parser jumps over them
/// instead of scanning ~1 KB per VM for the end of the line.
fn parse<'a>(text: &'a str, fields: &str) -> Option<Vec<(Uuid, Entry<'a>)>> {
    let (header, mut rest) = text.split_once('\n')?;
    if header.split_once('\t') != Some((MAGIC, fields)) {
        return None;
    }
    let mut out: Vec<(Uuid, Entry<'a>)> = Vec::new();
    loop {
        if let Some(n) = rest.strip_prefix("end\t") {
            if n.strip_suffix('\n')?.parse::<usize>().ok()? != out.len() {
                return None;
            }
            // Written in uuid order; sort anyway rather than trust it.
            if !out.windows(2).all(|w| w[0].0 < w[1].0) {
                out.sort_by_key(|(u, _)| *u);
                out.dedup_by_key(|(u, _)| *u);
            }
            return Some(out);
        }
        let mut head = rest.splitn(7, '\t');
        let uuid = Uuid::parse_str(head.next()?).ok()?;
        let mut num = || head.next()?.parse::<i64>().ok();
        let sig = Sig {
            ino: u64::try_from(num()?).ok()?,
            size: u64::try_from(num()?).ok()?,
            mtime: num()?,
            ctime: num()?,
        };
        let len = usize::try_from(num()?).ok()?;
        let tail = head.next()?;
        let cols = tail.get(..len)?;
        rest = tail.get(len..)?.strip_prefix('\n')?;
        out.push((uuid, Entry { sig, cols }));
    }
}

/// Which value columns a reader needs: positions in the index's field
/// list, and whether the dotted-keys column is needed (a wanted key with a
/// dot may name a stored key literally).
struct Want<'a> {
    columns: Vec<(usize, &'a str)>,
    dotted: bool,
    width: usize,
}

impl<'a> Want<'a> {
    fn new(fields: &[&'a str], wanted: &[&str]) -> Want<'a> {
        let columns = fields
            .iter()
            .enumerate()
            .filter(|(_, f)| wanted.contains(f))
            .map(|(i, f)| (i, *f))
            .collect();
        Want {
            columns,
            dotted: wanted.iter().any(|w| w.contains('.')),
            width: fields.len(),
        }
    }

    /// The wanted keys of one entry as a record; `None` when the entry is
    /// malformed (it is then read from its file instead). Stops splitting
    /// after the last wanted column unless the dotted column is wanted.
    fn record(&self, cols: &str) -> Option<VmRecord> {
        let mut map = Map::new();
        let mut next = self.columns.iter().peekable();
        let mut parts = cols.split('\t');
        for i in 0..=self.width {
            if next.peek().is_none() && !self.dotted {
                return Some(VmRecord::from_map(map));
            }
            let text = parts.next()?;
            let take = next.peek().filter(|(at, _)| *at == i).map(|(_, f)| *f);
            if let Some(field) = take {
                next.next();
                if !text.is_empty() {
                    map.insert(field.to_string(), serde_json::from_str(text).ok()?);
                }
            } else if i == self.width && self.dotted && !text.is_empty() {
                // The last column: stored keys with a dot in their name.
                if let Value::Object(extra) = serde_json::from_str(text).ok()? {
                    map.extend(extra);
                }
            }
        }
        parts.next().is_none().then(|| VmRecord::from_map(map))
    }
}

/// The value columns of one record for the index: each field's compact
/// JSON (empty when absent), then an object of its dotted stored keys.
fn columns(vm: &VmRecord, fields: &[&str]) -> Option<String> {
    let mut out = String::new();
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push('\t');
        }
        if let Some(v) = vm.get(f) {
            out.push_str(&serde_json::to_string(&v).ok()?);
        }
    }
    out.push('\t');
    let dotted: Map<String, Value> = vm
        .key_names()
        .into_iter()
        .filter(|k| k.contains('.'))
        .filter_map(|k| Some((k.to_string(), vm.get(k)?)))
        .collect();
    if !dotted.is_empty() {
        out.push_str(&serde_json::to_string(&dotted).ok()?);
    }
    Some(out)
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// The outcome for one record file.
enum Got {
    /// From the index; the signature matched.
    Reused(Record),
    /// Read from the file; `Some` when it may go into the index.
    Read(Record, Option<(Sig, String)>),
    /// Gone since the directory was listed.
    Gone,
    /// Unreadable or corrupt: reported, never indexed.
    Bad(StoreError),
}

impl Store {
    /// Every record, sorted by uuid, holding only the `wanted` keys, served
    /// from the list index where its entries are still right (see the
    /// module text) and the index brought up to date when they were not.
    /// The index keeps the keys in `indexed`; `wanted` must be among them
    /// (or be dotted keys whose first part is). A corrupt record is
    /// returned as an error for that VM only.
    pub fn load_summaries(
        &self,
        indexed: &[&str],
        wanted: &[&str],
    ) -> Result<Vec<LoadedRecord>, StoreError> {
        self.load_summaries_with(indexed, wanted, self.racy)
            .map(|(r, _)| r)
    }

    /// Sets how recently changed a record may be and still be served from
    /// the index ([`RACY`] unless changed): for tests, which cannot wait
    /// for their records to age.
    pub fn set_index_racy(&mut self, racy: Duration) {
        self.racy = racy;
    }

    /// [`Store::load_summaries`] with the racy margin given, and how it went.
    pub fn load_summaries_with(
        &self,
        indexed: &[&str],
        wanted: &[&str],
        racy: Duration,
    ) -> Result<(Vec<LoadedRecord>, IndexStats), StoreError> {
        let now = now_ns();
        let field_list = indexed.join(",");
        let want = Want::new(indexed, wanted);
        let index_path = self.cache.join(FILE);
        let text = std::fs::read_to_string(&index_path).unwrap_or_default();
        let old = parse(&text, &field_list).unwrap_or_default();

        let files = self.record_files()?;
        if files.is_empty() && !self.vms.exists() {
            // A fresh state directory: nothing to list, no index to write.
            return Ok((Vec::new(), IndexStats::default()));
        }
        // Both lists are in uuid order: pair them up in one merge pass.
        let mut matched: Vec<Option<&Entry<'_>>> = Vec::with_capacity(files.len());
        let mut it = old.iter().peekable();
        for (uuid, _) in &files {
            while it.next_if(|(u, _)| u < uuid).is_some() {}
            matched.push(it.next_if(|(u, _)| u == uuid).map(|(_, e)| e));
        }
        let work: Vec<_> = files.iter().zip(&matched).collect();

        let one = |((uuid, entry), indexed_as): &(
            &(Uuid, std::fs::DirEntry),
            &Option<&Entry<'_>>,
        )|
         -> Got {
            // lstat through the directory handle; a match means the file is
            // the one indexed, byte for byte.
            if let (Ok(m), Some(e)) = (entry.metadata(), indexed_as) {
                if m.is_file() && Sig::of(&m) == e.sig && !e.sig.racy(now, racy) {
                    if let Some(vm) = want.record(e.cols) {
                        return Got::Reused(Record { vm });
                    }
                }
            }
            self.read_projection(uuid, indexed, wanted, now, racy)
        };
        // Served entries cost a stat and a few small parses: threads only
        // pay off when many files must be read.
        let misses = matched.iter().filter(|m| m.is_none()).count();
        let got = if misses >= 512 {
            par_map(&work, one)
        } else {
            work.iter().map(one).collect()
        };

        let mut stats = IndexStats::default();
        let mut out = Vec::with_capacity(got.len());
        let mut fresh: Vec<(Uuid, Sig, std::borrow::Cow<'_, str>)> = Vec::new();
        let mut same = true;
        for (((uuid, _), indexed_as), g) in work.iter().zip(got) {
            match g {
                Got::Reused(rec) => {
                    stats.reused += 1;
                    if let Some(e) = indexed_as {
                        fresh.push((*uuid, e.sig, e.cols.into()));
                    }
                    out.push((*uuid, Ok(rec)));
                }
                Got::Read(rec, entry) => {
                    stats.read += 1;
                    if let Some((sig, cols)) = entry {
                        same = false;
                        fresh.push((*uuid, sig, cols.into()));
                    } else if indexed_as.is_some() {
                        same = false;
                    }
                    out.push((*uuid, Ok(rec)));
                }
                Got::Gone => {}
                Got::Bad(e) => {
                    stats.read += 1;
                    if indexed_as.is_some() {
                        same = false;
                    }
                    out.push((*uuid, Err(e)));
                }
            }
        }
        if !same || fresh.len() != old.len() {
            // Best effort: a reader that cannot write the cache still lists.
            stats.rewritten = write_index(&index_path, &field_list, &fresh).is_ok();
        }
        Ok((out, stats))
    }

    /// Reads one record file: its `wanted` keys for the caller and, when it
    /// is not racy, its index columns; the signature comes from the same
    /// open file, so it describes what was read.
    fn read_projection(
        &self,
        uuid: &Uuid,
        indexed: &[&str],
        wanted: &[&str],
        now: i64,
        racy: Duration,
    ) -> Got {
        let path = self.path(uuid);
        let mut f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Got::Gone,
            Err(e) => return Got::Bad(io_err(&path)(e)),
        };
        let meta = match f.metadata() {
            Ok(m) => m,
            Err(e) => return Got::Bad(io_err(&path)(e)),
        };
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        if let Err(e) = f.read_to_end(&mut bytes) {
            return Got::Bad(io_err(&path)(e));
        }
        let vm = match decode(&bytes) {
            Ok(vm) if vm.uuid.as_deref() == Some(uuid.to_string().as_str()) => vm,
            Ok(_) => {
                return Got::Bad(StoreError::Corrupt {
                    path,
                    reason: "uuid does not match the file name".into(),
                })
            }
            Err(reason) => return Got::Bad(StoreError::Corrupt { path, reason }),
        };
        let sig = Sig::of(&meta);
        let entry = (meta.is_file() && !sig.racy(now, racy))
            .then(|| columns(&vm, indexed))
            .flatten()
            .map(|cols| (sig, cols));
        // Stored keys with a dot in their name go along: a query key such
        // as `tags.role` may name one literally.
        let mut keep: Vec<String> = wanted.iter().map(|w| w.to_string()).collect();
        keep.extend(
            vm.key_names()
                .into_iter()
                .filter(|k| k.contains('.'))
                .map(str::to_string),
        );
        Got::Read(
            Record {
                vm: VmRecord::from_map(vm.into_map_of(&keep)),
            },
            entry,
        )
    }
}

/// Maps `f` over `items` on up to one thread per core (one per ~512 items):
/// at ten thousand VMs the stats and parses are most of a list.
fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = cores.min(items.len() / 512 + 1).max(1);
    if threads == 1 {
        return items.iter().map(&f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    let parts: Vec<Vec<R>> = std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(f).collect::<Vec<R>>()))
            .collect();
        // A panicking worker re-panics here, as the sequential map would.
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    parts.into_iter().flatten().collect()
}

/// Writes the index beside `path` and renames it into place.
fn write_index(
    path: &Path,
    fields: &str,
    entries: &[(Uuid, Sig, std::borrow::Cow<'_, str>)],
) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut text = String::with_capacity(64 + entries.len() * 256);
    text.push_str(MAGIC);
    text.push('\t');
    text.push_str(fields);
    text.push('\n');
    for (uuid, s, cols) in entries {
        use std::fmt::Write as _;
        // serde_json never writes a raw tab or newline inside a value.
        let _ = writeln!(
            text,
            "{uuid}\t{}\t{}\t{}\t{}\t{}\t{cols}",
            s.ino,
            s.size,
            s.mtime,
            s.ctime,
            cols.len()
        );
    }
    text.push_str(&format!("end\t{}\n", entries.len()));
    // Unique per writer: concurrent rebuilds never share a temp file.
    let tmp = dir.join(format!(".{FILE}.{}.{:x}.tmp", std::process::id(), now_ns()));
    // 0600 like the records themselves: the index repeats their aliases,
    // addresses and tags.
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .and_then(|_| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    const FIELDS: &[&str] = &["uuid", "alias", "_incomplete"];
    const NOW: Duration = Duration::ZERO;

    fn save(store: &Store, u: &Uuid, alias: &str) {
        let vm = json!({"uuid": u.to_string(), "alias": alias, "brand": "jail",
                        "customer_metadata": {"big": "not indexed"}});
        store
            .save(u, &VmRecord::from_map(vm.as_object().unwrap().clone()))
            .unwrap();
    }

    /// `(uuid, alias)` of every record a summaries read returns.
    fn aliases(store: &Store, racy: Duration) -> (Vec<(Uuid, String)>, IndexStats) {
        let (recs, stats) = store.load_summaries_with(FIELDS, FIELDS, racy).unwrap();
        let got = recs
            .into_iter()
            .map(|(u, r)| (u, r.unwrap().vm.alias.unwrap_or_default()))
            .collect();
        (got, stats)
    }

    /// The same, read from the records themselves.
    fn truth(store: &Store) -> Vec<(Uuid, String)> {
        store
            .load_all()
            .unwrap()
            .into_iter()
            .map(|(u, r)| (u, r.unwrap().vm.alias.unwrap_or_default()))
            .collect()
    }

    #[test]
    fn unchanged_records_are_served_from_the_index_with_only_the_indexed_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let uuids: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
        for (i, u) in uuids.iter().enumerate() {
            save(&store, u, &format!("vm{i}"));
        }
        let (first, stats) = aliases(&store, NOW);
        assert_eq!(first, truth(&store));
        assert_eq!((stats.read, stats.reused, stats.rewritten), (5, 0, true));
        let (second, stats) = aliases(&store, NOW);
        assert_eq!(second, first);
        assert_eq!((stats.read, stats.reused, stats.rewritten), (0, 5, false));
        let (recs, _) = store.load_summaries_with(FIELDS, FIELDS, NOW).unwrap();
        let vm = recs[0].1.as_ref().unwrap().vm.clone();
        assert_eq!(vm.key_names(), ["uuid", "alias"]);
        assert!(vm.brand.is_none());
        // A reader gets only the columns it asks for, from the index and
        // from a file alike.
        save(&store, &uuids[0], "changed");
        let (recs, stats) = store.load_summaries_with(FIELDS, &["uuid"], NOW).unwrap();
        assert_eq!((stats.read, stats.reused), (1, 4));
        for (_, r) in recs {
            assert_eq!(r.unwrap().vm.key_names(), ["uuid"]);
        }
    }

    #[test]
    fn added_replaced_edited_and_removed_records_are_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        save(&store, &a, "one");
        save(&store, &b, "bee");
        aliases(&store, NOW);
        // Replaced through the store (same size: a new inode), added, removed.
        save(&store, &a, "two");
        save(&store, &c, "sea");
        store.remove(&b).unwrap();
        let (got, stats) = aliases(&store, NOW);
        assert_eq!(got, truth(&store));
        assert!(got.contains(&(a, "two".into())) && got.len() == 2);
        assert_eq!((stats.read, stats.reused, stats.rewritten), (2, 0, true));
        // Edited in place by hand: a new size, then (a tick later) the same
        // size — ctime moves either way.
        let path = store.path(&a);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("\"two\"", "\"three\"")).unwrap();
        assert!(aliases(&store, NOW).0.contains(&(a, "three".into())));
        std::thread::sleep(Duration::from_millis(20));
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("\"three\"", "\"THREE\"")).unwrap();
        let (got, stats) = aliases(&store, NOW);
        assert!(got.contains(&(a, "THREE".into())), "{got:?}");
        assert_eq!((stats.read, stats.reused), (1, 1));
    }

    #[test]
    fn records_changed_within_the_racy_window_are_not_indexed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let a = Uuid::new_v4();
        save(&store, &a, "new");
        // Just written: too fresh to trust a signature for.
        let (_, stats) = aliases(&store, RACY);
        assert_eq!((stats.read, stats.rewritten), (1, false));
        let (_, stats) = aliases(&store, RACY);
        assert_eq!((stats.read, stats.reused), (1, 0));
        assert!(!dir.path().join("cache").join(FILE).exists());
    }

    #[test]
    fn a_corrupt_record_is_reported_every_time_and_never_indexed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let good = Uuid::new_v4();
        save(&store, &good, "good");
        let bad = Uuid::new_v4();
        std::fs::write(store.path(&bad), "{not json").unwrap();
        for _ in 0..2 {
            let (recs, _) = store.load_summaries_with(FIELDS, FIELDS, NOW).unwrap();
            assert_eq!(recs.len(), 2);
            let e = recs.iter().find(|(u, _)| *u == bad).unwrap();
            assert!(matches!(e.1, Err(StoreError::Corrupt { .. })));
        }
        let index_path = dir.path().join("cache").join(FILE);
        let index = std::fs::read_to_string(&index_path).unwrap();
        assert!(!index.contains(&bad.to_string()));
        let mode = std::fs::metadata(&index_path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600, "the index is as private as the records");
        assert!(index.ends_with("end\t1\n"), "{index}");
    }

    #[test]
    fn a_torn_foreign_or_lying_index_is_ignored_and_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let a = Uuid::new_v4();
        save(&store, &a, "real");
        aliases(&store, NOW);
        let path = dir.path().join("cache").join(FILE);
        let good = std::fs::read_to_string(&path).unwrap();
        // Cut short (a crash before the data reached the disk), built for
        // other keys, or garbage: each is rebuilt from the records.
        let cut = good[..good.len() - 4].to_string();
        let other = good.replacen("uuid,alias,_incomplete", "uuid,alias", 1);
        for broken in [cut, other, "\0\0\0".to_string(), String::new()] {
            std::fs::write(&path, broken).unwrap();
            let (got, stats) = aliases(&store, NOW);
            assert_eq!(got, [(a, "real".to_string())]);
            assert_eq!((stats.read, stats.rewritten), (1, true));
            assert_eq!(std::fs::read_to_string(&path).unwrap(), good);
        }
        // An entry whose signature does not match the file is never
        // believed, whatever it says (here: the inode is off by one).
        let lie = good.replace("\"real\"", "\"fake\"");
        let line = lie.lines().nth(1).unwrap();
        let cols: Vec<&str> = line.splitn(3, '\t').collect();
        let ino: u64 = cols[1].parse().unwrap();
        let wrong = lie.replace(line, &format!("{}\t{}\t{}", cols[0], ino + 1, cols[2]));
        std::fs::write(&path, &wrong).unwrap();
        assert_eq!(aliases(&store, NOW).0, [(a, "real".to_string())]);
        // One whose signature does match is used without opening the
        // record: that is the point of the index (and why it must only
        // ever be written from the file it describes).
        std::fs::write(&path, &lie).unwrap();
        assert_eq!(aliases(&store, NOW).0, [(a, "fake".to_string())]);
        // A writer killed mid-way leaves at most a temp file, which no
        // reader looks at.
        std::fs::write(dir.path().join("cache").join(".list.index.1.2.tmp"), "x").unwrap();
        save(&store, &a, "after");
        assert_eq!(aliases(&store, NOW).0, [(a, "after".to_string())]);
    }

    #[test]
    fn concurrent_writers_and_readers_never_see_a_record_go_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::new(dir.path()));
        let uuids: Vec<Uuid> = (0..24).map(|_| Uuid::new_v4()).collect();
        for u in &uuids {
            save(&store, u, "v0");
        }
        let stop = Arc::new(AtomicBool::new(false));
        // Writers: each owns some records and moves them forward through
        // versions v1, v2, …, also deleting and re-creating some.
        let writers: Vec<_> = uuids
            .chunks(8)
            .map(|mine| {
                let (store, stop, mine) = (store.clone(), stop.clone(), mine.to_vec());
                std::thread::spawn(move || {
                    let mut v = 0u32;
                    while !stop.load(Ordering::Relaxed) && v < 400 {
                        v += 1;
                        for u in &mine {
                            save(&store, u, &format!("v{v}"));
                        }
                    }
                    v
                })
            })
            .collect();
        // Readers: with no racy margin (the hardest case), every version
        // a reader sees must be at least the one it saw before; the index
        // is rebuilt under them all the time.
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let store = store.clone();
                std::thread::spawn(move || {
                    let mut seen: HashMap<Uuid, u32> = HashMap::new();
                    let mut reused = 0;
                    for _ in 0..60 {
                        let (got, stats) = aliases(&store, NOW);
                        reused += stats.reused;
                        assert_eq!(got.len(), 24);
                        for (u, alias) in got {
                            let v: u32 = alias[1..].parse().unwrap();
                            let before = seen.insert(u, v).unwrap_or(0);
                            assert!(v >= before, "{u}: v{before} then v{v}");
                        }
                    }
                    reused
                })
            })
            .collect();
        let reused: usize = readers.into_iter().map(|r| r.join().unwrap()).sum();
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.join().unwrap();
        }
        // Settled: the index agrees with the records, and serves them all.
        aliases(&store, NOW);
        let (got, stats) = aliases(&store, NOW);
        assert_eq!(got, truth(&store));
        assert_eq!(stats.reused, 24);
        // The readers did use the index while the writers ran (not only
        // re-read everything), or the test would prove little.
        assert!(reused > 0);
    }
}
