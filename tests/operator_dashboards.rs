//! The Grafana dashboard (`contrib/grafana/arauto.json`) and the Prometheus
//! alert rules (`contrib/prometheus/arauto-rules.yml`) name only metrics a
//! running daemon exports: both files are parsed, every `arauto_*` name in
//! their queries is looked up in a real scrape of `/metrics`, and
//! `promtool check rules` checks the rules where promtool is installed
//! (`$PROMTOOL`, or on `PATH`; .ci/run extracts it from Debian's package).

// All test code: with this, clippy's allow-unwrap/expect-in-tests covers the
// helper functions too, not only the #[test] ones (see clippy.toml).
#![cfg(test)]

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;

use std::time::Duration;

use arauto_sim::li::{Fault, Order, Route};
use prometheus_parse::{Scrape, Value};
use support::daemon;
use support::operator::{Setup, start, world};
use support::plugins::repo_root;

fn dashboard_path() -> PathBuf {
    repo_root().join("contrib/grafana/arauto.json")
}

fn rules_path() -> PathBuf {
    repo_root().join("contrib/prometheus/arauto-rules.yml")
}

fn dashboard() -> serde_json::Value {
    let path = dashboard_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn rules() -> serde_json::Value {
    let path = rules_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every PromQL expression of the dashboard (panel targets, variable
/// queries), with where it is.
fn dashboard_queries(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    let mut queries = Vec::new();
    let panels = dashboard["panels"].as_array().expect("panels");
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or("?");
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("a target has an expr");
            queries.push((format!("panel {title:?}"), expr.to_owned()));
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .expect("templating")
    {
        let name = variable["name"].as_str().unwrap_or("?");
        if let Some(query) = variable["query"]["query"].as_str() {
            queries.push((format!("variable {name}"), query.to_owned()));
        }
    }
    queries
}

/// Every alert's expression, by alert name.
fn rule_queries(rules: &serde_json::Value) -> Vec<(String, String)> {
    let mut queries = Vec::new();
    for group in rules["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            let name = rule["alert"].as_str().expect("every rule is an alert");
            let expr = rule["expr"].as_str().expect("every rule has an expr");
            queries.push((format!("alert {name}"), expr.to_owned()));
        }
    }
    queries
}

/// The `arauto_*` metric names in a PromQL expression (identifiers; label
/// values in quotes are skipped).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut in_string = false;
    let mut current = String::new();
    for c in expr.chars().chain(std::iter::once(' ')) {
        if c == '"' {
            in_string = !in_string;
            current.clear();
            continue;
        }
        if !in_string && (c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            current.push(c);
            continue;
        }
        if current.starts_with("arauto_") {
            names.insert(std::mem::take(&mut current));
        }
        current.clear();
    }
    names
}

/// Every name a query may use for the scraped families: gauges as they are,
/// counters with `_total`, histograms with `_bucket`, `_sum` and `_count`,
/// plus every sample name seen.
fn exported_names(body: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            match kind {
                "counter" => {
                    names.insert(format!("{name}_total"));
                }
                "histogram" => {
                    for suffix in ["_bucket", "_sum", "_count"] {
                        names.insert(format!("{name}{suffix}"));
                    }
                }
                _ => {
                    names.insert(name.to_owned());
                }
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let name: String = line
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            names.insert(name);
        }
    }
    names
}

/// `method path` on `addr` (empty body): (status line, body).
fn request(addr: SocketAddr, method: &str, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(daemon::PATIENCE))
        .expect("timeout");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("send request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read answer");
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head.lines().next().unwrap_or_default().to_owned();
    (status, body.to_owned())
}

/// `GET /metrics` on `addr`: the body of a 200 answer.
fn scrape(addr: SocketAddr) -> String {
    let (status, body) = request(addr, "GET", "/metrics");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}\n{body}");
    body
}

fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let sample = scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .unwrap_or_else(|| panic!("no {metric} {labels:?} in the scrape"));
    match &sample.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        other => panic!("{metric} is not a single value: {other:?}"),
    }
}

