//! # telegram: Telegram Bot API
//!
//! Sends the rendered notification with `POST {base_url}/bot{bot_token}/sendMessage`,
//! JSON body `{"chat_id": …, "text": …}` plus `parse_mode` and
//! `disable_notification` when configured.
//!
//! The facts about the Bot API this relies on are in docs/channels.md
//! §Telegram.
//!
//! **Which chat** (first match wins):
//! 1. the `chat_id` setting: a fixed chat, e.g. the shop staff's group
//!    (`-100…`) or channel (`@minhaloja_pedidos`); every notification of the
//!    channel goes there;
//! 2. the `chat_id_pointer` setting: a JSON Pointer (RFC 6901) into the
//!    message's event in its JSON form (docs/events.md), e.g.
//!    `/order/extras/telegram_chat_id`;
//! 3. the customer's chat id when the platform holds one
//!    (`message.recipient.chat-id`);
//! 4. otherwise the first `telegram_chat_id` key found anywhere in the event
//!    JSON (a number or a string), so platforms that store the customer's chat
//!    id in order extras work without configuration.
//!
//! No chat id → permanent error for that job.
//!
//! **Declared** ([`Sender::info`]): recipient "none", since the usual
//! destination is the staff chat in `chat_id` and the host must not skip
//! orders without a phone or chat id; one second between sends (Telegram
//! publishes no limits; about one message per second per chat is the figure
//! usually quoted); no daily cap; not idempotent (the Bot API has no
//! idempotency key).
//!
//! * The bot token travels in the URL path: every error message has it
//!   replaced by `<redacted>`.
//! * **Receipt:** `result.message_id` and `result.chat.id`.
//! * **Errors** (`{"ok":false,"error_code","description","parameters"}`):
//!   `parameters.retry_after` → retryable with that hint; 5xx/network →
//!   retryable; 401/404 (token rejected or malformed) → misconfigured; 403
//!   (bot blocked or kicked), 400 "chat not found" and `migrate_to_chat_id`
//!   (the group became a supergroup; the message names the new id to
//!   configure) are permanent for a chat taken from the order, and
//!   misconfigured for the fixed `chat_id` setting — there every later
//!   message would fail the same way until the setting is fixed, so the
//!   channel is paused instead of dead-lettering them all; other 400s are
//!   permanent.
//! * **check()** calls `getMe` and logs the bot's username.

// Natively (unit tests) nothing exports the plugin type.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use arauto_plugin_sdk::event;
use arauto_plugin_sdk::sender::prelude::*;
use arauto_plugin_sdk::sender::{http::HttpResponse, log::Level};
use serde::Deserialize;
use serde_json::{Value, json};

/// The plugin.
pub struct Telegram;

const DEFAULT_BASE_URL: &str = "https://api.telegram.org";
/// The key looked for in the event JSON when no chat is configured.
pub const EVENT_CHAT_KEY: &str = "telegram_chat_id";

