//! The VM bundle that `vmadm send` writes and `vmadm receive` reads: a
//! sequence of chunks, each behind a 512-byte header, in SmartOS's header
//! layout (`src/vm/node_modules/VM.js`, `chunkHeader`; read by
//! `src/vm/sbin/vmunbundle.c`).
//!
//! A header is six NUL-terminated ASCII fields: `MAGIC-VMBUNDLE`, the format
//! version `1`, a checksum field (`CHECKSUM`, unused by SmartOS too), the
//! chunk's name, its size and its size padded to a multiple of 512. The
//! chunk's bytes follow, padded with NULs.
//!
//! SmartOS writes a dataset as a header of size 0 followed by a whole
//! `zfs send -R` stream, which only ZFS can tell the end of. rvmadm instead
//! frames every stream: one plain `zfs send` stream per snapshot, cut into
//! pieces of at most [`PIECE`] bytes, each a chunk named `<dataset>@<snap>`,
//! and ended by a chunk of that name with size 0. So a receiver knows every
//! length before reading it and never hands `zfs receive` a byte past its
//! stream. A size-0 chunk whose name has no `@` is SmartOS's unframed form.

use super::error::{OpsError, OpsResult};
use std::io::{self, Read, Write};

/// The first header field.
pub const MAGIC: &str = "MAGIC-VMBUNDLE";
/// Header and padding unit.
pub const BLOCK: usize = 512;
/// Bytes of stream per piece written by `vmadm send`.
pub const PIECE: usize = 1 << 20;
/// Largest piece `vmadm receive` takes. Pieces are copied through a fixed
/// buffer, never allocated whole; the bound makes a forged size fail at
/// its header rather than after gigabytes.
pub const MAX_PIECE: usize = 16 << 20;

/// Longest chunk name written: ZFS's limit for a snapshot's full name, and
/// well inside a header (the other fields take at most 69 bytes).
pub const MAX_NAME: usize = 256;

/// One chunk header as written. A name longer than [`MAX_NAME`] does not
/// fit: the writers refuse it first ([`write_chunk`], [`write_pieces`]);
/// here it is cut, never written past the block.
pub fn header(name: &str, size: usize) -> [u8; BLOCK] {
    let padded = size.div_ceil(BLOCK) * BLOCK;
    let mut h = [0u8; BLOCK];
    let mut at = 0;
    for field in [
        MAGIC,
        "1",
        "CHECKSUM",
        name,
        &size.to_string(),
        &padded.to_string(),
    ] {
        // Found by fuzz/bundle_receive: a name of 440+ bytes pushed `at`
        // past the block and the slice below panicked.
        if at >= BLOCK - 1 {
            break;
        }
        let b = field.as_bytes();
        let end = (at + b.len()).min(BLOCK - 1);
        h[at..end].copy_from_slice(&b[..end - at]);
        at = end + 1;
    }
    h
}

fn check_name(name: &str) -> io::Result<()> {
    if name.len() > MAX_NAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "chunk name of {} bytes is longer than {MAX_NAME}",
                name.len()
            ),
        ));
    }
    Ok(())
}

/// A parsed chunk header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The chunk's name (`JSON`, `<dataset>@<snap>`, or a bare dataset).
    pub name: String,
    /// Bytes of content.
    pub size: usize,
    /// Bytes that follow the header: `size` rounded up to 512.
    pub padded: usize,
}

fn bad_header() -> OpsError {
    OpsError::Failed("Invalid VM bundle: bad chunk header".into())
}

/// Parses a header. The padded size must be the size rounded up to 512, so
/// a header cannot make the reader skip or allocate more than it says.
pub fn parse_header(h: &[u8; BLOCK]) -> OpsResult<Chunk> {
    let fields: Vec<&[u8]> = h.split(|b| *b == 0).take(6).collect();
    if fields.len() != 6 {
        return Err(bad_header());
    }
    let text = |f: &[u8]| -> OpsResult<String> {
        match std::str::from_utf8(f) {
            Ok(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic()) => Ok(s.to_string()),
            _ => Err(bad_header()),
        }
    };
    if fields[0] != MAGIC.as_bytes() || fields[1] != b"1" {
        return Err(bad_header());
    }
    let num = |f: &[u8]| -> OpsResult<usize> {
        let s = text(f)?;
        if s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad_header());
        }
        s.parse().map_err(|_| bad_header())
    };
    let name = text(fields[3])?;
    let size = num(fields[4])?;
    let padded = num(fields[5])?;
    if size.checked_next_multiple_of(BLOCK) != Some(padded) {
        return Err(bad_header());
    }
    Ok(Chunk { name, size, padded })
}

