//! Property tests over hostile input for every parser that reads what LI (or
//! a stored cursor) hands the connector: search rows, order details, the
//! cursor, timestamps, amounts and durations.
//!
//! The properties: no panic; no hang (each case must finish well within a
//! second on bounded input); and every value that is rejected is named — an
//! unreadable amount or quantity by a warning naming its field, a rejected
//! cursor by an error naming its field, a row without a usable key by
//! `change_key` being `None` (the caller logs "without a numero or a readable
//! data_modificacao").
//!
//! cargo-fuzz needs a nightly toolchain, so these run as ordinary tests:
//! 64 cases each by default (a second or two); `PROPTEST_CASES=100000 cargo
//! test --release -p loja-integrada --lib fuzz` soaks them. Failures found are
//! kept in `proptest-regressions/fuzz.txt` and replayed first on every run.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use crate::cursor::Cursor;
use crate::mapping::{self, ChangeKey};
use crate::money::{self, Decimal};
use crate::time::{format_micros, from_rfc3339, parse_duration, parse_li, rfc3339};

/// Generous for one case of bounded input even on a loaded machine; a hang
/// (an endless loop, quadratic blow-up) is far beyond it.
const CASE_BUDGET: Duration = Duration::from_secs(5);

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

/// Strings LI (or something in between) might put where a value belongs.
fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("   ".to_owned()),
        Just("abc".to_owned()),
        Just("R$ 10,00".to_owned()),
        Just("1,234.56".to_owned()),
        Just("99999999999999999999999.99".to_owned()),
        Just("-92233720368547758.08".to_owned()),
        Just("1e400".to_owned()),
        Just("NaN".to_owned()),
        Just("-".to_owned()),
        Just(".".to_owned()),
        Just("0.0000000000000000000001".to_owned()),
        Just("2099-01-01T00:00:00".to_owned()),
        Just("0000-00-00T00:00:00".to_owned()),
        Just("9999-12-31T23:59:59.999999".to_owned()),
        Just("-009999-01-01T00:00:00".to_owned()),
        Just("2024-05-10T09:12:47.556120Z".to_owned()),
        Just("2024-02-30T10:00:00".to_owned()),
        Just("/api/v1/situacao/".to_owned()),
        Just("/api/v1/situacao/99999999999999999999".to_owned()),
        Just("\u{202e}abc\u{200b}".to_owned()),
        Just("٣٤.٥".to_owned()),
        "[0-9]{1,40}(\\.[0-9]{0,30})?",
        "-?[0-9]{0,6}[.,]?[0-9]{0,6}",
        "[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]{1,9})?)?(Z|[+-][0-9]{2}:[0-9]{2})?",
        ".{0,40}",
    ]
}

/// Any JSON value, hostile leaves, bounded depth and width.
fn hostile_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        hostile_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((field_name(), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("codigo".to_owned()),
        Just("id".to_owned()),
        Just("nome".to_owned()),
        Just("objeto".to_owned()),
        Just("forma_envio".to_owned()),
        Just("forma_pagamento".to_owned()),
        Just("parcelamento".to_owned()),
        Just("numero_parcelas".to_owned()),
        Just("valor_parcela".to_owned()),
        Just("telefone_celular".to_owned()),
        Just("email".to_owned()),
        "[a-z_]{1,12}",
    ]
}

/// A value for `key`: usually plausible, often hostile, sometimes absent.
fn slot(plausible: BoxedStrategy<Value>) -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        3 => plausible.prop_map(Some),
        2 => hostile_json().prop_map(Some),
        1 => Just(None),
    ]
}

fn amount() -> BoxedStrategy<Value> {
    prop_oneof![
        (0u64..10_000_000, 0u32..100).prop_map(|(r, c)| json!(format!("{r}.{c:02}"))),
        (0u64..10_000_000).prop_map(|c| json!(c as f64 / 100.0)),
    ]
    .boxed()
}

