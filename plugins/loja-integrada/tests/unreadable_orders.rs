//! One order that cannot be read (too large, malformed, too deeply nested, an
//! error status about it alone) does not hold up its store: it is skipped,
//! reported, retried with back-off, quarantined, and retried when it changes.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use arauto_plugin_sdk::connector::PluginError;
use arauto_plugin_sdk::connector::http::HttpError;
use arauto_plugin_sdk::connector::log::Level;
use arauto_plugin_sdk::connector::testing;
use arauto_sim::li::{Fault, Order, Route};
use common::*;
use jiff::SignedDuration;

/// The host's response cap, as the sandbox applies it (scaled down).
const CAP: usize = 64 * 1024;

fn capped(
    _url: &str,
    answer: arauto_plugin_sdk::connector::http::Response,
) -> Result<arauto_plugin_sdk::connector::http::Response, HttpError> {
    if answer.body.len() > CAP {
        Err(HttpError::TooLarge(CAP as u64))
    } else {
        Ok(answer)
    }
}

/// Answer the detail of `numero` with an HTML page, `times` times.
fn garbage_for(
    numero: u64,
    mut times: usize,
) -> impl FnMut(
    &str,
    arauto_plugin_sdk::connector::http::Response,
) -> Result<arauto_plugin_sdk::connector::http::Response, HttpError> {
    move |url, mut answer| {
        if times > 0 && url.ends_with(&format!("/pedido/{numero}")) {
            times -= 1;
            answer.body = b"<html><body><h1>502 Bad Gateway</h1></body></html>".to_vec();
        }
        Ok(answer)
    }
}

fn minutes(n: u64) -> u64 {
    n * 60_000
}

#[test]
fn an_order_over_the_response_cap_is_skipped_and_the_rest_of_the_store_flows_on() {
    let fake = fake();
    let big = fake.store.create_order(Order::new());
    let b = fake.store.create_order(Order::new());
    let c = fake.store.create_order(Order::new());
    install_editing(&fake, &[], capped);
    // 10,000 items' worth of detail: over the cap.
    fake.store
        .fail(Route::Detail, Fault::Oversized(4_500_000), 1);
    let first = sweep(None, None);
    assert_eq!(numeros(&first.orders), vec![b, c], "the page is not failed");
    let cursor = cursor_json(&first.cursor);
    assert!(cursor.get("hw").is_some(), "the cursor advances: {cursor}");
    assert!(cursor.get("sweep").is_none(), "the sweep finished");

    let unreadable = notices("order-unreadable");
    assert_eq!(unreadable.len(), 1, "{unreadable:?}");
    let (level, message, fields) = &unreadable[0];
    assert_eq!(*level, Level::Warn);
    assert_eq!(field(fields, "order"), Some(big.to_string().as_str()));
    assert_eq!(field(fields, "attempt"), Some("1"));
    assert_eq!(field(fields, "retry_in_s"), Some("60"));
    assert!(message.contains("cap"), "the reason: {message}");

    // Before its retry is due, nothing asks for it again.
    fake.li.clear_requests();
    testing::set_now_unix_ms(HOST_START_MS + 30_000);
    let quiet = sweep(Some(&first.cursor), None);
    assert!(quiet.orders.is_empty());
    assert!(detail_calls(&fake.li.requests()).is_empty());

    // Due: read by numero, and it now fits.
    testing::set_now_unix_ms(HOST_START_MS + minutes(1));
    let retried = sweep(Some(&quiet.cursor), None);
    assert_eq!(numeros(&retried.orders), vec![big]);
    assert_eq!(detail_calls(&fake.li.requests()), vec![big]);
    let recovered = notices("order-recovered");
    assert_eq!(recovered.len(), 1);
    assert_eq!(
        field(&recovered[0].2, "order"),
        Some(big.to_string().as_str())
    );
    assert!(cursor_json(&retried.cursor).get("fail").is_none());
}

#[test]
fn malformed_too_deep_and_refused_details_are_per_order_failures() {
    let fake = fake();
    let garbage = fake.store.create_order(Order::new());
    let deep = fake.store.create_order(Order::new());
    let refused = fake.store.create_order(Order::new());
    let fine = fake.store.create_order(Order::new());
    let mut garbage_once = garbage_for(garbage, 1);
    install_editing(&fake, &[], move |url, mut answer| {
        if url.ends_with(&format!("/pedido/{deep}")) {
            // Deeper than the JSON parser's recursion limit.
            answer.body = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes();
        }
        if url.ends_with(&format!("/pedido/{refused}")) {
            answer.status = 400;
            answer.body = br#"{"error_message": "pedido invalido"}"#.to_vec();
        }
        garbage_once(url, answer)
    });
    let result = sweep(None, None);
    assert_eq!(numeros(&result.orders), vec![fine]);
    let failed: Vec<String> = notices("order-unreadable")
        .iter()
        .map(|(_, _, f)| field(f, "order").unwrap().to_owned())
        .collect();
    assert_eq!(
        failed,
        [garbage, deep, refused].map(|n| n.to_string()),
        "each named in its own notice"
    );
    let messages: Vec<String> = notices("order-unreadable")
        .into_iter()
        .map(|(_, m, _)| m)
        .collect();
    assert!(messages[0].contains("malformed JSON"), "{messages:?}");
    assert!(messages[1].contains("recursion limit"), "{messages:?}");
    assert!(messages[2].contains("HTTP 400"), "{messages:?}");
    let fail = cursor_json(&result.cursor)["fail"].clone();
    assert_eq!(fail.as_array().unwrap().len(), 3, "{fail}");
}

