//! Orders changing while a sweep pages through them: nothing is missed,
//! whatever LI's result ordering, and no change is detailed twice.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use arauto_plugin_sdk::connector::OrderSnapshot;
use arauto_sim::li::{Numero, Order, Route, SearchOrder};
use common::*;
use jiff::SignedDuration;

/// `(numero, status, updated_at)` of what the connector returned.
fn versions(orders: &[OrderSnapshot]) -> BTreeSet<(Numero, String, String)> {
    orders
        .iter()
        .map(|o| {
            (
                o.id.parse().unwrap(),
                o.status.code.clone(),
                o.updated_at.clone(),
            )
        })
        .collect()
}

/// Every order's current version as the fake holds it, in the snapshot's form.
fn current_versions(fake: &Fake) -> BTreeSet<(Numero, String, String)> {
    fake.store
        .numeros()
        .into_iter()
        .map(|n| {
            let order = fake.store.order(n).unwrap();
            let at = order.modified_at.unwrap();
            let micros = at.subsec_nanosecond() / 1000;
            let fraction = if micros == 0 {
                String::new()
            } else {
                format!(".{}", format!("{micros:06}").trim_end_matches('0'))
            };
            (
                n,
                order.status.clone(),
                format!("{}{fraction}-03:00", at.strftime("%Y-%m-%dT%H:%M:%S")),
            )
        })
        .collect()
}

fn store_of_120(order: SearchOrder) -> Fake {
    let fake = fake();
    fake.store.configure(|o| o.order = order);
    // Five minutes apart, so most rows lie far outside the 10-minute overlap:
    // a row skipped by paging would not be re-listed by the next sweep.
    let first = jiff::civil::date(2024, 5, 9).at(22, 0, 0, 0);
    for i in 0..120 {
        fake.store.create_order(
            Order::new().modified_at(first.saturating_add(SignedDuration::from_mins(5 * i))),
        );
    }
    // Changes made by the tests land at the fake's clock, 09:01 on 2024-05-10.
    fake.li.advance(SignedDuration::from_secs(60));
    fake
}

#[test]
fn an_order_read_on_page_one_and_modified_before_page_two_does_not_hide_its_neighbour() {
    // Oldest-modified first (the fake's default): the modified order jumps to
    // the end and every unread row moves back one place, so row 51 would sit
    // at offset 49 when page two is read at offset 50.
    let fake = store_of_120(SearchOrder::ModifiedAsc);
    install(&fake, &[]);
    let first_page_numero = 1011;
    let result = sweep_with(None, None, |call| {
        if call == 1 {
            fake.store
                .set_status(first_page_numero, "pedido_pago")
                .unwrap();
        }
    });
    let returned = numeros(&result.orders);
    let distinct: BTreeSet<_> = returned.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        120,
        "every order returned in the same sweep"
    );
    assert!(
        distinct.contains(&1051),
        "the row that slid back across the page boundary"
    );
    assert_eq!(
        versions(&result.orders).len(),
        121,
        "120 orders + the new version of 1011"
    );
    assert!(versions(&result.orders).is_superset(&current_versions(&fake)));

    let requests = fake.li.requests();
    let offsets: Vec<_> = searches(&requests)
        .iter()
        .map(|r| r.query_param("offset").unwrap().to_owned())
        .collect();
    assert_eq!(
        offsets,
        ["0", "50", "100", "0", "50", "100"],
        "a second pass over the window"
    );
    assert_eq!(
        detail_calls(&requests).len(),
        121,
        "one detail call per version, none repeated"
    );
    assert!(
        cursor_json(&result.cursor).get("floor").is_none(),
        "resolved within the sweep"
    );
}

/// Change the store between pages in every way that moves rows: a read row
/// modified, an unread row modified, a new order, an unread order deleted.
fn churn(fake: &Fake, call: usize, returned_so_far: &BTreeSet<Numero>) {
    let store = &fake.store;
    match call {
        1 => {
            let read = *returned_so_far.iter().nth(10).unwrap();
            store.set_status(read, "pedido_pago").unwrap();
            let unread = store
                .numeros()
                .into_iter()
                .find(|n| !returned_so_far.contains(n))
                .unwrap();
            store.set_status(unread, "pedido_em_separacao").unwrap();
            store.create_order(Order::new());
        }
        2 => {
            // A read order disappears: unread rows move back one place.
            let read = *returned_so_far.iter().nth(20).unwrap();
            store.delete(read).unwrap();
            let read = *returned_so_far.iter().next().unwrap();
            store.set_status(read, "pedido_enviado").unwrap();
        }
        _ => {}
    }
}

