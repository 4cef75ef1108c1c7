//! Quiet hours, delays and expiry, pacing (interval, daily cap, warm-up, ETA)
//! and retries — all against a hand-driven clock, never sleeping.

// All test code: with this, clippy's allow-unwrap/expect-in-tests covers the
// helper functions too, not only the #[test] ones (see clippy.toml).
#![cfg(test)]

use std::error::Error;

use arauto::clock::{Clock, ManualClock};
use arauto::decide::timing::{DEFAULT_EXPIRY, KindTiming};
use arauto::decide::{QuietHours, QuietHoursMode, SendTiming, TimingPolicy, send_time_check};
use arauto::model::ErrorClass;
use arauto::model::NotificationKind as K;
use arauto::send::pacing::{
    DailyCap, PacingDecision, PacingPolicy, PacingState, Warmup, naive_eta,
};
use arauto::send::retry::{Attempt, DeadReason, RetryDecision, RetryPolicy};
use jiff::civil::{Time, time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use rand::SeedableRng;
use rand::rngs::StdRng;

type TestResult = Result<(), Box<dyn Error>>;

fn ts(s: &str) -> Result<Timestamp, Box<dyn Error>> {
    Ok(s.parse()?)
}

fn sao_paulo() -> Result<TimeZone, Box<dyn Error>> {
    Ok(TimeZone::get("America/Sao_Paulo")?)
}

fn night_window() -> Result<QuietHours, Box<dyn Error>> {
    Ok(QuietHours::new(
        time(21, 0, 0, 0),
        time(8, 0, 0, 0),
        sao_paulo()?,
    )?)
}

fn secs(n: i64) -> SignedDuration {
    SignedDuration::from_secs(n)
}

// ---------------------------------------------------------------- quiet hours

#[test]
fn a_window_crossing_midnight_defers_to_its_end() -> TestResult {
    let quiet = night_window()?;
    // São Paulo is UTC−3 all year (no DST since 2019).
    let cases = [
        ("2025-06-10T23:59:00Z", "2025-06-10T23:59:00Z"), // 20:59 local: outside
        ("2025-06-11T00:00:00Z", "2025-06-11T11:00:00Z"), // 21:00 local: window starts
        ("2025-06-11T01:30:00Z", "2025-06-11T11:00:00Z"), // 22:30 → 08:00 next day
        ("2025-06-11T06:00:00Z", "2025-06-11T11:00:00Z"), // 03:00 → 08:00 same day
        ("2025-06-11T10:59:59Z", "2025-06-11T11:00:00Z"),
        ("2025-06-11T11:00:00Z", "2025-06-11T11:00:00Z"), // 08:00 local: end is exclusive
        ("2025-06-11T15:00:00Z", "2025-06-11T15:00:00Z"), // noon
    ];
    for (at, expected) in cases {
        assert_eq!(quiet.next_allowed(ts(at)?), ts(expected)?, "at {at}");
    }
    // In former DST season (early November) the offset is still −03:00.
    assert_eq!(
        quiet.next_allowed(ts("2025-11-02T03:00:00Z")?),
        ts("2025-11-02T11:00:00Z")?
    );
    assert_eq!(
        quiet.next_allowed(ts("2025-02-15T02:00:00Z")?),
        ts("2025-02-15T11:00:00Z")?
    );
    Ok(())
}

#[test]
fn a_daytime_window_and_a_zone_with_dst() -> TestResult {
    let lunch = QuietHours::new(time(12, 0, 0, 0), time(13, 30, 0, 0), sao_paulo()?)?;
    assert!(lunch.contains(ts("2025-06-10T15:10:00Z")?));
    assert_eq!(
        lunch.next_allowed(ts("2025-06-10T15:10:00Z")?),
        ts("2025-06-10T16:30:00Z")?
    );
    assert!(!lunch.contains(ts("2025-06-10T16:30:00Z")?));

    // New York springs forward on 2025-03-09: the window end is 08:00 EDT (12:00Z), not EST.
    let ny = QuietHours::new(
        time(22, 0, 0, 0),
        time(8, 0, 0, 0),
        TimeZone::get("America/New_York")?,
    )?;
    assert_eq!(
        ny.next_allowed(ts("2025-03-09T04:00:00Z")?),
        ts("2025-03-09T12:00:00Z")?
    );

    assert!(QuietHours::new(time(8, 0, 0, 0), time(8, 0, 0, 0), sao_paulo()?).is_err());
    Ok(())
}

#[test]
fn schedule_applies_delay_quiet_hours_and_expiry_per_kind() -> TestResult {
    let mut policy = TimingPolicy {
        quiet_hours: Some(night_window()?),
        ..TimingPolicy::default()
    };
    let evening = ts("2025-06-11T00:45:00Z")?; // 21:45 in São Paulo

    let shipped = policy.schedule(K::OrderShipped, evening);
    assert_eq!(shipped.due_at, ts("2025-06-11T11:00:00Z")?);
    assert_eq!(
        shipped.expires_at,
        shipped.due_at + DEFAULT_EXPIRY,
        "expiry counts from the deferred due time"
    );
    assert_eq!(shipped.quiet_hours, QuietHoursMode::Defer);

    // Waiting-payment is delayed 30 min; from 20:40 that lands at 21:10 → deferred.
    let before = ts("2025-06-10T23:40:00Z")?;
    assert_eq!(
        policy.schedule(K::WaitingPayment, before).due_at,
        ts("2025-06-11T11:00:00Z")?
    );
    assert_eq!(
        policy
            .schedule(K::WaitingPayment, ts("2025-06-10T15:00:00Z")?)
            .due_at,
        ts("2025-06-10T15:30:00Z")?
    );

    std::sync::Arc::make_mut(&mut policy.per_kind).insert(
        K::OrderCanceled,
        KindTiming {
            delay: SignedDuration::ZERO,
            expiry: SignedDuration::from_hours(2),
            quiet_hours: QuietHoursMode::Ignore,
        },
    );
    let cancelled = policy.schedule(K::OrderCanceled, evening);
    assert_eq!(cancelled.due_at, evening, "ignore: sent inside the window");
    assert_eq!(
        cancelled.expires_at,
        evening + SignedDuration::from_hours(2)
    );
    Ok(())
}

#[test]
fn send_time_check_expires_defers_and_never_drops_for_quiet_hours() -> TestResult {
    let quiet = night_window()?;
    let due = ts("2025-06-10T23:50:00Z")?; // 20:50 local
    let expires = due + SignedDuration::from_hours(2);
    let clock = ManualClock::new(due - secs(60));

    assert_eq!(
        send_time_check(
            due,
            expires,
            QuietHoursMode::Defer,
            Some(&quiet),
            clock.now()
        ),
        SendTiming::Defer {
            until: due,
            expires_at: expires
        }
    );
    clock.set(due);
    assert_eq!(
        send_time_check(
            due,
            expires,
            QuietHoursMode::Defer,
            Some(&quiet),
            clock.now()
        ),
        SendTiming::SendNow
    );

    // A backlog pushed it to 21:05: it waits for 08:00 and its expiry moves along.
    clock.advance(SignedDuration::from_mins(15));
    let verdict = send_time_check(
        due,
        expires,
        QuietHoursMode::Defer,
        Some(&quiet),
        clock.now(),
    );
    let SendTiming::Defer { until, expires_at } = verdict else {
        panic!("not deferred: {verdict:?}")
    };
    assert_eq!(until, ts("2025-06-11T11:00:00Z")?);
    assert_eq!(expires_at, expires + until.duration_since(clock.now()));
    clock.set(until);
    assert_eq!(
        send_time_check(
            until,
            expires_at,
            QuietHoursMode::Defer,
            Some(&quiet),
            clock.now()
        ),
        SendTiming::SendNow
    );

    // Ignore mode sends inside the window; expiry is final.
    clock.set(ts("2025-06-11T00:05:00Z")?);
    assert_eq!(
        send_time_check(
            due,
            expires,
            QuietHoursMode::Ignore,
            Some(&quiet),
            clock.now()
        ),
        SendTiming::SendNow
    );
    clock.set(expires);
    assert_eq!(
        send_time_check(
            due,
            expires,
            QuietHoursMode::Ignore,
            Some(&quiet),
            clock.now()
        ),
        SendTiming::Expired
    );
    Ok(())
}

#[test]
fn default_timing_per_kind() {
    for kind in K::ALL {
        let timing = KindTiming::default_for(kind);
        assert_eq!(timing.expiry, SignedDuration::from_hours(24));
        assert_eq!(timing.quiet_hours, QuietHoursMode::Defer);
        let expected = if kind == K::WaitingPayment {
            SignedDuration::from_mins(30)
        } else {
            SignedDuration::ZERO
        };
        assert_eq!(timing.delay, expected, "{kind}");
    }
}

// ---------------------------------------------------------------- pacing

/// A WhatsApp channel: the 20 s interval WhatsApp senders declare
/// (`sender-info.default-min-interval-ms`), no daily cap.
fn uncapped_whatsapp() -> PacingPolicy {
    PacingPolicy {
        min_interval: secs(20),
        daily_cap: None,
    }
}

/// Drain `count` messages as the dispatcher would: ask, wait (by moving the
/// clock), send, record. Returns the send instants.
fn drain(
    policy: &PacingPolicy,
    state: &mut PacingState,
    clock: &ManualClock,
    count: usize,
) -> Vec<Timestamp> {
    let mut sent = Vec::new();
    while sent.len() < count {
        let wait_until = match policy.next_send(state, clock.now()) {
            PacingDecision::SendAt(at) => at,
            PacingDecision::CapReached { until, .. } => until,
        };
        if wait_until > clock.now() {
            clock.set(wait_until);
            continue;
        }
        policy.record_send(state, clock.now());
        sent.push(clock.now());
    }
    sent
}

#[test]
fn minimum_interval_is_respected() -> TestResult {
    let policy = uncapped_whatsapp();
    let mut state = PacingState::default();
    let clock = ManualClock::new(ts("2025-06-10T13:00:00Z")?);
    assert_eq!(
        policy.next_send(&state, clock.now()),
        PacingDecision::SendAt(clock.now()),
        "first send is immediate"
    );
    let sent = drain(&policy, &mut state, &clock, 10);
    for pair in sent.windows(2) {
        assert_eq!(pair[1].duration_since(pair[0]), secs(20));
    }
    // After a quiet period the next send is immediate again.
    clock.advance(SignedDuration::from_mins(5));
    assert_eq!(
        policy.next_send(&state, clock.now()),
        PacingDecision::SendAt(clock.now())
    );
    // State survives a restart (serde).
    let restored: PacingState = serde_json::from_str(&serde_json::to_string(&state)?)?;
    assert_eq!(restored, state);
    Ok(())
}

#[test]
fn daily_cap_stops_and_resumes_at_the_reset_time() -> TestResult {
    // NI's reset: 21:00 São Paulo = 00:00 UTC.
    let policy = PacingPolicy {
        min_interval: secs(20),
        daily_cap: Some(DailyCap {
            limit: 3,
            reset_at: time(21, 0, 0, 0),
            time_zone: sao_paulo()?,
            warmup: None,
        }),
    };
    let mut state = PacingState::default();
    let clock = ManualClock::new(ts("2025-06-10T13:00:00Z")?); // 10:00 local
    let sent = drain(&policy, &mut state, &clock, 3);
    assert_eq!(sent.len(), 3);
    assert_eq!(
        policy.next_send(&state, clock.now()),
        PacingDecision::CapReached {
            until: ts("2025-06-11T00:00:00Z")?,
            cap: 3
        }
    );
    // 20:59:59 local: still capped.
    clock.set(ts("2025-06-10T23:59:59Z")?);
    assert!(matches!(
        policy.next_send(&state, clock.now()),
        PacingDecision::CapReached { .. }
    ));
    // At the reset the count starts over.
    let more = drain(&policy, &mut state, &clock, 3);
    assert_eq!(more[0], ts("2025-06-11T00:00:00Z")?);
    assert_eq!(state.sent_today, 3);
    assert!(matches!(
        policy.next_send(&state, clock.now()),
        PacingDecision::CapReached { .. }
    ));
    Ok(())
}

#[test]
fn warmup_grows_the_cap_each_day_until_the_limit() -> TestResult {
    let cap = DailyCap {
        limit: 10,
        reset_at: Time::midnight(),
        time_zone: sao_paulo()?,
        warmup: Some(Warmup { start: 2, step: 3 }),
    };
    let policy = PacingPolicy {
        min_interval: secs(20),
        daily_cap: Some(cap.clone()),
    };
    let mut state = PacingState::default();
    let clock = ManualClock::new(ts("2025-06-10T12:00:00Z")?); // 09:00 local
    let mut per_day = Vec::new();
    for day in 0..6 {
        let start = ts("2025-06-10T12:00:00Z")? + SignedDuration::from_hours(24 * day);
        clock.set(start);
        let mut count = 0;
        loop {
            match policy.next_send(&state, clock.now()) {
                PacingDecision::SendAt(at) => {
                    clock.set(at.max(clock.now()));
                    policy.record_send(&mut state, clock.now());
                    count += 1;
                }
                PacingDecision::CapReached { until, cap } => {
                    assert_eq!(cap, count, "reported cap matches what was allowed");
                    assert_eq!(
                        until.to_zoned_datetime(sao_paulo()?).time(),
                        Time::midnight()
                    );
                    break;
                }
            }
        }
        per_day.push(count);
    }
    assert_eq!(per_day, vec![2, 5, 8, 10, 10, 10]);
    assert_eq!(state.warmup_started_at, Some(ts("2025-06-10T12:00:00Z")?));
    Ok(())
}

#[test]
fn eta_is_interval_times_backlog_and_respects_the_cap() -> TestResult {
    assert_eq!(naive_eta(secs(20), 30), SignedDuration::from_mins(10));
    let now = ts("2025-06-10T13:00:00Z")?;
    let uncapped = uncapped_whatsapp();
    assert_eq!(uncapped.eta(&PacingState::default(), 0, now), None);
    assert_eq!(uncapped.eta(&PacingState::default(), 1, now), Some(now));
    assert_eq!(
        uncapped.eta(&PacingState::default(), 30, now),
        Some(now + secs(20 * 29))
    );

    let capped = PacingPolicy {
        min_interval: secs(20),
        daily_cap: Some(DailyCap {
            limit: 3,
            reset_at: time(21, 0, 0, 0),
            time_zone: sao_paulo()?,
            warmup: None,
        }),
    };
    let mut state = PacingState::default();
    capped.record_send(&mut state, now - secs(5));
    // 2 more today (13:00:15, 13:00:35), then 3 after the 00:00Z reset, 1 more the next day.
    assert_eq!(capped.eta(&state, 2, now), Some(now + secs(35)));
    assert_eq!(
        capped.eta(&state, 5, now),
        Some(ts("2025-06-11T00:00:40Z")?)
    );
    assert_eq!(
        capped.eta(&state, 6, now),
        Some(ts("2025-06-12T00:00:00Z")?)
    );

    // The simulated ETA agrees with actually draining the queue.
    let clock = ManualClock::new(now);
    let mut drained = state.clone();
    let sent = drain(&capped, &mut drained, &clock, 6);
    assert_eq!(sent.last().copied(), capped.eta(&state, 6, now));

    let zero = PacingPolicy {
        min_interval: secs(20),
        daily_cap: Some(DailyCap {
            limit: 0,
            reset_at: Time::midnight(),
            time_zone: sao_paulo()?,
            warmup: None,
        }),
    };
    assert_eq!(
        zero.eta(&PacingState::default(), 1, now),
        None,
        "a zero cap never drains"
    );
    Ok(())
}

#[test]
fn eta_with_warmup_matches_a_real_drain() -> TestResult {
    let policy = PacingPolicy {
        min_interval: secs(30),
        daily_cap: Some(DailyCap {
            limit: 50,
            reset_at: time(21, 0, 0, 0),
            time_zone: sao_paulo()?,
            warmup: Some(Warmup { start: 5, step: 5 }),
        }),
    };
    let now = ts("2025-06-10T13:00:00Z")?;
    let clock = ManualClock::new(now);
    let mut state = PacingState::default();
    let sent = drain(&policy, &mut state, &clock, 120);
    assert_eq!(
        sent.last().copied(),
        policy.eta(&PacingState::default(), 120, now)
    );
    Ok(())
}

// ---------------------------------------------------------------- retries

fn attempt(number: u32, expires_at: Timestamp) -> Attempt {
    Attempt { number, expires_at }
}

#[test]
fn backoff_is_capped_exponential_with_bounded_jitter() {
    let policy = RetryPolicy::default();
    let mut rng = StdRng::seed_from_u64(7);
    for n in 1..=12u32 {
        let raw = (30.0 * 2f64.powi(n as i32 - 1)).min(3600.0);
        let (low, high) = (raw * 0.8, (raw * 1.2).min(3600.0));
        let mut seen = Vec::new();
        for _ in 0..200 {
            let wait = policy.backoff(n, &mut rng).as_secs_f64();
            assert!(
                wait >= low - 1e-6 && wait <= high + 1e-6,
                "attempt {n}: {wait} not in [{low}, {high}]"
            );
            seen.push(wait);
        }
        let spread = seen.iter().cloned().fold(f64::MIN, f64::max)
            - seen.iter().cloned().fold(f64::MAX, f64::min);
        assert!(
            spread > raw * 0.1,
            "attempt {n}: jitter too small ({spread})"
        );
    }
    let exact = RetryPolicy {
        jitter: 0.0,
        ..RetryPolicy::default()
    };
    let schedule: Vec<i64> = (1..=9)
        .map(|n| exact.backoff(n, &mut rng).as_secs())
        .collect();
    assert_eq!(schedule, vec![30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
}

#[test]
fn retryable_failures_back_off_then_dead_letter_after_max_attempts() -> TestResult {
    let policy = RetryPolicy::default();
    let mut rng = StdRng::seed_from_u64(1);
    let now = ts("2025-06-10T13:00:00Z")?;
    let expires = now + SignedDuration::from_hours(24);
    let (class, retry_after) = (ErrorClass::Retryable, None);
    for n in 1..policy.max_attempts {
        match policy.on_failure(
            class,
            retry_after,
            "HTTP 503",
            attempt(n, expires),
            now,
            &mut rng,
        ) {
            RetryDecision::Retry { at, spend_attempt } => {
                assert!(spend_attempt);
                assert!(at > now && at <= now + SignedDuration::from_hours(1));
            }
            other => panic!("attempt {n}: {other:?}"),
        }
    }
    let last = policy.on_failure(
        class,
        retry_after,
        "HTTP 503",
        attempt(policy.max_attempts, expires),
        now,
        &mut rng,
    );
    assert_eq!(
        last,
        RetryDecision::Dead {
            reason: DeadReason::MaxAttempts {
                attempts: 5,
                message: "HTTP 503".into()
            }
        }
    );
    assert!(last_reason_text(&last).contains("gave up after 5 attempts: HTTP 503"));
    Ok(())
}

fn last_reason_text(decision: &RetryDecision) -> String {
    match decision {
        RetryDecision::Dead { reason } => reason.to_string(),
        other => format!("{other:?}"),
    }
}

#[test]
fn retry_after_is_honoured_without_spending_an_attempt() -> TestResult {
    let policy = RetryPolicy::default();
    let mut rng = StdRng::seed_from_u64(1);
    let now = ts("2025-06-10T13:00:00Z")?;
    let expires = now + SignedDuration::from_hours(24);
    let (class, retry_after) = (ErrorClass::Retryable, Some(secs(90)));
    // Even on the last attempt: being told to wait is not a failure of the message.
    for n in [1, policy.max_attempts] {
        assert_eq!(
            policy.on_failure(
                class,
                retry_after,
                "429",
                attempt(n, expires),
                now,
                &mut rng
            ),
            RetryDecision::Retry {
                at: now + secs(90),
                spend_attempt: false
            }
        );
    }
    // But not past the job's expiry.
    let soon = now + secs(60);
    assert!(matches!(
        policy.on_failure(class, retry_after, "429", attempt(1, soon), now, &mut rng),
        RetryDecision::Dead {
            reason: DeadReason::Expired { .. }
        }
    ));
    Ok(())
}

#[test]
fn permanent_misconfigured_sandbox_and_expiry() -> TestResult {
    let policy = RetryPolicy::default();
    let mut rng = StdRng::seed_from_u64(3);
    let now = ts("2025-06-10T13:00:00Z")?;
    let expires = now + SignedDuration::from_hours(24);
    assert_eq!(
        policy.on_failure(
            ErrorClass::Permanent,
            None,
            "número inválido",
            attempt(1, expires),
            now,
            &mut rng
        ),
        RetryDecision::Dead {
            reason: DeadReason::Permanent {
                message: "número inválido".into()
            }
        }
    );
    assert_eq!(
        policy.on_failure(
            ErrorClass::Misconfigured,
            None,
            "token inválido/expirado",
            attempt(3, expires),
            now,
            &mut rng
        ),
        RetryDecision::PauseChannel {
            reason: "token inválido/expirado".into()
        }
    );
    assert!(matches!(
        policy.on_failure(
            ErrorClass::Sandbox,
            None,
            "fuel exhausted",
            attempt(1, expires),
            now,
            &mut rng
        ),
        RetryDecision::Retry {
            spend_attempt: true,
            ..
        }
    ));
    assert!(matches!(
        policy.on_failure(
            ErrorClass::Sandbox,
            None,
            "fuel exhausted",
            attempt(5, expires),
            now,
            &mut rng
        ),
        RetryDecision::Dead {
            reason: DeadReason::MaxAttempts { .. }
        }
    ));
    // A back-off landing after the expiry dead-letters as expired.
    let near = now + secs(10);
    assert!(matches!(
        policy.on_failure(
            ErrorClass::Retryable,
            None,
            "timeout",
            attempt(1, near),
            now,
            &mut rng
        ),
        RetryDecision::Dead {
            reason: DeadReason::Expired { .. }
        }
    ));
    Ok(())
}
