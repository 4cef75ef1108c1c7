//! Property tests over hostile input for everything the connector reads
//! from Nuvemshop, a push or a stored cursor: order documents (as list rows
//! and details), whole API answers (status, paging and bucket headers, body)
//! through a poll, pushed bodies and headers, stored cursors and timestamps.
//! The property: no panic, whatever arrives; a rejected value is an error,
//! never a crash of the plugin (which would fail the whole poll).
//!
//! cargo-fuzz needs a nightly toolchain, so these run as ordinary tests:
//! 64 cases each by default; `PROPTEST_CASES=100000 cargo test --release -p
//! nuvemshop --lib fuzz` soaks them.

use arauto_plugin_sdk::connector::testing::{Harness, install};
use arauto_plugin_sdk::time::parse_offset_datetime_ms;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

use arauto_plugin_sdk::connector::PollRequest;
use arauto_plugin_sdk::connector::http::Response;

use crate::cursor::Cursor;
use crate::mapping;
use crate::poll;
use crate::push;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,24}".prop_map(Value::String),
        "[0-9]{1,6}(\\.[0-9]{0,6})?".prop_map(Value::String),
        "20[0-9]{2}-[01][0-9]-[0-3][0-9][T ][0-2][0-9]:[0-5][0-9]:[0-6][0-9](Z|[+-][0-9]{2}:?[0-9]{0,2})?"
            .prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const KEYS: [&str; 22] = [
    "id",
    "number",
    "status",
    "payment_status",
    "shipping_status",
    "updated_at",
    "created_at",
    "paid_at",
    "total",
    "subtotal",
    "discount",
    "shipping_cost_customer",
    "currency",
    "gateway",
    "payment_details",
    "customer",
    "contact_phone",
    "products",
    "shipping_tracking_number",
    "fulfillment_orders",
    "fulfillments",
    "shipping_address",
];

/// An order document: the fields the connector reads, with any values.
fn order_doc() -> impl Strategy<Value = Value> {
    prop::collection::vec((0..KEYS.len(), any_json()), 0..16).prop_map(|pairs| {
        let mut map = Map::new();
        map.insert("id".into(), json!(42));
        map.insert("updated_at".into(), json!("2024-05-10T12:00:00-03:00"));
        for (k, v) in pairs {
            map.insert(KEYS[k].into(), v);
        }
        Value::Object(map)
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn no_order_document_panics_the_mapping(doc in order_doc()) {
        install(Harness::new());
        let _ = mapping::needs_detail(&doc);
        if let Ok(key) = mapping::change_key(&doc) {
            let snapshot = mapping::snapshot(&doc, &key);
            prop_assert!(serde_json::from_str::<Value>(&snapshot.extras_json).is_ok());
            prop_assert!(!snapshot.status.code.is_empty());
        }
    }

    #[test]
    fn no_pushed_delivery_panics_the_verification(
        body in prop::collection::vec(any::<u8>(), 0..256),
        json_body in any_json(),
        header in ".{0,80}",
        signed in any::<bool>(),
    ) {
        for body in [body, json_body.to_string().into_bytes()] {
            let value = if signed { push::signature_hex(b"s", &body) } else { header.clone() };
            let headers = vec![(push::SIGNATURE_HEADER.to_owned(), value)];
            let _ = push::verify(&headers, &body, Some("s"), "123");
            let _ = push::verify(&headers, &body, None, "123");
        }
    }

    #[test]
    fn no_stored_cursor_or_timestamp_panics(text in ".{0,200}", value in any_json()) {
        let _ = Cursor::decode(&text);
        let _ = Cursor::decode(&value.to_string());
        let _ = parse_offset_datetime_ms(&text);
    }
}

/// One API answer: a status, the paging and bucket headers (any text), a body.
fn answer() -> impl Strategy<Value = (u16, Vec<(String, String)>, Vec<u8>)> {
    let status = prop_oneof![
        Just(200u16),
        Just(200),
        Just(404),
        Just(429),
        Just(500),
        Just(401),
        100u16..600
    ];
    let header_value = prop_oneof![
        "[0-9]{1,4}",
        ".{0,30}",
        "<http://x/y\\?page=[0-9]{1,3}>; rel=\"next\"",
    ];
    let headers = prop::collection::vec(
        (
            prop_oneof![
                Just("x-total-count"),
                Just("x-rate-limit-limit"),
                Just("x-rate-limit-remaining"),
                Just("x-rate-limit-reset"),
                Just("link"),
                Just("retry-after"),
            ],
            header_value,
        )
            .prop_map(|(k, v)| (k.to_owned(), v)),
        0..6,
    );
    let body = prop_oneof![
        prop::collection::vec(order_doc(), 0..6)
            .prop_map(|v| Value::Array(v).to_string().into_bytes()),
        any_json().prop_map(|v| v.to_string().into_bytes()),
        prop::collection::vec(any::<u8>(), 0..64),
    ];
    (status, headers, body)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn no_api_answer_or_stored_cursor_panics_a_poll(
        answers in prop::collection::vec(answer(), 1..6),
        cursor in prop_oneof![Just(None), ".{0,40}".prop_map(Some), any_json().prop_map(|v| Some(v.to_string()))],
        look_at in prop::collection::vec("[0-9]{1,4}|.{0,6}", 0..3),
    ) {
        let mut answers = answers.into_iter().cycle();
        install(
            Harness::new()
                .setting("store_id", "1")
                .setting("access_token", "t")
                .setting("user_agent", "fuzz (f@example.com)")
                .setting("page_size", "3")
                .transport(move |_| {
                    let (status, headers, body) = answers.next().unwrap_or((200, vec![], b"[]".to_vec()));
                    Ok(Response { status, headers, body })
                }),
        );
        let mut cursor = cursor;
        for _ in 0..4 {
            match poll::poll(PollRequest { cursor: cursor.clone(), detail_cutoff: None, look_at: look_at.clone() }) {
                Ok(page) => {
                    prop_assert!(page.next_cursor.as_deref().is_some_and(|c| Cursor::decode(c).is_ok()));
                    cursor = page.next_cursor;
                }
                Err(_) => break,
            }
        }
    }
}
