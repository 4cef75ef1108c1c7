//! `arauto status` with `[cluster]`: the cluster's state, read from NATS
//! with the configuration alone (as `check`, `report` and `queue` do), so it
//! is the same from any node or from a machine without a daemon: the live
//! nodes (heartbeats) and what each holds (slots, and the stores and
//! channels of those slots), every store's last poll, next
//! poll and last error, and every channel's state. The local daemon's own
//! status follows when one runs (`status.rs`).
//!
//! Each channel's pending and running counts are asked of a running node
//! first (`crate::cluster::channel_counts`: every daemon holds all jobs in
//! its view), so no job is read; only when no node answers within
//! [`ASK_WAIT`], or the answering node's view of the jobs is not current, does
//! this command read the whole jobs bucket and count itself. The output says
//! which ([`CountedBy`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use anyhow::Context as _;
use jiff::Timestamp;
use serde::Serialize;

use super::backend::{ClusterView, connect_cluster, open_cluster_on};
use crate::cluster::channel_counts::{self, Answer, Counts};
use crate::cluster::inspect::inspect;
use crate::cluster::ownership::Resource;
use crate::config::Config;
use crate::queue::StateStore as _;
use crate::queue::nats::ViewScope;

/// The cluster part of `arauto status`.
#[derive(Debug, Serialize)]
pub(crate) struct ClusterStatus {
    /// The server this command reached.
    pub connected: String,
    /// How many lease slots stores and channels hash into (as recorded in
    /// the cluster, else as configured).
    pub slots: u32,
    /// Live nodes (with a current heartbeat), each with what it holds.
    pub nodes: Vec<NodeStatus>,
    /// Every store of the configuration, and any other the cluster has a status for.
    pub stores: Vec<StoreLine>,
    /// Every channel of the configuration, and any other the cluster has jobs or a status for.
    pub channels: Vec<ChannelLine>,
    /// Where the channels' pending and running counts come from.
    pub counted_by: CountedBy,
}

/// Where the channels' pending and running counts come from: a running
/// node's view (`from: "node"`, with its name), or this command's own read of
/// the jobs bucket (`from: "jobs_bucket"`, with why).
#[derive(Debug, Serialize)]
pub(crate) struct CountedBy {
    /// `node` or `jobs_bucket`.
    pub from: &'static str,
    /// The node that counted.
    pub node: Option<String>,
    /// Why the jobs bucket was read.
    pub why: Option<String>,
}

/// How long `status` waits for a node's counts before it reads the jobs
/// bucket itself (a node answers within `channel_counts::CATCH_UP`; with no
/// daemon anywhere the server says so at once).
const ASK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// One live node.
#[derive(Debug, Serialize)]
pub(crate) struct NodeStatus {
    pub name: String,
    /// Lease slots it holds.
    pub slots: usize,
    pub stores: Vec<String>,
    pub channels: Vec<String>,
}

/// One store as the cluster has it.
#[derive(Debug, Serialize)]
pub(crate) struct StoreLine {
    pub id: String,
    /// The node holding its lease (none: nobody polls it right now).
    pub owner: Option<String>,
    pub last_poll_started_at: Option<Timestamp>,
    pub last_poll_ok_at: Option<Timestamp>,
    /// The last start plus `poll_interval`, or the platform's `Retry-After`
    /// when later (none: never polled, or not in this configuration).
    pub next_poll_at: Option<Timestamp>,
    pub last_error: Option<String>,
    pub paused: Option<String>,
}

/// One channel as the cluster has it.
#[derive(Debug, Serialize)]
pub(crate) struct ChannelLine {
    pub id: String,
    pub owner: Option<String>,
    pub paused: Option<String>,
    pub pending: u64,
    pub running: u64,
    pub sent_today: u64,
    pub last_sent_at: Option<Timestamp>,
}

