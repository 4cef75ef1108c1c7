//! Pushed webhooks, end to end: the real daemon with `[daemon.webhooks]` on,
//! the real Loja Integrada connector, the fake LI (which pushes every order
//! change to the URLs registered with it, in LI's push shape) and a fake
//! WhatsApp gateway.
//!
//! With `poll_interval = "5m"`, a message that arrives within seconds can only
//! have come through a push. Pushes never carry content: they make the store
//! poll sooner, so repeats send nothing twice, and with pushes lost polling
//! still delivers.

// All test code: clippy's allow-unwrap/expect-in-tests covers the helpers too.
#![cfg(test)]

use crate::support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Output;
use std::time::{SystemTime, UNIX_EPOCH};

use arauto_sim::channels::{FakeProvider, Provider};
use arauto_sim::li::{PushOutcome, WebhookEvent};
use nix::sys::signal::Signal;

use support::daemon::{Daemon, PATIENCE};
use support::operator::check_line;
use support::system::{
    ChannelKnobs, Shop, StoreKnobs, World, create, field, is_about_store, order_for, plugin_cache,
    wait_polls,
};

/// The store's `webhook_token`: never to appear in a log line or an answer.
const TOKEN: &str = "tok-7Qm2xV9pLz4Rb8Kd";

/// A store `loja` polled every `poll_interval`, pushes on at a port the
/// daemon picked itself (read from its log, so no other process can take it
/// in between).
struct Rig {
    world: World,
    shop: Shop,
    whatsapp: FakeProvider,
    daemon: Daemon,
    listen: SocketAddr,
}

/// Let the system pick the port.
const ANY_PORT: &str = "127.0.0.1:0";

fn rig(poll_interval: &str) -> Rig {
    rig_on(poll_interval, ANY_PORT)
}

fn rig_on(poll_interval: &str, listen: &str) -> Rig {
    rig_with(poll_interval, listen, "")
}

/// A [`Rig`] with `webhooks_keys` added to `[daemon.webhooks]`.
fn rig_with(poll_interval: &str, listen: &str, webhooks_keys: &str) -> Rig {
    let world = World::new();
    let shop = world.shop("loja");
    let whatsapp = world.channel(Provider::EvolutionApi);
    let tables = tables(&world, &shop, &whatsapp, poll_interval, listen).replacen(
        "[daemon.webhooks]\n",
        &format!("[daemon.webhooks]\n{webhooks_keys}"),
        1,
    );
    let daemon = world.start(&tables, &[]);
    let listen = bound_address(&daemon, 0);
    // The first sync: from here on, only pushes (or the next scheduled poll,
    // minutes away) find changes.
    wait_polls(&daemon.stderr, "loja", 0, 1);
    Rig {
        world,
        shop,
        whatsapp,
        daemon,
        listen,
    }
}

/// Where the daemon's webhook listener listens, from its first "webhook
/// listener on" log line at index `from` or later.
fn bound_address(daemon: &Daemon, from: usize) -> SocketAddr {
    let (_, line) =
        daemon
            .stderr
            .wait_for_matching(from, PATIENCE, "the webhook listener", |line| {
                line.contains("webhook listener on")
            });
    field(&line, "listen")
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("no listen address in {line}"))
}

/// A loopback address no other test listens on (127/8 is all loopback), so
/// "nothing answers there any more" cannot be another test's listener.
fn private_loopback() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.subsec_nanos());
    let pid = std::process::id();
    format!(
        "127.{}.{}.{}:0",
        1 + (pid >> 8) % 250,
        pid % 256,
        1 + nanos % 250
    )
}

/// The configuration of a [`Rig`] listening on `listen`.
fn tables(
    world: &World,
    shop: &Shop,
    whatsapp: &FakeProvider,
    poll_interval: &str,
    listen: &str,
) -> String {
    let store = world
        .store_toml(
            shop,
            &["whatsapp"],
            StoreKnobs {
                settings: format!("webhook_token = {TOKEN:?}\n"),
                ..StoreKnobs::default()
            },
        )
        .replace(
            "poll_interval = \"1s\"",
            &format!("poll_interval = {poll_interval:?}"),
        );
    format!(
        "[daemon.webhooks]\nlisten = \"{listen}\"\n{store}{}",
        world.channel_toml("whatsapp", whatsapp, ChannelKnobs::default())
    )
}

