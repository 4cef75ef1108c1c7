//! The Nuvemshop demo story: a few orders of a fake Nuvemshop store moving
//! through pending → paid → packed → fulfilled with tracking, one cancelled,
//! after five old orders that a new store's first sync must record silently.
//! All personal data is invented; e-mails are at example.com.
//!
//! | t | number | change | expected |
//! |---|---|---|---|
//! | 21 s | 100 Beatriz | created, pending (Pix) | waiting-payment |
//! | 33 s | 101 Diego | created already paid (card) | order-paid |
//! | 45 s | 102 Fernanda | created, pending (boleto) | waiting-payment |
//! | 57 s | 100 | → paid | order-paid |
//! | 69 s | 101 | → packed | order-processing |
//! | 81 s | 102 | → cancelled | order-canceled |
//! | 93 s | 100 | → packed | order-processing |
//! | 105 s | 101 | → fulfilled + tracking | order-shipped |
//! | 117 s | 100 | → fulfilled + tracking | order-shipped |
//!
//! Steps of one order are at least 36 s apart, as in the LI demo, so the
//! daemon polls (and sends) between them. The steps fall 6 s after the LI
//! demo's (which run at 15 s, 27 s, …), so that with `--platform both` the
//! two stories alternate on the one WhatsApp channel (3 s apart in the demo
//! config) instead of colliding. The expectations assume the
//! connector's default recognition (`docs/platforms/nuvemshop.md`) and that
//! arauto names a Nuvemshop order by its `number`.

use std::fmt;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::model::{Customer, Order, OrderId, Product, payment, shipping, status};
use super::{FakeNuvemshopError, NsStore};
use crate::scenario::{ExpectedKind, ExpectedNotification, Speed};

/// The story's name (`arauto-sim --platform nuvemshop`).
pub const NS_DEMO: &str = "nuvemshop-demo";

/// Order `id`s of the story are this plus the order `number`.
const ID_BASE: OrderId = 1_500_000_000;

/// What a step does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NsChange {
    /// Create the order.
    Create(Box<Order>),
    /// `payment_status` → `paid`.
    Pay,
    /// `shipping_status` → `unfulfilled` (packed).
    Pack,
    /// `shipping_status` → `fulfilled` with a tracking number and URL.
    Fulfill {
        /// `shipping_tracking_number`.
        tracking: String,
    },
    /// `status` → `cancelled`.
    Cancel,
}

/// One step of the story.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NsDemoStep {
    /// Offset from the start.
    pub at: Duration,
    /// The order's `number`.
    pub number: u64,
    /// The change.
    pub change: NsChange,
    /// What arauto should send because of it.
    pub expected: Vec<ExpectedNotification>,
}

impl NsDemoStep {
    /// The order's `id`.
    pub fn order_id(&self) -> OrderId {
        ID_BASE + self.number
    }

    /// Short name of the change (`create`, `pay`, `pack`, `fulfill`, `cancel`).
    pub fn action(&self) -> &'static str {
        match self.change {
            NsChange::Create(_) => "create",
            NsChange::Pay => "pay",
            NsChange::Pack => "pack",
            NsChange::Fulfill { .. } => "fulfill",
            NsChange::Cancel => "cancel",
        }
    }
}

impl fmt::Display for NsDemoStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.number;
        match &self.change {
            NsChange::Create(order) => write!(
                f,
                "pedido #{n} of {} created: {}/{}/{}",
                order.customer.name, order.status, order.payment_status, order.shipping_status
            ),
            NsChange::Pay => write!(f, "pedido #{n} → payment_status paid"),
            NsChange::Pack => write!(f, "pedido #{n} → shipping_status unfulfilled (packed)"),
            NsChange::Fulfill { tracking } => write!(
                f,
                "pedido #{n} → shipping_status fulfilled, tracking {tracking}"
            ),
            NsChange::Cancel => write!(f, "pedido #{n} → status cancelled"),
        }
    }
}

/// The story: historical orders plus timed steps, applied to an [`NsStore`].
#[derive(Clone, Debug)]
pub struct NsDemo {
    history: Vec<Order>,
    steps: Vec<NsDemoStep>,
    next: usize,
}

struct Buyer {
    name: &'static str,
    email: &'static str,
    /// As typed at checkout.
    phone: &'static str,
    /// As arauto should normalise it.
    e164: &'static str,
}

