//! Start-up time and memory with a large queue: `arauto run` (release) from
//! spawn to its `READY=1` on `NOTIFY_SOCKET`, and its RSS at that moment,
//! with 1,000,000 pending jobs in the state database next to the same
//! start-up with an empty queue, measured in the same run (alternating, the
//! median of several starts each).
//!
//! The jobs are written with the daemon's own job shape
//! (`arauto::job::PlannedNotification::new_job`) through the queue engine's bulk enqueue,
//! the way pollers enqueue them. Both daemons use the same configuration (one
//! store, one WhatsApp channel) and a warm compiled-plugin cache, so the
//! difference is the queue.
//!
//! `cargo bench --bench startup`. Environment: `BENCH_QUICK=1` (200,000 jobs,
//! one start each), `ARAUTO_BENCH_STARTUP_JOBS`, `ARAUTO_BENCH_STARTS`,
//! `ARAUTO_BENCH_DIR`.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use arauto::job::{PlannedNotification, QuietHoursMode};
use arauto::model::NotificationKind;
use arauto::queue::StateStore;
use arauto::queue::redb::{FILE_NAME, RedbOptions, RedbStore};
use arauto_sim::channels::{FakeProvider, Provider};
use arauto_sim::li::{FakeLi, StoreAuth};
use jiff::{SignedDuration, Timestamp};

use common::daemon::{Daemon, warm_plugin_cache};
use common::machine::{print_footer, print_header};
use common::{daemon_section, evolution_channel, human, li_store, mib, proc, quantile, quick};

/// Jobs per enqueue call while filling.
const BATCH: usize = 2_000;
/// Concurrent writers while filling (pollers of different stores).
const WRITERS: usize = 4;
/// Stores the jobs belong to.
const STORES: usize = 1_000;

/// The planned notification of job `index` (order `order` of `store`).
fn planned(store: &str, order: usize, index: usize) -> PlannedNotification {
    let now = Timestamp::now();
    PlannedNotification {
        kind: NotificationKind::OrderShipped,
        priority: 4,
        status_code: "pedido_enviado".into(),
        tracking: None,
        channel: "whatsapp".into(),
        dedupe_key: format!("{store}/{order}/order-shipped/whatsapp"),
        // Unique per job, like a hash of (kind, channel, contact, order…).
        fingerprint: format!("{index:064x}"),
        due_at: now,
        expires_at: now + SignedDuration::from_hours(24),
        quiet_hours: QuietHoursMode::Defer,
    }
}

/// Write `jobs` pending jobs into the state directory `state`.
async fn fill(state: &Path, jobs: usize) -> Result<Duration> {
    let store = RedbStore::open(state, RedbOptions::default())?;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for writer in 0..WRITERS {
        let store = store.clone();
        tasks.spawn(async move {
            let mut next = writer * BATCH;
            while next < jobs {
                let end = (next + BATCH).min(jobs);
                let batch = (next..end)
                    .map(|i| {
                        let store_id = format!("s{:05}", i % STORES);
                        let order = 100_000 + i / STORES;
                        planned(&store_id, order, i).new_job(
                            &store_id,
                            &order.to_string(),
                            &order.to_string(),
                            5,
                        )
                    })
                    .collect();
                store.enqueue(batch).await?;
                next += WRITERS * BATCH;
            }
            anyhow::Ok(())
        });
    }
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    let elapsed = started.elapsed();
    let pending = store.channel_stats("whatsapp").await?.pending;
    anyhow::ensure!(
        pending as usize == jobs,
        "expected {jobs} pending jobs, found {pending}"
    );
    store.close().await;
    Ok(elapsed)
}

#[derive(Clone, Copy, Default)]
struct Start {
    to_ready: Duration,
    cpu: Duration,
    rss_kib: u64,
    peak_kib: u64,
}

/// CPU time at the kernel's tick resolution (`/proc/<pid>/stat`).
fn cpu_text(cpu: Duration) -> String {
    if cpu.is_zero() {
        "< 1 tick".to_owned()
    } else {
        format!("{:.0} ms", cpu.as_secs_f64() * 1e3)
    }
}

