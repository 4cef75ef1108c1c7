//! What a fake store holds: orders, customers, payments, shipments, statuses.
//!
//! Every type here is a plain struct with public fields plus a few chainable
//! builder methods, so tests can write `Order::new().customer(..).item(..)` and
//! still reach any field directly. Money is in cents (`i64`), quantities in
//! thousandths (LI sends `"1.000"`), timestamps are naive São Paulo wall-clock
//! [`DateTime`]s like LI's own.

use jiff::civil::DateTime;

/// An order number (`numero`), the store-facing identity LI addresses orders by.
pub type Numero = u64;

/// A buyer (`cliente`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Customer {
    /// `cliente.id`; assigned by the store when `None`.
    pub id: Option<u64>,
    /// `nome`.
    pub name: String,
    /// `email`.
    pub email: Option<String>,
    /// `telefone_celular` (raw digits as LI stores them, e.g. `"11900000001"`).
    pub mobile: Option<String>,
    /// `telefone_principal`.
    pub phone: Option<String>,
    /// `cpf`.
    pub cpf: Option<String>,
    /// `data_nascimento`, `YYYY-MM-DD`.
    pub birth_date: Option<String>,
    /// `sexo`: `"m"`, `"f"` or `""`.
    pub sex: String,
}

impl Default for Customer {
    fn default() -> Self {
        Self::new("Maria Teste da Silva")
            .email("maria.teste@example.com")
            .mobile("11900000001")
    }
}

impl Customer {
    /// A customer with only a name (no e-mail, no phones).
    pub fn new(name: &str) -> Self {
        Self {
            id: None,
            name: name.to_owned(),
            email: None,
            mobile: None,
            phone: None,
            cpf: Some("00000000000".to_owned()),
            birth_date: None,
            sex: String::new(),
        }
    }
    /// Set `email`.
    pub fn email(mut self, email: &str) -> Self {
        self.email = Some(email.to_owned());
        self
    }
    /// Set `telefone_celular`.
    pub fn mobile(mut self, phone: &str) -> Self {
        self.mobile = Some(phone.to_owned());
        self
    }
    /// Set `telefone_principal`.
    pub fn phone(mut self, phone: &str) -> Self {
        self.phone = Some(phone.to_owned());
        self
    }
    /// Remove both phone numbers (the "missing phone" edge case).
    pub fn without_phones(mut self) -> Self {
        self.mobile = None;
        self.phone = None;
        self
    }
    /// Set `cliente.id` instead of letting the store assign one.
    pub fn id(mut self, id: u64) -> Self {
        self.id = Some(id);
        self
    }
}

/// One line of `itens[]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// `sku`.
    pub sku: Option<String>,
    /// `nome`.
    pub name: String,
    /// `quantidade` in thousandths (`1000` renders as `"1.000"`).
    pub quantity_milli: u64,
    /// `preco_venda` (and `preco_cheio`) in cents.
    pub unit_price_cents: i64,
}

impl Item {
    /// One unit of `name` at `unit_price_cents`.
    pub fn new(sku: &str, name: &str, unit_price_cents: i64) -> Self {
        Self {
            sku: Some(sku.to_owned()),
            name: name.to_owned(),
            quantity_milli: 1000,
            unit_price_cents,
        }
    }
    /// A whole quantity.
    pub fn quantity(mut self, units: u64) -> Self {
        self.quantity_milli = units * 1000;
        self
    }
    /// A fractional quantity in thousandths (`2500` = 2.5).
    pub fn quantity_milli(mut self, milli: u64) -> Self {
        self.quantity_milli = milli;
        self
    }
    /// `preco_subtotal`: unit price × quantity, rounded half-up to cents.
    pub fn total_cents(&self) -> i64 {
        let raw = i128::from(self.unit_price_cents) * i128::from(self.quantity_milli);
        i64::try_from((raw + 500).div_euclid(1000)).unwrap_or(i64::MAX)
    }
}

/// One element of `pagamentos[]` (the payment method of the order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payment {
    /// `forma_pagamento.codigo`, e.g. `"pagali-pix"`.
    pub code: String,
    /// `forma_pagamento.nome`.
    pub name: String,
    /// `forma_pagamento.id`.
    pub method_id: u64,
    /// `pagamento_tipo`, e.g. `"creditCard"`, `"bankInvoice"`, `"instantPayment"`.
    pub kind: Option<String>,
    /// `bandeira`, e.g. `"Mastercard"`.
    pub brand: Option<String>,
    /// `parcelamento.numero_parcelas` (the installment value is derived from the total).
    pub installments: Option<u32>,
    /// `transacao_id`.
    pub transaction_id: Option<String>,
}

