//! Scripted stories for a fake Loja Integrada store: a timeline of order
//! changes applied at offsets from a start, plus the customer notifications
//! arauto is expected to send because of them.
//!
//! A [`Scenario`] holds *historical* orders (last modified before its start,
//! seeded at once: a new store's first sync must record them silently) and
//! [`Step`]s (create an order, move it to a status, fill in a tracking code,
//! add a shipment, touch it), each at an offset from the start. It is driven
//! either in real time by [`Scenario::run`] at a [`Speed`] factor (the
//! `arauto-sim` binary, the demo) or one step at a time by
//! [`Scenario::apply_next`] / [`Scenario::apply_next_scheduled`] (full-system
//! tests that wait for the daemon between steps).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use arauto_sim::li::{FakeLi, StoreAuth};
//! use arauto_sim::scenario::{Scenario, Speed};
//!
//! let li = FakeLi::start().await?;
//! li.use_system_clock();
//! let store = li.add_store(StoreAuth::api_key("demo-chave-api", "demo-chave-aplicacao"));
//! let mut demo = Scenario::demo(li.now());
//! demo.seed_history(&store)?;
//! // ... start arauto against li.base_url() and wait for its first sync ...
//! while let Some(step) = demo.apply_next(&store)? {
//!     // ... wait until the daemon polled and sent step.expected ...
//!     # let _ = step;
//! }
//! # Ok(()) }
//! ```
//!
//! # Expected notifications
//!
//! Each step lists the notifications it should cause
//! ([`Step::expected`]); [`Scenario::expected_notifications`] is their
//! concatenation in step order. They follow arauto's happy-path rules with
//! the default recognition of Loja Integrada statuses (see
//! docs/platforms/loja-integrada.md §Default recognition, and the rules in
//! `src/decide/mod.rs`) and assume that
//!
//! * every kind is enabled and sent without a delay (the demo config sets
//!   waiting-payment's default 30 min delay to 0) and outside quiet hours;
//! * the daemon polls between two steps of the same order and sends the
//!   resulting message before the order's next step is polled (otherwise a
//!   later step legitimately supersedes an earlier one) — the demo spaces
//!   steps at least 12 s apart, and steps of one order at least 36 s;
//! * the store was added to arauto before the scenario's first step, so only
//!   the historical orders are older than the first-sync cutoff.
//!
//! Orders without a phone produce expectations with `phone: None`: WhatsApp and
//! SMS channels record them as invalid events and send nothing, webhook and
//! e-mail channels still deliver ([`Scenario::expected_on_phone_channels`]
//! filters them out).

mod demo;

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use jiff::SignedDuration;
use jiff::civil::DateTime;
use serde::Serialize;

use crate::li::{FakeLiError, LiStore, Numero, Order, Shipment};

/// Correios tracking codes with valid check digits, shared with the Nuvemshop story.
pub(crate) use demo::correios as correios_code;
pub use demo::{DEMO, DEMO_HISTORY_LEN};

/// A notification kind, as arauto names it (`model::NotificationKind`'s
/// kebab-case strings, which this crate cannot import).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExpectedKind {
    /// `waiting-payment`.
    WaitingPayment,
    /// `order-paid`.
    OrderPaid,
    /// `order-processing`.
    OrderProcessing,
    /// `order-shipped`.
    OrderShipped,
    /// `ready-for-pickup`.
    ReadyForPickup,
    /// `order-delivered`.
    OrderDelivered,
    /// `order-canceled`.
    OrderCanceled,
    /// `order-refunded`.
    OrderRefunded,
    /// `tracking-updated`.
    TrackingUpdated,
}

impl ExpectedKind {
    /// The kebab-case name (`"order-shipped"`), equal to arauto's
    /// `NotificationKind::as_str()`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::WaitingPayment => "waiting-payment",
            Self::OrderPaid => "order-paid",
            Self::OrderProcessing => "order-processing",
            Self::OrderShipped => "order-shipped",
            Self::ReadyForPickup => "ready-for-pickup",
            Self::OrderDelivered => "order-delivered",
            Self::OrderCanceled => "order-canceled",
            Self::OrderRefunded => "order-refunded",
            Self::TrackingUpdated => "tracking-updated",
        }
    }
}

