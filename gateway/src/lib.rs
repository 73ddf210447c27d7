//! The WebSocket gateway: live room events from the bus, with resume from the database.
//!
//! So far: the per-room endpoint `GET /ws/rooms/{room_id}/?token=..[&since=..]` (the token may
//! instead come as the `bearer.<JWT>` subprotocol), the close codes for a bad token, a missing
//! room and a non-member, the `connection` frame, replay after `since` then live messages with
//! no gap and no duplicate, edits, deletes, read receipts and typing passed through, client
//! `message` (stored as a REST post, then acknowledged), `typing`, `read` and `ping` frames, and
//! the slow-consumer close. Presence, the multiplexed endpoint and the protection limits come
//! next (see the gateway issue).

pub mod client_frames;
pub mod connection;
pub mod hub;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use chatboard_core::auth::TokenIssuer;
use chatboard_core::bus::{Bus, BusError};
use chatboard_core::store::Store;
use serde_json::json;

use crate::client_frames::Member;
use crate::connection::{close, close_with, follow_room};
use crate::hub::Hub;

/// Largest frame a client may send.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// What the gateway's handlers share.
#[derive(Clone)]
pub struct GatewayState {
    store: Arc<dyn Store>,
    tokens: TokenIssuer,
    bus: Arc<dyn Bus>,
    hub: Arc<Hub>,
}

impl GatewayState {
    /// Subscribes to the bus and builds the state around the store the API uses.
    pub async fn start(
        store: Arc<dyn Store>,
        tokens: TokenIssuer,
        bus: Arc<dyn Bus>,
    ) -> Result<Self, BusError> {
        Ok(Self {
            store,
            tokens,
            hub: Hub::start(bus.clone()).await?,
            bus,
        })
    }
}

/// The gateway's routes (with and without the trailing slash).
pub fn router(state: GatewayState) -> Router {
    Router::new()
        .route("/ws/rooms/{room_id}", get(room_socket))
        .route("/ws/rooms/{room_id}/", get(room_socket))
        .with_state(state)
}

/// `/health/live` and `/health/ready` (database and bus), for the gateway's own binary; in the
/// single-node binary the API's health routes answer for the whole process.
pub fn health_router(state: GatewayState) -> Router {
    Router::new()
        .route(
            "/health/live",
            get(|| async { Json(json!({"status": "ok"})) }),
        )
        .route("/health/ready", get(ready))
        .with_state(state)
}

async fn ready(State(state): State<GatewayState>) -> (StatusCode, Json<serde_json::Value>) {
    let timeout = std::time::Duration::from_secs(2);
    let verdict = |ok: Option<bool>| match ok {
        Some(true) => "ok",
        Some(false) => "error",
        None => "timeout",
    };
    let database = tokio::time::timeout(timeout, state.store.ping())
        .await
        .ok()
        .map(|r| r.is_ok());
    let bus = tokio::time::timeout(timeout, state.bus.ping())
        .await
        .ok()
        .map(|r| r.is_ok());
    let checks = json!({"database": verdict(database), state.bus.kind(): verdict(bus)});
    if database == Some(true) && bus == Some(true) {
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

/// The subprotocol prefix that carries the token outside the URL.
const BEARER_PROTOCOL: &str = "bearer.";

async fn room_socket(
    State(state): State<GatewayState>,
    Path(room): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let offered: Vec<String> = headers
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|p| p.trim().to_owned()))
        .collect();
    let from_protocol = offered
        .iter()
        .find_map(|p| p.strip_prefix(BEARER_PROTOCOL).map(str::to_owned));
    let token = query.get("token").cloned().or(from_protocol.clone());
    let since = query.get("since").and_then(|s| s.parse::<i64>().ok());
    let mut upgrade = upgrade
        .max_frame_size(MAX_FRAME_BYTES)
        .max_message_size(MAX_FRAME_BYTES);
    if let Some(p) = offered.iter().find(|p| p.starts_with(BEARER_PROTOCOL)) {
        // Echo the protocol the token came in, as browsers require.
        upgrade = upgrade.protocols([p.clone()]);
    }
    upgrade.on_upgrade(move |socket| async move {
        let user_id = match token.as_deref().map(|t| state.tokens.verify_access(t)) {
            Some(Ok(claims)) => claims.user_id,
            _ => return close_with(socket, close::UNAUTHENTICATED, "unauthenticated").await,
        };
        let Ok(room_id) = room.parse::<i64>() else {
            return close_with(socket, close::NO_ROOM, "no such room").await;
        };
        let access = match state.store.room_access(room_id, user_id).await {
            Ok(Some(access)) => access,
            Ok(None) => return close_with(socket, close::NO_ROOM, "no such room").await,
            Err(e) => {
                tracing::warn!(error = %e, "room check failed");
                return close_with(socket, 1011, "try again").await;
            }
        };
        if !access.is_member {
            return close_with(socket, close::NOT_MEMBER, "not a member").await;
        }
        let user_email = match state.store.user_by_id(user_id).await {
            Ok(Some(user)) => user.email,
            Ok(None) => return close_with(socket, close::UNAUTHENTICATED, "unknown account").await,
            Err(e) => {
                tracing::warn!(error = %e, "account lookup failed");
                return close_with(socket, 1011, "try again").await;
            }
        };
        let member = Member {
            store: state.store.clone(),
            bus: state.bus.clone(),
            room_id,
            user_id,
            user_email,
        };
        // Follow first, then read the database: nothing can fall between the two.
        let following = state.hub.follow(room_id);
        follow_room(socket, member, following, since).await;
    })
}
