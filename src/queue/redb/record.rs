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
use serde_json::value::RawValue;

use super::tables::{decode, encode};
use crate::job::{JobId, JobPayload, NewerPayload};
use crate::model::{ChannelId, NotificationKind};
use crate::queue::{AttemptRecord, Job, JobBody, JobState, Receipt, Result};

/// A job as stored, as it is read. New fields must carry `#[serde(default)]`,
/// so adding one is not a migration. The payload stays raw JSON until the
/// notification is read ([`body_of`]): it is parsed once, straight into its
/// type, with no intermediate JSON tree.
#[derive(Debug, Deserialize)]
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
    #[serde(default)]
    pub(super) fell_back_to: Option<JobId>,
    #[serde(default)]
    pub(super) fallback_of: Option<JobId>,
    #[serde(default)]
    pub(super) payload: Option<Box<RawValue>>,
}

/// A job as stored, as it is written: the same fields as [`JobRecord`],
/// borrowed from the [`Job`] (a save copies no string, log or key list).
#[derive(Serialize)]
struct JobRecordRef<'a> {
    id: JobId,
    channel: &'a ChannelId,
    store: &'a str,
    order_id: &'a str,
    kind: &'a str,
    priority: u8,
    state: JobState,
    created_at: Timestamp,
    due_at: Timestamp,
    expires_at: Option<Timestamp>,
    attempt: u32,
    max_attempts: u32,
    claims: u32,
    lease_until: Option<Timestamp>,
    last_error: &'a Option<String>,
    attempts_log: &'a [AttemptRecord],
    finished_at: Option<Timestamp>,
    outcome_reason: &'a Option<String>,
    receipt: &'a Option<Receipt>,
    dedupe_keys: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    fell_back_to: Option<JobId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fallback_of: Option<JobId>,
    payload: PayloadOut<'a>,
}

/// The payload as written: this arauto's own type, or (for a job it could
/// not read) the JSON it was read as, so a newer arauto can still use it.
#[derive(Serialize)]
#[serde(untagged)]
enum PayloadOut<'a> {
    Typed(&'a JobPayload),
    Stored(serde_json::Value),
}

/// The record of `job`.
pub(super) fn encode_job(job: &Job) -> Result<Vec<u8>> {
    let (kind, payload) = match &job.body {
        JobBody::Readable { kind, payload } => (kind.as_str(), PayloadOut::Typed(payload)),
        JobBody::Unreadable {
            kind,
            stored_payload,
            ..
        } => (
            kind.as_str(),
            // Written back as it was read, so a newer arauto can still use it.
            PayloadOut::Stored(
                serde_json::from_str(stored_payload)
                    .unwrap_or(serde_json::Value::String(stored_payload.clone())),
            ),
        ),
    };
    let record = JobRecordRef {
        id: job.id,
        channel: &job.channel,
        store: &job.store,
        order_id: &job.order_id,
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
        last_error: &job.last_error,
        attempts_log: &job.attempts_log,
        finished_at: job.finished_at,
        outcome_reason: &job.outcome_reason,
        receipt: &job.receipt,
        dedupe_keys: &job.dedupe_keys,
        fell_back_to: job.fell_back_to,
        fallback_of: job.fallback_of,
        payload,
    };
    encode(&record, || format!("job {}", job.id))
}

/// The job stored as `bytes` under `id`. A record the queue cannot read at
/// all is [`Error::Corrupt`](crate::queue::Error::Corrupt); one whose notification it cannot read is a job
/// with [`JobBody::Unreadable`].
pub(super) fn decode_job(bytes: &[u8], path: &Path, id: JobId) -> Result<Job> {
    let record: JobRecord = decode(bytes, path, || format!("job {id}"))?;
    let body = body_of(record.kind, record.payload.as_deref());
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

/// Only the version of a payload, to say "newer" when a payload does not
/// parse because a newer arauto changed its shape.
#[derive(Deserialize)]
struct PayloadVersion {
    payload_version: Option<u64>,
}

/// Reads the notification of a record (`payload` is its raw JSON; absent
/// reads as `null`), or says why it cannot (also used by the portable
/// format, which carries jobs in the same shape).
pub(crate) fn body_of(kind: String, payload: Option<&RawValue>) -> JobBody {
    let text = payload.map_or("null", RawValue::get);
    let unreadable = |kind: String, reason: String| JobBody::Unreadable {
        kind,
        unreadable: reason,
        stored_payload: text.to_owned(),
    };
    let parsed_kind = match kind.parse::<NotificationKind>() {
        Ok(parsed) => parsed,
        Err(error) => return unreadable(kind, error.to_string()),
    };
    // A newer version is the reason worth telling, whether or not the newer
    // shape happens to parse as this one.
    let newer = |version: Option<u64>| {
        version
            .and_then(|found| u32::try_from(found).ok())
            .and_then(|found| (NewerPayload { found }).check().err())
    };
    match serde_json::from_str::<JobPayload>(text) {
        Ok(parsed) => match newer(Some(u64::from(parsed.payload_version))) {
            Some(error) => unreadable(kind, error.to_string()),
            None => JobBody::Readable {
                kind: parsed_kind,
                payload: parsed,
            },
        },
        Err(error) => {
            let version = serde_json::from_str::<PayloadVersion>(text)
                .ok()
                .and_then(|v| v.payload_version);
            match newer(version) {
                Some(newer) => unreadable(kind, newer.to_string()),
                None => unreadable(kind, format!("unreadable payload: {error}")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_from_a_newer_arauto_is_unreadable_not_an_error() {
        let payload = RawValue::from_string(
            serde_json::json!({ "payload_version": 99, "whatever": true }).to_string(),
        )
        .expect("valid JSON");
        match body_of("order-paid".to_owned(), Some(&payload)) {
            JobBody::Unreadable {
                kind, unreadable, ..
            } => {
                assert_eq!(kind, "order-paid");
                assert!(unreadable.contains("newer"), "{unreadable}");
            }
            other @ JobBody::Readable { .. } => panic!("read {other:?}"),
        }
        match body_of("order-teleported".to_owned(), None) {
            JobBody::Unreadable { unreadable, .. } => {
                assert!(unreadable.contains("order-teleported"), "{unreadable}");
            }
            other @ JobBody::Readable { .. } => panic!("read {other:?}"),
        }
    }
}
