//! `arauto status` with `[cluster]` from a machine without a daemon (issue
//! 15): each channel's pending and running counts come from a running
//! node, which answers from its own view of the jobs (the command reads no
//! job), and the output names that node; with no node running, or with a
//! node whose view of the jobs is stale, the command reads the jobs bucket
//! itself and says why. One real `nats-server -js`, the fake Loja Integrada,
//! one webhook channel, a real daemon node; the operator's configuration is
//! a second directory with the same stores, channels and `[cluster]` (its
//! own node name) and no daemon.

// All test code: clippy's allow-unwrap/expect-in-tests covers the helpers too.
#![cfg(test)]

use crate::support;

use std::path::Path;
use std::sync::Arc;

use arauto::cluster::channel_counts::{self, CountSource};
use arauto::queue::nats::{ChannelCounts, Freshness, NatsOptions, NatsStore};
use arauto::queue::{ChannelStats, StateStore, Unfenced};
use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use support::cluster::Cluster;
use support::daemon::daemon_section;
use support::operator::{self, job};
use support::system::World;

/// A node whose view of the jobs is stale: what it counts must not be shown.
struct StaleView;

#[async_trait]
impl CountSource for StaleView {
    async fn channel_counts(&self) -> ChannelCounts {
        ChannelCounts {
            channels: [(
                "c01".to_owned(),
                ChannelStats {
                    pending: 99,
                    running: 99,
                    oldest_due: None,
                },
            )]
            .into_iter()
            .collect(),
            jobs_view: Freshness::Stale {
                since: Timestamp::now(),
                reason: "its consumer's subscription ended".to_owned(),
            },
        }
    }
}

/// `arauto status --json` on `config`: the cluster part.
fn status_json(config: &Path) -> serde_json::Value {
    let run = operator::arauto(&["status", "--json", "--config", path_str(config)]);
    assert_eq!(run.code, 0, "{run:?}");
    let status = run.json();
    assert!(status["cluster_error"].is_null(), "{status:#}");
    assert!(status["daemon"].is_null(), "{status:#}");
    status["cluster"].clone()
}

/// `arauto status` (text) on `config`.
fn status_text(config: &Path) -> String {
    let run = operator::arauto(&["status", "--config", path_str(config)]);
    assert_eq!(run.code, 0, "{run:?}");
    run.stdout
}

/// Channel `c01`'s pending and running counts in `cluster`.
fn c01(cluster: &serde_json::Value) -> (u64, u64) {
    let line = cluster["channels"]
        .as_array()
        .expect("channels")
        .iter()
        .find(|channel| channel["id"] == "c01")
        .unwrap_or_else(|| panic!("no channel c01: {cluster:#}"));
    (
        line["pending"].as_u64().expect("pending"),
        line["running"].as_u64().expect("running"),
    )
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

#[test]
fn status_counts_from_a_running_node_and_else_says_why_it_read_the_jobs_bucket() {
    let mut cluster = Cluster::single(1, 1);
    let operator_dir = tempfile::tempdir().expect("tempdir");
    let config = operator_dir.path().join("arauto.toml");
    std::fs::write(
        &config,
        daemon_section(operator_dir.path(), "") + &World::body(&cluster.tables("operator")),
    )
    .expect("write the operator's configuration");

    // Three jobs of s01 for c01, due in an hour (no dispatcher claims them).
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let url = cluster.nats.urls()[0].clone();
    let (client, store) = runtime.block_on(async {
        let client = async_nats::connect(&url).await.expect("connect");
        let options = NatsOptions {
            prefix: "arauto".to_owned(),
            replicas: 1,
        };
        let store = NatsStore::open(
            async_nats::jetstream::new(client.clone()),
            options,
            Arc::new(Unfenced),
        )
        .await
        .expect("open the cluster state");
        let later = Timestamp::now() + SignedDuration::from_hours(1);
        let jobs = ["1001", "1002", "1003"]
            .into_iter()
            .map(|order| {
                let mut job = job("s01", "c01", order, "order-paid");
                job.due_at = later;
                job
            })
            .collect();
        store.enqueue(jobs).await.expect("enqueue");
        (client, store)
    });

    // No node runs: the command counts from the jobs bucket, and says so.
    let status = status_json(&config);
    assert_eq!(c01(&status), (3, 0), "{status:#}");
    assert_eq!(status["counted_by"]["from"], "jobs_bucket", "{status:#}");
    assert!(
        status["counted_by"]["why"]
            .as_str()
            .is_some_and(|why| why.starts_with("no node answered")),
        "{status:#}"
    );
    let text = status_text(&config);
    assert!(
        text.contains("(pending/running counted from the jobs bucket: no node answered"),
        "{text}"
    );

    // A node whose view of the jobs is stale answers: its counts are not
    // shown; the jobs bucket's are, with why.
    let stop = tokio_util::sync::CancellationToken::new();
    let stale = runtime
        .block_on(channel_counts::serve(
            client.clone(),
            "arauto",
            "node-z".to_owned(),
            Arc::new(StaleView),
            stop.clone(),
        ))
        .expect("serve");
    let status = status_json(&config);
    assert_eq!(c01(&status), (3, 0), "{status:#}");
    assert_eq!(status["counted_by"]["from"], "jobs_bucket", "{status:#}");
    assert!(
        status["counted_by"]["why"].as_str().is_some_and(|why| why
            .starts_with("the view of the jobs of node node-z is stale since")
            && why.contains("its consumer's subscription ended")),
        "{status:#}"
    );
    stop.cancel();
    runtime.block_on(async {
        stale.await.expect("the stale node stops");
        // Its subscription is gone from the server before node-a starts.
        client.flush().await.expect("flush");
    });

    // A daemon node runs; one job is claimed (after its dispatcher started,
    // which takes over what was running): node-a counts, no job is read.
    cluster.add_node("node-a");
    cluster.await_settled();
    runtime.block_on(async {
        let claimed = store
            .claim(
                "c01",
                Timestamp::now() + SignedDuration::from_hours(2),
                1,
                SignedDuration::from_hours(1),
            )
            .await
            .expect("claim");
        assert_eq!(claimed.len(), 1);
    });
    let status = status_json(&config);
    assert_eq!(c01(&status), (2, 1), "{status:#}");
    assert_eq!(
        status["counted_by"],
        serde_json::json!({"from": "node", "node": "node-a", "why": null}),
        "{status:#}"
    );
    let text = status_text(&config);
    assert!(
        text.contains("c01: node node-a, 2 pending, 1 running"),
        "{text}"
    );
    assert!(
        text.contains("(pending/running counted by node node-a)"),
        "{text}"
    );
    drop(store);
}
