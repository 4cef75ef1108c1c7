//! The plugin against a fake webhook receiver over real HTTP on 127.0.0.1,
//! with the signature checked by an independent implementation of the
//! Standard Webhooks verification algorithm.

use std::time::Duration;

use ::webhook::{Webhook, event_type, signature, webhook_id};
use arauto_plugin_sdk::event;
use arauto_plugin_sdk::sender::prelude::*;
use arauto_plugin_sdk::sender::testing;
use arauto_sender_testkit::{self as kit, err};
use arauto_sim::channels::webhook as receiver;
use arauto_sim::channels::{Endpoint, FakeProvider, Provider, RecordedRequest, Reply};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::json;
use sha2::Sha256;

/// 32 random bytes in the spec's serialisation.
const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD8GcQO+TFzhs=";
/// The harness clock: 2024-05-10T12:00:00Z.
const NOW: u64 = 1_715_342_400;

/// Standard Webhooks verification, written from the spec and independent of
/// the plugin: decode the `whsec_` secret, rebuild `{id}.{timestamp}.{body}`,
/// HMAC-SHA256 it, and compare in constant time against each `v1,` entry of
/// the space-separated signature header; reject timestamps more than five
/// minutes from `now`.
fn verify(secret: &str, req: &RecordedRequest, now: u64) -> Result<(), String> {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .map_err(|e| format!("secret is not base64: {e}"))?;
    let id = req.header("webhook-id").ok_or("missing webhook-id")?;
    let timestamp = req
        .header("webhook-timestamp")
        .ok_or("missing webhook-timestamp")?;
    let signatures = req
        .header("webhook-signature")
        .ok_or("missing webhook-signature")?;
    let ts: u64 = timestamp
        .parse()
        .map_err(|_| "webhook-timestamp is not an integer")?;
    if ts.abs_diff(now) > 300 {
        return Err(format!("timestamp {ts} outside the tolerance window"));
    }
    let mut signed = format!("{id}.{timestamp}.").into_bytes();
    signed.extend_from_slice(&req.body);
    for entry in signatures.split(' ') {
        let Some(("v1", encoded)) = entry.split_once(',') else {
            continue;
        };
        let Ok(candidate) = STANDARD.decode(encoded) else {
            continue;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|e| e.to_string())?;
        mac.update(&signed);
        if mac.verify_slice(&candidate).is_ok() {
            return Ok(());
        }
    }
    Err("no v1 signature matches".into())
}

fn fake() -> FakeProvider {
    kit::start(Provider::Webhook, None)
}

fn install(fake: &FakeProvider, extra: &[(&str, &str)]) {
    let url = format!("{}/hooks/arauto?source=loja", fake.url());
    kit::install(&[("url", &url), ("secret", SECRET)], extra);
}

/// A notification without a customer phone: the webhook needs none.
fn message(key: &str, kind: NotificationKind) -> Message {
    let mut msg = kit::message();
    msg.idempotency_key = key.into();
    msg.recipient.phone = None;
    msg.meta.notification = kind;
    msg.event.notification = kind;
    msg
}

#[test]
fn posts_a_signed_standard_webhooks_event_that_an_independent_verifier_accepts() {
    let fake = fake();
    install(&fake, &[]);
    let receipt = Webhook::send(message(
        "loja-1:1042:order-shipped:erp",
        NotificationKind::OrderShipped,
    ))
    .unwrap_or_else(|e| panic!("{e:?}"));

    let req = &fake.requests()[0];
    assert_eq!(
        (req.method.as_str(), req.path.as_str(), req.query.as_deref()),
        ("POST", "/hooks/arauto", Some("source=loja"))
    );
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(
        req.header("webhook-id"),
        Some("loja-1:1042:order-shipped:erp")
    );
    assert_eq!(
        req.header("webhook-timestamp"),
        Some(NOW.to_string().as_str())
    );
    assert!(
        req.header("webhook-signature")
            .is_some_and(|s| s.starts_with("v1,"))
    );
    let sent = message(
        "loja-1:1042:order-shipped:erp",
        NotificationKind::OrderShipped,
    );
    assert_eq!(
        req.body_json(),
        json!({"type": "order.shipped", "timestamp": "2024-05-10T12:00:00Z",
               "data": event::to_value(&sent.event)}),
        "the data is the documented event JSON (docs/events.md)"
    );
    let data = &req.body_json()["data"];
    assert_eq!(data["event_version"], 1);
    assert_eq!(data["notification"], "order-shipped");
    assert_eq!(data["order"]["total"], 10880, "amounts are integer cents");
    assert_eq!(verify(SECRET, req, NOW), Ok(()));
    assert_eq!(
        receipt.provider_message_id.as_deref(),
        Some("loja-1:1042:order-shipped:erp")
    );

    // Negative cases: a different secret, a tampered body, a stale timestamp.
    let other_secret = format!("whsec_{}", STANDARD.encode([7u8; 32]));
    assert_eq!(
        verify(&other_secret, req, NOW),
        Err("no v1 signature matches".into())
    );
    let mut tampered = req.clone();
    tampered.body = req.body_text().replace("10880", "1088").into_bytes();
    assert!(verify(SECRET, &tampered, NOW).is_err());
    assert!(verify(SECRET, req, NOW + 3600).is_err());
}

