//! Extractors that answer in the API's error shape: JSON bodies, path ids, the authenticated
//! user, the client address.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use chatboard_core::error_code::ErrorCode;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, FieldErrors};
use crate::request_context::RequestContext;
use crate::state::AppState;

/// A JSON body: 415 without a JSON content type, 413 over the body limit, 400 for malformed
/// JSON, and 400 with per-field errors for wrong types or missing fields.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json"
                    || (mime.starts_with("application/") && mime.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::new(ErrorCode::UnsupportedMediaType));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e: BytesRejection| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(ErrorCode::BodyTooLarge)
                } else if chatboard_core::http_server::is_body_timeout(&e) {
                    ApiError::new(ErrorCode::RequestTimeout)
                } else {
                    ApiError::new(ErrorCode::UnreadableBody)
                }
            })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Deserialises a body, reporting which field is wrong.
fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if let Some(field) = chat::validate::nul_field(bytes) {
        let field = if field.is_empty() {
            "non_field_errors".to_owned()
        } else {
            field
        };
        return Err(ApiError::validation(FieldErrors::from([(
            field,
            vec!["NUL characters are not allowed.".to_owned()],
        )])));
    }
    // Every body of this API is an object. serde would also read a struct from an array, by
    // position, and word its refusals of other values in Rust's terms.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{')
        && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
    {
        return Err(ApiError::validation(FieldErrors::from([(
            "non_field_errors".to_owned(),
            vec!["The body must be a JSON object.".to_owned()],
        )])));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let inner = e.inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::new(ErrorCode::MalformedJson)
                .with_detail(format!("The body is not valid JSON: {inner}."));
        }
        let path = e.path().to_string();
        let message = inner.to_string();
        // A missing or repeated field is reported at its parent; name the field itself.
        let field = match message
            .strip_prefix("missing field `")
            .or_else(|| message.strip_prefix("duplicate field `"))
            .and_then(|rest| rest.split('`').next())
        {
            Some(name) if path == "." => name.to_owned(),
            Some(name) => format!("{path}.{name}"),
            None if path == "." => "non_field_errors".to_owned(),
            None => path,
        };
        let problem = strip_position(&message);
        ApiError::validation(FieldErrors::from([(field, vec![problem])]))
    })?;
    de.end().map_err(|_| {
        ApiError::new(ErrorCode::MalformedJson)
            .with_detail("The body has trailing characters after the JSON value.")
    })?;
    Ok(value)
}

/// serde_json appends " at line L column C"; the field name says more to an API client.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// Path parameters; a value of the wrong type (`/api/orgs/abc/`) is a 404, as no such object exists.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        // No id holds a control character: such a path names nothing.
        if has_encoded_control(parts.uri.path()) {
            return Err(ApiError::not_found());
        }
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| ApiPath(v))
            .map_err(|_| ApiError::not_found())
    }
}

/// Query parameters; a query string that cannot be decoded at all is a 400. Handlers take the
/// values as strings and check them field by field.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        if let Some(query) = parts.uri.query().filter(|q| has_encoded_control(q)) {
            let fields: FieldErrors = url::form_urlencoded::parse(query.as_bytes())
                .filter(|(key, value)| {
                    key.contains(char::is_control) || value.contains(char::is_control)
                })
                .map(|(key, _)| {
                    (
                        key.replace(char::is_control, "?"),
                        vec!["Control characters are not allowed.".to_owned()],
                    )
                })
                .collect();
            if !fields.is_empty() {
                return Err(ApiError::validation(fields));
            }
        }
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| ApiQuery(v))
            .map_err(|e| {
                ApiError::new(ErrorCode::InvalidQuery).with_detail(strip_position(&e.body_text()))
            })
    }
}

/// Whether a URI part holds a percent-encoded control character (`%00`-`%1F`, `%7F`; raw
/// ones never get past the HTTP parser).
fn has_encoded_control(part: &str) -> bool {
    part.as_bytes().windows(3).any(|w| {
        w[0] == b'%'
            && matches!(
                (w[1], w[2].to_ascii_lowercase()),
                (b'0' | b'1', b'0'..=b'9' | b'a'..=b'f') | (b'7', b'f')
            )
    })
}

/// The user an access token authenticates; also counts the request against the user's rate
/// limit.
pub struct AuthUser {
    /// The user id.
    pub id: i64,
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        authenticated(parts, state, true).await
    }
}

/// The user an access token authenticates, not counted against the per-user limit: logging out
/// and changing the password stay possible while someone else spends that limit with a stolen
/// token (the owner could not end the thief's login otherwise). Each is limited per client
/// address instead (logout with the refresh budget, the password change with the account
/// endpoints').
pub struct UnmeteredUser(pub AuthUser);

impl FromRequestParts<AppState> for UnmeteredUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(UnmeteredUser(authenticated(parts, state, false).await?))
    }
}

/// The user the request's access token authenticates, counted against the user's rate limit
/// when `metered`.
async fn authenticated(
    parts: &mut Parts,
    state: &AppState,
    metered: bool,
) -> Result<AuthUser, ApiError> {
    let header = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("Authentication credentials were not provided."))?;
    let token = header
        .to_str()
        .ok()
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(|| {
            ApiError::unauthorized("Use the header Authorization: Bearer <access token>.")
        })?;
    let claims = state
        .tokens
        .verify_access(token)
        .map_err(|_| ApiError::unauthorized("The access token is invalid or expired."))?;
    let context = parts.extensions.get::<Arc<RequestContext>>().cloned();
    if let Some(ctx) = &context {
        ctx.set_user(claims.user_id);
    }
    // Counted before the account is looked up: a removed account's token (valid for its
    // last minutes) costs a database read each time, as it is never remembered.
    if metered {
        record_rate(
            state,
            context.as_deref(),
            "user",
            state.limits.check_user(claims.user_id),
        )?;
    }
    if !state.accounts.exists(claims.user_id).await? {
        return Err(ApiError::unauthorized(
            "The account this token was issued for no longer exists.",
        ));
    }
    Ok(AuthUser { id: claims.user_id })
}

