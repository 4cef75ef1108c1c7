//! The plugin against the fake WhatsApp Cloud API over real HTTP on 127.0.0.1.

use std::time::Duration;

use ::whatsapp_cloud::{CodeClass, WhatsAppCloud, classify_code};
use arauto_plugin_sdk::sender::prelude::*;
use arauto_plugin_sdk::sender::testing::{self, Harness};
use arauto_sender_testkit as kit;
use arauto_sim::channels::whatsapp_cloud as meta;
use arauto_sim::channels::{Endpoint, FakeProvider, Provider, Reply};
use serde_json::json;

const TOKEN: &str = "EAAGm0PX4ZCpsBAtesttoken";
const PHONE_ID: &str = "106540352242922";

fn fake() -> FakeProvider {
    kit::start(Provider::WhatsAppCloud, Some(TOKEN))
}

fn install(fake: &FakeProvider, extra: &[(&str, &str)]) {
    kit::install(
        &[
            ("access_token", TOKEN),
            ("phone_number_id", PHONE_ID),
            ("base_url", &fake.url()),
        ],
        extra,
    );
}

fn message(template: Option<TemplateRef>) -> Message {
    let mut msg = kit::message();
    msg.idempotency_key = "loja-1/1042/order-shipped/whatsapp".into();
    msg.recipient.phone = Some("+5511987654321".into());
    msg.recipient.name = Some("Maria Silva".into());
    msg.recipient.first_name = Some("Maria".into());
    msg.text = "Olá Maria, seu pedido #1042 foi enviado! Rastreio: AB123456789BR".into();
    msg.template = template;
    msg.meta.store = "loja-1".into();
    msg.meta.order_number = "1042".into();
    msg.meta.notification = NotificationKind::OrderShipped;
    msg.event.notification = NotificationKind::OrderShipped;
    msg.meta.job_id = "job-77".into();
    msg.meta.channel = "whatsapp".into();
    msg
}

fn shipped_template() -> TemplateRef {
    TemplateRef {
        name: "pedido_enviado".into(),
        language: "pt_BR".into(),
        positional: vec!["Maria".into(), "#1042".into(), "AB123456789BR".into()],
        named: vec![],
    }
}

#[test]
fn sends_an_approved_template_with_the_exact_wire_format_and_returns_wamid_and_wa_id() {
    let fake = fake();
    install(&fake, &[]);
    let receipt =
        WhatsAppCloud::send(message(Some(shipped_template()))).unwrap_or_else(|e| panic!("{e:?}"));

    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let req = &requests[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, format!("/v21.0/{PHONE_ID}/messages"));
    assert_eq!(
        req.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(
        req.body_json(),
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "+5511987654321",
            "type": "template",
            "template": {
                "name": "pedido_enviado",
                "language": {"code": "pt_BR"},
                "components": [{"type": "body", "parameters": [
                    {"type": "text", "text": "Maria"},
                    {"type": "text", "text": "#1042"},
                    {"type": "text", "text": "AB123456789BR"},
                ]}],
            },
            "biz_opaque_callback_data": "loja-1/1042/order-shipped/whatsapp",
        })
    );
    let received = fake.received();
    assert_eq!(
        receipt.provider_message_id.as_deref(),
        Some(received[0].provider_message_id.as_str())
    );
    assert!(
        receipt
            .provider_message_id
            .as_deref()
            .is_some_and(|id| id.starts_with("wamid."))
    );
    assert_eq!(receipt.recipient_id.as_deref(), Some("5511987654321"));
    assert_eq!(
        received[0].text,
        "[template pedido_enviado pt_BR] Maria | #1042 | AB123456789BR"
    );
}

#[test]
fn named_parameters_use_parameter_name_and_an_empty_language_uses_the_setting() {
    let fake = fake();
    install(
        &fake,
        &[("template_language", "pt_PT"), ("api_version", "v23.0")],
    );
    let template = TemplateRef {
        name: "pedido_pago".into(),
        language: String::new(),
        positional: vec![],
        named: vec![
            ("nome".into(), "Maria".into()),
            ("pedido".into(), "#1042".into()),
        ],
    };
    WhatsAppCloud::send(message(Some(template))).unwrap_or_else(|e| panic!("{e:?}"));
    let req = &fake.requests()[0];
    assert_eq!(req.path, format!("/v23.0/{PHONE_ID}/messages"));
    assert_eq!(
        req.body_json()["template"],
        json!({
            "name": "pedido_pago",
            "language": {"code": "pt_PT"},
            "components": [{"type": "body", "parameters": [
                {"type": "text", "parameter_name": "nome", "text": "Maria"},
                {"type": "text", "parameter_name": "pedido", "text": "#1042"},
            ]}],
        })
    );
}

