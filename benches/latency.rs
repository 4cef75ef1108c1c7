//! End-to-end latency: from the connector's HTTP request that returned an
//! order change to the sender plugin's HTTP request reaching the WhatsApp
//! gateway, through the real daemon (`arauto run`, release): poll → detect →
//! decide → durable commit → dispatcher wake-up → claim → render → send.
//!
//! One fake Loja Integrada store polled every second by the real
//! `loja-integrada.wasm`, one channel through the real `evolution-api.wasm`
//! to a fake Evolution API with pacing off. The benchmark moves one order at
//! a time to `pedido_pago` and waits for the message; both fakes run in this
//! process and stamp requests with the same clock. The reference request is
//! the search page that listed the change (the last search before the
//! order's detail read, which the connector makes only for changed orders).
//!
//! `cargo bench --bench latency`. Environment: `BENCH_QUICK=1` (20 changes),
//! `ARAUTO_BENCH_CHANGES` (default 50), `ARAUTO_BENCH_DIR`.

mod common;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use arauto_sim::channels::{FakeProvider, Provider};
use arauto_sim::li::{Customer, Endpoint, FakeLi, Numero, Order, StoreAuth};
use jiff::Timestamp;

use common::daemon::{Daemon, warm_plugin_cache};
use common::machine::{print_footer, print_header};
use common::{daemon_section, evolution_channel, li_store, ms, quick, row};

const POLL_INTERVAL: &str = "1s";
/// The smallest pacing the configuration accepts (`0s` is refused: it must be
/// positive); 1 ms is no pacing at all for one message at a time.
const MIN_INTERVAL: &str = "1ms";

/// One change and when its pieces happened.
struct Trace {
    changed: Timestamp,
    search: Timestamp,
    detail: Timestamp,
    sent: Timestamp,
}

fn main() -> Result<()> {
    let started = Instant::now();
    let changes = common::env_usize("ARAUTO_BENCH_CHANGES", if quick() { 20 } else { 50 })?.max(1);
    let root = common::work_root()?;
    print_header(
        "5. End-to-end latency: poll that sees a change → sender call (issue 8)",
        &[
            "real `arauto run`, real loja-integrada.wasm and evolution-api.wasm, fake LI + fake Evolution API on 127.0.0.1",
            &format!(
                "{changes} changes, one at a time (an order moved to pedido_pago → one order-paid message); poll_interval = {POLL_INTERVAL}, min_interval = {MIN_INTERVAL}, delay 0"
            ),
            "from: arrival of the LI search request whose answer listed the change; to: arrival of the message at the gateway",
        ],
        &root,
    );

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
    li.record_requests(true);
    let store = li.add_store(StoreAuth::api_key("bench-chave", common::APPLICATION_KEY));
    let orders: Vec<Numero> = (0..changes)
        .map(|i| {
            store.create_order(
                Order::new()
                    .status("aguardando_pagamento")
                    .customer(Customer::new("Cliente de Teste").mobile(&format!("1198{i:07}"))),
            )
        })
        .collect();

    let dir = common::work_dir("latency-")?;
    let mut config = daemon_section(dir.path(), "")?;
    config.push_str(&evolution_channel(&provider.url(), Some(MIN_INTERVAL)));
    config.push_str(&li_store(
        "loja",
        &li.base_url(),
        "bench-chave",
        POLL_INTERVAL,
        "",
    ));
    warm_plugin_cache(common::work_dir("latency-warm-")?.path(), &config)?;

    let mut daemon = Daemon::start(dir.path(), &config, &["poll complete"])?;
    daemon.await_ready(Duration::from_secs(120))?;
    // The first sweep records the existing orders as history (no messages).
    daemon
        .log
        .wait_for("poll complete", 1, Duration::from_secs(60))?;
    if !provider.received().is_empty() {
        bail!("the first sweep sent messages for historical orders");
    }

    let mut changed_at = Vec::with_capacity(changes);
    for (i, numero) in orders.iter().enumerate() {
        // Vary where in the poll interval the change lands.
        std::thread::sleep(Duration::from_millis((i as u64 * 137) % 700));
        changed_at.push(Timestamp::now());
        store.set_status(*numero, "pedido_pago")?;
        runtime
            .block_on(async {
                tokio::time::timeout(Duration::from_secs(30), provider.wait_for_received(i + 1))
                    .await
            })
            .with_context(|| format!("no message for order {numero} within 30 s"))?;
    }
    daemon.stop(Duration::from_secs(60))?;

    let requests = store.requests();
    let messages = provider.received();
    let mut traces = Vec::with_capacity(changes);
    for ((numero, changed), message) in orders.iter().zip(&changed_at).zip(&messages) {
        if !message.text.contains(&numero.to_string()) {
            bail!("message {:?} is not about order {numero}", message.text);
        }
        let detail = requests
            .iter()
            .find(|r| r.detail_numero() == Some(*numero) && r.at > *changed)
            .with_context(|| format!("no detail request for order {numero} after its change"))?;
        let search = requests
            .iter()
            .rfind(|r| r.endpoint == Endpoint::Search && r.at <= detail.at)
            .context("no search request before the detail request")?;
        traces.push(Trace {
            changed: *changed,
            search: search.at,
            detail: detail.at,
            sent: message.at,
        });
    }

    println!(
        "{:<62} {:>9} {:>9} {:>9} {:>9}",
        "milliseconds", "median", "p95", "max", "min"
    );
    row(
        "poll request that saw the change → sender request",
        traces.iter().map(|t| ms(t.search, t.sent)).collect(),
    );
    row(
        "  of which search → detail request (inside the plugin call)",
        traces.iter().map(|t| ms(t.search, t.detail)).collect(),
    );
    row(
        "  of which detail → sender request (decide, commit, dispatch)",
        traces.iter().map(|t| ms(t.detail, t.sent)).collect(),
    );
    row(
        &format!("change → next poll request (waiting for the {POLL_INTERVAL} poll)"),
        traces.iter().map(|t| ms(t.changed, t.search)).collect(),
    );
    row(
        "change in the store → sender request",
        traces.iter().map(|t| ms(t.changed, t.sent)).collect(),
    );
    println!("   ({} changes, {} messages)", traces.len(), messages.len());
    print_footer(started);
    Ok(())
}
