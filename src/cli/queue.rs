//! `arauto queue …`: inspect and steer the send queue.

use std::fmt::Write;
use std::time::Duration;

use clap::{ArgGroup, Args, Subcommand};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use super::backend::{Backend, ClusterView, ConnectArgs, Needs};
use super::exit::{Exit, print_json, refused};
use super::style::{Align, Progress, Table};
use crate::control::{Request, Response};
use crate::queue::{CancelOutcome, Job, JobBody, JobId, JobState, RequeueOutcome};
use crate::report::queue_ops::DEFAULT_LIST_LIMIT;
use crate::report::{ListQuery, PurgeQuery, RetryDeadQuery};

const QUICK: Duration = Duration::from_secs(60);
const BULK: Duration = Duration::from_secs(600);

/// `arauto queue`.
#[derive(Debug, Args)]
pub struct QueueArgs {
    /// What to do with the queue.
    #[command(subcommand)]
    pub command: QueueCommand,
}

/// The queue subcommands.
#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// List jobs: pending by due time, running by lease, finished newest first.
    List(ListArgs),
    /// Everything about one job: state, attempts, last error, receipt, payload.
    Show(ShowArgs),
    /// Cancel pending jobs (running and finished ones are left alone).
    Cancel(CancelArgs),
    /// Send jobs again: the given ids, or every --dead / --expired job.
    Retry(RetryArgs),
    /// Stop sending on a channel; jobs keep queueing until it is resumed.
    Pause(PauseArgs),
    /// Resume sending on a paused channel, or polling a paused store (--store).
    Resume(ResumeArgs),
    /// Delete finished jobs older than --older-than (history kept for reports is not affected).
    Purge(PurgeArgs),
}

/// `arauto queue list`.
#[derive(Debug, Args)]
#[command(
    after_help = "With [cluster] and no daemon answering on this machine, the command reads the jobs it lists from the cluster: with --store or --channel only that store's or channel's jobs (the jobs bucket is keyed <channel>.<store>.<id>), else the whole jobs bucket; never the history stream."
)]
pub struct ListArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub connect: ConnectArgs,
    /// Only this store.
    #[arg(long, value_name = "ID")]
    pub store: Option<String>,
    /// Only this channel.
    #[arg(long, value_name = "ID")]
    pub channel: Option<String>,
    /// Only this state: pending, running, sent, dead (failed), cancelled, expired, skipped.
    #[arg(long, value_name = "STATE")]
    pub state: Option<JobState>,
    /// Only this order (the platform's order id).
    #[arg(long, value_name = "ID")]
    pub order: Option<String>,
    /// Only this notification kind (order-shipped…).
    #[arg(long, value_name = "KIND")]
    pub kind: Option<String>,
    /// Show at most this many jobs.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_LIST_LIMIT)]
    pub limit: usize,
    /// Print the jobs as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `arauto queue show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub connect: ConnectArgs,
    /// The job id (26 characters, from `queue list`).
    pub id: JobId,
    /// Print the job as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `arauto queue cancel`.
#[derive(Debug, Args)]
pub struct CancelArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub connect: ConnectArgs,
    /// The job ids.
    #[arg(required = true, num_args = 1..)]
    pub ids: Vec<JobId>,
    /// Why (kept on each job).
    #[arg(long)]
    pub reason: Option<String>,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `arauto queue retry`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("what").required(true).multiple(true).args(["ids", "dead", "expired"])))]
pub struct RetryArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub connect: ConnectArgs,
    /// The job ids (dead, expired, cancelled or skipped jobs).
    #[arg(conflicts_with_all = ["dead", "expired"])]
    pub ids: Vec<JobId>,
    /// Every dead-lettered (failed) job.
    #[arg(long)]
    pub dead: bool,
    /// Every expired job.
    #[arg(long)]
    pub expired: bool,
    /// With --dead/--expired: only this store.
    #[arg(long, value_name = "ID")]
    pub store: Option<String>,
    /// With --dead/--expired: only this channel.
    #[arg(long, value_name = "ID")]
    pub channel: Option<String>,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `arauto queue pause`.
