//! Test support: the fake LI server, a blocking HTTP transport for the SDK
//! harness, and helpers to run whole sweeps.

#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use arauto_plugin_sdk::connector::http::{HttpError, Response};
use arauto_plugin_sdk::connector::testing;
use arauto_plugin_sdk::connector::{Connector, OrderSnapshot, PluginError, PollPage, PollRequest};
use arauto_sim::li::{FakeLi, LiStore, RecordedRequest, StoreAuth};
use loja_integrada::LojaIntegrada;
use serde_json::Value;

pub const API_KEY: &str = "K3yDaLoja0000000001";
pub const APP_KEY: &str = "ApP-integrador-42";
pub const TOKEN: &str = "pt_0123456789abcdef";

/// A running fake with one store accepting both credential modes.
pub struct Fake {
    pub li: FakeLi,
    pub store: LiStore,
}

pub fn fake() -> Fake {
    let li = FakeLi::start_blocking().expect("start the fake LI server");
    let store = li.add_store(StoreAuth::api_key(API_KEY, APP_KEY).and_personal_token(TOKEN));
    Fake { li, store }
}

/// Install the harness: `settings` plus `base_url` pointing at the fake.
pub fn install_settings(base_url: &str, settings: &[(&str, &str)]) {
    let mut harness = testing::Harness::new()
        .setting("base_url", base_url)
        .transport(testing::http_transport(Duration::from_secs(30)));
    for (k, v) in settings {
        harness = harness.setting(k, v);
    }
    testing::install(harness);
}

/// Install the harness with the api-key credentials and `extra` settings.
pub fn install(fake: &Fake, extra: &[(&str, &str)]) {
    let mut settings = vec![("api_key", API_KEY), ("application_key", APP_KEY)];
    settings.extend_from_slice(extra);
    install_settings(&fake.li.base_url(), &settings);
}

/// The harness clock at install: 2024-05-10T12:00:00Z, 09:00 in São Paulo.
pub const HOST_START_MS: u64 = 1_715_342_400_000;

/// Install the harness with the api-key credentials, `extra` settings and a
/// transport that passes every answer of the fake through `edit(url, answer)`
/// (to break one order's detail in ways the fake cannot, or to apply the
/// host's response size cap).
pub fn install_editing(
    fake: &Fake,
    extra: &[(&str, &str)],
    mut edit: impl FnMut(&str, Response) -> Result<Response, HttpError> + 'static,
) {
    let mut inner = testing::http_transport(Duration::from_secs(30));
    let mut harness = testing::Harness::new()
        .setting("base_url", &fake.li.base_url())
        .setting("api_key", API_KEY)
        .setting("application_key", APP_KEY)
        .transport(move |req| edit(&req.url, inner(req)?));
    for (k, v) in extra {
        harness = harness.setting(k, v);
    }
    testing::install(harness);
}

/// Rewrite the JSON detail of order `numero` with `change`.
pub fn edit_detail(
    numero: u64,
    mut change: impl FnMut(&mut Value) + 'static,
) -> impl FnMut(&str, Response) -> Result<Response, HttpError> + 'static {
    move |url, mut answer| {
        if url
            .trim_end_matches('/')
            .ends_with(&format!("/pedido/{numero}"))
        {
            let mut doc: Value = serde_json::from_slice(&answer.body).expect("a JSON detail");
            change(&mut doc);
            answer.body = serde_json::to_vec(&doc).unwrap();
        }
        Ok(answer)
    }
}

/// Notices (log records with a `notice` field) emitted so far: (level, message, fields).
pub fn notices(kind: &str) -> Vec<testing::LogLine> {
    testing::logs()
        .into_iter()
        .filter(|(_, _, fields)| fields.iter().any(|(k, v)| k == "notice" && v == kind))
        .collect()
}

/// The value of `key` in a log record's fields.
pub fn field<'a>(fields: &'a [(String, String)], key: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

pub fn poll(cursor: Option<&str>, cutoff: Option<&str>) -> Result<PollPage, PluginError> {
    poll_looking_at(cursor, cutoff, &[])
}

/// [`poll`] with the orders a verified push named (`look_at`).
pub fn poll_looking_at(
    cursor: Option<&str>,
    cutoff: Option<&str>,
    look_at: &[&str],
) -> Result<PollPage, PluginError> {
    LojaIntegrada::poll(PollRequest {
        cursor: cursor.map(str::to_owned),
        detail_cutoff: cutoff.map(str::to_owned),
        look_at: look_at.iter().map(|id| (*id).to_owned()).collect(),
    })
}

/// What one complete sweep returned.
pub struct SweepResult {
    pub orders: Vec<OrderSnapshot>,
    pub calls: usize,
    pub cursor: String,
}

/// Call `poll` until `has_more` is false, committing each page's cursor like the host.
pub fn sweep(cursor: Option<&str>, cutoff: Option<&str>) -> SweepResult {
    sweep_with(cursor, cutoff, |_| {})
}

/// [`sweep`], running `between(call_number)` after each page (to change the store mid-sweep).
pub fn sweep_with(
    cursor: Option<&str>,
    cutoff: Option<&str>,
    mut between: impl FnMut(usize),
) -> SweepResult {
    let mut cursor = cursor.map(str::to_owned);
    let mut orders = Vec::new();
    for call in 1..=1000 {
        let page = poll(cursor.as_deref(), cutoff)
            .unwrap_or_else(|e| panic!("poll call {call} failed: {e:?}"));
        orders.extend(page.orders);
        cursor = Some(page.next_cursor.expect("every page carries a cursor"));
        if !page.has_more {
            return SweepResult {
                orders,
                calls: call,
                cursor: cursor.unwrap_or_default(),
            };
        }
        between(call);
    }
    panic!("sweep did not finish in 1000 calls");
}

pub fn cursor_json(cursor: &str) -> Value {
    serde_json::from_str(cursor).expect("the cursor is JSON")
}

pub fn numeros(orders: &[OrderSnapshot]) -> Vec<u64> {
    orders
        .iter()
        .map(|o| o.id.parse().expect("numeric id"))
        .collect()
}

/// Detail requests the fake received, by numero.
pub fn detail_calls(requests: &[RecordedRequest]) -> Vec<u64> {
    requests
        .iter()
        .filter_map(RecordedRequest::detail_numero)
        .collect()
}

pub fn searches(requests: &[RecordedRequest]) -> Vec<RecordedRequest> {
    requests.iter().filter(|r| r.is_search()).cloned().collect()
}

/// The message of a plugin error, whatever its class.
pub fn message(error: &PluginError) -> &str {
    match error {
        PluginError::Retryable(e) => &e.message,
        PluginError::Permanent(m) | PluginError::Misconfigured(m) => m,
    }
}
