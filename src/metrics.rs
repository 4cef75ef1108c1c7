//! Prometheus metrics (prometheus-client) and their loopback HTTP endpoint.
//!
//! One [`Metrics`] per daemon run, shared by the pollers, dispatchers and the
//! endpoint. Counters are bumped where things happen; the queue gauges are
//! refreshed from the state store right before each scrape.
//!
//! Label values that repeat across thousands of series (store ids, channel
//! ids, notification kinds, outcomes) are [`Label`]s: one shared allocation
//! per distinct value, handed out by [`Metrics`]' interner, instead of a
//! `String` per series and label. With 10,000 stores the per-store counters
//! and the job counters hold tens of thousands of series, and their label
//! strings were about 10 MiB of the daemon's heap after polling
//! (docs/BENCHMARKS.md, "RSS after polling").

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A label value shared by every series that carries it (see
/// [`Metrics::label`]): 16 bytes in a series' key instead of a `String`'s 24
/// plus its own allocation.
pub type Label = Arc<str>;

/// Labels of per-store metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StoreLabels {
    /// Store id.
    pub store: Label,
}

/// Labels of poll errors.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PollErrorLabels {
    /// Store id.
    pub store: Label,
    /// `retryable`, `permanent`, `misconfigured` or `sandbox`.
    pub class: Label,
}

/// Labels of job outcome counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    /// Store id.
    pub store: Label,
    /// Channel id.
    pub channel: Label,
    /// Notification kind.
    pub kind: Label,
    /// `enqueued`, `sent`, `failed`, `retried`, `cancelled`, `expired`, `skipped`,
    /// `fell-back` (handed to the channel's fallback: the recipient was unreachable).
    pub outcome: Label,
}

/// Labels of pushed-webhook counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PushLabels {
    /// Store id: a configured store, or `unknown` for any other path (so a
    /// scanner cannot grow the label set).
    pub store: Label,
    /// `accepted`, `ignored`, `not_found`, `too_large`, `rate_limited`,
    /// `bad_credentials`, `not_understood`, `unavailable`,
    /// `refusals_throttled`.
    pub outcome: Label,
}

/// Labels of per-channel gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelLabels {
    /// Channel id.
    pub channel: String,
}

/// Labels of plugin call metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginCallLabels {
    /// Plugin name.
    pub plugin: String,
    /// The channel id of a sender call; empty for connector calls, which
    /// are not split by store (see [`Metrics::connector_call`]).
    pub instance: String,
    /// `poll`, `send`, `check`.
    pub call: String,
}

/// Labels of channel fallbacks.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FallbackLabels {
    /// The channel the recipient could not be reached on.
    pub channel: String,
    /// The channel that got the notification instead.
    pub fallback: String,
}

/// Labels of plugin sandbox faults.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginLabels {
    /// Plugin name.
    pub plugin: String,
    /// Store or channel id.
    pub instance: String,
}

/// Labels of a cluster node's owned resources.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterOwnedLabels {
    /// `cluster.node_name`.
    pub node: String,
    /// `store` or `channel`.
    pub kind: String,
}

/// Labels of the readiness checklist's lines.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct ChecklistLabels {
    /// `general`, `store` or `channel`.
    pub section: String,
    /// The store or channel id (`arauto` for the general section).
    pub id: String,
    /// What the line checks, as `arauto check --json` names it (`last-poll`…).
    pub item: String,
}

/// One line of the checklist, for [`Metrics::set_checklist`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChecklistGauge {
    /// Section, id and item.
    pub labels: ChecklistLabels,
    /// 0 green, 1 yellow, 2 red.
    pub level: i64,
}

/// One channel's gauges, read from the state store before a scrape.
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelGauges {
    /// Channel id.
    pub channel: String,
    /// Jobs waiting.
    pub depth: u64,
    /// Jobs being sent.
    pub running: u64,
    /// Age of the oldest due job in seconds (0 when nothing is due).
    pub oldest_due_age_secs: i64,
    /// Paused (by an operator or automatically).
    pub paused: bool,
    /// Messages sent in the current pacing day.
    pub sent_today: u64,
    /// When the waiting jobs will all have gone out under the channel's
    /// pacing and daily cap, in seconds from now: 0 when none wait, infinite
    /// when the cap lets none out.
    pub eta_secs: f64,
}

