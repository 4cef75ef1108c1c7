//! A fake Loja Integrada API (Tastypie shapes, naive São Paulo timestamps, scriptable faults).
//!
//! [`FakeLi`] is a real HTTP server on 127.0.0.1 that answers the read
//! endpoints arauto's Loja Integrada connector uses, in the shapes documented
//! in docs/platforms/loja-integrada.md (Tastypie `meta`/`objects` paging,
//! summary search rows with `cliente` as a URI, detailed orders, naive São
//! Paulo timestamps with microseconds). Tests and the demo drive it from
//! Rust: they create stores and orders, move orders between statuses, add
//! tracking codes, and inject faults.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use arauto_sim::li::{FakeLi, Order, Customer, Payment, StoreAuth, Fault, Route};
//!
//! let li = FakeLi::start().await?;
//! let store = li.add_store(StoreAuth::api_key("chave-da-loja", "chave-da-aplicacao"));
//! let numero = store.create_order(Order::new().customer(Customer::new("João").mobile("21900000002")));
//! store.set_status(numero, "pedido_pago")?;
//! store.set_tracking(numero, 0, Some("AA123456785BR"))?;
//! store.fail(Route::Detail, Fault::TooManyRequests { retry_after_secs: None }, 1);
//! // point the connector at li.base_url() ...
//! assert!(li.requests().iter().all(|r| r.status != 500));
//! # Ok(()) }
//! ```
//!
//! # Endpoints
//!
//! Every resource path is served under both `/v1/...` and `/api/v1/...`, with
//! or without a trailing slash, for `GET` only (other methods: 405). The
//! webhook registration lives on the API host itself, `/webhooks/v1/pedido`,
//! for `PUT` and `DELETE` only.
//!
//! | path | answer |
//! |---|---|
//! | `pedido/search/` | summary rows; filters `since_atualizado` (inclusive; `YYYY-MM-DD[THH:MM[:SS[.ffffff]]]`), `since_numero`, `situacao_id`, `since_criado`, `until_criado`; paging `limit`/`offset` |
//! | `pedido/{numero}` | the full order, 404 when unknown or deleted |
//! | `cliente/{id}` | the customer |
//! | `situacao/`, `situacao/{id}` | the status catalogue ([`Catalogue`]) plus custom statuses |
//! | `situacao_historico/search?numero=N` | the order's status changes |
//! | `PUT /webhooks/v1/pedido` `{"notifyUrl", "token"}` | registers (or re-tokens) an order webhook: 200 `{"message": "Registros afetados: 1"}`; 400 without an absolute http(s) `notifyUrl` or a `token` |
//! | `DELETE /webhooks/v1/pedido` (same body) | removes the webhook of that `notifyUrl`: `Registros afetados: 1`, or `0` when none |
//!
//! # Pushes
//!
//! Once a store has webhooks, every change of one of its orders (creation,
//! status, tracking code, any edit, [`LiStore::push_again`]) is POSTed to each
//! of them in LI's push shape, with `Authorization: Bearer <token>`, by a
//! background thread: see the `push` module and [`PushOptions`] (repeats, delay,
//! dropped pushes, wrong token, timeout). [`FakeLi::pushes`] and
//! [`FakeLi::subscribe_webhooks`] show what was sent; [`LiStore::webhooks`]
//! what is registered.
//!
//! # Paging
//!
//! `limit` defaults to 20 and is clamped to [`StoreOptions::max_limit`] (50, as
//! LI's current spec says); `limit=0` means "the maximum". `meta.limit` echoes
//! the clamped value. `meta.next`/`meta.previous` are root-relative URIs under
//! [`StoreOptions::uri_prefix`] (`/api/v1/pedido/search/?since_atualizado=...&limit=50&offset=50`,
//! query encoded like Django's `QueryDict.urlencode`), or null.
//!
//! # Result ordering of `pedido/search`
//!
//! LI's ordering is undocumented. The fake defaults to
//! [`SearchOrder::ModifiedAsc`] (oldest `data_modificacao` first, ties by
//! `numero`) — the ordering under which offset paging is most fragile (an order
//! modified mid-sweep moves to the end and shifts unread rows back by one).
//! [`SearchOrder::ModifiedDesc`] and [`SearchOrder::NumeroAsc`] are available so
//! clients can be tested against either.
//!
//! # Authentication
//!
//! Each store accepts the credentials it was created with ([`StoreAuth`]):
//! `Authorization: chave_api <key> aplicacao <app>` (also the deprecated query
//! form `?chave_api=..&chave_aplicacao=..`) and/or `Authorization: Basic
//! <personal token>` (raw token, not base64). Missing or unknown credentials get
//! 401 `{"error_message": ...}`; [`LiStore::reject_auth`] makes a store's own
//! credentials fail with 401 or 403.
//!
//! # Time
//!
//! The fake's clock is naive São Paulo wall-clock time (what LI stores and
//! returns). By default it is manual, starting at 2024-05-10T09:00:00 (= the SDK
//! test harness's default 2024-05-10T12:00:00Z); it moves only through
//! [`FakeLi::set_now`]/[`FakeLi::advance`], except that every mutation stamped
//! with the clock ("now") advances it by 1 ms afterwards, so successive changes
//! get distinct, increasing `data_modificacao`s. [`FakeLi::use_system_clock`]
//! switches to the real clock (for the demo). Orders can also carry explicit
//! times ([`Order::modified_at`], [`LiStore::set_modified`]).
//!
//! Every answer carries a `Date` header read from that clock (in UTC, as
//! HTTP dates are), so a client sees the fake's "now" the way it would see
//! LI's.
//!
//! Timestamps render like Python's `isoformat()`: microseconds when non-zero
//! (`2024-05-10T09:12:47.556120`), none otherwise (`2024-05-10T09:00:00`).

