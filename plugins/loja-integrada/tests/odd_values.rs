//! Odd values LI may send: a modification date in the future, amounts and
//! quantities that cannot be read, an order without a status.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use arauto_plugin_sdk::connector::log::Level;
use arauto_plugin_sdk::connector::{MONEY_UNKNOWN_CENTS, testing};
use arauto_sim::li::Order;
use common::*;
use jiff::SignedDuration;
use jiff::civil::date;
use serde_json::{Value, json};

fn warnings_about(order: u64) -> Vec<String> {
    testing::logs()
        .into_iter()
        .filter(|(level, _, fields)| {
            *level == Level::Warn && field(fields, "order") == Some(order.to_string().as_str())
        })
        .map(|(_, message, _)| message)
        .collect()
}

#[test]
fn a_modification_date_in_the_future_does_not_silence_the_store() {
    let fake = fake();
    let normal = fake.store.create_order(Order::new());
    let typo = fake
        .store
        .create_order(Order::new().modified_at(date(2099, 1, 1).at(0, 0, 0, 0)));
    install(&fake, &[]);
    let first = sweep(None, None);
    let mut got = numeros(&first.orders);
    got.sort_unstable();
    assert_eq!(got, vec![normal, typo], "the odd order is still processed");

    let future = notices("future-timestamp");
    assert_eq!(future.len(), 1, "{future:?}");
    let (level, message, fields) = &future[0];
    assert_eq!(*level, Level::Warn);
    assert_eq!(field(fields, "order"), Some(typo.to_string().as_str()));
    assert!(
        field(fields, "value")
            .unwrap()
            .starts_with("2099-01-01T00:00:00"),
        "the raw value: {fields:?}"
    );
    assert!(message.contains("future"), "{message}");
    // Host clock: 09:00 in São Paulo; tolerance 10 minutes.
    assert_eq!(
        cursor_json(&first.cursor)["hw"],
        "2024-05-10T09:10:00.000000",
        "the mark stops at now + tolerance"
    );

    // Five minutes later a new order is placed: the next poll sees it.
    fake.li.advance(SignedDuration::from_mins(5));
    testing::set_now_unix_ms(HOST_START_MS + 300_000);
    let fresh = fake.store.create_order(Order::new());
    let second = sweep(Some(&first.cursor), None);
    assert_eq!(numeros(&second.orders), vec![fresh]);
    assert_eq!(
        notices("future-timestamp").len(),
        1,
        "the unchanged 2099 row is skipped by its change key, not reported again"
    );
}

#[test]
fn a_cursor_poisoned_before_the_fix_recovers_on_its_next_use() {
    let fake = fake();
    let fresh = fake.store.create_order(Order::new());
    install(&fake, &[]);
    let poisoned = r#"{"v":1,"hw":"2099-01-01T00:00:00.000000","lag_ms":0,"sweep_no":9,"seen":[]}"#;
    let result = sweep(Some(poisoned), None);
    assert_eq!(numeros(&result.orders), vec![fresh]);
    let since = searches(&fake.li.requests())[0]
        .query_param("since_atualizado")
        .unwrap()
        .to_owned();
    assert_eq!(
        since, "2024-05-10T09:00:00",
        "now + 10 min tolerance − 10 min overlap"
    );
    assert!(
        testing::logs()
            .iter()
            .any(|(l, m, _)| *l == Level::Warn && m.contains("lay in the future")),
        "{:?}",
        testing::logs()
    );

    // Also mid-sweep: a stored sweep over a future window is restarted near now.
    fake.li.clear_requests();
    let mid = r#"{"v":1,"hw":"2099-01-01T00:00:00.000000","sweep_no":9,
        "sweep":{"since":"2098-12-31T23:50:00","offset":50,"started_ms":0}}"#;
    sweep(Some(mid), None);
    let first_search = &searches(&fake.li.requests())[0];
    assert_eq!(
        first_search.query_param("since_atualizado"),
        Some("2024-05-10T09:00:00")
    );
    assert_eq!(first_search.query_param("offset"), Some("0"));
}

