//! `/api/rooms/`: rooms, direct messages, membership and read receipts.
//!
//! Visibility follows the organization rule: someone outside a room's organization gets 404 for
//! everything about it. Inside the organization, reading a room needs a seat in it; managing it
//! (rename, re-level, delete, invite) needs to be its creator or an org ADMIN, and an ADMIN may
//! manage a room without sitting in it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chat::validate::Validator;
use chat::{Joined, RoomDraft};
use chatboard_core::model::{AccessLevel, Room, RoomMember};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery, AuthUser};
use crate::routes::to_completion;
use crate::state::AppState;

/// Body of `POST /api/rooms/`.
#[derive(Deserialize, ToSchema)]
pub struct CreateRoomRequest {
    /// Organization id.
    org: i64,
    /// 1 to 120 characters.
    name: String,
    /// Default PUBLIC.
    #[serde(default)]
    access_level: Option<AccessLevel>,
}

/// Body of `PATCH /api/rooms/{id}/`.
#[derive(Deserialize, ToSchema)]
pub struct UpdateRoomRequest {
    /// New name, 1 to 120 characters.
    #[serde(default)]
    name: Option<String>,
    /// New access level; members keep their seats, it governs who may join from now on.
    #[serde(default)]
    access_level: Option<AccessLevel>,
}

/// Body of `POST /api/rooms/dm/`.
#[derive(Deserialize, ToSchema)]
pub struct DmRequest {
    /// Organization both users belong to.
    org: i64,
    /// The other user.
    user_id: i64,
}

/// Body of `POST /api/rooms/{id}/invite/`.
#[derive(Deserialize, ToSchema)]
pub struct RoomInviteRequest {
    /// A member of the room's organization.
    user_id: i64,
}

/// Filter of `GET /api/rooms/`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RoomListQuery {
    /// Only rooms of this organization.
    org: Option<String>,
}

/// Result of leaving a room.
#[derive(Serialize, ToSchema)]
pub struct LeftRoom {
    /// The room left.
    room_id: i64,
    /// Always true.
    left: bool,
}

/// A member's read pointer.
#[derive(Serialize, ToSchema)]
pub struct ReadState {
    /// The room.
    room_id: i64,
    /// Newest message marked read (never moves backwards).
    last_read_msg_id: i64,
}

/// The rooms the caller is a member of, optionally of one organization.
#[utoipa::path(get, path = "/api/rooms/", tag = "rooms", params(RoomListQuery), security(("bearer" = [])),
    responses((status = 200, body = [Room]), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list(
    user: AuthUser,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<RoomListQuery>,
) -> ApiResult<Json<Vec<Room>>> {
    let mut v = Validator::default();
    let org = v.optional_id("org", query.org.as_deref());
    v.finish()?;
    Ok(Json(state.store.rooms_for_user(user.id, org).await?))
}

/// Creates a room (org MANAGER or ADMIN). PUBLIC rooms seat every org member, MANAGER_ONLY rooms
/// every MANAGER and ADMIN, PRIVATE rooms only the creator.
#[utoipa::path(post, path = "/api/rooms/", tag = "rooms", request_body = CreateRoomRequest, security(("bearer" = [])),
    responses((status = 201, body = Room), (status = 400, body = ErrorBody),
        (status = 403, description = "permission_denied, or org_suspended / org_archived", body = ErrorBody),
        (status = 404, description = "not a member of that organization", body = ErrorBody),
        (status = 409, description = "room_limit_reached: the organization's maxRooms quota", body = ErrorBody)))]
pub async fn create(
    user: AuthUser,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateRoomRequest>,
) -> ApiResult<(StatusCode, Json<Room>)> {
    let draft = RoomDraft {
        org_id: body.org,
        name: body.name,
        access_level: body.access_level,
    };
    // To its end: the new room's seats are announced after its commit, member by member.
    let chat = state.chat.clone();
    let room = to_completion(async move { Ok(chat.create_room(user.id, draft).await?) }).await?;
    Ok((StatusCode::CREATED, Json(room)))
}

/// Opens the direct-message room with another member of the organization: 201 when created,
/// 200 with the existing one otherwise.
#[utoipa::path(post, path = "/api/rooms/dm/", tag = "rooms", request_body = DmRequest, security(("bearer" = [])),
    responses((status = 201, body = Room), (status = 200, body = Room), (status = 400, body = ErrorBody),
        (status = 403, description = "org_suspended or org_archived: the organization is read-only", body = ErrorBody),
        (status = 404, description = "not a member of that organization", body = ErrorBody),
        (status = 409, description = "room_limit_reached: the organization has its maxRooms (direct messages count)", body = ErrorBody)))]
pub async fn open_dm(
    user: AuthUser,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<DmRequest>,
) -> ApiResult<(StatusCode, Json<Room>)> {
    let chat = state.chat.clone();
    let joined =
        to_completion(async move { Ok(chat.open_dm(user.id, body.org, body.user_id).await?) })
            .await?;
    Ok(created_or_ok(joined))
}

/// 201 with the room when the seat (or the room) is new, 200 when it was already there.
fn created_or_ok(joined: Joined) -> (StatusCode, Json<Room>) {
    let status = if joined.added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, Json(joined.room))
}

/// One room (room members).
#[utoipa::path(get, path = "/api/rooms/{id}/", tag = "rooms", params(("id" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, body = Room), (status = 404, body = ErrorBody)))]
pub async fn get(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(room_id): ApiPath<i64>,
) -> ApiResult<Json<Room>> {
    Ok(Json(state.chat.room(user.id, room_id).await?))
}