mod model;
mod push;
mod render;
mod server;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use jiff::SignedDuration;
pub use jiff::civil::DateTime;
use serde_json::Value;

pub use model::{
    Address, Catalogue, Customer, HistoryEntry, Item, Numero, Order, Payment, Shipment, Status,
};
pub use push::{
    PushOptions, PushOutcome, PushRecord, WRONG_TOKEN, WebhookEvent, WebhookRegistration,
};

use crate::serving::Serving;

/// Credentials a fake store accepts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreAuth {
    /// `(chave_api, chave_aplicacao)` pairs.
    pub api_keys: Vec<(String, String)>,
    /// Personal tokens.
    pub personal_tokens: Vec<String>,
}

impl StoreAuth {
    /// A store key plus an integrator's application key.
    pub fn api_key(chave_api: &str, chave_aplicacao: &str) -> Self {
        Self {
            api_keys: vec![(chave_api.to_owned(), chave_aplicacao.to_owned())],
            personal_tokens: Vec::new(),
        }
    }
    /// A personal token.
    pub fn personal_token(token: &str) -> Self {
        Self {
            api_keys: Vec::new(),
            personal_tokens: vec![token.to_owned()],
        }
    }
    /// Also accept a personal token.
    pub fn and_personal_token(mut self, token: &str) -> Self {
        self.personal_tokens.push(token.to_owned());
        self
    }
}

/// Result ordering of `pedido/search` (LI's own is undocumented).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SearchOrder {
    /// Oldest `data_modificacao` first, ties by `numero` (the default).
    #[default]
    ModifiedAsc,
    /// Newest `data_modificacao` first, ties by `numero` descending.
    ModifiedDesc,
    /// By `numero`, ascending (creation order).
    NumeroAsc,
}

/// How money values are rendered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MoneyFormat {
    /// Decimal strings like real REST responses: order and payment values with
    /// 2 decimals (`"108.80"`), item prices with 4 (`"139.9000"`).
    #[default]
    Strings,
    /// JSON numbers everywhere (`108.8`), as webhooks send them.
    Numbers,
}

/// How `cliente` appears in an order detail (search rows always carry a URI).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClienteForm {
    /// The full customer object (the spec's example).
    #[default]
    Inline,
    /// A URI such as `/api/v1/cliente/90000001`, to be fetched separately.
    Uri,
}

/// Shape switches of one fake store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreOptions {
    /// Ordering of `pedido/search` results.
    pub order: SearchOrder,
    /// Page size when `limit` is absent (LI: 20).
    pub default_limit: usize,
    /// Maximum page size; larger `limit`s are clamped silently (LI: 50).
    pub max_limit: usize,
    /// Money as strings or numbers.
    pub money: MoneyFormat,
    /// `cliente` inline or as a URI in order details.
    pub cliente: ClienteForm,
    /// Prefix of `resource_uri`, `cliente` URIs and `meta.next`: `/api/v1`
    /// (LI's) or `/v1`.
    pub uri_prefix: String,
    /// Which status catalogue `situacao/` lists.
    pub catalogue: Catalogue,
    /// Answer 429 (code 633) past this many requests in any 60 s window
    /// (real time); `None` = unlimited.
    pub rate_limit_per_minute: Option<usize>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            order: SearchOrder::default(),
            default_limit: 20,
            max_limit: 50,
            money: MoneyFormat::default(),
            cliente: ClienteForm::default(),
            uri_prefix: "/api/v1".to_owned(),
            catalogue: Catalogue::default(),
            rate_limit_per_minute: None,
        }
    }
}

