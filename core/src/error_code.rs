//! The machine-readable error codes of the API and of WebSocket `error` frames, in one place:
//! each with the HTTP status it answers with and the sentence shown when nothing more specific
//! is said.

use serde::Serialize;
use strum::{IntoStaticStr, VariantArray};
use utoipa::ToSchema;

/// A stable error code (`code` of every error body and error frame).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema, IntoStaticStr, VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ErrorCode {
    /// 400: fields failed validation (`errors` says which and why).
    Invalid,
    /// 400: the body is not the JSON the endpoint expects.
    MalformedJson,
    /// 400: a query parameter has the wrong type.
    InvalidQuery,
    /// 400: the body could not be read.
    UnreadableBody,
    /// 400: logout with a refresh token that is not the caller's.
    InvalidRefreshToken,
    /// 409: a completed upload's object has another type than declared.
    TypeMismatch,
    /// 409: a completed upload's object has another size than declared.
    SizeMismatch,
    /// 409: completing an upload whose object was never put.
    NotUploaded,
    /// 409: a signed upload URL used again after its file was stored.
    AlreadyUploaded,
    /// 409: a signed upload URL used while another PUT to it is still sending its file.
    UploadInProgress,
    /// 400: a WebSocket frame that is not JSON or not a known frame.
    InvalidFrame,
    /// 401: no valid access token.
    NotAuthenticated,
    /// 401: wrong email or password.
    InvalidCredentials,
    /// 401: the refresh token is invalid or expired.
    TokenNotValid,
    /// 401: the refresh token was used before; its session is revoked.
    TokenReused,
    /// 403: the caller's role does not allow it.
    PermissionDenied,
    /// 403: the organization is suspended (read-only).
    OrgSuspended,
    /// 403: the organization is archived (read-only for good).
    OrgArchived,
    /// 403: a private room can only be entered by invitation.
    InviteOnly,
    /// 403: direct-message rooms cannot be joined.
    DmNotJoinable,
    /// 404: no such object, or one the caller may not see.
    NotFound,
    /// 405: the path exists but not with this method.
    MethodNotAllowed,
    /// 409: an account with this email exists.
    EmailTaken,
    /// 409: the invitee is already a member.
    AlreadyMember,
    /// 409: an open invitation for this address exists.
    InvitePending,
    /// 409: the object belongs to a custom resource of the operator.
    ManagedByOperator,
    /// 409: direct-message rooms cannot be renamed, re-levelled or given members.
    DmImmutable,
    /// 409: a direct-message room keeps its two members.
    DmCannotLeave,
    /// 409: the message was deleted.
    MessageDeleted,
    /// 409: the message has as many distinct reactions as a message may have.
    TooManyReactions,
    /// 409: the organization has as many members as its quota allows.
    MemberLimitReached,
    /// 409: the organization has as many rooms as its quota allows.
    RoomLimitReached,
    /// 409: the change would leave the organization without an ADMIN.
    LastAdmin,
    /// 409: the organization has as many webhooks as allowed.
    TooManyWebhooks,
    /// 409: the webhook is switched off.
    WebhookInactive,
    /// 409: the file does not fit the uploader's or the organization's upload quota.
    UploadQuotaExceeded,
    /// 409 (410 on download): the upload has expired.
    UploadExpired,
    /// 408: the request body stalled longer than the server waits between two pieces.
    RequestTimeout,
    /// 413: the file is larger than allowed.
    FileTooLarge,
    /// 413: the request body is larger than allowed.
    BodyTooLarge,
    /// 415: the body is not JSON.
    UnsupportedMediaType,
    /// 415: files of this type are not accepted.
    UnsupportedType,
    /// 429: too many requests or messages; see `Retry-After`.
    RateLimited,
    /// 500: something failed on the server (details are in its log).
    InternalError,
    /// 503: a dependency is unavailable.
    Unavailable,
    /// 503: uploads are not configured.
    UploadsUnavailable,
    /// 503: object storage is unavailable.
    StorageUnavailable,
    /// 503: the client's address holds as many connections as one address may.
    TooManyConnections,
    /// 503: every password-hashing slot stayed busy; see `Retry-After`.
    ServerBusy,
}

