//! Which services the daemon runs for a [`State`], and how each one starts.
//!
//! The set is known when the code is compiled: the control socket, the
//! metrics endpoint (when `daemon.metrics_listen` is set), the webhook
//! listener (when `[daemon.webhooks]` is present), one poller per
//! enabled store (a record in the [`PollScheduler`], not a task), one dispatcher per channel an enabled store uses, and
//! housekeeping. A [`ServiceKey`] names each one together with the resource
//! it holds (a socket path, a listen address), so a reload is a keyed diff, as
//! in Vector's topology: keys that stay keep running and read the new state
//! live through the [`StateHandle`], keys that go are stopped, new keys are
//! started — and a moved socket or address is a new key.

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use super::pipeline::Pipeline;
use crate::cluster::ownership::Resource;
use crate::control::{BindError, ControlContext};
use crate::heartbeat::Heartbeats;
use crate::model::ChannelId;
use crate::poll::push::{self, PushEndpoint, WebhooksBindError};
use crate::poll::scheduler::PollScheduler;
use crate::report::metrics_http::{self, MetricsBindError};
use crate::state::{RuntimeInfo, State, StateHandle};

/// One service of the daemon.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServiceKey {
    /// The control socket the CLI talks to, at this path.
    Control(PathBuf),
    /// `GET /metrics` on this address.
    Metrics(SocketAddr),
    /// `POST /hooks/<store>` on this address.
    Webhooks(SocketAddr),
    /// The poller of this store.
    Poll(String),
    /// The dispatcher of this channel.
    Send(ChannelId),
    /// Pruning of old delivery history.
    Housekeeping,
}

impl fmt::Display for ServiceKey {
    /// The name logs and `arauto status` show: `control`, `metrics`,
    /// `webhooks`, `poll/<store>`, `send/<channel>`, `housekeeping`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Control(_) => f.write_str("control"),
            Self::Metrics(_) => f.write_str("metrics"),
            Self::Webhooks(_) => f.write_str("webhooks"),
            Self::Poll(store) => write!(f, "poll/{store}"),
            Self::Send(channel) => write!(f, "send/{channel}"),
            Self::Housekeeping => f.write_str("housekeeping"),
        }
    }
}

/// The services `state` asks for.
pub fn desired(state: &State) -> Vec<ServiceKey> {
    let daemon = &state.config.daemon;
    let mut keys = vec![ServiceKey::Control(daemon.control_socket.clone())];
    keys.extend(daemon.metrics_listen.map(ServiceKey::Metrics));
    keys.extend(
        daemon
            .webhooks
            .as_ref()
            .map(|webhooks| ServiceKey::Webhooks(webhooks.listen)),
    );
    let enabled = || state.stores.values().filter(|store| store.config.enabled);
    keys.extend(enabled().map(|store| ServiceKey::Poll(store.config.id.clone())));
    // Only channels some enabled store sends through, or that one of those
    // falls back to: a channel nobody uses is validated, not dispatched.
    let used: BTreeSet<&str> = crate::config::channels::with_fallbacks(
        &state.config.channels,
        enabled().flat_map(|store| store.config.channels.iter().map(String::as_str)),
    );
    keys.extend(
        state
            .channels
            .keys()
            .filter(|id| used.contains(id.as_str()))
            .map(|id| ServiceKey::Send(ChannelId::from(id))),
    );
    keys.push(ServiceKey::Housekeeping);
    keys
}

/// The resource a service works for in a cluster (its poller's store, its
/// dispatcher's channel); `None` for the services every node runs.
pub fn owned_resource(key: &ServiceKey) -> Option<Resource> {
    match key {
        ServiceKey::Poll(store) => Some(Resource::Store(store.clone())),
        ServiceKey::Send(channel) => Some(Resource::Channel(channel.to_string())),
        _ => None,
    }
}

/// [`desired`] for a cluster node: the pollers and dispatchers of what it
/// owns, and every other service.
pub fn desired_owned(state: &State, owned: &BTreeSet<Resource>) -> Vec<ServiceKey> {
    desired(state)
        .into_iter()
        .filter(|key| owned_resource(key).is_none_or(|resource| owned.contains(&resource)))
        .collect()
}