/// Counts a request against the per-address limit of the account endpoints; holds the client's
/// address.
pub struct IpRateLimited(pub IpAddr);

impl FromRequestParts<AppState> for IpRateLimited {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ip = client_ip(parts, state.config.trust_forwarded_for);
        let context = parts.extensions.get::<Arc<RequestContext>>().cloned();
        record_rate(state, context.as_deref(), "ip", state.limits.check_ip(ip))?;
        Ok(IpRateLimited(ip))
    }
}

/// The client address an organization invitation is counted under. Counted by
/// [`InviteAddress::charge`] once the invitation has passed its checks: a refused one (bad
/// address, no permission, the inviter's own hour spent) costs the address nothing. No
/// `X-RateLimit-*` headers: those describe the per-user limit of every request.
pub struct InviteAddress(IpAddr);

impl FromRequestParts<AppState> for InviteAddress {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(InviteAddress(client_ip(
            parts,
            state.config.trust_forwarded_for,
        )))
    }
}

impl InviteAddress {
    /// Counts one invitation against the address's hour; refused once it is spent.
    pub fn charge(&self, state: &AppState) -> Result<(), ApiError> {
        record_rate(state, None, "invite", state.limits.check_invite(self.0))
    }
}

/// Counts a token refresh against the per-address refresh limit (apart from sign-ins).
pub struct RefreshRateLimited;

impl FromRequestParts<AppState> for RefreshRateLimited {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ip = client_ip(parts, state.config.trust_forwarded_for);
        let context = parts.extensions.get::<Arc<RequestContext>>().cloned();
        let check = state.limits.check_refresh(ip);
        record_rate(state, context.as_deref(), "refresh", check)?;
        Ok(RefreshRateLimited)
    }
}

type RateCheck =
    Result<Option<crate::rate_limit::RateInfo>, (crate::rate_limit::RateInfo, ApiError)>;

fn record_rate(
    state: &AppState,
    context: Option<&RequestContext>,
    limit: &str,
    check: RateCheck,
) -> Result<(), ApiError> {
    match check {
        Ok(None) => Ok(()),
        Ok(Some(info)) => {
            if let Some(ctx) = context {
                ctx.set_rate(info);
            }
            Ok(())
        }
        Err((info, error)) => {
            if let Some(ctx) = context {
                ctx.set_rate(info);
            }
            state.metrics.rate_limited(limit);
            Err(error)
        }
    }
}

/// The client's address: the peer, or the last `X-Forwarded-For` hop when the deployment says a
/// trusted proxy sets it (the last hop is the one that proxy saw; earlier ones are client-made).
fn client_ip(parts: &Parts, trust_forwarded_for: bool) -> IpAddr {
    if trust_forwarded_for {
        if let Some(ip) = last_forwarded_hop(&parts.headers) {
            return ip;
        }
    }
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ConnectInfo(addr)| {
            addr.ip()
        })
}

/// The last hop of `X-Forwarded-For`: of its last line, since a proxy may add a line of its own
/// rather than append to the client's (HAProxy does), and with any port dropped
/// (`1.2.3.4:5678`, `[2001:db8::1]:443`).
fn last_forwarded_hop(headers: &HeaderMap) -> Option<IpAddr> {
    let line = headers.get_all("x-forwarded-for").iter().next_back()?;
    let hop = line.to_str().ok()?.rsplit(',').next()?.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|addr| addr.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forwarded_hop_is_the_last_of_the_last_line() {
        let mut headers = HeaderMap::new();
        // The client's own line, then the proxy's.
        headers.append("x-forwarded-for", "203.0.113.7".parse().unwrap());
        headers.append(
            "x-forwarded-for",
            "198.51.100.1, 192.0.2.9".parse().unwrap(),
        );
        assert_eq!(
            last_forwarded_hop(&headers),
            Some("192.0.2.9".parse().unwrap())
        );
        for (line, ip) in [
            ("192.0.2.9:5678", "192.0.2.9"),
            ("[2001:db8::1]:443", "2001:db8::1"),
            ("2001:db8::1", "2001:db8::1"),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert("x-forwarded-for", line.parse().unwrap());
            assert_eq!(
                last_forwarded_hop(&headers),
                Some(ip.parse().unwrap()),
                "{line}"
            );
        }
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "not an address".parse().unwrap());
        assert_eq!(last_forwarded_hop(&headers), None);
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        inner: Option<Inner>,
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Inner {
        n: i64,
    }

    #[test]
    fn body_errors_name_fields() {
        assert!(parse_json::<Body>(br#"{"name": "x"}"#).is_ok());
        let err = parse_json::<Body>(br#"{}"#).unwrap_err();
        assert_eq!(err.code(), "invalid");
        let err = parse_json::<Body>(br#"{"name": 5}"#).unwrap_err();
        assert_eq!(err.code(), "invalid");
        let err = parse_json::<Body>(br#"{"name": "x", "inner": {}}"#).unwrap_err();
        assert_eq!(err.code(), "invalid");
        let err = parse_json::<Body>(br#"{"name": "#).unwrap_err();
        assert_eq!(err.code(), "malformed_json");
        let err = parse_json::<Body>(br#"{"name": "x"} {}"#).unwrap_err();
        assert_eq!(err.code(), "malformed_json");
    }
}
