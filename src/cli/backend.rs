//! Where operator commands run: in the daemon (over its control socket) when
//! it is up, else in this process on the state database itself. Both go
//! through [`crate::control::handle`], so they answer alike.
//!
//! redb lets one process open a database file, so the CLI only opens it when
//! no daemon answers, and takes the state directory's lock first: a daemon
//! started meanwhile is refused with "another arauto daemon (pid N) is already
//! using state directory …" until the command is done. Opening does what the
//! daemon's start does: jobs a crashed daemon left running go back on the
//! queue. The CLI never creates a database that does not exist.
//!
//! With `[cluster]` the state is the cluster's, not a file: a command that no
//! local daemon answers connects to NATS and opens the JetStream state itself
//! (no state-directory lock: nothing local is shared), so the commands that
//! read or steer the state (`check`, `report`, `queue …`) work from any node or a
//! machine that only has the configuration. It opens it unfenced: operator
//! actions (cancel, retry, pause) are compare-and-set writes that need no
//! lease, and it never polls, claims or sends. It reads only what the
//! command shows ([`ClusterView::for_request`]): jobs are keyed
//! `<channel>.<store>.<id>` and outcomes published on
//! `<prefix>.history.<channel>.<store>`, so `queue list --store s` follows
//! the key filter `*.s.*` of the jobs bucket and no history at all, and
//! `report --channel c` the jobs `c.*.*` and the outcomes
//! `<prefix>.history.c.*`.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use clap::Args;
use jiff::Timestamp;

use super::config_arg::ConfigArg;
use super::style::Progress;
use crate::cluster::connect;
use crate::config::{self, ClusterConfig, Config, ConfigErrors};
use crate::control::{self, Client, ClientError, Request, Response};
use crate::daemon::{InstanceLock, LockError};
use crate::plugin::{HostConfig, PluginHost};
use crate::queue::nats::{NatsOptions, NatsStore, ViewScope};
use crate::queue::redb::{FILE_NAME, RedbOptions, RedbStore};
use crate::queue::{StateStore as _, Unfenced};
use crate::report::{Context, SharedStore};
use crate::state::{BuildError, BuildOptions, build};

/// `--config` and `--socket`: how to reach the daemon, or the state without it.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub config: ConfigArg,
    /// Control socket [default: daemon.control_socket from the configuration].
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

/// Why a command could not get going.
pub(crate) enum OpenError {
    /// The configuration file is invalid.
    Config(ConfigErrors),
    /// The configuration does not build (plugins, templates…).
    Build {
        /// The configuration file.
        path: PathBuf,
        /// Every problem.
        error: BuildError,
    },
    /// Anything else.
    Other(anyhow::Error),
}

impl From<anyhow::Error> for OpenError {
    fn from(error: anyhow::Error) -> Self {
        Self::Other(error)
    }
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Config(errors) => write!(f, "{errors}"),
            Self::Build { path, error } => {
                write!(f, "invalid configuration {}: {error}", path.display())
            }
            Self::Other(error) => write!(f, "{error:#}"),
        }
    }
}

/// What to prepare when working without the daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Needs {
    /// The configuration and the database (reports, queue commands).
    Database,
    /// Plugins loaded and instantiated too (the checklist's live checks).
    Instances,
}

/// What of the cluster's jobs bucket and history stream an operator command
/// without a local daemon reads: only what it shows (docs/cluster.md,
/// "Upgrading to state layout 2", has the table).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ClusterView {
    /// The jobs it follows.
    pub jobs: ViewScope,
    /// The outcomes (daily counters) it follows.
    pub history: ViewScope,
}

impl ClusterView {
    /// Everything (`check`, `state export`, the queue's writes).
    pub(crate) fn everything() -> Self {
        Self {
            jobs: ViewScope::All,
            history: ViewScope::All,
        }
    }

    /// What answering `request` reads: `queue list` and `queue retry
    /// --dead` the jobs of their store or channel and no outcomes; `report`
    /// the jobs and outcomes of its store or channel; `queue show`, `cancel`
    /// and `retry` of ids, `pause` and `resume` no view at all (each job
    /// named is read by its id); `purge` and the rest everything.
    pub(crate) fn for_request(request: &Request) -> Self {
        let scope = |store: &Option<String>, channel: &Option<String>| match (store, channel) {
            (Some(store), _) => ViewScope::Store(store.clone()),
            (None, Some(channel)) => ViewScope::Channel(channel.clone()),
            (None, None) => ViewScope::All,
        };
        match request {
            Request::QueueList(query) => Self {
                jobs: scope(&query.store, &query.channel),
                history: ViewScope::Nothing,
            },
            Request::QueueRetryFailed(query) => Self {
                jobs: scope(&query.store, &query.channel),
                history: ViewScope::Nothing,
            },
            Request::QueueShow { .. }
            | Request::QueueCancel { .. }
            | Request::QueueRetry { .. }
            | Request::QueuePause { .. }
            | Request::QueueResume { .. }
            | Request::StoreResume { .. } => Self {
                jobs: ViewScope::Nothing,
                history: ViewScope::Nothing,
            },
            Request::Report(query) => {
                let both = scope(&query.store, &query.channel);
                Self {
                    jobs: both.clone(),
                    history: both,
                }
            }
            _ => Self::everything(),
        }
    }
}

