//! # whatsapp-cloud: Meta's WhatsApp Cloud API
//!
//! Sends each notification with `POST {base_url}/{api_version}/{phone_number_id}/messages`
//! (`Authorization: Bearer {access_token}`).
//!
//! The facts about Meta's API this relies on (templates, the 24-hour window,
//! the error-code table) are in docs/channels.md §WhatsApp Cloud API.
//!
//! * **Approved templates by default.** Order notifications are
//!   business-initiated, and WhatsApp only delivers those as approved
//!   templates. When the host maps the notification to a template
//!   (`[channels.<id>.templates.<kind>]`), the message goes out as
//!   `type: template` with `language.code` and one `body` component whose
//!   parameters are the rendered positional values (`{{1}}`, `{{2}}`…) or, for
//!   templates created with named parameters, the named values
//!   (`parameter_name`). Free text (`type: text`, the rendered notification)
//!   is sent only when `allow_free_text = true` **and** no template is mapped;
//!   otherwise the job fails permanently with a message saying which template
//!   to map.
//! * `biz_opaque_callback_data` carries the job's idempotency key so status
//!   webhooks can be matched to the job.
//! * **Receipt:** the `wamid` (`messages[0].id`) and the canonical recipient id
//!   `contacts[0].wa_id`.
//! * **Errors** are classified by Meta's `error.code` ([`classify_code`]):
//!   transient and rate-limit codes are retryable (with back-off hints),
//!   recipient/template/content errors are permanent, and credential, account
//!   and policy problems (0, 190, 3, 10, 200–299, 368, 131031, 131042, 131045,
//!   131048, 131064…) pause the channel. 131047 (outside the 24-hour window)
//!   is permanent with a message that says to use a template. Unknown codes
//!   fall back to the HTTP status.
//! * **check()** reads the phone-number object
//!   (`GET {base_url}/{api_version}/{phone_number_id}`) with the token and logs
//!   its display number, verified name and quality rating.

// Natively (unit tests) nothing exports the plugin type.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use arauto_plugin_sdk::event;
use arauto_plugin_sdk::sender::prelude::*;
use arauto_plugin_sdk::sender::{http::HttpResponse, log::Level};
use serde::Deserialize;
use serde_json::{Value, json};

/// The plugin.
pub struct WhatsAppCloud;

const DEFAULT_BASE_URL: &str = "https://graph.facebook.com";
const DEFAULT_API_VERSION: &str = "v21.0";
/// Meta's limit for `biz_opaque_callback_data`.
const MAX_CALLBACK_DATA: usize = 512;

impl Sender for WhatsAppCloud {
    fn info() -> SenderInfo {
        SenderInfo {
            plugin: plugin_info(),
            recipient: RecipientNeed::CustomerPhone,
            // WhatsApp bans numbers that send in bursts: one message per 20 s,
            // as Notificações Inteligentes does (docs/channels.md).
            default_min_interval_ms: 20_000,
            // No documented provider limit per day (docs/channels.md).
            default_daily_cap: None,
            // Meta has no idempotency key for /messages;
            // biz_opaque_callback_data is only echoed in status webhooks.
            idempotent: false,
        }
    }

    fn check() -> Result<(), PluginError> {
        let settings = Settings::load()?;
        let result = check_with(&settings);
        result.map_err(|e| scrub(e, &settings.access_token))
    }

    fn send(msg: Message) -> Result<Receipt, PluginError> {
        let settings = Settings::load()?;
        let result = send_with(&settings, &msg);
        result.map_err(|e| scrub(e, &settings.access_token))
    }
}

arauto_plugin_sdk::export_sender!(WhatsAppCloud);

