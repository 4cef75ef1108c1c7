//! [`build`]: turning a validated [`Config`] into running parts — plugins
//! loaded and instantiated, recognition tables, timing policies, compiled
//! templates. It is the startup path shared by `arauto run`, reload and
//! `arauto validate`. Every problem is collected (not just the first), named
//! by its config key path, so one `arauto validate` shows them all.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::Timestamp;

use crate::config::{
    ChannelConfig, Config, QuietHoursPolicy, Recognition as RecognitionConfig, SandboxConfig,
    Settings, StoreConfig,
};
use crate::decide::{
    ChannelTarget, KindTiming, QuietHours, QuietHoursMode, Recognition, StorePolicy, TimingPolicy,
};
use crate::model::{NotificationKind, PluginKind, RecipientNeed, SenderInfo};
use crate::plugin::{InstanceConfig, Plugin, PluginError, PluginHost};
use crate::template::{ProviderTemplateSpec, TemplateConfig, TemplateSource, Templates};

use super::channel::ChannelRuntime;
use super::problem::{BuildError, BuildProblem};
use super::snapshot::State;
use super::store::DEFAULT_MAX_ATTEMPTS;
use super::store::StoreRuntime;

/// How to build: what holds for the daemon's whole life, not for one
/// configuration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BuildOptions {
    /// Leave out a store or channel whose plugin file does not load (corrupt,
    /// built for another plugin API, an `info()` that never returns) and list
    /// it in [`State::skipped`], so one bad file does not keep every other
    /// store and channel from running; `check` shows it red. Every other
    /// problem still fails the build. Set at the daemon's start only:
    /// `validate` and reload stay strict (a failed reload keeps the running
    /// configuration, whose instances still work).
    pub skip_unloadable_plugins: bool,
    /// `--dry-run`: the send stage logs what it would send instead of sending.
    pub dry_run: bool,
}

/// Turn a loaded configuration into a [`State`], checking everything that can
/// be checked without opening the database — plugins load and accept their
/// settings, recognition overrides and quiet hours make sense, enabled
/// notifications are ones the platforms can produce, templates compile and
/// render against sample orders. Every problem is reported, not just the first.
pub async fn build(
    config: Config,
    options: &BuildOptions,
    host: &PluginHost,
) -> Result<State, BuildError> {
    let assembled = assemble(&config, host, options.skip_unloadable_plugins)
        .await
        .map_err(|problems| BuildError {
            problems: problems.into_iter().map(|p| located(&config, p)).collect(),
        })?;
    // Checked: nothing asks where a key was written any more.
    let mut config = config;
    config.forget_locations();
    release_freed_memory();
    Ok(State {
        config: Arc::new(config),
        dry_run: options.dry_run,
        built_at: Timestamp::now(),
        host: host.clone(),
        stores: assembled.stores,
        channels: assembled.channels,
        templates: assembled.templates,
        skipped: assembled.skipped,
    })
}

/// Give the memory freed while loading back to the system. Loading a large
/// configuration (a 10,000-store file is 3.4 MB, read into several trees of
/// small allocations that are all freed again) leaves glibc's heap full of
/// free chunks it keeps for later; without this, a daemon at READY holds
/// tens of MiB it no longer uses. `malloc_trim` returns the free pages
/// (also those between live allocations), which takes a few milliseconds.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only walks glibc's own free lists; it has no
    // arguments that point anywhere and may be called at any time.
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
}

/// `problem` with the file and line (or variable) of its key after the
/// message (after, so `component: message` reads as it always did).
fn located(config: &Config, mut problem: BuildProblem) -> BuildProblem {
    let origin = config.origin_of(&problem.component);
    problem.message = format!("{} (in {origin})", problem.message);
    problem
}

/// The parts built from one configuration.
struct Assembled {
    pub stores: BTreeMap<String, Arc<StoreRuntime>>,
    pub channels: BTreeMap<String, Arc<ChannelRuntime>>,
    pub templates: Arc<Templates>,
    /// Left out because their plugin file does not load (`skip_unloadable`).
    pub skipped: Vec<BuildProblem>,
}

