//! LI order JSON → the WIT `order-snapshot`.
//!
//! Every optional field may be absent, `null`, `""` or `{}` (see
//! docs/platforms/loja-integrada.md §Order documents); the mapping never
//! fails on those, it leaves the snapshot field empty. An amount or quantity that cannot be read (`null`, not a
//! decimal, too large for cents in an `s64`) is *unknown*, never zero:
//! `Money::UNKNOWN` (`cents == i64::MIN`) and quantity `""`, with a warning
//! that names the order and the field. The host shows unknown values as
//! absent, so no customer is told "R$ 0,00" for an amount nobody could read.

use arauto_plugin_sdk::connector::{
    Customer, Item, Money, OrderSnapshot, OrderStatus, Payment, PaymentFamily, QUANTITY_UNKNOWN,
    Shipment, money_or_unknown,
};
use jiff::civil::DateTime;
use serde_json::{Map, Value, json};

use crate::catalogue;
use crate::doc::{Kind, Node};
use crate::money::{self, Decimal};
use crate::time::{parse_li, rfc3339};

/// Correios' public tracking page; `objeto` is appended.
pub const CORREIOS_TRACKING_URL: &str =
    "https://rastreamento.correios.com.br/app/index.php?objeto=";

/// The non-null value of `key`.
fn field<'a, N: Node>(doc: &'a N, key: &str) -> Option<&'a N> {
    doc.get(key).filter(|v| !v.is_null())
}

