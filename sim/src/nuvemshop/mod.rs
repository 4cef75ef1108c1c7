//! A fake Nuvemshop (Tiendanube) API, as strict as the real one where
//! arauto's connector can trip: the `Authentication` header name, the
//! required `User-Agent`, `per_page` ≤ 200, the leaky-bucket rate limit and
//! its headers, pages that shift under live updates, HMAC-signed webhooks.
//!
//! [`FakeNuvemshop`] is a real HTTP server on 127.0.0.1. Tests and the demo
//! drive it from Rust, like the LI fake: they add stores, create orders,
//! move them through `payment_status`/`shipping_status`/`status`, register
//! faults, and read the request log and the per-store counters.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use arauto_sim::nuvemshop::{FakeNuvemshop, Order, Customer, StoreCredentials, Route, payment};
//! use arauto_sim::li::Fault;
//!
//! let ns = FakeNuvemshop::start().await?;
//! let store = ns.add_store(StoreCredentials::new(123456, "token-da-loja", "segredo-do-app"));
//! let id = store.create_order(Order::new().customer(Customer::new("João").phone("+55 21 90000-0002")));
//! store.set_payment_status(id, payment::PAID)?;
//! store.pack(id)?;
//! store.fulfill(id, "AA123456785BR", Some("https://rastreamento.correios.com.br/?objeto=AA123456785BR"))?;
//! store.fail(Route::List, Fault::Status(503), 1);
//! // point the connector at ns.base_url() (…/v1) and store id 123456 ...
//! assert_eq!(store.stats().throttled, 0);
//! # Ok(()) }
//! ```
//!
//! What the fake answers, and which facts of the real API it rests on, is in
//! docs/platforms/nuvemshop-sim.md.

mod bucket;
mod demo;
mod model;
mod push;
mod render;
mod server;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

pub use jiff::Timestamp;
use serde_json::Value;

pub use crate::li::Fault;
pub use bucket::{BucketAnswer, RateLimit};
pub use demo::{NS_DEMO, NsChange, NsDemo, NsDemoStep};
pub use model::{Customer, FulfillmentOrder, Order, OrderId, Product, payment, shipping, status};
pub use push::{
    PushOptions, PushOutcome, PushRecord, SIGNATURE_HEADER, WRONG_SECRET, Webhook, WebhookEvent,
    signature,
};

use crate::serving::Serving;

/// The webhook events the fake accepts and raises for orders.
pub const ORDER_EVENTS: [&str; 6] = [
    "order/created",
    "order/updated",
    "order/paid",
    "order/packed",
    "order/fulfilled",
    "order/cancelled",
];

/// Identifies a fake store within one [`FakeNuvemshop`] (not the Nuvemshop `store_id`).
pub type NsStoreId = usize;

/// What a store accepts: its Nuvemshop id, the access token of the app
/// installed on it, and that app's secret (the webhook signing key).
#[derive(Clone, PartialEq, Eq)]
pub struct StoreCredentials {
    /// The `store_id` (`user_id` of the OAuth answer) in every path.
    pub store_id: u64,
    /// The token sent as `Authentication: bearer <token>`.
    pub access_token: String,
    /// The app's client secret.
    pub app_secret: String,
}

impl StoreCredentials {
    /// Credentials of one store with one app.
    pub fn new(store_id: u64, access_token: &str, app_secret: &str) -> Self {
        Self {
            store_id,
            access_token: access_token.to_owned(),
            app_secret: app_secret.to_owned(),
        }
    }
}

impl fmt::Debug for StoreCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Secrets stay out of test output.
        f.debug_struct("StoreCredentials")
            .field("store_id", &self.store_id)
            .finish_non_exhaustive()
    }
}

/// Result ordering of `GET /orders`. Nuvemshop does not document its
/// default; the fake assumes newest-created first, as the store admin lists
/// orders. Every ordering shifts under live changes in its own way; see the
/// sim doc.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ListOrder {
    /// Newest `created_at` first, ties by `id` descending (the default).
    #[default]
    CreatedDesc,
    /// Oldest `created_at` first, ties by `id`.
    CreatedAsc,
    /// Oldest `updated_at` first, ties by `id`: an order updated mid-sweep
    /// jumps to the last page and shifts unread rows back.
    UpdatedAsc,
    /// Newest `updated_at` first, ties by `id` descending.
    UpdatedDesc,
}

