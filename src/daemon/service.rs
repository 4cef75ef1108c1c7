//! Long-running services and their supervision.
//!
//! A service (the control socket, a store's poller, a channel's dispatcher…)
//! is built from a [`State`] by a [`ServiceProvider`], and started in two steps:
//! [`Service::prepare`] acquires resources (binds sockets, instantiates
//! plugins) and may fail, then the returned future does the work until its
//! shutdown token is cancelled. Every task is tracked, so shutdown can wait for
//! all of them (mini-redis / Vector style).
//!
//! On reload the providers run again on the new state. A service whose name and
//! [`ServiceSpec`] are unchanged keeps running (it sees the new state through
//! [`StateHandle::load`]); changed and new ones are prepared *before* anything
//! is stopped, so a failing prepare rejects the reload with nothing disturbed;
//! then the state is swapped, replaced and removed services are stopped, and the
//! prepared ones start. Hence the rule for implementers: the spec must cover
//! every resource `prepare` acquires (a socket path, a listen address), and
//! everything else is read live from the state handle.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::runtime::RuntimeInfo;
use super::state::{State, StateHandle};
use super::watchdog::{Heartbeat, Heartbeats};

/// What a service's work ends with.
pub type ServiceError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The work of a prepared service: runs until its shutdown token is cancelled
/// (then finishes in-flight work and returns `Ok`) or fails. A failure stops
/// the daemon with exit status 1, so systemd restarts it.
pub type ServiceTask = BoxFuture<'static, Result<(), ServiceError>>;

/// Builds a state's services; the runtime calls every provider at start and on reload.
pub type ServiceProvider = Arc<dyn Fn(&Arc<State>) -> Vec<Box<dyn Service>> + Send + Sync>;

/// A long-running part of the daemon.
#[async_trait::async_trait]
pub trait Service: Send + 'static {
    /// Unique among the daemon's services; shown in logs and `arauto status`
    /// (`control`, `poll/loja1`, `send/whatsapp`).
    fn name(&self) -> &str;

    /// What identifies this service's resources; see the module docs.
    fn spec(&self) -> ServiceSpec;

    /// Acquire resources without starting work. An error aborts startup or
    /// rejects the reload.
    async fn prepare(self: Box<Self>, ctx: ServiceContext) -> Result<ServiceTask, ServiceError>;
}

/// Comparable description of a service's resources (any `PartialEq` value).
pub struct ServiceSpec(Box<dyn DynSpec>);

impl ServiceSpec {
    /// Wrap `value`; specs of different types are never equal.
    pub fn new<T: PartialEq + fmt::Debug + Send + Sync + 'static>(value: T) -> Self {
        Self(Box::new(value))
    }
}

impl PartialEq for ServiceSpec {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_dyn(other.0.as_any())
    }
}

impl fmt::Debug for ServiceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.debug(f)
    }
}

trait DynSpec: Send + Sync {
    fn as_any(&self) -> &dyn Any;
    fn eq_dyn(&self, other: &dyn Any) -> bool;
    fn debug(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;
}

impl<T: PartialEq + fmt::Debug + Send + Sync + 'static> DynSpec for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn eq_dyn(&self, other: &dyn Any) -> bool {
        other.downcast_ref::<T>().is_some_and(|other| other == self)
    }
    fn debug(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// What a service gets from the runtime.
#[derive(Clone)]
pub struct ServiceContext {
    /// The service's name.
    pub name: String,
    /// Cancelled when the service must stop: daemon shutdown, or a reload that
    /// replaces or removes it. Stop taking new work, finish what is in flight.
    pub shutdown: CancellationToken,
    /// The current state (swapped on reload).
    pub state: StateHandle,
    /// Process-wide facts for status reporting.
    pub runtime: Arc<RuntimeInfo>,
    /// Shared handles opened at startup (the queue database…).
    pub resources: Resources,
    heartbeats: Heartbeats,
}

impl ServiceContext {
    /// Register a heartbeat for a loop of this service. If it is not
    /// [`Heartbeat::beat`]en for `max_silence`, the daemon logs it and stops
    /// sending systemd's watchdog keep-alive, so systemd restarts a stuck arauto.
    /// Dropping the heartbeat unregisters it.
    pub fn heartbeat(&self, max_silence: Duration) -> Heartbeat {
        self.heartbeats.register(&self.name, max_silence)
    }

    /// The shared resource of type `T`, if a startup hook provided one.
    pub fn resource<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.resources.get::<T>()
    }
}

