//! The HTTP side of the fake Nuvemshop: routing, the `User-Agent` and
//! `Authentication` checks, the leaky bucket, faults, paging, webhooks.
//!
//! Checks run in the order a client meets them: an unknown path is 404, a
//! missing `User-Agent` 400, a missing or wrong token 401, an empty bucket
//! 429; every answer after the bucket carries the three `x-rate-limit-*`
//! headers.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde_json::{Value, json};

use super::push::refuse_url;
use super::render;
use super::{
    BucketAnswer, Endpoint, Fault, ListOrder, NsStore, NsStoreId, ORDER_EVENTS, Order,
    RecordedRequest, Shared, State, StoreState, Webhook, WebhookEvent,
};
use crate::channels::server::FailingBody;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

/// `v1` or a dated version such as `2025-03`.
fn is_version(segment: &str) -> bool {
    if segment == "v1" {
        return true;
    }
    let bytes = segment.as_bytes();
    bytes.len() == 7
        && bytes[4] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || b.is_ascii_digit())
}

/// The path's `store_id` and what it addresses.
pub(crate) fn route(path: &str) -> (Option<u64>, Endpoint) {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (version, store, rest) = match segments.as_slice() {
        [version, store, rest @ ..] => (*version, *store, rest),
        _ => return (None, Endpoint::Unknown),
    };
    let Ok(store_id) = store.parse::<u64>() else {
        return (None, Endpoint::Unknown);
    };
    if !is_version(version) {
        return (Some(store_id), Endpoint::Unknown);
    }
    let endpoint = match rest {
        ["orders"] => Endpoint::List,
        ["orders", id] => id.parse().map_or(Endpoint::Unknown, Endpoint::Detail),
        ["webhooks"] => Endpoint::Webhooks,
        ["webhooks", id] => id.parse().map_or(Endpoint::Unknown, Endpoint::Webhook),
        ["store"] => Endpoint::Store,
        _ => Endpoint::Unknown,
    };
    (Some(store_id), endpoint)
}

