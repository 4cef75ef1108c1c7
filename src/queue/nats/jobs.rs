//! Job writes of the NATS backend: enqueue with dedupe keys, claim,
//! completion, cancel, requeue and purge, each a compare-and-set on the job's
//! revision in the jobs bucket.
//!
//! A dedupe key is a key of the dedupe bucket whose value is the holder's
//! job id, taken with `create` (which fails if the key is held). A key
//! counts as held only while its holder exists, still lists the key and is
//! not cancelled; anything else is a leftover (a cancel or purge that died
//! between its two writes, or a crashed enqueue) and is taken over with a
//! compare-and-set. A key held by a job that does not exist is the mark of
//! an enqueue that died between claiming its keys and writing its record:
//! the next enqueue of the same notification writes the job under that id
//! (see `docs/cluster-state.md`).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use async_nats::jetstream::kv;
use futures::TryStreamExt;
use jiff::{SignedDuration, Timestamp};
use tokio_util::bytes::Bytes;

use super::mirror::{JobRecord, JobRecordRef, Stored};
use super::{CAS_ATTEMPTS, Inner, boxed, conflict, keys, nats_error};
use crate::queue::{
    CancelOutcome, ChannelStatus, Claim, Completed, Completion, EnqueueOutcome, Error, Job,
    JobBody, JobFilter, JobId, JobState, NewJob, Outcome, PurgeFilter, RequeueOutcome, Result,
    Scope, StoreStatus,
};

/// A boundary inside a completion that falls back, for the crash tests
/// ([`super::NatsStore::crash_fallback_after`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FallbackStep {
    /// The original names its fallback's id; the fallback is not inserted.
    Intent,
    /// The fallback is inserted; the original has not ended.
    Inserted,
}

/// How long the caller of a completion that cannot be written waits while
/// it is tried again (then it goes on in the background): longer than
/// a stream's leader election
/// after a lost nats-server (4–7 s in the cluster tests), shorter than the
/// dispatcher's heartbeat silence.
pub(super) const COMPLETION_RETRY_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);
/// Pause between those tries.
const COMPLETION_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(250);
/// The longest pause between the tries of a completion that goes on in a
/// task of its own after [`COMPLETION_RETRY_LIMIT`].
const COMPLETION_BACKGROUND_PAUSE: std::time::Duration = std::time::Duration::from_secs(5);

/// What the tries of one completion carry from one to the next.
struct CompletionProgress {
    /// The channel's pacing counted this send already.
    send_counted: bool,
    /// The record this node's claim wrote, for the first try.
    own_claim: Option<Stored>,
    /// The final write of the last try, while it is not known whether it
    /// landed (its answer was lost).
    final_write: Option<FinalWrite>,
}

/// A completion's final write: the ended job, and what follows it.
#[derive(Clone)]
struct FinalWrite {
    job: Job,
    fallback_inserted: Option<JobId>,
    fell_back_on: Option<String>,
    /// When the completion was applied (the fallback's pacing day).
    at: Timestamp,
}

/// Whether a completion that failed with `error` may be tried again: the
/// cluster did not answer (a write or read timed out, found no leader, or
/// the connection dropped). Not a refused completion (a stale claim, a job
/// not running, a bad fallback), a record that cannot be encoded, or the
/// crash tests' stop.
fn completion_may_retry(error: &Error) -> bool {
    match error {
        Error::Nats { op, .. } => !op.starts_with("encode") && *op != "test hook",
        _ => false,
    }
}

/// Longest channel, store or order id accepted (as in the redb backend).
const MAX_NAME_LEN: usize = 512;
/// Longest dedupe key accepted.
const MAX_DEDUPE_KEY_LEN: usize = 1024;
/// A claim looks at no fewer than this many due jobs to pick by priority.
const CLAIM_SCAN_MIN: usize = 256;
/// Default cap of one `requeue_dead` call.
const REQUEUE_DEFAULT_LIMIT: usize = 10_000;

fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::Invalid {
        what: what.into(),
        reason: reason.into(),
    }
}

pub(super) fn check_name(
    what: &dyn Fn() -> String,
    field: &str,
    value: &str,
    max: usize,
) -> Result<()> {
    if value.is_empty() {
        return Err(invalid(what(), format!("{field} is empty")));
    }
    if value.len() > max {
        return Err(invalid(
            what(),
            format!("{field} is {} bytes long (at most {max})", value.len()),
        ));
    }
    Ok(())
}

/// Rejects a job the queue cannot hold, naming it.
pub(super) fn validate_new_job(job: &NewJob) -> Result<()> {
    let what = || {
        format!(
            "job {:?} for order {:?} of store {:?} on channel {:?}",
            job.kind.as_str(),
            job.order_id,
            job.store,
            job.channel
        )
    };
    check_name(&what, "channel", job.channel.as_str(), MAX_NAME_LEN)?;
    check_name(&what, "store", &job.store, MAX_NAME_LEN)?;
    check_name(&what, "order id", &job.order_id, MAX_NAME_LEN)?;
    for key in &job.dedupe_keys {
        check_name(&what, "a dedupe key", key, MAX_DEDUPE_KEY_LEN)?;
    }
    if job.max_attempts == 0 {
        return Err(invalid(what(), "max_attempts is 0 (at least 1)"));
    }
    Ok(())
}

fn requeueable(state: JobState) -> bool {
    matches!(
        state,
        JobState::Dead | JobState::Expired | JobState::Cancelled | JobState::Skipped
    )
}

/// Whether `job` really holds dedupe key `key` (see the module docs).
fn holds(job: &Job, key: &str) -> bool {
    job.state != JobState::Cancelled && job.dedupe_keys.iter().any(|held| held == key)
}

/// What the dedupe bucket says about one key.
enum KeySlot {
    Free,
    /// Held (or left over) by this job, at this revision of the key.
    Taken {
        holder: JobId,
        /// The holder's key in the jobs bucket.
        holder_key: String,
        revision: u64,
    },
}

impl Inner {
    fn jobs_bucket(&self) -> String {
        self.names.bucket("jobs")
    }

    fn job_target(&self, id: JobId) -> String {
        format!("bucket {}, job {id}", self.jobs_bucket())
    }

    /// One job, read from the bucket (not the view): the truth to write
    /// against. Its key (`<channel>.<store>.<id>`) comes from this node's
    /// view when the view has the job; otherwise the key pattern
    /// `*.*.<id>` finds it.
    pub(super) async fn load(&self, id: JobId) -> Result<Option<Stored>> {
        let known = self.mirror.read(|view| {
            view.jobs
                .get(&id)
                .map(|stored| keys::job_key(stored.job.channel.as_str(), &stored.job.store, id))
        });
        // From the stream's leader: a direct get may come from a replica
        // that has not applied our own claim yet (watch: issue 15).
        let entry = match known {
            Some(key) => super::follow::leader_entry(&self.buckets.jobs, &key).await,
            None => {
                super::follow::leader_entry_matching(&self.buckets.jobs, &keys::job_key_pattern(id))
                    .await
            }
        }
        .map_err(nats_error(self.job_target(id), "read job"))?;
        self.decode_stored(id, entry)
    }

    /// One job under its known key (a dedupe key's holder).
    async fn load_key(&self, key: &str, id: JobId) -> Result<Option<Stored>> {
        let entry = super::follow::leader_entry(&self.buckets.jobs, key)
            .await
            .map_err(nats_error(self.job_target(id), "read job"))?;
        self.decode_stored(id, entry)
    }

