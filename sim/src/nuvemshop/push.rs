//! Webhook deliveries of the fake Nuvemshop: HMAC-signed POSTs to the URLs
//! registered with `POST /{store_id}/webhooks`.
//!
//! A delivery's body is Nuvemshop's small notification,
//! `{"store_id":123,"event":"order/paid","id":456}` (the receiver fetches
//! the order itself), and its `x-linkedstore-hmac-sha256` header is the
//! lower-case hex HMAC-SHA256 of the exact body bytes keyed with the app's
//! secret. One delivery thread per fake sends the copies in the order the
//! changes happened, after [`PushOptions::delay`], waiting at most
//! [`PushOptions::timeout`] for each answer. Nuvemshop expects exactly 200
//! and retries anything else (14 times over three days); the fake does so
//! [`PushOptions::retries`] times, [`PushOptions::retry_interval`] apart
//! (none by default). See docs/platforms/nuvemshop-sim.md.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hmac::{KeyInit, Mac};
use tokio::sync::broadcast;

use super::{NsStoreId, OrderId};
use crate::channels::blocking;

/// The key wrong-signature pushes are signed with instead of the app secret.
pub const WRONG_SECRET: &str = "segredo-errado-do-simulador";

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-linkedstore-hmac-sha256";

/// Lower-case hex HMAC-SHA256 of `body` keyed with `secret`: the value of
/// `x-linkedstore-hmac-sha256`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    digest.iter().fold(String::with_capacity(64), |mut hex, b| {
        use std::fmt::Write as _;
        let _ = write!(hex, "{b:02x}");
        hex
    })
}

/// One registered webhook (`POST /{store_id}/webhooks`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Webhook {
    /// `id`.
    pub id: u64,
    /// `event`, e.g. `order/paid`.
    pub event: String,
    /// `url`.
    pub url: String,
    /// `created_at`.
    pub created_at: jiff::Timestamp,
}

/// How the fake delivers pushes (one setting for all its stores).
#[derive(Clone, Debug, PartialEq)]
pub struct PushOptions {
    /// Push at all; off, changes are not pushed (registrations still work).
    pub enabled: bool,
    /// Copies of each push; at least 1.
    pub repeats: u32,
    /// Wait this long after the change before the first copy.
    pub delay: Duration,
    /// Share (0–1) of pushes never sent, spread evenly and deterministically
    /// (0.5 drops every second one).
    pub drop_fraction: f64,
    /// Sign with [`WRONG_SECRET`] instead of the app secret.
    pub wrong_signature: bool,
    /// Give up on a copy whose answer takes longer than this.
    pub timeout: Duration,
    /// Send a copy again when its answer is not 200 (another status, or
    /// none), at most this many times. Nuvemshop does 14 retries over three
    /// days; the fake defaults to none so a test sees each copy once.
    pub retries: u32,
    /// Wait this long before each retry (Nuvemshop: growing, hours).
    pub retry_interval: Duration,
}

impl Default for PushOptions {
    fn default() -> Self {
        Self {
            enabled: true,
            repeats: 1,
            delay: Duration::ZERO,
            drop_fraction: 0.0,
            wrong_signature: false,
            timeout: Duration::from_secs(5),
            retries: 0,
            retry_interval: Duration::from_secs(1),
        }
    }
}

/// What became of one copy of a push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushOutcome {
    /// The receiver answered with this status.
    Answered(u16),
    /// Dropped on purpose ([`PushOptions::drop_fraction`]).
    Dropped,
    /// No answer: connection refused, timeout.
    Failed(String),
}

/// One copy of a push, as the fake recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushRecord {
    /// The fake store.
    pub store: NsStoreId,
    /// Its Nuvemshop `store_id`.
    pub store_id: u64,
    /// The order `id`.
    pub order_id: OrderId,
    /// The event, e.g. `order/paid`.
    pub event: String,
    /// Where it went.
    pub url: String,
    /// Which copy (1-based) of how many.
    pub copy: u32,
    /// Copies of this push in all.
    pub copies: u32,
    /// Which attempt at this copy (1 = the first delivery, 2 = the first retry…).
    pub attempt: u32,
    /// The `x-linkedstore-hmac-sha256` sent.
    pub signature: String,
    /// The body sent.
    pub body: String,
    /// What happened.
    pub outcome: PushOutcome,
    /// When it was sent (or dropped), system clock.
    pub at: jiff::Timestamp,
}