/// The bearer token of `value` (`bearer <token>`, scheme in any case).
fn bearer(value: Option<&HeaderValue>) -> Option<String> {
    let value = value?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

fn error(status: StatusCode, description: impl Into<Value>) -> Response {
    let message = status.canonical_reason().unwrap_or("Error");
    json_response(
        status,
        &render::error(status.as_u16(), message, description.into()),
    )
}

/// A 422 naming the offending field, as Nuvemshop answers invalid fields.
fn invalid(field: &str, problem: &str) -> Response {
    json_response(
        StatusCode::UNPROCESSABLE_ENTITY,
        &json!({ field: [problem] }),
    )
}

fn rate_headers(response: &mut Response, answer: BucketAnswer) {
    let headers = response.headers_mut();
    for (name, value) in [
        ("x-rate-limit-limit", answer.limit.to_string()),
        ("x-rate-limit-remaining", answer.remaining.to_string()),
        ("x-rate-limit-reset", answer.reset_ms.to_string()),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
}

/// An early answer (boxed: a `Response` is large).
type Refusal = Box<Response>;

enum Plan {
    Respond(Response),
    Delay(std::time::Duration, NsStoreId),
    Answer(NsStoreId),
}

/// Everything about the request the answer needs.
struct Request<'a> {
    method: &'a Method,
    path: &'a str,
    host: &'a str,
    query: &'a [(String, String)],
    body: &'a [u8],
    content_type: Option<&'a str>,
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
    let (path_store_id, endpoint) = route(&path);
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let authentication = bearer(headers.get("authentication"));
    let authorization = bearer(headers.get(header::AUTHORIZATION));

    let (plan, actions, log_index, bucket, resolved) = {
        let mut state = shared.lock();
        let log_index = state.record_requests.then(|| {
            state.log.push(RecordedRequest {
                method: method.to_string(),
                path: path.clone(),
                query: query.clone(),
                sent_authentication: headers.contains_key("authentication"),
                sent_authorization: headers.contains_key(header::AUTHORIZATION),
                user_agent: user_agent.clone(),
                path_store_id,
                store: None,
                endpoint,
                status: 0,
                rate_limit: None,
                at: jiff::Timestamp::now(),
            });
            state.log.len() - 1
        });
        let (plan, store, bucket) = plan(
            &mut state,
            &method,
            endpoint,
            path_store_id,
            user_agent.as_deref(),
            authentication.as_deref(),
            authorization.as_deref(),
        );
        if let Some(entry) = log_index.and_then(|i| state.log.get_mut(i)) {
            entry.store = store;
            entry.rate_limit = bucket;
        }
        let actions = match &plan {
            Plan::Respond(_) => Vec::new(),
            Plan::Delay(_, id) | Plan::Answer(id) => state
                .stores
                .get_mut(*id)
                .map(|s| s.due_actions(endpoint))
                .unwrap_or_default(),
        };
        (plan, actions, log_index, bucket, store)
    };
    if let Plan::Delay(_, index) | Plan::Answer(index) = plan {
        for action in actions {
            action(&NsStore {
                shared: Arc::clone(&shared),
                index,
            });
        }
    }

    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_owned();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let request = Request {
        method: &method,
        path: &path,
        host: &host,
        query: &query,
        body: &body,
        content_type: content_type.as_deref(),
    };
    let mut response = match plan {
        Plan::Respond(r) => r,
        Plan::Delay(pause, index) => {
            tokio::time::sleep(pause).await;
            answer(&mut shared.lock(), index, endpoint, &request)
        }
        Plan::Answer(index) => answer(&mut shared.lock(), index, endpoint, &request),
    };
    if let Some(bucket) = bucket {
        rate_headers(&mut response, bucket);
    }
    let mut state = shared.lock();
    let status = response.status().as_u16();
    if status == 429
        && let Some(store) = resolved.and_then(|index| state.stores.get_mut(index))
    {
        store.stats.throttled += 1;
    }
    if let Some(entry) = log_index.and_then(|i| state.log.get_mut(i)) {
        entry.status = status;
    }
    response
}

#[allow(clippy::too_many_arguments)]
fn plan(
    state: &mut State,
    method: &Method,
    endpoint: Endpoint,
    path_store_id: Option<u64>,
    user_agent: Option<&str>,
    authentication: Option<&str>,
    authorization: Option<&str>,
) -> (Plan, Option<NsStoreId>, Option<BucketAnswer>) {
    let respond = |r: Response| (Plan::Respond(r), None, None);
    let Some(store_id) = path_store_id else {
        return respond(error(StatusCode::NOT_FOUND, "Not Found"));
    };
    if endpoint == Endpoint::Unknown {
        return respond(error(StatusCode::NOT_FOUND, "Not Found"));
    }
    // The docs: without a User-Agent naming the app and a contact, 400.
    if user_agent.is_none_or(|ua| ua.trim().is_empty()) {
        return respond(error(
            StatusCode::BAD_REQUEST,
            "A User-Agent header with your app name and a contact (e.g. 'MyApp (me@example.com)') is required",
        ));
    }
    let Some(&index) = state.by_store_id.get(&store_id) else {
        return respond(error(StatusCode::NOT_FOUND, "Store not found"));
    };
    let Some(store) = state.stores.get_mut(index) else {
        return respond(error(StatusCode::INTERNAL_SERVER_ERROR, "store vanished"));
    };
    let token = match (authentication, authorization) {
        (Some(token), _) => Some(token),
        (None, Some(token)) if store.options.accept_authorization_header => Some(token),
        _ => None,
    };
    if token != Some(store.credentials.access_token.as_str()) {
        return respond(error(StatusCode::UNAUTHORIZED, "Invalid access token"));
    }
    store.stats.requests += 1;
    if let Some(status) = store.auth_failure {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::UNAUTHORIZED);
        return (
            Plan::Respond(error(status, "Access to this store was revoked")),
            Some(index),
            None,
        );
    }
    let bucket = token.and_then(|t| {
        let t = t.to_owned();
        store.pour(&t, Instant::now())
    });
    let with = |r: Response| (Plan::Respond(r), Some(index), bucket);
    if bucket.is_some_and(|b| !b.admitted) {
        return with(error(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests"));
    }
    // HEAD works wherever GET does (the docs: "can be issued against any resource").
    let read = method == Method::GET || method == Method::HEAD;
    let allowed = match endpoint {
        Endpoint::Webhooks => read || method == Method::POST,
        Endpoint::Webhook(_) => read || method == Method::PUT || method == Method::DELETE,
        _ => read,
    };
    if !allowed {
        return with(error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed"));
    }
    match store.take_fault(endpoint) {
        None => (Plan::Answer(index), Some(index), bucket),
        Some(Fault::Delay(pause)) => (Plan::Delay(pause, index), Some(index), bucket),
        Some(fault) => with(fault_response(fault)),
    }
}

fn fault_response(fault: Fault) -> Response {
    match fault {
        Fault::TooManyRequests { retry_after_secs } => {
            let mut response = error(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
            if let Some(secs) = retry_after_secs
                && let Ok(value) = HeaderValue::from_str(&secs.to_string())
            {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
        Fault::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            error(
                status,
                status.canonical_reason().unwrap_or("injected error"),
            )
        }
        Fault::Garbage => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/html")],
            "<html><body><h1>502 Bad Gateway</h1>cloudflare</body></html>",
        )
            .into_response(),
        Fault::Disconnect => Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::new(FailingBody))
            .unwrap_or_default(),
        Fault::Oversized(bytes) => {
            let head = r#"[{"id": 1, "padding": ""#;
            let tail = "\"}]";
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
        // Handled by the caller (it sleeps outside the lock).
        Fault::Delay(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "delay"),
    }
}

fn answer(
    state: &mut State,
    index: NsStoreId,
    endpoint: Endpoint,
    request: &Request<'_>,
) -> Response {
    match endpoint {
        Endpoint::Webhooks | Endpoint::Webhook(_) => webhooks(state, index, endpoint, request),
        _ => {
            let Some(store) = state.stores.get(index) else {
                return error(StatusCode::INTERNAL_SERVER_ERROR, "store vanished");
            };
            match endpoint {
                Endpoint::List => list(store, request),
                Endpoint::Detail(id) => match store.orders.get(&id) {
                    Some(order) => json_response(
                        StatusCode::OK,
                        &only_fields(render_order(store, id, order), request.query),
                    ),
                    None => error(StatusCode::NOT_FOUND, "Order not found"),
                },
                Endpoint::Store => json_response(
                    StatusCode::OK,
                    &json!({
                        "id": store.credentials.store_id,
                        "name": { "pt": format!("Loja {}", store.credentials.store_id) },
                        "main_language": "pt",
                        "main_currency": "BRL",
                        "country": "BR",
                    }),
                ),
                _ => error(StatusCode::NOT_FOUND, "Not Found"),
            }
        }
    }
}

fn render_order(store: &StoreState, id: u64, order: &Order) -> Value {
    let overrides = store.overrides.get(&id).map_or(&[][..], Vec::as_slice);
    render::order(order, store.options.time_format, overrides)
}

fn param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// ISO 8601 with an offset (`-03:00`, `-0300`, `Z`), or a date (midnight in
/// São Paulo). A date-time without an offset is ambiguous and refused.
pub(crate) fn parse_filter_time(value: &str) -> Option<Timestamp> {
    let value = value.trim();
    if let Ok(at) = value.parse::<Timestamp>() {
        return Some(at);
    }
    // `2024-05-10T09:00:00-0300`: jiff wants the colon in offsets.
    let bytes = value.as_bytes();
    if bytes.len() > 5 {
        let (head, offset) = value.split_at(value.len() - 5);
        let ob = offset.as_bytes();
        if (ob[0] == b'+' || ob[0] == b'-') && ob[1..].iter().all(u8::is_ascii_digit) {
            let fixed = format!("{head}{}:{}", &offset[..3], &offset[3..]);
            if let Ok(at) = fixed.parse::<Timestamp>() {
                return Some(at);
            }
        }
    }
    if value.len() == 10
        && let Ok(date) = value.parse::<jiff::civil::Date>()
    {
        return jiff::tz::Offset::constant(-3)
            .to_timestamp(date.at(0, 0, 0, 0))
            .ok();
    }
    None
}

fn time_param(query: &[(String, String)], name: &str) -> Result<Option<Timestamp>, Refusal> {
    match param(query, name) {
        None | Some("") => Ok(None),
        Some(v) => parse_filter_time(v).map(Some).ok_or_else(|| {
            Box::new(invalid(
                name,
                "is not a valid ISO 8601 date with an offset (e.g. 2024-05-10T09:00:00-03:00)",
            ))
        }),
    }
}

fn positive_param(query: &[(String, String)], name: &str) -> Result<Option<usize>, Refusal> {
    match param(query, name) {
        None | Some("") => Ok(None),
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if n >= 1 => Ok(Some(n)),
            _ => Err(Box::new(invalid(
                name,
                "must be an integer greater than or equal to 1",
            ))),
        },
    }
}

fn state_filter(query: &[(String, String)], name: &str, value: &str) -> bool {
    match param(query, name) {
        None | Some("" | "any") => true,
        Some(wanted) => wanted == value,
    }
}

/// Keep only the comma-separated `fields` of an order, when asked.
fn only_fields(order: Value, query: &[(String, String)]) -> Value {
    let Some(fields) = param(query, "fields").filter(|f| !f.trim().is_empty()) else {
        return order;
    };
    let Value::Object(map) = order else {
        return order;
    };
    let wanted: Vec<&str> = fields.split(',').map(str::trim).collect();
    Value::Object(
        map.into_iter()
            .filter(|(k, _)| wanted.contains(&k.as_str()))
            .collect(),
    )
}

/// `GET /orders`: filter, sort, page; `x-total-count` and `Link`.
fn list(store: &StoreState, request: &Request<'_>) -> Response {
    let query = request.query;
    let parsed = (|| {
        Ok::<_, Refusal>((
            positive_param(query, "page")?.unwrap_or(1),
            positive_param(query, "per_page")?,
            time_param(query, "updated_at_min")?,
            time_param(query, "updated_at_max")?,
            time_param(query, "created_at_min")?,
            time_param(query, "created_at_max")?,
        ))
    })();
    let (page, per_page, updated_min, updated_max, created_min, created_max) = match parsed {
        Ok(p) => p,
        Err(response) => return *response,
    };
    let per_page = per_page.unwrap_or(store.options.default_per_page);
    if per_page > store.options.max_per_page {
        return invalid(
            "per_page",
            &format!(
                "must be less than or equal to {}",
                store.options.max_per_page
            ),
        );
    }
    if let Some(depth) = store.options.max_list_depth
        && page.saturating_mul(per_page) > depth
    {
        return invalid(
            "page",
            &format!("page × per_page may not go beyond {depth} results"),
        );
    }
    let since_id = param(query, "since_id").and_then(|v| v.trim().parse::<u64>().ok());
    let mut rows: Vec<(&u64, &Order)> = store
        .orders
        .iter()
        .filter(|(id, o)| {
            let updated = o.updated_at.unwrap_or(Timestamp::UNIX_EPOCH);
            let created = o.created_at.unwrap_or(Timestamp::UNIX_EPOCH);
            updated_min.is_none_or(|m| updated >= m)
                && updated_max.is_none_or(|m| updated <= m)
                && created_min.is_none_or(|m| created >= m)
                && created_max.is_none_or(|m| created <= m)
                && since_id.is_none_or(|s| **id > s)
                && state_filter(query, "status", &o.status)
                && state_filter(query, "payment_status", &o.payment_status)
                && (!store.options.legacy_payment_filter
                    || param(query, "payment_status").is_some_and(|p| p != "any")
                    || ["authorized", "pending", "paid"].contains(&o.payment_status.as_str()))
                && state_filter(query, "shipping_status", &o.shipping_status)
        })
        .collect();
    let key = |o: &Order, created: bool| {
        if created { o.created_at } else { o.updated_at }.unwrap_or(Timestamp::UNIX_EPOCH)
    };
    match store.options.order {
        ListOrder::CreatedDesc => {
            rows.sort_by(|a, b| (key(b.1, true), b.0).cmp(&(key(a.1, true), a.0)))
        }
        ListOrder::CreatedAsc => {
            rows.sort_by(|a, b| (key(a.1, true), a.0).cmp(&(key(b.1, true), b.0)))
        }
        ListOrder::UpdatedAsc => {
            rows.sort_by(|a, b| (key(a.1, false), a.0).cmp(&(key(b.1, false), b.0)))
        }
        ListOrder::UpdatedDesc => {
            rows.sort_by(|a, b| (key(b.1, false), b.0).cmp(&(key(a.1, false), a.0)));
        }
    }
    let total = rows.len();
    let last_page = total.div_ceil(per_page);
    if page > last_page.max(1) || (total == 0 && store.options.empty_list_404) {
        // What the real API answers past the end.
        return error(StatusCode::NOT_FOUND, format!("Last page is {last_page}"));
    }
    let body: Vec<Value> = rows
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|(id, o)| only_fields(render_order(store, **id, o), query))
        .collect();
    let mut response = json_response(StatusCode::OK, &Value::Array(body));
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&total.to_string()) {
        headers.insert(HeaderName::from_static("x-total-count"), value);
    }
    if let Some(link) = link_header(request, page, per_page, last_page)
        && let Ok(value) = HeaderValue::from_str(&link)
    {
        headers.insert(header::LINK, value);
    }
    response
}

/// RFC 5988 `Link` with `next`, `last`, `first`, `prev` as they apply.
fn link_header(
    request: &Request<'_>,
    page: usize,
    per_page: usize,
    last_page: usize,
) -> Option<String> {
    if last_page == 0 {
        return None;
    }
    let url = |target: usize| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (k, v) in request.query {
            if k != "page" && k != "per_page" {
                query.append_pair(k, v);
            }
        }
        query.append_pair("page", &target.to_string());
        query.append_pair("per_page", &per_page.to_string());
        format!("http://{}{}?{}", request.host, request.path, query.finish())
    };
    let mut links = Vec::new();
    if page < last_page {
        links.push(format!("<{}>; rel=\"next\"", url(page + 1)));
    }
    links.push(format!("<{}>; rel=\"last\"", url(last_page)));
    if page > 1 {
        links.push(format!("<{}>; rel=\"first\"", url(1)));
        links.push(format!("<{}>; rel=\"prev\"", url(page - 1)));
    }
    Some(links.join(", "))
}

