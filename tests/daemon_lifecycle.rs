//! `arauto run` as systemd sees it: readiness, reload (bad and good), status,
//! graceful stop, the second-signal escape hatch, the drain deadline, the
//! watchdog, stale sockets and the one-daemon-per-state-directory rule.

// All test code: with this, clippy's allow-unwrap/expect-in-tests covers the
// helper functions too, not only the #[test] ones (see clippy.toml).
#![cfg(test)]

use crate::support;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use nix::sys::signal::Signal;
use support::daemon::{self, Daemon, PATIENCE, arauto};

// The plugins' required settings point at a closed local port: these tests
// are about the daemon's lifecycle and never reach an API.
/// A Loja Integrada store `[stores.<id>]` with `extra` lines (e.g. its poll_interval).
fn store(id: &str, extra: &str) -> String {
    format!(
        r#"
[stores.{id}]
platform = "loja-integrada"
channels = ["whatsapp"]
{extra}
[stores.{id}.settings]
api_key = "chave"
application_key = "aplicacao"
base_url = "http://127.0.0.1:9"

[stores.{id}.sandbox]
allowed_hosts = ["http://127.0.0.1:9"]
allow_private_addresses = true
"#
    )
}

const CHANNEL: &str = r#"
[channels.whatsapp]
plugin = "whatsapp-cloud"

[channels.whatsapp.settings]
access_token = "token"
phone_number_id = "106540352242922"
base_url = "http://127.0.0.1:9"

[channels.whatsapp.sandbox]
allowed_hosts = ["http://127.0.0.1:9"]
allow_private_addresses = true
"#;

fn one_store() -> String {
    store("loja1", "") + CHANNEL
}

fn two_stores() -> String {
    store("loja1", "") + &store("loja2", "poll_interval = \"1m\"") + CHANNEL
}

/// Two stores, the second with a poll_interval that is not a duration.
fn broken() -> String {
    store("loja1", "") + &store("loja2", "poll_interval = \"soon\"") + CHANNEL
}

fn status_json(d: &Daemon) -> serde_json::Value {
    let (code, stdout, stderr) = d.status(&["--json"]);
    assert_eq!(code, 0, "status failed: {stderr}");
    serde_json::from_str(&stdout).expect("status --json is JSON")
}

