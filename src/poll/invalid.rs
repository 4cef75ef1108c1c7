//! Invalid events of a sweep: an order that lacks the contact a channel's
//! sender declared it delivers to (a usable phone, an e-mail, a chat id). Counted in the store status (by reason for `arauto check`; per
//! day, channel and kind for `arauto report`, which counts them as skipped)
//! and logged with the reason and the phone values masked.

use jiff::civil::Date;

use crate::decide::InvalidEvent;
use crate::model::NoUsablePhone;
use crate::queue::{SKIPPED_DAYS_KEPT, SkippedCount, StoreStatus};

/// Count an order's invalid events in the store status (by reason, and per
/// day, channel and kind for `arauto report`) and log each with the reason and
/// the masked phone values (`model::phone::masked`).
pub(super) fn record_invalid(
    status: &mut StoreStatus,
    invalid: &[InvalidEvent],
    no_usable_phone: Option<&NoUsablePhone>,
    store_id: &str,
    order_id: &str,
    day: Date,
) {
    status.invalid_events += 1;
    if let Some(first) = invalid.first() {
        *status
            .invalid_reasons
            .entry(first.reason.key().to_owned())
            .or_default() += 1;
    }
    let oldest_kept = day
        .checked_sub(jiff::Span::new().days(SKIPPED_DAYS_KEPT))
        .map(|d| d.to_string())
        .unwrap_or_default();
    let day = day.to_string();
    status.skipped.retain(|s| s.day >= oldest_kept);
    for event in invalid {
        let (kind, reason) = (event.kind.as_str(), event.reason.key());
        match status.skipped.iter_mut().find(|s| {
            s.day == day && s.channel == event.channel && s.kind == kind && s.reason == reason
        }) {
            Some(count) => count.count += 1,
            None => status.skipped.push(SkippedCount {
                day: day.clone(),
                channel: event.channel.clone(),
                kind: kind.to_owned(),
                reason: reason.to_owned(),
                count: 1,
            }),
        }
        let phone_detail = match event.reason {
            crate::decide::InvalidReason::UnusablePhone(_) => no_usable_phone,
            _ => None,
        };
        let detail = match phone_detail {
            Some(none) if !none.rejected.is_empty() => none
                .rejected
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
            Some(none) => none.to_string(),
            None => String::new(),
        };
        tracing::warn!(
            store = store_id,
            order = %order_id,
            notification = %event.kind,
            channel = %event.channel,
            reason = %reason,
            "invalid event, not queued on {}: {}: {detail}",
            event.channel,
            event.reason
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::InvalidReason;
    use crate::model::NotificationKind;
    use crate::model::PhoneProblem;
    use crate::model::first_usable_phone;

    fn event(kind: NotificationKind, channel: &str, problem: PhoneProblem) -> InvalidEvent {
        InvalidEvent {
            kind,
            channel: channel.to_owned(),
            reason: InvalidReason::UnusablePhone(problem),
        }
    }

    #[test]
    fn counts_by_reason_and_by_day_channel_and_kind_and_forgets_old_days() {
        let landline = first_usable_phone(&["(11) 3333-4444"]).err();
        let paid = |channel| event(NotificationKind::OrderPaid, channel, PhoneProblem::Landline);
        let mut status = StoreStatus::default();
        let day = |d: &str| d.parse::<Date>().unwrap();
        record_invalid(
            &mut status,
            &[paid("whatsapp"), paid("sms")],
            landline.as_ref(),
            "loja",
            "1001",
            day("2026-01-01"),
        );
        record_invalid(
            &mut status,
            &[paid("whatsapp")],
            landline.as_ref(),
            "loja",
            "1002",
            day("2026-01-01"),
        );
        assert_eq!(status.invalid_events, 2, "one per order event");
        assert_eq!(status.invalid_reasons.get("landline"), Some(&2));
        let counts: Vec<(&str, &str, u64)> = status
            .skipped
            .iter()
            .map(|s| (s.day.as_str(), s.channel.as_str(), s.count))
            .collect();
        assert_eq!(
            counts,
            [("2026-01-01", "whatsapp", 2), ("2026-01-01", "sms", 1)],
            "one per notification and channel"
        );
        assert!(
            status
                .skipped
                .iter()
                .all(|s| s.kind == "order-paid" && s.reason == "landline")
        );

        // 92 days later the first day is still kept, 93 days later it is gone.
        record_invalid(
            &mut status,
            &[paid("whatsapp")],
            None,
            "loja",
            "1003",
            day("2026-04-03"),
        );
        assert_eq!(status.skipped.len(), 3);
        record_invalid(
            &mut status,
            &[paid("whatsapp")],
            None,
            "loja",
            "1004",
            day("2026-04-04"),
        );
        let days: Vec<&str> = status.skipped.iter().map(|s| s.day.as_str()).collect();
        assert_eq!(days, ["2026-04-03", "2026-04-04"]);
    }
}
