//! Cluster drill: three arauto nodes on a three-server NATS JetStream
//! cluster, orders moving continuously in the fake Loja Integrada; a random
//! node is SIGKILLed again and again (and restarted), a nats-server now and
//! then, and at the end one line says what it cost:
//!
//! ```text
//! kills=N lost=0 planned_twice=0 provider_repeats=K failover_max=Xs
//! ```
//!
//! # The set-up
//!
//! As the single-node drill (`tests/drill_crash.rs`): stores on the fake LI
//! (real clock) notify webhook channels on one fake receiver, which records
//! every delivery with its `webhook-id` (the job id, the idempotency key) and
//! the sending node (`X-Arauto-Node`, see `support::cluster`). Every order
//! walks the happy path — awaiting payment → paid → in preparation → shipped
//! → delivered, five notifications — and a feeder thread moves an order on
//! only once the receiver got the current notification, and opens a new
//! order whenever one finishes, so every notification is owed and changes
//! keep flowing for the whole drill.
//!
//! The main thread, from a seeded RNG (`ARAUTO_DRILL_SEED` replays the
//! timing; the seed is printed), waits a random moment, then SIGKILLs a
//! random node, measures the failover — from the kill until every store the
//! node held was polled by another node (`poll complete`) and every channel
//! it held was taken over by another node — and restarts it. Every fifth
//! kill also SIGKILLs a random nats-server first and restarts it after the
//! failover. `ARAUTO_CLUSTER_DRILL_KILLS` sets the number of node kills
//! (default 10, what CI runs; `scripts/cluster-drill.sh 100` runs a long one).
//!
//! # What the line means
//!
//! * `lost`: orders whose next notification never arrived by the end of the
//!   drain (a change that should have produced a message and did not);
//! * `planned_twice`: (order, notification) pairs carried by more than one
//!   job id — two jobs for one dedupe key;
//! * `provider_repeats`: deliveries of a job id the receiver already had
//!   (the at-least-once window: a node killed after the provider accepted a
//!   message and before the cluster recorded it sent; see
//!   `tests/drill_crash.rs`);
//! * `failover_max`: the longest failover measured.
//!
//! The test fails unless `lost=0 planned_twice=0` and failover_max ≤ 30 s.

#![cfg(test)]

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arauto_sim::channels::{Endpoint, FakeProvider, ReceivedMessage, Reply};
use arauto_sim::li::{Fault, Numero, Route};
use nix::sys::signal::Signal;
use rand::{RngExt, SeedableRng};

use support::cluster::{Cluster, await_condition};
use support::daemon::PATIENCE;
use support::system::{ChannelKnobs, Shop, StoreKnobs, field, order_for};

/// The happy path every drill order walks: (LI status, notification).
const STEPS: [(&str, &str); 5] = [
    ("aguardando_pagamento", "waiting-payment"),
    ("pedido_pago", "order-paid"),
    ("pedido_em_separacao", "order-processing"),
    ("pedido_enviado", "order-shipped"),
    ("pedido_entregue", "order-delivered"),
];

/// Stores and channels of the drill.
const STORES: usize = 6;
const CHANNELS: usize = 3;
/// Orders on their way at any time, per store.
const ORDERS_IN_FLIGHT: usize = 3;
/// Longest a node runs settled before the next kill.
const MAX_LIFE_MS: u64 = 3_000;
/// Every this many node kills, a nats-server is killed too.
const NATS_KILL_EVERY: usize = 5;
/// How long the fake LI and the fake receiver take to answer: widens the
/// windows a kill can land in (mid-poll, mid-send).
const THIRD_PARTY_LATENCY: Duration = Duration::from_millis(100);
/// How long the last orders may take to finish after the last kill.
const DRAIN: Duration = Duration::from_secs(90);
/// The failover the issue allows.
const FAILOVER_LIMIT: Duration = Duration::from_secs(30);

/// (store id, numero).
type OrderKey = (String, Numero);

/// One delivery as the receiver got it.
struct Delivery {
    job_id: String,
    order: OrderKey,
    kind: String,
}

