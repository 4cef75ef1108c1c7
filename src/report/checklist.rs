//! The readiness checklist, modelled on Notificações Inteligentes' "Sua loja já
//! está pronta para enviar notificações?": one section for arauto itself, one
//! per store and one per channel instance, each line green (`ok`), yellow
//! (`warn`) or red (`fail`) with a one-line fix.
//!
//! Colours mean: red — notifications are not being sent, or not to everyone
//! they should reach (bad credentials, a disconnected or paused channel, a
//! store without channels or with stale polls, a configuration that would not
//! start again); yellow — sending works but deserves a look (warm-up, backlog,
//! unmapped statuses, many invalid events such as landline-only customers, a
//! daemon that is not running yet); green — fine. `arauto check` exits 1 when
//! any line is red.
//!
//! The live lines (store credentials, channel connection) call the plugins'
//! `check()` with the instances of the state in effect: the daemon's own when
//! it answers over the control socket, the CLI's when no daemon runs.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::context::Context;
use super::error::OpsError;
use super::format::{ago, local, plural, short_duration};
use crate::config::{Config, StoreConfig};
use crate::model::{ErrorClass, NotificationKind};
use crate::plugin::PluginError;
use crate::poll::inbox::PushRejection;
use crate::queue::{ChannelStatus, JobFilter, JobState, StoreStatus};
use crate::send::channel::pacing_policy;
use crate::send::pacing::PacingState;
use crate::send::pacing::naive_eta;
use crate::state::ChannelRuntime;
use crate::state::StoreRuntime;

/// The colour of a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Green ✓.
    Ok,
    /// Yellow !.
    Warn,
    /// Red ✗.
    Fail,
}

impl Level {
    /// `ok`, `warn`, `fail`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "fail",
        }
    }
}

/// What a line checks (stable names for scripts).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckItem {
    /// The configuration is valid (and is the one in effect).
    Config,
    /// The daemon runs.
    Daemon,
    /// The state database exists.
    Database,
    /// Templates compile and render.
    Templates,
    /// The plugin loaded (name, version).
    Plugin,
    /// Store: the platform accepts the credentials (live).
    Credentials,
    /// Store or channel: not paused.
    Paused,
    /// Store: the last successful poll is recent.
    LastPoll,
    /// Store: orders were received.
    Events,
    /// Store: share of events that could not become notifications.
    InvalidEvents,
    /// Store: platform statuses without a notification mapping.
    UnmappedStatuses,
    /// Store: orders the connector could not read (retrying or quarantined).
    UnreadableOrders,
    /// Store: an order modified in the future (a wrong date on the platform).
    FutureTimestamps,
    /// Store: the last poll stopped at the page cap.
    Pagination,
    /// Store: whether pushed webhooks arrive (`[daemon.webhooks]`).
    Pushes,
    /// Store: at least one channel linked.
    Channels,
    /// Store: notifications due and not yet sent.
    EventsPending,
    /// Store: enabled notifications the platform can produce.
    Notifications,
    /// Channel: the provider accepts the credentials and the number is connected (live).
    Connected,
    /// Channel: progressive warm-up.
    Warmup,
    /// Channel: messages waiting.
    Backlog,
    /// Channel: today's sends against the daily cap.
    DailyCap,
    /// Channel: used by at least one store.
    Stores,
    /// Cluster: the NATS connection and JetStream domain.
    ClusterConnection,
    /// Cluster: a stream or bucket's RAFT leader and replicas.
    ClusterReplicas,
    /// Cluster: the live nodes and who owns a store or channel.
    ClusterOwnership,
    /// Cluster: whether one of the node's views (jobs, history, status,
    /// ownership buckets) holds everything its stream holds.
    ClusterView,
}

/// One line of the checklist.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckLine {
    /// What is checked.
    pub item: CheckItem,
    /// Its colour.
    pub status: Level,
    /// What was found.
    pub text: String,
    /// How to fix it (for yellow and red lines).
    pub fix: Option<String>,
}

/// Whose lines a section holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SectionKind {
    /// arauto itself: configuration, daemon, database, templates.
    General,
    /// One store (integration).
    Store,
    /// One channel instance.
    Channel,
}

/// The lines of arauto, one store or one channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckSection {
    /// General, store or channel.
    pub kind: SectionKind,
    /// The store or channel id.
    pub id: Option<String>,
    /// Heading, e.g. `store loja1 (loja-integrada)`.
    pub title: String,
    /// The worst line's colour.
    pub status: Level,
    /// The lines.
    pub lines: Vec<CheckLine>,
}

/// The whole checklist.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checklist {
    /// The worst line's colour: `ok`, `warn` or `fail`.
    pub status: Level,
    /// When it was made.
    pub generated_at: Timestamp,
    /// The configuration file.
    pub config_path: String,
    /// Whether the running daemon made it (else the CLI on its own).
    pub daemon_running: bool,
    /// Lines per colour.
    pub counts: BTreeMap<Level, usize>,
    /// General first, then stores, then channels.
    pub sections: Vec<CheckSection>,
}

impl Checklist {
    fn new(ctx_path: String, daemon_running: bool, sections: Vec<CheckSection>) -> Self {
        let mut counts = BTreeMap::from([(Level::Ok, 0), (Level::Warn, 0), (Level::Fail, 0)]);
        for line in sections.iter().flat_map(|s| &s.lines) {
            *counts.entry(line.status).or_default() += 1;
        }
        let status = sections.iter().map(|s| s.status).max().unwrap_or(Level::Ok);
        Self {
            status,
            generated_at: Timestamp::now(),
            config_path: ctx_path,
            daemon_running,
            counts,
            sections,
        }
    }

    /// Add a section at the end (the cluster's, which the CLI reads
    /// itself), counting its lines.
    pub fn push_section(&mut self, mut section: CheckSection) {
        section.status = section
            .lines
            .iter()
            .map(|l| l.status)
            .max()
            .unwrap_or(Level::Ok);
        for line in &section.lines {
            *self.counts.entry(line.status).or_default() += 1;
        }
        self.status = self.status.max(section.status);
        self.sections.push(section);
    }

