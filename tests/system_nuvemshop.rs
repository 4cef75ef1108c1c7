//! A mixed deployment, end to end: the real `arauto` binary with the real
//! `loja-integrada` and `nuvemshop` connectors, one Loja Integrada store and
//! one Nuvemshop store on their fakes (`sim/`), both notifying through ONE
//! fake WhatsApp gateway (Evolution API) on 127.0.0.1.
//!
//! Each test asserts what a shop owner would see: which customer got which
//! message with which text, what `arauto check`/`status`/`report` say, and
//! the daemon's own log lines. Nothing sleeps to synchronise: every wait is
//! on a message arriving at the gateway or a log line, bounded by
//! [`support::daemon::PATIENCE`].
//!
//! Also here: `arauto plugins inspect nuvemshop --json` (issue 14's "done
//! when") and the check that `src/` holds no Nuvemshop-specific code.

// All test code: with this, clippy's allow-unwrap/expect-in-tests covers the
// helper functions too, not only the #[test] ones (see clippy.toml).
#![cfg(test)]

use crate::support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Output;

use arauto_sim::channels::{FakeProvider, Provider, ReceivedMessage};
use arauto_sim::nuvemshop::{Fault, FulfillmentOrder, PushOutcome, RateLimit, Route, WebhookEvent};
use nix::sys::signal::Signal;

use support::daemon::{Daemon, PATIENCE, arauto};
use support::operator::check_line;
use support::plugins::{first_party_plugins, repo_root};
use support::system::{
    ChannelKnobs, NsShop, Shop, StoreKnobs, World, create, field, is_about_store, ns_order_for,
    order_for, phone_digits, plugin_cache, sent_notifications, tally, wait_polls,
};

/// The Loja Integrada store's id in arauto's configuration.
const LI: &str = "loja-li";
/// The Nuvemshop store's id.
const NS: &str = "loja-ns";

/// One LI store and one Nuvemshop store sharing one WhatsApp number.
struct Mixed {
    world: World,
    li: Shop,
    ns: NsShop,
    whatsapp: FakeProvider,
}

impl Mixed {
    fn new() -> Self {
        let world = World::new();
        let li = world.shop(LI);
        let ns = world.nuvemshop_shop(NS);
        let whatsapp = world.channel(Provider::EvolutionApi);
        Self {
            world,
            li,
            ns,
            whatsapp,
        }
    }

    /// Both stores (with their knobs) and the shared channel `whatsapp`.
    fn tables(&self, li: StoreKnobs, ns: StoreKnobs) -> String {
        self.world.store_toml(&self.li, &["whatsapp"], li)
            + &self.world.nuvemshop_store_toml(&self.ns, &["whatsapp"], ns)
            + &self
                .world
                .channel_toml("whatsapp", &self.whatsapp, ChannelKnobs::default())
    }

    /// The daemon on [`Mixed::tables`] with default knobs, after both
    /// stores' first poll (the first sync, silent).
    fn start(&self) -> Daemon {
        let daemon = self.world.start(
            &self.tables(StoreKnobs::default(), StoreKnobs::default()),
            &[],
        );
        wait_polls(&daemon.stderr, LI, 0, 1);
        wait_polls(&daemon.stderr, NS, 0, 1);
        daemon
    }

    /// The texts customer `serial` received, in order.
    fn texts_to(&self, serial: u32) -> Vec<String> {
        texts_to(&self.whatsapp.received(), serial)
    }

    /// The Nuvemshop order number (what the customer sees) of order `id`.
    fn ns_number(&self, id: u64) -> u64 {
        self.ns
            .ns
            .order(id)
            .and_then(|order| order.number)
            .expect("the fake numbers every order")
    }
}

/// The texts `received` sent to customer `serial`, in order.
fn texts_to(received: &[ReceivedMessage], serial: u32) -> Vec<String> {
    received
        .iter()
        .filter(|m| m.to == phone_digits(serial))
        .map(|m| m.text.clone())
        .collect()
}

/// The notification kind a built-in pt-BR text is, by its wording (the
/// templates in `config/templates/pt-BR/`).
fn kind_of(text: &str) -> &'static str {
    const WORDING: [(&str, &str); 7] = [
        ("aguardando a confirmação do pagamento", "waiting-payment"),
        ("foi aprovado", "order-paid"),
        ("está em preparação", "order-processing"),
        ("foi enviado", "order-shipped"),
        ("novo código de rastreio", "tracking-updated"),
        ("foi cancelado", "order-canceled"),
        ("foi estornado", "order-refunded"),
    ];
    WORDING
        .iter()
        .find(|(words, _)| text.contains(words))
        .map(|(_, kind)| *kind)
        .unwrap_or_else(|| panic!("not a built-in text: {text}"))
}