impl Payment {
    /// Any payment method.
    pub fn custom(code: &str, name: &str, method_id: u64) -> Self {
        Self {
            code: code.to_owned(),
            name: name.to_owned(),
            method_id,
            kind: None,
            brand: None,
            installments: None,
            transaction_id: None,
        }
    }
    /// Pagali PIX (`pagali-pix`, id 32, `instantPayment`).
    pub fn pix() -> Self {
        let mut p = Self::custom("pagali-pix", "Pix", 32);
        p.kind = Some("instantPayment".to_owned());
        p.transaction_id = Some("ABC1234567".to_owned());
        p
    }
    /// Boleto bancário (`wcboleto`, id 30, `bankInvoice`).
    pub fn boleto() -> Self {
        let mut p = Self::custom("wcboleto", "Boleto Bancário", 30);
        p.kind = Some("bankInvoice".to_owned());
        p
    }
    /// PagSeguro credit card in `installments` installments.
    pub fn credit_card(installments: u32) -> Self {
        let mut p = Self::custom("pagsegurov2", "PagSeguro V2", 24);
        p.kind = Some("creditCard".to_owned());
        p.brand = Some("Mastercard".to_owned());
        p.installments = Some(installments);
        p
    }
    /// Bank deposit (`deposito`, id 7).
    pub fn deposit() -> Self {
        Self::custom("deposito", "Depósito Bancário", 7)
    }
    /// Paid on a marketplace/hub (`PAGAMENTOEXTERNO`, id 19).
    pub fn external() -> Self {
        Self::custom("PAGAMENTOEXTERNO", "Pagamento Externo", 19)
    }
    /// Set `pagamento_tipo`.
    pub fn kind(mut self, kind: &str) -> Self {
        self.kind = Some(kind.to_owned());
        self
    }
}

/// One element of `envios[]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shipment {
    /// `envios[].id` (the `pedido_envio` id); assigned by the store when `None`.
    pub id: Option<u64>,
    /// `forma_envio.nome`, e.g. `"Correios"`, `"Frenet"`.
    pub carrier: String,
    /// `forma_envio.code`, e.g. `"PAC"`, `"03220"`.
    pub code: String,
    /// `forma_envio.tipo`, e.g. `"PAC"`, `"SEDEX"`.
    pub kind: String,
    /// `forma_envio.id`.
    pub method_id: u64,
    /// `objeto`: the tracking code, `None` until the merchant fills it in.
    pub tracking: Option<String>,
    /// `prazo` in days.
    pub days: u32,
    /// `valor` in cents.
    pub price_cents: i64,
}

impl Shipment {
    /// Correios PAC through Enviali, no tracking code yet.
    pub fn pac(price_cents: i64) -> Self {
        Self {
            id: None,
            carrier: "Enviali".to_owned(),
            code: "PAC".to_owned(),
            kind: "PAC".to_owned(),
            method_id: 141_909,
            tracking: None,
            days: 7,
            price_cents,
        }
    }
    /// SEDEX through Frenet, no tracking code yet.
    pub fn sedex(price_cents: i64) -> Self {
        Self {
            id: None,
            carrier: "Frenet".to_owned(),
            code: "03220".to_owned(),
            kind: "SEDEX".to_owned(),
            method_id: 54_680,
            tracking: None,
            days: 3,
            price_cents,
        }
    }
    /// Any carrier/method.
    pub fn custom(carrier: &str, code: &str, kind: &str, price_cents: i64) -> Self {
        Self {
            id: None,
            carrier: carrier.to_owned(),
            code: code.to_owned(),
            kind: kind.to_owned(),
            method_id: 1,
            tracking: None,
            days: 5,
            price_cents,
        }
    }
    /// Set `objeto`.
    pub fn tracking(mut self, code: &str) -> Self {
        self.tracking = Some(code.to_owned());
        self
    }
    /// Set `envios[].id` instead of letting the store assign one.
    pub fn id(mut self, id: u64) -> Self {
        self.id = Some(id);
        self
    }
}

/// `endereco_entrega`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    /// `nome` (recipient).
    pub name: String,
    /// `endereco`.
    pub street: String,
    /// `numero`.
    pub number: String,
    /// `complemento`.
    pub complement: Option<String>,
    /// `bairro`.
    pub district: String,
    /// `cidade`.
    pub city: String,
    /// `estado` (UF).
    pub state: String,
    /// `cep`, 8 digits.
    pub cep: String,
}

impl Default for Address {
    fn default() -> Self {
        Self {
            name: "Maria Teste da Silva".to_owned(),
            street: "Rua Exemplo".to_owned(),
            number: "100".to_owned(),
            complement: Some("Apto 1".to_owned()),
            district: "Centro".to_owned(),
            city: "São Paulo".to_owned(),
            state: "SP".to_owned(),
            cep: "01001000".to_owned(),
        }
    }
}

