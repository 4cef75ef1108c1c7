//! The configuration schema: which keys each table has, their types, defaults
//! and the checks across tables (store → channel references, unused channels).
//! `config/arauto.toml` documents the same keys for humans; a test loads it.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use figment::value::{Dict, Value};
use jiff::civil::Time;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use super::reader::{Reader, Table};
use super::secret::{Secret, Setting, Settings, looks_secret};
use super::source::KeyPath;
use super::types::*;
use super::values::{check_id, did_you_mean, parse_time, parse_timezone};
use crate::model::NotificationKind;

/// Default configuration file.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/arauto/arauto.toml";
/// Default `daemon.state_dir`.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/arauto";
/// Default `daemon.cache_dir`.
pub const DEFAULT_CACHE_DIR: &str = "/var/cache/arauto";
/// Default `daemon.control_socket`.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/arauto/control.sock";
/// Default `daemon.timezone`.
pub const DEFAULT_TIMEZONE: &str = "America/Sao_Paulo";
/// Default `daemon.shutdown_timeout`: longer than the default plugin call
/// timeout (30s), so a send in flight at SIGTERM can finish instead of being
/// abandoned and sent again at the next start.
pub const DEFAULT_SHUTDOWN_TIMEOUT: SignedDuration = SignedDuration::from_secs(40);
/// Default `stores.<id>.max_pages_per_sweep`.
pub const DEFAULT_MAX_PAGES_PER_SWEEP: u32 = 1000;

/// Default `daemon.plugin_dir`: the repository's `target/plugins` in debug builds
/// (what `scripts/build-plugins.sh` fills), the installed location in release
/// builds (`$ARAUTO_DEFAULT_PLUGIN_DIR` at build time, which `make` sets from
/// `PREFIX`, else `/usr/lib/arauto/plugins`).
pub fn default_plugin_dir() -> PathBuf {
    if cfg!(debug_assertions) {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/plugins"))
    } else {
        PathBuf::from(option_env!("ARAUTO_DEFAULT_PLUGIN_DIR").unwrap_or("/usr/lib/arauto/plugins"))
    }
}

const NONZERO: SignedDuration = SignedDuration::from_nanos(1);

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
/// Longest `min_interval` of a channel: more would allow fewer than 24 sends a day.
pub const MAX_MIN_INTERVAL: SignedDuration = SignedDuration::from_hours(1);
/// Longest plugin `call_timeout`: one poll page or one send.
pub const MAX_CALL_TIMEOUT: SignedDuration = SignedDuration::from_mins(10);
/// Most linear memory one plugin instance may be given.
pub const MAX_MEMORY_LIMIT: ByteSize = ByteSize::mib(4 * 1024);
/// Largest secret file (`<key>_file`): credentials are short; /dev/zero is not one.
const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;
/// Largest template file (`template_file`).
const MAX_TEMPLATE_FILE_BYTES: u64 = 1024 * 1024;
/// Largest accepted `max_response_bytes` (one HTTP response to a plugin).
pub const MAX_RESPONSE_BYTES: ByteSize = ByteSize::mib(256);

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
    r.finish(root);

    check_references(r, &stores, &channels, &notifications);
    if daemon.shutdown_timeout <= plugins.call_timeout {
        let path = KeyPath::root().key("daemon").key("shutdown_timeout");
        r.warn(
            &path,
            None,
            format!(
                "is not longer than plugins.call_timeout ({}): a send in flight at shutdown may be abandoned and go out again after the restart",
                super::values::format_duration(plugins.call_timeout)
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
        source_path,
        warnings: std::mem::take(&mut r.warnings),
        locations: BTreeMap::new(),
    })
}

/// Take sub-table `key` of `parent` (an empty one when absent).
fn section(r: &mut Reader<'_>, parent: &mut Table, key: &'static str) -> Table {
    match parent.take(key) {
        Some((path, value)) => r
            .table(path.clone(), value)
            .unwrap_or_else(|| Reader::empty_table(path)),
        None => Reader::empty_table(parent.path.key(key)),
    }
}

