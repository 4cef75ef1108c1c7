//! Templates: the pt-BR defaults render for every kind against realistic
//! orders, and every failure class names the template, line and variable.

// All test code: with this, clippy's allow-unwrap/expect-in-tests covers the
// helper functions too, not only the #[test] ones (see clippy.toml).
#![cfg(test)]

use std::error::Error;
use std::path::PathBuf;

use arauto::decide::TrackingRef;
use arauto::model::{Item, Money, NotificationKind as K, Order};
use arauto::template::{
    ProviderTemplateSpec, StoreInfo, TemplateConfig, TemplateContext, TemplateError,
    TemplateSource, Templates, default_template, sample_orders,
};
use jiff::tz::TimeZone;

type TestResult = Result<(), Box<dyn Error>>;

fn store() -> Result<StoreInfo, Box<dyn Error>> {
    Ok(StoreInfo {
        id: "ateliê".into(),
        description: "Ateliê Flor de Lis".into(),
        time_zone: TimeZone::get("America/Sao_Paulo")?,
    })
}

fn defaults() -> Result<Templates, Box<dyn Error>> {
    Ok(Templates::compile(&TemplateConfig::default())?)
}

fn order(n: usize) -> Result<Order, Box<dyn Error>> {
    Ok(sample_orders().into_iter().nth(n).ok_or("sample missing")?)
}

fn context(order: &Order, kind: K) -> Result<TemplateContext, Box<dyn Error>> {
    let tracking = arauto::decide::detect::current_codes(order)
        .next()
        .filter(|_| kind == K::TrackingUpdated)
        .map(|(s, c)| TrackingRef {
            shipment_id: s.into(),
            code: c.into(),
        });
    Ok(TemplateContext::new(
        order,
        kind,
        &store()?,
        tracking.as_ref(),
    ))
}

fn render(templates: &Templates, order: &Order, kind: K) -> Result<String, Box<dyn Error>> {
    Ok(templates.render(kind, "whatsapp", &context(order, kind)?)?)
}

fn compile_error(config: &TemplateConfig) -> Result<Vec<TemplateError>, Box<dyn Error>> {
    match Templates::compile(config) {
        Ok(_) => Err("template accepted".into()),
        Err(errors) => Ok(errors.0),
    }
}

fn inline(kind: K, text: &str) -> TemplateConfig {
    let mut config = TemplateConfig::default();
    config.by_kind.insert(
        kind,
        TemplateSource::Inline {
            text: text.into(),
            config_key: format!("notifications.{kind}.template"),
        },
    );
    config
}

// ---------------------------------------------------------------- defaults

#[test]
fn every_kind_has_a_pt_br_default_that_renders_against_every_sample() -> TestResult {
    let templates = defaults()?;
    for order in sample_orders() {
        for kind in K::ALL {
            let text = render(&templates, &order, kind)?;
            assert!(!text.is_empty(), "{kind} on order {}", order.number);
            if kind != K::AbandonedCart {
                assert!(
                    text.contains(&format!("#{}", order.number)),
                    "{kind}: no order number\n{text}"
                );
            }
            for bad in ["None", "none", "{{", "{%", "\n\n\n", " \n"] {
                assert!(
                    !text.contains(bad),
                    "{kind} on order {} contains {bad:?}:\n{text}",
                    order.number
                );
            }
            assert!(
                text.ends_with("_Ateliê Flor de Lis_"),
                "{kind}: signature\n{text}"
            );
            assert!(
                templates
                    .origin(kind, "whatsapp")
                    .is_some_and(|o| o.contains(&format!("pt-BR/{kind}.txt")))
            );
        }
    }
    Ok(())
}

