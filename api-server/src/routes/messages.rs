//! `/api/rooms/{id}/messages/`: posting, cursor paging, editing and deleting messages.
//!
//! Every call needs a seat in the room (404 otherwise, as for the room itself). Posting,
//! editing and deleting are the application layer's (`chat`); reading pages is this handler's,
//! with its page cache.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chat::validate::Validator;
use chat::MessageDraft;
use chatboard_core::model::Message;
use chatboard_store::{PageCursor, Timeline};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery, AuthUser};
use crate::page_cache::PageKey;
use crate::routes::to_completion;
use crate::state::AppState;

/// Page size when `limit` is absent.
const DEFAULT_LIMIT: i64 = 50;
/// Largest page.
const MAX_LIMIT: i64 = 100;

/// Paging parameters of `GET /api/rooms/{id}/messages/`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1 to 100, default 50.
    limit: Option<String>,
    /// Messages older than this id, newest first.
    before: Option<String>,
    /// Messages newer than this id, oldest first.
    after: Option<String>,
    /// `all` (default): replies included, as sockets deliver them; `roots`: no replies.
    threads: Option<String>,
}

/// Cursor paging parameters (`limit`, `before`, `after`), for any list of messages.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CursorQuery {
    /// 1 to 100, default 50.
    limit: Option<String>,
    /// Messages older than this id, newest first.
    before: Option<String>,
    /// Messages newer than this id, oldest first.
    after: Option<String>,
}

/// A page's cursor and size, validated.
pub(crate) struct PageParams {
    /// Where the page starts.
    pub cursor: PageCursor,
    /// How many messages it holds at most.
    pub limit: usize,
}

impl PageParams {
    /// Reads `limit`, `before` and `after` (each problem into `v`).
    fn read(
        v: &mut Validator,
        limit: Option<&str>,
        before: Option<&str>,
        after: Option<&str>,
    ) -> Self {
        let limit = v.int_in("limit", limit, 1, MAX_LIMIT, DEFAULT_LIMIT);
        let before_id = v.optional_id("before", before);
        let after_id = v.optional_id("after", after);
        if before.is_some() && after.is_some() {
            v.add("after", "Use either before or after, not both.");
        }
        let cursor = match (before_id, after_id) {
            (Some(id), _) => PageCursor::Before(id),
            (_, Some(id)) => PageCursor::After(id),
            _ => PageCursor::Newest,
        };
        Self {
            cursor,
            limit: limit as usize,
        }
    }

    /// Cuts a page read with one row more than asked to size, and links the next one:
    /// `{path}?{direction}={id}&limit={limit}{extra}`, or `None` at the end.
    pub(crate) fn finish(
        &self,
        results: &mut Vec<Message>,
        path: &str,
        extra: &str,
    ) -> Option<String> {
        let more = results.len() > self.limit;
        results.truncate(self.limit);
        let last = results.last().filter(|_| more)?;
        let direction = match self.cursor {
            PageCursor::After(_) => "after",
            _ => "before",
        };
        Some(format!(
            "{path}?{direction}={}&limit={}{extra}",
            last.id, self.limit
        ))
    }
}

impl CursorQuery {
    /// The validated cursor and size.
    pub(crate) fn params(&self, v: &mut Validator) -> PageParams {
        PageParams::read(
            v,
            self.limit.as_deref(),
            self.before.as_deref(),
            self.after.as_deref(),
        )
    }
}

/// A page of messages.
#[derive(Serialize, ToSchema)]
pub struct MessagePage {
    /// Newest first (no cursor or `before`), oldest first (`after`).
    results: Vec<Message>,
    /// Path and query of the following page in the same direction, or null at the end.
    next: Option<String>,
}

/// Body of `POST /api/rooms/{id}/messages/`.
#[derive(Deserialize, ToSchema)]
pub struct PostMessageRequest {
    /// Id of a message of the room to answer: the reply joins its thread (its root's thread
    /// when it is itself a reply).
    #[serde(default)]
    parent_id: Option<i64>,
    /// Non-blank text of at most 4,000 characters (required unless `file_id` is given).
    #[serde(default)]
    body: Option<String>,
    /// Id of a completed upload of the sender's.
    #[serde(default)]
    file_id: Option<String>,
    /// Up to 64 characters: resending the same value returns the original message.
    #[serde(default)]
    client_msg_id: Option<String>,
}

/// Body of `PATCH /api/rooms/{id}/messages/{msg_id}/`.
#[derive(Deserialize, ToSchema)]
pub struct EditMessageRequest {
    /// The new text, at most 4,000 characters: non-blank, unless the message carries a file
    /// (a blank body then takes its caption away).
    body: String,
}

