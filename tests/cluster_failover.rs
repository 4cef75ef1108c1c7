//! Several arauto nodes sharing stores and channels over a real three-server
//! NATS JetStream cluster on 127.0.0.1 (issue 15, point 6), against the fake
//! Loja Integrada and one fake webhook receiver ([`support::cluster`]).
//!
//! What each test shows, from the fakes' records (every node's channels add
//! `X-Arauto-Node: <name>`, so the receiver knows who sent each message) and
//! the nodes' lease log lines:
//!
//! * the stores and channels spread over three nodes, each held by one;
//! * a SIGKILLed node's stores and channels move (its lease expires) and the
//!   job it had claimed, caught mid-send, is sent again once — the receiver
//!   sees that job at most twice;
//! * a SIGTERMed node hands everything over as it stops: the others take
//!   over from a released lease, not an expired one;
//! * a SIGKILLed nats-server leaves two, and messages keep flowing;
//! * a SIGSTOPped node, once its lease lapsed and another node sent its
//!   jobs, sends none of them after SIGCONT;
//! * SIGHUP reloads a cluster node: a store added to every node's
//!   configuration is polled by exactly one.
//!
//! Every test lives in the `nats_cluster` module: `make test` skips
//! `nats_cluster::` in its main run and runs these tests last, one test at
//! a time, so the multi-process tests neither hold up the rest of the suite
//! nor starve each other's lease renewals on two cores.

#![cfg(test)]

mod nats_cluster {
    use std::collections::{BTreeMap, BTreeSet};

    use arauto_sim::channels::{Endpoint, Reply};
    use nix::sys::signal::Signal;

    use crate::support::cluster::{Cluster, Send, await_condition};
    use crate::support::daemon::PATIENCE;
    use crate::support::nats::NatsCluster;
    use crate::support::system::{ChannelKnobs, create, order_for, tally, wait_polls};

    /// The harness itself: three servers elect a metadata leader, survive
    /// the leader's SIGKILL, and take it back after a restart.
    #[test]
    fn harness_cluster_survives_a_killed_leader_and_takes_it_back() {
        let mut nats = NatsCluster::start(3);
        assert_eq!(nats.urls().len(), 3);
        let leader = nats
            .meta_leader()
            .expect("a metadata leader once start returned");
        nats.kill_and_await_leader(leader);
        let new_leader = nats
            .meta_leader()
            .expect("a new metadata leader among the two left");
        assert_ne!(new_leader, leader, "the killed server cannot lead");
        nats.restart(leader);
        assert!(nats.servers[leader].is_running());
    }

    /// The single-server variant is ready without a cluster.
    #[test]
    fn harness_single_server_is_ready() {
        let nats = NatsCluster::single();
        assert_eq!(nats.len(), 1);
        assert!(
            nats.monitor(0, "/healthz?js-enabled-only=true")
                .contains("ok")
        );
    }

    /// One order in every store, after the nodes settled; waits until the
    /// receiver accepted one message more per store; returns the sends
    /// that arrived from then on.
    fn one_order_per_store(cluster: &Cluster, label: &str) -> Vec<Send> {
        let before = cluster.sends().len();
        let received = cluster.hook.received().len();
        for (serial, shop) in (1u32..).zip(&cluster.shops) {
            create(shop, order_for(label, serial, "aguardando_pagamento"));
        }
        cluster.wait_received(received + cluster.shops.len());
        cluster.sends()[before..].to_vec()
    }

    /// No job reached the receiver more than `most` times.
    fn assert_repeats_at_most(sends: &[Send], most: usize) {
        let per_job = tally(sends.iter().map(|s| s.job.clone()));
        for (job, count) in per_job {
            assert!(
                count <= most,
                "job {job} reached the receiver {count} times: {sends:#?}"
            );
        }
    }

