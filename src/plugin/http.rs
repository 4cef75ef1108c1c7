//! The `http` host import: one outbound request on behalf of a plugin.
//!
//! Every request (and every redirect hop) is checked against the instance's
//! allowlist; names are resolved by the host and non-public addresses refused
//! unless the instance allows them (SSRF protection; literal IPs are checked
//! too); the response body is streamed and refused past the cap; an optional
//! requests-per-minute budget is spent per request; and the time spent waiting
//! is bounded by the call's own deadline, not only the plugin's timeout.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{StatusCode, Url};

use super::address::non_public_reason;
use super::allowlist::AllowList;
use super::sandbox::{CallState, Fault};

/// Redirects followed per request before giving up.
const MAX_REDIRECTS: usize = 5;

/// Headers the host owns: the plugin may not set them.
const HOST_OWNED_HEADERS: [&str; 10] = [
    "host",
    "connection",
    "content-length",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
];

/// Request methods of the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
}

impl From<Method> for reqwest::Method {
    fn from(m: Method) -> Self {
        match m {
            Method::Get => reqwest::Method::GET,
            Method::Head => reqwest::Method::HEAD,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
            Method::Delete => reqwest::Method::DELETE,
        }
    }
}

/// A request as the plugin asked for it (version-neutral).
#[derive(Clone, Debug)]
pub(crate) struct HttpRequest {
    pub(crate) method: Method,
    pub(crate) url: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Option<Vec<u8>>,
    pub(crate) timeout: Option<Duration>,
}

/// The response handed back to the plugin.
#[derive(Clone, Debug)]
pub(crate) struct HttpResponse {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

/// Why a request failed, in the contract's `http-error` terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum HttpFailure {
    Denied(String),
    Timeout,
    Connect(String),
    TooLarge(u64),
    BudgetExhausted,
    InvalidRequest(String),
    Other(String),
}

/// How long an idle keep-alive connection is kept. Shorter than a poll
/// interval on purpose: thousands of stores polled every few minutes must not
/// hold thousands of idle sockets (and file descriptors) between polls.
const POOL_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The process's HTTP clients: one with the private-address guard, one
/// without. Every plugin instance shares them, so the system trust store is
/// loaded once (not once per store: ~150 file opens each) and connections to
/// a platform's API host are pooled across stores. Per-instance rules
/// (allowlist, budget, size cap, user agent) are applied per request.
fn shared_client(allow_private: bool) -> Result<reqwest::Client, String> {
    static GUARDED: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    static OPEN: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    let slot = if allow_private { &OPEN } else { &GUARDED };
    slot.get_or_init(|| {
        reqwest::Client::builder()
            // Redirects are followed by hand so each hop is re-checked.
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would make the destination checks meaningless.
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver { allow_private }))
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))
    })
    .clone()
}

/// An instance's HTTP grants and machinery.
pub(crate) struct HttpContext {
    /// `None` for [`HttpContext::deny_all`].
    client: Option<reqwest::Client>,
    /// `arauto/<version> (plugin <name>/<version>)`, sent on every request.
    user_agent: reqwest::header::HeaderValue,
    allowlist: AllowList,
    allow_private: bool,
    budget: Option<DefaultDirectRateLimiter>,
    max_response_bytes: u64,
}

impl HttpContext {
    /// `requests_per_minute` of `Some(0)` is rejected by the caller.
    pub(crate) fn new(
        allowlist: AllowList,
        allow_private: bool,
        requests_per_minute: Option<NonZeroU32>,
        max_response_bytes: u64,
        user_agent: &str,
    ) -> Result<Self, String> {
        let client = shared_client(allow_private)?;
        let user_agent = reqwest::header::HeaderValue::from_str(user_agent)
            .map_err(|e| format!("invalid user agent {user_agent:?}: {e}"))?;
        Ok(Self {
            client: Some(client),
            user_agent,
            allowlist,
            allow_private,
            budget: requests_per_minute.map(|n| RateLimiter::direct(Quota::per_minute(n))),
            max_response_bytes,
        })
    }

    /// No destination at all (while a plugin is being loaded and described).
    pub(crate) fn deny_all() -> Self {
        Self {
            client: None,
            user_agent: reqwest::header::HeaderValue::from_static("arauto"),
            allowlist: AllowList::default(),
            allow_private: false,
            budget: None,
            max_response_bytes: 0,
        }
    }

