//! Helpers shared by both worlds: error constructors, settings, HTTP, logging,
//! the clock, and a per-thread stand-in for the daemon for native unit tests.
//!
//! They are written against the shared bindings in [`crate::imports`]; each
//! world module re-exports them, so a plugin imports them from its world's
//! `prelude`.

pub use crate::imports::arauto::plugin::types::{
    ConfigKey, NotificationKind, PaymentFamily, PluginError, PluginInfo, RetryableError,
};

/// The notification kind's name in events and configs, e.g. `order-paid`.
pub fn notification_name(kind: NotificationKind) -> &'static str {
    match kind {
        NotificationKind::WaitingPayment => "waiting-payment",
        NotificationKind::OrderPaid => "order-paid",
        NotificationKind::OrderProcessing => "order-processing",
        NotificationKind::OrderShipped => "order-shipped",
        NotificationKind::ReadyForPickup => "ready-for-pickup",
        NotificationKind::OrderDelivered => "order-delivered",
        NotificationKind::OrderCanceled => "order-canceled",
        NotificationKind::OrderRefunded => "order-refunded",
        NotificationKind::TrackingUpdated => "tracking-updated",
        NotificationKind::BoletoReminder => "boleto-reminder",
        NotificationKind::PixReminder => "pix-reminder",
        NotificationKind::AbandonedCart => "abandoned-cart",
    }
}

/// `a == b` in time that depends only on the lengths, so a forged token or
/// signature cannot be guessed byte by byte from response times. Connectors
/// compare pushed credentials with it (`verify-push`).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut difference = u8::from(a.len() != b.len());
    let longest = a.len().max(b.len());
    for index in 0..longest {
        let x = a.get(index).copied().unwrap_or(0);
        let y = b.get(index).copied().unwrap_or(0);
        difference |= x ^ y;
    }
    std::hint::black_box(difference) == 0
}

/// A transient failure: the daemon retries later with back-off.
pub fn retryable(message: impl Into<String>) -> PluginError {
    PluginError::Retryable(RetryableError {
        message: message.into(),
        retry_after_ms: None,
    })
}

/// A transient failure with the provider's hint of when to try again.
/// Waiting for a hint does not spend one of the job's attempts.
pub fn retry_after(message: impl Into<String>, retry_after_ms: u64) -> PluginError {
    PluginError::Retryable(RetryableError {
        message: message.into(),
        retry_after_ms: Some(retry_after_ms),
    })
}

/// A failure that can never succeed for this input: the job is dead-lettered.
pub fn permanent(message: impl Into<String>) -> PluginError {
    PluginError::Permanent(message.into())
}

/// Credentials or settings were rejected: the store or channel instance is
/// paused until the sysadmin fixes the config.
pub fn misconfigured(message: impl Into<String>) -> PluginError {
    PluginError::Misconfigured(message.into())
}

/// Describe one key of the plugin's `settings` table for [`PluginInfo::config_keys`].
pub fn config_key(name: &str, description: &str, required: bool, secret: bool) -> ConfigKey {
    ConfigKey {
        name: name.to_owned(),
        description: description.to_owned(),
        required,
        secret,
        default_value: None,
    }
}

impl ConfigKey {
    /// The value the host fills in when the sysadmin leaves the key unset.
    pub fn with_default(mut self, value: &str) -> Self {
        self.default_value = Some(value.to_owned());
        self
    }
}

// The four host imports, routed to the test harness outside wasm32.
#[cfg(target_arch = "wasm32")]
mod host {
    pub use crate::imports::arauto::plugin::clock::now_unix_ms;
    pub use crate::imports::arauto::plugin::config::{get, get_all};
    pub use crate::imports::arauto::plugin::http::send;
    pub use crate::imports::arauto::plugin::log::log;
}
#[cfg(not(target_arch = "wasm32"))]
mod host {
    pub use super::testing::host::{get, get_all, log, now_unix_ms, send};
}

/// A per-thread stand-in for the daemon, for unit tests on the host target.
///
/// ```ignore
/// testing::install(testing::Harness::new()
///     .setting("base_url", &fake.url())
///     .transport(|req| my_blocking_client(req)));
/// let page = MyConnector::poll(req)?;
/// assert!(testing::logs().iter().any(|(_, msg)| msg.contains("page")));
/// ```
#[cfg(not(target_arch = "wasm32"))]
pub mod testing {
    use std::cell::RefCell;

    use crate::imports::arauto::plugin::http::{HttpError, Request, Response};
    use crate::imports::arauto::plugin::log::Level;

    type Transport = Box<dyn FnMut(&Request) -> Result<Response, HttpError>>;

    /// One log line a plugin emitted: (level, message, fields).
    pub type LogLine = (Level, String, Vec<(String, String)>);

