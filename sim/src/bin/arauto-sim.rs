//! `arauto-sim`: a fake Loja Integrada store whose orders move through a
//! scripted story, and a fake WhatsApp gateway (Evolution API) that prints
//! every message it receives — the other half of `make demo`, and a
//! ready-made third-party world for full-system tests.
//!
//! Everything listens on 127.0.0.1. Human-readable output by default; `--json`
//! prints one JSON object per line (`ready`, `waiting-for-first-poll`,
//! `scenario-started`, `step`, `message`, `webhook-registered`,
//! `webhook-unregistered`, `push`, `scenario-finished`, `warning`, `stopped`).
//! SIGINT/SIGTERM stop it cleanly with exit status 0.
//!
//! With `--push`, the fake store pushes every order change to the webhooks
//! registered with it (`PUT /webhooks/v1/pedido`, as `arauto webhooks
//! register` does), in Loja Integrada's push shape; `--push` registers nothing
//! by itself.
//!
//! `--platform nuvemshop` plays the Nuvemshop story instead, on a fake
//! Nuvemshop API (`--ns-listen`, default 127.0.0.1:18935; see
//! docs/platforms/nuvemshop-sim.md); `--platform both` plays both stories at
//! once, one store each, into the same WhatsApp sink. The Loja Integrada API
//! listens in every mode (idle, without a story, under `nuvemshop`).

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use arauto_sim::channels::{FakeProvider, Provider, ReceivedMessage};
use arauto_sim::li::{
    FakeLi, LiStore, PushOptions, PushOutcome, PushRecord, Route, StoreAuth, WebhookEvent,
};
use arauto_sim::nuvemshop::{self as ns, FakeNuvemshop, NsDemo, NsDemoStep, NsStore};
use arauto_sim::scenario::{AppliedStep, ExpectedNotification, RunOutcome, Scenario, Speed};
use clap::{Parser, ValueEnum};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{broadcast, oneshot, watch};

/// Fake Loja Integrada (and, with --platform, Nuvemshop) store + WhatsApp sink
/// for arauto's demo and tests.
///
/// Serves the Loja Integrada REST API (one store, demo credentials) with orders
/// that move through statuses over about three minutes, and a fake Evolution
/// API (a self-hosted WhatsApp gateway) that prints each message arauto sends.
/// Point `config/demo.toml` at the printed URLs and credentials.
#[derive(Debug, Parser)]
#[command(name = "arauto-sim", version)]
struct Cli {
    /// Where the fake Loja Integrada API listens (`PORT`, `IP:PORT`; `0` = a free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:18931", value_parser = parse_listen)]
    li_listen: SocketAddr,

    /// Where the fake Evolution API (WhatsApp sink) listens (`0` = a free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:18932", value_parser = parse_listen)]
    evolution_listen: SocketAddr,

    /// Also run a webhook receiver that prints every POST (`--webhook-listen`
    /// alone = 127.0.0.1:18934, next to the demo daemon's push listener on
    /// 18933; `0` = a free port).
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:18934", value_parser = parse_listen)]
    webhook_listen: Option<SocketAddr>,

    /// Push every order change to the webhooks registered with the fake store
    /// (`PUT /webhooks/v1/pedido`), as Loja Integrada does. Registers nothing
    /// by itself: without it, registrations are accepted but nothing is pushed.
    #[arg(long)]
    push: bool,

    /// Send each push this many times (Loja Integrada repeats deliveries).
    #[arg(long, value_name = "N", default_value_t = 1, requires = "push", value_parser = clap::value_parser!(u32).range(1..=100))]
    push_repeats: u32,

    /// Wait this many milliseconds after a change before pushing it.
    #[arg(long, value_name = "MS", default_value_t = 0, requires = "push")]
    push_delay_ms: u64,

    /// Never send this share (0–1) of the pushes, spread evenly (1 = drop all:
    /// polling alone must deliver).
    #[arg(long, value_name = "FRACTION", default_value_t = 0.0, requires = "push", value_parser = parse_fraction)]
    push_drop: f64,

    /// Push with a token other than the registered one (the receiver must refuse them).
    #[arg(long, requires = "push")]
    push_wrong_token: bool,

    /// Give up on a push whose answer takes longer than this many milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 5000, requires = "push", value_parser = clap::value_parser!(u64).range(1..))]
    push_timeout_ms: u64,

    /// The store's `chave_api` (sent as `Authorization: chave_api … aplicacao …`).
    #[arg(long, value_name = "KEY", default_value = "demo-chave-api")]
    api_key: String,

    /// The integrator's `chave_aplicacao`.
    #[arg(long, value_name = "KEY", default_value = "demo-chave-aplicacao")]
    application_key: String,

    /// Also accept this personal token (`Authorization: Basic <token>`).
    #[arg(long, value_name = "TOKEN")]
    personal_token: Option<String>,

    /// The `apikey` header the Evolution API sink requires.
    #[arg(long, value_name = "KEY", default_value = "demo-evolution-apikey")]
    evolution_apikey: String,

    /// The Evolution instance name to configure in arauto (printed for the
    /// config; the sink accepts any instance).
    #[arg(long, value_name = "NAME", default_value = "arauto-demo")]
    evolution_instance: String,

    /// The story the store's orders follow.
    #[arg(long, value_enum, default_value_t = ScenarioName::Demo, conflicts_with = "no_scenario")]
    scenario: ScenarioName,

