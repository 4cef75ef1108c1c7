//! The connector's poll, check and push paths against a small in-process
//! stand-in for the Nuvemshop API (the SDK harness's transport: no network,
//! the plugin's requests are answered by `FakeStore`). The strict fake HTTP
//! server lives in `sim/` (`arauto_sim::nuvemshop`); the full-daemon tests
//! run the connector against it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::rc::Rc;

use arauto_plugin_sdk::connector::http::{HttpError, Request, Response, query_param};
use arauto_plugin_sdk::connector::prelude::*;
use arauto_plugin_sdk::connector::testing::{self, Harness, install};
use arauto_plugin_sdk::time::{format_rfc3339_ms, parse_offset_datetime_ms};
use nuvemshop::Nuvemshop;
use serde_json::{Value, json};

const NOW: i64 = 1_715_342_400_000; // 2024-05-10T12:00:00Z
const STORE: &str = "123456";
const TOKEN: &str = "tok-very-secret";

#[derive(Clone, Copy, PartialEq)]
enum Order {
    UpdatedAsc,
    CreatedDesc,
}

/// Changes the store just before a list page is answered (page asked for, orders).
type ListHook = Box<dyn FnMut(u32, &mut Vec<Value>)>;

struct FakeStore {
    orders: Vec<Value>,
    order: Order,
    /// (remaining, reset) headers of every answer.
    bucket: (u64, u64),
    /// Answer the next list request with this status.
    fail_next: Option<u16>,
    /// Called before each list answer with the page asked for.
    on_list: Option<ListHook>,
    lists: u32,
    /// Orders the list does not show yet (indexed late).
    unlisted: Vec<u64>,
    /// Behave like an API without `updated_at_max`.
    ignore_max: bool,
}

fn order(id: u64, updated_ms: i64, payment: &str, shipping: &str) -> Value {
    json!({
        "id": id,
        "number": 100 + id,
        "status": "open",
        "payment_status": payment,
        "shipping_status": shipping,
        "created_at": format_rfc3339_ms(NOW - 86_400_000 + id as i64 * 1000),
        "updated_at": format_rfc3339_ms(updated_ms),
        "total": "10.00",
        "contact_phone": "+5511987654321",
        "customer": {"name": "Ana"}
    })
}

fn updated(o: &Value) -> i64 {
    parse_offset_datetime_ms(o["updated_at"].as_str().unwrap()).unwrap()
}

impl FakeStore {
    fn new(orders: Vec<Value>, order: Order) -> Rc<RefCell<Self>> {
        Rc::new(RefCell::new(Self {
            orders,
            order,
            bucket: (39, 500),
            fail_next: None,
            on_list: None,
            lists: 0,
            unlisted: Vec::new(),
            ignore_max: false,
        }))
    }

