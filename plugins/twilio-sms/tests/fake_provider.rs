//! The plugin against the fake Twilio over real HTTP on 127.0.0.1.

use std::time::Duration;

use ::twilio_sms::{CodeClass, TwilioSms, classify_code};
use arauto_plugin_sdk::sender::RECIPIENT_UNREACHABLE_PREFIX;
use arauto_plugin_sdk::sender::http::base64_encode;
use arauto_plugin_sdk::sender::prelude::*;
use arauto_plugin_sdk::sender::testing::{self, Harness};
use arauto_sender_testkit as kit;
use arauto_sim::channels::twilio as fake_twilio;
use arauto_sim::channels::{Endpoint, FakeProvider, Provider, Reply};

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "f00dfacecafebabe0123456789abcdef";

fn fake() -> FakeProvider {
    kit::start(Provider::Twilio, Some(&format!("{SID}:{TOKEN}")))
}

fn install(fake: &FakeProvider, extra: &[(&str, &str)]) {
    kit::install(
        &[
            ("base_url", &fake.url()),
            ("account_sid", SID),
            ("auth_token", TOKEN),
            ("from", "+15005550006"),
        ],
        extra,
    );
}

fn message(template: Option<TemplateRef>) -> Message {
    let mut msg = kit::message();
    msg.idempotency_key = "loja-1/1042/order-shipped/sms".into();
    msg.recipient.phone = Some("+5511987654321".into());
    msg.recipient.name = None;
    msg.recipient.first_name = None;
    msg.text = "Pedido #1042 enviado: rastreie AB123456789BR".into();
    msg.template = template;
    msg.meta.store = "loja-1".into();
    msg.meta.order_number = "1042".into();
    msg.meta.notification = NotificationKind::OrderShipped;
    msg.event.notification = NotificationKind::OrderShipped;
    msg.meta.job_id = "job-3".into();
    msg.meta.channel = "sms".into();
    msg
}

fn content_template() -> TemplateRef {
    TemplateRef {
        name: "HX0123456789abcdef0123456789abcdef".into(),
        language: "pt_BR".into(),
        positional: vec!["Maria".into(), "#1042".into()],
        named: vec![],
    }
}

#[test]
fn sends_an_sms_with_the_exact_form_and_basic_auth_and_returns_the_sid() {
    let fake = fake();
    install(
        &fake,
        &[("status_callback", "https://loja.example/twilio/status")],
    );
    let receipt = TwilioSms::send(message(None)).unwrap_or_else(|e| panic!("{e:?}"));
    let req = &fake.requests()[0];
    assert_eq!(req.method, "POST");
    assert_eq!(
        req.path,
        format!("/2010-04-01/Accounts/{SID}/Messages.json")
    );
    assert_eq!(
        req.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let basic = format!(
        "Basic {}",
        base64_encode(format!("{SID}:{TOKEN}").as_bytes())
    );
    assert_eq!(req.header("authorization"), Some(basic.as_str()));
    assert_eq!(
        req.body_text(),
        "To=%2B5511987654321&From=%2B15005550006&Body=Pedido%20%231042%20enviado%3A%20rastreie%20AB123456789BR\
         &StatusCallback=https%3A%2F%2Floja.example%2Ftwilio%2Fstatus"
    );
    let sid = receipt.provider_message_id.unwrap_or_default();
    assert!(sid.starts_with("SM") && sid.len() == 34, "{sid}");
    assert_eq!(sid, fake.received()[0].provider_message_id);
    assert_eq!(receipt.recipient_id.as_deref(), Some("+5511987654321"));
    assert_eq!(
        fake.received()[0].text,
        "Pedido #1042 enviado: rastreie AB123456789BR"
    );
}

#[test]
fn a_messaging_service_and_an_api_key_are_used_when_configured() {
    let fake = fake();
    fake.require_auth(&format!("SK0123456789abcdef0123456789abcdef:{TOKEN}"));
    testing::install(
        Harness::new()
            .setting("base_url", &fake.url())
            .setting("account_sid", SID)
            .setting("api_key_sid", "SK0123456789abcdef0123456789abcdef")
            .setting("auth_token", TOKEN)
            .setting(
                "messaging_service_sid",
                "MG0123456789abcdef0123456789abcdef",
            )
            .transport(testing::http_transport(Duration::from_secs(5))),
    );
    TwilioSms::send(message(None)).unwrap_or_else(|e| panic!("{e:?}"));
    let form = fake.requests()[0].form();
    let keys: Vec<&str> = form.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["To", "MessagingServiceSid", "Body"]);
}

