//! The unsubscribe link of digest emails: it turns a user's digests off without signing in.
//!
//! The link is a GET that only shows a page with a button, because mail scanners and link
//! previews fetch links they find. The button, and mail clients that offer their own
//! unsubscribe button (RFC 8058's one-click `List-Unsubscribe-Post`), POST to the same URL.
//!
//! Neither counts against the per-address limits of the account endpoints: mailbox providers
//! post their users' one-click unsubscribes from a few addresses of theirs, and a token of 256
//! random bits is not guessed by asking often.

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use utoipa::IntoParams;

use crate::error::ApiResult;
use crate::state::AppState;

/// Length of the tokens the worker writes into links (256 bits, URL-safe base64).
const TOKEN_LEN: usize = 43;

/// The link's query.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UnsubscribeQuery {
    /// The token of the digest's recipient, as the email's link carries it.
    token: String,
}

impl UnsubscribeQuery {
    /// The query's first `token`. Read by hand: whatever else the query holds (the token
    /// twice, a parameter a mail client added), the person who opened the link gets a page,
    /// not the query parser's bare 400.
    fn of(raw: Option<String>) -> Self {
        let token = raw
            .and_then(|raw| {
                url::form_urlencoded::parse(raw.as_bytes())
                    .find(|(name, _)| name == "token")
                    .map(|(_, value)| value.into_owned())
            })
            .unwrap_or_default();
        Self { token }
    }

    /// The token, when it has the shape of one: anything else is not looked up.
    fn token(&self) -> Option<&str> {
        let t = self.token.trim();
        let shaped = t.len() == TOKEN_LEN
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        shaped.then_some(t)
    }
}

/// The page an unsubscribe link opens: a button that turns digest emails off. Opening it
/// changes nothing, and looks nothing up: a token of the right shape gets the page, and the
/// button says whether it is valid.
#[utoipa::path(get, path = "/api/email/unsubscribe/", tag = "auth", params(UnsubscribeQuery),
    responses((status = 200, description = "An HTML page with the button that turns digest emails off", content_type = "text/html"),
        (status = 404, description = "An HTML page: the link is not (or no longer) valid", content_type = "text/html")))]
pub async fn page(RawQuery(raw): RawQuery) -> Response {
    if UnsubscribeQuery::of(raw).token().is_none() {
        return not_valid();
    }
    html(
        StatusCode::OK,
        "Stop ChatBoard digest emails?",
        "You get an email about messages that arrive while you are away.",
        // No action: the form posts to this page's own URL, token included.
        "<form method=\"post\"><button type=\"submit\">Turn off email notifications</button></form>",
    )
}

/// Turns digest emails off for the account whose unsubscribe token this is (the link in its
/// digests). Mail clients' one-click unsubscribe (RFC 8058) posts here; the body is ignored.
/// Answering again for a link already used is not an error.
#[utoipa::path(post, path = "/api/email/unsubscribe/", tag = "auth", params(UnsubscribeQuery),
    responses((status = 200, description = "An HTML page: digest emails are off for the account", content_type = "text/html"),
        (status = 404, description = "An HTML page: the link is not (or no longer) valid", content_type = "text/html")))]
pub async fn unsubscribe(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let query = UnsubscribeQuery::of(raw);
    let Some(token) = query.token() else {
        return Ok(not_valid());
    };
    if !state.store.unsubscribe(token).await? {
        return Ok(not_valid());
    }
    tracing::info!("digest emails turned off by an unsubscribe link");
    Ok(html(
        StatusCode::OK,
        "Email notifications are off",
        "You will get no more digest emails. To have them again, turn email notifications on \
         in your ChatBoard profile.",
        "",
    ))
}

/// The answer to a token no account has.
fn not_valid() -> Response {
    html(
        StatusCode::NOT_FOUND,
        "This link is not valid",
        "The unsubscribe link is incomplete or no longer valid. You can turn email \
         notifications off in your ChatBoard profile.",
        "",
    )
}

/// A page of our own text (and `after` it, markup) only: nothing from the request is echoed.
/// Its policy allows no script and posts only to this origin.
fn html(status: StatusCode, title: &str, text: &str, after: &str) -> Response {
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title></head>\
         <body style=\"font-family: sans-serif; max-width: 32em; margin: 3em auto; padding: 0 1em\">\
         <h1 style=\"font-size: 1.4em\">{title}</h1><p>{text}</p>{after}</body></html>"
    );
    let mut response = (status, Html(page)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
             base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