impl Delivery {
    fn of(message: &ReceivedMessage) -> Self {
        let body: serde_json::Value = serde_json::from_str(&message.text).expect("webhook body");
        let data = &body["data"];
        let text = |v: &serde_json::Value| v.as_str().map(str::to_owned).expect("a string field");
        Self {
            job_id: text(&data["job_id"]),
            order: (
                text(&data["store"]["id"]),
                text(&data["order"]["id"])
                    .parse()
                    .expect("numeric order id"),
            ),
            kind: text(&data["notification"]),
        }
    }
}

/// What the shop did and what the receiver got.
#[derive(Default)]
struct Ledger {
    /// Index into [`STEPS`] of each order's current status.
    step: BTreeMap<OrderKey, usize>,
    /// Orders whose last notification arrived.
    complete: BTreeSet<OrderKey>,
    /// Deliveries per job id.
    per_job: BTreeMap<String, usize>,
    /// Job ids seen per (order, notification).
    jobs_per_notification: BTreeMap<(OrderKey, String), BTreeSet<String>>,
    /// Open new orders as old ones finish.
    feeding: bool,
    next_serial: u32,
}

impl Ledger {
    fn open_order(&mut self, shop: &Shop) {
        self.next_serial += 1;
        let numero =
            shop.li
                .create_order(order_for("Cliente", self.next_serial % 10_000, STEPS[0].0));
        self.step.insert((shop.id.clone(), numero), 0);
    }

    /// Record a delivery; when it is the one the order's status called for,
    /// move the order on (or open a new one in its place).
    fn delivered(&mut self, delivery: Delivery, shops: &[Shop]) {
        *self.per_job.entry(delivery.job_id.clone()).or_insert(0) += 1;
        let jobs = self
            .jobs_per_notification
            .entry((delivery.order.clone(), delivery.kind.clone()))
            .or_default();
        let first = jobs.is_empty();
        jobs.insert(delivery.job_id);
        if !first {
            return;
        }
        let Some(step) = self.step.get(&delivery.order).copied() else {
            return;
        };
        if STEPS[step].1 != delivery.kind {
            return;
        }
        let (store, numero) = &delivery.order;
        let shop = shops.iter().find(|s| &s.id == store).expect("the shop");
        match STEPS.get(step + 1) {
            Some((status, _)) => {
                let status = *status;
                shop.li
                    .modify(*numero, |order| {
                        order.status = status.to_owned();
                        if status == "pedido_enviado"
                            && let Some(shipment) = order.shipments.first_mut()
                        {
                            shipment.tracking = Some(format!("QB{numero:09}BR"));
                        }
                    })
                    .expect("move the order on");
                self.step.insert(delivery.order.clone(), step + 1);
            }
            None => {
                self.complete.insert(delivery.order.clone());
                if self.feeding {
                    self.open_order(shop);
                }
            }
        }
    }

    fn unfinished(&self) -> Vec<String> {
        self.step
            .iter()
            .filter(|(order, _)| !self.complete.contains(*order))
            .map(|((store, numero), step)| format!("{store}/{numero} at {}", STEPS[*step].0))
            .collect()
    }
}

/// The shared ledger, its change signal and the feeder's stop flag.
struct Shared {
    ledger: Mutex<Ledger>,
    changed: Condvar,
    stop: AtomicBool,
}

impl Shared {
    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The feeder: turns each delivery into the shop's next move.
fn feed(hook: &FakeProvider, shops: &[Shop], shared: &Shared) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("feeder runtime");
    let mut seen = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        // Wake for a delivery, or now and then to notice the stop flag.
        let _ = runtime.block_on(async {
            tokio::time::timeout(Duration::from_millis(200), hook.wait_for_received(seen + 1)).await
        });
        let received = hook.received();
        if received.len() == seen {
            continue;
        }
        let mut ledger = shared.ledger();
        for message in &received[seen..] {
            ledger.delivered(Delivery::of(message), shops);
        }
        seen = received.len();
        drop(ledger);
        shared.changed.notify_all();
    }
}