/// A page of a room's messages. `next` continues in the same direction; it is null once there
/// is nothing further.
#[utoipa::path(get, path = "/api/rooms/{id}/messages/", tag = "messages", params(("id" = i64, Path), PageQuery),
    security(("bearer" = [])),
    responses((status = 200, body = MessagePage), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(room_id): ApiPath<i64>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Response> {
    let mut v = Validator::default();
    let page = PageParams::read(
        &mut v,
        query.limit.as_deref(),
        query.before.as_deref(),
        query.after.as_deref(),
    );
    let timeline = match query.threads.as_deref() {
        None | Some("all") => Timeline::All,
        Some("roots") => Timeline::Roots,
        Some(_) => {
            v.add("threads", "Use all or roots.");
            Timeline::All
        }
    };
    v.finish()?;
    let key = PageKey {
        room_id,
        timeline,
        cursor: page.cursor,
        limit: page.limit as u32,
    };
    // With the cache on: the seat check and the room's version in one cheap query, and the page
    // from the cache when nothing that could change it has happened since it was built. With it
    // off, the page query below checks the seat itself.
    let version = if state.pages.enabled() {
        let version = state
            .store
            .page_version(room_id, user.id)
            .await?
            .ok_or_else(ApiError::not_found)?;
        if let Some((json, reacted)) = state.pages.get(&key, version) {
            // The cached page says no reaction is the reader's; true unless they reacted to
            // one of its messages, and then the page is built for them below.
            let theirs = if reacted.is_empty() {
                false
            } else {
                !state
                    .store
                    .reactions_by(user.id, &reacted)
                    .await?
                    .is_empty()
            };
            if !theirs {
                state.metrics.page_cache(true);
                return Ok(json_response(json));
            }
        }
        state.metrics.page_cache(false);
        Some(version)
    } else {
        None
    };
    // One extra row says whether a next page exists without a second query.
    let mut results = state
        .store
        .list_messages(
            room_id,
            user.id,
            timeline,
            page.cursor,
            (page.limit + 1) as u32,
        )
        .await?
        .ok_or_else(ApiError::not_found)?;
    let extra = if timeline == Timeline::Roots {
        "&threads=roots"
    } else {
        ""
    };
    let next = page.finish(
        &mut results,
        &format!("/api/rooms/{room_id}/messages/"),
        extra,
    );
    let mut page = MessagePage { results, next };
    // The cache keeps the page as anyone sees it; the reader's own reactions go in afterwards.
    let reacted: Vec<i64> = page
        .results
        .iter()
        .filter(|m| !m.reactions.is_empty())
        .map(|m| m.id)
        .collect();
    if let Some(version) = version {
        state
            .pages
            .put(key, version, page_json(&page)?, reacted.into());
    }
    state
        .chat
        .mark_own_reactions(user.id, &mut page.results)
        .await?;
    Ok(json_response(page_json(&page)?))
}

fn page_json(page: &MessagePage) -> ApiResult<Bytes> {
    let json = serde_json::to_vec(page).map_err(|e| {
        tracing::error!(error = %e, "page serialisation failed");
        ApiError::internal()
    })?;
    Ok(Bytes::from(json))
}

fn json_response(json: Bytes) -> Response {
    ([(CONTENT_TYPE, "application/json")], json).into_response()
}

/// Posts a message: 201 when stored; 200 with the original when this sender already posted the
/// same `client_msg_id` to the room (nothing new is stored or announced).
#[utoipa::path(post, path = "/api/rooms/{id}/messages/", tag = "messages", request_body = PostMessageRequest,
    params(("id" = i64, Path)), security(("bearer" = [])),
    responses((status = 201, body = Message), (status = 200, description = "a repeated client_msg_id", body = Message),
        (status = 400, body = ErrorBody), (status = 403, description = "org_suspended or org_archived: the organization is read-only", body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "upload_quota_exceeded: the attached file does not fit the organization's upload quota", body = ErrorBody),
        (status = 413, description = "file_too_large: over the organization's uploadMaxBytes", body = ErrorBody),
        (status = 429, description = "rate_limited: over a posting limit, the per-user one or the organization's rateLimitPerMinute (see Retry-After)", body = ErrorBody)))]
pub async fn post(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(room_id): ApiPath<i64>,
    ApiJson(request): ApiJson<PostMessageRequest>,
) -> ApiResult<(StatusCode, Json<Message>)> {
    let draft = MessageDraft {
        body: request.body,
        file_id: request.file_id,
        client_msg_id: request.client_msg_id,
        parent_id: request.parent_id,
    };
    let chat = state.chat.clone();
    let posted =
        to_completion(async move { Ok(chat.post_message(user.id, room_id, draft).await?) }).await?;
    let status = if posted.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(posted.message)))
}

/// Edits a message (its sender); deleted messages answer 409.
#[utoipa::path(patch, path = "/api/rooms/{id}/messages/{msg_id}/", tag = "messages", request_body = EditMessageRequest,
    params(("id" = i64, Path), ("msg_id" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, body = Message), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn edit(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath((room_id, msg_id)): ApiPath<(i64, i64)>,
    ApiJson(request): ApiJson<EditMessageRequest>,
) -> ApiResult<Json<Message>> {
    let chat = state.chat.clone();
    let message = to_completion(async move {
        Ok(chat
            .edit_message(user.id, room_id, msg_id, &request.body)
            .await?)
    })
    .await?;
    Ok(Json(message))
}

/// Deletes a message (its sender or an org ADMIN): it stays in listings with `is_deleted: true`
/// and an empty body. Deleting it again answers 204 too.
#[utoipa::path(delete, path = "/api/rooms/{id}/messages/{msg_id}/", tag = "messages",
    params(("id" = i64, Path), ("msg_id" = i64, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath((room_id, msg_id)): ApiPath<(i64, i64)>,
) -> ApiResult<StatusCode> {
    let chat = state.chat.clone();
    to_completion(async move { Ok(chat.delete_message(user.id, room_id, msg_id).await?) }).await?;
    Ok(StatusCode::NO_CONTENT)
}
