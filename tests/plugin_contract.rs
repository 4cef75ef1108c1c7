//! The host speaks the plugin contract: WIT data becomes arauto's model types,
//! settings and secrets reach only their instance, plugin logs are tagged and
//! scrubbed, error classes survive the boundary, unsupported plugins are
//! refused by name, and `inspect` describes a plugin file.

// All test code: with this, clippy's allow-unwrap/expect-in-tests covers the
// helper functions too, not only the #[test] ones (see clippy.toml).
#![cfg(test)]

use crate::support;

use arauto::model::{NotificationKind, PaymentFamily, PluginKind};
use arauto::plugin::{
    ErrorClass, InstanceConfig, MAX_LOOK_AT, PluginError, PollRequest, PushHint, PushRequest,
    inspect,
};
use jiff::{SignedDuration, Timestamp};
use support::host::{TestServer, host, load_test_plugin, message};
use support::logs::{captured_logs, log_text};
use support::plugins::test_plugin;

fn sample_config(instance: &str) -> InstanceConfig {
    InstanceConfig::new(instance).secret("api_key", "chave-secreta-123")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connector_pages_arrive_as_model_orders() {
    let host = host();
    let plugin = load_test_plugin(&host, "sample-connector").await;
    let connector = host
        .connector(&plugin, sample_config("loja-a"))
        .expect("connector instance");

    let first = connector
        .poll(PollRequest::default())
        .await
        .expect("first poll");
    assert_eq!(first.orders.len(), 50);
    assert_eq!(first.next_cursor.as_deref(), Some("page-1"));
    assert!(first.has_more);

    let order = &first.orders[0];
    assert_eq!(
        (order.id.as_str(), order.number.as_str()),
        ("10000", "10000")
    );
    assert_eq!(order.status.code, "aguardando_pagamento");
    // "2024-05-01T09:00:00-03:00" with its offset applied.
    assert_eq!(
        order.created_at,
        "2024-05-01T12:00:00Z"
            .parse::<Timestamp>()
            .expect("timestamp")
    );
    assert_eq!(
        order.updated_at,
        "2024-05-01T18:00:30Z"
            .parse::<Timestamp>()
            .expect("timestamp")
    );
    assert_eq!(order.customer.first_name, "Maria");
    assert_eq!(order.customer.phones.len(), 2);
    assert_eq!(
        order.payment.as_ref().map(|p| p.family),
        Some(PaymentFamily::Pix)
    );
    let pix = order.pix.as_ref().expect("pix data");
    assert_eq!(
        pix.expires_at,
        Some(
            "2024-05-02T00:00:00Z"
                .parse::<Timestamp>()
                .expect("timestamp")
        )
    );
    assert_eq!(order.items.len(), 1);
    let amount = |m: Option<arauto::model::Money>| m.expect("a readable amount").0;
    assert_eq!(
        amount(order.total),
        amount(order.subtotal) + amount(order.shipping)
    );
    assert_eq!(order.extras["nota_fiscal"]["numero"], "50000");
    assert!(order.detailed);

    let shipped = first
        .orders
        .iter()
        .find(|o| o.status.code == "pedido_enviado")
        .expect("a shipped order");
    assert!(
        shipped.shipments[0]
            .tracking_code
            .as_deref()
            .is_some_and(|c| c.starts_with("BR"))
    );
    let card = first.orders.iter().find(|o| {
        o.payment
            .as_ref()
            .is_some_and(|p| p.installments == Some(3))
    });
    assert_eq!(
        card.and_then(|o| o.payment.as_ref()).map(|p| p.family),
        Some(PaymentFamily::CreditCard)
    );

    let cutoff: Timestamp = "2024-06-01T00:00:00Z".parse().expect("cutoff");
    let last = connector
        .poll(PollRequest {
            cursor: first.next_cursor.clone(),
            detail_cutoff: Some(cutoff),
            look_at: Vec::new(),
        })
        .await
        .expect("second poll");
    assert!(!last.has_more);
    assert_eq!(last.orders[0].id, "10050");
    assert!(
        last.orders.iter().all(|o| !o.detailed),
        "the cutoff reached the plugin"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connector_info_arrives_with_its_declarations() {
    let host = host();
    let plugin = load_test_plugin(&host, "sample-connector").await;
    assert_eq!(plugin.kind(), PluginKind::Connector);
    assert_eq!(
        (plugin.name(), plugin.version()),
        ("sample-connector", "0.3.1")
    );
    assert_eq!(plugin.api_version().to_string(), "0.2.0");

    let connector = host
        .connector(&plugin, sample_config("loja-info"))
        .expect("connector instance");
    let info = connector.info().await.expect("info");
    assert_eq!(Some(&info), plugin.connector_info());
    assert_eq!(info.platform, "sample");
    assert_eq!(
        info.status("pedido_enviado").and_then(|s| s.notification),
        Some(NotificationKind::OrderShipped)
    );
    assert!(info.status("pedido_cancelado").is_some_and(|s| s.terminal));
    // A status that notifies nobody is kept, without a kind.
    let odd = info
        .status("pedido_teletransportado")
        .expect("the odd status");
    assert_eq!(odd.notification, None);
    // Contract 0.2 declarations cross as declared.
    assert_eq!(info.requests_per_minute, None);
    assert!(info.push.verify && info.push.register);
    assert!(info.capabilities.tracking_codes.supported);
    assert!(!info.capabilities.boleto_reminder.supported);
    assert!(info.capabilities.boleto_reminder.reason.contains("barcode"));
    connector.check().await.expect("check with an api key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_order_is_refused_alone_and_the_rest_of_the_page_arrives() {
    let host = host();
    let plugin = load_test_plugin(&host, "sample-connector").await;

    for (instance, broken, says) in [
        ("loja-ts", "timestamp", ["created-at", "yesterday at noon"]),
        ("loja-x", "extras", ["extras-json", "not valid JSON"]),
    ] {
        let connector = host
            .connector(&plugin, sample_config(instance).setting("broken", broken))
            .expect("instance");
        let page = connector
            .poll(PollRequest::default())
            .await
            .expect("a page with one malformed order still arrives");
        assert_eq!(page.rejected.len(), 1, "{broken}: {:?}", page.rejected);
        let rejected = &page.rejected[0];
        assert_eq!(rejected.order, "10000", "{broken}");
        for needle in says {
            assert!(
                rejected.reason.contains("order 10000") && rejected.reason.contains(needle),
                "{broken}: {}",
                rejected.reason
            );
        }
        assert!(
            !page.orders.is_empty() && page.orders.iter().all(|o| o.id != "10000"),
            "{broken}: the other orders arrive: {:?}",
            page.orders.iter().map(|o| &o.id).collect::<Vec<_>>()
        );
        assert!(page.next_cursor.is_some(), "{broken}: the cursor moves on");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_error_classes_cross_the_boundary() {
    let host = host();
    let plugin = load_test_plugin(&host, "probe-sender").await;
    let failing = |class: &str| {
        host.sender(
            &plugin,
            InstanceConfig::new("failing")
                .setting("mode", "fail")
                .setting("class", class)
                .setting("retry_after_ms", "1500"),
        )
        .expect("instance")
    };

    let error = failing("retryable")
        .send(message("k", "-"))
        .await
        .expect_err("retryable");
    assert_eq!(
        error,
        PluginError::Retryable {
            message: "the probe failed on purpose".into(),
            retry_after: Some(SignedDuration::from_millis(1500)),
        }
    );
    assert_eq!(error.class(), ErrorClass::Retryable);
    assert!(!error.is_sandbox_fault());

    let error = failing("permanent")
        .send(message("k", "-"))
        .await
        .expect_err("permanent");
    assert_eq!(
        error,
        PluginError::Permanent("the probe failed on purpose".into())
    );
    assert_eq!(error.class(), ErrorClass::Permanent);

    let error = failing("misconfigured")
        .check()
        .await
        .expect_err("misconfigured check");
    assert_eq!(error.class(), ErrorClass::Misconfigured);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_reach_only_their_instance_with_defaults_filled_in() {
    let host = host();
    let plugin = load_test_plugin(&host, "probe-sender").await;
    let dump = |instance: &str, token: &str| {
        host.sender(
            &plugin,
            InstanceConfig::new(instance)
                .setting("mode", "settings")
                .secret("token", token),
        )
        .expect("instance")
    };
    let (a, b) = (dump("canal-a", "token-of-a"), dump("canal-b", "token-of-b"));
    let (ra, rb) = tokio::join!(a.send(message("k", "-")), b.send(message("k", "-")));
    let seen_by_a: serde_json::Value =
        serde_json::from_str(&ra.expect("a").provider_message_id.expect("a's settings"))
            .expect("json");
    let seen_by_b: serde_json::Value =
        serde_json::from_str(&rb.expect("b").provider_message_id.expect("b's settings"))
            .expect("json");
    assert_eq!(
        seen_by_a,
        serde_json::json!({"mode": "settings", "token": "token-of-a", "greeting": "olá"})
    );
    assert_eq!(seen_by_b["token"], "token-of-b");

    // The plugin's declared default is used when the key is unset, not when set.
    let receipt = host
        .sender(
            &plugin,
            InstanceConfig::new("greeter").setting("greeting", "oi"),
        )
        .expect("instance")
        .send(message("k9", "-"))
        .await
        .expect("receipt");
    assert_eq!(receipt.provider_message_id.as_deref(), Some("oi k9"));
    assert_eq!(receipt.recipient_id.as_deref(), Some("+5511987654321"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_import_returns_wall_clock_milliseconds() {
    let host = host();
    let plugin = load_test_plugin(&host, "probe-sender").await;
    let before = Timestamp::now().as_millisecond();
    let receipt = host
        .sender(
            &plugin,
            InstanceConfig::new("clock").setting("mode", "clock"),
        )
        .expect("instance")
        .send(message("k", "-"))
        .await
        .expect("clock call");
    let after = Timestamp::now().as_millisecond();
    let seen: i64 = receipt
        .provider_message_id
        .expect("time")
        .parse()
        .expect("a number");
    assert!(
        (before..=after).contains(&seen),
        "{before} <= {seen} <= {after}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_logs_are_tagged_and_secrets_scrubbed() {
    let logs = captured_logs();
    let host = host();
    let plugin = load_test_plugin(&host, "probe-sender").await;
    // `token` is declared secret by the plugin; `extra` is secret by config only.
    let config = InstanceConfig::new("canal-logs")
        .setting("mode", "log-secret")
        .setting("token", "tok-S3CRET-value")
        .secret("extra", "visible");
    host.sender(&plugin, config)
        .expect("instance")
        .send(message("k", "-"))
        .await
        .expect("send");

    let text = log_text(&logs);
    let line = text
        .lines()
        .find(|l| l.contains("calling the provider with token"))
        .expect("the plugin's log line")
        .to_owned();
    assert!(
        !text.contains("tok-S3CRET-value"),
        "a secret reached the log:\n{text}"
    );
    assert!(
        line.contains("WARN") && line.contains("arauto::plugin::guest"),
        "{line}"
    );
    assert!(
        line.contains("plugin=probe-sender instance=canal-logs"),
        "{line}"
    );
    assert!(line.contains("with token <redacted>"), "{line}");
    // The value "visible" is itself a secret of this instance (config-only), so
    // the plugin's harmless `note=visible` field is scrubbed as well.
    assert!(
        line.contains("token=<redacted>") && line.contains("note=<redacted>"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_or_foreign_files_are_refused_by_name() {
    let host = host();
    let future = test_plugin("future-api-sender");
    let error = host
        .load(&future)
        .await
        .expect_err("a plugin built for API 1.0");
    assert_eq!(
        error,
        PluginError::UnsupportedApi {
            path: future.clone(),
            needs: "1.x".into(),
            supported: "0.1, 0.2".into()
        }
    );
    assert_eq!(
        error.to_string(),
        format!(
            "plugin {} needs plugin API 1.x, this arauto supports 0.1, 0.2",
            future.display()
        )
    );
    assert_eq!(error.class(), ErrorClass::Misconfigured);

    let dir = tempfile::tempdir().expect("tempdir");
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"\0asm not really").expect("writing junk");
    let error = host.load(&junk).await.expect_err("junk");
    assert!(
        matches!(&error, PluginError::Load { path, reason } if *path == junk && reason.contains("not a valid WebAssembly component")),
        "{error:?}"
    );

    let missing = dir.path().join("missing.wasm");
    let error = host.load(&missing).await.expect_err("missing file");
    assert!(
        error.to_string().contains("missing.wasm") && error.to_string().contains("cannot read"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_configuration_errors_name_the_instance() {
    let host = host();
    let connector = load_test_plugin(&host, "sample-connector").await;
    let sender = load_test_plugin(&host, "probe-sender").await;

    let error = host
        .sender(&connector, InstanceConfig::new("zap"))
        .expect_err("connector used as sender");
    assert!(
        matches!(&error, PluginError::Misconfigured(m) if m.contains("instance zap") && m.contains("is a connector, not a sender")),
        "{error:?}"
    );

    let error = host
        .connector(&connector, InstanceConfig::new("loja-sem-chave"))
        .expect_err("missing api_key");
    assert!(
        matches!(&error, PluginError::Misconfigured(m) if m.contains("loja-sem-chave") && m.contains("api_key (Platform API key)")),
        "{error:?}"
    );

    let mut config = InstanceConfig::new("canal-hosts");
    config.allowed_hosts = Some(vec!["api.example.com".into()]);
    let error = host
        .sender(&sender, config)
        .expect_err("host without scheme");
    assert!(
        matches!(&error, PluginError::Misconfigured(m) if m.contains("canal-hosts") && m.contains("\"api.example.com\"") && m.contains("scheme is required")),
        "{error:?}"
    );

    let mut config = InstanceConfig::new("canal-budget");
    config.requests_per_minute = Some(0);
    assert!(host.sender(&sender, config).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_on_one_instance_each_get_their_own_sandbox() {
    let host = host();
    let plugin = load_test_plugin(&host, "probe-sender").await;
    let instance = host
        .sender(&plugin, InstanceConfig::new("busy"))
        .expect("instance");
    let calls = (0..16).map(|n| {
        let instance = instance.clone();
        async move { instance.send(message(&format!("job-{n}"), "-")).await }
    });
    let receipts = futures::future::join_all(calls).await;
    for (n, receipt) in receipts.into_iter().enumerate() {
        assert_eq!(
            receipt.expect("concurrent send").provider_message_id,
            Some(format!("olá job-{n}"))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_describes_connectors_and_senders() {
    let path = test_plugin("sample-connector");
    let report = inspect(&path).await.expect("inspect sample-connector");
    assert_eq!(report.wit_package, "arauto:plugin@0.2.0");
    assert_eq!(report.plugin.kind, PluginKind::Connector);
    assert_eq!(report.file, path);
    assert_eq!(report.sha256.len(), 64);

    let json = serde_json::to_value(&report).expect("report as JSON");
    assert_eq!(json["name"], "sample-connector");
    assert_eq!(json["kind"], "connector");
    assert_eq!(json["api_version"], "0.2.0");
    assert_eq!(json["contract"], "0.2");
    assert_eq!(
        json["connector"]["requests_per_minute"],
        serde_json::Value::Null
    );
    assert_eq!(json["connector"]["push"]["verify"], true);
    assert_eq!(json["connector"]["declared_by"], "plugin");
    assert!(json.get("sender").is_none());
    assert_eq!(json["default_hosts"][1], "https://*.cdn.sample.example");
    assert_eq!(json["config_keys"][0]["name"], "api_key");
    assert_eq!(json["config_keys"][0]["secret"], true);
    assert_eq!(json["connector"]["platform"], "sample");
    assert_eq!(
        json["connector"]["capabilities"]["pix_reminder"]["supported"],
        true
    );
    assert_eq!(
        json["connector"]["statuses"][3]["notification"],
        "order-shipped"
    );

    let text = report.to_string();
    // Column widths follow the longest cell; compare words and their order.
    let words = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
    let flat = words(&text);
    for expected in [
        "sample-connector 0.3.1 (connector)",
        "plugin API arauto:plugin@0.2.0",
        "rate limit none",
        "pushes verified, registers itself",
        "api_key required secret Platform API key",
        "page_size optional Orders per page (default: 50)",
        "boleto reminder no the platform does not expose the boleto barcode",
        "pedido_enviado Pedido Enviado order-shipped 4",
        "pedido_cancelado Pedido Cancelado order-canceled - yes",
    ] {
        assert!(flat.contains(expected), "missing {expected:?} in:\n{text}");
    }

    let host = host();
    let echo = host
        .inspect(test_plugin("echo-sender"))
        .await
        .expect("inspect echo-sender");
    assert_eq!(echo.plugin.kind, PluginKind::Sender);
    assert!(echo.connector.is_none());
    let text = echo.to_string();
    assert!(
        text.contains("echo-sender 0.1.0 (sender)") && text.contains("default hosts  (none)"),
        "{text}"
    );
    assert!(!text.contains("status catalogue"), "{text}");
    assert!(
        text.contains("recipient      customer-phone")
            && text.contains("min interval   1s")
            && text.contains("idempotent     no"),
        "{text}"
    );
    let json = serde_json::to_value(&echo).expect("report as JSON");
    assert_eq!(
        json["sender"],
        serde_json::json!({
            "recipient": "customer-phone",
            "default_min_interval": "1s",
            "default_daily_cap": null,
            "idempotent": false,
            "declared_by": "plugin",
        })
    );

    // A contract 0.1 sender declares nothing: the name table fills it in,
    // and inspect says so.
    let legacy = host
        .inspect(test_plugin("legacy-sender"))
        .await
        .expect("inspect legacy-sender");
    let json = serde_json::to_value(&legacy).expect("report as JSON");
    assert_eq!(json["contract"], "0.1");
    assert_eq!(json["sender"]["recipient"], "customer-phone");
    assert_eq!(json["sender"]["declared_by"], "name-table-0.1");
    let text = legacy.to_string();
    assert!(
        text.contains("0.1 (deprecated: rebuild against 0.2)")
            && text.contains("customer-phone (from arauto's 0.1 name table)"),
        "{text}"
    );
}

/// Contract 0.2's push calls cross the boundary: a verified push names the
/// orders to look at (bounded by the host), a wrong token is misconfigured,
/// an ignore hint keeps its reason (redacted), `look-at` reaches the next poll, and
/// register/unregister reach the platform's admin endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_are_verified_bounded_and_looked_at() {
    let logs = captured_logs();
    let server = TestServer::start().await;
    let host = host();
    let plugin = load_test_plugin(&host, "sample-connector").await;
    let config = server
        .instance("loja-push")
        .secret("api_key", "chave")
        .secret("webhook_token", "tok-123")
        .setting("push_admin_url", server.url("/inbox"));
    let connector = host.connector(&plugin, config).expect("connector instance");
    let push = |token: &str, body: serde_json::Value| PushRequest {
        headers: vec![("authorization".into(), format!("Bearer {token}"))],
        body: body.to_string().into_bytes(),
    };

    let hint = connector
        .verify_push(push("tok-123", serde_json::json!({"orders": ["10005"]})))
        .await
        .expect("a verified push");
    assert_eq!(hint, PushHint::LookAt(vec!["10005".into()]));

    // More orders than a poll may look at, and an id no order can have:
    // the hint is cut, not trusted.
    let mut many: Vec<String> = (0..150).map(|n| (10_000 + n).to_string()).collect();
    many.insert(0, "9".repeat(300));
    let PushHint::LookAt(kept) = connector
        .verify_push(push("tok-123", serde_json::json!({ "orders": many })))
        .await
        .expect("a verified push")
    else {
        panic!("a look-at hint");
    };
    assert_eq!(kept.len(), MAX_LOOK_AT);
    assert_eq!(kept[0], "10000");

    let ignored = connector
        .verify_push(push(
            "tok-123",
            serde_json::json!({"ignore": "situacao_alterada false"}),
        ))
        .await
        .expect("an authentic repeat");
    assert_eq!(ignored, PushHint::Ignore("situacao_alterada false".into()));
    // The reason is plugin text bound for the log: secrets are redacted as
    // in error messages.
    let quoting = connector
        .verify_push(push(
            "tok-123",
            serde_json::json!({"ignore": "a repeat for tok-123 and chave"}),
        ))
        .await
        .expect("an authentic repeat");
    assert_eq!(
        quoting,
        PushHint::Ignore("a repeat for <redacted> and <redacted>".into())
    );

    let refused = connector
        .verify_push(push("wrong", serde_json::json!({"orders": ["10005"]})))
        .await
        .expect_err("a wrong token");
    assert_eq!(refused.class(), ErrorClass::Misconfigured);

    let page = connector
        .poll(PollRequest {
            look_at: vec!["10005".into()],
            ..PollRequest::default()
        })
        .await
        .expect("a poll looking at one order");
    assert!(page.orders.iter().any(|o| o.id == "10005" && o.detailed));
    assert!(log_text(&logs).contains("looked at 10005"));

    connector
        .register_push("https://arauto.example/hooks/loja-push")
        .await
        .expect("register");
    connector
        .unregister_push("https://arauto.example/hooks/loja-push")
        .await
        .expect("unregister");
    let inbox = server.inbox();
    assert_eq!(inbox.len(), 2, "{inbox:?}");
    assert!(
        inbox
            .iter()
            .all(|body| body.contains("https://arauto.example/hooks/loja-push")),
        "{inbox:?}"
    );
}

/// A contract 0.1 sender declares nothing: its declarations come from the
/// name table, and it is still only a sender.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contract_0_1_sender_gets_its_declarations_from_the_name_table() {
    let host = host();
    let legacy = load_test_plugin(&host, "legacy-sender").await;
    assert_eq!(legacy.api_version().to_string(), "0.1.0");
    let info = legacy.sender_info().expect("a sender's declarations");
    assert_eq!(info.declared_by, arauto::model::DeclaredBy::NameTable);
    assert!(host.connector(&legacy, InstanceConfig::new("x")).is_err());
}
