//! One turn of a store's poller: a sweep (or, while the store is paused on
//! refused credentials, a check of them), and when the next turn is due.
//! [`super::scheduler::PollScheduler`] runs the turns of every store: a sweep
//! every `poll_interval` (with ±10 % jitter so stores added together drift
//! apart), one at a time — and sooner when a verified push lands in the
//! store's [`PushInbox`]. A push-triggered sweep is the same sweep (same
//! pages, decisions and atomic commits), with the pushed order ids as the
//! first page's `look_at`; bursts of pushes coalesce into one sweep, at most
//! one every [`MIN_PUSH_GAP`]. Pushes only ever make polling sooner: every
//! sweep, push-triggered or scheduled, sets the next scheduled one a
//! (jittered) interval after it — harmless, since a push-triggered sweep is a
//! full sweep — so a store is swept at least once per interval and a lost
//! push delays a message, never loses it.
//!
//! Any sweep, scheduled or not, carries the pushed ids pending at its start.
//! A failed sweep hands them back once; a second failure, or a sandbox fault
//! (a plugin timeout or crash, which they may have caused), drops the host's
//! copy and leaves their changes to the listing (ids a connector already
//! carries in its committed cursor are its own to retry).
//!
//! A sweep that finds nothing new is kept in the daemon's [`IdlePolls`]
//! instead of written (see [`super::idle`]); when a store's poller stops
//! (shutdown, the store removed, its lease handed over) the scheduler writes
//! what they left unwritten, so a clean restart loses nothing.

use std::time::Duration;

use jiff::SignedDuration;
use rand::RngExt;
use tokio_util::sync::CancellationToken;

use super::idle::IdlePolls;
use super::inbox::PushInbox;
use super::sweep::{Sweep, SweepError};
use crate::clock::Clock;
use crate::heartbeat::Heartbeat;
use crate::metrics::Metrics;
use crate::queue::{ChannelWatch, ErrorClass, SharedStore, StoreStatus};
use crate::state::StateHandle;

/// The first sweep of a store starts within this long (or within its poll
/// interval, if that is shorter) after its poller starts, so stores started
/// together do not all poll at the same instant.
pub const START_SPREAD: Duration = Duration::from_secs(5);
/// Longest a poller may go without progress before the watchdog calls it stuck:
/// a page is one plugin call (≤ its call timeout) plus one commit.
pub const HEARTBEAT_SILENCE: Duration = Duration::from_secs(300);
/// Shortest gap between the end of a sweep and a sweep a push asks for: a
/// burst of deliveries (a platform repeats them) costs one sweep, not one
/// per delivery.
pub const MIN_PUSH_GAP: Duration = Duration::from_secs(1);
/// Shortest wait between two sweeps of a failing store.
const MIN_ERROR_BACKOFF: SignedDuration = SignedDuration::from_secs(10);
/// A store paused on refused credentials checks them again after its poll
/// interval, but at most this long…
const FIRST_CREDENTIAL_RECHECK: Duration = Duration::from_secs(30);
/// …doubling each time they are still refused, up to this.
const MAX_CREDENTIAL_RECHECK: Duration = Duration::from_secs(300);

/// What a store's poller remembers from one turn to the next about refused
/// credentials.
#[derive(Clone, Copy, Debug, Default)]
pub struct Pace {
    /// While the credentials are refused: how long until they are checked again.
    pub paused: Option<Duration>,
    /// The re-check back-off keeps growing until a sweep succeeds, so a
    /// connector whose `check` passes while `poll` is refused is not retried
    /// at the first step forever.
    pub last_recheck: Option<Duration>,
}

/// How a turn ended.
pub enum TurnEnd {
    /// The next turn is due after `wait` (from now); a push may start a sweep
    /// after `push_ready` (from now; `None`: as before this turn).
    Next {
        /// Until the next turn.
        wait: Duration,
        /// Until a push may start a sweep.
        push_ready: Option<Duration>,
        /// The store was paused in this turn: told when an operator resumes
        /// it (watched from before the pause was recorded, so a resume right
        /// after the log line is not missed).
        resume: Option<ChannelWatch>,
    },
    /// The store is no longer configured: its poller ends.
    Gone,
    /// Stopped from outside (shutdown, the store removed or handed over).
    Stopped,
}

/// What one turn works with.
pub struct Turn<'a> {
    /// The store.
    pub store_id: &'a str,
    /// Its pushed orders.
    pub inbox: &'a PushInbox,
    /// The current configuration (read live, so a reload applies at once).
    pub state: &'a StateHandle,
    /// The state database.
    pub db: &'a SharedStore,
    /// Counters.
    pub metrics: &'a Metrics,
    /// "Now".
    pub clock: &'a dyn Clock,
    /// Beaten after every committed page.
    pub heartbeat: &'a Heartbeat,
    /// Ends the turn at the next await (its sweep's committed pages stay).
    pub stop: &'a CancellationToken,
    /// Where polls that find nothing new are kept.
    pub idle: Option<&'a IdlePolls>,
}

