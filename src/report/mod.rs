//! The operator's view: the readiness checklist (`arauto check`), delivery
//! reports (`arauto report`), queue management (`arauto queue …`) and the
//! Prometheus endpoint.
//!
//! Every operator command is computed here from one [`Context`] — the
//! configuration, the built plugin instances and the state database — so the
//! daemon (answering on its control socket) and the CLI (working on the
//! database itself when no daemon runs) produce the same answers from the same
//! code: the control module's `handle` dispatches a request to these functions in
//! both cases.

pub mod checklist;
pub mod delivery;
mod format;
pub mod metrics_http;
pub mod queue_ops;

use std::sync::Arc;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::send::pacing::PacingPolicy;
use crate::state::{ReloadOutcome, State};

pub use checklist::{
    CheckItem, CheckLine, CheckQuery, CheckSection, Checklist, Level, SectionKind,
};
pub use delivery::{
    ChannelReport, KindTally, QuarantinedOrder, QueueFigures, Report, ReportQuery, StoreReport,
    Tally,
};
pub use queue_ops::{
    CancelResult, ChannelChange, JobList, ListQuery, PurgeQuery, PurgeResult, RequeueResult,
    RetryDeadQuery, StoreChange,
};

pub use crate::queue::SharedStore;

/// Facts about the running daemon, when the daemon itself answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonFacts {
    /// Its pid.
    pub pid: u32,
    /// arauto's version.
    pub version: String,
    /// Seconds since it started.
    pub uptime_secs: u64,
    /// `--dry-run`: nothing is sent.
    pub dry_run: bool,
    /// When the configuration in effect was loaded.
    pub config_loaded_at: Timestamp,
    /// The last reload, if any.
    pub last_reload: Option<ReloadOutcome>,
}

/// What the operator commands work on.
#[derive(Clone)]
pub struct Context {
    /// The configuration in effect.
    pub config: Arc<Config>,
    /// The built state (plugin instances, policies); needed by `check` for
    /// its live checks, optional for reports and queue commands.
    pub state: Option<Arc<State>>,
    /// The state database; `None` when it does not exist yet (arauto never ran
    /// with this `state_dir`).
    pub store: Option<SharedStore>,
    /// Set when the daemon answers; `None` when the CLI works on its own.
    pub daemon: Option<DaemonFacts>,
    /// "Now" for ages, windows and ETAs.
    pub now: Timestamp,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("config", &self.config.source_path())
            .field("state", &self.state.is_some())
            .field("store", &self.store.is_some())
            .field("daemon", &self.daemon)
            .field("now", &self.now)
            .finish()
    }
}

impl Context {
    /// The state database, or the error that explains why there is none.
    pub fn store(&self) -> Result<&SharedStore, OpsError> {
        self.store.as_ref().ok_or_else(|| {
            OpsError::NoDatabase(
                self.config
                    .daemon
                    .state_dir
                    .join(crate::queue::redb::FILE_NAME)
                    .display()
                    .to_string(),
            )
        })
    }

    /// The pacing policy of `channel`, derived from its configuration as the
    /// dispatcher derives it.
    pub fn pacing(&self, channel: &str) -> Option<PacingPolicy> {
        let config = self.config.channels.get(channel)?;
        Some(crate::send::channel::pacing_policy(
            config,
            &self.config.daemon.timezone,
        ))
    }

    /// Whether `id` names a configured store.
    fn check_store(&self, id: &str) -> Result<(), OpsError> {
        if self.config.stores.contains_key(id) {
            Ok(())
        } else {
            Err(OpsError::Invalid(unknown(
                "store",
                id,
                self.config.stores.keys(),
                "[stores.<id>]",
            )))
        }
    }

    /// Whether `id` names a configured channel.
    fn check_channel(&self, id: &str) -> Result<(), OpsError> {
        if self.config.channels.contains_key(id) {
            Ok(())
        } else {
            Err(OpsError::Invalid(unknown(
                "channel",
                id,
                self.config.channels.keys(),
                "[channels.<id>]",
            )))
        }
    }
}

/// "unknown channel "x" (configured: a, b)".
fn unknown<'a>(
    what: &str,
    id: &str,
    known: impl Iterator<Item = &'a String>,
    table: &str,
) -> String {
    let known: Vec<&str> = known.map(String::as_str).collect();
    if known.is_empty() {
        format!("unknown {what} {id:?}: the configuration has no {table} table")
    } else {
        format!("unknown {what} {id:?} (configured: {})", known.join(", "))
    }
}

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
