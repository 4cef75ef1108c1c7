//! Crash safety of the state store: a child process enqueues, claims, completes
//! and commits polls under load (group commit), printing each operation only
//! after the call returned; the parent SIGKILLs it at random points, reopens the
//! database and checks that everything acknowledged is there, exactly once, and
//! that nothing is corrupt.
//!
//! The child is this test binary itself, re-executed with `CHILD_DIR_ENV` set,
//! running only the `crash_child` test ([`CHILD_TEST`]). Kill count: `ARAUTO_QUEUE_CRASH_KILLS`
//! (default 30); raise it for longer local runs.

// All test code: with this, clippy's allow-unwrap/expect-in-tests covers the
// helper functions too, not only the #[test] ones (see clippy.toml).
#![cfg(test)]

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use anyhow::{Context, Result, bail, ensure};
use arauto::queue::redb::{RedbOptions, RedbStore};
use arauto::queue::{
    CancelOutcome, Completion, EnqueueOutcome, JobId, JobState, NewJob, PollCommit, Receipt,
    StateStore, StoreStatus,
};
use jiff::{SignedDuration, Timestamp};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The child's test, by its full name in the integration test binary.
const CHILD_TEST: &str = "queue_crash::crash_child";
const CHILD_DIR_ENV: &str = "ARAUTO_QUEUE_CRASH_CHILD_DIR";
const CHILD_RUN_ENV: &str = "ARAUTO_QUEUE_CRASH_CHILD_RUN";
const KILLS_ENV: &str = "ARAUTO_QUEUE_CRASH_KILLS";
const STORE: &str = "loja";
const WORK_LANES: [&str; 2] = ["lane-a", "lane-b"];
/// Poll jobs go to a lane nobody claims, so the next poll can cancel them.
const POLL_LANE: &str = "lane-poll";
const PRODUCERS: usize = 8;

// ----- child -----

/// Not a test of its own: the child process's entry point. Does nothing unless
/// the parent set `CHILD_DIR_ENV`.
#[test]
fn crash_child() -> Result<()> {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return Ok(());
    };
    let run: u32 = std::env::var(CHILD_RUN_ENV)?.parse()?;
    // If the parent dies, our stdin closes: leave instead of running forever.
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        std::process::exit(0);
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(child_workload(PathBuf::from(dir), run))
}