/// Reads the cluster's status for `config` (which has `[cluster]`).
pub(crate) async fn read(config: &Config) -> anyhow::Result<ClusterStatus> {
    let cluster = config
        .cluster
        .as_ref()
        .context("the configuration has no [cluster] section")?;
    let inspection = inspect(cluster).await?;
    let client = connect_cluster(cluster).await?;
    // A node's counts when one answers with a current view; else every
    // job, to count them here. The history stream is never read (sent
    // today is the channel's status).
    let (counts, counted_by) = match channel_counts::ask(&client, &cluster.prefix, ASK_WAIT).await {
        Ok(Answer {
            node,
            current: true,
            channels,
            ..
        }) => (
            Some(channels),
            CountedBy {
                from: "node",
                node: Some(node),
                why: None,
            },
        ),
        Ok(Answer { node, stale, .. }) => (
            None,
            CountedBy {
                from: "jobs_bucket",
                node: None,
                why: Some(format!(
                    "the view of the jobs of node {node} is {}",
                    stale.as_deref().unwrap_or("not current")
                )),
            },
        ),
        Err(no_answer) => (
            None,
            CountedBy {
                from: "jobs_bucket",
                node: None,
                why: Some(no_answer.to_string()),
            },
        ),
    };
    let view = ClusterView {
        jobs: if counts.is_some() {
            ViewScope::Nothing
        } else {
            ViewScope::All
        },
        history: ViewScope::Nothing,
    };
    let store = open_cluster_on(client, cluster, &config.daemon.timezone, false, &view).await?;

    let mut nodes: BTreeMap<String, NodeStatus> = inspection
        .slots_per_node()
        .into_iter()
        .map(|(name, slots)| {
            (
                name.to_owned(),
                NodeStatus {
                    name: name.to_owned(),
                    slots,
                    stores: Vec::new(),
                    channels: Vec::new(),
                },
            )
        })
        .collect();
    let store_ids: BTreeSet<String> = config
        .stores
        .keys()
        .cloned()
        .chain(store.stores().await?)
        .collect();
    let mut stores = Vec::with_capacity(store_ids.len());
    for id in store_ids {
        let status = store.store_status(&id).await?.unwrap_or_default();
        let interval = config.stores.get(&id).map(|s| s.poll_interval);
        let next = status
            .last_poll_started_at
            .zip(interval)
            .and_then(|(at, every)| at.checked_add(every).ok());
        let next_poll_at = match (next, status.poll_not_before) {
            (Some(next), Some(hint)) => Some(next.max(hint)),
            (next, hint) => next.or(hint),
        };
        let owner = inspection
            .holder_of(&Resource::Store(id.clone()))
            .map(str::to_owned);
        if let Some(node) = owner.as_ref().and_then(|owner| nodes.get_mut(owner)) {
            node.stores.push(id.clone());
        }
        stores.push(StoreLine {
            owner,
            last_poll_started_at: status.last_poll_started_at,
            last_poll_ok_at: status.last_poll_ok_at,
            next_poll_at,
            last_error: status.last_error.map(|error| {
                format!(
                    "{} at {}: {}",
                    error.class.as_str(),
                    error.at,
                    error.message
                )
            }),
            paused: status.paused.map(|pause| pause.reason),
            id,
        });
    }

    let channel_ids: BTreeSet<String> = config
        .channels
        .keys()
        .cloned()
        .chain(store.channels().await?)
        .chain(counts.iter().flat_map(|counts| counts.keys().cloned()))
        .collect();
    let mut channels = Vec::with_capacity(channel_ids.len());
    for id in channel_ids {
        let status = store.channel_status(&id).await?;
        let stats = match &counts {
            Some(counts) => counts.get(&id).copied().unwrap_or_default(),
            None => Counts::from(store.channel_stats(&id).await?),
        };
        let owner = inspection
            .holder_of(&Resource::Channel(id.clone()))
            .map(str::to_owned);
        if let Some(node) = owner.as_ref().and_then(|owner| nodes.get_mut(owner)) {
            node.channels.push(id.clone());
        }
        channels.push(ChannelLine {
            owner,
            paused: status.paused.map(|pause| pause.reason),
            pending: stats.pending,
            running: stats.running,
            sent_today: status.sent_today,
            last_sent_at: status.last_sent_at,
            id,
        });
    }
    Ok(ClusterStatus {
        slots: inspection
            .recorded_slots
            .unwrap_or(inspection.configured_slots),
        connected: inspection.connected,
        nodes: nodes.into_values().collect(),
        stores,
        channels,
        counted_by,
    })
}

/// The cluster status as text.
pub(crate) fn text(status: &ClusterStatus) -> String {
    let mut out = String::new();
    let time = |at: Option<Timestamp>| at.map_or_else(|| "-".to_owned(), |at| at.to_string());
    let _ = writeln!(out, "cluster (connected to {})", status.connected);
    let _ = writeln!(
        out,
        "  nodes: {} ({} lease slots)",
        status.nodes.len(),
        status.slots
    );
    for node in &status.nodes {
        let _ = writeln!(
            out,
            "    {}: {} slot(s), {} store(s), {} channel(s){}",
            node.name,
            node.slots,
            node.stores.len(),
            node.channels.len(),
            if node.channels.is_empty() {
                String::new()
            } else {
                format!(" ({})", node.channels.join(", "))
            }
        );
    }
    let _ = writeln!(out, "  stores: {}", status.stores.len());
    for line in &status.stores {
        let _ = writeln!(
            out,
            "    {}: node {}, last poll {}, next poll {}{}{}",
            line.id,
            line.owner.as_deref().unwrap_or("(none)"),
            time(line.last_poll_started_at),
            time(line.next_poll_at),
            line.paused
                .as_ref()
                .map_or_else(String::new, |reason| format!(", PAUSED: {reason}")),
            line.last_error
                .as_ref()
                .map_or_else(String::new, |error| format!(", last error {error}")),
        );
    }
    let _ = writeln!(out, "  channels: {}", status.channels.len());
    let counted = &status.counted_by;
    let _ = match (&counted.node, &counted.why) {
        (Some(node), _) => writeln!(out, "    (pending/running counted by node {node})"),
        (None, why) => writeln!(
            out,
            "    (pending/running counted from the jobs bucket: {})",
            why.as_deref().unwrap_or("no node answered")
        ),
    };
    for line in &status.channels {
        let _ = writeln!(
            out,
            "    {}: node {}, {} pending, {} running, {} sent today, last sent {}{}",
            line.id,
            line.owner.as_deref().unwrap_or("(none)"),
            line.pending,
            line.running,
            line.sent_today,
            time(line.last_sent_at),
            line.paused
                .as_ref()
                .map_or_else(String::new, |reason| format!(", PAUSED: {reason}")),
        );
    }
    out
}
