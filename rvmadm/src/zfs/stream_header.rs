//! The first record of a `zfs send` stream, read and judged before any
//! byte of the stream reaches `zfs receive`.
//!
//! A stream begins with a `DRR_BEGIN` replay record (OpenZFS
//! `include/sys/zfs_ioctl.h`: `dmu_replay_record_t` with `struct
//! drr_begin`). Its low two `versioninfo` bits tell a plain stream of one
//! snapshot (a "substream") from a compound one: what `zfs send -R`, `-p`,
//! `-I` and friends write, a header whose payload lists properties and
//! child datasets that `zfs receive` then applies — a `mountpoint` pointing
//! anywhere on the host among them. Images and VM bundles are only ever
//! accepted as substreams with no payload, so a hostile source cannot make
//! `zfs receive` set a property, create a child or mount anything.
//!
//! The record is written in the sender's byte order; the magic tells which.
//! Layout of the 312 bytes (offsets in bytes):
//!
//! ```text
//!   0 u32 record type (0 = DRR_BEGIN)     4 u32 payload length
//!   8 u64 magic 0x2F5BACBAC              16 u64 versioninfo (bits 0-1 header type, 2-31 features)
//!  24 u64 creation time                  32 u32 objset type (2 = filesystem, 3 = volume)
//!  36 u32 flags                          40 u64 guid of the snapshot sent
//!  48 u64 guid of the "from" snapshot (0 = full stream)
//!  56 char[256] name of the snapshot sent, NUL-terminated
//! ```

use std::io::{self, Read};

/// Length of the `DRR_BEGIN` record, the bytes [`read_begin`] takes.
pub const BEGIN_LEN: usize = 312;

/// `DMU_BACKUP_MAGIC`, in the record as the sender's byte order has it.
const MAGIC: u64 = 0x2_F5BA_CBAC;
/// `DMU_SUBSTREAM`: the stream of one snapshot.
const SUBSTREAM: u64 = 0x1;
/// `DMU_COMPOUNDSTREAM`: a header carrying properties and datasets.
const COMPOUND: u64 = 0x2;
/// `DMU_OST_ZFS` and `DMU_OST_ZVOL`.
const OBJSET_FILESYSTEM: u32 = 2;
const OBJSET_VOLUME: u32 = 3;

/// Feature bits a plain image stream may carry: they change how blocks are
/// encoded (spill blocks, embedded data, lz4/zstd compressed records,
/// large blocks or dnodes), not what the receive creates.
const SAFE_FEATURES: u64 = (1 << 2) // SA_SPILL
    | (1 << 16) // EMBED_DATA
    | (1 << 17) // LZ4
    | (1 << 19) // LARGE_BLOCKS
    | (1 << 22) // COMPRESSED
    | (1 << 23) // LARGE_DNODE
    | (1 << 25) // ZSTD
    | (1 << 27); // SWITCH_TO_LARGE_BLOCKS

/// Names of the features refused on purpose, for the message.
const REFUSED_FEATURES: [(u64, &str); 6] = [
    // Write-by-reference records: a few bytes may claim any amount of
    // earlier data, and OpenZFS itself no longer receives them.
    (1 << 0, "dedup"),
    (1 << 1, "dedup properties"),
    // A payload saying where to resume, or which blocks are missing.
    (1 << 20, "resuming"),
    (1 << 21, "redacted"),
    // An encrypted dataset whose key this host does not have.
    (1 << 24, "raw (encrypted)"),
    (1 << 26, "holds"),
];

/// `drr_flags` bits that only describe the stream (clone stream,
/// case-insensitive data, free records, spill-block semantics).
const SAFE_FLAGS: u32 = 0b1111;