    #[test]
    fn stores_and_channels_spread_over_three_nodes_each_held_by_one() {
        let mut cluster = Cluster::new(3, 12, 6);
        for name in ["a", "b", "c"] {
            cluster.add_node(name);
        }
        let owners = cluster.await_settled();
        let per_node = tally(owners.values().copied());
        assert_eq!(
            per_node.len(),
            3,
            "every node holds something: {}",
            cluster.ownership_report()
        );

        // Each store's polls happen on its owner only.
        let marks: Vec<usize> = cluster
            .nodes
            .iter()
            .map(|n| n.daemon.stderr.len())
            .collect();
        for shop in &cluster.shops {
            let owner = owners[&format!("store {}", shop.id)];
            wait_polls(
                &cluster.nodes[owner].daemon.stderr,
                &shop.id,
                marks[owner],
                2,
            );
        }
        for (i, node) in cluster.nodes.iter().enumerate() {
            for line in &node.daemon.stderr.lines()[marks[i]..] {
                if let Some(store) = crate::support::system::field(line, "store")
                    && line.contains("poll complete")
                {
                    assert_eq!(
                        owners[&format!("store {store}")],
                        i,
                        "node {} polled store {store}, which it does not hold: {line}",
                        node.name
                    );
                }
            }
        }

        // Each message goes out once, from the node holding its channel.
        let sends = one_order_per_store(&cluster, "Spread");
        assert_repeats_at_most(&sends, 1);
        for send in &sends {
            let channel = send.path.trim_start_matches("/hooks/");
            let owner = owners[&format!("channel {channel}")];
            assert_eq!(
                send.node,
                cluster.nodes[owner].name,
                "channel {channel} was held by {} when ownership settled, yet {} sent {}; now: {}\n{}",
                cluster.nodes[owner].name,
                send.node,
                send.job,
                cluster.ownership_report(),
                cluster.logs_of_interest()
            );
        }
    }

    /// The sender call timeout of the SIGKILL test's channels.
    const CLAIM_CALL_TIMEOUT: &str = "2s";
    /// Longest wait for a dead node's claimed job to be sent by another:
    /// its claim ends [`CLAIM_CALL_TIMEOUT`] + 30 s after it was taken, and
    /// the new owner's dispatcher looks again within 30 s.
    const CLAIM_RECOVERY: std::time::Duration = std::time::Duration::from_secs(90);

    /// The node holding channel `c01` (which store `s01` notifies) and the
    /// other one, of a two-node cluster: the victim of a test and the
    /// survivor.
    fn victim_and_survivor(owners: &BTreeMap<String, usize>) -> (usize, usize) {
        let victim = owners["channel c01"];
        (victim, 1 - victim)
    }

    #[test]
    fn a_sigkilled_node_s_stores_and_channels_move_and_its_claimed_job_is_sent_again_once() {
        let mut cluster = Cluster::new(3, 6, 2);
        // A claimed job is recovered once its claim ends: the plugin call
        // timeout plus the dispatcher's margin (30 s). A short call timeout
        // keeps that within the test's patience.
        cluster.channel_knobs = || ChannelKnobs {
            sandbox: format!("call_timeout = {CLAIM_CALL_TIMEOUT:?}"),
            ..ChannelKnobs::default()
        };
        cluster.add_node("a");
        cluster.add_node("b");
        let owners = cluster.await_settled();
        let (victim, survivor) = victim_and_survivor(&owners);
        let victim_name = cluster.nodes[victim].name.clone();
        let survivor_name = cluster.nodes[survivor].name.clone();

        // The victim's next send hangs at the receiver: it dies with the job claimed.
        cluster.hook.enqueue(
            Endpoint::Send,
            Reply::delayed(PATIENCE * 2, Reply::success()),
        );
        let before = cluster.sends().len();
        create(
            &cluster.shops[0],
            order_for("Claimed", 1, "aguardando_pagamento"),
        );
        await_condition(
            CLAIM_RECOVERY,
            || {
                format!(
                    "{victim_name} never sent on c01: {:#?}\n{}",
                    cluster.sends(),
                    cluster.logs_of_interest()
                )
            },
            || {
                cluster.sends()[before..]
                    .iter()
                    .any(|s| s.node == victim_name)
            },
        );
        let claimed = cluster.sends()[before].job.clone();
        let mark = cluster.nodes[survivor].daemon.stderr.len();
        cluster.nodes[victim].daemon.kill();

        // The survivor takes over everything the victim held, from an
        // expired lease…
        let owners_after = cluster.await_settled();
        assert!(owners_after.values().all(|&owner| owner == survivor));
        for (resource, owner) in &owners {
            if *owner == victim {
                cluster.nodes[survivor].daemon.stderr.wait_for_all_from(
                    mark,
                    &[&format!("took over {resource} "), "its lease expired"],
                );
            }
        }
        // …sends the claimed job once more, and every store still notifies.
        await_condition(
            CLAIM_RECOVERY,
            || {
                format!(
                    "{survivor_name} never sent the claimed job {claimed}: {:#?}\n{}",
                    cluster.sends(),
                    cluster.logs_of_interest()
                )
            },
            || {
                cluster
                    .sends()
                    .iter()
                    .any(|s| s.job == claimed && s.node == survivor_name)
            },
        );
        let sends = one_order_per_store(&cluster, "After");
        let all = cluster.sends();
        let claimed_by: Vec<&str> = all
            .iter()
            .filter(|s| s.job == claimed)
            .map(|s| s.node.as_str())
            .collect();
        assert_eq!(
            claimed_by,
            [victim_name.as_str(), survivor_name.as_str()],
            "the claimed job is sent by the victim (cut off) and once more by the survivor"
        );
        assert_repeats_at_most(&all, 2);
        assert_repeats_at_most(&sends, 1);
        assert!(
            sends.iter().all(|s| s.node == survivor_name),
            "only {survivor_name} is left: {sends:#?}"
        );
    }