/// The plugin's name, settings and default hosts.
fn plugin_info() -> PluginInfo {
    PluginInfo {
        name: "whatsapp-cloud".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        description:
            "WhatsApp Cloud API (Meta): approved template messages, optional free text".into(),
        config_keys: vec![
            config_key(
                "access_token",
                "System User access token with the whatsapp_business_messaging permission",
                true,
                true,
            ),
            config_key(
                "phone_number_id",
                "Phone number ID of the sending number (WhatsApp Manager → API setup), not the phone number itself",
                true,
                false,
            ),
            config_key(
                "api_version",
                "Graph API version used in the URL",
                false,
                false,
            )
            .with_default(DEFAULT_API_VERSION),
            config_key(
                "base_url",
                "Graph API base URL",
                false,
                false,
            )
            .with_default(DEFAULT_BASE_URL),
            config_key(
                "allow_free_text",
                "Send the rendered text as a free-form message when no template is mapped for a notification \
                 (WhatsApp only delivers it within 24 h of the customer's last message)",
                false,
                false,
            )
            .with_default("false"),
            config_key(
                "preview_url",
                "Let WhatsApp render link previews in free-text messages",
                false,
                false,
            )
            .with_default("false"),
            config_key(
                "template_language",
                "Template language code used when the mapped template does not name one",
                false,
                false,
            )
            .with_default("pt_BR"),
        ],
        default_hosts: vec![DEFAULT_BASE_URL.into()],
    }
}

struct Settings {
    base_url: String,
    api_version: String,
    phone_number_id: String,
    access_token: String,
    allow_free_text: bool,
    preview_url: bool,
    template_language: String,
}

impl Settings {
    fn load() -> Result<Self, PluginError> {
        let access_token = settings::require("access_token")?.trim().to_owned();
        let phone_number_id = settings::require("phone_number_id")?.trim().to_owned();
        if !phone_number_id.chars().all(|c| c.is_ascii_digit()) {
            return Err(misconfigured(format!(
                "setting `phone_number_id` must be the numeric Phone number ID from WhatsApp Manager, got {phone_number_id:?}"
            )));
        }
        let api_version = settings::get_or("api_version", DEFAULT_API_VERSION)
            .trim()
            .to_owned();
        let well_formed = api_version
            .strip_prefix('v')
            .is_some_and(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.'));
        if !well_formed {
            return Err(misconfigured(format!(
                "setting `api_version` must look like \"{DEFAULT_API_VERSION}\", got {api_version:?}"
            )));
        }
        Ok(Self {
            base_url: settings::base_url("base_url", DEFAULT_BASE_URL)?,
            api_version,
            phone_number_id,
            access_token,
            allow_free_text: settings::flag("allow_free_text", false)?,
            preview_url: settings::flag("preview_url", false)?,
            template_language: settings::get_or("template_language", "pt_BR")
                .trim()
                .to_owned(),
        })
    }

    fn phone_number_url(&self) -> String {
        format!(
            "{}/{}/{}",
            self.base_url, self.api_version, self.phone_number_id
        )
    }
}

/// Remove the token from an error message, wherever it came from (a proxy
/// could echo the Authorization header back in an error page).
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
    let response = http::get(&settings.phone_number_url())
        .bearer(&settings.access_token)
        .send()?;
    if !response.is_success() {
        return Err(api_error(&response, None));
    }
    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct PhoneNumber {
        display_phone_number: Option<String>,
        verified_name: Option<String>,
        quality_rating: Option<String>,
    }
    let number: PhoneNumber = response.json().unwrap_or_default();
    let display = number
        .display_phone_number
        .unwrap_or_else(|| settings.phone_number_id.clone());
    let name = number.verified_name.unwrap_or_default();
    let quality = number.quality_rating.unwrap_or_else(|| "UNKNOWN".into());
    let level = if quality.eq_ignore_ascii_case("RED") {
        Level::Warn
    } else {
        Level::Info
    };
    log::log(
        level,
        &format!("WhatsApp Cloud number {display} ({name}) reachable, quality rating {quality}"),
        &[("phone_number", &display), ("quality_rating", &quality)],
    );
    Ok(())
}