/// Raises the feeder's stop flag when dropped (also while unwinding).
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// Wait until every store in `stores` logged `poll complete` and every
/// channel in `channels` logged `took over channel …` on a running node
/// other than `killed`, counting only lines after `marks` (each node's log
/// length at the kill).
fn await_failover(
    cluster: &Cluster,
    killed: usize,
    marks: &[usize],
    stores: &[String],
    channels: &[String],
) {
    let moved = |line: &str| -> Option<String> {
        if line.contains("poll complete") {
            return field(line, "store").map(|s| format!("store {s}"));
        }
        channels
            .iter()
            .find(|c| line.contains(&format!("took over {c} ")))
            .cloned()
    };
    await_condition(
        FAILOVER_LIMIT,
        || {
            format!(
                "node {} was killed holding {stores:?} and {channels:?}; not all moved: {}",
                cluster.nodes[killed].name,
                cluster.ownership_report()
            )
        },
        || {
            let mut done: BTreeSet<String> = BTreeSet::new();
            for (i, node) in cluster.nodes.iter().enumerate() {
                if i == killed || !node.daemon.is_running() {
                    continue;
                }
                let lines = node.daemon.stderr.lines();
                for line in lines.get(marks[i]..).unwrap_or_default() {
                    if let Some(resource) = moved(line) {
                        done.insert(resource);
                    }
                }
            }
            stores.iter().chain(channels).all(|r| done.contains(r))
        },
    );
}

/// In a `nats_cluster` module like every cluster test: `make test` runs
/// them last (see the Makefile).
mod nats_cluster {
    #[test]
    fn drill() {
        super::drill();
    }
}

