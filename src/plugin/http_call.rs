//! The `http.send` host import as one sandboxed call sees it: an
//! [`HttpRequest`] checked and sent through the instance's
//! [`super::http::HttpContext`] (allowlist, size caps, request budget),
//! bounded by the call's deadline and cancellation, with the reason recorded
//! as a sandbox [`Fault`] when the call has to stop.
//!
//! It sits above both [`super::http`] (the request machinery) and
//! [`super::sandbox`] (the call's state), so neither imports the other.
//!
//! The import is async: the guest's fiber is suspended while the request
//! runs on the same tokio task, instead of blocking a pool thread on the
//! runtime (two cross-thread wake-ups per request, tens of µs of CPU each on
//! a small VM).

use reqwest::Url;

use super::http::{
    HttpFailure, HttpRequest, HttpResponse, MAX_BUDGET_WAIT_SHARE, check_request_size, origin,
};
use super::sandbox::{CallState, Fault};

/// The `http.send` import. `Err` aborts the whole call (its deadline passed
/// or the caller gave up while waiting); `Ok(Err(_))` goes back to the plugin.
pub(crate) async fn send(
    state: &mut CallState,
    request: HttpRequest,
) -> wasmtime::Result<Result<HttpResponse, HttpFailure>> {
    let ctx = state.ctx.clone();
    let http = &ctx.http;
    if let Err(failure) = check_request_size(&request) {
        tracing::debug!(plugin = %ctx.plugin, instance = %ctx.instance, "plugin HTTP request refused: {failure:?}");
        return Ok(Err(failure));
    }
    let url = match Url::parse(&request.url) {
        Ok(url) => url,
        Err(e) => {
            return Ok(Err(HttpFailure::InvalidRequest(format!(
                "invalid URL: {e}"
            ))));
        }
    };
    if let Err(failure) = http.check_destination(&url, &ctx.instance) {
        tracing::debug!(plugin = %ctx.plugin, instance = %ctx.instance, "plugin HTTP request refused: {failure:?}");
        return Ok(Err(failure));
    }
    let max_budget_wait = state.remaining() / MAX_BUDGET_WAIT_SHARE;
    let cancel = state.cancel.clone();
    let budget = tokio::select! {
        () = cancel.cancelled() => None,
        spent = http.spend_budget(max_budget_wait) => Some(spent),
    };
    match budget {
        Some(Ok(())) => {}
        Some(Err(failure)) => {
            tracing::debug!(plugin = %ctx.plugin, instance = %ctx.instance, "plugin HTTP request refused: {failure:?}");
            return Ok(Err(failure));
        }
        None => {
            state.fault = Some(Fault::Cancelled);
            return Err(wasmtime::Error::msg(
                "the call was cancelled while waiting for the request budget",
            ));
        }
    }
    let remaining = state.remaining();
    // The plugin may ask for less time than the call has left, never more.
    let (limit, bounded_by_call) = match request.timeout {
        Some(asked) if asked < remaining => (asked, false),
        _ => (remaining, true),
    };
    let instance = ctx.instance.as_str();
    let outcome = tokio::select! {
        () = cancel.cancelled() => None,
        result = tokio::time::timeout(limit, http.execute(request, &url, instance, max_budget_wait)) => Some(result),
    };
    match outcome {
        Some(Ok(result)) => Ok(result),
        Some(Err(_elapsed)) if !bounded_by_call => Ok(Err(HttpFailure::Timeout)),
        Some(Err(_elapsed)) => {
            // Named only here: `origin` allocates, and most requests end well.
            state.fault = Some(Fault::HostWait {
                during: format!("an HTTP response from {}", origin(&url)),
            });
            Err(wasmtime::Error::msg(
                "the call's deadline passed during an HTTP request",
            ))
        }
        None => {
            state.fault = Some(Fault::Cancelled);
            Err(wasmtime::Error::msg(
                "the call was cancelled during an HTTP request",
            ))
        }
    }
}