#[derive(Debug, Args)]
pub struct PauseArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub connect: ConnectArgs,
    /// The channel id.
    pub channel: String,
    /// Why (shown by `check` and `report`).
    #[arg(long)]
    pub reason: Option<String>,
    /// Print the channel's status as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `arauto queue resume`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("what").required(true).args(["channel", "store"])))]
pub struct ResumeArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub connect: ConnectArgs,
    /// The channel id.
    pub channel: Option<String>,
    /// Resume polling this store instead: a store whose credentials the
    /// platform refused is paused (and re-checked with back-off); this polls
    /// it again at once.
    #[arg(long, value_name = "ID")]
    pub store: Option<String>,
    /// Print the channel's status as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `arauto queue purge`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("states").required(true).multiple(true)
    .args(["dead", "expired", "cancelled", "skipped", "sent", "all_finished"])))]
pub struct PurgeArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub connect: ConnectArgs,
    /// Dead-lettered (failed) jobs.
    #[arg(long)]
    pub dead: bool,
    /// Expired jobs.
    #[arg(long)]
    pub expired: bool,
    /// Cancelled jobs.
    #[arg(long)]
    pub cancelled: bool,
    /// Skipped jobs.
    #[arg(long)]
    pub skipped: bool,
    /// Delivered jobs.
    #[arg(long)]
    pub sent: bool,
    /// Every finished job.
    #[arg(long)]
    pub all_finished: bool,
    /// Only jobs that finished at least this long ago (e.g. 30d).
    #[arg(long, value_name = "DURATION", value_parser = parse_age)]
    pub older_than: SignedDuration,
    /// Only count what would be deleted.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_age(text: &str) -> Result<SignedDuration, String> {
    let duration = crate::config::parse_duration(text)?;
    if duration.is_negative() {
        return Err(format!("{text:?} must not be negative"));
    }
    Ok(duration)
}

