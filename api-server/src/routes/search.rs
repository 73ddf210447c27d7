//! `/api/orgs/{id}/search/`: messages by their words, and rooms and members by name prefix for
//! quick switching.

use axum::extract::State;
use axum::Json;
use chat::search::{Found, SearchRequest, MAX_QUERY};
use chat::validate::Validator;
use chatboard_core::error_code::ErrorCode;
use chatboard_core::model::{Message, OrgMember, Room};
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiPath, ApiQuery, AuthUser};
use crate::state::AppState;

/// Page size when `limit` is absent.
const DEFAULT_LIMIT: i64 = 20;
/// Largest page.
const MAX_LIMIT: i64 = 50;

/// Parameters of `GET /api/orgs/{id}/search/`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Words to find, all of them: `"exact phrase"`, `-left_out`, `prefix*`.
    q: Option<String>,
    /// Only this room.
    room: Option<String>,
    /// Only messages of this user id.
    from: Option<String>,
    /// Only messages sent before this date (`2026-12-01`) or time (RFC 3339).
    before: Option<String>,
    /// Only messages sent at or after this date or time.
    after: Option<String>,
    /// `file`: only messages with an attachment.
    has: Option<String>,
    /// `thread`: only replies in threads.
    #[serde(rename = "in")]
    within: Option<String>,
    /// 1 to 50, default 20.
    limit: Option<String>,
    /// The `next` link's cursor.
    cursor: Option<String>,
}

/// A message found.
#[derive(Serialize, ToSchema)]
pub struct SearchResult {
    /// The message.
    message: Message,
    /// Its text around the matches, HTML-escaped, each match in `<mark>...</mark>`.
    snippet: String,
    /// Relevance within this query (higher is better).
    score: f64,
}

/// A page of search results.
#[derive(Serialize, ToSchema)]
pub struct SearchPage {
    /// Best match first; newer first among equally good ones.
    results: Vec<SearchResult>,
    /// Path and query of the next page, or null at the end.
    next: Option<String>,
}

/// Searches the messages of the organization's rooms the caller sits in (deleted ones never).
/// The newest 20 matches of each of the caller's rooms (200 in all; 200 of the room `room` names)
/// are ranked by relevance (then recency) and paged with `next`; narrow the query or its filters
/// to reach further back.
#[utoipa::path(get, path = "/api/orgs/{id}/search/", tag = "search",
    params(("id" = i64, Path), SearchQuery), security(("bearer" = [])),
    responses((status = 200, body = SearchPage), (status = 400, body = ErrorBody),
        (status = 404, description = "no such organization, not a member, or a room not theirs", body = ErrorBody),
        (status = 503, description = "`server_busy`: as many searches running as the server allows (`Retry-After` says when to come back), or, on PostgreSQL, the search ran past CHATBOARD_SEARCH_TIMEOUT_MS and was stopped (narrow it)", body = ErrorBody)))]
pub async fn messages(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(org_id): ApiPath<i64>,
    ApiQuery(query): ApiQuery<SearchQuery>,
) -> ApiResult<Json<SearchPage>> {
    let mut v = Validator::default();
    let q = query.q.clone().unwrap_or_default();
    let request = SearchRequest {
        room: v.optional_id("room", query.room.as_deref()),
        from: v.optional_id("from", query.from.as_deref()),
        before: moment(&mut v, "before", query.before.as_deref()),
        after: moment(&mut v, "after", query.after.as_deref()),
        with_file: match query.has.as_deref() {
            None => false,
            Some("file") => true,
            Some(_) => {
                v.add("has", "Use file.");
                false
            }
        },
        in_thread: match query.within.as_deref() {
            None => false,
            Some("thread") => true,
            Some(_) => {
                v.add("in", "Use thread.");
                false
            }
        },
        limit: v.int_in("limit", query.limit.as_deref(), 1, MAX_LIMIT, DEFAULT_LIMIT) as u32,
        cursor: query.cursor.as_deref().and_then(|c| {
            let parsed = parse_cursor(c);
            if parsed.is_none() {
                v.add("cursor", "Use the cursor of a next link.");
            }
            parsed
        }),
        q,
    };
    v.finish()?;
    let limit = request.limit;
    // One more than the page holds: whether it exists decides the `next` link, so the last
    // page has none (a full last page would otherwise link to an empty one).
    let request = SearchRequest {
        limit: limit + 1,
        ..request
    };
    let mut hits = state
        .chat
        .search(user.id, org_id, request)
        .await
        .map_err(|e| {
            // Searches wait for a turn (a few per core); a busy server asks to come back.
            let busy = e.code() == ErrorCode::ServerBusy;
            let e = ApiError::from(e);
            if busy {
                e.with_retry_after(1)
            } else {
                e
            }
        })?;
    let more = hits.len() > limit as usize;
    hits.truncate(limit as usize);
    let next = more
        .then(|| hits.last())
        .flatten()
        .map(|last| next_link(org_id, &query, last));
    let results = hits
        .into_iter()
        .map(|hit| SearchResult {
            snippet: hit.snippet,
            message: hit.message,
            score: hit.score,
        })
        .collect();
    Ok(Json(SearchPage { results, next }))
}

/// Parameters of the quick switcher's lookups.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PrefixQuery {
    /// The start of a name (any case); empty for the first ones.
    q: Option<String>,
    /// 1 to 50, default 10.
    limit: Option<String>,
}

