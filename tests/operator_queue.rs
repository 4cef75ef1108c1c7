//! `arauto queue …` working directly on the state database (no daemon): a
//! database seeded with jobs in every state through the real queue engine,
//! then every subcommand through the real binary, human and JSON output,
//! exit statuses and errors for unknown ids and channels; and a long list
//! through a running daemon's control socket.

// All test code: with this, clippy's allow-unwrap/expect-in-tests covers the
// helper functions too, not only the #[test] ones (see clippy.toml).
#![cfg(test)]

use crate::support;

use std::path::{Path, PathBuf};

use arauto::queue::StateStore;
use jiff::{SignedDuration, Timestamp};
use support::daemon;
use support::operator::{self, End, Run, enqueue, finish, job, open_store};

fn write_config(dir: &Path) -> PathBuf {
    let path = dir.join("arauto.toml");
    let text = format!(
        r#"{}
[stores.loja]
platform = "loja-integrada"
channels = ["whatsapp", "sms"]

[channels.whatsapp]
plugin = "evolution-api"

[channels.sms]
plugin = "twilio-sms"
"#,
        daemon::daemon_section(dir, "")
    );
    std::fs::write(&path, text).expect("write config");
    path
}

struct Seeded {
    sent: String,
    dead: String,
    expired: String,
    cancelled: String,
    later: String,
    sms: String,
}

fn seed(state_dir: &Path) -> Seeded {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let store = open_store(state_dir);
        let sent = finish(
            &store,
            job("loja", "whatsapp", "1001", "order-paid"),
            End::Sent,
        )
        .await;
        let dead = finish(
            &store,
            job("loja", "whatsapp", "1002", "order-shipped"),
            End::Dead,
        )
        .await;
        let expired = finish(
            &store,
            job("loja", "whatsapp", "1003", "order-paid"),
            End::Expired,
        )
        .await;
        let cancelled = finish(
            &store,
            job("loja", "whatsapp", "1004", "order-paid"),
            End::Cancelled,
        )
        .await;
        let mut later_job = job("loja", "whatsapp", "1005", "waiting-payment");
        later_job.due_at = Timestamp::now() + SignedDuration::from_hours(1);
        let later = enqueue(&store, later_job).await;
        let sms = enqueue(&store, job("loja", "sms", "1006", "order-shipped")).await;
        store.close().await;
        Seeded {
            sent: sent.to_string(),
            dead: dead.to_string(),
            expired: expired.to_string(),
            cancelled: cancelled.to_string(),
            later: later.to_string(),
            sms: sms.to_string(),
        }
    })
}