    fn answer(&mut self, req: &Request) -> Response {
        let auth = req
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("authentication"))
            .map(|(_, v)| v.as_str());
        let headers = vec![
            ("x-rate-limit-limit".to_owned(), "40".to_owned()),
            (
                "x-rate-limit-remaining".to_owned(),
                self.bucket.0.to_string(),
            ),
            ("x-rate-limit-reset".to_owned(), self.bucket.1.to_string()),
        ];
        if auth != Some(&format!("bearer {TOKEN}")) {
            return Response {
                status: 401,
                headers,
                body: br#"{"code":401,"message":"Unauthorized"}"#.to_vec(),
            };
        }
        let path = req.url.split('?').next().unwrap();
        let prefix = format!("https://api.nuvemshop.com.br/v1/{STORE}/orders");
        if let Some(id) = path.strip_prefix(&format!("{prefix}/")) {
            return match self
                .orders
                .iter()
                .find(|o| o["id"].as_u64().map(|n| n.to_string()).as_deref() == Some(id))
            {
                Some(o) => Response {
                    status: 200,
                    headers,
                    body: o.to_string().into_bytes(),
                },
                None => Response {
                    status: 404,
                    headers,
                    body: b"{}".to_vec(),
                },
            };
        }
        assert_eq!(path, prefix, "unexpected request {}", req.url);
        if let Some(status) = self.fail_next.take() {
            return Response {
                status,
                headers,
                body: b"{}".to_vec(),
            };
        }
        let page: u32 = query_param(&req.url, "page").map_or(1, |p| p.parse().unwrap());
        let per_page: usize = query_param(&req.url, "per_page").unwrap().parse().unwrap();
        self.lists += 1;
        if let Some(hook) = self.on_list.as_mut() {
            hook(page, &mut self.orders);
        }
        let min = query_param(&req.url, "updated_at_min")
            .map_or(i64::MIN, |m| parse_offset_datetime_ms(&m).unwrap());
        let max = query_param(&req.url, "updated_at_max")
            .map_or(i64::MAX, |m| parse_offset_datetime_ms(&m).unwrap());
        let mut rows: Vec<Value> = self
            .orders
            .iter()
            .filter(|o| {
                updated(o) >= min
                    && (self.ignore_max || updated(o) <= max)
                    && !self.unlisted.contains(&o["id"].as_u64().unwrap())
            })
            .cloned()
            .collect();
        match self.order {
            Order::UpdatedAsc => rows.sort_by_key(updated),
            Order::CreatedDesc => rows.sort_by_key(|o| std::cmp::Reverse(o["id"].as_u64())),
        }
        let total = rows.len();
        let last = total.div_ceil(per_page).max(1);
        let mut headers = headers;
        headers.push(("x-total-count".into(), total.to_string()));
        if (page as usize) > last {
            return Response {
                status: 404,
                headers,
                body: format!(r#"{{"description":"Last page is {last}"}}"#).into_bytes(),
            };
        }
        if (page as usize) < last {
            headers.push((
                "link".into(),
                format!(
                    "<{prefix}?page={}&per_page={per_page}>; rel=\"next\"",
                    page + 1
                ),
            ));
        }
        let body: Vec<Value> = rows
            .into_iter()
            .skip((page as usize - 1) * per_page)
            .take(per_page)
            .collect();
        Response {
            status: 200,
            headers,
            body: Value::Array(body).to_string().into_bytes(),
        }
    }
}

fn harness(store: &Rc<RefCell<FakeStore>>) -> Harness {
    let store = Rc::clone(store);
    Harness::new()
        .now_unix_ms(NOW as u64)
        .setting("store_id", STORE)
        .setting("access_token", TOKEN)
        .setting("user_agent", "arauto tests (ti@example.com)")
        .setting("app_secret", "app-secret")
        .setting("page_size", "2")
        .transport(move |req: &Request| -> Result<Response, HttpError> {
            Ok(store.borrow_mut().answer(req))
        })
}

/// Poll until `has_more` is false; the ids returned, in order.
fn sweep(cursor: &mut Option<String>, look_at: Vec<String>) -> Vec<String> {
    let mut ids = Vec::new();
    let mut look_at = look_at;
    for _ in 0..200 {
        let page = Nuvemshop::poll(PollRequest {
            cursor: cursor.clone(),
            detail_cutoff: None,
            look_at: std::mem::take(&mut look_at),
        })
        .unwrap();
        ids.extend(page.orders.iter().map(|o| o.id.clone()));
        *cursor = page.next_cursor;
        if !page.has_more {
            return ids;
        }
    }
    panic!("the sweep never ended");
}

#[test]
fn a_first_sweep_reads_every_page_once_and_then_only_changes() {
    let orders: Vec<Value> = (1..=5)
        .map(|id| order(id, NOW - 600_000 + id as i64 * 1000, "pending", "unpacked"))
        .collect();
    let store = FakeStore::new(orders, Order::UpdatedAsc);
    install(harness(&store));
    let mut cursor = None;
    assert_eq!(sweep(&mut cursor, vec![]), ["1", "2", "3", "4", "5"]);
    assert!(sweep(&mut cursor, vec![]).is_empty(), "nothing changed");

    testing::set_now_unix_ms(NOW as u64 + 60_000);
    store.borrow_mut().orders[2] = order(3, NOW + 30_000, "paid", "unpacked");
    let requests_before = testing::requests().len();
    assert_eq!(sweep(&mut cursor, vec![]), ["3"]);
    let requests = testing::requests();
    let url = &requests[requests_before].url;
    let since = query_param(url, "updated_at_min").unwrap();
    assert_eq!(
        parse_offset_datetime_ms(&since),
        Some(NOW - 600_000 + 5000 - 120_000),
        "mark − overlap"
    );
    assert!(requests.iter().all(|r| {
        r.headers
            .iter()
            .any(|(k, v)| k == "user-agent" && v.contains("ti@example.com"))
    }));
}

