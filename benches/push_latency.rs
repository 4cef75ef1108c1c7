//! Change in the store → sender request, with Loja Integrada's pushed
//! webhooks on and the scheduled poll at `poll_interval = 5m`, next to the
//! same with polling alone (issue 13).
//!
//! Real `arauto run` (release), real `loja-integrada.wasm` and
//! `evolution-api.wasm`, the fake LI and the fake Evolution API of
//! `arauto-sim` in this process (one clock stamps the change and the
//! gateway's arrival). With pushes on, the fake LI POSTs each change in LI's
//! push shape to the daemon's `[daemon.webhooks]` listener, as LI does once
//! `arauto webhooks register` has subscribed the store; the connector verifies
//! the bearer token, the store polls at once looking at the pushed order, and
//! the message goes out through the usual commit and dispatch. Changes are
//! made one at a time, 2 to 4 s apart (a busy store, within Loja Integrada's
//! request budget).
//!
//! Polling alone, a change waits for the next scheduled poll: the changes are
//! spread evenly over one poll interval and all awaited together, so the run
//! takes one interval (5 min; 1 min with `BENCH_QUICK=1`, which says so).
//!
//! `cargo bench --bench push_latency`. Environment: `BENCH_QUICK=1`,
//! `ARAUTO_BENCH_CHANGES` (pushes: default 50, quick 20), `ARAUTO_BENCH_DIR`.

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use arauto_sim::channels::{FakeProvider, Provider};
use arauto_sim::li::{Customer, FakeLi, LiStore, Numero, Order, StoreAuth};
use jiff::Timestamp;

use common::daemon::{Daemon, warm_plugin_cache};
use common::machine::{print_footer, print_header};
use common::{daemon_section, evolution_channel, li_store, ms, quick, row};

const PUSH_POLL_INTERVAL: &str = "5m";
/// No pacing for one message at a time (`0s` is refused: it must be positive).
const MIN_INTERVAL: &str = "1ms";
const WEBHOOK_TOKEN: &str = "bench-webhook-token";

/// A free port on 127.0.0.1 for the daemon's webhook listener.
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

struct Rig {
    runtime: tokio::runtime::Runtime,
    li: FakeLi,
    provider: FakeProvider,
    store: LiStore,
    orders: Vec<Numero>,
    daemon: Daemon,
    /// The daemon's files, removed after the run.
    _dir: tempfile::TempDir,
}

/// A daemon with one LI store (`loja`) polled every `poll_interval` and one
/// WhatsApp channel, `count` orders waiting for payment recorded as history,
/// and the webhook listener on.
fn rig(label: &str, count: usize, poll_interval: &str) -> Result<Rig> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (li, provider) = runtime.block_on(async {
        anyhow::Ok((
            FakeLi::start().await?,
            FakeProvider::start(Provider::EvolutionApi).await?,
        ))
    })?;
    li.use_system_clock();
    let store = li.add_store(StoreAuth::api_key("bench-chave", common::APPLICATION_KEY));
    let orders: Vec<Numero> = (0..count)
        .map(|i| {
            store.create_order(
                Order::new()
                    .status("aguardando_pagamento")
                    .customer(Customer::new("Cliente de Teste").mobile(&format!("1198{i:07}"))),
            )
        })
        .collect();

    let port = free_port()?;
    let dir = common::work_dir(&format!("push-latency-{label}-"))?;
    let mut config = daemon_section(
        dir.path(),
        &format!("[daemon.webhooks]\nlisten = \"127.0.0.1:{port}\"\n"),
    )?;
    config.push_str(&evolution_channel(&provider.url(), Some(MIN_INTERVAL)));
    config.push_str(&li_store(
        "loja",
        &li.base_url(),
        "bench-chave",
        poll_interval,
        &format!("webhook_token = \"{WEBHOOK_TOKEN}\""),
    ));
    warm_plugin_cache(common::work_dir("push-latency-warm-")?.path(), &config)?;
    let mut daemon = Daemon::start(dir.path(), &config, &["poll complete"])?;
    daemon.await_ready(Duration::from_secs(120))?;
    // The first sweep records the existing orders as history (no messages).
    daemon
        .log
        .wait_for("poll complete", 1, Duration::from_secs(60))?;
    if !provider.received().is_empty() {
        bail!("the first sweep sent messages for historical orders");
    }
    // What `arauto webhooks register` asks of LI; pushes start with it.
    store.register_webhook(
        &format!("http://127.0.0.1:{port}/hooks/loja"),
        WEBHOOK_TOKEN,
    );
    Ok(Rig {
        runtime,
        li,
        provider,
        store,
        orders,
        daemon,
        _dir: dir,
    })
}