/// Trimmed non-empty text of a string or number field.
fn text<N: Node>(value: Option<&N>) -> Option<String> {
    match value?.kind() {
        Kind::Str(s) => Some(s.trim()).filter(|s| !s.is_empty()).map(str::to_owned),
        Kind::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A JSON number or numeric string as an exact decimal (the SDK's
/// `Decimal::from_json`, for any [`Node`]).
fn decimal<N: Node>(value: &N) -> Option<Decimal> {
    match value.kind() {
        Kind::Str(s) => Decimal::parse(s),
        Kind::Number(n) => Decimal::from_json(&Value::Number(n.clone())),
        _ => None,
    }
}

/// Cents of an optional money field (the SDK's `decimal::cents`, for any
/// [`Node`]): absent, null or empty → `Ok(None)`; a value that is not a
/// decimal → `Err` with what arrived.
fn cents<N: Node>(value: Option<&N>) -> Result<Option<i64>, money::BadAmount> {
    let Some(value) = value else {
        return Ok(None);
    };
    match value.kind() {
        Kind::Null => Ok(None),
        Kind::Str(s) if s.trim().is_empty() => Ok(None),
        _ => decimal(value)
            .and_then(Decimal::to_cents)
            // i64::MIN is the "unknown amount" sentinel of the contract.
            .filter(|c| *c != i64::MIN)
            .map(Some)
            .ok_or_else(|| money::BadAmount(value.json_text())),
    }
}

/// What identifies one version of an order: `(numero, codigo, data_modificacao)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeKey {
    /// `numero`.
    pub numero: u64,
    /// `situacao.codigo` (as mapped by [`status`]).
    pub status: String,
    /// `data_modificacao`.
    pub modified: DateTime,
}

/// The change key of a search row or detail; `None` without a numero or a
/// readable `data_modificacao`.
pub fn change_key<N: Node>(doc: &N) -> Option<ChangeKey> {
    let numero = field(doc, "numero").and_then(N::as_u64)?;
    let modified = field(doc, "data_modificacao")
        .and_then(N::as_str)
        .and_then(parse_li)?;
    Some(ChangeKey {
        numero,
        status: status(field(doc, "situacao")).code,
        modified,
    })
}

/// `situacao` as an object (the usual), a URI (`/api/v1/situacao/4`) or a bare id.
pub fn status<N: Node>(value: Option<&N>) -> OrderStatus {
    let by_id = |id: u64| {
        let code =
            catalogue::code_for_id(id).map_or_else(|| format!("situacao_{id}"), str::to_owned);
        (code, None)
    };
    let (code, name) = match value.map(|v| (v, v.kind())) {
        Some((m, Kind::Object)) => {
            let name = text(m.get("nome"));
            match (text(m.get("codigo")), m.get("id").and_then(N::as_u64)) {
                (Some(code), _) => (code, name),
                (None, Some(id)) => (by_id(id).0, name),
                (None, None) => (String::new(), name),
            }
        }
        Some((_, Kind::Str(uri))) => {
            match uri
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .and_then(|id| id.parse().ok())
            {
                Some(id) => by_id(id),
                None => (String::new(), None),
            }
        }
        Some((_, Kind::Number(n))) => n.as_u64().map_or((String::new(), None), by_id),
        _ => (String::new(), None),
    };
    let name = name
        .or_else(|| catalogue::name_for_code(&code).map(str::to_owned))
        .unwrap_or_else(|| code.clone());
    OrderStatus { code, name }
}

/// Collects what could not be read, for one log line per order.
#[derive(Debug, Default)]
pub struct Warnings(pub Vec<String>);

impl Warnings {
    /// A money field LI always sends: absent, `null`, empty or unreadable is
    /// unknown, with a warning naming the field.
    fn amount<N: Node>(&mut self, doc: &N, key: &str, context: &str) -> Money {
        let value = doc.get(key);
        let cents = match cents(value) {
            Ok(Some(cents)) => Some(cents),
            Ok(None) => {
                let what = match value {
                    None => "is missing".to_owned(),
                    Some(v) if v.is_null() => "is null".to_owned(),
                    Some(v) => format!("= {} is empty", v.json_text()),
                };
                self.0
                    .push(format!("{context}{key} {what}; amount unknown"));
                None
            }
            Err(bad) => {
                self.0.push(format!(
                    "{context}{key} = {} is not an amount (or too large); amount unknown",
                    arauto_plugin_sdk::connector::http::excerpt(&bad.0, 64)
                ));
                None
            }
        };
        money_or_unknown(cents)
    }
}

/// First name for greetings: the first word, re-cased when the whole name
/// was typed in one case (`"MARIA"`/`"maria"` → `"Maria"`).
fn first_name(name: &str) -> String {
    let first = name.split_whitespace().next().unwrap_or("");
    let has_upper = first.chars().any(char::is_uppercase);
    let has_lower = first.chars().any(char::is_lowercase);
    if has_upper && has_lower {
        return first.to_owned();
    }
    let mut chars = first.chars();
    match chars.next() {
        Some(c) => c
            .to_uppercase()
            .chain(chars.flat_map(char::to_lowercase))
            .collect(),
        None => String::new(),
    }
}

fn customer<N: Node>(cliente: Option<&N>, address: Option<&N>) -> Customer {
    let cliente = cliente.filter(|c| c.is_object());
    let get = |key: &str| cliente.and_then(|c| text(c.get(key)));
    let name = get("nome")
        .or_else(|| get("razao_social"))
        .or_else(|| address.and_then(|a| text(a.get("nome"))))
        .unwrap_or_default();
    let mut phones: Vec<String> = Vec::new();
    for key in [
        "telefone_celular",
        "telefone_principal",
        "telefone_comercial",
    ] {
        if let Some(phone) = get(key)
            && !phones.contains(&phone)
        {
            phones.push(phone);
        }
    }
    Customer {
        first_name: first_name(&name),
        name,
        phones,
        email: get("email"),
        // LI holds no chat-app id for its buyers.
        chat_id: None,
    }
}

/// The normalised payment family from `forma_pagamento.codigo` and `pagamento_tipo`.
pub fn payment_family(code: &str, kind: Option<&str>, brand: Option<&str>) -> PaymentFamily {
    let kind = kind.map(str::to_ascii_lowercase);
    match kind.as_deref() {
        Some("creditcard" | "credit_card" | "cartao_credito") => return PaymentFamily::CreditCard,
        Some("bankinvoice" | "boleto") => return PaymentFamily::Boleto,
        Some("instantpayment" | "pix") => return PaymentFamily::Pix,
        _ => {}
    }
    let code = code.to_ascii_lowercase();
    if code.contains("pix") {
        PaymentFamily::Pix
    } else if code.contains("boleto") || code == "paghiper" {
        // PagHiper's original product is the boleto; its PIX charges say so in pagamento_tipo.
        PaymentFamily::Boleto
    } else if code.contains("deposito") {
        PaymentFamily::Deposit
    } else if code == "pagamentoexterno" {
        PaymentFamily::External
    } else if brand.is_some() {
        PaymentFamily::CreditCard
    } else {
        PaymentFamily::Other
    }
}

fn payment<N: Node>(pagamentos: Option<&N>) -> Option<Payment> {
    let p = pagamentos?.as_array()?.iter().find(|p| p.is_object())?;
    let forma = field(p, "forma_pagamento");
    let code = forma
        .and_then(|f| text(f.get("codigo")))
        .unwrap_or_default();
    let name = forma
        .and_then(|f| text(f.get("nome")))
        .unwrap_or_else(|| code.clone());
    let kind = text(p.get("pagamento_tipo"));
    let brand = text(p.get("bandeira"));
    let installments = field(p, "parcelamento")
        .and_then(|i| i.get("numero_parcelas"))
        .and_then(N::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n > 0);
    Some(Payment {
        family: payment_family(&code, kind.as_deref(), brand.as_deref()),
        code,
        name,
        installments,
    })
}

/// A Correios (UPU S10) object code: two letters, nine digits, two letters.
pub fn is_correios_code(code: &str) -> bool {
    let b = code.as_bytes();
    b.len() == 13
        && b[..2].iter().all(u8::is_ascii_uppercase)
        && b[2..11].iter().all(u8::is_ascii_digit)
        && b[11..].iter().all(u8::is_ascii_uppercase)
}

/// The tracking link of a code: Correios' page for Correios object codes,
/// else the store's `tracking_url_template`, else none.
pub fn tracking_url(code: &str, template: Option<&str>) -> Option<String> {
    let encoded = arauto_plugin_sdk::connector::http::encode_component(code);
    if is_correios_code(code) {
        Some(format!("{CORREIOS_TRACKING_URL}{encoded}"))
    } else {
        template.map(|t| t.replace("{code}", &encoded))
    }
}

fn shipments<N: Node>(envios: Option<&N>, template: Option<&str>) -> Vec<Shipment> {
    let Some(envios) = envios.and_then(N::as_array) else {
        return Vec::new();
    };
    envios
        .iter()
        .filter(|e| e.is_object())
        .enumerate()
        .map(|(i, e)| {
            let forma = field(e, "forma_envio");
            let forma_text = |key: &str| forma.and_then(|f| text(f.get(key)));
            let tracking_code = text(e.get("objeto")).map(|c| c.to_uppercase());
            Shipment {
                // The pedido_envio id; a positional id only if LI ever omits it.
                id: text(e.get("id")).unwrap_or_else(|| format!("envio-{}", i + 1)),
                carrier: forma_text("nome").or_else(|| {
                    tracking_code
                        .as_deref()
                        .filter(|c| is_correios_code(c))
                        .map(|_| "Correios".to_owned())
                }),
                method: forma_text("tipo")
                    .or_else(|| forma_text("code"))
                    .or_else(|| forma_text("codigo")),
                tracking_url: tracking_code
                    .as_deref()
                    .and_then(|c| tracking_url(c, template)),
                tracking_code,
            }
        })
        .collect()
}

fn items<N: Node>(itens: Option<&N>, warnings: &mut Warnings) -> Vec<Item> {
    let Some(itens) = itens.and_then(N::as_array) else {
        return Vec::new();
    };
    itens
        .iter()
        .filter(|it| it.is_object())
        .enumerate()
        .map(|(i, it)| {
            let context = format!("itens[{i}].");
            let quantity = field(it, "quantidade").and_then(decimal);
            if quantity.is_none() {
                let what = match it.get("quantidade") {
                    None => "is missing".to_owned(),
                    Some(v) if v.is_null() => "is null".to_owned(),
                    Some(v) => format!(
                        "= {} is not a number",
                        arauto_plugin_sdk::connector::http::excerpt(&v.json_text(), 64)
                    ),
                };
                warnings
                    .0
                    .push(format!("{context}quantidade {what}; quantity unknown"));
            }
            let unit_key = ["preco_venda", "preco_promocional", "preco_cheio"]
                .into_iter()
                .find(|k| field(it, k).is_some())
                .unwrap_or("preco_venda");
            let unit_price = warnings.amount(it, unit_key, &context);
            // The line total from the exact decimals (no rounding of the unit
            // price first); unknown when either factor is.
            let total = match (unit_price.known_cents(), quantity) {
                (Some(_), Some(quantity)) => {
                    let total = field(it, unit_key)
                        .and_then(decimal)
                        .and_then(|u| u.checked_mul(quantity))
                        .and_then(Decimal::to_cents)
                        .filter(|c| *c != i64::MIN);
                    if total.is_none() {
                        warnings.0.push(format!(
                            "{context}{unit_key} × quantidade is too large; line total unknown"
                        ));
                    }
                    money_or_unknown(total)
                }
                _ => Money::UNKNOWN,
            };
            Item {
                sku: text(it.get("sku")),
                name: text(it.get("nome")).unwrap_or_else(|| format!("item {}", i + 1)),
                quantity: quantity
                    .map_or_else(|| QUANTITY_UNKNOWN.to_owned(), Decimal::to_plain_string),
                unit_price,
                total,
            }
        })
        .collect()
}

/// Platform extras for templates: only fields that carry a value.
fn extras<N: Node>(doc: &N, detailed: bool) -> String {
    let mut extras = Map::new();
    extras.insert("platform".into(), json!("loja-integrada"));
    let situacao = field(doc, "situacao");
    if let Some(id) = situacao.and_then(|s| s.get("id")).and_then(N::as_u64) {
        extras.insert("situacao_id".into(), json!(id));
    }
    for key in ["cupom_desconto", "utm_campaign", "cliente_obs"] {
        if let Some(v) = text(doc.get(key)) {
            extras.insert(key.into(), json!(v));
        }
    }
    for key in ["id_externo", "id_anymarket"] {
        if let Some(v) = field(doc, key) {
            extras.insert(key.into(), v.to_value());
        }
    }
    if let Some(at) = field(doc, "data_expiracao")
        .and_then(N::as_str)
        .and_then(parse_li)
    {
        extras.insert("data_expiracao".into(), json!(rfc3339(at)));
    }
    match field(doc, "cliente").map(|c| (c, c.kind())) {
        Some((c, Kind::Object)) => {
            if let Some(id) = c.get("id").and_then(N::as_u64) {
                extras.insert("cliente_id".into(), json!(id));
            }
        }
        Some((_, Kind::Str(uri))) => {
            if let Some(id) = uri
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .and_then(|s| s.parse::<u64>().ok())
            {
                extras.insert("cliente_id".into(), json!(id));
            }
        }
        _ => {}
    }
    if detailed {
        if let Some(address) = field(doc, "endereco_entrega").filter(|a| a.is_object()) {
            let mut place = Map::new();
            for key in ["cidade", "estado", "cep", "bairro"] {
                if let Some(v) = text(address.get(key)) {
                    place.insert(key.into(), json!(v));
                }
            }
            if !place.is_empty() {
                extras.insert("endereco_entrega".into(), Value::Object(place));
            }
        }
        let days = field(doc, "envios")
            .and_then(N::as_array)
            .and_then(|envios| {
                envios
                    .iter()
                    .filter_map(|e| e.get("prazo").and_then(N::as_u64))
                    .max()
            });
        if let Some(days) = days {
            extras.insert("prazo_entrega_dias".into(), json!(days));
        }
        let first_payment = field(doc, "pagamentos")
            .and_then(N::as_array)
            .and_then(|p| p.first());
        if let Some(p) = first_payment {
            if let Some(brand) = text(p.get("bandeira")) {
                extras.insert("bandeira".into(), json!(brand));
            }
            if let Ok(Some(cents)) =
                cents(field(p, "parcelamento").and_then(|i| i.get("valor_parcela")))
            {
                extras.insert("valor_parcela_centavos".into(), json!(cents));
            }
            let external = field(p, "forma_pagamento")
                .and_then(|f| text(f.get("codigo")))
                .is_some_and(|c| c.eq_ignore_ascii_case("PAGAMENTOEXTERNO"));
            if external || field(doc, "id_anymarket").is_some() {
                // Hub/marketplace orders: the marketplace talks to the buyer
                // (see docs/platforms/loja-integrada.md §Marketplace orders).
                extras.insert("marketplace".into(), json!(true));
            }
        }
    }
    Value::Object(extras).to_string()
}

/// Snapshot of a search row only (orders before the detail cutoff): status,
/// times and totals; no customer, items, payment or shipments.
pub fn summary<N: Node>(row: &N, key: &ChangeKey) -> (OrderSnapshot, Warnings) {
    let mut warnings = Warnings::default();
    let snapshot = snapshot(
        row,
        key,
        Customer {
            name: String::new(),
            first_name: String::new(),
            phones: Vec::new(),
            email: None,
            chat_id: None,
        },
        false,
        None,
        &mut warnings,
    );
    (snapshot, warnings)
}

/// Snapshot of an order detail, with `cliente` already resolved when it was a URI.
pub fn detailed<N: Node>(
    detail: &N,
    key: &ChangeKey,
    resolved_customer: Option<&N>,
    tracking_template: Option<&str>,
) -> (OrderSnapshot, Warnings) {
    let mut warnings = Warnings::default();
    let cliente = resolved_customer.or_else(|| field(detail, "cliente"));
    let customer = customer(cliente, field(detail, "endereco_entrega"));
    let snapshot = snapshot(
        detail,
        key,
        customer,
        true,
        tracking_template,
        &mut warnings,
    );
    (snapshot, warnings)
}

fn snapshot<N: Node>(
    doc: &N,
    key: &ChangeKey,
    customer: Customer,
    detailed: bool,
    tracking_template: Option<&str>,
    warnings: &mut Warnings,
) -> OrderSnapshot {
    let created = field(doc, "data_criacao")
        .and_then(N::as_str)
        .and_then(parse_li)
        .unwrap_or(key.modified);
    let numero = key.numero.to_string();
    OrderSnapshot {
        id: numero.clone(),
        number: numero,
        status: status(field(doc, "situacao")),
        created_at: rfc3339(created),
        updated_at: rfc3339(key.modified),
        customer,
        subtotal: warnings.amount(doc, "valor_subtotal", ""),
        shipping: warnings.amount(doc, "valor_envio", ""),
        discount: warnings.amount(doc, "valor_desconto", ""),
        total: warnings.amount(doc, "valor_total", ""),
        currency: "BRL".to_owned(),
        payment: if detailed {
            payment(field(doc, "pagamentos"))
        } else {
            None
        },
        shipments: if detailed {
            shipments(field(doc, "envios"), tracking_template)
        } else {
            Vec::new()
        },
        items: if detailed {
            items(field(doc, "itens"), warnings)
        } else {
            Vec::new()
        },
        // LI's GET responses never carry boleto or PIX charge data
        // (see docs/platforms/loja-integrada.md §No boleto or PIX data).
        boleto: None,
        pix: None,
        detailed,
        extras_json: extras(doc, detailed),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn payment_families() {
        assert_eq!(
            payment_family("pagali-pix", Some("instantPayment"), None),
            PaymentFamily::Pix
        );
        assert_eq!(payment_family("pagali-pix", None, None), PaymentFamily::Pix);
        assert_eq!(
            payment_family("paghiper", None, None),
            PaymentFamily::Boleto
        );
        assert_eq!(
            payment_family("paghiper", Some("instantPayment"), None),
            PaymentFamily::Pix
        );
        assert_eq!(
            payment_family("wcboleto", Some("bankInvoice"), None),
            PaymentFamily::Boleto
        );
        assert_eq!(
            payment_family("pmboletov2", None, None),
            PaymentFamily::Boleto
        );
        assert_eq!(
            payment_family("pagsegurov2", Some("creditCard"), Some("Visa")),
            PaymentFamily::CreditCard
        );
        assert_eq!(
            payment_family("pagsegurov2", None, Some("Visa")),
            PaymentFamily::CreditCard
        );
        assert_eq!(
            payment_family("mercadopagov1", None, None),
            PaymentFamily::Other
        );
        assert_eq!(
            payment_family("deposito", None, None),
            PaymentFamily::Deposit
        );
        assert_eq!(
            payment_family("PAGAMENTOEXTERNO", None, None),
            PaymentFamily::External
        );
    }

    #[test]
    fn tracking_links() {
        assert!(is_correios_code("AA123456785BR"));
        assert!(!is_correios_code("AA12345678BR"));
        assert!(!is_correios_code("JD000123456789"));
        assert_eq!(
            tracking_url("AA123456785BR", None).as_deref(),
            Some("https://rastreamento.correios.com.br/app/index.php?objeto=AA123456785BR")
        );
        assert_eq!(tracking_url("10000123456", None), None);
        assert_eq!(
            tracking_url("10000123456", Some("https://t.example/?c={code}")).as_deref(),
            Some("https://t.example/?c=10000123456")
        );
    }

    #[test]
    fn status_in_every_form() {
        let s = status(Some(
            &json!({"codigo": "pedido_pago", "nome": "Pago!", "id": 4}),
        ));
        assert_eq!((s.code.as_str(), s.name.as_str()), ("pedido_pago", "Pago!"));
        let s = status(Some(&json!("/api/v1/situacao/11")));
        assert_eq!(
            (s.code.as_str(), s.name.as_str()),
            ("pedido_enviado", "Pedido Enviado")
        );
        let s = status(Some(&json!(1019)));
        assert_eq!(s.code, "cancelamento_solicitado");
        let s = status(Some(&json!({"id": 4242})));
        assert_eq!(s.code, "situacao_4242");
        let s = status(Some(&json!({"codigo": "aguardando_retirada_loja"})));
        assert_eq!(
            (s.code.as_str(), s.name.as_str()),
            ("aguardando_retirada_loja", "aguardando_retirada_loja")
        );
    }

    #[test]
    fn first_names_are_recased_only_when_typed_in_one_case() {
        assert_eq!(first_name("MARIA TESTE"), "Maria");
        assert_eq!(first_name("joão souza"), "João");
        assert_eq!(first_name("McArthur Silva"), "McArthur");
        assert_eq!(first_name(""), "");
    }

    #[test]
    fn customer_falls_back_to_the_address_and_orders_phones_mobile_first() {
        let c = customer(
            Some(
                &json!({"nome": "Ana", "telefone_principal": "1130000000", "telefone_celular": " 11900000000 ", "email": ""}),
            ),
            None,
        );
        assert_eq!(c.phones, vec!["11900000000", "1130000000"]);
        assert_eq!(c.email, None);
        let c = customer(Some(&json!({})), Some(&json!({"nome": "Bia Souza"})));
        assert_eq!(
            (c.name.as_str(), c.first_name.as_str()),
            ("Bia Souza", "Bia")
        );
        assert!(c.phones.is_empty());
    }

    #[test]
    fn a_minimal_detail_with_nulls_strings_and_empty_objects_maps_without_failing() {
        let doc = json!({
            "numero": "77",
            "data_modificacao": "2024-05-10T09:00:00",
            "situacao": "/api/v1/situacao/4",
            "cliente": null,
            "endereco_entrega": {},
            "envios": [{"objeto": "", "forma_envio": null}, "junk"],
            "itens": [{"nome": null, "quantidade": null, "preco_venda": "abc"}],
            "pagamentos": [{}],
            "valor_total": "R$ 5",
            "valor_envio": null,
        });
        let key = change_key(&doc).unwrap();
        assert_eq!((key.numero, key.status.as_str()), (77, "pedido_pago"));
        let (o, warnings) = detailed(&doc, &key, None, None);
        assert_eq!(
            o.created_at, "2024-05-10T09:00:00-03:00",
            "data_criacao falls back to data_modificacao"
        );
        assert_eq!(o.customer.name, "");
        assert_eq!(o.shipments.len(), 1);
        assert_eq!(o.shipments[0].id, "envio-1");
        assert_eq!(o.shipments[0].tracking_code, None);
        assert_eq!(o.items[0].name, "item 1");
        assert_eq!(
            o.items[0].quantity, "",
            "unreadable quantity: unknown, not 1"
        );
        assert_eq!(o.items[0].unit_price.cents, i64::MIN);
        assert_eq!(o.items[0].total.cents, i64::MIN);
        let payment = o.payment.unwrap();
        assert_eq!(
            (payment.code.as_str(), payment.family),
            ("", PaymentFamily::Other)
        );
        assert_eq!(
            [o.total, o.shipping, o.subtotal, o.discount].map(|m| m.is_unknown()),
            [true; 4],
            "unreadable, null or missing amounts are unknown, never 0"
        );
        for field in [
            "valor_total = \"R$ 5\"",
            "valor_envio is null",
            "valor_subtotal is missing",
            "itens[0].quantidade is null",
        ] {
            assert!(
                warnings.0.iter().any(|w| w.contains(field)),
                "{field}: {:?}",
                warnings.0
            );
        }
        assert_eq!(warnings.0.len(), 6, "{:?}", warnings.0);
        assert!(
            warnings
                .0
                .iter()
                .any(|w| w.contains("valor_total = \"R$ 5\"")),
            "{:?}",
            warnings.0
        );
        assert!(
            warnings
                .0
                .iter()
                .any(|w| w.contains("itens[0].preco_venda")),
            "{:?}",
            warnings.0
        );
    }

    #[test]
    fn rows_without_numero_or_modification_have_no_change_key() {
        assert!(change_key(&json!({"data_modificacao": "2024-05-10T09:00:00"})).is_none());
        assert!(change_key(&json!({"numero": 1, "data_modificacao": "ontem"})).is_none());
        assert!(change_key(&json!({"numero": 1})).is_none());
    }
}
