//! Liveness, readiness and metrics.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;

/// How long a dependency may take to answer a readiness probe.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Health answer.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok` or `unavailable`.
    status: &'static str,
    /// Each dependency: `ok`, `timeout` or `error`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    checks: BTreeMap<&'static str, &'static str>,
}

/// 200 while the process can serve.
#[utoipa::path(get, path = "/health/live", tag = "health", responses((status = 200, body = Health)))]
pub async fn live() -> Json<Health> {
    Json(Health {
        status: "ok",
        checks: BTreeMap::new(),
    })
}

/// 200 when the database (and NATS, in the scale-out shape) answer, else 503 with what failed.
#[utoipa::path(get, path = "/health/ready", tag = "health", responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let database = match tokio::time::timeout(CHECK_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => "ok",
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database check failed");
            "error"
        }
        Err(_) => "timeout",
    };
    let mut checks = BTreeMap::from([("database", database)]);
    // The in-process bus cannot fail; NATS can.
    if state.bus.kind() == "nats" {
        let nats = match tokio::time::timeout(CHECK_TIMEOUT, state.bus.ping()).await {
            Ok(Ok(())) => "ok",
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "readiness: NATS check failed");
                "error"
            }
            Err(_) => "timeout",
        };
        checks.insert("nats", nats);
    }
    if checks.values().all(|c| *c == "ok") {
        (
            StatusCode::OK,
            Json(Health {
                status: "ok",
                checks,
            }),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "unavailable",
                checks,
            }),
        )
    }
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "health", responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    match state.metrics.render() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "metrics rendering failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