/// Build every store and channel of `config` with `host`.
///
/// With `skip_unloadable` (the daemon's start), a store or channel whose
/// plugin file does not load is left out and returned in
/// [`Assembled::skipped`] instead of failing the build; anything else wrong
/// (settings, recognition, templates…) still fails it.
async fn assemble(
    config: &Config,
    host: &PluginHost,
    skip_unloadable: bool,
) -> Result<Assembled, Vec<BuildProblem>> {
    let mut problems = Vec::new();
    let mut skipped = Vec::new();
    let mut plugins = PluginCache::default();

    let mut channels = BTreeMap::new();
    for channel in config.channels.values() {
        match build_channel(config, channel, host, &mut plugins).await {
            Ok(runtime) => {
                channels.insert(channel.id.clone(), Arc::new(runtime));
            }
            Err(mut found) if skip_unloadable && plugins.failed(&channel.plugin_path) => {
                skipped.append(&mut found);
            }
            Err(mut found) => problems.append(&mut found),
        }
    }

    let per_kind = Arc::new(kind_timings(config));
    let mut stores = BTreeMap::new();
    for store in config.stores.values() {
        match build_store(config, store, host, &mut plugins, &per_kind).await {
            Ok(runtime) => {
                stores.insert(store.id.clone(), Arc::new(runtime));
            }
            Err(mut found) if skip_unloadable && plugins.failed(&store.plugin_path) => {
                skipped.append(&mut found);
            }
            Err(mut found) => problems.append(&mut found),
        }
    }
    problems.extend(unsupported_notifications(config, &stores));

    let templates = match Templates::compile(&template_config(config)) {
        Ok(templates) => Some(Arc::new(templates)),
        Err(errors) => {
            problems.extend(errors.0.into_iter().map(|e| BuildProblem {
                component: e.config_key().unwrap_or("templates").to_owned(),
                message: e.to_string(),
            }));
            None
        }
    };

    match templates {
        Some(templates) if problems.is_empty() => Ok(Assembled {
            stores,
            channels,
            templates,
            skipped,
        }),
        _ => Err(problems),
    }
}

/// Plugins loaded in this build, by path: stores sharing a connector load it
/// once, and a file that failed is not tried again (an `info()` that never
/// returns costs its whole load budget each time).
#[derive(Default)]
struct PluginCache {
    loaded: BTreeMap<PathBuf, Plugin>,
    /// Files that did not load, with the reason.
    failed: BTreeMap<PathBuf, String>,
    /// The recognition table of a connector's stores without overrides, by
    /// plugin path: built once and shared, not once per store.
    default_recognition: BTreeMap<PathBuf, Recognition>,
}

impl PluginCache {
    /// The declarations of the sender loaded from `path`, if it loaded.
    fn sender_info(&self, path: &Path) -> Option<&SenderInfo> {
        self.loaded.get(path).and_then(Plugin::sender_info)
    }

    /// True when the file at `path` was tried and did not load.
    fn failed(&self, path: &Path) -> bool {
        self.failed.contains_key(path)
    }

    async fn load(
        &mut self,
        host: &PluginHost,
        path: &Path,
        component: &str,
        expected: PluginKind,
    ) -> Result<Plugin, BuildProblem> {
        if let Some(reason) = self.failed.get(path) {
            return Err(BuildProblem {
                component: component.to_owned(),
                message: reason.clone(),
            });
        }
        let plugin = match self.loaded.get(path) {
            Some(plugin) => plugin.clone(),
            None => match host.load(path).await {
                Ok(plugin) => {
                    self.loaded.insert(path.to_owned(), plugin.clone());
                    plugin
                }
                Err(e) => {
                    let message = format!("plugin {}: {e}", path.display());
                    self.failed.insert(path.to_owned(), message.clone());
                    return Err(BuildProblem {
                        component: component.to_owned(),
                        message,
                    });
                }
            },
        };
        if plugin.kind() != expected {
            let (want, got) = match expected {
                PluginKind::Connector => ("a connector", "a sender"),
                PluginKind::Sender => ("a sender", "a connector"),
            };
            return Err(BuildProblem {
                component: component.to_owned(),
                message: format!(
                    "plugin {} ({}) is {got}, but {component} needs {want}",
                    path.display(),
                    plugin.name()
                ),
            });
        }
        Ok(plugin)
    }
}

fn instance_config(
    id: &str,
    settings: &Settings,
    sandbox: &SandboxConfig,
    default_rpm: Option<u32>,
) -> InstanceConfig {
    let mut instance = InstanceConfig::new(id);
    let mut secret_keys = BTreeSet::new();
    for (key, value) in settings.iter() {
        if value.is_secret() {
            secret_keys.insert(key.to_owned());
        }
        instance
            .settings
            .push((key.to_owned(), value.expose().to_owned()));
    }
    instance.secret_keys = secret_keys;
    instance.allowed_hosts = sandbox.allowed_hosts.clone();
    instance.allow_private_addresses = sandbox.allow_private_addresses;
    instance.requests_per_minute = sandbox.requests_per_minute.map(|n| n.get()).or(default_rpm);
    instance.call_timeout = sandbox.call_timeout;
    instance.memory_limit = sandbox.memory_limit.bytes();
    instance.max_response_bytes = sandbox.max_response_bytes.bytes();
    instance
}

