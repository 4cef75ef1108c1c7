//! The control protocol: one JSON object per line each way. A client sends a
//! [`Request`], the daemon answers with one [`Response`]; a connection may carry
//! several requests in turn.
//!
//! ```text
//! → {"request":"status"}
//! ← {"response":"status","pid":4242,"version":"0.1.0",…}
//! ```
//!
//! New commands add variants here (queue list/show/cancel/retry/pause/resume,
//! check, report…). A daemon that does not know a request answers with
//! [`Response::Error`], so an upgraded CLI talking to an older daemon gets a
//! clear message instead of a hang.

use std::path::PathBuf;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::daemon::{Phase, ReloadOutcome};

/// Largest request or response line accepted, in bytes.
pub const MAX_LINE: usize = 1024 * 1024;

/// What a client asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "kebab-case")]
pub enum Request {
    /// Is the daemon up, and what is it running?
    Status,
}

/// What the daemon answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "response", rename_all = "kebab-case")]
pub enum Response {
    /// Answer to [`Request::Status`].
    Status(StatusReport),
    /// The request could not be served.
    Error {
        /// Why.
        message: String,
    },
}

/// The daemon's status. Never contains secrets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// The daemon's pid.
    pub pid: u32,
    /// arauto's version.
    pub version: String,
    /// Starting, running, reloading or stopping.
    pub phase: Phase,
    /// When the daemon started.
    pub started_at: Timestamp,
    /// Seconds since start.
    pub uptime_secs: u64,
    /// The configuration file.
    pub config_path: PathBuf,
    /// When the configuration in effect was loaded.
    pub config_loaded_at: Timestamp,
    /// `--dry-run`: nothing is sent.
    pub dry_run: bool,
    /// The configured stores.
    pub stores: Vec<StoreSummary>,
    /// The configured channels.
    pub channels: Vec<ChannelSummary>,
    /// The last reload, if there was one.
    pub last_reload: Option<ReloadOutcome>,
    /// Running services.
    pub services: Vec<String>,
}

/// A store as `status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreSummary {
    /// Store id.
    pub id: String,
    /// Free text.
    pub description: Option<String>,
    /// Connector plugin.
    pub platform: String,
    /// Polled or not.
    pub enabled: bool,
    /// `"5m"`.
    pub poll_interval: String,
    /// Channel ids.
    pub channels: Vec<String>,
}

/// A channel as `status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelSummary {
    /// Channel id.
    pub id: String,
    /// Sender plugin.
    pub plugin: String,
    /// Free text.
    pub description: Option<String>,
}
