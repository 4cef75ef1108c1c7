//! The Prometheus endpoint: `GET /metrics` on `daemon.metrics_listen`, in the
//! text exposition format (OpenMetrics flavour, as prometheus-client writes
//! it). Loopback only unless `daemon.metrics_allow_remote` is set (the
//! configuration refuses anything else, and the service checks again).
//!
//! Counters are bumped where things happen (poller, dispatcher, plugin host);
//! the queue and store gauges are read from the state database right before
//! each scrape, so they are never stale. The readiness checklist
//! (`arauto_checklist_status`) is made at scrapes too, at most every 30 s
//! (it reads every store's records), and without its live lines: those call
//! the providers' APIs, which frequent scrapes must not do.
//!
//! Connections are bounded so that clients cannot use up the daemon's file
//! descriptors (which the control socket and the plugins need too): at most
//! [`MAX_CONNECTIONS`] are open at once, and further ones wait in the kernel's
//! accept backlog, where they hold no descriptor of the daemon, until one
//! closes. A request's head must arrive within [`HEADER_READ_TIMEOUT`], and a
//! connection on which nothing moves for [`IDLE_TIMEOUT`] is closed.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::State as AxumState;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use jiff::Timestamp;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Semaphore, TryAcquireError};
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::control::ControlContext;
use crate::metrics::{ChannelGauges, ChecklistGauge, ChecklistLabels, Metrics, StoreGauges};
use crate::queue::SharedStore;
use crate::report::checklist::{self, CheckQuery, Level};
use crate::send::channel::pacing_policy;
use crate::send::pacing::PacingState;
use crate::state::StateHandle;

/// Content type of prometheus-client's text encoding.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Connections open at once. A Prometheus server keeps one per target, so
/// this leaves room for a few more scrapers and a curl; beyond it, new
/// connections wait in the accept backlog (and a warning is logged once).
pub const MAX_CONNECTIONS: usize = 32;
/// A request's head must be complete within this, counted from when the
/// connection starts waiting for it: once accepted, and again after each
/// answer. The latter makes it the keep-alive idle timeout as well (a scraper
/// reconnects for its next scrape).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection on which no byte is read or written for this long is closed
/// (a peer that vanished, or stopped reading its answer).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the metrics endpoint cannot listen.
#[derive(Debug, thiserror::Error)]
pub enum MetricsBindError {
    /// The address could not be bound.
    #[error("cannot listen on daemon.metrics_listen = {listen}: {source}")]
    Io {
        /// `daemon.metrics_listen`.
        listen: SocketAddr,
        /// Why.
        source: io::Error,
    },
}

/// Bind the metrics endpoint on `listen`. (That it is a loopback address
/// unless `daemon.metrics_allow_remote` says otherwise, the configuration
/// checks when it loads.)
pub fn bind(listen: SocketAddr) -> Result<tokio::net::TcpListener, MetricsBindError> {
    let io_error = |source| MetricsBindError::Io { listen, source };
    let listener = std::net::TcpListener::bind(listen).map_err(io_error)?;
    listener.set_nonblocking(true).map_err(io_error)?;
    let listener = tokio::net::TcpListener::from_std(listener).map_err(io_error)?;
    let local = listener.local_addr().unwrap_or(listen);
    tracing::info!(listen = %local, "metrics on http://{local}/metrics");
    Ok(listener)
}

/// What `GET /metrics` reads: the registry the stages count into, and the
/// database and state for the queue and channel gauges.
#[derive(Clone)]
pub struct Endpoint {
    /// The stages' counters.
    pub metrics: Arc<Metrics>,
    /// The state database.
    pub store: SharedStore,
    /// The current state.
    pub state: StateHandle,
    /// What the checklist is made from (as `arauto check` over the socket).
    pub control: ControlContext,
}

/// Serve `GET /metrics` on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    endpoint: Endpoint,
    shutdown: CancellationToken,
) {
    let router = Router::new()
        .route("/metrics", get(scrape))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                "not found: metrics are at /metrics\n",
            )
        })
        .with_state(endpoint);
    accept_loop("metrics", listener, router, shutdown).await;
}

