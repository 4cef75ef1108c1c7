//! The slot count is one setting for the whole cluster (issue 15): a daemon
//! configured with another `cluster.lease_slots` than the running cluster's
//! refuses to start at once (no retries: the error is permanent), with one
//! error naming the setting and both values, and the node already running
//! keeps its stores. Taking slots logs one INFO line per ownership round
//! with the counts, not one per store. One `nats-server -js`, the
//! fake Loja Integrada and a webhook channel.

// All test code: clippy's allow-unwrap/expect-in-tests covers the helpers too.
#![cfg(test)]

mod support;

use nix::sys::signal::Signal;
use support::cluster::{Cluster, Node};
use support::daemon::PATIENCE;

#[test]
fn a_node_with_another_slot_count_refuses_to_start() {
    let mut cluster = Cluster::single(2, 1);
    let daemon = cluster.world.start(&cluster.tables("node-a"), &[]);
    cluster.nodes.push(Node {
        name: "node-a".to_owned(),
        daemon,
    });
    cluster.await_settled();

    // `[cluster]` is the last table of the body: the key lands in it.
    let tables = cluster.tables("node-b") + "lease_slots = 64\n";
    let mut refused = cluster.world.spawn(&tables, &[]);
    let status = refused.wait_exit(PATIENCE);
    assert!(
        !status.success(),
        "node-b started: {}",
        refused.stderr.all()
    );
    assert_eq!(status.code(), Some(1), "exit status as for a config error");
    let log = refused.stderr.all();
    assert!(
        log.contains("cluster.lease_slots = 64 on this node, but the cluster runs with cluster.lease_slots = 128"),
        "{log}"
    );
    // A permanent error is not retried: one error, no "retrying" warnings.
    assert!(!log.contains("retrying"), "{log}");
    assert_eq!(
        log.matches("cluster.lease_slots = 64 on this node").count(),
        1,
        "{log}"
    );
    // node-a still holds everything.
    for resource in cluster.resources() {
        assert!(
            cluster.nodes[0].holds(&resource),
            "{resource}: {}",
            cluster.ownership_report()
        );
    }
}

/// A node taking every slot at start logs one INFO line for the round, with
/// how many slots, stores and channels it gained, and each store and
/// channel only at DEBUG (3,000 stores were 3,000 INFO lines); stopping
/// hands them over with one INFO line too.
#[test]
fn taking_and_handing_over_slots_logs_one_info_line_per_round() {
    let mut cluster = Cluster::single(6, 2);
    let daemon = cluster.world.start(&cluster.tables("node-a"), &[]);
    cluster.nodes.push(Node {
        name: "node-a".to_owned(),
        daemon,
    });
    cluster.await_settled();
    let node = &cluster.nodes[0].daemon;
    let round = node
        .stderr
        .wait_for("lease slot(s), gaining 6 store(s), 2 channel(s):");
    // Only slots with a store or channel are leased.
    assert!(
        round.contains(" INFO ") && round.contains("took over ") && round.contains(" free"),
        "{round}"
    );
    let lines = node.stderr.lines();
    let info_takeovers: Vec<&String> = lines
        .iter()
        .filter(|line| line.contains(" INFO ") && line.contains("took over"))
        .collect();
    assert_eq!(info_takeovers.len(), 1, "{info_takeovers:#?}");
    for resource in cluster.resources() {
        let needle = format!("took over {resource} (slot ");
        let per_resource: Vec<&String> = lines.iter().filter(|l| l.contains(&needle)).collect();
        assert_eq!(per_resource.len(), 1, "{resource}: {per_resource:#?}");
        assert!(per_resource[0].contains(" DEBUG "), "{}", per_resource[0]);
    }

    cluster.nodes[0].daemon.signal(Signal::SIGTERM);
    let node = &cluster.nodes[0].daemon;
    let handed = node
        .stderr
        .wait_for("lease slot(s) (shutting down), losing 6 store(s), 2 channel(s)");
    assert!(
        handed.contains(" INFO ") && handed.contains("handed over "),
        "{handed}"
    );
}
