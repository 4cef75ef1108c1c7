//! A burst: 2,000 orders change at once. The connector reads each once, and
//! the polls after it that find nothing new make at most two requests each, instead
//! of re-listing the burst until LI's clock moves an overlap past its newest
//! change (docs/platforms/loja-integrada.md §After a burst).

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use arauto_plugin_sdk::connector::testing;
use arauto_sim::li::{Order, SearchOrder};
use common::*;
use jiff::SignedDuration;
use serde_json::Value;

const BURST: usize = 2_000;

/// Move LI's clock and the host's together (they agree in this test).
fn advance(fake: &Fake, by: SignedDuration) {
    fake.li.advance(by);
    let li_now = fake.li.now();
    let utc = jiff::tz::Offset::constant(-3).to_timestamp(li_now).unwrap();
    testing::set_now_unix_ms(u64::try_from(utc.as_millisecond()).unwrap());
}

/// One poll (a whole sweep) with the requests it made.
fn poll_counted(fake: &Fake, cursor: &str, tick: SignedDuration) -> (SweepResult, usize) {
    fake.li.clear_requests();
    let result = sweep_with(Some(cursor), None, |_| advance(fake, tick));
    (result, fake.li.requests().len())
}

#[test]
fn a_burst_is_read_once_and_quiet_polls_after_it_make_at_most_two_requests() {
    burst_then_quiet(SearchOrder::ModifiedAsc, BURST);
}

#[test]
fn under_other_search_orderings_too() {
    for ordering in [SearchOrder::ModifiedDesc, SearchOrder::NumeroAsc] {
        burst_then_quiet(ordering, 300);
    }
}

/// `burst` orders change at once under LI's `ordering`; the connector returns
/// each once, then quiet polls make one request, a later change and a late
/// commit are still seen.
fn burst_then_quiet(ordering: SearchOrder, burst: usize) {
    let fake = fake();
    fake.store.configure(|o| o.order = ordering);
    install(&fake, &[("overlap", "1s")]);
    // Before the burst: a quiet store the connector already follows.
    fake.store.create_order(Order::new());
    advance(&fake, SignedDuration::from_secs(5));
    let mut cursor = sweep(None, None).cursor;
    advance(&fake, SignedDuration::from_secs(1));
    let (quiet, requests) = poll_counted(&fake, &cursor, SignedDuration::ZERO);
    assert!(quiet.orders.is_empty());
    assert_eq!(requests, 1, "before the burst: one search page");
    cursor = quiet.cursor;

    // The burst, within two seconds (the fake stamps changes 1 ms apart).
    for _ in 0..burst {
        fake.store.create_order(Order::new().status("pedido_pago"));
    }
    advance(&fake, SignedDuration::from_millis(300));
    // Reading it takes time: half a second of both clocks per page of 50
    // detail reads — longer, all told, than the overlap (the settling pass
    // then lists the burst once more right away; a burst read faster than
    // the overlap is listed once more by the next poll instead).
    let (read, requests) = poll_counted(&fake, &cursor, SignedDuration::from_millis(500));
    let mut per_order: BTreeMap<u64, usize> = BTreeMap::new();
    for numero in numeros(&read.orders) {
        *per_order.entry(numero).or_default() += 1;
    }
    assert_eq!(
        per_order.len(),
        burst,
        "{ordering:?}: every order of the burst returned"
    );
    assert!(
        per_order.values().all(|n| *n == 1),
        "{ordering:?}: each once"
    );
    let pages = burst.div_ceil(50);
    assert!(
        requests <= burst + 2 * pages + 2,
        "{ordering:?}: one detail read per order, the listing and at most one settling pass: \
         {requests}"
    );
    cursor = read.cursor;

    // After it: one request per poll that finds nothing new.
    for poll in 0..10 {
        advance(&fake, SignedDuration::from_secs(1));
        let (quiet, requests) = poll_counted(&fake, &cursor, SignedDuration::ZERO);
        assert!(quiet.orders.is_empty(), "{ordering:?}: poll {poll}");
        assert!(
            requests <= 2,
            "{ordering:?}: poll {poll} after the burst: {requests} requests (one search page \
             since LI's clock at the last poll, one to count the burst's window)"
        );
        cursor = quiet.cursor;
    }

    // A change to an order of the burst is still seen, with its detail read.
    let changed = 1002;
    fake.store.set_status(changed, "pedido_enviado").unwrap();
    advance(&fake, SignedDuration::from_millis(500));
    let (result, requests) = poll_counted(&fake, &cursor, SignedDuration::ZERO);
    assert_eq!(numeros(&result.orders), vec![changed], "{ordering:?}");
    assert_eq!(
        detail_calls(&fake.li.requests()),
        vec![changed],
        "{ordering:?}: its detail, nothing else"
    );
    assert!(requests <= 3, "{ordering:?}: {requests} requests");
    cursor = result.cursor;

    // So is a late commit inside the overlap: a change stamped before the
    // last poll began, committed after it listed.
    let anchor = cursor_json(&cursor)["anchor"].as_str().unwrap().to_owned();
    let stamped = anchor
        .parse::<jiff::civil::DateTime>()
        .unwrap()
        .saturating_sub(SignedDuration::from_millis(500));
    let late = fake.store.create_order(Order::new().modified_at(stamped));
    advance(&fake, SignedDuration::from_secs(1));
    let (result, _) = poll_counted(&fake, &cursor, SignedDuration::ZERO);
    assert_eq!(numeros(&result.orders), vec![late], "{ordering:?}");
}

