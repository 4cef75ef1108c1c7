//! Poll cost per store at N = 100, 1,000 and 10,000 stores: the real daemon
//! (`arauto run`, release build, one child process per N and platform so its
//! peak RSS is that run's) polls N fake Loja Integrada stores through the
//! real `loja-integrada.wasm` connector, then N fake Nuvemshop stores through
//! the real `nuvemshop.wasm`, and every sweep of every store sees a small
//! delta: one new order and one order moved one status forward.
//!
//! Nuvemshop meters each store with a leaky bucket (40 requests, leaking 2 a
//! second) and answers 429 when it is full; the fake does the same and counts
//! its 429s, which the table prints per platform ("429s"): in steady state
//! (the measured cycles) the connector must never get one (issue 14).
//!
//! Why the daemon rather than driving `poll::sweep::Sweep` in-process: the
//! daemon's own scheduler, tokio runtime, logging, per-store services and
//! start-up are what a machine running N stores pays for, and a separate
//! process keeps the fake LI server's CPU and memory out of arauto's numbers
//! (the fake's CPU is measured on its own, in this process, and printed
//! next to arauto's).
//!
//! The delta is applied by the fake itself when a store's search request
//! arrives (before it answers), so every sweep sees exactly two changed
//! orders however the daemon's jittered schedule falls. The connector's
//! `overlap` is twice the poll interval, so the search window holds about
//! two cycles of changes, as production's 10-minute overlap does for a
//! 5-minute interval.
//!
//! Each row also prints what the measured CPU means at production's 5-minute
//! poll interval (arauto's and the fake's, as % of one core), and the issue
//! 16 targets: RSS at 10,000 stores ≤ 100 MiB and ≤ 8 KiB per added store,
//! arauto's CPU per sweep ≤ 1.5× the fake's for the same requests, start-up
//! with 10,000 stores ≤ 300 ms; with `BENCH_LARGE=1`, 100,000 stores at
//! ≤ 20 % of one core and ≤ 800 MiB peak RSS.
//!
//! `cargo bench --bench poll_cost`. Environment: `BENCH_QUICK=1` (N = 100 and
//! 1,000, one measured cycle), `BENCH_LARGE=1` (adds N = 100,000, Loja
//! Integrada only, one measured cycle: about 12 minutes and 2 GiB for the
//! fake), `ARAUTO_BENCH_STORES` (e.g. `100,1000`),
//! `ARAUTO_BENCH_IDLE=1` (Loja Integrada stores that never change: every
//! measured sweep is one search that finds nothing new),
//! `ARAUTO_BENCH_PLATFORMS` (`loja-integrada,nuvemshop`, the default: both;
//! Nuvemshop runs at N ≤ 1,000 unless listed alone), `ARAUTO_BENCH_CYCLES`
//! (measured cycles, default 2), `ARAUTO_BENCH_DIR`.

mod common;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use arauto_sim::channels::{FakeProvider, Provider};
use arauto_sim::li::{Customer, FakeLi, LiStore, Numero, Order, Route, StoreAuth};
use arauto_sim::nuvemshop::{self as ns, FakeNuvemshop, NsStore, OrderId, StoreCredentials};

use common::daemon::{Daemon, warm_plugin_cache};
use common::machine::{print_footer, print_header};
use common::{
    daemon_section, evolution_channel, human, li_store, mib, nuvemshop_store, proc, quick,
};

/// Orders each store holds before the daemon starts (its history).
const HISTORY: usize = 5;
/// The happy path the fake walks orders along, one step per change.
const STEPS: [&str; 5] = [
    "aguardando_pagamento",
    "pedido_pago",
    "pedido_em_separacao",
    "pedido_enviado",
    "pedido_entregue",
];
/// Changed orders per sweep: one created, one moved forward.
const CHANGES_PER_SWEEP: u64 = 2;

const POLL_COMPLETE: &str = "poll complete";
const POLL_FAILED: &str = "poll failed";
const QUEUED: &str = "notification queued";
const ERROR: &str = " ERROR ";

/// What the fake does to one store on each of its sweeps.
struct Script {
    /// Orders not yet delivered, oldest first, with their step in [`STEPS`].
    open: VecDeque<(Numero, usize)>,
    created: u64,
    store_index: usize,
}

