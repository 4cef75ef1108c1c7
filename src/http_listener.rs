//! The HTTP listeners' shared accept loop (the metrics endpoint and the
//! webhook listener): connections are bounded so that clients cannot use up
//! the daemon's file descriptors (which the control socket and the plugins
//! need too): at most [`MAX_CONNECTIONS`] are open at once, and further ones
//! wait in the kernel's accept backlog, where they hold no descriptor of the
//! daemon, until one closes. A request's head must arrive within
//! [`HEADER_READ_TIMEOUT`], and a connection on which nothing moves for
//! [`IDLE_TIMEOUT`] is closed.
//!
//! It lives outside the stages (poll, report) because both use it: the
//! webhook listener belongs to polling, the metrics endpoint to reporting.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Semaphore, TryAcquireError};
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Connections open at once per listener. A Prometheus server keeps one per
/// target, so this leaves room for a few more scrapers and a curl; beyond it, new
/// connections wait in the accept backlog (and a warning is logged once).
pub const MAX_CONNECTIONS: usize = 32;
/// A request's head must be complete within this, counted from when the
/// connection starts waiting for it: once accepted, and again after each
/// answer. The latter makes it the keep-alive idle timeout as well (a scraper
/// reconnects for its next scrape).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection on which no byte is read or written for this long is closed
/// (a peer that vanished, or stopped reading its answer).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Accept connections while fewer than [`MAX_CONNECTIONS`] are open, and
/// serve each one with the timeouts above. `what` names the endpoint in log
/// lines.
pub async fn accept_loop(
    what: &'static str,
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: CancellationToken,
) {
    let connections = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut saturated = false;
    let mut failures: u32 = 0;
    loop {
        let permit = match slots.clone().try_acquire_owned() {
            Ok(permit) => {
                saturated = false;
                permit
            }
            Err(TryAcquireError::Closed) => break,
            Err(TryAcquireError::NoPermits) => {
                if !saturated {
                    saturated = true;
                    tracing::warn!(
                        "{what}: {MAX_CONNECTIONS} connections open, the limit; new ones wait until one closes"
                    );
                }
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    permit = slots.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                }
            }
        };
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => {
                failures = 0;
                stream
            }
            Err(error) => {
                // Typically EMFILE: back off instead of spinning, and keep serving.
                failures = failures.saturating_add(1);
                let pause = Duration::from_millis(100)
                    .saturating_mul(failures)
                    .min(Duration::from_secs(5));
                tracing::warn!("{what}: accept failed: {error}; retrying in {pause:?}");
                tokio::time::sleep(pause).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(router.clone());
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let _permit = permit;
            let io = TokioIo::new(IdleTimeout::new(stream, IDLE_TIMEOUT));
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            let connection = http.serve_connection(io, service);
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = shutdown.cancelled() => {
                    // Finish the answer in flight, if any, then close.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = result {
                tracing::debug!("{what}: connection closed: {error}");
            }
        });
    }
    // Stop accepting before draining.
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// A stream that fails with `TimedOut` once neither reading nor writing has
/// made progress for `limit` while the server waits on it.
struct IdleTimeout<T> {
    inner: T,
    limit: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<T> IdleTimeout<T> {
    fn new(inner: T, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            deadline: Box::pin(tokio::time::sleep(limit)),
        }
    }

    fn progressed(&mut self) {
        let next = tokio::time::Instant::now() + self.limit;
        self.deadline.as_mut().reset(next);
    }

    /// The inner stream is not ready: wait, unless it has been idle too long.
    fn pending<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no traffic for {}s", self.limit.as_secs()),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleTimeout<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                this.progressed();
                Poll::Ready(result)
            }
            Poll::Pending => this.pending(cx),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(result) => {
                this.progressed();
                Poll::Ready(result)
            }
            Poll::Pending => this.pending(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(result) => {
                this.progressed();
                Poll::Ready(result)
            }
            Poll::Pending => this.pending(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Ready(result) => Poll::Ready(result),
            Poll::Pending => this.pending(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::IdleTimeout;

    #[tokio::test]
    async fn a_peer_that_sends_nothing_is_cut_off() {
        let (_peer, ours) = tokio::io::duplex(64);
        let mut ours = IdleTimeout::new(ours, Duration::from_millis(100));
        let mut buf = [0_u8; 8];
        let read = tokio::time::timeout(Duration::from_secs(10), ours.read(&mut buf))
            .await
            .expect("cut off well before 10 s");
        let error = read.expect_err("an idle peer is an error");
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn a_peer_that_stops_reading_is_cut_off() {
        let (_peer, ours) = tokio::io::duplex(64);
        let mut ours = IdleTimeout::new(ours, Duration::from_millis(100));
        let write = tokio::time::timeout(Duration::from_secs(10), ours.write_all(&[7; 4096]))
            .await
            .expect("cut off well before 10 s");
        let error = write.expect_err("a stalled write is an error");
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn traffic_keeps_a_connection_open() {
        let (mut peer, ours) = tokio::io::duplex(64);
        // Bytes every 100 ms for 1.5 s: longer than the limit in total, never
        // idle for as long as the limit.
        let mut ours = IdleTimeout::new(ours, Duration::from_secs(1));
        let talker = tokio::spawn(async move {
            for _ in 0..15 {
                peer.write_all(b"x").await.unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let mut got = Vec::new();
        ours.read_to_end(&mut got)
            .await
            .expect("no timeout while bytes flow");
        assert_eq!(got, [b'x'; 15]);
        talker.await.unwrap();
    }
}
