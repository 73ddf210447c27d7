//! Liveness, readiness and metrics (the answers themselves are `chatboard_core::probes`, shared
//! by every service; these handlers carry the OpenAPI description).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use chatboard_core::probes::{metrics_reply, Health};

use crate::state::AppState;

/// 200 while the process can serve.
#[utoipa::path(get, path = "/health/live", tag = "health", responses((status = 200, body = Health)))]
pub async fn live() -> Json<Health> {
    Json(Health::live())
}

/// 200 when the database answers, else 503; NATS (in the scale-out shape) is reported without
/// failing it: requests go on while NATS is away (their changes are stored, and announced again
/// when it is back), where a failing probe took every api-server out of its Service at once.
#[utoipa::path(get, path = "/health/ready", tag = "health", responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let health = Health::checking()
        .require("database", state.store.ping())
        .await;
    // The in-process bus cannot fail; NATS can.
    let health = if state.bus.kind() == "nats" {
        health.report("nats", state.bus.ping()).await
    } else {
        health
    };
    health.into_reply()
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "health", responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    metrics_reply(state.metrics.render())
}
