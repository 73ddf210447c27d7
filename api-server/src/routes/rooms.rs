//! `/api/rooms/`: rooms, direct messages, membership and read receipts.
//!
//! Visibility follows the organization rule: someone outside a room's organization gets 404 for
//! everything about it. Inside the organization, reading a room needs a seat in it; managing it
//! (rename, re-level, delete, invite) needs to be its creator or an org ADMIN, and an ADMIN may
//! manage a room without sitting in it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chatboard_core::bus::BusEvent;
use chatboard_core::model::{AccessLevel, Role, Room, RoomMember};
use chatboard_core::store::{JoinVia, NewRoom, RoomAccess, RoomPatch};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery, AuthUser};
use crate::state::AppState;
use crate::validate::Validator;

/// Longest room name.
const ROOM_NAME_MAX: usize = 120;

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

/// The room as the caller may act on it; 404 when it does not exist or is in another org.
pub(crate) async fn room_access(
    state: &AppState,
    room_id: i64,
    user_id: i64,
) -> ApiResult<RoomAccess> {
    state
        .store
        .room_access(room_id, user_id)
        .await?
        .ok_or_else(ApiError::not_found)
}

/// 403 when the room's organization is suspended or archived.
pub(crate) fn writable(access: &RoomAccess) -> ApiResult<()> {
    match access.org_read_only {
        Some(code) => Err(ApiError::read_only(code)),
        None => Ok(()),
    }
}

/// The room, for someone with a seat in it; 404 otherwise.
pub(crate) async fn member_access(
    state: &AppState,
    room_id: i64,
    user_id: i64,
) -> ApiResult<RoomAccess> {
    let access = room_access(state, room_id, user_id).await?;
    if !access.is_member {
        return Err(ApiError::not_found());
    }
    Ok(access)
}

/// The room, for its creator or an org ADMIN: 404 for those who cannot see it, 403 for members
/// who may not manage it.
async fn manager_access(state: &AppState, room_id: i64, user_id: i64) -> ApiResult<RoomAccess> {
    let access = room_access(state, room_id, user_id).await?;
    let manages = access.org_role == Role::Admin || access.room.created_by == Some(user_id);
    match (manages, access.is_member) {
        (true, _) => Ok(access),
        (false, true) => Err(ApiError::forbidden(
            "Only the room's creator or an organization ADMIN may do this.",
        )),
        (false, false) => Err(ApiError::not_found()),
    }
}

/// The caller's role in `org_id`; 404 when not a member.
async fn org_role(state: &AppState, org_id: i64, user_id: i64) -> ApiResult<Role> {
    state
        .store
        .member_role(org_id, user_id)
        .await?
        .ok_or_else(ApiError::not_found)
}

async fn reload(state: &AppState, room_id: i64, user_id: i64) -> ApiResult<Room> {
    Ok(room_access(state, room_id, user_id).await?.room)
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
    let mut v = Validator::default();
    let name = v.text("name", &body.name, 1, ROOM_NAME_MAX);
    v.finish()?;
    let role = org_role(&state, body.org, user.id).await?;
    if role < Role::Manager {
        return Err(ApiError::forbidden(
            "Creating rooms needs the MANAGER or ADMIN role.",
        ));
    }
    let room = state
        .store
        .create_room(
            NewRoom {
                org_id: body.org,
                name,
                access_level: body.access_level.unwrap_or(AccessLevel::Public),
                created_by: user.id,
            },
            Utc::now(),
        )
        .await?;
    // Everyone seated with the room's creation follows it on their multiplexed sockets.
    match state.store.room_members(room.id).await {
        Ok(members) => {
            for member in members {
                state.announce_seated(room.id, member.user_id).await;
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, room_id = room.id, "reading the new room's members failed")
        }
    }
    tracing::info!(
        room_id = room.id,
        org_id = room.org,
        user_id = user.id,
        "room created"
    );
    Ok((StatusCode::CREATED, Json(room)))
}

