//! Fuzzing the configuration reader (issue 18, "keep it from coming back"):
//! hostile TOML — random tables, keys and values of every type for the known
//! keys, mutations of the shipped example, random bytes, random `ARAUTO_`
//! overrides — goes through the real loader, `config::load_with_env`.
//!
//! The property: no panic, no hang, and every rejection names where the
//! problem is — a key path, a file line, or an environment variable (only
//! whole-file problems such as invalid UTF-8 or an oversized file name just
//! the file).
//!
//! `make test` runs a small number of cases; for a soak:
//! `PROPTEST_CASES=100000 cargo test --release --test integration config_fuzz::`.

// All test code: with this, clippy's allow-unwrap/expect-in-tests covers the
// helper functions too, not only the #[test] ones (see clippy.toml).
#![cfg(test)]

use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, Instant};

use arauto::config::{self, ConfigErrors, Origin};
use proptest::prelude::*;

fn cases_from_env(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// Keys the schema knows, wherever they belong: the fuzzer puts them anywhere.
const KNOWN_KEYS: &[&str] = &[
    "state_dir",
    "cache_dir",
    "plugin_dir",
    "control_socket",
    "shutdown_timeout",
    "timezone",
    "metrics_listen",
    "metrics_allow_remote",
    "webhooks",
    "listen",
    "allow_remote",
    "max_body_bytes",
    "per_store_per_minute",
    "burst",
    "webhook_token",
    "log_level",
    "history_retention",
    "memory_limit",
    "call_timeout",
    "max_response_bytes",
    "platform",
    "plugin",
    "plugin_path",
    "description",
    "poll_interval",
    "channels",
    "quiet_hours",
    "first_sync_cutoff",
    "enabled",
    "recognition",
    "sandbox",
    "settings",
    "allowed_hosts",
    "allow_private_addresses",
    "requests_per_minute",
    "min_interval",
    "daily_cap",
    "daily_reset",
    "warmup",
    "start",
    "end",
    "step",
    "max_attempts",
    "retry_base",
    "retry_max",
    "templates",
    "name",
    "language",
    "parameters",
    "named",
    "template",
    "template_file",
    "delay",
    "expiry",
    "max_invalid_event_share",
    "max_backlog",
    "max_events_pending",
    "stale_poll_factor",
    "api_key",
    "api_key_env",
    "api_key_file",
    "base_url",
    "token_file",
    "order-paid",
    "pedido_pago",
];

/// Tables the schema knows (the fuzzer also invents others).
const KNOWN_TABLES: &[&str] = &[
    "daemon",
    "daemon.webhooks",
    "plugins",
    "checklist",
    "stores.loja1",
    "stores.loja1.sandbox",
    "stores.loja1.settings",
    "stores.loja1.recognition",
    "stores.loja1.quiet_hours",
    "stores.\"bad id\"",
    "channels.wa",
    "channels.wa.settings",
    "channels.wa.sandbox",
    "channels.wa.warmup",
    "channels.wa.templates.order-paid",
    "channels.wa.templates.order-paid.named",
    "notifications.order-paid",
    "notifications.order-paid.channels.wa",
    "notifications.no-such-kind",
];

/// Strings that mean something to some key (durations, sizes, hosts, paths…)
/// or are hostile on their own.
const TRICKY_STRINGS: &[&str] = &[
    "",
    " ",
    "1ms",
    "0s",
    "-1m",
    "36500d",
    "99999999999999999999d",
    "5m",
    "24h",
    "1.5h",
    "100000GiB",
    "64MiB",
    "18446744073709551616B",
    "-1KiB",
    "loja-integrada",
    "whatsapp-cloud",
    "webhook",
    "../../etc/passwd",
    "/dev/zero",
    "/nonexistent/file",
    "/proc/self/status",
    "https://api.example.com",
    "127.0.0.1:8480",
    "0.0.0.0:8480",
    "[::1]:0",
    "localhost:99999",
    "http://127.0.0.1:9",
    "api.example.com",
    "*://*:*",
    "0.0.0.0:9464",
    "[::1]:9464",
    "America/Sao_Paulo",
    "Brazil/Nowhere",
    "25:61",
    "21:00",
    "2025-01-31T00:00:00-03:00",
    "debug",
    "trace,arauto=[",
    "order-paid",
    "off",
    "defer",
    "ARAUTO_LI_KEY",
    "PATH",
    "{{ order.total }}",
    "{% for i in range(100000) %}{{ i }}{% endfor %}",
    "{{ 1/0 }}",
    "\u{202E}\u{200B}\u{0}\u{7f}",
    "😀",
];

fn toml_value() -> impl Strategy<Value = toml::Value> {
    let leaf = prop_oneof![
        4 => proptest::sample::select(TRICKY_STRINGS).prop_map(|s| toml::Value::String(s.to_owned())),
        2 => any::<String>().prop_map(toml::Value::String),
        1 => "[a-z0-9 ]{0,2000}".prop_map(toml::Value::String),
        2 => any::<i64>().prop_map(toml::Value::Integer),
        1 => prop_oneof![Just(0i64), Just(-1), Just(i64::MAX), Just(i64::MIN), Just(5)]
            .prop_map(toml::Value::Integer),
        1 => any::<f64>().prop_map(toml::Value::Float),
        1 => prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(0.5), Just(-0.0)]
            .prop_map(toml::Value::Float),
        1 => any::<bool>().prop_map(toml::Value::Boolean),
        1 => Just(toml::Value::Datetime(
            "1979-05-27T07:32:00Z".parse().expect("datetime literal")
        )),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(toml::Value::Array),
            proptest::collection::btree_map(key(), inner, 0..5)
                .prop_map(|m| toml::Value::Table(m.into_iter().collect())),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => proptest::sample::select(KNOWN_KEYS).prop_map(str::to_owned),
        1 => "[a-z_]{1,12}",
        1 => any::<String>(),
    ]
}

