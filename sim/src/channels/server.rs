//! The HTTP side of the fakes: one axum server per [`FakeProvider`].

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::JoinHandle;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::sync::{broadcast, oneshot};

use super::{
    CannedResponse, Endpoint, Plan, Provider, ReceivedMessage, RecordedRequest, Reply, Shared,
};

/// Request bodies larger than this are answered 413 (no plugin sends that much).
const MAX_BODY: usize = 4 * 1024 * 1024;

/// A running fake provider on `127.0.0.1:<random port>`. Dropping it stops the server.
pub struct FakeProvider {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for FakeProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeProvider")
            .field("provider", &self.shared.provider)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl FakeProvider {
    /// Start the fake on the current tokio runtime.
    pub async fn start(provider: Provider) -> io::Result<Self> {
        Self::start_on(provider, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Start the fake on `addr` (the demo binds fixed ports), on the current
    /// tokio runtime.
    pub async fn start_on(provider: Provider, addr: SocketAddr) -> io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(provider));
        let (tx, rx) = oneshot::channel();
        tokio::spawn(serve(listener, Arc::clone(&shared), rx));
        Ok(Self {
            shared,
            addr,
            shutdown: Some(tx),
            thread: None,
        })
    }

    /// Start the fake on a thread of its own with its own runtime, for
    /// synchronous tests (such as plugin unit tests with the SDK harness).
    pub fn start_in_background(provider: Provider) -> io::Result<Self> {
        let std_listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let shared = Arc::new(Shared::new(provider));
        let (tx, rx) = oneshot::channel();
        let server_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("fake-{provider}"))
            .spawn(move || {
                runtime.block_on(async move {
                    match tokio::net::TcpListener::from_std(std_listener) {
                        Ok(listener) => serve(listener, server_shared, rx).await,
                        Err(e) => eprintln!("fake {provider}: cannot adopt listener: {e}"),
                    }
                });
                // Dropping the runtime cancels connections still stalled in a delay.
            })?;
        Ok(Self {
            shared,
            addr,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// Which provider this fake impersonates.
    pub fn provider(&self) -> Provider {
        self.shared.provider
    }

    /// The base URL, e.g. `http://127.0.0.1:41234` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far, in arrival order (including rejected ones).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests()
    }

    /// The requests classified as `endpoint`.
    pub fn requests_to(&self, endpoint: Endpoint) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.endpoint == Some(endpoint))
            .collect()
    }

    /// The most recent request, if any.
    pub fn last_request(&self) -> Option<RecordedRequest> {
        self.requests().pop()
    }

    /// Messages accepted so far (sends answered with [`Reply::success`]).
    pub fn received(&self) -> Vec<ReceivedMessage> {
        self.shared.received()
    }

    /// A live feed of accepted messages (the demo prints them as they arrive).
    /// Only messages accepted after subscribing are delivered.
    pub fn subscribe(&self) -> broadcast::Receiver<ReceivedMessage> {
        self.shared.subscribe()
    }

    /// Wait until at least `n` requests have arrived and return them all.
    /// Wrap in `tokio::time::timeout` to bound the wait.
    pub async fn wait_for_requests(&self, n: usize) -> Vec<RecordedRequest> {
        let mut count = self.shared.request_count();
        // The sender lives in `shared`, which we hold: the channel cannot close.
        let _ = count.wait_for(|c| *c >= n).await;
        self.requests()
    }

    /// Wait until at least `n` messages have been accepted and return them all.
    /// Wrap in `tokio::time::timeout` to bound the wait.
    pub async fn wait_for_received(&self, n: usize) -> Vec<ReceivedMessage> {
        let mut count = self.shared.received_count();
        let _ = count.wait_for(|c| *c >= n).await;
        self.received()
    }

    /// Answer the next `endpoint` request with `reply` (queued behind earlier ones).
    pub fn enqueue(&self, endpoint: Endpoint, reply: Reply) {
        self.shared.enqueue(endpoint, reply);
    }

    /// Answer the next `times` `endpoint` requests with `reply`.
    pub fn enqueue_times(&self, endpoint: Endpoint, times: usize, reply: Reply) {
        for _ in 0..times {
            self.shared.enqueue(endpoint, reply.clone());
        }
    }

    /// Answer `endpoint` requests with `reply` whenever nothing is queued
    /// (initially [`Reply::success`]).
    pub fn set_default(&self, endpoint: Endpoint, reply: Reply) {
        self.shared.set_default(endpoint, reply);
    }

    /// Answer every send to one of `recipients` with the provider's
    /// documented "cannot reach this recipient" error, whatever is scripted
    /// (scripts stay queued for the other sends): WhatsApp Cloud error 131026,
    /// Evolution `exists:false`, Z-API "Phone number does not exist", Twilio
    /// 21614 (not a mobile number), Telegram 403 "bot was blocked by the
    /// user". Phones compare by digits (`+55 11 98765-4321` matches
    /// `5511987654321`); Telegram compares chat ids as given. Replaces the
    /// previous list; an empty list reaches everyone again.
    pub fn unreachable_recipients(&self, recipients: &[&str]) {
        self.shared.unreachable_recipients(recipients);
    }

    /// Reject requests whose credentials don't match `secret`, as the provider
    /// does: WhatsApp Cloud `Authorization: Bearer <secret>` (else 401, code
    /// 190); Evolution `apikey: <secret>` (else 401); Z-API
    /// `Client-Token: <secret>` (else 400 "your client-token is not
    /// configured"); Twilio Basic auth where `secret` is `"user:password"`
    /// (else 401, code 20003); Telegram `/bot<secret>/…` (else 401). Webhook
    /// receivers ignore it (they verify nothing).
    pub fn require_auth(&self, secret: &str) {
        self.shared.require_auth(Some(secret.to_owned()));
    }

    /// Accept any credentials again (the initial state).
    pub fn accept_any_auth(&self) {
        self.shared.require_auth(None);
    }

    /// Forget recorded requests and messages, scripts and defaults (not the auth).
    pub fn reset(&self) {
        self.shared.reset();
    }
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    shutdown: oneshot::Receiver<()>,
) {
    let provider = shared.provider;
    let app = Router::new().fallback(handle).with_state(shared);
    tokio::select! {
        result = axum::serve(listener, app) => {
            if let Err(e) = result {
                eprintln!("fake {provider}: server stopped: {e}");
            }
        }
        _ = shutdown => {}
    }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(bytes) => bytes.to_vec(),
        Err(e) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("cannot read request body: {e}"),
            )
                .into_response();
        }
    };
    let recorded = RecordedRequest {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
        endpoint: None,
    };
    let mut plan = shared.handle(recorded);
    loop {
        match plan {
            Plan::Respond(canned) => return to_response(canned),
            Plan::Delay(delay, then) => {
                tokio::time::sleep(delay).await;
                plan = *then;
            }
            Plan::Drop => {
                return Response::builder()
                    .status(StatusCode::OK)
                    .header("content-type", "application/json")
                    .body(Body::new(FailingBody))
                    .unwrap_or_default();
            }
        }
    }
}

fn to_response(canned: CannedResponse) -> Response {
    let status = StatusCode::from_u16(canned.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = Response::new(Body::from(canned.body));
    *response.status_mut() = status;
    for (name, value) in canned.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

/// A body that fails on first read, so hyper aborts the connection mid-response.
pub(crate) struct FailingBody;

impl HttpBody for FailingBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Poll::Ready(Some(Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "fake: connection dropped",
        ))))
    }
}