/// Which requests a fault applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Every request of the store.
    Any,
    /// `pedido/search`.
    Search,
    /// `pedido/{numero}`.
    Detail,
    /// `cliente/{id}`.
    Cliente,
    /// `situacao/` and `situacao/{id}`.
    Situacao,
    /// `situacao_historico/search`.
    History,
    /// `PUT`/`DELETE /webhooks/v1/pedido`.
    Webhooks,
}

/// An injected failure, consumed by the next matching request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 429 `{"error_message": ..., "codigo": 633}`, with a `Retry-After`
    /// header when `retry_after_secs` is set (LI documents none).
    TooManyRequests {
        /// `Retry-After` in seconds.
        retry_after_secs: Option<u64>,
    },
    /// This status with a small JSON body `{"error_message": ...}` (401, 403, 500, 503...).
    Status(u16),
    /// 200 with an HTML body (a proxy's error page instead of JSON).
    Garbage,
    /// Answer normally, but only after this long (for client timeouts).
    Delay(Duration),
    /// Start a 200 answer and abort the connection before the body: the
    /// client sees a reset, as with a crashed server or proxy.
    Disconnect,
    /// 200 with a JSON body of this many bytes (an endpoint gone haywire;
    /// clients must refuse what they cannot hold).
    Oversized(usize),
}

/// Which endpoint a request hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `pedido/search`.
    Search,
    /// `pedido/{numero}`.
    Detail(Numero),
    /// `cliente/{id}`.
    Cliente(u64),
    /// `situacao/` (`None`) or `situacao/{id}`.
    Situacao(Option<u64>),
    /// `situacao_historico/search`.
    History,
    /// `/webhooks/v1/pedido` (registration of order webhooks).
    Webhooks,
    /// Anything else (answered 404).
    Unknown,
}

impl Endpoint {
    fn matches(self, route: Route) -> bool {
        matches!(
            (route, self),
            (Route::Any, _)
                | (Route::Search, Endpoint::Search)
                | (Route::Detail, Endpoint::Detail(_))
                | (Route::Cliente, Endpoint::Cliente(_))
                | (Route::Situacao, Endpoint::Situacao(_))
                | (Route::History, Endpoint::History)
                | (Route::Webhooks, Endpoint::Webhooks)
        )
    }
}

/// Identifies a fake store within one [`FakeLi`].
pub type StoreId = usize;

/// One request as the fake received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `GET`, `POST`...
    pub method: String,
    /// The path as sent, e.g. `/v1/pedido/search/`.
    pub path: String,
    /// Decoded query parameters, in order.
    pub query: Vec<(String, String)>,
    /// The raw `Authorization` header.
    pub authorization: Option<String>,
    /// The store the credentials resolved to.
    pub store: Option<StoreId>,
    /// What the path addressed.
    pub endpoint: Endpoint,
    /// The status code answered.
    pub status: u16,
    /// When the request arrived (the system clock, whatever the fake's own
    /// clock says): lets benchmarks time what happens after a poll.
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
    /// A `pedido/search` request.
    pub fn is_search(&self) -> bool {
        self.endpoint == Endpoint::Search
    }
    /// The order number of a `pedido/{numero}` request.
    pub fn detail_numero(&self) -> Option<Numero> {
        match self.endpoint {
            Endpoint::Detail(n) => Some(n),
            _ => None,
        }
    }
}

/// A test asked for something the fake store does not have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FakeLiError {
    /// No order with this numero (never created, or deleted).
    UnknownOrder(Numero),
    /// `create_order` with a numero that already exists.
    DuplicateOrder(Numero),
    /// The order has no shipment at this index.
    NoSuchShipment {
        /// The order.
        numero: Numero,
        /// The index asked for.
        index: usize,
    },
}

impl fmt::Display for FakeLiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownOrder(n) => write!(f, "fake LI store has no order {n}"),
            Self::DuplicateOrder(n) => write!(f, "fake LI store already has an order {n}"),
            Self::NoSuchShipment { numero, index } => {
                write!(f, "order {numero} has no shipment at index {index}")
            }
        }
    }
}

impl std::error::Error for FakeLiError {}

/// The fake's clock: naive São Paulo wall-clock time.
#[derive(Clone, Copy, Debug)]
enum Clock {
    Manual(DateTime),
    System,
}

