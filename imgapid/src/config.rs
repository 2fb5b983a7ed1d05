//! The server's configuration file (`imgapid --config FILE`, TOML): where to
//! listen, where to keep images, who may write, TLS and limits. Every path the
//! server touches comes from here so tests run against a temporary root.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Parsed `imgapid.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to bind, e.g. `127.0.0.1:8080`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Directory holding records, files and temporary uploads (the `disk`
    /// backend; required for it, unused by `s3`).
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// The `[storage]` table: which backend holds images. The local disk
    /// (`data_dir`) when absent.
    #[serde(default)]
    pub storage: StorageConfig,
    /// Base URL clients reach us at (for DSAPI absolute file URLs). When
    /// unset it is derived from the request's Host header.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Largest accepted image file, bytes (IMGAPI's cap is 20 GiB).
    #[serde(default = "default_max_upload")]
    pub max_upload_bytes: u64,
    /// Largest accepted JSON request body, bytes.
    #[serde(default = "default_max_json")]
    pub max_json_bytes: usize,
    /// Seconds an upload may stall between two chunks before it is dropped.
    #[serde(default = "default_idle")]
    pub upload_idle_timeout_secs: u64,
    /// Seconds a connection may go without moving a byte in either
    /// direction while the server waits on it (a downloader that stopped
    /// reading, an idle keep-alive client) before it is closed.
    #[serde(default = "default_conn_idle")]
    pub connection_idle_timeout_secs: u64,
    /// Most connections served at once; further clients wait in the
    /// kernel's accept queue until one ends. Lowered at start-up when the
    /// open-file limit could not hold this many (each download holds a
    /// socket and a file).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Seconds graceful shutdown waits for open requests.
    #[serde(default = "default_shutdown")]
    pub shutdown_timeout_secs: u64,
    /// The `[auth]` table: who may read and write. Public reads and no
    /// writers when absent.
    #[serde(default)]
    pub auth: AuthConfig,
    /// The `[tls]` table; without it the server speaks plain HTTP.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

/// Which storage backend to use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Files under `data_dir`; one imgapid process owns them.
    #[default]
    Disk,
    /// One bucket of an S3-compatible store, shareable by replicas.
    S3,
}

/// The `[storage]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// `disk` (default) or `s3`.
    #[serde(default)]
    pub backend: Backend,
    /// S3 API URL, `http(s)://host[:port]`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Bucket name; the bucket must exist and the key must be allowed to
    /// read and write it.
    #[serde(default)]
    pub bucket: Option<String>,
    /// Signing region (`garage` is Garage's default `s3_region`).
    #[serde(default)]
    pub region: Option<String>,
    /// Access key id; `AWS_ACCESS_KEY_ID` when unset.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// Secret key; `AWS_SECRET_ACCESS_KEY` when unset.
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// Milliseconds between two reads of the shared record listing: the
    /// longest an image published through another replica stays unlisted
    /// here (plus one listing round trip).
    #[serde(default = "default_refresh_ms")]
    pub refresh_ms: u64,
}

fn default_refresh_ms() -> u64 {
    1000
}

/// Who may read and write.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Bearer tokens accepted for writes (and reads when not public).
    #[serde(default)]
    pub tokens: Vec<String>,
    /// HTTP Basic users (`sdc-clients` `user`/`password`).
    #[serde(default)]
    pub users: Vec<BasicUser>,
    /// Reads need no credentials (the IMGAPI default).
    #[serde(default = "yes")]
    pub public_reads: bool,
    /// Accept writes without credentials. Only for trusted networks: SmartOS
    /// `imgadm publish` cannot authenticate.
    #[serde(default)]
    pub allow_unauthenticated_writes: bool,
}

impl Default for AuthConfig {
    fn default() -> AuthConfig {
        AuthConfig {
            tokens: Vec::new(),
            users: Vec::new(),
            public_reads: true,
            allow_unauthenticated_writes: false,
        }
    }
}

/// One Basic-auth account.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicUser {
    /// The user name; not empty and without `:` (Basic auth splits there).
    pub user: String,
    /// The password, compared as given (not a hash); not empty.
    pub password: String,
}

/// PEM certificate chain and private key; TLS is on when this is present.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the server certificate first, then any intermediates.
    pub cert: PathBuf,
    /// PEM file with the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_max_upload() -> u64 {
    rvmadm_manifest::MAX_FILE_SIZE
}
fn default_max_json() -> usize {
    1024 * 1024
}
fn default_idle() -> u64 {
    60
}
fn default_conn_idle() -> u64 {
    120
}
fn default_max_connections() -> usize {
    4096
}
fn default_shutdown() -> u64 {
    30
}
fn yes() -> bool {
    true
}

