//! Running `arauto` as a child process in tests: a private state directory,
//! control socket and `NOTIFY_SOCKET`, so tests await the daemon's own
//! `READY=1` / `RELOADING=1` / `STOPPING=1` / `WATCHDOG=1` messages and log
//! lines instead of sleeping.
//!
//! A daemon runs the first-party plugins from their build directory (built on
//! first use), unless started with [`Daemon::spawn_test_plugins_only`].

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::plugins::first_party_plugins;

/// Upper bound for anything a test waits for (never a sleep: waits end as soon
/// as the awaited event happens).
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The `arauto` binary under test.
/// The first-party plugins (its default `plugin_dir`) are built first.
pub fn arauto() -> Command {
    first_party_plugins();
    arauto_test_plugins_only()
}

/// The `arauto` binary under test, for a configuration that names each of
/// its plugins by path (the test plugins): the first-party plugins are not
/// built.
pub fn arauto_test_plugins_only() -> Command {
    scrubbed(env!("CARGO_BIN_EXE_arauto"))
}

/// A command whose environment carries nothing that would change arauto's
/// configuration or systemd integration.
pub fn scrubbed(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new(program);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("ARAUTO_")
            || [
                "RUST_LOG",
                "JOURNAL_STREAM",
                "NOTIFY_SOCKET",
                "WATCHDOG_USEC",
                "WATCHDOG_PID",
                "CREDENTIALS_DIRECTORY",
            ]
            .contains(&name.as_ref())
        {
            command.env_remove(name.as_ref());
        }
    }
    command
}

/// Lines a child wrote to stderr, shared with the thread that reads them.
/// The second field says the stream ended (the reader met end of file):
/// a child's exit comes before its reader thread has taken the last lines
/// from the pipe, so a test that reads the log after an exit waits for it
/// ([`Lines::wait_ended`]).
#[derive(Clone, Default)]
pub struct Lines(Arc<(Mutex<Vec<String>>, Condvar)>, Arc<AtomicBool>);

impl Lines {
    /// Append a line (the reader thread of a child's stderr).
    pub fn push(&self, line: String) {
        let (lines, cond) = &*self.0;
        lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(line);
        cond.notify_all();
    }

    /// The stream ended: every line is in (the reader thread, at end of file).
    pub fn end(&self) {
        let (lines, cond) = &*self.0;
        let _guard = lines.lock().unwrap_or_else(PoisonError::into_inner);
        self.1.store(true, Ordering::SeqCst);
        cond.notify_all();
    }