    /// Every line with its section, in order.
    pub fn lines(&self) -> impl Iterator<Item = (&CheckSection, &CheckLine)> {
        self.sections
            .iter()
            .flat_map(|s| s.lines.iter().map(move |l| (s, l)))
    }
}

/// Which part of the checklist to make.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckQuery {
    /// Only this store (and its channels).
    pub store: Option<String>,
}

/// Reports a finished live check: (checks done, checks in all, what finished).
pub type ProgressFn<'a> = dyn Fn(usize, usize, &str) + Send + Sync + 'a;

struct SectionBuilder {
    kind: SectionKind,
    id: Option<String>,
    title: String,
    lines: Vec<CheckLine>,
}

impl SectionBuilder {
    fn new(kind: SectionKind, id: Option<&str>, title: String) -> Self {
        Self {
            kind,
            id: id.map(str::to_owned),
            title,
            lines: Vec::new(),
        }
    }

    fn ok(&mut self, item: CheckItem, text: impl Into<String>) {
        self.push(item, Level::Ok, text.into(), None);
    }

    fn warn(&mut self, item: CheckItem, text: impl Into<String>, fix: impl Into<String>) {
        self.push(item, Level::Warn, text.into(), Some(fix.into()));
    }

    fn fail(&mut self, item: CheckItem, text: impl Into<String>, fix: impl Into<String>) {
        self.push(item, Level::Fail, text.into(), Some(fix.into()));
    }

    fn push(&mut self, item: CheckItem, status: Level, text: String, fix: Option<String>) {
        self.lines.push(CheckLine {
            item,
            status,
            text,
            fix,
        });
    }

    fn finish(self) -> CheckSection {
        let status = self
            .lines
            .iter()
            .map(|l| l.status)
            .max()
            .unwrap_or(Level::Ok);
        CheckSection {
            kind: self.kind,
            id: self.id,
            title: self.title,
            status,
            lines: self.lines,
        }
    }
}

/// The checklist of a configuration that does not load or build: one red
/// line per problem (`key` at fault, if any, and the full message), so
/// `check` says what `validate` would.
pub fn config_failure(config_path: &str, problems: &[(String, String)]) -> Checklist {
    let mut general = SectionBuilder::new(SectionKind::General, None, "arauto".to_owned());
    for (key, text) in problems {
        let text = text.clone();
        let fix = if key.starts_with("notifications.") && text.contains("cannot produce") {
            format!(
                "this platform cannot provide it: set enabled = false in [{key}] (or remove the table)"
            )
        } else if key.is_empty() {
            format!("fix {config_path}; `arauto validate` shows every problem")
        } else {
            format!("fix {key} in {config_path}; `arauto validate` shows every problem")
        };
        general.fail(CheckItem::Config, text, fix);
    }
    general.warn(
        CheckItem::Daemon,
        "arauto is not running: nothing is polled or sent",
        "fix the configuration, then systemctl start arauto",
    );
    Checklist::new(config_path.to_owned(), false, vec![general.finish()])
}

/// Make the checklist (see the module docs). Live checks run concurrently;
/// `progress` hears about each one as it finishes.
pub async fn run(
    ctx: &Context,
    query: &CheckQuery,
    progress: &ProgressFn<'_>,
) -> Result<Checklist, OpsError> {
    make(ctx, query, progress, true).await
}

/// The checklist without its live lines (credentials, connection): what the
/// metrics endpoint exports, where calling the providers' APIs at every
/// scrape would spend their rate limits.
pub async fn without_live_checks(ctx: &Context, query: &CheckQuery) -> Result<Checklist, OpsError> {
    make(ctx, query, &|_, _, _| {}, false).await
}

async fn make(
    ctx: &Context,
    query: &CheckQuery,
    progress: &ProgressFn<'_>,
    with_live_checks: bool,
) -> Result<Checklist, OpsError> {
    let state = ctx.state.as_ref().ok_or_else(|| {
        OpsError::Unavailable(
            "the checklist needs the plugin instances, which are not loaded".into(),
        )
    })?;
    if let Some(id) = &query.store {
        ctx.check_store(id)?;
    }
    let config = &ctx.config;
    let stores: Vec<&Arc<StoreRuntime>> = state
        .stores
        .values()
        .filter(|s| query.store.as_deref().is_none_or(|id| id == s.config.id))
        .collect();
    let channels: Vec<&Arc<ChannelRuntime>> = match &query.store {
        // The store's channels and the ones they fall back to: a fallback
        // channel may have to reach this store's customers too.
        Some(id) => {
            let own = config
                .stores
                .get(id)
                .map(|s| s.channels.as_slice())
                .unwrap_or_default();
            let mut ids: Vec<&str> = own.iter().map(String::as_str).collect();
            for channel in own {
                for fallback in crate::config::channels::fallback_chain(&config.channels, channel) {
                    if !ids.contains(&fallback) {
                        ids.push(fallback);
                    }
                }
            }
            ids.into_iter()
                .filter_map(|c| state.channels.get(c))
                .collect()
        }
        None => state.channels.values().collect(),
    };

    let live = if with_live_checks {
        live_checks(&stores, &channels, progress).await
    } else {
        LiveResults::default()
    };

    let mut sections = vec![general_section(ctx)];
    for store in &stores {
        sections.push(store_section(ctx, store, live.stores.get(&store.config.id)).await?);
    }
    for channel in &channels {
        sections.push(channel_section(ctx, channel, live.channels.get(&channel.config.id)).await?);
    }
    sections.extend(skipped_sections(ctx, state, query));
    if let Some(views) = ctx
        .daemon
        .as_ref()
        .and_then(|daemon| views_section(&config.daemon.timezone, &daemon.views))
    {
        sections.push(views);
    }
    Ok(Checklist::new(
        config.source_path().display().to_string(),
        ctx.daemon.is_some(),
        sections,
    ))
}

#[derive(Default)]
struct LiveResults {
    stores: BTreeMap<String, Result<(), PluginError>>,
    channels: BTreeMap<String, Result<(), PluginError>>,
}

