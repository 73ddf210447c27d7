//! `/api/orgs/`: organizations, their members and invitations.
//!
//! A caller who is not a member of an organization gets 404 for everything in it, exactly as if
//! it did not exist; a member without the needed role gets 403.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chat::InviteDraft;
use chatboard_core::model::{OrgMember, OrgView, Role};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, AuthUser, InviteAddress};
use crate::routes::to_completion;
use crate::state::AppState;

/// Body of `POST /api/orgs/` and `PATCH /api/orgs/{id}/`.
#[derive(Deserialize, ToSchema)]
pub struct OrgRequest {
    /// 1 to 120 characters.
    name: String,
}

/// Body of `POST /api/orgs/{id}/invite/`.
#[derive(Deserialize, ToSchema)]
pub struct InviteRequest {
    /// Who to invite.
    email: String,
    /// Role on acceptance (default MEMBER).
    #[serde(default)]
    role: Option<Role>,
}

/// A created invitation; the token is shown only here.
#[derive(Serialize, ToSchema)]
pub struct InviteCreated {
    /// Invitation id.
    id: i64,
    /// Invited address.
    email: String,
    /// Role granted on acceptance.
    role: Role,
    /// The secret to send to the invitee.
    token: String,
    /// When it stops working.
    expires_at: DateTime<Utc>,
}

/// Body of `POST /api/orgs/accept-invite/`.
#[derive(Deserialize, ToSchema)]
pub struct AcceptRequest {
    /// The invitation token.
    token: String,
}

/// Result of accepting an invitation.
#[derive(Serialize, ToSchema)]
pub struct AcceptResponse {
    /// Organization joined.
    org_id: i64,
    /// Role held in it.
    role: Role,
}

/// Body of `POST /api/orgs/{id}/members/{user_id}/role/`.
#[derive(Deserialize, ToSchema)]
pub struct RoleRequest {
    /// The new role.
    role: Role,
}

/// A member's role after a change.
#[derive(Serialize, ToSchema)]
pub struct RoleResponse {
    /// The member.
    user_id: i64,
    /// Their role now.
    role: Role,
}

/// The organizations the caller belongs to.
#[utoipa::path(get, path = "/api/orgs/", tag = "orgs", security(("bearer" = [])),
    responses((status = 200, body = [OrgView]), (status = 401, body = ErrorBody)))]
pub async fn list(user: AuthUser, State(state): State<AppState>) -> ApiResult<Json<Vec<OrgView>>> {
    Ok(Json(state.store.orgs_for_user(user.id).await?))
}

/// Creates an organization; the caller becomes its ADMIN.
#[utoipa::path(post, path = "/api/orgs/", tag = "orgs", request_body = OrgRequest, security(("bearer" = [])),
    responses((status = 201, body = OrgView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn create(
    user: AuthUser,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<OrgRequest>,
) -> ApiResult<(StatusCode, Json<OrgView>)> {
    let org = state.chat.create_org(user.id, &body.name).await?;
    Ok((StatusCode::CREATED, Json(org)))
}

/// One organization.
#[utoipa::path(get, path = "/api/orgs/{id}/", tag = "orgs", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = OrgView), (status = 404, body = ErrorBody)))]
pub async fn get(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(org_id): ApiPath<i64>,
) -> ApiResult<Json<OrgView>> {
    Ok(Json(state.chat.org_view(org_id, user.id).await?))
}

/// Renames an organization (ADMIN). Operator-managed organizations answer 409.
#[utoipa::path(patch, path = "/api/orgs/{id}/", tag = "orgs", request_body = OrgRequest, security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = OrgView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn rename(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(org_id): ApiPath<i64>,
    ApiJson(body): ApiJson<OrgRequest>,
) -> ApiResult<Json<OrgView>> {
    Ok(Json(
        state.chat.rename_org(user.id, org_id, &body.name).await?,
    ))
}

/// Deletes an organization and everything in it (ADMIN); its rooms' messages go in the
/// background after the answer. Operator-managed organizations answer 409.
#[utoipa::path(delete, path = "/api/orgs/{id}/", tag = "orgs", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(org_id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    let chat = state.chat.clone();
    to_completion(async move { Ok(chat.delete_org(user.id, org_id).await?) }).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The members of an organization.
#[utoipa::path(get, path = "/api/orgs/{id}/members/", tag = "orgs", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = [OrgMember]), (status = 404, body = ErrorBody)))]
pub async fn members(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(org_id): ApiPath<i64>,
) -> ApiResult<Json<Vec<OrgMember>>> {
    Ok(Json(state.chat.org_members(user.id, org_id).await?))
}

/// Invites someone by email (MANAGER or ADMIN; only an ADMIN may invite an ADMIN).
#[utoipa::path(post, path = "/api/orgs/{id}/invite/", tag = "orgs", request_body = InviteRequest, security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 201, body = InviteCreated), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "already_member or invite_pending", body = ErrorBody),
        (status = 429, description = "rate_limited: the inviter's or the client address's invitations for the hour are spent; see Retry-After", body = ErrorBody)))]