impl Clock {
    fn now(&self) -> DateTime {
        match self {
            Self::Manual(at) => *at,
            Self::System => sao_paulo().to_datetime(jiff::Timestamp::now()),
        }
    }

    /// "Now" for a mutation; a manual clock then moves 1 ms so the next
    /// mutation gets a later time.
    fn stamp(&mut self) -> DateTime {
        let at = self.now();
        if let Self::Manual(t) = self {
            *t = t.saturating_add(SignedDuration::from_millis(1));
        }
        at
    }
}

/// America/Sao_Paulo has been UTC−03:00 all year since 2019.
fn sao_paulo() -> jiff::tz::Offset {
    jiff::tz::Offset::constant(-3)
}

struct PendingFault {
    route: Route,
    fault: Fault,
    remaining: usize,
}

/// Something a test wants done to the store at an exact point of a client's
/// request sequence (e.g. modify an order between two detail calls).
type RequestAction = Box<dyn FnOnce(&LiStore) + Send>;

struct PendingAction {
    route: Route,
    /// Matching requests still to arrive before this one fires (1 = the next).
    countdown: usize,
    action: RequestAction,
}

/// One fake store's state.
struct StoreState {
    options: StoreOptions,
    orders: BTreeMap<Numero, Order>,
    customers: BTreeMap<u64, Customer>,
    history: BTreeMap<Numero, Vec<HistoryEntry>>,
    custom_statuses: Vec<Status>,
    /// Catalogue + custom statuses, rebuilt when either changes (looked up per rendered row).
    all_statuses: Vec<Status>,
    faults: Vec<PendingFault>,
    actions: Vec<PendingAction>,
    auth_failure: Option<u16>,
    /// Raw JSON values written over an order's rendered detail (see
    /// [`LiStore::override_detail`]).
    detail_overrides: BTreeMap<Numero, Vec<(String, Value)>>,
    recent_requests: VecDeque<Instant>,
    /// Registered order webhooks, one per `notifyUrl`.
    webhooks: Vec<WebhookRegistration>,
    /// Each order's internal `id` (pushes carry it next to `numero`).
    internal_ids: BTreeMap<Numero, u64>,
    next_internal_id: u64,
    next_numero: Numero,
    next_customer_id: u64,
    next_shipment_id: u64,
    next_history_id: u64,
}

impl StoreState {
    fn new() -> Self {
        Self {
            options: StoreOptions::default(),
            orders: BTreeMap::new(),
            customers: BTreeMap::new(),
            history: BTreeMap::new(),
            custom_statuses: Vec::new(),
            all_statuses: Catalogue::default().statuses(),
            faults: Vec::new(),
            actions: Vec::new(),
            auth_failure: None,
            detail_overrides: BTreeMap::new(),
            recent_requests: VecDeque::new(),
            webhooks: Vec::new(),
            internal_ids: BTreeMap::new(),
            next_internal_id: 248_310_001,
            next_numero: 1001,
            next_customer_id: 90_000_001,
            next_shipment_id: 70_000_001,
            next_history_id: 207_000_001,
        }
    }

    /// Every status this store knows: the catalogue plus custom ones.
    fn statuses(&self) -> &[Status] {
        &self.all_statuses
    }

    fn status(&self, code: &str) -> Option<&Status> {
        self.all_statuses.iter().find(|s| s.code == code)
    }

    fn refresh_statuses(&mut self) {
        let mut all = self.options.catalogue.statuses();
        all.extend(self.custom_statuses.iter().cloned());
        self.all_statuses = all;
    }

    /// Make sure `code` is in the catalogue: unknown codes become custom
    /// statuses (ids from 2001), as a merchant-created status would.
    fn ensure_status(&mut self, code: &str) {
        if self.status(code).is_none() {
            let id = 2001 + self.custom_statuses.len() as u64;
            self.custom_statuses.push(Status::custom(id, code, code));
            self.refresh_statuses();
        }
    }

    fn assign_ids(&mut self, order: &mut Order) {
        let customer_id = match order.customer.id {
            Some(id) => id,
            None => {
                let id = self.next_customer_id;
                self.next_customer_id += 1;
                order.customer.id = Some(id);
                id
            }
        };
        self.next_customer_id = self.next_customer_id.max(customer_id + 1);
        self.customers.insert(customer_id, order.customer.clone());
        for shipment in &mut order.shipments {
            self.assign_shipment_id(shipment);
        }
    }

