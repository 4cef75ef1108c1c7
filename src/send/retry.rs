//! What to do after a failed send: retry later, dead-letter, or pause the channel.
//!
//! * **Back-off**: capped exponential with jitter — `base × 2^(n−1)` for the
//!   n-th attempt (30 s, 60 s, 2 min, 4 min …), capped at `cap` (1 h), then
//!   multiplied by a uniform factor in `[1 − jitter, 1 + jitter]` (±20 %) from
//!   an injectable random source and clamped to `cap` again, so no wait ever
//!   exceeds the cap. A retry that would land at or after the job's expiry
//!   dead-letters it as expired instead (a late notification is worse than none).
//! * **Attempts are counted on claim** by the queue (a job that crashes the
//!   daemon still reaches dead-letter). [`RetryDecision::Retry::spend_attempt`]
//!   `= false` tells the queue to give the claimed attempt back.
//! * **Retry-after hints** (HTTP 429) are honoured exactly and do not spend an
//!   attempt: being told to wait is not a failure of the message.
//! * **Permanent** errors (invalid number, rejected template) dead-letter at once.
//! * **Unreachable** (the sender says the recipient is not on its channel at
//!   all) ends the job at once too; the dispatcher hands the notification to
//!   the channel's `fallback` when it has one, else dead-letters it.
//! * **Misconfigured** (credentials rejected, instance disconnected) pauses the
//!   channel instance until reload or `arauto queue resume`; the job goes back
//!   to pending without spending an attempt — a revoked token must not burn
//!   every queued job's attempts.
//! * **Sandbox faults** (the plugin trapped, ran out of fuel/memory, timed
//!   out) are retried with back-off and spend attempts: the input may be what
//!   crashes it, so it must eventually reach dead-letter.

use jiff::{SignedDuration, Timestamp};
use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};

use crate::config::channels;
use crate::decide::timing::add;
use crate::model::ErrorClass;

/// Retry settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Wait after the first failed attempt.
    pub base: SignedDuration,
    /// Longest wait.
    pub cap: SignedDuration,
    /// Relative jitter, e.g. `0.2` for ±20 %.
    pub jitter: f64,
    /// Attempts before dead-letter.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: channels::DEFAULT_RETRY_BASE,
            cap: channels::DEFAULT_RETRY_MAX,
            jitter: 0.2,
            max_attempts: channels::DEFAULT_MAX_ATTEMPTS,
        }
    }
}

/// Where a claimed job stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// Attempts spent, including the one that just failed (counted on claim, from 1).
    pub number: u32,
    /// The job's expiry.
    pub expires_at: Timestamp,
}

/// Why a job was dead-lettered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum DeadReason {
    /// The provider said it can never succeed.
    #[error("permanent failure: {message}")]
    Permanent {
        /// The plugin's message.
        message: String,
    },
    /// The sender said the recipient cannot be reached on this channel (the
    /// message already says so: it is the plugin error's text).
    #[error("{message}")]
    Unreachable {
        /// The plugin's message.
        message: String,
    },
    /// Every attempt failed.
    #[error("gave up after {attempts} attempts: {message}")]
    MaxAttempts {
        /// Attempts spent.
        attempts: u32,
        /// The last failure.
        message: String,
    },
    /// The next try would be after the job's expiry.
    #[error("expired before it could be retried: {message}")]
    Expired {
        /// The last failure.
        message: String,
    },
}

/// What the queue does with a failed job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RetryDecision {
    /// Try again at `at`.
    Retry {
        /// When.
        at: Timestamp,
        /// False: give the attempt counted on claim back.
        spend_attempt: bool,
    },
    /// Move to dead-letter.
    Dead {
        /// Why.
        reason: DeadReason,
    },
    /// Pause the channel instance; the job returns to pending, attempt given back.
    PauseChannel {
        /// The plugin's message, for the checklist.
        reason: String,
    },
}

impl RetryPolicy {
    /// The wait before retrying after failed attempt number `attempt` (from 1).
    pub fn backoff<R: Rng + ?Sized>(&self, attempt: u32, rng: &mut R) -> SignedDuration {
        let exponent = attempt.saturating_sub(1).min(62);
        let raw = self.base.as_secs_f64() * 2f64.powi(i32::try_from(exponent).unwrap_or(i32::MAX));
        let capped = raw.min(self.cap.as_secs_f64());
        let jitter = self.jitter.clamp(0.0, 1.0);
        let factor = if jitter > 0.0 {
            rng.random_range(1.0 - jitter..=1.0 + jitter)
        } else {
            1.0
        };
        let secs = (capped * factor).min(self.cap.as_secs_f64()).max(0.0);
        SignedDuration::try_from_secs_f64(secs).unwrap_or(self.cap)
    }

    /// Decide what happens to a job whose send just failed: `class` is the
    /// failure's [`ErrorClass`], `retry_after` the provider's hint. The hint
    /// counts only for a retryable failure (a sandbox fault never carries one).
    pub fn on_failure<R: Rng + ?Sized>(
        &self,
        class: ErrorClass,
        retry_after: Option<SignedDuration>,
        message: &str,
        attempt: Attempt,
        now: Timestamp,
        rng: &mut R,
    ) -> RetryDecision {
        let message = message.to_owned();
        let (at, spend_attempt) = match (class, retry_after) {
            (ErrorClass::Permanent, _) => {
                return RetryDecision::Dead {
                    reason: DeadReason::Permanent { message },
                };
            }
            (ErrorClass::Unreachable, _) => {
                return RetryDecision::Dead {
                    reason: DeadReason::Unreachable { message },
                };
            }
            (ErrorClass::Misconfigured, _) => {
                return RetryDecision::PauseChannel { reason: message };
            }
            (ErrorClass::Retryable, Some(wait)) => {
                (add(now, wait.max(SignedDuration::ZERO)), false)
            }
            (ErrorClass::Retryable, None) | (ErrorClass::Sandbox, _) => {
                if attempt.number >= self.max_attempts {
                    return RetryDecision::Dead {
                        reason: DeadReason::MaxAttempts {
                            attempts: attempt.number,
                            message,
                        },
                    };
                }
                (add(now, self.backoff(attempt.number, rng)), true)
            }
        };
        if at >= attempt.expires_at {
            return RetryDecision::Dead {
                reason: DeadReason::Expired { message },
            };
        }
        RetryDecision::Retry { at, spend_attempt }
    }
}
