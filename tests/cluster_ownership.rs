//! Cluster ownership against a real `nats-server -js` (single node, free
//! port, temporary store directory) started by each test: several
//! [`Ownership`] instances in one process stand for the nodes.
//!
//! * Three instances end up owning exactly what the slot assignment
//!   (rendezvous hashing of slots over nodes) says.
//! * An instance shut down releases everything and the other takes it over
//!   at once (by the release, not by waiting for expiry: counted).
//! * A hand-over waits until the services of what moves have drained.
//! * An instance that stops renewing (its loop no longer driven, as in a
//!   paused process) stops holding before another one acquires.
//! * Two processes under one node name never hold the same lease.
//! * A taker measures a lease's end on its own clock, not the holder's.
//! * A node configured with another slot count than the live cluster's
//!   refuses to start, naming the setting and both values.
//! * A running node that sees the recorded slot count change holds no slot
//!   until it is its own again.
//! * 3,000 stores take one lease per slot (128), nothing per store.
//! * A live per-store lease of an older arauto keeps a node from holding any
//!   slot until it ended; then it is deleted.
//! * Connecting to servers that do not answer fails naming them.
//!
//! NATS is a third party, but not one we fake: the point is the real
//! compare-and-set and watch behaviour. The binary is the one every NATS
//! test runs (`support::nats::nats_server_binary`).
//! Waits are on the instances' own signals (their owned sets changing);
//! the overall timeout only bounds a failing test.

// All test code: with this, clippy's allow-unwrap/expect-in-tests covers the
// helper functions too (see clippy.toml).
#![cfg(test)]

use crate::support;

use std::collections::BTreeSet;
use std::time::Duration;

use arauto::cluster::connect::{ConnectError, connect};
use arauto::cluster::ownership::{
    Ownership, OwnershipError, OwnershipOptions, Resource, owners, slot_key,
};
use arauto::config::cluster::DEFAULT_LEASE_SLOTS;
use arauto::config::cluster::{ClusterConfig, Credentials};
use arauto::queue::Fence;
use futures::{FutureExt, TryStreamExt};
use support::nats::NatsCluster;
use support::ports::free_port;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Bounds a failing wait; a passing test never gets near it.
const PATIENCE: Duration = Duration::from_secs(60);

/// One stand-alone `nats-server -js` (see `support::nats`), killed when
/// dropped.
struct NatsServer {
    _server: NatsCluster,
    url: String,
}

fn start_server() -> NatsServer {
    let server = NatsCluster::single();
    let url = server.urls().remove(0);
    NatsServer {
        _server: server,
        url,
    }
}

fn cluster_config(servers: Vec<String>, node: &str) -> ClusterConfig {
    ClusterConfig {
        servers,
        credentials: Credentials::None,
        tls: None,
        node_name: node.to_owned(),
        replicas: 1,
        lease_ttl: jiff::SignedDuration::from_secs(3),
        lease_slots: DEFAULT_LEASE_SLOTS,
        prefix: "test".to_owned(),
    }
}

/// One node: its ownership and the loop driving it.
struct Node {
    ownership: Ownership,
    stop: CancellationToken,
    driver: JoinHandle<()>,
}

impl Node {
    async fn start(server: &NatsServer, name: &str, ttl: Duration, resources: &[Resource]) -> Node {
        let ownership = open(server, name, ttl, DEFAULT_LEASE_SLOTS)
            .await
            .expect("ownership opens");
        ownership.set_resources(resources.iter().cloned().collect());
        let stop = CancellationToken::new();
        let driver = tokio::spawn({
            let (ownership, stop) = (ownership.clone(), stop.clone());
            async move { ownership.run(stop).await }
        });
        Node {
            ownership,
            stop,
            driver,
        }
    }

    fn owned(&self) -> BTreeSet<Resource> {
        self.ownership.owned().borrow().clone()
    }
}

