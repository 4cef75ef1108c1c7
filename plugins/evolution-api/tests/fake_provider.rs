//! The plugin against the fake Evolution API over real HTTP on 127.0.0.1.

use ::evolution_api::{EvolutionApi, without_ninth_digit};
use arauto_plugin_sdk::sender::prelude::*;
use arauto_plugin_sdk::sender::testing::{self, Harness};
use arauto_sender_testkit as kit;
use arauto_sim::channels::evolution as fake_evolution;
use arauto_sim::channels::{Endpoint, FakeProvider, Provider, Reply};
use serde_json::json;

const API_KEY: &str = "B6D711FCDE4D4FD5936544120E713976";

fn fake() -> FakeProvider {
    kit::start(Provider::EvolutionApi, Some(API_KEY))
}

fn install(fake: &FakeProvider, extra: &[(&str, &str)]) {
    let base_url = format!("{}/", fake.url());
    kit::install(
        &[
            ("base_url", &base_url),
            ("instance", "loja principal"),
            ("api_key", API_KEY),
        ],
        extra,
    );
}

fn message(phone: Option<&str>) -> Message {
    let mut msg = kit::message();
    msg.idempotency_key = "loja-1/1042/order-paid/evo".into();
    msg.recipient.phone = phone.map(str::to_owned);
    msg.recipient.name = None;
    msg.recipient.first_name = None;
    msg.text = "Oba! Recebemos o pagamento do pedido #1042.".into();
    msg.meta.store = "loja-1".into();
    msg.meta.order_number = "1042".into();
    msg.meta.notification = NotificationKind::OrderPaid;
    msg.event.notification = NotificationKind::OrderPaid;
    msg.meta.job_id = "job-9".into();
    msg.meta.channel = "evo".into();
    msg
}

#[test]
fn sends_text_with_the_exact_wire_format_and_returns_key_id_and_remote_jid() {
    let fake = fake();
    install(&fake, &[]);
    let receipt =
        EvolutionApi::send(message(Some("+5511987654321"))).unwrap_or_else(|e| panic!("{e:?}"));
    let req = &fake.requests()[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/message/sendText/loja%20principal");
    assert_eq!(req.header("apikey"), Some(API_KEY));
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(
        req.body_json(),
        json!({"number": "5511987654321", "text": "Oba! Recebemos o pagamento do pedido #1042."})
    );
    assert_eq!(
        receipt.provider_message_id.as_deref(),
        Some(fake.received()[0].provider_message_id.as_str())
    );
    assert!(
        receipt
            .provider_message_id
            .as_deref()
            .is_some_and(|id| id.starts_with("BAE5"))
    );
    assert_eq!(
        receipt.recipient_id.as_deref(),
        Some("5511987654321@s.whatsapp.net")
    );
}

#[test]
fn delay_and_link_preview_are_sent_when_configured() {
    let fake = fake();
    install(&fake, &[("delay_ms", "1200"), ("link_preview", "false")]);
    EvolutionApi::send(message(Some("+5511987654321"))).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        fake.requests()[0].body_json(),
        json!({"number": "5511987654321", "text": "Oba! Recebemos o pagamento do pedido #1042.",
               "delay": 1200, "linkPreview": false})
    );
}

#[test]
fn not_on_whatsapp_retries_once_without_the_ninth_digit_then_is_unreachable() {
    let fake = fake();
    install(&fake, &[]);
    fake.set_default(Endpoint::Send, fake_evolution::not_on_whatsapp());
    let why = kit::unreachable(EvolutionApi::send(message(Some("+5511987654321"))));
    assert!(
        why.contains("número não está no WhatsApp: 5511987654321"),
        "{why}"
    );
    assert!(why.contains("551187654321"), "{why}");
    let numbers: Vec<_> = fake
        .requests()
        .iter()
        .map(|r| r.body_json()["number"].clone())
        .collect();
    assert_eq!(numbers, vec![json!("5511987654321"), json!("551187654321")]);
}

#[test]
fn the_old_twelve_digit_form_is_used_when_only_it_exists() {
    let fake = fake();
    install(&fake, &[]);
    fake.enqueue(Endpoint::Send, fake_evolution::not_on_whatsapp());
    let receipt =
        EvolutionApi::send(message(Some("+5592987654321"))).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        receipt.recipient_id.as_deref(),
        Some("559287654321@s.whatsapp.net")
    );
    assert_eq!(fake.received()[0].to, "559287654321");
}

#[test]
fn no_ninth_digit_retry_when_disabled_or_not_applicable() {
    let fake = fake();
    install(&fake, &[("retry_without_ninth_digit", "false")]);
    fake.set_default(Endpoint::Send, fake_evolution::not_on_whatsapp());
    let why = kit::unreachable(EvolutionApi::send(message(Some("+5511987654321"))));
    assert_eq!(
        why,
        "número não está no WhatsApp: 5511987654321 (Evolution API exists:false)"
    );
    install(&fake, &[]);
    // A foreign number has no ninth-digit variant.
    kit::unreachable(EvolutionApi::send(message(Some("+351912345678"))));
    assert_eq!(fake.requests().len(), 2);
    assert_eq!(
        without_ninth_digit("5511912345678"),
        None,
        "9 1xxx was never an 8-digit mobile"
    );
    assert_eq!(
        without_ninth_digit("5511987654321").as_deref(),
        Some("551187654321")
    );
}