    /// Serve an empty store and change nothing (tests drive it themselves).
    #[arg(long)]
    no_scenario: bool,

    /// How many times faster than real time the story runs (1 = about three minutes).
    #[arg(long, value_name = "FACTOR", default_value = "1.0")]
    speed: Speed,

    /// When the story starts: at arauto's first poll of the store (so nothing
    /// happens before arauto has seen the store), or right away.
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = StartMode::FirstPoll)]
    start: StartMode,

    /// Once listening, write the URLs and credentials here as JSON (removed on exit).
    #[arg(long, value_name = "PATH")]
    ready_file: Option<PathBuf>,

    /// One JSON object per line on stdout instead of text.
    #[arg(long)]
    json: bool,

    /// Print the story's timeline and expected notifications, then exit.
    #[arg(long)]
    plan: bool,

    /// Which fake store plays its story: Loja Integrada, Nuvemshop, or both
    /// at once (one store each, one WhatsApp sink).
    #[arg(long, value_enum, default_value_t = Platform::Li)]
    platform: Platform,

    /// Where the fake Nuvemshop API listens (`0` = a free port); its base URL
    /// is `http://ADDR/v1`.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:18935", value_parser = parse_listen)]
    ns_listen: SocketAddr,

    /// The fake Nuvemshop store's id (the `store_id` in every path).
    #[arg(long, value_name = "ID", default_value_t = 1_234_567)]
    ns_store_id: u64,

    /// The access token the fake Nuvemshop store accepts (`Authentication: bearer …`).
    #[arg(long, value_name = "TOKEN", default_value = "demo-nuvemshop-token")]
    ns_access_token: String,

    /// The app secret the fake Nuvemshop signs its pushes with (`x-linkedstore-hmac-sha256`).
    #[arg(
        long,
        value_name = "SECRET",
        default_value = "demo-nuvemshop-app-secret"
    )]
    ns_app_secret: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Platform {
    /// The Loja Integrada story (the default).
    Li,
    /// The Nuvemshop story.
    Nuvemshop,
    /// Both stories at once.
    Both,
}

