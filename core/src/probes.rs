//! What every service's `/health/*` and `/metrics` answer: one readiness verdict built from
//! timed dependency checks, and the Prometheus text exposition.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

/// How long a dependency may take to answer a readiness probe: well under a second, so a
/// probe with a one-second timeout gets a 503 rather than no answer when something is down.
pub const CHECK_TIMEOUT: Duration = Duration::from_millis(750);

/// A health answer: `{"status": ..., "checks": {...}}`.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, `unavailable` or `draining`.
    pub status: &'static str,
    /// Each dependency: `ok`, `timeout` or `error`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub checks: BTreeMap<&'static str, &'static str>,
}

impl Health {
    /// The liveness answer: the process runs.
    pub fn live() -> Self {
        Self {
            status: "ok",
            checks: BTreeMap::new(),
        }
    }

    /// No checks yet; add them with [`Health::require`] and [`Health::report`].
    pub fn checking() -> Self {
        Self::live()
    }

    /// Runs a check the process cannot serve without: anything but `ok` makes it unavailable.
    pub async fn require<T, E: Display>(
        mut self,
        name: &'static str,
        check: impl Future<Output = Result<T, E>>,
    ) -> Self {
        let verdict = verdict(name, check).await;
        if verdict != "ok" && self.status == "ok" {
            self.status = "unavailable";
        }
        self.checks.insert(name, verdict);
        self
    }

    /// Runs a check that is reported but does not decide readiness (work waits for it).
    pub async fn report<T, E: Display>(
        mut self,
        name: &'static str,
        check: impl Future<Output = Result<T, E>>,
    ) -> Self {
        let verdict = verdict(name, check).await;
        self.checks.insert(name, verdict);
        self
    }

    /// Marks the process as draining (shutting down): not ready, whatever the checks say.
    pub fn draining(mut self, draining: bool) -> Self {
        if draining {
            self.status = "draining";
        }
        self
    }

    /// Whether a load balancer should send traffic.
    pub fn is_ready(&self) -> bool {
        self.status == "ok"
    }

    /// The HTTP answer: 200 when ready, else 503.
    pub fn into_reply(self) -> (StatusCode, Json<Health>) {
        let status = if self.is_ready() {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        (status, Json(self))
    }
}

/// `ok`, `error` or `timeout` for one dependency check (failures are logged).
async fn verdict<T, E: Display>(
    name: &'static str,
    check: impl Future<Output = Result<T, E>>,
) -> &'static str {
    match tokio::time::timeout(CHECK_TIMEOUT, check).await {
        Ok(Ok(_)) => "ok",
        Ok(Err(e)) => {
            tracing::warn!(check = name, error = %e, "readiness check failed");
            "error"
        }
        Err(_) => {
            tracing::warn!(check = name, "readiness check timed out");
            "timeout"
        }
    }
}

/// The Prometheus text exposition of `rendered`, or 500 when rendering failed.
pub fn metrics_reply<E: Display>(rendered: Result<String, E>) -> Response {
    match rendered {
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

/// `/health/live` (always 200), `/health/ready` and `/metrics` with the service's own handlers.
pub fn probe_routes<S: Clone + Send + Sync + 'static>(
    ready: MethodRouter<S>,
    metrics: MethodRouter<S>,
) -> Router<S> {
    Router::new()
        .route("/health/live", get(|| async { Json(Health::live()) }))
        .route("/health/ready", ready)
        .route("/metrics", metrics)
}