/// An order: the builder a test fills in, and the state the store keeps.
///
/// `None` in `numero`, `created_at` and `modified_at` means "let the store
/// decide" (next number, the fake clock). Totals are derived: subtotal = sum of
/// item totals, shipping = sum of shipment prices unless `shipping_cents` is
/// set, total = subtotal + shipping − discount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Order {
    /// `numero`.
    pub numero: Option<Numero>,
    /// `situacao.codigo`.
    pub status: String,
    /// `cliente`.
    pub customer: Customer,
    /// `itens[]`.
    pub items: Vec<Item>,
    /// `pagamentos[0]`, none for orders without a payment yet.
    pub payment: Option<Payment>,
    /// `envios[]`.
    pub shipments: Vec<Shipment>,
    /// `valor_envio` override in cents.
    pub shipping_cents: Option<i64>,
    /// `valor_desconto` in cents.
    pub discount_cents: i64,
    /// `cupom_desconto`.
    pub coupon: Option<String>,
    /// `utm_campaign`.
    pub utm_campaign: Option<String>,
    /// `cliente_obs`.
    pub customer_note: Option<String>,
    /// `id_externo`.
    pub external_id: Option<u64>,
    /// `id_anymarket`.
    pub anymarket_id: Option<u64>,
    /// `endereco_entrega`; LI always has one, `None` renders `{}`.
    pub address: Option<Address>,
    /// `data_criacao`.
    pub created_at: Option<DateTime>,
    /// `data_modificacao`.
    pub modified_at: Option<DateTime>,
}

impl Default for Order {
    fn default() -> Self {
        Self {
            numero: None,
            status: "aguardando_pagamento".to_owned(),
            customer: Customer::default(),
            items: vec![Item::new("CAM-AZ-M", "Camiseta Básica Azul M", 8990)],
            payment: Some(Payment::pix()),
            shipments: vec![Shipment::pac(1890)],
            shipping_cents: None,
            discount_cents: 0,
            coupon: None,
            utm_campaign: None,
            customer_note: None,
            external_id: None,
            anymarket_id: None,
            address: Some(Address::default()),
            created_at: None,
            modified_at: None,
        }
    }
}

impl Order {
    /// A PIX order of one T-shirt awaiting payment, shipped by PAC, for Maria Teste.
    pub fn new() -> Self {
        Self::default()
    }
    /// Set `numero`.
    pub fn numero(mut self, numero: Numero) -> Self {
        self.numero = Some(numero);
        self
    }
    /// Set the status code.
    pub fn status(mut self, codigo: &str) -> Self {
        self.status = codigo.to_owned();
        self
    }
    /// Set the customer.
    pub fn customer(mut self, customer: Customer) -> Self {
        self.customer = customer;
        self
    }
    /// Replace the items with `items`.
    pub fn items(mut self, items: Vec<Item>) -> Self {
        self.items = items;
        self
    }
    /// Set the payment method.
    pub fn payment(mut self, payment: Payment) -> Self {
        self.payment = Some(payment);
        self
    }
    /// Replace the shipments with `shipments`.
    pub fn shipments(mut self, shipments: Vec<Shipment>) -> Self {
        self.shipments = shipments;
        self
    }
    /// Set `valor_desconto` (and optionally a coupon).
    pub fn discount(mut self, cents: i64, coupon: Option<&str>) -> Self {
        self.discount_cents = cents;
        self.coupon = coupon.map(str::to_owned);
        self
    }
    /// Set `utm_campaign`.
    pub fn utm_campaign(mut self, campaign: &str) -> Self {
        self.utm_campaign = Some(campaign.to_owned());
        self
    }
    /// Set `data_criacao`.
    pub fn created_at(mut self, at: DateTime) -> Self {
        self.created_at = Some(at);
        self
    }
    /// Set `data_modificacao` (and `data_criacao`, when unset, to the same instant).
    pub fn modified_at(mut self, at: DateTime) -> Self {
        self.modified_at = Some(at);
        self
    }
    /// `valor_subtotal` in cents.
    pub fn subtotal_cents(&self) -> i64 {
        self.items.iter().map(Item::total_cents).sum()
    }
    /// `valor_envio` in cents.
    pub fn shipping_total_cents(&self) -> i64 {
        self.shipping_cents
            .unwrap_or_else(|| self.shipments.iter().map(|s| s.price_cents).sum())
    }
    /// `valor_total` in cents.
    pub fn total_cents(&self) -> i64 {
        self.subtotal_cents() + self.shipping_total_cents() - self.discount_cents
    }
}

/// One row of the status catalogue (`GET /v1/situacao/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// `id`.
    pub id: u64,
    /// `codigo`.
    pub code: String,
    /// `nome`.
    pub name: String,
    /// `aprovado`.
    pub approved: bool,
    /// `cancelado`.
    pub canceled: bool,
    /// `final`.
    pub is_final: bool,
    /// `notificar_comprador`.
    pub notify_buyer: bool,
    /// `padrao`.
    pub is_default: bool,
}

