//! The HTTP side: routing, authentication, faults, paging.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use jiff::civil::DateTime;
use serde_json::{Value, json};

use super::model::Order;
use super::push::is_notify_url;
use super::render;
use super::{
    Credential, Endpoint, Fault, LiStore, RecordedRequest, SearchOrder, Shared, State, StoreId,
    StoreState, WebhookEvent,
};
use crate::channels::server::FailingBody;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

/// What the path addresses, after stripping `/api` and the trailing slash.
pub(crate) fn endpoint(path: &str) -> Endpoint {
    // On the API host itself, not under the `/v1` resources.
    if path.trim_end_matches('/') == "/webhooks/v1/pedido" {
        return Endpoint::Webhooks;
    }
    let path = path
        .strip_prefix("/api")
        .filter(|p| p.starts_with("/v1/"))
        .unwrap_or(path);
    let Some(rest) = path.strip_prefix("/v1/") else {
        return Endpoint::Unknown;
    };
    let segments: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    match segments.as_slice() {
        ["pedido", "search"] => Endpoint::Search,
        ["pedido", n] => n.parse().map_or(Endpoint::Unknown, Endpoint::Detail),
        ["cliente", id] => id.parse().map_or(Endpoint::Unknown, Endpoint::Cliente),
        ["situacao"] => Endpoint::Situacao(None),
        ["situacao", id] => id
            .parse()
            .map_or(Endpoint::Unknown, |id| Endpoint::Situacao(Some(id))),
        ["situacao_historico", "search"] => Endpoint::History,
        _ => Endpoint::Unknown,
    }
}

/// The credentials of a request: header forms first, then the deprecated query form.
fn credential(headers: &HeaderMap, query: &[(String, String)]) -> Option<Credential> {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let words: Vec<&str> = value.split_whitespace().collect();
        return match words.as_slice() {
            [scheme, key, app_word, app]
                if scheme.eq_ignore_ascii_case("chave_api")
                    && app_word.eq_ignore_ascii_case("aplicacao") =>
            {
                Some(Credential::ApiKey((*key).to_owned(), (*app).to_owned()))
            }
            [scheme, token] if scheme.eq_ignore_ascii_case("basic") => {
                Some(Credential::Token((*token).to_owned()))
            }
            _ => None,
        };
    }
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    Some(Credential::ApiKey(
        param("chave_api")?,
        param("chave_aplicacao")?,
    ))
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    json_response(status, &json!({ "error_message": message }))
}

/// What to do after the bookkeeping under the lock.
enum Plan {
    Respond(Response),
    /// Sleep (outside the lock), then answer normally.
    Delay(std::time::Duration, StoreId),
    Answer(StoreId),
}

async fn handle(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let query: Vec<(String, String)> = form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let endpoint = endpoint(&path);
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);

    let (plan, actions, log_index) = {
        let mut state = shared.lock();
        let store = credential(&headers, &query).and_then(|c| state.credentials.get(&c).copied());
        let log_index = state.record_requests.then(|| {
            state.log.push(RecordedRequest {
                method: method.to_string(),
                path: path.clone(),
                query: query.clone(),
                authorization,
                store,
                endpoint,
                status: 0,
                at: jiff::Timestamp::now(),
            });
            state.log.len() - 1
        });
        let plan = plan(&mut state, &method, endpoint, store);
        let actions = match &plan {
            Plan::Respond(_) => Vec::new(),
            Plan::Delay(_, id) | Plan::Answer(id) => state
                .stores
                .get_mut(*id)
                .map(|s| s.due_actions(endpoint))
                .unwrap_or_default(),
        };
        (plan, actions, log_index)
    };
    for action in actions {
        if let Plan::Delay(_, id) | Plan::Answer(id) = plan {
            action(&LiStore {
                shared: Arc::clone(&shared),
                id,
            });
        }
    }

    let response = match plan {
        Plan::Respond(r) => r,
        Plan::Delay(pause, store) => {
            tokio::time::sleep(pause).await;
            answer(&mut shared.lock(), store, endpoint, &query, &method, &body)
        }
        Plan::Answer(store) => answer(&mut shared.lock(), store, endpoint, &query, &method, &body),
    };
    let mut response = response;
    let answered_at = {
        let mut state = shared.lock();
        if let Some(i) = log_index
            && let Some(entry) = state.log.get_mut(i)
        {
            entry.status = response.status().as_u16();
        }
        state.clock.now()
    };
    // LI's `Date` header is its clock; the fake's is its own (manual or
    // system) clock, so a client can read "now" on LI's side from it.
    if let Ok(value) = HeaderValue::from_str(&http_date(answered_at)) {
        response.headers_mut().insert(header::DATE, value);
    }
    response
}