#[test]
fn the_tolerance_is_a_setting() {
    let fake = fake();
    fake.store
        .create_order(Order::new().modified_at(date(2024, 5, 10).at(9, 30, 0, 0)));
    install(&fake, &[("future_tolerance", "1h")]);
    let result = sweep(None, None);
    assert!(
        notices("future-timestamp").is_empty(),
        "30 min ahead is within 1 h"
    );
    assert_eq!(
        cursor_json(&result.cursor)["hw"],
        "2024-05-10T09:30:00.000000"
    );
}

fn detail_with(numero: u64, change: impl FnMut(&mut Value) + 'static) -> Fake {
    let fake = fake();
    let created = fake.store.create_order(Order::new());
    assert_eq!(created, numero);
    install_editing(&fake, &[], edit_detail(numero, change));
    fake
}

#[test]
fn unreadable_amounts_are_unknown_never_zero_and_each_is_named() {
    for (value, shown) in [
        (json!("abc"), "\"abc\""),
        (Value::Null, "null"),
        (
            json!("99999999999999999999999.99"),
            "99999999999999999999999.99",
        ),
    ] {
        let _fake = detail_with(1001, {
            let value = value.clone();
            move |doc| doc["valor_total"] = value.clone()
        });
        let orders = sweep(None, None).orders;
        assert_eq!(orders.len(), 1);
        assert_eq!(orders[0].total.cents, MONEY_UNKNOWN_CENTS, "{value}");
        assert!(orders[0].total.is_unknown());
        assert_eq!(orders[0].subtotal.cents, 8990, "the readable ones are kept");
        let warnings = warnings_about(1001);
        assert!(
            warnings.iter().any(|w| w.contains("order 1001")
                && w.contains("valor_total")
                && w.contains(shown)),
            "{value}: {warnings:?}"
        );
    }
}

#[test]
fn an_unreadable_quantity_is_unknown_and_so_is_the_line_total() {
    let _fake = detail_with(1001, |doc| doc["itens"][0]["quantidade"] = json!("dois"));
    let orders = sweep(None, None).orders;
    let item = &orders[0].items[0];
    assert_eq!(item.quantity, "", "not \"1\"");
    assert_eq!(item.unit_price.cents, 8990);
    assert_eq!(item.total.cents, MONEY_UNKNOWN_CENTS);
    let warnings = warnings_about(1001);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("itens[0].quantidade") && w.contains("dois")),
        "{warnings:?}"
    );
}

#[test]
fn an_order_without_a_status_says_so_once() {
    for situacao in [Some(Value::Null), None] {
        let fake = fake();
        fake.store.create_order(Order::new());
        let change = {
            let situacao = situacao.clone();
            move |doc: &mut Value| match &situacao {
                Some(v) => doc["situacao"] = v.clone(),
                None => {
                    doc.as_object_mut().unwrap().remove("situacao");
                }
            }
        };
        // Both the search row and the detail lack it.
        let rows = change.clone();
        let mut detail = edit_detail(1001, change);
        install_editing(&fake, &[], move |url, mut answer| {
            if url.contains("/pedido/search") {
                let mut page: Value = serde_json::from_slice(&answer.body).unwrap();
                for row in page["objects"].as_array_mut().unwrap() {
                    rows(row);
                }
                answer.body = serde_json::to_vec(&page).unwrap();
            }
            detail(url, answer)
        });
        let orders = sweep(None, None).orders;
        assert_eq!(orders.len(), 1);
        assert_eq!(
            (
                orders[0].status.code.as_str(),
                orders[0].status.name.as_str()
            ),
            ("", ""),
            "{situacao:?}"
        );
        let said: Vec<String> = warnings_about(1001)
            .into_iter()
            .filter(|m| m.contains("has no status"))
            .collect();
        assert_eq!(said.len(), 1, "{situacao:?}: {said:?}");
        assert!(
            said[0].starts_with("order 1001 has no status"),
            "{}",
            said[0]
        );
    }
}
