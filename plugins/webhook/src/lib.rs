//! # webhook: signed JSON events to any URL (Standard Webhooks)
//!
//! POSTs each notification to `url` as
//!
//! ```json
//! {"type":"order.shipped","timestamp":"2024-05-10T12:00:00Z","data":<the event JSON>}
//! ```
//!
//! signed per the [Standard Webhooks](https://www.standardwebhooks.com/) spec,
//! so receivers can use any off-the-shelf verifier:
//!
//! * `webhook-id`: the job's idempotency key — stable across retries, for the
//!   receiver to dedupe on. A key the spec does not allow in an id (one with a
//!   `.`, whitespace, non-ASCII or over 200 characters) is replaced by
//!   `msg_` + base64url(SHA-256(key)), equally stable. See [`webhook_id`].
//! * `webhook-timestamp`: Unix seconds from the host clock at this attempt.
//! * `webhook-signature`: `v1,<base64(HMAC-SHA256(secret, "{id}.{timestamp}.{body}"))>`,
//!   computed over the exact bytes sent. The `secret` setting is
//!   `whsec_<base64>` as the spec serialises it (a bare base64 string is
//!   accepted too) and must decode to 24–64 bytes; anything else pauses the
//!   channel (`check()` and `send()` both validate it).
//!
//! The parts of the Standard Webhooks spec this relies on are summarised in
//! docs/channels.md §Webhook (Standard Webhooks).
//!
//! **Event type** ([`event_type`]): `order.` + the notification kind's name
//! (`event::notification_name`) without its `order-` prefix, remaining dashes as underscores: `order-paid` →
//! `order.paid`, `order-shipped` → `order.shipped`, `waiting-payment` →
//! `order.waiting_payment`, `ready-for-pickup` → `order.ready_for_pickup`,
//! `tracking-updated` → `order.tracking_updated`, `boleto-reminder` →
//! `order.boleto_reminder`…
//!
//! **`timestamp`** in the body is the send time (RFC 3339, UTC, from the host
//! clock); `data` is the order event in its documented JSON form, version 1
//! (`arauto_plugin_sdk::event::to_value`; every field is described in
//! docs/events.md). The same document goes out on every retry of a job.
//!
//! **Declared** ([`Sender::info`]): no recipient from the order (the
//! destination is `url`), no default pause between sends, no daily cap, and
//! idempotent: the idempotency key travels as `webhook-id`, on which the
//! Standard Webhooks spec tells receivers to drop repeats.
//!
//! **Extra headers** (e.g. an API key the receiver expects): the `headers`
//! setting holds a JSON object (`{"X-Api-Key": "…"}`), and/or one setting per
//! header named `header.<Header-Name>`; the latter win. They cannot replace
//! `content-type`, `host`, `content-length` or the `webhook-*` headers. Their
//! values are removed from error messages.
//!
//! **Responses:** any 2xx = delivered (the receipt's message id is the
//! `webhook-id`). 3xx = permanent (redirects are not followed). 410 Gone =
//! the receiver disabled the endpoint: the channel is paused. 401/403 = the
//! receiver rejects our signature or credentials: the channel is paused (every
//! other event would fail alike). 408, 429 and 5xx (502/503/504 included) and
//! network failures = retryable, honouring `Retry-After` (seconds or HTTP
//! date). Other 4xx = permanent.
//!
//! **check()** POSTs a signed `{"type":"ping","timestamp":…,"data":{}}` with
//! `webhook-id: ping_<unix seconds>` — unlike a HEAD it proves the receiver
//! accepts our signature; receivers should answer 2xx to type `ping`.

// Natively (unit tests) nothing exports the plugin type.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use arauto_plugin_sdk::event;
use arauto_plugin_sdk::sender::http::HttpResponse;
use arauto_plugin_sdk::sender::prelude::*;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The plugin.
pub struct Webhook;