/// An IMF-fixdate (`Fri, 10 May 2024 12:00:00 GMT`) of a São Paulo wall-clock time.
fn http_date(at: DateTime) -> String {
    super::sao_paulo()
        .to_timestamp(at)
        .map(|ts| ts.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string())
        .unwrap_or_default()
}

fn plan(state: &mut State, method: &Method, endpoint: Endpoint, store: Option<StoreId>) -> Plan {
    let Some(id) = store else {
        return Plan::Respond(error(
            StatusCode::UNAUTHORIZED,
            "Não autorizado: chave_api/aplicacao ou personal token ausente ou inválido",
        ));
    };
    let Some(store) = state.stores.get_mut(id) else {
        return Plan::Respond(error(StatusCode::INTERNAL_SERVER_ERROR, "store vanished"));
    };
    if let Some(status) = store.auth_failure {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::UNAUTHORIZED);
        return Plan::Respond(error(
            status,
            "Não autorizado: credencial revogada ou expirada",
        ));
    }
    if !store.within_rate_limit(Instant::now()) {
        return Plan::Respond(too_many_requests(None));
    }
    let allowed = match endpoint {
        Endpoint::Webhooks => method == Method::PUT || method == Method::DELETE,
        _ => method == Method::GET,
    };
    if !allowed {
        return Plan::Respond(error(
            StatusCode::METHOD_NOT_ALLOWED,
            "método não suportado pelo fake",
        ));
    }
    match store.take_fault(endpoint) {
        None => Plan::Answer(id),
        Some(Fault::Delay(pause)) => Plan::Delay(pause, id),
        Some(Fault::TooManyRequests { retry_after_secs }) => {
            Plan::Respond(too_many_requests(retry_after_secs))
        }
        Some(Fault::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Plan::Respond(error(
                status,
                status.canonical_reason().unwrap_or("erro injetado"),
            ))
        }
        Some(Fault::Disconnect) => Plan::Respond(
            Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::new(FailingBody))
                .unwrap_or_default(),
        ),
        Some(Fault::Oversized(bytes)) => Plan::Respond(oversized(bytes)),
        Some(Fault::Garbage) => Plan::Respond(
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/html")],
                "<html><body><h1>502 Bad Gateway</h1>nginx</body></html>",
            )
                .into_response(),
        ),
    }
}

