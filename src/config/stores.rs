//! `[stores.<id>]`: the shops to watch, each through a connector plugin. Its
//! types (with quiet hours and recognition overrides), its defaults and
//! bounds, and how it is read.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use figment::value::Value;
use jiff::civil::Time;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::{Serialize, Serializer};

use super::daemon::DaemonConfig;
use super::notifications::notification_kind;
use super::plugins::{PluginDefaults, SandboxConfig, plugin_name, read_sandbox};
use super::reader::{
    POSITIVE, Reader, Table, field, id_tables, optional, optional_section, required, time_of_day,
    timezone,
};
use super::secret::{Settings, read_settings};
use super::source::KeyPath;
use super::values::{format_duration, format_time, serialize_duration, serialize_timezone};
use crate::model::NotificationKind;

/// Default `stores.<id>.poll_interval`.
pub const DEFAULT_POLL_INTERVAL: SignedDuration = SignedDuration::from_mins(5);
/// Default `stores.<id>.max_pages_per_sweep`.
pub const DEFAULT_MAX_PAGES_PER_SWEEP: u32 = 1000;
/// Default `stores.<id>.enabled`.
pub const DEFAULT_ENABLED: bool = true;

/// Shortest `poll_interval` for a platform on the internet. Platforms
/// rate-limit their APIs (Loja Integrada allows 100 requests a minute per
/// store); a store polled every few milliseconds is answered with 429s.
/// The host does not know per-platform limits, so one floor applies to all.
pub const MIN_POLL_INTERVAL: SignedDuration = SignedDuration::from_secs(30);
/// Shortest `poll_interval` for a platform on a private address
/// (`sandbox.allow_private_addresses = true`): a simulator or test rig, which
/// has no rate limit to respect.
pub const MIN_POLL_INTERVAL_PRIVATE: SignedDuration = SignedDuration::from_secs(1);
/// Longest `poll_interval`: a store polled less than daily is as good as off.
pub const MAX_POLL_INTERVAL: SignedDuration = SignedDuration::from_hours(24);

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
    /// Time between polls. Default [`DEFAULT_POLL_INTERVAL`].
    #[serde(serialize_with = "serialize_duration")]
    pub poll_interval: SignedDuration,
    /// A sweep stops after this many pages and continues from there at the
    /// next poll (a connector that always says "more pages" cannot spin).
    /// Default [`DEFAULT_MAX_PAGES_PER_SWEEP`].
    pub max_pages_per_sweep: u32,
    /// Channel ids this store notifies through, in order of preference.
    pub channels: Vec<String>,
    /// The store's time zone (`timezone` here, else `daemon.timezone`).
    #[serde(serialize_with = "serialize_timezone")]
    pub timezone: TimeZone,
    /// Local hours in which no message is sent.
    pub quiet_hours: Option<QuietHours>,
    /// Orders last changed before this instant never notify; `None`: when the store
    /// was first added (recorded in the state database).
    pub first_sync_cutoff: Option<Timestamp>,
    /// Disabled stores are validated but not polled. Default [`DEFAULT_ENABLED`].
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

/// How [`Recognition::Off`] is written.
const RECOGNITION_OFF: &str = "off";