impl Sender for Telegram {
    fn info() -> SenderInfo {
        SenderInfo {
            plugin: plugin_info(),
            // The staff chat in the settings is the usual destination; a
            // customer's chat, when the order has one, is a bonus.
            recipient: RecipientNeed::None,
            default_min_interval_ms: 1_000,
            default_daily_cap: None,
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

arauto_plugin_sdk::export_sender!(Telegram);

fn plugin_info() -> PluginInfo {
    PluginInfo {
        name: "telegram".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        description: "Telegram Bot API: sendMessage to a fixed staff chat or the customer's chat"
            .into(),
        config_keys: vec![
            config_key(
                "bot_token",
                "Bot token from @BotFather (123456:ABC…)",
                true,
                true,
            ),
            config_key(
                "chat_id",
                "Fixed chat for every message (e.g. the staff group -100…, or @channel); \
                     unset = take the chat from the order",
                false,
                false,
            ),
            config_key(
                "chat_id_pointer",
                "JSON Pointer to the customer's chat id in the event JSON (e.g. /order/extras/telegram_chat_id); \
                     unset = the customer's chat id from the order, else the first `telegram_chat_id` key anywhere in the event",
                false,
                false,
            ),
            config_key(
                "parse_mode",
                "HTML, MarkdownV2 or Markdown; unset = plain text",
                false,
                false,
            ),
            config_key("disable_notification", "Deliver silently", false, false)
                .with_default("false"),
            config_key(
                "base_url",
                "Bot API base URL (a local Bot API server, for instance)",
                false,
                false,
            )
            .with_default(DEFAULT_BASE_URL),
        ],
        default_hosts: vec![DEFAULT_BASE_URL.into()],
    }
}

struct Settings {
    base_url: String,
    bot_token: String,
    chat_id: Option<String>,
    chat_id_pointer: Option<String>,
    parse_mode: Option<String>,
    disable_notification: bool,
}

impl Settings {
    fn load() -> Result<Self, PluginError> {
        let base_url = settings::base_url("base_url", DEFAULT_BASE_URL)?;
        let bot_token = settings::require("bot_token")?.trim().to_owned();
        let well_formed = bot_token.split_once(':').is_some_and(|(id, rest)| {
            !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()) && !rest.is_empty()
        });
        if !well_formed || bot_token.contains('/') {
            // Never echo the token itself.
            return Err(misconfigured(
                "setting `bot_token` must look like 123456789:AAE… (as given by @BotFather)",
            ));
        }
        let parse_mode = settings::optional("parse_mode");
        if let Some(mode) = &parse_mode
            && !matches!(mode.as_str(), "HTML" | "MarkdownV2" | "Markdown")
        {
            return Err(misconfigured(format!(
                "setting `parse_mode` must be HTML, MarkdownV2 or Markdown, got {mode:?}"
            )));
        }
        let chat_id_pointer = settings::optional("chat_id_pointer");
        if let Some(pointer) = &chat_id_pointer
            && !pointer.starts_with('/')
        {
            return Err(misconfigured(format!(
                "setting `chat_id_pointer` must be a JSON Pointer starting with '/', got {pointer:?}"
            )));
        }
        Ok(Self {
            base_url,
            bot_token,
            chat_id: settings::optional("chat_id"),
            chat_id_pointer,
            parse_mode,
            disable_notification: settings::flag("disable_notification", false)?,
        })
    }

    fn url(&self, method: &str) -> String {
        format!("{}/bot{}/{method}", self.base_url, self.bot_token)
    }

    fn scrub(&self, error: PluginError) -> PluginError {
        let clean = |s: String| s.replace(self.bot_token.as_str(), "<redacted>");
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

/// Where the chat id came from (it decides who must fix a bad one).
#[derive(Clone, Copy, PartialEq, Eq)]
enum ChatSource {
    Setting,
    Order,
}

/// A chat id as Telegram wants it: a number, or a string such as `@channel`.
fn chat_value(raw: &str) -> Value {
    raw.parse::<i64>()
        .map_or_else(|_| Value::String(raw.to_owned()), Value::from)
}

/// The chat id from the event JSON: at `pointer`, or the first [`EVENT_CHAT_KEY`].
pub fn chat_from_event(event: &Value, pointer: Option<&str>) -> Option<Value> {
    let found = match pointer {
        Some(pointer) => event.pointer(pointer).cloned(),
        None => find_key(event, EVENT_CHAT_KEY),
    }?;
    match found {
        Value::Number(n) => Some(Value::Number(n)),
        Value::String(s) if !s.trim().is_empty() => Some(chat_value(s.trim())),
        _ => None,
    }
}

fn find_key(value: &Value, key: &str) -> Option<Value> {
    match value {
        Value::Object(map) => map
            .get(key)
            .filter(|v| !v.is_null())
            .cloned()
            .or_else(|| map.values().find_map(|v| find_key(v, key))),
        Value::Array(items) => items.iter().find_map(|v| find_key(v, key)),
        _ => None,
    }
}

fn resolve_chat(settings: &Settings, msg: &Message) -> Result<(Value, ChatSource), PluginError> {
    if let Some(chat) = &settings.chat_id {
        return Ok((chat_value(chat), ChatSource::Setting));
    }
    let event = event::to_value(&msg.event);
    let from_order = match &settings.chat_id_pointer {
        Some(pointer) => chat_from_event(&event, Some(pointer)),
        None => msg
            .recipient
            .chat_id
            .as_deref()
            .map(str::trim)
            .filter(|chat| !chat.is_empty())
            .map(chat_value)
            .or_else(|| chat_from_event(&event, None)),
    };
    match from_order {
        Some(chat) => Ok((chat, ChatSource::Order)),
        None => Err(permanent(format!(
            "no Telegram chat id for order {}: set `chat_id` in [channels.{}.settings] for a fixed staff chat, or \
             have the order carry the customer's chat id or {} (at `chat_id_pointer` when set)",
            msg.meta.order_number,
            msg.meta.channel,
            settings
                .chat_id_pointer
                .as_deref()
                .unwrap_or(EVENT_CHAT_KEY),
        ))),
    }
}

fn check_with(settings: &Settings) -> Result<(), PluginError> {
    let response = http::get(&settings.url("getMe")).send()?;
    if !response.is_success() {
        return Err(api_error(&response, None));
    }
    let body: Value = response.json()?;
    let username = body["result"]["username"].as_str().unwrap_or("?");
    log::log(
        Level::Info,
        &format!("Telegram bot @{username} is reachable"),
        &[("bot", username)],
    );
    Ok(())
}

fn send_with(settings: &Settings, msg: &Message) -> Result<Receipt, PluginError> {
    let (chat, source) = resolve_chat(settings, msg)?;
    let mut body = json!({"chat_id": chat, "text": msg.text});
    if let Some(mode) = &settings.parse_mode {
        body["parse_mode"] = json!(mode);
    }
    if settings.disable_notification {
        body["disable_notification"] = json!(true);
    }
    let response = http::post(&settings.url("sendMessage"))
        .json(&body)?
        .send()?;
    if !response.is_success() {
        return Err(api_error(&response, Some((msg, &chat, source))));
    }
    // Accepted: an odd JSON body must not become a retry and a double send;
    // a body that is not JSON never came from the provider (see `accepted`).
    let sent: Value = response.accepted()?;
    let id = |v: &Value| match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    };
    Ok(Receipt {
        provider_message_id: id(&sent["result"]["message_id"]),
        recipient_id: id(&sent["result"]["chat"]["id"]),
    })
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Failure {
    error_code: Option<u16>,
    description: Option<String>,
    parameters: Parameters,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Parameters {
    retry_after: Option<u64>,
    migrate_to_chat_id: Option<i64>,
}

fn api_error(
    response: &HttpResponse,
    target: Option<(&Message, &Value, ChatSource)>,
) -> PluginError {
    let failure: Failure = serde_json::from_slice(&response.body).unwrap_or_default();
    let Some(description) = failure.description else {
        return match response.clone().ok_or_error() {
            Err(e) => e,
            Ok(_) => retryable(format!(
                "unexpected HTTP {} from the Telegram Bot API",
                response.status
            )),
        };
    };
    let code = failure.error_code.unwrap_or(response.status);
    let chat_text = target
        .map(|(_, chat, _)| format!(" (chat {chat})"))
        .unwrap_or_default();
    let text = format!("Telegram Bot API error {code}{chat_text}: {description}");
    let fixed = target.is_some_and(|(_, _, source)| source == ChatSource::Setting);
    let channel = target.map_or("<id>", |(m, _, _)| m.meta.channel.as_str());
    // A bad chat in the fixed setting fails every message alike: pause the channel.
    let bad_chat = |text: String| {
        if fixed {
            misconfigured(text)
        } else {
            permanent(text)
        }
    };

    // The customer's own chat cannot be reached (the bot was blocked, the
    // chat is unknown to the bot): another channel may still reach them.
    let unreachable_chat = |text: String| {
        if fixed {
            misconfigured(text)
        } else {
            recipient_unreachable(text)
        }
    };

    if let Some(seconds) = failure.parameters.retry_after {
        return retry_after(text, seconds.saturating_mul(1000));
    }
    if let Some(new_chat) = failure.parameters.migrate_to_chat_id {
        let where_ = if fixed {
            format!("set chat_id = \"{new_chat}\" in [channels.{channel}.settings]")
        } else {
            format!("store the new chat id {new_chat} for this customer")
        };
        return bad_chat(format!(
            "{text}; the group became a supergroup with chat id {new_chat}: {where_}"
        ));
    }
    let lower = description.to_ascii_lowercase();
    match code {
        401 | 404 => misconfigured(format!(
            "{text}; check `bot_token` (ask @BotFather for the current token)"
        )),
        403 => unreachable_chat(format!(
            "{text}; the bot was blocked, removed from the chat, or may not write there"
        )),
        400 if lower.contains("chat not found") => unreachable_chat(format!(
            "{text}; {}",
            if fixed {
                "check `chat_id` and that the bot was added to that chat"
            } else {
                "the customer's chat id is unknown to this bot"
            }
        )),
        429 => match response.retry_after_ms() {
            Some(ms) => retry_after(text, ms),
            None => retryable(text),
        },
        _ if matches!(response.status, 408 | 500..=599) || (500..=599).contains(&code) => {
            retryable(text)
        }
        _ => permanent(text),
    }
}