    fn decode_stored(&self, id: JobId, entry: Option<kv::Entry>) -> Result<Option<Stored>> {
        match entry {
            Some(entry) if entry.operation == kv::Operation::Put => {
                let record: JobRecord =
                    serde_json::from_slice(&entry.value).map_err(|error| Error::Corrupt {
                        path: format!("nats:{}/{}", self.jobs_bucket(), entry.key).into(),
                        what: format!("job {id}"),
                        message: error.to_string(),
                    })?;
                Ok(Some(Stored {
                    job: record.job,
                    revision: entry.revision,
                    staged: record.staged,
                }))
            }
            _ => Ok(None),
        }
    }

    /// Encodes `job` as the bucket stores it; `staged`: see [`JobRecord::staged`].
    fn encode_job(&self, job: &Job, staged: bool) -> Result<Bytes> {
        self.encode_record(job, staged, None)
    }

    /// [`Inner::encode_job`] with a fallback intent's key (see [`JobRecord::fallback_key`]).
    fn encode_record(&self, job: &Job, staged: bool, fallback_key: Option<&str>) -> Result<Bytes> {
        serde_json::to_vec(&JobRecordRef {
            job,
            staged,
            fallback_key,
        })
        .map(Bytes::from)
        .map_err(|e| nats_error(self.job_target(job.id), "encode job")(boxed(e)))
    }

    /// Writes `job` if its record is still at `revision`; `false` if another
    /// write came first. Waits until this node's view shows the write. The
    /// written record is never staged: only a poll commit stages, and it
    /// creates its jobs with [`Inner::insert_job`].
    async fn cas_job(&self, job: &Job, revision: u64) -> Result<bool> {
        self.cas_job_fenced(None, job, revision).await
    }

    /// [`Inner::cas_job`], retried through a leader election while this node
    /// holds `scope` (see [`Inner::through_elections`]).
    async fn cas_job_fenced(
        &self,
        scope: Option<Scope<'_>>,
        job: &Job,
        revision: u64,
    ) -> Result<bool> {
        Ok(self.cas_job_at(scope, job, revision).await?.is_some())
    }

    /// [`Inner::cas_job_fenced`], answering the revision written (`None`:
    /// another write came first).
    async fn cas_job_at(
        &self,
        scope: Option<Scope<'_>>,
        job: &Job,
        revision: u64,
    ) -> Result<Option<u64>> {
        self.cas_record_at(scope, job, revision, None).await
    }

    /// [`Inner::cas_job_at`] writing a fallback intent's key with the job.
    async fn cas_record_at(
        &self,
        scope: Option<Scope<'_>>,
        job: &Job,
        revision: u64,
        fallback_key: Option<&str>,
    ) -> Result<Option<u64>> {
        let bytes = self.encode_record(job, false, fallback_key)?;
        let key = keys::job_key(job.channel.as_str(), &job.store, job.id);
        match self
            .through_elections(scope, || {
                self.buckets
                    .jobs
                    .update(key.as_str(), bytes.clone(), revision)
            })
            .await?
        {
            Ok(written) => {
                // Our own write goes into our view at once (watch: issue 15).
                self.mirror.fold_own_job(job, written, false);
                // A claim remembered for its completion is no longer the
                // record (a recovery, a cancel, a fallback intent).
                self.own_writes.forget_claim(job.id);
                if job.state != JobState::Running {
                    self.job_leases.ended(job.id);
                }
                Ok(Some(written))
            }
            Err(error) if error.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
            Err(error) => Err(nats_error(self.job_target(job.id), "update job")(boxed(
                error,
            ))),
        }
    }

    // ----- enqueue -----

    async fn key_slot(&self, key: &str) -> Result<KeySlot> {
        let stored_key = keys::dedupe_key(key);
        // From the stream's leader (watch: issue 15): a lagging replica
        // could name a holder that has released the key.
        let entry = super::follow::leader_entry(&self.buckets.dedupe, &stored_key)
            .await
            .map_err(nats_error(format!("dedupe key {key:?}"), "read dedupe key"))?;
        match entry {
            Some(entry) if entry.operation == kv::Operation::Put => {
                // The holder's job key (layout 2; see `layout.rs`).
                let text = String::from_utf8_lossy(&entry.value).into_owned();
                let holder = keys::job_id_of_key(&text).ok_or_else(|| Error::Corrupt {
                    path: format!("nats:{}/{stored_key}", self.names.bucket("dedupe")).into(),
                    what: format!("dedupe key {key:?}"),
                    message: format!(
                        "{text:?} is no job key (<channel>.<store>.<job id>): a layout-1 value? run `arauto state migrate` with every node stopped"
                    ),
                })?;
                Ok(KeySlot::Taken {
                    holder,
                    holder_key: text,
                    revision: entry.revision,
                })
            }
            _ => Ok(KeySlot::Free),
        }
    }