/// Something that happened to a store's webhooks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebhookEvent {
    /// A webhook was registered.
    Registered {
        /// The fake store.
        store: NsStoreId,
        /// The registration.
        webhook: Webhook,
    },
    /// A webhook was deleted.
    Deleted {
        /// The fake store.
        store: NsStoreId,
        /// Its id.
        id: u64,
    },
    /// A copy of a push was sent, dropped, or failed.
    Push(PushRecord),
}

/// Recorded pushes and the event feed, shared with the delivery thread.
pub(crate) struct PushLog {
    records: Mutex<Vec<PushRecord>>,
    events: broadcast::Sender<WebhookEvent>,
}

impl PushLog {
    fn new() -> Self {
        Self {
            records: Mutex::new(Vec::new()),
            events: broadcast::channel(1024).0,
        }
    }

    pub(crate) fn publish(&self, event: WebhookEvent) {
        if let WebhookEvent::Push(record) = &event {
            self.records
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(record.clone());
        }
        // No subscriber is fine: the records keep everything.
        let _ = self.events.send(event);
    }

    pub(crate) fn records(&self) -> Vec<PushRecord> {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn clear(&self) {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<WebhookEvent> {
        self.events.subscribe()
    }
}

struct Job {
    due: Instant,
    timeout: Duration,
    retries_left: u32,
    retry_interval: Duration,
    record: PushRecord,
}

enum Message {
    Job(Box<Job>),
    Stop,
}

/// One change to push: which order, which events it raised.
pub(crate) struct Change<'a> {
    pub(crate) store: NsStoreId,
    pub(crate) store_id: u64,
    pub(crate) order_id: OrderId,
    pub(crate) events: &'a [&'static str],
    pub(crate) app_secret: &'a str,
}

/// The push side of the fake's state (under its lock).
pub(crate) struct PushState {
    pub(crate) options: PushOptions,
    drop_credit: f64,
    worker: Option<mpsc::Sender<Message>>,
    stopped: bool,
    pub(crate) log: Arc<PushLog>,
}

impl PushState {
    pub(crate) fn new() -> Self {
        Self {
            options: PushOptions::default(),
            drop_credit: 0.0,
            worker: None,
            stopped: false,
            log: Arc::new(PushLog::new()),
        }
    }

    /// Push `change` to every webhook registered for one of its events.
    pub(crate) fn schedule(&mut self, change: &Change<'_>, webhooks: &[Webhook]) {
        if !self.options.enabled || self.stopped {
            return;
        }
        let copies = self.options.repeats.max(1);
        let due = Instant::now() + self.options.delay;
        for event in change.events {
            for webhook in webhooks.iter().filter(|w| w.event == *event) {
                // Field order as Nuvemshop documents it; serde_json keeps insertion order
                // only with preserve_order, so the body is written by hand.
                let body = format!(
                    r#"{{"store_id":{},"event":"{}","id":{}}}"#,
                    change.store_id, event, change.order_id
                );
                let key = if self.options.wrong_signature {
                    WRONG_SECRET
                } else {
                    change.app_secret
                };
                let signature = signature(key, body.as_bytes());
                let dropped = self.take_drop();
                for copy in 1..=copies {
                    let record = PushRecord {
                        store: change.store,
                        store_id: change.store_id,
                        order_id: change.order_id,
                        event: (*event).to_owned(),
                        url: webhook.url.clone(),
                        copy,
                        copies,
                        attempt: 1,
                        signature: signature.clone(),
                        body: body.clone(),
                        outcome: PushOutcome::Dropped,
                        at: jiff::Timestamp::now(),
                    };
                    if dropped {
                        self.log.publish(WebhookEvent::Push(record));
                    } else {
                        self.send(Job {
                            due,
                            timeout: self.options.timeout,
                            retries_left: self.options.retries,
                            retry_interval: self.options.retry_interval,
                            record,
                        });
                    }
                }
            }
        }
    }