fn send_with(settings: &Settings, msg: &Message) -> Result<Receipt, PluginError> {
    let to = recipient_e164(msg, "WhatsApp")?;
    let body = request_body(settings, msg, &to)?;
    if msg.attempt > 1 {
        log::log(
            Level::Debug,
            &format!("retrying WhatsApp message (attempt {})", msg.attempt),
            &[("job_id", &msg.meta.job_id)],
        );
    }
    let url = format!("{}/messages", settings.phone_number_url());
    let response = http::post(&url)
        .bearer(&settings.access_token)
        .json(&body)?
        .send()?;
    if !response.is_success() {
        return Err(api_error(&response, Some(msg)));
    }
    receipt(&response)
}

/// The JSON body for `/messages`.
fn request_body(settings: &Settings, msg: &Message, to: &str) -> Result<Value, PluginError> {
    let mut body = json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
    });
    match &msg.template {
        Some(template) => {
            body["type"] = json!("template");
            body["template"] = template_object(settings, msg, template)?;
        }
        None if settings.allow_free_text => {
            body["type"] = json!("text");
            body["text"] = json!({"preview_url": settings.preview_url, "body": msg.text});
        }
        None => {
            return Err(permanent(format!(
                "no approved WhatsApp template is mapped for notification `{kind}` on channel `{channel}`: \
                 business-initiated messages must use an approved template; map one in \
                 [channels.{channel}.templates.{kind}] (or set allow_free_text = true to send plain text, \
                 which WhatsApp only delivers within 24 h of the customer's last message)",
                kind = event::notification_name(msg.meta.notification),
                channel = msg.meta.channel,
            )));
        }
    }
    let key: String = msg
        .idempotency_key
        .chars()
        .take(MAX_CALLBACK_DATA)
        .collect();
    if !key.is_empty() {
        body["biz_opaque_callback_data"] = json!(key);
    }
    Ok(body)
}

fn template_object(
    settings: &Settings,
    msg: &Message,
    template: &TemplateRef,
) -> Result<Value, PluginError> {
    let name = template.name.trim();
    if name.is_empty() {
        return Err(permanent(format!(
            "the WhatsApp template mapped for `{}` has an empty name: fix [channels.{}.templates.{}]",
            event::notification_name(msg.meta.notification),
            msg.meta.channel,
            event::notification_name(msg.meta.notification)
        )));
    }
    if !template.positional.is_empty() && !template.named.is_empty() {
        return Err(permanent(format!(
            "the WhatsApp template `{name}` mapped for `{}` has both positional and named parameters: \
             a template uses one format; fix [channels.{}.templates.{}]",
            event::notification_name(msg.meta.notification),
            msg.meta.channel,
            event::notification_name(msg.meta.notification)
        )));
    }
    let language = match template.language.trim() {
        "" => settings.template_language.as_str(),
        language => language,
    };
    let parameters: Vec<Value> = if template.named.is_empty() {
        template
            .positional
            .iter()
            .map(|text| json!({"type": "text", "text": text}))
            .collect()
    } else {
        template
            .named
            .iter()
            .map(|(name, text)| json!({"type": "text", "parameter_name": name, "text": text}))
            .collect()
    };
    let mut object = json!({"name": name, "language": {"code": language}});
    if !parameters.is_empty() {
        object["components"] = json!([{"type": "body", "parameters": parameters}]);
    }
    Ok(object)
}

fn receipt(response: &HttpResponse) -> Result<Receipt, PluginError> {
    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Sent {
        contacts: Vec<Contact>,
        messages: Vec<SentMessage>,
    }
    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Contact {
        wa_id: Option<String>,
    }
    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct SentMessage {
        id: Option<String>,
        message_status: Option<String>,
    }
    // Accepted: an odd JSON body must not become a retry and a double send;
    // a body that is not JSON never came from Meta (see `accepted`).
    let sent: Sent = response.accepted()?;
    let message = sent.messages.into_iter().next().unwrap_or_default();
    let wa_id = sent.contacts.into_iter().next().and_then(|c| c.wa_id);
    match message.message_status.as_deref() {
        Some("held_for_quality_assessment") => log::log(
            Level::Warn,
            "Meta is holding the message for a quality assessment before delivery",
            &[("wamid", message.id.as_deref().unwrap_or_default())],
        ),
        _ if message.id.is_none() => {
            log::warn("WhatsApp accepted the message but returned no message id")
        }
        _ => {}
    }
    Ok(Receipt {
        provider_message_id: message.id,
        recipient_id: wa_id,
    })
}

