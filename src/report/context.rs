//! What every operator command works on: the [`Context`] (configuration,
//! built state, state database, "now") and the [`DaemonFacts`] the daemon adds
//! when it answers itself.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::error::OpsError;
use crate::config::Config;
use crate::poll::inbox::PushStats;
use crate::queue::SharedStore;
use crate::send::pacing::PacingPolicy;
use crate::state::{ReloadOutcome, State};

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
    /// Pushed webhooks per store since the daemon started (stores that
    /// received none are absent).
    #[serde(default)]
    pub pushes: BTreeMap<String, PushStats>,
    /// A cluster node's views (jobs, history, status, ownership buckets):
    /// current, or stale since when and why. Empty on a single node.
    #[serde(default)]
    pub views: Vec<(String, crate::queue::nats::Freshness)>,
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
        let sender = self
            .state
            .as_ref()
            .and_then(|state| state.channels.get(channel))
            .and_then(|runtime| runtime.plugin.sender_info());
        Some(crate::send::channel::pacing_policy(
            config,
            sender,
            &self.config.daemon.timezone,
        ))
    }

    /// Whether `id` names a configured store.
    pub(super) fn check_store(&self, id: &str) -> Result<(), OpsError> {
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
    pub(super) fn check_channel(&self, id: &str) -> Result<(), OpsError> {
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
