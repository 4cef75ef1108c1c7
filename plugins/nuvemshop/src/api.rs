//! Requests to the Nuvemshop API: the two headers every request needs, the
//! leaky bucket's headers read after every answer, and what each error
//! status means for the store (see docs/platforms/nuvemshop.md §Requests,
//! §Rate limit).

use arauto_plugin_sdk::connector::http::{self, HttpResponse, RequestBuilder, redact_url};
use arauto_plugin_sdk::connector::{PluginError, misconfigured, permanent, retry_after, retryable};
use serde_json::Value;

use crate::settings::{REQUEST_TIMEOUT_MS, Settings};

/// The bucket is "nearly full" at this many free requests or fewer (or an
/// eighth of its size, when larger): the connector stops before it fills.
pub const BUCKET_FLOOR: u64 = 5;

/// What the last answer said about the leaky bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bucket {
    /// `x-rate-limit-limit`: the bucket's size.
    pub limit: Option<u64>,
    /// `x-rate-limit-remaining`: requests left before it is full.
    pub remaining: Option<u64>,
    /// `x-rate-limit-reset`: ms until it is completely empty.
    pub reset_ms: Option<u64>,
}

impl Bucket {
    /// The headers of `response`.
    pub fn of(response: &HttpResponse) -> Self {
        Self {
            limit: response.header_u64("x-rate-limit-limit"),
            remaining: response.header_u64("x-rate-limit-remaining"),
            reset_ms: response.header_u64("x-rate-limit-reset"),
        }
    }

    fn floor(&self) -> u64 {
        BUCKET_FLOOR.max(self.limit.unwrap_or(0) / 8)
    }

    /// True when at most the floor is left: the next request could meet a
    /// 429 if anything else spends the bucket.
    pub fn nearly_full(&self) -> bool {
        self.remaining.is_some_and(|r| r <= self.floor())
    }

    /// How long until the bucket has leaked back above the floor: the
    /// missing drops at the rate the headers show (fill ÷ time to empty),
    /// 2 per second when they show none.
    pub fn wait_ms(&self) -> u64 {
        let Some(remaining) = self.remaining else {
            return 0;
        };
        let missing = (self.floor() + 1).saturating_sub(remaining);
        let per_drop_ms = match (self.limit, self.reset_ms) {
            (Some(limit), Some(reset)) if limit > remaining => reset / (limit - remaining),
            _ => 500,
        };
        missing
            .saturating_mul(per_drop_ms.max(1))
            .clamp(500, 60_000)
    }
}

/// Why one order could not be read, as opposed to the store failing.
#[derive(Debug)]
pub enum ReadError {
    /// 404: the order is gone or not visible to the app.
    NotFound,
    /// The order's own answer is unusable (not JSON, not an object, over the
    /// size cap); the message says what arrived.
    Unreadable(String),
    /// A failure of the store (credentials, rate limit, 5xx): the call fails.
    Store(PluginError),
}

/// One store's API.
pub struct Api<'a> {
    settings: &'a Settings,
    /// Bucket state after the last answer of this call.
    pub bucket: Bucket,
}

impl<'a> Api<'a> {
    /// An API client for the store in `settings`.
    pub fn new(settings: &'a Settings) -> Self {
        Self {
            settings,
            bucket: Bucket::default(),
        }
    }

    fn request(&self, builder: RequestBuilder) -> RequestBuilder {
        builder
            .header(
                "authentication",
                &format!("bearer {}", self.settings.access_token),
            )
            .header("user-agent", &self.settings.user_agent)
            .header("accept", "application/json")
            .timeout_ms(REQUEST_TIMEOUT_MS)
    }

    /// Send, remember the bucket, and map error statuses (see [`Self::classify`]).
    fn send(&mut self, builder: RequestBuilder) -> Result<HttpResponse, PluginError> {
        let response = self.request(builder).send()?;
        self.bucket = Bucket::of(&response);
        self.classify(response)
    }

