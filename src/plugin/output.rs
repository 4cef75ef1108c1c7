//! What comes back from a plugin call, whatever its contract version: the
//! caps on it (see `super::limits`) and its conversion into arauto's types.
//!
//! Each binding module (`v0_1`, `v0_2`) moves its generated records into the
//! plain types here (a field-by-field move, no copying of large texts) and
//! leaves the bounding and parsing to this file, so a cap means the same
//! thing for every contract version.

use jiff::{SignedDuration, Timestamp};

use crate::model;

use super::limits::{
    MAX_CURSOR_BYTES, MAX_EXTRAS_JSON_BYTES, MAX_ID_BYTES, MAX_ORDERS_PER_PAGE,
    MAX_SNAPSHOT_LIST_LEN, MAX_SNAPSHOT_TEXT_BYTES, truncate, truncate_in_place,
};
use super::types::{MAX_LOOK_AT, PushHint, SendReceipt};

/// Why the host refuses what a connector returned: the whole page (cursor,
/// order count) or one order (its ids, extras, timestamps). The text reaches
/// the operator as invalid output or as a rejected order's reason.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OutputError {
    #[error(
        "its next cursor is {bytes} bytes, over the host's cap of {cap}; \
         the previous cursor stays in effect",
        cap = MAX_CURSOR_BYTES
    )]
    CursorTooLong { bytes: usize },
    #[error("its page has {count} orders, over the host's cap of {cap}", cap = MAX_ORDERS_PER_PAGE)]
    TooManyOrders { count: usize },
    #[error(
        "order {shown}: its {field} is {bytes} bytes, over the host's cap of {cap}",
        cap = MAX_ID_BYTES
    )]
    IdTooLong {
        shown: String,
        field: &'static str,
        bytes: usize,
    },
    #[error(
        "order {order}: extras-json is {bytes} bytes, over the host's cap of {cap}",
        cap = MAX_EXTRAS_JSON_BYTES
    )]
    ExtrasTooLong { order: String, bytes: usize },
    #[error("order {order}: {field} {value:?} is not an RFC 3339 timestamp with offset ({source})")]
    Timestamp {
        order: String,
        field: &'static str,
        value: String,
        source: jiff::Error,
    },
    #[error("order {order}: extras-json is not valid JSON ({source})")]
    ExtrasJson {
        order: String,
        source: serde_json::Error,
    },
}

/// A page whose cursor or order count is over its cap fails as a whole:
/// storing the cursor would bloat the state database on every poll, and
/// dropping orders while the cursor moves on would lose them.
pub(crate) fn check_page_size(
    next_cursor: Option<&str>,
    order_count: usize,
) -> Result<(), OutputError> {
    if let Some(cursor) = next_cursor
        && cursor.len() > MAX_CURSOR_BYTES
    {
        return Err(OutputError::CursorTooLong {
            bytes: cursor.len(),
        });
    }
    if order_count > MAX_ORDERS_PER_PAGE {
        return Err(OutputError::TooManyOrders { count: order_count });
    }
    Ok(())
}

/// An order snapshot as a connector returned it, before the host bounded and
/// parsed it: timestamps, PIX expiry and extras are still the plugin's text.
/// Everything else already has arauto's shape (amounts read from cents,
/// payment family and quantity decoded by the binding).
pub(crate) struct RawSnapshot {
    pub(crate) id: String,
    pub(crate) number: String,
    pub(crate) status: model::OrderStatus,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
    pub(crate) customer: model::Customer,
    pub(crate) subtotal: Option<model::Money>,
    pub(crate) shipping: Option<model::Money>,
    pub(crate) discount: Option<model::Money>,
    pub(crate) total: Option<model::Money>,
    pub(crate) currency: String,
    pub(crate) payment: Option<model::Payment>,
    pub(crate) shipments: Vec<model::Shipment>,
    pub(crate) items: Vec<model::Item>,
    pub(crate) boleto: Option<model::Boleto>,
    pub(crate) pix: Option<RawPix>,
    pub(crate) detailed: bool,
    pub(crate) extras_json: String,
}

/// A snapshot's PIX data with its expiry still as text.
pub(crate) struct RawPix {
    pub(crate) code: String,
    pub(crate) qr_code_url: Option<String>,
    pub(crate) expires_at: Option<String>,
}

