//! JSON documents in LI's REST shapes (see docs/platforms/loja-integrada.md
//! §Order documents), and the push shape of its order webhooks (§Push
//! deliveries (as the simulator sends them)).

use jiff::civil::DateTime;
use serde_json::{Map, Value, json};

use super::model::{HistoryEntry, Item, Order, Payment, Shipment, Status};
use super::{ClienteForm, MoneyFormat, StoreState};

/// A naive timestamp the way Python's `isoformat()` prints it: microseconds
/// only when non-zero.
pub(crate) fn timestamp(at: DateTime) -> String {
    let base = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        at.year(),
        at.month(),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    let micros = at.subsec_nanosecond() / 1000;
    if micros == 0 {
        base
    } else {
        format!("{base}.{micros:06}")
    }
}

fn opt_timestamp(at: Option<DateTime>) -> Value {
    at.map_or(Value::Null, |t| Value::String(timestamp(t)))
}

/// Money with `decimals` decimals as a string, or a JSON number.
fn money(cents: i64, format: MoneyFormat, decimals: usize) -> Value {
    match format {
        MoneyFormat::Numbers => json!(cents as f64 / 100.0),
        MoneyFormat::Strings => {
            let sign = if cents < 0 { "-" } else { "" };
            let abs = cents.unsigned_abs();
            let whole = abs / 100;
            let frac = abs % 100;
            let pad = "0".repeat(decimals.saturating_sub(2));
            Value::String(format!("{sign}{whole}.{frac:02}{pad}"))
        }
    }
}

fn quantity(milli: u64, format: MoneyFormat) -> Value {
    match format {
        MoneyFormat::Numbers => json!(milli as f64 / 1000.0),
        MoneyFormat::Strings => Value::String(format!("{}.{:03}", milli / 1000, milli % 1000)),
    }
}

fn opt_str(s: Option<&str>) -> Value {
    s.map_or(Value::Null, |s| Value::String(s.to_owned()))
}

fn situacao(status: &Status, prefix: &str) -> Value {
    json!({
        "aprovado": status.approved,
        "cancelado": status.canceled,
        "codigo": status.code,
        "final": status.is_final,
        "id": status.id,
        "nome": status.name,
        "notificar_comprador": status.notify_buyer,
        "padrao": status.is_default,
        "resource_uri": format!("{prefix}/situacao/{}", status.id),
    })
}

fn situacao_of(store: &StoreState, code: &str) -> Value {
    let prefix = &store.options.uri_prefix;
    match store.status(code) {
        Some(status) => situacao(status, prefix),
        // Statuses are registered on every mutation; keep the order readable anyway.
        None => situacao(&Status::custom(0, code, code), prefix),
    }
}

/// A status catalogue row.
pub(crate) fn status_row(store: &StoreState, status: &Status) -> Value {
    situacao(status, &store.options.uri_prefix)
}

fn numero_of(order: &Order) -> u64 {
    order.numero.unwrap_or_default()
}

fn customer_uri(store: &StoreState, order: &Order) -> String {
    format!(
        "{}/cliente/{}",
        store.options.uri_prefix,
        order.customer.id.unwrap_or_default()
    )
}

/// A `pedido/search` row: the summary, `cliente` as a URI.
pub(crate) fn search_row(store: &StoreState, order: &Order) -> Value {
    let m = store.options.money;
    let prefix = &store.options.uri_prefix;
    let numero = numero_of(order);
    json!({
        "cliente": customer_uri(store, order),
        "data_criacao": opt_timestamp(order.created_at),
        "data_expiracao": opt_timestamp(order.created_at.map(expiry)),
        "data_modificacao": opt_timestamp(order.modified_at),
        "id_anymarket": order.anymarket_id,
        "id_externo": order.external_id,
        "numero": numero,
        "peso_real": "0.300",
        "resource_uri": format!("{prefix}/pedido/{numero}"),
        "situacao": situacao_of(store, &order.status),
        "utm_campaign": opt_str(order.utm_campaign.as_deref()),
        "valor_desconto": money(order.discount_cents, m, 2),
        "valor_envio": money(order.shipping_total_cents(), m, 2),
        "valor_subtotal": money(order.subtotal_cents(), m, 2),
        "valor_total": money(order.total_cents(), m, 2),
    })
}

/// `data_expiracao` is about 6 days after creation in LI's examples.
fn expiry(created: DateTime) -> DateTime {
    created.saturating_add(jiff::SignedDuration::from_hours(24 * 6))
}

