//! What a failure means for the work that hit it: the one error class shared
//! by the plugin boundary (`PluginError::class`), the state store (a store's
//! `LastError`) and the dispatcher's retry policy.
//!
//! The serialised form (`"retryable"`, `"permanent"`, `"misconfigured"`,
//! `"sandbox"`, `"unreachable"`) is stored in existing databases, so it must never change; it
//! is also the metric label and the word `arauto check` shows.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Classes of connector and sender failures, as the plugin contract defines
/// them, plus the host's own verdict on a plugin that broke the sandbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorClass {
    /// Transient: try again later with back-off (honouring the provider's
    /// retry hint when it gave one).
    Retryable,
    /// Can never succeed for this input: dead-letter the job.
    Permanent,
    /// Settings, credentials or the plugin file are wrong: pause the store or
    /// channel instance until an operator acts.
    Misconfigured,
    /// The host stopped the plugin (trap, timeout, memory, invalid output,
    /// cancelled or failed start). Retried like [`ErrorClass::Retryable`]: the
    /// next call gets a fresh instance.
    Sandbox,
    /// The recipient cannot be reached on this channel at all (not on
    /// WhatsApp, not a mobile number, the bot was blocked): permanent for
    /// this channel, so the job ends at once, and the channel's `fallback`
    /// (if any) gets the notification instead. Declared by a sender through
    /// the `recipient-unreachable:` prefix of its permanent error (see
    /// `plugin::RECIPIENT_UNREACHABLE_PREFIX`).
    Unreachable,
}

impl ErrorClass {
    /// True for the classes that end a job at once, without a retry
    /// (`permanent` and `unreachable`).
    pub const fn is_final(self) -> bool {
        matches!(self, Self::Permanent | Self::Unreachable)
    }

    /// The label in metrics, logs and `arauto check`; the same as the
    /// serialised form.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Retryable => "retryable",
            Self::Permanent => "permanent",
            Self::Misconfigured => "misconfigured",
            Self::Sandbox => "sandbox",
            Self::Unreachable => "unreachable",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [ErrorClass; 5] = [
        ErrorClass::Retryable,
        ErrorClass::Permanent,
        ErrorClass::Misconfigured,
        ErrorClass::Sandbox,
        ErrorClass::Unreachable,
    ];

    #[test]
    fn stored_form_is_the_label_and_reads_back() -> Result<(), serde_json::Error> {
        for class in ALL {
            let json = serde_json::to_string(&class)?;
            assert_eq!(json, format!("\"{}\"", class.as_str()));
            assert_eq!(serde_json::from_str::<ErrorClass>(&json)?, class);
        }
        Ok(())
    }

    #[test]
    fn stored_form_matches_databases_written_before_the_merge() -> Result<(), serde_json::Error> {
        let old = r#"["retryable","permanent","misconfigured","sandbox"]"#;
        assert_eq!(serde_json::from_str::<Vec<ErrorClass>>(old)?, ALL[..4]);
        assert_eq!(serde_json::to_string(&ALL[..4])?, old);
        Ok(())
    }
}
