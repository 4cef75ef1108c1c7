//! `arauto preview`: the plan it prints for a week of a simulated shop (the
//! fake Loja Integrada and a fake WhatsApp gateway on 127.0.0.1) is what the
//! daemon then sends for the same story, and printing it writes nothing and
//! sends nothing — also while the daemon runs.
//!
//! The preview's promise (see `src/cli/preview.rs`): its plan is what a daemon
//! started now with `first_sync_cutoff = now - since` sends. The test starts
//! exactly that daemon, with the `window_start` the preview printed.

// All test code: with this, clippy's allow-unwrap/expect-in-tests covers the
// helper functions too, not only the #[test] ones (see clippy.toml).
#![cfg(test)]

use crate::support;

use std::collections::BTreeSet;
use std::path::Path;

use arauto_sim::channels::{FakeProvider, Provider};
use arauto_sim::li::{DateTime, Numero, Shipment};
use jiff::SignedDuration;
use serde_json::Value;

use support::daemon::daemon_section;
use support::operator::Run;
use support::system::{
    ChannelKnobs, Shop, StoreKnobs, World, create, customer, field, order_for, phone_digits,
    plugin_cache, wait_lines, wait_polls,
};

/// `world.start` moved back by `hours`.
fn hours_ago(world: &World, hours: i64) -> DateTime {
    world
        .start
        .checked_sub(SignedDuration::from_hours(hours))
        .expect("a date in range")
}

/// Run `body` with the fake LI's clock at `at` (orders created or changed
/// inside are stamped then), and put the clock back at the world's start.
fn at<T>(world: &World, at: DateTime, body: impl FnOnce() -> T) -> T {
    world.li.set_now(at);
    let out = body();
    world.li.set_now(world.start);
    out
}

/// The shop's numeros in the story, by customer.
struct Story {
    ana: Numero,
    bruno: Numero,
    carla: Numero,
    davi: Numero,
    elisa: Numero,
    fabio: Numero,
    gabi: Numero,
}

/// Ten days of a shop, told on the fake LI's clock:
/// * Ana ordered 9 days ago and paid 8 days ago: before the 7-day window;
/// * Elisa ordered 10 days ago and paid yesterday: placed before the window;
/// * Bruno ordered 6 days ago, paid 5 days ago, was shipped (with a tracking
///   code) 3 days ago: one message, the shipped one (the latest step);
/// * Carla ordered 2 days ago and cancelled yesterday: the cancellation notice;
/// * Davi paid yesterday but left no phone: skipped, no recipient;
/// * Gabi's order has a status of the shop's own: skipped, unmapped;
/// * Fabio ordered 3 hours ago and has not paid yet: the payment reminder.
fn tell_the_story(world: &World, shop: &Shop) -> Story {
    let li = &shop.li;
    let ana = at(world, hours_ago(world, 9 * 24), || {
        create(shop, order_for("Ana", 1, "aguardando_pagamento"))
    });
    at(world, hours_ago(world, 8 * 24), || {
        li.set_status(ana, "pedido_pago")
    })
    .expect("Ana paid");
    let elisa = at(world, hours_ago(world, 10 * 24), || {
        create(shop, order_for("Elisa", 5, "aguardando_pagamento"))
    });
    let bruno = at(world, hours_ago(world, 6 * 24), || {
        create(
            shop,
            order_for("Bruno", 2, "aguardando_pagamento").shipments(vec![Shipment::pac(1990)]),
        )
    });
    at(world, hours_ago(world, 5 * 24), || {
        li.set_status(bruno, "pedido_pago")
    })
    .expect("paid");
    at(world, hours_ago(world, 3 * 24), || {
        li.set_status(bruno, "pedido_enviado")?;
        li.set_tracking(bruno, 0, Some("BR123456789BR"))
    })
    .expect("Bruno shipped");
    let carla = at(world, hours_ago(world, 2 * 24), || {
        create(shop, order_for("Carla", 3, "aguardando_pagamento"))
    });
    let gabi = at(world, hours_ago(world, 2 * 24), || {
        create(shop, order_for("Gabi", 7, "separado_pela_casa"))
    });
    at(world, hours_ago(world, 24), || {
        li.set_status(carla, "pedido_cancelado")?;
        li.set_status(elisa, "pedido_pago")
    })
    .expect("Carla cancelled, Elisa paid");
    let davi = at(world, hours_ago(world, 24), || {
        create(
            shop,
            arauto_sim::li::Order::new()
                .status("pedido_pago")
                .customer(customer("Davi", 4).without_phones()),
        )
    });
    let fabio = at(world, hours_ago(world, 3), || {
        create(shop, order_for("Fabio", 6, "aguardando_pagamento"))
    });
    Story {
        ana,
        bruno,
        carla,
        davi,
        elisa,
        fabio,
        gabi,
    }
}

/// `[daemon]` lines pointing at the built first-party plugins.
fn daemon_extra() -> String {
    let plugins = support::plugins::first_party_plugins();
    format!("plugin_dir = {:?}\n", plugins.display().to_string())
}