impl Rig {
    fn hook_url(&self, store: &str) -> String {
        format!("http://{}/hooks/{store}", self.listen)
    }

    /// `arauto <args> -c <config>` next to the running daemon.
    fn cli(&self, args: &[&str]) -> Output {
        let mut command = support::daemon::arauto();
        command
            .args(args)
            .arg("--config")
            .arg(&self.daemon.config_path)
            .env("ARAUTO_DAEMON__CACHE_DIR", plugin_cache());
        command.output().expect("run arauto")
    }

    /// Every log line and every CLI output: none may contain `secret`.
    fn assert_never_shown(&self, secret: &str, outputs: &[&str]) {
        for line in self.daemon.all_logs() {
            assert!(!line.contains(secret), "secret in a log line: {line}");
        }
        for output in outputs {
            assert!(!output.contains(secret), "secret in an output: {output}");
        }
    }
}

/// One HTTP/1.1 request on a fresh connection; `(status code, whole answer)`.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to the webhook listener");
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("send the head");
    // The listener may answer (413) and close before the body is all sent:
    // then the write fails, and the answer is there to read.
    let _ = stream.write_all(body);
    read_answer(stream)
}

/// Everything the server sent until it closed. A reset after the answer
/// (the server closed with some of our body unread) ends it too.
fn read_answer(mut stream: TcpStream) -> (u16, String) {
    let mut answer = Vec::new();
    let mut buffer = [0_u8; 8192];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) if !answer.is_empty() => {
                eprintln!("connection ended after the answer: {error}");
                break;
            }
            Err(error) => panic!("no answer: {error}"),
        }
    }
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    (status, answer)
}

/// A push for order `numero` in LI's shape, as LI would send it.
/// The listener verified the push and polls now: 200 with the body
/// `accepted` (a push with nothing to do is 200 `nothing to do`).
#[track_caller]
fn assert_accepted((status, response): (u16, String)) {
    assert_eq!(status, 200, "{response}");
    assert!(response.ends_with("\r\n\r\naccepted\n"), "{response}");
}

fn push(rig: &Rig, store: &str, bearer: &str, numero: u64) -> (u16, String) {
    let body = format!(
        r#"{{"id": 998877, "numero": {numero}, "token": "x", "situacao": {{"codigo": "pedido_pago", "situacao_alterada": true}}}}"#
    );
    http(
        rig.listen,
        "POST",
        &format!("/hooks/{store}"),
        &[
            ("content-type", "application/json"),
            ("authorization", &format!("Bearer {bearer}")),
        ],
        body.as_bytes(),
    )
}

