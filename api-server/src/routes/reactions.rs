//! `/api/rooms/{id}/messages/{msg_id}/reactions/`: adding and removing emoji reactions.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chatboard_core::model::Message;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, AuthUser};
use crate::routes::to_completion;
use crate::state::AppState;

/// Body of `POST .../reactions/`.
#[derive(Deserialize, ToSchema)]
pub struct ReactionRequest {
    /// A Unicode emoji (`👍`) or a GitHub shortcode (`:+1:`), stored as the emoji.
    emoji: String,
}

/// Adds the caller's reaction: 201 with the message (its `reactions`, the caller's marked `me`);
/// 200 when the caller already had it (nothing changes).
#[utoipa::path(post, path = "/api/rooms/{id}/messages/{msg_id}/reactions/", tag = "reactions",
    request_body = ReactionRequest, params(("id" = i64, Path), ("msg_id" = i64, Path)),
    security(("bearer" = [])),
    responses((status = 201, body = Message), (status = 200, description = "already there", body = Message),
        (status = 400, description = "not an emoji or known shortcode", body = ErrorBody),
        (status = 403, description = "org_suspended or org_archived", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "message_deleted, or too_many_reactions: the message has 20 different emoji and this is a new one", body = ErrorBody)))]
pub async fn add(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath((room_id, msg_id)): ApiPath<(i64, i64)>,
    ApiJson(request): ApiJson<ReactionRequest>,
) -> ApiResult<(StatusCode, Json<Message>)> {
    let chat = state.chat.clone();
    let outcome = to_completion(async move {
        Ok(chat
            .react(user.id, room_id, msg_id, &request.emoji, true)
            .await?)
    })
    .await?;
    let status = if outcome.changed {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(outcome.message)))
}

/// Removes the caller's reaction (the emoji or its shortcode, URL-encoded in the path); 204,
/// also when the caller had none.
#[utoipa::path(delete, path = "/api/rooms/{id}/messages/{msg_id}/reactions/{emoji}/", tag = "reactions",
    params(("id" = i64, Path), ("msg_id" = i64, Path), ("emoji" = String, Path, description = "URL-encoded emoji or :shortcode:")),
    security(("bearer" = [])),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn remove(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath((room_id, msg_id, emoji)): ApiPath<(i64, i64, String)>,
) -> ApiResult<StatusCode> {
    let chat = state.chat.clone();
    to_completion(async move { Ok(chat.react(user.id, room_id, msg_id, &emoji, false).await?) })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
