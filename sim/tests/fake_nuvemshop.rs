//! The fake Nuvemshop API over real HTTP, checked against the platform's
//! documented strictness: the `Authentication` header name, the required
//! `User-Agent`, `per_page` ≤ 200, the leaky bucket and its headers, paging
//! with `x-total-count` and `Link`, pages shifting under live updates,
//! faults, and HMAC-signed webhook pushes.
//!
//! Requests are written by hand on a TCP socket so that each test controls
//! every header (an HTTP client library adds its own `User-Agent`).

// All test code: with this, clippy's allow-unwrap/expect-in-tests covers the
// helper functions too (see clippy.toml).
#![cfg(test)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use arauto_sim::channels::{FakeProvider, Provider};
use arauto_sim::nuvemshop::{
    Customer, Endpoint, FakeNuvemshop, Fault, FulfillmentOrder, ListOrder, NsStore, Order,
    PushOutcome, RateLimit, Route, StoreCredentials, TimeFormat, WebhookEvent, payment, shipping,
    signature,
};
use serde_json::Value;

const STORE_ID: u64 = 123_456;
const TOKEN: &str = "token-da-loja";
const SECRET: &str = "segredo-do-app";
const UA: &str = "arauto-tests (dev@example.com)";

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    fn ids(&self) -> Vec<u64> {
        self.json()
            .as_array()
            .unwrap_or_else(|| panic!("not an array: {}", self.body))
            .iter()
            .map(|o| o["id"].as_u64().expect("numeric id"))
            .collect()
    }
}

/// One request with exactly `headers` (plus Host and Connection: close).
fn send(
    ns: &FakeNuvemshop,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut stream = TcpStream::connect(ns.addr()).expect("connect to the fake");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        ns.addr(),
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).expect("write request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read response");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP head");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_owned(),
    }
}

fn auth() -> String {
    format!("bearer {TOKEN}")
}

fn get(ns: &FakeNuvemshop, path: &str) -> Reply {
    let auth = auth();
    send(
        ns,
        "GET",
        path,
        &[("Authentication", &auth), ("User-Agent", UA)],
        "",
    )
}

fn fake_with_store() -> (FakeNuvemshop, NsStore) {
    let ns = FakeNuvemshop::start_blocking().expect("start the fake Nuvemshop");
    let store = ns.add_store(StoreCredentials::new(STORE_ID, TOKEN, SECRET));
    (ns, store)
}

#[test]
fn the_token_goes_in_authentication_not_authorization() {
    let (ns, store) = fake_with_store();
    store.create_order(Order::new());
    let auth = auth();
    let wrong_name = send(
        &ns,
        "GET",
        "/v1/123456/orders",
        &[("Authorization", &auth), ("User-Agent", UA)],
        "",
    );
    assert_eq!(wrong_name.status, 401, "{}", wrong_name.body);
    assert_eq!(wrong_name.json()["description"], "Invalid access token");
    let wrong_token = send(
        &ns,
        "GET",
        "/v1/123456/orders",
        &[("Authentication", "bearer outro"), ("User-Agent", UA)],
        "",
    );
    assert_eq!(wrong_token.status, 401);
    let right = get(&ns, "/v1/123456/orders");
    assert_eq!(right.status, 200, "{}", right.body);
    assert_eq!(right.ids().len(), 1);
    // The dated API versions answer the same.
    assert_eq!(get(&ns, "/2025-03/123456/orders").status, 200);
    // Another store's id with this token: the token is not for that store.
    ns.add_store(StoreCredentials::new(777, "outro-token", SECRET));
    assert_eq!(get(&ns, "/v1/777/orders").status, 401);
    assert_eq!(get(&ns, "/v1/999/orders").status, 404);
    let log = ns.requests();
    assert!(log[0].sent_authorization && !log[0].sent_authentication);
    assert_eq!(store.stats().requests, 2);
}