/// The kinds of `texts`, in order.
fn kinds(texts: &[String]) -> Vec<&'static str> {
    texts.iter().map(|text| kind_of(text)).collect()
}

/// Every text is addressed to `first_name`, names order `#number` and is
/// signed by store `store`.
fn assert_addressed(texts: &[String], first_name: &str, number: u64, store: &str) {
    for text in texts {
        assert!(text.contains(first_name), "{first_name} in {text}");
        assert!(text.contains(&format!("#{number}")), "#{number} in {text}");
        assert!(
            text.contains(&format!("Loja {store}")),
            "signed by {store}: {text}"
        );
    }
}

/// Prints the daemon's log if the test fails while it is alive (a gateway
/// wait that times out shows only the messages it got).
struct LogOnFailure<'a>(&'a Daemon);

impl Drop for LogOnFailure<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("daemon log:\n{}", self.0.stderr.all());
        }
    }
}

/// Wait until both stores completed two more polls: whatever a change made
/// before now calls for has been queued (and, on an unpaced channel, sent).
fn settle(daemon: &Daemon) {
    let from = daemon.stderr.len();
    wait_polls(&daemon.stderr, LI, from, 2);
    wait_polls(&daemon.stderr, NS, from, 2);
}

/// `arauto <args> --config <the daemon's>` next to the running daemon.
fn cli(daemon: &Daemon, args: &[&str]) -> Output {
    arauto()
        .args(args)
        .arg("--config")
        .arg(&daemon.config_path)
        .env("ARAUTO_DAEMON__CACHE_DIR", plugin_cache())
        .output()
        .expect("run arauto")
}

