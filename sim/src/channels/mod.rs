//! Fake channel providers: real HTTP servers on 127.0.0.1 that record every
//! request and answer with the providers' documented success and error bodies.
//!
//! One [`FakeProvider`] impersonates one provider ([`Provider`]): the WhatsApp
//! Cloud API, Evolution API v2, Z-API, Twilio, the Telegram Bot API or a plain
//! webhook receiver. Point a sender plugin's `base_url` (or the webhook's
//! `url`) at [`FakeProvider::url`] and it behaves like the real service:
//!
//! * every request is recorded ([`FakeProvider::requests`]) with method, path,
//!   headers and body, for tests to assert on the exact wire format;
//! * requests are classified as [`Endpoint::Send`] (the message-sending call)
//!   or [`Endpoint::Check`] (the cheap authenticated call behind `check()`);
//!   unknown paths get the provider's 404;
//! * by default each request succeeds with the provider's documented body,
//!   echoing the recipient ([`Reply::success`]); tests script what comes next
//!   per endpoint ([`FakeProvider::enqueue`], [`FakeProvider::enqueue_times`],
//!   [`FakeProvider::set_default`]) with documented error bodies built by the
//!   per-provider modules ([`whatsapp_cloud::error`], [`evolution::not_on_whatsapp`],
//!   [`twilio::error`], [`telegram::retry_after`]…), raw responses, delays
//!   ([`Reply::delayed`]) or dropped connections ([`Reply::drop_connection`]);
//! * [`FakeProvider::require_auth`] makes it reject wrong credentials the way
//!   the provider does (Meta code 190, Twilio 20003, Telegram 401…);
//! * [`FakeProvider::unreachable_recipients`] names customers the provider
//!   cannot reach at all (not on WhatsApp, not a mobile): sends to them get
//!   the provider's documented answer (131026, `exists:false`, 21614…);
//! * every accepted message is also published as a [`ReceivedMessage`]
//!   ([`FakeProvider::received`], [`FakeProvider::subscribe`]) so the demo can
//!   print what a customer would have received.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use arauto_sim::channels::{Endpoint, FakeProvider, Provider, whatsapp_cloud};
//!
//! let fake = FakeProvider::start(Provider::WhatsAppCloud).await?;
//! fake.require_auth("EAAG-test-token");
//! // The next two sends hit Meta's throughput limit, then they succeed again.
//! fake.enqueue_times(Endpoint::Send, 2, whatsapp_cloud::error(130429));
//! // ... point the plugin at fake.url() and send ...
//! for request in fake.requests() {
//!     println!("{} {} {}", request.method, request.path, request.body_text());
//! }
//! # Ok(()) }
//! ```
//!
//! Synchronous tests (plugin unit tests run the SDK harness on a plain thread)
//! use [`FakeProvider::start_in_background`], which runs the server on its own
//! thread, and [`blocking::send`] as the harness's HTTP transport.

pub mod blocking;
pub mod evolution;
pub mod telegram;
pub mod twilio;
pub mod webhook;
pub mod whatsapp_cloud;
pub mod zapi;

pub(crate) mod server;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::{broadcast, watch};

pub use self::server::FakeProvider;

/// Which third-party service a [`FakeProvider`] impersonates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Provider {
    /// Meta's WhatsApp Cloud API (`POST /{version}/{phone-number-id}/messages`).
    WhatsAppCloud,
    /// Evolution API v2 (`POST /message/sendText/{instance}`).
    EvolutionApi,
    /// Z-API (`POST /instances/{id}/token/{token}/send-text`).
    ZApi,
    /// Twilio Programmable Messaging (`POST /2010-04-01/Accounts/{sid}/Messages.json`).
    Twilio,
    /// Telegram Bot API (`POST /bot{token}/sendMessage`).
    Telegram,
    /// Any webhook receiver: every `POST` is a send, every other method a check.
    Webhook,
}

impl Provider {
    /// Every provider.
    pub const ALL: [Provider; 6] = [
        Self::WhatsAppCloud,
        Self::EvolutionApi,
        Self::ZApi,
        Self::Twilio,
        Self::Telegram,
        Self::Webhook,
    ];

