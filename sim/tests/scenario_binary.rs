//! The `arauto-sim` binary as a child process: readiness (ready file and
//! `ready` event), the Evolution API sink printing what an evolution-api
//! plugin sends, the scenario's steps in `--json` mode, the first-poll start,
//! the idle store, pushes to registered webhooks with `--push`, start-up
//! errors, and a clean exit on SIGTERM.

// All test code: with this, clippy's allow-unwrap/expect-in-tests covers the
// helper functions too, not only the #[test] ones (see clippy.toml).
#![cfg(test)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

/// Upper bound for any single wait; nothing here should take more than a second.
const PATIENCE: Duration = Duration::from_secs(30);
const LI_AUTH: &str = "chave_api demo-chave-api aplicacao demo-chave-aplicacao";

/// A running `arauto-sim --json`; killed if the test fails halfway.
struct Sim {
    child: Child,
    events: Receiver<Value>,
    /// Every event read so far.
    seen: Vec<Value>,
}

impl Sim {
    fn spawn(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_arauto-sim"))
            .args(["--json", "--li-listen", "0", "--evolution-listen", "0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn arauto-sim");
        let stdout = child.stdout.take().unwrap();
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let event = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
                if tx.send(event).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            events,
            seen: Vec::new(),
        }
    }

    /// The next event called `name`; earlier ones are kept in `seen`.
    fn wait_for(&mut self, name: &str) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(event) => {
                    self.seen.push(event.clone());
                    if event["event"] == name {
                        return event;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "no {name:?} event within {PATIENCE:?}; saw {:#?}",
                        self.seen
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "arauto-sim exited before a {name:?} event; saw {:#?}",
                        self.seen
                    )
                }
            }
        }
    }

    /// SIGTERM, then read the output to its end and reap the process.
    fn terminate(mut self) -> (ExitStatus, Vec<Value>) {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        kill(pid, Signal::SIGTERM).unwrap();
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self
                .events
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(event) => self.seen.push(event),
                // stdout closed: the process is exiting.
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!("arauto-sim ignored SIGTERM"),
            }
        }
        let status = self.child.wait().unwrap();
        (status, std::mem::take(&mut self.seen))
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

