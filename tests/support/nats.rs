//! Real `nats-server` processes for the cluster tests: a JetStream cluster of
//! n servers on 127.0.0.1 ([`NatsCluster::start`]) or one stand-alone
//! JetStream server ([`NatsCluster::single`]), each with its own temporary
//! store directory, client, route and monitoring ports.
//!
//! NATS is a third party, but not one we fake: the cluster tests exist to
//! show arauto's behaviour on the real RAFT-replicated engine (leader
//! elections, a lost server, a restarted one). The binary is
//! `NATS_SERVER_BIN` when set (`make test` and `.ci/run` set it to
//! the pinned 2.12.8 that `scripts/install-nats-server.sh` puts in
//! `target/tools/`), else that pinned binary when installed, else Debian
//! 12's `nats-server` 2.9.10 at `/usr/sbin/nats-server` (the oldest
//! supported), else `nats-server` on `PATH`. A test that needs it and does
//! not find it fails with a message saying how to install it: skipping
//! silently would hide that the cluster was never tested.
//!
//! Waits are on the servers' own signals, never fixed sleeps: a server is up
//! when its monitoring endpoint says so (`/healthz` answers `ok`: JetStream
//! on and, in a cluster, in contact with a current metadata leader; `/jsz`
//! names that leader), asked every 50 ms; a new leader after a kill is the
//! survivors' log line (`Self is new JetStream cluster metadata leader` on
//! the new leader, `JetStream cluster new metadata leader: <name>/<cluster>`
//! on the others).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::daemon::{Lines, PATIENCE};
use super::ports::free_port;

/// Where Debian's `nats-server` package installs the server.
pub const DEBIAN_NATS_SERVER: &str = "/usr/sbin/nats-server";

/// Where `scripts/install-nats-server.sh` installs the pinned server,
/// relative to the repository root.
pub const PINNED_NATS_SERVER: &str = "target/tools/nats-server-2.12.8/nats-server";

/// The oldest server the JetStream backend supports (Debian 12's package);
/// see docs/cluster.md.
pub const MINIMUM_NATS_SERVER: (u32, u32, u32) = (2, 9, 10);

/// How often [`NatsCluster::wait_ready`] asks a server's monitoring
/// endpoint whether it is healthy yet.
const HEALTH_POLL: Duration = Duration::from_millis(50);

/// The cluster name every test cluster uses.
pub const CLUSTER_NAME: &str = "arauto-test";

/// A log line each server of a cluster writes once it knows the JetStream
/// metadata leader (on the leader itself: [`SELF_META_LEADER`]).
pub const NEW_META_LEADER: &str = "JetStream cluster new metadata leader";

/// The line of the server elected JetStream metadata leader.
pub const SELF_META_LEADER: &str = "Self is new JetStream cluster metadata leader";

/// The `nats-server` binary the tests run: `NATS_SERVER_BIN`, else
/// the pinned one in `target/tools`, else Debian's, else `nats-server` on
/// `PATH`. Panics, saying how to install it,
/// when there is none or it is older than [`MINIMUM_NATS_SERVER`].
pub fn nats_server_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let binary = find_nats_server().unwrap_or_else(|| {
                panic!(
                    "the cluster tests need nats-server >= {}: none at {PINNED_NATS_SERVER}, \
                     {DEBIAN_NATS_SERVER} nor on PATH (install the pinned one with \
                     `make nats-server` or scripts/install-nats-server.sh, as make test and .ci/run do, \
                     or set NATS_SERVER_BIN to a nats-server binary)",
                    version_text(MINIMUM_NATS_SERVER)
                )
            });
            check_version(&binary);
            binary
        })
        .clone()
}

