//! Helpers of the operator tests (`check`, `report`, `queue`, metrics): the
//! `arauto` CLI as a child process, and a state database seeded with jobs in
//! known states through the real queue engine.

use std::path::Path;
use std::process::Output;

use arauto::queue::redb::{RedbOptions, RedbStore};
use arauto::queue::{Completion, JobId, NewJob, Receipt, StateStore};
use arauto_sim::channels::{FakeProvider, Provider};
use arauto_sim::li::{FakeLi, LiStore, Order, StoreAuth};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// What a CLI run produced.
#[derive(Debug)]
pub struct Run {
    /// Exit status (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// The standard output as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

impl From<Output> for Run {
    fn from(out: Output) -> Self {
        Self {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Run `arauto <args…>` with a scrubbed environment.
pub fn arauto(args: &[&str]) -> Run {
    super::daemon::arauto()
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run arauto")
        .into()
}

/// A state database in `state_dir`, opened like the daemon opens it.
pub fn open_store(state_dir: &Path) -> RedbStore {
    RedbStore::open(
        state_dir,
        RedbOptions {
            time_zone: TimeZone::get("America/Sao_Paulo").expect("time zone"),
            ..RedbOptions::default()
        },
    )
    .expect("open the state database")
}

/// How a seeded job ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Delivered.
    Sent,
    /// Dead-lettered.
    Dead,
    /// Expired during delivery.
    Expired,
    /// Skipped (no usable phone).
    Skipped,
    /// Cancelled while pending.
    Cancelled,
}

/// A job of `store` for `order` on `lane`, due a second ago.
pub fn job(store: &str, lane: &str, order: &str, kind: &str) -> NewJob {
    NewJob {
        channel: lane.into(),
        store: store.to_owned(),
        order_id: order.to_owned(),
        kind: kind.parse().expect("a notification kind"),
        priority: 1,
        due_at: Timestamp::now() - SignedDuration::from_secs(1),
        expires_at: None,
        max_attempts: 3,
        dedupe_keys: vec![format!("{store}/{order}/{kind}/{lane}")],
        payload: arauto::job::JobPayload {
            payload_version: arauto::job::JOB_PAYLOAD_VERSION,
            priority: 1,
            status_code: "pedido_pago".into(),
            tracking: None,
            order_number: format!("#{order}"),
            quiet_hours: arauto::job::QuietHoursMode::Defer,
        },
    }
}

/// Put `job` on the queue; its id.
pub async fn enqueue(store: &RedbStore, job: NewJob) -> JobId {
    store
        .enqueue(vec![job])
        .await
        .expect("enqueue")
        .remove(0)
        .id()
}

/// Put `job` on the queue and take it to `end` through the queue engine
/// (claim + complete, or cancel). The lane must have no other due job. A
/// send counts for today's local date (right for lanes without a daily cap).
pub async fn finish(store: &RedbStore, job: NewJob, end: End) -> JobId {
    let today = Timestamp::now()
        .to_zoned_datetime(TimeZone::get("America/Sao_Paulo").expect("tz"))
        .date();
    finish_on(store, job, end, today).await
}

/// [`finish`], a send counting for pacing day `pacing_day`.
pub async fn finish_on(
    store: &RedbStore,
    job: NewJob,
    end: End,
    pacing_day: jiff::civil::Date,
) -> JobId {
    let lane = job.channel.clone();
    let id = enqueue(store, job).await;
    if end == End::Cancelled {
        store
            .cancel(vec![id], "the order moved on".to_owned())
            .await
            .expect("cancel");
        return id;
    }
    let now = Timestamp::now();
    let claimed = store
        .claim(lane.as_str(), now, 1, SignedDuration::from_mins(5))
        .await
        .expect("claim");
    assert_eq!(
        claimed.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![id],
        "the seeded job must be the only due one on {lane}"
    );
    let completion = match end {
        End::Sent => Completion::Sent {
            receipt: Receipt {
                provider_message_id: Some(format!("wamid.{id}")),
                recipient_id: Some("5511987654321".to_owned()),
            },
            at: now,
            pacing_day,
        },
        End::Dead => Completion::Dead {
            reason: "recipient is not on WhatsApp".to_owned(),
        },
        End::Expired => Completion::Expired,
        End::Skipped => Completion::Skipped {
            reason: "no usable mobile phone".to_owned(),
        },
        End::Cancelled => unreachable!("handled above"),
    };
    store
        .complete(claimed[0].claim(), completion)
        .await
        .expect("complete");
    id
}

/// The line `item` of the checklist section `kind` (`general`, `store`,
/// `channel`) with id `id` (`None` for the general section).
pub fn check_line<'a>(
    checklist: &'a serde_json::Value,
    kind: &str,
    id: Option<&str>,
    item: &str,
) -> &'a serde_json::Value {
    let sections = checklist["sections"].as_array().expect("sections");
    let section = sections
        .iter()
        .find(|s| s["kind"] == kind && s["id"].as_str() == id)
        .unwrap_or_else(|| panic!("no {kind} section {id:?} in {checklist:#}"));
    section["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .find(|l| l["item"] == item)
        .unwrap_or_else(|| panic!("no {item} line in {section:#}"))
}

/// Assert that `line` has colour class `status` and that its text contains
/// every one of `needles`.
pub fn assert_line(line: &serde_json::Value, status: &str, needles: &[&str]) {
    assert_eq!(line["status"], status, "{line:#}");
    let text = line["text"].as_str().expect("text");
    for needle in needles {
        assert!(text.contains(needle), "{needle:?} not in {text:?}");
    }
}

/// The third parties: one LI store that accepts `chave-loja`/`chave-app` and
/// has one order, and an Evolution API that wants `apikey: evo-key`.
pub struct World {
    /// The fake LI API.
    pub li: FakeLi,
    /// Its store.
    pub store: LiStore,
    /// The fake Evolution API.
    pub whatsapp: FakeProvider,
}

pub fn world() -> World {
    let li = FakeLi::start_blocking().expect("fake LI");
    li.use_system_clock();
    let store = li.add_store(StoreAuth::api_key("chave-loja", "chave-app"));
    store.create_order(Order::new());
    let whatsapp =
        FakeProvider::start_in_background(Provider::EvolutionApi).expect("fake Evolution");
    whatsapp.require_auth("evo-key");
    World {
        li,
        store,
        whatsapp,
    }
}

/// Variations of the configuration.
pub struct Setup<'a> {
    /// `channels = …` of the store.
    pub channels: &'a str,
    /// The Evolution `api_key` arauto sends.
    pub evolution_key: &'a str,
    /// The store's `poll_interval`.
    pub poll_interval: &'a str,
    /// `[daemon]` lines added.
    pub daemon_extra: &'a str,
    /// Tables appended.
    pub extra: &'a str,
}

impl Default for Setup<'_> {
    fn default() -> Self {
        Self {
            channels: r#"["whatsapp"]"#,
            evolution_key: "evo-key",
            poll_interval: "2s",
            daemon_extra: "",
            extra: "",
        }
    }
}

