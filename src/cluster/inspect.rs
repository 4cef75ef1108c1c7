//! What `arauto check` shows of the cluster: the connection, the JetStream
//! domain, the health of every stream and bucket arauto keeps (RAFT leader,
//! replicas current or lagging), the live nodes, the slot count and which
//! node holds which slot (and so which store and channel: a store's slot is
//! computed from its id, `ownership::slot_of`). Read with the configuration alone, from any node or
//! from a machine that only has the file: nothing here needs the daemon.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream;
use futures::TryStreamExt;
use serde::Deserialize;

use super::connect::{self, ConnectError};
use super::ownership::{
    LeaseValue, OwnershipOptions, Resource, SLOTS_RECORD_KEY, SlotsRecord, is_legacy_lease_key,
    slot_from_key,
};
use crate::config::cluster::ClusterConfig;

/// How long `check` waits for the servers before saying they do not answer.
const CHECK_CONNECT_WAIT: Duration = Duration::from_secs(5);

/// One stream (or KV bucket) and its replicas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamHealth {
    /// The stream's name (`KV_<bucket>` for a bucket).
    pub name: String,
    /// The RAFT leader's server name, when the stream is replicated.
    pub leader: Option<String>,
    /// Configured replicas.
    pub replicas: usize,
    /// Followers that are behind or offline: `name (lag N)`, `name (offline)`.
    pub lagging: Vec<String>,
    /// Followers up to date.
    pub current: Vec<String>,
}

/// Everything `check` reports about the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterInspection {
    /// `cluster.servers`.
    pub servers: Vec<String>,
    /// Which server the client talks to.
    pub connected: String,
    /// The JetStream domain the server announces, if any.
    pub domain: Option<String>,
    /// arauto's streams and buckets (by name prefix).
    pub streams: Vec<StreamHealth>,
    /// Nodes with a fresh heartbeat.
    pub live_nodes: Vec<String>,
    /// The slot count recorded in the lease bucket (`None`: no node has
    /// started yet, or the record is unreadable).
    pub recorded_slots: Option<u32>,
    /// `cluster.lease_slots` of this configuration.
    pub configured_slots: u32,
    /// Each slot lease: slot → holder (`None`: free or expired).
    pub slot_holders: BTreeMap<u32, Option<String>>,
    /// Lease keys of an arauto before slots still in the bucket
    /// (`store.<id>`, `channel.<id>`; live or not).
    pub legacy_leases: usize,
}

impl ClusterInspection {
    /// The node holding the slot of `resource` (`None`: nobody right now),
    /// by the recorded slot count, else the configured one.
    pub fn holder_of(&self, resource: &Resource) -> Option<&str> {
        let slots = self.recorded_slots.unwrap_or(self.configured_slots);
        self.slot_holders
            .get(&resource.slot(slots))
            .and_then(Option::as_deref)
    }

    /// Live or holding nodes → how many slots each holds.
    pub fn slots_per_node(&self) -> BTreeMap<&str, usize> {
        let mut counts: BTreeMap<&str, usize> = self
            .live_nodes
            .iter()
            .map(|node| (node.as_str(), 0))
            .collect();
        for holder in self.slot_holders.values().flatten() {
            *counts.entry(holder.as_str()).or_insert(0) += 1;
        }
        counts
    }
}

/// Why the cluster could not be inspected.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// No connection.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// A JetStream request failed.
    #[error("JetStream at {servers} did not answer ({what}): {source}")]
    JetStream {
        /// `cluster.servers`.
        servers: String,
        /// What was asked.
        what: String,
        /// The client's error.
        source: async_nats::Error,
    },
}

#[derive(Deserialize)]
struct Heartbeat {
    expires_at_ms: i64,
}