impl fmt::Display for ExpectedKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One customer notification a step should cause.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExpectedNotification {
    /// Index of the step in [`Scenario::steps`] (set when the step is added).
    pub step: usize,
    /// The order.
    pub numero: Numero,
    /// What arauto should send.
    pub kind: ExpectedKind,
    /// The customer's number in E.164 (`+5511987654321`) as arauto normalises
    /// it, whatever shape the store holds; `None` when the order has no phone
    /// (an invalid event for WhatsApp/SMS).
    pub phone: Option<String>,
    /// The customer's first name (the templates greet by it).
    pub first_name: String,
    /// Tracking codes the message must mention (order-shipped: every code known
    /// at that point; tracking-updated: the new code).
    pub tracking_codes: Vec<String>,
}

impl ExpectedNotification {
    /// `kind` for order `numero`, to a customer called `first_name` at `phone` (E.164).
    pub fn new(kind: ExpectedKind, numero: Numero, first_name: &str, phone: Option<&str>) -> Self {
        Self {
            step: 0,
            numero,
            kind,
            phone: phone.map(str::to_owned),
            first_name: first_name.to_owned(),
            tracking_codes: Vec::new(),
        }
    }

    /// The message must mention this tracking code.
    pub fn tracking(mut self, code: &str) -> Self {
        self.tracking_codes.push(code.to_owned());
        self
    }

    /// The phone as gateways such as Evolution API and Z-API receive it:
    /// E.164 digits without `+` (`5511987654321`).
    pub fn phone_digits(&self) -> Option<String> {
        self.phone
            .as_deref()
            .map(|p| p.chars().filter(char::is_ascii_digit).collect())
    }

    /// Whether a WhatsApp/SMS channel delivers it (the order has a usable phone).
    pub fn reaches_phone_channels(&self) -> bool {
        self.phone.is_some()
    }
}

/// What a step does to the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Create the order (its numero is the step's).
    Create(Box<Order>),
    /// Move the order to this status code.
    SetStatus(String),
    /// Move the order to a status and fill in a shipment's tracking code in
    /// one save, as a merchant marking an order shipped does.
    SetStatusWithTracking {
        /// The new status code.
        status: String,
        /// Index into `envios[]`.
        shipment: usize,
        /// The tracking code (`objeto`).
        code: String,
    },
    /// Set (or clear) one shipment's tracking code, status unchanged.
    SetTracking {
        /// Index into `envios[]`.
        shipment: usize,
        /// The tracking code; `None` clears it.
        code: Option<String>,
    },
    /// Add a shipment to the order (split shipments).
    AddShipment(Shipment),
    /// Bump `data_modificacao` without changing anything a customer sees.
    Touch,
}

impl Action {
    /// A short machine-readable name: `create`, `set-status`,
    /// `set-status-with-tracking`, `set-tracking`, `add-shipment`, `touch`.
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Create(_) => "create",
            Self::SetStatus(_) => "set-status",
            Self::SetStatusWithTracking { .. } => "set-status-with-tracking",
            Self::SetTracking { .. } => "set-tracking",
            Self::AddShipment(_) => "add-shipment",
            Self::Touch => "touch",
        }
    }

    /// The status code the order has after this action, when it sets one.
    pub fn status(&self) -> Option<&str> {
        match self {
            Self::Create(order) => Some(&order.status),
            Self::SetStatus(status) | Self::SetStatusWithTracking { status, .. } => Some(status),
            Self::SetTracking { .. } | Self::AddShipment(_) | Self::Touch => None,
        }
    }
}

/// One change of the story, at an offset from the scenario's start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// Offset from the start at speed 1.0.
    pub at: Duration,
    /// The order it changes.
    pub numero: Numero,
    /// The change.
    pub action: Action,
    /// The notifications it should cause, in the order they should arrive.
    pub expected: Vec<ExpectedNotification>,
}

