//! `imgadm publish -m manifest -f file <url>`: upload an image to an IMGAPI
//! server with the write protocol imgadm uses:
//! `POST /images/:uuid?action=import` (manifest), `PUT /images/:uuid/file?
//! compression=…&sha1=…` (raw bytes, explicit Content-Length), check the
//! returned size and SHA-1, `POST /images/:uuid?action=activate`. If any step
//! after the import fails, `DELETE /images/:uuid` rolls the server back.

use super::build::checked_manifest;
use super::error::{Code, ImgError, Result};
use super::http::{Client, MAX_MANIFEST_BYTES};
use serde_json::Value;
use sha1::{Digest, Sha1};
use std::io::Read;
use std::path::Path;

fn sha1_of(path: &Path) -> Result<(String, u64)> {
    let mut f = std::fs::File::open(path)
        .map_err(|e| ImgError::fs(&format!("cannot open {}", path.display()), e))?;
    let mut h = Sha1::new();
    let mut buf = vec![0u8; 256 << 10];
    let mut n_total = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| ImgError::fs(&format!("cannot read {}", path.display()), e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        n_total += n as u64;
    }
    Ok((hex::encode(h.finalize()), n_total))
}

/// An image now active on a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The image's uuid, from the uploaded manifest.
    pub uuid: uuid::Uuid,
    /// The server's base URL, credentials removed.
    pub server: String,
}

/// Uploads manifest + file and activates the image. A failed roll-back
/// after a failed upload is reported to `warn` before the upload's error.
pub fn publish(
    manifest_path: &Path,
    file_path: &Path,
    url: &str,
    warn: &mut dyn FnMut(String),
) -> Result<Published> {
    let bytes = std::fs::read(manifest_path)
        .map_err(|e| ImgError::fs(&format!("cannot read {}", manifest_path.display()), e))?;
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(ImgError::new(
            Code::InvalidManifest,
            format!(
                "{} is larger than {MAX_MANIFEST_BYTES} bytes",
                manifest_path.display()
            ),
        ));
    }
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
        ImgError::new(
            Code::InvalidManifest,
            format!("{}: {e}", manifest_path.display()),
        )
    })?;
    let obj = value
        .as_object()
        .cloned()
        .ok_or_else(|| ImgError::new(Code::InvalidManifest, "manifest is not a JSON object"))?;
    let m = checked_manifest(&obj)?;
    let (sha1, size) = sha1_of(file_path)?;
    let compression = m
        .files
        .first()
        .map(|f| f.compression)
        .unwrap_or(super::manifest::Compression::None);
    if let Some(f) = m.files.first() {
        if f.size != size || !f.sha1.eq_ignore_ascii_case(&sha1) {
            return Err(ImgError::new(
                Code::UploadError,
                format!(
                    "{} does not match the manifest (size {size} vs {}, sha1 {sha1} vs {})",
                    file_path.display(),
                    f.size,
                    f.sha1
                ),
            ));
        }
    }
    let (url, auth) = credentials(url);
    let base = url.trim_end_matches('/');
    let uuid = m.uuid;
    let client = Client::new().with_auth(auth);
    // The server records the file from the PUT; state/files in the body are its to compute.
    let mut body = obj.clone();
    body.remove("files");
    body.remove("state");
    client
        .post_json(
            &format!("{base}/images/{uuid}?action=import"),
            Some(&Value::Object(body)),
        )
        .map_err(|e| ImgError::new(Code::UploadError, e.message))?;
    let rest = (|| -> Result<()> {
        let f = std::fs::File::open(file_path)
            .map_err(|e| ImgError::fs(&format!("cannot open {}", file_path.display()), e))?;
        let put_url = format!("{base}/images/{uuid}/file?compression={compression}&sha1={sha1}");
        let answer = client.put_stream(&put_url, size, f)?;
        let got_sha1 = answer
            .pointer("/files/0/sha1")
            .and_then(Value::as_str)
            .unwrap_or("");
        let got_size = answer
            .pointer("/files/0/size")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        if !got_sha1.eq_ignore_ascii_case(&sha1) || got_size != size {
            return Err(ImgError::new(
                Code::UploadError,
                format!(
                    "server recorded size {got_size} sha1 {got_sha1:?}, expected {size} {sha1}"
                ),
            ));
        }
        client.post_json(&format!("{base}/images/{uuid}?action=activate"), None)?;
        Ok(())
    })();
    if let Err(e) = rest {
        if let Err(d) = client.delete(&format!("{base}/images/{uuid}")) {
            warn(format!(
                "could not roll back image {uuid} on {base}: {}",
                d.message
            ));
        }
        return Err(ImgError::new(Code::UploadError, e.message));
    }
    Ok(Published {
        uuid,
        server: base.to_string(),
    })
}

/// Credentials for the server's authenticated writes: `user:password@` in
/// the URL becomes HTTP Basic (and is removed from the URL); otherwise a
/// bearer token from `$IMGAPI_TOKEN`. SmartOS's imgadm sends none, which
/// servers allow only with unauthenticated writes switched on.
pub fn credentials(url: &str) -> (String, Option<String>) {
    use base64::Engine;
    let bearer = || {
        std::env::var("IMGAPI_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
            .map(|t| format!("Bearer {t}"))
    };
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_string(), bearer());
    };
    let host_end = rest.find('/').unwrap_or(rest.len());
    match rest[..host_end].rsplit_once('@') {
        Some((userinfo, host)) => {
            let basic = base64::engine::general_purpose::STANDARD.encode(userinfo);
            (
                format!("{scheme}://{host}{}", &rest[host_end..]),
                Some(format!("Basic {basic}")),
            )
        }
        None => (url.to_string(), bearer()),
    }
}

#[cfg(test)]
mod credential_tests {
    use super::credentials;

    #[test]
    fn userinfo_becomes_basic_auth() {
        let (url, auth) = credentials("http://admin:s3cret@127.0.0.1:8080/x");
        assert_eq!(url, "http://127.0.0.1:8080/x");
        assert_eq!(auth.as_deref(), Some("Basic YWRtaW46czNjcmV0"));
        let (url, _) = credentials("http://127.0.0.1:8080");
        assert_eq!(url, "http://127.0.0.1:8080");
    }
}