#[test]
fn defaults_format_money_dates_accents_and_tracking() -> TestResult {
    let templates = defaults()?;
    let full = order(0)?;
    let paid = render(&templates, &full, K::OrderPaid)?;
    assert!(paid.starts_with("Oba, Ana! 🎉"), "{paid}");
    assert!(
        paid.contains("• 2x Camiseta Básica Algodão Orgânico — Azul Petróleo (M) — R$ 119,80"),
        "{paid}"
    );
    assert!(paid.contains("*Total:* R$ 1.234,56"), "{paid}");
    assert!(paid.contains("*Desconto:* -R$ 50,00"), "{paid}");
    assert!(paid.contains("*Frete:* R$ 25,86"), "{paid}");

    let waiting = render(&templates, &full, K::WaitingPayment)?;
    assert!(waiting.contains("feito em 14/03/2025 13:05"), "{waiting}");
    assert!(
        waiting.contains("via *Pix*") && waiting.contains("app do seu banco"),
        "{waiting}"
    );

    let shipped = render(&templates, &full, K::OrderShipped)?;
    assert!(
        shipped.contains("*Código de rastreio:* QB123456789BR"),
        "{shipped}"
    );
    assert!(
        shipped.contains("*Transportadora:* Correios (SEDEX)"),
        "{shipped}"
    );
    assert!(
        shipped.contains("Acompanhe a entrega: https://rastreamento.correios.com.br/"),
        "{shipped}"
    );
    Ok(())
}

#[test]
fn defaults_are_graceful_without_tracking_payment_email_or_first_name() -> TestResult {
    let templates = defaults()?;
    let bare = order(1)?;
    let shipped = render(&templates, &bare, K::OrderShipped)?;
    assert!(
        shipped.starts_with("Boa notícia, João! 🚚"),
        "first name from the full name:\n{shipped}"
    );
    assert!(
        shipped.contains("O código de rastreio ainda não está disponível"),
        "{shipped}"
    );
    let waiting = render(&templates, &bare, K::WaitingPayment)?;
    assert!(!waiting.contains(" via "), "{waiting}");
    let tracking = render(&templates, &bare, K::TrackingUpdated)?;
    assert!(tracking.contains("foram atualizadas"), "{tracking}");
    let boleto = render(&templates, &bare, K::BoletoReminder)?;
    assert!(!boleto.contains("Linha digitável"), "{boleto}");
    Ok(())
}

#[test]
fn defaults_handle_many_items_and_split_shipments() -> TestResult {
    let templates = defaults()?;
    let split = order(2)?;
    let paid = render(&templates, &split, K::OrderPaid)?;
    assert_eq!(paid.matches("• 1x Livro Infantil").count(), 10, "{paid}");
    assert!(paid.contains("• … e mais 5 itens"), "{paid}");
    assert!(paid.contains("(Boleto)"), "{paid}");

    let mut both = split.clone();
    both.shipments[1].tracking_code = Some("QB987654321BR".into());
    both.shipments[1].tracking_url =
        Some("https://rastreamento.correios.com.br/?objeto=QB987654321BR".into());
    let shipped = render(&templates, &both, K::OrderShipped)?;
    assert!(shipped.contains("dividido em 2 volumes"), "{shipped}");
    assert!(shipped.contains("• Jadlog: *JD0012345678*"), "{shipped}");
    assert!(
        shipped.contains("• Correios: *QB987654321BR*\n  https://rastreamento"),
        "{shipped}"
    );

    let one_of_two = render(&templates, &split, K::OrderShipped)?;
    assert!(one_of_two.contains("demais volumes"), "{one_of_two}");

    // tracking-updated names the code of the job, on the shipment it belongs to.
    let ctx = TemplateContext::new(
        &both,
        K::TrackingUpdated,
        &store()?,
        Some(&TrackingRef {
            shipment_id: "882".into(),
            code: "QB987654321BR".into(),
        }),
    );
    let text = templates.render(K::TrackingUpdated, "whatsapp", &ctx)?;
    assert!(text.contains("*QB987654321BR* — Correios"), "{text}");
    assert!(text.contains("(para um dos volumes)"), "{text}");
    assert!(
        text.contains(
            "Acompanhe a entrega: https://rastreamento.correios.com.br/?objeto=QB987654321BR"
        ),
        "{text}"
    );
    Ok(())
}