/// The configuration of a daemon in `dir` against `world`.
pub fn config_text(dir: &Path, world: &World, setup: &Setup<'_>) -> String {
    let li = world.li.base_url();
    let wa = world.whatsapp.url();
    format!(
        r#"[daemon]
state_dir = {state:?}
cache_dir = {cache:?}
control_socket = {socket:?}
log_level = "info,arauto::send=debug"
{daemon_extra}

[stores.loja]
platform = "loja-integrada"
poll_interval = "{interval}"
channels = {channels}
[stores.loja.sandbox]
allowed_hosts = ["{li}"]
allow_private_addresses = true
[stores.loja.settings]
base_url = "{li}"
api_key = "chave-loja"
application_key = "chave-app"

[channels.whatsapp]
plugin = "evolution-api"
[channels.whatsapp.sandbox]
allowed_hosts = ["{wa}"]
allow_private_addresses = true
[channels.whatsapp.settings]
base_url = "{wa}"
instance = "loja"
api_key = "{key}"

{extra}
"#,
        state = dir.join("state").display().to_string(),
        cache = super::host::shared_cache_dir().display().to_string(),
        socket = dir.join("run/control.sock").display().to_string(),
        interval = setup.poll_interval,
        daemon_extra = setup.daemon_extra,
        channels = setup.channels,
        key = setup.evolution_key,
        extra = setup.extra,
    )
}

/// Start `arauto run` against `world`; returns once it is ready.
pub fn start(world: &World, setup: &Setup<'_>) -> super::daemon::Daemon {
    // The plugins the daemon loads from its default plugin_dir.
    super::plugins::first_party_plugins();
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("arauto.toml");
    std::fs::write(&config_path, config_text(dir.path(), world, setup)).expect("write config");
    let mut daemon = super::daemon::Daemon::spawn(dir, config_path, &[], &[]);
    daemon.await_notice("READY=1");
    daemon
}
