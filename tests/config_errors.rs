//! Bad configurations: every error names the file (and line) or the variable,
//! the full key path and the bad value, and all errors of a file come together.

// All test code: with this, clippy's allow-unwrap/expect-in-tests covers the
// helper functions too, not only the #[test] ones (see clippy.toml).
#![cfg(test)]

use std::ffi::OsString;
use std::path::PathBuf;

use arauto::config::{self, ConfigError, ConfigErrors, Origin};

/// A store and a channel that are valid, to build bad variants on.
const BASE: &str = r#"
[stores.loja1]
platform = "loja-integrada"
channels = ["whatsapp"]

[channels.whatsapp]
plugin = "whatsapp-cloud"
"#;

struct Failure {
    _dir: tempfile::TempDir,
    path: PathBuf,
    errors: ConfigErrors,
}

fn fail(text: &str) -> Failure {
    fail_with_env(text, &[])
}

fn fail_with_env(text: &str, vars: &[(&str, &str)]) -> Failure {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("arauto.toml");
    std::fs::write(&path, text).expect("write config");
    let vars: Vec<(OsString, OsString)> = vars
        .iter()
        .map(|(k, v)| (OsString::from(k), OsString::from(v)))
        .collect();
    match config::load_with_env(Some(&path), vars) {
        Ok(config) => panic!("expected errors, the configuration loaded: {config:?}"),
        Err(errors) => Failure {
            _dir: dir,
            path,
            errors,
        },
    }
}

impl Failure {
    /// The error at `key`; its text must name the file (with a line), the key and
    /// `value`, and contain `fragment`.
    fn at(&self, key: &str, value: Option<&str>, fragment: &str) -> &ConfigError {
        let all = self.errors.to_string();
        assert!(
            all.contains(&self.path.display().to_string()),
            "file not named:\n{all}"
        );
        let Some(error) = self.errors.errors.iter().find(|e| e.key == key) else {
            panic!("no error at key {key}:\n{all}");
        };
        let text = error.to_string();
        assert!(text.contains(key), "key {key} not in: {text}");
        if let Some(value) = value {
            assert!(text.contains(value), "value {value} not in: {text}");
        }
        assert!(text.contains(fragment), "{fragment:?} not in: {text}");
        match &error.origin {
            Origin::File { path, position } => {
                assert_eq!(path, &self.path);
                assert!(position.is_some(), "no line for {key}: {text}");
                let (line, _) = position.unwrap_or_default();
                assert!(
                    text.contains(&format!("{}:{line}:", self.path.display())),
                    "{text}"
                );
            }
            Origin::Env { var } => assert!(text.contains(var.as_str()), "{text}"),
        }
        error
    }