impl Step {
    /// `action` on order `numero` at `at` after the start; a created order
    /// gets `numero` as its number.
    pub fn new(at: Duration, numero: Numero, action: Action) -> Self {
        let action = match action {
            Action::Create(mut order) => {
                order.numero = Some(numero);
                Action::Create(order)
            }
            other => other,
        };
        Self {
            at,
            numero,
            action,
            expected: Vec::new(),
        }
    }

    /// The step should cause `notification` (after the ones already listed).
    pub fn expecting(mut self, notification: ExpectedNotification) -> Self {
        self.expected.push(notification);
        self
    }
}

/// Human-readable: `pedido 1001 → pedido_pago`.
impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let numero = self.numero;
        match &self.action {
            Action::Create(order) => {
                write!(
                    f,
                    "pedido {numero} created at {}: {}",
                    order.status, order.customer.name
                )?;
                if let Some(payment) = &order.payment {
                    write!(f, ", {}", payment.name)?;
                }
                write!(f, ", {}", brl(order.total_cents()))?;
                if order.shipments.len() > 1 {
                    write!(f, ", {} envios", order.shipments.len())?;
                }
                if order.customer.mobile.is_none() && order.customer.phone.is_none() {
                    f.write_str(", no phone")?;
                }
                Ok(())
            }
            Action::SetStatus(status) => write!(f, "pedido {numero} → {status}"),
            Action::SetStatusWithTracking {
                status,
                shipment,
                code,
            } => write!(
                f,
                "pedido {numero} → {status}, envio {} tracking code {code}",
                shipment + 1
            ),
            Action::SetTracking {
                shipment,
                code: Some(code),
            } => write!(
                f,
                "pedido {numero} envio {} tracking code {code}",
                shipment + 1
            ),
            Action::SetTracking {
                shipment,
                code: None,
            } => write!(
                f,
                "pedido {numero} envio {} tracking code cleared",
                shipment + 1
            ),
            Action::AddShipment(shipment) => write!(
                f,
                "pedido {numero} gets another envio ({} {})",
                shipment.carrier, shipment.kind
            ),
            Action::Touch => write!(f, "pedido {numero} touched (only data_modificacao changes)"),
        }
    }
}

/// `R$ 1.234,56`.
pub(crate) fn brl(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    let reais = (cents / 100).to_string();
    let mut grouped = String::new();
    for (i, digit) in reais.chars().enumerate() {
        if i > 0 && (reais.len() - i).is_multiple_of(3) {
            grouped.push('.');
        }
        grouped.push(digit);
    }
    format!("{sign}R$ {grouped},{:02}", cents % 100)
}

/// A step as it was applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedStep {
    /// Index in [`Scenario::steps`].
    pub index: usize,
    /// The step's offset from the start at speed 1.0.
    pub at: Duration,
    /// The order it changed.
    pub numero: Numero,
    /// What it did.
    pub action: Action,
    /// `pedido 1001 → pedido_pago`.
    pub description: String,
    /// The order's `data_modificacao` after the step.
    pub modified_at: DateTime,
    /// The notifications it should cause.
    pub expected: Vec<ExpectedNotification>,
}

/// How [`Scenario::run`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    /// Every step was applied.
    Finished {
        /// Steps applied by this run.
        applied: usize,
    },
    /// The cancel future completed first; [`Scenario::run`] may be called
    /// again to continue.
    Cancelled {
        /// Steps applied by this run.
        applied: usize,
    },
}

/// How much faster than real time a scenario runs (1.0 = real time).
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct Speed(f64);

impl Speed {
    /// Real time.
    pub const REAL_TIME: Speed = Speed(1.0);
    /// The largest factor accepted (a 3-minute story in under a millisecond).
    pub const MAX: f64 = 1_000_000.0;

    /// A speed factor: finite, above 0, at most [`Speed::MAX`].
    pub fn new(factor: f64) -> Result<Self, InvalidSpeed> {
        if factor.is_finite() && factor > 0.0 && factor <= Self::MAX {
            Ok(Self(factor))
        } else {
            Err(InvalidSpeed(factor.to_string()))
        }
    }

    /// The factor.
    pub fn factor(self) -> f64 {
        self.0
    }

    /// How long `offset` of scenario time takes at this speed.
    pub fn scale(self, offset: Duration) -> Duration {
        Duration::from_secs_f64(offset.as_secs_f64() / self.0)
    }
}

