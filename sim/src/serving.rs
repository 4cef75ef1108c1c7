//! How the fake platforms (Loja Integrada, Nuvemshop) run their HTTP side: an
//! axum router served on a bound listener until stopped or dropped, on the
//! caller's tokio runtime or on a runtime of its own for synchronous tests.

use std::net::SocketAddr;

use axum::Router;
use tokio::sync::oneshot;

/// A running fake server. Stops on [`Serving::stop`] or when dropped.
pub(crate) struct Serving {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Serving {
    /// Bind `addr` and serve `app` on the current tokio runtime; `name` is
    /// the fake's name in the message printed if the server fails.
    pub(crate) async fn start(
        addr: SocketAddr,
        app: Router,
        name: &'static str,
    ) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (shutdown, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                // Either an explicit stop or the handle being dropped ends the server.
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                eprintln!("{name} server stopped: {e}");
            }
        });
        Ok(Self {
            addr,
            shutdown: Some(shutdown),
            runtime: None,
        })
    }

    /// A one-worker runtime for a fake started from synchronous code; hand it
    /// to [`Serving::keep_runtime`] once the fake runs on it.
    pub(crate) fn own_runtime(thread_name: &str) -> std::io::Result<tokio::runtime::Runtime> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(thread_name)
            .enable_all()
            .build()
    }

    /// Keep the runtime the server runs on alive as long as the server.
    pub(crate) fn keep_runtime(&mut self, runtime: tokio::runtime::Runtime) {
        self.runtime = Some(runtime);
    }

    /// The bound address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop serving (idempotent).
    pub(crate) fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.stop();
    }
}
