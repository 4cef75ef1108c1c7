//! Peer benchmark: what one delivered message costs arauto, next to what it
//! costs Apprise, the Python library a sysadmin would otherwise script
//! (issue 16).
//!
//! The same 2,000 order-paid events go to ONE local HTTP receiver (the fake
//! webhook receiver of `arauto-sim`, in this process) two ways:
//!
//! * **arauto**, the whole daemon (`arauto run`, release): a fake Loja
//!   Integrada store holds 2,000 orders awaiting payment; once the first
//!   sweep has recorded them as history, all 2,000 move to `pedido_pago` at
//!   once, and the daemon polls (real `loja-integrada.wasm`: search pages and
//!   one detail read per changed order), decides, commits, claims, renders,
//!   signs and POSTs through the real `webhook.wasm` on an unpaced channel,
//!   and records each outcome. Measured from the change to the 2,000th POST.
//! * **Apprise** (`json://`, pinned [`APPRISE_VERSION`], installed by this
//!   benchmark with pip into a virtualenv under `target/`), one Python process
//!   calling `Apprise.notify(title, body)` once per event with the text arauto
//!   would have sent. Measured around the send loop (interpreter start-up and
//!   imports excluded, as the daemon's start-up is).
//!
//! Rounds alternate (arauto, Apprise, arauto, …) so a disturbance of the
//! shared machine hits both; each figure is the median of [`ROUNDS`]. CPU is
//! user + system time of every thread of the measured process (the
//! receiver's own CPU is counted for neither); peak RSS is the process's
//! high-water mark.
//!
//! `cargo bench --bench peer`. Environment: `ARAUTO_BENCH_EVENTS` (default
//! 2,000; `BENCH_QUICK=1`: 500), `ARAUTO_BENCH_DIR`, `ARAUTO_BENCH_PYTHON`
//! (default `python3`: the interpreter the virtualenv is made from),
//! `ARAUTO_BENCH_PERF=<file>` (profile the daemon's side with `perf record
//! --call-graph dwarf`; build with `CARGO_PROFILE_RELEASE_DEBUG=1
//! CARGO_PROFILE_RELEASE_STRIP=false` for symbols and line tables),
//! `ARAUTO_BENCH_IN_FLIGHT=<n>` (the channel's `in_flight`, to compare).
//!
//! Besides CPU and messages/s, each arauto round reports when the daemon
//! had queued the last job (the connector's reading of the burst done):
//! when that is close to the last POST, the reading sets the pace, not the
//! sending.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use arauto_sim::channels::{FakeProvider, Provider};
use arauto_sim::li::{Customer, FakeLi, Numero, Order, StoreAuth};

use common::daemon::{Daemon, warm_plugin_cache};
use common::machine::{print_footer, print_header};
use common::{daemon_section, quick};

/// The Apprise release measured (PyPI); pinned so runs compare.
const APPRISE_VERSION: &str = "1.9.3";
/// Alternating rounds per side; the median is reported.
const ROUNDS: usize = 3;
/// The daemon polls this often; a burst is read by one sweep either way.
const POLL_INTERVAL: &str = "1s";
/// A Standard Webhooks secret (24 bytes) for the benchmark channel only.
const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// How long one side may take to deliver every event before the run fails.
const PATIENCE: Duration = Duration::from_secs(600);
/// Targets of issue 16: arauto's CPU per message at most this share of
/// Apprise's, and its messages/s at least Apprise's.
const CPU_TARGET: f64 = 0.4;

/// What one round of one side measured.
#[derive(Clone, Copy, Debug, Default)]
struct Round {
    cpu: Duration,
    wall: Duration,
    /// From the change until the last job was queued (arauto only).
    queued: Option<Duration>,
    peak_rss_kib: u64,
    messages: usize,
}

impl Round {
    fn cpu_per_message_ms(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e3 / self.messages.max(1) as f64
    }