    #[test]
    fn a_sigtermed_node_hands_over_at_once() {
        let mut cluster = Cluster::new(3, 6, 2);
        cluster.add_node("a");
        cluster.add_node("b");
        let owners = cluster.await_settled();
        let (victim, survivor) = victim_and_survivor(&owners);
        let of_victim: Vec<&String> = owners
            .iter()
            .filter(|(_, owner)| **owner == victim)
            .map(|(resource, _)| resource)
            .collect();

        let mark = cluster.nodes[survivor].daemon.stderr.len();
        cluster.nodes[victim].daemon.signal(Signal::SIGTERM);
        assert!(
            cluster.nodes[victim].daemon.wait_exit(PATIENCE).success(),
            "the stopped node exits cleanly"
        );
        for resource in &of_victim {
            cluster.nodes[victim]
                .daemon
                .stderr
                .wait_for(&format!("handed over {resource} "));
            // Handed over: the survivor takes a released lease, not an expired one.
            let (_, line) = cluster.nodes[survivor]
                .daemon
                .stderr
                .wait_for_from(mark, &format!("took over {resource} "));
            assert!(
                line.contains("(handed over)"),
                "{resource} moved after its lease expired instead of at the hand-over: {line}"
            );
        }
        let survivor_name = cluster.nodes[survivor].name.clone();
        let sends = one_order_per_store(&cluster, "Handover");
        assert_repeats_at_most(&sends, 1);
        assert!(sends.iter().all(|s| s.node == survivor_name));
    }

    #[test]
    fn with_one_nats_server_killed_the_cluster_goes_on_with_two() {
        let mut cluster = Cluster::new(3, 4, 2);
        cluster.add_node("a");
        cluster.add_node("b");
        cluster.await_settled();
        let first = one_order_per_store(&cluster, "Before");
        assert_repeats_at_most(&first, 1);

        // The metadata leader is the worst server to lose.
        let leader = cluster.nats.meta_leader().unwrap_or(0);
        cluster.nats.kill_and_await_leader(leader);
        let sends = one_order_per_store(&cluster, "Two");
        assert_repeats_at_most(&sends, 1);
        // Both nodes are still alive and still hold what they held.
        for node in &cluster.nodes {
            assert!(node.daemon.is_running(), "node {} died", node.name);
        }
        cluster.await_settled();

        // The server comes back; nothing is sent twice across its return.
        cluster.nats.restart(leader);
        let sends = one_order_per_store(&cluster, "Three");
        assert_repeats_at_most(&sends, 1);
        assert_repeats_at_most(&cluster.sends(), 1);
    }

