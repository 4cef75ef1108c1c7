//! Per-store push inboxes: what the webhook listener ([`super::push`]) hands
//! to a store's poller ([`super::service`]).
//!
//! A verified push never carries content into the pipeline: it only wakes the
//! store's poller (a [`Notify`]) and names orders the next sweep should read
//! (`PollRequest.look_at`). The inboxes are owned by the daemon's
//! [`crate::daemon::pipeline::Pipeline`], keyed by store id and created on
//! demand, so they survive reloads; a poller that restarts finds its pending
//! ids where the listener left them.
//!
//! Each inbox also keeps what `arauto check` and the rate limit need: when the
//! last push was accepted, how many were refused and why, and the store's
//! token bucket.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::plugin::MAX_LOOK_AT;

/// Why a push for a known store was refused (the keys of
/// [`PushStats::rejected`] and the `outcome` label of the push metric).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushRejection {
    /// The body was over `daemon.webhooks.max_body_bytes` (413).
    TooLarge,
    /// Over the store's push rate (429).
    RateLimited,
    /// The connector refused the credentials (401).
    BadCredentials,
    /// The connector did not understand the delivery (400).
    NotUnderstood,
    /// The connector failed or took too long (503).
    Unavailable,
}

impl PushRejection {
    /// The metric label and JSON name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::RateLimited => "rate_limited",
            Self::BadCredentials => "bad_credentials",
            Self::NotUnderstood => "not_understood",
            Self::Unavailable => "unavailable",
        }
    }

    /// How `arauto check` names it: "2 bad credentials".
    pub const fn describe(self) -> &'static str {
        match self {
            Self::TooLarge => "too large",
            Self::RateLimited => "over the rate limit",
            Self::BadCredentials => "bad credentials",
            Self::NotUnderstood => "not understood",
            Self::Unavailable => "connector unavailable",
        }
    }
}

/// What `arauto check` shows about one store's pushes since the daemon started.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushStats {
    /// When the last push was accepted (answered 202 or 200).
    pub last_accepted_at: Option<Timestamp>,
    /// Pushes accepted since the daemon started.
    pub accepted: u64,
    /// Pushes refused since the daemon started, by reason.
    pub rejected: BTreeMap<PushRejection, u64>,
}

impl PushStats {
    /// All refused pushes.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

/// Every store's inbox. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct PushInboxes {
    inboxes: Arc<Mutex<HashMap<String, Arc<PushInbox>>>>,
}

impl PushInboxes {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The inbox of `store`, created on first use. Only call it with
    /// configured store ids: the set is never pruned.
    pub fn get(&self, store: &str) -> Arc<PushInbox> {
        let mut inboxes = lock(&self.inboxes);
        inboxes
            .entry(store.to_owned())
            .or_insert_with(|| Arc::new(PushInbox::default()))
            .clone()
    }

    /// The push statistics of every store that has an inbox.
    pub fn stats(&self) -> BTreeMap<String, PushStats> {
        let inboxes = lock(&self.inboxes);
        inboxes
            .iter()
            .map(|(store, inbox)| (store.clone(), inbox.stats()))
            .collect()
    }
}

/// One store's inbox.
#[derive(Debug, Default)]
pub struct PushInbox {
    wake: Notify,
    inner: Mutex<InboxState>,
}

#[derive(Debug, Default)]
struct InboxState {
    /// Orders verified pushes named that no sweep has read yet.
    pending: BTreeSet<String>,
    stats: PushStats,
    bucket: Option<TokenBucket>,
}

impl PushInbox {
    /// Take one token of the store's push budget: `per_minute` on average,
    /// `burst` at once. `Err` holds how long until the next token.
    pub fn take_token(&self, per_minute: u32, burst: u32, now: Instant) -> Result<(), Duration> {
        let mut inner = lock(&self.inner);
        let bucket = inner
            .bucket
            .get_or_insert_with(|| TokenBucket::full(burst, now));
        bucket.take(per_minute, burst, now)
    }

    /// A verified push asks for a poll looking at `orders`. Ids past
    /// [`MAX_LOOK_AT`] pending are dropped (the poll still runs, and its
    /// listing finds changed orders anyway); returns how many were dropped.
    pub fn accept(&self, orders: Vec<String>, at: Timestamp) -> usize {
        let mut dropped = 0;
        {
            let mut inner = lock(&self.inner);
            for order in orders {
                if inner.pending.len() < MAX_LOOK_AT || inner.pending.contains(&order) {
                    inner.pending.insert(order);
                } else {
                    dropped += 1;
                }
            }
            inner.stats.last_accepted_at = Some(at);
            inner.stats.accepted = inner.stats.accepted.saturating_add(1);
        }
        self.wake.notify_one();
        dropped
    }

