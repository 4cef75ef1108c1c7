//! A configured store, ready to poll.

use crate::config::StoreConfig;
use crate::decide::StorePolicy;
use crate::model::ConnectorInfo;
use crate::plugin::{ConnectorInstance, Plugin};

/// One `[stores.<id>]` with its connector instance and notification policy.
#[derive(Clone)]
pub struct StoreRuntime {
    /// The store's configuration.
    pub config: StoreConfig,
    /// The loaded connector plugin.
    pub plugin: Plugin,
    /// This store's instance of it.
    pub connector: ConnectorInstance,
    /// What the connector says about the platform (status catalogue, capabilities).
    pub info: ConnectorInfo,
    /// Recognition, enabled kinds, channels, timing. `seed_cutoff` is the
    /// configured `first_sync_cutoff`; the poller completes it from the state
    /// database (when the store was first added).
    pub policy: StorePolicy,
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
