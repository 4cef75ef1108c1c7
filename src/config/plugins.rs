//! `[plugins]`: the sandbox defaults of every plugin instance, and the
//! `sandbox` sub-table of a store or channel that overrides them
//! ([`SandboxConfig`]). Its types, its defaults and bounds, and how it is read.

use std::num::NonZeroU32;

use figment::value::Value;
use jiff::SignedDuration;
use serde::Serialize;

use super::reader::{POSITIVE, Reader, Table, field, optional};
use super::source::KeyPath;
use super::values::{ByteSize, check_id, serialize_duration};

/// Default `plugins.memory_limit`.
pub const DEFAULT_MEMORY_LIMIT: ByteSize = ByteSize(crate::plugin::DEFAULT_MEMORY_LIMIT);
/// Default `plugins.call_timeout`.
pub const DEFAULT_CALL_TIMEOUT: SignedDuration = crate::plugin::DEFAULT_CALL_TIMEOUT;
/// Default `plugins.max_response_bytes`.
pub const DEFAULT_MAX_RESPONSE_BYTES: ByteSize = ByteSize::mib(4);
/// Default `sandbox.allow_private_addresses`: public addresses only.
pub const DEFAULT_ALLOW_PRIVATE_ADDRESSES: bool = false;

/// Least linear memory one plugin instance may be given.
pub const MIN_MEMORY_LIMIT: ByteSize = ByteSize::mib(1);
/// Most linear memory one plugin instance may be given.
pub const MAX_MEMORY_LIMIT: ByteSize = ByteSize::mib(4 * 1024);
/// Longest plugin `call_timeout`: one poll page or one send.
pub const MAX_CALL_TIMEOUT: SignedDuration = SignedDuration::from_mins(10);
/// Smallest accepted `max_response_bytes`.
pub const MIN_RESPONSE_BYTES: ByteSize = ByteSize(1024);
/// Largest accepted `max_response_bytes` (one HTTP response to a plugin).
pub const MAX_RESPONSE_BYTES: ByteSize = ByteSize::mib(256);

/// `[plugins]`: sandbox defaults.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PluginDefaults {
    /// Linear memory cap per plugin instance. Default [`DEFAULT_MEMORY_LIMIT`].
    pub memory_limit: ByteSize,
    /// Wall-clock limit of one plugin call. Default [`DEFAULT_CALL_TIMEOUT`].
    #[serde(serialize_with = "serialize_duration")]
    pub call_timeout: SignedDuration,
    /// Largest HTTP response body a plugin may receive. Default
    /// [`DEFAULT_MAX_RESPONSE_BYTES`].
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
    #[serde(serialize_with = "serialize_duration")]
    pub call_timeout: SignedDuration,
    /// Linear memory cap.
    pub memory_limit: ByteSize,
    /// Largest HTTP response body.
    pub max_response_bytes: ByteSize,
}

impl SandboxConfig {
    /// The sandbox of an instance that has no `sandbox` table: `[plugins]`'s limits,
    /// the plugin's own hosts, public addresses only, no request budget.
    pub fn inheriting(defaults: &PluginDefaults) -> Self {
        Self {
            allowed_hosts: None,
            allow_private_addresses: DEFAULT_ALLOW_PRIVATE_ADDRESSES,
            requests_per_minute: None,
            call_timeout: defaults.call_timeout,
            memory_limit: defaults.memory_limit,
            max_response_bytes: defaults.max_response_bytes,
        }
    }
}

/// Why a `platform` or `plugin` value is not a plugin name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a plugin name: {0}; to load a file by path use the explicit path key")]
pub struct PluginNameError(#[from] super::values::ValueError);

fn memory_limit(r: &mut Reader<'_>, p: &KeyPath, v: Value) -> Option<ByteSize> {
    r.size(p, v, MIN_MEMORY_LIMIT, MAX_MEMORY_LIMIT)
}

fn max_response_bytes(r: &mut Reader<'_>, p: &KeyPath, v: Value) -> Option<ByteSize> {
    r.size(p, v, MIN_RESPONSE_BYTES, MAX_RESPONSE_BYTES)
}

fn call_timeout(r: &mut Reader<'_>, p: &KeyPath, v: Value) -> Option<SignedDuration> {
    r.duration_range(p, v, POSITIVE, MAX_CALL_TIMEOUT)
}

/// A plugin name (`platform = "loja-integrada"`, `plugin = "whatsapp-cloud"`).
pub(crate) fn plugin_name(r: &mut Reader<'_>, p: &KeyPath, v: Value) -> Option<String> {
    r.parsed(p, v, |s| {
        check_id(s).map(|()| s.to_owned()).map_err(PluginNameError)
    })
}

/// Read `[plugins]`.
pub(crate) fn read_plugin_defaults(r: &mut Reader<'_>, mut t: Table) -> PluginDefaults {
    let memory_limit = field(
        r,
        &mut t,
        "memory_limit",
        || DEFAULT_MEMORY_LIMIT,
        memory_limit,
    );
    let call_timeout = field(
        r,
        &mut t,
        "call_timeout",
        || DEFAULT_CALL_TIMEOUT,
        call_timeout,
    );
    let max_response_bytes = field(
        r,
        &mut t,
        "max_response_bytes",
        || DEFAULT_MAX_RESPONSE_BYTES,
        max_response_bytes,
    );
    r.finish(t);
    PluginDefaults {
        memory_limit,
        call_timeout,
        max_response_bytes,
    }
}

/// Read a store's or channel's `sandbox` table (absent: [`SandboxConfig::inheriting`]).
pub(crate) fn read_sandbox(
    r: &mut Reader<'_>,
    t: Option<Table>,
    defaults: &PluginDefaults,
) -> SandboxConfig {
    let inherited = SandboxConfig::inheriting(defaults);
    let Some(mut t) = t else {
        return inherited;
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
        || inherited.allow_private_addresses,
        Reader::boolean,
    );
    let requests_per_minute = optional(r, &mut t, "requests_per_minute", |r, p, v| {
        r.u32_min(p, v, 1).and_then(NonZeroU32::new)
    });
    let call_timeout = field(
        r,
        &mut t,
        "call_timeout",
        || inherited.call_timeout,
        call_timeout,
    );
    let memory_limit = field(
        r,
        &mut t,
        "memory_limit",
        || inherited.memory_limit,
        memory_limit,
    );
    let max_response_bytes = field(
        r,
        &mut t,
        "max_response_bytes",
        || inherited.max_response_bytes,
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