impl Platform {
    fn plays_li(self) -> bool {
        self != Self::Nuvemshop
    }
    fn plays_nuvemshop(self) -> bool {
        self != Self::Li
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ScenarioName {
    /// Five orders: happy path, jump, cancellation, split shipment, no phone; 20 old orders.
    Demo,
}

impl ScenarioName {
    fn as_str(self) -> &'static str {
        match self {
            Self::Demo => arauto_sim::scenario::DEMO,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum StartMode {
    /// When arauto first searches the store's orders.
    FirstPoll,
    /// As soon as the servers listen.
    Now,
}

impl StartMode {
    fn as_str(self) -> &'static str {
        match self {
            Self::FirstPoll => "first-poll",
            Self::Now => "now",
        }
    }
}

fn parse_fraction(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(share) if (0.0..=1.0).contains(&share) => Ok(share),
        _ => Err(format!(
            "{value:?} is not a share between 0 and 1 (e.g. 0.5 drops every second push)"
        )),
    }
}

impl Cli {
    fn push_options(&self) -> PushOptions {
        PushOptions {
            enabled: self.push,
            repeats: self.push_repeats,
            delay: Duration::from_millis(self.push_delay_ms),
            drop_fraction: self.push_drop,
            wrong_token: self.push_wrong_token,
            timeout: Duration::from_millis(self.push_timeout_ms),
        }
    }

    /// The same knobs for the fake Nuvemshop (`--push-wrong-token` signs
    /// with a wrong secret there).
    fn ns_push_options(&self) -> ns::PushOptions {
        ns::PushOptions {
            enabled: self.push,
            repeats: self.push_repeats,
            delay: Duration::from_millis(self.push_delay_ms),
            drop_fraction: self.push_drop,
            wrong_signature: self.push_wrong_token,
            timeout: Duration::from_millis(self.push_timeout_ms),
            // Nuvemshop retries a push not answered 200 (14 times over three
            // days); the demo keeps one attempt per copy, as for LI.
            ..ns::PushOptions::default()
        }
    }
}

fn parse_listen(value: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = value.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    value.parse::<SocketAddr>().map_err(|_| {
        format!("{value:?} is not a port or an IP:PORT address (e.g. 18931, 127.0.0.1:18931, 0 for a free port)")
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("arauto-sim: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let origin = Instant::now();
    let printer = Arc::new(Printer {
        json: cli.json,
        origin,
    });
    if cli.plan {
        if cli.platform.plays_li() {
            let scenario = Scenario::by_name(cli.scenario.as_str(), sao_paulo_now())
                .ok_or_else(|| anyhow!("unknown scenario {:?}", cli.scenario.as_str()))?;
            printer.plan(&scenario);
        }
        if cli.platform.plays_nuvemshop() {
            printer.ns_plan(&NsDemo::new(jiff::Timestamp::now()));
        }
        return Ok(());
    }
    // Installed first: a signal during start-up still ends the process cleanly.
    let mut sigterm = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut sigint = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;

    let li = FakeLi::start_on(cli.li_listen).await.with_context(|| {
        format!(
            "cannot listen on {} for the fake Loja Integrada API (--li-listen; 0 picks a free port)",
            cli.li_listen
        )
    })?;
    // arauto polls with real time and cuts off the first sync by it.
    li.use_system_clock();
    let push = cli.push_options();
    li.configure_pushes(|options| *options = push.clone());
    // Subscribed before announcing readiness, so no registration goes unprinted.
    tokio::spawn(print_webhook_events(
        li.subscribe_webhooks(),
        push.enabled,
        Arc::clone(&printer),
    ));
    let mut auth = StoreAuth::api_key(&cli.api_key, &cli.application_key);
    if let Some(token) = &cli.personal_token {
        auth = auth.and_personal_token(token);
    }
    let store = li.add_store(auth);

    let evolution = FakeProvider::start_on(Provider::EvolutionApi, cli.evolution_listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} for the Evolution API sink (--evolution-listen; 0 picks a free port)",
                cli.evolution_listen
            )
        })?;
    evolution.require_auth(&cli.evolution_apikey);
    let webhook = match cli.webhook_listen {
        Some(addr) => Some(
            FakeProvider::start_on(Provider::Webhook, addr)
                .await
                .with_context(|| {
                    format!(
                        "cannot listen on {addr} for the webhook receiver (--webhook-listen; 0 picks a free port)"
                    )
                })?,
        ),
        None => None,
    };
    // Subscribed before announcing readiness, so no message can slip by.
    for fake in std::iter::once(&evolution).chain(webhook.as_ref()) {
        tokio::spawn(print_messages(fake.subscribe(), Arc::clone(&printer)));
    }

    let nuvemshop = if cli.platform.plays_nuvemshop() {
        Some(start_nuvemshop(&cli, &printer).await?)
    } else {
        None
    };

    let mut scenario = if cli.no_scenario || !cli.platform.plays_li() {
        None
    } else {
        // Started now, so the history is older than anything arauto will see happen.
        Some(
            Scenario::by_name(cli.scenario.as_str(), li.now())
                .ok_or_else(|| anyhow!("unknown scenario {:?}", cli.scenario.as_str()))?,
        )
    };
    if let Some(scenario) = &mut scenario {
        scenario.seed_history(&store)?;
    }
    let (first_poll_tx, first_poll) = oneshot::channel::<()>();
    if cli.start == StartMode::FirstPoll && scenario.is_some() {
        // Only searches answered normally count: bad credentials do not start the story.
        store.on_request(Route::Search, 1, move |_| {
            let _ = first_poll_tx.send(());
        });
    }

    let ready = Ready {
        li: LiInfo {
            url: li.base_url(),
            chave_api: cli.api_key.clone(),
            chave_aplicacao: cli.application_key.clone(),
            personal_token: cli.personal_token.clone(),
            webhook_registration: format!("{}/webhooks/v1/pedido", li.base_url()),
            push: push.enabled.then_some(PushInfo {
                repeats: push.repeats,
                delay_ms: cli.push_delay_ms,
                drop_fraction: push.drop_fraction,
                wrong_token: push.wrong_token,
                timeout_ms: cli.push_timeout_ms,
            }),
        },
        evolution: EvolutionInfo {
            url: evolution.url(),
            apikey: cli.evolution_apikey.clone(),
            instance: cli.evolution_instance.clone(),
        },
        webhook: webhook.as_ref().map(|w| WebhookInfo { url: w.url() }),
        nuvemshop: nuvemshop.as_ref().map(|n| n.info.clone()),
        scenario: scenario.as_ref().map(|s| ScenarioInfo {
            name: s.name().to_owned(),
            speed: cli.speed.factor(),
            start: cli.start.as_str(),
            steps: s.steps().len(),
            duration_secs: s.duration().as_secs_f64(),
            historical_orders: s.history().len(),
            expected_notifications: s.expected_notifications().len(),
            expected_on_phone_channels: s.expected_on_phone_channels().len(),
        }),
        pid: std::process::id(),
    };
    if let Some(path) = &cli.ready_file {
        write_ready_file(path, &ready)?;
    }
    printer.ready(&ready);

    let (cancel_tx, cancel) = watch::channel(false);
    let ns_story = nuvemshop.as_ref().map(|n| {
        tokio::spawn(drive_nuvemshop(
            n.demo.clone(),
            n.store.clone(),
            cli.speed,
            cli.start,
            n.first_poll.lock().ok().and_then(|mut f| f.take()),
            cancel.clone(),
            Arc::clone(&printer),
        ))
    });
    let mut story = tokio::spawn(drive(
        scenario,
        store,
        cli.speed,
        cli.start,
        first_poll,
        cancel,
        Arc::clone(&printer),
    ));
    let mut story_running = true;
    let mut steps_applied = 0;
    let signal_name = loop {
        tokio::select! {
            _ = sigterm.recv() => break "SIGTERM",
            _ = sigint.recv() => break "SIGINT",
            joined = &mut story, if story_running => {
                story_running = false;
                match joined {
                    Ok(Ok(applied)) => steps_applied = applied,
                    Ok(Err(e)) => {
                        remove_ready_file(cli.ready_file.as_deref());
                        return Err(e);
                    }
                    Err(e) => {
                        remove_ready_file(cli.ready_file.as_deref());
                        return Err(anyhow!("the scenario task failed: {e}"));
                    }
                }
            }
        }
    };
    let _ = cancel_tx.send(true);
    if story_running && let Ok(Ok(applied)) = story.await {
        steps_applied = applied;
    }
    if let Some(ns_story) = ns_story {
        match ns_story.await {
            Ok(Ok(applied)) => steps_applied += applied,
            Ok(Err(e)) => printer.warning(&format!("the Nuvemshop story failed: {e:#}")),
            Err(e) => printer.warning(&format!("the Nuvemshop story task failed: {e}")),
        }
    }
    let messages = evolution.received().len() + webhook.as_ref().map_or(0, |w| w.received().len());
    printer.stopped(signal_name, steps_applied, messages);
    remove_ready_file(cli.ready_file.as_deref());
    drop((li, evolution, webhook, nuvemshop));
    Ok(())
}

/// The running fake Nuvemshop with its store and story.
struct NuvemshopSide {
    _fake: FakeNuvemshop,
    store: NsStore,
    demo: Option<NsDemo>,
    /// Fires at the first order listing answered normally (taken once by the story).
    first_poll: std::sync::Mutex<Option<oneshot::Receiver<()>>>,
    info: NsInfo,
}

async fn start_nuvemshop(cli: &Cli, printer: &Arc<Printer>) -> anyhow::Result<NuvemshopSide> {
    let fake = FakeNuvemshop::start_on(cli.ns_listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} for the fake Nuvemshop API (--ns-listen; 0 picks a free port)",
                cli.ns_listen
            )
        })?;
    fake.use_system_clock();
    let push = cli.ns_push_options();
    fake.configure_pushes(|options| *options = push.clone());
    tokio::spawn(print_ns_webhook_events(
        fake.subscribe_webhooks(),
        push.enabled,
        Arc::clone(printer),
    ));
    let store = fake.add_store(ns::StoreCredentials::new(
        cli.ns_store_id,
        &cli.ns_access_token,
        &cli.ns_app_secret,
    ));
    let demo = (!cli.no_scenario).then(|| NsDemo::new(fake.now()));
    if let Some(demo) = &demo {
        demo.seed_history(&store)
            .context("cannot seed the Nuvemshop story's old orders")?;
    }
    let (first_poll_tx, first_poll) = oneshot::channel::<()>();
    if cli.start == StartMode::FirstPoll && demo.is_some() {
        store.on_request(ns::Route::List, 1, move |_| {
            let _ = first_poll_tx.send(());
        });
    }
    let info = NsInfo {
        url: fake.base_url(),
        store_id: cli.ns_store_id,
        access_token: cli.ns_access_token.clone(),
        app_secret: cli.ns_app_secret.clone(),
        webhook_registration: format!("{}/{}/webhooks", fake.base_url(), cli.ns_store_id),
        pushing: push.enabled,
        scenario: demo.as_ref().map(|d| NsScenarioInfo {
            name: d.name().to_owned(),
            speed: cli.speed.factor(),
            steps: d.steps().len(),
            duration_secs: d.duration().as_secs_f64(),
            historical_orders: d.history().len(),
            expected_notifications: d.expected_notifications().len(),
        }),
    };
    Ok(NuvemshopSide {
        _fake: fake,
        store,
        demo,
        first_poll: std::sync::Mutex::new(Some(first_poll)),
        info,
    })
}

