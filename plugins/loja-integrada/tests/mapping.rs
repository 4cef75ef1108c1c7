//! From LI's order JSON to the normalised snapshot: customers, money in
//! every format, payments, split shipments with tracking codes, items, extras.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use arauto_plugin_sdk::connector::{OrderSnapshot, PaymentFamily};
use arauto_sim::li::{
    ClienteForm, Customer, Endpoint, Item, MoneyFormat, Order, Payment, Shipment,
};
use common::*;
use jiff::civil::date;
use serde_json::Value;

fn only(orders: Vec<OrderSnapshot>) -> OrderSnapshot {
    assert_eq!(orders.len(), 1, "{orders:?}");
    orders.into_iter().next().unwrap()
}

fn extras(order: &OrderSnapshot) -> Value {
    serde_json::from_str(&order.extras_json).expect("extras are a JSON object")
}

/// The shipped order of docs/platforms/loja-integrada.md §Example: a shipped order.
fn shipped_order() -> Order {
    Order::new()
        .numero(1002)
        .customer(
            Customer::new("JOÃO TESTE SOUZA")
                .email("joao.teste@example.com")
                .mobile("21900000002")
                .phone("2130000002"),
        )
        .items(vec![Item::new("SHORT-G", "Short Verão G", 13990)])
        .payment(Payment::credit_card(2))
        .shipments(vec![Shipment::sedex(2138).tracking("AA123456785BR")])
        .discount(500, Some("BEMVINDO5"))
        .utm_campaign("maio")
        .status("pedido_enviado")
        .created_at(date(2024, 5, 8).at(16, 3, 10, 402_991_000))
        .modified_at(date(2024, 5, 10).at(10, 41, 2, 930_117_000))
}

#[test]
fn a_shipped_order_maps_every_field() {
    let fake = fake();
    fake.store.create_order(shipped_order());
    install(&fake, &[]);
    let o = only(sweep(None, None).orders);
    assert_eq!((o.id.as_str(), o.number.as_str()), ("1002", "1002"));
    assert_eq!(
        (o.status.code.as_str(), o.status.name.as_str()),
        ("pedido_enviado", "Pedido Enviado")
    );
    assert_eq!(o.created_at, "2024-05-08T16:03:10.402991-03:00");
    assert_eq!(o.updated_at, "2024-05-10T10:41:02.930117-03:00");
    assert_eq!(o.customer.name, "JOÃO TESTE SOUZA");
    assert_eq!(o.customer.first_name, "João");
    assert_eq!(
        o.customer.phones,
        vec!["21900000002", "2130000002"],
        "mobile first, raw"
    );
    assert_eq!(o.customer.email.as_deref(), Some("joao.teste@example.com"));
    assert_eq!(o.subtotal.cents, 13990);
    assert_eq!(o.shipping.cents, 2138);
    assert_eq!(o.discount.cents, 500);
    assert_eq!(o.total.cents, 15628);
    assert_eq!(o.currency, "BRL");
    let payment = o.payment.as_ref().unwrap();
    assert_eq!(
        (
            payment.code.as_str(),
            payment.name.as_str(),
            payment.family,
            payment.installments
        ),
        (
            "pagsegurov2",
            "PagSeguro V2",
            PaymentFamily::CreditCard,
            Some(2)
        )
    );
    assert_eq!(o.shipments.len(), 1);
    let s = &o.shipments[0];
    assert_eq!(s.carrier.as_deref(), Some("Frenet"));
    assert_eq!(s.method.as_deref(), Some("SEDEX"));
    assert_eq!(s.tracking_code.as_deref(), Some("AA123456785BR"));
    assert_eq!(
        s.tracking_url.as_deref(),
        Some("https://rastreamento.correios.com.br/app/index.php?objeto=AA123456785BR")
    );
    assert_eq!(o.items.len(), 1);
    let item = &o.items[0];
    assert_eq!(item.sku.as_deref(), Some("SHORT-G"));
    assert_eq!(item.name, "Short Verão G");
    assert_eq!(item.quantity, "1");
    assert_eq!((item.unit_price.cents, item.total.cents), (13990, 13990));
    assert!(
        o.boleto.is_none() && o.pix.is_none(),
        "LI's GET never carries charge data"
    );
    assert!(o.detailed);

    let x = extras(&o);
    assert_eq!(x["platform"], "loja-integrada");
    assert_eq!(x["situacao_id"], 11);
    assert_eq!(x["cupom_desconto"], "BEMVINDO5");
    assert_eq!(x["utm_campaign"], "maio");
    assert_eq!(x["endereco_entrega"]["cidade"], "São Paulo");
    assert_eq!(x["endereco_entrega"]["estado"], "SP");
    assert_eq!(x["prazo_entrega_dias"], 3);
    assert_eq!(x["bandeira"], "Mastercard");
    assert_eq!(x["valor_parcela_centavos"], 7814);
    assert_eq!(x["data_expiracao"], "2024-05-14T16:03:10.402991-03:00");
    assert!(x.get("id_externo").is_none(), "null extras are left out");
}

