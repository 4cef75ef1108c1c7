//! Turning a planned notification into a queue job. Kept apart from the job
//! types so that the queue (which stores [`JobPayload`](super::JobPayload))
//! and this module (which builds [`NewJob`]) do not import each other.

use super::PlannedNotification;
use crate::queue::NewJob;

impl PlannedNotification {
    /// The queue job of this notification for order `order_id` (number
    /// `order_number`) of `store`.
    pub fn new_job(
        &self,
        store: &str,
        order_id: &str,
        order_number: &str,
        max_attempts: u32,
    ) -> NewJob {
        NewJob {
            channel: self.channel.clone(),
            store: store.to_owned(),
            order_id: order_id.to_owned(),
            kind: self.kind,
            priority: self.queue_priority(),
            due_at: self.due_at,
            expires_at: Some(self.expires_at),
            max_attempts,
            dedupe_keys: self.dedupe_keys(),
            payload: self.payload(order_number),
        }
    }
}
