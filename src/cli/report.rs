//! `arauto report`: delivery figures per store and per channel.

use std::fmt::Write;
use std::time::Duration;

use clap::Args;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use super::backend::{Backend, ClusterView, ConnectArgs, Needs};
use super::exit::{Exit, print_json, refused};
use super::style::{Align, Progress, Table};
use crate::config::format_duration;
use crate::control::{Request, Response};
use crate::report::{KindTally, QueueFigures, Report, ReportQuery, Tally};

const REPORT_TIMEOUT: Duration = Duration::from_secs(120);

/// `arauto report`.
#[derive(Debug, Args)]
#[command(
    after_help = "Counts are kept per local day (daemon.timezone), so the window is \
rounded out to whole days: --since 24h counts from 00:00 of the day that contained \
\"now - 24h\" (yesterday and today so far), --since 7d the last 7 days plus today. \
'pending' and 'sending' are the jobs not finished right now, whatever their age.\n\nWith [cluster] and no daemon answering on this machine, the command reads from the cluster only what it shows: with --store or --channel that store's or channel's jobs and outcomes (jobs are keyed <channel>.<store>.<id>, outcomes published per channel and store), else the whole jobs bucket and history stream."
)]
pub struct ReportArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub connect: ConnectArgs,
    /// Only this store (integration).
    #[arg(long, value_name = "ID", conflicts_with = "channel")]
    pub store: Option<String>,
    /// Only this channel instance.
    #[arg(long, value_name = "ID")]
    pub channel: Option<String>,
    /// How far back: 24h, 7d, 30d… (rounded out to whole local days).
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_since)]
    pub since: SignedDuration,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_since(text: &str) -> Result<SignedDuration, String> {
    let duration = crate::config::parse_duration(text)?;
    if duration.is_negative() || duration.is_zero() {
        return Err(format!(
            "{text:?} must be a positive duration like 24h, 7d or 30d"
        ));
    }
    Ok(duration)
}

/// Run `arauto report`.
pub(crate) fn run(args: ReportArgs) -> Exit {
    let progress = Progress::on_stderr();
    let request = Request::Report(ReportQuery {
        store: args.store,
        channel: args.channel,
        since: args.since,
    });
    let view = ClusterView::for_request(&request);
    let mut backend = match Backend::open(&args.connect, Needs::Database, &view, &progress) {
        Ok(backend) => backend,
        Err(error) => {
            eprintln!("arauto: {error}");
            return Exit::Failure;
        }
    };
    let report = match backend.call(&request, REPORT_TIMEOUT, &progress) {
        Ok(Response::Report(report)) => report,
        Ok(other) => return refused(other),
        Err(error) => {
            eprintln!("arauto: {error:#}");
            return Exit::Failure;
        }
    };
    if args.json {
        if let Err(exit) = print_json(&report) {
            return exit;
        }
    } else {
        print!("{}", render(&report));
    }
    Exit::Ok
}

fn tally_table(by_kind: &[KindTally], total: &Tally) -> Table {
    let mut table = Table::new(&[
        ("notification", Align::Left),
        ("entered", Align::Right),
        ("sent", Align::Right),
        ("failed", Align::Right),
        ("cancelled", Align::Right),
        ("expired", Align::Right),
        ("skipped", Align::Right),
        ("pending", Align::Right),
        ("sending", Align::Right),
    ]);
    let cells = |name: String, t: &Tally| {
        vec![
            name,
            t.entered.to_string(),
            t.sent.to_string(),
            t.failed.to_string(),
            t.cancelled.to_string(),
            t.expired.to_string(),
            t.skipped.to_string(),
            t.pending.to_string(),
            t.running.to_string(),
        ]
    };
    for k in by_kind {
        table.row(cells(k.kind.clone(), &k.tally));
    }
    if by_kind.len() > 1 {
        table.row(cells("total".to_owned(), total));
    }
    table
}

fn local(at: Timestamp, tz: &TimeZone) -> String {
    at.to_zoned_datetime(tz.clone())
        .strftime("%Y-%m-%d %H:%M")
        .to_string()
}

fn short(secs: f64) -> String {
    let whole = SignedDuration::from_secs(secs.round() as i64);
    format_duration(whole)
}

