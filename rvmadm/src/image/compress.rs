//! Stream (de)compression for image files and tarballs.
//!
//! Every codec is a streaming reader or writer with small internal buffers, so
//! memory stays bounded whatever the image size. Multi-member/multi-frame
//! inputs (pigz, pbzip2, `xz -T`) are decoded whole, as the command-line tools do.
//!
//! The decoders' memory is bounded whatever the input claims: gzip's window
//! is 32 KiB and bzip2's block 900 kB by format; an xz stream asking for a
//! dictionary beyond [`XZ_MEMLIMIT`] and a zstd frame asking for a window
//! beyond 2^[`ZSTD_WINDOW_LOG_MAX`] bytes are refused instead of allocated.

use super::manifest::Compression;
use std::io::{self, Read, Write};

/// Memory the xz decoder may use: room for `xz -9`'s 64 MiB dictionary
/// (65 MiB to decode, by xz's own count), not for a forged gigabyte one.
pub const XZ_MEMLIMIT: u64 = 96 << 20;
/// Largest zstd window accepted (128 MiB, zstd's own default limit; only
/// `zstd --long` beyond 27 goes past it).
pub const ZSTD_WINDOW_LOG_MAX: u32 = 27;

/// Wraps `inner` in the decoder for `c`.
pub fn decoder<'a, R: Read + 'a>(c: Compression, inner: R) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match c {
        Compression::None => Box::new(inner),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(inner)),
        Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(inner)),
        Compression::Xz => {
            let stream =
                xz2::stream::Stream::new_auto_decoder(XZ_MEMLIMIT, xz2::stream::CONCATENATED)
                    .map_err(io::Error::other)?;
            Box::new(xz2::read::XzDecoder::new_stream(inner, stream))
        }
        Compression::Zstd => {
            let mut d = zstd::stream::read::Decoder::new(inner)?;
            d.window_log_max(ZSTD_WINDOW_LOG_MAX)?;
            Box::new(d)
        }
    })
}

/// A compressing writer that must be finished to flush its trailer.
pub enum Encoder<W: Write> {
    /// No compression: bytes pass through.
    None(W),
    /// gzip at level 6 (gzip's default).
    Gzip(flate2::write::GzEncoder<W>),
    /// bzip2 at its default block size (900 kB).
    Bzip2(bzip2::write::BzEncoder<W>),
    /// xz at preset 6 (xz's default).
    Xz(xz2::write::XzEncoder<W>),
    /// zstd at level 3 (zstd's default).
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    /// An encoder for `c` writing to `inner`; fails only if the codec's
    /// own set-up fails.
    pub fn new(c: Compression, inner: W) -> io::Result<Self> {
        Ok(match c {
            Compression::None => Encoder::None(inner),
            Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                inner,
                flate2::Compression::default(),
            )),
            Compression::Bzip2 => Encoder::Bzip2(bzip2::write::BzEncoder::new(
                inner,
                bzip2::Compression::default(),
            )),
            Compression::Xz => Encoder::Xz(xz2::write::XzEncoder::new(inner, 6)),
            Compression::Zstd => Encoder::Zstd(zstd::stream::write::Encoder::new(inner, 3)?),
        })
    }

    /// Writes the trailer and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::None(w) => Ok(w),
            Encoder::Gzip(e) => e.finish(),
            Encoder::Bzip2(e) => e.finish(),
            Encoder::Xz(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::None(w) => w.write(buf),
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Bzip2(e) => e.write(buf),
            Encoder::Xz(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::None(w) => w.flush(),
            Encoder::Gzip(e) => e.flush(),
            Encoder::Bzip2(e) => e.flush(),
            Encoder::Xz(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
        }
    }
}

