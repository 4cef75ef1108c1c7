//! A connector that serves realistic pages of orders generated in the guest
//! (no HTTP), for contract tests and the per-call benchmark.
//!
//! Settings: `page_size` (default 50), `pages` (default 2), and `broken`
//! (`timestamp` | `extras`) to return one malformed order on purpose, or
//! (`huge-cursor` | `huge-name` | `huge-id`) to return a cursor (from the
//! second page on), the first order's customer name or its id of `size`
//! bytes (default 50 MB).
//!
//! Pushes (contract 0.2): `verify-push` accepts a delivery whose
//! `authorization` header is `Bearer <settings.webhook_token>` (misconfigured
//! otherwise) and whose body is `{"orders": ["<id>", …]}` (→ look at them) or
//! `{"ignore": "<why>"}` (→ ignore); anything else is permanent. `poll` adds
//! each looked-at order (ids `10000 + n`) to its first page, fully read, and
//! logs `looked at <ids>`. `register-push` / `unregister-push` send
//! `PUT` / `DELETE` `{"notifyUrl", "token"}` to `settings.push_admin_url`.

#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use arauto_plugin_sdk::connector::prelude::*;

struct Sample;

fn status(
    code: &str,
    name: &str,
    notification: Option<NotificationKind>,
    priority: u8,
    terminal: bool,
) -> StatusEntry {
    StatusEntry {
        code: code.into(),
        name: name.into(),
        notification,
        happy_path_priority: priority,
        terminal,
    }
}

const STATUSES: [(&str, &str); 6] = [
    ("aguardando_pagamento", "Aguardando pagamento"),
    ("pedido_pago", "Pedido Pago"),
    ("pedido_em_separacao", "Pedido em separação"),
    ("pedido_enviado", "Pedido Enviado"),
    ("pedido_entregue", "Pedido Entregue"),
    ("pedido_cancelado", "Pedido Cancelado"),
];

const FIRST_NAMES: [&str; 6] = ["Maria", "João", "Ana", "Pedro", "Luíza", "Carlos"];
const LAST_NAMES: [&str; 5] = ["Silva", "Santos", "Oliveira", "Souza", "Pereira"];

impl Connector for Sample {
    fn info() -> ConnectorInfo {
        let mut page_size = config_key("page_size", "Orders per page", false, false);
        page_size.default_value = Some("50".into());
        ConnectorInfo {
            plugin: PluginInfo {
                name: "sample-connector".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                description: "Test plugin: serves generated order pages".into(),
                config_keys: vec![
                    config_key("api_key", "Platform API key", true, true),
                    page_size,
                    config_key("pages", "Pages per sweep", false, false),
                    config_key(
                        "broken",
                        "Return a malformed order: timestamp | extras | huge-cursor | huge-name | huge-id",
                        false,
                        false,
                    ),
                    config_key("size", "Bytes of the huge-* output", false, false),
                    config_key(
                        "webhook_token",
                        "Bearer token of pushed deliveries",
                        false,
                        true,
                    ),
                    config_key(
                        "push_admin_url",
                        "Where register-push sends its PUT",
                        false,
                        false,
                    ),
                ],
                default_hosts: vec![
                    "https://api.sample.example".into(),
                    "https://*.cdn.sample.example".into(),
                ],
            },
            platform: "sample".into(),
            statuses: vec![
                status(
                    "aguardando_pagamento",
                    "Aguardando pagamento",
                    Some(NotificationKind::WaitingPayment),
                    1,
                    false,
                ),
                status(
                    "pedido_pago",
                    "Pedido Pago",
                    Some(NotificationKind::OrderPaid),
                    2,
                    false,
                ),
                status(
                    "pedido_em_separacao",
                    "Pedido em separação",
                    Some(NotificationKind::OrderProcessing),
                    3,
                    false,
                ),
                status(
                    "pedido_enviado",
                    "Pedido Enviado",
                    Some(NotificationKind::OrderShipped),
                    4,
                    false,
                ),
                status(
                    "pedido_entregue",
                    "Pedido Entregue",
                    Some(NotificationKind::OrderDelivered),
                    5,
                    false,
                ),
                status(
                    "pedido_cancelado",
                    "Pedido Cancelado",
                    Some(NotificationKind::OrderCanceled),
                    0,
                    true,
                ),
                // Contract 0.1 could name a kind outside the vocabulary; 0.2's
                // enum cannot, so this status simply notifies nobody.
                status(
                    "pedido_teletransportado",
                    "Pedido Teletransportado",
                    None,
                    0,
                    false,
                ),
                status("em_producao", "Em produção", None, 0, false),
            ],
            capabilities: Capabilities {
                tracking_codes: Capability {
                    supported: true,
                    reason: String::new(),
                },
                boleto_reminder: Capability {
                    supported: false,
                    reason: "the platform does not expose the boleto barcode".into(),
                },
                pix_reminder: Capability {
                    supported: true,
                    reason: String::new(),
                },
                abandoned_cart: Capability {
                    supported: false,
                    reason: "no cart API".into(),
                },
            },
            requests_per_minute: None,
            push: PushSupport {
                verify: true,
                register: true,
            },
            account_keys: vec!["api_key".into()],
        }
    }