    fn line_of(&self, key: &str) -> usize {
        self.errors
            .errors
            .iter()
            .find(|e| e.key == key)
            .and_then(|e| match &e.origin {
                Origin::File {
                    position: Some((line, _)),
                    ..
                } => Some(*line),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no positioned error at {key}:\n{}", self.errors))
    }
}

#[test]
fn unknown_key_suggests_the_close_one_and_points_at_its_line() {
    let f = fail(&format!("{BASE}\n[daemon]\nshutdown_timout = \"10s\"\n"));
    f.at(
        "daemon.shutdown_timout",
        None,
        "unknown key (did you mean `shutdown_timeout`?)",
    );
    assert_eq!(f.line_of("daemon.shutdown_timout"), 10);
}

#[test]
fn unknown_key_without_a_close_match_lists_the_valid_ones() {
    let f = fail(&format!("{BASE}\n[plugins]\nbanana = 1\n"));
    f.at(
        "plugins.banana",
        None,
        "expected one of: memory_limit, call_timeout, max_response_bytes",
    );
}

#[test]
fn unknown_top_level_section() {
    let f = fail(&format!("{BASE}\n[store.loja2]\nplatform = \"x\"\n"));
    f.at("store", None, "did you mean `stores`?");
}

#[test]
fn wrong_type() {
    let f = fail(&BASE.replace("channels = [\"whatsapp\"]", "channels = \"whatsapp\""));
    f.at(
        "stores.loja1.channels",
        Some("\"whatsapp\""),
        "expected a list of strings, found a string",
    );
}

#[test]
fn number_where_a_duration_is_expected() {
    let f = fail(&format!("{BASE}\n[daemon]\nshutdown_timeout = 30\n"));
    f.at("daemon.shutdown_timeout", Some("= 30"), "with a unit");
}

#[test]
fn bad_duration() {
    let f = fail(&BASE.replace(
        "platform = \"loja-integrada\"",
        "platform = \"loja-integrada\"\npoll_interval = \"5 minutos\"",
    ));
    f.at(
        "stores.loja1.poll_interval",
        Some("\"5 minutos\""),
        r#"expected a duration like "20s""#,
    );
}

#[test]
fn negative_duration() {
    let f = fail(&format!("{BASE}\n[daemon]\nshutdown_timeout = \"-5s\"\n"));
    f.at(
        "daemon.shutdown_timeout",
        Some("\"-5s\""),
        "must not be negative",
    );
}

#[test]
fn zero_poll_interval() {
    let f = fail(&BASE.replace(
        "platform = \"loja-integrada\"",
        "platform = \"loja-integrada\"\npoll_interval = \"0s\"",
    ));
    f.at(
        "stores.loja1.poll_interval",
        Some("\"0s\""),
        "must be longer than zero",
    );
}

#[test]
fn bad_time_zone() {
    let f = fail(&format!(
        "{BASE}\n[daemon]\ntimezone = \"America/Sao_Pablo\"\n"
    ));
    f.at(
        "daemon.timezone",
        Some("\"America/Sao_Pablo\""),
        "unknown time zone",
    );
}

#[test]
fn bad_quiet_hours_time() {
    let f = fail(&BASE.replace(
        "channels = [\"whatsapp\"]",
        "channels = [\"whatsapp\"]\nquiet_hours = { start = \"25:00\", end = \"8h\" }",
    ));
    f.at("stores.loja1.quiet_hours.start", Some("\"25:00\""), "HH:MM");
    f.at("stores.loja1.quiet_hours.end", Some("\"8h\""), "HH:MM");
}

#[test]
fn empty_quiet_hours_window() {
    let f = fail(&BASE.replace(
        "channels = [\"whatsapp\"]",
        "channels = [\"whatsapp\"]\nquiet_hours = { start = \"21:00\", end = \"21:00\" }",
    ));
    f.at(
        "stores.loja1.quiet_hours",
        None,
        "start and end are both 21:00",
    );
}

#[test]
fn quiet_hours_missing_end() {
    let f = fail(&BASE.replace(
        "channels = [\"whatsapp\"]",
        "channels = [\"whatsapp\"]\nquiet_hours = { start = \"21:00\" }",
    ));
    f.at("stores.loja1.quiet_hours.end", None, "missing");
}

#[test]
fn store_naming_a_missing_channel() {
    let f = fail(&BASE.replace("channels = [\"whatsapp\"]", "channels = [\"whatsap\"]"));
    f.at(
        "stores.loja1.channels[0]",
        Some("\"whatsap\""),
        r#"no channel "whatsap" is defined (did you mean "whatsapp"?)"#,
    );
}

#[test]
fn channel_listed_twice() {
    let f = fail(&BASE.replace(
        "channels = [\"whatsapp\"]",
        "channels = [\"whatsapp\", \"whatsapp\"]",
    ));
    f.at(
        "stores.loja1.channels[1]",
        Some("\"whatsapp\""),
        "listed twice",
    );
}

#[test]
fn bad_store_id() {
    let f = fail(&format!(
        "{BASE}\n[stores.Loja2]\nplatform = \"loja-integrada\"\n"
    ));
    f.at(
        "stores.Loja2",
        None,
        "bad store id \"Loja2\": must match [a-z0-9][a-z0-9_-]*",
    );
}

#[test]
fn bad_channel_id() {
    let f = fail(&format!(
        "{BASE}\n[channels.\"zap zap\"]\nplugin = \"z-api\"\n"
    ));
    f.at("channels.\"zap zap\"", None, "bad channel id");
}

#[test]
fn duplicate_store_id_is_a_clear_syntax_error_with_its_line() {
    let f = fail(&format!(
        "{BASE}\n[stores.loja1]\nplatform = \"loja-integrada\"\n"
    ));
    let error = &f.errors.errors[0];
    let text = error.to_string();
    assert!(text.contains("duplicate key"), "{text}");
    assert!(text.contains("defined only once"), "{text}");
    assert!(
        text.contains("[stores.loja1]"),
        "the offending line is shown: {text}"
    );
    assert!(
        matches!(
            error.origin,
            Origin::File {
                position: Some((9, _)),
                ..
            }
        ),
        "{text}"
    );
}

#[test]
fn toml_syntax_error_has_line_and_column() {
    let f = fail(&format!("{BASE}\n[daemon]\nlog_level = \"info\n"));
    let text = f.errors.to_string();
    assert!(
        text.contains(&format!("{}:10:", f.path.display())),
        "{text}"
    );
    assert!(text.contains("TOML syntax error"), "{text}");
    assert!(text.contains("log_level = \"info"), "{text}");
}

#[test]
fn unknown_notification_kind() {
    let f = fail(&format!(
        "{BASE}\n[notifications.order-shiped]\nenabled = true\n"
    ));
    f.at(
        "notifications.order-shiped",
        None,
        r#"unknown notification kind "order-shiped" (did you mean "order-shipped"?)"#,
    );
}

#[test]
fn unknown_kind_in_recognition_lists_the_vocabulary() {
    let f = fail(&format!(
        "{BASE}\n[stores.loja1.recognition]\npedido_pago = \"paid\"\n"
    ));
    f.at(
        "stores.loja1.recognition.pedido_pago",
        Some("\"paid\""),
        "expected one of: waiting-payment",
    );
}

#[test]
fn template_and_template_file_both_set() {
    let f = fail(&format!(
        "{BASE}\n[notifications.order-paid]\ntemplate = \"Pago\"\ntemplate_file = \"paid.txt\"\n"
    ));
    f.at("notifications.order-paid.template_file", None, "not both");
}

#[test]
fn unreadable_template_file() {
    let f = fail(&format!(
        "{BASE}\n[notifications.order-paid]\ntemplate_file = \"nope/paid.txt\"\n"
    ));
    f.at(
        "notifications.order-paid.template_file",
        Some("\"nope/paid.txt\""),
        "cannot read template file",
    );
}

#[test]
fn unreadable_secret_file_names_key_and_path() {
    let f = fail(&format!(
        "{BASE}\n[channels.whatsapp.settings]\naccess_token_file = \"/nonexistent/wa-token\"\n"
    ));
    f.at(
        "channels.whatsapp.settings.access_token_file",
        Some("\"/nonexistent/wa-token\""),
        "cannot read secret file /nonexistent/wa-token",
    );
}

#[test]
fn secret_file_content_never_appears_in_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("empty-ish");
    std::fs::write(&secret, "\n").expect("write");
    let f = fail(&format!(
        "{BASE}\n[channels.whatsapp.settings]\naccess_token_file = {:?}\n[stores.loja1.settings]\napi_token = 5\nchave_api_env = \"LI_KEY\"\nchave_api = \"s3cr3t-inline\"\n",
        secret.display().to_string()
    ));
    f.at(
        "channels.whatsapp.settings.access_token_file",
        None,
        "is empty",
    );
    f.at(
        "stores.loja1.settings.chave_api_env",
        None,
        "given more than once",
    );
    assert!(
        !f.errors.to_string().contains("s3cr3t-inline"),
        "{}",
        f.errors
    );
}

#[test]
fn secret_from_unset_environment_variable() {
    let f = fail(&format!(
        "{BASE}\n[channels.whatsapp.settings]\naccess_token_env = \"WA_TOKEN\"\n"
    ));
    f.at(
        "channels.whatsapp.settings.access_token_env",
        Some("\"WA_TOKEN\""),
        "environment variable WA_TOKEN is not set",
    );
}

#[test]
fn metrics_on_a_public_address_needs_explicit_permission() {
    let f = fail(&format!(
        "{BASE}\n[daemon]\nmetrics_listen = \"0.0.0.0:9464\"\n"
    ));
    f.at(
        "daemon.metrics_listen",
        Some("\"0.0.0.0:9464\""),
        "loopback",
    );
    let f = fail(&format!(
        "{BASE}\n[daemon]\nmetrics_listen = \"localhost\"\n"
    ));
    f.at("daemon.metrics_listen", Some("\"localhost\""), "ip:port");
}

#[test]
fn webhooks_on_a_public_address_need_explicit_permission_and_sane_bounds() {
    let f = fail(&format!(
        "{BASE}\n[daemon.webhooks]\nlisten = \"0.0.0.0:8480\"\n"
    ));
    f.at(
        "daemon.webhooks.listen",
        Some("\"0.0.0.0:8480\""),
        "loopback",
    );
    let f = fail(&format!(
        "{BASE}\n[daemon.webhooks]\nlisten = \"localhost\"\n"
    ));
    f.at("daemon.webhooks.listen", Some("\"localhost\""), "ip:port");
    let f = fail(&format!(
        "{BASE}\n[daemon.webhooks]\nmax_body_bytes = \"10MiB\"\n"
    ));
    f.at(
        "daemon.webhooks.max_body_bytes",
        Some("\"10MiB\""),
        "at most",
    );
    let f = fail(&format!(
        "{BASE}\n[daemon.webhooks]\nper_store_per_minute = 0\n"
    ));
    f.at("daemon.webhooks.per_store_per_minute", Some("0"), "between");
    let f = fail(&format!(
        "{BASE}\n[daemon.webhooks]\nlissten = \"127.0.0.1:1\"\n"
    ));
    f.at("daemon.webhooks.lissten", None, "");
}

#[test]
fn bad_size() {
    let f = fail(&format!("{BASE}\n[plugins]\nmemory_limit = \"64 megs\"\n"));
    f.at(
        "plugins.memory_limit",
        Some("\"64 megs\""),
        "expected a size like",
    );
    let f = fail(&format!(
        "{BASE}\n[stores.loja1.sandbox]\nmax_response_bytes = \"10B\"\n"
    ));
    f.at(
        "stores.loja1.sandbox.max_response_bytes",
        Some("\"10B\""),
        "at least 1KiB",
    );
}

#[test]
fn environment_override_with_a_bad_value_names_the_variable() {
    let f = fail_with_env(BASE, &[("ARAUTO_DAEMON__SHUTDOWN_TIMEOUT", "soon")]);
    let error = f.at(
        "daemon.shutdown_timeout",
        Some("\"soon\""),
        "expected a duration",
    );
    assert_eq!(
        error.origin,
        Origin::Env {
            var: "ARAUTO_DAEMON__SHUTDOWN_TIMEOUT".to_owned()
        }
    );
    assert!(
        error
            .to_string()
            .starts_with("environment variable ARAUTO_DAEMON__SHUTDOWN_TIMEOUT: ")
    );
}

#[test]
fn environment_override_of_an_unknown_key_names_the_variable() {
    let f = fail_with_env(
        BASE,
        &[
            ("ARAUTO_STORES__LOJA1__POLL", "1m"),
            ("ARAUTO_DAEMON____LOG_LEVEL", "debug"),
        ],
    );
    let error = f.at("stores.loja1.poll", None, "did you mean `poll_interval`?");
    assert_eq!(
        error.origin,
        Origin::Env {
            var: "ARAUTO_STORES__LOJA1__POLL".to_owned()
        }
    );
    assert!(
        f.errors
            .to_string()
            .contains("ARAUTO_DAEMON____LOG_LEVEL: malformed override name"),
        "{}",
        f.errors
    );
}

#[test]
fn missing_platform_and_plugin() {
    let f = fail("[stores.loja1]\nchannels = [\"wa\"]\n[channels.wa]\ndescription = \"x\"\n");
    f.at(
        "stores.loja1.platform",
        None,
        "missing: the connector plugin name",
    );
    f.at(
        "channels.wa.plugin",
        None,
        "missing: the sender plugin name",
    );
}

#[test]
fn plugin_name_must_not_be_a_path() {
    let f = fail(&BASE.replace("plugin = \"whatsapp-cloud\"", "plugin = \"../../bin/sh\""));
    f.at(
        "channels.whatsapp.plugin",
        Some("\"../../bin/sh\""),
        "not a plugin name",
    );
}

#[test]
fn retry_max_shorter_than_retry_base() {
    let f = fail(&format!("{BASE}retry_base = \"10m\"\nretry_max = \"1m\"\n"));
    f.at(
        "channels.whatsapp.retry_max",
        Some("\"1m\""),
        "shorter than retry_base (10m)",
    );
}

#[test]
fn zero_max_attempts_and_daily_cap() {
    let f = fail(&format!("{BASE}max_attempts = 0\ndaily_cap = -3\n"));
    f.at(
        "channels.whatsapp.max_attempts",
        Some("= 0"),
        "must be at least 1",
    );
    f.at(
        "channels.whatsapp.daily_cap",
        Some("= -3"),
        "must be at least 1",
    );
}

#[test]
fn notification_override_for_a_missing_channel() {
    let f = fail(&format!(
        "{BASE}\n[notifications.order-paid.channels.sms]\ntemplate = \"Pago\"\n"
    ));
    f.at(
        "notifications.order-paid.channels.sms",
        None,
        r#"no channel "sms" is defined"#,
    );
}

#[test]
fn bad_log_level_and_quiet_hours_policy() {
    let f = fail(&format!(
        "{BASE}\n[daemon]\nlog_level = \"loud\"\n[notifications.order-paid]\nquiet_hours = \"skip\"\n"
    ));
    f.at("daemon.log_level", Some("\"loud\""), "is not a log level");
    f.at(
        "notifications.order-paid.quiet_hours",
        Some("\"skip\""),
        r#"expected "defer""#,
    );
}

#[test]
fn bad_first_sync_cutoff() {
    let f = fail(&BASE.replace(
        "channels = [\"whatsapp\"]",
        "channels = [\"whatsapp\"]\nfirst_sync_cutoff = \"2025-01-31 00:00\"",
    ));
    f.at(
        "stores.loja1.first_sync_cutoff",
        Some("\"2025-01-31 00:00\""),
        "RFC 3339",
    );
}

#[test]
fn section_of_the_wrong_type() {
    let f = fail("stores = 5\n");
    f.at("stores", Some("= 5"), "expected a table, found a number");
}

#[test]
fn every_error_of_a_file_is_reported_at_once() {
    let f = fail(
        r#"
[daemon]
shutdown_timeout = "-1s"
timezone = "Mars/Olympus"

[stores.loja1]
platform = "loja-integrada"
poll_interval = "often"
channels = ["sms"]
colour = "blue"

[channels.whatsapp]
plugin = "whatsapp-cloud"
max_attempts = "five"

[notifications.order-lost]
"#,
    );
    let keys: Vec<&str> = f.errors.errors.iter().map(|e| e.key.as_str()).collect();
    for key in [
        "daemon.shutdown_timeout",
        "daemon.timezone",
        "stores.loja1.poll_interval",
        "stores.loja1.colour",
        "stores.loja1.channels[0]",
        "channels.whatsapp.max_attempts",
        "notifications.order-lost",
    ] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }
    assert!(f.errors.to_string().starts_with(&format!(
        "invalid configuration {} (7 errors):",
        f.path.display()
    )));
}

