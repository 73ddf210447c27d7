//! `/api/webhooks/`: an organization's webhooks (ADMIN only), their delivery log and test
//! deliveries. Delivery itself is the worker's job.
//!
//! As elsewhere, a caller outside the webhook's organization gets 404, a member below ADMIN 403.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chatboard_core::auth::new_secret_token;
use chatboard_core::events::EventType;
use chatboard_core::model::{Role, Webhook, WebhookDelivery};
use chatboard_core::store::{NewWebhook, WebhookPatch};
use chatboard_core::webhook_target::{check_target, parse_target};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery, AuthUser};
use crate::routes::orgs::{require_role, require_role_to_write};
use crate::state::AppState;
use crate::validate::Validator;

/// Webhooks one organization may have.
const MAX_WEBHOOKS_PER_ORG: usize = 100;
/// Delivery log page size when `limit` is absent.
const DEFAULT_LIMIT: i64 = 50;
/// Largest delivery log page.
const MAX_LIMIT: i64 = 100;

/// `?org=` of the list.
#[derive(Deserialize, IntoParams)]
pub struct OrgQuery {
    /// Organization id (required).
    org: Option<String>,
}

/// Body of `POST /api/webhooks/`.
#[derive(Deserialize, ToSchema)]
pub struct CreateWebhookRequest {
    /// Organization id.
    org: i64,
    /// http(s) URL; private, loopback and link-local targets are refused unless the deployment
    /// allows them.
    url: String,
    /// Event types to deliver (`message.created`, `message.updated`, `message.deleted`,
    /// `room.created`, `member.invited`, `member.joined`, `member.role_changed`,
    /// `webhook.test`), or `["*"]` for all.
    events: Vec<String>,
    /// Deliver from the start (default true).
    #[serde(default)]
    is_active: Option<bool>,
}

/// Body of `PATCH /api/webhooks/{id}/`; absent fields stay as they are.
#[derive(Deserialize, ToSchema)]
pub struct UpdateWebhookRequest {
    /// New target.
    #[serde(default)]
    url: Option<String>,
    /// New event filter.
    #[serde(default)]
    events: Option<Vec<String>>,
    /// Switch delivery on or off (on also clears `disabled_reason`).
    #[serde(default)]
    is_active: Option<bool>,
}

/// A created webhook with its secret: the only time the secret is shown.
#[derive(Serialize, ToSchema)]
pub struct WebhookCreated {
    #[serde(flatten)]
    webhook: Webhook,
    /// The HMAC-SHA256 key of `X-ChatBoard-Signature`. Store it now: it cannot be read back.
    secret: String,
}

/// Paging of the delivery log.
#[derive(Deserialize, IntoParams)]
pub struct LogQuery {
    /// 1 to 100, default 50.
    limit: Option<String>,
    /// Deliveries older than this delivery id.
    before: Option<String>,
}

/// Answer of `POST /api/webhooks/{id}/test/`.
#[derive(Serialize, ToSchema)]
pub struct TestQueued {
    /// The delivery to watch in `/events/`.
    delivery_id: i64,
}

