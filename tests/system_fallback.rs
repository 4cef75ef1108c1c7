//! Full-system tests of channel fallback (`[channels.<id>] fallback`): a
//! customer the WhatsApp provider cannot reach (WhatsApp Cloud error 131026,
//! Evolution `exists:false`) gets the same notification by SMS through the
//! Twilio fake, exactly once; a customer on WhatsApp gets only WhatsApp;
//! chains are followed; two store entries on one shop account send the
//! fallback once; `arauto report` counts the fallbacks and `arauto
//! queue show` of the original job names the job it fell back to, and of the
//! fallback job the job it came from.
//!
//! The providers are the fakes of `arauto_sim::channels`, told which
//! customers they cannot reach (`FakeProvider::unreachable_recipients`).

// All test code: with this, clippy's allow-unwrap/expect-in-tests covers the
// helper functions too, not only the #[test] ones (see clippy.toml).
#![cfg(test)]

use crate::support;

use arauto::queue::{Job, JobState};
use arauto_sim::channels::{Endpoint, FakeProvider, Provider};
use nix::sys::signal::Signal;

use support::daemon::{Daemon, PATIENCE};
use support::operator;
use support::system::{
    ChannelKnobs, StateDb, StoreKnobs, World, create, e164, field, order_for, phone_digits,
};

fn stop(daemon: &mut Daemon) {
    daemon.signal(Signal::SIGTERM);
    assert!(daemon.wait_exit(PATIENCE).success());
}

/// `[channels.<id>]` of `fake` with `fallback = "<fallback>"`.
fn channel_falling_back(world: &World, id: &str, fake: &FakeProvider, fallback: &str) -> String {
    world
        .channel_toml(id, fake, ChannelKnobs::default())
        .replacen(
            &format!("[channels.{id}]\n"),
            &format!("[channels.{id}]\nfallback = {fallback:?}\n"),
            1,
        )
}

/// The jobs of `order` on `channel`.
fn jobs_on(db: &StateDb, order: u64, channel: &str) -> Vec<Job> {
    db.jobs_for_order("loja", &order.to_string())
        .into_iter()
        .filter(|job| job.channel == channel)
        .collect()
}

/// The log line saying `order`'s notification fell back from `channel`.
fn wait_fallback_line(daemon: &Daemon, order: u64, channel: &str) -> String {
    daemon
        .stderr
        .wait_for_matching(0, PATIENCE, "fell back to channel", |line| {
            line.contains("fell back to channel")
                && field(line, "channel") == Some(channel)
                && field(line, "order") == Some(order.to_string().as_str())
        })
        .1
}

