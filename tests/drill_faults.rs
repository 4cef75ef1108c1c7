//! Fault drill: third parties that stall, reset connections, answer 500s,
//! garbage, 10 MB bodies or storms of 429s — on the Loja Integrada side and
//! on the channel side. arauto degrades per store and per channel (the
//! healthy ones keep flowing), says in its log which store or channel is
//! failing and how, and recovers when the fault ends: the messages owed
//! meanwhile go out, once.
//!
//! Every fault runs at the same time in its own store (or channel) of one
//! daemon, next to a healthy one, so the drill also shows that faults do not
//! spread.

// All test code: with this, clippy's allow-unwrap/expect-in-tests covers the
// helper functions too, not only the #[test] ones (see clippy.toml).
#![cfg(test)]

use crate::support;

use std::time::Duration;

use arauto_sim::channels::{Endpoint, FakeProvider, Provider, Reply, evolution};
use arauto_sim::li::{Fault, Route};
use nix::sys::signal::Signal;

use support::daemon::{Daemon, PATIENCE};
use support::system::{
    ChannelKnobs, Shop, StoreKnobs, World, create, field, is_about_store, order_for, phone_digits,
    tally, wait_polls,
};

/// Ten megabytes: more than a plugin may receive (`max_response_bytes`, 4 MiB by default).
const HUGE: usize = 10 * 1024 * 1024;

/// A store-side fault: the store's id, the fault, what its log line must say.
struct StoreFault {
    store: &'static str,
    fault: Fault,
    route: Route,
    says: &'static [&'static str],
}

fn stop(daemon: &mut Daemon) {
    daemon.signal(Signal::SIGTERM);
    assert!(daemon.wait_exit(PATIENCE).success(), "a clean stop");
}

/// The first line at or after `from` that says `message` and satisfies `about`.
fn wait_line(
    daemon: &Daemon,
    from: usize,
    message: &str,
    about: impl Fn(&str) -> bool,
) -> (usize, String) {
    daemon
        .stderr
        .wait_for_matching(from, PATIENCE, message, |line| {
            line.contains(message) && about(line)
        })
}

/// Loja Integrada misbehaves for six stores at once, each in its own way,
/// while a seventh store is healthy. Each failing store's polls fail with a
/// warning that names the store and the fault (none is mistaken for bad
/// credentials: nothing is paused); the healthy store's customers are
/// notified throughout; when LI recovers, the orders placed during the fault
/// are notified, each once.
#[test]
fn store_side_faults_stay_in_their_store_are_logged_and_heal() {
    let faults = [
        StoreFault {
            store: "parada",
            fault: Fault::Delay(Duration::from_secs(600)),
            route: Route::Search,
            says: &["wall-clock budget"],
        },
        StoreFault {
            store: "cortada",
            fault: Fault::Disconnect,
            route: Route::Search,
            says: &["connection"],
        },
        StoreFault {
            store: "erro500",
            fault: Fault::Status(500),
            route: Route::Search,
            says: &["500"],
        },
        StoreFault {
            store: "lixo",
            fault: Fault::Garbage,
            route: Route::Search,
            says: &["<html>"],
        },
        StoreFault {
            store: "gigante",
            fault: Fault::Oversized(HUGE),
            route: Route::Search,
            says: &["exceeded the 4194304-byte cap"],
        },
        StoreFault {
            store: "tempestade",
            fault: Fault::TooManyRequests {
                retry_after_secs: Some(1),
            },
            route: Route::Any,
            says: &["429"],
        },
    ];
    let world = World::new();
    let zap = world.channel(Provider::EvolutionApi);
    let healthy = world.shop("saudavel");
    let sick: Vec<Shop> = faults.iter().map(|f| world.shop(f.store)).collect();
    let short_calls = || StoreKnobs {
        sandbox: "call_timeout = \"3s\"".into(),
        ..StoreKnobs::default()
    };
    let mut tables = world.store_toml(&healthy, &["whatsapp"], short_calls())
        + &world.channel_toml("whatsapp", &zap, ChannelKnobs::default());
    for shop in &sick {
        tables += &world.store_toml(shop, &["whatsapp"], short_calls());
    }
    let mut daemon = world.start(&tables, &[]);
    for shop in sick.iter().chain([&healthy]) {
        wait_polls(&daemon.stderr, &shop.id, 0, 1);
    }

    let mark = daemon.stderr.len();
    for (shop, fault) in sick.iter().zip(&faults) {
        shop.li.fail(fault.route, fault.fault.clone(), usize::MAX);
    }
    // Customers order during the fault.
    for (serial, shop) in (1..).zip(&sick) {
        create(shop, order_for("Cliente", serial, "aguardando_pagamento"));
    }
    for (shop, fault) in sick.iter().zip(&faults) {
        let (_, line) = wait_line(&daemon, mark, "poll failed", |l| {
            field(l, "store") == Some(shop.id.as_str())
        });
        assert!(
            line.contains("WARN") && fault.says.iter().all(|s| line.contains(s)),
            "{}: the log names the store and the fault ({:?}): {line}",
            shop.id,
            fault.says
        );
    }
    // The healthy store is not held up.
    create(&healthy, order_for("Saudavel", 100, "aguardando_pagamento"));
    let received = world.wait_received(&zap, 1);
    assert_eq!(received[0].to, phone_digits(100));
    wait_polls(&daemon.stderr, "saudavel", daemon.stderr.len(), 2);
    assert_eq!(
        zap.received().len(),
        1,
        "nothing from the failing stores yet"
    );
    assert!(
        !daemon.stderr.lines()[mark..]
            .iter()
            .any(|l| l.contains("paused")),
        "a faulty API is not a configuration problem: no store is paused"
    );

    // LI recovers.
    let healed = daemon.stderr.len();
    for shop in &sick {
        shop.li.clear_faults();
    }
    world.wait_received_within(&zap, 1 + sick.len(), PATIENCE * 2);
    for shop in &sick {
        wait_line(&daemon, healed, "poll complete", |l| {
            is_about_store(l, "poll complete", &shop.id)
        });
    }
    wait_polls(&daemon.stderr, "saudavel", daemon.stderr.len(), 2);
    stop(&mut daemon);

    let to = tally(zap.received().into_iter().map(|m| m.to));
    let want = tally(
        (1..=sick.len() as u32)
            .chain([100])
            .map(phone_digits)
            .collect::<Vec<_>>(),
    );
    assert_eq!(to, want, "every customer once");
}

