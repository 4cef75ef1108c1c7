//! Operator commands against a cluster's state from a machine that only has
//! the configuration: no daemon, no state directory, a `[cluster]` section
//! naming a real `nats-server -js` (single node, random port, its own
//! storage directory, started here). `queue list`, `queue show`, `report`,
//! `queue cancel` and `queue pause` read and steer the JetStream state that
//! another "node" (a `NatsStore` of this test) wrote, and nothing is created
//! in the state directory. And a whole state moves redb → file → cluster →
//! file → redb with `arauto state export|import`, `queue list`, `report` and
//! dedupe behaving the same at the end as at the start.

// All test code: with this, clippy's allow-unwrap/expect-in-tests covers the
// helper functions too (see clippy.toml).
#![cfg(test)]

use crate::support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use arauto::queue::nats::{NatsOptions, NatsStore};
use arauto::queue::{
    Completion, EnqueueOutcome, JobState, PollCommit, Receipt, StateStore, StoreStatus, Unfenced,
};
use jiff::{SignedDuration, Timestamp};
use support::daemon;
use support::operator::{self, End, Run, enqueue, finish, job, open_store};

const PREFIX: &str = "ops";

/// A `nats-server -js` of this test, killed when dropped.
struct Server {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts the server and returns once it logged that it is ready.
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new(support::nats::nats_server_binary())
            .args(["-js", "-a", "127.0.0.1", "-p", "-1", "-sd"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start nats-server");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let mut url = None;
        for line in lines.by_ref() {
            let line = line.expect("nats-server log");
            if let Some(address) = line.split("Listening for client connections on ").nth(1) {
                url = Some(format!("nats://{}", address.trim()));
            }
            if line.contains("Server is ready") {
                break;
            }
        }
        // Keep draining its log so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self {
            child,
            url: url.expect("nats-server never said where it listens"),
            _dir: dir,
        }
    }

    /// Another node's view of the cluster state.
    async fn node(&self) -> NatsStore {
        let client = async_nats::connect(&self.url).await.expect("connect");
        let js = async_nats::jetstream::new(client);
        let options = NatsOptions {
            prefix: PREFIX.to_owned(),
            replicas: 1,
        };
        let store = NatsStore::open(js, options, Arc::new(Unfenced))
            .await
            .expect("open the cluster state");
        store.set_time_zone(jiff::tz::TimeZone::get("America/Sao_Paulo").expect("tz"));
        store
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A configuration whose state is the cluster's, or with `server` `None`
/// the redb file in `dir/state`.
fn write_config(dir: &Path, server: Option<&Server>) -> PathBuf {
    let path = dir.join("arauto.toml");
    let cluster = server.map_or_else(String::new, |server| {
        format!(
            r#"[cluster]
backend = "nats"
servers = ["{}"]
replicas = 1
prefix = "{PREFIX}"
node_name = "operator"
"#,
            server.url
        )
    });
    let text = format!(
        r#"{}
{cluster}
[stores.loja]
platform = "loja-integrada"
channels = ["whatsapp", "sms"]

[channels.whatsapp]
plugin = "evolution-api"

[channels.sms]
plugin = "twilio-sms"
"#,
        daemon::daemon_section(dir, "")
    );
    std::fs::write(&path, text).expect("write config");
    path
}

/// `arauto <args> --config <config>`.
fn cli(config: &Path, args: &[&str]) -> Run {
    let mut all = args.to_vec();
    all.extend_from_slice(&["--config", config.to_str().expect("utf-8 path")]);
    operator::arauto(&all)
}

#[test]
fn queue_and_report_work_on_the_cluster_state_with_only_the_configuration() {
    let server = Server::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), Some(&server));
    let runtime = tokio::runtime::Runtime::new().expect("runtime");

