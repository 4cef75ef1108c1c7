//! Paging (clamped limits, meta.next), cursor semantics (overlap, LI's own
//! clock, sweep duration), repeated polls and first-sync seeding.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use arauto_plugin_sdk::connector::log::Level;
use arauto_plugin_sdk::connector::testing;
use arauto_sim::li::{Order, SearchOrder};
use common::*;
use jiff::SignedDuration;
use jiff::civil::date;

/// 2024-05-10T12:00:00Z, the harness's clock (09:00 in São Paulo).
const HOST_NOW_MS: u64 = 1_715_342_400_000;

#[test]
fn pages_follow_meta_next_and_read_the_clamped_limit_back() {
    let fake = fake();
    fake.store.configure(|o| o.max_limit = 20);
    for _ in 0..45 {
        fake.store.create_order(Order::new());
    }
    install(&fake, &[]);
    let result = sweep(None, None);
    assert_eq!(result.calls, 3, "one call per page");
    let returned = numeros(&result.orders);
    assert_eq!(returned.len(), 45);
    assert_eq!(
        returned.iter().collect::<BTreeSet<_>>().len(),
        45,
        "each order once"
    );

    let searches = searches(&fake.li.requests());
    let offsets: Vec<_> = searches
        .iter()
        .map(|r| r.query_param("offset").unwrap().to_owned())
        .collect();
    assert_eq!(
        offsets,
        ["0", "20", "40"],
        "offsets from meta.next, not from the requested 50"
    );
    for r in &searches {
        assert_eq!(
            r.path, "/v1/pedido/search/",
            "meta.next's /api/v1 path is not followed verbatim"
        );
        assert_eq!(r.query_param("limit"), Some("50"));
        assert_eq!(
            r.query_param("since_atualizado"),
            Some("2024-04-10T09:00:00"),
            "30 days before the host clock"
        );
    }
    assert_eq!(detail_calls(&fake.li.requests()).len(), 45);
}

#[test]
fn page_size_setting_is_sent_and_each_page_is_committable() {
    let fake = fake();
    for _ in 0..7 {
        fake.store.create_order(Order::new());
    }
    install(&fake, &[("page_size", "3")]);
    let first = poll(None, None).unwrap();
    assert!(first.has_more);
    assert_eq!(numeros(&first.orders), vec![1001, 1002, 1003]);
    let cursor = first.next_cursor.unwrap();
    assert_eq!(cursor_json(&cursor)["sweep"]["offset"], 3);

    // The host may crash after committing page 1: the same cursor gives the same next page.
    let second = poll(Some(&cursor), None).unwrap();
    let again = poll(Some(&cursor), None).unwrap();
    assert_eq!(numeros(&second.orders), vec![1004, 1005, 1006]);
    assert_eq!(
        numeros(&again.orders),
        numeros(&second.orders),
        "the connector is stateless"
    );
    let rest = sweep(second.next_cursor.as_deref(), None);
    assert_eq!(numeros(&rest.orders), vec![1007]);
    assert_eq!(
        cursor_json(&rest.cursor).get("sweep"),
        None,
        "sweep complete"
    );
}

#[test]
fn the_cursor_is_lis_newest_modification_never_the_local_clock() {
    let fake = fake();
    let newest = date(2024, 5, 10).at(8, 30, 15, 123_456_000);
    fake.store
        .create_order(Order::new().modified_at(date(2024, 5, 9).at(18, 0, 0, 0)));
    fake.store.create_order(Order::new().modified_at(newest));
    fake.store
        .create_order(Order::new().modified_at(date(2024, 5, 10).at(7, 0, 0, 0)));
    install(&fake, &[]);
    // The daemon's clock runs two days ahead of LI's.
    testing::set_now_unix_ms(HOST_NOW_MS + 2 * 86_400_000);
    let first = sweep(None, None);
    assert_eq!(first.orders.len(), 3);
    let cursor = cursor_json(&first.cursor);
    assert_eq!(cursor["hw"], "2024-05-10T08:30:15.123456");
    assert_eq!(
        cursor["anchor"], "2024-05-10T09:00:00",
        "LI's clock (its Date header) when the sweep began, not the host's two days ahead"
    );

    fake.li.clear_requests();
    testing::set_now_unix_ms(HOST_NOW_MS + 400 * 86_400_000);
    let second = sweep(Some(&first.cursor), None);
    assert!(second.orders.is_empty());
    let since = searches(&fake.li.requests())[0]
        .query_param("since_atualizado")
        .unwrap()
        .to_owned();
    assert_eq!(
        since, "2024-05-10T08:20:15",
        "hw − 10 min overlap (earlier than LI's clock − overlap, so it is the window), \
         whatever the local clock says"
    );
    assert_eq!(
        cursor_json(&second.cursor)["hw"],
        "2024-05-10T08:30:15.123456",
        "nothing new: no advance"
    );
}

