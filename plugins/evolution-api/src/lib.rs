//! # evolution-api: Evolution API v2 (self-hosted WhatsApp gateway)
//!
//! Sends the rendered notification as text with
//! `POST {base_url}/message/sendText/{instance}`, header `apikey: {api_key}`,
//! body `{"number": "<E.164 digits without +>", "text": "…"}` plus `delay`
//! (typing-presence milliseconds) and `linkPreview` when configured.
//!
//! The facts about Evolution API and the ninth digit this relies on are in
//! docs/channels.md §Evolution API and §Brazilian phone numbers.
//!
//! * **Receipt:** `key.id` as the provider message id and `key.remoteJid` as
//!   the recipient id (it shows which form of the number WhatsApp knows).
//! * **Not on WhatsApp:** HTTP 400 with `exists:false` is permanent
//!   ("número não está no WhatsApp: <number>"). WhatsApp accounts created
//!   before Brazil's ninth digit can still be registered under the 12-digit
//!   form, so for a Brazilian mobile whose 8-digit part starts with 6–9 the
//!   plugin first retries once without the 9 (`retry_without_ninth_digit`,
//!   on by default) and reports both numbers if neither exists.
//! * **Errors:** other 400s (schema) are permanent; 401/403 (apikey), 404
//!   (unknown instance) and "Method not available on WhatsApp Business API"
//!   (instance in Cloud API mode) pause the channel; 429, 5xx and network
//!   failures are retryable.
//! * **check()** calls `GET {base_url}/instance/connectionState/{instance}`
//!   with the apikey: a cheap authenticated call that also tells whether the
//!   WhatsApp session is connected (`state: open`); `close` pauses the
//!   channel, `connecting` is retryable.

// Natively (unit tests) nothing exports the plugin type.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use arauto_plugin_sdk::sender::prelude::*;
use arauto_plugin_sdk::sender::{http::HttpResponse, log::Level};
use serde::Deserialize;
use serde_json::{Value, json};

/// The plugin.
pub struct EvolutionApi;

impl Sender for EvolutionApi {
    fn info() -> SenderInfo {
        SenderInfo {
            plugin: plugin_info(),
            recipient: RecipientNeed::CustomerPhone,
            // WhatsApp bans numbers that send in bursts: one message per 20 s,
            // as Notificações Inteligentes does (docs/channels.md).
            default_min_interval_ms: 20_000,
            // No documented provider limit per day (docs/channels.md).
            default_daily_cap: None,
            // Evolution API has no idempotency key.
            idempotent: false,
        }
    }

    fn check() -> Result<(), PluginError> {
        let settings = Settings::load()?;
        check_with(&settings).map_err(|e| scrub(e, &settings.api_key))
    }

    fn send(msg: Message) -> Result<Receipt, PluginError> {
        let settings = Settings::load()?;
        send_with(&settings, &msg).map_err(|e| scrub(e, &settings.api_key))
    }
}

arauto_plugin_sdk::export_sender!(EvolutionApi);

/// The plugin's name, settings and default hosts.
fn plugin_info() -> PluginInfo {
    PluginInfo {
        name: "evolution-api".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        description:
            "Evolution API v2 (self-hosted WhatsApp gateway): text messages via sendText".into(),
        config_keys: vec![
            config_key(
                "base_url",
                "Your Evolution API server, e.g. https://evolution.minhaloja.com.br (its host must be allowed)",
                true,
                false,
            ),
            config_key(
                "instance",
                "Instance name as created in the Evolution manager",
                true,
                false,
            ),
            config_key(
                "api_key",
                "The instance's (or the global) API key, sent as the `apikey` header",
                true,
                true,
            ),
            config_key(
                "delay_ms",
                "Typing-presence time in milliseconds before the message is sent (Evolution `delay`)",
                false,
                false,
            ),
            config_key(
                "link_preview",
                "Ask WhatsApp to render link previews (Evolution `linkPreview`)",
                false,
                false,
            ),
            config_key(
                "retry_without_ninth_digit",
                "When a Brazilian mobile is not found on WhatsApp, try once more without the ninth digit \
                 (accounts created before 2016 may still use the old form)",
                false,
                false,
            )
            .with_default("true"),
        ],
        // Self-hosted: the sysadmin allows the host of `base_url`.
        default_hosts: vec![],
    }
}

