//! Bindings for plugin API `arauto:plugin@0.2.x` (`plugins/wit/since_v0.2.0`)
//! and the conversions between its generated types and arauto's own.
//!
//! The only file that sees types generated from the 0.2 WIT. It stays thin:
//! the host imports delegate to the same [`CallState`] methods as 0.1's, and
//! what comes back is bounded and parsed by the version-independent
//! [`super::output`].

use std::time::Duration;

use wasmtime::Store;
use wasmtime::component::{HasSelf, Linker};

use crate::model;

use super::error::PluginError;
use super::http::{self as host_http, HttpFailure, HttpRequest};
use super::http_call;
use super::limits::{MAX_ID_BYTES, truncate};
use super::output::{self, RawPix, RawSnapshot};
use super::sandbox::{CallFailure, CallState, GuestLevel};
use super::types::{
    OutgoingMessage, PollPage, PollRequest, PushHint, PushRequest, RejectedOrder, SendReceipt,
};

/// The `connector` world. Its import interfaces are shared with `sender`.
pub(crate) mod connector {
    wasmtime::component::bindgen!({
        world: "connector",
        path: "plugins/wit/since_v0.2.0",
        // `http.send` aborts the call when the call's deadline passes while
        // waiting for the network.
        imports: { "arauto:plugin/http.send": async | trappable },
        // Calls run on fibers inside the caller's task (see `sandbox.rs`).
        exports: { default: async },
    });
}

/// The `sender` world, reusing the connector world's import bindings.
pub(crate) mod sender {
    wasmtime::component::bindgen!({
        world: "sender",
        path: "plugins/wit/since_v0.2.0",
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

/// A linker with the 0.2 imports for the connector world.
pub(crate) fn connector_linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<CallState>> {
    let mut linker = Linker::new(engine);
    connector::Connector::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |state| {
        state
    })?;
    Ok(linker)
}

/// A linker with the 0.2 imports for the sender world.
pub(crate) fn sender_linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<CallState>> {
    let mut linker = Linker::new(engine);
    sender::Sender::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |state| state)?;
    Ok(linker)
}

// ---- host imports (the same behaviour as 0.1's, on 0.2's generated types) ---

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

async fn connector_api<'a>(
    pre: &ConnectorPre<CallState>,
    store: &mut Store<CallState>,
    bindings: &'a mut Option<connector::Connector>,
) -> Result<&'a capi::Guest, CallFailure> {
    let instance = pre
        .instantiate_async(&mut *store)
        .await
        .map_err(CallFailure::Instantiate)?;
    Ok(bindings.insert(instance).arauto_plugin_connector_api())
}

async fn sender_api<'a>(
    pre: &SenderPre<CallState>,
    store: &mut Store<CallState>,
    bindings: &'a mut Option<sender::Sender>,
) -> Result<&'a sapi::Guest, CallFailure> {
    let instance = pre
        .instantiate_async(&mut *store)
        .await
        .map_err(CallFailure::Instantiate)?;
    Ok(bindings.insert(instance).arauto_plugin_sender_api())
}

/// `connector-api.info`.
pub(crate) async fn connector_info(
    pre: &ConnectorPre<CallState>,
    store: &mut Store<CallState>,
) -> Result<model::ConnectorInfo, CallFailure> {
    let mut bindings = None;
    let info = connector_api(pre, store, &mut bindings)
        .await?
        .call_info(&mut *store)
        .await
        .map_err(CallFailure::Wasm)?;
    Ok(connector_info_from_wit(info))
}

/// `connector-api.check`.
pub(crate) async fn connector_check(
    pre: &ConnectorPre<CallState>,
    store: &mut Store<CallState>,
) -> Result<(), CallFailure> {
    let mut bindings = None;
    connector_api(pre, store, &mut bindings)
        .await?
        .call_check(&mut *store)
        .await
        .map_err(CallFailure::Wasm)?
        .map_err(|e| CallFailure::Plugin(plugin_error(e)))
}