impl PrefixQuery {
    /// The prefix and the limit, checked.
    fn read(&self) -> ApiResult<(String, u32)> {
        let mut v = Validator::default();
        let (q, limit) = read_prefix(&mut v, self.q.as_deref(), self.limit.as_deref());
        v.finish()?;
        Ok((q, limit))
    }
}

/// Parameters of the rooms lookup: the quick switcher's, or "Browse rooms" with `joinable`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RoomsQuery {
    /// The start of a name (any case); empty for the first ones.
    q: Option<String>,
    /// 1 to 50, default 10.
    limit: Option<String>,
    /// `true`: only rooms the caller does not sit in and may join (PUBLIC ones, and
    /// MANAGER_ONLY ones for MANAGERs and ADMINs). Default `false`: rooms the caller may open.
    joinable: Option<String>,
}

impl RoomsQuery {
    /// The prefix, whether only joinable rooms are wanted, and the limit, checked.
    fn read(&self) -> ApiResult<(String, bool, u32)> {
        let mut v = Validator::default();
        let (q, limit) = read_prefix(&mut v, self.q.as_deref(), self.limit.as_deref());
        let joinable = match self.joinable.as_deref().map(str::trim) {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => {
                v.add("joinable", "Must be true or false.");
                false
            }
        };
        v.finish()?;
        Ok((q, joinable, limit))
    }
}

/// A lookup's prefix and limit (1 to 50, default 10).
fn read_prefix(v: &mut Validator, q: Option<&str>, limit: Option<&str>) -> (String, u32) {
    let limit = v.int_in("limit", limit, 1, 50, 10) as u32;
    let q = v.text("q", q.unwrap_or_default(), 0, MAX_QUERY);
    (q, limit)
}

/// Rooms of the organization the caller may open (sitting in them, or PUBLIC) whose name starts
/// with `q`, by name; with `joinable=true`, those the caller does not sit in and may join.
#[utoipa::path(get, path = "/api/orgs/{id}/search/rooms/", tag = "search",
    params(("id" = i64, Path), RoomsQuery), security(("bearer" = [])),
    responses((status = 200, body = [Room]), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn rooms(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(org_id): ApiPath<i64>,
    ApiQuery(query): ApiQuery<RoomsQuery>,
) -> ApiResult<Json<Vec<Room>>> {
    let (q, joinable, limit) = query.read()?;
    Ok(Json(
        state
            .chat
            .find_rooms(user.id, org_id, &q, joinable, limit)
            .await?,
    ))
}

/// Members of the organization whose address, first or last name starts with `q`, by address.
#[utoipa::path(get, path = "/api/orgs/{id}/search/members/", tag = "search",
    params(("id" = i64, Path), PrefixQuery), security(("bearer" = [])),
    responses((status = 200, body = [OrgMember]), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn members(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(org_id): ApiPath<i64>,
    ApiQuery(query): ApiQuery<PrefixQuery>,
) -> ApiResult<Json<Vec<OrgMember>>> {
    let (q, limit) = query.read()?;
    Ok(Json(
        state
            .chat
            .find_org_members(user.id, org_id, &q, limit)
            .await?,
    ))
}

/// A date (`2026-12-01`, midnight UTC) or an RFC 3339 time.
/// Years outside 1 to 9999 are refused: PostgreSQL's timestamps cannot hold every year chrono
/// parses.
fn moment(v: &mut Validator, field: &str, value: Option<&str>) -> Option<DateTime<Utc>> {
    let value = value?.trim();
    let parsed = DateTime::parse_from_rfc3339(value)
        .map(|time| time.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(value, "%Y-%m-%d")
                .ok()
                .and_then(|date| date.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
        });
    match parsed {
        Some(time) if (1..=9999).contains(&time.year()) => Some(time),
        _ => {
            v.add(field, "Use a date (2026-12-01) or an RFC 3339 time.");
            None
        }
    }
}

/// `score_id`, as the next link carries it. Only a finite score and a message id: `NaN` and
/// the infinities parse as numbers, but no score is one, and the engines compare them apart
/// (SQLite binds `NaN` as NULL, an empty last page; PostgreSQL ranks it above every score).
fn parse_cursor(cursor: &str) -> Option<(f64, i64)> {
    let (score, id) = cursor.split_once('_')?;
    let (score, id): (f64, i64) = (score.parse().ok()?, id.parse().ok()?);
    (score.is_finite() && id > 0).then_some((score, id))
}

/// The link to the page after `last`: the same query and filters, with its cursor.
fn next_link(org_id: i64, query: &SearchQuery, last: &Found) -> String {
    let mut params = url::form_urlencoded::Serializer::new(String::new());
    let fields = [
        ("q", &query.q),
        ("room", &query.room),
        ("from", &query.from),
        ("before", &query.before),
        ("after", &query.after),
        ("has", &query.has),
        ("in", &query.within),
        ("limit", &query.limit),
    ];
    for (name, value) in fields {
        if let Some(value) = value {
            params.append_pair(name, value);
        }
    }
    // Rust prints an f64 in the shortest form that reads back exactly.
    params.append_pair("cursor", &format!("{}_{}", last.score, last.message.id));
    format!("/api/orgs/{org_id}/search/?{}", params.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_read_back_exactly() {
        let score = 0.1_f64 + 0.2;
        assert_eq!(parse_cursor(&format!("{score}_42")), Some((score, 42)));
        assert_eq!(parse_cursor("x_1"), None);
        assert_eq!(parse_cursor("1.5"), None);
    }
}
