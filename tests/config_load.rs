//! Loading good configurations: the shipped example, defaults, environment
//! overrides, secrets from files and variables, and redaction.

// All test code: with this, clippy's allow-unwrap/expect-in-tests covers the
// helper functions too, not only the #[test] ones (see clippy.toml).
#![cfg(test)]

use crate::support;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use arauto::config::{self, Config, Recognition, Setting};
use arauto::model::NotificationKind;
use arauto::state::BuildOptions;
use jiff::SignedDuration;

fn env(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
    pairs
        .iter()
        .map(|(k, v)| (OsString::from(k), OsString::from(v)))
        .collect()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write test file");
    path
}

fn load(text: &str, vars: &[(&str, &str)]) -> (tempfile::TempDir, Config) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "arauto.toml", text);
    match config::load_with_env(Some(&path), env(vars)) {
        Ok(config) => (dir, config),
        Err(e) => panic!("expected a valid configuration, got:\n{e}"),
    }
}

/// The example's secrets live in a systemd-style credentials directory.
fn credentials() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "li-chave-api", "li-secret-123\n");
    write(dir.path(), "li-chave-aplicacao", "li-app-456\n");
    write(dir.path(), "evolution-apikey", "evolution-secret\n");
    dir
}

#[tokio::test]
async fn shipped_example_loads_and_documents_every_key() {
    support::plugins::first_party_plugins();
    let creds = credentials();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/arauto.toml");
    let vars = env(&[(
        "CREDENTIALS_DIRECTORY",
        creds.path().to_str().expect("utf-8"),
    )]);
    let config = match config::load_with_env(Some(&example), vars) {
        Ok(config) => config,
        Err(e) => panic!("config/arauto.toml must be valid:\n{e}"),
    };
    assert!(config.warnings().is_empty(), "{:?}", config.warnings());
    // …and builds through the startup path `arauto validate` uses.
    let options = BuildOptions::default();
    let host = arauto::plugin::PluginHost::new(arauto::plugin::HostConfig::with_cache_dir(
        support::host::shared_cache_dir(),
    ))
    .expect("plugin host");
    if let Err(error) = arauto::state::build(config.clone(), &options, &host).await {
        panic!("config/arauto.toml must build: {error}");
    }
    let store = &config.stores["loja1"];
    assert_eq!(store.platform, "loja-integrada");
    assert_eq!(store.channels, ["whatsapp"]);
    assert_eq!(
        store.settings.get("api_key").map(Setting::expose),
        Some("li-secret-123")
    );
    assert_eq!(
        store.settings.get("application_key").map(Setting::expose),
        Some("li-app-456")
    );
    let channel = &config.channels["whatsapp"];
    assert_eq!(channel.plugin, "evolution-api");
    assert_eq!(
        channel.settings.get("api_key").map(Setting::expose),
        Some("evolution-secret")
    );
    assert_eq!(
        config.notification(NotificationKind::WaitingPayment).delay,
        SignedDuration::from_mins(30)
    );

    // Every key the schema knows appears in the example (commented out or not).
    let text = std::fs::read_to_string(&example).expect("read example");
    let serialized = serde_json::to_value(&config).expect("serialize");
    let mut missing = Vec::new();
    collect_keys(&serialized, &mut missing, &text);
    for key in [
        "plugin_dir",
        "metrics_listen",
        "[daemon.webhooks]",
        "per_store_per_minute",
        "webhook_token",
        "first_sync_cutoff",
        "plugin",
        "plugin_path",
        "daily_cap",
        "warmup",
        "template_file",
        "named",
        "max_attempts",
        "allowed_hosts",
        "call_timeout",
        "memory_limit",
        "max_response_bytes",
        "requests_per_minute",
        "_file",
        "_env",
    ] {
        if !text.contains(key) {
            missing.push(key.to_owned());
        }
    }
    assert!(
        missing.is_empty(),
        "keys not documented in config/arauto.toml: {missing:?}"
    );
}

