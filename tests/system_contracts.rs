//! Full-system tests of plugin contract 0.2 next to 0.1: the host delivers by
//! what a sender declares, not by its name.
//!
//! * a 0.2 sender declaring recipient `none` (a staff notifier) delivers for
//!   an order without any phone, with the versioned order-event JSON;
//! * a 0.1 sender (`legacy-sender`) still loads, is logged once as
//!   deprecated, and sends the `event-json` of before 0.2;
//! * a 0.2 sender declaring `customer-email` skips an order without an
//!   e-mail with a reason naming it, and delivers one with an e-mail.
//!
//! The store polls the fake Loja Integrada through the real connector; the
//! test senders POST to a fake webhook receiver, which records every request.

// All test code: with this, clippy's allow-unwrap/expect-in-tests covers the
// helper functions too, not only the #[test] ones (see clippy.toml).
#![cfg(test)]

use crate::support;

use arauto_sim::channels::{FakeProvider, Provider};
use arauto_sim::li::{Customer, Order};
use nix::sys::signal::Signal;

use support::daemon::{Daemon, PATIENCE};
use support::plugins::test_plugin;
use support::system::{StoreKnobs, World, create, e164, field, order_for};

/// `[channels.<id>]` using the test plugin `plugin`, POSTing to `fake`.
fn test_channel_toml(id: &str, plugin: &str, fake: &FakeProvider) -> String {
    let url = fake.url();
    let path = test_plugin(plugin);
    format!(
        r#"
[channels.{id}]
plugin = "{plugin}"
plugin_path = {path:?}
min_interval = "1ms"
max_attempts = 2
retry_base = "1s"
retry_max = "2s"
[channels.{id}.sandbox]
allowed_hosts = ["{url}"]
allow_private_addresses = true
[channels.{id}.settings]
url = "{url}/hooks/{id}"
"#,
        path = path.display().to_string(),
    )
}

fn stop(daemon: &mut Daemon) {
    daemon.signal(Signal::SIGTERM);
    assert!(daemon.wait_exit(PATIENCE).success());
}

/// The JSON body of a received webhook request.
fn body(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn a_sender_that_needs_no_recipient_delivers_for_an_order_without_a_phone() {
    let world = World::new();
    let shop = world.shop("loja");
    let inbox = world.channel(Provider::Webhook);
    let tables = world.store_toml(&shop, &["staff"], StoreKnobs::default())
        + &test_channel_toml("staff", "staff-sender", &inbox);
    let mut daemon = world.start(&tables, &[]);
    let order = create(
        &shop,
        Order::new()
            .status("pedido_pago")
            .customer(Customer::new("Sem Telefone")),
    );

    let received = world.wait_received(&inbox, 1);
    assert_eq!(received[0].to, "/hooks/staff");
    let sent = body(&received[0].text);
    assert_eq!(sent["phone"], serde_json::Value::Null);
    let event = &sent["event"];
    assert_eq!(event["event_version"], 1, "{event}");
    assert!(event["order"].get("boleto").is_none(), "{event}");
    assert_eq!(event["notification"], "order-paid", "{event}");
    assert_eq!(event["store"]["id"], "loja", "{event}");
    assert_eq!(event["order"]["number"], order.to_string(), "{event}");
    assert!(
        event["order"]["customer"]["phones"]
            .as_array()
            .is_some_and(Vec::is_empty),
        "{event}"
    );
    let staff_deprecated = daemon
        .stderr
        .lines()
        .into_iter()
        .filter(|line| line.contains("plugin staff-sender (") && line.contains("deprecated"))
        .count();
    assert_eq!(staff_deprecated, 0, "a 0.2 plugin is not deprecated");
    stop(&mut daemon);
}

#[test]
fn a_contract_0_1_sender_loads_once_deprecated_and_sends_the_old_event_json() {
    let world = World::new();
    let shop = world.shop("loja");
    let inbox = world.channel(Provider::Webhook);
    let tables = world.store_toml(&shop, &["legacy"], StoreKnobs::default())
        + &test_channel_toml("legacy", "legacy-sender", &inbox);
    let mut daemon = world.start(&tables, &[]);
    let order = create(&shop, order_for("Ana", 1, "pedido_pago"));

    let received = world.wait_received(&inbox, 1);
    let sent = body(&received[0].text);
    // A 0.1 phone sender (by the name table) gets the customer's phone.
    assert_eq!(sent["phone"], e164(1));
    let event = &sent["event"];
    assert_eq!(event["notification"], "order-paid", "{event}");
    assert_eq!(event["store"]["platform"], "loja-integrada", "{event}");
    assert_eq!(event["order"]["number"], order.to_string(), "{event}");
    // The stored order's serde form, as before contract 0.2: no
    // `event_version`, and the order's `boleto` and `pix` keys (the 0.2
    // order-event has neither).
    assert!(event.get("event_version").is_none(), "{event}");
    assert!(event["order"]["total"].is_i64(), "{event}");
    assert!(
        event["order"].get("boleto").is_some() && event["order"].get("pix").is_some(),
        "{event}"
    );

    let warnings: Vec<String> = daemon
        .stderr
        .lines()
        .into_iter()
        .filter(|line| line.contains("plugin legacy-sender (") && line.contains("deprecated"))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(warnings[0].contains("WARN"), "{}", warnings[0]);
    assert!(
        warnings[0].contains("rebuild it against 0.2"),
        "{}",
        warnings[0]
    );
    stop(&mut daemon);
}

#[test]
fn an_e_mail_sender_skips_an_order_without_e_mail_and_delivers_one_with_it() {
    let world = World::new();
    let shop = world.shop("loja");
    let inbox = world.channel(Provider::Webhook);
    let tables = world.store_toml(&shop, &["mail"], StoreKnobs::default())
        + &test_channel_toml("mail", "email-sender", &inbox);
    let mut daemon = world.start(&tables, &[]);
    let without = create(
        &shop,
        Order::new()
            .status("pedido_pago")
            .customer(Customer::new("Sem Email").mobile("(11) 98765-0002")),
    );
    let (_, skipped) = daemon.stderr.wait_for_matching(
        0,
        PATIENCE,
        "invalid event about the order without e-mail",
        |line| line.contains("invalid event") && field(line, "order") == Some(&without.to_string()),
    );
    assert!(skipped.contains("no e-mail address"), "{skipped}");
    assert!(skipped.contains("reason=no-email"), "{skipped}");

    let with = create(&shop, order_for("Bia", 3, "pedido_pago"));
    let received = world.wait_received(&inbox, 1);
    let sent = body(&received[0].text);
    assert_eq!(sent["email"], "bia.3@example.com");
    assert_eq!(sent["event"]["order"]["number"], with.to_string());
    stop(&mut daemon);
    assert_eq!(
        inbox.received().len(),
        1,
        "the order without e-mail was not sent"
    );
}
