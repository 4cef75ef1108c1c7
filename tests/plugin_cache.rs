//! A restarted host loads plugins from the compiled-artifact cache instead of
//! compiling them again, and a damaged cache entry only costs a recompile.

// All test code: with this, clippy's allow-unwrap/expect-in-tests covers the
// helper functions too, not only the #[test] ones (see clippy.toml).
#![cfg(test)]

use crate::support;

use std::path::Path;

use arauto::plugin::{ArtifactSource, HostConfig, InstanceConfig, PluginHost, PollRequest};
use support::host::{TestServer, load_test_plugin, message};
use support::plugins::test_plugin;

fn cached_artifacts(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("reading the cache directory")
        .map(|e| e.expect("cache entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    files.sort();
    files
}

fn start(cache: &Path) -> PluginHost {
    PluginHost::new(HostConfig::with_cache_dir(cache)).expect("starting a host")
}

/// The loaded plugins still work: a connector page and a sender round trip.
async fn exercise(host: &PluginHost, server: &TestServer) {
    let connector = load_test_plugin(host, "sample-connector").await;
    let page = host
        .connector(
            &connector,
            InstanceConfig::new("loja").secret("api_key", "k"),
        )
        .expect("connector")
        .poll(PollRequest::default())
        .await
        .expect("poll");
    assert_eq!(page.orders.len(), 50);
    support::host::assert_host_still_healthy(host, server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_start_loads_from_the_cache_and_bad_entries_are_recompiled() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let echo = test_plugin("echo-sender");

    // First start: nothing cached, everything compiled and written.
    let first = start(&cache);
    let plugin = first.load(&echo).await.expect("first load");
    assert_eq!(plugin.artifact_source(), ArtifactSource::Compiled);
    assert!(!plugin.loaded_from_cache());
    exercise(&first, &server).await;
    let artifacts = cached_artifacts(&cache);
    assert_eq!(artifacts.len(), 2, "one artifact per plugin: {artifacts:?}");
    assert!(
        artifacts
            .iter()
            .any(|a| a.to_string_lossy().contains(plugin.sha256()))
    );
    drop((plugin, first));

    // Second start (a new engine, as after a restart): no compilation.
    let second = start(&cache);
    let plugin = second.load(&echo).await.expect("second load");
    assert_eq!(plugin.artifact_source(), ArtifactSource::Cache);
    assert!(plugin.loaded_from_cache());
    exercise(&second, &server).await;
    let entry = cached_artifacts(&cache)
        .into_iter()
        .find(|a| a.to_string_lossy().contains(plugin.sha256()))
        .expect("entry");
    drop((plugin, second));

    // A damaged entry is discarded and the plugin compiled again...
    std::fs::write(&entry, b"definitely not machine code").expect("corrupting the entry");
    let third = start(&cache);
    let plugin = third.load(&echo).await.expect("load over a corrupt entry");
    assert_eq!(
        plugin.artifact_source(),
        ArtifactSource::RecompiledBadCacheEntry
    );
    let receipt = third
        .sender(
            &plugin,
            server
                .instance("after-corruption")
                .setting("url", server.url("/inbox")),
        )
        .expect("sender")
        .send(message("k-corrupt", "recompiled"))
        .await
        .expect("send with the recompiled plugin");
    assert_eq!(receipt.provider_message_id.as_deref(), Some("k-corrupt"));
    drop((plugin, third));

    // ...and the rewritten entry serves the next start.
    let fourth = start(&cache);
    assert_eq!(
        fourth
            .load(&echo)
            .await
            .expect("fourth load")
            .artifact_source(),
        ArtifactSource::Cache
    );
    assert_eq!(cached_artifacts(&cache).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_cache_directory_every_load_compiles() {
    let host = PluginHost::new(HostConfig::default()).expect("host without cache");
    assert_eq!(host.cache_dir(), None);
    let plugin = host.load(test_plugin("echo-sender")).await.expect("load");
    assert_eq!(plugin.artifact_source(), ArtifactSource::Compiled);
}

/// `arauto validate` reuses what the daemon compiled but leaves no trace: a
/// read-only cache loads existing entries, writes none, and a missing
/// directory is not created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_cache_reuses_entries_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let echo = test_plugin("echo-sender");
    let connector = test_plugin("sample-connector");
    start(&cache).load(&echo).await.expect("daemon-side load");
    let before = cached_artifacts(&cache);
    assert_eq!(before.len(), 1);

    let reader = PluginHost::new(HostConfig::reading_cache(&cache)).expect("read-only host");
    let plugin = reader.load(&echo).await.expect("read-only load");
    assert_eq!(plugin.artifact_source(), ArtifactSource::Cache);
    let other = reader.load(&connector).await.expect("uncached load");
    assert_eq!(other.artifact_source(), ArtifactSource::Compiled);
    assert_eq!(cached_artifacts(&cache), before, "nothing written");

    let missing = dir.path().join("never-created");
    let reader = PluginHost::new(HostConfig::reading_cache(&missing)).expect("no cache dir");
    reader.load(&echo).await.expect("load without a cache");
    assert!(
        !missing.exists(),
        "a read-only cache never creates its directory"
    );
}