/// Configuration problems only visible against the plugin's `info()`.
fn config_problems(errors: Vec<crate::config::ConfigError>) -> Vec<BuildProblem> {
    errors
        .into_iter()
        .map(|e| BuildProblem {
            message: match &e.value {
                Some(value) => format!("{value}: {}", e.message),
                None => e.message,
            },
            component: e.key,
        })
        .collect()
}

async fn build_channel(
    config: &Config,
    channel: &ChannelConfig,
    host: &PluginHost,
    plugins: &mut PluginCache,
) -> Result<ChannelRuntime, Vec<BuildProblem>> {
    let component = format!("channels.{}", channel.id);
    let plugin = plugins
        .load(host, &channel.plugin_path, &component, PluginKind::Sender)
        .await
        .map_err(|p| vec![p])?;
    let problems = config_problems(crate::config::check_channel(
        config,
        &channel.id,
        plugin.info(),
    ));
    let instance = instance_config(&channel.id, &channel.settings, &channel.sandbox, None);
    let sender = instance_or_problems(host.sender(&plugin, instance), problems, &component)?;
    Ok(ChannelRuntime {
        config: channel.clone(),
        plugin,
        sender,
    })
}

/// The plugin instance, unless the configuration checks found problems or
/// the host refused the instance's settings: then every problem at once.
fn instance_or_problems<T>(
    instance: Result<T, PluginError>,
    mut problems: Vec<BuildProblem>,
    component: &str,
) -> Result<T, Vec<BuildProblem>> {
    match instance {
        Ok(instance) if problems.is_empty() => Ok(instance),
        Ok(_) => Err(problems),
        Err(e) => {
            problems.push(BuildProblem {
                component: format!("{component}.settings"),
                message: e.to_string(),
            });
            Err(problems)
        }
    }
}

/// The `[notifications]` timing of every kind whose timing differs from the
/// built-in one: a kind not listed gets `KindTiming::default_for` (see
/// `TimingPolicy::for_kind`). The same for every store, so built once and
/// shared.
fn kind_timings(config: &Config) -> BTreeMap<NotificationKind, KindTiming> {
    NotificationKind::ALL
        .into_iter()
        .map(|kind| {
            let n = config.notification(kind);
            let timing = KindTiming {
                delay: n.delay,
                expiry: n.expiry,
                quiet_hours: match n.quiet_hours {
                    QuietHoursPolicy::Defer => QuietHoursMode::Defer,
                    QuietHoursPolicy::Ignore => QuietHoursMode::Ignore,
                },
            };
            (kind, timing)
        })
        .filter(|(kind, timing)| *timing != KindTiming::default_for(*kind))
        .collect()
}

