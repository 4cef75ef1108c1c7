//! Host-side request and response types of plugin calls. These, and the
//! `crate::model` types, are all the rest of arauto sees: the WIT bindings stay
//! inside `plugin/`.

use std::collections::BTreeSet;
use std::fmt;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::model::{NotificationKind, Order, OrderEvent};

use super::redact::REDACTED;

/// Default wall-clock budget of one plugin call.
pub const DEFAULT_CALL_TIMEOUT: SignedDuration = SignedDuration::from_secs(30);
/// Default cap on a plugin instance's linear memory.
pub const DEFAULT_MEMORY_LIMIT: u64 = 64 * 1024 * 1024;
/// Default cap on one HTTP response body handed to a plugin.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 8 * 1024 * 1024;

/// How one configured use of a plugin (a store's connector, a channel's
/// sender) runs: its settings, secrets, network grants and limits.
#[derive(Clone, PartialEq, Eq)]
pub struct InstanceConfig {
    /// The store or channel id; appears in every log line and error.
    pub instance: String,
    /// The instance's `settings` table. Only this instance's plugin calls
    /// see these values.
    pub settings: Vec<(String, String)>,
    /// Keys of `settings` whose values are secret: they are scrubbed from the
    /// plugin's log lines and panic messages, and from `Debug` output.
    /// Keys the plugin itself declares secret are treated the same way.
    pub secret_keys: BTreeSet<String>,
    /// `scheme://host[:port]` entries the plugin may call; `None` = the hosts
    /// the plugin declares by default.
    pub allowed_hosts: Option<Vec<String>>,
    /// Allow loopback/private/link-local destinations (tests, LAN gateways).
    pub allow_private_addresses: bool,
    /// HTTP requests allowed per minute for this instance; `None` = no budget.
    pub requests_per_minute: Option<u32>,
    /// Wall-clock budget of one call, host work (HTTP) included.
    pub call_timeout: SignedDuration,
    /// Cap on the plugin's linear memory, in bytes.
    pub memory_limit: u64,
    /// Cap on one HTTP response body, in bytes.
    pub max_response_bytes: u64,
}

impl InstanceConfig {
    /// An instance with no settings, the plugin's default hosts, no request
    /// budget and the default limits.
    pub fn new(instance: impl Into<String>) -> Self {
        Self {
            instance: instance.into(),
            settings: Vec::new(),
            secret_keys: BTreeSet::new(),
            allowed_hosts: None,
            allow_private_addresses: false,
            requests_per_minute: None,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            memory_limit: DEFAULT_MEMORY_LIMIT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }

    /// Add a setting.
    pub fn setting(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.push((key.into(), value.into()));
        self
    }

    /// Add a secret setting.
    pub fn secret(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let key = key.into();
        self.secret_keys.insert(key.clone());
        self.settings.push((key, value.into()));
        self
    }
}

impl fmt::Debug for InstanceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let settings: Vec<(&str, &str)> = self
            .settings
            .iter()
            .map(|(k, v)| {
                let shown = if self.secret_keys.contains(k) {
                    REDACTED
                } else {
                    v.as_str()
                };
                (k.as_str(), shown)
            })
            .collect();
        f.debug_struct("InstanceConfig")
            .field("instance", &self.instance)
            .field("settings", &settings)
            .field("secret_keys", &self.secret_keys)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("allow_private_addresses", &self.allow_private_addresses)
            .field("requests_per_minute", &self.requests_per_minute)
            .field("call_timeout", &self.call_timeout)
            .field("memory_limit", &self.memory_limit)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish()
    }
}

/// Who receives a message, already normalised by the sender stage.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// E.164 phone, e.g. `+5511987654321`.
    pub phone: Option<String>,
    /// E-mail address.
    pub email: Option<String>,
    /// The customer's chat-app id (contract 0.2 senders only).
    #[serde(default)]
    pub chat_id: Option<String>,
    /// Full name.
    pub name: Option<String>,
    /// First name.
    pub first_name: Option<String>,
}

/// A provider-side template (e.g. an approved WhatsApp Cloud template).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderTemplate {
    /// Template name at the provider.
    pub name: String,
    /// Template language, e.g. `pt_BR`.
    pub language: String,
    /// Rendered body parameters, in order.
    pub positional: Vec<String>,
    /// Rendered named parameters.
    pub named: Vec<(String, String)>,
}