#[test]
fn missing_file_names_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("absent.toml");
    let err = config::load_with_env(Some(&path), Vec::new()).expect_err("no file");
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("not found"), "{text}");
}

#[test]
fn a_shutdown_shorter_than_a_plugin_call_is_a_warning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("arauto.toml");
    std::fs::write(
        &path,
        "[daemon]\nshutdown_timeout = \"20s\"\n[plugins]\ncall_timeout = \"30s\"\n",
    )
    .expect("write");
    let config = arauto::config::load_with_env(Some(&path), Vec::new()).expect("still valid");
    let warning = config
        .warnings()
        .iter()
        .map(ToString::to_string)
        .find(|w| w.contains("daemon.shutdown_timeout"))
        .expect("a warning");
    assert!(warning.contains("plugins.call_timeout (30s)"), "{warning}");
}

// Issue 18 point 11: values that were accepted silently and made the daemon
// hammer a platform, wait for decades or reserve absurd resources.

#[test]
fn a_poll_interval_below_the_platform_floor_is_refused() {
    let f = fail(&BASE.replace(
        "platform = \"loja-integrada\"",
        "platform = \"loja-integrada\"\npoll_interval = \"1ms\"",
    ));
    f.at(
        "stores.loja1.poll_interval",
        Some("\"1ms\""),
        "must be at least 30s",
    );
    // A platform on a private address (a simulator) may be polled every second, not faster.
    let f = fail(&format!(
        "{}\n[stores.loja1.sandbox]\nallow_private_addresses = true\n",
        BASE.replace(
            "platform = \"loja-integrada\"",
            "platform = \"loja-integrada\"\npoll_interval = \"500ms\"",
        )
    ));
    f.at(
        "stores.loja1.poll_interval",
        Some("\"500ms\""),
        "must be at least 1s",
    );
}