/// A syntactically valid Tastypie page padded to `bytes` bytes.
fn oversized(bytes: usize) -> Response {
    let head = r#"{"meta": {"limit": 50, "next": null, "offset": 0, "previous": null, "total_count": 0}, "objects": [], "padding": ""#;
    let tail = "\"}";
    let mut body = String::with_capacity(bytes.max(head.len() + tail.len()));
    body.push_str(head);
    body.extend(std::iter::repeat_n(
        'x',
        bytes.saturating_sub(head.len() + tail.len()),
    ));
    body.push_str(tail);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

fn too_many_requests(retry_after_secs: Option<u64>) -> Response {
    // LI's 429 carries the scope code (633 = per store); the body shape is invented.
    let body = json!({ "error_message": "Limite de requisições excedido", "codigo": 633 });
    let mut response = json_response(StatusCode::TOO_MANY_REQUESTS, &body);
    if let Some(secs) = retry_after_secs
        && let Ok(value) = HeaderValue::from_str(&secs.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

fn answer(
    state: &mut State,
    id: StoreId,
    endpoint: Endpoint,
    query: &[(String, String)],
    method: &Method,
    body: &[u8],
) -> Response {
    if endpoint == Endpoint::Webhooks {
        return webhooks(state, id, method, body);
    }
    let Some(store) = state.stores.get(id) else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "store vanished");
    };
    match endpoint {
        Endpoint::Search => match search(store, query) {
            Ok(body) => json_response(StatusCode::OK, &body),
            Err(message) => error(StatusCode::BAD_REQUEST, &message),
        },
        Endpoint::Detail(numero) => match store.orders.get(&numero) {
            Some(order) => {
                let mut body = render::detail(store, order);
                for (pointer, value) in store.detail_overrides.get(&numero).into_iter().flatten() {
                    if let Some(slot) = body.pointer_mut(pointer) {
                        *slot = value.clone();
                    }
                }
                json_response(StatusCode::OK, &body)
            }
            // Tastypie answers an unknown pk with an empty 404.
            None => StatusCode::NOT_FOUND.into_response(),
        },
        Endpoint::Cliente(id) => match render::customer(store, id) {
            Some(body) => json_response(StatusCode::OK, &body),
            None => StatusCode::NOT_FOUND.into_response(),
        },
        Endpoint::Situacao(None) => {
            let rows: Vec<Value> = store
                .statuses()
                .iter()
                .map(|s| render::status_row(store, s))
                .collect();
            match paged(store, "situacao/", query, rows) {
                Ok(body) => json_response(StatusCode::OK, &body),
                Err(message) => error(StatusCode::BAD_REQUEST, &message),
            }
        }
        Endpoint::Situacao(Some(id)) => match store.statuses().iter().find(|s| s.id == id) {
            Some(s) => json_response(StatusCode::OK, &render::status_row(store, s)),
            None => StatusCode::NOT_FOUND.into_response(),
        },
        Endpoint::History => {
            let numero = param(query, "numero").and_then(|n| n.parse::<u64>().ok());
            let rows: Vec<Value> = numero
                .and_then(|n| store.history.get(&n).map(|h| (n, h)))
                .map(|(n, entries)| {
                    entries
                        .iter()
                        .map(|e| render::history_row(store, n, e))
                        .collect()
                })
                .unwrap_or_default();
            match paged(store, "situacao_historico/search/", query, rows) {
                Ok(body) => json_response(StatusCode::OK, &body),
                Err(message) => error(StatusCode::BAD_REQUEST, &message),
            }
        }
        Endpoint::Unknown | Endpoint::Webhooks => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `PUT` (register or re-token) or `DELETE` (remove) an order webhook; the
/// body is `{"notifyUrl": ..., "token": ...}` either way.
fn webhooks(state: &mut State, id: StoreId, method: &Method, body: &[u8]) -> Response {
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "corpo inválido: esperado JSON {\"notifyUrl\": ..., \"token\": ...}",
        );
    };
    let Some(notify_url) = fields
        .get("notifyUrl")
        .and_then(Value::as_str)
        .filter(|url| is_notify_url(url))
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "notifyUrl ausente ou inválido (URL http(s) absoluta)",
        );
    };
    let token = fields.get("token").and_then(Value::as_str).unwrap_or("");
    let Some(store) = state.stores.get_mut(id) else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "store vanished");
    };
    let (affected, event) = if *method == Method::PUT {
        if token.is_empty() {
            return error(StatusCode::BAD_REQUEST, "token ausente");
        }
        store.register_webhook(notify_url, token);
        let event = WebhookEvent::Registered {
            store: id,
            notify_url: notify_url.to_owned(),
        };
        (1, Some(event))
    } else {
        let removed = store.unregister_webhook(notify_url);
        let event = (removed > 0).then(|| WebhookEvent::Unregistered {
            store: id,
            notify_url: notify_url.to_owned(),
        });
        (removed, event)
    };
    if let Some(event) = event {
        state.pushes.log.publish(event);
    }
    json_response(
        StatusCode::OK,
        &json!({ "message": format!("Registros afetados: {affected}") }),
    )
}