/// `arauto preview --config <config> --store <store> [extra…]`, with the
/// shared compiled-plugin cache (only read: the preview writes nothing).
fn preview(config: &Path, store: &str, extra: &[&str]) -> Run {
    let cache = plugin_cache();
    support::daemon::arauto()
        .arg("preview")
        .arg("--config")
        .arg(config)
        .args(["--store", store])
        .args(extra)
        .env("NO_COLOR", "1")
        .env("ARAUTO_DAEMON__CACHE_DIR", cache)
        .output()
        .expect("run arauto preview")
        .into()
}

/// Every file under `dir`, relative, with its size.
fn tree(dir: &Path) -> BTreeSet<(String, u64)> {
    let mut files = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).expect("read dir") {
            let entry = entry.expect("dir entry");
            let meta = entry.metadata().expect("metadata");
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                let relative = entry
                    .path()
                    .strip_prefix(dir)
                    .expect("under dir")
                    .display()
                    .to_string();
                files.insert((relative, meta.len()));
            }
        }
    }
    files
}

/// The plan's messages as (order id, kind, channel, text).
fn planned_messages(plan: &Value) -> BTreeSet<(String, String, String, String)> {
    let mut messages = BTreeSet::new();
    for order in plan["orders"].as_array().expect("orders") {
        for message in order["messages"].as_array().expect("messages") {
            messages.insert((
                order["order_id"].as_str().expect("order_id").to_owned(),
                message["kind"].as_str().expect("kind").to_owned(),
                message["channel"].as_str().expect("channel").to_owned(),
                message["text"].as_str().expect("text").to_owned(),
            ));
        }
    }
    messages
}

