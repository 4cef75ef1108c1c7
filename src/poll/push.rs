//! The webhook listener: `POST /hooks/<store-id>` on `daemon.webhooks.listen`,
//! where a platform pushes order changes. It sits behind the operator's
//! reverse proxy (loopback only unless `daemon.webhooks.allow_remote`).
//!
//! A push is never trusted for content: the store's connector authenticates
//! it (`verify-push`) and names the orders to look at; the listener drops the
//! names in the store's [`PushInbox`] and its poller sweeps sooner, through
//! exactly the path a scheduled poll takes. Answers:
//!
//! * 404 — no such store, a disabled one, or its connector does not verify
//!   pushes; any other path (logged, at most once a minute with a count, so a
//!   scanner cannot flood the journal);
//! * 405 — anything but `POST`;
//! * 413 — a body over `daemon.webhooks.max_body_bytes`: at once when its
//!   `Content-Length` says so (nothing read), else found while reading in
//!   chunks and never kept past the cap;
//! * 408 — the body did not arrive within [`BODY_DEADLINE`];
//! * 429 + `Retry-After` — an authentic push over the store's push rate, or
//!   any request while the store's refusal budget is spent (below);
//! * 200 `accepted` — verified, the store polls now; 200 `nothing to do` —
//!   verified, nothing to do. Always 200, never 202: Nuvemshop redelivers a
//!   push answered anything but 200 (docs/platforms/nuvemshop.md §Webhooks),
//!   and no platform needs to tell the two apart;
//! * 401 — the connector refused the credentials (the log names the store
//!   and the connector's reason, never a header value);
//! * 400 — not a delivery the connector understands; 503 — anything else.
//!
//! Rate policy: verification makes no HTTP request and is bounded by
//! [`VERIFY_TIMEOUT`], so it comes first, and only authentic pushes spend
//! the store's `per_store_per_minute`/`burst` budget — a stranger who knows
//! the URL cannot make the platform's real pushes get 429 from it. Requests
//! that were read and then refused (bad credentials, not understood, too
//! large while reading, connector unavailable, too slow or aborted) spend a
//! separate per-store budget [`REFUSAL_FACTOR`] times looser; while that one
//! is spent, requests presenting credentials the connector refused lately
//! get 429 without being read (the inbox keeps keyed hashes, never the
//! values), so a flood of forged pushes costs bounded work, while a request
//! with other credentials — the platform's — is still verified. Only pushes
//! that ask for a poll spend the push budget; an authentic push over it keeps
//! its orders for the next sweep and only holds back the wake-up.
//!
//! Connections are bounded exactly like the metrics endpoint's (it is the
//! same accept loop), and a request's body must arrive within
//! [`BODY_DEADLINE`], so slow clients cannot hold the connection slots.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State as AxumState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::StreamExt;
use jiff::Timestamp;
use tokio_util::sync::CancellationToken;

use super::inbox::{PushInboxes, PushRejection};
use crate::http_listener::accept_loop;
use crate::metrics::Metrics;
use crate::plugin::{PluginError, PushHint, PushRequest};
use crate::state::StateHandle;

/// How long a connector may take to verify one push: it makes no HTTP
/// request, so anything longer is a connector in trouble (503, the platform
/// delivers again).
pub const VERIFY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a request's body may take to arrive: LI's few hundred bytes
/// take milliseconds, so a client still sending after this is holding one
/// of the listener's connection slots.
pub const BODY_DEADLINE: Duration = Duration::from_secs(10);
/// The refusal budget is this many times the store's push budget (rate and
/// burst).
pub const REFUSAL_FACTOR: u32 = 4;
/// After a chunked body went over the cap, the rest is read and thrown away
/// up to this many bytes, so an honest client gets its 413 instead of a reset
/// connection; past it the connection is closed.
const DRAIN_LIMIT: u64 = 16 * 1024 * 1024;
/// …and for at most this long.
const DRAIN_TIME: Duration = Duration::from_secs(5);
/// At most one "unknown store" log line per this long; the others are
/// counted into the next one.
const UNKNOWN_LOG_EVERY: Duration = Duration::from_secs(60);
/// Header values at least this long are kept out of log lines (shorter ones
/// are not credentials, and replacing them would garble the text).
const MIN_SCRUBBED_CHARS: usize = 8;
/// Store ids in log lines are cut to this many characters.
const SHOWN_ID_CHARS: usize = 64;

