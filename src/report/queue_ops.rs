//! Queue management: list, show, cancel, retry, pause/resume a channel, purge
//! finished jobs. Ids, stores and channels are checked, so a typo is an
//! error that lists what exists instead of a silent no-op.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::context::Context;
use super::error::OpsError;
use crate::queue::{
    CancelOutcome, ChannelStatus, Job, JobFilter, JobId, JobState, PurgeFilter, RequeueOutcome,
    StoreStatus,
};

/// Default number of jobs `queue list` shows.
pub const DEFAULT_LIST_LIMIT: usize = 100;
/// Jobs deleted per transaction while purging (keeps other writers moving).
const PURGE_BATCH: usize = 1000;
/// Jobs requeued per transaction by `queue retry --dead`.
const RETRY_BATCH: usize = 10_000;

/// Which jobs to list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListQuery {
    /// Only this store.
    pub store: Option<String>,
    /// Only this channel.
    pub channel: Option<String>,
    /// Only this state.
    pub state: Option<JobState>,
    /// Only this order (platform order id).
    pub order: Option<String>,
    /// Only this notification kind.
    pub kind: Option<String>,
    /// At most this many ([`DEFAULT_LIST_LIMIT`] when `None`).
    pub limit: Option<usize>,
}

/// The jobs found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobList {
    /// The jobs, in the queue's order for the state (pending by due time,
    /// finished newest first).
    pub jobs: Vec<Job>,
    /// More jobs matched than the limit let through.
    pub truncated: bool,
    /// The limit applied.
    pub limit: usize,
}

/// The result of cancelling one job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelResult {
    /// The job.
    pub id: JobId,
    /// What happened.
    pub result: CancelOutcome,
}

/// The result of requeuing one job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequeueResult {
    /// The job.
    pub id: JobId,
    /// What happened.
    pub result: RequeueOutcome,
}

/// Which failed jobs to put back on the queue.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryDeadQuery {
    /// Only this store.
    pub store: Option<String>,
    /// Only this channel.
    pub channel: Option<String>,
    /// Dead-lettered (failed) jobs.
    pub dead: bool,
    /// Expired jobs.
    pub expired: bool,
}

/// A channel's status after pause/resume.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelChange {
    /// The channel.
    pub channel: String,
    /// Whether the request changed anything (pausing a paused channel or
    /// resuming a running one does not).
    pub changed: bool,
    /// The status now.
    pub status: ChannelStatus,
}

/// A store's status after `queue resume --store`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreChange {
    /// The store.
    pub store: String,
    /// Whether the store was paused.
    pub changed: bool,
    /// The status now.
    pub status: StoreStatus,
}

/// Which finished jobs to delete.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeQuery {
    /// These terminal states (at least one).
    pub states: Vec<JobState>,
    /// Only jobs that finished at least this long ago.
    pub older_than: SignedDuration,
    /// Count, delete nothing.
    pub dry_run: bool,
}

/// What a purge did (or would do).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeResult {
    /// Jobs deleted (or, in a dry run, that would be).
    pub count: usize,
    /// Nothing was deleted.
    pub dry_run: bool,
    /// The cut-off: jobs finished before this.
    pub finished_before: Timestamp,
    /// The states purged.
    pub states: Vec<JobState>,
}

async fn check_store_known(ctx: &Context, id: &str) -> Result<(), OpsError> {
    if ctx.config.stores.contains_key(id) || ctx.store()?.stores().await?.iter().any(|s| s == id) {
        Ok(())
    } else {
        ctx.check_store(id)
    }
}

async fn check_channel_known(ctx: &Context, id: &str) -> Result<(), OpsError> {
    if ctx.config.channels.contains_key(id)
        || ctx.store()?.channels().await?.iter().any(|l| l == id)
    {
        Ok(())
    } else {
        ctx.check_channel(id)
    }
}

/// `queue list`.
pub async fn list(ctx: &Context, query: &ListQuery) -> Result<JobList, OpsError> {
    let db = ctx.store()?;
    if let Some(id) = &query.store {
        check_store_known(ctx, id).await?;
    }
    if let Some(id) = &query.channel {
        check_channel_known(ctx, id).await?;
    }
    let limit = query.limit.unwrap_or(DEFAULT_LIST_LIMIT).max(1);
    let mut jobs = db
        .list(JobFilter {
            store: query.store.clone(),
            channel: query.channel.clone(),
            state: query.state,
            order_id: query.order.clone(),
            kind: query.kind.clone(),
            limit: Some(limit.saturating_add(1)),
        })
        .await?;
    let truncated = jobs.len() > limit;
    jobs.truncate(limit);
    Ok(JobList {
        jobs,
        truncated,
        limit,
    })
}

/// `queue show`.
pub async fn show(ctx: &Context, id: JobId) -> Result<Job, OpsError> {
    ctx.store()?
        .get(id)
        .await?
        .ok_or_else(|| OpsError::NoSuchJob(id.to_string()))
}