#[test]
fn whatsapp_templates_use_content_sid_and_variables() {
    let fake = fake();
    install(&fake, &[("channel", "whatsapp"), ("from", "+14155238886")]);
    let mut template = content_template();
    template.named = vec![("rastreio".into(), "AB123456789BR".into())];
    TwilioSms::send(message(Some(template))).unwrap_or_else(|e| panic!("{e:?}"));
    let form = fake.requests()[0].form();
    let expected: Vec<(String, String)> = [
        ("To", "whatsapp:+5511987654321"),
        ("From", "whatsapp:+14155238886"),
        ("ContentSid", "HX0123456789abcdef0123456789abcdef"),
        (
            "ContentVariables",
            r##"{"1":"Maria","2":"#1042","rastreio":"AB123456789BR"}"##,
        ),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    assert_eq!(form, expected);
}

#[test]
fn whatsapp_without_a_template_needs_allow_free_text_and_sms_ignores_templates() {
    let fake = fake();
    install(&fake, &[("channel", "whatsapp")]);
    let e = kit::err(TwilioSms::send(message(None)));
    assert!(
        matches!(&e, PluginError::Permanent(m) if m.contains("[channels.sms.templates.order-shipped]")),
        "{e:?}"
    );
    assert!(fake.requests().is_empty());
    let mut not_a_content_sid = content_template();
    not_a_content_sid.name = "pedido_enviado".into();
    let e = kit::err(TwilioSms::send(message(Some(not_a_content_sid))));
    assert!(
        matches!(&e, PluginError::Permanent(m) if m.contains("HX")),
        "{e:?}"
    );

    install(
        &fake,
        &[("channel", "whatsapp"), ("allow_free_text", "true")],
    );
    TwilioSms::send(message(None)).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        fake.requests()[0].form_value("Body").as_deref(),
        Some("Pedido #1042 enviado: rastreie AB123456789BR")
    );

    install(&fake, &[]);
    TwilioSms::send(message(Some(content_template()))).unwrap_or_else(|e| panic!("{e:?}"));
    let sms = &fake.requests()[1];
    assert_eq!(sms.form_value("ContentSid"), None);
    assert_eq!(sms.form_value("To").as_deref(), Some("+5511987654321"));
}

#[test]
fn error_codes_map_to_their_classes() {
    let fake = fake();
    install(&fake, &[]);
    let cases: &[(u32, &str)] = &[
        (20429, "retryable"),
        (63018, "retryable"),
        (21211, "unreachable"),
        (21610, "permanent"),
        (21614, "unreachable"),
        (21608, "permanent"),
        (21612, "unreachable"),
        (21617, "permanent"),
        (63016, "permanent"),
        (20003, "misconfigured"),
        (20404, "misconfigured"),
        (21212, "misconfigured"),
        (21606, "misconfigured"),
        (21408, "misconfigured"),
    ];
    for &(code, class) in cases {
        fake.enqueue(Endpoint::Send, fake_twilio::error(code));
        let e = kit::err(TwilioSms::send(message(None)));
        let (got, text) = match &e {
            PluginError::Retryable(r) => ("retryable", r.message.as_str()),
            PluginError::Permanent(m) => match m.strip_prefix(RECIPIENT_UNREACHABLE_PREFIX) {
                Some(rest) => ("unreachable", rest),
                None => ("permanent", m.as_str()),
            },
            PluginError::Misconfigured(m) => ("misconfigured", m.as_str()),
        };
        assert_eq!(got, class, "code {code}: {text}");
        assert!(text.contains(&format!("Twilio error {code}")), "{text}");
        assert!(
            text.contains(&format!("https://www.twilio.com/docs/errors/{code}")),
            "{text}"
        );
    }
    assert_eq!(
        classify_code(20429),
        CodeClass::Retryable {
            hint_ms: Some(1_000)
        }
    );
    assert_eq!(classify_code(99999), CodeClass::Unknown);
}

#[test]
fn outside_the_whatsapp_window_says_to_use_a_template() {
    let fake = fake();
    install(
        &fake,
        &[("channel", "whatsapp"), ("allow_free_text", "true")],
    );
    fake.enqueue(Endpoint::Send, fake_twilio::error(63016));
    let e = kit::err(TwilioSms::send(message(None)));
    assert!(
        matches!(&e, PluginError::Permanent(m) if m.contains("approved template") && m.contains("Content SID")),
        "{e:?}"
    );
}