/// Why the webhook listener cannot listen.
#[derive(Debug, thiserror::Error)]
pub enum WebhooksBindError {
    /// The address could not be bound.
    #[error("cannot listen on daemon.webhooks.listen = {listen}: {source}")]
    Io {
        /// `daemon.webhooks.listen`.
        listen: SocketAddr,
        /// Why.
        source: io::Error,
    },
}

/// Bind the webhook listener on `listen` (the configuration has already
/// checked that it is loopback unless `allow_remote` says otherwise).
pub fn bind(listen: SocketAddr) -> Result<tokio::net::TcpListener, WebhooksBindError> {
    let io_error = |source| WebhooksBindError::Io { listen, source };
    let listener = std::net::TcpListener::bind(listen).map_err(io_error)?;
    listener.set_nonblocking(true).map_err(io_error)?;
    let listener = tokio::net::TcpListener::from_std(listener).map_err(io_error)?;
    // The bound address (with `listen = "…:0"`, the port the system chose).
    let local = listener.local_addr().unwrap_or(listen);
    tracing::info!(listen = %local, "webhook listener on {local}: pushes go to http://{local}/hooks/<store>");
    Ok(listener)
}

/// What the listener works with.
#[derive(Clone)]
pub struct PushEndpoint {
    /// The current state: stores, their connectors, `daemon.webhooks`.
    pub state: StateHandle,
    /// Where verified pushes go.
    pub inboxes: PushInboxes,
    /// `arauto_push_requests_total`.
    pub metrics: Arc<Metrics>,
}

/// What one running listener's handlers share.
#[derive(Clone)]
struct Listener {
    endpoint: PushEndpoint,
    /// Keeps the "unknown store" log line to one a minute.
    unknown_log: Arc<UnknownStoreLog>,
}

/// Rate limit of the log line for pushes to unknown stores: the first one,
/// then at most one per [`UNKNOWN_LOG_EVERY`] saying how many were not logged.
#[derive(Debug, Default)]
struct UnknownStoreLog {
    inner: std::sync::Mutex<UnknownLogState>,
}

#[derive(Debug, Default)]
struct UnknownLogState {
    last_logged: Option<Instant>,
    unlogged: u64,
}

impl UnknownStoreLog {
    /// Whether to log this one now; `Some(n)`: yes, and `n` were not logged
    /// since the last line.
    fn should_log(&self, now: Instant) -> Option<u64> {
        let mut state = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let due = state
            .last_logged
            .is_none_or(|last| now.saturating_duration_since(last) >= UNKNOWN_LOG_EVERY);
        if due {
            state.last_logged = Some(now);
            Some(std::mem::take(&mut state.unlogged))
        } else {
            state.unlogged = state.unlogged.saturating_add(1);
            None
        }
    }
}

/// Serve `POST /hooks/<store-id>` on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    endpoint: PushEndpoint,
    shutdown: CancellationToken,
) {
    let router = Router::new()
        .route("/hooks/{store}", post(hook))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                "not found: pushes go to POST /hooks/<store-id>\n",
            )
        })
        .with_state(Listener {
            endpoint,
            unknown_log: Arc::default(),
        });
    accept_loop("webhooks", listener, router, shutdown).await;
}

