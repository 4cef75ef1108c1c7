//! # arauto-sender-testkit: the shared set-up of every sender's native tests
//!
//! Each first-party sender tests itself against a fake of its provider
//! (`arauto_sim::channels::FakeProvider`) over real HTTP on 127.0.0.1. The
//! set-up was the same in every plugin; it lives here:
//!
//! ```ignore
//! use arauto_sender_testkit as kit;
//!
//! let fake = kit::start(Provider::Telegram, Some(TOKEN));
//! kit::install(&[("base_url", &fake.url()), ("bot_token", TOKEN)], &[("chat_id", "-100…")]);
//! let receipt = Telegram::send(kit::message())?;
//! assert_eq!(fake.requests().len(), 1);
//! ```
//!
//! * [`start`]: a fake provider that answers like the real one and, given an
//!   auth token, rejects requests without it as the provider would;
//! * [`install`]: the SDK's per-thread test harness with the plugin's
//!   settings and the real HTTP transport, so the plugin's own requests reach
//!   the fake;
//! * [`message`]: the SDK's realistic sample message (`sender::fixtures`),
//!   to be changed in the fields a test is about;
//! * [`err`], [`permanent`], [`misconfigured`], [`retryable`], [`text_of`]:
//!   the error-class assertions every test file had.
//!
//! It is a separate crate rather than a module of the SDK because it depends
//! on `arauto-sim`, which third-party plugin authors neither have nor need.

use std::time::Duration;

use arauto_plugin_sdk::sender::testing::{self, Harness};
use arauto_plugin_sdk::sender::{Message, PluginError, RetryableError, fixtures};
use arauto_sim::channels::{FakeProvider, Provider};

/// How long one request may take before the test transport gives up, unless
/// the plugin sets its own timeout: generous for a loaded CI machine, short
/// enough that a hung fake fails the test instead of stalling it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Start a fake `provider` on 127.0.0.1 for one test. With `auth_token`, the
/// fake answers requests that do not carry it the way the provider does
/// (401, or the provider's own error body).
///
/// # Panics
/// When no port can be bound: the test cannot run at all.
pub fn start(provider: Provider, auth_token: Option<&str>) -> FakeProvider {
    let fake = FakeProvider::start_in_background(provider)
        .unwrap_or_else(|e| panic!("cannot start the fake {provider}: {e}"));
    if let Some(token) = auth_token {
        fake.require_auth(token);
    }
    fake
}

/// Install the SDK's test harness on this thread: `settings`, then `extra`
/// (an `extra` key replaces the same key of `settings`), and a transport that
/// really sends the plugin's requests (to the fake the settings point at).
pub fn install(settings: &[(&str, &str)], extra: &[(&str, &str)]) {
    let mut harness = Harness::new().transport(testing::http_transport(REQUEST_TIMEOUT));
    for (key, value) in settings.iter().chain(extra) {
        harness = harness.setting(key, value);
    }
    testing::install(harness);
}

/// The SDK's sample message: order 1001 of store `loja`, notification
/// `order-paid`, customer Maria Silva with phone `+5511987654321`.
pub fn message() -> Message {
    fixtures::message()
}

/// The error of a call that must fail.
///
/// # Panics
/// When the call succeeded.
pub fn err<T: std::fmt::Debug>(result: Result<T, PluginError>) -> PluginError {
    match result {
        Err(e) => e,
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

/// The text of a call that must fail as permanent.
///
/// # Panics
/// When it succeeded or failed otherwise.
pub fn permanent<T: std::fmt::Debug>(result: Result<T, PluginError>) -> String {
    match result {
        Err(PluginError::Permanent(m)) => m,
        other => panic!("expected a permanent error, got {other:?}"),
    }
}

/// The text (after the prefix) of a call that must fail with the SDK's
/// `recipient_unreachable` error: the recipient is not on this channel, and
/// the host hands the notification to the channel's fallback.
///
/// # Panics
/// When it succeeded or failed otherwise (a plain permanent error too).
pub fn unreachable<T: std::fmt::Debug>(result: Result<T, PluginError>) -> String {
    match result {
        Err(PluginError::Permanent(m))
            if m.starts_with(arauto_plugin_sdk::sender::RECIPIENT_UNREACHABLE_PREFIX) =>
        {
            m[arauto_plugin_sdk::sender::RECIPIENT_UNREACHABLE_PREFIX.len()..]
                .trim_start()
                .to_owned()
        }
        other => panic!("expected a recipient-unreachable error, got {other:?}"),
    }
}

/// The text of a call that must fail as misconfigured.
///
/// # Panics
/// When it succeeded or failed otherwise.
pub fn misconfigured<T: std::fmt::Debug>(result: Result<T, PluginError>) -> String {
    match result {
        Err(PluginError::Misconfigured(m)) => m,
        other => panic!("expected misconfigured, got {other:?}"),
    }
}

/// The error of a call that must fail as retryable.
///
/// # Panics
/// When it succeeded or failed otherwise.
pub fn retryable<T: std::fmt::Debug>(result: Result<T, PluginError>) -> RetryableError {
    match result {
        Err(PluginError::Retryable(e)) => e,
        other => panic!("expected retryable, got {other:?}"),
    }
}

/// The message of any error class.
pub fn text_of(error: &PluginError) -> &str {
    match error {
        PluginError::Retryable(r) => &r.message,
        PluginError::Permanent(m) | PluginError::Misconfigured(m) => m,
    }
}