impl Default for Speed {
    fn default() -> Self {
        Self::REAL_TIME
    }
}

impl fmt::Display for Speed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Accepts `2`, `2.5`, `10x`.
impl FromStr for Speed {
    type Err = InvalidSpeed;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let number = s.trim().trim_end_matches(['x', 'X']);
        number
            .parse::<f64>()
            .map_err(|_| InvalidSpeed(s.to_owned()))
            .and_then(Self::new)
    }
}

/// A speed that is not a positive number.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "speed must be a number above 0 and at most 1000000 (1.0 = real time, 10 = ten times faster), got {0:?}"
)]
pub struct InvalidSpeed(pub String);

/// A step or historical order the fake store refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScenarioError {
    /// A step failed.
    #[error("scenario {scenario:?}, step {index} (t+{}s: {description}): {source}", at.as_secs())]
    Step {
        /// The scenario.
        scenario: String,
        /// The step's index.
        index: usize,
        /// Its offset.
        at: Duration,
        /// `pedido 1001 → pedido_pago`.
        description: String,
        /// What the store said.
        #[source]
        source: FakeLiError,
    },
    /// A historical order could not be created.
    #[error("scenario {scenario:?}: cannot seed historical pedido {numero}: {source}")]
    History {
        /// The scenario.
        scenario: String,
        /// The order.
        numero: Numero,
        /// What the store said.
        #[source]
        source: FakeLiError,
    },
}

/// A story for one fake store: historical orders plus a timeline of steps,
/// with a cursor of the next step to apply.
#[derive(Clone, Debug)]
pub struct Scenario {
    name: String,
    start: DateTime,
    history: Vec<Order>,
    steps: Vec<Step>,
    next: usize,
    history_seeded: bool,
}