/// The report for a terminal.
pub(crate) fn render(report: &Report) -> String {
    let tz = TimeZone::get(&report.time_zone).unwrap_or(TimeZone::UTC);
    let mut out = String::new();
    let days = if report.from_day == report.to_day {
        format!("{}", report.to_day)
    } else {
        format!("{} … {}", report.from_day, report.to_day)
    };
    let _ = writeln!(
        out,
        "arauto report: last {}, counted over {days} (whole days, {})",
        report.since, report.time_zone
    );
    for store in &report.stores {
        let _ = writeln!(out);
        let mut title = format!("store {}", store.id);
        match (&store.platform, &store.description) {
            (Some(p), Some(d)) => title.push_str(&format!(" ({p}): {d}")),
            (Some(p), None) => title.push_str(&format!(" ({p})")),
            _ => title.push_str(" (no longer configured)"),
        }
        let _ = writeln!(out, "{title}");
        if let Some(pause) = &store.paused {
            let _ = writeln!(
                out,
                "  POLLING PAUSED since {}: {}",
                local(pause.at, &tz),
                pause.reason
            );
        }
        if store.by_kind.is_empty() {
            let _ = writeln!(out, "  nothing in this window");
        } else {
            out.push_str(&tally_table(&store.by_kind, &store.total).render("  "));
        }
        if !store.skipped_reasons.is_empty() {
            let reasons: Vec<String> = store
                .skipped_reasons
                .iter()
                .map(|(key, n)| format!("{} {n}", crate::decide::InvalidReason::label_of(key)))
                .collect();
            let _ = writeln!(
                out,
                "  skipped without a usable phone: {}",
                reasons.join(", ")
            );
        }
        if !store.quarantined.is_empty() {
            let _ = writeln!(
                out,
                "  {} quarantined (unreadable; their customers may not be notified until the order changes):",
                match store.quarantined.len() {
                    1 => "1 order".to_owned(),
                    n => format!("{n} orders"),
                }
            );
            for q in &store.quarantined {
                let _ = writeln!(
                    out,
                    "    order {}: {} ({} attempts, since {})",
                    q.order,
                    q.reason,
                    q.attempts,
                    local(q.since, &tz)
                );
            }
        }
    }
    for channel in &report.channels {
        let _ = writeln!(out);
        let mut title = format!("channel {}", channel.id);
        match (&channel.plugin, &channel.description) {
            (Some(p), Some(d)) => title.push_str(&format!(" ({p}): {d}")),
            (Some(p), None) => title.push_str(&format!(" ({p})")),
            _ => title.push_str(" (no longer configured)"),
        }
        let _ = writeln!(out, "{title}");
        if channel.by_kind.is_empty() {
            let _ = writeln!(out, "  nothing in this window");
        } else {
            out.push_str(&tally_table(&channel.by_kind, &channel.total).render("  "));
        }
        if !channel.fallbacks.is_empty() {
            // The recipient was unreachable here; another channel got it.
            let to: Vec<String> = channel
                .fallbacks
                .iter()
                .map(|(fallback, n)| format!("{n} fell back to {fallback}"))
                .collect();
            let _ = writeln!(out, "  unreachable here: {}", to.join(", "));
        }
        if let Some(queue) = &channel.queue {
            out.push_str(&queue_lines(queue, report.generated_at, &tz));
        }
    }
    out
}

fn queue_lines(q: &QueueFigures, now: Timestamp, tz: &TimeZone) -> String {
    let mut out = String::new();
    if let Some(pause) = &q.paused {
        let _ = writeln!(
            out,
            "  PAUSED{} since {}: {}",
            if pause.automatic {
                " automatically"
            } else {
                ""
            },
            local(pause.at, tz),
            pause.reason
        );
    }
    let mut queue = format!("  queue: {} waiting, {} being sent", q.backlog, q.running);
    if let Some(due) = q.oldest_due {
        if due <= now {
            queue.push_str(&format!(
                "; oldest due for {}",
                format_duration(SignedDuration::from_secs(now.duration_since(due).as_secs()))
            ));
        } else {
            queue.push_str(&format!("; next due at {}", local(due, tz)));
        }
    }
    let _ = writeln!(out, "{queue}");
    if q.backlog > 0 {
        let paced = match (q.eta_paced_secs, q.eta_paced_at) {
            (Some(secs), Some(at)) => format!("{} (last at {})", short(secs), local(at, tz)),
            _ => "never: the daily cap lets nothing out".to_owned(),
        };
        let _ = writeln!(
            out,
            "  time to drain: {} ({} × {} interval); with the daily cap and warm-up: {paced}",
            short(q.eta_naive_secs),
            q.backlog,
            short(q.min_interval_secs)
        );
    }
    let _ = writeln!(
        out,
        "  last 5 minutes: {} entered, {} sent",
        q.entered_last_5m, q.sent_last_5m
    );
    let mut today = match q.cap_day_started_at {
        Some(start) => format!(
            "  since the daily reset at {}: {} sent",
            local(start, tz),
            q.sent_today
        ),
        None => format!("  today ({}): {} sent", q.pacing_day, q.sent_today),
    };
    match (q.daily_cap, q.cap_today) {
        (Some(cap), Some(now_cap)) if q.warmup && now_cap < cap => {
            today.push_str(&format!(" of {now_cap} allowed (warm-up; full cap {cap})"));
        }
        (Some(cap), _) => today.push_str(&format!(" of a {cap} cap")),
        _ => today.push_str(", no daily cap"),
    }
    if let Some(reset) = q.cap_resets_at {
        today.push_str(&format!("; next reset at {}", local(reset, tz)));
    }
    let _ = writeln!(out, "{today}");
    out
}
