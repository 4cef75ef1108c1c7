//! The `connector` world: bindings, the [`Connector`] trait a platform
//! connector implements, and helpers only connectors need (unknown amounts,
//! the high-water rule, notices).
//!
//! Export an implementation with [`crate::export_connector!`].

wit_bindgen::generate!({
    world: "connector",
    path: "../wit/since_v0.2.0",
    default_bindings_module: "arauto_plugin_sdk::connector",
    pub_export_macro: true,
    export_macro_name: "__export_connector_world",
    with: {
        "arauto:plugin/types@0.2.0": crate::imports::arauto::plugin::types,
        "arauto:plugin/http@0.2.0": crate::imports::arauto::plugin::http,
        "arauto:plugin/log@0.2.0": crate::imports::arauto::plugin::log,
        "arauto:plugin/config@0.2.0": crate::imports::arauto::plugin::config,
        "arauto:plugin/clock@0.2.0": crate::imports::arauto::plugin::clock,
    },
});

pub use self::exports::arauto::plugin::connector_api::*;
pub use crate::support::*;
// Named explicitly: the world's own aliases of these types (from its `use
// types.{…}`) would otherwise make the two glob imports ambiguous.
pub use crate::support::{
    ConfigKey, NotificationKind, PaymentFamily, PluginError, PluginInfo, RetryableError,
};

/// What a platform connector implements. The push methods have defaults for
/// connectors whose platform cannot push (their `info` declares
/// `push: PushSupport { verify: false, register: false }` and the host never
/// calls them).
pub trait Connector {
    /// The plugin, its platform, status catalogue, capabilities, request
    /// budget and push support. Called once when the daemon loads the file,
    /// without settings.
    fn info() -> ConnectorInfo;
    /// Live credential and reachability test (one cheap authenticated call).
    fn check() -> Result<(), PluginError>;
    /// One page of orders (see `poll-request` and `poll-page` in the WIT).
    fn poll(req: PollRequest) -> Result<PollPage, PluginError>;
    /// Authenticate a pushed delivery and say which orders to look at.
    fn verify_push(req: PushRequest) -> Result<PushHint, PluginError> {
        let _ = req;
        Err(permanent("this connector does not verify pushed webhooks"))
    }
    /// Subscribe the platform's pushes to `notify_url`.
    fn register_push(notify_url: String) -> Result<(), PluginError> {
        let _ = notify_url;
        Err(permanent("this connector cannot register pushed webhooks"))
    }
    /// Undo [`Connector::register_push`].
    fn unregister_push(notify_url: String) -> Result<(), PluginError> {
        let _ = notify_url;
        Err(permanent(
            "this connector cannot unregister pushed webhooks",
        ))
    }
}

/// Everything a connector usually needs, in one import.
pub mod prelude {
    pub use super::exports::arauto::plugin::connector_api::*;
    pub use super::{
        Connector, MONEY_UNKNOWN_CENTS, NotificationKind, PaymentFamily, PluginError, PluginInfo,
        QUANTITY_UNKNOWN, RetryableError, clock, config_key, high_water, http, log, misconfigured,
        money_or_unknown, money_unknown, notice, permanent, retry_after, retryable, settings,
    };
}

/// The `cents` of a [`Money`] whose amount could not be read (a value that is
/// not a decimal, `null`, or too large for an `s64`). The host shows such an
/// amount as absent (templates test `{% if order.total %}`), never as zero:
/// "R$ 0,00" on a customer's message is worse than no amount at all.
pub const MONEY_UNKNOWN_CENTS: i64 = i64::MIN;

/// The `quantity` of an [`Item`] whose quantity could not be read.
pub const QUANTITY_UNKNOWN: &str = "";

impl Money {
    /// An amount the connector could not read (see [`MONEY_UNKNOWN_CENTS`]).
    pub const UNKNOWN: Money = Money {
        cents: MONEY_UNKNOWN_CENTS,
    };

    /// `Some(cents)` when the amount was read, `None` for [`Money::UNKNOWN`].
    pub fn known_cents(&self) -> Option<i64> {
        (self.cents != MONEY_UNKNOWN_CENTS).then_some(self.cents)
    }

    /// True for [`Money::UNKNOWN`].
    pub fn is_unknown(&self) -> bool {
        self.cents == MONEY_UNKNOWN_CENTS
    }
}

/// [`Money::UNKNOWN`], for struct literals.
pub fn money_unknown() -> Money {
    Money::UNKNOWN
}

/// `Money { cents }` for `Some(cents)`, [`Money::UNKNOWN`] for `None`.
pub fn money_or_unknown(cents: Option<i64>) -> Money {
    cents.map_or(Money::UNKNOWN, |cents| Money { cents })
}

