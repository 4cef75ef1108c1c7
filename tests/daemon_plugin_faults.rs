//! A faulty plugin costs only its own store or channel, and only what the host
//! allows (issue 18):
//!
//! * point 19: one plugin file that cannot load does not stop the daemon: at
//!   start, the channel that uses it is left out and shown red in `arauto
//!   check`, naming the file, while the rest runs; `arauto validate` still
//!   fails for it;
//! * point 7: a connector that returns a 50 MB cursor fails its poll; the
//!   stored cursor stays what the last good page left, and the state database
//!   does not grow.
//!
//! Only the test plugins are used (a connector that needs no network and a
//! sender), so the first-party plugins are not built by this test.

// All test code: with this, clippy's allow-unwrap/expect-in-tests covers the
// helper functions too, not only the #[test] ones (see clippy.toml).
#![cfg(test)]

use crate::support;

use std::path::Path;

use arauto::queue::StateStore;
use arauto::queue::redb::{RedbOptions, RedbStore};
use support::daemon::{Daemon, arauto_test_plugins_only, daemon_section};
use support::plugins::test_plugin;

/// A store on the sample connector sending to two channels: `bom` (the probe
/// sender, answering with a receipt) and `quebrado`, whose file is garbage.
fn config(dir: &Path, broken: &Path) -> String {
    let sample = test_plugin("sample-connector");
    let probe = test_plugin("probe-sender");
    format!(
        r#"{daemon}
[stores.loja1]
platform = "sample"
plugin = {sample:?}
channels = ["bom", "quebrado"]
poll_interval = "2s"

[stores.loja1.settings]
api_key = "chave"

# A test rig: polling faster than the 30 s floor for platforms on the internet.
[stores.loja1.sandbox]
allow_private_addresses = true

[channels.bom]
plugin = "probe-sender"
plugin_path = {probe:?}

[channels.quebrado]
plugin = "quebrado"
plugin_path = {broken:?}
"#,
        daemon = daemon_section(dir, ""),
        sample = sample.display().to_string(),
        probe = probe.display().to_string(),
        broken = broken.display().to_string(),
    )
}

/// A store on the sample connector whose second page carries a 50 MB cursor.
fn huge_cursor_config(dir: &Path) -> String {
    let sample = test_plugin("sample-connector");
    let probe = test_plugin("probe-sender");
    format!(
        r#"{daemon}
[stores.loja1]
platform = "sample"
plugin = {sample:?}
channels = ["bom"]
poll_interval = "2s"

[stores.loja1.settings]
api_key = "chave"
pages = "3"
page_size = "5"
broken = "huge-cursor"

# A test rig: polling faster than the 30 s floor for platforms on the internet.
[stores.loja1.sandbox]
memory_limit = "512MiB"
allow_private_addresses = true

[channels.bom]
plugin = "probe-sender"
plugin_path = {probe:?}
"#,
        daemon = daemon_section(dir, ""),
        sample = sample.display().to_string(),
        probe = probe.display().to_string(),
    )
}

#[test]
fn a_50_mb_cursor_fails_the_poll_and_the_stored_cursor_stays() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("arauto.toml");
    std::fs::write(&config_path, huge_cursor_config(dir.path())).expect("write config");
    let mut daemon = Daemon::spawn_test_plugins_only(dir, config_path);
    daemon.await_notice("READY=1");
    let (at, failure) = daemon
        .stderr
        .wait_for_all_from(0, &["loja1", "50000006 bytes", "4194304"]);
    assert!(
        failure.len() < 8 * 1024,
        "the poll failure was logged in {} bytes",
        failure.len()
    );
    // A second sweep fails the same way: the cursor was never stored.
    daemon
        .stderr
        .wait_for_all_from(at + 1, &["loja1", "50000006 bytes"]);
    daemon.kill();

    let state_dir = daemon.dir.path().join("state");
    let db = RedbStore::open(&state_dir, RedbOptions::default()).expect("open the state database");
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let cursor = runtime
        .block_on(db.cursor("loja1"))
        .expect("read the cursor");
    assert_eq!(cursor.as_deref(), Some("page-1"));
    let size = std::fs::metadata(state_dir.join(arauto::queue::redb::FILE_NAME))
        .expect("state database file")
        .len();
    assert!(size < 8 * 1024 * 1024, "state database of {size} bytes");
}

#[test]
fn a_plugin_file_that_does_not_load_skips_its_channel_and_the_rest_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broken = dir.path().join("quebrado.wasm");
    std::fs::write(&broken, b"\0asm this is not a component").expect("write broken plugin");
    let config_path = dir.path().join("arauto.toml");
    std::fs::write(&config_path, config(dir.path(), &broken)).expect("write config");

    // validate stays strict: it fails and names the file.
    let validate = arauto_test_plugins_only()
        .args(["validate", "--config"])
        .arg(&config_path)
        .output()
        .expect("run arauto validate");
    let said = String::from_utf8_lossy(&validate.stderr).into_owned()
        + &String::from_utf8_lossy(&validate.stdout);
    assert!(!validate.status.success(), "validate accepted it:\n{said}");
    assert!(
        said.contains("channels.quebrado") && said.contains("quebrado.wasm"),
        "{said}"
    );

    // run degrades: the daemon starts and says what it left out.
    let mut daemon = Daemon::spawn_test_plugins_only(dir, config_path.clone());
    let ready = daemon.await_notice("READY=1");
    assert!(
        ready.contains("not running (plugin does not load): channels.quebrado"),
        "{ready}"
    );
    let (_, skipped) = daemon
        .stderr
        .wait_for_all_from(0, &["channels.quebrado is not running", "quebrado.wasm"]);
    assert!(skipped.contains("ERROR"), "{skipped}");
    // The store polls through its (healthy) connector.
    daemon
        .stderr
        .wait_for_all_from(0, &["poll complete", "loja1"]);

    // check: the broken channel is red and names the file; the rest is there.
    let check = arauto_test_plugins_only()
        .args(["check", "--json", "--config"])
        .arg(&config_path)
        .output()
        .expect("run arauto check");
    assert_eq!(
        check.status.code(),
        Some(1),
        "check should exit 1 on a red line: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let checklist: serde_json::Value =
        serde_json::from_slice(&check.stdout).expect("check --json is JSON");
    assert_eq!(checklist["daemon_running"], true, "{checklist:#}");
    let sections = checklist["sections"].as_array().expect("sections");
    let section = |kind: &str, id: &str| {
        sections
            .iter()
            .find(|s| s["kind"] == kind && s["id"] == id)
            .unwrap_or_else(|| panic!("no {kind} section {id}: {checklist:#}"))
    };
    let quebrado = section("channel", "quebrado");
    assert_eq!(quebrado["status"], "fail", "{quebrado:#}");
    let line = &quebrado["lines"][0];
    assert_eq!(
        (line["item"].as_str(), line["status"].as_str()),
        (Some("plugin"), Some("fail")),
        "{line:#}"
    );
    let text = line["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("quebrado.wasm") && text.contains("not a valid WebAssembly component"),
        "{text}"
    );
    let store_plugin = &section("store", "loja1")["lines"][0];
    assert_eq!(store_plugin["status"], "ok", "{store_plugin:#}");
    let bom_plugin = &section("channel", "bom")["lines"][0];
    assert_eq!(bom_plugin["status"], "ok", "{bom_plugin:#}");
}