#[test]
fn reminder_defaults_use_boleto_and_pix_data() -> TestResult {
    let templates = defaults()?;
    let boleto = render(&templates, &order(2)?, K::BoletoReminder)?;
    assert!(
        boleto.contains("com vencimento em *04/07/2025*"),
        "{boleto}"
    );
    assert!(boleto.contains("34191.79001 01043.510047"), "{boleto}");
    let pix = render(&templates, &order(0)?, K::PixReminder)?;
    assert!(pix.contains("que vale até *14/03/2025 14:05*"), "{pix}");
    assert!(pix.contains("*Pix copia e cola:*\n00020126"), "{pix}");
    Ok(())
}

#[test]
fn quantities_and_large_totals_are_brazilian() -> TestResult {
    let templates = defaults()?;
    let mut o = order(1)?;
    o.items = vec![Item {
        sku: None,
        name: "Café Especial a Granel (kg)".into(),
        quantity: Some("2.500".into()),
        unit_price: Some(Money(8_000)),
        total: Some(Money(20_000)),
    }];
    o.total = Some(Money(123_456_789));
    let text = render(&templates, &o, K::OrderPaid)?;
    assert!(
        text.contains("• 2,5x Café Especial a Granel (kg) — R$ 200,00"),
        "{text}"
    );
    assert!(text.contains("*Total:* R$ 1.234.567,89"), "{text}");
    Ok(())
}

/// An order whose amounts and quantities the platform sent unreadable
/// (`"abc"`, `null`, out of range): the connector reports them unknown.
fn unreadable_amounts(mut o: Order) -> Order {
    o.total = None;
    o.subtotal = None;
    o.shipping = None;
    o.discount = None;
    for item in &mut o.items {
        item.quantity = None;
        item.unit_price = None;
        item.total = None;
    }
    o
}

#[test]
fn defaults_leave_out_unknown_amounts_instead_of_saying_zero() -> TestResult {
    let templates = defaults()?;
    for n in 0..sample_orders().len() {
        let o = unreadable_amounts(order(n)?);
        for kind in K::ALL {
            let text = render(&templates, &o, kind)
                .map_err(|e| format!("{kind} on sample {n} with unknown amounts: {e}"))?;
            assert!(
                !text.contains("R$"),
                "{kind}: an unknown amount was printed:\n{text}"
            );
            assert!(!text.contains("Total"), "{kind}: {text}");
            assert!(
                !text.contains("1x"),
                "{kind}: an unknown quantity was guessed:\n{text}"
            );
        }
    }
    let paid = render(&templates, &unreadable_amounts(order(0)?), K::OrderPaid)?;
    assert!(
        paid.contains("• Camiseta Básica Algodão Orgânico"),
        "{paid}"
    );
    Ok(())
}

#[test]
fn every_item_stands_on_its_own_line_with_or_without_its_amounts() -> TestResult {
    let templates = defaults()?;
    for o in [order(0)?, unreadable_amounts(order(0)?)] {
        for kind in [K::WaitingPayment, K::OrderPaid, K::AbandonedCart] {
            let text = render(&templates, &o, kind)?;
            let item_lines: Vec<&str> = text.lines().filter(|l| l.starts_with("• ")).collect();
            assert_eq!(item_lines.len(), o.items.len(), "{kind}:\n{text}");
            for (line, item) in item_lines.iter().zip(&o.items) {
                assert_eq!(line.matches("• ").count(), 1, "{kind}: {line}");
                assert!(line.contains(&item.name), "{kind}: {line}");
            }
            if o.total.is_some() {
                assert!(
                    text.lines().any(|l| l.starts_with("*Total:* R$ ")),
                    "{kind}: the total on a line of its own:\n{text}"
                );
            }
        }
    }
    Ok(())
}

