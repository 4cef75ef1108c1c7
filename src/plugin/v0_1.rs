//! Bindings for plugin API `arauto:plugin@0.1.x` (`plugins/wit/since_v0.1.0`)
//! and the conversions between its generated types and arauto's own.
//!
//! This is the only file that sees types generated from the 0.1 WIT (`v0_2.rs`
//! is its 0.2 sibling; the host dispatches on
//! [`super::api_version::SupportedApi`]). Contract 0.1 is deprecated: what its
//! plugins never declared (recipient, pace, request budget) and the
//! `event-json` they expect come from [`fallback`].

use std::time::Duration;

use wasmtime::Store;
use wasmtime::component::{HasSelf, Linker};

use crate::model;

use super::error::PluginError;
use super::http::{self as host_http, HttpFailure, HttpRequest};
use super::http_call;
use super::limits::{MAX_ID_BYTES, MAX_SNAPSHOT_TEXT_BYTES, truncate, truncate_in_place};
use super::output::{self, RawPix, RawSnapshot};
use super::sandbox::{CallFailure, CallState, GuestLevel};
use super::types::{OutgoingMessage, PollPage, PollRequest, RejectedOrder, SendReceipt};

pub(crate) mod fallback;

/// The `connector` world. Its import interfaces are shared with `sender`.
pub(crate) mod connector {
    wasmtime::component::bindgen!({
        world: "connector",
        path: "plugins/wit/since_v0.1.0",
        // `http.send` aborts the call when the call's deadline passes while
        // waiting for the network.
        imports: { "arauto:plugin/http.send": async | trappable },
        // Calls run on fibers inside the caller's task (see `sandbox.rs`).
        exports: { default: async },
    });
}

/// The `sender` world, reusing the connector world's import bindings so the
/// host implements each import once.
pub(crate) mod sender {
    wasmtime::component::bindgen!({
        world: "sender",
        path: "plugins/wit/since_v0.1.0",
        with: {
            "arauto:plugin/types": super::connector::arauto::plugin::types,
            "arauto:plugin/http": super::connector::arauto::plugin::http,
            "arauto:plugin/log": super::connector::arauto::plugin::log,
            "arauto:plugin/config": super::connector::arauto::plugin::config,
            "arauto:plugin/clock": super::connector::arauto::plugin::clock,
        },
        exports: { default: async },
    });
}

use connector::arauto::plugin::{clock, config, http, log, types};
use connector::exports::arauto::plugin::connector_api as capi;
use sender::exports::arauto::plugin::sender_api as sapi;

pub(crate) use connector::ConnectorPre;
pub(crate) use sender::SenderPre;

/// A linker with the 0.1 imports for the connector world.
pub(crate) fn connector_linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<CallState>> {
    let mut linker = Linker::new(engine);
    connector::Connector::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |state| {
        state
    })?;
    Ok(linker)
}

/// A linker with the 0.1 imports for the sender world.
pub(crate) fn sender_linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<CallState>> {
    let mut linker = Linker::new(engine);
    sender::Sender::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |state| state)?;
    Ok(linker)
}

// ---- host imports ---------------------------------------------------------

impl types::Host for CallState {}

impl http::Host for CallState {
    async fn send(
        &mut self,
        req: http::Request,
    ) -> wasmtime::Result<Result<http::Response, http::HttpError>> {
        let request = HttpRequest {
            method: match req.method {
                http::Method::Get => host_http::Method::Get,
                http::Method::Head => host_http::Method::Head,
                http::Method::Post => host_http::Method::Post,
                http::Method::Put => host_http::Method::Put,
                http::Method::Patch => host_http::Method::Patch,
                http::Method::Delete => host_http::Method::Delete,
            },
            url: req.url,
            headers: req.headers,
            body: req.body,
            timeout: req
                .timeout_ms
                .map(|ms| Duration::from_millis(u64::from(ms))),
        };
        Ok(http_call::send(self, request)
            .await?
            .map(|r| http::Response {
                status: r.status,
                headers: r.headers,
                body: r.body,
            })
            .map_err(|failure| match failure {
                HttpFailure::Denied(why) => http::HttpError::Denied(why),
                HttpFailure::Timeout => http::HttpError::Timeout,
                HttpFailure::Connect(why) => http::HttpError::Connect(why),
                HttpFailure::TooLarge(cap) => http::HttpError::TooLarge(cap),
                HttpFailure::BudgetExhausted => http::HttpError::BudgetExhausted,
                HttpFailure::InvalidRequest(why) => http::HttpError::InvalidRequest(why),
                HttpFailure::Other(why) => http::HttpError::Other(why),
            }))
    }
}

