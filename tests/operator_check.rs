//! `arauto check` against the real daemon and the real plugins, driven by the
//! fake Loja Integrada API and a fake Evolution API (WhatsApp) on 127.0.0.1:
//! a ready store, an operator's pause, a rejected LI token, a channel paused
//! automatically by a rejected send, a store without channels, stale polls,
//! a notification the platform cannot produce, a customer with only a
//! landline, and `check` without a daemon.
//! Each asserts the line text, its colour class in `--json` and the exit status.

// All test code: with this, clippy's allow-unwrap/expect-in-tests covers the
// helper functions too, not only the #[test] ones (see clippy.toml).
#![cfg(test)]

use crate::support;

use arauto_sim::li::{Customer, Fault, Order, Route};
use nix::sys::signal::Signal;
use serde_json::Value;
use support::daemon::{self, Daemon};
use support::operator::{self, Run, Setup, assert_line, check_line, config_text, start, world};

/// Polls count as stale only after a minute (30 × 2s), so a slow machine
/// does not turn a healthy store red.
const RELAXED: &str = "[checklist]\nstale_poll_factor = 30\n";

fn check(daemon: &Daemon, extra: &[&str]) -> Run {
    let mut args = vec![
        "check",
        "--config",
        daemon.config_path.to_str().expect("utf-8"),
        "--socket",
        daemon.socket.to_str().expect("utf-8"),
    ];
    args.extend_from_slice(extra);
    operator::arauto(&args)
}

fn check_json(daemon: &Daemon) -> (i32, Value) {
    let run = check(daemon, &["--json"]);
    let json = run.json();
    (run.code, json)
}

