//! Credentials (both modes, misconfigurations, rejections), check() and info().

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use arauto_plugin_sdk::connector::{Connector, PluginError, notification_name};
use arauto_sim::li::{Fault, Order, Route};
use common::*;
use loja_integrada::LojaIntegrada;

#[test]
fn api_key_mode_sends_chave_api_and_aplicacao_in_one_header() {
    let fake = fake();
    fake.store.create_order(Order::new());
    install(&fake, &[]);
    let page = poll(None, None).expect("poll");
    assert_eq!(page.orders.len(), 1);
    let requests = fake.li.requests();
    assert!(!requests.is_empty());
    for r in &requests {
        assert_eq!(
            r.authorization.as_deref(),
            Some(format!("chave_api {API_KEY} aplicacao {APP_KEY}").as_str())
        );
        assert_eq!(r.status, 200);
    }
}

#[test]
fn personal_token_mode_sends_the_raw_token_as_basic() {
    let fake = fake();
    fake.store.create_order(Order::new());
    install_settings(&fake.li.base_url(), &[("personal_token", TOKEN)]);
    let page = poll(None, None).expect("poll");
    assert_eq!(page.orders.len(), 1);
    for r in fake.li.requests() {
        assert_eq!(
            r.authorization.as_deref(),
            Some(format!("Basic {TOKEN}").as_str())
        );
    }
}

fn misconfigured(settings: &[(&str, &str)]) -> String {
    let fake = fake();
    install_settings(&fake.li.base_url(), settings);
    let poll_error = poll(None, None).expect_err("must be refused");
    let check_error = LojaIntegrada::check().expect_err("must be refused");
    assert!(
        fake.li.requests().is_empty(),
        "no request with bad settings"
    );
    match (poll_error, check_error) {
        (PluginError::Misconfigured(a), PluginError::Misconfigured(b)) => {
            assert_eq!(a, b);
            a
        }
        other => panic!("expected misconfigured, got {other:?}"),
    }
}

#[test]
fn missing_mixed_or_half_credentials_are_misconfigured_with_a_precise_message() {
    let none = misconfigured(&[]);
    assert!(none.contains("no Loja Integrada credentials"), "{none}");
    assert!(
        none.contains("`personal_token`") && none.contains("`application_key`"),
        "{none}"
    );

    let both = misconfigured(&[
        ("api_key", API_KEY),
        ("application_key", APP_KEY),
        ("personal_token", TOKEN),
    ]);
    assert!(both.contains("not both"), "{both}");

    let half = misconfigured(&[("api_key", API_KEY)]);
    assert!(half.contains("`application_key` is missing"), "{half}");
    let other_half = misconfigured(&[("application_key", APP_KEY)]);
    assert!(other_half.contains("`api_key` is missing"), "{other_half}");

    let spaced = misconfigured(&[("personal_token", "abc def")]);
    assert!(
        spaced.contains("`personal_token` contains whitespace"),
        "{spaced}"
    );

    for message in [&none, &both, &half, &other_half, &spaced] {
        assert!(
            !message.contains(API_KEY) && !message.contains(APP_KEY) && !message.contains(TOKEN)
        );
    }
}

#[test]
fn other_bad_settings_name_the_key_and_value() {
    let cases: [(&str, &str, &str); 6] = [
        ("page_size", "100", "`page_size` = \"100\""),
        ("page_size", "0", "from 1 to 50"),
        ("overlap", "ten minutes", "`overlap` = \"ten minutes\""),
        ("initial_lookback", "-1d", "`initial_lookback`"),
        ("request_timeout", "10ms", "`request_timeout`"),
        ("tracking_url_template", "https://t.example/", "{code}"),
    ];
    for (key, value, expected) in cases {
        let message = misconfigured(&[("personal_token", TOKEN), (key, value)]);
        assert!(message.contains(expected), "{key}={value}: {message}");
    }
    let message = misconfigured(&[("personal_token", TOKEN), ("base_url", "api.awsli.com.br")]);
    assert!(message.contains("`base_url`"), "{message}");
}

