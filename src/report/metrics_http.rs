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
//! Connections are bounded and timed out by the shared accept loop
//! ([`crate::http_listener`]).

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State as AxumState;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jiff::Timestamp;
use tokio_util::sync::CancellationToken;

use crate::http_listener::accept_loop;
use crate::metrics::{ChannelGauges, ChecklistGauge, ChecklistLabels, Metrics, StoreGauges};
use crate::queue::SharedStore;
use crate::report::Context;
use crate::report::checklist::{self, CheckQuery, Level};
use crate::send::channel::pacing_policy;
use crate::send::pacing::PacingState;
use crate::state::StateHandle;

/// Content type of prometheus-client's text encoding.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

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
    /// Makes what the checklist is made from (as `arauto check` over the
    /// socket): the daemon's control context, passed in as a function so
    /// that reporting does not depend on the control socket.
    pub operator_context: Arc<dyn Fn() -> Context + Send + Sync>,
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
    let ctx = (endpoint.operator_context)();
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
