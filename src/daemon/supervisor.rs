//! The running services, keyed by [`ServiceKey`]: started in two steps,
//! stopped on reload or shutdown, tracked so shutdown can wait for all of
//! them (mini-redis style).
//!
//! A start first acquires resources (binds sockets) and may fail; only when
//! every new service acquired its resources does anything stop or start, so a
//! failing start rejects a reload with nothing disturbed. A service that ends
//! on its own — it panicked, or its store or channel is gone — is reported on
//! the exit channel; the runtime decides what that means.
//!
//! A store's poller is not a task of its own: its start adds the store to the
//! daemon's [`PollScheduler`] and its stop removes it (waiting for its turn
//! under way), and the scheduler reports a poller that ends on its own on
//! the same exit channel ([`poll_exit_report`]).

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::services::{ServiceKey, ServiceTask};
use crate::poll::scheduler::{PollExitReport, PollScheduler};
use crate::state::RuntimeInfo;

/// How a service ended without being asked to stop.
#[derive(Debug)]
pub struct ServiceExit {
    /// The service.
    pub key: ServiceKey,
    /// Which start of it ended (a key stopped and started again by later
    /// reloads is another start).
    pub start: u64,
    /// Its panic message, if it panicked; `None` when it simply returned.
    pub panic: Option<String>,
}

struct Running {
    work: Work,
    start: u64,
}

/// What a running service is.
enum Work {
    /// A task of its own, stopped by cancelling its token.
    Task {
        token: CancellationToken,
        handle: JoinHandle<()>,
    },
    /// A store polled by the scheduler.
    Polled(PollScheduler),
}

/// Services whose resources are acquired for a start or reload, not yet running.
pub struct Prepared {
    ready: Vec<(ServiceKey, CancellationToken, ServiceTask)>,
    wanted: BTreeSet<ServiceKey>,
}

impl Prepared {
    /// The services that will start.
    pub fn starting(&self) -> Vec<String> {
        self.ready.iter().map(|(key, ..)| key.to_string()).collect()
    }
}

/// The running services.
pub struct Supervisor {
    running: BTreeMap<ServiceKey, Running>,
    tracker: TaskTracker,
    root: CancellationToken,
    exits: mpsc::UnboundedSender<ServiceExit>,
    runtime: Arc<RuntimeInfo>,
    /// Numbers the starts, so a late exit report of a replaced start is
    /// told apart from the running one.
    starts: u64,
    /// The scheduler of the pollers started so far (stopped at shutdown).
    polls: Option<PollScheduler>,
}

/// What the poll scheduler tells `exits` when a store's poller ends on its
/// own: the same report a task's end makes.
pub fn poll_exit_report(exits: mpsc::UnboundedSender<ServiceExit>) -> PollExitReport {
    Arc::new(move |store, start, panic| {
        // The runtime may already be gone when the daemon stops.
        let _ = exits.send(ServiceExit {
            key: ServiceKey::Poll(store.to_owned()),
            start,
            panic: panic.map(|panic| panic_message(panic.as_ref())),
        });
    })
}

impl Supervisor {
    /// No services yet; ends of services are sent to `exits`, running ones
    /// are listed in `runtime`.
    pub fn new(runtime: Arc<RuntimeInfo>, exits: mpsc::UnboundedSender<ServiceExit>) -> Self {
        Self {
            running: BTreeMap::new(),
            tracker: TaskTracker::new(),
            root: CancellationToken::new(),
            exits,
            runtime,
            starts: 0,
            polls: None,
        }
    }

    /// Start (acquire resources of) every key of `desired` not running yet,
    /// with `start`; on the first error, release what was acquired and
    /// return the key at fault.
    pub fn prepare<E>(
        &self,
        desired: Vec<ServiceKey>,
        mut start: impl FnMut(&ServiceKey, CancellationToken) -> Result<ServiceTask, E>,
    ) -> Result<Prepared, (ServiceKey, E)> {
        let mut prepared = Prepared {
            ready: Vec::new(),
            wanted: BTreeSet::new(),
        };
        for key in desired {
            if !prepared.wanted.insert(key.clone()) || self.running.contains_key(&key) {
                continue;
            }
            let token = self.root.child_token();
            match start(&key, token.clone()) {
                Ok(task) => prepared.ready.push((key, token, task)),
                // Dropping the prepared tasks releases their resources.
                Err(error) => return Err((key, error)),
            }
        }
        Ok(prepared)
    }

    /// Stop what `prepared` no longer wants, then start the prepared tasks.
    /// The services running now (stopped ones have ended or been aborted).
    pub fn running_keys(&self) -> impl Iterator<Item = &ServiceKey> {
        self.running.keys()
    }