#[test]
fn a_template_without_parameters_has_no_components() {
    let fake = fake();
    install(&fake, &[]);
    let template = TemplateRef {
        name: "obrigado".into(),
        language: "pt_BR".into(),
        positional: vec![],
        named: vec![],
    };
    WhatsAppCloud::send(message(Some(template))).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        fake.requests()[0].body_json()["template"],
        json!({"name": "obrigado", "language": {"code": "pt_BR"}})
    );
}

#[test]
fn free_text_only_when_allowed_and_no_template_is_mapped() {
    let fake = fake();
    install(&fake, &[]);
    let refused = kit::permanent(WhatsAppCloud::send(message(None)));
    assert!(
        refused.contains("[channels.whatsapp.templates.order-shipped]"),
        "{refused}"
    );
    assert!(refused.contains("approved template"), "{refused}");
    assert!(fake.requests().is_empty(), "nothing may be sent");

    install(&fake, &[("allow_free_text", "true")]);
    WhatsAppCloud::send(message(None)).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        fake.requests()[0].body_json(),
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "+5511987654321",
            "type": "text",
            "text": {"preview_url": false, "body": "Olá Maria, seu pedido #1042 foi enviado! Rastreio: AB123456789BR"},
            "biz_opaque_callback_data": "loja-1/1042/order-shipped/whatsapp",
        })
    );
    // A mapped template still wins over free text.
    WhatsAppCloud::send(message(Some(shipped_template()))).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(fake.requests()[1].body_json()["type"], "template");
}

#[test]
fn a_missing_or_malformed_recipient_is_permanent_and_sends_nothing() {
    let fake = fake();
    install(&fake, &[]);
    let mut msg = message(Some(shipped_template()));
    msg.recipient.phone = None;
    let why = kit::permanent(WhatsAppCloud::send(msg.clone()));
    assert!(why.contains("no usable mobile phone"), "{why}");
    msg.recipient.phone = Some("11 98765-4321".into());
    let why = kit::permanent(WhatsAppCloud::send(msg));
    assert!(why.contains("\"11 98765-4321\""), "{why}");
    assert!(fake.requests().is_empty());
}

/// Every code of Meta's table, through the real wire, ends in its class.
#[test]
fn every_documented_error_code_maps_to_its_class() {
    let retryable: &[(i64, Option<u64>)] = &[
        (1, None),
        (2, None),
        (131000, None),
        (131016, None),
        (130429, Some(5_000)),
        (131056, Some(60_000)),
        (4, Some(300_000)),
        (80007, Some(300_000)),
        (131057, Some(300_000)),
        (2494100, Some(300_000)),
    ];
    let permanent_codes = [
        131047, 131049, 131050, 130403, 131021, 131051, 100, 131008, 131009, 132000, 132001,
        132005, 132007, 132012, 131030,
    ];
    let halting = [
        0, 190, 3, 10, 200, 250, 299, 368, 131031, 131042, 131045, 131048, 131064,
    ];

    let fake = fake();
    install(&fake, &[]);
    for &(code, hint) in retryable {
        fake.enqueue(Endpoint::Send, meta::error(code));
        let e = kit::retryable(WhatsAppCloud::send(message(Some(shipped_template()))));
        assert_eq!(e.retry_after_ms, hint, "code {code}: {}", e.message);
        assert!(
            e.message.contains(&format!("error {code}")),
            "{}",
            e.message
        );
        assert!(matches!(classify_code(code), CodeClass::Retryable { .. }));
    }
    for code in permanent_codes {
        fake.enqueue(Endpoint::Send, meta::error(code));
        let why = kit::permanent(WhatsAppCloud::send(message(Some(shipped_template()))));
        assert!(why.contains(&format!("error {code}")), "{why}");
        assert!(why.contains("fbtrace_id Az8or2yhqkZfEZ-_4Qn_Bam"), "{why}");
    }
    // Not on WhatsApp: its own class, so the host can fall back to another channel.
    fake.enqueue(Endpoint::Send, meta::error(131026));
    let why = kit::unreachable(WhatsAppCloud::send(message(Some(shipped_template()))));
    assert!(why.contains("error 131026"), "{why}");
    assert!(why.contains("not on WhatsApp"), "{why}");
    assert_eq!(classify_code(131026), CodeClass::Unreachable);
    for code in halting {
        fake.enqueue(Endpoint::Send, meta::error(code));
        let why = kit::misconfigured(WhatsAppCloud::send(message(Some(shipped_template()))));
        assert!(why.contains(&format!("error {code}")), "{why}");
        assert_eq!(classify_code(code), CodeClass::Misconfigured);
    }
    assert_eq!(fake.received().len(), 0);
}