fn store_ids(status: &serde_json::Value) -> Vec<String> {
    status["stores"]
        .as_array()
        .expect("stores array")
        .iter()
        .map(|s| s["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn reload_keeps_running_on_a_broken_config_applies_a_good_one_and_stops_cleanly() {
    let mut d = Daemon::start("shutdown_timeout = \"10s\"", &one_store());
    let ready = d.await_notice("READY=1");
    assert!(
        ready.contains("STATUS=running: 1 store, 1 channel"),
        "{ready}"
    );

    let (code, text, _) = d.status(&[]);
    assert_eq!(code, 0);
    assert!(text.contains("is running"), "{text}");
    assert!(
        text.contains("loja1") && text.contains("every 5m → whatsapp"),
        "{text}"
    );
    let socket_mode = std::fs::metadata(&d.socket)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()));
    assert_eq!(socket_mode.ok().map(|m| m & 0o777), Some(0o660));

    // A broken configuration: the daemon says why (naming the key) and keeps the old one.
    d.write_config("shutdown_timeout = \"10s\"", &broken());
    d.signal(Signal::SIGHUP);
    let reloading = d.await_notice("RELOADING=1");
    assert!(
        reloading.lines().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "{reloading}"
    );
    let ready = d.await_notice("READY=1");
    assert!(ready.contains("reload failed"), "{ready}");
    assert!(ready.contains("stores.loja2.poll_interval"), "{ready}");
    let logged = d.stderr.wait_for("stores.loja2.poll_interval");
    assert!(logged.contains("\"soon\""), "{logged}");
    let status = status_json(&d);
    assert_eq!(store_ids(&status), ["loja1"]);
    assert_eq!(status["last_reload"]["ok"], false);
    assert!(
        status["last_reload"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("stores.loja2.poll_interval")
    );
    let (_, text, _) = d.status(&[]);
    assert!(
        text.contains("FAILED, previous configuration kept"),
        "{text}"
    );

    // A good one: applied.
    d.write_config("shutdown_timeout = \"10s\"", &two_stores());
    d.signal(Signal::SIGHUP);
    d.await_notice("RELOADING=1");
    let ready = d.await_notice("READY=1");
    assert!(
        ready.contains("STATUS=running: 2 stores, 1 channel"),
        "{ready}"
    );
    let status = status_json(&d);
    assert_eq!(store_ids(&status), ["loja1", "loja2"]);
    assert_eq!(status["stores"][1]["poll_interval"], "1m");
    assert_eq!(status["last_reload"]["ok"], true);
    assert_eq!(
        status["services"],
        serde_json::json!([
            "control",
            "housekeeping",
            "poll/loja1",
            "poll/loja2",
            "send/whatsapp"
        ])
    );

    // SIGTERM: STOPPING=1, exit 0 well within shutdown_timeout, socket removed.
    d.signal(Signal::SIGTERM);
    d.await_notice("STOPPING=1");
    let exit = d.wait_exit(Duration::from_secs(10));
    assert_eq!(exit.code(), Some(0), "log:\n{}", d.stderr.all());
    assert!(!d.socket.exists(), "control socket left behind");
    let (code, _, stderr) = d.status(&[]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("not running"), "{stderr}");
}

/// Open a control connection, prove it is served, then leave half a request
/// in it: in-flight work the daemon must wait for when asked to stop.
fn half_request(d: &Daemon) -> UnixStream {
    let mut stream = UnixStream::connect(&d.socket).expect("connect control socket");
    stream
        .write_all(b"{\"request\":\"status\"}\n")
        .expect("write");
    let mut answer = String::new();
    BufReader::new(stream.try_clone().expect("clone"))
        .read_line(&mut answer)
        .expect("read");
    assert!(answer.contains("\"response\":\"status\""), "{answer}");
    stream
        .write_all(b"{\"request\":")
        .expect("write half a request");
    stream
}

#[test]
fn second_sigterm_exits_at_once_while_draining() {
    let mut d = Daemon::start("shutdown_timeout = \"60s\"", &one_store());
    d.await_notice("READY=1");
    let _held = half_request(&d);
    d.signal(Signal::SIGTERM);
    d.await_notice("STOPPING=1");
    d.signal(Signal::SIGTERM);
    let exit = d.wait_exit(PATIENCE);
    assert_eq!(
        exit.code(),
        Some(143),
        "second SIGTERM exits with 128+15; log:\n{}",
        d.stderr.all()
    );
}

#[test]
fn second_sigint_exits_at_once_too() {
    let mut d = Daemon::start("shutdown_timeout = \"60s\"", &one_store());
    d.await_notice("READY=1");
    let _held = half_request(&d);
    d.signal(Signal::SIGINT);
    d.await_notice("STOPPING=1");
    d.signal(Signal::SIGINT);
    assert_eq!(d.wait_exit(PATIENCE).code(), Some(130));
}

#[test]
fn in_flight_work_past_the_shutdown_timeout_is_abandoned_with_an_error() {
    let mut d = Daemon::start("shutdown_timeout = \"1s\"", &one_store());
    d.await_notice("READY=1");
    let _held = half_request(&d);
    d.signal(Signal::SIGTERM);
    d.await_notice("STOPPING=1");
    let exit = d.wait_exit(PATIENCE);
    assert_eq!(exit.code(), Some(1), "log:\n{}", d.stderr.all());
    d.stderr
        .wait_for("shutdown timed out after 1s; abandoned: control");
}

#[test]
fn in_flight_request_is_answered_during_shutdown() {
    let mut d = Daemon::start("shutdown_timeout = \"30s\"", &one_store());
    d.await_notice("READY=1");
    let mut held = half_request(&d);
    d.signal(Signal::SIGTERM);
    d.await_notice("STOPPING=1");
    held.write_all(b"\"status\"}\n")
        .expect("finish the request");
    let mut answer = String::new();
    BufReader::new(held).read_line(&mut answer).expect("read");
    assert!(answer.contains("\"phase\":\"stopping\""), "{answer}");
    assert_eq!(d.wait_exit(PATIENCE).code(), Some(0));
}

#[test]
fn watchdog_keepalives_are_sent_at_half_the_interval() {
    let mut d = Daemon::start_with("", &one_store(), &[("WATCHDOG_USEC", "200000")], &[]);
    d.await_notice("READY=1");
    d.await_notice("WATCHDOG=1");
    d.await_notice("WATCHDOG=1");
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit(PATIENCE).code(), Some(0));
}

#[test]
fn reload_refuses_to_move_the_state_directory() {
    let mut d = Daemon::start("", &one_store());
    d.await_notice("READY=1");
    let moved = d.dir.path().join("elsewhere");
    std::fs::write(
        &d.config_path,
        format!(
            "{}{}",
            daemon::daemon_section(d.dir.path(), "").replace(
                &format!(
                    "state_dir = {:?}",
                    d.dir.path().join("state").display().to_string()
                ),
                &format!("state_dir = {:?}", moved.display().to_string())
            ),
            one_store()
        ),
    )
    .expect("write");
    d.signal(Signal::SIGHUP);
    let ready = d.await_notice("READY=1");
    assert!(ready.contains("daemon.state_dir"), "{ready}");
    assert!(ready.contains("restart"), "{ready}");
    assert!(!moved.exists());
}

