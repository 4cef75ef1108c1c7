//! Why an operator request could not be served ([`OpsError`]).

/// Why an operator request could not be served.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The request names something that does not exist, or is malformed
    /// (the CLI exits with status 2).
    #[error("{0}")]
    Invalid(String),
    /// A job id that no job has.
    #[error("no job {0} (it may have been purged)")]
    NoSuchJob(String),
    /// There is no state database yet.
    #[error(
        "no state database at {0} yet: arauto has not run with this state_dir (start it with systemctl start arauto)"
    )]
    NoDatabase(String),
    /// The state database failed.
    #[error("state database: {0}")]
    Store(#[from] crate::queue::Error),
    /// Something needed is not available in this process.
    #[error("{0}")]
    Unavailable(String),
}
