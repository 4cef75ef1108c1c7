//! Connecting to the NATS cluster `[cluster]` names: credentials, TLS, the
//! node's name, and a bounded wait for the first connection (the servers may
//! still be starting with the node, as after a power cut), then a clear error
//! naming the servers and why — never a credential.

use std::time::Duration;

use async_nats::{Client, ConnectErrorKind, ConnectOptions};

use crate::config::cluster::{ClusterConfig, Credentials};

/// How long [`connect`] keeps retrying the first connection by default.
pub const DEFAULT_INITIAL_WAIT: Duration = Duration::from_secs(30);
/// Pause between two attempts of the first connection.
const RETRY_PAUSE: Duration = Duration::from_millis(500);
/// How long one attempt may take (TCP, TLS and the NATS handshake).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why no connection to the cluster was made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The `creds_file` could not be read or is not a creds file.
    #[error("cannot use cluster.creds_file {path}: {source}")]
    CredsFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Every attempt failed until the wait ran out (or one failed for a
    /// reason retrying does not fix: credentials, TLS).
    #[error("cannot connect to the NATS cluster at {servers} as node {node}: {reason}")]
    Unreachable {
        /// `cluster.servers`, comma-separated.
        servers: String,
        /// `cluster.node_name`.
        node: String,
        /// The client's explanation (no credentials in it).
        reason: String,
    },
}

/// The client options `cluster` asks for: credentials, TLS, the node's name.
pub async fn options(cluster: &ClusterConfig) -> Result<ConnectOptions, ConnectError> {
    let options =
        match &cluster.credentials {
            Credentials::None => ConnectOptions::new(),
            Credentials::CredsFile(path) => ConnectOptions::with_credentials_file(path)
                .await
                .map_err(|source| ConnectError::CredsFile {
                    path: path.clone(),
                    source,
                })?,
            Credentials::Creds(creds) => {
                ConnectOptions::with_credentials(creds.expose()).map_err(|source| {
                    ConnectError::CredsFile {
                        path: "(the variable cluster.creds_env names)".into(),
                        source,
                    }
                })?
            }
            Credentials::Nkey(seed) => ConnectOptions::with_nkey(seed.expose().to_owned()),
            Credentials::UserPassword { user, password } => {
                ConnectOptions::with_user_and_password(user.clone(), password.expose().to_owned())
            }
        };
    let mut options = options
        .name(format!("arauto/{}", cluster.node_name))
        .connection_timeout(ATTEMPT_TIMEOUT)
        // Reconnects after the first connection go on for ever: a node cut
        // off from the cluster loses its leases (its fence says so at once)
        // and must come back by itself when the network does.
        .max_reconnects(None);
    let wants_tls = cluster.servers.iter().any(|s| s.starts_with("tls://"));
    if let Some(tls) = &cluster.tls {
        if let Some(ca) = &tls.ca_file {
            options = options.add_root_certificates(ca.clone());
        }
        if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        options = options.require_tls(true);
    } else if wants_tls {
        options = options.require_tls(true);
    }
    Ok(options)
}

/// Connect to `cluster.servers`, retrying for up to `initial_wait` while no
/// server answers. Credential and TLS failures end at once: waiting does not
/// fix them.
pub async fn connect(
    cluster: &ClusterConfig,
    initial_wait: Duration,
) -> Result<Client, ConnectError> {
    let deadline = tokio::time::Instant::now() + initial_wait;
    let servers = cluster.servers.join(", ");
    let unreachable = |reason: String| ConnectError::Unreachable {
        servers: servers.clone(),
        node: cluster.node_name.clone(),
        reason,
    };
    let addresses: Vec<async_nats::ServerAddr> = cluster
        .servers
        .iter()
        .map(|s| s.parse::<async_nats::ServerAddr>())
        .collect::<Result<_, _>>()
        .map_err(|e| unreachable(format!("bad server address: {e}")))?;
    loop {
        let attempt = options(cluster).await?.connect(addresses.clone()).await;
        match attempt {
            Ok(client) => return Ok(client),
            Err(error) => {
                let lasting = matches!(
                    error.kind(),
                    ConnectErrorKind::Authentication
                        | ConnectErrorKind::AuthorizationViolation
                        | ConnectErrorKind::Tls
                        | ConnectErrorKind::ServerParse
                );
                if lasting || tokio::time::Instant::now() + RETRY_PAUSE >= deadline {
                    return Err(unreachable(describe(&error)));
                }
                tracing::debug!(servers = %servers, "no NATS server answers yet ({error}); retrying");
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }
}

/// The client's error in words an operator acts on.
fn describe(error: &async_nats::ConnectError) -> String {
    let hint = match error.kind() {
        ConnectErrorKind::Authentication | ConnectErrorKind::AuthorizationViolation => {
            " (check creds_file, nkey or user/password against the server's authorization)"
        }
        ConnectErrorKind::Tls => {
            " (check [cluster.tls] ca_file / cert_file / key_file and the servers' certificates)"
        }
        ConnectErrorKind::Io | ConnectErrorKind::TimedOut | ConnectErrorKind::Dns => {
            " (is nats-server running and reachable from this machine?)"
        }
        _ => "",
    };
    format!("{error}{hint}")
}

/// Where the client is connected, for logs and `arauto check`:
/// `server <name> <version> at <host:port>` (the address the server announces).
pub fn describe_connection(client: &Client) -> String {
    let info = client.server_info();
    format!(
        "server {} {} at {}:{}{}",
        info.server_name,
        info.version,
        info.host,
        info.port,
        info.cluster
            .as_deref()
            .map(|c| format!(" in cluster {c}"))
            .unwrap_or_default()
    )
}
