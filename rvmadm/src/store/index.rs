//! The list index: one derived file that lets `list` read a few fields of
//! thousands of VMs without opening, or even stat-ing, thousands of record
//! files.
//!
//! `<state_dir>/cache/list.index` holds, per record file, the file's
//! signature — inode, size, mtime and ctime — and a projection of the
//! record to the keys the index was built for. It is stored by column: one
//! block of lines per key (compact JSON never holds a raw newline), so a
//! reader reads and parses only the blocks of the keys its query reads.
//! The header also keeps the signature of the records directory itself
//! (device, inode, mtime, ctime) as it was when the index was last checked
//! against the files. The index is derived data, never an authority:
//!
//! - Every store write is an atomic rename into the records directory (and
//!   a temp file created there first), and a delete unlinks there: each
//!   moves the directory's mtime and ctime, and no user can set a ctime
//!   back. So while the directory's signature is the one in the header, no
//!   record has been created, replaced or removed since the check, and the
//!   index is served without listing the directory or stat-ing a record:
//!   one `statx` of the directory, one read of the header and the blocks
//!   wanted.
//! - Racy directory: a change in the same timestamp tick as the check could
//!   leave the directory's signature as it was. An index whose directory
//!   signature was less than [`RACY`] old when it was taken (the `checked`
//!   time in the header) is therefore never served that way; like git's
//!   racily clean index entries, it is checked file by file until it is
//!   rewritten after the directory has aged.
//! - What the directory's signature does not see is a record file changed
//!   in place (opened and rewritten, not renamed): no store write does
//!   that, but a hand edit with some editors or `>` redirection does. The
//!   guard is a bound on how long the shortcut is taken: an index last
//!   checked file by file more than [`RECHECK`] ago (its file's mtime) is
//!   checked again — every record file `lstat`ed through the directory
//!   handle — and its mtime moved forward when nothing changed. Such an
//!   edit shows at the latest [`RECHECK`] later, or at the first list after
//!   any store write.
//! - The file-by-file check serves an entry only when its signature matches
//!   the file as it is now; any other file is read, with `fstat` on the
//!   descriptor it reads, so a signature always describes the bytes stored
//!   next to it. A record that was added, removed, replaced (a new inode)
//!   or edited in place (ctime moves) is read, not served.
//! - "Racily clean" files — changed within [`RACY`] of the read, when a
//!   later change could leave mtime, ctime and size as they are on a
//!   filesystem with coarse timestamps — are not indexed: the index lists
//!   them as files to read on every use, as it does corrupt records (whose
//!   warning must show every time).
//! - The file is replaced by rename (temp file beside it), so a reader sees
//!   an old index or a new one; a writer killed with -9 leaves at most a
//!   temp file. Concurrent readers that rebuild each write a complete index
//!   that is right for the directory signature they took before listing it,
//!   and the last rename wins. No fsync: after a crash the index may be old
//!   or cut short; one whose size is not what its header says, whose blocks
//!   do not hold one line per entry, or whose values do not parse is
//!   ignored and rebuilt.
//!
//! The writers (`save`, `remove`) never touch the index. A list right after
//! a write finds the directory changed and checks the files; it rewrites
//! the index only when an entry changed or, once the directory is older
//! than [`RACY`], to record its new signature — so a burst of creates does
//! not rewrite it once per create.

use super::records::{decode, io_err, LoadedRecord, Record, Store, StoreError};
use crate::spec::VmRecord;
use serde_json::{Map, Value};
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use uuid::Uuid;

/// A file or directory changed less than this long before it was looked at
/// is not trusted by its signature: it is well above the timestamp
/// granularity of every filesystem in use (jiffies on ext4 and tmpfs, 1 s
/// on some, 2 s on FAT).
pub const RACY: Duration = Duration::from_secs(2);

/// How long after its last file-by-file check the index is served on the
/// directory's signature alone: the longest a record edited in place by
/// hand (which the directory does not see) can show its old values.
pub const RECHECK: Duration = Duration::from_secs(10);

const MAGIC: &str = "rvmadm list index 4";
const FILE: &str = "list.index";
/// The header is read in one go; it holds the field list and block sizes.
const HEAD_READ: usize = 16 * 1024;

/// The index's time margins ([`RACY`], [`RECHECK`]); tests lower them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// See [`RACY`].
    pub racy: Duration,
    /// See [`RECHECK`].
    pub recheck: Duration,
}

impl Default for Tuning {
    fn default() -> Tuning {
        Tuning {
            racy: RACY,
            recheck: RECHECK,
        }
    }
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

fn stamp(s: i64, n: i64) -> i64 {
    s.saturating_mul(1_000_000_000).saturating_add(n)
}

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
        Sig {
            ino: m.ino(),
            size: m.size(),
            mtime: stamp(m.mtime(), m.mtime_nsec()),
            ctime: stamp(m.ctime(), m.ctime_nsec()),
        }
    }

    /// Changed too recently before `now` (ns since the epoch) to be trusted.
    fn racy(&self, now: i64, racy: Duration) -> bool {
        self.mtime.max(self.ctime).saturating_add(nanos(racy)) > now
    }

    fn parse(line: &str) -> Option<Sig> {
        let mut it = line.split('\t').map(str::parse::<i64>);
        let mut num = || it.next()?.ok();
        Some(Sig {
            ino: u64::try_from(num()?).ok()?,
            size: u64::try_from(num()?).ok()?,
            mtime: num()?,
            ctime: num()?,
        })
    }
}

/// What identifies one state of the records directory's entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DirSig {
    dev: u64,
    ino: u64,
    mtime: i64,
    ctime: i64,
}

impl DirSig {
    fn of(m: &std::fs::Metadata) -> DirSig {
        DirSig {
            dev: m.dev(),
            ino: m.ino(),
            mtime: stamp(m.mtime(), m.mtime_nsec()),
            ctime: stamp(m.ctime(), m.ctime_nsec()),
        }
    }

