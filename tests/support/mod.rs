//! What the integration tests share, one submodule per concern. The one
//! integration test binary (`tests/integration.rs`) declares it; each test
//! file takes it with `use crate::support;` and names what it uses by path
//! (`support::daemon::Daemon`, `support::host::host`, ...).
//!
//! * [`plugins`]: building the test plugins and the first-party plugins;
//! * [`host`]: the plugin host in process and an HTTP server on 127.0.0.1;
//! * [`logs`]: capture of what the test binary logs through `tracing`;
//! * [`daemon`]: the real `arauto run` as a child process;
//! * [`cluster`]: several arauto nodes on one NATS cluster, with the fakes;
//! * [`nats`]: real `nats-server` processes, a JetStream cluster on 127.0.0.1;
//! * [`ports`]: ports for servers started in other processes;
//! * [`system`]: the daemon against a fake Loja Integrada and fake providers;
//! * [`operator`]: the `arauto` CLI and a state database seeded with jobs;
//! * [`policy`]: fixtures of the decide tests (statuses, orders, a tiny queue).

// `benches/plugin_call.rs` includes this module too and uses a few helpers.
#![allow(dead_code)]

pub mod cluster;
pub mod daemon;
pub mod host;
pub mod logs;
pub mod nats;
pub mod operator;
pub mod plugins;
pub mod policy;
pub mod ports;
pub mod system;