#[test]
fn store_failures_on_a_detail_still_fail_the_call() {
    let fake = fake();
    fake.store.create_order(Order::new());
    install(&fake, &[]);
    // Credentials revoked between the search and the detail.
    fake.store
        .on_request(Route::Search, 1, |store| store.reject_auth(Some(403)));
    let error = poll(None, None).expect_err("403");
    assert!(matches!(error, PluginError::Misconfigured(_)), "{error:?}");
    fake.store.reject_auth(None);
    fake.store.fail(Route::Detail, Fault::Status(500), 1);
    let error = poll(None, None).expect_err("500 is about LI, not the order");
    assert!(matches!(error, PluginError::Retryable(_)), "{error:?}");
    assert!(notices("order-unreadable").is_empty());
}

#[test]
fn an_order_that_keeps_failing_is_quarantined_then_retried_when_it_changes() {
    let fake = fake();
    let bad = fake.store.create_order(Order::new());
    let good = fake.store.create_order(Order::new());
    install_editing(&fake, &[], garbage_for(bad, 5));

    let mut result = sweep(None, None);
    assert_eq!(numeros(&result.orders), vec![good]);
    // Attempts 2..5, each when due: 1, 2, 4, 8 minutes after the previous one.
    let mut now = HOST_START_MS;
    for (attempt, wait) in [(2, 1), (3, 2), (4, 4), (5, 8)] {
        now += minutes(wait);
        testing::set_now_unix_ms(now);
        fake.li.clear_requests();
        result = sweep(Some(&result.cursor), None);
        assert!(result.orders.is_empty());
        assert_eq!(
            detail_calls(&fake.li.requests()),
            vec![bad],
            "attempt {attempt} reads the order once"
        );
    }
    let attempts: Vec<String> = notices("order-unreadable")
        .iter()
        .map(|(_, _, f)| field(f, "attempt").unwrap().to_owned())
        .collect();
    assert_eq!(attempts, ["1", "2", "3", "4"]);
    let quarantined = notices("order-quarantined");
    assert_eq!(quarantined.len(), 1);
    assert_eq!(
        field(&quarantined[0].2, "order"),
        Some(bad.to_string().as_str())
    );
    assert_eq!(field(&quarantined[0].2, "attempts"), Some("5"));
    assert!(
        quarantined[0].1.contains("malformed JSON"),
        "{}",
        quarantined[0].1
    );

    // Quarantined: hours later, unchanged, it is not asked for again.
    now += minutes(180);
    testing::set_now_unix_ms(now);
    fake.li.clear_requests();
    result = sweep(Some(&result.cursor), None);
    assert!(result.orders.is_empty());
    assert!(detail_calls(&fake.li.requests()).is_empty());

    // It changes on LI: its search row shows a new change key, and it is read.
    fake.li.advance(SignedDuration::from_mins(190));
    fake.store.set_status(bad, "pedido_pago").unwrap();
    result = sweep(Some(&result.cursor), None);
    assert_eq!(numeros(&result.orders), vec![bad]);
    assert_eq!(result.orders[0].status.code, "pedido_pago");
    assert_eq!(notices("order-recovered").len(), 1);
    assert!(cursor_json(&result.cursor).get("fail").is_none());
}

#[test]
fn a_failing_order_that_leaves_the_search_window_is_still_retried_by_numero() {
    let fake = fake();
    let bad = fake.store.create_order(Order::new());
    let good = fake.store.create_order(Order::new());
    install_editing(&fake, &[], garbage_for(bad, 2));
    let first = sweep(None, None);
    assert_eq!(numeros(&first.orders), vec![good]);

    // An hour later: its first retry fails again; a new order moves the window on.
    fake.li.advance(SignedDuration::from_hours(1));
    let later = fake.store.create_order(Order::new());
    testing::set_now_unix_ms(HOST_START_MS + minutes(60));
    let second = sweep(Some(&first.cursor), None);
    assert_eq!(numeros(&second.orders), vec![later]);

    // Due again: the search window now starts after its modification, so
    // only a read by numero can bring it back.
    testing::set_now_unix_ms(HOST_START_MS + minutes(62));
    fake.li.clear_requests();
    let third = sweep(Some(&second.cursor), None);
    assert_eq!(numeros(&third.orders), vec![bad]);
    let since = searches(&fake.li.requests())[0]
        .query_param("since_atualizado")
        .unwrap()
        .to_owned();
    assert!(
        since.as_str() > "2024-05-10T09:01:00",
        "out of the window: since {since}"
    );
    assert_eq!(detail_calls(&fake.li.requests()), vec![bad]);
}