    /// 2xx passes; 429 is retryable after the bucket's reset; 401/403
    /// reject the token; 400 is a request Nuvemshop refuses (most often a
    /// missing or odd User-Agent); 404 and other 4xx are permanent; 5xx and
    /// 408 retryable. Bodies are quoted at most 200 characters, scrubbed.
    pub fn classify(&self, response: HttpResponse) -> Result<HttpResponse, PluginError> {
        if response.is_success() {
            return Ok(response);
        }
        let what = format!(
            "HTTP {} from {}: {}",
            response.status,
            redact_url(&response.url),
            self.settings.scrub(&response.excerpt(200))
        );
        let store = &self.settings.store_id;
        Err(match response.status {
            429 => {
                let wait = Bucket::of(&response)
                    .reset_ms
                    .or_else(|| response.retry_after_ms())
                    .unwrap_or(1000)
                    .max(1);
                retry_after(
                    format!("Nuvemshop's request bucket for store {store} is full ({what})"),
                    wait,
                )
            }
            402 => misconfigured(format!(
                "Nuvemshop suspended API access for store {store} ({what}): the app or the \
                 store has an unpaid bill; polling resumes once it is settled"
            )),
            401 | 403 => misconfigured(format!(
                "Nuvemshop rejected the credentials for store {store} ({what}): check \
                 `access_token` (the app's token for this store, issued at install) and \
                 `store_id`; a reinstalled app gets a new token"
            )),
            400 => misconfigured(format!(
                "Nuvemshop refused the request for store {store} ({what}): it answers 400 when \
                 `user_agent` is missing or unusable; check it and `base_url`"
            )),
            408 | 500..=599 => match response.retry_after_ms() {
                Some(ms) => retry_after(what, ms),
                None => retryable(what),
            },
            _ => permanent(what),
        })
    }

    /// `GET {base}/{store}/orders?…` with `updated_at_min`, `updated_at_max`
    /// (when given), `page`, `per_page`.
    /// A 404 whose body says "Last page is N" is how the API answers a page
    /// past the end (rows moved away while the sweep read): an empty page.
    pub fn list_orders(
        &mut self,
        updated_at_min: &str,
        updated_at_max: Option<&str>,
        page: u32,
        per_page: u32,
    ) -> Result<ListPage, PluginError> {
        let max = updated_at_max
            .map(|max| format!("&updated_at_max={}", http::encode_component(max)))
            .unwrap_or_default();
        let url = self.settings.url(&format!(
            "orders?updated_at_min={}{max}&page={page}&per_page={per_page}",
            http::encode_component(updated_at_min)
        ));
        let response = self.request(http::get(&url)).send()?;
        self.bucket = Bucket::of(&response);
        if response.status == 404 && is_empty_result(&response) {
            return Ok(ListPage::default());
        }
        if response.status == 404 {
            return Err(misconfigured(format!(
                "Nuvemshop answered 404 for the order list of store {} ({}): check `store_id` \
                 and `base_url`",
                self.settings.store_id,
                redact_url(&url)
            )));
        }
        let response = self.classify(response)?;
        let rows = match response.json::<Value>()? {
            Value::Array(rows) => rows,
            other => {
                return Err(retryable(format!(
                    "the order list from {} is not a JSON array but {}",
                    redact_url(&url),
                    kind_of(&other)
                )));
            }
        };
        let next_page = response
            .header("link")
            .and_then(|link| http::link_target(link, "next"))
            .and_then(|next| http::query_param(&next, "page"))
            .and_then(|p| p.parse().ok());
        Ok(ListPage {
            rows,
            total: response.header_u64("x-total-count"),
            next_page,
        })
    }

    /// `GET {base}/{store}/orders/{id}`.
    pub fn order(&mut self, id: &str) -> Result<Value, ReadError> {
        let url = self
            .settings
            .url(&format!("orders/{}", http::encode_component(id)));
        let response = match self.request(http::get(&url)).send_raw() {
            Ok(r) => r,
            Err(http::HttpError::TooLarge(cap)) => {
                return Err(ReadError::Unreadable(format!(
                    "its answer exceeded the host's {cap}-byte cap"
                )));
            }
            Err(e) => return Err(ReadError::Store(http::transport_error(&url, e))),
        };
        self.bucket = Bucket::of(&response);
        if response.status == 404 {
            return Err(ReadError::NotFound);
        }
        let response = self.classify(response).map_err(ReadError::Store)?;
        match serde_json::from_slice::<Value>(&response.body) {
            Ok(doc @ Value::Object(_)) => Ok(doc),
            Ok(other) => Err(ReadError::Unreadable(format!(
                "its detail is {} instead of an object",
                kind_of(&other)
            ))),
            Err(e) => Err(ReadError::Unreadable(format!(
                "its detail is not JSON ({e}); body starts with: {}",
                response.excerpt(120)
            ))),
        }
    }

    /// The cheapest authenticated call that needs the orders scope: one
    /// order id.
    pub fn check(&mut self) -> Result<(), PluginError> {
        let url = self.settings.url("orders?per_page=1&fields=id");
        let response = self.request(http::get(&url)).send()?;
        self.bucket = Bucket::of(&response);
        if response.status == 404 && is_empty_result(&response) {
            return Ok(());
        }
        if response.status == 404 {
            return Err(misconfigured(format!(
                "Nuvemshop answered 404 for store {} ({}): check `store_id` and `base_url`",
                self.settings.store_id,
                redact_url(&url)
            )));
        }
        self.classify(response).map(|_| ())
    }

