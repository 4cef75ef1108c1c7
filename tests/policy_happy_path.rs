//! Change detection, recognition and the happy-path rules, driven the way the
//! daemon drives them: poll after poll, with the pending jobs of each order.

// All test code: with this, clippy's allow-unwrap/expect-in-tests covers the
// helper functions too, not only the #[test] ones (see clippy.toml).
#![cfg(test)]

use crate::support;

use std::collections::BTreeMap;
use std::error::Error;

use arauto::decide::detect::{OrderEvent, detect};
use arauto::decide::{
    CancelReason, ChannelTarget, DecideInput, DropReason, InvalidReason, OrderRecord, QuietHours,
    Recognition, RecognitionError, Relevance, TrackingRef, decide, fingerprint, still_relevant,
};
use arauto::model::NotificationKind as K;
use arauto::model::{PhoneProblem, RecipientNeed};
use jiff::civil::time;
use jiff::tz::TimeZone;
use support::policy::*;

type TestResult = Result<(), Box<dyn Error>>;

// ---------------------------------------------------------------- detection

#[test]
fn detection_reports_first_sighting_status_change_and_tracking_per_shipment() {
    let mut first = order("1", "pedido_pago", t0());
    first.shipments = vec![shipment("a", None), shipment("b", Some("QB1BR"))];
    assert_eq!(
        detect(None, &first),
        vec![
            OrderEvent::FirstSighting {
                status_code: "pedido_pago".into()
            },
            OrderEvent::TrackingAdded {
                shipment_id: "b".into(),
                code: "QB1BR".into()
            },
        ]
    );

    let mut second = order("1", "pedido_enviado", t0() + mins(5));
    second.shipments = vec![shipment("a", Some("QA1BR")), shipment("b", Some("QB2BR"))];
    assert_eq!(
        detect(Some(&first), &second),
        vec![
            OrderEvent::StatusChanged {
                from: "pedido_pago".into(),
                to: "pedido_enviado".into()
            },
            OrderEvent::TrackingAdded {
                shipment_id: "a".into(),
                code: "QA1BR".into()
            },
            OrderEvent::TrackingChanged {
                shipment_id: "b".into(),
                from: "QB1BR".into(),
                to: "QB2BR".into()
            },
        ]
    );
}

#[test]
fn identical_change_key_yields_no_events_even_if_other_fields_differ() {
    let first = order("1", "pedido_pago", t0());
    let mut again = first.clone();
    again.shipments = vec![shipment("1", Some("QB1BR"))];
    assert!(
        detect(Some(&first), &again).is_empty(),
        "same status and updated_at is the same change"
    );
}

#[test]
fn summary_baseline_derives_no_tracking_events() {
    let mut summary = order("1", "pedido_enviado", t0());
    summary.detailed = false;
    summary.shipments.clear();
    let mut detailed = order("1", "pedido_enviado", t0() + mins(5));
    detailed.shipments = vec![shipment("1", Some("QB1BR"))];
    assert!(
        detect(Some(&summary), &detailed).is_empty(),
        "a summary row is a baseline for status only"
    );

    // And a summary after a detailed snapshot keeps the known detail.
    let merged = arauto::decide::detect::merge_snapshot(Some(&detailed), summary.clone());
    assert_eq!(merged.shipments, detailed.shipments);
    assert_eq!(merged.updated_at, summary.updated_at);
    assert!(merged.detailed);
}

#[test]
fn blank_tracking_codes_count_as_absent() {
    let mut first = order("1", "pedido_enviado", t0());
    first.shipments = vec![shipment("1", Some("  "))];
    assert_eq!(detect(None, &first).len(), 1, "only the first sighting");
}

// ---------------------------------------------------------------- happy path

#[test]
fn first_sighting_plans_the_current_step_with_dedupe_keys_and_delay() {
    let mut policy = policy();
    policy.channels = vec![whatsapp(), webhook()];
    let mut h = Harness::default();
    let d = h.poll(&policy, order("1042", "aguardando_pagamento", t0()), t0());
    assert_eq!(kinds(&d), vec![K::WaitingPayment, K::WaitingPayment]);
    let keys: Vec<&str> = d.planned.iter().map(|p| p.dedupe_key.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "loja/1042/waiting-payment/whatsapp",
            "loja/1042/waiting-payment/webhook"
        ]
    );
    for p in &d.planned {
        assert_eq!(p.priority, 1);
        assert_eq!(p.status_code, "aguardando_pagamento");
        assert_eq!(
            p.due_at,
            t0() + mins(30),
            "waiting-payment waits 30 min by default"
        );
        assert_eq!(p.expires_at, p.due_at + mins(24 * 60));
        assert_eq!(p.fingerprint.len(), 64);
    }
    assert_ne!(
        d.planned[0].fingerprint, d.planned[1].fingerprint,
        "fingerprints are per channel"
    );
    assert!(d.cancel.is_empty() && d.unmapped.is_none() && d.invalid.is_empty() && !d.silent);
}

