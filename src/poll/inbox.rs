//! Per-store push inboxes: what the webhook listener ([`super::push`]) hands
//! to a store's poller ([`super::service`]).
//!
//! A verified push never carries content into the pipeline: it only wakes the
//! store's poller (a [`Notify`]) and names orders the next sweep should read
//! (`PollRequest.look_at`). The daemon owns one [`PushInboxes`] for its
//! whole life (not per configuration), keyed by store id and created on
//! demand, so they survive reloads; a poller that restarts finds its pending
//! ids where the listener left them.
//!
//! Each inbox also keeps what `arauto check` and the rate limits need: when
//! the last push was accepted, how many were refused and why, and the store's
//! two token buckets — one charged by authentic pushes, one by refused
//! requests (see [`super::push`] for the policy).
//!
//! Orders a failed sweep was given are handed back once: a sweep that keeps
//! failing because of them (its deadline) must not repeat forever, and the
//! listing finds their changes anyway, only later.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::hash::BuildHasher;
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
    /// Not read at all: too many of the store's recent requests were refused
    /// (429 from the refusal budget).
    RefusalsThrottled,
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
            Self::RefusalsThrottled => "refusals_throttled",
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
            Self::RefusalsThrottled => "held back after too many refusals",
        }
    }
}

/// What `arauto check` shows about one store's pushes since the daemon started.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushStats {
    /// When the last push was accepted (answered 200).
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

/// Hands a verified push (store id, order ids) to the node that polls the
/// store, in a cluster (`crate::cluster::push_forward`).
pub type PushForward = Arc<dyn Fn(&str, &[String]) + Send + Sync>;

/// Wakes the poller of a store a push just asked to sweep
/// (`crate::poll::scheduler::PollScheduler::wake`).
pub type PushWaker = Arc<dyn Fn(&str) + Send + Sync>;

/// Every store's inbox. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct PushInboxes {
    inboxes: Arc<Mutex<HashMap<String, Arc<PushInbox>>>>,
    forward: Arc<ForwardSlot>,
    waker: Arc<WakerSlot>,
}

/// Who hears that a push asks for a sweep (none until the pollers run).
#[derive(Default)]
struct WakerSlot(Mutex<Option<PushWaker>>);

impl std::fmt::Debug for WakerSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if lock(&self.0).is_some() {
            "WakerSlot(set)"
        } else {
            "WakerSlot(none)"
        })
    }
}

/// Where verified pushes are forwarded (none on a single node).
#[derive(Default)]
struct ForwardSlot(Mutex<Option<PushForward>>);

impl std::fmt::Debug for ForwardSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if lock(&self.0).is_some() {
            "ForwardSlot(set)"
        } else {
            "ForwardSlot(none)"
        })
    }
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

    /// From now on every push the listener accepts is also handed to
    /// `forward` (cluster mode: to the node polling the store).
    pub fn set_forward(&self, forward: PushForward) {
        *lock(&self.forward.0) = Some(forward);
    }

    /// From now on every accepted push also wakes its store's poller
    /// through `waker` (the daemon's poll scheduler).
    pub fn set_waker(&self, waker: PushWaker) {
        *lock(&self.waker.0) = Some(waker);
    }

    /// A push accepted into `store`'s inbox asks for a sweep soon.
    pub fn wake(&self, store: &str) {
        let waker = lock(&self.waker.0).clone();
        if let Some(waker) = waker {
            waker(store);
        }
    }

    /// Hands an accepted push's orders to the forwarder, if one is set.
    pub fn forward(&self, store: &str, orders: &[String]) {
        let forward = lock(&self.forward.0).clone();
        if let Some(forward) = forward {
            forward(store, orders);
        }
    }

    /// A push another node accepted for `store`: accepted here (waking the
    /// poller) only if this node has the store's inbox, i.e. its poller ran
    /// here; true if it was. Never creates an inbox, so ids from elsewhere
    /// cannot grow the set.
    pub fn accept_forwarded(&self, store: &str, orders: Vec<String>) -> bool {
        let inbox = lock(&self.inboxes).get(store).cloned();
        match inbox {
            Some(inbox) => {
                inbox.accept(orders, Timestamp::now());
                self.wake(store);
                true
            }
            None => false,
        }
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
    /// Keys the credential hashes (never stored in the clear).
    hasher: RandomState,
}

