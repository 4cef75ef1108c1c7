//! HTTP calls to the LI REST API and the mapping of its failures to plugin errors
//! (endpoints, rate limits and Retry-After: docs/platforms/loja-integrada.md).

use arauto_plugin_sdk::connector::http::{self, HttpResponse, redact_url};
use arauto_plugin_sdk::connector::{PluginError, misconfigured, permanent, retryable};
use jiff::civil::DateTime;
use serde_json::Value;

use crate::doc::{Json, Node};
use crate::settings::Settings;
use crate::time::from_unix_ms;

/// Back-off when a 429 carries no `Retry-After` (LI documents none; the
/// python-lojaintegrada client waits 10 s).
pub const DEFAULT_RATE_LIMIT_BACKOFF_MS: u64 = 10_000;

/// Characters of a response body quoted in error messages.
const EXCERPT_CHARS: usize = 200;

/// One `pedido/search` page, borrowing text from its response body
/// ([`Listing`]).
#[derive(Debug)]
pub struct SearchPage<'body> {
    /// The summary rows.
    pub rows: Vec<Json<'body>>,
    /// `meta.limit`: the page size LI actually applied (it clamps silently).
    pub limit: Option<u64>,
    /// `meta.total_count`.
    pub total: Option<u64>,
    /// Offset of the next page, `None` on the last one.
    pub next_offset: Option<u64>,
    /// LI's clock when it answered (its `Date` header, whole seconds, in
    /// São Paulo wall-clock time); `None` when absent or unreadable.
    pub answered_at: Option<DateTime>,
}

/// Why reading one order (its detail, or its customer) failed.
#[derive(Debug)]
pub enum ReadError {
    /// About the store or the way to it: rejected credentials, rate limit,
    /// 5xx, timeout, no connection. The whole call fails (as for a search).
    Store(PluginError),
    /// About this order alone: its answer is over the response cap, not JSON
    /// (or nested too deeply), not an object, or an error status other than
    /// the above. The order is skipped and retried later; the rest flows on.
    Order(PluginError),
}

impl ReadError {
    /// The error as a whole call would report it.
    pub fn into_plugin_error(self) -> PluginError {
        match self {
            ReadError::Store(e) | ReadError::Order(e) => e,
        }
    }
}

impl From<PluginError> for ReadError {
    fn from(error: PluginError) -> Self {
        ReadError::Store(error)
    }
}

/// The message of a plugin error, whatever its class.
pub fn message_of(error: &PluginError) -> &str {
    match error {
        PluginError::Retryable(e) => &e.message,
        PluginError::Permanent(m) | PluginError::Misconfigured(m) => m,
    }
}

/// A `pedido/search` answer, read into a [`SearchPage`] by [`Listing::page`]
/// (the page borrows its text from the body kept here).
pub struct Listing {
    response: HttpResponse,
    what: String,
    offset: u64,
}

/// The LI API as seen through the host's HTTP import.
pub struct Api<'a> {
    settings: &'a Settings,
}

/// A JSON integer or numeric string.
pub fn as_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The `offset` query parameter of a Tastypie `meta.next` URI such as
/// `/api/v1/pedido/search/?since_atualizado=...&limit=50&offset=50`.
pub fn next_offset_of(next: &str) -> Option<u64> {
    let query = next.split_once('?')?.1;
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == "offset")
        .and_then(|(_, v)| v.trim().parse().ok())
}

impl<'a> Api<'a> {
    /// An API client with these settings.
    pub fn new(settings: &'a Settings) -> Self {
        Self { settings }
    }

    /// GET `url`; 2xx and 404 come back as responses, everything else as the
    /// matching plugin error. `what` says what we were doing, for messages.
    fn get(&self, url: &str, what: &str) -> Result<HttpResponse, PluginError> {
        self.read(url, what).map_err(ReadError::into_plugin_error)
    }

    /// [`Self::get`], telling failures of this one resource from failures of
    /// the store: an answer over the host's size cap, or an error status that
    /// is neither about credentials, rate limits nor the server's health.
    fn read(&self, url: &str, what: &str) -> Result<HttpResponse, ReadError> {
        let response = http::get(url)
            .header("authorization", &self.settings.auth.header_value())
            .header("accept", "application/json")
            .header(
                "user-agent",
                concat!("arauto-loja-integrada/", env!("CARGO_PKG_VERSION")),
            )
            .timeout_ms(self.settings.timeout_ms)
            .send_raw()
            .map_err(|e| {
                let too_large = matches!(e, http::HttpError::TooLarge(_));
                let error = self.with_context(http::transport_error(url, e), what);
                if too_large {
                    ReadError::Order(error)
                } else {
                    ReadError::Store(error)
                }
            })?;
        if response.is_success() || response.status == 404 {
            return Ok(response);
        }
        let error = self.status_error(&response, what);
        Err(match response.status {
            401 | 403 | 408 | 429 | 500..=599 => ReadError::Store(error),
            _ => ReadError::Order(error),
        })
    }

