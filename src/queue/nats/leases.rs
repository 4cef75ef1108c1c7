//! When a running job's lease has ended, judged without comparing the wall
//! clocks of two nodes.
//!
//! A claim writes `lease_until` = the claiming node's clock + the lease.
//! Comparing that with another node's clock made the recovery depend on the
//! two clocks agreeing: a node whose clock ran a minute ahead took back, and
//! sent again, a job whose send was still under way. So:
//!
//! * a claim **this process** wrote is judged by this process's clock, the
//!   one that wrote `lease_until` (`lease_until <= now`), as on one node;
//! * a claim written by **another process** (another node, or this node
//!   before a restart) is judged by how long *this* process has watched it
//!   unchanged: it ends once this process's own clock has moved on by a
//!   whole lease since it first saw that claim running. It saw the claim
//!   only after it was written, so this never ends a lease earlier than the
//!   claimer's own clock would, whatever the two clocks say; only their
//!   rates matter. The claimer's `lease_until` is not read at all, so a
//!   clock running behind does not hold a job back either.
//!
//! A claim whose completion this process is still trying to write (its send
//! happened; the write waits out a stream's leader election) has not ended
//! for this process, whatever its `lease_until` says: recovering it would
//! send the job again ([`JobLeases::completing`]).
//!
//! Who may recover at all is decided elsewhere: only the channel's holder
//! claims (the claim is fenced by its `CLOCK_BOOTTIME` slot lease), and a
//! holder taking the channel over returns every running job at once
//! (`take_over_channel`), since the slot lease of the previous holder has
//! ended by then. This module covers what is left: a previous holder's claim
//! that the take-over did not see (its view lagged, or the take-over
//! failed and was logged), and a tool's `recover_expired_leases`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use jiff::{SignedDuration, Timestamp};

use crate::queue::{Claim, Job, JobId};

/// Claims remembered per kind before the oldest memory is dropped (a
/// dropped own claim is judged as a foreign one: later, never earlier).
const REMEMBERED: usize = 100_000;

/// What this process knows about the claims of running jobs.
#[derive(Default)]
pub(super) struct JobLeases {
    /// Claims this process wrote: job → claim number.
    own: Mutex<HashMap<JobId, u32>>,
    /// Claims of other processes: (job, claim number) → when this process
    /// first saw it running, by its own clock.
    foreign: Mutex<HashMap<(JobId, u32), Timestamp>>,
    /// Claims whose completion this process is writing: (job, claim
    /// number) → how many [`Completing`] guards hold it.
    completing: Arc<Mutex<HashMap<(JobId, u32), usize>>>,
}

/// A completion under way ([`JobLeases::completing`]); its claim may end
/// again once every guard of it is dropped. Owns its share of the set, so
/// a completion handed to a task of its own keeps it ([`Completing::again`]).
pub(super) struct Completing {
    set: Arc<Mutex<HashMap<(JobId, u32), usize>>>,
    claim: (JobId, u32),
}

impl Completing {
    fn hold(set: &Arc<Mutex<HashMap<(JobId, u32), usize>>>, claim: (JobId, u32)) -> Self {
        *set.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(claim)
            .or_default() += 1;
        Self {
            set: Arc::clone(set),
            claim,
        }
    }

    /// Another guard of the same completion, taken before this one is
    /// dropped, so the claim never ends in between.
    pub(super) fn again(&self) -> Self {
        Self::hold(&self.set, self.claim)
    }
}

impl Drop for Completing {
    fn drop(&mut self) {
        let mut set = self.set.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = set.get_mut(&self.claim) {
            *count -= 1;
            if *count == 0 {
                set.remove(&self.claim);
            }
        }
    }
}

impl JobLeases {
    /// This process wrote claim `claims` of job `id`.
    pub(super) fn claimed(&self, id: JobId, claims: u32) {
        let mut own = self.own.lock().unwrap_or_else(PoisonError::into_inner);
        if own.len() >= REMEMBERED {
            own.clear();
        }
        own.insert(id, claims);
    }

    /// This process is writing the completion of `claim`: until the
    /// returned guard is dropped, that claim's lease has not ended for this
    /// process (its send happened; only the record is late).
    pub(super) fn completing(&self, claim: Claim) -> Completing {
        Completing::hold(&self.completing, (claim.id, claim.claim))
    }

    /// Whether this process is writing the completion of running `job`'s
    /// current claim.
    pub(super) fn is_completing(&self, job: &Job) -> bool {
        self.completing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(&(job.id, job.claims))
    }

    /// Job `id` is no longer running under a claim of this process.
    pub(super) fn ended(&self, id: JobId) {
        self.own
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }

