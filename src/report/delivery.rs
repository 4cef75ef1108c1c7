//! Delivery reports per store (integration) and per channel instance: what
//! was sent, failed, cancelled, expired or skipped, by notification kind, and
//! the queue figures Notificações Inteligentes shows per instance (backlog,
//! ETA = interval × backlog, entered and sent in the last five minutes,
//! today's sends against the daily cap).
//!
//! The outcome counts come from the daily counters the state database keeps
//! per local day (daemon time zone), so a window covers **whole local days**:
//! `--since 24h` counts from 00:00 of the day that contained "now − 24h" until
//! now (yesterday and today), `--since 7d` the last seven days plus today so
//! far. The window is never shorter than asked, and at most one day longer.
//! `pending` and `running` are the jobs not finished right now, whatever
//! their age.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::context::Context;
use super::error::OpsError;
use crate::model::NotificationKind;
use crate::queue::{CounterQuery, Job, JobFilter, JobState, Outcome, Pause};
use crate::send::pacing::PacingState;
use crate::send::pacing::naive_eta;

/// The window of "entered" and "sent" figures, as NI shows them.
pub const RECENT_WINDOW: SignedDuration = SignedDuration::from_mins(5);

/// What to report on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportQuery {
    /// Only this store.
    pub store: Option<String>,
    /// Only this channel.
    pub channel: Option<String>,
    /// How far back (rounded out to whole local days, see the module docs).
    pub since: SignedDuration,
}

impl Default for ReportQuery {
    fn default() -> Self {
        Self {
            store: None,
            channel: None,
            since: SignedDuration::from_hours(24),
        }
    }
}

/// Jobs by outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Enqueued in the window.
    pub entered: u64,
    /// Delivered in the window.
    pub sent: u64,
    /// Failed for good (dead-letter) in the window.
    pub failed: u64,
    /// Cancelled in the window (the order moved on, or an operator).
    pub cancelled: u64,
    /// Expired before they could be sent, in the window.
    pub expired: u64,
    /// Deliberately not sent, in the window: jobs skipped at delivery, and
    /// notifications never queued on a channel because the order had no
    /// phone it can reach (see [`StoreReport::skipped_reasons`]).
    pub skipped: u64,
    /// Handed to the channel's fallback in the window, because the sender
    /// said the recipient cannot be reached on this channel. Left out of the
    /// JSON while zero, so reports without fallbacks keep their shape.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub fell_back: u64,
    /// Waiting now.
    pub pending: u64,
    /// Being sent now.
    pub running: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Tally {
    fn count(&mut self, outcome: Outcome, n: u64) {
        let slot = match outcome {
            Outcome::Entered => &mut self.entered,
            Outcome::Sent => &mut self.sent,
            Outcome::Dead => &mut self.failed,
            Outcome::Cancelled => &mut self.cancelled,
            Outcome::Expired => &mut self.expired,
            Outcome::Skipped => &mut self.skipped,
            Outcome::FellBack => &mut self.fell_back,
        };
        *slot += n;
    }

    fn open(&mut self, state: JobState) {
        match state {
            JobState::Pending => self.pending += 1,
            JobState::Running => self.running += 1,
            _ => {}
        }
    }

    fn add(&mut self, other: &Tally) {
        self.entered += other.entered;
        self.sent += other.sent;
        self.failed += other.failed;
        self.cancelled += other.cancelled;
        self.expired += other.expired;
        self.skipped += other.skipped;
        self.fell_back += other.fell_back;
        self.pending += other.pending;
        self.running += other.running;
    }
}

/// The tally of one notification kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindTally {
    /// `order-shipped`, …
    pub kind: String,
    /// Portuguese label (`Pedido enviado`), when the kind is known.
    pub label: Option<String>,
    /// The counts.
    #[serde(flatten)]
    pub tally: Tally,
}