#[derive(Debug, Default)]
struct InboxState {
    /// Orders verified pushes named that no sweep has read yet.
    pending: BTreeSet<String>,
    /// Orders already handed back once after a failed sweep: a second
    /// failure drops them.
    given_back: BTreeSet<String>,
    stats: PushStats,
    /// Charged by authentic pushes.
    accepted_bucket: Option<TokenBucket>,
    /// Charged by requests that were read or verified and then refused.
    refused_bucket: Option<TokenBucket>,
    /// Keyed hashes of credentials the connector refused lately, newest
    /// last, at most [`MAX_REFUSED_CREDENTIALS`], each for
    /// [`REFUSED_CREDENTIAL_MEMORY`]: while the refusal budget is spent, only
    /// requests presenting one of these are turned away unread, so forged
    /// requests cannot get the platform's real pushes refused.
    refused_credentials: VecDeque<(u64, Instant)>,
}

/// How many refused credentials an inbox remembers.
const MAX_REFUSED_CREDENTIALS: usize = 64;
/// How long a refused credential is remembered.
const REFUSED_CREDENTIAL_MEMORY: Duration = Duration::from_secs(600);

impl PushInbox {
    /// Take one token of the store's budget of authentic pushes:
    /// `per_minute` on average, `burst` at once. `Err` holds how long until
    /// the next token.
    pub fn take_token(&self, per_minute: u32, burst: u32, now: Instant) -> Result<(), Duration> {
        let mut inner = lock(&self.inner);
        let bucket = inner
            .accepted_bucket
            .get_or_insert_with(|| TokenBucket::full(burst, now));
        bucket.take(per_minute, burst, now)
    }

    /// A keyed hash of what a request presented as its credentials (its
    /// `Authorization` value, `None` when absent).
    pub fn credential(&self, presented: Option<&[u8]>) -> u64 {
        self.hasher.hash_one(presented)
    }

    /// Whether a request presenting `credential` may be read: always, unless
    /// the store's budget of refused requests is spent *and* the connector
    /// refused this same credential lately (a flood of forged requests then
    /// costs nothing, while a request with other credentials — the
    /// platform's — is still verified). `Err` holds how long until the
    /// budget has a token again.
    pub fn refusals_left(
        &self,
        per_minute: u32,
        burst: u32,
        now: Instant,
        credential: u64,
    ) -> Result<(), Duration> {
        let mut inner = lock(&self.inner);
        inner
            .refused_credentials
            .retain(|(_, at)| now.saturating_duration_since(*at) < REFUSED_CREDENTIAL_MEMORY);
        let known_bad = inner
            .refused_credentials
            .iter()
            .any(|(hash, _)| *hash == credential);
        let bucket = inner
            .refused_bucket
            .get_or_insert_with(|| TokenBucket::full(burst, now));
        match bucket.peek(per_minute, burst, now) {
            Err(wait) if known_bad => Err(wait),
            _ => Ok(()),
        }
    }