    /// Whether the lease of running `job` has ended at `now` (this
    /// process's clock). `lease`: the length of this channel's lease, for a
    /// claim of another process; `None` (a tool's recovery, which knows no
    /// lease) compares the claimer's `lease_until` with `now` instead.
    pub(super) fn expired(&self, job: &Job, now: Timestamp, lease: Option<SignedDuration>) -> bool {
        if self.is_completing(job) {
            return false;
        }
        let Some(until) = job.lease_until else {
            return true;
        };
        let own = self
            .own
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&job.id)
            .is_some_and(|claims| *claims == job.claims);
        if own {
            return until <= now;
        }
        let Some(lease) = lease else {
            return until <= now;
        };
        let mut foreign = self.foreign.lock().unwrap_or_else(PoisonError::into_inner);
        if foreign.len() >= REMEMBERED {
            foreign.clear();
        }
        let first_seen = *foreign.entry((job.id, job.claims)).or_insert(now);
        now.duration_since(first_seen) >= lease
    }

    /// Forgets the foreign claims of `channel`'s jobs that are not among
    /// `running` (each job with its claim number) any more.
    pub(super) fn keep_foreign(
        &self,
        running: &[(JobId, u32)],
        of_channel: &dyn Fn(JobId) -> bool,
    ) {
        self.foreign
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|key, _| !of_channel(key.0) || running.contains(key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(id: u128, claims: u32, until: &str) -> Job {
        let created = at("2025-03-14T12:00:00Z");
        Job {
            id: JobId::from_u128(id),
            channel: "wa".into(),
            store: "loja".into(),
            order_id: "1".into(),
            priority: 5,
            state: crate::queue::JobState::Running,
            created_at: created,
            due_at: created,
            expires_at: None,
            attempt: 1,
            max_attempts: 3,
            claims,
            lease_until: Some(at(until)),
            last_error: None,
            attempts_log: Vec::new(),
            finished_at: None,
            outcome_reason: None,
            receipt: None,
            dedupe_keys: Vec::new(),
            fell_back_to: None,
            fallback_of: None,
            body: crate::queue::JobBody::Readable {
                kind: crate::model::NotificationKind::OrderPaid,
                payload: crate::job::JobPayload {
                    payload_version: crate::job::JOB_PAYLOAD_VERSION,
                    priority: 1,
                    status_code: "pedido_pago".into(),
                    tracking: None,
                    order_number: "1".into(),
                    quiet_hours: crate::job::QuietHoursMode::Defer,
                },
            },
        }
    }

    fn at(text: &str) -> Timestamp {
        text.parse().expect("a time")
    }

    #[test]
    fn an_own_claim_ends_by_this_clock_a_foreign_one_after_a_whole_lease_watched() {
        let leases = JobLeases::default();
        let lease = Some(SignedDuration::from_secs(60));
        // Claimed here at 12:00 for 60 s.
        let own = running(1, 1, "2025-03-14T12:01:00Z");
        leases.claimed(own.id, 1);
        assert!(!leases.expired(&own, at("2025-03-14T12:00:59Z"), lease));
        assert!(leases.expired(&own, at("2025-03-14T12:01:00Z"), lease));

        // Claimed by a node whose clock runs 10 minutes behind: its
        // lease_until is long past by this clock, yet the lease counts from
        // when this node first saw the claim.
        let foreign = running(2, 1, "2025-03-14T11:51:00Z");
        assert!(!leases.expired(&foreign, at("2025-03-14T12:00:00Z"), lease));
        assert!(!leases.expired(&foreign, at("2025-03-14T12:00:59Z"), lease));
        assert!(leases.expired(&foreign, at("2025-03-14T12:01:00Z"), lease));
        // A new claim of the same job is watched afresh.
        let reclaimed = running(2, 2, "2025-03-14T11:52:00Z");
        assert!(!leases.expired(&reclaimed, at("2025-03-14T12:01:00Z"), lease));

        // A job this node claimed before its lease moved to another claim
        // (a recovery elsewhere) is foreign again.
        let taken = running(1, 2, "2025-03-14T12:03:00Z");
        assert!(!leases.expired(&taken, at("2025-03-14T12:05:00Z"), lease));
    }

    #[test]
    fn a_claim_whose_completion_is_being_written_does_not_end() {
        let leases = JobLeases::default();
        let lease = Some(SignedDuration::from_secs(60));
        let job = running(3, 1, "2025-03-14T12:01:00Z");
        leases.claimed(job.id, 1);
        let later = at("2025-03-14T12:02:00Z");
        {
            let _completing = leases.completing(Claim {
                id: job.id,
                claim: 1,
            });
            assert!(!leases.expired(&job, later, lease));
            assert!(!leases.expired(&job, later, None));
        }
        // Given up: the claim ends by its lease again.
        assert!(leases.expired(&job, later, lease));

        // Handed to a task of its own: held until the last guard goes.
        let first = leases.completing(Claim {
            id: job.id,
            claim: 1,
        });
        let handed = first.again();
        drop(first);
        assert!(!leases.expired(&job, later, lease));
        drop(handed);
        assert!(leases.expired(&job, later, lease));
    }
}
