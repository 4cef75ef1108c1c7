//! # arauto
//!
//! A self-hosted order-notification daemon. It polls shop platforms (Loja
//! Integrada first) through sandboxed WASM connector plugins, notices order
//! changes, decides which customer notifications still make sense (the "happy
//! path"), queues them durably in redb, and delivers them through sandboxed
//! WASM sender plugins (WhatsApp Cloud API, Evolution API, Z-API, Twilio SMS,
//! Telegram, signed webhooks) at a humane pace.
//!
//! The modules follow the data flow:
//!
//! ```text
//! poll ──▶ detect ──▶ decide ──▶ queue ──▶ send ──▶ report
//!  │                                │        │
//!  └── plugin (connectors)          │        └── plugin (senders), template
//!                                   └── durable state (redb), behind a narrow trait
//! ```
//!
//! * [`config`] — TOML + environment configuration, secrets, validation.
//! * [`plugin`] — the wasmtime host: engine, compiled-artifact cache, sandbox, WIT bindings.
//! * [`poll`] — schedules each store's sweeps and calls its connector.
//! * [`detect`] — compares new order snapshots with stored ones: first sighting,
//!   status change, tracking code added.
//! * [`decide`] — recognition (status → notification) and the happy-path rules;
//!   turns events into jobs and cancellations.
//! * [`job`] — the notification job: what decide plans, the queue keeps and
//!   send delivers (planned notification, dedupe keys, versioned payload, ids).
//! * [`queue`] — the durable queue engine and state store (jobs, cursors,
//!   snapshots, history) with its redb backend.
//! * [`send`] — per-channel dispatch: pacing, recipients, rendering, retries.
//! * [`template`] — notification texts (minijinja), defaults in pt-BR.
//! * [`report`] — the readiness checklist and the delivery reports.
//! * [`daemon`] — the runtime: startup path shared with `validate`, signals,
//!   reload, shutdown, systemd notifications.
//! * [`control`] — the local control socket the CLI uses while the daemon runs.
//! * [`cli`] — the `arauto` command line.

pub mod cli;
pub mod clock;
pub mod config;
pub mod control;
pub mod daemon;
pub mod decide;
pub mod heartbeat;
pub mod job;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod plugin;
pub mod poll;
pub mod queue;
pub mod report;
pub mod send;
pub mod state;
pub mod template;
