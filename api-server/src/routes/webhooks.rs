//! `/api/webhooks/`: an organization's webhooks (ADMIN only), their delivery log and test
//! deliveries. Delivery itself is the worker's job.
//!
//! As elsewhere, a caller outside the webhook's organization gets 404, a member below ADMIN 403.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chat::validate::Validator;
use chat::WebhookDraft;
use chatboard_core::model::{Webhook, WebhookDelivery};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery, AuthUser};
use crate::state::AppState;
/// Delivery log page size when `limit` is absent.
const DEFAULT_LIMIT: i64 = 50;
/// Largest delivery log page.
const MAX_LIMIT: i64 = 100;

/// `?org=` of the list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
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
    /// `thread.updated`, `reaction.added`, `reaction.removed`, `message.mentioned`,
    /// `room.created`, `member.invited`, `member.joined`, `member.left`, `member.role_changed`,
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
#[into_params(parameter_in = Query)]
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
    Ok(Json(state.chat.webhooks(user.id, org).await?))
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
    let draft = WebhookDraft {
        url: Some(body.url),
        events: Some(body.events),
        is_active: body.is_active,
    };
    let created = state.chat.create_webhook(user.id, body.org, draft).await?;
    Ok((
        StatusCode::CREATED,
        Json(WebhookCreated {
            webhook: created.webhook,
            secret: created.secret,
        }),
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
    Ok(Json(state.chat.webhook(user.id, id).await?))
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
    let draft = WebhookDraft {
        url: body.url,
        events: body.events,
        is_active: body.is_active,
    };
    Ok(Json(state.chat.update_webhook(user.id, id, draft).await?))
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
    state.chat.delete_webhook(user.id, id).await?;
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
    // The webhook is looked up (and the caller checked) before the paging parameters.
    state.chat.webhook(user.id, id).await?;
    let mut v = Validator::default();
    let limit = v.int_in("limit", query.limit.as_deref(), 1, MAX_LIMIT, DEFAULT_LIMIT);
    let before = v.optional_id("before", query.before.as_deref());
    v.finish()?;
    Ok(Json(
        state
            .chat
            .webhook_deliveries(user.id, id, before, limit as u32)
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
    let delivery_id = state.chat.test_webhook(user.id, id).await?;
    Ok((StatusCode::ACCEPTED, Json(TestQueued { delivery_id })))
}