/// Renames or re-levels a room (its creator or an org ADMIN). Direct messages answer 409.
#[utoipa::path(patch, path = "/api/rooms/{id}/", tag = "rooms", request_body = UpdateRoomRequest, params(("id" = i64, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = Room), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(room_id): ApiPath<i64>,
    ApiJson(body): ApiJson<UpdateRoomRequest>,
) -> ApiResult<Json<Room>> {
    let room = state
        .chat
        .update_room(user.id, room_id, body.name.as_deref(), body.access_level)
        .await?;
    Ok(Json(room))
}

/// Deletes a room with its messages (its creator or an org ADMIN); the messages go in the
/// background after the answer, and none can be read from then on.
#[utoipa::path(delete, path = "/api/rooms/{id}/", tag = "rooms", params(("id" = i64, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "dm_immutable: only an org ADMIN deletes a direct-message room", body = ErrorBody)))]
pub async fn delete(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(room_id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    let chat = state.chat.clone();
    to_completion(async move { Ok(chat.delete_room(user.id, room_id).await?) }).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Joins a room: 201 when joined, 200 when already a member. PUBLIC rooms admit any org
/// member, MANAGER_ONLY rooms MANAGERs and ADMINs; PRIVATE rooms and direct messages answer
/// 404 (403 to an org ADMIN, who sees them).
#[utoipa::path(post, path = "/api/rooms/{id}/join/", tag = "rooms", params(("id" = i64, Path)), security(("bearer" = [])),
    responses((status = 201, body = Room), (status = 200, body = Room),
        (status = 403, description = "permission_denied (a MANAGER_ONLY room), or to an org ADMIN invite_only (PRIVATE) or dm_not_joinable; others get 404 for those", body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn join(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(room_id): ApiPath<i64>,
) -> ApiResult<(StatusCode, Json<Room>)> {
    let chat = state.chat.clone();
    let joined = to_completion(async move { Ok(chat.join_room(user.id, room_id).await?) }).await?;
    Ok(created_or_ok(joined))
}

/// Leaves a room. The two seats of a direct message are fixed (409).
#[utoipa::path(post, path = "/api/rooms/{id}/leave/", tag = "rooms", params(("id" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, body = LeftRoom), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn leave(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(room_id): ApiPath<i64>,
) -> ApiResult<Json<LeftRoom>> {
    let chat = state.chat.clone();
    to_completion(async move { Ok(chat.leave_room(user.id, room_id).await?) }).await?;
    Ok(Json(LeftRoom {
        room_id,
        left: true,
    }))
}

/// Seats an org member in the room (its creator or an org ADMIN): 201 when added, 200 when
/// already a member. A MANAGER_ONLY room takes only MANAGERs and ADMINs.
#[utoipa::path(post, path = "/api/rooms/{id}/invite/", tag = "rooms", request_body = RoomInviteRequest, params(("id" = i64, Path)),
    security(("bearer" = [])),
    responses((status = 201, body = Room), (status = 200, body = Room), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn invite(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(room_id): ApiPath<i64>,
    ApiJson(body): ApiJson<RoomInviteRequest>,
) -> ApiResult<(StatusCode, Json<Room>)> {
    let chat = state.chat.clone();
    let joined =
        to_completion(
            async move { Ok(chat.invite_to_room(user.id, room_id, body.user_id).await?) },
        )
        .await?;
    Ok(created_or_ok(joined))
}

/// Member lookup parameters of `GET /api/rooms/{id}/members/`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MemberQuery {
    /// Only members whose address, first or last name starts with this (any case), at most
    /// `limit` of them by address: what a client completes a mention from.
    q: Option<String>,
    /// With `q` only (400 without it): 1 to 50, default 10.
    limit: Option<String>,
}

/// Longest member lookup prefix.
const MEMBER_QUERY_MAX: usize = 100;

/// The members of a room with their read pointers (room members); with `q`, those whose
/// address or name starts with it.
#[utoipa::path(get, path = "/api/rooms/{id}/members/", tag = "rooms", params(("id" = i64, Path), MemberQuery), security(("bearer" = [])),
    responses((status = 200, body = [RoomMember]), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn members(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(room_id): ApiPath<i64>,
    ApiQuery(query): ApiQuery<MemberQuery>,
) -> ApiResult<Json<Vec<RoomMember>>> {
    let Some(q) = query.q else {
        // The whole list: a limit would be silently ignored.
        if query.limit.is_some() {
            let mut v = Validator::default();
            v.add(
                "limit",
                "Only with q: without it the whole list is answered.",
            );
            v.finish()?;
        }
        return Ok(Json(state.chat.room_members(user.id, room_id).await?));
    };
    let mut v = Validator::default();
    let limit = v.int_in("limit", query.limit.as_deref(), 1, 50, 10);
    let q = v.text("q", &q, 0, MEMBER_QUERY_MAX);
    v.finish()?;
    Ok(Json(
        state
            .chat
            .find_members(user.id, room_id, &q, limit as u32)
            .await?,
    ))
}

/// Marks the room read up to a message of it. Monotonic: an older id leaves the pointer where it
/// is; the answer says where it stands. A pointer that moved is announced as a `read` frame to
/// the room's sockets, or only to the reader's own in a room of more than 50 members.
#[utoipa::path(post, path = "/api/rooms/{id}/read/{msg_id}/", tag = "rooms",
    params(("id" = i64, Path), ("msg_id" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, body = ReadState), (status = 404, description = "no such room, not a member, or the message is not in this room", body = ErrorBody)))]
pub async fn mark_read(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath((room_id, msg_id)): ApiPath<(i64, i64)>,
) -> ApiResult<Json<ReadState>> {
    let chat = state.chat.clone();
    let last_read_msg_id =
        to_completion(async move { Ok(chat.mark_read(user.id, room_id, msg_id).await?) }).await?;
    Ok(Json(ReadState {
        room_id,
        last_read_msg_id,
    }))
}