    /// Allowlist and literal-address checks for one destination.
    fn check_destination(&self, url: &Url, instance: &str) -> Result<(), HttpFailure> {
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(HttpFailure::InvalidRequest(format!(
                "unsupported scheme {:?}",
                url.scheme()
            )));
        }
        if !self.allowlist.allows(url) {
            return Err(HttpFailure::Denied(format!(
                "{} is not on the allowlist of instance {instance} (allowed: {})",
                origin(url),
                self.allowlist.describe()
            )));
        }
        if !self.allow_private {
            let ip = url
                .host_str()
                .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
                .and_then(|h| h.parse::<IpAddr>().ok());
            if let Some(reason) = ip.and_then(non_public_reason) {
                return Err(HttpFailure::Denied(format!(
                    "{} is {reason}; private addresses are refused unless instance {instance} allows them",
                    origin(url)
                )));
            }
        }
        Ok(())
    }

    fn spend_budget(&self) -> Result<(), HttpFailure> {
        match &self.budget {
            Some(limiter) if limiter.check().is_err() => Err(HttpFailure::BudgetExhausted),
            _ => Ok(()),
        }
    }

    /// Send, following redirects by hand, and read the capped body.
    async fn execute(
        &self,
        request: HttpRequest,
        mut url: Url,
        instance: &str,
    ) -> Result<HttpResponse, HttpFailure> {
        let mut method = request.method;
        let mut body = request.body;
        let mut headers = header_map(&request.headers)?;
        headers
            .entry(reqwest::header::USER_AGENT)
            .or_insert_with(|| self.user_agent.clone());
        let Some(client) = &self.client else {
            return Err(HttpFailure::Denied(format!(
                "instance {instance} may not make HTTP requests"
            )));
        };
        let mut hops = 0;
        loop {
            let mut builder = client
                .request(method.into(), url.clone())
                .headers(headers.clone());
            if let Some(body) = &body {
                builder = builder.body(body.clone());
            }
            let response = builder.send().await.map_err(transport_failure)?;
            let status = response.status();
            let location = response.headers().get(reqwest::header::LOCATION).cloned();
            let Some(location) = location.filter(|_| is_followed_redirect(status)) else {
                return read_capped(response, method, self.max_response_bytes).await;
            };
            hops += 1;
            if hops > MAX_REDIRECTS {
                return Err(HttpFailure::Other(format!(
                    "more than {MAX_REDIRECTS} redirects"
                )));
            }
            let next = location
                .to_str()
                .ok()
                .and_then(|l| url.join(l).ok())
                .ok_or_else(|| {
                    HttpFailure::Other(format!(
                        "{} sent an invalid redirect location",
                        origin(&url)
                    ))
                })?;
            self.check_destination(&next, instance)
                .map_err(|failure| match failure {
                    HttpFailure::Denied(why) => {
                        HttpFailure::Denied(format!("redirect from {}: {why}", origin(&url)))
                    }
                    other => other,
                })?;
            self.spend_budget()?;
            // What browsers and reqwest do: 303 always, and 301/302 after a
            // POST, continue as a GET without the body.
            if status == StatusCode::SEE_OTHER
                || (matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND)
                    && method == Method::Post)
            {
                method = Method::Get;
                body = None;
                headers.remove(reqwest::header::CONTENT_TYPE);
            }
            // Credentials are for the origin the plugin chose, not wherever it redirects.
            if next.origin() != url.origin() {
                headers.remove(reqwest::header::AUTHORIZATION);
                headers.remove(reqwest::header::COOKIE);
            }
            url = next;
        }
    }
}

fn is_followed_redirect(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::MOVED_PERMANENTLY
            | StatusCode::FOUND
            | StatusCode::SEE_OTHER
            | StatusCode::TEMPORARY_REDIRECT
            | StatusCode::PERMANENT_REDIRECT
    )
}

/// `scheme://host[:port]` of a URL: enough to name the destination without
/// repeating paths or query strings that may carry credentials.
pub(crate) fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

fn header_map(headers: &[(String, String)]) -> Result<HeaderMap, HttpFailure> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| HttpFailure::InvalidRequest(format!("invalid header name {name:?}")))?;
        if HOST_OWNED_HEADERS.contains(&header.as_str()) {
            return Err(HttpFailure::InvalidRequest(format!(
                "header {name:?} is set by the host"
            )));
        }
        let value = HeaderValue::from_str(value).map_err(|_| {
            HttpFailure::InvalidRequest(format!("invalid value for header {name:?}"))
        })?;
        map.append(header, value);
    }
    Ok(map)
}

