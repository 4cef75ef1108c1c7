//! Re-reading after a burst (issue 16): 2,000 orders of one Loja Integrada
//! store change at once, then the real daemon (`arauto run`, release build,
//! the real `loja-integrada.wasm`) polls the fake LI every second for two
//! minutes. Printed: the LI requests each poll made, before the burst, while
//! it is read, and after it, and the most any poll made that found nothing
//! new after the burst (target: ≤ 2; before the fix every such poll listed
//! the whole burst again, 40 pages and more).
//!
//! A poll is what the daemon logs as one "poll complete": the bench counts
//! the fake's requests for the store between two of those lines. A poll
//! "found nothing new" when it read no order detail (the connector reads a
//! detail for every changed order it lists).
//!
//! The store's `overlap` is 1 s (the setting) and its request budget
//! is lifted (`requests_per_minute = 100000`) so the burst is read at the
//! daemon's pace and the two minutes show the polls after it; LI's own
//! budget (90 a minute) reads 2,000 details in about 23 minutes instead.
//!
//! `cargo bench --bench burst`. Environment: `BENCH_QUICK=1` (500 orders,
//! 30 s of polls), `ARAUTO_BENCH_BURST` (orders), `ARAUTO_BENCH_SECONDS`
//! (seconds of polls after the burst), `ARAUTO_BENCH_RPM` (the store's
//! request budget), `ARAUTO_BENCH_DIR`.

mod common;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use arauto_sim::channels::{FakeProvider, Provider};
use arauto_sim::li::{Customer, FakeLi, LiStore, Order, RecordedRequest, StoreAuth};

use common::daemon::{Daemon, warm_plugin_cache};
use common::machine::{print_footer, print_header};
use common::{daemon_section, env_usize, evolution_channel, li_store, quick};

const POLL_COMPLETE: &str = "poll complete";
const SENT: &str = "notification sent";
const ERROR: &str = " ERROR ";

/// One poll as the fake saw it.
#[derive(Clone, Copy, Debug, Default)]
struct Poll {
    searches: usize,
    details: usize,
    other: usize,
}

impl Poll {
    fn requests(self) -> usize {
        self.searches + self.details + self.other
    }
    fn of(requests: &[RecordedRequest]) -> Self {
        let mut poll = Self::default();
        for request in requests {
            if request.is_search() {
                poll.searches += 1;
            } else if request.detail_numero().is_some() {
                poll.details += 1;
            } else {
                poll.other += 1;
            }
        }
        poll
    }
}

