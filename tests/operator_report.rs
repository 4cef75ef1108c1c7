//! `arauto report`: numbers checked against a scripted scenario with known
//! outcomes, through the library and through the CLI on the database, and
//! once from a running daemon that really sent a notification.

// All test code: with this, clippy's allow-unwrap/expect-in-tests covers the
// helper functions too, not only the #[test] ones (see clippy.toml).
#![cfg(test)]

use crate::support;

use std::path::Path;
use std::sync::Arc;

use arauto::report::{Context, ReportQuery, SharedStore, delivery};
use arauto_sim::li::Order;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use support::daemon;
use support::operator::{
    self, End, Setup, enqueue, finish, finish_on, job, open_store, start, world,
};

fn write_config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("arauto.toml");
    let text = format!(
        r#"{}
[stores.loja]
platform = "loja-integrada"
description = "Loja Um"
channels = ["whatsapp", "sms"]

[stores.lojb]
platform = "loja-integrada"
channels = ["sms"]

[channels.whatsapp]
plugin = "evolution-api"
min_interval = "20s"
daily_cap = 50
warmup = {{ start = 10, step = 10 }}

[channels.sms]
plugin = "twilio-sms"
min_interval = "30s"
"#,
        daemon::daemon_section(dir, "")
    );
    std::fs::write(&path, text).expect("write config");
    path
}

/// The script: every outcome on both channels, two stores sharing `sms`.
///
/// | store/channel      | kind          | sent | dead | cancelled | expired | skipped | pending |
/// |--------------------|---------------|------|------|-----------|---------|---------|---------|
/// | loja / whatsapp    | order-paid    | 3    | 1    | 2         |         |         |         |
/// | loja / whatsapp    | order-shipped | 2    |      |           | 1       | 1       |         |
/// | lojb / sms         | order-paid    | 1    |      |           |         |         |         |
/// | lojb / sms         | order-shipped |      |      |           |         |         | 3 (1 later) |
/// | loja / sms         | order-paid    |      |      |           |         |         | 1       |
async fn script(ctx: &Context, store: &arauto::queue::redb::RedbStore) {
    let now = Timestamp::now();
    let whatsapp_day = ctx
        .pacing("whatsapp")
        .expect("whatsapp pacing")
        .day_of(now, &ctx.config.daemon.timezone);
    let mut order = 0;
    let mut next = |store: &str, lane: &str, kind: &str| {
        order += 1;
        job(store, lane, &format!("{}", 1000 + order), kind)
    };
    for end in [
        End::Sent,
        End::Sent,
        End::Sent,
        End::Dead,
        End::Cancelled,
        End::Cancelled,
    ] {
        finish_on(
            store,
            next("loja", "whatsapp", "order-paid"),
            end,
            whatsapp_day,
        )
        .await;
    }
    for end in [End::Sent, End::Sent, End::Expired, End::Skipped] {
        finish_on(
            store,
            next("loja", "whatsapp", "order-shipped"),
            end,
            whatsapp_day,
        )
        .await;
    }
    finish(store, next("lojb", "sms", "order-paid"), End::Sent).await;
    enqueue(store, next("lojb", "sms", "order-shipped")).await;
    enqueue(store, next("lojb", "sms", "order-shipped")).await;
    let mut later = next("lojb", "sms", "order-shipped");
    later.due_at = now + SignedDuration::from_hours(2);
    enqueue(store, later).await;
    enqueue(store, next("loja", "sms", "order-paid")).await;
}

fn tally(
    entered: u64,
    sent: u64,
    failed: u64,
    cancelled: u64,
    expired: u64,
    skipped: u64,
    pending: u64,
) -> Value {
    json!({
        "entered": entered, "sent": sent, "failed": failed, "cancelled": cancelled,
        "expired": expired, "skipped": skipped, "pending": pending, "running": 0
    })
}

fn kinds(section: &Value) -> Vec<(String, Value)> {
    section["by_kind"]
        .as_array()
        .expect("by_kind")
        .iter()
        .map(|k| {
            let mut t = k.clone();
            let kind = t["kind"].as_str().expect("kind").to_owned();
            let obj = t.as_object_mut().expect("object");
            obj.remove("kind");
            obj.remove("label");
            (kind, t)
        })
        .collect()
}

fn section<'a>(report: &'a Value, list: &str, id: &str) -> &'a Value {
    report[list]
        .as_array()
        .expect("list")
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no {list} {id} in {report:#}"))
}

