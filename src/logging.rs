//! Logging setup: journald when stderr is the journal, text or JSON otherwise.
//!
//! Under systemd, stderr is connected to the journal and `$JOURNAL_STREAM` holds
//! its `device:inode`; then events go to journald over its native protocol
//! (tracing-journald), keeping structured fields queryable. Anywhere else they
//! are human-readable lines on stderr, or JSON lines with `--log-format json`.
//!
//! # Structured fields
//!
//! Code logs context with these field names ([`fields`]): `store`, `order`,
//! `notification`, `channel`, `job_id`, `plugin`, `instance`. tracing-journald
//! 0.3 upper-cases field names and prefixes them; arauto sets the prefix to
//! `ARAUTO`, so in the journal they are `ARAUTO_STORE`, `ARAUTO_ORDER`,
//! `ARAUTO_NOTIFICATION`, `ARAUTO_CHANNEL`, `ARAUTO_JOB_ID`, `ARAUTO_PLUGIN`,
//! `ARAUTO_INSTANCE` (span fields get the same prefix):
//!
//! ```text
//! journalctl -u arauto ARAUTO_STORE=loja1
//! journalctl -u arauto ARAUTO_CHANNEL=whatsapp -p warning
//! journalctl -u arauto -o verbose ARAUTO_JOB_ID=42
//! ```
//!
//! Each entry also carries `TARGET` (the Rust module), `CODE_FILE`,
//! `CODE_LINE`, `SYSLOG_IDENTIFIER=arauto`, `SPAN_NAME` for enclosing spans, and
//! `PRIORITY` (error 3, warn 4, info 5, debug 6, trace 7).
//!
//! # Levels
//!
//! A bare level in `daemon.log_level` (`"debug"`, `"trace"`, `"info"`) applies
//! to arauto's own modules (target `arauto`, which includes the plugins' own
//! log records under `arauto::plugin::guest`); dependencies stay at `warn`.
//! Without this, `trace` makes wasmtime/Cranelift write gigabytes while it
//! compiles a plugin. A dependency is logged more verbosely only when it is
//! named: `"debug,wasmtime=info"`. `RUST_LOG`, when set, is used exactly as
//! written (the usual `tracing` semantics), for developers.

use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

/// Structured field names used across arauto's logs.
pub mod fields {
    /// A store id.
    pub const STORE: &str = "store";
    /// A platform order id.
    pub const ORDER: &str = "order";
    /// A notification kind.
    pub const NOTIFICATION: &str = "notification";
    /// A channel id.
    pub const CHANNEL: &str = "channel";
    /// A queue job id.
    pub const JOB_ID: &str = "job_id";
    /// A plugin name.
    pub const PLUGIN: &str = "plugin";
    /// A plugin instance (the store or channel id running it).
    pub const INSTANCE: &str = "instance";
}

/// Prefix tracing-journald puts before every user field (`store` → `ARAUTO_STORE`).
pub const JOURNAL_FIELD_PREFIX: &str = "ARAUTO";
/// `SYSLOG_IDENTIFIER` of arauto's journal entries.
pub const SYSLOG_IDENTIFIER: &str = "arauto";

/// Where and how log events are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// journald when stderr is the journal, text otherwise.
    #[default]
    Auto,
    /// Human-readable lines on stderr.
    Text,
    /// One JSON object per line on stderr (for log shippers).
    Json,
    /// journald's native protocol (fails if journald is not reachable).
    Journald,
}

/// Logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// `RUST_LOG` or the configured level is not a valid filter.
    #[error("invalid log filter {filter:?} (from {source_name}): {reason}")]
    BadFilter {
        /// The filter text.
        filter: String,
        /// `RUST_LOG` or `daemon.log_level`.
        source_name: &'static str,
        /// The parser's complaint.
        reason: String,
    },
    /// `--log-format journald` but journald's socket is not there.
    #[error("cannot log to journald: {0}")]
    Journald(std::io::Error),
    /// A global logger was already installed.
    #[error("logging already initialised: {0}")]
    AlreadyInitialised(String),
}

/// Changes the log filter of the running process (on reload).
#[derive(Clone)]
pub struct LogHandle {
    filter: reload::Handle<EnvFilter, Registry>,
    rust_log: bool,
}

impl LogHandle {
    /// Apply `daemon.log_level` again; a no-op when `RUST_LOG` is in charge.
    pub fn set_level(&self, level: &str) -> Result<(), LoggingError> {
        if self.rust_log {
            return Ok(());
        }
        let filter = parse_filter(level, "daemon.log_level")?;
        self.filter
            .reload(filter)
            .map_err(|e| LoggingError::AlreadyInitialised(e.to_string()))
    }
}

/// The crate's own log target (a prefix of every module's, and of the plugins'
/// `arauto::plugin::guest`).
const OWN_TARGET: &str = "arauto";

/// Levels less verbose than this apply to everything; more verbose ones only to
/// arauto (see the module docs).
const DEPENDENCY_LEVEL: &str = "warn";

