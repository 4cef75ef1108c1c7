//! Pushes, end to end against the fake LI: subscribing (`register-push` /
//! `unregister-push` → `PUT`/`DELETE /webhooks/v1/pedido`), authenticating
//! the deliveries the fake sends in LI's push shape (`verify-push`), and
//! reading the orders a push named (`poll` with `look-at`): a few per call,
//! the rest carried in the cursor, and never moving the high-water mark.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use arauto_plugin_sdk::connector::http::{HttpError, Response};
use arauto_plugin_sdk::connector::{Connector, PluginError, PushHint, PushRequest};
use arauto_sim::li::{DateTime, Fault, Order, PushRecord, Route, WRONG_TOKEN, WebhookEvent};
use common::*;
use loja_integrada::LojaIntegrada;
use serde_json::Value;

/// Pushed orders the connector reads per call (its `poll::LOOK_AT_PER_CALL`).
const LOOK_AT_PER_CALL: usize = 5;

const WEBHOOK_TOKEN: &str = "segredo-do-webhook-7f3a9c";
/// Nothing listens there: the fake records each push as failed, body included.
const DEAD_URL: &str = "http://127.0.0.1:9/hooks/loja";

fn request(authorization: &str, body: &str) -> PushRequest {
    PushRequest {
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("authorization".into(), authorization.into()),
        ],
        body: body.as_bytes().to_vec(),
    }
}

#[test]
fn register_and_unregister_subscribe_the_store_with_its_token() {
    let fake = fake();
    install(&fake, &[("webhook_token", WEBHOOK_TOKEN)]);
    LojaIntegrada::register_push(DEAD_URL.into()).expect("registered");
    let hooks = fake.store.webhooks();
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0].notify_url, DEAD_URL);
    assert_eq!(hooks[0].token, WEBHOOK_TOKEN);
    let put = fake
        .li
        .requests()
        .into_iter()
        .find(|r| r.path.contains("/webhooks/v1/pedido"))
        .expect("the PUT reached the fake");
    assert_eq!(
        put.authorization.as_deref(),
        Some(format!("chave_api {API_KEY} aplicacao {APP_KEY}").as_str()),
        "LI's usual credentials"
    );
    LojaIntegrada::unregister_push(DEAD_URL.into()).expect("unregistered");
    assert!(fake.store.webhooks().is_empty());
}