/// When a store's first turn is due after its poller starts: a random point
/// within [`START_SPREAD`] (or its poll interval, if shorter).
pub fn first_delay(poll_interval: Option<SignedDuration>) -> Duration {
    let spread = poll_interval.map_or(START_SPREAD, |interval| {
        START_SPREAD.min(interval.unsigned_abs())
    });
    spread.mul_f64(rand::rng().random_range(0.0..1.0))
}

impl Turn<'_> {
    /// Run one turn. `pushed`: a push brought it forward. `first`: the
    /// poller's first turn, which first honours a Retry-After recorded
    /// before a restart (then its turn is only a wait).
    pub async fn run(&self, pace: &mut Pace, pushed: bool, first: bool) -> TurnEnd {
        let Self {
            store_id,
            inbox,
            state: state_handle,
            db,
            metrics,
            clock,
            heartbeat,
            stop: shutdown,
            idle,
        } = *self;
        heartbeat.beat();
        if first
            && let Ok(Some(status)) = db.store_status(store_id).await
            && let Some(at) = status.poll_not_before
        {
            let wait = clock
                .now()
                .duration_until(at)
                .max(SignedDuration::ZERO)
                .unsigned_abs();
            if !wait.is_zero() {
                return TurnEnd::Next {
                    wait,
                    push_ready: Some(wait),
                    resume: None,
                };
            }
        }
        let state = state_handle.load();
        let Some(store) = state.stores.get(store_id).cloned() else {
            return TurnEnd::Gone;
        };
        drop(state);
        let interval = store.config.poll_interval;
        if let Some(wait) = pace.paused {
            let checked = tokio::select! {
                // Boxed, like the sweep below: see there.
                checked = Box::pin(store.connector.check()) => checked,
                () = shutdown.cancelled() => return TurnEnd::Stopped,
            };
            match checked {
                Ok(()) => {
                    tracing::info!(
                        store = %store_id,
                        "the platform accepts the credentials again: polling resumed"
                    );
                    pace.paused = None;
                    let lifted = db
                        .update_store_status(
                            store_id,
                            Box::new(|status: &mut StoreStatus| {
                                status.paused = None;
                                status.credentials_recheck_at = None;
                            }),
                        )
                        .await;
                    if let Err(error) = lifted {
                        tracing::error!(store = %store_id, "cannot record that polling resumed: {error}");
                    }
                }
                Err(error) => {
                    let wait = (wait * 2).min(MAX_CREDENTIAL_RECHECK);
                    tracing::warn!(
                        store = %store_id,
                        retry_in_s = wait.as_secs(),
                        "polling still paused, the credentials check failed: {error}; checking again in {}s",
                        wait.as_secs()
                    );
                    schedule_recheck(db, store_id, clock, wait).await;
                    pace.paused = Some(wait);
                    pace.last_recheck = Some(wait);
                    return TurnEnd::Next {
                        wait,
                        push_ready: None,
                        resume: None,
                    };
                }
            }
        }
        let sweep = Sweep {
            store: &store,
            db: db.as_ref(),
            metrics,
            clock,
            shutdown,
            heartbeat: Some(heartbeat),
            idle,
        };
        let started = tokio::time::Instant::now();
        let trigger = if pushed { "push" } else { "schedule" };
        let look_at = inbox.take_pending();
        let pending = look_at.clone();
        let looked_at = pending.len();
        // A sweep commits page by page, each page atomically (a page commit
        // already submitted completes even if its caller goes away), so an
        // unfinished sweep can be dropped on shutdown without losing
        // anything: the next start polls again from the last committed
        // cursor. Waiting instead would hold the whole daemon's stop for as
        // long as a hung Loja Integrada request takes (up to the call
        // timeout, often past the shutdown timeout).
        //
        // Boxed: only the sweeps under way (at most the sweep gate's
        // permits) hold their state machine, not the turn's task.
        let outcome = tokio::select! {
            outcome = Box::pin(sweep.run_looking_at(look_at)) => outcome,
            () = shutdown.cancelled() => {
                tracing::info!(
                    store = %store_id,
                    "poll interrupted by shutdown; the next start polls again from the last committed page"
                );
                return TurnEnd::Stopped;
            }
        };
        let failed = outcome.is_err();
        match &outcome {
            Ok(_) => inbox.sweep_succeeded(),
            Err(error) => {
                // Once, and not after a fault the ids may have caused (a
                // deadline): a sweep must not fail forever because of them.
                let give_back = error.class() != ErrorClass::Sandbox;
                let dropped = inbox.sweep_failed(pending, give_back);
                if dropped > 0 {
                    tracing::info!(
                        store = %store_id,
                        dropped,
                        "{dropped} pushed order(s) are not looked at again after this failed poll; the listing finds their changes"
                    );
                }
            }
        }
        let mut resume = None;
        let wait = match outcome {
            Ok(report) => {
                pace.last_recheck = None;
                if report.page_cap_reached {
                    tracing::warn!(
                        store = %store_id,
                        pages = report.pages,
                        orders = report.orders,
                        queued = report.enqueued,
                        "poll stopped after {} pages (max_pages_per_sweep): the connector still had more; the next poll goes on from there. If this repeats every poll, the connector may be paging endlessly",
                        report.pages
                    );
                } else {
                    tracing::info!(
                        store = %store_id,
                        pages = report.pages,
                        orders = report.orders,
                        queued = report.enqueued,
                        cancelled = report.cancelled,
                        looked_at,
                        trigger,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "poll complete"
                    );
                }
                jittered(interval)
            }
            Err(error) => match error.class() {
                ErrorClass::Misconfigured => {
                    let wait = pace.last_recheck.map_or_else(
                        || first_recheck(interval),
                        |w| (w * 2).min(MAX_CREDENTIAL_RECHECK),
                    );
                    // Watched before anything says the store is paused: an
                    // operator who reads the line below and resumes the
                    // store at once must be heard.
                    resume = Some(db.watch_store(store_id));
                    // Recorded before the line is logged: whoever reads the
                    // line (an operator, a test) and then runs `arauto check`
                    // must find the re-check time already there.
                    schedule_recheck(db, store_id, clock, wait).await;
                    tracing::error!(
                        store = %store_id,
                        retry_in_s = wait.as_secs(),
                        "poll failed, store paused: {error}; the credentials are checked again in {}s (then less and less often, at least every {}s) until they work; fix them and reload, or `arauto queue resume --store {store_id}`",
                        wait.as_secs(),
                        MAX_CREDENTIAL_RECHECK.as_secs()
                    );
                    pace.paused = Some(wait);
                    pace.last_recheck = Some(wait);
                    wait
                }
                _ => {
                    let wait = retry_wait(&error, interval);
                    tracing::warn!(
                        store = %store_id,
                        retry_in_s = wait.as_secs(),
                        "poll failed: {error}"
                    );
                    wait
                }
            },
        };
        TurnEnd::Next {
            wait,
            push_ready: Some(if failed { wait } else { MIN_PUSH_GAP }),
            resume,
        }
    }
}