impl Script {
    fn new_order(&mut self, store: &LiStore, step: usize) -> Numero {
        self.created += 1;
        let phone = format!(
            "119{:08}",
            (self.store_index as u64 * 1_000 + self.created) % 100_000_000
        );
        let numero = store.create_order(
            Order::new()
                .status(STEPS[step])
                .customer(Customer::new("Cliente de Teste").mobile(&phone)),
        );
        self.open.push_back((numero, step));
        numero
    }

    /// One sweep's delta: a new order, and the oldest open order one step on.
    fn apply(&mut self, store: &LiStore) {
        if let Some((numero, step)) = self.open.pop_front() {
            let next = step + 1;
            let _ = store.set_status(numero, STEPS[next]);
            if STEPS[next] == "pedido_enviado" {
                let code = format!("BR{:09}BR", numero % 1_000_000_000);
                let _ = store.set_tracking(numero, 0, Some(&code));
            }
            if next + 1 < STEPS.len() {
                self.open.push_back((numero, next));
            }
        }
        self.new_order(store, 0);
    }
}

/// The platforms a row can measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Platform {
    LojaIntegrada,
    Nuvemshop,
}

impl Platform {
    fn name(self) -> &'static str {
        match self {
            Self::LojaIntegrada => "loja-integrada",
            Self::Nuvemshop => "nuvemshop",
        }
    }

    fn parse(name: &str) -> Result<Self> {
        match name.trim() {
            "loja-integrada" | "li" => Ok(Self::LojaIntegrada),
            "nuvemshop" | "ns" => Ok(Self::Nuvemshop),
            other => anyhow::bail!(
                "ARAUTO_BENCH_PLATFORMS: {other:?} is not loja-integrada or nuvemshop"
            ),
        }
    }
}

/// The Nuvemshop happy path the fake walks orders along, one step per
/// change: `(payment_status, shipping_status)`.
const NS_STEPS: [(&str, &str); 4] = [
    (ns::payment::PENDING, ns::shipping::UNPACKED),
    (ns::payment::PAID, ns::shipping::UNPACKED),
    (ns::payment::PAID, ns::shipping::UNFULFILLED),
    (ns::payment::PAID, ns::shipping::FULFILLED),
];

/// What the fake Nuvemshop does to one store on each of its sweeps.
struct NsScript {
    /// Orders not yet shipped, oldest first, with their step in [`NS_STEPS`].
    open: VecDeque<(OrderId, usize)>,
    created: u64,
    store_index: usize,
}

impl NsScript {
    fn new_order(&mut self, store: &NsStore, step: usize) -> OrderId {
        self.created += 1;
        let phone = format!(
            "119{:08}",
            (self.store_index as u64 * 1_000 + self.created) % 100_000_000
        );
        let (payment, shipping) = NS_STEPS[step];
        let id = store.create_order(
            ns::Order::new()
                .customer(ns::Customer::new("Cliente de Teste").phone(&phone))
                .payment_status(payment)
                .shipping_status(shipping),
        );
        self.open.push_back((id, step));
        id
    }

    /// One sweep's delta: a new order, and the oldest open order one step on.
    fn apply(&mut self, store: &NsStore) {
        if let Some((id, step)) = self.open.pop_front() {
            let next = step + 1;
            let (payment, shipping) = NS_STEPS[next];
            let _ = store.modify(id, |order| {
                payment.clone_into(&mut order.payment_status);
                shipping.clone_into(&mut order.shipping_status);
                if shipping == ns::shipping::FULFILLED {
                    order.tracking_number = Some(format!("NS{:09}BR", id % 1_000_000_000));
                }
            });
            if next + 1 < NS_STEPS.len() {
                self.open.push_back((id, next));
            }
        }
        self.new_order(store, 0);
    }
}

/// Apply the script on the store's next list request, then re-arm.
fn arm_ns(store: &NsStore, script: Arc<Mutex<NsScript>>, changes: Arc<AtomicU64>) {
    store.on_request(ns::Route::List, 1, move |store| {
        script
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .apply(store);
        changes.fetch_add(CHANGES_PER_SWEEP, Ordering::Relaxed);
        arm_ns(store, script, changes);
    });
}