    pub async fn commit(&mut self, prepared: Prepared, stop_timeout: Duration) {
        let to_stop: Vec<ServiceKey> = self
            .running
            .keys()
            .filter(|key| !prepared.wanted.contains(*key))
            .cloned()
            .collect();
        for key in to_stop {
            if let Some(running) = self.running.remove(&key) {
                stop_one(&key, running, stop_timeout).await;
            }
        }
        for (key, token, task) in prepared.ready {
            self.starts += 1;
            let start = self.starts;
            let work = match task {
                ServiceTask::Own(task) => {
                    let handle = self.spawn(key.clone(), start, token.clone(), task);
                    Work::Task { token, handle }
                }
                ServiceTask::Polled { polls, store } => {
                    polls.add(&store, start);
                    self.polls.get_or_insert_with(|| polls.clone());
                    Work::Polled(polls)
                }
            };
            self.running.insert(key, Running { work, start });
        }
        self.publish();
    }

    fn spawn(
        &self,
        key: ServiceKey,
        start: u64,
        token: CancellationToken,
        task: futures::future::BoxFuture<'static, ()>,
    ) -> JoinHandle<()> {
        let exits = self.exits.clone();
        self.tracker.spawn(async move {
            tracing::debug!(service = %key, "service started");
            let panic = AssertUnwindSafe(task)
                .catch_unwind()
                .await
                .err()
                .map(|panic| panic_message(panic.as_ref()));
            if token.is_cancelled() {
                match &panic {
                    None => tracing::debug!(service = %key, "service stopped"),
                    Some(error) => {
                        tracing::warn!(service = %key, "service failed while stopping: {error}")
                    }
                }
            } else {
                // The runtime may already be gone when the daemon stops.
                let _ = exits.send(ServiceExit { key, start, panic });
            }
        })
    }

    /// Cancel every service and wait until all have finished or `timeout`
    /// passes. Returns the services still running at the deadline.
    pub async fn shutdown(&mut self, timeout: Duration) -> Vec<String> {
        self.root.cancel();
        if let Some(polls) = &self.polls {
            self.tracker.spawn(polls.clone().shutdown());
        }
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
            .filter(|(key, running)| match &running.work {
                Work::Task { handle, .. } => !handle.is_finished(),
                Work::Polled(polls) => match key {
                    ServiceKey::Poll(store) => polls.busy(store),
                    _ => false,
                },
            })
            .map(|(key, _)| key.to_string())
            .collect();
        for running in self.running.values() {
            if let Work::Task { handle, .. } = &running.work {
                handle.abort();
            }
        }
        if let Some(polls) = &self.polls {
            polls.abort();
        }
        stragglers
    }

    /// Forget a service that ended on its own — unless the report is about
    /// an earlier start of a key that runs again now.
    pub fn remove_exited(&mut self, exit: &ServiceExit) {
        if self
            .running
            .get(&exit.key)
            .is_some_and(|running| running.start == exit.start)
        {
            self.running.remove(&exit.key);
            self.publish();
        }
    }

    /// List the running services by name (as `arauto status` shows them).
    fn publish(&self) {
        let mut names: Vec<String> = self.running.keys().map(ToString::to_string).collect();
        names.sort();
        self.runtime.set_services(names);
    }
}

