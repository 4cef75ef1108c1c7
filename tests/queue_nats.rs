//! The NATS JetStream backend of the state store against a real
//! `nats-server -js` (single node, random port, its own storage directory),
//! through the public trait: the semantics the redb backend's tests check,
//! wake-ups across nodes (a second `NatsStore` on the same server is another
//! node), fencing, and the crash safety of a poll commit at every step
//! boundary.

// All test code: with this, clippy's allow-unwrap/expect-in-tests covers the
// helper functions too (see clippy.toml).
#![cfg(test)]

use crate::support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail, ensure};
use arauto::clock::ManualClock;
use arauto::queue::nats::{FallbackStep, Freshness, NatsOptions, NatsStore, PollStep, ViewScope};
use arauto::queue::portable::{Portable, Record};
use arauto::queue::redb::{RedbOptions, RedbStore};
use arauto::queue::{
    CancelOutcome, Completion, CounterQuery, EnqueueOutcome, Error, Fence, Job, JobFilter, JobId,
    JobState, NewJob, Outcome, PollCommit, Receipt, Scope, StateStore, StoreStatus, Unfenced,
};
use futures::TryStreamExt;
use jiff::{SignedDuration, Timestamp};

const LEASE: SignedDuration = SignedDuration::from_secs(60);

