//! The cluster benchmark (issue 15, point 7): the same N fake Loja Integrada
//! stores (3,000 by default) and one unpaced webhook channel, served by 1, 2
//! and 3 arauto nodes (`arauto run`, release) sharing a three-server NATS
//! JetStream cluster on 127.0.0.1; then failover after SIGKILLs.
//!
//! For each node count, on a fresh set of streams and buckets (its own
//! `cluster.prefix`), every node gets the same configuration; the bench
//! waits until every store has been swept twice (its seed sweep, which
//! records the history and sends nothing, and one ordinary sweep), then
//! measures `ARAUTO_BENCH_CYCLES` poll cycles. Every sweep of every store
//! sees the delta `benches/poll_cost.rs` uses (one new order, the oldest open
//! order one status on), so the offered load is the same for 1, 2 and 3
//! nodes: two changes per store per poll interval. Per node it prints the CPU
//! time over the window (user + system, `/proc/<pid>/stat`), RSS at the end
//! and peak RSS; for the whole cluster, the messages per second the receiver
//! accepted over the window next to those queued, and the nats-servers' CPU.
//! A webhook channel is dispatched by exactly one node (its lease holder), so
//! more nodes spread the polling, not the sending of one channel.
//!
//! Failover, with three nodes: `ARAUTO_BENCH_KILLS` times (default 10) a
//! random node is SIGKILLed; from the kill, the bench times the first poll of
//! one of its stores by another node ("first"), and the moment every store it
//! held was polled by another node and, when it held the channel, another
//! node sent on it ("all moved"). Both include the lease's expiry (default
//! `lease_ttl` 10 s), which dominates. The node is restarted and the next
//! kill waits until it holds stores again. Median and max are printed.
//!
//! The nats-server is `NATS_SERVER_BIN`, else the pinned 2.12.8 in
//! `target/tools` (`scripts/install-nats-server.sh` installs it when
//! missing).
//!
//! `cargo bench --bench cluster`. Environment: `BENCH_QUICK=1` (300 stores,
//! one measured cycle, 10 kills), `ARAUTO_BENCH_CLUSTER_STORES` (default
//! 3000), `ARAUTO_BENCH_CLUSTER_INTERVAL_S` (poll interval in seconds,
//! default 30), `ARAUTO_BENCH_CYCLES` (default 2), `ARAUTO_BENCH_KILLS`
//! (default 10), `ARAUTO_BENCH_SEED` (which node each kill picks),
//! `ARAUTO_BENCH_DIR`.

mod common;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use arauto_sim::channels::{FakeProvider, Provider};
use arauto_sim::li::{Customer, FakeLi, LiStore, Numero, Order, Route, StoreAuth};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rand::{RngExt, SeedableRng};

use arauto::cluster::ownership::{Resource, owners};
use arauto::config::cluster::DEFAULT_LEASE_SLOTS;
use common::daemon::{arauto_binary, warm_plugin_cache};
use common::machine::{print_footer, print_header};
use common::{daemon_section, human, li_store, mib, proc, quantile, quick};

/// Orders each store holds before the nodes start (its history).
const HISTORY: usize = 3;
/// The happy path the fake walks orders along, one step per change.
const STEPS: [&str; 5] = [
    "aguardando_pagamento",
    "pedido_pago",
    "pedido_em_separacao",
    "pedido_enviado",
    "pedido_entregue",
];
/// How long a wait on the nodes may take before the bench gives up.
const PATIENCE: Duration = Duration::from_secs(900);
/// The webhook channel's signing secret (Standard Webhooks format).
const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// The one channel every store notifies.
const CHANNEL: &str = "hook";
/// The header each node's channel adds: the receiver sees who sent what.
const NODE_HEADER: &str = "X-Arauto-Node";
/// How often the bench asks a nats-server whether it is healthy yet.
const HEALTH_POLL: Duration = Duration::from_millis(50);