#[test]
fn a_missing_or_empty_user_agent_is_400() {
    let (ns, _store) = fake_with_store();
    let auth = auth();
    let missing = send(
        &ns,
        "GET",
        "/v1/123456/orders",
        &[("Authentication", &auth)],
        "",
    );
    assert_eq!(missing.status, 400, "{}", missing.body);
    assert!(
        missing.json()["description"]
            .as_str()
            .unwrap()
            .contains("User-Agent")
    );
    let empty = send(
        &ns,
        "GET",
        "/v1/123456/orders",
        &[("Authentication", &auth), ("User-Agent", "")],
        "",
    );
    assert_eq!(empty.status, 400);
    assert_eq!(ns.requests()[0].user_agent, None);
}

#[test]
fn per_page_is_at_most_200_and_paging_has_total_and_links() {
    let (ns, store) = fake_with_store();
    store.configure(|o| o.rate_limit = None);
    for _ in 0..250 {
        store.create_order(Order::new());
    }
    // The list goes no deeper than 10,000 rows.
    let deep = get(&ns, "/v1/123456/orders?per_page=200&page=51");
    assert_eq!(deep.status, 422, "{}", deep.body);
    assert!(deep.json()["page"][0].as_str().unwrap().contains("10000"));
    let too_big = get(&ns, "/v1/123456/orders?per_page=201");
    assert_eq!(too_big.status, 422, "{}", too_big.body);
    assert!(
        too_big.json()["per_page"][0]
            .as_str()
            .unwrap()
            .contains("200")
    );
    assert_eq!(get(&ns, "/v1/123456/orders?page=0").status, 422);

    let default = get(&ns, "/v1/123456/orders");
    assert_eq!(default.ids().len(), 30);
    assert_eq!(default.header("x-total-count"), Some("250"));

    let first = get(&ns, "/v1/123456/orders?per_page=200");
    assert_eq!(first.ids().len(), 200);
    let link = first.header("link").expect("Link header");
    let host = ns.addr();
    assert_eq!(
        link,
        format!(
            "<http://{host}/v1/123456/orders?page=2&per_page=200>; rel=\"next\", \
             <http://{host}/v1/123456/orders?page=2&per_page=200>; rel=\"last\""
        )
    );
    let second = get(&ns, "/v1/123456/orders?per_page=200&page=2");
    assert_eq!(second.ids().len(), 50);
    let link = second.header("link").expect("Link header");
    assert!(!link.contains("rel=\"next\""), "{link}");
    assert!(
        link.contains("page=1&per_page=200>; rel=\"prev\""),
        "{link}"
    );
    let past = get(&ns, "/v1/123456/orders?per_page=200&page=3");
    assert_eq!(past.status, 404);
    assert_eq!(past.json()["description"], "Last page is 2");
    // Newest created first (the assumed default): the first row is the last order.
    let mut all = first.ids();
    all.extend(second.ids());
    let mut sorted = all.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(all, sorted);
}

#[test]
fn updated_at_min_needs_an_offset_and_is_inclusive() {
    let (ns, store) = fake_with_store();
    let old = store.create_order(Order::new());
    let cut = ns.now();
    let new = store.create_order(Order::new());
    store.touch(old).expect("touch");
    let rows = get(
        &ns,
        &format!(
            "/v1/123456/orders?updated_at_min={}",
            cut.strftime("%Y-%m-%dT%H:%M:%S%%2B00:00")
        ),
    );
    assert_eq!(rows.status, 200, "{}", rows.body);
    let mut ids = rows.ids();
    ids.sort_unstable();
    assert_eq!(ids, [old, new]);
    let naive = get(&ns, "/v1/123456/orders?updated_at_min=2024-05-10T09:00:00");
    assert_eq!(naive.status, 422);
    assert!(naive.json()["updated_at_min"].is_array());
    // No rows at all: 404 "Last page is 0" by default, or 200 [] when switched off.
    let later = get(
        &ns,
        "/v1/123456/orders?updated_at_min=2030-01-01T00:00:00-03:00",
    );
    assert_eq!(later.status, 404);
    assert_eq!(later.json()["description"], "Last page is 0");
    store.configure(|o| o.empty_list_404 = false);
    let later = get(
        &ns,
        "/v1/123456/orders?updated_at_min=2030-01-01T00:00:00-03:00",
    );
    assert_eq!(later.status, 200);
    assert_eq!(later.ids(), Vec::<u64>::new());
    assert_eq!(later.header("x-total-count"), Some("0"));
}

