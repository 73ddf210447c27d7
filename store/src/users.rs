//! Accounts.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use chatboard_core::model::User;

/// A new account; the password is already hashed.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Normalised email.
    pub email: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
}

/// Profile fields to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ProfilePatch {
    /// New given name.
    pub first_name: Option<String>,
    /// New family name.
    pub last_name: Option<String>,
    /// New avatar: `Some(None)` clears it.
    pub avatar_url: Option<Option<String>>,
    /// Digest emails on or off.
    pub email_notifications: Option<bool>,
}

/// Accounts.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates an account; `Conflict(email_taken)` if the email is in use.
    async fn create_user(&self, user: NewUser, now: DateTime<Utc>) -> StoreResult<User>;
    /// Looks an account up by id.
    async fn user_by_id(&self, id: i64) -> StoreResult<Option<User>>;
    /// The account and its password hash, by normalised email.
    async fn credentials_by_email(&self, email: &str) -> StoreResult<Option<(User, String)>>;
    /// Changes profile fields and returns the updated account.
    async fn update_profile(&self, id: i64, patch: ProfilePatch) -> StoreResult<User>;
    /// Replaces the account's password hash, if it is still `checked` (the one the current
    /// password was checked against), and revokes every login family of the account, in one
    /// transaction: no refresh token issued before survives the change. False, and nothing
    /// changed, when the hash is no longer `checked` (another change came first).
    async fn change_password(
        &self,
        id: i64,
        checked: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Turns digest emails off for the account whose unsubscribe token (the link in its
    /// digests) is `token`, as `update_profile` does; `false` when no account has it.
    async fn unsubscribe(&self, token: &str) -> StoreResult<bool>;
}
