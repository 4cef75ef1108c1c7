//! The full system under test: the real `arauto` binary (via
//! [`super::daemon::Daemon`]) with the real first-party plugins, against fakes
//! of every third party on 127.0.0.1 — a fake Loja Integrada API
//! ([`arauto_sim::li::FakeLi`]), a fake Nuvemshop API
//! ([`arauto_sim::nuvemshop::FakeNuvemshop`], started on first use) and fake
//! channel providers ([`arauto_sim::channels::FakeProvider`]).
//!
//! A [`World`] owns the fakes and writes the configuration: shops
//! ([`World::shop`] → `[stores.<id>]` via [`World::store_toml`]; on
//! Nuvemshop [`World::nuvemshop_shop`] → [`World::nuvemshop_store_toml`]), channels
//! ([`World::channel`] → `[channels.<id>]` via [`World::channel_toml`]), and
//! starts the daemon on it ([`World::start`]) with every store's
//! `first_sync_cutoff` at [`World::start`] — the fake LI's clock when the world
//! was made — so that only orders changed after that produce notifications.
//! Polls run every second and sends are unpaced unless a test says otherwise.
//!
//! Waits are event-driven and bounded: on the fakes' received messages, on
//! the daemon's log lines, on its sd_notify messages.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use arauto::queue::redb::{RedbOptions, RedbStore};
use arauto::queue::{Job, JobFilter, StateStore};
use arauto_sim::channels::{FakeProvider, Provider, ReceivedMessage};
use arauto_sim::li::{Customer, DateTime, FakeLi, LiStore, Numero, Order, StoreAuth};
use arauto_sim::nuvemshop::{self as ns, FakeNuvemshop, NsStore, StoreCredentials};

use super::daemon::{Daemon, Lines, PATIENCE};

/// Every store polls this often.
pub const POLL_INTERVAL: &str = "1s";

/// A Standard Webhooks signing secret (24 random bytes, base64).
pub const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The Twilio Account SID of every Twilio channel (any well-formed SID).
pub const TWILIO_ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";

/// The plugins the system tests use, compiled once into the shared cache so
/// that each daemon start loads them in a fraction of a second.
const PLUGINS: [&str; 6] = [
    "loja-integrada",
    "nuvemshop",
    "evolution-api",
    "whatsapp-cloud",
    "webhook",
    "twilio-sms",
];

/// The fake third parties and the configuration that points arauto at them.
pub struct World {
    /// The fake Loja Integrada API (its clock is manual, set to about the
    /// real São Paulo time when the world was made).
    pub li: FakeLi,
    /// The fake LI's clock at creation (naive São Paulo time, whole
    /// seconds): every store's first-sync cutoff, and the start of scenarios.
    pub start: DateTime,
    /// The fake Nuvemshop API, started by the first [`World::nuvemshop`].
    nuvemshop: OnceLock<FakeNuvemshop>,
    runtime: tokio::runtime::Runtime,
}

/// One shop on the fake LI.
pub struct Shop {
    /// The store id in arauto's configuration.
    pub id: String,
    /// The fake LI store.
    pub li: LiStore,
    /// Its `chave_api`.
    pub api_key: String,
    /// Its `chave_aplicacao`.
    pub app_key: String,
}

/// One shop on the fake Nuvemshop.
pub struct NsShop {
    /// The store id in arauto's configuration.
    pub id: String,
    /// The fake Nuvemshop store.
    pub ns: NsStore,
    /// Its Nuvemshop `store_id` (the app's `user_id`).
    pub store_id: u64,
    /// The access token of the app installed on it.
    pub access_token: String,
    /// The app's secret, the key of its webhook signatures.
    pub app_secret: String,
}

/// The `User-Agent` Nuvemshop requires (`<app name> (<contact>)`).
pub const NS_USER_AGENT: &str = "arauto tests (ti@example.com)";

/// Extra TOML lines for a `[stores.<id>]` table and its sub-tables.
#[derive(Default)]
pub struct StoreKnobs {
    /// Lines in `[stores.<id>]` itself.
    pub table: String,
    /// Lines in `[stores.<id>.sandbox]`.
    pub sandbox: String,
    /// Lines in `[stores.<id>.settings]`.
    pub settings: String,
    /// A `chave_api` other than the shop's (a wrong key); on Nuvemshop, an
    /// `access_token` other than the shop's.
    pub api_key: Option<String>,
    /// Leave `first_sync_cutoff` unset: the store's first poll is its cutoff,
    /// as for a store a sysadmin adds without thinking about history.
    pub cutoff_at_first_poll: bool,
}