fn main() -> Result<()> {
    let started = Instant::now();
    let stores = common::env_usize(
        "ARAUTO_BENCH_CLUSTER_STORES",
        if quick() { 300 } else { 3_000 },
    )?
    .max(3);
    let interval = Duration::from_secs(
        common::env_usize("ARAUTO_BENCH_CLUSTER_INTERVAL_S", 30)?.max(5) as u64,
    );
    let cycles = common::env_usize("ARAUTO_BENCH_CYCLES", if quick() { 1 } else { 2 })?.max(1);
    let kills = common::env_usize("ARAUTO_BENCH_KILLS", 10)?.max(1);
    let nats_binary = nats_server_binary()?;
    let root = common::work_root()?;
    let nats_version = Command::new(&nats_binary)
        .arg("--version")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_default();
    print_header(
        "8. Cluster: 1, 2 and 3 nodes on a three-server NATS JetStream cluster (issue 15)",
        &[
            &format!(
                "real `arauto run` per node, real loja-integrada.wasm + webhook.wasm; {nats_version} ×3 (R3 streams and buckets), all on 127.0.0.1"
            ),
            &format!(
                "{stores} fake LI stores polled every {}s, each sweep 2 changed orders (1 new, 1 moved on); one unpaced webhook channel",
                interval.as_secs()
            ),
            &format!(
                "measured: {cycles} poll cycle(s) after every store's seed sweep and one more; CPU = user+system of each process over the window"
            ),
            "msg/s = messages the receiver accepted over the window (queued/s: what the polls queued); failover: SIGKILL of a random node of 3",
        ],
        &root,
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let li = runtime.block_on(FakeLi::start())?;
    li.use_system_clock();
    li.record_requests(false);
    let hook = runtime.block_on(FakeProvider::start(Provider::Webhook))?;
    let stores_config = li_stores(&li, stores, interval);

    let nats_dir = common::work_dir("cluster-nats-")?;
    let mut nats = NatsServers::start(&nats_binary, nats_dir.path(), 3)?;
    {
        // Compile the plugins into the shared cache once, outside the measurements.
        let dir = common::work_dir("cluster-warm-")?;
        let mut config = daemon_section(dir.path(), "")?;
        config.push_str(&webhook_channel(&hook.url(), "warm"));
        config.push_str(&li_store("warm", &li.base_url(), "k", "1h", ""));
        warm_plugin_cache(dir.path(), &config.replace("[\"whatsapp\"]", "[\"hook\"]"))?;
    }

    println!(
        "{:<6} {:>5} {:>10} {:>10} {:>10} {:>10} {:>9} {:>9} {:>10} {:>11}",
        "nodes",
        "node",
        "stores",
        "CPU",
        "CPU/sweep",
        "RSS end",
        "peak RSS",
        "msg/s",
        "queued/s",
        "nats CPU"
    );
    let mut three = None;
    for count in 1..=3 {
        let work = common::work_dir(&format!("cluster-{count}-"))?;
        let mut run = Run::start(&nats, &hook, &stores_config, work.path(), count)?;
        let row = run.measure(stores, cycles, &nats)?;
        row.print(count);
        if count == 3 {
            three = Some((run, work));
        } else {
            run.stop()?;
        }
    }
    let (mut run, _work) = three.context("the three-node run")?;
    let seed = std::env::var("ARAUTO_BENCH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x005e_edc1_u64);
    let failovers = run.failovers(kills, seed, stores)?;
    run.stop()?;
    nats.stop();

    let mut first: Vec<Duration> = failovers.iter().map(|f| f.first).collect();
    let mut all: Vec<Duration> = failovers.iter().map(|f| f.all).collect();
    first.sort();
    all.sort();
    println!();
    println!(
        "{:<62} {:>9} {:>9} {:>9}",
        "failover after a SIGKILL (3 nodes)", "median", "max", "min"
    );
    for (label, samples) in [
        (
            "kill → first poll of one of its stores by another node",
            &first,
        ),
        (
            "kill → all its stores polled (and its channel sent on) elsewhere",
            &all,
        ),
    ] {
        println!(
            "{label:<62} {:>9} {:>9} {:>9}",
            human(quantile(samples, 0.5)),
            human(samples.last().copied().unwrap_or_default()),
            human(samples.first().copied().unwrap_or_default()),
        );
    }
    println!(
        "   ({} kills; each victim held {} stores on average; lease_ttl = 10 s, the default)",
        failovers.len(),
        failovers.iter().map(|f| f.stores).sum::<usize>() / failovers.len().max(1)
    );
    print_footer(started);
    Ok(())
}

/// The nats-server to run: `NATS_SERVER_BIN`, else the pinned one
/// in `target/tools`, installed by `scripts/install-nats-server.sh` when
/// missing.
fn nats_server_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("NATS_SERVER_BIN") {
        let path = PathBuf::from(path);
        ensure!(
            path.is_file(),
            "NATS_SERVER_BIN={} is not a file",
            path.display()
        );
        return Ok(path);
    }
    let out = Command::new(common::repo_root().join("scripts/install-nats-server.sh"))
        .stderr(Stdio::inherit())
        .output()
        .context("running scripts/install-nats-server.sh")?;
    ensure!(
        out.status.success(),
        "scripts/install-nats-server.sh failed ({})",
        out.status
    );
    Ok(PathBuf::from(
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
    ))
}

/// What the fake does to one store on each of its sweeps (as in
/// `benches/poll_cost.rs`).
struct Script {
    /// Orders not yet delivered, oldest first, with their step in [`STEPS`].
    open: VecDeque<(Numero, usize)>,
    created: u64,
    store_index: usize,
}

impl Script {
    fn new_order(&mut self, store: &LiStore, step: usize) {
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

/// Apply the script on the store's next search request, then re-arm.
fn arm(store: &LiStore, script: Arc<Mutex<Script>>) {
    store.on_request(Route::Search, 1, move |store| {
        script
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .apply(store);
        arm(store, script);
    });
}

/// `stores` scripted stores on the fake LI, and their configuration.
fn li_stores(li: &FakeLi, stores: usize, interval: Duration) -> String {
    let interval_text = format!("{}s", interval.as_secs());
    let overlap_text = format!("{}s", 2 * interval.as_secs());
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
        arm(&store, Arc::new(Mutex::new(script)));
        let mut table = li_store(
            &format!("s{index:05}"),
            &li.base_url(),
            &key,
            &interval_text,
            &format!("overlap = \"{overlap_text}\""),
        );
        table = table.replace(
            "channels = [\"whatsapp\"]",
            &format!("channels = [\"{CHANNEL}\"]"),
        );
        // The fake has no budget; LI's 90 a minute would make this a rate-limit test.
        table = table.replace(
            "allow_private_addresses = true\n[stores",
            "allow_private_addresses = true\nrequests_per_minute = 1000000\n[stores",
        );
        config.push_str(&table);
    }
    config
}

/// The unpaced webhook channel, naming the node that sends.
fn webhook_channel(url: &str, node: &str) -> String {
    format!(
        r#"
[channels.{CHANNEL}]
plugin = "webhook"
[channels.{CHANNEL}.sandbox]
allowed_hosts = ["{url}"]
allow_private_addresses = true
[channels.{CHANNEL}.settings]
url = "{url}/hooks/{CHANNEL}"
secret = "{WEBHOOK_SECRET}"
"header.{NODE_HEADER}" = "{node}"
"#
    )
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// One `nats-server` of [`NatsServers`].
struct NatsServer {
    client_port: u16,
    monitor_port: u16,
    child: Child,
}

/// n `nats-server`s with JetStream routed into one cluster.
struct NatsServers {
    servers: Vec<NatsServer>,
}

impl NatsServers {
    fn start(binary: &Path, dir: &Path, n: usize) -> Result<Self> {
        let ports: Vec<(u16, u16, u16)> = (0..n)
            .map(|_| Ok((free_port()?, free_port()?, free_port()?)))
            .collect::<Result<_>>()?;
        let mut servers = Vec::with_capacity(n);
        for (i, &(client, route, monitor)) in ports.iter().enumerate() {
            let routes: Vec<String> = ports
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, p)| format!("nats-route://127.0.0.1:{}", p.1))
                .collect();
            let store_dir = dir.join(format!("n{i}"));
            std::fs::create_dir_all(&store_dir)?;
            let log = std::fs::File::create(dir.join(format!("n{i}.log")))?;
            let child = Command::new(binary)
                .args(["--addr", "127.0.0.1", "--port", &client.to_string()])
                .args(["--http_port", &monitor.to_string(), "--jetstream"])
                .arg("--store_dir")
                .arg(&store_dir)
                .args(["--server_name", &format!("n{i}")])
                .args(["--cluster_name", "arauto-bench", "--cluster"])
                .arg(format!("nats://127.0.0.1:{route}"))
                .arg("--routes")
                .arg(routes.join(","))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .with_context(|| format!("spawning {}", binary.display()))?;
            servers.push(NatsServer {
                client_port: client,
                monitor_port: monitor,
                child,
            });
        }
        let cluster = Self { servers };
        for server in &cluster.servers {
            cluster.wait_healthy(server)?;
        }
        Ok(cluster)
    }

    /// Until `/healthz` answers ok and `/jsz` names a metadata leader.
    fn wait_healthy(&self, server: &NatsServer) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let healthy = monitor_get(server.monitor_port, "/healthz")
                .is_ok_and(|body| body.contains("\"ok\""))
                && monitor_get(server.monitor_port, "/jsz").is_ok_and(|body| {
                    serde_json::from_str::<serde_json::Value>(&body).is_ok_and(|json| {
                        json.pointer("/meta_cluster/leader")
                            .and_then(serde_json::Value::as_str)
                            .is_some_and(|leader| !leader.is_empty())
                    })
                });
            if healthy {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "nats-server on port {} not healthy within 120 s",
                server.client_port
            );
            std::thread::sleep(HEALTH_POLL);
        }
    }

    fn servers_toml(&self) -> String {
        let urls: Vec<String> = self
            .servers
            .iter()
            .map(|s| format!("\"nats://127.0.0.1:{}\"", s.client_port))
            .collect();
        format!("[{}]", urls.join(", "))
    }

    /// CPU time of every server so far.
    fn cpu(&self) -> Result<Duration> {
        self.servers
            .iter()
            .map(|s| proc::cpu_time(s.child.id()))
            .sum()
    }

    fn stop(&mut self) {
        for server in &mut self.servers {
            let _ = server.child.kill();
            let _ = server.child.wait();
        }
    }
}

