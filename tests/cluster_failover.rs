//! Several arauto nodes sharing stores and channels over a real three-server
//! NATS JetStream cluster on 127.0.0.1 (issue 15, point 6), against the fake
//! Loja Integrada and the fake channel providers.
//!
//! Every test lives in the `nats_cluster` module: `make test` skips
//! `nats_cluster::` in its main run and runs these binaries last, so the
//! slow multi-process tests do not hold up the rest of the suite.

#![cfg(test)]

mod support;

mod nats_cluster {
    use crate::support::nats::NatsCluster;

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
}
