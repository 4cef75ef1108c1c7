//! Full-system tests of a channel without pacing keeping several sends under
//! way at once (`in_flight`, `src/send/dispatch.rs`): other orders' messages
//! go out while one send waits on a slow receiver; two messages of one order
//! never overlap and leave in order; a failed send is retried as with one
//! send at a time; and a SIGTERM waits for the sends under way and records
//! them before the daemon exits.
//!
//! The receiver is the fake webhook receiver (`arauto_sim::channels`); a
//! "slow" answer is one it holds back before answering (`Reply::delayed`).

// All test code: with this, clippy's allow-unwrap/expect-in-tests covers the
// helper functions too, not only the #[test] ones (see clippy.toml).
#![cfg(test)]

use crate::support;

use std::time::Duration;

use arauto::queue::JobState;
use arauto_sim::channels::{CannedResponse, Endpoint, FakeProvider, Provider, Reply};
use nix::sys::signal::Signal;

use support::daemon::{Daemon, PATIENCE};
use support::system::{ChannelKnobs, StateDb, StoreKnobs, World, create, field, order_for};

/// How long the receiver holds back its slow answer: far longer than the
/// other sends of a test take, so they all happen while it is held, and
/// shorter than the webhook sender's 15 s request timeout.
const HELD: Duration = Duration::from_secs(8);

/// `[channels.hook]`: the webhook receiver, no pacing, `in_flight` sends.
fn unpaced_hook(world: &World, fake: &FakeProvider, in_flight: u32) -> String {
    let knobs = ChannelKnobs {
        min_interval: "0s".into(),
        ..ChannelKnobs::default()
    };
    world.channel_toml("hook", fake, knobs).replacen(
        "[channels.hook]\n",
        &format!("[channels.hook]\nin_flight = {in_flight}\n"),
        1,
    )
}

/// Index of the first log line from `from` on saying `message` about `order`.
fn line_about(daemon: &Daemon, from: usize, message: &str, order: u64) -> usize {
    let order = order.to_string();
    daemon
        .stderr
        .wait_for_matching(from, PATIENCE, message, |line| {
            line.contains(message) && field(line, "order") == Some(order.as_str())
        })
        .0
}

/// The order a webhook body is about.
fn order_of(body: &str) -> u64 {
    let doc: serde_json::Value = serde_json::from_str(body).expect("a JSON webhook body");
    doc["data"]["order"]["number"]
        .as_str()
        .and_then(|n| n.parse().ok())
        .expect("data.order.number")
}

/// While the receiver holds the first send, the other orders' messages go
/// out (one of them failing once with a 503 and retried); a SIGTERM given
/// meanwhile waits for the held send, which is recorded as sent before the
/// daemon exits.
#[test]
fn other_orders_go_out_while_one_send_is_held_and_shutdown_waits_for_it() {
    let world = World::new();
    let shop = world.shop("loja");
    let hook = world.channel(Provider::Webhook);
    hook.enqueue(Endpoint::Send, Reply::delayed(HELD, Reply::success()));
    hook.enqueue(
        Endpoint::Send,
        Reply::canned(CannedResponse::raw(503, "text/plain", "busy")),
    );
    let tables =
        world.store_toml(&shop, &["hook"], StoreKnobs::default()) + &unpaced_hook(&world, &hook, 3);
    let mut daemon = world.start(&tables, &[]);
    let orders: Vec<u64> = (1..=5)
        .map(|serial| create(&shop, order_for("Cliente", serial, "pedido_pago")))
        .collect();

    // The first request the receiver saw is the held one.
    world.wait_requests(&hook, 1);
    let held = order_of(&hook.requests()[0].body_text());
    let others: Vec<u64> = orders.iter().copied().filter(|o| *o != held).collect();
    let mut last_other = 0;
    for order in &others {
        last_other = last_other.max(line_about(&daemon, 0, "notification sent", *order));
    }
    let retried = daemon
        .stderr
        .wait_for_matching(0, PATIENCE, "send failed, retrying", |line| {
            line.contains("send failed, retrying") && line.contains("503")
        })
        .0;
    // All of that happened while the first send was held: its own line
    // comes later. SIGTERM now; the daemon waits for it.
    let from = daemon.stderr.len();
    daemon.signal(Signal::SIGTERM);
    let held_sent = line_about(&daemon, 0, "notification sent", held);
    assert!(
        held_sent > last_other && held_sent > retried,
        "the held send finished after the others (lines {held_sent}, {last_other}, {retried})"
    );
    assert!(
        held_sent >= from,
        "the held send was still under way when SIGTERM came (line {held_sent}, SIGTERM at {from})"
    );
    assert!(daemon.wait_exit(PATIENCE).success());

    let db = StateDb::open(&daemon);
    for order in &orders {
        let jobs = db.jobs_for_order("loja", &order.to_string());
        assert_eq!(jobs.len(), 1, "{jobs:#?}");
        assert_eq!(jobs[0].state, JobState::Sent, "order {order}: {jobs:#?}");
    }
    let bodies: Vec<u64> = hook
        .requests()
        .iter()
        .map(|r| order_of(&r.body_text()))
        .collect();
    assert_eq!(
        bodies.len(),
        orders.len() + 1,
        "one request per order, and the one that answered 503 once more: {bodies:?}"
    );
}

/// Two messages of one order on a channel with several sends under way:
/// the second is planned while the first is held by the receiver, and is
/// sent only once the first has its answer, never beside it.
#[test]
fn two_messages_of_one_order_never_overlap_and_keep_their_order() {
    let world = World::new();
    let shop = world.shop("loja");
    let hook = world.channel(Provider::Webhook);
    hook.enqueue(Endpoint::Send, Reply::delayed(HELD, Reply::success()));
    let tables =
        world.store_toml(&shop, &["hook"], StoreKnobs::default()) + &unpaced_hook(&world, &hook, 4);
    let mut daemon = world.start(&tables, &[]);
    let order = create(&shop, order_for("Ana", 1, "aguardando_pagamento"));
    world.wait_requests(&hook, 1);
    let from = daemon.stderr.len();
    shop.li
        .set_status(order, "pedido_pago")
        .expect("set status");
    // The order-paid message is planned while the first send is held.
    let queued = daemon
        .stderr
        .wait_for_matching(from, PATIENCE, "notification queued", |line| {
            line.contains("notification queued")
                && field(line, "notification") == Some("order-paid")
        })
        .0;
    let first_sent = line_about(&daemon, 0, "notification sent", order);
    assert!(
        queued < first_sent,
        "the second message was planned while the first was under way"
    );
    let received = world.wait_received(&hook, 2);
    daemon.signal(Signal::SIGTERM);
    assert!(daemon.wait_exit(PATIENCE).success());

    assert!(
        received[0].text.contains("order.waiting_payment")
            && received[1].text.contains("order.paid"),
        "{received:#?}"
    );
    // The second request reached the receiver only after the first one's
    // answer, which the receiver held back for HELD.
    let gap = received[1].at.duration_since(received[0].at);
    assert!(
        gap >= jiff::SignedDuration::try_from(HELD).expect("HELD fits"),
        "the order's second message was sent {gap:?} after the first, while it was held"
    );
    let sent: Vec<String> = daemon
        .stderr
        .lines()
        .iter()
        .filter(|line| line.contains("notification sent"))
        .filter_map(|line| field(line, "notification").map(str::to_owned))
        .collect();
    assert_eq!(sent, ["waiting-payment", "order-paid"]);
}
