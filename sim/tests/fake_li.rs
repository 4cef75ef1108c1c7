//! The fake Loja Integrada API over real HTTP: paging and clamping, ordering,
//! authentication, shapes, faults and the request log.

// All test code: with this, clippy's allow-unwrap/expect-in-tests covers the
// helper functions too, not only the #[test] ones (see clippy.toml).
#![cfg(test)]

use std::time::Duration;

use arauto_sim::li::{
    ClienteForm, Customer, Endpoint, FakeLi, Fault, MoneyFormat, Order, Route, SearchOrder,
    Shipment, StoreAuth,
};
use jiff::SignedDuration;
use jiff::civil::date;
use serde_json::Value;

const KEY: &str = "chave_api K123 aplicacao APP9";

struct Reply {
    status: u16,
    retry_after: Option<String>,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

fn get(li: &FakeLi, path: &str, auth: Option<&str>) -> Reply {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut request = agent.get(&format!("{}{path}", li.base_url()));
    if let Some(auth) = auth {
        request = request.header("Authorization", auth);
    }
    let mut response = request.call().expect("HTTP request to the fake");
    Reply {
        status: response.status().as_u16(),
        retry_after: response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: response.body_mut().read_to_string().expect("body"),
    }
}

fn fake_with_store() -> (FakeLi, arauto_sim::li::LiStore) {
    let li = FakeLi::start_blocking().expect("start fake LI");
    let store = li.add_store(StoreAuth::api_key("K123", "APP9").and_personal_token("tok-1"));
    (li, store)
}

#[test]
fn search_clamps_limit_to_50_and_links_next_pages_under_api_v1() {
    let (li, store) = fake_with_store();
    for _ in 0..120 {
        store.create_order(Order::new());
    }
    let first = get(
        &li,
        "/v1/pedido/search/?since_atualizado=2024-05-10T08:00:00&limit=500",
        Some(KEY),
    )
    .json();
    assert_eq!(first["meta"]["limit"], 50);
    assert_eq!(first["meta"]["total_count"], 120);
    assert_eq!(first["objects"].as_array().unwrap().len(), 50);
    assert_eq!(
        first["meta"]["next"],
        "/api/v1/pedido/search/?since_atualizado=2024-05-10T08%3A00%3A00&limit=50&offset=50"
    );
    assert_eq!(first["meta"]["previous"], Value::Null);

    let last = get(
        &li,
        "/api/v1/pedido/search?since_atualizado=2024-05-10T08%3A00%3A00&limit=50&offset=100",
        Some(KEY),
    )
    .json();
    assert_eq!(last["objects"].as_array().unwrap().len(), 20);
    assert_eq!(last["meta"]["next"], Value::Null);
    assert_eq!(last["meta"]["offset"], 100);

    let default = get(&li, "/v1/pedido/search/", Some(KEY)).json();
    assert_eq!(default["meta"]["limit"], 20, "LI's default page size");
    let zero = get(&li, "/v1/pedido/search/?limit=0", Some(KEY)).json();
    assert_eq!(zero["meta"]["limit"], 50, "limit=0 means the maximum");
}

#[test]
fn search_filters_inclusively_by_modification_and_orders_oldest_first() {
    let (li, store) = fake_with_store();
    let at = |h, m| date(2024, 5, 10).at(h, m, 0, 0);
    let a = store.create_order(Order::new().modified_at(at(9, 0)));
    let b = store.create_order(Order::new().modified_at(at(8, 0)));
    let c = store.create_order(Order::new().modified_at(at(10, 0)));
    let numeros = |body: &Value| -> Vec<u64> {
        body["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["numero"].as_u64().unwrap())
            .collect()
    };
    let body = get(
        &li,
        "/v1/pedido/search/?since_atualizado=2024-05-10T09:00:00",
        Some(KEY),
    )
    .json();
    assert_eq!(
        numeros(&body),
        vec![a, c],
        "inclusive since, ascending data_modificacao"
    );
    assert_eq!(
        body["objects"][0]["data_modificacao"],
        "2024-05-10T09:00:00"
    );
    assert!(
        body["objects"][0]["cliente"]
            .as_str()
            .unwrap()
            .starts_with("/api/v1/cliente/"),
        "search rows carry cliente as a URI"
    );
    // "a hora é opcional"
    let body = get(
        &li,
        "/v1/pedido/search/?since_atualizado=2024-05-10",
        Some(KEY),
    )
    .json();
    assert_eq!(numeros(&body), vec![b, a, c]);

    store.configure(|o| o.order = SearchOrder::ModifiedDesc);
    assert_eq!(
        numeros(&get(&li, "/v1/pedido/search/", Some(KEY)).json()),
        vec![c, a, b]
    );
    store.configure(|o| o.order = SearchOrder::NumeroAsc);
    assert_eq!(
        numeros(&get(&li, "/v1/pedido/search/", Some(KEY)).json()),
        vec![a, b, c]
    );

    store.set_status(b, "pedido_pago").unwrap();
    let paid = get(&li, "/v1/pedido/search/?situacao_id=4", Some(KEY)).json();
    assert_eq!(numeros(&paid), vec![b]);
    let from_c = get(
        &li,
        &format!("/v1/pedido/search/?since_numero={c}"),
        Some(KEY),
    )
    .json();
    assert_eq!(numeros(&from_c), vec![c]);

    let bad = get(&li, "/v1/pedido/search/?since_atualizado=ontem", Some(KEY));
    assert_eq!(bad.status, 400);
}

#[test]
fn modifications_move_orders_and_stamp_distinct_increasing_times() {
    let (li, store) = fake_with_store();
    let first = store.create_order(Order::new());
    let second = store.create_order(Order::new());
    let t1 = store.order(first).unwrap().modified_at.unwrap();
    let t2 = store.order(second).unwrap().modified_at.unwrap();
    assert!(t2 > t1, "each stamped mutation advances the manual clock");
    li.advance(SignedDuration::from_mins(5));
    let t3 = store.set_status(first, "pedido_pago").unwrap();
    assert_eq!(t3, date(2024, 5, 10).at(9, 5, 0, 2_000_000));
    let body = get(&li, "/v1/pedido/search/", Some(KEY)).json();
    assert_eq!(
        body["objects"][1]["numero"], first,
        "the modified order moved to the end"
    );
    assert_eq!(body["objects"][1]["situacao"]["codigo"], "pedido_pago");
    assert_eq!(
        body["objects"][1]["data_modificacao"],
        "2024-05-10T09:05:00.002000"
    );

    let history = get(
        &li,
        &format!("/v1/situacao_historico/search?numero={first}"),
        Some(KEY),
    )
    .json();
    let rows = history["objects"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[1]["situacao_anterior"]["codigo"],
        "aguardando_pagamento"
    );
    assert_eq!(rows[1]["situacao"]["codigo"], "pedido_pago");
}

#[test]
fn authentication_accepts_both_modes_and_rejects_the_rest() {
    let (li, store) = fake_with_store();
    assert_eq!(get(&li, "/v1/situacao/", Some(KEY)).status, 200);
    assert_eq!(get(&li, "/v1/situacao/", Some("Basic tok-1")).status, 200);
    assert_eq!(
        get(
            &li,
            "/v1/situacao/?chave_api=K123&chave_aplicacao=APP9",
            None
        )
        .status,
        200
    );
    assert_eq!(get(&li, "/v1/situacao/", None).status, 401);
    assert_eq!(
        get(&li, "/v1/situacao/", Some("chave_api K123 aplicacao OTHER")).status,
        401
    );
    assert_eq!(
        get(&li, "/v1/situacao/", Some("Basic dG9rLTE=")).status,
        401,
        "the token is sent raw"
    );
    store.reject_auth(Some(403));
    let rejected = get(&li, "/v1/situacao/", Some(KEY));
    assert_eq!(rejected.status, 403);
    assert!(rejected.json()["error_message"].is_string());
    store.reject_auth(None);
    assert_eq!(get(&li, "/v1/situacao/", Some(KEY)).status, 200);

    let other = li.add_store(StoreAuth::personal_token("tok-2"));
    other.create_order(Order::new());
    let body = get(&li, "/v1/pedido/search/", Some("Basic tok-2")).json();
    assert_eq!(body["meta"]["total_count"], 1, "stores are separate");
    assert_eq!(
        get(&li, "/v1/pedido/search/", Some(KEY)).json()["meta"]["total_count"],
        0
    );
}

#[test]
fn faults_fire_the_requested_number_of_times_on_matching_routes() {
    let (li, store) = fake_with_store();
    let numero = store.create_order(Order::new());
    store.fail(
        Route::Detail,
        Fault::TooManyRequests {
            retry_after_secs: Some(7),
        },
        2,
    );
    store.fail(Route::Search, Fault::Status(500), 1);

    assert_eq!(
        get(&li, "/v1/situacao/", Some(KEY)).status,
        200,
        "other routes unaffected"
    );
    let limited = get(&li, &format!("/v1/pedido/{numero}"), Some(KEY));
    assert_eq!(limited.status, 429);
    assert_eq!(limited.retry_after.as_deref(), Some("7"));
    assert_eq!(limited.json()["codigo"], 633);
    assert_eq!(
        get(&li, &format!("/v1/pedido/{numero}"), Some(KEY)).status,
        429
    );
    assert_eq!(
        get(&li, &format!("/v1/pedido/{numero}"), Some(KEY)).status,
        200
    );
    assert_eq!(get(&li, "/v1/pedido/search/", Some(KEY)).status, 500);
    assert_eq!(get(&li, "/v1/pedido/search/", Some(KEY)).status, 200);

    store.fail(Route::Any, Fault::Garbage, 1);
    let garbage = get(&li, "/v1/pedido/search/", Some(KEY));
    assert_eq!(garbage.status, 200);
    assert!(garbage.body.starts_with("<html>"));

    store.fail(Route::Search, Fault::Delay(Duration::from_millis(300)), 1);
    let started = std::time::Instant::now();
    assert_eq!(get(&li, "/v1/pedido/search/", Some(KEY)).status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[test]
fn disconnect_and_oversized_faults_break_the_answer() {
    let (li, store) = fake_with_store();
    store.fail(Route::Search, Fault::Disconnect, 1);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let url = format!("{}/v1/pedido/search/", li.base_url());
    let reset = agent
        .get(&url)
        .header("Authorization", KEY)
        .call()
        .and_then(|mut r| r.body_mut().read_to_string());
    assert!(reset.is_err(), "the connection is dropped: {reset:?}");
    assert_eq!(get(&li, "/v1/pedido/search/", Some(KEY)).status, 200);

    store.fail(Route::Search, Fault::Oversized(3 * 1024 * 1024), 1);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut big = agent
        .get(&url)
        .header("Authorization", KEY)
        .call()
        .expect("oversized answer");
    assert_eq!(big.status().as_u16(), 200);
    let body = big
        .body_mut()
        .with_config()
        .limit(8 * 1024 * 1024)
        .read_to_string()
        .expect("body");
    assert_eq!(body.len(), 3 * 1024 * 1024);
    let page: Value = serde_json::from_str(&body).expect("still JSON");
    assert_eq!(page["objects"], Value::Array(Vec::new()));
}

#[test]
fn rate_limit_answers_429_past_the_per_minute_budget() {
    let (li, store) = fake_with_store();
    store.configure(|o| o.rate_limit_per_minute = Some(3));
    for _ in 0..3 {
        assert_eq!(get(&li, "/v1/situacao/", Some(KEY)).status, 200);
    }
    assert_eq!(get(&li, "/v1/situacao/", Some(KEY)).status, 429);
}

#[test]
fn detail_has_everything_and_honours_the_shape_switches() {
    let (li, store) = fake_with_store();
    let numero = store.create_order(
        Order::new()
            .customer(
                Customer::new("João Teste Souza")
                    .mobile("21900000002")
                    .phone("2130000002"),
            )
            .shipments(vec![Shipment::sedex(2138).tracking("AA123456785BR")])
            .payment(arauto_sim::li::Payment::credit_card(2))
            .status("pedido_enviado"),
    );
    let detail = get(&li, &format!("/api/v1/pedido/{numero}"), Some(KEY)).json();
    assert_eq!(detail["cliente"]["nome"], "João Teste Souza");
    assert_eq!(detail["cliente"]["telefone_principal"], "2130000002");
    assert_eq!(detail["envios"][0]["objeto"], "AA123456785BR");
    assert_eq!(detail["envios"][0]["forma_envio"]["code"], "03220");
    assert_eq!(detail["itens"][0]["preco_venda"], "89.9000");
    assert_eq!(detail["valor_total"], "111.28");
    assert_eq!(
        detail["pagamentos"][0]["parcelamento"]["numero_parcelas"],
        2
    );
    assert_eq!(
        detail["pagamentos"][0]["parcelamento"]["valor_parcela"],
        55.64
    );
    assert_eq!(
        detail["pagamentos"][0]["valor_pago"], "111.28",
        "pedido_enviado is approved"
    );
    assert_eq!(detail["situacao"]["id"], 11);

    store.configure(|o| {
        o.cliente = ClienteForm::Uri;
        o.money = MoneyFormat::Numbers;
        o.uri_prefix = "/v1".into();
    });
    let detail = get(&li, &format!("/v1/pedido/{numero}"), Some(KEY)).json();
    let uri = detail["cliente"].as_str().unwrap().to_owned();
    assert!(uri.starts_with("/v1/cliente/"), "{uri}");
    assert_eq!(detail["valor_total"], 111.28);
    let customer = get(&li, &uri, Some(KEY)).json();
    assert_eq!(customer["telefone_celular"], "21900000002");

    store.delete(numero).unwrap();
    let gone = get(&li, &format!("/v1/pedido/{numero}"), Some(KEY));
    assert_eq!(gone.status, 404);
    assert_eq!(
        get(&li, "/v1/pedido/search/", Some(KEY)).json()["meta"]["total_count"],
        0
    );
}

#[test]
fn catalogue_lists_16_codes_or_13_for_legacy_stores_plus_custom_ones() {
    let (li, store) = fake_with_store();
    let body = get(&li, "/v1/situacao/?limit=50", Some(KEY)).json();
    assert_eq!(body["meta"]["total_count"], 16);
    let limited = get(&li, "/v1/situacao/?limit=1", Some(KEY)).json();
    assert_eq!(limited["objects"].as_array().unwrap().len(), 1);
    store.configure(|o| o.catalogue = arauto_sim::li::Catalogue::Legacy);
    store.add_custom_status(
        3001,
        "aguardando_retirada_loja",
        "Aguardando retirada na loja",
    );
    let body = get(&li, "/v1/situacao/?limit=50", Some(KEY)).json();
    assert_eq!(body["meta"]["total_count"], 14);
    assert_eq!(
        get(&li, "/v1/situacao/3001", Some(KEY)).json()["codigo"],
        "aguardando_retirada_loja"
    );
}

#[test]
fn the_request_log_records_path_query_auth_store_and_status() {
    let (li, store) = fake_with_store();
    let numero = store.create_order(Order::new());
    get(
        &li,
        "/v1/pedido/search/?since_atualizado=2024-05-10T08%3A00%3A00&limit=50&offset=0",
        Some(KEY),
    );
    get(&li, &format!("/v1/pedido/{numero}"), Some("Basic nope"));
    let log = li.requests();
    assert_eq!(log.len(), 2);
    assert!(log[0].is_search());
    assert_eq!(
        log[0].query_param("since_atualizado"),
        Some("2024-05-10T08:00:00")
    );
    assert_eq!(log[0].authorization.as_deref(), Some(KEY));
    assert_eq!(log[0].store, Some(store.id()));
    assert_eq!(log[0].status, 200);
    assert_eq!(log[1].endpoint, Endpoint::Detail(numero));
    assert_eq!(log[1].store, None);
    assert_eq!(log[1].status, 401);
    assert_eq!(store.requests().len(), 1);
    li.clear_requests();
    assert!(li.requests().is_empty());
}

#[test]
fn request_actions_change_the_store_at_an_exact_request() {
    let (li, store) = fake_with_store();
    let numero = store.create_order(Order::new());
    store.on_request(Route::Detail, 2, move |s| {
        s.set_status(numero, "pedido_pago").unwrap();
    });
    let path = format!("/v1/pedido/{numero}");
    assert_eq!(
        get(&li, "/v1/pedido/search/", Some(KEY)).status,
        200,
        "other routes do not count"
    );
    assert_eq!(
        get(&li, &path, Some(KEY)).json()["situacao"]["codigo"],
        "aguardando_pagamento"
    );
    assert_eq!(
        get(&li, &path, Some(KEY)).json()["situacao"]["codigo"],
        "pedido_pago",
        "applied before answering"
    );
    assert_eq!(store.history(numero).len(), 2);
}