    /// Charge one refused request to the store's budget of refusals (it may
    /// go empty; [`Self::refusals_left`] then turns away the credentials
    /// recorded here). `refused_credential`: the connector refused these
    /// credentials (bad token), remember them.
    pub fn charge_refusal(
        &self,
        per_minute: u32,
        burst: u32,
        now: Instant,
        refused_credential: Option<u64>,
    ) {
        let mut inner = lock(&self.inner);
        let bucket = inner
            .refused_bucket
            .get_or_insert_with(|| TokenBucket::full(burst, now));
        // Empty already: the request was let in by a concurrent check.
        let _ = bucket.take(per_minute, burst, now);
        if let Some(hash) = refused_credential {
            inner
                .refused_credentials
                .retain(|(known, _)| *known != hash);
            if inner.refused_credentials.len() >= MAX_REFUSED_CREDENTIALS {
                inner.refused_credentials.pop_front();
            }
            inner.refused_credentials.push_back((hash, now));
        }
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

    /// An authentic push over the store's push rate: its orders are kept for
    /// the next sweep (scheduled, or started by a later push), but it wakes
    /// nothing. Returns how many were dropped past [`MAX_LOOK_AT`].
    pub fn keep_for_later(&self, orders: Vec<String>) -> usize {
        let mut inner = lock(&self.inner);
        let mut dropped = 0;
        for order in orders {
            if inner.pending.len() < MAX_LOOK_AT || inner.pending.contains(&order) {
                inner.pending.insert(order);
            } else {
                dropped += 1;
            }
        }
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

    /// The orders to look at, for a sweep about to start: all of them (at
    /// most [`MAX_LOOK_AT`]; the connector reads a few per call and carries
    /// the rest in its cursor). A wake-up already stored is consumed first,
    /// so a sweep that takes the orders of a push is not followed by an
    /// empty one for the same push; a push landing after this still wakes
    /// the poller.
    pub fn take_pending(&self) -> Vec<String> {
        use futures::FutureExt;
        let _ = self.wake.notified().now_or_never();
        let mut inner = lock(&self.inner);
        std::mem::take(&mut inner.pending).into_iter().collect()
    }

    /// The sweep that took [`Self::take_pending`]'s orders read them.
    pub fn sweep_succeeded(&self) {
        lock(&self.inner).given_back.clear();
    }

    /// The sweep that took `orders` failed. With `give_back`, orders it is
    /// the first failure for are handed to the next sweep; the others (and
    /// all of them without `give_back`) are dropped: the listing finds their
    /// changes. Returns how many were dropped.
    pub fn sweep_failed(&self, orders: Vec<String>, give_back: bool) -> usize {
        let mut inner = lock(&self.inner);
        let mut dropped = 0;
        for order in orders {
            let first_failure = !inner.given_back.contains(&order);
            if give_back && first_failure && inner.pending.len() < MAX_LOOK_AT {
                if inner.given_back.len() >= MAX_LOOK_AT {
                    // A long outage: forget the oldest history rather than grow.
                    inner.given_back.clear();
                }
                inner.given_back.insert(order.clone());
                inner.pending.insert(order);
            } else if !inner.pending.contains(&order) {
                inner.given_back.remove(&order);
                dropped += 1;
            }
        }
        dropped
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
        self.peek(per_minute, burst, now)?;
        self.tokens -= 1.0;
        Ok(())
    }

    /// Refill, then whether a token is there (`Err`: how long until one is).
    fn peek(&mut self, per_minute: u32, burst: u32, now: Instant) -> Result<(), Duration> {
        let rate = f64::from(per_minute.max(1)) / 60.0;
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(f64::from(burst.max(1)));
        self.refilled_at = now;
        if self.tokens >= 1.0 {
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
    fn refusals_have_their_own_budget_and_do_not_spend_the_pushes_one() {
        let inbox = PushInbox::default();
        let start = Instant::now();
        let forged = inbox.credential(Some(b"Bearer forged".as_slice()));
        let real = inbox.credential(Some(b"Bearer real".as_slice()));
        assert_ne!(forged, real);
        for _ in 0..2 {
            assert!(inbox.refusals_left(60, 2, start, forged).is_ok());
            inbox.charge_refusal(60, 2, start, Some(forged));
        }
        assert!(
            inbox.refusals_left(60, 2, start, forged).is_err(),
            "spent: the refused credentials are turned away unread"
        );
        assert!(
            inbox.refusals_left(60, 2, start, real).is_ok(),
            "other credentials (the platform's) are still verified"
        );
        assert!(
            inbox.take_token(60, 1, start).is_ok(),
            "authentic pushes still have their budget"
        );
        assert!(
            inbox
                .refusals_left(60, 2, start + Duration::from_secs(1), forged)
                .is_ok()
        );
    }

    #[test]
    fn a_failed_sweep_gives_its_orders_back_once_and_none_after_a_sandbox_fault() {
        let inbox = PushInbox::default();
        let now = Timestamp::now();
        inbox.accept(vec!["1".into(), "2".into()], now);
        let first = inbox.take_pending();
        assert_eq!(inbox.sweep_failed(first, true), 0);
        inbox.accept(vec!["3".into()], now);
        let second = inbox.take_pending();
        assert_eq!(second, ["1", "2", "3"]);
        assert_eq!(inbox.sweep_failed(second, true), 2, "1 and 2 failed twice");
        assert_eq!(inbox.take_pending(), ["3"]);

        inbox.accept(vec!["4".into()], now);
        let faulted = inbox.take_pending();
        assert_eq!(inbox.sweep_failed(faulted, false), 1);
        assert!(inbox.take_pending().is_empty());

        // A success forgets which were handed back.
        inbox.accept(vec!["1".into()], now);
        inbox.sweep_succeeded();
        let again = inbox.take_pending();
        assert_eq!(inbox.sweep_failed(again, true), 0);
    }

    #[tokio::test]
    async fn taking_the_orders_consumes_the_wake_up_of_the_push_that_named_them() {
        let inbox = PushInbox::default();
        inbox.accept(vec!["1".into()], Timestamp::now());
        assert_eq!(inbox.take_pending(), ["1"]);
        assert!(
            inbox.wanted().now_or_never().is_none(),
            "no empty sweep follows"
        );
        inbox.accept(vec!["2".into()], Timestamp::now());
        assert!(inbox.wanted().now_or_never().is_some());
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
        assert_eq!(inbox.sweep_failed(taken, true), 0);
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