struct Settings {
    base_url: String,
    instance: String,
    api_key: String,
    delay_ms: Option<u64>,
    link_preview: Option<bool>,
    retry_without_ninth_digit: bool,
}

impl Settings {
    fn load() -> Result<Self, PluginError> {
        // Required: there is no public default server to fall back to.
        settings::require("base_url")?;
        let base_url = settings::base_url("base_url", "")?;
        let delay_ms = match settings::optional("delay_ms") {
            None => None,
            Some(v) => match v.parse::<u64>() {
                Ok(ms) if ms <= 60_000 => Some(ms),
                _ => {
                    return Err(misconfigured(format!(
                        "setting `delay_ms` must be a number of milliseconds between 0 and 60000, got {v:?}"
                    )));
                }
            },
        };
        let link_preview = match settings::optional("link_preview") {
            None => None,
            Some(_) => Some(settings::flag("link_preview", false)?),
        };
        Ok(Self {
            base_url,
            instance: settings::require("instance")?.trim().to_owned(),
            api_key: settings::require("api_key")?.trim().to_owned(),
            delay_ms,
            link_preview,
            retry_without_ninth_digit: settings::flag("retry_without_ninth_digit", true)?,
        })
    }

    fn url(&self, path: &str) -> String {
        format!(
            "{}/{path}/{}",
            self.base_url,
            http::encode_component(&self.instance)
        )
    }
}

/// Remove the API key from an error message wherever it came from.
fn scrub(error: PluginError, secret: &str) -> PluginError {
    if secret.is_empty() {
        return error;
    }
    let clean = |s: String| s.replace(secret, "<redacted>");
    match error {
        PluginError::Retryable(mut e) => {
            e.message = clean(e.message);
            PluginError::Retryable(e)
        }
        PluginError::Permanent(m) => PluginError::Permanent(clean(m)),
        PluginError::Misconfigured(m) => PluginError::Misconfigured(clean(m)),
    }
}

fn check_with(settings: &Settings) -> Result<(), PluginError> {
    let response = http::get(&settings.url("instance/connectionState"))
        .header("apikey", &settings.api_key)
        .send()?;
    if !response.is_success() {
        return Err(api_error(settings, &response));
    }
    let body: Value = response.json()?;
    let state = body["instance"]["state"].as_str().unwrap_or("unknown");
    match state {
        "open" => {
            log::log(
                Level::Info,
                &format!(
                    "Evolution instance `{}` is connected to WhatsApp",
                    settings.instance
                ),
                &[("instance", &settings.instance)],
            );
            Ok(())
        }
        "connecting" => Err(retryable(format!(
            "Evolution instance `{}` is still connecting to WhatsApp",
            settings.instance
        ))),
        other => Err(misconfigured(format!(
            "Evolution instance `{}` is not connected to WhatsApp (state: {other}): reconnect it by scanning \
             the QR code in the Evolution manager",
            settings.instance
        ))),
    }
}

fn send_with(settings: &Settings, msg: &Message) -> Result<Receipt, PluginError> {
    let number = recipient_e164(msg, "WhatsApp")?[1..].to_owned();
    match send_to(settings, msg, &number)? {
        Outcome::Sent(receipt) => Ok(receipt),
        Outcome::NotOnWhatsApp => {
            let alternative = settings
                .retry_without_ninth_digit
                .then(|| without_ninth_digit(&number))
                .flatten();
            let Some(alternative) = alternative else {
                return Err(recipient_unreachable(format!(
                    "número não está no WhatsApp: {number} (Evolution API exists:false)"
                )));
            };
            log::log(
                Level::Info,
                &format!("{number} is not on WhatsApp; trying the pre-2016 form {alternative}"),
                &[("job_id", &msg.meta.job_id)],
            );
            match send_to(settings, msg, &alternative)? {
                Outcome::Sent(receipt) => Ok(receipt),
                Outcome::NotOnWhatsApp => Err(recipient_unreachable(format!(
                    "número não está no WhatsApp: {number} (also tried without the ninth digit: {alternative}; \
                     Evolution API exists:false)"
                ))),
            }
        }
    }
}