/// Ana is not on WhatsApp (131026): her payment reminder goes out by SMS,
/// once, and never by WhatsApp; Bruno is on WhatsApp and gets only that. The
/// original job is skipped with the fallback job's id; the report counts
/// one fallback to sms; `queue show` says where it went.
#[test]
fn a_customer_not_on_whatsapp_gets_the_sms_instead_exactly_once() {
    let world = World::new();
    let shop = world.shop("loja");
    let (wa, sms) = (
        world.channel(Provider::WhatsAppCloud),
        world.channel(Provider::Twilio),
    );
    wa.unreachable_recipients(&[&e164(1)]);
    // The store sends through WhatsApp only: sms is a fallback-only channel.
    let tables = world.store_toml(&shop, &["wa"], StoreKnobs::default())
        + &channel_falling_back(&world, "wa", &wa, "sms")
        + &world.channel_toml("sms", &sms, ChannelKnobs::default());
    let mut daemon = world.start(&tables, &[]);
    let ana = create(&shop, order_for("Ana", 1, "aguardando_pagamento"));
    let bruno = create(&shop, order_for("Bruno", 2, "aguardando_pagamento"));

    let by_sms = world.wait_received(&sms, 1);
    assert_eq!(by_sms[0].to, e164(1), "Ana got the SMS: {by_sms:#?}");
    let by_whatsapp = world.wait_received(&wa, 1);
    assert_eq!(by_whatsapp[0].to, e164(2), "Bruno got WhatsApp");
    let line = wait_fallback_line(&daemon, ana, "wa");
    assert!(
        line.contains("fallback=sms") && field(&line, "store") == Some("loja"),
        "{line}"
    );
    // The fallback was committed with the end of Ana's WhatsApp job, before
    // the SMS went out: the report counts it now.
    let socket = daemon.socket.to_str().expect("utf-8").to_owned();
    let report = operator::arauto(&["report", "--json", "--socket", &socket]);
    assert_eq!(report.code, 0, "{report:?}");
    let channels = report.json()["channels"].clone();
    let wa_report = channels
        .as_array()
        .and_then(|all| all.iter().find(|c| c["id"] == "wa"))
        .cloned()
        .unwrap_or_else(|| panic!("no channel wa in {channels:#}"));
    assert_eq!(wa_report["fallbacks"]["sms"], 1, "{wa_report:#}");
    assert_eq!(wa_report["total"]["fell_back"], 1, "{wa_report:#}");
    let text = operator::arauto(&["report", "--socket", &socket]);
    assert!(
        text.stdout.contains("1 fell back to sms"),
        "{}",
        text.stdout
    );
    stop(&mut daemon);

    assert_eq!(
        sms.received().len(),
        1,
        "exactly one SMS: {:#?}",
        sms.received()
    );
    assert_eq!(sms.requests_to(Endpoint::Send).len(), 1);
    assert_eq!(wa.received().len(), 1, "only Bruno on WhatsApp");
    assert_eq!(
        wa.requests_to(Endpoint::Send).len(),
        2,
        "Ana's WhatsApp was tried once, never retried"
    );

    let db = StateDb::open(&daemon);
    let ana_wa = jobs_on(&db, ana, "wa");
    let ana_sms = jobs_on(&db, ana, "sms");
    assert_eq!(
        (ana_wa.len(), ana_sms.len()),
        (1, 1),
        "{ana_wa:#?} {ana_sms:#?}"
    );
    assert_eq!(ana_wa[0].state, JobState::Skipped);
    assert_eq!(ana_wa[0].fell_back_to, Some(ana_sms[0].id));
    assert!(
        ana_wa[0]
            .outcome_reason
            .as_deref()
            .is_some_and(|r| r.contains("131026") && r.contains("fell back to channel sms")),
        "{:?}",
        ana_wa[0].outcome_reason
    );
    assert_eq!(ana_sms[0].state, JobState::Sent);
    assert_eq!(ana_sms[0].fallback_of, Some(ana_wa[0].id));
    assert_eq!(ana_sms[0].kind_name(), ana_wa[0].kind_name());
    assert!(jobs_on(&db, bruno, "sms").is_empty(), "Bruno never by SMS");
    assert_eq!(jobs_on(&db, bruno, "wa")[0].state, JobState::Sent);
    db.verify();
    drop(db);

    assert_shows_link(&daemon, ana_wa[0].id, "fell back to", ana_sms[0].id);
    assert_shows_link(&daemon, ana_sms[0].id, "fallback of", ana_wa[0].id);
}

/// `arauto queue show JOB` has a line `LINK … job OTHER` (`fell back to` on
/// the original, `fallback of` on the job planned instead).
#[track_caller]
fn assert_shows_link(
    daemon: &Daemon,
    job: impl std::fmt::Display,
    link: &str,
    other: impl std::fmt::Display,
) {
    let shown = operator::arauto(&[
        "queue",
        "show",
        &job.to_string(),
        "--config",
        daemon.config_path.to_str().expect("utf-8"),
    ]);
    assert_eq!(shown.code, 0, "{shown:?}");
    assert!(
        shown
            .stdout
            .lines()
            .any(|line| line.starts_with(link) && line.contains(&format!("job {other}"))),
        "{}",
        shown.stdout
    );
}

/// A store that already sends on both WhatsApp and SMS: Ana, not on
/// WhatsApp, still gets one SMS, not two: the fallback finds the SMS job the
/// planner queued for her and names it instead of queueing another.
#[test]
fn a_store_already_sending_on_the_fallback_channel_gets_no_second_copy() {
    let world = World::new();
    let shop = world.shop("loja");
    let (wa, sms) = (
        world.channel(Provider::WhatsAppCloud),
        world.channel(Provider::Twilio),
    );
    wa.unreachable_recipients(&[&e164(1)]);
    let tables = world.store_toml(&shop, &["wa", "sms"], StoreKnobs::default())
        + &channel_falling_back(&world, "wa", &wa, "sms")
        + &world.channel_toml("sms", &sms, ChannelKnobs::default());
    let mut daemon = world.start(&tables, &[]);
    let ana = create(&shop, order_for("Ana", 1, "aguardando_pagamento"));

    let line = wait_fallback_line(&daemon, ana, "wa");
    assert_eq!(world.wait_received(&sms, 1)[0].to, e164(1));
    stop(&mut daemon);

    let db = StateDb::open(&daemon);
    let (on_wa, on_sms) = (jobs_on(&db, ana, "wa"), jobs_on(&db, ana, "sms"));
    assert_eq!(on_sms.len(), 1, "one SMS job: {on_sms:#?}");
    assert_eq!(on_wa[0].fell_back_to, Some(on_sms[0].id), "{line}");
    assert!(
        on_wa[0]
            .outcome_reason
            .as_deref()
            .is_some_and(|r| r.contains("already planned there")),
        "{:?}",
        on_wa[0].outcome_reason
    );
    assert_eq!(sms.received().len(), 1, "{:#?}", sms.received());
    assert!(wa.received().is_empty());
}

