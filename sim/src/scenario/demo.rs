//! The built-in `demo` story (all personal data invented; e-mails at example.com).
//!
//! | t | pedido | change | expected |
//! |---|---|---|---|
//! | 15 s | 1001 Ana | created, aguardando_pagamento (Pix) | waiting-payment |
//! | 27 s | 1002 Carlos | created already pedido_pago (card 3x) | order-paid |
//! | 39 s | 1003 Juliana | created, aguardando_pagamento (boleto) | waiting-payment |
//! | 51 s | 1001 | → pedido_pago | order-paid |
//! | 63 s | 1005 Marcos | created, aguardando_pagamento, no phone | waiting-payment (no phone) |
//! | 75 s | 1004 Roberto | created already pedido_em_separacao, 2 envios | order-processing |
//! | 87 s | 1001 | → pedido_em_separacao | order-processing |
//! | 99 s | 1003 | → pedido_cancelado | order-canceled |
//! | 111 s | 1002 | → pedido_enviado + code (skips separação) | order-shipped |
//! | 123 s | 1005 | → pedido_pago | order-paid (no phone) |
//! | 135 s | 1004 | → pedido_enviado + code of envio 1 | order-shipped |
//! | 147 s | 1001 | → pedido_enviado + code | order-shipped |
//! | 159 s | 990 (historical) | touched | — |
//! | 171 s | 1004 | code of envio 2 | tracking-updated |
//! | 183 s | 1001 | → pedido_entregue | order-delivered |

use std::time::Duration;

use jiff::SignedDuration;
use jiff::civil::DateTime;

use super::{Action, ExpectedKind, ExpectedNotification, Scenario, Step};
use crate::li::{Address, Customer, Item, Numero, Order, Payment, Shipment};

/// The demo scenario's name.
pub const DEMO: &str = "demo";

/// How many historical orders the demo seeds (numeros 981–1000).
pub const DEMO_HISTORY_LEN: usize = 20;

/// A Correios (UPU S10) tracking code with a valid check digit:
/// two letters, eight digits, check digit, `BR`.
pub(crate) fn correios(prefix: &str, serial: u32) -> String {
    const WEIGHTS: [u32; 8] = [8, 6, 4, 2, 3, 5, 9, 7];
    let digits = format!("{:08}", serial % 100_000_000);
    let sum: u32 = digits
        .bytes()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    let check = match sum % 11 {
        0 => 5,
        1 => 0,
        r => 11 - r,
    };
    format!("{prefix}{digits}{check}BR")
}

struct Buyer {
    name: &'static str,
    email: &'static str,
    /// `telefone_celular` as the store holds it.
    mobile: Option<&'static str>,
    /// `telefone_principal` as the store holds it.
    phone: Option<&'static str>,
    /// What arauto should normalise the usable number to.
    e164: Option<&'static str>,
    address: Address,
}

impl Buyer {
    fn customer(&self) -> Customer {
        let mut customer = Customer::new(self.name).email(self.email);
        customer.mobile = self.mobile.map(str::to_owned);
        customer.phone = self.phone.map(str::to_owned);
        customer
    }

    fn first_name(&self) -> &'static str {
        self.name.split(' ').next().unwrap_or(self.name)
    }

    fn expect(&self, kind: ExpectedKind, numero: Numero) -> ExpectedNotification {
        ExpectedNotification::new(kind, numero, self.first_name(), self.e164)
    }
}

#[allow(clippy::too_many_arguments)]
fn address(
    name: &str,
    street: &str,
    number: &str,
    complement: Option<&str>,
    district: &str,
    city: &str,
    state: &str,
    cep: &str,
) -> Address {
    Address {
        name: name.to_owned(),
        street: street.to_owned(),
        number: number.to_owned(),
        complement: complement.map(str::to_owned),
        district: district.to_owned(),
        city: city.to_owned(),
        state: state.to_owned(),
        cep: cep.to_owned(),
    }
}

fn order(buyer: &Buyer, status: &str, items: Vec<Item>, payment: Payment) -> Order {
    let mut order = Order::new()
        .status(status)
        .customer(buyer.customer())
        .items(items)
        .payment(payment);
    order.address = Some(buyer.address.clone());
    order
}