/// A way to serve requests.
pub(crate) enum Backend {
    /// The running daemon.
    Daemon(Client),
    /// This process, on the state database.
    Local(Box<Local>),
}

pub(crate) struct Local {
    runtime: tokio::runtime::Runtime,
    ctx: Context,
    // Released after the store is closed (fields drop in order).
    _lock: Option<InstanceLock>,
}

impl Drop for Local {
    fn drop(&mut self) {
        // Close the database (waits for queued writes) before the lock goes.
        self.ctx.store = None;
        self.ctx.state = None;
    }
}

impl Backend {
    /// Connect to the daemon, or prepare to work without it.
    pub(crate) fn open(
        args: &ConnectArgs,
        needs: Needs,
        view: &ClusterView,
        progress: &Progress,
    ) -> Result<Self, OpenError> {
        let socket = args
            .socket
            .clone()
            .unwrap_or_else(|| config::control_socket_path(args.config.config.as_deref()));
        match Client::connect(&socket) {
            Ok(client) => return Ok(Self::Daemon(client)),
            Err(ClientError::NotRunning { .. }) => {}
            Err(error) => return Err(OpenError::Other(error.into())),
        }
        let config = config::load(args.config.config.as_deref()).map_err(OpenError::Config)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let state = match needs {
            Needs::Database => None,
            Needs::Instances => {
                progress.show("loading plugins…");
                let path = config.source_path().to_path_buf();
                let host = PluginHost::new(host_config(&config))
                    .map_err(|e| anyhow!("cannot start the plugin host: {e}"))?;
                let built =
                    runtime.block_on(build(config.clone(), &BuildOptions::default(), &host));
                progress.clear();
                Some(Arc::new(
                    built.map_err(|error| OpenError::Build { path, error })?,
                ))
            }
        };
        let (store, lock) = match &config.cluster {
            Some(cluster) => {
                progress.show("connecting to the NATS cluster…");
                let store =
                    runtime.block_on(open_cluster(cluster, &config.daemon.timezone, false, view));
                progress.clear();
                (Some(Arc::new(store?) as SharedStore), None)
            }
            None => open_database(&config, &socket)?,
        };
        Ok(Self::Local(Box::new(Local {
            runtime,
            ctx: Context {
                config: state
                    .as_ref()
                    .map_or_else(|| Arc::new(config), |s| Arc::clone(&s.config)),
                state,
                store,
                daemon: None,
                now: Timestamp::now(),
            },
            _lock: lock,
        })))
    }

    /// True when the daemon answers.
    pub(crate) fn is_daemon(&self) -> bool {
        matches!(self, Self::Daemon(_))
    }

    /// Serve `request`; the daemon gets `timeout` to answer.
    pub(crate) fn call(
        &mut self,
        request: &Request,
        timeout: Duration,
        progress: &Progress,
    ) -> anyhow::Result<Response> {
        match self {
            Self::Daemon(client) => {
                client.set_timeout(timeout)?;
                Ok(client.request(request)?)
            }
            Self::Local(local) => {
                local.ctx.now = Timestamp::now();
                let report = |done: usize, total: usize, label: &str| {
                    if done < total {
                        progress.show(&format!("checked {done}/{total}: {label}…"));
                    } else {
                        progress.clear();
                    }
                };
                let ctx = &local.ctx;
                Ok(local
                    .runtime
                    .block_on(control::handle(request.clone(), ctx, &report)))
            }
        }
    }
}

/// The compiled-plugin cache, read and written when this user owns it (the
/// daemon's user); anyone else — root included — only reuses what is there
/// and compiles the rest in memory, rather than leave files the daemon could
/// not replace.
pub(super) fn host_config(config: &Config) -> HostConfig {
    let dir = &config.daemon.cache_dir;
    // /proc/self belongs to the process's effective user.
    let me = std::fs::metadata("/proc/self").map(|m| m.uid());
    let ours = match (std::fs::metadata(dir), me) {
        (Ok(dir), Ok(me)) => dir.uid() == me,
        _ => false,
    };
    if ours {
        HostConfig::with_cache_dir(dir)
    } else {
        HostConfig::reading_cache(dir)
    }
}