fn start_once(dir: &Path, config: &str) -> Result<Start> {
    let mut daemon = Daemon::start(dir, config, &[])?;
    let ready = daemon.await_ready(Duration::from_secs(600))?;
    let at_ready = proc::sample(daemon.pid())?;
    let to_ready = ready - daemon.spawned_at;
    daemon.stop(Duration::from_secs(120))?;
    Ok(Start {
        to_ready,
        cpu: at_ready.cpu,
        rss_kib: at_ready.rss_kib,
        peak_kib: at_ready.peak_rss_kib,
    })
}

fn main() -> Result<()> {
    let started = Instant::now();
    let quick = quick();
    let jobs = common::env_usize(
        "ARAUTO_BENCH_STARTUP_JOBS",
        if quick { 200_000 } else { 1_000_000 },
    )?;
    let starts = common::env_usize("ARAUTO_BENCH_STARTS", if quick { 1 } else { 5 })?.max(1);
    let root = common::work_root()?;
    print_header(
        "4. Start-up time and RSS with a large queue (issue 8)",
        &[
            &format!(
                "`arauto run` (release) from spawn to READY=1 on NOTIFY_SOCKET, RSS (VmRSS) read at READY; median of {starts} start(s) each, alternating"
            ),
            &format!(
                "full: {jobs} pending jobs on one channel (daemon job shape, bulk enqueue, {WRITERS} writers × {BATCH} per call); baseline: empty queue"
            ),
            "same configuration (1 store, 1 channel), warm compiled-plugin cache, warm page cache",
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
    li.add_store(StoreAuth::api_key("bench-chave", common::APPLICATION_KEY));

    let empty = common::work_dir("startup-empty-")?;
    let full = common::work_dir("startup-full-")?;
    let config_for = |dir: &Path| -> Result<String> {
        let mut config = daemon_section(dir, "")?;
        config.push_str(&evolution_channel(&provider.url(), None));
        config.push_str(&li_store("s00000", &li.base_url(), "bench-chave", "5m", ""));
        Ok(config)
    };
    let empty_config = config_for(empty.path())?;
    let full_config = config_for(full.path())?;
    // Compiles the plugins into the shared cache and creates the empty database.
    warm_plugin_cache(empty.path(), &empty_config)?;

    let fill_time = runtime
        .block_on(fill(&full.path().join("state"), jobs))
        .context("filling the queue")?;
    let file_size = std::fs::metadata(full.path().join("state").join(FILE_NAME))?.len();
    println!(
        "   filled {jobs} jobs in {} ({:.0} jobs/s); database file {:.0} MiB",
        human(fill_time),
        jobs as f64 / fill_time.as_secs_f64(),
        file_size as f64 / (1024.0 * 1024.0)
    );
    println!();

    let mut empty_runs = Vec::new();
    let mut full_runs = Vec::new();
    for _ in 0..starts {
        empty_runs.push(start_once(empty.path(), &empty_config)?);
        full_runs.push(start_once(full.path(), &full_config)?);
    }

    println!(
        "{:<22} {:>12} {:>21} {:>13} {:>13} {:>13}",
        "queue", "to READY", "(min … max)", "CPU to READY", "RSS at READY", "peak RSS"
    );
    let summarize = |label: &str, runs: &[Start]| -> Start {
        let mut times: Vec<Duration> = runs.iter().map(|r| r.to_ready).collect();
        times.sort();
        let median = quantile(&times, 0.5);
        let pick = runs
            .iter()
            .find(|r| r.to_ready == median)
            .copied()
            .unwrap_or_default();
        println!(
            "{label:<22} {:>12} {:>21} {:>13} {:>13} {:>13}",
            human(median),
            format!(
                "({} … {})",
                human(times.first().copied().unwrap_or_default()),
                human(times.last().copied().unwrap_or_default())
            ),
            cpu_text(pick.cpu),
            mib(pick.rss_kib),
            mib(pick.peak_kib),
        );
        pick
    };
    let base = summarize("empty (baseline)", &empty_runs);
    let loaded = summarize(&format!("{jobs} pending"), &full_runs);
    println!();
    println!(
        "   with {jobs} pending jobs: start-up ×{:.2} ({:+.0} ms), RSS at READY {:+.1} MiB",
        loaded.to_ready.as_secs_f64() / base.to_ready.as_secs_f64(),
        (loaded.to_ready.as_secs_f64() - base.to_ready.as_secs_f64()) * 1e3,
        (loaded.rss_kib as f64 - base.rss_kib as f64) / 1024.0
    );
    drop(runtime);
    print_footer(started);
    Ok(())
}