    /// `GET {base}/{store}/webhooks?url=…`: the webhooks pointing at `url`.
    pub fn webhooks(&mut self, url: &str) -> Result<Vec<Webhook>, PluginError> {
        let list = self.settings.url(&format!(
            "webhooks?url={}&per_page=200",
            http::encode_component(url)
        ));
        let response = self.request(http::get(&list)).send()?;
        self.bucket = Bucket::of(&response);
        if response.status == 404 && is_empty_result(&response) {
            return Ok(Vec::new());
        }
        let rows = match self.classify(response)?.json::<Value>()? {
            Value::Array(rows) => rows,
            other => {
                return Err(retryable(format!(
                    "the webhook list is not a JSON array but {}",
                    kind_of(&other)
                )));
            }
        };
        Ok(rows
            .iter()
            .filter_map(|row| {
                Some(Webhook {
                    id: id_text(row.get("id")?)?,
                    event: row.get("event")?.as_str()?.to_owned(),
                    url: row.get("url")?.as_str()?.to_owned(),
                })
            })
            .filter(|w| w.url == url)
            .collect())
    }

    /// `POST {base}/{store}/webhooks` for one event.
    pub fn create_webhook(&mut self, event: &str, url: &str) -> Result<(), PluginError> {
        let builder = http::post(&self.settings.url("webhooks"))
            .json(&serde_json::json!({"event": event, "url": url}))?;
        self.send(builder).map(|_| ())
    }

    /// `DELETE {base}/{store}/webhooks/{id}`; a 404 means already gone.
    pub fn delete_webhook(&mut self, id: &str) -> Result<(), PluginError> {
        let url = self
            .settings
            .url(&format!("webhooks/{}", http::encode_component(id)));
        let response = self.request(http::delete(&url)).send()?;
        self.bucket = Bucket::of(&response);
        if response.status == 404 {
            return Ok(());
        }
        self.classify(response).map(|_| ())
    }
}

/// One page of `GET /orders`.
#[derive(Debug, Default)]
pub struct ListPage {
    /// The rows, as sent.
    pub rows: Vec<Value>,
    /// `x-total-count`.
    pub total: Option<u64>,
    /// The `page` of the `Link` header's `rel="next"`, when there is one.
    pub next_page: Option<u32>,
}

/// A registered webhook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Webhook {
    /// Its id, as text.
    pub id: String,
    /// `order/paid`, …
    pub event: String,
    /// Where it posts.
    pub url: String,
}

/// Nuvemshop answers a page past the last one (and, reportedly, a filter
/// without results) with 404 and a description such as "Last page is 0".
fn is_empty_result(response: &HttpResponse) -> bool {
    response
        .text()
        .to_ascii_lowercase()
        .contains("last page is")
}

/// An id sent as a number or as digits in a string.
pub fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) => n.as_u64().map(|n| n.to_string()),
        Value::String(s)
            if !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Some(s.clone())
        }
        _ => None,
    }
}

/// "an object", "a string", … for messages about unexpected JSON.
pub fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn bucket(limit: u64, remaining: u64, reset: u64) -> Bucket {
        Bucket {
            limit: Some(limit),
            remaining: Some(remaining),
            reset_ms: Some(reset),
        }
    }

    #[test]
    fn the_bucket_is_nearly_full_at_the_floor() {
        assert!(!bucket(40, 20, 10_000).nearly_full());
        assert!(bucket(40, 5, 17_500).nearly_full());
        assert!(bucket(400, 50, 17_500).nearly_full(), "an eighth of 400");
        assert!(!Bucket::default().nearly_full(), "no headers, no opinion");
    }

    #[test]
    fn the_wait_follows_the_leak_rate() {
        // 35 drops take 17.5 s to leak: 500 ms each; 1 missing above the floor of 5.
        assert_eq!(bucket(40, 5, 17_500).wait_ms(), 500);
        // 40 in the bucket, 20 s to empty: 6 drops of 500 ms.
        assert_eq!(bucket(40, 0, 20_000).wait_ms(), 3_000);
        assert_eq!(
            bucket(40, 30, 5_000).wait_ms(),
            500,
            "at least half a second"
        );
    }

    #[test]
    fn ids_are_digits() {
        assert_eq!(
            id_text(&serde_json::json!(450789469)).as_deref(),
            Some("450789469")
        );
        assert_eq!(id_text(&serde_json::json!("42")).as_deref(), Some("42"));
        assert_eq!(id_text(&serde_json::json!("4x")), None);
        assert_eq!(id_text(&serde_json::json!(-1)), None);
        assert_eq!(id_text(&serde_json::json!(1.5)), None);
    }
}