/// `queue cancel`: pending jobs only; others are reported as they are.
pub async fn cancel(
    ctx: &Context,
    ids: Vec<JobId>,
    reason: Option<String>,
) -> Result<Vec<CancelResult>, OpsError> {
    let reason = reason
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| "cancelled by an operator".to_owned());
    let outcomes = ctx.store()?.cancel(ids, reason).await?;
    Ok(outcomes
        .into_iter()
        .map(|(id, result)| CancelResult { id, result })
        .collect())
}

/// `queue retry ID…`: dead, expired, cancelled or skipped jobs go back on the
/// queue, due now, with their attempts reset.
pub async fn retry(ctx: &Context, ids: Vec<JobId>) -> Result<Vec<RequeueResult>, OpsError> {
    let outcomes = ctx.store()?.requeue(ids).await?;
    Ok(outcomes
        .into_iter()
        .map(|(id, result)| RequeueResult { id, result })
        .collect())
}

/// `queue retry --dead|--expired`: every matching failed job, again and again
/// until none is left (the store requeues a bounded number per call).
pub async fn retry_dead(ctx: &Context, query: &RetryDeadQuery) -> Result<Vec<JobId>, OpsError> {
    let db = ctx.store()?;
    if let Some(id) = &query.store {
        check_store_known(ctx, id).await?;
    }
    if let Some(id) = &query.channel {
        check_channel_known(ctx, id).await?;
    }
    let state = match (query.dead, query.expired) {
        (true, false) => Some(JobState::Dead),
        (false, true) => Some(JobState::Expired),
        (true, true) => None,
        (false, false) => {
            return Err(OpsError::Invalid(
                "say which failed jobs to retry: --dead, --expired or both".to_owned(),
            ));
        }
    };
    let mut all = Vec::new();
    loop {
        let batch = db
            .requeue_dead(JobFilter {
                store: query.store.clone(),
                channel: query.channel.clone(),
                state,
                limit: Some(RETRY_BATCH),
                ..JobFilter::default()
            })
            .await?;
        let full = batch.len() >= RETRY_BATCH;
        all.extend(batch);
        // A short batch was the last one: stop there, so jobs that fail again
        // while this runs are not requeued twice by one command.
        if !full {
            return Ok(all);
        }
    }
}

/// `queue pause CHANNEL`.
pub async fn pause(
    ctx: &Context,
    channel: &str,
    reason: Option<String>,
) -> Result<ChannelChange, OpsError> {
    ctx.check_channel(channel)?;
    let db = ctx.store()?;
    let before = db.channel_status(channel).await?;
    let reason = reason
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| "paused by an operator".to_owned());
    let status = db.pause_channel(channel, reason, false).await?;
    Ok(ChannelChange {
        channel: channel.to_owned(),
        changed: before.paused.is_none(),
        status,
    })
}

/// `queue resume CHANNEL`.
pub async fn resume(ctx: &Context, channel: &str) -> Result<ChannelChange, OpsError> {
    ctx.check_channel(channel)?;
    let db = ctx.store()?;
    let before = db.channel_status(channel).await?;
    let status = db.resume_channel(channel).await?;
    Ok(ChannelChange {
        channel: channel.to_owned(),
        changed: before.paused.is_some(),
        status,
    })
}

/// `queue resume --store STORE`: lift a store's polling pause (set when the
/// platform refused its credentials); a running daemon polls it at once.
pub async fn resume_store(ctx: &Context, store: &str) -> Result<StoreChange, OpsError> {
    ctx.check_store(store)?;
    let db = ctx.store()?;
    let before = db.store_status(store).await?.unwrap_or_default();
    let status = db.resume_store(store).await?;
    Ok(StoreChange {
        store: store.to_owned(),
        changed: before.paused.is_some(),
        status,
    })
}

/// `queue purge`.
pub async fn purge(ctx: &Context, query: &PurgeQuery) -> Result<PurgeResult, OpsError> {
    let db = ctx.store()?;
    if query.states.is_empty() {
        return Err(OpsError::Invalid(
            "say which finished jobs to purge: --dead, --expired, --cancelled, --skipped, --sent or --all-finished"
                .to_owned(),
        ));
    }
    if let Some(state) = query.states.iter().find(|s| !s.is_terminal()) {
        return Err(OpsError::Invalid(format!(
            "{state} jobs are not finished and cannot be purged (cancel them first)"
        )));
    }
    if query.older_than.is_negative() {
        return Err(OpsError::Invalid(
            "--older-than must not be negative".to_owned(),
        ));
    }
    let finished_before = ctx
        .now
        .checked_sub(query.older_than)
        .unwrap_or(Timestamp::MIN);
    let count = if query.dry_run {
        let mut count = 0;
        for state in &query.states {
            count += db
                .list(JobFilter {
                    state: Some(*state),
                    ..JobFilter::default()
                })
                .await?
                .iter()
                .filter(|job| job.finished_at.is_some_and(|at| at < finished_before))
                .count();
        }
        count
    } else {
        let mut count = 0;
        loop {
            let deleted = db
                .purge(PurgeFilter {
                    finished_before,
                    states: query.states.clone(),
                    limit: PURGE_BATCH,
                })
                .await?;
            count += deleted;
            if deleted < PURGE_BATCH {
                break;
            }
        }
        count
    };
    Ok(PurgeResult {
        count,
        dry_run: query.dry_run,
        finished_before,
        states: query.states.clone(),
    })
}