    fn racy(&self, at: i64, racy: Duration) -> bool {
        self.mtime.max(self.ctime).saturating_add(nanos(racy)) > at
    }
}

/// How a summaries read went: for tests and the performance notes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IndexStats {
    /// Served on the directory's signature: no listing, no record stat.
    pub trusted: bool,
    /// Records served from the index.
    pub reused: usize,
    /// Record files opened and parsed.
    pub read: usize,
    /// Whether the index file was (re)written.
    pub rewritten: bool,
    /// Whether an unchanged index had its check time moved forward.
    pub refreshed: bool,
}

/// One VM of a summaries read: its uuid and the values of the keys asked
/// for, in the order asked (`None` where the record lacks the key), or why
/// its record could not be read.
pub type LoadedValues = (Uuid, Result<Vec<Option<Value>>, StoreError>);

/// The header of an index file.
struct Header {
    dir: DirSig,
    checked: i64,
    count: usize,
    /// Byte length of each block: names, one per indexed key, the dotted
    /// stored keys, signatures (last: only a file-by-file check reads them,
    /// so what a trusted read needs is one range at the front).
    blocks: Vec<usize>,
    /// Byte length of the header itself.
    len: usize,
}

impl Header {
    /// Parses the start of an index file; `None` unless it is a version 4
    /// index for exactly `fields` whose size is `size`.
    fn parse(head: &[u8], fields: &str, size: u64) -> Option<Header> {
        let mut lines = Vec::with_capacity(4);
        let mut at = 0;
        while lines.len() < 4 {
            let nl = head.get(at..)?.iter().position(|b| *b == b'\n')?;
            lines.push(std::str::from_utf8(&head[at..at + nl]).ok()?);
            at += nl + 1;
        }
        if lines[0].split_once('\t') != Some((MAGIC, fields)) {
            return None;
        }
        let dir: Vec<i64> = lines[1]
            .strip_prefix("dir\t")?
            .split('\t')
            .map(|n| n.parse().ok())
            .collect::<Option<_>>()?;
        let [dev, ino, mtime, ctime, checked] = dir[..] else {
            return None;
        };
        let count = lines[2].strip_prefix("count\t")?.parse().ok()?;
        let blocks: Vec<usize> = lines[3]
            .strip_prefix("blocks\t")?
            .split(',')
            .map(|n| n.parse().ok())
            .collect::<Option<_>>()?;
        let want = fields.split(',').count() + 3;
        let total = blocks
            .iter()
            .try_fold(at, |a, b| a.checked_add(*b))?
            .checked_add(4)?;
        (blocks.len() == want && u64::try_from(total).ok()? == size).then_some(Header {
            dir: DirSig {
                dev: u64::try_from(dev).ok()?,
                ino: u64::try_from(ino).ok()?,
                mtime,
                ctime,
            },
            checked,
            count,
            blocks,
            len: at,
        })
    }

    /// Where block `b` starts in the file.
    fn start(&self, b: usize) -> usize {
        self.len + self.blocks[..b].iter().sum::<usize>()
    }
}

/// The lines of one block, which must be exactly `n`.
fn block_lines(text: &str, n: usize) -> Option<Vec<&str>> {
    if n == 0 {
        return text.is_empty().then(Vec::new);
    }
    let body = text.strip_suffix('\n')?;
    // A plain byte loop: the lines are short, and `split` pays a searcher
    // setup per line.
    let mut lines = Vec::with_capacity(n);
    let mut start = 0;
    for (i, b) in body.bytes().enumerate() {
        if b == b'\n' {
            lines.push(body.get(start..i)?);
            start = i + 1;
        }
    }
    lines.push(body.get(start..)?);
    (lines.len() == n).then_some(lines)
}

/// A name line: the record's uuid, and whether the index lists it only as
/// a file to read (racy or corrupt when the index was written).
fn parse_name(line: &str) -> Option<(Uuid, bool)> {
    let (u, mark) = match line.strip_suffix("\t-") {
        Some(u) => (u, true),
        None => (line, false),
    };
    Some((Uuid::parse_str(u).ok()?, mark))
}

/// Where a wanted key's value comes from.
enum Source<'w> {
    /// The name block (`uuid`: an indexed record's uuid is its file name).
    Name,
    /// The block of an indexed key.
    Block(usize),
    /// The dotted stored keys' block: a wanted key with a dot may name a
    /// stored key literally.
    Dotted(&'w str),
    /// A key the index does not keep (the caller checks coverage first).
    Absent,
}

fn sources<'w>(indexed: &[&str], wanted: &[&'w str]) -> Vec<Source<'w>> {
    wanted
        .iter()
        .map(|w| match indexed.iter().position(|f| f == w) {
            _ if *w == "uuid" => Source::Name,
            Some(i) => Source::Block(1 + i),
            None if w.contains('.') => Source::Dotted(w),
            None => Source::Absent,
        })
        .collect()
}

/// One compact JSON value of a block: `Some(None)` for an empty line,
/// `None` when it does not parse. Plain strings and integers, most of what
/// list reads, are taken without the JSON parser.
fn value(text: &str) -> Option<Option<Value>> {
    let b = text.as_bytes();
    match b.first() {
        None => Some(None),
        Some(b'"') if b.len() >= 2 && b[b.len() - 1] == b'"' => {
            let inner = &text[1..text.len() - 1];
            if inner.bytes().all(|c| c != b'"' && c != b'\\' && c >= 0x20) {
                Some(Some(Value::String(inner.to_string())))
            } else {
                serde_json::from_str(text).ok().map(Some)
            }
        }
        Some(b'1'..=b'9') if b.len() < 19 && b.iter().all(u8::is_ascii_digit) => {
            text.parse::<u64>().ok().map(|n| Some(Value::from(n)))
        }
        _ => serde_json::from_str(text).ok().map(Some),
    }
}

/// The blocks of an index, split into lines: `None` for blocks not read.
type Blocks<'t> = Vec<Option<Vec<&'t str>>>;