impl log::Host for CallState {
    fn log(&mut self, level: log::Level, message: String, fields: Vec<(String, String)>) {
        let level = match level {
            log::Level::Trace => GuestLevel::Trace,
            log::Level::Debug => GuestLevel::Debug,
            log::Level::Info => GuestLevel::Info,
            log::Level::Warn => GuestLevel::Warn,
            log::Level::Error => GuestLevel::Error,
        };
        self.guest_log(level, &message, &fields);
    }
}

impl config::Host for CallState {
    fn get(&mut self, key: String) -> Option<String> {
        self.setting(&key)
    }
    fn get_all(&mut self) -> Vec<(String, String)> {
        self.all_settings()
    }
}

impl clock::Host for CallState {
    fn now_unix_ms(&mut self) -> u64 {
        CallState::now_unix_ms(self)
    }
}

// ---- exports ----------------------------------------------------------------

/// `connector-api.info`.
pub(crate) async fn connector_info(
    pre: &ConnectorPre<CallState>,
    store: &mut Store<CallState>,
) -> Result<model::ConnectorInfo, CallFailure> {
    let bindings = pre
        .instantiate_async(&mut *store)
        .await
        .map_err(CallFailure::Instantiate)?;
    let info = bindings
        .arauto_plugin_connector_api()
        .call_info(&mut *store)
        .await
        .map_err(CallFailure::Wasm)?;
    Ok(connector_info_from_wit(info, store.data()))
}

/// `connector-api.check`.
pub(crate) async fn connector_check(
    pre: &ConnectorPre<CallState>,
    store: &mut Store<CallState>,
) -> Result<(), CallFailure> {
    let bindings = pre
        .instantiate_async(&mut *store)
        .await
        .map_err(CallFailure::Instantiate)?;
    bindings
        .arauto_plugin_connector_api()
        .call_check(&mut *store)
        .await
        .map_err(CallFailure::Wasm)?
        .map_err(|e| CallFailure::Plugin(plugin_error(e)))
}

/// `connector-api.poll`.
pub(crate) async fn connector_poll(
    pre: &ConnectorPre<CallState>,
    store: &mut Store<CallState>,
    request: &PollRequest,
) -> Result<PollPage, CallFailure> {
    let bindings = pre
        .instantiate_async(&mut *store)
        .await
        .map_err(CallFailure::Instantiate)?;
    let wit_request = capi::PollRequest {
        cursor: request.cursor.clone(),
        detail_cutoff: request.detail_cutoff.map(|t| t.to_string()),
    };
    // Contract 0.1 has no push hints; its connectors find changes by listing.
    let page = bindings
        .arauto_plugin_connector_api()
        .call_poll(&mut *store, &wit_request)
        .await
        .map_err(CallFailure::Wasm)?
        .map_err(|e| CallFailure::Plugin(plugin_error(e)))?;
    output::check_page_size(page.next_cursor.as_deref(), page.orders.len())
        .map_err(|e| CallFailure::InvalidOutput(e.to_string()))?;
    // One order the host cannot accept is refused alone: failing the page
    // would keep the cursor where it is and stop the whole store for ever.
    let mut orders = Vec::with_capacity(page.orders.len());
    let mut rejected = Vec::new();
    for order in page.orders {
        let id = truncate(order.id.clone(), MAX_ID_BYTES);
        match output::order_from_snapshot(snapshot_from_wit(order)) {
            Ok(order) => orders.push(order),
            Err(reason) => rejected.push(RejectedOrder {
                order: id,
                reason: reason.to_string(),
            }),
        }
    }
    let (notices, dropped) = store.data_mut().take_notices();
    if dropped > 0 {
        let state = store.data();
        tracing::warn!(
            plugin = %state.ctx.plugin,
            store = %state.ctx.instance,
            "the connector reported {} notices in one poll; kept the first {}",
            notices.len() + dropped,
            notices.len()
        );
    }
    Ok(PollPage {
        orders,
        next_cursor: page.next_cursor,
        has_more: page.has_more,
        rejected,
        notices,
    })
}