fn queue(daemon: &Daemon, args: &[&str]) -> Run {
    let mut all = vec!["queue"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--socket", daemon.socket.to_str().expect("utf-8")]);
    operator::arauto(&all)
}

#[test]
fn check_follows_a_running_daemon_from_ready_to_paused_to_a_rejected_token() {
    let world = world();
    let daemon = start(
        &world,
        &Setup {
            extra: RELAXED,
            ..Setup::default()
        },
    );
    daemon.stderr.wait_for("poll complete");

    // Ready: green everywhere that matters, exit 0, answered by the daemon.
    let (code, c) = check_json(&daemon);
    assert_eq!(code, 0, "{c:#}");
    assert_eq!(c["daemon_running"], true);
    assert_ne!(c["status"], "fail");
    assert_line(
        check_line(&c, "general", None, "daemon"),
        "ok",
        &["is running (pid"],
    );
    assert_line(
        check_line(&c, "general", None, "config"),
        "ok",
        &["is valid and in effect"],
    );
    assert_line(
        check_line(&c, "store", Some("loja"), "plugin"),
        "ok",
        &["connector loja-integrada"],
    );
    assert_line(
        check_line(&c, "store", Some("loja"), "credentials"),
        "ok",
        &["loja-integrada accepted the credentials"],
    );
    assert_line(
        check_line(&c, "store", Some("loja"), "last-poll"),
        "ok",
        &["last successful poll", "(every 2s)"],
    );
    assert_line(
        check_line(&c, "store", Some("loja"), "events"),
        "ok",
        &["1 order seen"],
    );
    assert_line(
        check_line(&c, "store", Some("loja"), "channels"),
        "ok",
        &["notifies through whatsapp"],
    );
    assert_line(
        check_line(&c, "store", Some("loja"), "notifications"),
        "ok",
        &["not available there: boleto-reminder, pix-reminder, abandoned-cart"],
    );
    assert_line(
        check_line(&c, "channel", Some("whatsapp"), "connected"),
        "ok",
        &["connected"],
    );
    assert_line(
        check_line(&c, "channel", Some("whatsapp"), "paused"),
        "ok",
        &["not paused"],
    );
    assert_line(
        check_line(&c, "channel", Some("whatsapp"), "backlog"),
        "ok",
        &["0 messages waiting"],
    );
    let human = check(&daemon, &[]);
    assert_eq!(human.code, 0, "{human:?}");
    assert!(
        human.stdout.contains("checked by the running daemon"),
        "{}",
        human.stdout
    );
    assert!(
        human
            .stdout
            .contains("  ✓ loja-integrada accepted the credentials"),
        "{}",
        human.stdout
    );
    assert!(
        !human.stdout.contains('\x1b'),
        "no colour outside a terminal"
    );

    // An operator's pause: red, with the way out.
    let run = queue(
        &daemon,
        &["pause", "whatsapp", "--reason", "troca de aparelho"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let (code, c) = check_json(&daemon);
    assert_eq!(code, 1, "{c:#}");
    assert_eq!(c["status"], "fail");
    let line = check_line(&c, "channel", Some("whatsapp"), "paused");
    assert_line(
        line,
        "fail",
        &["paused by an operator since", "troca de aparelho"],
    );
    assert_eq!(line["fix"], "arauto queue resume whatsapp");
    let human = check(&daemon, &[]);
    assert!(
        human.stdout.contains("  ✗ paused by an operator since")
            && human.stdout.contains("    → arauto queue resume whatsapp"),
        "{}",
        human.stdout
    );
    assert!(
        human.stdout.contains("not ready: 1 problem"),
        "{}",
        human.stdout
    );
    let run = queue(&daemon, &["resume", "whatsapp"]);
    assert_eq!(run.code, 0, "{run:?}");
    let (code, c) = check_json(&daemon);
    assert_eq!(code, 0, "{c:#}");

    // LI revokes the key: the live check says so (the daemon's own instance).
    world.store.reject_auth(Some(401));
    let (code, c) = check_json(&daemon);
    assert_eq!(code, 1, "{c:#}");
    let line = check_line(&c, "store", Some("loja"), "credentials");
    assert_line(
        line,
        "fail",
        &["loja-integrada refused the credentials", "401"],
    );
    assert_eq!(
        line["fix"],
        "correct the credentials in [stores.loja.settings], then systemctl reload arauto"
    );

    // `--store` narrows the checklist to the store and its channels.
    let run = check(&daemon, &["--store", "loja", "--json"]);
    let narrowed = run.json();
    assert_eq!(narrowed["sections"].as_array().map(Vec::len), Some(3));
    let run = check(&daemon, &["--store", "outra"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains(r#"unknown store "outra" (configured: loja)"#),
        "{}",
        run.stderr
    );
}

/// LI refuses the key: the store's polling pauses and `check` shows it red,
/// with when the key is checked again; `queue resume --store` polls it at
/// once, and once LI takes the key again the store is green without a reload.
#[test]
fn a_store_paused_on_a_refused_key_is_red_in_check_and_queue_resume_store_polls_it_at_once() {
    let world = world();
    world.store.reject_auth(Some(401));
    // A long interval: the automatic re-check (30s away) stays out of the way.
    let daemon = start(
        &world,
        &Setup {
            extra: RELAXED,
            poll_interval: "1m",
            ..Setup::default()
        },
    );
    let (paused_at, _) =
        daemon
            .stderr
            .wait_for_matching(0, daemon::PATIENCE, "the store paused", |line| {
                line.contains("poll failed, store paused")
            });

    let (code, c) = check_json(&daemon);
    assert_eq!(code, 1, "{c:#}");
    let line = check_line(&c, "store", Some("loja"), "paused");
    assert_line(
        line,
        "fail",
        &[
            "polling paused since",
            "401",
            "the credentials are checked again at",
            "polling resumes by itself once they work",
        ],
    );
    assert!(
        line["fix"]
            .as_str()
            .is_some_and(|f| f.contains("`arauto queue resume --store loja`")),
        "{line:#}"
    );

    // LI takes the key again; the operator does not want to wait.
    world.store.reject_auth(None);
    let run = queue(&daemon, &["resume", "--store", "loja"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, "store loja resumed: polling again now\n");
    let (resumed_at, _) =
        daemon
            .stderr
            .wait_for_matching(paused_at, daemon::PATIENCE, "the resume", |line| {
                line.contains("store resumed by an operator: polling again")
            });
    daemon
        .stderr
        .wait_for_matching(resumed_at, daemon::PATIENCE, "a poll", |line| {
            line.contains("poll complete")
        });
    let (code, c) = check_json(&daemon);
    assert_eq!(code, 0, "{c:#}");
    let run = queue(&daemon, &["resume", "--store", "loja"]);
    assert_eq!(run.stdout, "store loja was not paused\n", "{run:?}");
    let run = queue(&daemon, &["resume", "--store", "nenhuma"]);
    assert_eq!(run.code, 2, "{run:?}");
}

#[test]
fn a_send_the_provider_rejects_pauses_the_channel_and_check_says_how_to_recover() {
    let world = world();
    let daemon = start(
        &world,
        &Setup {
            evolution_key: "chave-errada",
            ..Setup::default()
        },
    );
    daemon.stderr.wait_for("poll complete");
    // A new order: the next poll queues a notification, the send is refused
    // (401), the dispatcher pauses the channel, then completes the job.
    world.store.create_order(Order::new());
    daemon
        .stderr
        .wait_for("channel paused: the provider rejected its settings");
    daemon.stderr.wait_for("job completed");

    let (code, c) = check_json(&daemon);
    assert_eq!(code, 1, "{c:#}");
    let line = check_line(&c, "channel", Some("whatsapp"), "paused");
    assert_line(line, "fail", &["paused automatically since"]);
    assert_eq!(
        line["fix"],
        "fix the config and reload, or `arauto queue resume whatsapp`"
    );
    assert_line(
        check_line(&c, "channel", Some("whatsapp"), "connected"),
        "fail",
        &["not connected"],
    );
    // The store itself is fine.
    assert_line(
        check_line(&c, "store", Some("loja"), "credentials"),
        "ok",
        &[],
    );
}

#[test]
fn a_store_without_channels_and_with_stale_polls_is_not_ready() {
    let world = world();
    let daemon = start(
        &world,
        &Setup {
            channels: "[]",
            extra: "[checklist]\nstale_poll_factor = 1.5\n",
            ..Setup::default()
        },
    );
    daemon.stderr.wait_for("poll complete");
    // From now on every search fails: the last successful poll gets older.
    world.store.fail(Route::Search, Fault::Status(503), 10_000);
    daemon.stderr.wait_for("poll failed");

    let deadline = std::time::Instant::now() + daemon::PATIENCE;
    let c = loop {
        let (code, c) = check_json(&daemon);
        assert_eq!(code, 1, "no channel is red already: {c:#}");
        if check_line(&c, "store", Some("loja"), "last-poll")["status"] == "fail" {
            break c;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the store never became stale: {c:#}"
        );
    };
    let line = check_line(&c, "store", Some("loja"), "last-poll");
    assert_line(
        line,
        "fail",
        &[
            "last successful poll",
            "stale, more than 1.5× the 2s poll interval",
            "latest error",
            "503",
        ],
    );
    assert_eq!(line["fix"], "see journalctl -u arauto ARAUTO_STORE=loja");
    let line = check_line(&c, "store", Some("loja"), "channels");
    assert_line(
        line,
        "fail",
        &["no channel linked: this store's customers are not notified"],
    );
    assert_eq!(
        line["fix"],
        r#"add channels = ["whatsapp"] to [stores.loja] (channels defined: whatsapp)"#
    );
    // The unused channel is flagged too, in yellow.
    assert_line(
        check_line(&c, "channel", Some("whatsapp"), "stores"),
        "warn",
        &["not used by any store"],
    );
}

#[test]
fn an_unsupported_notification_fails_the_reload_and_check_with_and_without_the_daemon() {
    let world = world();
    let setup = Setup {
        extra: RELAXED,
        ..Setup::default()
    };
    let mut daemon = start(&world, &setup);
    daemon.stderr.wait_for("poll complete");

    // Enable the boleto reminder, which Loja Integrada cannot provide, and reload.
    let bad = Setup {
        extra: &format!("{RELAXED}[notifications.boleto-reminder]\nenabled = true\n"),
        ..Setup::default()
    };
    std::fs::write(
        &daemon.config_path,
        config_text(daemon.dir.path(), &world, &bad),
    )
    .expect("write config");
    daemon.signal(Signal::SIGHUP);
    daemon.stderr.wait_for("reload failed");

    let (code, c) = check_json(&daemon);
    assert_eq!(code, 1, "{c:#}");
    let line = check_line(&c, "general", None, "config");
    assert_line(
        line,
        "fail",
        &[
            "the reload at",
            "failed, so the daemon still runs the configuration loaded at",
            "notifications.boleto-reminder",
            "cannot produce it",
            "boleto",
        ],
    );
    assert!(
        line["fix"]
            .as_str()
            .is_some_and(|f| f.contains("until then a restart would fail")),
        "{line:#}"
    );
    // The configuration in effect is still checked: its store is fine.
    assert_line(
        check_line(&c, "store", Some("loja"), "credentials"),
        "ok",
        &[],
    );

    // Without the daemon, check builds the file itself and refuses it the same way.
    daemon.signal(Signal::SIGTERM);
    let status = daemon.wait_exit(daemon::PATIENCE);
    assert!(status.success(), "{status:?}");
    let (code, c) = check_json(&daemon);
    assert_eq!(code, 1, "{c:#}");
    assert_eq!(c["daemon_running"], false);
    let line = check_line(&c, "general", None, "config");
    assert_line(
        line,
        "fail",
        &[
            "notifications.boleto-reminder: enabled, but store `loja` (loja-integrada) cannot produce it",
        ],
    );
    assert_eq!(
        line["fix"],
        "this platform cannot provide it: set enabled = false in [notifications.boleto-reminder] (or remove the table)"
    );
    let human = check(&daemon, &[]);
    assert_eq!(human.code, 1);
    assert!(
        human
            .stdout
            .contains("  ✗ notifications.boleto-reminder: enabled"),
        "{}",
        human.stdout
    );

    // Fixed file, still no daemon: the CLI does the live checks itself and
    // reads the state the daemon left.
    std::fs::write(
        &daemon.config_path,
        config_text(daemon.dir.path(), &world, &setup),
    )
    .expect("write config");
    let (code, c) = check_json(&daemon);
    assert_eq!(code, 0, "{c:#}");
    assert_eq!(c["daemon_running"], false);
    assert_eq!(c["status"], "warn");
    let line = check_line(&c, "general", None, "daemon");
    assert_line(
        line,
        "warn",
        &["arauto is not running: nothing is polled or sent"],
    );
    assert_eq!(line["fix"], "systemctl start arauto");
    assert_line(
        check_line(&c, "general", None, "database"),
        "ok",
        &["arauto.redb"],
    );
    assert_line(
        check_line(&c, "store", Some("loja"), "credentials"),
        "ok",
        &["accepted"],
    );
    assert_line(
        check_line(&c, "store", Some("loja"), "events"),
        "ok",
        &["1 order seen"],
    );
    assert_line(
        check_line(&c, "channel", Some("whatsapp"), "connected"),
        "ok",
        &[],
    );

    // And a bad token is found live without the daemon too.
    world.store.reject_auth(Some(401));
    let (code, c) = check_json(&daemon);
    assert_eq!(code, 1, "{c:#}");
    assert_line(
        check_line(&c, "store", Some("loja"), "credentials"),
        "fail",
        &["refused the credentials", "401"],
    );
}

/// A customer who gave only a landline cannot get WhatsApp: the log says so
/// with the store, the order, the reason and the number masked; `report`
/// counts the notification as skipped, by reason; `check` names the reason
/// and, although half the store's events are invalid, only warns (a shop
/// whose customers mostly have landlines must not be red forever): exit 0.
#[test]
fn an_order_with_only_a_landline_is_reported_with_its_reason_and_check_only_warns() {
    let world = world();
    let daemon = start(
        &world,
        &Setup {
            extra: RELAXED,
            poll_interval: "1s",
            ..Setup::default()
        },
    );
    daemon.stderr.wait_for("poll complete");
    world
        .store
        .create_order(Order::new().customer(Customer::new("Lia Fixo").phone("(11) 3333-4444")));
    let (at, line) = daemon.stderr.wait_for_from(0, "invalid event");
    for needle in [
        "store=\"loja\"",
        "order=1002",
        "channel=whatsapp",
        "reason=landline",
        "no usable phone (landline)",
        "…4444 (10 digits) is a landline",
    ] {
        assert!(line.contains(needle), "{needle:?} not in {line:?}");
    }
    assert!(!line.contains("3333"), "the number is masked: {line}");
    assert!(!line.contains("MissingPhone"), "{line}");
    // The page with the order is committed before its poll completes.
    daemon.stderr.wait_for_from(at, "poll complete");

    let (code, c) = check_json(&daemon);
    assert_eq!(code, 0, "a warning, not a failure: {c:#}");
    assert_line(
        check_line(&c, "store", Some("loja"), "invalid-events"),
        "warn",
        &[
            "could not become notifications",
            "landline 1",
            "above the 20% threshold",
        ],
    );

    let socket = daemon.socket.to_str().expect("utf-8");
    let run = operator::arauto(&["report", "--json", "--socket", socket]);
    assert_eq!(run.code, 0, "{run:?}");
    let report = run.json();
    let store = report["stores"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["id"] == "loja"))
        .unwrap_or_else(|| panic!("no store loja in {report:#}"));
    assert_eq!(store["total"]["skipped"], 1, "{store:#}");
    assert_eq!(store["skipped_reasons"]["landline"], 1, "{store:#}");
    let channel = report["channels"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["id"] == "whatsapp"))
        .unwrap_or_else(|| panic!("no channel whatsapp in {report:#}"));
    assert_eq!(channel["total"]["skipped"], 1, "{channel:#}");
    let run = operator::arauto(&["report", "--socket", socket]);
    assert!(
        run.stdout
            .contains("skipped without a usable phone: landline 1"),
        "{}",
        run.stdout
    );
}

/// A channel the store uses only as the fallback of its own channel is not
/// "unused": its section says whose fallback it is, and `check --store`
/// includes it.
#[test]
fn a_fallback_only_channel_is_named_as_the_fallback_of_a_store_channel() {
    let world = world();
    let wa = world.whatsapp.url();
    let primary = format!(
        r#"[channels.primary]
plugin = "evolution-api"
fallback = "whatsapp"
[channels.primary.sandbox]
allowed_hosts = ["{wa}"]
allow_private_addresses = true
[channels.primary.settings]
base_url = "{wa}"
instance = "loja"
api_key = "evo-key"
"#
    );
    let daemon = start(
        &world,
        &Setup {
            channels: r#"["primary"]"#,
            extra: &format!("{RELAXED}\n{primary}"),
            ..Setup::default()
        },
    );
    daemon.stderr.wait_for("poll complete");

    for extra in [&["--json"][..], &["--store", "loja", "--json"][..]] {
        let c = check(&daemon, extra).json();
        assert_line(
            check_line(&c, "channel", Some("whatsapp"), "stores"),
            "ok",
            &["used by fallback of primary (store loja)"],
        );
        assert_line(
            check_line(&c, "channel", Some("primary"), "stores"),
            "ok",
            &["used by loja"],
        );
    }
}