    fn per_second(&self) -> f64 {
        self.messages as f64 / self.wall.as_secs_f64().max(f64::EPSILON)
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    common::quantile(&values, 0.5)
}

/// The Python inside the benchmark's virtualenv with Apprise installed:
/// `target/apprise-venv-<version>`, made (once) with `python3 -m venv` and
/// `pip install apprise==<version>` from PyPI.
fn apprise_python() -> Result<PathBuf> {
    let venv = common::repo_root().join(format!("target/apprise-venv-{APPRISE_VERSION}"));
    let python = venv.join("bin/python");
    let installed = || {
        Command::new(&python)
            .args(["-c", "import apprise; print(apprise.__version__)"])
            .output()
            .is_ok_and(|out| {
                out.status.success()
                    && String::from_utf8_lossy(&out.stdout).trim() == APPRISE_VERSION
            })
    };
    if installed() {
        return Ok(python);
    }
    let base = std::env::var("ARAUTO_BENCH_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let status = Command::new(&base)
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .with_context(|| format!("running {base} -m venv {}", venv.display()))?;
    ensure!(
        status.success(),
        "{base} -m venv {} failed ({status})",
        venv.display()
    );
    let status = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .arg(format!("apprise=={APPRISE_VERSION}"))
        .status()
        .context("running pip install apprise")?;
    ensure!(
        status.success(),
        "pip install apprise=={APPRISE_VERSION} failed ({status})"
    );
    ensure!(
        installed(),
        "apprise {APPRISE_VERSION} is not importable from {}",
        python.display()
    );
    Ok(python)
}

/// The Apprise side: reads one `{"title", "body"}` per line, notifies each
/// through `json://`, and prints what it measured as one JSON line.
const APPRISE_DRIVER: &str = r#"
import json, resource, sys, time
import apprise
url, events_path = sys.argv[1], sys.argv[2]
events = [json.loads(line) for line in open(events_path, encoding="utf-8")]
notifier = apprise.Apprise()
if not notifier.add(url):
    sys.exit("apprise refused the URL " + url)
wall, cpu = time.perf_counter(), time.process_time()
for event in events:
    if not notifier.notify(title=event["title"], body=event["body"]):
        sys.exit("apprise failed to deliver " + event["title"])
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"cpu": cpu, "wall": wall, "peak_rss_kib": usage.ru_maxrss, "messages": len(events)}))
"#;

/// The order-paid message arauto's default pt-BR template renders for these
/// orders (one item, no shipping line), so both sides carry the same text.
fn event_text(number: u64) -> (String, String) {
    (
        format!("Pedido #{number}: pagamento aprovado"),
        format!(
            "Oba, Cliente! 🎉\n\nO pagamento do seu pedido *#{number}* foi aprovado. Agora é com a gente: já vamos preparar tudo com carinho.\n\n*Resumo do pedido*\n• 1x Produto de teste — R$ 100,00\n\n*Total:* R$ 100,00\n\nAvisaremos você assim que o pedido for enviado."
        ),
    )
}

fn apprise_round(
    python: &Path,
    dir: &Path,
    receiver: &FakeProvider,
    runtime: &tokio::runtime::Runtime,
    events: usize,
    expected_total: usize,
) -> Result<Round> {
    let driver = dir.join("apprise_driver.py");
    std::fs::write(&driver, APPRISE_DRIVER)?;
    let events_path = dir.join("events.jsonl");
    let mut lines = String::new();
    for i in 0..events {
        let (title, body) = event_text(1000 + i as u64);
        lines.push_str(&serde_json::json!({ "title": title, "body": body }).to_string());
        lines.push('\n');
    }
    std::fs::write(&events_path, lines)?;
    let url = format!("json://{}/hooks/apprise", receiver.addr());
    let output = Command::new(python)
        .arg(&driver)
        .arg(&url)
        .arg(&events_path)
        .output()
        .context("running the Apprise driver")?;
    if !output.status.success() {
        bail!(
            "the Apprise driver failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "unreadable Apprise report {:?}",
            String::from_utf8_lossy(&output.stdout)
        )
    })?;
    let number = |key: &str| {
        report
            .get(key)
            .and_then(serde_json::Value::as_f64)
            .with_context(|| format!("no {key:?} in the Apprise report {report}"))
    };
    let received = runtime.block_on(async {
        tokio::time::timeout(PATIENCE, receiver.wait_for_received(expected_total)).await
    });
    ensure!(
        received.is_ok(),
        "the receiver did not get Apprise's {events} POSTs"
    );
    Ok(Round {
        cpu: Duration::from_secs_f64(number("cpu")?),
        wall: Duration::from_secs_f64(number("wall")?),
        queued: None,
        peak_rss_kib: number("peak_rss_kib")? as u64,
        messages: number("messages")? as usize,
    })
}