/// Play the Nuvemshop story in real time; how many steps it applied.
async fn drive_nuvemshop(
    demo: Option<NsDemo>,
    store: NsStore,
    speed: Speed,
    start: StartMode,
    first_poll: Option<oneshot::Receiver<()>>,
    mut cancel: watch::Receiver<bool>,
    printer: Arc<Printer>,
) -> anyhow::Result<usize> {
    let Some(mut demo) = demo else {
        return Ok(0);
    };
    if start == StartMode::FirstPoll
        && let Some(first_poll) = first_poll
    {
        printer.ns_waiting_for_first_poll();
        tokio::select! {
            _ = first_poll => {}
            _ = cancel.wait_for(|stop| *stop) => return Ok(0),
        }
    }
    printer.ns_started(&demo, speed);
    let begun = Instant::now();
    let mut applied = 0;
    while let Some(wait) = demo.wait_before_next(begun.elapsed(), speed) {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = cancel.wait_for(|stop| *stop) => return Ok(applied),
        }
        match demo.apply_next(&store)? {
            Some(step) => {
                applied += 1;
                printer.ns_step(&step);
            }
            None => break,
        }
    }
    printer.ns_finished(&demo);
    Ok(applied)
}

async fn print_ns_webhook_events(
    mut events: broadcast::Receiver<ns::WebhookEvent>,
    pushing: bool,
    printer: Arc<Printer>,
) {
    loop {
        match events.recv().await {
            Ok(event) => printer.ns_webhook_event(&event, pushing),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                printer.warning(&format!(
                    "{missed} Nuvemshop webhook events were not printed (output too slow)"
                ));
            }
            Err(broadcast::error::RecvError::Closed) => break,
        }
    }
}

/// Run the story (when there is one) and return how many steps it applied.
async fn drive(
    scenario: Option<Scenario>,
    store: LiStore,
    speed: Speed,
    start: StartMode,
    first_poll: oneshot::Receiver<()>,
    mut cancel: watch::Receiver<bool>,
    printer: Arc<Printer>,
) -> anyhow::Result<usize> {
    let Some(mut scenario) = scenario else {
        return Ok(0);
    };
    if start == StartMode::FirstPoll {
        printer.waiting_for_first_poll();
        tokio::select! {
            _ = first_poll => {}
            _ = cancel.wait_for(|stop| *stop) => return Ok(0),
        }
    }
    printer.scenario_started(&scenario, start, speed);
    let cancelled = async move {
        let _ = cancel.wait_for(|stop| *stop).await;
    };
    let outcome = scenario
        .run(&store, speed, cancelled, |step| printer.step(step))
        .await?;
    Ok(match outcome {
        RunOutcome::Finished { applied } => {
            printer.scenario_finished(&scenario);
            applied
        }
        RunOutcome::Cancelled { applied } => applied,
    })
}