/// Meta's error envelope.
#[derive(Deserialize, Debug, Default)]
#[serde(default)]
struct ErrorEnvelope {
    error: MetaError,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default)]
struct MetaError {
    message: String,
    code: Option<i64>,
    error_subcode: Option<i64>,
    error_data: ErrorData,
    fbtrace_id: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default)]
struct ErrorData {
    details: Option<String>,
}

/// What to do about one Cloud API error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeClass {
    /// Transient: try again later, after `hint_ms` when given.
    Retryable {
        /// Suggested wait before the next attempt.
        hint_ms: Option<u64>,
    },
    /// This message can never be delivered as sent.
    Permanent,
    /// The recipient cannot be reached on WhatsApp at all (131026: not a
    /// WhatsApp number, terms not accepted, or an old app): the host hands
    /// the notification to the channel's fallback, if configured.
    Unreachable,
    /// Outside the 24-hour window: only a template can reach the customer.
    UseTemplate,
    /// Credentials, account or policy problem: pause the channel.
    Misconfigured,
    /// Not in Meta's table: decide by HTTP status.
    Unknown,
}

/// Meta's documented error codes and their class. The retry hints reflect the
/// documented reset windows: throughput is per second, the pair rate about
/// one message per 6 s to one user, app/WABA call limits and maintenance
/// last minutes.
pub fn classify_code(code: i64) -> CodeClass {
    match code {
        // Possible server error, temporary downtime/overload, unknown, service unavailable.
        1 | 2 | 131000 | 131016 | 133004 => CodeClass::Retryable { hint_ms: None },
        130429 => CodeClass::Retryable {
            hint_ms: Some(5_000),
        },
        131056 => CodeClass::Retryable {
            hint_ms: Some(60_000),
        },
        4 | 80007 => CodeClass::Retryable {
            hint_ms: Some(300_000),
        },
        131057 | 2494100 => CodeClass::Retryable {
            hint_ms: Some(300_000),
        },
        131047 => CodeClass::UseTemplate,
        // Recipient cannot be reached by this message.
        131026 => CodeClass::Unreachable,
        131049 | 131050 | 130403 | 131021 | 131030 => CodeClass::Permanent,
        // Bad request content: parameters, message type, template, media.
        100 | 131008 | 131009 | 131051 | 131052 | 131053 => CodeClass::Permanent,
        132000 | 132001 | 132005 | 132007 | 132012 | 132015 | 132016 => CodeClass::Permanent,
        // Authentication, permissions, account restrictions, payment, registration, quality.
        0 | 190 | 3 | 10 | 200..=299 => CodeClass::Misconfigured,
        368 | 131031 | 131042 | 131045 | 131048 | 131064 | 133010 => CodeClass::Misconfigured,
        _ => CodeClass::Unknown,
    }
}