/// Watch the daemon's "poll complete" lines and cut the fake's request log
/// of `store` at each one, until `until` returns true (checked at each cut).
fn watch_polls(
    daemon: &Daemon,
    store: &LiStore,
    patience: Duration,
    mut until: impl FnMut(&[Poll]) -> bool,
) -> Result<Vec<Poll>> {
    let deadline = Instant::now() + patience;
    let mut polls = Vec::new();
    let mut seen_lines = daemon.log.count(POLL_COMPLETE)?;
    let mut cut = store.requests().len();
    loop {
        let lines = daemon.log.count(POLL_COMPLETE)?;
        if lines > seen_lines {
            let requests = store.requests();
            // Several lines at once (a slow sampler) are one poll here: rare,
            // and it only merges counts, never hides a request.
            polls.push(Poll::of(&requests[cut..]));
            cut = requests.len();
            seen_lines = lines;
            if until(&polls) {
                return Ok(polls);
            }
        }
        if Instant::now() >= deadline {
            bail!(
                "gave up after {patience:?}: {} polls seen; log:\n{}",
                polls.len(),
                daemon.log.tail(20)
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn summary(label: &str, polls: &[Poll]) {
    if polls.is_empty() {
        println!("   {label:<34} no polls");
        return;
    }
    let mut counts: Vec<usize> = polls.iter().map(|p| p.requests()).collect();
    let total: usize = counts.iter().sum();
    counts.sort_unstable();
    let searches: usize = polls.iter().map(|p| p.searches).sum();
    let details: usize = polls.iter().map(|p| p.details).sum();
    println!(
        "   {label:<34} {:>5} polls {:>7} requests ({searches} searches, {details} details); per poll: median {} max {}",
        polls.len(),
        total,
        counts[counts.len() / 2],
        counts.last().copied().unwrap_or_default()
    );
}

fn main() -> Result<()> {
    let started = Instant::now();
    let burst = env_usize("ARAUTO_BENCH_BURST", if quick() { 500 } else { 2_000 })?;
    let seconds = env_usize("ARAUTO_BENCH_SECONDS", if quick() { 30 } else { 120 })?;
    let rpm = env_usize("ARAUTO_BENCH_RPM", 100_000)?;
    let work = common::work_dir("burst-")?;
    print_header(
        "burst: LI requests per poll after 2,000 orders change at once",
        &[
            &format!(
                "one Loja Integrada store, {burst} orders changed at once, then {seconds} s of 1-second polls"
            ),
            "overlap = \"1s\"; request budget lifted so the burst is read at the daemon's pace",
            "target: polls after the burst that find nothing new make <= 2 LI requests",
        ],
        work.path(),
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let li = runtime.block_on(FakeLi::start())?;
    li.use_system_clock();
    let provider = runtime.block_on(FakeProvider::start(Provider::EvolutionApi))?;
    let key = "bench-chave-burst";
    let store = li.add_store(StoreAuth::api_key(key, common::APPLICATION_KEY));
    let numeros: Vec<_> =
        (0..burst)
            .map(|i| {
                store.create_order(Order::new().status("aguardando_pagamento").customer(
                    Customer::new("Cliente de Teste").mobile(&format!("119{:08}", i + 1)),
                ))
            })
            .collect();

    let mut config = daemon_section(work.path(), "")?;
    config.push_str(&evolution_channel(&provider.url(), Some("1ms")));
    let mut table = li_store("burst", &li.base_url(), key, "1s", "overlap = \"1s\"");
    table = table.replace(
        "[stores.burst.settings]",
        &format!("requests_per_minute = {rpm}\n[stores.burst.settings]"),
    );
    config.push_str(&table);
    warm_plugin_cache(work.path(), &config)?;
    let _ = std::fs::remove_dir_all(work.path().join("state"));

    let mut daemon = Daemon::start(work.path(), &config, &[POLL_COMPLETE, SENT, ERROR])?;
    daemon.await_ready(Duration::from_secs(300))?;
    // The first sync records the history (no messages), then a few quiet polls.
    let before = watch_polls(&daemon, &store, Duration::from_secs(300), |p| p.len() >= 5)?;
    let before = &before[1..];

    let sent0 = daemon.log.count(SENT)?;
    for numero in &numeros {
        store
            .set_status(*numero, "pedido_pago")
            .context("the burst")?;
    }
    let burst_at = Instant::now();
    // While: until every message went out and a poll read no detail.
    let target = sent0 + burst as u64;
    let while_polls = watch_polls(&daemon, &store, Duration::from_secs(3_600), |polls| {
        daemon.log.count(SENT).unwrap_or_default() >= target
            && polls.last().is_some_and(|p| p.details == 0)
    })?;
    let read_in = burst_at.elapsed();
    let (quiet_first, while_polls) = while_polls.split_last().context("no poll")?;
    let after_started = Instant::now();
    let mut after = vec![*quiet_first];
    let rest = watch_polls(
        &daemon,
        &store,
        Duration::from_secs(seconds as u64 + 600),
        |_| after_started.elapsed() >= Duration::from_secs(seconds as u64),
    )?;
    after.extend(rest);
    let sent = daemon.log.count(SENT)? - sent0;
    let errors = daemon.log.count(ERROR)?;
    daemon.stop(Duration::from_secs(60))?;

    summary("before the burst", before);
    summary("while the burst is read", while_polls);
    summary("after it", &after);
    println!(
        "   while, per poll (requests): {}",
        while_polls
            .iter()
            .map(|p| p.requests().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let quiet: Vec<&Poll> = after.iter().filter(|p| p.details == 0).collect();
    let max_quiet = quiet.iter().map(|p| p.requests()).max().unwrap_or_default();
    println!(
        "   burst read in {:.1} s; {sent} messages sent for {burst} orders; {errors} ERROR lines",
        read_in.as_secs_f64()
    );
    println!(
        "   polls after the burst that found nothing new: {}, most LI requests in one: {max_quiet} (target <= 2: {})",
        quiet.len(),
        if max_quiet <= 2 { "met" } else { "NOT met" }
    );
    print_footer(started);
    drop(li);
    drop(provider);
    Ok(())
}