/// `/webhooks` (GET list, POST create) and `/webhooks/{id}` (GET, PUT, DELETE).
fn webhooks(
    state: &mut State,
    index: NsStoreId,
    endpoint: Endpoint,
    request: &Request<'_>,
) -> Response {
    let now = state.clock.now();
    let State { stores, pushes, .. } = state;
    let Some(store) = stores.get_mut(index) else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "store vanished");
    };
    let format = store.options.time_format;
    let method = request.method;
    match endpoint {
        Endpoint::Webhooks if *method == Method::GET || *method == Method::HEAD => {
            // `url=` and `event=` narrow the list, as the docs show.
            let rows: Vec<Value> = store
                .webhooks
                .iter()
                .filter(|w| param(request.query, "url").is_none_or(|u| u == w.url))
                .filter(|w| param(request.query, "event").is_none_or(|e| e == w.event))
                .map(|w| render::webhook(w, format))
                .collect();
            if rows.is_empty() && store.options.empty_list_404 {
                return error(StatusCode::NOT_FOUND, "Last page is 0");
            }
            json_response(StatusCode::OK, &Value::Array(rows))
        }
        Endpoint::Webhooks => {
            let fields = match webhook_body(request) {
                Ok(fields) => fields,
                Err(response) => return *response,
            };
            let (Some(event), Some(url)) = (fields.0, fields.1) else {
                return invalid("event", "and url can't be blank");
            };
            if let Some(problem) = check_webhook(&event, &url) {
                return problem;
            }
            if store
                .webhooks
                .iter()
                .any(|w| w.event == event && w.url == url)
            {
                return invalid("url", "has already been taken for this event");
            }
            let webhook = Webhook {
                id: store.next_webhook_id,
                event,
                url,
                created_at: now,
            };
            store.next_webhook_id += 1;
            store.webhooks.push(webhook.clone());
            let body = render::webhook(&webhook, format);
            pushes.log.publish(WebhookEvent::Registered {
                store: index,
                webhook,
            });
            json_response(StatusCode::CREATED, &body)
        }
        Endpoint::Webhook(id) => {
            let Some(position) = store.webhooks.iter().position(|w| w.id == id) else {
                return error(StatusCode::NOT_FOUND, "Webhook not found");
            };
            if *method == Method::DELETE {
                store.webhooks.remove(position);
                pushes
                    .log
                    .publish(WebhookEvent::Deleted { store: index, id });
                return json_response(StatusCode::OK, &json!({}));
            }
            if *method == Method::PUT {
                let (event, url) = match webhook_body(request) {
                    Ok(fields) => fields,
                    Err(response) => return *response,
                };
                let current = store.webhooks[position].clone();
                let event = event.unwrap_or(current.event);
                let url = url.unwrap_or(current.url);
                if let Some(problem) = check_webhook(&event, &url) {
                    return problem;
                }
                let webhook = &mut store.webhooks[position];
                webhook.event = event;
                webhook.url = url;
            }
            json_response(
                StatusCode::OK,
                &render::webhook(&store.webhooks[position], format),
            )
        }
        _ => error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

type WebhookFields = (Option<String>, Option<String>);

/// `event` and `url` of a webhook body; 415 without a JSON content type, 400
/// on bad JSON (both as the docs say).
fn webhook_body(request: &Request<'_>) -> Result<WebhookFields, Refusal> {
    if !request
        .content_type
        .is_some_and(|c| c.to_ascii_lowercase().starts_with("application/json"))
    {
        return Err(Box::new(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json",
        )));
    }
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(request.body) else {
        return Err(Box::new(json_response(
            StatusCode::BAD_REQUEST,
            &json!({ "error": "Problems parsing JSON" }),
        )));
    };
    let text = |name: &str| {
        fields
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .filter(|s| !s.is_empty())
    };
    Ok((text("event"), text("url")))
}