#[test]
fn jump_between_polls_plans_only_the_newest_step_and_cancels_older_pending() {
    let policy = policy();
    let mut h = Harness::default();
    h.poll(&policy, order("1", "aguardando_pagamento", t0()), t0());
    assert_eq!(h.pending_kinds("1"), vec![K::WaitingPayment]);

    // Paid, processed and shipped between two polls: only "shipped".
    let d = h.poll(
        &policy,
        order("1", "pedido_enviado", t0() + mins(5)),
        t0() + mins(5),
    );
    assert_eq!(kinds(&d), vec![K::OrderShipped]);
    assert_eq!(d.planned[0].priority, 4);
    assert_eq!(d.cancel.len(), 1);
    assert_eq!(
        d.cancel[0].reason,
        CancelReason::Superseded {
            status_code: "pedido_enviado".into(),
            priority: 4
        }
    );
    assert_eq!(h.pending_kinds("1"), vec![K::OrderShipped]);
    assert_eq!(d.new_record.happy.max_priority, 4);
    assert_eq!(d.new_record.happy.max_priority_planned, 4);
}

#[test]
fn first_sighting_at_a_late_status_plans_only_that_step() {
    let policy = policy();
    let mut h = Harness::default();
    let d = h.poll(&policy, order("1", "pedido_entregue", t0()), t0());
    assert_eq!(kinds(&d), vec![K::OrderDelivered]);
    let d = h.poll(&policy, order("2", "pedido_pago", t0()), t0());
    assert_eq!(
        kinds(&d),
        vec![K::OrderPaid],
        "no 'awaiting payment' before 'paid'"
    );
}

#[test]
fn reverts_and_repeats_plan_nothing() {
    let policy = policy();
    let mut h = Harness::default();
    h.poll(&policy, order("1", "pedido_enviado", t0()), t0());
    h.send_all("1");
    for (i, status) in [
        "pedido_pago",
        "pedido_em_separacao",
        "pedido_enviado",
        "aguardando_pagamento",
    ]
    .iter()
    .enumerate()
    {
        let at = t0() + mins(5 * (i as i64 + 1));
        let d = h.poll(&policy, order("1", status, at), at);
        assert!(
            d.planned.is_empty(),
            "{status} after shipped must not notify: {:?}",
            d.planned
        );
        assert!(matches!(
            d.events.as_slice(),
            [OrderEvent::StatusChanged { .. }]
        ));
    }
    let d = h.poll(
        &policy,
        order("1", "pedido_entregue", t0() + mins(60)),
        t0() + mins(60),
    );
    assert_eq!(kinds(&d), vec![K::OrderDelivered]);
}

#[test]
fn repeated_overlapping_polls_never_duplicate() {
    let policy = policy();
    let mut h = Harness::default();
    let snapshot = order("1", "pedido_pago", t0());
    assert_eq!(
        kinds(&h.poll(&policy, snapshot.clone(), t0())),
        vec![K::OrderPaid]
    );
    for i in 1..=5 {
        let d = h.poll(&policy, snapshot.clone(), t0() + mins(i));
        assert!(d.events.is_empty() && d.planned.is_empty() && d.cancel.is_empty());
    }
    // Same status, newer modification (e.g. the merchant edited a note): still nothing.
    let d = h.poll(
        &policy,
        order("1", "pedido_pago", t0() + mins(30)),
        t0() + mins(30),
    );
    assert!(d.planned.is_empty());
    assert_eq!(d.new_record.last_polled_at, t0() + mins(30));
}

#[test]
fn unknown_status_is_reported_as_unmapped_and_notifies_nothing() -> TestResult {
    let policy = policy();
    let mut h = Harness::default();
    let mut odd = order("1", "aguardando_retirada_correios", t0());
    odd.status.name = "Aguardando retirada nos Correios".into();
    let d = h.poll(&policy, odd.clone(), t0());
    assert!(d.planned.is_empty());
    let unmapped = d.unmapped.ok_or("unmapped status not reported")?;
    assert_eq!(unmapped.code, "aguardando_retirada_correios");
    assert_eq!(unmapped.name, "Aguardando retirada nos Correios");

    // Repeated poll: not reported again.
    assert!(h.poll(&policy, odd, t0() + mins(5)).unmapped.is_none());
    // Later a known status works normally.
    let d = h.poll(
        &policy,
        order("1", "pedido_pago", t0() + mins(10)),
        t0() + mins(10),
    );
    assert_eq!(kinds(&d), vec![K::OrderPaid]);
    Ok(())
}

