//! What contract 0.1 plugins never declared, filled in from arauto's built-in
//! table keyed on the plugin's name (deprecated; contract 0.2 plugins declare
//! it all themselves).
//!
//! This is the only place in `src/` that decides anything by a plugin's
//! name. It covers, for 0.1 plugins only:
//! * a sender's recipient: `webhook` and `telegram` deliver to a destination
//!   of their own, every other sender to the customer's phone;
//! * a sender's default pace: 20 s for WhatsApp gateways (`whatsapp-cloud`,
//!   `evolution-api`, `z-api`, any name containing `whatsapp`), as
//!   Notificações Inteligentes recommends to avoid bans; 0 for `webhook`;
//!   1 s for everything else. No default daily cap; not idempotent;
//! * a connector's request budget: 90 requests per minute for the
//!   `loja-integrada` platform (it allows 100 per store, see
//!   `docs/platforms/loja-integrada.md`), none otherwise; no push support;
//! * a sender's `event-json`: the JSON a 0.1 webhook-style sender has always
//!   received, with the stored order's serde form inside.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use jiff::SignedDuration;

use crate::model::{ConnectorInfo, DeclaredBy, OrderEvent, PluginInfo, RecipientNeed, SenderInfo};

/// WhatsApp numbers get banned for bursts: Notificações Inteligentes
/// recommends at least this between two messages.
const WHATSAPP_MIN_INTERVAL: SignedDuration = SignedDuration::from_secs(20);
/// Other senders that still deliver to people.
const DEFAULT_MIN_INTERVAL: SignedDuration = SignedDuration::from_secs(1);
/// Loja Integrada allows 100 requests per minute per store; keep a margin for
/// the shop's other integrations.
const LOJA_INTEGRADA_REQUESTS_PER_MINUTE: u32 = 90;

/// A 0.1 sender's declarations, from the name table. Both names count: the
/// one the plugin reports and its file's (the `plugin = "…"` of the channel's
/// configuration), as the daemon keyed on either before contract 0.2. Where
/// they disagree the table takes the more careful answer: WhatsApp's pace if
/// either looks like WhatsApp, no recipient check if either is a
/// destination-of-its-own sender (the plugin still refuses what it cannot
/// deliver).
pub(crate) fn sender_info(plugin: PluginInfo, file_name: &str) -> SenderInfo {
    let names = [plugin.name.as_str(), file_name];
    let recipient = if names.iter().any(|n| matches!(*n, "webhook" | "telegram")) {
        RecipientNeed::Nothing
    } else {
        RecipientNeed::CustomerPhone
    };
    let whatsapp = |name: &str| {
        matches!(name, "whatsapp-cloud" | "evolution-api" | "z-api") || name.contains("whatsapp")
    };
    let default_min_interval = if names.iter().any(|n| whatsapp(n)) {
        WHATSAPP_MIN_INTERVAL
    } else if names.contains(&"webhook") {
        SignedDuration::ZERO
    } else {
        DEFAULT_MIN_INTERVAL
    };
    SenderInfo {
        plugin,
        recipient,
        default_min_interval,
        default_daily_cap: None,
        idempotent: false,
        declared_by: DeclaredBy::NameTable,
    }
}

/// A 0.1 connector's request budget and push support, from the name table.
pub(crate) fn fill_connector_info(info: &mut ConnectorInfo) {
    info.requests_per_minute =
        (info.platform == "loja-integrada").then_some(LOJA_INTEGRADA_REQUESTS_PER_MINUTE);
    info.push = Default::default();
    info.account_keys = None;
}

/// Say once per file and process, when a 0.1 plugin file is loaded, that it
/// relies on the table (reloads load it again; the journal needs it once).
pub(crate) fn warn_deprecated(plugin: &str, path: &Path) {
    static WARNED: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());
    let first = WARNED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(path.to_owned());
    if !first {
        return;
    }
    tracing::warn!(
        plugin,
        path = %path.display(),
        "plugin {plugin} ({}) is built against plugin contract 0.1, which is deprecated; \
         its recipient, pace and request budget come from arauto's built-in table by plugin name; \
         rebuild it against 0.2 (plugins/wit/since_v0.2.0, or the arauto plugin SDK) so it declares them itself",
        path.display()
    );
}

/// The `event-json` a 0.1 sender receives: the same document as before
/// contract 0.2 (the order in its stored serde form).
pub(crate) fn event_json(event: &OrderEvent) -> serde_json::Value {
    serde_json::json!({
        "notification": event.notification.as_str(),
        "job_id": event.job_id,
        "store": {
            "id": event.store.id,
            "description": event.store.description,
            "platform": event.store.platform,
        },
        "status_code": event.status_code,
        "tracking": event.tracking,
        "order": event.order,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PluginKind;

    fn named(name: &str) -> PluginInfo {
        PluginInfo {
            name: name.into(),
            version: "1.0.0".into(),
            kind: PluginKind::Sender,
            description: String::new(),
            config_keys: Vec::new(),
            default_hosts: Vec::new(),
        }
    }

    #[test]
    fn the_name_table_keeps_todays_guesses() {
        let info = |name| sender_info(named(name), name);
        assert_eq!(info("webhook").recipient, RecipientNeed::Nothing);
        assert_eq!(info("telegram").recipient, RecipientNeed::Nothing);
        assert_eq!(info("twilio-sms").recipient, RecipientNeed::CustomerPhone);
        assert_eq!(info("my-sender").recipient, RecipientNeed::CustomerPhone);
        assert_eq!(info("z-api").default_min_interval, WHATSAPP_MIN_INTERVAL);
        assert_eq!(
            info("acme-whatsapp").default_min_interval,
            WHATSAPP_MIN_INTERVAL
        );
        assert_eq!(info("webhook").default_min_interval, SignedDuration::ZERO);
        assert_eq!(info("telegram").default_min_interval, DEFAULT_MIN_INTERVAL);
        assert_eq!(info("telegram").declared_by, DeclaredBy::NameTable);
        assert!(!info("z-api").idempotent);
    }

    #[test]
    fn a_file_name_that_disagrees_with_the_reported_name_gets_the_careful_answer() {
        // `plugin = "acme-whatsapp"` loading a file whose info says "acme-gw".
        let renamed = sender_info(named("acme-gw"), "acme-whatsapp");
        assert_eq!(renamed.default_min_interval, WHATSAPP_MIN_INTERVAL);
        assert_eq!(renamed.recipient, RecipientNeed::CustomerPhone);
        let staff = sender_info(named("hook-bridge"), "webhook");
        assert_eq!(staff.recipient, RecipientNeed::Nothing);
    }
}