/// One store's gauges, read from the state store before a scrape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreGauges {
    /// Store id.
    pub store: String,
    /// End of the latest successful poll, as Unix seconds.
    pub last_poll_ok_unix: Option<i64>,
    /// Polling paused.
    pub paused: bool,
    /// The configured poll interval, in seconds (staleness alerts compare
    /// the last poll's age with it); `None` for a disabled store, which is
    /// not polled at all.
    pub poll_interval_secs: Option<u64>,
}

/// Every metric arauto exports.
pub struct Metrics {
    registry: Mutex<Registry>,
    /// Every distinct label value of the per-store families, once (see
    /// [`Metrics::label`]). It grows with the values those families hold,
    /// which are never removed but for the gauges of removed stores (a
    /// handful of bytes each).
    labels: Mutex<HashSet<Label>>,
    /// Channels and stores whose gauges are exported (to drop removed ones).
    gauge_sets: Mutex<(BTreeSet<String>, BTreeSet<String>)>,
    channel_sent_today: Family<ChannelLabels, Gauge>,
    store_last_poll_ok: Family<StoreLabels, Gauge>,
    store_paused: Family<StoreLabels, Gauge>,
    polls: Family<StoreLabels, Counter>,
    poll_errors: Family<PollErrorLabels, Counter>,
    orders_seen: Family<StoreLabels, Counter>,
    events: Family<StoreLabels, Counter>,
    jobs: Family<JobLabels, Counter>,
    queue_depth: Family<ChannelLabels, Gauge>,
    queue_running: Family<ChannelLabels, Gauge>,
    oldest_due_age: Family<ChannelLabels, Gauge>,
    channel_paused: Family<ChannelLabels, Gauge>,
    plugin_calls: Family<PluginCallLabels, Histogram>,
    plugin_faults: Family<PluginLabels, Counter>,
    push_requests: Family<PushLabels, Counter>,
    fallbacks: Family<FallbackLabels, Counter>,
    store_poll_interval: Family<StoreLabels, Gauge>,
    queue_eta: Family<ChannelLabels, Gauge<f64, AtomicU64>>,
    checklist: Family<ChecklistLabels, Gauge>,
    /// When the checklist series were last made (see [`Metrics::checklist_due`]).
    checklist_made_at: Mutex<Option<std::time::Instant>>,
    /// Registered on first use, so a single node exports no cluster series.
    cluster_owned: std::sync::OnceLock<Family<ClusterOwnedLabels, Gauge>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every family registered under the `arauto_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("arauto");
        let polls = Family::<StoreLabels, Counter>::default();
        let poll_errors = Family::<PollErrorLabels, Counter>::default();
        let orders_seen = Family::<StoreLabels, Counter>::default();
        let events = Family::<StoreLabels, Counter>::default();
        let jobs = Family::<JobLabels, Counter>::default();
        let queue_depth = Family::<ChannelLabels, Gauge>::default();
        let queue_running = Family::<ChannelLabels, Gauge>::default();
        let oldest_due_age = Family::<ChannelLabels, Gauge>::default();
        let channel_paused = Family::<ChannelLabels, Gauge>::default();
        let plugin_calls = Family::<PluginCallLabels, Histogram>::new_with_constructor(|| {
            // 1 ms … ~16 s: a sender call is ~50 µs in the sandbox plus the
            // provider's round trip; a poll page may take seconds.
            Histogram::new(exponential_buckets(0.001, 2.0, 15))
        });
        let plugin_faults = Family::<PluginLabels, Counter>::default();
        let push_requests = Family::<PushLabels, Counter>::default();
        let fallbacks = Family::<FallbackLabels, Counter>::default();
        let channel_sent_today = Family::<ChannelLabels, Gauge>::default();
        let store_last_poll_ok = Family::<StoreLabels, Gauge>::default();
        let store_paused = Family::<StoreLabels, Gauge>::default();
        let store_poll_interval = Family::<StoreLabels, Gauge>::default();
        let queue_eta = Family::<ChannelLabels, Gauge<f64, AtomicU64>>::default();
        let checklist = Family::<ChecklistLabels, Gauge>::default();
        registry.register(
            "store_poll_interval_seconds",
            "The store's configured poll interval (absent while the store is disabled)",
            store_poll_interval.clone(),
        );
        registry.register(
            "queue_eta_seconds",
            "Time until the channel's waiting jobs have all been sent under its pacing and daily cap (0: none wait; +Inf: the cap lets none out)",
            queue_eta.clone(),
        );
        registry.register(
            "checklist_status",
            "Each line of the readiness checklist (arauto check) without its live checks: 0 green, 1 yellow, 2 red",
            checklist.clone(),
        );
        registry.register(
            "channel_sent_today",
            "Messages sent in the channel's current pacing day (the daily cap's day)",
            channel_sent_today.clone(),
        );
        registry.register(
            "store_last_poll_success_timestamp_seconds",
            "End of the store's latest successful poll (Unix time; absent before the first)",
            store_last_poll_ok.clone(),
        );
        registry.register(
            "store_paused",
            "1 while polling of a store is paused",
            store_paused.clone(),
        );
        registry.register("polls", "Completed poll sweeps", polls.clone());
        registry.register(
            "poll_errors",
            "Failed poll sweeps by error class",
            poll_errors.clone(),
        );
        registry.register(
            "orders_seen",
            "Orders seen for the first time",
            orders_seen.clone(),
        );
        registry.register(
            "order_events",
            "Order changes detected (first sighting, status change, tracking code)",
            events.clone(),
        );
        registry.register(
            "jobs",
            "Notification jobs by store, channel, kind and outcome",
            jobs.clone(),
        );
        registry.register(
            "queue_depth",
            "Jobs waiting to be sent, per channel",
            queue_depth.clone(),
        );
        registry.register(
            "queue_running",
            "Jobs being sent right now, per channel",
            queue_running.clone(),
        );
        registry.register(
            "queue_oldest_due_age_seconds",
            "Age of the oldest due job, per channel (0 when nothing is due)",
            oldest_due_age.clone(),
        );
        registry.register(
            "channel_paused",
            "1 while a channel is paused",
            channel_paused.clone(),
        );
        registry.register(
            "plugin_call_seconds",
            "Plugin call latency, sandbox included",
            plugin_calls.clone(),
        );
        registry.register(
            "plugin_faults",
            "Plugin calls that trapped, timed out or hit a sandbox limit",
            plugin_faults.clone(),
        );
        registry.register(
            "push_requests",
            "Pushed webhook requests by store and outcome",
            push_requests.clone(),
        );
        registry.register(
            "fallbacks",
            "Notifications handed to a channel's fallback because the recipient was unreachable on it",
            fallbacks.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            labels: Mutex::new(HashSet::new()),
            gauge_sets: Mutex::new((BTreeSet::new(), BTreeSet::new())),
            channel_sent_today,
            store_last_poll_ok,
            store_paused,
            polls,
            poll_errors,
            orders_seen,
            events,
            jobs,
            queue_depth,
            queue_running,
            oldest_due_age,
            channel_paused,
            plugin_calls,
            plugin_faults,
            push_requests,
            fallbacks,
            store_poll_interval,
            queue_eta,
            checklist,
            checklist_made_at: Mutex::new(None),
            cluster_owned: std::sync::OnceLock::new(),
        }
    }

    /// A cluster node now owns `stores` stores and `channels` channels.
    pub fn cluster_owned(&self, node: &str, stores: usize, channels: usize) {
        let family = self.cluster_owned.get_or_init(|| {
            let family = Family::<ClusterOwnedLabels, Gauge>::default();
            self.registry
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .register(
                    "cluster_owned",
                    "Stores and channels this cluster node holds the lease of",
                    family.clone(),
                );
            family
        });
        for (kind, n) in [("store", stores), ("channel", channels)] {
            family
                .get_or_create(&ClusterOwnedLabels {
                    node: node.to_owned(),
                    kind: kind.to_owned(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// A notification of `channel` went to its `fallback` channel.
    pub fn fallback(&self, channel: &str, fallback: &str) {
        self.fallbacks
            .get_or_create(&FallbackLabels {
                channel: channel.to_owned(),
                fallback: fallback.to_owned(),
            })
            .inc();
    }

    /// A pushed webhook for `store` (a configured store id, or `unknown`)
    /// ended with `outcome`.
    pub fn push_request(&self, store: &str, outcome: &str) {
        self.push_requests
            .get_or_create(&PushLabels {
                store: self.label(store),
                outcome: self.label(outcome),
            })
            .inc();
    }

    /// The shared [`Label`] for `value`: allocated the first time it is
    /// seen, then handed out again, so that the thousands of series naming
    /// one store (or one channel, kind or outcome) share one string.
    pub fn label(&self, value: &str) -> Label {
        let mut labels = self
            .labels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(label) = labels.get(value) {
            return label.clone();
        }
        let label = Label::from(value);
        labels.insert(label.clone());
        label
    }

    /// The labels of `store`'s per-store series.
    fn store_labels(&self, store: &str) -> StoreLabels {
        StoreLabels {
            store: self.label(store),
        }
    }

    /// A sweep of `store` completed.
    pub fn poll_ok(&self, store: &str) {
        self.polls.get_or_create(&self.store_labels(store)).inc();
    }

    /// A sweep of `store` failed with an error of `class`.
    pub fn poll_error(&self, store: &str, class: &str) {
        self.poll_errors
            .get_or_create(&PollErrorLabels {
                store: self.label(store),
                class: self.label(class),
            })
            .inc();
    }

    /// `n` orders of `store` were seen for the first time.
    pub fn orders_seen(&self, store: &str, n: u64) {
        if n > 0 {
            self.orders_seen
                .get_or_create(&self.store_labels(store))
                .inc_by(n);
        }
    }

    /// `n` order changes of `store` were detected.
    pub fn order_events(&self, store: &str, n: u64) {
        if n > 0 {
            self.events
                .get_or_create(&self.store_labels(store))
                .inc_by(n);
        }
    }

    /// A job of (`store`, `channel`, `kind`) reached `outcome`.
    pub fn job(&self, store: &str, channel: &str, kind: &str, outcome: &str) {
        self.jobs
            .get_or_create(&JobLabels {
                store: self.label(store),
                channel: self.label(channel),
                kind: self.label(kind),
                outcome: self.label(outcome),
            })
            .inc();
    }

    /// A plugin call took `seconds`.
    pub fn plugin_call(&self, plugin: &str, instance: &str, call: &str, seconds: f64) {
        self.plugin_calls
            .get_or_create(&PluginCallLabels {
                plugin: plugin.to_owned(),
                instance: instance.to_owned(),
                call: call.to_owned(),
            })
            .observe(seconds);
    }

    /// A connector call (a store's `poll`) took `seconds`. Recorded per
    /// plugin and call, not per store: a histogram is 18 series, and one set
    /// per store made `/metrics` and the daemon's memory grow with every store
    /// added (Prometheus' guidance: no unbounded label values on histograms).
    /// A store's polling health has its own per-store counters and gauges
    /// (`polls`, `poll_errors`, the last successful poll).
    pub fn connector_call(&self, plugin: &str, call: &str, seconds: f64) {
        self.plugin_call(plugin, "", call, seconds);
    }

    /// A plugin call ended in a sandbox fault.
    pub fn plugin_fault(&self, plugin: &str, instance: &str) {
        self.plugin_faults
            .get_or_create(&PluginLabels {
                plugin: plugin.to_owned(),
                instance: instance.to_owned(),
            })
            .inc();
    }

    /// Refresh the queue gauges of `channel` (called before each scrape).
    pub fn set_queue(
        &self,
        channel: &str,
        depth: u64,
        running: u64,
        oldest_due_age_secs: i64,
        paused: bool,
    ) {
        let labels = ChannelLabels {
            channel: channel.to_owned(),
        };
        self.queue_depth
            .get_or_create(&labels)
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
        self.queue_running
            .get_or_create(&labels)
            .set(i64::try_from(running).unwrap_or(i64::MAX));
        self.oldest_due_age
            .get_or_create(&labels)
            .set(oldest_due_age_secs.max(0));
        self.channel_paused
            .get_or_create(&labels)
            .set(i64::from(paused));
    }

    /// Set every per-channel and per-store gauge (before a scrape); series of
    /// channels and stores not listed any more (removed by a reload) are dropped.
    pub fn set_gauges(&self, channels: &[ChannelGauges], stores: &[StoreGauges]) {
        let mut sets = self
            .gauge_sets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (known_channels, known_stores) = &mut *sets;
        let now_channels: BTreeSet<String> = channels.iter().map(|c| c.channel.clone()).collect();
        for gone in known_channels.difference(&now_channels) {
            let labels = ChannelLabels {
                channel: gone.clone(),
            };
            self.queue_depth.remove(&labels);
            self.queue_running.remove(&labels);
            self.oldest_due_age.remove(&labels);
            self.channel_paused.remove(&labels);
            self.channel_sent_today.remove(&labels);
            self.queue_eta.remove(&labels);
        }
        for c in channels {
            self.set_queue(
                &c.channel,
                c.depth,
                c.running,
                c.oldest_due_age_secs,
                c.paused,
            );
            self.channel_sent_today
                .get_or_create(&ChannelLabels {
                    channel: c.channel.clone(),
                })
                .set(i64::try_from(c.sent_today).unwrap_or(i64::MAX));
            self.queue_eta
                .get_or_create(&ChannelLabels {
                    channel: c.channel.clone(),
                })
                .set(c.eta_secs);
        }
        *known_channels = now_channels;

        let now_stores: BTreeSet<String> = stores.iter().map(|s| s.store.clone()).collect();
        for gone in known_stores.difference(&now_stores) {
            let labels = self.store_labels(gone);
            self.store_last_poll_ok.remove(&labels);
            self.store_paused.remove(&labels);
            self.store_poll_interval.remove(&labels);
        }
        for s in stores {
            let labels = self.store_labels(&s.store);
            match s.last_poll_ok_unix {
                Some(at) => {
                    self.store_last_poll_ok.get_or_create(&labels).set(at);
                }
                None => {
                    self.store_last_poll_ok.remove(&labels);
                }
            }
            self.store_paused
                .get_or_create(&labels)
                .set(i64::from(s.paused));
            match s.poll_interval_secs {
                Some(secs) => {
                    self.store_poll_interval
                        .get_or_create(&labels)
                        .set(i64::try_from(secs).unwrap_or(i64::MAX));
                }
                None => {
                    self.store_poll_interval.remove(&labels);
                }
            }
        }
        *known_stores = now_stores;
    }

    /// Whether the checklist series are older than `every` (or were never
    /// made); if so, they count as made now, so that concurrent scrapes do not
    /// all make it. The checklist reads every store's and channel's records:
    /// with thousands of stores, making it at every scrape would cost more
    /// than the scrape is worth.
    pub fn checklist_due(&self, every: std::time::Duration) -> bool {
        let mut made_at = self
            .checklist_made_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = std::time::Instant::now();
        if made_at.is_some_and(|at| now.duration_since(at) < every) {
            return false;
        }
        *made_at = Some(now);
        true
    }

    /// Replace the checklist's lines (before a scrape): lines that are gone
    /// (a store removed, a line that no longer applies) disappear.
    pub fn set_checklist(&self, lines: &[ChecklistGauge]) {
        self.checklist.clear();
        for line in lines {
            self.checklist.get_or_create(&line.labels).set(line.level);
        }
    }

    /// The registry in Prometheus text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self
            .registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::Metrics;

    #[test]
    fn series_of_one_store_share_its_label_and_count_apart() {
        let metrics = Metrics::new();
        assert!(Arc::ptr_eq(&metrics.label("loja"), &metrics.label("loja")));
        metrics.poll_ok("loja");
        metrics.poll_ok("loja");
        metrics.job("loja", "whatsapp", "order_created", "enqueued");
        metrics.job("loja", "whatsapp", "order_created", "sent");
        metrics.job("outra", "whatsapp", "order_created", "enqueued");
        let text = metrics.encode();
        for line in [
            r#"arauto_polls_total{store="loja"} 2"#,
            r#"arauto_jobs_total{store="loja",channel="whatsapp",kind="order_created",outcome="enqueued"} 1"#,
            r#"arauto_jobs_total{store="loja",channel="whatsapp",kind="order_created",outcome="sent"} 1"#,
            r#"arauto_jobs_total{store="outra",channel="whatsapp",kind="order_created",outcome="enqueued"} 1"#,
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }

    #[test]
    fn pushes_are_counted_by_store_and_outcome() {
        let metrics = Metrics::new();
        metrics.push_request("loja", "accepted");
        metrics.push_request("loja", "accepted");
        metrics.push_request("unknown", "not_found");
        let text = metrics.encode();
        assert!(
            text.contains(r#"arauto_push_requests_total{store="loja",outcome="accepted"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"arauto_push_requests_total{store="unknown",outcome="not_found"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn fallbacks_are_counted_by_channel_and_fallback() {
        let metrics = Metrics::new();
        metrics.fallback("whatsapp", "sms");
        let text = metrics.encode();
        assert!(
            text.contains(r#"arauto_fallbacks_total{channel="whatsapp",fallback="sms"} 1"#),
            "{text}"
        );
    }
}
