//! A blocking HTTP client for synchronous tests (plugin unit tests install it
//! as the SDK harness's transport), so that plugins talk real HTTP to a
//! [`FakeProvider`](super::FakeProvider).
//!
//! Redirects are never followed (the 3xx is returned, as the daemon's host
//! does) and HTTP error statuses are responses, not errors.

use std::fmt;
use std::io;
use std::time::Duration;

/// A response as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockingResponse {
    /// HTTP status code.
    pub status: u16,
    /// Headers in arrival order, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// Why no response arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockingError {
    /// The timeout elapsed.
    Timeout,
    /// Connection refused, reset, or dropped before the response was complete.
    Connect(String),
    /// Malformed request or another failure.
    Other(String),
}

impl fmt::Display for BlockingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout => f.write_str("timed out"),
            Self::Connect(why) => write!(f, "connection failed: {why}"),
            Self::Other(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for BlockingError {}

/// Send one request and wait at most `timeout` for the whole response.
pub fn send(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: Option<&[u8]>,
    timeout: Duration,
) -> Result<BlockingResponse, BlockingError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into();
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    let result = match body {
        Some(body) => {
            let request = builder
                .body(body.to_vec())
                .map_err(|e| BlockingError::Other(e.to_string()))?;
            agent.run(request)
        }
        None => {
            let request = builder
                .body(())
                .map_err(|e| BlockingError::Other(e.to_string()))?;
            agent.run(request)
        }
    };
    let mut response = result.map_err(classify)?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = response
        .body_mut()
        .read_to_vec()
        .map_err(|e| match classify(e) {
            BlockingError::Other(why) => BlockingError::Connect(format!(
                "connection dropped while reading the response: {why}"
            )),
            other => other,
        })?;
    Ok(BlockingResponse {
        status,
        headers,
        body,
    })
}

fn classify(error: ureq::Error) -> BlockingError {
    match error {
        ureq::Error::Timeout(_) => BlockingError::Timeout,
        ureq::Error::Io(e) if e.kind() == io::ErrorKind::TimedOut => BlockingError::Timeout,
        ureq::Error::Io(e) => BlockingError::Connect(e.to_string()),
        ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => {
            BlockingError::Connect(error.to_string())
        }
        other => BlockingError::Other(other.to_string()),
    }
}
