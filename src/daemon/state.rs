//! The daemon's state: everything built from one configuration, swapped as a
//! whole on reload.

use std::sync::Arc;

use arc_swap::ArcSwap;
use jiff::Timestamp;
use tokio::sync::watch;

use std::collections::BTreeMap;

use super::assemble::assemble;
use crate::config::Config;
use crate::plugin::PluginHost;
use crate::poll::StoreRuntime;
use crate::send::channel::ChannelRuntime;
use crate::template::Templates;

/// Why a state is being built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// `arauto validate`: check everything, open nothing (no database, no sockets,
    /// no writes to the cache directory).
    Validate,
    /// `arauto run` at startup. A store or channel whose plugin file does not
    /// load (corrupt, built for another plugin API, an `info()` that never
    /// returns) is left out and listed in [`State::skipped`], so one bad file
    /// does not keep every other store and channel from running; `check`
    /// shows it red. Every other problem still stops the start.
    Run,
    /// `arauto run` on SIGHUP: as strict as [`Purpose::Validate`]. A failed
    /// reload keeps the running configuration, whose instances still work,
    /// which is better than dropping one of them.
    Reload,
}

/// Options that hold for the daemon's whole life, not for one configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuildOptions {
    /// Validate or run.
    pub purpose: Purpose,
    /// `--dry-run`: the send stage logs what it would send instead of sending.
    pub dry_run: bool,
}

/// Everything built from one configuration: the validated config, every
/// store's connector instance and notification policy, every channel's sender
/// instance and pacing/retry policies, the compiled templates.
pub struct State {
    /// The configuration this state was built from.
    pub config: Arc<Config>,
    /// `--dry-run` (kept across reloads).
    pub dry_run: bool,
    /// When this state was built.
    pub built_at: Timestamp,
    /// The plugin host the instances below run in (one per daemon run).
    pub host: PluginHost,
    /// Stores by id (disabled ones too: they are validated, not polled).
    pub stores: BTreeMap<String, Arc<StoreRuntime>>,
    /// Channels by id.
    pub channels: BTreeMap<String, Arc<ChannelRuntime>>,
    /// Notification texts and provider template parameters.
    pub templates: Arc<Templates>,
    /// Stores and channels left out at startup because their plugin file
    /// does not load ([`Purpose::Run`] only; empty otherwise). Each names
    /// the component (`stores.<id>`, `channels.<id>`) and the plugin file.
    pub skipped: Vec<BuildProblem>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("config", &self.config)
            .field("dry_run", &self.dry_run)
            .field("built_at", &self.built_at)
            .field("stores", &self.stores)
            .field("channels", &self.channels)
            .field("skipped", &self.skipped)
            .finish_non_exhaustive()
    }
}

/// Something `build` found wrong beyond the configuration's syntax (a plugin
/// that does not load, a template that does not compile…).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildProblem {
    /// The part at fault, as a config key path: `stores.loja1`, `channels.whatsapp`.
    pub component: String,
    /// What is wrong.
    pub message: String,
}

/// Every problem `build` found, reported together.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", render_problems(.problems))]
pub struct BuildError {
    /// Never empty.
    pub problems: Vec<BuildProblem>,
}

fn render_problems(problems: &[BuildProblem]) -> String {
    let mut out = format!("cannot start: {} problem(s):", problems.len());
    for p in problems {
        out.push_str(&format!("\n  {}: {}", p.component, p.message));
    }
    out
}

/// The startup path shared by `arauto run`, reload and `arauto validate`: turn
/// a loaded configuration into a [`State`], checking everything that can be
/// checked without opening the database — plugins load and accept their
/// settings, recognition overrides and quiet hours make sense, enabled
/// notifications are ones the platforms can produce, templates compile and
/// render against sample orders. Every problem is reported, not just the first.
pub async fn build(
    config: Config,
    options: &BuildOptions,
    host: &PluginHost,
) -> Result<State, BuildError> {
    let assembled = assemble(&config, host, options.purpose == Purpose::Run)
        .await
        .map_err(|problems| BuildError {
            problems: problems.into_iter().map(|p| located(&config, p)).collect(),
        })?;
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

/// `problem` with the file and line (or variable) of its key after the
/// message (after, so `component: message` reads as it always did).
fn located(config: &Config, mut problem: BuildProblem) -> BuildProblem {
    let origin = config.origin_of(&problem.component);
    problem.message = format!("{} (in {origin})", problem.message);
    problem
}

/// The current [`State`], shared by every service; replaced atomically on reload.
#[derive(Clone)]
pub struct StateHandle {
    current: Arc<ArcSwap<State>>,
    generation: Arc<watch::Sender<u64>>,
}

impl StateHandle {
    /// A handle holding `state` as generation 0.
    pub fn new(state: Arc<State>) -> Self {
        let (generation, _) = watch::channel(0);
        Self {
            current: Arc::new(ArcSwap::new(state)),
            generation: Arc::new(generation),
        }
    }

    /// The current state. Hold the returned `Arc` for one unit of work (a poll,
    /// a send) and load again for the next, so reloads take effect promptly.
    pub fn load(&self) -> Arc<State> {
        self.current.load_full()
    }

    /// A receiver that sees a new generation number after every swap.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// How many times the state has been replaced.
    pub fn generation(&self) -> u64 {
        *self.generation.borrow()
    }

    pub(crate) fn replace(&self, state: Arc<State>) {
        self.current.store(state);
        self.generation.send_modify(|g| *g += 1);
    }
}
