//! `arauto preview --store ID [--since 7d] [--json]`: what arauto would send
//! for a store's recent orders, read live from the platform, without sending
//! or writing anything — Notificações Inteligentes' "what will happen" for a
//! store about to be switched on.
//!
//! # What the plan is
//!
//! A platform shows only the *current* state of each order, not the steps it
//! went through, so the preview cannot replay a week of polls. It plans
//! exactly what a daemon **started now with `first_sync_cutoff = now −
//! since`** (the window's start) sends for the store on its first sweep:
//!
//! * an order last changed before the window, or placed before it, is the
//!   baseline: recorded silently, nothing sent (rule 7 of [`crate::decide`]);
//! * every other order gets the notification of its *current* status (one
//!   step, the latest: the happy path never sends stale intermediate steps),
//!   on each of the store's channels, unless something skips it — no
//!   recipient for the channel, an unmapped status, a kind switched off, a
//!   template that fails;
//! * each message's time is its due time (per-kind delay, quiet hours) moved
//!   by the channel's pacing (minimum interval, daily cap, warm-up) in the
//!   order the channel's queue hands them out, as if the channel had nothing
//!   else queued and had not sent recently.
//!
//! The store's own `first_sync_cutoff` is not used: the window replaces it.
//!
//! # How, without a second copy of the policy
//!
//! The configuration is loaded and built by the daemon's startup path
//! ([`crate::state::build`]); the store's connector `poll` reads the orders
//! from an empty cursor with the detail cutoff at the window's start (the
//! platform is only read); every order goes through [`decide::decide`] with
//! the window's start as the first-sync cutoff, as in a sweep; each planned
//! notification then goes through the send stage's own checks: the channel's
//! pacing ([`crate::send::pacing`]), quiet hours and expiry at send time
//! ([`decide::send_time_check`]), the pre-send relevance check
//! ([`decide::still_relevant`]), and its text is rendered with the
//! configured templates.
//!
//! Nothing is written: no state database is opened (so the preview runs
//! beside a running daemon), no cursor moves, compiled plugins are only read
//! from the cache, and no sender plugin is called.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::config_arg::ConfigArg;
use super::exit::{Exit, print_json};
use super::style::{Progress, Style};
use crate::config::{self, Config};
use crate::decide::{
    self, DecideInput, OrderRecord, PlannedNotification, QuietHours, QuietHoursMode, Relevance,
    SendTiming, StorePolicy, TrackingRef,
};
use crate::logging::{self, LogFormat};
use crate::model::{ErrorClass, NoUsablePhone, NotificationKind, Order, first_usable_phone};
use crate::plugin::{ConnectorNotice, HostConfig, PluginHost, PollRequest};
use crate::send::channel::pacing_policy;
use crate::send::pacing::{PacingDecision, PacingPolicy, PacingState};
use crate::state::{BuildOptions, State, StoreRuntime, build};
use crate::template::{StoreInfo, TemplateContext, TemplateError};

/// The look-back when `--since` is not given.
pub const DEFAULT_SINCE: &str = "7d";

/// Pages read at most: a runaway connector (a cursor that never ends) must not
/// keep the command going forever. At LI's 50 orders a page, 100 000 orders.
const MAX_PAGES: u32 = 2000;

/// `arauto preview --help`: what the plan means.
pub(super) const LONG_ABOUT: &str = "Read a store's orders from its platform and print what \
arauto would send for them — each message's time, kind, channel and text, and what it would skip \
and why — without sending or writing anything (no database is opened, so it runs beside the \
daemon).\n\n\
The platform shows only each order's current state, so the plan is exactly what a daemon started \
now with first_sync_cutoff = now - SINCE sends on its first sweep: orders last changed or placed \
before that instant are the baseline (nothing sent); every other order gets the notification of \
its current status (only the latest step) on each channel, at its due time (delay, quiet hours) \
moved by the channel's pacing, as if the channel had nothing else queued. The store's own \
first_sync_cutoff is not used. To have the daemon send exactly this plan, start it with the \
printed window_start as the store's first_sync_cutoff.";

/// `arauto preview`.
#[derive(Debug, Args)]
pub struct PreviewArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub config: ConfigArg,
    /// The store to preview (an id of `[stores.<id>]`).
    #[arg(long, value_name = "ID")]
    pub store: String,
    /// How far back: orders changed within this window are planned ("7d", "36h", "90m").
    #[arg(long, value_name = "DURATION", default_value = DEFAULT_SINCE, value_parser = parse_since)]
    pub since: SignedDuration,
    /// Print the plan as JSON (shape documented in the README's operator section).
    #[arg(long)]
    pub json: bool,
}