#[test]
fn rejected_credentials_are_misconfigured_naming_the_mode() {
    let fake = fake();
    fake.store.reject_auth(Some(401));
    install_settings(&fake.li.base_url(), &[("personal_token", TOKEN)]);
    let error = poll(None, None).expect_err("401");
    let PluginError::Misconfigured(message) = error else {
        panic!("expected misconfigured, got {error:?}")
    };
    assert!(message.contains("token inválido/expirado"), "{message}");
    assert!(message.contains("HTTP 401"), "{message}");
    assert!(message.contains("personal token"), "{message}");
    assert!(message.contains("every 3 months"), "{message}");
    assert!(!message.contains(TOKEN), "secrets never appear: {message}");

    fake.store.reject_auth(Some(403));
    install(&fake, &[]);
    let error = LojaIntegrada::check().expect_err("403");
    let PluginError::Misconfigured(message) = error else {
        panic!("expected misconfigured, got {error:?}")
    };
    assert!(message.contains("HTTP 403"), "{message}");
    assert!(
        message.contains("chave_api + chave de aplicação"),
        "{message}"
    );
    assert!(message.contains("IP"), "{message}");
    assert!(
        !message.contains(API_KEY) && !message.contains(APP_KEY),
        "{message}"
    );
}

#[test]
fn unknown_credentials_are_rejected_by_the_fake_and_reported_as_misconfigured() {
    let fake = fake();
    install_settings(
        &fake.li.base_url(),
        &[("api_key", API_KEY), ("application_key", "someone-else")],
    );
    let error = LojaIntegrada::check().expect_err("unknown key");
    assert!(matches!(error, PluginError::Misconfigured(_)), "{error:?}");
}

#[test]
fn check_makes_one_cheap_authenticated_call() {
    let fake = fake();
    install(&fake, &[]);
    LojaIntegrada::check().expect("credentials accepted");
    let requests = fake.li.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path, "/v1/situacao/");
    assert_eq!(requests[0].query_param("limit"), Some("1"));

    install(&fake, &[("api_prefix", "/api/v1/")]);
    LojaIntegrada::check().expect("the /api/v1 prefix works too");
    assert_eq!(fake.li.requests()[1].path, "/api/v1/situacao/");
}

#[test]
fn check_reports_unreachable_wrong_prefix_and_server_errors_precisely() {
    let fake = fake();
    // A port nothing listens on: bind, note it, release it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    install_settings(&format!("http://{closed}"), &[("personal_token", TOKEN)]);
    let error = LojaIntegrada::check().expect_err("unreachable");
    let PluginError::Retryable(e) = &error else {
        panic!("expected retryable, got {error:?}")
    };
    assert!(
        e.message.contains("cannot connect") && e.message.contains("checking the credentials"),
        "{}",
        e.message
    );

    install(&fake, &[("api_prefix", "/v2")]);
    let error = LojaIntegrada::check().expect_err("wrong prefix");
    let PluginError::Misconfigured(message) = &error else {
        panic!("expected misconfigured, got {error:?}")
    };
    assert!(
        message.contains("404") && message.contains("`api_prefix` = \"/v2\""),
        "{message}"
    );

    install(&fake, &[]);
    fake.store.fail(Route::Situacao, Fault::Status(503), 1);
    let error = LojaIntegrada::check().expect_err("503");
    assert!(
        matches!(&error, PluginError::Retryable(e) if e.message.contains("HTTP 503")),
        "{error:?}"
    );
    fake.store.fail(Route::Situacao, Fault::Garbage, 1);
    let error = LojaIntegrada::check().expect_err("HTML instead of JSON");
    assert!(
        matches!(&error, PluginError::Retryable(e) if e.message.contains("<html>")),
        "{error:?}"
    );
    LojaIntegrada::check().expect("healthy again");
}

