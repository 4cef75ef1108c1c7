//! The daemon's lifecycle: start, serve, reload on SIGHUP, drain on SIGTERM.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::lock::{InstanceLock, LockError};
use super::notify::Notifier;
use super::service::{Resources, Service, ServiceError, ServiceProvider, ServiceSet};
use super::signals::{Control, SignalSource};
use super::state::{BuildError, BuildOptions, Purpose, State, StateHandle, build};
use super::watchdog::{self, Heartbeats};
use crate::config::{self, Config};
use crate::logging::LogHandle;
use crate::plugin::{HostConfig, PluginHost};

/// How `arauto run` was invoked; fixed for the process's life.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The configuration file, re-read on every reload.
    pub config_path: PathBuf,
    /// `--dry-run`.
    pub dry_run: bool,
}

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

/// Process-wide facts for `arauto status`.
#[derive(Debug)]
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

    pub(crate) fn set_phase(&self, phase: Phase) {
        self.lock().phase = phase;
    }

    pub(crate) fn set_last_reload(&self, outcome: ReloadOutcome) {
        self.lock().last_reload = Some(outcome);
    }

    pub(crate) fn set_services(&self, services: Vec<String>) {
        self.lock().services = services;
    }
}

/// Why the daemon stopped with a failure.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    /// The configuration does not build.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// Another daemon uses the state directory.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// A directory could not be created.
    #[error("cannot create directory {path}: {source}")]
    Directory {
        /// The directory (`daemon.cache_dir`…).
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A startup hook failed (e.g. the database would not open).
    #[error("startup failed: {0}")]
    Startup(String),
    /// A service could not be prepared at startup.
    #[error("cannot start service {service}: {error}")]
    ServiceStart {
        /// The service.
        service: String,
        /// Why.
        error: String,
    },
    /// A service failed while running.
    #[error("service {service} failed: {error}")]
    ServiceFailed {
        /// The service.
        service: String,
        /// Why.
        error: String,
    },
    /// Services were still busy when `shutdown_timeout` ran out.
    #[error("shutdown timed out after {timeout}; abandoned: {}", services.join(", "))]
    ShutdownTimeout {
        /// `daemon.shutdown_timeout`.
        timeout: String,
        /// Services still running at the deadline.
        services: Vec<String>,
    },
}

/// What an [`Runtime::on_start`] hook gets: the first state, and places to put
/// shared resources and service providers.
pub struct Startup<'a> {
    /// The state the daemon starts with.
    pub state: &'a Arc<State>,
    resources: &'a mut Resources,
    providers: &'a mut Vec<ServiceProvider>,
    reload_hooks: &'a mut Vec<ReloadHook>,
}

impl Startup<'_> {
    /// Share `value` with every service ([`crate::daemon::ServiceContext::resource`]).
    pub fn provide<T: Send + Sync + 'static>(&mut self, value: T) {
        self.resources.insert(value);
    }

    /// Add a source of services (also called again on every reload).
    pub fn add_service_provider(&mut self, provider: ServiceProvider) {
        self.providers.push(provider);
    }

    /// Run `hook` with the new state after every reload that was applied:
    /// for a resource opened here that keeps a setting of its own (services
    /// are rebuilt from the new state; resources live as long as the daemon).
    pub fn on_reload(&mut self, hook: impl Fn(&State) + Send + Sync + 'static) {
        self.reload_hooks.push(Box::new(hook));
    }
}

/// A reload hook; see [`Startup::on_reload`].
pub type ReloadHook = Box<dyn Fn(&State) + Send + Sync>;

