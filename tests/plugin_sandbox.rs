//! The sandbox holds against misbehaving plugins, and the same host keeps
//! running healthy plugins afterwards.
//!
//! The misbehaviour comes from `tests/plugins/probe-sender`, a sender that
//! does what its `mode` setting says; HTTP targets are a real server on
//! 127.0.0.1 (`support::host::TestServer`).

// All test code: with this, clippy's allow-unwrap/expect-in-tests covers the
// helper functions too, not only the #[test] ones (see clippy.toml).
#![cfg(test)]

use crate::support;

use std::time::{Duration, Instant};

use arauto::plugin::{
    ErrorClass, HostConfig, InstanceConfig, Plugin, PluginError, PluginHost, SenderInstance,
};
use jiff::SignedDuration;
use support::host::{TestServer, assert_host_still_healthy, host, load_test_plugin, message};

async fn probe(host: &PluginHost) -> Plugin {
    load_test_plugin(host, "probe-sender").await
}

fn sender(host: &PluginHost, plugin: &Plugin, config: InstanceConfig) -> SenderInstance {
    host.sender(plugin, config)
        .expect("creating the probe instance")
}

/// Run the probe's `fetch` mode against `url` and return (outcomes, last body).
async fn fetch(
    host: &PluginHost,
    plugin: &Plugin,
    config: InstanceConfig,
    url: &str,
) -> (String, Option<String>) {
    let instance = sender(
        host,
        plugin,
        config.setting("mode", "fetch").setting("url", url),
    );
    let receipt = instance
        .send(message("fetch", "-"))
        .await
        .expect("fetch call");
    (
        receipt.provider_message_id.expect("fetch outcome"),
        receipt.recipient_id,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinite_loop_is_interrupted_when_the_call_budget_runs_out() {
    let server = TestServer::start().await;
    let host = host();
    let plugin = probe(&host).await;
    let mut config = InstanceConfig::new("spinner").setting("mode", "spin");
    config.call_timeout = SignedDuration::from_millis(300);
    let spinner = sender(&host, &plugin, config);

    let started = Instant::now();
    let error = spinner
        .send(message("k1", "loop"))
        .await
        .expect_err("spinning send");
    let elapsed = started.elapsed();

    assert_eq!(
        error,
        PluginError::CpuInterrupted {
            plugin: "probe-sender".into(),
            instance: "spinner".into(),
            budget: Duration::from_millis(300),
        }
    );
    assert_eq!(error.class(), ErrorClass::Sandbox);
    assert!(error.to_string().contains("300ms"), "{error}");
    // Stopped by this call's 300 ms budget, not by some default.
    assert!(
        elapsed >= Duration::from_millis(300),
        "stopped early: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(10),
        "not stopped by its budget: {elapsed:?}"
    );

    // `check` of the same instance spins too and is stopped the same way.
    assert!(matches!(
        spinner.check().await,
        Err(PluginError::CpuInterrupted { .. })
    ));
    assert_host_still_healthy(&host, &server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_bomb_traps_at_the_instance_cap() {
    let server = TestServer::start().await;
    let host = host();
    let plugin = probe(&host).await;
    let mut config = InstanceConfig::new("hoarder").setting("mode", "memory-bomb");
    config.memory_limit = 16 * 1024 * 1024;
    let hoarder = sender(&host, &plugin, config);

    let error = hoarder
        .send(message("k1", "grow"))
        .await
        .expect_err("memory bomb");
    match &error {
        PluginError::MemoryLimit {
            plugin,
            instance,
            limit,
            requested,
        } => {
            assert_eq!(
                (plugin.as_str(), instance.as_str()),
                ("probe-sender", "hoarder")
            );
            assert_eq!(*limit, 16 * 1024 * 1024);
            assert!(*requested > *limit, "requested {requested}");
        }
        other => panic!("expected a memory-limit fault, got {other:?}"),
    }
    assert!(error.to_string().contains("memory limit"), "{error}");
    assert_host_still_healthy(&host, &server).await;
}

/// Pool slots are reused and keep their pages resident between calls; what
/// one call wrote (statics, heap) must still be gone for the next one, for
/// the same instance and for another instance of the same plugin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_starts_from_the_plugins_initial_memory() {
    let host = host();
    let plugin = probe(&host).await;
    let counter = sender(
        &host,
        &plugin,
        InstanceConfig::new("counter").setting("mode", "count"),
    );
    let scribbler = sender(
        &host,
        &plugin,
        InstanceConfig::new("scribbler").setting("mode", "scribble"),
    );
    for round in 0..20 {
        let scribbled = scribbler
            .send(message(&format!("s{round}"), "-"))
            .await
            .expect("scribble call");
        assert_eq!(scribbled.provider_message_id.as_deref(), Some("1000"));
        for call in 0..3 {
            let counted = counter
                .send(message(&format!("c{round}-{call}"), "-"))
                .await
                .expect("count call");
            assert_eq!(
                counted.provider_message_id.as_deref(),
                Some("1"),
                "round {round}, call {call}: the static kept a value from an earlier call"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_becomes_a_typed_error_carrying_the_panic_message() {
    let server = TestServer::start().await;
    let host = host();
    let plugin = probe(&host).await;
    let panicker = sender(
        &host,
        &plugin,
        InstanceConfig::new("panicker").setting("mode", "panic"),
    );

    let error = panicker
        .send(message("k1", "kaboom"))
        .await
        .expect_err("panicking send");
    match &error {
        PluginError::Trapped {
            plugin,
            instance,
            trap,
            panic,
        } => {
            assert_eq!(
                (plugin.as_str(), instance.as_str()),
                ("probe-sender", "panicker")
            );
            assert!(trap.contains("unreachable"), "{trap}");
            let panic = panic.as_deref().expect("the panic message");
            assert!(
                panic.contains("probe panicked on purpose: kaboom"),
                "{panic}"
            );
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    assert!(error.to_string().contains("panicked"), "{error}");
    assert_host_still_healthy(&host, &server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_to_a_host_off_the_allowlist_is_denied() {
    let server = TestServer::start().await;
    let host = host();
    let plugin = probe(&host).await;

    // The sysadmin's list names another host.
    let mut config = InstanceConfig::new("listed");
    config.allowed_hosts = Some(vec!["https://api.elsewhere.example".into()]);
    config.allow_private_addresses = true;
    let (outcome, _) = fetch(&host, &plugin, config, &server.url("/ok")).await;
    assert!(outcome.starts_with("err:HttpError::Denied("), "{outcome}");
    assert!(
        outcome.contains("not on the allowlist of instance listed"),
        "{outcome}"
    );
    assert!(
        outcome.contains("https://api.elsewhere.example"),
        "{outcome}"
    );

    // No list in the config: the plugin's own default hosts apply.
    let mut config = InstanceConfig::new("defaults");
    config.allow_private_addresses = true;
    let (outcome, _) = fetch(&host, &plugin, config, &server.url("/ok")).await;
    assert!(
        outcome.contains("not on the allowlist") && outcome.contains("https://api.probe.example"),
        "{outcome}"
    );

    // Same host, other port: still denied.
    let mut config = server.instance("other-port");
    config.allowed_hosts = Some(vec![format!(
        "http://127.0.0.1:{}",
        server.addr.port().wrapping_add(1)
    )]);
    let (outcome, _) = fetch(&host, &plugin, config, &server.url("/ok")).await;
    assert!(outcome.starts_with("err:HttpError::Denied("), "{outcome}");

    assert_eq!(server.hits("/ok"), 0, "a denied request reached the server");
    assert_host_still_healthy(&host, &server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_addresses_are_denied_unless_allowed() {
    let server = TestServer::start().await;
    let host = host();
    let plugin = probe(&host).await;

    // A literal loopback address on the allowlist is still refused...
    let mut config = server.instance("literal");
    config.allow_private_addresses = false;
    let (outcome, _) = fetch(&host, &plugin, config, &server.url("/ok")).await;
    assert!(outcome.starts_with("err:HttpError::Denied("), "{outcome}");
    assert!(outcome.contains("loopback"), "{outcome}");

    // ...and so is a name that resolves to one (checked in the DNS resolver).
    let named = format!("http://localhost:{}", server.addr.port());
    let mut config = InstanceConfig::new("named");
    config.allowed_hosts = Some(vec![named.clone()]);
    let (outcome, _) = fetch(&host, &plugin, config, &format!("{named}/ok")).await;
    assert!(outcome.starts_with("err:HttpError::Denied("), "{outcome}");
    assert!(
        outcome.contains("localhost resolves to") && outcome.contains("loopback"),
        "{outcome}"
    );
    assert_eq!(server.hits("/ok"), 0, "a denied request reached the server");

    // With the explicit grant the same request goes through.
    let (outcome, body) = fetch(
        &host,
        &plugin,
        server.instance("granted"),
        &server.url("/ok"),
    )
    .await;
    assert_eq!((outcome.as_str(), body.as_deref()), ("200", Some("ok")));
    assert_host_still_healthy(&host, &server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_larger_than_the_cap_is_refused() {
    let server = TestServer::start().await;
    let host = host();
    let plugin = probe(&host).await;
    let capped = || {
        let mut config = server.instance("capped");
        config.max_response_bytes = 64 * 1024;
        config
    };

    // Announced by Content-Length, and streamed without one.
    let (outcome, _) = fetch(&host, &plugin, capped(), &server.url("/big")).await;
    assert_eq!(outcome, "err:HttpError::TooLarge(65536)");
    let (outcome, _) = fetch(&host, &plugin, capped(), &server.url("/big-stream")).await;
    assert_eq!(outcome, "err:HttpError::TooLarge(65536)");

    // Under a larger cap the same bodies arrive whole.
    let (outcome, body) = fetch(
        &host,
        &plugin,
        // Receipt ids are capped at 256 bytes: the probe reports the length.
        server.instance("roomy").setting("body", "length"),
        &server.url("/big-stream"),
    )
    .await;
    assert_eq!(outcome, "200");
    assert_eq!(body, Some(format!("<{} bytes>", support::host::BIG_BODY)));
    assert_host_still_healthy(&host, &server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_in_a_host_call_is_bounded_by_the_call_budget() {
    let server = TestServer::start().await;
    let host = host();
    let plugin = probe(&host).await;
    let mut config = server.instance("waiter");
    config.call_timeout = SignedDuration::from_millis(400);

    let instance = sender(
        &host,
        &plugin,
        config
            .setting("mode", "fetch")
            .setting("url", server.url("/never")),
    );
    let started = Instant::now();
    let error = instance
        .send(message("k1", "-"))
        .await
        .expect_err("send waiting on a silent server");
    let elapsed = started.elapsed();
    match &error {
        PluginError::Timeout {
            plugin,
            instance,
            budget,
            during,
        } => {
            assert_eq!(
                (plugin.as_str(), instance.as_str()),
                ("probe-sender", "waiter")
            );
            assert_eq!(*budget, Duration::from_millis(400));
            assert!(
                during.contains(&format!("HTTP response from {}", server.origin())),
                "{during}"
            );
        }
        other => panic!("expected a wall-clock timeout, got {other:?}"),
    }
    assert!(
        elapsed < Duration::from_secs(10),
        "not bounded by the 400 ms budget: {elapsed:?}"
    );
    assert_eq!(server.hits("/never"), 1);

    // A shorter timeout the plugin asks for itself comes back to the plugin
    // as an `http-error::timeout` value; the call goes on.
    let patient = server.instance("patient").setting("timeout_ms", "100");
    let (outcome, _) = fetch(&host, &plugin, patient, &server.url("/never")).await;
    assert_eq!(outcome, "err:HttpError::Timeout");
    assert_host_still_healthy(&host, &server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_followed_only_to_allowed_destinations() {
    let server = TestServer::start().await;
    let host = host();
    let plugin = probe(&host).await;

    let (outcome, body) = fetch(
        &host,
        &plugin,
        server.instance("same-origin"),
        &server.url("/redirect-ok"),
    )
    .await;
    assert_eq!((outcome.as_str(), body.as_deref()), ("200", Some("ok")));
    assert_eq!(server.hits("/ok"), 1);

    // `localhost` is the same machine but not on the list: the hop is denied.
    let (outcome, _) = fetch(
        &host,
        &plugin,
        server.instance("away"),
        &server.url("/redirect-away"),
    )
    .await;
    assert!(
        outcome.starts_with("err:HttpError::Denied(\"redirect from"),
        "{outcome}"
    );
    assert_eq!(server.hits("/ok"), 1, "the denied hop reached the server");
    assert_host_still_healthy(&host, &server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_budget_per_minute_is_enforced_per_instance() {
    let server = TestServer::start().await;
    let host = host();
    let plugin = probe(&host).await;
    // 2/min: a burst of one, the next cell 30 s later, which is more than
    // half of what a 2 s call has left: refused at once, not waited for.
    let mut config = server.instance("budgeted").setting("repeat", "3");
    config.requests_per_minute = Some(2);
    config.call_timeout = SignedDuration::from_secs(2);
    let (outcome, _) = fetch(&host, &plugin, config, &server.url("/ok")).await;
    assert_eq!(
        outcome,
        "200,err:HttpError::BudgetExhausted,err:HttpError::BudgetExhausted"
    );
    assert_eq!(server.hits("/ok"), 1);

    // Another instance of the same plugin has its own budget.
    let mut config = server.instance("other-budget").setting("repeat", "1");
    config.requests_per_minute = Some(2);
    let (outcome, _) = fetch(&host, &plugin, config, &server.url("/ok")).await;
    assert_eq!(outcome, "200");
}

/// Past the small burst, a request waits for its cell (when the call has time
/// for it) instead of failing: the budget paces, it does not cut pages short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_budget_paces_requests_past_the_burst() {
    let server = TestServer::start().await;
    let host = host();
    let plugin = probe(&host).await;
    // 300/min: a burst of 30, then one cell every ~221 ms.
    let mut config = server.instance("paced").setting("repeat", "40");
    config.requests_per_minute = Some(300);
    let (outcome, _) = fetch(&host, &plugin, config, &server.url("/ok")).await;
    assert_eq!(outcome, vec!["200"; 40].join(","));
    assert_eq!(server.hits("/ok"), 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_call_is_interrupted_and_frees_its_slot() {
    let server = TestServer::start().await;
    // One sandbox slot: the next call can only start once the abandoned one
    // has really stopped.
    let mut config = HostConfig::with_cache_dir(support::host::shared_cache_dir());
    config.max_concurrent_calls = 1;
    let host = PluginHost::new(config).expect("host with one slot");
    let plugin = probe(&host).await;
    // A 30 s budget: only the caller giving up can end this call early.
    let spinner = sender(
        &host,
        &plugin,
        InstanceConfig::new("abandoned").setting("mode", "spin"),
    );
    let gave_up =
        tokio::time::timeout(Duration::from_millis(200), spinner.send(message("k1", "-"))).await;
    assert!(gave_up.is_err(), "the spinning call returned: {gave_up:?}");
    // Far less than the abandoned call's 30 s budget.
    let healthy = tokio::time::timeout(
        Duration::from_secs(10),
        assert_host_still_healthy(&host, &server),
    )
    .await;
    assert!(healthy.is_ok(), "the abandoned call kept its slot");
}