    fn check() -> Result<(), PluginError> {
        settings::require("api_key").map(|_| ())
    }

    fn poll(req: PollRequest) -> Result<PollPage, PluginError> {
        let page_size: usize = number("page_size", 50)?;
        let pages: usize = number("pages", 2)?;
        let page: usize = match req.cursor.as_deref() {
            None => 0,
            Some(c) => c
                .strip_prefix("page-")
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| permanent(format!("unknown cursor {c:?}")))?,
        };
        let detailed = req.detail_cutoff.is_none();
        let mut orders: Vec<OrderSnapshot> = (0..page_size)
            .map(|i| order(page * page_size + i, detailed))
            .collect();
        if !req.look_at.is_empty() {
            log::info(&format!("looked at {}", req.look_at.join(",")));
            orders.extend(
                req.look_at
                    .iter()
                    .filter_map(|id| id.parse::<usize>().ok()?.checked_sub(10_000))
                    .map(|n| order(n, true)),
            );
        }
        let mut next_cursor = format!("page-{}", page + 1);
        let size: usize = number("size", 50_000_000)?;
        match settings::get("broken").as_deref() {
            Some("timestamp") => orders[0].created_at = "yesterday at noon".into(),
            Some("extras") => orders[0].extras_json = "{not json".into(),
            // From the second page on, so a sweep first commits a sane
            // cursor; the host must refuse the huge one before storing it.
            Some("huge-cursor") if page >= 1 => next_cursor.push_str(&"0".repeat(size)),
            Some("huge-name") => orders[0].customer.name = "N".repeat(size),
            Some("huge-id") => orders[0].id = "9".repeat(size),
            _ => {}
        }
        let has_more = page + 1 < pages;
        Ok(PollPage {
            orders,
            next_cursor: Some(next_cursor),
            has_more,
        })
    }

    fn verify_push(req: PushRequest) -> Result<PushHint, PluginError> {
        let token = settings::optional("webhook_token").ok_or_else(|| {
            misconfigured("setting `webhook_token` is not set: pushes are refused")
        })?;
        let presented = req
            .headers
            .iter()
            .find(|(name, _)| name == "authorization")
            .map(|(_, value)| value.as_str());
        if presented != Some(format!("Bearer {token}").as_str()) {
            return Err(misconfigured(
                "the push's bearer token does not match `webhook_token`",
            ));
        }
        let body: serde_json::Value = serde_json::from_slice(&req.body)
            .map_err(|e| permanent(format!("the push body is not JSON: {e}")))?;
        if let Some(why) = body.get("ignore").and_then(|v| v.as_str()) {
            return Ok(PushHint::Ignore(why.to_owned()));
        }
        let orders = body
            .get("orders")
            .and_then(|v| v.as_array())
            .ok_or_else(|| permanent("the push body has no `orders` list"))?;
        Ok(PushHint::LookAt(
            orders
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
        ))
    }

    fn register_push(notify_url: String) -> Result<(), PluginError> {
        subscription(
            http::put(&settings::base_url("push_admin_url", "")?),
            &notify_url,
        )
    }

    fn unregister_push(notify_url: String) -> Result<(), PluginError> {
        subscription(
            http::delete(&settings::base_url("push_admin_url", "")?),
            &notify_url,
        )
    }
}