/// Where a message comes from, for the provider's metadata and for logs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageMeta {
    /// Store id.
    pub store: String,
    /// Order id within the store.
    pub order_id: String,
    /// Store-facing order number.
    pub order_number: String,
    /// Which notification this is.
    pub notification: NotificationKind,
    /// Queue job id.
    pub job_id: String,
    /// Channel id.
    pub channel: String,
}

/// One rendered notification for one recipient, handed to a sender plugin.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutgoingMessage {
    /// Stable across retries of the same job, for providers that dedupe.
    pub idempotency_key: String,
    /// 1 for the first try.
    pub attempt: u32,
    /// The recipient.
    pub recipient: Recipient,
    /// The rendered text.
    pub text: String,
    /// A provider template to use instead of free text, when configured.
    pub template: Option<ProviderTemplate>,
    /// Store, order, notification, job and channel.
    pub meta: MessageMeta,
    /// The event (notification kind, normalised order, store) for channels
    /// that forward data rather than text.
    pub event: OrderEvent,
}

/// What the provider said about an accepted message.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendReceipt {
    /// The provider's message id.
    pub provider_message_id: Option<String>,
    /// The recipient id as the provider resolved it (e.g. a WhatsApp `wa_id`).
    pub recipient_id: Option<String>,
}

/// Arguments of one connector `poll`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollRequest {
    /// The cursor the previous successful poll returned; `None` on the first poll.
    pub cursor: Option<String>,
    /// Orders last modified before this instant are only needed as a baseline
    /// and may come back without detail.
    pub detail_cutoff: Option<Timestamp>,
    /// Orders (their [`Order::id`]) verified pushes named since the last
    /// poll, at most [`MAX_LOOK_AT`]: the connector reads each of them even if
    /// its listing does not show the change yet. Any sweep, pushed or
    /// scheduled, carries the ids pending when it starts (empty when none
    /// are); always empty for contract 0.1 connectors.
    #[serde(default)]
    pub look_at: Vec<String>,
}

/// Most orders one poll is asked to look at ([`PollRequest::look_at`],
/// [`PushHint::LookAt`]); the WIT states the same bound.
pub const MAX_LOOK_AT: usize = 100;

/// One HTTP request a platform pushed to the webhook listener, already
/// bounded by the host (body size, header count).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PushRequest {
    /// Header names in lower case, values as received.
    pub headers: Vec<(String, String)>,
    /// The body, as received.
    pub body: Vec<u8>,
}

/// What a connector made of an authentic push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushHint {
    /// Poll the store now, looking at these orders (at most [`MAX_LOOK_AT`];
    /// empty: whatever changed).
    LookAt(Vec<String>),
    /// Nothing to do (a repeat, a change that notifies nobody); the reason
    /// is for the debug log.
    Ignore(String),
}

/// One page of orders from a connector.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PollPage {
    /// Normalised order snapshots.
    pub orders: Vec<Order>,
    /// Cursor to persist with the jobs derived from `orders`.
    pub next_cursor: Option<String>,
    /// Poll again with `next_cursor` before the sweep is complete.
    pub has_more: bool,
    /// Orders of this page the host could not accept (an id over its cap, a
    /// timestamp that is not RFC 3339…). The rest of the page is committed:
    /// one bad record never stops a store.
    #[serde(default)]
    pub rejected: Vec<RejectedOrder>,
    /// What the connector reported about single orders during the call
    /// (at most [`MAX_NOTICES_PER_CALL`]), in the order it logged them.
    #[serde(default)]
    pub notices: Vec<ConnectorNotice>,
}

/// An order a connector returned that the host could not accept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedOrder {
    /// The order's id as the connector sent it (cut to the id cap).
    pub order: String,
    /// Why it was refused.
    pub reason: String,
}

/// A call keeps at most this many notices; a connector that reports more is
/// misbehaving, and the first ones already tell the operator what is wrong.
pub const MAX_NOTICES_PER_CALL: usize = 64;

