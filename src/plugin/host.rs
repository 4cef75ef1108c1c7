//! [`PluginHost`], loaded [`Plugin`]s and the per-instance call handles.

use std::collections::BTreeSet;
use std::fmt;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Once, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};

use crate::model::{ConfigKey, ConnectorInfo, PluginInfo, PluginKind, SenderInfo};

use super::allowlist::{AllowList, AllowedHost, AllowedHostError};
use super::api_version::{self, ApiVersion, Contract, SupportedApi};
use super::cache::{self, ArtifactCache, ArtifactSource};
use super::engine::{self, Allocator, EpochTicker};
use super::error::PluginError;
use super::http::HttpContext;
use super::inspect::InspectReport;
use super::redact::Redactor;
use super::sandbox::{self, CallFuture, CallState, InstanceContext};
use super::types::{
    DEFAULT_MEMORY_LIMIT, InstanceConfig, OutgoingMessage, PollPage, PollRequest, PushHint,
    PushRequest, SendReceipt,
};
use super::v0_1::{self, fallback};
use super::v0_2;

/// Budget of the `info` call made while loading a plugin.
const LOAD_CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Smallest memory cap accepted for an instance: a plugin's stack and data
/// alone need about this much.
const MIN_MEMORY_LIMIT: u64 = 2 * 1024 * 1024;

/// Default of [`HostConfig::max_concurrent_calls`].
pub const DEFAULT_MAX_CONCURRENT_CALLS: u32 = 32;

/// Settings of the plugin host itself.
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// Where compiled plugins are kept between runs (systemd's
    /// `CacheDirectory=`); `None` compiles on every load.
    pub cache_dir: Option<PathBuf>,
    /// Use `cache_dir` without ever writing to it (nor creating it): for
    /// `arauto validate`, which must leave no trace but may reuse what the
    /// daemon compiled.
    pub cache_read_only: bool,
    /// Plugin calls (and loads) running at the same time, across all
    /// plugins; further calls wait for a free slot. Bounds the memory all
    /// sandboxes together may use (this many times the instance memory cap)
    /// and sizes the pre-reserved instance pool.
    pub max_concurrent_calls: u32,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            cache_dir: None,
            cache_read_only: false,
            max_concurrent_calls: DEFAULT_MAX_CONCURRENT_CALLS,
        }
    }
}

impl HostConfig {
    /// The defaults, with compiled plugins cached in `dir`.
    pub fn with_cache_dir(dir: impl Into<PathBuf>) -> Self {
        Self {
            cache_dir: Some(dir.into()),
            ..Self::default()
        }
    }

    /// The defaults, reusing compiled plugins found in `dir` but never
    /// writing there (a missing or unreadable directory means no cache).
    pub fn reading_cache(dir: impl Into<PathBuf>) -> Self {
        Self {
            cache_dir: Some(dir.into()),
            cache_read_only: true,
            ..Self::default()
        }
    }
}

/// The plugin host could not start.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// wasmtime refused the engine configuration.
    #[error("cannot start the WebAssembly engine: {0}")]
    Engine(String),
    /// The compiled-plugin cache directory cannot be created or used.
    #[error("cannot use {} as the compiled-plugin cache directory: {source}", path.display())]
    CacheDir {
        /// The configured directory.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The epoch ticker thread could not be started.
    #[error("cannot start the plugin timer thread: {0}")]
    Ticker(std::io::Error),
}

/// The daemon's plugin host: one wasmtime engine, its epoch ticker, the
/// import linkers and the compiled-artifact cache. Cheap to clone; every clone
/// is the same host.
#[derive(Clone)]
pub struct PluginHost {
    inner: Arc<HostInner>,
}

struct HostInner {
    engine: Engine,
    allocator: Allocator,
    /// One permit per running sandbox ([`HostConfig::max_concurrent_calls`]).
    slots: Arc<Semaphore>,
    linkers: Linkers,
    cache: Option<ArtifactCache>,
    cache_dir: Option<PathBuf>,
    // Last: stops the ticker after everything else is gone.
    _ticker: EpochTicker,
}

impl fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginHost")
            .field("cache_dir", &self.inner.cache_dir)
            .field("allocator", &self.inner.allocator)
            .finish_non_exhaustive()
    }
}

/// reqwest is built without a default TLS crypto provider; plugins' HTTPS
/// uses rustls with *ring*, installed process-wide once.
fn install_tls_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err means another part of the process installed one first: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn current_runtime() -> Option<tokio::runtime::Handle> {
    tokio::runtime::Handle::try_current().ok()
}

