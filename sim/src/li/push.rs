//! Order webhooks of the fake LI: registrations (`PUT`/`DELETE
//! /webhooks/v1/pedido`) and the pushes sent to them whenever an order changes.
//!
//! A change is rendered in LI's push shape under the fake's lock (so the body
//! is the order as it was at that change), then handed to one delivery thread
//! per [`FakeLi`](super::FakeLi), started on the first push. The thread POSTs
//! each copy after the configured delay, waits at most
//! [`PushOptions::timeout`] for an answer, never retries beyond
//! [`PushOptions::repeats`], and only records failures: a receiver that is down
//! costs the fake nothing. Copies go out one after another, in the order the
//! changes happened. See docs/platforms/loja-integrada.md §Push deliveries (as
//! the simulator sends them).

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::broadcast;

use super::{Numero, StoreId};
use crate::channels::blocking;

/// The token pushes carry in [`PushOptions::wrong_token`] mode, instead of the
/// registered one (as a forged or stale delivery would).
pub const WRONG_TOKEN: &str = "token-errado-do-simulador";

/// One registered order webhook of a store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookRegistration {
    /// `notifyUrl`: where pushes are POSTed.
    pub notify_url: String,
    /// `token`: sent back as `Authorization: Bearer <token>` (and in the body's `token`).
    pub token: String,
}

/// How the fake delivers pushes (one setting for all its stores).
#[derive(Clone, Debug, PartialEq)]
pub struct PushOptions {
    /// Push at all; off, changes are not pushed (registrations still work).
    pub enabled: bool,
    /// Copies of each push (LI documents that it repeats deliveries); at least 1.
    pub repeats: u32,
    /// Wait this long after the change before the first copy.
    pub delay: Duration,
    /// Share (0–1) of pushes never sent, spread evenly and deterministically:
    /// 0.5 drops every second push, 1 drops them all. A dropped push loses
    /// all its copies, as a change LI never pushed would.
    pub drop_fraction: f64,
    /// Send [`WRONG_TOKEN`] instead of the registered token.
    pub wrong_token: bool,
    /// Give up on a copy whose answer takes longer than this.
    pub timeout: Duration,
}

impl Default for PushOptions {
    fn default() -> Self {
        Self {
            enabled: true,
            repeats: 1,
            delay: Duration::ZERO,
            drop_fraction: 0.0,
            wrong_token: false,
            timeout: Duration::from_secs(5),
        }
    }
}

/// What became of one copy of a push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushOutcome {
    /// The receiver answered with this HTTP status (any status: LI does not
    /// retry on errors beyond its repeats, and neither does the fake).
    Answered(u16),
    /// Dropped on purpose ([`PushOptions::drop_fraction`]); nothing was sent.
    Dropped,
    /// No answer: connection refused, timeout, bad URL.
    Failed(String),
}

/// One copy of a push, as the fake recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushRecord {
    /// The store whose order changed.
    pub store: StoreId,
    /// The order (`numero`).
    pub numero: Numero,
    /// Where it went.
    pub notify_url: String,
    /// Which copy (1-based) of how many.
    pub copy: u32,
    /// Copies of this push in all.
    pub copies: u32,
    /// The body's `situacao.situacao_alterada`.
    pub status_changed: bool,
    /// The `Authorization` header sent (`Bearer …`).
    pub authorization: String,
    /// The body sent.
    pub body: String,
    /// What happened.
    pub outcome: PushOutcome,
    /// When it was sent (or dropped), system clock.
    pub at: jiff::Timestamp,
}

/// Something that happened to a store's webhooks ([`FakeLi::subscribe_webhooks`](super::FakeLi::subscribe_webhooks)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebhookEvent {
    /// A `PUT /webhooks/v1/pedido` (or [`LiStore::register_webhook`](super::LiStore::register_webhook)) added or updated a registration.
    Registered {
        /// The store.
        store: StoreId,
        /// Its `notifyUrl`.
        notify_url: String,
    },
    /// A `DELETE /webhooks/v1/pedido` removed a registration.
    Unregistered {
        /// The store.
        store: StoreId,
        /// Its `notifyUrl`.
        notify_url: String,
    },
    /// A copy of a push was sent, dropped, or failed.
    Push(PushRecord),
}

/// Recorded pushes and the event feed; shared with the delivery thread,
/// which must not hold the fake's state (that would keep it alive).
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

/// One copy waiting for its time.
struct Job {
    due: Instant,
    timeout: Duration,
    record: PushRecord,
}

enum Message {
    Job(Box<Job>),
    Stop,
}