#[test]
fn an_order_updated_mid_sweep_does_not_hide_the_row_behind_it() {
    // Oldest-updated first: order 1 (page 1) is updated while page 1 is read
    // and jumps to the end; every row moves up one, so order 3 would slide
    // onto page 1 and be skipped by a naive pager.
    let orders: Vec<Value> = (1..=5)
        .map(|id| order(id, NOW - 600_000 + id as i64 * 1000, "pending", "unpacked"))
        .collect();
    let store = FakeStore::new(orders, Order::UpdatedAsc);
    let lists = Rc::new(RefCell::new(0));
    let counter = Rc::clone(&lists);
    store.borrow_mut().on_list = Some(Box::new(move |_page, orders| {
        *counter.borrow_mut() += 1;
        if *counter.borrow() == 2 {
            orders[0] = order(1, NOW - 1000, "paid", "unpacked");
        }
    }));
    install(harness(&store));
    let mut cursor = None;
    let mut ids = sweep(&mut cursor, vec![]);
    ids.sort();
    ids.dedup();
    assert_eq!(ids, ["1", "2", "3", "4", "5"], "no order lost");
}

#[test]
fn a_new_order_entering_an_earlier_page_is_still_read() {
    let orders: Vec<Value> = (1..=4)
        .map(|id| order(id, NOW - 600_000 + id as i64 * 1000, "pending", "unpacked"))
        .collect();
    let store = FakeStore::new(orders, Order::CreatedDesc);
    let lists = Rc::new(RefCell::new(0));
    let counter = Rc::clone(&lists);
    store.borrow_mut().on_list = Some(Box::new(move |_page, orders| {
        *counter.borrow_mut() += 1;
        if *counter.borrow() == 2 && orders.len() == 4 {
            orders.push(order(9, NOW + 500, "pending", "unpacked"));
        }
    }));
    install(harness(&store));
    let mut cursor = None;
    let mut ids = sweep(&mut cursor, vec![]);
    // Created mid-sweep, after the sweep began: this sweep or the next reads it.
    testing::set_now_unix_ms(NOW as u64 + 60_000);
    ids.extend(sweep(&mut cursor, vec![]));
    ids.sort();
    ids.dedup();
    assert_eq!(ids, ["1", "2", "3", "4", "9"]);
}

#[test]
fn a_pushed_order_is_read_by_detail_without_moving_the_mark() {
    let store = FakeStore::new(
        vec![order(1, NOW - 60_000, "pending", "unpacked")],
        Order::UpdatedAsc,
    );
    install(harness(&store));
    let mut cursor = None;
    assert_eq!(sweep(&mut cursor, vec![]), ["1"]);
    // Order 2 exists but is not listed yet (indexed late): the push names it.
    store
        .borrow_mut()
        .orders
        .push(order(2, NOW + 240_000, "paid", "unpacked"));
    store.borrow_mut().unlisted.push(2);
    let before: Value = serde_json::from_str(cursor.as_deref().unwrap()).unwrap();
    let page = Nuvemshop::poll(PollRequest {
        cursor: cursor.clone(),
        detail_cutoff: None,
        look_at: vec!["2".into(), "777".into()],
    })
    .unwrap();
    let ids: Vec<_> = page.orders.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(ids, ["2"], "the pushed order; 777 does not exist");
    let after: Value = serde_json::from_str(page.next_cursor.as_deref().unwrap()).unwrap();
    assert_eq!(before["mark_ms"], after["mark_ms"]);
    assert!(testing::logs().iter().any(|(_, m, _)| m.contains("777")));
}