/// A structured report from a connector about one order, sent as a `log`
/// record whose fields contain `notice=<kind>` (the convention documented in
/// `plugins/wit/since_v0.*` and `plugins/sdk/README.md`). The texts are
/// already redacted and size-capped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "notice", rename_all = "kebab-case")]
pub enum ConnectorNotice {
    /// `notice=future-timestamp`: the order's modification time is beyond the
    /// connector's now plus its tolerance. The order was processed, but the
    /// cursor was not moved past now plus the tolerance.
    FutureTimestamp {
        /// The order id.
        order: String,
        /// The timestamp as the platform wrote it.
        value: String,
    },
    /// `notice=order-unreadable`: the order could not be read (too large,
    /// malformed, too deep…); the connector tries it again later.
    OrderUnreadable {
        /// The order id.
        order: String,
        /// Why (the log message).
        reason: String,
        /// Attempts so far (1 for the first failure).
        attempt: u32,
        /// When the connector tries again, if it said.
        retry_in: Option<SignedDuration>,
    },
    /// `notice=order-quarantined`: the connector gave up on the order after
    /// `attempts` tries; it reads it again only when the order changes.
    OrderQuarantined {
        /// The order id.
        order: String,
        /// Why (the log message).
        reason: String,
        /// Attempts made.
        attempts: u32,
    },
    /// `notice=order-recovered`: an order that had failed was read fine.
    OrderRecovered {
        /// The order id.
        order: String,
    },
}

impl ConnectorNotice {
    /// The order the notice is about.
    pub fn order(&self) -> &str {
        match self {
            Self::FutureTimestamp { order, .. }
            | Self::OrderUnreadable { order, .. }
            | Self::OrderQuarantined { order, .. }
            | Self::OrderRecovered { order } => order,
        }
    }

    /// Read a notice from a connector's log record: `None` when the record
    /// carries no `notice` field. A record that names a notice but lacks what
    /// it needs (no order, an unknown kind) is an error saying what is wrong,
    /// so the host can log it instead of dropping it silently.
    pub fn from_log(
        message: &str,
        fields: &[(String, String)],
    ) -> Option<Result<Self, NoticeError>> {
        let field = |key: &str| {
            fields
                .iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.trim())
        };
        let kind = field("notice")?;
        Some(Self::parse(kind, message, &field))
    }

    fn parse<'a>(
        kind: &str,
        message: &str,
        field: &dyn Fn(&str) -> Option<&'a str>,
    ) -> Result<Self, NoticeError> {
        let order = match field("order") {
            Some(order) if !order.is_empty() => cap(order, MAX_NOTICE_ID),
            _ => {
                return Err(NoticeError::MissingOrder {
                    kind: kind.to_owned(),
                });
            }
        };
        let count = |key: &str| -> Result<u32, NoticeError> {
            match field(key) {
                None => Ok(1),
                Some(text) => text.parse().map_err(|_| NoticeError::NotACount {
                    kind: kind.to_owned(),
                    order: order.clone(),
                    key: key.to_owned(),
                    text: text.to_owned(),
                }),
            }
        };
        let reason = || {
            let reason = message.trim();
            if reason.is_empty() {
                "no reason given".to_owned()
            } else {
                cap(reason, MAX_NOTICE_TEXT)
            }
        };
        match kind {
            "future-timestamp" => Ok(Self::FutureTimestamp {
                value: cap(field("value").unwrap_or_default(), MAX_NOTICE_ID),
                order,
            }),
            "order-unreadable" => Ok(Self::OrderUnreadable {
                attempt: count("attempt")?,
                retry_in: field("retry_in_s")
                    .and_then(|s| s.parse::<u32>().ok())
                    .map(|secs| SignedDuration::from_secs(i64::from(secs))),
                reason: reason(),
                order,
            }),
            "order-quarantined" => Ok(Self::OrderQuarantined {
                attempts: count("attempts")?,
                reason: reason(),
                order,
            }),
            "order-recovered" => Ok(Self::OrderRecovered { order }),
            other => Err(NoticeError::UnknownKind {
                kind: other.to_owned(),
                order,
            }),
        }
    }
}