/// Opens the direct-message room with another member of the organization: 201 when created,
/// 200 with the existing one otherwise.
#[utoipa::path(post, path = "/api/rooms/dm/", tag = "rooms", request_body = DmRequest, security(("bearer" = [])),
    responses((status = 201, body = Room), (status = 200, body = Room), (status = 400, body = ErrorBody),
        (status = 404, description = "not a member of that organization", body = ErrorBody)))]
pub async fn open_dm(
    user: AuthUser,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<DmRequest>,
) -> ApiResult<(StatusCode, Json<Room>)> {
    org_role(&state, body.org, user.id).await?;
    if body.user_id == user.id {
        return Err(ApiError::field(
            "user_id",
            "A direct message needs another person.",
        ));
    }
    if state
        .store
        .member_role(body.org, body.user_id)
        .await?
        .is_none()
    {
        return Err(ApiError::field(
            "user_id",
            "Not a member of this organization.",
        ));
    }
    let name = dm_name(&state, user.id, body.user_id).await?;
    let (room, created) = state
        .store
        .open_dm(body.org, user.id, body.user_id, &name, Utc::now())
        .await?;
    if created {
        for user_id in [user.id, body.user_id] {
            state.announce_seated(room.id, user_id).await;
        }
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(room)))
}

/// "a@example.com & b@example.com", in user-id order, cut to the room-name limit.
async fn dm_name(state: &AppState, a: i64, b: i64) -> ApiResult<String> {
    let mut emails = Vec::with_capacity(2);
    for id in [a.min(b), a.max(b)] {
        let user = state
            .store
            .user_by_id(id)
            .await?
            .ok_or_else(ApiError::not_found)?;
        emails.push(user.email);
    }
    Ok(emails.join(" & ").chars().take(ROOM_NAME_MAX).collect())
}

/// One room (room members).
#[utoipa::path(get, path = "/api/rooms/{id}/", tag = "rooms", params(("id" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, body = Room), (status = 404, body = ErrorBody)))]
pub async fn get(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(room_id): ApiPath<i64>,
) -> ApiResult<Json<Room>> {
    Ok(Json(member_access(&state, room_id, user.id).await?.room))
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
    let mut v = Validator::default();
    let name = body
        .name
        .as_deref()
        .map(|n| v.text("name", n, 1, ROOM_NAME_MAX));
    v.finish()?;
    writable(&manager_access(&state, room_id, user.id).await?)?;
    state
        .store
        .update_room(
            room_id,
            RoomPatch {
                name,
                access_level: body.access_level,
            },
        )
        .await?;
    Ok(Json(reload(&state, room_id, user.id).await?))
}