fn collect_keys(value: &serde_json::Value, missing: &mut Vec<String>, text: &str) {
    if let serde_json::Value::Object(map) = value {
        for (key, child) in map {
            // Ids, kinds and settings are data, not schema keys.
            let data = [
                "loja1",
                "whatsapp",
                "settings",
                "recognition",
                "notifications",
                "templates",
                "id",
            ];
            if !data.contains(&key.as_str()) && !text.contains(key.as_str()) {
                missing.push(key.clone());
            }
            if !["settings", "notifications"].contains(&key.as_str()) {
                collect_keys(child, missing, text);
            }
        }
    }
}

#[test]
fn an_empty_webhooks_table_turns_the_listener_on_with_its_defaults() {
    let (_dir, config) = load("[daemon.webhooks]\n", &[]);
    let webhooks = config.daemon.webhooks.as_ref().expect("on");
    assert_eq!(webhooks.listen.to_string(), "127.0.0.1:8480");
    assert!(!webhooks.allow_remote);
    assert_eq!(webhooks.max_body_bytes, config::ByteSize(256 * 1024));
    assert_eq!(webhooks.per_store_per_minute, 120);
    let (_dir, config) = load(
        "[daemon.webhooks]\nlisten = \"0.0.0.0:8480\"\nallow_remote = true\nmax_body_bytes = \"1MiB\"\n",
        &[],
    );
    let webhooks = config.daemon.webhooks.as_ref().expect("on");
    assert_eq!(webhooks.listen.to_string(), "0.0.0.0:8480");
    assert_eq!(webhooks.max_body_bytes, config::ByteSize::mib(1));
}

#[test]
fn minimal_file_gets_every_default() {
    let (_dir, config) = load("", &[]);
    let daemon = &config.daemon;
    assert_eq!(daemon.state_dir, Path::new("/var/lib/arauto"));
    assert_eq!(daemon.cache_dir, Path::new("/var/cache/arauto"));
    assert_eq!(daemon.control_socket, Path::new("/run/arauto/control.sock"));
    assert_eq!(daemon.plugin_dir, config::default_plugin_dir());
    assert_eq!(daemon.shutdown_timeout, SignedDuration::from_secs(40));
    assert_eq!(daemon.timezone.iana_name(), Some("America/Sao_Paulo"));
    assert_eq!(daemon.log_level, "info");
    assert_eq!(
        daemon.history_retention,
        SignedDuration::from_hours(90 * 24)
    );
    assert_eq!(daemon.metrics_listen, None);
    assert_eq!(daemon.webhooks, None, "no listener unless asked for");
    assert_eq!(config.plugins.memory_limit, config::ByteSize::mib(64));
    assert_eq!(config.plugins.max_response_bytes, config::ByteSize::mib(4));
    assert_eq!(config.checklist.max_backlog, 500);
    assert!(config.notification(NotificationKind::OrderPaid).enabled);
    assert!(!config.notification(NotificationKind::AbandonedCart).enabled);
    assert_eq!(config.notifications.len(), NotificationKind::ALL.len());
}

#[test]
fn store_and_channel_defaults_and_resolved_paths() {
    let (dir, config) = load(
        r#"
        [daemon]
        plugin_dir = "plugins"
        timezone = "America/Manaus"
        [plugins]
        call_timeout = "10s"
        [stores.a]
        platform = "loja-integrada"
        channels = ["wa"]
        [stores.a.sandbox]
        memory_limit = "32MiB"
        [stores.b]
        platform = "loja-integrada"
        plugin = "/opt/x.wasm"
        timezone = "UTC"
        channels = ["wa"]
        [channels.wa]
        plugin = "whatsapp-cloud"
        "#,
        &[],
    );
    let a = &config.stores["a"];
    assert_eq!(
        a.plugin_path,
        dir.path().join("plugins/loja-integrada.wasm")
    );
    assert_eq!(a.poll_interval, SignedDuration::from_mins(5));
    assert_eq!(a.timezone.iana_name(), Some("America/Manaus"));
    assert!(a.enabled);
    assert_eq!(a.sandbox.call_timeout, SignedDuration::from_secs(10));
    assert_eq!(a.sandbox.memory_limit, config::ByteSize::mib(32));
    assert_eq!(config.stores["b"].plugin_path, Path::new("/opt/x.wasm"));
    assert_eq!(config.stores["b"].timezone.iana_name(), Some("UTC"));
    let wa = &config.channels["wa"];
    assert_eq!(
        wa.plugin_path,
        dir.path().join("plugins/whatsapp-cloud.wasm")
    );
    assert_eq!(wa.max_attempts, 5);
    assert_eq!(wa.retry_base, SignedDuration::from_secs(30));
    assert_eq!(wa.retry_max, SignedDuration::from_hours(1));
    assert_eq!(wa.daily_reset, jiff::civil::time(21, 0, 0, 0));
    assert_eq!(wa.min_interval, None);
}

