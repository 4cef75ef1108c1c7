//! A configured store, ready to poll.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::StoreConfig;
use crate::decide::StorePolicy;
use crate::model::{ConnectorInfo, NotificationKind};
use crate::plugin::{ConnectorInstance, Plugin};

/// One `[stores.<id>]` with its connector instance and notification policy.
#[derive(Clone)]
pub struct StoreRuntime {
    /// The store's configuration: the same `Arc` as in `Config::stores`.
    pub config: Arc<StoreConfig>,
    /// The loaded connector plugin.
    pub plugin: Plugin,
    /// This store's instance of it.
    pub connector: ConnectorInstance,
    /// What the connector says about the platform (status catalogue,
    /// capabilities): the plugin's own copy, shared by all its stores.
    pub info: Arc<ConnectorInfo>,
    /// Recognition, enabled kinds, channels, timing. `seed_cutoff` is the
    /// configured `first_sync_cutoff`; the poller completes it from the state
    /// database (when the store was first added).
    pub policy: StorePolicy,
    /// `max_attempts` of each of the store's channels.
    pub channel_attempts: BTreeMap<String, u32>,
    /// `[notifications.<kind>] max_attempts` overrides.
    pub kind_attempts: BTreeMap<NotificationKind, u32>,
}

/// Attempts when neither the channel nor the notification says.
pub use crate::config::channels::DEFAULT_MAX_ATTEMPTS;

impl StoreRuntime {
    /// Attempts a job of `kind` on `channel` gets before dead-letter.
    pub fn max_attempts(&self, channel: &str, kind: NotificationKind) -> u32 {
        self.kind_attempts
            .get(&kind)
            .or_else(|| self.channel_attempts.get(channel))
            .copied()
            .unwrap_or(DEFAULT_MAX_ATTEMPTS)
    }
}

impl std::fmt::Debug for StoreRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreRuntime")
            .field("id", &self.config.id)
            .field("plugin", &self.plugin.name())
            .field("platform", &self.info.platform)
            .finish_non_exhaustive()
    }
}