/// Take optional sub-table `key` of `parent`.
fn optional_section(r: &mut Reader<'_>, parent: &mut Table, key: &'static str) -> Option<Table> {
    let (path, value) = parent.take(key)?;
    r.table(path, value)
}

/// Read `key` with `convert`, or use `default` when absent or invalid (the error is recorded).
fn field<'a, T>(
    r: &mut Reader<'a>,
    t: &mut Table,
    key: &'static str,
    default: impl FnOnce() -> T,
    convert: impl FnOnce(&mut Reader<'a>, &KeyPath, Value) -> Option<T>,
) -> T {
    match t.take(key) {
        Some((path, value)) => convert(r, &path, value).unwrap_or_else(default),
        None => default(),
    }
}

/// Read required `key` with `convert`; when absent, report it as missing with `what`.
fn required<'a, T>(
    r: &mut Reader<'a>,
    t: &mut Table,
    key: &'static str,
    what: &str,
    convert: impl FnOnce(&mut Reader<'a>, &KeyPath, Value) -> Option<T>,
) -> Option<T> {
    match t.take(key) {
        Some((path, value)) => convert(r, &path, value),
        None => {
            r.missing(t, key, what);
            None
        }
    }
}

/// Read optional `key` with `convert`.
fn optional<'a, T>(
    r: &mut Reader<'a>,
    t: &mut Table,
    key: &'static str,
    convert: impl FnOnce(&mut Reader<'a>, &KeyPath, Value) -> Option<T>,
) -> Option<T> {
    let (path, value) = t.take(key)?;
    convert(r, &path, value)
}

fn duration_min(
    min: SignedDuration,
) -> impl Fn(&mut Reader<'_>, &KeyPath, Value) -> Option<SignedDuration> {
    move |r, p, v| r.duration(p, v, min)
}

fn memory_limit(r: &mut Reader<'_>, p: &KeyPath, v: Value) -> Option<ByteSize> {
    r.size(p, v, ByteSize::mib(1), MAX_MEMORY_LIMIT)
}

fn max_response_bytes(r: &mut Reader<'_>, p: &KeyPath, v: Value) -> Option<ByteSize> {
    r.size(p, v, ByteSize(1024), MAX_RESPONSE_BYTES)
}

fn call_timeout(r: &mut Reader<'_>, p: &KeyPath, v: Value) -> Option<SignedDuration> {
    r.duration_range(p, v, NONZERO, MAX_CALL_TIMEOUT)
}

fn timezone(r: &mut Reader<'_>, p: &KeyPath, v: Value) -> Option<TimeZone> {
    r.parsed(p, v, parse_timezone)
}

fn time_of_day(r: &mut Reader<'_>, p: &KeyPath, v: Value) -> Option<Time> {
    r.parsed(p, v, parse_time)
}

fn sao_paulo() -> TimeZone {
    TimeZone::get(DEFAULT_TIMEZONE).unwrap_or(TimeZone::UTC)
}