/// Two store entries on one shop account: `loja` sends by WhatsApp and falls
/// back to SMS, `loja2` sends by SMS. Ana, not on WhatsApp, gets one SMS, not
/// one per store entry: the fallback job carries the planner's fingerprint
/// key, so whichever of the two SMS jobs comes second is recognised as the
/// same notification for the same customer.
#[test]
fn two_store_entries_on_one_shop_account_send_the_fallback_sms_once() {
    let world = World::new();
    let shop = world.shop("loja");
    let (wa, sms) = (
        world.channel(Provider::WhatsAppCloud),
        world.channel(Provider::Twilio),
    );
    wa.unreachable_recipients(&[&e164(1)]);
    let second_entry = world
        .store_toml(&shop, &["sms"], StoreKnobs::default())
        .replace("[stores.loja]", "[stores.loja2]")
        .replace("[stores.loja.", "[stores.loja2.");
    let tables = world.store_toml(&shop, &["wa"], StoreKnobs::default())
        + &second_entry
        + &channel_falling_back(&world, "wa", &wa, "sms")
        + &world.channel_toml("sms", &sms, ChannelKnobs::default());
    let mut daemon = world.start(&tables, &[]);
    let ana = create(&shop, order_for("Ana", 1, "aguardando_pagamento"));
    let ana_id = ana.to_string();

    wait_fallback_line(&daemon, ana, "wa");
    // loja2 has seen the order too: it queued the SMS, or found it queued.
    daemon
        .stderr
        .wait_for_matching(0, PATIENCE, "loja2 planning Ana's SMS", |line| {
            field(line, "store") == Some("loja2")
                && field(line, "order") == Some(ana_id.as_str())
                && (line.contains("notification queued") || line.contains("duplicate not queued"))
        });
    assert_eq!(world.wait_received(&sms, 1)[0].to, e164(1));
    stop(&mut daemon);

    let db = StateDb::open(&daemon);
    let sms_jobs: Vec<Job> = ["loja", "loja2"]
        .iter()
        .flat_map(|store| db.jobs_for_order(store, &ana_id))
        .filter(|job| job.channel == "sms")
        .collect();
    assert_eq!(sms_jobs.len(), 1, "one SMS job for Ana: {sms_jobs:#?}");
    let on_wa = jobs_on(&db, ana, "wa");
    assert_eq!(on_wa[0].state, JobState::Skipped, "{on_wa:#?}");
    assert_eq!(on_wa[0].fell_back_to, Some(sms_jobs[0].id));
    assert_eq!(sms.received().len(), 1, "{:#?}", sms.received());
    assert!(wa.received().is_empty());
    db.verify();
}

/// The fallback channel delivers by e-mail (the `email-sender` test plugin)
/// and Ana's order has none: the fallback is skipped with a warning naming
/// the store, order and both channels, and her WhatsApp job is
/// dead-lettered as unreachable. Bruno has an e-mail and gets it there.
#[test]
fn a_fallback_the_order_cannot_use_is_skipped_with_a_clear_line() {
    let world = World::new();
    let shop = world.shop("loja");
    let (wa, inbox) = (
        world.channel(Provider::WhatsAppCloud),
        world.channel(Provider::Webhook),
    );
    wa.unreachable_recipients(&[&e164(1), &e164(2)]);
    let mail = format!(
        r#"
[channels.mail]
plugin = "email-sender"
plugin_path = {path:?}
min_interval = "1ms"
[channels.mail.sandbox]
allowed_hosts = ["{url}"]
allow_private_addresses = true
[channels.mail.settings]
url = "{url}/hooks/mail"
"#,
        path = support::plugins::test_plugin("email-sender")
            .display()
            .to_string(),
        url = inbox.url(),
    );
    let tables = world.store_toml(&shop, &["wa"], StoreKnobs::default())
        + &channel_falling_back(&world, "wa", &wa, "mail")
        + &mail;
    let mut daemon = world.start(&tables, &[]);
    let ana = create(
        &shop,
        arauto_sim::li::Order::new()
            .status("aguardando_pagamento")
            .customer(arauto_sim::li::Customer::new("Ana Teste").mobile("(11) 98765-0001")),
    );
    let (_, skipped) =
        daemon
            .stderr
            .wait_for_matching(0, PATIENCE, "fallback skipped for Ana's order", |line| {
                line.contains("fallback skipped") && field(line, "order") == Some(&ana.to_string())
            });
    assert!(
        skipped.contains("WARN")
            && field(&skipped, "store") == Some("loja")
            && field(&skipped, "channel") == Some("wa")
            && field(&skipped, "fallback") == Some("mail")
            && skipped.contains("no e-mail address"),
        "{skipped}"
    );
    let bruno = create(&shop, order_for("Bruno", 2, "aguardando_pagamento"));
    let delivered = world.wait_received(&inbox, 1);
    assert!(
        delivered[0].text.contains("bruno.2@example.com"),
        "{delivered:#?}"
    );
    stop(&mut daemon);

    let db = StateDb::open(&daemon);
    let ana_wa = jobs_on(&db, ana, "wa");
    assert_eq!(ana_wa[0].state, JobState::Dead);
    assert_eq!(ana_wa[0].fell_back_to, None);
    assert!(jobs_on(&db, ana, "mail").is_empty());
    assert_eq!(jobs_on(&db, bruno, "mail")[0].state, JobState::Sent);
    assert_eq!(inbox.received().len(), 1);
}

