//! The root of the file: [`Config`], the whole configuration with every
//! default resolved, read table by table (`[daemon]`, `[plugins]`,
//! `[channels]`, `[stores]`, `[notifications]`, `[checklist]`, each in its own
//! file), and the checks across tables (store → channel references, unused
//! channels, shutdown timeout against call timeout).
//!
//! Everything here is produced by [`load`](super::load); nothing else should
//! construct it except tests. `Debug` and `Serialize` never show secrets.
//! `config/arauto.toml` documents the same keys for humans; a test loads it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use figment::value::{Dict, Value};
use serde::{Serialize, Serializer};

use super::channels::{ChannelConfig, read_channels};
use super::checklist::{ChecklistConfig, read_checklist};
use super::cluster::{ClusterConfig, read_cluster};
use super::daemon::{DaemonConfig, read_daemon};
use super::error::{ConfigError, Origin};
use super::locations::Locations;
use super::notifications::{NotificationConfig, Notifications, read_notifications};
use super::plugins::{PluginDefaults, read_plugin_defaults};
use super::reader::{Reader, optional_section, section};
use super::source::KeyPath;
use super::stores::{StoreConfig, read_stores};
use super::values::{did_you_mean, format_duration};
use crate::model::NotificationKind;

/// The whole configuration.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Config {
    /// `[daemon]`: process-wide settings.
    pub daemon: DaemonConfig,
    /// `[plugins]`: sandbox defaults for every plugin instance.
    pub plugins: PluginDefaults,
    /// `[stores.<id>]`, by id. Shared: each store's running parts
    /// (`state::StoreRuntime`) hold the same `Arc`, so a store's
    /// configuration is in memory once however many parts use it.
    #[serde(serialize_with = "serialize_shared_stores")]
    pub stores: BTreeMap<String, Arc<StoreConfig>>,
    /// `[channels.<id>]`, by id.
    pub channels: BTreeMap<String, ChannelConfig>,
    /// `[notifications.<kind>]` for every kind: configured ones and defaults for the rest.
    pub notifications: BTreeMap<NotificationKind, NotificationConfig>,
    /// `[checklist]`: readiness-check thresholds.
    pub checklist: ChecklistConfig,
    /// `[cluster]`: the nodes share stores and channels over NATS JetStream;
    /// `None` (the table is absent): one node with its redb file.
    pub cluster: Option<ClusterConfig>,
    #[serde(skip)]
    pub(crate) source_path: PathBuf,
    #[serde(skip)]
    pub(crate) warnings: Vec<ConfigError>,
    /// Where each key was written, for problems found after loading (plugins,
    /// templates): see [`Config::origin_of`]. Emptied by
    /// [`Config::forget_locations`] once those checks have passed.
    #[serde(skip)]
    pub(crate) locations: Locations,
}