fn find_nats_server() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("NATS_SERVER_BIN") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "NATS_SERVER_BIN={} is not a file",
            path.display()
        );
        return Some(path);
    }
    let pinned = Path::new(env!("CARGO_MANIFEST_DIR")).join(PINNED_NATS_SERVER);
    if pinned.is_file() {
        return Some(pinned);
    }
    let debian = PathBuf::from(DEBIAN_NATS_SERVER);
    if debian.is_file() {
        return Some(debian);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("nats-server"))
            .find(|candidate| candidate.is_file())
    })
}

fn version_text((major, minor, patch): (u32, u32, u32)) -> String {
    format!("{major}.{minor}.{patch}")
}

/// `nats-server --version` prints `nats-server: v2.9.10`.
fn check_version(binary: &Path) {
    let out = Command::new(binary)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("running {} --version: {e}", binary.display()));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let version = text
        .trim()
        .rsplit('v')
        .next()
        .and_then(|v| {
            let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
            Some((parts.next()??, parts.next()??, parts.next()??))
        })
        .unwrap_or_else(|| {
            panic!(
                "{} --version printed {text:?}, not `nats-server: vX.Y.Z`",
                binary.display()
            )
        });
    assert!(
        version >= MINIMUM_NATS_SERVER,
        "{} is nats-server {}; the cluster tests need >= {}",
        binary.display(),
        version_text(version),
        version_text(MINIMUM_NATS_SERVER)
    );
}

/// Client credentials every server of a cluster requires.
#[derive(Clone, Debug)]
pub struct NatsUser {
    pub user: String,
    pub password: String,
}

/// One `nats-server` of a [`NatsCluster`].
pub struct NatsServer {
    /// Its server name (`n0`, `n1`, …), also its JetStream peer name.
    pub name: String,
    pub client_port: u16,
    pub route_port: u16,
    pub monitor_port: u16,
    store_dir: PathBuf,
    /// What the current process logged.
    pub stderr: Lines,
    /// What earlier processes of this server logged, oldest first.
    pub earlier_runs: Vec<Lines>,
    child: Option<Child>,
}

impl NatsServer {
    /// `nats://127.0.0.1:<client port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.client_port)
    }

    /// Whether its process is running (not killed by the test).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Its pid, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

/// n `nats-server` processes with JetStream, routed into one cluster (or a
/// single stand-alone server). Dropping it kills every server.
pub struct NatsCluster {
    pub dir: tempfile::TempDir,
    pub servers: Vec<NatsServer>,
    /// Client credentials, when the servers require them.
    pub auth: Option<NatsUser>,
    clustered: bool,
}

impl NatsCluster {
    /// A JetStream cluster of `n` servers (n ≥ 2; 3 for a quorum that
    /// survives one loss), returned once every server knows the metadata
    /// leader.
    pub fn start(n: usize) -> Self {
        Self::launch(n, true, None)
    }

    /// [`NatsCluster::start`] with servers that require `user`/`password`.
    pub fn start_with_auth(n: usize, user: &str, password: &str) -> Self {
        let auth = NatsUser {
            user: user.to_owned(),
            password: password.to_owned(),
        };
        Self::launch(n, true, Some(auth))
    }

    /// One stand-alone JetStream server (no routes, no RAFT), returned once
    /// it is ready. Streams on it must have one replica.
    pub fn single() -> Self {
        Self::launch(1, false, None)
    }

    fn launch(n: usize, clustered: bool, auth: Option<NatsUser>) -> Self {
        assert!(n >= 1, "a NATS cluster of {n} servers");
        assert!(
            !clustered || n >= 2,
            "a clustered NATS needs at least two servers; use NatsCluster::single"
        );
        nats_server_binary();
        let dir = tempfile::tempdir().expect("tempdir for nats-server stores");
        let servers = (0..n)
            .map(|i| NatsServer {
                name: format!("n{i}"),
                client_port: free_port(),
                route_port: free_port(),
                monitor_port: free_port(),
                store_dir: dir.path().join(format!("n{i}")),
                stderr: Lines::default(),
                earlier_runs: Vec::new(),
                child: None,
            })
            .collect();
        let mut cluster = Self {
            dir,
            servers,
            auth,
            clustered,
        };
        for i in 0..n {
            cluster.spawn(i);
        }
        for i in 0..n {
            cluster.wait_ready(i);
        }
        cluster
    }