    /// Enqueues one job, deduplicated by its keys. `with_id` fixes the new
    /// job's id (none: a fresh one); `staged` writes it unclaimable until
    /// [`Inner::release_staged`] (a poll commit's jobs, see [`JobRecord::staged`]);
    /// `fallback_of` names the job it stands in for (written with the job,
    /// so no later write can be missing).
    pub(super) async fn insert_job(
        &self,
        mut new: NewJob,
        with_id: Option<JobId>,
        staged: bool,
        fallback_of: Option<JobId>,
    ) -> Result<EnqueueOutcome> {
        let mut seen = HashSet::with_capacity(new.dedupe_keys.len());
        new.dedupe_keys.retain(|key| seen.insert(key.clone()));
        let now = self.now();
        'attempt: for _ in 0..CAS_ATTEMPTS {
            // 1. Who holds the keys? A live holder makes this a duplicate; a
            //    missing one is our own crashed attempt, whose id we take.
            let mut slots = Vec::with_capacity(new.dedupe_keys.len());
            let mut adopted = None;
            for key in &new.dedupe_keys {
                let slot = self.key_slot(key).await?;
                if let KeySlot::Taken {
                    holder, holder_key, ..
                } = &slot
                {
                    match self.load_key(holder_key, *holder).await? {
                        Some(stored) if holds(&stored.job, key) => {
                            return Ok(EnqueueOutcome::Duplicate(*holder));
                        }
                        Some(_) => {}
                        None => {
                            adopted.get_or_insert(*holder);
                        }
                    }
                }
                slots.push(slot);
            }
            let id = adopted.or(with_id).unwrap_or_else(|| self.next_id(now));
            let job_key = keys::job_key(new.channel.as_str(), &new.store, id);
            // 2. Take every key for `id`.
            for (key, slot) in new.dedupe_keys.iter().zip(&slots) {
                let stored_key = keys::dedupe_key(key);
                let value = Bytes::from(job_key.clone());
                let taken = match slot {
                    KeySlot::Free => self
                        .through_elections(
                            staged.then_some(Scope::Store(new.store.as_str())),
                            || {
                                self.buckets
                                    .dedupe
                                    .create(stored_key.as_str(), value.clone())
                            },
                        )
                        .await?
                        .map(|_| ())
                        .map_err(|e| (e.kind() == kv::CreateErrorKind::AlreadyExists, boxed(e))),
                    KeySlot::Taken {
                        holder, holder_key, ..
                    } if *holder == id && *holder_key == job_key => Ok(()),
                    KeySlot::Taken { revision, .. } => self
                        .buckets
                        .dedupe
                        .update(stored_key.as_str(), value, *revision)
                        .await
                        .map(|_| ())
                        .map_err(|e| {
                            (e.kind() == kv::UpdateErrorKind::WrongLastRevision, boxed(e))
                        }),
                };
                match taken {
                    Ok(()) => {}
                    // Someone else took it meanwhile: look again.
                    Err((true, _)) => continue 'attempt,
                    Err((false, error)) => {
                        return Err(
                            nats_error(format!("dedupe key {key:?}"), "take dedupe key")(error),
                        );
                    }
                }
            }
            if self.crash_point(super::PollStep::DedupeKeys) {
                return Err(super::poll::crashed(super::PollStep::DedupeKeys));
            }
            // 3. The job itself.
            let job = Job {
                id,
                channel: new.channel.clone(),
                store: new.store.clone(),
                order_id: new.order_id.clone(),
                priority: new.priority,
                state: JobState::Pending,
                created_at: now,
                due_at: new.due_at,
                expires_at: new.expires_at,
                attempt: 0,
                max_attempts: new.max_attempts,
                claims: 0,
                lease_until: None,
                last_error: None,
                attempts_log: Vec::new(),
                finished_at: None,
                outcome_reason: None,
                receipt: None,
                dedupe_keys: new.dedupe_keys.clone(),
                fell_back_to: None,
                fallback_of,
                body: JobBody::Readable {
                    kind: new.kind,
                    payload: new.payload.clone(),
                },
            };
            let bytes = self.encode_job(&job, staged)?;
            // A poll commit's job is written for the store this node polls.
            let scope = staged.then_some(Scope::Store(new.store.as_str()));
            match self
                .through_elections(scope, || {
                    self.buckets.jobs.create(job_key.as_str(), bytes.clone())
                })
                .await?
            {
                // Our own write goes into our view at once (watch: issue 15).
                Ok(written) => self.mirror.fold_own_job(&job, written, staged),
                // Another writer adopted the same crashed attempt first.
                Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => {
                    return Ok(EnqueueOutcome::Duplicate(id));
                }
                Err(error) => {
                    return Err(nats_error(self.job_target(id), "create job")(boxed(error)));
                }
            }
            self.publish_history(&job, Outcome::Entered, now, format!("{id}.entered"))
                .await?;
            return Ok(EnqueueOutcome::Inserted(id));
        }
        Err(conflict(format!(
            "dedupe keys of order {:?} of store {:?}",
            new.order_id, new.store
        )))
    }

    /// Frees the dedupe keys `job` holds (only those still naming it).
    async fn release_keys(&self, job: &Job) -> Result<()> {
        for key in &job.dedupe_keys {
            if let KeySlot::Taken {
                holder, revision, ..
            } = self.key_slot(key).await?
                && holder == job.id
            {
                let stored_key = keys::dedupe_key(key);
                match self
                    .buckets
                    .dedupe
                    .purge_expect_revision(stored_key.as_str(), Some(revision))
                    .await
                {
                    Ok(()) => {}
                    // Taken over meanwhile: no longer ours to free.
                    Err(error) if error.kind() == kv::UpdateErrorKind::WrongLastRevision => {}
                    Err(error) => {
                        return Err(
                            nats_error(format!("dedupe key {key:?}"), "free dedupe key")(boxed(
                                error,
                            )),
                        );
                    }
                }
            }
        }
        Ok(())
    }

    /// Makes every staged job of `store` claimable: the ones the running poll
    /// commit wrote and any an earlier commit of the store left staged when
    /// it stopped. Called once the commit's order records are written, so
    /// every such job's record exists: the earlier commit either wrote its
    /// records before stopping or planned the same jobs again in this commit
    /// (same dedupe keys, so adopted or found as duplicates), whose records
    /// are now written. Asks the fence before every write.
    pub(super) async fn release_staged(&self, store: &str) -> Result<usize> {
        let staged: Vec<Stored> = self
            .mirror
            .read(|view| view.staged_jobs(store).into_iter().cloned().collect());
        let mut released = 0;
        'jobs: for mut stored in staged {
            for _ in 0..CAS_ATTEMPTS {
                // Released by someone else, or no longer there: nothing to do.
                if !stored.staged {
                    continue 'jobs;
                }
                self.fenced(Scope::Store(store))?;
                if self
                    .cas_job_fenced(Some(Scope::Store(store)), &stored.job, stored.revision)
                    .await?
                {
                    released += 1;
                    continue 'jobs;
                }
                match self.load(stored.job.id).await? {
                    Some(fresh) => stored = fresh,
                    None => continue 'jobs,
                }
            }
            return Err(conflict(format!(
                "release of staged job {} of store {store:?}",
                stored.job.id
            )));
        }
        Ok(released)
    }

    /// Stops a fallback completion after `step` if the test hook asks.
    fn fallback_checkpoint(&self, step: FallbackStep) -> Result<()> {
        let hooked = *self
            .crash_after_fallback
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if hooked != Some(step) {
            return Ok(());
        }
        Err(Error::Nats {
            target: format!("fallback completion, step {step:?}"),
            op: "test hook",
            source: std::sync::Arc::new(std::io::Error::other(
                "stopped as the test asked (a simulated crash)",
            )),
        })
    }

    // ----- claim -----

    pub(super) async fn claim(
        &self,
        channel: &str,
        now: Timestamp,
        max: usize,
        lease: SignedDuration,
    ) -> Result<Vec<Job>> {
        let what = || format!("claim on channel {channel:?}");
        if lease.is_negative() {
            return Err(invalid(what(), format!("the lease {lease:#} is negative")));
        }
        let lease_until = now.checked_add(lease).map_err(|error| {
            invalid(what(), format!("the lease {lease:#} is too long: {error}"))
        })?;
        self.fenced(Scope::Channel(channel))?;
        if max == 0 || self.channel_paused(channel).await? {
            return Ok(Vec::new());
        }
        self.recover(channel, now, Some(lease)).await?;
        let window = max.saturating_mul(4).max(CLAIM_SCAN_MIN);
        let mut due: Vec<Stored> = self.mirror.read(|view| {
            view.active_jobs(channel)
                .into_iter()
                .filter(|stored| {
                    !stored.staged
                        && stored.job.state == JobState::Pending
                        && stored.job.due_at <= now
                })
                .cloned()
                .collect()
        });
        due.sort_by_key(|stored| (stored.job.due_at, stored.job.id));
        due.truncate(window);
        let (stale, mut candidates): (Vec<Stored>, Vec<Stored>) = due
            .into_iter()
            .partition(|stored| stored.job.expires_at.is_some_and(|at| at <= now));
        for stored in stale {
            self.fenced(Scope::Channel(channel))?;
            self.expire(stored, now).await?;
        }
        candidates.sort_by_key(|stored| (stored.job.priority, stored.job.due_at, stored.job.id));
        let mut claimed = Vec::with_capacity(max.min(candidates.len()));
        for mut stored in candidates {
            if claimed.len() >= max {
                break;
            }
            // One re-read if the view was behind; then leave it to the next claim.
            for _ in 0..2 {
                let job = &stored.job;
                if stored.staged || job.state != JobState::Pending || job.due_at > now {
                    break;
                }
                // Asked before every write: a claim is many round trips.
                self.fenced(Scope::Channel(channel))?;
                if job.expires_at.is_some_and(|at| at <= now) {
                    self.expire(stored, now).await?;
                    break;
                }
                let mut running = job.clone();
                running.state = JobState::Running;
                running.attempt = running.attempt.saturating_add(1);
                running.claims = running.claims.saturating_add(1);
                running.lease_until = Some(lease_until);
                if let Some(written) = self
                    .cas_job_at(Some(Scope::Channel(channel)), &running, stored.revision)
                    .await?
                {
                    self.own_writes.remember_claim(&running, written);
                    self.job_leases.claimed(running.id, running.claims);
                    claimed.push(running);
                    break;
                }
                match self.load(stored.job.id).await? {
                    Some(fresh) => stored = fresh,
                    None => break,
                }
            }
        }
        Ok(claimed)
    }

    async fn channel_paused(&self, channel: &str) -> Result<bool> {
        Ok(self
            .read_json::<ChannelStatus>(
                &self.buckets.channels,
                &self.names.bucket("channels"),
                &keys::channel_key(channel),
                &|| format!("status of channel {channel:?}"),
            )
            .await?
            .is_some_and(|(status, _)| status.paused.is_some()))
    }

    async fn expire(&self, stored: Stored, now: Timestamp) -> Result<()> {
        let mut job = stored.job;
        let reason = match job.expires_at {
            Some(at) => format!("expired at {at} before it could be delivered"),
            None => "expired before it could be delivered".to_owned(),
        };
        job.finish(JobState::Expired, now, Some(reason));
        if self.cas_job(&job, stored.revision).await? {
            self.count_terminal(&job).await?;
        }
        Ok(())
    }

    /// Running jobs of `channel` whose lease ended by `now` become pending
    /// (due now) or dead after their last attempt.
    /// `lease`: the channel's lease length, which a claim of another
    /// process must have been watched for (see `leases.rs`; `None`, a
    /// tool's call: its `lease_until` is compared with `now`).
    pub(super) async fn recover(
        &self,
        channel: &str,
        now: Timestamp,
        lease: Option<SignedDuration>,
    ) -> Result<usize> {
        self.give_back_running(channel, now, false, lease).await
    }

    /// [`crate::queue::StateStore::take_over_channel`]: every running job of
    /// the channel back to pending, whatever its lease says. Fenced on the
    /// channel before every write.
    pub(super) async fn take_over(&self, channel: &str, now: Timestamp) -> Result<usize> {
        self.give_back_running(channel, now, true, None).await
    }

    /// Running jobs of `channel` whose lease ended (all of them when
    /// `taken_over`) back to pending due at `now`, or dead after their last
    /// attempt. Whether a lease ended is judged without comparing two
    /// nodes' clocks (`leases.rs`).
    async fn give_back_running(
        &self,
        channel: &str,
        now: Timestamp,
        taken_over: bool,
        lease: Option<SignedDuration>,
    ) -> Result<usize> {
        let running: Vec<Stored> = self.mirror.read(|view| {
            view.active_jobs(channel)
                .into_iter()
                .filter(|stored| stored.job.state == JobState::Running)
                .cloned()
                .collect()
        });
        let claims: Vec<(JobId, u32)> = running
            .iter()
            .map(|stored| (stored.job.id, stored.job.claims))
            .collect();
        let ids: HashSet<JobId> = claims.iter().map(|(id, _)| *id).collect();
        let of_channel = |id: JobId| {
            ids.contains(&id)
                || self.mirror.read(|view| {
                    view.jobs
                        .get(&id)
                        .is_none_or(|stored| stored.job.channel.as_str() == channel)
                })
        };
        self.job_leases.keep_foreign(&claims, &of_channel);
        let expired: Vec<Stored> = running
            .into_iter()
            .filter(|stored| {
                // A claim of this process whose completion is being written
                // was sent: not even a take-over (this node losing and
                // regaining the channel meanwhile) returns it.
                !self.job_leases.is_completing(&stored.job)
                    && (taken_over || self.job_leases.expired(&stored.job, now, lease))
            })
            .collect();
        let mut recovered = 0;
        for stored in expired {
            if let Some(fallback_id) = stored.job.fell_back_to {
                self.fenced(Scope::Channel(channel))?;
                if self
                    .finish_fallback_intent(stored, fallback_id, now)
                    .await?
                {
                    recovered += 1;
                }
                continue;
            }
            let mut job = stored.job;
            let note = if taken_over {
                "the channel was taken over from a dispatcher that is gone: the delivery may have crashed"
            } else {
                "the lease expired: the delivery crashed or timed out"
            }
            .to_owned();
            job.attempt_stopped(now, note, "the delivery crashed or timed out");
            self.fenced(Scope::Channel(channel))?;
            if self.cas_job(&job, stored.revision).await? {
                recovered += 1;
                self.count_terminal(&job).await?;
            }
        }
        Ok(recovered)
    }

    /// Ends a running job whose completion stopped between its fallback
    /// intent and its end (see [`Inner::complete`]): if the fallback job
    /// exists, the job ends as fallen back to it; if not, a cancelled
    /// placeholder takes the fallback's id with `create` (so the stopped
    /// completion, should it go on, finds it there and inserts nothing), and
    /// the job is retried on its own channel. True if the job changed.
    async fn finish_fallback_intent(
        &self,
        stored: Stored,
        fallback_id: JobId,
        now: Timestamp,
    ) -> Result<bool> {
        // The key the intent names for its fallback (read with the intent:
        // the view keeps the job, not the backend's flags).
        let own_key = keys::job_key(
            stored.job.channel.as_str(),
            &stored.job.store,
            stored.job.id,
        );
        let intent = super::follow::leader_entry(&self.buckets.jobs, &own_key)
            .await
            .map_err(nats_error(self.job_target(stored.job.id), "read job"))?;
        let Some(intent) = intent.filter(|entry| {
            entry.operation == kv::Operation::Put && entry.revision == stored.revision
        }) else {
            // Changed since the view's copy: the next recovery looks again.
            return Ok(false);
        };
        let fallback_key = serde_json::from_slice::<JobRecord>(&intent.value)
            .ok()
            .and_then(|record| record.fallback_key)
            // An intent of layout 1 (migrated while every node was stopped,
            // so no completion is racing this recovery).
            .unwrap_or_else(|| {
                keys::job_key(stored.job.channel.as_str(), &stored.job.store, fallback_id)
            });
        let mut job = stored.job;
        let fallback = match self.load_key(&fallback_key, fallback_id).await? {
            Some(fallback) => Some(fallback.job),
            None => {
                let mut placeholder = job.clone();
                placeholder.id = fallback_id;
                // It stands in for the fallback: on its channel, under its key.
                let mut tokens = fallback_key.split('.').map(keys::unescape);
                if let (Some(Some(channel)), Some(Some(store))) = (tokens.next(), tokens.next()) {
                    placeholder.channel = channel.into();
                    placeholder.store = store;
                }
                placeholder.state = JobState::Pending;
                placeholder.claims = 0;
                placeholder.attempt = 0;
                placeholder.lease_until = None;
                placeholder.attempts_log.clear();
                placeholder.dedupe_keys.clear();
                placeholder.fell_back_to = None;
                placeholder.fallback_of = Some(job.id);
                placeholder.finish(
                    JobState::Cancelled,
                    now,
                    Some(format!(
                        "{PLACEHOLDER}: the fallback of job {} was never inserted (its dispatcher stopped first); job {} is retried instead",
                        job.id, job.id
                    )),
                );
                let bytes = self.encode_job(&placeholder, false)?;
                match self.buckets.jobs.create(fallback_key.as_str(), bytes).await {
                    Ok(written) => {
                        // Our own write goes into our view at once.
                        self.mirror.fold_own_job(&placeholder, written, false);
                        None
                    }
                    // The stopped completion inserted it after all.
                    Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => self
                        .load_key(&fallback_key, fallback_id)
                        .await?
                        .map(|fallback| fallback.job),
                    Err(error) => {
                        return Err(nats_error(self.job_target(fallback_id), "create job")(
                            boxed(error),
                        ));
                    }
                }
            }
        };
        match fallback {
            Some(fallback)
                if fallback.fallback_of == Some(job.id) && !is_placeholder(&fallback) =>
            {
                let reason = job
                    .last_error
                    .clone()
                    .unwrap_or_else(|| "its dispatcher stopped while falling back".to_owned());
                let channel = fallback.channel.to_string();
                fell_back(&mut job, now, reason, &channel, "as job", fallback.id);
                if !self.cas_job(&job, stored.revision).await? {
                    return Ok(false);
                }
                self.count_terminal(&job).await?;
                let day = self.day_date(now);
                let own_channel = job.channel.to_string();
                self.update_channel(&own_channel, &mut |status: &mut ChannelStatus| {
                    record_fallback(status, day, &channel);
                })
                .await?;
                Ok(true)
            }
            // No fallback (a placeholder now holds its id): retried here.
            _ => {
                let note = format!(
                    "the dispatcher stopped before inserting fallback job {fallback_id}: retried on this channel"
                );
                job.fell_back_to = None;
                job.attempt_stopped(now, note, "the delivery stopped");
                if !self.cas_job(&job, stored.revision).await? {
                    return Ok(false);
                }
                self.count_terminal(&job).await?;
                Ok(true)
            }
        }
    }

    // ----- completion -----

    fn running_job(stored: &Stored, claim: Claim) -> Result<()> {
        let job = &stored.job;
        if job.state != JobState::Running {
            return Err(Error::NotRunning {
                id: job.id,
                channel: job.channel.clone(),
                state: job.state,
            });
        }
        if job.claims != claim.claim {
            return Err(Error::StaleClaim {
                id: job.id,
                channel: job.channel.clone(),
                presented: claim.claim,
                current: job.claims,
            });
        }
        Ok(())
    }

    /// Records how a claimed job ended ([`crate::queue::StateStore::complete`]).
    ///
    /// The send this records has already happened, so a completion that
    /// cannot be written (a nats-server lost while its stream's leader
    /// moves: the write times out, finds no leader, or its connection drops)
    /// is tried again until it lands or is refused, for at most
    /// [`COMPLETION_RETRY_LIMIT`]. Given up at once, the job stayed running
    /// under this node's claim, and this node's own lease recovery sent it
    /// again once the claim's lease ended (docs/cluster.md, "A completion
    /// outlives a lost nats-server"). While it is tried, this process
    /// neither recovers nor takes over that claim
    /// ([`JobLeases::completing`]). The tries need no fence: each is a
    /// compare-and-set under this claim's number, so once another node
    /// recovered or re-claimed the job, the next try is refused (stale
    /// claim). A write whose answer was lost but which landed is recognised
    /// on the next try: the record is exactly the job that try wrote.
    ///
    /// After that limit the caller gets the error (the dispatcher goes on),
    /// and the completion goes on in a task of its own, with pauses growing
    /// to [`COMPLETION_BACKGROUND_PAUSE`], until it lands or is refused:
    /// meanwhile this process still neither recovers nor takes over the
    /// claim, so a cluster unwritable for minutes does not make this node
    /// send the job again once it answers ([`Inner::complete_later`]). Only
    /// a stop of the process (or another node taking the channel over)
    /// leaves the job to its lease.
    pub(super) async fn complete(
        self: &Arc<Self>,
        claim: Claim,
        completion: Completion,
    ) -> Result<Completed> {
        let completing = self.job_leases.completing(claim);
        // Review #4: the channel's pacing counts a send before the job's
        // record says sent, once per call (not per conflict retry).
        let mut progress = CompletionProgress {
            send_counted: false,
            // The first try writes against the record this node's claim
            // wrote (no read: a compare-and-set on that revision succeeds
            // only if nothing changed since, so the checks below decide on
            // the truth); a conflict re-reads from the stream's leader, as
            // every try did. Only while this node holds the channel: no
            // other node can have recovered or re-claimed the job meanwhile.
            own_claim: self.own_writes.take_claim(claim).filter(|stored| {
                self.fence
                    .holds(Scope::Channel(stored.job.channel.as_str()))
            }),
            final_write: None,
        };
        let channel = progress
            .own_claim
            .as_ref()
            .map(|stored| stored.job.channel.to_string())
            .or_else(|| {
                self.mirror.read(|view| {
                    view.jobs
                        .get(&claim.id)
                        .map(|stored| stored.job.channel.to_string())
                })
            });
        let started = tokio::time::Instant::now();
        let mut tries: u32 = 0;
        loop {
            let error = match self.complete_try(claim, &completion, &mut progress).await {
                Err(error) if completion_may_retry(&error) => error,
                result => return result,
            };
            if started.elapsed() >= self.completion_retry_limit() {
                tracing::warn!(
                    job_id = %claim.id, channel = channel.as_deref().unwrap_or("?"),
                    "the outcome of job {} could not be recorded for {:?} ({error}); \
                     still trying, in the background",
                    claim.id,
                    self.completion_retry_limit()
                );
                let (inner, completing) = (Arc::clone(self), completing.again());
                tokio::spawn(async move {
                    inner
                        .complete_later(claim, completion, progress, completing)
                        .await;
                });
                return Err(error);
            }
            // One WARN per completion: an election lasts seconds, and a line
            // per 250 ms try would flood the journal with the same news.
            if tries == 0 {
                tracing::warn!(
                    job_id = %claim.id, channel = channel.as_deref().unwrap_or("?"),
                    "the outcome of job {} could not be recorded ({error}); trying again",
                    claim.id
                );
            } else {
                tracing::debug!(
                    job_id = %claim.id, tries,
                    "the outcome of job {} still could not be recorded ({error})",
                    claim.id
                );
            }
            tries += 1;
            // A pause between tries, not a synchronisation: a stream's
            // leader election takes seconds.
            tokio::time::sleep(COMPLETION_RETRY_PAUSE).await;
        }
    }

    /// The tries of a completion after [`Inner::complete`] gave up waiting
    /// for it, in a task of its own; `completing` keeps its claim from
    /// ending for this process until it lands or is refused.
    async fn complete_later(
        self: Arc<Self>,
        claim: Claim,
        completion: Completion,
        mut progress: CompletionProgress,
        completing: super::leases::Completing,
    ) {
        let mut pause = COMPLETION_RETRY_PAUSE;
        loop {
            // A pause between tries, not a synchronisation.
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(COMPLETION_BACKGROUND_PAUSE);
            match self.complete_try(claim, &completion, &mut progress).await {
                Ok(done) => {
                    tracing::info!(
                        job_id = %claim.id,
                        "the outcome of job {} is recorded after all ({:?})",
                        claim.id,
                        done.job.state
                    );
                    break;
                }
                Err(error) if completion_may_retry(&error) => {
                    tracing::debug!(
                        job_id = %claim.id,
                        "the outcome of job {} still could not be recorded ({error})",
                        claim.id
                    );
                }
                Err(error) => {
                    tracing::warn!(
                        job_id = %claim.id,
                        "the outcome of job {} cannot be recorded: {error}",
                        claim.id
                    );
                    break;
                }
            }
        }
        drop(completing);
    }

    /// How long [`Inner::complete`] tries before the caller gets the error
    /// ([`COMPLETION_RETRY_LIMIT`], or a test's).
    fn completion_retry_limit(&self) -> std::time::Duration {
        std::time::Duration::from_millis(
            self.completion_retry_limit_ms
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// One try of [`Inner::complete`]; `progress` carries what earlier
    /// tries did.
    async fn complete_try(
        &self,
        claim: Claim,
        completion: &Completion,
        progress: &mut CompletionProgress,
    ) -> Result<Completed> {
        for _ in 0..CAS_ATTEMPTS {
            let stored = match progress.own_claim.take() {
                Some(stored) => stored,
                None => self
                    .load(claim.id)
                    .await?
                    .ok_or(Error::NotFound { id: claim.id })?,
            };
            // Not fenced: the send this records has already happened (or
            // been given up), and refusing its record would leave the job
            // Running until recovery sends it again. The claim number and the
            // CAS on the job's revision already refuse a stale claim: once
            // another node recovered or re-claimed the job, this fails.
            // The last try's final write landed though its answer was lost
            // (or what follows it failed): what follows it is all that is
            // left.
            // Kept, not taken: if what follows fails again, the try after
            // this one needs it as much.
            if let Some(written) = progress
                .final_write
                .as_ref()
                .filter(|written| written.job == stored.job)
                .cloned()
            {
                self.own_writes.forget_claim(claim.id);
                if written.job.state != JobState::Running {
                    self.job_leases.ended(claim.id);
                }
                return self.after_completion(written).await;
            }
            Self::running_job(&stored, claim)?;
            let mut job = stored.job.clone();
            if let Completion::FellBack { fallback, .. } = &completion {
                validate_new_job(fallback)?;
                if fallback.store != job.store || fallback.order_id != job.order_id {
                    return Err(invalid(
                        format!("fallback of job {}", job.id),
                        format!(
                            "it must notify the same store and order ({}/{}), not {}/{}",
                            job.store, job.order_id, fallback.store, fallback.order_id
                        ),
                    ));
                }
            }
            let now = self.now();
            let mut fallback_inserted = None;
            let mut fell_back_on = None;
            // The provider took the message: the channel's daily count and
            // pacing include it before the record does, so a stop between
            // the two writes leaves the count one over (the cap errs on the
            // safe side), never one short, whoever completes the job later.
            if let Completion::Sent { at, pacing_day, .. } = &completion
                && !progress.send_counted
            {
                let (at, pacing_day) = (*at, *pacing_day);
                self.update_channel(job.channel.as_str(), &mut |status: &mut ChannelStatus| {
                    record_send(status, at, pacing_day);
                })
                .await?;
                progress.send_counted = true;
            }
            // The revision the final write compares against: the one read,
            // or the fallback intent's.
            let mut revision = stored.revision;
            if let Some((reason, fallback)) = job.apply_completion(completion.clone(), now) {
                // Review #3: the fallback may exist only if this claim's
                // transition wins. So first the intent: the job, still
                // running under this claim, names its fallback's id (a
                // compare-and-set: a stale claim stops here, nothing
                // inserted). Then the fallback is inserted under that id,
                // then the job ends. A stop in between is finished by the
                // lease recovery (`give_back_running`): the fallback exists,
                // or a placeholder takes its id so it never will.
                let fallback_id = self.next_id(now);
                let fallback_key =
                    keys::job_key(fallback.channel.as_str(), &fallback.store, fallback_id);
                let mut intent = job.clone();
                intent.fell_back_to = Some(fallback_id);
                intent.log_attempt(now, format!("falling back as job {fallback_id}"));
                let Some(written) = self
                    .cas_record_at(None, &intent, stored.revision, Some(&fallback_key))
                    .await?
                else {
                    continue;
                };
                revision = written;
                job = intent;
                self.fallback_checkpoint(FallbackStep::Intent)?;
                let fallback_channel = fallback.channel.to_string();
                match self
                    .insert_job(*fallback, Some(fallback_id), false, Some(job.id))
                    .await?
                {
                    EnqueueOutcome::Inserted(id) => {
                        fell_back(&mut job, now, reason, &fallback_channel, "as job", id);
                        fallback_inserted = Some(id);
                        fell_back_on = Some(fallback_channel);
                    }
                    EnqueueOutcome::Duplicate(holder) => {
                        let holder_state = self.load(holder).await?.map(|held| held.job.state);
                        match holder_state {
                            Some(JobState::Pending | JobState::Running | JobState::Sent) => {
                                fell_back(
                                    &mut job,
                                    now,
                                    reason,
                                    &fallback_channel,
                                    "already planned there as job",
                                    holder,
                                );
                            }
                            ended => job.fallback_already_ended(
                                now,
                                reason,
                                &fallback_channel,
                                holder,
                                ended,
                            ),
                        }
                    }
                }
            }
            if fallback_inserted.is_some() {
                self.fallback_checkpoint(FallbackStep::Inserted)?;
            }
            let written = FinalWrite {
                job,
                fallback_inserted,
                fell_back_on,
                at: now,
            };
            // Kept for the next try: if this write's answer is lost, or
            // what follows it fails, that try finds the record as written
            // and goes on from there.
            progress.final_write = Some(written.clone());
            if !self.cas_job(&written.job, revision).await? {
                // Changed since we read it (a lease recovery by a claim):
                // read again, which reports the stale claim.
                progress.final_write = None;
                continue;
            }
            return self.after_completion(written).await;
        }
        Err(conflict(self.job_target(claim.id)))
    }

    /// What follows a completion's final write: its outcome counted, and a
    /// fallback in the channel's status. Both may run again if a try failed
    /// after the write (the outcome's message id makes a repeat a no-op).
    async fn after_completion(&self, written: FinalWrite) -> Result<Completed> {
        let FinalWrite {
            job,
            fallback_inserted,
            fell_back_on,
            at,
        } = written;
        self.count_terminal(&job).await?;
        if let Some(fallback_channel) = fell_back_on {
            let day = self.day_date(at);
            self.update_channel(job.channel.as_str(), &mut |status: &mut ChannelStatus| {
                record_fallback(status, day, &fallback_channel);
            })
            .await?;
        }
        Ok(Completed {
            job,
            fallback_inserted,
        })
    }

    fn day_date(&self, at: Timestamp) -> jiff::civil::Date {
        self.time_zone
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .to_datetime(at)
            .date()
    }

    // ----- operator writes -----

    pub(super) async fn cancel_one(&self, id: JobId, reason: &str) -> Result<CancelOutcome> {
        for _ in 0..CAS_ATTEMPTS {
            let Some(stored) = self.load(id).await? else {
                return Ok(CancelOutcome::NotFound);
            };
            if stored.job.state != JobState::Pending {
                return Ok(CancelOutcome::NotPending(stored.job.state));
            }
            let mut job = stored.job;
            job.finish(JobState::Cancelled, self.now(), Some(reason.to_owned()));
            if !self.cas_job(&job, stored.revision).await? {
                continue;
            }
            self.count_terminal(&job).await?;
            // A cancelled notification was never sent: its keys are freed
            // (see `StateStore`), and so are those of the unsent jobs that
            // fell back to it, up the chain.
            self.release_keys(&job).await?;
            self.release_fallback_chain(&job, reason).await?;
            return Ok(CancelOutcome::Cancelled);
        }
        Err(conflict(self.job_target(id)))
    }

    async fn release_fallback_chain(&self, cancelled: &Job, reason: &str) -> Result<()> {
        let mut child = cancelled.id;
        let mut next = cancelled.fallback_of;
        let mut seen = vec![cancelled.id];
        while let Some(id) = next.filter(|id| !seen.contains(id)) {
            seen.push(id);
            let Some(stored) = self.load(id).await? else {
                break;
            };
            let mut original = stored.job;
            if original.state != JobState::Skipped || original.fell_back_to != Some(child) {
                break;
            }
            let held = original.clone();
            original.dedupe_keys.clear();
            original.log_attempt(
                self.now(),
                format!("keys released: its fallback job {child} was cancelled ({reason})"),
            );
            // The record first: once it lists no keys, they count as free
            // even if freeing them below does not happen.
            if !self.cas_job(&original, stored.revision).await? {
                break;
            }
            self.release_keys(&held).await?;
            child = original.id;
            next = original.fallback_of;
        }
        Ok(())
    }

    pub(super) async fn requeue_one(&self, id: JobId) -> Result<RequeueOutcome> {
        for _ in 0..CAS_ATTEMPTS {
            let Some(stored) = self.load(id).await? else {
                return Ok(RequeueOutcome::NotFound);
            };
            if !requeueable(stored.job.state) {
                return Ok(RequeueOutcome::NotRequeueable(stored.job.state));
            }
            if let Some(fallback) = stored.job.fell_back_to {
                return Ok(RequeueOutcome::FellBack(fallback));
            }
            if self.requeue_job(stored).await? {
                return Ok(RequeueOutcome::Requeued);
            }
        }
        Err(conflict(self.job_target(id)))
    }

    async fn requeue_job(&self, stored: Stored) -> Result<bool> {
        let now = self.now();
        let mut job = stored.job;
        let was = job.state;
        job.state = JobState::Pending;
        job.due_at = now;
        job.attempt = 0;
        job.expires_at = None;
        job.finished_at = None;
        job.outcome_reason = None;
        job.lease_until = None;
        job.log_attempt(now, format!("requeued by an operator (was {was})"));
        self.cas_job(&job, stored.revision).await
    }

    pub(super) async fn requeue_dead(&self, filter: JobFilter) -> Result<Vec<JobId>> {
        let states: &[JobState] = match filter.state {
            None => &[JobState::Dead, JobState::Expired],
            Some(JobState::Dead) => &[JobState::Dead],
            Some(JobState::Expired) => &[JobState::Expired],
            Some(other) => {
                return Err(invalid(
                    "requeue of dead jobs",
                    format!("the state filter is {other}; only dead or expired jobs are requeued"),
                ));
            }
        };
        let limit = filter.limit.unwrap_or(REQUEUE_DEFAULT_LIMIT);
        let unfiltered_state = JobFilter {
            state: None,
            ..filter.clone()
        };
        let mut found: Vec<Stored> = self.mirror.read(|view| {
            view.jobs
                .values()
                .filter(|stored| {
                    states.contains(&stored.job.state)
                        && stored.job.fell_back_to.is_none()
                        && unfiltered_state.matches(&stored.job)
                })
                .cloned()
                .collect()
        });
        found.sort_by_key(|stored| (stored.job.finished_at, stored.job.id));
        found.truncate(limit);
        let mut requeued = Vec::with_capacity(found.len());
        for stored in found {
            let id = stored.job.id;
            // The view may be behind: a conflict re-reads the job once.
            let done = self.requeue_job(stored).await?
                || self.requeue_one(id).await? == RequeueOutcome::Requeued;
            if done {
                requeued.push(id);
            }
        }
        Ok(requeued)
    }

    pub(super) async fn purge(&self, filter: PurgeFilter) -> Result<usize> {
        if let Some(state) = filter.states.iter().find(|state| !state.is_terminal()) {
            return Err(invalid(
                "purge filter",
                format!("{state} jobs are not finished and cannot be purged"),
            ));
        }
        if filter.limit == 0 {
            return Ok(0);
        }
        let states: Vec<JobState> = if filter.states.is_empty() {
            JobState::TERMINAL.to_vec()
        } else {
            filter.states.clone()
        };
        let mut victims: Vec<Stored> = self.mirror.read(|view| {
            view.jobs
                .values()
                .filter(|stored| {
                    states.contains(&stored.job.state)
                        && stored
                            .job
                            .finished_at
                            .is_some_and(|at| at < filter.finished_before)
                })
                .cloned()
                .collect()
        });
        victims.sort_by_key(|stored| (stored.job.finished_at, stored.job.id));
        victims.truncate(filter.limit);
        let mut deleted = 0;
        for stored in victims {
            // Keys first: a purge that stops in between leaves a finished
            // job without keys (freed a little early), never keys without a
            // job that a later enqueue would take for a crashed attempt of its own.
            self.release_keys(&stored.job).await?;
            match self
                .buckets
                .jobs
                .purge_expect_revision(
                    keys::job_key(
                        stored.job.channel.as_str(),
                        &stored.job.store,
                        stored.job.id,
                    ),
                    Some(stored.revision),
                )
                .await
            {
                Ok(()) => deleted += 1,
                Err(error) if error.kind() == kv::UpdateErrorKind::WrongLastRevision => {}
                Err(error) => {
                    return Err(nats_error(self.job_target(stored.job.id), "delete job")(
                        boxed(error),
                    ));
                }
            }
        }
        if deleted > 0 {
            // Wait until this node's view has dropped them too (a purge
            // does not answer with its revision; the bucket's last one is
            // at least as new; asked of the server, `kv::Store::status` is
            // the state cached when the bucket was bound).
            let state = self.bucket_state(&self.jobs_bucket()).await?;
            self.mirror.await_jobs(state.last_sequence).await;
        }
        Ok(deleted)
    }

    // ----- reads -----

    pub(super) fn list(&self, filter: &JobFilter) -> Vec<Job> {
        let mut jobs: Vec<Job> = self.mirror.read(|view| {
            view.jobs
                .values()
                .filter(|stored| filter.matches(&stored.job))
                .map(|stored| stored.job.clone())
                .collect()
        });
        match filter.state {
            Some(JobState::Pending) => jobs.sort_by_key(|job| (job.due_at, job.id)),
            Some(JobState::Running) => jobs.sort_by_key(|job| (job.lease_until, job.id)),
            Some(_) => jobs.sort_by_key(|job| std::cmp::Reverse((job.finished_at, job.id))),
            None => jobs.sort_by_key(|job| std::cmp::Reverse(job.id)),
        }
        if let Some(limit) = filter.limit {
            jobs.truncate(limit);
        }
        jobs
    }

    pub(super) async fn keys(&self, bucket: &kv::Store, what: &str) -> Result<Vec<String>> {
        let name = self.names.bucket(what);
        let listed = bucket
            .keys()
            .await
            .map_err(|e| nats_error(format!("bucket {name}"), "list keys")(boxed(e)))?;
        listed
            .try_collect()
            .await
            .map_err(|e| nats_error(format!("bucket {name}"), "list keys")(boxed(e)))
    }

    // ----- statuses -----

    pub(super) async fn put_store_status(&self, store: &str, status: &StoreStatus) -> Result<()> {
        check_name(&|| "store status".to_owned(), "store", store, MAX_NAME_LEN)?;
        let bytes = serde_json::to_vec(status)
            .map_err(|e| nats_error(format!("status of store {store:?}"), "encode")(boxed(e)))?;
        // Compare-and-set on what the store's poll read (`reads.rs`).
        self.write_polled(
            store,
            super::reads::PollRecord::Status,
            &self.buckets.stores,
            &self.names.bucket("stores"),
            &keys::store_key(store),
            Some(bytes),
        )
        .await
    }

    pub(super) async fn update_store_status(
        &self,
        store: &str,
        update: &mut (dyn FnMut(&mut StoreStatus) + Send),
    ) -> Result<StoreStatus> {
        check_name(&|| "store status".to_owned(), "store", store, MAX_NAME_LEN)?;
        let (status, revision) = self
            .update_json_revision(
                &self.buckets.stores,
                &self.names.bucket("stores"),
                &keys::store_key(store),
                &|| format!("status of store {store:?}"),
                update,
            )
            .await?;
        self.note_status_written(store, revision);
        Ok(status)
    }

    pub(super) async fn update_channel(
        &self,
        channel: &str,
        update: &mut (dyn FnMut(&mut ChannelStatus) + Send),
    ) -> Result<ChannelStatus> {
        check_name(
            &|| "channel status".to_owned(),
            "channel",
            channel,
            MAX_NAME_LEN,
        )?;
        let key = keys::channel_key(channel);
        // The channel's holder writes its status on every send: its own
        // last write is the first guess, and a compare-and-set on that
        // revision succeeds only if no one wrote since (an operator's
        // pause, another node's fallback count). On a conflict, or for a
        // channel this node does not hold, the record is read from the
        // stream's leader and the loop of `update_json_revision` decides.
        if self.fence.holds(Scope::Channel(channel))
            && let Some((mut status, revision)) = self.own_writes.channel(channel)
        {
            update(&mut status);
            let bytes = Bytes::from(serde_json::to_vec(&status).map_err(|e| {
                nats_error(format!("status of channel {channel:?}"), "encode")(boxed(e))
            })?);
            match self
                .buckets
                .channels
                .update(key.as_str(), bytes, revision)
                .await
            {
                Ok(written) => {
                    self.own_writes.remember_channel(channel, &status, written);
                    return Ok(status);
                }
                Err(error) if error.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                    self.own_writes.forget_channel(channel);
                }
                Err(error) => {
                    self.own_writes.forget_channel(channel);
                    return Err(nats_error(
                        format!("bucket {}, key {key}", self.names.bucket("channels")),
                        "write record",
                    )(boxed(error)));
                }
            }
        }
        let (status, written) = self
            .update_json_revision(
                &self.buckets.channels,
                &self.names.bucket("channels"),
                &key,
                &|| format!("status of channel {channel:?}"),
                update,
            )
            .await?;
        self.own_writes.remember_channel(channel, &status, written);
        Ok(status)
    }
}

