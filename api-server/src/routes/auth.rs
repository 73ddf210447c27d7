//! `/auth/`: accounts, tokens and the caller's profile.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chatboard_core::auth::{new_token_id, password_length, HashingError};
use chatboard_core::error_code::ErrorCode;
use chatboard_core::model::{UnreadCount, User};
use chatboard_store::{NewUser, ProfilePatch, RefreshOutcome, StoreError};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::present;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, AuthUser, IpRateLimited, RefreshRateLimited, UnmeteredUser};
use crate::sign_in_failures::Attempt;
use crate::state::AppState;
use chat::validate::Validator;

/// Password length bounds, in characters.
const PASSWORD_MIN: usize = 8;
const PASSWORD_MAX: usize = 128;
/// Longest first or last name.
const NAME_MAX: usize = 150;
/// Longest avatar URL.
const AVATAR_URL_MAX: usize = 500;

/// Body of `POST /auth/register/`.
#[derive(Deserialize, ToSchema)]
pub struct RegisterRequest {
    /// Email address (trimmed and lower-cased).
    email: String,
    /// 8 to 128 characters.
    password: String,
    /// Given name, up to 150 characters.
    #[serde(default)]
    first_name: Option<String>,
    /// Family name, up to 150 characters.
    #[serde(default)]
    last_name: Option<String>,
}

/// Body of `POST /auth/token/`.
#[derive(Deserialize, ToSchema)]
pub struct TokenRequest {
    /// Email address.
    email: String,
    /// Password.
    password: String,
}

/// Body of `POST /auth/token/refresh/` and `POST /auth/logout/`.
#[derive(Deserialize, ToSchema)]
pub struct RefreshRequest {
    /// A refresh token.
    refresh: String,
}

/// A pair of tokens.
#[derive(Serialize, ToSchema)]
pub struct TokenPair {
    /// Access token for `Authorization: Bearer`.
    access: String,
    /// Single-use refresh token.
    refresh: String,
    /// Always `Bearer`.
    token_type: &'static str,
    /// Access token lifetime in seconds.
    expires_in: u64,
}

/// Body of `POST /auth/password/`.
#[derive(Deserialize, ToSchema)]
pub struct PasswordChange {
    /// The password in use now.
    current_password: String,
    /// The new one, 8 to 128 characters.
    new_password: String,
}

/// Body of `PATCH /auth/me/`: each field optional; `avatar_url: null` or `""` clears it.
#[derive(Deserialize, ToSchema)]
pub struct ProfileUpdate {
    /// Given name.
    #[serde(default)]
    first_name: Option<String>,
    /// Family name.
    #[serde(default)]
    last_name: Option<String>,
    /// http(s) URL of a picture.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    avatar_url: Option<Option<String>>,
    /// Digest emails of messages that arrive while you are offline: true (default) or false.
    #[serde(default)]
    email_notifications: Option<bool>,
}

/// Creates an account.
#[utoipa::path(post, path = "/auth/register/", tag = "auth", request_body = RegisterRequest,
    responses((status = 201, body = User), (status = 400, body = ErrorBody), (status = 409, description = "email_taken", body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, description = "server_busy: every password-hashing slot stayed busy; see Retry-After", body = ErrorBody)))]