fn ana() -> Buyer {
    Buyer {
        name: "Ana Beatriz Souza",
        email: "ana.souza@example.com",
        mobile: Some("(11) 98765-4321"),
        phone: None,
        e164: Some("+5511987654321"),
        address: address(
            "Ana Beatriz Souza",
            "Rua Cardeal Arcoverde",
            "1500",
            Some("Apto 82"),
            "Pinheiros",
            "São Paulo",
            "SP",
            "05407002",
        ),
    }
}

fn carlos() -> Buyer {
    Buyer {
        name: "Carlos Eduardo Lima",
        email: "carlos.lima@example.com",
        // A mobile saved before the ninth digit (11 9612-3478).
        mobile: Some("1196123478"),
        phone: None,
        e164: Some("+5511996123478"),
        address: address(
            "Carlos Eduardo Lima",
            "Avenida Júlio de Mesquita",
            "820",
            None,
            "Cambuí",
            "Campinas",
            "SP",
            "13025061",
        ),
    }
}

fn juliana() -> Buyer {
    Buyer {
        name: "Juliana Ferreira Santos",
        email: "juliana.santos@example.com",
        mobile: Some("+55 21 99876-5432"),
        phone: None,
        e164: Some("+5521998765432"),
        address: address(
            "Juliana Ferreira Santos",
            "Rua Voluntários da Pátria",
            "45",
            Some("Bloco B, apto 301"),
            "Botafogo",
            "Rio de Janeiro",
            "RJ",
            "22270000",
        ),
    }
}

fn roberto() -> Buyer {
    Buyer {
        name: "Roberto Carvalho",
        email: "roberto.carvalho@example.com",
        // Only the main phone is filled in, and it is a mobile.
        mobile: None,
        phone: Some("(31) 99123-4567"),
        e164: Some("+5531991234567"),
        address: address(
            "Roberto Carvalho",
            "Rua Pernambuco",
            "1200",
            Some("Sala 5"),
            "Savassi",
            "Belo Horizonte",
            "MG",
            "30130151",
        ),
    }
}

