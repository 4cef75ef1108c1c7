//! The plugin against the fake Telegram Bot API over real HTTP on 127.0.0.1.

use std::time::Duration;

use ::telegram::{Telegram, chat_from_event};
use arauto_plugin_sdk::sender::prelude::*;
use arauto_plugin_sdk::sender::testing::{self, Harness};
use arauto_sender_testkit::{self as kit, err, text_of};
use arauto_sim::channels::telegram as fake_telegram;
use arauto_sim::channels::{Endpoint, FakeProvider, Provider, Reply};
use serde_json::json;

const TOKEN: &str = "7000000001:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";

fn fake() -> FakeProvider {
    kit::start(Provider::Telegram, Some(TOKEN))
}

fn install(fake: &FakeProvider, extra: &[(&str, &str)]) {
    kit::install(&[("base_url", &fake.url()), ("bot_token", TOKEN)], extra);
}

/// A staff notification for an order whose platform extras are `extras`
/// (where a shop may keep the customer's chat id); no phone, no chat id.
fn message(extras: serde_json::Value) -> Message {
    let mut msg = kit::message();
    msg.idempotency_key = "loja-1/1042/order-paid/tg".into();
    msg.recipient.phone = None;
    msg.text = "Novo pedido pago: #1042 (R$ 199,90)".into();
    msg.meta.order_number = "1042".into();
    msg.meta.channel = "tg".into();
    msg.event.order.extras_json = extras.to_string();
    msg
}

#[test]
fn sends_to_the_fixed_staff_chat_with_the_exact_wire_format() {
    let fake = fake();
    install(
        &fake,
        &[
            ("chat_id", "-1001234567890"),
            ("parse_mode", "HTML"),
            ("disable_notification", "true"),
        ],
    );
    let receipt = Telegram::send(message(json!({}))).unwrap_or_else(|e| panic!("{e:?}"));
    let req = &fake.requests()[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, format!("/bot{TOKEN}/sendMessage"));
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(
        req.body_json(),
        json!({"chat_id": -1001234567890_i64, "text": "Novo pedido pago: #1042 (R$ 199,90)",
               "parse_mode": "HTML", "disable_notification": true})
    );
    assert_eq!(
        receipt.provider_message_id.as_deref(),
        Some(fake.received()[0].provider_message_id.as_str())
    );
    assert_eq!(receipt.recipient_id.as_deref(), Some("-1001234567890"));
}

#[test]
fn takes_the_chat_from_the_order_when_no_chat_is_configured() {
    let fake = fake();
    install(&fake, &[]);
    Telegram::send(message(json!({"telegram_chat_id": 987654321})))
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        fake.requests()[0].body_json(),
        json!({"chat_id": 987654321, "text": "Novo pedido pago: #1042 (R$ 199,90)"})
    );

    install(&fake, &[("chat_id_pointer", "/order/extras/tg")]);
    Telegram::send(message(json!({"tg": "@maria_silva"}))).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(fake.requests()[1].body_json()["chat_id"], "@maria_silva");

    let e = err(Telegram::send(message(json!({}))));
    assert!(
        matches!(&e, PluginError::Permanent(m) if m.contains("no Telegram chat id for order 1042") && m.contains("`chat_id`")),
        "{e:?}"
    );
    assert_eq!(fake.requests().len(), 2, "nothing sent without a chat");

    // The customer's chat id the platform holds comes before a key search.
    install(&fake, &[]);
    let mut msg = message(json!({"telegram_chat_id": 1}));
    msg.recipient.chat_id = Some(" 555000111 ".into());
    Telegram::send(msg).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(fake.requests()[2].body_json()["chat_id"], 555000111);

    assert_eq!(
        chat_from_event(&json!({"a": [{"telegram_chat_id": "42"}]}), None),
        Some(json!(42))
    );
    assert_eq!(
        chat_from_event(&json!({"telegram_chat_id": null}), None),
        None
    );
}

#[test]
fn retry_after_is_honoured_and_server_errors_retry() {
    let fake = fake();
    install(&fake, &[("chat_id", "42")]);
    fake.enqueue(Endpoint::Send, fake_telegram::retry_after(17));
    match err(Telegram::send(message(json!({})))) {
        PluginError::Retryable(e) => {
            assert_eq!(e.retry_after_ms, Some(17_000));
            assert!(
                e.message.contains("Too Many Requests: retry after 17"),
                "{}",
                e.message
            );
        }
        other => panic!("{other:?}"),
    }
    fake.enqueue(Endpoint::Send, fake_telegram::error(502, "Bad Gateway"));
    assert!(matches!(
        err(Telegram::send(message(json!({})))),
        PluginError::Retryable(_)
    ));
    fake.enqueue(Endpoint::Send, Reply::drop_connection());
    assert!(matches!(
        err(Telegram::send(message(json!({})))),
        PluginError::Retryable(_)
    ));
}

#[test]
fn blocked_and_unknown_customer_chats_are_unreachable_and_migrated_ones_permanent() {
    let fake = fake();
    install(&fake, &[]);
    let event = json!({"telegram_chat_id": -4711});
    fake.enqueue(Endpoint::Send, fake_telegram::blocked());
    let why = arauto_sender_testkit::unreachable(Telegram::send(message(event.clone())));
    assert!(why.contains("bot was blocked by the user"), "{why}");
    fake.enqueue(Endpoint::Send, fake_telegram::chat_not_found());
    let why = arauto_sender_testkit::unreachable(Telegram::send(message(event.clone())));
    assert!(why.contains("chat not found"), "{why}");
    fake.enqueue(Endpoint::Send, fake_telegram::migrated(-1009876543210));
    let e = err(Telegram::send(message(event.clone())));
    assert!(
        matches!(&e, PluginError::Permanent(m) if m.contains("-1009876543210")),
        "{e:?}"
    );
    fake.enqueue(
        Endpoint::Send,
        fake_telegram::error(400, "Bad Request: message is too long"),
    );
    assert!(matches!(
        err(Telegram::send(message(event))),
        PluginError::Permanent(_)
    ));
}

