//! One plugin call in its sandbox: a fresh `Store` with a memory cap, a
//! wall-clock deadline checked on every epoch tick, the per-call state the
//! host imports work on, and the translation of whatever went wrong into a
//! typed [`PluginError`].
//!
//! A call runs on wasmtime's async support: the guest executes on a fiber
//! inside the caller's own tokio task, gives its worker back at every epoch
//! tick, and its HTTP import is awaited in place. No thread hand-off per
//! call or per request (see `host.rs`, `call`, for why and what it costs).

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::field::display;
use wasmtime::{
    Engine, ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder, Trap, UpdateDeadline,
};

use super::error::PluginError;
use super::http::HttpContext;
use super::limits::{
    MAX_ERROR_MESSAGE_BYTES, MAX_LOG_FIELD_BYTES, MAX_LOG_FIELDS, scrub_and_truncate,
};
use super::redact::Redactor;
use super::types::{ConnectorNotice, MAX_NOTICES_PER_CALL};

/// The SDK's panic hook logs `plugin panicked: <panic info>` at error level
/// just before the guest aborts (`plugins/sdk/src/world_support.rs`).
const PANIC_PREFIX: &str = "plugin panicked: ";
/// A plugin may log this many lines per call; the rest are dropped (with one
/// warning) so a chatty or hostile plugin cannot flood journald.
const MAX_LOG_LINES_PER_CALL: u32 = 200;
/// Longer log messages are cut to this many bytes (fields: see
/// [`MAX_LOG_FIELDS`] and [`MAX_LOG_FIELD_BYTES`]).
const MAX_LOG_TEXT: usize = 4096;
/// Table growth cap; plugins never need anything near this.
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// Everything fixed for one plugin instance (a store's connector, a
/// channel's sender), shared by all of its calls.
pub(crate) struct InstanceContext {
    /// Plugin name (from its `info`), or the file name while loading.
    pub(crate) plugin: String,
    /// Store or channel id.
    pub(crate) instance: String,
    /// Effective settings: the instance's values, then the plugin's defaults
    /// for keys the instance leaves unset.
    pub(crate) settings: Vec<(String, String)>,
    pub(crate) redactor: Redactor,
    pub(crate) http: HttpContext,
    pub(crate) call_timeout: Duration,
    pub(crate) memory_limit: usize,
}

/// Why the host stopped a call (as opposed to the guest trapping by itself).
#[derive(Clone, Debug)]
pub(crate) enum Fault {
    /// The deadline passed while the host was doing work for the guest.
    HostWait { during: String },
    /// The deadline passed while guest code was running.
    Deadline,
    /// The caller stopped waiting for the call.
    Cancelled,
}

/// The store's data: what one call's host imports can see and record.
pub(crate) struct CallState {
    pub(crate) ctx: Arc<InstanceContext>,
    limits: CallLimits,
    pub(crate) deadline: Instant,
    pub(crate) cancel: CancellationToken,
    pub(crate) fault: Option<Fault>,
    panic_message: Option<String>,
    log_lines: u32,
    notices: Notices,
}

/// The connector notices of one call (see [`ConnectorNotice`]), at most
/// [`MAX_NOTICES_PER_CALL`]; the rest are counted and dropped.
#[derive(Debug, Default)]
pub(crate) struct Notices {
    kept: Vec<ConnectorNotice>,
    dropped: usize,
}

impl Notices {
    fn push(&mut self, notice: ConnectorNotice) {
        if self.kept.len() < MAX_NOTICES_PER_CALL {
            self.kept.push(notice);
        } else {
            self.dropped += 1;
        }
    }
}

/// `StoreLimits` (with `trap_on_grow_failure`) that also remembers the size
/// a refused growth asked for, to tell a memory-limit hit from other traps.
struct CallLimits {
    inner: StoreLimits,
    memory_limit: usize,
    refused_memory: Option<usize>,
}

impl ResourceLimiter for CallLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let verdict = self.inner.memory_growing(current, desired, maximum);
        if desired > self.memory_limit && !matches!(verdict, Ok(true)) {
            self.refused_memory = Some(desired);
        }
        verdict
    }
    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.memory_grow_failed(error)
    }
    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }
    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.table_grow_failed(error)
    }
    fn instances(&self) -> usize {
        self.inner.instances()
    }
    fn tables(&self) -> usize {
        self.inner.tables()
    }
    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// How a call body failed.