/// How many records [`OwnWrites`] remembers of each kind before it starts
/// over (a claim never completed here, e.g. recovered by another node,
/// would otherwise stay for ever).
const OWN_WRITES_LIMIT: usize = 4096;

/// The send path's own last writes: the job each claim wrote and each
/// channel status this node wrote, with their revisions. They are only
/// first guesses: every write made from them is a compare-and-set on the
/// remembered revision, which fails if anyone wrote the record since, and
/// then the record is read from the stream's leader as before. So they
/// save a read per completion and per channel count without deciding
/// anything on a stale record.
#[derive(Default)]
pub(super) struct OwnWrites {
    claims: Mutex<std::collections::HashMap<JobId, (Job, u64)>>,
    channels: Mutex<std::collections::HashMap<String, (ChannelStatus, u64)>>,
}

impl OwnWrites {
    fn remember_claim(&self, job: &Job, revision: u64) {
        let mut claims = self.claims.lock().unwrap_or_else(PoisonError::into_inner);
        if claims.len() >= OWN_WRITES_LIMIT {
            claims.clear();
        }
        claims.insert(job.id, (job.clone(), revision));
    }

    /// The record `claim` wrote, if this node made it (and forgets it).
    fn take_claim(&self, claim: Claim) -> Option<Stored> {
        let (job, revision) = self
            .claims
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&claim.id)?;
        (job.claims == claim.claim).then_some(Stored {
            job,
            revision,
            staged: false,
        })
    }

    fn forget_claim(&self, id: JobId) {
        self.claims
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }

    fn channel(&self, channel: &str) -> Option<(ChannelStatus, u64)> {
        self.channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(channel)
            .cloned()
    }

    fn remember_channel(&self, channel: &str, status: &ChannelStatus, revision: u64) {
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        if channels.len() >= OWN_WRITES_LIMIT {
            channels.clear();
        }
        channels.insert(channel.to_owned(), (status.clone(), revision));
    }

    fn forget_channel(&self, channel: &str) {
        self.channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(channel);
    }
}