#[test]
fn a_nearly_full_bucket_pauses_the_sweep_and_a_429_waits_for_the_reset() {
    let orders: Vec<Value> = (1..=5)
        .map(|id| order(id, NOW - 600_000 + id as i64 * 1000, "pending", "unpacked"))
        .collect();
    let store = FakeStore::new(orders, Order::UpdatedAsc);
    store.borrow_mut().bucket = (3, 18_500);
    install(harness(&store));
    let page = Nuvemshop::poll(PollRequest {
        cursor: None,
        detail_cutoff: None,
        look_at: vec![],
    })
    .unwrap();
    assert_eq!(page.orders.len(), 2, "the page read is returned");
    assert!(!page.has_more, "the sweep pauses");
    let lists = store.borrow().lists;
    match Nuvemshop::poll(PollRequest {
        cursor: page.next_cursor.clone(),
        detail_cutoff: None,
        look_at: vec![],
    }) {
        Err(PluginError::Retryable(r)) => assert!(r.retry_after_ms.is_some_and(|ms| ms > 0)),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        store.borrow().lists,
        lists,
        "no request while the bucket leaks"
    );

    testing::set_now_unix_ms(NOW as u64 + 10_000);
    store.borrow_mut().bucket = (39, 500);
    store.borrow_mut().fail_next = Some(429);
    match Nuvemshop::poll(PollRequest {
        cursor: page.next_cursor.clone(),
        detail_cutoff: None,
        look_at: vec![],
    }) {
        Err(PluginError::Retryable(r)) => {
            assert_eq!(r.retry_after_ms, Some(500), "x-rate-limit-reset")
        }
        other => panic!("{other:?}"),
    }
    let mut cursor = page.next_cursor;
    let rest = sweep(&mut cursor, vec![]);
    assert_eq!(rest, ["3", "4", "5"], "resumes where it paused");
}

#[test]
fn rejected_or_missing_credentials_are_misconfigured_by_name() {
    let store = FakeStore::new(vec![], Order::UpdatedAsc);
    install(harness(&store).setting("access_token", "wrong-token"));
    match Nuvemshop::check() {
        Err(PluginError::Misconfigured(m)) => {
            assert!(
                m.contains("`access_token`") && !m.contains("wrong-token"),
                "{m}"
            )
        }
        other => panic!("{other:?}"),
    }
    install(
        Harness::new()
            .setting("store_id", STORE)
            .setting("access_token", TOKEN),
    );
    match Nuvemshop::check() {
        Err(PluginError::Misconfigured(m)) => assert!(m.contains("`user_agent`"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(
        testing::requests().is_empty(),
        "no request without a User-Agent"
    );
    install(harness(&store));
    Nuvemshop::check().unwrap();
}

#[test]
fn a_signed_push_names_the_order() {
    let store = FakeStore::new(vec![], Order::UpdatedAsc);
    install(harness(&store));
    let body = br#"{"store_id":123456,"event":"order/fulfilled","id":42}"#.to_vec();
    let signature = {
        use hmac::{Hmac, KeyInit, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"app-secret").unwrap();
        mac.update(&body);
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let hint = Nuvemshop::verify_push(PushRequest {
        headers: vec![("x-linkedstore-hmac-sha256".into(), signature)],
        body,
    })
    .unwrap();
    assert!(matches!(hint, PushHint::LookAt(ids) if ids == ["42"]));
}

#[test]
fn a_long_first_sync_is_read_in_slices_with_few_requests() {
    // 300 orders spread over 30 days, 20 a page: every one is read, each
    // once, in a bounded number of requests, whatever order the API lists in.
    for list_order in [Order::UpdatedAsc, Order::CreatedDesc] {
        let orders: Vec<Value> = (1..=300)
            .map(|id| {
                order(
                    id,
                    NOW - 29 * 86_400_000 + id as i64 * 8_000_000,
                    "pending",
                    "unpacked",
                )
            })
            .collect();
        let store = FakeStore::new(orders, list_order);
        install(harness(&store).setting("page_size", "20"));
        let mut cursor = None;
        let ids = sweep(&mut cursor, vec![]);
        assert_eq!(ids.len(), 300, "each order once");
        let lists = store.borrow().lists;
        assert!(lists <= 120, "{lists} list requests for 300 orders");
    }
}

#[test]
fn an_api_without_updated_at_max_is_paged_through() {
    let orders: Vec<Value> = (1..=7)
        .map(|id| {
            order(
                id,
                NOW - 3_600_000 + id as i64 * 60_000,
                "pending",
                "unpacked",
            )
        })
        .collect();
    let store = FakeStore::new(orders, Order::UpdatedAsc);
    store.borrow_mut().ignore_max = true;
    install(harness(&store));
    let mut cursor = None;
    let mut ids = sweep(&mut cursor, vec![]);
    ids.sort();
    assert_eq!(ids, ["1", "2", "3", "4", "5", "6", "7"]);
    assert!(
        testing::logs()
            .iter()
            .any(|(_, m, _)| m.contains("ignored updated_at_max"))
    );
}