#[test]
fn registered_pushes_send_each_change_within_seconds_and_repeats_send_once() {
    let rig = rig("5m");
    let after_sync = rig.daemon.stderr.len();
    let mut events = rig.world.li.subscribe_webhooks();
    let url = rig.hook_url("loja");
    let registered = rig.cli(&["webhooks", "register", "--store", "loja", "--url", &url]);
    let stdout = String::from_utf8_lossy(&registered.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&registered.stderr).into_owned();
    assert!(registered.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("registered"), "{stdout}");
    let hooks = rig.shop.li.webhooks();
    assert_eq!(hooks.len(), 1);
    assert_eq!(
        (hooks[0].notify_url.as_str(), hooks[0].token.as_str()),
        (url.as_str(), TOKEN)
    );
    rig.world.li.configure_pushes(|options| options.repeats = 3);

    // Two changes, each pushed three times.
    let numero = create(&rig.shop, order_for("Ana", 1, "aguardando_pagamento"));
    rig.world.wait_received(&rig.whatsapp, 1);
    rig.shop.li.set_status(numero, "pedido_pago").expect("paid");
    rig.world.wait_received(&rig.whatsapp, 2);

    // Every copy answered, each accepted (200 "accepted") and each making a poll happen.
    let mut answered = 0;
    while answered < 6 {
        let event = rig
            .world
            .block_on(async { tokio::time::timeout(PATIENCE, events.recv()).await })
            .expect("six pushed copies within the patience")
            .expect("the fake's event feed");
        if let WebhookEvent::Push(record) = event {
            assert_eq!(record.outcome, PushOutcome::Answered(200), "{record:?}");
            answered += 1;
        }
    }
    // A poll logs "poll complete" after its commit, so a message can arrive
    // before the line of the poll that queued it: wait until the polls have
    // logged both queued messages before watching for the next one.
    let queued_since = |from: usize| -> u64 {
        rig.daemon.stderr.lines()[from..]
            .iter()
            .filter(|line| is_about_store(line, "poll complete", "loja"))
            .filter_map(|line| field(line, "queued").and_then(|n| n.parse::<u64>().ok()))
            .sum()
    };
    let mut next_line = after_sync;
    while queued_since(after_sync) < 2 {
        let (index, _) = rig.daemon.stderr.wait_for_matching(
            next_line,
            PATIENCE,
            "the polls that queued both messages",
            |line| is_about_store(line, "poll complete", "loja"),
        );
        next_line = index + 1;
    }
    // One more push after all of them: the poll it causes reads the order
    // again, and the dedupe keeps it from being sent a third time.
    let from = rig.daemon.stderr.len();
    assert_accepted(push(&rig, "loja", TOKEN, numero));
    let (_, last) =
        rig.daemon
            .stderr
            .wait_for_matching(from, PATIENCE, "a push-triggered poll", |line| {
                is_about_store(line, "poll complete", "loja")
                    && field(line, "trigger") == Some("push")
            });
    assert_eq!(field(&last, "queued"), Some("0"), "{last}");
    // What the polls queued is what will ever be sent: two changes, two
    // messages, however many copies made a poll.
    let polls: Vec<String> = rig.daemon.stderr.lines()[after_sync..]
        .iter()
        .filter(|line| is_about_store(line, "poll complete", "loja"))
        .cloned()
        .collect();
    let queued: u64 = polls
        .iter()
        .map(|line| {
            field(line, "queued")
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("no queued= in {line}"))
        })
        .sum();
    assert_eq!(queued, 2, "{polls:#?}");
    let received = rig.whatsapp.received();
    assert_eq!(received.len(), 2, "{received:#?}");
    assert_eq!(
        rig.daemon.stderr.count("push accepted"),
        7,
        "every copy was verified"
    );
    rig.assert_never_shown(TOKEN, &[&stdout, &stderr]);

    let removed = rig.cli(&["webhooks", "unregister", "--store", "loja", "--url", &url]);
    assert!(removed.status.success(), "{removed:?}");
    assert!(rig.shop.li.webhooks().is_empty());
}

#[test]
fn a_wrong_token_is_refused_401_with_the_store_logged_and_check_counts_it() {
    let rig = rig("5m");
    let numero = create(&rig.shop, order_for("Bia", 2, "aguardando_pagamento"));
    assert_accepted(push(&rig, "loja", TOKEN, numero));
    rig.world.wait_received(&rig.whatsapp, 1);

    let forged = "forged-0123456789";
    let (status, answer) = push(&rig, "loja", forged, numero);
    assert_eq!(status, 401, "{answer}");
    let line = rig.daemon.stderr.wait_for("push refused (401)");
    assert!(
        is_about_store(&line, "push refused (401)", "loja"),
        "{line}"
    );

    let checked = rig.cli(&["check", "--store", "loja", "--json"]);
    let json = String::from_utf8_lossy(&checked.stdout).into_owned();
    let checklist: serde_json::Value = serde_json::from_str(&json).expect("check --json");
    let pushes = check_line(&checklist, "store", Some("loja"), "pushes");
    let text = pushes["text"].as_str().expect("text");
    assert!(text.contains("pushes: last accepted"), "{text}");
    assert!(text.contains("1 rejected (1 bad credentials)"), "{text}");
    assert_eq!(pushes["status"], "warn", "{pushes:#}");

    let stderr = String::from_utf8_lossy(&checked.stderr).into_owned();
    for secret in [TOKEN, forged] {
        rig.assert_never_shown(secret, &[&answer, &json, &stderr]);
    }
    assert_eq!(rig.whatsapp.received().len(), 1, "nothing sent twice");
}