/// Knobs of a `[channels.<id>]` table.
pub struct ChannelKnobs {
    /// `min_interval` (pacing); unpaced by default.
    pub min_interval: String,
    /// `max_attempts`.
    pub max_attempts: u32,
    /// `retry_base`.
    pub retry_base: String,
    /// `retry_max`.
    pub retry_max: String,
    /// Lines in `[channels.<id>.sandbox]`.
    pub sandbox: String,
    /// Lines in `[channels.<id>.settings]`, replacing the provider's usual
    /// credential when they set the same key (see [`World::channel_toml`]).
    pub settings: String,
}

impl Default for ChannelKnobs {
    fn default() -> Self {
        Self {
            min_interval: "1ms".into(),
            max_attempts: 5,
            retry_base: "1s".into(),
            retry_max: "2s".into(),
            sandbox: String::new(),
            settings: String::new(),
        }
    }
}

impl World {
    /// A fake LI with no stores yet, its clock at the current São Paulo time.
    pub fn new() -> Self {
        let li = FakeLi::start_blocking().expect("start the fake Loja Integrada");
        let now = jiff::tz::Offset::constant(-3).to_datetime(jiff::Timestamp::now());
        let start = now
            .with()
            .subsec_nanosecond(0)
            .build()
            .expect("whole seconds");
        li.set_now(start);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for waiting on the fakes");
        Self {
            li,
            start,
            nuvemshop: OnceLock::new(),
            runtime,
        }
    }

    /// The fake Nuvemshop API, started on first use with its clock at
    /// [`World::start`] (a manual clock: each change stamps `updated_at` one
    /// second later than the one before, so no two changes of a test share a
    /// second, as they could not on a poll of the real API either).
    pub fn nuvemshop(&self) -> &FakeNuvemshop {
        self.nuvemshop.get_or_init(|| {
            let fake = FakeNuvemshop::start_blocking().expect("start the fake Nuvemshop");
            fake.set_now(self.start_instant());
            fake
        })
    }

    /// [`World::start`] as an instant.
    pub fn start_instant(&self) -> jiff::Timestamp {
        jiff::tz::Offset::constant(-3)
            .to_timestamp(self.start)
            .expect("the start is a valid São Paulo time")
    }

    /// A new store on the fake Nuvemshop, with its own store id, app access
    /// token and app secret.
    pub fn nuvemshop_shop(&self, id: &str) -> NsShop {
        static NEXT_STORE_ID: std::sync::atomic::AtomicU64 =
            std::sync::atomic::AtomicU64::new(1_200_001);
        let store_id = NEXT_STORE_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let access_token = format!("ns-token-{id}-{store_id}");
        let app_secret = format!("ns-app-secret-{id}");
        let ns =
            self.nuvemshop()
                .add_store(StoreCredentials::new(store_id, &access_token, &app_secret));
        NsShop {
            id: id.to_owned(),
            ns,
            store_id,
            access_token,
            app_secret,
        }
    }

    /// `[stores.<id>]` for the Nuvemshop `shop`, notifying through
    /// `channels`. [`StoreKnobs::api_key`] replaces the access token (a wrong
    /// token); the app secret is set, so pushes can be verified.
    pub fn nuvemshop_store_toml(
        &self,
        shop: &NsShop,
        channels: &[&str],
        knobs: StoreKnobs,
    ) -> String {
        let fake = self.nuvemshop();
        let settings = format!(
            "store_id = \"{store_id}\"\naccess_token = \"{token}\"\napp_secret = \"{secret}\"\n\
             user_agent = \"{NS_USER_AGENT}\"\nbase_url = \"{base}\"",
            store_id = shop.store_id,
            token = knobs.api_key.as_deref().unwrap_or(&shop.access_token),
            secret = shop.app_secret,
            base = fake.base_url(),
        );
        self.store_table(
            &shop.id,
            "nuvemshop",
            &fake.origin(),
            channels,
            &knobs,
            &settings,
        )
    }

    /// `[stores.<id>]` with its sandbox and settings tables: what every
    /// platform's store shares, around the connector's own `settings` lines.
    fn store_table(
        &self,
        id: &str,
        platform: &str,
        origin: &str,
        channels: &[&str],
        knobs: &StoreKnobs,
        settings: &str,
    ) -> String {
        let channels: Vec<String> = channels.iter().map(|c| format!("{c:?}")).collect();
        format!(
            r#"
[stores.{id}]
description = "Loja {id}"
platform = "{platform}"
poll_interval = "{POLL_INTERVAL}"
channels = [{channels}]
{cutoff}
{table}
[stores.{id}.sandbox]
allowed_hosts = ["{origin}"]
allow_private_addresses = true
{sandbox}
[stores.{id}.settings]
{settings}
{extra}
"#,
            channels = channels.join(", "),
            cutoff = if knobs.cutoff_at_first_poll {
                String::new()
            } else {
                format!("first_sync_cutoff = {:?}", self.cutoff())
            },
            table = knobs.table,
            sandbox = knobs.sandbox,
            extra = knobs.settings,
        )
    }