/// `--since`: a positive duration in the configuration's syntax.
fn parse_since(text: &str) -> Result<SignedDuration, String> {
    let duration = config::parse_duration(text)
        .map_err(|error| format!("{text:?} is not a duration like \"7d\" or \"36h\": {error}"))?;
    if duration <= SignedDuration::ZERO {
        return Err(format!("{text:?} must be longer than zero"));
    }
    Ok(duration)
}

/// The whole plan, as `--json` prints it. Field names are a stable interface.
#[derive(Clone, Debug, Serialize)]
pub struct Preview {
    /// The store's id.
    pub store: String,
    /// Its platform, as its connector names it.
    pub platform: String,
    /// When the plan was made (the orders were read around then).
    pub generated_at: Timestamp,
    /// `--since`, as a duration string.
    pub since: String,
    /// `generated_at - since`: the first-sync cutoff the plan assumes.
    pub window_start: Timestamp,
    /// Orders the connector returned.
    pub orders_read: usize,
    /// Messages planned, over all orders.
    pub messages: usize,
    /// Skips, over all orders.
    pub skips: usize,
    /// Per order, oldest placed first.
    pub orders: Vec<OrderPlan>,
    /// Orders the connector or arauto could not read (nothing can be planned for them).
    pub unreadable: Vec<UnreadableOrder>,
}

/// What happens to one order.
#[derive(Clone, Debug, Serialize)]
pub struct OrderPlan {
    /// The platform's order id (what logs and the queue call `order`).
    pub order_id: String,
    /// The store-facing order number.
    pub number: String,
    /// Current status code on the platform.
    pub status: String,
    /// Its display name.
    pub status_name: String,
    /// When the order was placed.
    pub created_at: Timestamp,
    /// When the platform last changed it.
    pub updated_at: Timestamp,
    /// Messages arauto would send, in sending order.
    pub messages: Vec<PlannedMessage>,
    /// What it would not send, and why.
    pub skipped: Vec<Skip>,
}

/// One message arauto would send.
#[derive(Clone, Debug, Serialize)]
pub struct PlannedMessage {
    /// Notification kind (`order-paid`…).
    pub kind: NotificationKind,
    /// Channel instance.
    pub channel: String,
    /// When it becomes due (event + delay, moved out of the quiet hours).
    pub due_at: Timestamp,
    /// When the channel would send it (after pacing and quiet hours at send time).
    pub send_at: Timestamp,
    /// What moved it past its due time (`quiet hours until …`, `pacing…`).
    pub held: Vec<String>,
    /// The rendered text.
    pub text: String,
}

/// Something arauto would not send.
#[derive(Clone, Debug, Serialize)]
pub struct Skip {
    /// The notification, when one was planned or recognised.
    pub kind: Option<NotificationKind>,
    /// The channel, when the skip is about one channel.
    pub channel: Option<String>,
    /// Stable key of the reason.
    pub reason: SkipReason,
    /// Words for the operator.
    pub detail: String,
}

/// Why a notification is not sent. Serialised as kebab-case keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SkipReason {
    /// Last changed before the window: the baseline.
    BeforeWindow,
    /// Placed before the window: its first sighting only says something changed.
    PlacedBeforeWindow,
    /// The store's recognition does not know the status.
    UnmappedStatus,
    /// The status is recognised but has no notification.
    NoNotification,
    /// The notification is switched off.
    KindDisabled,
    /// The order lacks what the channel delivers to (phone, e-mail, chat id).
    NoRecipient,
    /// The happy path plans nothing for this state (e.g. after a cancellation).
    HappyPath,
    /// The pre-send check drops it (the order moved on).
    NoLongerRelevant,
    /// Its text cannot be made (a template error or a value the text needs).
    Template,
    /// It would expire before the channel's pacing lets it go.
    Expired,
    /// The channel is not built (its plugin did not load).
    ChannelUnavailable,
}

/// An order nothing can be planned for.
#[derive(Clone, Debug, Serialize)]
pub struct UnreadableOrder {
    /// The order id as the connector named it.
    pub order_id: String,
    /// Why.
    pub reason: String,
}

