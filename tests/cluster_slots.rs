//! The slot count is one setting for the whole cluster (issue 15): a daemon
//! configured with another `cluster.lease_slots` than the running cluster's
//! refuses to start at once (no retries: the error is permanent), with one
//! error naming the setting and both values, and the node already running
//! keeps its stores. One `nats-server -js`, the
//! fake Loja Integrada and a webhook channel.

// All test code: clippy's allow-unwrap/expect-in-tests covers the helpers too.
#![cfg(test)]

mod support;

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