/// A startup hook; see [`Runtime::on_start`].
pub type StartupHook = Box<dyn FnOnce(&mut Startup<'_>) -> Result<(), ServiceError> + Send>;

/// The daemon: builds the state, runs the services, reacts to signals.
pub struct Runtime {
    options: RunOptions,
    providers: Vec<ServiceProvider>,
    hooks: Vec<StartupHook>,
    reload_hooks: Vec<ReloadHook>,
    log: Option<LogHandle>,
    notifier: Notifier,
    host: Option<PluginHost>,
}

impl Runtime {
    /// A runtime with the built-in services (the control socket).
    pub fn new(options: RunOptions) -> Self {
        Self {
            options,
            providers: vec![crate::control::service_provider()],
            hooks: Vec::new(),
            reload_hooks: Vec::new(),
            log: None,
            notifier: Notifier::default(),
            host: None,
        }
    }

    /// Apply `daemon.log_level` through `log` on reload.
    pub fn with_log_handle(mut self, log: LogHandle) -> Self {
        self.log = Some(log);
        self
    }

    /// Add a source of services (called at start and on every reload).
    pub fn add_service_provider(&mut self, provider: ServiceProvider) {
        self.providers.push(provider);
    }

    /// Run `hook` once at startup, after the state directory is locked and
    /// before any service starts: the place to open the queue database (never
    /// opened by `validate`) and register the services that use it. An error
    /// aborts the start.
    pub fn on_start(
        &mut self,
        hook: impl FnOnce(&mut Startup<'_>) -> Result<(), ServiceError> + Send + 'static,
    ) {
        self.hooks.push(Box::new(hook));
    }

    fn services_for(&self, state: &Arc<State>) -> Vec<Box<dyn Service>> {
        self.providers
            .iter()
            .flat_map(|provider| provider(state))
            .collect()
    }

    /// Run until SIGTERM/SIGINT (`Ok`) or a failure (`Err`, exit status 1).
    pub async fn run(mut self, config: Config) -> Result<(), RunError> {
        let mut signals = SignalSource::install().map_err(RunError::Signals)?;
        let options = BuildOptions {
            purpose: Purpose::Run,
            dry_run: self.options.dry_run,
        };
        create_private_dir(&config.daemon.cache_dir)?;
        let host = PluginHost::new(HostConfig::with_cache_dir(&config.daemon.cache_dir))
            .map_err(|e| RunError::Startup(format!("cannot start the plugin host: {e}")))?;
        let state = Arc::new(build(config, &options, &host).await?);
        for skipped in &state.skipped {
            tracing::error!(
                component = %skipped.component,
                "{} is not running: {}; everything else starts. Fix or replace the file \
                 (`arauto validate` fails until then), then systemctl reload arauto",
                skipped.component,
                skipped.message
            );
        }
        self.host = Some(host);
        let daemon = &state.config.daemon;
        let _lock = InstanceLock::acquire(&daemon.state_dir)?;

        let mut resources = Resources::default();
        for hook in std::mem::take(&mut self.hooks) {
            let mut startup = Startup {
                state: &state,
                resources: &mut resources,
                providers: &mut self.providers,
                reload_hooks: &mut self.reload_hooks,
            };
            hook(&mut startup).map_err(|e| RunError::Startup(e.to_string()))?;
        }

        let info = Arc::new(RuntimeInfo::new(self.options.config_path.clone()));
        let handle = StateHandle::new(state.clone());
        let heartbeats = Heartbeats::default();
        let (exits_tx, mut exits) = mpsc::unbounded_channel();
        let mut services = ServiceSet::new(
            handle.clone(),
            info.clone(),
            resources,
            heartbeats.clone(),
            exits_tx,
        );
        let prepared =
            services
                .prepare(self.services_for(&state))
                .await
                .map_err(|(service, error)| RunError::ServiceStart {
                    service,
                    error: error.to_string(),
                })?;
        services.commit(prepared, stop_timeout(&state)).await;

        let watchdog_stop = CancellationToken::new();
        let watchdog = sd_notify::watchdog_enabled();
        tokio::spawn(watchdog::run(
            heartbeats,
            self.notifier.clone(),
            watchdog,
            watchdog_stop.clone(),
        ));

        info.set_phase(Phase::Running);
        let status = status_line(&state);
        tracing::info!(
            pid = info.pid,
            config = %self.options.config_path.display(),
            dry_run = self.options.dry_run,
            "arauto {} ready: {status}",
            info.version
        );
        log_components(&state);
        self.notifier.ready(&status);

        let outcome = loop {
            tokio::select! {
                control = signals.next() => match control {
                    Some(Control::Reload) => {
                        self.reload(&handle, &mut services, &info, &options).await;
                    }
                    Some(Control::Shutdown { signal }) => {
                        tracing::info!("{signal} received: shutting down (a second {signal} exits at once)");
                        break Ok(());
                    }
                    None => break Ok(()),
                },
                Some(exit) = exits.recv() => {
                    services.remove_exited(&exit.name);
                    match exit.result {
                        Ok(()) => tracing::info!(service = %exit.name, "service finished"),
                        Err(error) => {
                            tracing::error!(service = %exit.name, "service failed: {error}; stopping arauto");
                            break Err(RunError::ServiceFailed { service: exit.name, error });
                        }
                    }
                }
            }
        };

        signals.arm_immediate_exit();
        info.set_phase(Phase::Stopping);
        let state = handle.load();
        let timeout = stop_timeout(&state);
        self.notifier.stopping("stopping: finishing in-flight work");
        tracing::info!(
            "stopping: waiting up to {} for in-flight work",
            config::format_duration(state.config.daemon.shutdown_timeout)
        );
        let stragglers = services.shutdown(timeout).await;
        watchdog_stop.cancel();
        if !stragglers.is_empty() {
            let error = RunError::ShutdownTimeout {
                timeout: config::format_duration(state.config.daemon.shutdown_timeout),
                services: stragglers,
            };
            tracing::error!("{error}");
            return Err(error);
        }
        tracing::info!("stopped");
        outcome
    }

    async fn reload(
        &self,
        handle: &StateHandle,
        services: &mut ServiceSet,
        info: &RuntimeInfo,
        options: &BuildOptions,
    ) {
        self.notifier.reloading();
        info.set_phase(Phase::Reloading);
        tracing::info!(config = %self.options.config_path.display(), "SIGHUP received: reloading the configuration");
        let outcome = match self.try_reload(handle, services, options).await {
            Ok(message) => {
                tracing::info!("reload applied: {message}");
                log_components(&handle.load());
                ReloadOutcome {
                    at: Timestamp::now(),
                    ok: true,
                    message,
                }
            }
            Err(message) => {
                tracing::error!(
                    "reload failed, still running the previous configuration: {message}"
                );
                ReloadOutcome {
                    at: Timestamp::now(),
                    ok: false,
                    message,
                }
            }
        };
        let status = if outcome.ok {
            status_line(&handle.load())
        } else {
            format!(
                "{} (reload failed: {})",
                status_line(&handle.load()),
                outcome.message
            )
        };
        info.set_last_reload(outcome);
        info.set_phase(Phase::Running);
        self.notifier.ready(&status);
    }

    async fn try_reload(
        &self,
        handle: &StateHandle,
        services: &mut ServiceSet,
        options: &BuildOptions,
    ) -> Result<String, String> {
        let path = self.options.config_path.clone();
        let loaded = tokio::task::spawn_blocking(move || config::load(Some(&path)))
            .await
            .map_err(|e| format!("configuration loader crashed: {e}"))?;
        let config = match loaded {
            Ok(config) => config,
            Err(errors) => {
                for error in &errors.errors {
                    tracing::error!(key = %error.key, "{error}");
                }
                let first = errors
                    .errors
                    .first()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                let more = errors.errors.len().saturating_sub(1);
                return Err(if more > 0 {
                    format!("{first} (and {more} more)")
                } else {
                    first
                });
            }
        };
        for warning in config.warnings() {
            tracing::warn!(key = %warning.key, "{warning}");
        }
        let old = handle.load();
        restart_only_changes(&old.config, &config)?;
        let log_level = config.daemon.log_level.clone();
        let host = self
            .host
            .as_ref()
            .ok_or_else(|| "the plugin host is not running".to_owned())?;
        let options = BuildOptions {
            purpose: Purpose::Reload,
            ..*options
        };
        let state = build(config, &options, host)
            .await
            .map_err(|e| e.to_string())?;
        let state = Arc::new(state);
        let prepared = services
            .prepare(self.services_for(&state))
            .await
            .map_err(|(service, error)| format!("cannot start service {service}: {error}"))?;
        let restarted = prepared.starting();
        handle.replace(state.clone());
        for hook in &self.reload_hooks {
            hook(&state);
        }
        if let Some(log) = &self.log
            && let Err(error) = log.set_level(&log_level)
        {
            tracing::warn!("log level not changed: {error}");
        }
        services.commit(prepared, stop_timeout(&state)).await;
        let mut message = status_line(&state);
        if !restarted.is_empty() {
            message.push_str(&format!("; (re)started {}", restarted.join(", ")));
        }
        Ok(message)
    }
}

/// Keys that only take effect on restart; changing them fails the reload.
fn restart_only_changes(old: &Config, new: &Config) -> Result<(), String> {
    let mut changed = Vec::new();
    if old.daemon.state_dir != new.daemon.state_dir {
        changed.push(format!(
            "daemon.state_dir ({} → {})",
            old.daemon.state_dir.display(),
            new.daemon.state_dir.display()
        ));
    }
    if old.daemon.cache_dir != new.daemon.cache_dir {
        changed.push(format!(
            "daemon.cache_dir ({} → {})",
            old.daemon.cache_dir.display(),
            new.daemon.cache_dir.display()
        ));
    }
    if changed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} can only change with a restart (systemctl restart arauto)",
            changed.join(" and ")
        ))
    }
}

