//! A state database written by `ddb5715` (schema 1: the queue called a
//! channel a "lane", and job payloads were `{"v":1,"facts":{...}}` JSON) opens
//! with this arauto and keeps its queue: pending jobs are claimable on their
//! channel, history, counters and channel status are still there, and a job
//! whose notification cannot be read stays visible instead of vanishing:
//! the daemon's sweep logs it, its dispatcher dead-letters it when it comes
//! due, and `arauto queue list` shows it meanwhile.

// All test code: with this, clippy's allow-unwrap/expect-in-tests covers the
// helper functions too, not only the #[test] ones (see clippy.toml).
#![cfg(test)]

use crate::support;

use anyhow::{Context, Result, ensure};
use arauto::clock::ManualClock;
use arauto::model::NotificationKind;
use arauto::queue::redb::{FILE_NAME, RedbOptions, RedbStore};
use arauto::queue::{CounterQuery, JobBody, JobFilter, JobId, JobState, Outcome, StateStore};
use jiff::{SignedDuration, Timestamp};
use redb::{Database, ReadableTable, TableDefinition};
use serde_json::{Value, json};
use support::{daemon, operator};

// Schema 1's tables, as `ddb5715`'s src/queue/redb/tables.rs defined them.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const JOBS: TableDefinition<u128, &[u8]> = TableDefinition::new("jobs");
const DUE: TableDefinition<(&str, u64, u128), (u8, u64)> = TableDefinition::new("due");
const RUNNING: TableDefinition<(u64, u128), ()> = TableDefinition::new("running");
const FINISHED: TableDefinition<(u64, u128), u8> = TableDefinition::new("finished");
const FINISHED_BY_LANE: TableDefinition<(&str, u64, u128), u8> =
    TableDefinition::new("finished_by_lane");
const DEDUPE: TableDefinition<&str, u128> = TableDefinition::new("dedupe");
const ORDER_JOBS: TableDefinition<(&str, &str, u128), ()> = TableDefinition::new("order_jobs");
const LANE_COUNTS: TableDefinition<&str, (u64, u64)> = TableDefinition::new("lane_counts");
const CURSORS: TableDefinition<&str, &str> = TableDefinition::new("cursors");
const ORDER_RECORDS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("order_records");
const STORE_STATUS: TableDefinition<&str, &[u8]> = TableDefinition::new("store_status");
const CHANNEL_STATUS: TableDefinition<&str, &[u8]> = TableDefinition::new("channel_status");
const COUNTERS: TableDefinition<(&str, &str, &str, &str, &str), u64> =
    TableDefinition::new("counters");

/// Schema 1's record codec: format tag 1, then JSON.
fn record(value: &Value) -> Result<Vec<u8>> {
    let mut out = vec![1u8];
    serde_json::to_writer(&mut out, value)?;
    Ok(out)
}

fn ms(at: Timestamp) -> u64 {
    u64::try_from(at.as_millisecond()).unwrap_or(0)
}

/// A job record as `ddb5715` serialised `queue::Job` with the payload of
/// `send::job::new_job`.
fn old_job(job: &OldJob, at: Timestamp) -> Value {
    let OldJob {
        id,
        lane,
        order,
        kind,
        state,
        ..
    } = *job;
    let finished = state != "pending";
    let due_at = at + SignedDuration::from_secs(job.due_in_secs);
    let payload = job.payload.clone().unwrap_or_else(|| {
        json!({
            "v": 1,
            "facts": {"kind": kind, "priority": 4, "status_code": "pedido_enviado",
                      "tracking": {"shipment_id": "1", "code": "QB1BR"}},
            "order_number": format!("#{order}"),
            "quiet_hours": "defer"
        })
    });
    json!({
        "id": id,
        "lane": lane,
        "store": "loja",
        "order_id": order,
        "kind": kind,
        "priority": 1,
        "state": state,
        "created_at": at,
        "due_at": due_at,
        "expires_at": due_at + SignedDuration::from_hours(24),
        "attempt": u32::from(finished),
        "max_attempts": 5,
        "claims": u32::from(finished),
        "lease_until": null,
        "last_error": null,
        "attempts_log": [],
        "finished_at": if finished { json!(at) } else { Value::Null },
        "outcome_reason": null,
        "receipt": if finished { json!({"provider_message_id": "wamid.1", "recipient_id": "5511999999999"}) } else { Value::Null },
        "dedupe_keys": [format!("loja/{order}/{kind}/{lane}")],
        "payload": payload
    })
}