impl Serialize for Recognition {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Notify(kind) => serializer.serialize_str(kind.as_str()),
            Self::Off => serializer.serialize_str(RECOGNITION_OFF),
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

/// Why a `first_sync_cutoff` is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(r#"expected an RFC 3339 timestamp with a UTC offset, like "2025-01-31T00:00:00-03:00""#)]
pub struct TimestampError;

/// Read `[stores]`: every `[stores.<id>]` table, by id.
pub(crate) fn read_stores(
    r: &mut Reader<'_>,
    t: Table,
    daemon: &DaemonConfig,
    plugins: &PluginDefaults,
) -> BTreeMap<String, Arc<StoreConfig>> {
    let mut stores = BTreeMap::new();
    for (id, mut t) in id_tables(r, t, "store") {
        let description = optional(r, &mut t, "description", Reader::string);
        let platform = required(
            r,
            &mut t,
            "platform",
            r#"the connector plugin name, e.g. platform = "loja-integrada""#,
            plugin_name,
        );
        let explicit_plugin = optional(r, &mut t, "plugin", Reader::path);
        let poll_interval_entry = t.take("poll_interval");
        let poll_interval = poll_interval_entry
            .clone()
            .and_then(|(p, v)| r.duration_range(&p, v, POSITIVE, MAX_POLL_INTERVAL))
            .unwrap_or(DEFAULT_POLL_INTERVAL);
        let max_pages_per_sweep = field(
            r,
            &mut t,
            "max_pages_per_sweep",
            || DEFAULT_MAX_PAGES_PER_SWEEP,
            |r, p, v| r.u32_min(p, v, 1),
        );
        let channels = field(r, &mut t, "channels", Vec::new, Reader::string_list);
        let timezone = field(r, &mut t, "timezone", || daemon.timezone.clone(), timezone);
        let quiet_hours =
            optional_section(r, &mut t, "quiet_hours").and_then(|q| read_quiet_hours(r, q));
        let first_sync_cutoff = optional(r, &mut t, "first_sync_cutoff", |r, p, v| {
            r.parsed(p, v, |s| s.parse::<Timestamp>().map_err(|_| TimestampError))
        });
        let enabled = field(r, &mut t, "enabled", || DEFAULT_ENABLED, Reader::boolean);
        let recognition = optional_section(r, &mut t, "recognition")
            .map(|rt| read_recognition(r, rt))
            .unwrap_or_default();
        let sandbox_table = optional_section(r, &mut t, "sandbox");
        let sandbox = read_sandbox(r, sandbox_table, plugins);
        if let Some((p, v)) = &poll_interval_entry {
            check_poll_floor(r, p, v, poll_interval, &sandbox);
        }
        let settings = optional_section(r, &mut t, "settings")
            .map(|st| read_settings(r, st))
            .unwrap_or_default();
        let path = t.path.clone();
        r.finish(t);

        if channels.is_empty() && enabled {
            r.warn(
                &path.key("channels"),
                None,
                "this store has no channels: its customers will not be notified",
            );
        }
        let platform = platform.unwrap_or_default();
        let plugin_path =
            explicit_plugin.unwrap_or_else(|| daemon.plugin_dir.join(format!("{platform}.wasm")));
        stores.insert(
            id.clone(),
            Arc::new(StoreConfig {
                id,
                description,
                platform,
                plugin_path,
                poll_interval,
                max_pages_per_sweep,
                channels,
                timezone,
                quiet_hours,
                first_sync_cutoff,
                enabled,
                recognition,
                sandbox,
                settings,
            }),
        );
    }
    stores
}

/// `poll_interval` must respect the platform's rate limit ([`MIN_POLL_INTERVAL`]);
/// only a platform on a private address may be polled faster.
fn check_poll_floor(
    r: &mut Reader<'_>,
    path: &KeyPath,
    value: &Value,
    interval: SignedDuration,
    sandbox: &SandboxConfig,
) {
    if sandbox.allow_private_addresses {
        if interval < MIN_POLL_INTERVAL_PRIVATE {
            r.error(
                path,
                value,
                format!(
                    "must be at least {}",
                    format_duration(MIN_POLL_INTERVAL_PRIVATE)
                ),
            );
        }
    } else if interval < MIN_POLL_INTERVAL {
        r.error(
            path,
            value,
            format!(
                "must be at least {}: platforms rate-limit their APIs (only a platform on a \
                 private address, with sandbox.allow_private_addresses = true, may be polled \
                 every {} or more)",
                format_duration(MIN_POLL_INTERVAL),
                format_duration(MIN_POLL_INTERVAL_PRIVATE)
            ),
        );
    }
}

fn read_quiet_hours(r: &mut Reader<'_>, mut t: Table) -> Option<QuietHours> {
    let start = required(
        r,
        &mut t,
        "start",
        r#"when quiet hours begin, e.g. start = "21:00""#,
        time_of_day,
    );
    let end = required(
        r,
        &mut t,
        "end",
        r#"when quiet hours end, e.g. end = "08:00""#,
        time_of_day,
    );
    let path = t.path.clone();
    r.finish(t);
    let (start, end) = (start?, end?);
    if start == end {
        r.error_at(
            &path,
            format!(
                "start and end are both {}: the window would be empty",
                format_time(start)
            ),
        );
        return None;
    }
    Some(QuietHours { start, end })
}

fn read_recognition(r: &mut Reader<'_>, mut t: Table) -> BTreeMap<String, Recognition> {
    let mut out = BTreeMap::new();
    for (code, path, value) in t.drain() {
        let Some(name) = r.string(&path, value.clone()) else {
            continue;
        };
        if name == RECOGNITION_OFF {
            out.insert(code, Recognition::Off);
        } else if let Some(kind) = notification_kind(r, &path, &name, Some(&value)) {
            out.insert(code, Recognition::Notify(kind));
        }
    }
    r.finish(t);
    out
}
