//! `[daemon]`: process-wide settings (directories, control socket, shutdown,
//! time zone, metrics, pushed webhooks, logging, history). Its types, its
//! defaults and how it is read.

use std::net::SocketAddr;
use std::path::PathBuf;

use figment::value::Value;
use jiff::SignedDuration;
use jiff::tz::TimeZone;
use serde::Serialize;

use super::reader::{
    POSITIVE, Reader, Table, duration_min, field, optional, optional_section, timezone,
};
use super::values::{ByteSize, serialize_duration, serialize_timezone};

/// Default `daemon.state_dir`.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/arauto";
/// Default `daemon.cache_dir`.
pub const DEFAULT_CACHE_DIR: &str = "/var/cache/arauto";
/// Default `daemon.control_socket`.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/arauto/control.sock";
/// Default `daemon.timezone`.
pub const DEFAULT_TIMEZONE: &str = "America/Sao_Paulo";
/// Default `daemon.shutdown_timeout`: longer than the default plugin call
/// timeout ([`super::plugins::DEFAULT_CALL_TIMEOUT`]), so a send in flight at
/// SIGTERM can finish instead of being abandoned and sent again at the next start.
pub const DEFAULT_SHUTDOWN_TIMEOUT: SignedDuration = SignedDuration::from_secs(40);
// The reason for the value above, checked when compiling: a default change of
// either side that breaks it fails the build instead of warning every user.
const _: () =
    assert!(DEFAULT_SHUTDOWN_TIMEOUT.as_secs() > super::plugins::DEFAULT_CALL_TIMEOUT.as_secs());
/// Default `daemon.metrics_allow_remote`: metrics stay on loopback.
pub const DEFAULT_METRICS_ALLOW_REMOTE: bool = false;
/// Default `daemon.webhooks.listen` when the table is present.
pub const DEFAULT_WEBHOOKS_LISTEN: &str = "127.0.0.1:8480";
/// Default `daemon.webhooks.max_body_bytes`: Loja Integrada's deliveries are a
/// few KiB; this leaves room for a large order without letting a sender make
/// the daemon buffer much.
pub const DEFAULT_WEBHOOKS_MAX_BODY: ByteSize = ByteSize(256 * 1024);
/// Largest `daemon.webhooks.max_body_bytes`.
pub const MAX_WEBHOOKS_MAX_BODY: ByteSize = ByteSize(1024 * 1024);
/// Default `daemon.webhooks.per_store_per_minute`: two a second on average is
/// far more than a shop's order changes, and a push only makes a poll sooner.
pub const DEFAULT_WEBHOOKS_PER_STORE_PER_MINUTE: u32 = 120;
/// Default `daemon.webhooks.burst`: pushes a store may send at once before
/// the per-minute rate applies (a platform delivers a backlog in a rush).
pub const DEFAULT_WEBHOOKS_BURST: u32 = 20;
/// Default `daemon.log_level`.
pub const DEFAULT_LOG_LEVEL: &str = "info";
/// Default `daemon.history_retention`: 90 days.
pub const DEFAULT_HISTORY_RETENTION: SignedDuration = SignedDuration::from_hours(90 * 24);
/// Shortest `daemon.history_retention`: a day, so today's report has its data.
pub const MIN_HISTORY_RETENTION: SignedDuration = SignedDuration::from_hours(24);
/// Longest `daemon.control_socket` path: `sun_path` holds 108 bytes including
/// the terminating NUL.
pub const MAX_CONTROL_SOCKET_BYTES: usize = 107;

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

/// Default `daemon.timezone` ([`DEFAULT_TIMEZONE`]); UTC only if the bundled
/// time zone database lacked it.
pub fn default_timezone() -> TimeZone {
    TimeZone::get(DEFAULT_TIMEZONE).unwrap_or(TimeZone::UTC)
}