/// Connect with `cluster` and read what `check` shows.
pub async fn inspect(cluster: &ClusterConfig) -> Result<ClusterInspection, InspectError> {
    let client = connect::connect(cluster, CHECK_CONNECT_WAIT).await?;
    let connected = connect::describe_connection(&client);
    let domain = client.server_info().domain.clone();
    let servers = cluster.servers.join(", ");
    let js = jetstream::new(client);
    let failed = |what: &str| {
        let servers = servers.clone();
        let what = what.to_owned();
        move |source: async_nats::Error| InspectError::JetStream {
            servers,
            what,
            source,
        }
    };

    let prefix = &cluster.prefix;
    let mut names: Vec<String> = js
        .stream_names()
        .try_collect()
        .await
        .map_err(|e| failed("list streams")(e.into()))?;
    names.retain(|name| {
        name.starts_with(&format!("{prefix}_")) || name.starts_with(&format!("KV_{prefix}_"))
    });
    names.sort();
    let mut streams = Vec::with_capacity(names.len());
    for name in names {
        let stream = js
            .get_stream(&name)
            .await
            .map_err(|e| failed(&format!("stream {name}"))(e.into()))?;
        let info = stream.cached_info();
        let (leader, mut lagging, mut current) = (
            info.cluster.as_ref().and_then(|c| c.leader.clone()),
            Vec::new(),
            Vec::new(),
        );
        for peer in info.cluster.iter().flat_map(|c| &c.replicas) {
            if peer.offline {
                lagging.push(format!("{} (offline)", peer.name));
            } else if !peer.current {
                lagging.push(format!("{} (lag {})", peer.name, peer.lag.unwrap_or(0)));
            } else {
                current.push(peer.name.clone());
            }
        }
        streams.push(StreamHealth {
            name,
            leader,
            replicas: info.config.num_replicas,
            lagging,
            current,
        });
    }

    let options = OwnershipOptions::from_config(cluster);
    let now = jiff::Timestamp::now().as_millisecond();
    let mut live_nodes = Vec::new();
    if let Ok(nodes) = js.get_key_value(options.nodes_bucket()).await {
        let keys: Vec<String> = nodes
            .keys()
            .await
            .map_err(|e| failed("list nodes")(e.into()))?
            .try_collect()
            .await
            .map_err(|e| failed("list nodes")(e.into()))?;
        for key in keys {
            let beat = nodes
                .get(&key)
                .await
                .ok()
                .flatten()
                .and_then(|v| serde_json::from_slice::<Heartbeat>(&v).ok());
            if beat.is_some_and(|b| b.expires_at_ms > now) {
                live_nodes.push(key);
            }
        }
        live_nodes.sort();
    }
    let mut slot_holders = BTreeMap::new();
    let mut recorded_slots = None;
    let mut legacy_leases = 0;
    if let Ok(leases) = js.get_key_value(options.leases_bucket()).await {
        let keys: Vec<String> = leases
            .keys()
            .await
            .map_err(|e| failed("list leases")(e.into()))?
            .try_collect()
            .await
            .map_err(|e| failed("list leases")(e.into()))?;
        for key in keys {
            if key == SLOTS_RECORD_KEY {
                recorded_slots = leases
                    .get(&key)
                    .await
                    .ok()
                    .flatten()
                    .and_then(|v| serde_json::from_slice::<SlotsRecord>(&v).ok())
                    .map(|record| record.slots);
                continue;
            }
            if is_legacy_lease_key(&key) {
                legacy_leases += 1;
                continue;
            }
            let Some(slot) = slot_from_key(&key) else {
                continue;
            };
            let holder = leases
                .get(&key)
                .await
                .ok()
                .flatten()
                .and_then(|v| serde_json::from_slice::<LeaseValue>(&v).ok())
                .filter(|lease| lease.expires_at_ms > now)
                .map(|lease| lease.holder);
            slot_holders.insert(slot, holder);
        }
    }
    Ok(ClusterInspection {
        servers: cluster.servers.clone(),
        connected,
        domain,
        streams,
        live_nodes,
        recorded_slots,
        configured_slots: cluster.lease_slots,
        slot_holders,
        legacy_leases,
    })
}