/// Why a preview failed.
#[derive(Debug, thiserror::Error)]
enum PreviewError {
    /// The connector's poll failed.
    #[error("store `{store}` ({plugin}): reading its orders failed: {message}{hint}")]
    Poll {
        store: String,
        plugin: String,
        message: String,
        hint: String,
    },
    /// The connector kept returning pages.
    #[error(
        "store `{store}`: the connector still had more orders after {MAX_PAGES} pages; try a shorter --since"
    )]
    TooManyPages { store: String },
}

/// Run `arauto preview`.
pub(crate) fn run(args: PreviewArgs) -> Exit {
    // Plugins that log while loading or polling should be heard (on stderr).
    if let Err(error) = logging::init(LogFormat::Text, "warn") {
        eprintln!("arauto: {error}");
    }
    let config = match config::load(args.config.config.as_deref()) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            return Exit::Failure;
        }
    };
    if let Err(exit) = check_store(&config, &args.store) {
        return exit;
    }
    let progress = Progress::on_stderr();
    progress.show("loading plugins…");
    let outcome = plan_store(config, &args, &progress);
    progress.clear();
    let (preview, time_zone) = match outcome {
        Ok(planned) => planned,
        Err(exit) => return exit,
    };
    if args.json {
        if let Err(exit) = print_json(&preview) {
            return exit;
        }
    } else {
        print!("{}", render(&preview, &time_zone, Style::for_stdout()));
    }
    Exit::Ok
}

/// The store must exist and be enabled; anything else is the operator's typo
/// or a store that would not run.
fn check_store(config: &Config, id: &str) -> Result<(), Exit> {
    let path = config.source_path().display();
    let Some(store) = config.stores.get(id) else {
        let known: Vec<&str> = config.stores.keys().map(String::as_str).collect();
        let known = if known.is_empty() {
            "none is configured".to_owned()
        } else {
            format!("known stores: {}", known.join(", "))
        };
        eprintln!("arauto: no store `{id}` in {path} ({known})");
        return Err(Exit::Usage);
    };
    if !store.enabled {
        eprintln!(
            "arauto: store `{id}` is disabled (stores.{id}.enabled = false in {path}): the daemon does not poll it; set enabled = true to preview it"
        );
        return Err(Exit::Failure);
    }
    Ok(())
}

/// Build the configuration, read the store's orders and plan them; with the
/// store's time zone, the one its times are shown in.
fn plan_store(
    config: Config,
    args: &PreviewArgs,
    progress: &Progress,
) -> Result<(Preview, TimeZone), Exit> {
    let path = config.source_path().to_path_buf();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .map_err(|error| {
            eprintln!("arauto: {error:#}");
            Exit::Failure
        })?;
    // Only read the daemon's compiled plugins: the preview leaves no trace.
    let host = PluginHost::new(HostConfig::reading_cache(config.daemon.cache_dir.clone()))
        .map_err(|error| {
            eprintln!("arauto: cannot start the plugin host: {error}");
            Exit::Failure
        })?;
    let state = runtime
        .block_on(build(config, &BuildOptions::default(), &host))
        .map_err(|error| {
            eprintln!("arauto: invalid configuration {}: {error}", path.display());
            Exit::Failure
        })?;
    let Some(store) = state.stores.get(&args.store).map(Arc::clone) else {
        // check_store saw it in the configuration; build keeps every store.
        eprintln!("arauto: store `{}` was not built", args.store);
        return Err(Exit::Failure);
    };
    progress.show(&format!("reading the orders of store `{}`…", args.store));
    let now = Timestamp::now();
    // Whole seconds: the value an operator copies into first_sync_cutoff.
    let window_start = now
        .checked_sub(args.since)
        .and_then(|start| Timestamp::from_second(start.as_second()))
        .unwrap_or(Timestamp::MIN);
    let read = runtime
        .block_on(read_orders(&store, window_start))
        .map_err(|error| {
            eprintln!("arauto: {error}");
            Exit::Failure
        })?;
    Ok((
        plan(&state, &store, read, now, args.since, window_start),
        store.config.timezone.clone(),
    ))
}

/// What the connector returned over every page.
struct ReadOrders {
    orders: Vec<Order>,
    unreadable: Vec<UnreadableOrder>,
}

