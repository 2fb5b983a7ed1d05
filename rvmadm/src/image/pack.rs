//! Turns a snapshot into an image file: `zfs send [-i from] snap` → compress →
//! file, computing `files[0]` (size, SHA-1 of the compressed bytes,
//! compression) on the way. Shared by `imgadm build` and `imgadm create`.
//!
//! The file is written under a temporary name and renamed when complete, so
//! a failure or Ctrl-C never leaves a truncated image file behind.

use super::compress::Encoder;
use super::error::{Code, ImgError, Result};
use super::interrupt;
use super::manifest::{Compression, ImageFile};
use crate::zfs::{SendForm, Zfs};
use serde_json::Map;
use sha1::{Digest, Sha1};
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

/// Counts and hashes everything written through it.
struct Hashing<W: Write> {
    inner: W,
    sha1: Sha1,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha1.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes `zfs send [-i from] snapshot`, compressed, to `path`.
pub fn send_to_file(
    zfs: &Zfs,
    snapshot: &str,
    from: Option<&str>,
    compression: Compression,
    path: &Path,
) -> Result<ImageFile> {
    let tmp = path.with_file_name(format!(
        ".{}.partial",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    let result = send_inner(zfs, snapshot, from, compression, &tmp).and_then(|f| {
        std::fs::rename(&tmp, path).map_err(|e| {
            ImgError::fs(
                &format!("cannot rename {} to {}", tmp.display(), path.display()),
                e,
            )
        })?;
        Ok(f)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn send_inner(
    zfs: &Zfs,
    snapshot: &str,
    from: Option<&str>,
    compression: Compression,
    tmp: &Path,
) -> Result<ImageFile> {
    let form = match from {
        Some(from) => SendForm::Incremental { from },
        None => SendForm::Full,
    };
    let file = std::fs::File::create(tmp)
        .map_err(|e| ImgError::fs(&format!("cannot create {}", tmp.display()), e))?;
    // On failure we close the pipe and zfs send ends with EPIPE; it runs in
    // its own process group, so a terminal Ctrl-C never kills it mid-ioctl.
    let mut child = zfs.send(snapshot, form)?;
    let argv = child.argv().clone();
    let hashing = Hashing {
        inner: BufWriter::with_capacity(1 << 20, file),
        sha1: Sha1::new(),
        bytes: 0,
    };
    let copy = (|| -> io::Result<Hashing<BufWriter<std::fs::File>>> {
        let mut enc = Encoder::new(compression, hashing)?;
        let mut buf = vec![0u8; 256 << 10];
        loop {
            if interrupt::interrupted() {
                return Err(io::Error::other("interrupted"));
            }
            let n = match child.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            enc.write_all(&buf[..n])?;
        }
        let mut h = enc.finish()?;
        h.flush()?;
        h.inner.get_ref().sync_all()?;
        Ok(h)
    })();
    let exit = child.wait()?;
    if interrupt::interrupted() {
        return Err(ImgError::new(Code::Interrupted, "interrupted"));
    }
    let h = copy.map_err(|e| ImgError::fs(&format!("cannot write {}", tmp.display()), e))?;
    exit.check(&argv)?;
    Ok(ImageFile {
        sha1: hex::encode(h.sha1.finalize()),
        size: h.bytes,
        compression,
        dataset_guid: zfs.guid(snapshot).ok().flatten(),
        extra: Map::new(),
    })
}

/// A file-name-safe form of `name-version` (names may contain `/` and spaces).
pub fn file_prefix(name: &str, version: &str) -> String {
    let joined = format!(
        "{}-{}",
        crate::image::manifest::file_name_safe(name),
        crate::image::manifest::file_name_safe(version)
    );
    joined.trim_start_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_never_escape_the_directory() {
        assert_eq!(file_prefix("base 64", "1.0"), "base_64-1.0");
        assert_eq!(file_prefix("../../etc", "x"), "_.._etc-x");
        assert_eq!(file_prefix("..", ".."), "-..");
        assert!(!file_prefix("a/b", "c/d").contains('/'));
    }
}
