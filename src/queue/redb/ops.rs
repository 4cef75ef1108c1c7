//! Write operations, run by the writer inside a batch's transaction.
//!
//! Every operation reads and validates everything it needs first and only then
//! writes (see `writer.rs` for why): rejections leave the transaction untouched.

use ::redb::ReadableTable;
use jiff::{SignedDuration, Timestamp};

use super::record::encode_job;
use super::tables::{NO_EXPIRY, backend, decode, encode, load_job};
use super::writer::Ctx;
use crate::job::timestamp_ms;
use crate::queue::{
    CancelOutcome, ChannelStatus, Claim, Completed, Completion, EnqueueOutcome, Error, Job,
    JobBody, JobFilter, JobId, JobState, NewJob, Outcome, Pause, PollCommit, PollOutcome,
    PurgeFilter, RequeueOutcome, Result, StoreStatus,
};

/// Longest channel, store, order id, kind or pacing day accepted (index keys stay small).
const MAX_NAME_LEN: usize = 512;
/// Longest dedupe key accepted.
const MAX_DEDUPE_KEY_LEN: usize = 1024;
/// A claim looks at no fewer than this many due jobs to pick by priority.
const CLAIM_SCAN_MIN: usize = 256;
/// Default cap of one `requeue_dead` call.
const REQUEUE_DEFAULT_LIMIT: usize = 10_000;

/// Where a job sits in the indexes, derived from its state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Slot {
    Due {
        due_ms: u64,
        priority: u8,
        expires_ms: u64,
    },
    Running {
        lease_ms: u64,
    },
    Finished {
        finished_ms: u64,
        state: JobState,
    },
}

pub(super) fn slot(job: &Job) -> Slot {
    match job.state {
        JobState::Pending => Slot::Due {
            due_ms: timestamp_ms(job.due_at),
            priority: job.priority,
            expires_ms: job.expires_at.map_or(NO_EXPIRY, timestamp_ms),
        },
        JobState::Running => Slot::Running {
            lease_ms: job.lease_until.map_or(0, timestamp_ms),
        },
        state => Slot::Finished {
            finished_ms: job.finished_at.map_or(0, timestamp_ms),
            state,
        },
    }
}

fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::Invalid {
        what: what.into(),
        reason: reason.into(),
    }
}

