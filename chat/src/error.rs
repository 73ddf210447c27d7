//! Why a chat action did not happen. Entry points translate: the REST API into an error body
//! with the code's status, the gateway into an `error` frame, the operator into a retry.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

use chatboard_core::error_code::ErrorCode;
use chatboard_store::StoreError;

/// Field name -> problems, for validation failures.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

/// What a chat action can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// The input failed validation; every problem, by field.
    #[error("invalid input: {0:?}")]
    Invalid(FieldErrors),
    /// A rule refused the action: not found (or not visible), not allowed, a conflict with
    /// what is stored, a quota. `detail` says it for people.
    #[error("{code}: {detail}")]
    Refused {
        /// Which rule.
        code: ErrorCode,
        /// A sentence for the caller.
        detail: Cow<'static, str>,
    },
    /// The caller is over a posting limit and may try again after `retry_after`.
    #[error("rate limited for {retry_after:?}: {detail}")]
    RateLimited {
        /// When the next attempt can succeed.
        retry_after: Duration,
        /// Which limit, for people.
        detail: &'static str,
    },
    /// A dependency (the database) is unavailable; trying again later may work.
    #[error("unavailable: {0}")]
    Unavailable(#[source] StoreError),
    /// Anything else; the details belong in the log, not in the answer.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Shorthand for action results.
pub type ChatResult<T> = Result<T, ChatError>;

impl ChatError {
    /// Whether the refusal is the organization's being suspended or archived (read-only).
    pub fn is_read_only_org(&self) -> bool {
        matches!(
            self,
            ChatError::Refused {
                code: ErrorCode::OrgSuspended | ErrorCode::OrgArchived,
                ..
            }
        )
    }

    /// A refusal with the code's own sentence.
    pub fn refused(code: ErrorCode) -> Self {
        ChatError::Refused {
            code,
            detail: Cow::Borrowed(code.detail()),
        }
    }

    /// A refusal with a sentence of its own.
    pub fn refused_because(code: ErrorCode, detail: impl Into<Cow<'static, str>>) -> Self {
        ChatError::Refused {
            code,
            detail: detail.into(),
        }
    }

    /// 404: no such object, or one the caller may not see.
    pub fn not_found() -> Self {
        Self::refused(ErrorCode::NotFound)
    }

    /// 403 `permission_denied` with a sentence saying what was needed.
    pub fn denied(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::refused_because(ErrorCode::PermissionDenied, detail)
    }

    /// A validation failure of one field.
    pub fn field(field: &str, problem: impl Into<String>) -> Self {
        ChatError::Invalid(FieldErrors::from([(
            field.to_owned(),
            vec![problem.into()],
        )]))
    }

    /// The code an answer carries.
    pub fn code(&self) -> ErrorCode {
        match self {
            ChatError::Invalid(_) => ErrorCode::Invalid,
            ChatError::Refused { code, .. } => *code,
            ChatError::RateLimited { .. } => ErrorCode::RateLimited,
            ChatError::Unavailable(_) => ErrorCode::Unavailable,
            ChatError::Internal(_) => ErrorCode::InternalError,
        }
    }
}

impl From<StoreError> for ChatError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ChatError::not_found(),
            StoreError::Conflict(code) | StoreError::Forbidden(code) => ChatError::refused(code),
            StoreError::InviteEmailMismatch => {
                ChatError::denied("This invitation was issued to another email address.")
            }
            StoreError::Unavailable(_) => ChatError::Unavailable(e),
            StoreError::TookTooLong(_) => ChatError::refused_because(
                ErrorCode::ServerBusy,
                "This took too long and was stopped; narrow it (a search: rarer words, fewer \
                 words left out, or one room).",
            ),
            other => ChatError::Internal(other.to_string()),
        }
    }
}