/// How the outcome of a fallback placeholder starts (see
/// [`Inner::finish_fallback_intent`]).
const PLACEHOLDER: &str = "placeholder";

/// True for the cancelled record that takes a never-inserted fallback's id.
fn is_placeholder(job: &Job) -> bool {
    job.state == JobState::Cancelled
        && job.dedupe_keys.is_empty()
        && job
            .outcome_reason
            .as_deref()
            .is_some_and(|reason| reason.starts_with(PLACEHOLDER))
}

/// Ends `job` as handed to `fallback_id` on `fallback_channel`.
fn fell_back(
    job: &mut Job,
    now: Timestamp,
    reason: String,
    fallback_channel: &str,
    how: &str,
    fallback_id: JobId,
) {
    let outcome = format!("{reason}; fell back to channel {fallback_channel} {how} {fallback_id}");
    job.log_attempt(now, outcome.clone());
    job.last_error = Some(reason);
    job.fell_back_to = Some(fallback_id);
    job.finish(JobState::Skipped, now, Some(outcome));
}

/// Counts a send in the channel's pacing counters (as the redb backend does).
fn record_send(status: &mut ChannelStatus, at: Timestamp, pacing_day: jiff::civil::Date) {
    if status.pacing_day == Some(pacing_day) {
        status.sent_today = status.sent_today.saturating_add(1);
    } else {
        status.pacing_day = Some(pacing_day);
        status.sent_today = 1;
    }
    status.last_sent_at = Some(status.last_sent_at.map_or(at, |last| last.max(at)));
    status.warmup_started_at.get_or_insert(at);
}

/// Keeps the channel's per-day fallback counts (for `arauto report`).
fn record_fallback(status: &mut ChannelStatus, day: jiff::civil::Date, fallback: &str) {
    let oldest = day
        .checked_sub(jiff::Span::new().days(i64::from(crate::queue::SKIPPED_DAYS_KEPT)))
        .unwrap_or(day)
        .to_string();
    let day = day.to_string();
    status.fallbacks.retain(|count| count.day >= oldest);
    match status
        .fallbacks
        .iter_mut()
        .find(|count| count.day == day && count.fallback == fallback)
    {
        Some(count) => count.count = count.count.saturating_add(1),
        None => status.fallbacks.push(crate::queue::FallbackCount {
            day,
            fallback: fallback.to_owned(),
            count: 1,
        }),
    }
}