    fn assign_shipment_id(&mut self, shipment: &mut Shipment) {
        match shipment.id {
            Some(id) => self.next_shipment_id = self.next_shipment_id.max(id + 1),
            None => {
                shipment.id = Some(self.next_shipment_id);
                self.next_shipment_id += 1;
            }
        }
    }

    fn record_history(
        &mut self,
        numero: Numero,
        at: DateTime,
        status: &str,
        previous: Option<&str>,
    ) {
        let id = self.next_history_id;
        self.next_history_id += 1;
        self.history.entry(numero).or_default().push(HistoryEntry {
            id,
            at,
            status: status.to_owned(),
            previous: previous.map(str::to_owned),
        });
    }

    /// Consume the first pending fault matching `endpoint`.
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

    /// Count a request matching `endpoint` against the pending actions; the
    /// ones whose turn it is are removed and returned.
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

    /// Add a webhook, or give an already registered `notifyUrl` its new token.
    fn register_webhook(&mut self, notify_url: &str, token: &str) {
        match self
            .webhooks
            .iter_mut()
            .find(|w| w.notify_url == notify_url)
        {
            Some(existing) => token.clone_into(&mut existing.token),
            None => self.webhooks.push(WebhookRegistration {
                notify_url: notify_url.to_owned(),
                token: token.to_owned(),
            }),
        }
    }

    /// Remove the webhook registered for `notify_url`; how many went (0 or 1).
    fn unregister_webhook(&mut self, notify_url: &str) -> usize {
        let before = self.webhooks.len();
        self.webhooks.retain(|w| w.notify_url != notify_url);
        before - self.webhooks.len()
    }

    /// Push the order as it is now to every registered webhook.
    fn push_change(
        &self,
        id: StoreId,
        numero: Numero,
        status_changed: bool,
        pushes: &mut push::PushState,
    ) {
        let Some(order) = self.orders.get(&numero) else {
            return;
        };
        if self.webhooks.is_empty() {
            return;
        }
        let internal_id = self.internal_ids.get(&numero).copied().unwrap_or_default();
        pushes.schedule(id, numero, status_changed, &self.webhooks, |token| {
            render::push(self, order, internal_id, status_changed, token)
        });
    }

    /// Count this request against the per-minute limit; false when over it.
    fn within_rate_limit(&mut self, now: Instant) -> bool {
        let Some(limit) = self.options.rate_limit_per_minute else {
            return true;
        };
        while let Some(first) = self.recent_requests.front() {
            if now.duration_since(*first) >= Duration::from_secs(60) {
                self.recent_requests.pop_front();
            } else {
                break;
            }
        }
        if self.recent_requests.len() >= limit {
            return false;
        }
        self.recent_requests.push_back(now);
        true
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Credential {
    ApiKey(String, String),
    Token(String),
}

struct State {
    clock: Clock,
    stores: Vec<StoreState>,
    credentials: HashMap<Credential, StoreId>,
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

/// The running fake LI API. Dropping it stops the server.
///
/// All control methods are synchronous (a short mutex hold) and may be called
/// from async or blocking code.
pub struct FakeLi {
    shared: Arc<Shared>,
    serving: Serving,
}

impl fmt::Debug for FakeLi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeLi")
            .field("addr", &self.serving.addr())
            .finish_non_exhaustive()
    }
}

impl FakeLi {
    /// Start on 127.0.0.1 with an OS-assigned port, on the current tokio runtime.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Start on `addr` (the demo binds a fixed port), on the current tokio runtime.
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                clock: Clock::Manual(default_start()),
                stores: Vec::new(),
                credentials: HashMap::new(),
                log: Vec::new(),
                record_requests: true,
                pushes: push::PushState::new(),
            }),
        });
        let app = server::router(Arc::clone(&shared));
        let serving = Serving::start(addr, app, "fake LI").await?;
        Ok(Self { shared, serving })
    }

    /// Start on 127.0.0.1 on a runtime of its own, for synchronous tests (plugin
    /// unit tests with a blocking HTTP client). Do not drop the returned handle
    /// inside an async context.
    pub fn start_blocking() -> std::io::Result<Self> {
        let runtime = Serving::own_runtime("fake-li")?;
        let mut li = runtime.block_on(Self::start())?;
        li.serving.keep_runtime(runtime);
        Ok(li)
    }

    /// `http://127.0.0.1:<port>`: the connector's `base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.serving.addr())
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.serving.addr()
    }

    /// Add a store that accepts `auth`. Credentials already used by another
    /// store are taken over by the new one.
    pub fn add_store(&self, auth: StoreAuth) -> LiStore {
        let mut state = self.shared.lock();
        let id = state.stores.len();
        state.stores.push(StoreState::new());
        for (key, app) in auth.api_keys {
            state.credentials.insert(Credential::ApiKey(key, app), id);
        }
        for token in auth.personal_tokens {
            state.credentials.insert(Credential::Token(token), id);
        }
        LiStore {
            shared: Arc::clone(&self.shared),
            id,
        }
    }

    /// The handle of an existing store.
    pub fn store(&self, id: StoreId) -> Option<LiStore> {
        (id < self.shared.lock().stores.len()).then(|| LiStore {
            shared: Arc::clone(&self.shared),
            id,
        })
    }

    /// The fake's current São Paulo wall-clock time.
    pub fn now(&self) -> DateTime {
        self.shared.lock().clock.now()
    }

    /// Set the (manual) clock.
    pub fn set_now(&self, at: DateTime) {
        self.shared.lock().clock = Clock::Manual(at);
    }

    /// Move the clock by `by` (switches a system clock to manual at its current time).
    pub fn advance(&self, by: SignedDuration) {
        let mut state = self.shared.lock();
        let now = state.clock.now();
        state.clock = Clock::Manual(now.saturating_add(by));
    }

    /// Follow the real clock (São Paulo time) from now on.
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

    /// Turn the request log on or off (benchmarks with many stores turn it off).
    pub fn record_requests(&self, on: bool) {
        self.shared.lock().record_requests = on;
    }

    /// Change how pushes are delivered (they are on by default: a store pushes
    /// as soon as a webhook is registered).
    pub fn configure_pushes(&self, f: impl FnOnce(&mut PushOptions)) {
        f(&mut self.shared.lock().pushes.options);
    }

    /// The current push settings.
    pub fn push_options(&self) -> PushOptions {
        self.shared.lock().pushes.options.clone()
    }

    /// Every copy of every push so far (sent, dropped or failed), in the order
    /// their outcome was known.
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