/// A channel-side fault: the channel id, the gateway's answer, what the log line must say.
struct ChannelFault {
    channel: &'static str,
    reply: Reply,
    says: &'static [&'static str],
}

/// Six WhatsApp gateways misbehave at once, each in its own way, next to a
/// healthy one; every order goes out on all seven. The healthy channel
/// delivers at once; each failing channel logs a warning naming the channel
/// and the fault and retries; nothing is paused or given up; when the
/// gateways recover every owed message goes out, once per channel.
#[test]
fn channel_side_faults_stay_in_their_channel_are_logged_and_heal() {
    let huge_json = format!(
        "{{\"status\":\"PENDING\",\"padding\":\"{}\"}}",
        "x".repeat(HUGE)
    );
    let faults = [
        ChannelFault {
            channel: "parado",
            reply: Reply::delayed(Duration::from_secs(600), evolution::server_error()),
            says: &["wall-clock budget"],
        },
        ChannelFault {
            channel: "cortado",
            reply: Reply::drop_connection(),
            says: &["connection"],
        },
        ChannelFault {
            channel: "erro500",
            reply: evolution::server_error(),
            says: &["500"],
        },
        ChannelFault {
            channel: "lixo",
            reply: Reply::raw(
                502,
                "text/html",
                "<html><body><h1>502 Bad Gateway</h1>nginx</body></html>",
            ),
            says: &["502"],
        },
        ChannelFault {
            channel: "gigante",
            reply: Reply::raw(500, "application/json", &huge_json),
            says: &["exceeded the 4194304-byte cap"],
        },
        ChannelFault {
            channel: "tempestade",
            reply: Reply::raw(429, "application/json", "{\"status\":429}")
                .with_header("retry-after", "1"),
            says: &["429"],
        },
    ];
    let world = World::new();
    let shop = world.shop("loja");
    let healthy = world.channel(Provider::EvolutionApi);
    let sick: Vec<FakeProvider> = faults
        .iter()
        .map(|_| world.channel(Provider::EvolutionApi))
        .collect();
    let mut channels = vec!["saudavel"];
    channels.extend(faults.iter().map(|f| f.channel));
    let knobs = || ChannelKnobs {
        // Long enough a fault that fast failures would exhaust 5 attempts.
        max_attempts: 50,
        sandbox: "call_timeout = \"3s\"".into(),
        ..ChannelKnobs::default()
    };
    let mut tables = world.store_toml(&shop, &channels, StoreKnobs::default())
        + &world.channel_toml("saudavel", &healthy, knobs());
    for (fake, fault) in sick.iter().zip(&faults) {
        fake.set_default(Endpoint::Send, fault.reply.clone());
        tables += &world.channel_toml(fault.channel, fake, knobs());
    }
    let mut daemon = world.start(&tables, &[]);

    create(&shop, order_for("Ana", 1, "aguardando_pagamento"));
    world.wait_received(&healthy, 1);
    for fault in &faults {
        let (_, line) = wait_line(&daemon, 0, "send failed", |l| {
            field(l, "channel") == Some(fault.channel)
        });
        assert!(
            line.contains("WARN") && fault.says.iter().all(|s| line.contains(s)),
            "{}: the log names the channel and the fault ({:?}): {line}",
            fault.channel,
            fault.says
        );
    }
    // Still failing: the healthy channel is not held up.
    create(&shop, order_for("Bruno", 2, "aguardando_pagamento"));
    world.wait_received(&healthy, 2);
    for fake in &sick {
        assert!(
            fake.received().is_empty(),
            "nothing accepted during the fault"
        );
    }

    // The gateways recover.
    for fake in &sick {
        fake.set_default(Endpoint::Send, Reply::success());
    }
    for fake in &sick {
        world.wait_received_within(fake, 2, PATIENCE * 2);
    }
    wait_polls(&daemon.stderr, "loja", daemon.stderr.len(), 2);
    stop(&mut daemon);

    let log = daemon.stderr.lines();
    assert!(
        !log.iter()
            .any(|l| l.contains("dead-letter") || l.contains("channel paused")),
        "no message given up, no channel paused"
    );
    for (fake, fault) in std::iter::once((&healthy, "saudavel"))
        .chain(sick.iter().zip(faults.iter().map(|f| f.channel)))
    {
        let to = tally(fake.received().into_iter().map(|m| m.to));
        assert_eq!(
            to,
            tally([phone_digits(1), phone_digits(2)]),
            "{fault}: each customer once"
        );
    }
}