#[test]
fn a_text_that_prints_an_unknown_amount_is_held_naming_template_line_and_variable() -> TestResult {
    let cases = [
        ("Oi\n*Total:* {{ order.total }}", "`order.total`"),
        ("Oi\n\n{{ order.total_cents | brl }}", "`order.total_cents`"),
        (
            "{% for i in order.items %}{{ i.quantity }}x{% endfor %}",
            "`item.quantity`",
        ),
        ("{{ order.shipping_cents + 1 }}", "order.shipping_cents"),
    ];
    for (text, variable) in cases {
        let templates = Templates::compile(&inline(K::OrderPaid, text))?;
        let o = unreadable_amounts(order(0)?);
        let err = templates
            .render(K::OrderPaid, "whatsapp", &context(&o, K::OrderPaid)?)
            .err()
            .ok_or(format!("{text:?} rendered with unknown amounts"))?;
        let message = err.to_string();
        assert!(message.contains(variable), "{text:?}: {message}");
        assert!(
            message.contains("inline template for"),
            "{text:?}: {message}"
        );
        if variable.starts_with('`') {
            assert!(
                matches!(err, TemplateError::MissingValue { .. }),
                "{text:?}: {err:?}"
            );
        }
    }
    // The same texts render normally when the amounts are known.
    let templates = Templates::compile(&inline(K::OrderPaid, "Oi\n*Total:* {{ order.total }}"))?;
    let text = render(&templates, &order(0)?, K::OrderPaid)?;
    assert!(text.contains("*Total:* R$ 1.234,56"), "{text}");
    Ok(())
}

#[test]
fn unknown_amounts_are_null_in_json_and_known_ones_plain() -> TestResult {
    let o = unreadable_amounts(order(0)?);
    let json = serde_json::to_value(context(&o, K::OrderPaid)?)?;
    assert_eq!(json["order"]["total"], serde_json::Value::Null);
    assert_eq!(
        json["order"]["items"][0]["quantity"],
        serde_json::Value::Null
    );
    let json = serde_json::to_value(context(&order(0)?, K::OrderPaid)?)?;
    assert_eq!(json["order"]["total_cents"], 123_456);
    Ok(())
}

// ---------------------------------------------------------------- overrides

#[test]
fn inline_and_per_channel_templates_override_the_defaults() -> TestResult {
    let mut config = inline(
        K::OrderPaid,
        "Pago: {{ order.number }} — {{ order.total_cents | brl }}",
    );
    config.by_channel.insert(
        ("telegram".into(), K::OrderPaid),
        TemplateSource::Inline {
            text: "<b>{{ order.number }}</b>".into(),
            config_key: "channels.telegram.templates.order-paid".into(),
        },
    );
    let templates = Templates::compile(&config)?;
    let ctx = context(&order(0)?, K::OrderPaid)?;
    assert_eq!(
        templates.render(K::OrderPaid, "whatsapp", &ctx)?,
        "Pago: 1042 — R$ 1.234,56"
    );
    assert_eq!(
        templates.render(K::OrderPaid, "telegram", &ctx)?,
        "<b>1042</b>",
        "no HTML escaping"
    );
    assert_eq!(
        templates.origin(K::OrderPaid, "whatsapp"),
        Some("inline template for notifications.order-paid.template")
    );
    // Other kinds keep their defaults.
    assert!(
        templates
            .render(
                K::OrderShipped,
                "whatsapp",
                &context(&order(0)?, K::OrderShipped)?
            )?
            .contains("foi enviado")
    );
    Ok(())
}