/// The push side of the fake's state (under its lock).
pub(crate) struct PushState {
    pub(crate) options: PushOptions,
    /// Accumulated drop share: a push is dropped each time it reaches 1.
    drop_credit: f64,
    worker: Option<mpsc::Sender<Message>>,
    /// The fake was stopped: no new delivery thread.
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

    /// Push one change of order `numero` to every registration; `body`
    /// renders the payload for a token.
    pub(crate) fn schedule(
        &mut self,
        store: StoreId,
        numero: Numero,
        status_changed: bool,
        registrations: &[WebhookRegistration],
        body: impl Fn(&str) -> Value,
    ) {
        if !self.options.enabled || self.stopped {
            return;
        }
        let copies = self.options.repeats.max(1);
        let due = Instant::now() + self.options.delay;
        for registration in registrations {
            let token = if self.options.wrong_token {
                WRONG_TOKEN
            } else {
                registration.token.as_str()
            };
            let dropped = self.take_drop();
            for copy in 1..=copies {
                let record = PushRecord {
                    store,
                    numero,
                    notify_url: registration.notify_url.clone(),
                    copy,
                    copies,
                    status_changed,
                    authorization: format!("Bearer {token}"),
                    body: body(token).to_string(),
                    outcome: PushOutcome::Dropped,
                    at: jiff::Timestamp::now(),
                };
                if dropped {
                    self.log.publish(WebhookEvent::Push(record));
                } else {
                    self.send(Job {
                        due,
                        timeout: self.options.timeout,
                        record,
                    });
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
        // The epsilon keeps 1/3 + 1/3 + 1/3 from falling short of 1.
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
                .name("fake-li-push".into())
                .spawn(move || deliver_loop(&rx, &log));
            if let Err(e) = spawned {
                eprintln!("fake LI: cannot start the push delivery thread: {e}");
            }
            tx
        });
        if let Err(mpsc::SendError(Message::Job(job))) = worker.send(Message::Job(Box::new(job))) {
            let mut record = job.record;
            record.outcome = PushOutcome::Failed("the push delivery thread is gone".into());
            self.log.publish(WebhookEvent::Push(record));
        }
    }

    /// Stop delivering; copies not yet sent are forgotten.
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
        // Every copy that is due, oldest first (jobs arrive in order; a
        // shorter delay set later may overtake).
        loop {
            let now = Instant::now();
            let next = pending
                .iter()
                .enumerate()
                .filter(|(_, job)| job.due <= now)
                .min_by_key(|(_, job)| job.due)
                .map(|(index, _)| index);
            match next {
                Some(index) => deliver(pending.remove(index), log),
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

fn deliver(job: Job, log: &PushLog) {
    let mut record = job.record;
    let headers = [
        ("authorization".to_owned(), record.authorization.clone()),
        ("content-type".to_owned(), "application/json".to_owned()),
    ];
    record.at = jiff::Timestamp::now();
    record.outcome = match blocking::send(
        "POST",
        &record.notify_url,
        &headers,
        Some(record.body.as_bytes()),
        job.timeout,
    ) {
        Ok(response) => PushOutcome::Answered(response.status),
        Err(e) => {
            eprintln!(
                "fake LI: push of order {} to {} failed: {e}",
                record.numero, record.notify_url
            );
            PushOutcome::Failed(e.to_string())
        }
    };
    log.publish(WebhookEvent::Push(record));
}

/// `true` when `url` is an absolute http(s) URL with a host.
pub(crate) fn is_notify_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_are_spread_evenly() {
        let mut state = PushState::new();
        state.options.drop_fraction = 0.5;
        let drops: Vec<bool> = (0..4).map(|_| state.take_drop()).collect();
        assert_eq!(drops, [false, true, false, true]);
        state.options.drop_fraction = 1.0 / 3.0;
        state.drop_credit = 0.0;
        let drops = (0..9).filter(|_| state.take_drop()).count();
        assert_eq!(drops, 3);
        state.options.drop_fraction = 1.0;
        assert!((0..5).all(|_| state.take_drop()));
        state.options.drop_fraction = f64::NAN;
        state.drop_credit = 0.0;
        assert!(!(0..5).any(|_| state.take_drop()));
    }

    #[test]
    fn notify_urls_are_absolute_http() {
        assert!(is_notify_url("http://127.0.0.1:18933/hooks/loja1"));
        assert!(is_notify_url("https://example.com/x"));
        assert!(!is_notify_url("ftp://example.com"));
        assert!(!is_notify_url("http:///x"));
        assert!(!is_notify_url("/hooks/loja1"));
    }
}