fn timestamp() -> BoxedStrategy<Value> {
    (
        2000i16..2100,
        1i8..=12,
        1i8..=28,
        0i8..24,
        0i8..60,
        0i32..1_000_000,
    )
        .prop_map(|(y, mo, d, h, mi, us)| {
            json!(format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:00.{us:06}"))
        })
        .boxed()
}

fn situacao() -> BoxedStrategy<Value> {
    prop_oneof![
        "[a-z_]{1,20}".prop_map(|c| json!({"codigo": c, "nome": "Nome", "id": 4})),
        (0u64..2000).prop_map(|id| json!(format!("/api/v1/situacao/{id}"))),
        (0u64..2000).prop_map(|id| json!(id)),
    ]
    .boxed()
}

fn item() -> BoxedStrategy<Value> {
    let keys = (
        slot(amount()),
        slot(amount()),
        slot((1u32..10).prop_map(|q| json!(format!("{q}.000"))).boxed()),
        slot("[A-Z-]{1,10}".prop_map(Value::String).boxed()),
        slot(".{0,20}".prop_map(Value::String).boxed()),
    );
    prop_oneof![
        5 => keys.prop_map(|(preco_venda, preco_cheio, quantidade, sku, nome)| {
            let mut m = Map::new();
            for (k, v) in [
                ("preco_venda", preco_venda),
                ("preco_cheio", preco_cheio),
                ("quantidade", quantidade),
                ("sku", sku),
                ("nome", nome),
            ] {
                if let Some(v) = v {
                    m.insert(k.to_owned(), v);
                }
            }
            Value::Object(m)
        }),
        1 => hostile_json(),
    ]
    .boxed()
}

/// An LI order document (search row or detail), every field in danger.
fn order_doc() -> impl Strategy<Value = Value> {
    let head = (
        slot((1u64..10_000_000).prop_map(|n| json!(n)).boxed()),
        slot(timestamp()),
        slot(timestamp()),
        slot(situacao()),
        slot(amount()),
        slot(amount()),
        slot(amount()),
        slot(amount()),
    );
    let tail = (
        slot(
            prop::collection::vec(item(), 0..4)
                .prop_map(Value::Array)
                .boxed(),
        ),
        slot(hostile_json().boxed()),
        slot(hostile_json().boxed()),
        slot(hostile_json().boxed()),
        slot(hostile_json().boxed()),
        slot(hostile_json().boxed()),
    );
    (head, tail).prop_map(
        |(
            (numero, modificacao, criacao, situacao, total, subtotal, envio, desconto),
            (itens, cliente, envios, pagamentos, endereco, extra),
        )| {
            let mut m = Map::new();
            for (k, v) in [
                ("numero", numero),
                ("data_modificacao", modificacao),
                ("data_criacao", criacao),
                ("situacao", situacao),
                ("valor_total", total),
                ("valor_subtotal", subtotal),
                ("valor_envio", envio),
                ("valor_desconto", desconto),
                ("itens", itens),
                ("cliente", cliente),
                ("envios", envios),
                ("pagamentos", pagamentos),
                ("endereco_entrega", endereco),
                ("data_expiracao", extra),
            ] {
                if let Some(v) = v {
                    m.insert(k.to_owned(), v);
                }
            }
            Value::Object(m)
        },
    )
}

const AMOUNTS: [&str; 4] = [
    "valor_total",
    "valor_subtotal",
    "valor_envio",
    "valor_desconto",
];

/// Every amount of the snapshot was either read exactly as `money::cents`
/// reads it, or is unknown with a warning naming the field.
fn amounts_are_read_or_named(
    doc: &Value,
    snapshot: &arauto_plugin_sdk::connector::OrderSnapshot,
    warnings: &[String],
) -> Result<(), TestCaseError> {
    let got = [
        snapshot.total,
        snapshot.subtotal,
        snapshot.shipping,
        snapshot.discount,
    ];
    for (key, money) in AMOUNTS.iter().zip(got) {
        match money::cents(doc.get(*key)) {
            Ok(Some(cents)) => prop_assert_eq!(money.cents, cents, "{}", key),
            _ => {
                prop_assert!(money.is_unknown(), "{} unreadable but not unknown", key);
                prop_assert!(
                    warnings.iter().any(|w| w.starts_with(key)),
                    "{} unknown without a warning naming it: {:?}",
                    key,
                    warnings
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn search_rows_map_or_are_rejected_by_name(row in order_doc()) {
        let started = Instant::now();
        match mapping::change_key(&row) {
            None => {
                // Rejected: no numero, or no readable data_modificacao.
                let numero = row.get("numero").and_then(crate::api::as_u64);
                let modified = row
                    .get("data_modificacao")
                    .and_then(Value::as_str)
                    .and_then(parse_li);
                prop_assert!(numero.is_none() || modified.is_none());
            }
            Some(key) => {
                let (snapshot, warnings) = mapping::summary(&row, &key);
                amounts_are_read_or_named(&row, &snapshot, &warnings.0)?;
                prop_assert_eq!(&snapshot.id, &key.numero.to_string());
                prop_assert!(serde_json::from_str::<Value>(&snapshot.extras_json).is_ok());
                if let Some(Value::Object(s)) = row.get("situacao")
                    && let Some(Value::String(code)) = s.get("codigo")
                    && !code.trim().is_empty()
                {
                    prop_assert_eq!(snapshot.status.code.as_str(), code.trim());
                }
            }
        }
        prop_assert!(started.elapsed() < CASE_BUDGET);
    }

    #[test]
    fn order_details_map_with_every_unreadable_value_named(
        doc in order_doc(),
        template in prop::option::of(".{0,20}\\{code\\}.{0,10}"),
    ) {
        let started = Instant::now();
        let key = mapping::change_key(&doc).unwrap_or(ChangeKey {
            numero: 1,
            status: String::new(),
            modified: jiff::civil::date(2024, 5, 10).at(9, 0, 0, 0),
        });
        let (snapshot, warnings) = mapping::detailed(&doc, &key, None, template.as_deref());
        amounts_are_read_or_named(&doc, &snapshot, &warnings.0)?;
        let objects: Vec<&Value> = doc
            .get("itens")
            .and_then(Value::as_array)
            .map(|items| items.iter().filter(|i| i.is_object()).collect())
            .unwrap_or_default();
        prop_assert_eq!(snapshot.items.len(), objects.len());
        for (i, item) in snapshot.items.iter().enumerate() {
            let context = format!("itens[{i}].");
            if item.quantity.is_empty() {
                let named = format!("{context}quantidade");
                prop_assert!(
                    warnings.0.iter().any(|w| w.starts_with(&named)),
                    "{} unknown without a warning: {:?}", named, warnings.0
                );
            } else {
                prop_assert!(Decimal::parse(&item.quantity).is_some(), "{}", item.quantity);
            }
            if item.unit_price.is_unknown() {
                prop_assert!(
                    warnings.0.iter().any(|w| w.starts_with(&context)),
                    "{}price unknown without a warning: {:?}", context, warnings.0
                );
            }
            if item.total.is_unknown() {
                prop_assert!(
                    warnings.0.iter().any(|w| w.starts_with(&context)),
                    "{}total unknown without a warning: {:?}", context, warnings.0
                );
            }
        }
        prop_assert!(serde_json::from_str::<Value>(&snapshot.extras_json).is_ok());
        prop_assert!(started.elapsed() < CASE_BUDGET);
    }

    #[test]
    fn cursors_decode_or_name_what_is_wrong(text in cursor_text()) {
        let started = Instant::now();
        match Cursor::decode(&text) {
            Ok(mut cursor) => {
                // What decodes is re-encoded in canonical form (a `floor`
                // with a fraction loses it), which then round-trips exactly,
                // and it survives every later step.
                let canonical = cursor.encode();
                let again = Cursor::decode(&canonical);
                prop_assert!(again.is_ok(), "{:?}", again);
                prop_assert_eq!(again.map(|c| c.encode()).ok(), Some(canonical));
                let ceiling = jiff::civil::date(2024, 5, 10).at(9, 10, 0, 0);
                cursor.pull_back_from_future(ceiling);
                prop_assert!(cursor.hw.is_none_or(|hw| hw <= ceiling));
                let overlap = jiff::SignedDuration::from_mins(10);
                let sweep = cursor.begin_sweep(overlap, jiff::SignedDuration::from_hours(24), 0, 50);
                cursor.finish_sweep(&sweep, u64::MAX, overlap, ceiling);
                prop_assert!(cursor.hw.is_none_or(|hw| hw <= ceiling));
            }
            Err(bad) => {
                let named = ["`v`", "`hw`", "`floor`", "`lag_ms`", "`sweep_no`", "`seen`",
                    "`sweep`", "`fail`", "`not_before_ms`", "not a cursor", "cursor version"];
                prop_assert!(named.iter().any(|n| bad.0.contains(n)), "{}", bad.0);
            }
        }
        prop_assert!(started.elapsed() < CASE_BUDGET);
    }

    #[test]
    fn timestamps_parse_to_values_that_round_trip(text in hostile_text()) {
        if let Some(at) = parse_li(&text) {
            prop_assert_eq!(parse_li(&format_micros(at)), Some(at));
            // The RFC 3339 form of the last hours of year 9999 at −03:00
            // lies beyond the largest instant; orders never get there.
            if (1..=9998).contains(&at.year()) {
                prop_assert_eq!(from_rfc3339(&rfc3339(at)), Some(at));
            }
        }
        let _ = from_rfc3339(&text);
        let _ = parse_duration(&text);
    }

    #[test]
    fn amounts_are_exact_or_rejected_never_the_unknown_sentinel(value in hostile_json()) {
        match money::cents(Some(&value)) {
            Ok(Some(cents)) => prop_assert_ne!(cents, i64::MIN),
            Ok(None) => prop_assert!(
                value.is_null() || value.as_str().is_some_and(|s| s.trim().is_empty())
            ),
            Err(bad) => prop_assert!(!bad.0.is_empty()),
        }
    }
}

/// Cursor texts: arbitrary strings, arbitrary JSON, and real cursors with
/// one field replaced by something hostile.
fn cursor_text() -> impl Strategy<Value = String> {
    let real = json!({
        "v": 1, "hw": "2024-05-10T09:12:47.556120", "floor": "2024-05-03T09:00:00",
        "lag_ms": 1200, "sweep_no": 7,
        "seen": [[1001, "aguardando_pagamento", "2024-05-10T09:12:47.556120", 7]],
        "sweep": {"since": "2024-05-10T09:02:46", "offset": 50, "total": 73,
                  "max": "2024-05-10T09:12:47.556120", "started_ms": 1_715_342_400_000_u64,
                  "rescans": 0, "shifted": false},
        "fail": [[1002, 2, 1_715_342_460_000_u64, "pedido_pago", "2024-05-10T09:00:00.000000", false]],
        "not_before_ms": 1_715_342_404_000_u64
    });
    let keys = [
        "v",
        "hw",
        "floor",
        "lag_ms",
        "sweep_no",
        "seen",
        "sweep",
        "fail",
        "not_before_ms",
    ];
    prop_oneof![
        ".{0,80}",
        hostile_json().prop_map(|v| v.to_string()),
        (prop::sample::select(keys.to_vec()), hostile_json()).prop_map(move |(key, value)| {
            let mut doc = real.clone();
            doc[key] = value;
            doc.to_string()
        }),
    ]
}
