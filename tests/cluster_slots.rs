//! The slot count is one setting for the whole cluster (issue 15): a daemon
//! configured with another `cluster.lease_slots` than the running cluster's
//! refuses to start at once (no retries: the error is permanent), with one
//! error naming the setting and both values, and the node already running
//! keeps its stores. Taking slots logs one INFO line per ownership round
//! with the counts, not one per store. A state written in layout 1 (jobs
//! keyed by id alone) is refused the same way, naming `arauto state migrate`. One `nats-server -js`, the
//! fake Loja Integrada and a webhook channel.

// All test code: clippy's allow-unwrap/expect-in-tests covers the helpers too.
#![cfg(test)]

use crate::support;

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

/// A node of this version on a cluster state of layout 1 (a job keyed by
/// its id alone) refuses to start at once, with one error naming the
/// command to run, exit status 1, no retries.
#[test]
fn a_node_refuses_a_layout1_state_naming_the_migration() {
    let cluster = Cluster::single(1, 1);
    let url = cluster.nats.urls().remove(0);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let js = async_nats::jetstream::new(async_nats::connect(&url).await.expect("connect"));
        // The buckets as a node creates them, then a job key of layout 1
        // and no layout record.
        let options = arauto::queue::nats::NatsOptions {
            prefix: "arauto".to_owned(),
            replicas: 1,
        };
        let store = arauto::queue::nats::NatsStore::open(
            js.clone(),
            options,
            std::sync::Arc::new(arauto::queue::Unfenced),
        )
        .await
        .expect("open");
        drop(store);
        let jobs = js.get_key_value("arauto_jobs").await.expect("jobs bucket");
        jobs.put("01jpa8d2g07zt4n1hjww7r8x8a", "{}".into())
            .await
            .expect("a layout-1 key");
        js.get_stream("KV_arauto_jobs")
            .await
            .expect("jobs stream")
            .purge()
            .filter("$KV.arauto_jobs.arauto.layout")
            .await
            .expect("purge the layout record");
    });

    let mut refused = cluster.world.spawn(&cluster.tables("node-a"), &[]);
    let status = refused.wait_exit(PATIENCE);
    assert_eq!(status.code(), Some(1), "{}", refused.stderr.all());
    let log = refused.stderr.all();
    assert!(
        log.contains("it is in layout 1") && log.contains("run `arauto state migrate` once"),
        "{log}"
    );
    assert!(!log.contains("retrying"), "{log}");
    assert_eq!(log.matches("arauto state migrate").count(), 1, "{log}");
}