/// A `cliente/{id}` document (also the inline `cliente` of a detail).
pub(crate) fn customer(store: &StoreState, id: u64) -> Option<Value> {
    let c = store.customers.get(&id)?;
    Some(json!({
        "cnpj": null,
        "cpf": opt_str(c.cpf.as_deref()),
        "data_nascimento": opt_str(c.birth_date.as_deref()),
        "email": opt_str(c.email.as_deref()),
        "id": id,
        "nome": c.name,
        "razao_social": null,
        "resource_uri": format!("{}/cliente/{id}", store.options.uri_prefix),
        "sexo": c.sex,
        "telefone_celular": opt_str(c.mobile.as_deref()),
        "telefone_principal": opt_str(c.phone.as_deref()),
    }))
}

fn item(store: &StoreState, order: &Order, index: usize, item: &Item) -> Value {
    let m = store.options.money;
    let prefix = &store.options.uri_prefix;
    let numero = numero_of(order);
    json!({
        "altura": 2,
        "disponibilidade": 0,
        "id": 60_000_000 + numero * 100 + index as u64,
        "largura": 12,
        "linha": index + 1,
        "ncm": "61046200",
        "nome": item.name,
        "pedido": format!("{prefix}/pedido/{numero}"),
        "peso": "0.300",
        "preco_cheio": money(item.unit_price_cents, m, 4),
        "preco_custo": null,
        "preco_promocional": null,
        "preco_subtotal": money(item.total_cents(), m, 4),
        "preco_venda": money(item.unit_price_cents, m, 4),
        "produto": format!("{prefix}/produto/{}", 50_000_000 + numero * 100 + index as u64),
        "produto_pai": null,
        "profundidade": 6,
        "quantidade": quantity(item.quantity_milli, m),
        "sku": opt_str(item.sku.as_deref()),
        "tipo": "normal",
    })
}

fn payment(store: &StoreState, order: &Order, p: &Payment) -> Value {
    let m = store.options.money;
    let total = order.total_cents();
    let approved = store.status(&order.status).is_some_and(|s| s.approved);
    let parcelamento = match p.installments {
        Some(n) if n > 0 => json!({
            "numero_parcelas": n,
            // A JSON number even in REST responses (see
            // docs/platforms/loja-integrada.md §Amounts and quantities).
            "valor_parcela": (total as f64 / f64::from(n)).round() / 100.0,
        }),
        _ => json!({}),
    };
    json!({
        "authorization_code": null,
        "banco": null,
        "bandeira": opt_str(p.brand.as_deref()),
        "codigo_retorno_gateway": null,
        "forma_pagamento": {
            "codigo": p.code,
            "configuracoes": { "ativo": true, "disponivel": true },
            "id": p.method_id,
            "imagem": format!("https://cdn.awsli.com.br/production/static/img/formas-de-pagamento/{}-logo.png", p.code),
            "nome": p.name,
            "resource_uri": format!("{}/pagamento/{}", store.options.uri_prefix, p.method_id),
        },
        "id": 71_000_000 + numero_of(order),
        "identificador_id": null,
        "mensagem_gateway": null,
        "pagamento_tipo": opt_str(p.kind.as_deref()),
        "parcelamento": parcelamento,
        "transacao_id": opt_str(p.transaction_id.as_deref()),
        "valor": money(total, m, 2),
        "valor_pago": if approved { money(total, m, 2) } else { Value::Null },
    })
}

fn shipment(store: &StoreState, order: &Order, s: &Shipment) -> Value {
    let m = store.options.money;
    json!({
        "data_criacao": opt_timestamp(order.created_at),
        "data_modificacao": opt_timestamp(order.modified_at),
        "forma_envio": { "code": s.code, "id": s.method_id, "nome": s.carrier, "tipo": s.kind },
        "id": s.id.unwrap_or_default(),
        "objeto": opt_str(s.tracking.as_deref()),
        "prazo": s.days,
        "valor": money(s.price_cents, m, 2),
    })
}