/// Why the first record of a stream is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamHeaderError {
    /// The stream ended before its first record was complete.
    #[error("the stream ends after {0} bytes, before its first record (312 bytes) is complete")]
    Truncated(usize),
    /// The bytes are not a ZFS send stream at all.
    #[error("not a ZFS send stream (no DRR_BEGIN record with the ZFS stream magic)")]
    NotAStream,
    /// A compound stream: `zfs send -R`, `-p`, `-I` or `-h`.
    #[error("a compound ZFS stream (made with zfs send -R, -p or -I): it carries properties (mountpoint, setuid…) or child datasets that zfs receive would apply; only a plain stream of one snapshot is accepted")]
    Compound,
    /// A header type other than substream and compound.
    #[error("unknown ZFS stream header type {0}")]
    HeaderType(u64),
    /// A substream with a payload (resume or redaction data).
    #[error("the stream's first record carries a {0}-byte payload; a plain stream has none")]
    Payload(u32),
    /// Feature bits outside the accepted set.
    #[error("the stream uses features this host does not accept: {0}")]
    Features(String),
    /// `drr_flags` bits outside the accepted set.
    #[error("the stream has unknown flags {0:#x}")]
    Flags(u32),
    /// Neither a file system nor a volume.
    #[error("the stream holds a dataset of type {0}, neither a file system nor a volume")]
    ObjsetType(u32),
    /// The snapshot name is missing or malformed.
    #[error("the stream names no single snapshot ({0:?})")]
    Name(String),
    /// An incremental stream where only a full one is accepted.
    #[error("an incremental stream where a full stream is expected")]
    Incremental,
    /// A full stream where an incremental one (on top of an origin) is expected.
    #[error("a full stream where an incremental stream on top of the origin image is expected")]
    Full,
}

/// In which byte order the sender wrote the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteOrder {
    /// Little-endian (x86, arm64 hosts).
    Little,
    /// Big-endian (SPARC, old POWER hosts).
    Big,
}

/// What the `DRR_BEGIN` record of an accepted stream says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Begin {
    /// The sender's byte order.
    pub order: ByteOrder,
    /// Feature bits (all within the accepted set).
    pub features: u64,
    /// `true` for a volume, `false` for a file system.
    pub volume: bool,
    /// The stream's `drr_flags`.
    pub flags: u32,
    /// Guid of the snapshot the stream recreates.
    pub to_guid: u64,
    /// Guid of the snapshot an incremental stream applies to; `None` for a
    /// full stream.
    pub from_guid: Option<u64>,
    /// `dataset@snapshot` as the sender named it (only for messages: the
    /// receive target is always chosen by us).
    pub to_name: String,
}

/// What kind of stream the caller accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A full stream only (a VM bundle, an image without origin).
    Full,
    /// An incremental stream only (an image with an origin).
    Incremental,
}

/// Reads up to [`BEGIN_LEN`] bytes from `r`; fewer only at end of input.
pub fn read_begin(r: &mut dyn Read) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; BEGIN_LEN];
    let mut got = 0;
    while got < BEGIN_LEN {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

fn u32_at(b: &[u8], at: usize, order: ByteOrder) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    match order {
        ByteOrder::Little => u32::from_le_bytes(w),
        ByteOrder::Big => u32::from_be_bytes(w),
    }
}

fn u64_at(b: &[u8], at: usize, order: ByteOrder) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    match order {
        ByteOrder::Little => u64::from_le_bytes(w),
        ByteOrder::Big => u64::from_be_bytes(w),
    }
}