async fn live_checks(
    stores: &[&Arc<StoreRuntime>],
    channels: &[&Arc<ChannelRuntime>],
    progress: &ProgressFn<'_>,
) -> LiveResults {
    let mut running = FuturesUnordered::new();
    for store in stores {
        let store = Arc::clone(store);
        running.push(Box::pin(async move {
            let result = store.connector.check().await;
            (SectionKind::Store, store.config.id.clone(), result)
        }) as futures::future::BoxFuture<'static, _>);
    }
    for channel in channels {
        let channel = Arc::clone(channel);
        running.push(Box::pin(async move {
            let result = channel.sender.check().await;
            (SectionKind::Channel, channel.config.id.clone(), result)
        }));
    }
    let total = running.len();
    let mut results = LiveResults::default();
    let mut done = 0;
    while let Some((kind, id, result)) = running.next().await {
        done += 1;
        let label = match kind {
            SectionKind::Channel => format!("channel {id}"),
            _ => format!("store {id}"),
        };
        progress(done, total, &label);
        match kind {
            SectionKind::Channel => results.channels.insert(id, result),
            _ => results.stores.insert(id, result),
        };
    }
    results
}

/// A cluster node's views: each one current, or red with since when it is
/// stale and why (while one is, the node takes no new lease and its reads of
/// that view may miss writes of other nodes). `None` on a single node.
fn views_section(
    tz: &jiff::tz::TimeZone,
    views: &[(String, crate::queue::nats::Freshness)],
) -> Option<CheckSection> {
    use crate::queue::nats::Freshness;
    if views.is_empty() {
        return None;
    }
    let mut s = SectionBuilder::new(
        SectionKind::General,
        Some("cluster-views"),
        "cluster views of this node".to_owned(),
    );
    for (view, freshness) in views {
        match freshness {
            Freshness::Current => s.ok(CheckItem::ClusterView, format!("{view}: current")),
            Freshness::Stale { since, reason } => s.fail(
                CheckItem::ClusterView,
                format!("{view}: stale since {} ({reason})", local(*since, tz)),
                "the node reopens the view by itself once the stream's leader answers; if it \
                 stays stale, check the nats-servers (arauto check's cluster section) and the \
                 node's log",
            ),
        }
    }
    Some(s.finish())
}

/// One red section per store or channel the daemon left out at start because
/// its plugin file does not load (`arauto run` skips such a store or channel
/// and lists it in `State::skipped` instead of refusing to start).
fn skipped_sections(
    ctx: &Context,
    state: &crate::state::State,
    query: &CheckQuery,
) -> Vec<CheckSection> {
    let path = ctx.config.source_path().display().to_string();
    // The store's channels and every channel they fall back to.
    let wanted_channels: Option<std::collections::BTreeSet<&str>> = query
        .store
        .as_deref()
        .and_then(|id| ctx.config.stores.get(id))
        .map(|s| {
            crate::config::channels::with_fallbacks(
                &ctx.config.channels,
                s.channels.iter().map(String::as_str),
            )
        });
    state
        .skipped
        .iter()
        .filter_map(|skipped| {
            let (kind, id) = if let Some(id) = skipped.component.strip_prefix("stores.") {
                (SectionKind::Store, id)
            } else if let Some(id) = skipped.component.strip_prefix("channels.") {
                (SectionKind::Channel, id)
            } else {
                return None;
            };
            let wanted = match (kind, &query.store, &wanted_channels) {
                (_, None, _) => true,
                (SectionKind::Store, Some(store), _) => store == id,
                (_, Some(_), Some(channels)) => channels.contains(id),
                _ => false,
            };
            if !wanted {
                return None;
            }
            let what = match kind {
                SectionKind::Store => "store",
                _ => "channel",
            };
            let mut s = SectionBuilder::new(kind, Some(id), format!("{what} {id}"));
            s.fail(
                CheckItem::Plugin,
                format!(
                    "not running since the daemon started: {}",
                    skipped.message
                ),
                format!(
                    "fix or replace the plugin file named above (`arauto validate` fails until then), \
                     then systemctl reload arauto; the rest of {path} runs meanwhile"
                ),
            );
            Some(s.finish())
        })
        .collect()
}

fn general_section(ctx: &Context) -> CheckSection {
    let config = &ctx.config;
    let path = config.source_path().display().to_string();
    let mut s = SectionBuilder::new(SectionKind::General, None, "arauto".to_owned());

    match &ctx.daemon {
        Some(daemon) => {
            let failed_reload = daemon.last_reload.as_ref().filter(|r| !r.ok);
            let changed_since = std::fs::metadata(config.source_path())
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| Timestamp::try_from(m).ok())
                .filter(|m| *m > daemon.config_loaded_at + SignedDuration::from_secs(1));
            if let Some(reload) = failed_reload {
                s.fail(
                    CheckItem::Config,
                    format!(
                        "the reload at {} failed, so the daemon still runs the configuration loaded at {}: {}",
                        local(reload.at, &config.daemon.timezone),
                        local(daemon.config_loaded_at, &config.daemon.timezone),
                        reload.message
                    ),
                    format!(
                        "fix {path} (`arauto validate` shows every problem), then systemctl reload arauto; until then a restart would fail"
                    ),
                );
            } else if let Some(modified) = changed_since {
                s.warn(
                    CheckItem::Config,
                    format!(
                        "{path} changed at {}, after the configuration in effect was loaded ({})",
                        local(modified, &config.daemon.timezone),
                        local(daemon.config_loaded_at, &config.daemon.timezone)
                    ),
                    "apply it: arauto validate && systemctl reload arauto",
                );
            } else {
                s.ok(
                    CheckItem::Config,
                    format!(
                        "configuration {path} is valid and in effect (loaded {})",
                        ago(ctx.now, daemon.config_loaded_at)
                    ),
                );
            }
            let uptime = short_duration(SignedDuration::from_secs(
                i64::try_from(daemon.uptime_secs).unwrap_or(i64::MAX),
            ));
            if daemon.dry_run {
                s.warn(
                    CheckItem::Daemon,
                    format!(
                        "arauto {} is running in dry-run mode (pid {}, up {uptime}): nothing is sent",
                        daemon.version, daemon.pid
                    ),
                    "restart it without --dry-run to send",
                );
            } else {
                s.ok(
                    CheckItem::Daemon,
                    format!(
                        "arauto {} is running (pid {}, up {uptime})",
                        daemon.version, daemon.pid
                    ),
                );
            }
        }
        None => {
            s.ok(CheckItem::Config, format!("configuration {path} is valid"));
            s.warn(
                CheckItem::Daemon,
                "arauto is not running: nothing is polled or sent",
                "systemctl start arauto",
            );
        }
    }

    // With [cluster] the state is the cluster's (the CLI opened it over NATS).
    let database = match &config.cluster {
        Some(cluster) => format!(
            "of the cluster (prefix {:?}) at {}",
            cluster.prefix,
            cluster.servers.join(", ")
        ),
        None => config
            .daemon
            .state_dir
            .join(crate::queue::redb::FILE_NAME)
            .display()
            .to_string(),
    };
    if ctx.store.is_some() {
        s.ok(CheckItem::Database, format!("state database {database}"));
    } else {
        s.warn(
            CheckItem::Database,
            format!("no state database yet at {database}: arauto has not run with this state_dir"),
            "systemctl start arauto",
        );
    }

    let custom = custom_templates(config);
    let kinds = NotificationKind::ALL
        .into_iter()
        .filter(|k| config.notification(*k).enabled)
        .count();
    s.ok(
        CheckItem::Templates,
        format!(
            "templates compile and render for {} on {} ({} custom, the rest built-in pt-BR)",
            plural(kinds as u64, "enabled notification"),
            plural(config.channels.len() as u64, "channel"),
            custom
        ),
    );
    s.finish()
}