/// How timestamps are rendered (the docs show all three).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimeFormat {
    /// `2024-05-10T09:00:00-03:00` (São Paulo offset, with a colon; the default).
    #[default]
    ColonOffset,
    /// `2024-05-10T09:00:00-0300`.
    BasicOffset,
    /// `2024-05-10T12:00:00+0000`.
    Utc,
}

/// The words `shipping_status` is rendered with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ShippingVocabulary {
    /// `unpacked`, `unfulfilled` (packed), `fulfilled`: the values the
    /// reference's property table lists (the default).
    #[default]
    Fulfillment,
    /// The reference's JSON examples: `unshipped` before shipping, packed or
    /// not (only `next_action` = `waiting_shipment` tells packed apart), and
    /// `shipped` after.
    Examples,
}

/// Shape switches of one fake store.
#[derive(Clone, Debug, PartialEq)]
pub struct StoreOptions {
    /// Ordering of `GET /orders`.
    pub order: ListOrder,
    /// Page size when `per_page` is absent (Nuvemshop: 30).
    pub default_per_page: usize,
    /// Largest `per_page` (Nuvemshop: 200); above it the fake answers 422.
    pub max_per_page: usize,
    /// The bucket of this store's app; `None` = unlimited.
    pub rate_limit: Option<RateLimit>,
    /// Timestamp rendering.
    pub time_format: TimeFormat,
    /// Also accept `Authorization: Bearer <token>` (newer docs show it in
    /// some examples); off, only `Authentication` counts.
    pub accept_authorization_header: bool,
    /// Read `payment_status`'s default "any" as the oldest Order page does:
    /// only authorized, pending and paid orders are listed unless the
    /// request filters by `payment_status` (refunded, voided and abandoned
    /// orders then only show through the detail and pushes). Off by default.
    pub legacy_payment_filter: bool,
    /// Answer a list with no rows at all (page 1 included) with 404 "Last
    /// page is 0", as Nuvemshop reportedly does, instead of `200 []`. On by
    /// default: the harsher of the two, and clients must take both.
    pub empty_list_404: bool,
    /// The deepest row a list may reach: `page × per_page` beyond it answers
    /// 422 (the newer reference says the order list refuses more than
    /// 10,000; the status is assumed). `None`: no cap.
    pub max_list_depth: Option<usize>,
    /// How `shipping_status` is spelt (`next_action` is always rendered).
    pub shipping_vocabulary: ShippingVocabulary,
    /// Read `updated_at_min`/`updated_at_max` as exclusive bounds (the docs
    /// do not say; the default is inclusive).
    pub exclusive_updated_bounds: bool,
    /// List rows carry no state fields (`status`, `payment_status`,
    /// `shipping_status`, `next_action`): only the detail has them, as an
    /// API answering a `fields` subset would. Off by default.
    pub list_rows_without_state: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            order: ListOrder::default(),
            default_per_page: 30,
            max_per_page: 200,
            rate_limit: Some(RateLimit::standard()),
            time_format: TimeFormat::default(),
            accept_authorization_header: false,
            legacy_payment_filter: false,
            empty_list_404: true,
            max_list_depth: Some(10_000),
            shipping_vocabulary: ShippingVocabulary::default(),
            exclusive_updated_bounds: false,
            list_rows_without_state: false,
        }
    }
}

/// Which requests a fault or an action applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Every request of the store.
    Any,
    /// `GET /orders`.
    List,
    /// `GET /orders/{id}`.
    Detail,
    /// `/webhooks` and `/webhooks/{id}`.
    Webhooks,
    /// `GET /store` (the credential check).
    Store,
}

/// Which endpoint a request hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /{store_id}/orders`.
    List,
    /// `GET /{store_id}/orders/{id}`.
    Detail(OrderId),
    /// `/{store_id}/webhooks`.
    Webhooks,
    /// `/{store_id}/webhooks/{id}`.
    Webhook(u64),
    /// `GET /{store_id}/store`.
    Store,
    /// Anything else (404).
    Unknown,
}

impl Endpoint {
    fn matches(self, route: Route) -> bool {
        matches!(
            (route, self),
            (Route::Any, _)
                | (Route::List, Endpoint::List)
                | (Route::Detail, Endpoint::Detail(_))
                | (Route::Webhooks, Endpoint::Webhooks | Endpoint::Webhook(_))
                | (Route::Store, Endpoint::Store)
        )
    }
}