#[test]
fn without_a_date_header_the_window_falls_back_to_the_mark_less_overlap_and_lag() {
    let fake = fake();
    fake.store
        .create_order(Order::new().modified_at(date(2024, 5, 10).at(8, 30, 15, 0)));
    install_editing(&fake, &[], |_, mut answer| {
        answer
            .headers
            .retain(|(name, _)| !name.eq_ignore_ascii_case("date"));
        Ok(answer)
    });
    let first = sweep_with(None, None, |_| {});
    let cursor = cursor_json(&first.cursor);
    assert!(cursor.get("anchor").is_none(), "{cursor}");
    fake.li.clear_requests();
    sweep(Some(&first.cursor), None);
    assert_eq!(
        searches(&fake.li.requests())[0].query_param("since_atualizado"),
        Some("2024-05-10T08:20:15"),
        "hw − 10 min overlap"
    );
}

#[test]
fn repeated_overlapping_polls_return_nothing_twice_and_make_no_duplicate_detail_calls() {
    let fake = fake();
    let a = fake.store.create_order(Order::new());
    let b = fake.store.create_order(Order::new());
    fake.store.create_order(Order::new());
    install(&fake, &[]);
    let first = sweep(None, None);
    assert_eq!(first.orders.len(), 3);
    assert_eq!(detail_calls(&fake.li.requests()).len(), 3);

    fake.li.clear_requests();
    let second = sweep(Some(&first.cursor), None);
    assert!(
        second.orders.is_empty(),
        "the overlap re-lists the same rows; they are skipped"
    );
    let requests = fake.li.requests();
    assert_eq!(
        searches(&requests)[0].query_param("since_atualizado"),
        Some("2024-05-10T08:50:00")
    );
    assert_eq!(requests.len(), 1, "one search page, no detail calls");

    fake.store.set_status(a, "pedido_pago").unwrap();
    fake.li.clear_requests();
    let third = sweep(Some(&second.cursor), None);
    assert_eq!(numeros(&third.orders), vec![a]);
    assert_eq!(third.orders[0].status.code, "pedido_pago");
    assert_eq!(detail_calls(&fake.li.requests()), vec![a]);

    // Same status, new modification time (e.g. an address edit): a new version.
    fake.store.touch(b).unwrap();
    let fourth = sweep(Some(&third.cursor), None);
    assert_eq!(numeros(&fourth.orders), vec![b]);

    fake.li.clear_requests();
    let fifth = sweep(Some(&fourth.cursor), None);
    assert!(fifth.orders.is_empty());
    assert!(detail_calls(&fake.li.requests()).is_empty());
}

#[test]
fn late_commits_inside_the_overlap_window_are_picked_up() {
    let fake = fake();
    fake.store
        .create_order(Order::new().modified_at(date(2024, 5, 10).at(9, 0, 0, 0)));
    install(&fake, &[]);
    let first = sweep(None, None);
    // A transaction that started before the sweep commits afterwards with an older timestamp.
    let late = fake
        .store
        .create_order(Order::new().modified_at(date(2024, 5, 10).at(8, 55, 0, 0)));
    let second = sweep(Some(&first.cursor), None);
    assert_eq!(numeros(&second.orders), vec![late]);
}

