//! Human-readable output of the commands.

use std::fmt::Write;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use crate::config::format_duration;
use crate::control::StatusReport;
use crate::model::NotificationKind;
use crate::state::State;

fn local(t: Timestamp) -> String {
    t.to_zoned_datetime(TimeZone::system())
        .strftime("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

fn arrow_list(channels: &[String]) -> String {
    if channels.is_empty() {
        "no channels".to_owned()
    } else {
        format!("→ {}", channels.join(", "))
    }
}

/// What `arauto validate` prints on success.
pub(crate) fn validate_summary(state: &State) -> String {
    let config = &state.config;
    let d = &config.daemon;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "configuration {} is valid",
        config.source_path().display()
    );
    let _ = writeln!(
        out,
        "  daemon:   state {}, cache {}, plugins {}",
        d.state_dir.display(),
        d.cache_dir.display(),
        d.plugin_dir.display()
    );
    let _ = writeln!(
        out,
        "            control socket {}, time zone {}, shutdown timeout {}, log level {}",
        d.control_socket.display(),
        d.timezone.iana_name().unwrap_or("UTC"),
        format_duration(d.shutdown_timeout),
        d.log_level
    );
    if let Some(metrics) = d.metrics_listen {
        let _ = writeln!(out, "            metrics on http://{metrics}/metrics");
    }
    if let Some(webhooks) = &d.webhooks {
        let _ = writeln!(
            out,
            "            pushed webhooks on http://{}/hooks/<store>, bodies up to {}, {} a minute per store",
            webhooks.listen, webhooks.max_body_bytes, webhooks.per_store_per_minute
        );
    }
    let _ = writeln!(
        out,
        "  stores:{}",
        if config.stores.is_empty() {
            " none"
        } else {
            ""
        }
    );
    for s in config.stores.values() {
        let _ = writeln!(
            out,
            "    {:<16} {}, every {} {}{}",
            s.id,
            s.platform,
            format_duration(s.poll_interval),
            arrow_list(&s.channels),
            if s.enabled { "" } else { " (disabled)" }
        );
    }
    let _ = writeln!(
        out,
        "  channels:{}",
        if config.channels.is_empty() {
            " none"
        } else {
            ""
        }
    );
    for c in config.channels.values() {
        let _ = writeln!(out, "    {:<16} {}", c.id, c.plugin);
    }
    let (on, off): (Vec<NotificationKind>, Vec<NotificationKind>) = NotificationKind::ALL
        .into_iter()
        .partition(|k| config.notification(*k).enabled);
    let names = |kinds: &[NotificationKind]| {
        kinds
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(out, "  notifications on:  {}", names(&on));
    if !off.is_empty() {
        let _ = writeln!(out, "  notifications off: {}", names(&off));
    }
    out
}

/// What `arauto status` prints.
pub(crate) fn status_text(report: &StatusReport) -> String {
    let mut out = String::new();
    let uptime = format_duration(SignedDuration::from_secs(
        i64::try_from(report.uptime_secs).unwrap_or(i64::MAX),
    ));
    let phase = serde_json::to_value(report.phase)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "arauto {} is {phase} (pid {}, up {uptime})",
        report.version, report.pid
    );
    if report.dry_run {
        let _ = writeln!(out, "  DRY RUN: nothing is sent");
    }
    let _ = writeln!(
        out,
        "  config:   {} (loaded {})",
        report.config_path.display(),
        local(report.config_loaded_at)
    );
    if let Some(reload) = &report.last_reload {
        let verdict = if reload.ok {
            "applied"
        } else {
            "FAILED, previous configuration kept"
        };
        let _ = writeln!(
            out,
            "  reload:   {verdict} at {}: {}",
            local(reload.at),
            reload.message
        );
    }
    let _ = writeln!(
        out,
        "  stores:{}",
        if report.stores.is_empty() {
            " none"
        } else {
            ""
        }
    );
    for s in &report.stores {
        let _ = writeln!(
            out,
            "    {:<16} {}, every {} {}{}",
            s.id,
            s.platform,
            s.poll_interval,
            arrow_list(&s.channels),
            if s.enabled { "" } else { " (disabled)" }
        );
    }
    let _ = writeln!(
        out,
        "  channels:{}",
        if report.channels.is_empty() {
            " none"
        } else {
            ""
        }
    );
    for c in &report.channels {
        let _ = writeln!(out, "    {:<16} {}", c.id, c.plugin);
    }
    let _ = writeln!(out, "  services: {}", report.services.join(", "));
    out
}