/// Call the connector's `poll` from an empty cursor until it has no more
/// pages, as a store's first sweep does, with the detail cutoff at the
/// window's start. Nothing is kept: the cursor of each page is only handed
/// back to the next call.
async fn read_orders(
    store: &StoreRuntime,
    window_start: Timestamp,
) -> Result<ReadOrders, PreviewError> {
    let id = store.config.id.as_str();
    let mut read = ReadOrders {
        orders: Vec::new(),
        unreadable: Vec::new(),
    };
    let mut cursor = None;
    for _ in 0..MAX_PAGES {
        let page = store
            .connector
            .poll(PollRequest {
                cursor: cursor.take(),
                detail_cutoff: Some(window_start),
                look_at: Vec::new(),
            })
            .await
            .map_err(|error| PreviewError::Poll {
                store: id.to_owned(),
                plugin: store.plugin.name().to_owned(),
                message: error.to_string(),
                hint: match error.class() {
                    ErrorClass::Misconfigured => format!(
                        " — the platform refused the store's settings: check [stores.{id}.settings] (credentials, base_url)"
                    ),
                    _ => String::new(),
                },
            })?;
        for rejected in page.rejected {
            read.unreadable.push(UnreadableOrder {
                order_id: rejected.order,
                reason: format!("refused by arauto: {}", rejected.reason),
            });
        }
        for notice in page.notices {
            match notice {
                ConnectorNotice::OrderUnreadable { order, reason, .. }
                | ConnectorNotice::OrderQuarantined { order, reason, .. } => {
                    read.unreadable.push(UnreadableOrder {
                        order_id: order,
                        reason,
                    });
                }
                ConnectorNotice::FutureTimestamp { .. }
                | ConnectorNotice::OrderRecovered { .. } => {}
            }
        }
        read.orders.extend(page.orders);
        if !page.has_more {
            return Ok(read);
        }
        cursor = page.next_cursor;
    }
    Err(PreviewError::TooManyPages {
        store: id.to_owned(),
    })
}

/// One planned notification on its way through the channel's queue.
struct Queued {
    order: usize,
    kind: NotificationKind,
    channel: String,
    queue_priority: u8,
    due_at: Timestamp,
    first_due_at: Timestamp,
    expires_at: Timestamp,
    quiet_hours: QuietHoursMode,
    text: String,
    held: Vec<String>,
    /// Enqueue order: the queue's tie-break after priority and due time.
    seq: usize,
}