    /// The client URLs of every server (running or not), in order.
    pub fn urls(&self) -> Vec<String> {
        self.servers.iter().map(NatsServer::url).collect()
    }

    /// The URLs as a TOML array, for `[cluster] servers = …`.
    pub fn servers_toml(&self) -> String {
        let quoted: Vec<String> = self.urls().iter().map(|u| format!("{u:?}")).collect();
        format!("[{}]", quoted.join(", "))
    }

    /// How many servers.
    pub fn len(&self) -> usize {
        self.servers.len()
    }

    /// SIGKILL server `i` and wait for it to die. When it was the metadata
    /// leader, the others elect a new one: await that with
    /// [`NatsCluster::wait_meta_leader_after_kill`].
    pub fn kill(&mut self, i: usize) {
        let server = &mut self.servers[i];
        let mut child = server
            .child
            .take()
            .unwrap_or_else(|| panic!("nats-server {} is not running", server.name));
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "nats-server {} exited on its own ({status}) before the test killed it; log:\n{}",
                server.name,
                server.stderr.all()
            );
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Kill server `i`, then wait until every surviving server has logged a
    /// metadata leader after the kill when `i` led (on a quorum of the rest).
    pub fn kill_and_await_leader(&mut self, i: usize) {
        let marks: Vec<usize> = self.servers.iter().map(|s| s.stderr.len()).collect();
        let led = self.meta_leader_name().as_deref() == Some(self.servers[i].name.as_str());
        self.kill(i);
        if led {
            self.wait_meta_leader_after_kill(&marks);
        }
    }

    /// After a kill of the leader: wait until a surviving server logs that it
    /// leads or learned the new leader, counting only lines after `marks`
    /// (each server's [`Lines::len`] before the kill).
    pub fn wait_meta_leader_after_kill(&self, marks: &[usize]) {
        let running: Vec<&NatsServer> = self.servers.iter().filter(|s| s.is_running()).collect();
        let first = running.first().expect("no nats-server left running");
        let index = self
            .servers
            .iter()
            .position(|s| s.name == first.name)
            .expect("server listed");
        first.stderr.wait_for_matching(
            marks[index],
            PATIENCE,
            "naming a new JetStream metadata leader",
            |line| line.contains(NEW_META_LEADER) || line.contains(SELF_META_LEADER),
        );
    }

    /// Start server `i` again (after [`NatsCluster::kill`]) on the same
    /// ports and store directory; returns once it is back in the cluster
    /// (knows the metadata leader) or ready (single server).
    pub fn restart(&mut self, i: usize) {
        assert!(
            self.servers[i].child.is_none(),
            "restart: nats-server {} is still running",
            self.servers[i].name
        );
        let server = &mut self.servers[i];
        let previous = std::mem::take(&mut server.stderr);
        server.earlier_runs.push(previous);
        self.spawn(i);
        self.wait_ready(i);
    }

    /// The metadata leader's server name, as server 0's (or the first
    /// running server's) monitoring `/jsz` reports it; `None` for a single
    /// server or while there is none.
    pub fn meta_leader_name(&self) -> Option<String> {
        if !self.clustered {
            return None;
        }
        let server = self.servers.iter().find(|s| s.is_running())?;
        let body = monitor_get(server.monitor_port, "/jsz").ok()?;
        let json: serde_json::Value = serde_json::from_str(&body).ok()?;
        json.pointer("/meta_cluster/leader")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    }

    /// The index of the metadata leader, if one is known.
    pub fn meta_leader(&self) -> Option<usize> {
        let name = self.meta_leader_name()?;
        self.servers.iter().position(|s| s.name == name)
    }