#[test]
fn file_templates_are_read_and_extras_can_be_guarded() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("pago.txt");
    std::fs::write(
        &path,
        "Olá {{ customer.first_name }}!\n{% if order.extras.cupom is defined %}Cupom: {{ order.extras.cupom }}{% endif %}\n",
    )?;
    let mut config = TemplateConfig::default();
    config
        .by_kind
        .insert(K::OrderPaid, TemplateSource::File { path: path.clone() });
    let templates = Templates::compile(&config)?;
    assert_eq!(
        render(&templates, &order(0)?, K::OrderPaid)?,
        "Olá Ana!\nCupom: PRIMEIRACOMPRA"
    );
    assert_eq!(render(&templates, &order(1)?, K::OrderPaid)?, "Olá João!");
    assert_eq!(
        templates.origin(K::OrderPaid, "x"),
        Some(path.display().to_string().as_str())
    );
    Ok(())
}

#[test]
fn provider_template_parameters_render_positional_and_named() -> TestResult {
    let mut config = TemplateConfig::default();
    config.provider.insert(
        ("whatsapp-oficial".into(), K::OrderShipped),
        ProviderTemplateSpec {
            name: "pedido_enviado_v2".into(),
            language: "pt_BR".into(),
            positional: vec![
                "customer.first_name".into(),
                "order.number".into(),
                "tracking.code or 'em breve'".into(),
                "{{ order.items|length }} itens, {{ order.total }}".into(),
            ],
            named: vec![("loja".into(), "store.description".into())],
            config_key: "channels.whatsapp-oficial.templates.order-shipped".into(),
        },
    );
    let templates = Templates::compile(&config)?;
    let rendered = templates
        .render_provider(
            K::OrderShipped,
            "whatsapp-oficial",
            &context(&order(0)?, K::OrderShipped)?,
        )?
        .ok_or("no provider template")?;
    assert_eq!(rendered.name, "pedido_enviado_v2");
    assert_eq!(rendered.language, "pt_BR");
    assert_eq!(
        rendered.positional,
        vec!["Ana", "1042", "QB123456789BR", "3 itens, R$ 1.234,56"]
    );
    assert_eq!(
        rendered.named,
        vec![("loja".to_owned(), "Ateliê Flor de Lis".to_owned())]
    );
    let bare = templates
        .render_provider(
            K::OrderShipped,
            "whatsapp-oficial",
            &context(&order(1)?, K::OrderShipped)?,
        )?
        .ok_or("no provider template")?;
    assert_eq!(bare.positional[2], "em breve");
    assert!(
        templates
            .render_provider(
                K::OrderPaid,
                "whatsapp-oficial",
                &context(&order(0)?, K::OrderPaid)?
            )?
            .is_none()
    );
    Ok(())
}

// ---------------------------------------------------------------- errors

#[test]
fn unknown_variable_names_inline_template_line_and_variable() -> TestResult {
    let errors = compile_error(&inline(
        K::OrderShipped,
        "Olá {{ customer.first_name }}\nTotal: {{ order.totl }}",
    ))?;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        matches!(&errors[0], TemplateError::UnknownVariable { template, line: Some(2), variable }
            if template == "inline template for notifications.order-shipped.template" && variable == "order.totl"),
        "{:?}",
        errors[0]
    );
    assert_eq!(
        errors[0].to_string(),
        "inline template for notifications.order-shipped.template, line 2: unknown variable `order.totl` \
         (see the variable list in the template documentation)"
    );
    Ok(())
}

#[test]
fn unknown_variable_in_a_branch_no_sample_takes_is_still_found() -> TestResult {
    let text = "Oi\n{% if order.total_cents > 100000000 %}\n{{ cliente.nome }}\n{% endif %}";
    let errors = compile_error(&inline(K::OrderPaid, text))?;
    assert!(
        matches!(&errors[0], TemplateError::UnknownVariable { line: Some(3), variable, .. } if variable == "cliente.nome"),
        "{errors:?}"
    );
    Ok(())
}