impl Status {
    fn row(id: u64, code: &str, name: &str, flags: [bool; 5]) -> Self {
        let [approved, canceled, is_final, notify_buyer, is_default] = flags;
        Self {
            id,
            code: code.to_owned(),
            name: name.to_owned(),
            approved,
            canceled,
            is_final,
            notify_buyer,
            is_default,
        }
    }

    /// A merchant-defined status (no flags), as stores may create.
    pub fn custom(id: u64, code: &str, name: &str) -> Self {
        Self::row(id, code, name, [false; 5])
    }
}

/// Which status catalogue a store serves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Catalogue {
    /// The 16 codes of LI's current reference (see
    /// docs/platforms/loja-integrada.md §Statuses), including 1018
    /// `faturado`, 1019 `cancelamento_solicitado` and 1020
    /// `pagamento_devolvido_sem_retorno`.
    #[default]
    Current,
    /// The 13 codes older stores list (no 1018, 1019, 1020).
    Legacy,
}

impl Catalogue {
    /// The rows, in LI's id order. Flags follow docs/platforms/loja-integrada.md
    /// §Statuses; the names of 1018–1020 and the flags of 1020 are not
    /// documented and are invented here.
    pub fn statuses(self) -> Vec<Status> {
        const T: bool = true;
        const F: bool = false;
        let mut rows = vec![
            Status::row(
                2,
                "aguardando_pagamento",
                "Aguardando pagamento",
                [F, F, F, T, F],
            ),
            Status::row(
                3,
                "pagamento_em_analise",
                "Pagamento em análise",
                [F, F, F, T, F],
            ),
            Status::row(4, "pedido_pago", "Pedido Pago", [T, F, F, T, F]),
            Status::row(
                6,
                "pagamento_em_disputa",
                "Pagamento em disputa",
                [T, F, F, F, F],
            ),
            Status::row(
                7,
                "pagamento_devolvido",
                "Pagamento devolvido",
                [F, T, T, T, F],
            ),
            Status::row(8, "pedido_cancelado", "Pedido Cancelado", [F, T, T, T, F]),
            Status::row(9, "pedido_efetuado", "Pedido Efetuado", [F, F, F, F, T]),
            Status::row(11, "pedido_enviado", "Pedido Enviado", [T, F, T, T, F]),
            Status::row(
                13,
                "pronto_para_retirada",
                "Pedido pronto para retirada",
                [T, F, T, T, F],
            ),
            Status::row(14, "pedido_entregue", "Pedido Entregue", [T, F, T, T, F]),
            Status::row(
                15,
                "pedido_em_separacao",
                "Pedido em separação",
                [T, F, F, T, F],
            ),
            Status::row(
                16,
                "pedido_chargeback",
                "Pagamento em chargeback",
                [T, F, T, F, F],
            ),
            Status::row(17, "em_producao", "Em produção", [T, F, F, T, F]),
        ];
        if self == Self::Current {
            rows.push(Status::row(1018, "faturado", "Faturado", [T, F, F, F, F]));
            rows.push(Status::row(
                1019,
                "cancelamento_solicitado",
                "Cancelamento solicitado",
                [F, T, F, F, F],
            ));
            rows.push(Status::row(
                1020,
                "pagamento_devolvido_sem_retorno",
                "Pagamento devolvido sem retorno",
                [F, T, T, T, F],
            ));
        }
        rows
    }
}

/// One row of `situacao_historico` for an order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEntry {
    /// `id`.
    pub id: u64,
    /// `data`.
    pub at: DateTime,
    /// `situacao.codigo`.
    pub status: String,
    /// `situacao_anterior.codigo`, none for the first entry.
    pub previous: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_are_derived_from_items_shipments_and_discount() {
        let order = Order::new()
            .items(vec![
                Item::new("A", "A", 1999).quantity(2),
                Item::new("B", "B", 1000).quantity_milli(2500),
            ])
            .shipments(vec![Shipment::pac(1000), Shipment::sedex(500)])
            .discount(498, Some("DEZ"));
        assert_eq!(order.subtotal_cents(), 3998 + 2500);
        assert_eq!(order.shipping_total_cents(), 1500);
        assert_eq!(order.total_cents(), 3998 + 2500 + 1500 - 498);
    }

    #[test]
    fn catalogues_have_16_and_13_codes() {
        assert_eq!(Catalogue::Current.statuses().len(), 16);
        assert_eq!(Catalogue::Legacy.statuses().len(), 13);
        assert!(!Catalogue::Legacy.statuses().iter().any(|s| s.id >= 1018));
    }
}