#[test]
fn the_signature_reproduces_the_specs_published_test_vector() {
    let key = STANDARD
        .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        .unwrap_or_default();
    let body = br#"{"test": 2432232314}"#;
    let sig = signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
    assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    let req = RecordedRequest {
        method: "POST".into(),
        path: "/".into(),
        query: None,
        headers: vec![
            ("webhook-id".into(), "msg_p5jXN8AQM9LWM0D4loKWxJek".into()),
            ("webhook-timestamp".into(), "1614265330".into()),
            ("webhook-signature".into(), format!("v1,bm9wZQ== {sig}")),
        ],
        body: body.to_vec(),
        endpoint: None,
    };
    assert_eq!(
        verify("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", &req, 1614265330),
        Ok(())
    );
}

#[test]
fn the_webhook_id_is_stable_across_retries_and_never_contains_a_dot() {
    let fake = fake();
    install(&fake, &[]);
    Webhook::send(message(
        "loja.exemplo/1042/order-paid/erp",
        NotificationKind::OrderPaid,
    ))
    .unwrap_or_else(|e| panic!("{e:?}"));
    testing::set_now_unix_ms((NOW + 90) * 1000);
    let mut retry = message(
        "loja.exemplo/1042/order-paid/erp",
        NotificationKind::OrderPaid,
    );
    retry.attempt = 2;
    Webhook::send(retry).unwrap_or_else(|e| panic!("{e:?}"));
    let requests = fake.requests();
    let ids: Vec<_> = requests
        .iter()
        .map(|r| r.header("webhook-id").unwrap_or_default().to_owned())
        .collect();
    assert_eq!(ids[0], ids[1]);
    assert!(
        ids[0].starts_with("msg_") && !ids[0].contains('.'),
        "{}",
        ids[0]
    );
    assert_eq!(ids[0], webhook_id("loja.exemplo/1042/order-paid/erp"));
    assert_eq!(
        requests[1].header("webhook-timestamp"),
        Some((NOW + 90).to_string().as_str())
    );
    assert_ne!(
        requests[0].header("webhook-signature"),
        requests[1].header("webhook-signature")
    );
    assert_eq!(verify(SECRET, &requests[1], NOW + 90), Ok(()));
    assert_eq!(requests[0].body_json()["type"], "order.paid");
}

#[test]
fn event_types_follow_the_documented_mapping() {
    use NotificationKind as K;
    let table = [
        (K::WaitingPayment, "order.waiting_payment"),
        (K::OrderPaid, "order.paid"),
        (K::OrderProcessing, "order.processing"),
        (K::OrderShipped, "order.shipped"),
        (K::ReadyForPickup, "order.ready_for_pickup"),
        (K::OrderDelivered, "order.delivered"),
        (K::OrderCanceled, "order.canceled"),
        (K::OrderRefunded, "order.refunded"),
        (K::TrackingUpdated, "order.tracking_updated"),
        (K::BoletoReminder, "order.boleto_reminder"),
        (K::PixReminder, "order.pix_reminder"),
        (K::AbandonedCart, "order.abandoned_cart"),
    ];
    for (kind, expected) in table {
        assert_eq!(event_type(kind), expected);
    }
}