#[test]
fn rate_limits_carry_hints_and_server_errors_retry() {
    let fake = fake();
    install(&fake, &[]);
    fake.enqueue(Endpoint::Send, fake_twilio::error(20429));
    assert!(
        matches!(kit::err(TwilioSms::send(message(None))), PluginError::Retryable(e) if e.retry_after_ms == Some(1_000))
    );
    fake.enqueue(
        Endpoint::Send,
        fake_twilio::error(20429).with_header("retry-after", "4"),
    );
    assert!(
        matches!(kit::err(TwilioSms::send(message(None))), PluginError::Retryable(e) if e.retry_after_ms == Some(4_000))
    );
    fake.enqueue(
        Endpoint::Send,
        fake_twilio::error_with(503, 20503, "Service Unavailable"),
    );
    assert!(matches!(
        kit::err(TwilioSms::send(message(None))),
        PluginError::Retryable(_)
    ));
    fake.enqueue(
        Endpoint::Send,
        Reply::raw(502, "text/html", "<html>bad gateway</html>"),
    );
    assert!(matches!(
        kit::err(TwilioSms::send(message(None))),
        PluginError::Retryable(_)
    ));
    fake.enqueue(Endpoint::Send, Reply::drop_connection());
    assert!(matches!(
        kit::err(TwilioSms::send(message(None))),
        PluginError::Retryable(_)
    ));
    fake.enqueue(
        Endpoint::Send,
        fake_twilio::error_with(400, 29999, "Something new"),
    );
    assert!(matches!(
        kit::err(TwilioSms::send(message(None))),
        PluginError::Permanent(_)
    ));
}

#[test]
fn a_wrong_token_halts_the_channel_without_leaking_it() {
    let fake = fake();
    fake.require_auth(&format!("{SID}:another-token"));
    install(&fake, &[]);
    let e = kit::err(TwilioSms::send(message(None)));
    assert!(
        matches!(&e, PluginError::Misconfigured(m) if m.contains("20003") && !m.contains(TOKEN)),
        "{e:?}"
    );
    let e = kit::err(TwilioSms::check());
    assert!(matches!(&e, PluginError::Misconfigured(_)), "{e:?}");
}

#[test]
fn a_missing_recipient_is_permanent_and_sends_nothing() {
    let fake = fake();
    install(&fake, &[]);
    let mut msg = message(None);
    msg.recipient.phone = None;
    assert!(
        matches!(kit::err(TwilioSms::send(msg)), PluginError::Permanent(m) if m.contains("no usable mobile phone"))
    );
    assert!(fake.requests().is_empty());
}

#[test]
fn check_reads_the_account() {
    let fake = fake();
    install(&fake, &[]);
    TwilioSms::check().unwrap_or_else(|e| panic!("{e:?}"));
    let req = &fake.requests()[0];
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("GET", format!("/2010-04-01/Accounts/{SID}.json").as_str())
    );
    assert!(
        req.header("authorization")
            .is_some_and(|a| a.starts_with("Basic "))
    );
    fake.enqueue(Endpoint::Check, fake_twilio::account_status("suspended"));
    assert!(
        matches!(kit::err(TwilioSms::check()), PluginError::Misconfigured(m) if m.contains("suspended"))
    );
}

#[test]
fn settings_are_validated_and_declared() {
    testing::install(
        Harness::new()
            .setting("account_sid", SID)
            .setting("auth_token", TOKEN),
    );
    assert!(
        matches!(kit::err(TwilioSms::check()), PluginError::Misconfigured(m) if m.contains("`from`"))
    );
    testing::install(
        Harness::new()
            .setting("account_sid", "12345")
            .setting("auth_token", TOKEN)
            .setting("from", "+1"),
    );
    assert!(
        matches!(kit::err(TwilioSms::check()), PluginError::Misconfigured(m) if m.contains("`account_sid`"))
    );
    testing::install(
        Harness::new()
            .setting("account_sid", SID)
            .setting("auth_token", TOKEN)
            .setting("from", "+1")
            .setting("channel", "fax"),
    );
    assert!(
        matches!(kit::err(TwilioSms::check()), PluginError::Misconfigured(m) if m.contains("`channel`"))
    );
    let info = TwilioSms::info();
    assert_eq!(info.recipient, RecipientNeed::CustomerPhone);
    assert_eq!(info.default_min_interval_ms, 1_000);
    assert_eq!(info.default_daily_cap, None);
    assert!(!info.idempotent, "the provider has no idempotency key");
    let info = info.plugin;
    assert!(
        info.config_keys
            .iter()
            .any(|k| k.name == "auth_token" && k.secret && k.required)
    );
    assert_eq!(info.default_hosts, ["https://api.twilio.com"]);
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
    match TwilioSms::send(message(None)) {
        Err(PluginError::Misconfigured(why)) => {
            assert!(why.contains("nothing was sent"), "{why}");
            assert!(why.contains("Portal login"), "{why}");
        }
        other => panic!("expected misconfigured, got {other:?}"),
    }
}