fn assert_scripted_numbers(report: &Value) {
    let loja = section(report, "stores", "loja");
    assert_eq!(loja["description"], "Loja Um");
    assert_eq!(
        kinds(loja),
        vec![
            ("order-paid".to_owned(), tally(7, 3, 1, 2, 0, 0, 1)),
            ("order-shipped".to_owned(), tally(4, 2, 0, 0, 1, 1, 0)),
        ]
    );
    assert_eq!(loja["total"], tally(11, 5, 1, 2, 1, 1, 1));
    let lojb = section(report, "stores", "lojb");
    assert_eq!(
        kinds(lojb),
        vec![
            ("order-paid".to_owned(), tally(1, 1, 0, 0, 0, 0, 0)),
            ("order-shipped".to_owned(), tally(3, 0, 0, 0, 0, 0, 3)),
        ]
    );

    let whatsapp = section(report, "channels", "whatsapp");
    assert_eq!(whatsapp["total"], tally(10, 5, 1, 2, 1, 1, 0));
    let q = &whatsapp["queue"];
    assert_eq!(q["backlog"], 0);
    assert_eq!(q["sent_today"], 5);
    assert_eq!(q["daily_cap"], 50);
    assert_eq!(q["cap_today"], 10, "first warm-up day: start = 10");
    assert_eq!(q["warmup"], true);
    assert_eq!(q["entered_last_5m"], 10);
    assert_eq!(q["sent_last_5m"], 5);
    assert_eq!(q["eta_paced_at"], Value::Null);

    let sms = section(report, "channels", "sms");
    assert_eq!(
        kinds(sms),
        vec![
            ("order-paid".to_owned(), tally(2, 1, 0, 0, 0, 0, 1)),
            ("order-shipped".to_owned(), tally(3, 0, 0, 0, 0, 0, 3)),
        ]
    );
    let q = &sms["queue"];
    assert_eq!(q["backlog"], 4);
    assert_eq!(q["running"], 0);
    assert_eq!(q["min_interval_secs"], 30.0);
    assert_eq!(q["eta_naive_secs"], 120.0, "NI's figure: 4 × 30s");
    // The last send was just now: the first waiting message may go 30s after
    // it, the fourth 90s after that.
    let paced = q["eta_paced_secs"].as_f64().expect("paced ETA");
    assert!((100.0..=120.0).contains(&paced), "{paced}");
    assert_eq!(q["entered_last_5m"], 5);
    assert_eq!(q["sent_last_5m"], 1);
    assert_eq!(q["sent_today"], 1);
    assert_eq!(q["daily_cap"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_numbers_match_a_scripted_scenario() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = write_config(dir.path());
    let config = arauto::config::load_with_env(Some(&config_path), Vec::new()).expect("config");
    let store = open_store(&dir.path().join("state"));
    let shared: SharedStore = Arc::new(store.clone());
    let mut ctx = Context {
        config: Arc::new(config),
        state: None,
        store: Some(shared),
        daemon: None,
        now: Timestamp::now(),
    };
    script(&ctx, &store).await;
    ctx.now = Timestamp::now();

    let report = delivery::run(&ctx, &ReportQuery::default())
        .await
        .expect("report");
    let json = serde_json::to_value(&report).expect("json");
    assert_scripted_numbers(&json);
    assert_eq!(report.since, "24h");
    let today = ctx
        .now
        .to_zoned_datetime(ctx.config.daemon.timezone.clone())
        .date();
    assert_eq!(report.to_day, today);
    assert_eq!(report.from_day, today.yesterday().expect("yesterday"));

    // The window rounds out to whole local days.
    let month = delivery::run(
        &ctx,
        &ReportQuery {
            since: SignedDuration::from_hours(30 * 24),
            ..ReportQuery::default()
        },
    )
    .await
    .expect("report");
    assert_eq!(month.since, "30d");
    assert_eq!(
        month.from_day,
        today.checked_sub(jiff::Span::new().days(30)).expect("date")
    );

    // Filters.
    let only = delivery::run(
        &ctx,
        &ReportQuery {
            store: Some("lojb".into()),
            ..ReportQuery::default()
        },
    )
    .await
    .expect("report");
    assert_eq!(only.stores.len(), 1);
    assert!(only.channels.is_empty());
    assert_eq!(only.stores[0].total.entered, 4);
    let only = delivery::run(
        &ctx,
        &ReportQuery {
            channel: Some("sms".into()),
            ..ReportQuery::default()
        },
    )
    .await
    .expect("report");
    assert!(only.stores.is_empty());
    assert_eq!(only.channels.len(), 1);
    assert_eq!(only.channels[0].total.entered, 5);
    let unknown = delivery::run(
        &ctx,
        &ReportQuery {
            channel: Some("telegram".into()),
            ..ReportQuery::default()
        },
    )
    .await;
    match unknown {
        Err(arauto::report::OpsError::Invalid(message)) => {
            assert!(
                message.contains(r#"unknown channel "telegram" (configured: sms, whatsapp)"#),
                "{message}"
            );
        }
        other => panic!("expected an invalid request, got {other:?}"),
    }

    // The CLI, working on the same database without a daemon, says the same.
    drop(ctx);
    store.close().await;
    let config_arg = config_path.to_str().expect("utf-8").to_owned();
    let run = tokio::task::spawn_blocking(move || {
        (
            operator::arauto(&["report", "--json", "--config", &config_arg]),
            operator::arauto(&["report", "--since", "7d", "--config", &config_arg]),
            operator::arauto(&[
                "report",
                "--store",
                "loja",
                "--channel",
                "sms",
                "--config",
                &config_arg,
            ]),
        )
    })
    .await
    .expect("cli");
    let (json_run, human, both) = run;
    assert_eq!(json_run.code, 0, "{json_run:?}");
    assert_scripted_numbers(&json_run.json());

    assert_eq!(human.code, 0, "{human:?}");
    let out = &human.stdout;
    assert!(
        out.contains("arauto report: last 7d, counted over"),
        "{out}"
    );
    assert!(out.contains("(whole days, America/Sao_Paulo)"), "{out}");
    assert!(
        out.contains("store loja (loja-integrada): Loja Um"),
        "{out}"
    );
    assert!(
        out.contains(
            "  notification   entered  sent  failed  cancelled  expired  skipped  pending  sending"
        ),
        "{out}"
    );
    let row = |section: &str, kind: &str| -> Vec<String> {
        let start = out
            .find(section)
            .unwrap_or_else(|| panic!("no {section} in {out}"));
        out[start..]
            .lines()
            .find(|l| l.trim_start().starts_with(kind))
            .unwrap_or_else(|| panic!("no {kind} row under {section}:\n{out}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        row("store loja", "order-paid"),
        ["order-paid", "7", "3", "1", "2", "0", "0", "1", "0"]
    );
    assert_eq!(
        row("store loja", "total"),
        ["total", "11", "5", "1", "2", "1", "1", "1", "0"]
    );
    assert_eq!(
        row("channel sms", "order-shipped"),
        ["order-shipped", "3", "0", "0", "0", "0", "0", "3", "0"]
    );
    assert!(
        out.contains("  queue: 4 waiting, 0 being sent; oldest due for"),
        "{out}"
    );
    assert!(
        out.contains("  time to drain: 2m (4 × 30s interval); with the daily cap and warm-up: "),
        "{out}"
    );
    assert!(out.contains("  last 5 minutes: 5 entered, 1 sent"), "{out}");
    assert!(
        out.contains("of 10 allowed (warm-up; full cap 50)"),
        "{out}"
    );

    assert_eq!(
        both.code, 2,
        "--store and --channel exclude each other: {both:?}"
    );
}

#[test]
fn a_running_daemon_reports_what_it_sent() {
    let world = world();
    let daemon = start(
        &world,
        &Setup {
            poll_interval: "1s",
            ..Setup::default()
        },
    );
    daemon.stderr.wait_for("poll complete");
    world.store.create_order(Order::new());
    daemon.stderr.wait_for("notification sent");
    daemon.stderr.wait_for("job completed");

    let run = operator::arauto(&[
        "report",
        "--json",
        "--socket",
        daemon.socket.to_str().expect("utf-8"),
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let report = run.json();
    let loja = section(&report, "stores", "loja");
    assert_eq!(
        kinds(loja),
        vec![("waiting-payment".to_owned(), tally(1, 1, 0, 0, 0, 0, 0))]
    );
    let whatsapp = section(&report, "channels", "whatsapp");
    assert_eq!(whatsapp["total"], tally(1, 1, 0, 0, 0, 0, 0));
    let q = &whatsapp["queue"];
    assert_eq!(q["entered_last_5m"], 1);
    assert_eq!(q["sent_last_5m"], 1);
    assert_eq!(q["sent_today"], 1);
    assert_eq!(q["backlog"], 0);
    assert_eq!(q["min_interval_secs"], 20.0, "Evolution's default interval");
    assert!(q["last_sent_at"].is_string(), "{q:#}");
    assert_eq!(world.whatsapp.received().len(), 1);
}

/// Daily counters are kept per local date of `daemon.timezone`. A reload that
/// moves the zone from UTC−12 to UTC+14 (26 hours apart: never the same date)
/// must count what is sent afterwards on the new zone's date, or a report for
/// the last hour (today only, in the new zone) would miss it.
#[test]
fn after_a_reload_that_moves_the_time_zone_todays_report_counts_in_the_new_zone() {
    let world = world();
    let west = Setup {
        poll_interval: "1s",
        daemon_extra: "timezone = \"Etc/GMT+12\"",
        ..Setup::default()
    };
    let daemon = start(&world, &west);
    daemon.stderr.wait_for("poll complete");

    let east = Setup {
        daemon_extra: "timezone = \"Etc/GMT-14\"",
        ..west
    };
    std::fs::write(
        &daemon.config_path,
        operator::config_text(daemon.dir.path(), &world, &east),
    )
    .expect("rewrite config");
    let mark = daemon.stderr.len();
    daemon.signal(nix::sys::signal::Signal::SIGHUP);
    daemon.stderr.wait_for_from(mark, "reload applied");

    world.store.create_order(Order::new());
    daemon.stderr.wait_for_from(mark, "job completed");

    let run = operator::arauto(&[
        "report",
        "--json",
        "--since",
        "1h",
        "--socket",
        daemon.socket.to_str().expect("utf-8"),
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let report = run.json();
    assert_eq!(report["time_zone"], "Etc/GMT-14", "{report:#}");
    let loja = section(&report, "stores", "loja");
    assert_eq!(
        kinds(loja),
        vec![("waiting-payment".to_owned(), tally(1, 1, 0, 0, 0, 0, 0))],
        "{report:#}"
    );
}

/// The connector gave up on two orders of `loja` (quarantined) and retries a
/// third: `report` lists the quarantined ones with their reasons, since their
/// customers may not be notified; the retrying one is not listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_lists_the_orders_a_store_quarantined() {
    use arauto::queue::{StateStore, StoreStatus, UnreadableOrder};

    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = write_config(dir.path());
    let store = open_store(&dir.path().join("state"));
    let since: Timestamp = "2026-03-01T15:00:00Z".parse().expect("time");
    let unreadable = |reason: &str, attempts: u32, quarantined: bool| UnreadableOrder {
        reason: reason.to_owned(),
        attempts,
        quarantined,
        since,
        last_at: since,
    };
    let mut status = StoreStatus::default();
    status.unreadable_orders.insert(
        "1055".into(),
        unreadable("order detail over the 8 MiB response cap", 5, true),
    );
    status
        .unreadable_orders
        .insert("1056".into(), unreadable("malformed JSON", 5, true));
    status
        .unreadable_orders
        .insert("1057".into(), unreadable("malformed JSON", 1, false));
    store
        .put_store_status("loja", status)
        .await
        .expect("seed the status");
    store.close().await;

    let config_arg = config_path.to_str().expect("utf-8").to_owned();
    let (human, json) = tokio::task::spawn_blocking(move || {
        (
            operator::arauto(&["report", "--store", "loja", "--config", &config_arg]),
            operator::arauto(&[
                "report",
                "--store",
                "loja",
                "--json",
                "--config",
                &config_arg,
            ]),
        )
    })
    .await
    .expect("cli");
    assert_eq!(human.code, 0, "{human:?}");
    let out = &human.stdout;
    assert!(
        out.contains(
            "  2 orders quarantined (unreadable; their customers may not be notified until the order changes):\n    order 1055: order detail over the 8 MiB response cap (5 attempts, since 2026-03-01 12:00)\n    order 1056: malformed JSON (5 attempts, since 2026-03-01 12:00)\n"
        ),
        "{out}"
    );
    assert!(
        !out.contains("1057"),
        "a retrying order is not quarantined: {out}"
    );
    let report = json.json();
    let loja = section(&report, "stores", "loja");
    assert_eq!(loja["quarantined"][0]["order"], "1055");
    assert_eq!(loja["quarantined"].as_array().map(Vec::len), Some(2));
}