/// The first credential re-check of a paused store: after its poll interval,
/// at most [`FIRST_CREDENTIAL_RECHECK`].
fn first_recheck(interval: SignedDuration) -> Duration {
    interval
        .unsigned_abs()
        .clamp(Duration::from_secs(1), FIRST_CREDENTIAL_RECHECK)
}

/// Record when a paused store's credentials are checked again (`check` shows it).
async fn schedule_recheck(db: &SharedStore, store_id: &str, clock: &dyn Clock, wait: Duration) {
    let at = SignedDuration::try_from(wait)
        .ok()
        .and_then(|wait| clock.now().checked_add(wait).ok());
    let recorded = db
        .update_store_status(
            store_id,
            Box::new(move |status: &mut StoreStatus| {
                status.credentials_recheck_at = at;
            }),
        )
        .await;
    if let Err(error) = recorded {
        tracing::error!(store = %store_id, "cannot record the next credentials check: {error}");
    }
}

/// `interval` ± 10 %.
fn jittered(interval: SignedDuration) -> Duration {
    let base = interval.unsigned_abs();
    base.mul_f64(rand::rng().random_range(0.9..1.1))
}

/// When to try again after a failed sweep. The platform's hint (a 429's
/// Retry-After) is honoured as given: polling sooner would only be refused
/// again. Without one, a fifth of the interval but at least
/// [`MIN_ERROR_BACKOFF`] — and never longer than the interval itself, so a
/// failing store is never polled less often than a healthy one.
fn retry_wait(error: &SweepError, interval: SignedDuration) -> Duration {
    let wait = match error.retry_hint() {
        Some(hint) => hint,
        None => (interval / 5).max(MIN_ERROR_BACKOFF).min(interval),
    };
    wait.unsigned_abs()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::PluginError;

    fn failure(retry_after: Option<SignedDuration>) -> SweepError {
        SweepError::Plugin(PluginError::Retryable {
            message: "HTTP 503".into(),
            retry_after,
        })
    }

    #[test]
    fn a_failed_sweep_is_retried_within_the_interval_unless_the_platform_asks_for_more() {
        let five_min = SignedDuration::from_mins(5);
        let one_sec = SignedDuration::from_secs(1);
        assert_eq!(
            retry_wait(&failure(None), five_min),
            Duration::from_secs(60)
        );
        assert_eq!(retry_wait(&failure(None), one_sec), Duration::from_secs(1));
        assert_eq!(
            retry_wait(&failure(None), SignedDuration::from_secs(30)),
            Duration::from_secs(10)
        );
        assert_eq!(
            retry_wait(&failure(Some(SignedDuration::from_secs(90))), five_min),
            Duration::from_secs(90)
        );
        assert_eq!(
            retry_wait(&failure(Some(SignedDuration::from_secs(20))), one_sec),
            Duration::from_secs(20),
            "a 429's Retry-After wins over a short interval"
        );
    }
}