impl PluginHost {
    /// Start the engine and its ticker, and open the cache directory.
    pub fn new(config: HostConfig) -> Result<Self, HostError> {
        install_tls_provider();
        let max_concurrent_calls = config.max_concurrent_calls.max(1);
        let (engine, allocator) = engine::new_engine(max_concurrent_calls)
            .map_err(|e| HostError::Engine(e.to_string()))?;
        let cache =
            match &config.cache_dir {
                Some(dir) if config.cache_read_only => ArtifactCache::open_read_only(dir, &engine),
                Some(dir) => Some(ArtifactCache::open(dir, &engine).map_err(|source| {
                    HostError::CacheDir {
                        path: dir.clone(),
                        source,
                    }
                })?),
                None => None,
            };
        let linkers = Linkers::new(&engine).map_err(|e| HostError::Engine(e.to_string()))?;
        let ticker = EpochTicker::start(&engine).map_err(HostError::Ticker)?;
        tracing::debug!(
            ?allocator,
            max_concurrent_calls,
            cache_dir = ?config.cache_dir,
            "plugin host started"
        );
        Ok(Self {
            inner: Arc::new(HostInner {
                engine,
                allocator,
                slots: Arc::new(Semaphore::new(max_concurrent_calls as usize)),
                linkers,
                cache,
                cache_dir: config.cache_dir,
                _ticker: ticker,
            }),
        })
    }

    /// The compiled-plugin cache directory, if any.
    pub fn cache_dir(&self) -> Option<&Path> {
        self.inner.cache_dir.as_deref()
    }

    /// Load a plugin file: compile it (or take it from the cache), check its
    /// API version and world, link its imports and read its `info`.
    ///
    /// Compiling takes tens of milliseconds (much more in a debug build), so
    /// it runs on tokio's blocking pool; the `info` call then runs like any
    /// other call.
    pub async fn load(&self, path: impl AsRef<Path>) -> Result<Plugin, PluginError> {
        let path = path.as_ref().to_owned();
        if current_runtime().is_none() {
            return Err(PluginError::Load {
                path,
                reason: "plugins must be loaded inside a tokio runtime".into(),
            });
        }
        let Some(slot) = self.slot().await else {
            return Err(PluginError::Load {
                path,
                reason: "the plugin host is shutting down".into(),
            });
        };
        let started = Instant::now();
        let host = self.clone();
        let task_path = path.clone();
        let compiled = tokio::task::spawn_blocking(move || host.compile_and_bind(&task_path))
            .await
            .unwrap_or_else(|e| {
                Err(PluginError::Load {
                    path: path.clone(),
                    reason: format!("the loading thread failed: {e}"),
                })
            })?;
        let plugin = self.describe(&path, compiled).await;
        drop(slot);
        let plugin = plugin?;
        tracing::info!(
            plugin = %plugin.name(),
            version = %plugin.version(),
            kind = ?plugin.kind(),
            api = %plugin.inner.contract.version,
            path = %path.display(),
            source = ?plugin.inner.source,
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            "loaded plugin"
        );
        if plugin.inner.contract.api == SupportedApi::V0_1 {
            fallback::warn_deprecated(plugin.name(), &path);
        }
        Ok(plugin)
    }

    /// Wait for a free sandbox slot. `None` only if the semaphore was closed,
    /// which this host never does.
    async fn slot(&self) -> Option<OwnedSemaphorePermit> {
        self.inner.slots.clone().acquire_owned().await.ok()
    }

    /// Load a plugin and describe it (`arauto plugins inspect FILE`).
    pub async fn inspect(&self, path: impl AsRef<Path>) -> Result<InspectReport, PluginError> {
        Ok(self.load(path).await?.report())
    }

    /// The CPU-heavy part of a load: read, compile (or reuse), check the
    /// contract and link the imports.
    fn compile_and_bind(&self, path: &Path) -> Result<Compiled, PluginError> {
        let load_error = |reason: String| PluginError::Load {
            path: path.to_owned(),
            reason,
        };
        let bytes =
            std::fs::read(path).map_err(|e| load_error(format!("cannot read the file: {e}")))?;
        let sha256 = cache::sha256_hex(&bytes);
        let (component, source) = self.compile_or_reuse(&bytes, &sha256, path)?;
        drop(bytes);
        let contract = api_version::detect(&self.inner.engine, &component, path)?;
        let binding = self.bind(&component, contract, path)?;
        Ok(Compiled {
            sha256,
            contract,
            source,
            binding,
        })
    }