/// Handles opened once per daemon run by [`crate::daemon::Runtime::on_start`]
/// hooks (after the state directory is locked) and shared with every service,
/// one value per type.
#[derive(Clone, Default)]
pub struct Resources(Arc<BTreeMap<TypeKey, Arc<dyn Any + Send + Sync>>>);

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct TypeKey(std::any::TypeId);

impl Resources {
    /// The value of type `T`.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.0
            .get(&TypeKey(std::any::TypeId::of::<T>()))
            .cloned()?
            .downcast::<T>()
            .ok()
    }

    pub(crate) fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        Arc::make_mut(&mut self.0).insert(TypeKey(std::any::TypeId::of::<T>()), Arc::new(value));
    }
}

impl fmt::Debug for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Resources({} values)", self.0.len())
    }
}

/// How a service task ended without being asked to stop.
pub(crate) struct ServiceExit {
    pub(crate) name: String,
    pub(crate) result: Result<(), String>,
}

struct Running {
    spec: ServiceSpec,
    token: CancellationToken,
    handle: JoinHandle<()>,
}

/// Services prepared for a start or reload, not yet running.
pub(crate) struct Prepared {
    ready: Vec<(String, ServiceSpec, CancellationToken, ServiceTask)>,
    wanted: BTreeSet<String>,
}

impl Prepared {
    /// Names of services that will be (re)started.
    pub(crate) fn starting(&self) -> Vec<String> {
        self.ready.iter().map(|(name, ..)| name.clone()).collect()
    }
}

/// The running services.
pub(crate) struct ServiceSet {
    running: BTreeMap<String, Running>,
    tracker: TaskTracker,
    root: CancellationToken,
    exits: mpsc::UnboundedSender<ServiceExit>,
    state: StateHandle,
    runtime: Arc<RuntimeInfo>,
    resources: Resources,
    heartbeats: Heartbeats,
}

impl ServiceSet {
    pub(crate) fn new(
        state: StateHandle,
        runtime: Arc<RuntimeInfo>,
        resources: Resources,
        heartbeats: Heartbeats,
        exits: mpsc::UnboundedSender<ServiceExit>,
    ) -> Self {
        Self {
            running: BTreeMap::new(),
            tracker: TaskTracker::new(),
            root: CancellationToken::new(),
            exits,
            state,
            runtime,
            resources,
            heartbeats,
        }
    }

    /// Prepare what `desired` adds or changes; on error nothing is left behind.
    pub(crate) async fn prepare(
        &self,
        desired: Vec<Box<dyn Service>>,
    ) -> Result<Prepared, (String, ServiceError)> {
        let mut prepared = Prepared {
            ready: Vec::new(),
            wanted: BTreeSet::new(),
        };
        for service in desired {
            let name = service.name().to_owned();
            if !prepared.wanted.insert(name.clone()) {
                return Err((name, "two services with the same name".into()));
            }
            let spec = service.spec();
            if self
                .running
                .get(&name)
                .is_some_and(|running| running.spec == spec)
            {
                continue;
            }
            let token = self.root.child_token();
            let ctx = ServiceContext {
                name: name.clone(),
                shutdown: token.clone(),
                state: self.state.clone(),
                runtime: self.runtime.clone(),
                resources: self.resources.clone(),
                heartbeats: self.heartbeats.clone(),
            };
            match service.prepare(ctx).await {
                Ok(task) => prepared.ready.push((name, spec, token, task)),
                Err(error) => {
                    for (_, _, token, _) in &prepared.ready {
                        token.cancel();
                    }
                    return Err((name, error));
                }
            }
        }
        Ok(prepared)
    }

    /// Stop what `prepared` replaces or no longer wants, then start the prepared tasks.
    pub(crate) async fn commit(&mut self, prepared: Prepared, stop_timeout: Duration) {
        let replaced: BTreeSet<&String> = prepared.ready.iter().map(|(name, ..)| name).collect();
        let to_stop: Vec<String> = self
            .running
            .keys()
            .filter(|name| replaced.contains(name) || !prepared.wanted.contains(*name))
            .cloned()
            .collect();
        for name in to_stop {
            if let Some(running) = self.running.remove(&name) {
                stop_one(&name, running, stop_timeout).await;
            }
        }
        for (name, spec, token, task) in prepared.ready {
            let handle = self.spawn(name.clone(), token.clone(), task);
            self.running.insert(
                name,
                Running {
                    spec,
                    token,
                    handle,
                },
            );
        }
        self.runtime
            .set_services(self.running.keys().cloned().collect());
    }