/// `[daemon]`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DaemonConfig {
    /// Durable state (the redb file, the instance lock). Default [`DEFAULT_STATE_DIR`].
    pub state_dir: PathBuf,
    /// Disposable data (compiled plugins). Default [`DEFAULT_CACHE_DIR`].
    pub cache_dir: PathBuf,
    /// Where `<name>.wasm` plugins are looked up. Default [`default_plugin_dir`].
    pub plugin_dir: PathBuf,
    /// The control socket the CLI talks to. Default [`DEFAULT_CONTROL_SOCKET`].
    pub control_socket: PathBuf,
    /// How long in-flight work may take to finish on SIGTERM. Default
    /// [`DEFAULT_SHUTDOWN_TIMEOUT`].
    #[serde(serialize_with = "serialize_duration")]
    pub shutdown_timeout: SignedDuration,
    /// Local time zone for quiet hours and daily resets. Default [`DEFAULT_TIMEZONE`].
    #[serde(serialize_with = "serialize_timezone")]
    pub timezone: TimeZone,
    /// Where to serve Prometheus metrics, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// Allow `metrics_listen` on a non-loopback address.
    pub metrics_allow_remote: bool,
    /// `[daemon.webhooks]`: where platforms push order changes; `None`
    /// (the table is absent): no listener.
    pub webhooks: Option<WebhooksConfig>,
    /// Log filter (`info`, `debug`, `arauto=debug,info`…); `RUST_LOG` overrides it.
    /// Default [`DEFAULT_LOG_LEVEL`].
    pub log_level: String,
    /// How long delivery history is kept. Default [`DEFAULT_HISTORY_RETENTION`].
    #[serde(serialize_with = "serialize_duration")]
    pub history_retention: SignedDuration,
}

/// `[daemon.webhooks]`: the listener platforms push order changes to
/// (`POST /hooks/<store-id>`). A push only makes the store poll sooner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WebhooksConfig {
    /// Where to listen. Default [`DEFAULT_WEBHOOKS_LISTEN`].
    pub listen: SocketAddr,
    /// Allow `listen` on a non-loopback address (it is meant to sit behind
    /// the operator's reverse proxy).
    pub allow_remote: bool,
    /// Largest body accepted; longer pushes are answered 413 without being
    /// buffered. Default [`DEFAULT_WEBHOOKS_MAX_BODY`].
    pub max_body_bytes: ByteSize,
    /// Pushes accepted per store and minute, on average. Default
    /// [`DEFAULT_WEBHOOKS_PER_STORE_PER_MINUTE`].
    pub per_store_per_minute: u32,
    /// Pushes a store may send at once before the rate applies. Default
    /// [`DEFAULT_WEBHOOKS_BURST`].
    pub burst: u32,
}

/// Why a `daemon.log_level` is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LogFilterError {
    /// A bare word that is not a level: `EnvFilter` would read it as a target.
    #[error("{directive:?} is not a log level; {LOG_FILTER_HINT}")]
    NotALevel {
        /// The directive as written.
        directive: String,
    },
    /// `EnvFilter` refused the filter.
    #[error("not a log filter ({reason}); {LOG_FILTER_HINT}")]
    Invalid {
        /// `EnvFilter`'s own explanation.
        reason: String,
    },
}

const LOG_FILTER_HINT: &str =
    r#"use "error", "warn", "info", "debug", "trace" or per target, like "arauto=debug,info""#;

/// Why a `daemon.metrics_listen` is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(r#"expected "ip:port", like "127.0.0.1:9464" or "[::1]:9464""#)]
pub struct SocketAddressError;

/// Check a log filter: `"info"`, or comma-separated `target=level` directives.
///
/// `EnvFilter` accepts a bare word as "this target at every level", which in a
/// config file is nearly always a misspelt level; so bare words must be levels.
pub fn check_log_filter(text: &str) -> Result<(), LogFilterError> {
    const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];
    for directive in text.split(',').map(str::trim) {
        if !directive.contains('=') && !LEVELS.contains(&directive.to_ascii_lowercase().as_str()) {
            return Err(LogFilterError::NotALevel {
                directive: directive.to_owned(),
            });
        }
    }
    tracing_subscriber::EnvFilter::builder()
        .parse(text)
        .map(|_| ())
        .map_err(|e| LogFilterError::Invalid {
            reason: e.to_string(),
        })
}

