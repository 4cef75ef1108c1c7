//! `arauto check` on a cluster node (issue 15): the running daemon reports
//! its own views — the jobs, history and status views of the JetStream
//! state and both ownership buckets — each current (green) or stale since
//! when and why (red), in the terminal and in `--json`. One real
//! `nats-server -js`, the fake Loja Integrada and a webhook channel.

// All test code: clippy's allow-unwrap/expect-in-tests covers the helpers too.
#![cfg(test)]

use crate::support;

use support::cluster::{Cluster, Node};
use support::operator;

#[test]
fn check_shows_each_view_of_the_node_as_current() {
    let mut cluster = Cluster::single(1, 1);
    let daemon = cluster.world.start(&cluster.tables("node-a"), &[]);
    cluster.nodes.push(Node {
        name: "node-a".to_owned(),
        daemon,
    });
    cluster.await_settled();
    let config = cluster.nodes[0]
        .daemon
        .config_path
        .to_str()
        .expect("utf-8 path")
        .to_owned();

    let json = operator::arauto(&["check", "--json", "--config", &config]).json();
    let sections = json["sections"].as_array().expect("sections");
    let views = sections
        .iter()
        .find(|s| s["id"] == "cluster-views")
        .unwrap_or_else(|| panic!("no cluster-views section: {json:#}"));
    let lines = views["lines"].as_array().expect("lines");
    let texts: Vec<&str> = lines.iter().filter_map(|l| l["text"].as_str()).collect();
    // The state's jobs and history views, its store and channel status
    // views, and both ownership buckets.
    for view in [
        "bucket arauto_jobs",
        "stream arauto_history",
        "bucket arauto_stores",
        "bucket arauto_channels",
        "bucket arauto_ownership_leases",
        "bucket arauto_ownership_nodes",
    ] {
        assert!(
            texts.iter().any(|t| t.starts_with(view)),
            "no {view} view: {texts:?}"
        );
    }
    for line in lines {
        assert_eq!(line["item"], "cluster-view", "{line}");
        assert_eq!(line["status"], "ok", "{line}");
        assert!(
            line["text"]
                .as_str()
                .is_some_and(|t| t.ends_with(": current")),
            "{line}"
        );
    }

    let text = operator::arauto(&["check", "--config", &config]);
    assert!(
        text.stdout.contains("cluster views of this node"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("✓ bucket"), "{}", text.stdout);
}