impl Scenario {
    /// Names [`Scenario::by_name`] knows.
    pub const NAMES: [&'static str; 1] = [DEMO];

    /// An empty scenario starting at `start` (naive São Paulo time, like the
    /// fake's clock).
    pub fn new(name: &str, start: DateTime) -> Self {
        Self {
            name: name.to_owned(),
            start,
            history: Vec::new(),
            steps: Vec::new(),
            next: 0,
            history_seeded: false,
        }
    }

    /// A built-in scenario by name (see [`Scenario::NAMES`]).
    pub fn by_name(name: &str, start: DateTime) -> Option<Self> {
        (name == DEMO).then(|| Self::demo(start))
    }

    /// The built-in demo: five orders moving through Loja Integrada statuses
    /// over about three minutes (a step-by-step happy path, a first sighting
    /// at "pago" that jumps to "enviado", a cancellation while awaiting
    /// payment, a split shipment whose codes arrive at different times, an
    /// order without a phone), one touch of an old order, and
    /// [`DEMO_HISTORY_LEN`] historical orders modified between 45 days and 2
    /// hours before `start`.
    pub fn demo(start: DateTime) -> Self {
        demo::build(start)
    }

    /// Add a historical order. One without `modified_at` is stamped a day
    /// before the start.
    ///
    /// # Panics
    ///
    /// When the order was modified at or after the start (a bug in the
    /// scenario: history must be older than the store's first sync).
    pub fn with_history(mut self, mut order: Order) -> Self {
        let modified = order
            .modified_at
            .unwrap_or_else(|| self.start.saturating_sub(SignedDuration::from_hours(24)));
        assert!(
            modified < self.start,
            "historical order {:?} of scenario {:?} is modified at {modified}, not before the start {}",
            order.numero,
            self.name,
            self.start
        );
        order.modified_at = Some(modified);
        self.history.push(order);
        self
    }

    /// Add a step, kept in time order (steps at the same offset keep the
    /// order they were added in).
    pub fn with_step(mut self, step: Step) -> Self {
        let position = self.steps.partition_point(|s| s.at <= step.at);
        self.steps.insert(position, step);
        for (index, step) in self.steps.iter_mut().enumerate() {
            for expected in &mut step.expected {
                expected.step = index;
            }
        }
        self
    }

    /// The scenario's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its start (naive São Paulo time); step offsets count from here.
    pub fn start(&self) -> DateTime {
        self.start
    }

    /// The historical orders.
    pub fn history(&self) -> &[Order] {
        &self.history
    }

    /// Every step, in time order.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The offset of the last step.
    pub fn duration(&self) -> Duration {
        self.steps.last().map(|s| s.at).unwrap_or_default()
    }

    /// Index of the next step to apply (= steps applied so far).
    pub fn next_index(&self) -> usize {
        self.next
    }

    /// The next step to apply.
    pub fn next_step(&self) -> Option<&Step> {
        self.steps.get(self.next)
    }

    /// Whether every step was applied.
    pub fn is_finished(&self) -> bool {
        self.next >= self.steps.len()
    }

    /// Every expected notification, in the order they should arrive.
    pub fn expected_notifications(&self) -> Vec<ExpectedNotification> {
        self.steps
            .iter()
            .flat_map(|s| s.expected.iter().cloned())
            .collect()
    }

    /// The expected notifications a WhatsApp/SMS channel delivers (orders
    /// without a phone left out), in order.
    pub fn expected_on_phone_channels(&self) -> Vec<ExpectedNotification> {
        self.expected_notifications()
            .into_iter()
            .filter(ExpectedNotification::reaches_phone_channels)
            .collect()
    }

    /// Create the historical orders in `store`, once; returns how many were
    /// created (0 when already seeded). The steps call it first anyway.
    pub fn seed_history(&mut self, store: &LiStore) -> Result<usize, ScenarioError> {
        if self.history_seeded {
            return Ok(0);
        }
        for order in &self.history {
            store
                .try_create_order(order.clone())
                .map_err(|source| ScenarioError::History {
                    scenario: self.name.clone(),
                    numero: order.numero.unwrap_or_default(),
                    source,
                })?;
        }
        self.history_seeded = true;
        Ok(self.history.len())
    }

    /// Apply the next step now, stamped with the fake's clock (the system
    /// clock when the fake follows it); `None` when finished. Seeds the
    /// history first if that has not happened. A failed step is not consumed.
    pub fn apply_next(&mut self, store: &LiStore) -> Result<Option<AppliedStep>, ScenarioError> {
        self.apply(store, None)
    }

    /// [`Scenario::apply_next`] with `data_modificacao` = start + the step's
    /// offset, whatever the fake's clock says (deterministic times for tests
    /// on a manual clock).
    pub fn apply_next_scheduled(
        &mut self,
        store: &LiStore,
    ) -> Result<Option<AppliedStep>, ScenarioError> {
        let Some(step) = self.next_step() else {
            return Ok(None);
        };
        let offset = SignedDuration::try_from(step.at).unwrap_or(SignedDuration::MAX);
        let at = self.start.saturating_add(offset);
        self.apply(store, Some(at))
    }

    fn apply(
        &mut self,
        store: &LiStore,
        at: Option<DateTime>,
    ) -> Result<Option<AppliedStep>, ScenarioError> {
        self.seed_history(store)?;
        let index = self.next;
        let Some(step) = self.steps.get(index) else {
            return Ok(None);
        };
        let modified_at = match apply_action(store, step.numero, &step.action, at) {
            Ok(modified_at) => modified_at,
            Err(source) => {
                return Err(ScenarioError::Step {
                    scenario: self.name.clone(),
                    index,
                    at: step.at,
                    description: step.to_string(),
                    source,
                });
            }
        };
        let applied = AppliedStep {
            index,
            at: step.at,
            numero: step.numero,
            action: step.action.clone(),
            description: step.to_string(),
            modified_at,
            expected: step.expected.clone(),
        };
        self.next += 1;
        Ok(Some(applied))
    }

    /// Apply the remaining steps in real time scaled by `speed`, calling
    /// `on_step` after each, until they are done or `cancel` completes.
    ///
    /// The clock starts when `run` is called: the next step is due after its
    /// offset minus the offset of the last step already applied (0 on a fresh
    /// scenario), divided by `speed`. Steps are stamped with the fake's clock.
    pub async fn run<C, F>(
        &mut self,
        store: &LiStore,
        speed: Speed,
        cancel: C,
        mut on_step: F,
    ) -> Result<RunOutcome, ScenarioError>
    where
        C: Future<Output = ()>,
        F: FnMut(&AppliedStep),
    {
        self.seed_history(store)?;
        let base = self
            .next
            .checked_sub(1)
            .and_then(|last| self.steps.get(last))
            .map(|s| s.at)
            .unwrap_or_default();
        let started = tokio::time::Instant::now();
        let mut applied = 0;
        tokio::pin!(cancel);
        while let Some(step) = self.next_step() {
            let due = started + speed.scale(step.at.saturating_sub(base));
            tokio::select! {
                biased;
                () = &mut cancel => return Ok(RunOutcome::Cancelled { applied }),
                () = tokio::time::sleep_until(due) => {}
            }
            if let Some(step) = self.apply_next(store)? {
                applied += 1;
                on_step(&step);
            }
        }
        Ok(RunOutcome::Finished { applied })
    }
}

fn modify(
    store: &LiStore,
    numero: Numero,
    at: Option<DateTime>,
    f: impl FnOnce(&mut Order),
) -> Result<DateTime, FakeLiError> {
    match at {
        Some(at) => store.modify_at(numero, at, f),
        None => store.modify(numero, f),
    }
}

fn check_shipment(store: &LiStore, numero: Numero, index: usize) -> Result<(), FakeLiError> {
    let count = store
        .order(numero)
        .ok_or(FakeLiError::UnknownOrder(numero))?
        .shipments
        .len();
    if index < count {
        Ok(())
    } else {
        Err(FakeLiError::NoSuchShipment { numero, index })
    }
}

fn apply_action(
    store: &LiStore,
    numero: Numero,
    action: &Action,
    at: Option<DateTime>,
) -> Result<DateTime, FakeLiError> {
    match action {
        Action::Create(order) => {
            let mut order = (**order).clone();
            order.numero = Some(numero);
            if let Some(at) = at {
                order.created_at = Some(at);
                order.modified_at = Some(at);
            }
            store.try_create_order(order)?;
            store
                .order(numero)
                .and_then(|o| o.modified_at)
                .ok_or(FakeLiError::UnknownOrder(numero))
        }
        Action::SetStatus(status) => modify(store, numero, at, |o| o.status.clone_from(status)),
        Action::SetStatusWithTracking {
            status,
            shipment,
            code,
        } => {
            check_shipment(store, numero, *shipment)?;
            modify(store, numero, at, |o| {
                o.status.clone_from(status);
                if let Some(s) = o.shipments.get_mut(*shipment) {
                    s.tracking = Some(code.clone());
                }
            })
        }
        Action::SetTracking { shipment, code } => {
            check_shipment(store, numero, *shipment)?;
            modify(store, numero, at, |o| {
                if let Some(s) = o.shipments.get_mut(*shipment) {
                    s.tracking.clone_from(code);
                }
            })
        }
        Action::AddShipment(shipment) => {
            modify(store, numero, at, |o| o.shipments.push(shipment.clone()))
        }
        Action::Touch => modify(store, numero, at, |_| {}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_formatted_like_brazilian_reais() {
        assert_eq!(brl(0), "R$ 0,00");
        assert_eq!(brl(5), "R$ 0,05");
        assert_eq!(brl(40420), "R$ 404,20");
        assert_eq!(brl(123_456_789), "R$ 1.234.567,89");
        assert_eq!(brl(-1990), "-R$ 19,90");
    }

    #[test]
    fn speed_accepts_positive_factors_only() {
        assert_eq!("10x".parse::<Speed>().map(Speed::factor), Ok(10.0));
        assert_eq!("2.5".parse::<Speed>().map(Speed::factor), Ok(2.5));
        for bad in ["0", "-1", "nan", "inf", "fast", "", "2000000"] {
            let err = bad.parse::<Speed>().err();
            assert!(err.is_some(), "{bad:?} accepted");
        }
        assert_eq!(
            Speed::new(4.0).map(|s| s.scale(Duration::from_secs(20))),
            Ok(Duration::from_secs(5))
        );
    }
}