/// Run `arauto queue …`.
pub(crate) fn run(args: QueueArgs) -> Exit {
    match args.command {
        QueueCommand::List(a) => {
            let request = Request::QueueList(ListQuery {
                store: a.store,
                channel: a.channel,
                state: a.state,
                order: a.order,
                kind: a.kind,
                limit: Some(a.limit),
            });
            serve(
                &a.connect,
                &request,
                QUICK,
                a.json,
                |response| match response {
                    Response::Jobs(list) => {
                        let mut out = render_list(&list.jobs);
                        if list.truncated {
                            let _ = writeln!(
                                out,
                                "(showing the first {}; raise --limit or narrow the filters for more)",
                                list.limit
                            );
                        }
                        Some((out, Exit::Ok))
                    }
                    _ => None,
                },
            )
        }
        QueueCommand::Show(a) => {
            let request = Request::QueueShow { id: a.id };
            serve(
                &a.connect,
                &request,
                QUICK,
                a.json,
                |response| match response {
                    Response::Job(job) => Some((render_job(job), Exit::Ok)),
                    _ => None,
                },
            )
        }
        QueueCommand::Cancel(a) => {
            let request = Request::QueueCancel {
                ids: a.ids,
                reason: a.reason,
            };
            serve(
                &a.connect,
                &request,
                BULK,
                a.json,
                |response| match response {
                    Response::Cancelled { results } => Some(per_job(results.iter().map(|r| {
                        let outcome = match r.result {
                            CancelOutcome::Cancelled => Ok("cancelled".to_owned()),
                            CancelOutcome::NotPending(state) => Err(format!(
                                "not cancelled: it is {state}, only pending jobs can be"
                            )),
                            CancelOutcome::NotFound => Err("no such job".to_owned()),
                        };
                        (r.id, outcome)
                    }))),
                    _ => None,
                },
            )
        }
        QueueCommand::Retry(a) => {
            if a.ids.is_empty() {
                let request = Request::QueueRetryFailed(RetryDeadQuery {
                    store: a.store,
                    channel: a.channel,
                    dead: a.dead,
                    expired: a.expired,
                });
                serve(
                    &a.connect,
                    &request,
                    BULK,
                    a.json,
                    |response| match response {
                        Response::RequeuedFailed { ids } => {
                            let mut out = format!(
                                "{} back on the queue, due now\n",
                                if ids.len() == 1 {
                                    "1 job".to_owned()
                                } else {
                                    format!("{} jobs", ids.len())
                                }
                            );
                            for id in ids {
                                let _ = writeln!(out, "  {id}");
                            }
                            Some((out, Exit::Ok))
                        }
                        _ => None,
                    },
                )
            } else {
                if a.store.is_some() || a.channel.is_some() {
                    eprintln!(
                        "arauto: --store and --channel go with --dead/--expired, not with job ids"
                    );
                    return Exit::Usage;
                }
                let request = Request::QueueRetry { ids: a.ids };
                serve(&a.connect, &request, BULK, a.json, |response| {
                    match response {
                        Response::Requeued { results } => Some(per_job(results.iter().map(|r| {
                            let outcome = match r.result {
                                RequeueOutcome::Requeued => Ok("back on the queue, due now".to_owned()),
                                RequeueOutcome::NotRequeueable(state) => Err(format!(
                                    "not requeued: it is {state} (only dead, expired, cancelled or skipped jobs can be retried)"
                                )),
                                RequeueOutcome::FellBack(fallback) => Err(format!(
                                    "not requeued: the recipient was unreachable on its channel and the notification fell back to job {fallback} (retry that one if it failed)"
                                )),
                                RequeueOutcome::NotFound => Err("no such job".to_owned()),
                            };
                            (r.id, outcome)
                        }))),
                        _ => None,
                    }
                })
            }
        }
        QueueCommand::Pause(a) => {
            let request = Request::QueuePause {
                channel: a.channel,
                reason: a.reason,
            };
            serve(
                &a.connect,
                &request,
                QUICK,
                a.json,
                |response| match response {
                    Response::Channel(change) => {
                        let reason = change
                            .status
                            .paused
                            .as_ref()
                            .map(|p| p.reason.clone())
                            .unwrap_or_default();
                        let out = if change.changed {
                            format!(
                                "channel {} paused: {reason}\nnothing is sent on it until `arauto queue resume {}`; new jobs keep queueing\n",
                                change.channel, change.channel
                            )
                        } else {
                            format!("channel {} was already paused: {reason}\n", change.channel)
                        };
                        Some((out, Exit::Ok))
                    }
                    _ => None,
                },
            )
        }
        QueueCommand::Resume(ResumeArgs {
            connect,
            channel: None,
            store: Some(store),
            json,
        }) => serve(
            &connect,
            &Request::StoreResume { store },
            QUICK,
            json,
            |response| match response {
                Response::Store(change) => {
                    let out = if change.changed {
                        format!("store {} resumed: polling again now\n", change.store)
                    } else {
                        format!("store {} was not paused\n", change.store)
                    };
                    Some((out, Exit::Ok))
                }
                _ => None,
            },
        ),
        QueueCommand::Resume(a) => {
            let request = Request::QueueResume {
                channel: a.channel.unwrap_or_default(),
            };
            serve(
                &a.connect,
                &request,
                QUICK,
                a.json,
                |response| match response {
                    Response::Channel(change) => {
                        let out = if change.changed {
                            format!("channel {} resumed\n", change.channel)
                        } else {
                            format!("channel {} was not paused\n", change.channel)
                        };
                        Some((out, Exit::Ok))
                    }
                    _ => None,
                },
            )
        }
        QueueCommand::Purge(a) => {
            let states = if a.all_finished {
                JobState::TERMINAL.to_vec()
            } else {
                [
                    (a.sent, JobState::Sent),
                    (a.dead, JobState::Dead),
                    (a.cancelled, JobState::Cancelled),
                    (a.expired, JobState::Expired),
                    (a.skipped, JobState::Skipped),
                ]
                .into_iter()
                .filter_map(|(on, state)| on.then_some(state))
                .collect()
            };
            let request = Request::QueuePurge(PurgeQuery {
                states,
                older_than: a.older_than,
                dry_run: a.dry_run,
            });
            serve(
                &a.connect,
                &request,
                BULK,
                a.json,
                |response| match response {
                    Response::Purged(result) => {
                        let states: Vec<&str> = result.states.iter().map(|s| s.as_str()).collect();
                        let jobs = if result.count == 1 {
                            "1 job".to_owned()
                        } else {
                            format!("{} jobs", result.count)
                        };
                        let out = format!(
                            "{} {jobs} ({}) that finished before {}\n",
                            if result.dry_run {
                                "would delete"
                            } else {
                                "deleted"
                            },
                            states.join(", "),
                            local(result.finished_before)
                        );
                        Some((out, Exit::Ok))
                    }
                    _ => None,
                },
            )
        }
    }
}