    /// Call the compiled plugin's `info` and check what it says.
    async fn describe(&self, path: &Path, compiled: Compiled) -> Result<Plugin, PluginError> {
        let load_error = |reason: String| PluginError::Load {
            path: path.to_owned(),
            reason,
        };
        let file_name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let describing = Arc::new(InstanceContext {
            plugin: file_name.clone(),
            instance: "(load)".into(),
            settings: Vec::new(),
            redactor: Redactor::default(),
            http: HttpContext::deny_all(),
            call_timeout: LOAD_CALL_TIMEOUT,
            memory_limit: DEFAULT_MEMORY_LIMIT as usize,
        });
        let engine = &self.inner.engine;
        let cancel = CancellationToken::new;
        let description = match &compiled.binding {
            WorldBinding::Connector(ConnectorBinding::V0_1(pre)) => {
                let pre = pre.clone();
                sandbox::run(engine, &describing, path, cancel(), "info", move |store| {
                    Box::pin(async move {
                        v0_1::connector_info(&pre, store)
                            .await
                            .map(|info| Description::Connector(Arc::new(info)))
                    })
                })
                .await
            }
            WorldBinding::Connector(ConnectorBinding::V0_2(pre)) => {
                let pre = pre.clone();
                sandbox::run(engine, &describing, path, cancel(), "info", move |store| {
                    Box::pin(async move {
                        v0_2::connector_info(&pre, store)
                            .await
                            .map(|info| Description::Connector(Arc::new(info)))
                    })
                })
                .await
            }
            WorldBinding::Sender(SenderBinding::V0_1(pre)) => {
                let (pre, file_name) = (pre.clone(), file_name.clone());
                sandbox::run(engine, &describing, path, cancel(), "info", move |store| {
                    Box::pin(async move {
                        v0_1::sender_info(&pre, store).await.map(|info| {
                            Description::Sender(fallback::sender_info(info, &file_name))
                        })
                    })
                })
                .await
            }
            WorldBinding::Sender(SenderBinding::V0_2(pre)) => {
                let pre = pre.clone();
                sandbox::run(engine, &describing, path, cancel(), "info", move |store| {
                    Box::pin(async move {
                        v0_2::sender_info(&pre, store)
                            .await
                            .map(Description::Sender)
                    })
                })
                .await
            }
        }
        .map_err(|e| load_error(format!("its info() call failed: {e}")))?;
        validate_description(description.plugin(), compiled.contract)
            .map_err(|e| load_error(e.to_string()))?;

        Ok(Plugin {
            inner: Arc::new(PluginInner {
                path: path.to_owned(),
                sha256: compiled.sha256,
                contract: compiled.contract,
                source: compiled.source,
                description,
                binding: compiled.binding,
                last_allowlist: Mutex::new(None),
            }),
        })
    }

    fn compile_or_reuse(
        &self,
        bytes: &[u8],
        sha256: &str,
        path: &Path,
    ) -> Result<(Component, ArtifactSource), PluginError> {
        let engine = &self.inner.engine;
        let mut source = ArtifactSource::Compiled;
        if let Some(cache) = &self.inner.cache {
            match cache.load(engine, sha256) {
                Ok(Some(component)) => return Ok((component, ArtifactSource::Cache)),
                Ok(None) => {}
                Err(why) => {
                    tracing::warn!(path = %path.display(), "discarding an unusable compiled-plugin cache entry and compiling again: {why}");
                    source = ArtifactSource::RecompiledBadCacheEntry;
                }
            }
        }
        let component = Component::from_binary(engine, bytes).map_err(|e| PluginError::Load {
            path: path.to_owned(),
            reason: format!("not a valid WebAssembly component: {e:#}"),
        })?;
        if let Some(cache) = &self.inner.cache
            && let Err(why) = cache.store(&component, sha256)
        {
            tracing::warn!(path = %path.display(), "cannot write the compiled-plugin cache (the next start compiles again): {why}");
        }
        Ok((component, source))
    }

    fn bind(
        &self,
        component: &Component,
        contract: Contract,
        path: &Path,
    ) -> Result<WorldBinding, PluginError> {
        let load_error = |what: &str, e: wasmtime::Error| PluginError::Load {
            path: path.to_owned(),
            reason: format!("{what}: {e:#}"),
        };
        let linkers = &self.inner.linkers;
        let link = |linker: &Linker<CallState>| {
            linker
                .instantiate_pre(component)
                .map_err(|e| load_error("cannot link its imports", e))
        };
        let connector_exports = |e| load_error("its exports do not match the connector world", e);
        let sender_exports = |e| load_error("its exports do not match the sender world", e);
        Ok(match (contract.api, contract.kind) {
            (SupportedApi::V0_1, PluginKind::Connector) => {
                let pre = v0_1::ConnectorPre::new(link(&linkers.v0_1_connector)?)
                    .map_err(connector_exports)?;
                WorldBinding::Connector(ConnectorBinding::V0_1(pre))
            }
            (SupportedApi::V0_1, PluginKind::Sender) => {
                let pre =
                    v0_1::SenderPre::new(link(&linkers.v0_1_sender)?).map_err(sender_exports)?;
                WorldBinding::Sender(SenderBinding::V0_1(pre))
            }
            (SupportedApi::V0_2, PluginKind::Connector) => {
                let pre = v0_2::ConnectorPre::new(link(&linkers.v0_2_connector)?)
                    .map_err(connector_exports)?;
                WorldBinding::Connector(ConnectorBinding::V0_2(pre))
            }
            (SupportedApi::V0_2, PluginKind::Sender) => {
                let pre =
                    v0_2::SenderPre::new(link(&linkers.v0_2_sender)?).map_err(sender_exports)?;
                WorldBinding::Sender(SenderBinding::V0_2(pre))
            }
        })
    }