/// Bound, then parse, one snapshot. Ids and extras over their caps refuse
/// the order (cutting them would change their meaning); other texts are cut
/// with a marker; lists past [`MAX_SNAPSHOT_LIST_LEN`] lose their tail.
pub(crate) fn order_from_snapshot(mut o: RawSnapshot) -> Result<model::Order, OutputError> {
    cap_snapshot(&mut o)?;
    let created_at = timestamp(&o.id, "created-at", &o.created_at)?;
    let updated_at = timestamp(&o.id, "updated-at", &o.updated_at)?;
    let pix = match o.pix {
        Some(p) => Some(model::Pix {
            expires_at: p
                .expires_at
                .as_deref()
                .map(|t| timestamp(&o.id, "pix.expires-at", t))
                .transpose()?,
            code: p.code,
            qr_code_url: p.qr_code_url,
        }),
        None => None,
    };
    let extras = if o.extras_json.trim().is_empty() {
        serde_json::Value::Object(serde_json::Map::new())
    } else {
        serde_json::from_str(&o.extras_json).map_err(|source| OutputError::ExtrasJson {
            order: o.id.clone(),
            source,
        })?
    };
    Ok(model::Order {
        id: o.id,
        number: o.number,
        status: o.status,
        created_at,
        updated_at,
        customer: o.customer,
        subtotal: o.subtotal,
        shipping: o.shipping,
        discount: o.discount,
        total: o.total,
        currency: o.currency,
        payment: o.payment,
        shipments: o.shipments,
        items: o.items,
        boleto: o.boleto,
        pix,
        detailed: o.detailed,
        extras,
    })
}

fn cap_snapshot(o: &mut RawSnapshot) -> Result<(), OutputError> {
    for (field, value) in [("id", &o.id), ("number", &o.number)] {
        if value.len() > MAX_ID_BYTES {
            return Err(OutputError::IdTooLong {
                shown: truncate(value.clone(), 64),
                field,
                bytes: value.len(),
            });
        }
    }
    if o.extras_json.len() > MAX_EXTRAS_JSON_BYTES {
        return Err(OutputError::ExtrasTooLong {
            order: o.id.clone(),
            bytes: o.extras_json.len(),
        });
    }
    let text = |t: &mut String| truncate_in_place(t, MAX_SNAPSHOT_TEXT_BYTES);
    let optional = |t: &mut Option<String>| {
        if let Some(t) = t {
            truncate_in_place(t, MAX_SNAPSHOT_TEXT_BYTES);
        }
    };
    o.shipments.truncate(MAX_SNAPSHOT_LIST_LEN);
    o.items.truncate(MAX_SNAPSHOT_LIST_LEN);
    o.customer.phones.truncate(MAX_SNAPSHOT_LIST_LEN);
    for t in [
        &mut o.status.code,
        &mut o.status.name,
        &mut o.created_at,
        &mut o.updated_at,
        &mut o.customer.name,
        &mut o.customer.first_name,
        &mut o.currency,
    ] {
        text(t);
    }
    o.customer.phones.iter_mut().for_each(text);
    optional(&mut o.customer.email);
    optional(&mut o.customer.chat_id);
    if let Some(p) = &mut o.payment {
        text(&mut p.code);
        text(&mut p.name);
    }
    for s in &mut o.shipments {
        text(&mut s.id);
        for t in [
            &mut s.carrier,
            &mut s.method,
            &mut s.tracking_code,
            &mut s.tracking_url,
        ] {
            optional(t);
        }
    }
    for i in &mut o.items {
        optional(&mut i.sku);
        text(&mut i.name);
        optional(&mut i.quantity);
    }
    if let Some(b) = &mut o.boleto {
        text(&mut b.barcode);
        optional(&mut b.url);
        optional(&mut b.due_date);
    }
    if let Some(p) = &mut o.pix {
        text(&mut p.code);
        optional(&mut p.qr_code_url);
        optional(&mut p.expires_at);
    }
    Ok(())
}

fn timestamp(order: &str, field: &'static str, value: &str) -> Result<Timestamp, OutputError> {
    value
        .parse::<Timestamp>()
        .map_err(|source| OutputError::Timestamp {
            order: order.to_owned(),
            field,
            value: value.to_owned(),
            source,
        })
}

/// An item quantity as a connector wrote it: "" is "unknown" in every
/// contract version.
pub(crate) fn quantity(text: String) -> Option<String> {
    Some(text).filter(|q| !q.trim().is_empty())
}

