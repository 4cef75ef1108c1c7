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
//! config ──▶ state ──▶ poll ──▶ decide ──▶ job ──▶ queue ──▶ send ──▶ report
//!                       │                            │         │
//!                       └── plugin (connectors)      │         └── plugin (senders), template
//!                                                    └── durable state (redb), behind a narrow trait
//! ```
//!
//! A module imports only modules before it in this flow (and the shared
//! vocabulary in [`model`], [`clock`], [`heartbeat`], [`metrics`]); [`poll`]
//! and [`send`] never import each other, and no stage imports [`daemon`],
//! the supervisor that wires them.
//!
//! * [`config`] — TOML + environment configuration, secrets, validation; one
//!   file per table.
//! * [`model`] — domain values every stage shares: orders, notification
//!   kinds, channel ids, phone numbers, the failure classes.
//! * [`plugin`] — the wasmtime host: engine, compiled-artifact cache, sandbox, WIT bindings.
//! * [`state`] — what one configuration builds (stores and channels with
//!   their plugin instances, templates), read live by every loop.
//! * [`poll`] — each store's loop: sweeps that call its connector and commit
//!   what decide makes of every order.
//! * [`decide`] — change detection, recognition (status → notification) and
//!   the happy-path rules; turns events into planned notifications and
//!   cancellations, and re-validates a job before it is sent.
//! * [`job`] — the notification job: what decide plans, the queue keeps and
//!   send delivers (planned notification, dedupe keys, versioned payload, ids).
//! * [`queue`] — the durable queue engine and state store (jobs, cursors,
//!   snapshots, history) with its redb backend.
//! * [`send`] — each channel's loop: pacing, recipients, rendering, retries.
//! * [`template`] — notification texts (minijinja), defaults in pt-BR.
//! * [`report`] — the readiness checklist, the delivery reports, metrics.
//! * [`daemon`] — the supervisor: the services a state asks for, started,
//!   reloaded and stopped by key; signals, systemd notifications.
//! * [`control`] — the local control socket the CLI uses while the daemon runs.
//! * [`cli`] — the `arauto` command line.

pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod control;
pub mod daemon;
pub mod decide;
pub mod heartbeat;
pub mod http_listener;
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
