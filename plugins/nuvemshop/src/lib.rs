//! # Nuvemshop (Tiendanube) connector for arauto
//!
//! Polls a Nuvemshop store's orders through its REST API and returns them as
//! normalised `order-snapshot`s (WIT `arauto:plugin@0.2.0`, world
//! `connector`), written only against the plugin SDK. The platform facts it
//! relies on are in `docs/platforms/nuvemshop.md`.
//!
//! * **Requests** — `{base_url}/{store_id}/…` with `Authentication: bearer
//!   <access_token>` and the required `User-Agent` (`src/api.rs`).
//! * **poll** — `GET /orders?updated_at_min=<mark − overlap>[&updated_at_max=…]&per_page=P`,
//!   one request per call, the window read in slices that fit one page; rows
//!   already returned (same id and `updated_at`) are
//!   dropped; pushed ids
//!   are read by `GET /orders/{id}` without moving the mark (`src/poll.rs`,
//!   `src/cursor.rs`).
//! * **Recognition** — one stage code per order from (status,
//!   payment_status, shipping_status) by a fixed precedence; the catalogue
//!   is the default recognition table (`src/catalogue.rs`).
//! * **Pacing** — follows `x-rate-limit-remaining`/`-reset`: a nearly full
//!   bucket pauses the sweep; a 429 is retryable after the reset; 401/403
//!   are misconfigured naming `access_token`.
//! * **Pushes** — `verify-push` checks `x-linkedstore-hmac-sha256` with
//!   `app_secret` in constant time; `register-push`/`unregister-push` manage
//!   the order webhooks (`src/push.rs`).

mod api;
mod catalogue;
mod cursor;
#[cfg(test)]
mod fuzz;
mod mapping;
mod poll;
mod push;
mod settings;

use arauto_plugin_sdk::connector::prelude::*;

/// The connector (exported as the component's `connector-api`).
pub struct Nuvemshop;

impl Connector for Nuvemshop {
    fn info() -> ConnectorInfo {
        ConnectorInfo {
            plugin: PluginInfo {
                name: "nuvemshop".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                description: "Nuvemshop / Tiendanube: polls orders (payment, packing, shipping, \
                              tracking codes) through the REST API; verifies signed webhooks"
                    .into(),
                config_keys: settings::config_keys(),
                default_hosts: settings::DEFAULT_HOSTS.map(String::from).to_vec(),
            },
            platform: "nuvemshop".into(),
            statuses: catalogue::statuses(),
            capabilities: catalogue::capabilities(),
            // The bucket leaks 2 requests a second (120 a minute); 100 keeps
            // a sixth free for other calls of the same app, so a store
            // polled without pause still drains it (docs/platforms/nuvemshop.md
            // §Rate limit).
            requests_per_minute: Some(100),
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
        let store_id = settings::settings_store_id()?;
        let secret = push::configured_secret();
        match push::verify(&req.headers, &req.body, secret.as_deref(), &store_id)? {
            push::Verdict::LookAt(id) => Ok(PushHint::LookAt(vec![id])),
            push::Verdict::Ignore(why) => Ok(PushHint::Ignore(why)),
        }
    }

    fn register_push(notify_url: String) -> Result<(), PluginError> {
        let settings = settings::Settings::load()?;
        if push::configured_secret().is_none() {
            return Err(misconfigured(format!(
                "setting `{}` is not set: Nuvemshop signs every push with the app's secret, and \
                 without it arauto refuses them all; set it before registering the webhooks",
                settings::APP_SECRET_KEY
            )));
        }
        let mut api = api::Api::new(&settings);
        let existing = api.webhooks(&notify_url)?;
        for event in push::ORDER_EVENTS {
            if !existing.iter().any(|w| w.event == event) {
                pause_if_bucket_full(&api, "registering")?;
                api.create_webhook(event, &notify_url)?;
            }
        }
        Ok(())
    }

    fn unregister_push(notify_url: String) -> Result<(), PluginError> {
        let settings = settings::Settings::load()?;
        let mut api = api::Api::new(&settings);
        for webhook in api.webhooks(&notify_url)? {
            pause_if_bucket_full(&api, "removing")?;
            api.delete_webhook(&webhook.id)?;
        }
        Ok(())
    }
}

/// Stop before the request bucket fills: the webhooks done so far stay,
/// and running the command again finishes the rest (both are idempotent).
fn pause_if_bucket_full(api: &api::Api<'_>, doing: &str) -> Result<(), PluginError> {
    if api.bucket.nearly_full() {
        let wait = api.bucket.wait_ms();
        return Err(retry_after(
            format!(
                "Nuvemshop's request bucket is nearly full; stopped {doing} webhooks to let it \
                 leak: run the command again in {} s to finish",
                wait.div_ceil(1000)
            ),
            wait,
        ));
    }
    Ok(())
}

arauto_plugin_sdk::export_connector!(Nuvemshop);