    /// What the fake host answers.
    pub struct Harness {
        settings: Vec<(String, String)>,
        now_unix_ms: u64,
        transport: Transport,
        logs: Vec<LogLine>,
        requests: Vec<Request>,
    }

    impl Default for Harness {
        fn default() -> Self {
            Self::new()
        }
    }

    impl Harness {
        /// No settings, clock at 2024-05-10T12:00:00Z, every request fails with `connect`.
        pub fn new() -> Self {
            Self {
                settings: Vec::new(),
                now_unix_ms: 1_715_342_400_000,
                transport: Box::new(|req| {
                    Err(HttpError::Connect(format!(
                        "no test transport installed for {}",
                        req.url
                    )))
                }),
                logs: Vec::new(),
                requests: Vec::new(),
            }
        }
        /// Add a setting.
        pub fn setting(mut self, key: &str, value: &str) -> Self {
            self.settings.push((key.to_owned(), value.to_owned()));
            self
        }
        /// Set the clock.
        pub fn now_unix_ms(mut self, ms: u64) -> Self {
            self.now_unix_ms = ms;
            self
        }
        /// Answer HTTP requests with `f`.
        pub fn transport(
            mut self,
            f: impl FnMut(&Request) -> Result<Response, HttpError> + 'static,
        ) -> Self {
            self.transport = Box::new(f);
            self
        }
    }

    thread_local! {
        static HARNESS: RefCell<Option<Harness>> = const { RefCell::new(None) };
    }

    /// Install `harness` for the current thread (replacing any previous one).
    pub fn install(harness: Harness) {
        HARNESS.with(|h| *h.borrow_mut() = Some(harness));
    }

    /// Move the current thread's clock.
    pub fn set_now_unix_ms(ms: u64) {
        with(|h| h.now_unix_ms = ms);
    }

    /// Log lines the plugin emitted so far: (level, message, fields).
    pub fn logs() -> Vec<LogLine> {
        with(|h| h.logs.clone())
    }

    /// Requests the plugin sent so far.
    pub fn requests() -> Vec<Request> {
        with(|h| h.requests.clone())
    }

    /// A transport that really sends the plugin's requests, with a blocking
    /// client, for tests against fake providers on 127.0.0.1. Like the daemon's
    /// sandbox it never follows redirects and honours the request's own
    /// timeout (`default_timeout` when the plugin sets none). Feature
    /// `native-http`.
    #[cfg(feature = "native-http")]
    pub fn http_transport(
        default_timeout: std::time::Duration,
    ) -> impl FnMut(&Request) -> Result<Response, HttpError> + 'static {
        use crate::imports::arauto::plugin::http::Method;

        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        move |req: &Request| {
            let method = match req.method {
                Method::Get => "GET",
                Method::Head => "HEAD",
                Method::Post => "POST",
                Method::Put => "PUT",
                Method::Patch => "PATCH",
                Method::Delete => "DELETE",
            };
            let mut builder = ureq::http::Request::builder().method(method).uri(&req.url);
            for (name, value) in &req.headers {
                builder = builder.header(name, value);
            }
            let request = builder
                .body(req.body.clone().unwrap_or_default())
                .map_err(|e| HttpError::InvalidRequest(e.to_string()))?;
            let timeout = req
                .timeout_ms
                .map(|ms| std::time::Duration::from_millis(u64::from(ms)))
                .unwrap_or(default_timeout);
            let request = agent
                .configure_request(request)
                .timeout_global(Some(timeout))
                .build();
            match agent.run(request) {
                Ok(mut response) => {
                    let status = response.status().as_u16();
                    let headers = response
                        .headers()
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                        .collect();
                    let body = response
                        .body_mut()
                        .read_to_vec()
                        .map_err(|e| HttpError::Other(e.to_string()))?;
                    Ok(Response {
                        status,
                        headers,
                        body,
                    })
                }
                Err(ureq::Error::Timeout(_)) => Err(HttpError::Timeout),
                Err(
                    e @ (ureq::Error::Io(_)
                    | ureq::Error::ConnectionFailed
                    | ureq::Error::HostNotFound),
                ) => Err(HttpError::Connect(e.to_string())),
                Err(e) => Err(HttpError::Other(e.to_string())),
            }
        }
    }

    fn with<R>(f: impl FnOnce(&mut Harness) -> R) -> R {
        HARNESS.with(|h| {
            let mut guard = h.borrow_mut();
            let harness = guard.get_or_insert_with(Harness::new);
            f(harness)
        })
    }

    #[doc(hidden)]
    pub mod host {
        use super::*;

        pub fn get(key: &str) -> Option<String> {
            with(|h| {
                h.settings
                    .iter()
                    .rev()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.clone())
            })
        }
        pub fn get_all() -> Vec<(String, String)> {
            with(|h| h.settings.clone())
        }
        pub fn now_unix_ms() -> u64 {
            with(|h| h.now_unix_ms)
        }
        pub fn log(level: Level, message: &str, fields: &[(String, String)]) {
            with(|h| h.logs.push((level, message.to_owned(), fields.to_vec())));
        }
        pub fn send(req: &Request) -> Result<Response, HttpError> {
            // Take the transport out so it may itself use the harness (logs).
            let mut transport = with(|h| {
                h.requests.push(req.clone());
                std::mem::replace(
                    &mut h.transport,
                    Box::new(|_| Err(HttpError::Other("re-entrant".into()))),
                )
            });
            let result = transport(req);
            with(|h| h.transport = transport);
            result
        }
    }
}

