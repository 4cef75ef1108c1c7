//! Behaviour of the queue engine and state store, through the public trait.

// All test code: with this, clippy's allow-unwrap/expect-in-tests covers the
// helper functions too, not only the #[test] ones (see clippy.toml).
#![cfg(test)]

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use arauto::clock::ManualClock;
use arauto::queue::redb::{RedbOptions, RedbStore};
use arauto::queue::{
    CancelOutcome, Completed, Completion, CounterQuery, EnqueueOutcome, Error, Job, JobFilter,
    JobId, JobState, NewJob, Outcome, PollCommit, PurgeFilter, Receipt, RequeueOutcome, StateStore,
    StoreStatus,
};
use jiff::{SignedDuration, Timestamp};

const LEASE: SignedDuration = SignedDuration::from_secs(60);

struct Fixture {
    _dir: tempfile::TempDir,
    clock: ManualClock,
    store: RedbStore,
}

impl Fixture {
    fn new() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let clock = ManualClock::new("2025-03-14T12:00:00Z".parse()?);
        let store = open(dir.path(), &clock)?;
        Ok(Self {
            _dir: dir,
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

    async fn reopen(self) -> Result<Self> {
        let Self { _dir, clock, store } = self;
        store.close().await;
        let store = open(_dir.path(), &clock)?;
        Ok(Self { _dir, clock, store })
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

    /// Claim the next job on `lane` and end it by falling back to `fallback`
    /// (the recipient is unreachable there for `reason`).
    async fn fall_back(&self, lane: &str, reason: &str, fallback: NewJob) -> Result<Completed> {
        let job = self.claim_one(lane, self.now()).await?;
        Ok(self
            .store
            .complete_noting_fallback(
                job.claim(),
                Completion::FellBack {
                    reason: reason.into(),
                    fallback: Box::new(fallback),
                },
            )
            .await?)
    }

    async fn assert_consistent(&self) -> Result<()> {
        let report = self.store.verify().await?;
        ensure!(
            report.problems.is_empty(),
            "inconsistent store: {:#?}",
            report.problems
        );
        Ok(())
    }
}

fn open(dir: &std::path::Path, clock: &ManualClock) -> Result<RedbStore> {
    let options = RedbOptions {
        // Exercised here so the option keeps working; the other settings are defaults.
        quick_repair: true,
        clock: Arc::new(clock.clone()),
        time_zone: jiff::tz::TimeZone::get("America/Sao_Paulo")?,
        ..RedbOptions::default()
    };
    Ok(RedbStore::open(dir, options)?)
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

#[tokio::test]
async fn any_held_dedupe_key_makes_the_enqueue_a_no_op_returning_the_holder() -> Result<()> {
    let f = Fixture::new()?;
    let now = f.now();
    let mut first = new_job("wa", "100", "order-paid", now);
    first.dedupe_keys = vec!["paid/100".into(), "fingerprint/abc".into()];
    let first_id = f.enqueue_one(first).await?;

    // Second key held: duplicate of the first, and its own new key is not taken.
    let mut second = new_job("wa", "100", "order-paid", now);
    second.dedupe_keys = vec!["other/1".into(), "fingerprint/abc".into()];
    assert_eq!(
        f.store.enqueue(vec![second]).await?,
        vec![EnqueueOutcome::Duplicate(first_id)]
    );

    // First key held, on another lane: keys are global.
    let mut third = new_job("sms", "100", "order-paid", now);
    third.dedupe_keys = vec!["paid/100".into()];
    assert_eq!(
        f.store.enqueue(vec![third]).await?,
        vec![EnqueueOutcome::Duplicate(first_id)]
    );

    // "other/1" was not taken by the duplicate, so it is free.
    let mut fourth = new_job("wa", "101", "order-paid", now);
    fourth.dedupe_keys = vec!["other/1".into()];
    assert!(f.store.enqueue(vec![fourth]).await?[0].is_inserted());

    // Within one call, the second of two equal keys is a duplicate of the first.
    let a = new_job("wa", "200", "order-shipped", now);
    let b = new_job("wa", "200", "order-shipped", now);
    let outcomes = f.store.enqueue(vec![a, b]).await?;
    assert!(outcomes[0].is_inserted());
    assert_eq!(outcomes[1], EnqueueOutcome::Duplicate(outcomes[0].id()));

    // A finished job still holds its keys.
    let job = f.claim_one("wa", now).await?;
    f.store
        .complete(job.claim(), sent(now, "2025-03-14"))
        .await?;
    let again = new_job("wa", &job.order_id, job.kind_name(), now);
    let mut again = again;
    again.dedupe_keys = job.dedupe_keys.clone();
    assert_eq!(
        f.store.enqueue(vec![again]).await?,
        vec![EnqueueOutcome::Duplicate(job.id)]
    );

    // A key listed twice is held once.
    let mut twice = new_job("wa", "300", "order-paid", now);
    twice.dedupe_keys = vec!["k/300".into(), "k/300".into()];
    let twice = f.enqueue_one(twice).await?;
    assert_eq!(f.job(twice).await?.dedupe_keys, vec!["k/300".to_owned()]);

    // Duplicates wrote nothing.
    assert_eq!(f.store.list(JobFilter::default()).await?.len(), 4);
    f.assert_consistent().await
}

#[tokio::test]
async fn an_invalid_job_rejects_the_whole_call_and_names_the_problem() -> Result<()> {
    let f = Fixture::new()?;
    let good = new_job("wa", "1", "order-paid", f.now());
    let mut bad = new_job("wa", "2", "order-paid", f.now());
    bad.max_attempts = 0;
    match f.store.enqueue(vec![good, bad]).await {
        Err(error @ Error::Invalid { .. }) => {
            let message = error.to_string();
            assert!(message.contains("max_attempts"), "{message}");
            assert!(message.contains("\"2\""), "{message}");
        }
        other => bail!("expected a rejection, got {other:?}"),
    }
    let mut empty_lane = new_job("", "3", "order-paid", f.now());
    empty_lane.channel = arauto::model::ChannelId::default();
    assert!(matches!(
        f.store.enqueue(vec![empty_lane]).await,
        Err(Error::Invalid { .. })
    ));
    assert!(f.store.list(JobFilter::default()).await?.is_empty());
    f.assert_consistent().await
}

#[tokio::test]
async fn jobs_come_out_in_due_order_per_lane_and_lanes_are_isolated() -> Result<()> {
    let f = Fixture::new()?;
    let late = f
        .enqueue_one(new_job("wa", "1", "order-paid", f.at(30)))
        .await?;
    let early = f
        .enqueue_one(new_job("wa", "2", "order-paid", f.at(10)))
        .await?;
    let middle = f
        .enqueue_one(new_job("wa", "3", "order-paid", f.at(20)))
        .await?;
    let future = f
        .enqueue_one(new_job("wa", "4", "order-paid", f.at(3600)))
        .await?;
    let other_lane = f
        .enqueue_one(new_job("sms", "5", "order-paid", f.at(0)))
        .await?;

    assert_eq!(f.store.next_due("wa").await?, Some(f.at(10)));
    assert_eq!(f.store.next_due("nobody").await?, None);
    // Nothing is due yet on wa.
    assert!(f.store.claim("wa", f.now(), 10, LEASE).await?.is_empty());

    let mut order = Vec::new();
    for _ in 0..3 {
        order.push(f.claim_one("wa", f.at(60)).await?.id);
    }
    assert_eq!(order, vec![early, middle, late]);
    // The future job is not due, and sms was never touched by wa's claims.
    assert!(f.store.claim("wa", f.at(60), 10, LEASE).await?.is_empty());
    assert_eq!(f.job(future).await?.state, JobState::Pending);
    assert_eq!(f.job(other_lane).await?.state, JobState::Pending);
    assert_eq!(f.claim_one("sms", f.now()).await?.id, other_lane);

    let stats = f.store.channel_stats("wa").await?;
    assert_eq!(
        (stats.pending, stats.running, stats.oldest_due),
        (1, 3, Some(f.at(3600)))
    );
    assert_eq!(
        f.store.channels().await?,
        vec!["sms".to_owned(), "wa".to_owned()]
    );
    f.assert_consistent().await
}

#[tokio::test]
async fn among_due_jobs_the_lowest_priority_value_goes_first() -> Result<()> {
    let f = Fixture::new()?;
    let mut urgent_but_later = new_job("wa", "1", "order-shipped", f.at(5));
    urgent_but_later.priority = 0;
    let mut routine = new_job("wa", "2", "order-paid", f.at(1));
    routine.priority = 5;
    let mut not_due = new_job("wa", "3", "order-paid", f.at(500));
    not_due.priority = 0;
    let urgent = f.enqueue_one(urgent_but_later).await?;
    let routine = f.enqueue_one(routine).await?;
    f.enqueue_one(not_due).await?;

    let claimed = f.store.claim("wa", f.at(10), 2, LEASE).await?;
    let ids: Vec<JobId> = claimed.iter().map(|job| job.id).collect();
    assert_eq!(ids, vec![urgent, routine]);
    f.assert_consistent().await
}

#[tokio::test]
async fn expired_leases_come_back_and_late_completions_are_refused() -> Result<()> {
    let f = Fixture::new()?;
    let id = f
        .enqueue_one(new_job("wa", "1", "order-paid", f.now()))
        .await?;
    let first = f.claim_one("wa", f.now()).await?;
    assert_eq!(
        (first.state, first.attempt, first.claims),
        (JobState::Running, 1, 1)
    );
    assert_eq!(first.lease_until, Some(f.at(60)));

    assert_eq!(f.store.recover_expired_leases(f.at(59)).await?, 0);
    f.clock.set(f.at(61));
    assert_eq!(f.store.recover_expired_leases(f.now()).await?, 1);
    let recovered = f.job(id).await?;
    assert_eq!((recovered.state, recovered.attempt), (JobState::Pending, 1));
    assert_eq!(recovered.due_at, f.now());
    assert!(
        recovered
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("lease expired"))
    );

    let second = f.claim_one("wa", f.now()).await?;
    assert_eq!((second.attempt, second.claims), (2, 2));
    // The first dispatcher wakes up late and reports success: refused.
    match f
        .store
        .complete(first.claim(), sent(f.now(), "2025-03-14"))
        .await
    {
        Err(Error::StaleClaim {
            presented: 1,
            current: 2,
            ..
        }) => {}
        other => bail!("expected a stale claim, got {other:?}"),
    }
    let done = f
        .store
        .complete(second.claim(), sent(f.now(), "2025-03-14"))
        .await?;
    assert_eq!(done.state, JobState::Sent);
    // And once finished, nothing can complete it again.
    assert!(matches!(
        f.store
            .complete(second.claim(), sent(f.now(), "2025-03-14"))
            .await,
        Err(Error::NotRunning {
            state: JobState::Sent,
            ..
        })
    ));
    f.assert_consistent().await
}

#[tokio::test]
async fn a_job_whose_last_attempt_crashed_goes_to_dead_letter() -> Result<()> {
    let f = Fixture::new()?;
    let mut job = new_job("wa", "1", "order-paid", f.now());
    job.max_attempts = 2;
    let id = f.enqueue_one(job).await?;
    let claimed = f.claim_one("wa", f.now()).await?;
    f.store.extend_lease(claimed.claim(), f.at(600)).await?;
    assert_eq!(
        f.store.recover_expired_leases(f.at(300)).await?,
        0,
        "the extended lease holds"
    );
    assert_eq!(f.store.recover_expired_leases(f.at(600)).await?, 1);
    f.claim_one("wa", f.at(600)).await?;

    // Simulated crash: the daemon dies holding the job; opening recovers it.
    let f = f.reopen().await?;
    assert_eq!(f.store.recovered_at_open(), 1);
    let dead = f.job(id).await?;
    assert_eq!(dead.state, JobState::Dead);
    assert!(
        dead.outcome_reason
            .as_deref()
            .is_some_and(|r| r.contains("last attempt (2 of 2)")),
        "{dead:?}"
    );
    f.assert_consistent().await
}

#[tokio::test]
async fn a_crash_with_attempts_left_is_retried_after_reopening() -> Result<()> {
    let f = Fixture::new()?;
    let id = f
        .enqueue_one(new_job("wa", "1", "order-paid", f.now()))
        .await?;
    f.claim_one("wa", f.now()).await?;
    let f = f.reopen().await?;
    assert_eq!(f.store.recovered_at_open(), 1);
    let job = f.claim_one("wa", f.now()).await?;
    assert_eq!((job.id, job.attempt), (id, 2));
    f.assert_consistent().await
}

#[tokio::test]
async fn retries_wait_until_their_time_and_back_pressure_does_not_eat_attempts() -> Result<()> {
    let f = Fixture::new()?;
    let mut job = new_job("wa", "1", "order-paid", f.now());
    job.max_attempts = 2;
    let id = f.enqueue_one(job).await?;

    let first = f.claim_one("wa", f.now()).await?;
    let retry_at = f.at(120);
    let job = f
        .store
        .complete(
            first.claim(),
            Completion::Retry {
                at: retry_at,
                error: "HTTP 503".into(),
                spend_attempt: true,
            },
        )
        .await?;
    assert_eq!(
        (job.state, job.attempt, job.due_at),
        (JobState::Pending, 1, retry_at)
    );
    assert_eq!(f.store.next_due("wa").await?, Some(retry_at));
    assert!(
        f.store.claim("wa", f.at(119), 1, LEASE).await?.is_empty(),
        "not before its time"
    );

    // 429 with Retry-After: the attempt is given back.
    let second = f.claim_one("wa", retry_at).await?;
    assert_eq!(second.attempt, 2);
    let job = f
        .store
        .complete(
            second.claim(),
            Completion::Retry {
                at: f.at(180),
                error: "HTTP 429".into(),
                spend_attempt: false,
            },
        )
        .await?;
    assert_eq!((job.state, job.attempt), (JobState::Pending, 1));

    // A spent retry on the last attempt is dead-letter.
    let third = f.claim_one("wa", f.at(180)).await?;
    assert_eq!(third.attempt, 2);
    let job = f
        .store
        .complete(
            third.claim(),
            Completion::Retry {
                at: f.at(240),
                error: "HTTP 500".into(),
                spend_attempt: true,
            },
        )
        .await?;
    assert_eq!(job.state, JobState::Dead);
    assert!(
        job.outcome_reason
            .as_deref()
            .is_some_and(|r| r.contains("gave up after 2 attempts: HTTP 500"))
    );
    let log: Vec<&str> = job
        .attempts_log
        .iter()
        .map(|record| record.outcome.as_str())
        .collect();
    assert_eq!(log, vec!["HTTP 503", "HTTP 429", "HTTP 500"]);
    assert_eq!(f.job(id).await?.state, JobState::Dead);
    f.assert_consistent().await
}

#[tokio::test]
async fn a_retry_after_the_expiry_expires_the_job() -> Result<()> {
    let f = Fixture::new()?;
    let mut job = new_job("wa", "1", "order-shipped", f.now());
    job.expires_at = Some(f.at(100));
    f.enqueue_one(job).await?;
    let claimed = f.claim_one("wa", f.now()).await?;
    let job = f
        .store
        .complete(
            claimed.claim(),
            Completion::Retry {
                at: f.at(200),
                error: "timeout".into(),
                spend_attempt: true,
            },
        )
        .await?;
    assert_eq!(job.state, JobState::Expired);
    f.assert_consistent().await
}

#[tokio::test]
async fn stale_jobs_expire_at_claim_instead_of_being_delivered() -> Result<()> {
    let f = Fixture::new()?;
    let mut stale = new_job("wa", "1", "order-shipped", f.now());
    stale.expires_at = Some(f.at(30));
    let stale = f.enqueue_one(stale).await?;
    let fresh = f
        .enqueue_one(new_job("wa", "2", "order-shipped", f.at(1)))
        .await?;

    let claimed = f.store.claim("wa", f.at(60), 5, LEASE).await?;
    assert_eq!(
        claimed.iter().map(|job| job.id).collect::<Vec<_>>(),
        vec![fresh]
    );
    let expired = f.job(stale).await?;
    assert_eq!((expired.state, expired.attempt), (JobState::Expired, 0));
    assert_eq!(expired.finished_at, Some(f.at(60)));
    f.assert_consistent().await
}

#[tokio::test]
async fn cancel_touches_only_pending_jobs() -> Result<()> {
    let f = Fixture::new()?;
    let running = f
        .enqueue_one(new_job("wa", "1", "order-paid", f.now()))
        .await?;
    let claimed = f.claim_one("wa", f.now()).await?;
    let pending = f
        .enqueue_one(new_job("wa", "2", "order-paid", f.at(60)))
        .await?;
    let done = f
        .enqueue_one(new_job("sms", "3", "order-paid", f.now()))
        .await?;
    let sms = f.claim_one("sms", f.now()).await?;
    f.store
        .complete(sms.claim(), sent(f.now(), "2025-03-14"))
        .await?;
    let missing = JobId::from_u128(42);

    let outcomes = f
        .store
        .cancel(
            vec![pending, running, done, missing],
            "order cancelled".into(),
        )
        .await?;
    assert_eq!(
        outcomes,
        vec![
            (pending, CancelOutcome::Cancelled),
            (running, CancelOutcome::NotPending(JobState::Running)),
            (done, CancelOutcome::NotPending(JobState::Sent)),
            (missing, CancelOutcome::NotFound),
        ]
    );
    let cancelled = f.job(pending).await?;
    assert_eq!(
        (cancelled.state, cancelled.outcome_reason.as_deref()),
        (JobState::Cancelled, Some("order cancelled"))
    );
    assert!(f.store.claim("wa", f.at(120), 5, LEASE).await?.is_empty());
    // The running one is still completable by its dispatcher.
    f.store
        .complete(claimed.claim(), sent(f.now(), "2025-03-14"))
        .await?;
    f.assert_consistent().await
}

#[tokio::test]
async fn cancelling_frees_the_dedupe_keys_of_a_never_sent_job() -> Result<()> {
    let f = Fixture::new()?;
    let first = f
        .enqueue_one(new_job("wa", "1", "order-canceled", f.at(60)))
        .await?;
    f.store.cancel(vec![first], "order reopened".into()).await?;
    // The same notification planned again (the order was cancelled a second
    // time) is a new job, not a duplicate of the cancelled one.
    let second = f
        .enqueue_one(new_job("wa", "1", "order-canceled", f.at(120)))
        .await?;
    assert_ne!(first, second);
    assert_eq!(f.job(second).await?.state, JobState::Pending);
    f.assert_consistent().await
}

#[tokio::test]
async fn dead_jobs_can_be_requeued_but_sent_ones_never() -> Result<()> {
    let f = Fixture::new()?;
    let dead = f
        .enqueue_one(new_job("wa", "1", "order-paid", f.now()))
        .await?;
    let job = f.claim_one("wa", f.now()).await?;
    f.store
        .complete(
            job.claim(),
            Completion::Dead {
                reason: "HTTP 400 invalid number".into(),
            },
        )
        .await?;
    let mut stale = new_job("wa", "2", "order-paid", f.now());
    stale.expires_at = Some(f.at(1));
    let expired = f.enqueue_one(stale).await?;
    assert!(f.store.claim("wa", f.at(5), 5, LEASE).await?.is_empty());
    let sent_id = f
        .enqueue_one(new_job("sms", "3", "order-paid", f.now()))
        .await?;
    let job = f.claim_one("sms", f.now()).await?;
    f.store
        .complete(job.claim(), sent(f.now(), "2025-03-14"))
        .await?;

    assert_eq!(
        f.store.requeue(vec![sent_id]).await?,
        vec![(sent_id, RequeueOutcome::NotRequeueable(JobState::Sent))]
    );
    let mut requeued = f
        .store
        .requeue_dead(JobFilter {
            channel: Some("wa".into()),
            ..JobFilter::default()
        })
        .await?;
    requeued.sort();
    assert_eq!(requeued, vec![dead, expired]);
    for id in [dead, expired] {
        let job = f.job(id).await?;
        assert_eq!(
            (job.state, job.attempt, job.expires_at, job.due_at),
            (JobState::Pending, 0, None, f.now())
        );
    }
    assert_eq!(f.store.claim("wa", f.now(), 5, LEASE).await?.len(), 2);
    f.assert_consistent().await
}

#[tokio::test]
async fn a_poll_commit_writes_everything_or_nothing() -> Result<()> {
    let f = Fixture::new()?;
    let running = f
        .enqueue_one(new_job("wa", "9", "order-paid", f.now()))
        .await?;
    f.claim_one("wa", f.now()).await?;
    let pending = f
        .enqueue_one(new_job("wa", "10", "order-paid", f.at(30)))
        .await?;

    let status = StoreStatus {
        orders_seen: 2,
        events_total: 3,
        last_poll_ok_at: Some(f.now()),
        ..StoreStatus::default()
    };
    let outcome = f
        .store
        .commit_poll(PollCommit {
            store: "loja".into(),
            cursor: Some("2025-03-14T12:00:00".into()),
            order_records: vec![
                ("10".into(), b"snapshot-10".to_vec()),
                ("11".into(), b"snapshot-11".to_vec()),
            ],
            forget_orders: Vec::new(),
            jobs: vec![
                new_job("wa", "11", "order-paid", f.now()),
                new_job("wa", "10", "order-paid", f.now()),
            ],
            cancel: vec![
                (pending, "order delivered".into()),
                (running, "order delivered".into()),
            ],
            status: status.clone(),
        })
        .await?;
    assert!(outcome.jobs[0].is_inserted());
    assert_eq!(
        outcome.jobs[1],
        EnqueueOutcome::Duplicate(pending),
        "same dedupe key as the pending job"
    );
    assert_eq!(
        outcome.cancelled,
        vec![
            (pending, CancelOutcome::Cancelled),
            (running, CancelOutcome::NotPending(JobState::Running))
        ]
    );
    assert_eq!(
        f.store.cursor("loja").await?.as_deref(),
        Some("2025-03-14T12:00:00")
    );
    assert_eq!(
        f.store.order_record("loja", "11").await?,
        Some(b"snapshot-11".to_vec())
    );
    assert_eq!(f.store.store_status("loja").await?, Some(status.clone()));
    assert_eq!(f.store.jobs_for_order("loja", "11").await?.len(), 1);

    // A commit with a job of another store is rejected whole: no cursor, record,
    // job, cancellation or status of it lands.
    let pending_12 = f
        .enqueue_one(new_job("wa", "12", "order-paid", f.at(30)))
        .await?;
    let mut foreign = new_job("wa", "77", "order-paid", f.now());
    foreign.store = "outra".into();
    let rejected = f
        .store
        .commit_poll(PollCommit {
            store: "loja".into(),
            cursor: Some("2025-03-15T00:00:00".into()),
            order_records: vec![("12".into(), b"snapshot-12".to_vec())],
            forget_orders: vec!["10".into()],
            jobs: vec![new_job("wa", "13", "order-paid", f.now()), foreign],
            cancel: vec![(pending_12, "order delivered".into())],
            status: StoreStatus {
                orders_seen: 99,
                ..StoreStatus::default()
            },
        })
        .await;
    match rejected {
        Err(error @ Error::Invalid { .. }) => {
            assert!(error.to_string().contains("\"outra\""), "{error}")
        }
        other => bail!("expected a rejection, got {other:?}"),
    }
    assert_eq!(
        f.store.cursor("loja").await?.as_deref(),
        Some("2025-03-14T12:00:00")
    );
    assert_eq!(f.store.order_record("loja", "12").await?, None);
    assert_eq!(
        f.store.order_record("loja", "10").await?,
        Some(b"snapshot-10".to_vec())
    );
    assert!(f.store.jobs_for_order("loja", "13").await?.is_empty());
    assert_eq!(f.job(pending_12).await?.state, JobState::Pending);
    assert_eq!(f.store.store_status("loja").await?, Some(status));

    // Forgetting orders and keeping the cursor (None).
    f.store
        .commit_poll(PollCommit {
            store: "loja".into(),
            forget_orders: vec!["10".into()],
            ..PollCommit::default()
        })
        .await?;
    assert_eq!(f.store.order_record("loja", "10").await?, None);
    assert_eq!(
        f.store.cursor("loja").await?.as_deref(),
        Some("2025-03-14T12:00:00")
    );
    assert_eq!(f.store.stores().await?, vec!["loja".to_owned()]);
    f.assert_consistent().await
}

#[tokio::test]
async fn concurrent_writers_are_group_committed_and_all_durable() -> Result<()> {
    let f = Fixture::new()?;
    let tasks = 64;
    let per_task = 20;
    let mut handles = Vec::new();
    for task in 0..tasks {
        let store = f.store.clone();
        let now = f.now();
        handles.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..per_task {
                let job = new_job(
                    &format!("lane-{}", task % 4),
                    &format!("{task}-{i}"),
                    "order-paid",
                    now,
                );
                ids.push(store.enqueue(vec![job]).await?[0].id());
            }
            anyhow::Ok(ids)
        }));
    }
    let mut all = Vec::new();
    for handle in handles {
        all.extend(handle.await??);
    }
    let stats = f.store.stats();
    assert_eq!(all.len(), tasks * per_task);
    assert!(stats.write_ops >= (tasks * per_task) as u64);
    assert!(
        stats.commits < stats.write_ops,
        "no group commit happened: {stats:?}"
    );
    assert!(stats.largest_batch > 1, "{stats:?}");

