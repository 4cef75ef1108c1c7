//! `arauto state export` / `arauto state import` through the real binary: a
//! redb state seeded through the real queue engine (jobs in every finished
//! state and pending ones, a poll commit with cursor, order record and
//! store status, a paused channel) goes to a file and into a new redb, and
//! `queue list`, `report` and dedupe behave the same there; a truncated or
//! damaged file, a non-empty target and a state directory a daemon holds
//! are refused with messages naming the cause.

// All test code: with this, clippy's allow-unwrap/expect-in-tests covers the
// helper functions too, not only the #[test] ones (see clippy.toml).
#![cfg(test)]

use crate::support;

use std::path::{Path, PathBuf};

use arauto::queue::{EnqueueOutcome, PollCommit, StateStore, StoreStatus};
use jiff::{SignedDuration, Timestamp};
use support::daemon;
use support::operator::{self, End, Run, enqueue, finish, job, open_store};

/// A configuration whose state lives in `dir/state`.
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

/// Ids of the seeded jobs whose dedupe behaviour the test checks.
struct Seeded {
    sent: String,
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
        for (order, end) in [
            ("1002", End::Dead),
            ("1003", End::Expired),
            ("1004", End::Cancelled),
            ("1007", End::Skipped),
        ] {
            finish(&store, job("loja", "whatsapp", order, "order-paid"), end).await;
        }
        let mut later = job("loja", "whatsapp", "1005", "waiting-payment");
        later.due_at = Timestamp::now() + SignedDuration::from_hours(1);
        enqueue(&store, later).await;
        enqueue(&store, job("loja", "sms", "1006", "order-shipped")).await;
        store
            .commit_poll(PollCommit {
                store: "loja".to_owned(),
                cursor: Some("cursor-42".to_owned()),
                order_records: vec![("1001".to_owned(), br#"{"v":1}"#.to_vec())],
                status: StoreStatus {
                    orders_seen: 7,
                    last_poll_ok_at: Some(Timestamp::now()),
                    ..StoreStatus::default()
                },
                ..PollCommit::default()
            })
            .await
            .expect("commit a poll");
        store
            .pause_channel("sms", "operator pause".to_owned(), false)
            .await
            .expect("pause sms");
        store.close().await;
        Seeded {
            sent: sent.to_string(),
        }
    })
}

/// `arauto <args> --config <config>`.
fn cli(config: &Path, args: &[&str]) -> Run {
    let mut all = args.to_vec();
    all.extend_from_slice(&["--config", config.to_str().expect("utf-8 path")]);
    operator::arauto(&all)
}

