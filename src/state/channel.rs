//! A configured channel instance, ready to send.

use crate::config::ChannelConfig;
use crate::plugin::{Plugin, SenderInstance};

/// One `[channels.<id>]` with its sender plugin instance. The send stage
/// derives its pacing, retry and recipient rules from the configuration
/// (`send::channel::ChannelPolicy`).
#[derive(Clone)]
pub struct ChannelRuntime {
    /// The channel's configuration.
    pub config: ChannelConfig,
    /// The loaded sender plugin.
    pub plugin: Plugin,
    /// This channel's instance of it (settings, secrets, sandbox grants).
    pub sender: SenderInstance,
}

impl std::fmt::Debug for ChannelRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelRuntime")
            .field("id", &self.config.id)
            .field("plugin", &self.plugin.name())
            .finish_non_exhaustive()
    }
}
