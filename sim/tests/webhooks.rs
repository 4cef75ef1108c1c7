//! The fake Loja Integrada's order webhooks over real HTTP: registration
//! (`PUT`/`DELETE /webhooks/v1/pedido`, authenticated like the rest of the
//! API) and the pushes it sends to a tiny receiver on 127.0.0.1 in LI's push
//! shape, with repeats, delays, dropped pushes and a wrong token.
//!
//! Tests wait for deliveries to arrive (or for the fake to report them);
//! "nothing else arrived" is shown by a later sentinel push arriving first,
//! since one thread delivers every push in order.

// All test code: with this, clippy's allow-unwrap/expect-in-tests covers the
// helper functions too, not only the #[test] ones (see clippy.toml).
#![cfg(test)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use arauto_sim::channels::blocking;
use arauto_sim::li::{
    FakeLi, LiStore, Order, Payment, PushOutcome, PushRecord, Shipment, StoreAuth, WRONG_TOKEN,
    WebhookEvent, WebhookRegistration,
};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);
const KEY: &str = "chave_api K123 aplicacao APP9";
const TOKEN: &str = "segredo-do-webhook-123";

/// One POST the receiver got.
#[derive(Debug)]
struct Received {
    path: String,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A minimal HTTP/1.1 receiver: answers 200 to everything and hands each
/// request to the test.
struct Receiver {
    url: String,
    requests: mpsc::Receiver<Received>,
}

impl Receiver {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the receiver");
        let url = format!("http://{}/hooks/loja1", listener.local_addr().unwrap());
        let (tx, requests) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().expect("clone the stream"));
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                let path = request_line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("")
                    .to_owned();
                let mut headers = Vec::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':') {
                        headers.push((name.trim().to_owned(), value.trim().to_owned()));
                    }
                }
                let length: usize = headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_err() {
                    continue;
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
                let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                if tx
                    .send(Received {
                        path,
                        headers,
                        body,
                    })
                    .is_err()
                {
                    break;
                }
            }
        });
        Self { url, requests }
    }

    fn next(&self) -> Received {
        self.requests
            .recv_timeout(WAIT)
            .expect("a push should arrive")
    }
}

struct Reply {
    status: u16,
    body: Value,
}

fn call(li: &FakeLi, method: &str, path: &str, auth: Option<&str>, body: &Value) -> Reply {
    let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
    if let Some(auth) = auth {
        headers.push(("authorization".to_owned(), auth.to_owned()));
    }
    let response = blocking::send(
        method,
        &format!("{}{path}", li.base_url()),
        &headers,
        Some(body.to_string().as_bytes()),
        WAIT,
    )
    .expect("HTTP request to the fake");
    Reply {
        status: response.status,
        body: serde_json::from_slice(&response.body).unwrap_or(Value::Null),
    }
}

fn fake_with_store() -> (FakeLi, LiStore) {
    let li = FakeLi::start_blocking().expect("start fake LI");
    let store = li.add_store(StoreAuth::api_key("K123", "APP9").and_personal_token("tok-1"));
    (li, store)
}

/// The fake's reports of push copies, as they happen.
fn push_feed(li: &FakeLi) -> mpsc::Receiver<PushRecord> {
    let mut events = li.subscribe_webhooks();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        while let Ok(event) = events.blocking_recv() {
            if let WebhookEvent::Push(record) = event
                && tx.send(record).is_err()
            {
                break;
            }
        }
    });
    rx
}