pub async fn register(
    _: IpRateLimited,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> ApiResult<(StatusCode, Json<User>)> {
    let mut v = Validator::default();
    let email = v.email("email", &body.email);
    check_password(&mut v, "password", &body.password);
    let first_name = v.text(
        "first_name",
        body.first_name.as_deref().unwrap_or(""),
        0,
        NAME_MAX,
    );
    let last_name = v.text(
        "last_name",
        body.last_name.as_deref().unwrap_or(""),
        0,
        NAME_MAX,
    );
    v.finish()?;

    let password_hash = state
        .passwords
        .hash(body.password)
        .await
        .map_err(hashing_refused)?;
    let user = state
        .store
        .create_user(
            NewUser {
                email,
                password_hash,
                first_name,
                last_name,
            },
            Utc::now(),
        )
        .await?;
    tracing::info!(user_id = user.id, "account registered");
    Ok((StatusCode::CREATED, Json(user)))
}

/// Logs in: exchanges email and password for an access and a refresh token.
#[utoipa::path(post, path = "/auth/token/", tag = "auth", request_body = TokenRequest,
    responses((status = 200, body = TokenPair), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 429, description = "rate_limited: this address's sign-ins a minute, or the wrong passwords an hour of the account from this address or from every address it has not signed in from (CHATBOARD_SIGN_IN_FAILURES_PER_HOUR), are spent; see Retry-After", body = ErrorBody), (status = 503, description = "server_busy: every password-hashing slot stayed busy; see Retry-After", body = ErrorBody)))]
pub async fn token(
    IpRateLimited(client): IpRateLimited,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<TokenRequest>,
) -> ApiResult<Json<TokenPair>> {
    let email = body.email.trim().to_lowercase();
    let attempt = counted(&state, state.limits.begin_sign_in(&email, client))?;
    let found = if password_length(&body.password) > PASSWORD_MAX {
        None
    } else {
        state.store.credentials_by_email(&email).await?
    };
    let (user_id, hash) = match found {
        Some((user, hash)) => (Some(user.id), Some(hash)),
        None => (None, None),
    };
    let valid = state
        .passwords
        .verify(body.password, hash.clone())
        .await
        .map_err(hashing_refused)?;
    settle(attempt, valid);
    let (user_id, hash) = match (user_id, hash) {
        (Some(id), Some(hash)) if valid => (id, hash),
        // One answer for an unknown email and a wrong password, so accounts cannot be probed.
        _ => return Err(ApiError::new(ErrorCode::InvalidCredentials)),
    };
    Ok(Json(start_login(&state, user_id, &hash).await?))
}

/// A password check begun against its hour of failures, with a refusal counted in metrics.
fn counted<'a>(
    state: &AppState,
    begun: ApiResult<Option<Attempt<'a>>>,
) -> ApiResult<Option<Attempt<'a>>> {
    begun.inspect_err(|_| state.metrics.rate_limited("sign_in_failures"))
}

/// Records how a counted password check came out.
fn settle(attempt: Option<Attempt<'_>>, valid: bool) {
    match attempt {
        Some(attempt) if valid => attempt.succeeded(),
        Some(attempt) => attempt.failed(),
        None => {}
    }
}

/// Adds a problem with a new password's length, if it has one, under `field`.
fn check_password(v: &mut Validator, field: &str, password: &str) {
    let len = password_length(password);
    if len < PASSWORD_MIN {
        v.add(
            field,
            format!("Must be at least {PASSWORD_MIN} characters."),
        );
    } else if len > PASSWORD_MAX {
        v.add(field, format!("Must be at most {PASSWORD_MAX} characters."));
    }
}

/// Changes the caller's password, given the current one. Every login of the account ends (its
/// refresh tokens are revoked; access tokens and sockets run out within their 15 minutes) and
/// a new one starts: the answer is its token pair.
#[utoipa::path(post, path = "/auth/password/", tag = "auth", request_body = PasswordChange, security(("bearer" = [])),
    responses((status = 200, body = TokenPair), (status = 400, description = "invalid: `current_password` is not the password in use, or `new_password` has the wrong length", body = ErrorBody), (status = 401, body = ErrorBody), (status = 429, description = "rate_limited: a request limit, or the account's wrong current passwords an hour on password changes, is spent; see Retry-After", body = ErrorBody), (status = 503, description = "server_busy: every password-hashing slot stayed busy; see Retry-After", body = ErrorBody)))]