    // Another node wrote: one job sent, one pending on each channel.
    let (sent, pending, sms) = runtime.block_on(async {
        let node = server.node().await;
        let ids = node
            .enqueue(vec![
                job("loja", "whatsapp", "1001", "order-paid"),
                job("loja", "whatsapp", "1002", "order-shipped"),
                job("loja", "sms", "1003", "order-paid"),
            ])
            .await
            .expect("enqueue");
        let now = Timestamp::now();
        let claimed = node
            .claim("whatsapp", now, 1, SignedDuration::from_mins(5))
            .await
            .expect("claim");
        let today = now
            .to_zoned_datetime(jiff::tz::TimeZone::get("America/Sao_Paulo").expect("tz"))
            .date();
        node.complete(
            claimed[0].claim(),
            Completion::Sent {
                receipt: Receipt::default(),
                at: now,
                pacing_day: today,
            },
        )
        .await
        .expect("complete");
        let sent = claimed[0].id;
        let pending = [ids[0].id(), ids[1].id()]
            .into_iter()
            .find(|id| *id != sent)
            .expect("the other whatsapp job");
        (sent, pending, ids[2].id())
    });

    let run = cli(&config, &["queue", "list", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let jobs = run.json()["jobs"].as_array().expect("jobs").clone();
    assert_eq!(jobs.len(), 3, "{jobs:#?}");
    let state_of = |id: &str| {
        jobs.iter()
            .find(|job| job["id"] == id)
            .map(|job| job["state"].clone())
    };
    assert_eq!(state_of(&sent.to_string()), Some("sent".into()));
    assert_eq!(state_of(&pending.to_string()), Some("pending".into()));

    // One channel, one store: the command follows only their jobs and
    // outcomes (key filters `sms.*.*`, `*.loja.*`; docs/cluster.md).
    let run = cli(&config, &["queue", "list", "--channel", "sms", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let on_sms = run.json()["jobs"].as_array().expect("jobs").clone();
    assert_eq!(on_sms.len(), 1, "{on_sms:#?}");
    assert_eq!(on_sms[0]["id"], sms.to_string());
    let run = cli(&config, &["queue", "list", "--store", "loja", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json()["jobs"].as_array().map(Vec::len), Some(3));
    let run = cli(&config, &["report", "--channel", "whatsapp", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let report = run.json();
    let channels = report["channels"].as_array().expect("channels");
    assert_eq!(channels.len(), 1, "{report:#}");
    assert_eq!(channels[0]["total"]["sent"], 1, "{report:#}");
    assert_eq!(channels[0]["total"]["entered"], 2, "{report:#}");
    assert_eq!(channels[0]["total"]["pending"], 1, "{report:#}");

    let run = cli(&config, &["queue", "show", &sent.to_string()]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("state         sent"), "{}", run.stdout);

    let run = cli(&config, &["report", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let report = run.json();
    let whatsapp = report["channels"]
        .as_array()
        .expect("channels")
        .iter()
        .find(|channel| channel["id"] == "whatsapp")
        .expect("the whatsapp channel")
        .clone();
    assert_eq!(whatsapp["total"]["sent"], 1, "{whatsapp:#}");
    assert_eq!(whatsapp["total"]["pending"], 1, "{whatsapp:#}");

    // Steering: the other node sees what the operator did.
    let run = cli(&config, &["queue", "cancel", &sms.to_string()]);
    assert_eq!(run.code, 0, "{run:?}");
    let run = cli(
        &config,
        &["queue", "pause", "whatsapp", "--reason", "drill"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    runtime.block_on(async {
        let node = server.node().await;
        let job = node.get(sms).await.expect("get").expect("the sms job");
        assert_eq!(job.state, JobState::Cancelled);
        let status = node.channel_status("whatsapp").await.expect("status");
        assert_eq!(
            status.paused.map(|pause| pause.reason).as_deref(),
            Some("drill")
        );
    });

    // The state is in the layout this arauto writes: migrating has nothing to do.
    let run = cli(&config, &["state", "migrate"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("is in layout 2 already: nothing to do"),
        "{run:?}"
    );

    // Nothing local: no state directory, no lock, no database.
    assert!(!dir.path().join("state").exists());
}

/// The report without what depends on the moment it is made (its time, the
/// paced ETA and the seconds until it), its oldest
/// due times to the millisecond (redb's due index keeps milliseconds, the
/// cluster the job's own time).
fn report(config: &Path) -> serde_json::Value {
    fn strip(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                map.remove("generated_at");
                map.remove("eta_paced_at");
                map.remove("eta_paced_secs");
                if let Some(due) = map.get_mut("oldest_due")
                    && let Some(at) = due.as_str().and_then(|text| text.parse::<Timestamp>().ok())
                {
                    *due = at.as_millisecond().into();
                }
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let run = cli(config, &["report", "--since", "7d", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let mut report = run.json();
    strip(&mut report);
    report
}

fn list(config: &Path) -> serde_json::Value {
    let run = cli(config, &["queue", "list", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    run.json()
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

#[test]
fn a_redb_state_goes_into_the_cluster_and_back_unchanged() {
    let server = Server::start();
    let source_dir = tempfile::tempdir().expect("tempdir");
    let source = write_config(source_dir.path(), None);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let sent = runtime.block_on(async {
        let store = open_store(&source_dir.path().join("state"));
        let sent = finish(
            &store,
            job("loja", "whatsapp", "1001", "order-paid"),
            End::Sent,
        )
        .await;
        finish(
            &store,
            job("loja", "whatsapp", "1002", "order-paid"),
            End::Dead,
        )
        .await;
        finish(
            &store,
            job("loja", "whatsapp", "1004", "order-paid"),
            End::Cancelled,
        )
        .await;
        let mut later = job("loja", "whatsapp", "1005", "waiting-payment");
        later.due_at = Timestamp::now() + SignedDuration::from_hours(1);
        enqueue(&store, later).await;
        enqueue(&store, job("loja", "sms", "1006", "order-shipped")).await;
        store
            .commit_poll(PollCommit {
                store: "loja".to_owned(),
                cursor: Some("cursor-42".to_owned()),
                order_records: vec![("1001".to_owned(), br#"{"v":1}"#.to_vec())],
                status: StoreStatus {
                    orders_seen: 5,
                    ..StoreStatus::default()
                },
                ..PollCommit::default()
            })
            .await
            .expect("commit a poll");
        store
            .pause_channel("sms", "operator pause".to_owned(), false)
            .await
            .expect("pause sms");
        store.close().await;
        sent
    });
    let listed = list(&source);
    let reported = report(&source);

    // redb -> file -> cluster.
    let first = source_dir.path().join("from-redb.jsonl");
    let run = cli(&source, &["state", "export", "--output", path_str(&first)]);
    assert_eq!(run.code, 0, "{run:?}");
    let cluster_dir = tempfile::tempdir().expect("tempdir");
    let cluster = write_config(cluster_dir.path(), Some(&server));
    let run = cli(&cluster, &["state", "import", "--input", path_str(&first)]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("imported 5 jobs") && run.stdout.contains("into the cluster state"),
        "{}",
        run.stdout
    );
    // The cluster answers the operator commands as the file did.
    assert_eq!(list(&cluster), listed);
    assert_eq!(report(&cluster), reported);
    // A non-empty cluster is refused; --merge keeps what it has.
    let run = cli(&cluster, &["state", "import", "--input", path_str(&first)]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("already holds a state"),
        "{}",
        run.stderr
    );

    // cluster -> file -> a new redb.
    let second = cluster_dir.path().join("from-cluster.jsonl");
    let run = cli(
        &cluster,
        &["state", "export", "--output", path_str(&second)],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("exported 5 jobs"), "{}", run.stdout);
    let target_dir = tempfile::tempdir().expect("tempdir");
    let target = write_config(target_dir.path(), None);
    let run = cli(&target, &["state", "import", "--input", path_str(&second)]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("from a nats export"), "{}", run.stdout);
    assert_eq!(list(&target), listed);
    assert_eq!(report(&target), reported);

    runtime.block_on(async {
        let store = open_store(&target_dir.path().join("state"));
        let report = store.verify().await.expect("verify");
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        let again = store
            .enqueue(vec![job("loja", "whatsapp", "1001", "order-paid")])
            .await
            .expect("enqueue");
        assert_eq!(again, vec![EnqueueOutcome::Duplicate(sent)]);
        let replanned = store
            .enqueue(vec![job("loja", "whatsapp", "1004", "order-paid")])
            .await
            .expect("enqueue");
        assert!(replanned[0].is_inserted(), "{replanned:?}");
        assert_eq!(
            store.cursor("loja").await.expect("cursor").as_deref(),
            Some("cursor-42")
        );
        let sms = store.channel_status("sms").await.expect("channel status");
        assert!(sms.paused.is_some());
        store.close().await;
    });
}

/// `arauto status` with `[cluster]`, from a machine without a daemon: the
/// live nodes and what each holds (from the heartbeats and leases of a real
/// `Ownership`), each store's last poll, next poll and last error, and each
/// channel's state, read from the cluster's buckets; the local daemon is
/// said to be not running, and the command still succeeds.
#[test]
fn status_shows_the_cluster_from_a_machine_without_a_daemon() {
    use arauto::cluster::ownership::{Ownership, OwnershipOptions, Resource};

    let server = Server::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), Some(&server));
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let started = Timestamp::now();
    let (_ownership, stop) = runtime.block_on(async {
        let node = server.node().await;
        node.enqueue(vec![job("loja", "whatsapp", "1001", "order-paid")])
            .await
            .expect("enqueue");
        node.put_store_status(
            "loja",
            StoreStatus {
                last_poll_started_at: Some(started),
                last_error: Some(arauto::queue::LastError {
                    at: started,
                    class: arauto::model::ErrorClass::Retryable,
                    message: "the platform answered 503".to_owned(),
                }),
                ..StoreStatus::default()
            },
        )
        .await
        .expect("store status");

        let client = async_nats::connect(&server.url).await.expect("connect");
        let js = async_nats::jetstream::new(client);
        let ownership = Ownership::open(
            &js,
            OwnershipOptions {
                node: "node-a".to_owned(),
                prefix: PREFIX.to_owned(),
                replicas: 1,
                ttl: std::time::Duration::from_secs(10),
                slots: arauto::config::cluster::DEFAULT_LEASE_SLOTS,
            },
        )
        .await
        .expect("ownership opens");
        ownership.set_resources(
            [
                Resource::Store("loja".to_owned()),
                Resource::Channel("whatsapp".to_owned()),
            ]
            .into_iter()
            .collect(),
        );
        let stop = tokio_util::sync::CancellationToken::new();
        tokio::spawn({
            let (ownership, stop) = (ownership.clone(), stop.clone());
            async move { ownership.run(stop).await }
        });
        let mut owned = ownership.owned();
        owned
            .wait_for(|owned| owned.len() == 2)
            .await
            .expect("node-a holds the store and the channel");
        (ownership, stop)
    });

    let run = cli(&config, &["status", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let status = run.json();
    let cluster = &status["cluster"];
    let nodes = cluster["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 1, "{cluster:#}");
    assert_eq!(nodes[0]["name"], "node-a");
    // The store and the channel fall into two of the 128 slots.
    assert_eq!(cluster["slots"], 128, "{cluster:#}");
    assert_eq!(nodes[0]["slots"], 2, "{cluster:#}");
    assert_eq!(nodes[0]["stores"], serde_json::json!(["loja"]));
    assert_eq!(nodes[0]["channels"], serde_json::json!(["whatsapp"]));
    let loja = &cluster["stores"][0];
    assert_eq!(loja["id"], "loja", "{cluster:#}");
    assert_eq!(loja["owner"], "node-a");
    assert!(
        loja["last_error"]
            .as_str()
            .is_some_and(|error| error.contains("the platform answered 503")),
        "{loja:#}"
    );
    assert!(loja["next_poll_at"].is_string(), "{loja:#}");
    let whatsapp = cluster["channels"]
        .as_array()
        .expect("channels")
        .iter()
        .find(|channel| channel["id"] == "whatsapp")
        .expect("whatsapp")
        .clone();
    assert_eq!(whatsapp["owner"], "node-a");
    assert_eq!(whatsapp["pending"], 1, "{whatsapp:#}");
    assert!(status["daemon"].is_null(), "{status:#}");

    let run = cli(&config, &["status"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains("node-a: 2 slot(s), 1 store(s), 1 channel(s) (whatsapp)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("this node's daemon: not running"),
        "{}",
        run.stdout
    );

    // A node runs: `state migrate` refuses, naming it, and changes nothing.
    let run = cli(&config, &["state", "migrate"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("arauto node(s) node-a of the cluster")
            && run.stderr.contains("stop every node first"),
        "{run:?}"
    );
    stop.cancel();
}
