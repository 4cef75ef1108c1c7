//! Shared fixtures for the policy tests: the Loja Integrada status catalogue
//! (docs/platforms/loja-integrada.md §Default recognition), orders, store
//! policies and a tiny in-test queue.

use std::collections::{BTreeMap, BTreeSet};

use arauto::decide::{
    ChannelTarget, DecideInput, Decision, OrderRecord, PendingNotification, Recognition,
    StorePolicy, TimingPolicy, decide,
};
use arauto::model::PhoneProblem;
use arauto::model::{
    Capabilities, Capability, Customer, Item, Money, NotificationKind, Order, OrderStatus, Payment,
    PaymentFamily, Shipment, StatusEntry,
};
use jiff::{SignedDuration, Timestamp};

/// LI status codes with their default recognition (kind, priority, terminal).
pub const LI_STATUSES: &[(&str, &str, Option<NotificationKind>, u8, bool)] = &[
    ("pedido_efetuado", "Pedido Efetuado", None, 0, false),
    (
        "aguardando_pagamento",
        "Aguardando pagamento",
        Some(NotificationKind::WaitingPayment),
        1,
        false,
    ),
    (
        "pagamento_em_analise",
        "Pagamento em análise",
        Some(NotificationKind::WaitingPayment),
        1,
        false,
    ),
    (
        "pedido_pago",
        "Pedido Pago",
        Some(NotificationKind::OrderPaid),
        2,
        false,
    ),
    (
        "pagamento_em_disputa",
        "Pagamento em disputa",
        None,
        0,
        false,
    ),
    (
        "pedido_chargeback",
        "Pagamento em chargeback",
        None,
        0,
        false,
    ),
    (
        "pagamento_devolvido",
        "Pagamento devolvido",
        Some(NotificationKind::OrderRefunded),
        0,
        true,
    ),
    (
        "pedido_cancelado",
        "Pedido Cancelado",
        Some(NotificationKind::OrderCanceled),
        0,
        true,
    ),
    (
        "cancelamento_solicitado",
        "Cancelamento solicitado",
        None,
        0,
        false,
    ),
    (
        "faturado",
        "Faturado",
        Some(NotificationKind::OrderProcessing),
        3,
        false,
    ),
    (
        "em_producao",
        "Em produção",
        Some(NotificationKind::OrderProcessing),
        3,
        false,
    ),
    (
        "pedido_em_separacao",
        "Pedido em separação",
        Some(NotificationKind::OrderProcessing),
        3,
        false,
    ),
    (
        "pedido_enviado",
        "Pedido Enviado",
        Some(NotificationKind::OrderShipped),
        4,
        false,
    ),
    (
        "pronto_para_retirada",
        "Pedido pronto para retirada",
        Some(NotificationKind::ReadyForPickup),
        4,
        false,
    ),
    (
        "pedido_entregue",
        "Pedido Entregue",
        Some(NotificationKind::OrderDelivered),
        5,
        false,
    ),
    (
        "pagamento_devolvido_sem_retorno",
        "Pagamento devolvido sem retorno",
        Some(NotificationKind::OrderRefunded),
        0,
        true,
    ),
];

pub fn li_catalogue() -> Vec<StatusEntry> {
    LI_STATUSES
        .iter()
        .map(|(code, name, kind, priority, terminal)| StatusEntry {
            code: (*code).to_owned(),
            name: (*name).to_owned(),
            notification: *kind,
            happy_path_priority: *priority,
            terminal: *terminal,
        })
        .collect()
}

pub fn li_capabilities() -> Capabilities {
    let no = |reason: &str| Capability {
        supported: false,
        reason: reason.to_owned(),
    };
    Capabilities {
        tracking_codes: Capability {
            supported: true,
            reason: String::new(),
        },
        boleto_reminder: no(
            "a API da Loja Integrada não expõe linha digitável, vencimento nem link do boleto",
        ),
        pix_reminder: no("a API da Loja Integrada não expõe o código Pix nem sua validade"),
        abandoned_cart: no("a API da Loja Integrada não tem recurso de carrinho"),
    }
}

pub fn status_name(code: &str) -> String {
    LI_STATUSES
        .iter()
        .find(|s| s.0 == code)
        .map_or_else(|| code.to_owned(), |s| s.1.to_owned())
}