impl Drop for NatsServers {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A plain HTTP/1.0 GET on 127.0.0.1:`port`; the body of a 200 answer.
fn monitor_get(port: u16, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    if !head.contains(" 200") {
        return Err(std::io::Error::other(
            head.lines().next().unwrap_or_default().to_owned(),
        ));
    }
    Ok(body.to_owned())
}

/// The value of ` key=` in a text log line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let needle = format!(" {key}=");
    let start = line.rfind(&needle)? + needle.len();
    let value = line[start..].split_whitespace().next().unwrap_or("");
    Some(value.trim_matches('"'))
}

/// What a node's log said, as far as the bench needs it.
#[derive(Default)]
struct NodeLogState {
    /// Resources (`store s00001`, `channel hook`) this process holds.
    held: BTreeSet<String>,
    /// Lease events so far (take-overs), to wait on.
    took_over: u64,
    polls: u64,
    queued: u64,
    sent: u64,
    errors: u64,
    /// (when, store) of each `poll complete`, kept only while recording.
    poll_events: Vec<(Instant, String)>,
    /// When each `notification sent` was logged, kept only while recording.
    send_events: Vec<Instant>,
    recording: bool,
    tail: VecDeque<String>,
    closed: bool,
}

/// A node's log, read on a thread.
#[derive(Clone, Default)]
struct NodeLog(Arc<(Mutex<NodeLogState>, Condvar)>);