    let f = f.reopen().await?;
    for id in all {
        assert_eq!(f.job(id).await?.state, JobState::Pending);
    }
    f.assert_consistent().await
}

/// Poll commits wait for company (issue 16): while only poll commits are
/// queued the writer waits (here: an hour) for more, and any other write ends
/// the wait at once, the poll riding in its commit. Both callers are answered
/// after that one durable commit.
#[tokio::test]
async fn a_poll_commit_waits_for_company_and_rides_in_the_next_write() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let clock = ManualClock::new("2025-03-14T12:00:00Z".parse()?);
    let options = || RedbOptions {
        clock: Arc::new(clock.clone()),
        poll_commit_delay: Duration::from_secs(3600),
        ..RedbOptions::default()
    };
    let store = RedbStore::open(dir.path(), options())?;
    let commits_before = store.stats().commits;
    let now = arauto::clock::Clock::now(&clock);
    // `join!` polls the poll commit first, up to its wait for the answer, so
    // it is queued before the enqueue.
    let (polled, enqueued) = tokio::join!(
        store.commit_poll(PollCommit {
            store: "loja".into(),
            cursor: Some("2025-03-14T11:59:00".into()),
            ..PollCommit::default()
        }),
        store.enqueue(vec![new_job("wa", "10", "order-paid", now)]),
    );
    polled?;
    assert!(enqueued?[0].is_inserted());
    assert_eq!(
        store.stats().commits - commits_before,
        1,
        "one shared commit"
    );
    store.close().await;

    let store = RedbStore::open(dir.path(), options())?;
    assert_eq!(
        store.cursor("loja").await?.as_deref(),
        Some("2025-03-14T11:59:00")
    );
    assert_eq!(store.jobs_for_order("loja", "10").await?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_rejected_request_does_not_disturb_the_rest_of_its_batch() -> Result<()> {
    let f = Fixture::new()?;
    let mut handles = Vec::new();
    for i in 0..200 {
        let store = f.store.clone();
        let now = f.now();
        handles.push(tokio::spawn(async move {
            if i % 2 == 0 {
                let mut bad = new_job("wa", &format!("bad-{i}"), "order-paid", now);
                bad.max_attempts = 0;
                match store.enqueue(vec![bad]).await {
                    Err(Error::Invalid { .. }) => {}
                    other => anyhow::bail!("bad job accepted: {other:?}"),
                }
                // Completing a job that is not running is refused without writing.
                match store
                    .complete(
                        arauto::queue::Claim {
                            id: JobId::from_u128(i),
                            claim: 1,
                        },
                        Completion::Expired,
                    )
                    .await
                {
                    Err(Error::NotFound { .. }) => Ok(None),
                    other => anyhow::bail!("unexpected: {other:?}"),
                }
            } else {
                let id = store
                    .enqueue(vec![new_job("wa", &format!("good-{i}"), "order-paid", now)])
                    .await?[0]
                    .id();
                Ok(Some(id))
            }
        }));
    }
    let mut good = Vec::new();
    for handle in handles {
        if let Some(id) = handle.await?? {
            good.push(id);
        }
    }
    assert_eq!(good.len(), 100);
    assert_eq!(f.store.channel_stats("wa").await?.pending, 100);
    assert_eq!(f.store.stats().failed_commits, 0);
    f.assert_consistent().await
}

#[tokio::test]
async fn dispatchers_are_woken_by_enqueues_and_resumes() -> Result<()> {
    let f = Fixture::new()?;
    let mut watch = f.store.watch_channel("wa");
    let mut other = f.store.watch_channel("sms");
    f.enqueue_one(new_job("wa", "1", "order-paid", f.now()))
        .await?;
    // The change happened before we waited: it is not lost.
    ensure!(
        tokio::time::timeout(Duration::from_secs(10), watch.changed()).await?,
        "store closed"
    );

    let waiter = tokio::spawn(async move { watch.changed().await });
    f.enqueue_one(new_job("wa", "2", "order-paid", f.now()))
        .await?;
    ensure!(
        tokio::time::timeout(Duration::from_secs(10), waiter).await??,
        "store closed"
    );

    // Pause: claims yield nothing; resume wakes the lane.
    let paused = f
        .store
        .pause_channel("sms", "token rejected (401)".into(), true)
        .await?;
    assert!(paused.paused.is_some());
    f.enqueue_one(new_job("sms", "3", "order-paid", f.now()))
        .await?;
    ensure!(
        tokio::time::timeout(Duration::from_secs(10), other.changed()).await?,
        "store closed"
    );
    assert!(f.store.claim("sms", f.now(), 5, LEASE).await?.is_empty());
    let again = f
        .store
        .pause_channel("sms", "another reason".into(), false)
        .await?;
    assert_eq!(again.paused, paused.paused, "the first reason is kept");
    let waiter = tokio::spawn(async move { other.changed().await });
    f.store.resume_channel("sms").await?;
    ensure!(
        tokio::time::timeout(Duration::from_secs(10), waiter).await??,
        "store closed"
    );
    assert_eq!(f.store.claim("sms", f.now(), 5, LEASE).await?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn sends_update_pacing_and_history_uses_local_days() -> Result<()> {
    let f = Fixture::new()?;
    // 02:00 UTC on the 15th is still the 14th in São Paulo (UTC-3).
    f.clock.set("2025-03-15T02:00:00Z".parse()?);
    for order in ["1", "2", "3"] {
        f.enqueue_one(new_job("wa", order, "order-paid", f.now()))
            .await?;
    }
    let first = f.claim_one("wa", f.now()).await?;
    f.store
        .complete(first.claim(), sent(f.now(), "2025-03-14"))
        .await?;
    let second = f.claim_one("wa", f.now()).await?;
    f.store
        .complete(second.claim(), sent(f.at(1), "2025-03-14"))
        .await?;
    let status = f.store.channel_status("wa").await?;
    assert_eq!(
        (status.pacing_day.map(|d| d.to_string()), status.sent_today),
        (Some("2025-03-14".to_owned()), 2)
    );
    assert_eq!(status.last_sent_at, Some(f.at(1)));
    assert_eq!(status.warmup_started_at, Some(f.now()));

    let third = f.claim_one("wa", f.now()).await?;
    let done = f
        .store
        .complete(third.claim(), sent(f.at(86_400), "2025-03-15"))
        .await?;
    assert_eq!(
        done.receipt.and_then(|r| r.provider_message_id).as_deref(),
        Some("wamid.1")
    );
    let status = f.store.channel_status("wa").await?;
    assert_eq!(
        (status.pacing_day.map(|d| d.to_string()), status.sent_today),
        (Some("2025-03-15".to_owned()), 1)
    );

    let rows = f
        .store
        .counters(CounterQuery {
            from_day: "2025-03-14".into(),
            to_day: "2025-03-15".into(),
            ..CounterQuery::default()
        })
        .await?;
    let count = |day: &str, outcome: Outcome| {
        rows.iter()
            .filter(|row| row.day == day && row.outcome == outcome)
            .map(|row| row.count)
            .sum::<u64>()
    };
    assert_eq!(count("2025-03-14", Outcome::Entered), 3);
    assert_eq!(count("2025-03-14", Outcome::Sent), 2);
    assert_eq!(count("2025-03-15", Outcome::Sent), 1);
    let none = f
        .store
        .counters(CounterQuery {
            from_day: "2025-03-14".into(),
            to_day: "2025-03-15".into(),
            channel: Some("sms".into()),
            ..CounterQuery::default()
        })
        .await?;
    assert!(none.is_empty());

    let recent = f.store.recent("wa", f.now()).await?;
    assert_eq!(recent.len(), 3);
    assert!(recent.iter().all(|entry| entry.state == JobState::Sent));
    assert_eq!(f.store.recent("wa", f.at(2)).await?.len(), 1);
    assert_eq!(f.store.entered_since(f.now(), 10).await?.len(), 3);
    assert!(f.store.entered_since(f.at(1), 10).await?.is_empty());
    f.assert_consistent().await
}

#[tokio::test]
async fn lists_filter_by_store_lane_state_and_order() -> Result<()> {
    let f = Fixture::new()?;
    let a = f
        .enqueue_one(new_job("wa", "1", "order-paid", f.now()))
        .await?;
    let b = f
        .enqueue_one(new_job("wa", "1", "order-shipped", f.at(10)))
        .await?;
    let c = f
        .enqueue_one(new_job("sms", "2", "order-paid", f.now()))
        .await?;
    let claimed = f.claim_one("sms", f.now()).await?;
    f.store
        .complete(
            claimed.claim(),
            Completion::Skipped {
                reason: "no mobile phone".into(),
            },
        )
        .await?;

    let ids = |jobs: Vec<Job>| jobs.into_iter().map(|job| job.id).collect::<Vec<_>>();
    assert_eq!(ids(f.store.jobs_for_order("loja", "1").await?), vec![a, b]);
    assert_eq!(
        ids(f
            .store
            .list(JobFilter {
                state: Some(JobState::Pending),
                ..JobFilter::default()
            })
            .await?),
        vec![a, b]
    );
    assert_eq!(
        ids(f
            .store
            .list(JobFilter {
                state: Some(JobState::Skipped),
                ..JobFilter::default()
            })
            .await?),
        vec![c]
    );
    assert_eq!(
        ids(f
            .store
            .list(JobFilter {
                channel: Some("sms".into()),
                ..JobFilter::default()
            })
            .await?),
        vec![c]
    );
    assert_eq!(
        ids(f.store.list(JobFilter::default()).await?),
        vec![c, b, a],
        "newest first"
    );
    assert_eq!(
        ids(f
            .store
            .list(JobFilter {
                limit: Some(1),
                ..JobFilter::default()
            })
            .await?),
        vec![c]
    );
    assert_eq!(
        ids(f
            .store
            .list(JobFilter {
                kind: Some("order-shipped".into()),
                ..JobFilter::default()
            })
            .await?),
        vec![b]
    );
    assert!(
        f.store
            .list(JobFilter {
                store: Some("outra".into()),
                ..JobFilter::default()
            })
            .await?
            .is_empty()
    );
    assert_eq!(f.store.get(JobId::from_u128(7)).await?, None);
    assert_eq!("dead".parse::<JobState>()?, JobState::Dead);
    assert_eq!("failed".parse::<JobState>()?, JobState::Dead);
    assert_eq!(a.to_string().parse::<JobId>()?, a);
    Ok(())
}

#[tokio::test]
async fn pruning_deletes_old_finished_jobs_and_frees_their_keys() -> Result<()> {
    let f = Fixture::new()?;
    let mut sent_ids = Vec::new();
    for order in 0..5 {
        sent_ids.push(
            f.enqueue_one(new_job("wa", &order.to_string(), "order-paid", f.now()))
                .await?,
        );
        let job = f.claim_one("wa", f.now()).await?;
        f.store
            .complete(job.claim(), sent(f.now(), "2025-03-14"))
            .await?;
    }
    let pending = f
        .enqueue_one(new_job("wa", "pending", "order-paid", f.at(3600)))
        .await?;
    f.clock.set(f.at(10));
    let cancelled = f
        .enqueue_one(new_job("wa", "c", "order-paid", f.at(3600)))
        .await?;
    f.store.cancel(vec![cancelled], "test".into()).await?;

    // Non-terminal states cannot be purged.
    assert!(matches!(
        f.store
            .purge(PurgeFilter {
                finished_before: f.at(100),
                states: vec![JobState::Pending],
                limit: 10
            })
            .await,
        Err(Error::Invalid { .. })
    ));
    // Only cancelled, before the horizon.
    let purged = f
        .store
        .purge(PurgeFilter {
            finished_before: f.at(1),
            states: vec![JobState::Cancelled],
            limit: 10,
        })
        .await?;
    assert_eq!(purged, 1);
    assert_eq!(f.store.get(cancelled).await?, None);
    // Everything finished before "now" (the sent jobs), two per transaction.
    let commits_before = f.store.stats().commits;
    assert_eq!(f.store.prune(f.now(), 2).await?, 5);
    assert!(f.store.stats().commits - commits_before >= 3);
    for id in sent_ids {
        assert_eq!(f.store.get(id).await?, None);
    }
    assert_eq!(f.job(pending).await?.state, JobState::Pending);
    // The pruned jobs' dedupe keys are free again.
    assert!(
        f.store
            .enqueue(vec![new_job("wa", "0", "order-paid", f.now())])
            .await?[0]
            .is_inserted()
    );
    f.assert_consistent().await
}

#[tokio::test]
async fn store_and_channel_statuses_round_trip() -> Result<()> {
    let f = Fixture::new()?;
    assert_eq!(f.store.store_status("loja").await?, None);
    let status = f
        .store
        .update_store_status(
            "loja",
            Box::new(|status| {
                status.orders_seen += 1;
                *status
                    .unmapped_statuses
                    .entry("aguardando_troca".into())
                    .or_default() += 1;
            }),
        )
        .await?;
    assert_eq!(status.orders_seen, 1);
    let status = f
        .store
        .update_store_status("loja", Box::new(|status| status.orders_seen += 1))
        .await?;
    assert_eq!(
        (
            status.orders_seen,
            status.unmapped_statuses.get("aguardando_troca")
        ),
        (2, Some(&1))
    );
    f.store
        .put_store_status("outra", StoreStatus::default())
        .await?;
    assert_eq!(
        f.store.stores().await?,
        vec!["loja".to_owned(), "outra".to_owned()]
    );

    let channel = f
        .store
        .update_channel_status("wa", Box::new(|status| status.warmup_started_at = None))
        .await?;
    assert_eq!(channel, Default::default());
    let f = f.reopen().await?;
    assert_eq!(
        f.store.store_status("loja").await?.map(|s| s.orders_seen),
        Some(2)
    );
    assert!(f.store.channels().await?.contains(&"wa".to_owned()));
    f.assert_consistent().await
}

/// Ending a job by falling back plans the notification on the fallback
/// channel in the same transaction: the original is skipped and names the
/// new job, counts as `fell-back` (not skipped), is never requeued (the
/// customer would get it twice), and the channel keeps a per-day count per
/// fallback channel. A fallback whose key is already held (the store also
/// sends there directly) names the holder and plans nothing new.
#[tokio::test]
async fn a_fallback_ends_the_job_and_plans_it_on_the_other_channel_at_once() -> Result<()> {
    let f = Fixture::new()?;
    let original = f
        .enqueue_one(new_job("wa", "1", "order-paid", f.now()))
        .await?;
    let ended = f
        .fall_back(
            "wa",
            "recipient unreachable on this channel: 131026",
            new_job("sms", "1", "order-paid", f.now()),
        )
        .await?
        .job;
    let sms_id = ended.fell_back_to.context("names the fallback job")?;
    assert_eq!(ended.state, JobState::Skipped);
    let reason = ended.outcome_reason.clone().unwrap_or_default();
    ensure!(
        reason.contains("131026")
            && reason.contains(&format!("fell back to channel sms as job {sms_id}")),
        "{reason}"
    );
    let sms = f.claim_one("sms", f.now()).await?;
    assert_eq!((sms.id, sms.kind_name()), (sms_id, "order-paid"));
    assert_eq!(
        f.store.requeue(vec![original]).await?,
        vec![(original, RequeueOutcome::FellBack(sms_id))]
    );

    let day = "2025-03-14".to_owned();
    let rows = f
        .store
        .counters(CounterQuery {
            from_day: day.clone(),
            to_day: day.clone(),
            channel: Some("wa".into()),
            ..CounterQuery::default()
        })
        .await?;
    let outcomes: Vec<(Outcome, u64)> = rows.iter().map(|r| (r.outcome, r.count)).collect();
    assert_eq!(
        outcomes,
        vec![(Outcome::Entered, 1), (Outcome::FellBack, 1)]
    );
    let status = f.store.channel_status("wa").await?;
    assert_eq!(status.fallbacks.len(), 1);
    assert_eq!(
        (
            status.fallbacks[0].fallback.as_str(),
            status.fallbacks[0].count
        ),
        ("sms", 1)
    );

    // The same notification already planned on sms: the holder is named.
    let twice = f
        .enqueue_one(new_job("wa", "2", "order-paid", f.now()))
        .await?;
    let direct = f
        .enqueue_one(new_job("sms", "2", "order-paid", f.now()))
        .await?;
    let ended = f
        .fall_back(
            "wa",
            "unreachable",
            new_job("sms", "2", "order-paid", f.now()),
        )
        .await?
        .job;
    assert_eq!(ended.id, twice);
    assert_eq!(ended.fell_back_to, Some(direct));
    assert_eq!(f.store.jobs_for_order("loja", "2").await?.len(), 2);
    // Naming a job already planned there is not a new fallback: not counted.
    let status = f.store.channel_status("wa").await?;
    assert_eq!(
        status.fallbacks.iter().map(|c| c.count).sum::<u64>(),
        1,
        "{:?}",
        status.fallbacks
    );
    f.assert_consistent().await
}

/// Cancelling a fallback job (the order reopened before it went out) frees
/// the keys of the job that fell back to it too: neither was sent, so the
/// notification planned again on the original channel is queued, not
/// refused as a duplicate of the skipped original.
#[tokio::test]
async fn cancelling_a_fallback_job_frees_the_original_jobs_keys() -> Result<()> {
    let f = Fixture::new()?;
    let original = f
        .enqueue_one(new_job("wa", "1", "order-canceled", f.now()))
        .await?;
    let done = f
        .fall_back(
            "wa",
            "131026",
            new_job("sms", "1", "order-canceled", f.now()),
        )
        .await?;
    let sms_id = done.fallback_inserted.context("a new SMS job")?;
    let sms = f.store.get(sms_id).await?.context("the SMS job")?;
    assert_eq!(sms.fallback_of, Some(original));

    f.store
        .cancel(vec![sms_id], "order reopened".into())
        .await?;
    let again = f
        .store
        .enqueue(vec![new_job("wa", "1", "order-canceled", f.now())])
        .await?;
    ensure!(
        matches!(again.as_slice(), [EnqueueOutcome::Inserted(_)]),
        "{again:?}"
    );
    f.assert_consistent().await
}

/// A fallback whose key is held by a job that already ended unsent (here:
/// after a reload turned `wa -> sms` into `sms -> wa`, the SMS job falls back
/// onto the WhatsApp job that fell back to it) plans nothing and names
/// nothing: the job ends dead with a reason naming the holder and its state,
/// no fallback is counted, and `queue retry` can still retry it (two jobs
/// pointing at each other could never be retried).
#[tokio::test]
async fn a_fallback_onto_a_job_that_already_ended_unsent_ends_the_job_dead() -> Result<()> {
    let f = Fixture::new()?;
    let original = f
        .enqueue_one(new_job("wa", "1", "order-paid", f.now()))
        .await?;
    let done = f
        .fall_back("wa", "131026", new_job("sms", "1", "order-paid", f.now()))
        .await?;
    let sms_id = done.fallback_inserted.context("a new SMS job")?;
    assert_eq!(done.job.fell_back_to, Some(sms_id));

    // After the reload, sms falls back to wa, whose key the original holds.
    let done = f
        .fall_back(
            "sms",
            "not a mobile number",
            new_job("wa", "1", "order-paid", f.now()),
        )
        .await?;
    assert_eq!(done.job.id, sms_id);
    assert_eq!(done.fallback_inserted, None);
    assert_eq!(done.job.state, JobState::Dead);
    assert_eq!(done.job.fell_back_to, None, "names nothing");
    let reason = done.job.outcome_reason.clone().unwrap_or_default();
    ensure!(
        reason.contains("not a mobile number")
            && reason.contains(&format!(
                "fallback channel wa already ended: job {original} is skipped"
            )),
        "{reason}"
    );
    assert_eq!(f.store.jobs_for_order("loja", "1").await?.len(), 2);
    assert!(
        f.store.channel_status("sms").await?.fallbacks.is_empty(),
        "not counted as a fallback"
    );
    assert_eq!(
        f.store.requeue(vec![sms_id]).await?,
        vec![(sms_id, RequeueOutcome::Requeued)]
    );
    f.assert_consistent().await
}
