//! The WebSocket handshake as an extractor whose refusals use the API's error shape: a plain
//! `GET` on a socket path (a browser tab, a health check pointed at the wrong path) gets a JSON
//! body with a `code`, like every other error, instead of axum's text.

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chatboard_core::error_code::ErrorCode;

/// A request that is a WebSocket handshake.
pub(crate) struct Handshake(pub(crate) WebSocketUpgrade);

impl<S: Send + Sync> FromRequestParts<S> for Handshake {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match WebSocketUpgrade::from_request_parts(parts, state).await {
            Ok(upgrade) => Ok(Handshake(upgrade)),
            Err(rejection) => {
                // 405 for another method; anything else (missing headers, a connection that
                // cannot be upgraded) is a request this endpoint does not take.
                let code = if rejection.status() == StatusCode::METHOD_NOT_ALLOWED {
                    ErrorCode::MethodNotAllowed
                } else {
                    ErrorCode::Invalid
                };
                let status = StatusCode::from_u16(code.status()).unwrap_or(StatusCode::BAD_REQUEST);
                let detail = format!(
                    "This is a WebSocket endpoint; connect with a WebSocket client ({}).",
                    rejection.body_text()
                );
                let body = serde_json::json!({"detail": detail, "code": code.code()});
                Err((status, Json(body)).into_response())
            }
        }
    }
}