/// The reasons the plan skips order `numero` for.
fn skip_reasons(plan: &Value, numero: Numero) -> Vec<String> {
    let id = numero.to_string();
    let order = plan["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .find(|o| o["order_id"].as_str() == Some(id.as_str()))
        .unwrap_or_else(|| panic!("order {numero} is not in the plan: {plan:#}"));
    order["skipped"]
        .as_array()
        .expect("skipped")
        .iter()
        .map(|s| s["reason"].as_str().expect("reason").to_owned())
        .collect()
}

#[test]
fn the_plan_for_a_week_is_what_the_daemon_then_sends_and_printing_it_writes_and_sends_nothing() {
    let world = World::new();
    let shop = world.shop("loja");
    let zap: FakeProvider = world.channel(Provider::EvolutionApi);
    let story = tell_the_story(&world, &shop);
    let channel = world.channel_toml("zap", &zap, ChannelKnobs::default());
    let store = |table: String| {
        world.store_toml(
            &shop,
            &["zap"],
            StoreKnobs {
                table,
                cutoff_at_first_poll: true,
                ..StoreKnobs::default()
            },
        )
    };

    // The preview, on a configuration of its own whose state directory does
    // not exist yet.
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("arauto.toml");
    std::fs::write(
        &config,
        format!(
            "{}{}",
            daemon_section(dir.path(), &daemon_extra()),
            World::body(&format!("{}{channel}", store(String::new())))
        ),
    )
    .expect("write the configuration");
    let before = tree(dir.path());
    let run = preview(&config, "loja", &["--json"]);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let plan = run.json();
    assert_eq!(tree(dir.path()), before, "the preview wrote something");
    assert!(!dir.path().join("state").exists());
    assert!(
        zap.requests().is_empty(),
        "the preview called the channel: {:?}",
        zap.requests()
    );
    assert_eq!(plan["store"], "loja");
    assert_eq!(plan["since"], "7d");
    assert_eq!(plan["orders_read"], 7, "{plan:#}");

    let planned = planned_messages(&plan);
    let kinds: BTreeSet<(String, String, String)> = planned
        .iter()
        .map(|(order, kind, channel, _)| (order.clone(), kind.clone(), channel.clone()))
        .collect();
    let expected: BTreeSet<(String, String, String)> = [
        (story.bruno, "order-shipped"),
        (story.carla, "order-canceled"),
        (story.fabio, "waiting-payment"),
    ]
    .into_iter()
    .map(|(numero, kind)| (numero.to_string(), kind.to_owned(), "zap".to_owned()))
    .collect();
    assert_eq!(kinds, expected, "{plan:#}");
    let shipped = planned
        .iter()
        .find(|(_, kind, _, _)| kind == "order-shipped")
        .expect("shipped");
    assert!(shipped.3.contains("BR123456789BR"), "{}", shipped.3);
    assert_eq!(plan["messages"], 3);
    assert_eq!(skip_reasons(&plan, story.ana), ["before-window"]);
    assert_eq!(skip_reasons(&plan, story.elisa), ["placed-before-window"]);
    assert_eq!(skip_reasons(&plan, story.davi), ["no-recipient"]);
    assert_eq!(skip_reasons(&plan, story.gabi), ["unmapped-status"]);
    for numero in [story.bruno, story.carla, story.fabio] {
        assert!(skip_reasons(&plan, numero).is_empty(), "{plan:#}");
    }

    // The human table says the same, one block per order.
    let table = preview(&config, "loja", &[]);
    assert_eq!(table.code, 0, "stderr: {}", table.stderr);
    for needle in [
        "order-shipped",
        "order-canceled",
        "waiting-payment",
        "skip: ",
        "no usable phone",
        "separado_pela_casa",
        "7 orders read: 3 messages, 4 skips",
    ] {
        assert!(
            table.stdout.contains(needle),
            "{needle:?} in:\n{}",
            table.stdout
        );
    }

    // The daemon the plan describes: first_sync_cutoff at the window's start.
    let window_start = plan["window_start"].as_str().expect("window_start");
    let tables = format!(
        "{}{channel}",
        store(format!("first_sync_cutoff = {window_start:?}"))
    );
    let daemon = world.start(&tables, &[]);
    let received = world.wait_received(&zap, 3);
    wait_lines(&daemon.stderr, 0, "notification sent", 3);
    // Everything the first sweep queued is known once it completed.
    wait_polls(&daemon.stderr, "loja", 0, 1);
    let lines = daemon.stderr.lines();
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("notification queued"))
            .count(),
        3,
        "{}",
        daemon.stderr.all()
    );
    let sent: BTreeSet<(String, String, String)> = lines
        .iter()
        .filter(|line| line.contains("notification sent"))
        .map(|line| {
            (
                field(line, "order").unwrap_or_default().to_owned(),
                field(line, "notification").unwrap_or_default().to_owned(),
                field(line, "channel").unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(sent, kinds, "the daemon sent other messages than planned");
    let serial_of = |order: &str| match order {
        o if o == story.bruno.to_string() => 2,
        o if o == story.carla.to_string() => 3,
        _ => 6,
    };
    let received: BTreeSet<(String, String)> =
        received.into_iter().map(|m| (m.to, m.text)).collect();
    let promised: BTreeSet<(String, String)> = planned
        .iter()
        .map(|(order, _, _, text)| (phone_digits(serial_of(order)), text.clone()))
        .collect();
    assert_eq!(received, promised, "the texts sent differ from the plan's");

    // While the daemon runs the preview still works, and still sends nothing.
    let requests = zap.requests().len();
    let again = preview(&daemon.config_path, "loja", &["--json"]);
    assert_eq!(again.code, 0, "stderr: {}", again.stderr);
    assert_eq!(planned_messages(&again.json()), planned);
    assert_eq!(zap.requests().len(), requests);
}

#[test]
fn an_unknown_store_is_a_usage_error_listing_the_known_ones_and_a_disabled_one_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("arauto.toml");
    std::fs::write(
        &config,
        format!(
            r#"{}
[stores.norte]
platform = "loja-integrada"
channels = ["zap"]
[stores.norte.settings]
api_key = "k"
application_key = "a"

[stores.sul]
platform = "loja-integrada"
enabled = false
channels = ["zap"]
[stores.sul.settings]
api_key = "k"
application_key = "a"

[channels.zap]
plugin = "webhook"
[channels.zap.settings]
url = "http://127.0.0.1:9/hooks"
secret = "{}"
"#,
            daemon_section(dir.path(), &daemon_extra()),
            support::system::WEBHOOK_SECRET
        ),
    )
    .expect("write the configuration");

    let unknown = preview(&config, "leste", &[]);
    assert_eq!(unknown.code, 2, "{unknown:?}");
    assert!(
        unknown.stderr.contains("no store `leste`")
            && unknown.stderr.contains("known stores: norte, sul"),
        "{}",
        unknown.stderr
    );

    let disabled = preview(&config, "sul", &[]);
    assert_eq!(disabled.code, 1, "{disabled:?}");
    assert!(
        disabled.stderr.contains("store `sul` is disabled"),
        "{}",
        disabled.stderr
    );
    assert!(!dir.path().join("state").exists());
}

#[test]
fn a_key_the_platform_refuses_names_the_store_and_its_settings_and_never_the_key() {
    let world = World::new();
    let shop = world.shop("loja");
    let zap: FakeProvider = world.channel(Provider::EvolutionApi);
    let secret_key = "chave-errada-1f9c2e";
    let tables = format!(
        "{}{}",
        world.store_toml(
            &shop,
            &["zap"],
            StoreKnobs {
                api_key: Some(secret_key.to_owned()),
                cutoff_at_first_poll: true,
                ..StoreKnobs::default()
            },
        ),
        world.channel_toml("zap", &zap, ChannelKnobs::default())
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("arauto.toml");
    std::fs::write(
        &config,
        format!(
            "{}{}",
            daemon_section(dir.path(), &daemon_extra()),
            World::body(&tables)
        ),
    )
    .expect("write the configuration");

    let run = preview(&config, "loja", &["--json"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(
        run.stderr.contains("store `loja`") && run.stderr.contains("[stores.loja.settings]"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains(secret_key), "{}", run.stderr);
    assert!(zap.requests().is_empty());
    assert!(!dir.path().join("state").exists());
}
