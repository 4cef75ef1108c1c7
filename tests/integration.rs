//! Every integration test of arauto, in one test binary: one module per
//! file beside this one (`config_errors.rs` is `config_errors::`), all sharing
//! [`support`]. One binary instead of one per file: each binary linked the
//! daemon's library, wasmtime and the test support again, and a build from an
//! empty `target/` spent minutes compiling the support 50 times over and
//! linking 50 binaries of about 90 MB (see the README, "Tests").
//!
//! Run one file's tests with its module name as the filter, e.g.
//! `cargo test --test integration config_errors::`; the three-nats-server
//! cluster tests are the ones under `nats_cluster::`, which `make test` runs
//! last, one at a time (see the Makefile).

// All test code: with this, clippy's allow-unwrap/expect-in-tests covers the
// support module's helpers too (see clippy.toml).
#![cfg(test)]

mod support;

mod cluster_check;
mod cluster_failover;
mod cluster_ownership;
mod cluster_push;
mod cluster_slots;
mod cluster_status;

mod config_cli;
mod config_errors;
mod config_fuzz;
mod config_load;

mod daemon_journald;
mod daemon_lifecycle;
mod daemon_plugin_faults;
mod daemon_systemd_unit;

mod drill_cluster;
mod drill_crash;
mod drill_faults;

mod operator_check;
mod operator_cluster;
mod operator_dashboards;
mod operator_metrics;
mod operator_preview;
mod operator_queue;
mod operator_report;
mod operator_state;

mod packaging;

mod pipeline_stages;

mod plugin_cache;
mod plugin_contract;
mod plugin_output_caps;
mod plugin_sandbox;

mod plugins_cli;

mod policy_happy_path;
mod policy_properties;
mod policy_timing;

mod push_webhooks;

mod queue_crash;
mod queue_engine;
mod queue_migration;
mod queue_nats;

mod system_bad_records;
mod system_burst;
mod system_contracts;
mod system_fallback;
mod system_in_flight;
mod system_nuvemshop;
mod system_pipeline;
mod system_senders;

mod templates_render;
