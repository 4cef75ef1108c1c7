//! The typed configuration, with every default resolved.
//!
//! Everything here is produced by [`crate::config::load`]; nothing else should
//! construct it except tests. `Debug` and `Serialize` never show secrets.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use jiff::civil::Time;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::{Serialize, Serializer};

use super::error::{ConfigError, Origin};
use super::secret::Settings;
use super::values::{format_duration, format_time};
use crate::model::NotificationKind;

/// The whole configuration.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Config {
    /// `[daemon]`: process-wide settings.
    pub daemon: DaemonConfig,
    /// `[plugins]`: sandbox defaults for every plugin instance.
    pub plugins: PluginDefaults,
    /// `[stores.<id>]`, by id.
    pub stores: BTreeMap<String, StoreConfig>,
    /// `[channels.<id>]`, by id.
    pub channels: BTreeMap<String, ChannelConfig>,
    /// `[notifications.<kind>]` for every kind: configured ones and defaults for the rest.
    pub notifications: BTreeMap<NotificationKind, NotificationConfig>,
    /// `[checklist]`: readiness-check thresholds.
    pub checklist: ChecklistConfig,
    #[serde(skip)]
    pub(crate) source_path: PathBuf,
    #[serde(skip)]
    pub(crate) warnings: Vec<ConfigError>,
    /// Where each key was written, for problems found after loading (plugins,
    /// templates): see [`Config::origin_of`].
    #[serde(skip)]
    pub(crate) locations: BTreeMap<String, Origin>,
}

impl Config {
    /// The configuration file this was loaded from (absolute).
    pub fn source_path(&self) -> &Path {
        &self.source_path
    }

    /// Problems that did not make the configuration invalid (e.g. a channel no store uses).
    pub fn warnings(&self) -> &[ConfigError] {
        &self.warnings
    }

    /// The settings of notification `kind` (every kind has an entry).
    pub fn notification(&self, kind: NotificationKind) -> &NotificationConfig {
        self.notifications
            .get(&kind)
            .unwrap_or(&DEFAULT_NOTIFICATION)
    }

    /// Where the key at `key_path` (`stores.loja1.recognition.pedido_pago`) was
    /// written: its file and line, or the variable that set it. An unwritten key
    /// (a default) gets the position of its nearest written parent table, else
    /// the file without a line.
    pub fn origin_of(&self, key_path: &str) -> Origin {
        let mut key = key_path;
        loop {
            if let Some(origin) = self.locations.get(key) {
                return origin.clone();
            }
            match key.rfind(['.', '[']) {
                Some(cut) => key = &key[..cut],
                None => {
                    return Origin::File {
                        path: self.source_path.clone(),
                        position: None,
                    };
                }
            }
        }
    }

    /// Stores with `enabled = true`.
    pub fn enabled_stores(&self) -> impl Iterator<Item = &StoreConfig> {
        self.stores.values().filter(|s| s.enabled)
    }
}

static DEFAULT_NOTIFICATION: NotificationConfig = NotificationConfig {
    enabled: false,
    template: None,
    channels: BTreeMap::new(),
    delay: SignedDuration::ZERO,
    expiry: SignedDuration::from_hours(24),
    quiet_hours: QuietHoursPolicy::Defer,
    max_attempts: None,
};

/// `[daemon]`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DaemonConfig {
    /// Durable state (the redb file, the instance lock). Default `/var/lib/arauto`.
    pub state_dir: PathBuf,
    /// Disposable data (compiled plugins). Default `/var/cache/arauto`.
    pub cache_dir: PathBuf,
    /// Where `<name>.wasm` plugins are looked up.
    pub plugin_dir: PathBuf,
    /// The control socket the CLI talks to. Default `/run/arauto/control.sock`.
    pub control_socket: PathBuf,
    /// How long in-flight work may take to finish on SIGTERM. Default 30s.
    #[serde(serialize_with = "ser_duration")]
    pub shutdown_timeout: SignedDuration,
    /// Local time zone for quiet hours and daily resets. Default `America/Sao_Paulo`.
    #[serde(serialize_with = "ser_tz")]
    pub timezone: TimeZone,
    /// Where to serve Prometheus metrics, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// Allow `metrics_listen` on a non-loopback address.
    pub metrics_allow_remote: bool,
    /// Log filter (`info`, `debug`, `arauto=debug,info`…); `RUST_LOG` overrides it.
    pub log_level: String,
    /// How long delivery history is kept. Default 90d.
    #[serde(serialize_with = "ser_duration")]
    pub history_retention: SignedDuration,
}

/// `[plugins]`: sandbox defaults.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PluginDefaults {
    /// Linear memory cap per plugin instance. Default 64 MiB.
    pub memory_limit: ByteSize,
    /// Wall-clock limit of one plugin call. Default 30s.
    #[serde(serialize_with = "ser_duration")]
    pub call_timeout: SignedDuration,
    /// Largest HTTP response body a plugin may receive. Default 4 MiB.
    pub max_response_bytes: ByteSize,
}

