//! The stored form of a job: the queue's own record format, the one place a
//! job is (de)serialised.
//!
//! A record is the [`tables`](super::tables) codec's tagged JSON of
//! [`JobRecord`]: the queue's bookkeeping fields, which the queue itself
//! wrote and always reads, plus the notification (kind and payload), which a
//! newer arauto may have written in a shape this one does not know. Such a
//! notification does not make the record unreadable: the job comes back as
//! [`JobBody::Unreadable`] with the reason, stays visible in `arauto queue`,
//! and its dispatcher dead-letters it; saving it again keeps the payload as it
//! was stored.

use std::path::Path;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::tables::{decode, encode};
use crate::job::{JobId, JobPayload, NewerPayload};
use crate::model::{ChannelId, NotificationKind};
use crate::queue::{AttemptRecord, Error, Job, JobBody, JobState, Receipt, Result};

/// A job as stored. New fields must carry `#[serde(default)]`, so adding one
/// is not a migration.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct JobRecord {
    pub(super) id: JobId,
    pub(super) channel: ChannelId,
    pub(super) store: String,
    pub(super) order_id: String,
    pub(super) kind: String,
    pub(super) priority: u8,
    pub(super) state: JobState,
    pub(super) created_at: Timestamp,
    pub(super) due_at: Timestamp,
    #[serde(default)]
    pub(super) expires_at: Option<Timestamp>,
    pub(super) attempt: u32,
    pub(super) max_attempts: u32,
    #[serde(default)]
    pub(super) claims: u32,
    #[serde(default)]
    pub(super) lease_until: Option<Timestamp>,
    #[serde(default)]
    pub(super) last_error: Option<String>,
    #[serde(default)]
    pub(super) attempts_log: Vec<AttemptRecord>,
    #[serde(default)]
    pub(super) finished_at: Option<Timestamp>,
    #[serde(default)]
    pub(super) outcome_reason: Option<String>,
    #[serde(default)]
    pub(super) receipt: Option<Receipt>,
    #[serde(default)]
    pub(super) dedupe_keys: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) fell_back_to: Option<JobId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) fallback_of: Option<JobId>,
    #[serde(default)]
    pub(super) payload: serde_json::Value,
}

/// The record of `job`.
pub(super) fn encode_job(job: &Job) -> Result<Vec<u8>> {
    let invalid = |reason: String| Error::Invalid {
        what: format!("job {}", job.id),
        reason,
    };
    let (kind, payload) = match &job.body {
        JobBody::Readable { kind, payload } => (
            kind.as_str().to_owned(),
            serde_json::to_value(payload)
                .map_err(|error| invalid(format!("payload cannot be serialised: {error}")))?,
        ),
        JobBody::Unreadable {
            kind,
            stored_payload,
            ..
        } => (
            kind.clone(),
            // Written back as it was read, so a newer arauto can still use it.
            serde_json::from_str(stored_payload)
                .unwrap_or(serde_json::Value::String(stored_payload.clone())),
        ),
    };
    let record = JobRecord {
        id: job.id,
        channel: job.channel.clone(),
        store: job.store.clone(),
        order_id: job.order_id.clone(),
        kind,
        priority: job.priority,
        state: job.state,
        created_at: job.created_at,
        due_at: job.due_at,
        expires_at: job.expires_at,
        attempt: job.attempt,
        max_attempts: job.max_attempts,
        claims: job.claims,
        lease_until: job.lease_until,
        last_error: job.last_error.clone(),
        attempts_log: job.attempts_log.clone(),
        finished_at: job.finished_at,
        outcome_reason: job.outcome_reason.clone(),
        receipt: job.receipt.clone(),
        dedupe_keys: job.dedupe_keys.clone(),
        fell_back_to: job.fell_back_to,
        fallback_of: job.fallback_of,
        payload,
    };
    encode(&record, || format!("job {}", job.id))
}

/// The job stored as `bytes` under `id`. A record the queue cannot read at
/// all is [`Error::Corrupt`]; one whose notification it cannot read is a job
/// with [`JobBody::Unreadable`].
pub(super) fn decode_job(bytes: &[u8], path: &Path, id: JobId) -> Result<Job> {
    let record: JobRecord = decode(bytes, path, || format!("job {id}"))?;
    let body = body_of(record.kind, record.payload);
    if let JobBody::Unreadable { unreadable, .. } = &body {
        tracing::debug!(job_id = %id, store = %record.store, order = %record.order_id,
            "unreadable job record: {unreadable}");
    }
    Ok(Job {
        id: record.id,
        channel: record.channel,
        store: record.store,
        order_id: record.order_id,
        priority: record.priority,
        state: record.state,
        created_at: record.created_at,
        due_at: record.due_at,
        expires_at: record.expires_at,
        attempt: record.attempt,
        max_attempts: record.max_attempts,
        claims: record.claims,
        lease_until: record.lease_until,
        last_error: record.last_error,
        attempts_log: record.attempts_log,
        finished_at: record.finished_at,
        outcome_reason: record.outcome_reason,
        receipt: record.receipt,
        dedupe_keys: record.dedupe_keys,
        fell_back_to: record.fell_back_to,
        fallback_of: record.fallback_of,
        body,
    })
}

/// Reads the notification of a record, or says why it cannot (also used by
/// the portable format, which carries jobs in the same shape).
pub(crate) fn body_of(kind: String, payload: serde_json::Value) -> JobBody {
    let unreadable =
        |kind: String, reason: String, payload: &serde_json::Value| JobBody::Unreadable {
            kind,
            unreadable: reason,
            stored_payload: payload.to_string(),
        };
    let parsed_kind = match kind.parse::<NotificationKind>() {
        Ok(parsed) => parsed,
        Err(error) => return unreadable(kind, error.to_string(), &payload),
    };
    // The version first: a newer shape may not parse, and "newer" is the
    // reason worth telling.
    let version = payload
        .get("payload_version")
        .and_then(serde_json::Value::as_u64)
        .and_then(|v| u32::try_from(v).ok());
    if let Some(found) = version
        && let Err(error) = (NewerPayload { found }).check()
    {
        return unreadable(kind, error.to_string(), &payload);
    }
    let parsed: JobPayload = match serde_json::from_value(payload.clone()) {
        Ok(parsed) => parsed,
        Err(error) => return unreadable(kind, format!("unreadable payload: {error}"), &payload),
    };
    JobBody::Readable {
        kind: parsed_kind,
        payload: parsed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_from_a_newer_arauto_is_unreadable_not_an_error() {
        let payload = serde_json::json!({ "payload_version": 99, "whatever": true });
        match body_of("order-paid".to_owned(), payload) {
            JobBody::Unreadable {
                kind, unreadable, ..
            } => {
                assert_eq!(kind, "order-paid");
                assert!(unreadable.contains("newer"), "{unreadable}");
            }
            other @ JobBody::Readable { .. } => panic!("read {other:?}"),
        }
        match body_of("order-teleported".to_owned(), serde_json::Value::Null) {
            JobBody::Unreadable { unreadable, .. } => {
                assert!(unreadable.contains("order-teleported"), "{unreadable}");
            }
            other @ JobBody::Readable { .. } => panic!("read {other:?}"),
        }
    }
}