pub async fn change_password(
    IpRateLimited(client): IpRateLimited,
    UnmeteredUser(user): UnmeteredUser,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<PasswordChange>,
) -> ApiResult<Json<TokenPair>> {
    let mut v = Validator::default();
    check_password(&mut v, "new_password", &body.new_password);
    v.finish()?;
    let account = current_user(&state, &user).await?;
    let attempt = counted(
        &state,
        state
            .limits
            .begin_password_change(user.id, &account.email, client),
    )?;
    let hash = if password_length(&body.current_password) > PASSWORD_MAX {
        None
    } else {
        state
            .store
            .credentials_by_email(&account.email)
            .await?
            .map(|(_, hash)| hash)
    };
    let valid = state
        .passwords
        .verify(body.current_password, hash.clone())
        .await
        .map_err(hashing_refused)?;
    settle(attempt, valid);
    let not_in_use = || {
        ApiError::from(chat::ChatError::field(
            "current_password",
            "This is not the password in use.",
        ))
    };
    let Some(checked) = hash.filter(|_| valid) else {
        return Err(not_in_use());
    };
    let new_hash = state
        .passwords
        .hash(body.new_password)
        .await
        .map_err(hashing_refused)?;
    // Another change that came first leaves this one's current password out of use.
    if !state
        .store
        .change_password(user.id, &checked, &new_hash, Utc::now())
        .await?
    {
        return Err(not_in_use());
    }
    tracing::info!(
        user_id = user.id,
        "password changed; every other login ended"
    );
    Ok(Json(start_login(&state, user.id, &new_hash).await?))
}

/// Starts a login (a new refresh family) for an account whose password hash was `credential`
/// when the password was checked: refused as `invalid_credentials` if the password changed
/// since, as that change ended every login it found and this one must not outlive it.
async fn start_login(state: &AppState, user_id: i64, credential: &str) -> ApiResult<TokenPair> {
    let now = Utc::now();
    let family = new_token_id();
    let refresh = state
        .tokens
        .issue_refresh(user_id, &family, now)
        .map_err(signing_failed)?;
    let started = state
        .store
        .start_session(
            user_id,
            credential,
            &family,
            &refresh.jti,
            refresh.expires_at,
            now,
        )
        .await?;
    if !started {
        // The answer to a wrong password, word for word: a different one would say that the
        // password guessed was right until a moment ago.
        return Err(ApiError::new(ErrorCode::InvalidCredentials));
    }
    let access = state
        .tokens
        .issue_access(user_id, now)
        .map_err(signing_failed)?;
    Ok(TokenPair {
        access,
        refresh: refresh.token,
        token_type: "Bearer",
        expires_in: state.tokens.access_ttl().as_secs(),
    })
}

fn signing_failed(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "token signing failed");
    ApiError::internal()
}

fn invalid_refresh() -> ApiError {
    ApiError::new(ErrorCode::TokenNotValid)
}

/// Exchanges a refresh token for a new pair. Each refresh token works once; presenting a used
/// one revokes every token of its login.
#[utoipa::path(post, path = "/auth/token/refresh/", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenPair), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn refresh(
    _: RefreshRateLimited,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> ApiResult<Json<TokenPair>> {
    let claims = state
        .tokens
        .verify_refresh(body.refresh.trim())
        .map_err(|_| invalid_refresh())?;
    let now = Utc::now();
    // A login past the session's maximum age is over: sign in again.
    let next = state
        .tokens
        .renew_refresh(&claims, now)
        .map_err(signing_failed)?
        .ok_or_else(invalid_refresh)?;
    match state
        .store
        .rotate_refresh(&claims.fam, &claims.jti, &next.jti, next.expires_at, now)
        .await?
    {
        RefreshOutcome::Rotated { user_id } => {
            let access = state
                .tokens
                .issue_access(user_id, now)
                .map_err(signing_failed)?;
            Ok(Json(TokenPair {
                access,
                refresh: next.token,
                token_type: "Bearer",
                expires_in: state.tokens.access_ttl().as_secs(),
            }))
        }
        RefreshOutcome::Reused => {
            tracing::warn!(
                user_id = claims.user_id,
                "refresh token reused; its session is revoked"
            );
            Err(ApiError::new(ErrorCode::TokenReused))
        }
        RefreshOutcome::Invalid => Err(invalid_refresh()),
    }
}