fn table_name() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => proptest::sample::select(KNOWN_TABLES).prop_map(str::to_owned),
        1 => "[a-z]{1,8}(\\.[a-z_-]{1,8}){0,3}",
    ]
}

/// A TOML string literal, usable as a quoted key.
fn quoted(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// Keys and values of one table.
type Entries = Vec<(String, toml::Value)>;

/// A document of random tables holding random keys and values.
fn structured_document() -> impl Strategy<Value = String> {
    let entries = || proptest::collection::vec((key(), toml_value()), 0..8);
    let root = entries();
    let tables = proptest::collection::vec((table_name(), entries()), 0..8);
    (root, tables).prop_map(|(root, tables): (Entries, Vec<(String, Entries)>)| {
        let mut out = String::new();
        let write = |out: &mut String, entries: &[(String, toml::Value)]| {
            for (k, v) in entries {
                out.push_str(&format!("{} = {v}\n", quoted(k)));
            }
        };
        write(&mut out, &root);
        for (name, entries) in &tables {
            out.push_str(&format!("[{name}]\n"));
            write(&mut out, entries);
        }
        out
    })
}

/// The shipped example with random bytes replaced, inserted or removed.
fn mutated_example() -> impl Strategy<Value = Vec<u8>> {
    let example = include_bytes!("../config/arauto.toml").to_vec();
    let len = example.len();
    proptest::collection::vec((0..len, 0u8..3, any::<u8>()), 1..12).prop_map(move |edits| {
        let mut bytes = example.clone();
        for (at, op, byte) in edits {
            let at = at.min(bytes.len().saturating_sub(1));
            match op {
                0 => bytes[at] = byte,
                1 => bytes.insert(at, byte),
                _ if !bytes.is_empty() => {
                    bytes.remove(at);
                }
                _ => {}
            }
        }
        bytes
    })
}

fn document() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        5 => structured_document().prop_map(String::into_bytes),
        3 => mutated_example(),
        1 => proptest::collection::vec(any::<u8>(), 0..512),
    ]
}

/// Random `ARAUTO_` overrides (and a variable some `*_env` setting may name).
fn environment() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = prop_oneof![
        Just("ARAUTO_DAEMON__LOG_LEVEL".to_owned()),
        Just("ARAUTO_STORES__LOJA1__POLL_INTERVAL".to_owned()),
        Just("ARAUTO_STORES__LOJA1__SANDBOX__ALLOWED_HOSTS".to_owned()),
        Just("ARAUTO_PLUGINS__MEMORY_LIMIT".to_owned()),
        Just("ARAUTO_LI_KEY".to_owned()),
        Just("ARAUTO___".to_owned()),
        "ARAUTO_[A-Z_]{1,30}",
    ];
    let value = prop_oneof![
        proptest::sample::select(TRICKY_STRINGS).prop_map(str::to_owned),
        any::<String>().prop_map(|s| s.replace('\0', "")),
    ];
    proptest::collection::vec((name, value), 0..4)
}

/// Every rejection must say where: a key, a line, or a variable.
fn check_located(errors: &ConfigErrors, path: &Path) -> Result<(), TestCaseError> {
    prop_assert!(!errors.errors.is_empty(), "an Err with no error");
    let shown = errors.to_string();
    prop_assert!(
        shown.contains(&path.display().to_string()),
        "the file is not named:\n{shown}"
    );
    for error in errors.errors.iter().chain(&errors.warnings) {
        let whole_file = error.key.is_empty()
            && (error.message.contains("UTF-8")
                || error.message.contains("limit")
                || error.message.contains("no stores or channels"));
        let located = !error.key.is_empty()
            || whole_file
            || matches!(
                error.origin,
                Origin::File {
                    position: Some(_),
                    ..
                } | Origin::Env { .. }
            );
        prop_assert!(located, "error names no key, line or variable: {error}");
        if let Origin::Env { var } = &error.origin {
            prop_assert!(error.to_string().contains(var.as_str()), "{error}");
        }
    }
    Ok(())
}

proptest! {
    // A few hundred cases in `make test`; PROPTEST_CASES for a soak.
    #![proptest_config(ProptestConfig {
        cases: cases_from_env(128),
        ..ProptestConfig::default()
    })]

    #[test]
    fn hostile_configurations_are_refused_with_a_location_never_a_panic_or_hang(
        bytes in document(),
        vars in environment(),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("arauto.toml");
        std::fs::write(&path, &bytes).expect("write config");
        let env: Vec<(OsString, OsString)> = vars
            .into_iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect();
        let started = Instant::now();
        let loaded = config::load_with_env(Some(&path), env);
        prop_assert!(
            started.elapsed() < Duration::from_secs(10),
            "loading took {:?}",
            started.elapsed()
        );
        if let Err(errors) = &loaded {
            check_located(errors, &path)?;
        }
        if let Ok(config) = loaded {
            // What loads must also pass the start-time check or refuse with the file named.
            if let Err(errors) = config::require_something_configured(config) {
                check_located(&errors, &path)?;
            }
        }
    }
}