#[test]
fn environment_overrides_win_over_the_file() {
    let (_dir, config) = load(
        r#"
        [daemon]
        log_level = "info"
        [stores.loja1]
        platform = "loja-integrada"
        poll_interval = "5m"
        channels = ["wa"]
        [channels.wa]
        plugin = "whatsapp-cloud"
        [channels.sms]
        plugin = "twilio-sms"
        "#,
        &[
            ("ARAUTO_DAEMON__LOG_LEVEL", "debug"),
            ("ARAUTO_STORES__LOJA1__POLL_INTERVAL", "1m"),
            ("ARAUTO_STORES__LOJA1__CHANNELS", "[wa, sms]"),
            ("ARAUTO_STORES__LOJA1__ENABLED", "true"),
            ("ARAUTO_CHANNELS__WA__DAILY_CAP", "250"),
            ("ARAUTO_CHECKLIST__MAX_INVALID_EVENT_SHARE", "0.5"),
            ("ARAUTO_STORES__LOJA1__SETTINGS__API_KEY", "from-env"),
            ("ARAUTO_CONFIG", "/ignored/as/an/override"),
            ("UNRELATED", "x"),
        ],
    );
    assert_eq!(config.daemon.log_level, "debug");
    let store = &config.stores["loja1"];
    assert_eq!(store.poll_interval, SignedDuration::from_mins(1));
    assert_eq!(store.channels, ["wa", "sms"]);
    assert_eq!(config.channels["wa"].daily_cap, Some(250));
    assert!((config.checklist.max_invalid_event_share - 0.5).abs() < f64::EPSILON);
    let api_key = store.settings.get("api_key").expect("api_key from env");
    assert!(api_key.is_secret());
    assert_eq!(api_key.expose(), "from-env");
}

#[test]
fn environment_can_add_a_whole_store() {
    let (_dir, config) = load(
        "[channels.wa]\nplugin = \"whatsapp-cloud\"\n",
        &[
            ("ARAUTO_STORES__LOJA2__PLATFORM", "loja-integrada"),
            ("ARAUTO_STORES__LOJA2__CHANNELS", "wa"),
        ],
    );
    assert_eq!(config.stores["loja2"].channels, ["wa"]);
}

#[test]
fn config_path_comes_from_arauto_config_when_not_given() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        dir.path(),
        "elsewhere.toml",
        "[daemon]\nlog_level = \"warn\"\n[channels.c]\nplugin = \"webhook\"\n",
    );
    let config = config::load_with_env(
        None,
        env(&[("ARAUTO_CONFIG", path.to_str().expect("utf-8"))]),
    )
    .expect("loads");
    assert_eq!(config.source_path(), path);
    assert_eq!(config.daemon.log_level, "warn");
}

