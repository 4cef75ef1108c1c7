//! `arauto validate` and the secrecy of command output.

// All test code: with this, clippy's allow-unwrap/expect-in-tests covers the
// helper functions too, not only the #[test] ones (see clippy.toml).
#![cfg(test)]

use crate::support;

use support::daemon::{self, Daemon, arauto, daemon_section};

fn validate(dir: &std::path::Path, text: &str, env: &[(&str, &str)]) -> (i32, String, String) {
    let path = dir.join("arauto.toml");
    std::fs::write(&path, text).expect("write config");
    let out = arauto()
        .args(["validate", "--config"])
        .arg(&path)
        .envs(env.iter().copied())
        .output()
        .expect("run validate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// The APIs point at a closed local port: the daemon started on this never reaches one.
const GOOD: &str = r#"
[stores.loja1]
platform = "loja-integrada"
channels = ["whatsapp"]
[stores.loja1.settings]
api_key = "li-inline-secret-value"
application_key = "aplicacao"
base_url = "http://127.0.0.1:9"
[stores.loja1.sandbox]
allowed_hosts = ["http://127.0.0.1:9"]
allow_private_addresses = true
[channels.whatsapp]
plugin = "whatsapp-cloud"
[channels.whatsapp.settings]
access_token_env = "WA_TOKEN"
phone_number_id = "106540352242922"
base_url = "http://127.0.0.1:9"
[channels.whatsapp.sandbox]
allowed_hosts = ["http://127.0.0.1:9"]
allow_private_addresses = true
[channels.spare]
plugin = "telegram"
[channels.spare.settings]
bot_token = "123456:telegram-spare-token"
"#;

#[test]
fn validate_prints_a_summary_and_warnings_without_touching_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!("{}{GOOD}", daemon_section(dir.path(), ""));
    let (code, stdout, stderr) =
        validate(dir.path(), &text, &[("WA_TOKEN", "wa-env-secret-value")]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("is valid"), "{stdout}");
    assert!(
        stdout.contains("loja1") && stdout.contains("loja-integrada, every 5m → whatsapp"),
        "{stdout}"
    );
    assert!(
        stderr.contains("warning:") && stderr.contains("channels.spare"),
        "{stderr}"
    );
    for secret in ["li-inline-secret-value", "wa-env-secret-value"] {
        assert!(!stdout.contains(secret) && !stderr.contains(secret));
    }
    // validate never opens the database, takes the lock or binds the socket.
    assert!(!dir.path().join("state").exists());
    assert!(!dir.path().join("cache").exists());
    assert!(!dir.path().join("run").exists());
}

#[test]
fn validate_fails_with_precise_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        "{}{}",
        daemon_section(dir.path(), "timezone = \"Brazil/Nowhere\""),
        GOOD
    );
    let path = dir.path().join("arauto.toml");
    let (code, stdout, stderr) = validate(dir.path(), &text, &[]);
    assert_eq!(code, 1);
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains(&format!(
            "invalid configuration {} (2 errors)",
            path.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{}:5:12: daemon.timezone = \"Brazil/Nowhere\"",
            path.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("channels.whatsapp.settings.access_token_env = \"WA_TOKEN\": environment variable WA_TOKEN is not set"), "{stderr}");
}

#[test]
fn validate_names_the_environment_variable_at_fault() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!("{}{GOOD}", daemon_section(dir.path(), ""));
    let (code, _, stderr) = validate(
        dir.path(),
        &text,
        &[
            ("WA_TOKEN", "x"),
            ("ARAUTO_STORES__LOJA1__POLL_INTERVAL", "-1m"),
        ],
    );
    assert_eq!(code, 1);
    assert!(
        stderr.contains("environment variable ARAUTO_STORES__LOJA1__POLL_INTERVAL: stores.loja1.poll_interval = \"-1m\": must not be negative"),
        "{stderr}"
    );
}

#[test]
fn validate_reads_arauto_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("from-env.toml");
    let text = format!(
        "{}{GOOD}",
        daemon_section(dir.path(), "log_level = \"debug\"")
    );
    std::fs::write(&path, text).expect("write");
    let out = arauto()
        .arg("validate")
        .env("ARAUTO_CONFIG", &path)
        .env("WA_TOKEN", "x")
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&path.display().to_string()));
}

