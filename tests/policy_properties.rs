//! Property test: random histories of one order (LI status codes with jumps,
//! reverts, cancellations and re-openings, tracking codes appearing on split
//! shipments) observed by polls at random moments (some states are never
//! seen), driven through detect + decide with a small model of the queue:
//! planned jobs become pending, pending jobs are cancelled as decided, due
//! jobs are dispatched in due order with the send-time timing check and the
//! pre-send re-validation. The sent log must satisfy:
//!
//! 1. no notification kind twice per order and channel (tracking: no code twice);
//! 2. per channel, happy-path steps go out in strictly increasing priority;
//! 3. after a terminal notice, nothing is sent unless a later poll saw the
//!    order at a happy-path step beyond every step seen before the cancellation;
//!    and once a poll saw the order cancelled, no other message goes out
//!    unless a later poll saw it move forward like that;
//! 4. (liveness) with everything enabled and no cancellation, the highest step
//!    the order reached is announced on the phone-less channel.
//!
//! To exercise the pre-send re-validation, some pending jobs are hidden from
//! `decide` (as if the dispatcher had already claimed them), so only the
//! re-validation stands between them and the customer.

// All test code: with this, clippy's allow-unwrap/expect-in-tests covers the
// helper functions too, not only the #[test] ones (see clippy.toml).
#![cfg(test)]

use crate::support;

use std::collections::{BTreeMap, BTreeSet};

use arauto::decide::{
    DecideInput, OrderRecord, PendingNotification, PlannedNotification, QuietHours, Relevance,
    SendTiming, StorePolicy, decide, send_time_check, still_relevant,
};
use arauto::model::NotificationKind as K;
use jiff::civil::time;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use support::policy::*;

const EXTRA_CODES: &[&str] = &["status_desconhecido", "despachado_transportadora"];
const TRACKING_POOL: &[&str] = &["QA1BR", "QA2BR", "QB1BR", "QB2BR", "JD0001"];

fn code(index: usize) -> &'static str {
    LI_STATUSES.get(index).map_or_else(
        || EXTRA_CODES[(index - LI_STATUSES.len()) % EXTRA_CODES.len()],
        |s| s.0,
    )
}

#[derive(Clone, Debug)]
enum Change {
    Status(usize),
    Tracking {
        shipment: usize,
        code: Option<usize>,
    },
}

#[derive(Clone, Debug)]
struct Step {
    change: Change,
    advance_minutes: i64,
    observed: bool,
}

#[derive(Clone, Debug)]
struct Scenario {
    steps: Vec<Step>,
    quiet_hours: bool,
    implies_shipped: bool,
    has_phone: bool,
    disabled: Vec<K>,
    custom_shipped: bool,
    /// Bit `seq % 64` set: job `seq` is invisible to `decide`.
    hidden_jobs: u64,
}