pub(crate) enum CallFailure {
    /// Creating the instance failed.
    Instantiate(wasmtime::Error),
    /// The guest trapped or a host import aborted the call.
    Wasm(wasmtime::Error),
    /// The plugin returned an error value (already converted).
    Plugin(PluginError),
    /// The plugin returned data that breaks the contract.
    InvalidOutput(String),
}

/// Severity of a guest log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GuestLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl CallState {
    /// The value of one setting for this instance.
    pub(crate) fn setting(&self, key: &str) -> Option<String> {
        self.ctx
            .settings
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    /// Every setting of this instance.
    pub(crate) fn all_settings(&self) -> Vec<(String, String)> {
        self.ctx.settings.clone()
    }

    /// Wall-clock milliseconds since the Unix epoch.
    pub(crate) fn now_unix_ms(&self) -> u64 {
        u64::try_from(jiff::Timestamp::now().as_millisecond()).unwrap_or(0)
    }

    /// A log line from the plugin: secrets scrubbed, size-capped, tagged with
    /// plugin and instance, at the plugin's level under the
    /// `arauto::plugin::guest` target (filterable with `RUST_LOG`).
    pub(crate) fn guest_log(
        &mut self,
        level: GuestLevel,
        message: &str,
        fields: &[(String, String)],
    ) {
        let message = scrub_and_truncate(message, MAX_LOG_TEXT, &self.ctx.redactor);
        if let Some(panic) = message.strip_prefix(PANIC_PREFIX) {
            self.panic_message = Some(panic.replace('\n', " "));
        }
        // Before the line cap: a notice is state, not chatter.
        self.collect_notice(&message, fields);
        self.log_lines += 1;
        let (plugin, instance) = (
            display(self.ctx.plugin.as_str()),
            display(self.ctx.instance.as_str()),
        );
        if self.log_lines > MAX_LOG_LINES_PER_CALL {
            if self.log_lines == MAX_LOG_LINES_PER_CALL + 1 {
                tracing::warn!(
                    target: "arauto::plugin::guest",
                    plugin, instance,
                    "plugin logged more than {MAX_LOG_LINES_PER_CALL} lines in one call; dropping the rest of this call's lines"
                );
            }
            return;
        }
        let fields: Option<String> = (!fields.is_empty()).then(|| {
            let scrub =
                |text: &str| scrub_and_truncate(text, MAX_LOG_FIELD_BYTES, &self.ctx.redactor);
            let mut shown: Vec<String> = fields
                .iter()
                .take(MAX_LOG_FIELDS)
                .map(|(k, v)| format!("{}={}", scrub(k), scrub(v)))
                .collect();
            if fields.len() > MAX_LOG_FIELDS {
                shown.push(format!("dropped_fields={}", fields.len() - MAX_LOG_FIELDS));
            }
            shown.join(" ")
        });
        let fields = fields.as_deref().map(display);
        match level {
            GuestLevel::Trace => {
                tracing::trace!(target: "arauto::plugin::guest", plugin, instance, fields, "{message}")
            }
            GuestLevel::Debug => {
                tracing::debug!(target: "arauto::plugin::guest", plugin, instance, fields, "{message}")
            }
            GuestLevel::Info => {
                tracing::info!(target: "arauto::plugin::guest", plugin, instance, fields, "{message}")
            }
            GuestLevel::Warn => {
                tracing::warn!(target: "arauto::plugin::guest", plugin, instance, fields, "{message}")
            }
            GuestLevel::Error => {
                tracing::error!(target: "arauto::plugin::guest", plugin, instance, fields, "{message}")
            }
        }
    }

    /// Keep the notice a log record carries, if any (redacted like the line
    /// itself). A malformed one is logged, so a connector bug shows.
    fn collect_notice(&mut self, message: &str, fields: &[(String, String)]) {
        if !fields.iter().any(|(k, _)| k == "notice") {
            return;
        }
        let fields: Vec<(String, String)> = fields
            .iter()
            .take(MAX_LOG_FIELDS)
            .map(|(k, v)| {
                (
                    k.clone(),
                    scrub_and_truncate(v, MAX_LOG_FIELD_BYTES, &self.ctx.redactor),
                )
            })
            .collect();
        match ConnectorNotice::from_log(message, &fields) {
            Some(Ok(notice)) => self.notices.push(notice),
            Some(Err(problem)) => tracing::warn!(
                target: "arauto::plugin::guest",
                plugin = display(self.ctx.plugin.as_str()),
                instance = display(self.ctx.instance.as_str()),
                "plugin sent a notice the host cannot read: {problem}"
            ),
            None => {}
        }
    }

    /// The notices collected so far, and how many were dropped over the cap;
    /// the call's record starts empty again.
    pub(crate) fn take_notices(&mut self) -> (Vec<ConnectorNotice>, usize) {
        let notices = std::mem::take(&mut self.notices);
        (notices.kept, notices.dropped)
    }

    /// Time left before the call's deadline.
    pub(crate) fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// What a call body returns: the instantiation and export call, borrowing
/// the call's store.
pub(crate) type CallFuture<'s, R> =
    Pin<Box<dyn Future<Output = Result<R, CallFailure>> + Send + 's>>;

/// Run one call: fresh store, limits, deadline; `body` instantiates the
/// plugin and calls the export (asynchronously, on a fiber: see the module
/// doc).
pub(crate) async fn run<R>(
    engine: &Engine,
    ctx: &Arc<InstanceContext>,
    path: &Path,
    cancel: CancellationToken,
    operation: &str,
    body: impl for<'s> FnOnce(&'s mut Store<CallState>) -> CallFuture<'s, R>,
) -> Result<R, PluginError> {
    let started = Instant::now();
    let limits = StoreLimitsBuilder::new()
        .memory_size(ctx.memory_limit)
        .table_elements(MAX_TABLE_ELEMENTS)
        .trap_on_grow_failure(true)
        .build();
    let state = CallState {
        ctx: ctx.clone(),
        limits: CallLimits {
            inner: limits,
            memory_limit: ctx.memory_limit,
            refused_memory: None,
        },
        deadline: started + ctx.call_timeout,
        cancel,
        fault: None,
        panic_message: None,
        log_lines: 0,
        notices: Notices::default(),
    };
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limits);
    // Checked on every epoch tick: wall-clock deadline and cancellation.
    // On every other tick the guest yields its tokio worker, so a plugin
    // that computes (or spins until its deadline) never holds a worker for
    // longer than one tick at a time.
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|mut store| {
        let state = store.data_mut();
        if state.cancel.is_cancelled() {
            state.fault = Some(Fault::Cancelled);
            Ok(UpdateDeadline::Interrupt)
        } else if Instant::now() >= state.deadline {
            state.fault.get_or_insert(Fault::Deadline);
            Ok(UpdateDeadline::Interrupt)
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    });

    let outcome = body(&mut store).await;
    let state = store.data();
    let result = match outcome {
        Ok(value) => Ok(value),
        Err(CallFailure::Plugin(error)) => Err(redact_plugin_error(error, &ctx.redactor)),
        Err(CallFailure::InvalidOutput(detail)) => Err(PluginError::InvalidOutput {
            plugin: ctx.plugin.clone(),
            instance: ctx.instance.clone(),
            detail: scrub_and_truncate(&detail, MAX_ERROR_MESSAGE_BYTES, &ctx.redactor),
        }),
        Err(CallFailure::Wasm(error)) => Err(classify(state, &error, None)),
        Err(CallFailure::Instantiate(error)) => Err(classify(state, &error, Some(path))),
    };
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let (plugin, instance) = (display(ctx.plugin.as_str()), display(ctx.instance.as_str()));
    match &result {
        Ok(_) => tracing::trace!(
            plugin,
            instance,
            operation,
            elapsed_ms,
            "plugin call finished"
        ),
        Err(error) if error.is_sandbox_fault() => {
            tracing::warn!(
                plugin,
                instance,
                operation,
                elapsed_ms,
                "plugin call stopped by the sandbox: {error}"
            );
        }
        Err(error) => tracing::debug!(
            plugin,
            instance,
            operation,
            elapsed_ms,
            "plugin call failed: {error}"
        ),
    }
    result
}

