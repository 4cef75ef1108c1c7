//! The plugin against the fake Z-API over real HTTP on 127.0.0.1.

use std::time::Duration;

use ::z_api::ZApi;
use arauto_plugin_sdk::sender::prelude::*;
use arauto_plugin_sdk::sender::testing::{self, Harness};
use arauto_sender_testkit as kit;
use arauto_sim::channels::zapi as fake_zapi;
use arauto_sim::channels::{Endpoint, FakeProvider, Provider, Reply};
use serde_json::json;

const INSTANCE: &str = "3C5A7E0F1B2D";
const INSTANCE_TOKEN: &str = "F7A1B9C3D5E2token";
const CLIENT_TOKEN: &str = "Fe2c3b4a5d6clienttoken";

fn fake() -> FakeProvider {
    kit::start(Provider::ZApi, Some(CLIENT_TOKEN))
}

fn install(fake: &FakeProvider, extra: &[(&str, &str)]) {
    kit::install(
        &[
            ("base_url", &fake.url()),
            ("instance_id", INSTANCE),
            ("instance_token", INSTANCE_TOKEN),
            ("client_token", CLIENT_TOKEN),
        ],
        extra,
    );
}

fn message(phone: Option<&str>) -> Message {
    let mut msg = kit::message();
    msg.idempotency_key = "loja-1/1042/order-delivered/zapi".into();
    msg.recipient.phone = phone.map(str::to_owned);
    msg.recipient.name = None;
    msg.recipient.first_name = None;
    msg.text = "Seu pedido #1042 foi entregue. Obrigado!".into();
    msg.template = None;
    msg.meta.store = "loja-1".into();
    msg.meta.order_number = "1042".into();
    msg.meta.notification = NotificationKind::OrderDelivered;
    msg.event.notification = NotificationKind::OrderDelivered;
    msg.meta.job_id = "job-5".into();
    msg.meta.channel = "zapi".into();
    msg
}

#[test]
fn sends_text_with_the_exact_wire_format_and_returns_the_message_id() {
    let fake = fake();
    install(&fake, &[("delay_message", "2"), ("delay_typing", "3")]);
    let receipt = ZApi::send(message(Some("+5511987654321"))).unwrap_or_else(|e| panic!("{e:?}"));
    let req = &fake.requests()[0];
    assert_eq!(req.method, "POST");
    assert_eq!(
        req.path,
        format!("/instances/{INSTANCE}/token/{INSTANCE_TOKEN}/send-text")
    );
    assert_eq!(req.header("client-token"), Some(CLIENT_TOKEN));
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(
        req.body_json(),
        json!({"phone": "5511987654321", "message": "Seu pedido #1042 foi entregue. Obrigado!",
               "delayMessage": 2, "delayTyping": 3})
    );
    assert_eq!(
        receipt.provider_message_id.as_deref(),
        Some(fake.received()[0].provider_message_id.as_str())
    );
    let logged = testing::logs();
    assert!(logged.iter().any(|(_, _, fields)| {
        fields
            .iter()
            .any(|(k, v)| k == "zaap_id" && v.starts_with("3999"))
    }));
}

#[test]
fn the_documented_405_and_415_are_permanent() {
    let fake = fake();
    install(&fake, &[]);
    fake.enqueue(
        Endpoint::Send,
        fake_zapi::error(405, "Method Not Allowed", "use POST"),
    );
    assert!(matches!(
        kit::err(ZApi::send(message(Some("+5511987654321")))),
        PluginError::Permanent(_)
    ));
    fake.enqueue(
        Endpoint::Send,
        fake_zapi::error(415, "Unsupported Media Type", "Content-Type"),
    );
    let e = kit::err(ZApi::send(message(Some("+5511987654321"))));
    assert!(matches!(e, PluginError::Permanent(_)), "{e:?}");
    assert!(kit::text_of(&e).contains("HTTP 415"));
}

#[test]
fn credential_and_session_problems_halt_the_channel_and_never_show_the_tokens() {
    let fake = fake();
    fake.require_auth("another-client-token");
    install(&fake, &[]);
    let e = kit::err(ZApi::send(message(Some("+5511987654321"))));
    assert!(matches!(e, PluginError::Misconfigured(_)), "{e:?}");
    assert!(kit::text_of(&e).contains("`client_token`"), "{e:?}");
    fake.require_auth(CLIENT_TOKEN);

    fake.enqueue(
        Endpoint::Send,
        fake_zapi::error(400, "You are not connected.", "restore the session"),
    );
    assert!(matches!(
        kit::err(ZApi::send(message(Some("+5511987654321")))),
        PluginError::Misconfigured(_)
    ));
    fake.enqueue(
        Endpoint::Send,
        fake_zapi::error(401, "Unauthorized", "bad token"),
    );
    assert!(matches!(
        kit::err(ZApi::send(message(Some("+5511987654321")))),
        PluginError::Misconfigured(_)
    ));

    // An unknown path (wrong instance/token): 404 from the fake.
    testing::install(
        Harness::new()
            .setting("base_url", &format!("{}/v2", fake.url()))
            .setting("instance_id", INSTANCE)
            .setting("instance_token", INSTANCE_TOKEN)
            .setting("client_token", CLIENT_TOKEN)
            .transport(testing::http_transport(Duration::from_secs(5))),
    );
    let e = kit::err(ZApi::send(message(Some("+5511987654321"))));
    assert!(matches!(e, PluginError::Misconfigured(_)), "{e:?}");

    // Transport errors carry the URL: the token in its path is redacted.
    testing::install(
        Harness::new()
            .setting("base_url", "http://127.0.0.1:9")
            .setting("instance_id", INSTANCE)
            .setting("instance_token", INSTANCE_TOKEN)
            .setting("client_token", CLIENT_TOKEN)
            .transport(testing::http_transport(Duration::from_secs(5))),
    );
    let e = kit::err(ZApi::send(message(Some("+5511987654321"))));
    assert!(matches!(e, PluginError::Retryable(_)), "{e:?}");
    assert!(
        kit::text_of(&e).contains("/token/<redacted>/send-text"),
        "{e:?}"
    );
    assert!(!kit::text_of(&e).contains(INSTANCE_TOKEN) && !kit::text_of(&e).contains(CLIENT_TOKEN));
}