#[test]
fn money_as_numbers_maps_to_the_same_cents() {
    let fake = fake();
    fake.store.configure(|o| o.money = MoneyFormat::Numbers);
    fake.store.create_order(shipped_order().items(vec![
        Item::new("A", "Meia", 1999).quantity(3),
        Item::new("B", "Tecido (m)", 1234).quantity_milli(2500),
    ]));
    install(&fake, &[]);
    let o = only(sweep(None, None).orders);
    assert_eq!(o.subtotal.cents, 5997 + 3085);
    assert_eq!(o.total.cents, 5997 + 3085 + 2138 - 500);
    assert_eq!(o.items[0].quantity, "3");
    assert_eq!(
        (o.items[0].unit_price.cents, o.items[0].total.cents),
        (1999, 5997)
    );
    assert_eq!(o.items[1].quantity, "2.5");
    assert_eq!(
        (o.items[1].unit_price.cents, o.items[1].total.cents),
        (1234, 3085)
    );
}

#[test]
fn a_pix_order_awaiting_payment_maps_family_and_waiting_status() {
    let fake = fake();
    fake.store.create_order(Order::new());
    install(&fake, &[]);
    let o = only(sweep(None, None).orders);
    assert_eq!(o.status.code, "aguardando_pagamento");
    let payment = o.payment.unwrap();
    assert_eq!(
        (payment.code.as_str(), payment.family, payment.installments),
        ("pagali-pix", PaymentFamily::Pix, None)
    );
    assert_eq!(o.shipments[0].tracking_code, None);
    assert_eq!(o.shipments[0].tracking_url, None);
    assert_eq!(o.customer.first_name, "Maria");
}

#[test]
fn payment_families_of_boleto_deposit_and_marketplace_orders() {
    let fake = fake();
    let boleto = fake
        .store
        .create_order(Order::new().payment(Payment::boleto()));
    let deposit = fake
        .store
        .create_order(Order::new().payment(Payment::deposit()));
    let hub = fake
        .store
        .create_order(Order::new().payment(Payment::external()));
    install(&fake, &[]);
    let orders = sweep(None, None).orders;
    let find = |n: u64| orders.iter().find(|o| o.id == n.to_string()).unwrap();
    assert_eq!(
        find(boleto).payment.as_ref().unwrap().family,
        PaymentFamily::Boleto
    );
    assert!(find(boleto).boleto.is_none(), "no barcode in LI's API");
    assert_eq!(
        find(deposit).payment.as_ref().unwrap().family,
        PaymentFamily::Deposit
    );
    assert_eq!(
        find(hub).payment.as_ref().unwrap().family,
        PaymentFamily::External
    );
    assert_eq!(extras(find(hub))["marketplace"], true);
}

#[test]
fn cliente_given_as_a_uri_is_fetched_once_per_customer_in_either_prefix() {
    for prefix in ["/api/v1", "/v1"] {
        let fake = fake();
        fake.store.configure(|o| {
            o.cliente = ClienteForm::Uri;
            o.uri_prefix = prefix.into();
        });
        let buyer = Customer::new("Ana Lima")
            .id(90_000_777)
            .mobile("31900000003")
            .email("ana@example.com");
        fake.store
            .create_order(Order::new().customer(buyer.clone()));
        fake.store.create_order(Order::new().customer(buyer));
        install(&fake, &[]);
        let orders = sweep(None, None).orders;
        assert_eq!(orders.len(), 2);
        for o in &orders {
            assert_eq!(o.customer.name, "Ana Lima");
            assert_eq!(o.customer.phones, vec!["31900000003"]);
            assert_eq!(o.customer.email.as_deref(), Some("ana@example.com"));
            assert_eq!(extras(o)["cliente_id"], 90_000_777);
        }
        let customer_calls: Vec<_> = fake
            .li
            .requests()
            .into_iter()
            .filter(|r| matches!(r.endpoint, Endpoint::Cliente(_)))
            .collect();
        assert_eq!(
            customer_calls.len(),
            1,
            "{prefix}: one call per distinct customer per poll"
        );
        assert_eq!(
            customer_calls[0].path, "/v1/cliente/90000777",
            "{prefix}: fetched under our own prefix"
        );
    }
}