/// The event filter, validated: known names or `*` (which alone means all), no repeats.
fn check_events(v: &mut Validator, events: &[String]) -> Vec<String> {
    if events.is_empty() {
        v.add("events", "Name at least one event type, or \"*\" for all.");
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::new();
    for name in events {
        let name = name.trim();
        if name != "*" && EventType::parse(name).is_none() {
            v.add("events", format!("Unknown event type {name:?}."));
        } else if !out.iter().any(|e| e == name) {
            out.push(name.to_owned());
        }
    }
    if out.iter().any(|e| e == "*") {
        return vec!["*".to_owned()];
    }
    out
}

/// The target URL, parsed and checked against the SSRF rules.
async fn check_url(state: &AppState, raw: &str) -> ApiResult<String> {
    let url = parse_target(raw).map_err(|e| ApiError::field("url", e.to_string()))?;
    check_target(&url, state.config.webhooks.allow_private)
        .await
        .map_err(|e| ApiError::field("url", format!("{e}.")))?;
    Ok(url.to_string())
}

/// What the caller means to do with a webhook.
#[derive(PartialEq)]
enum Access {
    Read,
    /// Change it, or send through it: the organization must take changes.
    Write,
}

/// The webhook, if the caller is an ADMIN of its organization.
async fn admin_webhook(
    state: &AppState,
    id: i64,
    user_id: i64,
    access: Access,
) -> ApiResult<Webhook> {
    let hook = state
        .store
        .webhook(id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if access == Access::Write {
        require_role_to_write(state, hook.org, user_id, Role::Admin).await?;
    } else {
        require_role(state, hook.org, user_id, Role::Admin).await?;
    }
    Ok(hook)
}

/// The organization's webhooks (ADMIN).
#[utoipa::path(get, path = "/api/webhooks/", tag = "webhooks", security(("bearer" = [])), params(OrgQuery),
    responses((status = 200, body = [Webhook]), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list(
    user: AuthUser,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<OrgQuery>,
) -> ApiResult<Json<Vec<Webhook>>> {
    let mut v = Validator::default();
    let org = v.optional_id("org", query.org.as_deref());
    v.finish()?;
    let org = org.ok_or_else(|| ApiError::field("org", "This query parameter is required."))?;
    require_role(&state, org, user.id, Role::Admin).await?;
    Ok(Json(state.store.webhooks_of_org(org).await?))
}

/// Creates a webhook (ADMIN); the answer carries its secret, shown only this once.
#[utoipa::path(post, path = "/api/webhooks/", tag = "webhooks", request_body = CreateWebhookRequest, security(("bearer" = [])),
    responses((status = 201, body = WebhookCreated), (status = 400, description = "invalid fields, or a non-public target", body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "too many webhooks", body = ErrorBody)))]
pub async fn create(
    user: AuthUser,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateWebhookRequest>,
) -> ApiResult<(StatusCode, Json<WebhookCreated>)> {
    require_role_to_write(&state, body.org, user.id, Role::Admin).await?;
    let mut v = Validator::default();
    let events = check_events(&mut v, &body.events);
    v.finish()?;
    let url = check_url(&state, &body.url).await?;
    if state.store.webhooks_of_org(body.org).await?.len() >= MAX_WEBHOOKS_PER_ORG {
        return Err(ApiError::conflict(
            "too_many_webhooks",
            format!("An organization may have at most {MAX_WEBHOOKS_PER_ORG} webhooks."),
        ));
    }
    let secret = format!("whsec_{}", new_secret_token());
    let webhook = state
        .store
        .create_webhook(
            NewWebhook {
                org_id: body.org,
                url,
                events,
                secret: secret.clone(),
                is_active: body.is_active.unwrap_or(true),
                managed: false,
                max_attempts: None,
            },
            Utc::now(),
        )
        .await?;
    tracing::info!(
        org_id = webhook.org,
        webhook_id = webhook.id,
        user_id = user.id,
        "webhook created"
    );
    Ok((
        StatusCode::CREATED,
        Json(WebhookCreated { webhook, secret }),
    ))
}

/// One webhook (ADMIN), without its secret.
#[utoipa::path(get, path = "/api/webhooks/{id}/", tag = "webhooks", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = Webhook), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Webhook>> {
    Ok(Json(
        admin_webhook(&state, id, user.id, Access::Read).await?,
    ))
}

/// Changes a webhook (ADMIN). Operator-managed webhooks answer 409.
#[utoipa::path(patch, path = "/api/webhooks/{id}/", tag = "webhooks", request_body = UpdateWebhookRequest, security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = Webhook), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "managed_by_operator", body = ErrorBody)))]
pub async fn update(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<UpdateWebhookRequest>,
) -> ApiResult<Json<Webhook>> {
    admin_webhook(&state, id, user.id, Access::Write).await?;
    let mut v = Validator::default();
    let events = body.events.as_deref().map(|e| check_events(&mut v, e));
    v.finish()?;
    let url = match &body.url {
        Some(raw) => Some(check_url(&state, raw).await?),
        None => None,
    };
    let patch = WebhookPatch {
        url,
        events,
        is_active: body.is_active,
    };
    Ok(Json(
        state.store.update_webhook(id, patch, Utc::now()).await?,
    ))
}

/// Deletes a webhook and its delivery log (ADMIN). Operator-managed webhooks answer 409.
#[utoipa::path(delete, path = "/api/webhooks/{id}/", tag = "webhooks", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "managed_by_operator", body = ErrorBody)))]
pub async fn delete(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    admin_webhook(&state, id, user.id, Access::Write).await?;
    state.store.delete_webhook(id).await?;
    tracing::info!(webhook_id = id, user_id = user.id, "webhook deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// The delivery log, newest first (ADMIN).
#[utoipa::path(get, path = "/api/webhooks/{id}/events/", tag = "webhooks", security(("bearer" = [])), params(("id" = i64, Path), LogQuery),
    responses((status = 200, body = [WebhookDelivery]), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn events(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(query): ApiQuery<LogQuery>,
) -> ApiResult<Json<Vec<WebhookDelivery>>> {
    admin_webhook(&state, id, user.id, Access::Read).await?;
    let mut v = Validator::default();
    let limit = v.int_in("limit", query.limit.as_deref(), 1, MAX_LIMIT, DEFAULT_LIMIT);
    let before = v.optional_id("before", query.before.as_deref());
    v.finish()?;
    Ok(Json(
        state
            .store
            .webhook_deliveries(id, before, limit as u32)
            .await?,
    ))
}

/// Queues a `webhook.test` delivery to this webhook (ADMIN); 409 while it is switched off.
#[utoipa::path(post, path = "/api/webhooks/{id}/test/", tag = "webhooks", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 202, body = TestQueued), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "webhook_inactive", body = ErrorBody)))]
pub async fn test(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<(StatusCode, Json<TestQueued>)> {
    let hook = admin_webhook(&state, id, user.id, Access::Write).await?;
    if !hook.is_active {
        return Err(ApiError::conflict(
            "webhook_inactive",
            "The webhook is switched off; set is_active to true first.",
        ));
    }
    let delivery_id = state.store.create_test_delivery(id, Utc::now()).await?;
    Ok((StatusCode::ACCEPTED, Json(TestQueued { delivery_id })))
}