#[test]
fn a_10_mb_push_is_refused_413_and_the_daemon_carries_on() {
    let rig = rig("5m");
    let numero = create(&rig.shop, order_for("Caio", 3, "aguardando_pagamento"));
    let big = vec![b'x'; 10 * 1024 * 1024];

    // Declared too large: refused before the body is read.
    let (status, answer) = http(
        rig.listen,
        "POST",
        "/hooks/loja",
        &[("authorization", &format!("Bearer {TOKEN}"))],
        &big,
    );
    assert_eq!(status, 413, "{answer}");

    // Chunked, so the length is only found out while reading.
    let mut stream = TcpStream::connect(rig.listen).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let head = format!(
        "POST /hooks/loja HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nTransfer-Encoding: chunked\r\nauthorization: Bearer {TOKEN}\r\n\r\n",
        rig.listen
    );
    stream.write_all(head.as_bytes()).expect("head");
    for chunk in big.chunks(64 * 1024) {
        if stream
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .and_then(|()| stream.write_all(chunk))
            .and_then(|()| stream.write_all(b"\r\n"))
            .is_err()
        {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n");
    let (status, answer) = read_answer(stream);
    assert_eq!(status, 413, "{answer}");

    // Still serving: a proper push goes through and the message goes out.
    assert_accepted(push(&rig, "loja", TOKEN, numero));
    rig.world.wait_received(&rig.whatsapp, 1);
    assert!(rig.daemon.is_running());
}

#[test]
fn unknown_stores_other_paths_and_methods_are_refused() {
    let rig = rig("5m");
    let (status, answer) = push(&rig, "nao-existe", TOKEN, 1001);
    assert_eq!(status, 404, "{answer}");
    let line = rig.daemon.stderr.wait_for("push refused (404)");
    assert!(line.contains("nao-existe"), "{line}");
    assert_eq!(
        http(rig.listen, "GET", "/hooks/loja", &[], b"").0,
        405,
        "only POST"
    );
    assert_eq!(http(rig.listen, "POST", "/elsewhere", &[], b"").0, 404);
    assert!(rig.whatsapp.received().is_empty());
    rig.assert_never_shown(TOKEN, &[&answer]);

    // The CLI refuses an unknown store and a URL that is not absolute http(s).
    let url = rig.hook_url("loja");
    let unknown = rig.cli(&[
        "webhooks",
        "register",
        "--store",
        "nao-existe",
        "--url",
        &url,
    ]);
    assert_eq!(unknown.status.code(), Some(2), "{unknown:?}");
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown store"));
    let relative = rig.cli(&[
        "webhooks",
        "register",
        "--store",
        "loja",
        "--url",
        "/hooks/loja",
    ]);
    assert_eq!(relative.status.code(), Some(2), "{relative:?}");
    assert!(rig.shop.li.webhooks().is_empty());
}

/// Polling alone, a change goes out with the next scheduled poll: the poll
/// that queues its message is a scheduled one, and at most the second to
/// complete after the change (the first may have been running already and
/// read the listing before the order existed). Asserted from the daemon's own
/// "poll complete" lines, not from a clock (`make bench` times the path).
#[test]
fn with_every_push_lost_polling_still_delivers_within_one_interval() {
    let rig = rig("2s");
    let url = rig.hook_url("loja");
    rig.shop.li.register_webhook(&url, TOKEN);
    rig.world
        .li
        .configure_pushes(|options| options.drop_fraction = 1.0);
    let from = rig.daemon.stderr.len();
    create(&rig.shop, order_for("Davi", 4, "aguardando_pagamento"));
    rig.world.wait_received(&rig.whatsapp, 1);
    let mut next_line = from;
    let mut polls = Vec::new();
    loop {
        let (index, line) = rig.daemon.stderr.wait_for_matching(
            next_line,
            PATIENCE,
            "the poll that queued the message",
            |line| is_about_store(line, "poll complete", "loja"),
        );
        next_line = index + 1;
        let queued = field(&line, "queued") == Some("1");
        polls.push(line);
        if queued {
            break;
        }
    }
    assert!(
        polls.len() <= 2,
        "queued by the {}th poll after the change: {polls:#?}",
        polls.len()
    );
    let queuing = polls.last().map(String::as_str).unwrap_or_default();
    assert_eq!(field(queuing, "trigger"), Some("schedule"), "{queuing}");
    assert_eq!(
        rig.daemon.stderr.count("push accepted"),
        0,
        "nothing was pushed"
    );
}

#[test]
fn a_listen_address_in_use_fails_the_start_with_a_clear_message() {
    let world = World::new();
    let shop = world.shop("loja");
    let whatsapp = world.channel(Provider::EvolutionApi);
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let listen = taken.local_addr().expect("addr");
    let tables = format!(
        "[daemon.webhooks]\nlisten = \"{listen}\"\n{}{}",
        world.store_toml(&shop, &["whatsapp"], StoreKnobs::default()),
        world.channel_toml("whatsapp", &whatsapp, ChannelKnobs::default())
    );
    let mut daemon = world.spawn(&tables, &[]);
    // Awaited in the log (the reader may lag behind the exit).
    let line = daemon
        .stderr
        .wait_for("cannot listen on daemon.webhooks.listen");
    assert!(line.contains(&listen.to_string()), "{line}");
    assert!(!daemon.wait_exit(PATIENCE).success());
}

#[test]
fn a_reload_that_moves_the_listener_rebinds_it_and_pushes_keep_working() {
    let mut rig = rig_on("5m", &private_loopback());
    let config = tables(&rig.world, &rig.shop, &rig.whatsapp, "5m", ANY_PORT);
    let from = rig.daemon.stderr.len();
    rig.world.rewrite(&rig.daemon, &config);
    rig.daemon.signal(Signal::SIGHUP);
    rig.daemon.await_notice("RELOADING=1");
    rig.daemon.await_notice("READY=1");
    let moved = bound_address(&rig.daemon, from);
    assert_ne!(moved.ip(), rig.listen.ip());
    assert!(
        TcpStream::connect(rig.listen).is_err(),
        "the old address is closed"
    );
    rig.listen = moved;
    let numero = create(&rig.shop, order_for("Eva", 5, "aguardando_pagamento"));
    assert_accepted(push(&rig, "loja", TOKEN, numero));
    rig.world.wait_received(&rig.whatsapp, 1);
}

#[test]
fn while_polling_is_paused_on_refused_credentials_check_says_pushes_are_held() {
    let rig = rig("5m");
    rig.shop.li.reject_auth(Some(401));
    // The push is authentic (its token is the store's), so it is accepted;
    // the poll it brings forward finds the API key refused.
    assert_accepted(push(&rig, "loja", TOKEN, 1));
    rig.daemon.stderr.wait_for("poll failed, store paused");
    assert_accepted(push(&rig, "loja", TOKEN, 1));

    let checked = rig.cli(&["check", "--store", "loja", "--json"]);
    let json = String::from_utf8_lossy(&checked.stdout).into_owned();
    let checklist: serde_json::Value = serde_json::from_str(&json).expect("check --json");
    let pushes = check_line(&checklist, "store", Some("loja"), "pushes");
    let text = pushes["text"].as_str().expect("text");
    assert!(text.contains("pushes: last accepted"), "{text}");
    assert!(text.contains("held while polling is paused"), "{text}");
    assert_eq!(pushes["status"], "warn", "{pushes:#}");
}

#[test]
fn register_says_a_disabled_store_is_disabled() {
    let world = World::new();
    let shop = world.shop("loja");
    let whatsapp = world.channel(Provider::EvolutionApi);
    let store = world.store_toml(
        &shop,
        &["whatsapp"],
        StoreKnobs {
            table: "enabled = false\n".into(),
            settings: format!("webhook_token = {TOKEN:?}\n"),
            ..StoreKnobs::default()
        },
    );
    let tables = format!(
        "[daemon.webhooks]\nlisten = \"{ANY_PORT}\"\n{store}{}",
        world.channel_toml("whatsapp", &whatsapp, ChannelKnobs::default())
    );
    let daemon = world.start(&tables, &[]);
    let listen = bound_address(&daemon, 0);
    let url = format!("http://{listen}/hooks/loja");
    let registered = support::daemon::arauto()
        .args(["webhooks", "register", "--store", "loja", "--url", &url])
        .arg("--config")
        .arg(&daemon.config_path)
        .env("ARAUTO_DAEMON__CACHE_DIR", plugin_cache())
        .output()
        .expect("run arauto");
    assert_eq!(registered.status.code(), Some(2), "{registered:?}");
    let stderr = String::from_utf8_lossy(&registered.stderr);
    assert!(stderr.contains("store loja is disabled"), "{stderr}");
    assert!(shop.li.webhooks().is_empty());
}

#[test]
fn forged_pushes_cannot_spend_the_budget_of_authentic_ones_and_a_flood_of_them_gets_429() {
    // Two authentic pushes at once, one a minute after; refusals: four
    // times that (8 at once).
    let rig = rig_with("5m", ANY_PORT, "per_store_per_minute = 1\nburst = 2\n");
    let numero = create(&rig.shop, order_for("Gil", 7, "aguardando_pagamento"));
    let forged = "forged-0123456789";
    for _ in 0..3 {
        assert_eq!(push(&rig, "loja", forged, numero).0, 401);
    }
    // More forged pushes than the authentic burst, and the real one still
    // gets through.
    assert_accepted(push(&rig, "loja", TOKEN, numero));
    rig.world.wait_received(&rig.whatsapp, 1);

    // Forged pushes go on being verified until the refusal budget is spent
    // (8, plus what refilled meanwhile at 4 a minute), then get 429 unread.
    let mut refused = 3;
    let (status, answer) = loop {
        let (status, answer) = push(&rig, "loja", forged, numero);
        if status != 401 {
            break (status, answer);
        }
        refused += 1;
        assert!(refused < 30, "never throttled");
    };
    assert_eq!(status, 429, "{answer}");
    assert!(refused >= 8, "throttled after {refused} refusals");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after"),
        "{answer}"
    );

    let checked = rig.cli(&["check", "--store", "loja", "--json"]);
    let json = String::from_utf8_lossy(&checked.stdout).into_owned();
    let checklist: serde_json::Value = serde_json::from_str(&json).expect("check --json");
    let pushes = check_line(&checklist, "store", Some("loja"), "pushes");
    let text = pushes["text"].as_str().expect("text");
    assert!(text.contains("held back after too many refusals"), "{text}");
    rig.assert_never_shown(forged, &[&answer, &json]);
}

#[test]
fn a_body_that_never_arrives_gets_408_and_a_dropped_connection_is_not_counted_too_large() {
    let rig = rig("5m");
    let head = |addr: SocketAddr| {
        format!(
            "POST /hooks/loja HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 100\r\nauthorization: Bearer {TOKEN}\r\n\r\n{{\"id\": 1"
        )
    };
    // The client goes away halfway through its body.
    let mut aborted = TcpStream::connect(rig.listen).expect("connect");
    aborted
        .write_all(head(rig.listen).as_bytes())
        .expect("send");
    aborted
        .shutdown(std::net::Shutdown::Both)
        .expect("shut down");

    // The client stays, its body does not come: the listener gives up after
    // its body deadline instead of holding the connection slot.
    let mut stalled = TcpStream::connect(rig.listen).expect("connect");
    stalled.set_read_timeout(Some(PATIENCE)).expect("timeout");
    stalled
        .write_all(head(rig.listen).as_bytes())
        .expect("send");
    // 408 comes only from the listener's body deadline (the client would
    // have given up with a read timeout instead).
    let (status, answer) = read_answer(stalled);
    assert_eq!(status, 408, "{answer}");

    let checked = rig.cli(&["check", "--store", "loja", "--json"]);
    let json = String::from_utf8_lossy(&checked.stdout).into_owned();
    let checklist: serde_json::Value = serde_json::from_str(&json).expect("check --json");
    let pushes = check_line(&checklist, "store", Some("loja"), "pushes");
    let text = pushes["text"].as_str().expect("text");
    assert!(!text.contains("too large"), "{text}");
    assert!(rig.daemon.is_running());
}