/// The high-water mark rule every connector follows: a cursor never moves past
/// the connector's own "now" plus a tolerance.
///
/// A platform timestamp in the future (a data-entry mistake, a platform bug,
/// `2099-01-01T00:00:00`) would otherwise become the cursor's high-water mark,
/// and every later poll would ask for orders modified since 2099: the store
/// would go silent for good. The order itself is still processed; only the
/// mark stops at `now + tolerance`, and [`notice::future_timestamp`] tells
/// the host which order carried the odd value.
///
/// All values are milliseconds on one time line (Unix milliseconds, or a
/// platform's local wall-clock time expressed the same way); `candidate_ms`
/// is signed so that any platform date converts without loss.
pub mod high_water {
    /// A sensible default tolerance: 10 minutes covers clock skew between the
    /// host and the platform without letting a bogus date run far ahead.
    pub const DEFAULT_TOLERANCE_MS: u64 = 10 * 60 * 1000;

    /// What [`clamp`] decided.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum HighWater {
        /// The candidate is not beyond `now + tolerance`: use it.
        Accepted(i64),
        /// The candidate was beyond `now + tolerance`; use this ceiling instead.
        Clamped(i64),
    }

    impl HighWater {
        /// The value to store in the cursor.
        pub fn value(self) -> i64 {
            match self {
                HighWater::Accepted(v) | HighWater::Clamped(v) => v,
            }
        }
        /// True when the candidate was in the future.
        pub fn was_clamped(self) -> bool {
            matches!(self, HighWater::Clamped(_))
        }
    }

    /// `now + tolerance`, the furthest a high-water mark may go.
    pub fn ceiling(now_ms: i64, tolerance_ms: u64) -> i64 {
        now_ms.saturating_add(i64::try_from(tolerance_ms).unwrap_or(i64::MAX))
    }

    /// True when `candidate_ms` lies beyond `now + tolerance`.
    pub fn is_future(candidate_ms: i64, now_ms: i64, tolerance_ms: u64) -> bool {
        candidate_ms > ceiling(now_ms, tolerance_ms)
    }

    /// `candidate_ms`, or `now + tolerance` when the candidate is beyond it.
    pub fn clamp(candidate_ms: i64, now_ms: i64, tolerance_ms: u64) -> HighWater {
        let ceiling = ceiling(now_ms, tolerance_ms);
        if candidate_ms > ceiling {
            HighWater::Clamped(ceiling)
        } else {
            HighWater::Accepted(candidate_ms)
        }
    }

    /// The same rule for any ordered time type (a platform's own date-time):
    /// `(min(candidate, ceiling), clamped)`, with `ceiling = now + tolerance`
    /// computed by the caller in that type.
    pub fn clamp_to<T: Ord>(candidate: T, ceiling: T) -> (T, bool) {
        if candidate > ceiling {
            (ceiling, true)
        } else {
            (candidate, false)
        }
    }
}

/// Structured notices to the host: log records whose fields contain the key
/// `notice` (see the `log` interface's documentation in the WIT package).
///
/// Each is still an ordinary log line in the daemon's journal; the host also
/// collects them per poll call and shows them in `arauto check` and
/// `arauto report`. Field names and values are part of the contract: use
/// these helpers rather than spelling them by hand.
pub mod notice {
    use super::log::{self, Level};

    /// The field key that makes a log record a notice.
    pub const KEY: &str = "notice";
    /// An order's modification time is beyond now + tolerance.
    pub const FUTURE_TIMESTAMP: &str = "future-timestamp";
    /// An order could not be read; it is retried later.
    pub const ORDER_UNREADABLE: &str = "order-unreadable";
    /// An order was given up after repeated failures until it changes.
    pub const ORDER_QUARANTINED: &str = "order-quarantined";
    /// An order that had failed was read fine.
    pub const ORDER_RECOVERED: &str = "order-recovered";

    /// `notice=future-timestamp order=<id> value=<raw>` at warn: the order was
    /// processed, but the cursor stops at now + tolerance.
    pub fn future_timestamp(order: &str, raw_value: &str) {
        log::log(
            Level::Warn,
            &format!(
                "order {order} has a modification time in the future ({raw_value}); it was \
                 processed, but the cursor does not move past now plus the tolerance"
            ),
            &[
                (KEY, FUTURE_TIMESTAMP),
                ("order", order),
                ("value", raw_value),
            ],
        );
    }

    /// `notice=order-unreadable order=<id> attempt=<n> retry_in_s=<secs>` at
    /// warn; the message is the reason.
    pub fn order_unreadable(order: &str, attempt: u32, retry_in_s: u64, reason: &str) {
        log::log(
            Level::Warn,
            &format!(
                "order {order} could not be read (attempt {attempt}, retried in {retry_in_s} s): \
                 {reason}"
            ),
            &[
                (KEY, ORDER_UNREADABLE),
                ("order", order),
                ("attempt", &attempt.to_string()),
                ("retry_in_s", &retry_in_s.to_string()),
            ],
        );
    }