#[test]
fn server_errors_rate_limits_and_dropped_connections_are_retryable() {
    let fake = fake();
    install(&fake, &[]);
    fake.enqueue(
        Endpoint::Send,
        fake_zapi::error(500, "Internal Server Error", "oops"),
    );
    assert!(matches!(
        kit::err(ZApi::send(message(Some("+5511987654321")))),
        PluginError::Retryable(_)
    ));
    fake.enqueue(
        Endpoint::Send,
        Reply::json(429, json!({"error": "Too many requests"})).with_header("retry-after", "3"),
    );
    match kit::err(ZApi::send(message(Some("+5511987654321")))) {
        PluginError::Retryable(e) => assert_eq!(e.retry_after_ms, Some(3_000)),
        other => panic!("{other:?}"),
    }
    fake.enqueue(Endpoint::Send, Reply::drop_connection());
    assert!(matches!(
        kit::err(ZApi::send(message(Some("+5511987654321")))),
        PluginError::Retryable(_)
    ));
    fake.enqueue(
        Endpoint::Send,
        fake_zapi::error(400, "Bad Request", "invalid phone"),
    );
    assert!(matches!(
        kit::err(ZApi::send(message(Some("+5511987654321")))),
        PluginError::Permanent(_)
    ));
}

#[test]
fn a_number_without_whatsapp_is_unreachable() {
    let fake = fake();
    install(&fake, &[]);
    fake.enqueue(
        Endpoint::Send,
        fake_zapi::error(400, "Bad Request", "Phone number does not exist"),
    );
    let why = kit::unreachable(ZApi::send(message(Some("+5511987654321"))));
    assert!(why.contains("not on WhatsApp"), "{why}");
}

#[test]
fn a_missing_recipient_is_permanent_and_sends_nothing() {
    let fake = fake();
    install(&fake, &[]);
    let e = kit::err(ZApi::send(message(None)));
    assert!(
        matches!(&e, PluginError::Permanent(m) if m.contains("no usable mobile phone")),
        "{e:?}"
    );
    assert!(fake.requests().is_empty());
}

#[test]
fn check_reads_the_instance_status() {
    let fake = fake();
    install(&fake, &[]);
    ZApi::check().unwrap_or_else(|e| panic!("{e:?}"));
    let req = &fake.requests()[0];
    assert_eq!(req.method, "GET");
    assert_eq!(
        req.path,
        format!("/instances/{INSTANCE}/token/{INSTANCE_TOKEN}/status")
    );
    assert_eq!(req.header("client-token"), Some(CLIENT_TOKEN));
    fake.enqueue(Endpoint::Check, fake_zapi::disconnected());
    let e = kit::err(ZApi::check());
    assert!(
        matches!(&e, PluginError::Misconfigured(m) if m.contains("restore the session")),
        "{e:?}"
    );
}

#[test]
fn settings_are_validated_and_declared() {
    testing::install(
        Harness::new()
            .setting("instance_id", INSTANCE)
            .setting("instance_token", INSTANCE_TOKEN),
    );
    assert!(
        matches!(kit::err(ZApi::check()), PluginError::Misconfigured(m) if m.contains("`client_token`"))
    );
    let fake = fake();
    install(&fake, &[("delay_message", "30")]);
    assert!(
        matches!(kit::err(ZApi::check()), PluginError::Misconfigured(m) if m.contains("`delay_message`"))
    );
    let info = ZApi::info();
    assert_eq!(info.recipient, RecipientNeed::CustomerPhone);
    assert_eq!(info.default_min_interval_ms, 20_000);
    assert_eq!(info.default_daily_cap, None);
    assert!(!info.idempotent, "the provider has no idempotency key");
    let info = info.plugin;
    let secrets: Vec<_> = info
        .config_keys
        .iter()
        .filter(|k| k.secret)
        .map(|k| k.name.as_str())
        .collect();
    assert_eq!(secrets, ["instance_token", "client_token"]);
    assert_eq!(info.default_hosts, ["https://api.z-api.io"]);
}

/// A 200 with an HTML page (a proxy's or captive portal's, a wrong base URL)
/// never came from the provider: nothing was sent, so it must not count as
/// sent. Misconfigured pauses the channel and the message waits.
#[test]
fn an_html_page_with_status_200_is_misconfigured_not_sent() {
    let fake = fake();
    install(&fake, &[]);
    fake.enqueue(
        Endpoint::Send,
        Reply::raw(200, "text/html", "<html><title>Portal login</title></html>"),
    );
    match ZApi::send(message(Some("+5511987654321"))) {
        Err(PluginError::Misconfigured(why)) => {
            assert!(why.contains("nothing was sent"), "{why}");
            assert!(why.contains("Portal login"), "{why}");
        }
        other => panic!("expected misconfigured, got {other:?}"),
    }
}