    /// A store's connector: `plugin` with this instance's settings and grants.
    pub fn connector(
        &self,
        plugin: &Plugin,
        config: InstanceConfig,
    ) -> Result<ConnectorInstance, PluginError> {
        let WorldBinding::Connector(binding) = &plugin.inner.binding else {
            return Err(wrong_world(plugin, &config.instance, "connector"));
        };
        let common = self.instance(plugin, config)?;
        Ok(ConnectorInstance {
            common,
            binding: binding.clone(),
        })
    }

    /// A channel's sender: `plugin` with this instance's settings and grants.
    pub fn sender(
        &self,
        plugin: &Plugin,
        config: InstanceConfig,
    ) -> Result<SenderInstance, PluginError> {
        let WorldBinding::Sender(binding) = &plugin.inner.binding else {
            return Err(wrong_world(plugin, &config.instance, "sender"));
        };
        let common = self.instance(plugin, config)?;
        Ok(SenderInstance {
            common,
            binding: binding.clone(),
        })
    }

    fn instance(
        &self,
        plugin: &Plugin,
        config: InstanceConfig,
    ) -> Result<Arc<InstanceCommon>, PluginError> {
        let ctx = instance_context(plugin, config)?;
        Ok(Arc::new(InstanceCommon {
            host: self.clone(),
            plugin: plugin.clone(),
            ctx: Arc::new(ctx),
        }))
    }
}

/// Load `path` in a throwaway host (no compiled cache) and describe it.
pub async fn inspect(path: impl AsRef<Path>) -> Result<InspectReport, PluginError> {
    let path = path.as_ref();
    let host = PluginHost::new(HostConfig::default()).map_err(|e| PluginError::Load {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    host.inspect(path).await
}

fn wrong_world(plugin: &Plugin, instance: &str, wanted: &str) -> PluginError {
    PluginError::Misconfigured(format!(
        "instance {instance}: plugin {} ({}) is a {}, not a {wanted}",
        plugin.name(),
        plugin.path().display(),
        kind_name(plugin.kind()),
    ))
}

fn kind_name(kind: PluginKind) -> &'static str {
    match kind {
        PluginKind::Connector => "connector",
        PluginKind::Sender => "sender",
    }
}

/// Why a plugin's own description (its `info`) is not trusted; the loader
/// reports it as a load failure of the file.
#[derive(Debug, thiserror::Error)]
enum DescriptionError {
    #[error(
        "its info() says it is a {} but it implements the {} world",
        kind_name(*said),
        kind_name(*world)
    )]
    WrongKind { said: PluginKind, world: PluginKind },
    #[error("its name {0:?} is not a short lower-case identifier (a-z, 0-9, - and _)")]
    InvalidName(String),
    #[error("it declares an invalid default host {host:?}: {problem}")]
    InvalidDefaultHost {
        host: String,
        problem: AllowedHostError,
    },
}

/// Check what `info` said before trusting it.
/// The declared key a setting named `key` belongs to: the key of that exact
/// name, or a family declared as `<prefix>.*` (e.g. the webhook plugin's
/// `header.*` for `header.X-Arauto-Node`) whose prefix `key` extends. The
/// frozen WIT has no family type, so a trailing `.*` in a declared name is
/// the convention.
fn declared_key<'a>(declared: &'a [ConfigKey], key: &str) -> Option<&'a ConfigKey> {
    declared.iter().find(|k| k.name == key).or_else(|| {
        declared.iter().find(|k| {
            k.name.strip_suffix('*').is_some_and(|prefix| {
                prefix.ends_with('.') && key.len() > prefix.len() && key.starts_with(prefix)
            })
        })
    })
}

fn validate_description(info: &PluginInfo, contract: Contract) -> Result<(), DescriptionError> {
    // Only contract 0.1 has `plugin-info.kind`; from 0.2 on the world says it.
    let world = contract.kind;
    if contract.api == SupportedApi::V0_1 && info.kind != world {
        return Err(DescriptionError::WrongKind {
            said: info.kind,
            world,
        });
    }
    let name_ok = !info.name.is_empty()
        && info.name.len() <= 64
        && info
            .name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !name_ok {
        return Err(DescriptionError::InvalidName(info.name.clone()));
    }
    for host in &info.default_hosts {
        AllowedHost::parse(host).map_err(|problem| DescriptionError::InvalidDefaultHost {
            host: host.clone(),
            problem,
        })?;
    }
    Ok(())
}

