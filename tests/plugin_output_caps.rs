//! The host bounds what a plugin hands back (issue 18, point 7): a huge error
//! message, receipt id, cursor, customer name or log call cannot reach the
//! log, the state database or the operator's screen at full size.
//!
//! The hostile output comes from `tests/plugins/probe-sender` (modes
//! `huge-error`, `huge-receipt`, `log-fields`) and
//! `tests/plugins/sample-connector` (`broken = huge-cursor | huge-name | huge-id`).

// All test code: with this, clippy's allow-unwrap/expect-in-tests covers the
// helper functions too, not only the #[test] ones (see clippy.toml).
#![cfg(test)]

use crate::support;

use arauto::plugin::{InstanceConfig, PluginError, PollRequest};
use support::host::{host, load_test_plugin, message, test_connector, test_sender};
use support::logs::{captured_logs, log_text};

/// Room for the hostile output inside the guest (it builds the 100 MB
/// string, then the host copies it out).
const ROOMY: u64 = 512 * 1024 * 1024;

fn roomy(instance: &str) -> InstanceConfig {
    let mut config = InstanceConfig::new(instance);
    config.memory_limit = ROOMY;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mb_error_message_is_cut_to_4_kib_with_a_marker() {
    let logs = captured_logs();
    let host = host();
    let sender = test_sender(
        &host,
        "probe-sender",
        roomy("canal-erro").setting("mode", "huge-error"),
    )
    .await;
    let error = sender
        .send(message("k", "-"))
        .await
        .expect_err("huge error");
    let PluginError::Permanent(text) = &error else {
        panic!("expected the plugin's permanent error, got {error:?}");
    };
    // What the queue stores and `queue list` shows is this text.
    assert!(text.len() <= 4096 + 40, "{} bytes", text.len());
    assert!(text.starts_with("EEEE"), "{}", &text[..64]);
    assert!(
        text.ends_with(&format!("…[truncated {} bytes]", 100_000_000 - 4096)),
        "{}",
        &text[text.len() - 64..]
    );
    let logged = log_text(&logs);
    let line = logged
        .lines()
        .find(|l| l.contains("instance=canal-erro") && l.contains("plugin call failed"))
        .expect("the failed call's log line");
    assert!(line.len() < 8 * 1024, "log line of {} bytes", line.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_receipt_ids_are_cut_to_256_bytes() {
    let host = host();
    let sender = test_sender(
        &host,
        "probe-sender",
        roomy("canal-recibo")
            .setting("mode", "huge-receipt")
            .setting("size", "20000000"),
    )
    .await;
    let receipt = sender.send(message("k", "-")).await.expect("send");
    let id = receipt.provider_message_id.expect("provider message id");
    let recipient = receipt.recipient_id.expect("recipient id");
    for (text, letter) in [(&id, "I"), (&recipient, "R")] {
        assert!(text.len() <= 256 + 40, "{} bytes", text.len());
        assert!(text.starts_with(&letter.repeat(256)), "{text}");
        assert!(
            text.ends_with(&format!("…[truncated {} bytes]", 20_000_000 - 256)),
            "{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_log_fields_make_one_bounded_line() {
    let logs = captured_logs();
    let host = host();
    let sender = test_sender(
        &host,
        "probe-sender",
        roomy("canal-campos")
            .setting("mode", "log-fields")
            .setting("size", "1000000"),
    )
    .await;
    sender.send(message("k", "-")).await.expect("send");
    let logged = log_text(&logs);
    let line = logged
        .lines()
        .find(|l| l.contains("instance=canal-campos") && l.contains("many fields"))
        .expect("the plugin's log line");
    assert!(line.len() < 4 * 1024, "log line of {} bytes", line.len());
    assert!(line.contains("k0=v0") && line.contains("k31=v31"), "{line}");
    assert!(!line.contains("k32=v32"), "{line}");
    assert!(line.contains("dropped_fields=999968"), "{line}");
}

fn sample(instance: &str, broken: &str, size: usize) -> InstanceConfig {
    roomy(instance)
        .secret("api_key", "chave-secreta-123")
        .setting("broken", broken)
        .setting("size", size.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_50_mb_cursor_fails_the_poll_naming_plugin_and_size() {
    let host = host();
    let connector = test_connector(
        &host,
        "sample-connector",
        sample("loja-cursor", "huge-cursor", 50_000_000),
    )
    .await;
    let previous = Some("page-1".to_owned());
    let error = connector
        .poll(PollRequest {
            cursor: previous,
            detail_cutoff: None,
            look_at: Vec::new(),
        })
        .await
        .expect_err("poll with a 50 MB cursor");
    match &error {
        PluginError::InvalidOutput {
            plugin,
            instance,
            detail,
        } => {
            assert_eq!(
                (plugin.as_str(), instance.as_str()),
                ("sample-connector", "loja-cursor")
            );
            assert!(
                detail.contains("50000006 bytes") && detail.contains("4194304"),
                "{detail}"
            );
        }
        other => panic!("expected invalid output, got {other:?}"),
    }
    // A failed poll hands back no page, so the sweep has nothing to commit
    // and the stored cursor stays: tests/daemon_plugin_faults.rs shows it
    // in the state database of a running daemon.
    assert!(error.to_string().len() < 1024, "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_texts_are_cut_and_oversized_ids_refused() {
    let host = host();
    let plugin = load_test_plugin(&host, "sample-connector").await;
    let named = host
        .connector(&plugin, sample("loja-nome", "huge-name", 10_000_000))
        .expect("instance");
    let page = named
        .poll(PollRequest::default())
        .await
        .expect("poll with a huge customer name");
    let name = &page.orders[0].customer.name;
    assert!(name.len() <= 4096 + 40, "{} bytes", name.len());
    assert!(name.ends_with("…[truncated 9995904 bytes]"), "{name}");
    assert_eq!(page.orders[1].customer.name, "João Santos");

    let ided = host
        .connector(&plugin, sample("loja-id", "huge-id", 1_000))
        .expect("instance");
    let page = ided
        .poll(PollRequest::default())
        .await
        .expect("a page with one oversized order id still arrives");
    assert_eq!(page.rejected.len(), 1, "{:?}", page.rejected);
    let rejected = &page.rejected[0];
    assert!(
        rejected.order.len() <= 256 + 40,
        "{} bytes",
        rejected.order.len()
    );
    assert!(
        rejected.reason.contains("id is 1000 bytes") && rejected.reason.contains("256"),
        "{}",
        rejected.reason
    );
    assert!(!page.orders.is_empty(), "the rest of the page arrives");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_more_than_1000_orders_is_refused() {
    let host = host();
    let plugin = load_test_plugin(&host, "sample-connector").await;
    let connector = host
        .connector(
            &plugin,
            roomy("loja-pagina")
                .secret("api_key", "chave-secreta-123")
                .setting("page_size", "1001"),
        )
        .expect("instance");
    let error = connector
        .poll(PollRequest::default())
        .await
        .expect_err("a page of 1001 orders");
    assert!(
        matches!(&error, PluginError::InvalidOutput { detail, .. }
            if detail.contains("1001 orders") && detail.contains("1000")),
        "{error}"
    );
    // At the cap, the page arrives whole.
    let connector = host
        .connector(
            &plugin,
            roomy("loja-pagina-cheia")
                .secret("api_key", "chave-secreta-123")
                .setting("page_size", "1000"),
        )
        .expect("instance");
    let page = connector
        .poll(PollRequest::default())
        .await
        .expect("a page of 1000 orders");
    assert_eq!(page.orders.len(), 1000);
}
