//! The one error type of `imgadm`: a SmartOS error code plus a message.
//!
//! SmartOS tools parse `imgadm <verb>: error (<Code>): <message>` and the exit
//! status (3 for "not installed", 1 for the rest, usage errors included), so the code is
//! part of the interface; the message says what went wrong and what to try.

use std::fmt;

/// imgadm's error codes (the subset this clone produces), spelled as SmartOS does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// Bad command-line arguments or option combinations (exit status 1,
    /// as SmartOS's `UsageError`).
    Usage,
    /// An argument that should be a full UUID is not one.
    InvalidUUID,
    /// An argument has the right shape but an unusable value (a source URL that
    /// is not http(s), a bad build option).
    InvalidArgument,
    /// A manifest (remote, from a VM or given with `-m`) is malformed or
    /// contradicts itself, e.g. an origin chain that loops.
    InvalidManifest,
    /// An action needs an image source and none is configured.
    NoSources,
    /// A source does not answer `/ping`, or answers as the wrong kind of server.
    SourcePing,
    /// No configured source (or no installed image, for `show`) has the image.
    ImageNotFound,
    /// The source has the image but it is disabled or not `active`.
    ActiveImageNotFound,
    /// An origin the image needs is neither installed nor in any source.
    OriginNotFoundInSource,
    /// The image is not on the pool (exit status 3).
    ImageNotInstalled,
    /// The origin an incremental image or stream needs is not on the pool (exit
    /// status 3).
    OriginNotInstalled,
    /// The image cannot be deleted: a VM or another image is cloned from it.
    ImageHasDependentClones,
    /// `update` found an image without `@final` and without the snapshot
    /// its manifest's `dataset_guid` names.
    ImageMissingOriginalSnapshot,
    /// Several images failed in one `update`; the message lists each
    /// error with its own code.
    MultiError,
    /// A received stream did not bring exactly one snapshot.
    UnexpectedNumberOfSnapshots,
    /// The image file could not be fetched, or its size or SHA-1 does not match
    /// the manifest.
    DownloadError,
    /// A compressed file or stream could not be decompressed.
    UncompressionError,
    /// The image's ZFS stream is not one this host receives: not a plain
    /// stream of one snapshot (a compound `zfs send -R`/`-p` stream carries
    /// properties and children), larger than its bounds once decompressed,
    /// or its decoder would need more memory than allowed. Not an imgadm
    /// code: SmartOS's imgadm has no such check.
    StreamRefused,
    /// `publish` could not upload the manifest or file, or the server refused
    /// them.
    UploadError,
    /// An HTTP request to a source failed or its answer was not what the protocol
    /// says.
    ClientError,
    /// `vmadm.toml` could not be read, parsed or written.
    ConfigError,
    /// A local file, zfs or process operation failed; the message carries the
    /// path or command.
    FileSystem,
    /// The VM named for `create` has no record or no dataset.
    VmNotFound,
    /// The VM named for `create` runs; it must be stopped first.
    VmNotStopped,
    /// An incremental image was asked of a VM whose dataset has no origin image.
    VmHasNoOrigin,
    /// SIGINT or SIGTERM arrived during a long operation, which then
    /// stopped and cleaned up after itself.
    Interrupted,
    /// A failure that should not happen (serialising our own data, the driver
    /// being unable to answer).
    InternalError,
}

impl Code {
    /// The code as imgadm prints it between parentheses (`ImageNotInstalled`).
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
            Code::ImageMissingOriginalSnapshot => "ImageMissingOriginalSnapshot",
            Code::MultiError => "MultiError",
            Code::UnexpectedNumberOfSnapshots => "UnexpectedNumberOfSnapshots",
            Code::DownloadError => "DownloadError",
            Code::UncompressionError => "UncompressionError",
            Code::StreamRefused => "StreamRefused",
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
    /// The SmartOS error code; decides the exit status.
    pub code: Code,
    /// What went wrong, and where it helps what to do next.
    pub message: String,
}

impl ImgError {
    /// An error with any code.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ImgError {
            code,
            message: message.into(),
        }
    }

    /// A [`Code::Usage`] error: wrong arguments, exit status 1.
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Code::Usage, message)
    }

    /// [`Code::ImageNotInstalled`] with imgadm's wording for `uuid` on `pool`.
    pub fn not_installed(uuid: &uuid::Uuid, pool: &str) -> Self {
        Self::new(
            Code::ImageNotInstalled,
            format!("image \"{uuid}\" was not found on zpool \"{pool}\""),
        )
    }

    /// [`Code::ImageNotFound`]: no source has `arg` (`imgadm show`).
    pub fn image_not_found(arg: impl fmt::Display) -> Self {
        Self::new(
            Code::ImageNotFound,
            format!("image \"{arg}\" was not found"),
        )
    }

    /// [`Code::ActiveImageNotFound`]: no source has `arg` as an active,
    /// enabled image (`imgadm import`).
    pub fn active_image_not_found(arg: impl fmt::Display) -> Self {
        Self::new(
            Code::ActiveImageNotFound,
            format!("an active image \"{arg}\" was not found in image sources"),
        )
    }

    /// [`Code::OriginNotFoundInSource`]: the source an image came from
    /// lacks one of its origins.
    pub fn origin_not_found_in_source(origin: impl fmt::Display, source_url: &str) -> Self {
        Self::new(
            Code::OriginNotFoundInSource,
            format!("origin image \"{origin}\" does not exist in image source \"{source_url}\""),
        )
    }

    /// [`Code::SourcePing`] for a source of `kind` at `url`, with what went
    /// wrong.
    pub fn source_ping(kind: &str, url: &str, cause: impl fmt::Display) -> Self {
        Self::new(
            Code::SourcePing,
            format!("unexpected ping error with \"{kind}\" image source \"{url}\": {cause}"),
        )
    }

    /// [`Code::VmNotFound`] for `imgadm create`.
    pub fn vm_not_found(uuid: impl fmt::Display) -> Self {
        Self::new(Code::VmNotFound, format!("vm \"{uuid}\" was not found"))
    }

    /// [`Code::VmNotStopped`] for `imgadm create`.
    pub fn vm_not_stopped(uuid: impl fmt::Display) -> Self {
        Self::new(Code::VmNotStopped, format!("vm \"{uuid}\" is not stopped"))
    }

    /// [`Code::VmHasNoOrigin`] for `imgadm create -i`.
    pub fn vm_has_no_origin(uuid: impl fmt::Display) -> Self {
        Self::new(
            Code::VmHasNoOrigin,
            format!("cannot create an incremental image: vm \"{uuid}\" has no origin"),
        )
    }

    /// A [`Code::DownloadError`].
    pub fn download(message: impl Into<String>) -> Self {
        Self::new(Code::DownloadError, message)
    }

    /// A [`Code::FileSystem`] error reading `context: err`, where `context`
    /// names the file or command (`cannot write /path`).
    pub fn fs(context: &str, err: impl fmt::Display) -> Self {
        Self::new(Code::FileSystem, format!("{context}: {err}"))
    }

    /// The exit status imgadm ends with for this error (see [`Code::exit_code`]).
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

/// The result of every image operation.
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
        // SmartOS's UsageError has exitStatus 1, unlike vmadm's usage().
        assert_eq!(Code::Usage.exit_code(), 1);
        assert_eq!(Code::DownloadError.exit_code(), 1);
    }
}
