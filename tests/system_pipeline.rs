//! Full-system tests of the notification pipeline: the real `arauto` binary
//! as a child process, the real plugins, a fake Loja Integrada API and fake
//! WhatsApp gateways on 127.0.0.1 (see `support/system.rs`).
//!
//! Each test asserts what a shop owner would see: which customer got which
//! message, in which order, with which text, and that nothing is lost or sent
//! twice across reloads, restarts and crashes.

// All test code: with this, clippy's allow-unwrap/expect-in-tests covers the
// helper functions too, not only the #[test] ones (see clippy.toml).
#![cfg(test)]

use crate::support;

use std::time::Duration;

use arauto::queue::{CounterQuery, JobFilter, JobState, Outcome, StateStore};
use arauto_sim::channels::{Endpoint, FakeProvider, Provider, Reply, evolution};
use arauto_sim::li::{Fault, Route};
use arauto_sim::scenario::{ExpectedKind, Scenario};
use nix::sys::signal::Signal;

use support::daemon::PATIENCE;
use support::system::{
    ChannelKnobs, StateDb, StoreKnobs, World, brl, create, field, is_about_store, order_for,
    phone_digits, sent_notifications, tally, wait_lines, wait_polls,
};

/// The demo story, step by step: after each change the test waits until the
/// daemon sent what the change calls for (or, when it calls for nothing on a
/// phone channel, until two polls saw it), then checks that the customers got
/// exactly the expected messages, in order, with the right text, and that the
/// delivery history (job outcomes, provider message ids, daily counters) says so.
#[test]
fn a_stores_order_lifecycle_sends_exactly_the_expected_messages_in_order() {
    let world = World::new();
    let shop = world.shop("loja");
    let whatsapp = world.channel(Provider::EvolutionApi);
    let mut story = Scenario::demo(world.start);
    story.seed_history(&shop.li).expect("seed the history");
    let tables = world.store_toml(&shop, &["whatsapp"], StoreKnobs::default())
        + &world.channel_toml("whatsapp", &whatsapp, ChannelKnobs::default());
    let mut daemon = world.start(&tables, &[]);
    // The first sync records the historical orders without a word.
    wait_polls(&daemon.stderr, "loja", 0, 1);

    let mut expected_so_far = 0;
    while let Some(step) = story.apply_next_scheduled(&shop.li).expect("apply a step") {
        let on_phone = step
            .expected
            .iter()
            .filter(|e| e.reaches_phone_channels())
            .count();
        if on_phone > 0 {
            expected_so_far += on_phone;
            world.wait_received(&whatsapp, expected_so_far);
        } else {
            wait_polls(&daemon.stderr, "loja", daemon.stderr.len(), 2);
        }
    }
    // Nothing else is on its way.
    wait_polls(&daemon.stderr, "loja", daemon.stderr.len(), 2);
    daemon.signal(Signal::SIGTERM);
    assert!(daemon.wait_exit(PATIENCE).success());

    let expected = story.expected_on_phone_channels();
    let received = whatsapp.received();
    assert_eq!(
        received.len(),
        expected.len(),
        "messages received: {received:#?}"
    );
    for (message, want) in received.iter().zip(&expected) {
        let context = format!("{} for pedido {}: {message:#?}", want.kind, want.numero);
        assert_eq!(
            Some(message.to.clone()),
            want.phone_digits(),
            "recipient of {context}"
        );
        assert!(
            message.text.contains(&want.first_name),
            "first name in {context}"
        );
        assert!(
            message.text.contains(&format!("#{}", want.numero)),
            "order number in {context}"
        );
        for code in &want.tracking_codes {
            assert!(
                message.text.contains(code),
                "tracking code {code} in {context}"
            );
        }
        if matches!(
            want.kind,
            ExpectedKind::WaitingPayment | ExpectedKind::OrderPaid | ExpectedKind::OrderCanceled
        ) {
            let total = shop.li.order(want.numero).expect("order").total_cents();
            assert!(
                message.text.contains(&brl(total)),
                "total {} in {context}",
                brl(total)
            );
        }
    }
    let log = daemon.stderr.lines();
    let sent = sent_notifications(&log);
    let want: Vec<(String, String)> = expected
        .iter()
        .map(|e| (e.numero.to_string(), e.kind.as_str().to_owned()))
        .collect();
    assert_eq!(sent, want, "notifications sent, in order");
    assert_eq!(
        daemon.stderr.count("notification queued"),
        expected.len(),
        "no other job was queued (historical orders, the touched old order and the order without a phone produce none)"
    );
    assert!(
        log.iter()
            .any(|l| l.contains("invalid event") && field(l, "order") == Some("1005")),
        "the order without a phone is logged as an invalid event"
    );

    // The delivery history: every job sent, with the provider's message id,
    // and the daily counters agree.
    let db = StateDb::open(&daemon);
    db.verify();
    let jobs = db.all_jobs();
    assert_eq!(jobs.len(), expected.len());
    let provider_ids: std::collections::BTreeSet<String> = received
        .iter()
        .map(|m| m.provider_message_id.clone())
        .collect();
    for job in &jobs {
        assert_eq!(job.state, JobState::Sent, "{job:#?}");
        assert!(job.finished_at.is_some(), "{job:#?}");
        let id = job
            .receipt
            .as_ref()
            .and_then(|r| r.provider_message_id.clone())
            .expect("a provider message id in the history");
        assert!(
            provider_ids.contains(&id),
            "{id} was not issued by the gateway"
        );
    }
    let counters = db
        .run(db.store().counters(CounterQuery {
            from_day: "2000-01-01".into(),
            to_day: "2999-12-31".into(),
            store: Some("loja".into()),
            channel: None,
            kind: None,
        }))
        .expect("daily counters");
    let sent_per_kind: std::collections::BTreeMap<String, u64> = counters
        .iter()
        .filter(|row| row.outcome == Outcome::Sent)
        .fold(Default::default(), |mut acc, row| {
            *acc.entry(row.kind.clone()).or_default() += row.count;
            acc
        });
    let want_per_kind: std::collections::BTreeMap<String, u64> =
        tally(expected.iter().map(|e| e.kind.as_str().to_owned()))
            .into_iter()
            .map(|(kind, n)| (kind, n as u64))
            .collect();
    assert_eq!(sent_per_kind, want_per_kind, "daily counters of sends");
}