pub async fn invite(
    user: AuthUser,
    address: InviteAddress,
    State(state): State<AppState>,
    ApiPath(org_id): ApiPath<i64>,
    ApiJson(body): ApiJson<InviteRequest>,
) -> ApiResult<(StatusCode, Json<InviteCreated>)> {
    let draft = InviteDraft {
        email: body.email,
        role: body.role,
    };
    let checked = state.chat.check_invite(user.id, org_id, draft).await?;
    address.charge(&state)?;
    let invite = state.chat.send_invite(checked).await?;
    Ok((
        StatusCode::CREATED,
        Json(InviteCreated {
            id: invite.id,
            email: invite.email,
            role: invite.role,
            token: invite.token,
            expires_at: invite.expires_at,
        }),
    ))
}

/// An invitation still waiting to be accepted (its token is never shown again).
#[derive(Serialize, ToSchema)]
pub struct OpenInvitation {
    /// Invitation id.
    id: i64,
    /// Invited address.
    email: String,
    /// Role granted on acceptance.
    role: Role,
    /// When it stops working.
    expires_at: DateTime<Utc>,
}

/// The organization's open invitations, newest first (MANAGER or ADMIN).
#[utoipa::path(get, path = "/api/orgs/{id}/invitations/", tag = "orgs", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = [OpenInvitation]), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn invitations(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(org_id): ApiPath<i64>,
) -> ApiResult<Json<Vec<OpenInvitation>>> {
    let open = state.chat.open_invitations(user.id, org_id).await?;
    Ok(Json(
        open.into_iter()
            .map(|i| OpenInvitation {
                id: i.id,
                email: i.email,
                role: i.role,
                expires_at: i.expires_at,
            })
            .collect(),
    ))
}

/// Revokes an open invitation: its token and link stop working (MANAGER or ADMIN; only an
/// ADMIN revokes an invitation to be ADMIN).
#[utoipa::path(delete, path = "/api/orgs/{id}/invitations/{invite_id}/", tag = "orgs", security(("bearer" = [])),
    params(("id" = i64, Path), ("invite_id" = i64, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, description = "no such open invitation", body = ErrorBody)))]
pub async fn revoke_invitation(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath((org_id, invite_id)): ApiPath<(i64, i64)>,
) -> ApiResult<StatusCode> {
    state
        .chat
        .revoke_invitation(user.id, org_id, invite_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Accepts an invitation addressed to the caller's email. A caller already a member keeps their
/// role, or takes the invitation's if higher (the operator's ADMIN invitation to a listed member).
#[utoipa::path(post, path = "/api/orgs/accept-invite/", tag = "orgs", request_body = AcceptRequest, security(("bearer" = [])),
    responses((status = 200, body = AcceptResponse), (status = 400, body = ErrorBody), (status = 403, description = "issued to another email", body = ErrorBody),
        (status = 404, description = "unknown, used, revoked or expired", body = ErrorBody),
        (status = 409, description = "member_limit_reached: the organization's maxMembers quota", body = ErrorBody)))]
pub async fn accept_invite(
    user: AuthUser,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<AcceptRequest>,
) -> ApiResult<Json<AcceptResponse>> {
    let chat = state.chat.clone();
    let joined =
        to_completion(async move { Ok(chat.accept_invite(user.id, &body.token).await?) }).await?;
    Ok(Json(AcceptResponse {
        org_id: joined.org_id,
        role: joined.role,
    }))
}

/// Changes a member's role (ADMIN); the last ADMIN cannot be demoted.
#[utoipa::path(post, path = "/api/orgs/{id}/members/{user_id}/role/", tag = "orgs", request_body = RoleRequest, security(("bearer" = [])),
    params(("id" = i64, Path), ("user_id" = i64, Path)),
    responses((status = 200, body = RoleResponse), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn set_role(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath((org_id, member_id)): ApiPath<(i64, i64)>,
    ApiJson(body): ApiJson<RoleRequest>,
) -> ApiResult<Json<RoleResponse>> {
    let chat = state.chat.clone();
    let role = body.role;
    to_completion(async move {
        Ok(chat
            .set_member_role(user.id, org_id, member_id, role)
            .await?)
    })
    .await?;
    Ok(Json(RoleResponse {
        user_id: member_id,
        role: body.role,
    }))
}

/// Removes a member (ADMIN), or leaves (the member themself); the last ADMIN cannot go.
#[utoipa::path(delete, path = "/api/orgs/{id}/members/{user_id}/", tag = "orgs", security(("bearer" = [])),
    params(("id" = i64, Path), ("user_id" = i64, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn remove_member(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath((org_id, member_id)): ApiPath<(i64, i64)>,
) -> ApiResult<StatusCode> {
    let chat = state.chat.clone();
    to_completion(async move { Ok(chat.remove_member(user.id, org_id, member_id).await?) }).await?;
    Ok(StatusCode::NO_CONTENT)
}
