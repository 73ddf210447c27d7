//! Refresh-token families: rotation and reuse detection.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;

/// How presenting a refresh token went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The token was valid and is now used; a successor was recorded in the same family.
    Rotated {
        /// Whose session it is.
        user_id: i64,
    },
    /// The token had been used before: its whole family is now revoked.
    Reused,
    /// Unknown, expired or revoked.
    Invalid,
}

/// Refresh-token families (one per login) with rotation and reuse detection.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Records a new login family and its first refresh token, if the account's password hash
    /// is still `credential` (the one the login was checked against); false, recording
    /// nothing, when the password changed meanwhile. A password change revokes the families
    /// it finds, so a login checked against the old password must not start one after it.
    async fn start_session(
        &self,
        user_id: i64,
        credential: &str,
        family_id: &str,
        jti: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Uses refresh token `jti` of `family_id` and records `next_jti` as its successor.
    async fn rotate_refresh(
        &self,
        family_id: &str,
        jti: &str,
        next_jti: &str,
        next_expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<RefreshOutcome>;
    /// Revokes a family (logout); false if it is not the user's or already revoked.
    async fn revoke_session(
        &self,
        user_id: i64,
        family_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Deletes refresh tokens that expired before `before` (nobody can present them any more:
    /// their signature says they expired), then the families left without a token, `batch`
    /// rows per statement; returns how many rows went.
    async fn prune_sessions(&self, before: DateTime<Utc>, batch: u32) -> StoreResult<u64>;
}
