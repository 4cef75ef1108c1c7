use serde::{Deserialize, Serialize};

use super::notification::NotificationKind;

/// Which world a plugin implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginKind {
    /// A platform connector (polls orders).
    Connector,
    /// A channel sender (delivers messages).
    Sender,
}

/// One key of a plugin's `settings` table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigKey {
    /// Key name as written in TOML.
    pub name: String,
    /// What the key is for.
    pub description: String,
    /// Startup fails when a required key is missing.
    pub required: bool,
    /// Secret values are redacted everywhere.
    pub secret: bool,
    /// Value used when the key is absent.
    pub default_value: Option<String>,
}

/// What a plugin says about itself (the `info` export).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginInfo {
    /// Stable identifier, e.g. `loja-integrada`.
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// Connector or sender.
    pub kind: PluginKind,
    /// One-line description.
    pub description: String,
    /// Settings the plugin accepts.
    pub config_keys: Vec<ConfigKey>,
    /// Hosts the plugin needs by default (`scheme://host[:port]`).
    pub default_hosts: Vec<String>,
}

/// One platform status and its default recognition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusEntry {
    /// Platform status code.
    pub code: String,
    /// Display name.
    pub name: String,
    /// Default notification for this status. `None`: notifies nobody by default.
    /// A kind outside arauto's vocabulary is dropped by the plugin host with a warning.
    pub notification: Option<NotificationKind>,
    /// Happy-path rank, 1 = earliest; 0 = off the happy path.
    pub happy_path_priority: u8,
    /// Cancelled/refunded-style end state.
    pub terminal: bool,
}

/// Whether a connector can produce some class of notification, and why not.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capability {
    /// Available on this platform.
    pub supported: bool,
    /// Explanation, mandatory when unsupported (shown by `validate` and `check`).
    pub reason: String,
}

/// What a connector's platform can provide.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Tracking codes on shipments.
    pub tracking_codes: Capability,
    /// Data for boleto reminders (barcode, due date, link).
    pub boleto_reminder: Capability,
    /// Data for PIX reminders (code, expiry).
    pub pix_reminder: Capability,
    /// Abandoned carts.
    pub abandoned_cart: Capability,
}

impl Capabilities {
    /// The capability a reserved notification kind needs, if any.
    pub fn for_kind(&self, kind: NotificationKind) -> Option<&Capability> {
        match kind {
            NotificationKind::BoletoReminder => Some(&self.boleto_reminder),
            NotificationKind::PixReminder => Some(&self.pix_reminder),
            NotificationKind::AbandonedCart => Some(&self.abandoned_cart),
            NotificationKind::TrackingUpdated => Some(&self.tracking_codes),
            _ => None,
        }
    }
}

/// What a connector says about itself and its platform.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectorInfo {
    /// Generic plugin information.
    pub plugin: PluginInfo,
    /// Platform identifier, e.g. `loja-integrada`.
    pub platform: String,
    /// The platform's status catalogue with default recognition.
    pub statuses: Vec<StatusEntry>,
    /// What the platform can provide.
    pub capabilities: Capabilities,
    /// The request budget the platform grants one store's credentials
    /// (requests per minute), used unless the store sets its own.
    pub requests_per_minute: Option<u32>,
    /// What the connector does with pushed webhooks.
    pub push: PushSupport,
    /// The settings that identify the shop account (contract 0.2's
    /// `account-keys`); `None` for 0.1 connectors, whose every secret setting
    /// counts (see `decide::identity`).
    pub account_keys: Option<Vec<String>>,
}

/// Whether a connector handles its platform's pushed webhooks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushSupport {
    /// It authenticates deliveries and names the orders to look at.
    pub verify: bool,
    /// It can subscribe and unsubscribe the platform's pushes.
    pub register: bool,
}

impl ConnectorInfo {
    /// The catalogue entry for a status code.
    pub fn status(&self, code: &str) -> Option<&StatusEntry> {
        self.statuses.iter().find(|s| s.code == code)
    }
}

/// Whom a sender delivers to, which decides what an order must carry
/// before the host hands the sender a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecipientNeed {
    /// The customer's mobile phone (WhatsApp gateways, SMS).
    CustomerPhone,
    /// The customer's e-mail address.
    CustomerEmail,
    /// The customer's chat-app id from the order.
    CustomerChatId,
    /// Nobody from the order: the channel has its own destination (a webhook
    /// URL, a staff chat). Every order is delivered.
    #[serde(rename = "none")]
    Nothing,
}

impl RecipientNeed {
    /// The name used in `plugins inspect`, logs and the WIT.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::CustomerPhone => "customer-phone",
            Self::CustomerEmail => "customer-email",
            Self::CustomerChatId => "customer-chat-id",
            Self::Nothing => "none",
        }
    }
}

/// Where a sender's declarations ([`SenderInfo`]) and a connector's request
/// budget come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeclaredBy {
    /// The plugin declared them itself (contract 0.2 and later).
    Plugin,
    /// A contract 0.1 plugin declares none: arauto's built-in table, keyed on
    /// the plugin's name, filled them in (deprecated).
    #[serde(rename = "name-table-0.1")]
    NameTable,
}

/// What a sender says about itself: its plugin info and whom it delivers to,
/// at what pace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SenderInfo {
    /// Generic plugin information.
    pub plugin: PluginInfo,
    /// Whom it delivers to.
    pub recipient: RecipientNeed,
    /// Default minimum time between two sends of one channel; the channel's
    /// `min_interval` overrides it.
    pub default_min_interval: jiff::SignedDuration,
    /// Default sends per day of one channel (`None`: no cap); the channel's
    /// `daily_cap` overrides it.
    pub default_daily_cap: Option<u32>,
    /// It passes the idempotency key on to a provider that drops repeats.
    pub idempotent: bool,
    /// Declared by the plugin, or filled in from the 0.1 name table.
    pub declared_by: DeclaredBy,
}