#[test]
fn dry_run_is_reported_and_survives_reload() {
    let mut d = Daemon::start_with("", &one_store(), &[], &["--dry-run"]);
    let ready = d.await_notice("READY=1");
    assert!(ready.contains("dry run"), "{ready}");
    d.signal(Signal::SIGHUP);
    d.await_notice("RELOADING=1");
    d.await_notice("READY=1");
    assert_eq!(status_json(&d)["dry_run"], true);
    let (_, text, _) = d.status(&[]);
    assert!(text.contains("DRY RUN"), "{text}");
}

#[test]
fn stale_socket_is_replaced_and_a_second_daemon_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("arauto.toml");
    std::fs::write(
        &config_path,
        format!("{}{}", daemon::daemon_section(dir.path(), ""), one_store()),
    )
    .expect("write");
    // A socket file nobody listens on, as a crashed daemon leaves behind.
    let socket = dir.path().join("run/control.sock");
    std::fs::create_dir_all(dir.path().join("run")).expect("mkdir");
    drop(std::os::unix::net::UnixListener::bind(&socket).expect("bind"));
    assert!(socket.exists());

    let config_for_second = config_path.clone();
    let mut first = Daemon::spawn(dir, config_path, &[], &[]);
    first.await_notice("READY=1");
    first.stderr.wait_for("removing stale control socket");
    assert_eq!(first.status(&[]).0, 0);

    let out = arauto()
        .args(["run", "--log-format", "text", "--config"])
        .arg(&config_for_second)
        .output()
        .expect("run a second daemon");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("another arauto daemon"), "{stderr}");
    assert!(
        stderr.contains(&format!("(pid {})", first.pid())),
        "{stderr}"
    );
    // The first one is undisturbed.
    assert_eq!(first.status(&[]).0, 0);
}

#[test]
fn run_with_a_broken_config_exits_1_with_every_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("arauto.toml");
    std::fs::write(
        &path,
        format!(
            "{}{}\n[daemon.extra]\n",
            daemon::daemon_section(dir.path(), ""),
            broken()
        ),
    )
    .expect("write");
    let out = arauto()
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("stores.loja2.poll_interval = \"soon\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("(2 errors)") || stderr.contains("daemon.extra"),
        "{stderr}"
    );
}

#[test]
fn status_without_a_daemon_exits_3() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = arauto()
        .args(["status", "--socket"])
        .arg(dir.path().join("nothing.sock"))
        .output()
        .expect("run status");
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("arauto is not running"));
}

#[test]
fn reload_moves_the_control_socket_and_applies_the_log_level() {
    let mut d = Daemon::start("", &one_store());
    d.await_notice("READY=1");
    let old_socket = d.socket.clone();
    let new_socket = d.dir.path().join("run2/arauto.sock");
    let section = daemon::daemon_section(d.dir.path(), "log_level = \"debug\"").replace(
        &format!("control_socket = {:?}", old_socket.display().to_string()),
        &format!("control_socket = {:?}", new_socket.display().to_string()),
    );
    std::fs::write(&d.config_path, format!("{section}{}", one_store())).expect("write");
    d.signal(Signal::SIGHUP);
    d.await_notice("RELOADING=1");
    let ready = d.await_notice("READY=1");
    assert!(!ready.contains("reload failed"), "{ready}");
    d.stderr.wait_for(&format!(
        "control socket listening socket={}",
        new_socket.display()
    ));
    // The old service stopped after the switch, logged at the new (debug) level.
    d.stderr.wait_for("DEBUG");
    assert!(!old_socket.exists(), "old control socket left behind");
    d.socket = new_socket;
    let status = status_json(&d);
    assert_eq!(status["last_reload"]["ok"], true);
    assert!(
        status["last_reload"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("(re)started control")
    );
}

#[test]
fn silent_control_clients_are_dropped_and_status_still_answers() {
    let mut d = Daemon::start("", &one_store());
    d.await_notice("READY=1");
    // More clients than the daemon serves at once (64), none sending a byte.
    let silent: Vec<UnixStream> = (0..70)
        .map(|_| UnixStream::connect(&d.socket).expect("connect control socket"))
        .collect();
    let (code, stdout, stderr) = d.status(&[]);
    assert_eq!(code, 0, "status did not answer: {stderr}");
    assert!(stdout.contains("is running"), "{stdout}");
    // The daemon closed every silent connection on its own (EOF, not our
    // read timeout).
    for mut stream in silent {
        stream
            .set_read_timeout(Some(PATIENCE))
            .expect("read timeout");
        let mut byte = [0_u8; 1];
        let read = stream
            .read(&mut byte)
            .expect("the daemon closes the connection");
        assert_eq!(read, 0, "unexpected bytes from the daemon");
    }
}
