//! # z-api: Z-API (hosted WhatsApp gateway)
//!
//! Sends the rendered notification as text with
//! `POST {base_url}/instances/{instance_id}/token/{instance_token}/send-text`,
//! header `Client-Token: {client_token}` (the account security token), body
//! `{"phone": "<E.164 digits without +>", "message": "…"}` plus
//! `delayMessage`/`delayTyping` (seconds, 1–15) when configured.
//!
//! The facts about Z-API this relies on (and what it leaves undocumented)
//! are in docs/channels.md §Z-API.
//!
//! * The instance token travels in the URL path: every error message has it
//!   (and the Client-Token) replaced by `<redacted>`.
//! * **Receipt:** `messageId` (WhatsApp's id) as the provider message id; the
//!   `zaapId` (Z-API's own id) is logged with the job id.
//! * **Errors:** Z-API documents only 405 (wrong method) and 415 (missing
//!   `Content-Type`), both permanent (they mean a bug). Beyond that: 401/403,
//!   404 (unknown instance or token), a body naming the `client-token`, and a
//!   disconnected WhatsApp session ("not connected", "restore the session")
//!   pause the channel; 429, 5xx and network failures are retryable; other
//!   4xx are permanent.
//! * **check()** calls `GET {base_url}/instances/{id}/token/{token}/status`:
//!   authenticated, cheap, and it says whether the instance's WhatsApp session
//!   is connected (`connected: false` pauses the channel).

// Natively (unit tests) nothing exports the plugin type.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use arauto_plugin_sdk::sender::prelude::*;
use arauto_plugin_sdk::sender::{http::HttpResponse, log::Level};
use serde_json::{Value, json};

/// The plugin.
pub struct ZApi;

const DEFAULT_BASE_URL: &str = "https://api.z-api.io";

impl Sender for ZApi {
    fn info() -> SenderInfo {
        SenderInfo {
            plugin: plugin_info(),
            recipient: RecipientNeed::CustomerPhone,
            // WhatsApp bans numbers that send in bursts: one message per 20 s,
            // as Notificações Inteligentes does (docs/channels.md).
            default_min_interval_ms: 20_000,
            // No documented provider limit per day (docs/channels.md).
            default_daily_cap: None,
            // Z-API documents no idempotency key.
            idempotent: false,
        }
    }

    fn check() -> Result<(), PluginError> {
        let settings = Settings::load()?;
        check_with(&settings).map_err(|e| settings.scrub(e))
    }

    fn send(msg: Message) -> Result<Receipt, PluginError> {
        let settings = Settings::load()?;
        send_with(&settings, &msg).map_err(|e| settings.scrub(e))
    }
}

arauto_plugin_sdk::export_sender!(ZApi);

/// The plugin's name, settings and default hosts.
fn plugin_info() -> PluginInfo {
    PluginInfo {
        name: "z-api".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        description: "Z-API (hosted WhatsApp gateway): text messages via send-text".into(),
        config_keys: vec![
            config_key(
                "instance_id",
                "Instance ID from the Z-API panel",
                true,
                false,
            ),
            config_key(
                "instance_token",
                "Instance token from the Z-API panel (goes in the URL path)",
                true,
                true,
            ),
            config_key(
                "client_token",
                "Account security token (Z-API panel → Segurança), sent as the Client-Token header",
                true,
                true,
            ),
            config_key("base_url", "Z-API base URL", false, false).with_default(DEFAULT_BASE_URL),
            config_key(
                "delay_message",
                "Seconds (1–15) Z-API waits before sending (delayMessage)",
                false,
                false,
            ),
            config_key(
                "delay_typing",
                "Seconds (1–15) of \"typing…\" shown before sending (delayTyping)",
                false,
                false,
            ),
        ],
        default_hosts: vec![DEFAULT_BASE_URL.into()],
    }
}

struct Settings {
    base_url: String,
    instance_id: String,
    instance_token: String,
    client_token: String,
    delay_message: Option<u8>,
    delay_typing: Option<u8>,
}

impl Settings {
    fn load() -> Result<Self, PluginError> {
        let base_url = settings::base_url("base_url", DEFAULT_BASE_URL)?;
        Ok(Self {
            base_url,
            instance_id: settings::require("instance_id")?.trim().to_owned(),
            instance_token: settings::require("instance_token")?.trim().to_owned(),
            client_token: settings::require("client_token")?.trim().to_owned(),
            delay_message: seconds("delay_message")?,
            delay_typing: seconds("delay_typing")?,
        })
    }

    fn url(&self, action: &str) -> String {
        format!(
            "{}/instances/{}/token/{}/{action}",
            self.base_url,
            http::encode_component(&self.instance_id),
            http::encode_component(&self.instance_token)
        )
    }