    fn with_context(&self, error: PluginError, what: &str) -> PluginError {
        match error {
            PluginError::Retryable(mut e) => {
                e.message = format!(
                    "request to Loja Integrada failed while {what}: {}",
                    e.message
                );
                PluginError::Retryable(e)
            }
            PluginError::Misconfigured(m) => misconfigured(format!("{what}: {m}")),
            PluginError::Permanent(m) => permanent(format!("{what}: {m}")),
        }
    }

    fn excerpt(&self, response: &HttpResponse) -> String {
        let text = self.settings.scrub(&response.text());
        let text = text.trim();
        if text.is_empty() {
            "(empty body)".to_owned()
        } else {
            http::excerpt(text, EXCERPT_CHARS)
        }
    }

    fn status_error(&self, response: &HttpResponse, what: &str) -> PluginError {
        let status = response.status;
        let target = redact_url(&response.url);
        let body = self.excerpt(response);
        match status {
            401 | 403 => {
                let auth = &self.settings.auth;
                misconfigured(format!(
                    "token inválido/expirado: Loja Integrada rejected the credentials with HTTP \
                     {status} while {what} (GET {target}). Auth mode: {}; {}. Response: {body}",
                    auth.describe(),
                    auth.rejection_hint()
                ))
            }
            429 => {
                let scope = serde_json::from_slice::<Value>(&response.body)
                    .ok()
                    .and_then(|v| v.get("codigo").and_then(as_u64))
                    .map(|code| match code {
                        633 => format!(", código {code}: 100 requests/min per store"),
                        533 => format!(", código {code}: 3000 requests/min per application key"),
                        133 => format!(", código {code}: 1200 requests/min per IP"),
                        other => format!(", código {other}"),
                    })
                    .unwrap_or_default();
                http::wait_and_retry(response, DEFAULT_RATE_LIMIT_BACKOFF_MS, |wait| {
                    format!(
                        "Loja Integrada rate limit (HTTP 429{scope}) while {what}; retry in {} s",
                        wait.div_ceil(1000)
                    )
                })
            }
            // A 503 may say when the service is back (maintenance, overload).
            503 if response.retry_after_ms().is_some() => {
                http::wait_and_retry(response, DEFAULT_RATE_LIMIT_BACKOFF_MS, |wait| {
                    format!(
                        "Loja Integrada answered HTTP 503 while {what} (GET {target}); retry in {} \
                         s: {body}",
                        wait.div_ceil(1000)
                    )
                })
            }
            408 | 500..=599 => retryable(format!(
                "Loja Integrada answered HTTP {status} while {what} (GET {target}): {body}"
            )),
            _ => permanent(format!(
                "Loja Integrada answered HTTP {status} while {what} (GET {target}): {body}"
            )),
        }
    }

    /// A 404 where a resource list must exist means the URL is wrong.
    fn wrong_url(&self, response: &HttpResponse) -> PluginError {
        misconfigured(format!(
            "GET {} answered 404: check settings `base_url` = {:?} and `api_prefix` = {:?}",
            redact_url(&response.url),
            self.settings.base_url,
            self.settings.api_prefix
        ))
    }