/// Decide every order as a daemon's first sweep with the window's start as
/// its first-sync cutoff would, then run the planned notifications through
/// the send stage's checks and pacing.
fn plan(
    state: &State,
    store: &StoreRuntime,
    read: ReadOrders,
    now: Timestamp,
    since: SignedDuration,
    window_start: Timestamp,
) -> Preview {
    let mut policy = store.policy.clone();
    policy.seed_cutoff = Some(window_start);
    let orders_read = read.orders.len();

    // Records decided earlier (an order listed twice), as in a sweep.
    let mut records: BTreeMap<String, usize> = BTreeMap::new();
    let mut plans: Vec<OrderPlan> = Vec::new();
    let mut finals: Vec<OrderRecord> = Vec::new();
    let mut planned: Vec<(usize, PlannedNotification)> = Vec::new();
    for order in read.orders {
        let previous = records.get(&order.id).map(|&index| finals[index].clone());
        let phone = first_usable_phone(&order.customer.phones).err();
        let decision = decide::decide(
            &policy,
            DecideInput {
                previous: previous.as_ref(),
                order: order.clone(),
                pending: &[],
                unusable_phone: phone.as_ref().map(NoUsablePhone::problem),
                now,
            },
        );
        let index = match records.get(&order.id) {
            Some(&index) => index,
            None => {
                plans.push(OrderPlan {
                    order_id: order.id.clone(),
                    number: order.number.clone(),
                    status: String::new(),
                    status_name: String::new(),
                    created_at: order.created_at,
                    updated_at: order.updated_at,
                    messages: Vec::new(),
                    skipped: Vec::new(),
                });
                finals.push(decision.new_record.clone());
                records.insert(order.id.clone(), plans.len() - 1);
                plans.len() - 1
            }
        };
        let plan = &mut plans[index];
        plan.status.clone_from(&order.status.code);
        plan.status_name.clone_from(&order.status.name);
        plan.updated_at = order.updated_at;
        plan.skipped.extend(skips_of(
            &policy,
            &order,
            &decision,
            window_start,
            &store.config.timezone,
        ));
        finals[index] = decision.new_record;
        planned.extend(decision.planned.into_iter().map(|p| (index, p)));
    }

    let store_info = StoreInfo {
        id: store.config.id.clone(),
        description: store
            .config
            .description
            .clone()
            .unwrap_or_else(|| store.config.id.clone()),
        time_zone: store.config.timezone.clone(),
    };
    // Per channel, what reaches its queue: relevant, with a text.
    let mut queues: BTreeMap<String, Vec<Queued>> = BTreeMap::new();
    for (seq, (index, notification)) in planned.into_iter().enumerate() {
        let record = &finals[index];
        let channel = notification.channel.as_str().to_owned();
        let skip = |reason, detail| Skip {
            kind: Some(notification.kind),
            channel: Some(channel.clone()),
            reason,
            detail,
        };
        if !state.channels.contains_key(&channel) {
            plans[index].skipped.push(skip(
                SkipReason::ChannelUnavailable,
                format!("channel `{channel}` is not running"),
            ));
            continue;
        }
        if let Relevance::Drop { reason } = decide::still_relevant(
            notification.kind,
            notification.priority,
            notification.tracking.as_ref(),
            record,
        ) {
            plans[index].skipped.push(skip(
                SkipReason::NoLongerRelevant,
                format!("dropped before sending: {reason}"),
            ));
            continue;
        }
        let text = match render_text(
            state,
            &store_info,
            &channel,
            notification.kind,
            notification.tracking.as_ref(),
            &record.order,
        ) {
            Ok(text) => text,
            Err(error) => {
                plans[index]
                    .skipped
                    .push(skip(SkipReason::Template, error.to_string()));
                continue;
            }
        };
        queues.entry(channel.clone()).or_default().push(Queued {
            order: index,
            kind: notification.kind,
            channel,
            queue_priority: notification.queue_priority(),
            due_at: notification.due_at,
            first_due_at: notification.due_at,
            expires_at: notification.expires_at,
            quiet_hours: notification.quiet_hours,
            text,
            held: if notification.due_at
                > decide::timing::add(now, policy.timing.for_kind(notification.kind).delay)
            {
                vec![format!(
                    "quiet hours until {}",
                    local(notification.due_at, &store.config.timezone)
                )]
            } else {
                Vec::new()
            },
            seq,
        });
    }

    let quiet = policy.timing.quiet_hours.as_ref();
    let time_zone = &state.config.daemon.timezone;
    for (channel_id, queue) in queues {
        let Some(channel) = state.channels.get(&channel_id) else {
            continue;
        };
        let pacing = pacing_policy(&channel.config, channel.plugin.sender_info(), time_zone);
        for (sent, outcome) in drain_channel(queue, &pacing, quiet, now, &store.config.timezone) {
            let plan = &mut plans[sent.order];
            match outcome {
                Some(send_at) => plan.messages.push(PlannedMessage {
                    kind: sent.kind,
                    channel: sent.channel,
                    due_at: sent.first_due_at,
                    send_at,
                    held: sent.held,
                    text: sent.text,
                }),
                None => plan.skipped.push(Skip {
                    kind: Some(sent.kind),
                    channel: Some(sent.channel),
                    reason: SkipReason::Expired,
                    detail: format!(
                        "would expire at {} before the channel's pacing lets it go",
                        local(sent.expires_at, &store.config.timezone)
                    ),
                }),
            }
        }
    }

    for plan in &mut plans {
        plan.messages
            .sort_by(|a, b| (a.send_at, &a.channel).cmp(&(b.send_at, &b.channel)));
    }
    plans.sort_by(|a, b| (a.created_at, &a.order_id).cmp(&(b.created_at, &b.order_id)));
    Preview {
        store: store.config.id.clone(),
        platform: store.info.platform.clone(),
        generated_at: now,
        since: config::format_duration(since),
        window_start,
        orders_read,
        messages: plans.iter().map(|p| p.messages.len()).sum(),
        skips: plans.iter().map(|p| p.skipped.len()).sum(),
        orders: plans,
        unreadable: read.unreadable,
    }
}

/// The text the dispatcher would render for this notification.
fn render_text(
    state: &State,
    store: &StoreInfo,
    channel: &str,
    kind: NotificationKind,
    tracking: Option<&TrackingRef>,
    order: &Order,
) -> Result<String, TemplateError> {
    let context = TemplateContext::new(order, kind, store, tracking);
    let text = state.templates.render(kind, channel, &context)?;
    // A provider template whose parameters fail dead-letters the job too.
    state.templates.render_provider(kind, channel, &context)?;
    Ok(text)
}