impl Buyer {
    fn customer(&self) -> Customer {
        Customer::new(self.name).email(self.email).phone(self.phone)
    }
    fn expect(&self, kind: ExpectedKind, number: u64) -> ExpectedNotification {
        let first = self.name.split(' ').next().unwrap_or(self.name);
        ExpectedNotification::new(kind, number, first, Some(self.e164))
    }
}

const BEATRIZ: Buyer = Buyer {
    name: "Beatriz Almeida Rocha",
    email: "beatriz.rocha@example.com",
    phone: "+55 11 97654-3210",
    e164: "+5511976543210",
};
const DIEGO: Buyer = Buyer {
    name: "Diego Martins Ferreira",
    email: "diego.ferreira@example.com",
    // Unlike every LI demo buyer's, so `--platform both` keeps phones apart.
    phone: "(21) 97711-2233",
    e164: "+5521977112233",
};
const FERNANDA: Buyer = Buyer {
    name: "Fernanda Costa Lima",
    email: "fernanda.lima@example.com",
    phone: "31988887777",
    e164: "+5531988887777",
};

/// A Correios tracking number with a valid check digit.
fn tracking(serial: u32) -> String {
    crate::scenario::correios_code("NX", serial)
}

impl NsDemo {
    /// The story, with historical orders dated before `start`.
    pub fn new(start: Timestamp) -> Self {
        let mut history = Vec::new();
        for (i, number) in (95..100u64).enumerate() {
            let days = SignedDuration::from_hours(24 * (10 - i as i64));
            let at = start.checked_sub(days).unwrap_or(start);
            history.push(
                Order::new()
                    .id(ID_BASE + number)
                    .number(number)
                    .customer(Customer::new("Cliente Antigo").phone("+55 11 90000-0099"))
                    .states(status::CLOSED, payment::PAID, shipping::FULFILLED)
                    .tracking(&tracking(9_000 + i as u32), None)
                    .created_at(at)
                    .updated_at(at),
            );
        }
        // (method, gateway, gateway name, installments)
        type Paid = (&'static str, &'static str, &'static str, u32);
        let create = |number: u64,
                      buyer: &Buyer,
                      pay: &str,
                      (method, gateway, name, parts): Paid,
                      product: Product| {
            NsChange::Create(Box::new(
                Order::new()
                    .id(ID_BASE + number)
                    .number(number)
                    .customer(buyer.customer())
                    .payment_status(pay)
                    .payment(method, gateway, name, parts)
                    .products(vec![product]),
            ))
        };
        let step =
            |secs: u64, number: u64, change: NsChange, expected: Vec<ExpectedNotification>| {
                NsDemoStep {
                    at: Duration::from_secs(secs),
                    number,
                    change,
                    expected,
                }
            };
        let track_100 = tracking(4_210_001);
        let track_101 = tracking(4_210_002);
        let steps = vec![
            step(
                21,
                100,
                create(
                    100,
                    &BEATRIZ,
                    payment::PENDING,
                    ("pix", "nuvempago", "Nuvem Pago", 1),
                    Product::new("Tênis Corrida Leve", 32_990),
                ),
                vec![BEATRIZ.expect(ExpectedKind::WaitingPayment, 100)],
            ),
            step(
                33,
                101,
                create(
                    101,
                    &DIEGO,
                    payment::PAID,
                    ("credit_card", "mercadopago", "Mercado Pago", 3),
                    Product::new("Mochila Urbana 20L", 18_900).quantity(2),
                ),
                vec![DIEGO.expect(ExpectedKind::OrderPaid, 101)],
            ),
            step(
                45,
                102,
                create(
                    102,
                    &FERNANDA,
                    payment::PENDING,
                    ("boleto", "boleto_paghiper", "PagHiper", 1),
                    Product::new("Garrafa Térmica 1L", 9_990),
                ),
                vec![FERNANDA.expect(ExpectedKind::WaitingPayment, 102)],
            ),
            step(
                57,
                100,
                NsChange::Pay,
                vec![BEATRIZ.expect(ExpectedKind::OrderPaid, 100)],
            ),
            step(
                69,
                101,
                NsChange::Pack,
                vec![DIEGO.expect(ExpectedKind::OrderProcessing, 101)],
            ),
            step(
                81,
                102,
                NsChange::Cancel,
                vec![FERNANDA.expect(ExpectedKind::OrderCanceled, 102)],
            ),
            step(
                93,
                100,
                NsChange::Pack,
                vec![BEATRIZ.expect(ExpectedKind::OrderProcessing, 100)],
            ),
            step(
                105,
                101,
                NsChange::Fulfill {
                    tracking: track_101.clone(),
                },
                vec![
                    DIEGO
                        .expect(ExpectedKind::OrderShipped, 101)
                        .tracking(&track_101),
                ],
            ),
            step(
                117,
                100,
                NsChange::Fulfill {
                    tracking: track_100.clone(),
                },
                vec![
                    BEATRIZ
                        .expect(ExpectedKind::OrderShipped, 100)
                        .tracking(&track_100),
                ],
            ),
        ];
        let mut steps = steps;
        for (index, step) in steps.iter_mut().enumerate() {
            for expected in &mut step.expected {
                expected.step = index;
            }
        }
        Self {
            history,
            steps,
            next: 0,
        }
    }

    /// The story's name.
    pub fn name(&self) -> &'static str {
        NS_DEMO
    }