fn read_daemon(r: &mut Reader<'_>, mut t: Table) -> DaemonConfig {
    let state_dir = field(
        r,
        &mut t,
        "state_dir",
        || DEFAULT_STATE_DIR.into(),
        Reader::path,
    );
    let cache_dir = field(
        r,
        &mut t,
        "cache_dir",
        || DEFAULT_CACHE_DIR.into(),
        Reader::path,
    );
    let plugin_dir = field(r, &mut t, "plugin_dir", default_plugin_dir, Reader::path);
    let control_socket = field(
        r,
        &mut t,
        "control_socket",
        || DEFAULT_CONTROL_SOCKET.into(),
        |r, p, v| {
            let path = r.path(p, v.clone())?;
            // sun_path holds 108 bytes including the terminating NUL.
            if path.as_os_str().len() > 107 {
                r.error(p, &v, "socket path is too long (at most 107 bytes)");
                return None;
            }
            Some(path)
        },
    );
    let shutdown_timeout = field(
        r,
        &mut t,
        "shutdown_timeout",
        || DEFAULT_SHUTDOWN_TIMEOUT,
        duration_min(NONZERO),
    );
    let timezone = field(r, &mut t, "timezone", sao_paulo, timezone);
    let metrics_listen = optional(r, &mut t, "metrics_listen", |r, p, v| {
        r.parsed(p, v, |s| {
            s.parse::<std::net::SocketAddr>().map_err(|_| {
                r#"expected "ip:port", like "127.0.0.1:9464" or "[::1]:9464""#.to_owned()
            })
        })
        .map(|addr| (p.clone(), addr))
    });
    let metrics_allow_remote = field(r, &mut t, "metrics_allow_remote", || false, Reader::boolean);
    let metrics_listen = metrics_listen.and_then(|(path, addr)| {
        if !addr.ip().is_loopback() && !metrics_allow_remote {
            r.error(
                &path,
                &Value::from(addr.to_string()),
                "metrics must listen on a loopback address (127.0.0.1 or ::1); set \
                 daemon.metrics_allow_remote = true to expose them on the network",
            );
            return None;
        }
        Some(addr)
    });
    let log_level = field(
        r,
        &mut t,
        "log_level",
        || "info".to_owned(),
        |r, p, v| {
            r.parsed(p, v, |s| {
                super::values::check_log_filter(s).map(|()| s.to_owned())
            })
        },
    );
    let history_retention = field(
        r,
        &mut t,
        "history_retention",
        || SignedDuration::from_hours(90 * 24),
        duration_min(SignedDuration::from_hours(24)),
    );
    r.finish(t);
    DaemonConfig {
        state_dir,
        cache_dir,
        plugin_dir,
        control_socket,
        shutdown_timeout,
        timezone,
        metrics_listen,
        metrics_allow_remote,
        log_level,
        history_retention,
    }
}

fn read_plugin_defaults(r: &mut Reader<'_>, mut t: Table) -> PluginDefaults {
    let memory_limit = field(
        r,
        &mut t,
        "memory_limit",
        || ByteSize::mib(64),
        memory_limit,
    );
    let call_timeout = field(
        r,
        &mut t,
        "call_timeout",
        || SignedDuration::from_secs(30),
        call_timeout,
    );
    let max_response_bytes = field(
        r,
        &mut t,
        "max_response_bytes",
        || ByteSize::mib(4),
        max_response_bytes,
    );
    r.finish(t);
    PluginDefaults {
        memory_limit,
        call_timeout,
        max_response_bytes,
    }
}

fn read_sandbox(r: &mut Reader<'_>, t: Option<Table>, defaults: &PluginDefaults) -> SandboxConfig {
    let Some(mut t) = t else {
        return SandboxConfig {
            allowed_hosts: None,
            allow_private_addresses: false,
            requests_per_minute: None,
            call_timeout: defaults.call_timeout,
            memory_limit: defaults.memory_limit,
            max_response_bytes: defaults.max_response_bytes,
        };
    };
    let allowed_hosts = optional(r, &mut t, "allowed_hosts", |r, p, v| {
        let hosts = r.string_list(p, v)?;
        let mut ok = true;
        for (i, host) in hosts.iter().enumerate() {
            let problem = if host.is_empty() || host.contains(char::is_whitespace) {
                Some("expected a host like \"https://api.example.com\"".to_owned())
            } else {
                crate::plugin::allowlist::AllowedHost::parse(host)
                    .err()
                    .map(|e| e.to_string())
            };
            if let Some(problem) = problem {
                r.error(&p.index(i), &Value::from(host.clone()), problem);
                ok = false;
            }
        }
        ok.then_some(hosts)
    });
    let allow_private_addresses = field(
        r,
        &mut t,
        "allow_private_addresses",
        || false,
        Reader::boolean,
    );
    let requests_per_minute = optional(r, &mut t, "requests_per_minute", |r, p, v| {
        r.u32_min(p, v, 1).and_then(NonZeroU32::new)
    });
    let call_timeout = field(
        r,
        &mut t,
        "call_timeout",
        || defaults.call_timeout,
        call_timeout,
    );
    let memory_limit = field(
        r,
        &mut t,
        "memory_limit",
        || defaults.memory_limit,
        memory_limit,
    );
    let max_response_bytes = field(
        r,
        &mut t,
        "max_response_bytes",
        || defaults.max_response_bytes,
        max_response_bytes,
    );
    r.finish(t);
    SandboxConfig {
        allowed_hosts,
        allow_private_addresses,
        requests_per_minute,
        call_timeout,
        memory_limit,
        max_response_bytes,
    }
}