/// `POST /hooks/<store-id>`.
async fn hook(
    AxumState(listener): AxumState<Listener>,
    Path(store_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let endpoint = &listener.endpoint;
    let state = endpoint.state.load();
    let Some(webhooks) = state.config.daemon.webhooks.clone() else {
        // The listener outlived its configuration for a moment (a reload
        // that turns it off stops it right after).
        return (StatusCode::SERVICE_UNAVAILABLE, "pushes are off\n").into_response();
    };
    let store = state
        .stores
        .get(&store_id)
        .filter(|store| store.config.enabled && store.info.push.verify);
    let Some(store) = store else {
        if let Some(unlogged) = listener.unknown_log.should_log(Instant::now()) {
            let shown = shown_id(&store_id);
            let more = if unlogged > 0 {
                format!(" ({unlogged} more such pushes since the last line)")
            } else {
                String::new()
            };
            tracing::info!(
                store = %shown,
                "push refused (404): no enabled store {shown:?} whose connector verifies pushes{more}"
            );
        }
        let label = if state.stores.contains_key(&store_id) {
            store_id.as_str()
        } else {
            "unknown"
        };
        endpoint.metrics.push_request(label, "not_found");
        return (StatusCode::NOT_FOUND, "no such store accepts pushes\n").into_response();
    };
    let id = store.config.id.as_str();
    let inbox = endpoint.inboxes.get(id);
    let count = |reason: PushRejection| {
        inbox.rejected(reason);
        endpoint.metrics.push_request(id, reason.as_str());
    };
    let refusal_rate = webhooks.per_store_per_minute.saturating_mul(REFUSAL_FACTOR);
    let refusal_burst = webhooks.burst.saturating_mul(REFUSAL_FACTOR);
    // What the request presents as credentials, hashed (never kept in the
    // clear): a flood of refused credentials is turned away unread.
    let credential = inbox.credential(
        headers
            .get(header::AUTHORIZATION)
            .map(|value| value.as_bytes()),
    );
    // A request that took work and was not an authentic push.
    let charge = || inbox.charge_refusal(refusal_rate, refusal_burst, Instant::now(), None);
    let cap = webhooks.max_body_bytes.0;

    // Declared too large: answered before anything is read (and costs
    // nothing, so it spends no budget).
    if declared_length(&headers).is_some_and(|length| length > cap) {
        count(PushRejection::TooLarge);
        // Counted (check, metrics); at debug, since it costs the sender
        // nothing to repeat.
        tracing::debug!(store = %id, limit = cap, "push refused (413): its Content-Length is over daemon.webhooks.max_body_bytes");
        return too_large();
    }
    if let Err(wait) = inbox.refusals_left(refusal_rate, refusal_burst, Instant::now(), credential)
    {
        count(PushRejection::RefusalsThrottled);
        tracing::debug!(store = %id, "push refused (429): too many of this store's recent requests were refused");
        return too_many(wait, "too many refused requests for this store\n");
    }
    let body = match tokio::time::timeout(BODY_DEADLINE, read_capped(body, cap)).await {
        Ok(Ok(body)) => body,
        Ok(Err(BodyError::TooLarge)) => {
            charge();
            count(PushRejection::TooLarge);
            tracing::info!(store = %id, limit = cap, "push refused (413): the body is over daemon.webhooks.max_body_bytes");
            return too_large();
        }
        Ok(Err(BodyError::Aborted)) => {
            // The client went away: nobody reads an answer, and it is not a
            // refusal `check` should count.
            charge();
            tracing::debug!(store = %id, "push dropped: the connection broke while its body was read");
            return (StatusCode::BAD_REQUEST, "incomplete body\n").into_response();
        }
        Err(_) => {
            charge();
            tracing::debug!(
                store = %id,
                "push dropped (408): its body took more than {}s to arrive",
                BODY_DEADLINE.as_secs()
            );
            return (
                StatusCode::REQUEST_TIMEOUT,
                [(header::CONNECTION, "close")],
                "the body took too long\n",
            )
                .into_response();
        }
    };
    let request = PushRequest {
        headers: headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    };
    // What the sender presented, to keep it out of the log whatever the
    // connector's reason quotes.
    let presented = presented_secrets(&request.headers);
    let verified = tokio::time::timeout(VERIFY_TIMEOUT, store.connector.verify_push(request)).await;
    match verified {
        Ok(Ok(hint)) => {
            match hint {
                PushHint::LookAt(orders) => {
                    // Authentic and asking for a poll: only now is the
                    // store's push budget spent. Over it, the orders are kept
                    // for the next sweep; only the wake-up is held back.
                    if let Err(wait) = inbox.take_token(
                        webhooks.per_store_per_minute,
                        webhooks.burst,
                        Instant::now(),
                    ) {
                        inbox.keep_for_later(orders);
                        count(PushRejection::RateLimited);
                        tracing::info!(store = %id, "push over daemon.webhooks.per_store_per_minute (429): its orders wait for the next poll");
                        return too_many(wait, "too many pushes for this store\n");
                    }
                    let orders_named = orders.len();
                    // In a cluster another node may poll the store: it gets them too.
                    endpoint.inboxes.forward(id, &orders);
                    let dropped = inbox.accept(orders, Timestamp::now());
                    endpoint.inboxes.wake(id);
                    endpoint.metrics.push_request(id, "accepted");
                    if dropped > 0 {
                        tracing::debug!(
                            store = %id,
                            dropped,
                            "push accepted with more orders than one poll looks at; the extra ones are left to the listing"
                        );
                    }
                    tracing::info!(store = %id, orders = orders_named, "push accepted: polling now");
                    (StatusCode::OK, "accepted\n").into_response()
                }
                PushHint::Ignore(why) => {
                    // Already through the instance's redactor; the sender's
                    // own header values are scrubbed here.
                    let why = scrub(&why, &presented);
                    inbox.ignored(Timestamp::now());
                    endpoint.metrics.push_request(id, "ignored");
                    tracing::debug!(store = %id, "push verified, nothing to do: {why}");
                    (StatusCode::OK, "nothing to do\n").into_response()
                }
            }
        }
        Ok(Err(PluginError::Misconfigured(reason))) => {
            inbox.charge_refusal(
                refusal_rate,
                refusal_burst,
                Instant::now(),
                Some(credential),
            );
            count(PushRejection::BadCredentials);
            let reason = scrub(&reason, &presented);
            tracing::warn!(store = %id, "push refused (401): {reason}");
            (StatusCode::UNAUTHORIZED, "unauthorized\n").into_response()
        }
        Ok(Err(PluginError::Permanent(reason))) => {
            charge();
            count(PushRejection::NotUnderstood);
            let reason = scrub(&reason, &presented);
            tracing::info!(store = %id, "push refused (400): {reason}");
            (
                StatusCode::BAD_REQUEST,
                "not a delivery this store's connector understands\n",
            )
                .into_response()
        }
        Ok(Err(error)) => {
            charge();
            count(PushRejection::Unavailable);
            let reason = scrub(&error.to_string(), &presented);
            tracing::warn!(store = %id, "push not verified (503): {reason}");
            unavailable()
        }
        Err(_) => {
            charge();
            count(PushRejection::Unavailable);
            tracing::warn!(
                store = %id,
                "push not verified (503): the connector took more than {}s",
                VERIFY_TIMEOUT.as_secs()
            );
            unavailable()
        }
    }
}

/// The request's `Content-Length`, if it has a readable one.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn too_many(wait: Duration, text: &'static str) -> Response {
    let seconds = wait.as_secs().max(1);
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, seconds.to_string())],
        text,
    )
        .into_response()
}