/// Reads the next header; `None` at a clean end of input (the end of a
/// bundle, as in SmartOS), an error for a partial header.
pub fn next_header(input: &mut dyn Read) -> OpsResult<Option<Chunk>> {
    let mut h = [0u8; BLOCK];
    let mut got = 0;
    while got < BLOCK {
        match input.read(&mut h[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(ended_early("a chunk header")),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(read_failed(e)),
        }
    }
    parse_header(&h).map(Some)
}

fn ended_early(what: &str) -> OpsError {
    OpsError::Failed(format!("Invalid VM bundle: the stream ends inside {what}"))
}

fn read_failed(e: io::Error) -> OpsError {
    OpsError::Failed(format!("cannot read the stream: {e}"))
}

/// Reads a chunk's padded content whole (for the small `JSON` chunk only;
/// the caller bounds `chunk.size` first) and returns its `size` bytes.
pub fn read_content(input: &mut dyn Read, chunk: &Chunk) -> OpsResult<Vec<u8>> {
    let mut buf = vec![0u8; chunk.padded];
    input.read_exact(&mut buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => ended_early(&format!("chunk {}", chunk.name)),
        _ => read_failed(e),
    })?;
    buf.truncate(chunk.size);
    Ok(buf)
}

/// Writes one chunk: header, content, padding.
pub fn write_chunk(out: &mut dyn Write, name: &str, content: &[u8]) -> io::Result<()> {
    check_name(name)?;
    out.write_all(&header(name, content.len()))?;
    out.write_all(content)?;
    let pad = content.len().div_ceil(BLOCK) * BLOCK - content.len();
    out.write_all(&[0u8; BLOCK][..pad])
}

/// Copies the stream `from` into `out` as pieces named `name`, then the
/// size-0 chunk that ends it. Returns the stream's length.
pub fn write_pieces(out: &mut dyn Write, name: &str, from: &mut dyn Read) -> io::Result<u64> {
    check_name(name)?;
    let mut buf = vec![0u8; PIECE];
    let mut total = 0u64;
    loop {
        // Fill the piece: pipes hand out at most 64 KiB a read.
        let mut n = 0;
        while n < PIECE {
            match from.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if n == 0 {
            out.write_all(&header(name, 0))?;
            return Ok(total);
        }
        write_chunk(out, name, &buf[..n])?;
        total += n as u64;
    }
}

/// One framed stream on the receiving side: the content of consecutive
/// pieces named alike, up to the size-0 chunk that ends it. Reading past
/// that chunk, a piece of another name, a piece above [`MAX_PIECE`] or
/// more than `limit` bytes in all is an error ([`io::ErrorKind::InvalidData`]),
/// so whatever reads from it (`zfs receive` through a pipe) fails.
pub struct Pieces<'a> {
    input: &'a mut dyn Read,
    name: String,
    /// Content bytes left in the current piece.
    left: usize,
    /// Padding after the current piece.
    pad: usize,
    ended: bool,
    total: u64,
    limit: u64,
}

impl<'a> Pieces<'a> {
    /// Starts at the stream's first piece, whose header the caller has read
    /// (to learn which stream comes). Refused: an empty stream or an
    /// oversized first piece.
    pub fn new(input: &'a mut dyn Read, first: &Chunk, limit: u64) -> OpsResult<Self> {
        check_piece(first)?;
        if first.size == 0 {
            return Err(OpsError::Failed(format!(
                "Invalid VM bundle: the stream {} is empty",
                first.name
            )));
        }
        Ok(Pieces {
            input,
            name: first.name.clone(),
            left: first.size,
            pad: first.padded - first.size,
            ended: false,
            total: 0,
            limit,
        })
    }