    /// Short name, as the matching first-party plugin is called.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::WhatsAppCloud => "whatsapp-cloud",
            Self::EvolutionApi => "evolution-api",
            Self::ZApi => "z-api",
            Self::Twilio => "twilio",
            Self::Telegram => "telegram",
            Self::Webhook => "webhook",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The two kinds of calls a sender plugin makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// Delivering a message (WhatsApp `/messages`, Twilio `Messages.json`, …).
    Send,
    /// The cheap authenticated call behind the plugin's `check()` (phone-number
    /// GET, `connectionState`, `status`, account GET, `getMe`, webhook ping).
    Check,
}

/// One HTTP request as the fake received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// Path without the query string, e.g. `/v21.0/1234/messages`.
    pub path: String,
    /// The raw query string (without `?`), if any.
    pub query: Option<String>,
    /// Headers in arrival order, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
    /// What the fake took the request for; `None` for unknown paths (answered 404).
    pub endpoint: Option<Endpoint>,
}

impl RecordedRequest {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name` (case-insensitive), in arrival order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON (`Value::Null` when it is not JSON).
    pub fn body_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The body decoded as `application/x-www-form-urlencoded` pairs, in order
    /// (empty when it does not decode).
    pub fn form(&self) -> Vec<(String, String)> {
        serde_urlencoded::from_bytes(&self.body).unwrap_or_default()
    }

    /// The first value of form field `name`.
    pub fn form_value(&self, name: &str) -> Option<String> {
        self.form()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// A message the fake accepted: what the customer (or receiving system) got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The provider that accepted it.
    pub provider: Provider,
    /// The addressee as the provider saw it: phone digits / E.164 (`whatsapp:`
    /// prefix kept for Twilio), Telegram chat id, or the webhook's request path.
    pub to: String,
    /// The text, or for provider templates a readable rendering such as
    /// `[template pedido_enviado pt_BR] Maria | #1234`, or the webhook body.
    pub text: String,
    /// The id the fake returned (`wamid.…`, Evolution `key.id`, Z-API
    /// `messageId`, Twilio `SM…`, Telegram `message_id`, webhook `webhook-id`).
    pub provider_message_id: String,
    /// When the fake accepted it.
    pub at: Timestamp,
}

impl fmt::Display for ReceivedMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] → {}: {}", self.provider, self.to, self.text)
    }
}

/// A canned HTTP response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CannedResponse {
    /// HTTP status code.
    pub status: u16,
    /// Extra headers (`content-type` included when there is a body).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl CannedResponse {
    /// A JSON response.
    pub fn json(status: u16, body: &serde_json::Value) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
        }
    }

    /// A response with an arbitrary body and content type.
    pub fn raw(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), content_type.to_owned())],
            body: body.into(),
        }
    }
}

type Responder = Arc<dyn Fn(&RecordedRequest) -> CannedResponse + Send + Sync>;

/// How the fake answers one request.
#[derive(Clone)]
pub struct Reply {
    kind: ReplyKind,
    extra_headers: Vec<(String, String)>,
}

#[derive(Clone)]
enum ReplyKind {
    Success,
    Respond(Responder),
    Delayed(Duration, Box<Reply>),
    Drop,
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ReplyKind::Success => f.write_str("Reply::success"),
            ReplyKind::Respond(_) => f.write_str("Reply::respond(..)"),
            ReplyKind::Delayed(d, inner) => write!(f, "Reply::delayed({d:?}, {inner:?})"),
            ReplyKind::Drop => f.write_str("Reply::drop_connection"),
        }
    }
}

impl Reply {
    fn new(kind: ReplyKind) -> Self {
        Self {
            kind,
            extra_headers: Vec::new(),
        }
    }

    /// The provider's documented success body for this request (the default),
    /// echoing the recipient and carrying a fresh message id; sends are also
    /// published as [`ReceivedMessage`]s.
    pub fn success() -> Self {
        Self::new(ReplyKind::Success)
    }

    /// A fixed response.
    pub fn canned(response: CannedResponse) -> Self {
        Self::new(ReplyKind::Respond(Arc::new(move |_| response.clone())))
    }