fn param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// LI's filter timestamps: `AAAA-MM-DDTHH:MM:SS` "onde a hora é opcional".
pub(crate) fn parse_filter_time(value: &str) -> Option<DateTime> {
    let value = value.trim();
    if let Ok(at) = value.parse::<DateTime>() {
        return Some(at);
    }
    value
        .parse::<jiff::civil::Date>()
        .ok()
        .map(|d| d.at(0, 0, 0, 0))
}

fn time_filter(query: &[(String, String)], name: &str) -> Result<Option<DateTime>, String> {
    match param(query, name) {
        None | Some("") => Ok(None),
        Some(v) => parse_filter_time(v)
            .map(Some)
            .ok_or_else(|| format!("{name} inválido: {v:?} (use AAAA-MM-DDTHH:MM:SS)")),
    }
}

fn number_filter(query: &[(String, String)], name: &str) -> Result<Option<u64>, String> {
    match param(query, name) {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| format!("{name} inválido: {v:?}")),
    }
}

fn search(store: &StoreState, query: &[(String, String)]) -> Result<Value, String> {
    let since = time_filter(query, "since_atualizado")?;
    let since_created = time_filter(query, "since_criado")?;
    let until_created = time_filter(query, "until_criado")?;
    let since_numero = number_filter(query, "since_numero")?;
    let status_id = number_filter(query, "situacao_id")?;
    let status_code = status_id.map(|id| {
        store
            .statuses()
            .iter()
            .find(|s| s.id == id)
            .map(|s| s.code.clone())
    });
    let mut orders: Vec<&Order> = store
        .orders
        .values()
        .filter(|o| since.is_none_or(|s| o.modified_at.is_some_and(|m| m >= s)))
        .filter(|o| since_created.is_none_or(|s| o.created_at.is_some_and(|c| c >= s)))
        .filter(|o| until_created.is_none_or(|u| o.created_at.is_some_and(|c| c < u)))
        .filter(|o| since_numero.is_none_or(|n| o.numero.is_some_and(|x| x >= n)))
        .filter(|o| {
            status_code
                .as_ref()
                .is_none_or(|code| code.as_deref() == Some(o.status.as_str()))
        })
        .collect();
    sort(&mut orders, store.options.order);
    let rows = orders
        .iter()
        .map(|o| render::search_row(store, o))
        .collect();
    paged(store, "pedido/search/", query, rows)
}

fn sort(orders: &mut [&Order], order: SearchOrder) {
    match order {
        SearchOrder::ModifiedAsc => orders.sort_by_key(|o| (o.modified_at, o.numero)),
        SearchOrder::ModifiedDesc => {
            orders.sort_by_key(|o| std::cmp::Reverse((o.modified_at, o.numero)));
        }
        SearchOrder::NumeroAsc => orders.sort_by_key(|o| o.numero),
    }
}

/// The clamped page size: absent → default, 0 → the maximum, above the maximum → the maximum.
pub(crate) fn clamp_limit(requested: Option<usize>, default: usize, max: usize) -> usize {
    match requested {
        None => default.min(max),
        Some(0) => max,
        Some(n) => n.min(max),
    }
}

