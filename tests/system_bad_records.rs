//! Full-system tests of what arauto does with bad records from the platform:
//! the real `arauto` binary and plugins against the fake Loja Integrada API
//! (see `support/system.rs`), asserting what the customer receives.

// All test code: with this, clippy's allow-unwrap/expect-in-tests covers the
// helper functions too, not only the #[test] ones (see clippy.toml).
#![cfg(test)]

use crate::support;

use nix::sys::signal::Signal;
use serde_json::json;

use support::daemon::PATIENCE;
use support::system::{ChannelKnobs, StoreKnobs, World, brl, create, order_for, phone_digits};

/// Amounts and quantities LI sends unreadable (`"abc"`, `null`, absurdly
/// large) are unknown to arauto, never zero: the customer's message leaves
/// them out instead of saying "R$ 0,00" or guessing "1x", and the store's
/// other orders are told as usual.
#[test]
fn unreadable_amounts_are_left_out_of_the_message_never_shown_as_zero() {
    let world = World::new();
    let shop = world.shop("loja");
    let zap = world.channel(arauto_sim::channels::Provider::EvolutionApi);
    let bad = create(&shop, order_for("Ana", 31, "pedido_pago"));
    shop.li.override_detail(bad, "/valor_total", json!("abc"));
    shop.li
        .override_detail(bad, "/valor_subtotal", serde_json::Value::Null);
    shop.li
        .override_detail(bad, "/valor_envio", json!("99999999999999999999999.99"));
    shop.li
        .override_detail(bad, "/itens/0/quantidade", serde_json::Value::Null);
    shop.li
        .override_detail(bad, "/itens/0/preco_venda", json!("abc"));
    let good = create(&shop, order_for("Bia", 32, "pedido_pago"));
    let tables = world.store_toml(&shop, &["whatsapp"], StoreKnobs::default())
        + &world.channel_toml("whatsapp", &zap, ChannelKnobs::default());
    let mut daemon = world.start(&tables, &[]);

    let received = world.wait_received(&zap, 2);
    daemon.signal(Signal::SIGTERM);
    assert!(daemon.wait_exit(PATIENCE).success());

    let to_bad = received
        .iter()
        .find(|m| m.to == phone_digits(31))
        .unwrap_or_else(|| panic!("no message to Ana: {received:#?}"));
    let text = &to_bad.text;
    assert!(text.contains(&format!("#{bad}")), "{text}");
    assert!(
        !text.contains("R$ 0,00"),
        "an unreadable amount shown as zero:\n{text}"
    );
    assert!(
        !text.contains("Total"),
        "an unknown total was printed:\n{text}"
    );
    assert!(
        !text.contains("Frete"),
        "an unknown shipping fee was printed:\n{text}"
    );
    assert!(
        !text.contains("1x"),
        "an unknown quantity was guessed:\n{text}"
    );

    let to_good = received
        .iter()
        .find(|m| m.to == phone_digits(32))
        .unwrap_or_else(|| panic!("no message to Bia: {received:#?}"));
    let total = shop
        .li
        .order(good)
        .map(|o| o.total_cents())
        .unwrap_or_default();
    assert!(
        to_good.text.contains(&format!("*Total:* {}", brl(total))),
        "{}",
        to_good.text
    );
}
