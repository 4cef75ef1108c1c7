//! `[channels.<id>]`: the ways of reaching customers, each a sender plugin
//! instance with its pacing (interval, daily cap, warm-up), retries and
//! provider-side template mappings, and the channel a notification falls back
//! to when the recipient cannot be reached on it. Its types, its defaults and
//! bounds, and how it is read.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use figment::value::Value;
use jiff::SignedDuration;
use jiff::civil::Time;
use serde::Serialize;

use super::daemon::DaemonConfig;
use super::notifications::notification_kind;
use super::plugins::{PluginDefaults, SandboxConfig, plugin_name, read_sandbox};
use super::reader::{
    POSITIVE, Reader, Table, field, id_tables, optional, optional_section, required, time_of_day,
};
use super::secret::{Settings, read_settings};
use super::values::{
    format_duration, serialize_duration, serialize_optional_duration, serialize_time,
};
use crate::model::NotificationKind;

/// Default `channels.<id>.daily_reset`: 21:00 local, which is 00:00 UTC in São
/// Paulo, when providers such as Notificações Inteligentes reset their counts.
pub const DEFAULT_DAILY_RESET: Time = Time::constant(21, 0, 0, 0);
/// Default `channels.<id>.in_flight`: sends under way at once on a channel
/// without pacing. One, as before `in_flight` existed: messages of different
/// orders then leave in their due order; an operator who wants throughput
/// over that order raises it (docs/channels.md).
pub const DEFAULT_IN_FLIGHT: u32 = 1;
/// Most `in_flight` a channel may ask for: each send holds a plugin
/// instance and a blocking thread while it waits on the provider.
pub const MAX_IN_FLIGHT: u32 = 32;

/// Default `channels.<id>.max_attempts`: attempts before a job is dead-lettered.
/// The one default of every job's attempt budget (the poller and the retry
/// policy refer to it).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// Default `channels.<id>.retry_base`: the first retry delay (doubles per attempt).
pub const DEFAULT_RETRY_BASE: SignedDuration = SignedDuration::from_secs(30);
/// Default `channels.<id>.retry_max`: the longest retry delay.
pub const DEFAULT_RETRY_MAX: SignedDuration = SignedDuration::from_hours(1);
/// Default `channels.<id>.templates.<kind>.language`.
pub const DEFAULT_TEMPLATE_LANGUAGE: &str = "pt_BR";
/// Longest `min_interval` of a channel: more would allow fewer than 24 sends a day.
pub const MAX_MIN_INTERVAL: SignedDuration = SignedDuration::from_hours(1);

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
    #[serde(serialize_with = "serialize_optional_duration")]
    pub min_interval: Option<SignedDuration>,
    /// Maximum sends per day; `None`: unlimited (or the plugin's default).
    pub daily_cap: Option<u32>,
    /// Local time at which the daily cap resets. Default [`DEFAULT_DAILY_RESET`].
    #[serde(serialize_with = "serialize_time")]
    pub daily_reset: Time,
    /// Ramp-up of the daily cap for a fresh number.
    pub warmup: Option<Warmup>,
    /// Sends under way at once when the channel has no pacing (no
    /// `min_interval`, its sender's default included, and no daily cap);
    /// a paced channel sends one at a time whatever this says. Default
    /// [`DEFAULT_IN_FLIGHT`].
    pub in_flight: u32,
    /// Attempts before a job is dead-lettered. Default [`DEFAULT_MAX_ATTEMPTS`].
    pub max_attempts: u32,
    /// First retry delay (doubles per attempt). Default [`DEFAULT_RETRY_BASE`].
    #[serde(serialize_with = "serialize_duration")]
    pub retry_base: SignedDuration,
    /// Longest retry delay. Default [`DEFAULT_RETRY_MAX`].
    #[serde(serialize_with = "serialize_duration")]
    pub retry_max: SignedDuration,
    /// The channel that gets the notification instead when this channel's
    /// sender says the recipient cannot be reached here (not on WhatsApp,
    /// not a mobile number…). `None`: such a job is dead-lettered. Checked
    /// across channels by `config::root` (known, not itself, no cycle).
    pub fallback: Option<String>,
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
    /// Template language code. Default [`DEFAULT_TEMPLATE_LANGUAGE`].
    pub language: String,
    /// Positional parameters, each a template expression (e.g. `{{ customer.first_name }}`).
    pub parameters: Vec<String>,
    /// Named parameters, each a template expression.
    pub named: BTreeMap<String, String>,
}

