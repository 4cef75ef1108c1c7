//! The `http` host import: one outbound request on behalf of a plugin.
//!
//! Every request (and every redirect hop) is checked against the instance's
//! allowlist; names are resolved by the host and non-public addresses refused
//! unless the instance allows them (SSRF protection; literal IPs are checked
//! too); what the plugin sends is capped ([`MAX_REQUEST_BODY_BYTES`],
//! [`MAX_REQUEST_HEADERS`], [`MAX_REQUEST_HEADER_BYTES`]); the response body is
//! streamed and refused past the cap; an optional requests-per-minute budget
//! paces requests (see [`RequestBudget`]); and the time spent waiting is
//! bounded by the call's own deadline, not only the plugin's timeout.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{StatusCode, Url};

use super::address::non_public_reason;
use super::allowlist::AllowList;

/// Redirects followed per request before giving up.
const MAX_REDIRECTS: usize = 5;

/// Largest request body a plugin may send (1 MiB): far above any provider
/// message, low enough that a runaway plugin cannot push its whole memory
/// through the host.
pub(crate) const MAX_REQUEST_BODY_BYTES: usize = 1024 * 1024;
/// Most headers one request may carry.
pub(crate) const MAX_REQUEST_HEADERS: usize = 64;
/// Longest header (name plus value) a request may carry.
pub(crate) const MAX_REQUEST_HEADER_BYTES: usize = 8 * 1024;
/// Longest URL a request may have.
pub(crate) const MAX_REQUEST_URL_BYTES: usize = 8 * 1024;

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
/// interval deliberately: thousands of stores polled every few minutes must not
/// hold thousands of idle sockets (and file descriptors) between polls.
const POOL_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The process's HTTP clients: one with the private-address guard, one
/// without. Every plugin instance shares them, so the system trust store is
/// loaded once (not once per store: ~150 file opens each) and connections to
/// a platform's API host are pooled across stores. Per-instance rules
/// (allowlist, budget, size cap, user agent) are applied per request.
fn shared_client(allow_private: bool) -> Result<reqwest::Client, ClientBuildError> {
    static GUARDED: OnceLock<Result<reqwest::Client, ClientBuildError>> = OnceLock::new();
    static OPEN: OnceLock<Result<reqwest::Client, ClientBuildError>> = OnceLock::new();
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
            .map_err(|e| ClientBuildError(e.to_string()))
    })
    .clone()
}

/// The shared HTTP client could not be built. It keeps reqwest's text
/// because the outcome is computed once per process and handed to every
/// instance, and reqwest's error cannot be cloned.
#[derive(Clone, Debug, thiserror::Error)]
#[error("cannot build the HTTP client: {0}")]
pub(crate) struct ClientBuildError(String);

/// Why an instance's HTTP machinery could not be set up; the host reports it
/// as a misconfigured instance.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HttpSetupError {
    #[error(transparent)]
    Client(#[from] ClientBuildError),
    #[error("invalid user agent {agent:?}: {source}")]
    UserAgent {
        agent: String,
        source: reqwest::header::InvalidHeaderValue,
    },
}

/// An instance's HTTP grants and machinery.
pub(crate) struct HttpContext {
    /// `None` for [`HttpContext::deny_all`].
    client: Option<reqwest::Client>,
    /// `arauto/<version> (plugin <name>/<version>)`, sent on every request.
    user_agent: reqwest::header::HeaderValue,
    allowlist: AllowList,
    allow_private: bool,
    budget: Option<RequestBudget>,
    max_response_bytes: u64,
}

/// An instance's requests-per-minute budget `n`: **no 60 s window ever sees
/// more than `n` requests**, bursts included.
///
/// `Quota::per_minute(n)` would allow a burst of `n` after a quiet spell and
/// then `n` more within the same minute as cells come back (measured: 107 in
/// a rolling 60 s for a budget of 90). Instead the burst is small
/// ([`budget_quota`]) and the rest is paced: a request that finds the budget
/// spent waits for its cell, as long as the wait leaves the call time for the
/// request itself ([`MAX_BUDGET_WAIT_SHARE`]); otherwise it fails at once with
/// `budget-exhausted` and the plugin can return what it has so far.
pub(crate) struct RequestBudget<C: Clock = DefaultClock> {
    limiter: RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<C::Instant>>,
}

/// A request waits for the budget for at most this share (1/n) of the time
/// the call has left, keeping the rest for the request and what follows it.
pub(super) const MAX_BUDGET_WAIT_SHARE: u32 = 2;

/// The GCRA quota for `per_minute` requests: a burst of `max(1, n/10)`, and one
/// cell per `60 s / (n + 1 - burst)` (rounded up, plus 1 ns).
///
/// Why this never lets `n + 1` requests into 60 s: under GCRA the `k`-th
/// conforming request after the first comes at least `(k - burst)` periods
/// later, so `n + 1` requests span at least `(n + 1 - burst)` periods, which is
/// strictly more than 60 s. The sustained rate is `n + 1 - burst` per minute
/// (82 for Loja Integrada's 90): the price of never bursting over `n`.
pub(crate) fn budget_quota(per_minute: NonZeroU32) -> Quota {
    let n = per_minute.get();
    let burst = (n / 10).max(1);
    let cells = u128::from(n + 1 - burst);
    let period_ns = 60_000_000_000u128.div_ceil(cells) + 1;
    let period = Duration::from_nanos(u64::try_from(period_ns).unwrap_or(u64::MAX));
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_minute(per_minute))
        .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN))
}