#[test]
fn info_lists_the_16_statuses_with_default_recognition() {
    let info = LojaIntegrada::info();
    assert_eq!(info.platform, "loja-integrada");
    assert_eq!(info.plugin.name, "loja-integrada");
    assert_eq!(
        info.requests_per_minute,
        Some(90),
        "LI's 100/min, with a margin"
    );
    assert!(info.push.verify && info.push.register);
    assert_eq!(
        info.plugin.default_hosts,
        vec!["https://api.awsli.com.br".to_owned()]
    );
    assert_eq!(info.statuses.len(), 16);
    let entry = |code: &str| {
        let s = info
            .statuses
            .iter()
            .find(|s| s.code == code)
            .unwrap_or_else(|| panic!("{code} missing"));
        (
            s.notification.map(notification_name),
            s.happy_path_priority,
            s.terminal,
        )
    };
    assert_eq!(entry("pedido_efetuado"), (None, 0, false));
    assert_eq!(
        entry("aguardando_pagamento"),
        (Some("waiting-payment"), 1, false)
    );
    assert_eq!(
        entry("pagamento_em_analise"),
        (Some("waiting-payment"), 1, false)
    );
    assert_eq!(entry("pedido_pago"), (Some("order-paid"), 2, false));
    assert_eq!(entry("em_producao"), (Some("order-processing"), 3, false));
    assert_eq!(
        entry("pedido_em_separacao"),
        (Some("order-processing"), 3, false)
    );
    assert_eq!(entry("faturado"), (Some("order-processing"), 3, false));
    assert_eq!(entry("pedido_enviado"), (Some("order-shipped"), 4, false));
    assert_eq!(
        entry("pronto_para_retirada"),
        (Some("ready-for-pickup"), 4, false)
    );
    assert_eq!(
        entry("pedido_entregue"),
        (Some("order-delivered"), 5, false)
    );
    assert_eq!(entry("pedido_cancelado"), (Some("order-canceled"), 0, true));
    assert_eq!(
        entry("pagamento_devolvido"),
        (Some("order-refunded"), 0, true)
    );
    assert_eq!(
        entry("pagamento_devolvido_sem_retorno"),
        (Some("order-refunded"), 0, true)
    );
    assert_eq!(entry("pagamento_em_disputa"), (None, 0, false));
    assert_eq!(entry("pedido_chargeback"), (None, 0, false));
    assert_eq!(entry("cancelamento_solicitado"), (None, 0, false));
}

#[test]
fn info_declares_capabilities_with_reasons_and_every_setting() {
    let info = LojaIntegrada::info();
    let caps = &info.capabilities;
    assert!(caps.tracking_codes.supported);
    assert!(!caps.boleto_reminder.supported);
    assert!(
        caps.boleto_reminder.reason.contains("barcode")
            && caps.boleto_reminder.reason.contains("due date")
    );
    assert!(!caps.pix_reminder.supported);
    assert!(
        caps.pix_reminder.reason.contains("PIX") && caps.pix_reminder.reason.contains("expiry")
    );
    assert!(!caps.abandoned_cart.supported);
    assert!(caps.abandoned_cart.reason.contains("cart"));

    let key = |name: &str| {
        info.plugin
            .config_keys
            .iter()
            .find(|k| k.name == name)
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    for secret in ["api_key", "application_key", "personal_token"] {
        assert!(key(secret).secret, "{secret} is secret");
    }
    assert_eq!(
        key("base_url").default_value.as_deref(),
        Some("https://api.awsli.com.br")
    );
    assert_eq!(key("api_prefix").default_value.as_deref(), Some("/v1"));
    assert_eq!(key("overlap").default_value.as_deref(), Some("10m"));
    assert_eq!(
        key("initial_lookback").default_value.as_deref(),
        Some("30d")
    );
    assert_eq!(key("page_size").default_value.as_deref(), Some("50"));
    assert!(!key("base_url").secret);
    assert!(
        info.plugin
            .config_keys
            .iter()
            .all(|k| !k.description.is_empty())
    );
}