async fn build_store(
    config: &Config,
    store: &Arc<StoreConfig>,
    host: &PluginHost,
    plugins: &mut PluginCache,
    per_kind: &Arc<BTreeMap<NotificationKind, KindTiming>>,
) -> Result<StoreRuntime, Vec<BuildProblem>> {
    let component = format!("stores.{}", store.id);
    let plugin = plugins
        .load(host, &store.plugin_path, &component, PluginKind::Connector)
        .await
        .map_err(|p| vec![p])?;
    let Some(info) = plugin.shared_connector_info() else {
        return Err(vec![BuildProblem {
            component,
            message: format!("plugin {} reported no connector info", plugin.name()),
        }]);
    };
    // The connector's declared budget (a 0.1 connector's comes from the
    // name table); the store's `requests_per_minute` overrides it.
    let default_rpm = info.requests_per_minute;
    let problems = config_problems(crate::config::check_store(config, &store.id, &info));
    let instance = instance_config(&store.id, &store.settings, &store.sandbox, default_rpm);
    let connector = instance_or_problems(host.connector(&plugin, instance), problems, &component)?;

    let overrides: BTreeMap<String, Option<NotificationKind>> = store
        .recognition
        .iter()
        .map(|(code, rule)| {
            let kind = match rule {
                RecognitionConfig::Notify(kind) => Some(*kind),
                RecognitionConfig::Off => None,
            };
            (code.clone(), kind)
        })
        .collect();
    let shared = overrides.is_empty().then_some(&store.plugin_path);
    let recognition = match shared.and_then(|path| plugins.default_recognition.get(path)) {
        Some(recognition) => recognition.clone(),
        None => {
            let recognition = Recognition::new(
                &store.id,
                &info.platform,
                &info.statuses,
                &info.capabilities,
                &overrides,
            )
            .map_err(|errors| {
                errors
                    .into_iter()
                    .map(|e| BuildProblem {
                        component: format!("{component}.recognition"),
                        message: e.to_string(),
                    })
                    .collect::<Vec<_>>()
            })?;
            if let Some(path) = shared {
                plugins
                    .default_recognition
                    .insert(path.clone(), recognition.clone());
            }
            recognition
        }
    };

    let quiet_hours = match store.quiet_hours {
        Some(q) => Some(
            QuietHours::new(q.start, q.end, store.timezone.clone()).map_err(|e| {
                vec![BuildProblem {
                    component: format!("{component}.quiet_hours"),
                    message: e.to_string(),
                }]
            })?,
        ),
        None => None,
    };
    let enabled = NotificationKind::ALL
        .into_iter()
        .filter(|kind| config.notification(*kind).enabled)
        .collect();
    let channels = store
        .channels
        .iter()
        .filter_map(|id| config.channels.get(id))
        .map(|channel| ChannelTarget {
            name: channel.id.clone(),
            // A channel whose plugin did not load has no declaration yet:
            // plan its jobs without judging the recipient (they wait in the
            // queue), and let the dispatcher check the declared need once the
            // plugin loads. Judging now would drop, for good, every order
            // without the contact a guessed need asks for.
            recipient: plugins
                .sender_info(&channel.plugin_path)
                .map_or(RecipientNeed::Nothing, |info| info.recipient),
        })
        .collect();
    let policy = StorePolicy {
        store_id: store.id.clone(),
        platform_identity: crate::decide::store_identity(
            &store.id,
            &info.platform,
            &info.plugin.config_keys,
            info.account_keys.as_deref(),
            &store.settings,
        ),
        recognition,
        enabled,
        channels,
        seed_cutoff: store.first_sync_cutoff,
        timing: TimingPolicy {
            quiet_hours,
            per_kind: Arc::clone(per_kind),
        },
        tracking_implies_shipped: true,
    };
    // Only channels whose `max_attempts` is not the default one
    // `StoreRuntime::max_attempts` falls back to: no table per store otherwise.
    let channel_attempts = store
        .channels
        .iter()
        .filter_map(|id| config.channels.get(id))
        .filter(|channel| channel.max_attempts != DEFAULT_MAX_ATTEMPTS)
        .map(|channel| (channel.id.clone(), channel.max_attempts))
        .collect();
    let kind_attempts = NotificationKind::ALL
        .into_iter()
        .filter_map(|kind| config.notification(kind).max_attempts.map(|n| (kind, n)))
        .collect();
    Ok(StoreRuntime {
        config: Arc::clone(store),
        plugin,
        connector,
        info,
        policy,
        channel_attempts,
        kind_attempts,
    })
}

/// Enabled notifications a store's connector cannot produce (a boleto reminder
/// on Loja Integrada): a validation error that says why.
fn unsupported_notifications(
    config: &Config,
    stores: &BTreeMap<String, Arc<StoreRuntime>>,
) -> Vec<BuildProblem> {
    let mut problems = Vec::new();
    for kind in NotificationKind::ALL {
        if !kind.is_reserved() || !config.notification(kind).enabled {
            continue;
        }
        for store in stores.values() {
            if let Some(capability) = store.info.capabilities.for_kind(kind)
                && !capability.supported
            {
                problems.push(BuildProblem {
                    component: format!("notifications.{kind}"),
                    message: format!(
                        "enabled, but store `{}` ({}) cannot produce it: {}",
                        store.config.id, store.info.platform, capability.reason
                    ),
                });
            }
        }
    }
    problems
}

fn template_source(text: &crate::config::TemplateText, config_key: String) -> TemplateSource {
    match &text.file {
        Some(path) => TemplateSource::File { path: path.clone() },
        None => TemplateSource::Inline {
            text: text.text.clone(),
            config_key,
        },
    }
}

/// The template settings of `config`: texts per kind and per channel, and
/// provider template mappings.
fn template_config(config: &Config) -> TemplateConfig {
    let mut out = TemplateConfig::default();
    for (kind, notification) in &config.notifications {
        if let Some(text) = &notification.template {
            out.by_kind.insert(
                *kind,
                template_source(text, format!("notifications.{kind}.template")),
            );
        }
        for (channel, per_channel) in &notification.channels {
            if let Some(text) = &per_channel.template {
                out.by_channel.insert(
                    (channel.clone(), *kind),
                    template_source(
                        text,
                        format!("notifications.{kind}.channels.{channel}.template"),
                    ),
                );
            }
        }
    }
    for channel in config.channels.values() {
        for (kind, mapping) in &channel.templates {
            out.provider.insert(
                (channel.id.clone(), *kind),
                ProviderTemplateSpec {
                    name: mapping.name.clone(),
                    language: mapping.language.clone(),
                    positional: mapping.parameters.clone(),
                    named: mapping
                        .named
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    config_key: format!("channels.{}.templates.{kind}", channel.id),
                },
            );
        }
    }
    out
}