/// A `pedido/{numero}` document: everything.
pub(crate) fn detail(store: &StoreState, order: &Order) -> Value {
    let mut doc = match search_row(store, order) {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    let cliente = match store.options.cliente {
        ClienteForm::Uri => Value::String(customer_uri(store, order)),
        ClienteForm::Inline => order
            .customer
            .id
            .and_then(|id| customer(store, id))
            .unwrap_or_else(|| Value::String(customer_uri(store, order))),
    };
    doc.insert("cliente".into(), cliente);
    doc.insert(
        "cliente_obs".into(),
        opt_str(order.customer_note.as_deref()),
    );
    doc.insert("cupom_desconto".into(), opt_str(order.coupon.as_deref()));
    let address = match &order.address {
        Some(a) => json!({
            "bairro": a.district, "cep": a.cep, "cidade": a.city, "cnpj": null,
            "complemento": opt_str(a.complement.as_deref()), "cpf": opt_str(order.customer.cpf.as_deref()),
            "endereco": a.street, "estado": a.state, "id": 80_000_000 + numero_of(order), "ie": null,
            "nome": a.name, "numero": a.number, "pais": "Brasil", "razao_social": null,
            "referencia": null, "rg": null, "tipo": "PF",
        }),
        None => json!({}),
    };
    doc.insert("endereco_entrega".into(), address);
    doc.insert(
        "envios".into(),
        Value::Array(
            order
                .shipments
                .iter()
                .map(|s| shipment(store, order, s))
                .collect(),
        ),
    );
    doc.insert(
        "itens".into(),
        Value::Array(
            order
                .items
                .iter()
                .enumerate()
                .map(|(i, it)| item(store, order, i, it))
                .collect(),
        ),
    );
    doc.insert(
        "pagamentos".into(),
        Value::Array(
            order
                .payment
                .iter()
                .map(|p| payment(store, order, p))
                .collect(),
        ),
    );
    Value::Object(doc)
}

/// A top-level push date: the instant in UTC with milliseconds and `Z`
/// (`2024-05-10T12:12:47.556Z`); the fake's naive times are São Paulo's, UTC−03:00.
fn push_utc(at: DateTime) -> String {
    let utc = at.saturating_add(jiff::SignedDuration::from_hours(3));
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        utc.year(),
        utc.month(),
        utc.day(),
        utc.hour(),
        utc.minute(),
        utc.second(),
        utc.subsec_nanosecond() / 1_000_000
    )
}

/// A nested push date: São Paulo wall-clock time with its `-03:00` offset.
fn push_local(at: DateTime) -> String {
    format!("{}-03:00", timestamp(at))
}

fn opt_push_local(at: Option<DateTime>) -> Value {
    at.map_or(Value::Null, |t| Value::String(push_local(t)))
}

fn push_address(order: &Order, id_offset: u64) -> Value {
    match &order.address {
        Some(a) => json!({
            "bairro": a.district, "cep": a.cep, "cidade": a.city, "cnpj": null,
            "complemento": opt_str(a.complement.as_deref()), "cpf": opt_str(order.customer.cpf.as_deref()),
            "endereco": a.street, "estado": a.state, "id": id_offset + numero_of(order), "ie": null,
            "nome": a.name, "numero": a.number, "pais": "Brasil", "razao_social": null,
            "referencia": null, "rg": null, "tipo": "PF",
        }),
        None => json!({}),
    }
}