/// The entries of an id-keyed section (`[stores.*]`, `[channels.*]`), ids checked.
fn id_tables(r: &mut Reader<'_>, mut t: Table, what: &str) -> Vec<(String, Table)> {
    let mut out = Vec::new();
    for (id, path, value) in t.drain() {
        if let Err(message) = check_id(&id) {
            r.error_at(&path, format!("bad {what} id {id:?}: {message}"));
            continue;
        }
        if let Some(table) = r.table(path, value) {
            out.push((id, table));
        }
    }
    r.finish(t);
    out
}

fn plugin_name(r: &mut Reader<'_>, p: &KeyPath, v: Value) -> Option<String> {
    r.parsed(p, v, |s| {
        check_id(s).map(|()| s.to_owned()).map_err(|m| {
            format!("not a plugin name: {m}; to load a file by path use the explicit path key")
        })
    })
}

fn read_stores(
    r: &mut Reader<'_>,
    t: Table,
    daemon: &DaemonConfig,
    plugins: &PluginDefaults,
) -> BTreeMap<String, StoreConfig> {
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
            .and_then(|(p, v)| r.duration_range(&p, v, NONZERO, MAX_POLL_INTERVAL))
            .unwrap_or(SignedDuration::from_mins(5));
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
            r.parsed(p, v, |s| {
                s.parse::<Timestamp>().map_err(|_| {
                    r#"expected an RFC 3339 timestamp with a UTC offset, like "2025-01-31T00:00:00-03:00""#
                        .to_owned()
                })
            })
        });
        let enabled = field(r, &mut t, "enabled", || true, Reader::boolean);
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
            StoreConfig {
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
            },
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
    let fmt = super::values::format_duration;
    if sandbox.allow_private_addresses {
        if interval < MIN_POLL_INTERVAL_PRIVATE {
            r.error(
                path,
                value,
                format!("must be at least {}", fmt(MIN_POLL_INTERVAL_PRIVATE)),
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
                fmt(MIN_POLL_INTERVAL),
                fmt(MIN_POLL_INTERVAL_PRIVATE)
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
                super::values::format_time(start)
            ),
        );
        return None;
    }
    Some(QuietHours { start, end })
}

fn notification_kind(
    r: &mut Reader<'_>,
    path: &KeyPath,
    name: &str,
    value: Option<&Value>,
) -> Option<NotificationKind> {
    match name.parse::<NotificationKind>() {
        Ok(kind) => Some(kind),
        Err(e) => {
            let mut message = e.to_string();
            if let Some(close) =
                did_you_mean(name, NotificationKind::ALL.iter().map(|k| k.as_str()))
            {
                message = format!("unknown notification kind {name:?} (did you mean {close:?}?)");
            }
            match value {
                Some(v) => r.error(path, v, message),
                None => r.error_at(path, message),
            }
            None
        }
    }
}

fn read_recognition(r: &mut Reader<'_>, mut t: Table) -> BTreeMap<String, Recognition> {
    let mut out = BTreeMap::new();
    for (code, path, value) in t.drain() {
        let Some(name) = r.string(&path, value.clone()) else {
            continue;
        };
        if name == "off" {
            out.insert(code, Recognition::Off);
        } else if let Some(kind) = notification_kind(r, &path, &name, Some(&value)) {
            out.insert(code, Recognition::Notify(kind));
        }
    }
    r.finish(t);
    out
}