#[test]
fn a_long_sweep_lists_its_window_once_more_and_the_next_sweep_starts_after_it() {
    let fake = fake();
    for _ in 0..120 {
        fake.store.create_order(Order::new());
    }
    install(&fake, &[]);
    let mut host_ms = HOST_NOW_MS;
    let first = sweep_with(None, None, |_| {
        // Each page takes 20 minutes (rate limits, back-offs, a slow store),
        // on both clocks.
        host_ms += 20 * 60_000;
        testing::set_now_unix_ms(host_ms);
        fake.li.advance(SignedDuration::from_mins(20));
    });
    let requests = fake.li.requests();
    let passes: Vec<_> = searches(&requests)
        .iter()
        .map(|r| {
            format!(
                "{}+{}",
                r.query_param("since_atualizado").unwrap(),
                r.query_param("offset").unwrap()
            )
        })
        .collect();
    assert_eq!(
        passes,
        [
            "2024-04-10T09:00:00+0",
            "2024-04-10T09:00:00+50",
            "2024-04-10T09:00:00+100",
            // LI's clock when the first pass began (09:00) − 10 min overlap:
            // the window the next poll would list, listed now instead.
            "2024-05-10T08:50:00+0",
            "2024-05-10T08:50:00+50",
            "2024-05-10T08:50:00+100",
        ]
    );
    assert_eq!(detail_calls(&requests).len(), 120, "each order read once");
    let cursor = cursor_json(&first.cursor);
    assert_eq!(
        cursor["anchor"], "2024-05-10T10:00:00",
        "the settling pass's start"
    );

    fake.li.clear_requests();
    let next = sweep(Some(&first.cursor), None);
    assert!(next.orders.is_empty());
    let requests = fake.li.requests();
    let asked: Vec<_> = searches(&requests)
        .iter()
        .map(|r| {
            format!(
                "{}+{}",
                r.query_param("since_atualizado").unwrap(),
                r.query_param("offset").unwrap()
            )
        })
        .collect();
    assert_eq!(
        asked,
        [
            // The settling pass's start − overlap: what changed since.
            "2024-05-10T09:50:00+0",
            // The mark's window (hw − overlap) still holds the 120 orders:
            // its first page's total_count says nothing new is in it.
            "2024-05-10T08:50:00+0",
        ]
    );
    assert_eq!(requests.len(), 2, "two search pages, nothing else");

    // A late-indexed order inside the mark's window changes the count: the
    // window is read in full and the order returned.
    let late = fake
        .store
        .create_order(Order::new().modified_at(date(2024, 5, 10).at(8, 59, 0, 0)));
    fake.li.clear_requests();
    let after = sweep(Some(&next.cursor), None);
    assert_eq!(numeros(&after.orders), vec![late]);
}

#[test]
fn an_empty_store_keeps_its_first_window_until_an_order_appears() {
    let fake = fake();
    install(&fake, &[("initial_lookback", "2d")]);
    let first = sweep(None, None);
    assert!(first.orders.is_empty());
    assert_eq!(cursor_json(&first.cursor)["floor"], "2024-05-08T09:00:00");

    testing::set_now_unix_ms(HOST_NOW_MS + 86_400_000);
    fake.li.clear_requests();
    let second = sweep(Some(&first.cursor), None);
    assert_eq!(
        searches(&fake.li.requests())[0].query_param("since_atualizado"),
        Some("2024-05-08T09:00:00"),
        "the window does not slide with the local clock"
    );
    fake.li.advance(SignedDuration::from_hours(20));
    let numero = fake.store.create_order(Order::new());
    let third = sweep(Some(&second.cursor), None);
    assert_eq!(numeros(&third.orders), vec![numero]);
    let cursor = cursor_json(&third.cursor);
    assert_eq!(cursor["hw"], "2024-05-11T05:00:00.000000");
    assert_eq!(cursor.get("floor"), None);
}