/// The daemon's configuration: one LI store, one unpaced webhook channel.
fn arauto_config(dir: &Path, li_url: &str, receiver_url: &str) -> Result<String> {
    let mut config = daemon_section(dir, "")?;
    let in_flight = match std::env::var("ARAUTO_BENCH_IN_FLIGHT") {
        Ok(n) => format!(
            "in_flight = {}\n",
            n.trim()
                .parse::<u32>()
                .with_context(|| format!("ARAUTO_BENCH_IN_FLIGHT={n:?} is not a number"))?
        ),
        Err(_) => String::new(),
    };
    config.push_str(&format!(
        r#"
[channels.hook]
plugin = "webhook"
{in_flight}[channels.hook.sandbox]
allowed_hosts = ["{receiver_url}"]
allow_private_addresses = true
[channels.hook.settings]
url = "{receiver_url}/hooks/arauto"
secret = "{WEBHOOK_SECRET}"

[stores.loja]
platform = "loja-integrada"
poll_interval = "{POLL_INTERVAL}"
channels = ["hook"]
[stores.loja.sandbox]
allowed_hosts = ["{li_url}"]
allow_private_addresses = true
# The fake has no budget; LI's 90 a minute would make this a rate-limit test.
requests_per_minute = 1000000
[stores.loja.settings]
api_key = "bench-chave"
application_key = "{}"
base_url = "{li_url}"
"#,
        common::APPLICATION_KEY
    ));
    Ok(config)
}