async fn read_capped(
    mut response: reqwest::Response,
    method: Method,
    cap: u64,
) -> Result<HttpResponse, HttpFailure> {
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
    // HEAD answers carry the GET's length but no body.
    if method != Method::Head && response.content_length().is_some_and(|n| n > cap) {
        return Err(HttpFailure::TooLarge(cap));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport_failure)? {
        if (body.len() + chunk.len()) as u64 > cap {
            return Err(HttpFailure::TooLarge(cap));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// Map a reqwest error to the contract's terms; the message leaves the URL
/// out (the plugin knows it, and it may carry credentials).
fn transport_failure(error: reqwest::Error) -> HttpFailure {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(e) = source {
        if let Some(denied) = e.downcast_ref::<DestinationDenied>() {
            return HttpFailure::Denied(denied.to_string());
        }
        source = e.source();
    }
    let is_timeout = error.is_timeout();
    let is_connect = error.is_connect();
    let message = error_chain(&error.without_url());
    if is_timeout {
        HttpFailure::Timeout
    } else if is_connect {
        HttpFailure::Connect(message)
    } else {
        HttpFailure::Other(message)
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = e.source();
    }
    text
}

/// The `http.send` import. `Err` aborts the whole call (its deadline passed
/// or the caller gave up while waiting); `Ok(Err(_))` goes back to the plugin.
pub(crate) fn send(
    state: &mut CallState,
    request: HttpRequest,
) -> wasmtime::Result<Result<HttpResponse, HttpFailure>> {
    let ctx = state.ctx.clone();
    let http = &ctx.http;
    let url = match Url::parse(&request.url) {
        Ok(url) => url,
        Err(e) => {
            return Ok(Err(HttpFailure::InvalidRequest(format!(
                "invalid URL: {e}"
            ))));
        }
    };
    if let Err(failure) = http
        .check_destination(&url, &ctx.instance)
        .and_then(|()| http.spend_budget())
    {
        tracing::debug!(plugin = %ctx.plugin, instance = %ctx.instance, "plugin HTTP request refused: {failure:?}");
        return Ok(Err(failure));
    }
    let destination = origin(&url);
    let remaining = state.remaining();
    // The plugin may ask for less time than the call has left, never more.
    let (limit, bounded_by_call) = match request.timeout {
        Some(asked) if asked < remaining => (asked, false),
        _ => (remaining, true),
    };
    let cancel = state.cancel.clone();
    let instance = ctx.instance.as_str();
    let outcome = state.runtime.block_on(async {
        tokio::select! {
            () = cancel.cancelled() => None,
            result = tokio::time::timeout(limit, http.execute(request, url, instance)) => Some(result),
        }
    });
    match outcome {
        Some(Ok(result)) => Ok(result),
        Some(Err(_elapsed)) if !bounded_by_call => Ok(Err(HttpFailure::Timeout)),
        Some(Err(_elapsed)) => {
            state.fault = Some(Fault::HostWait {
                during: format!("an HTTP response from {destination}"),
            });
            Err(wasmtime::Error::msg(
                "the call's deadline passed during an HTTP request",
            ))
        }
        None => {
            state.fault = Some(Fault::Cancelled);
            Err(wasmtime::Error::msg(
                "the call was cancelled during an HTTP request",
            ))
        }
    }
}

/// A destination name resolved only to addresses the instance may not reach.
#[derive(Debug, thiserror::Error)]
#[error(
    "{host} resolves to {addr}, which is {reason}; private addresses are refused unless the instance allows them"
)]
struct DestinationDenied {
    host: String,
    addr: IpAddr,
    reason: &'static str,
}

/// DNS through the system resolver, dropping non-public addresses. Doing it
/// here (instead of checking before the request) means the addresses checked
/// are exactly the ones connected to: no DNS-rebinding window.
struct GuardedResolver {
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if allow_private {
                return Ok(Box::new(resolved.into_iter()) as Addrs);
            }
            let (public, refused): (Vec<SocketAddr>, Vec<SocketAddr>) = resolved
                .into_iter()
                .partition(|a| non_public_reason(a.ip()).is_none());
            match (public.is_empty(), refused.first()) {
                (true, Some(first)) => Err(Box::new(DestinationDenied {
                    host,
                    addr: first.ip(),
                    reason: non_public_reason(first.ip()).unwrap_or("not public"),
                })
                    as Box<dyn std::error::Error + Send + Sync>),
                _ => Ok(Box::new(public.into_iter()) as Addrs),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_owned_and_malformed_headers_are_invalid_requests() {
        let bad = |k: &str, v: &str| header_map(&[(k.to_owned(), v.to_owned())]).err();
        assert!(
            matches!(bad("Host", "evil"), Some(HttpFailure::InvalidRequest(m)) if m.contains("set by the host"))
        );
        assert!(matches!(
            bad("bad header", "x"),
            Some(HttpFailure::InvalidRequest(_))
        ));
        assert!(matches!(
            bad("x-ok", "line\nbreak"),
            Some(HttpFailure::InvalidRequest(_))
        ));
        assert!(bad("authorization", "Bearer x").is_none());
    }

    #[test]
    fn origin_hides_path_and_query() {
        let url = Url::parse("https://api.telegram.org/bot123:SECRET/sendMessage?x=1")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(origin(&url), "https://api.telegram.org");
    }
}