#[test]
fn durations_and_sizes_above_their_ceilings_are_refused() {
    let f = fail(&format!(
        "{}\n[plugins]\nmemory_limit = \"100000GiB\"\ncall_timeout = \"100d\"\n\
         [stores.loja1.sandbox]\nmemory_limit = \"5GiB\"\ncall_timeout = \"11m\"\n",
        BASE.replace(
            "platform = \"loja-integrada\"",
            "platform = \"loja-integrada\"\npoll_interval = \"36500d\"",
        )
        .replace(
            "plugin = \"whatsapp-cloud\"",
            "plugin = \"whatsapp-cloud\"\nmin_interval = \"3650d\"",
        )
    ));
    f.at(
        "stores.loja1.poll_interval",
        Some("\"36500d\""),
        "must be at most 1d",
    );
    f.at(
        "channels.whatsapp.min_interval",
        Some("\"3650d\""),
        "must be at most 1h",
    );
    f.at(
        "plugins.memory_limit",
        Some("\"100000GiB\""),
        "must be at most 4GiB",
    );
    f.at(
        "plugins.call_timeout",
        Some("\"100d\""),
        "must be at most 10m",
    );
    f.at(
        "stores.loja1.sandbox.memory_limit",
        Some("\"5GiB\""),
        "must be at most 4GiB",
    );
    f.at(
        "stores.loja1.sandbox.call_timeout",
        Some("\"11m\""),
        "must be at most 10m",
    );
}