    fn take_drop(&mut self) -> bool {
        let share = if self.options.drop_fraction.is_finite() {
            self.options.drop_fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.drop_credit += share;
        if self.drop_credit >= 1.0 - 1e-9 {
            self.drop_credit -= 1.0;
            true
        } else {
            false
        }
    }

    fn send(&mut self, job: Job) {
        let worker = self.worker.get_or_insert_with(|| {
            let (tx, rx) = mpsc::channel();
            let log = Arc::clone(&self.log);
            let spawned = std::thread::Builder::new()
                .name("fake-nuvemshop-push".into())
                .spawn(move || deliver_loop(&rx, &log));
            if let Err(e) = spawned {
                eprintln!("fake Nuvemshop: cannot start the push delivery thread: {e}");
            }
            tx
        });
        if let Err(mpsc::SendError(Message::Job(job))) = worker.send(Message::Job(Box::new(job))) {
            let mut record = job.record;
            record.outcome = PushOutcome::Failed("the push delivery thread is gone".into());
            self.log.publish(WebhookEvent::Push(record));
        }
    }

    pub(crate) fn stop(&mut self) {
        self.stopped = true;
        if let Some(worker) = self.worker.take() {
            let _ = worker.send(Message::Stop);
        }
    }
}

fn deliver_loop(rx: &mpsc::Receiver<Message>, log: &PushLog) {
    let mut pending: Vec<Job> = Vec::new();
    loop {
        loop {
            let now = Instant::now();
            let next = pending
                .iter()
                .enumerate()
                .filter(|(_, job)| job.due <= now)
                .min_by_key(|(_, job)| job.due)
                .map(|(index, _)| index);
            match next {
                Some(index) => {
                    if let Some(retry) = deliver(pending.remove(index), log) {
                        pending.push(retry);
                    }
                }
                None => break,
            }
        }
        let message = match pending.iter().map(|job| job.due).min() {
            Some(due) => rx.recv_timeout(due.saturating_duration_since(Instant::now())),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match message {
            Ok(Message::Job(job)) => pending.push(*job),
            Err(RecvTimeoutError::Timeout) => {}
            Ok(Message::Stop) | Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Send one copy; the retry to schedule when it was not answered 200 and
/// retries are left.
fn deliver(job: Job, log: &PushLog) -> Option<Job> {
    let mut record = job.record;
    let headers = [
        (SIGNATURE_HEADER.to_owned(), record.signature.clone()),
        ("content-type".to_owned(), "application/json".to_owned()),
        (
            "user-agent".to_owned(),
            "arauto-sim fake Nuvemshop webhooks".to_owned(),
        ),
    ];
    record.at = jiff::Timestamp::now();
    record.outcome = match blocking::send(
        "POST",
        &record.url,
        &headers,
        Some(record.body.as_bytes()),
        job.timeout,
    ) {
        Ok(response) => PushOutcome::Answered(response.status),
        Err(e) => {
            eprintln!(
                "fake Nuvemshop: push {} of order {} to {} failed: {e}",
                record.event, record.order_id, record.url
            );
            PushOutcome::Failed(e.to_string())
        }
    };
    let retry = (record.outcome != PushOutcome::Answered(200) && job.retries_left > 0).then(|| {
        let mut again = record.clone();
        again.attempt += 1;
        Job {
            due: Instant::now() + job.retry_interval,
            timeout: job.timeout,
            retries_left: job.retries_left - 1,
            retry_interval: job.retry_interval,
            record: again,
        }
    });
    log.publish(WebhookEvent::Push(record));
    retry
}

/// Why a webhook URL is refused (`None`: accepted). Nuvemshop wants an
/// absolute https URL and refuses `localhost` and its own domains; the fake
/// also accepts `http` because its receivers are plain HTTP on 127.0.0.1.
pub(crate) fn refuse_url(url: &str) -> Option<&'static str> {
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return Some("invalid url specified (an absolute http(s) URL)");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, h)| h)
        .split(':')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    if host.is_empty() {
        return Some("must name a host");
    }
    if host == "localhost" || host.ends_with(".localhost") {
        return Some("localhost is not allowed");
    }
    if host.contains("tiendanube") || host.contains("nuvemshop") {
        return Some("the platform's own domains are not allowed");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hex_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn urls_follow_the_documented_rules() {
        assert_eq!(refuse_url("http://127.0.0.1:18933/hooks/ns"), None);
        assert_eq!(refuse_url("https://example.com/x"), None);
        assert!(refuse_url("ftp://example.com").is_some());
        assert!(refuse_url("http://localhost:8080/x").is_some());
        assert!(refuse_url("https://LOCALHOST/x").is_some());
        assert!(refuse_url("https://app.nuvemshop.com.br/x").is_some());
        assert!(refuse_url("https:///x").is_some());
        assert!(refuse_url("/hooks").is_some());
    }
}