const DEFAULT_TIMEOUT_MS: u32 = 15_000;
/// Headers the plugin owns.
const RESERVED_HEADERS: [&str; 7] = [
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

impl Sender for Webhook {
    fn info() -> SenderInfo {
        SenderInfo {
            plugin: plugin_info(),
            // The receiver is `url`: every order is delivered, phone or not.
            recipient: RecipientNeed::None,
            // A receiver is a server, not a person: no pause between events.
            default_min_interval_ms: 0,
            default_daily_cap: None,
            // `webhook-id` is the idempotency key (or its stable hash), and
            // Standard Webhooks receivers dedupe on it (docs/channels.md §Webhook).
            idempotent: true,
        }
    }

    fn check() -> Result<(), PluginError> {
        let settings = Settings::load()?;
        let now = now_seconds();
        let body =
            serde_json::json!({"type": "ping", "timestamp": rfc3339(now), "data": {}}).to_string();
        let id = format!("ping_{now}");
        let result = deliver(&settings, &id, now, body.into_bytes()).map(|_| ());
        result.map_err(|e| settings.scrub(e))
    }

    fn send(msg: Message) -> Result<Receipt, PluginError> {
        let settings = Settings::load()?;
        send_with(&settings, &msg).map_err(|e| settings.scrub(e))
    }
}

arauto_plugin_sdk::export_sender!(Webhook);

fn plugin_info() -> PluginInfo {
    PluginInfo {
        name: "webhook".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        description:
            "POSTs each event as JSON to a URL, signed per Standard Webhooks (HMAC-SHA256)".into(),
        config_keys: vec![
            config_key(
                "url",
                "Receiver URL (http or https; its host must be allowed)",
                true,
                false,
            ),
            config_key(
                "secret",
                "Signing secret: whsec_<base64 of 24–64 random bytes>, e.g. whsec_$(openssl rand -base64 32)",
                true,
                true,
            ),
            config_key(
                "headers",
                "Extra request headers as a JSON object, e.g. {\"X-Api-Key\": \"…\"}; \
                     single headers can also be set as `header.<Name>` keys",
                false,
                true,
            ),
            config_key(
                "header.*",
                "One extra request header per key, e.g. `header.X-Api-Key`; \
                     these win over `headers`",
                false,
                true,
            ),
            config_key(
                "timeout_ms",
                "Request timeout in milliseconds",
                false,
                false,
            )
            .with_default("15000"),
        ],
        // Any receiver: the sysadmin allows the host of `url`.
        default_hosts: vec![],
    }
}

struct Settings {
    url: String,
    secret: Vec<u8>,
    headers: Vec<(String, String)>,
    timeout_ms: u32,
}

impl Settings {
    fn load() -> Result<Self, PluginError> {
        // The URL is used exactly as written (a trailing slash can matter to
        // the receiver); `base_url` only vouches for its scheme and host.
        let url = settings::require("url")?.trim().to_owned();
        settings::base_url("url", "")?;
        let secret = decode_secret(&settings::require("secret")?)?;
        let timeout_ms = match settings::optional("timeout_ms") {
            None => DEFAULT_TIMEOUT_MS,
            Some(v) => v.parse::<u32>().ok().filter(|ms| (1_000..=120_000).contains(ms)).ok_or_else(|| {
                misconfigured(format!("setting `timeout_ms` must be milliseconds between 1000 and 120000, got {v:?}"))
            })?,
        };
        Ok(Self {
            url,
            secret,
            headers: extra_headers()?,
            timeout_ms,
        })
    }

    /// Remove extra header values (they often carry credentials) from messages.
    fn scrub(&self, error: PluginError) -> PluginError {
        let clean = |mut s: String| {
            for (_, value) in self.headers.iter().filter(|(_, v)| v.len() >= 4) {
                s = s.replace(value.as_str(), "<redacted>");
            }
            s
        };
        match error {
            PluginError::Retryable(mut e) => {
                e.message = clean(e.message);
                PluginError::Retryable(e)
            }
            PluginError::Permanent(m) => PluginError::Permanent(clean(m)),
            PluginError::Misconfigured(m) => PluginError::Misconfigured(clean(m)),
        }
    }
}

/// The signing key from `whsec_<base64>` (or bare base64).
pub fn decode_secret(raw: &str) -> Result<Vec<u8>, PluginError> {
    let encoded = raw.trim();
    let encoded = encoded.strip_prefix("whsec_").unwrap_or(encoded);
    // Never echo the secret: describe what is wrong with it.
    let bytes = STANDARD.decode(encoded).map_err(|_| {
        misconfigured(
            "setting `secret` must be whsec_ followed by base64 (Standard Webhooks format), \
             e.g. whsec_$(openssl rand -base64 32); the value given is not valid base64",
        )
    })?;
    if !(24..=64).contains(&bytes.len()) {
        return Err(misconfigured(format!(
            "setting `secret` must decode to 24–64 random bytes (Standard Webhooks), got {} bytes; \
             generate one with whsec_$(openssl rand -base64 32)",
            bytes.len()
        )));
    }
    Ok(bytes)
}

fn extra_headers() -> Result<Vec<(String, String)>, PluginError> {
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut add = |name: &str, value: &str, origin: &str| -> Result<(), PluginError> {
        let name = name.trim();
        let valid_name = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !valid_name {
            return Err(misconfigured(format!(
                "{origin}: {name:?} is not a valid HTTP header name"
            )));
        }
        if RESERVED_HEADERS
            .iter()
            .any(|r| r.eq_ignore_ascii_case(name))
        {
            return Err(misconfigured(format!(
                "{origin}: header {name:?} is set by the plugin and cannot be replaced"
            )));
        }
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(misconfigured(format!(
                "{origin}: the value of header {name:?} contains a line break"
            )));
        }
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        headers.push((name.to_owned(), value.to_owned()));
        Ok(())
    };
    if let Some(json) = settings::optional("headers") {
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&json)
            .map_err(|e| {
                misconfigured(format!(
                    "setting `headers` must be a JSON object of header names to strings: {e}"
                ))
            })?;
        for (name, value) in &object {
            let Some(value) = value.as_str() else {
                return Err(misconfigured(format!(
                    "setting `headers`: the value of {name:?} must be a string"
                )));
            };
            add(name, value, "setting `headers`")?;
        }
    }
    let mut singles: Vec<(String, String)> = settings::all()
        .into_iter()
        .filter_map(|(k, v)| k.strip_prefix("header.").map(|name| (name.to_owned(), v)))
        .collect();
    singles.sort();
    for (name, value) in singles {
        add(&name, &value, &format!("setting `header.{name}`"))?;
    }
    Ok(headers)
}