/// `sender-api.info`.
pub(crate) async fn sender_info(
    pre: &SenderPre<CallState>,
    store: &mut Store<CallState>,
) -> Result<model::PluginInfo, CallFailure> {
    let bindings = pre
        .instantiate_async(&mut *store)
        .await
        .map_err(CallFailure::Instantiate)?;
    let info = bindings
        .arauto_plugin_sender_api()
        .call_info(&mut *store)
        .await
        .map_err(CallFailure::Wasm)?;
    Ok(plugin_info_from_wit(info))
}

/// `sender-api.check`.
pub(crate) async fn sender_check(
    pre: &SenderPre<CallState>,
    store: &mut Store<CallState>,
) -> Result<(), CallFailure> {
    let bindings = pre
        .instantiate_async(&mut *store)
        .await
        .map_err(CallFailure::Instantiate)?;
    bindings
        .arauto_plugin_sender_api()
        .call_check(&mut *store)
        .await
        .map_err(CallFailure::Wasm)?
        .map_err(|e| CallFailure::Plugin(plugin_error(e)))
}

/// `sender-api.send`.
pub(crate) async fn sender_send(
    pre: &SenderPre<CallState>,
    store: &mut Store<CallState>,
    message: &OutgoingMessage,
) -> Result<SendReceipt, CallFailure> {
    let bindings = pre
        .instantiate_async(&mut *store)
        .await
        .map_err(CallFailure::Instantiate)?;
    let receipt = bindings
        .arauto_plugin_sender_api()
        .call_send(&mut *store, &message_to_wit(message))
        .await
        .map_err(CallFailure::Wasm)?
        .map_err(|e| CallFailure::Plugin(send_error(e)))?;
    Ok(output::receipt(
        receipt.provider_message_id,
        receipt.recipient_id,
    ))
}

// ---- conversions --------------------------------------------------------------

fn plugin_error(error: types::PluginError) -> PluginError {
    match error {
        types::PluginError::Retryable(r) => PluginError::Retryable {
            message: r.message,
            retry_after: output::retry_after(r.retry_after_ms),
        },
        types::PluginError::Permanent(m) => PluginError::Permanent(m),
        types::PluginError::Misconfigured(m) => PluginError::Misconfigured(m),
    }
}

/// A sender's `send` error: only here does a permanent error carrying
/// [`crate::plugin::RECIPIENT_UNREACHABLE_PREFIX`] mean "recipient unreachable"
/// (a connector's or another call's error text is never read that way).
fn send_error(error: types::PluginError) -> PluginError {
    match error {
        types::PluginError::Permanent(m) => PluginError::from_permanent(m),
        other => plugin_error(other),
    }
}

fn plugin_info_from_wit(info: types::PluginInfo) -> model::PluginInfo {
    let mut info = model::PluginInfo {
        name: info.name,
        version: info.version,
        kind: match info.kind {
            types::PluginKind::Connector => model::PluginKind::Connector,
            types::PluginKind::Sender => model::PluginKind::Sender,
        },
        description: info.description,
        config_keys: info
            .config_keys
            .into_iter()
            .map(|k| model::ConfigKey {
                name: k.name,
                description: k.description,
                required: k.required,
                secret: k.secret,
                default_value: k.default_value,
            })
            .collect(),
        default_hosts: info.default_hosts,
    };
    output::cap_plugin_info(&mut info);
    info
}