#[test]
fn secrets_from_files_variables_and_secret_looking_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "token.txt", "file-secret\r\n");
    let creds = tempfile::tempdir().expect("tempdir");
    write(creds.path(), "cred", "credential-secret\n\n");
    let text = r#"
        [stores.s]
        platform = "loja-integrada"
        channels = ["c"]
        [stores.s.settings]
        token_file = "token.txt"
        password_env = "SHOP_PASSWORD"
        store_url = "https://loja.example"
        page_size = 50
        verbose = true
        client_secret = "inline-secret"
        extra = { a = 1 }
        [channels.c]
        plugin = "webhook"
        [channels.c.settings]
        signing_key_file = "cred"
        "#;
    let path = write(dir.path(), "arauto.toml", text);
    let vars = env(&[
        ("SHOP_PASSWORD", "env-secret"),
        (
            "CREDENTIALS_DIRECTORY",
            creds.path().to_str().expect("utf-8"),
        ),
    ]);
    // token.txt is relative and CREDENTIALS_DIRECTORY is set: it must be found
    // there, not next to the file — so without it in creds, loading fails…
    let err = config::load_with_env(Some(&path), vars.clone()).expect_err("token.txt not in creds");
    assert!(
        err.to_string().contains("stores.s.settings.token_file"),
        "{err}"
    );
    // …and once it is there, everything resolves.
    write(creds.path(), "token.txt", "file-secret\r\n");
    let config = config::load_with_env(Some(&path), vars).unwrap();

    let settings = &config.stores["s"].settings;
    let get = |k: &str| settings.get(k).unwrap_or_else(|| panic!("setting {k}"));
    assert_eq!(get("token").expose(), "file-secret");
    assert!(get("token").is_secret());
    assert_eq!(get("password").expose(), "env-secret");
    assert!(get("password").is_secret());
    assert!(get("client_secret").is_secret());
    assert!(!get("store_url").is_secret());
    assert_eq!(get("page_size").expose(), "50");
    assert_eq!(get("verbose").expose(), "true");
    assert_eq!(get("extra").expose(), r#"{"a":1}"#);
    assert!(settings.get("token_file").is_none());
    // One trailing newline is dropped, not more.
    assert_eq!(
        config.channels["c"]
            .settings
            .get("signing_key")
            .map(Setting::expose),
        Some("credential-secret\n")
    );

    // Never in Debug, never when serialized.
    let debug = format!("{config:?}");
    let json = serde_json::to_string(&config).expect("serialize");
    for secret in [
        "file-secret",
        "env-secret",
        "inline-secret",
        "credential-secret",
    ] {
        assert!(!debug.contains(secret), "{secret} leaked into Debug");
        assert!(!json.contains(secret), "{secret} leaked into JSON");
    }
    assert!(debug.contains("<redacted>"));
    assert!(json.contains("https://loja.example"));
}

#[test]
fn recognition_quiet_hours_and_notification_channels() {
    let (_dir, config) = load(
        r#"
        [stores.s]
        platform = "loja-integrada"
        channels = ["wa"]
        quiet_hours = { start = "21:00", end = "08:00" }
        first_sync_cutoff = 2025-01-31T00:00:00-03:00
        [stores.s.recognition]
        pedido_pago = "order-paid"
        pedido_entregue = "off"
        [channels.wa]
        plugin = "whatsapp-cloud"
        warmup = { start = 50, step = 25 }
        [notifications.order-paid]
        quiet_hours = "ignore"
        [notifications.order-paid.channels.wa]
        template = "Pago!"
        "#,
        &[],
    );
    let store = &config.stores["s"];
    assert_eq!(
        store.recognition["pedido_pago"],
        Recognition::Notify(NotificationKind::OrderPaid)
    );
    assert_eq!(store.recognition["pedido_entregue"], Recognition::Off);
    let quiet = store.quiet_hours.expect("quiet hours");
    assert!(quiet.contains(jiff::civil::time(23, 0, 0, 0)));
    assert!(quiet.contains(jiff::civil::time(7, 59, 0, 0)));
    assert!(!quiet.contains(jiff::civil::time(8, 0, 0, 0)));
    assert_eq!(
        store.first_sync_cutoff.map(|t| t.to_string()).as_deref(),
        Some("2025-01-31T03:00:00Z")
    );
    assert_eq!(
        config.channels["wa"].warmup.map(|w| w.limit_on_day(2)),
        Some(100)
    );
    let paid = config.notification(NotificationKind::OrderPaid);
    assert_eq!(paid.quiet_hours, config::QuietHoursPolicy::Ignore);
    assert_eq!(
        paid.template_for("wa").map(|t| t.text.as_str()),
        Some("Pago!")
    );
    assert_eq!(paid.template_for("other"), None);
}