    /// Remove both tokens (raw and as they appear percent-encoded in the URL).
    fn scrub(&self, error: PluginError) -> PluginError {
        let secrets = [
            self.instance_token.clone(),
            http::encode_component(&self.instance_token),
            self.client_token.clone(),
        ];
        let clean = |mut s: String| {
            for secret in secrets.iter().filter(|s| !s.is_empty()) {
                s = s.replace(secret.as_str(), "<redacted>");
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

fn seconds(key: &str) -> Result<Option<u8>, PluginError> {
    match settings::optional(key) {
        None => Ok(None),
        Some(v) => match v.parse::<u8>() {
            Ok(s) if (1..=15).contains(&s) => Ok(Some(s)),
            _ => Err(misconfigured(format!(
                "setting `{key}` must be a whole number of seconds from 1 to 15, got {v:?}"
            ))),
        },
    }
}

fn check_with(settings: &Settings) -> Result<(), PluginError> {
    let response = http::get(&settings.url("status"))
        .header("client-token", &settings.client_token)
        .send()?;
    if !response.is_success() {
        return Err(api_error(&response));
    }
    let body: Value = response.json()?;
    if body["connected"].as_bool() == Some(true) {
        log::log(
            Level::Info,
            &format!(
                "Z-API instance {} is connected to WhatsApp",
                settings.instance_id
            ),
            &[("instance", &settings.instance_id)],
        );
        return Ok(());
    }
    let why = body["error"].as_str().unwrap_or("no reason given");
    Err(misconfigured(format!(
        "Z-API instance {} is not connected to WhatsApp ({why}): reconnect it by reading the QR code in the Z-API panel",
        settings.instance_id
    )))
}

fn send_with(settings: &Settings, msg: &Message) -> Result<Receipt, PluginError> {
    let phone = recipient_e164(msg, "WhatsApp")?[1..].to_owned();
    let mut body = json!({"phone": phone, "message": msg.text});
    if let Some(delay) = settings.delay_message {
        body["delayMessage"] = json!(delay);
    }
    if let Some(delay) = settings.delay_typing {
        body["delayTyping"] = json!(delay);
    }
    let response = http::post(&settings.url("send-text"))
        .header("client-token", &settings.client_token)
        .json(&body)?
        .send()?;
    if !response.is_success() {
        return Err(api_error(&response));
    }
    // Accepted: an odd JSON body must not become a retry and a double send;
    // a body that is not JSON never came from the provider (see `accepted`).
    let sent: Value = response.accepted()?;
    let message_id = sent["messageId"]
        .as_str()
        .or_else(|| sent["id"].as_str())
        .map(str::to_owned);
    let zaap_id = sent["zaapId"].as_str().unwrap_or_default();
    match &message_id {
        Some(id) => log::log(
            Level::Debug,
            "Z-API accepted the message",
            &[
                ("message_id", id),
                ("zaap_id", zaap_id),
                ("job_id", &msg.meta.job_id),
            ],
        ),
        None => log::warn("Z-API accepted the message but returned no messageId"),
    }
    Ok(Receipt {
        provider_message_id: message_id,
        recipient_id: None,
    })
}

fn api_error(response: &HttpResponse) -> PluginError {
    let body: Value = serde_json::from_slice(&response.body).unwrap_or_default();
    let detail = match (body["error"].as_str(), body["message"].as_str()) {
        (Some(error), Some(message)) => format!("{error}: {message}"),
        (Some(one), None) | (None, Some(one)) => one.to_owned(),
        (None, None) => response.excerpt(200),
    };
    let text = format!("Z-API answered HTTP {}: {detail}", response.status);
    let lower = detail.to_ascii_lowercase();
    if lower.contains("client-token") {
        return misconfigured(format!(
            "{text}; check `client_token` (Z-API panel → Segurança)"
        ));
    }
    if lower.contains("not connected")
        || lower.contains("disconnected")
        || lower.contains("restore the session")
    {
        return misconfigured(format!(
            "{text}; the instance's WhatsApp session is disconnected: reconnect it in the Z-API panel"
        ));
    }
    // Z-API's wording for a number without WhatsApp ("Phone number does not
    // exist"). It usually arrives only in the asynchronous DeliveryCallback
    // webhook, which arauto does not receive; when the send answer itself
    // carries it, the recipient is unreachable here and the host may fall
    // back to another channel.
    if (400..500).contains(&response.status) && lower.contains("phone number does not exist") {
        return recipient_unreachable(format!("{text}; the number is not on WhatsApp"));
    }
    match response.status {
        401 | 403 => misconfigured(format!(
            "{text}; check `instance_id`, `instance_token` and `client_token`"
        )),
        404 => misconfigured(format!("{text}; check `instance_id` and `instance_token`")),
        405 | 415 => permanent(format!(
            "{text} (a request-format bug in the z-api plugin; please report it)"
        )),
        429 => match response.retry_after_ms() {
            Some(ms) => retry_after(text, ms),
            None => retryable(text),
        },
        408 | 500..=599 => retryable(text),
        _ => permanent(text),
    }
}