impl ErrorCode {
    /// The wire name, e.g. `email_taken`.
    pub fn code(self) -> &'static str {
        self.into()
    }

    /// The HTTP status an API error with this code answers with.
    pub fn status(self) -> u16 {
        use ErrorCode::*;
        match self {
            Invalid | MalformedJson | InvalidQuery | UnreadableBody | InvalidRefreshToken
            | InvalidFrame => 400,
            NotAuthenticated | InvalidCredentials | TokenNotValid | TokenReused => 401,
            PermissionDenied | OrgSuspended | OrgArchived | InviteOnly | DmNotJoinable => 403,
            NotFound => 404,
            MethodNotAllowed => 405,
            RequestTimeout => 408,
            EmailTaken | AlreadyMember | InvitePending | ManagedByOperator | DmImmutable
            | DmCannotLeave | MessageDeleted | TooManyReactions | MemberLimitReached
            | RoomLimitReached | LastAdmin | TooManyWebhooks | WebhookInactive
            | UploadQuotaExceeded | UploadExpired | TypeMismatch | SizeMismatch | NotUploaded
            | AlreadyUploaded | UploadInProgress => 409,
            FileTooLarge | BodyTooLarge => 413,
            UnsupportedMediaType | UnsupportedType => 415,
            RateLimited => 429,
            InternalError => 500,
            Unavailable | UploadsUnavailable | StorageUnavailable | TooManyConnections
            | ServerBusy => 503,
        }
    }

    /// The sentence shown with the code when the caller says nothing more specific.
    pub fn detail(self) -> &'static str {
        use ErrorCode::*;
        match self {
            Invalid => "The request has invalid fields.",
            MalformedJson => "The body is not valid JSON for this endpoint.",
            InvalidQuery => "A query parameter is invalid.",
            UnreadableBody => "The request body could not be read.",
            InvalidRefreshToken => "Send a refresh token of your own login.",
            TypeMismatch => "The stored file's type differs from the one declared.",
            SizeMismatch => "The stored file's size differs from the one declared.",
            NotUploaded => "The file has not been uploaded yet.",
            AlreadyUploaded => "This file has been uploaded already.",
            UploadInProgress => "Another upload to this link is still sending its file.",
            InvalidFrame => "The frame is not one this connection understands.",
            NotAuthenticated => "Authentication credentials were not provided or are invalid.",
            InvalidCredentials => "No active account found with the given credentials.",
            TokenNotValid => "The refresh token is invalid or expired.",
            TokenReused => {
                "This refresh token was already used; the session has been revoked. Log in again."
            }
            PermissionDenied => "You do not have permission to do this.",
            OrgSuspended => "This organization is suspended: members can read but not write.",
            OrgArchived => "This organization is archived: it can be read but not changed.",
            InviteOnly => {
                "This room is private: its creator or an organization ADMIN can invite you."
            }
            DmNotJoinable => "Direct-message rooms cannot be joined.",
            NotFound => "Not found.",
            MethodNotAllowed => "This method is not allowed here.",
            EmailTaken => "An account with this email already exists.",
            AlreadyMember => "This person is already a member of the organization.",
            InvitePending => "An open invitation for this email already exists.",
            ManagedByOperator => {
                "This object is managed by the Kubernetes operator; change its custom resource instead."
            }
            DmImmutable => {
                "A direct-message room cannot be renamed, re-levelled or joined by others."
            }
            DmCannotLeave => "A direct-message room always keeps its two members.",
            MessageDeleted => "The message has been deleted.",
            TooManyReactions => {
                "This message has as many different reactions as it may have; add one of those."
            }
            MemberLimitReached => {
                "The organization has as many members as its quota allows; ask your platform team."
            }
            RoomLimitReached => {
                "The organization has as many rooms as its quota allows; ask your platform team."
            }
            LastAdmin => "An organization must keep at least one ADMIN.",
            TooManyWebhooks => "The organization has as many webhooks as it may have.",
            WebhookInactive => "The webhook is switched off; set is_active to true first.",
            UploadQuotaExceeded => "The file does not fit the upload quota.",
            UploadExpired => "This file has expired or was never completed.",
            RequestTimeout => "The request body stalled; send the request again.",
            FileTooLarge => "The file is larger than allowed.",
            BodyTooLarge => "The request body is too large.",
            UnsupportedMediaType => "Send the body as JSON with Content-Type: application/json.",
            UnsupportedType => "Files of this type are not accepted.",
            RateLimited => "Too many requests; slow down.",
            InternalError => "Something went wrong on our side.",
            Unavailable => "A dependency is unavailable; try again shortly.",
            UploadsUnavailable => "File uploads are not configured on this server.",
            StorageUnavailable => "File storage is unavailable; try again shortly.",
            TooManyConnections => "Too many connections from this address.",
            ServerBusy => "The server is busy signing people in; try again shortly.",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_serializes_as_its_wire_name() {
        let mut seen = std::collections::HashSet::new();
        for &code in ErrorCode::VARIANTS {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, code.code(), "{code:?}");
            assert!(seen.insert(code.code()), "{code:?} twice");
            assert!((400..600).contains(&code.status()));
            assert!(code.detail().ends_with('.'), "{code:?}");
        }
    }
}