/// What the operator should do about a code, for the error message.
fn advice(code: i64, msg: Option<&Message>) -> String {
    let (kind, channel) = msg.map_or(("<kind>", "<id>"), |m| {
        (
            event::notification_name(m.meta.notification),
            m.meta.channel.as_str(),
        )
    });
    match code {
        0 => "authentication failed: check `access_token`".into(),
        190 => "the access token expired or was revoked: generate a new System User token and update `access_token`".into(),
        3 | 10 | 200..=299 => {
            "the token or app lacks a permission (whatsapp_business_messaging / whatsapp_business_management): \
             grant it to the System User"
                .into()
        }
        368 | 131031 => {
            "the WhatsApp Business Account is restricted or locked for a policy violation: see Business Support Home"
                .into()
        }
        131042 => "payment method problem on the WhatsApp Business Account: fix billing in Meta Business Manager".into(),
        131045 | 133010 => "the sending phone number is not (correctly) registered with the Cloud API: register it again".into(),
        131048 => {
            "spam rate limit: too many earlier messages were blocked or flagged; sending is paused to protect \
             the number's quality rating"
                .into()
        }
        131064 => "messaging is limited because of template classification violations until the enforcement period ends".into(),
        131047 => format!(
            "more than 24 hours have passed since the customer last wrote, so WhatsApp only accepts an approved \
             template: map one in [channels.{channel}.templates.{kind}] instead of sending free text"
        ),
        131026 => "the number is not on WhatsApp (or has not accepted the terms, or uses an old app)".into(),
        131049 => {
            "Meta held back this message to limit marketing messages to the user: make sure the template's \
             category is UTILITY"
                .into()
        }
        131050 => "the customer stopped marketing messages from this business".into(),
        131030 => "the recipient is not in the test number's allowed list (sandbox)".into(),
        132000 | 132001 | 132005 | 132007 | 132012 | 132015 | 132016 => format!(
            "the template was rejected: check its name, language and parameters in WhatsApp Manager and \
             [channels.{channel}.templates.{kind}]"
        ),
        130429 => "Cloud API throughput reached: slowing down".into(),
        131056 => "too many messages to this customer in a short time: pausing for this recipient".into(),
        4 | 80007 => "API call rate limit reached for the app or account: retrying later".into(),
        131057 | 2494100 => "the account or number is in maintenance mode: retrying in a few minutes".into(),
        _ => String::new(),
    }
}

/// Turn an error response into a plugin error of the right class.
fn api_error(response: &HttpResponse, msg: Option<&Message>) -> PluginError {
    let envelope: Option<ErrorEnvelope> = serde_json::from_slice(&response.body).ok();
    let Some(error) = envelope.map(|e| e.error).filter(|e| e.code.is_some()) else {
        // Not Meta's envelope (a proxy page, an outage): decide by status.
        return match response.clone().ok_or_error() {
            Err(e) => e,
            Ok(_) => retryable(format!(
                "unexpected HTTP {} from the WhatsApp Cloud API",
                response.status
            )),
        };
    };
    let code = error.code.unwrap_or_default();
    let mut text = format!(
        "WhatsApp Cloud API error {code} (HTTP {}): {}",
        response.status, error.message
    );
    if let Some(details) = error
        .error_data
        .details
        .as_deref()
        .filter(|d| !d.is_empty())
    {
        text.push_str(&format!(" — {details}"));
    }
    if let Some(to) = msg.and_then(|m| m.recipient.phone.as_deref()) {
        text.push_str(&format!(" [to {to}]"));
    }
    let advice = advice(code, msg);
    if !advice.is_empty() {
        text.push_str(&format!("; {advice}"));
    }
    if let Some(trace) = &error.fbtrace_id {
        text.push_str(&format!(" (fbtrace_id {trace})"));
    }
    // Code 100 subcode 33: the phone number ID does not exist or the token cannot see it.
    if code == 100 && error.error_subcode == Some(33) {
        return misconfigured(format!(
            "{text}; check `phone_number_id` and that the token's System User has access to it"
        ));
    }
    let header_hint = response.retry_after_ms();
    match classify_code(code) {
        CodeClass::Retryable { hint_ms } => match header_hint.or(hint_ms) {
            Some(ms) => retry_after(text, ms),
            None => retryable(text),
        },
        CodeClass::Permanent | CodeClass::UseTemplate => permanent(text),
        CodeClass::Unreachable => recipient_unreachable(text),
        CodeClass::Misconfigured => misconfigured(text),
        CodeClass::Unknown => match response.status {
            401 | 403 => misconfigured(text),
            429 => match header_hint {
                Some(ms) => retry_after(text, ms),
                None => retryable(text),
            },
            408 | 500..=599 => retryable(text),
            _ => permanent(text),
        },
    }
}
