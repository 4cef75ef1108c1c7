//! The one error type every plugin call returns.

use std::path::PathBuf;
use std::time::Duration;

use jiff::SignedDuration;

use crate::model::ErrorClass;

/// How a sender declares that the recipient cannot be reached on its channel
/// at all: the `plugin-error.permanent` message its `send` returns starts with
/// this prefix (the SDK's `PluginError::recipient_unreachable` writes it). It
/// works for 0.1 and 0.2 senders alike, since both contracts carry the same
/// `permanent` string. The host turns such an error into
/// [`PluginError::Unreachable`] at the plugin boundary, and only for a
/// sender's `send` result: a connector's or any other call's permanent error
/// stays [`PluginError::Permanent`] whatever its text. Nowhere else looks at
/// the text.
pub const RECIPIENT_UNREACHABLE_PREFIX: &str = "recipient-unreachable:";

/// A failed plugin call or plugin load.
///
/// The first three variants are what the plugin itself returned (the WIT
/// `plugin-error`). The others are raised by the host: sandbox faults always
/// name the plugin and the instance (store or channel id); load failures name
/// the file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PluginError {
    /// Transient failure reported by the plugin (network error, 5xx, 429…).
    #[error("{message}")]
    Retryable {
        /// The plugin's explanation.
        message: String,
        /// The provider's hint of when to try again.
        retry_after: Option<SignedDuration>,
    },
    /// The plugin says this input can never succeed.
    #[error("{0}")]
    Permanent(String),
    /// The sender says the recipient cannot be reached on its channel at all
    /// (a permanent error carrying [`RECIPIENT_UNREACHABLE_PREFIX`]; the
    /// message is the rest of the text).
    #[error("recipient unreachable on this channel: {0}")]
    Unreachable(String),
    /// The plugin (or the host, for instance settings) says the configuration is wrong.
    #[error("{0}")]
    Misconfigured(String),

    /// The call ran out of its wall-clock budget while the host was working for
    /// the plugin (an HTTP request that did not answer in time).
    #[error(
        "plugin {plugin} (instance {instance}) ran out of its {budget} wall-clock budget while waiting for {during}",
        budget = human(*budget)
    )]
    Timeout {
        /// Plugin name.
        plugin: String,
        /// Store or channel id.
        instance: String,
        /// The call's wall-clock budget.
        budget: Duration,
        /// What the host was doing, e.g. `an HTTP response from https://api.example.com`.
        during: String,
    },
    /// The plugin's own code was still running when the call's budget ran
    /// out and was interrupted (an endless loop or far too much work).
    #[error(
        "plugin {plugin} (instance {instance}) was interrupted: its code was still running when the {budget} budget ran out",
        budget = human(*budget)
    )]
    CpuInterrupted {
        /// Plugin name.
        plugin: String,
        /// Store or channel id.
        instance: String,
        /// The call's wall-clock budget.
        budget: Duration,
    },
    /// The plugin tried to grow its memory beyond the instance's cap.
    #[error(
        "plugin {plugin} (instance {instance}) hit its memory limit: asked for {requested} bytes, the cap is {limit} bytes"
    )]
    MemoryLimit {
        /// Plugin name.
        plugin: String,
        /// Store or channel id.
        instance: String,
        /// The cap in bytes.
        limit: u64,
        /// The memory size the plugin asked for, in bytes.
        requested: u64,
    },
    /// The plugin trapped (crashed). Rust plugins built with the SDK log their
    /// panic message before aborting; it is carried in `panic`.
    #[error("plugin {plugin} (instance {instance}) {}", crash_description(trap, panic.as_deref()))]
    Trapped {
        /// Plugin name.
        plugin: String,
        /// Store or channel id.
        instance: String,
        /// The trap as the runtime describes it.
        trap: String,
        /// The panic message the plugin logged just before trapping.
        panic: Option<String>,
    },
    /// The plugin answered with data that breaks the contract (a timestamp
    /// that is not RFC 3339, extras that are not JSON…).
    #[error("plugin {plugin} (instance {instance}) returned invalid data: {detail}")]
    InvalidOutput {
        /// Plugin name.
        plugin: String,
        /// Store or channel id.
        instance: String,
        /// What is wrong, naming the order or field.
        detail: String,
    },
    /// The caller stopped waiting (shutdown, or the caller's own timeout) and
    /// the call was abandoned.
    #[error("call to plugin {plugin} (instance {instance}) was cancelled")]
    Cancelled {
        /// Plugin name.
        plugin: String,
        /// Store or channel id.
        instance: String,
    },
    /// The plugin file could not be read, compiled, linked or described.
    #[error("cannot load plugin {}: {reason}", path.display())]
    Load {
        /// The `.wasm` file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The plugin was built against a plugin API version this arauto does not speak.
    #[error(
        "plugin {} needs plugin API {needs}, this arauto supports {supported}",
        path.display()
    )]
    UnsupportedApi {
        /// The `.wasm` file.
        path: PathBuf,
        /// The API line the plugin needs, e.g. `1.x` or `0.2`.
        needs: String,
        /// The API lines this host supports, e.g. `0.1`.
        supported: String,
    },
    /// A fresh instance of a loaded plugin could not be created for this call.
    #[error("cannot start plugin {plugin} (instance {instance}) from {}: {reason}", path.display())]
    Instantiate {
        /// Plugin name.
        plugin: String,
        /// Store or channel id.
        instance: String,
        /// The `.wasm` file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

impl PluginError {
    /// The host's reading of a plugin's `permanent` error: one whose message
    /// carries [`RECIPIENT_UNREACHABLE_PREFIX`] is [`PluginError::Unreachable`]
    /// (the prefix and the spaces after it dropped), any other stays permanent.
    pub fn from_permanent(message: String) -> Self {
        match message.strip_prefix(RECIPIENT_UNREACHABLE_PREFIX) {
            Some(rest) => Self::Unreachable(rest.trim_start().to_owned()),
            None => Self::Permanent(message),
        }
    }

    /// How the queue or poller should treat this failure.
    ///
    /// Sandbox faults (timeouts, interrupts, memory, traps, invalid output,
    /// cancelled calls, failed starts) are [`ErrorClass::Sandbox`], which the
    /// queue retries like a retryable error: the next call gets a fresh
    /// instance, and a plugin that keeps failing shows up in the logs on every
    /// attempt. Load failures are operator problems, hence misconfigured.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Retryable { .. } => ErrorClass::Retryable,
            Self::Timeout { .. }
            | Self::CpuInterrupted { .. }
            | Self::MemoryLimit { .. }
            | Self::Trapped { .. }
            | Self::InvalidOutput { .. }
            | Self::Cancelled { .. }
            | Self::Instantiate { .. } => ErrorClass::Sandbox,
            Self::Permanent(_) => ErrorClass::Permanent,
            Self::Unreachable(_) => ErrorClass::Unreachable,
            Self::Misconfigured(_) | Self::Load { .. } | Self::UnsupportedApi { .. } => {
                ErrorClass::Misconfigured
            }
        }
    }

    /// The plugin's retry hint, if it gave one.
    pub fn retry_after(&self) -> Option<SignedDuration> {
        match self {
            Self::Retryable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// True when the host stopped the plugin (as opposed to the plugin
    /// returning an error value).
    pub fn is_sandbox_fault(&self) -> bool {
        self.class() == ErrorClass::Sandbox
    }
}

fn crash_description(trap: &str, panic: Option<&str>) -> String {
    match panic {
        Some(message) => format!("panicked: {message}"),
        None => format!("crashed: {trap}"),
    }
}

/// `30s`, `500ms`, `1m 30s`: durations the way operators write them in the config.
pub(crate) fn human(duration: Duration) -> String {
    match SignedDuration::try_from(duration) {
        Ok(d) => format!("{d:#}"),
        Err(_) => format!("{duration:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_faults_are_their_own_class_and_name_plugin_and_instance() {
        let err = PluginError::CpuInterrupted {
            plugin: "probe".into(),
            instance: "loja-1".into(),
            budget: Duration::from_millis(1500),
        };
        assert_eq!(err.class(), ErrorClass::Sandbox);
        assert!(err.is_sandbox_fault());
        let text = err.to_string();
        assert!(
            text.contains("probe") && text.contains("loja-1") && text.contains("1s 500ms"),
            "{text}"
        );
    }

    #[test]
    fn panic_message_is_preferred_over_the_raw_trap() {
        let err = PluginError::Trapped {
            plugin: "p".into(),
            instance: "i".into(),
            trap: "wasm `unreachable` instruction executed".into(),
            panic: Some("boom".into()),
        };
        assert_eq!(err.to_string(), "plugin p (instance i) panicked: boom");
    }

    #[test]
    fn plugin_error_classes_map_one_to_one() {
        let retry = PluginError::Retryable {
            message: "busy".into(),
            retry_after: Some(SignedDuration::from_secs(30)),
        };
        assert_eq!(retry.class(), ErrorClass::Retryable);
        assert_eq!(retry.retry_after(), Some(SignedDuration::from_secs(30)));
        assert_eq!(
            PluginError::Permanent("x".into()).class(),
            ErrorClass::Permanent
        );
        assert_eq!(
            PluginError::Misconfigured("x".into()).class(),
            ErrorClass::Misconfigured
        );
        assert!(!PluginError::Permanent("x".into()).is_sandbox_fault());
    }

    #[test]
    fn a_permanent_error_with_the_unreachable_prefix_is_its_own_class() {
        let unreachable =
            PluginError::from_permanent("recipient-unreachable: 131026 not on WhatsApp".into());
        assert_eq!(
            unreachable,
            PluginError::Unreachable("131026 not on WhatsApp".into())
        );
        assert_eq!(unreachable.class(), ErrorClass::Unreachable);
        assert!(unreachable.class().is_final());
        let plain = PluginError::from_permanent("invalid template recipient-unreachable:".into());
        assert_eq!(plain.class(), ErrorClass::Permanent);
    }
}