/// Two shops, each on its own WhatsApp number: every message goes out through
/// its shop's number only, and while one number's gateway hangs the other
/// shop's customers are still notified at once.
#[test]
fn two_stores_on_two_channels_stay_apart_and_a_stalled_channel_does_not_hold_up_the_other() {
    let world = World::new();
    let (north, south) = (world.shop("norte"), world.shop("sul"));
    let (north_zap, south_zap) = (
        world.channel(Provider::EvolutionApi),
        world.channel(Provider::EvolutionApi),
    );
    let tables = world.store_toml(&north, &["zap-norte"], StoreKnobs::default())
        + &world.store_toml(&south, &["zap-sul"], StoreKnobs::default())
        + &world.channel_toml(
            "zap-norte",
            &north_zap,
            ChannelKnobs {
                sandbox: "call_timeout = \"3s\"".into(),
                ..ChannelKnobs::default()
            },
        )
        + &world.channel_toml("zap-sul", &south_zap, ChannelKnobs::default());
    let mut daemon = world.start(&tables, &[]);

    create(&north, order_for("Ana", 1, "aguardando_pagamento"));
    create(&south, order_for("Bruno", 2, "aguardando_pagamento"));
    world.wait_received(&north_zap, 1);
    world.wait_received(&south_zap, 1);

    // The north gateway stops answering (and never delivers what it got).
    north_zap.set_default(
        Endpoint::Send,
        Reply::delayed(Duration::from_secs(600), evolution::server_error()),
    );
    let north_requests = north_zap.requests().len();
    create(&north, order_for("Carla", 3, "aguardando_pagamento"));
    world.wait_requests(&north_zap, north_requests + 1);
    create(&south, order_for("Davi", 4, "aguardando_pagamento"));
    // Davi hears from the south number while the north one is stuck.
    world.wait_received(&south_zap, 2);
    assert_eq!(
        north_zap.received().len(),
        1,
        "Carla's message cannot have been accepted while the north gateway hangs"
    );
    let (_, stalled) =
        daemon
            .stderr
            .wait_for_matching(0, PATIENCE, "send failed on zap-norte", |line| {
                line.contains("send failed") && field(line, "channel") == Some("zap-norte")
            });
    assert!(
        stalled.contains("wall-clock budget") && stalled.contains("order=1002"),
        "the log names the channel, the order and the timeout: {stalled}"
    );

    // The gateway recovers: Carla's message goes out on the next attempt.
    north_zap.set_default(Endpoint::Send, Reply::success());
    world.wait_received(&north_zap, 2);
    daemon.signal(Signal::SIGTERM);
    assert!(daemon.wait_exit(PATIENCE).success());

    let to = |fake: &FakeProvider| -> Vec<String> {
        fake.received().into_iter().map(|m| m.to).collect()
    };
    assert_eq!(to(&north_zap), [phone_digits(1), phone_digits(3)]);
    assert_eq!(to(&south_zap), [phone_digits(2), phone_digits(4)]);
    assert!(
        north_zap
            .received()
            .iter()
            .all(|m| m.text.contains("Loja norte"))
            && south_zap
                .received()
                .iter()
                .all(|m| m.text.contains("Loja sul")),
        "each message is signed by its own shop"
    );
}