    /// Wait (at most `limit`) until the stream ended; false if it did not.
    pub fn wait_ended(&self, limit: Duration) -> bool {
        let (lines, cond) = &*self.0;
        let deadline = Instant::now() + limit;
        let mut guard = lines.lock().unwrap_or_else(PoisonError::into_inner);
        while !self.1.load(Ordering::SeqCst) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            guard = cond
                .wait_timeout(guard, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    /// Wait until a line containing `needle` appears; return it.
    pub fn wait_for(&self, needle: &str) -> String {
        let (lines, cond) = &*self.0;
        let deadline = Instant::now() + PATIENCE;
        let mut guard = lines.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(line) = guard.iter().find(|l| l.contains(needle)) {
                return line.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no log line containing {needle:?}; log so far:\n{}",
                guard.join("\n")
            );
            guard = cond
                .wait_timeout(guard, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Wait until a line at index `from` or later contains `needle`; return
    /// its index and text. Index a test took with [`Lines::len`] before an
    /// action, so a line logged earlier does not count.
    pub fn wait_for_from(&self, from: usize, needle: &str) -> (usize, String) {
        self.wait_for_matching(from, PATIENCE, needle, |line| line.contains(needle))
    }

    /// Wait until a line at index `from` or later contains every one of
    /// `needles`; return its index and text.
    pub fn wait_for_all_from(&self, from: usize, needles: &[&str]) -> (usize, String) {
        self.wait_for_matching(from, PATIENCE, &format!("with {needles:?}"), |line| {
            needles.iter().all(|n| line.contains(n))
        })
    }

    /// Wait (at most `patience`) until a line at index `from` or later
    /// satisfies `matches`; return its index and text. `what` describes it in
    /// the failure message.
    pub fn wait_for_matching(
        &self,
        from: usize,
        patience: Duration,
        what: &str,
        matches: impl Fn(&str) -> bool,
    ) -> (usize, String) {
        let (lines, cond) = &*self.0;
        let deadline = Instant::now() + patience;
        let mut guard = lines.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some((index, line)) = guard
                .iter()
                .enumerate()
                .skip(from)
                .find(|(_, l)| matches(l))
            {
                return (index, line.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no log line {what} after line {from} within {patience:?}; log so far:\n{}",
                guard.join("\n")
            );
            guard = cond
                .wait_timeout(guard, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// How many lines so far.
    pub fn len(&self) -> usize {
        self.0
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.0
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many lines so far contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.0
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Everything so far.
    pub fn all(&self) -> String {
        self.0
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .join("\n")
    }
}

/// A running `arauto run`.
pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub socket: PathBuf,
    pub stderr: Lines,
    notify: UnixDatagram,
    /// Every notify datagram received so far (this process).
    pub notices: Vec<String>,
    /// The stderr of earlier processes of this daemon ([`Daemon::restart`]), oldest first.
    pub earlier_runs: Vec<Lines>,
    env: Vec<(String, String)>,
    args: Vec<String>,
    /// The `arauto` command each process of this daemon starts from.
    program: fn() -> Command,
    child: Option<Child>,
    pid: u32,
}

/// The `[daemon]` section pointing everything into `dir`.
pub fn daemon_section(dir: &Path, extra: &str) -> String {
    format!(
        "[daemon]\nstate_dir = {:?}\ncache_dir = {:?}\ncontrol_socket = {:?}\n{extra}\n",
        dir.join("state").display().to_string(),
        dir.join("cache").display().to_string(),
        dir.join("run/control.sock").display().to_string(),
    )
}

impl Daemon {
    /// Start `arauto run` with `[daemon]` + `daemon_extra` + `body` as configuration.
    pub fn start(daemon_extra: &str, body: &str) -> Self {
        Self::start_with(daemon_extra, body, &[], &[])
    }

    /// Like [`Daemon::start`], with extra environment and arguments.
    pub fn start_with(daemon_extra: &str, body: &str, env: &[(&str, &str)], args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config_path = dir.path().join("arauto.toml");
        std::fs::write(
            &config_path,
            format!("{}{body}", daemon_section(dir.path(), daemon_extra)),
        )
        .expect("write config");
        Self::spawn(dir, config_path, env, args)
    }

    /// Start another daemon on the configuration file of `dir`.
    pub fn spawn(
        dir: tempfile::TempDir,
        config_path: PathBuf,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Self {
        Self::spawn_program(dir, config_path, env, args, arauto)
    }

    /// Like [`Daemon::spawn`], for a configuration whose plugins are all
    /// named by path: the first-party plugins are not built.
    pub fn spawn_test_plugins_only(dir: tempfile::TempDir, config_path: PathBuf) -> Self {
        Self::spawn_program(dir, config_path, &[], &[], arauto_test_plugins_only)
    }

    fn spawn_program(
        dir: tempfile::TempDir,
        config_path: PathBuf,
        env: &[(&str, &str)],
        args: &[&str],
        program: fn() -> Command,
    ) -> Self {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let (child, stderr, notify) = launch(program(), dir.path(), &config_path, &env, &args);
        let socket = dir.path().join("run/control.sock");
        Self {
            dir,
            config_path,
            socket,
            stderr,
            notify,
            notices: Vec::new(),
            earlier_runs: Vec::new(),
            env,
            args,
            program,
            pid: child.id(),
            child: Some(child),
        }
    }

    /// Start the daemon again on the same state, configuration, environment
    /// and arguments, after the previous process exited (see
    /// [`Daemon::wait_exit`], [`Daemon::kill`]). The previous process's log
    /// moves to [`Daemon::earlier_runs`].
    pub fn restart(&mut self) {
        let args = self.args.clone();
        self.restart_with_args(&args);
    }

    /// [`Daemon::restart`] with other arguments (kept for later restarts).
    pub fn restart_with_args(&mut self, args: &[String]) {
        assert!(
            self.child.is_none(),
            "restart: the previous arauto process was not waited for"
        );
        self.args = args.to_vec();
        let (child, stderr, notify) = launch(
            (self.program)(),
            self.dir.path(),
            &self.config_path,
            &self.env,
            &self.args,
        );
        let previous = std::mem::replace(&mut self.stderr, stderr);
        self.earlier_runs.push(previous);
        self.notify = notify;
        self.notices.clear();
        self.pid = child.id();
        self.child = Some(child);
    }

    /// SIGKILL the daemon and wait for it to die. Panics if it had already
    /// exited on its own (a crash the test did not cause).
    pub fn kill(&mut self) -> ExitStatus {
        let mut child = self
            .child
            .take()
            .expect("the daemon was already waited for");
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "arauto exited on its own ({status}) before the test killed it; log:\n{}",
                self.stderr.all()
            );
        }
        let _ = child.kill();
        child.wait().expect("wait for the killed daemon")
    }

    /// Whether the current process is still running (not yet waited for).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Every log line of every process of this daemon, oldest first.
    pub fn all_logs(&self) -> Vec<String> {
        self.earlier_runs
            .iter()
            .chain(std::iter::once(&self.stderr))
            .flat_map(Lines::lines)
            .collect()
    }

    /// Replace the configuration body (the `[daemon]` section is kept).
    pub fn write_config(&self, daemon_extra: &str, body: &str) {
        std::fs::write(
            &self.config_path,
            format!("{}{body}", daemon_section(self.dir.path(), daemon_extra)),
        )
        .expect("write config");
    }

    /// Wait for a notify datagram with the line `state` (e.g. `READY=1`); return the datagram.
    pub fn await_notice(&mut self, state: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        let mut buf = vec![0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no {state} from the daemon; notices: {:?}\nlog:\n{}",
                self.notices,
                self.stderr.all()
            );
            self.notify
                .set_read_timeout(Some(left))
                .expect("set timeout");
            let Ok(n) = self.notify.recv(&mut buf) else {
                continue;
            };
            let message = String::from_utf8_lossy(&buf[..n]).into_owned();
            self.notices.push(message.clone());
            if message.lines().any(|line| line == state) {
                return message;
            }
        }
    }

    /// The daemon's pid.
    pub fn pid(&self) -> i32 {
        i32::try_from(self.pid).expect("pid fits")
    }

    /// Send `signal` to the daemon.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), signal).expect("kill");
    }

    /// Run `arauto status --socket … [args]`; (exit code, stdout, stderr).
    pub fn status(&self, args: &[&str]) -> (i32, String, String) {
        let out = arauto()
            .args(["status", "--socket"])
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run arauto status");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Wait for the process to exit (at most `limit`).
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let mut child = self
            .child
            .take()
            .expect("the daemon was already waited for");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        let started = Instant::now();
        match rx.recv_timeout(limit) {
            Ok(status) => {
                // The exit can come before the reader thread took the last
                // lines from the pipe: the caller reads the log next.
                let ended = self
                    .stderr
                    .wait_ended(limit.saturating_sub(started.elapsed()));
                assert!(
                    ended,
                    "the daemon exited but its stderr stayed open; log:\n{}",
                    self.stderr.all()
                );
                status.expect("wait for the daemon")
            }
            Err(_) => {
                self.signal(nix::sys::signal::Signal::SIGKILL);
                panic!(
                    "daemon still running after {limit:?}; log:\n{}",
                    self.stderr.all()
                );
            }
        }
    }
}

/// Start `arauto run` (from `command`) on `config_path` with a fresh
/// `NOTIFY_SOCKET` in `dir`; its stderr is read into the returned [`Lines`]
/// by a thread.
fn launch(
    mut command: Command,
    dir: &Path,
    config_path: &Path,
    env: &[(String, String)],
    args: &[String],
) -> (Child, Lines, UnixDatagram) {
    let notify_path = dir.join(format!("notify-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&notify_path);
    let notify = UnixDatagram::bind(&notify_path).expect("bind notify socket");
    command
        .args(["run", "--log-format", "text", "--config"])
        .arg(config_path)
        .args(args)
        .env("NOTIFY_SOCKET", &notify_path)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn arauto run");
    let stderr = Lines::default();
    let pipe = child.stderr.take().expect("stderr pipe");
    let sink = stderr.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            sink.push(line);
        }
        sink.end();
    });
    (child, stderr, notify)
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