fn change() -> impl Strategy<Value = Change> {
    let happy = prop::sample::select(vec![1usize, 2, 3, 9, 10, 11, 12, 13, 14]);
    prop_oneof![
        5 => happy.prop_map(Change::Status),
        3 => (0..LI_STATUSES.len() + EXTRA_CODES.len()).prop_map(Change::Status),
        3 => (0..2usize, prop::option::weighted(0.85, 0..TRACKING_POOL.len()))
            .prop_map(|(shipment, code)| Change::Tracking { shipment, code }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    (
        change(),
        prop_oneof![3 => 1i64..30, 2 => 30i64..720, 1 => 720i64..2000],
        prop::bool::weighted(0.7),
    )
        .prop_map(|(change, advance_minutes, observed)| Step {
            change,
            advance_minutes,
            observed,
        })
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        prop::collection::vec(step(), 1..40),
        any::<bool>(),
        any::<bool>(),
        prop::bool::weighted(0.8),
        prop::collection::vec(
            prop::sample::select(vec![
                K::WaitingPayment,
                K::OrderPaid,
                K::OrderShipped,
                K::TrackingUpdated,
            ]),
            0..2,
        ),
        any::<bool>(),
        prop_oneof![1 => Just(0u64), 1 => any::<u64>()],
    )
        .prop_map(
            |(
                steps,
                quiet_hours,
                implies_shipped,
                has_phone,
                disabled,
                custom_shipped,
                hidden_jobs,
            )| Scenario {
                steps,
                quiet_hours,
                implies_shipped,
                has_phone,
                disabled,
                custom_shipped,
                hidden_jobs,
            },
        )
}

#[derive(Clone, Debug)]
struct Job {
    seq: u64,
    planned: PlannedNotification,
    poll: usize,
    due: Timestamp,
    expires: Timestamp,
}

#[derive(Clone, Debug)]
struct Sent {
    at: Timestamp,
    poll: usize,
    /// How many polls had been applied when this went out. Timestamps tie
    /// (a job due at 08:00 and a poll at 08:00), so order is judged by this.
    polls_before: usize,
    channel: String,
    kind: K,
    priority: u8,
    code: Option<String>,
}

#[derive(Clone, Debug)]
struct Poll {
    at: Timestamp,
    priority: u8,
    terminal: bool,
    recognized: bool,
}

struct Model {
    policy: StorePolicy,
    quiet: Option<QuietHours>,
    jobs: Vec<Job>,
    record: Option<OrderRecord>,
    sent: Vec<Sent>,
    polls: Vec<Poll>,
    seq: u64,
}

impl Model {
    /// Dispatch every job due up to `until`, each at its due time.
    fn dispatch_until(&mut self, until: Timestamp) {
        loop {
            let next = self
                .jobs
                .iter()
                .enumerate()
                .filter(|(_, j)| j.due <= until)
                .min_by_key(|(_, j)| (j.due, j.seq))
                .map(|(i, _)| i);
            let Some(index) = next else { break };
            let mut job = self.jobs.remove(index);
            let now = job.due;
            match send_time_check(
                job.due,
                job.expires,
                job.planned.quiet_hours,
                self.quiet.as_ref(),
                now,
            ) {
                SendTiming::Expired => continue,
                SendTiming::Defer { until, expires_at } => {
                    assert!(until > now, "deferral must move forward");
                    job.due = until;
                    job.expires = expires_at;
                    self.jobs.push(job);
                    continue;
                }
                SendTiming::SendNow => {}
            }
            let Some(record) = &self.record else {
                panic!("a job without a record")
            };
            if still_relevant(
                job.planned.kind,
                job.planned.priority,
                job.planned.tracking.as_ref(),
                record,
            ) == Relevance::Send
            {
                self.sent.push(Sent {
                    at: now,
                    poll: job.poll,
                    polls_before: self.polls.len(),
                    channel: job.planned.channel.to_string(),
                    kind: job.planned.kind,
                    priority: job.planned.priority,
                    code: job.planned.tracking.as_ref().map(|t| t.code.clone()),
                });
            }
        }
    }

    fn poll(
        &mut self,
        order: arauto::model::Order,
        now: Timestamp,
        has_phone: bool,
        hidden_jobs: u64,
    ) {
        self.dispatch_until(now);
        let pending: Vec<PendingNotification> = self
            .jobs
            .iter()
            .filter(|j| hidden_jobs >> (j.seq % 64) & 1 == 0)
            .map(|j| PendingNotification {
                job_id: arauto::job::JobId::from_u128(u128::from(j.seq)),
                kind: j.planned.kind,
                priority: j.planned.priority,
                channel: j.planned.channel.clone(),
                stands_in_for: Vec::new(),
            })
            .collect();
        let recognized = self
            .policy
            .recognition
            .recognise(&order.status.code)
            .cloned();
        let decision = decide(
            &self.policy,
            DecideInput {
                previous: self.record.as_ref(),
                order,
                pending: &pending,
                unusable_phone: (!has_phone).then_some(arauto::model::PhoneProblem::NoPhone),
                now,
            },
        );
        let cancelled: BTreeSet<arauto::job::JobId> =
            decision.cancel.iter().map(|c| c.job_id).collect();
        assert_eq!(
            cancelled.len(),
            decision.cancel.len(),
            "a job cancelled twice in one decision"
        );
        for job_id in &cancelled {
            assert!(
                pending.iter().any(|p| &p.job_id == job_id),
                "cancelled a job that is not pending"
            );
        }
        self.jobs
            .retain(|j| !cancelled.contains(&arauto::job::JobId::from_u128(u128::from(j.seq))));
        let poll = self.polls.len();
        for planned in decision.planned {
            assert!(planned.due_at >= now && planned.expires_at > planned.due_at);
            self.seq += 1;
            self.jobs.push(Job {
                seq: self.seq,
                due: planned.due_at,
                expires: planned.expires_at,
                planned,
                poll,
            });
        }
        self.record = Some(decision.new_record);
        self.polls.push(Poll {
            at: now,
            priority: recognized.as_ref().map_or(0, |r| r.priority),
            terminal: recognized.as_ref().is_some_and(|r| r.terminal),
            recognized: recognized.is_some(),
        });
    }
}

fn run(scenario: &Scenario) -> Model {
    let overrides: Vec<(&str, Option<K>)> = if scenario.custom_shipped {
        vec![("despachado_transportadora", Some(K::OrderShipped))]
    } else {
        Vec::new()
    };
    let mut policy = policy_with(&overrides);
    policy.channels = vec![whatsapp(), webhook()];
    policy.tracking_implies_shipped = scenario.implies_shipped;
    for kind in &scenario.disabled {
        policy.enabled.remove(kind);
    }
    let quiet = if scenario.quiet_hours {
        TimeZone::get("America/Sao_Paulo")
            .ok()
            .and_then(|tz| QuietHours::new(time(21, 0, 0, 0), time(8, 0, 0, 0), tz).ok())
    } else {
        None
    };
    policy.timing.quiet_hours = quiet.clone();
    let mut model = Model {
        policy,
        quiet,
        jobs: Vec::new(),
        record: None,
        sent: Vec::new(),
        polls: Vec::new(),
        seq: 0,
    };

    let mut now = t0();
    let mut status = "aguardando_pagamento";
    let mut codes: [Option<&str>; 2] = [None, None];
    for step in &scenario.steps {
        now += SignedDuration::from_mins(step.advance_minutes);
        match step.change {
            Change::Status(index) => status = code(index),
            Change::Tracking { shipment, code } => codes[shipment] = code.map(|c| TRACKING_POOL[c]),
        }
        if step.observed {
            let mut snapshot = order("77", status, now);
            snapshot.shipments = vec![shipment("a", codes[0]), shipment("b", codes[1])];
            model.poll(
                snapshot,
                now + SignedDuration::from_mins(1),
                scenario.has_phone,
                scenario.hidden_jobs,
            );
        }
    }
    model.dispatch_until(now + SignedDuration::from_hours(24 * 30));
    assert!(
        model.jobs.is_empty(),
        "undispatched jobs left: {:?}",
        model.jobs
    );
    model
}

fn check(scenario: &Scenario, model: &Model) -> Result<(), TestCaseError> {
    let sent = &model.sent;
    // 1. At most once per (channel, kind); tracking at most once per (channel, code).
    let mut seen = BTreeSet::new();
    for s in sent {
        let key = match &s.code {
            Some(code) => (s.channel.clone(), format!("tracking:{code}")),
            None => (s.channel.clone(), s.kind.to_string()),
        };
        prop_assert!(seen.insert(key.clone()), "sent twice: {key:?}\n{sent:#?}");
    }
    // Chronological order of the log.
    prop_assert!(sent.windows(2).all(|w| w[0].at <= w[1].at));

    // 2. Happy-path steps strictly increasing per channel.
    let mut last: BTreeMap<&str, u8> = BTreeMap::new();
    for s in sent.iter().filter(|s| s.priority > 0) {
        let previous = last.insert(&s.channel, s.priority).unwrap_or(0);
        prop_assert!(
            s.priority > previous,
            "{} step {} after {}\n{sent:#?}",
            s.kind,
            s.priority,
            previous
        );
    }

    // 3. Nothing after a terminal notice unless the order moved forward again.
    for (position, notice) in sent
        .iter()
        .enumerate()
        .filter(|(_, s)| s.kind.is_terminal())
    {
        let floor = model.polls[..notice.poll]
            .iter()
            .filter(|p| !p.terminal)
            .map(|p| p.priority)
            .max()
            .unwrap_or(0);
        // The log is in dispatch order, so what follows the notice went out after it.
        for later in &sent[position + 1..] {
            if later.kind == notice.kind && later.poll == notice.poll {
                continue; // the same notice on the other channel
            }
            let moved_forward = model.polls[notice.poll + 1..later.polls_before]
                .iter()
                .any(|p| !p.terminal && p.priority > floor);
            prop_assert!(
                moved_forward,
                "{} sent after terminal notice {} (floor {floor})\n{sent:#?}\n{:#?}",
                later.kind,
                notice.kind,
                model.polls
            );
        }
    }

    // 3b. Once a poll saw the order cancelled, only terminal notices until it moves forward.
    for (index, _) in model.polls.iter().enumerate().filter(|(_, p)| p.terminal) {
        let floor = model.polls[..index]
            .iter()
            .filter(|p| !p.terminal)
            .map(|p| p.priority)
            .max()
            .unwrap_or(0);
        for later in sent
            .iter()
            .filter(|s| s.polls_before > index && !s.kind.is_terminal())
        {
            let moved_forward = model.polls[index + 1..later.polls_before]
                .iter()
                .any(|p| !p.terminal && p.priority > floor);
            prop_assert!(
                moved_forward,
                "{} sent after the order was seen cancelled (floor {floor})\n{sent:#?}\n{:#?}",
                later.kind,
                model.polls
            );
        }
    }

    // 3c. A cancellation notice only goes out while the order is (last known) cancelled.
    for notice in sent.iter().filter(|s| s.kind.is_terminal()) {
        let last_known = model.polls[..notice.polls_before]
            .iter()
            .rfind(|p| p.recognized);
        prop_assert!(
            last_known.is_some_and(|p| p.terminal),
            "stale {} notice\n{sent:#?}\n{:#?}",
            notice.kind,
            model.polls
        );
    }

    // 4. Liveness on the channel that needs no phone.
    if scenario.disabled.is_empty() {
        let webhook_best = sent
            .iter()
            .filter(|s| s.channel == "webhook" && s.priority > 0)
            .map(|s| s.priority)
            .max();
        let ever_terminal = model.polls.iter().any(|p| p.terminal);
        if !ever_terminal
            && let Some(record) = &model.record
            && record.happy.max_priority > 0
        {
            prop_assert_eq!(
                webhook_best,
                Some(record.happy.max_priority),
                "highest step never announced\n{:#?}",
                sent
            );
        }
        // After the last cancellation, a move beyond every earlier step is announced
        // (without tracking-implied shipping, steps come from statuses only).
        if !scenario.implies_shipped {
            let last_cancel = model.polls.iter().rposition(|p| p.terminal);
            let (before, after) = model.polls.split_at(last_cancel.map_or(0, |i| i + 1));
            let floor = before
                .iter()
                .filter(|p| !p.terminal)
                .map(|p| p.priority)
                .max()
                .unwrap_or(0);
            let best_after = after.iter().map(|p| p.priority).max().unwrap_or(0);
            if best_after > floor {
                let announced = sent
                    .iter()
                    .filter(|s| s.channel == "webhook" && s.priority == best_after)
                    .any(|s| last_cancel.is_none_or(|i| s.at >= model.polls[i].at));
                prop_assert!(
                    announced,
                    "step {best_after} after the last cancellation never announced\n{sent:#?}\n{:#?}",
                    model.polls
                );
            }
        }
    }
    Ok(())
}

fn cases_from_env(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

proptest! {
    // PROPTEST_CASES=100000 for a long soak; CI runs 512 fresh cases plus the saved regressions.
    #![proptest_config(ProptestConfig { cases: cases_from_env(512), ..ProptestConfig::default() })]

    #[test]
    fn happy_path_invariants_hold_for_random_histories(scenario in scenario()) {
        let model = run(&scenario);
        check(&scenario, &model)?;
    }
}

/// A fixed nasty history, so a regression shows up even without shrinking:
/// cancel with the notice deferred overnight, reopen, ship, code changes.
#[test]
fn a_known_tricky_history_keeps_the_invariants() {
    let steps = [
        (Change::Status(3), 5, true), // pedido_pago
        (
            Change::Tracking {
                shipment: 0,
                code: Some(0),
            },
            60,
            true,
        ), // code while paid → shipped
        (Change::Status(7), 600, true), // pedido_cancelado at night
        (Change::Status(12), 30, true), // reopened as shipped (not beyond)
        (Change::Status(14), 30, true), // delivered: beyond → back on path
        (
            Change::Tracking {
                shipment: 1,
                code: Some(2),
            },
            10,
            true,
        ), // code after delivery
        (Change::Status(7), 10, false), // cancelled, never observed
        (Change::Status(6), 10, true), // refunded
    ];
    let scenario = Scenario {
        steps: steps
            .into_iter()
            .map(|(change, advance_minutes, observed)| Step {
                change,
                advance_minutes,
                observed,
            })
            .collect(),
        quiet_hours: true,
        implies_shipped: true,
        has_phone: true,
        disabled: Vec::new(),
        custom_shipped: false,
        hidden_jobs: 0,
    };
    let model = run(&scenario);
    if let Err(err) = check(&scenario, &model) {
        panic!("{err}");
    }
    let kinds: Vec<(String, K)> = model
        .sent
        .iter()
        .map(|s| (s.channel.clone(), s.kind))
        .collect();
    let whatsapp: Vec<K> = kinds
        .iter()
        .filter(|(c, _)| c == "whatsapp")
        .map(|(_, k)| *k)
        .collect();
    // The overnight cancellation notice is withdrawn when the order reopens; the
    // delivered notice (deferred to 08:00) is cancelled by the refund.
    assert_eq!(
        whatsapp,
        vec![K::OrderPaid, K::OrderShipped, K::OrderRefunded]
    );
}
