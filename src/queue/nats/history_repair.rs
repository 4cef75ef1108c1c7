//! The repair of counted outcomes whose publish was lost.
//!
//! A counted outcome (`entered`, `sent`, `dead`, …) is published to the
//! history stream right after the job's write. A node that stops between
//! the two (a crash, a SIGKILL, a publish that failed) left `arauto report`
//! one short for that job: the job itself, and what was sent, were right.
//!
//! Each daemon now looks, with its hourly prune, at the jobs of the channels
//! it holds (so two nodes never repair the same job) that entered or ended
//! between [`WINDOW`] and [`GRACE`] ago, and publishes the outcome of each
//! that its view of the history lacks: the same message (subject, content
//! and `Nats-Msg-Id`, `<job>.entered` or `<job>.<claim>.<outcome>.<finished
//! ms>`) the lost publish would have been. So a repair that races a publish
//! which was only slow is dropped by the stream's duplicate window (two
//! minutes) instead of counting twice; a publish delayed by more than that
//! after a repair (a process paused mid-publish for minutes) is the one case
//! left that counts twice.
//!
//! Which outcomes a job already has comes from the history view: the
//! outcomes published in the last [`REMEMBERED`] (measured on the stream's
//! own timestamps, not on this node's clock), by job. A job requeued after
//! ending counts its second ending of the same kind as already counted (the
//! repair never counts twice, at worst once too few, as before). The repair
//! runs only while the jobs and history views are current.

use jiff::{SignedDuration, Timestamp};

use super::Inner;
use crate::queue::{Job, Outcome, Result, Scope};

/// How long after its job's write an outcome counts as lost, not late.
pub(super) const GRACE: SignedDuration = SignedDuration::from_mins(10);
/// How far back jobs are looked at: over an hour (the prune's period) plus
/// the grace, so every job is looked at by at least one repair.
pub(super) const WINDOW: SignedDuration = SignedDuration::from_hours(3);
/// How long the view remembers a job's published outcomes (more than
/// [`WINDOW`]: an outcome of a job in the window is remembered).
pub(super) const REMEMBERED: SignedDuration = SignedDuration::from_hours(4);

/// The outcome of `job`'s ending the history counts, if any.
fn ending(job: &Job) -> Option<(Outcome, Timestamp)> {
    let outcome = Outcome::of_terminal(job.state)?;
    let outcome = if job.fell_back_to.is_some() {
        Outcome::FellBack
    } else {
        outcome
    };
    Some((outcome, job.finished_at?))
}

impl Inner {
    /// Publishes the outcomes of the jobs of this node's channels that the
    /// history lacks (see the module docs); how many.
    pub(super) async fn repair_history(&self, now: Timestamp) -> Result<usize> {
        if !self.mirror.jobs_and_history_current() {
            return Ok(0);
        }
        let (Ok(from), Ok(to)) = (now.checked_sub(WINDOW), now.checked_sub(GRACE)) else {
            return Ok(0);
        };
        let within = |at: Timestamp| at >= from && at <= to;
        let missing: Vec<(Job, Outcome)> = self.mirror.read(|view| {
            let mut missing = Vec::new();
            for stored in view.jobs.values() {
                let job = &stored.job;
                if within(job.created_at)
                    && !view
                        .recent_outcomes
                        .contains_key(&(job.id, Outcome::Entered))
                {
                    missing.push((job.clone(), Outcome::Entered));
                }
                if let Some((outcome, finished)) = ending(job)
                    && within(finished)
                    && !view.recent_outcomes.contains_key(&(job.id, outcome))
                {
                    missing.push((job.clone(), outcome));
                }
            }
            missing
        });
        let mut repaired = 0;
        for (job, outcome) in missing {
            // Only the channel's holder: one repairer per job.
            if !self.fence.holds(Scope::Channel(job.channel.as_str())) {
                continue;
            }
            if outcome == Outcome::Entered {
                self.publish_history(
                    &job,
                    Outcome::Entered,
                    job.created_at,
                    format!("{}.entered", job.id),
                )
                .await?;
            } else {
                self.count_terminal(&job).await?;
            }
            tracing::info!(
                job = %job.id,
                channel = %job.channel,
                store = %job.store,
                outcome = outcome.as_str(),
                "counted an outcome whose publish to the history was lost (a node stopped between the job's write and its publish)"
            );
            repaired += 1;
        }
        Ok(repaired)
    }
}
