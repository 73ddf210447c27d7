//! `/auth/me/mentions/`: the messages that mention the caller.

use axum::extract::State;
use axum::Json;
use chat::validate::Validator;
use chatboard_core::model::Message;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiQuery, AuthUser};
use crate::state::AppState;

/// Page size when `limit` is absent.
const DEFAULT_LIMIT: i64 = 20;
/// Largest page.
const MAX_LIMIT: i64 = 50;

/// Paging parameters of `GET /auth/me/mentions/`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MentionsQuery {
    /// 1 to 50, default 20.
    limit: Option<String>,
    /// Messages older than this id.
    before: Option<String>,
    /// Only this organization's rooms.
    org: Option<String>,
}

/// A page of messages mentioning the caller.
#[derive(Serialize, ToSchema)]
pub struct MentionPage {
    /// Newest first; each carries its `room`.
    results: Vec<Message>,
    /// Path and query of the next (older) page, or null at the end.
    next: Option<String>,
}

/// Messages that mention the caller (by address, `@room` or `@here`) in rooms they sit in,
/// newest first. Deleted messages drop out; edits that add or remove a mention move it.
#[utoipa::path(get, path = "/auth/me/mentions/", tag = "mentions", params(MentionsQuery),
    security(("bearer" = [])),
    responses((status = 200, body = MentionPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn mine(
    user: AuthUser,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<MentionsQuery>,
) -> ApiResult<Json<MentionPage>> {
    let mut v = Validator::default();
    let limit = v.int_in("limit", query.limit.as_deref(), 1, MAX_LIMIT, DEFAULT_LIMIT) as usize;
    let before = v.optional_id("before", query.before.as_deref());
    let org = v.optional_id("org", query.org.as_deref());
    v.finish()?;
    let (results, more) = state.chat.mentions_of(user.id, org, before, limit).await?;
    let next = results.last().filter(|_| more).map(|last| {
        format!(
            "/auth/me/mentions/?before={}&limit={limit}{}",
            last.id,
            org_param(org)
        )
    });
    Ok(Json(MentionPage { results, next }))
}

/// `&org=ID` for a next link of one organization's page, or nothing.
pub(crate) fn org_param(org: Option<i64>) -> String {
    org.map(|id| format!("&org={id}")).unwrap_or_default()
}
