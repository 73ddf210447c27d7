//! `/api/orgs/`: organizations, their members and invitations.
//!
//! A caller who is not a member of an organization gets 404 for everything in it, exactly as if
//! it did not exist; a member without the needed role gets 403.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chatboard_core::auth::{hash_token, new_secret_token};
use chatboard_core::model::{OrgMember, OrgView, Role};
use chatboard_core::store::{EmailKind, NewInvite, OutgoingEmail};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, AuthUser};
use crate::state::AppState;
use crate::validate::Validator;

/// Longest organization name.
const ORG_NAME_MAX: usize = 120;
/// Longest invitation token accepted (ours are 43 characters).
const INVITE_TOKEN_MAX: usize = 256;

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

/// The caller's role in `org_id`: 404 when not a member, 403 when below `needed`.
pub(crate) async fn require_role(
    state: &AppState,
    org_id: i64,
    user_id: i64,
    needed: Role,
) -> ApiResult<Role> {
    let role = state
        .store
        .member_role(org_id, user_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    at_least(role, needed)
}

/// As [`require_role`], for a change: also 403 when the organization is suspended or archived.
pub(crate) async fn require_role_to_write(
    state: &AppState,
    org_id: i64,
    user_id: i64,
    needed: Role,
) -> ApiResult<Role> {
    let org = org_view(state, org_id, user_id).await?;
    at_least(org.role, needed)?;
    match (org.archived, org.suspended) {
        (true, _) => Err(ApiError::read_only("org_archived")),
        (false, true) => Err(ApiError::read_only("org_suspended")),
        (false, false) => Ok(org.role),
    }
}

fn at_least(role: Role, needed: Role) -> ApiResult<Role> {
    if role < needed {
        return Err(ApiError::forbidden(format!(
            "This needs the {} role in the organization.",
            needed.as_str()
        )));
    }
    Ok(role)
}

async fn org_view(state: &AppState, org_id: i64, user_id: i64) -> ApiResult<OrgView> {
    state
        .store
        .org_for_member(org_id, user_id)
        .await?
        .ok_or_else(ApiError::not_found)
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
    let mut v = Validator::default();
    let name = v.text("name", &body.name, 1, ORG_NAME_MAX);
    v.finish()?;
    let org = state.store.create_org(user.id, &name, Utc::now()).await?;
    tracing::info!(org_id = org.id, user_id = user.id, "organization created");
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
    Ok(Json(org_view(&state, org_id, user.id).await?))
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
    require_role_to_write(&state, org_id, user.id, Role::Admin).await?;
    let mut v = Validator::default();
    let name = v.text("name", &body.name, 1, ORG_NAME_MAX);
    v.finish()?;
    state.store.rename_org(org_id, &name).await?;
    Ok(Json(org_view(&state, org_id, user.id).await?))
}

/// Deletes an organization and everything in it (ADMIN). Operator-managed organizations answer 409.
#[utoipa::path(delete, path = "/api/orgs/{id}/", tag = "orgs", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(org_id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    require_role(&state, org_id, user.id, Role::Admin).await?;
    let mut seated = Vec::new();
    for member in state.store.org_members(org_id).await? {
        seated.push((member.user_id, state.seats(member.user_id).await));
    }
    state.store.delete_org(org_id).await?;
    for (user_id, before) in seated {
        state.announce_seats_lost(user_id, &before).await;
    }
    tracing::info!(org_id, user_id = user.id, "organization deleted");
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
    require_role(&state, org_id, user.id, Role::Member).await?;
    Ok(Json(state.store.org_members(org_id).await?))
}

/// Invites someone by email (MANAGER or ADMIN; only an ADMIN may invite an ADMIN).
#[utoipa::path(post, path = "/api/orgs/{id}/invite/", tag = "orgs", request_body = InviteRequest, security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 201, body = InviteCreated), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "already_member or invite_pending", body = ErrorBody)))]
pub async fn invite(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(org_id): ApiPath<i64>,
    ApiJson(body): ApiJson<InviteRequest>,
) -> ApiResult<(StatusCode, Json<InviteCreated>)> {
    let inviter_role = require_role(&state, org_id, user.id, Role::Manager).await?;
    let mut v = Validator::default();
    let email = v.email("email", &body.email);
    v.finish()?;
    let role = body.role.unwrap_or(Role::Member);
    if !inviter_role.may_invite(role) {
        return Err(ApiError::forbidden(format!(
            "A {} cannot invite an {}.",
            inviter_role.as_str(),
            role.as_str()
        )));
    }
    let token = new_secret_token();
    let now = Utc::now();
    let expires_at = now + state.config.invite_ttl;
    let email_message =
        invitation_email(&state, org_id, user.id, &email, role, &token, expires_at).await?;
    let invite = state
        .store
        .create_invite(
            NewInvite {
                org_id,
                email,
                role,
                token_hash: hash_token(&token),
                invited_by: Some(user.id),
                expires_at,
                email_message: Some(email_message),
            },
            now,
        )
        .await?;
    tracing::info!(
        org_id,
        invite_id = invite.id,
        invited_by = user.id,
        "invitation created"
    );
    Ok((
        StatusCode::CREATED,
        Json(InviteCreated {
            id: invite.id,
            email: invite.email,
            role: invite.role,
            token,
            expires_at: invite.expires_at,
        }),
    ))
}