    /// An authentic push that asks for nothing: counted as accepted, no poll.
    pub fn ignored(&self, at: Timestamp) {
        let mut inner = lock(&self.inner);
        inner.stats.last_accepted_at = Some(at);
        inner.stats.accepted = inner.stats.accepted.saturating_add(1);
    }

    /// A push was refused for `reason`.
    pub fn rejected(&self, reason: PushRejection) {
        let mut inner = lock(&self.inner);
        let count = inner.stats.rejected.entry(reason).or_default();
        *count = count.saturating_add(1);
    }

    /// Wait until a push asks for a poll (at once if one did since the last
    /// wait: the wake-up is kept, and many pushes make one wake-up).
    pub async fn wanted(&self) {
        self.wake.notified().await;
    }

    /// The orders to look at, for a sweep about to start.
    pub fn take_pending(&self) -> Vec<String> {
        let mut inner = lock(&self.inner);
        std::mem::take(&mut inner.pending).into_iter().collect()
    }

    /// Give back the orders of a sweep that failed, so the next one reads them.
    pub fn restore_pending(&self, orders: Vec<String>) {
        let mut inner = lock(&self.inner);
        for order in orders {
            if inner.pending.len() >= MAX_LOOK_AT {
                break;
            }
            inner.pending.insert(order);
        }
    }

    /// This store's statistics.
    pub fn stats(&self) -> PushStats {
        lock(&self.inner).stats.clone()
    }
}

/// A token bucket: `burst` tokens at most, refilled at `per_minute` / 60 a
/// second.
#[derive(Debug, Clone, Copy)]
struct TokenBucket {
    tokens: f64,
    refilled_at: Instant,
}

impl TokenBucket {
    fn full(burst: u32, now: Instant) -> Self {
        Self {
            tokens: f64::from(burst.max(1)),
            refilled_at: now,
        }
    }

    fn take(&mut self, per_minute: u32, burst: u32, now: Instant) -> Result<(), Duration> {
        let rate = f64::from(per_minute.max(1)) / 60.0;
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(f64::from(burst.max(1)));
        self.refilled_at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / rate))
        }
    }
}

/// Lock `mutex`, going on with the data of a holder that panicked: every
/// update above leaves it consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;

    #[test]
    fn the_bucket_allows_a_burst_then_the_rate() {
        let inbox = PushInbox::default();
        let start = Instant::now();
        for _ in 0..3 {
            assert!(inbox.take_token(60, 3, start).is_ok());
        }
        let wait = inbox
            .take_token(60, 3, start)
            .expect_err("the burst is spent");
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
        assert!(
            inbox
                .take_token(60, 3, start + Duration::from_secs(1))
                .is_ok(),
            "one token a second at 60 a minute"
        );
    }

    #[test]
    fn pending_orders_are_a_capped_set_and_a_failed_sweep_gives_them_back() {
        let inbox = PushInbox::default();
        let now = Timestamp::now();
        assert_eq!(
            inbox.accept(vec!["1".into(), "1".into(), "2".into()], now),
            0
        );
        let many: Vec<String> = (0..MAX_LOOK_AT + 5).map(|n| format!("x{n}")).collect();
        assert_eq!(inbox.accept(many, now), 7, "two slots were taken already");
        let taken = inbox.take_pending();
        assert_eq!(taken.len(), MAX_LOOK_AT);
        assert!(inbox.take_pending().is_empty());
        inbox.restore_pending(taken);
        assert_eq!(inbox.take_pending().len(), MAX_LOOK_AT);
        assert_eq!(inbox.stats().accepted, 2);
    }

    #[tokio::test]
    async fn many_pushes_make_one_wake_up() {
        let inbox = PushInbox::default();
        let now = Timestamp::now();
        inbox.accept(vec!["1".into()], now);
        inbox.accept(vec!["2".into()], now);
        inbox.wanted().await;
        assert!(
            inbox.wanted().now_or_never().is_none(),
            "the second push was coalesced"
        );
    }

    #[test]
    fn rejections_are_counted_by_reason() {
        let inbox = PushInbox::default();
        inbox.rejected(PushRejection::BadCredentials);
        inbox.rejected(PushRejection::BadCredentials);
        inbox.rejected(PushRejection::TooLarge);
        let stats = inbox.stats();
        assert_eq!(stats.rejected_total(), 3);
        assert_eq!(stats.rejected[&PushRejection::BadCredentials], 2);
        assert_eq!(stats.last_accepted_at, None);
    }
}
