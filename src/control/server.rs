//! The daemon side of the control socket.

use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use jiff::Timestamp;

use super::protocol::{ChannelSummary, MAX_LINE, Request, Response, StatusReport, StoreSummary};
use crate::config;
use crate::poll::inbox::PushInboxes;
use crate::report::{Context, DaemonFacts, SharedStore};
use crate::state::{RuntimeInfo, StateHandle};

/// Mode of the socket file: owner and group may connect.
pub const SOCKET_MODE: u32 = 0o660;
/// Concurrent connections served; more wait in the kernel's listen backlog
/// (they hold no file descriptor of the daemon until accepted).
const MAX_CONNECTIONS: usize = 64;
/// A connection must deliver a whole request line within this, counted from
/// when it was accepted or got its previous answer; otherwise it is closed.
/// The CLI writes its request at once, so only stuck or hostile clients hit
/// it, and a slot they hold frees up quickly for `arauto status`.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// An answer must be taken by the client within this (a client that stops
/// reading would otherwise hold its slot forever).
const ANSWER_WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// What the control socket answers from: the daemon's current state, its
/// process facts and its database.
#[derive(Clone)]
pub struct ControlContext {
    /// The current state (swapped on reload).
    pub state: StateHandle,
    /// Phase, uptime, last reload, running services.
    pub runtime: Arc<RuntimeInfo>,
    /// The state database.
    pub db: SharedStore,
    /// The stores' push inboxes, for `check`'s push lines.
    pub pushes: PushInboxes,
}

/// A bound control socket, not yet serving; the file is removed when it is
/// dropped.
pub struct ControlSocket {
    listener: UnixListener,
    file: SocketFile,
}

/// Bind the control socket at `path` (creating its directory), replacing a
/// stale socket a previous run left behind but never one a running daemon
/// listens on.
pub fn bind(path: &Path) -> Result<ControlSocket, BindError> {
    let (listener, file) = bind_listener(path)?;
    tracing::info!(socket = %path.display(), "control socket listening");
    Ok(ControlSocket { listener, file })
}

/// A socket file this process created; removed when dropped, unless something
/// else has since replaced it.
struct SocketFile {
    path: PathBuf,
    inode: u64,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.ino() == self.inode);
        if ours && let Err(error) = std::fs::remove_file(&self.path) {
            tracing::warn!(socket = %self.path.display(), "cannot remove control socket: {error}");
        }
    }
}

/// Why the control socket could not be bound.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// A live daemon answers on the path.
    #[error("another arauto daemon is already listening on {0}")]
    InUse(PathBuf),
    /// Something that is not a socket sits at the path.
    #[error("{0} exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    /// Any other failure.
    #[error("cannot listen on {path}: {source}")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

fn bind_listener(path: &Path) -> Result<(UnixListener, SocketFile), BindError> {
    let io_error = |source| BindError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(parent)
            .map_err(io_error)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(BindError::NotASocket(path.to_path_buf()));
        }
        Ok(_) => match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => return Err(BindError::InUse(path.to_path_buf())),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                tracing::info!(socket = %path.display(), "removing stale control socket left by a previous run");
                std::fs::remove_file(path).map_err(io_error)?;
            }
            Err(e) => return Err(io_error(e)),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(e)),
    }
    let listener = std::os::unix::net::UnixListener::bind(path).map_err(io_error)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))
        .map_err(io_error)?;
    let inode = std::fs::symlink_metadata(path).map_err(io_error)?.ino();
    let file = SocketFile {
        path: path.to_path_buf(),
        inode,
    };
    listener.set_nonblocking(true).map_err(io_error)?;
    let listener = UnixListener::from_std(listener).map_err(io_error)?;
    Ok((listener, file))
}

/// Serve `socket` until `shutdown` is cancelled, then finish the requests in
/// flight and remove the socket file.
pub async fn serve(socket: ControlSocket, ctx: ControlContext, shutdown: CancellationToken) {
    let ControlSocket { listener, file } = socket;
    let connections = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut failures: u32 = 0;
    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                // Never closed; if it were, nothing more could be served.
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                failures = 0;
                connections.spawn(connection(stream, ctx.clone(), shutdown.clone(), permit));
            }
            Err(error) => {
                // Typically EMFILE: back off instead of spinning, and keep serving.
                failures = failures.saturating_add(1);
                let pause = Duration::from_millis(100)
                    .saturating_mul(failures)
                    .min(Duration::from_secs(5));
                tracing::warn!("control socket accept failed: {error}; retrying in {pause:?}");
                tokio::time::sleep(pause).await;
            }
        }
    }
    // Stop accepting (and let new clients see "not running") before draining.
    drop(listener);
    drop(file);
    connections.close();
    connections.wait().await;
}