/// Order numbers start at the same value in every LI shop and a customer may
/// buy from two of them: two shops whose orders coincide in customer, number,
/// total and status each send their message, while one shop configured twice
/// (same credentials under another store id) sends once, the copy logged as a
/// suppressed duplicate naming the other store.
#[test]
fn two_shops_with_coinciding_orders_both_notify_while_one_shop_configured_twice_notifies_once() {
    let world = World::new();
    let (north, south) = (world.shop("norte"), world.shop("sul"));
    let zap = world.channel(Provider::EvolutionApi);
    let north_copy = world
        .store_toml(&north, &["zap"], StoreKnobs::default())
        .replace("stores.norte", "stores.norte-copia");
    let tables = world.store_toml(&north, &["zap"], StoreKnobs::default())
        + &north_copy
        + &world.store_toml(&south, &["zap"], StoreKnobs::default())
        + &world.channel_toml("zap", &zap, ChannelKnobs::default());
    let daemon = world.start(&tables, &[]);

    let north_number = create(&north, order_for("Ana", 1, "aguardando_pagamento"));
    let south_number = create(&south, order_for("Ana", 1, "aguardando_pagamento"));
    assert_eq!(north_number, south_number, "the orders coincide");
    let (_, duplicate) = daemon.stderr.wait_for_matching(
        0,
        PATIENCE,
        "duplicate not queued by a copy of norte",
        |line| {
            line.contains("duplicate not queued")
                && matches!(
                    (field(line, "store"), field(line, "other_store")),
                    (Some("norte"), Some("norte-copia")) | (Some("norte-copia"), Some("norte"))
                )
        },
    );
    assert!(duplicate.contains(" INFO "), "{duplicate}");
    let received = world.wait_received(&zap, 2);
    // Both copies of norte polled past the order twice since: no third message.
    let from = daemon.stderr.len();
    for store in ["norte", "norte-copia", "sul"] {
        wait_polls(&daemon.stderr, store, from, 2);
    }
    let received_now = zap.received();
    assert_eq!(received_now.len(), 2, "{received_now:#?}");
    let signed: Vec<bool> = ["Loja norte", "Loja sul"]
        .iter()
        .map(|shop| received.iter().any(|m| m.text.contains(shop)))
        .collect();
    assert_eq!(signed, [true, true], "one message per shop: {received:#?}");
    assert!(
        received.iter().all(|m| m.to == phone_digits(1)),
        "{received:#?}"
    );
    assert!(
        !daemon
            .stderr
            .lines()
            .iter()
            .any(|l| l.contains("duplicate not queued") && field(l, "store") == Some("sul")),
        "the other shop's message is no duplicate"
    );
}

/// A store whose LI key is rejected (401) is logged and paused; the other
/// store keeps polling and notifying; the paused store re-checks its key with
/// back-off; a SIGHUP with the fixed key resumes the paused store at once and
/// the order that arrived meanwhile is not lost.
#[test]
fn a_store_with_a_rejected_key_is_paused_while_the_good_one_keeps_going_and_a_reload_with_the_fixed_key_resumes_it()
 {
    let world = World::new();
    let (good, bad) = (world.shop("boa"), world.shop("ruim"));
    let zap = world.channel(Provider::EvolutionApi);
    let channel = world.channel_toml("whatsapp", &zap, ChannelKnobs::default());
    let broken = world.store_toml(&good, &["whatsapp"], StoreKnobs::default())
        + &world.store_toml(
            &bad,
            &["whatsapp"],
            StoreKnobs {
                api_key: Some("chave-revogada".into()),
                ..StoreKnobs::default()
            },
        )
        + &channel;
    let mut daemon = world.start(&broken, &[]);
    create(&bad, order_for("Rui", 11, "aguardando_pagamento"));

    let (paused_at, paused) =
        daemon
            .stderr
            .wait_for_matching(0, PATIENCE, "poll failed for ruim", |line| {
                is_about_store(line, "poll failed", "ruim")
            });
    assert!(
        paused.contains("ERROR") && paused.contains("paused") && paused.contains("401"),
        "the log says the store is paused and why: {paused}"
    );

    // The good store is not disturbed.
    create(&good, order_for("Gabi", 12, "aguardando_pagamento"));
    world.wait_received(&zap, 1);
    wait_polls(&daemon.stderr, "boa", paused_at, 3);

    // The paused store checks its credentials again, less and less often,
    // instead of polling every second.
    let still_paused = |from: usize| {
        daemon
            .stderr
            .wait_for_matching(from, PATIENCE, "credentials re-check of ruim", |line| {
                is_about_store(line, "polling still paused", "ruim")
            })
    };
    let (first_at, first) = still_paused(paused_at);
    let (_, second) = still_paused(first_at + 1);
    let wait = |line: &str| -> u64 {
        field(line, "retry_in_s")
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no retry_in_s in {line}"))
    };
    assert!(
        wait(&second) > wait(&first),
        "the re-check backs off: {first} then {second}"
    );

    // The key is fixed and the configuration reloaded.
    let fixed = world.store_toml(&good, &["whatsapp"], StoreKnobs::default())
        + &world.store_toml(&bad, &["whatsapp"], StoreKnobs::default())
        + &channel;
    world.rewrite(&daemon, &fixed);
    let mark = daemon.stderr.len();
    daemon.signal(Signal::SIGHUP);
    daemon.await_notice("RELOADING=1");
    daemon.await_notice("READY=1");
    wait_polls(&daemon.stderr, "ruim", mark, 1);
    let received = world.wait_received(&zap, 2);
    daemon.signal(Signal::SIGTERM);
    assert!(daemon.wait_exit(PATIENCE).success());

    let to: Vec<&str> = received.iter().map(|m| m.to.as_str()).collect();
    assert_eq!(to, [phone_digits(12), phone_digits(11)]);
    assert_eq!(
        daemon.stderr.count("notification queued"),
        2,
        "one job per order"
    );
}