/// `connector-api.poll`, passing the orders pushes named.
pub(crate) async fn connector_poll(
    pre: &ConnectorPre<CallState>,
    store: &mut Store<CallState>,
    request: &PollRequest,
) -> Result<PollPage, CallFailure> {
    let wit_request = capi::PollRequest {
        cursor: request.cursor.clone(),
        detail_cutoff: request.detail_cutoff.map(|t| t.to_string()),
        look_at: output::look_at_request(&request.look_at),
    };
    let mut bindings = None;
    let page = connector_api(pre, store, &mut bindings)
        .await?
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

/// `connector-api.verify-push`.
pub(crate) async fn connector_verify_push(
    pre: &ConnectorPre<CallState>,
    store: &mut Store<CallState>,
    request: &PushRequest,
) -> Result<PushHint, CallFailure> {
    let wit_request = capi::PushRequest {
        headers: request.headers.clone(),
        body: request.body.clone(),
    };
    let mut bindings = None;
    let hint = connector_api(pre, store, &mut bindings)
        .await?
        .call_verify_push(&mut *store, &wit_request)
        .await
        .map_err(CallFailure::Wasm)?
        .map_err(|e| CallFailure::Plugin(plugin_error(e)))?;
    Ok(match hint {
        capi::PushHint::LookAt(ids) => output::push_hint_look_at(ids),
        capi::PushHint::Ignore(reason) => output::push_hint_ignore(reason),
    })
}

/// `connector-api.register-push`.
pub(crate) async fn connector_register_push(
    pre: &ConnectorPre<CallState>,
    store: &mut Store<CallState>,
    notify_url: &str,
) -> Result<(), CallFailure> {
    let mut bindings = None;
    connector_api(pre, store, &mut bindings)
        .await?
        .call_register_push(&mut *store, notify_url)
        .await
        .map_err(CallFailure::Wasm)?
        .map_err(|e| CallFailure::Plugin(plugin_error(e)))
}

/// `connector-api.unregister-push`.
pub(crate) async fn connector_unregister_push(
    pre: &ConnectorPre<CallState>,
    store: &mut Store<CallState>,
    notify_url: &str,
) -> Result<(), CallFailure> {
    let mut bindings = None;
    connector_api(pre, store, &mut bindings)
        .await?
        .call_unregister_push(&mut *store, notify_url)
        .await
        .map_err(CallFailure::Wasm)?
        .map_err(|e| CallFailure::Plugin(plugin_error(e)))
}

/// `sender-api.info`.
pub(crate) async fn sender_info(
    pre: &SenderPre<CallState>,
    store: &mut Store<CallState>,
) -> Result<model::SenderInfo, CallFailure> {
    let mut bindings = None;
    let info = sender_api(pre, store, &mut bindings)
        .await?
        .call_info(&mut *store)
        .await
        .map_err(CallFailure::Wasm)?;
    Ok(sender_info_from_wit(info))
}

/// `sender-api.check`.
pub(crate) async fn sender_check(
    pre: &SenderPre<CallState>,
    store: &mut Store<CallState>,
) -> Result<(), CallFailure> {
    let mut bindings = None;
    sender_api(pre, store, &mut bindings)
        .await?
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
    let wit_message = message_to_wit(message);
    let mut bindings = None;
    let receipt = sender_api(pre, store, &mut bindings)
        .await?
        .call_send(&mut *store, &wit_message)
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

/// Contract 0.2 dropped `plugin-info.kind`: the world says it.
fn plugin_info_from_wit(info: types::PluginInfo, kind: model::PluginKind) -> model::PluginInfo {
    let mut info = model::PluginInfo {
        name: info.name,
        version: info.version,
        kind,
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

fn notification_from_wit(kind: types::NotificationKind) -> model::NotificationKind {
    use model::NotificationKind as M;
    use types::NotificationKind as W;
    match kind {
        W::WaitingPayment => M::WaitingPayment,
        W::OrderPaid => M::OrderPaid,
        W::OrderProcessing => M::OrderProcessing,
        W::OrderShipped => M::OrderShipped,
        W::ReadyForPickup => M::ReadyForPickup,
        W::OrderDelivered => M::OrderDelivered,
        W::OrderCanceled => M::OrderCanceled,
        W::OrderRefunded => M::OrderRefunded,
        W::TrackingUpdated => M::TrackingUpdated,
        W::BoletoReminder => M::BoletoReminder,
        W::PixReminder => M::PixReminder,
        W::AbandonedCart => M::AbandonedCart,
    }
}

fn notification_to_wit(kind: model::NotificationKind) -> types::NotificationKind {
    use model::NotificationKind as M;
    use types::NotificationKind as W;
    match kind {
        M::WaitingPayment => W::WaitingPayment,
        M::OrderPaid => W::OrderPaid,
        M::OrderProcessing => W::OrderProcessing,
        M::OrderShipped => W::OrderShipped,
        M::ReadyForPickup => W::ReadyForPickup,
        M::OrderDelivered => W::OrderDelivered,
        M::OrderCanceled => W::OrderCanceled,
        M::OrderRefunded => W::OrderRefunded,
        M::TrackingUpdated => W::TrackingUpdated,
        M::BoletoReminder => W::BoletoReminder,
        M::PixReminder => W::PixReminder,
        M::AbandonedCart => W::AbandonedCart,
    }
}

fn family_from_wit(family: types::PaymentFamily) -> model::PaymentFamily {
    use model::PaymentFamily as M;
    use types::PaymentFamily as W;
    match family {
        W::Pix => M::Pix,
        W::Boleto => M::Boleto,
        W::CreditCard => M::CreditCard,
        W::Deposit => M::Deposit,
        W::External => M::External,
        W::Other => M::Other,
    }
}

fn family_to_wit(family: model::PaymentFamily) -> types::PaymentFamily {
    use model::PaymentFamily as M;
    use types::PaymentFamily as W;
    match family {
        M::Pix => W::Pix,
        M::Boleto => W::Boleto,
        M::CreditCard => W::CreditCard,
        M::Deposit => W::Deposit,
        M::External => W::External,
        M::Other => W::Other,
    }
}

fn connector_info_from_wit(info: capi::ConnectorInfo) -> model::ConnectorInfo {
    let capability = |c: capi::Capability| output::capability(c.supported, c.reason);
    let statuses = info
        .statuses
        .into_iter()
        .take(output::MAX_STATUSES)
        .map(|mut s| {
            output::cap_status_texts(&mut s.code, &mut s.name);
            model::StatusEntry {
                code: s.code,
                name: s.name,
                notification: s.notification.map(notification_from_wit),
                happy_path_priority: s.happy_path_priority,
                terminal: s.terminal,
            }
        })
        .collect();
    model::ConnectorInfo {
        plugin: plugin_info_from_wit(info.plugin, model::PluginKind::Connector),
        platform: output::platform(info.platform),
        statuses,
        capabilities: model::Capabilities {
            tracking_codes: capability(info.capabilities.tracking_codes),
            boleto_reminder: capability(info.capabilities.boleto_reminder),
            pix_reminder: capability(info.capabilities.pix_reminder),
            abandoned_cart: capability(info.capabilities.abandoned_cart),
        },
        // A budget of 0 would refuse every request: read it as "no default".
        requests_per_minute: info.requests_per_minute.filter(|n| *n > 0),
        push: model::PushSupport {
            verify: info.push.verify,
            register: info.push.register,
        },
        account_keys: Some(output::account_keys(info.account_keys)),
    }
}

fn sender_info_from_wit(info: sapi::SenderInfo) -> model::SenderInfo {
    let plugin = plugin_info_from_wit(info.plugin, model::PluginKind::Sender);
    let (default_min_interval, default_daily_cap) = output::sender_pace(
        &plugin.name,
        info.default_min_interval_ms,
        info.default_daily_cap,
    );
    model::SenderInfo {
        plugin,
        recipient: match info.recipient {
            sapi::RecipientNeed::CustomerPhone => model::RecipientNeed::CustomerPhone,
            sapi::RecipientNeed::CustomerEmail => model::RecipientNeed::CustomerEmail,
            sapi::RecipientNeed::CustomerChatId => model::RecipientNeed::CustomerChatId,
            sapi::RecipientNeed::None => model::RecipientNeed::Nothing,
        },
        default_min_interval,
        default_daily_cap,
        idempotent: info.idempotent,
        declared_by: model::DeclaredBy::Plugin,
    }
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
            chat_id: o.customer.chat_id,
        },
        subtotal: model::Money::from_plugin_cents(o.subtotal.cents),
        shipping: model::Money::from_plugin_cents(o.shipping.cents),
        discount: model::Money::from_plugin_cents(o.discount.cents),
        total: model::Money::from_plugin_cents(o.total.cents),
        currency: o.currency,
        payment: o.payment.map(|p| model::Payment {
            family: family_from_wit(p.family),
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

/// The WIT `order-event` (version [`model::OrderEvent::VERSION`]): amounts
/// in cents or none, times RFC 3339 in UTC, extras a JSON object text.
fn event_to_wit(event: &model::OrderEvent) -> sapi::OrderEvent {
    let cents = |m: Option<model::Money>| m.map(|m| m.0);
    let order = &event.order;
    let extras_json = if order.extras.is_object() {
        order.extras.to_string()
    } else {
        "{}".to_owned()
    };
    sapi::OrderEvent {
        version: model::OrderEvent::VERSION,
        notification: notification_to_wit(event.notification),
        job_id: event.job_id.clone(),
        store: sapi::EventStore {
            id: event.store.id.clone(),
            description: event.store.description.clone(),
            platform: event.store.platform.clone(),
        },
        status_code: event.status_code.clone(),
        tracking: event.tracking.as_ref().map(|t| sapi::EventTracking {
            shipment_id: t.shipment_id.clone(),
            code: t.code.clone(),
        }),
        order: sapi::EventOrder {
            id: order.id.clone(),
            number: order.number.clone(),
            status: sapi::EventStatus {
                code: order.status.code.clone(),
                name: order.status.name.clone(),
            },
            created_at: order.created_at.to_string(),
            updated_at: order.updated_at.to_string(),
            customer: sapi::EventCustomer {
                name: order.customer.name.clone(),
                first_name: order.customer.first_name.clone(),
                phones: order.customer.phones.clone(),
                email: order.customer.email.clone(),
                chat_id: order.customer.chat_id.clone(),
            },
            subtotal_cents: cents(order.subtotal),
            shipping_cents: cents(order.shipping),
            discount_cents: cents(order.discount),
            total_cents: cents(order.total),
            currency: order.currency.clone(),
            payment: order.payment.as_ref().map(|p| sapi::EventPayment {
                code: p.code.clone(),
                name: p.name.clone(),
                family: family_to_wit(p.family),
                installments: p.installments,
            }),
            shipments: order
                .shipments
                .iter()
                .map(|s| sapi::EventShipment {
                    id: s.id.clone(),
                    carrier: s.carrier.clone(),
                    method: s.method.clone(),
                    tracking_code: s.tracking_code.clone(),
                    tracking_url: s.tracking_url.clone(),
                })
                .collect(),
            items: order
                .items
                .iter()
                .map(|i| sapi::EventItem {
                    sku: i.sku.clone(),
                    name: i.name.clone(),
                    quantity: i.quantity.clone(),
                    unit_price_cents: cents(i.unit_price),
                    total_cents: cents(i.total),
                })
                .collect(),
            detailed: order.detailed,
            extras_json,
        },
    }
}

fn message_to_wit(m: &OutgoingMessage) -> sapi::Message {
    sapi::Message {
        idempotency_key: m.idempotency_key.clone(),
        attempt: m.attempt,
        recipient: sapi::Recipient {
            phone: m.recipient.phone.clone(),
            email: m.recipient.email.clone(),
            chat_id: m.recipient.chat_id.clone(),
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
            notification: notification_to_wit(m.meta.notification),
            job_id: m.meta.job_id.clone(),
            channel: m.meta.channel.clone(),
        },
        event: event_to_wit(&m.event),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> model::Order {
        model::Order {
            id: "1001".into(),
            number: "1001".into(),
            status: model::OrderStatus {
                code: "pedido_pago".into(),
                name: "Pedido Pago".into(),
            },
            created_at: "2026-01-01T10:00:00-03:00".parse().expect("timestamp"),
            updated_at: "2026-01-01T11:30:00-03:00".parse().expect("timestamp"),
            customer: model::Customer {
                name: "Ana Souza".into(),
                first_name: "Ana".into(),
                phones: Vec::new(),
                email: None,
                chat_id: Some("42".into()),
            },
            subtotal: Some(model::Money(10_000)),
            shipping: None,
            discount: Some(model::Money(0)),
            total: Some(model::Money(10_000)),
            currency: "BRL".into(),
            payment: Some(model::Payment {
                code: "pagali-pix".into(),
                name: "Pix".into(),
                family: model::PaymentFamily::Pix,
                installments: None,
            }),
            shipments: Vec::new(),
            items: vec![model::Item {
                sku: None,
                name: "Camiseta".into(),
                quantity: None,
                unit_price: None,
                total: Some(model::Money(10_000)),
            }],
            boleto: None,
            pix: None,
            detailed: true,
            extras: serde_json::Value::Null,
        }
    }

    #[test]
    fn notification_kinds_cross_both_ways_unchanged() {
        for kind in model::NotificationKind::ALL {
            assert_eq!(notification_from_wit(notification_to_wit(kind)), kind);
        }
        for family in [
            model::PaymentFamily::Pix,
            model::PaymentFamily::Boleto,
            model::PaymentFamily::CreditCard,
            model::PaymentFamily::Deposit,
            model::PaymentFamily::External,
            model::PaymentFamily::Other,
        ] {
            assert_eq!(family_from_wit(family_to_wit(family)), family);
        }
    }

    #[test]
    fn the_order_event_has_cents_utc_times_and_an_object_of_extras() {
        let event = model::OrderEvent {
            notification: model::NotificationKind::OrderPaid,
            job_id: "job-1".into(),
            store: model::EventStore {
                id: "loja".into(),
                description: None,
                platform: "loja-integrada".into(),
            },
            status_code: "pedido_pago".into(),
            tracking: None,
            order: order(),
        };
        let wit = event_to_wit(&event);
        assert_eq!(wit.version, 1);
        assert_eq!(wit.order.created_at, "2026-01-01T13:00:00Z");
        assert_eq!(wit.order.updated_at, "2026-01-01T14:30:00Z");
        assert_eq!(wit.order.subtotal_cents, Some(10_000));
        // Unknown stays unknown, never a made-up zero; a real zero stays zero.
        assert_eq!(wit.order.shipping_cents, None);
        assert_eq!(wit.order.discount_cents, Some(0));
        assert_eq!(wit.order.items[0].unit_price_cents, None);
        assert_eq!(wit.order.items[0].quantity, None);
        // Extras that are not an object are sent as an empty one.
        assert_eq!(wit.order.extras_json, "{}");
        assert_eq!(wit.order.customer.chat_id.as_deref(), Some("42"));
        assert!(matches!(
            wit.order.payment.map(|p| p.family),
            Some(types::PaymentFamily::Pix)
        ));
    }

    #[test]
    fn sender_declarations_are_read_as_declared() {
        let info = sender_info_from_wit(sapi::SenderInfo {
            plugin: types::PluginInfo {
                name: "ntfy".into(),
                version: "1.0.0".into(),
                description: "d".repeat(10_000),
                config_keys: Vec::new(),
                default_hosts: Vec::new(),
            },
            recipient: sapi::RecipientNeed::None,
            default_min_interval_ms: 2_500,
            default_daily_cap: Some(500),
            idempotent: true,
        });
        assert_eq!(info.recipient, model::RecipientNeed::Nothing);
        assert_eq!(
            info.default_min_interval,
            jiff::SignedDuration::from_millis(2_500)
        );
        assert_eq!(info.default_daily_cap, Some(500));
        assert!(info.idempotent);
        assert_eq!(info.declared_by, model::DeclaredBy::Plugin);
        assert_eq!(info.plugin.kind, model::PluginKind::Sender);
        assert!(
            info.plugin.description.len() < 5_000,
            "info texts are capped"
        );
    }

    #[test]
    fn only_a_send_error_reads_the_recipient_unreachable_prefix() {
        let text = || "recipient-unreachable: 131026 not on WhatsApp".to_owned();
        assert_eq!(
            send_error(types::PluginError::Permanent(text())),
            PluginError::Unreachable("131026 not on WhatsApp".into())
        );
        // A connector (or any non-send call) saying the same words is just permanent.
        assert_eq!(
            plugin_error(types::PluginError::Permanent(text())),
            PluginError::Permanent(text())
        );
    }
}