/// One request as the fake received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `GET`, `POST`...
    pub method: String,
    /// The path as sent, e.g. `/v1/123456/orders`.
    pub path: String,
    /// Decoded query parameters, in order.
    pub query: Vec<(String, String)>,
    /// Whether an `Authentication` header was sent (its value is a secret).
    pub sent_authentication: bool,
    /// Whether an `Authorization` header was sent.
    pub sent_authorization: bool,
    /// The `User-Agent` sent.
    pub user_agent: Option<String>,
    /// The `store_id` of the path.
    pub path_store_id: Option<u64>,
    /// The fake store the credentials resolved to (for the path's store).
    pub store: Option<NsStoreId>,
    /// What the path addressed.
    pub endpoint: Endpoint,
    /// The status answered.
    pub status: u16,
    /// The bucket's answer, when the request reached it.
    pub rate_limit: Option<BucketAnswer>,
    /// When it arrived (system clock).
    pub at: jiff::Timestamp,
}

impl RecordedRequest {
    /// The first value of query parameter `name`.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    /// A `GET /orders`.
    pub fn is_list(&self) -> bool {
        self.endpoint == Endpoint::List
    }
    /// The order id of a `GET /orders/{id}`.
    pub fn detail_id(&self) -> Option<OrderId> {
        match self.endpoint {
            Endpoint::Detail(id) => Some(id),
            _ => None,
        }
    }
}

/// Counters of one store, kept even with the request log off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Requests that named this store with its token.
    pub requests: u64,
    /// Of those, answered 429 (bucket empty or injected).
    pub throttled: u64,
}

/// A test asked for something the fake store does not have.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FakeNuvemshopError {
    /// No order with this id.
    #[error("fake Nuvemshop store {store_id} has no order {id}")]
    UnknownOrder {
        /// The store.
        store_id: u64,
        /// The order id asked for.
        id: OrderId,
    },
    /// `create_order` with an id that already exists.
    #[error("fake Nuvemshop store {store_id} already has an order {id}")]
    DuplicateOrder {
        /// The store.
        store_id: u64,
        /// The order id.
        id: OrderId,
    },
}

/// The fake's clock (UTC instants; rendered at −03:00).
#[derive(Clone, Copy, Debug)]
enum Clock {
    Manual(Timestamp),
    System,
}

impl Clock {
    fn now(&self) -> Timestamp {
        match self {
            Self::Manual(at) => *at,
            Self::System => whole_seconds(Timestamp::now()),
        }
    }

    /// "Now" for a mutation; a manual clock then moves 1 s (the API's
    /// resolution) so the next mutation gets a later `updated_at`.
    fn stamp(&mut self) -> Timestamp {
        let at = self.now();
        if let Self::Manual(t) = self {
            *t = t
                .checked_add(jiff::SignedDuration::from_secs(1))
                .unwrap_or(*t);
        }
        at
    }
}

/// Nuvemshop timestamps have whole seconds.
fn whole_seconds(at: Timestamp) -> Timestamp {
    Timestamp::from_second(at.as_second()).unwrap_or(at)
}

/// 2024-05-10T12:00:00Z, the SDK test harness's clock (09:00 in São Paulo).
fn default_start() -> Timestamp {
    Timestamp::from_second(1_715_342_400).unwrap_or(Timestamp::UNIX_EPOCH)
}

type RequestAction = Box<dyn FnOnce(&NsStore) + Send>;

struct PendingFault {
    route: Route,
    fault: Fault,
    remaining: usize,
}

struct PendingAction {
    route: Route,
    countdown: usize,
    action: RequestAction,
}

/// One fake store's state.
struct StoreState {
    credentials: StoreCredentials,
    options: StoreOptions,
    orders: BTreeMap<OrderId, Order>,
    overrides: BTreeMap<OrderId, Vec<(String, Value)>>,
    faults: Vec<PendingFault>,
    actions: Vec<PendingAction>,
    auth_failure: Option<u16>,
    buckets: HashMap<String, bucket::Bucket>,
    stats: StoreStats,
    webhooks: Vec<Webhook>,
    next_id: OrderId,
    next_number: u64,
    next_customer_id: u64,
    next_webhook_id: u64,
}

impl StoreState {
    fn new(credentials: StoreCredentials) -> Self {
        Self {
            credentials,
            options: StoreOptions::default(),
            orders: BTreeMap::new(),
            overrides: BTreeMap::new(),
            faults: Vec::new(),
            actions: Vec::new(),
            auth_failure: None,
            buckets: HashMap::new(),
            stats: StoreStats::default(),
            webhooks: Vec::new(),
            next_id: 1_500_000_001,
            next_number: 100,
            next_customer_id: 80_000_001,
            next_webhook_id: 9_000_001,
        }
    }

