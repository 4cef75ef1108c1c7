//! Typed errors of the state store.

use std::path::PathBuf;
use std::sync::Arc;

use super::types::{JobId, JobState};

/// A shareable, backend-specific error cause (redb, NATS…), kept opaque so
/// callers never depend on a particular backend.
pub type BackendCause = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in the state store.
///
/// Errors are `Clone` because one failed group commit answers every caller of
/// the batch with the same error.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database file could not be created or opened.
    #[error("cannot open the state database {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// What the backend reported.
        source: BackendCause,
    },

    /// Another process (or another handle in this one) holds the database.
    #[error(
        "the state database {path} is in use by another process (is the arauto daemon running? \
         use the control socket, or stop it first)"
    )]
    Locked {
        /// The database file.
        path: PathBuf,
    },

    /// The file was written by a newer arauto with a schema this build does not know.
    #[error(
        "the state database {path} has schema version {found}, but this arauto only understands \
         schema versions up to {supported}; upgrade arauto (or restore a backup made by this \
         version) instead of downgrading"
    )]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// Version recorded in the file.
        found: u64,
        /// Newest version this build understands.
        supported: u64,
    },

    /// A storage operation (read, write, commit) failed.
    #[error("state database {path}: {op} failed: {source}")]
    Backend {
        /// The database file.
        path: PathBuf,
        /// What was being done ("commit", "read job", …).
        op: &'static str,
        /// What the backend reported.
        source: BackendCause,
    },

    /// A stored record could not be decoded (corruption, or written by a newer format).
    #[error("state database {path}: {what} is unreadable: {message}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// Which record ("job 01h…", "status of store loja-1", …).
        what: String,
        /// Why decoding failed.
        message: String,
    },

    /// No job has this id.
    #[error("job {id} does not exist")]
    NotFound {
        /// The job asked for.
        id: JobId,
    },

    /// Only a running job can be completed or have its lease extended.
    #[error("job {id} (channel {channel}) is {state}, not running; the completion was ignored")]
    NotRunning {
        /// The job.
        id: JobId,
        /// Its channel.
        channel: crate::model::ChannelId,
        /// Its current state.
        state: JobState,
    },

    /// The caller's claim is older than the job's current one: its lease expired
    /// and the job was recovered (and possibly claimed again) meanwhile.
    #[error(
        "job {id} (channel {channel}): claim #{presented} is stale, the job is now on claim #{current}; \
         the late completion was ignored"
    )]
    StaleClaim {
        /// The job.
        id: JobId,
        /// Its channel.
        channel: crate::model::ChannelId,
        /// The claim number the caller holds.
        presented: u32,
        /// The job's current claim number.
        current: u32,
    },

    /// A request was rejected before anything was written.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was wrong ("job for order 123 on channel whatsapp", "purge filter", …).
        what: String,
        /// Why.
        reason: String,
    },

    /// An operation in the same group commit failed after it had started writing,
    /// so the whole batch was rolled back; nothing of this request was written.
    #[error(
        "state database {path}: rolled back because another operation of the batch failed: {cause}"
    )]
    BatchAborted {
        /// The database file.
        path: PathBuf,
        /// The failure that aborted the batch.
        cause: Arc<Error>,
    },

    /// The store was closed (daemon shutting down) or its writer died.
    #[error("the state store is closed")]
    Closed,

    /// A NATS JetStream operation (the cluster backend) failed.
    #[error("NATS JetStream {target}: {op} failed: {source}")]
    Nats {
        /// The bucket, stream or key involved ("bucket arauto_jobs, key 01h…").
        target: String,
        /// What was being done ("create bucket", "update job", …).
        op: &'static str,
        /// What the client reported.
        source: BackendCause,
    },

    /// This node no longer holds the lease of the store or channel the write
    /// is for (it was paused past the lease's end, or cut off from the
    /// cluster); nothing was written.
    #[error(
        "{scope}: this node no longer holds its lease; the write was refused (nothing written)"
    )]
    Fenced {
        /// The scope whose lease is missing ("store loja-1", "channel whatsapp").
        scope: String,
    },

    /// A record this node's poll read changed before the poll wrote it back
    /// (another node took the store over, or an operator changed its
    /// status): the compare-and-set was refused, and so is every later write
    /// of that poll; the next poll reads afresh.
    #[error(
        "{scope}: {record} changed since this node's poll read it (another node now polls the store, or an operator changed it); the write was refused and the poll's commit stops here (the next poll starts from what is stored)"
    )]
    Superseded {
        /// The scope the write was for ("store loja-1").
        scope: String,
        /// The record that changed ("its cursor", "the record of order \"12\"").
        record: String,
    },
}

impl Error {
    /// True for failures of the storage itself (as opposed to a rejected request):
    /// after one of these the open transaction cannot be trusted.
    pub fn is_storage_failure(&self) -> bool {
        matches!(
            self,
            Error::Backend { .. } | Error::Closed | Error::BatchAborted { .. } | Error::Nats { .. }
        )
    }
}

/// Result alias of the state store.
pub type Result<T, E = Error> = std::result::Result<T, E>;