#[test]
fn the_order_has_three_states_a_nested_customer_and_string_money() {
    let (ns, store) = fake_with_store();
    store.configure(|o| o.time_format = TimeFormat::ColonOffset);
    let id = store.create_order(
        Order::new()
            .customer(Customer::new("Ana Souza").phone("+55 11 98888-0001"))
            .billing_phone(Some("1133334444")),
    );
    store.set_payment_status(id, payment::PAID).expect("pay");
    store.pack(id).expect("pack");
    store
        .fulfill(
            id,
            "AA123456785BR",
            Some("https://rastreio.example/AA123456785BR"),
        )
        .expect("ship");
    let order = get(&ns, &format!("/v1/123456/orders/{id}")).json();
    assert_eq!(order["status"], "open");
    assert_eq!(order["payment_status"], "paid");
    assert_eq!(order["shipping_status"], shipping::FULFILLED);
    assert_eq!(order["shipping_tracking_number"], "AA123456785BR");
    assert_eq!(order["customer"]["phone"], "+55 11 98888-0001");
    assert_eq!(order["contact_phone"], "+55 11 98888-0001");
    assert_eq!(order["billing_phone"], "1133334444");
    assert_eq!(order["total"], "159.90");
    assert_eq!(order["number"], 100);
    assert_eq!(order["created_at"], "2024-05-10T09:00:00-03:00");
    assert_eq!(order["updated_at"], "2024-05-10T09:00:03-03:00");
    assert_eq!(order["paid_at"], "2024-05-10T09:00:01-03:00");
    store.configure(|o| o.time_format = TimeFormat::BasicOffset);
    let order = get(&ns, &format!("/v1/123456/orders/{id}")).json();
    assert_eq!(order["created_at"], "2024-05-10T09:00:00-0300");
    assert_eq!(get(&ns, "/v1/123456/orders/1").status, 404);
    let fields = get(&ns, &format!("/v1/123456/orders/{id}?fields=id,updated_at")).json();
    assert_eq!(fields.as_object().map(|m| m.len()), Some(2));
}

#[test]
fn the_bucket_empties_into_429_and_every_answer_carries_its_headers() {
    let (ns, store) = fake_with_store();
    store.create_order(Order::new());
    store.configure(|o| o.rate_limit = Some(RateLimit::never_leaking(40)));
    for i in 0..40u32 {
        let reply = get(&ns, "/v1/123456/orders");
        assert_eq!(reply.status, 200, "request {i}");
        assert_eq!(reply.header("x-rate-limit-limit"), Some("40"));
        assert_eq!(
            reply.header("x-rate-limit-remaining"),
            Some((39 - i).to_string().as_str())
        );
        assert!(reply.header("x-rate-limit-reset").is_some());
    }
    let refused = get(&ns, "/v1/123456/orders");
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("x-rate-limit-remaining"), Some("0"));
    assert_eq!(store.stats().throttled, 1);
    assert_eq!(store.stats().requests, 41);
    store.reset_buckets();
    assert_eq!(get(&ns, "/v1/123456/orders").status, 200);

    // The standard bucket: 40 at once pass, then it refuses until it leaks.
    store.configure(|o| o.rate_limit = Some(RateLimit::standard()));
    store.reset_buckets();
    let first = get(&ns, "/v1/123456/orders");
    assert_eq!(first.header("x-rate-limit-limit"), Some("40"));
    assert_eq!(first.header("x-rate-limit-remaining"), Some("39"));
    assert_eq!(first.header("x-rate-limit-reset"), Some("500"));
    assert_eq!(ns.stats()[&STORE_ID].throttled, 1);
}

#[test]
fn faults_use_the_li_vocabulary() {
    let (ns, store) = fake_with_store();
    store.fail(Route::List, Fault::Status(503), 1);
    store.fail(
        Route::Detail,
        Fault::TooManyRequests {
            retry_after_secs: Some(3),
        },
        1,
    );
    store.fail(Route::List, Fault::Garbage, 1);
    let id = store.create_order(Order::new());
    assert_eq!(get(&ns, "/v1/123456/orders").status, 503);
    let throttled = get(&ns, &format!("/v1/123456/orders/{id}"));
    assert_eq!(throttled.status, 429);
    assert_eq!(throttled.header("retry-after"), Some("3"));
    assert_eq!(store.stats().throttled, 1);
    let garbage = get(&ns, "/v1/123456/orders");
    assert_eq!(garbage.status, 200);
    assert!(garbage.body.starts_with("<html>"));
    store.override_order(id, "/total", Value::String("abc".into()));
    assert_eq!(get(&ns, "/v1/123456/orders").json()[0]["total"], "abc");
    let kinds: Vec<Endpoint> = ns.requests().iter().map(|r| r.endpoint).collect();
    assert_eq!(kinds[1], Endpoint::Detail(id));
}

