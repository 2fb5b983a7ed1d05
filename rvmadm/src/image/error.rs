//! The one error type of `imgadm`: a SmartOS error code plus a message.
//!
//! SmartOS tools parse `imgadm <verb>: error (<Code>): <message>` and the exit
//! status (3 for "not installed", 2 for usage, 1 for the rest), so the code is
//! part of the interface; the message says what went wrong and what to try.

use std::fmt;

/// imgadm's error codes (the subset this clone produces), spelled as SmartOS does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Usage,
    InvalidUUID,
    InvalidArgument,
    InvalidManifest,
    NoSources,
    SourcePing,
    ImageNotFound,
    ActiveImageNotFound,
    OriginNotFoundInSource,
    ImageNotInstalled,
    OriginNotInstalled,
    ImageHasDependentClones,
    UnexpectedNumberOfSnapshots,
    DownloadError,
    UncompressionError,
    UploadError,
    ClientError,
    ConfigError,
    FileSystem,
    VmNotFound,
    VmNotStopped,
    VmHasNoOrigin,
    Interrupted,
    InternalError,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Usage => "Usage",
            Code::InvalidUUID => "InvalidUUID",
            Code::InvalidArgument => "InvalidArgument",
            Code::InvalidManifest => "InvalidManifest",
            Code::NoSources => "NoSources",
            Code::SourcePing => "SourcePing",
            Code::ImageNotFound => "ImageNotFound",
            Code::ActiveImageNotFound => "ActiveImageNotFound",
            Code::OriginNotFoundInSource => "OriginNotFoundInSource",
            Code::ImageNotInstalled => "ImageNotInstalled",
            Code::OriginNotInstalled => "OriginNotInstalled",
            Code::ImageHasDependentClones => "ImageHasDependentClones",
            Code::UnexpectedNumberOfSnapshots => "UnexpectedNumberOfSnapshots",
            Code::DownloadError => "DownloadError",
            Code::UncompressionError => "UncompressionError",
            Code::UploadError => "UploadError",
            Code::ClientError => "ClientError",
            Code::ConfigError => "ConfigError",
            Code::FileSystem => "FileSystem",
            Code::VmNotFound => "VmNotFound",
            Code::VmNotStopped => "VmNotStopped",
            Code::VmHasNoOrigin => "VmHasNoOrigin",
            Code::Interrupted => "Interrupted",
            Code::InternalError => "InternalError",
        }
    }

    /// The process exit status for this code.
    pub fn exit_code(self) -> i32 {
        match self {
            Code::ImageNotInstalled | Code::OriginNotInstalled => 3,
            Code::Usage => 2,
            _ => 1,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An imgadm failure: a code for scripts, a message for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ImgError {
    pub code: Code,
    pub message: String,
}

impl ImgError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ImgError {
            code,
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Code::Usage, message)
    }

    pub fn not_installed(uuid: &uuid::Uuid, pool: &str) -> Self {
        Self::new(
            Code::ImageNotInstalled,
            format!("image \"{uuid}\" was not found on zpool \"{pool}\""),
        )
    }

    pub fn download(message: impl Into<String>) -> Self {
        Self::new(Code::DownloadError, message)
    }

    pub fn fs(context: &str, err: impl fmt::Display) -> Self {
        Self::new(Code::FileSystem, format!("{context}: {err}"))
    }

    pub fn exit_code(&self) -> i32 {
        self.code.exit_code()
    }
}

impl From<crate::zfs::ZfsError> for ImgError {
    fn from(e: crate::zfs::ZfsError) -> Self {
        ImgError::new(Code::FileSystem, e.to_string())
    }
}

impl From<crate::exec::ExecError> for ImgError {
    fn from(e: crate::exec::ExecError) -> Self {
        ImgError::new(Code::FileSystem, e.to_string())
    }
}

/// Lock and record-store failures (the global lock of import and delete,
/// the per-VM lock and record of create).
impl From<crate::store::StoreError> for ImgError {
    fn from(e: crate::store::StoreError) -> Self {
        ImgError::new(Code::FileSystem, e.to_string())
    }
}

impl From<crate::config::ConfigError> for ImgError {
    fn from(e: crate::config::ConfigError) -> Self {
        ImgError::new(Code::ConfigError, e.to_string())
    }
}

/// Parses a UUID argument strictly: a glob like `*` or a prefix is refused,
/// never expanded to "every image".
pub fn parse_uuid(arg: &str) -> Result<uuid::Uuid, ImgError> {
    let ok_shape = arg.len() == 36
        && arg.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
    match ok_shape.then(|| uuid::Uuid::parse_str(arg).ok()).flatten() {
        Some(u) => Ok(u),
        None => Err(ImgError::new(
            Code::InvalidUUID,
            format!("invalid uuid: \"{arg}\""),
        )),
    }
}

pub type Result<T, E = ImgError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_arguments_are_strict() {
        assert!(parse_uuid("2b683a82-a066-11e3-97ab-2faa44701c5a").is_ok());
        for bad in [
            "*",
            "",
            "2b683a82",
            "2b683a82a06611e397ab2faa44701c5a",
            "{2b683a82-a066-11e3-97ab-2faa44701c5a}",
            "../../etc/passwd",
        ] {
            assert_eq!(
                parse_uuid(bad).unwrap_err().code,
                Code::InvalidUUID,
                "{bad}"
            );
        }
    }

    #[test]
    fn exit_codes_follow_imgadm() {
        assert_eq!(Code::ImageNotInstalled.exit_code(), 3);
        assert_eq!(Code::Usage.exit_code(), 2);
        assert_eq!(Code::DownloadError.exit_code(), 1);
    }
}
