//! The CLI side of the control socket (blocking: one request, one answer).

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, Socket, Type};

use super::protocol::{MAX_ANSWER, Request, Response};

/// How long the CLI waits for the daemon to accept the connection (its
/// connection slots may all be taken; it drops silent clients after 5 s).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the CLI waits for a whole answer, unless the command sets its own.
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
    /// The daemon did not accept the connection, or did not answer in time.
    #[error(
        "arauto did not {what} on {socket} within {}s: it may be overloaded or stuck; see `arauto status` and `journalctl -u arauto`",
        waited.as_secs()
    )]
    Timeout {
        /// The socket path.
        socket: PathBuf,
        /// "accept the connection" or "answer".
        what: &'static str,
        /// How long the CLI waited.
        waited: Duration,
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
        Self::connect_within(socket, CONNECT_TIMEOUT)
    }

    fn connect_within(socket: &Path, connect_timeout: Duration) -> Result<Self, ClientError> {
        let socket = socket.to_path_buf();
        let io_error = |source| ClientError::Io {
            socket: socket.clone(),
            source,
        };
        // std's UnixStream::connect blocks for as long as the daemon's
        // listen backlog is full. On Linux a blocking connect to a Unix
        // socket waits at most SO_SNDTIMEO, then fails with EAGAIN.
        let raw = Socket::new(Domain::UNIX, Type::STREAM, None).map_err(io_error)?;
        raw.set_write_timeout(Some(connect_timeout))
            .map_err(io_error)?;
        let address = SockAddr::unix(&socket).map_err(io_error)?;
        raw.connect(&address)
            .map_err(|source| match source.kind() {
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
                    ClientError::NotRunning {
                        socket: socket.clone(),
                    }
                }
                io::ErrorKind::PermissionDenied => ClientError::PermissionDenied {
                    socket: socket.clone(),
                },
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ClientError::Timeout {
                    socket: socket.clone(),
                    what: "accept the connection",
                    waited: connect_timeout,
                },
                _ => ClientError::Io {
                    socket: socket.clone(),
                    source,
                },
            })?;
        let stream = UnixStream::from(std::os::fd::OwnedFd::from(raw));
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

    /// How long to wait for a whole answer from now on (the default is 30 s;
    /// the checklist's live checks may take longer).
    pub fn set_timeout(&mut self, timeout: Duration) -> Result<(), ClientError> {
        self.timeout = timeout;
        Ok(())
    }

    /// Send `request` and wait for the answer.
    pub fn request(&mut self, request: &Request) -> Result<Response, ClientError> {
        let deadline = Instant::now() + self.timeout;
        let mut line = serde_json::to_vec(request).map_err(|e| self.protocol(e.to_string()))?;
        line.push(b'\n');
        self.writer
            .write_all(&line)
            .map_err(|source| match source.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => self.timed_out(),
                _ => ClientError::Io {
                    socket: self.socket.clone(),
                    source,
                },
            })?;
        let answer = self.read_answer(deadline)?;
        serde_json::from_slice(&answer).map_err(|e| self.protocol(e.to_string()))
    }

    /// One answer line, of any length up to [`MAX_ANSWER`], complete by `deadline`.
    fn read_answer(&mut self, deadline: Instant) -> Result<Vec<u8>, ClientError> {
        let mut answer = Vec::new();
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(self.timed_out());
            }
            // The read timeout is the socket's, shared with the reader's clone.
            self.writer
                .set_read_timeout(Some(remaining))
                .map_err(|source| ClientError::Io {
                    socket: self.socket.clone(),
                    source,
                })?;
            let available = match self.reader.fill_buf() {
                Ok(available) => available,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(self.timed_out());
                }
                Err(source) => {
                    return Err(ClientError::Io {
                        socket: self.socket.clone(),
                        source,
                    });
                }
            };
            if available.is_empty() {
                let message = if answer.is_empty() {
                    "the daemon closed the connection without answering".to_owned()
                } else {
                    format!(
                        "the daemon closed the connection in the middle of its answer ({} bytes received)",
                        answer.len()
                    )
                };
                return Err(self.protocol(message));
            }
            let (chunk, complete) = match available.iter().position(|&b| b == b'\n') {
                Some(end) => (&available[..=end], true),
                None => (available, false),
            };
            if answer.len() + chunk.len() > MAX_ANSWER {
                return Err(self.protocol(format!("answer longer than {MAX_ANSWER} bytes")));
            }
            answer.extend_from_slice(chunk);
            let taken = chunk.len();
            self.reader.consume(taken);
            if complete {
                return Ok(answer);
            }
        }
    }

    fn timed_out(&self) -> ClientError {
        ClientError::Timeout {
            socket: self.socket.clone(),
            what: "answer",
            waited: self.timeout,
        }
    }

    fn protocol(&self, message: String) -> ClientError {
        ClientError::Protocol {
            socket: self.socket.clone(),
            message,
        }
    }
}

#[cfg(test)]
mod tests {

    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::{UnixListener, UnixStream};
    use std::time::{Duration, Instant};

    use socket2::{Domain, SockAddr, Socket, Type};

    use super::{Client, ClientError};
    use crate::control::protocol::{MAX_LINE, Request, Response};

    /// A fake daemon on `path` that answers one request with `answer`.
    fn answer_once(path: &std::path::Path, answer: Response) -> std::thread::JoinHandle<String> {
        let listener = UnixListener::bind(path).unwrap();
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            reader.read_line(&mut request).unwrap();
            let mut line = serde_json::to_vec(&answer).unwrap();
            line.push(b'\n');
            (&stream).write_all(&line).unwrap();
            request
        })
    }

    #[test]
    fn an_answer_of_several_mebibytes_arrives_intact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        // 5 MiB with a multi-byte character, so a cut anywhere would show.
        let message = "ç".repeat(5 * MAX_LINE / 2 + 7);
        let daemon = answer_once(
            &path,
            Response::Error {
                message: message.clone(),
            },
        );
        let mut client = Client::connect(&path).unwrap();
        let answer = client.request(&Request::Status).unwrap();
        assert_eq!(answer, Response::Error { message });
        assert_eq!(daemon.join().unwrap(), "{\"request\":\"status\"}\n");
    }

    #[test]
    fn a_daemon_that_never_answers_is_reported_with_the_socket_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let mut client = Client::connect(&path).unwrap();
        let (_held, _) = listener.accept().unwrap();
        client.set_timeout(Duration::from_millis(300)).unwrap();
        let started = Instant::now();
        let error = client.request(&Request::Status).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(10), "{error}");
        assert!(matches!(error, ClientError::Timeout { .. }), "{error:?}");
        let text = error.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("did not answer"), "{text}");
        assert!(text.contains("journalctl -u arauto"), "{text}");
    }

    #[test]
    fn a_daemon_whose_backlog_is_full_is_reported_instead_of_hanging() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        // A listener that never accepts, with the smallest backlog: Linux
        // queues one connection, the next one waits.
        let listener = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
        listener.bind(&SockAddr::unix(&path).unwrap()).unwrap();
        listener.listen(0).unwrap();
        let _queued = UnixStream::connect(&path).unwrap();
        let started = Instant::now();
        let error = match Client::connect_within(&path, Duration::from_millis(300)) {
            Ok(_) => panic!("connected to a full backlog"),
            Err(error) => error,
        };
        assert!(started.elapsed() < Duration::from_secs(10), "{error}");
        let text = error.to_string();
        assert!(text.contains("did not accept the connection"), "{error:?}");
        assert!(text.contains(&path.display().to_string()), "{text}");
    }
}