struct OldJob<'a> {
    id: JobId,
    lane: &'a str,
    order: &'a str,
    kind: &'a str,
    state: &'a str,
    /// Due this many seconds after the database was written.
    due_in_secs: i64,
    /// A payload other than the one `ddb5715` wrote.
    payload: Option<Value>,
}

impl<'a> OldJob<'a> {
    fn new(id: JobId, lane: &'a str, order: &'a str, kind: &'a str, state: &'a str) -> Self {
        Self {
            id,
            lane,
            order,
            kind,
            state,
            due_in_secs: 0,
            payload: None,
        }
    }
}

/// Writes a schema-1 database with `jobs`, their indexes, counters and a
/// channel status, as `ddb5715` would have left it.
fn write_schema_1(path: &std::path::Path, at: Timestamp, jobs: &[OldJob]) -> Result<()> {
    let db = Database::create(path)?;
    let txn = db.begin_write()?;
    {
        txn.open_table(META)?.insert("schema_version", 1)?;
        let mut table = txn.open_table(JOBS)?;
        let mut due = txn.open_table(DUE)?;
        let mut finished = txn.open_table(FINISHED)?;
        let mut finished_by_lane = txn.open_table(FINISHED_BY_LANE)?;
        let mut dedupe = txn.open_table(DEDUPE)?;
        let mut order_jobs = txn.open_table(ORDER_JOBS)?;
        let mut lane_counts = txn.open_table(LANE_COUNTS)?;
        let mut counters = txn.open_table(COUNTERS)?;
        let day = at
            .to_zoned_datetime(jiff::tz::TimeZone::UTC)
            .date()
            .to_string();
        for job in jobs {
            let raw = job.id.as_u128();
            let value = old_job(job, at);
            let due_ms = ms(at + SignedDuration::from_secs(job.due_in_secs));
            table.insert(raw, record(&value)?.as_slice())?;
            let key = format!("loja/{}/{}/{}", job.order, job.kind, job.lane);
            dedupe.insert(key.as_str(), raw)?;
            order_jobs.insert(("loja", job.order, raw), ())?;
            let entered = counters
                .get((day.as_str(), "loja", job.lane, job.kind, "entered"))?
                .map_or(0, |guard| guard.value());
            counters.insert(
                (day.as_str(), "loja", job.lane, job.kind, "entered"),
                entered + 1,
            )?;
            let (pending, running) = lane_counts
                .get(job.lane)?
                .map_or((0, 0), |guard| guard.value());
            if job.state == "pending" {
                let expires = due_ms + 24 * 3_600_000;
                due.insert((job.lane, due_ms, raw), (1, expires))?;
                lane_counts.insert(job.lane, (pending + 1, running))?;
            } else {
                finished.insert((ms(at), raw), 2)?;
                finished_by_lane.insert((job.lane, ms(at), raw), 2)?;
                counters.insert((day.as_str(), "loja", job.lane, job.kind, "sent"), 1)?;
                lane_counts.insert(job.lane, (pending, running))?;
            }
        }
        // Tables schema 1 created empty.
        txn.open_table(RUNNING)?;
        txn.open_table(CURSORS)?.insert("loja", "cursor-1")?;
        txn.open_table(ORDER_RECORDS)?;
        txn.open_table(STORE_STATUS)?;
        let status = json!({"pacing_day": day, "sent_today": 1, "last_sent_at": at});
        txn.open_table(CHANNEL_STATUS)?
            .insert("whatsapp", record(&status)?.as_slice())?;
    }
    txn.commit()?;
    Ok(())
}

