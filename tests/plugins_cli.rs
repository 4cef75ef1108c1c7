//! `arauto plugins inspect` prints every first-party plugin's contract, and
//! `arauto plugins list` shows what a configuration loads.

// All test code: with this, clippy's allow-unwrap/expect-in-tests covers the
// helper functions too, not only the #[test] ones (see clippy.toml).
#![cfg(test)]

use crate::support;

use support::daemon::{self, arauto};
use support::plugins::first_party_plugins;

/// What each first-party sender declares (contract 0.2): the recipient and
/// default interval the 0.1 name table used to guess for it.
const SENDER_DECLARATIONS: [(&str, &str, &str); 6] = [
    ("whatsapp-cloud", "customer-phone", "20s"),
    ("evolution-api", "customer-phone", "20s"),
    ("z-api", "customer-phone", "20s"),
    ("twilio-sms", "customer-phone", "1s"),
    ("telegram", "none", "1s"),
    ("webhook", "none", "0s"),
];

const FIRST_PARTY: [(&str, &str); 7] = [
    ("loja-integrada", "connector"),
    ("whatsapp-cloud", "sender"),
    ("evolution-api", "sender"),
    ("z-api", "sender"),
    ("twilio-sms", "sender"),
    ("telegram", "sender"),
    ("webhook", "sender"),
];

fn run(args: &[&str]) -> (i32, String, String) {
    let out = arauto().args(args).output().expect("run arauto");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn inspect_prints_the_contract_of_every_first_party_plugin() {
    let dir = first_party_plugins();
    for (name, kind) in FIRST_PARTY {
        let file = dir.join(format!("{name}.wasm"));
        let file = file.to_str().expect("utf-8 path");
        let (code, text, stderr) = run(&["plugins", "inspect", file]);
        assert_eq!(code, 0, "{name}: {stderr}");
        let first_line = text.lines().next().unwrap_or_default();
        assert!(
            first_line.starts_with(&format!("{name} "))
                && first_line.ends_with(&format!("({kind})")),
            "{text}"
        );
        assert!(
            text.contains("plugin API     arauto:plugin@0.2.0"),
            "{text}"
        );
        assert!(!text.contains("deprecated"), "{text}");
        assert!(text.contains("config keys"), "{text}");

        let (code, json, stderr) = run(&["plugins", "inspect", "--json", file]);
        assert_eq!(code, 0, "{name}: {stderr}");
        let report: serde_json::Value = serde_json::from_str(&json).expect("JSON");
        assert_eq!(report["name"], name);
        assert_eq!(report["kind"], kind);
        assert_eq!(report["wit_package"], "arauto:plugin@0.2.0");
        assert_eq!(report["contract"], "0.2");
        assert!(
            !report["config_keys"].as_array().expect("keys").is_empty(),
            "{name} declares its settings"
        );
        if kind == "connector" {
            let statuses = report["connector"]["statuses"]
                .as_array()
                .expect("catalogue");
            assert!(
                statuses
                    .iter()
                    .any(|s| s["code"] == "pedido_enviado" && s["notification"] == "order-shipped")
            );
            assert_eq!(
                report["connector"]["capabilities"]["boleto_reminder"]["supported"],
                false
            );
            // Loja Integrada allows 100 requests a minute; its connector says 90.
            assert_eq!(report["connector"]["requests_per_minute"], 90);
            assert_eq!(report["connector"]["declared_by"], "plugin");
            assert!(report.get("sender").is_none());
        } else {
            assert!(report.get("connector").is_none());
            let (_, recipient, interval) = SENDER_DECLARATIONS
                .into_iter()
                .find(|(sender, _, _)| *sender == name)
                .expect("a declaration for every first-party sender");
            let sender = &report["sender"];
            assert_eq!(sender["recipient"], recipient, "{name}: {sender}");
            assert_eq!(sender["default_min_interval"], interval, "{name}: {sender}");
            assert_eq!(sender["declared_by"], "plugin", "{name}: {sender}");
            assert!(sender["idempotent"].is_boolean(), "{name}: {sender}");
        }
    }
}

#[test]
fn inspect_finds_a_plugin_by_name_and_refuses_what_is_not_one() {
    first_party_plugins();
    let (code, text, _) = run(&["plugins", "inspect", "telegram"]);
    assert_eq!(code, 0);
    assert!(
        text.starts_with("telegram ")
            && text
                .lines()
                .next()
                .unwrap_or_default()
                .ends_with("(sender)"),
        "{text}"
    );
    assert!(text.contains("recipient      none"), "{text}");

    let dir = tempfile::tempdir().expect("tempdir");
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"not wasm").expect("write");
    let (code, _, stderr) = run(&["plugins", "inspect", junk.to_str().expect("utf-8")]);
    assert_eq!(code, 1);
    assert!(stderr.contains("junk.wasm"), "{stderr}");
}

#[test]
fn list_shows_what_the_configuration_loads_and_flags_a_wrong_kind() {
    first_party_plugins();
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/config/demo.toml");
    let (code, text, stderr) = run(&["plugins", "list", "--config", demo]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        text.contains("loja-integrada") && text.contains("stores.loja1"),
        "{text}"
    );
    assert!(
        text.contains("evolution-api") && text.contains("channels.whatsapp"),
        "{text}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("arauto.toml");
    std::fs::write(
        &config,
        format!(
            "{}[stores.loja1]\nplatform = \"webhook\"\n",
            daemon::daemon_section(dir.path(), "")
        ),
    )
    .expect("write config");
    let (code, json, _) = run(&[
        "plugins",
        "list",
        "--json",
        "--config",
        config.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 1);
    let listed: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    let error = listed[0]["error"].as_str().expect("an error");
    assert!(
        error.contains("stores.loja1") && error.contains("connector"),
        "{error}"
    );
}