/// Tastypie's `meta` + `objects` envelope over `rows`.
fn paged(
    store: &StoreState,
    resource: &str,
    query: &[(String, String)],
    rows: Vec<Value>,
) -> Result<Value, String> {
    let requested = match param(query, "limit") {
        None | Some("") => None,
        Some(v) => Some(
            v.parse::<usize>()
                .map_err(|_| format!("limit inválido: {v:?}"))?,
        ),
    };
    let limit = clamp_limit(
        requested,
        store.options.default_limit,
        store.options.max_limit,
    );
    let offset = match param(query, "offset") {
        None | Some("") => 0,
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| format!("offset inválido: {v:?}"))?,
    };
    let total = rows.len();
    let page: Vec<Value> = rows.into_iter().skip(offset).take(limit).collect();
    let link = |offset: usize| {
        let mut serializer = form_urlencoded::Serializer::new(String::new());
        for (k, v) in query.iter().filter(|(k, _)| k != "limit" && k != "offset") {
            serializer.append_pair(k, v);
        }
        serializer.append_pair("limit", &limit.to_string());
        serializer.append_pair("offset", &offset.to_string());
        Value::String(format!(
            "{}/{resource}?{}",
            store.options.uri_prefix,
            serializer.finish()
        ))
    };
    let next = if offset + limit < total {
        link(offset + limit)
    } else {
        Value::Null
    };
    let previous = if offset > 0 {
        link(offset.saturating_sub(limit))
    } else {
        Value::Null
    };
    Ok(json!({
        "meta": { "limit": limit, "next": next, "offset": offset, "previous": previous, "total_count": total },
        "objects": page,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_recognised_under_both_prefixes_with_or_without_slash() {
        assert_eq!(endpoint("/v1/pedido/search/"), Endpoint::Search);
        assert_eq!(endpoint("/api/v1/pedido/search"), Endpoint::Search);
        assert_eq!(endpoint("/api/v1/pedido/1001"), Endpoint::Detail(1001));
        assert_eq!(endpoint("/v1/pedido/1001/"), Endpoint::Detail(1001));
        assert_eq!(
            endpoint("/v1/cliente/90000001"),
            Endpoint::Cliente(90_000_001)
        );
        assert_eq!(endpoint("/v1/situacao/"), Endpoint::Situacao(None));
        assert_eq!(endpoint("/v1/situacao/4"), Endpoint::Situacao(Some(4)));
        assert_eq!(endpoint("/v1/situacao_historico/search"), Endpoint::History);
        assert_eq!(endpoint("/v1/pedido/abc"), Endpoint::Unknown);
        assert_eq!(endpoint("/api/pedido/search"), Endpoint::Unknown);
        assert_eq!(endpoint("/v2/pedido/search"), Endpoint::Unknown);
        assert_eq!(endpoint("/webhooks/v1/pedido"), Endpoint::Webhooks);
        assert_eq!(endpoint("/webhooks/v1/pedido/"), Endpoint::Webhooks);
        assert_eq!(endpoint("/v1/webhooks/v1/pedido"), Endpoint::Unknown);
        assert_eq!(endpoint("/api/v1/webhooks/v1/pedido"), Endpoint::Unknown);
    }

    #[test]
    fn limit_is_clamped_like_li() {
        assert_eq!(clamp_limit(None, 20, 50), 20);
        assert_eq!(clamp_limit(Some(0), 20, 50), 50);
        assert_eq!(clamp_limit(Some(10), 20, 50), 10);
        assert_eq!(clamp_limit(Some(500), 20, 50), 50);
    }

    #[test]
    fn filter_times_accept_optional_hours() {
        let d = jiff::civil::date(2024, 5, 10);
        assert_eq!(parse_filter_time("2024-05-10"), Some(d.at(0, 0, 0, 0)));
        assert_eq!(
            parse_filter_time("2024-05-10T09:30"),
            Some(d.at(9, 30, 0, 0))
        );
        assert_eq!(
            parse_filter_time("2024-05-10T09:30:22"),
            Some(d.at(9, 30, 22, 0))
        );
        assert_eq!(
            parse_filter_time("2024-05-10T09:30:22.5"),
            Some(d.at(9, 30, 22, 500_000_000))
        );
        assert_eq!(parse_filter_time("ontem"), None);
    }

    #[test]
    fn both_header_forms_and_the_query_form_are_credentials() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("chave_api K aplicacao A"),
        );
        assert_eq!(
            credential(&headers, &[]),
            Some(Credential::ApiKey("K".into(), "A".into()))
        );
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic tok"));
        assert_eq!(
            credential(&headers, &[]),
            Some(Credential::Token("tok".into()))
        );
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer tok"),
        );
        assert_eq!(credential(&headers, &[]), None);
        let query = vec![
            ("chave_api".into(), "K".into()),
            ("chave_aplicacao".into(), "A".into()),
        ];
        assert_eq!(
            credential(&HeaderMap::new(), &query),
            Some(Credential::ApiKey("K".into(), "A".into()))
        );
    }
}