impl Drop for FakeLi {
    fn drop(&mut self) {
        self.shutdown_now();
    }
}

/// 2024-05-10T09:00:00 São Paulo = 2024-05-10T12:00:00Z, the SDK test harness's clock.
fn default_start() -> DateTime {
    jiff::civil::date(2024, 5, 10).at(9, 0, 0, 0)
}

/// Control handle of one fake store (cheap to clone).
#[derive(Clone)]
pub struct LiStore {
    shared: Arc<Shared>,
    id: StoreId,
}

impl fmt::Debug for LiStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiStore").field("id", &self.id).finish()
    }
}

impl LiStore {
    /// This store's id (as in [`RecordedRequest::store`]).
    pub fn id(&self) -> StoreId {
        self.id
    }

    fn with<R>(&self, f: impl FnOnce(&mut StoreState, &mut Clock) -> R) -> R {
        let mut state = self.shared.lock();
        let State { stores, clock, .. } = &mut *state;
        // Store ids are only minted by `add_store` for this very state.
        match stores.get_mut(self.id) {
            Some(store) => f(store, clock),
            None => unreachable!("store handle {} outlived its fake", self.id),
        }
    }

    /// [`LiStore::with`], also handing over the push side of the state.
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
        match stores.get_mut(self.id) {
            Some(store) => f(store, clock, pushes),
            None => unreachable!("store handle {} outlived its fake", self.id),
        }
    }

    /// Change this store's shape switches.
    pub fn configure(&self, f: impl FnOnce(&mut StoreOptions)) {
        self.with(|store, _| {
            f(&mut store.options);
            store.refresh_statuses();
        });
    }

    /// Add a merchant-created status (listed by `situacao/`).
    pub fn add_custom_status(&self, id: u64, code: &str, name: &str) {
        self.with(|store, _| {
            store.custom_statuses.push(Status::custom(id, code, name));
            store.refresh_statuses();
        });
    }

    /// Create an order; returns its numero. Unset numero/times are filled in
    /// (next numero from 1001; the fake clock). An unknown status code is added
    /// to the catalogue as a custom status.
    ///
    /// # Panics
    ///
    /// When the numero already exists (a bug in the test); see
    /// [`LiStore::try_create_order`].
    pub fn create_order(&self, order: Order) -> Numero {
        self.try_create_order(order)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`LiStore::create_order`] that reports a duplicate numero instead of panicking.
    pub fn try_create_order(&self, mut order: Order) -> Result<Numero, FakeLiError> {
        let id = self.id;
        self.with_pushes(|store, clock, pushes| {
            let numero = order.numero.unwrap_or(store.next_numero);
            if store.orders.contains_key(&numero) {
                return Err(FakeLiError::DuplicateOrder(numero));
            }
            store.next_numero = store.next_numero.max(numero + 1);
            order.numero = Some(numero);
            let modified = match (order.modified_at, order.created_at) {
                (Some(m), _) => m,
                (None, Some(c)) => c,
                (None, None) => clock.stamp(),
            };
            order.modified_at = Some(modified);
            order.created_at = Some(order.created_at.unwrap_or(modified));
            store.ensure_status(&order.status);
            store.assign_ids(&mut order);
            let status = order.status.clone();
            store.record_history(numero, modified, &status, None);
            store.orders.insert(numero, order);
            store.internal_ids.insert(numero, store.next_internal_id);
            store.next_internal_id += 1;
            // A new order's status is news: LI pushes it as a change of status.
            store.push_change(id, numero, true, pushes);
            Ok(numero)
        })
    }

    /// The order as the store holds it now (numero, times and ids filled in).
    pub fn order(&self, numero: Numero) -> Option<Order> {
        self.with(|store, _| store.orders.get(&numero).cloned())
    }

    /// Numbers of every order the store holds.
    pub fn numeros(&self) -> Vec<Numero> {
        self.with(|store, _| store.orders.keys().copied().collect())
    }

    /// Apply `f` to the order and stamp it modified now. A status change is
    /// recorded in the order's history. Returns the new `data_modificacao`.
    pub fn modify(
        &self,
        numero: Numero,
        f: impl FnOnce(&mut Order),
    ) -> Result<DateTime, FakeLiError> {
        self.modify_inner(numero, None, f)
    }

    /// [`LiStore::modify`] with an explicit `data_modificacao`.
    pub fn modify_at(
        &self,
        numero: Numero,
        at: DateTime,
        f: impl FnOnce(&mut Order),
    ) -> Result<DateTime, FakeLiError> {
        self.modify_inner(numero, Some(at), f)
    }

    fn modify_inner(
        &self,
        numero: Numero,
        at: Option<DateTime>,
        f: impl FnOnce(&mut Order),
    ) -> Result<DateTime, FakeLiError> {
        let id = self.id;
        self.with_pushes(|store, clock, pushes| {
            let mut order = store
                .orders
                .get(&numero)
                .cloned()
                .ok_or(FakeLiError::UnknownOrder(numero))?;
            let before = order.status.clone();
            f(&mut order);
            let at = at.unwrap_or_else(|| clock.stamp());
            order.numero = Some(numero);
            order.modified_at = Some(at);
            store.ensure_status(&order.status);
            store.assign_ids(&mut order);
            let status_changed = order.status != before;
            if status_changed {
                let status = order.status.clone();
                store.record_history(numero, at, &status, Some(&before));
            }
            store.orders.insert(numero, order);
            store.push_change(id, numero, status_changed, pushes);
            Ok(at)
        })
    }

    /// Move the order to status `codigo` (any code; unknown ones become custom statuses).
    pub fn set_status(&self, numero: Numero, codigo: &str) -> Result<DateTime, FakeLiError> {
        self.modify(numero, |o| o.status = codigo.to_owned())
    }

    /// Set or clear `objeto` (the tracking code) of shipment `index`.
    pub fn set_tracking(
        &self,
        numero: Numero,
        index: usize,
        code: Option<&str>,
    ) -> Result<DateTime, FakeLiError> {
        let count = self
            .order(numero)
            .ok_or(FakeLiError::UnknownOrder(numero))?
            .shipments
            .len();
        if index >= count {
            return Err(FakeLiError::NoSuchShipment { numero, index });
        }
        self.modify(numero, |o| {
            if let Some(s) = o.shipments.get_mut(index) {
                s.tracking = code.map(str::to_owned);
            }
        })
    }

    /// Add a shipment (split shipments); returns its `envios[].id`.
    pub fn add_shipment(&self, numero: Numero, shipment: Shipment) -> Result<u64, FakeLiError> {
        let mut shipment = shipment;
        let id = self.with(|store, _| {
            store.assign_shipment_id(&mut shipment);
            shipment.id
        });
        self.modify(numero, |o| o.shipments.push(shipment))?;
        Ok(id.unwrap_or_default())
    }

    /// Stamp the order modified now without changing anything else.
    pub fn touch(&self, numero: Numero) -> Result<DateTime, FakeLiError> {
        self.modify(numero, |_| {})
    }

    /// Set `data_modificacao` to `at` without changing anything else.
    pub fn set_modified(&self, numero: Numero, at: DateTime) -> Result<DateTime, FakeLiError> {
        self.modify_at(numero, at, |_| {})
    }

    /// Delete the order: it leaves search results and its detail answers 404.
    pub fn delete(&self, numero: Numero) -> Result<(), FakeLiError> {
        self.with(|store, _| {
            store
                .orders
                .remove(&numero)
                .map(|_| ())
                .ok_or(FakeLiError::UnknownOrder(numero))
        })
    }

    /// Make the next `times` requests matching `route` fail with `fault`.
    /// Faults queue up in the order they were added.
    pub fn fail(&self, route: Route, fault: Fault, times: usize) {
        if times > 0 {
            self.with(|store, _| {
                store.faults.push(PendingFault {
                    route,
                    fault,
                    remaining: times,
                })
            });
        }
    }

    /// Drop every pending fault and request action.
    pub fn clear_faults(&self) {
        self.with(|store, _| {
            store.faults.clear();
            store.actions.clear();
        });
    }

    /// Run `action` when the `nth` (1 = the next) request matching `route`
    /// that is answered normally arrives (rejected and faulted requests do not
    /// count), before the answer is rendered — to change the store at an exact
    /// point of a client's request sequence (e.g. between two detail calls of
    /// one page). The action runs outside the fake's lock and may use this handle.
    pub fn on_request(
        &self,
        route: Route,
        nth: usize,
        action: impl FnOnce(&LiStore) + Send + 'static,
    ) {
        self.with(|store, _| {
            store.actions.push(PendingAction {
                route,
                countdown: nth.max(1),
                action: Box::new(action),
            });
        });
    }

    /// Write `value` at the JSON pointer `pointer` (e.g. `/valor_total`,
    /// `/itens/0/quantidade`) of this order's detail answer from now on: the
    /// malformed data a real platform sends now and then (`"abc"` amounts,
    /// `null` statuses), which the typed model cannot express. A pointer
    /// that does not exist in the rendered detail sets nothing.
    pub fn override_detail(&self, numero: Numero, pointer: &str, value: Value) {
        self.with(|store, _| {
            store
                .detail_overrides
                .entry(numero)
                .or_default()
                .push((pointer.to_owned(), value));
        });
    }

    /// Answer every request with this store's credentials with `status` (401
    /// or 403: revoked key, expired token, IP not allowed); `None` restores access.
    pub fn reject_auth(&self, status: Option<u16>) {
        self.with(|store, _| store.auth_failure = status);
    }

    /// The order webhooks registered for this store, oldest first.
    pub fn webhooks(&self) -> Vec<WebhookRegistration> {
        self.with(|store, _| store.webhooks.clone())
    }

    /// Register an order webhook without going through HTTP (as `PUT
    /// /webhooks/v1/pedido` does); a known `notify_url` gets the new token.
    pub fn register_webhook(&self, notify_url: &str, token: &str) {
        let mut state = self.shared.lock();
        if let Some(store) = state.stores.get_mut(self.id) {
            store.register_webhook(notify_url, token);
        }
        state.pushes.log.publish(WebhookEvent::Registered {
            store: self.id,
            notify_url: notify_url.to_owned(),
        });
    }

    /// Remove the webhook registered for `notify_url` (as `DELETE
    /// /webhooks/v1/pedido` does); whether there was one.
    pub fn unregister_webhook(&self, notify_url: &str) -> bool {
        let mut state = self.shared.lock();
        let removed = state
            .stores
            .get_mut(self.id)
            .map_or(0, |store| store.unregister_webhook(notify_url));
        if removed > 0 {
            state.pushes.log.publish(WebhookEvent::Unregistered {
                store: self.id,
                notify_url: notify_url.to_owned(),
            });
        }
        removed > 0
    }

    /// Push the order as it is now, without changing it (`situacao_alterada`
    /// false), as LI's unprompted repeats do.
    pub fn push_again(&self, numero: Numero) -> Result<(), FakeLiError> {
        let id = self.id;
        self.with_pushes(|store, _, pushes| {
            if !store.orders.contains_key(&numero) {
                return Err(FakeLiError::UnknownOrder(numero));
            }
            store.push_change(id, numero, false, pushes);
            Ok(())
        })
    }

    /// Status history of an order (oldest first).
    pub fn history(&self, numero: Numero) -> Vec<HistoryEntry> {
        self.with(|store, _| store.history.get(&numero).cloned().unwrap_or_default())
    }

    /// Requests this store's credentials made so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        let id = self.id;
        self.shared
            .lock()
            .log
            .iter()
            .filter(|r| r.store == Some(id))
            .cloned()
            .collect()
    }
}
