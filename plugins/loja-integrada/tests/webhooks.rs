//! Pushes, end to end against the fake LI: subscribing (`register-push` /
//! `unregister-push` → `PUT`/`DELETE /webhooks/v1/pedido`), authenticating
//! the deliveries the fake sends in LI's push shape (`verify-push`), and
//! reading the orders a push named (`poll` with `look-at`).

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use arauto_plugin_sdk::connector::{Connector, PluginError, PushHint, PushRequest};
use arauto_sim::li::{DateTime, Order, PushRecord, WRONG_TOKEN, WebhookEvent};
use common::*;
use loja_integrada::LojaIntegrada;

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