/// One store's report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreReport {
    /// Store id.
    pub id: String,
    /// Connector platform (`None` if the store is no longer configured).
    pub platform: Option<String>,
    /// Free text from the configuration.
    pub description: Option<String>,
    /// Still in the configuration.
    pub configured: bool,
    /// All kinds together.
    pub total: Tally,
    /// Per notification kind, in the vocabulary's order.
    pub by_kind: Vec<KindTally>,
    /// Notifications never queued for lack of a usable phone, in the window,
    /// by reason key (`landline`, `too-long`…; counted in `skipped` too).
    #[serde(default)]
    pub skipped_reasons: BTreeMap<String, u64>,
    /// Set while polling is paused (refused credentials).
    #[serde(default)]
    pub paused: Option<Pause>,
    /// Orders the connector gave up reading, right now: their customers may
    /// not be notified until the order changes on the platform.
    #[serde(default)]
    pub quarantined: Vec<QuarantinedOrder>,
}

/// An order the connector could not read and gave up on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantinedOrder {
    /// The order id.
    pub order: String,
    /// Why, as the connector said.
    pub reason: String,
    /// Reads attempted.
    pub attempts: u32,
    /// First failure.
    pub since: Timestamp,
}

/// One channel's queue right now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueueFigures {
    /// Messages waiting (NI's "mensagens aguardando").
    pub backlog: u64,
    /// Messages being sent.
    pub running: u64,
    /// Due time of the earliest waiting message.
    pub oldest_due: Option<Timestamp>,
    /// The minimum interval between sends, in seconds.
    pub min_interval_secs: f64,
    /// NI's estimate: interval × backlog, in seconds.
    pub eta_naive_secs: f64,
    /// When the last waiting message should go out, honouring the interval,
    /// the daily cap and the warm-up (`None`: nothing waits, or the cap lets
    /// nothing out).
    pub eta_paced_at: Option<Timestamp>,
    /// `eta_paced_at − now`, in seconds.
    pub eta_paced_secs: Option<f64>,
    /// Jobs enqueued in the last 5 minutes.
    pub entered_last_5m: u64,
    /// Messages sent in the last 5 minutes.
    pub sent_last_5m: u64,
    /// The pacing day `sent_today` counts (cap day, or local date without a cap).
    pub pacing_day: Date,
    /// Messages sent on `pacing_day`.
    pub sent_today: u64,
    /// The configured daily cap.
    pub daily_cap: Option<u32>,
    /// The cap in force today (lower than `daily_cap` during warm-up).
    pub cap_today: Option<u32>,
    /// Progressive warm-up configured.
    pub warmup: bool,
    /// When the current cap day began (the last reset).
    pub cap_day_started_at: Option<Timestamp>,
    /// When the daily count resets next.
    pub cap_resets_at: Option<Timestamp>,
    /// The latest send.
    pub last_sent_at: Option<Timestamp>,
    /// Set while the channel is paused.
    pub paused: Option<Pause>,
}

/// One channel's report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChannelReport {
    /// Channel id.
    pub id: String,
    /// Sender plugin (`None` if the channel is no longer configured).
    pub plugin: Option<String>,
    /// Free text from the configuration.
    pub description: Option<String>,
    /// Still in the configuration.
    pub configured: bool,
    /// All kinds together.
    pub total: Tally,
    /// Per notification kind.
    pub by_kind: Vec<KindTally>,
    /// The queue right now (`None` for a channel no longer configured).
    pub queue: Option<QueueFigures>,
    /// Notifications handed to a fallback channel in the window (the
    /// recipient was unreachable here), by fallback channel.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fallbacks: BTreeMap<String, u64>,
}