/// One 401 (a transient LI hiccup) pauses the store's polling only until its
/// credentials work again: it re-checks them by itself and polls on, without
/// a reload, and the order placed meanwhile is notified.
#[test]
fn a_store_paused_by_one_401_resumes_by_itself_once_the_credentials_work() {
    let world = World::new();
    let shop = world.shop("loja");
    let zap = world.channel(Provider::EvolutionApi);
    let tables = world.store_toml(&shop, &["whatsapp"], StoreKnobs::default())
        + &world.channel_toml("whatsapp", &zap, ChannelKnobs::default());
    shop.li.fail(Route::Search, Fault::Status(401), 1);
    let mut daemon = world.start(&tables, &[]);

    let (paused_at, paused) =
        daemon
            .stderr
            .wait_for_matching(0, PATIENCE, "the store paused", |line| {
                is_about_store(line, "poll failed, store paused", "loja")
            });
    assert!(
        paused.contains("401") && paused.contains("checked again in 1s"),
        "the log says why and when it is tried again: {paused}"
    );
    create(&shop, order_for("Rui", 11, "aguardando_pagamento"));
    daemon
        .stderr
        .wait_for_matching(paused_at, PATIENCE, "polling resumed", |line| {
            is_about_store(
                line,
                "accepts the credentials again: polling resumed",
                "loja",
            )
        });
    let received = world.wait_received(&zap, 1);
    daemon.signal(Signal::SIGTERM);
    assert!(daemon.wait_exit(PATIENCE).success());
    assert_eq!(received[0].to, phone_digits(11));
    assert_eq!(daemon.stderr.count("configuration reloaded"), 0);
}

/// A connector that keeps saying "more pages" cannot keep a sweep going: it
/// stops at `max_pages_per_sweep` with a warning naming the store, keeps the
/// cursor of the pages read, and the next poll goes on from there, so every
/// order is still notified.
#[test]
fn a_sweep_stops_at_the_page_cap_and_the_next_poll_goes_on_from_there() {
    let world = World::new();
    let shop = world.shop("loja");
    let zap = world.channel(Provider::EvolutionApi);
    let tables = world.store_toml(
        &shop,
        &["whatsapp"],
        StoreKnobs {
            table: "max_pages_per_sweep = 2".into(),
            settings: "page_size = 1".into(),
            ..StoreKnobs::default()
        },
    ) + &world.channel_toml("whatsapp", &zap, ChannelKnobs::default());
    for serial in 21..26 {
        create(&shop, order_for("Ana", serial, "aguardando_pagamento"));
    }
    let mut daemon = world.start(&tables, &[]);

    let (_, capped) = daemon
        .stderr
        .wait_for_matching(0, PATIENCE, "a capped poll", |line| {
            is_about_store(line, "poll stopped after 2 pages", "loja")
        });
    assert!(
        capped.contains("WARN") && capped.contains("max_pages_per_sweep"),
        "{capped}"
    );
    let received = world.wait_received(&zap, 5);
    daemon.signal(Signal::SIGTERM);
    assert!(daemon.wait_exit(PATIENCE).success());
    let mut to: Vec<String> = received.iter().map(|m| m.to.clone()).collect();
    to.sort();
    assert_eq!(
        to,
        (21..26).map(phone_digits).collect::<Vec<_>>(),
        "every order notified once"
    );
}