/// Send `request`; print the answer as JSON or as `human` renders it.
fn serve(
    connect: &ConnectArgs,
    request: &Request,
    timeout: Duration,
    json: bool,
    human: impl FnOnce(&Response) -> Option<(String, Exit)>,
) -> Exit {
    let progress = Progress::on_stderr();
    let view = ClusterView::for_request(request);
    let mut backend = match Backend::open(connect, Needs::Database, &view, &progress) {
        Ok(backend) => backend,
        Err(error) => {
            eprintln!("arauto: {error}");
            return Exit::Failure;
        }
    };
    let response = match backend.call(request, timeout, &progress) {
        Ok(response) => response,
        Err(error) => {
            eprintln!("arauto: {error:#}");
            return Exit::Failure;
        }
    };
    let Some((text, exit)) = human(&response) else {
        return refused(response);
    };
    if json {
        let encoded = match &response {
            Response::Jobs(list) => print_json(list),
            Response::Job(job) => print_json(job),
            Response::Cancelled { results } => print_json(results),
            Response::Requeued { results } => print_json(results),
            Response::RequeuedFailed { ids } => print_json(ids),
            Response::Channel(change) => print_json(change),
            Response::Store(change) => print_json(change),
            Response::Purged(result) => print_json(result),
            other => print_json(other),
        };
        if let Err(exit) = encoded {
            return exit;
        }
    } else {
        print!("{text}");
    }
    exit
}

/// One line per job, `<id>  <what happened>`; the command fails unless every
/// job had the outcome asked for (`Ok`).
fn per_job(outcomes: impl IntoIterator<Item = (JobId, Result<String, String>)>) -> (String, Exit) {
    let mut out = String::new();
    let mut all = true;
    for (id, outcome) in outcomes {
        all &= outcome.is_ok();
        let (Ok(line) | Err(line)) = outcome;
        let _ = writeln!(out, "{id}  {line}");
    }
    (out, if all { Exit::Ok } else { Exit::Failure })
}