    /// The historical orders.
    pub fn history(&self) -> &[Order] {
        &self.history
    }

    /// The steps, in order.
    pub fn steps(&self) -> &[NsDemoStep] {
        &self.steps
    }

    /// Offset of the last step.
    pub fn duration(&self) -> Duration {
        self.steps.last().map_or(Duration::ZERO, |s| s.at)
    }

    /// Every expected notification, in step order.
    pub fn expected_notifications(&self) -> Vec<ExpectedNotification> {
        self.steps.iter().flat_map(|s| s.expected.clone()).collect()
    }

    /// Create the historical orders (without pushes mattering: nothing is registered yet).
    pub fn seed_history(&self, store: &NsStore) -> Result<usize, FakeNuvemshopError> {
        for order in &self.history {
            store.try_create_order(order.clone())?;
        }
        Ok(self.history.len())
    }

    /// Apply the next step now; `None` when the story is over.
    pub fn apply_next(
        &mut self,
        store: &NsStore,
    ) -> Result<Option<NsDemoStep>, FakeNuvemshopError> {
        let Some(step) = self.steps.get(self.next).cloned() else {
            return Ok(None);
        };
        self.next += 1;
        let id = step.order_id();
        match &step.change {
            NsChange::Create(order) => {
                store.try_create_order((**order).clone())?;
            }
            NsChange::Pay => {
                store.set_payment_status(id, payment::PAID)?;
            }
            NsChange::Pack => {
                store.pack(id)?;
            }
            NsChange::Fulfill { tracking } => {
                let url =
                    format!("https://rastreamento.correios.com.br/app/index.php?objeto={tracking}");
                store.fulfill(id, tracking, Some(&url))?;
            }
            NsChange::Cancel => {
                store.cancel(id, "customer")?;
            }
        }
        Ok(Some(step))
    }

    /// How long to wait before the next step, `elapsed` after the start, at `speed`.
    pub fn wait_before_next(&self, elapsed: Duration, speed: Speed) -> Option<Duration> {
        let step = self.steps.get(self.next)?;
        Some(speed.scale(step.at).saturating_sub(elapsed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nuvemshop::{FakeNuvemshop, StoreCredentials};

    #[test]
    fn the_story_plays_on_a_fake_store() {
        let ns = FakeNuvemshop::start_blocking().expect("fake");
        let store = ns.add_store(StoreCredentials::new(1, "t", "s"));
        let mut demo = NsDemo::new(ns.now());
        assert_eq!(demo.seed_history(&store), Ok(5));
        let mut applied = 0;
        while demo.apply_next(&store).expect("step").is_some() {
            applied += 1;
        }
        assert_eq!(applied, 9);
        let shipped = store.order(ID_BASE + 100).expect("order 100");
        assert_eq!(shipped.shipping_status, shipping::FULFILLED);
        assert!(shipped.tracking_number.is_some());
        let cancelled = store.order(ID_BASE + 102).expect("order 102");
        assert_eq!(cancelled.status, status::CANCELLED);
        assert_eq!(demo.expected_notifications().len(), 9);
        let steps = demo.steps();
        for pair in steps.windows(2) {
            assert!(pair[1].at >= pair[0].at + Duration::from_secs(12));
        }
    }
}