/// The report without what depends on the moment it is made (its time,
/// the paced ETA's instant and the seconds until it: within the pacing
/// interval of the last send, two reports a moment apart differ there).
fn report(config: &Path) -> serde_json::Value {
    fn strip(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                map.remove("generated_at");
                map.remove("eta_paced_at");
                map.remove("eta_paced_secs");
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let run = cli(config, &["report", "--since", "7d", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let mut report = run.json();
    strip(&mut report);
    report
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

#[test]
fn a_redb_state_moves_through_a_file_into_a_new_redb_unchanged() {
    let source_dir = tempfile::tempdir().expect("tempdir");
    let source = write_config(source_dir.path());
    let seeded = seed(&source_dir.path().join("state"));
    let file = source_dir.path().join("state.jsonl");

    let run = cli(&source, &["state", "export", "--output", path_str(&file)]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("exported 7 jobs")
            && run.stdout.contains("1 cursors")
            && run.stdout.contains("1 order records")
            && run.stdout.contains("1 store statuses"),
        "{}",
        run.stdout
    );
    // Written whole, then renamed: no temporary file stays behind.
    let leftovers: Vec<_> = std::fs::read_dir(source_dir.path())
        .expect("read dir")
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let target_dir = tempfile::tempdir().expect("tempdir");
    let target = write_config(target_dir.path());
    let run = cli(&target, &["state", "import", "--input", path_str(&file)]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("imported 7 jobs") && run.stdout.contains("from a redb export"),
        "{}",
        run.stdout
    );

    // The queue lists the same jobs, with the same fields.
    let list = |config: &Path| {
        let run = cli(config, &["queue", "list", "--json"]);
        assert_eq!(run.code, 0, "{run:?}");
        run.json()
    };
    let listed = list(&source);
    assert_eq!(listed["jobs"].as_array().map(Vec::len), Some(7));
    assert_eq!(list(&target), listed);
    // The report reads the same counters, queue and channel states.
    assert_eq!(report(&target), report(&source));

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let store = open_store(&target_dir.path().join("state"));
        let report = store.verify().await.expect("verify");
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        // Dedupe: a sent notification is still held by its job; a cancelled
        // one was never sent and may be planned again.
        let again = store
            .enqueue(vec![job("loja", "whatsapp", "1001", "order-paid")])
            .await
            .expect("enqueue");
        assert_eq!(again[0].id().to_string(), seeded.sent);
        assert!(matches!(again[0], EnqueueOutcome::Duplicate(_)));
        let replanned = store
            .enqueue(vec![job("loja", "whatsapp", "1004", "order-paid")])
            .await
            .expect("enqueue");
        assert!(replanned[0].is_inserted(), "{replanned:?}");
        // New ids continue after the imported ones.
        let newest = listed["jobs"]
            .as_array()
            .expect("jobs")
            .iter()
            .filter_map(|job| job["id"].as_str())
            .max()
            .expect("an id")
            .to_owned();
        assert!(replanned[0].id().to_string() > newest);
        // Poll and channel state came along.
        assert_eq!(
            store.cursor("loja").await.expect("cursor").as_deref(),
            Some("cursor-42")
        );
        assert_eq!(
            store
                .order_record("loja", "1001")
                .await
                .expect("order record"),
            Some(br#"{"v":1}"#.to_vec())
        );
        let status = store.store_status("loja").await.expect("status");
        assert_eq!(status.map(|s| s.orders_seen), Some(7));
        let sms = store.channel_status("sms").await.expect("channel status");
        assert_eq!(
            sms.paused.map(|pause| pause.reason).as_deref(),
            Some("operator pause")
        );
        let whatsapp = store
            .channel_status("whatsapp")
            .await
            .expect("channel status");
        assert_eq!(whatsapp.sent_today, 1);
        store.close().await;
    });
}

#[test]
fn damaged_files_non_empty_targets_and_a_held_state_are_refused() {
    let source_dir = tempfile::tempdir().expect("tempdir");
    let source = write_config(source_dir.path());
    seed(&source_dir.path().join("state"));
    let file = source_dir.path().join("state.jsonl");

    // A daemon holding the state directory: no export beside it.
    {
        let _held = arauto::daemon::InstanceLock::acquire(&source_dir.path().join("state"))
            .expect("lock the state directory");
        let run = cli(&source, &["state", "export", "--output", path_str(&file)]);
        assert_eq!(run.code, 1, "{run:?}");
        assert!(
            run.stderr.contains("is using state directory") && run.stderr.contains("stop it first"),
            "{}",
            run.stderr
        );
        assert!(!file.exists());
    }
    let run = cli(&source, &["state", "export", "--output", path_str(&file)]);
    assert_eq!(run.code, 0, "{run:?}");
    // An existing output is not overwritten.
    let run = cli(&source, &["state", "export", "--output", path_str(&file)]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("already exists"), "{}", run.stderr);

    let text = std::fs::read_to_string(&file).expect("read the export");
    let lines: Vec<&str> = text.lines().collect();
    let target_dir = tempfile::tempdir().expect("tempdir");
    let target = write_config(target_dir.path());
    let database = target_dir.path().join("state/arauto.redb");

    // Cut before the trailer: refused as a whole, nothing written.
    let truncated = target_dir.path().join("truncated.jsonl");
    std::fs::write(&truncated, lines[..lines.len() - 1].join("\n") + "\n").expect("write");
    let run = cli(
        &target,
        &["state", "import", "--input", path_str(&truncated)],
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("truncated.jsonl") && run.stderr.contains("truncated"),
        "{}",
        run.stderr
    );
    assert!(!database.exists(), "nothing may be written");

    // A damaged record: its file and line.
    let damaged = target_dir.path().join("damaged.jsonl");
    let mut broken = lines.clone();
    broken[2] = r#"{"type":"cursor","store":"loja"}"#;
    std::fs::write(&damaged, broken.join("\n") + "\n").expect("write");
    let run = cli(&target, &["state", "import", "--input", path_str(&damaged)]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains("damaged.jsonl:3: unreadable cursor record"),
        "{}",
        run.stderr
    );
    assert!(!database.exists(), "nothing may be written");

    // Into an empty target once; a second time only with --merge, which
    // keeps everything the target already has.
    let run = cli(&target, &["state", "import", "--input", path_str(&file)]);
    assert_eq!(run.code, 0, "{run:?}");
    let run = cli(&target, &["state", "import", "--input", path_str(&file)]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("already holds a state") && run.stderr.contains("--merge"),
        "{}",
        run.stderr
    );
    let run = cli(
        &target,
        &["state", "import", "--input", path_str(&file), "--merge"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("imported 0 jobs")
            && run.stdout.contains("kept as the target had them: 7 jobs"),
        "{}",
        run.stdout
    );
    let run = cli(&target, &["queue", "list", "--json"]);
    assert_eq!(run.json()["jobs"].as_array().map(Vec::len), Some(7));
}
