//! What a notification job carries through the queue, between the poller that
//! plans it and the dispatcher that sends it.

use serde::{Deserialize, Serialize};

use crate::decide::{JobFacts, PlannedNotification, QuietHoursMode};
use crate::queue::NewJob;

/// Version of [`JobPayload`]'s JSON shape.
pub const JOB_PAYLOAD_VERSION: u32 = 1;

/// The queue job's payload: what the notification is about. The text is not
/// stored: it is rendered at send time from the order's latest snapshot, so a
/// job delayed by quiet hours or retries never tells stale news.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobPayload {
    /// Shape version.
    pub v: u32,
    /// Kind, happy-path priority, status and tracking code the job was planned for.
    pub facts: JobFacts,
    /// The store-facing order number (for logs and listings).
    pub order_number: String,
    /// What quiet hours do to this job at send time.
    pub quiet_hours: QuietHoursMode,
}

/// The queue priority of a planned notification: lower is claimed first among
/// due jobs. Cancellation and refund notices go before happy-path news.
pub fn queue_priority(planned: &PlannedNotification) -> u8 {
    if planned.kind.is_terminal() { 0 } else { 1 }
}

/// Turn a planned notification of `order_id` in `store` into a queue job.
pub fn new_job(
    store: &str,
    order_id: &str,
    order_number: &str,
    planned: &PlannedNotification,
    max_attempts: u32,
) -> NewJob {
    let payload = JobPayload {
        v: JOB_PAYLOAD_VERSION,
        facts: planned.facts(),
        order_number: order_number.to_owned(),
        quiet_hours: planned.quiet_hours,
    };
    NewJob {
        lane: planned.channel.clone(),
        store: store.to_owned(),
        order_id: order_id.to_owned(),
        kind: planned.kind.as_str().to_owned(),
        priority: queue_priority(planned),
        due_at: planned.due_at,
        expires_at: Some(planned.expires_at),
        max_attempts,
        dedupe_keys: vec![
            planned.dedupe_key.clone(),
            format!("fingerprint/{}", planned.fingerprint),
        ],
        // Serialising plain data into a JSON value cannot fail.
        payload: serde_json::to_value(&payload).unwrap_or(serde_json::Value::Null),
    }
}

/// Read a job's payload back.
pub fn payload_of(value: &serde_json::Value) -> Result<JobPayload, String> {
    let payload: JobPayload = serde_json::from_value(value.clone())
        .map_err(|e| format!("unreadable job payload: {e}"))?;
    if payload.v > JOB_PAYLOAD_VERSION {
        return Err(format!(
            "job payload version {} is newer than this arauto understands ({JOB_PAYLOAD_VERSION})",
            payload.v
        ));
    }
    Ok(payload)
}
