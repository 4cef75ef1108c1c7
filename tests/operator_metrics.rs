//! The Prometheus endpoint of a running daemon, scraped over HTTP and parsed
//! with a Prometheus text-format parser after a poll and a real send.

// All test code: with this, clippy's allow-unwrap/expect-in-tests covers the
// helper functions too, not only the #[test] ones (see clippy.toml).
#![cfg(test)]

use crate::support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use arauto_sim::li::Order;
use prometheus_parse::{Scrape, Value};
use support::daemon;
use support::operator::{self, Setup, start, world};

/// `GET path` on `addr`: (status line, headers, body).
fn get(addr: SocketAddr, path: &str) -> (String, String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to the metrics endpoint");
    stream
        .set_read_timeout(Some(daemon::PATIENCE))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read answer");
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (status.to_owned(), headers.to_lowercase(), body.to_owned())
}

fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let sample = scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .unwrap_or_else(|| {
            let names: Vec<String> = scrape
                .samples
                .iter()
                .map(|s| format!("{}{{{}}}", s.metric, s.labels))
                .collect();
            panic!("no {metric} {labels:?} among {names:#?}")
        });
    match &sample.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        other => panic!("{metric} is not a single value: {other:?}"),
    }
}

#[test]
fn metrics_are_scraped_and_parsed_after_a_poll_and_a_send() {
    let world = world();
    let addr = support::ports::free_address();
    let daemon_extra = format!("metrics_listen = \"{addr}\"");
    let daemon = start(
        &world,
        &Setup {
            poll_interval: "1s",
            daemon_extra: &daemon_extra,
            ..Setup::default()
        },
    );
    daemon.stderr.wait_for("poll complete");
    world.store.create_order(Order::new());
    daemon.stderr.wait_for("job completed");

    let (status, headers, body) = get(addr, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK", "{headers}\n{body}");
    assert!(
        headers.contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{headers}"
    );
    let scrape = Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).expect("parse");

    // Counters bumped by the poller and the dispatcher.
    assert!(value(&scrape, "arauto_polls_total", &[("store", "loja")]) >= 1.0);
    assert_eq!(
        value(&scrape, "arauto_orders_seen_total", &[("store", "loja")]),
        2.0
    );
    let job = |outcome| {
        value(
            &scrape,
            "arauto_jobs_total",
            &[
                ("store", "loja"),
                ("channel", "whatsapp"),
                ("kind", "waiting-payment"),
                ("outcome", outcome),
            ],
        )
    };
    assert_eq!(job("enqueued"), 1.0);
    assert_eq!(job("sent"), 1.0);

    // Gauges read from the database at scrape time.
    assert_eq!(
        value(&scrape, "arauto_queue_depth", &[("channel", "whatsapp")]),
        0.0
    );
    assert_eq!(
        value(&scrape, "arauto_queue_running", &[("channel", "whatsapp")]),
        0.0
    );
    assert_eq!(
        value(&scrape, "arauto_channel_paused", &[("channel", "whatsapp")]),
        0.0
    );
    assert_eq!(
        value(
            &scrape,
            "arauto_channel_sent_today",
            &[("channel", "whatsapp")]
        ),
        1.0
    );
    assert_eq!(
        value(&scrape, "arauto_store_paused", &[("store", "loja")]),
        0.0
    );
    let last_poll = value(
        &scrape,
        "arauto_store_last_poll_success_timestamp_seconds",
        &[("store", "loja")],
    );
    let now = jiff::Timestamp::now().as_second() as f64;
    assert!(
        (now - 60.0..=now).contains(&last_poll),
        "{last_poll} vs {now}"
    );

    // The plugin call latency histogram, per plugin, instance and call.
    let send = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == "arauto_plugin_call_seconds"
                && s.labels.get("instance") == Some("whatsapp")
                && s.labels.get("call") == Some("send")
        })
        .expect("send latency histogram");
    match &send.value {
        Value::Histogram(buckets) => {
            let inf = buckets
                .iter()
                .find(|b| b.less_than.is_infinite())
                .expect("+Inf bucket");
            assert_eq!(inf.count, 1.0);
        }
        other => panic!("not a histogram: {other:?}"),
    }
    assert!(
        scrape.docs.contains_key("arauto_queue_depth"),
        "{:?}",
        scrape.docs
    );

    // A pause shows at the next scrape.
    let run = operator::arauto(&[
        "queue",
        "pause",
        "whatsapp",
        "--socket",
        daemon.socket.to_str().expect("utf-8"),
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let (_, _, body) = get(addr, "/metrics");
    let scrape = Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).expect("parse");
    assert_eq!(
        value(&scrape, "arauto_channel_paused", &[("channel", "whatsapp")]),
        1.0
    );

    let (status, _, body) = get(addr, "/other");
    assert_eq!(status, "HTTP/1.1 404 Not Found", "{body}");
}

#[test]
fn metrics_refuse_a_network_address_unless_allowed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("arauto.toml");
    std::fs::write(
        &path,
        daemon::daemon_section(dir.path(), "metrics_listen = \"0.0.0.0:9464\""),
    )
    .expect("write");
    let run = operator::arauto(&["validate", "--config", path.to_str().expect("utf-8")]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("metrics_allow_remote"),
        "{}",
        run.stderr
    );
}

/// Open file descriptors of process `pid`.
fn open_fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read /proc/<pid>/fd")
        .count()
}

#[test]
fn idle_metrics_connections_are_capped_and_closed_and_the_daemon_keeps_serving() {
    const CAP: usize = 32; // arauto::http_listener::MAX_CONNECTIONS
    let world = world();
    let addr = support::ports::free_address();
    let daemon_extra = format!("metrics_listen = \"{addr}\"");
    let daemon = start(
        &world,
        &Setup {
            daemon_extra: &daemon_extra,
            ..Setup::default()
        },
    );
    let (status, _, body) = get(addr, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    let before = open_fds(daemon.pid());

    // Far more connections than the cap, none sending a byte.
    let silent: Vec<TcpStream> = (0..CAP + 40)
        .map(|_| TcpStream::connect(addr).expect("connect to the metrics port"))
        .collect();
    daemon
        .stderr
        .wait_for("metrics: 32 connections open, the limit");
    let during = open_fds(daemon.pid());
    // The rest wait in the kernel's backlog, not in the daemon's fd table
    // (a few descriptors of slack for the daemon's own HTTP clients).
    assert!(
        during <= before + CAP + 8,
        "{during} open descriptors, {before} before {} connections",
        silent.len()
    );

    // The control socket still answers.
    let run = operator::arauto(&["status", "--socket", daemon.socket.to_str().expect("utf-8")]);
    assert_eq!(run.code, 0, "{run:?}");

    // A connection that sends nothing is closed by the daemon (the header
    // timeout is 10 s; our bound is only there to fail instead of hanging).
    let mut first = silent.into_iter();
    let mut oldest = first.next().expect("a connection");
    oldest
        .set_read_timeout(Some(daemon::PATIENCE))
        .expect("timeout");
    let mut byte = [0_u8; 1];
    let read = oldest
        .read(&mut byte)
        .expect("the daemon closes a silent connection");
    assert_eq!(read, 0, "unexpected bytes on a silent connection");

    // Once the idle clients go, scrapes are served again.
    drop(first);
    let (status, _, body) = get(addr, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    assert!(body.contains("arauto_queue_depth"), "{body}");
}
