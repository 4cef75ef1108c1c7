//! The poll commit of the NATS backend: cursor, order records, jobs,
//! cancellations and store status of one poll, made effectively atomic
//! without a multi-key transaction by the order of its writes.
//!
//! Order (the argument is in `docs/cluster-state.md`):
//! 1. every check, and the fence, before anything is written;
//! 2. jobs, each by its dedupe keys (taken with `create`) then its record;
//! 3. cancellations (pending only; repeating one is a no-op);
//! 4. order records (puts and deletes; repeating them writes the same);
//! 5. the store's staged jobs released: step 2 writes jobs *staged*
//!    (unclaimable), so no dispatcher reads an order record before step 4
//!    wrote it; this step releases this commit's jobs and any an earlier,
//!    stopped commit of the store left staged (their records exist by now);
//! 6. the store status;
//! 7. the cursor, last: until it moves, the next poll reads the same orders
//!    again and plans the same jobs, which steps 2 and 3 absorb.

use super::jobs::{check_name, validate_new_job};
use super::reads::PollRecord;
use super::{Inner, keys};
use crate::queue::{Error, PollCommit, PollOutcome, Result, Scope};

/// Longest store or order id accepted.
const MAX_NAME_LEN: usize = 512;

/// A boundary between two writes of a poll commit, for the crash-safety
/// tests ([`super::NatsStore::crash_poll_commit_after`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollStep {
    /// Inside the first job: its dedupe keys are taken, its record is not written.
    DedupeKeys,
    /// Every job is written.
    Jobs,
    /// Every cancellation is applied.
    Cancellations,
    /// Every order record is written or deleted.
    OrderRecords,
    /// The store's staged jobs are released (claimable).
    Released,
    /// The store status is written (only the cursor is missing).
    Status,
}

/// The error a commit stopped by the test hook returns.
pub(super) fn crashed(step: PollStep) -> Error {
    Error::Nats {
        target: "poll commit".to_owned(),
        op: "test hook",
        source: std::sync::Arc::new(std::io::Error::other(format!(
            "stopped after step {step:?} as the test asked (a simulated crash)"
        ))),
    }
}

impl Inner {
    /// True if the test hook asks to stop after `step`.
    pub(super) fn crash_point(&self, step: PollStep) -> bool {
        *self
            .crash_after
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            == Some(step)
    }

    fn checkpoint(&self, step: PollStep) -> Result<()> {
        if self.crash_point(step) {
            Err(crashed(step))
        } else {
            Ok(())
        }
    }

    pub(super) async fn commit_poll(&self, commit: PollCommit) -> Result<PollOutcome> {
        let PollCommit {
            store,
            cursor,
            order_records,
            forget_orders,
            jobs,
            cancel,
            status,
        } = commit;
        // 1. Checks: a bad commit writes nothing.
        let what = || format!("poll commit of store {store:?}");
        check_name(&what, "store", &store, MAX_NAME_LEN)?;
        for job in &jobs {
            validate_new_job(job)?;
            if job.store != store {
                return Err(Error::Invalid {
                    what: what(),
                    reason: format!(
                        "it contains a job for order {:?} of another store, {:?}",
                        job.order_id, job.store
                    ),
                });
            }
        }
        for order_id in order_records.iter().map(|(id, _)| id).chain(&forget_orders) {
            check_name(&what, "an order id", order_id, MAX_NAME_LEN)?;
        }
        let status_bytes = serde_json::to_vec(&status).map_err(|error| Error::Invalid {
            what: format!("status of store {store:?}"),
            reason: error.to_string(),
        })?;
        self.fenced(Scope::Store(&store))?;

        // 2. Jobs.
        let mut outcome = PollOutcome {
            jobs: Vec::with_capacity(jobs.len()),
            cancelled: Vec::with_capacity(cancel.len()),
        };
        // The fence is asked again before every write, not once per
        // commit: a commit can take many round trips, and a node paused or
        // cut off in the middle must not go on writing for a store another
        // node now polls.
        for job in jobs {
            self.fenced(Scope::Store(&store))?;
            outcome
                .jobs
                .push(self.insert_job(job, None, true, None).await?);
        }
        self.checkpoint(PollStep::Jobs)?;

        // 3. Cancellations.
        for (id, reason) in &cancel {
            self.fenced(Scope::Store(&store))?;
            outcome
                .cancelled
                .push((*id, self.cancel_one(*id, reason).await?));
        }
        self.checkpoint(PollStep::Cancellations)?;

        // 4. Order records.
        let orders_bucket = self.names.bucket("orders");
        // Each a compare-and-set on the revision this poll read (see
        // `reads.rs`), asking the fence first.
        for (order_id, record) in order_records {
            let key = keys::order_key(&store, &order_id);
            self.write_polled(
                &store,
                PollRecord::Order(order_id),
                &self.buckets.orders,
                &orders_bucket,
                &key,
                Some(record),
            )
            .await?;
        }
        for order_id in forget_orders {
            let key = keys::order_key(&store, &order_id);
            self.write_polled(
                &store,
                PollRecord::Order(order_id),
                &self.buckets.orders,
                &orders_bucket,
                &key,
                None,
            )
            .await?;
        }
        self.checkpoint(PollStep::OrderRecords)?;

        // 5. Staged jobs released, now that their order records exist.
        self.release_staged(&store).await?;
        self.checkpoint(PollStep::Released)?;

        // 6. Store status.
        self.write_polled(
            &store,
            PollRecord::Status,
            &self.buckets.stores,
            &self.names.bucket("stores"),
            &keys::store_key(&store),
            Some(status_bytes),
        )
        .await?;
        self.checkpoint(PollStep::Status)?;

        // 7. The cursor, last.
        if let Some(cursor) = cursor {
            self.write_polled(
                &store,
                PollRecord::Cursor,
                &self.buckets.cursors,
                &self.names.bucket("cursors"),
                &keys::store_key(&store),
                Some(cursor.into_bytes()),
            )
            .await?;
        }
        Ok(outcome)
    }
}