    fn spawn(&self, name: String, token: CancellationToken, task: ServiceTask) -> JoinHandle<()> {
        let exits = self.exits.clone();
        self.tracker.spawn(async move {
            tracing::debug!(service = %name, "service started");
            let result = match AssertUnwindSafe(task).catch_unwind().await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(error)) => Err(error.to_string()),
                Err(panic) => Err(panic_message(panic.as_ref())),
            };
            if token.is_cancelled() {
                match &result {
                    Ok(()) => tracing::debug!(service = %name, "service stopped"),
                    Err(error) => {
                        tracing::warn!(service = %name, "service failed while stopping: {error}")
                    }
                }
            } else {
                let _ = exits.send(ServiceExit { name, result });
            }
        })
    }

    /// Cancel every service and wait until all have finished or `timeout` passes.
    /// Returns the services still running at the deadline.
    pub(crate) async fn shutdown(&mut self, timeout: Duration) -> Vec<String> {
        self.root.cancel();
        self.tracker.close();
        if tokio::time::timeout(timeout, self.tracker.wait())
            .await
            .is_ok()
        {
            self.running.clear();
            return Vec::new();
        }
        let stragglers: Vec<String> = self
            .running
            .iter()
            .filter(|(_, running)| !running.handle.is_finished())
            .map(|(name, _)| name.clone())
            .collect();
        for running in self.running.values() {
            running.handle.abort();
        }
        stragglers
    }

    /// Forget a service that exited on its own.
    pub(crate) fn remove_exited(&mut self, name: &str) {
        self.running.remove(name);
        self.runtime
            .set_services(self.running.keys().cloned().collect());
    }
}