/// The whole report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// When it was made.
    pub generated_at: Timestamp,
    /// The daemon's time zone, whose local days the counts use.
    pub time_zone: String,
    /// The window asked for, e.g. `24h`.
    pub since: String,
    /// First local day counted.
    pub from_day: Date,
    /// Last local day counted (today).
    pub to_day: Date,
    /// Start of the window (00:00 of `from_day`).
    pub from: Timestamp,
    /// Stores.
    pub stores: Vec<StoreReport>,
    /// Channels.
    pub channels: Vec<ChannelReport>,
}

/// The local days covering at least `since` before `now`: from the day that
/// contained `now − since` to today.
pub fn window(ctx: &Context, since: SignedDuration) -> (Date, Date, Timestamp) {
    let tz = ctx.config.daemon.timezone.clone();
    let start = ctx
        .now
        .checked_sub(since.max(SignedDuration::ZERO))
        .unwrap_or(Timestamp::MIN);
    let from_day = start.to_zoned_datetime(tz.clone()).date();
    let to_day = ctx.now.to_zoned_datetime(tz.clone()).date();
    let from = tz
        .to_zoned_datetime(from_day.to_datetime(jiff::civil::Time::midnight()))
        .map(|z| z.timestamp())
        .unwrap_or(start);
    (from_day, to_day, from)
}

/// Make the report.
pub async fn run(ctx: &Context, query: &ReportQuery) -> Result<Report, OpsError> {
    let db = ctx.store()?;
    let config = &ctx.config;
    if query.store.is_some() && query.channel.is_some() {
        return Err(OpsError::Invalid(
            "give --store or --channel, not both".to_owned(),
        ));
    }
    if let Some(id) = &query.store
        && !config.stores.contains_key(id)
        && !db.stores().await?.contains(id)
    {
        ctx.check_store(id)?;
    }
    if let Some(id) = &query.channel
        && !config.channels.contains_key(id)
        && !db.channels().await?.contains(id)
    {
        ctx.check_channel(id)?;
    }

    let (from_day, to_day, from) = window(ctx, query.since);
    let rows = db
        .counters(CounterQuery {
            from_day: from_day.to_string(),
            to_day: to_day.to_string(),
            store: query.store.clone(),
            channel: query.channel.clone(),
            kind: None,
        })
        .await?;
    let mut open: Vec<Job> = Vec::new();
    for state in [JobState::Pending, JobState::Running] {
        open.extend(
            db.list(JobFilter {
                store: query.store.clone(),
                channel: query.channel.clone(),
                state: Some(state),
                ..JobFilter::default()
            })
            .await?,
        );
    }

    // (id → kind → tally) for stores and channels.
    let mut by_store: BTreeMap<String, BTreeMap<String, Tally>> = BTreeMap::new();
    let mut by_channel: BTreeMap<String, BTreeMap<String, Tally>> = BTreeMap::new();
    for row in &rows {
        by_store
            .entry(row.store.clone())
            .or_default()
            .entry(row.kind.clone())
            .or_default()
            .count(row.outcome, row.count);
        by_channel
            .entry(row.channel.clone())
            .or_default()
            .entry(row.kind.clone())
            .or_default()
            .count(row.outcome, row.count);
    }
    let skipped_reasons = add_unqueued(
        ctx,
        query,
        (&from_day.to_string(), &to_day.to_string()),
        &mut by_store,
        &mut by_channel,
    )
    .await?;
    for job in &open {
        by_store
            .entry(job.store.clone())
            .or_default()
            .entry(job.kind_name().to_owned())
            .or_default()
            .open(job.state);
        by_channel
            .entry(job.channel.to_string())
            .or_default()
            .entry(job.kind_name().to_owned())
            .or_default()
            .open(job.state);
    }

    let mut report = Report {
        generated_at: ctx.now,
        time_zone: config
            .daemon
            .timezone
            .iana_name()
            .unwrap_or("UTC")
            .to_owned(),
        since: window_name(query.since),
        from_day,
        to_day,
        from,
        stores: Vec::new(),
        channels: Vec::new(),
    };

    if query.channel.is_none() {
        let ids: BTreeSet<String> = match &query.store {
            Some(id) => BTreeSet::from([id.clone()]),
            None => config
                .stores
                .keys()
                .cloned()
                .chain(by_store.keys().cloned())
                .collect(),
        };
        for id in ids {
            let kinds = by_store.remove(&id).unwrap_or_default();
            let configured = config.stores.get(&id);
            let (total, by_kind) = tallies(kinds);
            let status = db.store_status(&id).await?.unwrap_or_default();
            report.stores.push(StoreReport {
                skipped_reasons: skipped_reasons.get(&id).cloned().unwrap_or_default(),
                platform: configured.map(|s| s.platform.clone()),
                description: configured.and_then(|s| s.description.clone()),
                configured: configured.is_some(),
                id,
                total,
                by_kind,
                paused: status.paused,
                quarantined: status
                    .unreadable_orders
                    .into_iter()
                    .filter(|(_, o)| o.quarantined)
                    .map(|(order, o)| QuarantinedOrder {
                        order,
                        reason: o.reason,
                        attempts: o.attempts,
                        since: o.since,
                    })
                    .collect(),
            });
        }
    }

    if query.store.is_none() {
        let ids: BTreeSet<String> = match &query.channel {
            Some(id) => BTreeSet::from([id.clone()]),
            None => config
                .channels
                .keys()
                .cloned()
                .chain(by_channel.keys().cloned())
                .collect(),
        };
        let recent_entries = db
            .entered_since(ctx.now - RECENT_WINDOW, usize::MAX)
            .await?;
        for id in ids {
            let kinds = by_channel.remove(&id).unwrap_or_default();
            let configured = config.channels.get(&id);
            let (total, by_kind) = tallies(kinds);
            let queue = match configured {
                Some(_) => Some(queue_figures(ctx, &id, &recent_entries).await?),
                None => None,
            };
            let (first, last) = (from_day.to_string(), to_day.to_string());
            let mut fallbacks = BTreeMap::new();
            for count in db.channel_status(&id).await?.fallbacks {
                if count.day >= first && count.day <= last {
                    *fallbacks.entry(count.fallback).or_default() += count.count;
                }
            }
            report.channels.push(ChannelReport {
                fallbacks,
                plugin: configured.map(|c| c.plugin.clone()),
                description: configured.and_then(|c| c.description.clone()),
                configured: configured.is_some(),
                id,
                total,
                by_kind,
                queue,
            });
        }
    }
    Ok(report)
}