async fn print_messages(mut messages: broadcast::Receiver<ReceivedMessage>, printer: Arc<Printer>) {
    loop {
        match messages.recv().await {
            Ok(message) => printer.message(&message),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                printer.warning(&format!(
                    "{missed} received messages were not printed (output too slow)"
                ));
            }
            Err(broadcast::error::RecvError::Closed) => break,
        }
    }
}

async fn print_webhook_events(
    mut events: broadcast::Receiver<WebhookEvent>,
    pushing: bool,
    printer: Arc<Printer>,
) {
    loop {
        match events.recv().await {
            Ok(event) => printer.webhook_event(&event, pushing),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                printer.warning(&format!(
                    "{missed} webhook events were not printed (output too slow)"
                ));
            }
            Err(broadcast::error::RecvError::Closed) => break,
        }
    }
}

fn sao_paulo_now() -> jiff::civil::DateTime {
    jiff::tz::Offset::constant(-3).to_datetime(jiff::Timestamp::now())
}

#[derive(Debug, Serialize)]
struct Ready {
    li: LiInfo,
    evolution: EvolutionInfo,
    webhook: Option<WebhookInfo>,
    scenario: Option<ScenarioInfo>,
    /// The fake Nuvemshop (`--platform nuvemshop` or `both`).
    nuvemshop: Option<NsInfo>,
    pid: u32,
}

#[derive(Clone, Debug, Serialize)]
struct NsInfo {
    /// The API base: store paths go below it (`{url}/{store_id}/orders`).
    url: String,
    store_id: u64,
    access_token: String,
    app_secret: String,
    /// Where webhooks are registered (`POST`).
    webhook_registration: String,
    pushing: bool,
    scenario: Option<NsScenarioInfo>,
}

#[derive(Clone, Debug, Serialize)]
struct NsScenarioInfo {
    name: String,
    speed: f64,
    steps: usize,
    duration_secs: f64,
    historical_orders: usize,
    expected_notifications: usize,
}

#[derive(Debug, Serialize)]
struct LiInfo {
    url: String,
    chave_api: String,
    chave_aplicacao: String,
    personal_token: Option<String>,
    /// Where order webhooks are registered (`PUT`/`DELETE`).
    webhook_registration: String,
    /// How changes are pushed; `None` without `--push`.
    push: Option<PushInfo>,
}

#[derive(Debug, Serialize)]
struct PushInfo {
    repeats: u32,
    delay_ms: u64,
    drop_fraction: f64,
    wrong_token: bool,
    timeout_ms: u64,
}

#[derive(Debug, Serialize)]
struct EvolutionInfo {
    url: String,
    apikey: String,
    instance: String,
}

#[derive(Debug, Serialize)]
struct WebhookInfo {
    url: String,
}

#[derive(Debug, Serialize)]
struct ScenarioInfo {
    name: String,
    speed: f64,
    start: &'static str,
    steps: usize,
    duration_secs: f64,
    historical_orders: usize,
    expected_notifications: usize,
    expected_on_phone_channels: usize,
}

/// Written to a temporary name and renamed, so readers never see half a file.
fn write_ready_file(path: &Path, ready: &Ready) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let body = serde_json::to_string_pretty(ready).context("cannot encode the ready file")?;
    std::fs::write(&tmp, body + "\n").with_context(|| {
        format!(
            "cannot write the ready file {} (--ready-file)",
            tmp.display()
        )
    })?;
    std::fs::rename(&tmp, path).with_context(|| {
        format!(
            "cannot move {} to the ready file {} (--ready-file)",
            tmp.display(),
            path.display()
        )
    })
}

fn remove_ready_file(path: Option<&Path>) {
    if let Some(path) = path
        && let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        eprintln!(
            "arauto-sim: cannot remove the ready file {}: {e}",
            path.display()
        );
    }
}

/// Everything printed on stdout goes through here: text or JSON lines.
struct Printer {
    json: bool,
    origin: Instant,
}

/// Continuation lines start under the event text (`t+ 123.4s  ▸ `).
const INDENT: &str = "             ";

