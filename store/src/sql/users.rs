//! Accounts.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{SqlStore, Tx};
use crate::sql::rows::{is_unique_violation, UserRow, UserWithHashRow, USER_COLUMNS};
use crate::{NewUser, ProfilePatch, StoreError, StoreResult, UserStore};
use chatboard_core::error_code::ErrorCode;
use chatboard_core::model::User;

#[async_trait]
impl UserStore for SqlStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn create_user(&self, user: NewUser, now: DateTime<Utc>) -> StoreResult<User> {
        let sql = format!(
            "INSERT INTO users (email, password_hash, first_name, last_name, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING {USER_COLUMNS}"
        );
        let row: UserRow = sqlx::query_as(&sql)
            .bind(&user.email)
            .bind(&user.password_hash)
            .bind(&user.first_name)
            .bind(&user.last_name)
            .bind(now)
            .fetch_one(&self.write)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict(ErrorCode::EmailTaken)
                } else {
                    e.into()
                }
            })?;
        Ok(row.into())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn user_by_id(&self, id: i64) -> StoreResult<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        let row: Option<UserRow> = sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(&self.read)
            .await?;
        Ok(row.map(User::from))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn credentials_by_email(&self, email: &str) -> StoreResult<Option<(User, String)>> {
        let sql = format!("SELECT {USER_COLUMNS}, password_hash FROM users WHERE email = $1");
        let row: Option<UserWithHashRow> = sqlx::query_as(&sql)
            .bind(email)
            .fetch_optional(&self.read)
            .await?;
        Ok(row.map(|r| (r.user.into(), r.password_hash)))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn update_profile(&self, id: i64, patch: ProfilePatch) -> StoreResult<User> {
        let sql = format!(
            "UPDATE users SET first_name = COALESCE($2, first_name), last_name = COALESCE($3, last_name), \
             avatar_url = CASE WHEN $4 THEN $5 ELSE avatar_url END, \
             email_notifications = COALESCE($6, email_notifications) \
             WHERE id = $1 RETURNING {USER_COLUMNS}"
        );
        let set_avatar = patch.avatar_url.is_some();
        // One transaction: the setting and what it stops stand or fall together.
        let mut tx = self.write.begin().await?;
        let row: Option<UserRow> = sqlx::query_as(&sql)
            .bind(id)
            .bind(patch.first_name)
            .bind(patch.last_name)
            .bind(set_avatar)
            .bind(patch.avatar_url.flatten())
            .bind(patch.email_notifications)
            .fetch_optional(&mut *tx)
            .await?;
        if patch.email_notifications == Some(false) {
            stop_emails(&mut tx, id).await?;
        }
        tx.commit().await?;
        row.map(User::from).ok_or(StoreError::NotFound)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn change_password(
        &self,
        id: i64,
        checked: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut tx = self.write.begin().await?;
        // Only over the hash the current password was checked against: of two changes that
        // both checked it, the second would otherwise replace the first's password unseen.
        let done =
            sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1 AND password_hash = $3")
                .bind(id)
                .bind(password_hash)
                .bind(checked)
                .execute(&mut *tx)
                .await?;
        if done.rows_affected() == 0 {
            let exists: Option<(i64,)> = sqlx::query_as("SELECT id FROM users WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            return if exists.is_some() {
                Ok(false)
            } else {
                Err(StoreError::NotFound)
            };
        }
        sqlx::query(
            "UPDATE refresh_families SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn unsubscribe(&self, token: &str) -> StoreResult<bool> {
        let mut tx = self.write.begin().await?;
        let user: Option<(i64,)> = sqlx::query_as(
            "UPDATE users SET email_notifications = FALSE WHERE email_token = $1 RETURNING id",
        )
        .bind(token)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((id,)) = user {
            stop_emails(&mut tx, id).await?;
        }
        tx.commit().await?;
        Ok(user.is_some())
    }
}

/// What turning digest emails off stops at once, in the caller's transaction: what was gathered
/// for the next digest, and a digest already written and waiting to be sent (or sent again).
async fn stop_emails(tx: &mut Tx<'_>, id: i64) -> StoreResult<()> {
    for table in ["digest_items", "digest_email_lines"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE user_id = $1"))
            .bind(id)
            .execute(&mut **tx)
            .await?;
    }
    sqlx::query(
        "UPDATE emails SET status = 'failed', next_attempt_at = NULL, body = '', \
           last_error = 'the recipient turned emails off' \
         WHERE kind = 'digest' AND status = 'pending' \
           AND to_address = (SELECT email FROM users WHERE id = $1)",
    )
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
