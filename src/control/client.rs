//! The CLI side of the control socket (blocking: one request, one answer).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::protocol::{MAX_LINE, Request, Response};

/// How long the CLI waits for the daemon to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// Talking to the daemon failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens on the socket (no file, or a stale one).
    #[error("arauto is not running (nothing listens on {socket})")]
    NotRunning {
        /// The socket path.
        socket: PathBuf,
    },
    /// The socket exists but this user may not use it.
    #[error("permission denied on {socket}: run as root or as a member of the group that owns it")]
    PermissionDenied {
        /// The socket path.
        socket: PathBuf,
    },
    /// Any other I/O failure.
    #[error("control socket {socket}: {source}")]
    Io {
        /// The socket path.
        socket: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The daemon's answer made no sense.
    #[error("unexpected answer from the daemon on {socket}: {message}")]
    Protocol {
        /// The socket path.
        socket: PathBuf,
        /// What was wrong.
        message: String,
    },
}

/// A connection to the daemon.
pub struct Client {
    socket: PathBuf,
    timeout: Duration,
    writer: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Client {
    /// Connect to the daemon listening on `socket`.
    pub fn connect(socket: &Path) -> Result<Self, ClientError> {
        let socket = socket.to_path_buf();
        let stream = UnixStream::connect(&socket).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => ClientError::NotRunning {
                socket: socket.clone(),
            },
            io::ErrorKind::PermissionDenied => ClientError::PermissionDenied {
                socket: socket.clone(),
            },
            _ => ClientError::Io {
                socket: socket.clone(),
                source,
            },
        })?;
        let io_error = |source| ClientError::Io {
            socket: socket.clone(),
            source,
        };
        stream
            .set_read_timeout(Some(ANSWER_TIMEOUT))
            .map_err(io_error)?;
        stream
            .set_write_timeout(Some(ANSWER_TIMEOUT))
            .map_err(io_error)?;
        let reader = BufReader::new(stream.try_clone().map_err(io_error)?);
        Ok(Self {
            socket,
            timeout: ANSWER_TIMEOUT,
            writer: stream,
            reader,
        })
    }

    /// How long to wait for answers from now on (the default is 30 s; the
    /// checklist's live checks may take longer).
    pub fn set_timeout(&mut self, timeout: Duration) -> Result<(), ClientError> {
        self.timeout = timeout;
        self.writer
            .set_read_timeout(Some(timeout))
            .map_err(|source| ClientError::Io {
                socket: self.socket.clone(),
                source,
            })
    }

    /// Send `request` and wait for the answer.
    pub fn request(&mut self, request: &Request) -> Result<Response, ClientError> {
        let protocol = |message: String| ClientError::Protocol {
            socket: self.socket.clone(),
            message,
        };
        let mut line = serde_json::to_vec(request).map_err(|e| protocol(e.to_string()))?;
        line.push(b'\n');
        self.writer
            .write_all(&line)
            .map_err(|source| ClientError::Io {
                socket: self.socket.clone(),
                source,
            })?;
        let mut answer = Vec::new();
        (&mut self.reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut answer)
            .map_err(|source| match source.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ClientError::Protocol {
                    socket: self.socket.clone(),
                    message: format!("no answer within {}s", self.timeout.as_secs()),
                },
                _ => ClientError::Io {
                    socket: self.socket.clone(),
                    source,
                },
            })?;
        if answer.last() != Some(&b'\n') {
            return Err(protocol(
                "the daemon closed the connection without answering".to_owned(),
            ));
        }
        serde_json::from_slice(&answer).map_err(|e| protocol(e.to_string()))
    }
}