enum Outcome {
    Sent(Receipt),
    NotOnWhatsApp,
}

fn send_to(settings: &Settings, msg: &Message, number: &str) -> Result<Outcome, PluginError> {
    let mut body = json!({"number": number, "text": msg.text});
    if let Some(delay) = settings.delay_ms {
        body["delay"] = json!(delay);
    }
    if let Some(preview) = settings.link_preview {
        body["linkPreview"] = json!(preview);
    }
    let response = http::post(&settings.url("message/sendText"))
        .header("apikey", &settings.api_key)
        .json(&body)?
        .send()?;
    if response.is_success() {
        return Ok(Outcome::Sent(receipt(&response)?));
    }
    if response.status == 400 && says_not_on_whatsapp(&response) {
        return Ok(Outcome::NotOnWhatsApp);
    }
    Err(api_error(settings, &response))
}

/// `55DD9NNNNNNNN` → `55DDNNNNNNNN` when the 8-digit part looks like a
/// pre-2016 mobile (starts with 6–9); `None` otherwise.
pub fn without_ninth_digit(digits: &str) -> Option<String> {
    let national = digits.strip_prefix("55")?;
    if national.len() != 11 || !national.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let (ddd, subscriber) = national.split_at(2);
    let old = subscriber.strip_prefix('9')?;
    matches!(old.as_bytes().first(), Some(b'6'..=b'9')).then(|| format!("55{ddd}{old}"))
}

fn receipt(response: &HttpResponse) -> Result<Receipt, PluginError> {
    // Accepted (201): an odd JSON body must not become a retry and a double
    // send; a body that is not JSON never came from Evolution (see `accepted`).
    let body: Value = response.accepted()?;
    let id = body["key"]["id"].as_str().map(str::to_owned);
    if id.is_none() {
        log::warn("Evolution API accepted the message but returned no key.id");
    }
    Ok(Receipt {
        provider_message_id: id,
        recipient_id: body["key"]["remoteJid"].as_str().map(str::to_owned),
    })
}

/// Evolution's error envelope: `{"status":N,"error":"…","response":{"message":[…]}}`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct ErrorEnvelope {
    error: Option<String>,
    response: ErrorResponse,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ErrorResponse {
    message: Value,
}

fn envelope(response: &HttpResponse) -> ErrorEnvelope {
    serde_json::from_slice(&response.body).unwrap_or_default()
}

fn says_not_on_whatsapp(response: &HttpResponse) -> bool {
    let messages = envelope(response).response.message;
    let items = messages
        .as_array()
        .cloned()
        .unwrap_or_else(|| vec![messages]);
    items
        .iter()
        .any(|item| item.get("exists") == Some(&Value::Bool(false)))
}

/// The envelope's messages as one line.
fn messages_text(response: &HttpResponse) -> String {
    let envelope = envelope(response);
    let text = match &envelope.response.message {
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join("; "),
        Value::String(s) => s.clone(),
        Value::Null => envelope.error.unwrap_or_else(|| response.excerpt(200)),
        other => other.to_string(),
    };
    http::excerpt(&text, 300)
}

fn api_error(settings: &Settings, response: &HttpResponse) -> PluginError {
    let detail = messages_text(response);
    let text = format!(
        "Evolution API answered HTTP {} for instance `{}`: {detail}",
        response.status, settings.instance
    );
    if detail.contains("Method not available on WhatsApp Business API") {
        return misconfigured(format!(
            "{text}; the instance runs in WhatsApp Cloud API mode, which has no sendText: use a Baileys instance \
             or the whatsapp-cloud plugin"
        ));
    }
    match response.status {
        401 | 403 => misconfigured(format!("{text}; check `api_key`")),
        404 => misconfigured(format!(
            "{text}; check `instance` (it must exist on the server)"
        )),
        429 => match response.retry_after_ms() {
            Some(ms) => retry_after(text, ms),
            None => retryable(text),
        },
        408 | 500..=599 => retryable(text),
        _ => permanent(text),
    }
}