fn marcos() -> Buyer {
    Buyer {
        name: "Marcos Vinícius Rocha",
        email: "marcos.rocha@example.com",
        mobile: None,
        phone: None,
        e164: None,
        address: address(
            "Marcos Vinícius Rocha",
            "Rua XV de Novembro",
            "700",
            None,
            "Centro",
            "Curitiba",
            "PR",
            "80020310",
        ),
    }
}

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub(super) fn build(start: DateTime) -> Scenario {
    let (ana, carlos, juliana, roberto, marcos) = (ana(), carlos(), juliana(), roberto(), marcos());
    let code_1001 = correios("QB", 71_234_568);
    let code_1002 = correios("OY", 48_273_915);
    let code_1004_chair = correios("NX", 90_517_342);
    let code_1004_footrest = correios("AB", 30_481_276);

    let order_1001 = order(
        &ana,
        "aguardando_pagamento",
        vec![
            Item::new("TEN-CORR-39", "Tênis de Corrida Leve 39", 29_990),
            Item::new("MEIA-KIT3", "Meia Esportiva Kit 3 pares", 3_990).quantity(2),
        ],
        Payment::pix(),
    )
    .shipments(vec![Shipment::pac(2_450)])
    .discount(3_000, Some("PRIMEIRACOMPRA"));

    let order_1002 = order(
        &carlos,
        "pedido_pago",
        vec![Item::new("FONE-BT-PRT", "Fone de Ouvido Bluetooth", 18_990)],
        Payment::credit_card(3),
    )
    .shipments(vec![Shipment::sedex(3_190)]);

    let order_1003 = order(
        &juliana,
        "aguardando_pagamento",
        vec![Item::new(
            "VEST-MIDI-FLR-M",
            "Vestido Midi Floral M",
            15_990,
        )],
        Payment::boleto(),
    )
    .shipments(vec![Shipment::pac(2_890)]);

    // Two parcels from two warehouses: the chair by PAC, the footrest by SEDEX.
    let order_1004 = order(
        &roberto,
        "pedido_em_separacao",
        vec![
            Item::new("CAD-ERGO-PRT", "Cadeira de Escritório Ergonômica", 89_900),
            Item::new("APOIO-PES", "Apoio para Pés Ajustável", 11_990),
        ],
        Payment::credit_card(10),
    )
    .shipments(vec![Shipment::pac(4_990), Shipment::sedex(2_190)]);

    let order_1005 = order(
        &marcos,
        "aguardando_pagamento",
        vec![Item::new("GARRAFA-1L", "Garrafa Térmica 1 L", 8_990).quantity(2)],
        Payment::pix(),
    )
    .shipments(vec![Shipment::pac(1_990)]);

    use Action::{Create, SetStatus, SetStatusWithTracking, SetTracking, Touch};
    use ExpectedKind::*;
    let steps = vec![
        Step::new(secs(15), 1001, Create(Box::new(order_1001)))
            .expecting(ana.expect(WaitingPayment, 1001)),
        Step::new(secs(27), 1002, Create(Box::new(order_1002)))
            .expecting(carlos.expect(OrderPaid, 1002)),
        Step::new(secs(39), 1003, Create(Box::new(order_1003)))
            .expecting(juliana.expect(WaitingPayment, 1003)),
        Step::new(secs(51), 1001, SetStatus("pedido_pago".into()))
            .expecting(ana.expect(OrderPaid, 1001)),
        Step::new(secs(63), 1005, Create(Box::new(order_1005)))
            .expecting(marcos.expect(WaitingPayment, 1005)),
        Step::new(secs(75), 1004, Create(Box::new(order_1004)))
            .expecting(roberto.expect(OrderProcessing, 1004)),
        Step::new(secs(87), 1001, SetStatus("pedido_em_separacao".into()))
            .expecting(ana.expect(OrderProcessing, 1001)),
        Step::new(secs(99), 1003, SetStatus("pedido_cancelado".into()))
            .expecting(juliana.expect(OrderCanceled, 1003)),
        Step::new(
            secs(111),
            1002,
            SetStatusWithTracking {
                status: "pedido_enviado".into(),
                shipment: 0,
                code: code_1002.clone(),
            },
        )
        .expecting(carlos.expect(OrderShipped, 1002).tracking(&code_1002)),
        Step::new(secs(123), 1005, SetStatus("pedido_pago".into()))
            .expecting(marcos.expect(OrderPaid, 1005)),
        Step::new(
            secs(135),
            1004,
            SetStatusWithTracking {
                status: "pedido_enviado".into(),
                shipment: 0,
                code: code_1004_chair.clone(),
            },
        )
        .expecting(
            roberto
                .expect(OrderShipped, 1004)
                .tracking(&code_1004_chair),
        ),
        Step::new(
            secs(147),
            1001,
            SetStatusWithTracking {
                status: "pedido_enviado".into(),
                shipment: 0,
                code: code_1001.clone(),
            },
        )
        .expecting(ana.expect(OrderShipped, 1001).tracking(&code_1001)),
        // The merchant edits an old, delivered order: nothing to tell anyone.
        Step::new(secs(159), 990, Touch),
        Step::new(
            secs(171),
            1004,
            SetTracking {
                shipment: 1,
                code: Some(code_1004_footrest.clone()),
            },
        )
        .expecting(
            roberto
                .expect(TrackingUpdated, 1004)
                .tracking(&code_1004_footrest),
        ),
        Step::new(secs(183), 1001, SetStatus("pedido_entregue".into()))
            .expecting(ana.expect(OrderDelivered, 1001)),
    ];

    let mut scenario = Scenario::new(DEMO, start);
    for order in history(start) {
        scenario = scenario.with_history(order);
    }
    for step in steps {
        scenario = scenario.with_step(step);
    }
    scenario
}

