//! What a failure means for the work that hit it: the one error class shared
//! by the plugin boundary (`PluginError::class`), the state store (a store's
//! `LastError`) and the dispatcher's retry policy.
//!
//! The serialised form (`"retryable"`, `"permanent"`, `"misconfigured"`,
//! `"sandbox"`) is stored in existing databases, so it must never change; it
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
}

impl ErrorClass {
    /// The label in metrics, logs and `arauto check`; the same as the
    /// serialised form.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Retryable => "retryable",
            Self::Permanent => "permanent",
            Self::Misconfigured => "misconfigured",
            Self::Sandbox => "sandbox",
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

    const ALL: [ErrorClass; 4] = [
        ErrorClass::Retryable,
        ErrorClass::Permanent,
        ErrorClass::Misconfigured,
        ErrorClass::Sandbox,
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
        assert_eq!(serde_json::from_str::<Vec<ErrorClass>>(old)?, ALL);
        assert_eq!(serde_json::to_string(&ALL)?, old);
        Ok(())
    }
}