/// Forward panic messages to the daemon's log before the trap.
#[doc(hidden)]
pub fn install_panic_hook() {
    // Natively, tests keep Rust's own panic output.
    #[cfg(target_arch = "wasm32")]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            std::panic::set_hook(Box::new(|info| {
                host::log(
                    crate::imports::arauto::plugin::log::Level::Error,
                    &format!("plugin panicked: {info}"),
                    &[],
                );
            }));
        });
    }
}

/// This instance's settings (the `[stores.<id>.settings]` or
/// `[channels.<id>.settings]` table of the sysadmin's config).
pub mod settings {
    use super::{PluginError, misconfigured};

    /// The value of `key`, if set.
    pub fn get(key: &str) -> Option<String> {
        super::host::get(key)
    }

    /// The value of `key`, or a `misconfigured` error naming the missing key.
    pub fn require(key: &str) -> Result<String, PluginError> {
        match get(key) {
            Some(v) if !v.trim().is_empty() => Ok(v),
            Some(_) => Err(misconfigured(format!("setting `{key}` is empty"))),
            None => Err(misconfigured(format!(
                "setting `{key}` is required but not set"
            ))),
        }
    }

    /// The value of `key`, or `default` when unset or empty.
    pub fn get_or(key: &str, default: &str) -> String {
        get(key)
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| default.to_owned())
    }

    /// The trimmed value of `key`; `None` when unset or blank (an optional
    /// setting left empty in the config means "not set").
    pub fn optional(key: &str) -> Option<String> {
        get(key)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// An `http://` or `https://` base URL from `key` (or `default` when unset
    /// or blank), trimmed and without trailing slashes, ready for
    /// `format!("{base}/path")`. Anything else is `misconfigured`, naming the
    /// key and the value.
    pub fn base_url(key: &str, default: &str) -> Result<String, PluginError> {
        let value = get_or(key, default);
        let url = value.trim().trim_end_matches('/');
        let has_host = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
        if has_host {
            Ok(url.to_owned())
        } else {
            Err(misconfigured(format!(
                "setting `{key}` must be an http(s) URL, got {value:?}"
            )))
        }
    }

    /// A boolean setting ("true"/"false", "yes"/"no", "1"/"0"), or `default`.
    pub fn flag(key: &str, default: bool) -> Result<bool, PluginError> {
        match get(key).as_deref().map(str::trim) {
            None | Some("") => Ok(default),
            Some("true" | "yes" | "1" | "on") => Ok(true),
            Some("false" | "no" | "0" | "off") => Ok(false),
            Some(other) => Err(misconfigured(format!(
                "setting `{key}` must be true or false, got {other:?}"
            ))),
        }
    }

    /// Every setting of this instance.
    pub fn all() -> Vec<(String, String)> {
        super::host::get_all()
    }
}

/// Wall-clock time from the host.
pub mod clock {
    /// Milliseconds since the Unix epoch (UTC).
    pub fn now_unix_ms() -> u64 {
        super::host::now_unix_ms()
    }
}

/// Structured log lines into the daemon's log, tagged with plugin and instance.
pub mod log {
    pub use crate::imports::arauto::plugin::log::Level;

    /// Log `message` at `level` with extra key/value fields.
    pub fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
        let fields: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        super::host::log(level, message, &fields);
    }
    /// Log at debug level.
    pub fn debug(message: &str) {
        log(Level::Debug, message, &[]);
    }
    /// Log at info level.
    pub fn info(message: &str) {
        log(Level::Info, message, &[]);
    }
    /// Log at warn level.
    pub fn warn(message: &str) {
        log(Level::Warn, message, &[]);
    }
    /// Log at error level.
    pub fn error(message: &str) {
        log(Level::Error, message, &[]);
    }
}

/// Outbound HTTP through the host (allowlisted, size-capped, budgeted).
pub mod http {
    use super::{PluginError, misconfigured, permanent, retry_after, retryable};
    pub use crate::imports::arauto::plugin::http::{HttpError, Method, Request, Response};

