//! Native journald logging, end to end: the daemon runs in a private mount
//! namespace where `/run/systemd/journal/socket` is a datagram socket owned by
//! this test, and the test decodes what tracing-journald sends — proving the
//! field names documented for `journalctl ARAUTO_STORE=…`.
//!
//! Needs root and `unshare --mount` (skipped with a note otherwise).

// All test code: with this, clippy's allow-unwrap/expect-in-tests covers the
// helper functions too, not only the #[test] ones (see clippy.toml).
#![cfg(test)]

use crate::support;

use std::collections::BTreeMap;
use std::os::unix::net::UnixDatagram;
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::daemon::{PATIENCE, daemon_section, scrubbed};

/// One journal entry: field → values (a field may repeat, e.g. SPAN_NAME).
type Entry = BTreeMap<String, Vec<String>>;

/// Decode journald's native protocol: `KEY=value\n`, or `KEY\n` + u64 LE length + bytes + `\n`.
fn decode(mut data: &[u8]) -> Entry {
    let mut entry = Entry::new();
    while !data.is_empty() {
        let Some(newline) = data.iter().position(|&b| b == b'\n') else {
            break;
        };
        let line = &data[..newline];
        if let Some(eq) = line.iter().position(|&b| b == b'=') {
            let key = String::from_utf8_lossy(&line[..eq]).into_owned();
            entry
                .entry(key)
                .or_default()
                .push(String::from_utf8_lossy(&line[eq + 1..]).into_owned());
            data = &data[newline + 1..];
        } else {
            let key = String::from_utf8_lossy(line).into_owned();
            let rest = &data[newline + 1..];
            let len_bytes: [u8; 8] = rest[..8].try_into().expect("length");
            let len = usize::try_from(u64::from_le_bytes(len_bytes)).expect("length fits");
            let value = String::from_utf8_lossy(&rest[8..8 + len]).into_owned();
            entry.entry(key).or_default().push(value);
            data = &rest[8 + len + 1..];
        }
    }
    entry
}

fn namespaces_available() -> bool {
    // Without root (CAP_SYS_ADMIN) this fails, and the test is skipped.
    let ok = std::process::Command::new("unshare")
        .args(["--mount", "sh", "-c", "mount -t tmpfs tmpfs /run"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("no root or no `unshare --mount`: skipping the journald test");
    }
    ok
}

#[test]
fn journald_entries_carry_prefixed_structured_fields() {
    if !namespaces_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let journal_dir = dir.path().join("journal");
    std::fs::create_dir(&journal_dir).expect("mkdir");
    let journal = UnixDatagram::bind(journal_dir.join("socket")).expect("bind journal socket");
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).expect("bind notify socket");
    let config = dir.path().join("arauto.toml");
    std::fs::write(
        &config,
        format!(
            "{}[stores.loja1]\nplatform = \"loja-integrada\"\nchannels = [\"whatsapp\"]\n\
             [stores.loja1.settings]\napi_key = \"chave\"\napplication_key = \"aplicacao\"\n\
             base_url = \"http://127.0.0.1:9\"\n\
             [stores.loja1.sandbox]\nallowed_hosts = [\"http://127.0.0.1:9\"]\nallow_private_addresses = true\n\
             [channels.whatsapp]\nplugin = \"whatsapp-cloud\"\n\
             [channels.whatsapp.settings]\naccess_token = \"token\"\nphone_number_id = \"106540352242922\"\n\
             base_url = \"http://127.0.0.1:9\"\n\
             [channels.whatsapp.sandbox]\nallowed_hosts = [\"http://127.0.0.1:9\"]\nallow_private_addresses = true\n",
            daemon_section(dir.path(), "")
        ),
    )
    .expect("write config");

    // `unshare` execs (no fork), `exec` replaces sh: the child's pid is arauto's.
    let script = format!(
        "mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/journal && \
         mount --bind {journal} /run/systemd/journal && exec {arauto} run --log-format journald --config {config}",
        journal = journal_dir.display(),
        arauto = env!("CARGO_BIN_EXE_arauto"),
        config = config.display(),
    );
    let mut unshare = scrubbed("unshare");
    unshare.args(["--mount", "sh", "-c", &script]);
    let mut child = unshare
        .env("NOTIFY_SOCKET", &notify_path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn unshare");

    let mut buf = vec![0u8; 65536];
    notify.set_read_timeout(Some(PATIENCE)).expect("timeout");
    loop {
        let n = notify.recv(&mut buf).expect("READY=1 from the daemon");
        if String::from_utf8_lossy(&buf[..n])
            .lines()
            .any(|l| l == "READY=1")
        {
            break;
        }
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid")),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("kill");
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(0));

    let mut entries = Vec::new();
    journal.set_nonblocking(true).expect("nonblocking");
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        match journal.recv(&mut buf) {
            Ok(0) => {}
            Ok(n) => entries.push(decode(&buf[..n])),
            Err(_) => break,
        }
    }
    let find = |needle: &str| {
        entries
            .iter()
            .find(|e| {
                e.get("MESSAGE")
                    .is_some_and(|m| m.iter().any(|m| m.contains(needle)))
            })
            .unwrap_or_else(|| panic!("no journal entry with {needle:?}: {entries:#?}"))
    };
    let store = find("store loja1:");
    assert_eq!(store["ARAUTO_STORE"], ["loja1"]);
    assert_eq!(store["ARAUTO_PLUGIN"], ["loja-integrada"]);
    assert_eq!(store["SYSLOG_IDENTIFIER"], ["arauto"]);
    assert_eq!(store["PRIORITY"], ["5"]);
    assert_eq!(store["TARGET"], ["arauto::daemon::runtime"]);
    assert!(store.contains_key("CODE_FILE") && store.contains_key("CODE_LINE"));
    let channel = find("channel whatsapp:");
    assert_eq!(channel["ARAUTO_CHANNEL"], ["whatsapp"]);
    let ready = find("ready:");
    assert_eq!(ready["ARAUTO_PID"], [child.id().to_string()]);
}