fn check_name(what: &dyn Fn() -> String, field: &str, value: &str, max: usize) -> Result<()> {
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

impl Ctx<'_> {
    // ----- primitives -----

    pub(super) fn load(&self, id: JobId) -> Result<Option<Job>> {
        load_job(&self.jobs, id, self.path)
    }

    /// A job an index entry points at; its absence means the indexes are broken.
    fn load_indexed(&self, id: JobId, index: &str) -> Result<Job> {
        self.load(id)?.ok_or_else(|| Error::Corrupt {
            path: self.path.to_path_buf(),
            what: format!("{index} index entry of job {id}"),
            message: "the job it points at does not exist".to_owned(),
        })
    }

    fn save(&mut self, job: &Job) -> Result<()> {
        let bytes = encode_job(job)?;
        self.mark_dirty();
        let path = self.path;
        self.jobs
            .insert(job.id.as_u128(), bytes.as_slice())
            .map_err(backend(path, "write job"))?;
        Ok(())
    }

    /// Stages a change of a channel's counters; written once per batch by `flush`.
    fn adjust_channel(&mut self, channel: &str, pending: i64, running: i64) {
        self.mark_dirty();
        match self.channel_deltas.get_mut(channel) {
            Some(delta) => {
                delta.0 += pending;
                delta.1 += running;
            }
            None => {
                self.channel_deltas
                    .insert(channel.to_owned(), (pending, running));
            }
        }
    }

    pub(super) fn place(&mut self, job: &Job, slot: Slot) -> Result<()> {
        let path = self.path;
        let id = job.id.as_u128();
        let channel = job.channel.as_str();
        self.mark_dirty();
        match slot {
            Slot::Due {
                due_ms,
                priority,
                expires_ms,
            } => {
                self.due
                    .insert((channel, due_ms, id), (priority, expires_ms))
                    .map_err(backend(path, "write due index"))?;
                self.adjust_channel(channel, 1, 0);
                if !self.woken.contains(channel) {
                    self.woken.insert(channel.to_owned());
                }
            }
            Slot::Running { lease_ms } => {
                self.running
                    .insert((lease_ms, id), ())
                    .map_err(backend(path, "write running index"))?;
                self.adjust_channel(channel, 0, 1);
            }
            Slot::Finished { finished_ms, state } => {
                self.finished
                    .insert((finished_ms, id), state.code())
                    .map_err(backend(path, "write finished index"))?;
                self.finished_by_channel
                    .insert((channel, finished_ms, id), state.code())
                    .map_err(backend(path, "write finished index"))?;
            }
        }
        Ok(())
    }

    fn unplace(&mut self, job: &Job, slot: Slot) -> Result<()> {
        let path = self.path;
        let id = job.id.as_u128();
        let channel = job.channel.as_str();
        self.mark_dirty();
        match slot {
            Slot::Due { due_ms, .. } => {
                self.due
                    .remove((channel, due_ms, id))
                    .map_err(backend(path, "write due index"))?;
                self.adjust_channel(channel, -1, 0);
            }
            Slot::Running { lease_ms } => {
                self.running
                    .remove((lease_ms, id))
                    .map_err(backend(path, "write running index"))?;
                self.adjust_channel(channel, 0, -1);
            }
            Slot::Finished { finished_ms, .. } => {
                self.finished
                    .remove((finished_ms, id))
                    .map_err(backend(path, "write finished index"))?;
                self.finished_by_channel
                    .remove((channel, finished_ms, id))
                    .map_err(backend(path, "write finished index"))?;
            }
        }
        Ok(())
    }

    /// Stages a daily counter increment; written once per batch by `flush`.
    fn count(&mut self, at: Timestamp, job: &Job, outcome: Outcome) {
        self.mark_dirty();
        let day = self.time_zone.to_datetime(at).date().to_string();
        let key = (
            day,
            job.store.clone(),
            job.channel.to_string(),
            job.kind_name().to_owned(),
            outcome,
        );
        *self.counter_deltas.entry(key).or_default() += 1;
    }

    /// Writes the counter and channel status changes staged by the batch's operations.
    pub(super) fn flush(&mut self) -> Result<()> {
        let path = self.path;
        for (channel, (pending, running)) in std::mem::take(&mut self.channel_deltas) {
            if (pending, running) == (0, 0) {
                continue;
            }
            let (old_pending, old_running) = self
                .channel_counts
                .get(channel.as_str())
                .map_err(backend(path, "read channel counts"))?
                .map_or((0, 0), |guard| guard.value());
            let counts = (
                old_pending.saturating_add_signed(pending),
                old_running.saturating_add_signed(running),
            );
            self.channel_counts
                .insert(channel.as_str(), counts)
                .map_err(backend(path, "write channel counts"))?;
        }
        for (channel, (status, changed)) in std::mem::take(&mut self.channels) {
            if changed {
                let bytes = encode(&status, || format!("status of channel {channel:?}"))?;
                self.channel_status
                    .insert(channel.as_str(), bytes.as_slice())
                    .map_err(backend(path, "write channel status"))?;
            }
        }
        for ((day, store, channel, kind, outcome), increment) in
            std::mem::take(&mut self.counter_deltas)
        {
            let key = (
                day.as_str(),
                store.as_str(),
                channel.as_str(),
                kind.as_str(),
                outcome.as_str(),
            );
            let current = self
                .counters
                .get(key)
                .map_err(backend(path, "read counters"))?
                .map_or(0, |guard| guard.value());
            self.counters
                .insert(key, current.saturating_add(increment))
                .map_err(backend(path, "write counters"))?;
        }
        Ok(())
    }

    /// Moves a job (already changed in memory) from the `before` slot to the one
    /// its new state calls for, counts a newly reached outcome, and saves it.
    fn transition(&mut self, before: Slot, job: &Job) -> Result<()> {
        let after = slot(job);
        if before != after {
            self.unplace(job, before)?;
            self.place(job, after)?;
        }
        if let Slot::Finished { state, .. } = after
            && !matches!(before, Slot::Finished { .. })
            && let Some(outcome) = Outcome::of_terminal(state)
        {
            // A job handed to its fallback channel is skipped here, but
            // counted as what it is.
            let outcome = if job.fell_back_to.is_some() {
                Outcome::FellBack
            } else {
                outcome
            };
            self.count(job.finished_at.unwrap_or(self.now), job, outcome);
        }
        self.save(job)
    }

    pub(super) fn dedupe_holder(&self, key: &str) -> Result<Option<JobId>> {
        Ok(self
            .dedupe
            .get(key)
            .map_err(backend(self.path, "read dedupe keys"))?
            .map(|guard| JobId::from_u128(guard.value())))
    }

    // ----- queue -----

    pub(super) fn enqueue(&mut self, jobs: Vec<NewJob>) -> Result<Vec<EnqueueOutcome>> {
        for job in &jobs {
            validate_new_job(job)?;
        }
        let mut outcomes = Vec::with_capacity(jobs.len());
        for job in jobs {
            outcomes.push(self.insert_job(job)?);
        }
        Ok(outcomes)
    }

    fn insert_job(&mut self, mut new: NewJob) -> Result<EnqueueOutcome> {
        // A key listed twice is held once.
        let mut seen = std::collections::HashSet::with_capacity(new.dedupe_keys.len());
        new.dedupe_keys.retain(|key| seen.insert(key.clone()));
        for key in &new.dedupe_keys {
            if let Some(holder) = self.dedupe_holder(key)? {
                return Ok(EnqueueOutcome::Duplicate(holder));
            }
        }
        let now = self.now;
        let id = self.ids.next(now);
        let job = Job {
            id,
            channel: new.channel,
            store: new.store,
            order_id: new.order_id,
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
            dedupe_keys: new.dedupe_keys,
            fell_back_to: None,
            fallback_of: None,
            body: JobBody::Readable {
                kind: new.kind,
                payload: new.payload,
            },
        };
        let bytes = encode_job(&job)?;
        let path = self.path;
        self.mark_dirty();
        for key in &job.dedupe_keys {
            self.dedupe
                .insert(key.as_str(), id.as_u128())
                .map_err(backend(path, "write dedupe keys"))?;
        }
        self.order_jobs
            .insert(
                (job.store.as_str(), job.order_id.as_str(), id.as_u128()),
                (),
            )
            .map_err(backend(path, "write order index"))?;
        self.place(&job, slot(&job))?;
        self.count(now, &job, Outcome::Entered);
        self.jobs
            .insert(id.as_u128(), bytes.as_slice())
            .map_err(backend(path, "write job"))?;
        Ok(EnqueueOutcome::Inserted(id))
    }

    pub(super) fn claim(
        &mut self,
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
        if max == 0 || self.cached_channel(channel)?.0.paused.is_some() {
            return Ok(Vec::new());
        }
        let now_ms = timestamp_ms(now);
        let window = max.saturating_mul(4).max(CLAIM_SCAN_MIN);
        let mut candidates = Vec::new();
        let mut stale = Vec::new();
        {
            let range = self
                .due
                .range((channel, 0u64, 0u128)..=(channel, now_ms, u128::MAX))
                .map_err(backend(self.path, "scan due index"))?;
            for entry in range.take(window) {
                let (key, value) = entry.map_err(backend(self.path, "scan due index"))?;
                let (_, due_ms, id) = key.value();
                let (priority, expires_ms) = value.value();
                if expires_ms <= now_ms {
                    stale.push(JobId::from_u128(id));
                } else {
                    candidates.push((priority, due_ms, id));
                }
            }
        }
        candidates.sort_unstable();
        candidates.truncate(max);
        let mut chosen = Vec::with_capacity(candidates.len());
        for (_, _, id) in candidates {
            chosen.push(self.load_pending(JobId::from_u128(id))?);
        }
        let mut expired = Vec::with_capacity(stale.len());
        for id in stale {
            expired.push(self.load_pending(id)?);
        }

        for mut job in expired {
            let before = slot(&job);
            let reason = match job.expires_at {
                Some(at) => format!("expired at {at} before it could be delivered"),
                None => "expired before it could be delivered".to_owned(),
            };
            job.finish(JobState::Expired, now, Some(reason));
            self.transition(before, &job)?;
        }
        let mut claimed = Vec::with_capacity(chosen.len());
        for mut job in chosen {
            let before = slot(&job);
            job.state = JobState::Running;
            job.attempt = job.attempt.saturating_add(1);
            job.claims = job.claims.saturating_add(1);
            job.lease_until = Some(lease_until);
            self.transition(before, &job)?;
            claimed.push(job);
        }
        Ok(claimed)
    }

    fn load_pending(&self, id: JobId) -> Result<Job> {
        let job = self.load_indexed(id, "due")?;
        if job.state != JobState::Pending {
            return Err(Error::Corrupt {
                path: self.path.to_path_buf(),
                what: format!("due index entry of job {id}"),
                message: format!("the job is {}, not pending", job.state),
            });
        }
        Ok(job)
    }

    /// The job behind a claim, if it is running under that very claim.
    fn running_job(&self, claim: Claim) -> Result<Job> {
        let job = self
            .load(claim.id)?
            .ok_or(Error::NotFound { id: claim.id })?;
        if job.state != JobState::Running {
            return Err(Error::NotRunning {
                id: job.id,
                channel: job.channel,
                state: job.state,
            });
        }
        if job.claims != claim.claim {
            return Err(Error::StaleClaim {
                id: job.id,
                channel: job.channel,
                presented: claim.claim,
                current: job.claims,
            });
        }
        Ok(job)
    }

    pub(super) fn extend_lease(&mut self, claim: Claim, until: Timestamp) -> Result<Job> {
        let mut job = self.running_job(claim)?;
        let before = slot(&job);
        job.lease_until = Some(until);
        self.transition(before, &job)?;
        Ok(job)
    }

    pub(super) fn complete(&mut self, claim: Claim, completion: Completion) -> Result<Completed> {
        let mut job = self.running_job(claim)?;
        let mut fallback_inserted = None;
        if let Completion::FellBack { fallback, .. } = &completion {
            // Validated before anything is written (see the module docs).
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
        let now = self.now;
        let before = slot(&job);
        if let Completion::Sent { at, pacing_day, .. } = &completion {
            self.record_send(job.channel.as_str(), *at, *pacing_day)?;
        }
        if let Some((reason, fallback)) = job.apply_completion(completion, now) {
            let fallback_channel = fallback.channel.to_string();
            match self.insert_job(*fallback)? {
                EnqueueOutcome::Inserted(id) => {
                    if let Some(mut created) = self.load(id)? {
                        created.fallback_of = Some(job.id);
                        self.save(&created)?;
                    }
                    self.fell_back(&mut job, reason, &fallback_channel, "as job", id);
                    self.record_fallback(job.channel.as_str(), now, &fallback_channel)?;
                    fallback_inserted = Some(id);
                }
                EnqueueOutcome::Duplicate(holder) => {
                    // Only a holder that is (or will be) sent means the
                    // notification is planned there; one that already
                    // ended unsent (dead, skipped, expired…) will never
                    // send it, and naming it would let two jobs point at
                    // each other with no way to retry either.
                    let holder_state = self.load(holder)?.map(|held| held.state);
                    match holder_state {
                        Some(JobState::Pending | JobState::Running | JobState::Sent) => {
                            self.fell_back(
                                &mut job,
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
        self.transition(before, &job)?;
        Ok(Completed {
            job,
            fallback_inserted,
        })
    }

    /// Ends `job` as handed to `fallback_id` on `fallback_channel`.
    fn fell_back(
        &mut self,
        job: &mut Job,
        reason: String,
        fallback_channel: &str,
        how: &str,
        fallback_id: JobId,
    ) {
        let now = self.now;
        let outcome =
            format!("{reason}; fell back to channel {fallback_channel} {how} {fallback_id}");
        job.log_attempt(now, outcome.clone());
        job.last_error = Some(reason);
        job.fell_back_to = Some(fallback_id);
        job.finish(JobState::Skipped, now, Some(outcome));
    }

    pub(super) fn cancel(
        &mut self,
        ids: &[JobId],
        reason: &str,
    ) -> Result<Vec<(JobId, CancelOutcome)>> {
        let mut outcomes = Vec::with_capacity(ids.len());
        for &id in ids {
            outcomes.push((id, self.cancel_one(id, reason)?));
        }
        Ok(outcomes)
    }

    fn cancel_one(&mut self, id: JobId, reason: &str) -> Result<CancelOutcome> {
        let Some(mut job) = self.load(id)? else {
            return Ok(CancelOutcome::NotFound);
        };
        if job.state != JobState::Pending {
            return Ok(CancelOutcome::NotPending(job.state));
        }
        let before = slot(&job);
        job.finish(JobState::Cancelled, self.now, Some(reason.to_owned()));
        self.transition(before, &job)?;
        // A cancelled notification was never sent: "at most once" still holds
        // if the same notification is planned again (an order that left a
        // cancellation and came back), so its keys are freed.
        self.release_dedupe_keys(&job)?;
        // A cancelled fallback job was never sent, and neither was the job
        // that fell back to it (nor that one's original, up a chain): their
        // keys are freed too, or the notification planned again on the
        // original channel would be refused as a duplicate.
        let mut child = job.id;
        let mut next = job.fallback_of;
        let mut seen = vec![job.id];
        while let Some(id) = next.filter(|id| !seen.contains(id)) {
            seen.push(id);
            match self.load(id)? {
                Some(mut original)
                    if original.state == JobState::Skipped
                        && original.fell_back_to == Some(child) =>
                {
                    self.release_dedupe_keys(&original)?;
                    // It holds none now (what `verify` checks).
                    original.dedupe_keys.clear();
                    original.log_attempt(
                        self.now,
                        format!("keys released: its fallback job {child} was cancelled ({reason})"),
                    );
                    self.save(&original)?;
                    child = original.id;
                    next = original.fallback_of;
                }
                _ => break,
            }
        }
        Ok(CancelOutcome::Cancelled)
    }

    pub(super) fn requeue(&mut self, ids: &[JobId]) -> Result<Vec<(JobId, RequeueOutcome)>> {
        let mut outcomes = Vec::with_capacity(ids.len());
        for &id in ids {
            let outcome = match self.load(id)? {
                None => RequeueOutcome::NotFound,
                Some(job) if !requeueable(job.state) => RequeueOutcome::NotRequeueable(job.state),
                // A job that fell back was delivered (or is planned)
                // elsewhere: sending it here too would reach the customer twice.
                Some(Job {
                    fell_back_to: Some(fallback),
                    ..
                }) => RequeueOutcome::FellBack(fallback),
                Some(job) => {
                    self.requeue_job(job)?;
                    RequeueOutcome::Requeued
                }
            };
            outcomes.push((id, outcome));
        }
        Ok(outcomes)
    }

    fn requeue_job(&mut self, mut job: Job) -> Result<()> {
        let before = slot(&job);
        let was = job.state;
        job.state = JobState::Pending;
        job.due_at = self.now;
        job.attempt = 0;
        job.expires_at = None;
        job.finished_at = None;
        job.outcome_reason = None;
        job.lease_until = None;
        job.log_attempt(self.now, format!("requeued by an operator (was {was})"));
        self.transition(before, &job)
    }

    pub(super) fn requeue_dead(&mut self, filter: &JobFilter) -> Result<Vec<JobId>> {
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
        let codes: Vec<u8> = states.iter().map(|state| state.code()).collect();
        let limit = filter.limit.unwrap_or(REQUEUE_DEFAULT_LIMIT);
        let mut found = Vec::new();
        {
            let path = self.path;
            let mut consider = |id: u128, code: u8| -> Result<bool> {
                if codes.contains(&code) {
                    let job = self.load_indexed(JobId::from_u128(id), "finished")?;
                    let matches = JobFilter {
                        state: None,
                        ..filter.clone()
                    }
                    .matches(&job);
                    if matches {
                        found.push(job);
                    }
                }
                Ok(found.len() < limit)
            };
            if let Some(channel) = filter.channel.as_deref() {
                let range = self
                    .finished_by_channel
                    .range((channel, 0u64, 0u128)..=(channel, u64::MAX, u128::MAX))
                    .map_err(backend(path, "scan finished index"))?;
                for entry in range {
                    let (key, code) = entry.map_err(backend(path, "scan finished index"))?;
                    if limit == 0 || !consider(key.value().2, code.value())? {
                        break;
                    }
                }
            } else {
                let range = self
                    .finished
                    .iter()
                    .map_err(backend(path, "scan finished index"))?;
                for entry in range {
                    let (key, code) = entry.map_err(backend(path, "scan finished index"))?;
                    if limit == 0 || !consider(key.value().1, code.value())? {
                        break;
                    }
                }
            }
        }
        let requeued = found.iter().map(|job| job.id).collect();
        for job in found {
            self.requeue_job(job)?;
        }
        Ok(requeued)
    }

    pub(super) fn purge(&mut self, filter: &PurgeFilter) -> Result<usize> {
        if let Some(state) = filter.states.iter().find(|state| !state.is_terminal()) {
            return Err(invalid(
                "purge filter",
                format!("{state} jobs are not finished and cannot be purged"),
            ));
        }
        if filter.limit == 0 {
            return Ok(0);
        }
        let codes: Vec<u8> = if filter.states.is_empty() {
            JobState::TERMINAL
                .iter()
                .map(|state| state.code())
                .collect()
        } else {
            filter.states.iter().map(|state| state.code()).collect()
        };
        let before_ms = timestamp_ms(filter.finished_before);
        let mut victims = Vec::new();
        {
            let range = self
                .finished
                .range((0u64, 0u128)..(before_ms, 0u128))
                .map_err(backend(self.path, "scan finished index"))?;
            for entry in range {
                let (key, code) = entry.map_err(backend(self.path, "scan finished index"))?;
                if codes.contains(&code.value()) {
                    victims.push(JobId::from_u128(key.value().1));
                    if victims.len() >= filter.limit {
                        break;
                    }
                }
            }
        }
        let mut jobs = Vec::with_capacity(victims.len());
        for id in victims {
            jobs.push(self.load_indexed(id, "finished")?);
        }
        let deleted = jobs.len();
        for job in jobs {
            self.delete_job(&job)?;
        }
        Ok(deleted)
    }

    fn delete_job(&mut self, job: &Job) -> Result<()> {
        let path = self.path;
        let id = job.id.as_u128();
        self.unplace(job, slot(job))?;
        self.jobs.remove(id).map_err(backend(path, "delete job"))?;
        self.order_jobs
            .remove((job.store.as_str(), job.order_id.as_str(), id))
            .map_err(backend(path, "delete order index entry"))?;
        self.release_dedupe_keys(job)
    }

    /// Free the dedupe keys `job` holds, so a later job may take them.
    fn release_dedupe_keys(&mut self, job: &Job) -> Result<()> {
        let path = self.path;
        for key in &job.dedupe_keys {
            if self
                .dedupe_holder(key)?
                .is_some_and(|holder| holder == job.id)
            {
                self.dedupe
                    .remove(key.as_str())
                    .map_err(backend(path, "delete dedupe key"))?;
            }
        }
        Ok(())
    }

    /// Running jobs whose lease ended at or before `lease_before_ms` go back to
    /// pending (due `now`), or to dead-letter if that was their last attempt.
    pub(super) fn recover(&mut self, lease_before_ms: u64, now: Timestamp) -> Result<usize> {
        let mut ids = Vec::new();
        {
            let range = self
                .running
                .range((0u64, 0u128)..=(lease_before_ms, u128::MAX))
                .map_err(backend(self.path, "scan running index"))?;
            for entry in range {
                let (key, _) = entry.map_err(backend(self.path, "scan running index"))?;
                ids.push(JobId::from_u128(key.value().1));
            }
        }
        let mut jobs = Vec::with_capacity(ids.len());
        for id in ids {
            jobs.push(self.load_indexed(id, "running")?);
        }
        let recovered = jobs.len();
        for mut job in jobs {
            let before = slot(&job);
            let note = "the lease expired: the delivery crashed or timed out".to_owned();
            job.attempt_stopped(now, note, "the delivery crashed or timed out");
            self.transition(before, &job)?;
        }
        Ok(recovered)
    }

    // ----- poll state -----

    pub(super) fn commit_poll(&mut self, commit: PollCommit) -> Result<PollOutcome> {
        let PollCommit {
            store,
            cursor,
            order_records,
            forget_orders,
            jobs,
            cancel,
            status,
        } = commit;
        let what = || format!("poll commit of store {store:?}");
        check_name(&what, "store", &store, MAX_NAME_LEN)?;
        for job in &jobs {
            validate_new_job(job)?;
            if job.store != store {
                return Err(invalid(
                    what(),
                    format!(
                        "it contains a job for order {:?} of another store, {:?}",
                        job.order_id, job.store
                    ),
                ));
            }
        }
        for order_id in order_records.iter().map(|(id, _)| id).chain(&forget_orders) {
            check_name(&what, "an order id", order_id, MAX_NAME_LEN)?;
        }
        let status_bytes = encode(&status, || format!("status of store {store:?}"))?;

        let path = self.path;
        self.mark_dirty();
        if let Some(cursor) = &cursor {
            self.cursors
                .insert(store.as_str(), cursor.as_str())
                .map_err(backend(path, "write cursor"))?;
        }
        for (order_id, record) in &order_records {
            self.order_records
                .insert((store.as_str(), order_id.as_str()), record.as_slice())
                .map_err(backend(path, "write order record"))?;
        }
        for order_id in &forget_orders {
            self.order_records
                .remove((store.as_str(), order_id.as_str()))
                .map_err(backend(path, "delete order record"))?;
        }
        let mut outcome = PollOutcome {
            jobs: Vec::with_capacity(jobs.len()),
            cancelled: Vec::with_capacity(cancel.len()),
        };
        for job in jobs {
            outcome.jobs.push(self.insert_job(job)?);
        }
        for (id, reason) in &cancel {
            outcome.cancelled.push((*id, self.cancel_one(*id, reason)?));
        }
        self.store_status
            .insert(store.as_str(), status_bytes.as_slice())
            .map_err(backend(path, "write store status"))?;
        Ok(outcome)
    }

    // ----- statuses -----

    pub(super) fn store_status(&self, store: &str) -> Result<Option<StoreStatus>> {
        let guard = self
            .store_status
            .get(store)
            .map_err(backend(self.path, "read store status"))?;
        guard
            .map(|bytes| {
                decode(bytes.value(), self.path, || {
                    format!("status of store {store:?}")
                })
            })
            .transpose()
    }

    pub(super) fn put_store_status(&mut self, store: &str, status: &StoreStatus) -> Result<()> {
        check_name(&|| "store status".to_owned(), "store", store, MAX_NAME_LEN)?;
        let bytes = encode(status, || format!("status of store {store:?}"))?;
        self.mark_dirty();
        self.store_status
            .insert(store, bytes.as_slice())
            .map_err(backend(self.path, "write store status"))?;
        Ok(())
    }

    pub(super) fn update_store_status(
        &mut self,
        store: &str,
        update: &mut (dyn FnMut(&mut StoreStatus) + Send),
    ) -> Result<StoreStatus> {
        let mut status = self.store_status(store)?.unwrap_or_default();
        update(&mut status);
        self.put_store_status(store, &status)?;
        Ok(status)
    }

    /// The channel's channel status as this batch sees it. Statuses are cached for
    /// the batch and written once by `flush`: every delivery updates one.
    pub(super) fn channel(&mut self, channel: &str) -> Result<ChannelStatus> {
        Ok(self.cached_channel(channel)?.0.clone())
    }

    /// The batch's cached status of `channel` (read on first use) and whether
    /// the batch changed it; lets claims and sends look at or update it in
    /// place instead of copying it each time.
    fn cached_channel(&mut self, channel: &str) -> Result<&mut (ChannelStatus, bool)> {
        if !self.channels.contains_key(channel) {
            let status = self.read_channel(channel)?;
            self.channels.insert(channel.to_owned(), (status, false));
        }
        self.channels
            .get_mut(channel)
            .ok_or_else(|| Error::Invalid {
                what: format!("status of channel {channel:?}"),
                reason: "missing from the batch cache right after it was cached (a bug)".to_owned(),
            })
    }

    /// The channel's status as stored (default if never written).
    fn read_channel(&self, channel: &str) -> Result<ChannelStatus> {
        let status: ChannelStatus = {
            let guard = self
                .channel_status
                .get(channel)
                .map_err(backend(self.path, "read channel status"))?;
            guard
                .map(|bytes| {
                    decode(bytes.value(), self.path, || {
                        format!("status of channel {channel:?}")
                    })
                })
                .transpose()?
                .unwrap_or_default()
        };
        Ok(status)
    }

    pub(super) fn put_channel(&mut self, channel: &str, status: ChannelStatus) -> Result<()> {
        check_name(
            &|| "channel status".to_owned(),
            "channel",
            channel,
            MAX_NAME_LEN,
        )?;
        self.mark_dirty();
        self.channels.insert(channel.to_owned(), (status, true));
        Ok(())
    }

    pub(super) fn update_channel(
        &mut self,
        channel: &str,
        update: &mut (dyn FnMut(&mut ChannelStatus) + Send),
    ) -> Result<ChannelStatus> {
        let mut status = self.channel(channel)?;
        let was_paused = status.paused.is_some();
        update(&mut status);
        self.put_channel(channel, status.clone())?;
        if was_paused && status.paused.is_none() {
            self.woken.insert(channel.to_owned());
        }
        Ok(status)
    }

    pub(super) fn pause_channel(
        &mut self,
        channel: &str,
        reason: String,
        automatic: bool,
    ) -> Result<ChannelStatus> {
        let at = self.now;
        self.update_channel(channel, &mut |status| {
            if status.paused.is_none() {
                status.paused = Some(Pause {
                    reason: reason.clone(),
                    at,
                    automatic,
                });
            }
        })
    }

    fn record_send(
        &mut self,
        channel: &str,
        at: Timestamp,
        pacing_day: jiff::civil::Date,
    ) -> Result<()> {
        check_name(
            &|| "channel status".to_owned(),
            "channel",
            channel,
            MAX_NAME_LEN,
        )?;
        self.mark_dirty();
        let (status, changed) = self.cached_channel(channel)?;
        if status.pacing_day == Some(pacing_day) {
            status.sent_today = status.sent_today.saturating_add(1);
        } else {
            status.pacing_day = Some(pacing_day);
            status.sent_today = 1;
        }
        status.last_sent_at = Some(status.last_sent_at.map_or(at, |last| last.max(at)));
        status.warmup_started_at.get_or_insert(at);
        *changed = true;
        Ok(())
    }
}

/// Keeps the channel's per-day fallback counts (for `arauto report`).
impl Ctx<'_> {
    fn record_fallback(&mut self, channel: &str, at: Timestamp, fallback: &str) -> Result<()> {
        let day = self.time_zone.to_datetime(at).date();
        let oldest = day
            .checked_sub(jiff::Span::new().days(i64::from(crate::queue::SKIPPED_DAYS_KEPT)))
            .unwrap_or(day)
            .to_string();
        let day = day.to_string();
        let mut status = self.channel(channel)?;
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
        self.put_channel(channel, status)
    }
}

fn requeueable(state: JobState) -> bool {
    matches!(
        state,
        JobState::Dead | JobState::Expired | JobState::Cancelled | JobState::Skipped
    )
}