impl RequestBudget {
    fn per_minute(n: NonZeroU32) -> Self {
        // One clock for every budget: making one reads the CPU's
        // identification (cpuid) each time, which was a tenth of the
        // daemon's start-up with thousands of stores.
        static CLOCK: OnceLock<DefaultClock> = OnceLock::new();
        Self::with_clock(n, CLOCK.get_or_init(DefaultClock::default).clone())
    }
}

impl<C: Clock> RequestBudget<C> {
    fn with_clock(n: NonZeroU32, clock: C) -> Self {
        Self {
            limiter: RateLimiter::direct_with_clock(budget_quota(n), clock),
        }
    }

    /// Take a cell now (`Ok`), or say how long until one is free (`Err`).
    fn try_take(&self) -> Result<(), Duration> {
        self.limiter
            .check()
            .map_err(|not_until| not_until.wait_time_from(self.limiter.clock().now()))
    }

    /// Take a cell, waiting for it when that takes no longer than `max_wait`.
    async fn take(&self, max_wait: Duration) -> Result<(), HttpFailure> {
        let started = tokio::time::Instant::now();
        loop {
            match self.try_take() {
                Ok(()) => return Ok(()),
                Err(wait) if started.elapsed() + wait > max_wait => {
                    return Err(HttpFailure::BudgetExhausted);
                }
                Err(wait) => tokio::time::sleep(wait).await,
            }
        }
    }
}

