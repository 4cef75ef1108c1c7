//! Configuration diagnostics: every problem names where it came from (file and
//! line, or environment variable), the full key path and the offending value.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where a configuration value (or a problem with it) comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The configuration file, with the 1-based line and column when known.
    File {
        /// The configuration file.
        path: PathBuf,
        /// `(line, column)`, both 1-based.
        position: Option<(usize, usize)>,
    },
    /// An `ARAUTO_…` environment variable overriding the file.
    Env {
        /// The variable's name as it was set, e.g. `ARAUTO_DAEMON__LOG_LEVEL`.
        var: String,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File {
                path,
                position: Some((line, column)),
            } => {
                write!(f, "{}:{line}:{column}", path.display())
            }
            Self::File {
                path,
                position: None,
            } => write!(f, "{}", path.display()),
            Self::Env { var } => write!(f, "environment variable {var}"),
        }
    }
}

/// How serious a [`ConfigError`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// The configuration is rejected.
    Error,
    /// Accepted, but probably not what was meant.
    Warning,
}

/// One problem found in a configuration: an error or a warning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// Error or warning.
    pub severity: Severity,
    /// Where the offending value was written.
    pub origin: Origin,
    /// Full key path, e.g. `stores.loja1.poll_interval`; empty for file-level problems
    /// (unreadable file, TOML syntax).
    pub key: String,
    /// The offending value as written (TOML-style, strings quoted); `None` when the
    /// problem is a missing or unknown key, or the value is a secret.
    pub value: Option<String>,
    /// What is wrong and, where possible, how to fix it.
    pub message: String,
    /// For syntax errors: the source line, to show where the parser stopped.
    pub source_line: Option<String>,
}

impl ConfigError {
    /// True for [`Severity::Error`].
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        write!(f, "{}: ", self.origin)?;
        match (&self.key[..], &self.value) {
            ("", _) => {}
            (key, Some(value)) => write!(f, "{key} = {value}: ")?,
            (key, None) => write!(f, "{key}: ")?,
        }
        f.write_str(&self.message)?;
        if let Some(line) = &self.source_line {
            write!(f, "\n      | {line}")?;
        }
        Ok(())
    }
}

/// Everything wrong with one configuration file, reported together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors {
    /// The configuration file that was loaded.
    pub path: PathBuf,
    /// The errors (never empty).
    pub errors: Vec<ConfigError>,
    /// Warnings found alongside the errors.
    pub warnings: Vec<ConfigError>,
}

impl ConfigErrors {
    /// A single file-level error (e.g. the file cannot be read).
    pub(crate) fn file_level(path: &Path, message: String) -> Self {
        Self {
            path: path.to_path_buf(),
            errors: vec![ConfigError {
                severity: Severity::Error,
                origin: Origin::File {
                    path: path.to_path_buf(),
                    position: None,
                },
                key: String::new(),
                value: None,
                message,
                source_line: None,
            }],
            warnings: Vec::new(),
        }
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        write!(
            f,
            "invalid configuration {} ({n} error{}):",
            self.path.display(),
            if n == 1 { "" } else { "s" }
        )?;
        for error in &self.errors {
            write!(f, "\n  {error}")?;
        }
        for warning in &self.warnings {
            write!(f, "\n  {warning}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