fn custom_templates(config: &Config) -> usize {
    config
        .notifications
        .values()
        .map(|n| {
            usize::from(n.template.is_some())
                + n.channels.values().filter(|c| c.template.is_some()).count()
        })
        .sum::<usize>()
        + config
            .channels
            .values()
            .map(|c| c.templates.len())
            .sum::<usize>()
}

async fn store_section(
    ctx: &Context,
    store: &StoreRuntime,
    live: Option<&Result<(), PluginError>>,
) -> Result<CheckSection, OpsError> {
    let config = &ctx.config;
    let id = store.config.id.as_str();
    let platform = store.info.platform.as_str();
    let mut s = SectionBuilder::new(
        SectionKind::Store,
        Some(id),
        match &store.config.description {
            Some(d) => format!("store {id} ({platform}): {d}"),
            None => format!("store {id} ({platform})"),
        },
    );
    let plugin = &store.plugin;
    s.ok(
        CheckItem::Plugin,
        format!(
            "connector {} {} loaded (plugin API {})",
            plugin.name(),
            plugin.version(),
            plugin.api_version()
        ),
    );

    let settings = format!("stores.{id}.settings");
    match live {
        Some(Ok(())) => s.ok(
            CheckItem::Credentials,
            format!("{platform} accepted the credentials"),
        ),
        Some(Err(error)) => match error.class() {
            ErrorClass::Retryable | ErrorClass::Sandbox => s.warn(
                CheckItem::Credentials,
                format!("could not confirm the credentials: {error}"),
                format!(
                    "run the check again; if it persists, check the network and {settings}.base_url"
                ),
            ),
            ErrorClass::Misconfigured | ErrorClass::Permanent | ErrorClass::Unreachable => s.fail(
                CheckItem::Credentials,
                format!("{platform} refused the credentials: {error}"),
                format!("correct the credentials in [{settings}], then systemctl reload arauto"),
            ),
        },
        None => {}
    }

    let status = match &ctx.store {
        Some(db) => db.store_status(id).await?,
        None => None,
    }
    .unwrap_or_default();

    if let Some(pause) = &status.paused {
        let tz = &config.daemon.timezone;
        let mut text = format!(
            "polling paused since {}: {}",
            local(pause.at, tz),
            pause.reason
        );
        if let Some(at) = status.credentials_recheck_at {
            text.push_str(&format!(
                "; the credentials are checked again at {}, and polling resumes by itself once they work",
                local(at, tz)
            ));
        }
        s.fail(
            CheckItem::Paused,
            text,
            format!(
                "fix [{settings}], then systemctl reload arauto; or `arauto queue resume --store {id}` to poll again now"
            ),
        );
    }

    if store.config.enabled {
        last_poll_line(&mut s, ctx, &store.config, &status);
        events_lines(&mut s, ctx, id, &status);
        order_health_lines(&mut s, ctx.now, &config.daemon.timezone, id, &status);
        pushes_line(&mut s, ctx, store, status.paused.is_some());
    } else {
        s.warn(
            CheckItem::LastPoll,
            "disabled (enabled = false): not polled",
            format!("set enabled = true in [stores.{id}] to watch this store"),
        );
    }

    if store.config.channels.is_empty() {
        let defined: Vec<&str> = config.channels.keys().map(String::as_str).collect();
        s.fail(
            CheckItem::Channels,
            "no channel linked: this store's customers are not notified",
            if defined.is_empty() {
                format!(
                    "define a [channels.<id>] table and list it in channels = [\"<id>\"] under [stores.{id}]"
                )
            } else {
                format!(
                    "add channels = [\"{}\"] to [stores.{id}] (channels defined: {})",
                    defined[0],
                    defined.join(", ")
                )
            },
        );
    } else {
        let fallbacks: Vec<String> = store
            .config
            .channels
            .iter()
            .filter_map(|c| {
                let chain = crate::config::channels::fallback_chain(&config.channels, c);
                (!chain.is_empty()).then(|| format!("{c} → {}", chain.join(" → ")))
            })
            .collect();
        let mut line = format!("notifies through {}", store.config.channels.join(", "));
        if !fallbacks.is_empty() {
            line.push_str(&format!(
                " (unreachable customers fall back: {})",
                fallbacks.join("; ")
            ));
        }
        s.ok(CheckItem::Channels, line);
    }

    if store.config.enabled {
        let due = match &ctx.store {
            Some(db) => db
                .list(JobFilter {
                    store: Some(id.to_owned()),
                    state: Some(JobState::Pending),
                    ..JobFilter::default()
                })
                .await?
                .iter()
                .filter(|job| job.due_at <= ctx.now)
                .count() as u64,
            None => 0,
        };
        let max = config.checklist.max_events_pending;
        if due > max {
            s.warn(
                CheckItem::EventsPending,
                format!(
                    "{} due and not yet sent (more than {max})",
                    plural(due, "notification")
                ),
                format!(
                    "see `arauto report --store {id}`: a channel may be paused, capped or too slow for the volume"
                ),
            );
        } else {
            s.ok(
                CheckItem::EventsPending,
                format!("{} due and not yet sent", plural(due, "notification")),
            );
        }
    }

    notifications_line(&mut s, config, store);
    Ok(s.finish())
}