#[tokio::test]
async fn a_schema_1_database_keeps_its_queue() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let at: Timestamp = "2025-03-14T12:00:00Z".parse()?;
    let id = |n: u128| JobId::from_u128(JobId::lower_bound_at(at).as_u128() + n);
    let jobs = [
        OldJob::new(id(1), "whatsapp", "1001", "order-shipped", "sent"),
        OldJob::new(id(2), "whatsapp", "1002", "order-shipped", "pending"),
        OldJob::new(id(3), "sms", "1003", "order-paid", "pending"),
        // Written by some newer arauto: a kind this one does not know.
        OldJob::new(id(4), "sms", "1004", "order-teleported", "pending"),
    ];
    write_schema_1(&dir.path().join(FILE_NAME), at, &jobs)?;

    let later = at + SignedDuration::from_mins(1);
    let options = || RedbOptions {
        clock: std::sync::Arc::new(ManualClock::new(later)),
        time_zone: jiff::tz::TimeZone::UTC,
        ..RedbOptions::default()
    };
    let store = RedbStore::open(dir.path(), options())?;
    let report = store.verify().await?;
    ensure!(report.problems.is_empty(), "{:?}", report.problems);
    ensure!(report.jobs == 4 && report.pending == 3, "{report:?}");
    drop(store);

    // Opening again is a no-op: the file is on the new schema now.
    let store = RedbStore::open(dir.path(), options())?;
    ensure!(store.verify().await?.problems.is_empty());

    let mut channels = store.channels().await?;
    channels.sort();
    ensure!(channels == ["sms", "whatsapp"], "{channels:?}");
    ensure!(store.channel_stats("whatsapp").await?.pending == 1);
    ensure!(store.channel_stats("sms").await?.pending == 2);
    ensure!(store.cursor("loja").await?.as_deref() == Some("cursor-1"));
    ensure!(store.channel_status("whatsapp").await?.sent_today == 1);

    // History: the sent job, its receipt, and the recent-activity index.
    let sent = store.get(id(1)).await?.context("the sent job")?;
    ensure!(sent.state == JobState::Sent && sent.channel == "whatsapp");
    ensure!(sent.receipt.is_some());
    let recent = store
        .recent("whatsapp", at - SignedDuration::from_mins(5))
        .await?;
    ensure!(recent.iter().any(|f| f.id == id(1)), "{recent:?}");
    let day = at
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date()
        .to_string();
    let rows = store
        .counters(CounterQuery {
            from_day: day.clone(),
            to_day: day,
            channel: Some("whatsapp".into()),
            ..CounterQuery::default()
        })
        .await?;
    ensure!(
        rows.iter()
            .any(|r| r.outcome == Outcome::Sent && r.count == 1 && r.channel == "whatsapp"),
        "{rows:?}"
    );

    // Pending jobs are claimable on their channel, with their payload typed.
    let lease = SignedDuration::from_mins(5);
    let claimed = store.claim("whatsapp", later, 10, lease).await?;
    ensure!(claimed.len() == 1 && claimed[0].id == id(2), "{claimed:?}");
    match &claimed[0].body {
        JobBody::Readable { kind, payload } => {
            ensure!(*kind == NotificationKind::OrderShipped);
            ensure!(payload.priority == 4 && payload.order_number == "#1002");
            ensure!(payload.tracking.as_ref().is_some_and(|t| t.code == "QB1BR"));
        }
        JobBody::Unreadable { unreadable, .. } => anyhow::bail!("unreadable: {unreadable}"),
    }
    let sms = store.claim("sms", later, 10, lease).await?;
    ensure!(sms.len() == 2, "{sms:?}");

    // The job of an unknown kind is there, marked, with its reason.
    let odd = store
        .list(JobFilter {
            order_id: Some("1004".into()),
            ..JobFilter::default()
        })
        .await?;
    ensure!(odd.len() == 1);
    match &odd[0].body {
        JobBody::Unreadable {
            kind, unreadable, ..
        } => {
            ensure!(kind == "order-teleported");
            ensure!(unreadable.contains("order-teleported"), "{unreadable}");
        }
        JobBody::Readable { .. } => anyhow::bail!("an unknown kind was read"),
    }
    Ok(())
}