    /// Start a GET request.
    pub fn get(url: &str) -> RequestBuilder {
        RequestBuilder::new(Method::Get, url)
    }
    /// Start a POST request.
    pub fn post(url: &str) -> RequestBuilder {
        RequestBuilder::new(Method::Post, url)
    }
    /// Start a PUT request.
    pub fn put(url: &str) -> RequestBuilder {
        RequestBuilder::new(Method::Put, url)
    }
    /// Start a DELETE request.
    pub fn delete(url: &str) -> RequestBuilder {
        RequestBuilder::new(Method::Delete, url)
    }

    /// A request being built; [`RequestBuilder::send`] hands it to the host.
    #[derive(Clone, Debug)]
    pub struct RequestBuilder {
        request: Request,
    }

    impl RequestBuilder {
        /// A request with the given method and absolute URL.
        pub fn new(method: Method, url: &str) -> Self {
            Self {
                request: Request {
                    method,
                    url: url.to_owned(),
                    headers: Vec::new(),
                    body: None,
                    timeout_ms: None,
                },
            }
        }
        /// Add a header.
        pub fn header(mut self, name: &str, value: &str) -> Self {
            self.request
                .headers
                .push((name.to_owned(), value.to_owned()));
            self
        }
        /// `Authorization: Bearer <token>`.
        pub fn bearer(self, token: &str) -> Self {
            self.header("authorization", &format!("Bearer {token}"))
        }
        /// `Authorization: Basic base64(user:password)`.
        pub fn basic_auth(self, user: &str, password: &str) -> Self {
            let encoded = base64_encode(format!("{user}:{password}").as_bytes());
            self.header("authorization", &format!("Basic {encoded}"))
        }
        /// A JSON body (sets `content-type: application/json`).
        pub fn json<T: serde::Serialize + ?Sized>(self, value: &T) -> Result<Self, PluginError> {
            let body = serde_json::to_vec(value)
                .map_err(|e| permanent(format!("cannot encode request body as JSON: {e}")))?;
            Ok(self.body(body, "application/json"))
        }
        /// An `application/x-www-form-urlencoded` body.
        pub fn form(self, pairs: &[(&str, &str)]) -> Self {
            let body = form_urlencode(pairs).into_bytes();
            self.body(body, "application/x-www-form-urlencoded")
        }
        /// A raw body with its content type.
        pub fn body(mut self, body: Vec<u8>, content_type: &str) -> Self {
            self.request.body = Some(body);
            self.header("content-type", content_type)
        }
        /// Ask for a shorter timeout than the host's per-call deadline.
        pub fn timeout_ms(mut self, ms: u32) -> Self {
            self.request.timeout_ms = Some(ms);
            self
        }
        /// The request as it will be sent.
        pub fn as_request(&self) -> &Request {
            &self.request
        }
        /// Send the request. Transport failures become plugin errors of the
        /// right class; HTTP error statuses are returned as responses (see
        /// [`HttpResponse::ok_or_error`]).
        pub fn send(self) -> Result<HttpResponse, PluginError> {
            let url = self.request.url.clone();
            match super::host::send(&self.request) {
                Ok(r) => Ok(HttpResponse {
                    url,
                    status: r.status,
                    headers: r.headers,
                    body: r.body,
                }),
                Err(e) => Err(transport_error(&url, e)),
            }
        }
    }

    impl RequestBuilder {
        /// Send the request and hand back the host's transport error as it is
        /// ([`send`](Self::send) maps it to a plugin error class), for plugins
        /// that treat some failures differently, e.g. a response over the size
        /// cap as a problem of one record rather than of the whole provider.
        pub fn send_raw(self) -> Result<HttpResponse, HttpError> {
            let url = self.request.url.clone();
            super::host::send(&self.request).map(|r| HttpResponse {
                url,
                status: r.status,
                headers: r.headers,
                body: r.body,
            })
        }
    }

    /// Map a host transport error to a plugin error class.
    pub fn transport_error(url: &str, error: HttpError) -> PluginError {
        let target = redact_url(url);
        match error {
            HttpError::Denied(why) => misconfigured(format!(
                "request to {target} denied by the sandbox: {why} (allow the host in the config)"
            )),
            HttpError::Timeout => retryable(format!("request to {target} timed out")),
            HttpError::Connect(why) => retryable(format!("cannot connect to {target}: {why}")),
            HttpError::TooLarge(cap) => retryable(format!(
                "response from {target} exceeded the {cap}-byte cap"
            )),
            HttpError::BudgetExhausted => retry_after(
                format!("request budget for this instance is spent (calling {target})"),
                10_000,
            ),
            HttpError::InvalidRequest(why) => {
                misconfigured(format!("invalid request to {target}: {why}"))
            }
            HttpError::Other(why) => retryable(format!("request to {target} failed: {why}")),
        }
    }

    /// A response from the host.
    #[derive(Clone, Debug)]
    pub struct HttpResponse {
        /// The URL that was requested (for error messages).
        pub url: String,
        pub status: u16,
        pub headers: Vec<(String, String)>,
        pub body: Vec<u8>,
    }