/// The count that checks the burst's window can be fooled when two
/// differences cancel out: an order read by `numero` (a push) whose detail
/// is newer than the row LI still lists it with, older than the window,
/// counts for the cursor but not for LI; an unknown order LI indexed late,
/// inside the window, counts for LI but not for the cursor. The checks read
/// the window one page each, in a round, so the late order is still
/// returned within one round of quiet polls, each making at most two
/// requests.
#[test]
fn a_count_two_differences_cancel_out_cannot_hide_a_late_order_longer_than_a_round() {
    const ORDERS: usize = 300;
    let fake = fake();
    install(&fake, &[("overlap", "1s")]);
    let pushed = fake.store.create_order(Order::new());
    advance(&fake, SignedDuration::from_secs(5));
    let mut cursor = sweep(None, None).cursor;
    for _ in 0..ORDERS {
        fake.store.create_order(Order::new().status("pedido_pago"));
    }
    advance(&fake, SignedDuration::from_millis(300));
    let (read, _) = poll_counted(&fake, &cursor, SignedDuration::from_millis(500));
    assert_eq!(read.orders.len(), ORDERS);
    cursor = read.cursor;
    for _ in 0..3 {
        advance(&fake, SignedDuration::from_secs(1));
        let (quiet, requests) = poll_counted(&fake, &cursor, SignedDuration::ZERO);
        assert!(quiet.orders.is_empty() && requests <= 2, "{requests}");
        cursor = quiet.cursor;
    }

    // The push: its detail says it changed inside the burst's window, its
    // search row (LI's index) still shows the old date.
    let hw = cursor_json(&cursor)["hw"].as_str().unwrap().to_owned();
    let inside = hw.clone();
    install_editing(
        &fake,
        &[("overlap", "1s")],
        edit_detail(pushed, move |doc| {
            doc["data_modificacao"] = Value::String(inside.clone());
        }),
    );
    advance(&fake, SignedDuration::from_secs(1));
    let page = poll_looking_at(Some(&cursor), None, &[&pushed.to_string()]).unwrap();
    assert_eq!(numeros(&page.orders), vec![pushed]);
    cursor = page.next_cursor.unwrap();
    if page.has_more {
        cursor = sweep(Some(&cursor), None).cursor;
    }
    // The late one: stamped just before the burst's newest change, so it
    // sits on the window's last page, never on the first.
    let late = fake.store.create_order(
        Order::new().modified_at(
            hw.parse::<jiff::civil::DateTime>()
                .unwrap()
                .saturating_sub(SignedDuration::from_millis(1)),
        ),
    );

    let round = ORDERS.div_ceil(50) + 1;
    let mut found_after = None;
    for poll in 1..=round + 1 {
        advance(&fake, SignedDuration::from_secs(1));
        let (result, requests) = poll_counted(&fake, &cursor, SignedDuration::ZERO);
        cursor = result.cursor;
        if numeros(&result.orders).contains(&late) {
            found_after = Some(poll);
            break;
        }
        assert!(result.orders.is_empty(), "poll {poll}");
        assert!(requests <= 2, "poll {poll}: {requests} requests");
    }
    let found_after = found_after.unwrap_or_else(|| {
        panic!("the late order was not returned within {round} polls (one round of checks)")
    });
    assert!(found_after <= round, "{found_after}");
}