/// LI answers 429 with Retry-After: the next search waits at least that long,
/// also when the daemon is restarted in between.
#[test]
fn a_429_retry_after_is_honoured_across_a_restart() {
    let world = World::new();
    let shop = world.shop("loja");
    let zap = world.channel(Provider::EvolutionApi);
    let tables = world.store_toml(&shop, &["whatsapp"], StoreKnobs::default())
        + &world.channel_toml("whatsapp", &zap, ChannelKnobs::default());
    shop.li.fail(
        Route::Search,
        Fault::TooManyRequests {
            retry_after_secs: Some(4),
        },
        1,
    );
    let mut daemon = world.start(&tables, &[]);
    let (_, failed) = daemon
        .stderr
        .wait_for_matching(0, PATIENCE, "the 429", |line| {
            is_about_store(line, "poll failed", "loja")
        });
    assert_eq!(field(&failed, "retry_in_s"), Some("4"), "{failed}");
    daemon.signal(Signal::SIGTERM);
    assert!(daemon.wait_exit(PATIENCE).success());
    daemon.restart();
    daemon.await_notice("READY=1");
    wait_polls(&daemon.stderr, "loja", 0, 1);
    daemon.signal(Signal::SIGTERM);
    assert!(daemon.wait_exit(PATIENCE).success());

    let searches: Vec<_> = shop
        .li
        .requests()
        .into_iter()
        .filter(|r| r.is_search())
        .collect();
    assert_eq!(searches[0].status, 429);
    let waited = searches[1].at.duration_since(searches[0].at);
    assert!(
        waited >= jiff::SignedDuration::from_secs(4),
        "the next search came {waited:?} after a 429 that asked for 4s"
    );
}

/// Jobs queued behind the channel's pacing survive a reload that adds a
/// store: every one is sent, once. The new store is added the way a
/// sysadmin would, without a `first_sync_cutoff`: its existing orders are
/// recorded silently, and only what changes after that is notified.
#[test]
fn a_reload_adds_a_store_without_losing_queued_jobs() {
    let world = World::new();
    // Real LI time, so that "before the new store's first poll" means something.
    world.li.use_system_clock();
    let (first, second) = (world.shop("primeira"), world.shop("segunda"));
    let zap = world.channel(Provider::EvolutionApi);
    let channel = world.channel_toml(
        "whatsapp",
        &zap,
        ChannelKnobs {
            min_interval: "2s".into(),
            ..ChannelKnobs::default()
        },
    );
    let one_store = world.store_toml(&first, &["whatsapp"], StoreKnobs::default()) + &channel;
    let mut daemon = world.start(&one_store, &[]);
    for serial in 1..=5 {
        create(&first, order_for("Cliente", serial, "aguardando_pagamento"));
    }
    // The second shop already has customers waiting for their payment.
    for serial in 50..53 {
        create(&second, order_for("Antiga", serial, "aguardando_pagamento"));
    }
    wait_lines(&daemon.stderr, 0, "notification queued", 5);
    world.wait_received(&zap, 1);

    let two_stores = one_store
        + &world.store_toml(
            &second,
            &["whatsapp"],
            StoreKnobs {
                cutoff_at_first_poll: true,
                ..StoreKnobs::default()
            },
        );
    world.rewrite(&daemon, &two_stores);
    let mark = daemon.stderr.len();
    daemon.signal(Signal::SIGHUP);
    daemon.await_notice("READY=1");
    let (_, applied) = daemon.stderr.wait_for_from(mark, "reload applied");
    assert!(applied.contains("poll/segunda"), "{applied}");
    assert!(
        zap.received().len() < 5,
        "the reload happened with jobs still queued"
    );
    let (_, first_sync) =
        daemon
            .stderr
            .wait_for_matching(mark, PATIENCE, "the first poll of segunda", |l| {
                is_about_store(l, "poll complete", "segunda")
            });
    assert_eq!(field(&first_sync, "orders"), Some("3"), "{first_sync}");
    assert_eq!(field(&first_sync, "queued"), Some("0"), "{first_sync}");
    create(&second, order_for("Nova", 6, "aguardando_pagamento"));

    let received = world.wait_received(&zap, 6);
    wait_polls(&daemon.stderr, "segunda", daemon.stderr.len(), 2);
    daemon.signal(Signal::SIGTERM);
    assert!(daemon.wait_exit(PATIENCE).success());
    let to = tally(zap.received().into_iter().map(|m| m.to));
    let want = tally((1..=6).map(phone_digits));
    assert_eq!(to, want, "every customer exactly once: {received:#?}");
}