/// `info` texts are shown by `plugins inspect` and `check`: bounded too.
pub(crate) fn cap_plugin_info(info: &mut model::PluginInfo) {
    let text = |t: &mut String| truncate_in_place(t, MAX_SNAPSHOT_TEXT_BYTES);
    text(&mut info.name);
    text(&mut info.version);
    text(&mut info.description);
    info.config_keys.truncate(MAX_SNAPSHOT_LIST_LEN);
    info.default_hosts.truncate(MAX_SNAPSHOT_LIST_LEN);
    for key in &mut info.config_keys {
        text(&mut key.name);
        text(&mut key.description);
        if let Some(default) = &mut key.default_value {
            text(default);
        }
    }
    info.default_hosts.iter_mut().for_each(text);
}

/// A status code and name from a connector's catalogue, bounded.
pub(crate) fn cap_status_texts(code: &mut String, name: &mut String) {
    truncate_in_place(code, MAX_SNAPSHOT_TEXT_BYTES);
    truncate_in_place(name, MAX_SNAPSHOT_TEXT_BYTES);
}

/// A connector's catalogue keeps its first [`MAX_SNAPSHOT_LIST_LEN`] entries.
pub(crate) const MAX_STATUSES: usize = MAX_SNAPSHOT_LIST_LEN;

/// A capability's supported flag and reason, the reason bounded.
pub(crate) fn capability(supported: bool, reason: String) -> model::Capability {
    model::Capability {
        supported,
        reason: truncate(reason, MAX_SNAPSHOT_TEXT_BYTES),
    }
}

/// The longest default pace a sender may declare: the same ceiling the
/// configuration puts on a channel's `min_interval` (one hour); a declared
/// 49 days would silence the channel with nothing in the config to explain it.
pub(crate) const MAX_DECLARED_MIN_INTERVAL: SignedDuration = SignedDuration::from_hours(1);

/// A sender's declared default pace and daily cap, bounded: the interval at
/// most [`MAX_DECLARED_MIN_INTERVAL`], a cap of 0 (which would never send)
/// read as no cap. Each correction is logged naming the plugin.
pub(crate) fn sender_pace(
    plugin: &str,
    min_interval_ms: u32,
    daily_cap: Option<u32>,
) -> (SignedDuration, Option<u32>) {
    let declared = SignedDuration::from_millis(i64::from(min_interval_ms));
    let interval = if declared > MAX_DECLARED_MIN_INTERVAL {
        tracing::warn!(
            plugin,
            "plugin {plugin} declares a default interval of {declared:#} between sends; using the \
             ceiling of {MAX_DECLARED_MIN_INTERVAL:#} (a channel's min_interval can set its own)"
        );
        MAX_DECLARED_MIN_INTERVAL
    } else {
        declared
    };
    let cap = match daily_cap {
        Some(0) => {
            tracing::warn!(
                plugin,
                "plugin {plugin} declares a default daily cap of 0, which would never send; \
                 reading it as no cap (a channel's daily_cap can set one)"
            );
            None
        }
        cap => cap,
    };
    (interval, cap)
}

/// A connector's account keys: at most [`MAX_SNAPSHOT_LIST_LEN`] names, each
/// cut like any info text (a name that long matches no setting anyway).
pub(crate) fn account_keys(keys: Vec<String>) -> Vec<String> {
    keys.into_iter()
        .take(MAX_SNAPSHOT_LIST_LEN)
        .map(|key| truncate(key, MAX_SNAPSHOT_TEXT_BYTES))
        .collect()
}

/// A connector's platform identifier, bounded.
pub(crate) fn platform(text: String) -> String {
    truncate(text, MAX_SNAPSHOT_TEXT_BYTES)
}

/// A send receipt with each id cut to [`MAX_ID_BYTES`].
pub(crate) fn receipt(
    provider_message_id: Option<String>,
    recipient_id: Option<String>,
) -> SendReceipt {
    let id = |text: Option<String>| text.map(|t| truncate(t, MAX_ID_BYTES));
    SendReceipt {
        provider_message_id: id(provider_message_id),
        recipient_id: id(recipient_id),
    }
}

/// A plugin's `retry-after-ms` hint.
pub(crate) fn retry_after(ms: Option<u64>) -> Option<SignedDuration> {
    ms.map(|ms| SignedDuration::from_millis(i64::try_from(ms).unwrap_or(i64::MAX)))
}