#[test]
fn split_shipments_announce_each_new_code_once() {
    let policy = policy();
    let mut h = Harness::default();
    let mut o = order("1", "pedido_enviado", t0());
    o.shipments = vec![shipment("a", None), shipment("b", None)];
    assert_eq!(
        kinds(&h.poll(&policy, o.clone(), t0())),
        vec![K::OrderShipped]
    );
    h.send_all("1");

    let mut step = |codes: [Option<&str>; 2], minute: i64| {
        let mut o = order("1", "pedido_enviado", t0() + mins(minute));
        o.shipments = vec![shipment("a", codes[0]), shipment("b", codes[1])];
        h.poll(&policy, o, t0() + mins(minute))
    };
    let d = step([Some("QA1BR"), None], 5);
    assert_eq!(kinds(&d), vec![K::TrackingUpdated]);
    assert_eq!(
        d.planned[0].tracking,
        Some(TrackingRef {
            shipment_id: "a".into(),
            code: "QA1BR".into()
        })
    );
    assert_eq!(
        d.planned[0].dedupe_key,
        "loja/1/tracking-updated/whatsapp/a/QA1BR"
    );

    let d = step([Some("QA1BR"), Some("QB1BR")], 10);
    assert_eq!(kinds(&d), vec![K::TrackingUpdated]);
    assert_eq!(
        d.planned[0]
            .tracking
            .as_ref()
            .map(|t| t.shipment_id.as_str()),
        Some("b")
    );

    assert!(
        step([Some("QA1BR"), Some("QB1BR")], 15).planned.is_empty(),
        "repeat"
    );
    let d = step([Some("QA2BR"), Some("QB1BR")], 20);
    assert_eq!(
        kinds(&d),
        vec![K::TrackingUpdated],
        "a corrected code is announced"
    );
    assert!(
        step([Some("QA2BR"), Some("QA2BR")], 25).planned.is_empty(),
        "same code on the other shipment"
    );
    assert!(
        step([Some("QA1BR"), Some("QA2BR")], 30).planned.is_empty(),
        "a code announced before"
    );
}

#[test]
fn shipped_in_the_same_poll_as_new_codes_carries_them() {
    let policy = policy();
    let mut h = Harness::default();
    h.poll(&policy, order("1", "pedido_pago", t0()), t0());
    let mut o = order("1", "pedido_enviado", t0() + mins(5));
    o.shipments = vec![shipment("a", Some("QA1BR")), shipment("b", Some("QB1BR"))];
    let d = h.poll(&policy, o, t0() + mins(5));
    assert_eq!(
        kinds(&d),
        vec![K::OrderShipped],
        "the shipped message lists both codes"
    );
    assert_eq!(d.new_record.happy.tracking_announced.len(), 2);
}

#[test]
fn a_tracking_code_below_the_shipped_step_means_shipped() {
    let policy = policy();
    let mut h = Harness::default();
    h.poll(&policy, order("1", "pedido_em_separacao", t0()), t0());
    let mut o = order("1", "pedido_em_separacao", t0() + mins(5));
    o.shipments = vec![shipment("1", Some("QB1BR"))];
    let d = h.poll(&policy, o, t0() + mins(5));
    assert_eq!(kinds(&d), vec![K::OrderShipped]);
    assert_eq!(d.cancel.len(), 1, "pending 'processing' superseded");
    // When the status catches up, nothing more.
    let mut o = order("1", "pedido_enviado", t0() + mins(10));
    o.shipments = vec![shipment("1", Some("QB1BR"))];
    assert!(h.poll(&policy, o, t0() + mins(10)).planned.is_empty());

    // Switched off: the code is announced as tracking-updated instead.
    let mut policy = policy_with(&[]);
    policy.tracking_implies_shipped = false;
    let mut h = Harness::default();
    h.poll(&policy, order("2", "pedido_em_separacao", t0()), t0());
    let mut o = order("2", "pedido_em_separacao", t0() + mins(5));
    o.shipments = vec![shipment("1", Some("QB1BR"))];
    assert_eq!(
        kinds(&h.poll(&policy, o, t0() + mins(5))),
        vec![K::TrackingUpdated]
    );
}

#[test]
fn first_sighting_with_code_and_status_in_one_poll_plans_one_message() {
    let policy = policy();
    let mut h = Harness::default();
    let mut o = order("1", "pedido_em_separacao", t0());
    o.shipments = vec![shipment("1", Some("QB1BR"))];
    let d = h.poll(&policy, o, t0());
    assert_eq!(
        kinds(&d),
        vec![K::OrderShipped],
        "processing superseded within the same decision"
    );
    assert_eq!(
        d.new_record
            .happy
            .planned
            .keys()
            .copied()
            .collect::<Vec<_>>(),
        vec![K::OrderShipped]
    );

    let mut o = order("2", "pedido_entregue", t0());
    o.shipments = vec![shipment("1", Some("QB1BR"))];
    assert_eq!(
        kinds(&h.poll(&policy, o, t0())),
        vec![K::OrderDelivered],
        "no tracking news after delivery"
    );
}