/// The Standard Webhooks event type for a notification kind.
pub fn event_type(kind: NotificationKind) -> String {
    let kind = event::notification_name(kind);
    let name = kind.strip_prefix("order-").unwrap_or(kind);
    format!("order.{}", name.replace('-', "_"))
}

/// The `webhook-id` for an idempotency key: the key itself when the spec
/// allows it, else `msg_` + base64url(SHA-256(key)).
pub fn webhook_id(idempotency_key: &str) -> String {
    let usable = !idempotency_key.is_empty()
        && idempotency_key.len() <= 200
        && idempotency_key
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'.');
    if usable {
        idempotency_key.to_owned()
    } else {
        format!(
            "msg_{}",
            URL_SAFE_NO_PAD.encode(Sha256::digest(idempotency_key.as_bytes()))
        )
    }
}

/// `v1,<base64 HMAC-SHA256(secret, "{id}.{timestamp}.{body}")>`.
pub fn signature(secret: &[u8], id: &str, timestamp: u64, body: &[u8]) -> String {
    // HMAC accepts keys of any length; the error branch cannot happen.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

fn now_seconds() -> u64 {
    clock::now_unix_ms() / 1000
}

fn rfc3339(unix_seconds: u64) -> String {
    i64::try_from(unix_seconds)
        .ok()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_string()
}

#[derive(Serialize)]
struct Envelope<'a, D: Serialize> {
    #[serde(rename = "type")]
    kind: &'a str,
    timestamp: &'a str,
    data: D,
}

fn send_with(settings: &Settings, msg: &Message) -> Result<Receipt, PluginError> {
    // Written straight into the body, without a JSON value tree in between
    // (the same bytes as `event::to_value`).
    let data = event::serializable(&msg.event);
    let now = now_seconds();
    let kind = event_type(msg.meta.notification);
    let timestamp = rfc3339(now);
    let body = serde_json::to_vec(&Envelope {
        kind: &kind,
        timestamp: &timestamp,
        data,
    })
    .map_err(|e| permanent(format!("cannot encode the webhook body: {e}")))?;
    let id = webhook_id(&msg.idempotency_key);
    deliver(settings, &id, now, body)?;
    Ok(Receipt {
        provider_message_id: Some(id),
        recipient_id: None,
    })
}

/// POST `body` signed; Ok on 2xx.
fn deliver(
    settings: &Settings,
    id: &str,
    timestamp: u64,
    body: Vec<u8>,
) -> Result<HttpResponse, PluginError> {
    let signature = signature(&settings.secret, id, timestamp, &body);
    let mut request = http::post(&settings.url)
        .body(body, "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", &timestamp.to_string())
        .header("webhook-signature", &signature)
        .header(
            "user-agent",
            concat!("arauto-webhook/", env!("CARGO_PKG_VERSION")),
        )
        .timeout_ms(settings.timeout_ms);
    for (name, value) in &settings.headers {
        request = request.header(name, value);
    }
    let response = request.send()?;
    if response.is_success() {
        Ok(response)
    } else {
        Err(classify(&response, timestamp))
    }
}

/// `Retry-After` as milliseconds: delta-seconds or an HTTP date.
fn retry_after_ms(response: &HttpResponse, now_seconds: u64) -> Option<u64> {
    if let Some(ms) = response.retry_after_ms() {
        return Some(ms);
    }
    static PARSER: jiff::fmt::rfc2822::DateTimeParser = jiff::fmt::rfc2822::DateTimeParser::new();
    let at = PARSER
        .parse_timestamp(response.header("retry-after")?.trim())
        .ok()?;
    let wait = at
        .as_second()
        .saturating_sub(i64::try_from(now_seconds).ok()?);
    Some(u64::try_from(wait.max(0)).ok()?.saturating_mul(1000))
}

fn classify(response: &HttpResponse, now_seconds: u64) -> PluginError {
    let status = response.status;
    let text = format!(
        "webhook receiver {} answered HTTP {status}: {}",
        http::redact_url(&response.url),
        response.excerpt(200)
    );
    match status {
        300..=399 => {
            let location = response.header("location").unwrap_or("(no Location)");
            permanent(format!(
                "{text}; it redirects to {location} and redirects are not followed: set `url` to the final address"
            ))
        }
        410 => misconfigured(format!(
            "{text}; the receiver disabled this endpoint (410 Gone): fix or replace `url`"
        )),
        401 | 403 => misconfigured(format!(
            "{text}; the receiver rejects our signature or credentials: check `secret` and the extra headers"
        )),
        408 | 429 | 500..=599 => match retry_after_ms(response, now_seconds) {
            Some(ms) => retry_after(text, ms),
            None => retryable(text),
        },
        _ => permanent(text),
    }
}