/// Hand out one channel's jobs as its dispatcher would: the most urgent due
/// job first (then the earliest due, then the first queued), each when the
/// pacing allows, re-checked against quiet hours and expiry at that instant.
/// Returns every job with its send time, or `None` when it would expire.
fn drain_channel(
    mut queue: Vec<Queued>,
    pacing: &PacingPolicy,
    quiet: Option<&QuietHours>,
    now: Timestamp,
    time_zone: &TimeZone,
) -> Vec<(Queued, Option<Timestamp>)> {
    let mut out = Vec::new();
    let mut pacing_state = PacingState::default();
    let mut clock = now;
    while !queue.is_empty() {
        match pacing.next_send(&pacing_state, clock) {
            PacingDecision::SendAt(at) => clock = clock.max(at),
            PacingDecision::CapReached { until, cap } => {
                for job in queue.iter_mut().filter(|job| job.due_at <= until) {
                    note(&mut job.held, format!("daily cap of {cap} reached"));
                }
                clock = until.max(clock + SignedDuration::from_secs(1));
                continue;
            }
        }
        // A claim finds stale jobs expired before choosing.
        let (stale, fresh): (Vec<Queued>, Vec<Queued>) =
            queue.into_iter().partition(|job| job.expires_at <= clock);
        out.extend(stale.into_iter().map(|job| (job, None)));
        queue = fresh;
        let next = queue
            .iter()
            .enumerate()
            .filter(|(_, job)| job.due_at <= clock)
            .min_by_key(|(_, job)| (job.queue_priority, job.due_at, job.seq))
            .map(|(index, _)| index);
        let Some(index) = next else {
            match queue.iter().map(|job| job.due_at).min() {
                Some(due) => clock = due,
                None => break,
            }
            continue;
        };
        let job = &mut queue[index];
        match decide::send_time_check(job.due_at, job.expires_at, job.quiet_hours, quiet, clock) {
            SendTiming::SendNow => {
                let mut job = queue.swap_remove(index);
                // Pacing under a second is not worth a note (unpaced channels
                // still send one after the other).
                if clock.duration_since(job.due_at) >= SignedDuration::from_secs(1) {
                    note(&mut job.held, "channel pacing".to_owned());
                }
                pacing.record_send(&mut pacing_state, clock);
                out.push((job, Some(clock)));
            }
            SendTiming::Defer { until, expires_at } => {
                note(
                    &mut job.held,
                    format!("quiet hours until {}", local(until, time_zone)),
                );
                job.due_at = until;
                job.expires_at = expires_at;
            }
            SendTiming::Expired => {
                let job = queue.swap_remove(index);
                out.push((job, None));
            }
        }
    }
    out
}

/// Add `text` to a job's notes once.
fn note(held: &mut Vec<String>, text: String) {
    if !held.contains(&text) {
        held.push(text);
    }
}

/// Why the decision for `order` sends less than a notification per channel:
/// the first-sync window, an unmapped status, a switched-off kind, a missing
/// recipient, or the happy-path rules.
fn skips_of(
    policy: &StorePolicy,
    order: &Order,
    decision: &decide::Decision,
    window_start: Timestamp,
    time_zone: &TimeZone,
) -> Vec<Skip> {
    let at = |t: Timestamp| local(t, time_zone);
    let mut skips = Vec::new();
    let recognized = policy.recognition.recognise(&order.status.code);
    let kind = recognized.and_then(|status| status.kind);
    if decision.silent {
        let (reason, detail) = if order.updated_at < window_start {
            (
                SkipReason::BeforeWindow,
                format!(
                    "last changed {} before the window ({}): the baseline, nothing sent",
                    at(order.updated_at),
                    at(window_start)
                ),
            )
        } else {
            (
                SkipReason::PlacedBeforeWindow,
                format!(
                    "placed {} before the window ({}): its change now does not say what its customer was already told",
                    at(order.created_at),
                    at(window_start)
                ),
            )
        };
        skips.push(Skip {
            kind,
            channel: None,
            reason,
            detail,
        });
        return skips;
    }
    if let Some(unmapped) = &decision.unmapped {
        let detail = if unmapped.code.is_empty() {
            "the order has no status on the platform".to_owned()
        } else {
            format!(
                "status {} ({}) has no notification mapping; map it in [stores.{}.recognition] if customers should hear about it",
                unmapped.code, unmapped.name, policy.store_id
            )
        };
        skips.push(Skip {
            kind: None,
            channel: None,
            reason: SkipReason::UnmappedStatus,
            detail,
        });
    }
    for invalid in &decision.invalid {
        skips.push(Skip {
            kind: Some(invalid.kind),
            channel: Some(invalid.channel.clone()),
            reason: SkipReason::NoRecipient,
            detail: invalid.reason.to_string(),
        });
    }
    if !decision.planned.is_empty() || !decision.invalid.is_empty() || decision.unmapped.is_some() {
        return skips;
    }
    if let Some(status) = recognized {
        let (kind, reason, detail) = match status.kind {
            None => (
                None,
                SkipReason::NoNotification,
                format!(
                    "status {} ({}) sends no notification (recognition maps it to none)",
                    status.code, status.name
                ),
            ),
            Some(kind) if !policy.enabled.contains(&kind) => (
                Some(kind),
                SkipReason::KindDisabled,
                format!("{kind} is switched off ([notifications.{kind}] enabled = false)"),
            ),
            Some(kind) => (
                Some(kind),
                SkipReason::HappyPath,
                format!(
                    "the happy path plans nothing for status {} now (already announced, or after a cancellation)",
                    status.code
                ),
            ),
        };
        skips.push(Skip {
            kind,
            channel: None,
            reason,
            detail,
        });
    }
    skips
}

