//! # twilio-sms: Twilio Programmable Messaging (SMS, or WhatsApp via Twilio)
//!
//! Creates a Message with
//! `POST {base_url}/2010-04-01/Accounts/{account_sid}/Messages.json`,
//! form-encoded, HTTP Basic auth (`account_sid` — or `api_key_sid` when set —
//! as user, `auth_token` as password). Fields, in order: `To`, `From` and/or
//! `MessagingServiceSid`, then `Body` (the rendered text) or, for WhatsApp
//! templates, `ContentSid` + `ContentVariables`, then `StatusCallback` when
//! configured.
//!
//! The facts about Twilio this relies on (the WhatsApp window, the
//! error-code table) are in docs/channels.md §Twilio.
//!
//! * `channel = "sms"` (default): `To` is the E.164 phone, `Body` the text.
//! * `channel = "whatsapp"`: `To`/`From` get the `whatsapp:` prefix. With a
//!   template mapped (`[channels.<id>.templates.<kind>]`, whose `name` is the
//!   Twilio Content SID `HX…`) the message goes out as `ContentSid` with
//!   `ContentVariables` = a JSON object of the positional (`"1"`, `"2"`…) and
//!   named parameters. Without a template it is sent as `Body` only when
//!   `allow_free_text = true` (WhatsApp's 24-hour window applies); otherwise
//!   the job fails permanently with a message saying to map a template.
//! * **Receipt:** the Message `sid` (`SM…`) and its `to`.
//! * **Errors** by Twilio `code` ([`classify_code`]): 20429/63018 (and HTTP
//!   429) retryable; numbers that cannot be reached on this channel
//!   (21211 invalid, 21614 not a mobile, 21612 no route) the SDK's
//!   `recipient_unreachable` (the host may fall back to another channel);
//!   unsubscribed or trial-unverified recipients (21610, 21608…) and 63016 (outside the WhatsApp window:
//!   "use a template") permanent; credentials, account and sender problems
//!   (20003, HTTP 401, 20404, 21212, 21606, 21408, 63007…) pause the channel;
//!   5xx and network failures are retryable; unknown codes go by HTTP status.
//! * **check()** reads the Account (`GET {base_url}/2010-04-01/Accounts/{account_sid}.json`);
//!   a suspended or closed account pauses the channel.

// Natively (unit tests) nothing exports the plugin type.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use arauto_plugin_sdk::event;
use arauto_plugin_sdk::sender::prelude::*;
use arauto_plugin_sdk::sender::{http::HttpResponse, log::Level};
use serde::Deserialize;
use serde_json::{Map, Value};

/// The plugin.
pub struct TwilioSms;

const DEFAULT_BASE_URL: &str = "https://api.twilio.com";
const API: &str = "2010-04-01";

impl Sender for TwilioSms {
    fn info() -> SenderInfo {
        SenderInfo {
            plugin: plugin_info(),
            recipient: RecipientNeed::CustomerPhone,
            // SMS and Twilio's WhatsApp senders are official APIs that queue
            // bursts themselves: the host's usual one second between sends.
            default_min_interval_ms: 1_000,
            // No documented provider limit per day (docs/channels.md).
            default_daily_cap: None,
            // Twilio has no idempotency key for creating a Message.
            idempotent: false,
        }
    }

    fn check() -> Result<(), PluginError> {
        let settings = Settings::load()?;
        check_with(&settings).map_err(|e| scrub(e, &settings.auth_token))
    }

    fn send(msg: Message) -> Result<Receipt, PluginError> {
        let settings = Settings::load()?;
        send_with(&settings, &msg).map_err(|e| scrub(e, &settings.auth_token))
    }
}

arauto_plugin_sdk::export_sender!(TwilioSms);

