//! Per-request bookkeeping: the request id, one JSON log line, metrics and rate-limit headers.
//!
//! The middleware puts a [`RequestContext`] into the request's extensions; extractors deeper down
//! record the authenticated user and the rate-limit standing in it, and the middleware reads
//! them back once the response is ready.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use crate::error::ActionRateLimited;
use crate::error::ApiError;
use crate::outage::StoreUnavailable;
use crate::rate_limit::RateInfo;
use crate::state::AppState;

/// `X-Request-Id`.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static RATE_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
static RATE_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");

/// What handlers learn about a request that its log line and headers need.
#[derive(Default)]
pub struct RequestContext {
    user_id: OnceLock<i64>,
    rate: Mutex<Option<RateInfo>>,
}

impl RequestContext {
    /// Records the authenticated user.
    pub fn set_user(&self, user_id: i64) {
        let _ = self.user_id.set(user_id);
    }

    /// Records the standing of one rate limit the request was counted against. The headers
    /// show the tightest: the one with the fewest requests left, which is the one that refused
    /// the request if one did (a password change counts against the address's and the
    /// user's limits, and a refusal by the second must not show the first's figures).
    pub fn set_rate(&self, info: RateInfo) {
        let Ok(mut rate) = self.rate.lock() else {
            return;
        };
        if rate.is_none_or(|shown| info.remaining <= shown.remaining) {
            *rate = Some(info);
        }
    }
}

/// An incoming id is kept when it is short and plain; anything else is replaced.
fn valid_request_id(value: &HeaderValue) -> Option<String> {
    let s = value.to_str().ok()?;
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    ok.then(|| s.to_owned())
}

/// One request counted in `chatboard_http_requests_in_flight` until dropped.
struct InFlight(prometheus::IntGauge);

impl InFlight {
    fn start(gauge: prometheus::IntGauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The middleware; see the module docs.
pub async fn track_request(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let request_id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(valid_request_id)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    // The route template, not the path, keeps metric labels bounded.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let method = method_label(request.method()).to_owned();
    let context = Arc::new(RequestContext::default());
    request.extensions_mut().insert(context.clone());
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        request.headers_mut().insert(&REQUEST_ID, value);
    }

    // Counted down however the request ends, also when its client hangs up and the request is
    // dropped before its answer (a plain decrement after it never ran then).
    let in_flight = InFlight::start(state.metrics.in_flight().clone());
    // Everything the request causes (its action, store calls, announcements) runs in this span.
    let span =
        tracing::info_span!("request", request_id = %request_id, method = %method, route = %route);
    // While the database is known to be down, fail fast (probes and metrics still answer).
    let probe = route.starts_with("/health") || route == "/metrics";
    let refusal = if probe { None } else { state.outage.refusal() };
    let mut response = match refusal {
        Some(left) => ApiError::unavailable()
            .with_retry_after(left.as_secs_f64().ceil().max(1.0) as u64)
            .into_response(),
        None => next.run(request).instrument(span).await,
    };
    if response.extensions().get::<ActionRateLimited>().is_some() {
        state.metrics.rate_limited("action");
    }
    if refusal.is_none() && response.extensions().get::<StoreUnavailable>().is_some() {
        state.outage.noticed();
    }
    drop(in_flight);

    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert(&REQUEST_ID, value);
    }
    let rate = context.rate.lock().ok().and_then(|rate| *rate);
    if let Some(rate) = rate {
        headers.insert(&RATE_LIMIT, HeaderValue::from(rate.limit));
        headers.insert(&RATE_REMAINING, HeaderValue::from(rate.remaining));
    }
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    state
        .metrics
        .observe(&method, &route, status, elapsed.as_secs_f64());
    tracing::info!(
        target: "chatboard::request",
        request_id = %request_id,
        method = %method,
        route = %route,
        status,
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        user_id = context.user_id.get().copied(),
        "request"
    );
    response
}

/// A request's method as a metric label: the standard ones by name, any other `"other"`. Any
/// token is a valid method, and each new label value is a series kept for good.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    const KNOWN: [Method; 9] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    KNOWN
        .iter()
        .find(|known| *known == method)
        .map_or("other", |known| known.as_str())
}