/// Pushes on: one change at a time, each awaited; change → message (ms).
fn with_pushes(changes: usize) -> Result<Vec<f64>> {
    let rig = rig("push", changes, PUSH_POLL_INTERVAL)?;
    let mut samples = Vec::with_capacity(changes);
    for (i, numero) in rig.orders.iter().enumerate() {
        // A busy store's pace, not a flood: 2 to 4 s between changes (about
        // 20 a minute). Each push costs the store about two Loja Integrada
        // requests of its 90 a minute, and the pushes of one store start at
        // most one poll a second (`poll::service::MIN_PUSH_GAP`); changes back to back
        // measure those limits instead (see docs/BENCHMARKS.md).
        std::thread::sleep(Duration::from_millis(2_000 + (i as u64 * 397) % 2_000));
        let changed = Timestamp::now();
        rig.store.set_status(*numero, "pedido_pago")?;
        rig.runtime
            .block_on(async {
                tokio::time::timeout(
                    Duration::from_secs(60),
                    rig.provider.wait_for_received(i + 1),
                )
                .await
            })
            .with_context(|| format!("no message for order {numero} within 60 s of its push"))?;
        let message = rig
            .provider
            .received()
            .into_iter()
            .nth(i)
            .context("the gateway lost a message")?;
        if !message.text.contains(&numero.to_string()) {
            bail!("message {:?} is not about order {numero}", message.text);
        }
        samples.push(ms(changed, message.at));
    }
    let pushes = rig.li.pushes().len();
    rig.daemon.stop(Duration::from_secs(60))?;
    println!(
        "   (pushes on: {changes} changes, {pushes} pushes delivered, poll_interval = {PUSH_POLL_INTERVAL})"
    );
    Ok(samples)
}

/// Polling alone: `changes` spread evenly over one `interval`, all awaited.
fn polling_alone(changes: usize, interval: Duration, interval_text: &str) -> Result<Vec<f64>> {
    let rig = rig("poll", changes, interval_text)?;
    rig.li.configure_pushes(|options| options.enabled = false);
    let mut changed_at = Vec::with_capacity(changes);
    let step = interval / u32::try_from(changes.max(1))?;
    for numero in &rig.orders {
        changed_at.push((*numero, Timestamp::now()));
        rig.store.set_status(*numero, "pedido_pago")?;
        std::thread::sleep(step);
    }
    rig.runtime
        .block_on(async {
            tokio::time::timeout(
                interval + Duration::from_secs(60),
                rig.provider.wait_for_received(changes),
            )
            .await
        })
        .context("polling alone: not every message arrived within one interval and a minute")?;
    let messages = rig.provider.received();
    let mut samples = Vec::with_capacity(changes);
    for (numero, changed) in changed_at {
        let message = messages
            .iter()
            .find(|m| m.text.contains(&numero.to_string()))
            .with_context(|| format!("no message about order {numero}"))?;
        samples.push(ms(changed, message.at));
    }
    rig.daemon.stop(Duration::from_secs(60))?;
    println!(
        "   (polling alone: {changes} changes spread over one poll_interval = {interval_text}, pushes off)"
    );
    Ok(samples)
}

fn main() -> Result<()> {
    let started = Instant::now();
    let changes = common::env_usize("ARAUTO_BENCH_CHANGES", if quick() { 20 } else { 50 })?.max(1);
    let (alone_interval, alone_text, alone_changes) = if quick() {
        (Duration::from_secs(60), "1m", 6)
    } else {
        (Duration::from_secs(300), "5m", 10)
    };
    let root = common::work_root()?;
    print_header(
        "6. Change in the store → sender request: LI pushes vs polling alone (issue 13)",
        &[
            "real `arauto run`, real loja-integrada.wasm and evolution-api.wasm, fake LI (pushing in LI's shape) + fake Evolution API on 127.0.0.1",
            &format!(
                "pushes on: {changes} changes one at a time, 2-4 s apart, poll_interval = {PUSH_POLL_INTERVAL}; polling alone: {alone_changes} changes spread over poll_interval = {alone_text}{}",
                if quick() {
                    " (BENCH_QUICK: 1m instead of 5m)"
                } else {
                    ""
                }
            ),
            "from: the order's status set to pedido_pago in the fake LI; to: arrival of the order-paid message at the gateway",
        ],
        &root,
    );
    let pushed = with_pushes(changes)?;
    let alone = polling_alone(alone_changes, alone_interval, alone_text)?;
    println!(
        "{:<62} {:>9} {:>9} {:>9} {:>9}",
        "milliseconds", "median", "p95", "max", "min"
    );
    row(
        &format!("change → sender request, pushes on (poll {PUSH_POLL_INTERVAL})"),
        pushed,
    );
    row(
        &format!("change → sender request, polling alone (poll {alone_text})"),
        alone,
    );
    print_footer(started);
    Ok(())
}
