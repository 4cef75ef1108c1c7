//! The shipped systemd unit: `systemd-analyze verify` passes, the exposure
//! score stays at or under 2.0, and its timeouts agree with the daemon's.
//! Skipped (with a note) where systemd-analyze is not installed.

// All test code: with this, clippy's allow-unwrap/expect-in-tests covers the
// helper functions too, not only the #[test] ones (see clippy.toml).
#![cfg(test)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn unit_text() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/arauto.service");
    std::fs::read_to_string(path).expect("read systemd/arauto.service")
}

/// The unit with the binary path pointing at the binary under test.
fn installed_unit(dir: &Path) -> PathBuf {
    let text = unit_text().replace("/usr/bin/arauto", env!("CARGO_BIN_EXE_arauto"));
    let path = dir.join("arauto.service");
    std::fs::write(&path, text).expect("write unit");
    path
}

fn systemd_analyze() -> Option<Command> {
    let available = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        eprintln!("systemd-analyze not installed: skipping");
    }
    available.then(|| Command::new("systemd-analyze"))
}

#[test]
fn unit_verifies() {
    let Some(mut analyze) = systemd_analyze() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = installed_unit(dir.path());
    let out = analyze
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("run systemd-analyze verify");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{stderr}"
    );
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("arauto.service"))
        .collect();
    assert!(
        complaints.is_empty(),
        "systemd-analyze verify complains:\n{stderr}"
    );
}

#[test]
fn exposure_score_is_at_most_2() {
    let Some(mut analyze) = systemd_analyze() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = installed_unit(dir.path());
    let out = analyze
        .args(["security", "--offline=yes"])
        .arg(&unit)
        .output()
        .expect("run systemd-analyze security");
    let text = String::from_utf8_lossy(&out.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for arauto.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no exposure level in:\n{text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert!(score <= 2.0, "exposure {score} > 2.0:\n{text}");
    // README records the score; keep them in sync.
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README");
    assert!(
        readme.contains(&format!("exposure level {score:.1}")),
        "README.md must state `exposure level {score:.1}`"
    );
}

fn directive<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    text.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

#[test]
fn unit_matches_the_daemon() {
    let text = unit_text();
    assert_eq!(directive(&text, "Type"), ["notify"]);
    assert_eq!(
        directive(&text, "ExecStart"),
        ["/usr/bin/arauto run --config /etc/arauto/arauto.toml"]
    );
    assert_eq!(
        directive(&text, "ExecStartPre"),
        ["/usr/bin/arauto validate --config /etc/arauto/arauto.toml"]
    );
    assert_eq!(
        directive(&text, "ExecReload"),
        [
            "/usr/bin/arauto validate --config /etc/arauto/arauto.toml",
            "/bin/kill -HUP $MAINPID"
        ]
    );
    assert!(
        directive(&text, "MemoryDenyWriteExecute").is_empty(),
        "breaks wasmtime's JIT"
    );
    for dir in [
        "StateDirectory",
        "CacheDirectory",
        "RuntimeDirectory",
        "ConfigurationDirectory",
    ] {
        assert_eq!(directive(&text, dir), ["arauto"], "{dir}");
    }
    // The defaults of daemon.state_dir / cache_dir / control_socket are where
    // these directives put things.
    assert_eq!(arauto::config::DEFAULT_STATE_DIR, "/var/lib/arauto");
    assert_eq!(arauto::config::DEFAULT_CACHE_DIR, "/var/cache/arauto");
    assert!(arauto::config::DEFAULT_CONTROL_SOCKET.starts_with("/run/arauto/"));
    // systemd must not SIGKILL the daemon while it drains.
    let stop = directive(&text, "TimeoutStopSec");
    let stop = arauto::config::parse_duration(stop.first().copied().unwrap_or("0s"))
        .expect("TimeoutStopSec");
    assert!(
        stop > arauto::config::DEFAULT_SHUTDOWN_TIMEOUT,
        "TimeoutStopSec {stop} must exceed shutdown_timeout"
    );
    assert!(!directive(&text, "WatchdogSec").is_empty());
}