#[test]
fn missing_phone_plans_for_phoneless_channels_and_reports_the_others() {
    let mut policy = policy();
    policy.channels = vec![whatsapp(), webhook()];
    let mut h = Harness::default();
    let mut o = order("1", "pedido_pago", t0());
    o.customer.phones.clear();
    let d = h.poll_with_phone(&policy, o, t0(), false);
    assert_eq!(d.planned.len(), 1);
    assert_eq!(d.planned[0].channel, "webhook");
    assert_eq!(d.invalid.len(), 1);
    assert_eq!(d.invalid[0].channel, "whatsapp");
    assert_eq!(d.invalid[0].kind, K::OrderPaid);
    assert_eq!(
        d.invalid[0].reason,
        InvalidReason::UnusablePhone(PhoneProblem::NoPhone)
    );
    assert_eq!(
        d.new_record.happy.max_priority, 2,
        "the order still advanced"
    );
}

#[test]
fn an_old_order_first_seen_after_the_cutoff_is_history_not_news() {
    // Placed a month before arauto was added, too old for the first sync's
    // look-back; the shop edits it today (a note, an address) and the
    // connector returns it for the first time, delivered long ago.
    let mut policy = policy();
    let cutoff = t0();
    policy.seed_cutoff = Some(cutoff);
    let mut h = Harness::default();
    let mut old = order("77", "pedido_entregue", cutoff + mins(30));
    old.created_at = cutoff - mins(60 * 24 * 30);
    let d = h.poll(&policy, old.clone(), cutoff + mins(31));
    assert!(d.planned.is_empty(), "planned {:?}", d.planned);
    assert!(d.silent && d.new_record.seeded);

    // An order placed after the cutoff and first seen at a late step is news.
    let mut fresh = order("78", "pedido_enviado", cutoff + mins(30));
    fresh.created_at = cutoff + mins(5);
    let d = h.poll(&policy, fresh, cutoff + mins(31));
    assert_eq!(kinds(&d), vec![K::OrderShipped]);
}

#[test]
fn first_sync_of_500_historical_orders_sends_nothing_but_records_state() -> TestResult {
    let mut policy = policy();
    let cutoff = t0();
    policy.seed_cutoff = Some(cutoff);
    let mut h = Harness::default();
    let codes: Vec<&str> = LI_STATUSES.iter().map(|s| s.0).collect();
    for i in 0..500 {
        let code = codes[i % codes.len()];
        let mut o = order(
            &format!("{}", 1000 + i),
            code,
            cutoff - mins(60 * 24 * 30) + mins(i as i64),
        );
        if i % 3 == 0 {
            o.shipments = vec![shipment("1", Some(&format!("QB{i}BR")))];
        }
        if i % 7 == 0 {
            o.detailed = false;
            o.shipments.clear();
        }
        let d = h.poll(&policy, o, cutoff + mins(1));
        assert!(
            d.planned.is_empty(),
            "historical order {i} planned {:?}",
            d.planned
        );
        assert!(d.silent);
        assert!(d.new_record.seeded);
    }
    assert_eq!(h.records.len(), 500);

    // Later changes compare against the recorded state.
    let later = cutoff + mins(10);
    let seeded_paid = h
        .records
        .values()
        .find(|r| r.order.status.code == "pedido_pago")
        .ok_or("no paid order")?;
    let id = seeded_paid.order.id.clone();
    let d = h.poll(&policy, order(&id, "pedido_pago", later), later);
    assert!(d.planned.is_empty(), "still paid: nothing new");
    let d = h.poll(
        &policy,
        order(&id, "pedido_enviado", later + mins(1)),
        later + mins(1),
    );
    assert_eq!(kinds(&d), vec![K::OrderShipped]);

    let shipped = h
        .records
        .values()
        .find(|r| {
            r.order.status.code == "pedido_enviado"
                && r.order.detailed
                && r.order.shipments.iter().any(|s| s.tracking_code.is_some())
        })
        .ok_or("no shipped order with code")?;
    let (id, o) = (shipped.order.id.clone(), shipped.order.clone());
    let mut same_code = o.clone();
    same_code.updated_at = later;
    assert!(
        h.poll(&policy, same_code, later).planned.is_empty(),
        "seeded code is not news"
    );
    let d = h.poll(
        &policy,
        order(&id, "pedido_pago", later + mins(1)),
        later + mins(1),
    );
    assert!(d.planned.is_empty(), "revert below the seeded step");

    let cancelled = h
        .records
        .values()
        .find(|r| r.order.status.code == "pedido_cancelado")
        .ok_or("no cancelled")?;
    let id = cancelled.order.id.clone();
    let d = h.poll(&policy, order(&id, "pagamento_devolvido", later), later);
    assert!(
        d.planned.is_empty(),
        "a seeded cancellation counts as notified"
    );
    Ok(())
}

