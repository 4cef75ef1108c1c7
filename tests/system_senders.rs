//! Full-system tests of sender failures: each error class a provider can
//! answer with ends in the right queue outcome at the daemon level — retried
//! and delivered later, dead-lettered without a retry, or the channel paused
//! (other channels keep going) until a reload with fixed settings.
//!
//! The providers are fake WhatsApp Cloud API and Evolution API servers
//! replaying their documented error bodies (`arauto_sim::channels`).

// All test code: with this, clippy's allow-unwrap/expect-in-tests covers the
// helper functions too, not only the #[test] ones (see clippy.toml).
#![cfg(test)]

use crate::support;

use arauto::queue::{Job, JobState};
use arauto_sim::channels::{Endpoint, Provider, evolution, whatsapp_cloud};
use nix::sys::signal::Signal;

use support::daemon::{Daemon, PATIENCE};
use support::system::{
    ChannelKnobs, StateDb, StoreKnobs, World, create, e164, field, order_for, phone_digits,
    wait_polls,
};

/// The first log line at or after `from` that says `message` about `channel`.
fn wait_channel_line(daemon: &Daemon, from: usize, message: &str, channel: &str) -> String {
    daemon
        .stderr
        .wait_for_matching(from, PATIENCE, message, |line| {
            line.contains(message) && field(line, "channel") == Some(channel)
        })
        .1
}

fn stop(daemon: &mut Daemon) {
    daemon.signal(Signal::SIGTERM);
    assert!(daemon.wait_exit(PATIENCE).success());
}

/// The one job of `channel` for `order`.
fn job(db: &StateDb, order: u64, channel: &str) -> Job {
    let jobs: Vec<Job> = db
        .jobs_for_order("loja", &order.to_string())
        .into_iter()
        .filter(|job| job.channel == channel)
        .collect();
    assert_eq!(jobs.len(), 1, "one job on {channel}: {jobs:#?}");
    jobs.into_iter().next().expect("the job")
}

/// WhatsApp's throughput limit (130429, with a back-off hint) and an Evolution
/// API 500 are both retried; the message goes out on the next attempt. Being
/// told to slow down does not spend an attempt; a server error does.
#[test]
fn retryable_errors_are_delivered_later() {
    let world = World::new();
    let shop = world.shop("loja");
    let (wa, evo) = (
        world.channel(Provider::WhatsAppCloud),
        world.channel(Provider::EvolutionApi),
    );
    wa.enqueue(Endpoint::Send, whatsapp_cloud::error(130429));
    evo.enqueue(Endpoint::Send, evolution::server_error());
    let tables = world.store_toml(&shop, &["wa", "evo"], StoreKnobs::default())
        + &world.channel_toml("wa", &wa, ChannelKnobs::default())
        + &world.channel_toml("evo", &evo, ChannelKnobs::default());
    let mut daemon = world.start(&tables, &[]);
    let order = create(&shop, order_for("Ana", 1, "aguardando_pagamento"));

    let throttled = wait_channel_line(&daemon, 0, "send failed, retrying", "wa");
    assert!(
        throttled.contains("WARN") && throttled.contains("130429"),
        "{throttled}"
    );
    let failed = wait_channel_line(&daemon, 0, "send failed, retrying", "evo");
    assert!(failed.contains("500"), "{failed}");
    assert_eq!(world.wait_received(&wa, 1)[0].to, e164(1));
    assert_eq!(world.wait_received(&evo, 1)[0].to, phone_digits(1));
    stop(&mut daemon);

    assert_eq!(wa.requests_to(Endpoint::Send).len(), 2);
    assert_eq!(evo.requests_to(Endpoint::Send).len(), 2);
    let db = StateDb::open(&daemon);
    let (wa_job, evo_job) = (job(&db, order, "wa"), job(&db, order, "evo"));
    assert_eq!(
        (wa_job.state, wa_job.attempt),
        (JobState::Sent, 1),
        "a back-off hint gives the attempt back"
    );
    assert_eq!(
        (evo_job.state, evo_job.attempt),
        (JobState::Sent, 2),
        "a server error spends one"
    );
}

