//! A mixed deployment, end to end: the real `arauto` binary with the real
//! `loja-integrada` and `nuvemshop` connectors, one Loja Integrada store and
//! one Nuvemshop store on their fakes (`sim/`), both notifying through ONE
//! fake WhatsApp gateway (Evolution API) on 127.0.0.1.
//!
//! Each test asserts what a shop owner would see: which customer got which
//! message with which text, what `arauto check`/`status` say, and the
//! daemon's own log lines. Nothing sleeps to synchronise: every wait is on a
//! message arriving at the gateway or a log line, bounded by
//! [`support::daemon::PATIENCE`].
//!
//! Also here: `arauto plugins inspect nuvemshop --json` (issue 14's "done
//! when") and the check that `src/` holds no Nuvemshop-specific code.

// All test code: with this, clippy's allow-unwrap/expect-in-tests covers the
// helper functions too, not only the #[test] ones (see clippy.toml).
#![cfg(test)]

mod support;

use support::daemon::arauto;
use support::plugins::{first_party_plugins, repo_root};

/// The connector's default recognition table (docs/platforms/nuvemshop.md
/// §Recognition): stage code → notification kind (`None`: no message).
const RECOGNITION: [(&str, Option<&str>); 10] = [
    ("cancelled", Some("order-canceled")),
    ("refunded", Some("order-refunded")),
    ("voided", Some("order-canceled")),
    ("fulfilled", Some("order-shipped")),
    ("closed", None),
    ("packed", Some("order-processing")),
    ("paid", Some("order-paid")),
    ("pending", Some("waiting-payment")),
    ("authorized", None),
    ("abandoned", None),
];

/// `arauto plugins inspect nuvemshop --json`, found by name in the built
/// first-party plugins (the daemon's default `plugin_dir` in debug builds),
/// shows a connector of contract 0.2 with its recognition table, its
/// settings (secrets marked) and its push support.
#[test]
fn plugins_inspect_shows_the_nuvemshop_connector_with_its_recognition_table_and_settings() {
    first_party_plugins();
    let out = arauto()
        .args(["plugins", "inspect", "nuvemshop", "--json"])
        .output()
        .expect("run arauto plugins inspect");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("inspect --json prints JSON");
    assert_eq!(report["name"], "nuvemshop", "{report:#}");
    assert_eq!(report["kind"], "connector", "{report:#}");
    assert_eq!(report["wit_package"], "arauto:plugin@0.2.0");
    assert_eq!(report["connector"]["declared_by"], "plugin");

    let statuses = report["connector"]["statuses"]
        .as_array()
        .expect("a status catalogue");
    for (code, notification) in RECOGNITION {
        let entry = statuses
            .iter()
            .find(|s| s["code"] == code)
            .unwrap_or_else(|| panic!("no stage {code} in {statuses:#?}"));
        match notification {
            Some(kind) => assert_eq!(entry["notification"], kind, "{entry:#}"),
            None => assert!(entry["notification"].is_null(), "{entry:#}"),
        }
        assert!(
            entry["name"].as_str().is_some_and(|name| !name.is_empty()),
            "every stage is named: {entry:#}"
        );
    }

    let keys = report["config_keys"].as_array().expect("settings");
    let key = |name: &str| {
        keys.iter()
            .find(|k| k["name"] == name)
            .unwrap_or_else(|| panic!("no setting {name} in {keys:#?}"))
    };
    for secret in ["access_token", "app_secret"] {
        assert_eq!(key(secret)["secret"], true, "{secret} is a secret");
    }
    for plain in ["store_id", "user_agent", "base_url"] {
        assert_eq!(key(plain)["secret"], false, "{plain} is not a secret");
    }
    assert_eq!(key("store_id")["required"], true);
    assert_eq!(report["connector"]["push"]["verify"], true);
    assert_eq!(
        report["connector"]["capabilities"]["tracking_codes"]["supported"],
        true
    );
    for missing in ["boleto_reminder", "pix_reminder", "abandoned_cart"] {
        let capability = &report["connector"]["capabilities"][missing];
        assert_eq!(capability["supported"], false, "{missing}");
        assert!(
            capability["reason"]
                .as_str()
                .is_some_and(|reason| !reason.is_empty()),
            "{missing} says why not: {capability:#}"
        );
    }

    // The text form prints the table too (code and name of every stage).
    let text = arauto()
        .args(["plugins", "inspect", "nuvemshop"])
        .output()
        .expect("run arauto plugins inspect");
    let text = String::from_utf8_lossy(&text.stdout);
    for (code, _) in RECOGNITION {
        assert!(text.contains(code), "{code} in:\n{text}");
    }
}

/// The host knows no platform by name (issue 14's claim that a platform is
/// a plugin): outside unit-test modules, "nuvemshop" appears in `src/` in
/// comments at most.
#[test]
fn the_host_has_no_nuvemshop_specific_code() {
    let mut offending = Vec::new();
    let mut pending = vec![repo_root().join("src")];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read a src directory") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            // Unit-test modules close each file (the codebase's layout): a
            // platform name there is test data, not host behaviour.
            let host_code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for (index, line) in host_code.lines().enumerate() {
                let code = line.trim_start();
                if line.to_lowercase().contains("nuvemshop") && !code.starts_with("//") {
                    offending.push(format!("{}:{}: {line}", path.display(), index + 1));
                }
            }
        }
    }
    assert!(
        offending.is_empty(),
        "Nuvemshop-specific code in the host:\n{}",
        offending.join("\n")
    );
}