/// How long a command waits for the cluster's first answer: enough for a
/// server that is restarting, short enough for an operator at a prompt.
const CLUSTER_CONNECT_WAIT: Duration = Duration::from_secs(10);

/// The cluster's JetStream state, opened for an operator command: unfenced
/// (see the module's doc), counting local days in `time_zone`, reading
/// only the jobs and outcomes `view` selects. Only `create` (an import into
/// a new cluster) makes buckets: otherwise a mistyped `cluster.prefix` is an
/// error, not an empty state.
pub(super) async fn open_cluster(
    cluster: &ClusterConfig,
    time_zone: &jiff::tz::TimeZone,
    create: bool,
    view: &ClusterView,
) -> anyhow::Result<NatsStore> {
    let client = connect_cluster(cluster).await?;
    open_cluster_on(client, cluster, time_zone, create, view).await
}

/// Connects to the cluster's servers for an operator command.
pub(super) async fn connect_cluster(cluster: &ClusterConfig) -> anyhow::Result<async_nats::Client> {
    Ok(connect::connect(cluster, CLUSTER_CONNECT_WAIT).await?)
}

/// [`open_cluster`] on a connection the command already has.
pub(super) async fn open_cluster_on(
    client: async_nats::Client,
    cluster: &ClusterConfig,
    time_zone: &jiff::tz::TimeZone,
    create: bool,
    view: &ClusterView,
) -> anyhow::Result<NatsStore> {
    let js = async_nats::jetstream::new(client);
    let options = NatsOptions {
        prefix: cluster.prefix.clone(),
        replicas: cluster.replicas,
    };
    let store = if create {
        NatsStore::open(js, options, Arc::new(Unfenced)).await
    } else {
        NatsStore::bind_viewing(js, options, Arc::new(Unfenced), &view.jobs, &view.history).await
    };
    let store = store.with_context(|| {
        format!(
            "cannot open the cluster state (prefix {:?}) at {}",
            cluster.prefix,
            cluster.servers.join(", ")
        )
    })?;
    store.set_time_zone(time_zone.clone());
    Ok(store)
}

/// Open `<state_dir>/arauto.redb` if it exists, under the state directory's
/// lock; `(None, None)` when there is no database yet.
fn open_database(
    config: &Config,
    socket: &std::path::Path,
) -> Result<(Option<SharedStore>, Option<InstanceLock>), OpenError> {
    let state_dir = &config.daemon.state_dir;
    let path = state_dir.join(FILE_NAME);
    if !path.exists() {
        return Ok((None, None));
    }
    let unreachable = |holder: Option<u32>| {
        anyhow!(
            "arauto{} holds {} but does not answer on its control socket {}: if it is still starting, try again in a moment; otherwise check --socket (or daemon.control_socket)",
            holder
                .map(|pid| format!(" (pid {pid})"))
                .unwrap_or_default(),
            state_dir.display(),
            socket.display()
        )
    };
    let lock = match InstanceLock::acquire(state_dir) {
        Ok(lock) => lock,
        Err(LockError::Held { holder, .. }) => return Err(unreachable(holder).into()),
        Err(error) => return Err(OpenError::Other(error.into())),
    };
    let options = RedbOptions {
        time_zone: config.daemon.timezone.clone(),
        ..RedbOptions::default()
    };
    let store = match RedbStore::open_file(&path, options) {
        Ok(store) => store,
        Err(crate::queue::Error::Locked { .. }) => return Err(unreachable(None).into()),
        Err(error) => {
            return Err(OpenError::Other(
                anyhow!(error).context(format!("cannot open {}", path.display())),
            ));
        }
    };
    Ok((Some(Arc::new(store) as SharedStore), Some(lock)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::delivery::ReportQuery;
    use crate::report::queue_ops::ListQuery;

    #[test]
    fn a_command_reads_only_the_jobs_and_outcomes_it_shows() {
        let list = Request::QueueList(ListQuery {
            store: Some("loja".to_owned()),
            ..ListQuery::default()
        });
        assert_eq!(
            ClusterView::for_request(&list),
            ClusterView {
                jobs: ViewScope::Store("loja".to_owned()),
                history: ViewScope::Nothing,
            }
        );
        let report = Request::Report(ReportQuery {
            channel: Some("wa".to_owned()),
            ..ReportQuery::default()
        });
        assert_eq!(
            ClusterView::for_request(&report),
            ClusterView {
                jobs: ViewScope::Channel("wa".to_owned()),
                history: ViewScope::Channel("wa".to_owned()),
            }
        );
        let show = Request::QueueShow {
            id: crate::queue::JobId::from_u128(1),
        };
        assert_eq!(ClusterView::for_request(&show).jobs, ViewScope::Nothing);
        assert_eq!(
            ClusterView::for_request(&Request::Status),
            ClusterView::everything()
        );
    }
}