    #[test]
    fn a_sigstopped_node_sends_nothing_after_its_lease_lapsed() {
        let mut cluster = Cluster::new(3, 2, 2);
        cluster.add_node("a");
        cluster.add_node("b");
        let owners = cluster.await_settled();
        let (victim, survivor) = victim_and_survivor(&owners);
        let victim_name = cluster.nodes[victim].name.clone();
        let survivor_name = cluster.nodes[survivor].name.clone();

        // The victim is frozen mid-send with more jobs of c01 queued behind.
        cluster.hook.enqueue(
            Endpoint::Send,
            Reply::delayed(PATIENCE / 3, Reply::success()),
        );
        let before = cluster.sends().len();
        let received = cluster.hook.received().len();
        for serial in 1..=3 {
            create(
                &cluster.shops[0],
                order_for("Frozen", serial, "aguardando_pagamento"),
            );
        }
        await_condition(
            PATIENCE,
            || {
                format!(
                    "{victim_name} never sent on c01: {:#?}\n{}",
                    cluster.sends(),
                    cluster.logs_of_interest()
                )
            },
            || {
                cluster.sends()[before..]
                    .iter()
                    .any(|s| s.node == victim_name)
            },
        );
        let mark = cluster.nodes[survivor].daemon.stderr.len();
        cluster.nodes[victim].daemon.signal(Signal::SIGSTOP);

        // The survivor takes c01 over once the victim's lease lapsed, and
        // the three messages arrive (the frozen request's answer included).
        cluster.nodes[survivor]
            .daemon
            .stderr
            .wait_for_all_from(mark, &["took over channel c01 ", "its lease expired"]);
        cluster.wait_received(received + 3);
        await_condition(
            PATIENCE,
            || format!("{survivor_name} sent no job of c01: {:#?}", cluster.sends()),
            || {
                cluster.sends()[before..]
                    .iter()
                    .any(|s| s.node == survivor_name)
            },
        );
        let sent_by_survivor: BTreeSet<String> = cluster.sends()[before..]
            .iter()
            .filter(|s| s.node == survivor_name)
            .map(|s| s.job.clone())
            .collect();

        // The victim wakes up: it notices its lease is gone and sends none
        // of the jobs the survivor sent.
        let woke = cluster.sends().len();
        let victim_mark = cluster.nodes[victim].daemon.stderr.len();
        cluster.nodes[victim].daemon.signal(Signal::SIGCONT);
        cluster.nodes[victim]
            .daemon
            .stderr
            .wait_for_from(victim_mark, "lost lease of channel c01");
        // A new order after the wake-up: whoever holds c01 by then sends it,
        // after anything the victim would have sent on waking up.
        let received = cluster.hook.received().len();
        create(
            &cluster.shops[0],
            order_for("Awake", 9, "aguardando_pagamento"),
        );
        cluster.wait_received(received + 1);
        let stale: Vec<Send> = cluster.sends()[woke..]
            .iter()
            .filter(|s| s.node == victim_name && sent_by_survivor.contains(&s.job))
            .cloned()
            .collect();
        assert!(
            stale.is_empty(),
            "{victim_name} sent, after its lease lapsed, jobs {survivor_name} had sent: {stale:#?}"
        );
        assert_repeats_at_most(&cluster.sends(), 2);
    }

    #[test]
    fn sighup_reloads_a_cluster_node() {
        let mut cluster = Cluster::new(3, 2, 1);
        cluster.add_node("a");
        cluster.add_node("b");
        cluster.await_settled();

        // A store added to every node's configuration, then SIGHUP.
        let added = cluster.world.shop("s99");
        cluster.shops.push(added);
        for node in &cluster.nodes {
            let tables = cluster.tables(&node.name);
            cluster.world.rewrite(&node.daemon, &tables);
        }
        for i in 0..cluster.nodes.len() {
            let daemon = &mut cluster.nodes[i].daemon;
            daemon.signal(Signal::SIGHUP);
            daemon.await_notice("READY=1");
        }
        let owners = cluster.await_settled();
        assert!(owners.contains_key("store s99"));
        let sends = one_order_per_store(&cluster, "Reloaded");
        assert_repeats_at_most(&sends, 1);
    }
}