#[test]
fn extra_headers_come_from_a_json_object_and_header_keys() {
    let fake = fake();
    install(
        &fake,
        &[
            ("headers", r#"{"X-Api-Key": "k-123456", "X-Loja": "a"}"#),
            ("header.X-Loja", "b"),
            ("header.Authorization", "Bearer zz-top-secret"),
        ],
    );
    Webhook::send(message("k1", NotificationKind::OrderPaid)).unwrap_or_else(|e| panic!("{e:?}"));
    let req = &fake.requests()[0];
    assert_eq!(req.header("x-api-key"), Some("k-123456"));
    assert_eq!(req.header_all("x-loja"), ["b"]);
    assert_eq!(req.header("authorization"), Some("Bearer zz-top-secret"));
    assert_eq!(verify(SECRET, req, NOW), Ok(()));

    // Their values never show in errors (receivers may echo headers back).
    fake.enqueue(
        Endpoint::Send,
        Reply::raw(400, "text/plain", "bad Authorization: Bearer zz-top-secret"),
    );
    let e = err(Webhook::send(message("k1", NotificationKind::OrderPaid)));
    assert!(
        matches!(&e, PluginError::Permanent(m) if !m.contains("zz-top-secret") && m.contains("<redacted>")),
        "{e:?}"
    );

    install(&fake, &[("header.Webhook-Signature", "v1,forged")]);
    assert!(
        matches!(err(Webhook::send(message("k1", NotificationKind::OrderPaid))), PluginError::Misconfigured(m) if m.contains("header.Webhook-Signature"))
    );
    install(&fake, &[("headers", "[1,2]")]);
    assert!(
        matches!(err(Webhook::check()), PluginError::Misconfigured(m) if m.contains("`headers`"))
    );
}

#[test]
fn responses_map_to_the_documented_classes() {
    let fake = fake();
    install(&fake, &[]);
    for status in [200, 201, 202, 204] {
        fake.enqueue(Endpoint::Send, receiver::status(status));
        assert!(
            Webhook::send(message("k", NotificationKind::OrderPaid)).is_ok(),
            "HTTP {status}"
        );
    }
    fake.enqueue(Endpoint::Send, receiver::gone());
    assert!(
        matches!(err(Webhook::send(message("k", NotificationKind::OrderPaid))), PluginError::Misconfigured(m) if m.contains("410"))
    );
    fake.enqueue(Endpoint::Send, receiver::too_many_requests(120));
    assert!(
        matches!(err(Webhook::send(message("k", NotificationKind::OrderPaid))), PluginError::Retryable(e) if e.retry_after_ms == Some(120_000))
    );
    fake.enqueue(
        Endpoint::Send,
        receiver::status(503).with_header("retry-after", "Fri, 10 May 2024 12:00:30 GMT"),
    );
    assert!(
        matches!(err(Webhook::send(message("k", NotificationKind::OrderPaid))), PluginError::Retryable(e) if e.retry_after_ms == Some(30_000))
    );
    for status in [500, 502, 504, 408] {
        fake.enqueue(Endpoint::Send, receiver::status(status));
        assert!(
            matches!(err(Webhook::send(message("k", NotificationKind::OrderPaid))), PluginError::Retryable(e) if e.retry_after_ms.is_none()),
            "HTTP {status}"
        );
    }
    for status in [400, 404, 409, 422] {
        fake.enqueue(Endpoint::Send, receiver::status(status));
        assert!(
            matches!(
                err(Webhook::send(message("k", NotificationKind::OrderPaid))),
                PluginError::Permanent(_)
            ),
            "HTTP {status}"
        );
    }
    for status in [401, 403] {
        fake.enqueue(Endpoint::Send, receiver::status(status));
        assert!(
            matches!(
                err(Webhook::send(message("k", NotificationKind::OrderPaid))),
                PluginError::Misconfigured(_)
            ),
            "HTTP {status}"
        );
    }
    let before = fake.requests().len();
    fake.enqueue(
        Endpoint::Send,
        receiver::redirect("http://127.0.0.1:9/elsewhere"),
    );
    let e = err(Webhook::send(message("k", NotificationKind::OrderPaid)));
    assert!(
        matches!(&e, PluginError::Permanent(m) if m.contains("redirects are not followed") && m.contains("/elsewhere")),
        "{e:?}"
    );
    assert_eq!(
        fake.requests().len(),
        before + 1,
        "the redirect was not followed"
    );
    fake.enqueue(Endpoint::Send, Reply::drop_connection());
    assert!(matches!(
        err(Webhook::send(message("k", NotificationKind::OrderPaid))),
        PluginError::Retryable(_)
    ));
}

#[test]
fn a_receiver_slower_than_timeout_ms_is_retryable() {
    let fake = fake();
    install(&fake, &[("timeout_ms", "1000")]);
    fake.enqueue(
        Endpoint::Send,
        Reply::delayed(Duration::from_secs(4), receiver::status(200)),
    );
    let e = err(Webhook::send(message("k", NotificationKind::OrderPaid)));
    assert!(
        matches!(&e, PluginError::Retryable(r) if r.message.contains("timed out")),
        "{e:?}"
    );
    assert_eq!(testing::requests()[0].timeout_ms, Some(1000));
}

#[test]
fn the_secret_must_be_standard_webhooks_base64_and_is_never_echoed() {
    let fake = fake();
    for bad in ["whsec_not base64!!", "whsec_c2hvcnQ=", "hunter2hunter2"] {
        install(&fake, &[("secret", bad)]);
        let e = err(Webhook::check());
        assert!(
            matches!(&e, PluginError::Misconfigured(m) if m.contains("`secret`") && !m.contains(bad)),
            "{bad}: {e:?}"
        );
        assert!(matches!(
            err(Webhook::send(message("k", NotificationKind::OrderPaid))),
            PluginError::Misconfigured(_)
        ));
    }
    assert!(fake.requests().is_empty());
    // The bare base64 form is accepted as well.
    let bare = SECRET.trim_start_matches("whsec_");
    install(&fake, &[("secret", bare)]);
    Webhook::send(message("k", NotificationKind::OrderPaid)).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(verify(SECRET, &fake.requests()[0], NOW), Ok(()));
}

#[test]
fn check_posts_a_signed_ping() {
    let fake = fake();
    install(&fake, &[]);
    Webhook::check().unwrap_or_else(|e| panic!("{e:?}"));
    let pings = fake.requests_to(Endpoint::Check);
    assert_eq!(pings.len(), 1);
    let ping = &pings[0];
    assert_eq!(
        ping.body_json(),
        json!({"type": "ping", "timestamp": "2024-05-10T12:00:00Z", "data": {}})
    );
    assert_eq!(
        ping.header("webhook-id"),
        Some(format!("ping_{NOW}").as_str())
    );
    assert_eq!(verify(SECRET, ping, NOW), Ok(()));
    assert!(
        fake.received().is_empty(),
        "a ping is not a delivered event"
    );
    fake.enqueue(Endpoint::Check, receiver::gone());
    assert!(matches!(
        err(Webhook::check()),
        PluginError::Misconfigured(_)
    ));
}

#[test]
fn an_order_without_any_phone_is_delivered_with_its_event() {
    let fake = fake();
    install(&fake, &[]);
    let mut msg = message("k", NotificationKind::OrderPaid);
    msg.event.order.customer.phones.clear();
    msg.event.order.total_cents = None;
    Webhook::send(msg).unwrap_or_else(|e| panic!("{e:?}"));
    let data = &fake.requests()[0].body_json()["data"];
    assert_eq!(data["order"]["customer"]["phones"], json!([]));
    assert!(
        data["order"]["total"].is_null(),
        "unknown amounts are null, never 0"
    );
}

#[test]
fn info_declares_a_settings_destination_no_pace_and_the_webhook_id_dedupe() {
    let info = Webhook::info();
    assert_eq!(info.recipient, RecipientNeed::None);
    assert_eq!(info.default_min_interval_ms, 0);
    assert_eq!(info.default_daily_cap, None);
    assert!(info.idempotent);
    let keys = &info.plugin.config_keys;
    assert!(
        keys.iter()
            .any(|k| k.name == "secret" && k.secret && k.required)
    );
    assert!(keys.iter().any(|k| k.name == "headers" && k.secret));
}