/// Turn an instance's config into the context its calls run with.
fn instance_context(
    plugin: &Plugin,
    config: InstanceConfig,
) -> Result<InstanceContext, PluginError> {
    let info = plugin.info();
    let instance = config.instance;
    let misconfigured = |what: String| {
        PluginError::Misconfigured(format!(
            "instance {instance} (plugin {}): {what}",
            info.name
        ))
    };

    let call_timeout = Duration::try_from(config.call_timeout)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            misconfigured(format!(
                "the call timeout must be positive, got {:#}",
                config.call_timeout
            ))
        })?;
    let memory_limit = Some(config.memory_limit)
        .filter(|m| *m >= MIN_MEMORY_LIMIT)
        .and_then(|m| usize::try_from(m).ok())
        .ok_or_else(|| {
            misconfigured(format!(
                "the memory limit must be at least {MIN_MEMORY_LIMIT} bytes, got {}",
                config.memory_limit
            ))
        })?;
    if config.max_response_bytes == 0 {
        return Err(misconfigured(
            "the response size cap must be positive".into(),
        ));
    }
    let requests_per_minute = match config.requests_per_minute {
        None => None,
        Some(n) => Some(
            NonZeroU32::new(n)
                .ok_or_else(|| misconfigured("requests per minute must be at least 1".into()))?,
        ),
    };

    let is_set = |key: &str| config.settings.iter().any(|(k, _)| k == key);
    let missing: Vec<String> = info
        .config_keys
        .iter()
        .filter(|k| k.required && k.default_value.is_none() && !is_set(&k.name))
        .map(|k| {
            if k.description.is_empty() {
                k.name.clone()
            } else {
                format!("{} ({})", k.name, k.description)
            }
        })
        .collect();
    if !missing.is_empty() {
        return Err(misconfigured(format!(
            "missing required setting(s): {}",
            missing.join(", ")
        )));
    }
    for (key, _) in &config.settings {
        if declared_key(&info.config_keys, key).is_none() {
            tracing::warn!(
                plugin = %info.name, instance = %instance,
                "setting {key:?} is not one the plugin declares (a typo?); it is passed on anyway"
            );
        }
    }
    // Sized exactly: a daemon keeps one of these per store, and growing it
    // by pushes left half of every table unused.
    let defaults = info
        .config_keys
        .iter()
        .filter(|key| key.default_value.is_some() && !is_set(&key.name))
        .count();
    let mut settings = Vec::with_capacity(config.settings.len() + defaults);
    settings.extend(config.settings.iter().cloned());
    for key in &info.config_keys {
        if let (Some(default), false) = (&key.default_value, is_set(&key.name)) {
            settings.push((key.name.clone(), default.clone()));
        }
    }

    let secret_keys: BTreeSet<&str> = config
        .secret_keys
        .iter()
        .map(String::as_str)
        .chain(
            info.config_keys
                .iter()
                .filter(|k| k.secret)
                .map(|k| k.name.as_str()),
        )
        .collect();
    let redactor = Redactor::new(
        config
            .settings
            .iter()
            .filter(|(k, _)| {
                secret_keys.contains(k.as_str())
                    || declared_key(&info.config_keys, k).is_some_and(|declared| declared.secret)
            })
            .map(|(_, v)| v.clone()),
    );

    let hosts = config.allowed_hosts.as_ref().unwrap_or(&info.default_hosts);
    let allowlist = {
        let mut last = plugin
            .inner
            .last_allowlist
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match last.as_ref() {
            Some((entries, allowlist)) if entries == hosts => allowlist.clone(),
            _ => {
                let allowlist = AllowList::parse(hosts)
                    .map_err(|why| misconfigured(format!("allowed host {why}")))?;
                *last = Some((hosts.clone(), allowlist.clone()));
                allowlist
            }
        }
    };
    let user_agent = format!(
        "arauto/{} (plugin {}/{})",
        env!("CARGO_PKG_VERSION"),
        info.name,
        info.version
    );
    let http = HttpContext::new(
        allowlist,
        config.allow_private_addresses,
        requests_per_minute,
        config.max_response_bytes,
        &user_agent,
    )
    .map_err(|e| misconfigured(e.to_string()))?;

    Ok(InstanceContext {
        plugin: info.name.clone(),
        instance: instance.clone(),
        settings,
        redactor,
        http,
        call_timeout,
        memory_limit,
    })
}

/// What `info` returned when the plugin was loaded (for a 0.1 sender, with
/// the name table's declarations filled in).
enum Description {
    /// Shared with every store of the connector ([`Plugin::shared_connector_info`]).
    Connector(Arc<ConnectorInfo>),
    Sender(SenderInfo),
}

impl Description {
    fn plugin(&self) -> &PluginInfo {
        match self {
            Self::Connector(c) => &c.plugin,
            Self::Sender(s) => &s.plugin,
        }
    }
}

/// The import linkers, one per (API version, world): each version's
/// generated import traits are distinct types.
struct Linkers {
    v0_1_connector: Linker<CallState>,
    v0_1_sender: Linker<CallState>,
    v0_2_connector: Linker<CallState>,
    v0_2_sender: Linker<CallState>,
}

impl Linkers {
    fn new(engine: &Engine) -> wasmtime::Result<Self> {
        Ok(Self {
            v0_1_connector: v0_1::connector_linker(engine)?,
            v0_1_sender: v0_1::sender_linker(engine)?,
            v0_2_connector: v0_2::connector_linker(engine)?,
            v0_2_sender: v0_2::sender_linker(engine)?,
        })
    }
}