#[test]
fn cancelled_then_moved_forward_again() {
    let policy = policy();
    let mut h = Harness::default();
    h.poll(&policy, order("1", "pedido_pago", t0()), t0());
    h.send_all("1");
    h.poll(
        &policy,
        order("1", "pedido_em_separacao", t0() + mins(5)),
        t0() + mins(5),
    );
    assert_eq!(h.pending_kinds("1"), vec![K::OrderProcessing]);

    let d = h.poll(
        &policy,
        order("1", "pedido_cancelado", t0() + mins(10)),
        t0() + mins(10),
    );
    assert_eq!(kinds(&d), vec![K::OrderCanceled]);
    assert_eq!(d.cancel.len(), 1);
    assert_eq!(
        d.cancel[0].reason,
        CancelReason::OrderTerminal {
            status_code: "pedido_cancelado".into()
        }
    );
    h.send_all("1");

    // Refund after the cancellation notice: one terminal notice per episode.
    let d = h.poll(
        &policy,
        order("1", "pagamento_devolvido", t0() + mins(15)),
        t0() + mins(15),
    );
    assert!(d.planned.is_empty());
    // Re-opened at the same step as before: still suppressed.
    let d = h.poll(
        &policy,
        order("1", "pedido_em_separacao", t0() + mins(20)),
        t0() + mins(20),
    );
    assert!(d.planned.is_empty());
    // Moved beyond the step reached before the cancellation: back on the path.
    let d = h.poll(
        &policy,
        order("1", "pedido_enviado", t0() + mins(25)),
        t0() + mins(25),
    );
    assert_eq!(kinds(&d), vec![K::OrderShipped]);
    assert!(d.new_record.happy.terminal.is_none());
    h.send_all("1");
    // Cancelled again: order-canceled already went out on this channel.
    let d = h.poll(
        &policy,
        order("1", "pedido_cancelado", t0() + mins(30)),
        t0() + mins(30),
    );
    assert!(d.planned.is_empty());
    // ...but a refund is a new terminal notice in this new episode.
    let mut h2 = Harness::default();
    h2.poll(&policy, order("2", "pedido_pago", t0()), t0());
    h2.poll(
        &policy,
        order("2", "pedido_cancelado", t0() + mins(5)),
        t0() + mins(5),
    );
    h2.send_all("2");
    h2.poll(
        &policy,
        order("2", "pedido_enviado", t0() + mins(10)),
        t0() + mins(10),
    );
    h2.send_all("2");
    let d = h2.poll(
        &policy,
        order("2", "pagamento_devolvido", t0() + mins(15)),
        t0() + mins(15),
    );
    assert_eq!(kinds(&d), vec![K::OrderRefunded]);
}

#[test]
fn a_pending_cancellation_notice_is_withdrawn_when_the_order_reopens() {
    let mut policy = policy();
    // Quiet hours keep the cancellation notice pending overnight.
    policy.timing.quiet_hours = QuietHours::new(
        time(21, 0, 0, 0),
        time(8, 0, 0, 0),
        TimeZone::get("America/Sao_Paulo").unwrap_or(TimeZone::UTC),
    )
    .ok();
    let night: jiff::Timestamp = "2025-06-11T02:00:00Z".parse().unwrap_or(t0()); // 23:00 in São Paulo
    let mut h = Harness::default();
    h.poll(
        &policy,
        order("1", "pedido_pago", night - mins(60 * 5)),
        night - mins(60 * 5),
    );
    h.send_all("1");
    let d = h.poll(&policy, order("1", "pedido_cancelado", night), night);
    assert_eq!(kinds(&d), vec![K::OrderCanceled]);
    assert_eq!(
        d.planned[0].due_at,
        "2025-06-11T11:00:00Z".parse().unwrap_or(t0()),
        "08:00 in São Paulo"
    );

    // The merchant reopens it at 23:30: the pending notice is cancelled.
    let d = h.poll(
        &policy,
        order("1", "pedido_pago", night + mins(30)),
        night + mins(30),
    );
    assert!(d.planned.is_empty());
    assert_eq!(d.cancel.len(), 1);
    assert_eq!(
        d.cancel[0].reason,
        CancelReason::OrderReopened {
            status_code: "pedido_pago".into()
        }
    );
    assert!(h.pending_kinds("1").is_empty());

    // Cancelled for good the next morning: the customer is told.
    let morning = night + mins(60 * 10);
    let d = h.poll(&policy, order("1", "pedido_cancelado", morning), morning);
    assert_eq!(kinds(&d), vec![K::OrderCanceled]);
}