impl HttpContext {
    /// `requests_per_minute` of `Some(0)` is rejected by the caller.
    pub(crate) fn new(
        allowlist: AllowList,
        allow_private: bool,
        requests_per_minute: Option<NonZeroU32>,
        max_response_bytes: u64,
        user_agent: &str,
    ) -> Result<Self, HttpSetupError> {
        let client = shared_client(allow_private)?;
        let user_agent = reqwest::header::HeaderValue::from_str(user_agent).map_err(|source| {
            HttpSetupError::UserAgent {
                agent: user_agent.to_owned(),
                source,
            }
        })?;
        Ok(Self {
            client: Some(client),
            user_agent,
            allowlist,
            allow_private,
            budget: requests_per_minute.map(RequestBudget::per_minute),
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
    pub(super) fn check_destination(&self, url: &Url, instance: &str) -> Result<(), HttpFailure> {
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

    pub(super) async fn spend_budget(&self, max_wait: Duration) -> Result<(), HttpFailure> {
        match &self.budget {
            Some(budget) => budget.take(max_wait).await,
            None => Ok(()),
        }
    }

    /// Send, following redirects by hand, and read the capped body.
    pub(super) async fn execute(
        &self,
        request: HttpRequest,
        first: &Url,
        instance: &str,
        max_budget_wait: Duration,
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
        // The URL of the current hop: the plugin's own until a redirect.
        let mut redirected: Option<Url> = None;
        loop {
            let url = redirected.as_ref().unwrap_or(first);
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
                    HttpFailure::Other(format!("{} sent an invalid redirect location", origin(url)))
                })?;
            self.check_destination(&next, instance)
                .map_err(|failure| match failure {
                    HttpFailure::Denied(why) => {
                        HttpFailure::Denied(format!("redirect from {}: {why}", origin(url)))
                    }
                    other => other,
                })?;
            self.spend_budget(max_budget_wait).await?;
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
            redirected = Some(next);
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

/// Refuse a request over the caps above (an `invalid-request` the plugin sees,
/// naming the cap), before anything is parsed or sent.
pub(super) fn check_request_size(request: &HttpRequest) -> Result<(), HttpFailure> {
    let too_big = |what: String| Err(HttpFailure::InvalidRequest(what));
    if request.url.len() > MAX_REQUEST_URL_BYTES {
        return too_big(format!(
            "the URL is {} bytes long, over the host's cap of {MAX_REQUEST_URL_BYTES}",
            request.url.len()
        ));
    }
    if let Some(body) = &request.body
        && body.len() > MAX_REQUEST_BODY_BYTES
    {
        return too_big(format!(
            "the request body is {} bytes, over the host's cap of {MAX_REQUEST_BODY_BYTES}",
            body.len()
        ));
    }
    if request.headers.len() > MAX_REQUEST_HEADERS {
        return too_big(format!(
            "{} headers, over the host's cap of {MAX_REQUEST_HEADERS}",
            request.headers.len()
        ));
    }
    if let Some((name, value)) = request
        .headers
        .iter()
        .find(|(name, value)| name.len() + value.len() > MAX_REQUEST_HEADER_BYTES)
    {
        let length = name.len() + value.len();
        let name: String = name.chars().take(64).collect();
        return too_big(format!(
            "header {name:?} is {length} bytes long, over the host's cap of {MAX_REQUEST_HEADER_BYTES}"
        ));
    }
    Ok(())
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
    // Sized once from the declared length (already checked against the
    // cap): a page of orders arrives in many chunks, and growing the buffer
    // by doubling would copy it about twice over.
    let declared = response.content_length().unwrap_or(0).min(cap);
    let mut body = Vec::with_capacity(usize::try_from(declared).unwrap_or(0));
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

    /// Drive a budget with a fake clock: `pattern` alternates busy spells
    /// (every request sent as soon as a cell is free) and quiet ones; return
    /// the instants (ns) of the requests that went out.
    fn sent_instants(per_minute: u32, pattern: &[(bool, Duration)]) -> Vec<u64> {
        let clock = governor::clock::FakeRelativeClock::default();
        let n = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        let budget = RequestBudget::with_clock(n, clock.clone());
        let mut now = Duration::ZERO;
        let mut sent = Vec::new();
        for (busy, length) in pattern {
            let end = now + *length;
            if !busy {
                clock.advance(*length);
                now = end;
                continue;
            }
            while now < end {
                match budget.try_take() {
                    Ok(()) => sent.push(now.as_nanos() as u64),
                    Err(wait) => {
                        let step = wait.max(Duration::from_nanos(1));
                        clock.advance(step);
                        now += step;
                    }
                }
            }
        }
        sent
    }

    /// The largest number of requests in any closed 60 s window.
    fn busiest_minute(sent: &[u64]) -> usize {
        let minute = 60_000_000_000u64;
        (0..sent.len())
            .map(|i| {
                sent[i..]
                    .iter()
                    .take_while(|t| **t - sent[i] <= minute)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn no_rolling_minute_sees_more_requests_than_the_budget() {
        let minute = Duration::from_secs(60);
        // Busy from the start, a quiet spell (the bucket refills), busy again.
        let pattern = [
            (true, 3 * minute),
            (false, 5 * minute),
            (true, 2 * minute),
            (false, minute / 2),
            (true, 3 * minute),
        ];
        for per_minute in [1, 2, 3, 10, 20, 90, 100, 1000] {
            let sent = sent_instants(per_minute, &pattern);
            let busiest = busiest_minute(&sent);
            assert!(
                busiest <= per_minute as usize,
                "budget {per_minute}/min let {busiest} requests into one minute"
            );
            // Pacing, not starving: over 8 busy minutes, most of the budget is used.
            let floor = 8 * (per_minute as usize + 1 - (per_minute as usize / 10).max(1));
            assert!(
                sent.len() >= floor,
                "budget {per_minute}/min sent only {} requests in 8 busy minutes",
                sent.len()
            );
        }
    }

    #[test]
    fn the_burst_after_a_quiet_spell_is_small() {
        let quota = budget_quota(NonZeroU32::new(90).unwrap_or(NonZeroU32::MIN));
        assert_eq!(quota.burst_size().get(), 9);
        let quiet_then_busy = [
            (false, Duration::from_secs(600)),
            (true, Duration::from_secs(1)),
        ];
        // 9 at once, then one per ~0.73 s.
        assert_eq!(sent_instants(90, &quiet_then_busy).len(), 10);
    }

    #[test]
    fn oversized_requests_are_refused_naming_the_cap() {
        let request =
            |url: String, headers: Vec<(String, String)>, body: Option<Vec<u8>>| HttpRequest {
                method: Method::Post,
                url,
                headers,
                body,
                timeout: None,
            };
        let ok_url = || "https://api.example.com/x".to_owned();
        let refused = |r: HttpRequest| match check_request_size(&r) {
            Err(HttpFailure::InvalidRequest(why)) => why,
            other => panic!("expected a refusal, got {other:?}"),
        };
        let why = refused(request(
            ok_url(),
            vec![],
            Some(vec![b'x'; MAX_REQUEST_BODY_BYTES + 1]),
        ));
        assert!(
            why.contains("request body") && why.contains("1048576"),
            "{why}"
        );
        let why = refused(request(
            ok_url(),
            vec![("x-a".into(), "b".into()); MAX_REQUEST_HEADERS + 1],
            None,
        ));
        assert!(why.contains("65 headers"), "{why}");
        let why = refused(request(
            ok_url(),
            vec![("x-big".into(), "v".repeat(MAX_REQUEST_HEADER_BYTES))],
            None,
        ));
        assert!(why.contains("x-big"), "{why}");
        let why = refused(request("https://a/".repeat(2000), vec![], None));
        assert!(why.contains("URL"), "{why}");
        assert!(
            check_request_size(&request(
                ok_url(),
                vec![("x-a".into(), "b".into())],
                Some(vec![b'x'; MAX_REQUEST_BODY_BYTES])
            ))
            .is_ok()
        );
    }

    #[test]
    fn origin_hides_path_and_query() {
        let url = Url::parse("https://api.telegram.org/bot123:SECRET/sendMessage?x=1").unwrap();
        assert_eq!(origin(&url), "https://api.telegram.org");
    }
}