fn ack(line: std::fmt::Arguments<'_>) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(line)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

fn work_job(lane: &str, order_id: String, key: String, due_at: Timestamp) -> NewJob {
    NewJob {
        channel: lane.into(),
        store: STORE.to_owned(),
        order_id,
        kind: arauto::model::NotificationKind::OrderPaid,
        priority: 5,
        due_at,
        expires_at: None,
        max_attempts: 3,
        dedupe_keys: vec![key],
        payload: arauto::job::JobPayload {
            payload_version: arauto::job::JOB_PAYLOAD_VERSION,
            priority: 1,
            status_code: "pedido_pago".into(),
            tracking: None,
            order_number: "x".repeat(200),
            quiet_hours: arauto::job::QuietHoursMode::Defer,
        },
    }
}

async fn child_workload(dir: PathBuf, run: u32) -> Result<()> {
    let store = RedbStore::open(&dir, RedbOptions::default())?;
    ack(format_args!("OPEN {}", store.recovered_at_open()))?;
    let mut tasks = tokio::task::JoinSet::new();
    for producer in 0..PRODUCERS {
        let store = store.clone();
        tasks.spawn(async move {
            let lane = WORK_LANES[producer % WORK_LANES.len()];
            for i in 0u64.. {
                let key = format!("r{run}/p{producer}/{i}");
                let job = work_job(lane, key.clone(), key.clone(), Timestamp::now());
                let id = store.enqueue(vec![job]).await?[0].id();
                ack(format_args!("E {key} {id}"))?;
            }
            anyhow::Ok(())
        });
    }
    for lane in WORK_LANES {
        for _ in 0..2 {
            let store = store.clone();
            tasks.spawn(async move {
                let mut watch = store.watch_channel(lane);
                loop {
                    let claimed = store
                        .claim(lane, Timestamp::now(), 4, SignedDuration::from_mins(5))
                        .await?;
                    if claimed.is_empty() {
                        watch.changed().await;
                        continue;
                    }
                    for job in claimed {
                        let completion = match job.id.as_u128() % 7 {
                            0 => Completion::Dead {
                                reason: "HTTP 400".into(),
                            },
                            1 => Completion::Retry {
                                at: Timestamp::now(),
                                error: "HTTP 503".into(),
                                spend_attempt: true,
                            },
                            2 => Completion::Skipped {
                                reason: "no phone".into(),
                            },
                            _ => Completion::Sent {
                                receipt: Receipt {
                                    provider_message_id: Some(format!("m-{}", job.id)),
                                    recipient_id: None,
                                },
                                at: Timestamp::now(),
                                pacing_day: jiff::civil::date(2025, 3, 14),
                            },
                        };
                        let done = store.complete(job.claim(), completion).await?;
                        ack(format_args!("C {} {}", done.id, done.state))?;
                    }
                }
                #[allow(unreachable_code)]
                anyhow::Ok(())
            });
        }
    }
    {
        let store = store.clone();
        tasks.spawn(async move {
            let mut previous: Option<JobId> = None;
            for i in 1u64.. {
                let order = format!("r{run}-po{i}");
                let key = format!("poll/r{run}/{i}");
                let outcome = store
                    .commit_poll(PollCommit {
                        store: STORE.into(),
                        cursor: Some(format!("r{run}-{i:08}")),
                        order_records: vec![(order.clone(), format!("snapshot {i}").into_bytes())],
                        forget_orders: Vec::new(),
                        jobs: vec![work_job(POLL_LANE, order, key, Timestamp::now())],
                        cancel: previous
                            .map(|id| (id, "superseded".to_owned()))
                            .into_iter()
                            .collect(),
                        status: StoreStatus {
                            events_total: i,
                            ..StoreStatus::default()
                        },
                    })
                    .await?;
                let id = outcome.jobs[0].id();
                let cancelled = match outcome.cancelled.first() {
                    Some((id, CancelOutcome::Cancelled)) => id.to_string(),
                    _ => "-".to_owned(),
                };
                ack(format_args!("P {i} {id} {cancelled}"))?;
                previous = Some(id);
            }
            anyhow::Ok(())
        });
    }
    match tasks.join_next().await {
        Some(result) => result??,
        None => bail!("no tasks"),
    }
    bail!("a child task stopped")
}

// ----- parent -----

#[derive(Default)]
struct Acked {
    /// Dedupe key (= order id) → job id.
    enqueued: HashMap<String, JobId>,
    /// Completions that ended the job, with the state they ended it in.
    finished: HashMap<JobId, JobState>,
    cancelled: HashSet<JobId>,
    /// Per run, the last acknowledged poll number.
    polls: HashMap<u32, u64>,
    poll_jobs: HashMap<(u32, u64), JobId>,
}

struct ChildRun {
    acks: usize,
    stderr: String,
}

fn run_child_until_killed(
    dir: &Path,
    run: u32,
    kill_after: usize,
    acked: &mut Acked,
) -> Result<ChildRun> {
    let mut child = Command::new(std::env::current_exe()?)
        .args([CHILD_TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR_ENV, dir)
        .env(CHILD_RUN_ENV, run.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stderr = child.stderr.take().context("child stderr")?;
    let stderr_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let stdout = child.stdout.take().context("child stdout")?;
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    let mut acks = 0;
    let mut killed = false;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        // A line cut short by the kill was never fully acknowledged.
        let Some(text) = line.strip_suffix('\n') else {
            break;
        };
        if record_ack(text, run, acked)? {
            acks += 1;
        }
        if !killed && acks >= kill_after {
            kill(Pid::from_raw(i32::try_from(child.id())?), Signal::SIGKILL)?;
            killed = true;
        }
    }
    let status = child.wait()?;
    let stderr = stderr_reader.join().unwrap_or_default();
    ensure!(
        killed,
        "child {run} stopped by itself after {acks} acks ({status}):\n{stderr}"
    );
    Ok(ChildRun { acks, stderr })
}

/// Parses one line of the child's output; true if it acknowledged an operation.
fn record_ack(text: &str, run: u32, acked: &mut Acked) -> Result<bool> {
    let fields: Vec<&str> = text.split(' ').collect();
    match fields.as_slice() {
        ["E", key, id] => {
            let id: JobId = id.parse()?;
            if let Some(previous) = acked.enqueued.insert((*key).to_owned(), id) {
                bail!("key {key} acknowledged twice ({previous} and {id})");
            }
        }
        ["C", id, state] => {
            let state: JobState = state.parse()?;
            if state.is_terminal() {
                acked.finished.insert(id.parse()?, state);
            }
        }
        ["P", number, id, cancelled] => {
            let number: u64 = number.parse()?;
            acked.polls.insert(run, number);
            acked.poll_jobs.insert((run, number), id.parse()?);
            if *cancelled != "-" {
                acked.cancelled.insert(cancelled.parse()?);
            }
        }
        _ => return Ok(false),
    }
    Ok(true)
}

async fn check_database(dir: &Path, run: u32, acked: &Acked) -> Result<()> {
    let store = RedbStore::open(dir, RedbOptions::default())?;

    // Every acknowledged enqueue is there exactly once, under its key.
    for (key, id) in &acked.enqueued {
        let jobs = store.jobs_for_order(STORE, key).await?;
        ensure!(
            jobs.len() == 1,
            "run {run}: key {key} has {} jobs",
            jobs.len()
        );
        ensure!(
            jobs[0].id == *id,
            "run {run}: key {key} is job {}, acknowledged as {id}",
            jobs[0].id
        );
        ensure!(jobs[0].dedupe_keys == vec![key.clone()]);
    }
    // And enqueuing them again is a no-op returning the same ids.
    let keys: Vec<(&String, &JobId)> = acked.enqueued.iter().collect();
    let again: Vec<NewJob> = keys
        .iter()
        .map(|(key, _)| {
            work_job(
                WORK_LANES[0],
                (*key).clone(),
                (*key).clone(),
                Timestamp::now(),
            )
        })
        .collect();
    for ((key, id), outcome) in keys.iter().zip(store.enqueue(again).await?) {
        ensure!(
            outcome == EnqueueOutcome::Duplicate(**id),
            "run {run}: re-enqueue of {key} gave {outcome:?}"
        );
    }

    // No acknowledged completion or cancellation came undone.
    for (id, state) in &acked.finished {
        let job = store
            .get(*id)
            .await?
            .with_context(|| format!("run {run}: finished job {id} vanished"))?;
        ensure!(
            job.state == *state,
            "run {run}: job {id} was acknowledged {state} but is {}",
            job.state
        );
    }
    for id in &acked.cancelled {
        let job = store
            .get(*id)
            .await?
            .with_context(|| format!("run {run}: cancelled job {id} vanished"))?;
        ensure!(
            job.state == JobState::Cancelled,
            "run {run}: cancelled job {id} is {}",
            job.state
        );
    }

    // Polls: the cursor, record, job and status of a poll landed together.
    let cursor = store.cursor(STORE).await?;
    let status_total = store
        .store_status(STORE)
        .await?
        .map(|status| status.events_total);
    let committed_this_run = cursor
        .as_deref()
        .and_then(|cursor| cursor.strip_prefix(&format!("r{run}-")))
        .map(str::parse::<u64>)
        .transpose()?;
    if let Some(&last_acked) = acked.polls.get(&run) {
        let committed = committed_this_run.with_context(|| {
            format!("run {run}: acknowledged poll {last_acked} but the cursor is {cursor:?}")
        })?;
        ensure!(
            committed >= last_acked,
            "run {run}: cursor at poll {committed}, poll {last_acked} was acknowledged"
        );
    }
    if let Some(committed) = committed_this_run {
        ensure!(
            status_total == Some(committed),
            "run {run}: cursor at poll {committed} but status says {status_total:?}"
        );
        for i in 1..=committed {
            let order = format!("r{run}-po{i}");
            ensure!(
                store.order_record(STORE, &order).await?.is_some(),
                "run {run}: poll {i} record missing"
            );
            ensure!(
                store.jobs_for_order(STORE, &order).await?.len() == 1,
                "run {run}: poll {i} job missing"
            );
        }
        let next = format!("r{run}-po{}", committed + 1);
        ensure!(
            store.order_record(STORE, &next).await?.is_none(),
            "run {run}: a poll past the cursor left a record"
        );
        ensure!(
            store.jobs_for_order(STORE, &next).await?.is_empty(),
            "run {run}: a poll past the cursor left a job"
        );
    }
    for ((poll_run, i), id) in &acked.poll_jobs {
        let order = format!("r{poll_run}-po{i}");
        ensure!(
            store.order_record(STORE, &order).await?.is_some(),
            "poll {poll_run}/{i} record lost"
        );
        ensure!(
            store.get(*id).await?.is_some(),
            "poll {poll_run}/{i} job lost"
        );
    }

    let report = store.verify().await?;
    ensure!(
        report.problems.is_empty(),
        "run {run}: inconsistent after the crash: {:#?}",
        report.problems
    );
    ensure!(
        report.running == 0,
        "run {run}: running jobs survived the reopening"
    );
    store.close().await;
    Ok(())
}

#[test]
fn acknowledged_work_survives_sigkill_at_random_points() -> Result<()> {
    if std::env::var_os(CHILD_DIR_ENV).is_some() {
        return Ok(());
    }
    let kills: u32 = match std::env::var(KILLS_ENV) {
        Ok(value) => value
            .parse()
            .with_context(|| format!("{KILLS_ENV}={value:?}"))?,
        Err(_) => 30,
    };
    let dir = tempfile::tempdir()?;
    let runtime = Arc::new(
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
    );
    let mut acked = Acked::default();
    let mut total_acks = 0;
    for run in 0..kills {
        // Random kill point: after 1 to 400 acknowledged operations, while the
        // child keeps enqueuing, completing and committing polls concurrently.
        let kill_after = rand::random_range(1..=400);
        let child = run_child_until_killed(dir.path(), run, kill_after, &mut acked)?;
        total_acks += child.acks;
        runtime
            .block_on(check_database(dir.path(), run, &acked))
            .with_context(|| format!("after kill {run} (child stderr:\n{})", child.stderr))?;
    }
    ensure!(
        acked.finished.len() > 10 && acked.polls.len() > 1,
        "the children did too little work to mean anything"
    );
    println!(
        "{kills} kills, {total_acks} acknowledged operations: {} enqueues, {} completions, {} polls checked",
        acked.enqueued.len(),
        acked.finished.len(),
        acked.poll_jobs.len()
    );
    Ok(())
}