#[test]
fn detail_cutoff_seeds_500_historical_orders_from_summaries_without_detail_calls() {
    let fake = fake();
    let start = date(2024, 5, 5).at(9, 0, 0, 0);
    for i in 0..500i64 {
        // Spread over the five days before the store was added.
        let at = start.saturating_add(SignedDuration::from_secs(i * 860));
        fake.store
            .create_order(Order::new().status("pedido_entregue").modified_at(at));
    }
    install(&fake, &[]);
    let cutoff = "2024-05-10T12:00:00Z";
    let seed = sweep(None, Some(cutoff));
    assert_eq!(seed.calls, 10);
    assert_eq!(seed.orders.len(), 500);
    assert_eq!(
        numeros(&seed.orders).iter().collect::<BTreeSet<_>>().len(),
        500
    );
    assert!(seed.orders.iter().all(|o| !o.detailed));
    assert!(
        seed.orders
            .iter()
            .all(|o| o.customer.phones.is_empty() && o.items.is_empty())
    );
    assert_eq!(seed.orders[0].status.code, "pedido_entregue");
    assert_eq!(seed.orders[0].total.cents, 10880);
    let requests = fake.li.requests();
    assert!(
        detail_calls(&requests).is_empty(),
        "no detail call for historical orders"
    );
    assert_eq!(requests.len(), 10, "only the ten search pages");

    // After the cutoff: a new order and a change of an old one get details.
    fake.li.set_now(date(2024, 5, 10).at(9, 30, 0, 0));
    let new = fake.store.create_order(Order::new());
    fake.store.set_status(1500, "pagamento_devolvido").unwrap();
    fake.li.clear_requests();
    let next = sweep(Some(&seed.cursor), Some(cutoff));
    assert_eq!(numeros(&next.orders), vec![new, 1500]);
    assert!(next.orders.iter().all(|o| o.detailed));
    assert_eq!(detail_calls(&fake.li.requests()), vec![new, 1500]);
}

#[test]
fn an_unusable_cursor_restarts_from_the_initial_lookback_with_a_warning() {
    let fake = fake();
    fake.store.create_order(Order::new());
    install(&fake, &[]);
    let result = sweep(Some("2024-05-10T09:00:00"), None);
    assert_eq!(result.orders.len(), 1);
    let warned = testing::logs().iter().any(|(level, message, _)| {
        *level == Level::Warn && message.contains("stored cursor is unusable")
    });
    assert!(warned, "{:?}", testing::logs());
    let future = sweep(Some(r#"{"v":99}"#), None);
    assert_eq!(
        future.orders.len(),
        1,
        "a cursor from another version also restarts"
    );
}

#[test]
fn search_orderings_other_than_the_default_sweep_completely() {
    for order in [SearchOrder::ModifiedDesc, SearchOrder::NumeroAsc] {
        let fake = fake();
        fake.store.configure(|o| o.order = order);
        for _ in 0..60 {
            fake.store.create_order(Order::new());
        }
        install(&fake, &[]);
        let result = sweep(None, None);
        assert_eq!(
            numeros(&result.orders)
                .iter()
                .collect::<BTreeSet<_>>()
                .len(),
            60,
            "{order:?}"
        );
        assert_eq!(
            cursor_json(&result.cursor)["hw"],
            "2024-05-10T09:00:00.059000",
            "{order:?}"
        );
    }
}

#[test]
fn meta_next_under_v1_and_the_api_v1_prefix_page_the_same_way() {
    let fake = fake();
    fake.store.configure(|o| {
        o.uri_prefix = "/v1".into();
        o.max_limit = 2;
    });
    for _ in 0..5 {
        fake.store.create_order(Order::new());
    }
    install(&fake, &[("api_prefix", "/api/v1")]);
    let result = sweep(None, None);
    assert_eq!(result.calls, 3);
    assert_eq!(result.orders.len(), 5);
    assert!(
        searches(&fake.li.requests())
            .iter()
            .all(|r| r.path == "/api/v1/pedido/search/")
    );
}