/// With `ARAUTO_BENCH_PERF=<file>`, `perf record` samples the daemon from
/// the change to the last POST of each arauto round (the last round's
/// profile stays in `<file>`; read it with `perf report -i <file>`). This is
/// how "Where the cost goes: a message" in docs/BENCHMARKS.md was measured.
fn start_profiler(pid: u32) -> Result<Option<std::process::Child>> {
    let Some(output) = std::env::var_os("ARAUTO_BENCH_PERF") else {
        return Ok(None);
    };
    let child = Command::new("perf")
        .args([
            "record",
            "--quiet",
            "-F",
            "999",
            "--call-graph",
            "dwarf,16384",
            "-o",
        ])
        .arg(&output)
        .args(["-p", &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .spawn()
        .context("running perf record (ARAUTO_BENCH_PERF is set)")?;
    // perf attaches asynchronously; its first samples may miss the first
    // milliseconds of the round, which the CPU figures do not depend on.
    Ok(Some(child))
}

fn stop_profiler(mut profiler: std::process::Child) -> Result<()> {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(profiler.id()).context("perf pid")?);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).context("stopping perf")?;
    let status = profiler.wait().context("waiting for perf")?;
    // perf writes its file and then exits 130 (128 + SIGINT), or dies of
    // the SIGINT itself, depending on when the signal lands.
    ensure!(
        status.success()
            || status.code() == Some(130)
            || std::os::unix::process::ExitStatusExt::signal(&status)
                == Some(nix::sys::signal::Signal::SIGINT as i32),
        "perf record failed ({status})"
    );
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn arauto_round(
    dir: &Path,
    config: &str,
    li: &FakeLi,
    receiver: &FakeProvider,
    runtime: &tokio::runtime::Runtime,
    events: usize,
    expected_total: usize,
) -> Result<Round> {
    let store = li.add_store(StoreAuth::api_key("bench-chave", common::APPLICATION_KEY));
    let orders: Vec<Numero> = (0..events)
        .map(|i| {
            store.create_order(
                Order::new()
                    .status("aguardando_pagamento")
                    .customer(Customer::new("Cliente de Teste").mobile(&format!("1198{i:07}"))),
            )
        })
        .collect();
    let mut daemon = Daemon::start(dir, config, &["poll complete", "notification queued"])?;
    daemon.await_ready(Duration::from_secs(120))?;
    // The first sweep records the existing orders as history (no messages).
    daemon
        .log
        .wait_for("poll complete", 1, Duration::from_secs(120))?;
    let profiler = start_profiler(daemon.pid())?;
    let before = common::proc::sample(daemon.pid())?;
    let started = Instant::now();
    for numero in &orders {
        store.set_status(*numero, "pedido_pago")?;
    }
    // When the last job was queued: the connector has read the burst.
    let tap = daemon.log.clone();
    let queued = std::thread::spawn(move || {
        tap.wait_for("notification queued", events as u64, PATIENCE)
            .ok()
            .map(|()| started.elapsed())
    });
    let received = runtime.block_on(async {
        tokio::time::timeout(PATIENCE, receiver.wait_for_received(expected_total)).await
    });
    let wall = started.elapsed();
    let queued = queued.join().ok().flatten();
    let after = common::proc::sample(daemon.pid())?;
    if let Some(profiler) = profiler {
        stop_profiler(profiler)?;
    }
    ensure!(
        received.is_ok(),
        "the receiver did not get arauto's {events} POSTs within {PATIENCE:?}; log:\n{}",
        daemon.log.tail(20)
    );
    daemon.stop(Duration::from_secs(60))?;
    Ok(Round {
        cpu: after.cpu.saturating_sub(before.cpu),
        wall,
        queued,
        peak_rss_kib: after.peak_rss_kib,
        messages: events,
    })
}

fn main() -> Result<()> {
    let started = Instant::now();
    let events =
        common::env_usize("ARAUTO_BENCH_EVENTS", if quick() { 500 } else { 2_000 })?.max(1);
    let root = common::work_root()?;
    print_header(
        "7. Per message: arauto next to Apprise (issue 16)",
        &[
            &format!(
                "the same {events} order-paid events to one local HTTP receiver; {ROUNDS} alternating rounds, medians"
            ),
            "arauto: real `arauto run` (release), fake LI store, all orders → pedido_pago at once, real loja-integrada.wasm + webhook.wasm (HMAC-signed), unpaced channel; from the change to the last POST",
            &format!(
                "Apprise {APPRISE_VERSION} (`json://`, one Python process, notify() per event) in a virtualenv under target/; around its send loop"
            ),
            &format!(
                "targets: arauto's CPU per message ≤ {CPU_TARGET}× Apprise's; arauto's messages/s ≥ Apprise's"
            ),
        ],
        &root,
    );
    let python = apprise_python()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (li, receiver) = runtime.block_on(async {
        anyhow::Ok((
            FakeLi::start().await?,
            FakeProvider::start(Provider::Webhook).await?,
        ))
    })?;
    li.use_system_clock();
    li.record_requests(false);

    let warm_dir = common::work_dir("peer-warm-")?;
    warm_plugin_cache(
        warm_dir.path(),
        &arauto_config(warm_dir.path(), &li.base_url(), &receiver.url())?,
    )?;

    let mut arauto_rounds = Vec::with_capacity(ROUNDS);
    let mut apprise_rounds = Vec::with_capacity(ROUNDS);
    let mut expected_total = 0;
    for _ in 0..ROUNDS {
        let dir = common::work_dir("peer-arauto-")?;
        let config = arauto_config(dir.path(), &li.base_url(), &receiver.url())?;
        expected_total += events;
        arauto_rounds.push(arauto_round(
            dir.path(),
            &config,
            &li,
            &receiver,
            &runtime,
            events,
            expected_total,
        )?);
        let dir = common::work_dir("peer-apprise-")?;
        expected_total += events;
        apprise_rounds.push(apprise_round(
            &python,
            dir.path(),
            &receiver,
            &runtime,
            events,
            expected_total,
        )?);
    }
    let received = receiver.received();
    ensure!(
        received.len() == expected_total,
        "the receiver got {} messages, expected {expected_total}",
        received.len()
    );

    println!(
        "{:<44} {:>16} {:>12} {:>12}   rounds (CPU per message)",
        "", "CPU per message", "messages/s", "peak RSS"
    );
    let mut medians = Vec::new();
    for (name, rounds) in [
        ("arauto: order change → webhook POST", &arauto_rounds),
        ("Apprise: notify() → json:// POST", &apprise_rounds),
    ] {
        let cpu = median(rounds.iter().map(Round::cpu_per_message_ms).collect());
        let rate = median(rounds.iter().map(Round::per_second).collect());
        let rss = median(rounds.iter().map(|r| r.peak_rss_kib as f64).collect());
        let all: Vec<String> = rounds
            .iter()
            .map(|r| format!("{:.2}", r.cpu_per_message_ms()))
            .collect();
        println!(
            "{name:<44} {:>13.3} ms {:>12.0} {:>12}   {}",
            cpu,
            rate,
            common::mib(rss as u64),
            all.join(" ")
        );
        medians.push((cpu, rate));
    }
    let queued: Vec<String> = arauto_rounds
        .iter()
        .map(|r| match r.queued {
            Some(queued) => format!(
                "{:.1} s of {:.1} s",
                queued.as_secs_f64(),
                r.wall.as_secs_f64()
            ),
            None => "?".to_owned(),
        })
        .collect();
    println!(
        "   arauto: last job queued (the burst read) / last POST, per round: {}",
        queued.join(", ")
    );
    let (arauto_cpu, arauto_rate) = medians[0];
    let (apprise_cpu, apprise_rate) = medians[1];
    let ratio = arauto_cpu / apprise_cpu;
    let verdict = |met: bool| if met { "met" } else { "MISSED" };
    println!();
    println!(
        "   CPU per message: arauto {ratio:.2}× Apprise's; target ≤ {CPU_TARGET}×: {}",
        verdict(ratio <= CPU_TARGET)
    );
    println!(
        "   messages/s: arauto {:.2}× Apprise's; target ≥ 1×: {}",
        arauto_rate / apprise_rate,
        verdict(arauto_rate >= apprise_rate)
    );
    print_footer(started);
    Ok(())
}