/// Open ownership as node `name` with `slots` slots.
async fn open(
    server: &NatsServer,
    name: &str,
    ttl: Duration,
    slots: u32,
) -> Result<Ownership, OwnershipError> {
    // `connect` retries until the freshly started server answers.
    let client = connect(&cluster_config(vec![server.url.clone()], name), PATIENCE)
        .await
        .expect("connected");
    let js = async_nats::jetstream::new(client);
    Ownership::open(
        &js,
        OwnershipOptions {
            node: name.to_owned(),
            prefix: "test".to_owned(),
            replicas: 1,
            ttl,
            slots,
        },
    )
    .await
}

/// How many slots `resources` fall into.
fn slots_of(resources: &[Resource]) -> usize {
    resources
        .iter()
        .map(|r| r.slot(DEFAULT_LEASE_SLOTS))
        .collect::<BTreeSet<_>>()
        .len()
}

fn resources(stores: usize, channels: usize) -> Vec<Resource> {
    (0..stores)
        .map(|i| Resource::Store(format!("loja{i}")))
        .chain((0..channels).map(|i| Resource::Channel(format!("canal{i}"))))
        .collect()
}

fn expected(resources: &[Resource], nodes: &[&str], node: &str) -> BTreeSet<Resource> {
    owners(resources, nodes.iter().copied(), DEFAULT_LEASE_SLOTS)
        .into_iter()
        .filter(|(_, owner)| *owner == node)
        .map(|(resource, _)| resource)
        .collect()
}