/// Logs out: revokes the login that the refresh token belongs to.
#[utoipa::path(post, path = "/auth/logout/", tag = "auth", request_body = RefreshRequest, security(("bearer" = [])),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn logout(
    _: RefreshRateLimited,
    UnmeteredUser(user): UnmeteredUser,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> ApiResult<StatusCode> {
    let claims = state
        .tokens
        .verify_refresh(body.refresh.trim())
        .ok()
        .filter(|c| c.user_id == user.id)
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidRefreshToken))?;
    // Logging out twice is not an error: the outcome is the same.
    state
        .store
        .revoke_session(user.id, &claims.fam, Utc::now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn current_user(state: &AppState, user: &AuthUser) -> ApiResult<User> {
    state
        .store
        .user_by_id(user.id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("The account of this token no longer exists."))
}

/// The caller's account.
#[utoipa::path(get, path = "/auth/me/", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = User), (status = 401, body = ErrorBody)))]
pub async fn me(user: AuthUser, State(state): State<AppState>) -> ApiResult<Json<User>> {
    Ok(Json(current_user(&state, &user).await?))
}

/// Changes the caller's profile (not the email).
#[utoipa::path(patch, path = "/auth/me/", tag = "auth", request_body = ProfileUpdate, security(("bearer" = [])),
    responses((status = 200, body = User), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn update_me(
    user: AuthUser,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ProfileUpdate>,
) -> ApiResult<Json<User>> {
    let mut v = Validator::default();
    let patch = ProfilePatch {
        first_name: body
            .first_name
            .map(|s| v.text("first_name", &s, 0, NAME_MAX)),
        last_name: body.last_name.map(|s| v.text("last_name", &s, 0, NAME_MAX)),
        avatar_url: body
            .avatar_url
            .map(|url| url.and_then(|u| v.optional_url("avatar_url", &u, AVATAR_URL_MAX))),
        email_notifications: body.email_notifications,
    };
    v.finish()?;
    match state.store.update_profile(user.id, patch).await {
        Ok(updated) => Ok(Json(updated)),
        Err(StoreError::NotFound) => Err(ApiError::unauthorized(
            "The account of this token no longer exists.",
        )),
        Err(e) => Err(e.into()),
    }
}

/// Unread counts of every room of the caller.
#[derive(Serialize, ToSchema)]
pub struct UnreadCounts {
    /// One entry per room the caller is a member of, by room id.
    unread_counts: Vec<UnreadCount>,
    /// Sum of the counts.
    total: i64,
}

/// Unread messages per room: messages from others after the caller's read pointer, not counting
/// deleted ones. The caller's own messages are never unread.
#[utoipa::path(get, path = "/auth/me/unread-counts/", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = UnreadCounts), (status = 401, body = ErrorBody)))]
pub async fn unread_counts(
    user: AuthUser,
    State(state): State<AppState>,
) -> ApiResult<Json<UnreadCounts>> {
    let unread_counts = state.store.unread_counts(user.id).await?;
    let total = unread_counts.iter().map(|c| c.unread_count).sum();
    Ok(Json(UnreadCounts {
        unread_counts,
        total,
    }))
}

/// A hash that did not happen: 503 with `Retry-After` when every slot stayed busy (the client
/// may try again in a moment), 500 when hashing itself failed.
fn hashing_refused(e: HashingError) -> ApiError {
    match e {
        HashingError::Busy => ApiError::new(ErrorCode::ServerBusy).with_retry_after(1),
        other => {
            tracing::error!(error = %other, "password hashing failed");
            ApiError::internal()
        }
    }
}