#[test]
fn an_order_updated_mid_sweep_moves_between_pages() {
    let (ns, store) = fake_with_store();
    store.configure(|o| o.order = ListOrder::UpdatedAsc);
    let ids: Vec<u64> = (0..6).map(|_| store.create_order(Order::new())).collect();
    let moved = ids[0];
    // Between page 1 and page 2 the oldest order is updated: it jumps to
    // the end and every unread row shifts back by one.
    store.on_request(Route::List, 2, move |s| {
        s.touch(moved).expect("touch");
    });
    let page1 = get(&ns, "/v1/123456/orders?per_page=3&page=1").ids();
    let page2 = get(&ns, "/v1/123456/orders?per_page=3&page=2").ids();
    assert_eq!(page1, ids[..3]);
    // ids[3] slid onto page 1 and is lost by a naive pager; ids[0] repeats.
    assert_eq!(page2, [ids[4], ids[5], moved]);
}

#[test]
fn webhooks_register_with_rules_and_pushes_are_signed() {
    let (ns, store) = fake_with_store();
    let receiver = FakeProvider::start_in_background(Provider::Webhook).expect("receiver");
    let auth = auth();
    let headers = [
        ("Authentication", auth.as_str()),
        ("User-Agent", UA),
        ("Content-Type", "application/json"),
    ];
    let url = format!("{}/hooks/ns", receiver.url());
    let post = |body: String| send(&ns, "POST", "/v1/123456/webhooks", &headers, &body);
    let refused = post(r#"{"event":"order/paid","url":"http://localhost:9/x"}"#.into());
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert_eq!(
        post(r#"{"event":"order/paid","url":"ftp://x.example"}"#.into()).status,
        422
    );
    assert_eq!(
        post(format!(r#"{{"event":"order/eaten","url":"{url}"}}"#)).status,
        422
    );
    assert_eq!(post("{".into()).status, 400);
    let created = post(format!(r#"{{"event":"order/paid","url":"{url}"}}"#));
    assert_eq!(created.status, 201, "{}", created.body);
    let webhook_id = created.json()["id"].as_u64().expect("id");
    assert_eq!(
        get(&ns, "/v1/123456/webhooks").json()[0]["url"],
        url.as_str()
    );

    let mut events = ns.subscribe_webhooks();
    let id = store.create_order(Order::new());
    store.set_payment_status(id, payment::PAID).expect("pay");
    let record = loop {
        match events.blocking_recv().expect("webhook events") {
            WebhookEvent::Push(record) => break record,
            _ => continue,
        }
    };
    assert_eq!(record.event, "order/paid");
    assert_eq!(record.outcome, PushOutcome::Answered(204));
    let expected_body = format!(r#"{{"store_id":{STORE_ID},"event":"order/paid","id":{id}}}"#);
    assert_eq!(record.body, expected_body);
    assert_eq!(
        record.signature,
        signature(SECRET, expected_body.as_bytes())
    );
    let received = receiver.requests();
    let push = received.last().expect("the receiver got the push");
    assert_eq!(
        push.header("x-linkedstore-hmac-sha256"),
        Some(record.signature.as_str())
    );
    assert_eq!(push.body, expected_body.as_bytes());

    let deleted = send(
        &ns,
        "DELETE",
        &format!("/v1/123456/webhooks/{webhook_id}"),
        &headers,
        "",
    );
    assert_eq!(deleted.status, 200);
    assert!(store.webhooks().is_empty());
}

#[test]
fn split_shipments_render_as_fulfillment_orders() {
    let (ns, store) = fake_with_store();
    let id = store.create_order(Order::new().payment_status(payment::PAID));
    assert!(get(&ns, &format!("/v1/123456/orders/{id}")).json()["fulfillment_orders"].is_null());
    store
        .add_fulfillment_order(id, FulfillmentOrder::new("fo-1"))
        .expect("first shipment");
    store
        .add_fulfillment_order(id, FulfillmentOrder::new("fo-2"))
        .expect("second shipment");
    store
        .dispatch_fulfillment_order(id, 1, "BB987654321BR", None)
        .expect("dispatch");
    let order = get(&ns, &format!("/v1/123456/orders/{id}")).json();
    let shipments = order["fulfillment_orders"].as_array().expect("array");
    assert_eq!(shipments.len(), 2);
    assert_eq!(shipments[0]["status"], "UNPACKED");
    assert_eq!(shipments[1]["status"], "DISPATCHED");
    assert_eq!(shipments[1]["tracking_info"]["code"], "BB987654321BR");
}

#[test]
fn the_legacy_payment_filter_hides_refunds_unless_asked_for() {
    let (ns, store) = fake_with_store();
    let paid = store.create_order(Order::new().payment_status(payment::PAID));
    let refunded = store.create_order(Order::new().payment_status(payment::REFUNDED));
    assert_eq!(get(&ns, "/v1/123456/orders").ids(), [refunded, paid]);
    store.configure(|o| o.legacy_payment_filter = true);
    assert_eq!(get(&ns, "/v1/123456/orders").ids(), [paid]);
    assert_eq!(
        get(&ns, "/v1/123456/orders?payment_status=refunded").ids(),
        [refunded]
    );
}

#[test]
fn head_answers_the_headers_of_get_without_a_body() {
    let (ns, store) = fake_with_store();
    store.create_order(Order::new());
    let auth = auth();
    let head = send(
        &ns,
        "HEAD",
        "/v1/123456/orders",
        &[("Authentication", &auth), ("User-Agent", UA)],
        "",
    );
    assert_eq!(head.status, 200);
    assert_eq!(head.header("x-total-count"), Some("1"));
    assert!(head.body.is_empty(), "{}", head.body);
    let post = send(
        &ns,
        "POST",
        "/v1/123456/orders",
        &[("Authentication", &auth), ("User-Agent", UA)],
        "",
    );
    assert_eq!(post.status, 405);
}

#[test]
fn a_push_not_answered_200_is_retried_when_asked_to() {
    let (ns, store) = fake_with_store();
    // The webhook receiver answers 204, which Nuvemshop does not count as delivered.
    let receiver = FakeProvider::start_in_background(Provider::Webhook).expect("receiver");
    ns.configure_pushes(|o| {
        o.retries = 2;
        o.retry_interval = Duration::from_millis(10);
    });
    let mut events = ns.subscribe_webhooks();
    store.register_webhook("order/created", &format!("{}/hooks/ns", receiver.url()));
    store.create_order(Order::new());
    let mut attempts = Vec::new();
    while attempts.len() < 3 {
        if let WebhookEvent::Push(record) = events.blocking_recv().expect("webhook events") {
            assert_eq!(record.outcome, PushOutcome::Answered(204));
            attempts.push(record.attempt);
        }
    }
    assert_eq!(attempts, [1, 2, 3]);
    assert_eq!(receiver.requests().len(), 3);
}

#[test]
fn a_new_order_mid_sweep_pushes_rows_onto_the_next_page_by_default() {
    let (ns, store) = fake_with_store();
    let ids: Vec<u64> = (0..6).map(|_| store.create_order(Order::new())).collect();
    // Newest created first: a new order between the pages lands on page 1
    // and pushes its last row onto page 2, where a naive pager reads it again.
    store.on_request(Route::List, 2, |s| {
        s.create_order(Order::new());
    });
    let page1 = get(&ns, "/v1/123456/orders?per_page=3&page=1");
    let page2 = get(&ns, "/v1/123456/orders?per_page=3&page=2");
    assert_eq!(page1.ids(), [ids[5], ids[4], ids[3]]);
    assert_eq!(page2.ids(), [ids[3], ids[2], ids[1]]);
    assert_eq!(page1.header("x-total-count"), Some("6"));
    assert_eq!(page2.header("x-total-count"), Some("7"));
}
