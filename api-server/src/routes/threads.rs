//! Threads: a thread's replies, following it, its read pointer, and the caller's followed
//! threads (`/auth/me/threads/`). Replies are posted through the messages endpoint with a
//! `parent_id`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chat::validate::Validator;
use chatboard_core::model::Message;
use chatboard_store::Timeline;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiPath, ApiQuery, AuthUser};
use crate::routes::mentions::org_param;
use crate::routes::messages::CursorQuery;
use crate::state::AppState;

/// Page size of the followed threads when `limit` is absent.
const DEFAULT_THREADS: i64 = 20;
/// Largest page of followed threads.
const MAX_THREADS: i64 = 50;

/// A page of a thread's replies, with its root and where the reader stands.
#[derive(Serialize, ToSchema)]
pub struct ThreadPage {
    /// The thread's root message (shown as deleted once deleted; its replies stay).
    root: Message,
    /// Whether the reader follows the thread.
    following: bool,
    /// The newest message of the thread the reader has read, or null.
    last_read_id: Option<i64>,
    /// Replies: newest first (no cursor or `before`), oldest first (`after`).
    results: Vec<Message>,
    /// Path and query of the following page in the same direction, or null at the end.
    next: Option<String>,
}

/// A page of a thread's replies, by the id of its root or of any of its replies. Same cursors
/// as the room's messages.
#[utoipa::path(get, path = "/api/rooms/{id}/messages/{msg_id}/thread/", tag = "threads",
    params(("id" = i64, Path), ("msg_id" = i64, Path), CursorQuery), security(("bearer" = [])),
    responses((status = 200, body = ThreadPage), (status = 400, body = ErrorBody),
        (status = 404, description = "no such room, not a member, or the message is not in this room", body = ErrorBody)))]
pub async fn page(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath((room_id, msg_id)): ApiPath<(i64, i64)>,
    ApiQuery(query): ApiQuery<CursorQuery>,
) -> ApiResult<Json<ThreadPage>> {
    let mut v = Validator::default();
    let page = query.params(&mut v);
    v.finish()?;
    let thread = state.chat.open_thread(user.id, room_id, msg_id).await?;
    let root_id = thread.root.id;
    let mut results = state
        .store
        .list_messages(
            room_id,
            user.id,
            Timeline::Thread(root_id),
            page.cursor,
            (page.limit + 1) as u32,
        )
        .await?
        .ok_or_else(ApiError::not_found)?;
    let next = page.finish(
        &mut results,
        &format!("/api/rooms/{room_id}/messages/{root_id}/thread/"),
        "",
    );
    // The root and its replies marked in one lookup: the root goes last and comes back out.
    results.push(thread.root);
    state.chat.mark_own_reactions(user.id, &mut results).await?;
    let root = results.pop().ok_or_else(ApiError::internal)?;
    Ok(Json(ThreadPage {
        root,
        following: thread.follow.following,
        last_read_id: thread.follow.last_read_id,
        results,
        next,
    }))
}