/// The same, when the cancellation notice had fallen back to SMS (the
/// customer is not on WhatsApp) before the order reopened: withdrawing the
/// SMS job also forgets the WhatsApp plan it stood in for, so the second
/// cancellation is announced.
#[test]
fn a_withdrawn_fallback_notice_does_not_silence_the_next_cancellation() {
    let mut policy = policy();
    policy.timing.quiet_hours = QuietHours::new(
        time(21, 0, 0, 0),
        time(8, 0, 0, 0),
        TimeZone::get("America/Sao_Paulo").unwrap_or(TimeZone::UTC),
    )
    .ok();
    let night: jiff::Timestamp = "2025-06-11T02:00:00Z".parse().unwrap_or(t0());
    let mut h = Harness::default();
    h.poll(
        &policy,
        order("1", "pedido_pago", night - mins(60 * 5)),
        night - mins(60 * 5),
    );
    h.send_all("1");
    let d = h.poll(&policy, order("1", "pedido_cancelado", night), night);
    assert_eq!(kinds(&d), vec![K::OrderCanceled]);
    h.fall_back("1", K::OrderCanceled, "sms");

    let d = h.poll(
        &policy,
        order("1", "pedido_pago", night + mins(30)),
        night + mins(30),
    );
    assert_eq!(d.cancel.len(), 1, "the SMS notice is withdrawn");
    assert!(h.pending_kinds("1").is_empty());

    let morning = night + mins(60 * 10);
    let d = h.poll(&policy, order("1", "pedido_cancelado", morning), morning);
    assert_eq!(kinds(&d), vec![K::OrderCanceled], "announced again");
}

#[test]
fn store_override_maps_a_custom_status_to_order_shipped() {
    let policy = policy_with(&[("despachado_transportadora", Some(K::OrderShipped))]);
    let mut h = Harness::default();
    h.poll(&policy, order("1", "pedido_pago", t0()), t0());
    let d = h.poll(
        &policy,
        order("1", "despachado_transportadora", t0() + mins(5)),
        t0() + mins(5),
    );
    assert_eq!(kinds(&d), vec![K::OrderShipped]);
    assert_eq!(d.planned[0].priority, 4);
    assert!(d.unmapped.is_none());
    // The built-in status afterwards is the same step: nothing.
    assert!(
        h.poll(
            &policy,
            order("1", "pedido_enviado", t0() + mins(10)),
            t0() + mins(10)
        )
        .planned
        .is_empty()
    );
}

#[test]
fn store_override_switches_a_default_off_but_the_order_still_moves() {
    let policy = policy_with(&[("pedido_pago", None)]);
    let mut h = Harness::default();
    h.poll(&policy, order("1", "aguardando_pagamento", t0()), t0());
    let d = h.poll(
        &policy,
        order("1", "pedido_pago", t0() + mins(5)),
        t0() + mins(5),
    );
    assert!(d.planned.is_empty(), "order-paid is off for this store");
    assert_eq!(
        d.cancel.len(),
        1,
        "the pending 'awaiting payment' is stale all the same"
    );
    assert!(d.unmapped.is_none(), "switched off is not unmapped");
    let d = h.poll(
        &policy,
        order("1", "pedido_enviado", t0() + mins(10)),
        t0() + mins(10),
    );
    assert_eq!(kinds(&d), vec![K::OrderShipped]);
}

#[test]
fn globally_disabled_kinds_are_not_planned() {
    let mut policy = policy();
    policy.enabled.remove(&K::WaitingPayment);
    let mut h = Harness::default();
    assert!(
        h.poll(&policy, order("1", "aguardando_pagamento", t0()), t0())
            .planned
            .is_empty()
    );
    assert_eq!(
        kinds(&h.poll(
            &policy,
            order("1", "pedido_pago", t0() + mins(5)),
            t0() + mins(5)
        )),
        vec![K::OrderPaid]
    );
}

#[test]
fn recognition_rejects_overrides_the_platform_cannot_serve() {
    let overrides: BTreeMap<String, Option<K>> = [
        ("aguardando_pagamento".to_owned(), Some(K::BoletoReminder)),
        ("pedido_enviado".to_owned(), Some(K::TrackingUpdated)),
    ]
    .into();
    let errors = match Recognition::new(
        "minha-loja",
        "loja-integrada",
        &li_catalogue(),
        &li_capabilities(),
        &overrides,
    ) {
        Ok(_) => panic!("unsupported overrides accepted"),
        Err(errors) => errors,
    };
    assert_eq!(errors.len(), 2);
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert!(matches!(errors[0], RecognitionError::Unsupported { .. }));
    assert!(
        text[0].contains("stores.minha-loja.recognition.aguardando_pagamento"),
        "{}",
        text[0]
    );
    assert!(
        text[0].contains("boleto-reminder") && text[0].contains("linha digitável"),
        "{}",
        text[0]
    );
    assert!(
        text[1].contains("stores.minha-loja.recognition.pedido_enviado"),
        "{}",
        text[1]
    );
    assert!(text[1].contains("order-shipped"), "{}", text[1]);
}