/// Pre-linked instances of a connector, per supported API.
#[derive(Clone)]
enum ConnectorBinding {
    V0_1(v0_1::ConnectorPre<CallState>),
    V0_2(v0_2::ConnectorPre<CallState>),
}

/// Pre-linked instances of a sender, per supported API.
#[derive(Clone)]
enum SenderBinding {
    V0_1(v0_1::SenderPre<CallState>),
    V0_2(v0_2::SenderPre<CallState>),
}

enum WorldBinding {
    Connector(ConnectorBinding),
    Sender(SenderBinding),
}

/// A plugin file compiled, checked and linked, before its `info` call.
struct Compiled {
    sha256: String,
    contract: Contract,
    source: ArtifactSource,
    binding: WorldBinding,
}

/// A loaded plugin file. Cheap to clone.
#[derive(Clone)]
pub struct Plugin {
    inner: Arc<PluginInner>,
}

struct PluginInner {
    path: PathBuf,
    sha256: String,
    contract: Contract,
    source: ArtifactSource,
    description: Description,
    binding: WorldBinding,
    /// The allowlist last parsed for an instance of this plugin, with the
    /// entries it was parsed from: the next instance with the same entries
    /// (every store of a platform, usually) shares it instead of parsing
    /// its own.
    last_allowlist: Mutex<Option<(Vec<String>, AllowList)>>,
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name())
            .field("version", &self.version())
            .field("kind", &self.kind())
            .field("api_version", &self.api_version())
            .field("path", &self.path())
            .finish_non_exhaustive()
    }
}

impl Plugin {
    /// The plugin's name, from its `info` (e.g. `loja-integrada`).
    pub fn name(&self) -> &str {
        &self.info().name
    }

    /// The plugin's own version.
    pub fn version(&self) -> &str {
        &self.info().version
    }

    /// Connector or sender.
    pub fn kind(&self) -> PluginKind {
        self.inner.contract.kind
    }

    /// What the plugin said about itself when loaded.
    pub fn info(&self) -> &PluginInfo {
        self.inner.description.plugin()
    }

    /// A connector's platform, status catalogue and capabilities.
    pub fn connector_info(&self) -> Option<&ConnectorInfo> {
        match &self.inner.description {
            Description::Connector(c) => Some(c),
            Description::Sender(_) => None,
        }
    }

    /// [`Self::connector_info`], shared: every store of a connector holds
    /// the same catalogue instead of a copy each (several KiB of status
    /// names and setting descriptions per store).
    pub fn shared_connector_info(&self) -> Option<Arc<ConnectorInfo>> {
        match &self.inner.description {
            Description::Connector(c) => Some(Arc::clone(c)),
            Description::Sender(_) => None,
        }
    }

    /// A sender's recipient need, pace and idempotency, as it declared them
    /// (contract 0.2) or as the 0.1 name table filled them in.
    pub fn sender_info(&self) -> Option<&SenderInfo> {
        match &self.inner.description {
            Description::Sender(s) => Some(s),
            Description::Connector(_) => None,
        }
    }

    /// The plugin API version it was built against.
    pub fn api_version(&self) -> ApiVersion {
        self.inner.contract.version
    }

    /// The `.wasm` file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// SHA-256 of the `.wasm` file, hex.
    pub fn sha256(&self) -> &str {
        &self.inner.sha256
    }

    /// Where the machine code came from on this load.
    pub fn artifact_source(&self) -> ArtifactSource {
        self.inner.source
    }

    /// True when this load reused the compiled-artifact cache (no compilation).
    pub fn loaded_from_cache(&self) -> bool {
        self.inner.source == ArtifactSource::Cache
    }

    /// The `plugins inspect` report of this plugin.
    pub fn report(&self) -> InspectReport {
        InspectReport::new(
            self.path(),
            self.sha256(),
            self.api_version(),
            self.info().clone(),
            self.connector_info().cloned(),
            self.sender_info().cloned(),
        )
    }
}

/// What one call handle needs, shared by its clones.
struct InstanceCommon {
    host: PluginHost,
    plugin: Plugin,
    ctx: Arc<InstanceContext>,
}

