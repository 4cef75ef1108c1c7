//! The plugin host in process: a host with a persistent compiled cache, the
//! test plugins loaded into it, a message as the send stage builds it, and a
//! real HTTP server on 127.0.0.1 standing in for a provider.

use std::net::SocketAddr;
use std::path::PathBuf;

use std::sync::{Arc, Mutex, PoisonError};

use arauto::model::{EventStore, NotificationKind, OrderEvent};
use arauto::plugin::{
    ConnectorInstance, HostConfig, InstanceConfig, MessageMeta, OutgoingMessage, Plugin,
    PluginHost, Recipient, SenderInstance,
};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};

use super::plugins::test_plugin;

/// A compiled-plugin cache shared by the test runs (debug-build compiles are
/// slow; the cache test uses its own directory).
pub fn shared_cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache")
}

/// A host with the shared cache.
pub fn host() -> PluginHost {
    PluginHost::new(HostConfig::with_cache_dir(shared_cache_dir()))
        .expect("starting the plugin host")
}

/// The test plugin `name` (`tests/plugins/<name>`), loaded into `host`.
pub async fn load_test_plugin(host: &PluginHost, name: &str) -> Plugin {
    host.load(test_plugin(name))
        .await
        .unwrap_or_else(|e| panic!("loading {name}: {e}"))
}

/// A sender instance of the test plugin `name` with `config`.
pub async fn test_sender(host: &PluginHost, name: &str, config: InstanceConfig) -> SenderInstance {
    let plugin = load_test_plugin(host, name).await;
    host.sender(&plugin, config).expect("sender instance")
}

/// A connector instance of the test plugin `name` with `config`.
pub async fn test_connector(
    host: &PluginHost,
    name: &str,
    config: InstanceConfig,
) -> ConnectorInstance {
    let plugin = load_test_plugin(host, name).await;
    host.connector(&plugin, config).expect("connector instance")
}

/// A message as the send stage would build it.
pub fn message(key: &str, text: &str) -> OutgoingMessage {
    OutgoingMessage {
        idempotency_key: key.to_owned(),
        attempt: 1,
        recipient: Recipient {
            phone: Some("+5511987654321".into()),
            email: None,
            chat_id: None,
            name: Some("Maria Silva".into()),
            first_name: Some("Maria".into()),
        },
        text: text.to_owned(),
        template: None,
        meta: MessageMeta {
            store: "loja".into(),
            order_id: "10001".into(),
            order_number: "10001".into(),
            notification: NotificationKind::OrderShipped,
            job_id: key.to_owned(),
            channel: "whatsapp".into(),
        },
        event: OrderEvent {
            notification: NotificationKind::OrderShipped,
            job_id: key.to_owned(),
            store: EventStore {
                id: "loja".into(),
                description: None,
                platform: "loja-integrada".into(),
            },
            status_code: "pedido_enviado".into(),
            tracking: None,
            order: super::policy::order("10001", "pedido_enviado", super::policy::t0()),
        },
    }
}

/// Size of `/big` and `/big-stream` bodies.
pub const BIG_BODY: usize = 256 * 1024;

/// A real HTTP server on 127.0.0.1 standing in for a provider.
///
/// * `GET /ok` → `ok`
/// * `POST /inbox` → stores the body, 200
/// * `GET /big` → [`BIG_BODY`] bytes with a Content-Length
/// * `GET /big-stream` → [`BIG_BODY`] bytes streamed without a length
/// * `GET /never` → never answers
/// * `GET /redirect-ok` → 302 to `/ok`
/// * `GET /redirect-away` → 302 to the same server named `localhost`
pub struct TestServer {
    pub addr: SocketAddr,
    state: Arc<ServerState>,
}

#[derive(Default)]
struct ServerState {
    paths: Mutex<Vec<String>>,
    inbox: Mutex<Vec<String>>,
}

impl TestServer {
    /// Start serving on an ephemeral port of the current runtime.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the test server");
        let addr = listener.local_addr().expect("test server address");
        let state = Arc::new(ServerState::default());
        let record = |state: &Arc<ServerState>, uri: &Uri| {
            state
                .paths
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(uri.path().to_owned());
        };
        let s = state.clone();
        let router = Router::new()
            .route(
                "/ok",
                get({
                    let s = s.clone();
                    move |uri: Uri| async move {
                        record(&s, &uri);
                        "ok"
                    }
                }),
            )
            .route(
                "/inbox",
                any({
                    let s = s.clone();
                    move |uri: Uri, body: Bytes| async move {
                        record(&s, &uri);
                        s.inbox
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(String::from_utf8_lossy(&body).into_owned());
                        StatusCode::OK
                    }
                }),
            )
            .route(
                "/big",
                get({
                    let s = s.clone();
                    move |uri: Uri| async move {
                        record(&s, &uri);
                        vec![b'x'; BIG_BODY]
                    }
                }),
            )
            .route(
                "/big-stream",
                get({
                    let s = s.clone();
                    move |uri: Uri| async move {
                        record(&s, &uri);
                        let chunks = (0..BIG_BODY / 4096)
                            .map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b'y'; 4096])));
                        Body::from_stream(futures::stream::iter(chunks))
                    }
                }),
            )
            .route(
                "/never",
                get({
                    let s = s.clone();
                    move |uri: Uri| async move {
                        record(&s, &uri);
                        std::future::pending::<()>().await;
                        "unreachable"
                    }
                }),
            )
            .route(
                "/redirect-ok",
                get({
                    let s = s.clone();
                    move |uri: Uri| async move {
                        record(&s, &uri);
                        redirect("/ok".to_owned())
                    }
                }),
            )
            .route(
                "/redirect-away",
                get({
                    let s = s.clone();
                    move |uri: Uri| async move {
                        record(&s, &uri);
                        redirect(format!("http://localhost:{}/ok", addr.port()))
                    }
                }),
            );
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self { addr, state }
    }

    /// `http://127.0.0.1:PORT`
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT/path`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// How many requests reached `path`.
    pub fn hits(&self, path: &str) -> usize {
        self.state
            .paths
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|p| *p == path)
            .count()
    }

    /// Bodies posted to `/inbox`.
    pub fn inbox(&self) -> Vec<String> {
        self.state
            .inbox
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// An instance that may call this server (and nothing else).
    pub fn instance(&self, name: &str) -> InstanceConfig {
        let mut config = InstanceConfig::new(name);
        config.allowed_hosts = Some(vec![self.origin()]);
        config.allow_private_addresses = true;
        config
    }
}

fn redirect(location: String) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

/// The same host still runs a healthy plugin end to end: echo-sender posts to
/// the server and returns its receipt.
pub async fn assert_host_still_healthy(host: &PluginHost, server: &TestServer) {
    let sender = test_sender(
        host,
        "echo-sender",
        server
            .instance("healthy")
            .setting("url", server.url("/inbox")),
    )
    .await;
    let key = format!("healthy-{}", server.inbox().len());
    let receipt = sender
        .send(message(&key, "ainda vivo"))
        .await
        .expect("healthy send after the fault");
    assert_eq!(receipt.provider_message_id.as_deref(), Some(key.as_str()));
    assert!(
        server
            .inbox()
            .iter()
            .any(|body| body.contains("ainda vivo") && body.contains(&key)),
        "the healthy plugin's request did not reach the server: {:?}",
        server.inbox()
    );
}
