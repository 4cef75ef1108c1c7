//! What the benchmarks share: where they run (machine, disk, load), process
//! CPU and memory from `/proc`, the real `arauto run` as a child process with
//! its `NOTIFY_SOCKET` and log, and configuration snippets.
//!
//! Included with `mod common;`; each benchmark uses a subset.

#![allow(dead_code)]

pub mod daemon;
pub mod machine;
pub mod proc;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// `BENCH_QUICK=1` (or `ARAUTO_BENCH_QUICK=1`): a shorter run with smaller
/// sizes, for a first look; the numbers are noisier.
pub fn quick() -> bool {
    ["BENCH_QUICK", "ARAUTO_BENCH_QUICK"]
        .iter()
        .any(|name| std::env::var(name).is_ok_and(|value| !value.is_empty() && value != "0"))
}

/// An integer from the environment, or `default`.
pub fn env_usize(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Ok(value) => value.parse().with_context(|| format!("{name}={value:?}")),
        Err(_) => Ok(default),
    }
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where benchmark files go: `ARAUTO_BENCH_DIR`, else `target/bench-work`.
/// Keep it on the disk the daemon would use (not tmpfs, where fsync is free).
pub fn work_root() -> Result<PathBuf> {
    let root = match std::env::var_os("ARAUTO_BENCH_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => repo_root().join("target/bench-work"),
    };
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    Ok(root)
}

/// A fresh directory under [`work_root`], removed when dropped.
pub fn work_dir(prefix: &str) -> Result<tempfile::TempDir> {
    let root = work_root()?;
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&root)
        .with_context(|| format!("creating a directory under {}", root.display()))
}

/// The first-party plugins (`target/plugins`), built by `scripts/build-plugins.sh`
/// (`make bench` builds them first; a bare `cargo bench` builds them here).
pub fn plugin_dir() -> Result<PathBuf> {
    let dir = repo_root().join("target/plugins");
    let wanted = [
        "loja-integrada.wasm",
        "nuvemshop.wasm",
        "evolution-api.wasm",
    ];
    if wanted.iter().all(|name| dir.join(name).is_file()) {
        return Ok(dir);
    }
    let status = std::process::Command::new(repo_root().join("scripts/build-plugins.sh"))
        .current_dir(repo_root())
        .status()
        .context("running scripts/build-plugins.sh")?;
    if !status.success() {
        bail!("scripts/build-plugins.sh failed ({status})");
    }
    Ok(dir)
}

/// The compiled-plugin cache the benchmark daemons share, so no measured start
/// includes a Cranelift compile (see [`daemon::warm_plugin_cache`]).
pub fn plugin_cache_dir() -> Result<PathBuf> {
    let dir = work_root()?.join("plugin-cache");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// `1.234 s`, `12.3 ms`, `45.6 µs` — three significant digits or so.
pub fn human(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs >= 1.0 {
        format!("{secs:.2} s")
    } else if secs >= 1e-3 {
        format!("{:.1} ms", secs * 1e3)
    } else {
        format!("{:.1} µs", secs * 1e6)
    }
}

/// Mebibytes from kibibytes.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// The value at quantile `q` (0–1) of sorted samples (nearest rank).
pub fn quantile<T: Copy + Default>(sorted: &[T], q: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Milliseconds from `from` to `to`.
pub fn ms(from: jiff::Timestamp, to: jiff::Timestamp) -> f64 {
    to.duration_since(from).as_secs_f64() * 1e3
}

/// One table row of latency samples (ms): median, p95, max, min.
pub fn row(label: &str, mut samples: Vec<f64>) {
    samples.sort_by(f64::total_cmp);
    println!(
        "{label:<62} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
        quantile(&samples, 0.5),
        quantile(&samples, 0.95),
        samples.last().copied().unwrap_or_default(),
        samples.first().copied().unwrap_or_default(),
    );
}

/// The `[daemon]` section of a benchmark daemon whose files live in `dir`.
pub fn daemon_section(dir: &Path, extra: &str) -> Result<String> {
    Ok(format!(
        "[daemon]\nstate_dir = {:?}\ncache_dir = {:?}\nplugin_dir = {:?}\ncontrol_socket = {:?}\nlog_level = \"info\"\n{extra}\n",
        dir.join("state").display().to_string(),
        plugin_cache_dir()?.display().to_string(),
        plugin_dir()?.display().to_string(),
        dir.join("run/control.sock").display().to_string(),
    ))
}

/// A Loja Integrada store polling the fake at `li_url`; `extra_settings` are
/// more `key = value` lines for the connector (`overlap = "10s"`).
pub fn li_store(
    id: &str,
    li_url: &str,
    api_key: &str,
    poll_interval: &str,
    extra_settings: &str,
) -> String {
    format!(
        r#"
[stores.{id}]
platform = "loja-integrada"
poll_interval = "{poll_interval}"
channels = ["whatsapp"]
[stores.{id}.sandbox]
allowed_hosts = ["{li_url}"]
allow_private_addresses = true
[stores.{id}.settings]
api_key = "{api_key}"
application_key = "{APPLICATION_KEY}"
base_url = "{li_url}"
{extra_settings}
"#
    )
}

/// A Nuvemshop store polling the fake whose API base is `base_url` (`…/v1`)
/// and whose origin is `origin`; `extra_settings` are more `key = value`
/// lines for the connector.
pub fn nuvemshop_store(
    id: &str,
    origin: &str,
    base_url: &str,
    store_id: u64,
    access_token: &str,
    poll_interval: &str,
    extra_settings: &str,
) -> String {
    format!(
        r#"
[stores.{id}]
platform = "nuvemshop"
poll_interval = "{poll_interval}"
channels = ["whatsapp"]
[stores.{id}.sandbox]
allowed_hosts = ["{origin}"]
allow_private_addresses = true
[stores.{id}.settings]
store_id = "{store_id}"
access_token = "{access_token}"
user_agent = "arauto bench (bench@example.com)"
base_url = "{base_url}"
{extra_settings}
"#
    )
}

/// The integrator key every fake store accepts.
pub const APPLICATION_KEY: &str = "bench-aplicacao";

/// A WhatsApp channel `whatsapp` through the fake Evolution API at `url`;
/// `min_interval` unset keeps the plugin's default pacing (20 s).
pub fn evolution_channel(url: &str, min_interval: Option<&str>) -> String {
    let pacing = min_interval
        .map(|interval| format!("min_interval = \"{interval}\"\n"))
        .unwrap_or_default();
    format!(
        r#"
[channels.whatsapp]
plugin = "evolution-api"
{pacing}[channels.whatsapp.sandbox]
allowed_hosts = ["{url}"]
allow_private_addresses = true
[channels.whatsapp.settings]
base_url = "{url}"
instance = "bench"
api_key = "bench-evolution-key"
"#
    )
}