/// `arauto <args> --json` as JSON.
fn cli_json(daemon: &Daemon, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = cli(daemon, &all);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "arauto {args:?} --json: {e}\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Sent notifications per kind for `store` in `arauto report --json`.
fn reported_sends(report: &serde_json::Value, store: &str) -> BTreeMap<String, u64> {
    let section = report["stores"]
        .as_array()
        .expect("stores")
        .iter()
        .find(|s| s["id"] == store)
        .unwrap_or_else(|| panic!("no store {store} in {report:#}"));
    section["by_kind"]
        .as_array()
        .expect("by_kind")
        .iter()
        .map(|k| {
            (
                k["kind"].as_str().expect("kind").to_owned(),
                k["sent"].as_u64().expect("sent"),
            )
        })
        .collect()
}

/// Expected per-kind sends.
fn sends(kinds: &[&str]) -> BTreeMap<String, u64> {
    tally(kinds.iter().map(|k| (*k).to_owned()))
        .into_iter()
        .map(|(kind, n)| (kind, n as u64))
        .collect()
}

/// LI: ship `numero` with `code` on its first shipment, in one change.
fn li_ship(shop: &Shop, numero: u64, code: &str) {
    shop.li
        .modify(numero, |order| {
            order.status = "pedido_enviado".to_owned();
            if let Some(shipment) = order.shipments.first_mut() {
                shipment.tracking = Some(code.to_owned());
            }
        })
        .expect("LI: shipped");
}

/// The happy path on both platforms, side by side on one WhatsApp number:
/// each customer hears each step once, in order, with the right text, the
/// order's number, the tracking code when shipped, and their own shop's
/// signature; `arauto status` lists both stores and `arauto report` counts
/// each store's sends apart.
#[test]
fn both_platforms_walk_the_lifecycle_on_one_number_each_step_once() {
    let m = Mixed::new();
    let mut daemon = m.start();

    let li_order = create(&m.li, order_for("Lia", 1, "aguardando_pagamento"));
    let ns_order = m.ns.ns.create_order(ns_order_for("Nina", 2));
    m.world.wait_received(&m.whatsapp, 2);

    m.li.li
        .set_status(li_order, "pedido_pago")
        .expect("LI: paid");
    m.ns.ns
        .set_payment_status(ns_order, "paid")
        .expect("NS: paid");
    m.world.wait_received(&m.whatsapp, 4);

    m.li.li
        .set_status(li_order, "pedido_em_separacao")
        .expect("LI: packing");
    m.ns.ns.pack(ns_order).expect("NS: packed");
    m.world.wait_received(&m.whatsapp, 6);

    li_ship(&m.li, li_order, "LI123456789BR");
    m.ns.ns
        .fulfill(
            ns_order,
            "NS987654321BR",
            Some("https://rastreio.example/NS987654321BR"),
        )
        .expect("NS: fulfilled");
    m.world.wait_received(&m.whatsapp, 8);
    settle(&daemon);

    let received = m.whatsapp.received();
    assert_eq!(received.len(), 8, "nothing more: {received:#?}");
    let lifecycle = [
        "waiting-payment",
        "order-paid",
        "order-processing",
        "order-shipped",
    ];
    let li_texts = m.texts_to(1);
    assert_eq!(kinds(&li_texts), lifecycle, "{li_texts:#?}");
    assert_addressed(&li_texts, "Lia", li_order, LI);
    assert!(li_texts[3].contains("LI123456789BR"), "{}", li_texts[3]);
    let ns_texts = m.texts_to(2);
    assert_eq!(kinds(&ns_texts), lifecycle, "{ns_texts:#?}");
    assert_addressed(&ns_texts, "Nina", m.ns_number(ns_order), NS);
    assert!(ns_texts[3].contains("NS987654321BR"), "{}", ns_texts[3]);
    assert!(
        ns_texts[0].contains("R$ 159,90") && ns_texts[1].contains("R$ 159,90"),
        "Nuvemshop's decimal-string total (139.90 + 20.00 shipping) in the texts: {ns_texts:#?}"
    );

    let sent = tally(sent_notifications(&daemon.stderr.lines()));
    assert_eq!(sent.len(), 8, "{sent:?}");
    assert!(sent.values().all(|&n| n == 1), "each step once: {sent:?}");

    let (code, status, stderr) = daemon.status(&[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(status.contains(LI) && status.contains(NS), "{status}");

    // Stopped, every send is recorded: the report reads the state database.
    daemon.signal(Signal::SIGTERM);
    assert!(daemon.wait_exit(PATIENCE).success());
    let report = cli_json(&daemon, &["report"]);
    assert_eq!(reported_sends(&report, LI), sends(&lifecycle));
    assert_eq!(reported_sends(&report, NS), sends(&lifecycle));
}

/// An order that jumps from pending straight to shipped between two polls
/// gets only the shipping message, on either platform (the happy path
/// decides, not the platform).
#[test]
fn a_jump_from_pending_to_shipped_sends_only_the_shipping_message() {
    let m = Mixed::new();
    let daemon = m.start();
    let _log = LogOnFailure(&daemon);
    let li_order = create(&m.li, order_for("Lia", 1, "aguardando_pagamento"));
    let ns_order = m.ns.ns.create_order(ns_order_for("Nina", 2));
    m.world.wait_received(&m.whatsapp, 2);

    li_ship(&m.li, li_order, "LI000000001BR");
    // Paid, packed and shipped in one change: the three fields move at once.
    m.ns.ns
        .modify(ns_order, |order| {
            order.payment_status = "paid".to_owned();
            order.shipping_status = "fulfilled".to_owned();
            order.tracking_number = Some("NS000000002BR".to_owned());
        })
        .expect("NS: shipped");
    m.world.wait_received(&m.whatsapp, 4);
    settle(&daemon);

    let jump = ["waiting-payment", "order-shipped"];
    let li_texts = m.texts_to(1);
    assert_eq!(kinds(&li_texts), jump, "{li_texts:#?}");
    assert!(li_texts[1].contains("LI000000001BR"), "{}", li_texts[1]);
    let ns_texts = m.texts_to(2);
    assert_eq!(kinds(&ns_texts), jump, "{ns_texts:#?}");
    assert!(ns_texts[1].contains("NS000000002BR"), "{}", ns_texts[1]);
    assert_addressed(&ns_texts, "Nina", m.ns_number(ns_order), NS);
}

/// A Nuvemshop order cancelled (`status` cancelled) and one whose payment
/// was voided both tell their customer the order was cancelled, once; the
/// LI store's cancellation goes out on the same number.
#[test]
fn cancellations_and_voided_payments_are_announced_once() {
    let m = Mixed::new();
    let daemon = m.start();
    let _log = LogOnFailure(&daemon);
    let li_order = create(&m.li, order_for("Lia", 1, "aguardando_pagamento"));
    let cancelled = m.ns.ns.create_order(ns_order_for("Nina", 2));
    let voided = m.ns.ns.create_order(ns_order_for("Vera", 3));
    m.world.wait_received(&m.whatsapp, 3);

    m.li.li
        .set_status(li_order, "pedido_cancelado")
        .expect("LI: cancelled");
    m.ns.ns
        .cancel(cancelled, "customer")
        .expect("NS: cancelled");
    m.ns.ns
        .set_payment_status(voided, "voided")
        .expect("NS: voided");
    m.world.wait_received(&m.whatsapp, 6);
    settle(&daemon);
    // Touching the cancelled orders afterwards says nothing more.
    m.ns.ns.touch(cancelled).expect("touch");
    m.ns.ns.touch(voided).expect("touch");
    settle(&daemon);

    assert_eq!(m.whatsapp.received().len(), 6);
    for (serial, name, number) in [
        (1, "Lia", li_order),
        (2, "Nina", m.ns_number(cancelled)),
        (3, "Vera", m.ns_number(voided)),
    ] {
        let texts = m.texts_to(serial);
        assert_eq!(
            kinds(&texts),
            ["waiting-payment", "order-canceled"],
            "{name}: {texts:#?}"
        );
        assert!(
            texts[1].contains(name) && texts[1].contains(&format!("#{number}")),
            "{}",
            texts[1]
        );
    }
}

/// A split shipment: the order leaves in two parcels, the second code known
/// later. On Loja Integrada each parcel is an `envios[]` entry with its own
/// code; on Nuvemshop each is a `fulfillment_orders[]` entry with its own
/// `tracking_info` (the multi-inventory order, see
/// docs/platforms/nuvemshop.md), the order `partially_fulfilled` then
/// `fulfilled`. Either way the customer hears "shipped" with the first code,
/// then "new tracking code" with the second, each once.
#[test]
fn a_split_shipment_announces_each_tracking_code_once_on_both_platforms() {
    let m = Mixed::new();
    let daemon = m.start();
    let _log = LogOnFailure(&daemon);
    let li_order = create(&m.li, order_for("Lia", 1, "pedido_pago"));
    let ns_order = m.ns.ns.create_order(
        ns_order_for("Nina", 2)
            .payment_status("paid")
            .shipping_status("unfulfilled"),
    );
    m.world.wait_received(&m.whatsapp, 2);
    for parcel in ["fo-1", "fo-2"] {
        m.ns.ns
            .add_fulfillment_order(ns_order, FulfillmentOrder::new(parcel))
            .expect("NS: a parcel");
    }

    li_ship(&m.li, li_order, "LI111111111BR");
    m.ns.ns
        .modify(ns_order, |order| {
            order.shipping_status = "partially_fulfilled".to_owned();
            order.fulfillment_orders[0] = order.fulfillment_orders[0].clone().dispatched(
                "NS111111111BR",
                Some("https://rastreio.example/NS111111111BR"),
            );
        })
        .expect("NS: the first parcel leaves");
    m.world.wait_received(&m.whatsapp, 4);

    let mut second = m.li.li.order(li_order).expect("order").shipments[0].clone();
    second.id = None;
    second.tracking = Some("LI222222222BR".to_owned());
    m.li.li
        .add_shipment(li_order, second)
        .expect("LI: the second parcel");
    m.ns.ns
        .modify(ns_order, |order| {
            order.shipping_status = "fulfilled".to_owned();
            order.fulfillment_orders[1] = order.fulfillment_orders[1]
                .clone()
                .dispatched("NS222222222BR", None);
        })
        .expect("NS: the second parcel leaves");
    m.world.wait_received(&m.whatsapp, 6);
    settle(&daemon);

    assert_eq!(m.whatsapp.received().len(), 6);
    let steps = ["order-paid", "order-shipped", "tracking-updated"];
    let li_texts = m.texts_to(1);
    assert_eq!(kinds(&li_texts), steps, "{li_texts:#?}");
    assert!(li_texts[1].contains("LI111111111BR"), "{}", li_texts[1]);
    assert!(li_texts[2].contains("LI222222222BR"), "{}", li_texts[2]);
    let ns_texts = m.texts_to(2);
    assert_eq!(
        kinds(&ns_texts),
        ["order-processing", "order-shipped", "tracking-updated"],
        "{ns_texts:#?}"
    );
    assert!(ns_texts[1].contains("NS111111111BR"), "{}", ns_texts[1]);
    assert!(ns_texts[2].contains("NS222222222BR"), "{}", ns_texts[2]);
    assert_addressed(&ns_texts, "Nina", m.ns_number(ns_order), NS);
}

/// A tracking code that appears (or changes) on a Nuvemshop order after it
/// was announced as shipped is announced once as a new code.
#[test]
fn a_tracking_code_added_after_fulfilment_is_announced_once() {
    let m = Mixed::new();
    let daemon = m.start();
    let _log = LogOnFailure(&daemon);
    let ns_order =
        m.ns.ns
            .create_order(ns_order_for("Nina", 2).payment_status("paid"));
    m.world.wait_received(&m.whatsapp, 1);
    m.ns.ns
        .set_shipping_status(ns_order, "fulfilled")
        .expect("NS: shipped without a code");
    m.world.wait_received(&m.whatsapp, 2);
    m.ns.ns
        .set_tracking(
            ns_order,
            Some("NS333333333BR"),
            Some("https://rastreio.example/NS333333333BR"),
        )
        .expect("NS: the code arrives");
    m.world.wait_received(&m.whatsapp, 3);
    settle(&daemon);
    let texts = m.texts_to(2);
    assert_eq!(
        kinds(&texts),
        ["order-paid", "order-shipped", "tracking-updated"],
        "{texts:#?}"
    );
    assert!(texts[2].contains("NS333333333BR"), "{}", texts[2]);
}

/// Orders that exist before arauto first polls a store are its history:
/// recorded, never messaged. A later change to one of them is messaged.
#[test]
fn the_first_sync_is_silent_and_a_later_change_to_a_historical_order_is_not() {
    let m = Mixed::new();
    // History, an hour old on both fakes.
    let an_hour = jiff::SignedDuration::from_hours(1);
    m.world.li.advance(-an_hour);
    m.world.nuvemshop().advance(-an_hour);
    let li_history: Vec<u64> = (1..=3)
        .map(|serial| create(&m.li, order_for("Antiga", serial, "aguardando_pagamento")))
        .collect();
    let ns_history: Vec<u64> = (4..=6)
        .map(|serial| m.ns.ns.create_order(ns_order_for("Antiga", serial)))
        .collect();
    m.ns.ns
        .set_payment_status(ns_history[2], "paid")
        .expect("paid");
    // From now on, changes happen at the real time.
    m.world.li.use_system_clock();
    m.world.nuvemshop().use_system_clock();

    let at_first_poll = || StoreKnobs {
        cutoff_at_first_poll: true,
        ..StoreKnobs::default()
    };
    let tables = m.tables(at_first_poll(), at_first_poll());
    let daemon = m.world.start(&tables, &[]);
    let _log = LogOnFailure(&daemon);
    for store in [LI, NS] {
        let (_, first) =
            daemon
                .stderr
                .wait_for_matching(0, PATIENCE, "a store's first poll", |line| {
                    is_about_store(line, "poll complete", store)
                });
        assert_eq!(field(&first, "orders"), Some("3"), "{first}");
        assert_eq!(field(&first, "queued"), Some("0"), "{first}");
    }
    settle(&daemon);
    assert!(m.whatsapp.received().is_empty(), "history is silent");

    // A historical order changes after the cutoff: that change is news.
    m.li.li
        .set_status(li_history[0], "pedido_pago")
        .expect("LI: paid");
    m.ns.ns
        .set_payment_status(ns_history[0], "paid")
        .expect("NS: paid");
    let received = m.world.wait_received(&m.whatsapp, 2);
    settle(&daemon);
    assert_eq!(m.whatsapp.received().len(), 2, "{received:#?}");
    assert_eq!(kinds(&m.texts_to(1)), ["order-paid"]);
    assert_eq!(kinds(&m.texts_to(4)), ["order-paid"]);
    assert_eq!(
        daemon.stderr.count("notification queued"),
        2,
        "nothing queued for the history"
    );
}

/// A revoked Nuvemshop token: the store's poll fails with a clear error
/// naming the store and the setting, the store is paused, `arauto check`
/// shows it red; the token never shows; the LI store keeps sending.
#[test]
fn a_rejected_nuvemshop_token_pauses_that_store_only_and_check_names_it() {
    let m = Mixed::new();
    let revoked = "ns-token-revogado-7Qm2xV9p";
    let tables = m.tables(
        StoreKnobs::default(),
        StoreKnobs {
            api_key: Some(revoked.to_owned()),
            ..StoreKnobs::default()
        },
    );
    let daemon = m.world.start(&tables, &[]);
    let _log = LogOnFailure(&daemon);
    let (paused_at, paused) =
        daemon
            .stderr
            .wait_for_matching(0, PATIENCE, "poll failed for loja-ns", |line| {
                is_about_store(line, "poll failed", NS)
            });
    assert!(
        paused.contains("ERROR") && paused.contains("paused") && paused.contains("access_token"),
        "the log says the store is paused and which setting is wrong: {paused}"
    );

    let li_order = create(&m.li, order_for("Lia", 1, "aguardando_pagamento"));
    m.world.wait_received(&m.whatsapp, 1);
    wait_polls(&daemon.stderr, LI, paused_at, 2);
    assert_eq!(kinds(&m.texts_to(1)), ["waiting-payment"]);
    assert_addressed(&m.texts_to(1), "Lia", li_order, LI);

    let checklist = cli_json(&daemon, &["check", "--store", NS]);
    let line = check_line(&checklist, "store", Some(NS), "paused");
    assert_eq!(line["status"], "fail", "{line:#}");
    let text = line["text"].as_str().expect("text");
    assert!(text.contains("401"), "{text}");

    let out = cli(&daemon, &["check", "--store", NS]);
    for output in [&out.stdout, &out.stderr] {
        assert!(!String::from_utf8_lossy(output).contains(revoked));
    }
    for line in daemon.stderr.lines() {
        assert!(!line.contains(revoked), "the token in a log line: {line}");
    }
}

/// A tight bucket on the fake: 8 requests, leaking one every two seconds,
/// while the store polls every second (and the connector's declared budget
/// allows 100 a minute): only following the rate-limit headers keeps the
/// connector from 429s. Orders keep coming before and while the bucket is
/// nearly full: the connector pauses its sweeps (the daemon slows down),
/// every customer hears once, and the fake never had to answer 429.
#[test]
fn a_tight_rate_limit_slows_the_nuvemshop_store_down_without_429s_or_lost_messages() {
    const BATCH: u32 = 10;
    let m = Mixed::new();
    m.world.nuvemshop().use_system_clock();
    m.ns.ns.configure(|options| {
        options.rate_limit = Some(RateLimit {
            capacity: 8,
            leak_per_sec: 0.5,
        });
    });
    let daemon = m
        .world
        .start(&m.tables(StoreKnobs::default(), StoreKnobs::default()), &[]);
    let _log = LogOnFailure(&daemon);
    wait_polls(&daemon.stderr, NS, 0, 1);
    for serial in 1..=BATCH {
        m.ns.ns.create_order(ns_order_for("Cliente", serial));
    }
    create(&m.li, order_for("Lia", 99, "aguardando_pagamento"));
    m.world.wait_received(&m.whatsapp, BATCH as usize + 1);
    // Polling once a second fills the bucket: the connector pauses.
    daemon.stderr.wait_for("the sweep pauses");
    for serial in BATCH + 1..=2 * BATCH {
        m.ns.ns.create_order(ns_order_for("Cliente", serial));
    }
    m.world.wait_received(&m.whatsapp, 2 * BATCH as usize + 1);
    settle(&daemon);

    let received = m.whatsapp.received();
    assert_eq!(received.len(), 2 * BATCH as usize + 1, "{received:#?}");
    for serial in 1..=2 * BATCH {
        assert_eq!(
            kinds(&m.texts_to(serial)),
            ["waiting-payment"],
            "customer {serial}"
        );
    }
    let pauses = daemon.stderr.count("the sweep pauses");
    let stats = m.ns.ns.stats();
    eprintln!(
        "fake Nuvemshop: {} requests, {} answered 429; the connector paused {pauses} times",
        stats.requests, stats.throttled
    );
    assert_eq!(
        stats.throttled, 0,
        "the connector followed the bucket's headers"
    );
    // A poll may also stop before its first request to let the bucket leak
    // (the connector's own pacing, logged as a retried poll); none met a 429.
    let failed: Vec<String> = daemon
        .stderr
        .lines()
        .into_iter()
        .filter(|line| is_about_store(line, "poll failed", NS))
        .collect();
    assert!(
        failed
            .iter()
            .all(|line| line.contains("bucket") && !line.contains("429")),
        "only the connector's own pacing: {failed:#?}"
    );
}

/// A 429 anyway (another app of the same store emptied the bucket): the
/// poll is retried after the bucket's reset and nothing is lost.
#[test]
fn a_429_from_nuvemshop_is_retried_and_nothing_is_lost() {
    let m = Mixed::new();
    let daemon = m.start();
    let _log = LogOnFailure(&daemon);
    m.ns.ns.fail(
        Route::List,
        Fault::TooManyRequests {
            retry_after_secs: Some(2),
        },
        1,
    );
    m.ns.ns.create_order(ns_order_for("Nina", 2));
    let (_, failed) = daemon
        .stderr
        .wait_for_matching(0, PATIENCE, "the 429", |line| {
            is_about_store(line, "poll failed", NS)
        });
    assert!(failed.contains("429"), "{failed}");
    m.world.wait_received(&m.whatsapp, 1);
    settle(&daemon);
    assert_eq!(kinds(&m.texts_to(2)), ["waiting-payment"]);
}

/// Where the daemon's webhook listener listens (from its log).
fn listener(daemon: &Daemon) -> SocketAddr {
    let (_, line) = daemon
        .stderr
        .wait_for_matching(0, PATIENCE, "the webhook listener", |line| {
            line.contains("webhook listener on")
        });
    field(&line, "listen")
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("no listen address in {line}"))
}

/// Nuvemshop pushes, signed with the app secret, make the store poll at
/// once: with a 5-minute poll interval the message goes out from a
/// push-triggered poll. A push signed with another key is refused 401 and
/// logged as a warning naming the store, and sends nothing.
#[test]
fn a_signed_nuvemshop_push_sends_at_once_and_a_wrong_signature_is_refused_401() {
    let m = Mixed::new();
    let tables = format!(
        "[daemon.webhooks]\nlisten = \"127.0.0.1:0\"\n{}",
        m.tables(StoreKnobs::default(), StoreKnobs::default())
    )
    .replacen(
        "platform = \"nuvemshop\"\npoll_interval = \"1s\"",
        "platform = \"nuvemshop\"\npoll_interval = \"5m\"",
        1,
    );
    assert!(tables.contains("poll_interval = \"5m\""), "{tables}");
    let daemon = m.world.start(&tables, &[]);
    let _log = LogOnFailure(&daemon);
    let listen = listener(&daemon);
    wait_polls(&daemon.stderr, NS, 0, 1);
    let url = format!("http://{listen}/hooks/{NS}");
    for event in ["order/created", "order/paid"] {
        m.ns.ns.register_webhook(event, &url);
    }
    let mut events = m.world.nuvemshop().subscribe_webhooks();

    let from = daemon.stderr.len();
    let order = m.ns.ns.create_order(ns_order_for("Nina", 2));
    m.world.wait_received(&m.whatsapp, 1);
    let (_, pushed) =
        daemon
            .stderr
            .wait_for_matching(from, PATIENCE, "the poll that queued it", |line| {
                is_about_store(line, "poll complete", NS) && field(line, "queued") == Some("1")
            });
    assert_eq!(field(&pushed, "trigger"), Some("push"), "{pushed}");
    let accepted = daemon.stderr.wait_for("push accepted");
    assert!(is_about_store(&accepted, "push accepted", NS), "{accepted}");
    assert_eq!(kinds(&m.texts_to(2)), ["waiting-payment"]);

    // The next push is signed with another key.
    m.world
        .nuvemshop()
        .configure_pushes(|options| options.wrong_signature = true);
    m.ns.ns.set_payment_status(order, "paid").expect("paid");
    let refused = loop {
        let event = m
            .world
            .block_on(async { tokio::time::timeout(PATIENCE, events.recv()).await })
            .expect("the push within the patience")
            .expect("the fake's event feed");
        if let WebhookEvent::Push(record) = event
            && record.event == "order/paid"
        {
            break record;
        }
    };
    assert_eq!(refused.outcome, PushOutcome::Answered(401), "{refused:?}");
    let warned = daemon.stderr.wait_for("push refused (401)");
    assert!(
        warned.contains(" WARN ") && is_about_store(&warned, "push refused (401)", NS),
        "{warned}"
    );
    assert_eq!(
        m.whatsapp.received().len(),
        1,
        "a refused push makes no poll (the next scheduled one is minutes away)"
    );
    for line in daemon.stderr.lines() {
        assert!(
            !line.contains(&m.ns.app_secret),
            "the app secret in a log line: {line}"
        );
    }
}

/// The connector's default recognition table (docs/platforms/nuvemshop.md
/// §Recognition): stage code → notification kind (`None`: no message).
const RECOGNITION: [(&str, Option<&str>); 10] = [
    ("cancelled", Some("order-canceled")),
    ("refunded", Some("order-refunded")),
    ("voided", Some("order-canceled")),
    ("fulfilled", Some("order-shipped")),
    ("closed", None),
    ("packed", Some("order-processing")),
    ("paid", Some("order-paid")),
    ("pending", Some("waiting-payment")),
    ("authorized", None),
    ("abandoned", None),
];

/// `arauto plugins inspect nuvemshop --json`, found by name in the built
/// first-party plugins (the daemon's default `plugin_dir` in debug builds),
/// shows a connector of contract 0.2 with its recognition table, its
/// settings (secrets marked) and its push support.
#[test]
fn plugins_inspect_shows_the_nuvemshop_connector_with_its_recognition_table_and_settings() {
    first_party_plugins();
    // The compiled-plugin cache the system tests share: a debug build
    // compiling the plugin afresh takes most of a minute.
    let inspect = |args: &[&str]| {
        arauto()
            .args(["plugins", "inspect", "nuvemshop"])
            .args(args)
            .env("ARAUTO_DAEMON__CACHE_DIR", plugin_cache())
            .output()
            .expect("run arauto plugins inspect")
    };
    let out = inspect(&["--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("inspect --json prints JSON");
    assert_eq!(report["name"], "nuvemshop", "{report:#}");
    assert_eq!(report["kind"], "connector", "{report:#}");
    assert_eq!(report["wit_package"], "arauto:plugin@0.2.0");
    assert_eq!(report["connector"]["declared_by"], "plugin");

    let statuses = report["connector"]["statuses"]
        .as_array()
        .expect("a status catalogue");
    for (code, notification) in RECOGNITION {
        let entry = statuses
            .iter()
            .find(|s| s["code"] == code)
            .unwrap_or_else(|| panic!("no stage {code} in {statuses:#?}"));
        match notification {
            Some(kind) => assert_eq!(entry["notification"], kind, "{entry:#}"),
            None => assert!(entry["notification"].is_null(), "{entry:#}"),
        }
        assert!(
            entry["name"].as_str().is_some_and(|name| !name.is_empty()),
            "every stage is named: {entry:#}"
        );
    }

    let keys = report["config_keys"].as_array().expect("settings");
    let key = |name: &str| {
        keys.iter()
            .find(|k| k["name"] == name)
            .unwrap_or_else(|| panic!("no setting {name} in {keys:#?}"))
    };
    for secret in ["access_token", "app_secret"] {
        assert_eq!(key(secret)["secret"], true, "{secret} is a secret");
    }
    for plain in ["store_id", "user_agent", "base_url"] {
        assert_eq!(key(plain)["secret"], false, "{plain} is not a secret");
    }
    assert_eq!(key("store_id")["required"], true);
    assert_eq!(report["connector"]["push"]["verify"], true);
    assert_eq!(
        report["connector"]["capabilities"]["tracking_codes"]["supported"],
        true
    );
    for missing in ["boleto_reminder", "pix_reminder", "abandoned_cart"] {
        let capability = &report["connector"]["capabilities"][missing];
        assert_eq!(capability["supported"], false, "{missing}");
        assert!(
            capability["reason"]
                .as_str()
                .is_some_and(|reason| !reason.is_empty()),
            "{missing} says why not: {capability:#}"
        );
    }

    // The text form prints the table too (code and name of every stage).
    let text = inspect(&[]);
    let text = String::from_utf8_lossy(&text.stdout);
    for (code, _) in RECOGNITION {
        assert!(text.contains(code), "{code} in:\n{text}");
    }
}

/// The host knows no platform by name (issue 14's claim that a platform is
/// a plugin): outside unit-test modules, "nuvemshop" appears in `src/` in
/// comments at most.
#[test]
fn the_host_has_no_nuvemshop_specific_code() {
    let mut offending = Vec::new();
    let mut pending = vec![repo_root().join("src")];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read a src directory") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            // Unit-test modules close each file (the codebase's layout): a
            // platform name there is test data, not host behaviour.
            let host_code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for (index, line) in host_code.lines().enumerate() {
                let code = line.trim_start();
                if line.to_lowercase().contains("nuvemshop") && !code.starts_with("//") {
                    offending.push(format!("{}:{}: {line}", path.display(), index + 1));
                }
            }
        }
    }
    assert!(
        offending.is_empty(),
        "Nuvemshop-specific code in the host:\n{}",
        offending.join("\n")
    );
}