/// The filter directives `daemon.log_level` stands for: each bare level is
/// narrowed to arauto's own modules, with dependencies at `warn`; directives
/// naming a target are kept as written (and win for that target).
pub fn level_directives(level: &str) -> String {
    let mut explicit = Vec::new();
    let mut bare = None;
    for directive in level.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        if directive.contains('=') || directive.contains('[') {
            explicit.push(directive);
        } else {
            bare = Some(directive);
        }
    }
    let names_own_target = explicit.iter().any(|d| {
        d.split(['=', '['])
            .next()
            .is_some_and(|target| target.trim() == OWN_TARGET)
    });
    let mut out = Vec::new();
    match bare {
        Some(level) if more_verbose_than_warn(level) => {
            out.push(DEPENDENCY_LEVEL.to_owned());
            if !names_own_target {
                out.push(format!("{OWN_TARGET}={level}"));
            }
        }
        Some(level) => out.push(level.to_owned()),
        None => {}
    }
    out.extend(explicit.into_iter().map(str::to_owned));
    out.join(",")
}

fn more_verbose_than_warn(level: &str) -> bool {
    matches!(
        level.to_ascii_lowercase().as_str(),
        "info" | "debug" | "trace"
    )
}

fn parse_filter(text: &str, source_name: &'static str) -> Result<EnvFilter, LoggingError> {
    let directives = match source_name {
        // RUST_LOG keeps its usual meaning.
        "RUST_LOG" => text.to_owned(),
        _ => level_directives(text),
    };
    EnvFilter::builder()
        .parse(&directives)
        .map_err(|e| LoggingError::BadFilter {
            filter: text.to_owned(),
            source_name,
            reason: e.to_string(),
        })
}

/// Whether stderr is connected to the journal (`$JOURNAL_STREAM` = stderr's `device:inode`).
pub fn stderr_is_journal() -> bool {
    let Some(expected) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = expected.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    std::fs::File::from(fd)
        .metadata()
        .is_ok_and(|meta| meta.dev() == dev && meta.ino() == ino)
}

/// Install the global logger. `level` is `daemon.log_level`; a non-empty
/// `RUST_LOG` takes precedence (and stays in charge across reloads).
pub fn init(format: LogFormat, level: &str) -> Result<LogHandle, LoggingError> {
    let rust_log = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let filter = match &rust_log {
        Some(text) => parse_filter(text, "RUST_LOG")?,
        None => parse_filter(level, "daemon.log_level")?,
    };
    let (filter_layer, filter_handle) = reload::Layer::new(filter);

    type Output = Box<
        dyn Layer<tracing_subscriber::layer::Layered<reload::Layer<EnvFilter, Registry>, Registry>>
            + Send
            + Sync,
    >;
    let format = match format {
        LogFormat::Auto if stderr_is_journal() => LogFormat::Journald,
        LogFormat::Auto => LogFormat::Text,
        other => other,
    };
    let output: Output = match format {
        LogFormat::Journald => Box::new(
            tracing_journald::layer()
                .map_err(LoggingError::Journald)?
                .with_field_prefix(Some(JOURNAL_FIELD_PREFIX.to_owned()))
                .with_syslog_identifier(SYSLOG_IDENTIFIER.to_owned()),
        ),
        LogFormat::Json => Box::new(
            tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(true)
                .with_writer(std::io::stderr),
        ),
        LogFormat::Text | LogFormat::Auto => Box::new(
            tracing_subscriber::fmt::layer()
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(std::io::stderr),
        ),
    };
    tracing_subscriber::registry()
        .with(filter_layer)
        .with(output)
        .try_init()
        .map_err(|e| LoggingError::AlreadyInitialised(e.to_string()))?;
    Ok(LogHandle {
        filter: filter_handle,
        rust_log: rust_log.is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_verbose_level_applies_to_arauto_only() {
        assert_eq!(level_directives("debug"), "warn,arauto=debug");
        assert_eq!(level_directives("trace"), "warn,arauto=trace");
        assert_eq!(level_directives("info"), "warn,arauto=info");
        assert_eq!(level_directives("TRACE"), "warn,arauto=TRACE");
    }

    #[test]
    fn quiet_levels_apply_to_everything() {
        assert_eq!(level_directives("warn"), "warn");
        assert_eq!(level_directives("error"), "error");
        assert_eq!(level_directives("off"), "off");
    }

    #[test]
    fn named_targets_are_kept_and_win() {
        assert_eq!(
            level_directives("debug,wasmtime=info"),
            "warn,arauto=debug,wasmtime=info"
        );
        assert_eq!(level_directives("arauto=debug,info"), "warn,arauto=debug");
        assert_eq!(level_directives("arauto::poll=trace"), "arauto::poll=trace");
    }

    #[test]
    fn the_built_filter_keeps_dependencies_at_warn() {
        let filter = parse_filter("trace", "daemon.log_level").unwrap();
        let shown = filter.to_string();
        assert!(shown.contains("arauto=trace"), "{shown}");
        assert!(shown.contains("warn"), "{shown}");
        assert!(!shown.starts_with("trace"), "{shown}");
        // RUST_LOG is taken literally.
        let raw = parse_filter("trace", "RUST_LOG").unwrap();
        assert_eq!(raw.to_string(), "trace");
    }
}