/// Follows a thread (by its root or any reply); 204. Following is also what replying does.
#[utoipa::path(put, path = "/api/rooms/{id}/messages/{msg_id}/thread/follow/", tag = "threads",
    params(("id" = i64, Path), ("msg_id" = i64, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn follow(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath((room_id, msg_id)): ApiPath<(i64, i64)>,
) -> ApiResult<StatusCode> {
    state
        .chat
        .set_following(user.id, room_id, msg_id, true)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Unfollows a thread; 204. It stays unfollowed (being answered or mentioned does not follow
/// it again) until the caller follows it or replies in it.
#[utoipa::path(delete, path = "/api/rooms/{id}/messages/{msg_id}/thread/follow/", tag = "threads",
    params(("id" = i64, Path), ("msg_id" = i64, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn unfollow(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath((room_id, msg_id)): ApiPath<(i64, i64)>,
) -> ApiResult<StatusCode> {
    state
        .chat
        .set_following(user.id, room_id, msg_id, false)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Where a reader's pointer stands in a thread.
#[derive(Serialize, ToSchema)]
pub struct ThreadReadState {
    /// The thread's root.
    root_id: i64,
    /// The newest message of the thread marked read.
    last_read_id: i64,
}

/// Marks a thread read up to one of its messages (the root or a reply). Monotonic, as the
/// room's pointer.
#[utoipa::path(post, path = "/api/rooms/{id}/messages/{msg_id}/thread/read/{reply_id}/", tag = "threads",
    params(("id" = i64, Path), ("msg_id" = i64, Path, description = "the thread: its root or any reply"),
        ("reply_id" = i64, Path, description = "the newest message read")),
    security(("bearer" = [])),
    responses((status = 200, body = ThreadReadState),
        (status = 404, description = "no such room or thread, not a member, or the message is not in the thread", body = ErrorBody)))]
pub async fn mark_read(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath((room_id, msg_id, reply_id)): ApiPath<(i64, i64, i64)>,
) -> ApiResult<Json<ThreadReadState>> {
    // One seat check and one root lookup, in the action.
    let (root_id, last_read_id) = state
        .chat
        .mark_thread_read(user.id, room_id, msg_id, reply_id)
        .await?;
    Ok(Json(ThreadReadState {
        root_id,
        last_read_id,
    }))
}

/// Paging parameters of `GET /auth/me/threads/`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FollowedQuery {
    /// 1 to 50, default 20.
    limit: Option<String>,
    /// The `next` link's cursor: threads with older activity.
    before: Option<String>,
    /// Only this organization's threads.
    org: Option<String>,
}

/// A thread the caller follows.
#[derive(Serialize, ToSchema)]
pub struct FollowedThreadView {
    /// The room it is in.
    room: i64,
    /// Its root message, with `reply_count`, `last_reply_at` and `repliers`.
    root: Message,
    /// Replies from others after the caller's pointer, not counting deleted ones.
    unread_replies: i64,
    /// The caller's pointer in the thread, or null.
    last_read_id: Option<i64>,
}

/// A page of followed threads.
#[derive(Serialize, ToSchema)]
pub struct FollowedThreads {
    /// Latest activity (newest reply) first.
    results: Vec<FollowedThreadView>,
    /// Path and query of the next page, or null at the end.
    next: Option<String>,
}

/// The threads the caller follows in rooms they sit in, latest reply first, with unread reply
/// counts.
#[utoipa::path(get, path = "/auth/me/threads/", tag = "threads", params(FollowedQuery),
    security(("bearer" = [])),
    responses((status = 200, body = FollowedThreads), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn followed(
    user: AuthUser,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<FollowedQuery>,
) -> ApiResult<Json<FollowedThreads>> {
    let mut v = Validator::default();
    let limit = v.int_in(
        "limit",
        query.limit.as_deref(),
        1,
        MAX_THREADS,
        DEFAULT_THREADS,
    ) as usize;
    let before = v.optional_id("before", query.before.as_deref());
    let org = v.optional_id("org", query.org.as_deref());
    v.finish()?;
    let mut threads = state
        .store
        .followed_threads(user.id, org, before, (limit + 1) as u32)
        .await?;
    let more = threads.len() > limit;
    threads.truncate(limit);
    let next = threads.last().filter(|_| more).map(|last| {
        format!(
            "/auth/me/threads/?before={}&limit={limit}{}",
            last.activity,
            org_param(org)
        )
    });
    let mut roots: Vec<Message> = threads.iter().map(|t| t.root.clone()).collect();
    state.chat.mark_own_reactions(user.id, &mut roots).await?;
    let results = threads
        .into_iter()
        .zip(roots)
        .map(|(t, root)| FollowedThreadView {
            room: root.room,
            root,
            unread_replies: t.unread_replies,
            last_read_id: t.last_read_id,
        })
        .collect();
    Ok(Json(FollowedThreads { results, next }))
}