#[test]
fn nothing_is_missed_under_any_ordering_when_orders_change_between_pages() {
    for ordering in [
        SearchOrder::ModifiedAsc,
        SearchOrder::ModifiedDesc,
        SearchOrder::NumeroAsc,
    ] {
        let fake = store_of_120(ordering);
        install(&fake, &[]);
        let mut seen: Vec<OrderSnapshot> = Vec::new();
        let mut cursor: Option<String> = None;
        let mut call = 0;
        // Page by page, changing the store after pages 1 and 2 of the first sweep.
        loop {
            let page = poll(cursor.as_deref(), None).unwrap();
            seen.extend(page.orders);
            cursor = page.next_cursor;
            call += 1;
            if !page.has_more {
                break;
            }
            let returned: BTreeSet<Numero> = numeros(&seen).into_iter().collect();
            churn(&fake, call, &returned);
        }
        // The next regular sweep (5 minutes later) completes the picture.
        let next = sweep(cursor.as_deref(), None);
        seen.extend(next.orders);

        let got = versions(&seen);
        let missing: Vec<_> = current_versions(&fake).difference(&got).cloned().collect();
        assert!(
            missing.is_empty(),
            "{ordering:?}: never returned: {missing:?}"
        );
        assert_eq!(
            got.len(),
            seen.len(),
            "{ordering:?}: a version returned twice"
        );

        let mut per_order: BTreeMap<Numero, usize> = BTreeMap::new();
        for n in detail_calls(&fake.li.requests()) {
            *per_order.entry(n).or_default() += 1;
        }
        let versions_per_order = seen
            .iter()
            .fold(BTreeMap::<Numero, usize>::new(), |mut m, o| {
                *m.entry(o.id.parse().unwrap()).or_default() += 1;
                m
            });
        assert_eq!(
            per_order, versions_per_order,
            "{ordering:?}: one detail call per returned version"
        );

        // And a quiet third sweep returns nothing and reads no detail.
        fake.li.clear_requests();
        let quiet = sweep(Some(&next.cursor), None);
        assert!(
            quiet.orders.is_empty(),
            "{ordering:?}: {:?}",
            numeros(&quiet.orders)
        );
        assert!(detail_calls(&fake.li.requests()).is_empty(), "{ordering:?}");
    }
}

#[test]
fn an_order_changed_between_its_listing_and_its_detail_is_returned_in_its_newest_form() {
    let fake = fake();
    let numero = fake.store.create_order(Order::new());
    fake.store.on_request(Route::Detail, 1, move |store| {
        store.set_status(numero, "pedido_pago").unwrap();
    });
    install(&fake, &[]);
    let result = sweep(None, None);
    assert_eq!(numeros(&result.orders), vec![numero]);
    assert_eq!(
        result.orders[0].status.code, "pedido_pago",
        "the detail's version wins"
    );
    assert!(versions(&result.orders).is_superset(&current_versions(&fake)));
    assert_eq!(detail_calls(&fake.li.requests()), vec![numero]);

    fake.li.clear_requests();
    let next = sweep(Some(&result.cursor), None);
    assert!(
        next.orders.is_empty(),
        "the newer key was remembered: no second detail call"
    );
    assert!(detail_calls(&fake.li.requests()).is_empty());
}

#[test]
fn an_order_modified_between_two_detail_calls_of_one_page_does_not_hide_a_row() {
    let fake = store_of_120(SearchOrder::ModifiedAsc);
    // While the connector reads the details of page one, an order it already
    // detailed on that page changes and jumps to the end of the results.
    fake.store.on_request(Route::Detail, 30, |store| {
        store.set_status(1005, "pedido_cancelado").unwrap();
    });
    install(&fake, &[]);
    let result = sweep(None, None);
    let distinct: BTreeSet<_> = numeros(&result.orders).into_iter().collect();
    assert_eq!(distinct.len(), 120);
    assert!(versions(&result.orders).is_superset(&current_versions(&fake)));
    assert_eq!(detail_calls(&fake.li.requests()).len(), 121);
}

#[test]
fn rows_that_keep_shifting_end_the_sweep_but_the_next_one_relists_the_window() {
    let fake = store_of_120(SearchOrder::ModifiedAsc);
    install(&fake, &[("page_size", "50")]);
    let mut next_victim = 1001;
    // Before every page, an order already read is modified (a very busy store).
    let result = sweep_with(None, None, |_| {
        fake.store.touch(next_victim).unwrap();
        next_victim += 1;
    });
    let cursor = cursor_json(&result.cursor);
    assert_eq!(
        cursor["floor"], "2024-04-10T09:00:00",
        "the window is kept for the next sweep"
    );
    let next = sweep(Some(&result.cursor), None);
    let all: Vec<_> = result.orders.iter().chain(&next.orders).cloned().collect();
    assert!(versions(&all).is_superset(&current_versions(&fake)));
    assert!(
        cursor_json(&next.cursor).get("floor").is_none(),
        "a calm sweep releases the floor"
    );
}