fn read_settings(r: &mut Reader<'_>, mut t: Table) -> Settings {
    let entries = t.drain();
    r.finish(t);
    let present: BTreeSet<String> = entries.iter().map(|(k, _, _)| k.clone()).collect();
    let mut settings = Settings::default();
    for (key, path, value) in entries {
        let indirect =
            [("_file", true), ("_env", false)]
                .into_iter()
                .find_map(|(suffix, is_file)| {
                    key.strip_suffix(suffix)
                        .map(|base| (base.to_owned(), is_file))
                });
        if let Some((base, is_file)) = indirect.filter(|(base, _)| !base.is_empty()) {
            let others: Vec<String> = [base.clone(), format!("{base}_file"), format!("{base}_env")]
                .into_iter()
                .filter(|k| *k != key && present.contains(k))
                .collect();
            if !others.is_empty() {
                r.error_at(
                    &path,
                    format!("{base} is given more than once (also as {}); keep only one of {base}, {base}_file, {base}_env", others.join(", ")),
                );
                continue;
            }
            let secret = if is_file {
                secret_from_file(r, &path, value)
            } else {
                secret_from_env(r, &path, value)
            };
            if let Some(secret) = secret {
                settings.insert(base, Setting::Secret(secret));
            }
            continue;
        }
        // Plugins receive every setting as text and parse it themselves: a
        // bare number or boolean (`page_size = 50`, `verbose = true`) is
        // passed as its text. An endpoint (`url`, `…_url`) must be a quoted
        // URL: `base_url = 5` is a slip. Tables and arrays are passed as JSON
        // text (for settings documented as JSON, like the webhook's `headers`).
        let text = match &value {
            Value::String(_, s) => s.clone(),
            Value::Char(_, c) => c.to_string(),
            Value::Empty(..) => String::new(),
            Value::Num(..) | Value::Bool(..) if !key.ends_with("url") => {
                super::reader::render(&value)
            }
            Value::Num(..) | Value::Bool(..) => {
                let message = format!(
                    "{key} is an address the plugin calls: write an http(s) URL in quotes, \
                     like {key} = \"https://…\" (found {})",
                    super::reader::kind_name(&value)
                );
                if looks_secret(&key) {
                    r.error_at(&path, message);
                } else {
                    r.error(&path, &value, message);
                }
                continue;
            }
            Value::Dict(..) | Value::Array(..) => match serde_json::to_string(&value) {
                Ok(json) => json,
                Err(e) => {
                    r.error_at(&path, format!("cannot pass this value to the plugin: {e}"));
                    continue;
                }
            },
        };
        let setting = if looks_secret(&key) {
            Setting::Secret(Secret::new(text))
        } else {
            Setting::Plain(text)
        };
        settings.insert(key, setting);
    }
    settings
}

fn nonempty_secret(r: &mut Reader<'_>, path: &KeyPath, text: String, from: &str) -> Option<Secret> {
    if text.is_empty() {
        r.error_at(path, format!("{from} is empty"));
        return None;
    }
    Some(Secret::new(text))
}

/// `<key>_file`: relative paths resolve against `$CREDENTIALS_DIRECTORY` (systemd
/// `LoadCredential=`) when set, else against the configuration file's directory.
fn secret_from_file(r: &mut Reader<'_>, path: &KeyPath, value: Value) -> Option<Secret> {
    let name = r.nonempty_string(path, value.clone())?;
    let file = Path::new(&name);
    let resolved = if file.is_absolute() {
        file.to_path_buf()
    } else if let Some(dir) = r.env_var("CREDENTIALS_DIRECTORY").filter(|d| !d.is_empty()) {
        Path::new(dir).join(file)
    } else {
        r.resolve(file)
    };
    match super::read_at_most(&resolved, MAX_SECRET_FILE_BYTES) {
        Ok(bytes) if bytes.len() as u64 > MAX_SECRET_FILE_BYTES => {
            r.error(
                path,
                &value,
                format!(
                    "secret file {} is larger than {}: not a credential",
                    resolved.display(),
                    ByteSize(MAX_SECRET_FILE_BYTES)
                ),
            );
            None
        }
        Ok(bytes) => {
            let Ok(mut text) = String::from_utf8(bytes) else {
                r.error(
                    path,
                    &value,
                    format!("secret file {} is not valid UTF-8", resolved.display()),
                );
                return None;
            };
            if text.ends_with('\n') {
                text.pop();
                if text.ends_with('\r') {
                    text.pop();
                }
            }
            nonempty_secret(
                r,
                path,
                text,
                &format!("secret file {}", resolved.display()),
            )
        }
        Err(e) => {
            r.error(
                path,
                &value,
                format!("cannot read secret file {}: {e}", resolved.display()),
            );
            None
        }
    }
}