/// A connector log record that names a notice but cannot be read as one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NoticeError {
    /// The record has no `order` field.
    #[error("notice={kind} without an `order` field")]
    MissingOrder {
        /// The `notice` field.
        kind: String,
    },
    /// A count field (`attempt`, `attempts`) is not a number.
    #[error("notice={kind} order={order}: `{key}` = {text:?} is not a count")]
    NotACount {
        /// The `notice` field.
        kind: String,
        /// The `order` field.
        order: String,
        /// The field that should be a count.
        key: String,
        /// What it holds instead.
        text: String,
    },
    /// The `notice` field names no notice this host knows.
    #[error("unknown notice kind {kind:?} (order {order})")]
    UnknownKind {
        /// The `notice` field.
        kind: String,
        /// The `order` field.
        order: String,
    },
}

/// Order ids and timestamps in notices are cut to this many bytes.
const MAX_NOTICE_ID: usize = 256;
/// Reasons in notices are cut to this many bytes (they are stored in the
/// store status and shown by `check`).
const MAX_NOTICE_TEXT: usize = 512;

fn cap(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &text[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_log_record_with_a_notice_field_is_a_typed_notice() {
        assert_eq!(
            ConnectorNotice::from_log("plain log line", &fields(&[("order", "7")])),
            None
        );
        assert_eq!(
            ConnectorNotice::from_log(
                "order modified in the future",
                &fields(&[
                    ("notice", "future-timestamp"),
                    ("order", "1234"),
                    ("value", "2099-01-01T00:00:00")
                ])
            ),
            Some(Ok(ConnectorNotice::FutureTimestamp {
                order: "1234".into(),
                value: "2099-01-01T00:00:00".into()
            }))
        );
        assert_eq!(
            ConnectorNotice::from_log(
                "detail over the response cap (4.5 MB)",
                &fields(&[
                    ("notice", "order-unreadable"),
                    ("order", "55"),
                    ("attempt", "2"),
                    ("retry_in_s", "600")
                ])
            ),
            Some(Ok(ConnectorNotice::OrderUnreadable {
                order: "55".into(),
                reason: "detail over the response cap (4.5 MB)".into(),
                attempt: 2,
                retry_in: Some(SignedDuration::from_secs(600)),
            }))
        );
        assert_eq!(
            ConnectorNotice::from_log(
                "malformed JSON",
                &fields(&[
                    ("notice", "order-quarantined"),
                    ("order", "55"),
                    ("attempts", "5")
                ])
            ),
            Some(Ok(ConnectorNotice::OrderQuarantined {
                order: "55".into(),
                reason: "malformed JSON".into(),
                attempts: 5,
            }))
        );
        assert_eq!(
            ConnectorNotice::from_log(
                "",
                &fields(&[("notice", "order-recovered"), ("order", "55")])
            ),
            Some(Ok(ConnectorNotice::OrderRecovered { order: "55".into() }))
        );
    }

    #[test]
    fn a_broken_notice_is_an_error_that_says_what_is_wrong() {
        let error = |pairs: &[(&str, &str)]| {
            ConnectorNotice::from_log("m", &fields(pairs))
                .and_then(Result::err)
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(error(&[("notice", "order-recovered")]).contains("without an `order`"));
        assert!(
            error(&[("notice", "order-exploded"), ("order", "9")])
                .contains("unknown notice kind \"order-exploded\"")
        );
        assert!(
            error(&[
                ("notice", "order-quarantined"),
                ("order", "9"),
                ("attempts", "many")
            ])
            .contains("`attempts` = \"many\" is not a count")
        );
        let long = "9".repeat(10_000);
        let Some(Ok(notice)) = ConnectorNotice::from_log(
            "m",
            &fields(&[("notice", "order-recovered"), ("order", &long)]),
        ) else {
            panic!("a long id is cut, not refused");
        };
        assert!(notice.order().len() <= MAX_NOTICE_ID + "…".len());
    }

    #[test]
    fn debug_output_redacts_secret_settings() {
        let config = InstanceConfig::new("loja")
            .setting("url", "https://x")
            .secret("token", "s3cr3t");
        let text = format!("{config:?}");
        assert!(!text.contains("s3cr3t"), "{text}");
        assert!(
            text.contains("https://x") && text.contains("<redacted>"),
            "{text}"
        );
    }
}
