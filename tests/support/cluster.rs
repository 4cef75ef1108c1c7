//! Several arauto nodes on one NATS JetStream cluster, against the fake Loja
//! Integrada and one fake webhook receiver: what `tests/cluster_failover.rs`
//! and `tests/drill_cluster.rs` share.
//!
//! A [`Cluster`] owns the fakes ([`World`]), the `nats-server`s
//! ([`NatsCluster`]), the shops and the channels, and writes each node's
//! configuration: the same stores and channels on every node, a `[cluster]`
//! table with the node's name, and a webhook header `X-Arauto-Node: <name>`
//! on every channel, so that the receiver records which node sent each
//! message (the cluster tests' evidence of who dispatched what).
//!
//! Who owns what is read from the nodes' own log lines: the ownership round
//! logs one INFO line per round (`took over 3 lease slot(s), gaining 2
//! store(s), 1 channel(s): …`) and, at DEBUG, `took over store s01 (slot
//! 17)` / `took over channel c01 (slot 5)` for each store and channel of a
//! slot lease it wins and `handed over …` / `lost lease of …` when it gives
//! one up or loses it. Each node's configuration turns DEBUG on for the
//! ownership module alone ([`OWNERSHIP_LOG_LEVEL`]), so the tests follow
//! each store and channel;
//! a store's polls log `poll complete store=<id>` on the node that polls it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use arauto::cluster::ownership::{self, Resource};
use arauto::config::cluster::DEFAULT_LEASE_SLOTS;
use arauto_sim::channels::{FakeProvider, Provider, RecordedRequest};

use super::daemon::{Daemon, PATIENCE};
use super::nats::NatsCluster;
use super::system::{ChannelKnobs, Shop, StoreKnobs, World};

/// `daemon.log_level` of every node: INFO, and the ownership module's
/// per-store and per-channel lines (DEBUG) the tests follow.
pub const OWNERSHIP_LOG_LEVEL: &str = "info,arauto::cluster::ownership=debug";

/// The header each node's webhook channels add: the node's name.
pub const NODE_HEADER: &str = "X-Arauto-Node";

/// The lease TTL of the test nodes: short, so a dead node's stores and
/// channels move within seconds, yet twice the shortest the configuration
/// accepts (3 s): on a loaded two-core machine renewals every second slip,
/// and a node that misses its own renewals lets its leases lapse.
pub const LEASE_TTL: &str = "6s";

/// How often [`await_condition`] looks again at what it waits for.
const CONDITION_POLL: Duration = Duration::from_millis(50);

/// Wait (at most `patience`) until `condition` holds, looking again every
/// 50 ms; panics with `what()` otherwise. For conditions over several
/// processes' logs or a fake's records, which no single signal announces.
pub fn await_condition(
    patience: Duration,
    what: impl Fn() -> String,
    mut condition: impl FnMut() -> bool,
) {
    let deadline = Instant::now() + patience;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "not within {patience:?}: {}",
            what()
        );
        std::thread::sleep(CONDITION_POLL);
    }
}

/// One arauto node of a [`Cluster`].
pub struct Node {
    /// Its `cluster.node_name`.
    pub name: String,
    pub daemon: Daemon,
}

impl Node {
    /// Whether this node's current process holds `resource` (`store s01`,
    /// `channel c01`) by its own log: its last lease event about it is a
    /// take-over.
    pub fn holds(&self, resource: &str) -> bool {
        holds_in(&self.daemon.stderr.lines(), resource)
    }

    /// The resources (of `candidates`) this node holds now.
    pub fn held<'a>(&self, candidates: &'a [String]) -> Vec<&'a String> {
        let lines = self.daemon.stderr.lines();
        candidates
            .iter()
            .filter(|resource| holds_in(&lines, resource))
            .collect()
    }
}

/// The ownership resource a name like `store s01` / `channel c01` stands for.
pub fn resource_of(name: &str) -> Resource {
    match name.split_once(' ') {
        Some(("store", id)) => Resource::Store(id.to_owned()),
        Some(("channel", id)) => Resource::Channel(id.to_owned()),
        _ => panic!("not a resource name: {name:?}"),
    }
}

/// Whether the last lease event about `resource` in `lines` is a take-over.
pub fn holds_in(lines: &[String], resource: &str) -> bool {
    let took = format!("took over {resource}");
    let gave = [
        format!("handed over {resource}"),
        format!("lost lease of {resource}"),
    ];
    let about = |line: &str, needle: &str| {
        line.find(needle).is_some_and(|at| {
            // `store s1` must not match `store s10`.
            line[at + needle.len()..]
                .chars()
                .next()
                .is_none_or(|c| c == ' ' || c == '(')
        })
    };
    lines
        .iter()
        .rev()
        .find_map(|line| {
            if about(line, &took) {
                Some(true)
            } else if gave.iter().any(|g| about(line, g)) {
                Some(false)
            } else {
                None
            }
        })
        .unwrap_or(false)
}

