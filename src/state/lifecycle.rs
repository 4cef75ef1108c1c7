//! Process facts of a running daemon, for `arauto status` and the reports:
//! its phase, uptime, last reload and running services. The supervisor
//! writes them; the control socket and the reports read them. A cluster node
//! also lends its views' freshness (jobs, history, status and ownership
//! buckets) for `arauto check`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// What the daemon is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Building the state and starting services.
    Starting,
    /// Serving.
    Running,
    /// Applying a new configuration.
    Reloading,
    /// Draining before exit.
    Stopping,
}

/// The result of the last reload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadOutcome {
    /// When it finished.
    pub at: Timestamp,
    /// Whether the new configuration is in effect.
    pub ok: bool,
    /// What was applied, or why not (with the key path at fault).
    pub message: String,
}

#[derive(Debug)]
struct InfoInner {
    phase: Phase,
    last_reload: Option<ReloadOutcome>,
    services: Vec<String>,
}

/// Reads a cluster node's views' freshness: `(view, freshness)` pairs.
pub type ViewSource = Arc<dyn Fn() -> Vec<(String, crate::queue::nats::Freshness)> + Send + Sync>;

/// Process-wide facts for `arauto status`.
pub struct RuntimeInfo {
    /// The daemon's pid.
    pub pid: u32,
    /// arauto's version.
    pub version: &'static str,
    /// When the daemon started.
    pub started_at: Timestamp,
    /// The configuration file.
    pub config_path: PathBuf,
    started: Instant,
    inner: Mutex<InfoInner>,
    views: OnceLock<ViewSource>,
}

impl std::fmt::Debug for RuntimeInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeInfo")
            .field("pid", &self.pid)
            .field("version", &self.version)
            .field("started_at", &self.started_at)
            .field("config_path", &self.config_path)
            .field("inner", &self.inner)
            .field("views", &self.views.get().is_some())
            .finish()
    }
}

impl RuntimeInfo {
    /// Facts for a daemon starting now.
    pub fn new(config_path: PathBuf) -> Self {
        Self {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION"),
            started_at: Timestamp::now(),
            config_path,
            started: Instant::now(),
            inner: Mutex::new(InfoInner {
                phase: Phase::Starting,
                last_reload: None,
                services: Vec::new(),
            }),
            views: OnceLock::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, InfoInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Time since start.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// What the daemon is doing.
    pub fn phase(&self) -> Phase {
        self.lock().phase
    }

    /// The last reload's result, if any reload happened.
    pub fn last_reload(&self) -> Option<ReloadOutcome> {
        self.lock().last_reload.clone()
    }

    /// Names of the running services.
    pub fn services(&self) -> Vec<String> {
        self.lock().services.clone()
    }

    /// Record what the daemon is doing now.
    pub fn set_phase(&self, phase: Phase) {
        self.lock().phase = phase;
    }

    /// Record the result of a reload.
    pub fn set_last_reload(&self, outcome: ReloadOutcome) {
        self.lock().last_reload = Some(outcome);
    }

    /// A cluster node: where its views' freshness is read (set once at start).
    pub fn set_view_source(&self, source: ViewSource) {
        let _ = self.views.set(source);
    }

    /// A cluster node's views, each current or stale since when and why;
    /// empty on a single node.
    pub fn view_freshness(&self) -> Vec<(String, crate::queue::nats::Freshness)> {
        self.views.get().map(|read| read()).unwrap_or_default()
    }

    /// Record the names of the running services.
    pub fn set_services(&self, services: Vec<String>) {
        self.lock().services = services;
    }
}