    /// [`World::start`] as the RFC 3339 instant arauto's config takes.
    pub fn cutoff(&self) -> String {
        format!("{}-03:00", self.start)
    }

    /// A new store on the fake LI with its own keys.
    pub fn shop(&self, id: &str) -> Shop {
        let api_key = format!("chave-{id}");
        let app_key = format!("aplicacao-{id}");
        let li = self.li.add_store(StoreAuth::api_key(&api_key, &app_key));
        Shop {
            id: id.to_owned(),
            li,
            api_key,
            app_key,
        }
    }

    /// A fake provider on a thread of its own.
    pub fn channel(&self, provider: Provider) -> FakeProvider {
        FakeProvider::start_in_background(provider).expect("start a fake provider")
    }

    /// `[stores.<id>]` for `shop`, notifying through `channels`.
    pub fn store_toml(&self, shop: &Shop, channels: &[&str], knobs: StoreKnobs) -> String {
        let li = self.li.base_url();
        let settings = format!(
            "api_key = \"{key}\"\napplication_key = \"{app}\"\nbase_url = \"{li}\"",
            key = knobs.api_key.as_deref().unwrap_or(&shop.api_key),
            app = shop.app_key,
        );
        self.store_table(&shop.id, "loja-integrada", &li, channels, &knobs, &settings)
    }

    /// `[channels.<id>]` sending through `fake` with the matching plugin and
    /// its usual test credentials: Evolution API `api_key = "evo-key"`,
    /// WhatsApp Cloud `access_token = "wa-token"` (free text allowed), webhook
    /// `url = <fake>/hooks/<id>`.
    pub fn channel_toml(&self, id: &str, fake: &FakeProvider, knobs: ChannelKnobs) -> String {
        let url = fake.url();
        let (plugin, mut settings) = match fake.provider() {
            Provider::EvolutionApi => (
                "evolution-api",
                vec![
                    ("base_url", url.clone()),
                    ("instance", format!("loja-{id}")),
                    ("api_key", "evo-key".to_owned()),
                ],
            ),
            Provider::WhatsAppCloud => (
                "whatsapp-cloud",
                vec![
                    ("base_url", url.clone()),
                    ("phone_number_id", "106540352242922".to_owned()),
                    ("access_token", "wa-token".to_owned()),
                    ("allow_free_text", "true".to_owned()),
                ],
            ),
            Provider::Twilio => (
                "twilio-sms",
                vec![
                    ("base_url", url.clone()),
                    ("account_sid", TWILIO_ACCOUNT_SID.to_owned()),
                    ("auth_token", "twilio-token".to_owned()),
                    ("from", "+15005550006".to_owned()),
                ],
            ),
            Provider::Webhook => (
                "webhook",
                vec![
                    ("url", format!("{url}/hooks/{id}")),
                    ("secret", WEBHOOK_SECRET.to_owned()),
                ],
            ),
            other => panic!("no channel template for {other}"),
        };
        let overridden: Vec<&str> = knobs
            .settings
            .lines()
            .filter_map(|line| line.split('=').next())
            .map(str::trim)
            .collect();
        settings.retain(|(key, _)| !overridden.contains(key));
        let settings: String = settings
            .iter()
            .map(|(key, value)| format!("{key} = {value:?}\n"))
            .collect();
        format!(
            r#"
[channels.{id}]
plugin = "{plugin}"
min_interval = "{min_interval}"
max_attempts = {max_attempts}
retry_base = "{retry_base}"
retry_max = "{retry_max}"
[channels.{id}.sandbox]
allowed_hosts = ["{url}"]
allow_private_addresses = true
{sandbox}
[channels.{id}.settings]
{settings}{extra}
"#,
            min_interval = knobs.min_interval,
            max_attempts = knobs.max_attempts,
            retry_base = knobs.retry_base,
            retry_max = knobs.retry_max,
            sandbox = knobs.sandbox,
            extra = knobs.settings,
        )
    }

    /// The configuration body (everything but `[daemon]`): `tables` plus the
    /// notification settings every test shares (no payment-reminder delay).
    pub fn body(tables: &str) -> String {
        format!("{tables}\n[notifications.waiting-payment]\ndelay = \"0s\"\n")
    }