/// The sandbox of one plugin instance (`[stores.<id>.sandbox]`, `[channels.<id>.sandbox]`),
/// with `[plugins]` defaults applied.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SandboxConfig {
    /// Hosts the plugin may call (`https://host[:port]`); `None`: the plugin's own defaults.
    pub allowed_hosts: Option<Vec<String>>,
    /// Allow requests to private, loopback and link-local addresses (off by default).
    pub allow_private_addresses: bool,
    /// Outgoing HTTP request budget per minute, if limited.
    pub requests_per_minute: Option<NonZeroU32>,
    /// Wall-clock limit of one call.
    #[serde(serialize_with = "ser_duration")]
    pub call_timeout: SignedDuration,
    /// Linear memory cap.
    pub memory_limit: ByteSize,
    /// Largest HTTP response body.
    pub max_response_bytes: ByteSize,
}

/// `[stores.<id>]`: one shop to watch.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoreConfig {
    /// The id (the table name), used in logs, metrics and job keys.
    pub id: String,
    /// Free text for humans.
    pub description: Option<String>,
    /// Connector plugin name, e.g. `loja-integrada`.
    pub platform: String,
    /// The connector's `.wasm`: `plugin` if set, else `<plugin_dir>/<platform>.wasm`.
    pub plugin_path: PathBuf,
    /// Time between polls. Default 5m.
    #[serde(serialize_with = "ser_duration")]
    pub poll_interval: SignedDuration,
    /// A sweep stops after this many pages and continues from there at the
    /// next poll (a connector that always says "more pages" cannot spin). Default 1000.
    pub max_pages_per_sweep: u32,
    /// Channel ids this store notifies through, in order of preference.
    pub channels: Vec<String>,
    /// The store's time zone (`timezone` here, else `daemon.timezone`).
    #[serde(serialize_with = "ser_tz")]
    pub timezone: TimeZone,
    /// Local hours in which no message is sent.
    pub quiet_hours: Option<QuietHours>,
    /// Orders last changed before this instant never notify; `None`: when the store
    /// was first added (recorded in the state database).
    pub first_sync_cutoff: Option<Timestamp>,
    /// Disabled stores are validated but not polled.
    pub enabled: bool,
    /// Overrides of the connector's status → notification mapping, by status code.
    pub recognition: BTreeMap<String, Recognition>,
    /// The connector's sandbox.
    pub sandbox: SandboxConfig,
    /// The connector's `settings`, secrets resolved.
    pub settings: Settings,
}

/// What a platform status code notifies (a `[stores.<id>.recognition]` entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recognition {
    /// Send this notification.
    Notify(NotificationKind),
    /// Notify nobody (`"off"`).
    Off,
}

impl Serialize for Recognition {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Notify(kind) => serializer.serialize_str(kind.as_str()),
            Self::Off => serializer.serialize_str("off"),
        }
    }
}

/// A daily window in local time, possibly across midnight (`21:00`–`08:00`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuietHours {
    /// First quiet minute.
    pub start: Time,
    /// First minute when sending may resume.
    pub end: Time,
}

impl QuietHours {
    /// Whether local time `t` falls inside the window.
    pub fn contains(&self, t: Time) -> bool {
        if self.start <= self.end {
            self.start <= t && t < self.end
        } else {
            t >= self.start || t < self.end
        }
    }
}

impl Serialize for QuietHours {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("QuietHours", 2)?;
        s.serialize_field("start", &format_time(self.start))?;
        s.serialize_field("end", &format_time(self.end))?;
        s.end()
    }
}

/// `[channels.<id>]`: one way of reaching customers (a sender plugin instance).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChannelConfig {
    /// The id (the table name).
    pub id: String,
    /// Sender plugin name, e.g. `whatsapp-cloud`.
    pub plugin: String,
    /// The sender's `.wasm`: `plugin_path` if set, else `<plugin_dir>/<plugin>.wasm`.
    pub plugin_path: PathBuf,
    /// Free text for humans.
    pub description: Option<String>,
    /// Minimum time between two sends; `None`: the plugin's default.
    #[serde(serialize_with = "ser_opt_duration")]
    pub min_interval: Option<SignedDuration>,
    /// Maximum sends per day; `None`: unlimited (or the plugin's default).
    pub daily_cap: Option<u32>,
    /// Local time at which the daily cap resets. Default 21:00 (00:00 UTC in São Paulo).
    #[serde(serialize_with = "ser_time")]
    pub daily_reset: Time,
    /// Ramp-up of the daily cap for a fresh number.
    pub warmup: Option<Warmup>,
    /// Attempts before a job is dead-lettered. Default 5.
    pub max_attempts: u32,
    /// First retry delay (doubles per attempt). Default 30s.
    #[serde(serialize_with = "ser_duration")]
    pub retry_base: SignedDuration,
    /// Longest retry delay. Default 1h.
    #[serde(serialize_with = "ser_duration")]
    pub retry_max: SignedDuration,
    /// Provider-side template mappings (e.g. WhatsApp approved templates), by kind.
    pub templates: BTreeMap<NotificationKind, TemplateMapping>,
    /// The sender's sandbox.
    pub sandbox: SandboxConfig,
    /// The sender's `settings`, secrets resolved.
    pub settings: Settings,
}