/// One historical order: who, what, how it ended and when.
struct Past {
    name: &'static str,
    mobile: &'static str,
    city: (&'static str, &'static str, &'static str),
    status: &'static str,
    item: (&'static str, &'static str, i64),
    quantity: u64,
    /// Hours between the last change and the scenario's start.
    hours_ago: i64,
    /// Days between creation and the last change.
    days_open: i64,
}

/// 20 orders last modified between 45 days and 2 hours before the start,
/// numeros 981–1000, in every end state a real store accumulates.
fn history(start: DateTime) -> Vec<Order> {
    const SP: (&str, &str, &str) = ("São Paulo", "SP", "01310100");
    const RJ: (&str, &str, &str) = ("Rio de Janeiro", "RJ", "20040002");
    const BH: (&str, &str, &str) = ("Belo Horizonte", "MG", "30140071");
    const POA: (&str, &str, &str) = ("Porto Alegre", "RS", "90010150");
    const REC: (&str, &str, &str) = ("Recife", "PE", "50030230");
    const SSA: (&str, &str, &str) = ("Salvador", "BA", "40020000");
    const CWB: (&str, &str, &str) = ("Curitiba", "PR", "80010000");
    const CAMISETA: (&str, &str, i64) = ("CAM-ALG-P", "Camiseta Básica Algodão P", 4_990);
    const GARRAFA: (&str, &str, i64) = ("GARRAFA-1L", "Garrafa Térmica 1 L", 8_990);
    const MOCHILA: (&str, &str, i64) = ("MOCH-NB-156", "Mochila para Notebook 15,6\"", 19_990);
    const BONE: (&str, &str, i64) = ("BONE-ABA-CURVA", "Boné Aba Curva", 5_990);
    const CANECA: (&str, &str, i64) = ("CANECA-350", "Caneca de Cerâmica 350 ml", 3_490);
    const JAQUETA: (&str, &str, i64) = ("JAQ-CVENTO-G", "Jaqueta Corta-Vento G", 24_990);
    const TENIS: (&str, &str, i64) = ("TEN-CORR-41", "Tênis de Corrida Leve 41", 29_990);
    const FONE: (&str, &str, i64) = ("FONE-BT-BRC", "Fone de Ouvido Bluetooth", 18_990);
    #[rustfmt::skip]
    let past = [
        Past { name: "Fernanda Oliveira", mobile: "(11) 99123-0456", city: SP, status: "pedido_entregue", item: CAMISETA, quantity: 3, hours_ago: 45 * 24, days_open: 6 },
        Past { name: "Lucas Pereira", mobile: "21987001122", city: RJ, status: "pedido_entregue", item: MOCHILA, quantity: 1, hours_ago: 41 * 24 + 5, days_open: 5 },
        Past { name: "Patrícia Gomes", mobile: "(31) 8744-2310", city: BH, status: "pedido_cancelado", item: JAQUETA, quantity: 1, hours_ago: 38 * 24 + 2, days_open: 3 },
        Past { name: "Rafael Martins", mobile: "+55 51 99654-7788", city: POA, status: "pedido_entregue", item: TENIS, quantity: 1, hours_ago: 35 * 24 + 7, days_open: 8 },
        Past { name: "Camila Ribeiro", mobile: "11 97777-1234", city: SP, status: "pedido_entregue", item: CANECA, quantity: 4, hours_ago: 31 * 24 + 1, days_open: 4 },
        Past { name: "Thiago Almeida", mobile: "(81) 99888-2020", city: REC, status: "pagamento_devolvido", item: FONE, quantity: 1, hours_ago: 28 * 24 + 3, days_open: 9 },
        Past { name: "Larissa Costa", mobile: "71996543210", city: SSA, status: "pedido_entregue", item: BONE, quantity: 2, hours_ago: 26 * 24 + 9, days_open: 7 },
        Past { name: "Gustavo Barbosa", mobile: "(41) 99701-3344", city: CWB, status: "pedido_enviado", item: MOCHILA, quantity: 1, hours_ago: 23 * 24 + 4, days_open: 3 },
        Past { name: "Beatriz Cardoso", mobile: "11 9 8642-1357", city: SP, status: "pedido_entregue", item: GARRAFA, quantity: 1, hours_ago: 20 * 24 + 6, days_open: 5 },
        Past { name: "Felipe Nascimento", mobile: "(11) 98555-6677", city: SP, status: "pedido_entregue", item: JAQUETA, quantity: 1, hours_ago: 18 * 24 + 2, days_open: 6 },
        Past { name: "Mariana Teixeira", mobile: "21 8123-4567", city: RJ, status: "pedido_cancelado", item: CAMISETA, quantity: 2, hours_ago: 15 * 24 + 8, days_open: 4 },
        Past { name: "Bruno Araújo", mobile: "(31) 99432-1098", city: BH, status: "pedido_enviado", item: TENIS, quantity: 1, hours_ago: 13 * 24 + 5, days_open: 2 },
        Past { name: "Letícia Mendes", mobile: "5511991112233", city: SP, status: "pedido_entregue", item: CANECA, quantity: 2, hours_ago: 11 * 24 + 3, days_open: 5 },
        Past { name: "Diego Moreira", mobile: "(51) 98877-6655", city: POA, status: "pedido_enviado", item: FONE, quantity: 1, hours_ago: 9 * 24 + 1, days_open: 3 },
        Past { name: "Aline Correia", mobile: "11 96666-0909", city: SP, status: "pronto_para_retirada", item: BONE, quantity: 1, hours_ago: 7 * 24 + 4, days_open: 2 },
        Past { name: "Rodrigo Dias", mobile: "(81) 99221-4433", city: REC, status: "pedido_entregue", item: GARRAFA, quantity: 3, hours_ago: 5 * 24 + 6, days_open: 6 },
        Past { name: "Vanessa Castro", mobile: "(71) 98110-2233", city: SSA, status: "pedido_em_separacao", item: JAQUETA, quantity: 1, hours_ago: 3 * 24 + 2, days_open: 1 },
        Past { name: "Leonardo Pinto", mobile: "41 99988-7766", city: CWB, status: "pedido_pago", item: CAMISETA, quantity: 5, hours_ago: 2 * 24 + 5, days_open: 1 },
        Past { name: "Gabriela Freitas", mobile: "(11) 97412-5896", city: SP, status: "pedido_cancelado", item: MOCHILA, quantity: 1, hours_ago: 24 + 3, days_open: 4 },
        Past { name: "André Monteiro", mobile: "(21) 99345-6789", city: RJ, status: "aguardando_pagamento", item: TENIS, quantity: 1, hours_ago: 2, days_open: 0 },
    ];
    past.iter()
        .zip(981..)
        .map(|(p, numero)| past_order(start, p, numero))
        .collect()
}

fn past_order(start: DateTime, p: &Past, numero: Numero) -> Order {
    let modified = start.saturating_sub(SignedDuration::from_hours(p.hours_ago));
    let created = modified
        .saturating_sub(SignedDuration::from_hours(p.days_open * 24))
        .saturating_sub(SignedDuration::from_mins(37));
    let login: String = p
        .name
        .to_lowercase()
        .split(' ')
        .map(|part| {
            part.chars()
                .filter(char::is_ascii_alphabetic)
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join(".");
    let (city, state, cep) = p.city;
    let customer = Customer::new(p.name)
        .email(&format!("{login}@example.com"))
        .mobile(p.mobile);
    let payment = match numero % 3 {
        0 => Payment::pix(),
        1 => Payment::credit_card(u32::try_from(numero % 6 + 1).unwrap_or(1)),
        _ => Payment::boleto(),
    };
    let shipped = matches!(p.status, "pedido_enviado" | "pedido_entregue");
    let mut shipment = if p.status == "pronto_para_retirada" {
        Shipment::custom("Retirada na loja", "retirada", "Retirada", 0)
    } else if numero.is_multiple_of(2) {
        Shipment::sedex(2_990)
    } else {
        Shipment::pac(1_890)
    };
    if shipped {
        let serial = 52_000_000 + u32::try_from(numero).unwrap_or_default() * 1_379;
        shipment = shipment.tracking(&correios("QC", serial));
    }
    let mut order = Order::new()
        .numero(numero)
        .status(p.status)
        .customer(customer)
        .items(vec![
            Item::new(p.item.0, p.item.1, p.item.2).quantity(p.quantity),
        ])
        .payment(payment)
        .shipments(vec![shipment])
        .created_at(created)
        .modified_at(modified);
    order.address = Some(address(
        p.name,
        "Rua das Flores",
        &(100 + numero % 400).to_string(),
        None,
        "Centro",
        city,
        state,
        cep,
    ));
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn correios_codes_carry_the_s10_check_digit() {
        // The UPU S10 standard's worked example: 47312482 → check digit 9.
        assert_eq!(correios("RR", 47_312_482), "RR473124829BR");
        // Remainders 0 and 1 map to 5 and 0.
        assert!(correios("AA", 0).ends_with("5BR"));
    }
}