/// The plugin's name, settings and default hosts.
fn plugin_info() -> PluginInfo {
    PluginInfo {
        name: "twilio-sms".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        description:
            "Twilio Programmable Messaging: SMS, or WhatsApp via Twilio with Content templates"
                .into(),
        config_keys: vec![
            config_key("account_sid", "Account SID (AC…)", true, false),
            config_key(
                "auth_token",
                "Auth Token of the account, or the secret of the API key named in `api_key_sid`",
                true,
                true,
            ),
            config_key(
                "api_key_sid",
                "API key SID (SK…) to authenticate with instead of the Account SID",
                false,
                false,
            ),
            config_key(
                "from",
                "Sender: a Twilio number in E.164 (+1…) or an alphanumeric sender ID; \
                     one of `from` / `messaging_service_sid` is required",
                false,
                false,
            ),
            config_key(
                "messaging_service_sid",
                "Messaging Service SID (MG…) to send through",
                false,
                false,
            ),
            config_key(
                "channel",
                "\"sms\" or \"whatsapp\" (adds the whatsapp: prefixes)",
                false,
                false,
            )
            .with_default("sms"),
            config_key(
                "allow_free_text",
                "WhatsApp only: send the rendered text as Body when no Content template is mapped \
                     (delivered only within 24 h of the customer's last message)",
                false,
                false,
            )
            .with_default("false"),
            config_key(
                "status_callback",
                "URL Twilio POSTs delivery status updates to",
                false,
                false,
            ),
            config_key("base_url", "Twilio REST API base URL", false, false)
                .with_default(DEFAULT_BASE_URL),
        ],
        default_hosts: vec![DEFAULT_BASE_URL.into()],
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Channel {
    Sms,
    WhatsApp,
}

struct Settings {
    base_url: String,
    account_sid: String,
    auth_user: String,
    auth_token: String,
    from: Option<String>,
    messaging_service_sid: Option<String>,
    channel: Channel,
    allow_free_text: bool,
    status_callback: Option<String>,
}

impl Settings {
    fn load() -> Result<Self, PluginError> {
        let base_url = settings::base_url("base_url", DEFAULT_BASE_URL)?;
        let account_sid = settings::require("account_sid")?.trim().to_owned();
        if !account_sid.starts_with("AC") || account_sid.len() != 34 {
            return Err(misconfigured(format!(
                "setting `account_sid` must be the 34-character Account SID starting with AC, got {account_sid:?}"
            )));
        }
        let api_key_sid = settings::optional("api_key_sid");
        if let Some(sid) = &api_key_sid
            && !sid.starts_with("SK")
        {
            return Err(misconfigured(format!(
                "setting `api_key_sid` must start with SK, got {sid:?}"
            )));
        }
        let from = settings::optional("from");
        let messaging_service_sid = settings::optional("messaging_service_sid");
        if from.is_none() && messaging_service_sid.is_none() {
            return Err(misconfigured(
                "one of the settings `from` (a Twilio number) or `messaging_service_sid` (MG…) is required",
            ));
        }
        if let Some(sid) = &messaging_service_sid
            && !sid.starts_with("MG")
        {
            return Err(misconfigured(format!(
                "setting `messaging_service_sid` must start with MG, got {sid:?}"
            )));
        }
        let channel = match settings::get_or("channel", "sms")
            .trim()
            .to_ascii_lowercase()
            .as_str()
        {
            "sms" => Channel::Sms,
            "whatsapp" => Channel::WhatsApp,
            other => {
                return Err(misconfigured(format!(
                    "setting `channel` must be \"sms\" or \"whatsapp\", got {other:?}"
                )));
            }
        };
        Ok(Self {
            base_url,
            auth_user: api_key_sid.unwrap_or_else(|| account_sid.clone()),
            account_sid,
            auth_token: settings::require("auth_token")?.trim().to_owned(),
            from,
            messaging_service_sid,
            channel,
            allow_free_text: settings::flag("allow_free_text", false)?,
            status_callback: settings::optional("status_callback"),
        })
    }

    fn account_url(&self) -> String {
        format!(
            "{}/{API}/Accounts/{}",
            self.base_url,
            http::encode_component(&self.account_sid)
        )
    }

    fn address(&self, phone: &str) -> String {
        match self.channel {
            Channel::WhatsApp if !phone.starts_with("whatsapp:") => format!("whatsapp:{phone}"),
            _ => phone.to_owned(),
        }
    }
}

/// Remove the auth token from an error message wherever it came from.
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
    let response = http::get(&format!("{}.json", settings.account_url()))
        .basic_auth(&settings.auth_user, &settings.auth_token)
        .send()?;
    if !response.is_success() {
        return Err(api_error(&response, None));
    }
    let account: Value = response.json()?;
    let status = account["status"].as_str().unwrap_or("unknown");
    let name = account["friendly_name"].as_str().unwrap_or_default();
    if status != "active" {
        return Err(misconfigured(format!(
            "Twilio account {} ({name}) is {status}: reactivate it in the Twilio console",
            settings.account_sid
        )));
    }
    log::log(
        Level::Info,
        &format!("Twilio account {} ({name}) is active", settings.account_sid),
        &[("account_sid", &settings.account_sid)],
    );
    Ok(())
}

fn send_with(settings: &Settings, msg: &Message) -> Result<Receipt, PluginError> {
    let phone = recipient_e164(msg, "SMS/WhatsApp")?;
    let to = settings.address(&phone);
    let from = settings.from.as_deref().map(|f| settings.address(f));
    let mut form: Vec<(&str, String)> = vec![("To", to)];
    if let Some(from) = from {
        form.push(("From", from));
    }
    if let Some(service) = &settings.messaging_service_sid {
        form.push(("MessagingServiceSid", service.clone()));
    }
    match (settings.channel, &msg.template) {
        (Channel::WhatsApp, Some(template)) => {
            let content_sid = template.name.trim();
            if !content_sid.starts_with("HX") {
                return Err(permanent(format!(
                    "the template mapped for `{kind}` must be a Twilio Content SID (HX…), got {content_sid:?}: \
                     fix [channels.{channel}.templates.{kind}]",
                    kind = event::notification_name(msg.meta.notification),
                    channel = msg.meta.channel,
                )));
            }
            form.push(("ContentSid", content_sid.to_owned()));
            form.push(("ContentVariables", content_variables(template)));
        }
        (Channel::WhatsApp, None) if !settings.allow_free_text => {
            return Err(permanent(format!(
                "no WhatsApp Content template is mapped for notification `{kind}` on channel `{channel}`: \
                 business-initiated WhatsApp messages must use an approved template; map its Content SID (HX…) in \
                 [channels.{channel}.templates.{kind}] (or set allow_free_text = true)",
                kind = event::notification_name(msg.meta.notification),
                channel = msg.meta.channel,
            )));
        }
        // SMS has no provider templates: the rendered text is the message.
        _ => form.push(("Body", msg.text.clone())),
    }
    if let Some(callback) = &settings.status_callback {
        form.push(("StatusCallback", callback.clone()));
    }
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let response = http::post(&format!("{}/Messages.json", settings.account_url()))
        .basic_auth(&settings.auth_user, &settings.auth_token)
        .form(&pairs)
        .send()?;
    if !response.is_success() {
        return Err(api_error(&response, Some(msg)));
    }
    // Accepted: an odd JSON body must not become a retry and a double send;
    // a body that is not JSON never came from the provider (see `accepted`).
    let message: Value = response.accepted()?;
    let sid = message["sid"].as_str().map(str::to_owned);
    if sid.is_none() {
        log::warn("Twilio accepted the message but returned no sid");
    }
    Ok(Receipt {
        provider_message_id: sid,
        recipient_id: message["to"].as_str().map(str::to_owned),
    })
}

/// `{"1": …, "2": …, "<name>": …}` as a JSON string.
fn content_variables(template: &TemplateRef) -> String {
    let mut variables = Map::new();
    for (i, value) in template.positional.iter().enumerate() {
        variables.insert((i + 1).to_string(), Value::String(value.clone()));
    }
    for (name, value) in &template.named {
        variables.insert(name.clone(), Value::String(value.clone()));
    }
    Value::Object(variables).to_string()
}

/// What to do about one Twilio error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeClass {
    /// Transient: try again later, after `hint_ms` when given.
    Retryable {
        /// Suggested wait before the next attempt.
        hint_ms: Option<u64>,
    },
    /// This message can never be delivered as sent.
    Permanent,
    /// The number cannot be reached on this channel at all (not a valid
    /// number, not a mobile, no route): the host hands the notification to
    /// the channel's fallback, if configured.
    Unreachable,
    /// Outside WhatsApp's 24-hour window: only a template can reach the customer.
    UseTemplate,
    /// Credentials, account or sender problem: pause the channel.
    Misconfigured,
    /// Not a code we know: decide by HTTP status.
    Unknown,
}

