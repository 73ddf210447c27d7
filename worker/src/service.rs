//! The worker's HTTP side (health and metrics) and the loop that keeps its gauges current.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chatboard_core::store::Store;
use chrono::Utc;
use prometheus::{Encoder, IntCounter, IntGauge, Registry, TextEncoder};
use serde_json::json;

/// The worker's metrics.
pub struct WorkerMetrics {
    registry: Registry,
    /// Outbox events not yet handed to the job queue.
    pub outbox_backlog: IntGauge,
    /// Age of the oldest of them, in seconds (0 when none).
    pub outbox_oldest_age: IntGauge,
    /// Events handed over.
    pub relayed: IntCounter,
    /// Relay rounds that failed.
    pub relay_failures: IntCounter,
}

impl WorkerMetrics {
    /// Creates and registers the metrics.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let outbox_backlog = IntGauge::new(
            "chatboard_outbox_backlog",
            "Outbox events not yet handed to the job queue.",
        )?;
        let outbox_oldest_age = IntGauge::new(
            "chatboard_outbox_oldest_age_seconds",
            "Age of the oldest outbox event not yet handed over (0 when none).",
        )?;
        let relayed = IntCounter::new(
            "chatboard_outbox_relayed_total",
            "Outbox events handed to the job queue.",
        )?;
        let relay_failures = IntCounter::new(
            "chatboard_outbox_relay_failures_total",
            "Outbox relay rounds that failed (database or queue unavailable).",
        )?;
        registry.register(Box::new(outbox_backlog.clone()))?;
        registry.register(Box::new(outbox_oldest_age.clone()))?;
        registry.register(Box::new(relayed.clone()))?;
        registry.register(Box::new(relay_failures.clone()))?;
        Ok(Self {
            registry,
            outbox_backlog,
            outbox_oldest_age,
            relayed,
            relay_failures,
        })
    }

    fn render(&self) -> Result<String, prometheus::Error> {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        String::from_utf8(out).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}

/// What the HTTP handlers need.
#[derive(Clone)]
pub struct ServiceState {
    /// The database.
    pub store: Arc<dyn Store>,
    /// NATS, for readiness.
    pub nats: async_nats::Client,
    /// Metrics.
    pub metrics: Arc<WorkerMetrics>,
}

/// `/health/live`, `/health/ready` (database and NATS) and `/metrics`.
pub fn router(state: ServiceState) -> Router {
    Router::new()
        .route(
            "/health/live",
            get(|| async { Json(json!({"status": "ok"})) }),
        )
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn ready(State(state): State<ServiceState>) -> (StatusCode, Json<serde_json::Value>) {
    let timeout = Duration::from_secs(2);
    let database = tokio::time::timeout(timeout, state.store.ping())
        .await
        .is_ok_and(|r| r.is_ok());
    let nats = tokio::time::timeout(timeout, state.nats.flush())
        .await
        .is_ok_and(|r| r.is_ok());
    let verdict = |ok: bool| if ok { "ok" } else { "error" };
    let checks = json!({"database": verdict(database), "nats": verdict(nats)});
    if database && nats {
        (
            StatusCode::OK,
            Json(json!({"status": "ok", "checks": checks})),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "checks": checks})),
        )
    }
}

async fn metrics(State(state): State<ServiceState>) -> Response {
    match state.metrics.render() {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "metrics rendering failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Refreshes the backlog gauges every `every`.
pub async fn watch_backlog(store: Arc<dyn Store>, metrics: Arc<WorkerMetrics>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        match store.outbox_backlog().await {
            Ok((count, oldest)) => {
                metrics.outbox_backlog.set(count);
                let age = oldest.map_or(0, |t| (Utc::now() - t).num_seconds().max(0));
                metrics.outbox_oldest_age.set(age);
            }
            Err(e) => tracing::warn!(error = %e, "reading the outbox backlog failed"),
        }
    }
}