/// The body of an order push: the order as the detail shows it, in LI's
/// webhook dialect. `token` is the token the push is sent with.
pub(crate) fn push(
    store: &StoreState,
    order: &Order,
    internal_id: u64,
    status_changed: bool,
    token: &str,
) -> Value {
    let m = MoneyFormat::Numbers;
    let numero = numero_of(order);
    let mut situacao = situacao_of(store, &order.status);
    if let Some(fields) = situacao.as_object_mut() {
        fields.remove("resource_uri");
        fields.insert("situacao_alterada".into(), Value::Bool(status_changed));
    }
    let c = &order.customer;
    let cliente = json!({
        "cnpj": null,
        "cpf": opt_str(c.cpf.as_deref()),
        "data_criacao": opt_push_local(order.created_at),
        "data_modificacao": opt_push_local(order.created_at),
        "data_nascimento": opt_str(c.birth_date.as_deref()),
        "email": opt_str(c.email.as_deref()),
        "id": c.id.unwrap_or_default(),
        "nome": c.name,
        "razao_social": null,
        "sexo": c.sex,
        "situacao": "aprovado",
        "telefone_celular": opt_str(c.mobile.as_deref()),
        "telefone_comercial": null,
        "telefone_principal": opt_str(c.phone.as_deref()),
    });
    let envios: Vec<Value> = order
        .shipments
        .iter()
        .map(|s| {
            json!({
                "data_criacao": opt_push_local(order.created_at),
                "data_modificacao": opt_push_local(order.modified_at),
                "forma_envio": { "codigo": s.code, "id": s.method_id, "nome": s.carrier, "tipo": s.kind },
                "id": s.id.unwrap_or_default(),
                "objeto": opt_str(s.tracking.as_deref()),
                "prazo": s.days,
                "valor": money(s.price_cents, m, 2),
            })
        })
        .collect();
    let itens: Vec<Value> = order
        .items
        .iter()
        .enumerate()
        .map(|(index, it)| {
            json!({
                "id": 60_000_000 + numero * 100 + index as u64,
                "linha": index + 1,
                "nome": it.name,
                "peso": 0.3,
                "preco_cheio": money(it.unit_price_cents, m, 2),
                "preco_custo": null,
                "preco_promocional": null,
                "preco_subtotal": money(it.total_cents(), m, 2),
                "preco_venda": money(it.unit_price_cents, m, 2),
                "produto_id": 50_000_000 + numero * 100 + index as u64,
                "quantidade": quantity(it.quantity_milli, m),
                "sku": opt_str(it.sku.as_deref()),
                "tipo": "normal",
            })
        })
        .collect();
    let total = order.total_cents();
    let approved = store.status(&order.status).is_some_and(|s| s.approved);
    let pagamentos: Vec<Value> = order
        .payment
        .iter()
        .map(|p| {
            let parcelamento = match p.installments {
                Some(n) if n > 0 => json!({
                    "numero_parcelas": n,
                    "valor_parcela": (total as f64 / f64::from(n)).round() / 100.0,
                }),
                _ => json!({}),
            };
            json!({
                "bandeira": opt_str(p.brand.as_deref()),
                "forma_pagamento": { "codigo": p.code, "id": p.method_id, "nome": p.name },
                "id": 71_000_000 + numero,
                "pagamento_tipo": opt_str(p.kind.as_deref()),
                "parcelamento": parcelamento,
                "transacao_id": opt_str(p.transaction_id.as_deref()),
                "valor": money(total, m, 2),
                "valor_pago": if approved { money(total, m, 2) } else { Value::Null },
            })
        })
        .collect();
    json!({
        "cliente": cliente,
        "cliente_obs": opt_str(order.customer_note.as_deref()),
        "cupom_desconto": opt_str(order.coupon.as_deref()),
        "data_criacao": order.created_at.map_or(Value::Null, |t| Value::String(push_utc(t))),
        "data_expiracao": order.created_at.map_or(Value::Null, |t| Value::String(push_utc(expiry(t)))),
        "data_modificacao": order.modified_at.map_or(Value::Null, |t| Value::String(push_utc(t))),
        "endereco_entrega": push_address(order, 80_000_000),
        "endereco_pagamento": push_address(order, 81_000_000),
        "envios": envios,
        "id": internal_id,
        "id_anymarket": order.anymarket_id,
        "id_externo": order.external_id,
        "itens": itens,
        "marketplace_info": null,
        "numero": numero,
        "pagamentos": pagamentos,
        "peso_real": 0.3,
        "situacao": situacao,
        "tipo": "pedido_venda",
        "token": token,
        "utm_campaign": opt_str(order.utm_campaign.as_deref()),
        "valor_desconto": money(order.discount_cents, m, 2),
        "valor_envio": money(order.shipping_total_cents(), m, 2),
        "valor_subtotal": money(order.subtotal_cents(), m, 2),
        "valor_total": money(total, m, 2),
    })
}

/// A `situacao_historico` row.
pub(crate) fn history_row(store: &StoreState, numero: u64, entry: &HistoryEntry) -> Value {
    json!({
        "alterado_por": "API",
        "alterado_por_nome": "Loja Teste",
        "data": timestamp(entry.at),
        "id": entry.id,
        "numero": numero,
        "obs": null,
        "resource_uri": format!("{}/situacao_historico/{}", store.options.uri_prefix, entry.id),
        "situacao": situacao_of(store, &entry.status),
        "situacao_anterior": entry.previous.as_deref().map_or(Value::Null, |p| situacao_of(store, p)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_print_like_python_isoformat() {
        let at = jiff::civil::date(2024, 5, 10).at(9, 12, 47, 556_120_000);
        assert_eq!(timestamp(at), "2024-05-10T09:12:47.556120");
        assert_eq!(
            timestamp(jiff::civil::date(2024, 5, 10).at(9, 0, 0, 0)),
            "2024-05-10T09:00:00"
        );
    }

    #[test]
    fn push_dates_are_utc_at_the_top_and_sao_paulo_inside() {
        let at = jiff::civil::date(2024, 12, 11).at(18, 9, 38, 888_123_000);
        assert_eq!(push_utc(at), "2024-12-11T21:09:38.888Z");
        assert_eq!(push_local(at), "2024-12-11T18:09:38.888123-03:00");
        let late = jiff::civil::date(2024, 12, 31).at(22, 0, 0, 0);
        assert_eq!(push_utc(late), "2025-01-01T01:00:00.000Z");
    }

    #[test]
    fn money_renders_as_strings_with_2_or_4_decimals_or_as_numbers() {
        assert_eq!(money(10880, MoneyFormat::Strings, 2), json!("108.80"));
        assert_eq!(money(13990, MoneyFormat::Strings, 4), json!("139.9000"));
        assert_eq!(money(-5, MoneyFormat::Strings, 2), json!("-0.05"));
        assert_eq!(money(7814, MoneyFormat::Numbers, 2), json!(78.14));
        assert_eq!(quantity(2500, MoneyFormat::Strings), json!("2.500"));
    }
}
