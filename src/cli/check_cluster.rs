//! The `cluster` section of `arauto check` (with `[cluster]`): the CLI reads
//! the cluster itself with the configuration alone, so the section is the
//! same from any node or from a machine without a daemon.

use std::collections::BTreeSet;

use crate::cluster::inspect::{ClusterInspection, inspect};
use crate::cluster::ownership::Resource;
use crate::config::Config;
use crate::report::{CheckItem, CheckLine, CheckSection, Level, SectionKind};

fn line(item: CheckItem, status: Level, text: String, fix: Option<&str>) -> CheckLine {
    CheckLine {
        item,
        status,
        text,
        fix: fix.map(str::to_owned),
    }
}

/// The section for `config`'s cluster; `None` without `[cluster]`.
pub(crate) fn section(config: &Config) -> Option<CheckSection> {
    let cluster = config.cluster.as_ref()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let inspected = match runtime {
        Ok(runtime) => runtime
            .block_on(inspect(cluster))
            .map_err(|e| e.to_string()),
        Err(error) => Err(format!("cannot start the async runtime: {error}")),
    };
    let lines = match inspected {
        Ok(inspection) => lines(config, &inspection),
        Err(error) => vec![line(
            CheckItem::ClusterConnection,
            Level::Fail,
            error,
            Some(
                "start nats-server on the hosts in cluster.servers, or fix cluster.servers, the credentials or [cluster.tls]",
            ),
        )],
    };
    Some(CheckSection {
        kind: SectionKind::General,
        id: Some("cluster".to_owned()),
        title: format!("cluster (NATS JetStream, node {})", cluster.node_name),
        status: Level::Ok,
        lines,
    })
}

fn lines(config: &Config, inspection: &ClusterInspection) -> Vec<CheckLine> {
    let mut lines = vec![line(
        CheckItem::ClusterConnection,
        Level::Ok,
        format!(
            "connected to {} (servers: {}); JetStream domain: {}",
            inspection.connected,
            inspection.servers.join(", "),
            inspection.domain.as_deref().unwrap_or("none (the default)")
        ),
        None,
    )];
    if inspection.streams.is_empty() {
        lines.push(line(
            CheckItem::ClusterReplicas,
            Level::Warn,
            "no arauto streams or buckets yet".to_owned(),
            Some("start an arauto node with this [cluster]: it creates them"),
        ));
    }
    for stream in &inspection.streams {
        let (status, fix) = if stream.replicas > 1 && stream.leader.is_none() {
            (
                Level::Fail,
                Some("too few nats-servers are up for a RAFT majority: start the missing ones"),
            )
        } else if !stream.lagging.is_empty() {
            (
                Level::Warn,
                Some("a replica is behind or offline: check that nats-server's log and disk"),
            )
        } else {
            (Level::Ok, None)
        };
        let mut text = format!(
            "{}: {} replica{}",
            stream.name,
            stream.replicas,
            if stream.replicas == 1 { "" } else { "s" }
        );
        if let Some(leader) = &stream.leader {
            text.push_str(&format!(", leader {leader}"));
        }
        if !stream.current.is_empty() {
            text.push_str(&format!(", current: {}", stream.current.join(", ")));
        }
        if !stream.lagging.is_empty() {
            text.push_str(&format!(", lagging: {}", stream.lagging.join(", ")));
        }
        lines.push(line(CheckItem::ClusterReplicas, status, text, fix));
    }
    if inspection.live_nodes.is_empty() {
        lines.push(line(
            CheckItem::ClusterOwnership,
            Level::Warn,
            "no live arauto node".to_owned(),
            Some("start arauto on the nodes (systemctl start arauto)"),
        ));
    } else {
        lines.push(line(
            CheckItem::ClusterOwnership,
            Level::Ok,
            format!("live nodes: {}", inspection.live_nodes.join(", ")),
            None,
        ));
    }
    let configured = inspection.configured_slots;
    match inspection.recorded_slots {
        Some(recorded) if recorded != configured => lines.push(line(
            CheckItem::ClusterOwnership,
            Level::Fail,
            format!(
                "cluster.lease_slots = {configured} here, but the cluster records {recorded}: a node \
                 with this configuration refuses to start while others are live"
            ),
            Some("give every node the same cluster.lease_slots; to change it, stop every node first"),
        )),
        recorded => {
            let per_node: Vec<String> = inspection
                .slots_per_node()
                .iter()
                .map(|(node, count)| format!("{node} {count}"))
                .collect();
            lines.push(line(
                CheckItem::ClusterOwnership,
                Level::Ok,
                format!(
                    "{configured} lease slots ({}); slots held per node: {}",
                    if recorded.is_some() {
                        "recorded in the cluster"
                    } else {
                        "not recorded yet: no node has started"
                    },
                    if per_node.is_empty() {
                        "none".to_owned()
                    } else {
                        per_node.join(", ")
                    }
                ),
                None,
            ));
        }
    }
    if inspection.legacy_leases > 0 {
        lines.push(line(
            CheckItem::ClusterOwnership,
            Level::Warn,
            format!(
                "{} per-store lease keys of an older arauto are in the lease bucket",
                inspection.legacy_leases
            ),
            Some(
                "an upgrade to lease slots is stop-all/start-all: nodes ignore the keys once they \
                 ended and delete them; while one may be live they hold no slot",
            ),
        ));
    }
    let enabled: Vec<&str> = config
        .enabled_stores()
        .flat_map(|s| s.channels.iter().map(String::as_str))
        .collect();
    let channels: BTreeSet<&str> =
        crate::config::channels::with_fallbacks(&config.channels, enabled);
    let resources = config
        .enabled_stores()
        .map(|s| Resource::Store(s.id.clone()))
        .chain(channels.iter().map(|c| Resource::Channel((*c).to_owned())));
    let slots = inspection.recorded_slots.unwrap_or(configured);
    for resource in resources {
        let slot = resource.slot(slots);
        match inspection.holder_of(&resource) {
            Some(node) => lines.push(line(
                CheckItem::ClusterOwnership,
                Level::Ok,
                format!("{resource}: owned by node {node} (slot {slot})"),
                None,
            )),
            None => lines.push(line(
                CheckItem::ClusterOwnership,
                Level::Warn,
                format!("{resource}: no node holds its lease (slot {slot})"),
                Some("a node takes it within the lease TTL; if it stays free, check that the nodes run with the same configuration"),
            )),
        }
    }
    lines
}