    /// A fixed JSON response.
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Self::canned(CannedResponse::json(status, &body))
    }

    /// A fixed response with any body and content type (e.g. an HTML error
    /// page from a proxy).
    pub fn raw(status: u16, content_type: &str, body: &str) -> Self {
        Self::canned(CannedResponse::raw(status, content_type, body))
    }

    /// A response computed from the request (e.g. an error that names the
    /// number the client sent).
    pub fn respond(f: impl Fn(&RecordedRequest) -> CannedResponse + Send + Sync + 'static) -> Self {
        Self::new(ReplyKind::Respond(Arc::new(f)))
    }

    /// Wait `delay`, then answer with `then` (for client timeouts).
    pub fn delayed(delay: Duration, then: Reply) -> Self {
        Self::new(ReplyKind::Delayed(delay, Box::new(then)))
    }

    /// Start a response and abort the connection before it is complete: the
    /// client sees a network error, as with a reset or a crashed proxy.
    pub fn drop_connection() -> Self {
        Self::new(ReplyKind::Drop)
    }

    /// Add a header to the response (e.g. `Retry-After`).
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.extra_headers
            .push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }
}

/// What a provider module knows how to do.
pub(crate) trait ProviderBehaviour: Send + Sync {
    /// Classify a request; `None` = unknown path.
    fn endpoint(&self, req: &RecordedRequest) -> Option<Endpoint>;
    /// The documented answer to a request whose credentials don't match.
    fn check_auth(&self, req: &RecordedRequest, secret: &str) -> Result<(), CannedResponse>;
    /// The provider's 404 for an unknown path.
    fn not_found(&self, req: &RecordedRequest) -> CannedResponse;
    /// The documented success body; `Some` message when a message was accepted.
    fn success(&self, req: &RecordedRequest, endpoint: Endpoint, serial: u64) -> Success;
    /// The send's recipient (phone digits, or the Telegram chat id) and the
    /// provider's documented answer for a recipient it cannot reach at all
    /// (see [`FakeProvider::unreachable_recipients`]); `None` for providers
    /// without such an answer.
    fn unreachable(&self, _req: &RecordedRequest) -> Option<(String, Reply)> {
        None
    }
}

/// A success body plus, for sends, what was delivered.
pub(crate) struct Success {
    pub response: CannedResponse,
    pub delivered: Option<Delivered>,
}

/// A delivered message, before it is time-stamped.
pub(crate) struct Delivered {
    pub to: String,
    pub text: String,
    pub id: String,
}

pub(crate) fn behaviour(provider: Provider) -> Box<dyn ProviderBehaviour> {
    match provider {
        Provider::WhatsAppCloud => Box::new(whatsapp_cloud::Behaviour),
        Provider::EvolutionApi => Box::new(evolution::Behaviour),
        Provider::ZApi => Box::new(zapi::Behaviour),
        Provider::Twilio => Box::new(twilio::Behaviour),
        Provider::Telegram => Box::new(telegram::Behaviour),
        Provider::Webhook => Box::new(webhook::Behaviour),
    }
}

/// State shared by the HTTP handler and the test-facing handle.
pub(crate) struct Shared {
    pub provider: Provider,
    pub behaviour: Box<dyn ProviderBehaviour>,
    inner: Mutex<Inner>,
    serial: AtomicU64,
    received_tx: broadcast::Sender<ReceivedMessage>,
    request_count: watch::Sender<usize>,
    received_count: watch::Sender<usize>,
}

#[derive(Default)]
struct Inner {
    auth: Option<String>,
    requests: Vec<RecordedRequest>,
    received: Vec<ReceivedMessage>,
    scripts: HashMap<Endpoint, VecDeque<Reply>>,
    defaults: HashMap<Endpoint, Reply>,
    unreachable: std::collections::HashSet<String>,
}

/// What the handler should do with one request.
pub(crate) enum Plan {
    Respond(CannedResponse),
    Delay(Duration, Box<Plan>),
    Drop,
}