    fn take_fault(&mut self, endpoint: Endpoint) -> Option<Fault> {
        let index = self.faults.iter().position(|f| endpoint.matches(f.route))?;
        let pending = &mut self.faults[index];
        let fault = pending.fault.clone();
        pending.remaining = pending.remaining.saturating_sub(1);
        if pending.remaining == 0 {
            self.faults.remove(index);
        }
        Some(fault)
    }

    fn due_actions(&mut self, endpoint: Endpoint) -> Vec<RequestAction> {
        let mut due = Vec::new();
        let mut index = 0;
        while index < self.actions.len() {
            let pending = &mut self.actions[index];
            if endpoint.matches(pending.route) {
                pending.countdown = pending.countdown.saturating_sub(1);
                if pending.countdown == 0 {
                    due.push(self.actions.remove(index).action);
                    continue;
                }
            }
            index += 1;
        }
        due
    }

    /// Pour one request into the bucket of `token`.
    fn pour(&mut self, token: &str, now: Instant) -> Option<BucketAnswer> {
        let limit = self.options.rate_limit?;
        Some(
            self.buckets
                .entry(token.to_owned())
                .or_insert_with(|| bucket::Bucket::new(now))
                .pour(limit, now),
        )
    }

    fn push_change(
        &self,
        index: NsStoreId,
        id: OrderId,
        events: &[&'static str],
        pushes: &mut push::PushState,
    ) {
        if self.webhooks.is_empty() || events.is_empty() {
            return;
        }
        pushes.schedule(
            &push::Change {
                store: index,
                store_id: self.credentials.store_id,
                order_id: id,
                events,
                app_secret: &self.credentials.app_secret,
            },
            &self.webhooks,
        );
    }
}

/// The events a change from `before` to `after` raises, besides `order/updated`.
fn change_events(before: &Order, after: &Order) -> Vec<&'static str> {
    let mut events = vec!["order/updated"];
    let became = |old: &str, new: &str, value: &str| old != value && new == value;
    if became(&before.payment_status, &after.payment_status, payment::PAID) {
        events.push("order/paid");
    }
    if became(
        &before.shipping_status,
        &after.shipping_status,
        shipping::UNFULFILLED,
    ) {
        events.push("order/packed");
    }
    if became(
        &before.shipping_status,
        &after.shipping_status,
        shipping::FULFILLED,
    ) {
        events.push("order/fulfilled");
    }
    if became(&before.status, &after.status, status::CANCELLED) {
        events.push("order/cancelled");
    }
    events
}

struct State {
    clock: Clock,
    stores: Vec<StoreState>,
    /// Nuvemshop `store_id` → fake store.
    by_store_id: HashMap<u64, NsStoreId>,
    log: Vec<RecordedRequest>,
    record_requests: bool,
    pushes: push::PushState,
}

struct Shared {
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not wedge the server for the others.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The running fake Nuvemshop API. Dropping it stops the server.
pub struct FakeNuvemshop {
    shared: Arc<Shared>,
    serving: Serving,
}

impl fmt::Debug for FakeNuvemshop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeNuvemshop")
            .field("addr", &self.serving.addr())
            .finish_non_exhaustive()
    }
}

