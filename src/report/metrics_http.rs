//! The Prometheus endpoint: `GET /metrics` on `daemon.metrics_listen`, in the
//! text exposition format (OpenMetrics flavour, as prometheus-client writes
//! it). Loopback only unless `daemon.metrics_allow_remote` is set (the
//! configuration refuses anything else, and the service checks again).
//!
//! Counters are bumped where things happen (poller, dispatcher, plugin host);
//! the queue and store gauges are read from the state database right before
//! each scrape, so they are never stale.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State as AxumState;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jiff::Timestamp;

use super::{SharedStore, pacing_day, pacing_state};
use crate::daemon::{
    Service, ServiceContext, ServiceError, ServiceProvider, ServiceSpec, ServiceTask, StateHandle,
};
use crate::metrics::{ChannelGauges, Metrics, StoreGauges};

/// Content type of prometheus-client's text encoding.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves `GET /metrics`.
pub struct MetricsService {
    listen: SocketAddr,
    allow_remote: bool,
}

impl MetricsService {
    /// A metrics endpoint on `listen`.
    pub fn new(listen: SocketAddr, allow_remote: bool) -> Self {
        Self {
            listen,
            allow_remote,
        }
    }
}

/// The provider of the metrics service: present while `daemon.metrics_listen` is set.
pub fn service_provider() -> ServiceProvider {
    Arc::new(|state| {
        let daemon = &state.config.daemon;
        daemon
            .metrics_listen
            .map(|listen| {
                Box::new(MetricsService::new(listen, daemon.metrics_allow_remote))
                    as Box<dyn Service>
            })
            .into_iter()
            .collect()
    })
}

#[derive(Clone)]
struct Endpoint {
    metrics: Arc<Metrics>,
    store: Option<Arc<SharedStore>>,
    state: StateHandle,
}

#[async_trait::async_trait]
impl Service for MetricsService {
    fn name(&self) -> &str {
        "metrics"
    }

    fn spec(&self) -> ServiceSpec {
        ServiceSpec::new((self.listen, self.allow_remote))
    }

    async fn prepare(self: Box<Self>, ctx: ServiceContext) -> Result<ServiceTask, ServiceError> {
        if !self.listen.ip().is_loopback() && !self.allow_remote {
            return Err(format!(
                "daemon.metrics_listen = {} is not a loopback address; set daemon.metrics_allow_remote = true to expose metrics on the network",
                self.listen
            )
            .into());
        }
        let listener = tokio::net::TcpListener::bind(self.listen)
            .await
            .map_err(|e| {
                format!(
                    "cannot listen on daemon.metrics_listen = {}: {e}",
                    self.listen
                )
            })?;
        let metrics = match ctx.resource::<Metrics>() {
            Some(metrics) => metrics,
            None => {
                tracing::warn!("no shared metrics registry: only the queue gauges are exported");
                Arc::new(Metrics::new())
            }
        };
        let endpoint = Endpoint {
            metrics,
            store: ctx.resource::<SharedStore>(),
            state: ctx.state.clone(),
        };
        let router = Router::new()
            .route("/metrics", get(scrape))
            .fallback(|| async {
                (
                    StatusCode::NOT_FOUND,
                    "not found: metrics are at /metrics\n",
                )
            })
            .with_state(endpoint);
        let local = listener.local_addr().unwrap_or(self.listen);
        tracing::info!(listen = %local, "metrics on http://{local}/metrics");
        let shutdown = ctx.shutdown.clone();
        Ok(Box::pin(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await
                .map_err(|e| Box::new(e) as ServiceError)
        }))
    }
}

async fn scrape(AxumState(endpoint): AxumState<Endpoint>) -> Response {
    if let Some(store) = &endpoint.store
        && let Err(error) = refresh(&endpoint, store).await
    {
        tracing::warn!("metrics: cannot read the queue gauges: {error}");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("cannot read the state database: {error}\n"),
        )
            .into_response();
    }
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
    for (id, runtime) in &state.channels {
        let stats = store.lane_stats(id).await?;
        let status = store.channel_status(id).await?;
        let pacing = pacing_state(&status);
        let today = pacing_day(&runtime.pacing, config, now);
        channels.push(ChannelGauges {
            channel: id.clone(),
            depth: stats.pending,
            running: stats.running,
            oldest_due_age_secs: stats
                .oldest_due
                .map_or(0, |due| now.duration_since(due).as_secs().max(0)),
            paused: status.paused.is_some(),
            sent_today: if pacing.day == Some(today) {
                u64::from(pacing.sent_today)
            } else {
                0
            },
        });
    }
    let mut stores = Vec::with_capacity(config.stores.len());
    for id in config.stores.keys() {
        let status = store.store_status(id).await?.unwrap_or_default();
        stores.push(StoreGauges {
            store: id.clone(),
            last_poll_ok_unix: status.last_poll_ok_at.map(|t| t.as_second()),
            paused: status.paused.is_some(),
        });
    }
    endpoint.metrics.set_gauges(&channels, &stores);
    Ok(())
}