/// Count the notifications the planner never queued (no usable phone), as
/// the stores' statuses record them per day, into the `skipped` tallies of
/// the window `days` (first, last; inclusive). Returns them by store and reason.
async fn add_unqueued(
    ctx: &Context,
    query: &ReportQuery,
    (from_day, to_day): (&str, &str),
    by_store: &mut BTreeMap<String, BTreeMap<String, Tally>>,
    by_channel: &mut BTreeMap<String, BTreeMap<String, Tally>>,
) -> Result<BTreeMap<String, BTreeMap<String, u64>>, OpsError> {
    let db = ctx.store()?;
    let stores: BTreeSet<String> = match &query.store {
        Some(id) => BTreeSet::from([id.clone()]),
        None => ctx
            .config
            .stores
            .keys()
            .cloned()
            .chain(db.stores().await?)
            .collect(),
    };
    let mut reasons: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for store in stores {
        let Some(status) = db.store_status(&store).await? else {
            continue;
        };
        for skipped in status.skipped.iter().filter(|s| {
            s.day.as_str() >= from_day
                && s.day.as_str() <= to_day
                && query.channel.as_ref().is_none_or(|c| *c == s.channel)
        }) {
            let tally = |map: &mut BTreeMap<String, BTreeMap<String, Tally>>, id: &str| {
                map.entry(id.to_owned())
                    .or_default()
                    .entry(skipped.kind.clone())
                    .or_default()
                    .skipped += skipped.count;
            };
            tally(by_store, &store);
            tally(by_channel, &skipped.channel);
            *reasons
                .entry(store.clone())
                .or_default()
                .entry(skipped.reason.clone())
                .or_default() += skipped.count;
        }
    }
    Ok(reasons)
}