/// Parses and judges the first record of a stream: accepted only as a
/// plain full or incremental stream of one snapshot of a file system or
/// volume, with no payload and only harmless features, of the `expect`ed
/// kind.
pub fn check(head: &[u8], expect: Expect) -> Result<Begin, StreamHeaderError> {
    if head.len() < BEGIN_LEN {
        return Err(StreamHeaderError::Truncated(head.len()));
    }
    let order = match u64_at(head, 8, ByteOrder::Little) {
        m if m == MAGIC => ByteOrder::Little,
        m if m == MAGIC.swap_bytes() => ByteOrder::Big,
        _ => return Err(StreamHeaderError::NotAStream),
    };
    // DRR_BEGIN is 0 in either byte order.
    if u32_at(head, 0, order) != 0 {
        return Err(StreamHeaderError::NotAStream);
    }
    let versioninfo = u64_at(head, 16, order);
    match versioninfo & 0b11 {
        SUBSTREAM => {}
        COMPOUND => return Err(StreamHeaderError::Compound),
        other => return Err(StreamHeaderError::HeaderType(other)),
    }
    let payload = u32_at(head, 4, order);
    if payload != 0 {
        return Err(StreamHeaderError::Payload(payload));
    }
    // Bits 32-63 are reserved: anything there is unknown too.
    let features = versioninfo >> 2;
    let unknown = features & !SAFE_FEATURES;
    if unknown != 0 {
        let mut names: Vec<String> = REFUSED_FEATURES
            .iter()
            .filter(|(bit, _)| unknown & bit != 0)
            .map(|(_, n)| (*n).to_string())
            .collect();
        let known: u64 = REFUSED_FEATURES.iter().map(|(b, _)| b).sum();
        if unknown & !known != 0 {
            names.push(format!("unknown feature bits {:#x}", unknown & !known));
        }
        return Err(StreamHeaderError::Features(names.join(", ")));
    }
    let volume = match u32_at(head, 32, order) {
        OBJSET_FILESYSTEM => false,
        OBJSET_VOLUME => true,
        other => return Err(StreamHeaderError::ObjsetType(other)),
    };
    let flags = u32_at(head, 36, order);
    if flags & !SAFE_FLAGS != 0 {
        return Err(StreamHeaderError::Flags(flags & !SAFE_FLAGS));
    }
    let name_field = &head[56..BEGIN_LEN];
    let to_name = match name_field.iter().position(|b| *b == 0) {
        Some(end) => String::from_utf8_lossy(&name_field[..end]).into_owned(),
        None => return Err(StreamHeaderError::Name("not NUL-terminated".into())),
    };
    let one_snapshot = matches!(to_name.split_once('@'), Some((fs, snap))
        if !fs.is_empty() && !snap.is_empty() && !snap.contains('@'));
    if !one_snapshot || to_name.chars().any(char::is_control) {
        return Err(StreamHeaderError::Name(to_name));
    }
    let from = u64_at(head, 48, order);
    let from_guid = (from != 0).then_some(from);
    match (expect, from_guid) {
        (Expect::Full, Some(_)) => return Err(StreamHeaderError::Incremental),
        (Expect::Incremental, None) => return Err(StreamHeaderError::Full),
        _ => {}
    }
    Ok(Begin {
        order,
        features,
        volume,
        flags,
        to_guid: u64_at(head, 40, order),
        from_guid,
        to_name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // First records of real streams from zfs-fuse (pool version 23) of a
    // dataset `bexp/ds` with a child: `zfs send`, `zfs send -i`,
    // `zfs send -p`, `zfs send -R`, `zfs send -D`.
    const FULL: &[u8] = include_bytes!("testdata/plain.begin");
    const INCREMENTAL: &[u8] = include_bytes!("testdata/inc.begin");
    const PROPS: &[u8] = include_bytes!("testdata/p.begin");
    const REPLICATE: &[u8] = include_bytes!("testdata/R.begin");
    const DEDUP: &[u8] = include_bytes!("testdata/D.begin");

    /// The same record as a big-endian sender writes it.
    fn byte_swapped(le: &[u8]) -> Vec<u8> {
        let mut b = le.to_vec();
        for (at, len) in [
            (0, 4),
            (4, 4),
            (8, 8),
            (16, 8),
            (24, 8),
            (32, 4),
            (36, 4),
            (40, 8),
            (48, 8),
        ] {
            b[at..at + len].reverse();
        }
        b
    }

    #[test]
    fn real_full_and_incremental_streams_are_accepted() {
        let full = check(FULL, Expect::Full).unwrap();
        assert_eq!(full.order, ByteOrder::Little);
        assert_eq!(full.to_name, "bexp/ds@s1");
        assert_eq!(full.from_guid, None);
        assert!(!full.volume);
        let inc = check(INCREMENTAL, Expect::Incremental).unwrap();
        assert_eq!(inc.to_name, "bexp/ds@s2");
        assert_eq!(inc.from_guid, Some(full.to_guid));
        assert_eq!(
            check(INCREMENTAL, Expect::Full),
            Err(StreamHeaderError::Incremental)
        );
        assert_eq!(
            check(FULL, Expect::Incremental),
            Err(StreamHeaderError::Full)
        );
    }

    #[test]
    fn byte_swapped_streams_parse_the_same() {
        for (le, expect) in [(FULL, Expect::Full), (INCREMENTAL, Expect::Incremental)] {
            let a = check(le, expect).unwrap();
            let b = check(&byte_swapped(le), expect).unwrap();
            assert_eq!(b.order, ByteOrder::Big);
            assert_eq!(
                (a.to_guid, a.from_guid, a.to_name),
                (b.to_guid, b.from_guid, b.to_name)
            );
        }
        let be = byte_swapped(REPLICATE);
        assert_eq!(check(&be, Expect::Full), Err(StreamHeaderError::Compound));
    }

    #[test]
    fn compound_streams_of_send_p_and_r_are_refused() {
        for s in [PROPS, REPLICATE] {
            assert_eq!(check(s, Expect::Full), Err(StreamHeaderError::Compound));
        }
    }

    #[test]
    fn dedup_streams_are_refused_by_feature() {
        let err = check(DEDUP, Expect::Full).unwrap_err();
        assert!(err.to_string().contains("dedup"), "{err}");
    }

    #[test]
    fn truncated_and_foreign_bytes_are_refused() {
        for n in [0, 1, 8, 100, BEGIN_LEN - 1] {
            assert_eq!(
                check(&FULL[..n], Expect::Full),
                Err(StreamHeaderError::Truncated(n))
            );
        }
        assert_eq!(
            check(&[7u8; BEGIN_LEN], Expect::Full),
            Err(StreamHeaderError::NotAStream)
        );
        let mut not_begin = FULL.to_vec();
        not_begin[0] = 1; // DRR_OBJECT
        assert_eq!(
            check(&not_begin, Expect::Full),
            Err(StreamHeaderError::NotAStream)
        );
    }

    #[test]
    fn payloads_features_flags_types_and_names_are_checked() {
        let with = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = FULL.to_vec();
            f(&mut b);
            check(&b, Expect::Full)
        };
        assert_eq!(with(&|b| b[4] = 16), Err(StreamHeaderError::Payload(16)));
        // Header type 3 and 0.
        assert_eq!(with(&|b| b[16] = 3), Err(StreamHeaderError::HeaderType(3)));
        assert_eq!(with(&|b| b[16] = 0), Err(StreamHeaderError::HeaderType(0)));
        // RAW (1 << 24) in the feature bits, and an unknown one.
        let raw = with(&|b| b[16..24].copy_from_slice(&(1u64 | (1 << 26)).to_le_bytes()));
        assert!(matches!(raw, Err(StreamHeaderError::Features(ref s)) if s.contains("raw")));
        let unknown = with(&|b| b[16..24].copy_from_slice(&(1u64 | (1 << 40)).to_le_bytes()));
        assert!(
            matches!(unknown, Err(StreamHeaderError::Features(ref s)) if s.contains("unknown"))
        );
        // LZ4 + embedded data + large blocks: fine.
        let ok = (1u64 | ((1 << 16 | 1 << 17 | 1 << 19) << 2)).to_le_bytes();
        assert!(with(&|b| b[16..24].copy_from_slice(&ok)).is_ok());
        assert_eq!(with(&|b| b[36] = 0x10), Err(StreamHeaderError::Flags(0x10)));
        assert_eq!(with(&|b| b[32] = 4), Err(StreamHeaderError::ObjsetType(4)));
        assert!(with(&|b| b[32] = 3).unwrap().volume);
        assert!(matches!(
            with(&|b| b[56..BEGIN_LEN].fill(b'a')),
            Err(StreamHeaderError::Name(_))
        ));
        assert!(matches!(
            with(&|b| b[56..66].copy_from_slice(b"bexp/ds\0\0\0")),
            Err(StreamHeaderError::Name(_))
        ));
        assert!(matches!(
            with(&|b| b[56..67].copy_from_slice(b"a@b@c\0\0\0\0\0\0")),
            Err(StreamHeaderError::Name(_))
        ));
        assert!(matches!(
            with(&|b| b[56..62].copy_from_slice(b"a@\x1b[m\0")),
            Err(StreamHeaderError::Name(_))
        ));
    }

    #[test]
    fn read_begin_stops_at_the_record_or_the_end() {
        let mut long = FULL.to_vec();
        long.extend_from_slice(b"rest of the stream");
        let mut r = &long[..];
        assert_eq!(read_begin(&mut r).unwrap(), FULL);
        assert_eq!(r, b"rest of the stream");
        let mut short = &FULL[..10];
        assert_eq!(read_begin(&mut short).unwrap().len(), 10);
    }
}
