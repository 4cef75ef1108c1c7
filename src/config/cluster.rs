//! `[cluster]`: several arauto nodes sharing stores and channels over a NATS
//! JetStream cluster (`backend = "nats"`). Its types, its defaults and how it
//! is read. Without the table nothing changes: the daemon keeps its redb file.
//!
//! Credentials go through the same secret mechanisms as plugin settings: a
//! secret (`nkey`, `password`) is written inline, or read from a file
//! (`nkey_file`, relative to `$CREDENTIALS_DIRECTORY` when systemd sets it) or
//! from an environment variable (`nkey_env`); it never prints. A `.creds`
//! file is named by `creds_file` (a relative name resolves against
//! `$CREDENTIALS_DIRECTORY` too, so `LoadCredential=nats.creds:…` works) or
//! given whole in a variable (`creds_env`); so is `[cluster.tls] key_file`.
//! At most one kind of credential is given: a creds file, an nkey seed, or
//! user and password.

use std::path::PathBuf;

use figment::value::Value;
use jiff::SignedDuration;
use serde::Serialize;

use super::reader::{Reader, Table, field, optional, optional_section, required};
use super::secret::{Secret, secret_from_env, secret_from_file};
use super::source::KeyPath;
use super::values::serialize_duration;

/// The one backend `[cluster] backend` accepts.
pub const BACKEND_NATS: &str = "nats";
/// Default `cluster.replicas`: a three-node JetStream cluster keeps every
/// stream and bucket on all three, so one server may die.
pub const DEFAULT_REPLICAS: usize = 3;
/// Largest `cluster.replicas` (JetStream's own limit).
pub const MAX_REPLICAS: usize = 5;
/// Default `cluster.lease_ttl`: a dead node's stores move after about this
/// long (plus up to a third of it until the next renewal round notices).
pub const DEFAULT_LEASE_TTL: SignedDuration = SignedDuration::from_secs(10);
/// Shortest `cluster.lease_ttl`: renewals every third of it must still fit a
/// round trip to a loaded cluster.
pub const MIN_LEASE_TTL: SignedDuration = SignedDuration::from_secs(3);
/// Longest `cluster.lease_ttl`: failover (the lease's end plus one renewal
/// period, `ttl + ttl/3`) must stay within 30 s.
pub const MAX_LEASE_TTL: SignedDuration = SignedDuration::from_secs(20);
/// Default `cluster.lease_slots`: the partitions stores and channels are
/// hashed into, each one lease. 128 keeps renewals at ~38 writes a second
/// for the whole cluster with the default TTL, whatever the number of stores,
/// and with 3,000 stores on three nodes each node owns its third within a few
/// percent (see `cluster::ownership`).
pub const DEFAULT_LEASE_SLOTS: u32 = 128;
/// Fewest `cluster.lease_slots`: fewer would leave nodes of a larger cluster idle.
pub const MIN_LEASE_SLOTS: u32 = 8;
/// Most `cluster.lease_slots`: every slot in use is one lease write per
/// `lease_ttl / 3`; beyond this the renewals alone load a small cluster.
pub const MAX_LEASE_SLOTS: u32 = 1024;
/// Default `cluster.prefix`: the names of the cluster's streams and buckets start with it.
pub const DEFAULT_PREFIX: &str = "arauto";
/// Longest `cluster.node_name`.
pub const MAX_NODE_NAME_BYTES: usize = 64;

/// `[cluster]`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClusterConfig {
    /// The NATS servers to connect to (`nats://host:4222`, `tls://host:4222`).
    pub servers: Vec<String>,
    /// How this node authenticates.
    pub credentials: Credentials,
    /// `[cluster.tls]`: certificates; `None` when absent (TLS still happens
    /// for `tls://` servers, against the system's roots).
    pub tls: Option<TlsConfig>,
    /// This node's name in heartbeats and leases. Default: the host name
    /// (characters a NATS key cannot carry replaced by `-`).
    pub node_name: String,
    /// Replicas of every stream and bucket. Default [`DEFAULT_REPLICAS`].
    pub replicas: usize,
    /// How long a lease lasts without renewal. Default [`DEFAULT_LEASE_TTL`].
    #[serde(serialize_with = "serialize_duration")]
    pub lease_ttl: SignedDuration,
    /// How many lease partitions ("slots") stores and channels hash into.
    /// Must be the same on every node. Default [`DEFAULT_LEASE_SLOTS`].
    pub lease_slots: u32,
    /// First part of every stream and bucket name. Default [`DEFAULT_PREFIX`].
    pub prefix: String,
}