/// Secrets must not travel on in error messages a plugin built (e.g. a URL
/// with a token in its path), nor megabytes of text into the log and the
/// state database ([`MAX_ERROR_MESSAGE_BYTES`]).
fn redact_plugin_error(error: PluginError, redactor: &Redactor) -> PluginError {
    let scrub = |s: String| scrub_and_truncate(&s, MAX_ERROR_MESSAGE_BYTES, redactor);
    match error {
        PluginError::Retryable {
            message,
            retry_after,
        } => PluginError::Retryable {
            message: scrub(message),
            retry_after,
        },
        PluginError::Permanent(m) => PluginError::Permanent(scrub(m)),
        PluginError::Unreachable(m) => PluginError::Unreachable(scrub(m)),
        PluginError::Misconfigured(m) => PluginError::Misconfigured(scrub(m)),
        other => other,
    }
}

/// Turn a trap or host abort into the sandbox fault it stands for.
fn classify(
    state: &CallState,
    error: &wasmtime::Error,
    instantiating: Option<&Path>,
) -> PluginError {
    let ctx = &state.ctx;
    let (plugin, instance) = (ctx.plugin.clone(), ctx.instance.clone());
    if let Some(requested) = state.limits.refused_memory {
        return PluginError::MemoryLimit {
            plugin,
            instance,
            limit: ctx.memory_limit as u64,
            requested: requested as u64,
        };
    }
    match &state.fault {
        Some(Fault::HostWait { during }) => {
            return PluginError::Timeout {
                plugin,
                instance,
                budget: ctx.call_timeout,
                during: during.clone(),
            };
        }
        Some(Fault::Cancelled) => return PluginError::Cancelled { plugin, instance },
        Some(Fault::Deadline) => {
            return PluginError::CpuInterrupted {
                plugin,
                instance,
                budget: ctx.call_timeout,
            };
        }
        None => {}
    }
    let trap = error.downcast_ref::<Trap>();
    if let (Some(path), None) = (instantiating, trap) {
        return PluginError::Instantiate {
            plugin,
            instance,
            path: path.to_owned(),
            reason: ctx.redactor.redact(&format!("{error:#}")).into_owned(),
        };
    }
    PluginError::Trapped {
        plugin,
        instance,
        trap: match trap {
            Some(trap) => trap.to_string(),
            None => ctx.redactor.redact(&format!("{error:#}")).into_owned(),
        },
        panic: state.panic_message.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call_state() -> CallState {
        let ctx = Arc::new(InstanceContext {
            plugin: "sample-connector".into(),
            instance: "loja".into(),
            settings: Vec::new(),
            redactor: Redactor::new(["s3cr3t".to_owned()]),
            http: HttpContext::deny_all(),
            call_timeout: Duration::from_secs(30),
            memory_limit: 1 << 20,
        });
        CallState {
            limits: CallLimits {
                inner: StoreLimitsBuilder::new().build(),
                memory_limit: ctx.memory_limit,
                refused_memory: None,
            },
            deadline: Instant::now() + ctx.call_timeout,
            ctx,
            cancel: CancellationToken::new(),
            fault: None,
            panic_message: None,
            log_lines: 0,
            notices: Notices::default(),
        }
    }

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_notices_a_connector_logs_are_collected_redacted_even_past_the_line_cap() {
        let mut state = call_state();
        for n in 0..MAX_LOG_LINES_PER_CALL {
            state.guest_log(GuestLevel::Info, &format!("chatter {n}"), &[]);
        }
        state.guest_log(
            GuestLevel::Warn,
            "detail refused: token s3cr3t expired",
            &fields(&[
                ("notice", "order-quarantined"),
                ("order", "55"),
                ("attempts", "5"),
            ]),
        );
        state.guest_log(
            GuestLevel::Warn,
            "not a notice",
            &fields(&[("order", "56")]),
        );
        state.guest_log(
            GuestLevel::Warn,
            "broken",
            &fields(&[("notice", "order-recovered")]),
        );
        let (notices, dropped) = state.take_notices();
        assert_eq!(
            notices,
            vec![ConnectorNotice::OrderQuarantined {
                order: "55".into(),
                reason: "detail refused: token <redacted> expired".into(),
                attempts: 5,
            }]
        );
        assert_eq!(dropped, 0);
        assert_eq!(state.take_notices().0, Vec::new(), "taken once");
    }

    #[test]
    fn an_unreachable_recipient_error_is_redacted_like_the_others() {
        let redactor = Redactor::new(["s3cr3t".to_owned()]);
        let error = redact_plugin_error(
            PluginError::from_permanent(
                "recipient-unreachable: 403 from /bots3cr3t/sendMessage: bot was blocked".into(),
            ),
            &redactor,
        );
        assert_eq!(
            error,
            PluginError::Unreachable("403 from /bot<redacted>/sendMessage: bot was blocked".into())
        );
    }

    #[test]
    fn a_call_keeps_at_most_64_notices_and_counts_the_rest() {
        let mut notices = Notices::default();
        for n in 0..100 {
            notices.push(ConnectorNotice::OrderRecovered {
                order: n.to_string(),
            });
        }
        assert_eq!(notices.kept.len(), MAX_NOTICES_PER_CALL);
        assert_eq!(notices.kept[0].order(), "0");
        assert_eq!(notices.dropped, 100 - MAX_NOTICES_PER_CALL);
    }
}
