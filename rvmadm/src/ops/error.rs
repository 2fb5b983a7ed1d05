//! The errors every verb can end with, and the exit code each maps to.

use crate::spec::ValidationErrors;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// Wrong arguments: exit 2.
    #[error("{0}")]
    Usage(String),
    /// SmartOS's text, kept because tools parse it.
    #[error("zoneadm: {0}: No such zone configured")]
    NoSuchVm(String),
    #[error("{}", .0.message())]
    Invalid(ValidationErrors),
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Zfs(#[from] crate::zfs::ZfsError),
    #[error(transparent)]
    Driver(#[from] crate::driver::DriverError),
    #[error(transparent)]
    Query(#[from] super::query::QueryError),
    #[error("{0}")]
    Failed(String),
}

impl OpsError {
    pub fn exit_code(&self) -> i32 {
        match self {
            OpsError::Usage(_) => 2,
            _ => 1,
        }
    }

    pub fn no_such_vm(uuid: &Uuid) -> OpsError {
        OpsError::NoSuchVm(uuid.to_string())
    }
}

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