    /// `arauto run [args]` on `tables`, with the shared compiled-plugin
    /// cache; returns once the daemon said READY=1.
    pub fn start(&self, tables: &str, args: &[&str]) -> Daemon {
        let mut daemon = self.spawn(tables, args);
        daemon.await_notice("READY=1");
        daemon
    }

    /// Like [`World::start`], without waiting for READY=1.
    pub fn spawn(&self, tables: &str, args: &[&str]) -> Daemon {
        let cache = plugin_cache();
        Daemon::start_with(
            &daemon_extra(),
            &Self::body(tables),
            &[(
                "ARAUTO_DAEMON__CACHE_DIR",
                cache.to_str().expect("utf-8 path"),
            )],
            args,
        )
    }

    /// Replace the daemon's configuration with `tables` (for a SIGHUP).
    pub fn rewrite(&self, daemon: &Daemon, tables: &str) {
        daemon.write_config(&daemon_extra(), &Self::body(tables));
    }

    /// Wait until `fake` accepted at least `n` messages; return them all.
    pub fn wait_received(&self, fake: &FakeProvider, n: usize) -> Vec<ReceivedMessage> {
        self.wait_received_within(fake, n, PATIENCE)
    }

    /// [`World::wait_received`] with another bound.
    pub fn wait_received_within(
        &self,
        fake: &FakeProvider,
        n: usize,
        patience: Duration,
    ) -> Vec<ReceivedMessage> {
        let waited = self
            .runtime
            .block_on(async { tokio::time::timeout(patience, fake.wait_for_received(n)).await });
        match waited {
            Ok(received) => received,
            Err(_) => panic!(
                "{} accepted {} messages, not {n}, within {patience:?}: {:#?}",
                fake.provider(),
                fake.received().len(),
                fake.received()
            ),
        }
    }

    /// Wait until `fake` got at least `n` requests (any endpoint).
    pub fn wait_requests(&self, fake: &FakeProvider, n: usize) {
        let waited = self
            .runtime
            .block_on(async { tokio::time::timeout(PATIENCE, fake.wait_for_requests(n)).await });
        assert!(
            waited.is_ok(),
            "{} got {} requests, not {n}",
            fake.provider(),
            fake.requests().len()
        );
    }

    /// Run a future of the fakes or the state store to completion.
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }
}

/// `[daemon]` lines every system test shares: the built plugins.
fn daemon_extra() -> String {
    let plugins = super::plugins::first_party_plugins();
    format!("plugin_dir = {:?}\n", plugins.display().to_string())
}

/// The shared compiled-plugin cache, filled once per test binary (compiling
/// in a debug build takes seconds per plugin; loading from it, milliseconds).
pub fn plugin_cache() -> PathBuf {
    static WARM: OnceLock<()> = OnceLock::new();
    WARM.get_or_init(|| {
        let plugins = super::plugins::first_party_plugins();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let host = super::host::host();
            for name in PLUGINS {
                host.load(plugins.join(format!("{name}.wasm")))
                    .await
                    .unwrap_or_else(|e| panic!("compiling plugin {name}: {e}"));
            }
        });
    });
    super::host::shared_cache_dir()
}

/// A simple order for `first_name` with its own mobile number `11 98765-NNNN`
/// (`serial` < 10 000), at `status`.
pub fn order_for(first_name: &str, serial: u32, status: &str) -> Order {
    Order::new()
        .status(status)
        .customer(customer(first_name, serial))
}

/// A pending (open, unpacked) Nuvemshop order for `first_name` with the
/// mobile `(11) 98765-NNNN` (`serial` < 10 000) as its contact phone.
pub fn ns_order_for(first_name: &str, serial: u32) -> ns::Order {
    ns::Order::new().customer(
        ns::Customer::new(&format!("{first_name} Teste"))
            .email(&format!(
                "{}.{serial}@example.com",
                first_name.to_lowercase()
            ))
            .phone(&format!("(11) 98765-{serial:04}")),
    )
}

/// A customer with an e-mail and the mobile `(11) 98765-NNNN`.
pub fn customer(first_name: &str, serial: u32) -> Customer {
    Customer::new(&format!("{first_name} Teste"))
        .email(&format!(
            "{}.{serial}@example.com",
            first_name.to_lowercase()
        ))
        .mobile(&format!("(11) 98765-{serial:04}"))
}

/// The number gateways such as Evolution API receive for [`customer`] `serial`.
pub fn phone_digits(serial: u32) -> String {
    format!("551198765{serial:04}")
}