fn connector_info_from_wit(info: capi::ConnectorInfo, state: &CallState) -> model::ConnectorInfo {
    let capability = |c: capi::Capability| output::capability(c.supported, c.reason);
    let plugin = plugin_info_from_wit(info.plugin);
    let statuses = info
        .statuses
        .into_iter()
        .take(output::MAX_STATUSES)
        .map(|mut s| {
            output::cap_status_texts(&mut s.code, &mut s.name);
            if let Some(name) = &mut s.notification {
                truncate_in_place(name, MAX_SNAPSHOT_TEXT_BYTES);
            }
            let notification = s.notification.and_then(|name| match name.parse::<model::NotificationKind>() {
                Ok(kind) => Some(kind),
                Err(_) => {
                    tracing::warn!(
                        plugin = %plugin.name,
                        instance = %state.ctx.instance,
                        status = %s.code,
                        "plugin maps status {:?} to unknown notification {name:?}; ignoring the mapping \
                         (the status notifies nobody unless the store's config maps it)",
                        s.code
                    );
                    None
                }
            });
            model::StatusEntry {
                code: s.code,
                name: s.name,
                notification,
                happy_path_priority: s.happy_path_priority,
                terminal: s.terminal,
            }
        })
        .collect();
    let mut info = model::ConnectorInfo {
        plugin,
        platform: output::platform(info.platform),
        statuses,
        capabilities: model::Capabilities {
            tracking_codes: capability(info.capabilities.tracking_codes),
            boleto_reminder: capability(info.capabilities.boleto_reminder),
            pix_reminder: capability(info.capabilities.pix_reminder),
            abandoned_cart: capability(info.capabilities.abandoned_cart),
        },
        requests_per_minute: None,
        push: model::PushSupport::default(),
        account_keys: None,
    };
    // Contract 0.1 declares no budget nor push support: the name table does.
    fallback::fill_connector_info(&mut info);
    info
}

fn snapshot_from_wit(o: capi::OrderSnapshot) -> RawSnapshot {
    RawSnapshot {
        id: o.id,
        number: o.number,
        status: model::OrderStatus {
            code: o.status.code,
            name: o.status.name,
        },
        created_at: o.created_at,
        updated_at: o.updated_at,
        customer: model::Customer {
            name: o.customer.name,
            first_name: o.customer.first_name,
            phones: o.customer.phones,
            email: o.customer.email,
            chat_id: None,
        },
        subtotal: model::Money::from_plugin_cents(o.subtotal.cents),
        shipping: model::Money::from_plugin_cents(o.shipping.cents),
        discount: model::Money::from_plugin_cents(o.discount.cents),
        total: model::Money::from_plugin_cents(o.total.cents),
        currency: o.currency,
        payment: o.payment.map(|p| model::Payment {
            family: model::PaymentFamily::from_plugin(&p.family),
            code: p.code,
            name: p.name,
            installments: p.installments,
        }),
        shipments: o
            .shipments
            .into_iter()
            .map(|s| model::Shipment {
                id: s.id,
                carrier: s.carrier,
                method: s.method,
                tracking_code: s.tracking_code,
                tracking_url: s.tracking_url,
            })
            .collect(),
        items: o
            .items
            .into_iter()
            .map(|i| model::Item {
                sku: i.sku,
                name: i.name,
                quantity: output::quantity(i.quantity),
                unit_price: model::Money::from_plugin_cents(i.unit_price.cents),
                total: model::Money::from_plugin_cents(i.total.cents),
            })
            .collect(),
        boleto: o.boleto.map(|b| model::Boleto {
            barcode: b.barcode,
            url: b.url,
            due_date: b.due_date,
        }),
        pix: o.pix.map(|p| RawPix {
            code: p.code,
            qr_code_url: p.qr_code_url,
            expires_at: p.expires_at,
        }),
        detailed: o.detailed,
        extras_json: o.extras_json,
    }
}

fn message_to_wit(m: &OutgoingMessage) -> sapi::Message {
    sapi::Message {
        idempotency_key: m.idempotency_key.clone(),
        attempt: m.attempt,
        recipient: sapi::Recipient {
            phone: m.recipient.phone.clone(),
            email: m.recipient.email.clone(),
            name: m.recipient.name.clone(),
            first_name: m.recipient.first_name.clone(),
        },
        text: m.text.clone(),
        template: m.template.as_ref().map(|t| sapi::TemplateRef {
            name: t.name.clone(),
            language: t.language.clone(),
            positional: t.positional.clone(),
            named: t.named.clone(),
        }),
        meta: sapi::MessageMeta {
            store: m.meta.store.clone(),
            order_id: m.meta.order_id.clone(),
            order_number: m.meta.order_number.clone(),
            notification: m.meta.notification.as_str().to_owned(),
            job_id: m.meta.job_id.clone(),
            channel: m.meta.channel.clone(),
        },
        event_json: fallback::event_json(&m.event).to_string(),
    }
}