    /// `notice=order-quarantined order=<id> attempts=<n>` at error; the
    /// message is the last reason. Retried only when the order changes.
    pub fn order_quarantined(order: &str, attempts: u32, reason: &str) {
        log::log(
            Level::Error,
            &format!(
                "order {order} could not be read after {attempts} attempts and is set aside \
                 until it changes on the platform: {reason}"
            ),
            &[
                (KEY, ORDER_QUARANTINED),
                ("order", order),
                ("attempts", &attempts.to_string()),
            ],
        );
    }

    /// `notice=order-recovered order=<id>` at info.
    pub fn order_recovered(order: &str) {
        log::log(
            Level::Info,
            &format!("order {order}, which could not be read before, was read fine"),
            &[(KEY, ORDER_RECOVERED), ("order", order)],
        );
    }
}

/// Per-order retry schedule: how long to wait after the `attempt`-th failure
/// (1-based): `base`, doubling, capped at `cap`.
pub fn order_retry_backoff_ms(attempt: u32, base_ms: u64, cap_ms: u64) -> u64 {
    let doublings = attempt.saturating_sub(1).min(63);
    base_ms.saturating_mul(1u64 << doublings).min(cap_ms)
}

#[cfg(test)]
mod connector_support_tests {
    use super::high_water::{self, HighWater};
    use super::*;

    #[test]
    fn a_candidate_in_the_future_is_clamped_to_now_plus_tolerance() {
        let now = 1_715_342_400_000;
        let tol = high_water::DEFAULT_TOLERANCE_MS;
        assert_eq!(
            high_water::clamp(now - 5, now, tol),
            HighWater::Accepted(now - 5)
        );
        assert_eq!(
            high_water::clamp(now + 600_000, now, tol),
            HighWater::Accepted(now + 600_000)
        );
        let year_2099 = 4_070_908_800_000;
        let clamped = high_water::clamp(year_2099, now, tol);
        assert_eq!(clamped, HighWater::Clamped(now + 600_000));
        assert!(clamped.was_clamped());
        assert_eq!(clamped.value(), now + 600_000);
        assert!(high_water::is_future(year_2099, now, tol));
        assert!(!high_water::is_future(now, now, tol));
        assert_eq!(
            high_water::clamp(i64::MAX, i64::MAX - 1, u64::MAX).value(),
            i64::MAX
        );
        assert_eq!(high_water::clamp_to("2099", "2024"), ("2024", true));
        assert_eq!(high_water::clamp_to("2023", "2024"), ("2023", false));
    }

    #[test]
    fn unknown_money_is_a_sentinel_distinct_from_zero() {
        assert_eq!(Money::UNKNOWN.cents, i64::MIN);
        assert!(money_unknown().is_unknown());
        assert_eq!(Money { cents: 0 }.known_cents(), Some(0));
        assert_eq!(Money::UNKNOWN.known_cents(), None);
        assert_eq!(money_or_unknown(None).cents, MONEY_UNKNOWN_CENTS);
        assert_eq!(money_or_unknown(Some(5)).cents, 5);
        assert_eq!(QUANTITY_UNKNOWN, "");
    }

    #[test]
    fn order_retries_back_off_from_a_minute_to_an_hour() {
        let b = |n| order_retry_backoff_ms(n, 60_000, 3_600_000);
        assert_eq!(
            [b(1), b(2), b(3), b(4)],
            [60_000, 120_000, 240_000, 480_000]
        );
        assert_eq!(b(7), 3_600_000);
        assert_eq!(b(u32::MAX), 3_600_000);
    }

    #[test]
    fn notices_carry_the_agreed_fields() {
        testing::install(testing::Harness::new());
        notice::future_timestamp("1001", "2099-01-01T00:00:00");
        notice::order_unreadable("1002", 2, 120, "too large");
        notice::order_quarantined("1003", 5, "malformed");
        notice::order_recovered("1004");
        let logs = testing::logs();
        let fields = |i: usize| -> Vec<(String, String)> { logs[i].2.clone() };
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert_eq!(logs[0].0, log::Level::Warn);
        assert_eq!(
            fields(0),
            pairs(&[
                ("notice", "future-timestamp"),
                ("order", "1001"),
                ("value", "2099-01-01T00:00:00")
            ])
        );
        assert_eq!(
            fields(1),
            pairs(&[
                ("notice", "order-unreadable"),
                ("order", "1002"),
                ("attempt", "2"),
                ("retry_in_s", "120")
            ])
        );
        assert!(logs[1].1.contains("too large"), "{}", logs[1].1);
        assert_eq!(
            fields(2),
            pairs(&[
                ("notice", "order-quarantined"),
                ("order", "1003"),
                ("attempts", "5")
            ])
        );
        assert!(logs[2].1.contains("malformed"));
        assert_eq!(
            fields(3),
            pairs(&[("notice", "order-recovered"), ("order", "1004")])
        );
        assert_eq!(logs[3].0, log::Level::Info);
    }
}