impl Printer {
    fn elapsed(&self) -> Duration {
        self.origin.elapsed()
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn stamp(&self) -> String {
        format!("t+{:>6.1}s", self.elapsed().as_secs_f64())
    }

    /// One write per event, so events from different tasks never interleave;
    /// a closed stdout (`| head`) is not worth a panic.
    fn out(&self, text: &str) {
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(text.as_bytes());
        let _ = stdout.write_all(b"\n");
        let _ = stdout.flush();
    }

    fn event(&self, event: &str, fields: Value) {
        let mut object = json!({"event": event, "elapsed_ms": self.elapsed_ms()});
        if let (Some(target), Value::Object(fields)) = (object.as_object_mut(), fields) {
            target.extend(fields);
        }
        self.out(&object.to_string());
    }

    fn ready(&self, ready: &Ready) {
        if self.json {
            self.event("ready", serde_json::to_value(ready).unwrap_or(Value::Null));
            return;
        }
        let stores = if ready.nuvemshop.is_some() {
            "fake Loja Integrada and Nuvemshop stores"
        } else {
            "fake Loja Integrada store"
        };
        let mut text = format!(
            "arauto-sim {}: {stores} and WhatsApp sink on 127.0.0.1 (Ctrl-C stops)\n\n",
            env!("CARGO_PKG_VERSION")
        );
        let li = &ready.li;
        let _ = writeln!(text, "  Loja Integrada API   {}", li.url);
        let _ = writeln!(
            text,
            "                       chave_api {}  ·  chave_aplicacao {}",
            li.chave_api, li.chave_aplicacao
        );
        if let Some(token) = &li.personal_token {
            let _ = writeln!(text, "                       personal token {token}");
        }
        match &li.push {
            Some(push) => {
                let mut knobs = vec![plural(
                    push.repeats as usize,
                    "copy per change",
                    "copies per change",
                )];
                if push.delay_ms > 0 {
                    knobs.push(format!("after {} ms", push.delay_ms));
                }
                if push.drop_fraction > 0.0 {
                    knobs.push(format!("{}% dropped", push.drop_fraction * 100.0));
                }
                if push.wrong_token {
                    knobs.push("with a wrong token".to_owned());
                }
                let _ = writeln!(
                    text,
                    "                       pushes order changes to webhooks registered at {} ({})",
                    li.webhook_registration,
                    knobs.join(", ")
                );
            }
            None => {
                let _ = writeln!(
                    text,
                    "                       no pushes (--push turns them on)"
                );
            }
        }
        let evolution = &ready.evolution;
        let _ = writeln!(text, "  Evolution API sink   {}", evolution.url);
        let _ = writeln!(
            text,
            "                       apikey {}  ·  instance {}",
            evolution.apikey, evolution.instance
        );
        if let Some(webhook) = &ready.webhook {
            let _ = writeln!(text, "  webhook receiver     {}", webhook.url);
        }
        if let Some(ns) = &ready.nuvemshop {
            let _ = writeln!(text, "  Nuvemshop API        {}", ns.url);
            let _ = writeln!(
                text,
                "                       store_id {}  ·  access token {}  ·  app secret {}",
                ns.store_id, ns.access_token, ns.app_secret
            );
            let pushes = if ns.pushing {
                "pushes order events"
            } else {
                "no pushes (--push turns them on)"
            };
            let _ = writeln!(
                text,
                "                       {pushes}; webhooks are registered at {}",
                ns.webhook_registration
            );
            if let Some(s) = &ns.scenario {
                let _ = writeln!(
                    text,
                    "                       story {:?}: {} steps over {}, {} notifications expected; {} old orders seeded",
                    s.name,
                    s.steps,
                    minutes(Duration::from_secs_f64(s.duration_secs / s.speed)),
                    s.expected_notifications,
                    s.historical_orders
                );
            }
        }
        match &ready.scenario {
            Some(s) => {
                let _ = write!(
                    text,
                    "\n  scenario {:?} at {}x: {} steps over {}, {} notifications expected ({} by WhatsApp); {} old orders seeded\n",
                    s.name,
                    s.speed,
                    s.steps,
                    minutes(Duration::from_secs_f64(s.duration_secs / s.speed)),
                    s.expected_notifications,
                    s.expected_on_phone_channels,
                    s.historical_orders
                );
            }
            None if ready.nuvemshop.is_some() => {}
            None => {
                text.push_str("\n  no scenario: the store stays empty until a test changes it\n")
            }
        }
        self.out(text.trim_end());
    }

    fn waiting_for_first_poll(&self) {
        if self.json {
            self.event("waiting-for-first-poll", json!({}));
        } else {
            self.out(
                "  waiting for arauto's first poll of the store before starting (--start now starts at once)\n",
            );
        }
    }

    fn scenario_started(&self, scenario: &Scenario, start: StartMode, speed: Speed) {
        if self.json {
            self.event(
                "scenario-started",
                json!({"scenario": scenario.name(), "trigger": start.as_str(), "speed": speed.factor()}),
            );
        } else {
            let why = match start {
                StartMode::FirstPoll => "arauto polled the store",
                StartMode::Now => "--start now",
            };
            self.out(&format!(
                "{}  ▶ scenario {:?} started ({why})",
                self.stamp(),
                scenario.name()
            ));
        }
    }

    fn step(&self, step: &AppliedStep) {
        if self.json {
            self.event(
                "step",
                json!({
                    "index": step.index,
                    "offset_ms": u64::try_from(step.at.as_millis()).unwrap_or(u64::MAX),
                    "numero": step.numero,
                    "action": step.action.name(),
                    "status": step.action.status(),
                    "description": step.description,
                    "data_modificacao": step.modified_at.to_string(),
                    "expected": step.expected,
                }),
            );
            return;
        }
        self.out(&format!(
            "{}  ▸ {}\n{INDENT}expect: {}",
            self.stamp(),
            step.description,
            describe_expected(&step.expected)
        ));
    }

    fn scenario_finished(&self, scenario: &Scenario) {
        if self.json {
            self.event(
                "scenario-finished",
                json!({"scenario": scenario.name(), "steps": scenario.steps().len()}),
            );
        } else {
            self.out(&format!(
                "{}  ■ scenario {:?} finished: all {} steps applied; the servers keep running (Ctrl-C stops)",
                self.stamp(),
                scenario.name(),
                scenario.steps().len()
            ));
        }
    }

    fn message(&self, message: &ReceivedMessage) {
        if self.json {
            self.event(
                "message",
                json!({
                    "channel": message.provider.as_str(),
                    "to": message.to,
                    "text": message.text,
                    "provider_message_id": message.provider_message_id,
                    "received_at": message.at.to_string(),
                }),
            );
            return;
        }
        let (heading, body) = match message.provider {
            Provider::Webhook => (
                format!("webhook POST {}", message.to),
                serde_json::from_str::<Value>(&message.text)
                    .ok()
                    .and_then(|v| serde_json::to_string_pretty(&v).ok())
                    .unwrap_or_else(|| message.text.clone()),
            ),
            Provider::EvolutionApi => (format!("WhatsApp → {}", message.to), message.text.clone()),
            other => (format!("{other} → {}", message.to), message.text.clone()),
        };
        let mut text = format!("{}  ✉ {heading}", self.stamp());
        for line in body.trim_end().lines() {
            text.push('\n');
            if !line.trim().is_empty() {
                text.push_str(INDENT);
                text.push_str("│ ");
                text.push_str(line.trim_end());
            } else {
                text.push_str(INDENT);
                text.push('│');
            }
        }
        self.out(&text);
    }

    fn webhook_event(&self, event: &WebhookEvent, pushing: bool) {
        match event {
            WebhookEvent::Registered { notify_url, .. } => {
                if self.json {
                    self.event(
                        "webhook-registered",
                        json!({"notify_url": notify_url, "pushing": pushing}),
                    );
                } else {
                    let note = if pushing {
                        "order changes will be pushed to it"
                    } else {
                        "nothing is pushed without --push"
                    };
                    self.out(&format!(
                        "{}  ⚓ webhook registered: {notify_url} ({note})",
                        self.stamp()
                    ));
                }
            }
            WebhookEvent::Unregistered { notify_url, .. } => {
                if self.json {
                    self.event("webhook-unregistered", json!({"notify_url": notify_url}));
                } else {
                    self.out(&format!(
                        "{}  ⚓ webhook removed: {notify_url}",
                        self.stamp()
                    ));
                }
            }
            WebhookEvent::Push(record) => self.push(record),
        }
    }

    fn push(&self, record: &PushRecord) {
        let (outcome, status) = match &record.outcome {
            PushOutcome::Answered(status) => ("answered", Some(*status)),
            PushOutcome::Dropped => ("dropped", None),
            PushOutcome::Failed(_) => ("failed", None),
        };
        if self.json {
            let error = match &record.outcome {
                PushOutcome::Failed(why) => Some(why.as_str()),
                _ => None,
            };
            self.event(
                "push",
                json!({
                    "numero": record.numero,
                    "notify_url": record.notify_url,
                    "copy": record.copy,
                    "copies": record.copies,
                    "situacao_alterada": record.status_changed,
                    "outcome": outcome,
                    "status": status,
                    "error": error,
                }),
            );
            return;
        }
        let copy = if record.copies > 1 {
            format!(" (copy {} of {})", record.copy, record.copies)
        } else {
            String::new()
        };
        let change = if record.status_changed {
            "status changed"
        } else {
            "edited"
        };
        let result = match &record.outcome {
            PushOutcome::Answered(status) => format!("→ HTTP {status}"),
            PushOutcome::Dropped => "dropped (--push-drop)".to_owned(),
            PushOutcome::Failed(why) => format!("failed: {why}"),
        };
        self.out(&format!(
            "{}  ⇢ push pedido {} ({change}){copy} to {} {result}",
            self.stamp(),
            record.numero,
            record.notify_url
        ));
    }

    fn ns_waiting_for_first_poll(&self) {
        if self.json {
            self.event("waiting-for-first-poll", json!({"platform": "nuvemshop"}));
        } else {
            self.out("  Nuvemshop: waiting for arauto's first listing of the store's orders before starting\n");
        }
    }

    fn ns_started(&self, demo: &NsDemo, speed: Speed) {
        if self.json {
            self.event(
                "scenario-started",
                json!({"platform": "nuvemshop", "scenario": demo.name(), "speed": speed.factor()}),
            );
        } else {
            self.out(&format!(
                "{}  ▶ Nuvemshop story {:?} started",
                self.stamp(),
                demo.name()
            ));
        }
    }

    fn ns_step(&self, step: &NsDemoStep) {
        if self.json {
            self.event(
                "step",
                json!({
                    "platform": "nuvemshop",
                    "offset_ms": u64::try_from(step.at.as_millis()).unwrap_or(u64::MAX),
                    "number": step.number,
                    "order_id": step.order_id(),
                    "action": step.action(),
                    "description": step.to_string(),
                    "expected": step.expected,
                }),
            );
            return;
        }
        self.out(&format!(
            "{}  ▸ Nuvemshop {step}\n{INDENT}expect: {}",
            self.stamp(),
            describe_expected(&step.expected)
        ));
    }

    fn ns_finished(&self, demo: &NsDemo) {
        if self.json {
            self.event(
                "scenario-finished",
                json!({"platform": "nuvemshop", "scenario": demo.name(), "steps": demo.steps().len()}),
            );
        } else {
            self.out(&format!(
                "{}  ■ Nuvemshop story finished: all {} steps applied",
                self.stamp(),
                demo.steps().len()
            ));
        }
    }

    fn ns_webhook_event(&self, event: &ns::WebhookEvent, pushing: bool) {
        match event {
            ns::WebhookEvent::Registered { webhook, .. } => {
                if self.json {
                    self.event(
                        "webhook-registered",
                        json!({"platform": "nuvemshop", "event_name": webhook.event, "url": webhook.url, "pushing": pushing}),
                    );
                } else {
                    self.out(&format!(
                        "{}  ⚓ Nuvemshop webhook {} registered: {}",
                        self.stamp(),
                        webhook.event,
                        webhook.url
                    ));
                }
            }
            ns::WebhookEvent::Deleted { id, .. } => {
                if self.json {
                    self.event(
                        "webhook-unregistered",
                        json!({"platform": "nuvemshop", "id": id}),
                    );
                } else {
                    self.out(&format!(
                        "{}  ⚓ Nuvemshop webhook {id} deleted",
                        self.stamp()
                    ));
                }
            }
            ns::WebhookEvent::Push(record) => {
                let result = match &record.outcome {
                    ns::PushOutcome::Answered(status) => format!("→ HTTP {status}"),
                    ns::PushOutcome::Dropped => "dropped (--push-drop)".to_owned(),
                    ns::PushOutcome::Failed(why) => format!("failed: {why}"),
                };
                if self.json {
                    self.event(
                        "push",
                        json!({
                            "platform": "nuvemshop",
                            "order_id": record.order_id,
                            "event_name": record.event,
                            "url": record.url,
                            "copy": record.copy,
                            "copies": record.copies,
                            "result": result,
                        }),
                    );
                } else {
                    self.out(&format!(
                        "{}  ⇢ Nuvemshop push {} of order {} to {} {result}",
                        self.stamp(),
                        record.event,
                        record.order_id,
                        record.url
                    ));
                }
            }
        }
    }

    fn ns_plan(&self, demo: &NsDemo) {
        if self.json {
            for step in demo.steps() {
                self.out(
                    &json!({
                        "platform": "nuvemshop",
                        "offset_ms": u64::try_from(step.at.as_millis()).unwrap_or(u64::MAX),
                        "number": step.number,
                        "action": step.action(),
                        "description": step.to_string(),
                        "expected": step.expected,
                    })
                    .to_string(),
                );
            }
            return;
        }
        let mut text = format!(
            "Nuvemshop story {:?}: {} historical orders, then {} steps over {}\n\n",
            demo.name(),
            demo.history().len(),
            demo.steps().len(),
            minutes(demo.duration())
        );
        for step in demo.steps() {
            let _ = writeln!(
                text,
                "t+{:>6}s  ▸ {}\n{INDENT}expect: {}",
                step.at.as_secs(),
                step,
                describe_expected(&step.expected)
            );
        }
        self.out(text.trim_end());
    }

    fn warning(&self, warning: &str) {
        if self.json {
            self.event("warning", json!({"message": warning}));
        } else {
            self.out(&format!("{}  ! {warning}", self.stamp()));
        }
    }

    fn stopped(&self, signal: &str, steps_applied: usize, messages: usize) {
        if self.json {
            self.event(
                "stopped",
                json!({"signal": signal, "steps_applied": steps_applied, "messages_received": messages}),
            );
        } else {
            self.out(&format!(
                "{}  stopped by {signal}: {}, {}",
                self.stamp(),
                plural(
                    steps_applied,
                    "scenario step applied",
                    "scenario steps applied"
                ),
                plural(messages, "message received", "messages received"),
            ));
        }
    }

    fn plan(&self, scenario: &Scenario) {
        if self.json {
            for (index, step) in scenario.steps().iter().enumerate() {
                self.out(
                    &json!({
                        "index": index,
                        "offset_ms": u64::try_from(step.at.as_millis()).unwrap_or(u64::MAX),
                        "numero": step.numero,
                        "action": step.action.name(),
                        "status": step.action.status(),
                        "description": step.to_string(),
                        "expected": step.expected,
                    })
                    .to_string(),
                );
            }
            return;
        }
        let mut text = format!(
            "scenario {:?}: {} historical orders (numeros {}), then {} steps over {}\n\n",
            scenario.name(),
            scenario.history().len(),
            numero_range(scenario),
            scenario.steps().len(),
            minutes(scenario.duration())
        );
        for step in scenario.steps() {
            let _ = writeln!(
                text,
                "t+{:>6}s  ▸ {}\n{INDENT}expect: {}",
                step.at.as_secs(),
                step,
                describe_expected(&step.expected)
            );
        }
        self.out(text.trim_end());
    }
}

fn numero_range(scenario: &Scenario) -> String {
    let numeros = scenario.history().iter().filter_map(|o| o.numero);
    match (numeros.clone().min(), numeros.max()) {
        (Some(min), Some(max)) => format!("{min}–{max}"),
        _ => "none".to_owned(),
    }
}

fn describe_expected(expected: &[ExpectedNotification]) -> String {
    if expected.is_empty() {
        return "no message".to_owned();
    }
    let parts: Vec<String> = expected
        .iter()
        .map(|e| {
            let mut part = e.kind.as_str().to_owned();
            if !e.tracking_codes.is_empty() {
                let _ = write!(part, " [{}]", e.tracking_codes.join(", "));
            }
            match &e.phone {
                Some(phone) => {
                    let _ = write!(part, " → {phone}");
                }
                None => part.push_str(
                    " (no phone: WhatsApp records an invalid event, webhooks still get it)",
                ),
            }
            part
        })
        .collect();
    parts.join("; ")
}

fn minutes(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 60 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