/// `arauto queue <args> --config <config>`.
fn queue(config: &Path, args: &[&str]) -> Run {
    let config = config.to_str().expect("utf-8 path");
    let mut all = vec!["queue"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--config", config]);
    operator::arauto(&all)
}

fn ids(run: &Run) -> Vec<String> {
    run.json()["jobs"]
        .as_array()
        .expect("jobs array")
        .iter()
        .map(|j| j["id"].as_str().expect("id").to_owned())
        .collect()
}

#[test]
fn queue_commands_work_on_the_database_when_no_daemon_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path());

    // No database yet: a clear error, not an empty list (and nothing created).
    let run = queue(&config, &["list"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("no state database") && run.stderr.contains("arauto.redb"),
        "{}",
        run.stderr
    );
    assert!(!dir.path().join("state/arauto.redb").exists());

    let s = seed(&dir.path().join("state"));

    // list: everything, newest first; filters by state, channel, order.
    let run = queue(&config, &["list", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let all = ids(&run);
    assert_eq!(all.len(), 6, "{}", run.stdout);
    assert_eq!(run.json()["truncated"], false);

    let run = queue(&config, &["list", "--state", "failed", "--json"]);
    assert_eq!(ids(&run), vec![s.dead.clone()], "`failed` means dead");
    let run = queue(&config, &["list", "--channel", "sms", "--json"]);
    assert_eq!(ids(&run), vec![s.sms.clone()]);
    let run = queue(
        &config,
        &["list", "--store", "loja", "--order", "1005", "--json"],
    );
    assert_eq!(ids(&run), vec![s.later.clone()]);
    let run = queue(
        &config,
        &["list", "--state", "pending", "--limit", "1", "--json"],
    );
    assert_eq!(ids(&run).len(), 1);
    assert_eq!(run.json()["truncated"], true);

    let run = queue(&config, &["list"]);
    assert_eq!(run.code, 0, "{run:?}");
    let dead_row = run
        .stdout
        .lines()
        .find(|l| l.starts_with(&s.dead))
        .unwrap_or_else(|| panic!("no row for the dead job:\n{}", run.stdout));
    for expected in [
        "dead",
        "loja",
        "#1002",
        "order-shipped",
        "whatsapp",
        "1/3",
        "recipient is not on WhatsApp",
    ] {
        assert!(
            dead_row.contains(expected),
            "{expected:?} missing in {dead_row:?}"
        );
    }
    assert!(run.stdout.contains("6 jobs"), "{}", run.stdout);

    // Unknown names are usage errors that say what exists.
    let run = queue(&config, &["list", "--channel", "telegram"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains(r#"unknown channel "telegram" (configured: sms, whatsapp)"#),
        "{}",
        run.stderr
    );
    let run = queue(&config, &["list", "--store", "outra"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains(r#"unknown store "outra""#),
        "{}",
        run.stderr
    );

    // show: the whole job.
    let run = queue(&config, &["show", &s.dead]);
    assert_eq!(run.code, 0, "{run:?}");
    for expected in [
        "state         dead",
        "order         #1002 (platform id 1002)",
        "attempts      1 of 3",
        "outcome       recipient is not on WhatsApp",
        "payload:",
        "\"order_number\": \"#1002\"",
    ] {
        assert!(
            run.stdout.contains(expected),
            "{expected:?} missing in\n{}",
            run.stdout
        );
    }
    let run = queue(&config, &["show", &s.sent, "--json"]);
    let shown = run.json();
    assert_eq!(shown["state"], "sent");
    assert_eq!(
        shown["receipt"]["provider_message_id"],
        format!("wamid.{}", s.sent)
    );
    let run = queue(&config, &["show", "01jbz3k5q8c9m2w4x6y7z8a9bc"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("no job 01jbz3k5q8c9m2w4x6y7z8a9bc"),
        "{}",
        run.stderr
    );
    let run = queue(&config, &["show", "not-an-id"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("is not a job id"), "{}", run.stderr);

    // cancel: the pending one goes, the sent one is reported and left alone.
    let run = queue(
        &config,
        &["cancel", &s.later, &s.sent, "--reason", "cliente pediu"],
    );
    assert_eq!(
        run.code, 1,
        "one of the two could not be cancelled: {run:?}"
    );
    assert!(
        run.stdout.contains(&format!("{}  cancelled", s.later)),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains(&format!("{}  not cancelled: it is sent", s.sent)),
        "{}",
        run.stdout
    );
    let shown = queue(&config, &["show", &s.later, "--json"]).json();
    assert_eq!(shown["state"], "cancelled");
    assert_eq!(shown["outcome_reason"], "cliente pediu");
    let mut cancelled = ids(&queue(&config, &["list", "--state", "cancelled", "--json"]));
    cancelled.sort();
    let mut expected = vec![s.cancelled.clone(), s.later.clone()];
    expected.sort();
    assert_eq!(cancelled, expected);

    // retry one id, then every expired job of a channel.
    let run = queue(&config, &["retry", &s.dead]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("back on the queue, due now"),
        "{}",
        run.stdout
    );
    let shown = queue(&config, &["show", &s.dead, "--json"]).json();
    assert_eq!(shown["state"], "pending");
    assert_eq!(shown["attempt"], 0);
    let run = queue(&config, &["retry", &s.sms]);
    assert_eq!(run.code, 1, "a pending job cannot be retried: {run:?}");
    assert!(
        run.stdout.contains("not requeued: it is pending"),
        "{}",
        run.stdout
    );
    let run = queue(&config, &["retry", "--dead"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("0 jobs back on the queue"),
        "{}",
        run.stdout
    );
    let run = queue(
        &config,
        &["retry", "--expired", "--channel", "whatsapp", "--json"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json(), serde_json::json!([s.expired]));
    let run = queue(&config, &["retry"]);
    assert_eq!(run.code, 2, "nothing said what to retry: {run:?}");

    // pause / resume, idempotent and named.
    let run = queue(
        &config,
        &["pause", "whatsapp", "--reason", "troca de número"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains("channel whatsapp paused: troca de número"),
        "{}",
        run.stdout
    );
    let run = queue(&config, &["pause", "whatsapp", "--json"]);
    let change = run.json();
    assert_eq!(change["changed"], false);
    assert_eq!(change["status"]["paused"]["reason"], "troca de número");
    assert_eq!(change["status"]["paused"]["automatic"], false);
    let run = queue(&config, &["resume", "whatsapp"]);
    assert!(run.stdout.contains("channel whatsapp resumed"), "{run:?}");
    let run = queue(&config, &["resume", "whatsapp"]);
    assert!(
        run.stdout.contains("channel whatsapp was not paused"),
        "{run:?}"
    );
    let run = queue(&config, &["pause", "telegram"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("unknown channel \"telegram\""),
        "{}",
        run.stderr
    );

    // purge: a dry run counts, the real one deletes, states are required.
    let run = queue(
        &config,
        &[
            "purge",
            "--sent",
            "--cancelled",
            "--older-than",
            "0s",
            "--dry-run",
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    // The sent job, the one cancelled while seeding and the one cancelled above.
    assert!(
        run.stdout
            .starts_with("would delete 3 jobs (sent, cancelled)"),
        "{}",
        run.stdout
    );
    let run = queue(&config, &["purge", "--sent", "--older-than", "30d"]);
    assert!(run.stdout.starts_with("deleted 0 jobs (sent)"), "{run:?}");
    let run = queue(
        &config,
        &[
            "purge",
            "--sent",
            "--cancelled",
            "--older-than",
            "0s",
            "--json",
        ],
    );
    assert_eq!(run.json()["count"], 3, "{run:?}");
    let mut left = ids(&queue(&config, &["list", "--json"]));
    left.sort();
    let mut expected = vec![s.dead.clone(), s.expired.clone(), s.sms.clone()];
    expected.sort();
    assert_eq!(left, expected, "sent and cancelled jobs purged");
    let run = queue(&config, &["purge", "--older-than", "30d"]);
    assert_eq!(run.code, 2, "{run:?}");
}

#[test]
fn a_database_held_by_another_process_is_not_mistaken_for_no_daemon() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path());
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let store = runtime.block_on(async {
        let store = open_store(&dir.path().join("state"));
        store.channels().await.expect("read");
        store
    });
    let run = queue(&config, &["list"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("does not answer on its control socket"),
        "{}",
        run.stderr
    );
    drop(store);
}

#[test]
fn a_queue_list_of_several_mebibytes_comes_through_the_daemon() {
    const JOBS: usize = 10_000;
    let world = operator::world();
    let dir = tempfile::tempdir().expect("tempdir");
    // Due in an hour, so that the running daemon leaves them alone.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let store = open_store(&dir.path().join("state"));
        let due = Timestamp::now() + SignedDuration::from_hours(1);
        let jobs = (0..JOBS)
            .map(|n| {
                let mut pending = job("loja", "whatsapp", &(900_000 + n).to_string(), "order-paid");
                pending.due_at = due;
                pending
            })
            .collect();
        store.enqueue(jobs).await.expect("enqueue");
        store.close().await;
    });
    let config_path = dir.path().join("arauto.toml");
    std::fs::write(
        &config_path,
        operator::config_text(dir.path(), &world, &operator::Setup::default()),
    )
    .expect("write config");
    support::plugins::first_party_plugins();
    let mut daemon = daemon::Daemon::spawn(dir, config_path, &[], &[]);
    daemon.await_notice("READY=1");

    let run = operator::arauto(&[
        "queue",
        "list",
        "--limit",
        "20000",
        "--json",
        "--socket",
        daemon.socket.to_str().expect("utf-8"),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let list = run.json();
    let jobs = list["jobs"].as_array().expect("jobs array");
    assert!(jobs.len() >= JOBS, "{} jobs listed", jobs.len());
    let compact = serde_json::to_vec(&list).expect("encode").len();
    assert!(
        compact > 2 * 1024 * 1024,
        "the answer should be well over the old 1 MiB line cap: {compact} bytes"
    );
}