impl ClusterConfig {
    /// How often leases and the heartbeat are renewed: a third of the TTL,
    /// so two renewals may fail before a lease lapses.
    pub fn renew_every(&self) -> SignedDuration {
        self.lease_ttl / 3
    }
}

/// How a node authenticates to NATS.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Credentials {
    /// No credentials (a server without authorization).
    None,
    /// A `.creds` file (JWT and nkey seed), as `nsc` writes it.
    CredsFile(PathBuf),
    /// The content of a `.creds` file, from an environment variable (`creds_env`).
    Creds(Secret),
    /// An nkey seed (`SU…`).
    Nkey(Secret),
    /// User and password.
    UserPassword {
        /// The user name.
        user: String,
        /// The password.
        password: Secret,
    },
}

/// `[cluster.tls]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TlsConfig {
    /// CA certificate(s) (PEM) the servers' certificates must chain to.
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM), for servers that verify clients.
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub key_file: Option<PathBuf>,
}

/// Why a `cluster.node_name` is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "must be a NATS key token: letters, digits, '-', '_' and '=' only (no dots or spaces), \
     at most {MAX_NODE_NAME_BYTES} characters"
)]
pub struct NodeNameError;

/// Check a node name: one NATS key token (`[A-Za-z0-9_=-]+`), at most
/// [`MAX_NODE_NAME_BYTES`].
pub fn check_node_name(name: &str) -> Result<(), NodeNameError> {
    let token_ok = !name.is_empty()
        && name.len() <= MAX_NODE_NAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'='));
    if token_ok { Ok(()) } else { Err(NodeNameError) }
}

/// The default node name: the kernel's host name made into a key token
/// (`web-1.example.com` → `web-1-example-com`); `arauto` when there is none.
pub fn default_node_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    node_name_from_host(host.trim())
}

fn node_name_from_host(host: &str) -> String {
    let name: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(MAX_NODE_NAME_BYTES)
        .collect();
    if name.is_empty() {
        "arauto".to_owned()
    } else {
        name
    }
}

/// Why a `cluster.servers` entry is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    r#"expected a NATS server URL like "nats://10.0.0.1:4222" or "tls://nats1.example.com:4222""#
)]
pub struct ServerUrlError;

/// Check a server URL: `nats://` or `tls://`, a host, an optional port.
/// (User and password belong in `user` / `password`, where they stay secret.)
pub fn check_server_url(url: &str) -> Result<(), ServerUrlError> {
    let rest = url
        .strip_prefix("nats://")
        .or_else(|| url.strip_prefix("tls://"))
        .ok_or(ServerUrlError)?;
    if rest.is_empty() || rest.contains(['@', '/', ' ', '?', '#']) {
        return Err(ServerUrlError);
    }
    url.parse::<async_nats::ServerAddr>()
        .map(|_| ())
        .map_err(|_| ServerUrlError)
}