#[test]
fn registering_without_a_webhook_token_is_misconfigured_naming_the_key() {
    let fake = fake();
    install(&fake, &[]);
    match LojaIntegrada::register_push(DEAD_URL.into()) {
        Err(PluginError::Misconfigured(message)) => {
            assert!(message.contains("webhook_token"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert!(fake.store.webhooks().is_empty());
}

#[test]
fn registering_with_refused_credentials_is_misconfigured() {
    let fake = fake();
    install(&fake, &[("webhook_token", WEBHOOK_TOKEN)]);
    fake.store.reject_auth(Some(401));
    match LojaIntegrada::register_push(DEAD_URL.into()) {
        Err(PluginError::Misconfigured(message)) => {
            assert!(!message.contains(WEBHOOK_TOKEN), "{message}");
            assert!(!message.contains(API_KEY), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_fakes_pushes_verify_and_name_the_numero_and_repeats_are_ignored() {
    let fake = fake();
    let numero = fake.store.create_order(Order::new());
    install(&fake, &[("webhook_token", WEBHOOK_TOKEN)]);
    LojaIntegrada::register_push(DEAD_URL.into()).expect("registered");
    let mut events = fake.li.subscribe_webhooks();
    // The next push the fake sends.
    let mut next_push = || -> PushRecord {
        loop {
            if let WebhookEvent::Push(record) = events.blocking_recv().expect("the event feed") {
                return record;
            }
        }
    };

    fake.store.set_status(numero, "pedido_pago").expect("paid");
    let changed = next_push();
    assert!(changed.status_changed);
    let hint = LojaIntegrada::verify_push(request(&changed.authorization, &changed.body))
        .expect("an authentic delivery");
    match hint {
        PushHint::LookAt(orders) => assert_eq!(orders, vec![numero.to_string()]),
        other => panic!("{other:?}"),
    }

    fake.store.push_again(numero).expect("repeat");
    let repeat = next_push();
    assert!(!repeat.status_changed);
    let hint = LojaIntegrada::verify_push(request(&repeat.authorization, &repeat.body))
        .expect("an authentic repeat");
    assert!(matches!(hint, PushHint::Ignore(_)), "{hint:?}");
}

#[test]
fn a_forged_token_or_an_unset_one_is_refused_without_quoting_either() {
    let fake = fake();
    install(&fake, &[("webhook_token", WEBHOOK_TOKEN)]);
    let body = r#"{"numero": 1001, "situacao": {"situacao_alterada": true}}"#;
    match LojaIntegrada::verify_push(request(&format!("Bearer {WRONG_TOKEN}"), body)) {
        Err(PluginError::Misconfigured(message)) => {
            assert!(!message.contains(WRONG_TOKEN), "{message}");
            assert!(!message.contains(WEBHOOK_TOKEN), "{message}");
        }
        other => panic!("{other:?}"),
    }
    install(&fake, &[]);
    match LojaIntegrada::verify_push(request(&format!("Bearer {WEBHOOK_TOKEN}"), body)) {
        Err(PluginError::Misconfigured(message)) => {
            assert!(message.contains("webhook_token"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_body_without_a_numero_is_permanent() {
    let fake = fake();
    install(&fake, &[("webhook_token", WEBHOOK_TOKEN)]);
    let bearer = format!("Bearer {WEBHOOK_TOKEN}");
    for body in ["<html>", r#"{"id": 5}"#, r#"{"numero": "x"}"#] {
        assert!(
            matches!(
                LojaIntegrada::verify_push(request(&bearer, body)),
                Err(PluginError::Permanent(_))
            ),
            "{body}"
        );
    }
    assert!(
        fake.li.requests().is_empty(),
        "verify-push makes no request"
    );
}

#[test]
fn look_at_reads_the_named_orders_whatever_the_listing_shows_and_skips_404s() {
    let fake = fake();
    // Modified long before the first sweep's look-back: the search never lists it.
    let old: DateTime = "2020-01-01T10:00:00".parse().unwrap();
    let numero = fake
        .store
        .create_order(Order::new().status("pedido_pago").modified_at(old));
    install(&fake, &[]);
    let listed = poll(None, None).expect("poll");
    assert!(listed.orders.iter().all(|o| o.id != numero.to_string()));

    install(&fake, &[]);
    let page = poll_looking_at(None, None, &[&numero.to_string(), "999999", "not-a-numero"])
        .expect("poll");
    let found: Vec<&str> = page.orders.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(found, vec![numero.to_string().as_str()]);
    let order = &page.orders[0];
    assert!(order.detailed, "read in detail");
    assert_eq!(order.status.code, "pedido_pago");
}

/// A transport edit that leaves `hidden` out of every search page, as LI's
/// search index does with changes it has not indexed yet.
fn not_indexed_yet(
    hidden: Vec<u64>,
) -> impl FnMut(&str, Response) -> Result<Response, HttpError> + 'static {
    move |url, mut answer| {
        if url.contains("/pedido/search") {
            let mut doc: Value = serde_json::from_slice(&answer.body).expect("a JSON page");
            if let Some(Value::Array(rows)) = doc.get_mut("objects") {
                rows.retain(|row| {
                    row.get("numero")
                        .and_then(Value::as_u64)
                        .is_none_or(|n| !hidden.contains(&n))
                });
            }
            answer.body = serde_json::to_vec(&doc).unwrap();
        }
        Ok(answer)
    }
}

#[test]
fn a_pushed_order_does_not_move_the_cursor_past_a_change_indexed_late() {
    let fake = fake();
    let at = |time: &str| -> DateTime { format!("2024-05-10T{time}").parse().unwrap() };
    let listed = fake.store.create_order(
        Order::new()
            .status("pedido_pago")
            .modified_at(at("08:30:00")),
    );
    // B changed at 08:40 but LI indexes it late (and its push was lost);
    // A changed at 08:59:50 and its push arrived before LI indexed it.
    let late = fake.store.create_order(
        Order::new()
            .status("pedido_pago")
            .modified_at(at("08:40:00")),
    );
    let pushed = fake.store.create_order(
        Order::new()
            .status("pedido_pago")
            .modified_at(at("08:59:50")),
    );
    install_editing(&fake, &[], not_indexed_yet(vec![late, pushed]));
    let page = poll_looking_at(None, None, &[&pushed.to_string()]).expect("poll");
    assert!(!page.has_more);
    assert_eq!(numeros(&page.orders), vec![pushed, listed]);
    let cursor = page.next_cursor.expect("a cursor");
    assert_eq!(
        cursor_json(&cursor)["hw"],
        "2024-05-10T08:30:00.000000",
        "the mark follows the listing, not the pushed order: {cursor}"
    );

    // LI has indexed both now: the late change lies inside the next window,
    // and the pushed order, listed with the key it was read with, is not
    // returned again.
    install(&fake, &[]);
    let next = sweep(Some(&cursor), None);
    assert_eq!(numeros(&next.orders), vec![late]);
    assert_eq!(
        cursor_json(&next.cursor)["hw"],
        "2024-05-10T08:59:50.000000",
        "listed now, the pushed order moves the mark"
    );
}

#[test]
fn many_pushed_orders_are_read_a_few_per_call_and_the_listing_goes_on() {
    let fake = fake();
    // Modified long before the first sweep's look-back: only a push finds them.
    let old: DateTime = "2020-01-01T10:00:00".parse().unwrap();
    let pushed: Vec<u64> = (0..12)
        .map(|_| fake.store.create_order(Order::new().modified_at(old)))
        .collect();
    let recent: DateTime = "2024-05-10T08:50:00".parse().unwrap();
    let listed = fake.store.create_order(Order::new().modified_at(recent));
    install(&fake, &[]);
    let ids: Vec<String> = pushed.iter().map(u64::to_string).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();

    let first = poll_looking_at(None, None, &ids).expect("poll");
    assert!(first.has_more, "pushed orders are still waiting");
    let mut expected = pushed[..LOOK_AT_PER_CALL].to_vec();
    expected.push(listed);
    assert_eq!(
        numeros(&first.orders),
        expected,
        "5 pushed, then the listing"
    );
    let cursor = first.next_cursor.expect("a cursor");
    assert_eq!(
        cursor_json(&cursor)["look"],
        serde_json::json!(pushed[LOOK_AT_PER_CALL..]),
        "the rest waits in the cursor"
    );
    let mut returned = numeros(&first.orders);
    let mut calls = 1;
    let mut cursor = Some(cursor);
    loop {
        let page = poll(cursor.as_deref(), None).expect("poll");
        calls += 1;
        assert!(page.orders.len() <= LOOK_AT_PER_CALL, "{:?}", page.orders);
        returned.extend(numeros(&page.orders));
        cursor = page.next_cursor;
        if !page.has_more {
            break;
        }
    }
    assert_eq!(calls, 3, "12 pushed orders, 5 a call");
    let mut once: Vec<u64> = pushed.clone();
    once.push(listed);
    returned.sort_unstable();
    once.sort_unstable();
    assert_eq!(returned, once, "every order returned once");
    let cursor = cursor.expect("a cursor");
    assert!(cursor_json(&cursor).get("look").is_none(), "{cursor}");

    let requests = fake.li.requests();
    assert_eq!(searches(&requests).len(), 3, "a search page every call");
    let mut details = detail_calls(&requests);
    details.sort_unstable();
    assert_eq!(details, once, "one detail read per order");
}

#[test]
fn a_pushed_id_that_is_odd_gone_or_unreadable_never_fails_the_page() {
    let fake = fake();
    let old: DateTime = "2020-01-01T10:00:00".parse().unwrap();
    let gone = fake.store.create_order(Order::new().modified_at(old));
    let good = fake.store.create_order(Order::new().modified_at(old));
    install(&fake, &[]);
    // The first detail read (of `gone`) answers 410.
    fake.store.fail(Route::Detail, Fault::Status(410), 1);
    let page = poll_looking_at(
        None,
        None,
        &[
            "not-a-numero",
            &gone.to_string(),
            "999999",
            &good.to_string(),
        ],
    )
    .expect("the page does not fail");
    assert_eq!(numeros(&page.orders), vec![good]);
    let logs = arauto_plugin_sdk::connector::testing::logs();
    for numero in [gone.to_string(), "999999".to_owned()] {
        assert!(
            logs.iter().any(
                |(_, m, fields)| field(fields, "order") == Some(numero.as_str())
                    && m.contains("skipped")
            ),
            "a log line names {numero}: {logs:?}"
        );
    }
    assert!(
        logs.iter().any(|(_, m, _)| m.contains("\"not-a-numero\"")),
        "{logs:?}"
    );
}

#[test]
fn a_rate_limit_among_pushed_orders_keeps_the_unread_ones_queued() {
    let fake = fake();
    let old: DateTime = "2020-01-01T10:00:00".parse().unwrap();
    let pushed: Vec<u64> = (0..4)
        .map(|_| fake.store.create_order(Order::new().modified_at(old)))
        .collect();
    install(&fake, &[]);
    // The third detail read (of the third pushed order) answers 429.
    let ids: Vec<String> = pushed.iter().map(u64::to_string).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut details = 0;
    install_editing(&fake, &[], move |url, mut answer| {
        if url.contains("/pedido/") && !url.contains("/pedido/search") {
            details += 1;
            if details == 3 {
                answer.status = 429;
                answer.body = br#"{"error_message": "limite", "codigo": 633}"#.to_vec();
            }
        }
        Ok(answer)
    });
    let page = poll_looking_at(None, None, &ids).expect("what was read is kept");
    assert!(page.has_more);
    assert_eq!(numeros(&page.orders), pushed[..2]);
    let cursor = page.next_cursor.expect("a cursor");
    assert_eq!(cursor_json(&cursor)["look"], serde_json::json!(pushed[2..]));

    // After LI's wait, the next call begins with the order it stopped at.
    install(&fake, &[]);
    arauto_plugin_sdk::connector::testing::set_now_unix_ms(HOST_START_MS + 60_000);
    let rest = sweep(Some(&cursor), None);
    assert_eq!(numeros(&rest.orders), pushed[2..]);
}