fn subscription(request: http::RequestBuilder, notify_url: &str) -> Result<(), PluginError> {
    let token = settings::require("webhook_token")?;
    request
        .json(&serde_json::json!({ "notifyUrl": notify_url, "token": token }))?
        .send()?
        .ok_or_error()?;
    Ok(())
}

fn number(key: &str, default: usize) -> Result<usize, PluginError> {
    settings::get_or(key, &default.to_string())
        .parse()
        .map_err(|_| misconfigured(format!("setting `{key}` must be a number")))
}

fn order(n: usize, detailed: bool) -> OrderSnapshot {
    let (code, name) = STATUSES[n % STATUSES.len()];
    let first = FIRST_NAMES[n % FIRST_NAMES.len()];
    let last = LAST_NAMES[n % LAST_NAMES.len()];
    let id = (10_000 + n).to_string();
    let day = 1 + n % 28;
    let pix_payment = n.is_multiple_of(2);
    let items: Vec<Item> = (0..(1 + n % 3))
        .map(|k| Item {
            sku: Some(format!("SKU-{:04}", 100 + k)),
            name: format!("Camiseta básica tamanho {}", ["P", "M", "G"][k % 3]),
            quantity: (1 + k).to_string(),
            unit_price: Money { cents: 4990 },
            total: Money {
                cents: 4990 * (1 + k as i64),
            },
        })
        .collect();
    let subtotal: i64 = items.iter().map(|i| i.total.cents).sum();
    let shipped = code == "pedido_enviado" || code == "pedido_entregue";
    OrderSnapshot {
        id: id.clone(),
        number: id.clone(),
        status: OrderStatus {
            code: code.into(),
            name: name.into(),
        },
        created_at: format!("2024-05-{day:02}T09:{:02}:00-03:00", n % 60),
        updated_at: format!("2024-05-{day:02}T15:{:02}:30-03:00", n % 60),
        customer: Customer {
            name: format!("{first} {last}"),
            first_name: first.into(),
            phones: vec![
                format!("(11) 9{:04}-{:04}", 8000 + n % 1000, 1000 + n),
                "(11) 3456-7890".into(),
            ],
            email: Some(format!(
                "{}.{}@example.com",
                first.to_lowercase(),
                last.to_lowercase()
            )),
            chat_id: None,
        },
        subtotal: Money { cents: subtotal },
        shipping: Money { cents: 1890 },
        discount: Money { cents: 0 },
        total: Money {
            cents: subtotal + 1890,
        },
        currency: "BRL".into(),
        payment: Some(if pix_payment {
            Payment {
                code: "pagali-pix".into(),
                name: "Pix".into(),
                family: PaymentFamily::Pix,
                installments: None,
            }
        } else {
            Payment {
                code: "pagali-cartao".into(),
                name: "Cartão de crédito".into(),
                family: PaymentFamily::CreditCard,
                installments: Some(3),
            }
        }),
        shipments: vec![Shipment {
            id: format!("{id}-1"),
            carrier: Some("Correios".into()),
            method: Some("PAC".into()),
            tracking_code: shipped.then(|| format!("BR{:09}BR", 100_000_000 + n)),
            tracking_url: shipped.then(|| {
                format!(
                    "https://rastreamento.correios.com.br/app/index.php?objeto=BR{:09}BR",
                    100_000_000 + n
                )
            }),
        }],
        items,
        boleto: None,
        pix: pix_payment.then(|| Pix {
            code: format!(
                "00020126580014br.gov.bcb.pix0136{id}-chave-aleatoria5204000053039865802BR"
            ),
            qr_code_url: Some(format!("https://pix.sample.example/qr/{id}.png")),
            expires_at: Some(format!("2024-05-{day:02}T21:00:00-03:00")),
        }),
        detailed,
        extras_json: format!(
            r#"{{"utm_source":"instagram","cupom":null,"nota_fiscal":{{"numero":"{}","serie":"1"}}}}"#,
            50_000 + n
        ),
    }
}

arauto_plugin_sdk::export_connector!(Sample);
