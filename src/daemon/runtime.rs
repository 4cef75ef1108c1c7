//! The daemon's lifecycle: start, serve, reload on SIGHUP, drain on SIGTERM.
//!
//! With `[cluster]` the node connects to NATS, opens the JetStream state
//! instead of the redb file (no state-directory lock: the leases decide who
//! writes), and runs only the pollers and dispatchers of the stores and
//! channels it holds the lease of; a change of what it holds is applied as a
//! reload's keyed diff (without reading the configuration again). On SIGTERM
//! the services drain first, then every lease is released at once.

use std::collections::BTreeSet;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::lock::{InstanceLock, LockError};
use super::notify::Notifier;
use super::pipeline::Pipeline;
use super::services::{ServiceEnv, ServiceKey, StartError, desired, desired_owned, owned_resource};
use super::signals::{Control, SignalSource};
use super::supervisor::{Prepared, Supervisor, poll_exit_report};
use super::watchdog;
use crate::cluster::connect::{self, ConnectError};
use crate::cluster::ownership::{Ownership, OwnershipError, OwnershipOptions, Resource};
use crate::cluster::{channel_counts, push_forward};
use crate::config::cluster::ClusterConfig;
use crate::config::{self, Config, ConfigErrors};
use crate::heartbeat::Heartbeats;
use crate::logging::LogHandle;
use crate::plugin::{HostConfig, HostError, PluginHost};
use crate::poll::scheduler::{PollEnv, PollScheduler};
use crate::queue::Fence;
use crate::queue::nats::{NatsOptions, NatsStore};
use crate::state::{
    BuildError, BuildOptions, Phase, ReloadOutcome, RuntimeInfo, State, StateHandle, build,
};