/// Daily-cap ramp-up: day 1 allows `start` sends, each later day `step` more.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Warmup {
    /// Sends allowed on the first day.
    pub start: u32,
    /// Additional sends allowed per following day.
    pub step: u32,
}

impl Warmup {
    /// Sends allowed on day `day` of the warm-up (0 = first day).
    pub fn limit_on_day(&self, day: u32) -> u32 {
        self.start.saturating_add(self.step.saturating_mul(day))
    }
}

/// `[channels.<id>.templates.<kind>]`: how a notification maps onto a provider template.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TemplateMapping {
    /// The provider's template name.
    pub name: String,
    /// Template language code. Default `pt_BR`.
    pub language: String,
    /// Positional parameters, each a template expression (e.g. `{{ customer.first_name }}`).
    pub parameters: Vec<String>,
    /// Named parameters, each a template expression.
    pub named: BTreeMap<String, String>,
}

/// `[notifications.<kind>]`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NotificationConfig {
    /// Whether this kind is sent at all. Default: on, except the reserved kinds.
    pub enabled: bool,
    /// The message text for every channel; `None`: the built-in pt-BR default.
    pub template: Option<TemplateText>,
    /// Per-channel text overrides, by channel id.
    pub channels: BTreeMap<String, ChannelTemplate>,
    /// Wait this long after the event before sending. Default 0s.
    #[serde(serialize_with = "ser_duration")]
    pub delay: SignedDuration,
    /// Give up if not sent within this time after the event. Default 24h.
    #[serde(serialize_with = "ser_duration")]
    pub expiry: SignedDuration,
    /// What quiet hours do to this kind. Default `defer`.
    pub quiet_hours: QuietHoursPolicy,
    /// Overrides the channel's `max_attempts`.
    pub max_attempts: Option<u32>,
}

impl NotificationConfig {
    /// The template for `channel`: its override, else the kind's template.
    pub fn template_for(&self, channel: &str) -> Option<&TemplateText> {
        self.channels
            .get(channel)
            .and_then(|c| c.template.as_ref())
            .or(self.template.as_ref())
    }
}

/// `[notifications.<kind>.channels.<channel>]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChannelTemplate {
    /// The text for this channel.
    pub template: Option<TemplateText>,
}

/// A message template's source text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TemplateText {
    /// The template (minijinja syntax).
    pub text: String,
    /// The file it was read from (`template_file`), or `None` when inline.
    pub file: Option<PathBuf>,
}

/// What happens to a message due inside quiet hours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum QuietHoursPolicy {
    /// Hold it until the quiet hours end.
    Defer,
    /// Send anyway.
    Ignore,
}

/// `[checklist]`: thresholds of the readiness checklist.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChecklistConfig {
    /// Highest acceptable share of invalid events (0–1). Default 0.2.
    pub max_invalid_event_share: f64,
    /// Most queued jobs before the queue counts as backlogged. Default 500.
    pub max_backlog: u64,
    /// Most events waiting for a decision. Default 200.
    pub max_events_pending: u64,
    /// A store is stale when its last poll is older than this many poll intervals. Default 3.
    pub stale_poll_factor: f64,
}

/// A size in bytes, written like `"64MiB"`, `"4MB"` or `1048576`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// `n` mebibytes.
    pub const fn mib(n: u64) -> Self {
        Self(n * 1024 * 1024)
    }

    /// The size in bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 3] = [
            ("GiB", 1024 * 1024 * 1024),
            ("MiB", 1024 * 1024),
            ("KiB", 1024),
        ];
        for (unit, size) in UNITS {
            if self.0 >= size && self.0.is_multiple_of(size) {
                return write!(f, "{}{unit}", self.0 / size);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

fn ser_duration<S: Serializer>(d: &SignedDuration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

fn ser_opt_duration<S: Serializer>(d: &Option<SignedDuration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&format_duration(*d)),
        None => s.serialize_none(),
    }
}

fn ser_time<S: Serializer>(t: &Time, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_time(*t))
}

fn ser_tz<S: Serializer>(tz: &TimeZone, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(tz.iana_name().unwrap_or("UTC"))
}
