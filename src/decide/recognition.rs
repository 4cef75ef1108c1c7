//! Recognition: which notification (if any) a platform status code means.
//!
//! The connector's catalogue ([`StatusEntry`]) gives the defaults: the
//! notification kind, the happy-path priority and whether the status is a
//! cancelled/refunded-style end state. A store may override the kind per code
//! (`[stores.<id>.recognition]` in TOML): `Some(kind)` maps a code — possibly a
//! custom status the catalogue does not know — to a kind, `None` switches a
//! default mapping off.
//!
//! How overrides combine with the catalogue:
//!
//! * mapped to a kind: the priority is that kind's happy-path priority (taken
//!   from the catalogue entries that map to the kind by default, else the fixed
//!   order waiting-payment 1, order-paid 2, order-processing 3, order-shipped 4,
//!   ready-for-pickup 4, order-delivered 5), and the status is terminal exactly
//!   when the kind is (order-canceled, order-refunded);
//! * switched off: the catalogue's priority and terminal flag stay. "Off" means
//!   "send nothing for this status", not "pretend the order did not move": a
//!   paid order whose order-paid message is off still must not get a pending
//!   "awaiting payment" message, and a cancelled one must not get "shipped";
//! * a code neither in the catalogue nor in the overrides is *unmapped*:
//!   nothing is sent and the caller reports it.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::model::{Capabilities, NotificationKind, StatusEntry};

/// Where a status's recognition came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecognitionSource {
    /// The connector's default catalogue.
    Connector,
    /// The store's `recognition` table.
    StoreOverride,
}

/// How one status code is recognised for a store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecognizedStatus {
    /// Platform status code.
    pub code: String,
    /// Display name (the code itself for custom statuses only known by override).
    pub name: String,
    /// Notification to plan when an order reaches this status; `None`: nothing.
    pub kind: Option<NotificationKind>,
    /// Happy-path rank, 1 = earliest; 0 = off the happy path.
    pub priority: u8,
    /// Cancelled/refunded-style end state.
    pub terminal: bool,
    /// Catalogue default or store override.
    pub source: RecognitionSource,
}

/// A store's recognition table. Cheap to clone: the tables are shared, so
/// stores with the same connector and no overrides hold one copy between
/// them (the builder reuses it) and a sweep's copy of the policy costs no
/// allocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recognition {
    tables: Arc<Tables>,
}

/// What [`Recognition`] shares between its clones.
#[derive(Debug, PartialEq, Eq)]
struct Tables {
    statuses: BTreeMap<String, RecognizedStatus>,
    kind_priorities: BTreeMap<NotificationKind, u8>,
}

/// A recognition override that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecognitionError {
    /// tracking-updated is raised by tracking codes, not by statuses.
    #[error(
        "stores.{store}.recognition.{code} = \"tracking-updated\": tracking-updated is sent when a shipment gets a \
         tracking code, it cannot be triggered by a status; map the status to \"order-shipped\" instead"
    )]
    TrackingIsNotAStatus {
        /// Store id.
        store: String,
        /// Status code whose override is wrong.
        code: String,
    },
    /// The store's connector cannot provide the data this kind needs.
    #[error(
        "stores.{store}.recognition.{code} = \"{kind}\": the {platform} connector cannot produce {kind}: {reason}"
    )]
    Unsupported {
        /// Store id.
        store: String,
        /// Status code whose override is wrong.
        code: String,
        /// The requested kind.
        kind: NotificationKind,
        /// Connector platform.
        platform: String,
        /// The connector's explanation.
        reason: String,
    },
}

/// The fixed happy-path order used when no catalogue entry defines a kind's priority.
pub const fn fallback_priority(kind: NotificationKind) -> u8 {
    match kind {
        NotificationKind::WaitingPayment => 1,
        NotificationKind::OrderPaid => 2,
        NotificationKind::OrderProcessing => 3,
        NotificationKind::OrderShipped | NotificationKind::ReadyForPickup => 4,
        NotificationKind::OrderDelivered => 5,
        _ => 0,
    }
}

