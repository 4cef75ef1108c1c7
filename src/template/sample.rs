//! Realistic sample orders templates are validated against at startup and by
//! `arauto validate` (fake personal data). Between them they cover every
//! optional branch a template may take: with and without tracking, payment,
//! e-mail, boleto and PIX data, one and several shipments, one and many items.

use jiff::Timestamp;

use crate::model::{
    Boleto, Customer, Item, Money, Order, OrderStatus, Payment, PaymentFamily, Pix, Shipment,
};

fn at(rfc3339: &str) -> Timestamp {
    rfc3339.parse().unwrap_or(Timestamp::UNIX_EPOCH)
}

fn item(name: &str, sku: &str, quantity: &str, unit_cents: i64, total_cents: i64) -> Item {
    Item {
        sku: Some(sku.to_owned()),
        name: name.to_owned(),
        quantity: Some(quantity.to_owned()),
        unit_price: Some(Money(unit_cents)),
        total: Some(Money(total_cents)),
    }
}

/// The sample orders (see the module docs).
pub fn sample_orders() -> Vec<Order> {
    vec![full_order(), bare_order(), split_order()]
}

/// Pix order, e-mail, three items with accents, one shipment with tracking code and URL.
fn full_order() -> Order {
    Order {
        id: "1042".to_owned(),
        number: "1042".to_owned(),
        status: OrderStatus { code: "pedido_enviado".to_owned(), name: "Pedido Enviado".to_owned() },
        created_at: at("2025-03-14T13:05:00-03:00"),
        updated_at: at("2025-03-15T10:21:00-03:00"),
        customer: Customer {
            name: "Ana Beatriz Conceição".to_owned(),
            first_name: "Ana".to_owned(),
            phones: vec!["(11) 98765-4321".to_owned()],
            email: Some("ana.conceicao@example.com.br".to_owned()),
            chat_id: None,
        },
        subtotal: Some(Money(125_870)),
        shipping: Some(Money(2_586)),
        discount: Some(Money(5_000)),
        total: Some(Money(123_456)),
        currency: "BRL".to_owned(),
        payment: Some(Payment {
            code: "pagali-pix".to_owned(),
            name: "Pix".to_owned(),
            family: PaymentFamily::Pix,
            installments: None,
        }),
        shipments: vec![Shipment {
            id: "1".to_owned(),
            carrier: Some("Correios".to_owned()),
            method: Some("SEDEX".to_owned()),
            tracking_code: Some("QB123456789BR".to_owned()),
            tracking_url: Some("https://rastreamento.correios.com.br/app/index.php?objeto=QB123456789BR".to_owned()),
        }],
        items: vec![
            item("Camiseta Básica Algodão Orgânico — Azul Petróleo (M)", "CAM-AZ-M", "2.000", 5_990, 11_980),
            item("Caneca de Cerâmica São Jorge 350 ml", "CAN-SJ", "1.000", 8_900, 8_900),
            item("Jaqueta Corta-Vento Impermeável", "JAQ-CV-G", "1.000", 104_990, 104_990),
        ],
        boleto: None,
        pix: Some(Pix {
            code: "00020126580014br.gov.bcb.pix0136a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d5204000053039865406123456"
                .to_owned(),
            qr_code_url: Some("https://pagamentos.example.com.br/pix/qr/1042.png".to_owned()),
            expires_at: Some(at("2025-03-14T14:05:00-03:00")),
        }),
        detailed: true,
        extras: serde_json::json!({
            "cupom": "PRIMEIRACOMPRA",
            "origem": "loja",
        }),
    }
}

/// No payment, no shipments, no e-mail, no first name, one item, empty extras.
fn bare_order() -> Order {
    Order {
        id: "7".to_owned(),
        number: "7".to_owned(),
        status: OrderStatus {
            code: "aguardando_pagamento".to_owned(),
            name: "Aguardando pagamento".to_owned(),
        },
        created_at: at("2025-12-31T23:59:00-03:00"),
        updated_at: at("2025-12-31T23:59:00-03:00"),
        customer: Customer {
            name: "João Sebastião d'Ávila".to_owned(),
            first_name: String::new(),
            phones: Vec::new(),
            email: None,
            chat_id: None,
        },
        subtotal: Some(Money(1_990)),
        shipping: Some(Money(0)),
        discount: Some(Money(0)),
        total: Some(Money(1_990)),
        currency: "BRL".to_owned(),
        payment: None,
        shipments: Vec::new(),
        items: vec![item("Chaveiro Pão de Açúcar", "CHV-01", "1", 1_990, 1_990)],
        boleto: None,
        pix: None,
        detailed: true,
        extras: serde_json::json!({}),
    }
}

/// Boleto order with two shipments (one still without code) and fifteen items.
fn split_order() -> Order {
    let items: Vec<Item> = (1..=15)
        .map(|n| {
            item(
                &format!("Livro Infantil Nº {n} — Coleção Ilustrada"),
                &format!("LIV-{n:02}"),
                "1",
                3_490,
                3_490,
            )
        })
        .collect();
    Order {
        id: "20931".to_owned(),
        number: "20931".to_owned(),
        status: OrderStatus {
            code: "pedido_pago".to_owned(),
            name: "Pedido Pago".to_owned(),
        },
        created_at: at("2025-07-01T08:30:00-03:00"),
        updated_at: at("2025-07-03T16:45:00-03:00"),
        customer: Customer {
            name: "Maria das Graças Lúcio".to_owned(),
            first_name: "Maria".to_owned(),
            phones: vec!["+55 21 99876-5432".to_owned(), "(21) 3456-7890".to_owned()],
            email: Some("maria.lucio@example.com".to_owned()),
            chat_id: None,
        },
        subtotal: Some(Money(52_350)),
        shipping: Some(Money(3_290)),
        discount: Some(Money(0)),
        total: Some(Money(55_640)),
        currency: "BRL".to_owned(),
        payment: Some(Payment {
            code: "boleto".to_owned(),
            name: "Boleto Bancário".to_owned(),
            family: PaymentFamily::Boleto,
            installments: None,
        }),
        shipments: vec![
            Shipment {
                id: "881".to_owned(),
                carrier: Some("Jadlog".to_owned()),
                method: Some(".Package".to_owned()),
                tracking_code: Some("JD0012345678".to_owned()),
                tracking_url: None,
            },
            Shipment {
                id: "882".to_owned(),
                carrier: Some("Correios".to_owned()),
                method: Some("PAC".to_owned()),
                tracking_code: None,
                tracking_url: None,
            },
        ],
        items,
        boleto: Some(Boleto {
            barcode: "34191.79001 01043.510047 91020.150008 8 99870000055640".to_owned(),
            url: Some("https://boletos.example.com.br/20931.pdf".to_owned()),
            due_date: Some("2025-07-04".to_owned()),
        }),
        pix: None,
        detailed: true,
        extras: serde_json::json!({ "canal": "marketplace" }),
    }
}
