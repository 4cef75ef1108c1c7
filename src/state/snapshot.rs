//! [`State`]: everything built from one configuration, swapped as a whole on
//! reload.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;

use super::channel::ChannelRuntime;
use super::problem::BuildProblem;
use super::store::StoreRuntime;
use crate::config::Config;
use crate::plugin::PluginHost;
use crate::template::Templates;

/// Everything built from one configuration: the validated config, every
/// store's connector instance and notification policy, every channel's sender
/// instance and pacing/retry policies, the compiled templates.
pub struct State {
    /// The configuration this state was built from.
    pub config: Arc<Config>,
    /// `--dry-run` (kept across reloads).
    pub dry_run: bool,
    /// When this state was built.
    pub built_at: Timestamp,
    /// The plugin host the instances below run in (one per daemon run).
    pub host: PluginHost,
    /// Stores by id (disabled ones too: they are validated, not polled).
    pub stores: BTreeMap<String, Arc<StoreRuntime>>,
    /// Channels by id.
    pub channels: BTreeMap<String, Arc<ChannelRuntime>>,
    /// Notification texts and provider template parameters.
    pub templates: Arc<Templates>,
    /// Stores and channels left out at startup because their plugin file
    /// does not load ([`super::BuildOptions::skip_unloadable_plugins`] only; empty otherwise). Each names
    /// the component (`stores.<id>`, `channels.<id>`) and the plugin file.
    pub skipped: Vec<BuildProblem>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("config", &self.config)
            .field("dry_run", &self.dry_run)
            .field("built_at", &self.built_at)
            .field("stores", &self.stores)
            .field("channels", &self.channels)
            .field("skipped", &self.skipped)
            .finish_non_exhaustive()
    }
}