#[test]
fn schema_errors_are_permanent_auth_and_instance_errors_halt_and_5xx_retries() {
    let fake = fake();
    install(&fake, &[]);
    fake.enqueue(
        Endpoint::Send,
        fake_evolution::bad_request(&["instance requires property \"text\""]),
    );
    let why = kit::permanent(EvolutionApi::send(message(Some("+5511987654321"))));
    assert!(why.contains("instance requires property \"text\""), "{why}");

    fake.enqueue(Endpoint::Send, fake_evolution::instance_not_found());
    let why = kit::misconfigured(EvolutionApi::send(message(Some("+5511987654321"))));
    assert!(
        why.contains("instance does not exist") && why.contains("`instance`"),
        "{why}"
    );

    fake.enqueue(
        Endpoint::Send,
        fake_evolution::bad_request(&["Method not available on WhatsApp Business API"]),
    );
    kit::misconfigured(EvolutionApi::send(message(Some("+5511987654321"))));

    fake.enqueue(Endpoint::Send, fake_evolution::server_error());
    let e = kit::retryable(EvolutionApi::send(message(Some("+5511987654321"))));
    assert!(e.message.contains("Connection Closed"), "{}", e.message);
    fake.enqueue(
        Endpoint::Send,
        Reply::raw(503, "text/html", "<h1>down</h1>").with_header("retry-after", "9"),
    );
    kit::retryable(EvolutionApi::send(message(Some("+5511987654321"))));
    fake.enqueue(
        Endpoint::Send,
        Reply::json(429, json!({})).with_header("retry-after", "9"),
    );
    assert_eq!(
        kit::retryable(EvolutionApi::send(message(Some("+5511987654321")))).retry_after_ms,
        Some(9_000)
    );
    fake.enqueue(Endpoint::Send, Reply::drop_connection());
    kit::retryable(EvolutionApi::send(message(Some("+5511987654321"))));
}

#[test]
fn a_wrong_api_key_halts_the_channel_without_leaking_it() {
    let fake = fake();
    fake.require_auth("the-right-key");
    install(&fake, &[]);
    let why = kit::misconfigured(EvolutionApi::send(message(Some("+5511987654321"))));
    assert!(
        why.contains("HTTP 401") && why.contains("`api_key`"),
        "{why}"
    );
    assert!(!why.contains(API_KEY));
}

#[test]
fn a_missing_or_malformed_recipient_is_permanent_and_sends_nothing() {
    let fake = fake();
    install(&fake, &[]);
    assert!(kit::permanent(EvolutionApi::send(message(None))).contains("no usable mobile phone"));
    assert!(kit::permanent(EvolutionApi::send(message(Some("5511987654321")))).contains("E.164"));
    assert!(fake.requests().is_empty());
}

#[test]
fn check_asks_for_the_connection_state() {
    let fake = fake();
    install(&fake, &[]);
    EvolutionApi::check().unwrap_or_else(|e| panic!("{e:?}"));
    let req = &fake.requests()[0];
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("GET", "/instance/connectionState/loja%20principal")
    );
    assert_eq!(req.header("apikey"), Some(API_KEY));

    fake.enqueue(Endpoint::Check, fake_evolution::connection_state("close"));
    assert!(kit::misconfigured(EvolutionApi::check()).contains("QR code"));
    fake.enqueue(
        Endpoint::Check,
        fake_evolution::connection_state("connecting"),
    );
    kit::retryable(EvolutionApi::check());
    fake.enqueue(Endpoint::Check, fake_evolution::instance_not_found());
    kit::misconfigured(EvolutionApi::check());
}

#[test]
fn settings_are_validated_and_name_the_key() {
    testing::install(
        Harness::new()
            .setting("instance", "x")
            .setting("api_key", "k"),
    );
    assert!(kit::misconfigured(EvolutionApi::check()).contains("`base_url`"));
    testing::install(
        Harness::new()
            .setting("base_url", "evolution.local")
            .setting("instance", "x")
            .setting("api_key", "k"),
    );
    assert!(kit::misconfigured(EvolutionApi::check()).contains("`base_url`"));
    testing::install(
        Harness::new()
            .setting("base_url", "http://127.0.0.1:9")
            .setting("instance", "x")
            .setting("api_key", "k")
            .setting("delay_ms", "soon"),
    );
    assert!(kit::misconfigured(EvolutionApi::check()).contains("`delay_ms`"));
    let info = EvolutionApi::info();
    assert_eq!(info.recipient, RecipientNeed::CustomerPhone);
    assert_eq!(info.default_min_interval_ms, 20_000);
    assert_eq!(info.default_daily_cap, None);
    assert!(!info.idempotent, "the provider has no idempotency key");
    let info = info.plugin;
    assert!(
        info.config_keys
            .iter()
            .any(|k| k.name == "api_key" && k.secret && k.required)
    );
    assert!(info.default_hosts.is_empty());
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
    match EvolutionApi::send(message(Some("+5511987654321"))) {
        Err(PluginError::Misconfigured(why)) => {
            assert!(why.contains("nothing was sent"), "{why}");
            assert!(why.contains("Portal login"), "{why}");
        }
        other => panic!("expected misconfigured, got {other:?}"),
    }
}