/// One damaged job record (not even JSON) does not keep a schema-1 database
/// from opening: the upgrade leaves that record as it was and converts the
/// rest.
#[tokio::test]
async fn a_damaged_record_does_not_stop_the_upgrade() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join(FILE_NAME);
    let at: Timestamp = "2025-03-14T12:00:00Z".parse()?;
    let id = |n: u128| JobId::from_u128(JobId::lower_bound_at(at).as_u128() + n);
    let jobs = [OldJob::new(
        id(1),
        "whatsapp",
        "1001",
        "order-shipped",
        "pending",
    )];
    write_schema_1(&file, at, &jobs)?;
    {
        let db = Database::open(&file)?;
        let txn = db.begin_write()?;
        txn.open_table(JOBS)?
            .insert(id(2).as_u128(), [1_u8, b'{', b'x'].as_slice())?;
        txn.commit()?;
    }

    let options = RedbOptions {
        clock: std::sync::Arc::new(ManualClock::new(at + SignedDuration::from_mins(1))),
        time_zone: jiff::tz::TimeZone::UTC,
        ..RedbOptions::default()
    };
    let store = RedbStore::open(dir.path(), options)?;
    let job = store.get(id(1)).await?.context("the good job")?;
    ensure!(job.channel == "whatsapp" && job.state == JobState::Pending);
    ensure!(job.payload().is_ok(), "{job:?}");
    ensure!(
        store.get(id(2)).await.is_err(),
        "the damaged record reads as corrupt"
    );
    Ok(())
}

/// A running daemon meets two pending jobs it cannot read (an unknown kind
/// due now, a broken payload due in an hour) of an order its store polls: the
/// sweep logs the one it must leave out of its decision, the dispatcher
/// dead-letters the due one with the reason, and `arauto queue list` shows
/// the other marked unreadable.
#[test]
fn a_running_daemon_keeps_unreadable_jobs_visible() -> Result<()> {
    let world = operator::world();
    let order = world
        .store
        .create_order(arauto_sim::li::Order::new())
        .to_string();
    let dir = tempfile::tempdir()?;
    let config_path = dir.path().join("arauto.toml");
    std::fs::write(
        &config_path,
        operator::config_text(dir.path(), &world, &operator::Setup::default()),
    )?;
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state)?;
    let at = Timestamp::now();
    let due_now = JobId::lower_bound_at(at);
    let later = JobId::from_u128(due_now.as_u128() + 1);
    let mut broken = OldJob::new(later, "whatsapp", &order, "order-paid", "pending");
    broken.due_in_secs = 3600;
    broken.payload = Some(json!({"v": 1, "facts": "not what arauto wrote"}));
    let jobs = [
        OldJob::new(due_now, "whatsapp", &order, "order-teleported", "pending"),
        broken,
    ];
    write_schema_1(&state.join(FILE_NAME), at, &jobs)?;

    support::plugins::first_party_plugins();
    let mut daemon = daemon::Daemon::spawn(dir, config_path, &[], &[]);
    daemon.await_notice("READY=1");
    let dead = daemon.stderr.wait_for("unreadable job record");
    ensure!(dead.contains(&due_now.to_string()), "{dead}");
    // Only the sweep speaks of the job due later.
    let left_out = daemon.stderr.wait_for(&format!("job_id={later}"));
    ensure!(
        left_out.contains("its record is unreadable") && left_out.contains(&order),
        "{left_out}"
    );
    let socket = daemon.socket.display().to_string();
    let list = operator::arauto(&["queue", "list", "--state", "pending", "--socket", &socket]);
    ensure!(list.code == 0, "{list:?}");
    ensure!(
        list.stdout.contains(&later.to_string()) && list.stdout.contains("unreadable job record"),
        "{}",
        list.stdout
    );
    daemon.kill();

    let store = operator::open_store(&state_path(&daemon));
    let runtime = tokio::runtime::Runtime::new()?;
    let (first, second) = runtime
        .block_on(async { anyhow::Ok((store.get(due_now).await?, store.get(later).await?)) })?;
    let first = first.context("the due job")?;
    ensure!(first.state == JobState::Dead, "{first:?}");
    ensure!(
        first
            .outcome_reason
            .as_deref()
            .is_some_and(|r| r.starts_with("unreadable job record: ")),
        "{first:?}"
    );
    let second = second.context("the later job")?;
    ensure!(second.state == JobState::Pending, "{second:?}");
    ensure!(
        matches!(second.body, JobBody::Unreadable { .. }),
        "{second:?}"
    );
    Ok(())
}

fn state_path(daemon: &daemon::Daemon) -> std::path::PathBuf {
    daemon.dir.path().join("state")
}