    impl HttpResponse {
        /// True for 2xx.
        pub fn is_success(&self) -> bool {
            (200..300).contains(&self.status)
        }
        /// First header named `name` (case-insensitive).
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
        /// A header holding a whole number (`x-total-count: 156`), or `None`
        /// when absent or not a number.
        pub fn header_u64(&self, name: &str) -> Option<u64> {
            self.header(name)?.trim().parse().ok()
        }
        /// The body as text (invalid UTF-8 replaced).
        pub fn text(&self) -> String {
            String::from_utf8_lossy(&self.body).into_owned()
        }
        /// At most `max` characters of the body, for error messages.
        pub fn excerpt(&self, max: usize) -> String {
            excerpt(&self.text(), max)
        }
        /// Parse the body as JSON. A malformed body is retryable (proxies and
        /// overloaded servers return HTML error pages) and the message carries
        /// an excerpt of what arrived.
        pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, PluginError> {
            serde_json::from_slice(&self.body).map_err(|e| {
                retryable(format!(
                    "malformed JSON from {} (HTTP {}): {e}; body starts with: {}",
                    redact_url(&self.url),
                    self.status,
                    self.excerpt(200)
                ))
            })
        }
        /// The body of a 2xx answer to a request that sends something, for
        /// the receipt. The provider accepted the request, so a JSON body of
        /// an unexpected shape (or no body) still counts as accepted and gives
        /// `T::default()`: retrying could deliver the message twice. A body
        /// that is not JSON at all is another matter: the JSON APIs senders
        /// talk to never answer that way, so the request ended at something
        /// else (a proxy's or captive portal's page, a wrong `base_url`) and
        /// nothing was sent. That is misconfigured: the channel pauses with an
        /// excerpt of what answered, and its messages wait instead of being
        /// counted as sent.
        pub fn accepted<T: serde::de::DeserializeOwned + Default>(&self) -> Result<T, PluginError> {
            if self.body.iter().all(u8::is_ascii_whitespace) {
                return Ok(T::default());
            }
            match serde_json::from_slice::<serde_json::Value>(&self.body) {
                Ok(value) => Ok(serde_json::from_value(value).unwrap_or_default()),
                Err(_) => Err(misconfigured(format!(
                    "{} answered HTTP {} with a body that is not JSON, so the request did not reach the provider's API and nothing was sent (is the base URL right? a proxy or login page in between?); body starts with: {}",
                    redact_url(&self.url),
                    self.status,
                    self.excerpt(200)
                ))),
            }
        }
        /// The `Retry-After` header in milliseconds from now, in either of its
        /// forms: delta-seconds (`120`) or an HTTP-date (`Wed, 21 Oct 2015
        /// 07:28:00 GMT`, measured against the host clock; a date in the past
        /// means "now", 0).
        pub fn retry_after_ms(&self) -> Option<u64> {
            retry_after_header_ms(self.header("retry-after")?, super::clock::now_unix_ms())
        }
        /// Generic status handling: 2xx passes; 429 and 408/5xx are retryable
        /// (429 and 503 honour Retry-After); 401/403 are misconfigured; other
        /// 4xx are permanent. Plugins with provider-specific error bodies
        /// should inspect the response first and use this as the fallback.
        pub fn ok_or_error(self) -> Result<Self, PluginError> {
            if self.is_success() {
                return Ok(self);
            }
            let what = format!(
                "HTTP {} from {}: {}",
                self.status,
                redact_url(&self.url),
                self.excerpt(200)
            );
            Err(match self.status {
                429 | 503 => match self.retry_after_ms() {
                    Some(ms) => retry_after(what, ms),
                    None => retryable(what),
                },
                401 | 403 => misconfigured(what),
                408 | 500..=599 => retryable(what),
                _ => permanent(what),
            })
        }
    }

    /// A `Retry-After` header value in milliseconds from `now_unix_ms`:
    /// delta-seconds, or an HTTP-date in any of the three forms RFC 9110
    /// allows (IMF-fixdate, RFC 850, asctime). `None` when unreadable.
    pub fn retry_after_header_ms(value: &str, now_unix_ms: u64) -> Option<u64> {
        let value = value.trim();
        if let Ok(seconds) = value.parse::<u64>() {
            return Some(seconds.saturating_mul(1000));
        }
        let at_ms = http_date_unix_secs(value)?.saturating_mul(1000);
        Some(at_ms.saturating_sub(now_unix_ms))
    }