/// Accept connections while fewer than [`MAX_CONNECTIONS`] are open, and
/// serve each one with the timeouts above. `what` names the endpoint in log
/// lines (the webhook listener shares this loop).
pub(crate) async fn accept_loop(
    what: &'static str,
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: CancellationToken,
) {
    let connections = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut saturated = false;
    let mut failures: u32 = 0;
    loop {
        let permit = match slots.clone().try_acquire_owned() {
            Ok(permit) => {
                saturated = false;
                permit
            }
            Err(TryAcquireError::Closed) => break,
            Err(TryAcquireError::NoPermits) => {
                if !saturated {
                    saturated = true;
                    tracing::warn!(
                        "{what}: {MAX_CONNECTIONS} connections open, the limit; new ones wait until one closes"
                    );
                }
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    permit = slots.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                }
            }
        };
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => {
                failures = 0;
                stream
            }
            Err(error) => {
                // Typically EMFILE: back off instead of spinning, and keep serving.
                failures = failures.saturating_add(1);
                let pause = Duration::from_millis(100)
                    .saturating_mul(failures)
                    .min(Duration::from_secs(5));
                tracing::warn!("{what}: accept failed: {error}; retrying in {pause:?}");
                tokio::time::sleep(pause).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(router.clone());
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let _permit = permit;
            let io = TokioIo::new(IdleTimeout::new(stream, IDLE_TIMEOUT));
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            let connection = http.serve_connection(io, service);
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = shutdown.cancelled() => {
                    // Finish the answer in flight, if any, then close.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = result {
                tracing::debug!("{what}: connection closed: {error}");
            }
        });
    }
    // Stop accepting before draining.
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// A stream that fails with `TimedOut` once neither reading nor writing has
/// made progress for `limit` while the server waits on it.
struct IdleTimeout<T> {
    inner: T,
    limit: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<T> IdleTimeout<T> {
    fn new(inner: T, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            deadline: Box::pin(tokio::time::sleep(limit)),
        }
    }

    fn progressed(&mut self) {
        let next = tokio::time::Instant::now() + self.limit;
        self.deadline.as_mut().reset(next);
    }

