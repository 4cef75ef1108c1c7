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
//! `nats_cluster::` in its main run and runs these binaries last, one test at
//! a time, so the multi-process tests neither hold up the rest of the suite
//! nor starve each other's lease renewals on two cores.

#![cfg(test)]

mod support;

mod nats_cluster {
    use std::collections::{BTreeMap, BTreeSet};

    use arauto_sim::channels::{Endpoint, Reply};
    use nix::sys::signal::Signal;

    use crate::support::cluster::{Cluster, Send, await_condition};
    use crate::support::daemon::PATIENCE;
    use crate::support::nats::NatsCluster;
    use crate::support::system::{create, order_for, tally, wait_polls};

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
        cluster
            .world
            .wait_received(&cluster.hook, received + cluster.shops.len());
        cluster.sends()[before..].to_vec()
    }

    /// The node that sent each job (the first request of each webhook-id).
    fn sender_of_each_job(sends: &[Send]) -> BTreeMap<String, String> {
        let mut senders = BTreeMap::new();
        for send in sends {
            senders
                .entry(send.job.clone())
                .or_insert_with(|| send.node.clone());
        }
        senders
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
                send.node, cluster.nodes[owner].name,
                "channel {channel} is held by {}, yet {} sent {}",
                cluster.nodes[owner].name, send.node, send.job
            );
        }
    }

    #[test]
    fn a_sigkilled_node_s_stores_and_channels_move_and_its_claimed_job_is_sent_again_once() {
        let mut cluster = Cluster::new(3, 6, 2);
        let a = cluster.add_node("a");
        let b = cluster.add_node("b");
        let owners = cluster.await_settled();
        let channel_of_b = cluster
            .channels
            .iter()
            .find(|c| owners[&format!("channel {c}")] == b)
            .cloned()
            .unwrap_or_else(|| panic!("node b holds no channel: {}", cluster.ownership_report()));
        let store_index = (0..cluster.shops.len())
            .find(|i| cluster.channel_of(*i) == channel_of_b)
            .expect("a store of that channel");

        // b's next send hangs at the receiver: b dies with the job claimed.
        cluster.hook.enqueue(
            Endpoint::Send,
            Reply::delayed(PATIENCE * 2, Reply::success()),
        );
        let before = cluster.sends().len();
        create(
            &cluster.shops[store_index],
            order_for("Claimed", 1, "aguardando_pagamento"),
        );
        await_condition(
            PATIENCE,
            || format!("b never sent on {channel_of_b}: {:#?}", cluster.sends()),
            || cluster.sends()[before..].iter().any(|s| s.node == "b"),
        );
        let claimed = cluster.sends()[before].job.clone();
        cluster.nodes[b].daemon.kill();

        // a takes over everything b held, from an expired lease…
        let marks = cluster.nodes[a].daemon.stderr.len();
        let owners_after = cluster.await_settled();
        assert!(owners_after.values().all(|&owner| owner == a));
        for (resource, owner) in &owners {
            if *owner == b {
                cluster.nodes[a].daemon.stderr.wait_for_all_from(
                    marks,
                    &[&format!("took over {resource} "), "its lease expired"],
                );
            }
        }
        // …sends the claimed job once more, and every store still notifies.
        cluster.world.wait_received(&cluster.hook, 1);
        let sends = one_order_per_store(&cluster, "After");
        let all = cluster.sends();
        let claimed_sends: Vec<&Send> = all.iter().filter(|s| s.job == claimed).collect();
        assert_eq!(
            claimed_sends
                .iter()
                .map(|s| s.node.as_str())
                .collect::<Vec<_>>(),
            ["b", "a"],
            "the job b claimed is sent by b (cut off) and once more by a"
        );
        assert_repeats_at_most(&all, 2);
        assert_repeats_at_most(&sends, 1);
        assert!(
            sends.iter().all(|s| s.node == "a"),
            "only a is left: {sends:#?}"
        );
    }

    #[test]
    fn a_sigtermed_node_hands_over_at_once() {
        let mut cluster = Cluster::new(3, 6, 2);
        let a = cluster.add_node("a");
        let b = cluster.add_node("b");
        let owners = cluster.await_settled();
        let of_b: Vec<&String> = owners
            .iter()
            .filter(|(_, owner)| **owner == b)
            .map(|(resource, _)| resource)
            .collect();
        assert!(
            !of_b.is_empty(),
            "b holds something: {}",
            cluster.ownership_report()
        );

        let mark = cluster.nodes[a].daemon.stderr.len();
        cluster.nodes[b].daemon.signal(Signal::SIGTERM);
        assert!(
            cluster.nodes[b].daemon.wait_exit(PATIENCE).success(),
            "b stops cleanly"
        );
        for resource in &of_b {
            cluster.nodes[b]
                .daemon
                .stderr
                .wait_for(&format!("handed over {resource} "));
            // Handed over: a takes a released lease, not an expired one.
            let (_, line) = cluster.nodes[a]
                .daemon
                .stderr
                .wait_for_from(mark, &format!("took over {resource} "));
            assert!(
                line.contains("(handed over)"),
                "a took {resource} after its lease expired instead of at b's hand-over: {line}"
            );
        }
        let sends = one_order_per_store(&cluster, "Handover");
        assert_repeats_at_most(&sends, 1);
        assert!(sends.iter().all(|s| s.node == "a"));
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
        let a = cluster.add_node("a");
        let b = cluster.add_node("b");
        let owners = cluster.await_settled();
        let channel_of_b = cluster
            .channels
            .iter()
            .find(|c| owners[&format!("channel {c}")] == b)
            .cloned()
            .unwrap_or_else(|| panic!("node b holds no channel: {}", cluster.ownership_report()));
        let store_index = (0..cluster.shops.len())
            .find(|i| cluster.channel_of(*i) == channel_of_b)
            .expect("a store of that channel");

        // b is frozen mid-send with more jobs of its channel queued behind.
        cluster.hook.enqueue(
            Endpoint::Send,
            Reply::delayed(PATIENCE / 3, Reply::success()),
        );
        let before = cluster.sends().len();
        let received = cluster.hook.received().len();
        let shop = &cluster.shops[store_index];
        for serial in 1..=3 {
            create(shop, order_for("Frozen", serial, "aguardando_pagamento"));
        }
        await_condition(
            PATIENCE,
            || format!("b never sent on {channel_of_b}: {:#?}", cluster.sends()),
            || cluster.sends()[before..].iter().any(|s| s.node == "b"),
        );
        cluster.nodes[b].daemon.signal(Signal::SIGSTOP);

        // a takes the channel over once b's lease lapsed and sends all three.
        let mark = cluster.nodes[a].daemon.stderr.len();
        cluster.nodes[a].daemon.stderr.wait_for_all_from(
            mark,
            &[
                &format!("took over channel {channel_of_b} "),
                "its lease expired",
            ],
        );
        cluster.world.wait_received(&cluster.hook, received + 3);
        let sent_by_a: BTreeSet<String> = cluster.sends()[before..]
            .iter()
            .filter(|s| s.node == "a")
            .map(|s| s.job.clone())
            .collect();

        // b wakes up: it notices its lease is gone and sends none of them.
        let woke = cluster.sends().len();
        let b_mark = cluster.nodes[b].daemon.stderr.len();
        cluster.nodes[b].daemon.signal(Signal::SIGCONT);
        cluster.nodes[b]
            .daemon
            .stderr
            .wait_for_from(b_mark, &format!("lost lease of channel {channel_of_b}"));
        // A new order after the wake-up: whoever holds the channel sends it,
        // and everything b did before that is in the receiver's record.
        let received = cluster.hook.received().len();
        create(shop, order_for("Awake", 9, "aguardando_pagamento"));
        cluster.world.wait_received(&cluster.hook, received + 1);
        let after_wake = &cluster.sends()[woke..];
        let stale: Vec<&Send> = after_wake
            .iter()
            .filter(|s| s.node == "b" && sent_by_a.contains(&s.job))
            .collect();
        assert!(
            stale.is_empty(),
            "b sent jobs after its lease lapsed that a had sent: {stale:#?}"
        );
        assert_repeats_at_most(&cluster.sends(), 2);
        let senders = sender_of_each_job(&cluster.sends()[before..]);
        assert!(senders.values().any(|node| node == "a"));
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