/// The fakes, the NATS cluster, the shops and channels, and the nodes.
/// (Fields drop in order: the nodes first, then NATS and the fakes.)
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub world: World,
    pub nats: NatsCluster,
    /// The one webhook receiver every channel posts to (`/hooks/<channel>`).
    pub hook: FakeProvider,
    pub shops: Vec<Shop>,
    /// Channel ids; store `i` notifies channel `i % channels.len()`.
    pub channels: Vec<String>,
    /// Extra lines of every `[channels.<id>]` (e.g. pacing).
    pub channel_knobs: fn() -> ChannelKnobs,
    /// Extra lines of every `[stores.<id>]`.
    pub store_knobs: fn() -> StoreKnobs,
}

impl Cluster {
    /// `nats_servers` nats-servers, `stores` shops (`s01`, `s02`, …) and
    /// `channels` webhook channels (`c01`, …) on the fakes; no node yet.
    pub fn new(nats_servers: usize, stores: usize, channels: usize) -> Self {
        Self::on(NatsCluster::start(nats_servers), stores, channels)
    }

    /// [`Cluster::new`] on one nats-server (no clustered NATS).
    pub fn single(stores: usize, channels: usize) -> Self {
        Self::on(NatsCluster::single(), stores, channels)
    }

    fn on(nats: NatsCluster, stores: usize, channels: usize) -> Self {
        let world = World::new();
        let hook = world.channel(Provider::Webhook);
        let shops = (1..=stores)
            .map(|i| world.shop(&format!("s{i:02}")))
            .collect();
        let channels = (1..=channels).map(|i| format!("c{i:02}")).collect();
        Self {
            world,
            nats,
            hook,
            shops,
            channels,
            nodes: Vec::new(),
            channel_knobs: ChannelKnobs::default,
            store_knobs: StoreKnobs::default,
        }
    }

    /// Every store and channel as a resource name (`store s01`, `channel c01`).
    pub fn resources(&self) -> Vec<String> {
        self.shops
            .iter()
            .map(|s| format!("store {}", s.id))
            .chain(self.channels.iter().map(|c| format!("channel {c}")))
            .collect()
    }

    /// The channel store `index` notifies.
    pub fn channel_of(&self, index: usize) -> &str {
        &self.channels[index % self.channels.len()]
    }

    /// The `[cluster]` table of node `name`.
    pub fn cluster_toml(&self, name: &str) -> String {
        format!(
            "\n[cluster]\nbackend = \"nats\"\nservers = {servers}\nnode_name = {name:?}\n\
             replicas = {replicas}\nlease_ttl = {LEASE_TTL:?}\n",
            servers = self.nats.servers_toml(),
            replicas = self.nats.len().min(3),
        )
    }

    /// Node `name`'s whole configuration body: stores, channels (with its
    /// [`NODE_HEADER`]) and `[cluster]`.
    pub fn tables(&self, name: &str) -> String {
        // Before the first table header: it lands in `[daemon]`.
        let mut tables = format!("log_level = {OWNERSHIP_LOG_LEVEL:?}\n");
        for (i, shop) in self.shops.iter().enumerate() {
            let channel = self.channel_of(i).to_owned();
            tables += &self
                .world
                .store_toml(shop, &[channel.as_str()], (self.store_knobs)());
        }
        for channel in &self.channels {
            let mut knobs = (self.channel_knobs)();
            knobs.settings += &format!("\"header.{NODE_HEADER}\" = {name:?}\n");
            tables += &self.world.channel_toml(channel, &self.hook, knobs);
        }
        tables + &self.cluster_toml(name)
    }

    /// Start node `name` and wait for its READY=1; returns its index.
    pub fn add_node(&mut self, name: &str) -> usize {
        let daemon = self.world.start(&self.tables(name), &[]);
        self.nodes.push(Node {
            name: name.to_owned(),
            daemon,
        });
        self.nodes.len() - 1
    }

