//! The errors every verb can end with, and the exit code each maps to.

use crate::spec::ValidationErrors;
use uuid::Uuid;

/// Why a verb failed. The message is what the binaries print on stderr;
/// [`OpsError::exit_code`] is their exit status.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// Wrong arguments: exit 2.
    #[error("{0}")]
    Usage(String),
    /// SmartOS's text, kept because tools parse it.
    #[error("zoneadm: {0}: No such zone configured")]
    NoSuchVm(String),
    /// A create or update payload that validation refused; the message
    /// names the bad or missing properties.
    #[error("{}", .0.message())]
    Invalid(ValidationErrors),
    /// vmadm.toml could not be read or is wrong.
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    /// A VM record could not be read, written or locked.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A `zfs` or `zpool` command failed (its argv and stderr inside).
    #[error(transparent)]
    Zfs(#[from] crate::zfs::ZfsError),
    /// The driver could not act on the host.
    #[error(transparent)]
    Driver(#[from] crate::driver::DriverError),
    /// A `list`/`lookup` filter, column or sort key was refused.
    #[error(transparent)]
    Query(#[from] super::query::QueryError),
    /// Any other failure, with the whole message to print (many are
    /// SmartOS's own wording, which scripts match).
    #[error("{0}")]
    Failed(String),
}

impl OpsError {
    /// The process exit status: 2 for a usage error, 1 for anything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            OpsError::Usage(_) => 2,
            _ => 1,
        }
    }

    /// SmartOS's error for a uuid without a record.
    pub(crate) fn no_such_vm(uuid: &Uuid) -> OpsError {
        OpsError::NoSuchVm(uuid.to_string())
    }
}

/// What every verb returns.
pub type OpsResult<T> = Result<T, OpsError>;

/// Parses a UUID argument with vmadm's message on failure.
pub fn parse_uuid(arg: &str, command: &str) -> OpsResult<Uuid> {
    if crate::spec::value::is_uuid(arg) {
        Uuid::parse_str(arg)
            .map_err(|_| OpsError::Usage(format!("Invalid or missing UUID for {command}")))
    } else {
        Err(OpsError::Usage(format!(
            "Invalid or missing UUID for {command}"
        )))
    }
}