#[test]
fn unknown_loop_attribute_is_found_by_the_sample_render() -> TestResult {
    let text = "Itens:\n{% for item in order.items %}\n- {{ item.nme }}\n{% endfor %}";
    let errors = compile_error(&inline(K::OrderPaid, text))?;
    assert_eq!(
        errors.len(),
        1,
        "one error even though three samples fail: {errors:?}"
    );
    assert!(
        matches!(&errors[0], TemplateError::UnknownVariable { line: Some(3), variable, .. } if variable == "item.nme"),
        "{errors:?}"
    );
    Ok(())
}

#[test]
fn syntax_error_names_the_file_and_line() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path: PathBuf = dir.path().join("order-shipped.txt");
    std::fs::write(
        &path,
        "Olá {{ customer.first_name }}!\n\n{% if tracking.code %}\nCódigo: {{ tracking.code }\n{% endif %}\n",
    )?;
    let mut config = TemplateConfig::default();
    config
        .by_kind
        .insert(K::OrderShipped, TemplateSource::File { path: path.clone() });
    let errors = compile_error(&config)?;
    let [
        TemplateError::Syntax {
            template,
            line,
            message,
        },
    ] = errors.as_slice()
    else {
        panic!("expected one syntax error: {errors:?}")
    };
    assert_eq!(template, &path.display().to_string());
    assert_eq!(*line, Some(4));
    assert!(message.contains("end of variable block"), "{message}");
    assert!(
        errors[0]
            .to_string()
            .starts_with(&format!("{}, line 4: syntax error:", path.display()))
    );
    Ok(())
}

#[test]
fn unknown_filter_and_missing_file_are_reported() -> TestResult {
    let errors = compile_error(&inline(K::OrderPaid, "Oi\n{{ order.total | reais }}"))?;
    let text = errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        text.contains("inline template for notifications.order-paid.template, line 2"),
        "{text}"
    );
    assert!(text.contains("reais"), "{text}");

    let mut config = TemplateConfig::default();
    config.by_kind.insert(
        K::OrderPaid,
        TemplateSource::File {
            path: "/nonexistent/arauto/pago.txt".into(),
        },
    );
    let errors = compile_error(&config)?;
    assert!(matches!(&errors[0], TemplateError::Read { path, .. } if path.ends_with("pago.txt")));
    assert!(
        errors[0]
            .to_string()
            .starts_with("cannot read template file /nonexistent/arauto/pago.txt")
    );
    Ok(())
}

#[test]
fn provider_parameter_errors_name_the_parameter() -> TestResult {
    let mut config = TemplateConfig::default();
    config.provider.insert(
        ("wa".into(), K::OrderShipped),
        ProviderTemplateSpec {
            name: "x".into(),
            language: "pt_BR".into(),
            positional: vec!["customer.first_name".into(), "order.rastreio".into()],
            named: Vec::new(),
            config_key: "channels.wa.templates.order-shipped".into(),
        },
    );
    let errors = compile_error(&config)?;
    assert!(
        matches!(&errors[0], TemplateError::UnknownVariable { template, variable, .. }
            if template == "provider template parameter channels.wa.templates.order-shipped.positional[1]" && variable == "order.rastreio"),
        "{errors:?}"
    );
    Ok(())
}

#[test]
fn all_errors_are_reported_together() -> TestResult {
    let mut config = inline(K::OrderPaid, "{{ order.x }}");
    config.by_kind.insert(
        K::OrderShipped,
        TemplateSource::Inline {
            text: "{% if %}".into(),
            config_key: "notifications.order-shipped.template".into(),
        },
    );
    let errors = compile_error(&config)?;
    assert_eq!(errors.len(), 2, "{errors:?}");
    Ok(())
}

#[test]
fn extras_missing_at_send_time_is_a_named_render_error() -> TestResult {
    let templates = Templates::compile(&inline(K::OrderPaid, "Cupom: {{ order.extras.cupom }}"))?;
    // The sample order has it; an order without it fails at render time, naming the variable.
    let mut o = order(0)?;
    o.extras = serde_json::json!({});
    let err = templates
        .render(K::OrderPaid, "whatsapp", &context(&o, K::OrderPaid)?)
        .err()
        .ok_or("rendered")?;
    assert!(
        matches!(&err, TemplateError::UnknownVariable { variable, line: Some(1), .. } if variable == "order.extras.cupom"),
        "{err:?}"
    );
    Ok(())
}