#[test]
fn an_endpoint_setting_must_be_a_quoted_url_while_other_numbers_pass_as_text() {
    let f = fail(&format!(
        "{BASE}\n[stores.loja1.settings]\nbase_url = 5\napi_key = 12345\npage_size = 50\n"
    ));
    f.at(
        "stores.loja1.settings.base_url",
        Some("5"),
        "write an http(s) URL in quotes",
    );
    let all = f.errors.to_string();
    assert!(
        !all.contains("api_key") && !all.contains("page_size") && !all.contains("12345"),
        "a bare number is passed to the plugin as its text:\n{all}"
    );
}

#[test]
fn allowed_hosts_errors_name_the_sandbox_key() {
    let f = fail(&format!(
        "{BASE}\n[stores.loja1.sandbox]\nallowed_hosts = [\"https://ok.example\", \"api.example.com\", \"ftp://x.example\"]\n"
    ));
    f.at(
        "stores.loja1.sandbox.allowed_hosts[1]",
        Some("\"api.example.com\""),
        "a scheme is required",
    );
    f.at(
        "stores.loja1.sandbox.allowed_hosts[2]",
        Some("\"ftp://x.example\""),
        "unsupported scheme",
    );
    assert!(
        !f.errors.to_string().contains("stores.loja1.settings"),
        "{}",
        f.errors
    );
}