fn local(at: Timestamp) -> String {
    at.to_zoned_datetime(TimeZone::system())
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

fn hm(at: Timestamp, now: Timestamp) -> String {
    let zoned = at.to_zoned_datetime(TimeZone::system());
    if zoned.date() == now.to_zoned_datetime(TimeZone::system()).date() {
        zoned.strftime("%H:%M:%S").to_string()
    } else {
        zoned.strftime("%Y-%m-%d %H:%M").to_string()
    }
}

fn order_number(job: &Job) -> String {
    job.payload()
        .ok()
        .map(|p| p.order_number.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| job.order_id.clone())
}

fn clip(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        let mut cut: String = flat.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

fn render_list(jobs: &[Job]) -> String {
    if jobs.is_empty() {
        return "no jobs match\n".to_owned();
    }
    let now = Timestamp::now();
    let mut table = Table::new(&[
        ("id", Align::Left),
        ("state", Align::Left),
        ("store", Align::Left),
        ("order", Align::Left),
        ("notification", Align::Left),
        ("channel", Align::Left),
        ("when", Align::Left),
        ("attempts", Align::Right),
        ("note", Align::Left),
    ]);
    for job in jobs {
        let when = match job.state {
            JobState::Pending if job.due_at <= now => "due now".to_owned(),
            JobState::Pending => format!("due {}", hm(job.due_at, now)),
            JobState::Running => "sending".to_owned(),
            _ => job.finished_at.map(|at| hm(at, now)).unwrap_or_default(),
        };
        let note = list_note(job);
        table.row(vec![
            job.id.to_string(),
            job.state.to_string(),
            job.store.clone(),
            order_number(job),
            job.kind_name().to_owned(),
            job.channel.to_string(),
            when,
            attempts_cell(job),
            note,
        ]);
    }
    let mut out = table.render("");
    let _ = writeln!(
        out,
        "{}",
        if jobs.len() == 1 {
            "1 job".to_owned()
        } else {
            format!("{} jobs", jobs.len())
        }
    );
    out
}

/// "1/5", or "1/5 (claimed 3×)" when provider back-pressure (429 +
/// Retry-After), quiet hours or a paused channel gave attempts back: those
/// claims spend no attempt, so the attempt count alone under-reports how often
/// the job was picked up.
fn attempts_cell(job: &Job) -> String {
    let mut cell = format!("{}/{}", job.attempt, job.max_attempts);
    if job.claims > job.attempt {
        cell.push_str(&format!(" (claimed {}×)", job.claims));
    }
    cell
}

/// The error kept from an attempt before the job was delivered, labelled so
/// it is not read as the reason of a failure.
const ERROR_BEFORE_SUCCESS: &str = "error before success";

/// The note column: why the job ended; otherwise its latest error — which,
/// on a delivered job, is history and says so.
fn list_note(job: &Job) -> String {
    if let Err(unreadable) = job.payload()
        && !job.state.is_terminal()
    {
        return clip(&format!("unreadable job record: {unreadable}"), 60);
    }
    if let Some(reason) = &job.outcome_reason {
        return clip(reason, 60);
    }
    match (&job.last_error, job.state) {
        (Some(error), JobState::Sent) => clip(&format!("{ERROR_BEFORE_SUCCESS}: {error}"), 60),
        (Some(error), _) => clip(error, 60),
        (None, _) => String::new(),
    }
}

fn render_job(job: &Job) -> String {
    let mut out = String::new();
    let mut field = |name: &str, value: String| {
        // 13 + 1: long labels still get a space before their value.
        let _ = writeln!(out, "{name:<13} {value}");
    };
    field("job", job.id.to_string());
    field("state", job.state.to_string());
    field("store", job.store.clone());
    field(
        "order",
        format!("{} (platform id {})", order_number(job), job.order_id),
    );
    field("notification", job.kind_name().to_owned());
    field("channel", job.channel.to_string());
    field("priority", job.priority.to_string());
    field("created", local(job.created_at));
    if job.state == JobState::Pending {
        field("due", local(job.due_at));
    }
    if let Some(at) = job.expires_at {
        field("expires", local(at));
    }
    if let Some(at) = job.lease_until {
        field("lease until", local(at));
    }
    let mut attempts = format!("{} of {}", job.attempt, job.max_attempts);
    if job.claims > job.attempt {
        attempts.push_str(&format!(
            " (claimed {}×: retries after provider back-pressure, quiet hours or a pause spend no attempt)",
            job.claims
        ));
    }
    field("attempts", attempts);
    if let Some(at) = job.finished_at {
        field("finished", local(at));
    }
    if let Some(reason) = &job.outcome_reason {
        field("outcome", reason.clone());
    }
    if let Some(fallback) = job.fell_back_to {
        field(
            "fell back to",
            format!(
                "job {fallback}: the recipient was unreachable on this channel, so its fallback channel got the notification (`arauto queue show {fallback}`)"
            ),
        );
    }
    if let Some(original) = job.fallback_of {
        field(
            "fallback of",
            format!(
                "job {original}: the recipient was unreachable on that job's channel, so this channel got the notification (`arauto queue show {original}`)"
            ),
        );
    }
    if let Some(error) = &job.last_error {
        let label = if job.state == JobState::Sent {
            ERROR_BEFORE_SUCCESS
        } else {
            "last error"
        };
        field(label, error.clone());
    }
    if let Some(receipt) = &job.receipt {
        let mut parts = Vec::new();
        if let Some(id) = &receipt.provider_message_id {
            parts.push(format!("provider id {id}"));
        }
        if let Some(to) = &receipt.recipient_id {
            parts.push(format!("to {to}"));
        }
        field("receipt", parts.join(", "));
    }
    if !job.dedupe_keys.is_empty() {
        field("dedupe keys", job.dedupe_keys.join(", "));
    }
    if !job.attempts_log.is_empty() {
        let _ = writeln!(out, "attempts log:");
        for a in &job.attempts_log {
            let _ = writeln!(out, "  {}  #{}  {}", local(a.at), a.attempt, a.outcome);
        }
    }
    let payload = match &job.body {
        JobBody::Readable { payload, .. } => {
            serde_json::to_string_pretty(payload).unwrap_or_default()
        }
        JobBody::Unreadable {
            unreadable,
            stored_payload,
            ..
        } => {
            let _ = writeln!(out, "{:<13} {unreadable}", "unreadable");
            stored_payload.clone()
        }
    };
    let _ = writeln!(out, "payload:");
    for line in payload.lines() {
        let _ = writeln!(out, "  {line}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(state: JobState, attempt: u32, claims: u32, last_error: Option<&str>) -> Job {
        let now = Timestamp::now();
        Job {
            id: JobId::lower_bound_at(now),
            channel: "whatsapp".into(),
            store: "loja".into(),
            order_id: "1001".into(),
            priority: 1,
            state,
            created_at: now,
            due_at: now,
            expires_at: None,
            attempt,
            max_attempts: 5,
            claims,
            lease_until: None,
            last_error: last_error.map(str::to_owned),
            attempts_log: Vec::new(),
            finished_at: Some(now),
            outcome_reason: None,
            receipt: None,
            dedupe_keys: Vec::new(),
            fell_back_to: None,
            fallback_of: None,
            body: JobBody::Readable {
                kind: crate::model::NotificationKind::OrderPaid,
                payload: crate::job::JobPayload {
                    payload_version: crate::job::JOB_PAYLOAD_VERSION,
                    priority: 2,
                    status_code: "pedido_pago".into(),
                    tracking: None,
                    order_number: "1001".into(),
                    quiet_hours: crate::job::QuietHoursMode::Defer,
                },
            },
        }
    }

    fn row(list: &str) -> String {
        list.lines()
            .nth(1)
            .unwrap_or_else(|| panic!("no row in {list}"))
            .to_owned()
    }

    #[test]
    fn list_shows_claims_that_spent_no_attempt() {
        // Claimed 3 times, twice given back by a provider's 429 + Retry-After.
        let throttled = job(JobState::Sent, 1, 3, None);
        let list = render_list(std::slice::from_ref(&throttled));
        assert!(list.starts_with("id"), "{list}");
        assert!(
            list.lines().next().is_some_and(|h| h.contains("attempts")),
            "{list}"
        );
        assert!(row(&list).contains("1/5 (claimed 3×)"), "{list}");
        assert!(
            render_job(&throttled).contains("attempts      1 of 5 (claimed 3×: "),
            "{}",
            render_job(&throttled)
        );

        let plain = job(JobState::Dead, 2, 2, Some("recipient is not on WhatsApp"));
        let list = render_list(&[plain]);
        assert!(row(&list).contains("2/5 "), "{list}");
        assert!(!list.contains("claimed"), "{list}");
    }

    #[test]
    fn a_sent_job_does_not_show_an_old_error_as_its_note() {
        let sent = job(JobState::Sent, 2, 2, Some("provider timed out"));
        let list = render_list(std::slice::from_ref(&sent));
        assert!(
            row(&list).contains("error before success: provider timed out"),
            "{list}"
        );
        let shown = render_job(&sent);
        assert!(
            shown.contains("error before success provider timed out"),
            "{shown}"
        );
        assert!(!shown.contains("last error"), "{shown}");

        // A job still retrying shows its error as it is.
        let retrying = job(JobState::Pending, 1, 1, Some("provider timed out"));
        let list = render_list(&[retrying]);
        assert!(row(&list).contains("provider timed out"), "{list}");
        assert!(!list.contains("before success"), "{list}");
    }

    #[test]
    fn an_unreadable_job_is_listed_and_shown_with_its_reason() {
        let mut odd = job(JobState::Pending, 0, 0, None);
        odd.body = JobBody::Unreadable {
            kind: "order-teleported".into(),
            unreadable: "unknown notification kind \"order-teleported\"".into(),
            stored_payload: r#"{"payload_version":99}"#.into(),
        };
        let list = render_list(std::slice::from_ref(&odd));
        assert!(row(&list).contains("order-teleported"), "{list}");
        assert!(row(&list).contains("unreadable job record"), "{list}");
        let shown = render_job(&odd);
        assert!(
            shown.contains("unreadable    unknown notification kind"),
            "{shown}"
        );
        assert!(shown.contains(r#"{"payload_version":99}"#), "{shown}");
    }
}