#[test]
fn template_file_is_read_relative_to_the_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("templates")).expect("mkdir");
    write(
        dir.path(),
        "templates/shipped.txt",
        "Enviado {{ order.number }}",
    );
    let path = write(
        dir.path(),
        "arauto.toml",
        "[notifications.order-shipped]\ntemplate_file = \"templates/shipped.txt\"\n",
    );
    let config = config::load_with_env(Some(&path), env(&[])).unwrap();
    let template = config
        .notification(NotificationKind::OrderShipped)
        .template
        .clone();
    let template = template.expect("template");
    assert_eq!(template.text, "Enviado {{ order.number }}");
    assert_eq!(
        template.file,
        Some(dir.path().join("templates/shipped.txt"))
    );
}

#[test]
fn unused_channel_and_channelless_store_are_warnings_not_errors() {
    let (_dir, config) = load(
        r#"
        [stores.s]
        platform = "loja-integrada"
        [channels.spare]
        plugin = "telegram"
        "#,
        &[],
    );
    let warnings: Vec<String> = config.warnings().iter().map(ToString::to_string).collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("channels.spare") && w.contains("no enabled store uses")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("stores.s.channels") && w.contains("no channels")),
        "{warnings:?}"
    );
}

#[test]
fn a_secret_variable_named_arauto_is_a_secret_not_an_override() {
    // Issue 18 point 12: `api_key_env = "ARAUTO_LI_KEY"` was read as an
    // override of the key `li_key` and refused as unknown.
    let text = r#"
        [stores.s]
        platform = "loja-integrada"
        channels = ["c"]
        [stores.s.settings]
        api_key_env = "ARAUTO_LI_KEY"
        application_key_env = "ARAUTO_APP__KEY"
        [channels.c]
        plugin = "webhook"
        "#;
    let (_dir, config) = load(
        text,
        &[
            ("ARAUTO_LI_KEY", "li-secret"),
            ("ARAUTO_APP__KEY", "app-secret"),
            ("ARAUTO_STORES__S__POLL_INTERVAL", "10m"),
        ],
    );
    let settings = &config.stores["s"].settings;
    assert_eq!(
        settings.get("api_key").map(Setting::expose),
        Some("li-secret")
    );
    assert_eq!(
        settings.get("application_key").map(Setting::expose),
        Some("app-secret")
    );
    // Other ARAUTO_ variables are still overrides.
    assert_eq!(
        config.stores["s"].poll_interval,
        SignedDuration::from_mins(10)
    );
}

#[test]
fn limits_accept_their_bounds() {
    let text = r#"
        [plugins]
        memory_limit = "4GiB"
        call_timeout = "10m"
        [stores.s]
        platform = "loja-integrada"
        channels = ["c"]
        poll_interval = "24h"
        [stores.fast]
        platform = "loja-integrada"
        channels = ["c"]
        poll_interval = "30s"
        [stores.sim]
        platform = "loja-integrada"
        channels = ["c"]
        poll_interval = "1s"
        [stores.sim.sandbox]
        allow_private_addresses = true
        [channels.c]
        plugin = "webhook"
        min_interval = "1h"
        [channels.c.settings]
        headers = { X-Api-Key = "k" }
        "header.X-Other" = "v"
        "#;
    let (_dir, config) = load(text, &[("ARAUTO_DAEMON__SHUTDOWN_TIMEOUT", "11m")]);
    assert_eq!(
        config.stores["s"].poll_interval,
        SignedDuration::from_hours(24)
    );
    assert_eq!(
        config.stores["sim"].poll_interval,
        SignedDuration::from_secs(1)
    );
    assert_eq!(
        config.channels["c"].min_interval,
        Some(SignedDuration::from_hours(1))
    );
}

#[test]
fn a_channel_used_only_as_a_fallback_is_not_an_unused_channel() {
    let (_dir, config) = load(
        r#"
        [stores.s]
        platform = "loja-integrada"
        channels = ["wa"]
        [channels.wa]
        plugin = "whatsapp-cloud"
        fallback = "sms"
        [channels.sms]
        plugin = "twilio-sms"
        "#,
        &[],
    );
    assert!(config.warnings().is_empty(), "{:?}", config.warnings());
    assert_eq!(config.channels["wa"].fallback.as_deref(), Some("sms"));
    assert_eq!(config.channels["sms"].fallback, None);
}