impl Shared {
    pub fn new(provider: Provider) -> Self {
        let (received_tx, _) = broadcast::channel(1024);
        let (request_count, _) = watch::channel(0);
        let (received_count, _) = watch::channel(0);
        Self {
            provider,
            behaviour: behaviour(provider),
            inner: Mutex::new(Inner::default()),
            serial: AtomicU64::new(1),
            received_tx,
            request_count,
            received_count,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A test that panicked while holding the lock must not hide the
        // recorded requests from the next assertion.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Record `req` and decide the answer.
    pub fn handle(&self, mut req: RecordedRequest) -> Plan {
        let endpoint = self.behaviour.endpoint(&req);
        req.endpoint = endpoint;
        let mut inner = self.lock();
        inner.requests.push(req.clone());
        let count = inner.requests.len();
        let decision = match endpoint {
            None => Err(self.behaviour.not_found(&req)),
            Some(ep) => {
                let auth = inner
                    .auth
                    .as_deref()
                    .map(|secret| self.behaviour.check_auth(&req, secret));
                match auth {
                    Some(Err(rejection)) => Err(rejection),
                    _ if ep == Endpoint::Send
                        && !inner.unreachable.is_empty()
                        && let Some((recipient, reply)) = self.behaviour.unreachable(&req)
                        && inner.unreachable.contains(&recipient) =>
                    {
                        // A customer this provider cannot reach, whatever
                        // else is scripted (scripts stay queued).
                        Ok((ep, reply))
                    }
                    _ => {
                        let scripted = inner.scripts.get_mut(&ep).and_then(VecDeque::pop_front);
                        let reply = scripted
                            .or_else(|| inner.defaults.get(&ep).cloned())
                            .unwrap_or_else(Reply::success);
                        Ok((ep, reply))
                    }
                }
            }
        };
        drop(inner);
        self.request_count.send_replace(count);
        match decision {
            Err(response) => Plan::Respond(response),
            Ok((ep, reply)) => self.plan(&req, ep, reply),
        }
    }

    fn plan(&self, req: &RecordedRequest, endpoint: Endpoint, reply: Reply) -> Plan {
        let extra = reply.extra_headers;
        let mut plan = match reply.kind {
            ReplyKind::Success => {
                let serial = self.serial.fetch_add(1, Ordering::Relaxed);
                let success = self.behaviour.success(req, endpoint, serial);
                if let Some(delivered) = success.delivered {
                    let message = ReceivedMessage {
                        provider: self.provider,
                        to: delivered.to,
                        text: delivered.text,
                        provider_message_id: delivered.id,
                        at: Timestamp::now(),
                    };
                    let count = {
                        let mut inner = self.lock();
                        inner.received.push(message.clone());
                        inner.received.len()
                    };
                    self.received_count.send_replace(count);
                    // Nobody listening is fine.
                    let _ = self.received_tx.send(message);
                }
                Plan::Respond(success.response)
            }
            ReplyKind::Respond(f) => Plan::Respond(f(req)),
            ReplyKind::Delayed(delay, then) => {
                Plan::Delay(delay, Box::new(self.plan(req, endpoint, *then)))
            }
            ReplyKind::Drop => Plan::Drop,
        };
        if let Plan::Respond(response) = &mut plan {
            response.headers.extend(extra);
        }
        plan
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    pub fn received(&self) -> Vec<ReceivedMessage> {
        self.lock().received.clone()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<ReceivedMessage> {
        self.received_tx.subscribe()
    }

    pub fn request_count(&self) -> watch::Receiver<usize> {
        self.request_count.subscribe()
    }

    pub fn received_count(&self) -> watch::Receiver<usize> {
        self.received_count.subscribe()
    }

    pub fn enqueue(&self, endpoint: Endpoint, reply: Reply) {
        self.lock()
            .scripts
            .entry(endpoint)
            .or_default()
            .push_back(reply);
    }

    pub fn set_default(&self, endpoint: Endpoint, reply: Reply) {
        self.lock().defaults.insert(endpoint, reply);
    }

    pub fn unreachable_recipients(&self, recipients: &[&str]) {
        let mut inner = self.lock();
        inner.unreachable = recipients
            .iter()
            .map(|r| {
                if self.provider == Provider::Telegram {
                    (*r).to_owned()
                } else {
                    digits(r)
                }
            })
            .collect();
    }

    pub fn require_auth(&self, secret: Option<String>) {
        self.lock().auth = secret;
    }

    pub fn reset(&self) {
        let mut inner = self.lock();
        inner.requests.clear();
        inner.received.clear();
        inner.scripts.clear();
        inner.defaults.clear();
        drop(inner);
        self.request_count.send_replace(0);
        self.received_count.send_replace(0);
    }
}

/// Digits of `s` (for phone numbers given as `+55…`, `whatsapp:+55…`).
pub(crate) fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// A deterministic pseudo-random-looking hex id for message ids.
pub(crate) fn hex_id(prefix: &str, serial: u64, len: usize) -> String {
    // splitmix64: distinct, stable ids without a random source.
    let mut x = serial.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut out = String::from(prefix);
    while out.len() < prefix.len() + len {
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
        out.push_str(&format!("{x:016X}"));
    }
    out.truncate(prefix.len() + len);
    out
}

#[cfg(test)]
mod tests;