#[test]
fn outside_the_24_hour_window_says_to_use_a_template() {
    let fake = fake();
    install(&fake, &[("allow_free_text", "true")]);
    fake.enqueue(Endpoint::Send, meta::error(131047));
    let why = kit::permanent(WhatsAppCloud::send(message(None)));
    assert!(why.contains("approved template"), "{why}");
    assert!(
        why.contains("[channels.whatsapp.templates.order-shipped]"),
        "{why}"
    );
    assert!(why.contains("more than 24 hours have passed"), "{why}");
}

#[test]
fn next_two_calls_hit_the_throughput_limit_then_the_third_succeeds() {
    let fake = fake();
    install(&fake, &[]);
    fake.enqueue_times(Endpoint::Send, 2, meta::error(130429));
    for _ in 0..2 {
        let e = kit::retryable(WhatsAppCloud::send(message(Some(shipped_template()))));
        assert!(
            e.message
                .contains("Cloud API message throughput has been reached"),
            "{}",
            e.message
        );
    }
    let mut retry = message(Some(shipped_template()));
    retry.attempt = 3;
    assert!(WhatsAppCloud::send(retry).is_ok());
    assert_eq!(fake.requests().len(), 3);
}

#[test]
fn an_expired_token_halts_the_channel_without_leaking_the_token() {
    let fake = fake();
    install(&fake, &[]);
    fake.set_default(Endpoint::Send, meta::error(190));
    let why = kit::misconfigured(WhatsAppCloud::send(message(Some(shipped_template()))));
    assert!(why.contains("access_token"), "{why}");
    assert!(!why.contains(TOKEN), "{why}");

    // The wrong token is rejected by the fake itself (401, code 190).
    testing::install(
        Harness::new()
            .setting("access_token", "wrong-token")
            .setting("phone_number_id", PHONE_ID)
            .setting("base_url", &fake.url())
            .transport(testing::http_transport(Duration::from_secs(5))),
    );
    let why = kit::misconfigured(WhatsAppCloud::send(message(Some(shipped_template()))));
    assert!(why.contains("error 190"), "{why}");
}

#[test]
fn unknown_codes_fall_back_to_the_http_status_and_retry_after_is_honoured() {
    let fake = fake();
    install(&fake, &[]);
    fake.enqueue(
        Endpoint::Send,
        meta::error_with(500, 987654, "(#987654) New thing", "new"),
    );
    assert!(
        kit::retryable(WhatsAppCloud::send(message(Some(shipped_template()))))
            .retry_after_ms
            .is_none()
    );
    fake.enqueue(
        Endpoint::Send,
        meta::error_with(400, 987654, "(#987654) New thing", "new"),
    );
    kit::permanent(WhatsAppCloud::send(message(Some(shipped_template()))));
    fake.enqueue(
        Endpoint::Send,
        meta::error_with(403, 987654, "(#987654) New thing", "new"),
    );
    kit::misconfigured(WhatsAppCloud::send(message(Some(shipped_template()))));
    fake.enqueue(
        Endpoint::Send,
        meta::error(130429).with_header("retry-after", "42"),
    );
    assert_eq!(
        kit::retryable(WhatsAppCloud::send(message(Some(shipped_template())))).retry_after_ms,
        Some(42_000)
    );
    assert_eq!(classify_code(987654), CodeClass::Unknown);
}

#[test]
fn a_wrong_phone_number_id_halts_the_channel() {
    let fake = fake();
    install(&fake, &[]);
    fake.enqueue(
        Endpoint::Send,
        Reply::json(
            400,
            json!({"error": {"message": "Unsupported post request. Object with ID '106540352242922' does not exist",
                              "type": "GraphMethodException", "code": 100, "error_subcode": 33,
                              "fbtrace_id": "AbC"}}),
        ),
    );
    let why = kit::misconfigured(WhatsAppCloud::send(message(Some(shipped_template()))));
    assert!(why.contains("phone_number_id"), "{why}");
}