/// Twilio's documented REST error codes and their class.
pub fn classify_code(code: u32) -> CodeClass {
    match code {
        // Too many concurrent requests: never processed, always safe to retry.
        20429 => CodeClass::Retryable {
            hint_ms: Some(1_000),
        },
        // WhatsApp rate limit mapped by Twilio.
        63018 => CodeClass::Retryable {
            hint_ms: Some(60_000),
        },
        63016 => CodeClass::UseTemplate,
        // Recipient not a valid number, not SMS-capable (landline), not reachable
        // by this route: another channel may still reach the customer.
        21211 | 21614 | 21612 => CodeClass::Unreachable,
        // Recipient unsubscribed (STOP: an opt-out, not a dead end to route
        // around), unverified (trial); message body missing or too long.
        21610 | 21608 | 21602 | 21617 | 21604 => CodeClass::Permanent,
        // Authentication, account, sender number, messaging service, region permissions,
        // WhatsApp sender not found.
        20003 | 20005 | 20404 | 21212 | 21603 | 21606 | 21408 | 21659 | 21660 | 21703 | 63007 => {
            CodeClass::Misconfigured
        }
        _ => CodeClass::Unknown,
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TwilioError {
    code: Option<u32>,
    message: Option<String>,
    more_info: Option<String>,
}

fn api_error(response: &HttpResponse, msg: Option<&Message>) -> PluginError {
    let error: TwilioError = serde_json::from_slice(&response.body).unwrap_or_default();
    let Some(code) = error.code else {
        return match response.clone().ok_or_error() {
            Err(e) => e,
            Ok(_) => retryable(format!("unexpected HTTP {} from Twilio", response.status)),
        };
    };
    let mut text = format!(
        "Twilio error {code} (HTTP {}): {}",
        response.status,
        error.message.as_deref().unwrap_or("no message")
    );
    if let Some(to) = msg.and_then(|m| m.recipient.phone.as_deref()) {
        text.push_str(&format!(" [to {to}]"));
    }
    if let Some(more) = error.more_info.as_deref().filter(|m| !m.is_empty()) {
        text.push_str(&format!(" ({more})"));
    }
    let hint = response.retry_after_ms();
    match classify_code(code) {
        CodeClass::Retryable { hint_ms } => match hint.or(hint_ms) {
            Some(ms) => retry_after(text, ms),
            None => retryable(text),
        },
        CodeClass::UseTemplate => {
            let (kind, channel) = msg.map_or(("<kind>", "<id>"), |m| {
                (
                    event::notification_name(m.meta.notification),
                    m.meta.channel.as_str(),
                )
            });
            permanent(format!(
                "{text}; outside WhatsApp's 24-hour window only an approved template is delivered: map its \
                 Content SID (HX…) in [channels.{channel}.templates.{kind}]"
            ))
        }
        CodeClass::Permanent => permanent(text),
        CodeClass::Unreachable => recipient_unreachable(text),
        CodeClass::Misconfigured => misconfigured(text),
        CodeClass::Unknown => match response.status {
            401 | 403 => misconfigured(text),
            429 => match hint {
                Some(ms) => retry_after(text, ms),
                None => retryable(text),
            },
            408 | 500..=599 => retryable(text),
            _ => permanent(text),
        },
    }
}