    /// The inner stream is not ready: wait, unless it has been idle too long.
    fn pending<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no traffic for {}s", self.limit.as_secs()),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleTimeout<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                this.progressed();
                Poll::Ready(result)
            }
            Poll::Pending => this.pending(cx),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(result) => {
                this.progressed();
                Poll::Ready(result)
            }
            Poll::Pending => this.pending(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(result) => {
                this.progressed();
                Poll::Ready(result)
            }
            Poll::Pending => this.pending(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Ready(result) => Poll::Ready(result),
            Poll::Pending => this.pending(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

async fn scrape(AxumState(endpoint): AxumState<Endpoint>) -> Response {
    if let Err(error) = refresh(&endpoint, &endpoint.store).await {
        tracing::warn!("metrics: cannot read the queue gauges: {error}");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("cannot read the state database: {error}\n"),
        )
            .into_response();
    }
    refresh_checklist(&endpoint).await;
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        endpoint.metrics.encode(),
    )
        .into_response()
}

/// Read every configured channel's and store's gauges from the database.
async fn refresh(endpoint: &Endpoint, store: &SharedStore) -> Result<(), crate::queue::Error> {
    let state = endpoint.state.load();
    let config = &state.config;
    let now = Timestamp::now();
    let mut channels = Vec::with_capacity(config.channels.len());
    let time_zone = &config.daemon.timezone;
    for (id, runtime) in &state.channels {
        let stats = store.channel_stats(id).await?;
        let status = store.channel_status(id).await?;
        let pacing = PacingState::of(&status);
        let policy = pacing_policy(&runtime.config, runtime.plugin.sender_info(), time_zone);
        let today = policy.day_of(now, time_zone);
        let eta_secs = match policy.eta(&pacing, stats.pending, now) {
            Some(done) => done.duration_since(now).as_secs_f64().max(0.0),
            None if stats.pending == 0 => 0.0,
            // Waiting jobs that the daily cap never lets out.
            None => f64::INFINITY,
        };
        channels.push(ChannelGauges {
            channel: id.clone(),
            depth: stats.pending,
            running: stats.running,
            oldest_due_age_secs: stats
                .oldest_due
                .map_or(0, |due| now.duration_since(due).as_secs().max(0)),
            paused: status.paused.is_some(),
            sent_today: u64::from(pacing.sent_on(today)),
            eta_secs,
        });
    }
    let mut stores = Vec::with_capacity(config.stores.len());
    for (id, store_config) in &config.stores {
        let status = store.store_status(id).await?.unwrap_or_default();
        stores.push(StoreGauges {
            store: id.clone(),
            last_poll_ok_unix: status.last_poll_ok_at.map(|t| t.as_second()),
            paused: status.paused.is_some(),
            poll_interval_secs: store_config
                .enabled
                .then(|| store_config.poll_interval.as_secs().unsigned_abs()),
        });
    }
    endpoint.metrics.set_gauges(&channels, &stores);
    Ok(())
}

/// The checklist series are made again at most this often (scrapes in
/// between export the previous ones): Prometheus scrapes every 15-60 s, and the
/// alert waits 10 minutes anyway.
const CHECKLIST_EVERY: Duration = Duration::from_secs(30);

/// Export the checklist's lines (without live checks). A checklist that
/// cannot be made leaves the previous lines and is logged: the other metrics
/// are still worth a scrape.
async fn refresh_checklist(endpoint: &Endpoint) {
    if !endpoint.metrics.checklist_due(CHECKLIST_EVERY) {
        return;
    }
    let ctx = endpoint.control.operator_context();
    let checklist = match checklist::without_live_checks(&ctx, &CheckQuery::default()).await {
        Ok(checklist) => checklist,
        Err(error) => {
            tracing::warn!("metrics: cannot make the checklist: {error}");
            return;
        }
    };
    // The worst line per (section, id, item): a series per item, as alerts
    // and dashboards address them.
    let mut worst: BTreeMap<ChecklistLabels, i64> = BTreeMap::new();
    for (section, line) in checklist.lines() {
        let labels = ChecklistLabels {
            section: label_of(&section.kind),
            id: section.id.clone().unwrap_or_else(|| "arauto".to_owned()),
            item: label_of(&line.item),
        };
        let level = match line.status {
            Level::Ok => 0,
            Level::Warn => 1,
            Level::Fail => 2,
        };
        let entry = worst.entry(labels).or_insert(level);
        *entry = (*entry).max(level);
    }
    let lines: Vec<ChecklistGauge> = worst
        .into_iter()
        .map(|(labels, level)| ChecklistGauge { labels, level })
        .collect();
    endpoint.metrics.set_checklist(&lines);
}

/// The name `arauto check --json` gives a section kind or item (`last-poll`).
fn label_of(value: &impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => "unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {

    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::IdleTimeout;

    #[tokio::test]
    async fn a_peer_that_sends_nothing_is_cut_off() {
        let (_peer, ours) = tokio::io::duplex(64);
        let mut ours = IdleTimeout::new(ours, Duration::from_millis(100));
        let mut buf = [0_u8; 8];
        let read = tokio::time::timeout(Duration::from_secs(10), ours.read(&mut buf))
            .await
            .expect("cut off well before 10 s");
        let error = read.expect_err("an idle peer is an error");
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn a_peer_that_stops_reading_is_cut_off() {
        let (_peer, ours) = tokio::io::duplex(64);
        let mut ours = IdleTimeout::new(ours, Duration::from_millis(100));
        let write = tokio::time::timeout(Duration::from_secs(10), ours.write_all(&[7; 4096]))
            .await
            .expect("cut off well before 10 s");
        let error = write.expect_err("a stalled write is an error");
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn traffic_keeps_a_connection_open() {
        let (mut peer, ours) = tokio::io::duplex(64);
        // Bytes every 100 ms for 1.5 s: longer than the limit in total, never
        // idle for as long as the limit.
        let mut ours = IdleTimeout::new(ours, Duration::from_secs(1));
        let talker = tokio::spawn(async move {
            for _ in 0..15 {
                peer.write_all(b"x").await.unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let mut got = Vec::new();
        ours.read_to_end(&mut got)
            .await
            .expect("no timeout while bytes flow");
        assert_eq!(got, [b'x'; 15]);
        talker.await.unwrap();
    }
}