    /// Seconds since the Unix epoch of an HTTP-date: `Sun, 06 Nov 1994
    /// 08:49:37 GMT`, `Sunday, 06-Nov-94 08:49:37 GMT` or `Sun Nov  6
    /// 08:49:37 1994`. Dates before 1970 and impossible dates are `None`.
    pub fn http_date_unix_secs(text: &str) -> Option<u64> {
        const MONTHS: [&str; 12] = [
            "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ];
        if text.len() > 64 {
            return None;
        }
        let mut month = None;
        let mut time = None;
        let mut numbers: Vec<&str> = Vec::new();
        for token in text.split([' ', ',', '-']).filter(|t| !t.is_empty()) {
            if token.contains(':') {
                time = Some(token);
            } else if token.bytes().all(|b| b.is_ascii_digit()) {
                numbers.push(token);
            } else if let Some(m) = MONTHS.iter().position(|m| token.eq_ignore_ascii_case(m)) {
                month = Some(m as u64 + 1);
            }
        }
        let (month, time) = (month?, time?);
        let [day, year] = numbers.as_slice() else {
            return None;
        };
        let day: u64 = day.parse().ok()?;
        let year: u64 = match year.len() {
            // RFC 850's two-digit years: RFC 9110 reads them within 50 years of now.
            2 => {
                let yy: u64 = year.parse().ok()?;
                if yy < 70 { 2000 + yy } else { 1900 + yy }
            }
            4 => year.parse().ok()?,
            _ => return None,
        };
        let mut hms = time.split(':').map(|p| p.parse::<u64>().ok());
        let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
        if hms.next().is_some() || h > 23 || m > 59 || s > 60 || !(1970..=9999).contains(&year) {
            return None;
        }
        let leap =
            year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
        let month_days = [
            31,
            if leap { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        if day == 0 || day > month_days[(month - 1) as usize] {
            return None;
        }
        // Days from 1970-01-01 to the civil date (Howard Hinnant's algorithm).
        let (y, mo) = if month <= 2 {
            (year - 1, month + 9)
        } else {
            (year, month - 3)
        };
        let era = y / 400;
        let yoe = y - era * 400;
        let doy = (153 * mo + 2) / 5 + day - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = (era * 146_097 + doe).checked_sub(719_468)?;
        Some(days * 86_400 + h * 3600 + m * 60 + s)
    }

    /// The target of the `rel` link in an RFC 8288 `Link` header value
    /// (`<https://…?page=3>; rel="next", <…>; rel="last"`), as written.
    /// Relation names compare case-insensitively; a link with several
    /// relations (`rel="next last"`) matches each.
    pub fn link_target(header_value: &str, rel: &str) -> Option<String> {
        let mut rest = header_value;
        while let Some(open) = rest.find('<') {
            let close = rest[open..].find('>')? + open;
            let target = &rest[open + 1..close];
            let params_end = rest[close..].find('<').map_or(rest.len(), |n| n + close);
            let params = &rest[close + 1..params_end];
            let matches = params.split(';').any(|param| {
                let Some((name, value)) = param.split_once('=') else {
                    return false;
                };
                name.trim().eq_ignore_ascii_case("rel")
                    && value
                        .trim()
                        .trim_end_matches(',')
                        .trim()
                        .trim_matches('"')
                        .split_ascii_whitespace()
                        .any(|r| r.eq_ignore_ascii_case(rel))
            });
            if matches {
                return Some(target.to_owned());
            }
            rest = &rest[params_end..];
        }
        None
    }

    /// The first value of query parameter `name` in `url`, percent-decoded
    /// (`+` as a space). `None` when absent or not valid UTF-8 once decoded.
    pub fn query_param(url: &str, name: &str) -> Option<String> {
        let query = url.split_once('?')?.1;
        let query = query.split('#').next().unwrap_or(query);
        query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_component(key)? == name).then(|| decode_component(value))?
        })
    }

    /// Percent-decode one URL component (`+` as a space).
    pub fn decode_component(text: &str) -> Option<String> {
        let bytes = text.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'%' => {
                    let hex = text.get(i + 1..i + 3)?;
                    out.push(u8::from_str_radix(hex, 16).ok()?);
                    i += 3;
                }
                b'+' => {
                    out.push(b' ');
                    i += 1;
                }
                b => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        String::from_utf8(out).ok()
    }

    /// At most `max` characters of `text`, with an ellipsis when cut.
    pub fn excerpt(text: &str, max: usize) -> String {
        let mut out: String = text.chars().take(max).collect();
        if text.chars().count() > max {
            out.push('…');
        }
        out
    }

    /// Strip the query string and userinfo from a URL for messages, since some
    /// providers (Telegram, Z-API) carry credentials in the path; those plugins
    /// should pass a display URL of their own.
    pub fn redact_url(url: &str) -> String {
        let no_query = url.split(['?', '#']).next().unwrap_or(url);
        match no_query.split_once("://") {
            Some((scheme, rest)) => {
                let rest = rest.rsplit_once('@').map(|(_, host)| host).unwrap_or(rest);
                format!("{scheme}://{rest}")
            }
            None => no_query.to_owned(),
        }
    }