/// Guesses a compression from a file's first bytes (for tarballs, whose
/// names do not always tell: `base.txz`, `rootfs.tgz`, `x.tar.zst`).
pub fn sniff(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(b"BZh") {
        Compression::Bzip2
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Compression::Xz
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// File name suffix of an image file with this compression (imgadm's names).
pub fn image_file_suffix(c: Compression) -> &'static str {
    match c {
        Compression::None => ".zfs",
        Compression::Gzip => ".zfs.gz",
        Compression::Bzip2 => ".zfs.bz2",
        Compression::Xz => ".zfs.xz",
        Compression::Zstd => ".zfs.zst",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Bzip2,
        Compression::Xz,
        Compression::Zstd,
    ];

    #[test]
    fn round_trip_and_sniff_every_codec() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        for c in ALL {
            let mut enc = Encoder::new(c, Vec::new()).unwrap();
            enc.write_all(&data).unwrap();
            let packed = enc.finish().unwrap();
            assert_eq!(sniff(&packed), c, "{c}");
            let mut out = Vec::new();
            decoder(c, &packed[..])
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, data, "{c}");
        }
    }

    #[test]
    fn concatenated_gzip_members_decode_whole() {
        let mut packed = Vec::new();
        for part in [&b"hello "[..], b"world"] {
            let mut e = Encoder::new(Compression::Gzip, Vec::new()).unwrap();
            e.write_all(part).unwrap();
            packed.extend(e.finish().unwrap());
        }
        let mut out = String::new();
        decoder(Compression::Gzip, &packed[..])
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "hello world");
    }

    /// An xz stream whose block header claims the dictionary of size code
    /// `dict_code` (the data was packed with a small one and stays valid).
    fn xz_with_dictionary(data: &[u8], dict_code: u8) -> Vec<u8> {
        let mut enc = Encoder::new(Compression::Xz, Vec::new()).unwrap();
        enc.write_all(data).unwrap();
        let mut xz = enc.finish().unwrap();
        // After the 12-byte stream header, the block header: its size byte,
        // flags (one filter, no size fields from a streaming encoder), the
        // LZMA2 filter flags (id 0x21, one property byte: the dictionary
        // size code), padding and its CRC32.
        let size = (xz[12] as usize + 1) * 4;
        let header = &mut xz[12..12 + size];
        assert_eq!(header[1], 0, "one filter, no sizes");
        assert_eq!(&header[2..4], &[0x21, 0x01], "LZMA2 filter");
        header[4] = dict_code;
        let crc = crc32fast::hash(&header[..size - 4]);
        header[size - 4..].copy_from_slice(&crc.to_le_bytes());
        xz
    }

    #[test]
    fn an_xz_stream_asking_for_a_huge_dictionary_is_refused() {
        let data = vec![42u8; 100_000];
        // Code 40 means 4 GiB - 1; 28 means 64 MiB, the dictionary of xz -9.
        let small = xz_with_dictionary(&data, 28);
        let mut out = Vec::new();
        decoder(Compression::Xz, &small[..])
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
        let huge = xz_with_dictionary(&data, 40);
        let err = decoder(Compression::Xz, &huge[..])
            .unwrap()
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(err.to_string().contains("memory limit"), "{err}");
    }

    #[test]
    fn a_zstd_frame_asking_for_a_huge_window_is_refused() {
        let data = vec![7u8; 10_000];
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
        enc.long_distance_matching(true).unwrap();
        enc.window_log(30).unwrap();
        enc.write_all(&data).unwrap();
        let packed = enc.finish().unwrap();
        let r = decoder(Compression::Zstd, &packed[..])
            .and_then(|mut d| d.read_to_end(&mut Vec::new()));
        assert!(r.is_err(), "a 1 GiB window was accepted");
    }

    #[test]
    fn garbage_is_an_error_not_empty_output() {
        for c in [
            Compression::Gzip,
            Compression::Bzip2,
            Compression::Xz,
            Compression::Zstd,
        ] {
            let mut out = Vec::new();
            let r = decoder(c, &b"definitely not compressed data"[..])
                .and_then(|mut d| d.read_to_end(&mut out));
            assert!(r.is_err(), "{c} accepted garbage");
        }
    }
}