#[test]
fn usage_errors_exit_2() {
    let out = arauto()
        .args(["validate", "--no-such-flag"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let out = arauto().arg("frobnicate").output().expect("run");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn secrets_never_reach_status_or_logs() {
    let mut d = Daemon::start_with(
        "log_level = \"debug\"",
        GOOD,
        &[("WA_TOKEN", "wa-env-secret-value")],
        &[],
    );
    d.await_notice("READY=1");
    let (code, json, _) = d.status(&["--json"]);
    assert_eq!(code, 0);
    let (_, text, _) = d.status(&[]);
    d.signal(nix::sys::signal::Signal::SIGHUP);
    d.await_notice("READY=1");
    d.signal(nix::sys::signal::Signal::SIGTERM);
    d.wait_exit(daemon::PATIENCE);
    let log = d.stderr.all();
    for secret in ["li-inline-secret-value", "wa-env-secret-value"] {
        assert!(!json.contains(secret), "{secret} in status --json");
        assert!(!text.contains(secret), "{secret} in status");
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}

/// 1-based line of the first line of `text` that starts with `prefix`.
fn line_starting(text: &str, prefix: &str) -> usize {
    text.lines()
        .position(|l| l.starts_with(prefix))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("no line starting with {prefix:?}"))
}

// Issue 18 point 11: what only the plugin's own description can tell —
// undeclared settings, URLs outside the allowlist, status codes the platform
// does not have — is an error naming the file and line, not a log line.
#[test]
fn validate_refuses_settings_and_rules_the_plugin_does_not_know_with_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let body = GOOD
        .replace(
            "base_url = \"http://127.0.0.1:9\"\n[stores.loja1.sandbox]",
            "base_url = \"https://evil.example/api\"\npage_sise = \"20\"\ntracking_url_template = \"https://rastreio.example/{code}\"\n[stores.loja1.recognition]\npedido_inventado = \"order-paid\"\npedido_pago = \"order-paid\"\n[stores.loja1.sandbox]",
        )
        .replace("bot_token = ", "bot_tokn = ");
    let text = format!("{}{body}", daemon_section(dir.path(), ""));
    let path = dir.path().join("arauto.toml");
    let (code, stdout, stderr) = validate(dir.path(), &text, &[("WA_TOKEN", "x")]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    let at = |prefix: &str| format!("{}:{}:", path.display(), line_starting(&text, prefix));
    for (key, prefix, fragment) in [
        (
            "stores.loja1.settings.page_sise",
            "page_sise",
            "plugin loja-integrada has no setting \"page_sise\" (did you mean \"page_size\"?)",
        ),
        (
            "stores.loja1.settings.base_url",
            "base_url = \"https://evil",
            "the plugin may not call https://evil.example: it is not in the allowed hosts (http://127.0.0.1:9); allowed hosts come from stores.loja1.sandbox.allowed_hosts",
        ),
        (
            "stores.loja1.recognition.pedido_inventado",
            "pedido_inventado",
            "status code \"pedido_inventado\" is not one that platform loja-integrada knows",
        ),
        (
            "channels.spare.settings.bot_tokn",
            "bot_tokn",
            "plugin telegram has no setting \"bot_tokn\" (did you mean \"bot_token\"?)",
        ),
    ] {
        let line = stderr
            .lines()
            .find(|l| l.contains(key))
            .unwrap_or_else(|| panic!("no error for {key}:\n{stderr}"));
        assert!(
            line.contains(&at(prefix)),
            "{key} not located at {}:\n{line}",
            at(prefix)
        );
        assert!(line.contains(fragment), "{fragment:?} not in:\n{line}");
    }
    assert!(!stderr.contains("pedido_pago"), "{stderr}");
    // A link for customers is not an endpoint the plugin calls.
    assert!(!stderr.contains("tracking_url_template"), "{stderr}");
}

#[test]
fn validate_refuses_an_empty_configuration() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("arauto.toml");
    let (code, stdout, stderr) = validate(dir.path(), "", &[]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stderr.contains(&path.display().to_string())
            && stderr.contains("no stores or channels configured"),
        "{stderr}"
    );
}

#[test]
fn validate_reports_both_phases_in_one_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let body = GOOD
        .replace(
            "platform = \"loja-integrada\"",
            "platform = \"loja-integrada\"\npoll_interval = \"soon\"",
        )
        .replace("bot_token = ", "bot_tokn = ");
    let text = format!("{}{body}", daemon_section(dir.path(), ""));
    let path = dir.path().join("arauto.toml");
    let (code, _, stderr) = validate(dir.path(), &text, &[("WA_TOKEN", "x")]);
    assert_eq!(code, 1, "{stderr}");
    // First phase: the file itself.
    assert!(
        stderr.contains("stores.loja1.poll_interval = \"soon\""),
        "{stderr}"
    );
    // Second phase, same run: the channel the first-phase error spares.
    let line = stderr
        .lines()
        .find(|l| l.contains("channels.spare.settings.bot_tokn"))
        .unwrap_or_else(|| panic!("second phase missing:\n{stderr}"));
    assert!(
        line.contains(&format!(
            "{}:{}:",
            path.display(),
            line_starting(&text, "bot_tokn")
        )),
        "{line}"
    );
    // The store with a first-phase error is not checked again.
    assert_eq!(stderr.matches("stores.loja1").count(), 1, "{stderr}");
}
