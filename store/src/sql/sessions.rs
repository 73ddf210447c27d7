//! Refresh-token families: rotation and reuse detection.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{SqlStore, CREDENTIALS_LOCK};
use crate::{RefreshOutcome, SessionStore, StoreResult};

#[async_trait]
impl SessionStore for SqlStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn start_session(
        &self,
        user_id: i64,
        credential: &str,
        family_id: &str,
        jti: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut tx = self.write.begin().await?;
        // Locked until the commit: a password change waits for this login to be recorded (and
        // then revokes it), or commits first and this login finds the hash changed.
        let sql = format!("SELECT password_hash FROM users WHERE id = $1{CREDENTIALS_LOCK}");
        let current: Option<String> = sqlx::query_scalar(&sql)
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?;
        if current.as_deref() != Some(credential) {
            return Ok(false);
        }
        sqlx::query("INSERT INTO refresh_families (id, user_id, created_at) VALUES ($1, $2, $3)")
            .bind(family_id)
            .bind(user_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO refresh_tokens (jti, family_id, expires_at) VALUES ($1, $2, $3)")
            .bind(jti)
            .bind(family_id)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn rotate_refresh(
        &self,
        family_id: &str,
        jti: &str,
        next_jti: &str,
        next_expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<RefreshOutcome> {
        let mut tx = self.write.begin().await?;
        // Claiming the token with a conditional update makes two concurrent presentations of
        // the same token resolve to one winner; the loser sees a used token.
        let claimed: Option<(DateTime<Utc>,)> = sqlx::query_as(
            "UPDATE refresh_tokens SET used_at = $3 WHERE jti = $1 AND family_id = $2 AND used_at IS NULL \
             RETURNING expires_at",
        )
        .bind(jti)
        .bind(family_id)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let family: Option<(i64, Option<DateTime<Utc>>)> =
            sqlx::query_as("SELECT user_id, revoked_at FROM refresh_families WHERE id = $1")
                .bind(family_id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((user_id, revoked_at)) = family else {
            return Ok(RefreshOutcome::Invalid);
        };
        let outcome = match claimed {
            None => {
                let known: Option<(String,)> = sqlx::query_as(
                    "SELECT jti FROM refresh_tokens WHERE jti = $1 AND family_id = $2",
                )
                .bind(jti)
                .bind(family_id)
                .fetch_optional(&mut *tx)
                .await?;
                if known.is_none() {
                    RefreshOutcome::Invalid
                } else {
                    // A token of this family was presented twice: someone else may hold a copy,
                    // so nobody keeps the session.
                    sqlx::query("UPDATE refresh_families SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                        .bind(family_id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    RefreshOutcome::Reused
                }
            }
            Some(_) if revoked_at.is_some() => RefreshOutcome::Invalid,
            Some((expires_at,)) if expires_at <= now => RefreshOutcome::Invalid,
            Some(_) => {
                sqlx::query(
                    "INSERT INTO refresh_tokens (jti, family_id, expires_at) VALUES ($1, $2, $3)",
                )
                .bind(next_jti)
                .bind(family_id)
                .bind(next_expires_at)
                .execute(&mut *tx)
                .await?;
                RefreshOutcome::Rotated { user_id }
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn revoke_session(
        &self,
        user_id: i64,
        family_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE refresh_families SET revoked_at = $3 WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
        )
        .bind(family_id)
        .bind(user_id)
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn prune_sessions(&self, before: DateTime<Utc>, batch: u32) -> StoreResult<u64> {
        let mut total = 0;
        for statement in [
            "DELETE FROM refresh_tokens WHERE jti IN ( \
               SELECT jti FROM refresh_tokens WHERE expires_at < $1 LIMIT $2)",
            // Started before `before` too: a family and its first token are written together,
            // but a family younger than the cut is never a candidate anyway.
            "DELETE FROM refresh_families WHERE id IN ( \
               SELECT f.id FROM refresh_families f WHERE f.created_at < $1 \
                 AND NOT EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.family_id = f.id) \
               LIMIT $2)",
        ] {
            total += self.delete_in_batches(statement, before, batch).await?;
        }
        Ok(total)
    }
}