/// Apply the script on the store's next search request, then re-arm; with
/// `ARAUTO_BENCH_IDLE=1` the stores never change after their history, so
/// every measured sweep finds nothing new (the idle store of issue 16).
fn arm(store: &LiStore, script: Arc<Mutex<Script>>, changes: Arc<AtomicU64>) {
    store.on_request(Route::Search, 1, move |store| {
        if !idle() {
            script
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .apply(store);
            changes.fetch_add(CHANGES_PER_SWEEP, Ordering::Relaxed);
        }
        arm(store, script, changes);
    });
}

fn idle() -> bool {
    std::env::var("ARAUTO_BENCH_IDLE").is_ok_and(|value| !value.is_empty() && value != "0")
}

struct Row {
    platform: Platform,
    stores: usize,
    interval: Duration,
    cycles: u64,
    startup: Duration,
    daemon_cpu: Duration,
    fake_cpu: Duration,
    wall: Duration,
    sweeps: u64,
    changes: u64,
    queued: u64,
    failed: u64,
    errors: u64,
    end: proc::Sample,
    rss_at_ready_kib: u64,
    /// 429s the fake answered in the measured cycles, and over the whole
    /// run (start-up and the first sweeps included); `None`: the fake does
    /// not meter requests (Loja Integrada's).
    throttled: Option<(u64, u64)>,
}

impl Row {
    fn cpu_per_cycle(&self) -> Duration {
        self.daemon_cpu.div_f64(self.cycles as f64)
    }
    fn cpu_per_store(&self) -> Duration {
        self.daemon_cpu.div_f64(self.sweeps.max(1) as f64)
    }
    fn fake_cpu_per_store(&self) -> Duration {
        self.fake_cpu.div_f64(self.sweeps.max(1) as f64)
    }
}

/// Poll interval for N stores: long enough that a 2-core machine keeps up
/// (100,000 stores: 250 s, close to production's 5 minutes).
fn interval_for(stores: usize) -> Duration {
    Duration::from_secs(5).max(Duration::from_micros(2_500 * stores as u64))
}

/// Production's default poll interval, which the % of one core is quoted at.
const PRODUCTION_INTERVAL: Duration = Duration::from_secs(300);
/// The stores of `BENCH_LARGE=1`.
const LARGE: usize = 100_000;

/// Share of one core that `per_sweep` of CPU for each of `stores` stores
/// every [`PRODUCTION_INTERVAL`] keeps busy, in percent.
fn core_share_at_production_interval(per_sweep: Duration, stores: usize) -> f64 {
    100.0 * per_sweep.as_secs_f64() * stores as f64 / PRODUCTION_INTERVAL.as_secs_f64()
}

fn large() -> bool {
    std::env::var("BENCH_LARGE").is_ok_and(|value| !value.is_empty() && value != "0")
}