impl NodeLog {
    fn state(&self) -> MutexGuard<'_, NodeLogState> {
        self.0.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, line: String) {
        let now = Instant::now();
        let mut state = self.state();
        if line.contains("poll complete") {
            state.polls += 1;
            if state.recording
                && let Some(store) = field(&line, "store")
            {
                let store = store.to_owned();
                state.poll_events.push((now, store));
            }
        } else if line.contains("notification queued") {
            state.queued += 1;
        } else if line.contains("notification sent") {
            state.sent += 1;
            if state.recording {
                state.send_events.push(now);
            }
        } else if let Some(at) = line.find("took over ") {
            if let Some(resource) = resource_after(&line[at + "took over ".len()..]) {
                state.held.insert(resource);
                state.took_over += 1;
            }
        } else if let Some(at) = line.find("handed over ") {
            if let Some(resource) = resource_after(&line[at + "handed over ".len()..]) {
                state.held.remove(&resource);
            }
        } else if let Some(at) = line.find("lost lease of ")
            && let Some(resource) = resource_after(&line[at + "lost lease of ".len()..])
        {
            state.held.remove(&resource);
        }
        if line.contains(" ERROR ") {
            state.errors += 1;
        }
        if state.tail.len() == 100 {
            state.tail.pop_front();
        }
        state.tail.push_back(line);
        drop(state);
        self.0.1.notify_all();
    }

    fn close(&self) {
        self.state().closed = true;
        self.0.1.notify_all();
    }
}