fn too_large() -> Response {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        [(header::CONNECTION, "close")],
        "body too large\n",
    )
        .into_response()
}

fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "cannot verify the push now; deliver it again later\n",
    )
        .into_response()
}

/// Why a body was not read whole.
#[derive(Debug, PartialEq, Eq)]
enum BodyError {
    /// Over the cap.
    TooLarge,
    /// The connection broke (the client aborted or reset it).
    Aborted,
}

/// The body, if it is at most `cap` bytes. A longer one is never kept past
/// the cap: the rest is read and discarded (up to [`DRAIN_LIMIT`] bytes and
/// [`DRAIN_TIME`]) so the client reads its 413. Only chunked bodies get here
/// too large: a declared length over the cap is answered before reading.
async fn read_capped(body: Body, cap: u64) -> Result<Vec<u8>, BodyError> {
    let mut stream = body.into_data_stream();
    let mut kept: Vec<u8> = Vec::new();
    let mut total: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| BodyError::Aborted)?;
        total = total.saturating_add(chunk.len() as u64);
        if total > cap {
            drop(kept);
            let drain = async {
                while let Some(Ok(chunk)) = stream.next().await {
                    total = total.saturating_add(chunk.len() as u64);
                    if total > DRAIN_LIMIT {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
            return Err(BodyError::TooLarge);
        }
        kept.extend_from_slice(&chunk);
    }
    Ok(kept)
}

/// Header values long enough to be credentials, and their part after an
/// auth scheme (`Bearer <token>` → the token too).
fn presented_secrets(headers: &[(String, String)]) -> Vec<String> {
    // Headers that describe the request rather than authenticate it.
    const PLAIN: [&str; 9] = [
        "host",
        "content-type",
        "content-length",
        "user-agent",
        "accept",
        "accept-encoding",
        "connection",
        "transfer-encoding",
        "x-forwarded-for",
    ];
    let mut secrets: Vec<String> = Vec::new();
    for (_, value) in headers
        .iter()
        .filter(|(name, _)| !PLAIN.contains(&name.as_str()))
    {
        let value = value.trim();
        if value.len() >= MIN_SCRUBBED_CHARS {
            secrets.push(value.to_owned());
        }
        if let Some((_, credential)) = value.split_once(' ') {
            let credential = credential.trim();
            if credential.len() >= MIN_SCRUBBED_CHARS {
                secrets.push(credential.to_owned());
            }
        }
    }
    // Longest first, so a value is replaced whole before its parts.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets
}

/// `text` with every one of `secrets` replaced by `<redacted>`.
fn scrub(text: &str, secrets: &[String]) -> String {
    secrets.iter().fold(text.to_owned(), |text, secret| {
        text.replace(secret.as_str(), "<redacted>")
    })
}

/// A store id from a URL, fit for a log line: at most [`SHOWN_ID_CHARS`]
/// characters, anything but letters, digits, `-`, `_` and `.` shown as `?`.
fn shown_id(raw: &str) -> String {
    let mut shown: String = raw
        .chars()
        .take(SHOWN_ID_CHARS)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '?'
            }
        })
        .collect();
    if raw.chars().count() > SHOWN_ID_CHARS {
        shown.push('…');
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_id_from_the_url_is_cut_and_cleaned_for_the_log() {
        assert_eq!(shown_id("loja-1_a.b"), "loja-1_a.b");
        assert_eq!(shown_id("a\nb\u{1b}[31m"), "a?b??31m");
        let long = "x".repeat(200);
        let shown = shown_id(&long);
        assert_eq!(shown.chars().count(), SHOWN_ID_CHARS + 1);
        assert!(shown.ends_with('…'));
    }

    #[test]
    fn what_the_sender_presented_never_reaches_the_log() {
        let headers = vec![
            (
                "authorization".to_owned(),
                "Bearer guessed-token-123".to_owned(),
            ),
            ("content-type".to_owned(), "application/json".to_owned()),
            ("x-short".to_owned(), "abc".to_owned()),
        ];
        let secrets = presented_secrets(&headers);
        let reason =
            "token guessed-token-123 (Bearer guessed-token-123) is wrong; abc application/json";
        let scrubbed = scrub(reason, &secrets);
        assert!(!scrubbed.contains("guessed-token-123"), "{scrubbed}");
        assert!(scrubbed.contains("abc"), "short values stay: {scrubbed}");
        assert!(scrubbed.contains("application/json"), "{scrubbed}");
    }

    #[tokio::test]
    async fn a_body_over_the_cap_is_refused_without_keeping_it() {
        let small = Body::from(vec![1_u8; 100]);
        assert_eq!(read_capped(small, 100).await.map(|b| b.len()), Ok(100));
        let big = Body::from(vec![1_u8; 101]);
        assert_eq!(read_capped(big, 100).await, Err(BodyError::TooLarge));
    }

    #[tokio::test]
    async fn a_broken_connection_is_not_a_body_too_large() {
        let chunks: Vec<Result<&'static [u8], io::Error>> = vec![
            Ok(b"{\"id\""),
            Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset")),
        ];
        let body = Body::from_stream(futures::stream::iter(chunks));
        assert_eq!(read_capped(body, 100).await, Err(BodyError::Aborted));
    }

    #[test]
    fn unknown_stores_are_logged_once_a_minute_with_a_count() {
        let log = UnknownStoreLog::default();
        let start = Instant::now();
        assert_eq!(log.should_log(start), Some(0));
        assert_eq!(log.should_log(start + Duration::from_secs(1)), None);
        assert_eq!(log.should_log(start + Duration::from_secs(2)), None);
        assert_eq!(log.should_log(start + UNKNOWN_LOG_EVERY), Some(2));
    }
}