impl FakeNuvemshop {
    /// Start on 127.0.0.1 with an OS-assigned port, on the current tokio runtime.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Start on `addr`, on the current tokio runtime.
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                clock: Clock::Manual(default_start()),
                stores: Vec::new(),
                by_store_id: HashMap::new(),
                log: Vec::new(),
                record_requests: true,
                pushes: push::PushState::new(),
            }),
        });
        let app = server::router(Arc::clone(&shared));
        let serving = Serving::start(addr, app, "fake Nuvemshop").await?;
        Ok(Self { shared, serving })
    }

    /// Start on a runtime of its own, for synchronous tests. Do not drop the
    /// handle inside an async context.
    pub fn start_blocking() -> std::io::Result<Self> {
        let runtime = Serving::own_runtime("fake-nuvemshop")?;
        let mut fake = runtime.block_on(Self::start())?;
        fake.serving.keep_runtime(runtime);
        Ok(fake)
    }

    /// `http://127.0.0.1:<port>/v1`: the API base; store paths go below it
    /// (`/v1/{store_id}/orders`). Dated versions (`/2025-03`) answer the same.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.serving.addr())
    }

    /// `http://127.0.0.1:<port>`, without the version.
    pub fn origin(&self) -> String {
        format!("http://{}", self.serving.addr())
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.serving.addr()
    }

    /// Add a store. A `store_id` already in use is taken over by the new store.
    pub fn add_store(&self, credentials: StoreCredentials) -> NsStore {
        let mut state = self.shared.lock();
        let index = state.stores.len();
        state.by_store_id.insert(credentials.store_id, index);
        state.stores.push(StoreState::new(credentials));
        NsStore {
            shared: Arc::clone(&self.shared),
            index,
        }
    }

    /// The handle of the store with this Nuvemshop `store_id`.
    pub fn store(&self, store_id: u64) -> Option<NsStore> {
        let index = *self.shared.lock().by_store_id.get(&store_id)?;
        Some(NsStore {
            shared: Arc::clone(&self.shared),
            index,
        })
    }

    /// The fake's current time.
    pub fn now(&self) -> Timestamp {
        self.shared.lock().clock.now()
    }

    /// Set the (manual) clock; sub-second parts are dropped.
    pub fn set_now(&self, at: Timestamp) {
        self.shared.lock().clock = Clock::Manual(whole_seconds(at));
    }

    /// Move the clock by `by` (a system clock becomes manual at its current time).
    pub fn advance(&self, by: jiff::SignedDuration) {
        let mut state = self.shared.lock();
        let now = state.clock.now();
        state.clock = Clock::Manual(whole_seconds(now.checked_add(by).unwrap_or(now)));
    }

    /// Follow the real clock from now on (the demo).
    pub fn use_system_clock(&self) {
        self.shared.lock().clock = Clock::System;
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().log.clone()
    }

    /// Forget the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.lock().log.clear();
    }

    /// Turn the request log on or off (benchmarks turn it off; counters stay).
    pub fn record_requests(&self, on: bool) {
        self.shared.lock().record_requests = on;
    }

    /// Counters of every store, by Nuvemshop `store_id`.
    pub fn stats(&self) -> BTreeMap<u64, StoreStats> {
        self.shared
            .lock()
            .stores
            .iter()
            .map(|s| (s.credentials.store_id, s.stats))
            .collect()
    }

    /// Change how pushes are delivered (on by default).
    pub fn configure_pushes(&self, f: impl FnOnce(&mut PushOptions)) {
        f(&mut self.shared.lock().pushes.options);
    }

    /// Every copy of every push so far.
    pub fn pushes(&self) -> Vec<PushRecord> {
        self.shared.lock().pushes.log.records()
    }

    /// Forget the recorded pushes.
    pub fn clear_pushes(&self) {
        self.shared.lock().pushes.log.clear();
    }

    /// Registrations and pushes as they happen (subscribe before causing them).
    pub fn subscribe_webhooks(&self) -> tokio::sync::broadcast::Receiver<WebhookEvent> {
        self.shared.lock().pushes.log.subscribe()
    }

    /// Stop the server now (dropping the handle does the same).
    pub fn stop(mut self) {
        self.shutdown_now();
    }

    fn shutdown_now(&mut self) {
        self.shared.lock().pushes.stop();
        self.serving.stop();
    }
}

impl Drop for FakeNuvemshop {
    fn drop(&mut self) {
        self.shutdown_now();
    }
}

/// Control handle of one fake store (cheap to clone).
#[derive(Clone)]
pub struct NsStore {
    shared: Arc<Shared>,
    index: NsStoreId,
}