/// `R$ 1.234,56`, written here independently of arauto's formatter.
pub fn brl(cents: i64) -> String {
    let reais = (cents / 100).to_string();
    let mut grouped = String::new();
    for (i, digit) in reais.chars().enumerate() {
        if i > 0 && (reais.len() - i).is_multiple_of(3) {
            grouped.push('.');
        }
        grouped.push(digit);
    }
    format!("R$ {grouped},{:02}", cents % 100)
}

/// The value of `key=` in a text log line (tracing's `key=value` fields).
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let needle = format!(" {key}=");
    let start = line.rfind(&needle)? + needle.len();
    let rest = &line[start..];
    let value = rest.split_whitespace().next().unwrap_or("");
    // Debug-formatted values (`provider_message_id="…"`) come quoted.
    Some(
        value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value),
    )
}

/// Whether `line` is the log line `message` about store `store`.
pub fn is_about_store(line: &str, message: &str, store: &str) -> bool {
    line.contains(message) && field(line, "store") == Some(store)
}

/// Wait for `n` "poll complete" lines of `store` logged at index `from` or
/// later; returns the index of the last one. A change made before `from` is
/// certainly seen by the second of them (the first may have been under way).
pub fn wait_polls(lines: &Lines, store: &str, from: usize, n: usize) -> usize {
    let mut at = from;
    for _ in 0..n {
        let (index, _) = lines.wait_for_matching(at, PATIENCE, "poll complete", |line| {
            is_about_store(line, "poll complete", store)
        });
        at = index + 1;
    }
    at
}

/// `(order, notification)` of every "notification sent" line, in order.
pub fn sent_notifications(lines: &[String]) -> Vec<(String, String)> {
    lines
        .iter()
        .filter(|line| line.contains("notification sent"))
        .map(|line| {
            (
                field(line, "order").unwrap_or_default().to_owned(),
                field(line, "notification").unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Create `order` in `shop` and return its numero.
pub fn create(shop: &Shop, order: Order) -> Numero {
    shop.li.create_order(order)
}

/// The daemon's state database, opened after the daemon stopped.
pub struct StateDb {
    store: RedbStore,
    runtime: tokio::runtime::Runtime,
}

impl StateDb {
    /// Open the state of `daemon` (which must have exited: redb allows one process).
    pub fn open(daemon: &Daemon) -> Self {
        assert!(
            !daemon.is_running(),
            "open the state database only after the daemon exited"
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let store = RedbStore::open(&daemon.dir.path().join("state"), RedbOptions::default())
            .expect("open the daemon's state database");
        Self { store, runtime }
    }

    /// The store.
    pub fn store(&self) -> &RedbStore {
        &self.store
    }

    /// Run a query.
    pub fn run<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// Every job matching `filter`.
    pub fn jobs(&self, filter: JobFilter) -> Vec<Job> {
        self.run(self.store.list(filter)).expect("list jobs")
    }

    /// Every job.
    pub fn all_jobs(&self) -> Vec<Job> {
        self.jobs(JobFilter::default())
    }

    /// Jobs of one order.
    pub fn jobs_for_order(&self, store: &str, order: &str) -> Vec<Job> {
        self.run(self.store.jobs_for_order(store, order))
            .expect("jobs of an order")
    }

    /// The connector cursor of `store`.
    pub fn cursor(&self, store: &str) -> Option<String> {
        self.run(self.store.cursor(store)).expect("cursor")
    }

    /// Check every record and index; panics on problems.
    pub fn verify(&self) {
        let report = self.run(self.store.verify()).expect("verify");
        assert!(
            report.problems.is_empty(),
            "state database inconsistent: {:#?}",
            report.problems
        );
    }
}

/// Count of each item.
pub fn tally<T: Ord + Clone>(items: impl IntoIterator<Item = T>) -> BTreeMap<T, usize> {
    let mut counts = BTreeMap::new();
    for item in items {
        *counts.entry(item).or_insert(0) += 1;
    }
    counts
}

/// Wait until `n` lines containing `needle` were logged at index `from` or
/// later; returns the index after the last of them.
pub fn wait_lines(lines: &Lines, from: usize, needle: &str, n: usize) -> usize {
    let mut at = from;
    for _ in 0..n {
        let (index, _) = lines.wait_for_from(at, needle);
        at = index + 1;
    }
    at
}

/// The E.164 number of [`customer`] `serial`, as the WhatsApp Cloud API receives it.
pub fn e164(serial: u32) -> String {
    format!("+{}", phone_digits(serial))
}