#[test]
fn the_dashboard_and_the_rules_name_only_metrics_a_running_daemon_exports() {
    let mut referenced: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let queries = dashboard_queries(&dashboard())
        .into_iter()
        .map(|(at, q)| (format!("{}: {at}", dashboard_path().display()), q))
        .chain(
            rule_queries(&rules())
                .into_iter()
                .map(|(at, q)| (format!("{}: {at}", rules_path().display()), q)),
        );
    for (at, query) in queries {
        for name in metric_names(&query) {
            referenced.entry(name).or_default().insert(at.clone());
        }
    }
    assert!(
        referenced.len() >= 15,
        "the files name too few metrics to be parsed right: {referenced:#?}"
    );

    // Families without a series are not in the exposition at all, so the
    // daemon is made to have one of each: a poll, a send, a poll that times
    // out in the sandbox (a poll error and a plugin fault), a refused push.
    let world = world();
    let addr = support::ports::free_address();
    let hooks = support::ports::free_address();
    let daemon_extra =
        format!("metrics_listen = \"{addr}\"\n[daemon.webhooks]\nlisten = \"{hooks}\"");
    let daemon = start(
        &world,
        &Setup {
            poll_interval: "1s",
            daemon_extra: &daemon_extra,
            extra: "[plugins]\ncall_timeout = \"2s\"",
            ..Setup::default()
        },
    );
    daemon.stderr.wait_for("poll complete");
    world.store.create_order(Order::new());
    daemon.stderr.wait_for("job completed");
    let healthy = scrape(addr);
    let mark = daemon.stderr.len();
    world
        .store
        .fail(Route::Search, Fault::Delay(Duration::from_secs(600)), 1);
    daemon.stderr.wait_for_from(mark, "poll failed");
    let (status, _) = request(hooks, "POST", "/hooks/nobody");
    assert!(status.contains("404"), "{status}");
    let body = scrape(addr);
    let exported = exported_names(&body);

    let missing: Vec<String> = referenced
        .iter()
        .filter(|(name, _)| !exported.contains(*name))
        .map(|(name, places)| format!("{name} (in {places:?})"))
        .collect();
    assert!(
        missing.is_empty(),
        "metrics named by the dashboard or the rules that the daemon does not export:\n  {}\nexported: {exported:#?}",
        missing.join("\n  ")
    );

    // The gauges the rules were given (poll interval, ETA, checklist) carry
    // the values they stand for.
    // (From the scrape before the failed poll, which may turn lines red.)
    let scrape = Scrape::parse(healthy.lines().map(|l| Ok(l.to_owned()))).expect("parse");
    assert_eq!(
        value(
            &scrape,
            "arauto_store_poll_interval_seconds",
            &[("store", "loja")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &scrape,
            "arauto_queue_eta_seconds",
            &[("channel", "whatsapp")]
        ),
        0.0,
        "nothing waits after the send"
    );
    assert_eq!(
        value(
            &scrape,
            "arauto_checklist_status",
            &[("section", "store"), ("id", "loja"), ("item", "last-poll")]
        ),
        0.0,
        "the store was just polled: its last-poll line is green"
    );

    assert_eq!(
        value(
            &scrape,
            "arauto_checklist_status",
            &[("section", "general"), ("id", "arauto"), ("item", "daemon")]
        ),
        0.0,
        "the daemon itself answers the scrape"
    );
}

#[test]
fn the_dashboard_imports_with_a_prometheus_datasource_variable() {
    let dashboard = dashboard();
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("templating");
    let datasource = variables
        .iter()
        .find(|v| v["type"] == "datasource")
        .expect("a datasource variable");
    assert_eq!(datasource["query"], "prometheus");
    let name = datasource["name"].as_str().expect("named");
    let uid = format!("${{{name}}}");
    for panel in dashboard["panels"].as_array().expect("panels") {
        if panel["type"] == "row" {
            continue;
        }
        let title = &panel["title"];
        assert_eq!(panel["datasource"]["uid"], uid.as_str(), "panel {title}");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {title} queries nothing");
        for target in targets {
            assert_eq!(target["datasource"]["uid"], uid.as_str(), "panel {title}");
        }
    }
    let ids: Vec<&serde_json::Value> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .map(|p| &p["id"])
        .collect();
    let unique: BTreeSet<String> = ids.iter().map(|id| id.to_string()).collect();
    assert_eq!(unique.len(), ids.len(), "panel ids are unique");
}

#[test]
fn the_rules_cover_what_the_operator_must_hear_about() {
    let rules = rules();
    let alerts: BTreeMap<String, serde_json::Value> = rules["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules").iter())
        .map(|r| (r["alert"].as_str().expect("alert").to_owned(), r.clone()))
        .collect();
    let expect = |alert: &str, metric: &str| {
        let rule = alerts
            .get(alert)
            .unwrap_or_else(|| panic!("no alert {alert} in {:?}", alerts.keys()));
        let expr = rule["expr"].as_str().expect("expr");
        assert!(expr.contains(metric), "{alert}: {expr}");
        assert!(
            rule["annotations"]["summary"].as_str().is_some(),
            "{alert} has a summary"
        );
        rule.clone()
    };
    let red = expect("ArautoChecklistLineRed", "arauto_checklist_status == 2");
    assert_eq!(red["for"], "10m");
    let stale = expect("ArautoPollStale", "3 * arauto_store_poll_interval_seconds");
    assert!(
        stale["expr"]
            .as_str()
            .is_some_and(|e| e.contains("arauto_store_last_poll_success_timestamp_seconds")),
        "{stale}"
    );
    expect(
        "ArautoDeadLettersRising",
        r#"arauto_jobs_total{outcome="failed"}"#,
    );
    expect("ArautoChannelPaused", "arauto_channel_paused == 1");
    expect(
        "ArautoBacklogEtaOverAnHour",
        "arauto_queue_eta_seconds > 3600",
    );
}

#[test]
fn promtool_accepts_the_rules() {
    let promtool = std::env::var_os("PROMTOOL").map(PathBuf::from).or_else(|| {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("promtool"))
                .find(|candidate| candidate.is_file())
        })
    });
    let Some(promtool) = promtool else {
        eprintln!("promtool not installed (set PROMTOOL or put it on PATH): syntax not checked");
        return;
    };
    let out = std::process::Command::new(&promtool)
        .arg("check")
        .arg("rules")
        .arg(rules_path())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", promtool.display()));
    assert!(
        out.status.success(),
        "promtool check rules failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