/// SIGTERM while messages wait for the channel's pacing: the daemon stops
/// cleanly with them still queued, and after a restart each is sent exactly once.
#[test]
fn sigterm_with_a_backlog_loses_nothing() {
    let world = World::new();
    let shop = world.shop("loja");
    let zap = world.channel(Provider::EvolutionApi);
    let tables = world.store_toml(&shop, &["whatsapp"], StoreKnobs::default())
        + &world.channel_toml(
            "whatsapp",
            &zap,
            ChannelKnobs {
                min_interval: "1s".into(),
                ..ChannelKnobs::default()
            },
        );
    let mut daemon = world.start(&tables, &[]);
    for serial in 1..=6 {
        create(&shop, order_for("Cliente", serial, "aguardando_pagamento"));
    }
    wait_lines(&daemon.stderr, 0, "notification queued", 6);
    world.wait_received(&zap, 2);
    daemon.signal(Signal::SIGTERM);
    daemon.await_notice("STOPPING=1");
    assert!(daemon.wait_exit(PATIENCE).success(), "a clean stop");

    let sent_before = zap.received().len();
    assert!(sent_before < 6, "the test needs a backlog at SIGTERM");
    {
        let db = StateDb::open(&daemon);
        db.verify();
        let pending = db.jobs(JobFilter {
            state: Some(JobState::Pending),
            ..JobFilter::default()
        });
        let sent = db.jobs(JobFilter {
            state: Some(JobState::Sent),
            ..JobFilter::default()
        });
        assert_eq!(
            (pending.len(), sent.len()),
            (6 - sent_before, sent_before),
            "what was not sent is still queued"
        );
    }

    daemon.restart();
    daemon.await_notice("READY=1");
    world.wait_received(&zap, 6);
    daemon.signal(Signal::SIGTERM);
    assert!(daemon.wait_exit(PATIENCE).success());
    let to = tally(zap.received().into_iter().map(|m| m.to));
    assert_eq!(to, tally((1..=6).map(phone_digits)), "each exactly once");
    let db = StateDb::open(&daemon);
    let states = tally(db.all_jobs().into_iter().map(|job| job.state));
    assert_eq!(states, tally(std::iter::repeat_n(JobState::Sent, 6)));
}

/// `--dry-run` does everything but call the sender: the would-be message is
/// logged with its text, the provider hears nothing, the job is recorded as
/// skipped.
#[test]
fn dry_run_sends_nothing_and_logs_what_would_be_sent() {
    let world = World::new();
    let shop = world.shop("loja");
    let zap = world.channel(Provider::EvolutionApi);
    let tables = world.store_toml(&shop, &["whatsapp"], StoreKnobs::default())
        + &world.channel_toml("whatsapp", &zap, ChannelKnobs::default());
    let mut daemon = world.start(&tables, &["--dry-run"]);
    let numero = create(&shop, order_for("Helena", 7, "aguardando_pagamento"));
    let (at, line) = daemon.stderr.wait_for_from(0, "dry run: would send");
    assert!(line.contains("INFO"), "{line}");
    // The message text follows on the next lines, then the fields.
    let (end, fields) = daemon.stderr.wait_for_from(at, "job_id=");
    let text = daemon.stderr.lines()[at..=end].join("\n");
    assert!(
        text.contains("Olá, Helena!") && text.contains(&format!("#{numero}")),
        "the would-be text is logged: {text}"
    );
    assert_eq!(
        field(&fields, "to"),
        Some(format!("+{}", phone_digits(7)).as_str())
    );
    wait_polls(&daemon.stderr, "loja", daemon.stderr.len(), 2);
    daemon.signal(Signal::SIGTERM);
    assert!(daemon.wait_exit(PATIENCE).success());

    assert!(
        zap.requests_to(Endpoint::Send).is_empty(),
        "nothing reached the provider: {:?}",
        zap.requests()
    );
    let db = StateDb::open(&daemon);
    let jobs = db.all_jobs();
    assert_eq!(jobs.len(), 1, "{jobs:#?}");
    assert_eq!(jobs[0].state, JobState::Skipped);
    assert!(
        jobs[0]
            .outcome_reason
            .as_deref()
            .is_some_and(|r| r.contains("dry run")),
        "{:?}",
        jobs[0].outcome_reason
    );
}