/// How `arauto run` was invoked; fixed for the process's life.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The configuration file, re-read on every reload.
    pub config_path: PathBuf,
    /// `--dry-run`.
    pub dry_run: bool,
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
    /// The plugin host could not start.
    #[error("startup failed: cannot start the plugin host: {0}")]
    PluginHost(#[source] HostError),
    /// The state database would not open.
    #[error("startup failed: {0}")]
    Database(#[from] crate::queue::Error),
    /// The NATS cluster (`[cluster]`) could not be reached.
    #[error("startup failed: {0}")]
    Cluster(#[from] ConnectError),
    /// The cluster's ownership buckets could not be used.
    #[error("startup failed: {0}")]
    Ownership(#[from] OwnershipError),
    /// A start-up step against the NATS cluster never answered.
    #[error(
        "startup failed: {step} did not finish within {limit:?}, {attempts} times in a row \
         (is the NATS cluster up and does it have a JetStream leader?)"
    )]
    ClusterStartTimeout {
        /// The step, e.g. "opening the cluster state".
        step: &'static str,
        /// The bound of each attempt.
        limit: Duration,
        /// How many attempts timed out.
        attempts: u32,
    },
    /// A service could not start.
    #[error("cannot start service {service}: {error}")]
    ServiceStart {
        /// The service.
        service: ServiceKey,
        /// Why.
        error: StartError,
    },
    /// A service panicked while running.
    #[error("service {service} failed: {error}")]
    ServiceFailed {
        /// The service.
        service: ServiceKey,
        /// The panic.
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

/// Why a reload was rejected; the previous configuration keeps running.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The configuration loader itself crashed.
    #[error("configuration loader crashed: {0}")]
    LoaderCrashed(#[from] tokio::task::JoinError),
    /// The file does not load: the first error, and how many more.
    #[error("{}", first_of(.0))]
    Config(ConfigErrors),
    /// Keys that only a restart can change were changed.
    #[error("{} can only change with a restart (systemctl restart arauto)", .0.join(" and "))]
    RestartOnly(Vec<String>),
    /// The configuration does not build (plugins, templates…).
    #[error(transparent)]
    Build(#[from] BuildError),
    /// A new or moved service could not start.
    #[error("cannot start service {service}: {error}")]
    ServiceStart {
        /// The service.
        service: ServiceKey,
        /// Why.
        error: StartError,
    },
}

/// "first error (and N more)".
fn first_of(errors: &ConfigErrors) -> String {
    let first = errors
        .errors
        .first()
        .map(ToString::to_string)
        .unwrap_or_default();
    match errors.errors.len().saturating_sub(1) {
        0 => first,
        more => format!("{first} (and {more} more)"),
    }
}

/// Run the daemon on `config` until SIGTERM/SIGINT (`Ok`) or a failure
/// (`Err`, exit status 1). `log` applies `daemon.log_level` on reload.
pub async fn run(
    options: RunOptions,
    config: Config,
    log: Option<LogHandle>,
) -> Result<(), RunError> {
    let mut signals = SignalSource::install().map_err(RunError::Signals)?;
    let notifier = Notifier::default();
    create_private_dir(&config.daemon.cache_dir)?;
    let host = PluginHost::new(HostConfig::with_cache_dir(&config.daemon.cache_dir))
        .map_err(RunError::PluginHost)?;
    let build_options = BuildOptions {
        skip_unloadable_plugins: true,
        dry_run: options.dry_run,
    };
    let state = Arc::new(build(config, &build_options, &host).await?);
    for skipped in &state.skipped {
        tracing::error!(
            component = %skipped.component,
            "{} is not running: {}; everything else starts. Fix or replace the file \
             (`arauto validate` fails until then), then systemctl reload arauto",
            skipped.component,
            skipped.message
        );
    }
    // One node: the state directory's lock makes it the only writer. A
    // cluster node writes to JetStream under its leases instead.
    let (_lock, pipeline, node) = match state.config.cluster.clone() {
        None => {
            let lock = InstanceLock::acquire(&state.config.daemon.state_dir)?;
            (Some(lock), Pipeline::open(&state, host)?, None)
        }
        Some(cluster) => {
            let (pipeline, node) = ClusterNode::start(&state, &cluster, host).await?;
            (None, pipeline, Some(node))
        }
    };
    let mut owned = node.as_ref().map(|node| node.ownership.owned());

    let info = Arc::new(RuntimeInfo::new(options.config_path.clone()));
    if let Some(node) = &node {
        info.set_view_source(node.view_source());
    }
    let (exits_tx, mut exits) = mpsc::unbounded_channel();
    let state_handle = StateHandle::new(state.clone());
    let heartbeats = Heartbeats::default();
    let polls = PollScheduler::start(
        PollEnv {
            state: state_handle.clone(),
            db: pipeline.db.clone(),
            metrics: pipeline.metrics.clone(),
            clock: pipeline.clock.clone(),
            idle: pipeline.idle.clone(),
            gate: pipeline.sweeps.clone(),
            pushes: pipeline.pushes.clone(),
            heartbeats: heartbeats.clone(),
        },
        poll_exit_report(exits_tx.clone()),
    );
    pipeline.pushes.set_waker({
        let polls = polls.clone();
        Arc::new(move |store: &str| polls.wake(store))
    });
    let env = ServiceEnv {
        pipeline,
        state: state_handle,
        runtime: info.clone(),
        heartbeats,
        polls,
    };
    let mut services = Supervisor::new(info.clone(), exits_tx);
    let first_owned = current(owned.as_ref());
    if let (Some(node), Some(first)) = (&node, &first_owned) {
        node.ownership.services_starting(first);
    }
    let prepared = prepare(&services, &env, &state, first_owned.as_ref())
        .map_err(|(service, error)| RunError::ServiceStart { service, error })?;
    services.commit(prepared, stop_timeout(&state)).await;
    if let Some(node) = &node {
        node.ownership
            .services_running(&running_resources(&services));
    }

    let watchdog_stop = CancellationToken::new();
    tokio::spawn(watchdog::run(
        env.heartbeats.clone(),
        notifier.clone(),
        sd_notify::watchdog_enabled(),
        watchdog_stop.clone(),
    ));

    info.set_phase(Phase::Running);
    let status = status_line(&state);
    tracing::info!(
        pid = info.pid,
        config = %options.config_path.display(),
        dry_run = options.dry_run,
        "arauto {} ready: {status}",
        info.version
    );
    notifier.ready(&status);
    // After READY: one line per store is 100,000 lines for 100,000 stores,
    // which systemd need not wait for.
    log_components(&state);

    let reloader = Reloader {
        options: &options,
        env: &env,
        log: log.as_ref(),
        notifier: &notifier,
        node: node.as_ref(),
    };
    let outcome = loop {
        tokio::select! {
            control = signals.next() => match control {
                Some(Control::Reload) => reloader.reload(&mut services).await,
                Some(Control::Shutdown { signal }) => {
                    tracing::info!("{signal} received: shutting down (a second {signal} exits at once)");
                    break Ok(());
                }
                None => break Ok(()),
            },
            Some(now_owned) = owned_changed(&mut owned) => {
                if let Some(node) = &node {
                    node.apply(&now_owned, &env, &mut services).await;
                }
            }
            Some(exit) = exits.recv() => {
                services.remove_exited(&exit);
                if let Some(node) = &node {
                    node.ownership.services_running(&running_resources(&services));
                }
                match exit.panic {
                    None => tracing::info!(service = %exit.key, "service finished"),
                    Some(error) => {
                        tracing::error!(service = %exit.key, "service failed: {error}; stopping arauto");
                        break Err(RunError::ServiceFailed { service: exit.key, error });
                    }
                }
            }
        }
    };

    signals.arm_immediate_exit();
    info.set_phase(Phase::Stopping);
    let state = env.state.load();
    let timeout = stop_timeout(&state);
    notifier.stopping("stopping: finishing in-flight work");
    tracing::info!(
        "stopping: waiting up to {} for in-flight work",
        config::format_duration(state.config.daemon.shutdown_timeout)
    );
    let stragglers = services.shutdown(timeout).await;
    // Only once nothing of this node sends or polls any more: the other
    // nodes take over the moment the leases are released.
    if let Some(node) = node {
        node.release().await;
    }
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

/// Start what `state` asks for and `services` does not run yet. (What a
/// running service keeps, such as a metrics address that must be loopback
/// unless allowed, the configuration itself refuses when it loads.)
fn prepare(
    services: &Supervisor,
    env: &ServiceEnv,
    state: &State,
    owned: Option<&BTreeSet<Resource>>,
) -> Result<Prepared, (ServiceKey, StartError)> {
    let keys = match owned {
        None => desired(state),
        Some(owned) => desired_owned(state, owned),
    };
    services.prepare(keys, |key, shutdown| env.start(key, shutdown))
}

/// What a cluster node holds now; `None` on one node (it runs everything).
fn current(owned: Option<&watch::Receiver<BTreeSet<Resource>>>) -> Option<BTreeSet<Resource>> {
    owned.map(|owned| owned.borrow().clone())
}

/// The next change of what the node holds; never on one node.
async fn owned_changed(
    owned: &mut Option<watch::Receiver<BTreeSet<Resource>>>,
) -> Option<BTreeSet<Resource>> {
    if let Some(receiver) = owned
        && receiver.changed().await.is_ok()
    {
        return Some(receiver.borrow_and_update().clone());
    }
    std::future::pending().await
}

/// The stores and channels whose pollers and dispatchers run now: their
/// leases are not deleted before these stop (two-phase hand-over).
fn running_resources(services: &Supervisor) -> BTreeSet<Resource> {
    services.running_keys().filter_map(owned_resource).collect()
}

/// The stores and channels a configuration needs an owner for.
fn resources(state: &State) -> BTreeSet<Resource> {
    desired(state).iter().filter_map(owned_resource).collect()
}

/// The bound of one attempt of a start-up step against NATS: a JetStream
/// request waits 5 s for its answer and a step makes a few dozen of them,
/// while a nats-server that just restarted may answer nothing at all.
const START_STEP_LIMIT: Duration = Duration::from_secs(30);
/// Attempts of a start-up step against NATS (a lost leader is elected again
/// within seconds; a cluster that stays silent this long is down).
const START_STEP_ATTEMPTS: u32 = 3;

/// JetStream API errors that say the cluster is between leaders or still
/// forming: the same request succeeds once an election is over.
const TRANSIENT_JETSTREAM_CODES: [async_nats::jetstream::ErrorCode; 8] = {
    use async_nats::jetstream::ErrorCode;
    [
        ErrorCode::CLUSTER_NOT_AVAILABLE,
        ErrorCode::CLUSTER_NOT_ACTIVE,
        ErrorCode::CLUSTER_NOT_LEADER,
        ErrorCode::CLUSTER_NO_PEERS,
        ErrorCode::CLUSTER_INCOMPLETE,
        ErrorCode::CLUSTER_NOT_ASSIGNED,
        ErrorCode::RAFT_GENERAL,
        ErrorCode::STREAM_ASSIGNMENT,
    ]
};

/// Whether a failed start-up step fails the same way however often it is
/// tried: a setting that disagrees with the cluster (`lease_slots`, a stream
/// or bucket configured otherwise, replicas the cluster cannot place), a
/// state written by a newer arauto, an unreadable record, or any answer of
/// the JetStream API refusing the request. Connection losses, timeouts and
/// leader elections are transient: the step is tried again.
fn is_permanent_start_error(error: &RunError) -> bool {
    use crate::queue::Error as StateError;
    match error {
        RunError::Ownership(
            OwnershipError::SlotCount { .. } | OwnershipError::DuplicateNode { .. },
        ) => return true,
        RunError::Database(
            StateError::Invalid { .. }
            | StateError::NewerSchema { .. }
            | StateError::Corrupt { .. },
        ) => return true,
        RunError::Ownership(_) | RunError::Database(_) => {}
        _ => return true,
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if let Some(refusal) = current.downcast_ref::<async_nats::jetstream::Error>() {
            return !TRANSIENT_JETSTREAM_CODES.contains(&refusal.error_code());
        }
        cause = current.source();
    }
    false
}

/// Runs one start-up step against NATS, each attempt bounded by
/// [`START_STEP_LIMIT`], retried with a log line on a transient failure or a
/// timeout; a permanent failure ([`is_permanent_start_error`]) and the last
/// transient one are the start-up's error.
async fn start_step<T, E, Step, Attempt>(
    node: &str,
    step: &'static str,
    mut attempt: Step,
) -> Result<T, RunError>
where
    Step: FnMut() -> Attempt,
    Attempt: std::future::Future<Output = Result<T, E>>,
    E: Into<RunError>,
{
    for tried in 1..=START_STEP_ATTEMPTS {
        let last = tried == START_STEP_ATTEMPTS;
        match tokio::time::timeout(START_STEP_LIMIT, attempt()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => {
                let error: RunError = error.into();
                if last || is_permanent_start_error(&error) {
                    return Err(error);
                }
                tracing::warn!(
                    node,
                    "cluster start-up: {step} failed (attempt {tried} of {START_STEP_ATTEMPTS}), retrying: {error}"
                );
            }
            Err(_) if last => {
                return Err(RunError::ClusterStartTimeout {
                    step,
                    limit: START_STEP_LIMIT,
                    attempts: START_STEP_ATTEMPTS,
                });
            }
            Err(_) => {
                tracing::warn!(
                    node,
                    "cluster start-up: {step} did not finish within {START_STEP_LIMIT:?} (attempt {tried} of {START_STEP_ATTEMPTS}), retrying"
                );
            }
        }
        // A pause, not a synchronisation: a leader election takes seconds.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    unreachable!("the last attempt returns")
}

/// A cluster node's part in the run: its leases and the loop renewing them.
struct ClusterNode {
    ownership: Ownership,
    /// The JetStream state, for its views' freshness (`arauto check`).
    db: Arc<NatsStore>,
    stop: CancellationToken,
    driver: tokio::task::JoinHandle<()>,
}

impl ClusterNode {
    /// Connect, open the ownership buckets and the JetStream state (fenced
    /// by this node's leases), and start taking leases.
    async fn start(
        state: &State,
        cluster: &ClusterConfig,
        host: PluginHost,
    ) -> Result<(Pipeline, Self), RunError> {
        let client = connect::connect(cluster, connect::DEFAULT_INITIAL_WAIT).await?;
        tracing::info!(
            node = %cluster.node_name,
            "connected to the NATS cluster: {}",
            connect::describe_connection(&client)
        );
        let js = async_nats::jetstream::new(client.clone());
        let node = cluster.node_name.as_str();
        // A node restarted right after it was killed finds its previous
        // run's heartbeat still fresh: it waits for that to expire (a few
        // lease_ttl at most) rather than failing; a real twin keeps its
        // heartbeat fresh and is refused after the wait.
        let ttl = cluster.lease_ttl.unsigned_abs();
        let twin_deadline = tokio::time::Instant::now() + ttl.saturating_mul(3);
        let ownership = loop {
            match start_step(node, "opening the ownership buckets", || {
                Ownership::open(&js, OwnershipOptions::from_config(cluster))
            })
            .await
            {
                Err(RunError::Ownership(OwnershipError::DuplicateNode { .. }))
                    if tokio::time::Instant::now() < twin_deadline =>
                {
                    tracing::info!(
                        node,
                        "node name {node} still has a fresh heartbeat of another process \
                         (a previous run killed moments ago?); waiting for it to expire"
                    );
                    // A pause between looks, not a synchronisation.
                    tokio::time::sleep(ttl / 4).await;
                }
                opened => break opened?,
            }
        };
        let fence: Arc<dyn Fence> = Arc::new(ownership.clone());
        let options = NatsOptions {
            prefix: cluster.prefix.clone(),
            replicas: cluster.replicas,
        };
        let db = start_step(node, "opening the cluster state", || {
            NatsStore::open(js.clone(), options.clone(), fence.clone())
        })
        .await?;
        tracing::info!(node = %cluster.node_name, prefix = %cluster.prefix, "cluster state open");
        let retention = state.config.daemon.history_retention.unsigned_abs();
        if let Err(error) = db.apply_history_retention(retention).await {
            // The counters are still kept, only not for the configured time.
            tracing::warn!(
                "cannot apply daemon.history_retention to the cluster's history: {error}"
            );
        }
        let db = Arc::new(db);
        let pipeline = Pipeline::cluster(state, db.clone(), fence, host);
        ownership.set_resources(resources(state));
        let stop = CancellationToken::new();
        // Pushes verified here reach the node polling the store, and theirs reach us.
        let sender = format!(
            "{node}/{}/{}",
            std::process::id(),
            jiff::Timestamp::now().as_nanosecond()
        );
        if let Err(error) = push_forward::start(
            client.clone(),
            &cluster.prefix,
            sender,
            pipeline.pushes.clone(),
            stop.clone(),
        )
        .await
        {
            // Pushes still reach the stores this node polls; the others
            // wait for their next sweep.
            tracing::warn!("cannot forward pushes between nodes: {error}");
        }
        // `arauto status` from anywhere asks a node for the channels' counts.
        if let Err(error) = channel_counts::serve(
            client,
            &cluster.prefix,
            node.to_owned(),
            db.clone(),
            stop.clone(),
        )
        .await
        {
            // `status` then counts from the jobs bucket itself.
            tracing::warn!("cannot answer questions for the channels' counts: {error}");
        }
        let driver = tokio::spawn({
            let (ownership, stop) = (ownership.clone(), stop.clone());
            async move { ownership.run(stop).await }
        });
        Ok((
            pipeline,
            Self {
                ownership,
                db,
                stop,
                driver,
            },
        ))
    }

    /// Reads this node's views for `arauto check`: the state's jobs,
    /// history and status views, then both ownership buckets.
    fn view_source(&self) -> crate::state::ViewSource {
        let (db, ownership) = (self.db.clone(), self.ownership.clone());
        Arc::new(move || {
            let mut views = db.view_freshness();
            views.extend(ownership.view_freshness());
            views
        })
    }

    /// Run the pollers and dispatchers of what the node holds now (the
    /// same keyed diff as a reload, without reading the configuration).
    async fn apply(&self, owned: &BTreeSet<Resource>, env: &ServiceEnv, services: &mut Supervisor) {
        let stores = owned
            .iter()
            .filter(|r| matches!(r, Resource::Store(_)))
            .count();
        env.pipeline
            .metrics
            .cluster_owned(self.ownership.node(), stores, owned.len() - stores);
        let state = env.state.load();
        self.ownership.services_starting(owned);
        match prepare(services, env, &state, Some(owned)) {
            Ok(prepared) => {
                let starting = prepared.starting();
                // Stops and drains the services of what is being handed
                // over; only then may their leases go (two-phase hand-over).
                services.commit(prepared, stop_timeout(&state)).await;
                self.ownership
                    .services_running(&running_resources(services));
                tracing::info!(
                    node = %self.ownership.node(),
                    "ownership changed: {} and {} held{}",
                    plural(stores, "store"),
                    plural(owned.len() - stores, "channel"),
                    if starting.is_empty() {
                        String::new()
                    } else {
                        format!("; started {}", starting.join(", "))
                    }
                );
            }
            Err((service, error)) => {
                tracing::error!(service = %service, "cannot start service after an ownership change: {error}");
                // Nothing changed; what runs still holds its leases.
                self.ownership
                    .services_running(&running_resources(services));
            }
        }
    }

    /// Release every lease and the heartbeat (SIGTERM).
    async fn release(self) {
        self.stop.cancel();
        if let Err(error) = self.driver.await {
            tracing::warn!("the cluster ownership loop ended badly: {error}");
        }
        tracing::info!(node = %self.ownership.node(), "released every lease: the other nodes take over");
    }
}

/// Applies a new configuration on SIGHUP.
struct Reloader<'a> {
    options: &'a RunOptions,
    env: &'a ServiceEnv,
    log: Option<&'a LogHandle>,
    notifier: &'a Notifier,
    node: Option<&'a ClusterNode>,
}

impl Reloader<'_> {
    async fn reload(&self, services: &mut Supervisor) {
        let info = &self.env.runtime;
        let handle = &self.env.state;
        self.notifier.reloading();
        info.set_phase(Phase::Reloading);
        tracing::info!(config = %self.options.config_path.display(), "SIGHUP received: reloading the configuration");
        let outcome = match self.try_reload(services).await {
            Ok(message) => {
                tracing::info!("reload applied: {message}");
                log_components(&handle.load());
                ReloadOutcome {
                    at: Timestamp::now(),
                    ok: true,
                    message,
                }
            }
            Err(error) => {
                if let ReloadError::Config(errors) = &error {
                    for error in &errors.errors {
                        tracing::error!(key = %error.key, "{error}");
                    }
                }
                tracing::error!("reload failed, still running the previous configuration: {error}");
                ReloadOutcome {
                    at: Timestamp::now(),
                    ok: false,
                    message: error.to_string(),
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

    async fn try_reload(&self, services: &mut Supervisor) -> Result<String, ReloadError> {
        let path = self.options.config_path.clone();
        let config = tokio::task::spawn_blocking(move || config::load(Some(&path)))
            .await?
            .map_err(ReloadError::Config)?;
        for warning in config.warnings() {
            tracing::warn!(key = %warning.key, "{warning}");
        }
        let handle = &self.env.state;
        let old = handle.load();
        restart_only_changes(&old.config, &config)?;
        let log_level = config.daemon.log_level.clone();
        let options = BuildOptions {
            skip_unloadable_plugins: false,
            dry_run: self.options.dry_run,
        };
        let state = Arc::new(build(config, &options, &self.env.pipeline.host).await?);
        let owned = self
            .node
            .map(|node| node.ownership.owned().borrow().clone());
        if let (Some(node), Some(owned)) = (self.node, &owned) {
            node.ownership.services_starting(owned);
        }
        let prepared = prepare(services, self.env, &state, owned.as_ref())
            .map_err(|(service, error)| ReloadError::ServiceStart { service, error })?;
        let started = prepared.starting();
        handle.replace(state.clone());
        self.env.pipeline.reconfigure(&state);
        if let Some(log) = self.log
            && let Err(error) = log.set_level(&log_level)
        {
            tracing::warn!("log level not changed: {error}");
        }
        services.commit(prepared, stop_timeout(&state)).await;
        // New stores and channels start once their leases are taken.
        if let Some(node) = self.node {
            node.ownership
                .services_running(&running_resources(services));
            node.ownership.set_resources(resources(&state));
        }
        let mut message = status_line(&state);
        if !started.is_empty() {
            message.push_str(&format!("; (re)started {}", started.join(", ")));
        }
        Ok(message)
    }
}

/// Keys that only take effect on restart; changing them fails the reload.
fn restart_only_changes(old: &Config, new: &Config) -> Result<(), ReloadError> {
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
    if old.cluster != new.cluster {
        changed.push("[cluster]".to_owned());
    }
    if changed.is_empty() {
        Ok(())
    } else {
        Err(ReloadError::RestartOnly(changed))
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

    #[test]
    fn a_setting_that_disagrees_with_the_cluster_is_permanent_a_lost_connection_is_not() {
        let slots = RunError::Ownership(OwnershipError::SlotCount {
            configured: 64,
            cluster: "128".to_owned(),
            bucket: "arauto_leases".to_owned(),
        });
        assert!(is_permanent_start_error(&slots));
        let lost = RunError::Ownership(OwnershipError::Read {
            bucket: "arauto_leases".to_owned(),
            source: Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
        });
        assert!(!is_permanent_start_error(&lost));
        let newer = RunError::Database(crate::queue::Error::Invalid {
            what: "stream arauto_jobs".to_owned(),
            reason: "replicas".to_owned(),
        });
        assert!(is_permanent_start_error(&newer));
    }
}