    /// The index of the node named `name`.
    pub fn node(&self, name: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    /// Wait until every store and channel is held, by the nodes' logs, by
    /// exactly one running node: the one the slot assignment over the running
    /// nodes' names picks for it (`ownership::owners`, what the nodes
    /// themselves converge to); returns resource → node index.
    ///
    /// "Held by exactly one node" alone is not settled: while a joining
    /// node's share moves, a state where every resource has one holder and
    /// every node holds something can last a few milliseconds before the
    /// next hand-over (node b still holding s06 that it is about to hand to
    /// c), and a test that took it for the final one waited for polls that
    /// never came.
    pub fn await_settled(&self) -> BTreeMap<String, usize> {
        let resources = self.resources();
        let mut owners = BTreeMap::new();
        await_condition(
            PATIENCE,
            || {
                format!(
                    "ownership never settled: {}\n{}",
                    self.ownership_report(),
                    self.logs_of_interest()
                )
            },
            || {
                owners.clear();
                let running: Vec<&str> = self
                    .nodes
                    .iter()
                    .filter(|n| n.daemon.is_running())
                    .map(|n| n.name.as_str())
                    .collect();
                let all: Vec<Resource> = resources.iter().map(|r| resource_of(r)).collect();
                let targets = ownership::owners(&all, running.iter().copied(), DEFAULT_LEASE_SLOTS);
                for resource in &resources {
                    let holders: Vec<usize> = self
                        .nodes
                        .iter()
                        .enumerate()
                        .filter(|(_, n)| n.daemon.is_running() && n.holds(resource))
                        .map(|(i, _)| i)
                        .collect();
                    let target = targets.get(&resource_of(resource)).copied();
                    if holders.len() != 1 || Some(self.nodes[holders[0]].name.as_str()) != target {
                        return false;
                    }
                    owners.insert(resource.clone(), holders[0]);
                }
                true
            },
        );
        owners
    }

    /// Wait until the receiver accepted at least `n` messages; on failure,
    /// say who holds what and show every node's warnings and errors.
    pub fn wait_received(&self, n: usize) {
        await_condition(
            PATIENCE,
            || {
                format!(
                    "the receiver accepted {} messages, not {n}; {}\n{}",
                    self.hook.received().len(),
                    self.ownership_report(),
                    self.logs_of_interest()
                )
            },
            || self.hook.received().len() >= n,
        );
    }

    /// Every node's WARN and ERROR lines and lease events, for failure
    /// messages.
    pub fn logs_of_interest(&self) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            out += &format!("--- node {} ---\n", node.name);
            for line in node.daemon.all_logs() {
                if line.contains(" WARN ")
                    || line.contains(" ERROR ")
                    || line.contains("took over")
                    || line.contains("handed over")
                    || line.contains("lost lease")
                    || line.contains("notification")
                {
                    out += &line;
                    out.push('\n');
                }
            }
        }
        out
    }

    /// Who holds what, by the logs, for failure messages.
    pub fn ownership_report(&self) -> String {
        let resources = self.resources();
        self.nodes
            .iter()
            .map(|n| {
                let held: Vec<&String> = if n.daemon.is_running() {
                    n.held(&resources)
                } else {
                    Vec::new()
                };
                format!(
                    "node {} ({}) holds {held:?}",
                    n.name,
                    if n.daemon.is_running() {
                        "running"
                    } else {
                        "down"
                    }
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The webhook requests that carried a message (not pings), in arrival
    /// order: (sending node, webhook-id = job id, channel path).
    pub fn sends(&self) -> Vec<Send> {
        self.hook.requests().iter().filter_map(Send::of).collect()
    }
}

/// A failing cluster test keeps every node's whole log and the receiver's
/// requests: a flaky failure (a double send seen once in ten runs) is only
/// explained by what each node did around it, and the failure message shows
/// just the warnings and lease events. With `KEEP_CLUSTER_LOGS` set in the
/// environment, a passing test keeps them too (to compare with a failure).
impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("KEEP_CLUSTER_LOGS").is_some() {
            self.keep_logs();
        }
    }
}

impl Cluster {
    /// Write each node's log (`node-<name>.log`) and the receiver's message
    /// requests in arrival order (`sends.txt`) under
    /// `$CARGO_TARGET_TMPDIR/cluster-logs/<test>-<pid>/`, and say where.
    fn keep_logs(&self) {
        let test = std::thread::current()
            .name()
            .unwrap_or("test")
            .replace("::", "-");
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("cluster-logs")
            .join(format!("{test}-{}", std::process::id()));
        if let Err(e) = std::fs::create_dir_all(&dir) {
            eprintln!("cannot keep the cluster's logs in {}: {e}", dir.display());
            return;
        }
        for node in &self.nodes {
            let path = dir.join(format!("node-{}.log", node.name));
            let mut text = node.daemon.all_logs().join("\n");
            text.push('\n');
            if let Err(e) = std::fs::write(&path, text) {
                eprintln!("cannot write {}: {e}", path.display());
            }
        }
        let sends: String = self
            .sends()
            .iter()
            .map(|s| format!("{} {} {}\n", s.node, s.job, s.path))
            .collect();
        let path = dir.join("sends.txt");
        if let Err(e) = std::fs::write(&path, sends) {
            eprintln!("cannot write {}: {e}", path.display());
        }
        eprintln!("the cluster's logs are kept in {}", dir.display());
    }
}

/// One message request the receiver got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Send {
    /// The node that sent it ([`NODE_HEADER`]).
    pub node: String,
    /// The job id (`webhook-id`).
    pub job: String,
    /// The request path (`/hooks/<channel>`).
    pub path: String,
}

impl Send {
    fn of(request: &RecordedRequest) -> Option<Self> {
        if request.method != "POST" {
            return None;
        }
        let job = request.header("webhook-id")?.to_owned();
        let is_ping = request
            .body_json()
            .get("type")
            .and_then(serde_json::Value::as_str)
            == Some("ping");
        if is_ping {
            return None;
        }
        Some(Self {
            node: request
                .header(&NODE_HEADER.to_ascii_lowercase())
                .unwrap_or("?")
                .to_owned(),
            job,
            path: request.path.clone(),
        })
    }
}
