//! The API's error type and its JSON shape:
//! `{"detail": "...", "code": "...", "errors": {"field": ["problem"]}}`.

use std::borrow::Cow;
use std::collections::BTreeMap;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chatboard_core::store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// Field name -> problems, for validation failures.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

/// An error answer. Constructed through the helpers below so that status and code agree.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    detail: Cow<'static, str>,
    errors: Option<FieldErrors>,
    retry_after_secs: Option<u64>,
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A human-readable sentence.
    pub detail: String,
    /// A stable machine-readable code.
    pub code: String,
    /// Problems per field (validation failures only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<FieldErrors>,
}

impl ApiError {
    /// An error with any status.
    pub fn new(
        status: StatusCode,
        code: &'static str,
        detail: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            errors: None,
            retry_after_secs: None,
        }
    }

    /// 400 with per-field problems.
    pub fn validation(errors: FieldErrors) -> Self {
        let mut e = Self::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            "The request has invalid fields.",
        );
        e.errors = Some(errors);
        e
    }

    /// 400 for one field.
    pub fn field(field: &str, problem: impl Into<String>) -> Self {
        Self::validation(FieldErrors::from([(
            field.to_owned(),
            vec![problem.into()],
        )]))
    }

    /// 400 with a code.
    pub fn bad_request(code: &'static str, detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    /// 401.
    pub fn unauthorized(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "not_authenticated", detail)
    }

    /// 403.
    pub fn forbidden(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "permission_denied", detail)
    }

    /// 403 with a specific code.
    pub fn forbidden_because(code: &'static str, detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, detail)
    }

    /// 404: also what a caller gets for objects it may not see.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "Not found.")
    }

    /// 409 with a code.
    pub fn conflict(code: &'static str, detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::CONFLICT, code, detail)
    }

    /// 429 with `Retry-After`.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "Too many requests; slow down.",
        );
        e.retry_after_secs = Some(retry_after_secs.max(1));
        e
    }

    /// 500 without details (they go to the log).
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "Something went wrong on our side.",
        )
    }

    /// 403 for a write to an organization that takes none (`org_suspended`, `org_archived`).
    pub fn read_only(code: &'static str) -> Self {
        let detail = if code == "org_archived" {
            "This organization is archived: it can be read but not changed."
        } else {
            "This organization is suspended: members can read but not write."
        };
        Self::new(StatusCode::FORBIDDEN, code, detail)
    }

    /// 503.
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "A dependency is unavailable; try again shortly.",
        )
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The machine code.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            detail: self.detail.into_owned(),
            code: self.code.to_owned(),
            errors: self.errors,
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::not_found(),
            StoreError::Conflict(code) => ApiError::conflict(code, conflict_detail(code)),
            StoreError::LastAdmin => ApiError::conflict(
                "last_admin",
                "An organization must keep at least one ADMIN.",
            ),
            StoreError::Forbidden(code) => ApiError::read_only(code),
            StoreError::InviteEmailMismatch => {
                ApiError::forbidden("This invitation was issued to another email address.")
            }
            StoreError::Unavailable(ref source) => {
                tracing::error!(error = %source, "database unavailable");
                ApiError::unavailable()
            }
            other => {
                tracing::error!(error = %other, "store failure");
                ApiError::internal()
            }
        }
    }
}

fn conflict_detail(code: &str) -> &'static str {
    match code {
        "email_taken" => "An account with this email already exists.",
        "already_member" => "This person is already a member of the organization.",
        "invite_pending" => "An open invitation for this email already exists.",
        "managed_by_operator" => {
            "This object is managed by the Kubernetes operator; change its custom resource instead."
        }
        "dm_immutable" => {
            "A direct-message room cannot be renamed, re-levelled or joined by others."
        }
        "dm_cannot_leave" => "A direct-message room always keeps its two members.",
        "message_deleted" => "The message has been deleted.",
        "member_limit_reached" => {
            "The organization has as many members as its quota allows; ask your platform team."
        }
        "room_limit_reached" => {
            "The organization has as many rooms as its quota allows; ask your platform team."
        }
        _ => "The request conflicts with the current state.",
    }
}

/// Result type of handlers.
pub type ApiResult<T> = Result<T, ApiError>;