/// Why [`Config::load`] refused a file; each case names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (missing, unreadable, not UTF-8).
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The config file given on the command line.
        path: PathBuf,
        /// What the read failed with.
        source: std::io::Error,
    },
    /// The file is not TOML of the expected shape (syntax, wrong types,
    /// unknown keys).
    #[error("invalid config {path}: {source}")]
    Parse {
        /// The config file given on the command line.
        path: PathBuf,
        /// The parser's message, with line and column.
        source: toml::de::Error,
    },
    /// The file parsed but a value is out of range or unsafe.
    #[error("invalid config {path}: {message}")]
    Invalid {
        /// The config file given on the command line.
        path: PathBuf,
        /// Which setting is wrong and what it must be.
        message: String,
    },
}

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_text(&text, path)
    }

    /// Parses and checks the text of a config file; `path` only names it
    /// in errors.
    pub fn from_text(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        let invalid = |message: &str| ConfigError::Invalid {
            path: path.to_path_buf(),
            message: message.to_string(),
        };
        if let Some(u) = &cfg.public_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(invalid("public_url must start with http:// or https://"));
            }
        }
        let mut cfg = cfg;
        match cfg.storage.backend {
            Backend::Disk => {
                if cfg.data_dir.is_none() {
                    return Err(invalid("data_dir is required with the disk backend"));
                }
            }
            Backend::S3 => {
                let st = &mut cfg.storage;
                match &st.endpoint {
                    Some(u) if u.starts_with("http://") || u.starts_with("https://") => {}
                    _ => {
                        return Err(invalid(
                            "[storage] endpoint must be set and start with http:// or https://",
                        ))
                    }
                }
                let bucket_ok = st.bucket.as_deref().is_some_and(|b| {
                    (3..=63).contains(&b.len())
                        && b.bytes().all(|c| {
                            c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.'
                        })
                });
                if !bucket_ok {
                    return Err(invalid(
                        "[storage] bucket must be 3-63 characters of a-z, 0-9, '-' and '.'",
                    ));
                }
                if st.access_key_id.is_none() {
                    st.access_key_id = std::env::var("AWS_ACCESS_KEY_ID").ok();
                }
                if st.secret_access_key.is_none() {
                    st.secret_access_key = std::env::var("AWS_SECRET_ACCESS_KEY").ok();
                }
                if st.access_key_id.as_deref().unwrap_or("").is_empty()
                    || st.secret_access_key.as_deref().unwrap_or("").is_empty()
                {
                    return Err(invalid(
                        "[storage] needs access_key_id and secret_access_key (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
                    ));
                }
                if !(100..=60_000).contains(&st.refresh_ms) {
                    return Err(invalid(
                        "[storage] refresh_ms must be between 100 and 60000",
                    ));
                }
            }
        }
        if cfg.max_upload_bytes == 0 || cfg.max_upload_bytes > default_max_upload() {
            return Err(invalid("max_upload_bytes must be between 1 and 20 GiB"));
        }
        if cfg.max_connections == 0 {
            return Err(invalid("max_connections must be at least 1"));
        }
        if cfg.connection_idle_timeout_secs == 0 {
            return Err(invalid("connection_idle_timeout_secs must be at least 1"));
        }
        if cfg.auth.tokens.iter().any(String::is_empty)
            || cfg
                .auth
                .users
                .iter()
                .any(|u| u.user.is_empty() || u.user.contains(':') || u.password.is_empty())
        {
            return Err(invalid(
                "tokens and passwords must not be empty; user names must not contain ':'",
            ));
        }
        Ok(cfg)
    }
}

impl Config {
    /// The S3 settings of an `s3` backend (checked by [`Config::load`]).
    pub fn s3_settings(&self) -> Option<crate::store::s3::S3Settings> {
        let st = &self.storage;
        if st.backend != Backend::S3 {
            return None;
        }
        Some(crate::store::s3::S3Settings {
            endpoint: st.endpoint.clone()?,
            bucket: st.bucket.clone()?,
            region: st.region.clone().unwrap_or_else(|| "garage".to_string()),
            access_key_id: st.access_key_id.clone()?,
            secret_access_key: st.secret_access_key.clone()?,
            refresh: std::time::Duration::from_millis(st.refresh_ms),
            blob_grace: crate::store::s3::BLOB_GRACE,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_storage_table_parses() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            "[storage]\nbackend = \"s3\"\nendpoint = \"http://127.0.0.1:3900\"\nbucket = \"images\"\nregion = \"garage\"\naccess_key_id = \"GK1\"\nsecret_access_key = \"s\"\n",
        )
        .expect("write");
        let c = Config::load(&p).expect("s3 config loads");
        let s = c.s3_settings().expect("s3 settings");
        assert_eq!(s.bucket, "images");
        assert_eq!(s.refresh, std::time::Duration::from_millis(1000));
        assert!(c.data_dir.is_none());
    }

    #[test]
    fn shipped_example_parses() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("c.toml");
        std::fs::write(&p, include_str!("../dist/imgapid.toml.example")).expect("write");
        let c = Config::load(&p).expect("example config loads");
        assert!(c.auth.public_reads);
        assert!(!c.auth.allow_unauthenticated_writes);
        assert!(c.tls.is_none());
    }

    #[test]
    fn rejects_bad_values() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("c.toml");
        for bad in [
            "data_dir = \"/x\"\npublic_url = \"ftp://x\"\n",
            "data_dir = \"/x\"\nmax_upload_bytes = 0\n",
            "data_dir = \"/x\"\n[auth]\ntokens = [\"\"]\n",
            "data_dir = \"/x\"\n[auth]\nusers = [{ user = \"a:b\", password = \"p\" }]\n",
            "listen = \"nowhere\"\ndata_dir = \"/x\"\n",
            "listen = \"127.0.0.1:1\"\n",
            "[storage]\nbackend = \"s3\"\nendpoint = \"ftp://x\"\nbucket = \"images\"\naccess_key_id = \"a\"\nsecret_access_key = \"b\"\n",
            "[storage]\nbackend = \"s3\"\nendpoint = \"http://x\"\nbucket = \"../x\"\naccess_key_id = \"a\"\nsecret_access_key = \"b\"\n",
            "[storage]\nbackend = \"s3\"\nendpoint = \"http://x\"\nbucket = \"images\"\naccess_key_id = \"a\"\nsecret_access_key = \"b\"\nrefresh_ms = 5\n",
            "[storage]\nbackend = \"nfs\"\n",
            "data_dir = \"/x\"\nmax_connections = 0\n",
            "data_dir = \"/x\"\nconnection_idle_timeout_secs = 0\n",
        ] {
            std::fs::write(&p, bad).expect("write");
            assert!(Config::load(&p).is_err(), "{bad}");
        }
    }
}