/// An instant as the store reads it: `2026-03-01 21:00 -03:00`.
fn local(at: Timestamp, time_zone: &TimeZone) -> String {
    at.to_zoned_datetime(time_zone.clone())
        .strftime("%Y-%m-%d %H:%M %:z")
        .to_string()
}

/// The plan for a terminal: one block per order, a line per message or skip.
fn render(preview: &Preview, time_zone: &TimeZone, style: Style) -> String {
    let at = |t: Timestamp| {
        t.to_zoned_datetime(time_zone.clone())
            .strftime("%Y-%m-%d %H:%M %:z")
            .to_string()
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} store {} ({}), orders changed in the last {} (since {})",
        style.bold("arauto preview:"),
        preview.store,
        preview.platform,
        preview.since,
        at(preview.window_start)
    );
    let _ = writeln!(
        out,
        "{}",
        style.dim(&format!(
            "nothing was sent or written; this is what a daemon started now with first_sync_cutoff = \"{}\" would send",
            preview.window_start
        ))
    );
    for order in &preview.orders {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{} {} — placed {}, changed {}",
            style.bold(&format!("order {}", order.number)),
            if order.status_name.is_empty() {
                order.status.clone()
            } else {
                format!("{} ({})", order.status_name, order.status)
            },
            at(order.created_at),
            at(order.updated_at)
        );
        for message in &order.messages {
            let first_line = message.text.lines().next().unwrap_or_default();
            let held = if message.held.is_empty() {
                String::new()
            } else {
                style.dim(&format!("  [{}]", message.held.join("; ")))
            };
            let _ = writeln!(
                out,
                "  {}  {:<18} {:<12} {}{held}",
                at(message.send_at),
                message.kind.as_str(),
                message.channel,
                first_line
            );
        }
        for skip in &order.skipped {
            let what = match (&skip.kind, &skip.channel) {
                (Some(kind), Some(channel)) => format!("{kind} on {channel}: "),
                (Some(kind), None) => format!("{kind}: "),
                (None, Some(channel)) => format!("{channel}: "),
                (None, None) => String::new(),
            };
            let _ = writeln!(out, "  {} {what}{}", style.yellow("skip:"), skip.detail);
        }
    }
    if !preview.unreadable.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "{}", style.bold("unreadable orders (nothing planned)"));
        for order in &preview.unreadable {
            let _ = writeln!(out, "  {}: {}", order.order_id, order.reason);
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{} orders read: {} {}, {} {}",
        preview.orders_read,
        preview.messages,
        if preview.messages == 1 {
            "message"
        } else {
            "messages"
        },
        preview.skips,
        if preview.skips == 1 { "skip" } else { "skips" },
    );
    out
}

#[cfg(test)]
mod tests {
    use jiff::civil::time;

    use super::*;
    use crate::send::pacing::DailyCap;