fn secret_from_env(r: &mut Reader<'_>, path: &KeyPath, value: Value) -> Option<Secret> {
    let name = r.nonempty_string(path, value.clone())?;
    match r.env_var(&name).map(|v| v.to_str().map(str::to_owned)) {
        Some(Some(text)) => nonempty_secret(r, path, text, &format!("environment variable {name}")),
        Some(None) => {
            r.error(
                path,
                &value,
                format!("environment variable {name} is not valid UTF-8"),
            );
            None
        }
        None => {
            r.error(
                path,
                &value,
                format!("environment variable {name} is not set"),
            );
            None
        }
    }
}

fn read_channels(
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
            || Time::constant(21, 0, 0, 0),
            time_of_day,
        );
        let warmup = optional_section(r, &mut t, "warmup").and_then(|w| read_warmup(r, w));
        let max_attempts = field(
            r,
            &mut t,
            "max_attempts",
            || 5,
            |r, p, v| r.u32_min(p, v, 1),
        );
        let retry_base_entry = t.take("retry_base");
        let retry_base = retry_base_entry
            .clone()
            .and_then(|(p, v)| r.duration(&p, v, NONZERO))
            .unwrap_or(SignedDuration::from_secs(30));
        let retry_max_entry = t.take("retry_max");
        let retry_max = retry_max_entry
            .clone()
            .and_then(|(p, v)| r.duration(&p, v, NONZERO))
            .unwrap_or(SignedDuration::from_hours(1));
        if retry_max < retry_base {
            let (path, value) = retry_max_entry
                .or(retry_base_entry)
                .unwrap_or((t.path.key("retry_max"), Value::from("1h")));
            r.error(
                &path,
                &value,
                format!(
                    "retry_max ({}) is shorter than retry_base ({})",
                    super::values::format_duration(retry_max),
                    super::values::format_duration(retry_base)
                ),
            );
        }
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
                max_attempts,
                retry_base,
                retry_max,
                templates,
                sandbox,
                settings,
            },
        );
    }
    channels
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
            || "pt_BR".to_owned(),
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

/// `template` / `template_file` of a table (never both).
fn read_template_text(r: &mut Reader<'_>, t: &mut Table) -> Option<TemplateText> {
    let both = t.has("template") && t.has("template_file");
    let inline = optional(r, t, "template", Reader::string);
    let file_entry = t.take("template_file");
    if both {
        r.error_at(
            &t.path.key("template_file"),
            "set either template (inline text) or template_file (a path), not both",
        );
        return None;
    }
    if let Some(text) = inline {
        return Some(TemplateText { text, file: None });
    }
    let (path, value) = file_entry?;
    let file = r.path(&path, value.clone())?;
    let read = super::read_at_most(&file, MAX_TEMPLATE_FILE_BYTES).and_then(|bytes| {
        if bytes.len() as u64 > MAX_TEMPLATE_FILE_BYTES {
            return Err(std::io::Error::other(format!(
                "larger than {}",
                ByteSize(MAX_TEMPLATE_FILE_BYTES)
            )));
        }
        String::from_utf8(bytes)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not valid UTF-8"))
    });
    match read {
        Ok(text) => Some(TemplateText {
            text,
            file: Some(file),
        }),
        Err(e) => {
            r.error(
                &path,
                &value,
                format!("cannot read template file {}: {e}", file.display()),
            );
            None
        }
    }
}

/// Per kind: the path of its table (for cross-checks) and its settings.
type Notifications = BTreeMap<NotificationKind, (Option<KeyPath>, NotificationConfig)>;