pub fn t0() -> Timestamp {
    // A Tuesday, 10:00 in São Paulo.
    "2025-06-10T13:00:00Z"
        .parse()
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

pub fn mins(n: i64) -> SignedDuration {
    SignedDuration::from_mins(n)
}

/// A detailed LI-like order.
pub fn order(id: &str, status: &str, updated_at: Timestamp) -> Order {
    Order {
        id: id.to_owned(),
        number: id.to_owned(),
        status: OrderStatus {
            code: status.to_owned(),
            name: status_name(status),
        },
        created_at: updated_at,
        updated_at,
        customer: Customer {
            name: "Ana Beatriz Conceição".to_owned(),
            first_name: "Ana".to_owned(),
            phones: vec!["(11) 98765-4321".to_owned()],
            email: Some("ana@example.com".to_owned()),
            chat_id: None,
        },
        subtotal: Some(Money(10_000)),
        shipping: Some(Money(1_500)),
        discount: Some(Money(0)),
        total: Some(Money(11_500)),
        currency: "BRL".to_owned(),
        payment: Some(Payment {
            code: "pagali-pix".to_owned(),
            name: "Pix".to_owned(),
            family: PaymentFamily::Pix,
            installments: None,
        }),
        shipments: vec![shipment("1", None)],
        items: vec![Item {
            sku: Some("SKU-1".to_owned()),
            name: "Caneca São Jorge".to_owned(),
            quantity: Some("1".to_owned()),
            unit_price: Some(Money(10_000)),
            total: Some(Money(10_000)),
        }],
        boleto: None,
        pix: None,
        detailed: true,
        extras: serde_json::json!({}),
    }
}

pub fn shipment(id: &str, code: Option<&str>) -> Shipment {
    Shipment {
        id: id.to_owned(),
        carrier: Some("Correios".to_owned()),
        method: Some("PAC".to_owned()),
        tracking_code: code.map(str::to_owned),
        tracking_url: None,
    }
}

pub fn all_status_kinds() -> BTreeSet<NotificationKind> {
    NotificationKind::ALL
        .into_iter()
        .filter(|k| !k.is_reserved())
        .collect()
}

pub fn whatsapp() -> ChannelTarget {
    ChannelTarget {
        name: "whatsapp".to_owned(),
        recipient: arauto::model::RecipientNeed::CustomerPhone,
    }
}

pub fn webhook() -> ChannelTarget {
    ChannelTarget {
        name: "webhook".to_owned(),
        recipient: arauto::model::RecipientNeed::Nothing,
    }
}

pub fn policy_with(overrides: &[(&str, Option<NotificationKind>)]) -> StorePolicy {
    let overrides: BTreeMap<String, Option<NotificationKind>> = overrides
        .iter()
        .map(|(code, kind)| ((*code).to_owned(), *kind))
        .collect();
    let recognition = match Recognition::new(
        "loja",
        "loja-integrada",
        &li_catalogue(),
        &li_capabilities(),
        &overrides,
    ) {
        Ok(r) => r,
        Err(errors) => panic!("fixture recognition: {errors:?}"),
    };
    StorePolicy {
        store_id: "loja".to_owned(),
        platform_identity: "loja-integrada shop 1".to_owned(),
        recognition,
        enabled: all_status_kinds(),
        channels: vec![whatsapp()],
        seed_cutoff: None,
        timing: TimingPolicy::default(),
        tracking_implies_shipped: true,
    }
}

pub fn policy() -> StorePolicy {
    policy_with(&[])
}

/// Drives `decide` the way the daemon does: keeps the record and the pending
/// jobs of each order, applies cancellations, and "sends" on demand.
#[derive(Default)]
pub struct Harness {
    pub records: BTreeMap<String, OrderRecord>,
    pub pending: BTreeMap<String, Vec<(PendingNotification, arauto::decide::PlannedNotification)>>,
    next_ref: u64,
}

impl Harness {
    pub fn poll(&mut self, policy: &StorePolicy, order: Order, now: Timestamp) -> Decision {
        self.poll_with_phone(policy, order, now, true)
    }

    pub fn poll_with_phone(
        &mut self,
        policy: &StorePolicy,
        order: Order,
        now: Timestamp,
        phone: bool,
    ) -> Decision {
        let id = order.id.clone();
        let pending: Vec<PendingNotification> = self
            .pending
            .get(&id)
            .map(|p| p.iter().map(|(p, _)| p.clone()).collect())
            .unwrap_or_default();
        let decision = decide(
            policy,
            DecideInput {
                previous: self.records.get(&id),
                order,
                pending: &pending,
                unusable_phone: (!phone).then_some(PhoneProblem::NoPhone),
                now,
            },
        );
        let jobs = self.pending.entry(id.clone()).or_default();
        jobs.retain(|(p, _)| !decision.cancel.iter().any(|c| c.job_id == p.job_id));
        for planned in &decision.planned {
            self.next_ref += 1;
            jobs.push((
                PendingNotification {
                    job_id: arauto::job::JobId::from_u128(u128::from(self.next_ref)),
                    kind: planned.kind,
                    priority: planned.priority,
                    channel: planned.channel.clone(),
                    stands_in_for: Vec::new(),
                },
                planned.clone(),
            ));
        }
        self.records.insert(id, decision.new_record.clone());
        decision
    }

    /// The dispatcher's fallback: the pending `kind` job of the order could
    /// not reach the customer on its channel and is replaced by one on
    /// `channel` standing in for it.
    pub fn fall_back(&mut self, order_id: &str, kind: NotificationKind, channel: &str) {
        let jobs = self.pending.entry(order_id.to_owned()).or_default();
        for (pending, planned) in jobs.iter_mut().filter(|(p, _)| p.kind == kind) {
            self.next_ref += 1;
            pending.job_id = arauto::job::JobId::from_u128(u128::from(self.next_ref));
            pending.stands_in_for.push(pending.channel.clone());
            pending.channel = channel.into();
            planned.channel = channel.into();
        }
    }

    /// Mark every pending job of the order as sent (removes it from pending).
    pub fn send_all(&mut self, order_id: &str) -> Vec<arauto::decide::PlannedNotification> {
        self.pending
            .remove(order_id)
            .unwrap_or_default()
            .into_iter()
            .map(|(_, p)| p)
            .collect()
    }

    pub fn pending_kinds(&self, order_id: &str) -> Vec<NotificationKind> {
        self.pending
            .get(order_id)
            .map(|p| p.iter().map(|(p, _)| p.kind).collect())
            .unwrap_or_default()
    }
}

pub fn kinds(decision: &Decision) -> Vec<NotificationKind> {
    decision.planned.iter().map(|p| p.kind).collect()
}