fn stop_timeout(state: &State) -> Duration {
    state.config.daemon.shutdown_timeout.unsigned_abs()
}

fn create_private_dir(path: &Path) -> Result<(), RunError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|source| RunError::Directory {
            path: path.to_path_buf(),
            source,
        })
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

/// One entry per store and channel, so `journalctl ARAUTO_STORE=…` shows
/// when and how each was (re)configured.
fn log_components(state: &State) {
    use crate::logging::fields;
    for s in state.config.stores.values() {
        tracing::info!(
            { fields::STORE } = %s.id,
            { fields::PLUGIN } = %s.platform,
            enabled = s.enabled,
            "store {}: {}, every {}, channels: {}",
            s.id,
            s.platform,
            config::format_duration(s.poll_interval),
            if s.channels.is_empty() { "none".to_owned() } else { s.channels.join(", ") }
        );
    }
    for c in state.config.channels.values() {
        tracing::info!({ fields::CHANNEL } = %c.id, { fields::PLUGIN } = %c.plugin, "channel {}: {}", c.id, c.plugin);
    }
}

/// One line about what runs, for `STATUS=` and logs.
fn status_line(state: &State) -> String {
    let config = &state.config;
    let enabled = config.enabled_stores().count();
    let disabled = config.stores.len() - enabled;
    let mut line = format!(
        "running: {}{}, {}",
        plural(enabled, "store"),
        if disabled > 0 {
            format!(" (+{disabled} disabled)")
        } else {
            String::new()
        },
        plural(config.channels.len(), "channel")
    );
    if !state.skipped.is_empty() {
        let names: Vec<&str> = state.skipped.iter().map(|s| s.component.as_str()).collect();
        line.push_str(&format!(
            "; not running (plugin does not load): {}",
            names.join(", ")
        ));
    }
    if state.dry_run {
        line.push_str(" [dry run: nothing is sent]");
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::{ServiceContext, ServiceSpec, ServiceTask};

    struct Marker(&'static str);

    /// Reads the startup resource, then fails on purpose so `run` returns.
    struct Reporter;

    #[async_trait::async_trait]
    impl Service for Reporter {
        fn name(&self) -> &str {
            "reporter"
        }
        fn spec(&self) -> ServiceSpec {
            ServiceSpec::new(())
        }
        async fn prepare(
            self: Box<Self>,
            ctx: ServiceContext,
        ) -> Result<ServiceTask, ServiceError> {
            let marker = ctx.resource::<Marker>().map_or("none", |m| m.0);
            Ok(Box::pin(async move { Err(format!("saw {marker}").into()) }))
        }
    }

    #[tokio::test]
    async fn startup_hooks_share_resources_and_a_failing_service_stops_the_daemon() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("arauto.toml");
        let text = format!(
            "[daemon]\nstate_dir = {:?}\ncache_dir = {:?}\ncontrol_socket = {:?}\n",
            dir.path().join("state").display().to_string(),
            dir.path().join("cache").display().to_string(),
            dir.path().join("control.sock").display().to_string(),
        );
        std::fs::write(&path, text).unwrap();
        let config = config::load_with_env(Some(&path), Vec::new()).unwrap();

        let mut runtime = Runtime::new(RunOptions {
            config_path: path,
            dry_run: false,
        });
        runtime.on_start(|startup| {
            assert!(startup.state.config.stores.is_empty());
            startup.provide(Marker("the database"));
            startup
                .add_service_provider(Arc::new(|_| vec![Box::new(Reporter) as Box<dyn Service>]));
            Ok(())
        });
        match runtime.run(config).await {
            Err(RunError::ServiceFailed { service, error }) => {
                assert_eq!(service, "reporter");
                assert_eq!(error, "saw the database");
            }
            other => panic!("expected the reporter to fail, got {other:?}"),
        }
        // Stopped cleanly: lock released, control socket removed.
        assert!(InstanceLock::acquire(&dir.path().join("state")).is_ok());
        assert!(!dir.path().join("control.sock").exists());
    }

    #[tokio::test]
    async fn a_failing_startup_hook_aborts_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("arauto.toml");
        let text = format!(
            "[daemon]\nstate_dir = {:?}\ncache_dir = {:?}\ncontrol_socket = {:?}\n",
            dir.path().join("state").display().to_string(),
            dir.path().join("cache").display().to_string(),
            dir.path().join("control.sock").display().to_string(),
        );
        std::fs::write(&path, text).unwrap();
        let config = config::load_with_env(Some(&path), Vec::new()).unwrap();
        let mut runtime = Runtime::new(RunOptions {
            config_path: path,
            dry_run: false,
        });
        runtime.on_start(|_| Err("queue database is newer than this arauto".into()));
        match runtime.run(config).await {
            Err(RunError::Startup(message)) => assert!(message.contains("newer"), "{message}"),
            other => panic!("expected a startup error, got {other:?}"),
        }
        assert!(
            !dir.path().join("control.sock").exists(),
            "no service may start after a failed hook"
        );
    }
}