fn drill() {
    let kills = env_number("ARAUTO_CLUSTER_DRILL_KILLS").unwrap_or(10) as usize;
    let seed = env_number("ARAUTO_DRILL_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    });
    eprintln!(
        "cluster drill: {kills} node kills, seed {seed} (ARAUTO_DRILL_SEED={seed} replays the kill timing)"
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    let mut cluster = Cluster::new(3, STORES, CHANNELS);
    cluster.world.li.use_system_clock();
    cluster.hook.set_default(
        Endpoint::Send,
        Reply::delayed(THIRD_PARTY_LATENCY, Reply::success()),
    );
    for shop in &cluster.shops {
        for route in [Route::Search, Route::Detail] {
            shop.li
                .fail(route, Fault::Delay(THIRD_PARTY_LATENCY), usize::MAX);
        }
    }
    cluster.store_knobs = || StoreKnobs {
        sandbox: "requests_per_minute = 6000".into(),
        settings: "overlap = \"30s\"".into(),
        ..StoreKnobs::default()
    };
    cluster.channel_knobs = || ChannelKnobs {
        // Kills spend attempts (counted at claim); never let them dead-letter a job.
        max_attempts: 1_000,
        ..ChannelKnobs::default()
    };
    for name in ["a", "b", "c"] {
        cluster.add_node(name);
    }
    cluster.await_settled();

    let shared = Shared {
        ledger: Mutex::new(Ledger {
            feeding: true,
            ..Ledger::default()
        }),
        changed: Condvar::new(),
        stop: AtomicBool::new(false),
    };
    {
        let mut ledger = shared.ledger();
        for shop in &cluster.shops {
            for _ in 0..ORDERS_IN_FLIGHT {
                ledger.open_order(shop);
            }
        }
    }

    let started = Instant::now();
    let mut failovers: Vec<Duration> = Vec::new();
    let mut nats_kills = 0;
    let shops = std::mem::take(&mut cluster.shops);
    let hook_shops = &shops;
    let stores: Vec<String> = shops.iter().map(|s| format!("store {}", s.id)).collect();
    let lost = std::thread::scope(|scope| {
        let hook = &cluster.hook;
        let feeder = scope.spawn(|| feed(hook, hook_shops, &shared));
        // A failed wait below panics out of this closure; the scope then
        // joins the feeder, which must stop or the drill would hang.
        let _stop_feeder = StopOnDrop(&shared.stop);
        for kill in 1..=kills {
            std::thread::sleep(Duration::from_millis(rng.random_range(0..=MAX_LIFE_MS)));
            let victim = rng.random_range(0..cluster.nodes.len());
            let nats_victim =
                (kill % NATS_KILL_EVERY == 0).then(|| rng.random_range(0..cluster.nats.len()));
            if let Some(server) = nats_victim {
                cluster.nats.kill_and_await_leader(server);
                nats_kills += 1;
            }
            // What the victim holds now (its own log), and where every
            // node's log stands: later lines show where things moved.
            let held_stores: Vec<String> = stores
                .iter()
                .filter(|s| cluster.nodes[victim].holds(s))
                .cloned()
                .collect();
            let held_channels: Vec<String> = cluster
                .channels
                .iter()
                .map(|c| format!("channel {c}"))
                .filter(|c| cluster.nodes[victim].holds(c))
                .collect();
            let marks: Vec<usize> = cluster
                .nodes
                .iter()
                .map(|n| n.daemon.stderr.len())
                .collect();
            let killed_at = Instant::now();
            cluster.nodes[victim].daemon.kill();
            await_failover(&cluster, victim, &marks, &held_stores, &held_channels);
            failovers.push(killed_at.elapsed());
            if let Some(server) = nats_victim {
                cluster.nats.restart(server);
            }
            let daemon = &mut cluster.nodes[victim].daemon;
            daemon.restart();
            daemon.await_notice("READY=1");
        }

        // The storm is over: let the orders on their way finish.
        shared.ledger().feeding = false;
        let deadline = Instant::now() + DRAIN;
        let mut ledger = shared.ledger();
        while !ledger.unfinished().is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            ledger = shared
                .changed
                .wait_timeout(ledger, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        let lost = ledger.unfinished();
        drop(ledger);
        shared.stop.store(true, Ordering::Relaxed);
        if let Err(panic) = feeder.join() {
            std::panic::resume_unwind(panic);
        }
        lost
    });
    for node in &mut cluster.nodes {
        node.daemon.signal(Signal::SIGTERM);
        assert!(
            node.daemon.wait_exit(PATIENCE).success(),
            "a clean final stop of node {}",
            node.name
        );
    }

    let ledger = shared.ledger();
    let planned_twice: Vec<_> = ledger
        .jobs_per_notification
        .iter()
        .filter(|(_, jobs)| jobs.len() > 1)
        .collect();
    let deliveries: usize = ledger.per_job.values().sum();
    let provider_repeats = deliveries - ledger.per_job.len();
    let failover_max = failovers.iter().max().copied().unwrap_or_default();
    eprintln!(
        "cluster drill: {kills} node kills and {nats_kills} nats-server kills in {:.1}s; {} orders, {deliveries} deliveries",
        started.elapsed().as_secs_f64(),
        ledger.step.len(),
    );
    // Why an order can stop: its job skipped because the dispatcher did not
    // find the order's record (see the lead's notes on issue 15).
    let skipped_unfollowed: usize = cluster
        .nodes
        .iter()
        .flat_map(|n| n.daemon.all_logs())
        .filter(|line| line.contains("skipped: the order is no longer followed"))
        .count();
    if skipped_unfollowed > 0 {
        eprintln!(
            "cluster drill: {skipped_unfollowed} jobs skipped as \"the order is no longer followed\" (no order record when dispatched)"
        );
    }
    // The result line, on a line of its own (scripts/cluster-drill.sh prints
    // it as its last line).
    println!(
        "\nkills={kills} lost={} planned_twice={} provider_repeats={provider_repeats} failover_max={:.1}s",
        lost.len(),
        planned_twice.len(),
        failover_max.as_secs_f64()
    );
    assert!(
        lost.is_empty(),
        "orders never finished (a lost change or message): {lost:?}"
    );
    assert!(
        planned_twice.is_empty(),
        "notifications carried by more than one job: {planned_twice:?}"
    );
    assert!(
        failover_max <= FAILOVER_LIMIT,
        "a failover took {failover_max:?}, more than {FAILOVER_LIMIT:?}"
    );
}
