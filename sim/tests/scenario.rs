//! The scenario engine and the built-in demo story: what each step does to a
//! fake store, that the expected notifications follow from the steps, that the
//! history is older than the start, and real-time runs (speed, cancel, resume).

// All test code: with this, clippy's allow-unwrap/expect-in-tests covers the
// helper functions too, not only the #[test] ones (see clippy.toml).
#![cfg(test)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arauto_sim::li::{FakeLi, LiStore, Numero, Order, StoreAuth};
use arauto_sim::scenario::{
    Action, DEMO_HISTORY_LEN, ExpectedKind, ExpectedNotification, RunOutcome, Scenario,
    ScenarioError, Speed, Step,
};
use jiff::SignedDuration;
use jiff::civil::DateTime;

const SHIPPED_1001: &str = "QB712345688BR";
const SHIPPED_1002: &str = "OY482739159BR";
const CHAIR_1004: &str = "NX905173427BR";
const FOOTREST_1004: &str = "AB304812762BR";

fn fake() -> (FakeLi, LiStore) {
    let li = FakeLi::start_blocking().expect("start fake LI");
    let store = li.add_store(StoreAuth::api_key("demo-chave-api", "demo-chave-aplicacao"));
    (li, store)
}

fn codes(order: &Order) -> Vec<Option<String>> {
    order.shipments.iter().map(|s| s.tracking.clone()).collect()
}

/// (status, tracking code per envio) of every order the store holds.
fn states(store: &LiStore) -> BTreeMap<Numero, (String, Vec<Option<String>>)> {
    store
        .numeros()
        .into_iter()
        .map(|n| {
            let order = store.order(n).unwrap();
            (n, (order.status.clone(), codes(&order)))
        })
        .collect()
}

fn some(codes: &[Option<&str>]) -> Vec<Option<String>> {
    codes.iter().map(|c| c.map(str::to_owned)).collect()
}

#[test]
fn demo_steps_move_the_orders_through_the_intended_states() {
    let (li, store) = fake();
    let start = li.now();
    let mut demo = Scenario::demo(start);

    assert_eq!(demo.seed_history(&store).unwrap(), DEMO_HISTORY_LEN);
    assert_eq!(
        demo.seed_history(&store).unwrap(),
        0,
        "seeding twice adds nothing"
    );
    let mut want = states(&store);
    assert_eq!(want.len(), DEMO_HISTORY_LEN);
    let old_990 = store.order(990).unwrap();

    // What each step leaves behind: (numero, status, tracking code per envio).
    let table: [(Numero, &str, &[Option<&str>]); 15] = [
        (1001, "aguardando_pagamento", &[None]),
        (1002, "pedido_pago", &[None]),
        (1003, "aguardando_pagamento", &[None]),
        (1001, "pedido_pago", &[None]),
        (1005, "aguardando_pagamento", &[None]),
        (1004, "pedido_em_separacao", &[None, None]),
        (1001, "pedido_em_separacao", &[None]),
        (1003, "pedido_cancelado", &[None]),
        (1002, "pedido_enviado", &[Some(SHIPPED_1002)]),
        (1005, "pedido_pago", &[None]),
        (1004, "pedido_enviado", &[Some(CHAIR_1004), None]),
        (1001, "pedido_enviado", &[Some(SHIPPED_1001)]),
        (
            990,
            "pedido_entregue",
            &[old_990.shipments[0].tracking.as_deref()],
        ),
        (
            1004,
            "pedido_enviado",
            &[Some(CHAIR_1004), Some(FOOTREST_1004)],
        ),
        (1001, "pedido_entregue", &[Some(SHIPPED_1001)]),
    ];
    assert_eq!(demo.steps().len(), table.len());

    let mut last_modified = start;
    for (index, (numero, status, envios)) in table.iter().enumerate() {
        assert_eq!(demo.next_index(), index);
        let step = demo.apply_next_scheduled(&store).unwrap().unwrap();
        assert_eq!((step.index, step.numero), (index, *numero));
        let scheduled = start.saturating_add(SignedDuration::try_from(step.at).unwrap());
        assert_eq!(
            step.modified_at, scheduled,
            "step {index}: {}",
            step.description
        );
        assert!(
            step.modified_at > last_modified,
            "data_modificacao must grow"
        );
        last_modified = step.modified_at;

        want.insert(*numero, (status.to_string(), some(envios)));
        assert_eq!(
            states(&store),
            want,
            "after step {index}: {}",
            step.description
        );
        assert_eq!(store.order(*numero).unwrap().modified_at, Some(scheduled));
    }
    assert!(demo.is_finished());
    assert_eq!(demo.apply_next(&store).unwrap(), None);

    // The touch changed nothing but data_modificacao.
    let new_990 = store.order(990).unwrap();
    assert_eq!(
        Order {
            modified_at: old_990.modified_at,
            ..new_990
        },
        old_990
    );
    // The happy path was walked one status at a time; the jump skipped separação.
    let walked = |n| -> Vec<String> { store.history(n).into_iter().map(|h| h.status).collect() };
    assert_eq!(
        walked(1001),
        [
            "aguardando_pagamento",
            "pedido_pago",
            "pedido_em_separacao",
            "pedido_enviado",
            "pedido_entregue"
        ]
    );
    assert_eq!(walked(1002), ["pedido_pago", "pedido_enviado"]);
    assert_eq!(walked(1003), ["aguardando_pagamento", "pedido_cancelado"]);
    // The split shipment: two envios with distinct ids, codes set 36 s apart.
    let split = store.order(1004).unwrap();
    assert_eq!(split.shipments.len(), 2);
    assert_ne!(split.shipments[0].id, split.shipments[1].id);
    // The order without a phone.
    let no_phone = store.order(1005).unwrap();
    assert_eq!(
        (no_phone.customer.mobile, no_phone.customer.phone),
        (None, None)
    );
}