impl fmt::Debug for NsStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NsStore")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl NsStore {
    /// This store's index (as in [`RecordedRequest::store`]).
    pub fn index(&self) -> NsStoreId {
        self.index
    }

    /// Its Nuvemshop `store_id`.
    pub fn store_id(&self) -> u64 {
        self.with(|store, _| store.credentials.store_id)
    }

    fn with<R>(&self, f: impl FnOnce(&mut StoreState, &mut Clock) -> R) -> R {
        let mut state = self.shared.lock();
        let State { stores, clock, .. } = &mut *state;
        match stores.get_mut(self.index) {
            Some(store) => f(store, clock),
            None => unreachable!("store handle {} outlived its fake", self.index),
        }
    }

    fn with_pushes<R>(
        &self,
        f: impl FnOnce(&mut StoreState, &mut Clock, &mut push::PushState) -> R,
    ) -> R {
        let mut state = self.shared.lock();
        let State {
            stores,
            clock,
            pushes,
            ..
        } = &mut *state;
        match stores.get_mut(self.index) {
            Some(store) => f(store, clock, pushes),
            None => unreachable!("store handle {} outlived its fake", self.index),
        }
    }

    /// Change this store's shape switches.
    pub fn configure(&self, f: impl FnOnce(&mut StoreOptions)) {
        self.with(|store, _| f(&mut store.options));
    }

    /// Create an order; returns its `id`. Unset id, number, customer id and
    /// times are filled in (the fake clock); `paid_at`/`shipped_at`/
    /// `cancelled_at` follow the states. Pushes `order/created`.
    ///
    /// # Panics
    ///
    /// When the id already exists (a bug in the test); see [`NsStore::try_create_order`].
    pub fn create_order(&self, order: Order) -> OrderId {
        self.try_create_order(order)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`NsStore::create_order`] that reports a duplicate id instead of panicking.
    pub fn try_create_order(&self, mut order: Order) -> Result<OrderId, FakeNuvemshopError> {
        let index = self.index;
        self.with_pushes(|store, clock, pushes| {
            let id = order.id.unwrap_or(store.next_id);
            if store.orders.contains_key(&id) {
                return Err(FakeNuvemshopError::DuplicateOrder {
                    store_id: store.credentials.store_id,
                    id,
                });
            }
            store.next_id = store.next_id.max(id + 1);
            order.id = Some(id);
            let number = order.number.unwrap_or(store.next_number);
            store.next_number = store.next_number.max(number + 1);
            order.number = Some(number);
            if order.customer.id.is_none() {
                order.customer.id = Some(store.next_customer_id);
                store.next_customer_id += 1;
            }
            let updated = match (order.updated_at, order.created_at) {
                (Some(u), _) => u,
                (None, Some(c)) => c,
                (None, None) => clock.stamp(),
            };
            order.updated_at = Some(whole_seconds(updated));
            order.created_at = Some(whole_seconds(order.created_at.unwrap_or(updated)));
            fill_state_times(&Order::new(), &mut order, updated);
            store.orders.insert(id, order);
            store.push_change(index, id, &["order/created"], pushes);
            Ok(id)
        })
    }

    /// The order as the store holds it now.
    pub fn order(&self, id: OrderId) -> Option<Order> {
        self.with(|store, _| store.orders.get(&id).cloned())
    }

    /// Ids of every order the store holds.
    pub fn order_ids(&self) -> Vec<OrderId> {
        self.with(|store, _| store.orders.keys().copied().collect())
    }

    /// Apply `f` to the order and stamp `updated_at` now; pushes
    /// `order/updated` plus the events the state change raises. Returns the
    /// new `updated_at`.
    pub fn modify(
        &self,
        id: OrderId,
        f: impl FnOnce(&mut Order),
    ) -> Result<Timestamp, FakeNuvemshopError> {
        self.modify_inner(id, None, f)
    }

    /// [`NsStore::modify`] with an explicit `updated_at` (ties, clock skew).
    pub fn modify_at(
        &self,
        id: OrderId,
        at: Timestamp,
        f: impl FnOnce(&mut Order),
    ) -> Result<Timestamp, FakeNuvemshopError> {
        self.modify_inner(id, Some(at), f)
    }

    fn modify_inner(
        &self,
        id: OrderId,
        at: Option<Timestamp>,
        f: impl FnOnce(&mut Order),
    ) -> Result<Timestamp, FakeNuvemshopError> {
        let index = self.index;
        self.with_pushes(|store, clock, pushes| {
            let before =
                store
                    .orders
                    .get(&id)
                    .cloned()
                    .ok_or(FakeNuvemshopError::UnknownOrder {
                        store_id: store.credentials.store_id,
                        id,
                    })?;
            let mut order = before.clone();
            f(&mut order);
            let at = whole_seconds(at.unwrap_or_else(|| clock.stamp()));
            order.id = Some(id);
            order.updated_at = Some(at);
            fill_state_times(&before, &mut order, at);
            let events = change_events(&before, &order);
            store.orders.insert(id, order);
            store.push_change(index, id, &events, pushes);
            Ok(at)
        })
    }

    /// Set `payment_status` (`paid` pushes `order/paid`).
    pub fn set_payment_status(
        &self,
        id: OrderId,
        value: &str,
    ) -> Result<Timestamp, FakeNuvemshopError> {
        self.modify(id, |o| value.clone_into(&mut o.payment_status))
    }

    /// Set `shipping_status`.
    pub fn set_shipping_status(
        &self,
        id: OrderId,
        value: &str,
    ) -> Result<Timestamp, FakeNuvemshopError> {
        self.modify(id, |o| value.clone_into(&mut o.shipping_status))
    }

    /// Set `status`.
    pub fn set_status(&self, id: OrderId, value: &str) -> Result<Timestamp, FakeNuvemshopError> {
        self.modify(id, |o| value.clone_into(&mut o.status))
    }

    /// Pack the order (`shipping_status` → `unfulfilled`, pushes `order/packed`).
    pub fn pack(&self, id: OrderId) -> Result<Timestamp, FakeNuvemshopError> {
        self.set_shipping_status(id, shipping::UNFULFILLED)
    }

    /// Fulfil (ship) the order with a tracking number (`shipping_status` →
    /// `fulfilled`, pushes `order/fulfilled`).
    pub fn fulfill(
        &self,
        id: OrderId,
        tracking_number: &str,
        tracking_url: Option<&str>,
    ) -> Result<Timestamp, FakeNuvemshopError> {
        self.modify(id, |o| {
            shipping::FULFILLED.clone_into(&mut o.shipping_status);
            o.tracking_number = Some(tracking_number.to_owned());
            o.tracking_url = tracking_url.map(str::to_owned);
        })
    }

    /// Add a shipment to `fulfillment_orders` (split shipments).
    pub fn add_fulfillment_order(
        &self,
        id: OrderId,
        shipment: FulfillmentOrder,
    ) -> Result<Timestamp, FakeNuvemshopError> {
        self.modify(id, |o| o.fulfillment_orders.push(shipment))
    }

    /// Dispatch shipment `index` of `fulfillment_orders` with a tracking code
    /// (an index past the end changes nothing but `updated_at`).
    pub fn dispatch_fulfillment_order(
        &self,
        id: OrderId,
        index: usize,
        code: &str,
        url: Option<&str>,
    ) -> Result<Timestamp, FakeNuvemshopError> {
        self.modify(id, |o| {
            if let Some(shipment) = o.fulfillment_orders.get_mut(index) {
                *shipment = shipment.clone().dispatched(code, url);
            }
        })
    }

    /// Set or clear the tracking number and URL without changing the states.
    pub fn set_tracking(
        &self,
        id: OrderId,
        tracking_number: Option<&str>,
        tracking_url: Option<&str>,
    ) -> Result<Timestamp, FakeNuvemshopError> {
        self.modify(id, |o| {
            o.tracking_number = tracking_number.map(str::to_owned);
            o.tracking_url = tracking_url.map(str::to_owned);
        })
    }

    /// Cancel the order (`status` → `cancelled`, with a `cancel_reason`;
    /// pushes `order/cancelled`).
    pub fn cancel(&self, id: OrderId, reason: &str) -> Result<Timestamp, FakeNuvemshopError> {
        self.modify(id, |o| {
            status::CANCELLED.clone_into(&mut o.status);
            o.cancel_reason = Some(reason.to_owned());
        })
    }

    /// Stamp `updated_at` now without changing anything else.
    pub fn touch(&self, id: OrderId) -> Result<Timestamp, FakeNuvemshopError> {
        self.modify(id, |_| {})
    }

    /// Delete the order: it leaves the list and its detail answers 404.
    pub fn delete(&self, id: OrderId) -> Result<(), FakeNuvemshopError> {
        self.with(|store, _| {
            let store_id = store.credentials.store_id;
            store
                .orders
                .remove(&id)
                .map(|_| ())
                .ok_or(FakeNuvemshopError::UnknownOrder { store_id, id })
        })
    }

    /// Write `value` at the JSON pointer `pointer` (e.g. `/total`,
    /// `/customer/phone`) of this order wherever it is rendered (list rows and
    /// detail) from now on: bad records the typed model cannot express.
    pub fn override_order(&self, id: OrderId, pointer: &str, value: Value) {
        self.with(|store, _| {
            store
                .overrides
                .entry(id)
                .or_default()
                .push((pointer.to_owned(), value));
        });
    }

    /// Make the next `times` requests matching `route` fail with `fault`
    /// (the LI fake's vocabulary; `TooManyRequests` answers Nuvemshop's 429).
    pub fn fail(&self, route: Route, fault: Fault, times: usize) {
        if times > 0 {
            self.with(|store, _| {
                store.faults.push(PendingFault {
                    route,
                    fault,
                    remaining: times,
                });
            });
        }
    }

    /// Drop every pending fault and action.
    pub fn clear_faults(&self) {
        self.with(|store, _| {
            store.faults.clear();
            store.actions.clear();
        });
    }

    /// Run `action` when the `nth` (1 = the next) request matching `route`
    /// that passed authentication and the bucket arrives, before it is
    /// answered: to change the store between two pages of one sweep.
    pub fn on_request(
        &self,
        route: Route,
        nth: usize,
        action: impl FnOnce(&NsStore) + Send + 'static,
    ) {
        self.with(|store, _| {
            store.actions.push(PendingAction {
                route,
                countdown: nth.max(1),
                action: Box::new(action),
            });
        });
    }

    /// Answer every request with this store's token with `status` (401: app
    /// uninstalled or token replaced; 402: store suspended); `None` restores access.
    pub fn reject_auth(&self, status: Option<u16>) {
        self.with(|store, _| store.auth_failure = status);
    }

    /// Empty the rate-limit buckets (a fresh start for the next phase of a test).
    pub fn reset_buckets(&self) {
        self.with(|store, _| store.buckets.clear());
    }

    /// This store's counters.
    pub fn stats(&self) -> StoreStats {
        self.with(|store, _| store.stats)
    }

    /// Registered webhooks, oldest first.
    pub fn webhooks(&self) -> Vec<Webhook> {
        self.with(|store, _| store.webhooks.clone())
    }

    /// Register a webhook without HTTP (as `POST /webhooks` does); returns its id.
    pub fn register_webhook(&self, event: &str, url: &str) -> u64 {
        let mut state = self.shared.lock();
        let now = state.clock.now();
        let Some(store) = state.stores.get_mut(self.index) else {
            return 0;
        };
        let webhook = Webhook {
            id: store.next_webhook_id,
            event: event.to_owned(),
            url: url.to_owned(),
            created_at: now,
        };
        store.next_webhook_id += 1;
        store.webhooks.push(webhook.clone());
        let id = webhook.id;
        state.pushes.log.publish(WebhookEvent::Registered {
            store: self.index,
            webhook,
        });
        id
    }

    /// Push `event` for the order again without changing it (a repeat delivery).
    pub fn push_again(&self, id: OrderId, event: &'static str) -> Result<(), FakeNuvemshopError> {
        let index = self.index;
        self.with_pushes(|store, _, pushes| {
            if !store.orders.contains_key(&id) {
                return Err(FakeNuvemshopError::UnknownOrder {
                    store_id: store.credentials.store_id,
                    id,
                });
            }
            store.push_change(index, id, &[event], pushes);
            Ok(())
        })
    }

    /// Requests this store's credentials made so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        let index = self.index;
        self.shared
            .lock()
            .log
            .iter()
            .filter(|r| r.store == Some(index))
            .cloned()
            .collect()
    }
}

/// Stamp `paid_at`, `shipped_at`, `cancelled_at` when the states reach them.
fn fill_state_times(before: &Order, order: &mut Order, at: Timestamp) {
    if order.payment_status == payment::PAID && before.payment_status != payment::PAID {
        order.paid_at.get_or_insert(at);
    }
    if order.shipping_status == shipping::FULFILLED && before.shipping_status != shipping::FULFILLED
    {
        order.shipped_at.get_or_insert(at);
    }
    if order.status == status::CANCELLED && before.status != status::CANCELLED {
        order.cancelled_at.get_or_insert(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_changes_raise_their_events() {
        let before = Order::new();
        let paid = before.clone().payment_status(payment::PAID);
        assert_eq!(
            change_events(&before, &paid),
            ["order/updated", "order/paid"]
        );
        let shipped = paid.clone().shipping_status(shipping::FULFILLED);
        assert_eq!(
            change_events(&paid, &shipped),
            ["order/updated", "order/fulfilled"]
        );
        let cancelled = before.clone().status(status::CANCELLED);
        assert_eq!(
            change_events(&before, &cancelled),
            ["order/updated", "order/cancelled"]
        );
        assert_eq!(change_events(&paid, &paid), ["order/updated"]);
    }
}
