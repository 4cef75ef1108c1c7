//! Full-system test of a burst on Loja Integrada: hundreds of orders change
//! at once (a sale, a bulk status update). The real daemon with the real
//! connector sends every customer's message exactly once, and the polls after
//! the burst — which find nothing new — make at most two LI requests each
//! instead of listing the burst again and again (issue 16; the cause and the
//! fix are in docs/platforms/loja-integrada.md §After a burst).

// All test code: with this, clippy's allow-unwrap/expect-in-tests covers the
// helper functions too, not only the #[test] ones (see clippy.toml).
#![cfg(test)]

use crate::support;

use std::collections::BTreeSet;
use std::time::Duration;

use arauto_sim::channels::Provider;
use nix::sys::signal::Signal;

use support::daemon::PATIENCE;
use support::system::{ChannelKnobs, StoreKnobs, World, create, order_for, wait_polls};

/// Orders in the burst: eight search pages of 50, enough for the listing to
/// be re-read many times over if the window kept it.
const BURST: u32 = 400;

/// Quiet polls measured after the burst.
const QUIET_POLLS: usize = 10;

#[test]
fn after_a_burst_every_message_goes_once_and_quiet_polls_make_at_most_two_li_requests() {
    let world = World::new();
    // LI's clock moves with real time, as the real one does: the connector
    // reads it from each answer's Date header.
    world.li.use_system_clock();
    let shop = world.shop("loja");
    let whatsapp = world.channel(Provider::EvolutionApi);
    let knobs = StoreKnobs {
        settings: "overlap = \"1s\"".into(),
        // The budget is not what this test measures: let the burst be read
        // at the fake's pace.
        sandbox: "requests_per_minute = 100000".into(),
        ..StoreKnobs::default()
    };
    let tables = world.store_toml(&shop, &["whatsapp"], knobs)
        + &world.channel_toml("whatsapp", &whatsapp, ChannelKnobs::default());
    let mut daemon = world.start(&tables, &[]);
    wait_polls(&daemon.stderr, "loja", 0, 1);

    let burst: BTreeSet<String> = (0..BURST)
        .map(|serial| create(&shop, order_for("Cliente", serial, "pedido_pago")).to_string())
        .collect();
    let received = world.wait_received_within(&whatsapp, burst.len(), Duration::from_secs(600));
    let numbers: Vec<String> = received
        .iter()
        .filter_map(|m| {
            burst
                .iter()
                .find(|numero| m.text.contains(&format!("#{numero}")))
                .cloned()
        })
        .collect();
    assert_eq!(
        numbers.iter().collect::<BTreeSet<_>>().len(),
        burst.len(),
        "one message per order of the burst"
    );

    // The poll that read the burst ends (its last pages may still be under
    // way when the last message goes out), then one more begins after it.
    let after_burst = wait_polls(&daemon.stderr, "loja", daemon.stderr.len(), 2);
    let before = shop.li.requests().len();
    wait_polls(&daemon.stderr, "loja", after_burst, QUIET_POLLS);
    let quiet_requests = shop.li.requests()[before..].to_vec();
    // No poll listed the burst again: every request is a search page (the
    // first page from LI's clock, or the one page of the burst's window the
    // check reads, a different one each poll), none reads a detail.
    let relisted: Vec<String> = quiet_requests
        .iter()
        .filter(|r| !r.is_search())
        .map(|r| format!("{} {:?}", r.path, r.query))
        .collect();
    assert!(
        relisted.is_empty(),
        "quiet polls read more than search pages: {relisted:#?}"
    );
    // A poll may be under way at either end of the measurement.
    let bound = 2 * (QUIET_POLLS + 1);
    assert!(
        quiet_requests.len() <= bound,
        "{} LI requests over {QUIET_POLLS} polls that found nothing new (at most {bound}): {:#?}",
        quiet_requests.len(),
        quiet_requests
            .iter()
            .map(|r| format!("{} {:?}", r.path, r.query))
            .collect::<Vec<_>>()
    );

    daemon.signal(Signal::SIGTERM);
    assert!(daemon.wait_exit(PATIENCE).success());
    assert_eq!(
        whatsapp.received().len(),
        burst.len(),
        "nothing sent twice, before or after the quiet polls"
    );
}