/// A `nats-server -js` of this test, killed when dropped.
struct Server {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts the server and returns once it logged that it is ready.
    fn start() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let binary = support::nats::nats_server_binary();
        let mut child = Command::new(&binary)
            .args(["-js", "-a", "127.0.0.1", "-p", "-1", "-sd"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let stderr = child.stderr.take().context("no stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let mut url = None;
        for line in lines.by_ref() {
            let line = line?;
            if let Some(address) = line.split("Listening for client connections on ").nth(1) {
                url = Some(format!("nats://{}", address.trim()));
            }
            if line.contains("Server is ready") {
                break;
            }
        }
        // Keep draining its log so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let url = url.context("nats-server never said where it listens")?;
        Ok(Self {
            child,
            url,
            _dir: dir,
        })
    }

    /// A new node: its own connection and its own `NatsStore`.
    async fn node(&self, fence: Arc<dyn Fence>) -> Result<NatsStore> {
        self.node_with_prefix(fence, "test").await
    }

    /// A node of another arauto cluster sharing the server (its own buckets).
    async fn node_with_prefix(&self, fence: Arc<dyn Fence>, prefix: &str) -> Result<NatsStore> {
        let client = async_nats::connect(&self.url).await?;
        let js = async_nats::jetstream::new(client);
        let options = NatsOptions {
            prefix: prefix.to_owned(),
            replicas: 1,
        };
        Ok(NatsStore::open(js, options, fence).await?)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Fixture {
    server: Server,
    clock: ManualClock,
    store: NatsStore,
}

impl Fixture {
    async fn new() -> Result<Self> {
        let server = Server::start()?;
        let store = server.node(Arc::new(Unfenced)).await?;
        let clock = ManualClock::new("2025-03-14T12:00:00Z".parse()?);
        store.set_clock(Arc::new(clock.clone()));
        store.set_time_zone(jiff::tz::TimeZone::get("America/Sao_Paulo")?);
        Ok(Self {
            server,
            clock,
            store,
        })
    }

    fn now(&self) -> Timestamp {
        arauto::clock::Clock::now(&self.clock)
    }

    fn at(&self, seconds: i64) -> Timestamp {
        self.now() + SignedDuration::from_secs(seconds)
    }

    async fn enqueue_one(&self, job: NewJob) -> Result<JobId> {
        let outcome = self.store.enqueue(vec![job]).await?;
        match outcome.as_slice() {
            [EnqueueOutcome::Inserted(id)] => Ok(*id),
            other => bail!("expected one insert, got {other:?}"),
        }
    }

    async fn job(&self, id: JobId) -> Result<Job> {
        self.store
            .get(id)
            .await?
            .with_context(|| format!("job {id} is gone"))
    }

    async fn claim_one(&self, lane: &str, now: Timestamp) -> Result<Job> {
        let mut claimed = self.store.claim(lane, now, 1, LEASE).await?;
        ensure!(
            claimed.len() == 1,
            "expected one job claimed on {lane}, got {claimed:?}"
        );
        Ok(claimed.remove(0))
    }
}

fn new_job(lane: &str, order: &str, kind: &str, due_at: Timestamp) -> NewJob {
    NewJob {
        channel: lane.into(),
        store: "loja".to_owned(),
        order_id: order.to_owned(),
        kind: kind.parse().expect("a notification kind"),
        priority: 5,
        due_at,
        expires_at: None,
        max_attempts: 3,
        dedupe_keys: vec![format!("loja/{order}/{kind}/{lane}")],
        payload: arauto::job::JobPayload {
            payload_version: arauto::job::JOB_PAYLOAD_VERSION,
            priority: 1,
            status_code: "pedido_pago".into(),
            tracking: None,
            order_number: order.to_owned(),
            quiet_hours: arauto::job::QuietHoursMode::Defer,
        },
    }
}

fn sent(at: Timestamp, day: &str) -> Completion {
    Completion::Sent {
        receipt: Receipt {
            provider_message_id: Some("wamid.1".to_owned()),
            recipient_id: Some("5511999999999".to_owned()),
        },
        at,
        pacing_day: day.parse().expect("a test date"),
    }
}

fn retry(at: Timestamp) -> Completion {
    Completion::Retry {
        at,
        error: "provider said 500".to_owned(),
        spend_attempt: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn due_jobs_come_out_by_priority_then_due_time() -> Result<()> {
    let f = Fixture::new().await?;
    let mut late_urgent = new_job("wa", "1", "order-paid", f.at(-10));
    late_urgent.priority = 0;
    let early = new_job("wa", "2", "order-paid", f.at(-60));
    let later = new_job("wa", "3", "order-paid", f.at(-30));
    let future = new_job("wa", "4", "order-paid", f.at(600));
    let urgent = f.enqueue_one(late_urgent).await?;
    let early = f.enqueue_one(early).await?;
    let later = f.enqueue_one(later).await?;
    f.enqueue_one(future).await?;

    let claimed = f.store.claim("wa", f.now(), 10, LEASE).await?;
    let ids: Vec<JobId> = claimed.iter().map(|job| job.id).collect();
    assert_eq!(ids, vec![urgent, early, later]);
    for job in &claimed {
        assert_eq!(
            (job.state, job.attempt, job.claims),
            (JobState::Running, 1, 1)
        );
        assert_eq!(job.lease_until, Some(f.now() + LEASE));
    }
    assert!(f.store.claim("wa", f.now(), 10, LEASE).await?.is_empty());
    let stats = f.store.channel_stats("wa").await?;
    assert_eq!((stats.pending, stats.running), (1, 3));
    assert_eq!(f.store.next_due("wa").await?, Some(f.at(600)));
    Ok(())
}

/// What a node answers `arauto status` elsewhere with
/// (`NatsStore::channel_counts`): each channel's counts, including a job
/// another node wrote just before, from a view that is current. A jobs
/// stream whose last message is gone (a delete marker removed by
/// retention), which a node opened afterwards never sees, leaves the view
/// current, not behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_counts_include_a_job_written_elsewhere_just_before() -> Result<()> {
    let f = Fixture::new().await?;
    f.enqueue_one(new_job("wa", "1", "order-paid", f.at(600)))
        .await?;
    let js = async_nats::jetstream::new(async_nats::connect(&f.server.url).await?);
    let revision = js
        .get_key_value("test_jobs")
        .await?
        .put("wa.loja.removed", "{}".into())
        .await?;
    // As `retention.rs` removes a delete marker: a purge up to it.
    js.get_stream("KV_test_jobs")
        .await?
        .purge()
        .filter("$KV.test_jobs.wa.loja.removed")
        .sequence(revision + 1)
        .await?;
    let node = f.server.node(Arc::new(Unfenced)).await?;
    let within = std::time::Duration::from_secs(1);
    let counts = node.channel_counts(within).await;
    assert_eq!(counts.jobs_view, Freshness::Current);
    let wa = counts.channels.get("wa").context("no counts for wa")?;
    assert_eq!((wa.pending, wa.running), (1, 0));

    f.enqueue_one(new_job("wa", "2", "order-paid", f.at(600)))
        .await?;
    f.claim_one("wa", f.at(600)).await?;
    let counts = node.channel_counts(within).await;
    assert_eq!(counts.jobs_view, Freshness::Current);
    let wa = counts.channels.get("wa").context("no counts for wa")?;
    assert_eq!((wa.pending, wa.running), (1, 1));
    Ok(())
}

/// A node that takes a channel over makes the jobs its previous holder
/// left running due at once, not after their lease; the old holder's late
/// completion is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_taken_over_makes_the_jobs_left_running_due_at_once() -> Result<()> {
    let f = Fixture::new().await?;
    let id = f
        .enqueue_one(new_job("wa", "1", "order-paid", f.now()))
        .await?;
    let left_running = f.claim_one("wa", f.now()).await?;
    assert!(f.store.claim("wa", f.at(1), 1, LEASE).await?.is_empty());

    let taker = f.server.node(Arc::new(Unfenced)).await?;
    taker.set_clock(Arc::new(f.clock.clone()));
    assert_eq!(taker.take_over_channel("wa", f.at(1)).await?, 1);
    let mut claimed = taker.claim("wa", f.at(1), 1, LEASE).await?;
    let second = claimed
        .pop()
        .context("the job left running was not due again")?;
    assert_eq!((second.id, second.attempt, second.claims), (id, 2, 2));

    let late = f
        .store
        .complete(left_running.claim(), sent(f.now(), "2025-03-14"))
        .await;
    assert!(matches!(late, Err(Error::StaleClaim { .. })), "{late:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_makes_the_job_due_again_and_refuses_the_late_completion() -> Result<()> {
    let f = Fixture::new().await?;
    let id = f
        .enqueue_one(new_job("wa", "1", "order-paid", f.now()))
        .await?;
    let first = f.claim_one("wa", f.now()).await?;
    // Before the lease ends, nothing is due.
    assert!(f.store.claim("wa", f.at(59), 1, LEASE).await?.is_empty());
    // After it, the job is claimed again, on its second attempt.
    let second = f.claim_one("wa", f.at(61)).await?;
    assert_eq!((second.id, second.attempt, second.claims), (id, 2, 2));

    let late = f
        .store
        .complete(first.claim(), sent(f.now(), "2025-03-14"))
        .await;
    assert!(
        matches!(
            late,
            Err(Error::StaleClaim {
                presented: 1,
                current: 2,
                ..
            })
        ),
        "{late:?}"
    );
    let done = f
        .store
        .complete(second.claim(), sent(f.at(62), "2025-03-14"))
        .await?;
    assert_eq!(done.state, JobState::Sent);
    let again = f
        .store
        .complete(second.claim(), sent(f.at(63), "2025-03-14"))
        .await;
    assert!(
        matches!(
            again,
            Err(Error::NotRunning {
                state: JobState::Sent,
                ..
            })
        ),
        "{again:?}"
    );
    let status = f.store.channel_status("wa").await?;
    assert_eq!(status.sent_today, 1);
    assert_eq!(status.pacing_day, Some("2025-03-14".parse()?));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_spend_attempts_until_the_job_is_dead() -> Result<()> {
    let f = Fixture::new().await?;
    let id = f
        .enqueue_one(new_job("wa", "1", "order-paid", f.now()))
        .await?;
    for attempt in 1..=3 {
        let job = f.claim_one("wa", f.at(attempt * 100)).await?;
        assert_eq!(job.attempt, u32::try_from(attempt)?);
        f.store
            .complete(job.claim(), retry(f.at(attempt * 100 + 1)))
            .await?;
    }
    let dead = f.job(id).await?;
    assert_eq!(dead.state, JobState::Dead);
    assert!(
        dead.outcome_reason
            .as_deref()
            .is_some_and(|reason| reason.contains("gave up after 3")),
        "{dead:?}"
    );
    assert!(
        f.store
            .claim("wa", f.at(10_000), 1, LEASE)
            .await?
            .is_empty()
    );

    // An operator requeues it: pending again, attempts reset.
    let requeued = f.store.requeue_dead(Default::default()).await?;
    assert_eq!(requeued, vec![id]);
    let job = f.claim_one("wa", f.at(10_000)).await?;
    assert_eq!((job.id, job.attempt), (id, 1));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_dedupe_key_returns_the_holder_and_a_cancel_frees_it() -> Result<()> {
    let f = Fixture::new().await?;
    let mut first = new_job("wa", "1", "order-paid", f.at(60));
    first.dedupe_keys = vec!["paid/1".into(), "fingerprint/a.b c".into()];
    let first_id = f.enqueue_one(first).await?;

    let mut second = new_job("sms", "1", "order-paid", f.at(60));
    second.dedupe_keys = vec!["other/1".into(), "fingerprint/a.b c".into()];
    assert_eq!(
        f.store.enqueue(vec![second.clone()]).await?,
        vec![EnqueueOutcome::Duplicate(first_id)]
    );

    let cancelled = f
        .store
        .cancel(vec![first_id], "the order was cancelled".into())
        .await?;
    assert_eq!(cancelled, vec![(first_id, CancelOutcome::Cancelled)]);
    // Cancelling again reports, changes nothing.
    assert_eq!(
        f.store.cancel(vec![first_id], "again".into()).await?,
        vec![(first_id, CancelOutcome::NotPending(JobState::Cancelled))]
    );
    // The keys are free: the same notification can be planned again.
    let again = f.enqueue_one(second).await?;
    assert_ne!(again, first_id);
    assert_eq!(f.job(again).await?.channel.as_str(), "sms");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_commit_with_a_job_of_another_store_writes_nothing() -> Result<()> {
    let f = Fixture::new().await?;
    let mut foreign = new_job("wa", "2", "order-paid", f.now());
    foreign.store = "other".to_owned();
    let commit = PollCommit {
        store: "loja".to_owned(),
        cursor: Some("c1".to_owned()),
        order_records: vec![("1".to_owned(), b"rec".to_vec())],
        jobs: vec![new_job("wa", "1", "order-paid", f.now()), foreign],
        status: StoreStatus::default(),
        ..PollCommit::default()
    };
    let refused = f.store.commit_poll(commit).await;
    assert!(
        matches!(&refused, Err(Error::Invalid { reason, .. }) if reason.contains("\"other\"")),
        "{refused:?}"
    );
    assert_eq!(f.store.cursor("loja").await?, None);
    assert_eq!(f.store.order_record("loja", "1").await?, None);
    assert!(f.store.list(Default::default()).await?.is_empty());
    assert!(f.store.store_status("loja").await?.is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_count_entered_sent_and_dead_per_local_day() -> Result<()> {
    let f = Fixture::new().await?;
    f.enqueue_one(new_job("wa", "1", "order-paid", f.now()))
        .await?;
    let mut once = new_job("wa", "2", "order-paid", f.now());
    once.max_attempts = 1;
    f.enqueue_one(once).await?;
    let claimed = f.store.claim("wa", f.now(), 2, LEASE).await?;
    ensure!(claimed.len() == 2, "{claimed:?}");
    f.store
        .complete(claimed[0].claim(), sent(f.now(), "2025-03-14"))
        .await?;
    f.store.complete(claimed[1].claim(), retry(f.at(5))).await?;

    let rows = f
        .store
        .counters(CounterQuery {
            from_day: "2025-03-14".into(),
            to_day: "2025-03-14".into(),
            ..CounterQuery::default()
        })
        .await?;
    let count = |outcome: Outcome| {
        rows.iter()
            .filter(|row| row.outcome == outcome)
            .map(|row| row.count)
            .sum::<u64>()
    };
    assert_eq!(count(Outcome::Entered), 2, "{rows:?}");
    assert_eq!(count(Outcome::Sent), 1, "{rows:?}");
    assert_eq!(count(Outcome::Dead), 1, "{rows:?}");
    assert!(
        rows.iter()
            .all(|row| row.store == "loja" && row.channel == "wa")
    );

    // Another node sees the same counters and recent activity.
    let other = f.server.node(Arc::new(Unfenced)).await?;
    let seen = other
        .counters(CounterQuery {
            from_day: "2025-03-14".into(),
            to_day: "2025-03-14".into(),
            ..CounterQuery::default()
        })
        .await?;
    assert_eq!(seen, rows);
    assert_eq!(other.recent("wa", f.at(-1)).await?.len(), 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_fire_for_changes_made_by_another_node() -> Result<()> {
    let f = Fixture::new().await?;
    let other = f.server.node(Arc::new(Unfenced)).await?;
    let mut channel_watch = f.store.watch_channel("wa");
    let mut store_watch = f.store.watch_store("loja");

    other
        .enqueue(vec![new_job("wa", "1", "order-paid", f.now())])
        .await?;
    assert!(channel_watch.changed().await);
    assert_eq!(f.store.channel_stats("wa").await?.pending, 1);

    other.pause_channel("wa", "operator".into(), false).await?;
    assert!(f.store.claim("wa", f.now(), 1, LEASE).await?.is_empty());
    other.resume_channel("wa").await?;
    assert!(channel_watch.changed().await);
    assert_eq!(f.store.claim("wa", f.now(), 1, LEASE).await?.len(), 1);

    other
        .update_store_status(
            "loja",
            Box::new(|status: &mut StoreStatus| {
                status.paused = Some(arauto::queue::Pause {
                    reason: "token refused".into(),
                    at: "2025-03-14T12:00:00Z".parse().expect("a time"),
                    automatic: true,
                });
            }),
        )
        .await?;
    other.resume_store("loja").await?;
    assert!(store_watch.changed().await);
    assert_eq!(
        f.store.store_status("loja").await?.map(|s| s.paused),
        Some(None)
    );
    Ok(())
}

/// Every consumer of `stream` is deleted on the server, as happens to a
/// node's watch when the server holding it dies or restarts (its consumers
/// are in memory): the node must notice and follow again from where it was.
async fn delete_consumers(url: &str, stream: &str) -> Result<usize> {
    let js = async_nats::jetstream::new(async_nats::connect(url).await?);
    let stream = js.get_stream(stream).await?;
    let names: Vec<String> = stream.consumer_names().try_collect().await?;
    for name in &names {
        stream.delete_consumer(name).await?;
    }
    Ok(names.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_whose_consumers_are_gone_follows_again_from_where_it_was() -> Result<()> {
    let f = Fixture::new().await?;
    let other = f.server.node(Arc::new(Unfenced)).await?;
    let mut channel_watch = f.store.watch_channel("wa");
    other
        .enqueue(vec![new_job("wa", "1", "order-paid", f.now())])
        .await?;
    assert!(channel_watch.changed().await);
    assert_eq!(f.store.channel_stats("wa").await?.pending, 1);

    // Both nodes' jobs watches are gone; the other node writes on.
    ensure!(delete_consumers(&f.server.url, "KV_test_jobs").await? >= 2);
    other
        .enqueue(vec![new_job("wa", "2", "order-paid", f.now())])
        .await?;
    // The new job reaches this node's view (its follower notices the
    // missing delivery and re-opens after the last revision it applied).
    assert!(channel_watch.changed().await);
    assert_eq!(f.store.channel_stats("wa").await?.pending, 2);
    // Re-opened after the last revision, not replayed: nothing twice.
    assert_eq!(f.store.list(JobFilter::default()).await?.len(), 2);
    let jobs = f
        .store
        .view_freshness()
        .into_iter()
        .find(|(what, _)| what == "bucket test_jobs")
        .context("the jobs view is listed")?;
    ensure!(jobs.1.is_current(), "the jobs view is {}", jobs.1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_sees_its_own_writes_without_waiting_for_its_watch() -> Result<()> {
    let f = Fixture::new().await?;
    // This node's watch is gone: only its own writes can put the job in
    // its view before the follower re-opens.
    ensure!(delete_consumers(&f.server.url, "KV_test_jobs").await? >= 1);
    f.store
        .enqueue(vec![new_job("wa", "1", "order-paid", f.now())])
        .await?;
    let claimed = f.store.claim("wa", f.now(), 1, LEASE).await?;
    assert_eq!(claimed.len(), 1);
    Ok(())
}

/// A fence an assertion can take away.
struct Switch(AtomicBool);

impl Fence for Switch {
    fn holds(&self, _scope: Scope<'_>) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_lost_its_lease_cannot_commit_or_claim_but_records_what_it_sent() -> Result<()>
{
    let f = Fixture::new().await?;
    let fence = Arc::new(Switch(AtomicBool::new(true)));
    let node = f.server.node(fence.clone()).await?;
    node.enqueue(vec![
        new_job("wa", "1", "order-paid", f.now()),
        new_job("wa", "3", "order-paid", f.now()),
    ])
    .await?;
    let job = node.claim("wa", f.now(), 1, LEASE).await?.remove(0);
    let unsent = node.claim("wa", f.now(), 1, LEASE).await?.remove(0);

    fence.0.store(false, Ordering::SeqCst);
    let commit = PollCommit {
        store: "loja".to_owned(),
        cursor: Some("c1".to_owned()),
        jobs: vec![new_job("wa", "2", "order-paid", f.now())],
        ..PollCommit::default()
    };
    let refused = node.commit_poll(commit).await;
    assert!(
        matches!(&refused, Err(Error::Fenced { scope }) if scope == "store loja"),
        "{refused:?}"
    );
    assert_eq!(node.cursor("loja").await?, None);
    assert_eq!(f.store.jobs_for_order("loja", "2").await?.len(), 0);
    // The send happened before the lease went (a hand-over, a short
    // loss): its record is kept, or the channel's next owner would send
    // it again. The claim number still refuses a stale claim.
    node.complete(job.claim(), sent(f.now(), "2025-03-14"))
        .await?;
    assert_eq!(f.job(job.id).await?.state, JobState::Sent);
    // A send the fence refused gives its claim back, attempt included, so
    // the next owner sends it at once (review #8).
    node.complete(
        unsent.claim(),
        Completion::Retry {
            at: f.now(),
            error: "not sent: this node no longer held the lease of channel wa".into(),
            spend_attempt: false,
        },
    )
    .await?;
    let given_back = f.job(unsent.id).await?;
    assert_eq!(given_back.state, JobState::Pending);
    assert_eq!(given_back.attempt, 0, "{given_back:?}");
    let refused = node.claim("wa", f.now(), 1, LEASE).await;
    assert!(matches!(&refused, Err(Error::Fenced { .. })), "{refused:?}");
    let refused = node.put_store_status("loja", StoreStatus::default()).await;
    assert!(matches!(&refused, Err(Error::Fenced { .. })), "{refused:?}");
    // Operator writes are not fenced.
    node.pause_channel("wa", "operator".into(), false).await?;
    Ok(())
}

/// Review #16: operator commands bind only. A prefix no daemon opened is an
/// error naming it, and creates nothing; the state a daemon opened binds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binding_an_unknown_prefix_fails_naming_it_and_creates_nothing() -> Result<()> {
    let f = Fixture::new().await?;
    let js = async_nats::jetstream::new(async_nats::connect(&f.server.url).await?);
    let options = |prefix: &str| NatsOptions {
        prefix: prefix.to_owned(),
        replicas: 1,
    };
    let refused = NatsStore::bind(js.clone(), options("tset"), Arc::new(Unfenced)).await;
    let Err(error) = refused else {
        bail!("bound a cluster state nobody created")
    };
    let text = error.to_string();
    ensure!(
        text.contains("\"tset\"") && text.contains("cluster.prefix"),
        "{text}"
    );
    ensure!(
        js.get_stream("KV_tset_jobs").await.is_err(),
        "binding created a bucket"
    );
    let bound = NatsStore::bind(js, options("test"), Arc::new(Unfenced)).await?;
    let outcomes = bound
        .enqueue(vec![new_job("wa", "1", "order-paid", f.now())])
        .await?;
    let Some(EnqueueOutcome::Inserted(id)) = outcomes.first() else {
        bail!("not inserted: {outcomes:?}")
    };
    // Read from the bucket (not the daemon node's view, which follows
    // another node's writes with no moment to await): the same state.
    assert_eq!(f.job(*id).await?.order_id, "1");
    Ok(())
}

/// A fence that says yes a given number of times, then no: a lease lost in
/// the middle of a multi-write operation.
struct Countdown(std::sync::atomic::AtomicUsize);

impl Fence for Countdown {
    fn holds(&self, _scope: Scope<'_>) -> bool {
        self.0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            })
            .is_ok()
    }
}

/// Review #2: the fence is asked before every write of a poll commit, not
/// once: a lease lost after the first job stops the commit there, before
/// the other jobs, the order records, the status and the cursor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_lost_in_the_middle_of_a_poll_commit_stops_its_writes() -> Result<()> {
    let f = Fixture::new().await?;
    // Yes for the commit's first check and its first job, no after that.
    let node = f
        .server
        .node(Arc::new(Countdown(std::sync::atomic::AtomicUsize::new(2))))
        .await?;
    let commit = PollCommit {
        store: "loja".to_owned(),
        cursor: Some("c1".to_owned()),
        order_records: vec![("1".to_owned(), b"record 1".to_vec())],
        jobs: vec![
            new_job("wa", "1", "order-paid", f.now()),
            new_job("wa", "2", "order-paid", f.now()),
        ],
        ..PollCommit::default()
    };
    let refused = node.commit_poll(commit).await;
    assert!(
        matches!(&refused, Err(Error::Fenced { scope }) if scope == "store loja"),
        "{refused:?}"
    );
    // A node opened now has loaded everything written (a node's view of
    // another node's writes follows its watch, with no moment to await).
    let reader = f.server.node(Arc::new(Unfenced)).await?;
    assert_eq!(reader.jobs_for_order("loja", "1").await?.len(), 1);
    assert_eq!(reader.jobs_for_order("loja", "2").await?.len(), 0);
    assert_eq!(reader.order_record("loja", "1").await?, None);
    assert_eq!(reader.cursor("loja").await?, None);
    Ok(())
}

/// Review #2: the cursor, order records and status of a poll are written
/// back only if unchanged since the poll read them. A node whose fence check
/// passed but whose lease went to another node (which polled and committed
/// meanwhile) cannot overwrite the new owner's records: its commit stops as
/// superseded, and so does its following status write; its next poll,
/// reading afresh, commits again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_poll_cannot_overwrite_what_the_new_owner_committed() -> Result<()> {
    let f = Fixture::new().await?;
    let old_owner = f.server.node(Arc::new(Unfenced)).await?;
    let new_owner = f.server.node(Arc::new(Unfenced)).await?;
    let commit = |cursor: &str, record: &str| PollCommit {
        store: "loja".to_owned(),
        cursor: Some(cursor.to_owned()),
        order_records: vec![("1".to_owned(), record.as_bytes().to_vec())],
        status: StoreStatus {
            orders_seen: 1,
            ..StoreStatus::default()
        },
        ..PollCommit::default()
    };
    // Both polls read the same state (nothing yet).
    for node in [&old_owner, &new_owner] {
        node.poll_started("loja");
        assert_eq!(node.store_status("loja").await?, None);
        assert_eq!(node.cursor("loja").await?, None);
        assert_eq!(node.order_record("loja", "1").await?, None);
    }
    new_owner.commit_poll(commit("new", "new record")).await?;
    // The dispatcher of the old owner reading the new record in between
    // does not make the old poll's read newer.
    assert_eq!(
        old_owner.order_record("loja", "1").await?.as_deref(),
        Some(&b"new record"[..])
    );

    let refused = old_owner.commit_poll(commit("old", "old record")).await;
    assert!(
        matches!(&refused, Err(Error::Superseded { scope, record })
            if scope == "store loja" && record.contains("order \"1\"")),
        "{refused:?}"
    );
    let refused = old_owner
        .put_store_status("loja", StoreStatus::default())
        .await;
    assert!(
        matches!(&refused, Err(Error::Superseded { .. })),
        "{refused:?}"
    );
    assert_eq!(f.store.cursor("loja").await?.as_deref(), Some("new"));
    assert_eq!(
        f.store.order_record("loja", "1").await?.as_deref(),
        Some(&b"new record"[..])
    );
    assert_eq!(
        f.store.store_status("loja").await?.map(|s| s.orders_seen),
        Some(1)
    );

    // The new owner's next poll commits on top of its own writes; a later
    // poll of the old node (the store came back to it) reads afresh.
    new_owner
        .commit_poll(commit("new 2", "new record 2"))
        .await?;
    old_owner.poll_started("loja");
    old_owner.store_status("loja").await?;
    old_owner.cursor("loja").await?;
    old_owner.order_record("loja", "1").await?;
    old_owner.commit_poll(commit("back", "record back")).await?;
    assert_eq!(f.store.cursor("loja").await?.as_deref(), Some("back"));
    Ok(())
}

/// A poll commit that stops after `step` and is then made again in full
/// leaves every job once, the records and the cursor.
async fn crash_then_retry(step: PollStep) -> Result<()> {
    let f = Fixture::new().await?;
    let commit = PollCommit {
        store: "loja".to_owned(),
        cursor: Some("cursor-2".to_owned()),
        order_records: vec![
            ("1".to_owned(), b"record 1".to_vec()),
            ("pedido 2.b".to_owned(), b"record 2".to_vec()),
        ],
        jobs: vec![
            new_job("wa", "1", "order-paid", f.now()),
            new_job("wa", "pedido 2.b", "order-paid", f.now()),
            new_job("sms", "1", "order-shipped", f.now()),
        ],
        status: StoreStatus {
            orders_seen: 2,
            ..StoreStatus::default()
        },
        ..PollCommit::default()
    };
    f.store.crash_poll_commit_after(Some(step));
    let crashed = f.store.commit_poll(commit.clone()).await;
    ensure!(
        crashed.is_err(),
        "the hook did not stop the commit after {step:?}"
    );
    assert_eq!(
        f.store.cursor("loja").await?,
        None,
        "the cursor moved before {step:?}"
    );
    // Until the order records are written, the commit's jobs are staged: a
    // dispatcher that claimed one would find no order record and drop it.
    let claimable = f.store.claim("wa", f.now(), 10, LEASE).await?;
    if matches!(
        step,
        PollStep::DedupeKeys | PollStep::Jobs | PollStep::Cancellations | PollStep::OrderRecords
    ) {
        assert!(
            claimable.is_empty(),
            "a job was claimable after a stop at {step:?}, before its commit released it: {claimable:#?}"
        );
    } else {
        assert_eq!(
            claimable.len(),
            2,
            "after a stop at {step:?}: {claimable:#?}"
        );
        for claim in claimable {
            f.store
                .complete(
                    claim.claim(),
                    Completion::Defer {
                        until: f.now(),
                        expires_at: None,
                        reason: "the test gives the claim back".to_owned(),
                    },
                )
                .await?;
        }
    }

    // The node comes back (another handle, as after a restart) and polls again.
    f.store.crash_poll_commit_after(None);
    let restarted = f.server.node(Arc::new(Unfenced)).await?;
    restarted.set_clock(Arc::new(f.clock.clone()));
    restarted.commit_poll(commit).await?;

    let jobs = restarted.list(Default::default()).await?;
    assert_eq!(jobs.len(), 3, "after a stop at {step:?}: {jobs:#?}");
    for (lane, order) in [("wa", "1"), ("wa", "pedido 2.b"), ("sms", "1")] {
        let found = jobs
            .iter()
            .filter(|job| job.channel.as_str() == lane && job.order_id == order)
            .count();
        assert_eq!(
            found, 1,
            "after a stop at {step:?}: {lane}/{order} {found} times"
        );
    }
    // The retry released what the stopped commit left staged, too.
    let claimable = restarted.claim("wa", f.now(), 10, LEASE).await?;
    assert_eq!(
        claimable.len(),
        2,
        "after a stop at {step:?} and a retry: {claimable:#?}"
    );
    assert_eq!(restarted.cursor("loja").await?.as_deref(), Some("cursor-2"));
    assert_eq!(
        restarted
            .order_record("loja", "pedido 2.b")
            .await?
            .as_deref(),
        Some(&b"record 2"[..])
    );
    assert_eq!(
        restarted
            .store_status("loja")
            .await?
            .map(|status| status.orders_seen),
        Some(2)
    );
    let rows = restarted
        .counters(CounterQuery {
            from_day: "2025-03-14".into(),
            to_day: "2025-03-14".into(),
            ..CounterQuery::default()
        })
        .await?;
    let entered: u64 = rows
        .iter()
        .filter(|row| row.outcome == Outcome::Entered)
        .map(|row| row.count)
        .sum();
    assert_eq!(entered, 3, "after a stop at {step:?}: {rows:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_commit_stopped_after_taking_dedupe_keys_loses_and_repeats_nothing() -> Result<()> {
    crash_then_retry(PollStep::DedupeKeys).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_commit_stopped_after_the_jobs_loses_and_repeats_nothing() -> Result<()> {
    crash_then_retry(PollStep::Jobs).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_commit_stopped_after_the_cancellations_loses_and_repeats_nothing() -> Result<()> {
    crash_then_retry(PollStep::Cancellations).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_commit_stopped_after_the_order_records_loses_and_repeats_nothing() -> Result<()> {
    crash_then_retry(PollStep::OrderRecords).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_commit_stopped_after_releasing_its_jobs_loses_and_repeats_nothing() -> Result<()> {
    crash_then_retry(PollStep::Released).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_commit_stopped_after_the_status_loses_and_repeats_nothing() -> Result<()> {
    crash_then_retry(PollStep::Status).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_deletes_finished_jobs_and_frees_their_keys() -> Result<()> {
    let f = Fixture::new().await?;
    let id = f
        .enqueue_one(new_job("wa", "1", "order-paid", f.now()))
        .await?;
    let job = f.claim_one("wa", f.now()).await?;
    f.store
        .complete(job.claim(), sent(f.now(), "2025-03-14"))
        .await?;
    assert_eq!(f.store.prune(f.at(1), 10).await?, 1);
    assert!(f.store.get(id).await?.is_none());
    assert!(f.store.list(Default::default()).await?.is_empty());
    // The key is free again.
    f.enqueue_one(new_job("wa", "1", "order-paid", f.now()))
        .await?;
    Ok(())
}

/// Retention: the history stream keeps outcomes for the configured
/// `history_retention` (changed on the stream when it differs), and the
/// delete markers purges leave are removed, up to the marker only: a dedupe
/// key taken again after its marker keeps deduplicating.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_follows_the_retention_and_old_delete_markers_are_removed() -> Result<()> {
    let f = Fixture::new().await?;
    let js = async_nats::jetstream::new(async_nats::connect(&f.server.url).await?);
    let thirty_days = std::time::Duration::from_secs(30 * 24 * 3600);
    f.store.apply_history_retention(thirty_days).await?;
    let mut history = js.get_stream("test_history").await?;
    assert_eq!(history.info().await?.config.max_age, thirty_days);
    // Applying the same again changes nothing.
    f.store.apply_history_retention(thirty_days).await?;

    let id = f
        .enqueue_one(new_job("wa", "1", "order-paid", f.now()))
        .await?;
    let job = f.claim_one("wa", f.now()).await?;
    f.store
        .complete(job.claim(), sent(f.now(), "2025-03-14"))
        .await?;
    assert_eq!(f.store.prune(f.at(1), 10).await?, 1);
    let mut jobs_stream = js.get_stream("KV_test_jobs").await?;
    assert_eq!(
        jobs_stream.info().await?.state.messages,
        2,
        "the job's marker and the layout record"
    );
    // The freed key is taken again after its marker.
    let again = f
        .enqueue_one(new_job("wa", "1", "order-paid", f.now()))
        .await?;

    let removed = f
        .store
        .compact_delete_markers(std::time::Duration::ZERO)
        .await?;
    assert!(removed >= 1, "{removed}");
    assert!(f.store.get(id).await?.is_none());
    // Only the new job's record (and the layout record) is left in the
    // jobs bucket; its key holds.
    assert_eq!(jobs_stream.info().await?.state.messages, 2);
    let outcome = f
        .store
        .enqueue(vec![new_job("wa", "1", "order-paid", f.now())])
        .await?;
    assert!(
        matches!(outcome.as_slice(), [EnqueueOutcome::Duplicate(holder)] if *holder == again),
        "{outcome:?}"
    );
    Ok(())
}

/// Fills `store` with one of everything: jobs in several states (one
/// cancelled, so its key is not held), a cursor, order records, statuses,
/// counters.
async fn fill(store: &dyn StateStore, now: Timestamp) -> Result<()> {
    let commit = PollCommit {
        store: "loja".to_owned(),
        cursor: Some("cursor-9".to_owned()),
        order_records: vec![("1".to_owned(), b"{\"status\":\"pago\"}".to_vec())],
        jobs: vec![
            new_job("wa", "1", "order-paid", now),
            new_job("wa", "2", "order-paid", now),
            new_job(
                "wa",
                "3",
                "order-paid",
                now + SignedDuration::from_secs(3600),
            ),
        ],
        status: StoreStatus {
            orders_seen: 3,
            ..StoreStatus::default()
        },
        ..PollCommit::default()
    };
    let outcome = store.commit_poll(commit).await?;
    let mut claimed = store.claim("wa", now, 1, LEASE).await?;
    let job = claimed.pop().context("nothing to claim")?;
    store.complete(job.claim(), sent(now, "2025-03-14")).await?;
    let third = outcome.jobs[2].id();
    store.cancel(vec![third], "order cancelled".into()).await?;
    store.pause_channel("sms", "operator".into(), false).await?;
    Ok(())
}

/// The records of an export, in a stable order for comparing.
async fn exported(store: &dyn Portable) -> Result<Vec<String>> {
    let records: Vec<Record> = store.export().try_collect().await?;
    let mut lines: Vec<String> = records
        .iter()
        .map(serde_json::to_string)
        .collect::<Result<_, _>>()?;
    lines.sort();
    Ok(lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redb_state_imported_into_the_cluster_exports_the_same_and_imports_once() -> Result<()> {
    let f = Fixture::new().await?;
    let dir = tempfile::tempdir()?;
    let redb = RedbStore::open(
        dir.path(),
        RedbOptions {
            clock: Arc::new(f.clock.clone()),
            time_zone: jiff::tz::TimeZone::get("America/Sao_Paulo")?,
            ..RedbOptions::default()
        },
    )?;
    fill(&redb, f.now()).await?;
    let from_redb = exported(&redb).await?;
    ensure!(
        from_redb.iter().any(|line| line.contains("dedupe_key")),
        "{from_redb:#?}"
    );

    let cluster = f
        .server
        .node_with_prefix(Arc::new(Unfenced), "copy")
        .await?;
    assert!(cluster.is_empty().await?);
    let records: Vec<Record> = redb.export().try_collect().await?;
    let first = cluster.import(records.clone()).await?;
    assert_eq!(first.kept.total(), 0, "{first:?}");
    assert_eq!(first.written.total(), u64::try_from(records.len())?);
    assert!(!cluster.is_empty().await?);
    assert_eq!(exported(&cluster).await?, from_redb);

    // Importing the same file again keeps everything.
    let second = cluster.import(records.clone()).await?;
    assert_eq!(second.written.total(), 0, "{second:?}");
    assert_eq!(exported(&cluster).await?, from_redb);

    // The imported queue works: the pending job is claimed, and a new job
    // gets an id after the imported ones.
    let pending = cluster.claim("wa", f.now(), 10, LEASE).await?;
    assert_eq!(pending.len(), 1, "{pending:?}");
    let newest = records
        .iter()
        .filter_map(|record| match record {
            Record::Job(job) => Some(job.id),
            _ => None,
        })
        .max()
        .context("no job exported")?;
    let fresh = cluster
        .enqueue(vec![new_job("wa", "77", "order-paid", f.now())])
        .await?;
    assert!(fresh[0].id() > newest);

    // And back: a cluster's state exported into an empty redb file.
    let back_dir = tempfile::tempdir()?;
    let back = RedbStore::open(back_dir.path(), RedbOptions::default())?;
    let from_cluster: Vec<Record> = f.store.export().try_collect().await?;
    back.import(from_cluster).await?;
    assert_eq!(exported(&back).await?, exported(&f.store).await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_job_expires_at_claim_and_a_fallback_lands_on_the_other_channel() -> Result<()> {
    let f = Fixture::new().await?;
    let mut stale = new_job("wa", "1", "order-paid", f.at(-120));
    stale.expires_at = Some(f.at(-60));
    let stale = f.enqueue_one(stale).await?;
    let fresh = f
        .enqueue_one(new_job("wa", "2", "order-paid", f.now()))
        .await?;
    let claimed = f.claim_one("wa", f.now()).await?;
    assert_eq!(claimed.id, fresh);
    assert_eq!(f.job(stale).await?.state, JobState::Expired);

    let fallback = new_job("sms", "2", "order-paid", f.now());
    let completed = f
        .store
        .complete_noting_fallback(
            claimed.claim(),
            Completion::FellBack {
                reason: "no WhatsApp account".into(),
                fallback: Box::new(fallback),
            },
        )
        .await?;
    let inserted = completed
        .fallback_inserted
        .context("no fallback inserted")?;
    assert_eq!(completed.job.state, JobState::Skipped);
    assert_eq!(completed.job.fell_back_to, Some(inserted));
    let on_sms = f.job(inserted).await?;
    assert_eq!(
        (on_sms.channel.as_str(), on_sms.fallback_of),
        ("sms", Some(fresh))
    );
    let status = f.store.channel_status("wa").await?;
    assert_eq!(status.fallbacks.len(), 1, "{status:?}");

    // Cancelling the unsent fallback frees the original's keys too: the
    // notification can be planned again on WhatsApp.
    f.store
        .cancel(vec![inserted], "order moved on".into())
        .await?;
    assert!(f.job(fresh).await?.dedupe_keys.is_empty());
    f.enqueue_one(new_job("wa", "2", "order-paid", f.now()))
        .await?;
    Ok(())
}

fn fall_back_to_sms(order: &str, now: Timestamp) -> Completion {
    Completion::FellBack {
        reason: "no WhatsApp account".into(),
        fallback: Box::new(new_job("sms", order, "order-paid", now)),
    }
}

/// Review #3: a fallback exists only if the original's transition won. A
/// dispatcher whose lease ended (the job was recovered and claimed again)
/// completing with a fallback inserts nothing: the customer would get the
/// retried original and the fallback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_claim_that_falls_back_inserts_no_fallback() -> Result<()> {
    let f = Fixture::new().await?;
    let id = f
        .enqueue_one(new_job("wa", "1", "order-paid", f.now()))
        .await?;
    let stale = f.claim_one("wa", f.now()).await?;
    // Past the lease: the next claim recovers the job and takes it again.
    let again = f.claim_one("wa", f.at(120)).await?;
    assert_eq!((again.id, again.claims), (id, 2));

    let refused = f
        .store
        .complete_noting_fallback(stale.claim(), fall_back_to_sms("1", f.now()))
        .await;
    assert!(
        matches!(&refused, Err(Error::StaleClaim { .. })),
        "{refused:?}"
    );
    let jobs = f.store.jobs_for_order("loja", "1").await?;
    assert_eq!(jobs.len(), 1, "a fallback was inserted: {jobs:?}");
    assert_eq!(jobs[0].state, JobState::Running);
    Ok(())
}

/// Review #3: a fallback completion that stopped after the original named
/// its fallback but before inserting it is finished by the lease recovery:
/// a cancelled placeholder takes the fallback's id (so the stopped
/// completion could never insert it later) and the original is retried;
/// its next fallback is inserted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fallback_stopped_after_its_intent_is_retried_once_not_lost() -> Result<()> {
    let f = Fixture::new().await?;
    let id = f
        .enqueue_one(new_job("wa", "1", "order-paid", f.now()))
        .await?;
    let first = f.claim_one("wa", f.now()).await?;
    f.store.crash_fallback_after(Some(FallbackStep::Intent));
    let stopped = f
        .store
        .complete_noting_fallback(first.claim(), fall_back_to_sms("1", f.now()))
        .await;
    f.store.crash_fallback_after(None);
    ensure!(
        stopped.is_err(),
        "the test hook did not stop the completion"
    );
    let intent = f.job(id).await?;
    assert_eq!(intent.state, JobState::Running);
    let fallback_id = intent.fell_back_to.context("no intent written")?;

    let second = f.claim_one("wa", f.at(120)).await?;
    assert_eq!((second.id, second.claims), (id, 2));
    let placeholder = f.job(fallback_id).await?;
    assert_eq!(placeholder.state, JobState::Cancelled, "{placeholder:?}");
    assert!(placeholder.dedupe_keys.is_empty());
    assert_eq!(second.fell_back_to, None);

    let completed = f
        .store
        .complete_noting_fallback(second.claim(), fall_back_to_sms("1", f.at(120)))
        .await?;
    let inserted = completed.fallback_inserted.context("no fallback")?;
    assert_ne!(inserted, fallback_id);
    assert_eq!(completed.job.state, JobState::Skipped);
    // The placeholder stands in for the fallback under the fallback's own
    // key, so it is on sms too (cancelled); the one real fallback is pending.
    let on_sms: Vec<Job> = f
        .store
        .jobs_for_order("loja", "1")
        .await?
        .into_iter()
        .filter(|job| job.channel.as_str() == "sms" && job.id != fallback_id)
        .collect();
    assert_eq!(on_sms.len(), 1, "{on_sms:?}");
    assert_eq!(on_sms[0].fallback_of, Some(id));
    assert_eq!(on_sms[0].state, JobState::Pending);
    assert_eq!(f.job(fallback_id).await?.channel.as_str(), "sms");
    Ok(())
}

/// The same stop after the fallback was inserted, before the original
/// ended: the recovery ends the original as fallen back to it (not retried),
/// so nothing is sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovered_fallback_intent_whose_fallback_exists_ends_the_original() -> Result<()> {
    let f = Fixture::new().await?;
    let id = f
        .enqueue_one(new_job("wa", "1", "order-paid", f.now()))
        .await?;
    let first = f.claim_one("wa", f.now()).await?;
    f.store.crash_fallback_after(Some(FallbackStep::Inserted));
    let stopped = f
        .store
        .complete_noting_fallback(first.claim(), fall_back_to_sms("1", f.now()))
        .await;
    f.store.crash_fallback_after(None);
    ensure!(
        stopped.is_err(),
        "the test hook did not stop the completion"
    );
    let fallback_id = f.job(id).await?.fell_back_to.context("no intent")?;
    assert_eq!(f.job(fallback_id).await?.state, JobState::Pending);

    assert_eq!(f.store.recover_expired_leases(f.at(120)).await?, 1);
    let original = f.job(id).await?;
    assert_eq!(original.state, JobState::Skipped, "{original:?}");
    assert_eq!(original.fell_back_to, Some(fallback_id));
    assert!(f.store.claim("wa", f.at(120), 1, LEASE).await?.is_empty());
    let on_sms = f.claim_one("sms", f.at(120)).await?;
    assert_eq!(on_sms.id, fallback_id);
    Ok(())
}

/// The send path starts from the node's own last writes (its claim, its
/// last channel-status write) without reading them: a write another node
/// made in between (here an operator's pause) makes that compare-and-set
/// fail, and the completion then works on the record read from the stream's
/// leader, so the other node's write stays and the send is counted. (A
/// claim taken over meanwhile: `a_channel_taken_over_…` above.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_from_own_writes_never_overwrite_another_nodes_write() -> Result<()> {
    let f = Fixture::new().await?;
    f.enqueue_one(new_job("wa", "1", "order-paid", f.now()))
        .await?;
    f.enqueue_one(new_job("wa", "2", "order-paid", f.now()))
        .await?;
    let first = f.claim_one("wa", f.now()).await?;
    f.store
        .complete(first.claim(), sent(f.now(), "2025-03-14"))
        .await?;
    let second = f.claim_one("wa", f.at(1)).await?;

    // Another node (an operator's CLI) pauses the channel meanwhile.
    let other = f.server.node(Arc::new(Unfenced)).await?;
    other.set_clock(Arc::new(f.clock.clone()));
    other
        .pause_channel("wa", "operator".to_owned(), false)
        .await?;

    let done = f
        .store
        .complete(second.claim(), sent(f.at(3), "2025-03-14"))
        .await?;
    assert_eq!(done.state, JobState::Sent);
    let status = f.store.channel_status("wa").await?;
    assert_eq!(status.sent_today, 2);
    assert!(
        status.paused.is_some(),
        "the pause was overwritten: {status:?}"
    );
    Ok(())
}

/// Every counter of every day.
fn all_days() -> CounterQuery {
    CounterQuery {
        from_day: "2000-01-01".to_owned(),
        to_day: "2100-12-31".to_owned(),
        ..CounterQuery::default()
    }
}

/// An operator command's view (no daemon): only the jobs and outcomes
/// `jobs` and `history` select.
async fn operator_view(server: &Server, jobs: ViewScope, history: ViewScope) -> Result<NatsStore> {
    let js = async_nats::jetstream::new(async_nats::connect(&server.url).await?);
    let options = NatsOptions {
        prefix: "test".to_owned(),
        replicas: 1,
    };
    let store = NatsStore::bind_viewing(js, options, Arc::new(Unfenced), &jobs, &history).await?;
    store.set_time_zone(jiff::tz::TimeZone::get("America/Sao_Paulo")?);
    Ok(store)
}

/// Issue 15: an operator command without a daemon reads only what it
/// shows. Jobs are keyed `<channel>.<store>.<id>` and outcomes published on
/// `<prefix>.history.<channel>.<store>`, so a view of one store or one
/// channel receives only its own jobs and outcomes from the server (what
/// the view holds is all the server sent it), and a read by id still finds
/// any job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_of_one_store_or_channel_receives_only_its_jobs_and_outcomes() -> Result<()> {
    let f = Fixture::new().await?;
    let mut ids = Vec::new();
    for (store, lane, order) in [
        ("loja-a", "wa", "1"),
        ("loja-a", "sms", "2"),
        ("loja-b", "wa", "3"),
        ("loja-b", "sms", "4"),
    ] {
        let mut job = new_job(lane, order, "order-paid", f.now());
        job.store = store.to_owned();
        job.dedupe_keys = vec![format!("{store}/{order}/{lane}")];
        ids.push((store, lane, f.enqueue_one(job).await?));
    }
    let on_wa = f.claim_one("wa", f.now()).await?;
    f.store
        .complete(on_wa.claim(), sent(f.now(), "2025-03-14"))
        .await?;
    let count = |rows: &[arauto::queue::CounterRow], outcome: Outcome| -> u64 {
        rows.iter()
            .filter(|row| row.outcome == outcome)
            .map(|row| row.count)
            .sum()
    };

    let of_a = operator_view(
        &f.server,
        ViewScope::Store("loja-a".to_owned()),
        ViewScope::Store("loja-a".to_owned()),
    )
    .await?;
    let listed = of_a.list(JobFilter::default()).await?;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.iter().all(|job| job.store == "loja-a"), "{listed:?}");
    let rows = of_a.counters(all_days()).await?;
    assert!(rows.iter().all(|row| row.store == "loja-a"), "{rows:?}");
    assert_eq!(count(&rows, Outcome::Entered), 2);
    assert_eq!(
        count(&rows, Outcome::Sent),
        u64::from(on_wa.store == "loja-a")
    );

    let of_wa = operator_view(
        &f.server,
        ViewScope::Channel("wa".to_owned()),
        ViewScope::Channel("wa".to_owned()),
    )
    .await?;
    let listed = of_wa.list(JobFilter::default()).await?;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.iter().all(|job| job.channel.as_str() == "wa"));
    assert_eq!(of_wa.channel_stats("wa").await?.pending, 1);
    let rows = of_wa.counters(all_days()).await?;
    assert!(rows.iter().all(|row| row.channel == "wa"), "{rows:?}");
    assert_eq!(count(&rows, Outcome::Entered), 2);
    assert_eq!(count(&rows, Outcome::Sent), 1);

    // `status`: every job, no outcomes; a view of nothing still reads by id.
    let status = operator_view(&f.server, ViewScope::All, ViewScope::Nothing).await?;
    assert_eq!(status.list(JobFilter::default()).await?.len(), 4);
    assert!(status.counters(all_days()).await?.is_empty());
    let blind = operator_view(&f.server, ViewScope::Nothing, ViewScope::Nothing).await?;
    assert!(blind.list(JobFilter::default()).await?.is_empty());
    for (store, lane, id) in ids {
        let job = blind.get(id).await?.context("a job not found by its id")?;
        assert_eq!((job.store.as_str(), job.channel.as_str()), (store, lane));
    }
    let cancelled = blind
        .cancel(vec![f.job(on_wa.id).await?.id], "x".into())
        .await?;
    assert_eq!(
        cancelled,
        vec![(on_wa.id, CancelOutcome::NotPending(JobState::Sent))]
    );
    Ok(())
}

/// Rewrites the state of prefix `test` the way an arauto of layout 1 wrote
/// it: jobs keyed by id alone, dedupe keys naming the bare id, outcomes on
/// `test.history.<channel>`, no layout record.
async fn rewrite_as_layout1(server: &Server) -> Result<()> {
    let js = async_nats::jetstream::new(async_nats::connect(&server.url).await?);
    let jobs = js.get_key_value("test_jobs").await?;
    let keys: Vec<String> = jobs.keys().await?.try_collect().await?;
    for key in keys {
        let tokens: Vec<&str> = key.split('.').collect();
        if let [_, _, id] = tokens.as_slice() {
            let value = jobs
                .get(key.as_str())
                .await?
                .context("a job without value")?;
            jobs.put(*id, value).await?;
        }
    }
    let jobs_stream = js.get_stream("KV_test_jobs").await?;
    jobs_stream.purge().filter("$KV.test_jobs.*.*.*").await?;
    jobs_stream
        .purge()
        .filter("$KV.test_jobs.arauto.layout")
        .await?;
    let dedupe = js.get_key_value("test_dedupe").await?;
    let keys: Vec<String> = dedupe.keys().await?.try_collect().await?;
    for key in keys {
        let value = dedupe
            .get(key.as_str())
            .await?
            .context("a key without value")?;
        let text = String::from_utf8(value.to_vec())?;
        let id = text
            .rsplit('.')
            .next()
            .context("an empty value")?
            .to_owned();
        dedupe.put(key.as_str(), id.into()).await?;
    }
    let mut history = js.get_stream("test_history").await?;
    let state = history.info().await?.state.clone();
    for sequence in state.first_sequence..=state.last_sequence {
        let Ok(message) = history.get_raw_message(sequence).await else {
            continue;
        };
        let tokens: Vec<&str> = message.subject.split('.').collect();
        if let ["test", "history", channel, _store] = tokens.as_slice() {
            js.publish(format!("test.history.{channel}"), message.payload)
                .await?
                .await?;
        }
    }
    history.purge().filter("test.history.*.*").await?;
    Ok(())
}

/// Issue 15: a cluster state of layout 1 (jobs keyed by id alone) is
/// refused by a node of this version with one error naming the command to
/// run; `arauto state migrate` (here [`NatsStore::migrate_layout`]) moves
/// every job, dedupe key and outcome without losing one, frees the key an
/// enqueue left naming no job, and a second run has nothing to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layout1_state_is_refused_then_migrated_without_losing_a_job_or_an_outcome() -> Result<()>
{
    let f = Fixture::new().await?;
    fill(&f.store, f.now()).await?;
    let mut other = new_job("sms", "7", "order-paid", f.now());
    other.store = "loja-b".to_owned();
    other.dedupe_keys = vec!["loja-b/7/sms".to_owned()];
    f.enqueue_one(other.clone()).await?;
    let mut before = f.store.list(JobFilter::default()).await?;
    before.sort_by_key(|job| job.id);
    let mut counters_before = f.store.counters(all_days()).await?;
    counters_before.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    rewrite_as_layout1(&f.server).await?;
    // The mark of an enqueue that stopped before writing its job.
    let js = async_nats::jetstream::new(async_nats::connect(&f.server.url).await?);
    let dedupe = js.get_key_value("test_dedupe").await?;
    dedupe
        .put("loja=2F99=2Fleftover", "01jpa8d2g07zt4n1hjww7r8zzz".into())
        .await?;

    let refused = f.server.node(Arc::new(Unfenced)).await;
    let Err(error) = refused else {
        bail!("a node of layout 2 opened a layout-1 state");
    };
    let message = error.to_string();
    assert!(
        message.contains("layout 1") && message.contains("arauto state migrate"),
        "{message}"
    );
    let refused = operator_view(&f.server, ViewScope::All, ViewScope::All).await;
    assert!(
        refused.is_err(),
        "an operator command read a layout-1 state"
    );

    let options = NatsOptions {
        prefix: "test".to_owned(),
        replicas: 1,
    };
    let done = NatsStore::migrate_layout(js.clone(), options.clone()).await?;
    assert_eq!(done.jobs, before.len(), "{done:?}");
    assert_eq!(done.dedupe_leftovers, 1, "{done:?}");
    assert!(done.outcomes >= counters_before.len(), "{done:?}");
    assert!(dedupe.get("loja=2F99=2Fleftover").await?.is_none());

    let node = f.server.node(Arc::new(Unfenced)).await?;
    node.set_time_zone(jiff::tz::TimeZone::get("America/Sao_Paulo")?);
    let mut after = node.list(JobFilter::default()).await?;
    after.sort_by_key(|job| job.id);
    assert_eq!(after, before);
    let mut counters_after = node.counters(all_days()).await?;
    counters_after.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    assert_eq!(counters_after, counters_before);
    // The dedupe keys still hold: the same notification is a duplicate.
    let again = node.enqueue(vec![other]).await?;
    assert!(
        matches!(again.as_slice(), [EnqueueOutcome::Duplicate(_)]),
        "{again:?}"
    );
    // And the views by store see the migrated jobs and outcomes.
    let of_b = operator_view(
        &f.server,
        ViewScope::Store("loja-b".to_owned()),
        ViewScope::Store("loja-b".to_owned()),
    )
    .await?;
    assert_eq!(of_b.list(JobFilter::default()).await?.len(), 1);
    assert!(!of_b.counters(all_days()).await?.is_empty());

    let again = NatsStore::migrate_layout(js, options).await?;
    assert!(again.already_current, "{again:?}");
    Ok(())
}

/// Issue 15: a job's lease is not judged by comparing two nodes' clocks. A
/// node whose clock runs ten minutes ahead of the claimer's does not take
/// back a claim still under way: another process's claim ends only once
/// this node has watched it for a whole lease by its own clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_clock_runs_ahead_waits_a_whole_lease_before_taking_back_a_claim() -> Result<()>
{
    let f = Fixture::new().await?;
    let ahead = f.server.node(Arc::new(Unfenced)).await?;
    let ahead_now = f.at(600);
    ahead.set_clock(Arc::new(ManualClock::new(ahead_now)));
    let id = f
        .enqueue_one(new_job("wa", "1", "order-paid", f.now()))
        .await?;
    let first = f.claim_one("wa", f.now()).await?;
    // A job written after the claim: once the other node's view has it, it
    // has the claim too (the view applies the bucket in order).
    let mut watch = ahead.watch_channel("wa");
    f.enqueue_one(new_job("wa", "2", "order-paid", f.at(3600)))
        .await?;
    assert!(watch.changed().await);

    // By its clock the claim's lease ended nine minutes ago; it has not
    // watched it for a lease yet.
    assert!(ahead.claim("wa", ahead_now, 1, LEASE).await?.is_empty());
    let almost = ahead_now + SignedDuration::from_secs(59);
    assert!(ahead.claim("wa", almost, 1, LEASE).await?.is_empty());
    let taken = ahead
        .claim("wa", ahead_now + SignedDuration::from_secs(60), 1, LEASE)
        .await?;
    assert_eq!(
        taken
            .iter()
            .map(|job| (job.id, job.claims))
            .collect::<Vec<_>>(),
        vec![(id, 2)]
    );
    let late = f
        .store
        .complete(first.claim(), sent(f.at(61), "2025-03-14"))
        .await;
    assert!(matches!(late, Err(Error::StaleClaim { .. })), "{late:?}");
    Ok(())
}

/// Issue 15: a daemon's idle polls start from the cursor they keep in
/// memory and never read the stored one; the write that finally carries
/// that cursor is still a compare-and-set on the stored cursor they started
/// from. Here a node whose lease lapsed flushes its idle cursor after the
/// store's new owner committed its own: the flush is refused as superseded
/// and the new owner's cursor stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_cursor_written_late_cannot_overwrite_the_new_owners_cursor() -> Result<()> {
    let f = Fixture::new().await?;
    let commit = |cursor: &str| PollCommit {
        store: "loja".to_owned(),
        cursor: Some(cursor.to_owned()),
        ..PollCommit::default()
    };
    f.store.commit_poll(commit("c0")).await?;
    // The first idle poll reads the stored cursor; the next ones start from
    // the one kept in memory and read nothing.
    f.store.poll_started("loja");
    assert_eq!(f.store.cursor("loja").await?.as_deref(), Some("c0"));
    f.store.poll_started("loja");
    f.store.poll_started("loja");

    let new_owner = f.server.node(Arc::new(Unfenced)).await?;
    new_owner.poll_started("loja");
    assert_eq!(new_owner.cursor("loja").await?.as_deref(), Some("c0"));
    new_owner.commit_poll(commit("c1-new-owner")).await?;

    // The old node's flush of its idle polls' cursor.
    let late = f.store.commit_poll(commit("c0-idle")).await;
    assert!(matches!(late, Err(Error::Superseded { .. })), "{late:?}");
    assert_eq!(
        new_owner.cursor("loja").await?.as_deref(),
        Some("c1-new-owner")
    );
    // A poll that reads the cursor again commits on top of it.
    f.store.poll_started("loja");
    assert_eq!(
        f.store.cursor("loja").await?.as_deref(),
        Some("c1-new-owner")
    );
    f.store.commit_poll(commit("c2")).await?;
    Ok(())
}

/// Issue 15: a node that stopped between a job's write and the publish of
/// its counted outcome left `arauto report` one short. The hourly prune now
/// publishes, for the jobs of the channels the node holds, the outcomes the
/// history lacks once they are ten minutes old, under the message ids the
/// lost publishes would have had; outcomes already counted are left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_whose_publish_was_lost_are_counted_by_the_next_prune() -> Result<()> {
    let f = Fixture::new().await?;
    f.enqueue_one(new_job("wa", "1", "order-paid", f.now()))
        .await?;
    let counted = f.claim_one("wa", f.now()).await?;
    f.store
        .complete(counted.claim(), sent(f.now(), "2025-03-14"))
        .await?;
    // The node stops after each write of the second job, before its publish.
    f.store.lose_history_publishes(true);
    f.enqueue_one(new_job("wa", "2", "order-paid", f.now()))
        .await?;
    let lost = f.claim_one("wa", f.now()).await?;
    f.store
        .complete(lost.claim(), sent(f.now(), "2025-03-14"))
        .await?;
    f.store.lose_history_publishes(false);
    let sums = |rows: Vec<arauto::queue::CounterRow>| {
        let of = |outcome| -> u64 {
            rows.iter()
                .filter(|row| row.outcome == outcome)
                .map(|row| row.count)
                .sum()
        };
        (of(Outcome::Entered), of(Outcome::Sent))
    };
    assert_eq!(sums(f.store.counters(all_days()).await?), (1, 1));

    // A new node (the old one is gone), ten minutes on: its prune repairs.
    let node = f.server.node(Arc::new(Unfenced)).await?;
    node.set_clock(Arc::new(ManualClock::new(f.at(11 * 60))));
    node.set_time_zone(jiff::tz::TimeZone::get("America/Sao_Paulo")?);
    let long_ago: Timestamp = "2000-01-01T00:00:00Z".parse()?;
    node.prune(long_ago, 100).await?;
    assert_eq!(sums(node.counters(all_days()).await?), (2, 2));
    // Nothing is counted twice by the next prune.
    node.prune(long_ago, 100).await?;
    let again = f.server.node(Arc::new(Unfenced)).await?;
    assert_eq!(sums(again.counters(all_days()).await?), (2, 2));
    Ok(())
}

/// The WARN and ERROR lines this test's thread logs, for awaiting one.
#[derive(Clone, Default)]
struct CapturedLogs {
    text: Arc<std::sync::Mutex<String>>,
    written: Arc<tokio::sync::Notify>,
}

impl std::io::Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.text
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push_str(&String::from_utf8_lossy(bytes));
        self.written.notify_waiters();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLogs {
    /// Returns once a logged line contains `needle`.
    async fn logged(&self, needle: &str) {
        loop {
            let written = self.written.notified();
            if self
                .text
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .contains(needle)
            {
                return;
            }
            written.await;
        }
    }
}

/// Completes claimed job `claimed` with `completion` while the server does
/// not answer (frozen by SIGSTOP, as a stream leader lost mid-write) until
/// the completion's first try failed; then the server answers again.
/// Returns what the completion returned.
async fn complete_across_a_frozen_server(
    f: &Fixture,
    claimed: &Job,
    completion: Completion,
) -> Result<Job> {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;

    let logs = CapturedLogs::default();
    let writer = logs.clone();
    // This thread only: the test's own future runs the completion.
    let _logging = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_writer(move || writer.clone())
            .finish(),
    );
    let server = Pid::from_raw(i32::try_from(f.server.child.id())?);
    kill(server, Signal::SIGSTOP)?;
    let completion = f.store.complete(claimed.claim(), completion);
    tokio::pin!(completion);
    // Until the first try failed (or, without retries, the call ended).
    let ended_early = tokio::select! {
        result = &mut completion => Some(result),
        () = logs.logged("could not be recorded") => None,
    };
    kill(server, Signal::SIGCONT)?;
    let done = match ended_early {
        Some(result) => result,
        None => completion.await,
    };
    done.context("the completion was given up")
}

/// Issue 15: a nats-server that stops answering while a send's completion
/// is written must not leave the job running: it would be due again when
/// its claim's lease ends, and sent twice. The completion is tried again
/// until the server answers; the job ends sent, and nothing is due after
/// the lease. (Here the first write to time out is the channel's send
/// count.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_the_server_did_not_answer_is_written_once_it_answers() -> Result<()> {
    let f = Fixture::new().await?;
    let id = f
        .enqueue_one(new_job("wa", "1", "order-paid", f.now()))
        .await?;
    let claimed = f.claim_one("wa", f.now()).await?;
    let done = complete_across_a_frozen_server(&f, &claimed, sent(f.now(), "2025-03-14")).await?;
    assert_eq!((done.id, done.state), (id, JobState::Sent));

    // Long after the claim's lease, the job is not due again.
    assert!(f.store.claim("wa", f.at(600), 1, LEASE).await?.is_empty());
    assert_eq!(f.job(id).await?.state, JobState::Sent);
    let status = f.store.channel_status("wa").await?;
    assert!(
        (1..=2).contains(&status.sent_today),
        "the send counted once (twice if the frozen write landed after its timeout): {status:?}"
    );
    Ok(())
}

/// A completion the cluster does not answer for longer than its caller
/// waits (60 s; 1 s here) goes on in the background: the caller gets the
/// error, and this node still does not take the claim back after its lease
/// (which would send the job again); once the server answers, the
/// completion lands and the job ends sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_its_caller_gave_up_on_still_lands_and_is_not_sent_again() -> Result<()> {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;

    let f = Fixture::new().await?;
    f.store
        .set_completion_retry_limit(std::time::Duration::from_secs(1));
    let id = f
        .enqueue_one(new_job("wa", "1", "order-paid", f.now()))
        .await?;
    let claimed = f.claim_one("wa", f.now()).await?;
    let server = Pid::from_raw(i32::try_from(f.server.child.id())?);
    kill(server, Signal::SIGSTOP)?;
    let given_up = f
        .store
        .complete(claimed.claim(), sent(f.now(), "2025-03-14"))
        .await;
    kill(server, Signal::SIGCONT)?;
    ensure!(given_up.is_err(), "the caller waited: {given_up:?}");

    // Long after the claim's lease, this node does not claim it again.
    assert!(f.store.claim("wa", f.at(600), 1, LEASE).await?.is_empty());
    // The completion lands by itself (looked at every 100 ms, at most 30 s).
    let landed = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            if f.job(id).await?.state == JobState::Sent {
                return anyhow::Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await;
    ensure!(
        matches!(landed, Ok(Ok(()))),
        "the completion never landed: {:?}",
        f.job(id).await?
    );
    assert!(f.store.claim("wa", f.at(600), 1, LEASE).await?.is_empty());
    Ok(())
}

/// The same with the job's own write timing out (a retry: no channel
/// write comes first): the frozen write lands once the server answers, and
/// the next try finds the record exactly as that write left it, so the
/// completion ends as that write said instead of failing as "not running".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_whose_answer_was_lost_but_landed_is_recognised() -> Result<()> {
    let f = Fixture::new().await?;
    let id = f
        .enqueue_one(new_job("wa", "1", "order-paid", f.now()))
        .await?;
    let claimed = f.claim_one("wa", f.now()).await?;
    let done = complete_across_a_frozen_server(&f, &claimed, retry(f.at(30))).await?;
    assert_eq!(
        (done.id, done.state, done.attempt),
        (id, JobState::Pending, 1)
    );
    assert_eq!(f.job(id).await?, done);
    // Due again when the retry said, once.
    let again = f.claim_one("wa", f.at(30)).await?;
    assert_eq!((again.id, again.attempt, again.claims), (id, 2, 2));
    Ok(())
}