/// `24h`, `7d`, `90m`: whole days from two days up, else hours or minutes.
fn window_name(since: SignedDuration) -> String {
    let secs = since.as_secs();
    if secs >= 2 * 86_400 && secs % 86_400 == 0 {
        format!("{}d", secs / 86_400)
    } else if secs >= 3600 && secs % 3600 == 0 {
        format!("{}h", secs / 3600)
    } else {
        crate::config::format_duration(since)
    }
}

fn tallies(kinds: BTreeMap<String, Tally>) -> (Tally, Vec<KindTally>) {
    let mut total = Tally::default();
    let mut by_kind: Vec<KindTally> = kinds
        .into_iter()
        .map(|(kind, tally)| {
            total.add(&tally);
            let known = NotificationKind::from_str(&kind).ok();
            KindTally {
                label: known.map(|k| k.label_pt().to_owned()),
                kind,
                tally,
            }
        })
        .collect();
    let position = |kind: &str| {
        NotificationKind::ALL
            .iter()
            .position(|k| k.as_str() == kind)
            .unwrap_or(usize::MAX)
    };
    by_kind.sort_by(|a, b| {
        position(&a.kind)
            .cmp(&position(&b.kind))
            .then_with(|| a.kind.cmp(&b.kind))
    });
    (total, by_kind)
}

async fn queue_figures(
    ctx: &Context,
    channel: &str,
    recent_entries: &[Job],
) -> Result<QueueFigures, OpsError> {
    let db = ctx.store()?;
    let policy = ctx
        .pacing(channel)
        .ok_or_else(|| OpsError::Invalid(format!("unknown channel {channel:?}")))?;
    let stats = db.channel_stats(channel).await?;
    let status = db.channel_status(channel).await?;
    let pacing = PacingState::of(&status);
    let since = ctx.now - RECENT_WINDOW;
    let sent_last_5m = db
        .recent(channel, since)
        .await?
        .iter()
        .filter(|f| f.state == JobState::Sent)
        .count() as u64;
    let entered_last_5m = recent_entries
        .iter()
        .filter(|j| j.channel == channel)
        .count() as u64;
    let today = policy.day_of(ctx.now, &ctx.config.daemon.timezone);
    let sent_today = u64::from(pacing.sent_on(today));
    let eta_paced_at = policy.eta(&pacing, stats.pending, ctx.now);
    Ok(QueueFigures {
        backlog: stats.pending,
        running: stats.running,
        oldest_due: stats.oldest_due,
        min_interval_secs: policy.min_interval.as_secs_f64(),
        eta_naive_secs: naive_eta(policy.min_interval, stats.pending).as_secs_f64(),
        eta_paced_secs: eta_paced_at.map(|at| at.duration_since(ctx.now).as_secs_f64().max(0.0)),
        eta_paced_at,
        entered_last_5m,
        sent_last_5m,
        pacing_day: today,
        sent_today,
        daily_cap: policy.daily_cap.as_ref().map(|c| c.limit),
        cap_today: policy.cap_on(&pacing, today),
        warmup: policy
            .daily_cap
            .as_ref()
            .is_some_and(|c| c.warmup.is_some()),
        cap_day_started_at: policy.daily_cap.as_ref().and_then(|c| {
            c.time_zone
                .to_zoned_datetime(jiff::civil::DateTime::from_parts(today, c.reset_at))
                .ok()
                .map(|z| z.timestamp())
        }),
        cap_resets_at: policy.daily_cap.as_ref().map(|c| c.next_reset(ctx.now)),
        last_sent_at: status.last_sent_at,
        paused: status.paused,
    })
}