    /// Percent-encode one URL component (RFC 3986 unreserved characters kept).
    pub fn encode_component(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    out.push(b as char)
                }
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
        out
    }

    /// `k1=v1&k2=v2` with each side percent-encoded.
    pub fn form_urlencode(pairs: &[(&str, &str)]) -> String {
        pairs
            .iter()
            .map(|(k, v)| format!("{}={}", encode_component(k), encode_component(v)))
            .collect::<Vec<_>>()
            .join("&")
    }

    /// Standard base64 with padding. Hand-written (a dozen lines) to keep every
    /// plugin free of an extra dependency for one Basic-auth header.
    pub fn base64_encode(input: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
        for chunk in input.chunks(3) {
            let n = match chunk.len() {
                3 => u32::from(chunk[0]) << 16 | u32::from(chunk[1]) << 8 | u32::from(chunk[2]),
                2 => u32::from(chunk[0]) << 16 | u32::from(chunk[1]) << 8,
                _ => u32::from(chunk[0]) << 16,
            };
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    #[cfg(test)]
    mod accepted_tests {
        use super::*;

        #[derive(serde::Deserialize, Default, Debug, PartialEq)]
        struct Sent {
            id: Option<String>,
        }

        fn answer(status: u16, body: &str) -> HttpResponse {
            HttpResponse {
                url: "https://api.example/send?token=s3cr3t".into(),
                status,
                headers: Vec::new(),
                body: body.as_bytes().to_vec(),
            }
        }

        fn with_header(status: u16, retry_after: &str) -> HttpResponse {
            HttpResponse {
                headers: vec![("Retry-After".into(), retry_after.into())],
                ..answer(status, "{}")
            }
        }

        #[test]
        fn retry_after_reads_seconds_and_all_three_http_date_forms() {
            // 1994-11-06T08:49:37Z
            let at = 784_111_777;
            assert_eq!(
                http_date_unix_secs("Sun, 06 Nov 1994 08:49:37 GMT"),
                Some(at)
            );
            assert_eq!(
                http_date_unix_secs("Sunday, 06-Nov-94 08:49:37 GMT"),
                Some(at)
            );
            assert_eq!(http_date_unix_secs("Sun Nov  6 08:49:37 1994"), Some(at));
            assert_eq!(
                http_date_unix_secs("Thu, 01 Jan 1970 00:00:00 GMT"),
                Some(0)
            );
            assert_eq!(
                http_date_unix_secs("Tue, 29 Feb 2028 12:00:00 GMT"),
                Some(1_835_438_400)
            );
            assert_eq!(http_date_unix_secs("Wed, 30 Feb 2028 12:00:00 GMT"), None);
            assert_eq!(http_date_unix_secs("soon"), None);
            assert_eq!(http_date_unix_secs("Sun, 06 Nov 1994 25:49:37 GMT"), None);

            let now_ms = at * 1000;
            assert_eq!(retry_after_header_ms(" 4 ", now_ms), Some(4_000));
            assert_eq!(
                retry_after_header_ms("Sun, 06 Nov 1994 08:50:07 GMT", now_ms),
                Some(30_000)
            );
            assert_eq!(
                retry_after_header_ms("Sun, 06 Nov 1994 08:00:00 GMT", now_ms),
                Some(0),
                "past"
            );
            assert_eq!(retry_after_header_ms("in a while", now_ms), None);
            assert_eq!(
                retry_after_header_ms("18446744073709551615", now_ms),
                Some(u64::MAX)
            );
        }

        #[test]
        fn a_503_honours_retry_after_like_a_429() {
            super::super::testing::install(
                super::super::testing::Harness::new().now_unix_ms(784_111_777_000),
            );
            for status in [429, 503] {
                let error = with_header(status, "Sun, 06 Nov 1994 08:49:57 GMT")
                    .ok_or_error()
                    .expect_err("an error status");
                let PluginError::Retryable(e) = error else {
                    panic!("{status}: {error:?}")
                };
                assert_eq!(e.retry_after_ms, Some(20_000), "{status}");
                let PluginError::Retryable(e) =
                    with_header(status, "7").ok_or_error().expect_err("error")
                else {
                    panic!("retryable")
                };
                assert_eq!(e.retry_after_ms, Some(7_000), "{status}");
            }
            let PluginError::Retryable(e) = answer(503, "").ok_or_error().expect_err("503") else {
                panic!("retryable")
            };
            assert_eq!(e.retry_after_ms, None, "no header, no hint");
            let PluginError::Retryable(e) = with_header(500, "7").ok_or_error().expect_err("500")
            else {
                panic!("retryable")
            };
            assert_eq!(e.retry_after_ms, None, "only 429 and 503 carry the hint");
        }

        #[test]
        fn the_expected_json_is_read() {
            let sent: Sent = answer(201, r#"{"id":"m-1"}"#).accepted().expect("accepted");
            assert_eq!(sent.id.as_deref(), Some("m-1"));
        }

        #[test]
        fn odd_json_or_no_body_still_counts_as_accepted() {
            for body in [
                "",
                "  \n",
                "[]",
                r#"{"id":42}"#,
                r#"{"other":"shape"}"#,
                "null",
            ] {
                let sent: Sent = answer(200, body)
                    .accepted()
                    .unwrap_or_else(|e| panic!("{body:?}: {e:?}"));
                assert_eq!(sent, Sent::default(), "{body:?}");
            }
        }

        #[test]
        fn a_body_that_is_not_json_is_misconfigured_with_an_excerpt_and_no_secret() {
            let error = answer(200, "<html><title>Portal login</title></html>")
                .accepted::<Sent>()
                .expect_err("an HTML page");
            let PluginError::Misconfigured(why) = error else {
                panic!("expected misconfigured, got {error:?}");
            };
            assert!(why.contains("HTTP 200"), "{why}");
            assert!(why.contains("nothing was sent"), "{why}");
            assert!(why.contains("<title>Portal login</title>"), "{why}");
            assert!(!why.contains("s3cr3t"), "{why}");
        }
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod settings_tests {
    use super::testing::{Harness, install};
    use super::{PluginError, settings};

    #[test]
    fn optional_settings_are_trimmed_and_blank_means_unset() {
        install(Harness::new().setting("a", "  x ").setting("b", "   "));
        assert_eq!(settings::optional("a").as_deref(), Some("x"));
        assert_eq!(settings::optional("b"), None);
        assert_eq!(settings::optional("c"), None);
    }

    #[test]
    fn base_urls_must_be_http_or_https_with_a_host() {
        install(
            Harness::new()
                .setting("good", " https://api.example.com/v1/ ")
                .setting("plain", "http://127.0.0.1:8080")
                .setting("ftp", "ftp://example.com")
                .setting("hostless", "https:///path"),
        );
        assert_eq!(
            settings::base_url("good", "").ok().as_deref(),
            Some("https://api.example.com/v1")
        );
        assert_eq!(
            settings::base_url("plain", "").ok().as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(
            settings::base_url("unset", "https://default.example")
                .ok()
                .as_deref(),
            Some("https://default.example")
        );
        for key in ["ftp", "hostless", "unset"] {
            match settings::base_url(key, "") {
                Err(PluginError::Misconfigured(why)) => assert!(why.contains(key), "{why}"),
                other => panic!("{key}: expected misconfigured, got {other:?}"),
            }
        }
    }
}

#[cfg(test)]
mod link_and_query_tests {
    use super::constant_time_eq;
    use super::http::{decode_component, link_target, query_param};

    #[test]
    fn link_targets_are_found_by_relation() {
        let header = "<https://api.example.com/v1/1/orders?page=3&per_page=100>; rel=\"next\",\n  \
                      <https://api.example.com/v1/1/orders?page=50&per_page=100>; rel=\"last\"";
        assert_eq!(
            link_target(header, "next").as_deref(),
            Some("https://api.example.com/v1/1/orders?page=3&per_page=100")
        );
        assert_eq!(
            link_target(header, "LAST").as_deref(),
            Some("https://api.example.com/v1/1/orders?page=50&per_page=100")
        );
        assert_eq!(link_target(header, "prev"), None);
        assert_eq!(
            link_target("<a>; rel=\"prev next\"", "next").as_deref(),
            Some("a")
        );
        assert_eq!(link_target("<a>; rel=next", "next").as_deref(), Some("a"));
        for odd in ["", "<", "<a", "a; rel=next", "<a>; rel", ">>; <"] {
            assert_eq!(link_target(odd, "next"), None, "{odd:?}");
        }
    }

    #[test]
    fn query_params_are_decoded() {
        let url =
            "https://h/x?page=3&updated_at_min=2024-05-10T12%3A00%3A00%2B00%3A00&a+b=c+d#frag";
        assert_eq!(query_param(url, "page").as_deref(), Some("3"));
        assert_eq!(
            query_param(url, "updated_at_min").as_deref(),
            Some("2024-05-10T12:00:00+00:00")
        );
        assert_eq!(query_param(url, "a b").as_deref(), Some("c d"));
        assert_eq!(query_param(url, "missing"), None);
        assert_eq!(query_param("https://h/x", "page"), None);
        assert_eq!(query_param("https://h/x?flag", "flag").as_deref(), Some(""));
        assert_eq!(decode_component("%zz"), None);
        assert_eq!(decode_component("%"), None);
        assert_eq!(decode_component("%ff"), None, "not UTF-8");
    }

    #[test]
    fn secrets_compare_equal_only_when_equal() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(constant_time_eq(b"", b""));
    }
}