/// Whether pushes reach this store: "pushes: last accepted 12s ago; 3
/// rejected (2 bad credentials, 1 too large)". Only the running daemon knows
/// (it counts in memory since it started). While polling is `paused` on
/// refused credentials, accepted pushes wait for it to resume: the line
/// says they are held.
fn pushes_line(s: &mut SectionBuilder, ctx: &Context, store: &StoreRuntime, paused: bool) {
    let id = store.config.id.as_str();
    let interval = short_duration(store.config.poll_interval);
    if ctx.config.daemon.webhooks.is_none() {
        if store.info.push.verify {
            s.ok(
                CheckItem::Pushes,
                format!("pushes: off (no [daemon.webhooks]); polled every {interval}"),
            );
        }
        return;
    }
    if !store.info.push.verify {
        s.ok(
            CheckItem::Pushes,
            format!(
                "pushes: the connector {} does not verify pushes; polled every {interval}",
                store.plugin.name()
            ),
        );
        return;
    }
    let Some(daemon) = &ctx.daemon else {
        s.ok(
            CheckItem::Pushes,
            "pushes: on; the daemon is not running, so none are received",
        );
        return;
    };
    let stats = daemon.pushes.get(id).cloned().unwrap_or_default();
    let mut text = match stats.last_accepted_at {
        Some(at) => format!("pushes: last accepted {}", ago(ctx.now, at)),
        None => "pushes: none received yet".to_owned(),
    };
    let rejected = stats.rejected_total();
    if rejected > 0 {
        let reasons: Vec<String> = stats
            .rejected
            .iter()
            .map(|(reason, n)| format!("{n} {}", reason.describe()))
            .collect();
        text.push_str(&format!("; {rejected} rejected ({})", reasons.join(", ")));
    }
    let bad_credentials = stats
        .rejected
        .get(&PushRejection::BadCredentials)
        .copied()
        .unwrap_or_default();
    if paused {
        text.push_str("; held while polling is paused: they make no poll until it resumes");
        s.warn(
            CheckItem::Pushes,
            text,
            format!("pushes take effect again once polling of {id} resumes (see the paused line)"),
        );
    } else if bad_credentials > 0 {
        s.warn(
            CheckItem::Pushes,
            text,
            format!(
                "pushes arrive with other credentials than [stores.{id}.settings] expects; see \
                 journalctl -u arauto ARAUTO_STORE={id}, then `arauto webhooks register --store {id} \
                 --url <public URL>`"
            ),
        );
    } else {
        s.ok(CheckItem::Pushes, text);
    }
}

fn last_poll_line(
    s: &mut SectionBuilder,
    ctx: &Context,
    store: &StoreConfig,
    status: &StoreStatus,
) {
    let id = &store.id;
    let tz = &ctx.config.daemon.timezone;
    let logs = format!("journalctl -u arauto ARAUTO_STORE={id}");
    let error_text = |e: &crate::queue::LastError| {
        format!(
            "{} ({} error, {})",
            e.message,
            e.class.as_str(),
            ago(ctx.now, e.at)
        )
    };
    let paused_for = |e: &crate::queue::LastError| {
        status
            .paused
            .as_ref()
            .is_some_and(|p| p.reason == e.message)
    };
    let Some(ok_at) = status.last_poll_ok_at else {
        match &status.last_error {
            Some(error) if paused_for(error) => s.fail(
                CheckItem::LastPoll,
                format!(
                    "never polled successfully: the last attempt ({}) failed and paused polling",
                    ago(ctx.now, error.at)
                ),
                format!("see {logs}"),
            ),
            Some(error) => s.fail(
                CheckItem::LastPoll,
                format!(
                    "never polled successfully; the last attempt failed: {}",
                    error_text(error)
                ),
                format!("see {logs}"),
            ),
            None if ctx.daemon.is_some() => s.warn(
                CheckItem::LastPoll,
                "not polled yet: the first poll is pending",
                format!("wait a moment and check again; see {logs}"),
            ),
            None => s.warn(
                CheckItem::LastPoll,
                "never polled: arauto has not run with this store yet",
                "systemctl start arauto",
            ),
        }
        return;
    };
    let interval = store.poll_interval;
    let factor = ctx.config.checklist.stale_poll_factor;
    let limit = SignedDuration::try_from_secs_f64(interval.as_secs_f64() * factor)
        .unwrap_or(SignedDuration::MAX);
    let age = ctx.now.duration_since(ok_at);
    let recent_error = status.last_error.as_ref().filter(|e| e.at >= ok_at);
    if age > limit {
        let mut text = format!(
            "last successful poll {} ({}): stale, more than {factor}× the {} poll interval",
            ago(ctx.now, ok_at),
            local(ok_at, tz),
            short_duration(interval)
        );
        if let Some(error) = recent_error {
            text.push_str(&format!("; latest error: {}", error_text(error)));
        }
        let fix = if ctx.daemon.is_some() {
            format!("see {logs}")
        } else {
            "arauto is not running: systemctl start arauto".to_owned()
        };
        s.fail(CheckItem::LastPoll, text, fix);
    } else if let Some(error) = recent_error {
        s.warn(
            CheckItem::LastPoll,
            format!(
                "last successful poll {}, but the latest failed: {}",
                ago(ctx.now, ok_at),
                error_text(error)
            ),
            format!(
                "it is retried every {}; see {logs}",
                short_duration(interval)
            ),
        );
    } else {
        s.ok(
            CheckItem::LastPoll,
            format!(
                "last successful poll {} (every {})",
                ago(ctx.now, ok_at),
                short_duration(interval)
            ),
        );
    }
}