#[test]
fn a_broken_fixed_chat_halts_the_channel_and_names_the_new_id_to_configure() {
    let fake = fake();
    install(&fake, &[("chat_id", "-4711")]);
    fake.enqueue(Endpoint::Send, fake_telegram::migrated(-1009876543210));
    let e = err(Telegram::send(message(json!({}))));
    assert!(
        matches!(&e, PluginError::Misconfigured(m) if m.contains("set chat_id = \"-1009876543210\" in [channels.tg.settings]")),
        "{e:?}"
    );
    fake.enqueue(
        Endpoint::Send,
        fake_telegram::error(403, "Forbidden: bot was kicked from the group chat"),
    );
    assert!(matches!(
        err(Telegram::send(message(json!({})))),
        PluginError::Misconfigured(_)
    ));
    fake.enqueue(Endpoint::Send, fake_telegram::chat_not_found());
    assert!(
        matches!(err(Telegram::send(message(json!({})))), PluginError::Misconfigured(m) if m.contains("`chat_id`"))
    );
}

#[test]
fn a_rejected_token_halts_the_channel_and_is_never_shown() {
    let fake = fake();
    fake.require_auth("7000000001:another");
    install(&fake, &[("chat_id", "42")]);
    let e = err(Telegram::send(message(json!({}))));
    assert!(
        matches!(&e, PluginError::Misconfigured(m) if m.contains("`bot_token`")),
        "{e:?}"
    );
    assert!(!text_of(&e).contains(TOKEN));
    let e = err(Telegram::check());
    assert!(matches!(&e, PluginError::Misconfigured(_)), "{e:?}");

    // Transport errors name the URL: the token in its path is redacted.
    testing::install(
        Harness::new()
            .setting("base_url", "http://127.0.0.1:9")
            .setting("bot_token", TOKEN)
            .setting("chat_id", "1")
            .transport(testing::http_transport(Duration::from_secs(5))),
    );
    let e = err(Telegram::send(message(json!({}))));
    assert!(
        text_of(&e).contains("/bot<redacted>/sendMessage") && !text_of(&e).contains(TOKEN),
        "{e:?}"
    );
}

#[test]
fn check_calls_get_me() {
    let fake = fake();
    install(&fake, &[]);
    Telegram::check().unwrap_or_else(|e| panic!("{e:?}"));
    let req = &fake.requests()[0];
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("GET", format!("/bot{TOKEN}/getMe").as_str())
    );
    assert!(
        testing::logs()
            .iter()
            .any(|(_, line, _)| line.contains("@loja_fake_bot"))
    );
}

#[test]
fn settings_are_validated_and_declared() {
    testing::install(Harness::new().setting("bot_token", "not-a-token"));
    let e = err(Telegram::check());
    assert!(
        matches!(&e, PluginError::Misconfigured(m) if m.contains("`bot_token`") && !m.contains("not-a-token")),
        "{e:?}"
    );
    testing::install(
        Harness::new()
            .setting("bot_token", TOKEN)
            .setting("parse_mode", "markdown"),
    );
    assert!(
        matches!(err(Telegram::check()), PluginError::Misconfigured(m) if m.contains("`parse_mode`"))
    );
    testing::install(
        Harness::new()
            .setting("bot_token", TOKEN)
            .setting("chat_id_pointer", "order.chat"),
    );
    assert!(
        matches!(err(Telegram::check()), PluginError::Misconfigured(m) if m.contains("`chat_id_pointer`"))
    );
    let info = Telegram::info();
    assert_eq!(
        info.recipient,
        RecipientNeed::None,
        "the staff chat needs no phone"
    );
    assert_eq!(info.default_min_interval_ms, 1_000);
    assert_eq!(info.default_daily_cap, None);
    assert!(!info.idempotent);
    let info = info.plugin;
    assert!(
        info.config_keys
            .iter()
            .any(|k| k.name == "bot_token" && k.secret && k.required)
    );
    assert!(
        info.config_keys
            .iter()
            .any(|k| k.name == "chat_id" && !k.required)
    );
    assert_eq!(info.default_hosts, ["https://api.telegram.org"]);
}

/// A 200 with an HTML page (a proxy's or captive portal's, a wrong base URL)
/// never came from the provider: nothing was sent, so it must not count as
/// sent. Misconfigured pauses the channel and the message waits.
#[test]
fn an_html_page_with_status_200_is_misconfigured_not_sent() {
    let fake = fake();
    install(&fake, &[("chat_id", "-1001234567890")]);
    fake.enqueue(
        Endpoint::Send,
        Reply::raw(200, "text/html", "<html><title>Portal login</title></html>"),
    );
    match Telegram::send(message(json!({}))) {
        Err(PluginError::Misconfigured(why)) => {
            assert!(why.contains("nothing was sent"), "{why}");
            assert!(why.contains("Portal login"), "{why}");
        }
        other => panic!("expected misconfigured, got {other:?}"),
    }
}