#[test]
fn a_huge_configuration_file_is_refused_with_its_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("arauto.toml");
    let mut text = String::from(BASE);
    let filler = "# padding padding padding padding padding padding padding padding\n";
    while text.len() <= 60_000_000 {
        text.push_str(filler);
    }
    std::fs::write(&path, &text).expect("write");
    let started = std::time::Instant::now();
    let err = config::load_with_env(Some(&path), Vec::new()).expect_err("too big");
    let shown = err.to_string();
    assert!(shown.contains(&path.display().to_string()), "{shown}");
    assert!(
        shown.contains(&format!("the file is {} bytes", text.len())),
        "{shown}"
    );
    assert!(shown.contains("48MiB limit"), "{shown}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn a_configuration_with_nothing_to_do_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    for text in ["", "# only comments\n", "[daemon]\nlog_level = \"warn\"\n"] {
        let path = dir.path().join("arauto.toml");
        std::fs::write(&path, text).expect("write");
        let err = config::load(Some(&path)).expect_err("nothing configured");
        let shown = err.to_string();
        assert!(shown.contains(&path.display().to_string()), "{shown}");
        assert!(
            shown.contains("no stores or channels configured"),
            "{shown}"
        );
    }
}

#[test]
fn fallbacks_must_name_another_defined_channel_without_a_cycle() {
    let f = fail(&format!(
        r#"{BASE}fallback = "sms"

[channels.sms]
plugin = "twilio-sms"
fallback = "whatsapp"

[channels.email]
plugin = "webhook"
fallback = "email"

[channels.tg]
plugin = "telegram"
fallback = "telegran"
"#
    ));
    f.at(
        "channels.email.fallback",
        Some("email"),
        "cannot fall back to itself",
    );
    f.at(
        "channels.sms.fallback",
        Some("whatsapp"),
        "fallback cycle sms → whatsapp → sms",
    );
    f.at(
        "channels.tg.fallback",
        Some("telegran"),
        "no channel \"telegran\" is defined (defined: email, sms, tg, whatsapp)",
    );
    assert!(
        !f.errors
            .errors
            .iter()
            .any(|e| e.key == "channels.whatsapp.fallback"),
        "a cycle is named once:\n{}",
        f.errors
    );
}