fn li_get(ready: &Value, path: &str, auth: &str) -> (u16, Value) {
    let url = format!("{}{path}", ready["li"]["url"].as_str().unwrap());
    let mut response = agent()
        .get(&url)
        .header("Authorization", auth)
        .call()
        .unwrap();
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// What the evolution-api plugin sends.
fn send_text(ready: &Value, apikey: &str, number: &str, text: &str) -> u16 {
    let url = format!(
        "{}/message/sendText/{}",
        ready["evolution"]["url"].as_str().unwrap(),
        ready["evolution"]["instance"].as_str().unwrap()
    );
    agent()
        .post(&url)
        .header("apikey", apikey)
        .header("content-type", "application/json")
        .send(json!({"number": number, "text": text, "delay": 1200}).to_string())
        .unwrap()
        .status()
        .as_u16()
}

/// `PUT`/`DELETE /webhooks/v1/pedido` as `arauto webhooks register` does.
fn li_webhook(ready: &Value, method: &str, notify_url: &str, token: &str) -> (u16, Value) {
    let url = ready["li"]["webhook_registration"].as_str().unwrap();
    let request = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("Authorization", LI_AUTH)
        .header("content-type", "application/json")
        .body(json!({"notifyUrl": notify_url, "token": token}).to_string())
        .unwrap();
    let mut response = agent().run(request).unwrap();
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn prints_what_the_evolution_sink_receives_runs_the_demo_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let ready_file = dir.path().join("sim-ready.json");
    let mut sim = Sim::spawn(&[
        "--speed",
        "200",
        "--start",
        "now",
        "--webhook-listen",
        "0",
        "--ready-file",
        ready_file.to_str().unwrap(),
    ]);
    let ready = sim.wait_for("ready");
    // The ready file is written before the ready event, with the same content.
    let mut from_file = read_json(&ready_file);
    from_file["event"] = ready["event"].clone();
    from_file["elapsed_ms"] = ready["elapsed_ms"].clone();
    assert_eq!(from_file, ready);
    assert_eq!(ready["li"]["chave_api"], "demo-chave-api");
    assert_eq!(ready["li"]["chave_aplicacao"], "demo-chave-aplicacao");
    assert_eq!(ready["evolution"]["apikey"], "demo-evolution-apikey");
    assert_eq!(ready["evolution"]["instance"], "arauto-demo");
    assert_eq!(ready["scenario"]["name"], "demo");
    assert_eq!(ready["scenario"]["steps"], 15);
    assert_eq!(ready["scenario"]["expected_on_phone_channels"], 12);
    for url in [
        &ready["li"]["url"],
        &ready["evolution"]["url"],
        &ready["webhook"]["url"],
    ] {
        let url = url.as_str().unwrap();
        assert!(
            url.starts_with("http://127.0.0.1:") && !url.ends_with(":0"),
            "{url}"
        );
    }

    let text = "Olá, Ana! 👋\n\nRecebemos seu pedido *#1001*.\n\n*Total:* R$ 374,20";
    assert_eq!(send_text(&ready, "wrong-key", "5511987654321", text), 401);
    assert_eq!(
        send_text(&ready, "demo-evolution-apikey", "5511987654321", text),
        201
    );
    let message = sim.wait_for("message");
    assert_eq!(message["channel"], "evolution-api");
    assert_eq!(message["to"], "5511987654321");
    assert_eq!(message["text"], text);
    assert!(
        message["provider_message_id"]
            .as_str()
            .unwrap()
            .starts_with("BAE5")
    );

    let finished = sim.wait_for("scenario-finished");
    assert_eq!(finished["steps"], 15);
    let steps: Vec<&Value> = sim.seen.iter().filter(|e| e["event"] == "step").collect();
    assert_eq!(steps.len(), 15);
    assert_eq!(steps[0]["numero"], 1001);
    assert_eq!(steps[0]["action"], "create");
    assert_eq!(steps[0]["status"], "aguardando_pagamento");
    assert_eq!(steps[0]["expected"][0]["kind"], "waiting-payment");
    assert_eq!(steps[0]["expected"][0]["phone"], "+5511987654321");
    assert_eq!(steps[3]["description"], "pedido 1001 → pedido_pago");
    assert_eq!(steps[12]["expected"], json!([]));
    let offsets: Vec<u64> = steps
        .iter()
        .map(|s| s["offset_ms"].as_u64().unwrap())
        .collect();
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
    // The only message was the test's: the rejected one was not printed.
    assert_eq!(
        sim.seen.iter().filter(|e| e["event"] == "message").count(),
        1
    );

    // The store holds the history plus the five demo orders, stamped with
    // the real clock in São Paulo time.
    let (status, search) = li_get(
        &ready,
        "/api/v1/pedido/search/?since_atualizado=2000-01-01&limit=50",
        LI_AUTH,
    );
    assert_eq!(status, 200);
    assert_eq!(search["meta"]["total_count"], 25);
    let sao_paulo_now = jiff::tz::Offset::constant(-3).to_datetime(jiff::Timestamp::now());
    let newest: jiff::civil::DateTime = search["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["data_modificacao"].as_str().unwrap().parse().unwrap())
        .max()
        .unwrap();
    let age = sao_paulo_now.duration_since(newest);
    assert!(
        (jiff::SignedDuration::ZERO..jiff::SignedDuration::from_mins(5)).contains(&age),
        "newest data_modificacao {newest}, São Paulo now {sao_paulo_now}"
    );
    let (_, detail) = li_get(&ready, "/api/v1/pedido/1004", LI_AUTH);
    assert_eq!(detail["envios"].as_array().unwrap().len(), 2);
    assert_eq!(
        li_get(&ready, "/api/v1/pedido/1004", "chave_api x aplicacao y").0,
        401
    );

    let (status, events) = sim.terminate();
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    let stopped = events.iter().find(|e| e["event"] == "stopped").unwrap();
    assert_eq!(stopped["signal"], "SIGTERM");
    assert_eq!(stopped["steps_applied"], 15);
    assert_eq!(stopped["messages_received"], 1);
    assert!(!ready_file.exists(), "the ready file is removed on exit");
}

#[test]
fn the_story_waits_for_the_first_poll_of_the_store() {
    let mut sim = Sim::spawn(&["--speed", "1000"]);
    let ready = sim.wait_for("ready");
    assert_eq!(ready["scenario"]["start"], "first-poll");
    sim.wait_for("waiting-for-first-poll");
    // Only the history is there until arauto (here: the test) polls.
    let (status, search) = li_get(
        &ready,
        "/v1/pedido/search/?since_atualizado=2000-01-01&limit=50",
        LI_AUTH,
    );
    assert_eq!(status, 200);
    assert_eq!(search["meta"]["total_count"], 20);
    let started = sim.wait_for("scenario-started");
    assert_eq!(started["trigger"], "first-poll");
    assert!(
        sim.seen.iter().all(|e| e["event"] != "step"),
        "no step before the first poll: {:#?}",
        sim.seen
    );
    sim.wait_for("scenario-finished");
    let (status, _) = sim.terminate();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn sigterm_while_waiting_for_the_first_poll_exits_cleanly() {
    let mut sim = Sim::spawn(&[]);
    sim.wait_for("waiting-for-first-poll");
    let (status, events) = sim.terminate();
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    let stopped = events.iter().find(|e| e["event"] == "stopped").unwrap();
    assert_eq!(stopped["steps_applied"], 0);
}

#[test]
fn no_scenario_serves_an_empty_store_with_the_given_credentials() {
    let mut sim = Sim::spawn(&[
        "--no-scenario",
        "--api-key",
        "K1",
        "--application-key",
        "A1",
        "--personal-token",
        "tok-9",
        "--evolution-apikey",
        "evo-key",
    ]);
    let ready = sim.wait_for("ready");
    assert_eq!(ready["scenario"], Value::Null);
    assert_eq!(ready["webhook"], Value::Null);
    let (status, search) = li_get(
        &ready,
        "/v1/pedido/search/?since_atualizado=2000-01-01",
        "chave_api K1 aplicacao A1",
    );
    assert_eq!((status, &search["meta"]["total_count"]), (200, &json!(0)));
    assert_eq!(li_get(&ready, "/v1/situacao/", "Basic tok-9").0, 200);
    assert_eq!(li_get(&ready, "/v1/situacao/", LI_AUTH).0, 401);
    assert_eq!(send_text(&ready, "evo-key", "5521998765432", "oi"), 201);
    assert_eq!(sim.wait_for("message")["to"], "5521998765432");
    let (status, events) = sim.terminate();
    assert_eq!(status.code(), Some(0));
    assert!(events.iter().all(|e| e["event"] != "step"));
}

fn run_to_end(args: &[&str]) -> (ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_arauto-sim"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (child.wait().unwrap(), stderr)
}

#[test]
fn a_busy_port_is_a_clear_error() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let (status, stderr) = run_to_end(&["--li-listen", &addr, "--evolution-listen", "0"]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot listen on {addr} for the fake Loja Integrada API (--li-listen"
        )),
        "{stderr}"
    );
}

#[test]
fn bad_flags_are_rejected_with_the_value_at_fault() {
    let (status, stderr) = run_to_end(&["--speed", "0"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--speed") && stderr.contains("got \"0\""),
        "{stderr}"
    );
    let (status, stderr) = run_to_end(&["--li-listen", "localhost"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("\"localhost\" is not a port or an IP:PORT address"),
        "{stderr}"
    );
}

#[test]
fn plan_prints_the_timeline_without_listening() {
    let output = Command::new(env!("CARGO_BIN_EXE_arauto-sim"))
        .args(["--plan", "--json", "--li-listen", "1"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let steps: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(steps.len(), 15);
    assert_eq!(steps[14]["expected"][0]["kind"], "order-delivered");
    assert_eq!(
        steps[13]["expected"][0]["tracking_codes"],
        json!(["AB304812762BR"])
    );
}

#[test]
fn with_push_every_change_goes_to_the_registered_webhook() {
    // The simulator's own webhook receiver stands in for arauto's listener.
    let mut sim = Sim::spawn(&[
        "--speed",
        "1000",
        "--webhook-listen",
        "0",
        "--push",
        "--push-repeats",
        "2",
    ]);
    let ready = sim.wait_for("ready");
    assert_eq!(ready["li"]["push"]["repeats"], 2);
    let receiver = format!("{}/hooks/loja1", ready["webhook"]["url"].as_str().unwrap());
    let (status, body) = li_webhook(&ready, "PUT", &receiver, "demo-webhook-token");
    assert_eq!(status, 200);
    assert_eq!(body["message"], "Registros afetados: 1");
    let registered = sim.wait_for("webhook-registered");
    assert_eq!(registered["notify_url"], receiver.as_str());
    assert_eq!(registered["pushing"], true);

    // The first poll starts the story; its first step creates order 1001.
    li_get(
        &ready,
        "/v1/pedido/search/?since_atualizado=2000-01-01",
        LI_AUTH,
    );
    let first = sim.wait_for("push");
    assert_eq!(first["numero"], 1001);
    assert_eq!(first["situacao_alterada"], true);
    assert_eq!(first["outcome"], "answered");
    assert_eq!(first["status"], 204);
    assert_eq!((&first["copy"], &first["copies"]), (&json!(1), &json!(2)));
    assert_eq!(sim.wait_for("push")["copy"], 2);
    // The receiver prints a push when it arrives, which may be before the
    // simulator reports the copy as answered.
    let received = match sim.seen.iter().find(|e| e["event"] == "message") {
        Some(event) => event.clone(),
        None => sim.wait_for("message"),
    };
    assert_eq!(received["to"], "/hooks/loja1");
    let pushed: Value = serde_json::from_str(received["text"].as_str().unwrap()).unwrap();
    assert_eq!(pushed["tipo"], "pedido_venda");
    assert_eq!(pushed["numero"], 1001);
    assert_eq!(pushed["token"], "demo-webhook-token");

    let (status, body) = li_webhook(&ready, "DELETE", &receiver, "demo-webhook-token");
    assert_eq!(
        (status, &body["message"]),
        (200, &json!("Registros afetados: 1"))
    );
    sim.wait_for("webhook-unregistered");
    let (status, _) = sim.terminate();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn without_push_registrations_are_accepted_and_nothing_is_pushed() {
    let mut sim = Sim::spawn(&["--no-scenario", "--webhook-listen", "0"]);
    let ready = sim.wait_for("ready");
    assert_eq!(ready["li"]["push"], Value::Null);
    let receiver = format!("{}/hooks/loja1", ready["webhook"]["url"].as_str().unwrap());
    assert_eq!(li_webhook(&ready, "PUT", &receiver, "t").0, 200);
    assert_eq!(sim.wait_for("webhook-registered")["pushing"], false);
    let (status, events) = sim.terminate();
    assert_eq!(status.code(), Some(0));
    assert!(events.iter().all(|e| e["event"] != "push"));
}

#[test]
fn push_flags_are_checked() {
    let (status, stderr) = run_to_end(&["--push", "--push-drop", "1.5"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("\"1.5\" is not a share between 0 and 1"),
        "{stderr}"
    );
    let (status, stderr) = run_to_end(&["--push-repeats", "3"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--push"), "{stderr}");
}

/// A request to the fake Nuvemshop with the demo token and a User-Agent.
fn ns_request(ready: &Value, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let ns = &ready["nuvemshop"];
    let url = format!(
        "{}/{}{path}",
        ns["url"].as_str().unwrap(),
        ns["store_id"].as_u64().unwrap()
    );
    let auth = format!("bearer {}", ns["access_token"].as_str().unwrap());
    let builder = ureq::http::Request::builder()
        .method(method)
        .uri(&url)
        .header("Authentication", &auth)
        .header("User-Agent", "arauto-sim tests (dev@example.com)")
        .header("Content-Type", "application/json");
    let request = builder.body(body.unwrap_or("").to_owned()).unwrap();
    let mut response = agent().run(request).unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[test]
fn platform_nuvemshop_plays_its_story_after_the_first_listing_and_pushes_signed_events() {
    let mut sim = Sim::spawn(&[
        "--platform",
        "nuvemshop",
        "--ns-listen",
        "0",
        "--webhook-listen",
        "0",
        "--speed",
        "1000",
        "--push",
    ]);
    let ready = sim.wait_for("ready");
    assert_eq!(ready["scenario"], Value::Null, "no LI story: {ready}");
    let ns = &ready["nuvemshop"];
    assert_eq!(ns["store_id"], 1_234_567);
    assert_eq!(ns["scenario"]["steps"], 9);
    assert_eq!(ns["scenario"]["historical_orders"], 5);
    assert_eq!(
        sim.wait_for("waiting-for-first-poll")["platform"],
        "nuvemshop"
    );

    let receiver = format!("{}/hooks/nuvem1", ready["webhook"]["url"].as_str().unwrap());
    let registration = format!(r#"{{"event":"order/paid","url":"{receiver}"}}"#);
    let (status, body) = ns_request(&ready, "POST", "/webhooks", Some(&registration));
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        sim.wait_for("webhook-registered")["event_name"],
        "order/paid"
    );

    // The first listing answered normally starts the story; the old orders are there.
    let (status, orders) = ns_request(&ready, "GET", "/orders?per_page=200", None);
    assert_eq!(status, 200);
    assert_eq!(orders.as_array().unwrap().len(), 5);
    assert_eq!(sim.wait_for("scenario-started")["platform"], "nuvemshop");
    // Order 100 is paid at the fourth step: the only order/paid event of the story
    // (order 101 is created already paid, which is order/created).
    let push = sim.wait_for("push");
    assert_eq!(push["event_name"], "order/paid");
    assert_eq!(push["order_id"], 1_500_000_100_u64);
    assert_eq!(push["result"], "→ HTTP 204");
    let received = match sim.seen.iter().find(|e| e["event"] == "message") {
        Some(event) => event.clone(),
        None => sim.wait_for("message"),
    };
    let pushed: Value = serde_json::from_str(received["text"].as_str().unwrap()).unwrap();
    assert_eq!(
        pushed,
        json!({"store_id": 1_234_567, "event": "order/paid", "id": 1_500_000_100_u64})
    );
    let finished = sim.wait_for("scenario-finished");
    assert_eq!(finished["steps"], 9);
    let (status, order) = ns_request(&ready, "GET", "/orders/1500000100", None);
    assert_eq!(status, 200);
    assert_eq!(order["shipping_status"], "fulfilled");
    assert!(order["shipping_tracking_number"].is_string());
    let (status, _) = sim.terminate();
    assert_eq!(status.code(), Some(0));
}