#[test]
fn missing_phones_and_emails_are_tolerated() {
    let fake = fake();
    let none = fake
        .store
        .create_order(Order::new().customer(Customer::new("Sem Telefone").without_phones()));
    let landline = fake
        .store
        .create_order(Order::new().customer(Customer::new("Só Fixo").phone("1133334444")));
    install(&fake, &[]);
    let orders = sweep(None, None).orders;
    let find = |n: u64| orders.iter().find(|o| o.id == n.to_string()).unwrap();
    assert!(find(none).customer.phones.is_empty());
    assert_eq!(find(none).customer.email, None);
    assert_eq!(
        find(landline).customer.phones,
        vec!["1133334444"],
        "telefone_principal when there is no mobile"
    );
}

#[test]
fn an_order_without_payment_shipments_items_or_address_is_still_mapped() {
    let fake = fake();
    let mut bare = Order::new().items(vec![]).shipments(vec![]);
    bare.payment = None;
    bare.address = None;
    fake.store.create_order(bare);
    install(&fake, &[]);
    let o = only(sweep(None, None).orders);
    assert!(o.payment.is_none() && o.shipments.is_empty() && o.items.is_empty());
    assert_eq!(o.total.cents, 0);
    assert!(extras(&o).get("endereco_entrega").is_none());
}

#[test]
fn split_shipments_carry_their_own_tracking_codes() {
    let fake = fake();
    let numero = fake
        .store
        .create_order(Order::new().status("pedido_pago").shipments(vec![
            Shipment::pac(1890).id(70_000_101),
            Shipment::custom("Jadlog", "JAD", "Package", 1500).id(70_000_102),
        ]));
    install(
        &fake,
        &[(
            "tracking_url_template",
            "https://www.jadlog.com.br/tracking?cte={code}",
        )],
    );
    let first = sweep(None, None);
    let o = &first.orders[0];
    assert_eq!(o.shipments.len(), 2);
    assert!(o.shipments.iter().all(|s| s.tracking_code.is_none()));

    fake.store
        .set_tracking(numero, 0, Some("aa123456785br"))
        .unwrap();
    fake.store.set_status(numero, "pedido_enviado").unwrap();
    let second = sweep(Some(&first.cursor), None);
    let o = only(second.orders);
    assert_eq!(o.shipments[0].id, "70000101");
    assert_eq!(
        o.shipments[0].tracking_code.as_deref(),
        Some("AA123456785BR"),
        "normalised to upper case"
    );
    assert!(
        o.shipments[0]
            .tracking_url
            .as_deref()
            .unwrap()
            .starts_with("https://rastreamento.correios.com.br/")
    );
    assert_eq!(o.shipments[1].tracking_code, None);

    fake.store
        .set_tracking(numero, 1, Some("10084412345678"))
        .unwrap();
    let third = sweep(Some(&second.cursor), None);
    let o = only(third.orders);
    assert_eq!(o.shipments[1].id, "70000102");
    assert_eq!(o.shipments[1].carrier.as_deref(), Some("Jadlog"));
    assert_eq!(o.shipments[1].method.as_deref(), Some("Package"));
    assert_eq!(
        o.shipments[1].tracking_code.as_deref(),
        Some("10084412345678")
    );
    assert_eq!(
        o.shipments[1].tracking_url.as_deref(),
        Some("https://www.jadlog.com.br/tracking?cte=10084412345678"),
        "non-Correios codes use the store's template"
    );
    assert_eq!(
        o.shipments[0].tracking_code.as_deref(),
        Some("AA123456785BR")
    );

    let added = fake
        .store
        .add_shipment(numero, Shipment::pac(0).tracking("BB987654321BR"))
        .unwrap();
    let fourth = sweep(Some(&third.cursor), None);
    let o = only(fourth.orders);
    assert_eq!(o.shipments.len(), 3);
    assert_eq!(o.shipments[2].id, added.to_string());
    assert_eq!(
        o.shipments[2].tracking_code.as_deref(),
        Some("BB987654321BR")
    );
}

#[test]
fn a_deleted_customer_leaves_the_order_with_the_delivery_name_and_no_contact() {
    let fake = fake();
    fake.store.configure(|o| o.cliente = ClienteForm::Uri);
    fake.store
        .create_order(Order::new().customer(Customer::new("Ana").id(1)));
    fake.store.fail(
        arauto_sim::li::Route::Cliente,
        arauto_sim::li::Fault::Status(404),
        1,
    );
    install(&fake, &[]);
    let o = only(sweep(None, None).orders);
    assert_eq!(
        o.customer.name, "Maria Teste da Silva",
        "endereco_entrega.nome"
    );
    assert!(o.customer.phones.is_empty());
}
