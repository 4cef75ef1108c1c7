//! LI failures: rate limits, rejected credentials mid-sweep, missing orders,
//! server errors, garbage bodies, timeouts, unknown statuses.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::time::Duration;

use arauto_plugin_sdk::connector::log::Level;
use arauto_plugin_sdk::connector::{PluginError, testing};
use arauto_sim::li::{Fault, Order, Route};
use common::*;

fn retryable(error: PluginError) -> (String, Option<u64>) {
    match error {
        PluginError::Retryable(e) => (e.message, e.retry_after_ms),
        other => panic!("expected retryable, got {other:?}"),
    }
}

#[test]
fn rate_limited_search_is_retryable_with_retry_after_then_succeeds() {
    let fake = fake();
    fake.store.create_order(Order::new());
    install(&fake, &[]);
    fake.store.fail(
        Route::Search,
        Fault::TooManyRequests {
            retry_after_secs: Some(7),
        },
        1,
    );
    let (message, wait) = retryable(poll(None, None).expect_err("429"));
    assert_eq!(wait, Some(7_000));
    assert!(
        message.contains("HTTP 429") && message.contains("633"),
        "{message}"
    );
    assert!(message.contains("per store"), "{message}");

    fake.store.fail(
        Route::Search,
        Fault::TooManyRequests {
            retry_after_secs: None,
        },
        1,
    );
    let (_, wait) = retryable(poll(None, None).expect_err("429"));
    assert_eq!(wait, Some(10_000), "LI sends no Retry-After: back off 10 s");

    let page = poll(None, None).expect("then success");
    assert_eq!(page.orders.len(), 1);
    assert!(!page.has_more);
}

#[test]
fn a_rate_limit_on_the_first_detail_fails_the_call_and_keeps_the_cursor() {
    let fake = fake();
    fake.store.create_order(Order::new());
    install(&fake, &[]);
    let before = sweep(None, None).cursor;
    let numero = fake.store.create_order(Order::new());
    fake.store.fail(
        Route::Detail,
        Fault::TooManyRequests {
            retry_after_secs: None,
        },
        1,
    );
    let (message, wait) =
        retryable(poll(Some(&before), None).expect_err("429 on the only new order"));
    assert!(
        message.contains(&format!("reading order {numero}")),
        "{message}"
    );
    assert_eq!(wait, Some(10_000));
    let after = sweep(Some(&before), None);
    assert_eq!(
        numeros(&after.orders),
        vec![numero],
        "the host retries with the old cursor"
    );
}

#[test]
fn a_rate_limit_in_the_middle_of_a_page_returns_what_was_read_so_far_and_keeps_the_wait() {
    let fake = fake();
    for _ in 0..5 {
        fake.store.create_order(Order::new());
    }
    install(&fake, &[]);
    // The third detail call is rate limited, with LI asking for 4 s.
    fake.store
        .fail(Route::Detail, Fault::Delay(Duration::ZERO), 2);
    fake.store.fail(
        Route::Detail,
        Fault::TooManyRequests {
            retry_after_secs: Some(4),
        },
        1,
    );
    let partial = poll(None, None).expect("partial page");
    assert_eq!(numeros(&partial.orders), vec![1001, 1002]);
    assert!(partial.has_more, "the rest of the page follows");
    let warned = testing::logs()
        .iter()
        .any(|(l, m, _)| *l == Level::Warn && m.contains("stopping this page early"));
    assert!(warned);

    // Called again at once (the host's next page), the connector answers with
    // the time left of LI's wait and sends nothing.
    fake.li.clear_requests();
    let sent_before = testing::requests().len();
    let (message, wait) =
        retryable(poll(partial.next_cursor.as_deref(), None).expect_err("still waiting"));
    assert_eq!(wait, Some(4_000), "{message}");
    assert!(message.contains("no request sent"), "{message}");
    assert_eq!(testing::requests().len(), sent_before, "no HTTP request");
    assert!(fake.li.requests().is_empty());

    // 1.5 s later the hint has shrunk; after it, the page goes on.
    testing::set_now_unix_ms(HOST_START_MS + 1_500);
    let (_, wait) = retryable(poll(partial.next_cursor.as_deref(), None).expect_err("waiting"));
    assert_eq!(wait, Some(2_500));
    testing::set_now_unix_ms(HOST_START_MS + 4_000);
    let rest = sweep(partial.next_cursor.as_deref(), None);
    assert_eq!(numeros(&rest.orders), vec![1003, 1004, 1005]);
    let details = detail_calls(&fake.li.requests());
    assert_eq!(
        details,
        vec![1003, 1004, 1005],
        "only the rate-limited call is repeated"
    );
}

#[test]
fn a_503_with_retry_after_in_the_middle_of_a_page_is_honoured_like_a_429() {
    let fake = fake();
    for _ in 0..3 {
        fake.store.create_order(Order::new());
    }
    // LI (or its load balancer) says when it is back, as an HTTP-date:
    // 2024-05-10T12:00:06Z, 6 s after the harness clock.
    install_editing(&fake, &[], |_, mut answer| {
        if answer.status == 503 {
            answer
                .headers
                .push(("Retry-After".into(), "Fri, 10 May 2024 12:00:06 GMT".into()));
        }
        Ok(answer)
    });
    fake.store
        .fail(Route::Detail, Fault::Delay(Duration::ZERO), 1);
    fake.store.fail(Route::Detail, Fault::Status(503), 1);
    let partial = poll(None, None).expect("partial page");
    assert_eq!(numeros(&partial.orders), vec![1001]);
    assert!(partial.has_more);
    let (message, wait) =
        retryable(poll(partial.next_cursor.as_deref(), None).expect_err("waiting"));
    assert_eq!(wait, Some(6_000), "{message}");

    testing::set_now_unix_ms(HOST_START_MS + 6_000);
    let rest = sweep(partial.next_cursor.as_deref(), None);
    assert_eq!(numeros(&rest.orders), vec![1002, 1003]);
}

