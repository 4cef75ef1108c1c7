//! A push that arrives at a node that does not poll the store (issue 15,
//! point 8): two arauto nodes against one `nats-server -js`, the fake Loja
//! Integrada and a webhook channel. The store polls every five minutes, so
//! a message within the test's patience can only come from the push; the
//! push goes to the node that does *not* hold the store, which verifies it
//! and forwards it over NATS (`<prefix>.wake.store.<id>`), and the owner's
//! sweep sends the message.

// All test code: clippy's allow-unwrap/expect-in-tests covers the helpers too.
#![cfg(test)]

use crate::support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};

use support::cluster::{Cluster, Node};
use support::daemon::{Daemon, PATIENCE};
use support::system::{StoreKnobs, create, field, order_for, wait_polls};

/// The store's `webhook_token`.
const TOKEN: &str = "tok-cluster-push-9Xq4";

fn push_knobs() -> StoreKnobs {
    StoreKnobs {
        settings: format!("webhook_token = {TOKEN:?}\n"),
        ..StoreKnobs::default()
    }
}

/// Node `name`'s configuration: the cluster's tables, polled every five
/// minutes, with the webhook listener on a port it picks itself.
fn tables(cluster: &Cluster, name: &str) -> String {
    let tables = cluster
        .tables(name)
        .replace("poll_interval = \"1s\"", "poll_interval = \"5m\"");
    // After the tables: their first line is a key of `[daemon]` (the
    // ownership module's log level, `Cluster::tables`).
    format!("{tables}\n[daemon.webhooks]\nlisten = \"127.0.0.1:0\"\n")
}

/// Where `daemon`'s webhook listener listens (from its log).
fn listen_address(daemon: &Daemon) -> SocketAddr {
    let (_, line) = daemon
        .stderr
        .wait_for_matching(0, PATIENCE, "the webhook listener", |line| {
            line.contains("webhook listener on")
        });
    field(&line, "listen")
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("no listen address in {line}"))
}

/// An LI push for order `numero` of `store` to `addr`; `(status, answer)`.
fn push(addr: SocketAddr, store: &str, numero: u64) -> (u16, String) {
    let body = format!(
        r#"{{"id": 998877, "numero": {numero}, "token": "x", "situacao": {{"codigo": "pedido_pago", "situacao_alterada": true}}}}"#
    );
    let mut stream = TcpStream::connect(addr).expect("connect to the webhook listener");
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let head = format!(
        "POST /hooks/{store} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Length: {}\r\ncontent-type: application/json\r\n\
         authorization: Bearer {TOKEN}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("send the head");
    stream.write_all(body.as_bytes()).expect("send the body");
    let mut answer = Vec::new();
    let mut buffer = [0_u8; 8192];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) if !answer.is_empty() => {
                eprintln!("connection ended after the answer: {error}");
                break;
            }
            Err(error) => panic!("no answer: {error}"),
        }
    }
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    (status, answer)
}

#[test]
fn a_push_at_the_node_without_the_store_makes_the_owner_sweep() {
    // One nats-server (Cluster::new wants a clustered NATS of two or more).
    let mut cluster = Cluster::single(1, 1);
    cluster.store_knobs = push_knobs;
    for name in ["node-a", "node-b"] {
        let daemon = cluster.world.start(&tables(&cluster, name), &[]);
        cluster.nodes.push(Node {
            name: name.to_owned(),
            daemon,
        });
    }
    let owners = cluster.await_settled();
    let owner = owners["store s01"];
    let other = 1 - owner;
    let store = cluster.shops[0].id.clone();
    // The owner's first sync: from here on only a push (or the scheduled
    // poll, five minutes away) finds a new order.
    wait_polls(&cluster.nodes[owner].daemon.stderr, &store, 0, 1);
    let from = cluster.nodes[owner].daemon.stderr.len();

    let numero = create(&cluster.shops[0], order_for("Ana", 1, "pedido_pago"));
    let listen = listen_address(&cluster.nodes[other].daemon);
    let (status, answer) = push(listen, &store, numero);
    assert_eq!(status, 200, "{answer}");
    assert!(answer.ends_with("\r\n\r\naccepted\n"), "{answer}");

    cluster.nodes[owner].daemon.stderr.wait_for_matching(
        from,
        PATIENCE,
        "the owner taking the forwarded push",
        |line| line.contains("push forwarded by another node: polling now"),
    );
    cluster.wait_received(1);
}