/// The wanted values of indexed entry `i`; `None` if one does not parse
/// (the record is then read from its file, or the index rebuilt).
fn entry_values(
    uuid: &Uuid,
    i: usize,
    srcs: &[Source<'_>],
    blocks: &Blocks<'_>,
) -> Option<Vec<Option<Value>>> {
    let line = |b: usize| blocks.get(b)?.as_ref()?.get(i).copied();
    let mut dotted: Option<Map<String, Value>> = None;
    let mut out = Vec::with_capacity(srcs.len());
    for src in srcs {
        out.push(match src {
            Source::Name => Some(Value::String(uuid.to_string())),
            Source::Block(b) => value(line(*b)?)?,
            Source::Absent => None,
            Source::Dotted(key) => {
                if dotted.is_none() {
                    dotted = Some(match value(line(blocks.len().checked_sub(2)?)?)? {
                        Some(Value::Object(m)) => m,
                        _ => Map::new(),
                    });
                }
                dotted.as_ref().and_then(|m| m.get(*key)).cloned()
            }
        });
    }
    Some(out)
}

/// The values of the `wanted` keys of a record read from its file.
fn record_values(vm: &VmRecord, wanted: &[&str]) -> Vec<Option<Value>> {
    wanted.iter().map(|w| vm.get(w)).collect()
}

/// The index columns of one record: each indexed key's compact JSON
/// (empty when absent; `uuid` is always empty, the name says it), then an
/// object of its stored keys with a dot in their name.
fn columns(vm: &VmRecord, indexed: &[&str]) -> Option<Vec<String>> {
    let mut out = Vec::with_capacity(indexed.len() + 1);
    for f in indexed {
        out.push(match vm.get(f) {
            Some(v) if *f != "uuid" => serde_json::to_string(&v).ok()?,
            _ => String::new(),
        });
    }
    let dotted: Map<String, Value> = vm
        .key_names()
        .into_iter()
        .filter(|k| k.contains('.'))
        .filter_map(|k| Some((k.to_string(), vm.get(k)?)))
        .collect();
    out.push(if dotted.is_empty() {
        String::new()
    } else {
        serde_json::to_string(&dotted).ok()?
    });
    Some(out)
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn time_of(ns: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(u64::try_from(ns).unwrap_or(0))
}

/// Reads up to `len` bytes at `off` (fewer at the end of the file).
fn read_upto(f: &File, off: usize, len: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        match f.read_at(&mut buf[got..], (off + got) as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

/// One record file read for a summaries read.
enum FileRead {
    /// Its record, signature (from the descriptor read) and whether it is
    /// a regular file.
    Got(Box<VmRecord>, Sig, bool),
    /// Gone since the directory was listed.
    Gone,
    /// Unreadable or corrupt: reported, never indexed.
    Bad(StoreError),
}

/// The outcome for one record file of a file-by-file check.
enum Got {
    /// Served from old entry `j`; the signature matched.
    Reused(usize, Vec<Option<Value>>),
    /// Read from the file; `Some` when it may go into the index.
    Read(Vec<Option<Value>>, Option<(Sig, Vec<String>)>),
    /// Gone since the directory was listed.
    Gone,
    /// Unreadable or corrupt: reported, never indexed.
    Bad(StoreError),
}

/// One entry of an index being written.
enum Ent {
    /// Entry `j` of the old index, unchanged.
    Old(usize),
    /// A record just read: signature and columns.
    New(Uuid, Sig, Vec<String>),
    /// A record file to read on every use.
    Mark(Uuid),
}

/// An index file as read: its header and text.
struct Loaded {
    file: File,
    meta: std::fs::Metadata,
    header: Option<Header>,
    /// The first bytes read (the whole file when it is small).
    head: Vec<u8>,
}

impl Store {
    /// Every record, sorted by uuid, holding only the `wanted` keys, served
    /// from the list index where it is still right (see the module text).
    /// The index keeps the keys in `indexed`; `wanted` must be among them
    /// (or be dotted keys whose first part is). A corrupt record is
    /// returned as an error for that VM only.
    pub fn load_summaries(
        &self,
        indexed: &[&str],
        wanted: &[&str],
    ) -> Result<Vec<LoadedRecord>, StoreError> {
        let rows = self.load_columns(indexed, wanted)?;
        Ok(rows
            .into_iter()
            .map(|(u, r)| {
                let rec = r.map(|vals| {
                    let map: Map<String, Value> = wanted
                        .iter()
                        .zip(vals)
                        .filter_map(|(k, v)| Some((k.to_string(), v?)))
                        .collect();
                    Record {
                        vm: VmRecord::from_map(map),
                    }
                });
                (u, rec)
            })
            .collect())
    }

    /// [`Store::load_summaries`] as values: per VM, the value of each
    /// `wanted` key in order (`None` when the record lacks it).
    pub fn load_columns(
        &self,
        indexed: &[&str],
        wanted: &[&str],
    ) -> Result<Vec<LoadedValues>, StoreError> {
        self.load_columns_with(indexed, wanted, self.tuning)
            .map(|(r, _)| r)
    }

    /// Sets the index's time margins ([`Tuning::default`] unless changed):
    /// for tests, which cannot wait for records to age.
    pub fn set_index_tuning(&mut self, tuning: Tuning) {
        self.tuning = tuning;
    }

    /// [`Store::load_columns`] with the margins given, and how it went.
    pub fn load_columns_with(
        &self,
        indexed: &[&str],
        wanted: &[&str],
        tuning: Tuning,
    ) -> Result<(Vec<LoadedValues>, IndexStats), StoreError> {
        // The clock first, then the directory: a change after this stat
        // gets a later timestamp than `now`, unless within the racy margin.
        let now = now_ns();
        let dir = match std::fs::metadata(&self.vms) {
            Ok(m) => DirSig::of(&m),
            // A fresh state directory: nothing to list, no index to write.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((Vec::new(), IndexStats::default()))
            }
            Err(e) => return Err(io_err(&self.vms)(e)),
        };
        let fields = indexed.join(",");
        let srcs = sources(indexed, wanted);
        let index_path = self.cache.join(FILE);
        let loaded = File::open(&index_path).ok().and_then(|file| {
            let meta = file.metadata().ok()?;
            let head = read_upto(&file, 0, HEAD_READ).ok()?;
            let header = Header::parse(&head, &fields, meta.len());
            Some(Loaded {
                file,
                meta,
                header,
                head,
            })
        });
        if let Some(l) = &loaded {
            if let Some(h) = &l.header {
                let checked_at = stamp(l.meta.mtime(), l.meta.mtime_nsec());
                let fresh = (0..nanos(tuning.recheck)).contains(&(now - checked_at));
                if h.dir == dir && !h.dir.racy(h.checked, tuning.racy) && fresh {
                    if let Some(got) = self.serve(l, h, &srcs, wanted) {
                        return Ok(got);
                    }
                }
            }
        }
        self.check_files(indexed, wanted, &srcs, &fields, tuning, now, dir, loaded)
    }

    /// Serves a trusted index: reads the name block and the wanted ones,
    /// and only the record files it lists as to be read. `None` when the
    /// index turns out malformed.
    fn serve(
        &self,
        l: &Loaded,
        h: &Header,
        srcs: &[Source<'_>],
        wanted: &[&str],
    ) -> Option<(Vec<LoadedValues>, IndexStats)> {
        let dotted = h.blocks.len() - 2;
        let mut need = vec![0];
        for s in srcs {
            match s {
                Source::Block(b) => need.push(*b),
                Source::Dotted(_) => need.push(dotted),
                Source::Name | Source::Absent => {}
            }
        }
        let end = need.iter().map(|b| h.start(*b) + h.blocks[*b]).max()?;
        let mut bytes = l.head.get(..end.min(l.head.len()))?.to_vec();
        if end > bytes.len() {
            bytes.extend(read_upto(&l.file, bytes.len(), end - bytes.len()).ok()?);
        }
        let text = std::str::from_utf8(bytes.get(h.len..end)?).ok()?;
        let mut blocks: Blocks<'_> = vec![None; h.blocks.len()];
        for b in need {
            if blocks[b].is_none() {
                let from = h.start(b) - h.len;
                blocks[b] = Some(block_lines(text.get(from..from + h.blocks[b])?, h.count)?);
            }
        }
        let mut stats = IndexStats {
            trusted: true,
            ..Default::default()
        };
        let mut out = Vec::with_capacity(h.count);
        let mut prev: Option<Uuid> = None;
        for (i, line) in blocks[0].as_ref()?.iter().enumerate() {
            let (uuid, mark) = parse_name(line)?;
            // Written in uuid order; anything else is not our index.
            if prev.is_some_and(|p| p >= uuid) {
                return None;
            }
            prev = Some(uuid);
            if !mark {
                stats.reused += 1;
                out.push((uuid, Ok(entry_values(&uuid, i, srcs, &blocks)?)));
                continue;
            }
            stats.read += 1;
            match self.read_record(&uuid) {
                FileRead::Got(vm, _, _) => out.push((uuid, Ok(record_values(&vm, wanted)))),
                FileRead::Gone => {}
                FileRead::Bad(e) => out.push((uuid, Err(e))),
            }
        }
        Some((out, stats))
    }

    /// The file-by-file check: lists the directory, `lstat`s each record,
    /// serves the entries whose signature matches, reads the other files,
    /// and writes the index anew when that changed it (or moves its check
    /// time forward when nothing did).
    #[allow(clippy::too_many_arguments)]
    fn check_files(
        &self,
        indexed: &[&str],
        wanted: &[&str],
        srcs: &[Source<'_>],
        fields: &str,
        tuning: Tuning,
        now: i64,
        dir: DirSig,
        loaded: Option<Loaded>,
    ) -> Result<(Vec<LoadedValues>, IndexStats), StoreError> {
        // The whole old index, split into lines, when it is sound.
        let all = loaded.as_ref().and_then(|l| {
            let mut bytes = l.head.clone();
            let size = usize::try_from(l.meta.len()).ok()?;
            if size > bytes.len() {
                bytes.extend(read_upto(&l.file, bytes.len(), size - bytes.len()).ok()?);
            }
            // From the whole file: a header longer than the first read
            // (a very long key list) is still found.
            let h = Header::parse(&bytes, fields, l.meta.len())?;
            Some((bytes, h))
        });
        let old = all.as_ref().and_then(|(bytes, h)| {
            let text = std::str::from_utf8(bytes.get(h.len..)?).ok()?;
            let mut blocks: Blocks<'_> = Vec::with_capacity(h.blocks.len());
            let mut at = 0;
            for len in &h.blocks {
                blocks.push(Some(block_lines(text.get(at..at + len)?, h.count)?));
                at += len;
            }
            (text.get(at..)? == "end\n").then_some(())?;
            let names = blocks[0]
                .as_ref()?
                .iter()
                .map(|l| parse_name(l))
                .collect::<Option<Vec<_>>>()?;
            names
                .windows(2)
                .all(|w| w[0].0 < w[1].0)
                .then_some((h, names, blocks))
        });

        let files = self.record_files()?;
        // Both lists are in uuid order: pair them up in one merge pass.
        let empty = Vec::new();
        let names = old.as_ref().map_or(&empty, |(_, n, _)| n);
        let mut matched: Vec<Option<usize>> = Vec::with_capacity(files.len());
        let mut j = 0;
        for (uuid, _) in &files {
            while j < names.len() && names[j].0 < *uuid {
                j += 1;
            }
            matched.push((j < names.len() && names[j].0 == *uuid && !names[j].1).then_some(j));
        }
        let no_blocks: Blocks<'_> = Vec::new();
        let blocks = old.as_ref().map_or(&no_blocks, |(_, _, b)| b);
        let work: Vec<_> = files.iter().zip(&matched).collect();
        let one = |((uuid, entry), at): &(&(Uuid, std::fs::DirEntry), &Option<usize>)| -> Got {
            // lstat through the directory handle; a match means the file is
            // the one indexed, byte for byte.
            if let (Ok(m), Some(j)) = (entry.metadata(), at) {
                let sig = blocks
                    .last()
                    .and_then(|b| b.as_ref()?.get(*j))
                    .and_then(|l| Sig::parse(l));
                if m.is_file() && sig == Some(Sig::of(&m)) && !Sig::of(&m).racy(now, tuning.racy) {
                    if let Some(vals) = entry_values(uuid, *j, srcs, blocks) {
                        return Got::Reused(*j, vals);
                    }
                }
            }
            match self.read_record(uuid) {
                FileRead::Got(vm, sig, is_file) => {
                    let entry = (is_file && !sig.racy(now, tuning.racy))
                        .then(|| columns(&vm, indexed))
                        .flatten()
                        .map(|cols| (sig, cols));
                    Got::Read(record_values(&vm, wanted), entry)
                }
                FileRead::Gone => Got::Gone,
                FileRead::Bad(e) => Got::Bad(e),
            }
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
        let mut ents = Vec::with_capacity(got.len());
        let mut changed = false;
        for ((uuid, _), g) in files.iter().zip(got) {
            match g {
                Got::Reused(j, vals) => {
                    stats.reused += 1;
                    ents.push(Ent::Old(j));
                    out.push((*uuid, Ok(vals)));
                }
                Got::Read(vals, Some((sig, cols))) => {
                    stats.read += 1;
                    changed = true;
                    ents.push(Ent::New(*uuid, sig, cols));
                    out.push((*uuid, Ok(vals)));
                }
                Got::Read(vals, None) => {
                    stats.read += 1;
                    ents.push(Ent::Mark(*uuid));
                    out.push((*uuid, Ok(vals)));
                }
                Got::Gone => {}
                Got::Bad(e) => {
                    stats.read += 1;
                    ents.push(Ent::Mark(*uuid));
                    out.push((*uuid, Err(e)));
                }
            }
        }
        // The indexed entries are the old ones exactly when none is new and
        // as many old ones were kept as there were.
        let kept = ents.iter().filter(|e| matches!(e, Ent::Old(_))).count();
        changed |= kept != names.iter().filter(|(_, mark)| !mark).count();
        let marks = ents.iter().filter_map(|e| match e {
            Ent::Mark(u) => Some(*u),
            _ => None,
        });
        let marks_moved = !marks.eq(names.iter().filter(|(_, m)| *m).map(|(u, _)| *u));
        let dir_racy = dir.racy(now, tuning.racy);
        let recorded = old
            .as_ref()
            .is_some_and(|(h, _, _)| h.dir == dir && !h.dir.racy(h.checked, tuning.racy));
        if changed || (!dir_racy && (!recorded || marks_moved)) {
            // Best effort: a reader that cannot write the cache still lists.
            stats.rewritten = write_index(
                &self.cache.join(FILE),
                fields,
                dir,
                now,
                &ents,
                blocks,
                indexed.len(),
            )
            .is_ok();
        } else if !dir_racy {
            // Nothing changed: the index is good as checked now.
            if let Some(l) = &loaded {
                stats.refreshed = l.file.set_modified(time_of(now)).is_ok();
            }
        }
        Ok((out, stats))
    }

    /// Reads one record file; the signature comes from the same open file,
    /// so it describes what was read.
    fn read_record(&self, uuid: &Uuid) -> FileRead {
        let path = self.path(uuid);
        let mut f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return FileRead::Gone,
            Err(e) => return FileRead::Bad(io_err(&path)(e)),
        };
        let meta = match f.metadata() {
            Ok(m) => m,
            Err(e) => return FileRead::Bad(io_err(&path)(e)),
        };
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        if let Err(e) = f.read_to_end(&mut bytes) {
            return FileRead::Bad(io_err(&path)(e));
        }
        match decode(&bytes) {
            Ok(vm) if vm.uuid.as_deref() == Some(uuid.to_string().as_str()) => {
                FileRead::Got(Box::new(vm), Sig::of(&meta), meta.is_file())
            }
            Ok(_) => FileRead::Bad(StoreError::Corrupt {
                path,
                reason: "uuid does not match the file name".into(),
            }),
            Err(reason) => FileRead::Bad(StoreError::Corrupt { path, reason }),
        }
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

/// Writes the index beside `path` and renames it into place, its mtime set
/// to `checked` (when the file-by-file check began).
fn write_index(
    path: &Path,
    fields: &str,
    dir: DirSig,
    checked: i64,
    ents: &[Ent],
    old: &Blocks<'_>,
    nfields: usize,
) -> std::io::Result<()> {
    use std::fmt::Write as _;
    let parent = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(parent)?;
    let nblocks = nfields + 3;
    let old_line = |b: usize, j: usize| -> &str {
        old.get(b)
            .and_then(|l| l.as_ref()?.get(j).copied())
            .unwrap_or("")
    };
    let mut blocks: Vec<String> = (0..nblocks)
        .map(|b| {
            String::with_capacity(if b == 0 || b == nblocks - 1 {
                ents.len() * 48
            } else {
                ents.len() * 8
            })
        })
        .collect();
    for e in ents {
        for (b, text) in blocks.iter_mut().enumerate() {
            match (e, b) {
                (Ent::Old(j), _) => text.push_str(old_line(b, *j)),
                (Ent::New(u, _, _) | Ent::Mark(u), 0) => {
                    let _ = write!(text, "{u}");
                    if matches!(e, Ent::Mark(_)) {
                        text.push_str("\t-");
                    }
                }
                (Ent::New(_, s, _), b) if b == nblocks - 1 => {
                    let _ = write!(text, "{}\t{}\t{}\t{}", s.ino, s.size, s.mtime, s.ctime);
                }
                (Ent::New(_, _, cols), b) => text.push_str(cols.get(b - 1).map_or("", |c| c)),
                (Ent::Mark(_), _) => {}
            }
            text.push('\n');
        }
    }
    let lens: Vec<String> = blocks.iter().map(|b| b.len().to_string()).collect();
    let mut out = format!(
        "{MAGIC}\t{fields}\ndir\t{}\t{}\t{}\t{}\t{checked}\ncount\t{}\nblocks\t{}\n",
        dir.dev,
        dir.ino,
        dir.mtime,
        dir.ctime,
        ents.len(),
        lens.join(",")
    );
    out.reserve(blocks.iter().map(String::len).sum::<usize>() + 4);
    for b in &blocks {
        out.push_str(b);
    }
    out.push_str("end\n");
    // Unique per writer: concurrent rebuilds never share a temp file.
    let tmp = parent.join(format!(".{FILE}.{}.{:x}.tmp", std::process::id(), now_ns()));
    // 0600 like the records themselves: the index repeats their aliases,
    // addresses and tags.
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(out.as_bytes())?;
            f.set_modified(time_of(checked))
        })
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
    /// Every read checks the files (the index is never trusted on the
    /// directory's signature alone), nothing counts as racy.
    const CHECK: Tuning = Tuning {
        racy: Duration::ZERO,
        recheck: Duration::ZERO,
    };
    /// An index is trusted on the directory's signature for an hour.
    const TRUST: Tuning = Tuning {
        racy: Duration::ZERO,
        recheck: Duration::from_secs(3600),
    };

    /// Waits past the timestamp granularity, so a change made now gives
    /// the directory a new signature (the tests run without a racy margin).
    fn tick() {
        std::thread::sleep(Duration::from_millis(25));
    }

    fn save(store: &Store, u: &Uuid, alias: &str) {
        let vm = json!({"uuid": u.to_string(), "alias": alias, "brand": "jail",
                        "customer_metadata": {"big": "not indexed"}});
        store
            .save(u, &VmRecord::from_map(vm.as_object().unwrap().clone()))
            .unwrap();
    }

    /// `(uuid, alias)` of every record a summaries read returns.
    fn aliases(store: &Store, tuning: Tuning) -> (Vec<(Uuid, String)>, IndexStats) {
        let (recs, stats) = store
            .load_columns_with(FIELDS, &["uuid", "alias"], tuning)
            .unwrap();
        let got = recs
            .into_iter()
            .map(|(u, r)| {
                let vals = r.unwrap();
                assert_eq!(vals[0], Some(Value::String(u.to_string())));
                let alias = vals[1].as_ref().and_then(Value::as_str).unwrap_or("");
                (u, alias.to_string())
            })
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

    fn index_path(dir: &tempfile::TempDir) -> PathBuf {
        dir.path().join("cache").join(FILE)
    }

    fn counts(s: &IndexStats) -> (bool, usize, usize, bool) {
        (s.trusted, s.read, s.reused, s.rewritten)
    }

    use std::path::PathBuf;

    #[test]
    fn unchanged_records_are_served_on_the_directory_signature() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let uuids: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
        for (i, u) in uuids.iter().enumerate() {
            save(&store, u, &format!("vm{i}"));
        }
        let (first, stats) = aliases(&store, TRUST);
        assert_eq!(first, truth(&store));
        assert_eq!(counts(&stats), (false, 5, 0, true));
        // No record opened, none stat-ed: the index alone.
        let (second, stats) = aliases(&store, TRUST);
        assert_eq!(second, first);
        assert_eq!(counts(&stats), (true, 0, 5, false));
        // A reader gets only the keys it asks for, in its order.
        let (recs, _) = store
            .load_columns_with(FIELDS, &["alias", "brand", "uuid"], TRUST)
            .unwrap();
        let vals = recs[0].1.as_ref().unwrap();
        assert_eq!(vals.len(), 3);
        assert!(vals[1].is_none(), "brand is not indexed");
        assert_eq!(vals[2], Some(Value::String(recs[0].0.to_string())));
        // The record view keeps only the wanted keys too.
        let recs = store.load_summaries(FIELDS, &["uuid"]).unwrap();
        assert_eq!(recs[0].1.as_ref().unwrap().vm.key_names(), ["uuid"]);
    }

    #[test]
    fn created_replaced_and_removed_records_change_the_directory_and_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        save(&store, &a, "one");
        save(&store, &b, "bee");
        aliases(&store, TRUST);
        assert!(aliases(&store, TRUST).1.trusted);
        // Created.
        tick();
        save(&store, &c, "sea");
        let (got, stats) = aliases(&store, TRUST);
        assert_eq!(got, truth(&store));
        assert_eq!(counts(&stats), (false, 1, 2, true));
        // Replaced through the store (same size: a new inode).
        tick();
        save(&store, &a, "two");
        let (got, stats) = aliases(&store, TRUST);
        assert!(got.contains(&(a, "two".into())), "{got:?}");
        assert_eq!(counts(&stats), (false, 1, 2, true));
        // Removed.
        tick();
        store.remove(&b).unwrap();
        let (got, stats) = aliases(&store, TRUST);
        assert_eq!(got, truth(&store));
        assert_eq!(got.len(), 2);
        assert_eq!(counts(&stats), (false, 0, 2, true));
        assert!(aliases(&store, TRUST).1.trusted);
    }

    #[test]
    fn a_record_edited_in_place_shows_after_the_recheck_time_or_any_store_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        save(&store, &a, "two");
        save(&store, &b, "bee");
        aliases(&store, TRUST);
        // Edited in place by hand: the directory does not see it, so while
        // the index is trusted the old value shows (the documented gap) ...
        let path = store.path(&a);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("\"two\"", "\"six\"")).unwrap();
        let (got, stats) = aliases(&store, TRUST);
        assert!(stats.trusted);
        assert!(got.contains(&(a, "two".into())), "{got:?}");
        // ... until the recheck time has passed: the files are checked
        // (ctime moved) and the edit is read.
        let (got, stats) = aliases(&store, CHECK);
        assert!(got.contains(&(a, "six".into())), "{got:?}");
        assert_eq!(counts(&stats), (false, 1, 1, true));
        // The same size, a tick later: ctime moves all the same.
        tick();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("\"six\"", "\"SIX\"")).unwrap();
        let (got, _) = aliases(&store, CHECK);
        assert!(got.contains(&(a, "SIX".into())), "{got:?}");
        // Or at the first read after any store write, whichever VM.
        tick();
        std::fs::write(&path, text.replace("\"six\"", "\"ten\"")).unwrap();
        save(&store, &b, "bee");
        let (got, stats) = aliases(&store, TRUST);
        assert!(!stats.trusted);
        assert!(got.contains(&(a, "ten".into())), "{got:?}");
    }

    #[test]
    fn an_unchanged_index_past_its_recheck_time_is_checked_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let a = Uuid::new_v4();
        save(&store, &a, "one");
        aliases(&store, TRUST);
        let before = std::fs::read(index_path(&dir)).unwrap();
        let (_, stats) = aliases(&store, CHECK);
        assert_eq!(counts(&stats), (false, 0, 1, false));
        assert!(stats.refreshed, "its check time moves forward");
        assert_eq!(std::fs::read(index_path(&dir)).unwrap(), before);
        assert!(aliases(&store, TRUST).1.trusted);
    }

    #[test]
    fn a_touched_directory_means_a_file_by_file_check() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let a = Uuid::new_v4();
        save(&store, &a, "one");
        aliases(&store, TRUST);
        // A foreign file come and gone, or `touch` on the directory.
        tick();
        let other = dir.path().join("vms").join("notes.txt");
        std::fs::write(&other, "x").unwrap();
        std::fs::remove_file(&other).unwrap();
        let (got, stats) = aliases(&store, TRUST);
        assert_eq!(got, [(a, "one".to_string())]);
        // Nothing changed but the directory's signature, which is stored.
        assert_eq!(counts(&stats), (false, 0, 1, true));
        tick();
        let vms = std::fs::File::open(dir.path().join("vms")).unwrap();
        vms.set_modified(SystemTime::now()).unwrap();
        assert!(!aliases(&store, TRUST).1.trusted);
        assert!(aliases(&store, TRUST).1.trusted);
    }

    #[test]
    fn records_written_within_the_racy_window_are_not_indexed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        // RACY itself is 2 s; a shorter margin keeps the test short.
        let margin = Duration::from_millis(300);
        let racy = Tuning {
            racy: margin,
            recheck: RECHECK,
        };
        let a = Uuid::new_v4();
        save(&store, &a, "new");
        // Just written: too fresh to trust a signature for, and the
        // directory too, so nothing is written.
        let (_, stats) = aliases(&store, racy);
        assert_eq!(counts(&stats), (false, 1, 0, false));
        let (_, stats) = aliases(&store, racy);
        assert_eq!(counts(&stats), (false, 1, 0, false));
        assert!(!index_path(&dir).exists());
        // Aged: indexed.
        std::thread::sleep(margin + margin / 4);
        let (_, stats) = aliases(&store, racy);
        assert_eq!(counts(&stats), (false, 1, 0, true));
        // A burst of creates: the older records come from the index, the
        // new one is read, and the index is not rewritten per create.
        let b = Uuid::new_v4();
        save(&store, &b, "newer");
        let (got, stats) = aliases(&store, racy);
        assert_eq!(got, truth(&store));
        assert_eq!(counts(&stats), (false, 1, 1, false));
        // Once they have aged, the next read indexes the new ones, and the
        // one after is served on the directory's signature.
        std::thread::sleep(margin + margin / 4);
        let (_, stats) = aliases(&store, racy);
        assert_eq!(counts(&stats), (false, 1, 1, true));
        assert_eq!(counts(&aliases(&store, racy).1), (true, 0, 2, false));
    }

    #[test]
    fn an_index_checked_in_the_directory_s_racy_tick_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let a = Uuid::new_v4();
        save(&store, &a, "one");
        aliases(&store, TRUST);
        // Make the index say it was checked in the same instant the
        // directory last changed: a write just after could have kept the
        // directory's signature. Then change the record without touching
        // the directory (as such a write would look).
        let path = index_path(&dir);
        let text = std::fs::read_to_string(&path).unwrap();
        let dirline = text.lines().nth(1).unwrap().to_string();
        let f: Vec<&str> = dirline.split('\t').collect();
        let same_tick = format!("{}\t{}\t{}\t{}\t{}\t{}", f[0], f[1], f[2], f[3], f[4], f[4]);
        std::fs::write(&path, text.replace(&dirline, &same_tick)).unwrap();
        File::open(&path)
            .unwrap()
            .set_modified(SystemTime::now())
            .unwrap();
        let record = store.path(&a);
        let rec = std::fs::read_to_string(&record).unwrap();
        std::fs::write(&record, rec.replace("\"one\"", "\"two\"")).unwrap();
        let margin = Tuning {
            racy: Duration::from_millis(10),
            recheck: RECHECK,
        };
        tick();
        let (got, stats) = aliases(&store, margin);
        assert_eq!(got, [(a, "two".to_string())]);
        assert!(!stats.trusted && stats.rewritten);
        // Rewritten with a check time well after the directory's change.
        assert!(aliases(&store, margin).1.trusted);
    }

    #[test]
    fn a_corrupt_record_is_reported_every_time_and_never_indexed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let good = Uuid::new_v4();
        save(&store, &good, "good");
        let bad = Uuid::new_v4();
        std::fs::write(store.path(&bad), "{not json").unwrap();
        for trusted in [false, true] {
            let (recs, stats) = store.load_columns_with(FIELDS, FIELDS, TRUST).unwrap();
            assert_eq!(stats.trusted, trusted);
            assert_eq!(recs.len(), 2);
            let e = recs.iter().find(|(u, _)| *u == bad).unwrap();
            assert!(matches!(e.1, Err(StoreError::Corrupt { .. })));
        }
        let index = std::fs::read_to_string(index_path(&dir)).unwrap();
        // Listed as a file to read, with no signature or values.
        assert!(index.contains(&format!("\n{bad}\t-\n")), "{index}");
        let mode = std::fs::metadata(index_path(&dir)).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600, "the index is as private as the records");
        assert!(index.ends_with("end\n"), "{index}");
    }

    #[test]
    fn a_truncated_torn_foreign_or_lying_index_is_ignored_and_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let a = Uuid::new_v4();
        save(&store, &a, "real");
        aliases(&store, TRUST);
        let path = index_path(&dir);
        let good = std::fs::read_to_string(&path).unwrap();
        // Cut short (a crash before the data reached the disk), zeroed,
        // built for other keys, a block with a line too many, garbage.
        let cut = good[..good.len() - 4].to_string();
        let zeroed = "\0".repeat(good.len());
        let other = good.replacen("uuid,alias,_incomplete", "uuid,alias", 1);
        let extra = good.replacen("\n\"real\"\n", "\n\"real\"\n\n", 1);
        for broken in [cut, zeroed, other, extra, "\0\0\0".into(), String::new()] {
            std::fs::write(&path, &broken).unwrap();
            for tuning in [TRUST, CHECK] {
                let (got, stats) = aliases(&store, tuning);
                assert_eq!(got, [(a, "real".to_string())], "{broken:?}");
                assert_eq!((stats.read, stats.rewritten), (1, true), "{broken:?}");
                std::fs::write(&path, &broken).unwrap();
            }
        }
        aliases(&store, TRUST);
        // An entry whose signature does not match the file is never
        // believed when the files are checked (here: the inode is off).
        let lie = good.replace("\"real\"", "\"fake\"");
        let sigline = lie.lines().rev().nth(1).unwrap();
        let ino: u64 = sigline.split('\t').next().unwrap().parse().unwrap();
        let wrong = lie.replacen(
            &format!("\n{ino}\t"),
            &format!("\n{}\t", ino + 10_000_000),
            1,
        );
        assert_ne!(wrong, lie);
        std::fs::write(&path, fix_lengths(&wrong)).unwrap();
        assert_eq!(aliases(&store, CHECK).0, [(a, "real".to_string())]);
        // One whose signature does match is used without opening the
        // record: that is the point of the index (and why it must only
        // ever be written from the file it describes).
        std::fs::write(&path, &lie).unwrap();
        assert_eq!(aliases(&store, CHECK).0, [(a, "fake".to_string())]);
        // A writer killed mid-way leaves at most a temp file, which no
        // reader looks at.
        std::fs::write(dir.path().join("cache").join(".list.index.1.2.tmp"), "x").unwrap();
        tick();
        save(&store, &a, "after");
        assert_eq!(aliases(&store, TRUST).0, [(a, "after".to_string())]);
    }

    /// An index text with its block lengths recomputed after an edit.
    fn fix_lengths(text: &str) -> String {
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        let body: String = lines[4..lines.len() - 1].concat();
        let count: usize = lines[2]
            .trim_end()
            .split('\t')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let nblocks = lines[3].trim_end().split(',').count();
        let per = body.split_inclusive('\n').collect::<Vec<_>>();
        let lens: Vec<String> = per
            .chunks(count)
            .map(|c| c.concat().len().to_string())
            .collect();
        assert_eq!(lens.len(), nblocks);
        format!(
            "{}{}{}blocks\t{}\n{body}end\n",
            lines[0],
            lines[1],
            lines[2],
            lens.join(",")
        )
    }

    #[test]
    fn concurrent_writers_and_readers_never_see_a_record_go_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::new(dir.path()));
        let uuids: Vec<Uuid> = (0..24).map(|_| Uuid::new_v4()).collect();
        for u in &uuids {
            save(&store, u, "v0");
        }
        // A real racy margin (well above the timestamp granularity): the
        // directory's signature is only as good as it.
        let tuning = Tuning {
            racy: Duration::from_millis(40),
            recheck: RECHECK,
        };
        let done = Arc::new(AtomicBool::new(false));
        // Writers: each owns some records and moves them forward through
        // versions v1, v2, …; every 25 versions they all pause together,
        // so the index is also trusted between their bursts.
        let pause = Arc::new(std::sync::Barrier::new(3));
        let writers: Vec<_> = uuids
            .chunks(8)
            .map(|mine| {
                let (store, pause, mine) = (store.clone(), pause.clone(), mine.to_vec());
                std::thread::spawn(move || {
                    for v in 1..=200 {
                        for u in &mine {
                            save(&store, u, &format!("v{v}"));
                        }
                        if v % 25 == 0 {
                            pause.wait();
                            std::thread::sleep(Duration::from_millis(150));
                        }
                    }
                })
            })
            .collect();
        // Readers: every version a reader sees must be at least the one it
        // saw before; the index is rebuilt under them all the time.
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let (store, done) = (store.clone(), done.clone());
                std::thread::spawn(move || {
                    let mut seen: HashMap<Uuid, u32> = HashMap::new();
                    let (mut reused, mut trusted) = (0, 0);
                    while !done.load(Ordering::Relaxed) {
                        let (got, stats) = aliases(&store, tuning);
                        reused += stats.reused;
                        trusted += usize::from(stats.trusted);
                        assert_eq!(got.len(), 24);
                        for (u, alias) in got {
                            let v: u32 = alias[1..].parse().unwrap();
                            let before = seen.insert(u, v).unwrap_or(0);
                            assert!(v >= before, "{u}: v{before} then v{v}");
                        }
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    (reused, trusted)
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
        let (mut reused, mut trusted) = (0, 0);
        for r in readers {
            let (a, b) = r.join().unwrap();
            reused += a;
            trusted += b;
        }
        // Settled: the index agrees with the records, and serves them all.
        std::thread::sleep(Duration::from_millis(100));
        aliases(&store, tuning);
        let (got, stats) = aliases(&store, tuning);
        assert_eq!(got, truth(&store));
        assert_eq!((stats.trusted, stats.reused), (true, 24));
        // The readers did use the index while the writers ran, both ways,
        // or the test would prove little.
        assert!(
            reused > 0 && trusted > 0,
            "reused {reused}, trusted {trusted}"
        );
    }
}
