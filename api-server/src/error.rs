//! The API's error type and its JSON shape:
//! `{"detail": "...", "code": "...", "errors": {"field": ["problem"]}}`.
//!
//! Every answer carries an [`ErrorCode`]; its status and default sentence come from the code
//! (`chatboard_core::error_code`), so the same refusal reads the same wherever it comes from.

use std::borrow::Cow;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chat::ChatError;
use chatboard_core::error_code::ErrorCode;
use chatboard_store::StoreError;

use crate::outage::StoreUnavailable;
use serde::Serialize;
use utoipa::ToSchema;

pub use chat::FieldErrors;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    detail: Cow<'static, str>,
    errors: Option<FieldErrors>,
    retry_after_secs: Option<u64>,
    /// A limit of the action's own refused it (counted by the request's middleware).
    action_limited: bool,
}

/// Marks a response refused by a limit of the action's own (an organization's posts a minute,
/// an inviter's invitations an hour), for `chatboard_rate_limited_total{limit="action"}`.
#[derive(Debug, Clone, Copy)]
pub struct ActionRateLimited;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A human-readable sentence.
    pub detail: String,
    /// A stable machine-readable code.
    pub code: ErrorCode,
    /// Problems per field (validation failures only): each field's name with its problems.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<std::collections::HashMap<String, Vec<String>>>)]
    pub errors: Option<FieldErrors>,
}

impl ApiError {
    /// An error with the code's status and sentence.
    pub fn new(code: ErrorCode) -> Self {
        Self {
            status: StatusCode::from_u16(code.status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code,
            detail: Cow::Borrowed(code.detail()),
            errors: None,
            retry_after_secs: None,
            action_limited: false,
        }
    }

    /// The same error, saying something more specific than the code's sentence.
    pub fn with_detail(mut self, detail: impl Into<Cow<'static, str>>) -> Self {
        self.detail = detail.into();
        self
    }

    /// The same error with another status than its code's (an expired upload's download link
    /// answers 410 Gone).
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// 400 with per-field problems.
    pub fn validation(errors: FieldErrors) -> Self {
        let mut e = Self::new(ErrorCode::Invalid);
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

    /// 401 `not_authenticated`.
    pub fn unauthorized(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::NotAuthenticated).with_detail(detail)
    }

    /// 404: also what a caller gets for objects it may not see.
    pub fn not_found() -> Self {
        Self::new(ErrorCode::NotFound)
    }

    /// 429 with `Retry-After`.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        let mut e = Self::new(ErrorCode::RateLimited);
        e.retry_after_secs = Some(retry_after_secs.max(1));
        e
    }

    /// 500 without details (they go to the log).
    pub fn internal() -> Self {
        Self::new(ErrorCode::InternalError)
    }

    /// 503.
    pub fn unavailable() -> Self {
        Self::new(ErrorCode::Unavailable)
    }

    /// Tells the client to try again after `secs` seconds (`Retry-After`).
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The machine code.
    pub fn code(&self) -> &'static str {
        self.code.code()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            detail: self.detail.into_owned(),
            code: self.code,
            errors: self.errors,
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.code == ErrorCode::Unavailable {
            response.extensions_mut().insert(StoreUnavailable);
        }
        if self.action_limited {
            response.extensions_mut().insert(ActionRateLimited);
        }
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<ChatError> for ApiError {
    fn from(e: ChatError) -> Self {
        match e {
            ChatError::Invalid(errors) => ApiError::validation(errors),
            ChatError::Refused { code, detail } => ApiError::new(code).with_detail(detail),
            ChatError::RateLimited {
                retry_after,
                detail,
            } => {
                let mut e = ApiError::rate_limited(retry_after.as_secs_f64().ceil() as u64)
                    .with_detail(detail);
                e.action_limited = true;
                e
            }
            ChatError::Unavailable(source) => {
                tracing::error!(error = %source, "database unavailable");
                ApiError::unavailable()
            }
            ChatError::Internal(what) => {
                tracing::error!(error = %what, "action failed");
                ApiError::internal()
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ChatError::from(e).into()
    }
}

/// Result type of handlers.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_failures_answer_400() {
        let mut v = chat::validate::Validator::default();
        v.text("blank", "   ", 1, 10);
        let err = ApiError::from(v.finish().unwrap_err());
        assert_eq!(err.status(), axum::http::StatusCode::BAD_REQUEST);
    }
}