    /// Parse the body as JSON; malformed bodies are retryable, quoting what arrived.
    fn json<'body>(
        &self,
        response: &'body HttpResponse,
        what: &str,
    ) -> Result<Json<'body>, PluginError> {
        Json::parse(&response.body).map_err(|e| {
            retryable(format!(
                "malformed JSON from Loja Integrada while {what} (GET {}, HTTP {}): {e}; body starts with: {}",
                redact_url(&response.url),
                response.status,
                self.excerpt(response)
            ))
        })
    }

    fn objects<'body>(
        &self,
        response: &'body HttpResponse,
        what: &str,
    ) -> Result<(Json<'body>, Vec<Json<'body>>), PluginError> {
        let mut doc = self.json(response, what)?;
        match doc.take("objects") {
            Some(Json::Array(rows)) => Ok((doc, rows)),
            _ => Err(retryable(format!(
                "unexpected response from Loja Integrada while {what} (GET {}): no `objects` list; \
                 body starts with: {}",
                redact_url(&response.url),
                self.excerpt(response)
            ))),
        }
    }

    /// One page of `pedido/search` modified since `since` (naive São Paulo,
    /// seconds), to be read by [`Listing::page`].
    pub fn search(&self, since: &str, offset: u64, limit: u32) -> Result<Listing, PluginError> {
        let url = self.settings.url(&format!(
            "pedido/search/?since_atualizado={}&limit={limit}&offset={offset}",
            http::encode_component(since)
        ));
        let what = format!("listing orders modified since {since} (offset {offset})");
        let response = self.get(&url, &what)?;
        if response.status == 404 {
            return Err(self.wrong_url(&response));
        }
        Ok(Listing {
            response,
            what,
            offset,
        })
    }

    /// The page of a search answer.
    pub fn page<'body>(&self, listing: &'body Listing) -> Result<SearchPage<'body>, PluginError> {
        let Listing {
            response,
            what,
            offset,
        } = listing;
        let offset = *offset;
        let (doc, rows) = self.objects(response, what)?;
        let meta = doc.get("meta");
        let field = |name: &str| meta.and_then(|m| m.get(name)).and_then(Json::as_u64);
        let applied_limit = field("limit");
        let next_offset = match meta.and_then(|m| m.get("next")) {
            // No meta at all: keep paging until an empty page.
            None if meta.is_none() => (!rows.is_empty()).then(|| offset + rows.len() as u64),
            None | Some(Json::Null) => None,
            Some(Json::Str(next)) if next.trim().is_empty() => None,
            Some(next) => {
                let stated = next.as_str().and_then(next_offset_of);
                let stepped = offset + applied_limit.unwrap_or(rows.len() as u64).max(1);
                // Rebuilt from meta.next's offset (its /api/v1 path is not followed
                // verbatim); a next that does not move forward would loop.
                Some(stated.filter(|n| *n > offset).unwrap_or(stepped))
            }
        };
        let answered_at = response
            .header("date")
            .and_then(http::http_date_unix_secs)
            .map(|secs| from_unix_ms(secs.saturating_mul(1000)));
        Ok(SearchPage {
            next_offset: next_offset.filter(|_| !rows.is_empty()),
            answered_at,
            limit: applied_limit,
            total: field("total_count"),
            rows,
        })
    }

    /// `pedido/{numero}`, handed to `read` while its body is at hand; `None`
    /// on 404 (deleted or not visible).
    pub fn order<R>(
        &self,
        numero: u64,
        read: impl FnOnce(&Json<'_>) -> R,
    ) -> Result<Option<R>, ReadError> {
        let what = format!("reading order {numero}");
        let response = self.read(&self.settings.url(&format!("pedido/{numero}")), &what)?;
        if response.status == 404 {
            return Ok(None);
        }
        // A body that is not JSON (or nested deeper than the parser's limit)
        // where every other order's detail is fine is this order's problem.
        let doc = self.json(&response, &what).map_err(ReadError::Order)?;
        if doc.is_object() {
            Ok(Some(read(&doc)))
        } else {
            Err(ReadError::Order(retryable(format!(
                "unexpected response from Loja Integrada while {what}: not a JSON object; body \
                 starts with: {}",
                self.excerpt(&response)
            ))))
        }
    }

    /// The customer a `cliente` URI points at (`/api/v1/cliente/N`,
    /// `/v1/cliente/N`, an absolute URL with either, or a bare id), fetched
    /// from our own `base_url` + `api_prefix`; `None` on 404.
    pub fn customer(&self, uri: &str) -> Result<Option<Json<'static>>, ReadError> {
        let Some(rest) = resource_path(uri, "cliente") else {
            return Err(ReadError::Order(retryable(format!(
                "unexpected `cliente` reference {:?} in an order (expected /api/v1/cliente/<id>)",
                http::excerpt(uri, EXCERPT_CHARS)
            ))));
        };
        let what = format!("reading customer {rest}");
        let response = self.read(&self.settings.url(&rest), &what)?;
        if response.status == 404 {
            return Ok(None);
        }
        let doc = self.json(&response, &what).map_err(ReadError::Order)?;
        // Kept for the rest of the call (one request per distinct customer).
        Ok(doc.is_object().then(|| doc.into_owned()))
    }

    /// `PUT` (subscribe) or `DELETE` (unsubscribe) `{origin}/webhooks/v1/pedido`
    /// with `{"notifyUrl", "token"}` and the store's usual credentials.
    pub fn subscription(
        &self,
        subscribe: bool,
        notify_url: &str,
        token: &str,
    ) -> Result<(), PluginError> {
        let url = format!(
            "{}{}",
            crate::push::origin(&self.settings.base_url),
            crate::push::WEBHOOK_PATH
        );
        let (builder, method, what) = if subscribe {
            (http::put(&url), "PUT", "registering the order webhook")
        } else {
            (http::delete(&url), "DELETE", "removing the order webhook")
        };
        let body = serde_json::json!({ "notifyUrl": notify_url, "token": token });
        let response = builder
            .header("authorization", &self.settings.auth.header_value())
            .header("accept", "application/json")
            .header(
                "user-agent",
                concat!("arauto-loja-integrada/", env!("CARGO_PKG_VERSION")),
            )
            .timeout_ms(self.settings.timeout_ms)
            .json(&body)?
            .send_raw()
            .map_err(|e| self.with_context(http::transport_error(&url, e), what))?;
        if response.is_success() {
            return Ok(());
        }
        let status = response.status;
        let target = redact_url(&response.url);
        // The excerpt is scrubbed of the credentials; the token is scrubbed too.
        let body = self.excerpt(&response).replace(token, "<redacted>");
        Err(match status {
            401 | 403 => {
                let auth = &self.settings.auth;
                misconfigured(format!(
                    "Loja Integrada rejected the credentials with HTTP {status} while {what} \
                     ({method} {target}). Auth mode: {}; {}. Response: {body}",
                    auth.describe(),
                    auth.rejection_hint()
                ))
            }
            408 | 429 | 500..=599 => retryable(format!(
                "Loja Integrada answered HTTP {status} while {what} ({method} {target}): {body}"
            )),
            _ => permanent(format!(
                "Loja Integrada answered HTTP {status} while {what} ({method} {target}): {body}"
            )),
        })
    }

    /// One cheap authenticated call: the first row of the status catalogue.
    pub fn check(&self) -> Result<(), PluginError> {
        let what = "checking the credentials";
        let response = self.get(&self.settings.url("situacao/?limit=1"), what)?;
        if response.status == 404 {
            return Err(self.wrong_url(&response));
        }
        self.objects(&response, what).map(|_| ())
    }
}