    /// True once the size-0 chunk ending the stream was read.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Bytes of stream read so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    fn next_piece(&mut self) -> io::Result<()> {
        let mut pad = [0u8; BLOCK];
        let cut = || {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the bundle ends inside the stream {}", self.name),
            )
        };
        self.input
            .read_exact(&mut pad[..self.pad])
            .map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => cut(),
                _ => e,
            })?;
        let invalid = |m: String| io::Error::new(io::ErrorKind::InvalidData, m);
        let chunk = match next_header(self.input) {
            Ok(Some(c)) => c,
            Ok(None) => return Err(cut()),
            Err(e) => {
                let m = e.to_string();
                let m = m.strip_prefix("Invalid VM bundle: ").unwrap_or(&m);
                return Err(invalid(m.to_string()));
            }
        };
        if chunk.name != self.name {
            return Err(invalid(format!(
                "the stream {} is cut off by a chunk {}",
                self.name, chunk.name
            )));
        }
        check_piece(&chunk).map_err(|e| invalid(e.to_string()))?;
        self.left = chunk.size;
        self.pad = chunk.padded - chunk.size;
        self.ended = chunk.size == 0;
        Ok(())
    }
}

/// A piece larger than [`MAX_PIECE`] is refused by its header.
pub fn check_piece(c: &Chunk) -> OpsResult<()> {
    if c.size > MAX_PIECE {
        return Err(OpsError::Failed(format!(
            "Invalid VM bundle: chunk {} claims {} bytes, more than the {} a piece may have",
            c.name, c.size, MAX_PIECE
        )));
    }
    Ok(())
}