/// Read `[daemon]`: with errors recorded in `r`, the values at fault hold their defaults.
pub(crate) fn read_daemon(r: &mut Reader<'_>, mut t: Table) -> DaemonConfig {
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
            if path.as_os_str().len() > MAX_CONTROL_SOCKET_BYTES {
                r.error(
                    p,
                    &v,
                    format!("socket path is too long (at most {MAX_CONTROL_SOCKET_BYTES} bytes)"),
                );
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
        duration_min(POSITIVE),
    );
    let timezone = field(r, &mut t, "timezone", default_timezone, timezone);
    let metrics_listen = optional(r, &mut t, "metrics_listen", |r, p, v| {
        r.parsed(p, v, |s| {
            s.parse::<SocketAddr>().map_err(|_| SocketAddressError)
        })
        .map(|addr| (p.clone(), addr))
    });
    let metrics_allow_remote = field(
        r,
        &mut t,
        "metrics_allow_remote",
        || DEFAULT_METRICS_ALLOW_REMOTE,
        Reader::boolean,
    );
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
    let webhooks = optional_section(r, &mut t, "webhooks").map(|w| read_webhooks(r, w));
    let log_level = field(
        r,
        &mut t,
        "log_level",
        || DEFAULT_LOG_LEVEL.to_owned(),
        |r, p, v| r.parsed(p, v, |s| check_log_filter(s).map(|()| s.to_owned())),
    );
    let history_retention = field(
        r,
        &mut t,
        "history_retention",
        || DEFAULT_HISTORY_RETENTION,
        duration_min(MIN_HISTORY_RETENTION),
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
        webhooks,
        log_level,
        history_retention,
    }
}

/// Read `[daemon.webhooks]`: with errors recorded in `r`, the values at fault
/// hold their defaults.
fn read_webhooks(r: &mut Reader<'_>, mut t: Table) -> WebhooksConfig {
    let default_listen = || {
        DEFAULT_WEBHOOKS_LISTEN
            .parse::<SocketAddr>()
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8480)))
    };
    let listen = optional(r, &mut t, "listen", |r, p, v| {
        r.parsed(p, v, |s| {
            s.parse::<SocketAddr>().map_err(|_| SocketAddressError)
        })
        .map(|addr| (p.clone(), addr))
    });
    let allow_remote = field(r, &mut t, "allow_remote", || false, Reader::boolean);
    let listen = match listen {
        Some((path, addr)) if !addr.ip().is_loopback() && !allow_remote => {
            r.error(
                &path,
                &Value::from(addr.to_string()),
                "the webhook listener must listen on a loopback address (127.0.0.1 or ::1) \
                 behind your reverse proxy; set daemon.webhooks.allow_remote = true to expose \
                 it on the network",
            );
            default_listen()
        }
        Some((_, addr)) => addr,
        None => default_listen(),
    };
    let max_body_bytes = field(
        r,
        &mut t,
        "max_body_bytes",
        || DEFAULT_WEBHOOKS_MAX_BODY,
        |r, p, v| r.size(p, v, ByteSize(1024), MAX_WEBHOOKS_MAX_BODY),
    );
    let per_store_per_minute = field(
        r,
        &mut t,
        "per_store_per_minute",
        || DEFAULT_WEBHOOKS_PER_STORE_PER_MINUTE,
        |r, p, v| r.integer(p, v, 1, 6000).and_then(|n| u32::try_from(n).ok()),
    );
    let burst = field(
        r,
        &mut t,
        "burst",
        || DEFAULT_WEBHOOKS_BURST,
        |r, p, v| r.integer(p, v, 1, 1000).and_then(|n| u32::try_from(n).ok()),
    );
    r.finish(t);
    WebhooksConfig {
        listen,
        allow_remote,
        max_body_bytes,
        per_store_per_minute,
        burst,
    }
}