/// Wait until `done` holds, looking again whenever a node's owned set changes.
async fn until(what: &str, nodes: &[&Node], done: impl Fn() -> bool) {
    let mut watches: Vec<_> = nodes.iter().map(|n| n.ownership.owned()).collect();
    let waited = tokio::time::timeout(PATIENCE, async {
        loop {
            if done() {
                return;
            }
            let changes = watches.iter_mut().map(|w| w.changed().boxed());
            let _ = futures::future::select_all(changes).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "timed out waiting until {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_own_what_the_slot_assignment_says_and_nothing_twice() {
    let server = start_server();
    let all = resources(60, 3);
    let ttl = Duration::from_secs(10);
    let a = Node::start(&server, "a", ttl, &all).await;
    let b = Node::start(&server, "b", ttl, &all).await;
    let c = Node::start(&server, "c", ttl, &all).await;
    let names = ["a", "b", "c"];
    until("each node owns its rendezvous share", &[&a, &b, &c], || {
        [&a, &b, &c]
            .iter()
            .zip(names)
            .all(|(node, name)| node.owned() == expected(&all, &names, name))
    })
    .await;
    let (sa, sb, sc) = (a.owned(), b.owned(), c.owned());
    assert_eq!(sa.len() + sb.len() + sc.len(), all.len());
    for node in [&sa, &sb, &sc] {
        assert!(
            !node.is_empty(),
            "a node owns nothing: {sa:?} {sb:?} {sc:?}"
        );
    }
    for resource in &all {
        let holders: Vec<&str> = [(&a, "a"), (&b, "b"), (&c, "c")]
            .iter()
            .filter(|(node, _)| node.ownership.holds(resource.scope()))
            .map(|(_, name)| *name)
            .collect();
        assert_eq!(holders.len(), 1, "{resource} is held by {holders:?}");
    }
    assert_eq!(a.ownership.live_nodes(), ["a", "b", "c"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_shutting_down_hands_over_at_once() {
    let server = start_server();
    let all = resources(30, 2);
    // The longest TTL: a take-over by expiry would be counted as such.
    let ttl = Duration::from_secs(20);
    let a = Node::start(&server, "a", ttl, &all).await;
    let b = Node::start(&server, "b", ttl, &all).await;
    let names = ["a", "b"];
    until("both own their share", &[&a, &b], || {
        a.owned() == expected(&all, &names, "a") && b.owned() == expected(&all, &names, "b")
    })
    .await;
    let handed = a.ownership.held_slots().len();
    assert!(handed > 0);

    a.stop.cancel();
    a.driver.await.expect("a's loop ends");
    let a = a.ownership;
    assert!(a.owned().borrow().is_empty(), "a released everything");
    for resource in &all {
        assert!(!a.holds(resource.scope()));
    }
    until("b owns everything", &[&b], || b.owned().len() == all.len()).await;
    let takeovers = b.ownership.takeovers();
    assert_eq!(
        takeovers.expired.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "b waited for a lease to expire instead of taking the released one"
    );
    assert!(
        takeovers
            .released
            .load(std::sync::atomic::Ordering::Relaxed)
            >= handed as u64
    );
    assert_eq!(b.ownership.live_nodes(), ["b"]);
}

/// Review #1: a lease whose services still run (an HTTP send in flight) is
/// not deleted when another node should own it. It leaves `owned` (the
/// daemon stops and drains its services) but stays held and renewed, so the
/// fence keeps saying yes to the in-flight work and nobody else takes it;
/// only once the daemon reports its services gone is it handed over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_over_waits_until_the_services_have_drained() {
    let server = start_server();
    let all = resources(12, 2);
    // Long enough that b can only get the leases by hand-over.
    let ttl = Duration::from_secs(30);
    let a = Node::start(&server, "a", ttl, &all).await;
    until("a owns everything", &[&a], || a.owned().len() == all.len()).await;
    // The daemon starts the services of everything a holds.
    a.ownership.services_starting(&a.owned());

    let b = Node::start(&server, "b", ttl, &all).await;
    let names = ["a", "b"];
    let keeps = expected(&all, &names, "a");
    let moving = expected(&all, &names, "b");
    assert!(!moving.is_empty());
    until("a stops running what b should own", &[&a, &b], || {
        a.owned() == keeps
    })
    .await;
    assert_eq!(a.ownership.handing_over(), moving);
    for resource in &moving {
        assert!(
            a.ownership.holds(resource.scope()),
            "{resource} fenced off while its services may still be sending"
        );
        assert!(
            !b.owned().contains(resource),
            "{resource} taken by b before a's services drained"
        );
    }

    // The daemon stopped them: now the leases go, at once.
    a.ownership.services_running(&keeps);
    until("b owns its share", &[&a, &b], || b.owned() == moving).await;
    for resource in &moving {
        assert!(!a.ownership.holds(resource.scope()));
    }
    assert!(a.ownership.handing_over().is_empty());
    let takeovers = b.ownership.takeovers();
    assert_eq!(
        takeovers.expired.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    for node in [a, b] {
        node.stop.cancel();
        node.driver.await.expect("the loop ends");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_stops_renewing_stops_holding_before_another_acquires() {
    let server = start_server();
    let all = resources(5, 1);
    let ttl = Duration::from_secs(3);
    let a = Node::start(&server, "a", ttl, &all).await;
    until("a owns everything", &[&a], || a.owned().len() == all.len()).await;
    // Paused: nothing drives a any more, nothing is released.
    a.driver.abort();
    let _ = a.driver.await;
    let a = a.ownership;
    assert!(
        all.iter().all(|r| a.holds(r.scope())),
        "a still holds right after the pause"
    );

    let b = Node::start(&server, "b", ttl, &all).await;
    let mut owned = b.ownership.owned();
    let waited = tokio::time::timeout(PATIENCE, async {
        loop {
            let now = owned.borrow_and_update().clone();
            for resource in &now {
                assert!(
                    !a.holds(resource.scope()),
                    "{resource} acquired by b while the paused a still holds it"
                );
            }
            if now.len() == all.len() {
                return;
            }
            owned.changed().await.expect("b's ownership lives");
        }
    })
    .await;
    assert!(waited.is_ok(), "b never took over everything");
    assert_eq!(
        b.ownership
            .takeovers()
            .expired
            .load(std::sync::atomic::Ordering::Relaxed),
        slots_of(&all) as u64
    );
    b.stop.cancel();
    b.driver.await.expect("b's loop ends");
}

/// Review #5: two processes started at once under one node name (a cloned
/// VM keeping its hostname) pass the start-up check, but never take one
/// another's leases for their own: each lease has one holder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_with_one_node_name_never_hold_the_same_lease() {
    let server = start_server();
    let all = resources(10, 2);
    let ttl = Duration::from_secs(30);
    let mut twins = Vec::new();
    // Both open before either writes a heartbeat: the start-up check
    // cannot tell them apart.
    for _ in 0..2 {
        let client = connect(&cluster_config(vec![server.url.clone()], "twin"), PATIENCE)
            .await
            .expect("connected");
        let ownership = Ownership::open(
            &async_nats::jetstream::new(client),
            OwnershipOptions {
                node: "twin".to_owned(),
                prefix: "test".to_owned(),
                replicas: 1,
                ttl,
                slots: DEFAULT_LEASE_SLOTS,
            },
        )
        .await
        .expect("ownership opens");
        ownership.set_resources(all.iter().cloned().collect());
        twins.push(ownership);
    }
    let stop = CancellationToken::new();
    let nodes: Vec<Node> = twins
        .into_iter()
        .map(|ownership| Node {
            driver: tokio::spawn({
                let (ownership, stop) = (ownership.clone(), stop.clone());
                async move { ownership.run(stop).await }
            }),
            ownership,
            stop: stop.clone(),
        })
        .collect();
    let [first, second] = [&nodes[0], &nodes[1]];
    until("every lease is held", &[first, second], || {
        first.owned().union(&second.owned()).count() == all.len()
    })
    .await;
    for resource in &all {
        let holders = nodes
            .iter()
            .filter(|node| node.ownership.holds(resource.scope()))
            .count();
        assert_eq!(holders, 1, "{resource} is held by {holders} processes");
    }
    stop.cancel();
    for node in nodes {
        node.driver.await.expect("the loop ends");
    }
}

/// Review #4: a taker does not trust the holder's wall-clock expiry. A
/// lease written just now by a node whose clock runs far behind (its
/// `expires_at` already in the past for us) is taken only `ttl` after this
/// node first saw it, on its own clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_is_taken_by_the_takers_own_clock_not_the_holders_expiry() {
    let server = start_server();
    let ghost_store = Resource::Store("loja-ghost".to_owned());
    let free_store = Resource::Store("loja-free".to_owned());
    let ghost_slot = ghost_store.slot(DEFAULT_LEASE_SLOTS);
    assert_ne!(ghost_slot, free_store.slot(DEFAULT_LEASE_SLOTS));
    let ttl = Duration::from_secs(3);
    // Bucket first (an ownership with nothing to own), then the lagging
    // node's lease, written straight to it.
    let setup = Node::start(&server, "setup", ttl, &[]).await;
    let client = connect(&cluster_config(vec![server.url.clone()], "setup"), PATIENCE)
        .await
        .expect("connected");
    let leases = async_nats::jetstream::new(client)
        .get_key_value("test_ownership_leases")
        .await
        .expect("the lease bucket");
    let lagging = arauto::cluster::ownership::LeaseValue {
        holder: "lagging".to_owned(),
        instance: "0".to_owned(),
        expires_at_ms: jiff::Timestamp::now().as_millisecond() - 3_600_000,
    };
    leases
        .create(
            slot_key(ghost_slot),
            serde_json::to_vec(&lagging).expect("json").into(),
        )
        .await
        .expect("lease written");
    setup.stop.cancel();
    setup.driver.await.expect("the loop ends");

    let b = Node::start(
        &server,
        "b",
        ttl,
        &[ghost_store.clone(), free_store.clone()],
    )
    .await;
    until("b takes the free store", &[&b], || {
        b.owned().contains(&free_store)
    })
    .await;
    assert!(
        !b.owned().contains(&ghost_store),
        "taken at once on the holder's (lagging) wall-clock expiry"
    );
    until(
        "b takes the other once its own clock says it ended",
        &[&b],
        || b.owned().contains(&ghost_store),
    )
    .await;
    assert_eq!(
        b.ownership
            .takeovers()
            .expired
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    b.stop.cancel();
    b.driver.await.expect("the loop ends");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_servers_that_do_not_answer_names_them() {
    let url = format!("nats://127.0.0.1:{}", free_port());
    let config = cluster_config(vec![url.clone()], "lonely");
    let error = connect(&config, Duration::from_secs(1))
        .await
        .expect_err("nothing listens there");
    assert!(matches!(error, ConnectError::Unreachable { .. }));
    let text = error.to_string();
    assert!(
        text.contains(&url) && text.contains("node lonely"),
        "{text}"
    );
}

/// Issue 15: a node's watch of the ownership buckets dies with the server
/// holding its consumer (deleted here, as a server restart does). The node
/// must follow again from where it was: it sees the node that joins after
/// that and hands it its share; and its views say they are current again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_watches_are_gone_still_sees_a_joining_node_and_hands_over() {
    let server = start_server();
    let all = resources(12, 2);
    let ttl = Duration::from_secs(3);
    let a = Node::start(&server, "a", ttl, &all).await;
    until("a owns everything", &[&a], || a.owned().len() == all.len()).await;
    assert!(
        a.ownership.views_current(),
        "{:?}",
        a.ownership.view_freshness()
    );

    let js = async_nats::jetstream::new(async_nats::connect(&server.url).await.expect("connected"));
    for bucket in ["test_ownership_leases", "test_ownership_nodes"] {
        let stream = js
            .get_stream(format!("KV_{bucket}"))
            .await
            .expect("the bucket exists");
        let names: Vec<String> = stream
            .consumer_names()
            .try_collect()
            .await
            .expect("consumers listed");
        assert!(!names.is_empty(), "a follows {bucket}");
        for name in names {
            stream.delete_consumer(&name).await.expect("deleted");
        }
    }

    let b = Node::start(&server, "b", ttl, &all).await;
    let names = ["a", "b"];
    until("each node owns its rendezvous share", &[&a, &b], || {
        a.owned() == expected(&all, &names, "a") && b.owned() == expected(&all, &names, "b")
    })
    .await;
    for node in [&a, &b] {
        node.stop.cancel();
    }
    for node in [a, b] {
        node.driver.await.expect("the loop ends");
    }
}

/// Issue 15: the slot count is a cluster-wide setting. A node configured
/// with another one than the live cluster's refuses to start, naming the
/// setting and both values; once every node stopped, the count may change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_another_slot_count_refuses_to_start_while_the_cluster_runs() {
    let server = start_server();
    let all = resources(6, 1);
    let ttl = Duration::from_secs(10);
    let a = Node::start(&server, "a", ttl, &all).await;
    until("a owns everything", &[&a], || a.owned().len() == all.len()).await;

    let error = open(&server, "b", ttl, 64)
        .await
        .expect_err("b runs with 64 slots, the cluster with 128");
    assert!(
        matches!(error, OwnershipError::SlotCount { configured: 64, .. }),
        "{error:?}"
    );
    let text = error.to_string();
    for part in [
        "cluster.lease_slots = 64",
        "cluster.lease_slots = 128",
        "test_ownership_leases",
    ] {
        assert!(text.contains(part), "{part:?} not in {text}");
    }

    // Every node stopped: a node with the new count records it and runs.
    a.stop.cancel();
    a.driver.await.expect("a's loop ends");
    let b = open(&server, "b", ttl, 64)
        .await
        .expect("nobody is live: the count may change");
    assert_eq!(b.slot_count(), 64);
}

/// Issue 15, upgrade: a per-store lease written by an arauto before slots
/// (`store.<id>`) that may still be live keeps a node from holding any
/// slot (an old node could be polling that store) until it ended on the
/// node's own clock; then the node takes its share and deletes the old key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_lease_of_an_older_version_holds_a_node_back_until_it_ended() {
    let server = start_server();
    let all = resources(4, 1);
    let ttl = Duration::from_secs(3);
    let setup = Node::start(&server, "setup", ttl, &[]).await;
    let client = connect(&cluster_config(vec![server.url.clone()], "setup"), PATIENCE)
        .await
        .expect("connected");
    let leases = async_nats::jetstream::new(client)
        .get_key_value("test_ownership_leases")
        .await
        .expect("the lease bucket");
    let old = arauto::cluster::ownership::LeaseValue {
        holder: "old-node".to_owned(),
        instance: String::new(),
        expires_at_ms: jiff::Timestamp::now().as_millisecond() + 3_000,
    };
    leases
        .create(
            "store.loja0",
            serde_json::to_vec(&old).expect("json").into(),
        )
        .await
        .expect("old lease written");
    setup.stop.cancel();
    setup.driver.await.expect("the loop ends");

    let opened = std::time::Instant::now();
    let b = Node::start(&server, "b", ttl, &all).await;
    until("b owns everything", &[&b], || b.owned().len() == all.len()).await;
    // A lower bound only: b saw the old lease at the latest when it opened.
    assert!(
        opened.elapsed() >= ttl,
        "b took slots {:?} after opening, while the old lease may still have been live",
        opened.elapsed()
    );
    // The round that took the slots deleted the old key before it
    // published them (one server: its answer is the latest).
    let entry = leases.entry("store.loja0").await.expect("read");
    let deleted = entry.is_none_or(|e| e.operation != async_nats::jetstream::kv::Operation::Put);
    assert!(deleted, "the old lease key is still there");
    b.stop.cancel();
    b.driver.await.expect("b's loop ends");
}

/// Issue 15: a running node that sees the recorded slot count change under
/// it (a node with another count started while it could not be seen) holds
/// no slot from then on, rather than own stores by another mapping; when the
/// record is its own count again it takes its share back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_holds_no_slot_while_the_recorded_slot_count_is_not_its_own() {
    let server = start_server();
    let all = resources(6, 1);
    let ttl = Duration::from_secs(10);
    let a = Node::start(&server, "a", ttl, &all).await;
    until("a owns everything", &[&a], || a.owned().len() == all.len()).await;

    let client = connect(&cluster_config(vec![server.url.clone()], "a"), PATIENCE)
        .await
        .expect("connected");
    let leases = async_nats::jetstream::new(client)
        .get_key_value("test_ownership_leases")
        .await
        .expect("the lease bucket");
    leases
        .put("slots", r#"{"slots":64}"#.into())
        .await
        .expect("record rewritten");
    until("a holds nothing", &[&a], || a.owned().is_empty()).await;
    assert!(a.ownership.held_slots().is_empty());
    for resource in &all {
        assert!(!a.ownership.holds(resource.scope()), "{resource}");
    }

    leases
        .put("slots", r#"{"slots":128}"#.into())
        .await
        .expect("record restored");
    until("a owns everything again", &[&a], || {
        a.owned().len() == all.len()
    })
    .await;
    a.stop.cancel();
    a.driver.await.expect("a's loop ends");
}

/// Issue 15: what a node renews scales with the slots, not the stores. A
/// node owning 3,000 stores and a channel holds one lease per slot in use
/// (128), and the lease bucket holds nothing else but the slot count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_thousand_stores_take_one_lease_per_slot() {
    let server = start_server();
    let all = resources(3000, 1);
    let ttl = Duration::from_secs(10);
    let a = Node::start(&server, "a", ttl, &all).await;
    until("a owns everything", &[&a], || a.owned().len() == all.len()).await;
    assert_eq!(a.ownership.held_slots().len(), slots_of(&all));
    assert_eq!(slots_of(&all), DEFAULT_LEASE_SLOTS as usize);

    let client = connect(&cluster_config(vec![server.url.clone()], "a"), PATIENCE)
        .await
        .expect("connected");
    let leases = async_nats::jetstream::new(client)
        .get_key_value("test_ownership_leases")
        .await
        .expect("the lease bucket");
    let mut keys: Vec<String> = leases
        .keys()
        .await
        .expect("keys")
        .try_collect()
        .await
        .expect("keys listed");
    keys.sort();
    assert_eq!(keys.len(), DEFAULT_LEASE_SLOTS as usize + 1, "{keys:?}");
    assert!(
        keys.iter()
            .all(|key| key == "slots" || key.starts_with("slot.")),
        "{keys:?}"
    );
    a.stop.cancel();
    a.driver.await.expect("a's loop ends");
}