fn read_notifications(r: &mut Reader<'_>, mut t: Table) -> Notifications {
    let mut out: Notifications = NotificationKind::ALL
        .into_iter()
        .map(|kind| (kind, (None, default_notification(kind))))
        .collect();
    for (name, path, value) in t.drain() {
        let Some(kind) = notification_kind(r, &path, &name, None) else {
            continue;
        };
        let Some(mut nt) = r.table(path.clone(), value) else {
            continue;
        };
        let defaults = default_notification(kind);
        let enabled = field(r, &mut nt, "enabled", || defaults.enabled, Reader::boolean);
        let template = read_template_text(r, &mut nt);
        let mut channels = BTreeMap::new();
        if let Some(mut ct) = optional_section(r, &mut nt, "channels") {
            for (channel, cpath, cvalue) in ct.drain() {
                let Some(mut per) = r.table(cpath, cvalue) else {
                    continue;
                };
                let template = read_template_text(r, &mut per);
                r.finish(per);
                channels.insert(channel, ChannelTemplate { template });
            }
            r.finish(ct);
        }
        let delay = field(
            r,
            &mut nt,
            "delay",
            || defaults.delay,
            duration_min(SignedDuration::ZERO),
        );
        let expiry = field(
            r,
            &mut nt,
            "expiry",
            || defaults.expiry,
            duration_min(NONZERO),
        );
        let quiet_hours = field(
            r,
            &mut nt,
            "quiet_hours",
            || defaults.quiet_hours,
            |r, p, v| {
                r.parsed(p, v, |s| match s {
                "defer" => Ok(QuietHoursPolicy::Defer),
                "ignore" => Ok(QuietHoursPolicy::Ignore),
                _ => Err(r#"expected "defer" (hold until quiet hours end) or "ignore" (send anyway)"#.to_owned()),
            })
            },
        );
        let max_attempts = optional(r, &mut nt, "max_attempts", |r, p, v| r.u32_min(p, v, 1));
        r.finish(nt);
        out.insert(
            kind,
            (
                Some(path),
                NotificationConfig {
                    enabled,
                    template,
                    channels,
                    delay,
                    expiry,
                    quiet_hours,
                    max_attempts,
                },
            ),
        );
    }
    r.finish(t);
    out
}

/// Reserved kinds (reminders, abandoned carts) are opt-in; everything else is on.
fn default_notification(kind: NotificationKind) -> NotificationConfig {
    NotificationConfig {
        enabled: !kind.is_reserved(),
        template: None,
        channels: BTreeMap::new(),
        delay: SignedDuration::ZERO,
        expiry: SignedDuration::from_hours(24),
        quiet_hours: QuietHoursPolicy::Defer,
        max_attempts: None,
    }
}

fn read_checklist(r: &mut Reader<'_>, mut t: Table) -> ChecklistConfig {
    let max_invalid_event_share = field(
        r,
        &mut t,
        "max_invalid_event_share",
        || 0.2,
        |r, p, v| r.number(p, v, 0.0, 1.0),
    );
    let max_backlog = field(
        r,
        &mut t,
        "max_backlog",
        || 500,
        |r, p, v| r.integer(p, v, 1, u64::MAX),
    );
    let max_events_pending = field(
        r,
        &mut t,
        "max_events_pending",
        || 200,
        |r, p, v| r.integer(p, v, 1, u64::MAX),
    );
    let stale_poll_factor = field(
        r,
        &mut t,
        "stale_poll_factor",
        || 3.0,
        |r, p, v| r.number(p, v, 1.0, f64::MAX),
    );
    r.finish(t);
    ChecklistConfig {
        max_invalid_event_share,
        max_backlog,
        max_events_pending,
        stale_poll_factor,
    }
}

fn check_references(
    r: &mut Reader<'_>,
    stores: &BTreeMap<String, StoreConfig>,
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
    for id in channels.keys() {
        if !used.contains(id) {
            let path = KeyPath::root().key("channels").key(id);
            r.warn(&path, None, "no enabled store uses this channel (add it to a store's channels list or remove it)");
        }
    }
}
