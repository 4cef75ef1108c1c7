// Helpers of the `sender` world only, included into `arauto_plugin_sdk::sender`.

/// The customer's phone as the host resolved it: E.164 (`+`, then 8 to 15
/// digits), ready for a provider that wants the `+` form. A message without
/// one, or with something else there, cannot be delivered by a phone channel
/// however often it is retried, so the error is permanent and names the value.
///
/// `channel` completes the sentence "… `channel` needs one", e.g. "WhatsApp".
/// Providers that want bare digits take `&phone[1..]`.
pub fn recipient_e164(msg: &Message, channel: &str) -> Result<String, PluginError> {
    let Some(phone) = msg
        .recipient
        .phone
        .as_deref()
        .map(str::trim)
        .filter(|phone| !phone.is_empty())
    else {
        return Err(permanent(format!(
            "the customer has no usable mobile phone number: {channel} needs one (order without phone, or only landlines)"
        )));
    };
    match phone.strip_prefix('+') {
        Some(digits)
            if (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Ok(phone.to_owned())
        }
        _ => Err(permanent(format!(
            "recipient phone {phone:?} is not an E.164 number (+<country><number>)"
        ))),
    }
}

#[cfg(test)]
mod recipient_tests {
    use super::*;

    fn message(phone: Option<&str>) -> Message {
        Message {
            idempotency_key: "k".into(),
            attempt: 1,
            recipient: Recipient {
                phone: phone.map(str::to_owned),
                email: None,
                name: None,
                first_name: None,
            },
            text: "olá".into(),
            template: None,
            meta: MessageMeta {
                store: "loja".into(),
                order_id: "1".into(),
                order_number: "1".into(),
                notification: "order-paid".into(),
                job_id: "1".into(),
                channel: "zap".into(),
            },
            event_json: "{}".into(),
        }
    }

    fn refusal(phone: Option<&str>) -> String {
        match recipient_e164(&message(phone), "WhatsApp") {
            Err(PluginError::Permanent(why)) => why,
            other => panic!("{phone:?}: expected a permanent error, got {other:?}"),
        }
    }

    #[test]
    fn e164_phones_pass_unchanged() {
        for phone in ["+5511987654321", "+12025550123", "+35191234567"] {
            assert_eq!(
                recipient_e164(&message(Some(phone)), "WhatsApp").ok().as_deref(),
                Some(phone)
            );
        }
        assert_eq!(
            recipient_e164(&message(Some(" +5511987654321 ")), "SMS")
                .ok()
                .as_deref(),
            Some("+5511987654321")
        );
    }

    #[test]
    fn missing_or_malformed_phones_are_permanent_and_named() {
        assert!(refusal(None).contains("WhatsApp needs one"));
        assert!(refusal(Some("  ")).contains("no usable mobile phone"));
        for bad in ["5511987654321", "+55 11 98765-4321", "+1234567", "+1234567890123456"] {
            let why = refusal(Some(bad));
            assert!(why.contains(&format!("{bad:?}")), "{why}");
        }
    }
}