impl Recognition {
    /// Build a store's table from the connector catalogue and the store's overrides.
    ///
    /// `platform` and `capabilities` come from the connector's `info()`; they
    /// reject overrides to kinds the platform cannot produce (e.g. a boleto
    /// reminder on Loja Integrada, which exposes no barcode or due date).
    pub fn new(
        store: &str,
        platform: &str,
        catalogue: &[StatusEntry],
        capabilities: &Capabilities,
        overrides: &BTreeMap<String, Option<NotificationKind>>,
    ) -> Result<Self, Vec<RecognitionError>> {
        let mut kind_priorities = BTreeMap::new();
        for entry in catalogue {
            if let Some(kind) = entry.notification
                && entry.happy_path_priority > 0
                && !entry.terminal
            {
                kind_priorities
                    .entry(kind)
                    .or_insert(entry.happy_path_priority);
            }
        }
        let priority_of = |kind: NotificationKind| -> u8 {
            if kind.is_terminal() {
                return 0;
            }
            kind_priorities
                .get(&kind)
                .copied()
                .unwrap_or_else(|| fallback_priority(kind))
        };

        let mut errors = Vec::new();
        for (code, kind) in overrides {
            let Some(kind) = kind else { continue };
            if *kind == NotificationKind::TrackingUpdated {
                errors.push(RecognitionError::TrackingIsNotAStatus {
                    store: store.to_owned(),
                    code: code.clone(),
                });
            } else if let Some(capability) = capabilities.for_kind(*kind)
                && !capability.supported
            {
                errors.push(RecognitionError::Unsupported {
                    store: store.to_owned(),
                    code: code.clone(),
                    kind: *kind,
                    platform: platform.to_owned(),
                    reason: capability.reason.clone(),
                });
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }

        let mut statuses: BTreeMap<String, RecognizedStatus> = catalogue
            .iter()
            .map(|entry| {
                let recognized = RecognizedStatus {
                    code: entry.code.clone(),
                    name: entry.name.clone(),
                    kind: entry
                        .notification
                        .filter(|k| *k != NotificationKind::TrackingUpdated),
                    priority: if entry.terminal {
                        0
                    } else {
                        entry.happy_path_priority
                    },
                    terminal: entry.terminal,
                    source: RecognitionSource::Connector,
                };
                (entry.code.clone(), recognized)
            })
            .collect();
        for (code, kind) in overrides {
            let base = statuses.get(code);
            let name = base.map_or_else(|| code.clone(), |b| b.name.clone());
            let recognized = match kind {
                Some(kind) => RecognizedStatus {
                    code: code.clone(),
                    name,
                    kind: Some(*kind),
                    priority: priority_of(*kind),
                    terminal: kind.is_terminal(),
                    source: RecognitionSource::StoreOverride,
                },
                None => RecognizedStatus {
                    code: code.clone(),
                    name,
                    kind: None,
                    priority: base.map_or(0, |b| b.priority),
                    terminal: base.is_some_and(|b| b.terminal),
                    source: RecognitionSource::StoreOverride,
                },
            };
            statuses.insert(code.clone(), recognized);
        }
        let mut kind_priorities_all = BTreeMap::new();
        for kind in NotificationKind::ALL {
            kind_priorities_all.insert(kind, priority_of(kind));
        }
        Ok(Self {
            tables: Arc::new(Tables {
                statuses,
                kind_priorities: kind_priorities_all,
            }),
        })
    }

    /// Recognition of a status code; `None` when the code is unmapped.
    pub fn recognise(&self, code: &str) -> Option<&RecognizedStatus> {
        self.tables.statuses.get(code)
    }

    /// The happy-path priority of a kind for this store (0 off the happy path).
    pub fn kind_priority(&self, kind: NotificationKind) -> u8 {
        self.tables
            .kind_priorities
            .get(&kind)
            .copied()
            .unwrap_or_else(|| fallback_priority(kind))
    }

    /// Every recognised status, for `arauto check` and reports.
    pub fn statuses(&self) -> impl Iterator<Item = &RecognizedStatus> {
        self.tables.statuses.values()
    }
}