fn check_webhook(event: &str, url: &str) -> Option<Response> {
    if !ORDER_EVENTS.contains(&event) {
        return Some(invalid(
            "event",
            &format!(
                "Invalid event specified. Events allowed: {}",
                ORDER_EVENTS.join(", ")
            ),
        ));
    }
    refuse_url(url).map(|problem| invalid("url", problem))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_carry_version_store_and_resource() {
        assert_eq!(route("/v1/123/orders"), (Some(123), Endpoint::List));
        assert_eq!(
            route("/2025-03/123/orders/9"),
            (Some(123), Endpoint::Detail(9))
        );
        assert_eq!(route("/v1/123/webhooks/"), (Some(123), Endpoint::Webhooks));
        assert_eq!(
            route("/v1/123/webhooks/7"),
            (Some(123), Endpoint::Webhook(7))
        );
        assert_eq!(route("/v2/123/orders"), (Some(123), Endpoint::Unknown));
        assert_eq!(route("/v1/abc/orders"), (None, Endpoint::Unknown));
        assert_eq!(route("/v1/orders"), (None, Endpoint::Unknown));
    }

    #[test]
    fn filter_times_need_an_offset() {
        let at = Timestamp::from_second(1_715_342_400).ok();
        assert_eq!(parse_filter_time("2024-05-10T09:00:00-03:00"), at);
        assert_eq!(parse_filter_time("2024-05-10T09:00:00-0300"), at);
        assert_eq!(parse_filter_time("2024-05-10T12:00:00Z"), at);
        assert_eq!(parse_filter_time("2024-05-10T12:00:00+00:00"), at);
        assert_eq!(
            parse_filter_time("2024-05-10"),
            Timestamp::from_second(1_715_310_000).ok()
        );
        assert_eq!(parse_filter_time("2024-05-10T09:00:00"), None);
        assert_eq!(parse_filter_time("ontem"), None);
    }

    #[test]
    fn bearer_takes_any_case_scheme() {
        let v = HeaderValue::from_static("bearer abc");
        assert_eq!(bearer(Some(&v)).as_deref(), Some("abc"));
        let v = HeaderValue::from_static("Bearer abc");
        assert_eq!(bearer(Some(&v)).as_deref(), Some("abc"));
        let v = HeaderValue::from_static("Basic abc");
        assert_eq!(bearer(Some(&v)), None);
        let v = HeaderValue::from_static("bearer ");
        assert_eq!(bearer(Some(&v)), None);
    }
}
