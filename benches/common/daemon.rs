//! The real `arauto run` as a child process: its own `NOTIFY_SOCKET` (so a
//! benchmark times start-up to the daemon's own `READY=1`), and its log read
//! line by line on a thread that counts the lines a benchmark waits for
//! (`poll complete`…) without keeping them all.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The release `arauto` binary cargo built for this benchmark.
pub fn arauto_binary() -> &'static str {
    env!("CARGO_BIN_EXE_arauto")
}

/// Lines kept for error reports.
const TAIL: usize = 200;

#[derive(Default)]
struct TapState {
    counts: Vec<u64>,
    tail: VecDeque<String>,
    closed: bool,
}

/// Counts of log lines containing each of a fixed set of needles.
#[derive(Clone)]
pub struct LogTap {
    needles: Arc<Vec<String>>,
    state: Arc<(Mutex<TapState>, Condvar)>,
}

impl LogTap {
    fn new(needles: &[&str]) -> Self {
        Self {
            needles: Arc::new(needles.iter().map(|n| (*n).to_owned()).collect()),
            state: Arc::new((
                Mutex::new(TapState {
                    counts: vec![0; needles.len()],
                    ..TapState::default()
                }),
                Condvar::new(),
            )),
        }
    }

    fn index(&self, needle: &str) -> Result<usize> {
        self.needles
            .iter()
            .position(|n| n == needle)
            .with_context(|| format!("the log tap does not count {needle:?}"))
    }

    fn push(&self, line: String) {
        let (state, cond) = &*self.state;
        let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
        for (count, needle) in state.counts.iter_mut().zip(self.needles.iter()) {
            if line.contains(needle.as_str()) {
                *count += 1;
            }
        }
        if state.tail.len() == TAIL {
            state.tail.pop_front();
        }
        state.tail.push_back(line);
        cond.notify_all();
    }

    fn close(&self) {
        let (state, cond) = &*self.state;
        state.lock().unwrap_or_else(PoisonError::into_inner).closed = true;
        cond.notify_all();
    }

    /// Lines containing `needle` so far.
    pub fn count(&self, needle: &str) -> Result<u64> {
        let index = self.index(needle)?;
        let state = self.state.0.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(state.counts[index])
    }

    /// Wait until `at_least` lines contained `needle`; fails after `patience`
    /// or when the daemon's log ends first.
    pub fn wait_for(&self, needle: &str, at_least: u64, patience: Duration) -> Result<()> {
        let index = self.index(needle)?;
        let deadline = Instant::now() + patience;
        let (state, cond) = &*self.state;
        let mut guard = state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if guard.counts[index] >= at_least {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || guard.closed {
                let why = if guard.closed {
                    "the daemon's log ended"
                } else {
                    "timed out"
                };
                bail!(
                    "{why} waiting for {at_least} lines containing {needle:?} (saw {}); last log lines:\n{}",
                    guard.counts[index],
                    guard.tail.iter().cloned().collect::<Vec<_>>().join("\n")
                );
            }
            guard = cond
                .wait_timeout(guard, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// The last lines of the log.
    pub fn tail(&self, lines: usize) -> String {
        let state = self.state.0.lock().unwrap_or_else(PoisonError::into_inner);
        let skip = state.tail.len().saturating_sub(lines);
        state
            .tail
            .iter()
            .skip(skip)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A running `arauto run --config <dir>/arauto.toml`.
pub struct Daemon {
    child: Option<Child>,
    notify: UnixDatagram,
    notify_path: PathBuf,
    /// Counts of the log lines asked for at start.
    pub log: LogTap,
    /// When the process was spawned.
    pub spawned_at: Instant,
}

impl Daemon {
    /// Write `config` to `<dir>/arauto.toml` and start the daemon on it,
    /// counting log lines that contain any of `needles`.
    pub fn start(dir: &Path, config: &str, needles: &[&str]) -> Result<Self> {
        let config_path = dir.join("arauto.toml");
        std::fs::write(&config_path, config)
            .with_context(|| format!("writing {}", config_path.display()))?;
        let notify_path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&notify_path);
        let notify = UnixDatagram::bind(&notify_path)
            .with_context(|| format!("binding {}", notify_path.display()))?;
        // `BENCH_DAEMON_WRAPPER=/path/to/script`: the daemon runs as
        // `script <arauto> run …`, for profiling (a heaptrack or perf wrapper
        // that `exec`s its arguments keeps the pid, so the figures stay the
        // daemon's).
        let mut command = match std::env::var_os("BENCH_DAEMON_WRAPPER") {
            Some(wrapper) if !wrapper.is_empty() => {
                let mut command = Command::new(wrapper);
                command.arg(arauto_binary());
                command
            }
            _ => Command::new(arauto_binary()),
        };
        // Nothing from the caller's environment may reconfigure the daemon.
        for (name, _) in std::env::vars_os() {
            let text = name.to_string_lossy();
            if text.starts_with("ARAUTO_")
                || [
                    "RUST_LOG",
                    "JOURNAL_STREAM",
                    "WATCHDOG_USEC",
                    "WATCHDOG_PID",
                ]
                .contains(&text.as_ref())
            {
                command.env_remove(&name);
            }
        }
        command
            .args(["run", "--log-format", "text", "--config"])
            .arg(&config_path)
            .env("NOTIFY_SOCKET", &notify_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let spawned_at = Instant::now();
        let mut child = command.spawn().context("spawning arauto run")?;
        let log = LogTap::new(needles);
        let pipe = child.stderr.take().context("no stderr pipe")?;
        let sink = log.clone();
        std::thread::Builder::new()
            .name("arauto-log".into())
            .spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    sink.push(line);
                }
                sink.close();
            })?;
        Ok(Self {
            child: Some(child),
            notify,
            notify_path,
            log,
            spawned_at,
        })
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Wait for the notify datagram carrying `READY=1`; returns when it arrived.
    pub fn await_ready(&mut self, patience: Duration) -> Result<Instant> {
        let deadline = Instant::now() + patience;
        let mut buf = vec![0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!(
                    "no READY=1 from the daemon within {patience:?}; log:\n{}",
                    self.log.tail(40)
                );
            }
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!(
                    "the daemon exited ({status}) before READY=1; log:\n{}",
                    self.log.tail(40)
                );
            }
            // Short reads so an early exit is noticed.
            self.notify
                .set_read_timeout(Some(left.min(Duration::from_millis(200))))?;
            let Ok(n) = self.notify.recv(&mut buf) else {
                continue;
            };
            let message = String::from_utf8_lossy(&buf[..n]);
            if message.lines().any(|line| line == "READY=1") {
                return Ok(Instant::now());
            }
        }
    }

    /// SIGTERM, then wait for the exit (SIGKILL after `patience`).
    pub fn stop(mut self, patience: Duration) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = Pid::from_raw(i32::try_from(child.id()).context("pid")?);
        kill(pid, Signal::SIGTERM).context("SIGTERM")?;
        let deadline = Instant::now() + patience;
        loop {
            if let Some(status) = child.try_wait()? {
                if !status.success() {
                    bail!(
                        "the daemon exited with {status}; log:\n{}",
                        self.log.tail(40)
                    );
                }
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the daemon did not stop within {patience:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.notify_path);
    }
}

/// Start and stop a daemon once on `config` so the plugins it names are in
/// the shared compiled cache: no measured start pays for a Cranelift compile.
pub fn warm_plugin_cache(dir: &Path, config: &str) -> Result<()> {
    let mut daemon = Daemon::start(dir, config, &[])?;
    daemon.await_ready(Duration::from_secs(300))?;
    daemon.stop(Duration::from_secs(30))
}