#[test]
fn put_registers_and_delete_removes_with_the_stores_own_credentials() {
    let (li, store) = fake_with_store();
    let other = li.add_store(StoreAuth::api_key("K999", "APP9"));
    let hook = json!({"notifyUrl": "http://127.0.0.1:18933/hooks/loja1", "token": TOKEN});

    let anonymous = call(&li, "PUT", "/webhooks/v1/pedido", None, &hook);
    assert_eq!(anonymous.status, 401);
    let wrong = call(
        &li,
        "PUT",
        "/webhooks/v1/pedido",
        Some("chave_api NOPE aplicacao APP9"),
        &hook,
    );
    assert_eq!(wrong.status, 401);
    assert!(store.webhooks().is_empty());

    let put = call(&li, "PUT", "/webhooks/v1/pedido", Some(KEY), &hook);
    assert_eq!(put.status, 200);
    assert_eq!(put.body, json!({"message": "Registros afetados: 1"}));
    assert_eq!(
        store.webhooks(),
        [WebhookRegistration {
            notify_url: "http://127.0.0.1:18933/hooks/loja1".into(),
            token: TOKEN.into(),
        }]
    );
    assert!(other.webhooks().is_empty(), "registrations are per store");

    // The same URL again (a personal token works too, trailing slash too): a new token, still one.
    let again = call(
        &li,
        "PUT",
        "/webhooks/v1/pedido/",
        Some("Basic tok-1"),
        &json!({"notifyUrl": "http://127.0.0.1:18933/hooks/loja1", "token": "novo"}),
    );
    assert_eq!(again.status, 200);
    assert_eq!(store.webhooks().len(), 1);
    assert_eq!(store.webhooks()[0].token, "novo");

    for bad in [
        json!({"token": TOKEN}),
        json!({"notifyUrl": "/hooks/loja1", "token": TOKEN}),
        json!({"notifyUrl": "http://127.0.0.1:18933/x"}),
        json!("notifyUrl"),
    ] {
        let reply = call(&li, "PUT", "/webhooks/v1/pedido", Some(KEY), &bad);
        assert_eq!(reply.status, 400, "{bad}");
        assert!(reply.body["error_message"].is_string());
    }
    assert_eq!(
        call(&li, "GET", "/webhooks/v1/pedido", Some(KEY), &json!({})).status,
        405
    );
    assert_eq!(
        call(&li, "PUT", "/v1/webhooks/v1/pedido", Some(KEY), &hook).status,
        405,
        "the path is on the API host, not under /v1"
    );
    assert_eq!(
        call(&li, "DELETE", "/webhooks/v1/pedido", None, &hook).status,
        401
    );

    let delete = call(&li, "DELETE", "/webhooks/v1/pedido", Some(KEY), &hook);
    assert_eq!(delete.status, 200);
    assert_eq!(delete.body, json!({"message": "Registros afetados: 1"}));
    assert!(store.webhooks().is_empty());
    let none_left = call(&li, "DELETE", "/webhooks/v1/pedido", Some(KEY), &hook);
    assert_eq!(none_left.body, json!({"message": "Registros afetados: 0"}));

    let methods: Vec<(String, u16)> = store
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/webhooks/"))
        .map(|r| (r.method.clone(), r.status))
        .collect();
    assert!(methods.contains(&("PUT".into(), 200)));
    assert!(methods.contains(&("DELETE".into(), 200)));
}

#[test]
fn registrations_are_reported_as_events() {
    let (li, store) = fake_with_store();
    let mut events = li.subscribe_webhooks();
    let hook = json!({"notifyUrl": "http://127.0.0.1:9/h", "token": TOKEN});
    call(&li, "PUT", "/webhooks/v1/pedido", Some(KEY), &hook);
    call(&li, "DELETE", "/webhooks/v1/pedido", Some(KEY), &hook);
    assert_eq!(
        events.blocking_recv().unwrap(),
        WebhookEvent::Registered {
            store: store.id(),
            notify_url: "http://127.0.0.1:9/h".into()
        }
    );
    assert_eq!(
        events.blocking_recv().unwrap(),
        WebhookEvent::Unregistered {
            store: store.id(),
            notify_url: "http://127.0.0.1:9/h".into()
        }
    );
}

fn ends_with_utc_z(value: &Value) -> bool {
    value.as_str().is_some_and(|s| {
        s.ends_with('Z') && s.len() == "2024-05-10T12:00:00.000Z".len() && s.contains('T')
    })
}

fn ends_with_sao_paulo(value: &Value) -> bool {
    value.as_str().is_some_and(|s| s.ends_with("-03:00"))
}