// ---------------------------------------------------------------- pre-send re-validation

/// What pre-send re-validation looks at of a job.
struct Facts {
    kind: K,
    priority: u8,
    tracking: Option<TrackingRef>,
}

fn relevant(job: &Facts, latest: &OrderRecord) -> Relevance {
    still_relevant(job.kind, job.priority, job.tracking.as_ref(), latest)
}

fn facts(kind: K, priority: u8, tracking: Option<(&str, &str)>) -> Facts {
    Facts {
        kind,
        priority,
        tracking: tracking.map(|(s, c)| TrackingRef {
            shipment_id: s.into(),
            code: c.into(),
        }),
    }
}

fn record_after(steps: &[(&str, Option<&str>)]) -> OrderRecord {
    let policy = policy();
    let mut h = Harness::default();
    for (i, (status, code)) in steps.iter().enumerate() {
        let mut o = order("1", status, t0() + mins(i as i64));
        o.shipments = vec![shipment("1", *code)];
        h.poll(&policy, o, t0() + mins(i as i64));
    }
    h.records.remove("1").expect("no record")
}

#[test]
fn revalidation_drops_what_no_longer_makes_sense() {
    let shipped = record_after(&[("pedido_pago", None), ("pedido_enviado", Some("QB1BR"))]);
    assert_eq!(
        relevant(&facts(K::OrderShipped, 4, None), &shipped),
        Relevance::Send
    );
    assert_eq!(
        relevant(&facts(K::OrderPaid, 2, None), &shipped),
        Relevance::Drop {
            reason: DropReason::Superseded { reached: 4, job: 2 }
        }
    );
    assert_eq!(
        relevant(
            &facts(K::TrackingUpdated, 0, Some(("1", "QB1BR"))),
            &shipped
        ),
        Relevance::Send
    );
    assert_eq!(
        relevant(
            &facts(K::TrackingUpdated, 0, Some(("1", "QB0BR"))),
            &shipped
        ),
        Relevance::Drop {
            reason: DropReason::TrackingCodeGone {
                code: "QB0BR".into()
            }
        }
    );
    assert_eq!(
        relevant(&facts(K::OrderCanceled, 0, None), &shipped),
        Relevance::Drop {
            reason: DropReason::OrderReopened {
                status_code: "pedido_enviado".into()
            }
        }
    );

    let cancelled = record_after(&[("pedido_pago", None), ("pedido_cancelado", None)]);
    assert_eq!(
        relevant(&facts(K::OrderCanceled, 0, None), &cancelled),
        Relevance::Send
    );
    assert_eq!(
        relevant(&facts(K::OrderPaid, 2, None), &cancelled),
        Relevance::Drop {
            reason: DropReason::OrderTerminal {
                status_code: "pedido_cancelado".into()
            }
        }
    );

    let reopened = record_after(&[
        ("pedido_pago", None),
        ("pedido_cancelado", None),
        ("pedido_pago", None),
    ]);
    assert!(matches!(
        relevant(
            &facts(K::TrackingUpdated, 0, Some(("1", "QB1BR"))),
            &reopened
        ),
        Relevance::Drop {
            reason: DropReason::AfterCancellation { .. }
        }
    ));

    // A revert does not drop the later step: it would never be announced again.
    let reverted = record_after(&[("pedido_enviado", None), ("pedido_pago", None)]);
    assert_eq!(
        relevant(&facts(K::OrderShipped, 4, None), &reverted),
        Relevance::Send
    );
}

// ---------------------------------------------------------------- record and fingerprint