/// Read `[channels]`: every `[channels.<id>]` table, by id.
pub(crate) fn read_channels(
    r: &mut Reader<'_>,
    t: Table,
    daemon: &DaemonConfig,
    plugins: &PluginDefaults,
) -> BTreeMap<String, ChannelConfig> {
    let mut channels = BTreeMap::new();
    for (id, mut t) in id_tables(r, t, "channel") {
        let plugin = required(
            r,
            &mut t,
            "plugin",
            r#"the sender plugin name, e.g. plugin = "whatsapp-cloud""#,
            plugin_name,
        );
        let explicit_path = optional(r, &mut t, "plugin_path", Reader::path);
        let description = optional(r, &mut t, "description", Reader::string);
        let min_interval = optional(r, &mut t, "min_interval", |r, p, v| {
            r.duration_range(p, v, SignedDuration::ZERO, MAX_MIN_INTERVAL)
        });
        let daily_cap = optional(r, &mut t, "daily_cap", |r, p, v| r.u32_min(p, v, 1));
        let daily_reset = field(
            r,
            &mut t,
            "daily_reset",
            || DEFAULT_DAILY_RESET,
            time_of_day,
        );
        let warmup = optional_section(r, &mut t, "warmup").and_then(|w| read_warmup(r, w));
        let in_flight = field(
            r,
            &mut t,
            "in_flight",
            || DEFAULT_IN_FLIGHT,
            |r, p, v| {
                r.integer(p, v, 1, u64::from(MAX_IN_FLIGHT))
                    .and_then(|n| u32::try_from(n).ok())
            },
        );
        let max_attempts = field(
            r,
            &mut t,
            "max_attempts",
            || DEFAULT_MAX_ATTEMPTS,
            |r, p, v| r.u32_min(p, v, 1),
        );
        let retry_base_entry = t.take("retry_base");
        let retry_base = retry_base_entry
            .clone()
            .and_then(|(p, v)| r.duration(&p, v, POSITIVE))
            .unwrap_or(DEFAULT_RETRY_BASE);
        let retry_max_entry = t.take("retry_max");
        let retry_max = retry_max_entry
            .clone()
            .and_then(|(p, v)| r.duration(&p, v, POSITIVE))
            .unwrap_or(DEFAULT_RETRY_MAX);
        if retry_max < retry_base {
            let (path, value) = retry_max_entry.or(retry_base_entry).unwrap_or_else(|| {
                (
                    t.path.key("retry_max"),
                    Value::from(format_duration(DEFAULT_RETRY_MAX)),
                )
            });
            r.error(
                &path,
                &value,
                format!(
                    "retry_max ({}) is shorter than retry_base ({})",
                    format_duration(retry_max),
                    format_duration(retry_base)
                ),
            );
        }
        let fallback = optional(r, &mut t, "fallback", Reader::nonempty_string);
        let templates = optional_section(r, &mut t, "templates")
            .map(|tt| read_template_mappings(r, tt))
            .unwrap_or_default();
        let sandbox_table = optional_section(r, &mut t, "sandbox");
        let sandbox = read_sandbox(r, sandbox_table, plugins);
        let settings = optional_section(r, &mut t, "settings")
            .map(|st| read_settings(r, st))
            .unwrap_or_default();
        r.finish(t);
        let plugin = plugin.unwrap_or_default();
        let plugin_path =
            explicit_path.unwrap_or_else(|| daemon.plugin_dir.join(format!("{plugin}.wasm")));
        channels.insert(
            id.clone(),
            ChannelConfig {
                id,
                plugin,
                plugin_path,
                description,
                min_interval,
                daily_cap,
                daily_reset,
                warmup,
                in_flight,
                max_attempts,
                retry_base,
                retry_max,
                fallback,
                templates,
                sandbox,
                settings,
            },
        );
    }
    channels
}

/// The fallback chain of `channel`: its `fallback`, that channel's
/// `fallback`, and so on, stopping before a channel already met (a cycle,
/// which validation rejects) or an unknown one.
pub fn fallback_chain<'a>(
    channels: &'a BTreeMap<String, ChannelConfig>,
    channel: &str,
) -> Vec<&'a str> {
    let mut chain: Vec<&'a str> = Vec::new();
    let mut current = channels.get(channel);
    while let Some(next) = current.and_then(|c| c.fallback.as_deref()) {
        match channels.get_key_value(next) {
            Some((id, config)) if id != channel && !chain.contains(&id.as_str()) => {
                chain.push(id.as_str());
                current = Some(config);
            }
            _ => break,
        }
    }
    chain
}

/// `used` plus every channel on their fallback chains: the channels that may
/// have to deliver (a fallback-only channel needs its dispatcher too).
pub fn with_fallbacks<'a>(
    channels: &'a BTreeMap<String, ChannelConfig>,
    used: impl IntoIterator<Item = &'a str>,
) -> BTreeSet<&'a str> {
    let mut all = BTreeSet::new();
    for channel in used {
        if let Some((id, _)) = channels.get_key_value(channel) {
            all.insert(id.as_str());
            all.extend(fallback_chain(channels, channel));
        }
    }
    all
}

fn read_warmup(r: &mut Reader<'_>, mut t: Table) -> Option<Warmup> {
    let start = required(
        r,
        &mut t,
        "start",
        "sends allowed on the first day, e.g. start = 50",
        |r, p, v| r.u32_min(p, v, 1),
    );
    let step = required(
        r,
        &mut t,
        "step",
        "additional sends per following day, e.g. step = 50",
        |r, p, v| r.u32_min(p, v, 0),
    );
    r.finish(t);
    Some(Warmup {
        start: start?,
        step: step?,
    })
}

fn read_template_mappings(
    r: &mut Reader<'_>,
    mut t: Table,
) -> BTreeMap<NotificationKind, TemplateMapping> {
    let mut out = BTreeMap::new();
    for (name, path, value) in t.drain() {
        let Some(kind) = notification_kind(r, &path, &name, None) else {
            continue;
        };
        let Some(mut mt) = r.table(path, value) else {
            continue;
        };
        let template_name = required(
            r,
            &mut mt,
            "name",
            "the provider's approved template name",
            Reader::nonempty_string,
        );
        let language = field(
            r,
            &mut mt,
            "language",
            || DEFAULT_TEMPLATE_LANGUAGE.to_owned(),
            Reader::nonempty_string,
        );
        let parameters = field(r, &mut mt, "parameters", Vec::new, Reader::string_list);
        let named = optional_section(r, &mut mt, "named")
            .map(|mut nt| {
                let mut named = BTreeMap::new();
                for (key, p, v) in nt.drain() {
                    if let Some(expr) = r.string(&p, v) {
                        named.insert(key, expr);
                    }
                }
                r.finish(nt);
                named
            })
            .unwrap_or_default();
        r.finish(mt);
        if let Some(name) = template_name {
            out.insert(
                kind,
                TemplateMapping {
                    name,
                    language,
                    parameters,
                    named,
                },
            );
        }
    }
    r.finish(t);
    out
}