/// A fake platform serving the stores of one run, kept alive for the run.
enum Fake {
    // Held, not read: the fake server stops when its handle is dropped.
    Li(#[allow(dead_code)] FakeLi),
    Nuvemshop(FakeNuvemshop),
}

impl Fake {
    /// 429s answered so far, over every store (`None` for LI's fake, which
    /// does not meter).
    fn throttled(&self) -> Option<u64> {
        match self {
            Self::Li(_) => None,
            Self::Nuvemshop(fake) => Some(fake.stats().values().map(|s| s.throttled).sum()),
        }
    }
}

/// The fake LI with `stores` scripted stores, and their configuration.
fn li_stores(
    runtime: &tokio::runtime::Runtime,
    stores: usize,
    interval: Duration,
    changes: &Arc<AtomicU64>,
) -> Result<(Fake, String)> {
    let li = runtime.block_on(FakeLi::start())?;
    li.use_system_clock();
    li.record_requests(false);
    let interval_text = format!("{}ms", interval.as_millis());
    let overlap_text = format!("{}ms", 2 * interval.as_millis());
    let mut config = String::new();
    for index in 0..stores {
        let key = format!("bench-chave-{index:05}");
        let store = li.add_store(StoreAuth::api_key(&key, common::APPLICATION_KEY));
        let mut script = Script {
            open: VecDeque::new(),
            created: 0,
            store_index: index,
        };
        for h in 0..HISTORY {
            script.new_order(&store, h % (STEPS.len() - 1));
        }
        arm(&store, Arc::new(Mutex::new(script)), changes.clone());
        config.push_str(&li_store(
            &format!("s{index:05}"),
            &li.base_url(),
            &key,
            &interval_text,
            &format!("overlap = \"{overlap_text}\""),
        ));
    }
    Ok((Fake::Li(li), config))
}

/// The fake Nuvemshop with `stores` scripted stores (each with Nuvemshop's
/// standard bucket, 40 leaking 2/s), and their configuration.
fn nuvemshop_stores(
    runtime: &tokio::runtime::Runtime,
    stores: usize,
    interval: Duration,
    changes: &Arc<AtomicU64>,
) -> Result<(Fake, String)> {
    let fake = runtime.block_on(FakeNuvemshop::start())?;
    fake.use_system_clock();
    fake.record_requests(false);
    let interval_text = format!("{}ms", interval.as_millis());
    // The same window as LI's: about two cycles of changes per list call.
    let overlap = format!("overlap = \"{}ms\"", 2 * interval.as_millis());
    let mut config = String::new();
    for index in 0..stores {
        let store_id = 5_000_000 + index as u64;
        let token = format!("bench-token-{index:05}");
        let store = fake.add_store(StoreCredentials::new(store_id, &token, "bench-app-secret"));
        let mut script = NsScript {
            open: VecDeque::new(),
            created: 0,
            store_index: index,
        };
        for h in 0..HISTORY {
            script.new_order(&store, h % (NS_STEPS.len() - 1));
        }
        arm_ns(&store, Arc::new(Mutex::new(script)), changes.clone());
        config.push_str(&nuvemshop_store(
            &format!("n{index:05}"),
            &fake.origin(),
            &fake.base_url(),
            store_id,
            &token,
            &interval_text,
            &overlap,
        ));
    }
    Ok((Fake::Nuvemshop(fake), config))
}

fn run_one(
    runtime: &tokio::runtime::Runtime,
    platform: Platform,
    stores: usize,
    cycles: u64,
    work: &std::path::Path,
) -> Result<Row> {
    let interval = interval_for(stores);
    let provider = runtime.block_on(FakeProvider::start(Provider::EvolutionApi))?;
    let changes = Arc::new(AtomicU64::new(0));
    let (fake, stores_config) = match platform {
        Platform::LojaIntegrada => li_stores(runtime, stores, interval, &changes)?,
        Platform::Nuvemshop => nuvemshop_stores(runtime, stores, interval, &changes)?,
    };
    let mut config = daemon_section(work, "")?;
    config.push_str(&evolution_channel(&provider.url(), None));
    config.push_str(&stores_config);

    let mut daemon = Daemon::start(work, &config, &[POLL_COMPLETE, POLL_FAILED, QUEUED, ERROR])?;
    let ready = daemon.await_ready(Duration::from_secs(600))?;
    let startup = ready - daemon.spawned_at;
    let rss_at_ready_kib = proc::sample(daemon.pid())?.rss_kib;
    let n = stores as u64;
    let patience = Duration::from_secs(600);
    // Every store's first sweep (the seed: history recorded, nothing sent)
    // and one ordinary sweep, before measuring.
    daemon.log.wait_for(POLL_COMPLETE, 2 * n, patience)?;

    let pid = daemon.pid();
    let cpu0 = proc::cpu_time(pid)?;
    let own0 = proc::own_cpu_time()?;
    let sweeps0 = daemon.log.count(POLL_COMPLETE)?;
    let queued0 = daemon.log.count(QUEUED)?;
    let failed0 = daemon.log.count(POLL_FAILED)?;
    let errors0 = daemon.log.count(ERROR)?;
    let changes0 = changes.load(Ordering::Relaxed);
    let throttled0 = fake.throttled();
    let started = Instant::now();
    daemon
        .log
        .wait_for(POLL_COMPLETE, sweeps0 + cycles * n, patience)?;
    let wall = started.elapsed();
    let cpu1 = proc::cpu_time(pid)?;
    let own1 = proc::own_cpu_time()?;
    let sweeps1 = daemon.log.count(POLL_COMPLETE)?;
    let changes1 = changes.load(Ordering::Relaxed);
    let end = proc::sample(pid)?;
    let throttled1 = fake.throttled();
    let row = Row {
        platform,
        stores,
        interval,
        cycles,
        startup,
        daemon_cpu: cpu1.saturating_sub(cpu0),
        fake_cpu: own1.saturating_sub(own0),
        wall,
        sweeps: sweeps1 - sweeps0,
        changes: changes1 - changes0,
        queued: daemon.log.count(QUEUED)? - queued0,
        failed: daemon.log.count(POLL_FAILED)? - failed0,
        errors: daemon.log.count(ERROR)? - errors0,
        end,
        rss_at_ready_kib,
        throttled: throttled0
            .zip(throttled1)
            .map(|(before, after)| (after - before, after)),
    };
    daemon.stop(Duration::from_secs(120))?;
    drop(fake);
    drop(provider);
    Ok(row)
}

fn main() -> Result<()> {
    let started = Instant::now();
    let quick = quick();
    let default_stores = if quick { "100,1000" } else { "100,1000,10000" };
    let mut stores: Vec<usize> = std::env::var("ARAUTO_BENCH_STORES")
        .unwrap_or_else(|_| default_stores.to_owned())
        .split(',')
        .map(|n| {
            n.trim()
                .parse()
                .context("ARAUTO_BENCH_STORES: a list like 100,1000")
        })
        .collect::<Result<_>>()?;
    if large() && !stores.contains(&LARGE) {
        stores.push(LARGE);
    }
    let platforms_listed = std::env::var("ARAUTO_BENCH_PLATFORMS").ok();
    let platforms: Vec<Platform> = platforms_listed
        .as_deref()
        .unwrap_or("loja-integrada,nuvemshop")
        .split(',')
        .map(Platform::parse)
        .collect::<Result<_>>()?;
    // By default Nuvemshop runs next to LI up to 1,000 stores (issue 14's
    // figure); 10,000 only when asked for by ARAUTO_BENCH_PLATFORMS.
    let runs: Vec<(usize, Platform)> = stores
        .iter()
        .flat_map(|&n| platforms.iter().map(move |&platform| (n, platform)))
        .filter(|&(n, platform)| {
            (platforms_listed.is_some() && n < LARGE)
                || platform == Platform::LojaIntegrada
                || n <= 1_000
        })
        .collect();
    let cycles = common::env_usize("ARAUTO_BENCH_CYCLES", if quick { 1 } else { 2 })?.max(1) as u64;
    let root = common::work_root()?;
    print_header(
        "3. Poll cost per store (issues 4 and 14)",
        &[
            "real `arauto run` per N and platform (own process), real loja-integrada.wasm / nuvemshop.wasm, fake LI / fake Nuvemshop on 127.0.0.1",
            &if idle() {
                format!(
                    "each store: {HISTORY} past orders; IDLE (ARAUTO_BENCH_IDLE=1): no store changes, every sweep finds nothing new:"
                )
            } else {
                format!(
                    "each store: {HISTORY} past orders; every sweep sees 2 changed orders (1 new, 1 moved one status on), 2 jobs queued:"
                )
            },
            "  LI = 1 search + 2 detail calls; Nuvemshop = 1 list call (its rows are full orders), each store with Nuvemshop's bucket (40, leaking 2/s)",
            "429s = answers 429 from the fake in the measured cycles (whole run in brackets); LI's fake does not meter (–)",
            "CPU = user+system time of the daemon process (/proc/<pid>/stat) over the measured cycles, not wall time",
            "fake = this process (fake LI or fake Nuvemshop + fake WhatsApp gateway + log reader), measured over the same window",
            "peak RSS = the daemon's VmHWM (start-up included); one shared WhatsApp channel at its default 20 s pacing",
        ],
        &root,
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    {
        // Compile the plugins into the shared cache once, outside the measurements.
        let dir = common::work_dir("poll-warm")?;
        let (li, provider) = runtime.block_on(async {
            anyhow::Ok((
                FakeLi::start().await?,
                FakeProvider::start(Provider::EvolutionApi).await?,
            ))
        })?;
        let nuvemshop = runtime.block_on(FakeNuvemshop::start())?;
        nuvemshop.add_store(StoreCredentials::new(1, "k", "s"));
        let mut config = daemon_section(dir.path(), "")?;
        config.push_str(&evolution_channel(&provider.url(), None));
        config.push_str(&li_store("warm", &li.base_url(), "k", "1h", ""));
        config.push_str(&nuvemshop_store(
            "warm-ns",
            &nuvemshop.origin(),
            &nuvemshop.base_url(),
            1,
            "k",
            "1h",
            "",
        ));
        warm_plugin_cache(dir.path(), &config)?;
    }

    println!(
        "{:<14} {:>7} {:>8} {:>6} {:>11} {:>11} {:>10} {:>7} {:>9} {:>10} {:>10} {:>9} {:>6} {:>9} {:>9}",
        "platform",
        "stores",
        "interval",
        "cycles",
        "CPU/cycle",
        "CPU/store",
        "fake/cycle",
        "busy",
        "cycle",
        "peak RSS",
        "RSS end",
        "RSS/store",
        "fds",
        "start-up",
        "429s"
    );
    let mut rows = Vec::new();
    for (n, platform) in runs {
        let dir = common::work_dir(&format!("poll-{}-{n}-", platform.name()))?;
        // The large row measures one cycle: two would add 4 minutes for
        // the same per-sweep figure.
        let row_cycles = if n >= LARGE { 1 } else { cycles };
        let row = run_one(&runtime, platform, n, row_cycles, dir.path())
            .with_context(|| format!("poll cost with {n} {} stores", platform.name()))?;
        println!(
            "{:<14} {:>7} {:>8} {:>6} {:>11} {:>11} {:>10} {:>6.2}c {:>9} {:>10} {:>10} {:>9} {:>6} {:>9} {:>9}",
            row.platform.name(),
            row.stores,
            human(row.interval),
            row.cycles,
            human(row.cpu_per_cycle()),
            human(row.cpu_per_store()),
            human(row.fake_cpu.div_f64(row.cycles as f64)),
            row.daemon_cpu.as_secs_f64() / row.wall.as_secs_f64(),
            human(row.wall.div_f64(row.cycles as f64)),
            mib(row.end.peak_rss_kib),
            mib(row.end.rss_kib),
            format!("{:.1} KiB", row.end.rss_kib as f64 / row.stores as f64),
            row.end.fds,
            human(row.startup),
            row.throttled.map_or_else(
                || "–".to_owned(),
                |(measured, all)| format!("{measured} ({all})")
            ),
        );
        rows.push(row);
    }
    println!();
    for row in &rows {
        let sweeps = row.sweeps.max(1) as f64;
        println!(
            "   {} N={:<6} {} sweeps measured: {:.2} changed orders and {:.2} jobs queued per sweep; {} failed sweeps, {} error lines; RSS at READY {}, {} threads at end",
            row.platform.name(),
            row.stores,
            row.sweeps,
            row.changes as f64 / sweeps,
            row.queued as f64 / sweeps,
            row.failed,
            row.errors,
            mib(row.rss_at_ready_kib),
            row.end.threads,
        );
        println!(
            "   {} N={:<6} at a 5-minute poll interval: arauto {:.1} % of one core, the fake {:.1} % (arauto's CPU per sweep is {:.2}× the fake's: {} against {})",
            row.platform.name(),
            row.stores,
            core_share_at_production_interval(row.cpu_per_store(), row.stores),
            core_share_at_production_interval(row.fake_cpu_per_store(), row.stores),
            row.cpu_per_store().as_secs_f64() / row.fake_cpu_per_store().as_secs_f64().max(1e-9),
            human(row.cpu_per_store()),
            human(row.fake_cpu_per_store()),
        );
        if let Some((measured, all)) = row.throttled {
            println!(
                "   {} N={:<6} the fake answered 429 {measured} times in steady state ({all} over the whole run){}",
                row.platform.name(),
                row.stores,
                if measured == 0 {
                    ""
                } else {
                    ": the connector outran the bucket"
                }
            );
        }
        if row.wall.as_secs_f64() > 1.2 * row.interval.as_secs_f64() * row.cycles as f64 {
            println!(
                "   {} N={:<6} behind schedule: a cycle took {} for a {} interval (CPU-bound on this machine)",
                row.platform.name(),
                row.stores,
                human(row.wall.div_f64(row.cycles as f64)),
                human(row.interval)
            );
        }
    }
    for platform in platforms {
        let rows: Vec<&Row> = rows.iter().filter(|row| row.platform == platform).collect();
        let Some(first) = rows.first() else { continue };
        for row in rows.iter().skip(1) {
            let added = (row.stores - first.stores).max(1) as f64;
            println!(
                "   {} growth {} → {} stores: CPU per store ×{:.2}; each added store costs {:.0} KiB RSS ({:.0} KiB at READY) and {:.2} fds; start-up +{:.2} ms per store",
                platform.name(),
                first.stores,
                row.stores,
                row.cpu_per_store().as_secs_f64() / first.cpu_per_store().as_secs_f64(),
                (row.end.rss_kib as f64 - first.end.rss_kib as f64) / added,
                (row.rss_at_ready_kib as f64 - first.rss_at_ready_kib as f64) / added,
                (row.end.fds as f64 - first.end.fds as f64) / added,
                (row.startup.as_secs_f64() - first.startup.as_secs_f64()) * 1e3 / added,
            );
        }
    }
    print_targets(&rows);
    println!(
        "   columns: CPU/cycle = arauto CPU to poll every store once; CPU/store = per sweep; busy = cores arauto kept busy;"
    );
    println!(
        "            cycle = wall time per cycle; fake/cycle = the fake servers' CPU for the same work"
    );
    print_footer(started);
    Ok(())
}

/// Issue 16's targets for an idle store, judged on the Loja Integrada rows
/// of this run.
fn print_targets(rows: &[Row]) {
    let li = |n: usize| {
        rows.iter()
            .find(|row| row.platform == Platform::LojaIntegrada && row.stores == n)
    };
    let verdict = |met: bool| if met { "met" } else { "missed" };
    let first = rows
        .iter()
        .find(|row| row.platform == Platform::LojaIntegrada);
    if let Some(row) = li(10_000) {
        let rss = row.rss_at_ready_kib.max(row.end.rss_kib);
        println!(
            "   target RSS at 10,000 stores ≤ 100 MiB: {} (at READY {}, after the measured cycles {})",
            verdict(rss <= 100 * 1024),
            mib(row.rss_at_ready_kib),
            mib(row.end.rss_kib),
        );
        if let Some(first) = first.filter(|first| first.stores < row.stores) {
            let per_store = (row.end.rss_kib as f64 - first.end.rss_kib as f64)
                / (row.stores - first.stores) as f64;
            println!(
                "   target ≤ 8 KiB per added store ({} → {}): {} ({per_store:.1} KiB)",
                first.stores,
                row.stores,
                verdict(per_store <= 8.0),
            );
        }
        println!(
            "   target start-up with 10,000 stores ≤ 300 ms: {} ({})",
            verdict(row.startup <= Duration::from_millis(300)),
            human(row.startup),
        );
    }
    for row in rows
        .iter()
        .filter(|row| row.platform == Platform::LojaIntegrada)
    {
        let ratio =
            row.cpu_per_store().as_secs_f64() / row.fake_cpu_per_store().as_secs_f64().max(1e-9);
        println!(
            "   target CPU per sweep ≤ 1.5× the fake's, N={}: {} ({ratio:.2}×)",
            row.stores,
            verdict(ratio <= 1.5),
        );
    }
    if let Some(row) = li(LARGE) {
        let share = core_share_at_production_interval(row.cpu_per_store(), row.stores);
        println!(
            "   target 100,000 stores every 5 minutes ≤ 20 % of one core and ≤ 800 MiB: CPU {} ({share:.1} %), memory {} (peak {})",
            verdict(share <= 20.0),
            verdict(row.end.peak_rss_kib <= 800 * 1024),
            mib(row.end.peak_rss_kib),
        );
    }
}