/// A started service's work.
pub enum ServiceTask {
    /// A task of its own: runs until its shutdown token is cancelled, then
    /// finishes what is in flight and returns.
    Own(BoxFuture<'static, ()>),
    /// A store's poller: a record in the daemon's poll scheduler, not a
    /// task (a task per store cost ~3 KiB each).
    Polled {
        /// The scheduler that polls it.
        polls: PollScheduler,
        /// The store.
        store: String,
    },
}

/// Why a service could not start (nothing is left behind).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The control socket could not be bound.
    #[error(transparent)]
    Control(#[from] BindError),
    /// The metrics endpoint could not listen.
    #[error(transparent)]
    Metrics(#[from] MetricsBindError),
    /// The webhook listener could not listen.
    #[error(transparent)]
    Webhooks(#[from] WebhooksBindError),
}

/// What every service starts from.
#[derive(Clone)]
pub struct ServiceEnv {
    /// The shared handles.
    pub pipeline: Pipeline,
    /// The current state (swapped on reload).
    pub state: StateHandle,
    /// Process facts for `arauto status`.
    pub runtime: Arc<RuntimeInfo>,
    /// Where the loops register their heartbeats for the watchdog.
    pub heartbeats: Heartbeats,
    /// Every store's poller.
    pub polls: PollScheduler,
}

impl ServiceEnv {
    /// Acquire what `key` needs — bind its socket; everything else the key
    /// itself says — and return its work, which stops when `shutdown` is
    /// cancelled. Fails before anything runs, so a failed start can reject a
    /// reload with nothing disturbed.
    pub fn start(
        &self,
        key: &ServiceKey,
        shutdown: CancellationToken,
    ) -> Result<ServiceTask, StartError> {
        let Pipeline {
            db,
            metrics,
            clock,
            pushes,
            fence,
            ..
        } = self.pipeline.clone();
        let state = self.state.clone();
        let name = key.to_string();
        Ok(ServiceTask::Own(match key {
            ServiceKey::Control(path) => {
                let socket = crate::control::bind(path)?;
                let ctx = ControlContext {
                    state,
                    runtime: self.runtime.clone(),
                    db,
                    pushes,
                };
                crate::control::serve(socket, ctx, shutdown).boxed()
            }
            ServiceKey::Metrics(listen) => {
                let listener = metrics_http::bind(*listen)?;
                let endpoint = metrics_http::Endpoint {
                    metrics,
                    store: db.clone(),
                    state: state.clone(),
                    operator_context: {
                        let control = ControlContext {
                            state,
                            runtime: self.runtime.clone(),
                            db,
                            pushes,
                        };
                        Arc::new(move || control.operator_context())
                    },
                };
                metrics_http::serve(listener, endpoint, shutdown).boxed()
            }
            ServiceKey::Webhooks(listen) => {
                let listener = push::bind(*listen)?;
                let endpoint = PushEndpoint {
                    state,
                    inboxes: pushes,
                    metrics,
                };
                push::serve(listener, endpoint, shutdown).boxed()
            }
            ServiceKey::Poll(store) => {
                return Ok(ServiceTask::Polled {
                    polls: self.polls.clone(),
                    store: store.clone(),
                });
            }
            // A loop's heartbeat is registered when the loop starts, not
            // when it is prepared: stopping other services in between may
            // take a while, and a loop that has not started is not stuck.
            ServiceKey::Send(channel) => {
                let (channel, heartbeats) = (channel.clone(), self.heartbeats.clone());
                async move {
                    let heartbeat =
                        heartbeats.register(&name, crate::send::dispatch::HEARTBEAT_SILENCE);
                    crate::send::run(
                        channel, state, db, metrics, clock, heartbeat, shutdown, fence,
                    )
                    .await;
                }
                .boxed()
            }
            ServiceKey::Housekeeping => super::housekeeping::run(db, state, shutdown).boxed(),
        }))
    }
}