/// `cliente/90000001` from any form of a resource reference.
fn resource_path(uri: &str, resource: &str) -> Option<String> {
    let uri = uri.trim();
    if !uri.is_empty() && uri.bytes().all(|b| b.is_ascii_digit()) {
        return Some(format!("{resource}/{uri}"));
    }
    let marker = format!("/v1/{resource}/");
    let start = uri.find(&marker)? + "/v1/".len();
    let path = uri[start..].split(['?', '#']).next()?.trim_end_matches('/');
    let id = path.strip_prefix(&format!("{resource}/"))?;
    (!id.is_empty() && !id.contains('/')).then(|| format!("{resource}/{id}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn next_offset_is_read_from_the_query_of_meta_next() {
        assert_eq!(
            next_offset_of(
                "/api/v1/pedido/search/?since_atualizado=2024-05-10T08%3A00%3A00&limit=50&offset=50"
            ),
            Some(50)
        );
        assert_eq!(
            next_offset_of("/api/v1/pagamento?offset=20&limit=20"),
            Some(20)
        );
        assert_eq!(next_offset_of("/api/v1/pagamento?limit=20"), None);
        assert_eq!(next_offset_of("/api/v1/pagamento"), None);
    }

    #[test]
    fn cliente_references_resolve_in_every_form() {
        let path = |u: &str| resource_path(u, "cliente");
        assert_eq!(
            path("/api/v1/cliente/90000001").as_deref(),
            Some("cliente/90000001")
        );
        assert_eq!(
            path("/v1/cliente/90000001/").as_deref(),
            Some("cliente/90000001")
        );
        assert_eq!(
            path("https://api.awsli.com.br/api/v1/cliente/7?format=json").as_deref(),
            Some("cliente/7")
        );
        assert_eq!(path("90000001").as_deref(), Some("cliente/90000001"));
        assert_eq!(path("/api/v1/produto/1"), None);
        assert_eq!(path("/api/v1/cliente/"), None);
        assert_eq!(path(""), None);
    }
}