async fn stop_one(key: &ServiceKey, running: Running, timeout: Duration) {
    let (token, mut handle) = match running.work {
        Work::Task { token, handle } => (token, handle),
        Work::Polled(polls) => {
            if let ServiceKey::Poll(store) = key {
                polls.remove(store, timeout).await;
            }
            return;
        }
    };
    token.cancel();
    if tokio::time::timeout(timeout, &mut handle).await.is_err() {
        tracing::error!(service = %key, "service did not stop within {timeout:?}; aborting it");
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

    /// What the test services did, in order.
    type Journal = Arc<Mutex<Vec<String>>>;

    fn log(journal: &Journal, entry: String) {
        journal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(entry);
    }

    fn take(journal: &Journal) -> Vec<String> {
        std::mem::take(&mut *journal.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn store(id: &str) -> ServiceKey {
        ServiceKey::Poll(id.to_owned())
    }

    /// A start function whose services log their start and stop, and which
    /// refuses the keys in `refuse`.
    fn probe<'a>(
        journal: &'a Journal,
        refuse: &'a [&'a str],
    ) -> impl FnMut(&ServiceKey, CancellationToken) -> Result<ServiceTask, String> + 'a {
        move |key, token| {
            let name = key.to_string();
            log(journal, format!("start {name}"));
            if refuse.contains(&name.as_str()) {
                return Err(format!("{name} cannot start"));
            }
            let journal = journal.clone();
            Ok(ServiceTask::Own(
                async move {
                    token.cancelled().await;
                    log(&journal, format!("stop {name}"));
                }
                .boxed(),
            ))
        }
    }

    fn supervisor() -> (Supervisor, mpsc::UnboundedReceiver<ServiceExit>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let info = Arc::new(RuntimeInfo::new("/dev/null".into()));
        (Supervisor::new(info, tx), rx)
    }

    const WAIT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn reload_keeps_unchanged_keys_starts_new_ones_and_stops_missing_ones() {
        let journal = Journal::default();
        let (mut set, _exits) = supervisor();
        let prepared = set
            .prepare(vec![store("a"), store("b")], probe(&journal, &[]))
            .map_err(|(_, e)| e)
            .unwrap();
        set.commit(prepared, WAIT).await;
        assert_eq!(take(&journal), ["start poll/a", "start poll/b"]);

        let prepared = set
            .prepare(
                vec![store("a"), store("c"), ServiceKey::Housekeeping],
                probe(&journal, &[]),
            )
            .map_err(|(_, e)| e)
            .unwrap();
        assert_eq!(prepared.starting(), ["poll/c", "housekeeping"]);
        // Acquired before anything stops.
        assert_eq!(take(&journal), ["start poll/c", "start housekeeping"]);
        set.commit(prepared, WAIT).await;
        assert_eq!(take(&journal), ["stop poll/b"]);
        assert_eq!(set.runtime.services(), ["housekeeping", "poll/a", "poll/c"]);

        assert!(set.shutdown(WAIT).await.is_empty());
        let mut stopped = take(&journal);
        stopped.sort();
        assert_eq!(stopped, ["stop housekeeping", "stop poll/a", "stop poll/c"]);
    }

    #[tokio::test]
    async fn a_failing_start_rejects_the_reload_and_leaves_the_old_services_running() {
        let journal = Journal::default();
        let (mut set, _exits) = supervisor();
        let prepared = set
            .prepare(vec![store("a")], probe(&journal, &[]))
            .map_err(|(_, e)| e)
            .unwrap();
        set.commit(prepared, WAIT).await;
        take(&journal);
        let Err((key, error)) =
            set.prepare(vec![store("b"), store("c")], probe(&journal, &["poll/c"]))
        else {
            panic!("expected the start of poll/c to fail")
        };
        assert_eq!(key, store("c"));
        assert_eq!(error, "poll/c cannot start");
        assert_eq!(take(&journal), ["start poll/b", "start poll/c"]);
        assert_eq!(set.runtime.services(), ["poll/a"]);
        assert!(set.shutdown(WAIT).await.is_empty());
        assert_eq!(take(&journal), ["stop poll/a"]);
    }

    #[tokio::test]
    async fn a_moved_socket_is_a_new_service() {
        let journal = Journal::default();
        let (mut set, _exits) = supervisor();
        let old = ServiceKey::Control("/run/arauto/a.sock".into());
        let new = ServiceKey::Control("/run/arauto/b.sock".into());
        let prepared = set
            .prepare(vec![old], probe(&journal, &[]))
            .map_err(|(_, e)| e)
            .unwrap();
        set.commit(prepared, WAIT).await;
        let prepared = set
            .prepare(vec![new.clone()], probe(&journal, &[]))
            .map_err(|(_, e)| e)
            .unwrap();
        set.commit(prepared, WAIT).await;
        assert_eq!(
            take(&journal),
            ["start control", "start control", "stop control"]
        );
        assert!(set.running.contains_key(&new) && set.running.len() == 1);
        assert!(set.shutdown(WAIT).await.is_empty());
    }

    #[tokio::test]
    async fn a_late_exit_report_of_an_earlier_start_leaves_the_running_one_alone() {
        let (mut set, mut exits) = supervisor();
        // The first start of poll/a ends on its own at once.
        let prepared = set
            .prepare(vec![store("a")], |_, _| {
                Ok::<_, String>(ServiceTask::Own(async {}.boxed()))
            })
            .map_err(|(_, e)| e)
            .unwrap();
        set.commit(prepared, WAIT).await;
        let first = tokio::time::timeout(WAIT, exits.recv())
            .await
            .unwrap()
            .unwrap();
        // Before its report is handled, reloads stop and start poll/a again.
        let journal = Journal::default();
        let empty = set
            .prepare(Vec::new(), probe(&journal, &[]))
            .map_err(|(_, e)| e)
            .unwrap();
        set.commit(empty, WAIT).await;
        let again = set
            .prepare(vec![store("a")], probe(&journal, &[]))
            .map_err(|(_, e)| e)
            .unwrap();
        set.commit(again, WAIT).await;
        set.remove_exited(&first);
        assert_eq!(set.runtime.services(), ["poll/a"]);
        assert!(set.shutdown(WAIT).await.is_empty());
        assert_eq!(take(&journal), ["start poll/a", "stop poll/a"]);
    }

    #[tokio::test]
    async fn a_service_that_panics_is_reported() {
        let (mut set, mut exits) = supervisor();
        let prepared = set
            .prepare(vec![ServiceKey::Housekeeping], |_, _| {
                Ok::<_, String>(ServiceTask::Own(async { panic!("disk on fire") }.boxed()))
            })
            .map_err(|(_, e)| e)
            .unwrap();
        set.commit(prepared, WAIT).await;
        let exit = tokio::time::timeout(WAIT, exits.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(exit.key, ServiceKey::Housekeeping);
        assert_eq!(exit.panic.as_deref(), Some("panicked: disk on fire"));
    }
}