impl Read for Pieces<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.left == 0 {
            if self.ended || buf.is_empty() {
                return Ok(0);
            }
            self.next_piece()?;
        }
        let want = buf.len().min(self.left);
        let n = self.input.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the bundle ends inside the stream {}", self.name),
            ));
        }
        self.left -= n;
        self.total += n as u64;
        if self.total > self.limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the stream {} passes the {} bytes left of this receive's bound",
                    self.name, self.limit
                ),
            ));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip() {
        let h = header("JSON", 1000);
        assert_eq!(&h[..14], MAGIC.as_bytes());
        let c = parse_header(&h).unwrap();
        assert_eq!((c.name.as_str(), c.size, c.padded), ("JSON", 1000, 1024));
        let c = parse_header(&header("zones/6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60", 0)).unwrap();
        assert_eq!((c.size, c.padded), (0, 0));
    }

    /// Found by fuzz/bundle_receive: a chunk name of 440+ bytes made
    /// `header` slice past its block and panic.
    #[test]
    fn long_names_are_refused_not_a_panic() {
        for len in [MAX_NAME, MAX_NAME + 1, 443, 444, 511, 512, 600] {
            let name = "z".repeat(len);
            let h = header(&name, 10);
            assert_eq!(h[BLOCK - 1], 0, "{len}");
            let mut out = Vec::new();
            let wrote = write_chunk(&mut out, &name, b"x");
            let piece = write_pieces(&mut Vec::new(), &name, &mut &b"x"[..]);
            if len <= MAX_NAME {
                assert_eq!(parse_header(&h).unwrap().name, name);
                assert!(wrote.is_ok() && piece.is_ok());
            } else {
                assert_eq!(wrote.unwrap_err().kind(), io::ErrorKind::InvalidInput);
                assert_eq!(piece.unwrap_err().kind(), io::ErrorKind::InvalidInput);
                assert!(out.is_empty());
            }
        }
    }

    #[test]
    fn bad_headers_are_refused() {
        let mut h = header("JSON", 10);
        h[0] = b'X';
        assert!(parse_header(&h).is_err());
        assert!(parse_header(&[0u8; BLOCK]).is_err());
        let forged = |fields: &[u8]| {
            let mut h = [0u8; BLOCK];
            let head = b"MAGIC-VMBUNDLE\x001\x00CHECKSUM\x00";
            h[..head.len()].copy_from_slice(head);
            h[head.len()..head.len() + fields.len()].copy_from_slice(fields);
            parse_header(&h)
        };
        assert!(forged(b"JSON\x00100\x0050\x00").is_err(), "padded < size");
        for fields in [
            &b"JSON\x00100\x001024\x00"[..],
            b"JSON\x0010\x0018446744073709551104\x00",
            b"JSON\x0018446744073709551615\x0018446744073709551615\x00",
            b"JSON\x00+10\x00512\x00",
            b"JS N\x0010\x00512\x00",
            b"\x0010\x00512\x00",
        ] {
            assert!(
                forged(fields).is_err(),
                "{:?}",
                String::from_utf8_lossy(fields)
            );
        }
        assert!(forged(b"JSON\x0010\x00512\x00").is_ok());
    }

    fn framed(name: &str, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_pieces(&mut out, name, &mut &data[..]).unwrap();
        out
    }

    fn read_all(bytes: &[u8], limit: u64) -> io::Result<Vec<u8>> {
        let mut input = bytes;
        let first = next_header(&mut input).unwrap().unwrap();
        let mut p = Pieces::new(&mut input, &first, limit).unwrap();
        let mut got = Vec::new();
        p.read_to_end(&mut got)?;
        assert!(p.ended());
        Ok(got)
    }

    #[test]
    fn pieces_round_trip_and_stop_at_their_end() {
        let data: Vec<u8> = (0..(PIECE * 2 + 777)).map(|i| (i % 251) as u8).collect();
        let mut bytes = framed("p/vm@s1", &data);
        // Three pieces and the end chunk.
        assert_eq!(bytes.len(), 4 * BLOCK + PIECE * 2 + 1024);
        bytes.extend_from_slice(&header("next", 0));
        let mut input = &bytes[..];
        let first = next_header(&mut input).unwrap().unwrap();
        let mut p = Pieces::new(&mut input, &first, u64::MAX).unwrap();
        let mut got = Vec::new();
        p.read_to_end(&mut got).unwrap();
        assert_eq!(got, data);
        assert_eq!(p.total(), data.len() as u64);
        // The next chunk is left for the caller.
        assert_eq!(next_header(&mut input).unwrap().unwrap().name, "next");
        assert!(next_header(&mut input).unwrap().is_none());
    }

    #[test]
    fn pieces_refuse_other_names_truncation_size_and_limit() {
        let data = vec![7u8; 3000];
        let good = framed("p/vm@s1", &data);
        assert_eq!(read_all(&good, 3000).unwrap(), data);
        assert_eq!(
            read_all(&good, 2999).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        // The end chunk renamed: another stream cuts in.
        let mut other = good.clone();
        let end = other.len() - BLOCK;
        other[end..].copy_from_slice(&header("p/vm@s2", 0));
        assert_eq!(
            read_all(&other, u64::MAX).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        // Cut anywhere: an error, never a short stream taken as whole.
        for cut in [
            BLOCK + 10,
            BLOCK + 3072 + 100,
            good.len() - 1,
            good.len() - BLOCK,
        ] {
            assert!(read_all(&good[..cut], u64::MAX).is_err(), "cut at {cut}");
        }
        // An oversized first or later piece is refused by its header.
        let big = header("p/vm@s1", MAX_PIECE + 1);
        let mut input = &big[..];
        let first = next_header(&mut input).unwrap().unwrap();
        assert!(Pieces::new(&mut input, &first, u64::MAX).is_err());
        let mut later = framed("p/vm@s1", &[1u8; 10]);
        let end = later.len() - BLOCK;
        later.truncate(end);
        later.extend_from_slice(&header("p/vm@s1", MAX_PIECE + 512));
        assert_eq!(
            read_all(&later, u64::MAX).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        // An empty stream is refused.
        let empty = header("p/vm@s1", 0);
        let mut input = &empty[..];
        let first = next_header(&mut input).unwrap().unwrap();
        assert!(Pieces::new(&mut input, &first, u64::MAX).is_err());
    }
}