#[test]
fn the_split_shipment_is_served_with_both_codes_over_http() {
    let (li, store) = fake();
    let mut demo = Scenario::demo(li.now());
    while demo.apply_next_scheduled(&store).unwrap().is_some() {}
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let get = |path: &str| -> serde_json::Value {
        let mut response = agent
            .get(&format!("{}{path}", li.base_url()))
            .header(
                "Authorization",
                "chave_api demo-chave-api aplicacao demo-chave-aplicacao",
            )
            .call()
            .unwrap();
        serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap()
    };
    let detail = get("/v1/pedido/1004");
    let envios: Vec<&str> = detail["envios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["objeto"].as_str().unwrap())
        .collect();
    assert_eq!(envios, [CHAIR_1004, FOOTREST_1004]);
    assert_eq!(detail["situacao"]["codigo"], "pedido_enviado");
    let search = get("/v1/pedido/search/?since_atualizado=2000-01-01&limit=50");
    assert_eq!(search["meta"]["total_count"], DEMO_HISTORY_LEN + 5);
}

/// The happy-path rules of `src/decide/mod.rs` ("The rules") with LI's
/// default recognition (docs/platforms/loja-integrada.md §Default recognition),
/// written independently of the scenario: priorities per status, one
/// notification per forward jump, terminal statuses once, tracking codes
/// carried by order-shipped or announced once as tracking-updated.
#[derive(Default)]
struct Model {
    orders: BTreeMap<Numero, ModelOrder>,
}

#[derive(Default)]
struct ModelOrder {
    status: String,
    max_priority: u8,
    cancelled: bool,
    announced: BTreeSet<String>,
}

fn recognise(status: &str) -> (u8, Option<ExpectedKind>, bool) {
    use ExpectedKind::*;
    match status {
        "aguardando_pagamento" | "pagamento_em_analise" => (1, Some(WaitingPayment), false),
        "pedido_pago" => (2, Some(OrderPaid), false),
        "em_producao" | "pedido_em_separacao" | "faturado" => (3, Some(OrderProcessing), false),
        "pedido_enviado" => (4, Some(OrderShipped), false),
        "pronto_para_retirada" => (4, Some(ReadyForPickup), false),
        "pedido_entregue" => (5, Some(OrderDelivered), false),
        "pedido_cancelado" => (0, Some(OrderCanceled), true),
        "pagamento_devolvido" | "pagamento_devolvido_sem_retorno" => (0, Some(OrderRefunded), true),
        _ => (0, None, false),
    }
}

impl Model {
    /// First sync: record silently.
    fn seed(&mut self, order: &Order) {
        let (priority, _, terminal) = recognise(&order.status);
        self.orders.insert(
            order.numero.unwrap(),
            ModelOrder {
                status: order.status.clone(),
                max_priority: priority,
                cancelled: terminal,
                announced: order
                    .shipments
                    .iter()
                    .filter_map(|s| s.tracking.clone())
                    .collect(),
            },
        );
    }

    /// One poll that sees `order`; returns (kind, tracking codes) to send.
    fn observe(&mut self, order: &Order) -> Vec<(ExpectedKind, Vec<String>)> {
        let state = self.orders.entry(order.numero.unwrap()).or_default();
        let mut out = Vec::new();
        let codes: Vec<String> = order
            .shipments
            .iter()
            .filter_map(|s| s.tracking.clone())
            .collect();
        if state.status != order.status {
            state.status.clone_from(&order.status);
            let (priority, kind, terminal) = recognise(&order.status);
            if terminal {
                if !state.cancelled {
                    state.cancelled = true;
                    out.extend(kind.map(|k| (k, Vec::new())));
                }
            } else if priority > state.max_priority {
                state.max_priority = priority;
                state.cancelled = false;
                if kind == Some(ExpectedKind::OrderShipped) {
                    state.announced.extend(codes.iter().cloned());
                    out.push((ExpectedKind::OrderShipped, codes.clone()));
                } else {
                    out.extend(kind.map(|k| (k, Vec::new())));
                }
            }
        }
        for code in codes {
            if state.cancelled || !state.announced.insert(code.clone()) || state.max_priority > 4 {
                continue;
            }
            if state.max_priority < 4 {
                state.max_priority = 4;
                out.push((ExpectedKind::OrderShipped, vec![code]));
            } else {
                out.push((ExpectedKind::TrackingUpdated, vec![code]));
            }
        }
        out
    }
}

#[test]
fn expected_notifications_follow_from_the_steps() {
    let (li, store) = fake();
    let mut demo = Scenario::demo(li.now());
    let mut model = Model::default();
    for order in demo.history() {
        model.seed(order);
    }
    let mut derived = Vec::new();
    while let Some(step) = demo.apply_next_scheduled(&store).unwrap() {
        let order = store.order(step.numero).unwrap();
        let sent = model.observe(&order);
        let declared: Vec<(ExpectedKind, Vec<String>)> = step
            .expected
            .iter()
            .map(|e| (e.kind, e.tracking_codes.clone()))
            .collect();
        assert_eq!(declared, sent, "step {}: {}", step.index, step.description);
        for expected in &step.expected {
            assert_eq!(expected.step, step.index);
            assert_eq!(expected.numero, step.numero);
            assert_eq!(
                expected.first_name,
                order.customer.name.split(' ').next().unwrap()
            );
            let raw = order
                .customer
                .mobile
                .as_ref()
                .or(order.customer.phone.as_ref());
            assert_phone_matches(raw.map(String::as_str), expected);
        }
        derived.extend(step.expected.clone());
    }
    assert_eq!(derived, demo.expected_notifications());

    use ExpectedKind::*;
    let summary: Vec<(Numero, ExpectedKind)> = demo
        .expected_notifications()
        .iter()
        .map(|e| (e.numero, e.kind))
        .collect();
    assert_eq!(
        summary,
        [
            (1001, WaitingPayment),
            (1002, OrderPaid),
            (1003, WaitingPayment),
            (1001, OrderPaid),
            (1005, WaitingPayment),
            (1004, OrderProcessing),
            (1001, OrderProcessing),
            (1003, OrderCanceled),
            (1002, OrderShipped),
            (1005, OrderPaid),
            (1004, OrderShipped),
            (1001, OrderShipped),
            (1004, TrackingUpdated),
            (1001, OrderDelivered),
        ]
    );
    let on_whatsapp = demo.expected_on_phone_channels();
    assert_eq!(on_whatsapp.len(), 12);
    assert!(on_whatsapp.iter().all(|e| e.numero != 1005));
    assert_eq!(
        on_whatsapp[0].phone_digits().as_deref(),
        Some("5511987654321")
    );
}

/// The declared E.164 number is the stored one, normalised: same DDD, same
/// last eight digits, ninth digit added, `+55` in front.
fn assert_phone_matches(raw: Option<&str>, expected: &ExpectedNotification) {
    let Some(raw) = raw else {
        assert_eq!(expected.phone, None, "{expected:?}: no phone stored");
        return;
    };
    let e164 = expected
        .phone
        .as_deref()
        .unwrap_or_else(|| panic!("{expected:?}: phone {raw:?} stored"));
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    let national = digits
        .strip_prefix("55")
        .filter(|d| d.len() >= 10)
        .unwrap_or(&digits);
    let (ddd, subscriber) = national.split_at(2);
    let last8 = &subscriber[subscriber.len() - 8..];
    assert_eq!(e164, format!("+55{ddd}9{last8}"), "stored {raw:?}");
}

fn s10_valid(code: &str) -> bool {
    let bytes = code.as_bytes();
    if bytes.len() != 13 || !code.ends_with("BR") || !bytes[..2].iter().all(u8::is_ascii_uppercase)
    {
        return false;
    }
    let digits: Vec<u32> = bytes[2..11].iter().map(|b| u32::from(b - b'0')).collect();
    let sum: u32 = digits[..8]
        .iter()
        .zip([8, 6, 4, 2, 3, 5, 9, 7])
        .map(|(d, w)| d * w)
        .sum();
    let check = match sum % 11 {
        0 => 5,
        1 => 0,
        r => 11 - r,
    };
    digits[8] == check
}

#[test]
fn history_is_older_than_the_start_and_looks_like_a_real_store() {
    let start: DateTime = "2026-03-02T14:30:00".parse().unwrap();
    let demo = Scenario::demo(start);
    let history = demo.history();
    assert_eq!(history.len(), DEMO_HISTORY_LEN);
    let numeros: Vec<Numero> = history.iter().map(|o| o.numero.unwrap()).collect();
    assert_eq!(numeros, (981..=1000).collect::<Vec<_>>());
    for order in history {
        let modified = order.modified_at.unwrap();
        let created = order.created_at.unwrap();
        assert!(
            modified < start,
            "{:?} modified at {modified}",
            order.numero
        );
        assert!(created <= modified);
        assert!(order.total_cents() > 0);
        for code in order.shipments.iter().filter_map(|s| s.tracking.as_deref()) {
            assert!(s10_valid(code), "{code}");
        }
    }
    let oldest = history.iter().filter_map(|o| o.modified_at).min().unwrap();
    let newest = history.iter().filter_map(|o| o.modified_at).max().unwrap();
    assert!(start.duration_since(oldest) >= SignedDuration::from_hours(24 * 30));
    assert!(start.duration_since(newest) >= SignedDuration::from_hours(1));
    let statuses: BTreeSet<&str> = history.iter().map(|o| o.status.as_str()).collect();
    for status in [
        "pedido_entregue",
        "pedido_enviado",
        "pedido_cancelado",
        "pedido_pago",
    ] {
        assert!(statuses.contains(status), "no historical order at {status}");
    }
    // Scenario orders are newer than every historical one.
    let created: Vec<Numero> = demo
        .steps()
        .iter()
        .filter(|s| matches!(s.action, Action::Create(_)))
        .map(|s| s.numero)
        .collect();
    assert_eq!(created, [1001, 1002, 1003, 1005, 1004]);
    for expected in demo.expected_notifications() {
        for code in &expected.tracking_codes {
            assert!(s10_valid(code), "{code}");
        }
    }
}

#[test]
fn the_demo_timeline_leaves_room_for_a_10_second_poll() {
    let demo = Scenario::demo("2026-03-02T14:30:00".parse().unwrap());
    let steps = demo.steps();
    // arauto has done its first sync before anything happens, and the first
    // message is due well within the demo's two minutes.
    assert!(steps[0].at >= Duration::from_secs(10));
    let first_message = steps.iter().find(|s| !s.expected.is_empty()).unwrap();
    assert!(first_message.at <= Duration::from_secs(30));
    let duration = demo.duration();
    assert!((Duration::from_secs(150)..=Duration::from_secs(200)).contains(&duration));
    // Each step gets a poll of its own; one order's steps leave time to send.
    for pair in steps.windows(2) {
        assert!(
            pair[1].at - pair[0].at >= Duration::from_secs(12),
            "{} / {}",
            pair[0],
            pair[1]
        );
    }
    let mut last_of: BTreeMap<Numero, Duration> = BTreeMap::new();
    for step in steps {
        if let Some(previous) = last_of.insert(step.numero, step.at) {
            assert!(step.at - previous >= Duration::from_secs(36), "{step}");
        }
    }
}

#[test]
fn step_descriptions_read_like_the_log() {
    let demo = Scenario::demo("2026-03-02T14:30:00".parse().unwrap());
    let lines: Vec<String> = demo.steps().iter().map(ToString::to_string).collect();
    assert_eq!(
        lines[0],
        "pedido 1001 created at aguardando_pagamento: Ana Beatriz Souza, Pix, R$ 374,20"
    );
    assert_eq!(lines[3], "pedido 1001 → pedido_pago");
    assert_eq!(
        lines[8],
        format!("pedido 1002 → pedido_enviado, envio 1 tracking code {SHIPPED_1002}")
    );
    assert_eq!(
        lines[12],
        "pedido 990 touched (only data_modificacao changes)"
    );
    assert_eq!(
        lines[13],
        format!("pedido 1004 envio 2 tracking code {FOOTREST_1004}")
    );
    assert!(lines[4].ends_with("no phone"), "{}", lines[4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_applies_every_step_in_order_with_real_sao_paulo_time() {
    let li = FakeLi::start().await.unwrap();
    li.use_system_clock();
    let store = li.add_store(StoreAuth::api_key("k", "a"));
    let before = li.now();
    let mut demo = Scenario::demo(before);
    let mut seen = Vec::new();
    let outcome = demo
        .run(
            &store,
            Speed::new(2_000.0).unwrap(),
            std::future::pending(),
            |step| {
                seen.push((step.index, step.modified_at));
            },
        )
        .await
        .unwrap();
    let after = li.now();
    assert_eq!(outcome, RunOutcome::Finished { applied: 15 });
    assert_eq!(
        seen.iter().map(|s| s.0).collect::<Vec<_>>(),
        (0..15).collect::<Vec<_>>()
    );
    for (index, modified) in &seen {
        assert!(
            (before..=after).contains(modified),
            "step {index} at {modified}"
        );
    }
    // The fake's system clock is São Paulo wall-clock time (UTC−3).
    let utc_now = jiff::tz::Offset::UTC.to_datetime(jiff::Timestamp::now());
    let offset = utc_now.duration_since(after);
    assert!(
        (SignedDuration::from_mins(179)..=SignedDuration::from_mins(181)).contains(&offset),
        "UTC {utc_now} vs fake {after}"
    );
    assert_eq!(store.numeros().len(), DEMO_HISTORY_LEN + 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_stops_when_cancelled_and_resumes_where_it_stopped() {
    let li = FakeLi::start().await.unwrap();
    let store = li.add_store(StoreAuth::api_key("k", "a"));
    let mut demo = Scenario::demo(li.now());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let stop = Arc::new(Mutex::new(Some(stop)));
    let outcome = demo
        .run(
            &store,
            Speed::new(1_000.0).unwrap(),
            async {
                let _ = stopped.await;
            },
            |step| {
                if step.index == 2
                    && let Some(stop) = stop.lock().unwrap().take()
                {
                    let _ = stop.send(());
                }
            },
        )
        .await
        .unwrap();
    assert_eq!(outcome, RunOutcome::Cancelled { applied: 3 });
    assert_eq!(demo.next_index(), 3);
    assert!(store.order(1003).is_some());
    assert!(store.order(1001).unwrap().status == "aguardando_pagamento");

    let outcome = demo
        .run(
            &store,
            Speed::new(1_000.0).unwrap(),
            std::future::pending(),
            |_| {},
        )
        .await
        .unwrap();
    assert_eq!(outcome, RunOutcome::Finished { applied: 12 });
    assert_eq!(store.order(1001).unwrap().status, "pedido_entregue");
}

#[test]
fn a_failing_step_names_itself_and_is_not_consumed() {
    let (li, store) = fake();
    let mut scenario = Scenario::new("custom", li.now())
        .with_step(Step::new(
            Duration::from_secs(5),
            4242,
            Action::SetStatus("pedido_pago".into()),
        ))
        .with_step(Step::new(
            Duration::from_secs(1),
            4242,
            Action::SetTracking {
                shipment: 3,
                code: Some("AA123456785BR".into()),
            },
        ));
    // Kept in time order whatever order they were added in.
    assert_eq!(scenario.steps()[0].at, Duration::from_secs(1));
    let err = scenario.apply_next(&store).unwrap_err();
    assert!(matches!(err, ScenarioError::Step { index: 0, .. }));
    let message = err.to_string();
    assert!(
        message.contains(
            "scenario \"custom\", step 0 (t+1s: pedido 4242 envio 4 tracking code AA123456785BR)"
        ),
        "{message}"
    );
    assert!(message.contains("no order 4242"), "{message}");
    assert_eq!(scenario.next_index(), 0);

    store.create_order(Order::new().numero(4242));
    let err = scenario.apply_next(&store).unwrap_err().to_string();
    assert!(
        err.contains("order 4242 has no shipment at index 3"),
        "{err}"
    );
}

#[test]
fn custom_scenarios_number_their_expectations_and_add_shipments() {
    let (li, store) = fake();
    let start = li.now();
    let mut scenario = Scenario::new("split", start)
        .with_step(
            Step::new(
                Duration::from_secs(20),
                7,
                Action::AddShipment(arauto_sim::li::Shipment::sedex(990).tracking("AA123456785BR")),
            )
            .expecting(
                ExpectedNotification::new(
                    ExpectedKind::TrackingUpdated,
                    7,
                    "Maria",
                    Some("+5511900000001"),
                )
                .tracking("AA123456785BR"),
            ),
        )
        .with_step(
            Step::new(
                Duration::from_secs(10),
                7,
                Action::Create(Box::new(Order::new().status("pedido_enviado"))),
            )
            .expecting(ExpectedNotification::new(
                ExpectedKind::OrderShipped,
                7,
                "Maria",
                Some("+5511900000001"),
            )),
        );
    let steps: Vec<usize> = scenario
        .expected_notifications()
        .iter()
        .map(|e| e.step)
        .collect();
    assert_eq!(steps, [0, 1]);
    assert_eq!(scenario.duration(), Duration::from_secs(20));
    let created = scenario.apply_next(&store).unwrap().unwrap();
    assert_eq!(created.numero, 7);
    assert_eq!(store.order(7).unwrap().numero, Some(7));
    scenario.apply_next(&store).unwrap().unwrap();
    let order = store.order(7).unwrap();
    assert_eq!(order.shipments.len(), 2);
    assert!(
        order.shipments[1].id.is_some(),
        "the store assigns the new envio's id"
    );
    assert_eq!(
        order.shipments[1].tracking.as_deref(),
        Some("AA123456785BR")
    );
}

#[test]
#[should_panic(expected = "not before the start")]
fn history_modified_after_the_start_is_rejected() {
    let start: DateTime = "2026-03-02T14:30:00".parse().unwrap();
    let _ = Scenario::new("bad", start).with_history(Order::new().numero(1).modified_at(start));
}