/// Run one call in the caller's own task, on a wasmtime fiber.
///
/// Why async wasmtime rather than sync wasmtime on `spawn_blocking` (how
/// calls ran until issue 16): each hand-off to the blocking pool and back,
/// and each HTTP request a pool thread waited for with `block_on`, cost two
/// cross-thread wake-ups, about 15–35 µs of CPU each on the 2-core VM of
/// the benchmarks, a large part of a sender call's whole cost. On a fiber the
/// call costs a stack switch, and its HTTP requests are awaited in place.
///
/// The price: guest code now runs on a runtime worker. A plugin that
/// computes for a while, or a hostile one that spins until its deadline,
/// gives the worker back at every epoch tick ([`engine::EPOCH_TICK`], 10 ms)
/// and is interrupted at its deadline as before, so it delays other tasks by
/// at most a tick at a time rather than holding a worker; and at most
/// [`HostConfig::max_concurrent_calls`] run at once. The wall-clock deadline
/// still covers guest code (epoch callback) and host waits (HTTP timeouts)
/// alike, and a caller that stops waiting drops the call, guest included.
async fn call<R: Send + 'static>(
    common: &Arc<InstanceCommon>,
    operation: &'static str,
    body: impl for<'s> FnOnce(&'s mut Store<CallState>) -> CallFuture<'s, R> + Send + 'static,
) -> Result<R, PluginError> {
    let ctx = &common.ctx;
    if current_runtime().is_none() {
        return Err(PluginError::Misconfigured(format!(
            "plugin {} (instance {}) was called outside a tokio runtime",
            ctx.plugin, ctx.instance
        )));
    }
    let Some(slot) = common.host.slot().await else {
        return Err(PluginError::Cancelled {
            plugin: ctx.plugin.clone(),
            instance: ctx.instance.clone(),
        });
    };
    let cancel = CancellationToken::new();
    // If the caller stops waiting, the call's future is dropped with it;
    // the token also ends an HTTP wait at once.
    let _cancel_when_abandoned = cancel.clone().drop_guard();
    let result = sandbox::run(
        &common.host.inner.engine,
        ctx,
        common.plugin.path(),
        cancel,
        operation,
        body,
    )
    .await;
    drop(slot);
    result
}

/// A store's connector. Cheap to clone; calls may run concurrently, each in
/// its own sandbox.
#[derive(Clone)]
pub struct ConnectorInstance {
    common: Arc<InstanceCommon>,
    binding: ConnectorBinding,
}

impl fmt::Debug for ConnectorInstance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectorInstance")
            .field("plugin", &self.common.plugin.name())
            .field("instance", &self.common.ctx.instance)
            .finish_non_exhaustive()
    }
}

impl ConnectorInstance {
    /// The loaded plugin.
    pub fn plugin(&self) -> &Plugin {
        &self.common.plugin
    }

    /// The store id this instance serves.
    pub fn instance(&self) -> &str {
        &self.common.ctx.instance
    }

    /// Ask the plugin for its info, platform, status catalogue and capabilities.
    pub async fn info(&self) -> Result<ConnectorInfo, PluginError> {
        let binding = self.binding.clone();
        call(&self.common, "info", move |store| {
            Box::pin(async move {
                match &binding {
                    ConnectorBinding::V0_1(pre) => v0_1::connector_info(pre, store).await,
                    ConnectorBinding::V0_2(pre) => v0_2::connector_info(pre, store).await,
                }
            })
        })
        .await
    }

    /// Live credential and reachability test.
    pub async fn check(&self) -> Result<(), PluginError> {
        let binding = self.binding.clone();
        call(&self.common, "check", move |store| {
            Box::pin(async move {
                match &binding {
                    ConnectorBinding::V0_1(pre) => v0_1::connector_check(pre, store).await,
                    ConnectorBinding::V0_2(pre) => v0_2::connector_check(pre, store).await,
                }
            })
        })
        .await
    }

    /// Fetch one page of orders.
    pub async fn poll(&self, request: PollRequest) -> Result<PollPage, PluginError> {
        let binding = self.binding.clone();
        call(&self.common, "poll", move |store| {
            Box::pin(async move {
                match &binding {
                    ConnectorBinding::V0_1(pre) => v0_1::connector_poll(pre, store, &request).await,
                    ConnectorBinding::V0_2(pre) => v0_2::connector_poll(pre, store, &request).await,
                }
            })
        })
        .await
    }

    /// Authenticate one pushed delivery and say what to look at. Only for
    /// connectors whose info declares `push.verify`; others answer
    /// [`PluginError::Permanent`] naming the missing support.
    pub async fn verify_push(&self, request: PushRequest) -> Result<PushHint, PluginError> {
        let binding = match &self.binding {
            ConnectorBinding::V0_2(pre) if self.push().verify => pre.clone(),
            _ => return Err(self.no_push_support("verify pushed webhooks")),
        };
        let hint = call(&self.common, "verify-push", move |store| {
            Box::pin(async move { v0_2::connector_verify_push(&binding, store, &request).await })
        })
        .await?;
        // The reason is plugin text that reaches the log, like an error's:
        // it goes through the same redactor and cap.
        Ok(match hint {
            PushHint::Ignore(why) => PushHint::Ignore(super::limits::scrub_and_truncate(
                &why,
                super::limits::MAX_ERROR_MESSAGE_BYTES,
                &self.common.ctx.redactor,
            )),
            look_at => look_at,
        })
    }