/// The orders a poll is asked to look at, as handed to a connector: at most
/// [`MAX_LOOK_AT`], each at most [`MAX_ID_BYTES`] (no order id is longer).
pub(crate) fn look_at_request(look_at: &[String]) -> Vec<String> {
    look_at
        .iter()
        .filter(|id| id.len() <= MAX_ID_BYTES)
        .take(MAX_LOOK_AT)
        .cloned()
        .collect()
}

/// What a connector's `verify-push` named, bounded. A hint is never trusted:
/// ids longer than any order id can be are dropped (cutting one would name
/// another order), the list is cut to [`MAX_LOOK_AT`], an ignore reason is
/// cut like any shown text.
pub(crate) fn push_hint_look_at(ids: Vec<String>) -> PushHint {
    PushHint::LookAt(
        ids.into_iter()
            .filter(|id| id.len() <= MAX_ID_BYTES)
            .take(MAX_LOOK_AT)
            .collect(),
    )
}

/// A `push-hint.ignore` reason, bounded.
pub(crate) fn push_hint_ignore(reason: String) -> PushHint {
    PushHint::Ignore(truncate(reason, MAX_SNAPSHOT_TEXT_BYTES))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> RawSnapshot {
        RawSnapshot {
            id: "7".into(),
            number: "7".into(),
            status: model::OrderStatus {
                code: "pedido_pago".into(),
                name: "Pedido Pago".into(),
            },
            created_at: "2026-01-01T10:00:00-03:00".into(),
            updated_at: "2026-01-01T11:00:00Z".into(),
            customer: model::Customer::default(),
            subtotal: None,
            shipping: None,
            discount: None,
            total: Some(model::Money(1234)),
            currency: "BRL".into(),
            payment: None,
            shipments: Vec::new(),
            items: Vec::new(),
            boleto: None,
            pix: None,
            detailed: true,
            extras_json: String::new(),
        }
    }

    #[test]
    fn a_declared_pace_is_bounded_and_a_zero_cap_means_none() {
        assert_eq!(
            sender_pace("p", u32::MAX, Some(0)),
            (MAX_DECLARED_MIN_INTERVAL, None)
        );
        assert_eq!(
            sender_pace("p", 20_000, Some(250)),
            (SignedDuration::from_secs(20), Some(250))
        );
    }

    #[test]
    fn a_snapshot_is_bounded_and_parsed() {
        let mut raw = snapshot();
        raw.customer.name = "n".repeat(10_000);
        raw.customer.chat_id = Some("c".repeat(10_000));
        let order = order_from_snapshot(raw).expect("valid snapshot");
        assert!(order.customer.name.len() < 5_000);
        assert!(
            order
                .customer
                .chat_id
                .is_some_and(|c| c.ends_with("bytes]"))
        );
        assert_eq!(order.extras, serde_json::json!({}));
        assert_eq!(order.created_at.to_string(), "2026-01-01T13:00:00Z");
    }

    #[test]
    fn an_oversized_id_or_bad_timestamp_refuses_the_order() {
        let mut raw = snapshot();
        raw.id = "9".repeat(MAX_ID_BYTES + 1);
        assert!(matches!(
            order_from_snapshot(raw),
            Err(OutputError::IdTooLong { field: "id", .. })
        ));
        let mut raw = snapshot();
        raw.updated_at = "yesterday".into();
        assert!(matches!(
            order_from_snapshot(raw),
            Err(OutputError::Timestamp { .. })
        ));
    }

    #[test]
    fn push_hints_and_look_at_lists_are_bounded() {
        let mut ids: Vec<String> = (0..150).map(|n| n.to_string()).collect();
        ids.insert(0, "x".repeat(MAX_ID_BYTES + 1));
        let PushHint::LookAt(kept) = push_hint_look_at(ids.clone()) else {
            panic!("a look-at hint stays one");
        };
        assert_eq!(kept.len(), MAX_LOOK_AT);
        assert_eq!(kept.first().map(String::as_str), Some("0"));
        assert_eq!(look_at_request(&ids), kept);
        let PushHint::Ignore(reason) = push_hint_ignore("r".repeat(10_000)) else {
            panic!("an ignore hint stays one");
        };
        assert!(reason.len() < 5_000);
    }
}