async fn connection(
    stream: UnixStream,
    ctx: ControlContext,
    shutdown: CancellationToken,
    _permit: tokio::sync::OwnedSemaphorePermit,
) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
        // Between requests the connection is idle: shutdown closes it, and so
        // does silence past the deadline. Bytes that arrived before the
        // shutdown are a request in flight (checked first).
        let more = tokio::select! {
            biased;
            buffered = reader.fill_buf() => buffered.is_ok_and(|b| !b.is_empty()),
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep_until(deadline) => {
                tracing::debug!(
                    "control socket: closing a connection that sent no request within {}s",
                    REQUEST_TIMEOUT.as_secs()
                );
                return;
            }
        };
        if !more {
            return;
        }
        // A request has begun: it is in-flight work and gets served, even
        // during shutdown (within the drain deadline).
        let mut line = Vec::new();
        let mut limited = (&mut reader).take(MAX_LINE as u64 + 1);
        let read = limited.read_until(b'\n', &mut line);
        let response = match tokio::time::timeout_at(deadline, read).await {
            Err(_) => {
                tracing::debug!(
                    "control socket: closing a connection whose request line did not end within {}s",
                    REQUEST_TIMEOUT.as_secs()
                );
                return;
            }
            Ok(Err(_)) => return,
            Ok(Ok(_)) if line.last() != Some(&b'\n') => {
                if line.len() > MAX_LINE {
                    Response::Error {
                        message: format!("request longer than {MAX_LINE} bytes"),
                    }
                } else {
                    return; // the client went away mid-request
                }
            }
            Ok(Ok(_)) => match serde_json::from_slice::<Request>(&line) {
                Ok(request) => handle(request, &ctx).await,
                Err(error) => Response::Error {
                    message: format!(
                        "bad request (is the arauto CLI the same version as the daemon?): {error}"
                    ),
                },
            },
        };
        // Answers are one line of any length (a long `queue list` is several
        // MiB); the client reads them without a line cap.
        let mut out = match serde_json::to_vec(&response) {
            Ok(out) => out,
            Err(error) => {
                tracing::error!("cannot encode control response: {error}");
                return;
            }
        };
        out.push(b'\n');
        match tokio::time::timeout(ANSWER_WRITE_TIMEOUT, write.write_all(&out)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return,
            Err(_) => {
                tracing::warn!(
                    "control socket: a client took more than {}s to read a {} byte answer; closing it",
                    ANSWER_WRITE_TIMEOUT.as_secs(),
                    out.len()
                );
                return;
            }
        }
        if line.len() > MAX_LINE {
            return;
        }
    }
}

/// Serve one request: `status` here, the rest by [`super::handle`] on the
/// daemon's state and database.
async fn handle(request: Request, ctx: &ControlContext) -> Response {
    match request {
        Request::Status => Response::Status(status(ctx)),
        other => super::handle(other, &ctx.operator_context(), &|_, _, _| {}).await,
    }
}

impl ControlContext {
    /// What the operator commands (and the metrics endpoint's checklist)
    /// work on: the state in effect, the database and the daemon's facts, now.
    pub fn operator_context(&self) -> Context {
        let state = self.state.load();
        let runtime = &self.runtime;
        Context {
            config: state.config.clone(),
            daemon: Some(DaemonFacts {
                pid: runtime.pid,
                version: runtime.version.to_owned(),
                uptime_secs: runtime.uptime().as_secs(),
                dry_run: state.dry_run,
                config_loaded_at: state.built_at,
                last_reload: runtime.last_reload(),
                pushes: self.pushes.stats(),
                views: runtime.view_freshness(),
            }),
            state: Some(state),
            store: Some(self.db.clone()),
            now: Timestamp::now(),
        }
    }
}

fn status(ctx: &ControlContext) -> StatusReport {
    let state = ctx.state.load();
    let config = &state.config;
    let runtime = &ctx.runtime;
    StatusReport {
        pid: runtime.pid,
        version: runtime.version.to_owned(),
        phase: runtime.phase(),
        started_at: runtime.started_at,
        uptime_secs: runtime.uptime().as_secs(),
        config_path: config.source_path().to_path_buf(),
        config_loaded_at: state.built_at,
        dry_run: state.dry_run,
        stores: config
            .stores
            .values()
            .map(|s| StoreSummary {
                id: s.id.clone(),
                description: s.description.clone(),
                platform: s.platform.clone(),
                enabled: s.enabled,
                poll_interval: config::format_duration(s.poll_interval),
                channels: s.channels.clone(),
            })
            .collect(),
        channels: config
            .channels
            .values()
            .map(|c| ChannelSummary {
                id: c.id.clone(),
                plugin: c.plugin.clone(),
                description: c.description.clone(),
            })
            .collect(),
        last_reload: runtime.last_reload(),
        services: runtime.services(),
    }
}