/// Deletes a room with its messages (its creator or an org ADMIN).
#[utoipa::path(delete, path = "/api/rooms/{id}/", tag = "rooms", params(("id" = i64, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(room_id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    writable(&manager_access(&state, room_id, user.id).await?)?;
    state.store.delete_room(room_id).await?;
    state
        .announce(BusEvent::RoomDeleted { room: room_id })
        .await;
    tracing::info!(room_id, user_id = user.id, "room deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Joins a room: 201 when joined, 200 when already a member. PUBLIC rooms admit any org
/// member, MANAGER_ONLY rooms MANAGERs and ADMINs; PRIVATE rooms and direct messages answer 403.
#[utoipa::path(post, path = "/api/rooms/{id}/join/", tag = "rooms", params(("id" = i64, Path)), security(("bearer" = [])),
    responses((status = 201, body = Room), (status = 200, body = Room),
        (status = 403, description = "permission_denied, invite_only or dm_not_joinable", body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn join(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(room_id): ApiPath<i64>,
) -> ApiResult<(StatusCode, Json<Room>)> {
    let access = room_access(&state, room_id, user.id).await?;
    if access.is_member {
        return Ok((StatusCode::OK, Json(access.room)));
    }
    writable(&access)?;
    if access.room.is_dm {
        return Err(ApiError::forbidden_because(
            "dm_not_joinable",
            "Direct-message rooms cannot be joined.",
        ));
    }
    match access.room.access_level {
        AccessLevel::Private => {
            return Err(ApiError::forbidden_because(
                "invite_only",
                "This room is private: its creator or an organization ADMIN can invite you.",
            ))
        }
        level if !level.admits(access.org_role) => {
            return Err(ApiError::forbidden("This room is for MANAGERs and ADMINs."))
        }
        _ => {}
    }
    let added = state
        .store
        .add_room_member(room_id, user.id, JoinVia::Join, Utc::now())
        .await?;
    if added {
        state.announce_seated(room_id, user.id).await;
    }
    let status = if added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(reload(&state, room_id, user.id).await?)))
}

/// Leaves a room. The two seats of a direct message are fixed (409).
#[utoipa::path(post, path = "/api/rooms/{id}/leave/", tag = "rooms", params(("id" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, body = LeftRoom), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn leave(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(room_id): ApiPath<i64>,
) -> ApiResult<Json<LeftRoom>> {
    let access = member_access(&state, room_id, user.id).await?;
    if access.room.is_dm {
        return Err(ApiError::conflict(
            "dm_cannot_leave",
            "A direct-message room always keeps its two members.",
        ));
    }
    state.store.remove_room_member(room_id, user.id).await?;
    state
        .announce(BusEvent::MemberLeft {
            room: room_id,
            user_id: user.id,
        })
        .await;
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
    let access = manager_access(&state, room_id, user.id).await?;
    writable(&access)?;
    if access.room.is_dm {
        return Err(ApiError::conflict(
            "dm_immutable",
            "A direct-message room cannot take more members.",
        ));
    }
    let invitee_role = state
        .store
        .member_role(access.room.org, body.user_id)
        .await?
        .ok_or_else(|| ApiError::field("user_id", "Not a member of this organization."))?;
    if access.room.access_level == AccessLevel::ManagerOnly
        && !AccessLevel::ManagerOnly.admits(invitee_role)
    {
        return Err(ApiError::field(
            "user_id",
            "This room is for MANAGERs and ADMINs.",
        ));
    }
    let added = state
        .store
        .add_room_member(room_id, body.user_id, JoinVia::Invite, Utc::now())
        .await?;
    if added {
        state.announce_seated(room_id, body.user_id).await;
    }
    let status = if added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(reload(&state, room_id, user.id).await?)))
}

/// The members of a room with their read pointers (room members).
#[utoipa::path(get, path = "/api/rooms/{id}/members/", tag = "rooms", params(("id" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, body = [RoomMember]), (status = 404, body = ErrorBody)))]
pub async fn members(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(room_id): ApiPath<i64>,
) -> ApiResult<Json<Vec<RoomMember>>> {
    member_access(&state, room_id, user.id).await?;
    Ok(Json(state.store.room_members(room_id).await?))
}

/// Marks the room read up to a message of it. Monotonic: an older id leaves the pointer where it
/// is; the answer says where it stands.
#[utoipa::path(post, path = "/api/rooms/{id}/read/{msg_id}/", tag = "rooms",
    params(("id" = i64, Path), ("msg_id" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, body = ReadState), (status = 404, description = "no such room, not a member, or the message is not in this room", body = ErrorBody)))]
pub async fn mark_read(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath((room_id, msg_id)): ApiPath<(i64, i64)>,
) -> ApiResult<Json<ReadState>> {
    member_access(&state, room_id, user.id).await?;
    let last_read_msg_id = state.store.mark_read(room_id, user.id, msg_id).await?;
    state
        .announce(BusEvent::Read {
            room: room_id,
            user_id: user.id,
            last_read_msg_id,
        })
        .await;
    Ok(Json(ReadState {
        room_id,
        last_read_msg_id,
    }))
}