#[test]
fn pushes_carry_lis_push_shape_and_the_bearer_token() {
    let (li, store) = fake_with_store();
    let receiver = Receiver::start();
    let feed = push_feed(&li);
    store.register_webhook(&receiver.url, TOKEN);

    let numero = store.create_order(
        Order::new()
            .payment(Payment::credit_card(2))
            .shipments(vec![Shipment::pac(1890)]),
    );
    let created = receiver.next();
    assert_eq!(created.path, "/hooks/loja1");
    assert_eq!(
        created.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(created.header("content-type"), Some("application/json"));
    let body = &created.body;
    assert_eq!(body["tipo"], "pedido_venda");
    assert_eq!(body["token"], TOKEN);
    assert_eq!(body["numero"], json!(numero), "numero is a JSON number");
    assert!(body["id"].is_u64());
    assert_ne!(body["id"], body["numero"], "id is LI's internal number");
    assert_eq!(body["situacao"]["codigo"], "aguardando_pagamento");
    assert_eq!(body["situacao"]["situacao_alterada"], true, "a new order");
    assert!(body.as_object().unwrap().contains_key("marketplace_info"));
    assert!(body["endereco_pagamento"].is_object());
    assert!(body["endereco_entrega"]["cep"].is_string());

    // Money and quantities as numbers.
    for field in [
        "valor_total",
        "valor_subtotal",
        "valor_envio",
        "valor_desconto",
    ] {
        assert!(body[field].is_number(), "{field}: {}", body[field]);
    }
    assert_eq!(body["valor_total"], json!(108.8));
    let item = &body["itens"][0];
    assert_eq!(item["quantidade"], json!(1.0));
    assert_eq!(item["preco_venda"], json!(89.9));
    assert!(item["produto_id"].is_u64());
    assert!(item.get("produto").is_none());
    assert!(body["pagamentos"][0]["valor"].is_number());
    assert!(body["envios"][0]["valor"].is_number());

    // forma_envio.codigo, not code.
    let forma = &body["envios"][0]["forma_envio"];
    assert_eq!(forma["codigo"], "PAC");
    assert!(forma.get("code").is_none());

    // Top-level dates in UTC with Z, nested ones in São Paulo time with -03:00.
    for field in ["data_criacao", "data_modificacao", "data_expiracao"] {
        assert!(ends_with_utc_z(&body[field]), "{field}: {}", body[field]);
    }
    assert!(ends_with_sao_paulo(&body["cliente"]["data_criacao"]));
    assert!(ends_with_sao_paulo(&body["envios"][0]["data_modificacao"]));
    // The same instant as the REST answer's naive São Paulo time.
    let rest = store.order(numero).unwrap().modified_at.unwrap();
    let utc = rest.saturating_add(jiff::SignedDuration::from_hours(3));
    assert!(
        body["data_modificacao"]
            .as_str()
            .unwrap()
            .starts_with(&utc.to_string()[..19]),
        "{} vs {rest}",
        body["data_modificacao"]
    );

    // A status change, then an edit that leaves the status alone.
    store.set_status(numero, "pedido_pago").unwrap();
    let paid = receiver.next().body;
    assert_eq!(paid["situacao"]["codigo"], "pedido_pago");
    assert_eq!(paid["situacao"]["situacao_alterada"], true);
    assert_eq!(paid["id"], body["id"], "the internal id is stable");

    store
        .set_tracking(numero, 0, Some("AA123456785BR"))
        .unwrap();
    let tracked = receiver.next().body;
    assert_eq!(tracked["situacao"]["codigo"], "pedido_pago");
    assert_eq!(tracked["situacao"]["situacao_alterada"], false);
    assert_eq!(tracked["envios"][0]["objeto"], "AA123456785BR");

    store.push_again(numero).unwrap();
    assert_eq!(receiver.next().body["situacao"]["situacao_alterada"], false);

    // The fake reports each copy once the receiver has answered.
    let records: Vec<PushRecord> = (0..4).map(|_| feed.recv_timeout(WAIT).unwrap()).collect();
    assert_eq!(li.pushes(), records);
    assert!(
        records
            .iter()
            .all(|r| r.outcome == PushOutcome::Answered(200) && r.numero == numero)
    );
}

#[test]
fn each_push_is_repeated_as_configured() {
    let (li, store) = fake_with_store();
    let receiver = Receiver::start();
    let feed = push_feed(&li);
    li.configure_pushes(|o| o.repeats = 3);
    store.register_webhook(&receiver.url, TOKEN);
    let numero = store.create_order(Order::new());
    let copies: Vec<Value> = (0..3).map(|_| receiver.next().body).collect();
    assert!(copies.iter().all(|c| c == &copies[0]), "identical copies");
    assert_eq!(copies[0]["numero"], json!(numero));

    // Nothing beyond the three copies: the next change's first copy comes next.
    li.configure_pushes(|o| o.repeats = 1);
    store.set_status(numero, "pedido_pago").unwrap();
    assert_eq!(receiver.next().body["situacao"]["codigo"], "pedido_pago");
    let copies: Vec<(u32, u32)> = (0..4)
        .map(|_| feed.recv_timeout(WAIT).unwrap())
        .map(|r| (r.copy, r.copies))
        .collect();
    assert_eq!(copies, [(1, 3), (2, 3), (3, 3), (1, 1)]);
}

#[test]
fn a_fraction_of_pushes_is_dropped_and_all_can_be() {
    let (li, store) = fake_with_store();
    let receiver = Receiver::start();
    li.configure_pushes(|o| o.drop_fraction = 0.5);
    store.register_webhook(&receiver.url, TOKEN);
    let numeros: Vec<u64> = (0..4).map(|_| store.create_order(Order::new())).collect();
    assert_eq!(receiver.next().body["numero"], json!(numeros[0]));
    assert_eq!(receiver.next().body["numero"], json!(numeros[2]));

    li.configure_pushes(|o| o.drop_fraction = 1.0);
    store.set_status(numeros[0], "pedido_pago").unwrap();
    store.set_status(numeros[1], "pedido_pago").unwrap();

    // A sentinel: pushes go out in order, so it arriving next proves the
    // dropped ones were never sent.
    li.configure_pushes(|o| o.drop_fraction = 0.0);
    store.set_status(numeros[3], "pedido_cancelado").unwrap();
    let next = receiver.next().body;
    assert_eq!(next["numero"], json!(numeros[3]));
    assert_eq!(next["situacao"]["codigo"], "pedido_cancelado");

    let dropped: Vec<u64> = li
        .pushes()
        .iter()
        .filter(|r| r.outcome == PushOutcome::Dropped)
        .map(|r| r.numero)
        .collect();
    assert_eq!(dropped, [numeros[1], numeros[3], numeros[0], numeros[1]]);
}

#[test]
fn wrong_token_mode_sends_a_token_that_is_not_the_registered_one() {
    let (li, store) = fake_with_store();
    let receiver = Receiver::start();
    li.configure_pushes(|o| o.wrong_token = true);
    store.register_webhook(&receiver.url, TOKEN);
    store.create_order(Order::new());
    let push = receiver.next();
    assert_eq!(
        push.header("authorization"),
        Some(format!("Bearer {WRONG_TOKEN}").as_str())
    );
    assert_eq!(push.body["token"], WRONG_TOKEN);
    assert!(!push.body.to_string().contains(TOKEN));
}

#[test]
fn pushes_wait_for_the_delay_and_stop_when_disabled() {
    let (li, store) = fake_with_store();
    let receiver = Receiver::start();
    let delay = Duration::from_millis(300);
    li.configure_pushes(|o| o.delay = delay);
    store.register_webhook(&receiver.url, TOKEN);
    let changed = Instant::now();
    store.create_order(Order::new());
    receiver.next();
    assert!(changed.elapsed() >= delay);

    li.configure_pushes(|o| {
        o.enabled = false;
        o.delay = Duration::ZERO;
    });
    store.create_order(Order::new());
    li.configure_pushes(|o| o.enabled = true);
    let sentinel = store.create_order(Order::new());
    assert_eq!(receiver.next().body["numero"], json!(sentinel));
}

#[test]
fn a_receiver_that_is_down_is_recorded_once_per_copy_and_never_retried() {
    let (li, store) = fake_with_store();
    // A port nobody listens on: bind one, then free it.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    li.configure_pushes(|o| {
        o.repeats = 2;
        o.timeout = Duration::from_secs(2);
    });
    let feed = push_feed(&li);
    store.register_webhook(&format!("http://127.0.0.1:{port}/hooks/loja1"), TOKEN);
    let numero = store.create_order(Order::new());
    let first = feed.recv_timeout(WAIT).expect("first copy reported");
    let second = feed.recv_timeout(WAIT).expect("second copy reported");
    for (record, copy) in [(&first, 1), (&second, 2)] {
        assert_eq!(record.numero, numero);
        assert_eq!(record.copy, copy);
        assert!(
            matches!(record.outcome, PushOutcome::Failed(_)),
            "{:?}",
            record.outcome
        );
    }
    // The fake keeps answering, and a working receiver still gets later pushes.
    let receiver = Receiver::start();
    store.register_webhook(&receiver.url, TOKEN);
    li.configure_pushes(|o| o.repeats = 1);
    store.set_status(numero, "pedido_pago").unwrap();
    assert_eq!(receiver.next().body["situacao"]["codigo"], "pedido_pago");
    let failed = li
        .pushes()
        .iter()
        .filter(|r| matches!(r.outcome, PushOutcome::Failed(_)))
        .count();
    // Two copies of the first change, one of the second (the dead URL is still registered).
    assert_eq!(failed, 3);
}

#[test]
fn a_receiver_that_never_answers_is_given_up_after_the_timeout() {
    let (li, store) = fake_with_store();
    // Accepts connections and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks/loja1", silent.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming() {
            held.push(stream);
        }
    });
    let timeout = Duration::from_millis(300);
    li.configure_pushes(|o| o.timeout = timeout);
    let feed = push_feed(&li);
    store.register_webhook(&url, TOKEN);
    let changed = Instant::now();
    store.create_order(Order::new());
    let record = feed.recv_timeout(WAIT).expect("the copy is reported");
    assert!(changed.elapsed() >= timeout);
    assert_eq!(record.outcome, PushOutcome::Failed("timed out".into()));
}

#[test]
fn only_the_changed_stores_webhooks_get_its_pushes() {
    let (li, store) = fake_with_store();
    let quiet = li.add_store(StoreAuth::api_key("K2", "APP9"));
    let receiver = Receiver::start();
    store.register_webhook(&receiver.url, TOKEN);
    quiet.create_order(Order::new().numero(5000));
    let sentinel = store.create_order(Order::new());
    assert_eq!(receiver.next().body["numero"], json!(sentinel));
    assert!(li.pushes().iter().all(|r| r.store == store.id()));
}