#[test]
fn network_failures_proxy_pages_and_timeouts_are_retryable() {
    let fake = fake();
    install(&fake, &[]);
    fake.enqueue(
        Endpoint::Send,
        Reply::raw(502, "text/html", "<html>Bad Gateway</html>"),
    );
    let e = kit::retryable(WhatsAppCloud::send(message(Some(shipped_template()))));
    assert!(e.message.contains("HTTP 502"), "{}", e.message);
    fake.enqueue(Endpoint::Send, Reply::drop_connection());
    kit::retryable(WhatsAppCloud::send(message(Some(shipped_template()))));

    testing::install(
        Harness::new()
            .setting("access_token", TOKEN)
            .setting("phone_number_id", PHONE_ID)
            .setting("base_url", &fake.url())
            .transport(testing::http_transport(Duration::from_millis(200))),
    );
    fake.enqueue(
        Endpoint::Send,
        Reply::delayed(Duration::from_secs(3), Reply::success()),
    );
    let e = kit::retryable(WhatsAppCloud::send(message(Some(shipped_template()))));
    assert!(e.message.contains("timed out"), "{}", e.message);
}

#[test]
fn check_reads_the_phone_number_with_the_token() {
    let fake = fake();
    install(&fake, &[("api_version", "v22.0")]);
    WhatsAppCloud::check().unwrap_or_else(|e| panic!("{e:?}"));
    let req = &fake.requests()[0];
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("GET", format!("/v22.0/{PHONE_ID}").as_str())
    );
    assert_eq!(
        req.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert!(
        testing::logs()
            .iter()
            .any(|(_, line, _)| line.contains("+55 11 4004-0000") && line.contains("GREEN"))
    );

    fake.enqueue(Endpoint::Check, meta::error(190));
    let why = kit::misconfigured(WhatsAppCloud::check());
    assert!(!why.contains(TOKEN));
    fake.enqueue(Endpoint::Check, Reply::drop_connection());
    kit::retryable(WhatsAppCloud::check());
}

#[test]
fn settings_are_validated_and_name_the_key() {
    testing::install(Harness::new().setting("phone_number_id", PHONE_ID));
    assert!(kit::misconfigured(WhatsAppCloud::check()).contains("`access_token`"));
    testing::install(
        Harness::new()
            .setting("access_token", TOKEN)
            .setting("phone_number_id", "+55 11 4004"),
    );
    assert!(kit::misconfigured(WhatsAppCloud::check()).contains("`phone_number_id`"));
    testing::install(
        Harness::new()
            .setting("access_token", TOKEN)
            .setting("phone_number_id", PHONE_ID)
            .setting("api_version", "21"),
    );
    assert!(kit::misconfigured(WhatsAppCloud::check()).contains("`api_version`"));
    testing::install(
        Harness::new()
            .setting("access_token", TOKEN)
            .setting("phone_number_id", PHONE_ID)
            .setting("allow_free_text", "maybe"),
    );
    assert!(kit::misconfigured(WhatsAppCloud::send(message(None))).contains("`allow_free_text`"));
}

#[test]
fn info_declares_the_settings_and_default_host() {
    let info = WhatsAppCloud::info();
    assert_eq!(info.recipient, RecipientNeed::CustomerPhone);
    assert_eq!(info.default_min_interval_ms, 20_000);
    assert_eq!(info.default_daily_cap, None);
    assert!(!info.idempotent, "the provider has no idempotency key");
    let info = info.plugin;
    assert_eq!(info.name, "whatsapp-cloud");
    assert_eq!(
        info.default_hosts,
        vec!["https://graph.facebook.com".to_owned()]
    );
    let token = info.config_keys.iter().find(|k| k.name == "access_token");
    assert!(token.is_some_and(|k| k.required && k.secret));
    let version = info.config_keys.iter().find(|k| k.name == "api_version");
    assert_eq!(
        version.and_then(|k| k.default_value.clone()).as_deref(),
        Some("v21.0")
    );
    let free = info
        .config_keys
        .iter()
        .find(|k| k.name == "allow_free_text");
    assert_eq!(
        free.and_then(|k| k.default_value.clone()).as_deref(),
        Some("false")
    );
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
    match WhatsAppCloud::send(message(Some(shipped_template()))) {
        Err(PluginError::Misconfigured(why)) => {
            assert!(why.contains("nothing was sent"), "{why}");
            assert!(why.contains("Portal login"), "{why}");
        }
        other => panic!("expected misconfigured, got {other:?}"),
    }
}