/// What [`Config::notification`] answers for a kind missing from the map
/// (never after [`load`](super::load), which fills in every kind).
static UNLISTED_NOTIFICATION: NotificationConfig = NotificationConfig::defaults(false);

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
            .unwrap_or(&UNLISTED_NOTIFICATION)
    }

    /// Where the key at `key_path` (`stores.loja1.recognition.pedido_pago`) was
    /// written: its file and line, or the variable that set it. An unwritten key
    /// (a default) gets the position of its nearest written parent table, else
    /// the file without a line.
    pub fn origin_of(&self, key_path: &str) -> Origin {
        let mut key = key_path;
        loop {
            if let Some(origin) = self.locations.get(key, &self.source_path) {
                return origin;
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

    /// Drop the key positions [`Config::origin_of`] answers from: once the
    /// configuration has been checked against its plugins and templates
    /// (`state::build`), nothing asks any more, and on a 10,000-store file
    /// they are over 100,000 entries. `origin_of` then names the file only.
    pub fn forget_locations(&mut self) {
        self.locations = Locations::default();
    }

    /// Stores with `enabled = true`.
    pub fn enabled_stores(&self) -> impl Iterator<Item = &StoreConfig> {
        self.stores.values().map(Arc::as_ref).filter(|s| s.enabled)
    }
}

/// `stores` as a plain map of tables (serde's `Arc` support is behind its
/// `rc` feature, and the output is the same either way).
fn serialize_shared_stores<S: Serializer>(
    stores: &BTreeMap<String, Arc<StoreConfig>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_map(stores.iter().map(|(id, store)| (id, store.as_ref())))
}

/// Read the merged value tree into a [`Config`]: with errors recorded in `r`,
/// the values at fault hold their defaults.
pub(crate) fn read(r: &mut Reader<'_>, root: Dict, source_path: PathBuf) -> Option<Config> {
    let mut root = Reader::table_from_dict(KeyPath::root(), root);
    let table = section(r, &mut root, "daemon");
    let daemon = read_daemon(r, table);
    let table = section(r, &mut root, "plugins");
    let plugins = read_plugin_defaults(r, table);
    let table = section(r, &mut root, "channels");
    let channels = read_channels(r, table, &daemon, &plugins);
    let table = section(r, &mut root, "stores");
    let stores = read_stores(r, table, &daemon, &plugins);
    let table = section(r, &mut root, "notifications");
    let notifications = read_notifications(r, table);
    let table = section(r, &mut root, "checklist");
    let checklist = read_checklist(r, table);
    let cluster =
        optional_section(r, &mut root, "cluster").and_then(|table| read_cluster(r, table));
    r.finish(root);

    check_references(r, &stores, &channels, &notifications);
    if daemon.shutdown_timeout <= plugins.call_timeout {
        let path = KeyPath::root().key("daemon").key("shutdown_timeout");
        r.warn(
            &path,
            None,
            format!(
                "is not longer than plugins.call_timeout ({}): a send in flight at shutdown may be abandoned and go out again after the restart",
                format_duration(plugins.call_timeout)
            ),
        );
    }

    // Built even when errors were recorded (bad values replaced by defaults):
    // `arauto validate` checks what it can of it against the plugins too.
    let notifications = notifications
        .into_iter()
        .map(|(k, (_, v))| (k, v))
        .collect();
    Some(Config {
        daemon,
        plugins,
        stores,
        channels,
        notifications,
        checklist,
        cluster,
        source_path,
        warnings: std::mem::take(&mut r.warnings),
        locations: Locations::default(),
    })
}

/// `[channels.<id>] fallback`: a defined channel, not the channel itself, and
/// no chain that comes back to where it started (each cycle named once, at
/// the `fallback` key of its first channel in id order).
fn check_fallbacks(
    r: &mut Reader<'_>,
    channels: &BTreeMap<String, ChannelConfig>,
    unknown_channel: &dyn Fn(&str) -> String,
) {
    let key = |id: &str| KeyPath::root().key("channels").key(id).key("fallback");
    let mut cycles_named = BTreeSet::new();
    for (id, channel) in channels {
        let Some(fallback) = channel.fallback.as_deref() else {
            continue;
        };
        let value = Value::from(fallback.to_owned());
        if fallback == id {
            r.error(
                &key(id),
                &value,
                "a channel cannot fall back to itself (name another channel, or remove the key)",
            );
            continue;
        }
        if !channels.contains_key(fallback) {
            r.error(&key(id), &value, unknown_channel(fallback));
            continue;
        }
        // Walk the chain; a channel met twice closes a cycle.
        let mut path = vec![id.as_str()];
        let mut next = Some(fallback);
        while let Some(current) = next {
            if let Some(start) = path.iter().position(|seen| *seen == current) {
                let cycle: Vec<&str> = path[start..].to_vec();
                let mut members: Vec<&str> = cycle.clone();
                members.sort_unstable();
                if path[start] == id.as_str() && cycles_named.insert(members) {
                    let mut shown = cycle.join(" → ");
                    shown.push_str(&format!(" → {current}"));
                    r.error(
                        &key(id),
                        &value,
                        format!(
                            "fallback cycle {shown}: a notification would go round forever; end the chain at a channel without `fallback`"
                        ),
                    );
                }
                break;
            }
            path.push(current);
            next = channels.get(current).and_then(|c| c.fallback.as_deref());
        }
    }
}

fn check_references(
    r: &mut Reader<'_>,
    stores: &BTreeMap<String, Arc<StoreConfig>>,
    channels: &BTreeMap<String, ChannelConfig>,
    notifications: &Notifications,
) {
    let defined = || channels.keys().map(String::as_str);
    let unknown_channel = |name: &str| {
        let mut message = format!("no channel {name:?} is defined");
        match did_you_mean(name, defined()) {
            Some(close) => message.push_str(&format!(" (did you mean {close:?}?)")),
            None if channels.is_empty() => message.push_str(" (there is no [channels.<id>] table)"),
            None => message.push_str(&format!(
                " (defined: {})",
                defined().collect::<Vec<_>>().join(", ")
            )),
        }
        message
    };
    let mut used = BTreeSet::new();
    for store in stores.values() {
        let list = KeyPath::root().key("stores").key(&store.id).key("channels");
        let mut seen = BTreeSet::new();
        for (i, channel) in store.channels.iter().enumerate() {
            let path = list.index(i);
            if !seen.insert(channel) {
                r.error(&path, &Value::from(channel.clone()), "listed twice");
            } else if !channels.contains_key(channel) {
                r.error(
                    &path,
                    &Value::from(channel.clone()),
                    unknown_channel(channel),
                );
            } else if store.enabled {
                used.insert(channel.clone());
            }
        }
    }
    for (kind, (path, notification)) in notifications {
        let Some(path) = path else { continue };
        for channel in notification.channels.keys() {
            if !channels.contains_key(channel) {
                let path = path.key("channels").key(channel);
                r.error_at(
                    &path,
                    format!(
                        "{} (in [notifications.{kind}.channels])",
                        unknown_channel(channel)
                    ),
                );
            }
        }
    }
    check_fallbacks(r, channels, &unknown_channel);
    // A channel only some used channel falls back to is used too.
    let used: BTreeSet<String> = super::channels::with_fallbacks(
        channels,
        used.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .into_iter()
    .map(str::to_owned)
    .collect();
    for id in channels.keys() {
        if !used.contains(id) {
            let path = KeyPath::root().key("channels").key(id);
            r.warn(&path, None, "no enabled store uses this channel (add it to a store's channels list or remove it)");
        }
    }
}