/// Evolution (`exists:false`, also without the ninth digit) falls back to
/// WhatsApp Cloud, which answers 131026 and falls back to SMS: the chain
/// ends at SMS, once; nothing loops back.
#[test]
fn a_chain_is_followed_to_the_first_channel_that_reaches_the_customer() {
    let world = World::new();
    let shop = world.shop("loja");
    let (evo, wa, sms) = (
        world.channel(Provider::EvolutionApi),
        world.channel(Provider::WhatsAppCloud),
        world.channel(Provider::Twilio),
    );
    // The Evolution plugin retries once without the ninth digit.
    evo.unreachable_recipients(&[&phone_digits(1), "551187650001"]);
    wa.unreachable_recipients(&[&e164(1)]);
    let tables = world.store_toml(&shop, &["evo"], StoreKnobs::default())
        + &channel_falling_back(&world, "evo", &evo, "wa")
        + &channel_falling_back(&world, "wa", &wa, "sms")
        + &world.channel_toml("sms", &sms, ChannelKnobs::default());
    let mut daemon = world.start(&tables, &[]);
    let ana = create(&shop, order_for("Ana", 1, "aguardando_pagamento"));

    assert_eq!(world.wait_received(&sms, 1)[0].to, e164(1));
    wait_fallback_line(&daemon, ana, "evo");
    wait_fallback_line(&daemon, ana, "wa");
    stop(&mut daemon);

    assert!(evo.received().is_empty() && wa.received().is_empty());
    assert_eq!(sms.received().len(), 1);
    let db = StateDb::open(&daemon);
    let (on_evo, on_wa, on_sms) = (
        jobs_on(&db, ana, "evo"),
        jobs_on(&db, ana, "wa"),
        jobs_on(&db, ana, "sms"),
    );
    assert_eq!((on_evo.len(), on_wa.len(), on_sms.len()), (1, 1, 1));
    assert_eq!(on_evo[0].fell_back_to, Some(on_wa[0].id));
    assert_eq!(on_wa[0].fell_back_to, Some(on_sms[0].id));
    assert_eq!(on_sms[0].state, JobState::Sent);
}

/// `arauto validate` runs the startup path: an unknown fallback, a fallback
/// to itself and a cycle are errors naming the file, line, key and value.
#[test]
fn bad_fallbacks_are_refused_by_validate_with_file_line_key_and_value() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("arauto.toml");
    let config = r#"
[stores.loja]
platform = "loja-integrada"
channels = ["wa"]

[channels.wa]
plugin = "whatsapp-cloud"
fallback = "smss"

[channels.sms]
plugin = "twilio-sms"
fallback = "sms"

[channels.a]
plugin = "twilio-sms"
fallback = "b"

[channels.b]
plugin = "twilio-sms"
fallback = "a"
"#;
    std::fs::write(&path, config).expect("write config");
    let run = operator::arauto(&["validate", "--config", path.to_str().expect("utf-8")]);
    assert_ne!(run.code, 0, "{run:?}");
    let out = format!("{}{}", run.stdout, run.stderr);
    let file = path.display().to_string();
    for (line, key, needle) in [
        (8, "channels.wa.fallback", "no channel \"smss\" is defined"),
        (12, "channels.sms.fallback", "cannot fall back to itself"),
        (16, "channels.a.fallback", "fallback cycle a → b → a"),
    ] {
        let found = out
            .lines()
            .find(|l| l.contains(key))
            .unwrap_or_else(|| panic!("no error at {key}:\n{out}"));
        assert!(found.contains(&format!("{file}:{line}:")), "{found}\n{out}");
        assert!(out.contains(needle), "{needle:?} missing for {key}:\n{out}");
    }
    assert!(out.contains("did you mean \"sms\""), "{out}");
    assert!(
        !out.contains("channels.b.fallback"),
        "one cycle is named once:\n{out}"
    );
}