/// Restarting in the middle of the story, and the shop touching every order
/// afterwards (new `data_modificacao`, nothing else), sends nothing twice;
/// the story then goes on.
#[test]
fn a_restart_mid_story_sends_nothing_twice() {
    let world = World::new();
    let shop = world.shop("loja");
    let zap = world.channel(Provider::EvolutionApi);
    let tables = world.store_toml(&shop, &["whatsapp"], StoreKnobs::default())
        + &world.channel_toml("whatsapp", &zap, ChannelKnobs::default());
    let mut daemon = world.start(&tables, &[]);
    let orders: Vec<_> = (1..=3)
        .map(|serial| create(&shop, order_for("Cliente", serial, "aguardando_pagamento")))
        .collect();
    world.wait_received(&zap, 3);
    shop.li
        .set_status(orders[0], "pedido_pago")
        .expect("move the order");
    world.wait_received(&zap, 4);
    daemon.signal(Signal::SIGTERM);
    assert!(daemon.wait_exit(PATIENCE).success());

    daemon.restart();
    daemon.await_notice("READY=1");
    wait_polls(&daemon.stderr, "loja", 0, 2);
    for numero in &orders {
        shop.li.touch(*numero).expect("touch the order");
    }
    wait_polls(&daemon.stderr, "loja", daemon.stderr.len(), 2);
    assert_eq!(
        zap.received().len(),
        4,
        "nothing new after the restart and the touches"
    );
    shop.li
        .set_status(orders[1], "pedido_pago")
        .expect("move the order");
    world.wait_received(&zap, 5);
    wait_polls(&daemon.stderr, "loja", daemon.stderr.len(), 2);
    daemon.signal(Signal::SIGTERM);
    assert!(daemon.wait_exit(PATIENCE).success());

    let sent = tally(sent_notifications(&daemon.all_logs()));
    assert_eq!(sent.len(), 5, "{sent:?}");
    assert!(
        sent.values().all(|&n| n == 1),
        "nothing sent twice: {sent:?}"
    );
    let texts = tally(zap.received().into_iter().map(|m| (m.to, m.text)));
    assert!(texts.values().all(|&n| n == 1), "{texts:#?}");
}

/// Issue 4's crash test: the daemon is SIGKILLed while a poll is in flight
/// (the search page was read, an order detail is still on its way, nothing of
/// the page committed). The next start polls again from the old cursor:
/// nothing lost, no job twice.
#[test]
fn a_kill_between_poll_and_commit_repolls_from_the_old_cursor() {
    let world = World::new();
    let shop = world.shop("loja");
    let zap = world.channel(Provider::EvolutionApi);
    let tables = world.store_toml(&shop, &["whatsapp"], StoreKnobs::default())
        + &world.channel_toml("whatsapp", &zap, ChannelKnobs::default());
    let mut daemon = world.start(&tables, &[]);
    let ana = create(&shop, order_for("Ana", 1, "aguardando_pagamento"));
    world.wait_received(&zap, 1);
    wait_polls(&daemon.stderr, "loja", daemon.stderr.len(), 1);

    // The next detail request hangs; the test hears when it arrives.
    shop.li
        .fail(Route::Detail, Fault::Delay(Duration::from_secs(120)), 1);
    let (arrived, detail_requested) = std::sync::mpsc::channel();
    shop.li.on_request(Route::Detail, 1, move |_| {
        let _ = arrived.send(());
    });
    shop.li.set_status(ana, "pedido_pago").expect("Ana pays");
    let bruno = create(&shop, order_for("Bruno", 2, "aguardando_pagamento"));
    detail_requested
        .recv_timeout(PATIENCE)
        .expect("the poll reached the order details");
    let searches_before_kill = world.li.requests().iter().filter(|r| r.is_search()).count();
    let killed_since = world
        .li
        .requests()
        .iter()
        .rev()
        .find(|r| r.is_search())
        .and_then(|r| r.query_param("since_atualizado").map(str::to_owned))
        .expect("the killed sweep's search");
    let killed = daemon.kill();
    assert!(!killed.success());
    {
        let db = StateDb::open(&daemon);
        db.verify();
        assert_eq!(
            db.jobs_for_order("loja", &ana.to_string()).len(),
            1,
            "nothing of the interrupted page was committed"
        );
        assert!(db.jobs_for_order("loja", &bruno.to_string()).is_empty());
    }

    daemon.restart();
    daemon.await_notice("READY=1");
    world.wait_received(&zap, 3);
    wait_polls(&daemon.stderr, "loja", daemon.stderr.len(), 2);
    daemon.signal(Signal::SIGTERM);
    assert!(daemon.wait_exit(PATIENCE).success());

    let first_search_after = world
        .li
        .requests()
        .into_iter()
        .filter(|r| r.is_search())
        .nth(searches_before_kill)
        .expect("a search after the restart");
    assert_eq!(
        first_search_after.query_param("since_atualizado"),
        Some(killed_since.as_str()),
        "the restarted daemon polls from the cursor the killed poll started from"
    );
    let db = StateDb::open(&daemon);
    db.verify();
    let kinds = |order: u64| -> Vec<(String, JobState)> {
        db.jobs_for_order("loja", &order.to_string())
            .into_iter()
            .map(|job| (job.kind_name().to_owned(), job.state))
            .collect()
    };
    assert_eq!(
        kinds(ana),
        [
            ("waiting-payment".to_owned(), JobState::Sent),
            ("order-paid".to_owned(), JobState::Sent)
        ]
    );
    assert_eq!(
        kinds(bruno),
        [("waiting-payment".to_owned(), JobState::Sent)]
    );
    let to: Vec<String> = zap.received().into_iter().map(|m| m.to).collect();
    assert_eq!(to, [phone_digits(1), phone_digits(1), phone_digits(2)]);
}