    /// GET `path` from server `i`'s monitoring port; the body.
    pub fn monitor(&self, i: usize, path: &str) -> String {
        let server = &self.servers[i];
        monitor_get(server.monitor_port, path).unwrap_or_else(|e| {
            panic!(
                "GET {path} from nats-server {} (127.0.0.1:{}): {e}",
                server.name, server.monitor_port
            )
        })
    }

    fn spawn(&mut self, i: usize) {
        let routes: Vec<String> = self
            .servers
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, s)| format!("nats-route://127.0.0.1:{}", s.route_port))
            .collect();
        let server = &mut self.servers[i];
        std::fs::create_dir_all(&server.store_dir).expect("create nats-server store dir");
        let mut command = Command::new(nats_server_binary());
        command
            .args(["--addr", "127.0.0.1", "--port"])
            .arg(server.client_port.to_string())
            .arg("--http_port")
            .arg(server.monitor_port.to_string())
            .args(["--jetstream", "--store_dir"])
            .arg(&server.store_dir)
            .arg("--server_name")
            .arg(&server.name);
        if self.clustered {
            command
                .args(["--cluster_name", CLUSTER_NAME, "--cluster"])
                .arg(format!("nats://127.0.0.1:{}", server.route_port))
                .arg("--routes")
                .arg(routes.join(","));
        }
        if let Some(auth) = &self.auth {
            command
                .arg("--user")
                .arg(&auth.user)
                .arg("--pass")
                .arg(&auth.password);
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn nats-server {}: {e}", server.name));
        let pipe = child.stderr.take().expect("nats-server stderr pipe");
        let sink = server.stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                sink.push(line);
            }
            sink.end();
        });
        server.child = Some(child);
    }

    /// Wait until server `i` reports itself healthy on its monitoring port:
    /// `/healthz` answers `ok` (JetStream enabled and, in a cluster, in
    /// contact with a current metadata leader) and, in a cluster, `/jsz`
    /// names the leader. A restarted follower does not always log the leader
    /// again, so the monitoring endpoint is the signal here; it is asked
    /// again every 50 ms until it says so.
    fn wait_ready(&self, i: usize) {
        let server = &self.servers[i];
        let deadline = Instant::now() + PATIENCE;
        loop {
            let last = match self.health(i) {
                Ok(()) => return,
                Err(why) => why,
            };
            assert!(
                Instant::now() < deadline,
                "nats-server {} not healthy within {PATIENCE:?} (last answer: {last}); log:\n{}",
                server.name,
                server.stderr.all()
            );
            std::thread::sleep(HEALTH_POLL);
        }
    }

    /// `Ok` when server `i` is healthy (see [`NatsCluster::wait_ready`]),
    /// else what it said instead.
    fn health(&self, i: usize) -> Result<(), String> {
        let port = self.servers[i].monitor_port;
        let body = monitor_get(port, "/healthz").map_err(|e| format!("/healthz: {e}"))?;
        if !body.contains("\"ok\"") {
            return Err(format!("/healthz: {}", body.trim()));
        }
        if !self.clustered {
            return Ok(());
        }
        let body = monitor_get(port, "/jsz").map_err(|e| format!("/jsz: {e}"))?;
        let json: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("/jsz: {e}"))?;
        match json
            .pointer("/meta_cluster/leader")
            .and_then(serde_json::Value::as_str)
        {
            Some(leader) if !leader.is_empty() => Ok(()),
            _ => Err("/jsz names no metadata leader".to_owned()),
        }
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for server in &mut self.servers {
            if let Some(mut child) = server.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// A plain HTTP/1.0 GET on 127.0.0.1:`port` (the monitoring endpoint needs
/// nothing more); the body of a 200 answer.
fn monitor_get(port: u16, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(format!(
            "answer {:?}",
            head.lines().next().unwrap_or_default()
        )));
    }
    Ok(body.to_owned())
}