#[test]
fn order_record_round_trips_through_its_versioned_blob() -> TestResult {
    let record = record_after(&[
        ("pedido_pago", None),
        ("pedido_enviado", Some("QB1BR")),
        ("pedido_cancelado", None),
    ]);
    let bytes = record.to_bytes();
    assert!(bytes.starts_with(br#"{"v":1,"record":"#));
    assert_eq!(OrderRecord::from_bytes(&bytes)?, record);

    let future = String::from_utf8(bytes)?.replacen(r#"{"v":1"#, r#"{"v":9"#, 1);
    let err = OrderRecord::from_bytes(future.as_bytes())
        .err()
        .ok_or("newer version accepted")?;
    assert!(err.to_string().contains("version 9"), "{err}");
    assert!(OrderRecord::from_bytes(b"{\"v\":1,\"record\":{}}").is_err());
    assert!(OrderRecord::from_bytes(b"garbage").is_err());
    Ok(())
}

#[test]
fn fingerprint_identifies_the_same_event_for_the_same_customer() {
    let a = order("1", "pedido_pago", t0());
    let mut same_data_later = a.clone();
    same_data_later.updated_at = t0() + mins(60);
    same_data_later.id = "other-store-entry-1".into();
    assert_eq!(
        fingerprint(SHOP, K::OrderPaid, "whatsapp", &a, None),
        fingerprint(SHOP, K::OrderPaid, "whatsapp", &same_data_later, None)
    );
    let mut other_customer = a.clone();
    other_customer.customer.phones = vec!["(21) 99999-0000".into()];
    assert_ne!(
        fingerprint(SHOP, K::OrderPaid, "whatsapp", &a, None),
        fingerprint(SHOP, K::OrderPaid, "whatsapp", &other_customer, None)
    );
    assert_ne!(
        fingerprint(SHOP, K::OrderPaid, "whatsapp", &a, None),
        fingerprint(SHOP, K::OrderShipped, "whatsapp", &a, None)
    );
    assert_ne!(
        fingerprint(SHOP, K::TrackingUpdated, "whatsapp", &a, Some("QA1BR")),
        fingerprint(SHOP, K::TrackingUpdated, "whatsapp", &a, Some("QA2BR"))
    );
}

/// The platform identity of the shop most tests use.
const SHOP: &str = "loja-integrada shop 1";

/// Order numbers start at the same value in every LI shop and one person buys
/// from several: another shop's identical-looking event is its own message,
/// while the same shop configured twice (another config id, same account)
/// plans the same fingerprint, which the queue enqueues once.
#[test]
fn the_fingerprint_is_keyed_on_the_shop_account_not_the_config_id() {
    let plan = |store_id: &str, identity: &str| {
        let mut policy = policy();
        policy.store_id = store_id.to_owned();
        policy.platform_identity = identity.to_owned();
        let d = decide(
            &policy,
            DecideInput {
                previous: None,
                order: order("1", "pedido_pago", t0()),
                pending: &[],
                unusable_phone: None,
                now: t0(),
            },
        );
        assert_eq!(d.planned.len(), 1, "{d:?}");
        d.planned[0].fingerprint.clone()
    };
    let north = plan("norte", "account of shop north");
    assert_ne!(
        north,
        plan("sul", "account of shop south"),
        "two shops: two messages"
    );
    assert_eq!(
        north,
        plan("norte-copia", "account of shop north"),
        "one shop configured twice: one message"
    );
}

#[test]
fn an_unusable_phone_is_reported_with_its_reason() {
    let mut policy = policy();
    policy.channels = vec![whatsapp(), webhook()];
    let d = decide(
        &policy,
        DecideInput {
            previous: None,
            order: order("1", "pedido_pago", t0()),
            pending: &[],
            unusable_phone: Some(PhoneProblem::Landline),
            now: t0(),
        },
    );
    assert_eq!(d.planned.len(), 1);
    assert_eq!(d.invalid.len(), 1);
    let reason = d.invalid[0].reason;
    assert_eq!(reason, InvalidReason::UnusablePhone(PhoneProblem::Landline));
    assert_eq!(reason.key(), "landline");
    assert_eq!(reason.to_string(), "no usable phone (landline)");
}

#[test]
fn e_mail_and_chat_channels_need_that_contact_and_say_so() {
    let mut policy = policy();
    let channel = |name: &str, recipient| ChannelTarget {
        name: name.to_owned(),
        recipient,
    };
    policy.channels = vec![
        channel("mail", RecipientNeed::CustomerEmail),
        channel("chat", RecipientNeed::CustomerChatId),
    ];
    let decide_for = |email: Option<&str>, chat_id: Option<&str>| {
        let mut o = order("1", "pedido_pago", t0());
        o.customer.email = email.map(str::to_owned);
        o.customer.chat_id = chat_id.map(str::to_owned);
        decide(
            &policy,
            DecideInput {
                previous: None,
                order: o,
                pending: &[],
                unusable_phone: None,
                now: t0(),
            },
        )
    };
    let d = decide_for(None, Some("  "));
    assert!(d.planned.is_empty(), "{:?}", d.planned);
    let reasons: Vec<(&str, InvalidReason)> = d
        .invalid
        .iter()
        .map(|i| (i.channel.as_str(), i.reason))
        .collect();
    assert_eq!(
        reasons,
        vec![
            ("mail", InvalidReason::NoEmail),
            ("chat", InvalidReason::NoChatId)
        ]
    );
    assert_eq!(InvalidReason::NoEmail.key(), "no-email");
    assert_eq!(InvalidReason::label_of("no-chat-id"), "no chat id");
    assert_eq!(InvalidReason::label_of("landline"), "landline");

    let d = decide_for(Some("ana@example.com"), Some("42"));
    assert_eq!(d.planned.len(), 2);
    assert!(d.invalid.is_empty());
}

#[test]
fn decide_is_pure_given_the_same_inputs() {
    let policy = policy();
    let input = || DecideInput {
        previous: None,
        order: order("1", "pedido_pago", t0()),
        pending: &[],
        unusable_phone: None,
        now: t0(),
    };
    assert_eq!(decide(&policy, input()), decide(&policy, input()));
}