/// `store s00001 from node …` → `store s00001`.
fn resource_after(rest: &str) -> Option<String> {
    let mut words = rest.split_whitespace();
    let kind = words.next()?;
    let id = words.next()?;
    matches!(kind, "store" | "channel").then(|| format!("{kind} {id}"))
}

/// One arauto node: a child process, its configuration file and its log.
struct Node {
    name: String,
    config_path: PathBuf,
    child: Option<Child>,
    log: NodeLog,
}

impl Node {
    fn spawn(&mut self) -> Result<()> {
        let mut command = Command::new(arauto_binary());
        for (name, _) in std::env::vars_os() {
            let text = name.to_string_lossy();
            if text.starts_with("ARAUTO_") || text == "RUST_LOG" {
                command.env_remove(&name);
            }
        }
        command
            .args(["run", "--log-format", "text", "--config"])
            .arg(&self.config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().context("spawning arauto run")?;
        let pipe = child.stderr.take().context("no stderr pipe")?;
        self.log = NodeLog::default();
        let sink = self.log.clone();
        std::thread::Builder::new()
            .name(format!("node-{}", self.name))
            .spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    sink.push(line);
                }
                sink.close();
            })?;
        self.child = Some(child);
        Ok(())
    }

    fn pid(&self) -> Result<u32> {
        self.child
            .as_ref()
            .map(Child::id)
            .with_context(|| format!("node {} is not running", self.name))
    }

    fn signal(&self, signal: Signal) -> Result<()> {
        let pid = Pid::from_raw(i32::try_from(self.pid()?).context("pid")?);
        kill(pid, signal).with_context(|| format!("{signal} to node {}", self.name))
    }

    /// SIGKILL and reap.
    fn kill(&mut self) -> Result<()> {
        let mut child = self.child.take().context("kill: not running")?;
        child.kill()?;
        child.wait()?;
        Ok(())
    }

    /// SIGTERM and wait for a clean exit.
    fn stop(&mut self) -> Result<()> {
        if self.child.is_none() {
            return Ok(());
        }
        self.signal(Signal::SIGTERM)?;
        let mut child = self.child.take().context("stop: not running")?;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = child.try_wait()? {
                ensure!(status.success(), "node {} exited with {status}", self.name);
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("node {} did not stop within 120 s", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One row of the table: a node count's measured window.
struct Row {
    /// Per node: name, stores held, CPU over the window, polls, RSS end, peak RSS.
    nodes: Vec<(String, usize, Duration, u64, u64, u64)>,
    wall: Duration,
    sent: usize,
    queued: u64,
    nats_cpu: Duration,
    errors: u64,
}

impl Row {
    fn print(&self, count: usize) {
        let per_second = |n: f64| n / self.wall.as_secs_f64().max(1e-9);
        for (i, (name, held, cpu, polls, rss, peak)) in self.nodes.iter().enumerate() {
            let first = i == 0;
            println!(
                "{:<6} {:>5} {:>10} {:>10} {:>10} {:>10} {:>9} {:>9} {:>10} {:>11}",
                if first {
                    count.to_string()
                } else {
                    String::new()
                },
                name,
                held,
                human(*cpu),
                human(cpu.div_f64((*polls).max(1) as f64)),
                mib(*rss),
                mib(*peak),
                if first {
                    format!("{:.1}", per_second(self.sent as f64))
                } else {
                    String::new()
                },
                if first {
                    format!("{:.1}", per_second(self.queued as f64))
                } else {
                    String::new()
                },
                if first {
                    human(self.nats_cpu)
                } else {
                    String::new()
                },
            );
        }
        println!(
            "   ({count} node(s): window {}, {} messages accepted, {} queued, {} ERROR lines)",
            human(self.wall),
            self.sent,
            self.queued,
            self.errors
        );
    }
}

/// One failover measured.
struct Failover {
    first: Duration,
    all: Duration,
    stores: usize,
}

/// `count` nodes on one prefix of the cluster.
struct Run<'a> {
    hook: &'a FakeProvider,
    nodes: Vec<Node>,
}

impl<'a> Run<'a> {
    fn start(
        nats: &NatsServers,
        hook: &'a FakeProvider,
        stores_config: &str,
        work: &Path,
        count: usize,
    ) -> Result<Self> {
        let mut nodes = Vec::with_capacity(count);
        for i in 0..count {
            let name = format!("node{}", i + 1);
            let dir = work.join(&name);
            std::fs::create_dir_all(dir.join("run"))?;
            // The per-store and per-channel take-over lines this bench
            // follows are DEBUG (one INFO line per ownership round).
            let mut config = daemon_section(&dir, "")?.replace(
                "log_level = \"info\"",
                "log_level = \"info,arauto::cluster::ownership=debug\"",
            );
            config.push_str(&webhook_channel(&hook.url(), &name));
            config.push_str(stores_config);
            config.push_str(&format!(
                "\n[cluster]\nbackend = \"nats\"\nservers = {}\nnode_name = \"{name}\"\nprefix = \"bench{count}\"\n",
                nats.servers_toml()
            ));
            let config_path = dir.join("arauto.toml");
            std::fs::write(&config_path, config)
                .with_context(|| format!("writing {}", config_path.display()))?;
            let mut node = Node {
                name,
                config_path,
                child: None,
                log: NodeLog::default(),
            };
            node.spawn()?;
            nodes.push(node);
        }
        Ok(Self { hook, nodes })
    }

    fn total_polls(&self) -> u64 {
        self.nodes.iter().map(|n| n.log.state().polls).sum()
    }

    /// Wait until the nodes together logged `at_least` polls.
    fn wait_polls(&self, at_least: u64) -> Result<()> {
        let deadline = Instant::now() + PATIENCE;
        while self.total_polls() < at_least {
            ensure!(
                Instant::now() < deadline,
                "the nodes polled {} times, not {at_least}, within {PATIENCE:?}",
                self.total_polls()
            );
            // Polls are counted on several nodes' log threads; a bench can
            // afford to look again every 100 ms.
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    fn measure(&mut self, stores: usize, cycles: usize, nats: &NatsServers) -> Result<Row> {
        let n = stores as u64;
        // The seed sweep and one ordinary sweep of every store.
        self.wait_polls(2 * n)?;
        let cpu0: Vec<Duration> = self
            .nodes
            .iter()
            .map(|node| proc::cpu_time(node.pid()?))
            .collect::<Result<_>>()?;
        let polls0: Vec<u64> = self.nodes.iter().map(|n| n.log.state().polls).collect();
        let queued0: u64 = self.nodes.iter().map(|n| n.log.state().queued).sum();
        let nats0 = nats.cpu()?;
        let sent0 = self.hook.received().len();
        let started = Instant::now();
        self.wait_polls(self.total_polls() + cycles as u64 * n)?;
        let wall = started.elapsed();
        let sent = self.hook.received().len() - sent0;
        let queued = self.nodes.iter().map(|n| n.log.state().queued).sum::<u64>() - queued0;
        let nats_cpu = nats.cpu()?.saturating_sub(nats0);
        let mut rows = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let sample = proc::sample(node.pid()?)?;
            let state = node.log.state();
            rows.push((
                node.name.clone(),
                state
                    .held
                    .iter()
                    .filter(|r| r.starts_with("store "))
                    .count(),
                sample.cpu.saturating_sub(cpu0[i]),
                state.polls - polls0[i],
                sample.rss_kib,
                sample.peak_rss_kib,
            ));
        }
        let errors = self.nodes.iter().map(|n| n.log.state().errors).sum();
        Ok(Row {
            nodes: rows,
            wall,
            sent,
            queued,
            nats_cpu,
            errors,
        })
    }

    /// `kills` SIGKILLs of a random node, each timed until its stores (and
    /// channel) moved, then the node restarted.
    /// Wait until every store of `stores` and the channel is held, by the
    /// nodes' logs, by the node the slot assignment (`ownership::owners`)
    /// picks among them.
    fn await_settled(&self, stores: usize) -> Result<()> {
        let names: Vec<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
        let resources: Vec<Resource> = (0..stores)
            .map(|i| Resource::Store(format!("s{i:05}")))
            .chain([Resource::Channel(CHANNEL.to_owned())])
            .collect();
        let targets = owners(&resources, names.iter().copied(), DEFAULT_LEASE_SLOTS);
        let deadline = Instant::now() + PATIENCE;
        loop {
            let held: Vec<BTreeSet<String>> = self
                .nodes
                .iter()
                .map(|n| n.log.state().held.clone())
                .collect();
            let settled = resources.iter().all(|resource| {
                let name = match resource {
                    Resource::Store(id) => format!("store {id}"),
                    Resource::Channel(id) => format!("channel {id}"),
                };
                let holders: Vec<usize> = (0..held.len())
                    .filter(|&i| held[i].contains(&name))
                    .collect();
                holders.len() == 1 && targets.get(resource) == Some(&names[holders[0]])
            });
            if settled {
                return Ok(());
            }
            for node in &self.nodes {
                let state = node.log.state();
                ensure!(
                    !state.closed && Instant::now() < deadline,
                    "ownership did not settle within {PATIENCE:?} (node {}'s log {}); its last lines:\n{}",
                    node.name,
                    if state.closed { "ended" } else { "goes on" },
                    state.tail.iter().cloned().collect::<Vec<_>>().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn failovers(&mut self, kills: usize, seed: u64, all_stores: usize) -> Result<Vec<Failover>> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut measured = Vec::with_capacity(kills);
        for _ in 0..kills {
            // Ownership settled: every node holds exactly the stores and
            // channel rendezvous hashing gives it (a restarted node took its
            // share back), not merely some stores mid-rebalance.
            self.await_settled(all_stores)?;
            let victim = rng.random_range(0..self.nodes.len());
            let held = self.nodes[victim].log.state().held.clone();
            let stores: BTreeSet<String> = held
                .iter()
                .filter_map(|r| r.strip_prefix("store ").map(str::to_owned))
                .collect();
            let channel = held.contains(&format!("channel {CHANNEL}"));
            for (i, node) in self.nodes.iter().enumerate() {
                if i != victim {
                    let mut state = node.log.state();
                    state.recording = true;
                    state.poll_events.clear();
                    state.send_events.clear();
                }
            }
            let killed_at = Instant::now();
            self.nodes[victim].kill()?;
            let mut first = None;
            let deadline = killed_at + PATIENCE;
            let all = loop {
                let mut moved: BTreeMap<&str, Instant> = BTreeMap::new();
                let mut channel_sent: Option<Instant> = None;
                for (i, node) in self.nodes.iter().enumerate() {
                    if i == victim {
                        continue;
                    }
                    let state = node.log.state();
                    for (at, store) in &state.poll_events {
                        if let Some(store) = stores.get(store.as_str()) {
                            let entry = moved.entry(store.as_str()).or_insert(*at);
                            *entry = (*entry).min(*at);
                        }
                    }
                    if let Some(at) = state.send_events.first() {
                        channel_sent = Some(channel_sent.map_or(*at, |c: Instant| c.min(*at)));
                    }
                }
                if first.is_none() {
                    first = moved.values().min().copied();
                }
                let stores_done = moved.len() == stores.len();
                let channel_done = !channel || channel_sent.is_some();
                if stores_done && channel_done {
                    let last = moved
                        .values()
                        .copied()
                        .chain(channel_sent.filter(|_| channel))
                        .max()
                        .unwrap_or(killed_at);
                    break last - killed_at;
                }
                ensure!(
                    Instant::now() < deadline,
                    "after killing {}: {} of its {} stores polled elsewhere within {PATIENCE:?}",
                    self.nodes[victim].name,
                    moved.len(),
                    stores.len()
                );
                std::thread::sleep(Duration::from_millis(100));
            };
            let first = first.map_or(all, |at| at - killed_at);
            for node in &self.nodes {
                node.log.state().recording = false;
            }
            println!(
                "   kill of {} (held {} stores{}): first poll elsewhere {}, all moved {}",
                self.nodes[victim].name,
                stores.len(),
                if channel { " and the channel" } else { "" },
                human(first),
                human(all)
            );
            measured.push(Failover {
                first,
                all,
                stores: stores.len(),
            });
            self.nodes[victim].spawn()?;
        }
        // The last restarted node must be up (and have taken its share)
        // before the run stops: a SIGTERM before its handler is installed
        // kills it instead of stopping it.
        self.await_settled(all_stores)?;
        Ok(measured)
    }

    fn stop(&mut self) -> Result<()> {
        for node in &mut self.nodes {
            node.stop()?;
        }
        Ok(())
    }
}