/// The invitation email: who invites, to what, and the token with how to use it.
async fn invitation_email(
    state: &AppState,
    org_id: i64,
    inviter_id: i64,
    to: &str,
    role: Role,
    token: &str,
    expires_at: DateTime<Utc>,
) -> ApiResult<OutgoingEmail> {
    let org = org_view(state, org_id, inviter_id).await?;
    let inviter = state
        .store
        .user_by_id(inviter_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("Unknown account."))?;
    let full_name = format!("{} {}", inviter.first_name, inviter.last_name);
    let (display, name) = match full_name.trim() {
        "" => (inviter.email.clone(), inviter.email.clone()),
        full => (full.to_owned(), format!("{full} ({})", inviter.email)),
    };
    let base = state.config.email.public_url.as_deref().unwrap_or("");
    let body = format!(
        "{name} invited you to join {org} on ChatBoard as {role}.\n\n\
         To accept, sign in to ChatBoard with this address (register first if you have no \
         account) and accept the invitation:\n\n\
         \x20   POST {base}/api/orgs/accept-invite/  {{\"token\": \"{token}\"}}\n\n\
         Invitation token: {token}\n\n\
         The invitation expires on {expires} UTC. If you did not expect it, ignore this email.\n",
        org = org.name,
        role = role.as_str(),
        expires = expires_at.format("%Y-%m-%d %H:%M"),
    );
    Ok(OutgoingEmail {
        kind: EmailKind::Invitation,
        to: to.to_owned(),
        subject: format!("{display} invited you to {} on ChatBoard", org.name),
        body,
    })
}

/// Accepts an invitation addressed to the caller's email.
#[utoipa::path(post, path = "/api/orgs/accept-invite/", tag = "orgs", request_body = AcceptRequest, security(("bearer" = [])),
    responses((status = 200, body = AcceptResponse), (status = 400, body = ErrorBody), (status = 403, description = "issued to another email", body = ErrorBody),
        (status = 404, description = "unknown, used, revoked or expired", body = ErrorBody),
        (status = 409, description = "member_limit_reached: the organization's maxMembers quota", body = ErrorBody)))]
pub async fn accept_invite(
    user: AuthUser,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<AcceptRequest>,
) -> ApiResult<Json<AcceptResponse>> {
    let mut v = Validator::default();
    let token = v.text("token", &body.token, 1, INVITE_TOKEN_MAX);
    v.finish()?;
    let me = state
        .store
        .user_by_id(user.id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("Unknown account."))?;
    let before = state.seats(user.id).await;
    let (org_id, role) = state
        .store
        .accept_invite(&hash_token(&token), user.id, &me.email, Utc::now())
        .await?;
    // Joining the org seats the user in its PUBLIC rooms.
    state.announce_seats_gained(user.id, &before).await;
    tracing::info!(org_id, user_id = user.id, "invitation accepted");
    Ok(Json(AcceptResponse { org_id, role }))
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
    require_role(&state, org_id, user.id, Role::Admin).await?;
    let before = state.seats(member_id).await;
    state
        .store
        .set_member_role(org_id, member_id, body.role)
        .await?;
    state.announce_seats_lost(member_id, &before).await;
    tracing::info!(
        org_id,
        member_id,
        role = body.role.as_str(),
        "member role changed"
    );
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
    let needed = if member_id == user.id {
        Role::Member
    } else {
        Role::Admin
    };
    require_role(&state, org_id, user.id, needed).await?;
    let before = state.seats(member_id).await;
    state.store.remove_member(org_id, member_id).await?;
    state.announce_seats_lost(member_id, &before).await;
    tracing::info!(org_id, member_id, by = user.id, "member removed");
    Ok(StatusCode::NO_CONTENT)
}