#[test]
fn a_503_without_retry_after_on_the_only_order_is_plainly_retryable() {
    let fake = fake();
    fake.store.create_order(Order::new());
    install(&fake, &[]);
    fake.store.fail(Route::Detail, Fault::Status(503), 1);
    let (message, wait) = retryable(poll(None, None).expect_err("503"));
    assert_eq!(wait, None, "{message}");
    assert!(message.contains("HTTP 503"), "{message}");
}

#[test]
fn credentials_rejected_mid_sweep_pause_the_store_and_resume_from_the_committed_page() {
    let fake = fake();
    for _ in 0..6 {
        fake.store.create_order(Order::new());
    }
    install(&fake, &[("page_size", "3")]);
    let first = poll(None, None).unwrap();
    fake.store.reject_auth(Some(401));
    let error = poll(first.next_cursor.as_deref(), None).expect_err("401");
    assert!(
        matches!(&error, PluginError::Misconfigured(m) if m.contains("token inválido/expirado")),
        "{error:?}"
    );
    fake.store.reject_auth(None);
    let rest = sweep(first.next_cursor.as_deref(), None);
    assert_eq!(numeros(&rest.orders), vec![1004, 1005, 1006]);
}

#[test]
fn a_detail_answering_404_is_skipped_and_not_retried_until_the_order_changes() {
    let fake = fake();
    let a = fake.store.create_order(Order::new());
    let b = fake.store.create_order(Order::new());
    let c = fake.store.create_order(Order::new());
    install(&fake, &[]);
    fake.store
        .on_request(Route::Detail, 2, move |store| store.delete(b).unwrap());
    let first = sweep(None, None);
    assert_eq!(
        numeros(&first.orders),
        vec![a, c],
        "listed, then gone: skipped, the rest continues"
    );
    let logs = testing::logs();
    let warned = logs.iter().any(|(l, m, fields)| {
        *l == Level::Warn
            && m.contains("answered 404")
            && fields
                .iter()
                .any(|(k, v)| k == "order" && *v == b.to_string())
    });
    assert!(warned, "{logs:?}");

    // A listed order whose detail is 404 (LI inconsistency) is not re-read every poll.
    fake.store.fail(Route::Detail, Fault::Status(404), 1);
    let d = fake.store.create_order(Order::new());
    let second = sweep(Some(&first.cursor), None);
    assert!(second.orders.is_empty());
    fake.li.clear_requests();
    let third = sweep(Some(&second.cursor), None);
    assert!(third.orders.is_empty());
    assert!(
        detail_calls(&fake.li.requests()).is_empty(),
        "no retry loop on a 404"
    );
    fake.store.set_status(d, "pedido_pago").unwrap();
    let fourth = sweep(Some(&third.cursor), None);
    assert_eq!(numeros(&fourth.orders), vec![d]);
}

#[test]
fn server_errors_are_retryable() {
    let fake = fake();
    fake.store.create_order(Order::new());
    install(&fake, &[]);
    fake.store.fail(Route::Search, Fault::Status(500), 1);
    let (message, wait) = retryable(poll(None, None).expect_err("500"));
    assert!(message.contains("HTTP 500"), "{message}");
    assert_eq!(wait, None);
    fake.store.fail(Route::Detail, Fault::Status(502), 1);
    let (message, _) = retryable(poll(None, None).expect_err("502"));
    assert!(
        message.contains("HTTP 502") && message.contains("reading order 1001"),
        "{message}"
    );
    assert_eq!(poll(None, None).unwrap().orders.len(), 1);
}

#[test]
fn a_malformed_search_page_is_retryable_and_quotes_the_body() {
    let fake = fake();
    fake.store.create_order(Order::new());
    install(&fake, &[]);
    fake.store.fail(Route::Search, Fault::Garbage, 1);
    let (message, _) = retryable(poll(None, None).expect_err("garbage"));
    assert!(message.contains("malformed JSON"), "{message}");
    assert!(
        message.contains("<html><body><h1>502 Bad Gateway</h1>"),
        "the excerpt: {message}"
    );
    assert_eq!(poll(None, None).unwrap().orders.len(), 1);
}

#[test]
fn a_slow_api_times_out_as_retryable() {
    let fake = fake();
    fake.store.create_order(Order::new());
    install(&fake, &[("request_timeout", "200ms")]);
    fake.store
        .fail(Route::Search, Fault::Delay(Duration::from_secs(2)), 1);
    let (message, _) = retryable(poll(None, None).expect_err("timeout"));
    assert!(message.contains("timed out"), "{message}");
    assert!(
        testing::requests()
            .iter()
            .all(|r| r.timeout_ms == Some(200))
    );
}

#[test]
fn unknown_status_codes_pass_through_untouched() {
    let fake = fake();
    fake.store.add_custom_status(
        3001,
        "aguardando_retirada_loja",
        "Aguardando retirada na loja",
    );
    let custom = fake
        .store
        .create_order(Order::new().status("aguardando_retirada_loja"));
    let invented = fake
        .store
        .create_order(Order::new().status("status_que_ninguem_conhece"));
    install(&fake, &[]);
    let result = sweep(None, None);
    let status = |n: u64| {
        let o = result
            .orders
            .iter()
            .find(|o| o.id == n.to_string())
            .unwrap();
        (o.status.code.clone(), o.status.name.clone())
    };
    assert_eq!(
        status(custom),
        (
            "aguardando_retirada_loja".into(),
            "Aguardando retirada na loja".into()
        )
    );
    assert_eq!(status(invented).0, "status_que_ninguem_conhece");
}