/// "landline 3, too long 1": the invalid events by reason, most frequent first.
fn invalid_reasons_text(status: &StoreStatus) -> String {
    if status.invalid_reasons.is_empty() {
        // Counted before the reasons were recorded.
        return "no usable phone".to_owned();
    }
    let mut reasons: Vec<(&String, &u64)> = status.invalid_reasons.iter().collect();
    reasons.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    reasons
        .iter()
        .map(|(key, n)| format!("{} {n}", crate::decide::InvalidReason::label_of(key)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn events_lines(s: &mut SectionBuilder, ctx: &Context, id: &str, status: &StoreStatus) {
    if status.orders_seen > 0 {
        s.ok(
            CheckItem::Events,
            format!(
                "{} seen, {} detected",
                plural(status.orders_seen, "order"),
                plural(status.events_total, "order event")
            ),
        );
    } else if status.last_poll_ok_at.is_some() {
        s.warn(
            CheckItem::Events,
            "no orders received yet",
            format!(
                "normal for a store without recent orders; otherwise check [stores.{id}.settings] (base_url, credentials)"
            ),
        );
    }

    let max = ctx.config.checklist.max_invalid_event_share;
    if status.events_total > 0 && status.invalid_events > 0 {
        let share = status.invalid_events as f64 / status.events_total as f64;
        let text = format!(
            "{:.0}% of order events could not become notifications ({} of {}: {})",
            share * 100.0,
            status.invalid_events,
            status.events_total,
            invalid_reasons_text(status)
        );
        if share > max {
            // A warning, not a failure: the shop's customers decide which
            // phones they give (a shop selling to businesses may mostly get
            // landlines), and everything that can be sent still is.
            s.warn(
                CheckItem::InvalidEvents,
                format!("{text}: above the {:.0}% threshold", max * 100.0),
                format!(
                    "see which orders and why in journalctl -u arauto ARAUTO_STORE={id} (\"invalid event\"); ask for a mobile phone at checkout, or add an e-mail or webhook channel"
                ),
            );
        } else {
            s.ok(
                CheckItem::InvalidEvents,
                format!("{text}: below the {:.0}% threshold", max * 100.0),
            );
        }
    } else if status.events_total > 0 {
        s.ok(CheckItem::InvalidEvents, "no invalid order events");
    }

    if status.unmapped_statuses.is_empty() {
        if status.events_total > 0 {
            s.ok(
                CheckItem::UnmappedStatuses,
                "every order status seen maps to a notification (or deliberately to none)",
            );
        }
    } else {
        let mut seen: Vec<(&String, &u64)> = status.unmapped_statuses.iter().collect();
        seen.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let listed: Vec<String> = seen
            .iter()
            .take(5)
            .map(|(code, n)| format!("{code} ({n}×)"))
            .collect();
        let more = seen.len().saturating_sub(5);
        s.warn(
            CheckItem::UnmappedStatuses,
            format!(
                "order statuses without a notification: {}{}",
                listed.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            ),
            format!(
                "map them in [stores.{id}.recognition], e.g. {} = \"order-processing\" or \"off\"",
                seen[0].0
            ),
        );
    }
}

/// Quarantined orders shown by name in a `check` line; `arauto report` lists all.
const LISTED_ORDERS: usize = 5;

/// What the connector reported about single orders, and a poll stopped at
/// the page cap. A quarantined order is red: its customer may never hear.
fn order_health_lines(
    s: &mut SectionBuilder,
    now: Timestamp,
    tz: &jiff::tz::TimeZone,
    id: &str,
    status: &StoreStatus,
) {
    let logs = format!("journalctl -u arauto ARAUTO_STORE={id}");
    if let Some(cap) = &status.page_cap {
        s.fail(
            CheckItem::Pagination,
            format!(
                "poll stopped after {} at {} (max_pages_per_sweep) with more to read; it goes on from there at the next poll",
                plural(u64::from(cap.pages), "page"),
                local(cap.at, tz)
            ),
            format!(
                "if this stays red, the connector may be paging endlessly (see {logs}); if the store really has that many changes, raise max_pages_per_sweep in [stores.{id}]"
            ),
        );
    }
    if let Some(skew) = status
        .clock_skew
        .as_ref()
        .filter(|skew| now.duration_since(skew.at) <= crate::poll::sweep::CLOCK_SKEW_MEMORY)
    {
        s.warn(
            CheckItem::FutureTimestamps,
            format!(
                "order {} was modified in the future ({}), last seen {}: orders keep flowing, but that order's date is wrong",
                skew.order,
                skew.value,
                ago(now, skew.at)
            ),
            "correct the order's date on the platform; this clears a day after the connector stops seeing it",
        );
    }
    let (quarantined, retrying): (Vec<_>, Vec<_>) = status
        .unreadable_orders
        .iter()
        .partition(|(_, o)| o.quarantined);
    let listed = |orders: &[(&String, &crate::queue::UnreadableOrder)]| {
        let mut names: Vec<String> = orders
            .iter()
            .take(LISTED_ORDERS)
            .map(|(order, o)| format!("{order} ({}, {} attempts)", o.reason, o.attempts))
            .collect();
        if orders.len() > LISTED_ORDERS {
            names.push(format!("and {} more", orders.len() - LISTED_ORDERS));
        }
        names.join("; ")
    };
    if !quarantined.is_empty() {
        let mut text = format!(
            "{} quarantined, unreadable after repeated tries: their customers may not be notified: {}",
            plural(quarantined.len() as u64, "order"),
            listed(&quarantined)
        );
        if !retrying.is_empty() {
            text.push_str(&format!(
                "; {} more being retried",
                plural(retrying.len() as u64, "order")
            ));
        }
        s.fail(
            CheckItem::UnreadableOrders,
            text,
            format!(
                "see {logs} and `arauto report --store {id}`; any change to the order on the platform makes the connector read it again; tell the customer yourself meanwhile"
            ),
        );
    } else if !retrying.is_empty() {
        s.warn(
            CheckItem::UnreadableOrders,
            format!(
                "{} could not be read and {} retried: {}",
                plural(retrying.len() as u64, "order"),
                if retrying.len() == 1 { "is" } else { "are" },
                listed(&retrying)
            ),
            format!("see {logs}; the other orders flow on meanwhile"),
        );
    }
}

fn notifications_line(s: &mut SectionBuilder, config: &Config, store: &StoreRuntime) {
    let platform = &store.info.platform;
    let mut unavailable = Vec::new();
    let mut refused = Vec::new();
    let mut degraded = Vec::new();
    for kind in NotificationKind::ALL {
        let Some(capability) = store.info.capabilities.for_kind(kind) else {
            continue;
        };
        if capability.supported {
            continue;
        }
        let entry = (kind, capability.reason.clone());
        match (config.notification(kind).enabled, kind.is_reserved()) {
            (true, true) => refused.push(entry),
            (true, false) => degraded.push(entry),
            (false, _) => unavailable.push(entry),
        }
    }
    if let Some((kind, reason)) = refused.first() {
        s.fail(
            CheckItem::Notifications,
            format!("{kind} is enabled, but {platform} cannot produce it: {reason}"),
            format!("set enabled = false in [notifications.{kind}]"),
        );
        return;
    }
    if let Some((kind, reason)) = degraded.first() {
        s.warn(
            CheckItem::Notifications,
            format!(
                "{kind} is enabled, but {platform} rarely or never provides what it needs: {reason}"
            ),
            format!("set enabled = false in [notifications.{kind}] if it never fires"),
        );
        return;
    }
    let enabled = NotificationKind::ALL
        .into_iter()
        .filter(|k| config.notification(*k).enabled)
        .count() as u64;
    let mut text = format!(
        "{} enabled, all of them available on {platform}",
        plural(enabled, "notification")
    );
    if !unavailable.is_empty() {
        let names: Vec<String> = unavailable
            .iter()
            .map(|(kind, _)| kind.to_string())
            .collect();
        text.push_str(&format!("; not available there: {}", names.join(", ")));
    }
    s.ok(CheckItem::Notifications, text);
}

async fn channel_section(
    ctx: &Context,
    channel: &ChannelRuntime,
    live: Option<&Result<(), PluginError>>,
) -> Result<CheckSection, OpsError> {
    let config = &ctx.config;
    let tz = &config.daemon.timezone;
    let id = channel.config.id.as_str();
    let plugin = &channel.plugin;
    let mut s = SectionBuilder::new(
        SectionKind::Channel,
        Some(id),
        match &channel.config.description {
            Some(d) => format!("channel {id} ({}): {d}", plugin.name()),
            None => format!("channel {id} ({})", plugin.name()),
        },
    );
    s.ok(
        CheckItem::Plugin,
        format!(
            "sender {} {} loaded (plugin API {})",
            plugin.name(),
            plugin.version(),
            plugin.api_version()
        ),
    );
    let settings = format!("channels.{id}.settings");
    match live {
        Some(Ok(())) => s.ok(
            CheckItem::Connected,
            "connected: the provider accepted the credentials",
        ),
        Some(Err(error)) => match error.class() {
            ErrorClass::Retryable | ErrorClass::Sandbox => s.warn(
                CheckItem::Connected,
                format!("could not confirm the connection: {error}"),
                "run the check again; if it persists, check the provider's status and the network",
            ),
            ErrorClass::Misconfigured | ErrorClass::Permanent | ErrorClass::Unreachable => s.fail(
                CheckItem::Connected,
                format!("not connected: {error}"),
                format!("fix [{settings}] (or reconnect the number at the provider), then systemctl reload arauto"),
            ),
        },
        None => {}
    }

    let (status, stats) = match &ctx.store {
        Some(db) => (db.channel_status(id).await?, db.channel_stats(id).await?),
        None => (ChannelStatus::default(), Default::default()),
    };
    match &status.paused {
        Some(pause) if pause.automatic => s.fail(
            CheckItem::Paused,
            format!(
                "paused automatically since {}: {}",
                local(pause.at, tz),
                pause.reason
            ),
            format!("fix the config and reload, or `arauto queue resume {id}`"),
        ),
        Some(pause) => s.fail(
            CheckItem::Paused,
            format!(
                "paused by an operator since {}: {}",
                local(pause.at, tz),
                pause.reason
            ),
            format!("arauto queue resume {id}"),
        ),
        None => s.ok(CheckItem::Paused, "not paused"),
    }

    let time_zone = &config.daemon.timezone;
    let policy = &pacing_policy(&channel.config, channel.plugin.sender_info(), time_zone);
    let pacing = PacingState::of(&status);
    let today = policy.day_of(ctx.now, time_zone);
    if let Some(cap) = &policy.daily_cap {
        let cap_today = policy.cap_on(&pacing, today).unwrap_or(cap.limit);
        if let Some(warmup) = cap.warmup {
            s.warn(
                CheckItem::Warmup,
                format!(
                    "progressive warm-up on: today's cap is {cap_today} of {} (+{} per day)",
                    cap.limit, warmup.step
                ),
                format!(
                    "expected for a new number; once it is warmed up, remove warmup from [channels.{id}] and reload"
                ),
            );
        }
        let sent = if pacing.day == Some(today) {
            pacing.sent_today
        } else {
            0
        };
        if sent >= cap_today {
            s.warn(
                CheckItem::DailyCap,
                format!(
                    "daily cap reached: {sent} of {cap_today} sent today; sending resumes at {}",
                    local(cap.next_reset(ctx.now), tz)
                ),
                format!("wait for the reset, or raise daily_cap in [channels.{id}] if the provider allows"),
            );
        } else {
            s.ok(
                CheckItem::DailyCap,
                format!("{sent} of {cap_today} sent today"),
            );
        }
    } else {
        s.ok(CheckItem::Warmup, "progressive warm-up off");
    }

    let backlog = stats.pending;
    let max = config.checklist.max_backlog;
    let eta = match policy.eta(&pacing, backlog, ctx.now) {
        Some(last) => format!(
            "the last goes out in about {}",
            short_duration(last.duration_since(ctx.now).max(SignedDuration::ZERO))
        ),
        None if backlog == 0 => String::new(),
        None => "the daily cap lets none of them out".to_owned(),
    };
    let waiting = if eta.is_empty() {
        plural(backlog, "message") + " waiting"
    } else {
        format!(
            "{} waiting ({} × {} interval = {}; {eta})",
            plural(backlog, "message"),
            backlog,
            short_duration(policy.min_interval),
            short_duration(naive_eta(policy.min_interval, backlog))
        )
    };
    if backlog > max {
        s.warn(
            CheckItem::Backlog,
            format!("{waiting}: more than {max}"),
            format!(
                "see `arauto report --channel {id}`; lower min_interval or raise daily_cap if the provider allows, or add a channel"
            ),
        );
    } else {
        s.ok(CheckItem::Backlog, waiting);
    }

    let users = channel_users(config, id);
    if users.is_empty() {
        s.warn(
            CheckItem::Stores,
            "not used by any store",
            format!("add \"{id}\" to a store's channels, or remove [channels.{id}]"),
        );
    } else {
        s.ok(CheckItem::Stores, format!("used by {}", users.join(", ")));
    }
    Ok(s.finish())
}

/// Who may send through channel `id`: each store that lists it (`loja`), and
/// each store whose channel falls back to it, directly or down a chain
/// (`fallback of wa (store loja)`). Empty: no store can use it.
fn channel_users(config: &Config, id: &str) -> Vec<String> {
    let mut users = Vec::new();
    for store in config.stores.values() {
        if store.channels.iter().any(|c| c == id) {
            users.push(store.id.clone());
            continue;
        }
        for channel in &store.channels {
            let channels = [channel.as_str()];
            let reach = crate::config::channels::with_fallbacks(&config.channels, channels);
            if reach.contains(id) {
                users.push(format!("fallback of {channel} (store {})", store.id));
            }
        }
    }
    users
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{ClockSkew, PageCapHit, UnreadableOrder};

    fn lines_for(status: &StoreStatus, now: Timestamp) -> Vec<CheckLine> {
        let mut s = SectionBuilder::new(SectionKind::Store, Some("loja"), "store loja".into());
        order_health_lines(&mut s, now, &jiff::tz::TimeZone::UTC, "loja", status);
        s.lines
    }

    fn order(reason: &str, attempts: u32, quarantined: bool, at: Timestamp) -> UnreadableOrder {
        UnreadableOrder {
            reason: reason.into(),
            attempts,
            quarantined,
            since: at,
            last_at: at,
        }
    }

    #[test]
    fn check_names_quarantined_orders_in_red_and_retrying_ones_in_yellow() {
        let now: Timestamp = "2026-03-01T12:00:00Z"
            .parse()
            .unwrap_or(Timestamp::UNIX_EPOCH);
        let mut status = StoreStatus::default();
        status.unreadable_orders.insert(
            "1055".into(),
            order("detail over the response cap", 2, false, now),
        );
        let lines = lines_for(&status, now);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].item, CheckItem::UnreadableOrders);
        assert_eq!(lines[0].status, Level::Warn);
        assert_eq!(
            lines[0].text,
            "1 order could not be read and is retried: 1055 (detail over the response cap, 2 attempts)"
        );

        for n in 0..7 {
            status
                .unreadable_orders
                .insert(format!("20{n}"), order("malformed JSON", 5, true, now));
        }
        let lines = lines_for(&status, now);
        assert_eq!(lines[0].status, Level::Fail);
        assert!(
            lines[0].text.starts_with(
                "7 orders quarantined, unreadable after repeated tries: their customers may not be notified: 200 (malformed JSON, 5 attempts); 201"
            ) && lines[0].text.contains("; and 2 more; 1 order more being retried"),
            "{}",
            lines[0].text
        );
        assert!(
            lines[0]
                .fix
                .as_deref()
                .is_some_and(|f| f.contains("arauto report --store loja")),
            "{:?}",
            lines[0].fix
        );
    }

    #[test]
    fn check_warns_about_a_future_timestamp_for_a_day_and_a_capped_poll_in_red() {
        let seen: Timestamp = "2026-03-01T12:00:00Z"
            .parse()
            .unwrap_or(Timestamp::UNIX_EPOCH);
        let status = StoreStatus {
            clock_skew: Some(ClockSkew {
                order: "77".into(),
                value: "2099-01-01T00:00:00".into(),
                at: seen,
            }),
            page_cap: Some(PageCapHit {
                pages: 1000,
                at: seen,
            }),
            ..StoreStatus::default()
        };
        let lines = lines_for(&status, seen + SignedDuration::from_hours(1));
        assert_eq!(
            (lines[0].item, lines[0].status),
            (CheckItem::Pagination, Level::Fail)
        );
        assert!(
            lines[0]
                .text
                .starts_with("poll stopped after 1000 pages at 2026-03-01 12:00"),
            "{}",
            lines[0].text
        );
        assert_eq!(
            (lines[1].item, lines[1].status),
            (CheckItem::FutureTimestamps, Level::Warn)
        );
        assert!(
            lines[1]
                .text
                .starts_with("order 77 was modified in the future (2099-01-01T00:00:00)"),
            "{}",
            lines[1].text
        );
        let later = lines_for(&status, seen + SignedDuration::from_hours(25));
        assert!(
            later.iter().all(|l| l.item != CheckItem::FutureTimestamps),
            "forgotten after a day"
        );
    }
}

#[cfg(test)]
mod view_tests {
    use super::*;
    use crate::queue::nats::Freshness;

    #[test]
    fn a_stale_view_is_red_with_since_and_why_a_current_one_green() {
        let since: Timestamp = "2026-12-07T14:00:00Z".parse().expect("timestamp");
        let views = vec![
            ("bucket arauto_jobs".to_owned(), Freshness::Current),
            (
                "stream arauto_history".to_owned(),
                Freshness::Stale {
                    since,
                    reason: "sequence 42 is not delivered".to_owned(),
                },
            ),
        ];
        let section = views_section(&jiff::tz::TimeZone::UTC, &views).expect("a section");
        assert_eq!(section.status, Level::Fail);
        assert_eq!(section.lines[0].status, Level::Ok);
        assert_eq!(section.lines[0].text, "bucket arauto_jobs: current");
        assert_eq!(section.lines[1].status, Level::Fail);
        let stale = &section.lines[1].text;
        assert!(
            stale.starts_with("stream arauto_history: stale since "),
            "{stale}"
        );
        assert!(stale.contains("14:00"), "{stale}");
        assert!(stale.ends_with("(sequence 42 is not delivered)"), "{stale}");
        assert!(views_section(&jiff::tz::TimeZone::UTC, &[]).is_none());
    }
}