    /// Subscribe the platform to push this store's changes to `notify_url`.
    /// Only for connectors whose info declares `push.register`.
    pub async fn register_push(&self, notify_url: &str) -> Result<(), PluginError> {
        let binding = match &self.binding {
            ConnectorBinding::V0_2(pre) if self.push().register => pre.clone(),
            _ => return Err(self.no_push_support("register pushed webhooks")),
        };
        let notify_url = notify_url.to_owned();
        call(&self.common, "register-push", move |store| {
            Box::pin(
                async move { v0_2::connector_register_push(&binding, store, &notify_url).await },
            )
        })
        .await
    }

    /// Undo [`Self::register_push`].
    pub async fn unregister_push(&self, notify_url: &str) -> Result<(), PluginError> {
        let binding = match &self.binding {
            ConnectorBinding::V0_2(pre) if self.push().register => pre.clone(),
            _ => return Err(self.no_push_support("unregister pushed webhooks")),
        };
        let notify_url = notify_url.to_owned();
        call(&self.common, "unregister-push", move |store| {
            Box::pin(
                async move { v0_2::connector_unregister_push(&binding, store, &notify_url).await },
            )
        })
        .await
    }

    /// The push support the connector declared when loaded (none for 0.1).
    fn push(&self) -> crate::model::PushSupport {
        self.common
            .plugin
            .connector_info()
            .map(|info| info.push)
            .unwrap_or_default()
    }

    fn no_push_support(&self, what: &str) -> PluginError {
        PluginError::Permanent(format!(
            "plugin {} (store {}) cannot {what}: it does not declare push support",
            self.common.plugin.name(),
            self.common.ctx.instance
        ))
    }
}

/// A channel's sender. Cheap to clone; calls may run concurrently, each in
/// its own sandbox.
#[derive(Clone)]
pub struct SenderInstance {
    common: Arc<InstanceCommon>,
    binding: SenderBinding,
}

impl fmt::Debug for SenderInstance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SenderInstance")
            .field("plugin", &self.common.plugin.name())
            .field("instance", &self.common.ctx.instance)
            .finish_non_exhaustive()
    }
}

impl SenderInstance {
    /// The loaded plugin.
    pub fn plugin(&self) -> &Plugin {
        &self.common.plugin
    }

    /// The channel id this instance serves.
    pub fn instance(&self) -> &str {
        &self.common.ctx.instance
    }

    /// Ask the plugin for its info (for a 0.1 sender, with the name table's
    /// declarations filled in).
    pub async fn info(&self) -> Result<SenderInfo, PluginError> {
        let binding = self.binding.clone();
        // The same declarations as at load: the file name counts too.
        let file_name = self
            .common
            .plugin
            .path()
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        call(&self.common, "info", move |store| {
            Box::pin(async move {
                match &binding {
                    SenderBinding::V0_1(pre) => v0_1::sender_info(pre, store)
                        .await
                        .map(|info| fallback::sender_info(info, &file_name)),
                    SenderBinding::V0_2(pre) => v0_2::sender_info(pre, store).await,
                }
            })
        })
        .await
    }

    /// Live credential test.
    pub async fn check(&self) -> Result<(), PluginError> {
        let binding = self.binding.clone();
        call(&self.common, "check", move |store| {
            Box::pin(async move {
                match &binding {
                    SenderBinding::V0_1(pre) => v0_1::sender_check(pre, store).await,
                    SenderBinding::V0_2(pre) => v0_2::sender_check(pre, store).await,
                }
            })
        })
        .await
    }

    /// Deliver one message.
    pub async fn send(&self, message: OutgoingMessage) -> Result<SendReceipt, PluginError> {
        let binding = self.binding.clone();
        call(&self.common, "send", move |store| {
            Box::pin(async move {
                match &binding {
                    SenderBinding::V0_1(pre) => v0_1::sender_send(pre, store, &message).await,
                    SenderBinding::V0_2(pre) => v0_2::sender_send(pre, store, &message).await,
                }
            })
        })
        .await
    }
}

#[cfg(test)]
mod declared_key_tests {
    use super::{ConfigKey, declared_key};

    fn key(name: &str, secret: bool) -> ConfigKey {
        ConfigKey {
            name: name.to_owned(),
            description: String::new(),
            required: false,
            secret,
            default_value: None,
        }
    }

    #[test]
    fn a_family_declared_with_a_trailing_dot_star_covers_its_members_only() {
        let declared = [
            key("headers", true),
            key("header.*", true),
            key("url", false),
        ];
        assert_eq!(
            declared_key(&declared, "header.X-Arauto-Node").map(|k| k.name.as_str()),
            Some("header.*")
        );
        assert_eq!(
            declared_key(&declared, "url").map(|k| k.name.as_str()),
            Some("url")
        );
        // The bare prefix, a near miss and an undeclared key are no members.
        assert!(declared_key(&declared, "header.").is_none());
        assert!(declared_key(&declared, "headerX").is_none());
        assert!(declared_key(&declared, "urls").is_none());
    }
}