    fn sao_paulo() -> TimeZone {
        TimeZone::get("America/Sao_Paulo").unwrap_or(TimeZone::UTC)
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn job(seq: usize, kind: NotificationKind, due_at: Timestamp) -> Queued {
        Queued {
            order: seq,
            kind,
            channel: "zap".into(),
            queue_priority: u8::from(!kind.is_terminal()),
            due_at,
            first_due_at: due_at,
            expires_at: due_at + SignedDuration::from_hours(24),
            quiet_hours: QuietHoursMode::Defer,
            text: format!("message {seq}"),
            held: Vec::new(),
            seq,
        }
    }

    fn paced(every: SignedDuration) -> PacingPolicy {
        PacingPolicy {
            min_interval: every,
            daily_cap: None,
        }
    }

    fn sends(out: &[(Queued, Option<Timestamp>)]) -> Vec<(usize, Option<Timestamp>)> {
        out.iter().map(|(job, at)| (job.seq, *at)).collect()
    }

    #[test]
    fn the_channel_sends_one_per_interval_cancellations_first_then_oldest() {
        let now = at("2026-03-02T15:00:00Z");
        let queue = vec![
            job(0, NotificationKind::OrderPaid, now),
            job(1, NotificationKind::OrderShipped, now),
            job(2, NotificationKind::OrderCanceled, now),
        ];
        let out = drain_channel(
            queue,
            &paced(SignedDuration::from_secs(20)),
            None,
            now,
            &sao_paulo(),
        );
        let second = now + SignedDuration::from_secs(20);
        let third = now + SignedDuration::from_secs(40);
        assert_eq!(
            sends(&out),
            [(2, Some(now)), (0, Some(second)), (1, Some(third))]
        );
        assert_eq!(out[1].0.held, ["channel pacing"]);
        assert!(out[0].0.held.is_empty());
    }

    #[test]
    fn quiet_hours_defer_a_due_job_and_a_daily_cap_waits_for_the_reset() {
        let zone = sao_paulo();
        // 22:00 in São Paulo, inside a 21:00–08:00 window.
        let now = at("2026-03-03T01:00:00Z");
        let quiet = QuietHours::new(time(21, 0, 0, 0), time(8, 0, 0, 0), zone.clone())
            .unwrap_or_else(|e| panic!("{e}"));
        let pacing = PacingPolicy {
            min_interval: SignedDuration::from_secs(1),
            daily_cap: Some(DailyCap {
                limit: 1,
                reset_at: time(21, 0, 0, 0),
                time_zone: zone.clone(),
                warmup: None,
            }),
        };
        let queue = vec![
            job(0, NotificationKind::OrderPaid, now),
            job(1, NotificationKind::OrderShipped, now),
        ];
        let out = drain_channel(queue, &pacing, Some(&quiet), now, &zone);
        // 08:00 the next morning, then the next cap day (21:00, inside the
        // window again: 08:00 the morning after).
        assert_eq!(
            sends(&out),
            [
                (0, Some(at("2026-03-03T11:00:00Z"))),
                (1, Some(at("2026-03-04T11:00:00Z")))
            ]
        );
        assert!(
            out[0].0.held[0].starts_with("quiet hours until 2026-03-03 08:00"),
            "{:?}",
            out[0].0.held
        );
        assert!(
            out[1].0.held.iter().any(|h| h.contains("daily cap of 1")),
            "{:?}",
            out[1].0.held
        );
    }

    #[test]
    fn a_job_the_pacing_holds_past_its_expiry_is_skipped_as_expired() {
        let now = at("2026-03-02T15:00:00Z");
        let mut late = job(1, NotificationKind::OrderPaid, now);
        late.expires_at = now + SignedDuration::from_mins(1);
        let queue = vec![job(0, NotificationKind::OrderPaid, now), late];
        let out = drain_channel(
            queue,
            &paced(SignedDuration::from_mins(5)),
            None,
            now,
            &sao_paulo(),
        );
        assert_eq!(sends(&out), [(0, Some(now)), (1, None)]);
    }

    #[test]
    fn the_command_line_is_well_formed_and_since_defaults_to_a_week() {
        use clap::{CommandFactory, Parser};
        crate::cli::Cli::command().debug_assert();
        let cli = crate::cli::Cli::try_parse_from(["arauto", "preview", "--store", "loja"])
            .unwrap_or_else(|e| panic!("{e}"));
        match cli.command {
            crate::cli::Command::Preview(args) => {
                assert_eq!(args.since, SignedDuration::from_hours(168));
                assert_eq!(args.store, "loja");
                assert!(!args.json);
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn since_takes_config_durations_and_refuses_zero() {
        assert_eq!(parse_since("7d"), Ok(SignedDuration::from_hours(168)));
        assert_eq!(parse_since("36h"), Ok(SignedDuration::from_hours(36)));
        assert!(parse_since("0s").is_err());
        assert!(parse_since("uma semana").is_err());
    }
}