/// "Not a WhatsApp user" (131026) can never succeed: on a channel without a
/// `fallback` the job is dead-lettered at once, never retried, and the
/// channel goes on with the next customer (with a fallback, see
/// `system_fallback.rs`).
#[test]
fn a_permanent_error_dead_letters_the_job_without_a_retry() {
    let world = World::new();
    let shop = world.shop("loja");
    let wa = world.channel(Provider::WhatsAppCloud);
    wa.enqueue(Endpoint::Send, whatsapp_cloud::error(131026));
    let tables = world.store_toml(&shop, &["wa"], StoreKnobs::default())
        + &world.channel_toml("wa", &wa, ChannelKnobs::default());
    let mut daemon = world.start(&tables, &[]);
    let ana = create(&shop, order_for("Ana", 1, "aguardando_pagamento"));
    let dead = wait_channel_line(&daemon, 0, "not sent (dead-letter)", "wa");
    assert!(
        dead.contains("ERROR") && dead.contains("131026") && field(&dead, "order") == Some("1001"),
        "{dead}"
    );
    let bruno = create(&shop, order_for("Bruno", 2, "aguardando_pagamento"));
    assert_eq!(world.wait_received(&wa, 1)[0].to, e164(2));
    wait_polls(&daemon.stderr, "loja", daemon.stderr.len(), 2);
    stop(&mut daemon);

    assert_eq!(
        wa.requests_to(Endpoint::Send).len(),
        2,
        "Ana's message was tried once, Bruno's once"
    );
    let db = StateDb::open(&daemon);
    let dead = job(&db, ana, "wa");
    assert_eq!((dead.state, dead.attempt), (JobState::Dead, 1));
    assert!(
        dead.outcome_reason
            .as_deref()
            .is_some_and(|r| r.contains("recipient unreachable") && r.contains("131026")),
        "{:?}",
        dead.outcome_reason
    );
    assert_eq!(job(&db, bruno, "wa").state, JobState::Sent);
}

/// An expired WhatsApp token (190) pauses that channel — its queued messages
/// wait without spending attempts — while the Evolution channel keeps
/// delivering; a reload with the new token resumes it and everything queued
/// goes out.
#[test]
fn a_misconfigured_channel_is_paused_while_the_others_keep_going_and_a_reload_resumes_it() {
    let world = World::new();
    let shop = world.shop("loja");
    let (wa, evo) = (
        world.channel(Provider::WhatsAppCloud),
        world.channel(Provider::EvolutionApi),
    );
    wa.require_auth("token-novo");
    let tables = |token: &str| {
        world.store_toml(&shop, &["wa", "evo"], StoreKnobs::default())
            + &world.channel_toml(
                "wa",
                &wa,
                ChannelKnobs {
                    settings: format!("access_token = {token:?}\n"),
                    ..ChannelKnobs::default()
                },
            )
            + &world.channel_toml("evo", &evo, ChannelKnobs::default())
    };
    let mut daemon = world.start(&tables("token-expirado"), &[]);
    let ana = create(&shop, order_for("Ana", 1, "aguardando_pagamento"));
    let paused = wait_channel_line(&daemon, 0, "channel paused", "wa");
    assert!(
        paused.contains("ERROR") && paused.contains("190") && paused.contains("access_token"),
        "the log names the channel and what to fix: {paused}"
    );
    assert!(
        !paused.contains("token-expirado"),
        "no secret in the log: {paused}"
    );
    world.wait_received(&evo, 1);
    let bruno = create(&shop, order_for("Bruno", 2, "aguardando_pagamento"));
    world.wait_received(&evo, 2);
    wait_polls(&daemon.stderr, "loja", daemon.stderr.len(), 2);
    assert_eq!(
        wa.requests_to(Endpoint::Send).len(),
        1,
        "a paused channel sends nothing"
    );

    world.rewrite(&daemon, &tables("token-novo"));
    let mark = daemon.stderr.len();
    daemon.signal(Signal::SIGHUP);
    daemon.await_notice("READY=1");
    wait_channel_line(&daemon, mark, "channel resumed", "wa");
    let received = world.wait_received(&wa, 2);
    stop(&mut daemon);

    let to: Vec<&str> = received.iter().map(|m| m.to.as_str()).collect();
    assert_eq!(to, [e164(1), e164(2)]);
    let db = StateDb::open(&daemon);
    for order in [ana, bruno] {
        let wa_job = job(&db, order, "wa");
        assert_eq!(
            (wa_job.state, wa_job.attempt),
            (JobState::Sent, 1),
            "the pause spent no attempt"
        );
        assert_eq!(job(&db, order, "evo").state, JobState::Sent);
    }
}