/// SIGTERM while Loja Integrada hangs in the middle of a poll: nothing of an
/// unfinished poll is committed, so the daemon stops at once instead of
/// waiting for the hung request (systemd's stop, a restart during an LI
/// outage); the next start polls the same changes again.
#[test]
fn sigterm_during_a_hung_poll_stops_at_once_and_loses_nothing() {
    let world = World::new();
    let shop = world.shop("loja");
    let zap = world.channel(Provider::EvolutionApi);
    let tables = world.store_toml(&shop, &["whatsapp"], StoreKnobs::default())
        + &world.channel_toml("whatsapp", &zap, ChannelKnobs::default());
    let mut daemon = world.start(&tables, &[]);
    wait_polls(&daemon.stderr, "loja", 0, 1);
    shop.li
        .fail(Route::Search, Fault::Delay(Duration::from_secs(600)), 1);
    let (arrived, search_requested) = std::sync::mpsc::channel();
    shop.li.on_request(Route::Search, 1, move |_| {
        let _ = arrived.send(());
    });
    create(&shop, order_for("Ana", 1, "aguardando_pagamento"));
    search_requested
        .recv_timeout(PATIENCE)
        .expect("a poll reached LI");
    let stopping = std::time::Instant::now();
    daemon.signal(Signal::SIGTERM);
    let status = daemon.wait_exit(PATIENCE * 2);
    let took = stopping.elapsed();
    assert!(
        status.success(),
        "a clean stop: {status}\n{}",
        daemon.stderr.all()
    );
    assert!(
        took < Duration::from_secs(10),
        "the stop waited {took:?} for a poll that could not commit anything"
    );
    daemon.restart();
    daemon.await_notice("READY=1");
    assert_eq!(world.wait_received(&zap, 1)[0].to, phone_digits(1));
    daemon.signal(Signal::SIGTERM);
    assert!(daemon.wait_exit(PATIENCE).success());
}

/// Polls that find nothing new are kept in the daemon's memory, not
/// written: a crash right after them loses nothing (the next start polls
/// again from the last written cursor, finds what changed meanwhile and sends
/// nothing twice), and a clean stop writes them, so the stored last poll is
/// the last poll the daemon made.
#[test]
fn a_crash_after_idle_polls_loses_nothing_and_a_stop_writes_the_last_poll() {
    let world = World::new();
    let shop = world.shop("loja");
    let zap = world.channel(Provider::EvolutionApi);
    let tables = world.store_toml(&shop, &["whatsapp"], StoreKnobs::default())
        + &world.channel_toml("whatsapp", &zap, ChannelKnobs::default());
    create(&shop, order_for("Ana", 1, "aguardando_pagamento"));
    let mut daemon = world.start(&tables, &[]);
    world.wait_received(&zap, 1);
    // Polls that find nothing new (the first after the commit may settle).
    wait_polls(&daemon.stderr, "loja", daemon.stderr.len(), 3);
    daemon.kill();

    create(&shop, order_for("Bia", 2, "aguardando_pagamento"));
    daemon.restart();
    daemon.await_notice("READY=1");
    world.wait_received(&zap, 2);
    let before_idle = jiff::Timestamp::now();
    // The second of these polls starts after `before_idle`.
    wait_polls(&daemon.stderr, "loja", daemon.stderr.len(), 2);
    daemon.signal(Signal::SIGTERM);
    assert!(daemon.wait_exit(PATIENCE).success(), "a clean stop");

    let to = tally(zap.received().into_iter().map(|m| m.to));
    assert_eq!(to, tally([1, 2].map(phone_digits)), "each customer once");
    let db = StateDb::open(&daemon);
    let status = db
        .run(db.store().store_status("loja"))
        .expect("store status")
        .expect("written");
    assert!(
        status
            .last_poll_started_at
            .is_some_and(|started| started > before_idle),
        "the stop wrote the last poll: {:?} (idle polls began after {before_idle})",
        status.last_poll_started_at
    );
    assert!(status.last_poll_ok_at >= status.last_poll_started_at);
    db.verify();
}