async fn stop_one(name: &str, running: Running, timeout: Duration) {
    running.token.cancel();
    let mut handle = running.handle;
    if tokio::time::timeout(timeout, &mut handle).await.is_err() {
        tracing::error!(service = %name, "service did not stop within {timeout:?}; aborting it");
        handle.abort();
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    let detail = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic payload".to_owned());
    format!("panicked: {detail}")
}

#[cfg(test)]
mod tests {
    use std::sync::{Mutex, PoisonError};

    use super::*;
    use crate::daemon::state::{BuildOptions, Purpose, build};

    /// What the test services did, in order.
    type Journal = Arc<Mutex<Vec<String>>>;

    struct Probe {
        name: String,
        spec: u32,
        fail_prepare: bool,
        journal: Journal,
    }

    #[async_trait::async_trait]
    impl Service for Probe {
        fn name(&self) -> &str {
            &self.name
        }
        fn spec(&self) -> ServiceSpec {
            ServiceSpec::new(self.spec)
        }
        async fn prepare(
            self: Box<Self>,
            ctx: ServiceContext,
        ) -> Result<ServiceTask, ServiceError> {
            let entry = format!("prepare {}#{}", self.name, self.spec);
            self.journal
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(entry);
            if self.fail_prepare {
                return Err(format!("{} cannot start", self.name).into());
            }
            let journal = self.journal.clone();
            Ok(Box::pin(async move {
                ctx.shutdown.cancelled().await;
                let entry = format!("stop {}#{}", self.name, self.spec);
                journal
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(entry);
                Ok(())
            }))
        }
    }

    fn probes(journal: &Journal, specs: &[(&str, u32, bool)]) -> Vec<Box<dyn Service>> {
        specs
            .iter()
            .map(|(name, spec, fail)| {
                Box::new(Probe {
                    name: (*name).to_owned(),
                    spec: *spec,
                    fail_prepare: *fail,
                    journal: journal.clone(),
                }) as Box<dyn Service>
            })
            .collect()
    }

    fn take(journal: &Journal) -> Vec<String> {
        std::mem::take(&mut *journal.lock().unwrap_or_else(PoisonError::into_inner))
    }

    async fn service_set() -> (ServiceSet, mpsc::UnboundedReceiver<ServiceExit>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("arauto.toml");
        std::fs::write(&path, "").unwrap();
        let config = crate::config::load_with_env(Some(&path), Vec::new()).unwrap();
        let options = BuildOptions {
            purpose: Purpose::Run,
            dry_run: false,
        };
        let host = crate::plugin::PluginHost::new(crate::plugin::HostConfig::default()).unwrap();
        let state = Arc::new(build(config, &options, &host).await.unwrap());
        let (tx, rx) = mpsc::unbounded_channel();
        let info = Arc::new(RuntimeInfo::new("/dev/null".into()));
        (
            ServiceSet::new(
                StateHandle::new(state),
                info,
                Resources::default(),
                Heartbeats::default(),
                tx,
            ),
            rx,
        )
    }

    const WAIT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn reload_keeps_unchanged_replaces_changed_and_removes_missing_services() {
        let journal = Journal::default();
        let (mut set, _exits) = service_set().await;
        let prepared = set
            .prepare(probes(
                &journal,
                &[("a", 1, false), ("b", 1, false), ("c", 1, false)],
            ))
            .await;
        let Ok(prepared) = prepared else {
            panic!("prepare failed")
        };
        set.commit(prepared, WAIT).await;
        assert_eq!(
            take(&journal),
            ["prepare a#1", "prepare b#1", "prepare c#1"]
        );

        let prepared = set
            .prepare(probes(
                &journal,
                &[("a", 1, false), ("b", 2, false), ("d", 1, false)],
            ))
            .await;
        let Ok(prepared) = prepared else {
            panic!("prepare failed")
        };
        assert_eq!(prepared.starting(), ["b", "d"]);
        // Prepared before anything stops.
        assert_eq!(take(&journal), ["prepare b#2", "prepare d#1"]);
        set.commit(prepared, WAIT).await;
        let mut stopped = take(&journal);
        stopped.sort();
        assert_eq!(stopped, ["stop b#1", "stop c#1"]);
        assert_eq!(set.runtime.services(), ["a", "b", "d"]);

        assert!(set.shutdown(WAIT).await.is_empty());
        let mut stopped = take(&journal);
        stopped.sort();
        assert_eq!(stopped, ["stop a#1", "stop b#2", "stop d#1"]);
    }

    #[tokio::test]
    async fn a_failing_prepare_rejects_the_reload_and_leaves_the_old_services_running() {
        let journal = Journal::default();
        let (mut set, _exits) = service_set().await;
        let Ok(prepared) = set.prepare(probes(&journal, &[("a", 1, false)])).await else {
            panic!("prepare failed")
        };
        set.commit(prepared, WAIT).await;
        take(&journal);
        let result = set
            .prepare(probes(&journal, &[("a", 2, false), ("b", 1, true)]))
            .await;
        match result {
            Err((name, error)) => {
                assert_eq!(name, "b");
                assert_eq!(error.to_string(), "b cannot start");
            }
            Ok(_) => panic!("expected the prepare of b to fail"),
        }
        assert_eq!(take(&journal), ["prepare a#2", "prepare b#1"]);
        assert_eq!(set.runtime.services(), ["a"]);
        assert!(set.shutdown(WAIT).await.is_empty());
        assert_eq!(take(&journal), ["stop a#1"]);
    }

    #[tokio::test]
    async fn a_service_that_fails_on_its_own_is_reported() {
        struct Crash;
        #[async_trait::async_trait]
        impl Service for Crash {
            fn name(&self) -> &str {
                "crash"
            }
            fn spec(&self) -> ServiceSpec {
                ServiceSpec::new(())
            }
            async fn prepare(
                self: Box<Self>,
                _ctx: ServiceContext,
            ) -> Result<ServiceTask, ServiceError> {
                Ok(Box::pin(async { Err("disk on fire".into()) }))
            }
        }
        let (mut set, mut exits) = service_set().await;
        let Ok(prepared) = set.prepare(vec![Box::new(Crash)]).await else {
            panic!("prepare failed")
        };
        set.commit(prepared, WAIT).await;
        let exit = tokio::time::timeout(WAIT, exits.recv())
            .await
            .ok()
            .flatten();
        let Some(exit) = exit else {
            panic!("no exit reported")
        };
        assert_eq!(exit.name, "crash");
        assert_eq!(exit.result, Err("disk on fire".to_owned()));
    }
}
