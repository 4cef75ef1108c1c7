//! # Loja Integrada connector for arauto
//!
//! Polls a Loja Integrada store's orders through the REST API v1 and returns
//! them as normalised `order-snapshot`s (WIT `arauto:plugin@0.2.0`, world
//! `connector`).
//!
//! * **Auth** — `api_key` + `application_key` (`Authorization: chave_api <key>
//!   aplicacao <app>`) or `personal_token` (`Authorization: Basic <token>`, the
//!   token raw), chosen by which settings are present.
//! * **poll** — `GET {base_url}{api_prefix}/pedido/search/?since_atualizado=<S>&limit=<page_size>&offset=<N>`
//!   with `S` = the earlier of LI's clock (its `Date` header) when the
//!   previous sweep's last pass began and the newest `data_modificacao`
//!   already returned, minus `overlap` (without a `Date`: the newest
//!   `data_modificacao` minus `overlap` and the previous sweep's duration),
//!   in naive São Paulo time at seconds precision; after a burst, LI's clock
//!   alone, with the mark's window checked by one page's `total_count`. One page per call (`has_more` until
//!   `meta.next` is null or a page is empty; the next offset is read from
//!   `meta.next`). For each row whose change key `(numero, situacao.codigo,
//!   data_modificacao)` was not returned before: `GET pedido/{numero}`, and
//!   `GET cliente/{id}` when the detail carries `cliente` as a URI. Rows
//!   modified before the host's `detail-cutoff` are returned from the summary
//!   row alone (`detailed = false`). `src/cursor.rs` documents the cursor,
//!   `src/poll.rs` how rows that shift mid-sweep are still caught.
//! * **Errors** — 429 (and 503 with `Retry-After`): retryable after
//!   `Retry-After` or 10 s, the wait kept in the cursor when part of a page
//!   was read; 401/403: misconfigured ("token inválido/expirado", naming the
//!   auth mode); 404 on a detail: the order is skipped (logged); 5xx,
//!   timeouts, a malformed search page: retryable (with a body excerpt). One
//!   order that cannot be read is skipped, retried with back-off and
//!   quarantined, without failing the page (`src/poll.rs`).
//! * **Odd values** — a `data_modificacao` in the future is processed but
//!   never moves the cursor past now + `future_tolerance`; unreadable amounts
//!   and quantities are unknown (`Money::UNKNOWN`, `""`), never zero.
//!
//! The LI facts the connector relies on (time base, paging, rate limits,
//! amounts, status codes) are collected in `docs/platforms/loja-integrada.md`.
//! * **Pushes** — `verify-push` checks `Authorization: Bearer <webhook_token>`
//!   in constant time and names the delivery's `numero` (ignoring
//!   `situacao_alterada: false`); `register-push`/`unregister-push` call
//!   `PUT`/`DELETE /webhooks/v1/pedido` on the API host; `poll` reads the
//!   orders in `look-at` by `numero`, a few per call with the rest queued in
//!   the cursor, and never lets them move the high-water mark
//!   (`src/push.rs`, `src/poll.rs`).
//! * **info** — the 16 LI status codes with their default notifications and
//!   happy-path priorities; tracking codes supported; boleto/PIX reminders and
//!   abandoned carts not (LI's API does not expose the data).

mod api;
mod catalogue;
mod cursor;
mod doc;
#[cfg(test)]
mod fuzz;
mod mapping;
/// Exact decimal amounts, shared with the other connectors through the SDK.
use arauto_plugin_sdk::decimal as money;
mod poll;
mod push;
mod settings;
mod time;

use arauto_plugin_sdk::connector::prelude::*;

/// The connector (exported as the component's `connector-api`).
pub struct LojaIntegrada;

impl Connector for LojaIntegrada {
    fn info() -> ConnectorInfo {
        ConnectorInfo {
            plugin: PluginInfo {
                name: "loja-integrada".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                description: "Loja Integrada: polls orders (status changes, tracking codes) through the REST API v1".into(),
                config_keys: settings::config_keys(),
                default_hosts: vec![settings::DEFAULT_BASE_URL.into()],
            },
            platform: "loja-integrada".into(),
            statuses: catalogue::statuses(),
            capabilities: catalogue::capabilities(),
            // LI allows 100 requests a minute per store; 90 leaves room for
            // the shop's other integrations (docs/platforms/loja-integrada.md).
            requests_per_minute: Some(90),
            push: PushSupport {
                verify: true,
                register: true,
            },
            account_keys: settings::ACCOUNT_KEYS.map(String::from).to_vec(),
        }
    }

    fn check() -> Result<(), PluginError> {
        let settings = settings::Settings::load()?;
        api::Api::new(&settings).check()
    }

    fn poll(req: PollRequest) -> Result<PollPage, PluginError> {
        poll::poll(req)
    }

    fn verify_push(req: PushRequest) -> Result<PushHint, PluginError> {
        let token = push::configured_token();
        match push::verify(&req.headers, &req.body, token.as_deref())? {
            push::Verdict::LookAt(numero) => Ok(PushHint::LookAt(vec![numero])),
            push::Verdict::Ignore(why) => Ok(PushHint::Ignore(why)),
        }
    }

    fn register_push(notify_url: String) -> Result<(), PluginError> {
        subscription(true, &notify_url)
    }

    fn unregister_push(notify_url: String) -> Result<(), PluginError> {
        subscription(false, &notify_url)
    }
}

/// `PUT` (subscribe) or `DELETE` (unsubscribe) the store's order webhook.
fn subscription(subscribe: bool, notify_url: &str) -> Result<(), PluginError> {
    let settings = settings::Settings::load()?;
    let token = push::configured_token().ok_or_else(|| {
        misconfigured(format!(
            "setting `{}` is not set: it is the secret Loja Integrada sends back with every \
             push, so set it (a long random string) before registering the webhook",
            push::TOKEN_KEY
        ))
    })?;
    api::Api::new(&settings).subscription(subscribe, notify_url, &token)
}

arauto_plugin_sdk::export_connector!(LojaIntegrada);