/// Read `[cluster]` (present): with errors recorded in `r`, `None` when the
/// section cannot be used at all.
pub(crate) fn read_cluster(r: &mut Reader<'_>, mut t: Table) -> Option<ClusterConfig> {
    let backend = required(
        r,
        &mut t,
        "backend",
        r#"the cluster backend (backend = "nats")"#,
        |r, p, v| {
            let text = r.string(p, v.clone())?;
            if text != BACKEND_NATS {
                r.error(p, &v, r#"unknown backend (the one backend is "nats")"#);
                return None;
            }
            Some(text)
        },
    );
    let servers = required(
        r,
        &mut t,
        "servers",
        r#"the NATS servers, like servers = ["nats://10.0.0.1:4222"]"#,
        |r, p, v| {
            let list = r.string_list(p, v.clone())?;
            if list.is_empty() {
                r.error(p, &v, "must name at least one server");
                return None;
            }
            let mut ok = true;
            for (i, url) in list.iter().enumerate() {
                if let Err(problem) = check_server_url(url) {
                    r.error(&p.index(i), &Value::from(url.clone()), problem.to_string());
                    ok = false;
                }
            }
            ok.then_some(list)
        },
    );
    let credentials = read_credentials(r, &mut t);
    let tls = optional_section(r, &mut t, "tls").map(|tls| read_tls(r, tls));
    let node_name = field(r, &mut t, "node_name", default_node_name, |r, p, v| {
        r.parsed(p, v, |s| check_node_name(s).map(|()| s.to_owned()))
    });
    let replicas = field(
        r,
        &mut t,
        "replicas",
        || DEFAULT_REPLICAS,
        |r, p, v| {
            r.integer(p, v, 1, MAX_REPLICAS as u64)
                .and_then(|n| usize::try_from(n).ok())
        },
    );
    let lease_ttl = field(
        r,
        &mut t,
        "lease_ttl",
        || DEFAULT_LEASE_TTL,
        |r, p, v| r.duration_range(p, v, MIN_LEASE_TTL, MAX_LEASE_TTL),
    );
    let lease_slots = field(
        r,
        &mut t,
        "lease_slots",
        || DEFAULT_LEASE_SLOTS,
        |r, p, v| {
            r.integer(p, v, u64::from(MIN_LEASE_SLOTS), u64::from(MAX_LEASE_SLOTS))
                .and_then(|n| u32::try_from(n).ok())
        },
    );
    let prefix = field(
        r,
        &mut t,
        "prefix",
        || DEFAULT_PREFIX.to_owned(),
        |r, p, v| {
            r.parsed(p, v, |s| {
                check_node_name(s)
                    .map(|()| s.to_owned())
                    .map_err(|_| "must be letters, digits, '-' and '_' only (it starts stream and bucket names)")
            })
        },
    );
    r.finish(t);
    let _ = backend?;
    Some(ClusterConfig {
        servers: servers?,
        credentials: credentials?,
        tls,
        node_name,
        replicas,
        lease_ttl,
        lease_slots,
        prefix,
    })
}

/// `creds_file`, `nkey[_file|_env]`, `user` + `password[_file|_env]`: at
/// most one kind. `None` when an error was recorded.
fn read_credentials(r: &mut Reader<'_>, t: &mut Table) -> Option<Credentials> {
    let table_path = t.path.clone();
    if t.has("creds_file") && t.has("creds_env") {
        r.error_at(
            &table_path.key("creds_env"),
            "creds_file is given twice (as creds_file and creds_env); keep only one",
        );
        return None;
    }
    let creds_file = optional(r, t, "creds_file", |r, p, v| {
        let path = credentials_path(r, p, v.clone())?;
        if !path.is_file() {
            r.error(
                p,
                &v,
                format!(
                    "no such file {} (a .creds file as `nsc` writes it{})",
                    path.display(),
                    if r.env_var("CREDENTIALS_DIRECTORY").is_some() {
                        "; relative names are looked up in $CREDENTIALS_DIRECTORY"
                    } else {
                        ""
                    }
                ),
            );
            return None;
        }
        Some(path)
    })
    .map(Credentials::CredsFile);
    let creds_from_env = optional(r, t, "creds_env", |r, p, v| {
        let creds = secret_from_env(r, p, v)?;
        if !creds.expose().contains("NATS USER JWT") || !creds.expose().contains("SU") {
            r.error_at(
                p,
                "the variable does not hold a .creds file (a user JWT and an nkey seed, as `nsc` \
                 writes them)",
            );
            return None;
        }
        Some(Credentials::Creds(creds))
    });
    let creds_file = creds_file.or(creds_from_env);
    // Where the seed came from, for an error about its content.
    let nkey_source = ["nkey", "nkey_file", "nkey_env"]
        .into_iter()
        .find(|key| t.has(key))
        .unwrap_or("nkey");
    let nkey = read_secret(r, t, ["nkey", "nkey_file", "nkey_env"]);
    let user = optional(r, t, "user", Reader::nonempty_string);
    let password = read_secret(r, t, ["password", "password_file", "password_env"]);
    let (nkey, password) = (nkey?, password?);
    let given: Vec<&str> = [
        creds_file.as_ref().map(|_| "creds_file"),
        nkey.as_ref().map(|_| "nkey"),
        user.as_ref().map(|_| "user"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if given.len() > 1 {
        r.error_at(
            &table_path,
            format!(
                "give one kind of credentials, not {}: creds_file, or nkey, or user and password",
                given.join(" and ")
            ),
        );
        return None;
    }
    match (creds_file, nkey, user, password) {
        (Some(creds), ..) => Some(creds),
        (_, Some(seed), ..) => {
            if !seed.expose().starts_with("SU") {
                r.error_at(
                    &table_path.key(nkey_source),
                    format!(
                        "the seed {} gives is not a user nkey seed (it starts with \"SU\"; `nsc` or \
                         `nk -gen user` makes one)",
                        match nkey_source {
                            "nkey_file" => "the file",
                            "nkey_env" => "the environment variable",
                            _ => "it",
                        }
                    ),
                );
                return None;
            }
            Some(Credentials::Nkey(seed))
        }
        (_, _, Some(user), Some(password)) => Some(Credentials::UserPassword { user, password }),
        (_, _, Some(_), None) => {
            r.missing(
                t,
                "password",
                "the password of `user` (password, password_file or password_env)",
            );
            None
        }
        (_, _, None, Some(_)) => {
            r.missing(t, "user", "the user `password` belongs to");
            None
        }
        (None, None, None, None) => Some(Credentials::None),
    }
}

/// A file holding a credential: an absolute path as it is; a relative one in
/// `$CREDENTIALS_DIRECTORY` when systemd sets it (`LoadCredential=`), else
/// next to the configuration file (as `<key>_file` secrets resolve).
fn credentials_path(r: &mut Reader<'_>, p: &KeyPath, v: Value) -> Option<PathBuf> {
    let text = r.nonempty_string(p, v)?;
    let file = std::path::Path::new(&text);
    if file.is_absolute() {
        return Some(file.to_path_buf());
    }
    match r
        .env_var("CREDENTIALS_DIRECTORY")
        .filter(|dir| !dir.is_empty())
    {
        Some(dir) => Some(std::path::Path::new(dir).join(file)),
        None => Some(r.resolve(file)),
    }
}

/// A secret written inline, from a file or from a variable (`keys` are the
/// three spellings). `Some(None)` when absent, `None` after an error.
fn read_secret(
    r: &mut Reader<'_>,
    t: &mut Table,
    keys: [&'static str; 3],
) -> Option<Option<Secret>> {
    let given: Vec<(KeyPath, Value, usize)> = keys
        .iter()
        .enumerate()
        .filter_map(|(i, key)| t.take(key).map(|(p, v)| (p, v, i)))
        .collect();
    if given.len() > 1 {
        let names: Vec<&str> = given.iter().map(|(_, _, i)| keys[*i]).collect();
        r.error_at(
            &given[1].0,
            format!(
                "{} is given more than once (as {}); keep only one of {}",
                keys[0],
                names.join(", "),
                keys.join(", ")
            ),
        );
        return None;
    }
    let Some((path, value, kind)) = given.into_iter().next() else {
        return Some(None);
    };
    let secret = match kind {
        0 => match value {
            Value::String(_, text) if !text.trim().is_empty() => Some(Secret::new(text)),
            Value::String(..) => {
                r.error_at(&path, "must not be empty");
                None
            }
            _ => {
                r.error_at(&path, "expected a string");
                None
            }
        },
        1 => secret_from_file(r, &path, value),
        _ => secret_from_env(r, &path, value),
    };
    secret.map(Some)
}

/// Read `[cluster.tls]`.
fn read_tls(r: &mut Reader<'_>, mut t: Table) -> TlsConfig {
    let file = |r: &mut Reader<'_>, t: &mut Table, key: &'static str| {
        optional(r, t, key, |r, p, v| {
            let path = r.path(p, v.clone())?;
            if !path.is_file() {
                r.error(p, &v, format!("no such file {}", path.display()));
                return None;
            }
            Some(path)
        })
    };
    let ca_file = file(r, &mut t, "ca_file");
    let cert_file = file(r, &mut t, "cert_file");
    // The private key is a secret: found in `$CREDENTIALS_DIRECTORY` like one.
    let key_file = optional(r, &mut t, "key_file", |r, p, v| {
        let path = credentials_path(r, p, v.clone())?;
        if !path.is_file() {
            r.error(p, &v, format!("no such file {}", path.display()));
            return None;
        }
        Some(path)
    });
    match (&cert_file, &key_file) {
        (Some(_), None) => r.missing(&t, "key_file", "the private key of cert_file"),
        (None, Some(_)) => r.missing(&t, "cert_file", "the certificate key_file belongs to"),
        _ => {}
    }
    r.finish(t);
    TlsConfig {
        ca_file,
        cert_file,
        key_file,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_are_key_tokens() {
        assert!(check_node_name("node-1").is_ok());
        assert!(check_node_name("Node_2=a").is_ok());
        for bad in ["", "a.b", "a b", "a*", "a>", &"x".repeat(65)] {
            assert!(check_node_name(bad).is_err(), "{bad}");
        }
        assert_eq!(
            node_name_from_host("web-1.example.com"),
            "web-1-example-com"
        );
        assert_eq!(node_name_from_host(""), "arauto");
        assert!(check_node_name(&default_node_name()).is_ok());
    }

    #[test]
    fn server_urls() {
        for good in [
            "nats://127.0.0.1:4222",
            "tls://nats1.example.com:4222",
            "nats://n1",
        ] {
            assert!(check_server_url(good).is_ok(), "{good}");
        }
        for bad in [
            "127.0.0.1:4222",
            "http://n1:4222",
            "nats://",
            "nats://user:pw@n1:4222",
            "nats://n1:4222/x",
        ] {
            assert!(check_server_url(bad).is_err(), "{bad}");
        }
    }

    fn load(text: &str, env: &[(&str, &str)]) -> Result<crate::config::Config, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("arauto.toml");
        std::fs::write(&path, text).map_err(|e| e.to_string())?;
        let env = env.iter().map(|(k, v)| ((*k).into(), (*v).into()));
        crate::config::load_with_env(Some(&path), env).map_err(|e| e.to_string())
    }

    #[test]
    fn absent_means_no_cluster_and_defaults_fill_the_rest() {
        let config = load("", &[]).unwrap();
        assert_eq!(config.cluster, None);
        let config = load(
            "[cluster]\nbackend = \"nats\"\nservers = [\"nats://127.0.0.1:4222\"]\nnode_name = \"n1\"\n",
            &[],
        )
        .unwrap();
        let cluster = config.cluster.unwrap();
        assert_eq!(cluster.replicas, DEFAULT_REPLICAS);
        assert_eq!(cluster.lease_ttl, DEFAULT_LEASE_TTL);
        assert_eq!(cluster.renew_every().as_millis(), 3333);
        assert_eq!(cluster.lease_slots, DEFAULT_LEASE_SLOTS);
        assert_eq!(cluster.credentials, Credentials::None);
        assert_eq!(cluster.node_name, "n1");
    }

    #[test]
    fn errors_name_line_key_and_value_and_never_the_secret() {
        let text = "[cluster]\nbackend = \"raft\"\nservers = [\"127.0.0.1:4222\"]\n\
                    replicas = 7\nlease_ttl = \"1m\"\nnode_name = \"a.b\"\nlease_slots = 4\n\
                    user = \"bob\"\npassword = \"hunter2\"\nnkey_env = \"SEED\"\n";
        let errors = load(text, &[("SEED", "SUAXXX")]).unwrap_err();
        for expected in [
            ":2:11: cluster.backend = \"raft\": unknown backend",
            ":3:12: cluster.servers[0] = \"127.0.0.1:4222\": expected a NATS server URL",
            ":4:12: cluster.replicas = 7: must be between 1 and 5",
            ":7:15: cluster.lease_slots = 4: must be between 8 and 1024",
            "cluster.lease_ttl = \"1m\"",
            "cluster.node_name = \"a.b\": must be a NATS key token",
            "give one kind of credentials, not nkey and user",
        ] {
            assert!(errors.contains(expected), "{expected:?} not in {errors}");
        }
        assert!(
            !errors.contains("hunter2") && !errors.contains("SUAXXX"),
            "{errors}"
        );
    }

    #[test]
    fn a_seed_that_is_not_a_user_seed_is_blamed_on_the_key_it_came_from() {
        let text = "[cluster]\nbackend = \"nats\"\nservers = [\"nats://n1\"]\n\
                    nkey_env = \"SEED\"\n";
        let errors = load(text, &[("SEED", "SAAXXX")]).unwrap_err();
        assert!(
            errors.contains("cluster.nkey_env")
                && errors.contains("the environment variable gives is not a user nkey seed"),
            "{errors}"
        );
        assert!(!errors.contains("SAAXXX"), "{errors}");
    }

    #[test]
    fn secrets_come_from_files_and_variables() {
        let text = "[cluster]\nbackend = \"nats\"\nservers = [\"tls://n1:4222\"]\n\
                    user = \"bob\"\npassword_env = \"NATS_PW\"\n";
        let config = load(text, &[("NATS_PW", "hunter2")]).unwrap();
        let cluster = config.cluster.unwrap();
        let Credentials::UserPassword { user, password } = &cluster.credentials else {
            panic!("expected user and password, got {:?}", cluster.credentials)
        };
        assert_eq!((user.as_str(), password.expose()), ("bob", "hunter2"));
        assert!(!format!("{cluster:?}").contains("hunter2"));
        let missing = load(text, &[]).unwrap_err();
        assert!(
            missing.contains("environment variable NATS_PW is not set"),
            "{missing}"
        );
        let half = "[cluster]\nbackend = \"nats\"\nservers = [\"nats://n1\"]\nuser = \"bob\"\n";
        let half = load(half, &[]).unwrap_err();
        assert!(half.contains("cluster.password: missing"), "{half}");
    }

    #[test]
    fn a_creds_file_is_found_in_the_credentials_directory_or_given_by_a_variable() {
        let creds = "-----BEGIN NATS USER JWT-----\neyJ0eXAi.x.y\n------END NATS USER JWT------\n\n\
                     -----BEGIN USER NKEY SEED-----\nSUAMLK2ZNL35WSMW37E7UD4VZ7ELPKW7DHC3BWBSD2GCZ7IUQQXZIORRBU\n\
                     ------END USER NKEY SEED------\n";
        let systemd = tempfile::tempdir().unwrap();
        std::fs::write(systemd.path().join("nats.creds"), creds).unwrap();
        let dir = systemd.path().to_str().unwrap();
        let text = "[cluster]\nbackend = \"nats\"\nservers = [\"nats://n1\"]\n\
                    creds_file = \"nats.creds\"\n";
        let config = load(text, &[("CREDENTIALS_DIRECTORY", dir)]).unwrap();
        assert_eq!(
            config.cluster.unwrap().credentials,
            Credentials::CredsFile(systemd.path().join("nats.creds"))
        );
        let missing = load(text, &[]).unwrap_err();
        assert!(
            missing.contains(":4:14: cluster.creds_file = \"nats.creds\": no such file"),
            "{missing}"
        );

        let text = "[cluster]\nbackend = \"nats\"\nservers = [\"nats://n1\"]\n\
                    creds_env = \"NATS_CREDS\"\n";
        let config = load(text, &[("NATS_CREDS", creds)]).unwrap();
        let cluster = config.cluster.unwrap();
        let Credentials::Creds(secret) = &cluster.credentials else {
            panic!("expected creds, got {:?}", cluster.credentials)
        };
        assert_eq!(secret.expose(), creds);
        assert!(!format!("{cluster:?}").contains("SUAMLK"));
        let wrong = load(text, &[("NATS_CREDS", "SUAXXX-not-creds")]).unwrap_err();
        assert!(
            wrong.contains("cluster.creds_env") && wrong.contains("does not hold a .creds file"),
            "{wrong}"
        );
        assert!(!wrong.contains("SUAXXX"), "{wrong}");
        let both = "[cluster]\nbackend = \"nats\"\nservers = [\"nats://n1\"]\n\
                    creds_file = \"nats.creds\"\ncreds_env = \"NATS_CREDS\"\n";
        let both = load(
            both,
            &[("NATS_CREDS", creds), ("CREDENTIALS_DIRECTORY", dir)],
        )
        .unwrap_err();
        assert!(both.contains("cluster.creds_env"), "{both}");
    }
}