#[test]
fn the_embedded_defaults_are_the_shipped_files() -> TestResult {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/templates/pt-BR");
    for kind in K::ALL {
        let on_disk = std::fs::read_to_string(dir.join(format!("{kind}.txt")))?;
        assert_eq!(on_disk, default_template(kind), "{kind}");
    }
    Ok(())
}

// ---------------------------------------------------------------- hostile input (issue 18)

#[test]
fn a_runaway_template_fails_validation_quickly_naming_the_template() -> TestResult {
    let started = std::time::Instant::now();
    let errors = compile_error(&inline(
        K::OrderPaid,
        "Oi\n{% for i in range(10000) %}{% for j in range(10000) %}{{ i }}{% endfor %}{% endfor %}",
    ))?;
    let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert!(
        shown.iter().any(
            |e| e.contains("inline template for notifications.order-paid.template")
                && e.contains("too much work")
        ),
        "{shown:?}"
    );
    assert_eq!(
        errors[0].config_key(),
        Some("notifications.order-paid.template")
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    Ok(())
}

#[test]
fn hostile_customer_text_is_cleaned_and_capped_in_every_variable() -> TestResult {
    let text = "Olá {{ customer.first_name }}!\nNome: {{ customer.name }}\n\
                Rastreio: {{ tracking.code }}\nItem: {{ order.items[0].name }}\n\
                Pagamento: {{ order.payment_method }}\nFim";
    let templates = Templates::compile(&inline(K::TrackingUpdated, text))?;
    let mut hostile = order(0)?;
    hostile.customer.first_name = "\u{202E}anA\u{202C}".into();
    hostile.customer.name = format!("Ana\u{200B}\u{2066} Silva{}", "x".repeat(10_000));
    let code = "QB123\nLIGUE 0800 000 000";
    if hostile.shipments.is_empty() {
        return Err("sample 0 has no shipment".into());
    }
    hostile.shipments[0].tracking_code = Some(code.into());
    if let Some(item) = hostile.items.first_mut() {
        item.name = "Vaso\u{200F}\u{7} azul\r\n".into();
    }
    let ctx = TemplateContext::new(
        &hostile,
        K::TrackingUpdated,
        &store()?,
        Some(&TrackingRef {
            shipment_id: hostile.shipments[0].id.clone(),
            code: code.into(),
        }),
    );
    let out = templates.render(K::TrackingUpdated, "whatsapp", &ctx)?;
    let lines: Vec<&str> = out.lines().collect();
    // Only the template's own line breaks remain.
    assert_eq!(lines.len(), 6, "{out}");
    assert_eq!(lines[0], "Olá anA!");
    let name = lines[1].strip_prefix("Nome: ").ok_or("name line")?;
    assert!(name.starts_with("Ana Silvaxxx"), "{name}");
    assert_eq!(name.chars().count(), 100, "{name}");
    assert!(name.ends_with('…'), "{name}");
    assert_eq!(lines[2], "Rastreio: QB123 LIGUE 0800 000 000");
    assert_eq!(lines[3], "Item: Vaso azul");
    assert!(
        !out.chars().any(|c| (c.is_control() && c != '\n')
            || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')),
        "{out:?}"
    );

    // The defaults get the same treatment.
    let shipped = render(&defaults()?, &hostile, K::OrderShipped)?;
    assert!(
        !shipped.contains('\u{202E}') && !shipped.contains("QB123\n"),
        "{shipped}"
    );
    assert!(!shipped.contains(&"x".repeat(100)), "{shipped}");
    Ok(())
}
